"""Parsing and checking one disbursement workbook (``ingestion.finance.workbook``, the zip guard of
``ingestion.finance.archive`` and the file-name rules of ``ingestion.finance.inbox``): pure functions of bytes,
fed small workbooks built in memory with openpyxl. Expected rows, rows and columns of rejections come from
the finance-workbook spec (sheet ``GiaiNgan``, the nine columns and their types) and the decisions written in
the modules' docstrings; each is written out here, not computed with the code under test."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest

from ingestion.finance.archive import archive_problem
from ingestion.finance.inbox import report_date_from_name, storable
from ingestion.finance.workbook import (
    CellError,
    LoadedFigure,
    Problem,
    decreasing_cumulative,
    parse_amount,
    parse_workbook,
    summarise,
)

HEADER = ["MaDuAn", "TenDuAn", "ChuDauTu", "NguonVon", "NamKeHoach", "LaKeoDai", "KeHoachTTgGiao",
          "KeHoachUBNDGiao", "GiaiNganLuyKe"]
ROW_A = ["DA-2023-0001", "Trường THCS Lê Lợi", "000.00.15.H47", "NSDP", 2023, 0, 1_000_000_000, 1_200_000_000,
         300_000_000]
ROW_B = ["DA-2023-0002", "Cầu tràn thôn 3", "000.00.15.H47", "NSTW", 2023, 1, 500_000_000, 500_000_000, 0]


def workbook(*rows: list, sheet: str = "GiaiNgan", others: tuple[str, ...] = (), merge: str | None = None) -> bytes:
    """The bytes of an xlsx file whose one sheet (or more) holds ``rows`` from A1 down."""
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    if merge:
        book.active.merge_cells(merge)
    for name in others:
        book.create_sheet(name)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def with_cell(row: list, column: str, value) -> list:
    changed = list(row)
    changed[HEADER.index(column)] = value
    return changed


def only_problem(content: bytes) -> Problem:
    """The first problem of a workbook that must be rejected."""
    parsed = parse_workbook(content)
    assert parsed.problems, "the workbook should be rejected"
    return parsed.problems[0]


# --- accepted ----------------------------------------------------------------------------------------------


def test_a_clean_workbook_gives_typed_rows_at_their_excel_rows():
    parsed = parse_workbook(workbook(HEADER, ROW_A, ROW_B))
    assert parsed.problems == [] and parsed.header_row == 1
    a, b = parsed.rows
    assert (a.row_number, a.project_code, a.project_name, a.investor_code, a.funding_source, a.plan_year,
            a.is_carried_over) == (2, "DA-2023-0001", "Trường THCS Lê Lợi", "000.00.15.H47", "NSDP", 2023, False)
    assert (a.plan_pm, a.plan_province, a.disbursed_cumulative) == (
        Decimal(1_000_000_000), Decimal(1_200_000_000), Decimal(300_000_000))
    assert (b.row_number, b.funding_source, b.is_carried_over, b.disbursed_cumulative) == (3, "NSTW", True, 0)
    assert a.plan_line == ("DA-2023-0001", "NSDP", 2023, False)
    assert a.raw_row["MaDuAn"] == "DA-2023-0001" and a.raw_row["GiaiNganLuyKe"] == "300000000"


def test_title_rows_above_the_header_and_blank_rows_between_data_rows():
    parsed = parse_workbook(workbook(["ỦY BAN NHÂN DÂN TỈNH QUẢNG NAM"], ["BÁO CÁO GIẢI NGÂN"], [],
                                     HEADER, ROW_A, [], [None, "  "], ROW_B, merge="A2:I2"))
    assert parsed.problems == [] and parsed.header_row == 4
    assert [r.row_number for r in parsed.rows] == [5, 8]


def test_headers_are_found_trimmed_in_any_case_and_any_order_and_other_columns_kept():
    header = ["Ghi chú", *(f"  {h.upper()} " for h in reversed(HEADER))]
    row = ["đã đối chiếu KBNN", *reversed(ROW_A)]
    parsed = parse_workbook(workbook(header, row))
    assert parsed.problems == []
    (only,) = parsed.rows
    assert (only.project_code, only.plan_year, only.disbursed_cumulative) == ("DA-2023-0001", 2023, 300_000_000)
    assert only.raw_row["Ghi chú"] == "đã đối chiếu KBNN"


@pytest.mark.parametrize(("text", "amount"), [
    ("1.234.567.000", 1_234_567_000),
    ("1,234,567,000", 1_234_567_000),
    ("1 234 567 000", 1_234_567_000),
    ("  250000000 ", 250_000_000),
    ("1.500", 1500),  # one separator then exactly three digits: thousands
    ("1,5", Decimal("1.5")),  # otherwise a decimal mark
    ("1.234,5", Decimal("1234.5")),  # a decimal mark after thousands groups of the other style
    ("1,234.75", Decimal("1234.75")),
    ("0", 0),
])
def test_text_amounts_with_thousands_separators(text, amount):
    assert parse_amount(text) == Decimal(amount)
    parsed = parse_workbook(workbook(HEADER, with_cell(ROW_A, "KeHoachTTgGiao", text)))
    assert parsed.problems == [] and parsed.rows[0].plan_pm == Decimal(amount)


def test_numbers_are_taken_exactly():
    assert parse_amount(0.1) == Decimal("0.1")
    assert parse_amount(1.5e9) == Decimal(1_500_000_000)
    assert parse_amount(10**18 - 1) == Decimal(10**18 - 1)


@pytest.mark.parametrize(("value", "words"), [
    (None, "empty"),
    ("   ", "empty"),
    ("chưa có số liệu", "not a number"),
    ("-5", "negative"),
    ("(1.000)", "negative"),
    (-1, "negative"),
    (10**18, "too large"),
    ("１２３", "U+FF11"),  # full-width digits: Decimal() would read them
    ("٣", "ARABIC-INDIC"),
    ("1.234.56", "not a number"),
    ("1,234.567,000", "not a number"),
    (True, "not an amount"),
    (float("nan"), "not an amount"),
    (datetime(2023, 9, 30), "a date"),
    (date(2023, 9, 30), "a date"),
    ("1" * 101, "more than 100 characters"),
])
def test_what_is_no_amount(value, words):
    with pytest.raises(CellError, match=re.escape(words)):
        parse_amount(value)


def test_funding_sources_are_trimmed_and_upper_cased_and_a_project_name_may_be_empty():
    parsed = parse_workbook(workbook(HEADER, with_cell(with_cell(ROW_A, "NguonVon", " oda "), "TenDuAn", None),
                                     with_cell(ROW_B, "NamKeHoach", "2023")))
    assert parsed.problems == []
    assert parsed.rows[0].funding_source == "ODA" and parsed.rows[0].project_name is None
    assert parsed.rows[1].plan_year == 2023


# --- rejected at a row and column ---------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "value", "words"), [
    ("GiaiNganLuyKe", "chưa có số liệu", "not a number"),
    ("KeHoachTTgGiao", -120_000_000, "negative"),
    ("KeHoachUBNDGiao", None, "empty"),
    ("MaDuAn", None, "empty"),
    ("ChuDauTu", "  ", "empty"),
    ("NguonVon", "NSNN", "not one of NSTW, NSDP, CTMTQG, ODA"),
    ("NamKeHoach", 1999, "2000-2100"),
    ("NamKeHoach", 2023.5, "not a year"),
    ("NamKeHoach", datetime(1905, 7, 15), "formatted as a date"),
    ("NamKeHoach", "²⁰²³", "SUPERSCRIPT"),
    ("LaKeoDai", 2, "not 0 or 1"),
    ("GiaiNganLuyKe", "#DIV/0!", "Excel error #DIV/0!"),
    ("MaDuAn", "X" * 101, "too long"),
])
def test_a_bad_cell_rejects_the_file_at_its_row_and_column(column, value, words):
    problem = only_problem(workbook(HEADER, ROW_A, with_cell(ROW_B, column, value)))
    letter = "ABCDEFGHI"[HEADER.index(column)]
    assert (problem.row, problem.column, problem.letter) == (3, column, letter)
    assert words in problem.message
    assert problem.where() == f"row 3, column {column} (cell {letter}3)"


def test_a_formula_in_a_data_cell_is_rejected_naming_it():
    problem = only_problem(workbook(HEADER, with_cell(ROW_A, "GiaiNganLuyKe", "=G2*0.3")))
    assert (problem.row, problem.column, problem.letter) == (2, "GiaiNganLuyKe", "I")
    assert "=G2*0.3" in problem.message and "formula" in problem.message


def test_a_missing_column_is_rejected_at_the_header_row_naming_it():
    header = [h for h in HEADER if h != "NguonVon"]
    row = [v for h, v in zip(HEADER, ROW_A, strict=True) if h != "NguonVon"]
    parsed = parse_workbook(workbook(["BÁO CÁO"], header, row))
    assert parsed.rows == [] and parsed.header_row == 2
    (problem,) = parsed.problems
    assert (problem.row, problem.column, problem.letter) == (2, "NguonVon", None)
    assert "missing" in problem.message


def test_no_header_in_the_first_twenty_rows_is_rejected_without_row():
    problem = only_problem(workbook(*[[f"dòng {n}"] for n in range(1, 21)], HEADER, ROW_A))
    assert (problem.row, problem.column) == (None, None) and "no header row" in problem.message


def test_a_plan_line_twice_is_rejected_at_its_second_row():
    problem = only_problem(workbook(HEADER, ROW_A, ROW_B, with_cell(ROW_A, "GiaiNganLuyKe", 1)))
    assert (problem.row, problem.column) == (4, "MaDuAn") and "already on row 2" in problem.message


def test_a_header_without_data_rows_is_rejected():
    problem = only_problem(workbook(HEADER, [], []))
    assert (problem.row, problem.column) == (1, None) and "no data rows" in problem.message


def test_merged_cells_among_the_data_rows_are_rejected_at_their_first_cell():
    problem = only_problem(workbook(HEADER, ROW_A, ROW_B, merge="C2:C3"))
    assert (problem.row, problem.column, problem.letter) == (2, "ChuDauTu", "C") and "merged" in problem.message


def test_every_problem_is_collected_and_the_first_is_by_row_then_column():
    parsed = parse_workbook(workbook(HEADER, with_cell(ROW_A, "GiaiNganLuyKe", "?"),
                                     with_cell(with_cell(ROW_B, "LaKeoDai", 7), "MaDuAn", None)))
    assert [(p.row, p.column) for p in parsed.problems] == [(2, "GiaiNganLuyKe"), (3, "MaDuAn"), (3, "LaKeoDai")]
    assert parsed.rows == []


def test_a_reason_names_the_first_problem_and_a_few_more():
    problems = [Problem(3, "GiaiNganLuyKe", "I", "'?' is not a number")] + [
        Problem(row, "LaKeoDai", "F", "7 is not 0 or 1") for row in range(4, 11)]
    assert summarise(problems[:1]) == "row 3, column GiaiNganLuyKe (cell I3): '?' is not a number"
    assert summarise(problems) == (
        "row 3, column GiaiNganLuyKe (cell I3): '?' is not a number (and 7 more: "
        "row 4, column LaKeoDai (cell F4): 7 is not 0 or 1; row 5, column LaKeoDai (cell F5): 7 is not 0 or 1; "
        "row 6, column LaKeoDai (cell F6): 7 is not 0 or 1; row 7, column LaKeoDai (cell F7): 7 is not 0 or 1; "
        "row 8, column LaKeoDai (cell F8): 7 is not 0 or 1; 2 others)")
    assert summarise([Problem(None, None, None, "is no workbook")]) == "is no workbook"


# --- rejected whole ------------------------------------------------------------------------------------------


def test_another_sheet_beside_giaingan_makes_the_file_ambiguous():
    problem = only_problem(workbook(HEADER, ROW_A, others=("Sheet2",)))
    assert (problem.row, problem.column) == (None, None) and "Sheet2" in problem.message


def test_a_workbook_without_a_giaingan_sheet_is_rejected():
    problem = only_problem(workbook(HEADER, ROW_A, sheet="Sheet1"))
    assert (problem.row, problem.column) == (None, None) and "no sheet GiaiNgan" in problem.message


@pytest.mark.parametrize("content", [b"", b"not a workbook", workbook(HEADER, ROW_A)[:-200]])
def test_bytes_that_are_no_workbook_are_rejected_without_row(content):
    problem = only_problem(content)
    assert (problem.row, problem.column) == (None, None) and "cannot be read" in problem.message


# --- the cumulative figure against earlier report dates ------------------------------------------------------


def test_a_cumulative_figure_below_the_latest_earlier_report_is_a_problem():
    parsed = parse_workbook(workbook(HEADER, ROW_A, ROW_B))
    earlier = {("DA-2023-0001", "NSDP", 2023, False): LoadedFigure(date(2023, 8, 31), "giai-ngan-2023-08-31.xlsx",
                                                                   Decimal(300_000_001)),
               ("DA-2023-0002", "NSTW", 2023, True): LoadedFigure(date(2023, 8, 31), "giai-ngan-2023-08-31.xlsx",
                                                                  Decimal(0))}
    (problem,) = decreasing_cumulative(parsed, earlier)
    assert (problem.row, problem.column, problem.letter) == (2, "GiaiNganLuyKe", "I")
    assert "300000000" in problem.message and "300000001" in problem.message
    assert "2023-08-31" in problem.message and "giai-ngan-2023-08-31.xlsx" in problem.message


def test_equal_or_higher_figures_and_other_plan_lines_are_no_problem():
    parsed = parse_workbook(workbook(HEADER, ROW_A, ROW_B))
    earlier = {("DA-2023-0001", "NSDP", 2023, False): LoadedFigure(date(2023, 8, 31), "a.xlsx", Decimal(300_000_000)),
               ("DA-2023-0002", "NSTW", 2023, False): LoadedFigure(date(2023, 8, 31), "a.xlsx", Decimal(9 * 10**9))}
    assert decreasing_cumulative(parsed, earlier) == []
    assert decreasing_cumulative(parsed, {}) == []


# --- the zip guard --------------------------------------------------------------------------------------------


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_member_over_1_mib_expanding_above_100_to_1_is_a_possible_zip_bomb():
    bomb = zip_bytes({"xl/worksheets/sheet1.xml": b"\0" * (2 * 2**20)})  # deflate: about 1000:1
    refusal = archive_problem(bomb)
    assert refusal is not None and "xl/worksheets/sheet1.xml" in refusal and "zip bomb" in refusal
    problem = only_problem(bomb)  # parse_workbook checks it too before inflating anything
    assert problem.row is None and "zip bomb" in problem.message


def test_a_small_member_may_compress_well():
    assert archive_problem(zip_bytes({"xl/sharedStrings.xml": b"\0" * 2**20})) is None


def test_an_archive_declaring_more_than_the_cap_is_refused():
    content = workbook(HEADER, ROW_A)
    assert archive_problem(content) is None
    refusal = archive_problem(content, max_uncompressed_bytes=1000)
    assert refusal is not None and "FINANCE_MAX_UNCOMPRESSED_BYTES (1000)" in refusal
    assert "FINANCE_MAX_UNCOMPRESSED_BYTES" in only_problem_with_cap(content, 1000).message


def only_problem_with_cap(content: bytes, cap: int) -> Problem:
    parsed = parse_workbook(content, cap)
    assert parsed.rows == [] and parsed.problems
    return parsed.problems[0]


def test_bytes_that_are_no_zip_are_left_to_the_workbook_reader():
    assert archive_problem(b"not a zip") is None


# --- file names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("giai-ngan-2023-09-30.xlsx", date(2023, 9, 30)),
    ("giai-ngan-2024-02-29.xlsx", date(2024, 2, 29)),
    ("giai-ngan-2023-02-29.xlsx", None),  # no such day
    ("giai-ngan-2023-13-01.xlsx", None),
    ("giai-ngan-2023-9-30.xlsx", None),
    ("giai-ngan-2023-09-30.xls", None),
    ("giai-ngan-2023-09-30 (1).xlsx", None),
    ("bao-cao-giai-ngan-2023-09-30.xlsx", None),
    ("GiaiNgan.xlsx", None),
])
def test_the_report_date_comes_from_the_file_name(name, expected):
    assert report_date_from_name(name) == expected


def test_stored_paths_are_valid_utf8_without_nul():
    assert storable("giai-ngan-2023-09-30.xlsx") == "giai-ngan-2023-09-30.xlsx"
    assert storable("bản sao/giai-ngan.xlsx") == "bản sao/giai-ngan.xlsx"
    assert storable("b\udce1n sao") == "b\\xe1n sao"  # the Latin-1 byte 0xE1 as os.fsdecode gives it
    assert storable("a\x00b") == "a\\x00b"
