"""Loader of the Department of Finance's disbursement workbooks into ``raw`` (see the finance-workbook spec).

``load_inbox`` picks up every ``giai-ngan-YYYY-MM-DD.xlsx`` under the inbox folder that it has not recorded
yet, checks it, and either lands all its rows in ``raw.disbursement_rows`` (replacing an earlier workbook of
the same report date in one transaction) or rejects it whole, recording in ``raw.finance_files`` why, at
which 1-based Excel row and column. Files are never moved or changed.

Decisions where the spec is silent:

- Candidates are the files named ``*.xlsx``, ``*.xlsm`` or ``*.xls`` anywhere under the inbox, except Office
  lock files (``~$…``) and hidden files or folders; other files (e.g. a generator's truth JSON) are ignored.
  A candidate whose name is not ``giai-ngan-YYYY-MM-DD.xlsx`` with a valid date is recorded as
  ``skipped-name``.
- Order: report date, then modification time, then folder depth (a re-issue sits in a subfolder such as
  ``reissued/``), then path; so of two new files for one date the later one wins.
- A file is known by its SHA-256. Content recorded as loaded or superseded is never read again, whatever its
  name (an unchanged first issue left beside its re-issue must not win back the date). Renaming can fix the
  others, so content recorded as skipped-name is read again under a valid name, and content recorded as
  rejected under a name with another report date once the rejected name is gone from the inbox (a rejection
  may depend on the date); the record is then rewritten. Skipped files are listed in the result with the
  recorded verdict (a rejection's reason included) and not recorded again.
- Header: the first of the first 20 rows holding all nine headers (compared trimmed, case-insensitively).
  When none does, the row holding most of them (at least three) is taken as the header and the file is
  rejected at that row, naming each missing column. Columns other than the nine are kept in ``raw_row``.
- Cells: ``MaDuAn``, ``ChuDauTu`` and ``NguonVon`` must not be empty (``TenDuAn`` may); ``NguonVon`` must be one
  of NSTW, NSDP, CTMTQG, ODA (trimmed, upper-cased); ``NamKeHoach`` an integer year in 2000-2100;
  ``LaKeoDai`` 0 or 1; amounts non-negative numbers, never empty (blank would be ambiguous between zero and
  unknown). Text amounts may use ``.``, ``,`` or spaces as thousands separators ("1.234.567.000",
  "1,234,567,000"); one separator followed by exactly three digits is a thousands separator (VND has no
  fractions of a dong in practice), otherwise, or after thousands groups of the other style, a decimal mark.
- A file must hold at least one data row, and each plan line (project code, funding source, plan year,
  carried-over flag) at most once.
- ``GiaiNganLuyKe`` of a plan line may not be below that line's figure on the latest earlier report date
  already loaded (the current file of that date). Later report dates are not compared: when a re-issue of an
  old date disagrees with them, which one is wrong is for the data team to say.
- Every problem of a file is collected; the recorded row and column are those of the first (by row, then
  column), and the reason lists a few more.
- An unreadable file (not an xlsx, truncated while being copied, no ``GiaiNgan`` sheet) is rejected without
  row or column. Database errors are not rejections: they propagate, leaving that file's transaction rolled
  back and the file unrecorded, so the next run tries it again.
- Runs are serialised by a session advisory lock, so two runs never load the same file twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import openpyxl
import psycopg
from openpyxl.utils import get_column_letter
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

SHEET_NAME = "GiaiNgan"
HEADERS = (
    "MaDuAn",
    "TenDuAn",
    "ChuDauTu",
    "NguonVon",
    "NamKeHoach",
    "LaKeoDai",
    "KeHoachTTgGiao",
    "KeHoachUBNDGiao",
    "GiaiNganLuyKe",
)
FUNDING_SOURCES = ("NSTW", "NSDP", "CTMTQG", "ODA")
FILE_NAME = re.compile(r"giai-ngan-(\d{4})-(\d{2})-(\d{2})\.xlsx", re.IGNORECASE)
CANDIDATE_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
HEADER_SEARCH_ROWS = 20
MIN_HEADER_MATCH = 3  # fewer known headers than this and a row is not taken for a damaged header
PLAN_YEARS = range(2000, 2101)
REASON_MORE_PROBLEMS = 5  # further problems listed in a rejection's reason

LOADED, REJECTED, SUPERSEDED, SKIPPED_NAME, SKIPPED = "loaded", "rejected", "superseded", "skipped-name", "skipped"
# Serialises loader runs on one warehouse (an arbitrary, fixed key).
ADVISORY_LOCK_KEY = 4_460_218_305
CONNECT_TIMEOUT = 10

# Digits with thousands groups of one style, or plain digits; then an optional decimal part.
_AMOUNT = re.compile(r"(?P<int>\d{1,3}(?P<sep>[.,])\d{3}(?:(?P=sep)\d{3})*|\d+)(?:(?P<dec>[.,])(?P<frac>\d+))?")
_WHITESPACE = re.compile(r"\s+")
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


class CellError(ValueError):
    """A cell value that does not fit its column; the message says why."""


@dataclass(frozen=True)
class Problem:
    """Why a workbook cannot be loaded, and where: 1-based Excel row, column header and letter if known."""

    row: int | None
    column: str | None
    letter: str | None
    message: str

    def where(self) -> str:
        """E.g. ``row 27, column GiaiNganLuyKe (cell I27)``."""
        parts = [] if self.row is None else [f"row {self.row}"]
        if self.column is not None:
            cell = f" (cell {self.letter}{self.row})" if self.letter and self.row else ""
            parts.append(f"column {self.column}{cell}")
        return ", ".join(parts)


@dataclass(frozen=True)
class DisbursementRow:
    """One data row of a workbook, typed, with its cells as text (header -> text)."""

    row_number: int
    project_code: str
    project_name: str | None
    investor_code: str
    funding_source: str
    plan_year: int
    is_carried_over: bool
    plan_pm: Decimal
    plan_province: Decimal
    disbursed_cumulative: Decimal
    raw_row: dict[str, str | None]

    @property
    def plan_line(self) -> tuple[str, str, int, bool]:
        """The key the cumulative figure runs along: project, funding source, plan year, carried-over."""
        return self.project_code, self.funding_source, self.plan_year, self.is_carried_over


@dataclass(frozen=True)
class ParsedWorkbook:
    """What ``parse_workbook`` made of a file: its rows, or the problems that reject it."""

    header_row: int | None
    columns: dict[str, int]  # required header -> 0-based column index
    rows: list[DisbursementRow]
    problems: list[Problem]

    def letter(self, header: str) -> str | None:
        """The Excel column letter of a required header, if the file has it."""
        index = self.columns.get(header)
        return None if index is None else get_column_letter(index + 1)


@dataclass(frozen=True)
class FileOutcome:
    """What one run did with one file; ``file`` is its path relative to the inbox."""

    file: str
    report_date: date | None
    status: str  # loaded | rejected | skipped (already recorded) | skipped-name
    rows: int
    reason: str | None
    sha256: str
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


# --- reading a workbook ----------------------------------------------------------------------------------


def report_date_from_name(name: str) -> date | None:
    """The report date of a ``giai-ngan-YYYY-MM-DD.xlsx`` file name, or None if the name is not one."""
    match = FILE_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def parse_amount(value: object) -> Decimal:
    """A non-negative VND amount from a cell: a number, or text with thousands separators.

    Raises CellError for empty cells, text that is not a number ("chưa có số liệu") and negative amounts.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CellError("empty; an amount is required")
    if isinstance(value, bool):
        raise CellError(f"{value} is not an amount")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CellError(f"{value} is not an amount")
        # repr is the shortest text that round-trips, so 0.1 stays 0.1 rather than its binary expansion.
        amount = Decimal(int(value)) if value.is_integer() else Decimal(repr(value))
    elif isinstance(value, str):
        amount = _amount_from_text(value)
    else:
        raise CellError(f"{value!r} is not an amount")
    if amount < 0:
        raise CellError(f"negative amount {value!r}")
    return amount


