{{
    config(
        materialized='incremental',
        unique_key='run_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false
    )
}}
-- Open data-quality issues per run date × handling unit × rule: the issues open after the latest dossier
-- validation of each run date (a rerun of a night replaces its figures) — the intervals open at that
-- validation (dq.issue_intervals), or the findings of a validation of a night earlier than the latest
-- validated (or stored before the intervals: dq.findings). Units with no open issue of a rule have no row.
-- Incremental: only run dates validated since the last build are counted, each in one grouped count over the
-- open intervals (an index scan of the backlog's (unit, rule) pairs). full_refresh=false keeps the history of
-- the nights whose findings dq.findings no longer holds.
with validations as (
    select
        validation_id,
        run_date,
        seq,
        coalesce(batch_kind, 'out of order') as batch_kind,
        finished_at,
        row_number() over (partition by run_date order by finished_at desc) as attempt
    from {{ ref('stg_dq__validation_runs') }}
    where suite = 'dossiers' and status in ('passed', 'warnings')
),

daily as (
    select * from validations
    where attempt = 1
    {% if is_incremental() %}
      and run_date in (
          select run_date from validations
          where finished_at > coalesce((select max(validated_through) from {{ this }}), '-infinity'::timestamptz)
      )
    {% endif %}
),

intervals as not materialized (
    -- Not materialized, though read twice: each branch reaches the table's indexes (the open intervals' partial
    -- index, closed_seq) instead of a copy of every interval.
    select * from {{ ref('stg_dq__issue_intervals') }}
    where not voided
),

open_issues as (
    -- open at the validation: opened by it or before, not closed by it or before
    select daily.run_date, daily.finished_at, i.unit_code, i.rule_id
    from daily
    inner join intervals as i on i.closed_seq is null and i.opened_seq <= daily.seq
    where daily.batch_kind in ('full', 'changes')
    union all
    select daily.run_date, daily.finished_at, i.unit_code, i.rule_id
    from daily
    -- closed after it: the upper bound (the newest validation) keeps nothing out, but lets the planner read
    -- the few such intervals through the index on closed_seq rather than every interval
    inner join intervals as i
        on i.closed_seq > daily.seq and i.closed_seq <= (select max(seq) from {{ ref('stg_dq__validation_runs') }})
        and i.opened_seq <= daily.seq
    where daily.batch_kind in ('full', 'changes')
    union all
    select daily.run_date, daily.finished_at, f.unit_code, f.rule_id
    from daily
    inner join {{ ref('stg_dq__findings') }} as f on f.validation_id = daily.validation_id
    where daily.batch_kind = 'out of order'
)

select
    run_date,
    unit_code,
    rule_id,
    count(*)::int as open_issues,
    finished_at as validated_through
from open_issues
group by run_date, unit_code, rule_id, finished_at
