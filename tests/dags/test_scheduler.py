"""The scheduled path for real: ``make airflow``'s stack (``python -m ops.airflow standalone``: scheduler,
api-server, dag-processor, triggerer under ``ops.supervisor``) against a throw-away warehouse and a
simulator. Every DAG parses, one night of ``cchc_nightly`` triggered through the REST API runs through the
scheduler and the LocalExecutor into the warehouse, SIGTERM stops everything; and a component that dies
brings the whole stack down loudly, naming it.

The stack is started with the very command ``make airflow`` runs, in its own process group, with its own
``AIRFLOW_HOME`` and free ports (api-server, the worker's and the triggerer's log servers), so it runs beside
a developer's Airflow. Two settings differ from a production night, both for the test's cost:
``PIPELINE_TASK_RETRIES=0`` and ``AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False`` (the scheduler creates no run
of its own — today's night, the weekly one — beside the one the test triggers; triggered runs still run).
The dbt groups run at the default grain (one ``dbt build`` per group).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
import requests

from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.airflow_home import premigrated_home
from tests.support.airflow_stack import STARTUP_TIMEOUT, Stack, kill_leftovers, parent_of, wait_gone
from tests.support.airflow_stack import stack_environment as support_environment
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

SCENARIO = Scenario(seed=21, start=date(2023, 1, 1), end=date(2023, 1, 31), scale=0.005,
                    clock=datetime(2023, 2, 1, 1))
DAGS = {"cchc_nightly", "cchc_monthly_publication", "cchc_weekly_integrity"}
COMPONENTS = {"scheduler", "api-server", "dag-processor", "triggerer"}
# The venv's own airflow script, by absolute path (its shebang makes the venv's python the process' argv[0]).
AIRFLOW = str(PROJECT_ROOT / ".venv" / "bin" / "airflow")
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[tuple]:
    """One throw-away warehouse, one simulator serving January 2023, one finance inbox."""
    base = tmp_path_factory.mktemp("scheduler")
    inbox = base / "inbox"
    write_workbooks(inbox, investors(), date(2023, 1, 1), date(2023, 1, 31), seed=21)
    province = Province(SCENARIO)
    with throwaway_warehouse(base / "wh") as wh, running_simulator(province) as sim:
        yield wh, sim, inbox


def stack_environment(home: Path, services: tuple) -> dict[str, str]:
    """The environment ``make airflow`` would see on a machine configured for this test."""
    wh, sim, inbox = services
    return support_environment(home, wh, sim.url, sim.token, inbox)


def second_run_while_the_first_writes(stack: Stack, wh, tmp_path: Path) -> tuple[str, subprocess.CompletedProcess]:
    """Once the scheduled run holds the warehouse's lease, a second night of the same DAG through
    ``python -m ops.airflow test-dag`` (what a ``make run`` beside it does), with its own Airflow state: it
    must wait ``PIPELINE_LOCK_WAIT_SECONDS``, then fail naming the holder. Returns (holder, its outcome)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    holder = None
    while holder is None and time.monotonic() < deadline:
        stack.alive()
        with psycopg.connect(wh.urls["writer"]) as conn:
            row = conn.execute("SELECT run_id FROM audit.run_lease").fetchone()
        holder = row[0] if row else None
        time.sleep(0.5)
    assert holder, "the scheduled run never took the warehouse's lease"
    env = {**stack.env, "AIRFLOW_HOME": str(tmp_path / "second-airflow"), "PIPELINE_LOCK_WAIT_SECONDS": "3",
           "REPORTS_DIR": str(tmp_path / "second-reports")}
    for name in [k for k in env if k.startswith("AIRFLOW__")]:
        del env[name]
    out = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date", "2023-02-01"],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    (tmp_path / "second-run.log").write_text(out.stdout + out.stderr)
    return holder, out


