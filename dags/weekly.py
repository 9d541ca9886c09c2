"""The weekly Airflow DAG ``cchc_weekly_integrity``: the dbt tests that re-read the whole history.

The tests on the staging views (keys, relationships, accepted values over every dossier's JSON) and the
scans of the large per-dossier tables for what their keys and constraints already refuse on every write
(uniqueness, not-null, values) cost time in proportion to the history, so the nightly DAG skips them; this
DAG runs them (dbt selector ``weekly_history``) every Sunday at 03:00 Asia/Ho_Chi_Minh. Wiring only: the work
is ``ops.dbt``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dags.defaults import dag_defaults
from pipeline.settings import WEEKLY_DAG_ID


@dag(**dag_defaults(
    dag_id=WEEKLY_DAG_ID,
    schedule="0 3 * * 0",
    tags=["cchc", "dbt", "weekly"],
))
def cchc_weekly_integrity():
    @task
    def staging_history_tests() -> None:
        from ops.dbt import run_dbt
        from pipeline.settings import writer_url

        proc = run_dbt(["test", "--selector", "weekly_history"], writer_url(), capture_output=False)
        if proc.returncode != 0:
            raise RuntimeError("the weekly integrity tests failed; see the task log")

    staging_history_tests()


cchc_weekly_integrity()
