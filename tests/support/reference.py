"""Reference implementation of the published tables (marts.md), in plain Python, from the API records.

This module is the executable statement of ``metrics.md``: the end-to-end tests compare every row of every
published table that dbt builds in PostgreSQL with what ``compute_marts`` computes here, independently, from
the same JSON records the API served and the same accepted finance rows. It imports nothing from the
warehouse code and nothing from the simulator.

Interpretations where the spec is not explicit (the most literal reading was chosen each time):

Records
- A dossier counts unless ``DaXoa`` is true (a missing ``DaXoa`` counts as false). If the same ``MaHoSo``
  appears more than once (an API page overlap), the version with the greatest ``NgayCapNhat`` (the raw
  ``yyyyMMddHHmmss`` string; the later one in the list on a tie) is the current one; if that is a
  tombstone the dossier is gone. Reference lists (units, procedures, delegations) keep the last record per key.
- Timestamps: a strict ``yyyyMMddHHmmss`` string of 14 ASCII digits that is a real local date-time;
  anything else (null, "", another type, wrong length, non-digits, 30 February, month 13, hour 24,
  second 60) is missing for every metric — the semantics of ``simulator.truth.parse_timestamp`` (the
  VAL06 check). Dates (``HieuLucTu``, ``HieuLucDen``, ``NgayQuyetDinh``, ``NgayKeHoach``) likewise are
  strict ``yyyyMMdd`` (8 ASCII digits, a real date) or missing. Timestamps in the future (VAL01) are valid
  and are counted where they fall.
- Missing means null or "" everywhere (procedure-api.md): ``unit_code``, ``procedure_code``,
  ``field_code`` and ``channel`` are None for "".
- ``TrangThaiHoSo`` and ``KenhThucHien`` are compared literally as integers: only a JSON number with no
  fractional part (2 or 2.0; not a bool, not a string such as "9", not 2.5) is an integer and can be in a
  set; anything else is in no set. So a missing or non-integer status is "not in {1, 3}" (a dossier with
  such a status and a valid ``NgayTiepNhan`` is received — the same Python semantics as
  ``simulator.truth``; in SQL ``coalesce(status not in (1, 3), true)``). A channel other than 1, 2, 3 or
  missing (e.g. 4, VAL04, or a string "2") is neither online nor paper intake; "missing" is null or "".
  The ``channel`` and ``status`` columns hold the integer, or None when the value is not an integer.
- ``HoSoCoThanhPhanSoHoa`` = 1 and ``DuocSoHoa`` = 1 are value comparisons with 1 (as in
  ``simulator.truth``: 1, 1.0 and JSON true are 1; "1" is not). A result link is "non-empty" when it is
  neither null nor "". ``TraKetQuaGiay`` is taken as true when truthy; a dossier whose ``MaTTHC`` is not
  in the catalogue has no paper-result procedure.

fct_dossier
- ``is_received`` / ``is_resolved``: membership of R / D. ``timeliness`` is null unless resolved.
- ``is_online`` = ``KenhThucHien`` = 2, whether or not the dossier is received (the online count of
  ``fct_online_monthly`` is then ``is_received and is_online``). ``is_paper_intake`` = received and
  channel 1, 3 or missing (the set P).
- ``intake_digitised`` is a boolean for every dossier (the metric's definition of a "digitised" dossier
  does not depend on P); only P dossiers are counted in ``fct_digitisation_monthly``.
- ``result_digitised`` is null unless the dossier is in D (resolved: status 9/10 AND a valid
  ``NgayKetThucXuLy``) and its procedure has ``TraKetQuaGiay`` true; otherwise a boolean.
- ``channel``/``status``: the integer value (None when missing or not an integer); timestamps parsed (None
  when invalid).

Monthly facts
- Keys use the dossier's ``DonViXuLy`` as given, including a code that is not a known unit (VAL03), and
  the dossier's own ``MaLinhVuc``. A row exists for every key with a non-zero count.
- ``fct_digitisation_monthly``: ``paper_received``/``intake_digitised`` by receipt month,
  ``paper_result_resolved``/``result_digitised`` by resolution month; a (month, unit) row exists if any
  of the four counts is non-zero, the others are 0 and a rate with a zero denominator is None.

Pending overdue
- One row set for ``as_of_date`` = the date of ``as_of``; a row per unit with ``in_processing`` > 0;
  overdue when ``d(NgayHenTra)`` < ``as_of_date`` (strictly; due on the as-of date is not overdue).

Delegation
- ``is_active`` = ``TrangThai`` is not ``HET_HIEU_LUC`` (status only; ``HieuLucDen`` is not consulted).
  ``is_behind_plan`` is false when ``NgayKeHoach`` is missing.
- ``fct_delegation_usage``: one row per procedure with at least one done item, even when no dossier was
  received since (``received`` 0, ``usage_rate`` None). Received = dossiers of p (``MaTTHC``) in R with
  ``d(NgayTiepNhan)`` >= ``since_date``; by delegates = those whose ``DonViXuLy`` is the receiving unit of
  one of p's done items. If none of p's done items has a decision date, ``since_date`` is None and nothing
  is counted (``received`` 0) — what ``d >= null`` does in SQL.

Disbursement
- Every row of every effective report date, as loaded (no plan-year filter: "a plan year Y is reported
  up to 31 January Y+1" and "a month's figure is the latest report date" are roll-up rules, and the
  workbook only holds those years anyway). ``is_carried_over`` = ``LaKeoDai`` = 1. Amounts stay numbers
  (int when integral). A rate is None when its plan is 0 (or missing).

Ranking (rpt_monthly_ranking)
- Months are resolution months; ``resolved`` and ``on_time_rate`` are summed over every field of the unit.
  ``level`` is the ``CapDonVi`` of the handling unit in the unit list; a ``DonViXuLy`` that is not a known
  unit has no level and is not ranked. A unit is ranked when resolved >= ``min_resolved``.
- ``rank`` is a dense position 1..n within (month, level) (row_number, no shared ranks): on-time rate
  ascending (compared exactly, as fractions), then resolved descending, then ``unit_code`` ascending.
- ``below_target`` = on-time rate < 0.95 exactly (19/20 is not below target).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

from tests.support import reference_index, reference_steps, reference_units

COLUMNS: dict[str, tuple[str, ...]] = {
    "dim_unit": ("unit_code", "unit_name", "level", "unit_type", "parent_code", "district_code", "valid_from",
                 "valid_to", "successor_code", "current_unit_code", "current_unit_name", "is_in_force"),
    "dim_procedure": ("procedure_code", "procedure_name", "field_code", "field_name", "online_level",
                      "legal_duration", "duration_unit", "returns_paper_result"),
    "fct_dossier": ("dossier_id", "unit_code", "procedure_code", "field_code", "channel", "status",
                    "submitted_at", "received_at", "due_at", "finished_at", "returned_at", "is_received",
                    "is_resolved", "timeliness", "is_online", "is_paper_intake", "intake_digitised",
                    "result_digitised", "updated_at"),
    "fct_timeliness_monthly": ("month", "unit_code", "field_code", "resolved", "early", "on_time", "late",
                               "on_time_rate", "overdue_rate"),
    "fct_online_monthly": ("month", "unit_code", "received", "online", "online_rate"),
    "fct_digitisation_monthly": ("month", "unit_code", "paper_received", "intake_digitised",
                                 "intake_digitisation_rate", "paper_result_resolved", "result_digitised",
                                 "result_digitisation_rate"),
    "fct_pending_overdue": ("as_of_date", "unit_code", "in_processing", "pending_overdue"),
    "fct_delegation_progress": ("as_of_date", "delegation_id", "plan", "decision_no", "decision_date", "type",
                                "procedure_code", "delegating_unit_code", "receiving_unit_code", "status",
                                "planned_date", "is_active", "is_done", "is_behind_plan"),
    "fct_delegation_usage": ("procedure_code", "since_date", "received", "received_by_delegates", "usage_rate"),
    "fct_disbursement": ("report_date", "project_code", "investor_unit_code", "funding_source", "plan_year",
                         "is_carried_over", "plan_pm", "plan_province", "disbursed_cumulative", "rate_vs_pm",
                         "rate_vs_province"),
    "rpt_monthly_ranking": ("month", "level", "unit_code", "unit_name", "resolved", "on_time_rate", "rank",
                            "below_target"),
    # reorganisation.md: the monthly facts on today's units (tests/support/reference_units.py).
    "fct_timeliness_monthly_current": ("month", "current_unit_code", "unit_code", "current_unit_name", "field_code",
                                       "resolved", "early", "on_time", "late", "on_time_rate", "overdue_rate"),
    "fct_online_monthly_current": ("month", "current_unit_code", "unit_code", "current_unit_name", "received",
                                   "online", "online_rate"),
    "fct_digitisation_monthly_current": ("month", "current_unit_code", "unit_code", "current_unit_name",
                                         "paper_received", "intake_digitised", "intake_digitisation_rate",
                                         "paper_result_resolved", "result_digitised", "result_digitisation_rate"),
}

# Natural keys of each table (for comparisons and for the order of the rows returned).
KEYS: dict[str, tuple[str, ...]] = {
    "dim_unit": ("unit_code",),
    "dim_procedure": ("procedure_code",),
    "fct_dossier": ("dossier_id",),
    "fct_timeliness_monthly": ("month", "unit_code", "field_code"),
    "fct_online_monthly": ("month", "unit_code"),
    "fct_digitisation_monthly": ("month", "unit_code"),
    "fct_pending_overdue": ("as_of_date", "unit_code"),
    "fct_delegation_progress": ("as_of_date", "delegation_id"),
    "fct_delegation_usage": ("procedure_code",),
    "fct_disbursement": ("report_date", "project_code", "funding_source"),
    "rpt_monthly_ranking": ("month", "level", "unit_code"),
    "fct_timeliness_monthly_current": ("month", "current_unit_code", "field_code"),
    "fct_online_monthly_current": ("month", "current_unit_code"),
    "fct_digitisation_monthly_current": ("month", "current_unit_code"),
}
COLUMNS.update(reference_index.COLUMNS)  # the service index (service-index.md)
KEYS.update(reference_index.KEYS)
COLUMNS.update(reference_steps.COLUMNS)  # processing steps (metrics.md, where dossiers are held up)
KEYS.update(reference_steps.KEYS)

NOT_RECEIVED_STATUSES = (1, 3)
RESOLVED_STATUSES = (9, 10)
IN_PROCESSING_STATUSES = (2, 4)
PAPER_CHANNELS = (1, 3)
ONLINE_CHANNEL = 2
DONE_DELEGATION = ("DA_CAU_HINH", "DANG_THUC_HIEN")
EXPIRED_DELEGATION = "HET_HIEU_LUC"
ON_TIME_TARGET = Fraction(95, 100)
DEFAULT_MIN_RESOLVED = 10

_TIMESTAMP = re.compile(r"[0-9]{14}")
_DATE = re.compile(r"[0-9]{8}")


# ----- value semantics ---------------------------------------------------------------------------------------
def parse_timestamp(value) -> datetime | None:
    """A strict ``yyyyMMddHHmmss`` local timestamp, or None when missing or invalid (VAL06)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    try:
        return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:12]),
                        int(value[12:14]))
    except ValueError:
        return None


