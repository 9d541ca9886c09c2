"""The service index (service-index.md) on hand-made dossiers served through the API contract.

A handful of units and two procedures (one with every flag, one with none), and dossiers made for the edge
cases: resolved on time after two supplement requests, pending overdue at a month's end and resolved late
the next month, refused or withdrawn before a month's end, procedures without fees or online service, a
unit closed in the middle of a month, an unknown unit, a tie of score_100, and the running month's cut-off
at 00:00 of the as-of date. They are served by the contract server (``simulator/static.py``), pulled,
staged and built by dbt into a real PostgreSQL warehouse — only the models the index needs, once with the
spec's maxima and once with criteria 4.2 and 4.3 worth 0 points (a unit with nothing else has points_max 0).

Expected figures come from ``tests/support/reference_index.py`` (the independent reading of the spec) and,
for the cases named, from numbers worked out by hand in the comments.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from ops.dbt import run_dbt
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.static import StaticProvince
from tests.support.marts import compare, fetch, norm
from tests.support.postgres import throwaway_warehouse
from tests.support.reference_index import COLUMNS, KEYS, compute_index
from tests.support.simulator import running_simulator

AS_OF = datetime(2023, 5, 10, 1, 0)  # the running month is May 2023, counted up to 2023-05-10 00:00
MARCH, APRIL, MAY = date(2023, 3, 1), date(2023, 4, 1), date(2023, 5, 1)
NO_DIGITISED_POINTS = {"2.1": 20, "3.3": 12, "3.6": 6, "4.1": 6, "4.2": 0, "4.3": 0}
DEFAULT_MAX = {"2.1": 20, "3.3": 12, "3.6": 6, "4.1": 6, "4.2": 4, "4.3": 2}
THRESHOLDS = {"2.1": 1.0, "3.3": 0.5, "3.6": 1.0, "4.1": 1.0, "4.2": 0.8, "4.3": 0.8}
SELECT = ["+rpt_service_index_ranking", "+fct_service_index_2_1_dossiers"]

PROVINCE = "000.00.00.H47"
S1, S2, S3 = "000.00.01.H47", "000.00.02.H47", "000.00.03.H47"  # departments (level 1)
D1, D2, D3 = "000.00.41.H47", "000.00.42.H47", "000.00.43.H47"  # districts (level 2); D2 closes 2023-04-15
UNKNOWN = "000.99.99.H47"  # a DonViXuLy the unit list does not have
FULL, BARE = "1.000001", "1.000002"  # every flag (MucDo 4, fees, paper result) / none (MucDo 2)


def unit(code: str, name: str, level: int, kind: str, parent: str | None, until: str | None = None) -> dict:
    return {"MaDonVi": code, "TenDonVi": name, "CapDonVi": level, "LoaiDonVi": kind, "MaDonViCha": parent,
            "MaHanhChinh": None, "HieuLucTu": "20080101", "HieuLucDen": until}


UNITS = [
    unit(PROVINCE, "UBND tỉnh Thử nghiệm", 1, "UBND_TINH", None),
    unit(S1, "Sở Một", 1, "SO_NGANH", PROVINCE),
    unit(S2, "Sở Hai", 1, "SO_NGANH", PROVINCE),
    unit(S3, "Sở Ba", 1, "SO_NGANH", PROVINCE),
    unit(D1, "UBND huyện Một", 2, "UBND_HUYEN", PROVINCE),
    unit(D2, "UBND huyện Hai", 2, "UBND_HUYEN", PROVINCE, until="20230415"),
    unit(D3, "UBND huyện Ba", 2, "UBND_HUYEN", PROVINCE),
]
PROCEDURES = [
    {"MaTTHC": FULL, "TenTTHC": "Thủ tục đủ điều kiện", "MaLinhVuc": "F1", "TenLinhVuc": "Lĩnh vực một",
     "CapThucHien": [1, 2], "MucDo": 4, "ThoiHanGiaiQuyet": 10, "DonViThoiHan": "NGAY_LAM_VIEC",
     "TraKetQuaGiay": True, "CoPhiLePhi": True},
    {"MaTTHC": BARE, "TenTTHC": "Thủ tục không phí, không trực tuyến", "MaLinhVuc": "F2", "TenLinhVuc": "Lĩnh vực hai",
     "CapThucHien": [1, 2], "MucDo": 2, "ThoiHanGiaiQuyet": 5, "DonViThoiHan": "NGAY",
     "TraKetQuaGiay": False, "CoPhiLePhi": False},
]


def dossier(n: int, unit_code: str, procedure: str, received: str, due: str | None, finished: str | None = None,
            status: int | None = None, channel: int = 1, supplements: int = 0, paid: int = 0,
            digitised: bool = False, reused: bool = False, electronic: bool = False,
            refused: str | None = None) -> dict:
    """A dossier record of the contract; times as ``yyyyMMddHHmm`` (seconds 00)."""
    ts = {k: v + "00" if v else None for k, v in
          {"received": received, "due": due, "finished": finished, "refused": refused}.items()}
    status = status if status is not None else 10 if finished else 4
    updated = max(ts[k] for k in ("received", "finished", "refused") if ts[k])  # the due date is no change
    return {
        "MaHoSo": f"{unit_code}-230301-{n:05d}", "NgayCapNhat": updated, "DaXoa": False,
        "MaTTHC": procedure, "TenTTHC": "", "MaLinhVuc": "F1" if procedure == FULL else "F2", "TenLinhVuc": "",
        "DonViXuLy": unit_code, "KenhThucHien": channel, "LoaiDoiTuong": 1,
        "ChuHoSo": "Nguyễn Văn Thử", "SoDienThoai": None, "Email": None, "DinhDanhCHS": [], "TrichYeuHoSo": "",
        "NgayNopHoSo": ts["received"], "NgayTiepNhan": ts["received"], "NgayHenTra": ts["due"],
        "NgayKetThucXuLy": ts["finished"], "NgayTra": ts["finished"] if status == 10 else None,
        "NgayTuChoi": ts["refused"], "TrangThaiHoSo": status, "HoSoCoThanhPhanSoHoa": int(digitised),
        "DuocThanhToanTrucTuyen": paid,
        "TaiLieuNop": [{"TepDinhKemId": f"{n}-1", "TenTepDinhKem": "don.pdf", "MaThanhPhanHoSo": "TP01",
                        "DuongDanTaiTepTin": "", "DuocSoHoa": 0, "DuocTaiSuDung": int(reused),
                        "DuocLayTuKhoDMQG": 0}],
        "DanhSachGiayToKetQua": [{"GiayToId": f"KQ{n}", "TenGiayTo": "Kết quả", "MaGiayToKetQua": f"KQ.{n}",
                                  "DuongDanTepTinKetQua": f"/ketqua/{n}.pdf" if electronic else ""}]
        if finished else [],
        "DanhSachHoSoBoSung": [{"HoSoBoSungId": f"BS{n}-{k}", "NgayYeuCauBoSung": ts["received"],
                                "NgayBoSung": None, "NgayTiepNhanBoSung": None, "NgayHenTraTruoc": ts["due"],
                                "NgayHenTraMoi": None, "TrangThaiBoSung": 1} for k in range(supplements)],
        "QuaTrinhXuLy": [],
    }


RECORDS = [
    # S1, March: received 1 March, due 20 March, finished 5 April (late): pending overdue at the end of March
    # (in March's 2.1 denominator), then resolved late in April (in April's D).
    dossier(1, S1, FULL, "202303010800", "202303201700", "202304050900", electronic=True),
    # Refused on 25 March, withdrawn (status 7): past due, but neither is pending at the end of March.
    dossier(2, S1, FULL, "202303020800", "202303101700", status=4, refused="202303251000"),
    dossier(3, S1, FULL, "202303030800", "202303101700", status=7),
    # S1, April: resolved on time with two supplement requests (late for 2.1), online, paid, digitised,
    # reused, electronic result; and resolved on the due day after one request, in person, nothing else.
    dossier(4, S1, FULL, "202304030800", "202304201700", "202304181000", channel=2, supplements=2, paid=1,
            digitised=True, reused=True, electronic=True),
    dossier(5, S1, FULL, "202304040800", "202304251700", "202304251500", status=9, supplements=1),
    # S2: only the procedure without fees, online service or paper result.
    dossier(6, S2, BARE, "202304050800", "202304151700", "202304141000", digitised=True),
    dossier(7, S2, BARE, "202304060800", "202304201700"),  # still open: pending at April's end and tonight
    # S2, the running month (cut-off 2023-05-10 00:00): finished at 00:30 on the as-of date — not resolved
    # in May yet, pending overdue tonight; received at 00:20 — not received in May yet; resolved the day
    # before — counted; due on the as-of date itself — not overdue.
    dossier(8, S2, BARE, "202305020800", "202305081700", "202305100030", status=9),
    dossier(9, S2, BARE, "202305100020", "202305201700", status=2),
    dossier(10, S2, BARE, "202305030800", "202305091700", "202305091600"),
    dossier(11, S2, BARE, "202305040800", "202305100800"),
    # A tie at score_100 100: D1 26/26 (the bare procedure), D2 50/50 (every criterion). By unit_code D1 is
    # first; by score or points_max D2 would be.
    dossier(12, D1, BARE, "202304030800", "202304101700", "202304081000", digitised=True, reused=True),
    dossier(13, D2, FULL, "202304030800", "202304101700", "202304081000", channel=2, paid=2, digitised=True,
            reused=True, electronic=True),
    # D2 closed on 15 April: a dossier received in May (the System should have transferred it) counts in its
    # figures, but D2 is not ranked in May.
    dossier(14, D2, FULL, "202305020800", "202305201700"),
    # D3 in April: one received dossier, open, not yet due — only 4.2 and 4.3 have a rate.
    dossier(15, D3, BARE, "202304200800", "202305301700"),
    # An unknown unit: in the monthly figures, never ranked.
    dossier(16, UNKNOWN, FULL, "202304030800", "202304101700", "202304121000"),
    # S3: a department with the bare procedure only, resolved early, digitised and reused: 26 of 26.
    dossier(17, S3, BARE, "202304100800", "202304201700", "202304191000", digitised=True, reused=True),
]


def _build(url: str, extra_vars: dict, select: list[str]) -> None:
    # cautious: only the tests of the models selected, not those of other models that merely ref one of them.
    dbt_vars = json.dumps({"as_of": AS_OF.isoformat(), **extra_vars})
    proc = run_dbt(["build", "--select", *select, "--indirect-selection", "cautious", "--vars", dbt_vars], url)
    assert proc.returncode == 0, proc.stdout[-6000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The hand-made dossiers pulled into a warehouse, the index built with the default maxima, then rebuilt
    with 4.2 and 4.3 worth 0 points; the three tables of each build."""
    tmp = tmp_path_factory.mktemp("service-index")
    base = Province(Scenario(seed=3, start=date(2023, 3, 1), end=date(2023, 3, 2), scale=0.001, clock=AS_OF))
    province = StaticProvince(base, RECORDS, units=UNITS, procedures=PROCEDURES)
    with throwaway_warehouse(tmp) as wh, running_simulator(province) as sim:
        url = wh.urls["writer"]
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-03-01", "FINANCE_INBOX": str(tmp)}, warehouse_url=url)
        run_night(settings, AS_OF, run_id="index", until="land", checks=False, lease=False)
        _build(url, {}, SELECT)
        default = {t: fetch(url, t, COLUMNS[t]) for t in COLUMNS}
        _build(url, {"service_index_max_points": NO_DIGITISED_POINTS},
               ["fct_service_index_monthly", "rpt_service_index_ranking"])
        zero = {t: fetch(url, t, COLUMNS[t]) for t in ("fct_service_index_monthly", "rpt_service_index_ranking")}
    yield {"default": default, "zero": zero}