@pytest.mark.slow
def test_make_airflow_runs_the_night_through_the_scheduler(services, tmp_path):
    started = time.monotonic()
    wh, sim, _ = services
    home = tmp_path / "airflow"
    premigrated_home(tmp_path / "second-airflow")  # the second run's own Airflow state, ready before it is needed
    stack = Stack(home, stack_environment(home, services))
    try:
        stack.wait_healthy()
        # The components run the venv's airflow by absolute path, in process groups of their own.
        out = stack.text()
        assert set(stack.components()) == COMPONENTS, out
        stack.watch()
        for name, pid in stack.components().items():
            assert os.getpgid(pid) == pid and os.getsid(pid) == pid and parent_of(pid) == stack.proc.pid, name
            header = (home / "logs" / "stack" / f"{name}.log").read_text().splitlines()[1]
            assert header.endswith(f"starting: {AIRFLOW} {name}"), header
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        assert f"UI and REST API: {stack.base_url}" in out and passwords["admin"] in out
        # Airflow's metadata: a database of its own in the (here throw-away) private warehouse cluster
        assert f"metadata database: postgresql+psycopg2://airflow:***@127.0.0.1:{wh.port}/airflow" in out
        for name in ("simple_auth_manager_passwords.json.generated", "secrets.json", "stack.env"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        assert str(home / "logs" / "stack") in out
        assert {p.name for p in (home / "logs" / "stack").iterdir()} >= {f"{c}.log" for c in COMPONENTS}

        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {stack.token()}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:  # the dag-processor parses the folder once it is up
            stack.alive()
            errors = api.get(stack.base_url + "/api/v2/importErrors", timeout=30).json()
            dags = {d["dag_id"]: d for d in api.get(stack.base_url + "/api/v2/dags", timeout=30).json()["dags"]}
            if errors["total_entries"] or set(dags) >= DAGS:
                break
            time.sleep(1)
        assert errors["total_entries"] == 0, f"import errors: {errors['import_errors']}"
        assert set(dags) == DAGS
        assert not dags["cchc_nightly"]["is_paused"]

        # One night, as the scheduler would create it: the interval 2023-01-31 01:00 → 2023-02-01 01:00 local.
        run_id = "scheduler-test-2023-02-01"
        response = api.post(stack.base_url + "/api/v2/dags/cchc_nightly/dagRuns", timeout=30, json={
            "dag_run_id": run_id, "logical_date": "2023-01-31T01:00:00+07:00",
            "data_interval_start": "2023-01-31T01:00:00+07:00", "data_interval_end": "2023-02-01T01:00:00+07:00"})
        assert response.status_code == 200, response.text
        second = second_run_while_the_first_writes(stack, wh, tmp_path)
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            stack.alive()
            state = api.get(f"{stack.base_url}/api/v2/dags/cchc_nightly/dagRuns/{run_id}", timeout=30).json()["state"]
            if state in ("success", "failed"):
                break
            time.sleep(2)
        tis = api.get(f"{stack.base_url}/api/v2/dags/cchc_nightly/dagRuns/{run_id}/taskInstances",
                      params={"limit": 1000}, timeout=30).json()["task_instances"]
        not_done = sorted(f"{t['task_id']}: {t['state']}" for t in tis if t["state"] != "success")
        assert state == "success", (f"run {state}; tasks not successful: {not_done}; logs in {home / 'logs'}")
        assert not_done == []

        with psycopg.connect(wh.urls["writer"]) as conn:
            runs = conn.execute("SELECT status, interval_start, interval_end FROM audit.pipeline_runs").fetchall()
            facts = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
            as_of = conn.execute("SELECT DISTINCT as_of_date FROM marts.fct_pending_overdue").fetchall()
            units = conn.execute("SELECT count(*) FROM marts.dim_unit").fetchone()[0]
            procedures = conn.execute("SELECT count(*) FROM marts.dim_procedure").fetchone()[0]
        assert runs == [("success", datetime(2023, 1, 31, 1), datetime(2023, 2, 1, 1))]
        # the second run (a `make run`, a `dags test` beside the scheduled night) wrote nothing and said why
        holder, out = second
        assert out.returncode != 0
        assert f"cannot write the warehouse: it is held by run {holder}" in out.stdout + out.stderr
        # every dossier the simulator serves that is not deleted is one fact row
        assert facts == sum(1 for r in sim.province.iter_all() if not r["DaXoa"]) > 0
        assert as_of == [(date(2023, 2, 1),)]
        assert (units, procedures) == (len(sim.province.unit_records()), len(sim.province.procedure_records()))
    finally:
        stack.watch()
        code = stack.stop(signal.SIGTERM)
        left = wait_gone(stack.seen, home, stack.roots())
        kill_leftovers(left)
    print(f"scheduled night: {time.monotonic() - started:.0f}s")
    assert code == 0, stack.text()[-4000:]
    assert "SIGTERM received" in stack.text()
    assert left == {}, f"processes left after the stop: {left}"


@pytest.mark.slow
def test_a_dead_component_stops_the_stack_loudly(services, tmp_path):
    home = tmp_path / "airflow"
    stack = Stack(home, stack_environment(home, services))
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        log = home / "logs" / "stack" / "scheduler.log"
        # a crash of a running scheduler (its LocalExecutor workers are up), not a failed start
        while not (log.exists() and "Starting the scheduler" in log.read_text()) and time.monotonic() < deadline:
            stack.alive()
            time.sleep(0.5)
        stack.alive()
        os.kill(stack.components()["scheduler"], signal.SIGKILL)
        code = stack.proc.wait(90)
    finally:
        if stack.proc.poll() is None:
            stack.stop(signal.SIGKILL, timeout=10)
        left = wait_gone(stack.seen, home, stack.roots())
        kill_leftovers(left)
    out = stack.text()
    assert code == 1, out[-4000:]
    assert "FAILED: component scheduler" in out and "died: killed by SIGKILL (exit code -9)" in out, out[-4000:]
    assert f"last lines of {log}" in out
    assert re.search(r"^  \| .*Starting the scheduler", out, re.M), "the tail of the dead component's log is shown"
    assert "stopping the other components" in out
    assert "SIGTERM received" not in out
    assert left == {}, f"processes left after the supervisor exited: {left}"
