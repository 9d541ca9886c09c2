"""Ground truth: the scenario's records and, per dossier, the data-quality rules it breaks.

The rules of ``dq-rules.md`` are evaluated here in plain Python on the API records themselves (not on
the simulator's internal columns), so the truth is exactly what any client can derive from what the
API served. ``export`` writes it all to a folder for the tests and the data team.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson

TIMESTAMP_FIELDS = ("NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra", "NgayTuChoi")
RULES = ("INC01", "INC02", "INC03", "INC04", "INC05", "INC06", "DIG01", "DIG02",
         "VAL01", "VAL02", "VAL03", "VAL04", "VAL05", "VAL06", "VAL07")
STALE_AFTER = timedelta(days=30)


def parse_timestamp(value) -> datetime | None:
    """A strict ``yyyyMMddHHmmss`` local timestamp, or None if missing or invalid."""
    if not isinstance(value, str) or len(value) != 14 or not value.isdigit():
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        return None


def _present(value) -> bool:
    return value is not None and value != ""


def _integer(value):
    """A JSON integer (2 or 2.0) as an int; anything else — a string, a boolean, 2.5 — is not one (None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def _items(value) -> list[dict]:
    """A list field's object items; a list that is null, missing or not a list is empty."""
    return [item if isinstance(item, dict) else {} for item in value] if isinstance(value, list) else []


def rules_broken(rec: dict, as_of: datetime, paper_result: dict[str, bool], unit_codes: set[str],
                 last_days: dict[str, date] | None = None) -> list[str]:
    """Rule ids of dq-rules.md that a current, non-deleted dossier record breaks at ``as_of``.

    ``paper_result`` maps each catalogue procedure code to its ``TraKetQuaGiay``; ``unit_codes`` holds
    every known unit code; ``last_days`` the last day (``HieuLucDen``) of each closed unit.
    """
    broken: list[str] = []
    ts: dict[str, datetime | None] = {}
    for f in TIMESTAMP_FIELDS:
        raw = rec.get(f)
        ts[f] = parse_timestamp(raw)
        if _present(raw) and ts[f] is None and "VAL06" not in broken:
            broken.append("VAL06")
    # Enumerations must be JSON integers: "4" or true is not status 4 (it is missing, and VAL04 flags it).
    status = _integer(rec.get("TrangThaiHoSo"))
    channel_raw = rec.get("KenhThucHien")
    channel = _integer(channel_raw)
    channel_missing = channel_raw is None or channel_raw == ""
    received_at, due_at = ts["NgayTiepNhan"], ts["NgayHenTra"]
    finished_at, returned_at = ts["NgayKetThucXuLy"], ts["NgayTra"]
    steps = _items(rec.get("QuaTrinhXuLy"))
    components = _items(rec.get("TaiLieuNop"))
    results = _items(rec.get("DanhSachGiayToKetQua"))
    proc = rec.get("MaTTHC")

    if status not in (1, 3, 5) and received_at is None:
        broken.append("INC01")
    if status in (9, 10) and finished_at is None:
        broken.append("INC02")
    if status not in (1, 3, 7) and received_at is not None and due_at is None:
        broken.append("INC03")
    if status in (4, 9, 10) and not steps:
        broken.append("INC04")
    if status in (2, 4):
        times = [t for t in [received_at, *(parse_timestamp(s.get("ThoiDiemXuLy")) for s in steps)] if t]
        if times and as_of - max(times) > STALE_AFTER:
            broken.append("INC05")
    if status == 10 and returned_at is None:
        broken.append("INC06")

    received = status not in (1, 3) and received_at is not None
    if received and (channel in (1, 3) or channel_missing) and rec.get("HoSoCoThanhPhanSoHoa") != 1 \
            and not any(c.get("DuocSoHoa") == 1 for c in components):
        broken.append("DIG01")
    if status in (9, 10) and paper_result.get(proc) is True \
            and not any(_present(r.get("DuongDanTepTinKetQua")) for r in results):
        broken.append("DIG02")

    if any(t is not None and t > as_of for t in (received_at, finished_at, returned_at)):
        broken.append("VAL01")
    if finished_at and received_at and finished_at < received_at:
        broken.append("VAL02")
    if proc not in paper_result or rec.get("DonViXuLy") not in unit_codes:
        broken.append("VAL03")
    if status not in range(1, 11) or (not channel_missing and channel not in (1, 2, 3)) \
            or _integer(rec.get("LoaiDoiTuong")) not in range(1, 5):
        broken.append("VAL04")
    if due_at and received_at and due_at < received_at:
        broken.append("VAL05")
    last_day = (last_days or {}).get(rec.get("DonViXuLy"))
    if received_at and last_day and received_at.date() > last_day:
        broken.append("VAL07")
    return sorted(broken, key=RULES.index)


def findings(records: Iterable[dict], as_of: datetime, procedures: list[dict],
             units: list[dict]) -> dict[str, list[str]]:
    """``{MaHoSo: [rule ids]}`` for every current, non-deleted dossier that breaks at least one rule."""
    paper = {p["MaTTHC"]: bool(p.get("TraKetQuaGiay")) for p in procedures}
    codes = {u["MaDonVi"] for u in units}
    last_days = {}
    for u in units:
        end = u.get("HieuLucDen")
        if isinstance(end, str) and len(end) == 8 and end.isdigit():
            with contextlib.suppress(ValueError):
                last_days[u["MaDonVi"]] = datetime.strptime(end, "%Y%m%d").date()
    out = {}
    for rec in records:
        if rec.get("DaXoa"):
            continue
        broken = rules_broken(rec, as_of, paper, codes, last_days)
        if broken:
            out[rec["MaHoSo"]] = broken
    return out


def export(province, out_dir: Path) -> dict:
    """Write the scenario's records and ground truth to ``out_dir``; returns a summary.

    Files: ``scenario.json``, ``units.json``, ``procedures.json``, ``delegations.json``,
    ``dossiers.jsonl`` (every record at the clock, tombstones included, in API order) and
    ``truth.json`` (``as_of``, per-rule counts, the rules each dossier breaks; and the processing steps'
    truth, which no record shows: ``office_defects``, the offices that are slow or never record their steps
    — ``{MaDonVi, PhongBanXuLy, defect}`` with defect ``slow``, ``silent_missing`` (its steps are missing
    from QuaTrinhXuLy) or ``silent_unnamed`` (recorded with PhongBanXuLy empty) —, ``non_recording_units``,
    the units that leave most of their dossiers' QuaTrinhXuLy empty, and ``held_up_at``, ``{MaHoSo:
    PhongBanXuLy}`` for every dossier finished late, the office of its route its delay began at, whether the
    record shows it or not). In the reorganisation scenario, ``reorganisation``: the closed units' true
    successors, those whose record omits them, the transferred dossiers and the ones the System failed to move
    (``Province.reorganisation_truth``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    units, procs = province.unit_records(), province.procedure_records()
    (out_dir / "scenario.json").write_text(json.dumps(province.scenario.at(province.clock).to_dict(), indent=2))
    for name, data in (("units", units), ("procedures", procs), ("delegations", province.delegation_records())):
        (out_dir / f"{name}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    records = []
    with (out_dir / "dossiers.jsonl").open("wb") as fh:
        for rec in province.iter_all():
            fh.write(orjson.dumps(rec) + b"\n")
            records.append(rec)
    as_of = province.clock
    truth = findings(records, as_of, procs, units)
    counts = {rule: sum(rule in r for r in truth.values()) for rule in RULES}
    office_defects = province.office_defect_records()
    non_recording = province.non_recording_units()
    held = province.held_up_at()
    summary = {"as_of": as_of.strftime("%Y%m%d%H%M%S"), "dossiers": len(records),
               "tombstones": sum(1 for r in records if r.get("DaXoa")), "rule_counts": counts,
               "office_defect_counts": dict(Counter(d["defect"] for d in office_defects)), "held_up": len(held)}
    steps_truth = {"office_defects": office_defects, "non_recording_units": non_recording, "held_up_at": held}
    if province.scenario.reorganisation:
        steps_truth["reorganisation"] = reorganised = province.reorganisation_truth()
        summary["transferred"] = len(reorganised["transferred"])
        summary["untransferred"] = len(reorganised["untransferred"])
    (out_dir / "truth.json").write_bytes(orjson.dumps({**summary, "findings": truth, **steps_truth},
                                                      option=orjson.OPT_INDENT_2))
    return summary
