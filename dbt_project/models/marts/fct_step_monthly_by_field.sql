{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{% if is_incremental() %}delete from {{ this }} where month in ({{ step_months_to_rebuild() }}){% endif %}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code', 'field_code', 'office']) }}"]
    )
}}
-- fct_step_monthly with the field (lĩnh vực) in the grain: processing steps per month × handling unit × field
-- × office, the field being the step's dossier's own (fct_dossier.field_code, MaLinhVuc). A field's figures —
-- the land field's offices, say — cannot be had from fct_step_monthly: its percentiles do not split, and an
-- office such as the one-stop desk serves every field. Steps and late steps add up to fct_step_monthly's
-- (tests/marts/step_marts_by_field_add_up.sql); the percentiles do not add.
--
-- Incremental by month as fct_step_monthly is (macros/steps.sql): a dossier whose field changes is a new
-- version, whose steps int_dossiers__steps replaces with a newer stamp, so its months are rebuilt.
with steps as (
    select dossier_id, month, unit_code, office, is_late, duration_seconds, source_changed_at
    from {{ ref('int_dossiers__steps') }}
    {% if is_incremental() %}
    {{ step_months_missing() }}
    {% endif %}
),

dossiers as (
    select dossier_id, field_code
    from {{ ref('fct_dossier') }}
),

steps_with_field as (
    -- Every step keeps its row: a dossier fct_dossier lacks (it never does after a build) has no field.
    select steps.*, dossiers.field_code
    from steps
    left join dossiers on dossiers.dossier_id = steps.dossier_id
)

select
    month,
    unit_code,
    field_code,
    office,
    {{ step_measures() }}
from steps_with_field
group by 1, 2, 3, 4
