"""The service index built night by night from what changed (macros/service_index.sql) equals the spec's
figures computed from scratch, every night.

Hand-made dossiers served through the API contract and changed between nights: a dossier pending overdue at
two month ends that is then resolved, one deleted, one moved to another unit after its month has closed,
one received in the future (a VAL01 error) that the as-of date overtakes without any change, the running
month crossing into the next, a procedure catalogue that changes, and a night re-run for an earlier date
(the as-of date going backwards). Each night lands the changes and runs the incremental ``dbt build``; the
three service-index tables must then equal ``tests/support/reference_index.py``'s reading of the records as
they stand, and the change log must hold the night's changed dossiers and nothing else — the marts read
those, not the history. The status snapshot, built the same nights from the changed dossiers alone, must hold
every version seen, each valid until the next.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import psycopg
import pytest

from ops.dbt import run_dbt
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.static import StaticProvince
from tests.dbt.test_service_index import BARE, D1, FULL, PROCEDURES, S1, S2, UNITS, dossier
from tests.support.marts import compare, fetch
from tests.support.postgres import throwaway_warehouse
from tests.support.reference_index import COLUMNS, KEYS, compute_index
from tests.support.simulator import running_simulator

SELECT = ["+rpt_service_index_ranking", "+fct_service_index_2_1_dossiers", "+snap_dossier_status"]


def version(rec: dict, updated: str, **changes) -> dict:
    """A new version of ``rec`` sent at ``updated`` (yyyyMMddHHmm)."""
    return {**rec, **changes, "NgayCapNhat": updated + "00"}


def ts(value: str) -> str:
    return value + "00"


# The history landed on the first night (2023-04-20): every version is older than that night.
A = dossier(1, S1, FULL, "202302010800", "202302201700")  # open, overdue since February: pending at 3 month ends
B = dossier(2, S1, FULL, "202304030800", "202304101700", "202304081000", electronic=True)  # resolved on time
C = dossier(3, S1, BARE, "202303050800", "202303151700", "202303201000")  # resolved late in March
E = dossier(4, D1, FULL, "202303100800", "202303121700")  # open, overdue: deleted on the second night
F = {**dossier(5, S2, BARE, "202305010800", "202305201700"), "NgayCapNhat": ts("202304190900")}  # received "in May"
K = dossier(6, D1, BARE, "202303200800", "202303251700", "202304020900", supplements=2)  # late, two supplements
NIGHT_1 = [A, B, C, E, F, K]

# The second night (2023-04-21): A resolved late, E deleted, C and K changed without moving, a new dossier G,
# and H — received in January, due in January, landed only now, resolved yesterday: rows in three closed months.
A2 = version(A, "202304201000", NgayKetThucXuLy=ts("202304201000"), NgayTra=ts("202304201000"), TrangThaiHoSo=10)
E2 = version(E, "202304201100", DaXoa=True)
C2 = version(C, "202304201200", HoSoCoThanhPhanSoHoa=1)
K2 = version(K, "202304201300", DanhSachHoSoBoSung=K["DanhSachHoSoBoSung"][:1])  # one request: no more a loss
G = dossier(7, S2, BARE, "202304200800", "202304221700")
H = dossier(8, D1, FULL, "202301100800", "202301201700", "202304201400")
NIGHT_2 = [A2, B, C2, E2, F, K2, G, H]

# The third night (2023-05-02): the running month is May; B moves to S2 (its April has closed); F, received on
# 1 May, is now before the cut-off without having changed.
B3 = version(B, "202305011000", DonViXuLy=S2)
NIGHT_3 = [A2, B3, C2, E2, F, K2, G, H]

# The fourth night (2023-05-03): no dossier changes; the bare procedure now has fees (3.6 judges its dossiers).
PROCEDURES_4 = [PROCEDURES[0], {**PROCEDURES[1], "CoPhiLePhi": True}]

NIGHTS = [
    (datetime(2023, 4, 20, 1), NIGHT_1, PROCEDURES, {d["MaHoSo"] for d in NIGHT_1}),
    (datetime(2023, 4, 21, 1), NIGHT_2, PROCEDURES, {d["MaHoSo"] for d in (A2, E2, C2, K2, G, H)}),
    (datetime(2023, 5, 2, 1), NIGHT_3, PROCEDURES, {B3["MaHoSo"]}),
    (datetime(2023, 5, 3, 1), NIGHT_3, PROCEDURES_4, set()),
]
RERUN = datetime(2023, 4, 25, 1)  # a night re-run for an earlier date: the as-of date goes backwards


def _build(url: str, as_of: datetime) -> str:
    # no wall-clock look-back: the nights are seconds apart here; models and the snapshot, no tests: the figures
    # are what is checked here, the marts' dbt tests run in tests/dbt/test_service_index.py
    dbt_vars = json.dumps({"as_of": as_of.isoformat(), "incremental_lookback_minutes": 0})
    proc = run_dbt(["build", "--select", *SELECT, "--exclude-resource-type", "test", "unit_test",
                    "--vars", dbt_vars], url)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _check(url: str, records: list[dict], procedures: list[dict], as_of: datetime, label: str) -> None:
    expected = compute_index(records, UNITS, procedures, as_of)
    for table in COLUMNS:
        assert expected[table], f"{label}: {table} is expected to have rows"
        compare(f"{label}: {table}", fetch(url, table, COLUMNS[table]), expected[table], KEYS[table])


def _see(seen: dict[str, dict[str, dict]], records: list[dict]) -> None:
    """Adds the night's version of each dossier to the versions the warehouse has seen (by NgayCapNhat)."""
    for rec in records:
        seen.setdefault(rec["MaHoSo"], {})[rec["NgayCapNhat"]] = rec


