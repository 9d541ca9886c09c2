-- The narrow status record of the dossiers whose landed state changed since the status-history snapshot last
-- saw one (its newest changed_at, less the incremental look-back), tombstones included: the input of
-- snap_dossier_status, which then compares a night's changes, not every dossier. A deletion arrives as a
-- tombstone (is_deleted), never as a missing row, so the snapshot needs no full source to see it. Before the
-- first snapshot, every dossier.
{%- set snapshot = adapter.get_relation(database=target.database, schema='intermediate',
                                        identifier='snap_dossier_status') if execute else none %}
select
    dossier_id,
    status,
    unit_code,
    is_deleted,
    updated_at,
    changed_at
from {{ ref('stg_api__dossiers') }}
{% if snapshot is not none %}
where changed_at > coalesce((select max(changed_at) from {{ snapshot }}), '-infinity'::timestamptz)
                   - interval '{{ lookback_minutes() }} minutes'
{% endif %}
