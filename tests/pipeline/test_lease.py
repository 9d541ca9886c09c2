"""Two runs cannot interleave: the warehouse's lease, and the unique keys the incremental marts enforce.

Against a real PostgreSQL and real dbt: a second run waits, then fails naming the holder; a run killed
without releasing frees the lease at its expiry or when its run is recorded as finished; a dbt invocation
of a run that lost the lease stops before touching anything; a second row for a dossier (or a second set
of pending-overdue rows for one date) fails the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime

import psycopg
import pytest

from ops.dbt import run_dbt
from pipeline import lease
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with throwaway_warehouse(tmp_path_factory.mktemp("lease")) as wh:
        yield wh.urls["writer"]


@pytest.fixture(autouse=True)
def free(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE audit.run_lease, audit.pipeline_runs")
    return url


def record_run(url: str, run_id: str, status: str = "running") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit.pipeline_runs (run_id, run_date, interval_end, status) "
                     "VALUES (%s, current_date, now(), %s)", (run_id, status))


def test_a_second_run_waits_then_fails_naming_the_holder(url):
    record_run(url, "night-1")
    lease.acquire(url, "night-1")
    t0 = time.monotonic()
    with pytest.raises(lease.LeaseHeld) as held:
        lease.acquire(url, "make-run", wait_seconds=1.5, poll_seconds=0.2)
    assert 1.4 < time.monotonic() - t0 < 10
    assert "run night-1" in str(held.value) and f"pid {os.getpid()}" in str(held.value)
    assert "python -m pipeline lease --break" in str(held.value)
    # The holder's tasks renew it; a retry of the holder takes it again.
    lease.check(url, "night-1")
    assert lease.acquire(url, "night-1").run_id == "night-1"
    with pytest.raises(lease.LeaseLost):
        lease.check(url, "make-run")


def test_the_second_run_starts_as_soon_as_the_first_releases(url):
    record_run(url, "night-1")
    lease.acquire(url, "night-1")
    threading.Timer(0.8, lambda: lease.release(url, "night-1")).start()
    t0 = time.monotonic()
    assert lease.acquire(url, "night-2", wait_seconds=20, poll_seconds=0.2).run_id == "night-2"
    assert 0.7 < time.monotonic() - t0 < 10
    assert not lease.release(url, "night-1"), "a run cannot release a lease it does not hold"


def test_a_dead_runs_lease_frees_itself(url):
    # expired
    record_run(url, "killed")
    lease.acquire(url, "killed", ttl_seconds=0.5)
    time.sleep(0.7)
    assert lease.acquire(url, "next", wait_seconds=0).run_id == "next"
    # its run recorded as finished (e.g. failed), but the lease never released
    record_run(url, "crashed", status="failed")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE audit.run_lease SET run_id = 'crashed'")
    assert lease.acquire(url, "after", wait_seconds=0).run_id == "after"


def test_the_documented_commands_show_and_break_the_lease(url):
    record_run(url, "stuck")
    lease.acquire(url, "stuck")
    env = {**os.environ, "WAREHOUSE_WRITER_URL": url}
    shown = subprocess.run([sys.executable, "-m", "pipeline", "lease"], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "held by run stuck" in shown.stdout
    broken = subprocess.run([sys.executable, "-m", "pipeline", "lease", "--break"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert broken.returncode == 0 and "freed the lease of run stuck" in broken.stdout
    assert lease.read(url) is None


def test_a_dbt_invocation_of_a_run_without_the_lease_stops(url):
    record_run(url, "holder")
    lease.acquire(url, "holder")
    refused = run_dbt(["run", "--select", "stg_api__units", "--vars", json.dumps({"pipeline_run_id": "intruder"})],
                      url)
    assert refused.returncode != 0 and "does not hold the warehouse's lease" in refused.stdout
    allowed = run_dbt(["run", "--select", "stg_api__units", "--vars", json.dumps({"pipeline_run_id": "holder"})],
                      url)
    assert allowed.returncode == 0, allowed.stdout[-2000:]


def test_the_incremental_marts_refuse_a_second_row_for_a_key(url):
    as_of = datetime(2023, 4, 1, 1).isoformat()
    proc = run_dbt(["run", "--select", "+fct_pending_overdue", "--vars", json.dumps({"as_of": as_of})], url)
    assert proc.returncode == 0, proc.stdout[-3000:]
    again = run_dbt(["run", "--select", "fct_pending_overdue", "--vars", json.dumps({"as_of": as_of})], url)
    assert again.returncode == 0, "a rerun of the same date replaces its set"
    with psycopg.connect(url, autocommit=True) as conn:
        row = ("INSERT INTO marts.fct_dossier (dossier_id, is_received, is_resolved, is_online, is_paper_intake, "
               "intake_digitised, updated_at, is_in_processing, source_changed_at) "
               "VALUES ('X-1', true, false, false, false, false, now(), true, now())")
        conn.execute(row)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(row)
        conn.execute("INSERT INTO marts.fct_pending_overdue VALUES ('2023-04-02', NULL, 1, 0)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO marts.fct_pending_overdue VALUES ('2023-04-02', NULL, 1, 0)")
