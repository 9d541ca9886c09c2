"""No workbook can stop the finance loader: each hostile or broken file is rejected whole, the others load.

Every test builds its offending files (openpyxl, or edited zip bytes) in a temporary inbox beside a clean
workbook dated after them, runs the real ``load_inbox`` against a throw-away warehouse, and checks the
verdict recorded in ``raw.finance_files`` (file, row, column, reason) and that the clean file still loaded.
The expected rows are the literals written here, never what the loader reads back.
"""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import openpyxl
import psycopg
import pytest
from psycopg.rows import dict_row

from ingestion import finance
from ingestion.finance import CellError, load_inbox, parse_amount
from pipeline.settings import Settings
from tests.support.postgres import throwaway_warehouse

RUN = "hostile-run"
HEADER = [
    "MaDuAn",
    "TenDuAn",
    "ChuDauTu",
    "NguonVon",
    "NamKeHoach",
    "LaKeoDai",
    "KeHoachTTgGiao",
    "KeHoachUBNDGiao",
    "GiaiNganLuyKe",
]
ROWS = [
    [
        "DA-2023-0001",
        "Đường ĐT.609 đoạn qua Điện Bàn",
        "000.00.06.H47",
        "NSTW",
        2023,
        0,
        12_000_000_000,
        12_500_000_000,
        4_321_000_123,
    ],
    ["DA-2023-0002", "Trường THCS Lê Lợi", "000.00.21.H47", "NSDP", 2023, 0, 0, 3_000_000_000, 0],
]
CONTROL = "giai-ngan-2023-12-31.xlsx"  # the clean workbook each inbox holds, processed after the others
COLUMN = {h: i + 1 for i, h in enumerate(HEADER)}  # 1-based column of each header in these workbooks


@pytest.fixture(scope="module")
def writer_url(tmp_path_factory) -> str:
    with throwaway_warehouse(tmp_path_factory.mktemp("hostile-warehouse")) as wh:
        yield wh.urls["writer"]


@pytest.fixture
def db(writer_url):
    """A connection to a warehouse whose finance tables are empty."""
    with psycopg.connect(writer_url, autocommit=True) as conn:
        conn.execute("TRUNCATE raw.disbursement_rows, raw.finance_files")
        yield conn


@pytest.fixture
def inbox(tmp_path) -> Path:
    """An inbox holding the clean control workbook, dated after every file a test adds."""
    folder = tmp_path / "inbox"
    save_book(folder / CONTROL)
    return folder


# --- helpers ---------------------------------------------------------------------------------------------


def save_book(path: Path, rows=ROWS, edit=None, header=HEADER) -> Path:
    """Write a GiaiNgan workbook (header on row 1); ``edit(book, sheet)`` changes it before saving."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "GiaiNgan"
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    if edit is not None:
        edit(book, sheet)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def with_cell(row: int, header: str, value):
    """An ``edit`` setting one cell (1-based Excel row) of the sheet."""

    def edit(book, sheet):
        sheet.cell(row, COLUMN[header]).value = value

    return edit


def rewrite_member(path: Path, member: str, change) -> None:
    """Rewrite one part of an xlsx in place: ``change(text) -> text`` (the other parts copied as they are)."""
    with zipfile.ZipFile(path) as source:
        parts = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in parts:
            if info.filename == member:
                data = change(data.decode("utf-8")).encode("utf-8")
            target.writestr(info.filename, data)


def load(writer_url: str, folder: Path, **caps):
    result = load_inbox(writer_url, folder, RUN, **caps)
    return result, {f.file: f for f in result.files}


def records(conn) -> dict[str, dict]:
    """raw.finance_files by path."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return {r["path"]: r for r in cursor.execute("SELECT * FROM raw.finance_files")}


def landed(conn) -> dict[date, list[list]]:
    """The landed rows per report date, in the form of ``ROWS``."""
    result: dict[date, list[list]] = {}
    for r in conn.execute(
        "SELECT report_date, project_code, project_name, investor_code, funding_source, plan_year, "
        "is_carried_over::int, plan_pm, plan_province, disbursed_cumulative "
        "FROM raw.disbursement_rows ORDER BY report_date, row_number"
    ):
        result.setdefault(r[0], []).append(list(r[1:]))
    return result


