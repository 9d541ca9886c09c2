"""Reference implementation of the processing-step marts (metrics.md, "Processing steps: where dossiers are
held up"), in plain Python, from the API records.

An independent reading of the spec, the executable statement the end-to-end tests compare
``marts.fct_step_monthly`` and ``marts.fct_late_origin_monthly`` with, row by row. It imports nothing from the
warehouse, the pipeline or the simulator; the value semantics of the records (strict timestamps, integers,
"missing" as null or "", current non-deleted dossiers) and metrics.md's timeliness are those of
``tests/support/reference.py``, which it reuses (imported when called, so either module may be imported
first).

Interpretations where the spec is not explicit (the most literal reading each time):

- Steps: the items of ``QuaTrinhXuLy`` when it is a list (anything else: no steps), of every current,
  non-deleted dossier whatever its status; an item that is not an object, or whose ``ThoiDiemXuLy`` is missing
  or not a valid timestamp, is no step (but keeps its place in the list). ``NgayBatDau`` and
  ``NgayKetThucTheoQuyDinh`` that are not valid timestamps are missing.
- Office: ``PhongBanXuLy`` when it is a non-empty JSON string, compared literally (no trimming, no case
  folding); null, "", absent or another JSON type (a number, a list): ``(không ghi)``.
- Unit: the dossier's ``DonViXuLy`` as given (a code no unit has included; "" is missing, None).
- Duration: ``ThoiDiemXuLy − NgayBatDau`` in hours (seconds / 3600), 0 when equal, None when ``NgayBatDau``
  is missing or later. Late: ``NgayKetThucTheoQuyDinh`` present and ``ThoiDiemXuLy`` strictly after it.
- ``median_hours`` / ``p90_hours``: continuous percentiles of the non-null durations (PostgreSQL's
  ``percentile_cont``: the value at position p·(n−1) of the sorted list, linearly interpolated); None when
  no step of the group has a duration.
- First late step: among the dossier's late steps, the lowest ``BuocXuLy`` — an integer as metrics.md's
  integers are (a JSON number without a fractional part; a string "2" or a missing number is not one) —,
  steps without one after every numbered step, ties by position in the list.
- ``fct_late_origin_monthly``: the dossiers whose timeliness is ``late`` (resolved: status 9/10 with a valid
  ``NgayKetThucXuLy``, later calendar day than a valid ``NgayHenTra``), by the month of d(``NgayKetThucXuLy``),
  their unit and the office of their first late step, ``(không ghi nhận)`` when none of their steps is late
  (no steps at all included). Months after the as-of date (VAL01) are counted where they fall, as every
  other monthly fact is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from fractions import Fraction

NOT_NAMED = "(không ghi)"  # a step whose PhongBanXuLy is missing or empty
NOT_RECORDED = "(không ghi nhận)"  # a late dossier with no late step

COLUMNS: dict[str, tuple[str, ...]] = {
    "fct_step_monthly": ("month", "unit_code", "office", "steps", "late_steps", "late_step_rate", "median_hours",
                         "p90_hours"),
    "fct_late_origin_monthly": ("month", "unit_code", "office", "late_dossiers"),
    "fct_step_monthly_by_field": ("month", "unit_code", "field_code", "office", "steps", "late_steps",
                                  "late_step_rate", "median_hours", "p90_hours"),
    "fct_late_origin_monthly_by_field": ("month", "unit_code", "field_code", "office", "late_dossiers"),
}
KEYS: dict[str, tuple[str, ...]] = {
    "fct_step_monthly": ("month", "unit_code", "office"),
    "fct_late_origin_monthly": ("month", "unit_code", "office"),
    "fct_step_monthly_by_field": ("month", "unit_code", "field_code", "office"),
    "fct_late_origin_monthly_by_field": ("month", "unit_code", "field_code", "office"),
}


def percentile_cont(values: list[Fraction], p: Fraction) -> Fraction | None:
    """The continuous percentile ``p`` of ``values`` (None when empty), as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    lower = int(position)  # floor: position >= 0
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def office_of(step: dict) -> str:
    name = step.get("PhongBanXuLy")
    return name if isinstance(name, str) and name != "" else NOT_NAMED


def dossier_steps(rec: dict) -> list[dict]:
    """The steps of one current dossier record: ``{position, step_no, office, processed_at, hours, is_late}``."""
    from tests.support import reference as base

    items = rec.get("QuaTrinhXuLy")
    out = []
    for position, item in enumerate(items if isinstance(items, list) else [], start=1):
        if not isinstance(item, dict):
            continue
        processed = base.parse_timestamp(item.get("ThoiDiemXuLy"))
        if processed is None:
            continue
        started = base.parse_timestamp(item.get("NgayBatDau"))
        legal_end = base.parse_timestamp(item.get("NgayKetThucTheoQuyDinh"))
        hours = None
        if started is not None and started <= processed:
            hours = Fraction(int((processed - started).total_seconds()), 3600)
        out.append({"position": position, "step_no": base.as_integer(item.get("BuocXuLy")),
                    "office": office_of(item), "processed_at": processed, "hours": hours,
                    "is_late": legal_end is not None and processed > legal_end})
    return out


