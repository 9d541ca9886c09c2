{{
    config(
        materialized='incremental',
        unique_key='dossier_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=[
            "{{ service_index_log_replaced() }}",
            "{{ delete_new_tombstones(ref('stg_api__dossiers')) }}",
        ],
        post_hook=["{{ service_index_log_written() }}"],
        indexes=[
            {'columns': ['dossier_id'], 'unique': True},
            {'columns': ['source_changed_at']},
            {'columns': ['received_month']},
            {'columns': ['resolved_month']},
            {'columns': ['pending_until']},
        ]
    )
}}
-- What the service index (service-index.md) counts of each current, non-deleted dossier, one narrow row: the
-- month it was received in (R_m: criteria 3.3, 3.6, 4.2, 4.3), the month it was resolved in (D_m: 2.1, 4.1),
-- its flags, and the months at whose end it can be pending overdue (2.1). The procedure's flags are not
-- copied: the marts join the catalogue as it is tonight. Incremental on raw.dossier_current.changed_at like
-- fct_dossier; its hooks write every row it replaces and every row it writes to the change log the
-- service-index marts are built from (macros/service_index.sql).
--
-- It reads the classified dossiers (the view fct_dossier is built from, with the service index's own
-- attributes beside the marts' classification), not fct_dossier joined to a table of those attributes: one
-- pass over the staged dossiers instead of two tables written and joined, and it need not wait for
-- fct_dossier, so the two build side by side.
--
-- pending_from .. pending_until: a dossier received, not withdrawn or stopped, with a due date, can be pending
-- overdue at the cut-off c of month m only when it was received before c (m >= its received month), its due
-- day is before c's day (m >= the due day's month) and it was neither finished nor refused before c (m <= the
-- month of the earlier of the two; 'infinity' while neither happened). The marts apply the exact conditions
-- month by month inside that range, the running month's cut-off (00:00 of the as-of date) included; null
-- when the range is empty.
with dossiers as (
    select
        dossiers.dossier_id,
        dossiers.unit_code,
        dossiers.procedure_code,
        dossiers.received_month,
        dossiers.received_at,
        dossiers.resolved_month,
        dossiers.finished_at,
        dossiers.is_resolved,
        dossiers.is_online,
        dossiers.intake_digitised,
        dossiers.is_paid_online,
        dossiers.has_reused_component,
        dossiers.has_electronic_result,
        dossiers.timeliness,
        dossiers.supplement_count,
        dossiers.due_at,
        dossiers.refused_at,
        case
            when dossiers.is_received and coalesce(dossiers.status not in (7, 8), true) and dossiers.due_at is not null
                then greatest(date_trunc('month', dossiers.received_at), date_trunc('month', dossiers.due_at::date))::date
        end as range_from,
        least(
            coalesce(date_trunc('month', dossiers.finished_at)::date, 'infinity'::date),
            coalesce(date_trunc('month', dossiers.refused_at)::date, 'infinity'::date)
        ) as range_until,
        dossiers.changed_at as source_changed_at
    from {{ ref('int_dossiers__classified') }} as dossiers
    where not dossiers.is_deleted
    {% if is_incremental() %}
      and {{ changed_since_last_build('dossiers.changed_at') }}
    {% endif %}
)

select
    dossier_id,
    unit_code,
    procedure_code,
    received_month,
    received_at,
    resolved_month,
    finished_at,
    is_resolved,
    is_online,
    intake_digitised,
    is_paid_online,
    has_reused_component,
    has_electronic_result,
    timeliness,
    supplement_count,
    due_at,
    refused_at,
    case when range_from <= range_until then range_from end as pending_from,
    case when range_from <= range_until then range_until end as pending_until,
    source_changed_at
from dossiers
