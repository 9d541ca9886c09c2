-- Data-quality issues of the dossiers kept as intervals: one row written when a dossier starts failing a rule,
-- one update when it stops (or the dossier is deleted). A night evaluates the rules only on the dossiers that
-- changed, or whose time-dependent rules (INC05, VAL01) can have flipped, so its cost follows the day's
-- changes and not the backlog of open issues (expectations/intervals.py). dq.findings keeps the batch and
-- workbook checks' findings per run.
SET ROLE {writer};

-- Validations in the order they were stored: the order intervals open and close in.
CREATE SEQUENCE dq.validation_seq;
ALTER TABLE dq.validation_runs
    ADD COLUMN seq             bigint NOT NULL DEFAULT nextval('dq.validation_seq'),
    ADD COLUMN batch_kind      text,         -- dossiers: full | changes | out of order (see intervals.py)
    ADD COLUMN changed_through timestamptz,  -- dossiers: the newest landing (changed_at) the validation saw
    ADD COLUMN reference_hash  text;         -- dossiers: the reference data the rules joined (units, catalogue)
ALTER SEQUENCE dq.validation_seq OWNED BY dq.validation_runs.seq;
CREATE INDEX validation_runs_seq ON dq.validation_runs (suite, seq);

CREATE TABLE dq.issue_intervals (
    dossier_id         text        NOT NULL,  -- MaHoSo
    rule_id            text        NOT NULL,  -- INC01 ... VAL07
    unit_code          text,                  -- DonViXuLy when last found failing
    observed_value     text,                  -- what broke the rule, when last found failing
    opened_seq         bigint      NOT NULL,  -- the validation that found it first (dq.validation_runs.seq)
    opened_validation  text        NOT NULL,
    opened_at          timestamp   NOT NULL,  -- that validation's as-of time
    closed_seq         bigint,                -- the first validation that no longer found it; NULL while open
    closed_validation  text,
    closed_at          timestamp,
    last_seen_at       timestamp,             -- closed: the as-of time of the last validation that found it
    changed_seq        bigint      NOT NULL,  -- the last validation (or undoing of one) that changed the row
    voided             boolean     NOT NULL DEFAULT false,  -- opened by a validation attempt that was undone
    PRIMARY KEY (dossier_id, rule_id, opened_seq)
);
CREATE UNIQUE INDEX issue_intervals_open ON dq.issue_intervals (dossier_id, rule_id)
    WHERE closed_seq IS NULL AND NOT voided;
CREATE INDEX issue_intervals_open_unit ON dq.issue_intervals (unit_code, rule_id, opened_seq)
    WHERE closed_seq IS NULL AND NOT voided;
CREATE INDEX issue_intervals_opened ON dq.issue_intervals (opened_seq);
CREATE INDEX issue_intervals_closed ON dq.issue_intervals (closed_seq);
CREATE INDEX issue_intervals_changed ON dq.issue_intervals (changed_seq);
COMMENT ON TABLE dq.issue_intervals IS 'Each dossier x rule failing from one validation to another (open: still failing)';

-- A warehouse that kept the issues' history in marts.fct_dq_issue (first and last seen, open) keeps it: one
-- interval per issue, before every validation to come (seq 0).
DO $$
BEGIN
    IF to_regclass('marts.fct_dq_issue') IS NOT NULL THEN
        INSERT INTO dq.issue_intervals (dossier_id, rule_id, unit_code, opened_seq, opened_validation, opened_at,
                                        closed_seq, closed_validation, closed_at, last_seen_at, changed_seq)
        SELECT dossier_id, rule_id, unit_code, 0, 'before intervals', first_seen_at,
               CASE WHEN is_open THEN NULL ELSE 0 END, CASE WHEN is_open THEN NULL ELSE 'before intervals' END,
               CASE WHEN is_open THEN NULL ELSE last_seen_at END, CASE WHEN is_open THEN NULL ELSE last_seen_at END, 0
        FROM marts.fct_dq_issue;
    END IF;
END
$$;

RESET ROLE;