def first_late_office(steps: list[dict]) -> str:
    """The office of the first late step (lowest BuocXuLy, numbered steps first, ties by list position), or
    ``(không ghi nhận)`` when no step is late."""
    late = [s for s in steps if s["is_late"]]
    if not late:
        return NOT_RECORDED
    first = min(late, key=lambda s: (s["step_no"] is None, s["step_no"] or 0, s["position"]))
    return first["office"]


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _key(row: dict, keys: tuple[str, ...]) -> tuple:
    return tuple((row[k] is None, row[k] if row[k] is not None else "") for k in keys)


def _month(day: date) -> date:
    return day.replace(day=1)


def _step_row(key: dict, steps: list[dict]) -> dict:
    late = sum(s["is_late"] for s in steps)
    hours = [s["hours"] for s in steps if s["hours"] is not None]
    return {**key, "steps": len(steps), "late_steps": late, "late_step_rate": float(Fraction(late, len(steps))),
            "median_hours": _float(percentile_cont(hours, Fraction(1, 2))),
            "p90_hours": _float(percentile_cont(hours, Fraction(9, 10)))}


def compute_steps(dossiers: Iterable[dict]) -> dict[str, list[dict]]:
    """``fct_step_monthly``, ``fct_late_origin_monthly`` and their ``_by_field`` versions from the dossier
    records as served (tombstones and superseded versions included; they are dropped): ``{table: rows}``, each
    row with exactly ``COLUMNS[table]``, sorted by ``KEYS[table]``."""
    from tests.support import reference as base

    groups: dict[tuple, list[dict]] = defaultdict(list)  # (month, unit, field, office) -> steps
    origins: dict[tuple, int] = defaultdict(int)  # (month, unit, field, office) -> late dossiers
    for rec in base.current_dossiers(dossiers):
        unit = rec.get("DonViXuLy") if base.present(rec.get("DonViXuLy")) else None
        field = rec.get("MaLinhVuc") if base.present(rec.get("MaLinhVuc")) else None
        steps = dossier_steps(rec)
        for s in steps:
            groups[(_month(s["processed_at"].date()), unit, field, s["office"])].append(s)
        fact = base.classify(rec, {})
        if fact["timeliness"] == "late":
            origins[(_month(fact["finished_at"].date()), unit, field, first_late_office(steps))] += 1

    by_office: dict[tuple, list[dict]] = defaultdict(list)
    late_by_office: dict[tuple, int] = defaultdict(int)
    for (month, unit, _, office), steps in groups.items():
        by_office[(month, unit, office)] += steps
    for (month, unit, _, office), n in origins.items():
        late_by_office[(month, unit, office)] += n
    tables = {
        "fct_step_monthly": [_step_row({"month": m, "unit_code": u, "office": o}, steps)
                             for (m, u, o), steps in by_office.items()],
        "fct_late_origin_monthly": [{"month": m, "unit_code": u, "office": o, "late_dossiers": n}
                                    for (m, u, o), n in late_by_office.items()],
        "fct_step_monthly_by_field": [_step_row({"month": m, "unit_code": u, "field_code": f, "office": o}, steps)
                                      for (m, u, f, o), steps in groups.items()],
        "fct_late_origin_monthly_by_field": [{"month": m, "unit_code": u, "field_code": f, "office": o,
                                              "late_dossiers": n} for (m, u, f, o), n in origins.items()],
    }
    return {t: sorted(rows, key=lambda r, t=t: _key(r, KEYS[t])) for t, rows in tables.items()}


def first_late_offices(dossiers: Iterable[dict]) -> dict[str, tuple[date, object, str]]:
    """Per dossier resolved late: ``{MaHoSo: (month, unit_code, office)}``, the row of
    ``fct_late_origin_monthly`` it counts in."""
    from tests.support import reference as base

    out = {}
    for rec in base.current_dossiers(dossiers):
        fact = base.classify(rec, {})
        if fact["timeliness"] == "late":
            unit = rec.get("DonViXuLy") if base.present(rec.get("DonViXuLy")) else None
            out[rec.get("MaHoSo")] = (_month(fact["finished_at"].date()), unit,
                                      first_late_office(dossier_steps(rec)))
    return out

