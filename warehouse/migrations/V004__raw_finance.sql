-- Landing tables of the Department of Finance's disbursement workbooks (giai-ngan-YYYY-MM-DD.xlsx, sheet
-- GiaiNgan; see the finance-workbook spec). Loaded by ingestion/finance.py.
-- Objects are created as the writer role so the pipeline owns (and can maintain) them.
SET ROLE {writer};

-- Every workbook file the loader has seen, by content: loaded, rejected (with the faulty cell), superseded
-- by a re-issue for the same report date, or skipped for its name. A file whose content is recorded here is
-- not read again.
CREATE TABLE raw.finance_files (
    file_sha256      text        PRIMARY KEY,  -- SHA-256 of the file's bytes (hex)
    file_name        text        NOT NULL,
    path             text        NOT NULL,     -- relative to the inbox folder, e.g. reissued/giai-ngan-2023-10-31.xlsx
    report_date      date,                     -- from the file name; null when the name does not match
    status           text        NOT NULL
        CHECK (status IN ('loaded', 'rejected', 'superseded', 'skipped-name')),
    reason           text,                     -- why rejected, skipped or superseded
    reject_row       integer,                  -- 1-based Excel row of the fault (rejected files)
    reject_column    text,                     -- header of the faulty column, e.g. GiaiNganLuyKe
    rows             integer     NOT NULL DEFAULT 0,  -- data rows landed (0 unless loaded or superseded)
    superseded_by    text        REFERENCES raw.finance_files (file_sha256) DEFERRABLE INITIALLY DEFERRED,
    file_modified_at timestamptz,              -- the file's modification time when read
    run_id           text        NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT now(),  -- when this record was written
    CHECK (status <> 'rejected' OR reason IS NOT NULL),
    CHECK (status = 'skipped-name' OR report_date IS NOT NULL)
);
-- At most one file is the current one of a report date.
CREATE UNIQUE INDEX finance_files_one_loaded_per_date ON raw.finance_files (report_date) WHERE status = 'loaded';
COMMENT ON TABLE raw.finance_files IS 'Disbursement workbooks (giai-ngan-YYYY-MM-DD.xlsx) seen in the finance inbox and what became of each';
COMMENT ON COLUMN raw.finance_files.status IS 'loaded: its rows are in raw.disbursement_rows; superseded: replaced by a re-issue for the same report date; rejected: nothing loaded, see reason; skipped-name: not a giai-ngan-YYYY-MM-DD.xlsx name';

-- The rows of the current (last accepted) workbook of each report date, typed, with the original cells.
CREATE TABLE raw.disbursement_rows (
    report_date           date        NOT NULL,
    file_name             text        NOT NULL,
    file_sha256           text        NOT NULL REFERENCES raw.finance_files (file_sha256),
    row_number            integer     NOT NULL,  -- 1-based Excel row in the sheet
    project_code          text        NOT NULL,
    project_name          text,
    investor_code         text        NOT NULL,
    funding_source        text        NOT NULL,
    plan_year             integer     NOT NULL,
    is_carried_over       boolean     NOT NULL,
    plan_pm               numeric     NOT NULL CHECK (plan_pm >= 0),
    plan_province         numeric     NOT NULL CHECK (plan_province >= 0),
    disbursed_cumulative  numeric     NOT NULL CHECK (disbursed_cumulative >= 0),
    raw_row               jsonb       NOT NULL,  -- header -> cell value as text, every column of the row
    run_id                text        NOT NULL,
    loaded_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_date, row_number)
);
-- One row per plan line and report date; also serves the loader's "cumulative never decreases" check.
CREATE UNIQUE INDEX disbursement_rows_plan_line
    ON raw.disbursement_rows (project_code, funding_source, plan_year, is_carried_over, report_date);
CREATE INDEX disbursement_rows_file ON raw.disbursement_rows (file_sha256);
COMMENT ON TABLE raw.disbursement_rows IS 'Disbursement of public investment capital (giải ngân vốn đầu tư công) per workbook row, for the current workbook of each report date; amounts in VND';
COMMENT ON COLUMN raw.disbursement_rows.report_date IS 'Report date from the file name: figures are cumulative to this day';
COMMENT ON COLUMN raw.disbursement_rows.row_number IS '1-based Excel row of the sheet GiaiNgan';
COMMENT ON COLUMN raw.disbursement_rows.project_code IS 'MaDuAn (mã dự án)';
COMMENT ON COLUMN raw.disbursement_rows.project_name IS 'TenDuAn (tên dự án)';
COMMENT ON COLUMN raw.disbursement_rows.investor_code IS 'ChuDauTu (chủ đầu tư): MaDonVi of the responsible unit';
COMMENT ON COLUMN raw.disbursement_rows.funding_source IS 'NguonVon (nguồn vốn): NSTW, NSDP, CTMTQG or ODA';
COMMENT ON COLUMN raw.disbursement_rows.plan_year IS 'NamKeHoach (năm kế hoạch)';
COMMENT ON COLUMN raw.disbursement_rows.is_carried_over IS 'LaKeoDai (kế hoạch kéo dài): plan carried over from the previous year';
COMMENT ON COLUMN raw.disbursement_rows.plan_pm IS 'KeHoachTTgGiao (kế hoạch Thủ tướng Chính phủ giao), VND';
COMMENT ON COLUMN raw.disbursement_rows.plan_province IS 'KeHoachUBNDGiao (kế hoạch UBND tỉnh giao), VND';
COMMENT ON COLUMN raw.disbursement_rows.disbursed_cumulative IS 'GiaiNganLuyKe (giải ngân lũy kế) to the report date, VND';
COMMENT ON COLUMN raw.disbursement_rows.raw_row IS 'The row as received: header -> cell value as text (null for empty cells)';

RESET ROLE;
