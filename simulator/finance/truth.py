"""What a correct reader must make of the workbooks the simulator wrote: ``FinanceTruth``.

``FinanceTruth.files`` lists every workbook in delivery order with what a reader must do (accept and load
its rows, or reject it at a row and column); ``effective_rows`` is what a warehouse should then hold per
report date. ``far_behind`` names the investors kept far behind plan, ``over_plan`` every accepted row with
`GiaiNganLuyKe` > `KeHoachUBNDGiao`, and ``plan_adjustments`` the mid-year changes of a provincial plan that
fall on a written report date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from simulator.finance.layout import plan_line_key
from simulator.finance.plan import Project, month_end

ACCEPT = "accept"
REJECT = "reject"


@dataclass(frozen=True)
class WorkbookFile:
    """One written workbook and what a correct reader makes of it.

    `rows` are the rows a reader must load (empty for a rejected file); for a rejection, `problem` is the
    reason and `reject_row` (1-based Excel row) and `reject_column` point at the faulty cell.
    """

    path: Path
    report_date: date
    expected: str
    problem: str | None
    detail: str
    header_row: int
    reject_row: int | None = None
    reject_column: str | None = None
    replaces: Path | None = None
    superseded_by: Path | None = None
    rows: tuple[dict, ...] = ()


@dataclass(frozen=True)
class OverPlanFlag:
    """A plan line whose cumulative disbursement exceeds its provincial plan on the given report dates."""

    project_code: str
    funding_source: str
    plan_year: int
    carried_over: int
    report_dates: tuple[date, ...]


@dataclass(frozen=True)
class PlanAdjustment:
    """A mid-year change of a line's provincial plan, in force from `effective_report_date`."""

    project_code: str
    funding_source: str
    plan_year: int
    effective_report_date: date
    plan_before: int
    plan_after: int


@dataclass
class FinanceTruth:
    """Everything the generator knows about the workbooks it wrote, in delivery order."""

    out_dir: Path
    seed: int
    start: date
    end: date
    problems: tuple[str, ...]
    files: list[WorkbookFile] = field(default_factory=list)
    far_behind: list[str] = field(default_factory=list)
    over_plan: list[OverPlanFlag] = field(default_factory=list)
    plan_adjustments: list[PlanAdjustment] = field(default_factory=list)

    def effective_rows(self) -> dict[date, list[dict]]:
        """Rows a warehouse should hold per report date: the last accepted delivery for each date."""
        result: dict[date, list[dict]] = {}
        for workbook in self.files:
            if workbook.expected == ACCEPT:
                result[workbook.report_date] = list(workbook.rows)
        return dict(sorted(result.items()))

    def to_json(self, path: Path) -> None:
        """Write the truth as JSON; file paths are relative to `out_dir`, dates ISO 8601."""

        def relative(p: Path | None) -> str | None:
            return None if p is None else p.relative_to(self.out_dir).as_posix()

        document = {
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "problems": list(self.problems),
            "files": [
                {
                    "path": relative(w.path),
                    "report_date": w.report_date.isoformat(),
                    "expected": w.expected,
                    "problem": w.problem,
                    "detail": w.detail,
                    "header_row": w.header_row,
                    "reject_row": w.reject_row,
                    "reject_column": w.reject_column,
                    "replaces": relative(w.replaces),
                    "superseded_by": relative(w.superseded_by),
                    "rows": list(w.rows),
                }
                for w in self.files
            ],
            "far_behind": self.far_behind,
            "over_plan": [
                {
                    "project_code": f.project_code,
                    "funding_source": f.funding_source,
                    "plan_year": f.plan_year,
                    "carried_over": f.carried_over,
                    "report_dates": [d.isoformat() for d in f.report_dates],
                }
                for f in self.over_plan
            ],
            "plan_adjustments": [
                {
                    "project_code": a.project_code,
                    "funding_source": a.funding_source,
                    "plan_year": a.plan_year,
                    "effective_report_date": a.effective_report_date.isoformat(),
                    "plan_before": a.plan_before,
                    "plan_after": a.plan_after,
                }
                for a in self.plan_adjustments
            ],
        }
        Path(path).write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


def over_plan_flags(files: list[WorkbookFile]) -> list[OverPlanFlag]:
    """The plan lines whose accepted rows exceed their provincial plan, with the report dates they do."""
    seen: dict[tuple, set[date]] = {}
    for workbook in files:
        for row in workbook.rows:
            if row["GiaiNganLuyKe"] > row["KeHoachUBNDGiao"]:
                seen.setdefault(plan_line_key(row), set()).add(workbook.report_date)
    return [
        OverPlanFlag(code, source, year, carried, tuple(sorted(dates)))
        for (code, source, year, carried), dates in sorted(seen.items())
    ]


def plan_adjustments(projects: list[Project], dates: list[date]) -> list[PlanAdjustment]:
    """The mid-year plan adjustments whose effective report date is among ``dates``."""
    written = set(dates)
    adjustments = []
    for project in projects:
        for line in project.lines:
            if line.adjusted_from_month is None:
                continue
            effective = month_end(line.plan_year, line.adjusted_from_month)
            if effective in written:
                adjustments.append(
                    PlanAdjustment(
                        project.code,
                        line.source,
                        line.plan_year,
                        effective,
                        line.plan_province_before,
                        line.plan_province,
                    )
                )
    return adjustments
