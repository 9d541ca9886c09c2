{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} where as_of_date = {{ as_of_date() }}{% endif %}",
        post_hook="{{ ensure_unique_index(['as_of_date', 'unit_code']) }}"
    )
}}
-- Dossiers in processing and those past their due date, per unit, as of the run's date. One row set per
-- run date, kept as history (a rerun of the same date replaces its set); the unique index on (as_of_date,
-- unit_code) makes a second set for the same date fail the build instead of doubling the figures. Every
-- dossier in processing is read each night, changed or not — whether it is past its due date moves with the
-- run's date —, through fct_dossier's partial index on the dossiers in processing (unit_code, due_at): the
-- open workload, not the history.
select
    {{ as_of_date() }} as as_of_date,
    unit_code,
    count(*)::integer as in_processing,
    count(*) filter (where due_at::date < {{ as_of_date() }})::integer as pending_overdue
from {{ ref('fct_dossier') }}
where is_in_processing
group by unit_code
