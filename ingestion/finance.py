"""Loader of the Department of Finance's disbursement workbooks into ``raw`` (see the finance-workbook spec).

``load_inbox`` picks up every ``giai-ngan-YYYY-MM-DD.xlsx`` under the inbox folder that it has not recorded
yet, checks it, and either lands all its rows in ``raw.disbursement_rows`` (replacing an earlier workbook of
the same report date in one transaction) or rejects it whole, recording in ``raw.finance_files`` why, at
which 1-based Excel row and column. Files are never moved or changed. No file can stop the others: whatever
goes wrong while reading or checking one file rejects that file, and the loader goes on with the next.

Decisions where the spec is silent:

- Candidates are the entries named ``*.xlsx``, ``*.xlsm`` or ``*.xls`` anywhere under the inbox, except Office
  lock files (``~$…``) and hidden files or folders; other files (e.g. a generator's truth JSON) are ignored.
  A candidate whose name is not ``giai-ngan-YYYY-MM-DD.xlsx`` with a valid date is recorded as
  ``skipped-name``. A folder (or pipe, or broken link) named like a workbook is a candidate too, and refused.
- Order: report date, then modification time, then folder depth (a re-issue sits in a subfolder such as
  ``reissued/``), then path; so of two new files for one date the later one wins.
- A file is known by its SHA-256. Content recorded as loaded or superseded is never read again, whatever its
  name (an unchanged first issue left beside its re-issue must not win back the date). Renaming can fix the
  others, so content recorded as skipped-name is read again under a valid name, and content recorded as
  rejected under a name with another report date once the rejected name is gone from the inbox (a rejection
  may depend on the date); the record is then rewritten. Skipped files are listed in the result with the
  recorded verdict (a rejection's reason included) and not recorded again.
- Refused unread. Before its content is parsed, a file is refused when it cannot be opened or read
  (permission denied, a folder or another non-regular file, gone since the inbox was listed), when it is
  larger than ``FINANCE_MAX_FILE_BYTES`` (default 50 MiB, checked on the open file before a byte is read),
  or when its zip central directory declares more than ``FINANCE_MAX_UNCOMPRESSED_BYTES`` (default 200 MiB)
  in all, or a member of more than 1 MiB expanding above 100:1 (a zip bomb: real workbooks expand 5-20:1).
  Python's zipfile never inflates a member beyond its declared size, so the declared sizes bound what
  openpyxl inflates. Such a file is recorded under a pseudo key, ``unread-`` and the SHA-256 of its relative
  path, size and modification time, in ``file_sha256`` (never a content hash, which is 64 hex digits alone):
  its content was not examined. Every run tries it again (an open, a stat, a zip directory: cheap), so a
  fixed permission or a raised cap takes effect without touching the file; while it fails the same way it
  is listed as skipped with the recorded reason, and when it changes (path, size or modification time) it
  is recorded again. Once it reads, it is known by its SHA-256 as any file; the pseudo record stays.
- Sheets: the workbook holds exactly one sheet, ``GiaiNgan``; another sheet beside it (even hidden) makes it
  ambiguous which one holds the figures, so the file is rejected. The sheet is read twice: once for values
  (``data_only``: a formula counts with the value Excel last computed), once with ``data_only=False`` for
  formulas and merged ranges (openpyxl's own sheet parser: its read-only mode has no merged ranges). A sheet
  whose XML repeats rows or cells or lists them out of order (openpyxl would silently drop some), goes
  beyond Excel's last row or column, or spans more than 10 million cells (rows times the width each row is
  stored with; bounds memory) is rejected as damaged, without row or column.
- Header: the first of the first 20 rows holding all nine headers (compared trimmed, case-insensitively).
  When none does, the row holding most of them (at least three) is taken as the header and the file is
  rejected at that row, naming each missing column. Columns other than the nine are kept in ``raw_row``.
  A merged range reaching the header row or the rows below it is rejected at its first row (or the header
  row) and first column: a merge keeps its value in its first cell only, so the others would read empty.
  Title rows above the header may be merged.
- Cells: ``MaDuAn``, ``ChuDauTu`` and ``NguonVon`` must not be empty (``TenDuAn`` may); ``NguonVon`` must be one
  of NSTW, NSDP, CTMTQG, ODA (trimmed, upper-cased); ``NamKeHoach`` an integer year in 2000-2100;
  ``LaKeoDai`` 0 or 1; amounts non-negative numbers, never empty (blank would be ambiguous between zero and
  unknown). Text amounts may use ``.``, ``,`` or spaces as thousands separators ("1.234.567.000",
  "1,234,567,000"); one separator followed by exactly three digits is a thousands separator (VND has no
  fractions of a dong in practice), otherwise, or after thousands groups of the other style, a decimal mark.
- In the nine columns of a data row: a formula is rejected, naming its text (a workbook must hold values;
  a cached result may be stale, or absent when no spreadsheet program computed it); formulas elsewhere (a
  rate column, the title) are allowed and their computed value is kept in ``raw_row``. An Excel error value
  (``#REF!``, ``#DIV/0!``, ``#N/A``, …, stored as an error or typed as text) is rejected as such. A date, time
  or duration where a number, a year or 0/1 belongs is rejected saying so (the cell is formatted as a date:
  a year 2023 so formatted reads as 1905-07-15). Digits other than ASCII 0-9 (superscript ``²⁰²³``,
  full-width, Arabic-Indic, …) in ``NamKeHoach``, ``LaKeoDai`` and the amounts are rejected, naming the
  character. Amounts must stay below 10^18 VND (text amounts at most 100 characters) and ``MaDuAn`` and
  ``ChuDauTu`` at most 100 characters: every value then fits the warehouse's columns and indexes, so no
  file can fail in the database and block the inbox night after night.
- A file must hold at least one data row, and each plan line (project code, funding source, plan year,
  carried-over flag) at most once.
- ``GiaiNganLuyKe`` of a plan line may not be below that line's figure on the latest earlier report date
  already loaded (the current file of that date). Later report dates are not compared: when a re-issue of an
  old date disagrees with them, which one is wrong is for the data team to say.
- Every problem of a file is collected; the recorded row and column are those of the first (by row, then
  column), and the reason lists a few more.
- A file whose bytes are read but are no workbook (not an xlsx, truncated while being copied, no
  ``GiaiNgan`` sheet) is rejected without row or column, known by its SHA-256 (a complete copy is another
  content, read on the next run). Any other exception while reading, parsing or checking one file (an
  openpyxl bug, an unexpected type) rejects it with ``<ExceptionType>: <message>`` as the reason.
- Database errors are not rejections: they propagate, as does any failure while the file's rows are
  written, leaving that file's transaction rolled back and the file unrecorded, so the next run tries it
  again. Paths and reasons are stored as valid UTF-8 (file-name bytes that are not UTF-8 become ``\\xNN``).
- Runs are serialised by a session advisory lock, so two runs never load the same file twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import openpyxl
import psycopg
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.worksheet._reader import WorkSheetParser
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

# Caps on what one file may cost (FINANCE_MAX_FILE_BYTES, FINANCE_MAX_UNCOMPRESSED_BYTES in the settings).
DEFAULT_MAX_FILE_BYTES = 50 * 2**20
DEFAULT_MAX_UNCOMPRESSED_BYTES = 200 * 2**20
MAX_COMPRESSION_RATIO = 100  # real workbooks' parts expand 5-20:1; deflate bombs about 1000:1
RATIO_CHECKED_ABOVE = 2**20  # a small part may compress well and still cost nothing
EXCEL_MAX_ROW, EXCEL_MAX_COLUMN = 1_048_576, 16_384
MAX_SHEET_CELLS = 10_000_000  # rows x stored width; openpyxl pads each row to its last cell
MAX_CODE_LENGTH = 100  # MaDuAn is in a btree index, whose entries must stay well under 2.7 kB
MAX_AMOUNT = Decimal(10) ** 18  # VND; the province's whole capital plan is about 10^13
MAX_AMOUNT_TEXT = 100
# What Excel shows in a cell whose formula failed (openpyxl returns them as text).
EXCEL_ERRORS = frozenset(
    {
        "#NULL!",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#N/A",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
    }
)
UNREAD_KEY_PREFIX = "unread-"  # file_sha256 of a file refused before its content was examined
SHOWN_TEXT = 80  # characters of a cell value or formula quoted in a reason

LOADED, REJECTED, SUPERSEDED, SKIPPED_NAME, SKIPPED = "loaded", "rejected", "superseded", "skipped-name", "skipped"
# Serialises loader runs on one warehouse (an arbitrary, fixed key).
ADVISORY_LOCK_KEY = 4_460_218_305
CONNECT_TIMEOUT = 10

# Digits with thousands groups of one style, or plain digits; then an optional decimal part. [0-9], not \d:
# \d would take any Unicode digit, and Decimal() would read it.
_AMOUNT = re.compile(
    r"(?P<int>[0-9]{1,3}(?P<sep>[.,])[0-9]{3}(?:(?P=sep)[0-9]{3})*|[0-9]+)(?:(?P<dec>[.,])(?P<frac>[0-9]+))?"
)
_YEAR = re.compile(r"[0-9]{1,9}")
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

    Raises CellError for empty cells, text that is not a number ("chưa có số liệu"), digits other than ASCII
    0-9, dates, negative amounts and amounts of 10^18 VND or more.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CellError("empty; an amount is required")
    _refuse_temporal(value, "an amount")
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
        raise CellError(f"{_shown(value)} is not an amount")
    if amount < 0:
        raise CellError(f"negative amount {_shown(value)}")
    if amount >= MAX_AMOUNT:
        raise CellError(f"{_shown(value)} is too large to be an amount in VND (at most 18 digits)")
    return amount


def _amount_from_text(text: str) -> Decimal:
    _refuse_foreign_digits(text)
    if len(text) > MAX_AMOUNT_TEXT:
        raise CellError(f"{_shown(text)} is not a number (more than {MAX_AMOUNT_TEXT} characters)")
    compact = _WHITESPACE.sub("", text)
    negative = False
    if compact.startswith("(") and compact.endswith(")"):  # accounting style
        negative, compact = True, compact[1:-1]
    if compact[:1] in ("-", "\u2212"):
        negative, compact = True, compact[1:]
    match = _AMOUNT.fullmatch(compact)
    if match is None or (match["sep"] is not None and match["dec"] == match["sep"]):
        raise CellError(f"{_shown(text)} is not a number")
    digits = match["int"].replace(match["sep"] or "", "")
    amount = Decimal(f"{digits}.{match['frac']}" if match["frac"] else digits)
    return -amount if negative else amount


def _refuse_foreign_digits(text: str) -> None:
    """Refuse digits other than ASCII 0-9: ``int()`` refuses superscripts that ``isdigit()`` accepts, and
    ``Decimal()`` silently reads full-width or Arabic-Indic ones; a figure typed so is not trusted."""
    for char in text:
        if char.isnumeric() and not ("0" <= char <= "9"):
            name = unicodedata.name(char, "unnamed character")
            raise CellError(
                f"{_shown(text)} holds {char!r} (U+{ord(char):04X} {name}), not an ASCII digit 0-9; "
                "type the figure with the digits 0-9"
            )


def _refuse_temporal(value: object, wanted: str) -> None:
    """A date, time or duration where a number belongs: the cell is formatted as one in Excel."""
    if isinstance(value, datetime | date | time | timedelta):
        shown = str(value) if isinstance(value, timedelta) else value.isoformat()
        kind = "a duration" if isinstance(value, timedelta) else "a time" if isinstance(value, time) else "a date"
        raise CellError(
            f"holds {kind} ({shown}) where {wanted} belongs; the cell is formatted as a date or time in Excel"
        )


def _refuse_excel_error(value: object) -> None:
    if isinstance(value, str) and value.strip().upper() in EXCEL_ERRORS:
        raise CellError(f"holds the Excel error {value.strip()}; the cell must hold a value, not a failed formula")


def _shown(value: object) -> str:
    """A value quoted in a reason: its repr, cut to a readable length."""
    text = value if isinstance(value, str) and value.startswith("=") else repr(value)
    return text if len(text) <= SHOWN_TEXT else f"{text[:SHOWN_TEXT]}… ({len(text)} characters)"


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


def _code(value: object) -> str:
    code = _required_text(value)
    if len(code) > MAX_CODE_LENGTH:
        raise CellError(f"{_shown(code)} is too long for a code (at most {MAX_CODE_LENGTH} characters)")
    return code


def _funding_source(value: object) -> str:
    source = _required_text(value).upper()
    if source not in FUNDING_SOURCES:
        raise CellError(f"{_shown(value)} is not one of {', '.join(FUNDING_SOURCES)}")
    return source


def _plan_year(value: object) -> int:
    _refuse_temporal(value, "a plan year")
    text = _text(value)
    if text is not None:
        _refuse_foreign_digits(text)
    if text is None or isinstance(value, bool) or not _YEAR.fullmatch(text):
        raise CellError(f"{_shown(value)} is not a year")
    year = int(text)
    if year not in PLAN_YEARS:
        raise CellError(f"{year} is not a plausible plan year ({PLAN_YEARS.start}-{PLAN_YEARS.stop - 1})")
    return year


def _carried_over(value: object) -> bool:
    _refuse_temporal(value, "0 or 1")
    text = _text(value)
    if text is not None:
        _refuse_foreign_digits(text)
    if text not in ("0", "1"):
        raise CellError(f"{_shown(value)} is not 0 or 1")
    return text == "1"


_PARSERS = {
    "MaDuAn": _code,
    "TenDuAn": _text,
    "ChuDauTu": _code,
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


def archive_problem(content: bytes, max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES) -> str | None:
    """Why an xlsx file's zip archive must not be inflated (a possible zip bomb), judged from its central
    directory alone; None when it may be, or when it is no zip at all (the workbook reader then says so)."""
    try:
        with zipfile.ZipFile(BytesIO(content)) as archive:
            members = archive.infolist()
    except Exception:  # not a zip, or a damaged one: parse_workbook rejects it with the details
        return None
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECKED_ABOVE and ratio > MAX_COMPRESSION_RATIO:
            return (
                f"zip member {member.filename} would expand {ratio:.0f}:1 ({member.compress_size} to "
                f"{member.file_size} bytes), above {MAX_COMPRESSION_RATIO}:1; not read (a possible zip bomb)"
            )
    total = sum(member.file_size for member in members)
    if total > max_uncompressed_bytes:
        return (
            f"its zip archive would expand to {total} bytes, above FINANCE_MAX_UNCOMPRESSED_BYTES "
            f"({max_uncompressed_bytes}); not read (a possible zip bomb)"
        )
    return None


def parse_workbook(content: bytes, max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES) -> ParsedWorkbook:
    """Read sheet ``GiaiNgan`` of an xlsx file's bytes into typed rows, or the problems rejecting it.

    Title rows above the header, blank rows and thousands separators are handled; see the module
    docstring for what is a problem. Never raises (but for BaseExceptions such as KeyboardInterrupt): any
    failure becomes a problem of the file.
    """
    try:
        refusal = archive_problem(content, max_uncompressed_bytes)
        if refusal is not None:
            raise _UnreadableError(refusal)
        sheet = _read_sheet(content)
        return _parse_grid(sheet)
    except _UnreadableError as exc:
        return ParsedWorkbook(None, {}, [], [Problem(None, None, None, str(exc))])
    except Exception as exc:  # an openpyxl bug, a value of an unforeseen type: this file only is rejected
        log.warning("Unexpected error parsing a workbook", exc_info=True)
        return ParsedWorkbook(None, {}, [], [Problem(None, None, None, _describe(exc))])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _UnreadableError(Exception):
    pass


@dataclass(frozen=True)
class _Sheet:
    """Sheet GiaiNgan as read: cell values by row (index 0 is Excel row 1), and what data_only hides."""

    grid: list[tuple]
    formulas: dict[tuple[int, int], str]  # (1-based row, 1-based column) -> formula text
    merges: list[str]  # merged ranges, e.g. "A3:I3"


def _read_sheet(content: bytes) -> _Sheet:
    try:
        # data_only: a formula cell counts with the value Excel last computed for it.
        book = openpyxl.load_workbook(BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types (zip, XML, key errors) on damaged files
        raise _UnreadableError(f"cannot be read as an xlsx workbook ({_describe(exc)})") from exc
    try:
        if SHEET_NAME not in book.sheetnames:
            raise _UnreadableError(f"has no sheet {SHEET_NAME} (sheets: {', '.join(book.sheetnames)})")
        if len(book.sheetnames) > 1:
            others = ", ".join(name for name in book.sheetnames if name != SHEET_NAME)
            raise _UnreadableError(
                f"holds other sheets beside {SHEET_NAME} ({others}): which sheet holds the figures is "
                f"ambiguous; the workbook must hold the one sheet {SHEET_NAME}"
            )
        sheet = book[SHEET_NAME]
        try:
            # Structure first: it bounds what the value pass below would build in memory.
            formulas, merges = _scan_structure(sheet)
            # Some writers store a wrong sheet size, which would cut rows short; read every cell present.
            sheet.reset_dimensions()
            grid = [tuple(row) for row in sheet.iter_rows(values_only=True)]
        except _UnreadableError:
            raise
        except Exception as exc:  # as above: damaged sheet XML
            raise _UnreadableError(f"sheet {SHEET_NAME} cannot be read ({_describe(exc)})") from exc
        return _Sheet(grid, formulas, merges)
    finally:
        book.close()


def _scan_structure(sheet) -> tuple[dict[tuple[int, int], str], list[str]]:
    """The formulas and merged ranges of a read-only sheet, checking the row and cell order on the way.

    openpyxl's read-only sheet has no merged ranges, so its own sheet parser reads the XML once more with
    ``data_only=False`` (read-only mode uses the same parser, so the two passes agree on every cell).
    """
    formulas: dict[tuple[int, int], str] = {}
    cells = last_row = 0
    with sheet._get_source() as source:
        parser = WorkSheetParser(source, sheet._shared_strings, data_only=False)
        for row_number, row in parser.parse():
            if row_number <= last_row:
                raise _UnreadableError(
                    f"sheet {SHEET_NAME} is damaged: its XML lists row {row_number} after row {last_row}"
                )
            if row_number > EXCEL_MAX_ROW:
                raise _UnreadableError(f"sheet {SHEET_NAME} is damaged: row {row_number} is beyond Excel's last row")
            last_column = 0
            for cell in row:
                column = cell["column"]
                if column <= last_column:
                    raise _UnreadableError(
                        f"sheet {SHEET_NAME} is damaged: row {row_number} lists column "
                        f"{get_column_letter(column)} after column {get_column_letter(last_column)}"
                    )
                if column > EXCEL_MAX_COLUMN:
                    raise _UnreadableError(
                        f"sheet {SHEET_NAME} is damaged: row {row_number} has a cell beyond Excel's last column"
                    )
                last_column = column
                if cell["data_type"] == "f":
                    formulas[(row_number, column)] = _formula_text(cell["value"])
            cells += last_column
            if cells > MAX_SHEET_CELLS:
                raise _UnreadableError(
                    f"sheet {SHEET_NAME} spans more than {MAX_SHEET_CELLS} cells (by row {row_number}); not read"
                )
            last_row = row_number
        merges = [str(merged.ref) for merged in parser.merged_cells.mergeCell] if parser.merged_cells else []
    return formulas, merges


def _formula_text(value: object) -> str:
    if isinstance(value, str):
        return value
    text = getattr(value, "text", None)  # ArrayFormula
    if isinstance(text, str):
        return text
    return f"{type(value).__name__} {getattr(value, 'ref', '')}".strip()  # DataTableFormula


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


def _column_name(columns: dict[str, int], keys: list[str], index: int) -> str:
    """The header of a 0-based column: a required header's own spelling, else the raw key, else its letter."""
    required = next((h for h, i in columns.items() if i == index), None)
    if required is not None:
        return required
    return keys[index] if index < len(keys) else get_column_letter(index + 1)


