"""The weekly Airflow DAG ``cchc_weekly_integrity``: the dbt tests that re-read the whole history.

The tests on the staging views (keys, relationships, accepted values over every dossier's JSON) cost
time in proportion to the history, so the nightly DAG skips them; this DAG runs them every Sunday at
03:00 Asia/Ho_Chi_Minh. Wiring only: the work is ``ops.dbt``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

LOCAL_TZ = "Asia/Ho_Chi_Minh"


def _on_task_failure(context) -> None:
    from ingestion.notify import notify_task_failure

    notify_task_failure(context)


@dag(
    dag_id="cchc_weekly_integrity",
    schedule="0 3 * * 0",
    start_date=pendulum.datetime(2023, 1, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    tags=["cchc", "dbt", "weekly"],
    default_args={"retries": int(os.environ.get("PIPELINE_TASK_RETRIES", "2")),
                  "retry_delay": timedelta(seconds=float(os.environ.get("PIPELINE_RETRY_DELAY_SECONDS", "300"))),
                  "on_failure_callback": _on_task_failure},
)
def cchc_weekly_integrity():
    @task
    def staging_history_tests() -> None:
        from ops.dbt import run_dbt, writer_url_from_env

        proc = run_dbt(["test", "--select", "tag:history_scan"], writer_url_from_env(), capture_output=False)
        if proc.returncode != 0:
            raise RuntimeError("the weekly staging integrity tests failed; see the task log")

    staging_history_tests()


cchc_weekly_integrity()
