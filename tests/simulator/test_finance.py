"""The simulated disbursement workbooks, checked by reading the files back with openpyxl.

The checks read the workbooks themselves and compare them with the generator's `FinanceTruth`; a small
reader written here (not the generator's code) decides what is a fault.
"""

from __future__ import annotations

import calendar
import itertools
import json
import re
from collections import defaultdict
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from simulator.finance import PROBLEMS, FinanceTruth, Investor, build_projects, write_workbooks

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
AMOUNTS = ("KeHoachTTgGiao", "KeHoachUBNDGiao", "GiaiNganLuyKe")
START, END = date(2023, 1, 1), date(2024, 8, 31)
SEED = 20231020

INVESTORS = [
    Investor("000.00.06.H47", "Sở Nông nghiệp và Phát triển nông thôn", 1),
    Investor("000.00.07.H47", "Sở Giao thông vận tải", 1),
    Investor("000.00.08.H47", "Sở Xây dựng", 1),
    Investor("000.00.10.H47", "Sở Thông tin và Truyền thông", 1),
    Investor("000.00.14.H47", "Sở Giáo dục và Đào tạo", 1),
    Investor("000.00.15.H47", "Sở Y tế", 1),
    Investor("000.00.41.H47", "UBND thành phố Tam Kỳ", 2),
    Investor("000.00.42.H47", "UBND thành phố Hội An", 2),
    Investor("000.00.43.H47", "UBND huyện Tây Giang", 2),
    Investor("000.00.44.H47", "UBND huyện Đông Giang", 2),
    Investor("000.00.45.H47", "UBND huyện Đại Lộc", 2),
    Investor("000.00.46.H47", "UBND thị xã Điện Bàn", 2),
    Investor("000.00.47.H47", "UBND huyện Duy Xuyên", 2),
    Investor("000.00.48.H47", "UBND huyện Nam Trà My", 2),
]

Key = tuple[str, str, int, int]


def month_ends(start: date, end: date) -> list[date]:
    ends = []
    for year in range(start.year, end.year + 1):
        for month in range(1, 13):
            d = date(year, month, calendar.monthrange(year, month)[1])
            if start <= d <= end:
                ends.append(d)
    return ends


def key(row: dict) -> Key:
    return row["MaDuAn"], row["NguonVon"], row["NamKeHoach"], row["LaKeoDai"]


def cells(path: Path) -> list[tuple]:
    workbook = openpyxl.load_workbook(path, read_only=True)
    assert workbook.sheetnames == ["GiaiNgan"]
    values = [tuple(row) for row in workbook["GiaiNgan"].iter_rows(values_only=True)]
    workbook.close()
    return values


