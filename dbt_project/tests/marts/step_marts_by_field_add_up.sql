-- The step marts by field split what the rest of the warehouse counts, nothing more nor less: per month, unit
-- and office, fct_step_monthly_by_field's steps and late steps add up to fct_step_monthly's (computed apart:
-- its percentiles do not add); per month, unit and field, fct_late_origin_monthly_by_field's late dossiers add
-- up to fct_timeliness_monthly's. (fct_late_origin_monthly is fct_late_origin_monthly_by_field summed over the
-- field, so adds up to it by construction; tests/marts/late_origin_adds_up_to_late_dossiers.sql checks it
-- against fct_timeliness_monthly.) Fails on every key where they differ.
with steps_by_field as (
    select month, coalesce(unit_code, '') as unit_key, office, sum(steps) as steps, sum(late_steps) as late_steps
    from {{ ref('fct_step_monthly_by_field') }}
    group by 1, 2, 3
),

steps as (
    select month, coalesce(unit_code, '') as unit_key, office, steps::bigint as steps, late_steps::bigint as late_steps
    from {{ ref('fct_step_monthly') }}
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

select 'fct_late_origin_monthly_by_field (fields)', coalesce(a.month, b.month), coalesce(a.unit_key, b.unit_key),
    coalesce(a.field_key, b.field_key)
from late_by_field as a
full join timeliness as b on b.month = a.month and b.unit_key = a.unit_key and b.field_key = a.field_key
where a.late is distinct from b.late