def assert_control_loaded(conn, outcomes) -> None:
    """The clean workbook after the bad ones loaded, and nothing else did."""
    assert outcomes[CONTROL].status == "loaded", outcomes[CONTROL]
    assert landed(conn) == {date(2023, 12, 31): [list(r) for r in ROWS]}


def assert_rejected(conn, outcomes, name: str, row: int | None, column: str | None, *fragments: str) -> str:
    """``name`` was rejected at ``row`` and ``column``, the reason naming the file and holding ``fragments``."""
    outcome = outcomes[name]
    assert (outcome.status, outcome.reject_row, outcome.reject_column) == ("rejected", row, column), outcome
    with conn.cursor(row_factory=dict_row) as cursor:
        record = cursor.execute("SELECT * FROM raw.finance_files WHERE file_sha256 = %s", [outcome.sha256]).fetchone()
    assert record["path"] == name
    assert (record["status"], record["reject_row"], record["reject_column"], record["rows"]) == (
        "rejected",
        row,
        column,
        0,
    )
    assert record["reason"] == outcome.reason
    assert outcome.reason.startswith(f"{name}: ")
    for part in (*([f"row {row}"] if row else []), *([f"column {column}"] if column else []), *fragments):
        assert part in outcome.reason, (part, outcome.reason)
    return outcome.reason


# --- cell values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("١٢٣", "U+0661 ARABIC-INDIC DIGIT ONE"),  # Decimal() would read it as 123
        ("１.０００.０００", "U+FF11 FULLWIDTH DIGIT ONE"),
        ("1.000.00²", "U+00B2 SUPERSCRIPT TWO"),
        (datetime(2023, 5, 1), "holds a date (2023-05-01T00:00:00)"),
        (clock(9, 30), "holds a time (09:30:00)"),
        (10**18, "too large"),
        (1e300, "too large"),
        ("9" * 120, "more than 100 characters"),
    ],
)
def test_amount_cells_the_warehouse_must_not_take_are_refused(value, message):
    with pytest.raises(CellError, match=re.escape(message)):
        parse_amount(value)


def test_non_ascii_digits_are_refused_and_the_next_file_loads(db, writer_url, inbox):
    # ²⁰²³ passes str.isdigit() but not int(): the loader used to raise ValueError on it and stop.
    cases = {
        "giai-ngan-2023-01-31.xlsx": (2, "NamKeHoach", "²⁰²³", "U+00B2 SUPERSCRIPT TWO"),
        "giai-ngan-2023-02-28.xlsx": (3, "NamKeHoach", "２０２３", "U+FF12 FULLWIDTH DIGIT TWO"),
        "giai-ngan-2023-03-31.xlsx": (2, "LaKeoDai", "١", "U+0661 ARABIC-INDIC DIGIT ONE"),
        "giai-ngan-2023-04-30.xlsx": (3, "GiaiNganLuyKe", "٣٠٠", "U+0663 ARABIC-INDIC DIGIT THREE"),
        "giai-ngan-2023-05-31.xlsx": (2, "KeHoachTTgGiao", "12.000.000.००0", "U+0966 DEVANAGARI DIGIT ZERO"),
    }
    for name, (row, header, value, _) in cases.items():
        save_book(inbox / name, edit=with_cell(row, header, value))

    result, outcomes = load(writer_url, inbox)

    for name, (row, header, value, char) in cases.items():
        assert_rejected(db, outcomes, name, row, header, repr(value), char, "not an ASCII digit 0-9")
    assert (result.rejected, result.loaded) == (len(cases), 1)
    assert_control_loaded(db, outcomes)


def test_excel_error_values_are_refused_as_such(db, writer_url, inbox):
    cases = {  # openpyxl stores these as error cells (t="e"), as Excel does for a failed formula
        "giai-ngan-2023-01-31.xlsx": (2, "GiaiNganLuyKe", "#REF!"),
        "giai-ngan-2023-02-28.xlsx": (3, "KeHoachUBNDGiao", "#DIV/0!"),
        # TenDuAn may be empty, so without the check "#N/A" would land as the project's name.
        "giai-ngan-2023-03-31.xlsx": (2, "TenDuAn", "#N/A"),
        "giai-ngan-2023-04-30.xlsx": (3, "MaDuAn", "#NAME?"),
        "giai-ngan-2023-05-31.xlsx": (2, "NamKeHoach", "#VALUE!"),
    }
    for name, (row, header, value) in cases.items():
        save_book(inbox / name, edit=with_cell(row, header, value))

    result, outcomes = load(writer_url, inbox)

    for name, (row, header, value) in cases.items():
        assert_rejected(db, outcomes, name, row, header, f"Excel error {value}")
    assert result.rejected == len(cases)
    assert_control_loaded(db, outcomes)


