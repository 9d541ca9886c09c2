"""The finance workbook loader against a throw-away warehouse and the simulator's workbooks.

What the warehouse must hold comes from the generator's `FinanceTruth`; the cells behind each landed row are
read back from the workbooks here with openpyxl (not the loader's reader).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import psycopg
import pytest
from psycopg.rows import dict_row

from ingestion import finance
from ingestion.finance import CellError, load_inbox, parse_amount, parse_workbook
from simulator.__main__ import investors
from simulator.finance import ACCEPT, HEADERS, PROBLEMS, REJECT, FinanceTruth, WorkbookFile, write_workbooks
from tests.support.postgres import throwaway_warehouse

SEED = 20231020
SCALE = 0.3  # about 80-140 rows a workbook: every code path, a fast module
RUN = "test-run"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    with throwaway_warehouse(tmp_path_factory.mktemp("finance-warehouse")) as wh:
        yield wh


@pytest.fixture(scope="module")
def writer_url(warehouse) -> str:
    return warehouse.urls["writer"]


@pytest.fixture
def db(writer_url):
    """A connection to a warehouse whose finance tables are empty."""
    with psycopg.connect(writer_url, autocommit=True) as conn:
        conn.execute("TRUNCATE raw.disbursement_rows, raw.finance_files")
        yield conn


@pytest.fixture(scope="module")
def problem_truth(tmp_path_factory) -> FinanceTruth:
    """A year of workbooks showing every problem the generator knows."""
    out = tmp_path_factory.mktemp("problem-inbox")
    return write_workbooks(out, investors(), date(2023, 1, 1), date(2023, 12, 31), SEED, PROBLEMS, SCALE)


@pytest.fixture(scope="module")
def clean_truth(tmp_path_factory) -> FinanceTruth:
    """Clean workbooks across a year end: two plan years and carried-over lines in one report."""
    out = tmp_path_factory.mktemp("clean-inbox")
    return write_workbooks(out, investors(), date(2023, 10, 1), date(2024, 3, 31), SEED, frozenset(), SCALE)


@pytest.fixture
def clean_inbox(clean_truth, tmp_path) -> Path:
    """A copy of the clean inbox this test may change (copytree keeps modification times)."""
    return Path(shutil.copytree(clean_truth.out_dir, tmp_path / "inbox"))


# --- helpers ---------------------------------------------------------------------------------------------


def landed(conn) -> dict[date, list[dict]]:
    """The landed rows per report date in workbook order, in the truth's form."""
    result: dict[date, list[dict]] = {}
    for r in conn.execute(
        "SELECT report_date, project_code, project_name, investor_code, funding_source, plan_year, "
        "is_carried_over, plan_pm, plan_province, disbursed_cumulative "
        "FROM raw.disbursement_rows ORDER BY report_date, row_number"
    ):
        for amount in r[7:]:
            assert isinstance(amount, Decimal)
        result.setdefault(r[0], []).append(dict(zip(HEADERS, (*r[1:6], int(r[6]), *r[7:]), strict=True)))
    return result


