"""Parsing and checking one disbursement workbook (see the finance-workbook spec): pure functions of the
file's bytes, with no I/O beyond them. ``parse_workbook`` turns the bytes of a ``giai-ngan-*.xlsx`` file
into typed rows, or into the problems that reject the file, each at its 1-based Excel row and column.
``decreasing_cumulative`` compares a parsed file with the figures already loaded for earlier report dates
(which ``ingestion.finance.loader`` reads from the warehouse).

Decisions where the spec is silent:

- Sheets: the workbook holds exactly one sheet, ``GiaiNgan``; another sheet beside it (even hidden) makes it
  ambiguous which one holds the figures, so the file is rejected. The sheet is read twice: once for values
  (``data_only``: a formula counts with the value Excel last computed), once with ``data_only=False`` for
  formulas and merged ranges (openpyxl's own sheet parser: its read-only mode has no merged ranges). A sheet
  whose XML repeats rows or cells or lists them out of order (openpyxl would silently drop some), goes
  beyond Excel's last row or column, or spans more than 10 million cells (rows times the width each row is
  stored with; bounds memory) is rejected as damaged, without row or column. Before any of it, the zip
  guard (``ingestion.finance.archive``) refuses an archive that would expand too far.
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
- A file whose bytes are no workbook (not an xlsx, truncated while being copied, no ``GiaiNgan`` sheet) is
  rejected without row or column. Any other exception while reading, parsing or checking it (an openpyxl
  bug, an unexpected type) rejects it with ``<ExceptionType>: <message>`` as the problem: ``parse_workbook``
  never raises, so no file can stop the others.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from io import BytesIO

import openpyxl
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.worksheet._reader import WorkSheetParser

from ingestion.finance.archive import DEFAULT_MAX_UNCOMPRESSED_BYTES, archive_problem

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
HEADER_SEARCH_ROWS = 20
MIN_HEADER_MATCH = 3  # fewer known headers than this and a row is not taken for a damaged header
PLAN_YEARS = range(2000, 2101)
REASON_MORE_PROBLEMS = 5  # further problems listed in a rejection's reason

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
SHOWN_TEXT = 80  # characters of a cell value or formula quoted in a reason

# Digits with thousands groups of one style, or plain digits; then an optional decimal part. [0-9], not \d:
# \d would take any Unicode digit, and Decimal() would read it.
_AMOUNT = re.compile(
    r"(?P<int>[0-9]{1,3}(?P<sep>[.,])[0-9]{3}(?:(?P=sep)[0-9]{3})*|[0-9]+)(?:(?P<dec>[.,])(?P<frac>[0-9]+))?"
)
_YEAR = re.compile(r"[0-9]{1,9}")
_WHITESPACE = re.compile(r"\s+")


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
class LoadedFigure:
    """A plan line's cumulative disbursement as already loaded for an earlier report date."""

    report_date: date
    file_name: str
    amount: Decimal


def parse_workbook(content: bytes, max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES) -> ParsedWorkbook:
    """Read sheet ``GiaiNgan`` of an xlsx file's bytes into typed rows, or the problems rejecting it.

    Title rows above the header, blank rows and thousands separators are handled; see the module
    docstring for what is a problem. Never raises (but for BaseExceptions such as KeyboardInterrupt): any
    failure becomes a problem of the file.
    """
    try:
        refusal = archive_problem(content, max_uncompressed_bytes)
        if refusal is not None:
            raise _Unreadable(refusal)
        sheet = _read_sheet(content)
        return _parse_grid(sheet)
    except _Unreadable as exc:
        return ParsedWorkbook(None, {}, [], [Problem(None, None, None, str(exc))])
    except Exception as exc:  # an openpyxl bug, a value of an unforeseen type: this file only is rejected
        log.warning("Unexpected error parsing a workbook", exc_info=True)
        return ParsedWorkbook(None, {}, [], [Problem(None, None, None, describe_error(exc))])


def describe_error(exc: BaseException) -> str:
    """An unforeseen exception as a reason: ``<ExceptionType>: <message>``."""
    return f"{type(exc).__name__}: {exc}"


class _Unreadable(Exception):
    """Bytes that are no readable workbook, or a sheet that must not be read; the message says why."""


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


def _number_text(value: object, wanted: str) -> str | None:
    """The text of a cell where a small whole number belongs (``_text``): not a date or time, and typed with the
    digits 0-9 only."""
    _refuse_temporal(value, wanted)
    text = _text(value)
    if text is not None:
        _refuse_foreign_digits(text)
    return text


