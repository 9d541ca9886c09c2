"""marts.dim_unit_geo: where each unit is, from its statistics code (MaHanhChinh) and the pinned package.

Hand-made units are served through the API contract (``simulator/static.py``): the real province's units, plus
a code written with a leading zero, a code the package does not know, a commune and a district without a code,
a commune closed before the night, a commune of the 2025 list (whose code a legacy commune also carries) and a
district the package does not know (Nông Sơn, 519) placed by its communes. The reference step lands them
and computes the geography; dbt builds the mart. What is expected is written out from the served records and
from the package's own table, read here with plain SQL — never from the code under test.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from importlib import resources

import psycopg
import pytest
from psycopg.rows import dict_row
from shapely.geometry import Point, shape

from ingestion import loads
from ops.dbt import run_dbt
from pipeline import runs
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.static import StaticProvince
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

NIGHT = datetime(2023, 7, 1, 1, 0)
SCENARIO = Scenario(seed=5, start=date(2023, 6, 1), end=date(2023, 6, 30), scale=0.002, clock=NIGHT)
# Quảng Nam's extent (general knowledge, not the package): 14.9–16.1 °N, 107.2–108.8 °E.
SOUTH, NORTH, WEST, EAST = 14.9, 16.1, 107.2, 108.8

PADDED, UNKNOWN, NO_CODE, BLANK, CLOSED = "pad", "unknown", "no_code", "blank", "closed"
NEW_2025 = "000.99.00.H47"
UNKNOWN_DISTRICT = "000.00.98.H47"


def package_places() -> dict[tuple[str, str], dict]:
    """The package's legacy communes and districts of Quảng Nam (49) and its 2025 communes, by (list, code)."""
    path = resources.files("vietnamadminunits") / "data" / "dataset.db"
    with sqlite3.connect(str(path)) as conn:
        conn.row_factory = sqlite3.Row
        out = {}
        for r in conn.execute("SELECT ward, wardCode, wardLat, wardLon, wardBounds, district, districtCode, "
                              "districtLat, districtLon FROM admin_units_legacy WHERE provinceCode = '49'"):
            out[("commune", r["wardCode"])] = {"name": r["ward"], "lat": r["wardLat"], "lon": r["wardLon"],
                                               "bounds": r["wardBounds"]}
            out[("district", r["districtCode"])] = {"name": r["district"], "lat": r["districtLat"],
                                                    "lon": r["districtLon"]}
        for r in conn.execute("SELECT ward, wardCode, wardLat, wardLon FROM admin_units"):
            out[("2025", r["wardCode"])] = {"name": r["ward"], "lat": r["wardLat"], "lon": r["wardLon"]}
    return out


def served_units(base: Province) -> tuple[list[dict], dict[str, str]]:
    """The province's units with the edge cases above; returns them and the unit code of each case."""
    units = [dict(u) for u in base.unit_records()]
    communes = [u for u in units if u["CapDonVi"] == 3]
    hoi_an = next(u["MaDonVi"] for u in units if u["CapDonVi"] == 2 and "Hội An" in u["TenDonVi"])
    in_hoi_an = [u for u in communes if u["MaDonViCha"] == hoi_an]
    cases = {PADDED: in_hoi_an[0], UNKNOWN: in_hoi_an[1], NO_CODE: in_hoi_an[2], BLANK: in_hoi_an[3],
             CLOSED: in_hoi_an[4]}
    cases[PADDED]["MaHanhChinh"] = "0" + cases[PADDED]["MaHanhChinh"]
    cases[UNKNOWN]["MaHanhChinh"] = "99999"
    cases[NO_CODE]["MaHanhChinh"] = None
    cases[BLANK]["MaHanhChinh"] = ""
    cases[CLOSED]["HieuLucDen"] = "20230301"
    province_code = next(u["MaDonVi"] for u in units if u["LoaiDonVi"] == "UBND_TINH")
    units.append({"MaDonVi": NEW_2025, "TenDonVi": "UBND phường Bàn Thạch", "CapDonVi": 3, "LoaiDonVi": "UBND_XA",
                  "MaDonViCha": province_code, "MaHanhChinh": "20335", "HieuLucTu": "20250701", "HieuLucDen": None})
    units.append({"MaDonVi": UNKNOWN_DISTRICT, "TenDonVi": "UBND huyện Không Có", "CapDonVi": 2,
                  "LoaiDonVi": "UBND_HUYEN", "MaDonViCha": province_code, "MaHanhChinh": "999",
                  "HieuLucTu": "20080101", "HieuLucDen": None})
    return units, {k: u["MaDonVi"] for k, u in cases.items()}


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unit-geo")
    base = Province(SCENARIO)
    units, cases = served_units(base)
    with throwaway_warehouse(tmp) as wh, running_simulator(StaticProvince(base, [], units=units)) as sim:
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-06-01"}, warehouse_url=wh.urls["writer"])
        runs.start_run("geo", None, NIGHT, settings)
        outcome = loads.refresh_reference("geo", NIGHT, settings)
        assert outcome["units"]["status"] == "complete", outcome
        assert outcome["unit_geography"]["status"] == "complete", outcome
        # only what the mart needs (and tests whose every parent is built): the suite's time is short
        select = ["--select", "+dim_unit_geo", "+dim_unit", "--indirect-selection", "cautious"]
        proc = run_dbt(["build", *select, "--vars", json.dumps({"as_of": NIGHT.isoformat()})], wh.urls["writer"])
        assert proc.returncode == 0, proc.stdout[-6000:]
        with psycopg.connect(wh.urls["bi_reader"], row_factory=dict_row) as conn:  # what a BI tool reads
            rows = {r["unit_code"]: r for r in conn.execute("SELECT * FROM marts.dim_unit_geo")}
            dim = {r["unit_code"] for r in conn.execute("SELECT unit_code FROM marts.dim_unit")}
        yield {"url": wh.urls["writer"], "rows": rows, "dim": dim, "units": {u["MaDonVi"]: u for u in units},
               "cases": cases, "outcome": outcome["unit_geography"]}