def amount(value: object) -> int | None:
    """An amount as a careful reader would take it: a number, or digits with one separator style."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        for pattern in (r"-?\d+", r"-?\d{1,3}(\.\d{3})+", r"-?\d{1,3}(,\d{3})+"):
            if re.fullmatch(pattern, text):
                return int(text.replace(".", "").replace(",", ""))
    return None


def read(path: Path, previous: dict[Key, int]) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """Rows of a workbook and its faults as (1-based row, column, reason); no rows if it has faults."""
    grid = cells(path)
    header_index = next(i for i, line in enumerate(grid) if "MaDuAn" in line)
    header = grid[header_index]
    missing = [c for c in HEADERS if c not in header]
    if missing:
        return [], [(header_index + 1, c, "missing_column") for c in missing]
    position = {c: header.index(c) for c in HEADERS}
    rows, faults = [], []
    for excel_row, line in enumerate(grid[header_index + 1 :], start=header_index + 2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in line):
            continue
        row = {c: line[position[c]] for c in HEADERS}
        for column in AMOUNTS:
            value = amount(row[column])
            if value is None:
                faults.append((excel_row, column, "text_in_numbers"))
            elif value < 0:
                faults.append((excel_row, column, "negative_amount"))
            row[column] = value
        if row["GiaiNganLuyKe"] is not None and row["GiaiNganLuyKe"] < previous.get(key(row), 0):
            faults.append((excel_row, "GiaiNganLuyKe", "decreasing_cumulative"))
        rows.append(row)
    return ([] if faults else rows), faults


def replay(truth: FinanceTruth) -> dict[Path, tuple[list[dict], list[tuple[int, str, str]]]]:
    """Read every file in delivery order, comparing cumulatives with the last accepted report date."""
    results = {}
    accepted: dict[date, dict[Key, int]] = {}
    for workbook in truth.files:
        earlier = [d for d in accepted if d < workbook.report_date]
        previous = accepted[max(earlier)] if earlier else {}
        rows, faults = read(workbook.path, previous)
        results[workbook.path] = rows, faults
        if not faults:
            accepted[workbook.report_date] = {key(r): r["GiaiNganLuyKe"] for r in rows}
    return results


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> FinanceTruth:
    return write_workbooks(tmp_path_factory.mktemp("finance"), INVESTORS, START, END, SEED, PROBLEMS)


@pytest.fixture(scope="module")
def replayed(truth):
    return replay(truth)


@pytest.fixture(scope="module")
def loaded(truth, replayed) -> dict[date, list[dict]]:
    """What a warehouse holds per report date: the last delivery for the date that the reader accepted."""
    result = {}
    for workbook in truth.files:
        rows, faults = replayed[workbook.path]
        if not faults:
            result[workbook.report_date] = rows
    return dict(sorted(result.items()))


@pytest.fixture(scope="module")
def clean_files(truth):
    return [w for w in truth.files if w.problem is None]


def sheet_rows(path: Path) -> list[dict]:
    """Rows of a workbook whose header is on row 1 and whose data rows follow without gaps."""
    grid = cells(path)
    assert grid[0] == HEADERS
    return [dict(zip(HEADERS, line, strict=True)) for line in grid[1:]]


def test_one_workbook_per_month_end(truth):
    names = sorted(p.name for p in truth.out_dir.glob("giai-ngan-*.xlsx"))
    assert names == [f"giai-ngan-{d.isoformat()}.xlsx" for d in month_ends(START, END)]
    assert len(names) == 20
    for workbook in truth.files:
        assert workbook.path.name == f"giai-ngan-{workbook.report_date.isoformat()}.xlsx"


def test_clean_workbooks_have_exact_headers_and_no_problems(clean_files):
    assert len(clean_files) >= 8
    for workbook in clean_files:
        grid = cells(workbook.path)
        assert grid[0] == HEADERS
        for line in grid[1:]:
            row = dict(zip(HEADERS, line, strict=True))
            assert all(isinstance(row[c], str) and row[c] for c in ("MaDuAn", "TenDuAn", "ChuDauTu"))
            assert row["NguonVon"] in {"NSTW", "NSDP", "CTMTQG", "ODA"}
            assert type(row["NamKeHoach"]) is int and row["LaKeoDai"] in (0, 1)
            assert all(type(row[c]) is int and row[c] >= 0 for c in AMOUNTS)
        assert sheet_rows(workbook.path) == list(workbook.rows)


def test_every_accepted_file_loads_to_the_truth_rows(truth, replayed):
    for workbook in truth.files:
        rows, faults = replayed[workbook.path]
        if workbook.expected == "accept":
            assert faults == [], workbook.path.name
            assert rows == list(workbook.rows), workbook.path.name
        else:
            assert workbook.rows == ()


def test_january_report_holds_two_plan_years(clean_files):
    seen_january = False
    for workbook in clean_files:
        d = workbook.report_date
        rows = sheet_rows(workbook.path)
        years = {r["NamKeHoach"] for r in rows}
        carried_years = {r["NamKeHoach"] for r in rows if r["LaKeoDai"] == 1}
        if d.month == 1:
            seen_january = True
            assert years == {d.year - 1, d.year}
            # this year's carry-over is only known once last year's plan closes on 31 January
            assert carried_years <= {d.year - 1}
        else:
            assert years == {d.year}
            assert carried_years == {d.year}
    assert seen_january


def test_one_row_per_project_and_source(loaded):
    for report_date, rows in loaded.items():
        pairs = [(r["MaDuAn"], r["NguonVon"]) for r in rows]
        assert len(pairs) == len(set(pairs)), report_date


def test_cumulative_never_decreases_between_clean_report_dates(clean_files):
    clean_files = sorted(clean_files, key=lambda w: w.report_date)
    compared = 0
    for earlier, later in itertools.pairwise(clean_files):
        before = {key(r): r["GiaiNganLuyKe"] for r in sheet_rows(earlier.path)}
        for row in sheet_rows(later.path):
            if key(row) in before:
                compared += 1
                assert row["GiaiNganLuyKe"] >= before[key(row)], (later.path.name, key(row))
    assert compared > 500


def test_carried_over_rows_start_from_the_undisbursed_remainder(loaded):
    rows = loaded
    january, february = rows[date(2024, 1, 31)], rows[date(2024, 2, 29)]
    closing = {(r["MaDuAn"], r["NguonVon"]): r for r in january if r["NamKeHoach"] == 2023 and not r["LaKeoDai"]}
    carried = [r for r in february if r["LaKeoDai"] == 1]
    assert carried
    for row in carried:
        closed = closing[(row["MaDuAn"], row["NguonVon"])]
        assert row["NamKeHoach"] == 2024 and row["MaDuAn"].startswith("DA-2023-")
        assert row["KeHoachUBNDGiao"] == closed["KeHoachUBNDGiao"] - closed["GiaiNganLuyKe"]


def test_projects_look_real(loaded):
    for rows in loaded.values():
        for row in rows:
            assert re.fullmatch(r"DA-\d{4}-\d{4}", row["MaDuAn"])
            assert int(row["MaDuAn"][3:7]) == row["NamKeHoach"] - row["LaKeoDai"]
            assert re.search(r"[ăâđêôơưàảãáạèéẹìíòóọùúụỳýầấậềếệồốộờớợừứự]", row["TenDuAn"].lower())
            if not row["LaKeoDai"]:
                assert row["KeHoachTTgGiao"] >= 1_000_000_000
                assert row["KeHoachTTgGiao"] % 1_000_000 == 0
    rows = [r for rs in loaded.values() for r in rs]
    province_adds = sum(r["KeHoachUBNDGiao"] >= r["KeHoachTTgGiao"] for r in rows)
    assert province_adds / len(rows) > 0.8
    assert any(r["KeHoachUBNDGiao"] > r["KeHoachTTgGiao"] for r in rows if r["NguonVon"] == "NSDP")
    assert {r["NguonVon"] for r in rows} == {"NSTW", "NSDP", "CTMTQG", "ODA"}


def test_same_seed_same_cells_other_seed_other_cells(truth, tmp_path):
    again = write_workbooks(tmp_path / "again", INVESTORS, START, END, SEED, PROBLEMS)
    assert [w.path.relative_to(again.out_dir) for w in again.files] == [
        w.path.relative_to(truth.out_dir) for w in truth.files
    ]
    for mine, theirs in zip(truth.files, again.files, strict=True):
        assert cells(mine.path) == cells(theirs.path), mine.path.name
    other = write_workbooks(tmp_path / "other", INVESTORS, START, END, SEED + 1)
    assert cells(other.files[0].path) != cells(truth.files[0].path)


def test_build_projects_is_deterministic_per_year():
    both = build_projects(INVESTORS, [2023, 2024], SEED)
    alone = build_projects(INVESTORS, [2024], SEED)
    assert [p for p in both if p.plan_year == 2024] == alone
    assert len(build_projects(INVESTORS, [2024], SEED, scale=3)) > 2 * len(alone)


def test_far_behind_investors_are_below_30_percent_in_september(truth, loaded):
    assert truth.far_behind
    assert set(truth.far_behind) < {i.code for i in INVESTORS}
    assert {i.level for i in INVESTORS if i.code in truth.far_behind} == {1, 2}
    septembers = [d for d in loaded if d.month == 9]
    assert len(septembers) == 1
    for d in septembers:
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in loaded[d]:
            totals[row["ChuDauTu"]][0] += row["GiaiNganLuyKe"]
            totals[row["ChuDauTu"]][1] += row["KeHoachUBNDGiao"]
        for code, (disbursed, plan) in totals.items():
            assert (disbursed / plan < 0.30) == (code in truth.far_behind), (d, code, disbursed / plan)


def test_most_investors_end_the_year_between_60_and_95_percent(truth, loaded):
    closing = loaded[date(2024, 1, 31)]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in closing:
        if row["NamKeHoach"] == 2023:
            totals[row["ChuDauTu"]][0] += row["GiaiNganLuyKe"]
            totals[row["ChuDauTu"]][1] += row["KeHoachUBNDGiao"]
    for code, (disbursed, plan) in totals.items():
        if code not in truth.far_behind:
            assert 0.6 <= disbursed / plan <= 0.97, code


def test_rows_above_plan_are_flagged(truth, replayed):
    flagged = {
        (f.project_code, f.funding_source, f.plan_year, f.carried_over, d)
        for f in truth.over_plan
        for d in f.report_dates
    }
    observed = {
        (*key(r), w.report_date)
        for w in truth.files
        for r in replayed[w.path][0]
        if r["GiaiNganLuyKe"] > r["KeHoachUBNDGiao"]
    }
    assert observed and observed == flagged
    for *_, d in observed:
        assert d.month in (12, 1)


def test_plan_adjustments_show_in_the_reports(truth, loaded):
    assert truth.plan_adjustments
    for adjustment in truth.plan_adjustments:
        line = (adjustment.project_code, adjustment.funding_source, adjustment.plan_year, 0)
        effective = adjustment.effective_report_date
        # the effective report date itself may be a rejected file: look at the loaded dates around it
        before = max(d for d in loaded if d < effective)
        after = min(d for d in loaded if d >= effective)
        plans = {d: next(r["KeHoachUBNDGiao"] for r in loaded[d] if key(r) == line) for d in (before, after)}
        assert plans == {before: adjustment.plan_before, after: adjustment.plan_after}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_each_problem_is_where_the_truth_says(truth, replayed, problem):
    shown = [w for w in truth.files if w.problem == problem]
    assert shown
    assert all(w.report_date != month_ends(START, END)[0] for w in shown)
    for workbook in shown:
        rows, faults = replayed[workbook.path]
        if workbook.expected == "reject":
            assert faults == [(workbook.reject_row, workbook.reject_column, problem)], workbook.path.name
        else:
            assert faults == [] and rows == list(workbook.rows)


def test_title_rows_sit_above_the_header(truth):
    (workbook,) = [w for w in truth.files if w.problem == "title_rows"]
    grid = cells(workbook.path)
    assert workbook.header_row > 1
    assert grid[workbook.header_row - 1] == HEADERS
    assert all(HEADERS[0] not in line for line in grid[: workbook.header_row - 1])
    assert any(isinstance(v, str) and "GIẢI NGÂN" in v for line in grid for v in line)


def test_thousands_separators_in_both_styles(truth):
    shown = [w for w in truth.files if w.problem == "thousands_separators"]
    separators = set()
    for workbook in shown:
        for line in cells(workbook.path)[1:]:
            for column in AMOUNTS:
                text = line[HEADERS.index(column)]
                assert isinstance(text, str)
                separators |= set(text) - set("0123456789")
    assert separators == {".", ","}
    assert len(shown) == 2


def test_blank_rows_between_data_rows(truth):
    (workbook,) = [w for w in truth.files if w.problem == "blank_rows"]
    grid = cells(workbook.path)
    blank = [i for i, line in enumerate(grid) if all(v is None for v in line)]
    assert blank and max(blank) < len(grid) - 1
    assert len(grid) - 1 - len(blank) == len(workbook.rows)


def test_rejected_cells(truth):
    rejected = {w.problem: w for w in truth.files if w.expected == "reject"}
    assert set(rejected) == {"text_in_numbers", "missing_column", "negative_amount", "decreasing_cumulative"}
    for problem, workbook in rejected.items():
        grid = cells(workbook.path)
        header = grid[workbook.header_row - 1]
        if problem == "missing_column":
            assert workbook.reject_row == 1 and workbook.reject_column not in header
            assert len(header) == len(HEADERS) - 1
            continue
        value = grid[workbook.reject_row - 1][header.index(workbook.reject_column)]
        if problem == "text_in_numbers":
            assert isinstance(value, str) and not any(c.isdigit() for c in value)
        elif problem == "negative_amount":
            assert isinstance(value, int) and value < 0
        else:
            assert workbook.reject_column == "GiaiNganLuyKe" and isinstance(value, int) and value >= 0
        assert workbook.report_date.month != 9


def test_decreasing_is_against_a_clean_previous_report(truth):
    (workbook,) = [w for w in truth.files if w.problem == "decreasing_cumulative"]
    dates = [w.report_date for w in truth.files]
    previous = dates[dates.index(workbook.report_date) - 1]
    (before,) = [w for w in truth.files if w.report_date == previous]
    assert before.problem is None


def test_reissue_replaces_the_first_issue(truth):
    first, second = [w for w in truth.files if w.problem == "reissue"]
    assert first.report_date == second.report_date
    assert first.path == truth.out_dir / f"giai-ngan-{first.report_date.isoformat()}.xlsx"
    assert second.path == truth.out_dir / "reissued" / first.path.name
    assert first.superseded_by == second.path and second.replaces == first.path
    pairs = zip(sheet_rows(first.path), sheet_rows(second.path), strict=True)
    corrected = [(a, b) for a, b in pairs if a != b]
    assert corrected
    for stale, right in corrected:
        assert key(stale) == key(right) and stale["GiaiNganLuyKe"] < right["GiaiNganLuyKe"]
    assert truth.effective_rows()[first.report_date] == list(second.rows)


def test_truth_to_json(truth, tmp_path):
    path = tmp_path / "truth.json"
    truth.to_json(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(document["files"]) == len(truth.files)
    for entry in document["files"]:
        assert (Path(document["out_dir"]) / entry["path"]).is_file()
        assert entry["expected"] in ("accept", "reject")
    assert document["far_behind"] == truth.far_behind
    rejected = [f for f in document["files"] if f["expected"] == "reject"]
    assert all(f["reject_row"] and f["reject_column"] and not f["rows"] for f in rejected)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown problems"):
        write_workbooks(tmp_path, INVESTORS, START, END, SEED, frozenset({"on_fire"}))
    with pytest.raises(ValueError, match="too few"):
        write_workbooks(tmp_path, INVESTORS, START, date(2023, 3, 31), SEED, PROBLEMS)
