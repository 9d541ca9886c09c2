"""The warehouse through the 2025 reorganisation (reorganisation.md): the reorganisation scenario served through
the API contract — with a few hand-made records beside it — loaded, checked and built once, then every mart
compared row by row with the independent reference (``tests/support/reference.py``), and the lineage, the
levels, the transfers and VAL07 checked where they matter.

The scenario's real lineage has a chain of two successions (Nông Sơn district → Quế Sơn district on 2024-12-01
→ Xã Quế Sơn on 2025-07-01) and a closed unit whose record omits its successors (the Department of Transport).
The package divides none of Quảng Nam's communes, so a hand-made commune of Tam Kỳ divided between two new
wards is added, with a dossier it finished in May and one it still had open on the day (transferred).
"""

from __future__ import annotations

import copy
from datetime import date, datetime

import psycopg
import pytest
from openpyxl import load_workbook

from pipeline.night import dbt_build, run_night
from pipeline.settings import Settings
from publication.monthly import write_publication
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.static import StaticProvince
from simulator.truth import findings
from tests.dbt.test_marts import KEYS as MART_KEYS
from tests.support.marts import compare, fetch
from tests.support.postgres import throwaway_warehouse
from tests.support.reference import COLUMNS, KEYS, compute_marts
from tests.support.reference_units import district_area_monthly, levels_in_force
from tests.support.simulator import running_simulator

AS_OF = datetime(2025, 9, 1, 1, 0)
SCENARIO = Scenario(seed=25, start=date(2024, 11, 1), end=date(2025, 8, 31), scale=0.01, clock=AS_OF,
                    reorganisation=True)