@pytest.mark.parametrize("table", list(COLUMNS))
def test_the_index_matches_the_reference(built, table):
    expected = compute_index(RECORDS, UNITS, PROCEDURES, AS_OF)[table]
    assert expected
    compare(table, built["default"][table], expected, KEYS[table])


@pytest.mark.parametrize("table", ["fct_service_index_monthly", "rpt_service_index_ranking"])
def test_the_maxima_are_vars(built, table):
    expected = compute_index(RECORDS, UNITS, PROCEDURES, AS_OF, max_points=NO_DIGITISED_POINTS)[table]
    compare(table, built["zero"][table], expected, KEYS[table])
    rows = {(r["month"], r["unit_code"], r["criterion_id"]): r for r in built["zero"]["fct_service_index_monthly"]}
    assert norm(rows[(APRIL, S1, "4.2")]["max_points"]) == 0 and norm(rows[(APRIL, S1, "4.2")]["points"]) == 0


def _monthly(built, build: str = "default") -> dict[tuple, dict]:
    return {(r["month"], r["unit_code"], r["criterion_id"]): r for r in built[build]["fct_service_index_monthly"]}


def _ranking(built, build: str = "default") -> dict[tuple, dict]:
    return {(r["month"], r["unit_code"]): r for r in built[build]["rpt_service_index_ranking"]}