def _amount_from_text(text: str) -> Decimal:
    compact = _WHITESPACE.sub("", text)
    negative = False
    if compact.startswith("(") and compact.endswith(")"):  # accounting style
        negative, compact = True, compact[1:-1]
    if compact[:1] in ("-", "\u2212"):
        negative, compact = True, compact[1:]
    match = _AMOUNT.fullmatch(compact)
    if match is None or (match["sep"] is not None and match["dec"] == match["sep"]):
        raise CellError(f"{text!r} is not a number")
    digits = match["int"].replace(match["sep"] or "", "")
    amount = Decimal(f"{digits}.{match['frac']}" if match["frac"] else digits)
    return -amount if negative else amount


def _text(value: object) -> str | None:
    """A text cell trimmed; numbers as their digits; None when empty."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _cell_text(value).strip()
    return text or None


def _required_text(value: object) -> str:
    text = _text(value)
    if text is None:
        raise CellError("empty; a value is required")
    return text


def _funding_source(value: object) -> str:
    source = _required_text(value).upper()
    if source not in FUNDING_SOURCES:
        raise CellError(f"{value!r} is not one of {', '.join(FUNDING_SOURCES)}")
    return source


def _plan_year(value: object) -> int:
    text = _text(value)
    if text is None or isinstance(value, bool) or not text.isdigit():
        raise CellError(f"{value!r} is not a year")
    year = int(text)
    if year not in PLAN_YEARS:
        raise CellError(f"{year} is not a plausible plan year ({PLAN_YEARS.start}-{PLAN_YEARS.stop - 1})")
    return year


def _carried_over(value: object) -> bool:
    text = _text(value)
    if text not in ("0", "1"):
        raise CellError(f"{value!r} is not 0 or 1")
    return text == "1"


_PARSERS = {
    "MaDuAn": _required_text,
    "TenDuAn": _text,
    "ChuDauTu": _required_text,
    "NguonVon": _funding_source,
    "NamKeHoach": _plan_year,
    "LaKeoDai": _carried_over,
    "KeHoachTTgGiao": parse_amount,
    "KeHoachUBNDGiao": parse_amount,
    "GiaiNganLuyKe": parse_amount,
}


def _cell_text(value: object) -> str | None:
    """A cell value as text for ``raw_row``, without losing anything the workbook held."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    return str(value)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_workbook(content: bytes) -> ParsedWorkbook:
    """Read sheet ``GiaiNgan`` of an xlsx file's bytes into typed rows, or the problems rejecting it.

    Title rows above the header, blank rows and thousands separators are handled; see the module
    docstring for what is a problem.
    """
    try:
        grid = _read_sheet(content)
    except _UnreadableError as exc:
        return ParsedWorkbook(None, {}, [], [Problem(None, None, None, str(exc))])
    return _parse_grid(grid)


