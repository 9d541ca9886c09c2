-- fct_late_origin_monthly accounts for every late dossier exactly once: per month and unit, its rows add up to
-- fct_timeliness_monthly's late dossiers. Fails on every month and unit where they differ.
with origins as (
    select month, coalesce(unit_code, '') as unit_key, sum(late_dossiers) as late
    from {{ ref('fct_late_origin_monthly') }}
    group by 1, 2
),

timeliness as (
    select month, coalesce(unit_code, '') as unit_key, sum(late) as late
    from {{ ref('fct_timeliness_monthly') }}
    group by 1, 2
    having sum(late) > 0
)

select coalesce(origins.month, timeliness.month) as month, coalesce(origins.unit_key, timeliness.unit_key) as unit_key,
    origins.late as late_by_origin, timeliness.late as late_by_timeliness
from origins
full join timeliness on timeliness.month = origins.month and timeliness.unit_key = origins.unit_key
where origins.late is distinct from timeliness.late