def _check_status_history(url: str, seen: dict[str, dict[str, dict]], label: str) -> None:
    """snap_dossier_status is every version seen, each valid from its NgayCapNhat to the next one's (SCD2);
    the night's snapshot reads the changed dossiers' current versions only (macros/snapshots.sql)."""
    expected = set()
    for dossier_id, versions in seen.items():
        times = sorted(versions)
        for i, t in enumerate(times):
            rec = versions[t]
            expected.add((dossier_id, rec["TrangThaiHoSo"], rec["DonViXuLy"], bool(rec.get("DaXoa")),
                          datetime.strptime(t, "%Y%m%d%H%M%S"),
                          datetime.strptime(times[i + 1], "%Y%m%d%H%M%S") if i + 1 < len(times) else None))
    with psycopg.connect(url) as conn:
        actual = set(conn.execute("SELECT dossier_id, status, unit_code, is_deleted, dbt_valid_from, dbt_valid_to "
                                  "FROM intermediate.snap_dossier_status").fetchall())
    assert actual == expected, f"{label}: missing {expected - actual}, unexpected {actual - expected}"


def _logged_since(url: str, last_id: int) -> tuple[set[str], int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, dossier_id FROM intermediate.service_index_changes WHERE id > %s",
                            (last_id,)).fetchall()
        top = conn.execute("SELECT coalesce(max(id), 0) FROM intermediate.service_index_changes").fetchone()[0]
    return {d for _, d in rows}, max(top, last_id)


@pytest.mark.slow
def test_nights_of_the_index_equal_the_spec_every_night(tmp_path):
    base = Province(Scenario(seed=3, start=date(2023, 1, 1), end=date(2023, 1, 2), scale=0.001,
                             clock=NIGHTS[0][0]))
    province = StaticProvince(base, NIGHT_1, units=UNITS, procedures=PROCEDURES)
    with throwaway_warehouse(tmp_path) as wh, running_simulator(province) as sim:
        url = wh.urls["writer"]
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-01-01", "FINANCE_INBOX": str(tmp_path)},
                                     warehouse_url=url)
        last_id, seen = 0, {}
        for n, (night, records, procedures, changed) in enumerate(NIGHTS):
            province.set_records(records)
            province.procedures_override = procedures
            province.set_clock(night)
            run_night(settings, night, run_id=f"night-{n}", until="land", checks=False, lease=False)
            _build(url, night)
            _check(url, records, procedures, night, f"night {n}")
            _see(seen, records)
            _check_status_history(url, seen, f"night {n}")
            if n:  # the first night builds everything; later ones log exactly the dossiers that changed
                logged, last_id = _logged_since(url, last_id)
                assert logged == changed, f"night {n}"
            else:
                _, last_id = _logged_since(url, last_id)
            with psycopg.connect(url) as conn:
                built = dict(conn.execute("SELECT model, as_of FROM intermediate.service_index_builds"))
            assert built == {"fct_service_index_monthly": night.date(), "fct_service_index_2_1_dossiers": night.date()}

        # The as-of date going backwards: May's rows go, April is counted up to the 25th again.
        _build(url, RERUN)
        _check(url, NIGHT_3, PROCEDURES_4, RERUN, "re-run")
        # And forwards again: April and May counted again, up to the 3rd of May.
        _build(url, NIGHTS[-1][0])
        _check(url, NIGHT_3, PROCEDURES_4, NIGHTS[-1][0], "forwards again")


def test_the_cases_are_what_they_claim():
    """The records make the cases the nights are about (so the test cannot pass on empty figures)."""
    first = compute_index(NIGHT_1, UNITS, PROCEDURES, NIGHTS[0][0])["fct_service_index_2_1_dossiers"]
    pending_a = sorted(r["month"] for r in first if r["dossier_id"] == A["MaHoSo"])
    assert pending_a == [date(2023, 2, 1), date(2023, 3, 1), date(2023, 4, 1)]
    assert any(r["dossier_id"] == E["MaHoSo"] for r in first)
    assert not any(r["dossier_id"] == F["MaHoSo"] for r in first)
    second = compute_index(NIGHT_2, UNITS, PROCEDURES, NIGHTS[1][0])["fct_service_index_2_1_dossiers"]
    assert {r["month"] for r in second if r["dossier_id"] == H["MaHoSo"]} == {
        date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1), date(2023, 4, 1)}
    assert not any(r["dossier_id"] == E["MaHoSo"] for r in second)
    monthly = compute_index(NIGHT_3, UNITS, PROCEDURES, NIGHTS[2][0])["fct_service_index_monthly"]
    assert any(r["unit_code"] == S2 and r["month"] == date(2023, 5, 1) and r["criterion_id"] == "4.2"
               and r["denominator"] == 1 for r in monthly), "F is received in May by the third night"
    fees = compute_index(NIGHT_3, UNITS, PROCEDURES_4, NIGHTS[3][0])["fct_service_index_monthly"]
    may_fees = [(r["denominator"], s["denominator"]) for r in monthly for s in fees
                if r["criterion_id"] == s["criterion_id"] == "3.6" and r["unit_code"] == s["unit_code"] == S2
                and r["month"] == s["month"] == date(2023, 5, 1)]
    assert may_fees == [(0, 1)], "F's procedure has fees from the fourth night on"