def files(conn) -> dict[str, dict]:
    """raw.finance_files by path."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return {r["path"]: r for r in cursor.execute("SELECT * FROM raw.finance_files")}


def snapshot(conn) -> tuple[list, list]:
    return (
        conn.execute("SELECT * FROM raw.finance_files ORDER BY file_sha256").fetchall(),
        conn.execute("SELECT * FROM raw.disbursement_rows ORDER BY report_date, row_number").fetchall(),
    )


def plan_line(row: dict) -> tuple:
    return row["MaDuAn"], row["NguonVon"], row["NamKeHoach"], row["LaKeoDai"]


def relative(truth: FinanceTruth, workbook: WorkbookFile) -> str:
    return workbook.path.relative_to(truth.out_dir).as_posix()


def cell_text(value) -> str | None:
    return None if value is None else str(value)


def assert_rows_are_the_cells(conn, path: Path, report_date: date) -> None:
    """Each landed row of the date points at its Excel row, and raw_row holds that row's cells."""
    sheet = openpyxl.load_workbook(path)["GiaiNgan"]
    header_row = next(r for r in range(1, 21) if sheet.cell(r, 1).value == "MaDuAn")
    headers = [c.value for c in sheet[header_row]]
    landed_rows = conn.execute(
        "SELECT row_number, project_code, raw_row, file_name FROM raw.disbursement_rows "
        "WHERE report_date = %s ORDER BY row_number",
        [report_date],
    ).fetchall()
    data_rows = [r for r in range(header_row + 1, sheet.max_row + 1) if sheet.cell(r, 1).value is not None]
    assert [r[0] for r in landed_rows] == data_rows
    for row_number, project_code, raw_row, file_name in landed_rows:
        assert file_name == path.name
        cells = {h: cell_text(sheet.cell(row_number, i + 1).value) for i, h in enumerate(headers)}
        assert raw_row == cells
        assert raw_row["MaDuAn"] == project_code


def reissue_of(inbox: Path, report_date: date, edit) -> Path:
    """Write a re-issue of a date's workbook to reissued/, changed by ``edit(sheet)``, newer than the first."""
    first = inbox / f"giai-ngan-{report_date.isoformat()}.xlsx"
    book = openpyxl.load_workbook(first)
    edit(book["GiaiNgan"])
    target = inbox / "reissued" / first.name
    target.parent.mkdir(exist_ok=True)
    book.save(target)
    later = first.stat().st_mtime + 60
    os.utime(target, (later, later))
    return target


def sheet_rows(path: Path) -> list[dict]:
    """A clean workbook's rows in the truth's form."""
    values = list(openpyxl.load_workbook(path)["GiaiNgan"].iter_rows(values_only=True))
    return [dict(zip(HEADERS, row, strict=True)) for row in values[1:] if row[0] is not None]


# --- tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (1234567000, Decimal(1234567000)),
        (1234567000.0, Decimal(1234567000)),
        (0, Decimal(0)),
        (0.5, Decimal("0.5")),
        ("1.234.567.000", Decimal(1234567000)),
        ("1,234,567,000", Decimal(1234567000)),
        (" 1 234 567 000 ", Decimal(1234567000)),
        ("1234567000", Decimal(1234567000)),
        ("1.234", Decimal(1234)),
        ("1.234.567,5", Decimal("1234567.5")),
        ("1,234,567.5", Decimal("1234567.5")),
        ("1234,5", Decimal("1234.5")),
    ],
)
def test_amounts_parse(cell, expected):
    assert parse_amount(cell) == expected


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("chưa có số liệu", "not a number"),
        ("KBNN chưa đối chiếu", "not a number"),
        ("1.234,567.000", "not a number"),
        ("1.234.5", "not a number"),
        ("12 tỷ", "not a number"),
        (None, "empty"),
        ("  ", "empty"),
        (True, "not an amount"),
        (-5, "negative"),
        ("-1.000.000", "negative"),
        ("(1.000.000)", "negative"),
        (float("nan"), "not an amount"),
    ],
)
def test_bad_amounts_are_refused(cell, message):
    with pytest.raises(CellError, match=message):
        parse_amount(cell)


def workbook_bytes(*lines: list) -> bytes:
    book = openpyxl.Workbook()
    book.active.title = "GiaiNgan"
    for line in lines:
        book.active.append(line)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_damaged_header_is_found_below_title_rows_and_names_the_missing_column():
    header = [h for h in HEADERS if h != "KeHoachTTgGiao"]
    parsed = parse_workbook(workbook_bytes(["BÁO CÁO GIẢI NGÂN"], [], [*header, "Ghi chú"]))
    assert parsed.header_row == 3
    assert [(p.row, p.column) for p in parsed.problems] == [(3, "KeHoachTTgGiao")]
    assert parse_workbook(workbook_bytes(["BÁO CÁO"], ["MaDuAn"])).problems[0].row is None