def test_every_unit_is_listed_with_its_status(geo):
    rows, units, cases = geo["rows"], geo["units"], geo["cases"]
    assert set(rows) == geo["dim"] == set(units), "one row per unit: none dropped, none added"
    places = package_places()
    for code, u in units.items():
        r = rows[code]
        stat = u["MaHanhChinh"] or None
        assert r["stat_code"] == stat, code
        if stat is None:
            expected = "no_code"
        elif code in (cases[UNKNOWN], UNKNOWN_DISTRICT):
            expected = "unknown_code"
        elif u["CapDonVi"] == 2 and ("district", stat) not in places:
            expected = "derived"  # Nông Sơn: not in the package, its communes are
        else:
            expected = "located"
        assert r["geo_status"] == expected, (code, u["TenDonVi"], stat, r["geo_status"])
        if expected in ("no_code", "unknown_code"):
            assert r["lat"] is None and r["lon"] is None and r["area_geojson"] is None, code
    departments = [c for c, u in units.items() if u["LoaiDonVi"] in ("SO_NGANH", "TRUNG_TAM_PVHCC")]
    assert departments and all(rows[c]["geo_status"] == "no_code" for c in departments)
    assert sum(r["geo_status"] == "derived" for r in rows.values()) == 1


def test_known_codes_have_the_packages_centre_inside_the_province(geo):
    rows, units, cases = geo["rows"], geo["units"], geo["cases"]
    places = package_places()
    located = [r for r in rows.values() if r["geo_status"] in ("located", "derived")]
    assert len(located) == 1 + 18 + 233 - 3 + 1  # province, districts, communes with a known code, 2025 unit
    for r in located:
        assert SOUTH <= r["lat"] <= NORTH and WEST <= r["lon"] <= EAST, (r["unit_code"], r["lat"], r["lon"])
    for code, u in units.items():
        r = rows[code]
        if r["geo_status"] != "located" or u["CapDonVi"] == 1:
            continue
        stat = u["MaHanhChinh"].lstrip("0")
        key = ("2025", stat) if code == NEW_2025 else ("commune" if u["CapDonVi"] == 3 else "district", stat)
        place = places[key]
        assert (r["lat"], r["lon"], r["geo_name"]) == (place["lat"], place["lon"], place["name"]), code
        if "bounds" in place:
            south, west, north, east = (float(x) for x in place["bounds"].replace("–", ",").split(","))
            assert (r["south"], r["west"], r["north"], r["east"]) == (south, west, north, east), code
    # the 2025 list for a unit in force from 2025-07-01: the same code is another place in the legacy list
    assert rows[NEW_2025]["geo_dataset"] == "2025" and rows[NEW_2025]["geo_name"] == "Phường Bàn Thạch"
    legacy_20335 = next(c for c, u in units.items() if u["MaHanhChinh"] == "20335")
    assert rows[legacy_20335]["geo_name"] == "Phường Tân Thạnh" and rows[legacy_20335]["geo_dataset"] == "legacy"
    padded = rows[cases[PADDED]]
    assert padded["geo_status"] == "located" and padded["stat_code"].startswith("0")
    # Nông Sơn: inside the box of its communes' boxes
    nong_son = next(r for r in rows.values() if r["geo_status"] == "derived")
    members = [rows[c] for c, u in units.items() if u["MaDonViCha"] == nong_son["unit_code"]]
    assert members
    assert min(m["south"] for m in members) <= nong_son["lat"] <= max(m["north"] for m in members)
    assert min(m["west"] for m in members) <= nong_son["lon"] <= max(m["east"] for m in members)


