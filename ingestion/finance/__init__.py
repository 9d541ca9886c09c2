"""Loader of the Department of Finance's disbursement workbooks into ``raw`` (see the finance-workbook spec).

``load_inbox`` picks up every ``giai-ngan-YYYY-MM-DD.xlsx`` under the inbox folder that it has not recorded
yet, checks it, and either lands all its rows in ``raw.disbursement_rows`` (replacing an earlier workbook of
the same report date in one transaction) or rejects it whole, recording in ``raw.finance_files`` why, at
which 1-based Excel row and column. Files are never moved or changed. No file can stop the others: whatever
goes wrong while reading or checking one file rejects that file, and the loader goes on with the next.

One module per job, each with the decisions it implements in its docstring:

- ``workbook``: parsing and checking one workbook's bytes (pure: no I/O beyond the bytes given);
- ``archive``: the zip guard, judged from an archive's central directory before anything is inflated;
- ``inbox``: which files are candidates, in what order, and reading one under the caps;
- ``loader``: ``load_inbox`` itself, recording each file in ``raw.finance_files``, replacing a report date's
  rows by COPY.
"""

from ingestion.finance.archive import DEFAULT_MAX_UNCOMPRESSED_BYTES, archive_problem
from ingestion.finance.inbox import DEFAULT_MAX_FILE_BYTES, report_date_from_name
from ingestion.finance.loader import (
    LOADED,
    REJECTED,
    SKIPPED,
    SKIPPED_NAME,
    SUPERSEDED,
    FileOutcome,
    FinanceLoadResult,
    load_inbox,
)
from ingestion.finance.workbook import (
    HEADERS,
    SHEET_NAME,
    CellError,
    DisbursementRow,
    ParsedWorkbook,
    Problem,
    parse_amount,
    parse_workbook,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "HEADERS",
    "LOADED",
    "REJECTED",
    "SHEET_NAME",
    "SKIPPED",
    "SKIPPED_NAME",
    "SUPERSEDED",
    "CellError",
    "DisbursementRow",
    "FileOutcome",
    "FinanceLoadResult",
    "ParsedWorkbook",
    "Problem",
    "archive_problem",
    "load_inbox",
    "parse_amount",
    "parse_workbook",
    "report_date_from_name",
]
