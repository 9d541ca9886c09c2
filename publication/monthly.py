"""The monthly publication (công khai): per level, the ranking of units by on-time rate and the units
below the 95% target, as a printable HTML page (A4) and an Excel workbook. A month prints the levels that had
units in force in it: after the 2025 reorganisation there is no district level, so a month from July 2025
prints the provincial and commune levels, and an earlier month still prints its districts.

    python -m publication monthly --month 2023-09 [--out DIR]

``write_publication`` writes ``cong-khai-YYYY-MM.html`` and ``cong-khai-YYYY-MM.xlsx`` from
``marts.rpt_monthly_ranking`` (rank, unit, resolved, on-time rate, below target) and the late dossiers of
each unit from ``marts.fct_timeliness_monthly``. The workbook has one sheet per level; its numbers are
numbers, with the display formats ``#,##0`` and ``0.0%``, which spreadsheet programs show with the reader's
separators (1.234 and 95,3% on a Vietnamese system).

Text from the API (unit codes and names, the province's name) is written as text: a name starting with
``=`` never becomes a formula, and one starting with ``=``, ``+``, ``-`` or ``@`` carries Excel's quote
prefix (``publication.spreadsheet``). The page is the template ``publication/templates/monthly.html.j2``
(markup and CSS), rendered with autoescaping (``publication.pages``): every such text is escaped there.

Both files are built completely under temporary names in ``out_dir`` and only then renamed over the final
names (``pipeline.files``): a reader never sees half a file, and a crash leaves either the previous files,
or (between the two renames, a moment) the new workbook beside the previous page — never a partial file.
A month counts as published when both final names exist (``ops.publish``).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from markupsafe import Markup
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from pipeline.files import commit_temporary, remove_stale_temporaries, temporary_sibling
from publication import figures as F
from publication.formatting import fmt_month, fmt_percent
from publication.pages import render_page
from publication.spreadsheet import put

MIN_RESOLVED = F.MIN_RESOLVED  # the ranking's threshold (pipeline.settings; dbt var min_resolved)
HEADERS = ("Hạng", "Mã đơn vị", "Tên đơn vị", "Số hồ sơ đã giải quyết", "Số hồ sơ trễ hạn", "Tỷ lệ đúng hạn",
           "Kết quả")
COUNT_FORMAT = "#,##0"
RATE_FORMAT = "0.0%"
BELOW = f"Dưới {fmt_percent(F.TARGET, 0)}"  # "Dưới 95%" (PUBLICATION_ON_TIME_TARGET)
MET = "Đạt"
HEADER_ROW = 4


class NoRankingError(LookupError):
    """``rpt_monthly_ranking`` has no row for the month asked."""


def title_of(month: date) -> str:
    """The publication's title for ``month``, on the page and in the workbook."""
    return f"Công khai tỷ lệ giải quyết hồ sơ đúng hạn tháng {fmt_month(month)}"


# Units in force in a month (reorganisation.md): started before the month's end, not ended before its first day.
IN_FORCE = "(valid_from IS NULL OR valid_from < %(next)s) AND (valid_to IS NULL OR valid_to >= %(month)s)"


def levels_in_force(conn, month: date) -> set[int]:
    """The levels that have a unit in force in ``month``: after the 2025 reorganisation no district-level unit
    is (two-tier local government), so its section is left out rather than printed empty; every level when
    ``dim_unit`` is missing."""
    if not F.exists(conn, "marts.dim_unit"):
        return set(F.LEVELS)
    rows = conn.execute(f"SELECT DISTINCT level FROM marts.dim_unit WHERE level IS NOT NULL AND {IN_FORCE}",
                        {"month": month, "next": F.add_months(month, 1)}).fetchall()
    return {r["level"] for r in rows}


def province_in_force(conn, month: date) -> str | None:
    """The provincial People's Committee in force in ``month`` (Quảng Nam's until June 2025, then Đà Nẵng
    city's in the reorganisation), else the one in force today."""
    if F.exists(conn, "marts.dim_unit"):
        row = conn.execute(f"SELECT unit_name FROM marts.dim_unit WHERE unit_type = 'UBND_TINH' AND {IN_FORCE} "
                           "ORDER BY valid_to DESC NULLS FIRST, unit_code LIMIT 1",
                           {"month": month, "next": F.add_months(month, 1)}).fetchone()
        if row:
            return row["unit_name"]
    return F.province_name(conn)