def test_dates_where_numbers_belong_are_refused_saying_so(db, writer_url, inbox):
    cases = {
        # The year 2023 typed into a cell formatted as a date reads as 1905-07-15.
        "giai-ngan-2023-01-31.xlsx": (2, "NamKeHoach", datetime(1905, 7, 15), "a date (1905-07-15T00:00:00)"),
        "giai-ngan-2023-02-28.xlsx": (3, "GiaiNganLuyKe", date(2023, 2, 28), "a date (2023-02-28"),
        "giai-ngan-2023-03-31.xlsx": (2, "LaKeoDai", clock(0, 0), "a time (00:00:00)"),
        "giai-ngan-2023-04-30.xlsx": (3, "KeHoachTTgGiao", timedelta(hours=30), "a duration (1 day, 6:00:00)"),
    }
    for name, (row, header, value, _) in cases.items():
        save_book(inbox / name, edit=with_cell(row, header, value))

    result, outcomes = load(writer_url, inbox)

    for name, (row, header, _, shown) in cases.items():
        assert_rejected(db, outcomes, name, row, header, shown, "formatted as a date or time")
    assert result.rejected == len(cases)
    assert_control_loaded(db, outcomes)


def test_values_the_warehouse_cannot_index_are_refused_before_the_database(db, writer_url, inbox):
    # A 3000-character MaDuAn would overflow the plan-line index; the database error would then stop the
    # loader on this file every night.
    save_book(inbox / "giai-ngan-2023-01-31.xlsx", edit=with_cell(3, "MaDuAn", "DA-" + "7" * 3000))
    save_book(inbox / "giai-ngan-2023-02-28.xlsx", edit=with_cell(2, "KeHoachUBNDGiao", "1" + "0" * 30))

    _result, outcomes = load(writer_url, inbox)

    reason = assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", 3, "MaDuAn", "too long for a code")
    assert len(reason) < 400  # the value is quoted cut short
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", 2, "KeHoachUBNDGiao", "too large")
    assert_control_loaded(db, outcomes)


# --- formulas, merges, sheets ----------------------------------------------------------------------------


def test_formulas_in_data_cells_are_refused_naming_the_formula(db, writer_url, inbox):
    # A formula Excel computed keeps its result in the file: make the result a valid amount, so only the
    # formula itself can reject the file.
    cached = inbox / "giai-ngan-2023-01-31.xlsx"
    save_book(cached, edit=with_cell(3, "GiaiNganLuyKe", "=G3*0.25"))
    rewrite_member(
        cached, "xl/worksheets/sheet1.xml", lambda xml: xml.replace("<f>G3*0.25</f><v />", "<f>G3*0.25</f><v>0</v>")
    )
    # Never computed (as openpyxl writes it): without the check TenDuAn would land empty.
    save_book(inbox / "giai-ngan-2023-02-28.xlsx", edit=with_cell(2, "TenDuAn", '=UPPER("Đường ĐT.609")'))
    # A whole row of uncomputed formulas reads blank by value, and still is no blank row.
    save_book(inbox / "giai-ngan-2023-03-31.xlsx", rows=[*ROWS, [f"={c}2" for c in "ABCDEFGHI"]])
    # Formulas outside the nine columns (a rate column, the title) are allowed: the file loads.
    allowed = inbox / "giai-ngan-2023-04-30.xlsx"

    def rate_and_title(book, sheet):
        sheet.cell(1, 10).value = "TyLe"
        sheet.cell(2, 10).value = "=I2/H2"
        sheet.insert_rows(1)
        sheet.cell(1, 1).value = '="BÁO CÁO GIẢI NGÂN " & "2023"'

    save_book(allowed, edit=rate_and_title)

    result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", 3, "GiaiNganLuyKe", "formula =G3*0.25", "values")
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", 2, "TenDuAn", 'formula =UPPER("Đường ĐT.609")')
    assert_rejected(db, outcomes, "giai-ngan-2023-03-31.xlsx", 4, "MaDuAn", "formula =A2", "and 8 more")
    assert outcomes["giai-ngan-2023-04-30.xlsx"].status == "loaded"
    assert (result.rejected, result.loaded) == (3, 2)
    raw_row = db.execute(
        "SELECT raw_row FROM raw.disbursement_rows WHERE report_date = '2023-04-30' AND row_number = 3"
    ).fetchone()[0]
    assert raw_row["TyLe"] is None  # never computed: the value the file holds


