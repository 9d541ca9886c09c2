"""Reference implementation of the Decision-766 service index (``service-index.md``), in plain Python.

An independent reading of the spec over the API records, the executable statement the end-to-end tests
compare ``marts.fct_service_index_monthly``, ``marts.rpt_service_index_ranking`` and
``marts.fct_service_index_2_1_dossiers`` with, row by row. It imports nothing from the warehouse, the
pipeline or the simulator; the value semantics of the API records (strict timestamps, integers, "missing"
as null or "", current non-deleted dossiers) and metrics.md's sets R and D, timeliness and intake
digitisation are those of ``tests/support/reference.py``, which it reuses (imported when called, so either
module may be imported first).

Interpretations where the spec is not explicit (the most literal reading each time):

- The cut-off of month m is c = 00:00 of the first day of m+1, or of the as-of date for the running month
  (the as-of's month). Receipts and resolutions count in m when before c as well, so the running month
  counts what happened before 00:00 of the as-of date, and D_m never overlaps the dossiers pending overdue
  at the end of m. Months after the running month have no rows (their dates are VAL01 errors).
- A catalogue flag holds when the procedure's record has it as a JSON value of the right type: ``MucDo``
  an integer 3 or 4, ``CoPhiLePhi`` and ``TraKetQuaGiay`` the boolean true; a dossier whose ``MaTTHC`` is
  not in the catalogue has none. Paid online: ``DuocThanhToanTrucTuyen`` an integer 1 or 2. Reused: a
  ``TaiLieuNop`` item with ``DuocTaiSuDung`` == 1 or ``DuocLayTuKhoDMQG`` == 1 (1, 1.0 and true are 1).
  An electronic result: a ``DanhSachGiayToKetQua`` item with a ``DuongDanTepTinKetQua`` neither null nor "".
  Supplement requests: the items of ``DanhSachHoSoBoSung`` when it is a list, else none.
- 4.2 "when resolved with a paper-result procedure" is the dossier's current state (resolved: status 9/10
  with a valid ``NgayKetThucXuLy``), whatever the month.
- 2.1's dossiers that cost points (``fct_service_index_2_1_dossiers``): the denominator's dossiers not in
  the numerator — ``late`` (resolved late), ``supplements`` (resolved early or on time with two or more
  supplement requests), ``pending_overdue``.
- Ranking: a unit is in force in month m when ``HieuLucTu`` is missing or before the first day of m+1 and
  ``HieuLucDen`` is missing or on or after the first day of m. Units not in the unit list, without an
  integer ``CapDonVi``, not in force, or with points_max 0 have no row. Ties of score_100 (compared exactly,
  as fractions) go to the lower ``unit_code``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time
from fractions import Fraction

CRITERIA = ("2.1", "3.3", "3.6", "4.1", "4.2", "4.3")
THRESHOLDS = {"2.1": Fraction(1), "3.3": Fraction(1, 2), "3.6": Fraction(1), "4.1": Fraction(1),
              "4.2": Fraction(4, 5), "4.3": Fraction(4, 5)}
MAX_POINTS = {"2.1": 20, "3.3": 12, "3.6": 6, "4.1": 6, "4.2": 4, "4.3": 2}

COLUMNS: dict[str, tuple[str, ...]] = {
    "fct_service_index_monthly": ("month", "unit_code", "criterion_id", "numerator", "denominator", "rate",
                                  "threshold", "max_points", "points"),
    "rpt_service_index_ranking": ("month", "level", "unit_code", "unit_name", "score", "points_max", "score_100",
                                  "rank", *(f"points_lost_{c.replace('.', '_')}" for c in CRITERIA)),
    "fct_service_index_2_1_dossiers": ("month", "unit_code", "dossier_id", "reason", "procedure_code", "due_at",
                                       "finished_at", "supplement_count"),
}
KEYS: dict[str, tuple[str, ...]] = {
    "fct_service_index_monthly": ("month", "unit_code", "criterion_id"),
    "rpt_service_index_ranking": ("month", "level", "unit_code"),
    "fct_service_index_2_1_dossiers": ("month", "dossier_id"),
}


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = _next_month(m)
    return out


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _key(row: dict, keys: tuple[str, ...]) -> tuple:
    return tuple((row[k] is None, row[k] if row[k] is not None else "") for k in keys)


def dossier_facts(dossiers: Iterable[dict], procedures: list[dict]) -> list[dict]:
    """Every current, non-deleted dossier with what the index reads of it (and of its procedure)."""
    from tests.support import reference as base

    catalogue = {p.get("MaTTHC"): p for p in procedures}
    paper = {code: p.get("TraKetQuaGiay") is True for code, p in catalogue.items()}
    facts = []
    for rec in base.current_dossiers(dossiers):
        f = base.classify(rec, paper)
        proc = catalogue.get(f["procedure_code"], {})
        components = rec.get("TaiLieuNop") if isinstance(rec.get("TaiLieuNop"), list) else []
        results = rec.get("DanhSachGiayToKetQua") if isinstance(rec.get("DanhSachGiayToKetQua"), list) else []
        supplements = rec.get("DanhSachHoSoBoSung")
        f.update(
            offered_online=base._is_int_in(proc.get("MucDo"), (3, 4)),
            has_fees=proc.get("CoPhiLePhi") is True,
            paper_result=proc.get("TraKetQuaGiay") is True,
            paid_online=base._is_int_in(rec.get("DuocThanhToanTrucTuyen"), (1, 2)),
            reused=any(isinstance(c, dict) and (c.get("DuocTaiSuDung") == 1 or c.get("DuocLayTuKhoDMQG") == 1)
                       for c in components),
            electronic=any(isinstance(r, dict) and base.present(r.get("DuongDanTepTinKetQua")) for r in results),
            supplements=len(supplements) if isinstance(supplements, list) else 0,
            refused_at=base.parse_timestamp(rec.get("NgayTuChoi")),
            withdrawn_or_stopped=base._is_int_in(rec.get("TrangThaiHoSo"), (7, 8)),
        )
        facts.append(f)
    return facts


def pending_overdue_at(f: dict, cut_off: datetime) -> bool:
    """service-index.md's pending overdue at the cut-off ``c`` (00:00 of a day)."""
    return (f["is_received"] and f["received_at"] < cut_off
            and (f["finished_at"] is None or f["finished_at"] >= cut_off)
            and (f["refused_at"] is None or f["refused_at"] >= cut_off)
            and not f["withdrawn_or_stopped"]
            and f["due_at"] is not None and f["due_at"].date() < cut_off.date())