def test_every_problem_of_a_file_is_collected_in_row_and_column_order():
    good = ["DA-2023-0001", "Tên", "000.00.06.H47", " nstw", 2023.0, "1", 1e9, "1.000.000", 0]
    parsed = parse_workbook(
        workbook_bytes(
            [*HEADERS, None, "Ghi chú"],
            [*good, None, "ghi chú"],
            ["DA-2023-0002", None, "", "ABC", 23, 2, None, "x", -1],
            good,
        )
    )
    assert [(p.row, p.column, p.letter) for p in parsed.problems] == [
        (3, "ChuDauTu", "C"),
        (3, "NguonVon", "D"),
        (3, "NamKeHoach", "E"),
        (3, "LaKeoDai", "F"),
        (3, "KeHoachTTgGiao", "G"),
        (3, "KeHoachUBNDGiao", "H"),
        (3, "GiaiNganLuyKe", "I"),
        (4, "MaDuAn", "A"),
    ]
    assert "already on row 2" in parsed.problems[-1].message
    row = parsed.rows[0]
    assert (row.funding_source, row.plan_year, row.is_carried_over, row.plan_pm, row.plan_province) == (
        "NSTW",
        2023,
        True,
        Decimal(1_000_000_000),
        Decimal(1_000_000),
    )
    assert row.raw_row["NguonVon"] == " nstw" and row.raw_row["J"] is None and row.raw_row["Ghi chú"] == "ghi chú"


def test_clean_inbox_lands_every_row_as_the_truth_says(db, writer_url, clean_truth):
    result = load_inbox(writer_url, clean_truth.out_dir, RUN)

    assert [f.file for f in result.files] == [relative(clean_truth, w) for w in clean_truth.files]
    assert {f.status for f in result.files} == {"loaded"}
    expected = clean_truth.effective_rows()
    assert result.to_dict() | {"files": None} == {
        "run_id": RUN,
        "loaded": len(clean_truth.files),
        "rejected": 0,
        "skipped": 0,
        "rows": sum(len(rows) for rows in expected.values()),
        "files": None,
    }
    assert json.loads(json.dumps(result.to_dict()))["files"][0]["report_date"] == "2023-10-31"
    assert landed(db) == expected
    # The year end: the 31 January report holds two plan years, and carried-over lines follow.
    assert {r["NamKeHoach"] for r in expected[date(2024, 1, 31)]} == {2023, 2024}
    assert any(r["LaKeoDai"] for r in expected[date(2024, 2, 29)])
    recorded = files(db)
    for workbook in clean_truth.files:
        record = recorded[relative(clean_truth, workbook)]
        assert (record["status"], record["rows"], record["report_date"], record["run_id"]) == (
            "loaded",
            len(workbook.rows),
            workbook.report_date,
            RUN,
        )
        assert_rows_are_the_cells(db, workbook.path, workbook.report_date)


