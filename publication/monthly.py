"""The monthly publication (công khai): per level, the ranking of units by on-time rate and the units
below the 95% target, as a printable HTML page (A4) and an Excel workbook.

    python -m publication monthly --month 2023-09 [--out DIR]

``write_publication`` writes ``cong-khai-YYYY-MM.html`` and ``cong-khai-YYYY-MM.xlsx`` from
``marts.rpt_monthly_ranking`` (rank, unit, resolved, on-time rate, below target) and the late dossiers of
each unit from ``marts.fct_timeliness_monthly``. The workbook has one sheet per level; its numbers are
numbers, with the display formats ``#,##0`` and ``0.0%``, which spreadsheet programs show with the reader's
separators (1.234 and 95,3% on a Vietnamese system).

Text from the API (unit codes and names, the province's name) is written as text: a name starting with
``=`` never becomes a formula, and one starting with ``=``, ``+``, ``-`` or ``@`` carries Excel's quote
prefix (``publication.spreadsheet``); in the HTML every such text is escaped.

Both files are built completely under temporary names in ``out_dir`` and only then renamed over the final
names (``pipeline.files``): a reader never sees half a file, and a crash leaves either the previous files,
or (between the two renames, a moment) the new workbook beside the previous page — never a partial file.
A month counts as published when both final names exist (``ops.publish``).
"""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from pipeline.files import commit_temporary, remove_stale_temporaries, temporary_sibling
from publication import figures as F
from publication.formatting import fmt_date, fmt_int, fmt_month, fmt_percent
from publication.spreadsheet import put

MIN_RESOLVED = 10  # the ranking's default threshold (dbt var min_resolved)
HEADERS = ("Hạng", "Mã đơn vị", "Tên đơn vị", "Số hồ sơ đã giải quyết", "Số hồ sơ trễ hạn", "Tỷ lệ đúng hạn",
           "Kết quả")
COUNT_FORMAT = "#,##0"
RATE_FORMAT = "0.0%"
BELOW = "Dưới 95%"
MET = "Đạt"
HEADER_ROW = 4

CSS = """
@page { size: A4 portrait; margin: 16mm 14mm 18mm; }
* { box-sizing: border-box; }
body { margin: 0; color: #111; background: #fff;
       font: 11pt/1.45 'Times New Roman', 'Noto Serif', 'DejaVu Serif', serif; }
main { max-width: 190mm; margin: 0 auto; padding: 10mm 0; }
.masthead { font-size: 10.5pt; text-align: center; width: 50%; }
.masthead b { display: block; text-transform: uppercase; }
h1 { font-size: 15pt; text-align: center; text-transform: uppercase; margin: 10mm 0 2mm; }
p.sub { text-align: center; font-style: italic; margin: 0 0 6mm; }
h2 { font-size: 12.5pt; margin: 8mm 0 2mm; break-after: avoid; }
.below-list { border: 1px solid #b42318; padding: 2mm 4mm; margin: 2mm 0 3mm; break-inside: avoid; }
.below-list ol { margin: 1mm 0 1mm 6mm; padding: 0; }
table { width: 100%; border-collapse: collapse; font-size: 10.5pt; margin: 2mm 0 4mm; }
th, td { border: 1px solid #555; padding: 1.2mm 2mm; vertical-align: top; }
th { background: #e8e8e8; }
td:nth-child(2) { width: 46%; } td:last-child { white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.below td { background: #fde8e6; font-weight: 600; }
tr { break-inside: avoid; }
thead { display: table-header-group; }
p.note, footer { font-size: 9.5pt; color: #333; }
@media screen { body { background: #eee; } main { background: #fff; padding: 12mm 14mm; margin: 6mm auto;
  box-shadow: 0 0 4mm rgba(0,0,0,.15); } }
"""


class NoRankingError(LookupError):
    """``rpt_monthly_ranking`` has no row for the month asked."""


def _e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def title_of(month: date) -> str:
    return f"Công khai tỷ lệ giải quyết hồ sơ đúng hạn tháng {fmt_month(month)}"


def load(url: str, month: date) -> dict:
    """The month's ranking per level (rank order), with each unit's late dossiers; raises NoRankingError."""
    month = month.replace(day=1)
    with F.connect(url) as conn:
        ranking = F.ranking(conn, month)
        province = F.province_name(conn)
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
            "levels": {level: ranking.get(level, []) for level in sorted(F.LEVELS)},
            "generated_at": datetime.now().replace(microsecond=0)}