def _merge_problems(sheet: _Sheet, header_row: int, columns: dict[str, int], keys: list[str]) -> list[Problem]:
    """Merged ranges reaching the header row or below it (title rows above the header may be merged)."""
    problems = []
    for ref in sheet.merges:
        min_col, min_row, max_col, max_row = range_boundaries(ref)
        if max_row < header_row or (min_col == max_col and min_row == max_row):
            continue
        row = max(min_row, header_row)
        name, letter = _column_name(columns, keys, min_col - 1), get_column_letter(min_col)
        where = "in the header row" if min_row <= header_row else "among the data rows"
        problems.append(
            Problem(
                row,
                name,
                letter,
                f"merged cells {ref} {where}: a merged range keeps its value in its first cell only "
                f"({get_column_letter(min_col)}{min_row}); unmerge them and fill every cell",
            )
        )
    return problems


def _problem_order(problem: Problem) -> tuple[int, int]:
    """By row, then column: the nine in their spec order (as a missing column has no letter), others after."""
    if problem.column is None:
        column = -1
    elif problem.column in HEADERS:
        column = HEADERS.index(problem.column)
    else:
        column = len(HEADERS) + (column_index_from_string(problem.letter) if problem.letter else 0)
    return problem.row or 0, column


def _parse_grid(sheet: _Sheet) -> ParsedWorkbook:
    grid = sheet.grid
    header_row, columns, problems = _find_header(grid)
    if header_row is None:
        return ParsedWorkbook(None, columns, [], problems)
    keys = _raw_keys(grid[header_row - 1])
    # A merged header hides the headers under it: say so before (or beside) the columns it makes missing.
    merged = _merge_problems(sheet, header_row, columns, keys)
    if problems:
        return ParsedWorkbook(header_row, columns, [], sorted(problems + merged, key=_problem_order))
    problems = merged
    rows: list[DisbursementRow] = []
    first_row_of_line: dict[tuple, int] = {}
    for row_number, cells in enumerate(grid[header_row:], start=header_row + 1):
        formulas = {h: sheet.formulas.get((row_number, i + 1)) for h, i in columns.items()}
        # A formula never computed has no value: its row is not blank.
        if all(_blank(v) for v in cells) and not any(formulas.values()):
            continue
        typed = {}
        for header in HEADERS:
            index = columns[header]
            value = cells[index] if index < len(cells) else None
            try:
                if formulas[header] is not None:
                    raise CellError(
                        f"holds the formula {_shown(formulas[header])}; a workbook must hold values, not "
                        "formulas (paste the figures as values)"
                    )
                _refuse_excel_error(value)
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
    problems.sort(key=_problem_order)
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
    return _storable(reason)


