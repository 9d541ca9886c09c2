"""The reorganisation scenario (``Scenario.reorganisation``, reorganisation.md): Quảng Nam's area through
1 July 2025, checked on the records the simulator serves against the ``vietnamadminunits`` package read here
independently — the crosswalk as the package says, divided communes, no district-level unit from the day, open
dossiers transferred, VAL07 exactly where the System failed to transfer, the delegation plan and the workbooks
on the new units, determinism — and the default scenario as it always was.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, datetime
from importlib import resources

import orjson
import pytest

from simulator.__main__ import investor_handover, investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.reorganisation import crosswalk
from simulator.scenario import Scenario
from simulator.truth import export, findings, parse_timestamp
from simulator.units import build_units

CLOCK = datetime(2025, 9, 1, 1, 0)
SCENARIO = Scenario(seed=13, start=date(2024, 11, 1), end=date(2025, 8, 31), scale=0.01, clock=CLOCK,
                    reorganisation=True)
DAY = "20250701"
LAST_DAY = "20250630"
DATA = resources.files("vietnamadminunits") / "data"


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


@pytest.fixture(scope="module")
def province() -> Province:
    return Province(SCENARIO)


@pytest.fixture(scope="module")
def served(province) -> dict:
    province.set_clock(CLOCK)
    return {"records": list(province.iter_all()), "units": province.unit_records(),
            "procedures": province.procedure_records()}


def package_crosswalk(legacy: str, new_key: str) -> dict[str, list[str]]:
    """The package's successors of each legacy commune (by statistics code), the default one first."""
    with sqlite3.connect(str(DATA / "dataset.db")) as conn:
        old = {f"{p}_{d}_{w}": code for p, d, w, code in conn.execute(
            "SELECT provinceKey, districtKey, wardKey, wardCode FROM admin_units_legacy WHERE provinceCode = ?",
            (legacy,))}
        new = dict(conn.execute("SELECT wardKey, wardCode FROM admin_units WHERE provinceKey = ?", (new_key,)))
    data = json.loads((DATA / "converter_2025.json").read_text())
    out: dict[str, list[str]] = defaultdict(list)
    for key, olds in data["DICT_PROVINCE_WARD_NO_DIVIDED"][new_key].items():
        for o in olds:
            if o in old:
                out[old[o]].append(new[key])
    for o, parts in data["DICT_PROVINCE_WARD_DIVIDED"].get(new_key, {}).items():
        if o in old:
            out[old[o]] += [new[p["newWardKey"]] for p in parts if p["isDefaultNewWard"]]
            out[old[o]] += [new[p["newWardKey"]] for p in parts if not p["isDefaultNewWard"]]
    return dict(out)


def test_old_communes_close_into_the_new_ones_as_the_package_says(served):
    units = {u["MaDonVi"]: u for u in served["units"]}
    expected = package_crosswalk("49", "thanhphodanang")
    old = [u for u in units.values() if u["LoaiDonVi"] == "UBND_XA" and u["HieuLucTu"] < DAY]
    new = [u for u in units.values() if u["LoaiDonVi"] == "UBND_XA" and u["HieuLucTu"] == DAY]
    assert len(old) == 233 and len(new) == len({c for s in expected.values() for c in s}) == 78
    for u in old:
        assert u["HieuLucDen"] == LAST_DAY
        assert [units[s]["MaHanhChinh"] for s in u["DonViKeThua"]] == expected[u["MaHanhChinh"]], u["TenDonVi"]
    city = next(u for u in units.values() if u["CapDonVi"] == 1 and u["HieuLucTu"] == DAY and not u["MaDonViCha"])
    assert city["TenDonVi"] == "UBND thành phố Đà Nẵng" and city["MaHanhChinh"] == "48"
    for u in new:
        assert (u["CapDonVi"], u["MaDonViCha"], u["HieuLucDen"]) == (3, city["MaDonVi"], None)
        assert "DonViKeThua" not in u