def _below_sentence(r: dict) -> str:
    timely = r["resolved"] - r["late"]
    return (f"{r['unit_name']}: {fmt_percent(r['on_time_rate'])} đúng hạn ({fmt_int(timely)}/{fmt_int(r['resolved'])} "
            f"hồ sơ trước và đúng hạn, {fmt_int(r['late'])} hồ sơ trễ hạn)")


def render_html(pub: dict) -> str:
    month = pub["month"]
    province = pub["province_name"] or "Ủy ban nhân dân tỉnh"
    title = title_of(month)
    parts = [
        f'<div class="masthead"><div><b>{_e(province)}</b>Kết quả giải quyết thủ tục hành chính</div></div>',
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Số liệu hồ sơ đã giải quyết trong tháng {fmt_month(month)}, trích từ Hệ thống thông tin '
        "giải quyết thủ tục hành chính</p>",
        f'<p class="note">Xếp hạng các cơ quan, đơn vị có từ {pub["min_resolved"]} hồ sơ đã giải quyết trở lên trong '
        "tháng, theo tỷ lệ giải quyết đúng hạn tăng dần (hạng 1 là đơn vị có tỷ lệ thấp nhất); cùng tỷ lệ thì đơn vị "
        "giải quyết nhiều hồ sơ hơn xếp trước. Tỷ lệ giải quyết đúng hạn = (số hồ sơ trước hạn + đúng hạn) / số hồ "
        f"sơ đã giải quyết. Mục tiêu: ít nhất {fmt_percent(pub['target'], 0)}; đơn vị dưới mục tiêu được công khai "
        "dưới đây.</p>",
    ]
    numerals = ("I", "II", "III")
    for n, (level, rows) in enumerate(pub["levels"].items()):
        below = [r for r in rows if r["below_target"]]
        parts.append(f'<section class="level" data-level="{level}"><h2>{numerals[n]}. {_e(F.LEVELS[level])} '
                     f"({_e(F.LEVEL_UNITS[level])})</h2>")
        if not rows:
            parts.append('<p class="note">Không có đơn vị đủ điều kiện xếp hạng trong tháng.</p></section>')
            continue
        if below:
            items = "".join(f'<li data-unit-code="{_e(r["unit_code"])}">{_e(_below_sentence(r))}</li>' for r in below)
            parts.append(f'<div class="below-list"><b>Đơn vị có tỷ lệ giải quyết đúng hạn dưới '
                         f"{fmt_percent(pub['target'], 0)}: {len(below)}/{len(rows)} đơn vị</b><ol>{items}</ol></div>")
        else:
            parts.append(f'<p class="note">Tất cả {len(rows)} đơn vị được xếp hạng đạt mục tiêu.</p>')
        head = "".join(f"<th>{_e(h)}</th>" for h in ("Hạng", "Đơn vị", "Đã giải quyết", "Trễ hạn", "Tỷ lệ đúng hạn",
                                                    "Kết quả"))
        body = []
        for r in rows:
            body.append(
                f'<tr class="{"below" if r["below_target"] else "met"}" data-level="{level}" '
                f'data-unit-code="{_e(r["unit_code"])}" data-rank="{r["rank"]}" data-resolved="{r["resolved"]}" '
                f'data-late="{r["late"]}" data-on-time-rate="{r["on_time_rate"]!r}" '
                f'data-below-target="{"true" if r["below_target"] else "false"}">'
                f'<td class="num">{r["rank"]}</td><td>{_e(r["unit_name"])}</td>'
                f'<td class="num">{fmt_int(r["resolved"])}</td><td class="num">{fmt_int(r["late"])}</td>'
                f'<td class="num">{fmt_percent(r["on_time_rate"])}</td>'
                f"<td>{BELOW if r['below_target'] else MET}</td></tr>")
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>")
    parts.append(f"<footer>Lập ngày {fmt_date(pub['generated_at'].date())} từ kho dữ liệu theo dõi cải cách hành chính "
                 "(bảng marts.rpt_monthly_ranking).</footer>")
    payload = {"month": month, "target": pub["target"],
               "levels": {str(level): rows for level, rows in pub["levels"].items()}}
    return "\n".join(["<!DOCTYPE html>", '<html lang="vi">', "<head>", '<meta charset="utf-8">',
                      f"<title>{_e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>", *parts,
                      "</main>", f'<script type="application/json" id="figures">{F.to_json(payload)}</script>',
                      "</body>", "</html>", ""])


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
