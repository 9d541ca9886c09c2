"""The nightly Airflow DAG ``cchc_nightly``: wiring only — every step is a function of ``ingestion.pipeline``.

Heavy modules (the API client, pandas, dbt, Great Expectations) are imported inside the tasks, so
parsing this file costs only the ``airflow.sdk`` import. See ``DOC`` below (shown in the UI) and
``dags/README.md``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

from dags.assets import MARTS

DAG_ID = "cchc_nightly"
LOCAL_TZ = "Asia/Ho_Chi_Minh"

DOC = """
### Nightly administrative-reform warehouse run

Runs every night at **01:00 Asia/Ho_Chi_Minh**. Its data interval is the previous day: from 01:00
yesterday to 01:00 today (local time), taken from the run's `data_interval_start`/`data_interval_end`
(never `logical_date`) and handed to the ingestion functions as naive local times.

1. `start_run` — records the run in `audit.pipeline_runs`;
2. `refresh_reference` — full refresh of units, procedures and delegations into `raw`;
3. `plan_dossier_partitions` — `["*"]` (one stream), or one partition per district (`INGEST_PARTITION=district`);
4. `pull_dossiers` — one mapped task per partition: dossiers changed since the partition's watermark
   (minus a look-back) up to the interval end, in ≤31-day windows committed with their watermark;
5. `complete_partitions` — after a partitioned pull, what no partition covers;
6. `load_workbooks` — new or re-issued finance workbooks from the inbox;
7. `dbt_staging` — dbt builds the staging views and `dq.dq_dossiers` (Cosmos, one task per node);
8. `data_quality` — Great Expectations: the batch's critical checks (a failure stops the run here, so
   yesterday's marts stay published), then every rule of dq-rules.md per dossier and the workbook
   checks; findings into `dq`, Data Docs into `REPORTS_DIR/data-docs`, the digest to the data team;
9. `dbt_marts` — intermediate models, marts (including `fct_dq_issue`, `fct_dq_daily`) and the snapshot;
10. `marts_published` — emits the marts' Airflow Assets (`dags/assets.py`): the monthly publication DAG
    and BI cache refreshes are scheduled on them, not on the clock;
11. `write_report` — the self-contained HTML report in `REPORTS_DIR/report/` and the run's summary;
12. `finish_run` — closes the run and prints its summary.

`catchup=False`: a missed night is caught up by the watermarks, not by extra runs. Backfilling past
intervals is still safe — the loaders are idempotent. At most one run at a time.

The Airflow connection `procedure_api` (host = base URL, password = token), when defined, overrides
`PROCEDURE_API_URL`/`PROCEDURE_API_TOKEN`. A failed task (after its retries) is appended to
`reports/alerts.log` and sent to Slack / e-mail when configured (`ingestion/notify.py`).
"""

# Task retries; override with environment variables of the Airflow processes (e.g. for quick tests).
RETRIES = int(os.environ.get("PIPELINE_TASK_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("PIPELINE_RETRY_DELAY_SECONDS", "300")))
# How many partitions of the dossier pull run at once (only matters with INGEST_PARTITION=district).
PULL_CONCURRENCY = int(os.environ.get("INGEST_PULL_CONCURRENCY", "4"))


def _on_task_failure(context: Any) -> None:
    """Task-level failure callback (a DAG-level one may never fire on Airflow 3.x)."""
    from ingestion.notify import notify_task_failure

    notify_task_failure(context)


# dbt, rendered by Cosmos from a prebuilt manifest (no `dbt ls` at parse time): `python -m ops.dbt manifest`
# writes it, and `make run` / `ops.airflow` do so before Airflow parses this file.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_MANIFEST = Path(os.environ.get("DBT_MANIFEST_PATH", PROJECT_ROOT / ".local" / "dbt" / "manifest" / "manifest.json"))
# The dbt models' as-of time: the end of the run's data interval, in local time.
AS_OF_TEMPLATE = "{{ data_interval_end.in_timezone('Asia/Ho_Chi_Minh').strftime('%Y-%m-%dT%H:%M:%S') }}"


def _dbt_group(group_id: str, select: list[str]):
    """A Cosmos task group running `dbt build` per node of ``select`` (tests run with their model)."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestBehavior

    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=DBT_MANIFEST),
        profile_config=ProfileConfig(profile_name="cchc", target_name="warehouse",
                                     profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select,
                                   test_behavior=TestBehavior.BUILD,
                                   # a relationships test runs once both of its models are built
                                   should_detach_multiple_parents_tests=True),
        # Whole-history tests on the staging views run weekly (dags/weekly.py), not every night.
        operator_args={"vars": {"as_of": AS_OF_TEMPLATE}, "install_deps": False,
                       "dbt_cmd_flags": ["--exclude", "tag:history_scan"]},
    )