def _counts(rows: dict, month: date, unit_code: str) -> dict[str, tuple]:
    return {c: (rows[(month, unit_code, c)]["numerator"], rows[(month, unit_code, c)]["denominator"])
            for c in THRESHOLDS}


def test_supplements_and_pending_overdue_by_hand(built):
    rows = _monthly(built)
    # March: S1 received 3; dossier 1 is pending overdue at 1 April 00:00; 2 was refused, 3 withdrawn.
    assert _counts(rows, MARCH, S1) == {"2.1": (0, 1), "3.3": (0, 3), "3.6": (0, 3), "4.1": (0, 0), "4.2": (0, 3),
                                        "4.3": (0, 3)}
    # April: D = {1 late, 4 on time with two supplement requests, 5 on time}: 2.1 = 1/3, 20/3 points; 3.3 1/2 of
    # 0.5 = 12; 3.6 1/2 = 3; 4.1 2/3 = 4; 4.2 1/2 of 0.8 = 2.5; 4.3 1/2 = 1.25: score 29.41666…, of 50.
    assert _counts(rows, APRIL, S1) == {"2.1": (1, 3), "3.3": (1, 2), "3.6": (1, 2), "4.1": (2, 3), "4.2": (1, 2),
                                        "4.3": (1, 2)}
    points = {c: norm(rows[(APRIL, S1, c)]["points"]) for c in THRESHOLDS}
    assert points == pytest.approx({"2.1": 20 / 3, "3.3": 12, "3.6": 3, "4.1": 4, "4.2": 2.5, "4.3": 1.25})
    ranked = _ranking(built)[(APRIL, S1)]
    assert norm(ranked["score"]) == pytest.approx(29.416666666666667)
    assert norm(ranked["points_max"]) == 50 and norm(ranked["score_100"]) == pytest.approx(58.833333333333336)
    assert norm(ranked["points_lost_2_1"]) == pytest.approx(40 / 3) and norm(ranked["points_lost_3_3"]) == 0
    lost = {(r["month"], r["dossier_id"][-5:]): r["reason"] for r in built["default"]["fct_service_index_2_1_dossiers"]
            if r["unit_code"] == S1}
    assert lost == {(MARCH, "00001"): "pending_overdue", (APRIL, "00001"): "late", (APRIL, "00004"): "supplements"}