def test_merged_header_cells_are_refused_but_merged_title_rows_load(db, writer_url, inbox):
    def merged_header(book, sheet):
        sheet.merge_cells("A1:B1")  # MaDuAn and TenDuAn under one merged header

    def merged_names(book, sheet):
        sheet.merge_cells("B2:B3")  # one project name across two rows: row 3 would land without it

    def title_rows(book, sheet):  # as the simulator's title_rows workbooks: row 3 merged across the columns
        sheet.insert_rows(1, 6)
        sheet.cell(1, 1).value = "ỦY BAN NHÂN DÂN TỈNH QUẢNG NAM"
        sheet.cell(3, 1).value = "BÁO CÁO TÌNH HÌNH GIẢI NGÂN KẾ HOẠCH VỐN ĐẦU TƯ CÔNG"
        sheet.merge_cells(start_row=3, start_column=1, end_row=3, end_column=9)

    save_book(inbox / "giai-ngan-2023-01-31.xlsx", edit=merged_header)
    save_book(inbox / "giai-ngan-2023-02-28.xlsx", edit=merged_names)
    save_book(inbox / "giai-ngan-2023-03-31.xlsx", edit=title_rows)

    result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", 1, "MaDuAn", "merged cells A1:B1 in the header row")
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", 2, "TenDuAn", "merged cells B2:B3 among the data")
    assert (outcomes["giai-ngan-2023-03-31.xlsx"].status, outcomes["giai-ngan-2023-03-31.xlsx"].rows) == ("loaded", 2)
    assert [
        r[0] for r in db.execute("SELECT row_number FROM raw.disbursement_rows WHERE report_date = '2023-03-31'")
    ] == [8, 9]
    assert result.loaded == 2


def test_an_extra_sheet_makes_the_file_ambiguous(db, writer_url, inbox):
    def second_sheet(book, sheet):
        book.create_sheet("GiaiNgan (2)").append(HEADER)

    def hidden_sheet(book, sheet):
        book.create_sheet("DanhMuc").sheet_state = "hidden"

    save_book(inbox / "giai-ngan-2023-01-31.xlsx", edit=second_sheet)
    save_book(inbox / "giai-ngan-2023-02-28.xlsx", edit=hidden_sheet)

    _result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", None, None, "GiaiNgan (2)", "ambiguous")
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", None, None, "DanhMuc", "ambiguous")
    assert_control_loaded(db, outcomes)


def test_damaged_or_oversized_sheets_are_refused_without_building_them(db, writer_url, inbox):
    # Rows out of order: openpyxl's reader would silently drop the row listed late.
    swapped = save_book(inbox / "giai-ngan-2023-01-31.xlsx")

    def swap_rows(xml):
        first, second = xml.index('<row r="2"'), xml.index('<row r="3"')
        end = xml.index("</sheetData>")
        return xml[:first] + xml[second:end] + xml[first:second] + xml[end:]

    rewrite_member(swapped, "xl/worksheets/sheet1.xml", swap_rows)

    # 700 rows with a cell in column XFD: 11 million cells once openpyxl pads each row.
    def far_cells(book, sheet):
        for row in range(4, 704):
            sheet.cell(row, 16_384).value = "x"

    save_book(inbox / "giai-ngan-2023-02-28.xlsx", edit=far_cells)

    _result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", None, None, "damaged", "row 2 after row 3")
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", None, None, "more than 10000000 cells")
    assert_control_loaded(db, outcomes)


# --- files that cannot be read ---------------------------------------------------------------------------


