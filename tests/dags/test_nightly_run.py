"""Real runs of the nightly DAG with ``airflow dags test``, against a throw-away warehouse, a running
simulator and a finance inbox: the first night succeeds, covers the right data interval, lands everything
and validates it; the second night's batch is broken (the API stops sending a field), so the run stops at
the data-quality stage and yesterday's marts stay exactly as they were."""

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
from simulator.server import Faults
from simulator.truth import findings
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
        proc = dags_test(env, "2023-04-01", tmp_path / "dags-test.log")
        assert proc.returncode == 0, f"the DAG run failed; see {tmp_path / 'dags-test.log'}"
        with psycopg.connect(wh.urls["writer"]) as conn:
            status, start, end = conn.execute(
                "SELECT status, interval_start, interval_end FROM audit.pipeline_runs").fetchone()
            validations = dict(conn.execute("SELECT suite, status FROM dq.validation_runs"))
            issues = {(d, r) for d, r in conn.execute("SELECT dossier_id, rule_id FROM marts.fct_dq_issue "
                                                      "WHERE is_open")}
            marts_before = checksums(conn)
            current = {k: p for k, p in conn.execute("SELECT dossier_id, payload FROM raw.dossiers_current")}
            units = conn.execute("SELECT count(*) FROM raw.units").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM raw.disbursement_rows").fetchone()[0]
            sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM audit.ingest_runs")}
            facts = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
            as_of = conn.execute("SELECT DISTINCT as_of_date FROM marts.fct_pending_overdue").fetchall()
            ranked = conn.execute("SELECT count(*) FROM marts.rpt_monthly_ranking").fetchone()[0]
        truth = findings(list(province.iter_all()), datetime(2023, 4, 1, 1), province.procedure_records(),
                         province.unit_records())
        records = list(province.iter_all())
        # The monthly publication DAG (scheduled on the ranking's asset): the latest complete month, March.
        monthly = dags_test(env, "2023-04-01", tmp_path / "dags-test-monthly.log", "cchc_monthly_publication")
        assert monthly.returncode == 0, f"the monthly DAG failed; see {tmp_path / 'dags-test-monthly.log'}"

        province.set_clock(datetime(2023, 4, 2, 1))
        sim.api.faults = Faults(omit_fields=("TrangThaiHoSo",))
        proc2 = dags_test(env, "2023-04-02", tmp_path / "dags-test-2.log")
        with psycopg.connect(wh.urls["writer"]) as conn:
            second = {
                "returncode": proc2.returncode,
                "status": conn.execute("SELECT status FROM audit.pipeline_runs WHERE run_date = '2023-04-02'")
                .fetchone()[0],
                "validations": dict(conn.execute("SELECT suite, v.status FROM dq.validation_runs v "
                                                 "JOIN audit.pipeline_runs USING (run_id) "
                                                 "WHERE v.run_date = '2023-04-02'")),
                "marts": checksums(conn),
                "digest": conn.execute("SELECT body FROM dq.digests d JOIN audit.pipeline_runs USING (run_id) "
                                       "WHERE run_date = '2023-04-02'").fetchone()[0],
            }
    assert status == "success"
    assert (start, end) == (datetime(2023, 3, 31, 1), datetime(2023, 4, 1, 1))
    assert current == {r["MaHoSo"]: r for r in records}
    assert units == len(province.unit_records())
    assert rows == sum(len(v) for v in finance.effective_rows().values())
    assert sources == {"units", "procedures", "delegations", "dossiers"}
    # dbt ran through Cosmos with the run's as-of time (the interval's end, local).
    assert facts == sum(1 for r in records if not r["DaXoa"])
    assert as_of == [(date(2023, 4, 1),)]
    assert ranked > 0
    assert "Run " in proc.stdout + proc.stderr  # the run's summary is printed
    # Great Expectations ran between staging and marts; its findings reached fct_dq_issue.
    assert validations["batch"] == "passed" and validations["dossiers"] in ("passed", "warnings")
    assert issues == {(k, r) for k, rules in truth.items() for r in rules}
    assert (tmp_path / "reports" / "data-docs" / "index.html").exists()
    assert (tmp_path / "reports" / "dq-digest" / "2023-04-01.txt").exists()
    # The night's report and summary, and the month's publication.
    assert (tmp_path / "reports" / "report" / "latest.html").exists()
    assert "95" in proc.stdout + proc.stderr and "report:" in proc.stdout + proc.stderr
    assert {p.name for p in (tmp_path / "reports" / "cong-khai").iterdir()} >= {"cong-khai-2023-03.html",
                                                                               "cong-khai-2023-03.xlsx"}

    # Night 2: the API stops sending TrangThaiHoSo. The run must stop before the marts.
    assert second["returncode"] != 0
    assert second["status"] == "failed"
    assert second["validations"] == {"batch": "failed"}
    assert second["marts"] == marts_before, "a broken batch must leave yesterday's marts untouched"
    assert "BAT03" in second["digest"] and second["digest"].startswith("[CRITICAL]")


def checksums(conn: psycopg.Connection) -> dict[str, str]:
    """A digest of every marts table's content."""
    tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'marts'")]
    return {t: conn.execute(f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') "
                            f"FROM marts.{t} x").fetchone()[0] for t in sorted(tables)}


def dags_test(env: dict, run_date: str, log, dag_id: str = "cchc_nightly") -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date", run_date, "--dag-id", dag_id],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    log.write_text(proc.stdout + proc.stderr)
    return proc