def on_time_dossiers(facts: list[dict], as_of: datetime) -> list[dict]:
    """2.1's denominator dossier by dossier: ``{month, unit_code, dossier, reason}``, reason None for the
    numerator's, else ``late``, ``supplements`` or ``pending_overdue``."""
    running = as_of.date().replace(day=1)
    as_of_cut = datetime.combine(as_of.date(), time())
    out = []
    for f in facts:
        if f["is_resolved"] and f["finished_at"] < as_of_cut:
            reason = "late" if f["timeliness"] == "late" else "supplements" if f["supplements"] >= 2 else None
            out.append({"month": f["finished_at"].date().replace(day=1), "fact": f, "reason": reason})
        if f["is_received"] and f["received_at"] < as_of_cut:
            for month in _months(f["received_at"].date().replace(day=1), running):
                cut = min(datetime.combine(_next_month(month), time()), as_of_cut)
                if pending_overdue_at(f, cut):
                    out.append({"month": month, "fact": f, "reason": "pending_overdue"})
    return out


def criteria(thresholds: dict | None = None, max_points: dict | None = None) -> dict[str, tuple[Fraction, Fraction]]:
    """Each criterion's (threshold, max points): the spec's defaults, or the dbt vars given (all six each)."""
    thresholds, max_points = thresholds or THRESHOLDS, max_points or MAX_POINTS
    return {c: (Fraction(str(thresholds[c])), Fraction(str(max_points[c]))) for c in CRITERIA}


def _points(rate: Fraction | None, rule: tuple[Fraction, Fraction]) -> Fraction | None:
    if rate is None:
        return None
    threshold, maximum = rule
    return min(Fraction(1), rate / threshold) * maximum


def monthly(facts: list[dict], as_of: datetime, rules: dict[str, tuple[Fraction, Fraction]]) -> list[dict]:
    """``fct_service_index_monthly``: numerator, denominator, rate and points per month × unit × criterion."""
    as_of_cut = datetime.combine(as_of.date(), time())
    counts: dict[tuple, dict[str, list[int]]] = {}

    def add(month: date, unit, criterion: str, hit: bool) -> None:
        cell = counts.setdefault((month, unit), {c: [0, 0] for c in CRITERIA})[criterion]
        cell[0] += hit
        cell[1] += 1

    for f in facts:
        unit = f["unit_code"]
        if f["is_received"] and f["received_at"] < as_of_cut:
            month = f["received_at"].date().replace(day=1)
            counts.setdefault((month, unit), {c: [0, 0] for c in CRITERIA})  # a row even if nothing counts it
            if f["offered_online"]:
                add(month, unit, "3.3", f["is_online"])
            if f["has_fees"]:
                add(month, unit, "3.6", f["paid_online"])
            resolved_paper = f["is_resolved"] and f["paper_result"]
            add(month, unit, "4.2", f["intake_digitised"] and (not resolved_paper or f["electronic"]))
            add(month, unit, "4.3", f["reused"])
        if f["is_resolved"] and f["finished_at"] < as_of_cut:
            month = f["finished_at"].date().replace(day=1)
            counts.setdefault((month, unit), {c: [0, 0] for c in CRITERIA})
            if f["paper_result"]:
                add(month, unit, "4.1", f["electronic"])
    for d in on_time_dossiers(facts, as_of):
        add(d["month"], d["fact"]["unit_code"], "2.1", d["reason"] is None)
    rows = []
    for (month, unit), by_criterion in counts.items():
        for criterion, (numerator, denominator) in by_criterion.items():
            rate = Fraction(numerator, denominator) if denominator else None
            rows.append({"month": month, "unit_code": unit, "criterion_id": criterion, "numerator": numerator,
                         "denominator": denominator, "rate": _float(rate),
                         "threshold": float(rules[criterion][0]), "max_points": float(rules[criterion][1]),
                         "points": _float(_points(rate, rules[criterion])), "_rate": rate})
    return rows