def test_a_file_above_the_size_cap_is_refused_unread_and_retried_when_the_cap_rises(db, writer_url, inbox):
    big = inbox / "giai-ngan-2023-01-31.xlsx"

    def padding(book, sheet):
        for column in range(10, 14):  # hex of random bytes compresses to about half: the file is about 60 kB
            sheet.cell(2, column).value = os.urandom(15_000).hex()

    save_book(big, edit=padding)
    # Far above the default cap, sparse: had the loader read it, this test would take minutes.
    huge = inbox / "giai-ngan-2023-02-28.xlsx"
    with huge.open("wb") as sparse:
        sparse.truncate(4 * 2**30)
    cap = 40_000
    assert os.path.getsize(inbox / CONTROL) < cap < big.stat().st_size

    started = time.monotonic()
    _result, outcomes = load(writer_url, inbox, max_file_bytes=cap)
    assert time.monotonic() - started < 20

    reason = assert_rejected(db, outcomes, big.name, None, None, "above FINANCE_MAX_FILE_BYTES (40000)", "not read")
    assert_rejected(db, outcomes, huge.name, None, None, f"is {4 * 2**30} bytes")
    assert_control_loaded(db, outcomes)
    key = records(db)[big.name]["file_sha256"]
    assert key.startswith("unread-") and outcomes[big.name].sha256 == key

    # Unchanged: not recorded again, the reason still shown.
    again, outcomes = load(writer_url, inbox, max_file_bytes=cap)
    assert (again.rejected, again.skipped) == (0, 3)
    assert (
        outcomes[big.name].reason.startswith("unchanged since recorded as rejected")
        and reason in outcomes[big.name].reason
    )
    # The cap raised, the same file loads without being touched.
    raised, outcomes = load(writer_url, inbox, max_file_bytes=200_000)
    assert outcomes[big.name].status == "loaded" and raised.loaded == 1
    # Now known by its content; the refusal stays on record beside it.
    assert db.execute(
        "SELECT file_sha256 LIKE 'unread-%%', status FROM raw.finance_files WHERE path = %s ORDER BY 1", [big.name]
    ).fetchall() == [(False, "loaded"), (True, "rejected")]


def test_a_zip_bomb_is_refused_from_its_central_directory_before_openpyxl_parses_it(db, writer_url, inbox):
    # The sheet itself expands 8 MiB of XML whitespace from a few kB: valid, and loadable if parsed.
    bomb = save_book(inbox / "giai-ngan-2023-01-31.xlsx")
    rewrite_member(
        bomb, "xl/worksheets/sheet1.xml", lambda xml: xml.replace("</sheetData>", "</sheetData>" + " " * 2**23)
    )
    # A workbook of ordinary ratio whose stored (uncompressed) extra part exceeds a low total cap.
    heavy = save_book(inbox / "giai-ngan-2023-02-28.xlsx")
    with zipfile.ZipFile(heavy, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr("xl/media/image1.bin", os.urandom(300_000))

    _result, outcomes = load(writer_url, inbox, max_uncompressed_bytes=250_000)

    assert_rejected(
        db, outcomes, bomb.name, None, None, "zip member xl/worksheets/sheet1.xml", "above 100:1", "zip bomb"
    )
    assert_rejected(db, outcomes, heavy.name, None, None, "above FINANCE_MAX_UNCOMPRESSED_BYTES (250000)")
    assert_control_loaded(db, outcomes)
    assert all(records(db)[name]["file_sha256"].startswith("unread-") for name in (bomb.name, heavy.name))

    # With the total cap raised, the heavy file loads; the bomb stays refused (the ratio is no setting).
    _result, outcomes = load(writer_url, inbox)
    assert outcomes[heavy.name].status == "loaded"
    assert outcomes[bomb.name].status == "skipped" and "zip bomb" in outcomes[bomb.name].reason


def test_unreadable_entries_are_refused_and_retried_only_once_changed(db, writer_url, inbox):
    (inbox / "giai-ngan-2023-01-31.xlsx").mkdir()  # a folder named like a workbook
    os.mkfifo(inbox / "giai-ngan-2023-02-28.xlsx")  # reading a pipe would hang the loader
    (inbox / "giai-ngan-2023-03-31.xlsx").symlink_to(inbox / "gone.xlsx")  # a broken link
    truncated = save_book(inbox / "giai-ngan-2023-04-30.xlsx")
    truncated.write_bytes(truncated.read_bytes()[:1500])  # cut while being copied
    (inbox / "giai-ngan-2023-05-31.xlsx").write_bytes(b"PK\x03\x04 not really a zip")

    _result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, "giai-ngan-2023-01-31.xlsx", None, None, "is a folder")
    assert_rejected(db, outcomes, "giai-ngan-2023-02-28.xlsx", None, None, "not a regular file")
    assert_rejected(db, outcomes, "giai-ngan-2023-03-31.xlsx", None, None, "FileNotFoundError", "broken link")
    assert_rejected(db, outcomes, "giai-ngan-2023-04-30.xlsx", None, None, "cannot be read as an xlsx workbook")
    assert_rejected(db, outcomes, "giai-ngan-2023-05-31.xlsx", None, None, "BadZipFile")
    assert_control_loaded(db, outcomes)
    keys = {path: r["file_sha256"] for path, r in records(db).items()}
    unread = ("giai-ngan-2023-01-31.xlsx", "giai-ngan-2023-02-28.xlsx", "giai-ngan-2023-03-31.xlsx")
    assert all(keys[name].startswith("unread-") for name in unread)
    assert keys["giai-ngan-2023-04-30.xlsx"] == outcomes["giai-ngan-2023-04-30.xlsx"].sha256  # bytes were read
    assert len(keys["giai-ngan-2023-04-30.xlsx"]) == 64

    again, outcomes = load(writer_url, inbox)
    assert (again.rejected, again.skipped) == (0, 6)

    # Changed (a later modification time), the folder is recorded again; the record before stays.
    later = time.time() + 60
    os.utime(inbox / "giai-ngan-2023-01-31.xlsx", (later, later))
    third, outcomes = load(writer_url, inbox)
    assert third.rejected == 1 and outcomes["giai-ngan-2023-01-31.xlsx"].status == "rejected"
    assert db.execute("SELECT count(*) FROM raw.finance_files WHERE path = 'giai-ngan-2023-01-31.xlsx'").fetchone() == (
        2,
    )


