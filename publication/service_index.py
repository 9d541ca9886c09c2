"""The morning report's service-index section: Chỉ số phục vụ (Quyết định 766), read from the marts.

For the report's month — the latest complete month, the month of every other section (the running month is
month-to-date in the marts, but on the first nights of a month it holds little beyond the dossiers pending
overdue, so the report does not rank on it):

- **each level's units by score_100**: ``rpt_service_index_ranking`` as ranked (units not ranked — not in
  force, unknown, points_max 0 — are not shown);
- **the criteria where the province loses most points**: the roll-up of ``service-index.md`` — per criterion
  the numerators and denominators of every unit's row summed (units not ranked included: they are the
  province's dossiers too), the rate of the sums, then points = min(1, rate ÷ threshold) × max and points
  lost = max − points. Points never add across units, so the sum of the units' ``points_lost`` is not used:
  it would grow with the number of units and weigh a commune with three dossiers like a department with
  three hundred. The same roll-up per level (units by their ``dim_unit`` level), and the province's score
  (points of the criteria with a rate, out of their maxima, × 100);
- **the dossiers that cost 2.1 points** (``fct_service_index_2_1_dossiers``): per unit, the counts by reason
  (pending overdue at the month's end, resolved late, resolved after two or more supplement requests) and
  the 2.1 points it lost (its own row of ``fct_service_index_monthly``). The units with most such dossiers
  come first — each of them costs the province's roll-up the same, whereas a unit's own points lost say more
  about its size (one late dossier out of one loses all 20) — then those that lost most points; for the
  first ``DOSSIER_UNITS`` up to ``DOSSIER_IDS`` dossier codes each: pending overdue first (they can still be
  acted on), then late, then supplements, earliest due date first. Every unit's counts are in the figures,
  the codes only for the units listed.

Thresholds and maxima are read from the mart's rows (dbt vars), never repeated here. Computed exactly
(fractions) from the integer counts, then given as floats.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from markupsafe import Markup

from publication import charts
from publication import figures as F
from publication.charts import Series
from publication.formatting import fmt_int, fmt_month, fmt_number

CRITERIA = tuple(F.SERVICE_INDEX_CRITERIA)
REASONS = tuple(F.REASONS_2_1)
SCOPES = ("province", 1, 2, 3)
DOSSIER_UNITS = 15  # units whose 2.1 dossiers are listed
DOSSIER_IDS = 10  # dossier codes listed per unit
CHART_UNITS = 20  # units in a level's score chart (the lowest scores)


def _lost_column(criterion: str) -> str:
    return "points_lost_" + criterion.replace(".", "_")


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


# --------------------------------------------------------------------------------------------- figures

def collect(conn, month: date | None) -> dict:
    """The section's figures for ``month`` (see the module docstring); empty when there is no month or no
    service-index mart."""
    out: dict = {"month": month, "ranking": {}, "criteria": [], "scores": [], "dossiers": {"totals": {}, "units": []}}
    if month is None or not F.exists(conn, "marts.fct_service_index_monthly"):
        return out
    out["ranking"] = ranking(conn, month)
    out["criteria"], out["scores"] = criteria(conn, month)
    out["dossiers"] = dossiers(conn, month)
    return out


def ranking(conn, month: date) -> dict[str, list[dict]]:
    """``rpt_service_index_ranking`` of ``month``, per level (rank order)."""
    lost = ", ".join(f"{_lost_column(c)}::float AS {_lost_column(c)}" for c in CRITERIA)
    rows = F._rows(conn, "SELECT level, rank, unit_code, unit_name, score::float AS score, points_max::float AS "
                   f"points_max, score_100::float AS score_100, {lost} FROM marts.rpt_service_index_ranking "
                   "WHERE month = %s ORDER BY level, rank", (month,), "marts.rpt_service_index_ranking")
    out: dict[str, list[dict]] = {}
    for r in rows:
        level = r.pop("level")
        r["unit_name"] = r["unit_name"] or r["unit_code"]
        r["points_lost"] = {c: r.pop(_lost_column(c)) for c in CRITERIA}
        out.setdefault(str(level), []).append(r)
    return out


def _points(numerator: int, denominator: int, threshold: Fraction, maximum: Fraction) -> dict:
    rate = Fraction(numerator, denominator) if denominator else None
    points = None if rate is None else min(Fraction(1), rate / threshold) * maximum
    return {"numerator": numerator, "denominator": denominator, "rate": _float(rate), "points": _float(points),
            "points_lost": None if points is None else float(maximum - points), "_points": points}


def criteria(conn, month: date) -> tuple[list[dict], list[dict]]:
    """Per criterion, the province's and each level's roll-up (sums, then the formula), the criteria that lose
    the province most points first; and the score of each scope (province, levels)."""
    rows = F._rows(conn, "SELECT m.criterion_id, u.level, sum(m.numerator)::bigint AS numerator, "
                   "sum(m.denominator)::bigint AS denominator, max(m.threshold) AS threshold, "
                   "max(m.max_points) AS max_points FROM marts.fct_service_index_monthly m LEFT JOIN marts.dim_unit u "
                   "ON u.unit_code = m.unit_code WHERE m.month = %s GROUP BY 1, 2", (month,),
                   "marts.fct_service_index_monthly", "marts.dim_unit")
    sums: dict[tuple, list[int]] = {}
    rules: dict[str, tuple[Fraction, Fraction]] = {}
    for r in rows:
        rules[r["criterion_id"]] = (Fraction(r["threshold"]), Fraction(r["max_points"]))
        for scope in ("province", r["level"]):
            if scope is not None:
                acc = sums.setdefault((r["criterion_id"], scope), [0, 0])
                acc[0] += r["numerator"]
                acc[1] += r["denominator"]
    scopes = [s for s in SCOPES if any(k[1] == s for k in sums)]
    out = []
    for c in (c for c in CRITERIA if c in rules):
        threshold, maximum = rules[c]
        out.append({"criterion_id": c, "criterion_name": F.SERVICE_INDEX_CRITERIA[c], "threshold": float(threshold),
                    "max_points": float(maximum),
                    "by_scope": {str(s): _points(*sums[(c, s)], threshold, maximum) for s in scopes if (c, s) in sums}})
    scores = []
    for s in scopes:
        cells = [(row["by_scope"][str(s)], rules[row["criterion_id"]][1]) for row in out if str(s) in row["by_scope"]]
        rated = [(cell["_points"], maximum) for cell, maximum in cells if cell["_points"] is not None]
        score, points_max = sum((p for p, _ in rated), Fraction(0)), sum((m for _, m in rated), Fraction(0))
        scores.append({"scope": s, "score": float(score), "points_max": float(points_max),
                       "score_100": float(score / points_max * 100) if points_max else None})
    for row in out:
        for cell in row["by_scope"].values():
            del cell["_points"]
    def most_lost(row: dict) -> tuple:
        lost = row["by_scope"].get("province", {}).get("points_lost")
        return lost is None, -(lost or 0), row["criterion_id"]

    out.sort(key=most_lost)
    return out, scores


def dossiers(conn, month: date) -> dict:
    """The dossiers that cost 2.1 points in ``month``, per unit (see the module docstring)."""
    counts = F._rows(conn, "SELECT unit_code, reason, count(*)::int AS n FROM marts.fct_service_index_2_1_dossiers "
                     "WHERE month = %s GROUP BY 1, 2", (month,), "marts.fct_service_index_2_1_dossiers")
    index = {r["unit_code"]: r for r in F._rows(
        conn, "SELECT m.unit_code, u.unit_name, u.level, m.numerator, m.denominator, m.rate::float AS rate, "
        "(m.max_points - m.points)::float AS points_lost FROM marts.fct_service_index_monthly m LEFT JOIN "
        "marts.dim_unit u ON u.unit_code = m.unit_code WHERE m.month = %s AND m.criterion_id = '2.1'", (month,),
        "marts.fct_service_index_monthly", "marts.dim_unit")}
    units: dict[str | None, dict] = {}
    totals = dict.fromkeys(REASONS, 0)
    for r in counts:
        i = index.get(r["unit_code"], {})
        u = units.setdefault(r["unit_code"], {
            "unit_code": r["unit_code"], "unit_name": i.get("unit_name") or r["unit_code"] or F.UNKNOWN_UNIT,
            "level": i.get("level"), "numerator": i.get("numerator"), "denominator": i.get("denominator"),
            "rate": i.get("rate"), "points_lost": i.get("points_lost"), "total": 0, **dict.fromkeys(REASONS, 0),
            "dossiers": []})
        u[r["reason"]] += r["n"]
        u["total"] += r["n"]
        totals[r["reason"]] += r["n"]
    ordered = sorted(units.values(), key=lambda u: (-u["total"], -(u["points_lost"] or 0), u["unit_code"] is None,
                                                    u["unit_code"] or ""))
    listed = {u["unit_code"] for u in ordered[:DOSSIER_UNITS]}
    order = " ".join(f"WHEN '{reason}' THEN {i}" for i, reason in enumerate(REASONS))
    for r in F._rows(conn, "SELECT unit_code, dossier_id, reason, procedure_code, due_at, finished_at, "
                     "supplement_count FROM (SELECT d.*, row_number() OVER (PARTITION BY d.unit_code ORDER BY "
                     f"CASE d.reason {order} END, d.due_at NULLS LAST, d.dossier_id COLLATE \"C\") AS position "
                     "FROM marts.fct_service_index_2_1_dossiers d WHERE d.month = %s) d WHERE position <= %s "
                     "ORDER BY unit_code, position", (month, DOSSIER_IDS), "marts.fct_service_index_2_1_dossiers"):
        if r["unit_code"] in listed:
            units[r["unit_code"]]["dossiers"].append({k: r[k] for k in (
                "dossier_id", "reason", "procedure_code", "due_at", "finished_at", "supplement_count")})
    return {"totals": totals | {"total": sum(totals.values())}, "listed_units": len(listed), "units": ordered}


# --------------------------------------------------------------------------------------------- charts

def draw(si: dict) -> dict[str, Markup]:
    """Chart id → SVG (marked safe: the charts escape their own text) for the section's figures."""
    if si.get("month") is None:
        return {}
    out: dict[str, str] = {}
    month = fmt_month(si["month"])
    rows = si.get("criteria") or []
    scopes = [s for s in SCOPES if any(str(s) in row["by_scope"] for row in rows)]
    if rows:
        out["chart-si-criteria"] = charts.hbar_chart(
            f"Điểm bị mất theo tiêu chí, tháng {month}",
            [f"{r['criterion_id']} {r['criterion_name']} (tối đa {fmt_number(r['max_points'])})" for r in rows],
            [Series(F.PROVINCE if s == "province" else F.LEVELS[s],
                    [r["by_scope"].get(str(s), {}).get("points_lost") for r in rows]) for s in scopes],
            x_label="Điểm bị mất", percent=False, fmt=lambda v: fmt_number(v, 2), label_chars=48,
            chart_id="chart-si-criteria")
    for level, units in sorted(si.get("ranking", {}).items()):
        shown = list(reversed(units))[:CHART_UNITS]
        title = (f"{F.LEVELS.get(int(level), level)}: điểm chỉ số phục vụ theo đơn vị" if len(units) <= CHART_UNITS
                 else f"{F.LEVELS.get(int(level), level)}: {CHART_UNITS} đơn vị có điểm thấp nhất")
        out[f"chart-si-level-{level}"] = charts.hbar_chart(
            f"{title}, tháng {month}", [u["unit_name"] for u in shown],
            [Series("Điểm (thang 100)", [u["score_100"] for u in shown])], x_label="Điểm (thang 100)", percent=False,
            fmt=lambda v: fmt_number(v, 1), notes=[f"hạng {fmt_int(u['rank'])}/{fmt_int(len(units))}" for u in shown],
            chart_id=f"chart-si-level-{level}")
    return {chart_id: Markup(svg) for chart_id, svg in out.items()}
