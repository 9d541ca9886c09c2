"""The monitoring report: one self-contained HTML file with the province's figures and charts.

    python -m publication report [--out DIR] [--as-of YYYY-MM-DD]

``write_report`` writes ``bao-cao-<as-of>.html`` and a copy ``latest.html`` into ``out_dir``. The file
opens offline from disk: inline CSS, inline SVG charts (``publication.charts``), no script or font from
elsewhere. Every figure shown comes from the marts (``publication.figures``); the same figures are
embedded as JSON (``<script type="application/json" id="figures">``) and the headline figures as
``data-metric``/``data-value`` attributes, so they can be checked by machine. Every text from the
warehouse (unit, field and investor names) is escaped, in the page, the SVG and the JSON block alike.

Both files are written whole under a temporary name and renamed (``pipeline.files``): a browser or a web
server reading ``latest.html`` while the nightly run rewrites it gets the previous report or the new one,
never half of one. ``latest.html`` is written from the same text, not copied in place from the dated file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from pathlib import Path

from pipeline.files import remove_stale_temporaries, write_atomic
from publication import charts
from publication import figures as F
from publication.charts import Series
from publication.formatting import fmt_billion, fmt_date, fmt_int, fmt_month, fmt_number, fmt_percent

LEVEL_SERIES = ("province", 1, 2, 3)
TOP_UNITS = 20
TARGET_LABEL = f"Mục tiêu {fmt_percent(F.TARGET, 0)}"

CSS = """
:root { --ink: #1f2933; --muted: #5f6b76; --line: #d9dee3; --accent: #0b4f8a; --bad: #b42318; --good: #067647; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #f4f6f8; font: 15px/1.5 'Segoe UI', 'Noto Sans', Roboto,
       'Helvetica Neue', Arial, sans-serif; }