def test_procedures_without_fees_or_online_service_leave_their_points_out(built):
    rows = _monthly(built)
    # S2 in April: only the bare procedure. 3.3, 3.6 and 4.1 have no denominator: null rate, null points.
    for c in ("3.3", "3.6", "4.1"):
        assert rows[(APRIL, S2, c)]["denominator"] == 0
        assert rows[(APRIL, S2, c)]["rate"] is None and rows[(APRIL, S2, c)]["points"] is None
    # 2.1: dossier 6 early of {6, 7 pending at 1 May} = 1/2, 10 points; 4.2 1/2 -> 2.5; 4.3 0/2: 12.5 of 26.
    ranked = _ranking(built)[(APRIL, S2)]
    assert norm(ranked["points_max"]) == 26 and norm(ranked["score"]) == pytest.approx(12.5)
    assert norm(ranked["score_100"]) == pytest.approx(12.5 / 26 * 100)
    assert ranked["points_lost_3_3"] is None and ranked["points_lost_3_6"] is None and ranked["points_lost_4_1"] is None
    assert norm(ranked["points_lost_4_3"]) == 2


def test_the_running_month_stops_at_the_as_of_date(built):
    rows = _monthly(built)
    # May up to 10 May 00:00: received 8, 10, 11 (9 came at 00:20); resolved 10 (8 finished at 00:30);
    # pending: 7 and 8 (11 is due on the as-of date itself).
    assert _counts(rows, MAY, S2)["2.1"] == (1, 3)
    assert rows[(MAY, S2, "4.2")]["denominator"] == 3
    lost = {r["dossier_id"][-5:]: r["reason"] for r in built["default"]["fct_service_index_2_1_dossiers"]
            if r["month"] == MAY}
    assert lost == {"00007": "pending_overdue", "00008": "pending_overdue"}
    assert not any(r["month"] > MAY for r in built["default"]["fct_service_index_monthly"])


