"""The simulator serves ../shared/spec/procedure-api.md exactly: envelope, pagination, filters, errors, formats.

Checked over real HTTP against the running simulator; expectations come from the contract text.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta

import pytest
import requests

from simulator.server import Faults
from tests.support.simulator import running_simulator

TS = re.compile(r"^\d{14}$")
DATE = re.compile(r"^\d{8}$")
TS_FIELDS = ("NgayCapNhat", "NgayNopHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra",
             "NgayTuChoi")


def get(sim, path, token=True, **params):
    headers = {"Authorization": f"Bearer {sim.token}"} if token else {}
    return requests.get(sim.url + path, params=params, headers=headers, timeout=30)


def fmt(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S")


def windows(start: datetime, end: datetime, days: int = 31):
    cur = start
    while cur < end:
        nxt = min(cur + timedelta(days=days), end)
        yield cur, nxt
        cur = nxt


def pull(sim, frm: datetime, to: datetime, limit: int = 500, **extra) -> tuple[list[dict], list[int]]:
    """Every page of one window; returns the records and each page's ``total``."""
    records, totals, cursor = [], [], None
    while True:
        params = {"updated_from": fmt(frm), "updated_to": fmt(to), "limit": limit, **extra}
        if cursor:
            params["cursor"] = cursor
        r = get(sim, "/dossiers", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"error_code", "message", "total", "next_cursor", "data"}
        assert body["error_code"] == "00"
        records += body["data"]
        totals.append(body["total"])
        cursor = body["next_cursor"]
        if cursor is None:
            return records, totals


def full_pull(sim, limit=500, **extra):
    start = datetime(2022, 12, 1)
    end = sim.province.clock + timedelta(seconds=1)
    out = []
    for frm, to in windows(start, end):
        recs, totals = pull(sim, frm, to, limit=limit, **extra)
        assert len(set(totals)) == 1 and totals[0] == len(recs)
        out += recs
    return out


def test_pagination_covers_every_record_exactly_once_in_order(served):
    expected = list(served.province.iter_all())
    got = full_pull(served, limit=97)
    codes = [r["MaHoSo"] for r in got]
    assert len(codes) == len(set(codes)), "a record appeared twice without any fault"
    assert sorted(codes) == sorted(r["MaHoSo"] for r in expected)
    assert got == expected  # same records, same order
    order = [(r["NgayCapNhat"], r["MaHoSo"]) for r in got]
    assert order == sorted(order), "dossiers are not ordered by (NgayCapNhat, MaHoSo)"


