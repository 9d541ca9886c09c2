{{ config(materialized='ephemeral') }}
-- Criterion 2.1 of the service index (service-index.md) dossier by dossier: every dossier of its
-- denominator in month m — those resolved in m (D_m) and those pending overdue as of the end of m — with
-- `reason` null when it counts in the numerator (early or on time, fewer than two supplement requests), else
-- why it does not: 'late', 'supplements' (on time, but two or more supplement requests) or
-- 'pending_overdue'. Read by fct_service_index_monthly (the counts) and fct_service_index_2_1_dossiers (the
-- dossiers that cost points). Ephemeral: it reads the materialised per-dossier tables, never the JSON.
--
-- The cut-off c of month m is 00:00 of the first day of m+1, or of the run's as-of date for the running
-- month. Resolutions count in m when before c too (so nothing of the as-of date itself counts), which keeps
-- D_m and the pending set of m disjoint: a dossier finished at 00:30 on the as-of date is still pending
-- tonight. Months after the running month have no rows (a date there is a VAL01 error).
with dossiers as (
    select
        dossiers.dossier_id,
        dossiers.unit_code,
        dossiers.procedure_code,
        dossiers.status,
        dossiers.is_received,
        dossiers.is_resolved,
        dossiers.received_at,
        dossiers.due_at,
        dossiers.finished_at,
        dossiers.timeliness,
        dossiers.resolved_month,
        index_attributes.supplement_count,
        index_attributes.refused_at
    from {{ ref('fct_dossier') }} as dossiers
    join {{ ref('int_dossiers__service_index') }} as index_attributes
        on index_attributes.dossier_id = dossiers.dossier_id
),

resolved as (
    select
        resolved_month as month,
        unit_code,
        dossier_id,
        procedure_code,
        due_at,
        finished_at,
        supplement_count,
        case
            when timeliness = 'late' then 'late'
            when supplement_count >= 2 then 'supplements'
        end as reason
    from dossiers
    where is_resolved and finished_at < {{ service_index_cut_off() }}
),

-- The only dossiers that can be pending overdue at some cut-off: received, not withdrawn or stopped, with a
-- due date, and neither finished nor refused before the day after it (c >= due day + 1, c <= finish).
candidates as (
    select *
    from dossiers
    where is_received
        and coalesce(status not in (7, 8), true)
        and due_at is not null
        and (finished_at is null or finished_at::date > due_at::date)
        and (refused_at is null or refused_at::date > due_at::date)
),

month_ends as (
    select
        month_start::date as month,
        least(month_start + interval '1 month', {{ service_index_cut_off() }}) as cut_off
    from generate_series(
        (select date_trunc('month', min(received_at)) from candidates),
        date_trunc('month', {{ service_index_cut_off() }}),
        interval '1 month'
    ) as month_start
),

pending as (
    select
        month_ends.month,
        candidates.unit_code,
        candidates.dossier_id,
        candidates.procedure_code,
        candidates.due_at,
        candidates.finished_at,
        candidates.supplement_count,
        'pending_overdue' as reason
    from candidates
    join month_ends
        on candidates.received_at < month_ends.cut_off
        and candidates.due_at::date < month_ends.cut_off::date
        and (candidates.finished_at is null or candidates.finished_at >= month_ends.cut_off)
        and (candidates.refused_at is null or candidates.refused_at >= month_ends.cut_off)
)

select month, unit_code, dossier_id, procedure_code, due_at, finished_at, supplement_count, reason from resolved
union all
select month, unit_code, dossier_id, procedure_code, due_at, finished_at, supplement_count, reason from pending