def test_a_file_vanishing_between_listing_and_reading_is_refused(db, writer_url, inbox, monkeypatch):
    victim = save_book(inbox / "giai-ngan-2023-01-31.xlsx")
    list_inbox = finance.loader.candidates

    def listing_then_removal(folder):
        found = list_inbox(folder)
        victim.unlink()  # moved away by someone right after the loader listed the inbox
        return found

    monkeypatch.setattr(finance.loader, "candidates", listing_then_removal)
    _result, outcomes = load(writer_url, inbox)

    assert_rejected(db, outcomes, victim.name, None, None, "FileNotFoundError", "moved or deleted")
    assert_control_loaded(db, outcomes)


def test_a_file_permission_denied_is_refused(db, writer_url):
    # A folder an unprivileged user can reach (pytest's own temporary folders are private to their owner).
    folder = Path(tempfile.mkdtemp(prefix="finance-inbox-"))
    try:
        folder.chmod(0o755)
        save_book(folder / CONTROL)
        locked = save_book(folder / "giai-ngan-2023-01-31.xlsx")
        locked.chmod(0)
        with unprivileged():
            result = load_inbox(writer_url, folder, RUN)
        outcomes = {f.file: f for f in result.files}
        assert_rejected(db, outcomes, locked.name, None, None)
        assert outcomes[locked.name].reason == f"{locked.name}: cannot be read (PermissionError: Permission denied)"
        assert outcomes[locked.name].sha256.startswith("unread-")
        assert_control_loaded(db, outcomes)
    finally:
        shutil.rmtree(folder)


@contextmanager
def unprivileged():
    """Run the block as the user ``nobody`` when the tests run as root, whom no file mode stops.

    Only the effective ids change (the real ones stay root, so they can be restored); everything the
    loader imports is imported already, and the warehouse is reached over TCP.
    """
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_file_names_that_are_not_utf8_are_stored_escaped(db, writer_url, inbox):
    # PostgreSQL takes no undecodable bytes: unescaped, the record's INSERT would fail on every run.
    raw_inbox = os.fsencode(inbox)
    folder = raw_inbox + b"/b\xe1n sao"  # a Latin-1 "bản sao" (copy): not UTF-8
    os.mkdir(folder)
    save_book(Path(os.fsdecode(folder + b"/giai-ngan-2023-11-30.xlsx")), edit=with_cell(2, "GiaiNganLuyKe", 1))
    save_book(
        Path(os.fsdecode(raw_inbox + b"/giai-ngan-2023-11-30 (b\xe1n sao).xlsx")), edit=with_cell(2, "LaKeoDai", 1)
    )

    _result, outcomes = load(writer_url, inbox)

    assert {f: o.status for f, o in outcomes.items()} == {
        "giai-ngan-2023-11-30 (b\\xe1n sao).xlsx": "skipped-name",
        "b\\xe1n sao/giai-ngan-2023-11-30.xlsx": "loaded",
        CONTROL: "loaded",
    }
    assert {p: (r["status"], r["file_name"]) for p, r in records(db).items()} == {
        "giai-ngan-2023-11-30 (b\\xe1n sao).xlsx": ("skipped-name", "giai-ngan-2023-11-30 (b\\xe1n sao).xlsx"),
        "b\\xe1n sao/giai-ngan-2023-11-30.xlsx": ("loaded", "giai-ngan-2023-11-30.xlsx"),
        CONTROL: ("loaded", CONTROL),
    }


