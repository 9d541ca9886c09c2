{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ step_mart_drop_stamp() }}", "{{ step_months_delete() }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code', 'office']) }}", "{{ step_record_build() }}"]
    )
}}
-- Processing steps (quá trình xử lý) per month × handling unit × office (metrics.md, "where dossiers are held
-- up"): steps, late steps and their share, median and 90th percentile of the durations in hours
-- (continuous percentiles, steps without a duration left out), from the narrow per-step table
-- int_dossiers__steps. Incremental by month: the pre-hook deletes the months whose steps changed since the
-- last build (the change log int_dossiers__steps' hooks write, macros/steps.sql), and those months are
-- recomputed whole, in the same transaction; the percentiles, the costly part (a sort per group), are only computed for
-- those months — usually the last few — while a full recomputation would grow with the history.
with steps as (
    select month, unit_code, office, is_late, duration_seconds
    from {{ ref('int_dossiers__steps') }}
    {% if is_incremental() %}
    {{ step_months_missing() }}
    {% endif %}
)

select
    month,
    unit_code,
    office,
    {{ step_measures() }}
from steps
group by 1, 2, 3