def load(url: str, month: date) -> dict:
    """The month's ranking per level (rank order), with each unit's late dossiers; raises NoRankingError. The
    levels are those with a unit in force in the month (and any level ranked in it)."""
    month = month.replace(day=1)
    with F.connect(url) as conn:
        ranking = F.ranking(conn, month)
        province = province_in_force(conn, month)
        levels = levels_in_force(conn, month) | set(ranking)
        available = []
        if not ranking and F.exists(conn, "marts.rpt_monthly_ranking"):
            available = [r["month"] for r in conn.execute(
                "SELECT DISTINCT month FROM marts.rpt_monthly_ranking ORDER BY month DESC LIMIT 12")]
    if not ranking:
        hint = "the ranking table is empty or not built"
        if available:
            hint = "months with a ranking: " + ", ".join(fmt_month(m) for m in available)
        raise NoRankingError(f"no ranking for {fmt_month(month)} in marts.rpt_monthly_ranking ({hint})")
    return {"month": month, "province_name": province, "target": F.TARGET, "min_resolved": MIN_RESOLVED,
            "levels": {level: ranking.get(level, []) for level in sorted(F.LEVELS) if level in levels},
            "generated_at": datetime.now().replace(microsecond=0)}


def render_html(pub: dict) -> str:
    """The publication's HTML page for what ``load`` read (template ``monthly.html.j2``)."""
    payload = {"month": pub["month"], "target": pub["target"],
               "levels": {str(level): rows for level, rows in pub["levels"].items()}}
    return render_page("monthly.html.j2", pub=pub, title=title_of(pub["month"]),
                       figures_json=Markup(F.to_json(payload)),  # to_json escapes <, > and &: inert in <script>
                       levels=F.LEVELS, level_units=F.LEVEL_UNITS, below_label=BELOW, met_label=MET)


def build_workbook(pub: dict) -> Workbook:
    """One sheet per level: a title, then the ranking from row ``HEADER_ROW`` (header) down."""
    wb = Workbook()
    wb.remove(wb.active)
    thin = Side(style="thin", color="888888")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    below_fill = PatternFill("solid", fgColor="FDE8E6")
    header_fill = PatternFill("solid", fgColor="E8E8E8")
    for level, rows in pub["levels"].items():
        ws = wb.create_sheet(F.LEVELS[level])
        title = put(ws, 1, 1, f"{title_of(pub['month'])} – {F.LEVELS[level]} ({F.LEVEL_UNITS[level]})")
        title.font = Font(bold=True, size=13)
        note = (f"{pub['province_name'] or ''} · đơn vị có từ {pub['min_resolved']} hồ sơ đã giải quyết trở lên; "
                f"mục tiêu tỷ lệ đúng hạn ≥ {fmt_percent(pub['target'], 0)}; hạng 1 là thấp nhất").lstrip(" ·")
        put(ws, 2, 1, note).font = Font(italic=True)
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HEADERS))
        ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=len(HEADERS))
        for col, name in enumerate(HEADERS, start=1):
            cell = put(ws, HEADER_ROW, col, name)
            cell.font = Font(bold=True)
            cell.fill = header_fill
            cell.border = border
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for i, r in enumerate(rows, start=HEADER_ROW + 1):
            values = (r["rank"], r["unit_code"], r["unit_name"], r["resolved"], r["late"], r["on_time_rate"],
                      BELOW if r["below_target"] else MET)
            for col, value in enumerate(values, start=1):
                cell = put(ws, i, col, value)
                cell.border = border
                if col in (4, 5):
                    cell.number_format = COUNT_FORMAT
                elif col == 6:
                    cell.number_format = RATE_FORMAT
                if r["below_target"]:
                    cell.fill = below_fill
                    cell.font = Font(bold=True)
        if not rows:
            put(ws, HEADER_ROW + 1, 1, "Không có đơn vị đủ điều kiện xếp hạng trong tháng.")
        for col, width in enumerate((7, 16, 46, 14, 12, 13, 12), start=1):
            ws.column_dimensions[get_column_letter(col)].width = width
        ws.row_dimensions[HEADER_ROW].height = 32
        ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=1)
        if rows:
            ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(HEADERS))}{HEADER_ROW + len(rows)}"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "portrait"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    wb.properties.title = title_of(pub["month"])
    wb.properties.language = "vi-VN"
    return wb


def publication_paths(out_dir: Path, month: date) -> tuple[Path, Path]:
    """The two files of ``month``'s publication in ``out_dir``: ``cong-khai-YYYY-MM.html`` and ``.xlsx``."""
    stem = f"cong-khai-{month:%Y-%m}"
    return Path(out_dir) / f"{stem}.html", Path(out_dir) / f"{stem}.xlsx"


def write_publication(url: str, month: date, out_dir: Path) -> list[Path]:
    """Write the publication of ``month`` (its first day) as ``cong-khai-YYYY-MM.html`` and ``.xlsx`` in
    ``out_dir``; returns both paths. Raises ``NoRankingError`` when the month has no ranking rows."""
    pub = load(url, month)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html, xlsx = publication_paths(out_dir, pub["month"])
    staged: list[Path] = []
    try:
        # Both files are complete on disk before either final name changes (see the module docstring).
        staged.append(temporary_sibling(html))
        staged[-1].write_text(render_html(pub), encoding="utf-8")
        staged.append(temporary_sibling(xlsx))
        build_workbook(pub).save(staged[-1])
        commit_temporary(staged[1], xlsx)
        commit_temporary(staged[0], html)
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
    for path in (html, xlsx):
        remove_stale_temporaries(path)
    return [html, xlsx]