# --- anything else ---------------------------------------------------------------------------------------


def test_any_unexpected_exception_rejects_that_file_only(db, writer_url, inbox, monkeypatch):
    # Faults no check foresees, injected at two seams: while a cell is parsed and while the bytes are read.
    parse_name = finance.workbook._PARSERS["TenDuAn"]

    def bug_on_one_name(value):
        if value == "gây lỗi":
            raise KeyError("an unforeseen bug")
        return parse_name(value)

    check_archive = finance.inbox.archive_problem

    def bug_on_one_file(content, cap):
        if b"odd-file" in content:
            raise MemoryError("out of memory")
        return check_archive(content, cap)

    monkeypatch.setitem(finance.workbook._PARSERS, "TenDuAn", bug_on_one_name)
    monkeypatch.setattr(finance.inbox, "archive_problem", bug_on_one_file)
    save_book(inbox / "giai-ngan-2023-01-31.xlsx", edit=with_cell(3, "TenDuAn", "gây lỗi"))
    (inbox / "giai-ngan-2023-02-28.xlsx").write_bytes(b"odd-file")

    _result, outcomes = load(writer_url, inbox)

    assert outcomes["giai-ngan-2023-01-31.xlsx"].reason == "giai-ngan-2023-01-31.xlsx: KeyError: 'an unforeseen bug'"
    assert outcomes["giai-ngan-2023-02-28.xlsx"].reason == "giai-ngan-2023-02-28.xlsx: MemoryError: out of memory"
    for name in ("giai-ngan-2023-01-31.xlsx", "giai-ngan-2023-02-28.xlsx"):
        assert_rejected(db, outcomes, name, None, None)
    assert_control_loaded(db, outcomes)


def test_database_errors_still_propagate_and_leave_the_file_unrecorded(db, writer_url, inbox):
    db.execute("ALTER TABLE raw.disbursement_rows ADD CONSTRAINT hostile_test_no_rows CHECK (row_number < 0)")
    try:
        with pytest.raises(psycopg.errors.CheckViolation):
            load_inbox(writer_url, inbox, RUN)
    finally:
        db.execute("ALTER TABLE raw.disbursement_rows DROP CONSTRAINT hostile_test_no_rows")
    assert records(db) == {}
    _result, outcomes = load(writer_url, inbox)  # tried again on the next run
    assert_control_loaded(db, outcomes)


def test_the_caps_come_from_the_environment():
    defaults = Settings.from_env({}, warehouse_url="postgresql://unused")
    assert (defaults.finance_max_file_bytes, defaults.finance_max_uncompressed_bytes) == (50 * 2**20, 200 * 2**20)
    assert (finance.DEFAULT_MAX_FILE_BYTES, finance.DEFAULT_MAX_UNCOMPRESSED_BYTES) == (50 * 2**20, 200 * 2**20)
    chosen = Settings.from_env(
        {"FINANCE_MAX_FILE_BYTES": "1000", "FINANCE_MAX_UNCOMPRESSED_BYTES": "5000"}, warehouse_url="x"
    )
    assert (chosen.finance_max_file_bytes, chosen.finance_max_uncompressed_bytes) == (1000, 5000)
    with pytest.raises(ValueError, match="FINANCE_MAX_FILE_BYTES"):
        Settings.from_env({"FINANCE_MAX_FILE_BYTES": "0"}, warehouse_url="x")


def test_an_ordinary_workbook_passes_the_zip_guard():
    # 2000 identical rows compress as well as a real workbook ever does (about 15:1).
    buffer = io.BytesIO()
    book = openpyxl.Workbook()
    book.active.title = "GiaiNgan"
    for _ in range(2000):
        book.active.append(ROWS[0])
    book.save(buffer)
    assert finance.archive_problem(buffer.getvalue()) is None
