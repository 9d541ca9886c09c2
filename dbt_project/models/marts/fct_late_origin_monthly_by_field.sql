-- fct_late_origin_monthly with the field (lĩnh vực) in the grain: the late dossiers per resolution month ×
-- handling unit × field × office of their first late step ('(không ghi nhận)' when none is), the field being
-- the dossier's own (fct_dossier.field_code, MaLinhVuc) — where the land field's delays begin. Its rows add
-- up to fct_late_origin_monthly's (tests/marts/step_marts_by_field_add_up.sql). A grouped scan of the late
-- dossiers, as fct_late_origin_monthly.
with late_dossiers as (
    select dossier_id, unit_code, field_code, resolved_month
    from {{ ref('fct_dossier') }}
    where timeliness = 'late'
),

first_late_steps as (
    select dossier_id, office
    from {{ ref('int_dossiers__steps') }}
    where is_first_late
)

select
    late_dossiers.resolved_month as month,
    late_dossiers.unit_code,
    late_dossiers.field_code,
    coalesce(first_late_steps.office, '(không ghi nhận)') as office,
    count(*)::integer as late_dossiers
from late_dossiers
left join first_late_steps on first_late_steps.dossier_id = late_dossiers.dossier_id
group by 1, 2, 3, 4
