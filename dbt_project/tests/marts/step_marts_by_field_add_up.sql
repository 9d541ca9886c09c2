-- The step marts by field split their base marts, nothing more nor less: per month, unit and office,
-- fct_step_monthly_by_field's steps and late steps add up to fct_step_monthly's, and
-- fct_late_origin_monthly_by_field's late dossiers to fct_late_origin_monthly's; per month, unit and field, the
-- late dossiers by field add up to fct_timeliness_monthly's. Fails on every key where they differ.
with steps_by_field as (
    select month, coalesce(unit_code, '') as unit_key, office, sum(steps) as steps, sum(late_steps) as late_steps
    from {{ ref('fct_step_monthly_by_field') }}
    group by 1, 2, 3
),

steps as (
    select month, coalesce(unit_code, '') as unit_key, office, steps::bigint as steps, late_steps::bigint as late_steps
    from {{ ref('fct_step_monthly') }}
),

origins_by_field as (
    select month, coalesce(unit_code, '') as unit_key, office, sum(late_dossiers) as late
    from {{ ref('fct_late_origin_monthly_by_field') }}
    group by 1, 2, 3
),

origins as (
    select month, coalesce(unit_code, '') as unit_key, office, late_dossiers::bigint as late
    from {{ ref('fct_late_origin_monthly') }}
),

late_by_field as (
    select month, coalesce(unit_code, '') as unit_key, coalesce(field_code, '') as field_key,
        sum(late_dossiers) as late
    from {{ ref('fct_late_origin_monthly_by_field') }}
    group by 1, 2, 3
),

timeliness as (
    select month, coalesce(unit_code, '') as unit_key, coalesce(field_code, '') as field_key, sum(late) as late
    from {{ ref('fct_timeliness_monthly') }}
    group by 1, 2, 3
    having sum(late) > 0
)

select 'fct_step_monthly_by_field' as mart, coalesce(a.month, b.month) as month,
    coalesce(a.unit_key, b.unit_key) as unit_key, coalesce(a.office, b.office) as key
from steps_by_field as a
full join steps as b on b.month = a.month and b.unit_key = a.unit_key and b.office = a.office
where a.steps is distinct from b.steps or a.late_steps is distinct from b.late_steps

union all

select 'fct_late_origin_monthly_by_field', coalesce(a.month, b.month), coalesce(a.unit_key, b.unit_key),
    coalesce(a.office, b.office)
from origins_by_field as a
full join origins as b on b.month = a.month and b.unit_key = a.unit_key and b.office = a.office
where a.late is distinct from b.late

union all

select 'fct_late_origin_monthly_by_field (fields)', coalesce(a.month, b.month), coalesce(a.unit_key, b.unit_key),
    coalesce(a.field_key, b.field_key)
from late_by_field as a
full join timeliness as b on b.month = a.month and b.unit_key = a.unit_key and b.field_key = a.field_key
where a.late is distinct from b.late