def test_window_is_inclusive_from_and_exclusive_to(served):
    recs = list(served.province.iter_all())
    pivot = recs[len(recs) // 2]["NgayCapNhat"]
    pivot_dt = datetime.strptime(pivot, "%Y%m%d%H%M%S")
    at_pivot = {r["MaHoSo"] for r in recs if r["NgayCapNhat"] == pivot}
    before, _ = pull(served, pivot_dt - timedelta(days=2), pivot_dt)
    from_pivot, _ = pull(served, pivot_dt, pivot_dt + timedelta(days=2))
    assert not at_pivot & {r["MaHoSo"] for r in before}
    assert at_pivot <= {r["MaHoSo"] for r in from_pivot}
    for r in before:
        assert pivot_dt - timedelta(days=2) <= datetime.strptime(r["NgayCapNhat"], "%Y%m%d%H%M%S") < pivot_dt


def test_don_vi_filter_returns_the_unit_and_its_descendants(served):
    units = get(served, "/units", limit=1000).json()["data"]
    district = next(u for u in units if u["LoaiDonVi"] == "UBND_HUYEN" and u["TenDonVi"].endswith("Đại Lộc"))
    family = {district["MaDonVi"]} | {u["MaDonVi"] for u in units if u["MaDonViCha"] == district["MaDonVi"]}
    everything = full_pull(served)
    expected = [r for r in everything if r.get("DonViXuLy") in family]
    got = full_pull(served, don_vi=district["MaDonVi"])
    assert got and [r["MaHoSo"] for r in got] == [r["MaHoSo"] for r in expected]


def test_reference_endpoints_page_with_cursors(served):
    for path, key in (("/units", "MaDonVi"), ("/procedures", "MaTTHC"), ("/delegations", "MaUyQuyen")):
        first = get(served, path).json()
        seen, cursor, total = [], None, first["total"]
        while True:
            body = get(served, path, limit=7, **({"cursor": cursor} if cursor else {})).json()
            assert body["error_code"] == "00" and body["total"] == total
            seen += [r[key] for r in body["data"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == total == len(first["data"]), path


def test_record_shapes_and_timestamp_formats(served):
    recs = full_pull(served)
    live = [r for r in recs if not r["DaXoa"]]
    assert any(r["DaXoa"] for r in recs), "no tombstones in the scenario"
    missing_forms = set()
    for r in live:
        for f in TS_FIELDS:
            v = r[f]
            if v in (None, ""):
                missing_forms.add(repr(v))
        assert TS.match(r["NgayCapNhat"])
        for step in r["QuaTrinhXuLy"]:
            assert TS.match(step["ThoiDiemXuLy"])
        assert re.match(r"^\d{3}\.\d{2}\.\d{2}\.H47-\d{6}-\d{5}$", r["MaHoSo"])
        for key in ("TaiLieuNop", "DanhSachGiayToKetQua", "DanhSachHoSoBoSung", "QuaTrinhXuLy", "DinhDanhCHS"):
            assert isinstance(r[key], list)
    assert missing_forms == {"None", "''"}, "missing values must come both as null and as empty string"
    valid = sum(all(r[f] in (None, "") or TS.match(r[f]) for f in TS_FIELDS) for r in live)
    assert valid / len(live) > 0.99
    for u in get(served, "/units", limit=1000).json()["data"]:
        assert DATE.match(u["HieuLucTu"]) and (u["HieuLucDen"] is None or DATE.match(u["HieuLucDen"]))
    for d in get(served, "/delegations", limit=1000).json()["data"]:
        assert TS.match(d["NgayCapNhat"]) and DATE.match(d["NgayKeHoach"])


@pytest.mark.parametrize("params, message", [
    ({"updated_from": "20230101000000", "updated_to": "20230202000001"}, "31 days"),
    ({"updated_from": "2023-01-01", "updated_to": "20230102000000"}, "yyyyMMddHHmmss"),
    ({"updated_from": "20230101000000"}, "required"),
    ({"updated_from": "20230101000000", "updated_to": "20230102000000", "limit": "0"}, "limit"),
    ({"updated_from": "20230101000000", "updated_to": "20230102000000", "limit": "1001"}, "limit"),
    ({"updated_from": "20230101000000", "updated_to": "20230102000000", "cursor": "not-a-cursor"}, "cursor"),
    ({"updated_from": "20230101000000", "updated_to": "20230102000000", "don_vi": "000.99.99.H47"}, "don_vi"),
])
def test_bad_parameters_are_400(served, params, message):
    r = get(served, "/dossiers", **params)
    assert r.status_code == 400 and r.json()["error_code"] == "400"
    assert message in r.json()["message"]


def test_a_cursor_cannot_be_replayed_on_another_window(served):
    body = get(served, "/dossiers", updated_from="20230101000000", updated_to="20230201000000", limit=5).json()
    assert body["next_cursor"]
    r = get(served, "/dossiers", updated_from="20230101000000", updated_to="20230115000000",
            cursor=body["next_cursor"])
    assert r.status_code == 400
    base64.urlsafe_b64decode(body["next_cursor"] + "==")  # opaque but well-formed base64


def test_exactly_31_days_is_allowed(served):
    r = get(served, "/dossiers", updated_from="20230101000000", updated_to="20230201000000", limit=1)
    assert r.status_code == 200


def test_auth_and_unknown_paths(served):
    assert get(served, "/dossiers", token=False, updated_from="20230101000000",
               updated_to="20230102000000").status_code == 401
    r = requests.get(served.url + "/units", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert r.status_code == 401 and r.json()["error_code"] == "401"
    r = get(served, "/nothing-here")
    assert r.status_code == 404 and r.json()["error_code"] == "404"


def test_total_is_frozen_at_the_first_page(small_province):
    with running_simulator(small_province) as sim:
        frm, to = "20230301000000", "20230401010000"
        first = get(sim, "/dossiers", updated_from=frm, updated_to=to, limit=50).json()
        clock = sim.province.clock
        try:
            requests.post(sim.url.replace("/api/v1", "") + "/_sim/clock", params={"to": "20230301000000"},
                          headers={"Authorization": f"Bearer {sim.token}"}, timeout=30).raise_for_status()
            second = get(sim, "/dossiers", updated_from=frm, updated_to=to, limit=50,
                         cursor=first["next_cursor"]).json()
            assert second["total"] == first["total"]
        finally:
            sim.province.set_clock(clock)


def test_rate_limit_fault_sends_retry_after(small_province):
    with running_simulator(small_province, Faults(rate_limit=1.0, retry_after=3)) as sim:
        r = get(sim, "/units")
        assert r.status_code == 429 and r.headers["Retry-After"] == "3" and r.json()["error_code"] == "429"


def test_server_error_fault(small_province):
    with running_simulator(small_province, Faults(server_error=1.0)) as sim:
        statuses = {get(sim, "/units").status_code for _ in range(12)}
        assert statuses <= {500, 502, 503, 504} and len(statuses) > 1


def test_truncated_body_fault(small_province):
    with running_simulator(small_province, Faults(truncate=1.0)) as sim:
        broken = 0
        for _ in range(6):
            try:
                get(sim, "/units").json()
            except (ValueError, requests.exceptions.RequestException):
                broken += 1
        assert broken == 6


def test_extra_fields_and_duplicates_faults(small_province):
    with running_simulator(small_province, Faults(extra_fields=0.5, duplicate=1.0)) as sim:
        recs, _ = pull(sim, datetime(2023, 2, 1), datetime(2023, 3, 1), limit=100)
        codes = [r["MaHoSo"] for r in recs]
        assert len(codes) > len(set(codes)), "duplicate fault produced no repeated records"
        assert any("TruongMoi" in r for r in recs)
        assert set(codes) == {r["MaHoSo"] for r in small_province.iter_all()
                              if "20230201000000" <= r["NgayCapNhat"] < "20230301000000"}


def test_slow_fault_delays_answers(small_province):
    with running_simulator(small_province, Faults(slow=1.0, slow_seconds=0.5)) as sim:
        r = get(sim, "/units")
        assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.5


def test_faults_are_off_by_default():
    f = Faults.from_env({})
    assert (f.server_error, f.rate_limit, f.slow, f.truncate, f.duplicate, f.extra_fields) == (0, 0, 0, 0, 0, 0)
    g = Faults.from_env({"SIM_FAULTS": "all:0.2", "SIM_FAULT_429": "0.5"})
    assert g.server_error == 0.2 and g.rate_limit == 0.5
