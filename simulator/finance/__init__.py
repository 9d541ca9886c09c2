"""Simulated disbursement workbooks of the Department of Finance (giải ngân vốn đầu tư công).

The finance department compiles State Treasury figures into one Excel workbook per report date
(`giai-ngan-YYYY-MM-DD.xlsx`, sheet `GiaiNgan`, see the finance-workbook spec). This package invents a
province's public-investment projects and writes those workbooks, deterministically from a seed, together
with a `FinanceTruth` that says what a correct reader must make of each file:

- ``plan``: investors, projects, plan lines and their monthly cumulative disbursement (the model);
- ``layout``: the workbook's file name, sheet and columns, and the true rows of a report date;
- ``problems``: the real-world problems shown in some of the files, and on which report date;
- ``truth``: what a correct reader must make of each file, in delivery order;
- ``workbooks``: ``write_workbooks``, which writes the files with openpyxl.

Each module's docstring holds the decisions it implements where the spec is silent.
"""

from simulator.finance.layout import AMOUNT_COLUMNS, HEADERS, SHEET_NAME, rows_at
from simulator.finance.plan import (
    FUNDING_SOURCES,
    Investor,
    PlanLine,
    Project,
    build_projects,
    far_behind_investors,
    report_dates,
)
from simulator.finance.problems import PARSEABLE_PROBLEMS, PROBLEMS, REJECTED_PROBLEMS
from simulator.finance.truth import ACCEPT, REJECT, FinanceTruth, OverPlanFlag, PlanAdjustment, WorkbookFile
from simulator.finance.workbooks import REISSUE_DIR, write_workbooks

__all__ = [
    "ACCEPT",
    "AMOUNT_COLUMNS",
    "FUNDING_SOURCES",
    "HEADERS",
    "PARSEABLE_PROBLEMS",
    "PROBLEMS",
    "REISSUE_DIR",
    "REJECT",
    "REJECTED_PROBLEMS",
    "SHEET_NAME",
    "FinanceTruth",
    "Investor",
    "OverPlanFlag",
    "PlanAdjustment",
    "PlanLine",
    "Project",
    "WorkbookFile",
    "build_projects",
    "far_behind_investors",
    "report_dates",
    "rows_at",
    "write_workbooks",
]