MIN_RESOLVED = 3  # a small province: rank units from 3 resolved dossiers (dbt var min_resolved)
DIVIDED = "000.99.41.H47"
UNKNOWN_SUCCESSOR, CYCLE = "000.98.41.H47", ("000.97.41.H47", "000.96.41.H47")
NONG_SON, QUE_SON, TRANSPORT = "000.00.58.H47", "000.00.48.H47", "000.00.07.H47"
BEFORE, AFTER = date(2025, 5, 1), date(2025, 8, 1)


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def hand_made(province: Province) -> tuple[list[dict], list[dict]]:
    """A commune of Tam Kỳ divided on the day between two of the city's new wards, and two of its dossiers:
    one finished in May (it stays its own), one still open on the day (transferred to the main successor); and
    what a System may get wrong: a successor it does not list, two closed communes naming each other."""
    units = {u["MaDonVi"]: u for u in province.unit_records()}
    tam_ky = next(u for u in units.values() if u["MaHanhChinh"] == "502")
    main, other = tam_ky["DonViKeThua"][:2]
    commune = {**next(u for u in units.values() if u["MaDonViCha"] == tam_ky["MaDonVi"]),
               "MaDonVi": DIVIDED, "TenDonVi": "UBND xã Chia Đôi", "MaHanhChinh": None, "DonViKeThua": [main, other]}
    template = next(r for r in province.iter_all() if not r["DaXoa"] and r["TrangThaiHoSo"] == 10
                    and r["NgayTiepNhan"] and r["NgayHenTra"] and r["NgayKetThucXuLy"] and r["NgayTra"]
                    and units[r["DonViXuLy"]]["CapDonVi"] == 3 and r["KenhThucHien"] in (1, 2))
    finished = copy.deepcopy(template)
    finished.update({"MaHoSo": f"{DIVIDED}-250505-00001", "DonViXuLy": DIVIDED, "NgayNopHoSo": "20250505083000",
                     "NgayTiepNhan": "20250505090000", "NgayHenTra": "20250512170000",
                     "NgayKetThucXuLy": "20250509100000", "NgayTra": "20250512090000",
                     "NgayCapNhat": "20250512090000", "QuaTrinhXuLy": []})
    moved = copy.deepcopy(template)
    moved.update({"MaHoSo": f"{DIVIDED}-250626-00001", "DonViXuLy": main, "NgayNopHoSo": "20250626083000",
                  "NgayTiepNhan": "20250626090000", "NgayHenTra": "20250703170000",
                  "NgayKetThucXuLy": "20250708100000", "NgayTra": "20250709090000",
                  "NgayCapNhat": "20250709090000", "QuaTrinhXuLy": []})
    return [commune, {**commune, "MaDonVi": UNKNOWN_SUCCESSOR, "TenDonVi": "UBND xã Kế Thừa Lạ",
                      "DonViKeThua": ["000.77.77.H17"]},
            {**commune, "MaDonVi": CYCLE[0], "TenDonVi": "UBND xã Vòng Một", "DonViKeThua": [CYCLE[1]]},
            {**commune, "MaDonVi": CYCLE[1], "TenDonVi": "UBND xã Vòng Hai", "DonViKeThua": [CYCLE[0]]}], \
        [finished, moved]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The scenario (about 3,500 dossiers from November 2024 to August 2025) served with the hand-made records,
    one night to the dossier marts with the data-quality stage, and what the reference makes of the records."""
    tmp = tmp_path_factory.mktemp("reorganisation")
    inbox = tmp / "inbox"
    inbox.mkdir()
    province = Province(SCENARIO)
    communes, extra = hand_made(province)
    units = [*province.unit_records(), *communes]
    records = [*province.iter_all(), *extra]
    static = StaticProvince(province, records, units=units)
    with throwaway_warehouse(tmp / "wh") as wh, running_simulator(static) as sim:
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": SCENARIO.start.isoformat(), "FINANCE_INBOX": str(inbox),
                                      "REPORTS_DIR": str(tmp / "reports"), "GX_PROJECT_DIR": str(tmp / "gx"),
                                      "PUBLICATION_MIN_RESOLVED": str(MIN_RESOLVED)},
                                     warehouse_url=wh.urls["writer"])
        # The night up to the data-quality findings, then the dossier marts (the workbooks' marts are not what
        # this module is about: tests/simulator/test_reorganisation.py checks the workbooks' units).
        run_night(settings, AS_OF, run_id="reorganised", until="quality", lease=False)
        dbt_build(settings, "nightly_steps", AS_OF)
        dbt_build(settings, "nightly_marts", AS_OF)
        dbt_build(settings, "nightly_dq_marts", AS_OF)
        expected = compute_marts(records, units, province.procedure_records(), province.delegation_records(),
                                 {}, AS_OF, min_resolved=MIN_RESOLVED)
        yield {"url": wh.urls["writer"], "expected": expected, "province": province, "units": units,
               "records": records, "extra": extra, "tmp": tmp,
               "truth": findings(records, AS_OF, province.procedure_records(), units),
               "reorganisation": province.reorganisation_truth()}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'marts'")}


def test_every_mart_equals_the_reference(built):
    """Recorded-unit and current-unit facts, the rankings, the service index, the delegation plan, the processing
    steps: every row of every dossier mart the reference computes."""
    present = _tables(built["url"])
    core = {"dim_unit", "fct_dossier", "fct_timeliness_monthly", "fct_online_monthly", "fct_digitisation_monthly",
            "fct_timeliness_monthly_current", "fct_online_monthly_current", "fct_digitisation_monthly_current",
            "rpt_monthly_ranking", "fct_service_index_monthly", "rpt_service_index_ranking",
            "fct_delegation_progress", "fct_delegation_usage", "fct_step_monthly", "fct_late_origin_monthly",
            "fct_step_monthly_by_field", "fct_late_origin_monthly_by_field"}
    assert core <= present
    compared = []
    for table, rows in built["expected"].items():
        if table not in present or table == "fct_disbursement":  # the workbooks' mart is not built here
            continue
        assert rows, f"the scenario produces no {table} rows: the comparison would prove nothing"
        got = fetch(built["url"], table, list(COLUMNS[table]))
        compare(table, got, rows, MART_KEYS.get(table) or KEYS[table])  # test_marts's key where it names one
        compared.append(table)
    assert core <= set(compared)


def _dim_unit(built) -> dict[str, dict]:
    return {r["unit_code"]: r for r in fetch(built["url"], "dim_unit", list(COLUMNS["dim_unit"]))}


def test_lineage_of_a_divided_commune_a_chain_and_a_unit_without_successor(built):
    units = _dim_unit(built)
    divided = units[DIVIDED]
    main = next(u for u in built["units"] if u["MaDonVi"] == DIVIDED)["DonViKeThua"][0]
    assert divided["successor_code"] == main and divided["current_unit_code"] == main
    assert units[main]["is_in_force"] and units[main]["level"] == 3 and units[main]["district_code"] is None
    # Nông Sơn (closed 2024-11-30) → Quế Sơn (closed 2025-06-30) → Xã Quế Sơn.
    xa_que_son = units[QUE_SON]["successor_code"]
    assert units[NONG_SON]["successor_code"] == QUE_SON
    assert units[NONG_SON]["current_unit_code"] == units[QUE_SON]["current_unit_code"] == xa_que_son
    assert units[xa_que_son]["unit_name"] == "UBND xã Quế Sơn"
    # The Department of Transport's record omits DonViKeThua: no current unit, its figures stay recorded.
    transport = units[TRANSPORT]
    assert transport["valid_to"] == date(2025, 6, 30) and transport["successor_code"] is None
    assert transport["current_unit_code"] is None
    with psycopg.connect(built["url"]) as conn:
        resolved = conn.execute("SELECT sum(resolved) FROM marts.fct_timeliness_monthly WHERE unit_code = %s",
                                (TRANSPORT,)).fetchone()[0]
        current = conn.execute("SELECT count(*) FROM marts.fct_timeliness_monthly_current "
                               "WHERE current_unit_code = %s", (TRANSPORT,)).fetchone()[0]
    assert resolved and current == 0
    # A successor the API does not list, a cycle: no current unit, never followed forever.
    assert units[UNKNOWN_SUCCESSOR]["successor_code"] == "000.77.77.H17"
    assert [units[c]["current_unit_code"] for c in (UNKNOWN_SUCCESSOR, *CYCLE)] == [None, None, None]


def test_new_communes_have_a_history_from_before_they_existed(built):
    """A new commune's *_current rows reach back to the months of the communes it was made from."""
    with psycopg.connect(built["url"]) as conn:
        rows = conn.execute(
            "SELECT c.current_unit_code, min(c.month), sum(c.resolved) FROM marts.fct_timeliness_monthly_current c "
            "JOIN marts.dim_unit u ON u.unit_code = c.current_unit_code WHERE u.valid_from = '2025-07-01' "
            "AND u.level = 3 GROUP BY 1").fetchall()
        recorded = conn.execute("SELECT sum(t.resolved) FROM marts.fct_timeliness_monthly t JOIN marts.dim_unit u "
                                "ON u.unit_code = t.unit_code WHERE u.current_unit_code IS NOT NULL").fetchone()[0]
        current = conn.execute("SELECT sum(resolved) FROM marts.fct_timeliness_monthly_current").fetchone()[0]
    assert rows and min(first for _, first, _ in rows) == date(2024, 11, 1)
    assert recorded == current  # every dossier with a current unit counted once, none twice


