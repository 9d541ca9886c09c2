{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=[
            "{{ full_build_work_mem() }}",
            "{{ steps_add_field_code() }}",
            "{{ step_log_replaced() }}",
            "{{ step_delete_changed() }}",
        ],
        post_hook=["{{ step_log_written() }}", "{{ ensure_constraints(
            not_null=['dossier_id', 'position', 'office', 'processed_at', 'month', 'is_late', 'is_first_late',
                      'source_changed_at'],
            checks={'int_dossiers__steps_duration_not_negative': 'duration_seconds >= 0',
                    'int_dossiers__steps_first_late_is_late': 'not is_first_late or is_late'},
            unique_where={'int_dossiers__steps_first_late': [['dossier_id'], 'is_first_late']}) }}"],
        indexes=[{'columns': ['dossier_id', 'position'], 'unique': True}, {'columns': ['source_changed_at']},
                 {'columns': ['month']}]
    )
}}
-- The processing steps of metrics.md ("where dossiers are held up"), one narrow row per step: a QuaTrinhXuLy
-- item of a current, non-deleted dossier with a valid ThoiDiemXuLy, with its office, month, duration and
-- lateness, and whether it is its dossier's first late step. Decoded from the JSON once per new version of
-- a dossier: incremental on raw.dossier_current.changed_at like fct_dossier, a changed dossier's steps
-- replaced whole (a pre-hook removes every step of the dossiers changed since the last build — deleted, left
-- with no step, or rebuilt by the body); its hooks log the months of the steps replaced and written
-- (macros/steps.sql), from which fct_step_monthly and fct_step_monthly_by_field are rebuilt month by month.
-- fct_late_origin_monthly reads it too. It reads the landed dossiers only, never stg_api__dossiers: the
-- staging stage builds the two side by side, each decoding its part of the JSON on a core of its own.
-- its hooks read the changed dossiers' keys:
-- depends_on: {{ ref('stg_api__dossier_changes') }}
with steps as (
    select dossier_id, unit_code, field_code, position, step_no, processed_at, department, started_at, legal_end_at,
        changed_at
    from {{ ref('stg_api__dossier_steps') }}
    where processed_at is not null
    {% if is_incremental() %}
      and {{ changed_since_last_build('changed_at', steps_last_build()) }}
    {% endif %}
),

timed as (
    select
        dossier_id,
        position,
        step_no,
        unit_code,
        -- PhongBanXuLy missing, "" or not a string: the step is counted, under this name.
        coalesce(department, '(không ghi)') as office,
        processed_at,
        started_at,
        legal_end_at,
        date_trunc('month', processed_at)::date as month,
        -- Null when the start is unknown or after the processing time (metrics.md). Whole seconds, exact; the
        -- marts give hours.
        case
            when started_at <= processed_at then extract(epoch from processed_at - started_at)::bigint
        end as duration_seconds,
        -- Timestamps, not dates: a second past the step's legal end is late.
        coalesce(processed_at > legal_end_at, false) as is_late,
        changed_at as source_changed_at,
        -- the dossier's own field (MaLinhVuc, as fct_dossier has it), for the marts by field
        field_code
    from steps
)

select
    dossier_id,
    position,
    step_no,
    unit_code,
    office,
    processed_at,
    started_at,
    legal_end_at,
    month,
    duration_seconds,
    is_late,
    -- Where a late dossier's delay began: its late step with the lowest BuocXuLy (a step without a number
    -- after the numbered ones), ties by position in the list.
    is_late and row_number() over (
        partition by dossier_id order by is_late desc, step_no asc nulls last, position asc
    ) = 1 as is_first_late,
    source_changed_at,
    field_code
from timed
