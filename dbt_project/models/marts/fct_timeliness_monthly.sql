{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ dossier_counts_delete(timeliness_parts()) }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code', 'field_code']) }}",
                   "{{ dossier_counts_record_build() }}"]
    )
}}
-- depends_on: {{ ref('int_dossiers__classified') }}
-- Timeliness of resolved dossiers per resolution month × handling unit × field. Kept from fct_dossier's change
-- log (macros/dossier_counts.sql): a night rewrites only the groups of the dossiers it changed. What it counts:
-- timeliness_parts().
with counts as (
    select
        month,
        unit_code,
        field_code,
        resolved::integer as resolved,
        early::integer as early,
        on_time::integer as on_time,
        late::integer as late
    from ({{ dossier_counts(timeliness_parts()) }}) as counts
    where resolved > 0
)

select
    month,
    unit_code,
    field_code,
    resolved,
    early,
    on_time,
    late,
    (early + on_time)::numeric / resolved as on_time_rate,
    late::numeric / resolved as overdue_rate
from counts
