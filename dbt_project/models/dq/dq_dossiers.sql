{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=["{{ delete_new_tombstones(ref('stg_api__dossiers')) }}"],
        post_hook=["{{ ensure_index('dq_dossiers_run_id', ['run_id']) }}"],
        indexes=[{'columns': ['dossier_id'], 'unique': True}, {'columns': ['source_changed_at']},
                 {'columns': ['last_activity_at']}, {'columns': ['latest_recorded_at']}]
    )
}}
-- (The index on run_id: BAT03 reads the rows the runs of the batch landed through it, not every dossier.)
-- What the data-quality rules (expectations/, dq-rules.md) read, one narrow row per current, non-deleted
-- dossier: the dossier's JSON is decoded once, when it changes, so that each night's validation scans a
-- small table instead of every payload. It holds no rule: the rules are the expectation suite's SQL,
-- evaluated at the run's as-of time. Values of the wrong type or invalid timestamps are NULL here (they
-- count as missing for every rule, as VAL06 says), and the values as received are kept for the rules
-- that judge them (VAL04, VAL06). Incremental on raw.dossier_current.changed_at, like fct_dossier.

select
    dossiers.dossier_id,
    unit_code,
    procedure_code,
    status,
    status_raw,
    channel,
    channel_raw,
    applicant_type,
    applicant_type_raw,
    has_digitised_components,
    component_count,
    digitised_component_count,
    result_count,
    electronic_result_count,
    step_count,
    received_at,
    due_at,
    finished_at,
    returned_at,
    -- The latest step time of a dossier in processing (status 2 or 4; NULL for the others, whose steps no
    -- rule reads), decoded by stg_api__dossiers: this table, and so the batch checks (the gate), need no
    -- processing steps, and build beside int_dossiers__steps.
    latest_step_at,
    -- The times the time-dependent rules compare with the as-of time (INC05, VAL01), indexed: a night
    -- re-evaluates the dossiers whose rule can have flipped since the previous validation without reading
    -- the others (expectations/intervals.py).
    greatest(received_at, latest_step_at) as last_activity_at,
    greatest(received_at, finished_at, returned_at) as latest_recorded_at,
    -- VAL06: each timestamp field present (not null, not "") whose value is not a valid yyyyMMddHHmmss
    -- local time, as `Field=value`; NULL when every present timestamp is valid.
    nullif(concat_ws('; ',
        case when {{ is_present('submitted_at_raw') }} and submitted_at is null then 'NgayNopHoSo=' || submitted_at_raw end,
        case when {{ is_present('received_at_raw') }} and received_at is null then 'NgayTiepNhan=' || received_at_raw end,
        case when {{ is_present('due_at_raw') }} and due_at is null then 'NgayHenTra=' || due_at_raw end,
        case when {{ is_present('finished_at_raw') }} and finished_at is null then 'NgayKetThucXuLy=' || finished_at_raw end,
        case when {{ is_present('returned_at_raw') }} and returned_at is null then 'NgayTra=' || returned_at_raw end,
        case when {{ is_present('refused_at_raw') }} and refused_at is null then 'NgayTuChoi=' || refused_at_raw end
    ), '') as invalid_timestamps,
    absent_fields,
    run_id,
    updated_at,
    changed_at as source_changed_at
from {{ ref('stg_api__dossiers') }} as dossiers
where not dossiers.is_deleted
{% if is_incremental() %}
  and {{ changed_since_last_build('dossiers.changed_at') }}
{% endif %}
