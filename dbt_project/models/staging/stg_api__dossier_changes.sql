-- One row per landed dossier (tombstones included): its key, when its landed state last changed and whether
-- it is deleted — no payload read. The incremental models that keep several rows per dossier find here the
-- dossiers changed since their last build (raw.dossier_current's index on changed_at), without waiting for
-- stg_api__dossiers to be built: int_dossiers__steps decodes its steps beside it.
select
    dossier_id,
    changed_at,
    is_deleted
from {{ source('api', 'dossier_current') }}
