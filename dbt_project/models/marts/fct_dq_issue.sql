{{ config(materialized='view') }}
-- One row per dossier × data-quality rule ever found failing (dq-rules.md): when it was first and last found,
-- and whether the latest dossier validation still finds it. "Seen at" times are the validations' as-of times
-- (the end of each night's data interval), so they line up with the run dates. A view over int_dq_issues
-- (incremental over the issues' intervals): an open issue was last seen by the latest validation that table
-- has read, so a night writes nothing for the issues that did not change. The CTE is not materialized, though
-- read twice: max(through_seq) comes from its index, and a reader's filter (is_open, a unit) reaches the table.
with issues as not materialized (
    select * from {{ ref('int_dq_issues') }}
),

validations as (
    select seq, as_of from {{ ref('stg_dq__validation_runs') }}
    where suite = 'dossiers' and status in ('passed', 'warnings')
),

latest as (
    select v.as_of from validations as v
    where v.seq = (select max(through_seq) from issues)
)

select
    issues.dossier_id,
    issues.rule_id,
    issues.unit_code,
    issues.first_seen_at,
    case when issues.is_open then latest.as_of else issues.last_closed_seen_at end as last_seen_at,
    issues.is_open
from issues
left join latest on true
