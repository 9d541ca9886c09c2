"""The monitoring report: one self-contained HTML file with the province's figures and charts.

    python -m publication report [--out DIR] [--as-of YYYY-MM-DD]

``write_report`` writes ``bao-cao-<as-of>.html`` and a copy ``latest.html`` into ``out_dir``. The file
opens offline from disk: inline CSS, inline SVG charts (``publication.charts``), no script or font from
elsewhere. Every figure shown comes from the marts (``publication.figures``); the same figures are
embedded as JSON (``<script type="application/json" id="figures">``) and the headline figures as
``data-metric``/``data-value`` attributes, so they can be checked by machine.

The page is the template ``publication/templates/report.html.j2`` (markup, CSS and copy), rendered with
autoescaping (``publication.pages``): this module reads the figures and draws the charts, the template lays
them out. Every text from the warehouse (unit, field and investor names) is escaped, in the page (by the
template), the SVG (by ``publication.charts``) and the JSON block (by ``publication.figures.to_json``) alike.

Both files are written whole under a temporary name and renamed (``pipeline.files``): a browser or a web
server reading ``latest.html`` while the nightly run rewrites it gets the previous report or the new one,
never half of one. ``latest.html`` is written from the same text, not copied in place from the dated file.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from markupsafe import Markup

from pipeline.files import remove_stale_temporaries, write_atomic
from publication import charts, geo_map, held_up, service_index
from publication import figures as F
from publication.charts import Marker, Series
from publication.formatting import fmt_billion, fmt_int, fmt_month, fmt_number, fmt_percent
from publication.pages import render_page

LEVEL_SERIES = ("province", 1, 2, 3)
TOP_UNITS = 20  # units shown in the below-target charts and the data-quality backlog
PENDING_UNITS = 15  # units shown in the chart of dossiers pending past their due date
RECEIVING_UNITS = 25  # receiving units shown in the delegation chart (the slowest)
TARGET_SHOWN = fmt_percent(F.TARGET, 0)  # "95%" (PUBLICATION_ON_TIME_TARGET)
TARGET_LABEL = f"Mục tiêu {TARGET_SHOWN}"


def _scope_name(scope) -> str:
    return F.PROVINCE if scope == "province" else F.LEVELS.get(scope, str(scope))


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
        out["current"] = F.current_levels(conn, month)  # the trend charts' levels, on today's units
    else:
        out.update(timeliness=None, ranking={}, online=[], digitisation=[], current=None)
    out["pending_overdue"] = F.pending_overdue(conn, as_of)
    out["delegation"] = F.delegation(conn, as_of)
    out["disbursement"] = F.disbursement(conn, as_of)
    out["dq"] = F.dq_backlog(conn)
    out["map"] = geo_map.collect(conn, month)  # publication/geo_map.py: the maps (bản đồ)
    out["service_index"] = service_index.collect(conn, month)  # publication/service_index.py: Decision 766
    out["held_up"] = held_up.collect(conn, month)  # publication/held_up.py: where dossiers are held up
    return out


def _months(rows: list[dict]) -> list[date]:
    return sorted({r["month"] for r in rows})


def _trend_rows(fig: dict, rows: list[dict], key: str) -> list[dict]:
    """A trend chart's rows: the province as recorded (every dossier, the figure of the tables and headline),
    each level on today's units (``fig["current"][key]``: a unit that no longer exists counts in the level of the
    unit that took over its area). Figures made without ``current`` keep the recorded levels."""
    current = (fig.get("current") or {}).get(key)
    if current is None:
        return rows
    return [r for r in rows if r["scope"] == "province"] + current


def reorganisation_markers(months: list[date], day: date = F.REORGANISATION_DATE) -> list[Marker]:
    """The reorganisation's marker on a chart of ``months`` (first days, ascending) when its month is within
    them: at the start of that month's category, between the months before and after the change."""
    month = F.month_of(day)
    if not months or not months[0] <= month <= months[-1]:
        return []
    return [Marker(sum(m < month for m in months) - 0.5, f"Sắp xếp đơn vị hành chính ({day:%d/%m/%Y})")]


def _series_by_scope(rows: list[dict], value: str, months: list[date]) -> list[Series]:
    index = {(r["month"], r["scope"]): r for r in rows}
    out = []
    for scope in LEVEL_SERIES:
        values = [index[(m, scope)][value] if (m, scope) in index else None for m in months]
        if any(v is not None for v in values):
            out.append(Series(_scope_name(scope), values))
    return out


# ------------------------------------------------------------------------------------------------ charts