def parse_date(value) -> date | None:
    """A strict ``yyyyMMdd`` date, or None when missing or invalid."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def present(value) -> bool:
    """Not missing: the API sends a missing value as null or as the empty string."""
    return value is not None and value != ""


def _blank_to_none(value):
    return value if present(value) else None


def as_integer(value) -> int | None:
    """A JSON number with no fractional part as an int (2 and 2.0); None for anything else (a bool, a
    string such as "9", 2.5, null)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and _integral(value):
        return int(value)
    return None


def _integral(value: float | Decimal) -> bool:
    try:
        return value == int(value)
    except (ValueError, OverflowError, ArithmeticError):  # nan, inf
        return False


def _is_int_in(value, choices: tuple[int, ...]) -> bool:
    """Literal membership of an integer value (a bool or a string such as "9" is in no set)."""
    number = as_integer(value)
    return number is not None and number in choices


def month_of(day: date) -> date:
    return day.replace(day=1)


def rate(numerator: int, denominator) -> float | None:
    """numerator / denominator as a float; None when the denominator is 0 or missing."""
    if denominator is None or denominator == 0 or numerator is None:
        return None
    return float(Fraction(numerator) / Fraction(denominator))


def _number(value):
    """A workbook amount as loaded: int when integral, else float (Decimal is not used in the output)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        return int(value) if _integral(value) else float(value)
    return value


def _sort_key(row: dict, keys: tuple[str, ...]) -> tuple:
    return tuple((row[k] is None, row[k] if row[k] is not None else 0) for k in keys)


def _sorted(table: str, rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: _sort_key(r, KEYS[table]))


# ----- current dossiers --------------------------------------------------------------------------------------
def current_dossiers(dossiers: Iterable[dict]) -> list[dict]:
    """The current, non-deleted dossier records: the latest version per ``MaHoSo``, tombstones dropped."""
    latest: dict[str, tuple[str, dict]] = {}
    for rec in dossiers:
        key = rec.get("MaHoSo")
        stamp = rec.get("NgayCapNhat") if isinstance(rec.get("NgayCapNhat"), str) else ""
        held = latest.get(key)
        if held is None or stamp >= held[0]:
            latest[key] = (stamp, rec)
    return [rec for _, rec in latest.values() if not rec.get("DaXoa")]


def classify(rec: dict, paper_result: dict[str, bool]) -> dict:
    """The ``fct_dossier`` row of a current dossier, plus the dates the facts group by (keys ``_*``)."""
    status = rec.get("TrangThaiHoSo")
    channel = rec.get("KenhThucHien")
    submitted_at = parse_timestamp(rec.get("NgayNopHoSo"))
    received_at = parse_timestamp(rec.get("NgayTiepNhan"))
    due_at = parse_timestamp(rec.get("NgayHenTra"))
    finished_at = parse_timestamp(rec.get("NgayKetThucXuLy"))
    returned_at = parse_timestamp(rec.get("NgayTra"))
    procedure = _blank_to_none(rec.get("MaTTHC"))

    is_received = not _is_int_in(status, NOT_RECEIVED_STATUSES) and received_at is not None
    is_resolved = _is_int_in(status, RESOLVED_STATUSES) and finished_at is not None
    is_online = _is_int_in(channel, (ONLINE_CHANNEL,))
    is_paper_intake = is_received and (not present(channel) or _is_int_in(channel, PAPER_CHANNELS))
    intake_digitised = rec.get("HoSoCoThanhPhanSoHoa") == 1 or any(
        isinstance(c, dict) and c.get("DuocSoHoa") == 1 for c in (rec.get("TaiLieuNop") or []))

    timeliness = None
    if is_resolved:
        if due_at is None:
            timeliness = "on_time"
        elif finished_at.date() < due_at.date():
            timeliness = "early"
        elif finished_at.date() == due_at.date():
            timeliness = "on_time"
        else:
            timeliness = "late"

    result_digitised = None
    if is_resolved and paper_result.get(procedure, False):
        result_digitised = any(isinstance(r, dict) and present(r.get("DuongDanTepTinKetQua"))
                               for r in (rec.get("DanhSachGiayToKetQua") or []))

    return {
        "dossier_id": rec.get("MaHoSo"),
        "unit_code": _blank_to_none(rec.get("DonViXuLy")),
        "procedure_code": procedure,
        "field_code": _blank_to_none(rec.get("MaLinhVuc")),
        "channel": as_integer(channel),
        "status": as_integer(status),
        "submitted_at": submitted_at,
        "received_at": received_at,
        "due_at": due_at,
        "finished_at": finished_at,
        "returned_at": returned_at,
        "is_received": is_received,
        "is_resolved": is_resolved,
        "timeliness": timeliness,
        "is_online": is_online,
        "is_paper_intake": is_paper_intake,
        "intake_digitised": intake_digitised,
        "result_digitised": result_digitised,
        "updated_at": parse_timestamp(rec.get("NgayCapNhat")),
        "_in_processing": _is_int_in(status, IN_PROCESSING_STATUSES),
    }


# ----- tables ------------------------------------------------------------------------------------------------
def _last_by(records: Iterable[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rec in records:
        out[rec.get(key)] = rec
    return out


def dim_unit(units: list[dict], as_of: date) -> list[dict]:
    by_code = _last_by(units, "MaDonVi")
    lines = reference_units.lineage(units, as_of)
    rows = []
    for code, u in by_code.items():
        level = u.get("CapDonVi")
        parent = _blank_to_none(u.get("MaDonViCha"))
        if level == 2:
            district = code
        elif level == 3 and parent in by_code and by_code[parent].get("CapDonVi") == 2:
            district = parent
        else:
            district = None
        rows.append({
            "unit_code": code,
            "unit_name": u.get("TenDonVi"),
            "level": level,
            "unit_type": u.get("LoaiDonVi"),
            "parent_code": parent,
            "district_code": district,
            "valid_from": parse_date(u.get("HieuLucTu")),
            "valid_to": parse_date(u.get("HieuLucDen")),
            **lines[code],
        })
    return _sorted("dim_unit", rows)


def dim_procedure(procedures: list[dict]) -> list[dict]:
    rows = [{
        "procedure_code": code,
        "procedure_name": p.get("TenTTHC"),
        "field_code": _blank_to_none(p.get("MaLinhVuc")),
        "field_name": p.get("TenLinhVuc"),
        "online_level": p.get("MucDo"),
        "legal_duration": p.get("ThoiHanGiaiQuyet"),
        "duration_unit": p.get("DonViThoiHan"),
        "returns_paper_result": bool(p.get("TraKetQuaGiay")),
    } for code, p in _last_by(procedures, "MaTTHC").items()]
    return _sorted("dim_procedure", rows)


def _timeliness_monthly(facts: list[dict]) -> list[dict]:
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: {"resolved": 0, "early": 0, "on_time": 0, "late": 0})
    for f in facts:
        if f["is_resolved"]:
            c = counts[(month_of(f["finished_at"].date()), f["unit_code"], f["field_code"])]
            c["resolved"] += 1
            c[f["timeliness"]] += 1
    return _sorted("fct_timeliness_monthly", ({
        "month": month, "unit_code": unit, "field_code": field, **c,
        "on_time_rate": rate(c["early"] + c["on_time"], c["resolved"]),
        "overdue_rate": rate(c["late"], c["resolved"]),
    } for (month, unit, field), c in counts.items()))


def _online_monthly(facts: list[dict]) -> list[dict]:
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: {"received": 0, "online": 0})
    for f in facts:
        if f["is_received"]:
            c = counts[(month_of(f["received_at"].date()), f["unit_code"])]
            c["received"] += 1
            c["online"] += f["is_online"]
    return _sorted("fct_online_monthly", ({
        "month": month, "unit_code": unit, **c, "online_rate": rate(c["online"], c["received"]),
    } for (month, unit), c in counts.items()))


def _digitisation_monthly(facts: list[dict]) -> list[dict]:
    counts: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"paper_received": 0, "intake_digitised": 0, "paper_result_resolved": 0, "result_digitised": 0})
    for f in facts:
        if f["is_paper_intake"]:
            c = counts[(month_of(f["received_at"].date()), f["unit_code"])]
            c["paper_received"] += 1
            c["intake_digitised"] += f["intake_digitised"]
        if f["result_digitised"] is not None:  # exactly the set D′
            c = counts[(month_of(f["finished_at"].date()), f["unit_code"])]
            c["paper_result_resolved"] += 1
            c["result_digitised"] += f["result_digitised"]
    return _sorted("fct_digitisation_monthly", ({
        "month": month, "unit_code": unit,
        "paper_received": c["paper_received"], "intake_digitised": c["intake_digitised"],
        "intake_digitisation_rate": rate(c["intake_digitised"], c["paper_received"]),
        "paper_result_resolved": c["paper_result_resolved"], "result_digitised": c["result_digitised"],
        "result_digitisation_rate": rate(c["result_digitised"], c["paper_result_resolved"]),
    } for (month, unit), c in counts.items()))


def _pending_overdue(facts: list[dict], as_of_date: date) -> list[dict]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"in_processing": 0, "pending_overdue": 0})
    for f in facts:
        if f["_in_processing"]:
            c = counts[f["unit_code"]]
            c["in_processing"] += 1
            c["pending_overdue"] += f["due_at"] is not None and f["due_at"].date() < as_of_date
    return _sorted("fct_pending_overdue", ({"as_of_date": as_of_date, "unit_code": unit, **c}
                                           for unit, c in counts.items()))


def _delegation_progress(delegations: list[dict], as_of_date: date) -> list[dict]:
    rows = []
    for item_id, d in _last_by(delegations, "MaUyQuyen").items():
        status = d.get("TrangThai")
        planned = parse_date(d.get("NgayKeHoach"))
        is_done = status in DONE_DELEGATION
        is_active = status != EXPIRED_DELEGATION
        rows.append({
            "as_of_date": as_of_date,
            "delegation_id": item_id,
            "plan": d.get("KeHoach"),
            "decision_no": _blank_to_none(d.get("SoQuyetDinh")),
            "decision_date": parse_date(d.get("NgayQuyetDinh")),
            "type": d.get("LoaiUyQuyen"),
            "procedure_code": _blank_to_none(d.get("MaTTHC")),
            "delegating_unit_code": _blank_to_none(d.get("DonViUyQuyen")),
            "receiving_unit_code": _blank_to_none(d.get("DonViNhanUyQuyen")),
            "status": status,
            "planned_date": planned,
            "is_active": is_active,
            "is_done": is_done,
            "is_behind_plan": is_active and not is_done and planned is not None and planned < as_of_date,
        })
    return _sorted("fct_delegation_progress", rows)


def _delegation_usage(progress: list[dict], facts: list[dict]) -> list[dict]:
    done: dict[str, list[dict]] = defaultdict(list)
    for item in progress:
        if item["is_done"]:
            done[item["procedure_code"]].append(item)
    rows = []
    for procedure, items in done.items():
        decided = [i["decision_date"] for i in items if i["decision_date"] is not None]
        since = min(decided) if decided else None
        delegates = {i["receiving_unit_code"] for i in items}
        received = [f for f in facts if f["is_received"] and f["procedure_code"] == procedure
                    and since is not None and f["received_at"].date() >= since]
        by_delegates = sum(1 for f in received if f["unit_code"] in delegates)
        rows.append({"procedure_code": procedure, "since_date": since, "received": len(received),
                     "received_by_delegates": by_delegates, "usage_rate": rate(by_delegates, len(received))})
    return _sorted("fct_delegation_usage", rows)


def _disbursement(finance_rows: dict[date, list[dict]]) -> list[dict]:
    rows = []
    for report_date, workbook in finance_rows.items():
        for r in workbook:
            plan_pm, plan_province = _number(r.get("KeHoachTTgGiao")), _number(r.get("KeHoachUBNDGiao"))
            disbursed = _number(r.get("GiaiNganLuyKe"))
            rows.append({
                "report_date": report_date,
                "project_code": r.get("MaDuAn"),
                "investor_unit_code": r.get("ChuDauTu"),
                "funding_source": r.get("NguonVon"),
                "plan_year": _number(r.get("NamKeHoach")),
                "is_carried_over": _number(r.get("LaKeoDai")) == 1,
                "plan_pm": plan_pm,
                "plan_province": plan_province,
                "disbursed_cumulative": disbursed,
                "rate_vs_pm": rate(disbursed, plan_pm),
                "rate_vs_province": rate(disbursed, plan_province),
            })
    return _sorted("fct_disbursement", rows)


def _ranking(facts: list[dict], units: dict[str, dict], min_resolved: int) -> list[dict]:
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])  # (month, unit) -> [resolved, early+on_time]
    for f in facts:
        if f["is_resolved"]:
            t = totals[(month_of(f["finished_at"].date()), f["unit_code"])]
            t[0] += 1
            t[1] += f["timeliness"] != "late"
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for (month, unit), (resolved, good) in totals.items():
        if unit not in units or resolved < min_resolved:
            continue
        if not reference_units.in_force_in_month(units[unit], month):  # reorganisation.md
            continue
        groups[(month, units[unit].get("CapDonVi"))].append((Fraction(good, resolved), resolved, unit))
    rows = []
    for (month, level), members in groups.items():
        members.sort(key=lambda m: (m[0], -m[1], m[2]))
        for position, (on_time, resolved, unit) in enumerate(members, start=1):
            rows.append({"month": month, "level": level, "unit_code": unit, "unit_name": units[unit].get("TenDonVi"),
                         "resolved": resolved, "on_time_rate": float(on_time), "rank": position,
                         "below_target": on_time < ON_TIME_TARGET})
    return _sorted("rpt_monthly_ranking", rows)


def fct_dossier_rows(dossiers: Iterable[dict], procedures: list[dict]) -> list[dict]:
    """Internal ``fct_dossier`` rows (with the helper keys ``_*``) of the current, non-deleted dossiers."""
    paper = {code: bool(p.get("TraKetQuaGiay")) for code, p in _last_by(procedures, "MaTTHC").items()}
    return [classify(rec, paper) for rec in current_dossiers(dossiers)]


def compute_marts(dossiers: list[dict], units: list[dict], procedures: list[dict], delegations: list[dict],
                  finance_rows: dict[date, list[dict]], as_of: datetime,
                  min_resolved: int = DEFAULT_MIN_RESOLVED) -> dict[str, list[dict]]:
    """Every published table of marts.md except the data-quality ones, computed from the API records.

    ``dossiers``: the dossier records as served (tombstones included, they are dropped); ``units``,
    ``procedures``, ``delegations``: the reference records; ``finance_rows``: the effective accepted
    workbook rows per report date; ``as_of``: the run's as-of time (its date is the as-of date of
    ``fct_pending_overdue`` and ``fct_delegation_progress``). Returns ``{table: rows}``, each row a dict with
    exactly the columns of ``COLUMNS[table]``, sorted by ``KEYS[table]``.
    """
    as_of_date = as_of.date() if isinstance(as_of, datetime) else as_of
    facts = fct_dossier_rows(dossiers, procedures)
    unit_by_code = _last_by(units, "MaDonVi")
    progress = _delegation_progress(delegations, as_of_date)
    out = {
        "dim_unit": dim_unit(units, as_of_date),
        "dim_procedure": dim_procedure(procedures),
        "fct_dossier": _sorted("fct_dossier", ({c: f[c] for c in COLUMNS["fct_dossier"]} for f in facts)),
        "fct_timeliness_monthly": _timeliness_monthly(facts),
        "fct_online_monthly": _online_monthly(facts),
        "fct_digitisation_monthly": _digitisation_monthly(facts),
        "fct_pending_overdue": _pending_overdue(facts, as_of_date),
        "fct_delegation_progress": progress,
        "fct_delegation_usage": _delegation_usage(progress, facts),
        "fct_disbursement": _disbursement(finance_rows),
        "rpt_monthly_ranking": _ranking(facts, unit_by_code, min_resolved),
    }
    lines = reference_units.lineage(units, as_of_date)
    for table in reference_units.CURRENT:
        current = reference_units.on_current_units(table, out[table], lines)
        out[f"{table}_current"] = _sorted(f"{table}_current",
                                          ({c: r[c] for c in COLUMNS[f"{table}_current"]} for r in current))
    out.update(reference_index.compute_index(dossiers, units, procedures, as_of))
    out.update(reference_steps.compute_steps(dossiers))
    for table, rows in out.items():
        for row in rows:
            assert tuple(row) == COLUMNS[table], (table, tuple(row))
    return out
