"""The nightly Airflow DAG ``cchc_nightly``: wiring only — every step is a function of ``ingestion``,
``expectations``, ``ops`` and ``pipeline``.

Heavy modules (the API client, pandas, dbt, Great Expectations) are imported inside the tasks, so
parsing this file costs only the ``airflow.sdk`` import. See ``DOC`` below (shown in the UI) and
``dags/README.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, chain, dag, task
from airflow.sdk.definitions.taskgroup import TaskGroup

from dags.assets import DOSSIER_MARTS, FINANCE_MARTS
from dags.defaults import SETTINGS, dag_defaults, failure_callback
from ops.dbt import PROFILE_NAME, TARGET_NAME, split_vars
from pipeline.settings import LOCAL_TZ, NIGHTLY_DAG_ID, PROJECT_ROOT, dbt_vars

DAG_ID = NIGHTLY_DAG_ID

DOC = """
### Nightly administrative-reform warehouse run

Runs every night at **01:00 Asia/Ho_Chi_Minh**. Its data interval is the previous day: from 01:00
yesterday to 01:00 today (local time), taken from the run's `data_interval_start`/`data_interval_end`
(never `logical_date`) and handed to the ingestion functions as naive local times.

1. `start_run` — takes the warehouse's lease (one writing run at a time) and records the run;
2. `refresh_reference` — full refresh of units, procedures and delegations (a list that vanishes is
   refused and yesterday's stays current);
3. `plan_dossier_partitions` — `["*"]` (one stream), or one partition per district (`INGEST_PARTITION=district`);
4. `pull_dossiers` — one mapped task per partition: the windows earlier nights could not complete, then
   the dossiers changed since the partition's watermark (minus a look-back) up to the interval end;
5. `complete_partitions` — after a partitioned pull, what no partition covers;
6. `dbt_staging` — dbt builds the staging views and `dq.dq_dossiers` (Cosmos: one `dbt build`, or one task
   per node with `DBT_TASK_GRAIN=node`); beside it and the batch checks, `dbt_steps` decodes the processing
   steps (`int_dossiers__steps`), which only the marts read;
7. `batch_checks` — Great Expectations: the batch's critical checks, the night's gate (a failure stops the
   dossier and finance marts here, so yesterday's stay published);
8. `data_quality` beside `dbt_marts` — every rule of dq-rules.md per dossier, while dbt builds the
   intermediate models, marts and snapshot (none of them reads the rules' findings); then `dbt_dq_marts`
   (the data-quality marts, from the findings) and `marts_published` — the marts' Assets;
9. `load_workbooks` → `finance` (staging, checks, marts) → `finance_published` — the finance
   department's workbooks, on a branch of their own: a failure there does not hold the dossier marts;
10. `write_report` — the HTML report and the run's summary, once the dossier marts are published;
    `dbt_docs` beside it — the dbt docs site (`reports/dbt-docs/`: models, columns, tests, lineage, catalog),
    generated again when the dbt project, dbt, its vars or the warehouse changed;
11. `finish_run` — whatever happened before: the data-quality digest (leading with what the night could
    not do), one alert when something needs attention, the run's status, the lease released.

`catchup=False`: a missed night is caught up by the watermarks, not by extra runs. At most one run at a
time, and at most `PIPELINE_RUN_TIMEOUT_MINUTES` per run; every task at most
`PIPELINE_TASK_TIMEOUT_MINUTES`. A failed task (after its retries) is appended to
`reports/alerts.log` and sent to Slack / e-mail when configured (`pipeline/alerts.py`).
"""

# How many partitions of the dossier pull run at once (only matters with INGEST_PARTITION=district).
PULL_CONCURRENCY = SETTINGS.pull_concurrency

# dbt, rendered by Cosmos from a prebuilt manifest (no `dbt ls` at parse time): `python -m ops.dbt manifest`
# writes it, and `make run` / `ops.airflow` do so before Airflow parses this file.
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_MANIFEST = SETTINGS.dbt_manifest_path
# The dbt models' as-of time: the end of the run's data interval, in local time; and the run, whose lease
# every dbt invocation checks (macro assert_run_lease, on-run-start).
AS_OF_TEMPLATE = "{{ data_interval_end.in_timezone('" + LOCAL_TZ + "').strftime('%Y-%m-%dT%H:%M:%S') }}"
RUN_ID_TEMPLATE = "{{ ti.xcom_pull(task_ids='start_run')['run_id'] }}"
# "layer" (the default): one `dbt build` per group — every model and test, without the fixed cost of one dbt
# invocation per node (about two seconds each, some fifty a night). "node": one Cosmos task per dbt model,
# snapshot and test — every model's state and log in the UI, retried alone, spread over Celery workers.
DBT_TASK_GRAIN = SETTINGS.dbt_task_grain
# What every dbt invocation of the night is given: the ranking's target and threshold (pipeline.settings) as
# vars, the same every night; the as-of time and the run (for its lease) as environment variables.
# The night's as-of time and run, and the incremental look-back, travel as environment variables, not vars
# (dbt would re-parse the whole project for every new value; ops/dbt.py, macro run_var).
DBT_VARS, _DBT_LOOKBACK = split_vars(dbt_vars())
DBT_RUN_CONTEXT = {"CCHC_DBT_AS_OF": AS_OF_TEMPLATE, "CCHC_DBT_PIPELINE_RUN_ID": RUN_ID_TEMPLATE, **_DBT_LOOKBACK}
WORKBOOKS_FAILED = ("the dossier marts still build and publish; the disbursement marts keep the last workbooks "
                    "loaded until the inbox is fixed")


def _dbt_group(group_id: str, selector: str):
    """A Cosmos task group running `dbt build` per node of the dbt selector ``selector``
    (``dbt_project/selectors.yml``; tests run with their model), or one `dbt build --selector` with
    ``DBT_TASK_GRAIN=layer``."""
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestBehavior

    # No assets of Cosmos' own (emit_datasets=False; RenderConfig's at the node grain): the marts' assets are
    # the published ones (marts_published, finance_published, dags/assets.py). Cosmos' would name the
    # warehouse's host and port, and for a `--selector` build it lists every mart of the project, so two dbt
    # tasks ending in the same instant would both create the same new asset, and Airflow fails the second
    # on the asset table's unique key.
    profile = ProfileConfig(profile_name=PROFILE_NAME, target_name=TARGET_NAME,
                            profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml")
    if DBT_TASK_GRAIN == "layer":
        from cosmos.operators.local import DbtBuildLocalOperator

        with TaskGroup(group_id) as group:
            DbtBuildLocalOperator(task_id="build", project_dir=str(DBT_PROJECT_DIR), profile_config=profile,
                                  selector=selector, vars=DBT_VARS, env=DBT_RUN_CONTEXT,
                                  install_deps=False, invocation_mode=InvocationMode.DBT_RUNNER,
                                  emit_datasets=False)
        return group
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=DBT_MANIFEST),
        profile_config=profile,
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, selector=selector,
                                   test_behavior=TestBehavior.BUILD, emit_datasets=False,
                                   # a relationships test runs once both of its models are built
                                   should_detach_multiple_parents_tests=True),
        # Whole-history tests on the staging views run weekly (dags/weekly.py), not every night.
        operator_args={"vars": DBT_VARS, "env": DBT_RUN_CONTEXT,
                       "install_deps": False, "dbt_cmd_flags": ["--exclude", "tag:history_scan"]},
    )


def _settings():
    from pipeline.orchestration import settings_from_airflow

    return settings_from_airflow()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _check_lease(run: dict[str, Any]) -> None:
    from pipeline.lease import check

    settings = _settings()
    check(settings.warehouse_url, run["run_id"], ttl_seconds=settings.lock_ttl_seconds)


# --- the DAG ---------------------------------------------------------------------------------------

@dag(**dag_defaults(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=LOCAL_TZ),
    tags=["cchc", "ingestion", "nightly"],
    doc_md=DOC,
))
def cchc_nightly():
    @task
    def start_run() -> dict[str, Any]:
        """Take the warehouse's lease (waiting for another run to finish) and record the run; returns the run
        descriptor (run id, data interval) the other tasks use."""
        from airflow.sdk import get_current_context

        from pipeline import runs
        from pipeline.orchestration import run_descriptor

        run = run_descriptor(get_current_context())
        summary = runs.begin_night(run["run_id"], _when(run["interval_start"]), _when(run["interval_end"]),
                                       settings=_settings())
        return {**run, "summary": summary}

    @task
    def refresh_reference(run: dict[str, Any]) -> dict:
        from ingestion import loads

        _check_lease(run)
        return loads.refresh_reference(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task
    def plan_dossier_partitions(run: dict[str, Any]) -> list[str]:
        from ingestion import loads

        return list(loads.plan_dossier_partitions(settings=_settings()))

    @task(max_active_tis_per_dag=PULL_CONCURRENCY)
    def pull_dossiers(run: dict[str, Any], partition: str) -> dict:
        from ingestion import loads

        _check_lease(run)
        return loads.pull_dossiers(run["run_id"], partition, _when(run["interval_end"]),
                                      interval_start=_when(run["interval_start"]), settings=_settings())

    @task
    def complete_partitions(run: dict[str, Any], results: list[dict]) -> dict:
        from ingestion import loads

        _check_lease(run)
        return loads.complete_partitions(run["run_id"], _when(run["interval_end"]), list(results),
                                            interval_start=_when(run["interval_start"]), settings=_settings())

    @task(on_failure_callback=failure_callback(WORKBOOKS_FAILED))
    def load_workbooks(run: dict[str, Any]) -> dict:
        from ingestion import loads

        _check_lease(run)
        return loads.load_workbooks(run["run_id"], settings=_settings())

    @task
    def batch_checks(run: dict[str, Any]) -> dict:
        """The batch's critical checks at the run's as-of time: the gate of the marts. A critical failure is
        final (AirflowFailException: no retry, the batch will not mend itself) and keeps the dossier and
        finance marts from being rebuilt; other errors (a lost connection) are retried like any task's."""
        from airflow.sdk.exceptions import AirflowFailException

        from expectations.validate import CriticalDataQualityError, run_batch_checks

        _check_lease(run)
        try:
            return run_batch_checks(run["run_id"], _when(run["interval_end"]), settings=_settings())
        except CriticalDataQualityError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def data_quality(run: dict[str, Any]) -> dict:
        """Every dossier rule at the run's as-of time (warnings), beside the marts; the data-quality marts
        wait for it."""
        from expectations.validate import run_dossier_checks

        _check_lease(run)
        return run_dossier_checks(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task(on_failure_callback=failure_callback(WORKBOOKS_FAILED))
    def finance_quality(run: dict[str, Any]) -> dict:
        """The workbook checks (warnings): their findings reach the digest."""
        from expectations.validate import run_finance_quality

        _check_lease(run)
        return run_finance_quality(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task(outlets=DOSSIER_MARTS)
    def marts_published() -> list[str]:
        """Every dossier mart has been rebuilt: emit their asset events (only after dbt_marts succeeded)."""
        return [a.name for a in DOSSIER_MARTS]

    @task(outlets=FINANCE_MARTS)
    def finance_published() -> list[str]:
        """The disbursement marts have been rebuilt from the night's workbooks."""
        return [a.name for a in FINANCE_MARTS]

    @task(trigger_rule="all_done")
    def write_report(run: dict[str, Any]) -> dict:
        """The report, once the dossier marts are published — whether or not the workbooks loaded (the
        disbursement figures are then those of the last workbooks loaded)."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from ops.publish import nightly_report

        states = _task_states(get_current_context())
        if states.get("marts_published") != "success":
            raise AirflowSkipException("the dossier marts were not rebuilt tonight: no report")
        return nightly_report(run["run_id"], _when(run["interval_end"]), settings=_settings())

    @task(trigger_rule="all_done")
    def dbt_docs() -> str:
        """The dbt docs site, once the dossier marts are published (the catalog then describes them)."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowSkipException

        from ops.dbt import write_docs_site

        if _task_states(get_current_context()).get("marts_published") != "success":
            raise AirflowSkipException("the dossier marts were not rebuilt tonight: yesterday's docs stay")
        settings = _settings()
        return str(write_docs_site(settings.warehouse_url, settings.reports_dir / "dbt-docs"))

    @task(trigger_rule="all_done")
    def finish_run() -> str:
        """However the night went: the digest, the night's alert, the run's status, the lease released.
        Fails (after doing all that) when a task failed, so the run shows as failed."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        from expectations.validate import quality_summary
        from pipeline import runs

        context = get_current_context()
        ti = context["ti"]
        run = ti.xcom_pull(task_ids="start_run")
        if not run:
            raise AirflowFailException("start_run did not complete (see its log): nothing to finish")
        states = _task_states(context)
        results = {
            "start": run.get("summary"),
            "reference": ti.xcom_pull(task_ids="refresh_reference"),
            "dossiers": ti.xcom_pull(task_ids="pull_dossiers"),
            "completion": ti.xcom_pull(task_ids="complete_partitions"),
            "workbooks": ti.xcom_pull(task_ids="load_workbooks"),
            "data_quality": quality_summary(ti.xcom_pull(task_ids="batch_checks"),
                                            ti.xcom_pull(task_ids="data_quality")),
            "finance_quality": ti.xcom_pull(task_ids="finance_quality"),
        }
        report = ti.xcom_pull(task_ids="write_report") or {}
        results["dbt_docs"] = ti.xcom_pull(task_ids="dbt_docs")
        outcome = runs.finish_night(run["run_id"], _when(run["interval_end"]), results, states,
                                        settings=_settings())
        summary = outcome["summary"]
        if report:
            summary += f"\nreport: {report.get('report')}\n\n{report.get('summary', '')}"
        print(summary, flush=True)  # task stdout goes to the task log (and the console under `dags test`)
        if outcome["failed_tasks"]:
            raise AirflowFailException(f"the night ended {outcome['status']}: failed tasks "
                                       f"{', '.join(outcome['failed_tasks'])}")
        return summary

    run = start_run()
    reference = refresh_reference(run)
    partitions = plan_dossier_partitions(run)
    dossiers = pull_dossiers.partial(run=run).expand(partition=partitions)
    completion = complete_partitions(run, dossiers)
    chain(run, reference, partitions, dossiers, completion)

    # The dossiers: dbt staging (and the table the data-quality rules read), the batch checks (the gate),
    # then the dossier rules beside the intermediate models, marts and status snapshot, which do not read
    # their findings; the data-quality marts once the rules are done.
    dbt_staging = _dbt_group("dbt_staging", "nightly_staging")
    dbt_steps = _dbt_group("dbt_steps", "nightly_steps")
    gate = batch_checks(run)
    quality = data_quality(run)
    dbt_marts = _dbt_group("dbt_marts", "nightly_marts")
    dbt_dq_marts = _dbt_group("dbt_dq_marts", "nightly_dq_marts")
    published = marts_published()
    chain(completion, dbt_staging, gate, [quality, dbt_marts])
    chain(completion, dbt_steps, dbt_marts)
    chain(quality, dbt_dq_marts)
    chain([dbt_marts, dbt_dq_marts], published)

    # The finance department's workbooks, on their own branch: an unmounted inbox fails this branch only.
    # Their marts wait for the dossiers' data-quality gate too: a broken night publishes nothing new.
    workbooks = load_workbooks(run)
    with TaskGroup("finance", tooltip="the disbursement workbooks: staging, checks, marts") as finance:
        finance_staging = _dbt_group("staging", "nightly_finance_staging")
        finance_checks = finance_quality(run)
        finance_marts = _dbt_group("marts", "nightly_finance_marts")
        chain(finance_staging, finance_checks, finance_marts)
    finance_done = finance_published()
    chain(reference, workbooks, finance, finance_done)
    chain(dbt_staging, finance_checks)  # FIN04 reads the staged units
    chain(gate, finance_marts)

    report = write_report(run)
    docs = dbt_docs()
    finished = finish_run()
    chain([published, finance_done], report, finished)
    chain([published, finance_done], docs, finished)
    chain([completion, workbooks, gate, quality, finance_checks], finished)


def _task_states(context) -> dict[str, str]:
    """This run's task states by task id (a mapped task's instances as ``<task_id>_<map index>``)."""
    found = context["ti"].get_task_states(dag_id=context["dag"].dag_id, run_ids=[context["run_id"]])
    states = found.get(context["run_id"], {}) if isinstance(found, dict) else {}
    return {task_id: getattr(state, "value", state) or "none" for task_id, state in states.items()}


cchc_nightly()