def test_no_district_level_and_no_district_area_after_the_day(built):
    """From July 2025 the ranking has no level 2, no new unit belongs to a district, and the district-area
    roll-up (facts summed over dim_unit.district_code, districts in force in the month) stops in June."""
    units = _dim_unit(built)
    in_force_after = [u for u in units.values() if u["valid_from"] and u["valid_from"] <= date(2025, 7, 1)
                      and (u["valid_to"] is None or u["valid_to"] >= date(2025, 7, 1))]
    assert in_force_after and not [u for u in in_force_after if u["level"] == 2]
    assert all(u["district_code"] is None for u in units.values() if u["valid_from"] == date(2025, 7, 1))
    with psycopg.connect(built["url"]) as conn:
        levels = dict(conn.execute("SELECT month >= '2025-07-01', array_agg(DISTINCT level ORDER BY level) "
                                   "FROM marts.rpt_monthly_ranking GROUP BY 1").fetchall())
        area = conn.execute(
            "SELECT t.month, u.district_code, sum(t.resolved)::int FROM marts.fct_timeliness_monthly t "
            "JOIN marts.dim_unit u ON u.unit_code = t.unit_code JOIN marts.dim_unit d ON d.unit_code = u.district_code "
            "WHERE d.valid_to IS NULL OR d.valid_to >= t.month GROUP BY 1, 2").fetchall()
    assert levels == {False: [1, 2, 3], True: [1, 3]}
    assert area and max(month for month, _, _ in area) == date(2025, 6, 1)
    expected = district_area_monthly("fct_timeliness_monthly", built["expected"]["fct_timeliness_monthly"],
                                     built["units"])
    assert {(m, d): n for m, d, n in area} == {(r["month"], r["district_code"]): r["resolved"] for r in expected}


