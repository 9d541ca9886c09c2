"""Nights across the 2025 reorganisation through Airflow (``airflow dags test``): the nights of 2025-06-30 to
2025-07-02 over a tiny reorganisation scenario, the simulator's clock moving with them — the old units close,
the new ones open, open dossiers are transferred in the night of 1 July — each night rebuilding only the
day's dossiers, then a full rebuild of the same warehouse must give the same marts as the nights built
incrementally.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta

import psycopg
import pytest

from ops.dbt import run_dbt
from pipeline.settings import PROJECT_ROOT, dbt_vars
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.airflow_home import premigrated_home
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

FIRST_NIGHT = datetime(2025, 6, 30, 1, 0)
NIGHTS = 3  # 2025-06-30 (the first, a full build), 07-01 (the day), 07-02
SCENARIO = Scenario(seed=29, start=date(2025, 6, 1), end=date(2025, 7, 2), scale=0.004, clock=FIRST_NIGHT,
                    reorganisation=True)
# What these nights do not look at, marked successful without running: the workbooks (none), the report and the
# docs site (tests/dags/test_nightly_run.py runs them).
SKIPPED = r"load_workbooks|finance\..*|finance_published|write_report|dbt_docs"
HISTORY = ("fct_pending_overdue", "fct_delegation_progress")  # one row set per night: compare the last


def snapshot(url: str, as_of: date) -> dict[str, list[tuple]]:
    """Every marts table's rows (the history tables': the last night's), without the build's own timestamps."""
    out = {}
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'marts'")]
        for table in sorted(tables):
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = %s "
                "AND column_name NOT IN ('source_changed_at') ORDER BY ordinal_position", (table,))]
            where = f"WHERE as_of_date = '{as_of}'" if table in HISTORY else ""
            out[table] = sorted(conn.execute(f"SELECT {', '.join(columns)} FROM marts.{table} {where}").fetchall(),
                                key=repr)
    return out


@pytest.mark.slow
def test_nights_across_the_reorganisation_equal_a_full_rebuild(tmp_path):
    province = Province(SCENARIO)
    (tmp_path / "inbox").mkdir()
    with throwaway_warehouse(tmp_path / "wh") as wh, running_simulator(province) as sim:
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "WAREHOUSE_WRITER_URL": wh.urls["writer"],
               "PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token, "FINANCE_INBOX": str(tmp_path / "inbox"),
               "HISTORY_START": SCENARIO.start.isoformat(), "REPORTS_DIR": str(tmp_path / "reports"),
               "DBT_TASK_GRAIN": "layer", "PIPELINE_TASK_RETRIES": "0", "PIPELINE_RETRY_DELAY_SECONDS": "1",
               "PUBLICATION_MIN_RESOLVED": "1",
               "DBT_INCREMENTAL_LOOKBACK_MINUTES": "0"}  # nights minutes apart: no wall-clock look-back
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        premigrated_home(tmp_path / "airflow")
        url = wh.urls["writer"]
        for n in range(NIGHTS):
            night = FIRST_NIGHT + timedelta(days=n)
            province.set_clock(night)
            log = tmp_path / f"night-{n}.log"
            done = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date",
                                   night.date().isoformat(), "--mark-success", SKIPPED], cwd=PROJECT_ROOT, env=env,
                                  capture_output=True, text=True, timeout=600)
            log.write_text(done.stdout + done.stderr)
            assert done.returncode == 0, f"the night of {night.date()} failed; see {tmp_path / f'night-{n}.log'}"
            if n:  # incremental: a night rebuilds the dossiers that changed that day, not the history
                rebuilt = int(re.search(r"marts\.fct_dossier \.+ \[\S*INSERT 0 (\d+)", done.stdout).group(1))
                since = (night - timedelta(days=1, hours=3)).strftime("%Y%m%d%H%M%S")  # the pull's 3 h look-back
                changed = sum(1 for r in province.iter_all() if r["NgayCapNhat"] >= since and not r["DaXoa"])
                assert rebuilt <= changed < len(province.index.rows), f"night {n} rebuilt {rebuilt} dossiers"
        truth = province.reorganisation_truth()
        with psycopg.connect(url) as conn:
            runs = [s for (s,) in conn.execute("SELECT status FROM audit.pipeline_runs ORDER BY run_date")]
            units = dict(conn.execute("SELECT unit_code, current_unit_code FROM marts.dim_unit"))
            handlers = dict(conn.execute("SELECT dossier_id, unit_code FROM marts.fct_dossier"))
            levels = [lv for (lv,) in conn.execute("SELECT DISTINCT level FROM marts.rpt_monthly_ranking "
                                                   "WHERE month = '2025-07-01'")]
        incremental = snapshot(url, night.date())
        rebuild = dbt_vars({"PUBLICATION_MIN_RESOLVED": env["PUBLICATION_MIN_RESOLVED"]}, as_of=night.isoformat())
        proc = run_dbt(["build", "--full-refresh", "--vars", json.dumps(rebuild)], url)
        assert proc.returncode == 0, proc.stdout[-6000:]
        full = snapshot(url, night.date())

    assert runs == ["success"] * NIGHTS
    moved = {code: moves[-1][2] for code, moves in truth["transferred"].items()}
    assert moved and all(handlers[code] == unit for code, unit in moved.items() if code in handlers)
    assert all(units[code] is not None for code in truth["successors"] if code not in truth["unannounced"])
    assert 2 not in levels
    assert set(incremental) <= set(full)  # the rebuild also builds the disbursement marts the nights skipped
    for table in incremental:
        assert incremental[table] == full[table], f"{table}: the nights and a full rebuild differ"