def _storable(text: str) -> str:
    """Text PostgreSQL takes: no NUL, no lone surrogates (undecodable file-name bytes become ``\\xNN``)."""
    if text.isascii() and "\x00" not in text:
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes, as os.fsdecode got them
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


# --- loading the inbox -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    path: Path
    relative: str  # relative to the inbox, as stored (valid UTF-8)
    report_date: date | None
    modified_ns: int
    size: int
    unread_key: str  # its pseudo key, should its content not be examined

    @property
    def order(self) -> tuple:
        return (self.report_date or date.min, self.modified_ns, self.relative.count("/"), self.relative)


@dataclass(frozen=True)
class _Caps:
    max_file_bytes: int
    max_uncompressed_bytes: int


def _candidates(inbox: Path) -> list[_Candidate]:
    found = []
    for path in inbox.rglob("*"):
        relative = path.relative_to(inbox)
        if any(part.startswith((".", "~$")) for part in relative.parts):
            continue
        if path.suffix.lower() not in CANDIDATE_SUFFIXES:
            continue
        try:
            info = path.stat()
        except OSError:
            try:
                info = path.lstat()  # a broken link: listed, and refused when read
            except OSError:
                continue  # gone since the folder was listed: nothing is left to record
        found.append(
            _Candidate(
                path,
                _storable(relative.as_posix()),
                report_date_from_name(path.name),
                info.st_mtime_ns,
                info.st_size,
                _unread_key(os.fsencode(relative.as_posix()), info.st_size, info.st_mtime_ns),
            )
        )
    return sorted(found, key=lambda c: c.order)


