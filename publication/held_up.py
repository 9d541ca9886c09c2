"""The morning report's section "Hồ sơ bị chậm ở đâu" (where dossiers are held up), read from the step marts.

For the report's month — the latest complete month, the month of every other section — and metrics.md's
processing steps: a dossier resolved late counts at the office of its first late step, where its delay
began, or under ``(không ghi nhận)`` when none of its steps is late (its delay is recorded nowhere in the
System, the seed's complaint in one number); ``(không ghi)`` is a first late step without an office name.

- **The share of late dossiers with no recorded late step** (``fct_late_origin_monthly``): the province
  (every late dossier, unknown units included), each level (units by their ``dim_unit`` level), and the land
  field (``fct_late_origin_monthly_by_field``) — counts summed, the share computed on the sums.
- **The land field (đất đai)**: where late land dossiers' delays begin, per level and office
  (``fct_late_origin_monthly_by_field``: ``fct_late_origin_monthly`` is per unit and office, and a unit's
  late dossiers of every field share its offices — the one-stop desk, the leadership —, so the land field's
  figures need the field in the grain). Office names are the System's: a district's land registration branch
  is named alike in every district, so a level's row adds up its units' offices of that name. Beside each,
  its land steps of the month (``fct_step_monthly_by_field``): steps, late steps and their share, summed —
  percentiles do not add, so none is shown for a level. Then per unit, the units with most late land
  dossiers first (``LAND_UNITS`` of them in the page, every unit in the figures), its offices.
- **The units below target** (``rpt_monthly_ranking.below_target``), in the ranking's order: per unit its
  late dossiers by the office their delay began at (``fct_late_origin_monthly``), most first.
- **The slowest offices** (``fct_step_monthly``): the unit × office rows of the month with at least
  ``MIN_STEPS`` steps, by share of late steps, then 90th-percentile duration, first ``SLOW_OFFICES`` of them.
  ``(không ghi)`` is left out: it lumps together whichever offices did not name themselves.

Offices within a list: most late dossiers first, then by name; ``(không ghi nhận)`` and ``(không ghi)`` are
listed like offices, so a unit's list adds up to its late dossiers. Computed exactly (fractions) from the
integer counts, then given as floats.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from markupsafe import Markup

from publication import charts
from publication import figures as F
from publication.charts import Series
from publication.formatting import fmt_month, fmt_percent

NOT_RECORDED = "(không ghi nhận)"  # a late dossier with no late step (fct_late_origin_monthly)
NOT_NAMED = "(không ghi)"  # a step without an office name
LAND_UNITS = 15  # units listed in the page's land table (the most late land dossiers)
SLOW_OFFICES = 15  # unit × office rows in the slowest-offices table
# A share of late steps over a handful of steps says little: an office ranks among the slowest from this
# many steps in the month (a district's land registration branch processes hundreds at the province's scale).
MIN_STEPS = 20
SCOPES = ("province", 1, 2, 3, "land")


def _rate(numerator: int, denominator: int) -> float | None:
    return float(Fraction(numerator, denominator)) if denominator else None


def _offices(counts: dict[str, int]) -> list[dict]:
    return [{"office": office, "late_dossiers": n}
            for office, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# --------------------------------------------------------------------------------------------- figures

def collect(conn, month: date | None) -> dict:
    """The section's figures for ``month`` (see the module docstring); empty when there is no month or no
    step mart."""
    out: dict = {"month": month, "available": False, "min_steps": MIN_STEPS, "land_codes": [], "not_recorded": [],
                 "land": {"late_dossiers": 0, "by_office": [], "units": []}, "below_target": [], "slow_offices": []}
    if month is None or not F.exists(conn, "marts.fct_late_origin_monthly"):
        return out
    out["available"] = True
    land_codes = F.land_field_codes(F.field_names(conn))
    out["land_codes"] = land_codes
    out["not_recorded"] = not_recorded(conn, month, land_codes)
    out["land"] = land(conn, month, land_codes)
    out["below_target"] = below_target(conn, month)
    out["slow_offices"] = slow_offices(conn, month)
    return out


def not_recorded(conn, month: date, land_codes: list[str]) -> list[dict]:
    """Per scope (the province, each level, the land field): late dossiers, those with no recorded late step
    and their share, and those whose first late step names no office."""
    sums = ("sum(late_dossiers)::bigint AS late_dossiers, "
            "(coalesce(sum(late_dossiers) FILTER (WHERE office = %s), 0))::bigint AS not_recorded, "
            "(coalesce(sum(late_dossiers) FILTER (WHERE office = %s), 0))::bigint AS not_named")
    by_level = F._rows(conn, f"SELECT u.level, {sums} FROM marts.fct_late_origin_monthly o LEFT JOIN marts.dim_unit u "
                       "ON u.unit_code = o.unit_code WHERE o.month = %s GROUP BY 1", (NOT_RECORDED, NOT_NAMED, month),
                       "marts.fct_late_origin_monthly", "marts.dim_unit")
    land_rows = F._rows(conn, f"SELECT {sums} FROM marts.fct_late_origin_monthly_by_field WHERE month = %s "
                        "AND field_code = ANY(%s)", (NOT_RECORDED, NOT_NAMED, month, land_codes),
                        "marts.fct_late_origin_monthly_by_field")
    acc: dict = {}
    for r in by_level:
        for scope in ("province", r["level"]):
            if scope is not None:
                F._sum_into(acc.setdefault(scope, {"scope": scope}), r, ("late_dossiers", "not_recorded", "not_named"))
    if land_rows and land_rows[0]["late_dossiers"]:
        acc["land"] = {"scope": "land", **land_rows[0]}
    out = [acc[s] for s in SCOPES if s in acc]
    for r in out:
        r["not_recorded_share"] = _rate(r["not_recorded"], r["late_dossiers"])
    return out


def land(conn, month: date, land_codes: list[str]) -> dict:
    """The land field's late dossiers by the office their delay began at: per level and office (with the
    office's land steps of the month), and per unit."""
    origins = F._rows(conn, "SELECT o.unit_code, u.unit_name, u.level, o.office, sum(o.late_dossiers)::bigint AS n "
                      "FROM marts.fct_late_origin_monthly_by_field o LEFT JOIN marts.dim_unit u "
                      "ON u.unit_code = o.unit_code WHERE o.month = %s AND o.field_code = ANY(%s) GROUP BY 1, 2, 3, 4",
                      (month, land_codes), "marts.fct_late_origin_monthly_by_field", "marts.dim_unit")
    steps = {(r["level"], r["office"]): r for r in F._rows(
        conn, "SELECT u.level, s.office, sum(s.steps)::bigint AS steps, sum(s.late_steps)::bigint AS late_steps "
        "FROM marts.fct_step_monthly_by_field s LEFT JOIN marts.dim_unit u ON u.unit_code = s.unit_code "
        "WHERE s.month = %s AND s.field_code = ANY(%s) GROUP BY 1, 2", (month, land_codes),
        "marts.fct_step_monthly_by_field", "marts.dim_unit")}
    by_office: dict[tuple, int] = {}
    level_totals: dict = {}
    units: dict[str | None, dict] = {}
    for r in origins:
        by_office[(r["level"], r["office"])] = by_office.get((r["level"], r["office"]), 0) + r["n"]
        level_totals[r["level"]] = level_totals.get(r["level"], 0) + r["n"]
        u = units.setdefault(r["unit_code"], {
            "unit_code": r["unit_code"], "unit_name": r["unit_name"] or r["unit_code"] or F.UNKNOWN_UNIT,
            "level": r["level"], "late_dossiers": 0, "_offices": {}})
        u["late_dossiers"] += r["n"]
        u["_offices"][r["office"]] = u["_offices"].get(r["office"], 0) + r["n"]
    rows = []
    for (level, office), n in by_office.items():
        s = steps.get((level, office), {})
        rows.append({"level": level, "office": office, "late_dossiers": n,
                     "share_of_level": _rate(n, level_totals[level]), "steps": s.get("steps", 0),
                     "late_steps": s.get("late_steps", 0), "late_step_rate": _rate(s.get("late_steps", 0),
                                                                                    s.get("steps", 0))})
    rows.sort(key=lambda r: (r["level"] is None, r["level"] or 0, -r["late_dossiers"], r["office"]))
    for u in units.values():
        u["offices"] = _offices(u.pop("_offices"))
    ordered = sorted(units.values(), key=lambda u: (-u["late_dossiers"], u["level"] is None, u["level"] or 0,
                                                    u["unit_name"], u["unit_code"] or ""))
    return {"late_dossiers": sum(level_totals.values()), "by_office": rows, "units": ordered}