def test_transferred_dossiers_count_once_for_their_successor(built):
    moved = built["reorganisation"]["transferred"]
    moved[built["extra"][1]["MaHoSo"]] = [["20250701000000", DIVIDED, built["extra"][1]["DonViXuLy"]]]
    assert len(moved) > 20
    with psycopg.connect(built["url"]) as conn:
        got = dict(conn.execute("SELECT dossier_id, unit_code FROM marts.fct_dossier WHERE dossier_id = ANY(%s)",
                                (list(moved),)).fetchall())
        ids = [d for (d,) in conn.execute("SELECT dossier_id FROM marts.fct_dossier")]
    assert len(ids) == len(set(ids))
    deleted = {r["MaHoSo"] for r in built["records"] if r["DaXoa"]}
    assert got == {code: moves[-1][2] for code, moves in moved.items() if code not in deleted}


def test_val07_flags_exactly_the_dossiers_the_system_failed_to_transfer(built):
    """VAL07 is what the truth says (dq-rules.md on the served records): the planted untransferred dossiers —
    and a dossier whose receipt was typed ten years ahead (VAL01) at a unit that has since closed."""
    truth = {k for k, rules in built["truth"].items() if "VAL07" in rules}
    received = {r["MaHoSo"] for r in built["records"] if r.get("NgayTiepNhan")}
    planted = set(built["reorganisation"]["untransferred"]) & received
    assert planted and planted <= truth
    assert all("VAL01" in built["truth"][k] for k in truth - planted)
    with psycopg.connect(built["url"]) as conn:
        issues = conn.execute("SELECT dossier_id, rule_id, unit_code, is_open FROM marts.fct_dq_issue").fetchall()
    assert {d for d, rule, _, _ in issues if rule == "VAL07"} == truth
    codes = {r["MaHoSo"]: r["DonViXuLy"] for r in built["records"]}
    assert {(d, rule, u, o) for d, rule, u, o in issues} == {
        (d, rule, codes[d], True) for d, rules in built["truth"].items() for rule in rules}


def test_the_publication_prints_the_levels_in_force(built):
    """May 2025: the three levels; August 2025: provincial and commune levels, no empty district section."""
    out = built["tmp"] / "publication"
    for month in (BEFORE, AFTER):
        levels = {str(level) for level in levels_in_force(built["units"], month)}
        assert levels == ({"1", "2", "3"} if month == BEFORE else {"1", "3"})
        html, xlsx = write_publication(built["url"], month, out)
        page = html.read_text(encoding="utf-8")
        assert {lvl for lvl in ("1", "2", "3") if f'<section class="level" data-level="{lvl}"' in page} == levels
        sheets = load_workbook(xlsx).sheetnames
        assert len(sheets) == len(levels) and ("Cấp huyện" in sheets) == ("2" in levels)
        ranked = {r["unit_code"] for r in built["expected"]["rpt_monthly_ranking"] if r["month"] == month}
        assert ranked and all(f'data-unit-code="{code}"' in page for code in ranked)
    assert "UBND tỉnh Quảng Nam" in (out / "cong-khai-2025-05.html").read_text(encoding="utf-8")
    assert "UBND thành phố Đà Nẵng" in (out / "cong-khai-2025-08.html").read_text(encoding="utf-8")