def test_ties_rank_by_unit_code_and_only_units_in_force_are_ranked(built):
    ranking = _ranking(built)
    d1, d2 = ranking[(APRIL, D1)], ranking[(APRIL, D2)]
    assert (norm(d1["score_100"]), norm(d1["points_max"])) == (100, 26)
    assert (norm(d2["score_100"]), norm(d2["points_max"])) == (100, 50)
    assert (d1["rank"], d2["rank"]) == (1, 2)
    # D2 closed on 15 April: ranked in April, not in May, though May has its dossier.
    assert (MAY, D2) not in ranking and (MAY, D2, "4.2") in _monthly(built)
    # The unknown unit has figures, no rank.
    assert (APRIL, UNKNOWN, "2.1") in _monthly(built) and not any(u == UNKNOWN for _, u in ranking)
    by_level = sorted((r["rank"], r["unit_code"]) for r in built["default"]["rpt_service_index_ranking"]
                      if r["month"] == APRIL and r["level"] == 2)
    assert by_level == [(1, D1), (2, D2), (3, D3)]


def test_a_unit_with_points_max_0_is_not_ranked(built):
    # D3's April has only 4.2 and 4.3: with both worth 0 points its points_max is 0 — no row, no rank.
    assert (APRIL, D3) in _ranking(built) and (APRIL, D3) not in _ranking(built, "zero")
    assert _counts(_monthly(built, "zero"), APRIL, D3)["4.2"] == (0, 1)
    # The others keep theirs: S1's April is now 2.1, 3.3, 3.6, 4.1 only — 25.666… of 44.
    s1 = _ranking(built, "zero")[(APRIL, S1)]
    assert norm(s1["points_max"]) == 44 and norm(s1["score"]) == pytest.approx(20 / 3 + 12 + 3 + 4)