def _settings():
    from ingestion.orchestration import settings_from_airflow

    return settings_from_airflow()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# --- the DAG ---------------------------------------------------------------------------------------

@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=LOCAL_TZ),
    start_date=pendulum.datetime(2023, 1, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    tags=["cchc", "ingestion", "nightly"],
    doc_md=DOC,
    default_args={
        "owner": "cchc-data",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "on_failure_callback": _on_task_failure,
    },
)
def cchc_nightly():
    @task
    def start_run() -> dict[str, Any]:
        """Record the run; returns the run descriptor (run id, data interval) the other tasks use."""
        from airflow.sdk import get_current_context

        from ingestion import pipeline
        from ingestion.orchestration import run_descriptor

        run = run_descriptor(get_current_context())
        summary = pipeline.start_run(run["run_id"], _when(run["interval_start"]), _when(run["interval_end"]),
                                     settings=_settings())
        return {**run, "summary": summary}

    @task
    def refresh_reference(run: dict[str, Any]) -> dict:
        from ingestion import pipeline

        return pipeline.refresh_reference(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task
    def plan_dossier_partitions(run: dict[str, Any]) -> list[str]:
        from ingestion import pipeline

        return list(pipeline.plan_dossier_partitions(settings=_settings()))

    @task(max_active_tis_per_dag=PULL_CONCURRENCY)
    def pull_dossiers(run: dict[str, Any], partition: str) -> dict:
        from ingestion import pipeline

        return pipeline.pull_dossiers(run["run_id"], partition, _when(run["interval_end"]),
                                      interval_start=_when(run["interval_start"]), settings=_settings())

    @task
    def complete_partitions(run: dict[str, Any], results: list[dict]) -> dict:
        from ingestion import pipeline

        return pipeline.complete_partitions(run["run_id"], _when(run["interval_end"]), list(results),
                                            interval_start=_when(run["interval_start"]), settings=_settings())

    @task
    def load_workbooks(run: dict[str, Any]) -> dict:
        from ingestion import pipeline

        return pipeline.load_workbooks(run["run_id"], settings=_settings())

    @task
    def data_quality(run: dict[str, Any]) -> dict:
        """Great Expectations over the staged batch at the run's as-of time. A critical failure is final
        (AirflowFailException: no retry, the batch will not mend itself) and keeps the marts from being
        rebuilt; other errors (a lost connection) are retried like any task's."""
        from airflow.sdk.exceptions import AirflowFailException

        from expectations.validate import CriticalDataQualityError, run_data_quality

        try:
            return run_data_quality(run["run_id"], _when(run["interval_end"]), settings=_settings())
        except CriticalDataQualityError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=MARTS)
    def marts_published() -> list[str]:
        """Every mart has been rebuilt: emit their asset events (runs only after dbt_marts succeeded)."""
        return [a.name for a in MARTS]

    @task
    def write_report(run: dict[str, Any]) -> dict:
        from ops.publish import nightly_report

        return nightly_report(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task
    def finish_run(run: dict[str, Any], reference: dict, dossiers: list[dict], completion: dict,
                   workbooks: dict, quality: dict, report: dict) -> str:
        from ingestion import pipeline

        results = {
            "start": run.get("summary"),
            "reference": reference,
            "dossiers": list(dossiers),
            "completion": completion,
            "workbooks": workbooks,
            "data_quality": quality,
        }
        summary = pipeline.finish_run(run["run_id"], results, settings=_settings())
        summary += f"\nreport: {report.get('report')}\n\n{report.get('summary', '')}"
        print(summary, flush=True)  # task stdout goes to the task log (and the console under `dags test`)
        return summary

    run = start_run()
    reference = refresh_reference(run)
    partitions = plan_dossier_partitions(run)
    dossiers = pull_dossiers.partial(run=run).expand(partition=partitions)
    completion = complete_partitions(run, dossiers)
    workbooks = load_workbooks(run)
    ingestion_stages = [run, reference, partitions, dossiers, completion, workbooks]

    # dbt staging (and the table the data-quality rules read), the data-quality stage, then intermediate,
    # marts and the status snapshot.
    dbt_staging = _dbt_group("dbt_staging", ["path:models/staging", "path:models/dq"])
    quality = data_quality(run)
    dbt_marts = _dbt_group("dbt_marts", ["path:models/intermediate", "path:models/marts", "path:snapshots"])
    published = marts_published()
    report = write_report(run)
    later_stages: list = [dbt_staging, quality, dbt_marts, published, report]

    finished = finish_run(run, reference, dossiers, completion, workbooks, quality, report)
    chain(*ingestion_stages, *later_stages, finished)


cchc_nightly()
