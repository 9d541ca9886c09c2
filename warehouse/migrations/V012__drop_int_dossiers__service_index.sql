-- The service index's per-dossier attributes (supplement requests, refusal, online payment, reused and
-- electronic documents) are no longer a table of their own: int_service_index__contributions reads them from
-- the classified dossiers, in the same pass as the rest. The table dbt built for them on warehouses deployed
-- before is dropped, so no stale copy of 3M rows is left behind (a new warehouse never had it). The
-- intermediate schema is dbt's; on a warehouse dbt never ran, there is nothing to drop.
SET ROLE {writer};

DROP TABLE IF EXISTS intermediate.int_dossiers__service_index;

RESET ROLE;
