-- The narrow status record of every dossier, the input of the status-history snapshot.
select
    dossier_id,
    status,
    unit_code,
    is_deleted,
    updated_at
from {{ ref('stg_api__dossiers') }}