def test_divided_units_list_every_successor_default_first(served):
    """The package divides none of Quảng Nam's communes; the one it divides in the merged city (Hòa Liên, of
    the old Đà Nẵng) is read as it says. In the scenario, the Department of Labour is divided between Home
    Affairs (main) and Health."""
    package = package_crosswalk("48", "thanhphodanang")
    assert not [c for c, s in package_crosswalk("49", "thanhphodanang").items() if len(s) > 1]
    divided = {c: s for c, s in package.items() if len(s) > 1}
    assert divided == {"20296": ["20197", "20194"]}  # Hòa Liên: Liên Chiểu (the default), Hải Vân
    assert {c: list(s) for c, s in crosswalk("48", "thanhphodanang").items()} == package
    units = {u["MaDonVi"]: u for u in served["units"]}
    labour = next(u for u in units.values() if u["TenDonVi"] == "Sở Lao động - Thương binh và Xã hội")
    assert [units[s]["TenDonVi"] for s in labour["DonViKeThua"]] == ["Sở Nội vụ", "Sở Y tế"]


def test_districts_close_into_the_communes_of_their_area(served):
    units = {u["MaDonVi"]: u for u in served["units"]}
    districts = [u for u in units.values() if u["CapDonVi"] == 2]
    nong_son = next(u for u in districts if u["MaHanhChinh"] == "519")
    que_son = next(u for u in districts if u["MaHanhChinh"] == "509")
    assert (nong_son["HieuLucDen"], nong_son["DonViKeThua"]) == ("20241130", [que_son["MaDonVi"]])
    for d in districts:
        if d is nong_son:
            continue
        own = {s for u in units.values() if u["MaDonViCha"] == d["MaDonVi"] for s in u.get("DonViKeThua", [])}
        assert d["HieuLucDen"] == LAST_DAY and set(d["DonViKeThua"]) == own, d["TenDonVi"]
        main = units[d["DonViKeThua"][0]]["TenDonVi"]
        place = d["TenDonVi"].split(" ", 2)[2].removeprefix("phố ").removeprefix("xã ")
        assert main.endswith(place) or d["MaHanhChinh"] in ("511", "515"), (d["TenDonVi"], main)
    # Nông Sơn's area reaches Xã Quế Sơn through two successions.
    assert units[que_son["DonViKeThua"][0]]["TenDonVi"] == "UBND xã Quế Sơn"


def test_no_district_level_unit_is_in_force_from_the_day(province):
    for clock, new_units in ((datetime(2025, 6, 30, 23, 0), False), (datetime(2025, 7, 1, 1, 0), True)):
        province.set_clock(clock)
        units = province.unit_records()
        in_force = [u for u in units if u["HieuLucTu"] <= ts(clock)[:8] and not u["HieuLucDen"]]
        assert any(u["HieuLucTu"] == DAY for u in units) == new_units
        assert (2 in {u["CapDonVi"] for u in in_force}) != new_units
        if new_units:
            assert {u["CapDonVi"] for u in in_force} == {1, 3}
            closed = [u for u in units if u["HieuLucDen"] == LAST_DAY]
            assert all(u["HieuLucTu"] < DAY for u in closed) and len(closed) == 233 + 17 + 16 + 2
            assert [u["MaDonVi"] for u in closed if "DonViKeThua" not in u] == ["000.00.07.H47"]
    province.set_clock(CLOCK)