def below_target(conn, month: date) -> list[dict]:
    """The units below target in ``month`` (the ranking's order), each with its late dossiers by the office
    their delay began at."""
    ranking = F.ranking(conn, month)
    below = [{"level": level, **r} for level, rows in sorted(ranking.items()) for r in rows if r["below_target"]]
    if not below:
        return []
    counts: dict[str | None, dict[str, int]] = {}
    for r in F._rows(conn, "SELECT unit_code, office, late_dossiers FROM marts.fct_late_origin_monthly "
                     "WHERE month = %s AND unit_code = ANY(%s)", (month, [u["unit_code"] for u in below]),
                     "marts.fct_late_origin_monthly"):
        counts.setdefault(r["unit_code"], {})[r["office"]] = r["late_dossiers"]
    out = []
    for u in below:
        offices = counts.get(u["unit_code"], {})
        out.append({"level": u["level"], "rank": u["rank"], "unit_code": u["unit_code"], "unit_name": u["unit_name"],
                    "resolved": u["resolved"], "on_time_rate": u["on_time_rate"], "late_dossiers": u["late"],
                    "not_recorded": offices.get(NOT_RECORDED, 0), "offices": _offices(offices)})
    return out


def slow_offices(conn, month: date) -> list[dict]:
    """The slowest unit × office rows of ``month``: at least ``MIN_STEPS`` steps, the highest share of late
    steps first, then the longest 90th-percentile duration; ``(không ghi)`` left out."""
    rows = F._rows(conn, "SELECT s.unit_code, u.unit_name, u.level, s.office, s.steps, s.late_steps, "
                   "s.late_step_rate::float AS late_step_rate, s.median_hours::float AS median_hours, "
                   "s.p90_hours::float AS p90_hours FROM marts.fct_step_monthly s LEFT JOIN marts.dim_unit u "
                   "ON u.unit_code = s.unit_code WHERE s.month = %s AND s.steps >= %s AND s.office <> %s",
                   (month, MIN_STEPS, NOT_NAMED), "marts.fct_step_monthly", "marts.dim_unit")
    for r in rows:
        r["unit_name"] = r["unit_name"] or r["unit_code"] or F.UNKNOWN_UNIT
    rows.sort(key=lambda r: (-Fraction(r["late_steps"], r["steps"]), r["p90_hours"] is None, -(r["p90_hours"] or 0),
                             -r["steps"], r["unit_code"] or "", r["office"]))
    return rows[:SLOW_OFFICES]


