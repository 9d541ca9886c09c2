"""Writing the simulated workbooks: ``write_workbooks``.

One workbook per month end (``simulator.finance.plan.report_dates``) is written with openpyxl, holding the
true rows of its report date (``layout.rows_at``) or a problem shown in them (``problems``), and the
``FinanceTruth`` of what a correct reader must make of each (``truth``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from simulator.finance.layout import HEADERS, SHEET_NAME, cells, file_name, rows_at
from simulator.finance.plan import Investor, build_projects, far_behind_investors, report_dates
from simulator.finance.problems import PROBLEMS, assign_problems, show_problem, stale_rows
from simulator.finance.truth import ACCEPT, FinanceTruth, WorkbookFile, over_plan_flags, plan_adjustments

REISSUE_DIR = "reissued"


def write_workbooks(
    out_dir: Path,
    investors: list[Investor],
    start: date,
    end: date,
    seed: int,
    problems: frozenset[str] = frozenset(),
    scale: float = 1.0,
    handover: tuple[date, Mapping[str, str]] | None = None,
) -> FinanceTruth:
    """Write one disbursement workbook per month end in [start, end] into `out_dir`.

    `problems` names real-world problems (see ``simulator.finance.problems``) to show in some of the files.
    `handover` = (day, {investor code: successor code}): from the reports dated on or after that day, an
    investor's projects are reported under its successor (the 2025 reorganisation: the units that took over
    the closed departments and districts). Returns what a correct reader must accept, load or reject, in
    delivery order.
    """
    problems = frozenset(problems)
    unknown = problems - PROBLEMS
    if unknown:
        raise ValueError(f"unknown problems {sorted(unknown)}; known: {sorted(PROBLEMS)}")
    dates = report_dates(start, end)
    if not dates:
        raise ValueError(f"no month end between {start} and {end}")
    out_dir = Path(out_dir)
    # A 31 January report still shows the previous plan year, including what that year carried over
    # from the one before.
    plan_years = list(range(dates[0].year - 2, dates[-1].year + 1))
    projects = build_projects(investors, plan_years, seed, scale)
    true_rows = [rows_at(projects, d, investors) for d in dates]
    if handover is not None:
        day, successors = handover
        true_rows = [[{**r, "ChuDauTu": successors.get(r["ChuDauTu"], r["ChuDauTu"])} for r in rows] if d >= day
                     else rows for d, rows in zip(dates, true_rows, strict=True)]
    rng = random.Random(f"{seed}:problems")
    assigned = assign_problems(dates, problems, rng)

    truth = FinanceTruth(out_dir, seed, start, end, tuple(sorted(problems)))
    for i, report_date in enumerate(dates):
        path = out_dir / file_name(report_date)
        rows = true_rows[i]
        problem, variant = assigned.get(i, (None, None))
        if problem is None:
            truth.files.append(_clean_file(path, report_date, rows))
        elif problem == "reissue":
            reissued = out_dir / REISSUE_DIR / file_name(report_date)
            first = _clean_file(path, report_date, stale_rows(rows, true_rows[i - 1], rng))
            second = _clean_file(reissued, report_date, rows, detail="re-issue with corrected figures")
            truth.files.append(
                WorkbookFile(
                    first.path,
                    report_date,
                    ACCEPT,
                    "reissue",
                    "first issue, stale treasury figures",
                    header_row=1,
                    superseded_by=reissued,
                    rows=first.rows,
                )
            )
            truth.files.append(
                WorkbookFile(
                    reissued,
                    report_date,
                    ACCEPT,
                    "reissue",
                    second.detail,
                    header_row=1,
                    replaces=path,
                    rows=second.rows,
                )
            )
        else:
            previous = true_rows[i - 1] if i else None
            shown = show_problem(path, report_date, rows, previous, problem, variant, rng)
            _save(path, shown.grid, shown.title)
            truth.files.append(shown.expected)

    truth.far_behind = far_behind_investors(investors, seed)
    truth.over_plan = over_plan_flags(truth.files)
    truth.plan_adjustments = plan_adjustments(projects, dates)
    return truth


def _save(path: Path, grid: list[list], title: bool) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET_NAME
    for line in grid:
        sheet.append(line)
    if title:
        for row in (1, 2, 3):
            sheet.cell(row=row, column=1).font = Font(bold=True)
        sheet.merge_cells(start_row=3, start_column=1, end_row=3, end_column=len(HEADERS))
        sheet.cell(row=3, column=1).alignment = Alignment(horizontal="center")
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def _clean_file(path: Path, report_date: date, rows: list[dict], detail: str = "clean") -> WorkbookFile:
    grid = [list(HEADERS)] + [cells(r, HEADERS) for r in rows]
    _save(path, grid, title=False)
    return WorkbookFile(path, report_date, ACCEPT, None, detail, header_row=1, rows=tuple(rows))
