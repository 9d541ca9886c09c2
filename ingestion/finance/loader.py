"""The load of the finance inbox into the warehouse: ``load_inbox``.

``load_inbox`` picks up every candidate under the inbox folder (``ingestion.finance.inbox``) that it has not
recorded yet, checks it (``ingestion.finance.workbook``), and either lands all its rows in
``raw.disbursement_rows`` (replacing an earlier workbook of the same report date in one transaction, by
COPY) or rejects it whole, recording in ``raw.finance_files`` why, at which 1-based Excel row and column.
Files are never moved or changed. No file can stop the others: whatever goes wrong while reading or
checking one file rejects that file, and the loader goes on with the next.

Decisions where the spec is silent:

- A file is known by its SHA-256. Content recorded as loaded or superseded is never read again, whatever its
  name (an unchanged first issue left beside its re-issue must not win back the date). Renaming can fix the
  others, so content recorded as skipped-name is read again under a valid name, and content recorded as
  rejected under a name with another report date once the rejected name is gone from the inbox (a rejection
  may depend on the date); the record is then rewritten. Skipped files are listed in the result with the
  recorded verdict (a rejection's reason included) and not recorded again.
- A file refused unread (``ingestion.finance.inbox``) is recorded under its pseudo key, ``unread-…``, in
  ``file_sha256``: its content was not examined. Every run tries it again (an open, a stat, a zip directory:
  cheap), so a fixed permission or a raised cap takes effect without touching the file; while it fails the
  same way it is listed as skipped with the recorded reason, and when it changes (path, size or
  modification time) it is recorded again. Once it reads, it is known by its SHA-256 as any file; the
  pseudo record stays.
- A file whose bytes are read but are no workbook is rejected known by its SHA-256 (a complete copy is
  another content, read on the next run). Any exception while reading one file rejects it with
  ``<ExceptionType>: <message>`` as the reason.
- The figures ``GiaiNganLuyKe`` is compared with (``workbook.decreasing_cumulative``) are, per plan line, those
  of the latest earlier report date in ``raw.disbursement_rows``, read in the transaction that loads the file.
- Database errors are not rejections: they propagate, as does any failure while the file's rows are
  written, leaving that file's transaction rolled back and the file unrecorded, so the next run tries it
  again. Paths and reasons are stored as valid UTF-8 (``inbox.storable``).
- Runs are serialised by a session advisory lock, so two runs never load the same file twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingestion.finance.archive import DEFAULT_MAX_UNCOMPRESSED_BYTES
from ingestion.finance.inbox import (
    DEFAULT_MAX_FILE_BYTES,
    Candidate,
    Caps,
    UnreadableFile,
    candidates,
    read_workbook,
    storable,
)
from ingestion.finance.workbook import (
    DisbursementRow,
    LoadedFigure,
    ParsedWorkbook,
    Problem,
    decreasing_cumulative,
    describe_error,
    parse_workbook,
    summarise,
)

log = logging.getLogger(__name__)

LOADED, REJECTED, SUPERSEDED, SKIPPED_NAME, SKIPPED = "loaded", "rejected", "superseded", "skipped-name", "skipped"
# Serialises loader runs on one warehouse (an arbitrary, fixed key).
ADVISORY_LOCK_KEY = 4_460_218_305
CONNECT_TIMEOUT = 10
_ROW_COLUMNS = (
    "report_date",
    "file_name",
    "file_sha256",
    "row_number",
    "project_code",
    "project_name",
    "investor_code",
    "funding_source",
    "plan_year",
    "is_carried_over",
    "plan_pm",
    "plan_province",
    "disbursed_cumulative",
    "raw_row",
    "run_id",
)


@dataclass(frozen=True)
class FileOutcome:
    """What one run did with one file; ``file`` is its path relative to the inbox."""

    file: str
    report_date: date | None
    status: str  # loaded | rejected | skipped (already recorded) | skipped-name
    rows: int
    reason: str | None
    sha256: str  # its key in raw.finance_files: the content's SHA-256, or unread-… for a file refused unread
    reject_row: int | None = None
    reject_column: str | None = None
    replaces: str | None = None  # the earlier file of the same report date this one superseded

    def to_dict(self) -> dict:
        """JSON-serialisable form (dates ISO 8601)."""
        document = asdict(self)
        document["report_date"] = None if self.report_date is None else self.report_date.isoformat()
        return document


@dataclass
class FinanceLoadResult:
    """Per-file outcomes of one ``load_inbox`` run, in processing order, and their totals."""

    run_id: str
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        """Files loaded by this run."""
        return sum(f.status == LOADED for f in self.files)

    @property
    def rejected(self) -> int:
        """Files rejected by this run."""
        return sum(f.status == REJECTED for f in self.files)

    @property
    def skipped(self) -> int:
        """Files not read: already recorded, or not named like a workbook."""
        return sum(f.status in (SKIPPED, SKIPPED_NAME) for f in self.files)

    @property
    def rows(self) -> int:
        """Rows landed by this run."""
        return sum(f.rows for f in self.files if f.status == LOADED)

    def to_dict(self) -> dict:
        """JSON-serialisable summary for the run log and XCom."""
        return {
            "run_id": self.run_id,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "rows": self.rows,
            "files": [f.to_dict() for f in self.files],
        }


def load_inbox(
    writer_url: str,
    inbox: Path,
    run_id: str,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> FinanceLoadResult:
    """Load the new or re-issued disbursement workbooks found under ``inbox`` into ``raw``.

    ``writer_url`` is a ``postgresql://`` URL of the pipeline's writer role. Each file is loaded whole,
    replacing the earlier file of its report date in one transaction, or rejected whole; files whose
    content is already recorded are skipped. Every file, skipped or not, is listed in the result. A file
    larger than ``max_file_bytes``, or whose zip would expand beyond ``max_uncompressed_bytes``, is refused
    unread (``FINANCE_MAX_FILE_BYTES``, ``FINANCE_MAX_UNCOMPRESSED_BYTES``). No file makes this raise.
    Raises FileNotFoundError if ``inbox`` is not a folder, ValueError for a cap below 1, and psycopg errors
    if the warehouse fails (the file being loaded then stays unrecorded and untouched in the warehouse).
    """
    inbox = Path(inbox)
    if min(max_file_bytes, max_uncompressed_bytes) < 1:
        raise ValueError("the finance file caps must be positive byte counts")
    if not inbox.is_dir():
        raise FileNotFoundError(f"finance inbox {inbox} is not a folder")
    caps = Caps(max_file_bytes, max_uncompressed_bytes)
    result = FinanceLoadResult(run_id)
    with psycopg.connect(writer_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        for candidate in candidates(inbox):
            outcome = _load_file(conn, inbox, candidate, run_id, caps)
            result.files.append(outcome)
            level = logging.WARNING if outcome.status == REJECTED else logging.INFO
            log.log(level, "%s: %s%s", outcome.file, outcome.status, f" ({outcome.reason})" if outcome.reason else "")
    log.info(
        "Finance inbox %s: %d loaded (%d rows), %d rejected, %d skipped",
        inbox,
        result.loaded,
        result.rows,
        result.rejected,
        result.skipped,
    )
    return result


def _load_file(conn: psycopg.Connection, inbox: Path, candidate: Candidate, run_id: str, caps: Caps) -> FileOutcome:
    refusal = None
    try:
        content = read_workbook(candidate.path, caps)
    except UnreadableFile as exc:
        refusal = str(exc)
    except Exception as exc:  # whatever reading one file raises is about that file only
        log.warning("Unexpected error reading %s", candidate.relative, exc_info=True)
        refusal = describe_error(exc)
    if refusal is not None:
        return _refuse_unread(conn, candidate, run_id, refusal)
    sha = hashlib.sha256(content).hexdigest()
    outcome = FileOutcome(candidate.relative, candidate.report_date, SKIPPED, 0, None, sha)
    recorded = _recorded(conn, sha)
    if recorded is not None and not _read_again(recorded, candidate, inbox):
        return _skipped(outcome, recorded)
    record = _file_record(candidate, sha, run_id)
    if candidate.report_date is None:
        reason = _name_reason(candidate)
        with conn.transaction():
            _record(conn, record | {"status": SKIPPED_NAME, "reason": reason})
        return FileOutcome(candidate.relative, None, SKIPPED_NAME, 0, reason, sha)

    parsed = parse_workbook(content, caps.max_uncompressed_bytes)  # never raises
    with conn.transaction():
        problems = parsed.problems or decreasing_cumulative(
            parsed, _earlier_figures(conn, candidate.report_date, parsed)
        )
        if problems:
            reason = _reason(candidate.relative, problems)
            first = problems[0]
            _record(
                conn,
                record | {"status": REJECTED, "reason": reason, "reject_row": first.row, "reject_column": first.column},
            )
            return FileOutcome(
                candidate.relative, candidate.report_date, REJECTED, 0, reason, sha, first.row, first.column
            )
        replaced = _replace_report_date(conn, record, parsed.rows)
    reason = None if replaced is None else f"replaces {replaced}"
    return FileOutcome(
        candidate.relative, candidate.report_date, LOADED, len(parsed.rows), reason, sha, replaces=replaced
    )


def _refuse_unread(conn: psycopg.Connection, candidate: Candidate, run_id: str, message: str) -> FileOutcome:
    """Record a file whose content was not examined under its pseudo key (see the module docstring); skip it
    when it was already refused so, unchanged."""
    key = candidate.unread_key
    if candidate.report_date is None:
        status, reason = SKIPPED_NAME, _name_reason(candidate)
    else:
        status, reason = REJECTED, storable(f"{candidate.relative}: {message}")
    outcome = FileOutcome(candidate.relative, candidate.report_date, status, 0, reason, key)
    recorded = _recorded(conn, key)
    if recorded is not None and (recorded["status"], recorded["reason"]) == (status, reason):
        return _skipped(outcome, recorded)
    with conn.transaction():
        _record(conn, _file_record(candidate, key, run_id) | {"status": status, "reason": reason})
    return outcome


def _recorded(conn: psycopg.Connection, key: str) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT status, report_date, path, reason, loaded_at FROM raw.finance_files WHERE file_sha256 = %s",
            [key],
        ).fetchone()


def _file_record(candidate: Candidate, key: str, run_id: str) -> dict:
    return {
        "file_sha256": key,
        "file_name": storable(candidate.path.name),
        "path": candidate.relative,
        "report_date": candidate.report_date,
        "file_modified_at": _modified_at(candidate.modified_ns),
        "run_id": run_id,
        "reason": None,
        "reject_row": None,
        "reject_column": None,
        "rows": 0,
    }


def _name_reason(candidate: Candidate) -> str:
    return f"{candidate.relative}: file name is not giai-ngan-YYYY-MM-DD.xlsx with a valid date; not read"


def _modified_at(modified_ns: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(modified_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):  # a clock set to year 10000 is no reason to fail
        return None


def _read_again(recorded: dict, candidate: Candidate, inbox: Path) -> bool:
    """Whether content already recorded deserves another reading under this file's name."""
    if candidate.report_date is None:
        return False
    if recorded["status"] == SKIPPED_NAME:
        return True
    # A rejection can depend on the date (decreasing figures): read it again once renamed to another date,
    # but not while the old name is still there, or the two names would take turns every night.
    return (
        recorded["status"] == REJECTED
        and recorded["report_date"] != candidate.report_date
        and not _still_there(inbox / recorded["path"])
    )


