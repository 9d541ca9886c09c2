"""Ingestion of the procedure-system API into ``raw``, against a real simulator and a real PostgreSQL.

Expectations come from the simulator's records as served (its ground truth), compared record for record
with what landed; never from the code under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta

import psycopg
import pytest

from ingestion import loads
from ingestion.client import ApiError, ProcedureApiClient
from pipeline import runs
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.server import Faults
from tests.support.ingestion import api_settings, emptied
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

SCENARIO = Scenario(seed=7, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.03,
                    clock=datetime(2023, 4, 1, 1, 0))
NIGHT = datetime(2023, 4, 1, 1, 0)
TABLES = ("raw.dossier_versions", "raw.dossier_current", "raw.reference_versions", "raw.quarantine",
          "audit.ingest_runs", "audit.watermarks", "audit.pipeline_runs")


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    with throwaway_warehouse(tmp_path_factory.mktemp("ingest-wh")) as warehouse:
        yield warehouse


@pytest.fixture(scope="module")
def province():
    return Province(SCENARIO)


@pytest.fixture
def writer(wh):
    """The writer URL of an emptied warehouse."""
    return emptied(wh.urls["writer"], TABLES)


def settings_for(sim, writer: str, **overrides) -> Settings:
    return api_settings(sim, writer, **{"PROCEDURE_API_MAX_RETRY_SECONDS": "60", **overrides})


def ingest(settings: Settings, run_id: str, night: datetime = NIGHT) -> dict:
    runs.start_run(run_id, night - timedelta(days=1), night, settings)
    reference = loads.refresh_reference(run_id, night, settings)
    dossiers = loads.pull_dossiers(run_id, "*", night, night - timedelta(days=1), settings)
    return {"reference": reference, "dossiers": dossiers}


def current_state(writer: str) -> dict[str, dict]:
    with psycopg.connect(writer) as conn:
        return {key: payload for key, payload in conn.execute("SELECT dossier_id, payload FROM raw.dossiers_current")}


def truth(province: Province) -> dict[str, dict]:
    return {r["MaHoSo"]: r for r in province.iter_all()}


def scalar(writer: str, sql: str, params=()):
    with psycopg.connect(writer) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_full_load_equals_the_ground_truth_record_for_record(province, writer):
    with running_simulator(province) as sim:
        result = ingest(settings_for(sim, writer), "full")
    expected = truth(province)
    assert current_state(writer) == expected
    assert scalar(writer, "SELECT count(*) FROM raw.dossier_current WHERE is_deleted") == \
        sum(1 for r in expected.values() if r["DaXoa"])
    assert result["dossiers"]["fetched"] == result["dossiers"]["new_versions"] == len(expected)
    with psycopg.connect(writer) as conn:
        for view, column, key, records in (
                ("raw.units", "unit_code", "MaDonVi", province.unit_records()),
                ("raw.procedures", "procedure_code", "MaTTHC", province.procedure_records()),
                ("raw.delegations", "delegation_id", "MaUyQuyen", province.delegation_records())):
            landed = dict(conn.execute(f"SELECT {column}, payload FROM {view}").fetchall())
            assert landed == {r[key]: r for r in records}, view
        # Reconciliation is recorded per window: fetched = landed + duplicates + quarantined = reported.
        for reported, recount, fetched, landed, dup, quarantined in conn.execute(
                "SELECT reported, recount, fetched, landed, duplicates, quarantined FROM audit.ingest_runs"):
            assert fetched == landed + dup + quarantined
            assert (recount if recount is not None else reported) == landed + quarantined


def test_personal_data_stays_in_raw(province, writer):
    with running_simulator(province) as sim:
        ingest(settings_for(sim, writer), "pd")
    assert scalar(writer, "SELECT count(*) FROM raw.dossiers_current WHERE payload ? 'ChuHoSo'") > 0


def test_a_second_run_of_the_same_window_changes_nothing(province, writer):
    with running_simulator(province) as sim:
        s = settings_for(sim, writer)
        ingest(s, "first")
        before = scalar(writer, "SELECT count(*) FROM raw.dossier_versions")
        changed = scalar(writer, "SELECT max(changed_at) FROM raw.dossier_current")
        again = ingest(s, "second")
    assert again["dossiers"]["new_versions"] == 0
    assert all(v["new_versions"] == 0 and v["closed"] == 0 for v in again["reference"].values())
    assert scalar(writer, "SELECT count(*) FROM raw.dossier_versions") == before
    assert scalar(writer, "SELECT max(changed_at) FROM raw.dossier_current") == changed
    assert current_state(writer) == truth(province)


def test_night_by_night_yields_exactly_the_current_state(writer):
    province = Province(replace(SCENARIO, clock=datetime(2023, 3, 1, 1)))
    seen_versions = set()
    with running_simulator(province) as sim:
        s = settings_for(sim, writer)
        for night in range(5):
            clock = datetime(2023, 3, 1, 1) + timedelta(days=night)
            province.set_clock(clock)
            seen_versions |= {(r["MaHoSo"], r["NgayCapNhat"]) for r in province.iter_all()}
            result = ingest(s, f"night-{night}", clock)
            if night:
                # Incremental: only the day's changes (plus the look-back overlap) are fetched.
                assert result["dossiers"]["fetched"] < len(province.index.rows) / 10
            assert current_state(writer) == truth(province)
    assert scalar(writer, "SELECT count(*) FROM raw.dossier_versions") == len(seen_versions)
    assert scalar(writer, "SELECT max(watermark) FROM audit.watermarks") == datetime(2023, 3, 5, 1)


def test_a_missed_night_is_caught_up(writer):
    province = Province(replace(SCENARIO, clock=datetime(2023, 3, 1, 1)))
    with running_simulator(province) as sim:
        s = settings_for(sim, writer)
        ingest(s, "before-gap", datetime(2023, 3, 1, 1))
        province.set_clock(datetime(2023, 3, 4, 1))
        ingest(s, "after-gap", datetime(2023, 3, 4, 1))
        assert current_state(writer) == truth(province)


def test_every_fault_mode_on_together_still_yields_the_exact_same_result(province, writer):
    faults = Faults(server_error=0.15, rate_limit=0.1, slow=0.05, truncate=0.15, duplicate=0.3, extra_fields=0.05,
                    retry_after=1, slow_seconds=0.3, seed=3)
    with running_simulator(province, faults) as sim:
        s = settings_for(sim, writer, PROCEDURE_API_PAGE_SIZE="200")
        result = ingest(s, "faults")
    landed = current_state(writer)
    expected = truth(province)
    assert landed.keys() == expected.keys()
    drifted = 0
    for key, record in landed.items():
        if "TruongMoi" in record:  # unknown fields are kept, not dropped
            drifted += 1
            record = {k: v for k, v in record.items() if k != "TruongMoi"}
        assert record == expected[key]
    assert drifted > 0
    assert result["dossiers"]["retries"] > 0 and result["dossiers"]["duplicates"] > 0
    assert result["dossiers"]["new_versions"] == len(expected)


def test_malformed_records_land_in_quarantine_with_a_reason(province, writer):
    with running_simulator(province, Faults(malformed=0.02)) as sim:
        result = ingest(settings_for(sim, writer), "malformed")
    assert result["dossiers"]["quarantined"] > 0
    with psycopg.connect(writer) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM raw.quarantine WHERE source = 'dossiers'")]
        texts = [t for (t,) in conn.execute("SELECT raw_text FROM raw.quarantine")]
    assert len(reasons) == result["dossiers"]["quarantined"]
    assert {r.split(":")[0].split(" (")[0] for r in reasons} >= {"not a JSON object", "no key",
                                                                 "NgayCapNhat missing or not yyyyMMddHHmmss"}
    assert all(t for t in texts)
    # Nothing else is lost: every record the API sent is landed or quarantined.
    assert len(current_state(writer)) + result["dossiers"]["quarantined"] == len(province.index.rows)


def test_fails_fast_on_a_bad_token(province, writer):
    with running_simulator(province) as sim:
        client = ProcedureApiClient(sim.url, "wrong-token", max_retry_seconds=60)
        t0 = time.monotonic()
        with pytest.raises(ApiError, match="401"):
            list(client.pages("units"))
        assert time.monotonic() - t0 < 2


def test_gives_up_after_the_retry_budget(province):
    with running_simulator(province, Faults(server_error=1.0)) as sim:
        client = ProcedureApiClient(sim.url, sim.token, max_retry_seconds=2, backoff_base=0.2)
        with pytest.raises(ApiError, match="gave up"):
            list(client.pages("units"))


def test_a_run_killed_mid_window_recovers_on_rerun(province, writer):
    """Kill the loader (SIGKILL) after its first committed window: no partial window remains, and a
    rerun continues from the last committed watermark to the exact current state. (Windows load in
    parallel, so a later window may be committed while an earlier one was not: it must be complete.)"""
    with running_simulator(province, Faults(slow=1.0, slow_seconds=0.15)) as sim:
        env = {**os.environ, "PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
               "HISTORY_START": "2023-01-01", "WAREHOUSE_WRITER_URL": writer, "PROCEDURE_API_PAGE_SIZE": "50"}
        code = ("from datetime import datetime; from ingestion.loads import pull_dossiers; "
                "pull_dossiers('killed', '*', datetime(2023, 4, 1, 1))")
        child = subprocess.Popen([sys.executable, "-c", code], env=env)
        try:
            deadline = time.monotonic() + 120
            while scalar(writer, "SELECT count(*) FROM audit.watermarks") == 0:
                assert child.poll() is None, "the loader ended before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # well inside the second window
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
        watermark = scalar(writer, "SELECT watermark FROM audit.watermarks")
        assert watermark < datetime(2023, 4, 1, 1)
        expected = truth(province)
        with psycopg.connect(writer) as conn:
            committed = conn.execute("SELECT window_start, window_end FROM audit.ingest_runs "
                                     "WHERE source = 'dossiers' ORDER BY window_start").fetchall()
            versions = {k: p for k, p in conn.execute("SELECT dossier_id, payload FROM raw.dossier_versions")}
        # The watermark never passes a window that is not committed...
        covered = datetime(2023, 1, 1)
        for start, end in committed:
            if start <= covered:
                covered = max(covered, end)
        assert watermark <= covered
        # ...and every committed window is complete, while nothing of an uncommitted one was kept.
        def in_committed(ts: str) -> bool:
            t = datetime.strptime(ts, "%Y%m%d%H%M%S")
            return any(start <= t < end for start, end in committed)
        assert versions == {k: r for k, r in expected.items() if in_committed(r["NgayCapNhat"])}
        assert len(versions) < len(expected)
        loads.pull_dossiers("rerun", "*", NIGHT, settings=settings_for(sim, writer))
    assert current_state(writer) == truth(province)


def test_partitioned_pull_covers_everything(province, writer):
    with running_simulator(province) as sim:
        s = settings_for(sim, writer, INGEST_PARTITION="district")
        partitions = loads.plan_dossier_partitions(s)
        assert len(partitions) > 18
        loads.refresh_reference("part", NIGHT, s)
        results = [loads.pull_dossiers("part", p, NIGHT, settings=s) for p in partitions]
        completion = loads.complete_partitions("part", NIGHT, results, settings=s)
    # Dossiers of the province unit itself are in no partition: the completion step fetched them.
    assert completion["fetched"] > 0
    assert current_state(writer) == truth(province)
