{{
    config(
        materialized='incremental',
        unique_key=['dossier_id', 'rule_id'],
        incremental_strategy='append',
        on_schema_change='fail',
        post_hook=["{{ ensure_constraints(not_null=['dossier_id', 'rule_id', 'first_seen_at', 'is_open'],
            checks={'int_dq_issues_closed_was_seen': 'is_open or last_closed_seen_at is not null'}) }}",
            "{{ ensure_index('int_dq_issues_through_seq', ['through_seq']) }}"],
        pre_hook=["{% if is_incremental() %}delete from {{ this }} as t using (select distinct dossier_id, rule_id from {{ ref('stg_dq__issue_intervals') }} where changed_seq > (select coalesce(max(through_seq), -1) from {{ this }})) as c where c.dossier_id = t.dossier_id and c.rule_id = t.rule_id{% endif %}"],
        indexes=[{'columns': ['dossier_id', 'rule_id'], 'unique': True}]
    )
}}
-- One row per dossier × data-quality rule ever found failing, from its intervals (dq.issue_intervals): when it
-- was first found, whether it is open now and, once closed, when it was last found. Incremental: a night
-- reads again only the issues whose intervals its validation opened, closed or changed (changed_seq past the
-- table's through_seq), so its cost follows the night's changes, not the backlog; the pre-hook removes
-- those issues first (one whose only interval was voided is not put back). fct_dq_issue publishes it.
-- The index on through_seq (a post-hook: a deployed table gets it too) answers max(through_seq), this
-- model's own look-back and every read of fct_dq_issue, from its last entry instead of a pass over every
-- issue of the history.
with intervals as not materialized (
    -- Not materialized, though read twice: the changed issues are found through the index on changed_seq and
    -- their intervals through the primary key, instead of a copy of every interval of the history.
    select * from {{ ref('stg_dq__issue_intervals') }}
),

validations as (
    select seq from {{ ref('stg_dq__validation_runs') }}
    where suite = 'dossiers' and status in ('passed', 'warnings') and batch_kind in ('full', 'changes')
),

changed as (
    select distinct dossier_id, rule_id from intervals
    {% if is_incremental() %}
    where changed_seq > (select coalesce(max(through_seq), -1) from {{ this }})
    {% endif %}
),

issues as (
    {%- if is_incremental() %}
    -- A night's few issues, each read through the primary key (dossier_id, rule_id, opened_seq): a grouped
    -- join would hash every interval of the history. An aggregate over no row gives one row of nulls: an
    -- issue whose only intervals were voided (first_seen_at null) is not put back.
    select c.dossier_id, c.rule_id, agg.unit_code, agg.first_seen_at, agg.last_closed_seen_at, agg.is_open
    from changed as c
    cross join lateral (
        select {{ dq_issue_measures() }}
        from intervals as i
        where i.dossier_id = c.dossier_id and i.rule_id = c.rule_id and not i.voided
    ) as agg
    where agg.first_seen_at is not null
    {%- else %}
    select
        i.dossier_id,
        i.rule_id,
        {{ dq_issue_measures() }}
    from intervals as i
    where not i.voided
    group by i.dossier_id, i.rule_id
    {%- endif %}
)

select
    dossier_id,
    rule_id,
    unit_code,
    first_seen_at,
    last_closed_seen_at,
    is_open,
    (select coalesce(max(seq), 0) from validations) as through_seq
from issues