def test_open_dossiers_are_transferred_finished_ones_keep_their_unit(province, served):
    """Across the migration night: a dossier still open gets its unit's main successor and a new NgayCapNhat,
    nothing else; a finished one keeps the old unit; after the night no open dossier is left at a closed unit
    but those the System failed to move."""
    truth = province.reorganisation_truth()
    successors = truth["successors"]
    before_clock, after_clock = datetime(2025, 6, 30, 23, 59, 59), datetime(2025, 7, 1, 7, 0)
    province.set_clock(before_clock)
    before = {r["MaHoSo"]: r for r in province.iter_all()}
    province.set_clock(after_clock)
    after = {r["MaHoSo"]: r for r in province.iter_all()}
    province.set_clock(CLOCK)
    moved = {code: moves for code, moves in truth["transferred"].items() if moves[-1][0][:8] == DAY}
    assert len(moved) > 30
    for code, moves in moved.items():
        at, old, new = moves[-1]
        was, now = before[code], after[code]
        assert was["DonViXuLy"] == old and now["DonViXuLy"] == new == successors[old][0]
        assert ts(before_clock) < at <= now["NgayCapNhat"] < ts(after_clock)
        if now["NgayCapNhat"] == at and now["TrangThaiHoSo"] == was["TrangThaiHoSo"]:  # nothing else happened
            assert {k: v for k, v in now.items() if k not in ("DonViXuLy", "NgayCapNhat")} == \
                {k: v for k, v in was.items() if k not in ("DonViXuLy", "NgayCapNhat")}
    units = {u["MaDonVi"]: u for u in served["units"]}
    finished = [r for r in before.values() if not r["DaXoa"] and r["TrangThaiHoSo"] in (3, 7, 8, 9, 10)
                and units.get(r["DonViXuLy"], {}).get("HieuLucDen") == LAST_DAY]
    assert finished and all(after[r["MaHoSo"]]["DonViXuLy"] == r["DonViXuLy"] for r in finished)
    left = {r["MaHoSo"] for r in served["records"] if not r["DaXoa"] and r["TrangThaiHoSo"] in (1, 2, 4, 5, 6)
            and units.get(r["DonViXuLy"], {}).get("HieuLucDen")}
    assert left <= set(truth["untransferred"])


def test_new_dossiers_go_to_the_units_in_force_on_their_day(served, province):
    truth = province.reorganisation_truth()
    units = {u["MaDonVi"]: u for u in served["units"]}
    late = [r for r in served["records"] if not r["DaXoa"] and (parse_timestamp(r["NgayNopHoSo"]) or CLOCK.min)
            >= datetime(2025, 7, 1) and r["DonViXuLy"] in units and r["MaHoSo"] not in truth["untransferred"]]
    assert late and all(units[r["DonViXuLy"]]["HieuLucTu"] == DAY for r in late)
    # Volumes go on: a month's dossiers after the day about those of a month before (levels 2 and 3 now at 3).
    by_month = Counter(r["NgayNopHoSo"][:6] for r in served["records"] if parse_timestamp(r.get("NgayNopHoSo")))
    assert 0.75 < by_month["202508"] / by_month["202505"] < 1.33


