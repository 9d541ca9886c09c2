{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ step_mart_drop_stamp() }}", "{{ step_months_delete() }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code', 'field_code', 'office']) }}", "{{ step_record_build() }}"]
    )
}}
-- fct_step_monthly with the field (lĩnh vực) in the grain: processing steps per month × handling unit × field
-- × office, the field being the step's dossier's own (MaLinhVuc, as fct_dossier.field_code has it, carried on
-- int_dossiers__steps). A field's figures —
-- the land field's offices, say — cannot be had from fct_step_monthly: its percentiles do not split, and an
-- office such as the one-stop desk serves every field. Steps and late steps add up to fct_step_monthly's
-- (tests/marts/step_marts_by_field_add_up.sql); the percentiles do not add.
--
-- Incremental by month as fct_step_monthly is (macros/steps.sql): a dossier whose field changes is a new
-- version, whose steps int_dossiers__steps replaces and logs, so its months are rebuilt.
with steps_with_field as (
    select month, unit_code, field_code, office, is_late, duration_seconds
    from {{ ref('int_dossiers__steps') }}
    {% if is_incremental() %}
    {{ step_months_missing() }}
    {% endif %}
)

select
    month,
    unit_code,
    field_code,
    office,
    {{ step_measures() }}
from steps_with_field
group by 1, 2, 3, 4