def _timeliness_charts(fig: dict) -> dict[str, str]:
    t, p = fig["timeliness"], fig["pending_overdue"]
    out = {}
    if t:
        rows = _trend_rows(fig, t["by_month"], "timeliness")
        months = _months(rows)
        out["chart-on-time"] = charts.line_chart(
            "Tỷ lệ giải quyết đúng hạn theo tháng", [fmt_month(m) for m in months],
            _series_by_scope(rows, "on_time_rate", months), x_label="Tháng giải quyết",
            y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL,
            markers=reorganisation_markers(months), chart_id="chart-on-time")
    units = p["units"][:PENDING_UNITS]
    if p["as_of_date"] and units:
        out["chart-pending-overdue"] = charts.hbar_chart(
            "Đơn vị có nhiều hồ sơ đang giải quyết quá hạn nhất", [u["unit_name"] for u in units],
            [Series("Hồ sơ quá hạn", [u["pending_overdue"] for u in units])], x_label="Số hồ sơ quá hạn",
            percent=False, notes=[f"trên {fmt_int(u['in_processing'])} đang giải quyết" for u in units],
            chart_id="chart-pending-overdue")
    return out


def _below_target_charts(fig: dict) -> dict[str, str]:
    if fig["month"] is None:
        return {}
    levels = [1, 2, 3]
    ranking = fig["ranking"]
    out = {"chart-below-by-level": charts.bar_chart(
        "Số đơn vị dưới mục tiêu theo cấp", [F.LEVELS[lv] for lv in levels],
        [Series("Đơn vị được xếp hạng", [len(ranking.get(str(lv), [])) for lv in levels]),
         Series(f"Đơn vị dưới {TARGET_SHOWN}",
                [sum(r["below_target"] for r in ranking.get(str(lv), [])) for lv in levels])],
        x_label="Cấp", y_label="Số đơn vị", percent=False, chart_id="chart-below-by-level")}
    for level in levels:
        shown = [r for r in ranking.get(str(level), []) if r["below_target"]][:TOP_UNITS]
        if shown:
            out[f"chart-below-level-{level}"] = charts.hbar_chart(
                f"{F.LEVELS[level]}: đơn vị có tỷ lệ đúng hạn dưới {TARGET_SHOWN}", [r["unit_name"] for r in shown],
                [Series("Tỷ lệ đúng hạn", [r["on_time_rate"] for r in shown])], x_label="Tỷ lệ đúng hạn (%)",
                target=F.TARGET, target_label=TARGET_LABEL,
                notes=[f"{fmt_int(r['late'])} trễ hạn/{fmt_int(r['resolved'])}" for r in shown],
                chart_id=f"chart-below-level-{level}")
    return out


def _land_charts(fig: dict) -> dict[str, str]:
    t = fig["timeliness"]
    if not t:
        return {}
    groups = (("land", "Đất đai"), ("other", "Các lĩnh vực khác"))
    months = _months(t["land_by_month"])
    index = {(r["month"], r["group"]): r for r in t["land_by_month"]}
    out = {"chart-land-months": charts.line_chart(
        "Tỷ lệ giải quyết đúng hạn: Đất đai và các lĩnh vực khác", [fmt_month(m) for m in months],
        [Series(name, [index[(m, g)]["on_time_rate"] if (m, g) in index else None for m in months])
         for g, name in groups],
        x_label="Tháng giải quyết", y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL,
        markers=reorganisation_markers(months), chart_id="chart-land-months")}
    by_level = {(r["scope"], r["group"]): r for r in t["land_by_level"]}
    levels = [lv for lv in (1, 2, 3) if any((lv, g) in by_level for g, _ in groups)]
    if levels:
        out["chart-land-levels"] = charts.bar_chart(
            f"Tỷ lệ đúng hạn theo cấp, tháng {fmt_month(fig['month'])}", [F.LEVELS[lv] for lv in levels],
            [Series(name, [by_level[(lv, g)]["on_time_rate"] if (lv, g) in by_level else None for lv in levels])
             for g, name in groups],
            x_label="Cấp", y_label="Tỷ lệ đúng hạn (%)", target=F.TARGET, target_label=TARGET_LABEL,
            chart_id="chart-land-levels")
    fields = [f for f in t["by_field"] if f["resolved"]]
    if fields:
        out["chart-fields"] = charts.hbar_chart(
            f"Tỷ lệ đúng hạn theo lĩnh vực, tháng {fmt_month(fig['month'])}", [f["field_name"] for f in fields],
            [Series("Tỷ lệ đúng hạn", [f["on_time_rate"] for f in fields])], x_label="Tỷ lệ đúng hạn (%)",
            target=F.TARGET, target_label=TARGET_LABEL,
            highlight=[f["field_name"] for f in fields if f["is_land"]],
            notes=[f"{fmt_int(f['late'])} trễ hạn/{fmt_int(f['resolved'])}" for f in fields],
            chart_id="chart-fields")
    return out