def in_force(unit: dict, month: date) -> bool:
    """In force at some time in ``month`` (reorganisation.md: a unit closed on day d is in force in d's month)."""
    from tests.support import reference as base

    valid_from, valid_to = base.parse_date(unit.get("HieuLucTu")), base.parse_date(unit.get("HieuLucDen"))
    return (valid_from is None or valid_from < _next_month(month)) and (valid_to is None or valid_to >= month)


def ranking(rows: list[dict], units: list[dict], rules: dict[str, tuple[Fraction, Fraction]]) -> list[dict]:
    """``rpt_service_index_ranking`` from the monthly rows (with their exact ``_rate``)."""
    from tests.support import reference as base

    by_code = {u.get("MaDonVi"): u for u in units}
    per_unit: dict[tuple, dict] = defaultdict(lambda: {"score": Fraction(0), "points_max": Fraction(0), "lost": {}})
    for r in rows:
        acc = per_unit[(r["month"], r["unit_code"])]
        rule = rules[r["criterion_id"]]
        points = _points(r["_rate"], rule)
        if points is not None:
            acc["score"] += points
            acc["points_max"] += rule[1]
        acc["lost"][r["criterion_id"]] = None if points is None else rule[1] - points
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for (month, unit), acc in per_unit.items():
        u = by_code.get(unit)
        level = base.as_integer(u.get("CapDonVi")) if u else None
        if u is None or level is None or not in_force(u, month) or acc["points_max"] == 0:
            continue
        groups[(month, level)].append((acc["score"] / acc["points_max"] * 100, unit, acc))
    out = []
    for (month, level), members in groups.items():
        members.sort(key=lambda m: (-m[0], m[1]))
        for position, (score_100, unit, acc) in enumerate(members, start=1):
            out.append({"month": month, "level": level, "unit_code": unit, "unit_name": by_code[unit].get("TenDonVi"),
                        "score": float(acc["score"]), "points_max": float(acc["points_max"]),
                        "score_100": float(score_100),
                        "rank": position,
                        **{f"points_lost_{c.replace('.', '_')}": _float(acc["lost"].get(c)) for c in CRITERIA}})
    return out


def lost_dossiers(facts: list[dict], as_of: datetime) -> list[dict]:
    """``fct_service_index_2_1_dossiers``: the dossiers that cost 2.1 points, per month."""
    return [{"month": d["month"], "unit_code": d["fact"]["unit_code"], "dossier_id": d["fact"]["dossier_id"],
             "reason": d["reason"], "procedure_code": d["fact"]["procedure_code"], "due_at": d["fact"]["due_at"],
             "finished_at": d["fact"]["finished_at"], "supplement_count": d["fact"]["supplements"]}
            for d in on_time_dossiers(facts, as_of) if d["reason"] is not None]


def compute_index(dossiers: Iterable[dict], units: list[dict], procedures: list[dict], as_of: datetime,
                  thresholds: dict | None = None, max_points: dict | None = None) -> dict[str, list[dict]]:
    """The three service-index tables from the API records as of ``as_of`` (the run's as-of time): ``{table:
    rows}``, each row with exactly ``COLUMNS[table]``, sorted by ``KEYS[table]``. A date ``as_of`` is its 00:00;
    ``thresholds`` / ``max_points`` replace the spec's defaults (as the dbt vars do, all six criteria each)."""
    if not isinstance(as_of, datetime):
        as_of = datetime.combine(as_of, time())
    rules = criteria(thresholds, max_points)
    facts = dossier_facts(dossiers, procedures)
    rows = monthly(facts, as_of, rules)
    tables = {"fct_service_index_monthly": rows, "rpt_service_index_ranking": ranking(rows, units, rules),
              "fct_service_index_2_1_dossiers": lost_dossiers(facts, as_of)}
    return {t: sorted(({c: r[c] for c in COLUMNS[t]} for r in table), key=lambda r, t=t: _key(r, KEYS[t]))
            for t, table in tables.items()}


def province_rollup(rows: Iterable[dict], thresholds: dict | None = None,
                    max_points: dict | None = None) -> dict[str, dict]:
    """Per criterion, the province's numerator and denominator (sums over every unit's rows), its rate, points
    and points lost (max − points): the roll-up of the spec, formula applied to the sums."""
    rules = criteria(thresholds, max_points)
    sums: dict[str, list[int]] = {c: [0, 0] for c in CRITERIA}
    for r in rows:
        sums[r["criterion_id"]][0] += r["numerator"]
        sums[r["criterion_id"]][1] += r["denominator"]
    out = {}
    for c, (numerator, denominator) in sums.items():
        rate = Fraction(numerator, denominator) if denominator else None
        points = _points(rate, rules[c])
        out[c] = {"numerator": numerator, "denominator": denominator, "rate": _float(rate),
                  "points": _float(points), "lost": None if points is None else float(rules[c][1] - points)}
    return out
