"""The weekly Airflow DAG ``cchc_weekly_integrity``: the dbt tests that re-read the whole history.

The tests on the staging views (keys, relationships, accepted values over every dossier's JSON) cost
time in proportion to the history, so the nightly DAG skips them; this DAG runs them every Sunday at
03:00 Asia/Ho_Chi_Minh. Wiring only: the work is ``ops.dbt``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dags.defaults import RUN_TIMEOUT, START_DATE, WEEKLY_DAG_ID, default_args


@dag(
    dag_id=WEEKLY_DAG_ID,
    schedule="0 3 * * 0",
    start_date=START_DATE,
    dagrun_timeout=RUN_TIMEOUT,
    catchup=False,
    max_active_runs=1,
    tags=["cchc", "dbt", "weekly"],
    default_args=default_args(),
)
def cchc_weekly_integrity():
    @task
    def staging_history_tests() -> None:
        from ops.dbt import run_dbt
        from pipeline.settings import writer_url

        proc = run_dbt(["test", "--selector", "weekly_history"], writer_url(), capture_output=False)
        if proc.returncode != 0:
            raise RuntimeError("the weekly staging integrity tests failed; see the task log")

    staging_history_tests()


cchc_weekly_integrity()
