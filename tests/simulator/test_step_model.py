"""Processing steps (QuaTrinhXuLy): the offices a dossier passes, their legal deadlines, the slow offices and
the offices that never record their steps, and the truth of where late dossiers were held up.

Expectations are computed here from the API records the simulator serves and from the procedure catalogue
as served (``ThoiHanGiaiQuyet``, ``DonViThoiHan``); only the office clock that turns two times into office
hours (08:00–17:00 on working days) is the simulator's own.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import replace

import pytest

from simulator.province import Province
from simulator.timefmt import to_secs
from simulator.truth import export, parse_timestamp

NOT_NAMED, NOT_RECORDED = "(không ghi)", "(không ghi nhận)"
OFFICE_HOURS = 9 * 3600


def legal_seconds(procedure: dict) -> int:
    """The procedure's legal time in seconds of its clock: office seconds (working days of 9 office hours, or
    hours) or calendar seconds (``NGAY``)."""
    amount, unit = procedure["ThoiHanGiaiQuyet"], procedure["DonViThoiHan"]
    if unit == "GIO":
        return round(amount * 3600)
    if unit == "NGAY":
        return math.ceil(amount) * 86_400
    return math.ceil(amount) * OFFICE_HOURS


def steps_of(rec: dict) -> list[dict]:
    return [s for s in rec.get("QuaTrinhXuLy") or [] if parse_timestamp(s.get("ThoiDiemXuLy"))]


def is_late_step(step: dict) -> bool:
    end = parse_timestamp(step.get("NgayKetThucTheoQuyDinh"))
    return end is not None and parse_timestamp(step["ThoiDiemXuLy"]) > end


def office(step: dict) -> str:
    return step.get("PhongBanXuLy") or NOT_NAMED


def resolved_late(rec: dict) -> bool:
    finished, due = parse_timestamp(rec.get("NgayKetThucXuLy")), parse_timestamp(rec.get("NgayHenTra"))
    return rec.get("TrangThaiHoSo") in (9, 10) and finished is not None and due is not None \
        and finished.date() > due.date()


def first_late_office(rec: dict) -> str:
    numbered = sorted(enumerate(steps_of(rec)), key=lambda p: (not isinstance(p[1].get("BuocXuLy"), int),
                                                               p[1].get("BuocXuLy") or 0, p[0]))
    return next((office(s) for _, s in numbered if is_late_step(s)), NOT_RECORDED)


@pytest.fixture(scope="module")
def truth(calibrated_province) -> dict:
    p = calibrated_province
    return {"defects": {(d["MaDonVi"], d["PhongBanXuLy"]): d["defect"] for d in p.office_defect_records()},
            "held": p.held_up_at(), "non_recording": set(p.non_recording_units())}


@pytest.fixture(scope="module")
def live(calibrated) -> list[dict]:
    return [r for r in calibrated["records"] if not r["DaXoa"]]


def test_the_truth_has_slow_and_silent_offices(truth):
    kinds = Counter(truth["defects"].values())
    assert kinds == {"slow": 4, "silent_missing": 3, "silent_unnamed": 1}
    assert truth["held"] and truth["non_recording"]
    assert not {unit for unit, _ in truth["defects"]} & truth["non_recording"], "defects are in recording units"


def test_every_route_s_deadlines_add_up_to_the_procedure_s_legal_time(calibrated_province):
    model = calibrated_province.dossiers.offices
    records = {p["MaTTHC"]: p for p in calibrated_province.procedure_records()}
    for u, row in enumerate(model.allot_rows):
        for j, allotments in enumerate(row):
            procedure = records[calibrated_province.procedures[j].code]
            assert len(allotments) == len(model.routes[u][j]) in (3, 4)
            assert all(a > 0 for a in allotments)
            assert sum(allotments) == legal_seconds(procedure), (u, procedure["MaTTHC"])


def test_recorded_deadlines_add_up_to_the_legal_time(calibrated_province, live):
    """A finished dossier whose every step is recorded: each step starts when the previous one was processed,
    and the steps' legal spans (NgayBatDau to NgayKetThucTheoQuyDinh, in office time, or calendar time for
    NGAY) add up to the procedure's legal time."""
    model = calibrated_province.dossiers.offices
    procedures = {p["MaTTHC"]: p for p in calibrated_province.procedure_records()}
    proc_index = {p.code: j for j, p in enumerate(calibrated_province.procedures)}
    checked = Counter()
    for rec in live:
        steps, unit = rec["QuaTrinhXuLy"], calibrated_province.unit_index.get(rec["DonViXuLy"])
        if rec["TrangThaiHoSo"] not in (9, 10) or unit is None or rec["MaTTHC"] not in procedures or not steps \
                or len(steps) != len(model.routes[unit][proc_index[rec["MaTTHC"]]]):
            continue  # a route with a silent office's step missing, or no steps: nothing to add up
        procedure = procedures[rec["MaTTHC"]]
        spans = 0
        for before, step in zip([None, *steps], steps, strict=False):
            start, end = (to_secs(parse_timestamp(step[k])) for k in ("NgayBatDau", "NgayKetThucTheoQuyDinh"))
            if before is not None:
                assert step["NgayBatDau"] == before["ThoiDiemXuLy"]
            calendar = procedure["DonViThoiHan"] == "NGAY"
            spans += end - start if calendar else model.clock.to_work1(end) - model.clock.to_work1(start)
        assert spans == legal_seconds(procedure), rec["MaHoSo"]
        checked[procedure["DonViThoiHan"]] += 1
    assert checked["NGAY_LAM_VIEC"] > 1000 and checked["NGAY"] > 10 and checked["GIO"] > 10, checked


