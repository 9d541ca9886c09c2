"""The real-world problems the simulated workbooks show (the finance-workbook spec's list), and where.

``assign_problems`` gives each problem asked its own report date; ``show_problem`` turns a report date's
true rows into the grid of a workbook showing one problem, with what a correct reader must make of it;
``stale_rows`` is the first issue of a re-issued date. Pure: the grids are written by
``simulator.finance.workbooks``.

Each problem is shown in exactly one report date's workbook of the inbox (two for `thousands_separators`,
one per separator style), never in the first report date's, and rejected ones never in a September
workbook when another date is free (so the far-behind story stays loadable). Too few report dates for the
problems asked is a `ValueError`.

- `title_rows`: five title lines (committee, department, report title merged across the columns, "Số liệu
  đến ngày ...", unit) and a blank line above the header, which sits on row 7. Accepted.
- `thousands_separators`: every amount cell is text such as "1.234.567.000" (one file) or "1,234,567,000"
  (another). Accepted.
- `blank_rows`: an empty row after each investor's block of rows. Accepted.
- `text_in_numbers`: one amount cell holds Vietnamese text ("chưa có số liệu"). Rejected at that cell.
- `missing_column`: one required column is absent. Rejected at row 1 (the header) and that column.
- `negative_amount`: one plan cell holds the negative adjustment instead of the plan. Rejected at that cell.
- `decreasing_cumulative`: one `GiaiNganLuyKe` has lost a digit, so it is below the previous report date's
  figure for the same plan line; the previous report date's file is kept clean so the comparison is
  unambiguous. Rejected at that cell.
- `reissue`: a clean report date whose workbook had stale treasury figures (last month's) on a few rows is
  re-issued with corrected figures as `reissued/giai-ngan-YYYY-MM-DD.xlsx`, delivered after the first.
  Both files are accepted; the re-issue replaces the first for that date.

A rejected file otherwise holds the true figures, so the report dates after it are unaffected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from simulator.finance.layout import AMOUNT_COLUMNS, HEADERS, cells, plan_line_key, title_lines
from simulator.finance.plan import SEPTEMBER, whole_millions
from simulator.finance.truth import ACCEPT, REJECT, WorkbookFile

PARSEABLE_PROBLEMS = frozenset({"title_rows", "thousands_separators", "blank_rows"})
REJECTED_PROBLEMS = frozenset({"text_in_numbers", "missing_column", "negative_amount", "decreasing_cumulative"})
PROBLEMS = PARSEABLE_PROBLEMS | REJECTED_PROBLEMS | {"reissue"}

_TEXT_IN_NUMBERS = ("chưa có số liệu", "đang cập nhật", "KBNN chưa đối chiếu")
_DROPPABLE_COLUMNS = ("ChuDauTu", "NguonVon", "NamKeHoach", "KeHoachTTgGiao", "GiaiNganLuyKe")


@dataclass(frozen=True)
class ProblemGrid:
    """A workbook to write: its rows of cells, whether they open with the formatted title lines, and what a
    correct reader must make of the file."""

    grid: list[list]
    title: bool
    expected: WorkbookFile


def assign_problems(
    dates: list[date], problems: frozenset[str], rng: random.Random
) -> dict[int, tuple[str, str | None]]:
    """Give each problem variant its own report date (by index); the first date stays clean."""
    variants: list[tuple[str, str | None]] = []
    for problem, variant in (
        ("title_rows", None),
        ("thousands_separators", "."),
        ("thousands_separators", ","),
        ("blank_rows", None),
        ("text_in_numbers", None),
        ("missing_column", None),
        ("negative_amount", None),
        ("reissue", None),
    ):
        if problem in problems:
            variants.append((problem, variant))
    decreasing = "decreasing_cumulative" in problems
    needed = len(variants) + (2 if decreasing else 0) + 1
    if len(dates) < needed:
        raise ValueError(f"{len(dates)} report dates are too few for problems {sorted(problems)}: need {needed}")
    free = list(range(1, len(dates)))
    rng.shuffle(free)

    def take(candidates: list[int], rejected: bool) -> int:
        if rejected:
            candidates = sorted(candidates, key=lambda i: dates[i].month == SEPTEMBER)
        return candidates[0]

    assigned: dict[int, tuple[str, str | None]] = {}
    if decreasing:
        # The previous report date stays clean so that "lower than last time" has one meaning.
        index = take([i for i in free if i - 1 in free or i - 1 == 0], rejected=True)
        assigned[index] = ("decreasing_cumulative", None)
        free = [i for i in free if i not in (index, index - 1)]
    for problem, variant in variants:
        index = take(free, rejected=problem in REJECTED_PROBLEMS)
        assigned[index] = (problem, variant)
        free.remove(index)
    return assigned


def show_problem(
    path: Path,
    report_date: date,
    rows: list[dict],
    previous: list[dict] | None,
    problem: str,
    variant: str | None,
    rng: random.Random,
) -> ProblemGrid:
    """The grid of one workbook showing `problem`, and what a correct reader must do with it."""
    grid = [list(HEADERS)] + [cells(r, HEADERS) for r in rows]
    header_row = 1
    title = False
    reject_row = reject_column = None
    if problem == "title_rows":
        title = True
        titles = title_lines(report_date)
        grid = titles + grid
        header_row = len(titles) + 1
        detail = f"title lines on rows 1-{len(titles)}, the header on row {header_row}"
    elif problem == "thousands_separators":
        amount_indexes = [HEADERS.index(c) for c in AMOUNT_COLUMNS]
        for line in grid[1:]:
            for i in amount_indexes:
                line[i] = f"{line[i]:,}".replace(",", variant)
        detail = f"amounts as text with '{variant}' thousands separators"
    elif problem == "blank_rows":
        spaced = [grid[0]]
        for i, row in enumerate(rows):
            spaced.append(grid[i + 1])
            following = rows[i + 1] if i + 1 < len(rows) else None
            if following is not None and following["ChuDauTu"] != row["ChuDauTu"]:
                spaced.append([])
        grid = spaced
        detail = "an empty row after each investor's block"
    elif problem == "missing_column":
        reject_column = rng.choice(_DROPPABLE_COLUMNS)
        reject_row = header_row
        columns = tuple(c for c in HEADERS if c != reject_column)
        grid = [list(columns)] + [cells(r, columns) for r in rows]
        detail = f"required column {reject_column} is missing"
    else:
        index, reject_column, value, detail = _faulty_cell(rows, previous, problem, rng)
        reject_row = header_row + 1 + index
        grid[index + 1][HEADERS.index(reject_column)] = value
    if reject_column is not None:
        expected = WorkbookFile(path, report_date, REJECT, problem, detail, header_row, reject_row, reject_column)
    else:
        expected = WorkbookFile(path, report_date, ACCEPT, problem, detail, header_row, rows=tuple(rows))
    return ProblemGrid(grid, title, expected)


def _faulty_cell(
    rows: list[dict], previous: list[dict] | None, problem: str, rng: random.Random
) -> tuple[int, str, object, str]:
    """Pick the data row (0-based), column and bad value for a single-cell rejection."""
    if problem == "text_in_numbers":
        index = rng.randrange(len(rows))
        column = rng.choice(AMOUNT_COLUMNS)
        text = rng.choice(_TEXT_IN_NUMBERS)
        return index, column, text, f"{column} holds text {text!r}"
    if problem == "negative_amount":
        index = rng.randrange(len(rows))
        column = rng.choice(("KeHoachTTgGiao", "KeHoachUBNDGiao"))
        # The clerk typed the adjustment (a reduction) instead of the resulting plan.
        value = -whole_millions(rows[index][column] * rng.uniform(0.1, 0.3))
        return index, column, value, f"{column} is negative ({value})"
    before = {plan_line_key(r): r["GiaiNganLuyKe"] for r in previous or ()}
    candidates = [i for i, r in enumerate(rows) if before.get(plan_line_key(r), 0) >= 1_000_000_000]
    candidates = candidates or [i for i, r in enumerate(rows) if before.get(plan_line_key(r), 0) > 0]
    if not candidates:
        raise ValueError("no row to show decreasing_cumulative: nothing disbursed in the previous report")
    index = rng.choice(candidates)
    earlier = before[plan_line_key(rows[index])]
    # A digit lost in re-typing the treasury figure.
    value = earlier // 10
    return index, "GiaiNganLuyKe", value, f"GiaiNganLuyKe {value} is below the previous report's {earlier}"


def stale_rows(rows: list[dict], previous: list[dict], rng: random.Random) -> list[dict]:
    """A first issue whose treasury figures on a few rows were still last month's."""
    before = {plan_line_key(r): r["GiaiNganLuyKe"] for r in previous}
    moved = [i for i, r in enumerate(rows) if r["GiaiNganLuyKe"] > before.get(plan_line_key(r), r["GiaiNganLuyKe"])]
    stale = [dict(r) for r in rows]
    for i in rng.sample(moved, min(4, len(moved))):
        stale[i]["GiaiNganLuyKe"] = before[plan_line_key(rows[i])]
    return stale