def test_areas_tile_the_province(geo):
    rows, units, cases = geo["rows"], geo["units"], geo["cases"]
    day = NIGHT.date()

    def in_force(u):
        start = datetime.strptime(u["HieuLucTu"], "%Y%m%d").date()
        end = datetime.strptime(u["HieuLucDen"], "%Y%m%d").date() if u.get("HieuLucDen") else None
        return start <= day and (end is None or end >= day)

    communes = {c: u for c, u in units.items() if u["CapDonVi"] == 3}
    drawn = {c for c, u in communes.items() if in_force(u) and rows[c]["geo_status"] == "located"}
    for c in communes:
        has_area = rows[c]["area_geojson"] is not None
        assert has_area == (c in drawn), (c, rows[c]["geo_status"], units[c].get("HieuLucDen"))
        if has_area:
            assert rows[c]["area_method"] == "voronoi of commune centres, clipped to the province"
    assert cases[CLOSED] not in drawn and NEW_2025 not in drawn
    cells = {c: shape(rows[c]["area_geojson"]) for c in drawn}
    province = next(r for r in rows.values() if r["level"] == 1 and r["area_geojson"] is not None)
    whole = shape(province["area_geojson"])
    total = sum(cell.area for cell in cells.values())
    assert abs(total - whole.area) < 1e-3 * whole.area, "the communes' cells tile the province"
    centres: dict[tuple, int] = {}
    for c in drawn:
        centres[(rows[c]["lat"], rows[c]["lon"])] = centres.get((rows[c]["lat"], rows[c]["lon"]), 0) + 1
    for c, cell in cells.items():
        assert cell.geom_type in ("Polygon", "MultiPolygon") and cell.area > 0
        if centres[(rows[c]["lat"], rows[c]["lon"])] == 1:  # a centre the package gives one commune only
            assert cell.buffer(1e-4).contains(Point(rows[c]["lon"], rows[c]["lat"])), c
    for code, u in units.items():
        if u["CapDonVi"] != 2 or not in_force(u):
            continue
        members = [cells[c] for c in drawn if units[c]["MaDonViCha"] == code]
        r = rows[code]
        if not members:
            assert r["area_geojson"] is None, code
            continue
        area = shape(r["area_geojson"])
        assert r["area_method"] == "union of its communes' voronoi cells"
        assert abs(area.area - sum(m.area for m in members)) < 1e-3 * area.area, code


def test_the_step_reports_what_it_did(geo):
    outcome = geo["outcome"]
    assert outcome["new_versions"] == len(geo["units"]) and outcome["closed"] == 0
    assert "vietnamadminunits 1.0.4" in outcome["detail"]


def test_the_map_lists_the_units_it_cannot_draw(geo):
    """The report's map over this warehouse (no facts yet): the units in force without an area are listed."""
    from publication import figures as F
    from publication import geo_map

    with F.connect(geo["url"]) as conn:
        fig = geo_map.collect(conn, date(2023, 6, 1))
    cases = geo["cases"]
    listed = {u["unit_code"] for u in fig["unplaced"]}
    assert listed == {cases[NO_CODE], cases[BLANK], cases[UNKNOWN], UNKNOWN_DISTRICT}, listed
    drawn = {u["unit_code"] for u in fig["units"] if u["drawn"]}
    assert cases[CLOSED] not in drawn | listed and NEW_2025 not in drawn | listed  # neither in force in June 2023
    assert drawn == set(fig["areas"]) and all(fig["areas"][c].startswith("M") for c in drawn)
    assert all(u["on_time_class"] == "none" for u in fig["units"]), "no dossiers: no data"
    svg = geo_map.draw(fig)["map-on-time"]
    assert svg.count('class="area"') == len(drawn)