def test_offices_are_real_by_unit_type_and_field(calibrated, live, truth):
    level = {u["MaDonVi"]: u["CapDonVi"] for u in calibrated["units"]}
    routes = defaultdict(Counter)
    defective = {unit for unit, _ in truth["defects"]}
    for rec in live:
        unit = rec["DonViXuLy"]
        if rec["TrangThaiHoSo"] not in (9, 10) or unit in defective or not rec["QuaTrinhXuLy"]:
            continue
        names = tuple(s["PhongBanXuLy"] for s in rec["QuaTrinhXuLy"])
        routes[(level.get(unit), rec["TenLinhVuc"])][names] += 1
    desk = "Bộ phận Tiếp nhận và Trả kết quả"
    district_land = routes[(2, "Đất đai")]
    assert district_land and all(names[:3] == (desk, "Chi nhánh Văn phòng Đăng ký đất đai",
                                               "Phòng Tài nguyên và Môi trường")
                                 and names[3].startswith("Lãnh đạo UBND ") and len(names) == 4
                                 for names in district_land)
    civil_status = routes[(3, "Hộ tịch")]
    assert civil_status and all(names[:2] == (desk, "Công chức Tư pháp – Hộ tịch") and len(names) == 3
                                and names[2].startswith("Chủ tịch UBND ") for names in civil_status)
    provincial = routes[(1, "Đất đai")]
    assert provincial and all(names[0].endswith("Trung tâm Phục vụ hành chính công tỉnh") for names in provincial)


def test_slow_offices_overrun_their_deadlines_far_more_than_the_others(live, truth):
    steps, late = Counter(), Counter()
    for rec in live:
        for s in steps_of(rec):
            key = (rec["DonViXuLy"], office(s))
            steps[key] += 1
            late[key] += is_late_step(s)
    rate = {k: late[k] / n for k, n in steps.items() if n >= 50}
    slow = [k for k, d in truth["defects"].items() if d == "slow"]
    ordinary = [r for k, r in rate.items() if k not in truth["defects"] and k[1] != NOT_NAMED]
    median = statistics.median(ordinary)
    assert all(k in rate for k in slow)
    for k in slow:
        assert rate[k] > 5 * median, (k, rate[k], median)
    # The district offices (where late dossiers are) are the worst offices of the province.
    worst = sorted(rate, key=rate.get, reverse=True)[:3]
    assert {unit for unit, _ in worst} <= {unit for unit, _ in slow}


