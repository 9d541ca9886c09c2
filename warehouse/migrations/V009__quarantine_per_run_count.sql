-- How often a quarantined text came in its last run (times_seen counts every run): the digest reports what
-- the night itself quarantined, so a bad record the source keeps sending is not counted again with every
-- earlier night's occurrences.
SET ROLE {writer};

ALTER TABLE raw.quarantine ADD COLUMN times_seen_last_run integer NOT NULL DEFAULT 0;
UPDATE raw.quarantine SET times_seen_last_run = times_seen WHERE first_run_id = last_run_id;
COMMENT ON COLUMN raw.quarantine.times_seen_last_run IS 'occurrences in run last_run_id (times_seen: in every run)';

RESET ROLE;