def _plan_year(value: object) -> int:
    text = _number_text(value, "a plan year")
    if text is None or isinstance(value, bool) or not _YEAR.fullmatch(text):
        raise CellError(f"{_shown(value)} is not a year")
    year = int(text)
    if year not in PLAN_YEARS:
        raise CellError(f"{year} is not a plausible plan year ({PLAN_YEARS.start}-{PLAN_YEARS.stop - 1})")
    return year


def _carried_over(value: object) -> bool:
    text = _number_text(value, "0 or 1")
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
        raise _Unreadable(f"cannot be read as an xlsx workbook ({describe_error(exc)})") from exc
    try:
        if SHEET_NAME not in book.sheetnames:
            raise _Unreadable(f"has no sheet {SHEET_NAME} (sheets: {', '.join(book.sheetnames)})")
        if len(book.sheetnames) > 1:
            others = ", ".join(name for name in book.sheetnames if name != SHEET_NAME)
            raise _Unreadable(
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
        except _Unreadable:
            raise
        except Exception as exc:  # as above: damaged sheet XML
            raise _Unreadable(f"sheet {SHEET_NAME} cannot be read ({describe_error(exc)})") from exc
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
                raise _Unreadable(
                    f"sheet {SHEET_NAME} is damaged: its XML lists row {row_number} after row {last_row}"
                )
            if row_number > EXCEL_MAX_ROW:
                raise _Unreadable(f"sheet {SHEET_NAME} is damaged: row {row_number} is beyond Excel's last row")
            last_column = 0
            for cell in row:
                column = cell["column"]
                if column <= last_column:
                    raise _Unreadable(
                        f"sheet {SHEET_NAME} is damaged: row {row_number} lists column "
                        f"{get_column_letter(column)} after column {get_column_letter(last_column)}"
                    )
                if column > EXCEL_MAX_COLUMN:
                    raise _Unreadable(
                        f"sheet {SHEET_NAME} is damaged: row {row_number} has a cell beyond Excel's last column"
                    )
                last_column = column
                if cell["data_type"] == "f":
                    formulas[(row_number, column)] = _formula_text(cell["value"])
            cells += last_column
            if cells > MAX_SHEET_CELLS:
                raise _Unreadable(
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
                    f"plan line {describe_line(row.plan_line)} already on row {first}",
                )
            )
        rows.append(row)
    if not rows and not problems:
        problems.append(Problem(header_row, None, None, "no data rows below the header"))
    problems.sort(key=_problem_order)
    return ParsedWorkbook(header_row, columns, rows, problems)


def decreasing_cumulative(parsed: ParsedWorkbook, earlier: Mapping[tuple, LoadedFigure]) -> list[Problem]:
    """Rows whose ``GiaiNganLuyKe`` is below their plan line's figure in ``earlier`` (plan line -> the figure
    of the latest earlier report date already loaded), in row order."""
    letter = parsed.letter("GiaiNganLuyKe")
    problems = []
    for row in parsed.rows:
        before = earlier.get(row.plan_line)
        if before is not None and row.disbursed_cumulative < before.amount:
            problems.append(
                Problem(
                    row.row_number,
                    "GiaiNganLuyKe",
                    letter,
                    f"cumulative disbursement {row.disbursed_cumulative} of {describe_line(row.plan_line)} is "
                    f"below {before.amount} reported on {before.report_date:%Y-%m-%d} ({before.file_name})",
                )
            )
    return problems


def describe_line(line: tuple[str, str, int, bool]) -> str:
    """A plan line as shown in a reason, e.g. ``DA-2023-0001 NSDP 2023 LaKeoDai=0``."""
    code, source, year, carried = line
    return f"{code} {source} {year} LaKeoDai={int(carried)}"


def summarise(problems: list[Problem]) -> str:
    """A rejection's reason (without the file's name): where and what the first problem is, then a few more."""
    first, more = problems[0], problems[1:]
    where = first.where()
    reason = f"{where}: {first.message}" if where else first.message
    if more:
        listed = "; ".join(f"{p.where()}: {p.message}" for p in more[:REASON_MORE_PROBLEMS])
        others = len(more) - REASON_MORE_PROBLEMS
        reason += f" (and {len(more)} more: {listed}{f'; {others} others' if others > 0 else ''})"
    return reason