def _still_there(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. its folder is no longer readable: take it as there, so nothing changes
        return True


def _skipped(outcome: FileOutcome, recorded: dict) -> FileOutcome:
    when = f"{recorded['loaded_at']:%Y-%m-%d %H:%M}"
    if recorded["path"] == outcome.file:
        reason = f"unchanged since recorded as {recorded['status']} on {when}"
    else:
        reason = f"same content as {recorded['path']}, recorded as {recorded['status']} on {when}"
    if recorded["status"] == REJECTED:
        reason += f": {recorded['reason']}"
    return FileOutcome(outcome.file, outcome.report_date, SKIPPED, 0, reason, outcome.sha256)


def _record(conn: psycopg.Connection, record: dict) -> None:
    """Insert a file's record, or rewrite the record of the same content seen under another name."""
    columns = list(record)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "file_sha256")
    conn.execute(
        f"INSERT INTO raw.finance_files ({', '.join(columns)}, loaded_at) "
        f"VALUES ({', '.join(f'%({c})s' for c in columns)}, now()) "
        f"ON CONFLICT (file_sha256) DO UPDATE SET {updates}, loaded_at = now(), superseded_by = NULL",
        record,
    )


def _earlier_figures(conn: psycopg.Connection, report_date: date, parsed: ParsedWorkbook) -> dict[tuple, LoadedFigure]:
    """Per plan line of the file's plan years, the figure of the latest earlier report date loaded."""
    years = sorted({row.plan_year for row in parsed.rows})
    return {
        (code, source, year, carried): LoadedFigure(when, file_name, amount)
        for code, source, year, carried, when, file_name, amount in conn.execute(
            """
            SELECT DISTINCT ON (project_code, funding_source, plan_year, is_carried_over)
                   project_code, funding_source, plan_year, is_carried_over, report_date, file_name,
                   disbursed_cumulative
            FROM raw.disbursement_rows
            WHERE report_date < %s AND plan_year = ANY(%s)
            ORDER BY project_code, funding_source, plan_year, is_carried_over, report_date DESC
            """,
            [report_date, years],
        )
    }


