{{
    config(
        materialized='incremental',
        unique_key=['dossier_id', 'rule_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false
    )
}}
-- One row per dossier × data-quality rule ever found failing (dq-rules.md): when it was first and last
-- found, and whether the latest dossier validation still finds it. "Seen at" times are the validations'
-- as-of times (the end of each night's data interval), so they line up with the run dates.
--
-- Incremental over the validations stored since the last build (any number of them, so a night whose
-- marts were not rebuilt still counts): their findings extend first/last seen, and every issue is open
-- exactly when the latest validation (by as-of time) finds it. full_refresh=false: the table is the
-- history of the issues, which outlives the per-run findings kept in dq.findings.
with validations as (
    select validation_id, as_of, finished_at
    from {{ ref('stg_dq__validation_runs') }}
    where suite = 'dossiers' and status in ('passed', 'warnings')
),

latest as (
    select validation_id from validations order by as_of desc, finished_at desc limit 1
),

new_validations as (
    select * from validations
    {% if is_incremental() %}
    where finished_at > coalesce((select max(validated_through) from {{ this }}), '-infinity'::timestamptz)
    {% endif %}
),

new_findings as (
    select
        f.record_key as dossier_id,
        f.rule_id,
        min(v.as_of) as first_seen_at,
        max(v.as_of) as last_seen_at,
        -- the unit of the latest validation that found it
        (array_agg(f.unit_code order by v.as_of desc, v.finished_at desc))[1] as unit_code
    from {{ ref('stg_dq__findings') }} as f
    inner join new_validations as v on v.validation_id = f.validation_id
    group by f.record_key, f.rule_id
),

open_now as (
    select f.record_key as dossier_id, f.rule_id
    from {{ ref('stg_dq__findings') }} as f
    inner join latest on latest.validation_id = f.validation_id
),

candidates as (
    select dossier_id, rule_id from new_findings
    {% if is_incremental() %}
    union
    select dossier_id, rule_id from {{ this }} where is_open
    {% endif %}
)

select
    c.dossier_id,
    c.rule_id,
    {% if is_incremental() %}
    coalesce(n.unit_code, e.unit_code) as unit_code,
    least(n.first_seen_at, e.first_seen_at) as first_seen_at,
    greatest(n.last_seen_at, e.last_seen_at) as last_seen_at,
    {% else %}
    n.unit_code,
    n.first_seen_at,
    n.last_seen_at,
    {% endif %}
    o.dossier_id is not null as is_open,
    (select max(finished_at) from new_validations) as validated_through
from candidates as c
left join new_findings as n on n.dossier_id = c.dossier_id and n.rule_id = c.rule_id
{% if is_incremental() %}
left join {{ this }} as e on e.dossier_id = c.dossier_id and e.rule_id = c.rule_id
{% endif %}
left join open_now as o on o.dossier_id = c.dossier_id and o.rule_id = c.rule_id
where exists (select 1 from new_validations)