def _online_charts(fig: dict) -> dict[str, str]:
    out = {}
    if fig["online"]:
        rows = _trend_rows(fig, fig["online"], "online")
        months = _months(rows)
        out["chart-online"] = charts.line_chart(
            "Tỷ lệ hồ sơ nộp trực tuyến theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(rows, "online_rate", months), x_label="Tháng tiếp nhận",
            y_label="Tỷ lệ nộp trực tuyến (%)", markers=reorganisation_markers(months), chart_id="chart-online")
    if fig["digitisation"]:
        rows = _trend_rows(fig, fig["digitisation"], "digitisation")
        months = _months(rows)
        markers = reorganisation_markers(months)
        out["chart-intake-digitisation"] = charts.line_chart(
            "Số hóa hồ sơ khi tiếp nhận theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(rows, "intake_digitisation_rate", months), x_label="Tháng tiếp nhận",
            y_label="Tỷ lệ số hóa hồ sơ (%)", markers=markers, chart_id="chart-intake-digitisation")
        out["chart-result-digitisation"] = charts.line_chart(
            "Số hóa kết quả giải quyết theo cấp", [fmt_month(m) for m in months],
            _series_by_scope(rows, "result_digitisation_rate", months), x_label="Tháng giải quyết",
            y_label="Tỷ lệ số hóa kết quả (%)", markers=markers, chart_id="chart-result-digitisation")
    return out


def _delegation_charts(fig: dict) -> dict[str, str]:
    d = fig["delegation"]
    if d["as_of_date"] is None:
        return {}
    plans, units = d["by_plan"], d["by_receiving_unit"][:RECEIVING_UNITS]
    return {
        "chart-delegation-plans": charts.hbar_chart(
            "Tiến độ phân cấp, ủy quyền theo kế hoạch", [f"Kế hoạch {p['plan']}" for p in plans],
            [Series("Tiến độ thực hiện", [p["progress_rate"] for p in plans])], x_label="Tỷ lệ đã thực hiện (%)",
            notes=[f"{fmt_int(p['done'])}/{fmt_int(p['active'])}; {fmt_int(p['behind_plan'])} chậm" for p in plans],
            chart_id="chart-delegation-plans"),
        "chart-delegation-units": charts.hbar_chart(
            "Tiến độ theo đơn vị nhận phân cấp, ủy quyền", [u["unit_name"] for u in units],
            [Series("Tiến độ thực hiện", [u["progress_rate"] for u in units])], x_label="Tỷ lệ đã thực hiện (%)",
            notes=[f"{fmt_int(u['done'])}/{fmt_int(u['active'])}" for u in units],
            chart_id="chart-delegation-units"),
    }


def _disbursement_charts(fig: dict) -> dict[str, str]:
    d = fig["disbursement"]
    if d["total"] is None:
        return {}
    sources, investors = d["by_source"], d["by_investor"]
    return {
        "chart-disbursement-sources": charts.bar_chart(
            "Giải ngân so với kế hoạch theo nguồn vốn", [s["source_name"] for s in sources],
            [Series("Kế hoạch Thủ tướng giao", [float(s["plan_pm"]) / 1e9 for s in sources]),
             Series("Kế hoạch UBND tỉnh giao", [float(s["plan_province"]) / 1e9 for s in sources]),
             Series("Giải ngân lũy kế", [float(s["disbursed_cumulative"]) / 1e9 for s in sources])],
            x_label="Nguồn vốn", y_label="Tỷ đồng", percent=False, fmt=lambda v: fmt_number(v, 1),
            chart_id="chart-disbursement-sources"),
        "chart-disbursement-investors": charts.hbar_chart(
            "Tỷ lệ giải ngân theo chủ đầu tư (so với kế hoạch UBND tỉnh giao)", [i["unit_name"] for i in investors],
            [Series("Tỷ lệ giải ngân", [i["rate_vs_province"] for i in investors])], x_label="Tỷ lệ giải ngân (%)",
            notes=[f"{fmt_billion(i['disbursed_cumulative'])}/{fmt_billion(i['plan_province'])} tỷ"
                   for i in investors],
            chart_id="chart-disbursement-investors"),
    }