# --------------------------------------------------------------------------------------------- charts

def scope_name(scope) -> str:
    """The row label of a scope of ``not_recorded``."""
    if scope == "province":
        return F.PROVINCE
    if scope == "land":
        return "Lĩnh vực Đất đai"
    return F.LEVELS.get(scope, str(scope))


def office_label(level, office: str) -> str:
    """A land office's label in the chart: its level, then its name."""
    return f"{F.LEVELS.get(level, F.UNKNOWN_UNIT)} – {office}"


def _land_note(row: dict) -> str:
    if row["office"] == NOT_RECORDED:
        return "không bước nào trễ hạn"
    return f"{fmt_percent(row['late_step_rate'])} bước đất đai trễ hạn" if row["steps"] else ""


def draw(h: dict) -> dict[str, Markup]:
    """Chart id → SVG (marked safe: the charts escape their own text) for the section's figures."""
    if h.get("month") is None:
        return {}
    out: dict[str, str] = {}
    month = fmt_month(h["month"])
    shares = [r for r in h.get("not_recorded") or [] if r["late_dossiers"]]
    if shares:
        out["chart-held-up-not-recorded"] = charts.bar_chart(
            f"Hồ sơ trễ hạn không ghi nhận bước xử lý trễ hạn, tháng {month}", [scope_name(r["scope"]) for r in shares],
            [Series("Tỷ lệ không ghi nhận", [r["not_recorded_share"] for r in shares])], x_label="Phạm vi",
            y_label="Tỷ lệ trên hồ sơ trễ hạn (%)", chart_id="chart-held-up-not-recorded")
    offices = (h.get("land") or {}).get("by_office") or []
    if offices:
        shown = sorted(offices, key=lambda r: (-r["late_dossiers"], r["level"] is None, r["level"] or 0, r["office"]))
        labels = [office_label(r["level"], r["office"]) for r in shown]
        out["chart-held-up-land"] = charts.hbar_chart(
            f"Lĩnh vực Đất đai: nơi bắt đầu chậm của hồ sơ trễ hạn, tháng {month}", labels,
            [Series("Hồ sơ trễ hạn", [r["late_dossiers"] for r in shown])], x_label="Số hồ sơ trễ hạn", percent=False,
            highlight=[label for label, r in zip(labels, shown, strict=True)
                       if r["office"] in (NOT_RECORDED, NOT_NAMED)],
            notes=[_land_note(r) for r in shown],
            label_chars=60, chart_id="chart-held-up-land")
    return {chart_id: Markup(svg) for chart_id, svg in out.items()}

