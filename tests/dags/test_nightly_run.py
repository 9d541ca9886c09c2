"""One real run of the nightly DAG with ``airflow dags test``, against a throw-away warehouse, a running
simulator and a finance inbox: the run succeeds, covers the right data interval and lands everything."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime

import psycopg
import pytest

from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO = Scenario(seed=21, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.02,
                    clock=datetime(2023, 4, 1, 1, 0))


@pytest.mark.slow
def test_the_nightly_dag_runs_end_to_end(tmp_path):
    inbox = tmp_path / "inbox"
    finance = write_workbooks(inbox, investors(), date(2023, 1, 1), date(2023, 3, 31), seed=21)
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp_path / "wh") as wh, running_simulator(province) as sim:
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "WAREHOUSE_WRITER_URL": wh.urls["writer"],
               "PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token, "FINANCE_INBOX": str(inbox),
               "HISTORY_START": "2023-01-01", "REPORTS_DIR": str(tmp_path / "reports"),
               "PIPELINE_TASK_RETRIES": "0", "PIPELINE_RETRY_DELAY_SECONDS": "1"}
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date", "2023-04-01"],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
        (tmp_path / "dags-test.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"the DAG run failed; see {tmp_path / 'dags-test.log'}"
        with psycopg.connect(wh.urls["writer"]) as conn:
            status, start, end = conn.execute(
                "SELECT status, interval_start, interval_end FROM audit.pipeline_runs").fetchone()
            current = {k: p for k, p in conn.execute("SELECT dossier_id, payload FROM raw.dossiers_current")}
            units = conn.execute("SELECT count(*) FROM raw.units").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM raw.disbursement_rows").fetchone()[0]
            sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM audit.ingest_runs")}
            facts = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
            as_of = conn.execute("SELECT DISTINCT as_of_date FROM marts.fct_pending_overdue").fetchall()
            ranked = conn.execute("SELECT count(*) FROM marts.rpt_monthly_ranking").fetchone()[0]
    assert status == "success"
    assert (start, end) == (datetime(2023, 3, 31, 1), datetime(2023, 4, 1, 1))
    assert current == {r["MaHoSo"]: r for r in province.iter_all()}
    assert units == len(province.unit_records())
    assert rows == sum(len(v) for v in finance.effective_rows().values())
    assert sources == {"units", "procedures", "delegations", "dossiers"}
    # dbt ran through Cosmos with the run's as-of time (the interval's end, local).
    assert facts == sum(1 for r in province.iter_all() if not r["DaXoa"])
    assert as_of == [(date(2023, 4, 1),)]
    assert ranked > 0
    assert "Run " in proc.stdout + proc.stderr  # the run's summary is printed