class _UnreadableError(Exception):
    pass


def _read_sheet(content: bytes) -> list[tuple]:
    try:
        # data_only: a formula cell counts with the value Excel last computed for it.
        book = openpyxl.load_workbook(BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types (zip, XML, key errors) on damaged files
        raise _UnreadableError(f"cannot be read as an xlsx workbook ({type(exc).__name__}: {exc})") from exc
    try:
        if SHEET_NAME not in book.sheetnames:
            raise _UnreadableError(f"has no sheet {SHEET_NAME} (sheets: {', '.join(book.sheetnames)})")
        sheet = book[SHEET_NAME]
        # Some writers store a wrong sheet size, which would cut rows short; read every cell present.
        sheet.reset_dimensions()
        try:
            return [tuple(row) for row in sheet.iter_rows(values_only=True)]
        except Exception as exc:  # as above: damaged sheet XML
            raise _UnreadableError(f"sheet {SHEET_NAME} cannot be read ({type(exc).__name__}: {exc})") from exc
    finally:
        book.close()


def _find_header(grid: list[tuple]) -> tuple[int | None, dict[str, int], list[Problem]]:
    """The header row (1-based), the column of each required header found there, and header problems."""
    wanted = {h.casefold(): h for h in HEADERS}
    best: tuple[int, dict[str, int], list[Problem]] | None = None
    for row_number, cells in enumerate(grid[:HEADER_SEARCH_ROWS], start=1):
        found: dict[str, int] = {}
        problems = []
        for index, value in enumerate(cells):
            header = wanted.get(value.strip().casefold()) if isinstance(value, str) else None
            if header is None:
                continue
            if header in found:
                first = get_column_letter(found[header] + 1)
                problems.append(
                    Problem(row_number, header, get_column_letter(index + 1), f"header repeated (also column {first})")
                )
            else:
                found[header] = index
        if len(found) == len(HEADERS):
            return row_number, found, problems
        if best is None or len(found) > len(best[1]):
            best = (row_number, found, problems)
    if best is None or len(best[1]) < MIN_HEADER_MATCH:
        expected = ", ".join(HEADERS)
        return None, {}, [Problem(None, None, None, f"no header row in rows 1-{HEADER_SEARCH_ROWS} ({expected})")]
    row_number, found, problems = best
    missing = [h for h in HEADERS if h not in found]
    problems += [Problem(row_number, h, None, "required column is missing from the header row") for h in missing]
    return row_number, found, problems


def _raw_keys(header_cells: tuple) -> list[str]:
    """Keys of ``raw_row``: each header as written, or the column letter where the header is empty."""
    keys: list[str] = []
    for index, value in enumerate(header_cells):
        letter = get_column_letter(index + 1)
        text = _cell_text(value)
        key = text.strip() if text and text.strip() else letter
        keys.append(f"{key} ({letter})" if key in keys else key)
    return keys


def _parse_grid(grid: list[tuple]) -> ParsedWorkbook:
    header_row, columns, problems = _find_header(grid)
    if problems:
        return ParsedWorkbook(header_row, columns, [], problems)
    keys = _raw_keys(grid[header_row - 1])
    rows: list[DisbursementRow] = []
    first_row_of_line: dict[tuple, int] = {}
    for row_number, cells in enumerate(grid[header_row:], start=header_row + 1):
        if all(_blank(v) for v in cells):
            continue
        typed = {}
        for header in HEADERS:
            index = columns[header]
            value = cells[index] if index < len(cells) else None
            try:
                typed[header] = _PARSERS[header](value)
            except CellError as exc:
                problems.append(Problem(row_number, header, get_column_letter(index + 1), str(exc)))
        if len(typed) < len(HEADERS):
            continue
        raw_row = {
            keys[i] if i < len(keys) else get_column_letter(i + 1): _cell_text(v)
            for i, v in enumerate(cells)
            if i < len(keys) or v is not None
        }
        row = DisbursementRow(
            row_number=row_number,
            project_code=typed["MaDuAn"],
            project_name=typed["TenDuAn"],
            investor_code=typed["ChuDauTu"],
            funding_source=typed["NguonVon"],
            plan_year=typed["NamKeHoach"],
            is_carried_over=typed["LaKeoDai"],
            plan_pm=typed["KeHoachTTgGiao"],
            plan_province=typed["KeHoachUBNDGiao"],
            disbursed_cumulative=typed["GiaiNganLuyKe"],
            raw_row=raw_row,
        )
        first = first_row_of_line.setdefault(row.plan_line, row_number)
        if first != row_number:
            problems.append(
                Problem(
                    row_number,
                    "MaDuAn",
                    get_column_letter(columns["MaDuAn"] + 1),
                    f"plan line {_describe_line(row.plan_line)} already on row {first}",
                )
            )
        rows.append(row)
    if not rows and not problems:
        problems.append(Problem(header_row, None, None, "no data rows below the header"))
    problems.sort(key=lambda p: (p.row or 0, HEADERS.index(p.column) if p.column else -1))
    return ParsedWorkbook(header_row, columns, rows, problems)


def _describe_line(line: tuple[str, str, int, bool]) -> str:
    code, source, year, carried = line
    return f"{code} {source} {year} LaKeoDai={int(carried)}"


def _reason(file: str, problems: list[Problem]) -> str:
    first, more = problems[0], problems[1:]
    where = first.where()
    reason = f"{file}: {where}: {first.message}" if where else f"{file}: {first.message}"
    if more:
        listed = "; ".join(f"{p.where()}: {p.message}" for p in more[:REASON_MORE_PROBLEMS])
        others = len(more) - REASON_MORE_PROBLEMS
        reason += f" (and {len(more)} more: {listed}{f'; {others} others' if others > 0 else ''})"
    return reason


# --- loading the inbox -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    path: Path
    relative: str
    report_date: date | None
    modified_ns: int

    @property
    def order(self) -> tuple:
        return (self.report_date or date.min, self.modified_ns, self.relative.count("/"), self.relative)


def _candidates(inbox: Path) -> list[_Candidate]:
    found = []
    for path in inbox.rglob("*"):
        relative = path.relative_to(inbox)
        if any(part.startswith((".", "~$")) for part in relative.parts):
            continue
        if path.suffix.lower() not in CANDIDATE_SUFFIXES or not path.is_file():
            continue
        found.append(_Candidate(path, relative.as_posix(), report_date_from_name(path.name), path.stat().st_mtime_ns))
    return sorted(found, key=lambda c: c.order)


def load_inbox(writer_url: str, inbox: Path, run_id: str) -> FinanceLoadResult:
    """Load the new or re-issued disbursement workbooks found under ``inbox`` into ``raw``.

    ``writer_url`` is a ``postgresql://`` URL of the pipeline's writer role. Each file is loaded whole,
    replacing the earlier file of its report date in one transaction, or rejected whole; files whose
    content is already recorded are skipped. Every file, skipped or not, is listed in the result.
    Raises FileNotFoundError if ``inbox`` is not a folder, and psycopg errors if the warehouse fails (the
    file being loaded then stays unrecorded and untouched in the warehouse).
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise FileNotFoundError(f"finance inbox {inbox} is not a folder")
    result = FinanceLoadResult(run_id)
    with psycopg.connect(writer_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        for candidate in _candidates(inbox):
            outcome = _load_file(conn, inbox, candidate, run_id)
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


def _load_file(conn: psycopg.Connection, inbox: Path, candidate: _Candidate, run_id: str) -> FileOutcome:
    # One read: the hash is that of exactly the bytes parsed, even if the file is being replaced meanwhile.
    content = candidate.path.read_bytes()
    sha = hashlib.sha256(content).hexdigest()
    outcome = FileOutcome(candidate.relative, candidate.report_date, SKIPPED, 0, None, sha)
    with conn.cursor(row_factory=dict_row) as cursor:
        recorded = cursor.execute(
            "SELECT status, report_date, path, reason, loaded_at FROM raw.finance_files WHERE file_sha256 = %s",
            [sha],
        ).fetchone()
    if recorded is not None and not _read_again(recorded, candidate, inbox):
        return _skipped(outcome, recorded)
    record = {
        "file_sha256": sha,
        "file_name": candidate.path.name,
        "path": candidate.relative,
        "report_date": candidate.report_date,
        "file_modified_at": datetime.fromtimestamp(candidate.modified_ns / 1e9, tz=UTC),
        "run_id": run_id,
        "reason": None,
        "reject_row": None,
        "reject_column": None,
        "rows": 0,
    }
    if candidate.report_date is None:
        reason = f"{candidate.relative}: file name is not giai-ngan-YYYY-MM-DD.xlsx with a valid date; not read"
        with conn.transaction():
            _record(conn, record | {"status": SKIPPED_NAME, "reason": reason})
        return FileOutcome(candidate.relative, None, SKIPPED_NAME, 0, reason, sha)

    parsed = parse_workbook(content)
    with conn.transaction():
        problems = parsed.problems or _decreasing_cumulative(conn, candidate.report_date, parsed)
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


def _read_again(recorded: dict, candidate: _Candidate, inbox: Path) -> bool:
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
        and not (inbox / recorded["path"]).exists()
    )


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


def _decreasing_cumulative(conn: psycopg.Connection, report_date: date, parsed: ParsedWorkbook) -> list[Problem]:
    """Rows whose GiaiNganLuyKe is below their plan line's figure on the latest earlier loaded report date."""
    years = sorted({row.plan_year for row in parsed.rows})
    earlier = {
        (code, source, year, carried): (when, file_name, amount)
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
    letter = parsed.letter("GiaiNganLuyKe")
    problems = []
    for row in parsed.rows:
        before = earlier.get(row.plan_line)
        if before is not None and row.disbursed_cumulative < before[2]:
            when, file_name, amount = before
            problems.append(
                Problem(
                    row.row_number,
                    "GiaiNganLuyKe",
                    letter,
                    f"cumulative disbursement {row.disbursed_cumulative} of {_describe_line(row.plan_line)} is "
                    f"below {amount} reported on {when:%Y-%m-%d} ({file_name})",
                )
            )
    return problems


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
