-- Every dossier version's payload is a JSON object: the loader lands nothing else (an array, a string or a
-- number is quarantined with its reason, see ingestion/records.py), and the database now says so too. The
-- decoders rely on it: they read the payload once, with jsonb_to_record, instead of first asking its type,
-- which decompressed every payload one more time. A row that is not an object is refused, and the loader's
-- bisecting COPY quarantines it with the database's reason.
-- Added NOT VALID, then validated: a warehouse with history reads every payload once here, under a lock that
-- lets the marts be read meanwhile.
SET ROLE {writer};

ALTER TABLE raw.dossier_versions
    ADD CONSTRAINT dossier_versions_payload_is_object CHECK (jsonb_typeof(payload) = 'object') NOT VALID;
ALTER TABLE raw.dossier_versions VALIDATE CONSTRAINT dossier_versions_payload_is_object;

RESET ROLE;
