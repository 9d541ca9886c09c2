-- Results of the Great Expectations validations (expectations/): one row per validation run, one per
-- expectation result, one per failing record (dossier or workbook row). Written by expectations/store.py;
-- read by dbt (fct_dq_issue, fct_dq_daily) and by the data team. Not readable by bi_reader.
SET ROLE {writer};

CREATE TABLE dq.validation_runs (
    validation_id      text        PRIMARY KEY,  -- run_id/suite
    run_id             text        NOT NULL,     -- the pipeline run (audit.pipeline_runs)
    suite              text        NOT NULL,     -- batch | dossiers | finance
    as_of              timestamp   NOT NULL,     -- the run's as-of time (local): rules are evaluated at it
    run_date           date        NOT NULL,     -- as_of's date: the row of fct_dq_daily it feeds
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    status             text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'passed', 'warnings', 'failed', 'error')),
    evaluated          bigint,                   -- records in the validated batch
    expectations       integer,
    failed_critical    integer,
    failed_warning     integer,
    seconds            numeric,
    gx_run_name        text,                     -- the Great Expectations run name (Data Docs)
    error              text
);
CREATE INDEX validation_runs_suite ON dq.validation_runs (suite, finished_at);
COMMENT ON TABLE dq.validation_runs IS 'One row per Great Expectations validation (suite x pipeline run); a rerun replaces its run''s row';

CREATE TABLE dq.expectation_results (
    validation_id      text        NOT NULL REFERENCES dq.validation_runs ON DELETE CASCADE,
    check_id           text        NOT NULL,     -- the expectation: its rule id, with the column if several
    rule_id            text        NOT NULL,     -- INC01 ... VAL06, BAT01 ..., FIN01 ...
    expectation_type   text        NOT NULL,
    severity           text        NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    description        text        NOT NULL,
    success            boolean     NOT NULL,
    unexpected_count   bigint,                   -- failing records (or rows of the unexpected-rows query)
    element_count      bigint,                   -- records checked
    observed           jsonb,                    -- the result as Great Expectations reported it (a sample)
    PRIMARY KEY (validation_id, check_id)
);
COMMENT ON TABLE dq.expectation_results IS 'Every expectation''s result of every validation';

CREATE TABLE dq.findings (
    validation_id      text        NOT NULL REFERENCES dq.validation_runs ON DELETE CASCADE,
    rule_id            text        NOT NULL,
    record_key         text        NOT NULL,     -- MaHoSo for dossiers; report_date#row for workbook rows
    unit_code          text,                     -- the dossier's DonViXuLy, or the row's ChuDauTu
    observed_value     text,                     -- what broke the rule, e.g. NgayTiepNhan=20230230080000
    PRIMARY KEY (validation_id, rule_id, record_key)
);
COMMENT ON TABLE dq.findings IS 'Per failing record and rule, what each validation found (warnings and critical)';

-- The data team's digest of each run: what changed since the previous validation.
CREATE TABLE dq.digests (
    run_id             text        PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    changed            boolean     NOT NULL,     -- false: nothing new, nothing resolved, nothing critical
    delivered          jsonb,                    -- per channel: ok | skipped | error
    body               text        NOT NULL
);
COMMENT ON TABLE dq.digests IS 'The data-quality digest of every pipeline run, sent or not';

RESET ROLE;
