-- What a night keeps when the source sends what the warehouse cannot store, a page no parser can read, a
-- listing that breaks the contract or a reference list that suddenly lost its records; and the lease that
-- keeps two pipeline runs from writing at the same time. Nothing received is dropped: every record, page
-- and list the night could not use is kept here, with the reason, until someone acts on it.
SET ROLE {writer};

-- A quarantined record: its bytes exactly as received (the text column cannot hold every byte), the key
-- and NgayCapNhat when they could be read, and what became of it: 'rejected' (not landed; the dossier's
-- previous version stays current) or 'landed as a tombstone' (a deletion whose other fields could not be
-- stored: the minimal tombstone landed, this row keeps what was sent). times_seen counts every occurrence.
ALTER TABLE raw.quarantine
    ADD COLUMN raw_bytes   bytea,
    ADD COLUMN record_key  text,
    ADD COLUMN updated_at  timestamp,
    ADD COLUMN disposition text NOT NULL DEFAULT 'rejected'
        CHECK (disposition IN ('rejected', 'landed as a tombstone', 'list refused'));
CREATE INDEX quarantine_record_key ON raw.quarantine (source, left(record_key, 200)) WHERE record_key IS NOT NULL;

-- A page the client gave up on (after its retry budget, or at once for a broken listing): the request and
-- the last bytes received, kept whole. The window it belongs to is open in audit.window_issues.
CREATE TABLE raw.quarantined_pages (
    page_id       bigserial   PRIMARY KEY,
    run_id        text        NOT NULL,
    source        text        NOT NULL,
    partition     text        NOT NULL,
    window_start  timestamp,
    window_end    timestamp,
    request       text        NOT NULL,  -- GET <url>?<params> (the token is a header, never kept)
    page_number   integer     NOT NULL,  -- 1-based, within the listing
    http_status   integer,
    attempts      integer     NOT NULL,
    reason        text        NOT NULL,
    body          bytea,                 -- the last body received, when there was one
    body_bytes    integer,
    received_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE raw.quarantined_pages IS 'Pages the client could not read or use, kept whole with their request';

-- Per window: did it complete? 'complete'; 'incomplete' (a page could not be had or the listing broke the
-- contract: what came before it is landed, the rest is re-pulled); 'mismatch' (every page read, but the
-- count does not reconcile: the critical check BAT04 stops the marts); 'refused' (a reference list that
-- came back empty or lost too many records: yesterday's versions stay current).
ALTER TABLE audit.ingest_runs
    ADD COLUMN status text NOT NULL DEFAULT 'complete'
        CHECK (status IN ('complete', 'incomplete', 'mismatch', 'refused')),
    ADD COLUMN detail text,
    ADD COLUMN quarantined_distinct integer NOT NULL DEFAULT 0;  -- distinct texts among the quarantined
COMMENT ON COLUMN audit.ingest_runs.quarantined IS 'records not landed, every occurrence counted (identical bad texts included)';

-- Windows to pull again: opened by an incomplete or mismatched window, re-pulled first by every night (and
-- by `python -m ingestion repull`) until a pull of the whole range completes and reconciles.
CREATE TABLE audit.window_issues (
    issue_id        bigserial   PRIMARY KEY,
    source          text        NOT NULL,
    partition       text        NOT NULL,
    window_start    timestamp   NOT NULL,
    window_end      timestamp   NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('incomplete', 'mismatch')),
    reason          text        NOT NULL,
    request         text,
    page_id         bigint      REFERENCES raw.quarantined_pages,
    first_run_id    text        NOT NULL,
    last_run_id     text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 1,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_run_id text
);
CREATE UNIQUE INDEX window_issues_open ON audit.window_issues (source, partition, window_start, window_end)
    WHERE resolved_at IS NULL;
COMMENT ON TABLE audit.window_issues IS 'Windows whose pull did not complete or reconcile, until a later pull covers them';

-- One writer at a time: the pipeline run holding the lease may write; another waits, then fails naming it.
CREATE TABLE audit.run_lease (
    name         text        PRIMARY KEY,  -- 'warehouse'
    run_id       text        NOT NULL,
    holder       text        NOT NULL,     -- host, pid and command of the process that took it
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL      -- a run killed without releasing it frees it by then
);
COMMENT ON TABLE audit.run_lease IS 'The pipeline run allowed to write the warehouse now';

-- Batches stopped by a critical data-quality check that the data team reviewed and accepted
-- (`python -m expectations release`): the next night's batch checks start after them.
CREATE TABLE dq.batch_releases (
    run_id       text        PRIMARY KEY,
    released_at  timestamptz NOT NULL DEFAULT now(),
    released_by  text        NOT NULL,
    note         text
);
COMMENT ON TABLE dq.batch_releases IS 'Stopped batches accepted by the data team';

RESET ROLE;