def test_silent_offices_never_appear_in_the_records(live, truth):
    names_by_unit = defaultdict(Counter)
    for rec in live:
        for s in rec["QuaTrinhXuLy"]:
            names_by_unit[rec["DonViXuLy"]][s["PhongBanXuLy"]] += 1
    for (unit, name), defect in truth["defects"].items():
        seen = names_by_unit[unit]
        if defect == "silent_missing":
            assert seen[name] == 0 and sum(seen.values()) > 100, (unit, name)
        elif defect == "silent_unnamed":
            assert seen[name] == 0 and seen[None] + seen[""] > 50, (unit, name)
        else:
            assert seen[name] > 50


def test_late_dossiers_are_held_up_where_the_truth_says(live, truth):
    """Every dossier the records show resolved late: its first late step names the office the truth says
    its delay began at — unless that office does not record its steps (no late step: '(không ghi nhận)';
    steps without an office name: '(không ghi)') or the dossier has no steps at all."""
    outcome = Counter()
    for rec in live:
        if not resolved_late(rec) or rec["MaHoSo"] not in truth["held"]:
            continue
        held = truth["held"][rec["MaHoSo"]]
        defect = truth["defects"].get((rec["DonViXuLy"], held))
        got = first_late_office(rec)
        if not rec["QuaTrinhXuLy"]:
            expected, why = NOT_RECORDED, "no steps"
        elif defect == "silent_missing":
            expected, why = NOT_RECORDED, defect
        elif defect == "silent_unnamed":
            expected, why = NOT_NAMED, defect
        else:
            expected, why = held, "recorded"
        assert got == expected, (rec["MaHoSo"], held, defect, got)
        outcome[why] += 1
    assert outcome["recorded"] > 5000 and outcome["no steps"] > 100
    assert outcome["silent_missing"] > 20 and outcome["silent_unnamed"] > 20, outcome
    # Dossiers held up at a slow office are the most frequent single origin of each slow district's delays.
    late_by_unit = defaultdict(Counter)
    for code, office_name in truth["held"].items():
        late_by_unit[code.rsplit("-", 2)[0]][office_name] += 1
    for (unit, name), defect in truth["defects"].items():
        if defect == "slow" and unit in late_by_unit and sum(late_by_unit[unit].values()) > 50:
            assert late_by_unit[unit].most_common(1)[0][0] == name


def test_the_steps_truth_is_deterministic(small_province):
    again = Province(small_province.scenario)
    assert again.office_defect_records() == small_province.office_defect_records()
    assert again.non_recording_units() == small_province.non_recording_units()
    assert again.held_up_at() == small_province.held_up_at()
    other = Province(replace(small_province.scenario, seed=small_province.scenario.seed + 1))
    assert other.held_up_at() != small_province.held_up_at()


def test_the_truth_is_exported(small_province, tmp_path):
    summary = export(small_province, tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["office_defects"] == small_province.office_defect_records()
    assert {d["defect"] for d in truth["office_defects"]} == {"slow", "silent_missing", "silent_unnamed"}
    assert truth["non_recording_units"] == small_province.non_recording_units()
    assert summary["held_up"] == len(truth["held_up_at"]) > 0
    assert summary["office_defect_counts"] == {"slow": 4, "silent_missing": 3, "silent_unnamed": 1}
    records = {json.loads(line)["MaHoSo"]: json.loads(line) for line in (tmp_path / "dossiers.jsonl").open()}
    for code, office_name in truth["held_up_at"].items():
        rec = records[code]
        assert not rec["DaXoa"] and rec["TrangThaiHoSo"] in (9, 10)
        assert office_name and office_name != "Bộ phận Tiếp nhận và Trả kết quả"
