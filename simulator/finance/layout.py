"""What a disbursement workbook holds (the finance-workbook spec): its file name, sheet and nine columns, the
title lines above a header, and the true rows of a report date.

Decisions where the spec is silent: rows are ordered by plan year, carried-over flag, investor (in the order
given), project code and funding source; amounts are integer VND (``simulator.finance.plan``).
"""

from __future__ import annotations

from datetime import date

from simulator.finance.plan import FUNDING_SOURCES, Investor, Project

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
AMOUNT_COLUMNS = ("KeHoachTTgGiao", "KeHoachUBNDGiao", "GiaiNganLuyKe")
PROVINCE = "Quảng Nam"
_SOURCE_ORDER = {s: i for i, s in enumerate(FUNDING_SOURCES)}


def rows_at(projects: list[Project], report_date: date, investors: list[Investor]) -> list[dict]:
    """The true workbook rows of a report date, grouped by plan year, carried-over flag and investor."""
    order = {inv.code: i for i, inv in enumerate(investors)}
    rows = []
    for project in projects:
        for line in project.lines:
            month = line.month_index(report_date)
            if month is None:
                continue
            rows.append(
                {
                    "MaDuAn": project.code,
                    "TenDuAn": project.name,
                    "ChuDauTu": project.investor_code,
                    "NguonVon": line.source,
                    "NamKeHoach": line.plan_year,
                    "LaKeoDai": int(line.carried_over),
                    "KeHoachTTgGiao": line.plan_pm,
                    "KeHoachUBNDGiao": line.plan_province_at(month),
                    "GiaiNganLuyKe": line.cumulative[month - 1],
                }
            )
    rows.sort(
        key=lambda r: (
            r["NamKeHoach"],
            r["LaKeoDai"],
            order[r["ChuDauTu"]],
            r["MaDuAn"],
            _SOURCE_ORDER[r["NguonVon"]],
        )
    )
    return rows


def plan_line_key(row: dict) -> tuple:
    """The plan line of a row: project, funding source, plan year, carried-over flag."""
    return row["MaDuAn"], row["NguonVon"], row["NamKeHoach"], row["LaKeoDai"]


def file_name(report_date: date) -> str:
    """``giai-ngan-YYYY-MM-DD.xlsx``."""
    return f"giai-ngan-{report_date.isoformat()}.xlsx"


def cells(row: dict, columns: tuple[str, ...]) -> list:
    """A row's values in the order of ``columns``."""
    return [row[c] for c in columns]


def title_lines(report_date: date) -> list[list]:
    """The title lines a department puts above the header, then a blank line."""
    last = len(HEADERS)
    unit = [None] * (last - 1) + ["Đơn vị tính: đồng"]
    return [
        [f"ỦY BAN NHÂN DÂN TỈNH {PROVINCE.upper()}"],
        ["SỞ TÀI CHÍNH"],
        ["BÁO CÁO TÌNH HÌNH GIẢI NGÂN KẾ HOẠCH VỐN ĐẦU TƯ CÔNG"],
        [f"(Số liệu đến ngày {report_date:%d/%m/%Y})"],
        unit,
        [],
    ]
