{{
    config(
        materialized='incremental',
        unique_key=['dossier_id', 'rule_id'],
        incremental_strategy='append',
        on_schema_change='fail',
        post_hook=["{{ ensure_constraints(not_null=['dossier_id', 'rule_id', 'first_seen_at', 'is_open'],
            checks={'int_dq_issues_closed_was_seen': 'is_open or last_closed_seen_at is not null'}) }}"],
        pre_hook=["{% if is_incremental() %}delete from {{ this }} as t using (select distinct dossier_id, rule_id from {{ ref('stg_dq__issue_intervals') }} where changed_seq > (select coalesce(max(through_seq), -1) from {{ this }})) as c where c.dossier_id = t.dossier_id and c.rule_id = t.rule_id{% endif %}"],
        indexes=[{'columns': ['dossier_id', 'rule_id'], 'unique': True}]
    )
}}
-- One row per dossier × data-quality rule ever found failing, from its intervals (dq.issue_intervals): when it
-- was first found, whether it is open now and, once closed, when it was last found. Incremental: a night
-- reads again only the issues whose intervals its validation opened, closed or changed (changed_seq past the
-- table's through_seq), so its cost follows the night's changes, not the backlog; the pre-hook removes
-- those issues first (one whose only interval was voided is not put back). fct_dq_issue publishes it.
with intervals as (
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
    select
        i.dossier_id,
        i.rule_id,
        -- the unit of the interval found last
        (array_agg(i.unit_code order by i.opened_seq desc))[1] as unit_code,
        min(i.opened_at) as first_seen_at,
        max(i.last_seen_at) filter (where i.closed_seq is not null) as last_closed_seen_at,
        bool_or(i.closed_seq is null) as is_open
    from intervals as i
    inner join changed as c on c.dossier_id = i.dossier_id and c.rule_id = i.rule_id
    where not i.voided
    group by i.dossier_id, i.rule_id
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