def test_each_problem_gets_the_truths_outcome(db, writer_url, problem_truth):
    result = load_inbox(writer_url, problem_truth.out_dir, RUN)

    outcomes = {f.file: f for f in result.files}
    assert list(outcomes) == [relative(problem_truth, w) for w in problem_truth.files]
    assert {w.problem for w in problem_truth.files} >= PROBLEMS
    recorded = files(db)
    for workbook in problem_truth.files:
        name = relative(problem_truth, workbook)
        outcome, record = outcomes[name], recorded[name]
        if workbook.expected == ACCEPT:
            assert (outcome.status, outcome.rows) == ("loaded", len(workbook.rows)), (workbook.problem, outcome)
            status = "superseded" if workbook.superseded_by else "loaded"
            assert record["status"] == status
        else:
            assert workbook.expected == REJECT
            assert outcome.status == "rejected", (workbook.problem, outcome)
            assert (outcome.reject_row, outcome.reject_column) == (workbook.reject_row, workbook.reject_column)
            assert (record["status"], record["reject_row"], record["reject_column"], record["rows"]) == (
                "rejected",
                workbook.reject_row,
                workbook.reject_column,
                0,
            )
            assert record["reason"] == outcome.reason
            for part in (name, f"row {workbook.reject_row}", f"column {workbook.reject_column}"):
                assert part in record["reason"], (workbook.problem, record["reason"])
            assert workbook.path.exists()
            count = db.execute(
                "SELECT count(*) FROM raw.disbursement_rows WHERE file_sha256 = %s OR report_date = %s",
                [record["file_sha256"], workbook.report_date],
            ).fetchone()[0]
            assert count == 0
    assert result.rejected == sum(w.expected == REJECT for w in problem_truth.files)

    # Accepted problem files land exactly the truth's rows; the re-issue replaced its first issue.
    assert landed(db) == problem_truth.effective_rows()
    for workbook in problem_truth.files:
        if workbook.problem in ("title_rows", "thousands_separators", "blank_rows"):
            assert_rows_are_the_cells(db, workbook.path, workbook.report_date)
    first, second = (w for w in problem_truth.files if w.problem == "reissue")
    first_record, second_record = recorded[relative(problem_truth, first)], recorded[relative(problem_truth, second)]
    assert first_record["superseded_by"] == second_record["file_sha256"]
    assert outcomes[relative(problem_truth, second)].replaces == relative(problem_truth, first)
    assert {r[0] for r in db.execute("SELECT DISTINCT file_sha256 FROM raw.disbursement_rows")} == {
        r["file_sha256"] for r in recorded.values() if r["status"] == "loaded"
    }


def test_rerun_changes_nothing(db, writer_url, problem_truth):
    load_inbox(writer_url, problem_truth.out_dir, RUN)
    before = snapshot(db)

    again = load_inbox(writer_url, problem_truth.out_dir, "second-run")

    assert snapshot(db) == before
    assert (again.loaded, again.rejected, again.rows, again.skipped) == (0, 0, 0, len(problem_truth.files))
    assert {f.status for f in again.files} == {"skipped"}
    for outcome, workbook in zip(again.files, problem_truth.files, strict=True):
        assert "unchanged since recorded as" in outcome.reason
        if workbook.expected == REJECT:
            # Not rejected again, but the data team still sees why it was.
            assert f"row {workbook.reject_row}" in outcome.reason


def test_hand_made_reissue_replaces_the_date(db, writer_url, clean_truth, clean_inbox):
    load_inbox(writer_url, clean_inbox, RUN)
    before = landed(db)
    report_date = clean_truth.files[2].report_date

    def correct(sheet):
        sheet.delete_rows(4, 2)  # two lines dropped...
        sheet.cell(2, HEADERS.index("GiaiNganLuyKe") + 1).value += 1_000_000  # ...and a figure corrected
        sheet.cell(3, HEADERS.index("TenDuAn") + 1).value = "Tên dự án đã sửa"

    reissue = reissue_of(clean_inbox, report_date, correct)
    result = load_inbox(writer_url, clean_inbox, "reissue-run")

    outcome = next(f for f in result.files if f.status != "skipped")
    assert (outcome.file, outcome.status, outcome.replaces) == (
        f"reissued/{reissue.name}",
        "loaded",
        reissue.name,
    )
    after = landed(db)
    assert after[report_date] == sheet_rows(reissue)
    assert len(after[report_date]) == len(before[report_date]) - 2
    assert {d: rows for d, rows in after.items() if d != report_date} == {
        d: rows for d, rows in before.items() if d != report_date
    }
    assert_rows_are_the_cells(db, reissue, report_date)
    recorded = files(db)
    assert recorded[reissue.name]["status"] == "superseded"
    assert recorded[reissue.name]["superseded_by"] == recorded[f"reissued/{reissue.name}"]["file_sha256"]
    assert db.execute(
        "SELECT DISTINCT run_id FROM raw.disbursement_rows WHERE report_date = %s", [report_date]
    ).fetchall() == [("reissue-run",)]


