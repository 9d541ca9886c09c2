"""Independent plain-Python reading of ``reorganisation.md`` over the API's unit records: each unit's lineage
(``successor_code``, ``current_unit_code``, ``current_unit_name``), whether it is in force, and the monthly
facts re-expressed on today's units (the ``*_current`` tables). Never calls the project's code.

Reading of the spec where it leaves room:
- In force as of the run: ``HieuLucTu`` missing or on/before the as-of date, and ``HieuLucDen`` missing or
  on/after it. In force in month m (the rankings): started before the month's end and not ended before its
  first day (a unit closed on day d is in force in d's month).
- ``successor_code``: the first ``DonViKeThua`` string of a unit not in force as of the run; None otherwise.
- ``current_unit_code``: follow successor codes from the unit while the unit reached is not in force; the
  unit reached when in force, else None (closed without successor, a successor the API does not list, a
  cycle).
- ``*_current``: the recorded-unit rows whose unit has a current unit, summed by (month, current unit, the
  other keys); ``unit_code`` repeats ``current_unit_code``; rates recomputed from the sums.
- Levels through the change (no published table; what the publication and the roll-ups read): a level is
  "there" in a month when a unit of that level is in force in the month (``levels_in_force``), so from July
  2025 the district level is not. The district-area roll-up of a month (``district_area_monthly``) sums a
  recorded-unit fact over a district-level unit and the communes whose parent it is (``dim_unit.district_code``
  of the latest unit records), for the districts in force in that month only — a dossier the System failed to
  transfer, handled by an old commune after its district closed, is in its commune's row, in no district area.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from fractions import Fraction


def _date(value) -> date | None:
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        try:
            return datetime.strptime(value, "%Y%m%d").date()
        except ValueError:
            return None
    return None


def _latest(units: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for u in units:
        out[u["MaDonVi"]] = u
    return out


def in_force_on(unit: dict, day: date) -> bool:
    start, end = _date(unit.get("HieuLucTu")), _date(unit.get("HieuLucDen"))
    return (start is None or start <= day) and (end is None or end >= day)


def in_force_in_month(unit: dict, month: date) -> bool:
    """In force at some time in the month starting ``month`` (reorganisation.md's ranking rule)."""
    nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    start, end = _date(unit.get("HieuLucTu")), _date(unit.get("HieuLucDen"))
    return (start is None or start < nxt) and (end is None or end >= month)


def _successors(unit: dict) -> list[str]:
    found = unit.get("DonViKeThua")
    if not isinstance(found, list):
        return []
    return [s for s in found if isinstance(s, str) and s != ""]


def lineage(units: list[dict], as_of: date) -> dict[str, dict]:
    """``{unit_code: {successor_code, current_unit_code, current_unit_name, is_in_force}}``."""
    by_code = _latest(units)
    out = {}
    for code, unit in by_code.items():
        here_in_force = in_force_on(unit, as_of)
        successors = _successors(unit)
        node, seen = code, {code}
        while True:
            n = by_code[node]
            if in_force_on(n, as_of):
                current = node
                break
            nxt = (_successors(n) or [None])[0]
            if nxt is None or nxt not in by_code or nxt in seen:
                current = None
                break
            seen.add(nxt)
            node = nxt
        out[code] = {
            "successor_code": None if here_in_force else (successors[0] if successors else None),
            "current_unit_code": current,
            "current_unit_name": by_code[current].get("TenDonVi") if current else None,
            "is_in_force": here_in_force,
        }
    return out


CURRENT = {
    "fct_timeliness_monthly": (("field_code",), ("resolved", "early", "on_time", "late")),
    "fct_online_monthly": ((), ("received", "online")),
    "fct_digitisation_monthly": ((), ("paper_received", "intake_digitised", "paper_result_resolved",
                                      "result_digitised")),
}


def _rate(num: int, den: int) -> float | None:
    return float(Fraction(num, den)) if den else None


def on_current_units(table: str, rows: list[dict], lines: dict[str, dict]) -> list[dict]:
    """The rows of a recorded-unit monthly fact re-expressed on today's units."""
    keys, counts = CURRENT[table]
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(counts))
    names = {}
    for row in rows:
        line = lines.get(row["unit_code"])
        if line is None or line["current_unit_code"] is None:
            continue
        k = (row["month"], line["current_unit_code"], *(row[c] for c in keys))
        names[k] = line["current_unit_name"]
        for i, c in enumerate(counts):
            sums[k][i] += row[c]
    out = []
    for k, values in sums.items():
        row = {"month": k[0], "current_unit_code": k[1], "unit_code": k[1], "current_unit_name": names[k],
               **dict(zip(keys, k[2:], strict=True)), **dict(zip(counts, values, strict=True))}
        if table == "fct_timeliness_monthly":
            row["on_time_rate"] = _rate(row["early"] + row["on_time"], row["resolved"])
            row["overdue_rate"] = _rate(row["late"], row["resolved"])
        elif table == "fct_online_monthly":
            row["online_rate"] = _rate(row["online"], row["received"])
        else:
            row["intake_digitisation_rate"] = _rate(row["intake_digitised"], row["paper_received"])
            row["result_digitisation_rate"] = _rate(row["result_digitised"], row["paper_result_resolved"])
        out.append(row)
    return out


def levels_in_force(units: list[dict], month: date) -> set[int]:
    """The levels (``CapDonVi``) with a unit in force in the month starting ``month``."""
    return {u.get("CapDonVi") for u in _latest(units).values()
            if isinstance(u.get("CapDonVi"), int) and in_force_in_month(u, month)}


def district_area_monthly(table: str, rows: list[dict], units: list[dict]) -> list[dict]:
    """A recorded-unit monthly fact rolled up by district area: ``{month, district_code, <counts>}`` per month and
    district in force in the month, over the district's own rows and its communes' (rows of months the district
    was not in force in are in no area)."""
    by_code = _latest(units)
    counts = CURRENT[table][1]

    def district_of(code) -> str | None:
        u = by_code.get(code)
        if u is None:
            return None
        if u.get("CapDonVi") == 2:
            return code
        parent = by_code.get(u.get("MaDonViCha"))
        return u.get("MaDonViCha") if u.get("CapDonVi") == 3 and parent and parent.get("CapDonVi") == 2 else None

    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(counts))
    for row in rows:
        district = district_of(row["unit_code"])
        if district is None or not in_force_in_month(by_code[district], row["month"]):
            continue
        for i, c in enumerate(counts):
            sums[(row["month"], district)][i] += row[c]
    return [{"month": m, "district_code": d, **dict(zip(counts, v, strict=True))} for (m, d), v in sorted(sums.items())]
