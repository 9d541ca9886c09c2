{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=["{{ ensure_constraints(
            primary_key=['dossier_id'],
            not_null=['is_received', 'is_resolved', 'is_online', 'is_paper_intake', 'intake_digitised', 'updated_at',
                      'is_in_processing', 'source_changed_at'],
            checks={'fct_dossier_timeliness_values': \"timeliness in ('early', 'on_time', 'late')\"}) }}",
                   "{{ dossier_log_install() }}",
                   "{{ ensure_index('fct_dossier_late_resolved_month', ['resolved_month'], \"timeliness = 'late'\") }}",
                   "{{ ensure_index('fct_dossier_in_processing', ['unit_code', 'due_at'], 'is_in_processing') }}",
                   "{{ ensure_index('fct_dossier_received_procedure', ['procedure_code'], 'is_received') }}"],
        pre_hook=["{{ dossier_log_trim() }}", "{{ delete_new_tombstones(ref('int_dossiers__classified')) }}"],
        indexes=[{'columns': ['source_changed_at']}]
    )
}}
-- One row per current, non-deleted dossier. Incremental: each night only dossiers whose landed state
-- changed since the last build are rebuilt (deleted ones are removed by the pre-hook). The cursor is
-- raw.dossier_current.changed_at, stamped when a window's load commits; the look-back (var
-- incremental_lookback_minutes, 15) covers a load committing while dbt reads — which the nightly DAG
-- never does (dbt runs after the loads), so it costs nothing at night. Every row it loses or gains is written to
-- a change log by triggers its post-hook installs, from which the monthly count marts are kept
-- (macros/dossier_counts.sql).

select
    dossier_id,
    unit_code,
    procedure_code,
    field_code,
    channel,
    status,
    submitted_at,
    received_at,
    due_at,
    finished_at,
    returned_at,
    is_received,
    is_resolved,
    timeliness,
    is_online,
    is_paper_intake,
    intake_digitised,
    result_digitised,
    updated_at,
    is_in_processing,
    received_month,
    resolved_month,
    changed_at as source_changed_at
from {{ ref('int_dossiers__classified') }}
where not is_deleted
{% if is_incremental() %}
  and {{ changed_since_last_build('changed_at') }}
{% endif %}
