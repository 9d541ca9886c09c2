-- The key of applicant_key, the pseudonymous applicant key of staging.stg_api__dossiers: an HMAC-SHA256 of the
-- applicant's identity numbers. Only its inner and outer padded keys are kept (K xor ipad, K xor opad, 64 bytes
-- each), so the view computes sha256(outer_pad || sha256(inner_pad || message)) with PostgreSQL's built-in
-- sha256(). The key lives in a table of `raw`, which only the writer can read, and never in SQL text: view
-- definitions (pg_views), function bodies and comments are readable by every role, bi_reader included.
-- warehouse/bootstrap.py fills the one row at every run (APPLICANT_HASH_KEY, else a key generated once).
SET ROLE {writer};

CREATE TABLE raw.applicant_hash_key (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),  -- one key at a time
    inner_pad   bytea       NOT NULL CHECK (length(inner_pad) = 64),    -- K xor 0x36 repeated (SHA-256 block)
    outer_pad   bytea       NOT NULL CHECK (length(outer_pad) = 64),    -- K xor 0x5c repeated
    origin      text        NOT NULL CHECK (origin IN ('generated', 'environment')),
    set_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE raw.applicant_hash_key IS 'HMAC-SHA256 key of staging.stg_api__dossiers.applicant_key, as padded keys; secret: changing it changes every applicant_key';

-- New tables grant nothing to PUBLIC; said explicitly because this one must stay the writer's alone.
REVOKE ALL ON raw.applicant_hash_key FROM PUBLIC;

RESET ROLE;