def test_val07_flags_the_dossiers_the_system_failed_to_transfer(province, served, tmp_path):
    """The exported truth names the untransferred dossiers; dq-rules.md's VAL07 on the served records flags
    exactly those received — and a dossier whose receipt was typed ten years ahead (VAL01) at a unit closed
    since, if any."""
    summary = export(province, tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    reorganised = truth["reorganisation"]
    records = {r["MaHoSo"]: r for r in served["records"]}
    planted = {k for k in reorganised["untransferred"] if records[k]["NgayTiepNhan"]}
    flagged = {k for k, rules in truth["findings"].items() if "VAL07" in rules}
    assert len(reorganised["untransferred"]) >= 3 and planted and planted <= flagged
    assert all("VAL01" in truth["findings"][k] for k in flagged - planted)
    assert summary["rule_counts"]["VAL07"] == len(flagged)
    assert summary["untransferred"] == len(reorganised["untransferred"])
    assert summary["transferred"] == len(reorganised["transferred"]) > 30
    assert reorganised["unannounced"] == ["000.00.07.H47"]
    assert reorganised["successors"]["000.00.07.H47"] == ["000.00.06.H17"]
    units = {u["MaDonVi"]: u for u in served["units"]}
    for code in planted:
        r = records[code]
        assert units[r["DonViXuLy"]]["HieuLucDen"] == LAST_DAY and r["NgayTiepNhan"] >= DAY
    assert flagged == {k for k, rules in findings(served["records"], CLOCK, served["procedures"],
                                                   served["units"]).items() if "VAL07" in rules}


def test_the_delegation_plan_names_the_new_units_after_the_day(province):
    for clock, after in ((datetime(2025, 6, 30, 1), False), (datetime(2025, 7, 2, 1), True)):
        province.set_clock(clock)
        units = {u["MaDonVi"]: u for u in province.unit_records()}
        live = [d for d in province.delegation_records() if d["TrangThai"] != "HET_HIEU_LUC"]
        named = {u for d in live for u in (d["DonViUyQuyen"], d["DonViNhanUyQuyen"])}
        assert live and all((units[u]["HieuLucTu"] == DAY) == after for u in named)
        if after:
            assert {units[d["DonViNhanUyQuyen"]]["CapDonVi"] for d in live if d["LoaiUyQuyen"] == "PHAN_CAP"} == {3}
    province.set_clock(CLOCK)


def test_the_workbooks_name_the_new_units_after_the_day(tmp_path):
    truth = write_workbooks(tmp_path, investors(True), date(2025, 5, 1), date(2025, 8, 31), seed=13, scale=0.05,
                            handover=investor_handover())
    old = {inv.code for inv in investors(True)}
    units = {u.code: u for u in build_units(reorganisation=True)}
    projects = {}
    for f in truth.files:
        investors_then = {r["ChuDauTu"] for r in f.rows}
        if f.report_date < date(2025, 7, 1):
            assert investors_then <= old
        else:
            assert all(units[c].valid_from == date(2025, 7, 1) and units[c].level in (1, 3) for c in investors_then)
        projects.setdefault(f.report_date >= date(2025, 7, 1), set()).update(r["MaDuAn"] for r in f.rows)
    assert projects[True] & projects[False], "the same projects go on under their new investors"


def test_the_scenario_is_deterministic_and_selected_by_its_file(province, tmp_path):
    def digest(p: Province) -> str:
        h = hashlib.sha256()
        for part in (p.unit_records(), p.delegation_records(), p.reorganisation_truth()):
            h.update(orjson.dumps(part))
        for rec in p.iter_all():
            h.update(orjson.dumps(rec))
        return h.hexdigest()

    small = replace(SCENARIO, scale=0.002)
    assert digest(Province(small)) == digest(Province(small))
    assert digest(Province(replace(small, seed=small.seed + 1))) != digest(Province(small))
    scenario = Scenario.from_env({"SIM_SCENARIO": "simulator/scenarios/reorganisation.json", "SIM_SCALE": "0.01"})
    assert (scenario.reorganisation, scenario.start, scenario.end) == (True, date(2024, 1, 1), date(2026, 1, 31))
    assert scenario.to_dict()["reorganisation"] is True and "reorganisation" not in Scenario().to_dict()


def test_the_default_scenario_is_unchanged():
    """The default scenario's records (processing steps aside: simulator/steps.py has its own tests) are those
    it served before the reorganisation scenario existed, byte for byte."""
    province = Province(Scenario(scale=0.02))
    h = hashlib.sha256()
    for part in (province.unit_records(), province.procedure_records(), province.delegation_records()):
        h.update(orjson.dumps(part))
    for rec in province.iter_all():
        h.update(orjson.dumps({k: v for k, v in rec.items() if k != "QuaTrinhXuLy"}))
    assert h.hexdigest() == "aba99acd580f959d20d9c5abadb8c5a8e20a2adae8a6c1a190f2fad1af54c3fc"
    assert not any("DonViKeThua" in u or u["HieuLucDen"] for u in province.unit_records())