def _reason(file: str, problems: list[Problem]) -> str:
    """A rejection's reason as recorded: the file, then the problems (``workbook.summarise``)."""
    return storable(f"{file}: {summarise(problems)}")


def _replace_report_date(conn: psycopg.Connection, record: dict, rows: list[DisbursementRow]) -> str | None:
    """Make this file the report date's current one (inside the caller's transaction); return the path of
    the file it supersedes, if any."""
    report_date, sha = record["report_date"], record["file_sha256"]
    with conn.cursor() as cursor:
        superseded = cursor.execute(
            "UPDATE raw.finance_files SET status = %s, superseded_by = %s, reason = %s "
            "WHERE report_date = %s AND status = %s RETURNING path",
            [SUPERSEDED, sha, f"superseded by {record['path']}", report_date, LOADED],
        ).fetchone()
        _record(conn, record | {"status": LOADED, "rows": len(rows)})
        cursor.execute("DELETE FROM raw.disbursement_rows WHERE report_date = %s", [report_date])
        _copy_rows(cursor, record, rows)
    return None if superseded is None else superseded[0]


def _copy_rows(cursor: psycopg.Cursor, record: dict, rows: Iterable[DisbursementRow]) -> None:
    """Bulk-insert a file's rows with COPY."""
    statement = f"COPY raw.disbursement_rows ({', '.join(_ROW_COLUMNS)}) FROM STDIN"
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                (
                    record["report_date"],
                    record["file_name"],
                    record["file_sha256"],
                    row.row_number,
                    row.project_code,
                    row.project_name,
                    row.investor_code,
                    row.funding_source,
                    row.plan_year,
                    row.is_carried_over,
                    row.plan_pm,
                    row.plan_province,
                    row.disbursed_cumulative,
                    Jsonb(row.raw_row),
                    record["run_id"],
                )
            )
