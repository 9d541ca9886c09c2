{{ config(tags=['history_scan']) }}
-- The staged current state is the landed one, every dossier both ways (the weekly half of the critical check
-- BAT05: a night compares the dossiers changed since its last good batch, and everything only when the
-- counts differ). One row per dossier landed and not staged, or staged and not a current dossier.
select landed.dossier_id, 'landed, not staged' as problem
from {{ source('api', 'dossier_current') }} as landed
where not landed.is_deleted
    and not exists (select 1 from {{ ref('dq_dossiers') }} as staged where staged.dossier_id = landed.dossier_id)
union all
select staged.dossier_id, 'staged, not a current dossier'
from {{ ref('dq_dossiers') }} as staged
where not exists (
    select 1 from {{ source('api', 'dossier_current') }} as landed
    where landed.dossier_id = staged.dossier_id and not landed.is_deleted
)