def test_rejected_reissue_keeps_the_dates_earlier_rows(db, writer_url, clean_truth, clean_inbox):
    load_inbox(writer_url, clean_inbox, RUN)
    before = landed(db)
    report_date = clean_truth.files[3].report_date
    column = HEADERS.index("KeHoachUBNDGiao") + 1

    def break_cell(sheet):
        sheet.cell(5, column).value = "chưa có số liệu"

    reissue = reissue_of(clean_inbox, report_date, break_cell)
    result = load_inbox(writer_url, clean_inbox, RUN)

    outcome = next(f for f in result.files if f.status != "skipped")
    assert (outcome.status, outcome.reject_row, outcome.reject_column) == ("rejected", 5, "KeHoachUBNDGiao")
    assert "(cell H5)" in outcome.reason and "chưa có số liệu" in outcome.reason
    assert landed(db) == before
    assert files(db)[reissue.name]["status"] == "loaded"


def test_decreasing_cumulative_compares_with_the_latest_loaded_earlier_date(db, writer_url, clean_truth, tmp_path):
    # Only the first and third reports: the third is compared with the first, the one loaded before it.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    first, third = clean_truth.files[0], clean_truth.files[2]
    shutil.copy2(first.path, inbox)
    book = openpyxl.load_workbook(third.path)
    sheet = book["GiaiNgan"]
    earlier_figures = {plan_line(r): r["GiaiNganLuyKe"] for r in first.rows}
    index = next(i for i, r in enumerate(third.rows) if earlier_figures.get(plan_line(r), 0) > 0)
    earlier = earlier_figures[plan_line(third.rows[index])]
    sheet.cell(index + 2, HEADERS.index("GiaiNganLuyKe") + 1).value = earlier - 1
    book.save(inbox / third.path.name)

    result = load_inbox(writer_url, inbox, RUN)

    assert [f.status for f in result.files] == ["loaded", "rejected"]
    rejected = result.files[1]
    assert (rejected.reject_row, rejected.reject_column) == (index + 2, "GiaiNganLuyKe")
    assert first.path.name in rejected.reason and str(earlier) in rejected.reason
    assert set(landed(db)) == {first.report_date}


def test_failure_mid_load_keeps_the_previous_rows(db, writer_url, clean_truth, clean_inbox, monkeypatch):
    load_inbox(writer_url, clean_inbox, RUN)
    before = snapshot(db)
    report_date = clean_truth.files[1].report_date

    def raise_one(sheet):
        sheet.cell(2, HEADERS.index("GiaiNganLuyKe") + 1).value += 1

    reissue_of(clean_inbox, report_date, raise_one)

    def copy_fails(cursor, record, rows):
        # The date's rows are already deleted inside the load's transaction when the failure strikes.
        remaining = cursor.execute(
            "SELECT count(*) FROM raw.disbursement_rows WHERE report_date = %s", [report_date]
        ).fetchone()[0]
        assert remaining == 0
        raise RuntimeError("connection lost during COPY")

    monkeypatch.setattr(finance.loader, "_copy_rows", copy_fails)
    with pytest.raises(RuntimeError, match="during COPY"):
        load_inbox(writer_url, clean_inbox, "failing-run")
    assert snapshot(db) == before

    monkeypatch.undo()
    result = load_inbox(writer_url, clean_inbox, "retry-run")
    assert (result.loaded, result.rejected) == (1, 0)


