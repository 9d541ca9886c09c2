-- Landing tables of the procedure-system API and the pipeline's audit trail.
-- Objects are created as the writer role so the pipeline owns (and can maintain) them.
SET ROLE {writer};

-- Every version of every dossier record ever received, with its full original payload.
-- A version is (MaHoSo, NgayCapNhat, content hash): re-fetching it adds nothing.
CREATE TABLE raw.dossier_versions (
    dossier_id   text        NOT NULL,  -- MaHoSo
    updated_at   timestamp   NOT NULL,  -- NgayCapNhat, local time (Asia/Ho_Chi_Minh)
    content_hash bytea       NOT NULL,  -- BLAKE2b-128 of the record's canonical JSON (sorted keys)
    is_deleted   boolean     NOT NULL,  -- DaXoa (tombstone)
    payload      jsonb       COMPRESSION lz4 NOT NULL,  -- the record as received, unknown fields included
    run_id       text        NOT NULL,  -- the pipeline run that first fetched this version
    fetched_at   timestamptz NOT NULL DEFAULT now(),
    -- Time first: the loader reads a window's versions by range, and new versions arrive in time order,
    -- so the index grows at its right edge instead of everywhere.
    PRIMARY KEY (updated_at, dossier_id, content_hash)
);
COMMENT ON TABLE raw.dossier_versions IS 'Every version of every dossier (GET /dossiers) as received; restricted: holds personal data';

-- The latest version of each dossier (tombstones included, flagged): a narrow pointer table, so the
-- nightly load writes each payload once. For the same NgayCapNhat with other content, the later load wins.
CREATE TABLE raw.dossier_current (
    dossier_id   text        PRIMARY KEY,
    updated_at   timestamp   NOT NULL,
    content_hash bytea       NOT NULL,
    is_deleted   boolean     NOT NULL,
    run_id       text        NOT NULL,  -- the run that made this the current version
    changed_at   timestamptz NOT NULL   -- when this row last changed: the cursor of incremental consumers
);
CREATE INDEX dossier_current_changed_at ON raw.dossier_current (changed_at);
COMMENT ON TABLE raw.dossier_current IS 'Latest version per dossier (by NgayCapNhat, then load order)';

CREATE VIEW raw.dossiers_current AS
SELECT c.dossier_id, c.updated_at, c.is_deleted, c.changed_at, c.run_id, v.fetched_at, v.payload
FROM raw.dossier_current c
JOIN raw.dossier_versions v USING (dossier_id, updated_at, content_hash);
COMMENT ON VIEW raw.dossiers_current IS 'Current state of every dossier with its payload (tombstones included)';

-- Reference data (units, procedures, delegations), refreshed in full every night. A changed record
-- closes its previous version (valid_to) instead of overwriting it.
CREATE TABLE raw.reference_versions (
    source         text        NOT NULL,  -- units | procedures | delegations
    record_key     text        NOT NULL,  -- MaDonVi | MaTTHC | MaUyQuyen
    content_hash   bytea       NOT NULL,
    payload        jsonb       COMPRESSION lz4 NOT NULL,
    first_run_id   text        NOT NULL,
    valid_from     timestamptz NOT NULL,  -- first fetched
    valid_to       timestamptz,           -- replaced, or no longer served; null while current
    PRIMARY KEY (source, record_key, valid_from)
);
CREATE UNIQUE INDEX reference_versions_current ON raw.reference_versions (source, record_key) WHERE valid_to IS NULL;

CREATE VIEW raw.units AS
SELECT record_key AS unit_code, payload, valid_from, first_run_id FROM raw.reference_versions
WHERE source = 'units' AND valid_to IS NULL;
CREATE VIEW raw.procedures AS
SELECT record_key AS procedure_code, payload, valid_from, first_run_id FROM raw.reference_versions
WHERE source = 'procedures' AND valid_to IS NULL;
CREATE VIEW raw.delegations AS
SELECT record_key AS delegation_id, payload, valid_from, first_run_id FROM raw.reference_versions
WHERE source = 'delegations' AND valid_to IS NULL;

-- Records that could not be landed, with the reason and the text as received.
CREATE TABLE raw.quarantine (
    quarantine_id  bigserial   PRIMARY KEY,
    source         text        NOT NULL,
    reason         text        NOT NULL,
    raw_text       text        NOT NULL,
    raw_hash       bytea       NOT NULL,
    first_run_id   text        NOT NULL,
    last_run_id    text        NOT NULL,
    window_start   timestamp,
    window_end     timestamp,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    times_seen     integer     NOT NULL DEFAULT 1,
    UNIQUE (source, raw_hash)
);

-- One row per source × partition × window of every run: the reconciliation of what the API reported
-- with what was landed.
CREATE TABLE audit.ingest_runs (
    run_id        text        NOT NULL,
    source        text        NOT NULL,
    partition     text        NOT NULL,  -- '*' (no partition) or a don_vi
    window_start  timestamp   NOT NULL,
    window_end    timestamp   NOT NULL,
    pages         integer     NOT NULL,
    reported      integer     NOT NULL,  -- the API's total at the first page
    recount       integer,               -- a fresh total when records moved while paging
    fetched       integer     NOT NULL,  -- records received, repeats included
    landed        integer     NOT NULL,  -- distinct records landed (keys)
    new_versions  integer     NOT NULL,  -- versions not seen before
    duplicates    integer     NOT NULL,  -- repeats of a key within the window
    quarantined   integer     NOT NULL,
    retries       integer     NOT NULL,
    seconds       numeric     NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    PRIMARY KEY (run_id, source, partition, window_start)
);
COMMENT ON TABLE audit.ingest_runs IS 'Per window: fetched = landed + duplicates + quarantined, and reported (or recount) = landed + quarantined';

-- How far each source (and partition) has been loaded; committed with the data it covers.
CREATE TABLE audit.watermarks (
    source        text        NOT NULL,
    partition     text        NOT NULL,
    watermark     timestamp   NOT NULL,  -- exclusive end of the last committed window (local time)
    run_id        text        NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, partition)
);

-- One row per pipeline run (nightly DAG run or make run).
CREATE TABLE audit.pipeline_runs (
    run_id          text        PRIMARY KEY,
    run_date        date        NOT NULL,
    interval_start  timestamp,
    interval_end    timestamp   NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    status          text        NOT NULL DEFAULT 'running',
    summary         jsonb
);

RESET ROLE;
