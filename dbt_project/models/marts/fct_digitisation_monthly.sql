{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["{{ dossier_counts_delete(digitisation_parts()) }}"],
        post_hook=["{{ ensure_unique_index(['month', 'unit_code']) }}", "{{ dossier_counts_record_build() }}"]
    )
}}
-- depends_on: {{ ref('int_dossiers__classified') }}
-- Intake digitisation (paper dossiers, by receipt month) and result digitisation (resolved dossiers of
-- paper-result procedures, by resolution month) per month × handling unit. Kept from fct_dossier's change log
-- (macros/dossier_counts.sql): a night rewrites only the groups of the dossiers it changed. What it counts:
-- digitisation_parts().
with counts as (
    select
        month,
        unit_code,
        paper_received::integer as paper_received,
        intake_digitised::integer as intake_digitised,
        paper_result_resolved::integer as paper_result_resolved,
        result_digitised::integer as result_digitised
    from ({{ dossier_counts(digitisation_parts()) }}) as counts
    where paper_received > 0 or paper_result_resolved > 0
)

select
    month,
    unit_code,
    paper_received,
    intake_digitised,
    intake_digitised::numeric / nullif(paper_received, 0) as intake_digitisation_rate,
    paper_result_resolved,
    result_digitised,
    result_digitised::numeric / nullif(paper_result_resolved, 0) as result_digitisation_rate
from counts
