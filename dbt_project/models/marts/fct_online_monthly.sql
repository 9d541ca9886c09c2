{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ dossier_counts_delete(online_parts()) }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code']) }}", "{{ dossier_counts_record_build() }}"]
    )
}}
-- depends_on: {{ ref('int_dossiers__classified') }}
-- Online submission per receipt month × handling unit. Kept from fct_dossier's change log
-- (macros/dossier_counts.sql): a night rewrites only the groups of the dossiers it changed. What it counts:
-- online_parts().
with counts as (
    select
        month,
        unit_code,
        received::integer as received,
        online::integer as online
    from ({{ dossier_counts(online_parts()) }}) as counts
    where received > 0
)

select
    month,
    unit_code,
    received,
    online,
    online::numeric / received as online_rate
from counts