def _unread_key(relative: bytes, size: int, modified_ns: int) -> str:
    """The pseudo key of a file refused before its content was examined: stable while it is unchanged."""
    digest = hashlib.sha256(b"\0".join((relative, str(size).encode(), str(modified_ns).encode())))
    return UNREAD_KEY_PREFIX + digest.hexdigest()


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
    caps = _Caps(max_file_bytes, max_uncompressed_bytes)
    result = FinanceLoadResult(run_id)
    with psycopg.connect(writer_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        for candidate in _candidates(inbox):
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


def _load_file(conn: psycopg.Connection, inbox: Path, candidate: _Candidate, run_id: str, caps: _Caps) -> FileOutcome:
    try:
        # One read: the hash is that of exactly the bytes parsed, even if the file is being replaced meanwhile.
        content = _read_bytes(candidate.path, caps.max_file_bytes)
        refusal = archive_problem(content, caps.max_uncompressed_bytes)
    except _UnreadableError as exc:
        refusal = str(exc)
    except Exception as exc:  # whatever reading one file raises is about that file only
        log.warning("Unexpected error reading %s", candidate.relative, exc_info=True)
        refusal = _describe(exc)
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


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, or _UnreadableError saying why not: checked to be a regular file no larger than
    ``max_bytes`` on the open file, before a byte is read (O_NONBLOCK: opening a pipe must not hang)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise _UnreadableError(
            f"cannot be read ({_os_error(exc)}): it was moved or deleted after the inbox was listed, or is a "
            "broken link"
        ) from exc
    except OSError as exc:
        raise _UnreadableError(f"cannot be read ({_os_error(exc)})") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _UnreadableError("is a folder, not a workbook file")
        if not stat.S_ISREG(info.st_mode):
            raise _UnreadableError("is not a regular file (a pipe, socket or device); not read")
        if info.st_size > max_bytes:
            raise _UnreadableError(f"is {info.st_size} bytes, above FINANCE_MAX_FILE_BYTES ({max_bytes}); not read")
        chunks, total = [], 0
        while chunk := os.read(fd, min(2**20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise _UnreadableError(f"grew above FINANCE_MAX_FILE_BYTES ({max_bytes}) while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise _UnreadableError(f"cannot be read ({_os_error(exc)})") from exc
    finally:
        os.close(fd)


def _os_error(exc: OSError) -> str:
    """E.g. ``PermissionError: Permission denied``: without the absolute path, which says nothing more and
    would differ between servers."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _refuse_unread(conn: psycopg.Connection, candidate: _Candidate, run_id: str, message: str) -> FileOutcome:
    """Record a file whose content was not examined under its pseudo key (see the module docstring); skip it
    when it was already refused so, unchanged."""
    key = candidate.unread_key
    if candidate.report_date is None:
        status, reason = SKIPPED_NAME, _name_reason(candidate)
    else:
        status, reason = REJECTED, _storable(f"{candidate.relative}: {message}")
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


def _file_record(candidate: _Candidate, key: str, run_id: str) -> dict:
    return {
        "file_sha256": key,
        "file_name": _storable(candidate.path.name),
        "path": candidate.relative,
        "report_date": candidate.report_date,
        "file_modified_at": _modified_at(candidate.modified_ns),
        "run_id": run_id,
        "reason": None,
        "reject_row": None,
        "reject_column": None,
        "rows": 0,
    }


def _name_reason(candidate: _Candidate) -> str:
    return f"{candidate.relative}: file name is not giai-ngan-YYYY-MM-DD.xlsx with a valid date; not read"


def _modified_at(modified_ns: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(modified_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):  # a clock set to year 10000 is no reason to fail
        return None


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