def test_names_unreadable_files_and_renames(db, writer_url, clean_truth, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "copy").mkdir(parents=True)
    workbook = clean_truth.files[0]
    shutil.copy2(workbook.path, inbox / "giai-ngan-31-10-2023.xlsx")  # day first: not the agreed name
    shutil.copy2(workbook.path, inbox / "giai-ngan-2023-02-30.xlsx")  # no such day
    (inbox / "giai-ngan-2023-05-31.xlsx").write_bytes(b"not a zip file")
    sheetless = openpyxl.Workbook()
    sheetless.active.title = "Sheet1"
    sheetless.save(inbox / "giai-ngan-2023-06-30.xlsx")
    (inbox / "finance-truth.json").write_text("{}")  # not a workbook: ignored
    (inbox / "~$giai-ngan-2023-07-31.xlsx").write_bytes(b"Excel lock file")  # ignored

    result = load_inbox(writer_url, inbox, RUN)

    outcomes = {f.file: f for f in result.files}
    assert set(outcomes) == {
        "giai-ngan-31-10-2023.xlsx",
        "giai-ngan-2023-02-30.xlsx",
        "giai-ngan-2023-05-31.xlsx",
        "giai-ngan-2023-06-30.xlsx",
    }
    misnamed = outcomes["giai-ngan-2023-02-30.xlsx"]
    assert misnamed.status == "skipped-name" and "giai-ngan-2023-02-30.xlsx" in misnamed.reason
    # Same content under another unusable name: known content, not recorded twice.
    assert outcomes["giai-ngan-31-10-2023.xlsx"].status == "skipped"
    assert "same content as giai-ngan-2023-02-30.xlsx" in outcomes["giai-ngan-31-10-2023.xlsx"].reason
    assert "cannot be read as an xlsx workbook" in outcomes["giai-ngan-2023-05-31.xlsx"].reason
    assert "has no sheet GiaiNgan" in outcomes["giai-ngan-2023-06-30.xlsx"].reason
    for name in ("giai-ngan-2023-05-31.xlsx", "giai-ngan-2023-06-30.xlsx"):
        assert (outcomes[name].status, outcomes[name].reject_row, outcomes[name].reject_column) == (
            "rejected",
            None,
            None,
        )
    assert (result.loaded, result.rejected, result.skipped) == (0, 2, 2)
    assert {p: r["status"] for p, r in files(db).items()} == {
        "giai-ngan-2023-02-30.xlsx": "skipped-name",
        "giai-ngan-2023-05-31.xlsx": "rejected",
        "giai-ngan-2023-06-30.xlsx": "rejected",
    }

    # Renamed properly, the same content is read after all; its copy elsewhere is then known content.
    os.rename(inbox / "giai-ngan-31-10-2023.xlsx", inbox / workbook.path.name)
    shutil.copy2(workbook.path, inbox / "copy" / workbook.path.name)
    result = load_inbox(writer_url, inbox, RUN)
    statuses = {f.file: f.status for f in result.files}
    assert statuses[workbook.path.name] == "loaded"
    assert statuses[f"copy/{workbook.path.name}"] == statuses["giai-ngan-2023-02-30.xlsx"] == "skipped"
    assert files(db)[workbook.path.name]["status"] == "loaded"
    assert landed(db) == {workbook.report_date: list(workbook.rows)}

    # A rejected file copied to another date is known content; renamed to another date, it is read again.
    shutil.copy2(inbox / "giai-ngan-2023-06-30.xlsx", inbox / "giai-ngan-2023-09-30.xlsx")
    os.rename(inbox / "giai-ngan-2023-05-31.xlsx", inbox / "giai-ngan-2023-08-31.xlsx")
    result = load_inbox(writer_url, inbox, RUN)
    outcomes = {f.file: f for f in result.files}
    assert outcomes["giai-ngan-2023-09-30.xlsx"].status == "skipped"
    assert (
        "same content as giai-ngan-2023-06-30.xlsx, recorded as rejected"
        in outcomes["giai-ngan-2023-09-30.xlsx"].reason
    )
    assert outcomes["giai-ngan-2023-08-31.xlsx"].status == "rejected"
    assert files(db)["giai-ngan-2023-08-31.xlsx"]["report_date"] == date(2023, 8, 31)
    assert (result.rejected, load_inbox(writer_url, inbox, RUN).rejected) == (1, 0)