main { max-width: 1140px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
header.report { border-bottom: 3px solid var(--accent); padding-bottom: 12px; margin-bottom: 20px; }
header.report .agency { text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-size: 13px; }
h1 { font-size: 26px; margin: 4px 0 6px; color: var(--accent); }
h2 { font-size: 20px; margin: 36px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); color: var(--accent); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.meta, p.note, figcaption { color: var(--muted); font-size: 13px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; margin: 16px 0; }
.kpi { border: 1px solid var(--line); border-left: 5px solid var(--accent); border-radius: 6px; padding: 10px 14px; }
.kpi.bad { border-left-color: var(--bad); } .kpi.good { border-left-color: var(--good); }
.kpi .label { font-size: 13px; color: var(--muted); }
.kpi .value { font-size: 26px; font-weight: 700; }
.kpi .detail { font-size: 12.5px; color: var(--muted); }
figure { margin: 14px 0 22px; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 18px; font-size: 13.5px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; vertical-align: top; }
th { background: #eef2f6; text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.below td { background: #fff4f2; }
.flag { color: var(--bad); font-weight: 600; }
.ok { color: var(--good); }
footer { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 10px; color: var(--muted);
         font-size: 12.5px; }
@media print {
  body { background: #fff; font-size: 11pt; } main { max-width: none; padding: 0; }
  h2 { break-after: avoid; } figure, table, .kpi { break-inside: avoid; }
  @page { size: A4; margin: 14mm 12mm; }
}
"""


def _e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def _scope_name(scope) -> str:
    return F.PROVINCE if scope == "province" else F.LEVELS.get(scope, str(scope))


def _num_attr(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _attr(name: str, value: str) -> str:
    return f' {name}="{_e(value)}"' if value else ""


def _cell(text: str, metric: str | None = None, value=None, numeric: bool = True, cls: str = "") -> str:
    """A table cell; with ``metric``, it carries ``data-metric`` and the exact ``data-value``."""
    attrs = _attr("class", " ".join(c for c in ("num" if numeric else "", cls) if c))
    if metric:
        attrs += f' data-metric="{_e(metric)}" data-value="{_e(_num_attr(value))}"'
    return f"<td{attrs}>{_e(text)}</td>"


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1,
           row_classes: Sequence[str] | None = None, table_id: str | None = None) -> str:
    """A table whose first ``text_columns`` columns are text and the others numbers (right-aligned)."""
    head = "".join(f"<th{_attr('class', 'num' if i >= text_columns else '')}>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = [f"<tr{_attr('class', row_classes[i] if row_classes else '')}>{''.join(row)}</tr>"
            for i, row in enumerate(rows)]
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}">Không có số liệu.</td></tr>')
    return (f"<table{_attr('id', table_id or '')}><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(svg: str, caption: str = "") -> str:
    return f"<figure>{svg}{f'<figcaption>{_e(caption)}</figcaption>' if caption else ''}</figure>"


def _kpi(label: str, value: str, detail: str, metric: str, raw, tone: str = "") -> str:
    return (f'<div class="kpi {tone}"><div class="label">{_e(label)}</div>'
            f'<div class="value" data-metric="{_e(metric)}" data-value="{_e(_num_attr(raw))}">{_e(value)}</div>'
            f'<div class="detail">{_e(detail)}</div></div>')


# ----------------------------------------------------------------------------------------------- figures

def collect(conn, as_of: date | None = None) -> dict:
    """Every figure of the report, read from the marts as of ``as_of`` (default: the marts' own as-of date)."""
    as_of = as_of or F.marts_as_of(conn)
    month = F.latest_complete_month(conn, as_of)
    out = {"as_of": as_of, "month": month, "target": F.TARGET, "province_name": F.province_name(conn),
           "generated_at": datetime.now().replace(microsecond=0)}
    if month is not None:
        out["timeliness"] = F.timeliness(conn, month)
        out["ranking"] = {str(level): rows for level, rows in sorted(F.ranking(conn, month).items())}
        out["online"] = F.online(conn, month)
        out["digitisation"] = F.digitisation(conn, month)
    else:
        out.update(timeliness=None, ranking={}, online=[], digitisation=[])
    out["pending_overdue"] = F.pending_overdue(conn, as_of)
    out["delegation"] = F.delegation(conn, as_of)
    out["disbursement"] = F.disbursement(conn, as_of)
    out["dq"] = F.dq_backlog(conn)
    return out


def _months(rows: list[dict]) -> list[date]:
    return sorted({r["month"] for r in rows})


def _series_by_scope(rows: list[dict], value: str, months: list[date]) -> list[Series]:
    index = {(r["month"], r["scope"]): r for r in rows}
    out = []
    for scope in LEVEL_SERIES:
        values = [index[(m, scope)][value] if (m, scope) in index else None for m in months]
        if any(v is not None for v in values):
            out.append(Series(_scope_name(scope), values))
    return out


# ----------------------------------------------------------------------------------------------- sections

def _overview(fig: dict) -> str:
    month = fig["month"]
    cards = []
    t = fig["timeliness"]
    if t:
        prov = next((r for r in t["by_month"] if r["month"] == month and r["scope"] == "province"), None)
        if prov:
            bad = prov["on_time_rate"] is not None and prov["on_time_rate"] < F.TARGET
            cards.append(_kpi(f"Tỷ lệ giải quyết đúng hạn, tháng {fmt_month(month)}", fmt_percent(prov["on_time_rate"]),
                              f"{fmt_int(prov['timely'])}/{fmt_int(prov['resolved'])} hồ sơ trước và đúng hạn; "
                              f"mục tiêu ≥ {fmt_percent(F.TARGET, 0)}", "on_time_rate.province", prov["on_time_rate"],
                              "bad" if bad else "good"))
            cards.append(_kpi("Hồ sơ giải quyết trễ hạn", fmt_int(prov["late"]),
                              f"tỷ lệ trễ hạn {fmt_percent(prov['overdue_rate'])}", "late.province", prov["late"],
                              "bad" if prov["late"] else ""))
        below = sum(1 for rows in fig["ranking"].values() for r in rows if r["below_target"])
        ranked = sum(len(rows) for rows in fig["ranking"].values())
        cards.append(_kpi("Đơn vị dưới mục tiêu 95%", fmt_int(below), f"trên {fmt_int(ranked)} đơn vị được xếp hạng",
                          "units_below_target", below, "bad" if below else "good"))
    p = fig["pending_overdue"]
    if p["as_of_date"]:
        cards.append(_kpi("Hồ sơ đang giải quyết đã quá hạn", fmt_int(p["pending_overdue"]),
                          f"trên {fmt_int(p['in_processing'])} hồ sơ đang giải quyết, ngày {fmt_date(p['as_of_date'])}",
                          "pending_overdue", p["pending_overdue"], "bad" if p["pending_overdue"] else ""))
    online = {r["scope"]: r for r in fig["online"] if r["month"] == month}
    if "province" in online:
        o = online["province"]
        cards.append(_kpi("Tỷ lệ hồ sơ nộp trực tuyến", fmt_percent(o["online_rate"]),
                          f"{fmt_int(o['online'])}/{fmt_int(o['received'])} hồ sơ tiếp nhận", "online_rate.province",
                          o["online_rate"]))
    digit = {r["scope"]: r for r in fig["digitisation"] if r["month"] == month}
    if "province" in digit:
        d = digit["province"]
        cards.append(_kpi("Số hóa hồ sơ khi tiếp nhận", fmt_percent(d["intake_digitisation_rate"]),
                          f"{fmt_int(d['intake_digitised'])}/{fmt_int(d['paper_received'])} hồ sơ giấy",
                          "intake_digitisation_rate.province", d["intake_digitisation_rate"]))
        cards.append(_kpi("Số hóa kết quả giải quyết", fmt_percent(d["result_digitisation_rate"]),
                          f"{fmt_int(d['result_digitised'])}/{fmt_int(d['paper_result_resolved'])} kết quả giấy",
                          "result_digitisation_rate.province", d["result_digitisation_rate"]))
    dl = fig["delegation"]
    if dl["as_of_date"]:
        tot = dl["total"]
        cards.append(_kpi("Tiến độ phân cấp, ủy quyền", fmt_percent(tot["progress_rate"]),
                          f"{fmt_int(tot['done'])}/{fmt_int(tot['active'])} nội dung đã thực hiện; "
                          f"{fmt_int(tot['behind_plan'])} chậm so với kế hoạch", "delegation.progress_rate",
                          tot["progress_rate"]))
    ds = fig["disbursement"]
    if ds["total"]:
        tot = ds["total"]
        cards.append(_kpi(f"Giải ngân vốn đầu tư công {ds['plan_year']}", fmt_percent(tot["rate_vs_province"]),
                          f"{fmt_billion(tot['disbursed_cumulative'])}/{fmt_billion(tot['plan_province'])} tỷ đồng "
                          f"kế hoạch UBND tỉnh giao, đến {fmt_date(ds['report_date'])}",
                          "disbursement.rate_vs_province", tot["rate_vs_province"]))
    q = fig["dq"]
    cards.append(_kpi("Lỗi dữ liệu chưa khắc phục", fmt_int(q["open"]),
                      "hồ sơ chưa cập nhật, chưa số hóa, sai giá trị", "dq.open", q["open"],
                      "bad" if q["open"] else ""))
    return f'<section id="tong-quan"><h2>Tổng quan</h2><div class="kpis">{"".join(cards)}</div></section>'


def _timeliness_section(fig: dict) -> str:
    t = fig["timeliness"]
    parts = ['<section id="dung-han"><h2>1. Tỷ lệ giải quyết hồ sơ đúng hạn</h2>',
             '<p class="note">Tỷ lệ giải quyết đúng hạn = (hồ sơ trước hạn + đúng hạn) / hồ sơ đã giải quyết trong '
             "tháng, cộng số hồ sơ rồi mới chia (không lấy trung bình các tỷ lệ). Mục tiêu: ít nhất 95%.</p>"]
    if not t:
        parts.append('<p class="note">Chưa có hồ sơ giải quyết trong một tháng trọn vẹn.</p>')
    else:
        months = _months(t["by_month"])
        parts.append(_figure(charts.line_chart(
            "Tỷ lệ giải quyết đúng hạn theo tháng", [fmt_month(m) for m in months],
            _series_by_scope(t["by_month"], "on_time_rate", months), x_label="Tháng giải quyết",
            y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL, chart_id="chart-on-time"),
            "Toàn tỉnh và từng cấp (cấp tỉnh, cấp huyện, cấp xã); đường nét đứt: mục tiêu 95%."))
        rows = [[_cell(_scope_name(r["scope"]), numeric=False),
                 _cell(fmt_int(r["resolved"]), f"resolved.{r['scope']}", r["resolved"]),
                 _cell(fmt_int(r["timely"]), f"timely.{r['scope']}", r["timely"]),
                 _cell(fmt_int(r["late"]), f"late.{r['scope']}", r["late"]),
                 _cell(fmt_percent(r["on_time_rate"]), f"on_time_rate.{r['scope']}", r["on_time_rate"],
                       cls="flag" if (r["on_time_rate"] or 0) < F.TARGET else "ok")]
                for r in t["by_month"] if r["month"] == fig["month"]]
        parts.append(_table(f"Tháng {fmt_month(fig['month'])}", ["Phạm vi", "Đã giải quyết", "Trước và đúng hạn",
                                                                "Trễ hạn", "Tỷ lệ đúng hạn"], rows,
                            table_id="table-on-time"))
    p = fig["pending_overdue"]
    if p["as_of_date"]:
        parts.append(f"<h3>Hồ sơ đang giải quyết đã quá hạn (ngày {fmt_date(p['as_of_date'])})</h3>")
        units = p["units"][:15]
        if units:
            parts.append(_figure(charts.hbar_chart(
                "Đơn vị có nhiều hồ sơ đang giải quyết quá hạn nhất", [u["unit_name"] for u in units],
                [Series("Hồ sơ quá hạn", [u["pending_overdue"] for u in units])], x_label="Số hồ sơ quá hạn",
                percent=False, notes=[f"trên {fmt_int(u['in_processing'])} đang giải quyết" for u in units],
                chart_id="chart-pending-overdue")))
        rows = [[_cell(F.LEVELS.get(r["level"], r["level"]), numeric=False),
                 _cell(fmt_int(r["in_processing"])),
                 _cell(fmt_int(r["pending_overdue"]), f"pending_overdue.{r['level']}", r["pending_overdue"]),
                 _cell(fmt_percent(r["overdue_share"]))] for r in p["by_level"]]
        rows.append([_cell(F.PROVINCE, numeric=False), _cell(fmt_int(p["in_processing"])),
                     _cell(fmt_int(p["pending_overdue"]), "pending_overdue.province", p["pending_overdue"]),
                     _cell(fmt_percent(p["overdue_share"]))])
        parts.append(_table("Hồ sơ đang giải quyết và quá hạn theo cấp", ["Cấp", "Đang giải quyết", "Đã quá hạn",
                                                                         "Tỷ lệ quá hạn"], rows))
    parts.append("</section>")
    return "".join(parts)


def _below_target_section(fig: dict) -> str:
    month = fig["month"]
    parts = [f'<section id="duoi-muc-tieu"><h2>2. Đơn vị có tỷ lệ giải quyết đúng hạn dưới 95% '
             f"(tháng {fmt_month(month)})</h2>",
             '<p class="note">Xếp hạng công khai hằng tháng: đơn vị có từ 10 hồ sơ đã giải quyết trở lên, xếp theo tỷ '
             "lệ đúng hạn tăng dần (hạng 1 là thấp nhất).</p>"]
    if month is None:
        return "".join([*parts, "</section>"])
    levels = [1, 2, 3]
    ranking = fig["ranking"]
    parts.append(_figure(charts.bar_chart(
        "Số đơn vị dưới mục tiêu theo cấp", [F.LEVELS[lv] for lv in levels],
        [Series("Đơn vị được xếp hạng", [len(ranking.get(str(lv), [])) for lv in levels]),
         Series("Đơn vị dưới 95%", [sum(r["below_target"] for r in ranking.get(str(lv), [])) for lv in levels])],
        x_label="Cấp", y_label="Số đơn vị", percent=False, chart_id="chart-below-by-level")))
    for level in levels:
        rows = ranking.get(str(level), [])
        below = [r for r in rows if r["below_target"]]
        title = f"{F.LEVELS[level]} ({F.LEVEL_UNITS[level]}): {len(below)}/{len(rows)} đơn vị dưới 95%"
        parts.append(f"<h3>{_e(title)}</h3>")
        if below:
            shown = below[:TOP_UNITS]
            parts.append(_figure(charts.hbar_chart(
                f"{F.LEVELS[level]}: đơn vị có tỷ lệ đúng hạn dưới 95%", [r["unit_name"] for r in shown],
                [Series("Tỷ lệ đúng hạn", [r["on_time_rate"] for r in shown])], x_label="Tỷ lệ đúng hạn (%)",
                target=F.TARGET, target_label=TARGET_LABEL,
                notes=[f"{fmt_int(r['late'])} trễ hạn/{fmt_int(r['resolved'])}" for r in shown],
                chart_id=f"chart-below-level-{level}"),
                "" if len(below) <= TOP_UNITS else f"{len(below) - TOP_UNITS} đơn vị khác dưới mục tiêu: xem bảng."))
            table_rows = [[_cell(fmt_int(r["rank"]), numeric=False), _cell(r["unit_name"], numeric=False),
                           _cell(fmt_int(r["resolved"])), _cell(fmt_int(r["late"])),
                           _cell(fmt_percent(r["on_time_rate"]), f"below.{level}.{r['unit_code']}", r["on_time_rate"],
                                 cls="flag")] for r in below]
            parts.append(_table(f"{F.LEVELS[level]}: đơn vị dưới mục tiêu", ["Hạng", "Đơn vị", "Đã giải quyết",
                                                                            "Trễ hạn", "Tỷ lệ đúng hạn"],
                                table_rows, text_columns=2, row_classes=["below"] * len(table_rows)))
        elif rows:
            parts.append('<p class="note ok">Tất cả đơn vị được xếp hạng đạt mục tiêu.</p>')
        else:
            parts.append('<p class="note">Không có đơn vị nào đủ 10 hồ sơ đã giải quyết trong tháng.</p>')
    parts.append("</section>")
    return "".join(parts)


def _land_section(fig: dict) -> str:
    t = fig["timeliness"]
    parts = ['<section id="dat-dai"><h2>3. Lĩnh vực Đất đai so với các lĩnh vực khác</h2>']
    if not t:
        return "".join([*parts, '<p class="note">Chưa có số liệu.</p></section>'])
    if not t["land_codes"]:
        parts.append('<p class="note">Danh mục thủ tục không có lĩnh vực Đất đai.</p>')
    land_name = "Đất đai"
    other_name = "Các lĩnh vực khác"
    months = _months(t["land_by_month"])
    index = {(r["month"], r["group"]): r for r in t["land_by_month"]}
    parts.append(_figure(charts.line_chart(
        "Tỷ lệ giải quyết đúng hạn: Đất đai và các lĩnh vực khác", [fmt_month(m) for m in months],
        [Series(name, [index[(m, g)]["on_time_rate"] if (m, g) in index else None for m in months])
         for g, name in (("land", land_name), ("other", other_name))],
        x_label="Tháng giải quyết", y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL,
        chart_id="chart-land-months"), "Toàn tỉnh."))
    by_level = {(r["scope"], r["group"]): r for r in t["land_by_level"]}
    levels = [lv for lv in (1, 2, 3) if any((lv, g) in by_level for g in ("land", "other"))]
    if levels:
        parts.append(_figure(charts.bar_chart(
            f"Tỷ lệ đúng hạn theo cấp, tháng {fmt_month(fig['month'])}", [F.LEVELS[lv] for lv in levels],
            [Series(name, [by_level[(lv, g)]["on_time_rate"] if (lv, g) in by_level else None for lv in levels])
             for g, name in (("land", land_name), ("other", other_name))],
            x_label="Cấp", y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL,
            chart_id="chart-land-levels")))
    fields = [f for f in t["by_field"] if f["resolved"]]
    if fields:
        parts.append(_figure(charts.hbar_chart(
            f"Tỷ lệ đúng hạn theo lĩnh vực, tháng {fmt_month(fig['month'])}", [f["field_name"] for f in fields],
            [Series("Tỷ lệ đúng hạn", [f["on_time_rate"] for f in fields])], x_label="Tỷ lệ đúng hạn (%)",
            target=F.TARGET, target_label=TARGET_LABEL,
            highlight=[f["field_name"] for f in fields if f["is_land"]],
            notes=[f"{fmt_int(f['late'])} trễ hạn/{fmt_int(f['resolved'])}" for f in fields],
            chart_id="chart-fields"), "Lĩnh vực Đất đai được tô đậm."))
        rows = [[_cell(f["field_name"], numeric=False, cls="flag" if f["is_land"] else ""),
                 _cell(fmt_int(f["resolved"]), f"field.{f['field_code']}.resolved", f["resolved"]),
                 _cell(fmt_int(f["late"]), f"field.{f['field_code']}.late", f["late"]),
                 _cell(fmt_percent(f["overdue_rate"])),
                 _cell(fmt_percent(f["on_time_rate"]), f"field.{f['field_code']}.on_time_rate", f["on_time_rate"])]
                for f in fields]
        parts.append(_table(f"Theo lĩnh vực, tháng {fmt_month(fig['month'])}",
                            ["Lĩnh vực", "Đã giải quyết", "Trễ hạn", "Tỷ lệ trễ hạn", "Tỷ lệ đúng hạn"], rows))
    parts.append("</section>")
    return "".join(parts)


def _online_section(fig: dict) -> str:
    parts = ['<section id="truc-tuyen-so-hoa"><h2>4. Hồ sơ nộp trực tuyến và số hóa hồ sơ</h2>',
             '<p class="note">Tỷ lệ nộp trực tuyến = hồ sơ nộp trực tuyến / hồ sơ tiếp nhận. Số hóa hồ sơ khi tiếp '
             "nhận = hồ sơ giấy có thành phần được số hóa / hồ sơ giấy tiếp nhận. Số hóa kết quả = hồ sơ có kết quả "
             "điện tử / hồ sơ đã giải quyết của thủ tục trả kết quả giấy.</p>"]
    if fig["online"]:
        months = _months(fig["online"])
        parts.append(_figure(charts.line_chart(
            "Tỷ lệ hồ sơ nộp trực tuyến theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(fig["online"], "online_rate", months), x_label="Tháng tiếp nhận",
            y_label="Tỷ lệ nộp trực tuyến (%)", chart_id="chart-online")))
    if fig["digitisation"]:
        months = _months(fig["digitisation"])
        parts.append(_figure(charts.line_chart(
            "Số hóa hồ sơ khi tiếp nhận theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(fig["digitisation"], "intake_digitisation_rate", months), x_label="Tháng tiếp nhận",
            y_label="Tỷ lệ số hóa hồ sơ (%)", chart_id="chart-intake-digitisation")))
        parts.append(_figure(charts.line_chart(
            "Số hóa kết quả giải quyết theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(fig["digitisation"], "result_digitisation_rate", months), x_label="Tháng giải quyết",
            y_label="Tỷ lệ số hóa kết quả (%)", chart_id="chart-result-digitisation")))
    month = fig["month"]
    online = {r["scope"]: r for r in fig["online"] if r["month"] == month}
    digit = {r["scope"]: r for r in fig["digitisation"] if r["month"] == month}
    rows = []
    for scope in LEVEL_SERIES:
        o, d = online.get(scope), digit.get(scope)
        if not o and not d:
            continue
        o, d = o or {}, d or {}
        rows.append([_cell(_scope_name(scope), numeric=False), _cell(fmt_int(o.get("received"))),
                     _cell(fmt_percent(o.get("online_rate")), f"online_rate.{scope}", o.get("online_rate")),
                     _cell(fmt_int(d.get("paper_received"))),
                     _cell(fmt_percent(d.get("intake_digitisation_rate")), f"intake_digitisation_rate.{scope}",
                           d.get("intake_digitisation_rate")),
                     _cell(fmt_int(d.get("paper_result_resolved"))),
                     _cell(fmt_percent(d.get("result_digitisation_rate")), f"result_digitisation_rate.{scope}",
                           d.get("result_digitisation_rate"))])
    if month is not None:
        parts.append(_table(f"Tháng {fmt_month(month)}", ["Phạm vi", "Tiếp nhận", "Nộp trực tuyến", "Hồ sơ giấy",
                                                          "Số hóa khi tiếp nhận", "Kết quả giấy", "Số hóa kết quả"],
                            rows, table_id="table-online"))
    parts.append("</section>")
    return "".join(parts)


def _delegation_section(fig: dict) -> str:
    d = fig["delegation"]
    parts = ['<section id="phan-cap-uy-quyen"><h2>5. Phân cấp, ủy quyền</h2>']
    if d["as_of_date"] is None:
        return "".join([*parts, '<p class="note">Chưa có số liệu.</p></section>'])
    parts.append(f'<p class="note">Tình hình đến ngày {fmt_date(d["as_of_date"])}. Tiến độ = nội dung đã cấu hình '
                 "trên Hệ thống hoặc đang thực hiện / nội dung còn hiệu lực; chậm tiến độ: chưa thực hiện mà đã quá "
                 "ngày theo kế hoạch.</p>")
    plans = d["by_plan"]
    parts.append(_figure(charts.hbar_chart(
        "Tiến độ phân cấp, ủy quyền theo kế hoạch", [f"Kế hoạch {p['plan']}" for p in plans],
        [Series("Tiến độ thực hiện", [p["progress_rate"] for p in plans])], x_label="Tỷ lệ đã thực hiện (%)",
        notes=[f"{fmt_int(p['done'])}/{fmt_int(p['active'])}; {fmt_int(p['behind_plan'])} chậm" for p in plans],
        chart_id="chart-delegation-plans")))
    units = d["by_receiving_unit"][:25]
    parts.append(_figure(charts.hbar_chart(
        "Tiến độ theo đơn vị nhận phân cấp, ủy quyền", [u["unit_name"] for u in units],
        [Series("Tiến độ thực hiện", [u["progress_rate"] for u in units])], x_label="Tỷ lệ đã thực hiện (%)",
        notes=[f"{fmt_int(u['done'])}/{fmt_int(u['active'])}" for u in units], chart_id="chart-delegation-units"),
        "Các đơn vị có tiến độ thấp nhất." if len(d["by_receiving_unit"]) > len(units) else ""))
    rows = [[_cell(f"Kế hoạch {p['plan']}", numeric=False), _cell(fmt_int(p["active"])),
             _cell(fmt_int(p["done"]), f"delegation.plan.{p['plan']}.done", p["done"]),
             _cell(fmt_int(p["behind_plan"]), f"delegation.plan.{p['plan']}.behind_plan", p["behind_plan"]),
             _cell(fmt_percent(p["progress_rate"]), f"delegation.plan.{p['plan']}.progress_rate", p["progress_rate"])]
            for p in plans]
    rows += [[_cell(t["type_name"], numeric=False), _cell(fmt_int(t["active"])), _cell(fmt_int(t["done"])),
              _cell(fmt_int(t["behind_plan"])), _cell(fmt_percent(t["progress_rate"]))] for t in d["by_type"]]
    parts.append(_table("Theo kế hoạch và hình thức", ["", "Còn hiệu lực", "Đã thực hiện", "Chậm tiến độ", "Tiến độ"],
                        rows))
    parts.append("</section>")
    return "".join(parts)


def _disbursement_section(fig: dict) -> str:
    d = fig["disbursement"]
    parts = ['<section id="giai-ngan"><h2>6. Giải ngân vốn đầu tư công</h2>']
    if d["total"] is None:
        return "".join([*parts, '<p class="note">Chưa có báo cáo giải ngân.</p></section>'])
    parts.append(f'<p class="note">Kế hoạch vốn năm {d["plan_year"]}, số liệu lũy kế đến ngày '
                 f"{fmt_date(d['report_date'])}; đơn vị tính: tỷ đồng. Tỷ lệ giải ngân = giải ngân lũy kế / kế hoạch "
                 "vốn, tính trên tổng số tiền.</p>")
    sources = d["by_source"]
    parts.append(_figure(charts.bar_chart(
        "Giải ngân so với kế hoạch theo nguồn vốn", [s["source_name"] for s in sources],
        [Series("Kế hoạch Thủ tướng giao", [float(s["plan_pm"]) / 1e9 for s in sources]),
         Series("Kế hoạch UBND tỉnh giao", [float(s["plan_province"]) / 1e9 for s in sources]),
         Series("Giải ngân lũy kế", [float(s["disbursed_cumulative"]) / 1e9 for s in sources])],
        x_label="Nguồn vốn", y_label="Tỷ đồng", percent=False, fmt=lambda v: fmt_number(v, 1),
        chart_id="chart-disbursement-sources")))
    investors = d["by_investor"]
    parts.append(_figure(charts.hbar_chart(
        "Tỷ lệ giải ngân theo chủ đầu tư (so với kế hoạch UBND tỉnh giao)", [i["unit_name"] for i in investors],
        [Series("Tỷ lệ giải ngân", [i["rate_vs_province"] for i in investors])], x_label="Tỷ lệ giải ngân (%)",
        notes=[f"{fmt_billion(i['disbursed_cumulative'])}/{fmt_billion(i['plan_province'])} tỷ" for i in investors],
        chart_id="chart-disbursement-investors"), "Xếp từ thấp đến cao."))

    def money_row(name: str, r: dict, key: str) -> list[str]:
        return [_cell(name, numeric=False), _cell(fmt_billion(r["plan_pm"])),
                _cell(fmt_billion(r["plan_province"])),
                _cell(fmt_billion(r["disbursed_cumulative"]), f"{key}.disbursed_cumulative", r["disbursed_cumulative"]),
                _cell(fmt_percent(r["rate_vs_pm"]), f"{key}.rate_vs_pm", r["rate_vs_pm"]),
                _cell(fmt_percent(r["rate_vs_province"]), f"{key}.rate_vs_province", r["rate_vs_province"])]

    headers = ["", "Kế hoạch TTg giao", "Kế hoạch UBND tỉnh giao", "Giải ngân lũy kế", "Tỷ lệ so với KH TTg",
               "Tỷ lệ so với KH tỉnh"]
    rows = [money_row(s["source_name"], s, f"disbursement.source.{s['funding_source']}") for s in sources]
    rows.append(money_row("Tổng cộng", d["total"], "disbursement.total"))
    parts.append(_table("Theo nguồn vốn", headers, rows, table_id="table-disbursement-sources"))
    rows = [money_row(i["unit_name"], i, f"disbursement.investor.{i['investor_unit_code']}") for i in investors]
    parts.append(_table("Theo chủ đầu tư", headers, rows, table_id="table-disbursement-investors"))
    parts.append("</section>")
    return "".join(parts)


def _dq_section(fig: dict) -> str:
    q = fig["dq"]
    parts = ['<section id="chat-luong-du-lieu"><h2>7. Chất lượng dữ liệu: hồ sơ chưa cập nhật, chưa số hóa</h2>']
    if not q["open"]:
        return "".join([*parts, '<p class="note">Không có lỗi dữ liệu đang mở.</p></section>'])
    seen = q["validated_at"]
    parts.append(f'<p class="note">Lỗi còn tồn tại ở lần kiểm tra gần nhất (số liệu đến {seen:%H:%M} '
                 f"{fmt_date(seen.date())}): mỗi hồ sơ vi phạm một quy tắc là một lỗi; đơn vị là đơn vị xử lý hồ sơ."
                 "</p>")
    rules = list(q["by_rule"])
    parts.append(_figure(charts.hbar_chart(
        "Lỗi dữ liệu đang mở theo quy tắc", [f"{r} – {F.DQ_RULES.get(r, r)}" for r in rules],
        [Series("Số lỗi", [q["by_rule"][r] for r in rules])], x_label="Số hồ sơ", percent=False, label_chars=60,
        chart_id="chart-dq-rules")))
    units = q["by_unit"][:TOP_UNITS]
    parts.append(_figure(charts.hbar_chart(
        "Đơn vị tồn nhiều lỗi dữ liệu nhất", [u["unit_name"] for u in units],
        [Series(name, [u["by_group"].get(g, 0) for u in units]) for g, name in F.DQ_GROUPS.items()],
        x_label="Số hồ sơ", percent=False, chart_id="chart-dq-units")))
    rows = [[_cell(f"{r} – {F.DQ_RULES.get(r, r)}", numeric=False), _cell(fmt_int(n), f"dq.rule.{r}", n)]
            for r, n in q["by_rule"].items()]
    rows.append([_cell("Tổng cộng", numeric=False), _cell(fmt_int(q["open"]), "dq.total", q["open"])])
    parts.append(_table("Theo quy tắc", ["Quy tắc", "Số lỗi"], rows, table_id="table-dq-rules"))
    rows = [[_cell(u["unit_name"], numeric=False), *(_cell(fmt_int(u["by_group"].get(g, 0))) for g in F.DQ_GROUPS),
             _cell(fmt_int(u["open"]), f"dq.unit.{u['unit_code']}", u["open"])] for u in units]
    parts.append(_table("Theo đơn vị (các đơn vị tồn nhiều lỗi nhất)", ["Đơn vị", *F.DQ_GROUPS.values(), "Tổng"],
                        rows))
    parts.append("</section>")
    return "".join(parts)


def render(fig: dict) -> str:
    """The report's HTML for the figures of ``collect``."""
    province = fig["province_name"] or "Tỉnh"
    title = f"Báo cáo theo dõi cải cách hành chính – {province} – {fmt_date(fig['as_of'])}"
    month = f"tháng đánh giá {fmt_month(fig['month'])}" if fig["month"] else "chưa có tháng trọn vẹn"
    body = [
        '<header class="report">',
        f'<div class="agency">{_e(province)} · Cải cách hành chính và chuyển đổi số</div>',
        "<h1>Báo cáo theo dõi giải quyết thủ tục hành chính</h1>",
        f'<p class="meta">Số liệu đến ngày <span data-metric="as_of" data-value="{fig["as_of"].isoformat()}">'
        f"{fmt_date(fig['as_of'])}</span> · {_e(month)} · lập lúc "
        f"{fig['generated_at']:%H:%M} {fmt_date(fig['generated_at'].date())}</p>",
        "</header>",
        _overview(fig), _timeliness_section(fig), _below_target_section(fig), _land_section(fig),
        _online_section(fig), _delegation_section(fig), _disbursement_section(fig), _dq_section(fig),
        '<footer>Nguồn: kho dữ liệu theo dõi cải cách hành chính (lược đồ marts), cập nhật hằng đêm từ Hệ thống thông '
        "tin giải quyết thủ tục hành chính và báo cáo giải ngân của Sở Tài chính. Mọi tỷ lệ được tính trên tổng số "
        "hồ sơ (hoặc tổng số tiền), không lấy trung bình các tỷ lệ. Số liệu máy đọc được: khối JSON "
        "<code>figures</code> trong tệp này.</footer>",
    ]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="vi">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>", *body, "</main>",
        f'<script type="application/json" id="figures">{F.to_json(fig)}</script>', "</body>", "</html>", ""])


def write_report(url: str, out_dir: Path, as_of: date | None = None) -> Path:
    """Write the report of the marts as of ``as_of`` (default: their own as-of date) to
    ``out_dir/bao-cao-<as-of>.html`` and copy it to ``out_dir/latest.html``; returns the dated file."""
    with F.connect(url) as conn:
        if not F.exists(conn, "marts.fct_timeliness_monthly"):
            raise RuntimeError("the marts are not built yet: run the nightly pipeline (make run) first")
        fig = collect(conn, as_of)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bao-cao-{fig['as_of']:%Y-%m-%d}.html"
    html = render(fig)
    for target in (path, out_dir / "latest.html"):
        write_atomic(target, html)
        remove_stale_temporaries(target)
    return path
