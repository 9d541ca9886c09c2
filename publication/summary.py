"""A terminal summary of a night: what the run loaded, then the province's headline figures from the marts.

    python -m publication summary [--run-id ID]

Figures are those of the marts as last built (their as-of date); the month is the latest complete month.
Every rate is computed on summed counts (metrics.md). Empty or missing tables print as such.
"""

from __future__ import annotations

from datetime import date

from publication import figures as F

LEVEL_NAMES = {1: "provincial", 2: "district", 3: "commune"}
WIDTH = 118


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _n(value) -> str:
    return "–" if value is None else f"{int(value):,}"


def _bn(amount) -> str:
    return "–" if amount is None else f"{float(amount) / 1e9:,.1f}"


def _clip(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _run_lines(run: dict | None, run_id: str | None) -> list[str]:
    if run is None:
        return ["No pipeline run recorded in audit.pipeline_runs."]
    start = f"{run['interval_start']:%Y-%m-%d %H:%M}" if run["interval_start"] else "history start"
    seconds = f"; {run['seconds']:.1f} s" if run["seconds"] is not None else ""
    lines = [f"Run {run['run_id']}: {run['status']}; data interval {start} → {run['interval_end']:%Y-%m-%d %H:%M} "
             f"(local){seconds}"]
    if run["ingest"]:
        lines.append(f"  {'source':<12}{'windows':>8}{'fetched':>10}{'new versions':>14}{'duplicates':>12}"
                     f"{'quarantined':>13}{'retries':>9}")
        lines += [f"  {r['source']:<12}{r['windows']:>8}{r['fetched']:>10,}{r['new_versions']:>14,}"
                  f"{r['duplicates']:>12,}{r['quarantined']:>13,}{r['retries']:>9,}" for r in run["ingest"]]
    else:
        lines.append("  nothing ingested by this run (audit.ingest_runs has no row)")
    if run["workbooks"]:
        lines.append("  finance workbooks: " + ", ".join(f"{w['files']} {w['status']} ({w['rows']:,} rows)"
                                                        for w in run["workbooks"]))
    return lines


def _timeliness_lines(conn, as_of: date, month: date | None) -> list[str]:
    if month is None:
        return ["On-time rate: no resolved dossiers in a complete month yet (marts.fct_timeliness_monthly)."]
    t = F.timeliness(conn, month, months=1)
    rows = {r["scope"]: r for r in t["by_month"] if r["month"] == month}
    ranking = F.ranking(conn, month)
    province = rows.get("province")
    verdict = "" if province is None or province["on_time_rate"] is None else (
        ": below" if province["on_time_rate"] < F.TARGET else ": met")
    lines = [f"On-time rate (early + on time) {month:%m/%Y}, latest complete month of the marts as of {as_of}; "
             f"target {F.TARGET:.0%}{verdict}",
             f"  {'scope':<12}{'resolved':>9}{'on time':>9}{'late':>7}{'below target':>15}   lowest on-time rate"]
    for scope in ("province", 1, 2, 3):
        r = rows.get(scope)
        name = "province" if scope == "province" else LEVEL_NAMES[scope]
        below = worst = ""
        if scope != "province":
            ranked = ranking.get(scope, [])
            under = [u for u in ranked if u["below_target"]]
            below = f"{len(under)} of {len(ranked)}" if ranked else "none ranked"
            worst = ", ".join(f"{u['unit_name']} {_pct(u['on_time_rate'])}" for u in (under or ranked)[:3])
        if r is None and not below:
            continue
        lines.append(_clip(f"  {name:<12}{_n(r and r['resolved']):>9}{_pct(r and r['on_time_rate']):>9}"
                           f"{_n(r and r['late']):>7}{below:>15}   {worst or '–'}"))
    land = {r["group"]: r for r in t["land_by_month"] if r["month"] == month}
    if "land" in land:
        lines.append(f"  land (đất đai): {_pct(land['land']['on_time_rate'])} on time of {_n(land['land']['resolved'])}"
                     f" resolved; other fields {_pct(land.get('other', {}).get('on_time_rate'))}")
    return lines


def _pending_line(conn, as_of: date) -> list[str]:
    p = F.pending_overdue(conn, as_of)
    if p["as_of_date"] is None:
        return ["Pending overdue: no row in marts.fct_pending_overdue."]
    most = ", ".join(f"{u['unit_name']} {u['pending_overdue']:,}" for u in p["units"][:2])
    return [_clip(f"Pending overdue at {p['as_of_date']}: {p['pending_overdue']:,} of {p['in_processing']:,} in "
                  f"processing ({_pct(p['overdue_share'])})" + (f"; most: {most}" if most else ""))]


def _online_lines(conn, month: date | None) -> list[str]:
    if month is None:
        return []
    online = {r["scope"]: r for r in F.online(conn, month, months=1) if r["month"] == month}
    digit = {r["scope"]: r for r in F.digitisation(conn, month, months=1) if r["month"] == month}
    if not online and not digit:
        return [f"Online and digitisation {month:%m/%Y}: no rows."]
    lines = [f"  {'':<12}{'received':>9}{'online':>8}{'paper':>8}{'intake digitised':>18}{'paper results':>15}"
             f"{'result digitised':>18}"]
    for scope in ("province", 1, 2, 3):
        o, d = online.get(scope, {}), digit.get(scope, {})
        if not o and not d:
            continue
        name = "province" if scope == "province" else LEVEL_NAMES[scope]
        lines.append(f"  {name:<12}{_n(o.get('received')):>9}{_pct(o.get('online_rate')):>8}"
                     f"{_n(d.get('paper_received')):>8}{_pct(d.get('intake_digitisation_rate')):>18}"
                     f"{_n(d.get('paper_result_resolved')):>15}{_pct(d.get('result_digitisation_rate')):>18}")
    return [f"Online submission and digitisation {month:%m/%Y} (nộp trực tuyến, số hóa)", *lines]


def _delegation_lines(conn, as_of: date) -> list[str]:
    d = F.delegation(conn, as_of)
    if d["as_of_date"] is None:
        return ["Delegation (phân cấp, ủy quyền): no row in marts.fct_delegation_progress."]
    t = d["total"]
    lines = [f"Delegation (phân cấp, ủy quyền) at {d['as_of_date']}: {t['done']} of {t['active']} active items done "
             f"({_pct(t['progress_rate'])}), {t['behind_plan']} behind plan"]
    lines += [f"  plan {p['plan'] or '–':<16}{p['done']:>4} of {p['active']:>4} done ({_pct(p['progress_rate'])}), "
              f"{p['behind_plan']} behind plan" for p in d["by_plan"]]
    return lines


def _disbursement_line(conn, as_of: date) -> list[str]:
    d = F.disbursement(conn, as_of)
    if d["total"] is None:
        return ["Disbursement (giải ngân): no row in marts.fct_disbursement."]
    t = d["total"]
    lowest = ", ".join(f"{i['unit_name']} {_pct(i['rate_vs_province'])}" for i in d["by_investor"][:3])
    return [f"Disbursement (giải ngân) at {d['report_date']}, plan year {d['plan_year']}: "
            f"{_pct(t['rate_vs_province'])} of the provincial plan, {_pct(t['rate_vs_pm'])} of the PM's plan",
            _clip(f"  {_bn(t['disbursed_cumulative'])} of {_bn(t['plan_province'])} bn VND; "
                  f"lowest investors: {lowest}")]


def _dq_line(conn, q: dict | None = None) -> list[str]:
    q = F.dq_backlog(conn) if q is None else q
    if not q["open"]:
        return ["Open data-quality issues: none (marts.fct_dq_issue)."]
    rules = " · ".join(f"{rule} {n:,}" for rule, n in list(q["by_rule"].items())[:4])
    if len(q["by_rule"]) > 4:
        rules += f" · {len(q['by_rule']) - 4} more rules"
    return [_clip(f"Open data-quality issues at {q['validated_at']:%Y-%m-%d %H:%M}: {q['open']:,} — "
                  f"{rules}")]


def build_summary(url: str, run_id: str | None = None, dq: dict | None = None) -> str:
    """The summary of run ``run_id`` (default the latest) and of the marts, as printable text; ``dq``: the
    open data-quality issues (``figures.dq_backlog``) when the caller has just read them.

    Raises ``LookupError`` when ``run_id`` is given and not recorded."""
    with F.connect(url) as conn:
        run = F.pipeline_run(conn, run_id)
        if run is None and run_id is not None:
            raise LookupError(f"no pipeline run {run_id!r} in audit.pipeline_runs")
        lines = _run_lines(run, run_id)
        if not F.exists(conn, "marts.fct_timeliness_monthly"):
            lines.append("The marts are not built yet.")
            return "\n".join(lines)
        as_of = F.marts_as_of(conn)
        month = F.latest_complete_month(conn, as_of)
        lines += _timeliness_lines(conn, as_of, month)
        lines += _pending_line(conn, as_of)
        lines += _online_lines(conn, month)
        lines += _delegation_lines(conn, as_of)
        lines += _disbursement_line(conn, as_of)
        lines += _dq_line(conn, dq)
    return "\n".join(lines)