def _dq_charts(fig: dict) -> dict[str, str]:
    q = fig["dq"]
    if not q["open"]:
        return {}
    rules, units = list(q["by_rule"]), q["by_unit"][:TOP_UNITS]
    return {
        "chart-dq-rules": charts.hbar_chart(
            "Lỗi dữ liệu đang mở theo quy tắc", [f"{r} – {F.DQ_RULES.get(r, r)}" for r in rules],
            [Series("Số lỗi", [q["by_rule"][r] for r in rules])], x_label="Số hồ sơ", percent=False,
            label_chars=60, chart_id="chart-dq-rules"),
        "chart-dq-units": charts.hbar_chart(
            "Đơn vị tồn nhiều lỗi dữ liệu nhất", [u["unit_name"] for u in units],
            [Series(name, [u["by_group"].get(g, 0) for u in units]) for g, name in F.DQ_GROUPS.items()],
            x_label="Số hồ sơ", percent=False, chart_id="chart-dq-units"),
    }


def draw_charts(fig: dict) -> dict[str, Markup]:
    """Every chart the report shows for the figures of ``collect``: chart id -> SVG, marked safe (the charts
    escape their own text)."""
    drawn: dict[str, str] = {}
    for section in (_timeliness_charts, _below_target_charts, _land_charts, _online_charts, _delegation_charts,
                    _disbursement_charts, _dq_charts):
        drawn.update(section(fig))
    drawn.update(service_index.draw(fig.get("service_index") or {}))
    drawn.update(held_up.draw(fig.get("held_up") or {}))
    return {chart_id: Markup(svg) for chart_id, svg in drawn.items()}


# ------------------------------------------------------------------------------------------------ page

def _latest_month(fig: dict) -> dict[str, dict]:
    """The latest complete month's rows by scope, per measure: what the headline figures and tables show."""
    month = fig["month"]
    timeliness: dict = {}
    for r in fig["timeliness"]["by_month"] if fig["timeliness"] else []:
        if r["month"] == month:
            timeliness.setdefault(r["scope"], r)
    return {"timeliness": timeliness,
            "online": {r["scope"]: r for r in fig["online"] if r["month"] == month},
            "digitisation": {r["scope"]: r for r in fig["digitisation"] if r["month"] == month}}


def render(fig: dict) -> str:
    """The report's HTML for the figures of ``collect``."""
    now = _latest_month(fig)
    ranking = fig["ranking"].values()
    return render_page(
        "report.html.j2",
        fig=fig,
        now=now,
        ranked=sum(len(rows) for rows in ranking),
        below=sum(1 for rows in ranking for r in rows if r["below_target"]),
        online_scopes=[s for s in LEVEL_SERIES if s in now["online"] or s in now["digitisation"]],
        charts=draw_charts(fig),
        maps=geo_map.draw(fig.get("map") or {}),
        figures_json=Markup(F.to_json(fig)),  # to_json escapes <, > and &: inert inside <script>
        scope_name=_scope_name,
        target=F.TARGET,
        min_resolved=F.MIN_RESOLVED,
        levels=F.LEVELS,
        level_units=F.LEVEL_UNITS,
        province_label=F.PROVINCE,
        dq_rules=F.DQ_RULES,
        dq_groups=F.DQ_GROUPS,
        top_units=TOP_UNITS,
        receiving_units=RECEIVING_UNITS,
        criteria=F.SERVICE_INDEX_CRITERIA,
        lost_headers=list(F.SERVICE_INDEX_CRITERIA),
        reasons=F.REASONS_2_1,
        dossier_ids=service_index.DOSSIER_IDS,
        held_up_scope=held_up.scope_name,
        unrecorded_offices=(held_up.NOT_RECORDED, held_up.NOT_NAMED),
        land_units=held_up.LAND_UNITS,
    )


def write_report(url: str, out_dir: Path, as_of: date | None = None) -> Path:
    """Write the report of the marts as of ``as_of`` (default: their own as-of date) to
    ``out_dir/bao-cao-<as-of>.html`` and copy it to ``out_dir/latest.html``; returns the dated file."""
    return write_figures(read_figures(url, as_of), out_dir)


def read_figures(url: str, as_of: date | None = None) -> dict:
    """``collect``'s figures, read in one connection; raises when the marts are not built yet."""
    with F.connect(url) as conn:
        if not F.exists(conn, "marts.fct_timeliness_monthly"):
            raise RuntimeError("the marts are not built yet: run the nightly pipeline (make run) first")
        return collect(conn, as_of)


def write_figures(fig: dict, out_dir: Path) -> Path:
    """The report of ``fig`` (``collect``'s figures) written as ``write_report`` says; returns the dated file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bao-cao-{fig['as_of']:%Y-%m-%d}.html"
    html = render(fig)
    for target in (path, out_dir / "latest.html"):
        write_atomic(target, html)
        remove_stale_temporaries(target)
    return path
