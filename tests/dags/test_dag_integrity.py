"""Integrity of the Airflow DAGs and of ``ops.airflow``.

Airflow reads its configuration (``AIRFLOW_HOME`` …) once per process, so every check that imports
Airflow runs in a subprocess with the environment of ``ops.airflow.airflow_env`` and a throw-away
``AIRFLOW_HOME``; the pytest process itself never imports Airflow.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ops.airflow import airflow_env, logical_date_for
from tests.support.airflow_home import premigrated_home
from tests.support.paths import PROJECT_ROOT

DAGS = PROJECT_ROOT / "dags"
DAG_FILE = DAGS / "nightly.py"
DAG_ID = "cchc_nightly"
EXPECTED_EDGES = [  # the ingestion chain, in order
    ("start_run", "refresh_reference"),
    ("refresh_reference", "plan_dossier_partitions"),
    ("plan_dossier_partitions", "pull_dossiers"),
    ("pull_dossiers", "complete_partitions"),
    ("refresh_reference", "load_workbooks"),
]
EXPECTED_TASKS = {t for edge in EXPECTED_EDGES for t in edge}
# Cosmos renders the dbt task groups from the manifest at parse time (that is its job); dbt itself, GX,
# the pipeline's packages and the database and HTTP clients are only imported when tasks run.
HEAVY_MODULES = ("ingestion", "great_expectations", "dbt", "pandas", "psycopg", "requests", "warehouse",
                 "simulator")


def _run_python(code: str, tmp_path: Path, extra: dict | None = None, timeout: int = 180) -> dict:
    """Run ``code`` in a fresh interpreter with the project's Airflow environment; it must print one
    JSON document as its last line of output."""
    base = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_PROCEDURE_API"}
    env = airflow_env({"AIRFLOW_HOME": str(tmp_path / "airflow_home"), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                       **(extra or {})}, base=base)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PARSE_PROBE = """
    import importlib.util, json, sys, time
    import airflow.sdk  # the authoring API is loaded by every DAG file anyway: not counted
    from airflow.dag_processing.dagbag import DagBag

    before = set(sys.modules)
    t0 = time.monotonic()
    spec = importlib.util.spec_from_file_location("nightly_parse_probe", {dag_file!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parse_seconds = time.monotonic() - t0
    new_modules = sorted(set(sys.modules) - before)

    bag = DagBag(dag_folder={dags!r})
    out = {{"import_errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "dag_ids": sorted(bag.dags),
           "parse_seconds": parse_seconds, "new_modules": new_modules}}
    dag = bag.dags.get({dag_id!r})
    if dag is not None:
        tt = dag.timetable
        out["dag"] = {{
            "timetable": type(tt).__name__,
            "expression": getattr(tt, "expression", None),
            "timezone": str(getattr(tt.timezone, "name", tt.timezone)),
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "start_date": dag.start_date.isoformat(),
            "tags": sorted(dag.tags),
            "doc_md": bool(dag.doc_md),
            "on_failure_callback_dag_level": bool(dag.on_failure_callback),
            "dagrun_timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
            "tasks": {{t.task_id: {{
                "upstream": sorted(t.upstream_task_ids),
                "retries": t.retries,
                "retry_delay": t.retry_delay.total_seconds(),
                "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "on_failure_callback": bool(t.on_failure_callback),
                "mapped": type(t).__name__.endswith("MappedOperator"),
                "outlets": sorted(getattr(o, "name", str(o)) for o in (t.outlets or [])),
                "emit_datasets": getattr(t, "emit_datasets", None),
            }} for t in dag.tasks}},
        }}
    out["timeouts"] = {{d.dag_id: {{
        "dagrun_timeout": d.dagrun_timeout.total_seconds() if d.dagrun_timeout else None,
        "execution_timeouts": sorted({{t.execution_timeout.total_seconds() if t.execution_timeout else None
                                      for t in d.tasks}}, key=str),
        "callbacks": all(bool(t.on_failure_callback) for t in d.tasks)}} for d in bag.dags.values()}}
    monthly = bag.dags.get("cchc_monthly_publication")
    if monthly is not None:
        condition = getattr(monthly.timetable, "asset_condition", None)
        out["monthly"] = {{"timetable": type(monthly.timetable).__name__,
                          "assets": sorted(a.name for a in getattr(condition, "objects", ())),
                          "params": sorted(monthly.params.keys())}}
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    """The DAG as the default settings render it (one ``dbt build`` per dbt group)."""
    code = PARSE_PROBE.format(dag_file=str(DAG_FILE), dags=str(DAGS), dag_id=DAG_ID)
    return _run_python(code, tmp_path_factory.mktemp("dagbag"))


@pytest.fixture(scope="module")
def parsed_per_node(tmp_path_factory) -> dict:
    """The DAG with ``DBT_TASK_GRAIN=node`` (Cosmos renders one task per dbt node) and timeouts of its own."""
    code = PARSE_PROBE.format(dag_file=str(DAG_FILE), dags=str(DAGS), dag_id=DAG_ID)
    return _run_python(code, tmp_path_factory.mktemp("dagbag"), {"DBT_TASK_GRAIN": "node",
                       "PIPELINE_TASK_TIMEOUT_MINUTES": "7", "PIPELINE_RUN_TIMEOUT_MINUTES": "30"})


def test_no_import_errors(parsed):
    assert parsed["import_errors"] == {}
    assert DAG_ID in parsed["dag_ids"]


def test_tasks_and_dependency_order(parsed):
    tasks = parsed["dag"]["tasks"]
    assert set(tasks) >= EXPECTED_TASKS
    for upstream, downstream in EXPECTED_EDGES:
        assert upstream in tasks[downstream]["upstream"], f"{upstream} must run before {downstream}"
    assert tasks["start_run"]["upstream"] == []
    assert tasks["pull_dossiers"]["mapped"], "pull_dossiers must be a mapped task (one per partition)"
    # finish_run is the last task: everything else is upstream of it (directly or not)
    reach = {t: set(v["upstream"]) for t, v in tasks.items()}
    ancestors, todo = set(), ["finish_run"]
    while todo:
        for up in reach[todo.pop()]:
            if up not in ancestors:
                ancestors.add(up)
                todo.append(up)
    assert ancestors == set(tasks) - {"finish_run"}


def test_by_default_each_dbt_group_is_one_build_after_ingestion_and_before_the_marts(parsed):
    tasks = parsed["dag"]["tasks"]
    assert {t for t in tasks if t.startswith("dbt_")} >= {"dbt_staging.build", "dbt_steps.build", "dbt_marts.build",
                                                          "dbt_dq_marts.build"}
    assert "complete_partitions" in tasks["dbt_staging.build"]["upstream"]
    assert "dbt_staging.build" in tasks["batch_checks"]["upstream"]
    # the processing steps beside the staging stage and the gate: after the loads, before the marts alone
    assert tasks["dbt_steps.build"]["upstream"] == ["complete_partitions"]
    assert "dbt_steps.build" not in tasks["batch_checks"]["upstream"]
    # past the gate, the dossier rules beside the marts; the data-quality marts after the rules
    assert set(tasks["data_quality"]["upstream"]) == {"batch_checks", "start_run"}
    assert set(tasks["dbt_marts.build"]["upstream"]) == {"batch_checks", "dbt_steps.build"}
    assert tasks["dbt_dq_marts.build"]["upstream"] == ["data_quality"]
    assert set(tasks["marts_published"]["upstream"]) == {"dbt_marts.build", "dbt_dq_marts.build"}


def test_dbt_runs_after_ingestion_staging_before_marts(parsed_per_node):
    """Cosmos renders one task per dbt node: staging after the loads, intermediate and marts after staging."""
    tasks = parsed_per_node["dag"]["tasks"]
    staging = {t for t in tasks if t.startswith("dbt_staging.")}
    steps = {t for t in tasks if t.startswith("dbt_steps.")}
    marts = {t for t in tasks if t.startswith("dbt_marts.")}
    dq_marts = {t for t in tasks if t.startswith("dbt_dq_marts.")}
    assert "dbt_staging.stg_api__dossiers_model_build" in staging
    assert {"dbt_marts.fct_dossier_model_build", "dbt_marts.rpt_monthly_ranking_model_build",
            "dbt_marts.snap_dossier_status_snapshot_build"} <= marts

    def ancestors(task):
        seen, todo = set(), [task]
        while todo:
            for up in tasks[todo.pop()]["upstream"]:
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return seen

    assert "dbt_staging.dq_dossiers_model_build" in staging  # what the data-quality rules read
    # the steps, their own group: after the loads, beside the staging models and the gate, before the marts
    assert "dbt_steps.int_dossiers__steps_model_build" in steps
    assert not [t for t in steps if "batch_checks" in ancestors(t)]
    assert not steps & ancestors("batch_checks")
    for task in steps:
        assert "complete_partitions" in ancestors(task)
    assert {"dbt_dq_marts.int_dq_issues_model_build", "dbt_dq_marts.fct_dq_issue_model_build",
            "dbt_dq_marts.fct_dq_daily_model_build"} <= dq_marts
    assert not {t for t in marts if "_dq_" in t}
    for task in staging:
        assert "complete_partitions" in ancestors(task)
    # Great Expectations runs on the staged batch, and no mart is rebuilt before its batch checks passed.
    assert staging <= ancestors("batch_checks")
    assert "batch_checks" in ancestors("data_quality")
    for task in marts | dq_marts:
        assert staging <= ancestors(task), f"{task} must wait for every staging model"
        if task in marts:
            assert steps <= ancestors(task), f"{task} must wait for the processing steps"
        assert "batch_checks" in ancestors(task), f"{task} must wait for the batch checks"
    # The dossier rules run beside the marts, which do not read their findings; the data-quality marts do.
    assert not [t for t in marts if "data_quality" in ancestors(t)]
    assert not [t for t in marts if t in ancestors("data_quality")]
    for task in dq_marts:
        assert "data_quality" in ancestors(task), f"{task} must wait for the dossier rules"
    # The dossier marts do not wait on the workbooks: an unmounted inbox fails the finance branch only.
    for task in staging | marts | dq_marts | {"batch_checks", "data_quality", "marts_published"}:
        assert "load_workbooks" not in ancestors(task), f"{task} must not wait for the workbooks"
    assert not [t for t in staging | marts if "disbursement" in t]
    finance = {t for t in tasks if t.startswith("finance.")}
    assert {"finance.staging.stg_finance__disbursement_rows_model_build",
            "finance.marts.fct_disbursement_model_build",
            "finance.marts.rpt_disbursement_by_investor_model_build"} <= finance
    for task in finance:
        assert "load_workbooks" in ancestors(task), task
    for task in (t for t in finance if t.startswith("finance.marts.")):
        assert "batch_checks" in ancestors(task), f"{task} must wait for the night's data-quality gate"
    # The report and the end of the night run however the branches ended.
    assert tasks["write_report"]["trigger_rule"] == "all_done"
    assert tasks["finish_run"]["trigger_rule"] == "all_done"
    # The dbt docs site, every night the marts are rebuilt (it skips itself otherwise), before the end.
    assert tasks["dbt_docs"]["trigger_rule"] == "all_done"
    assert {"marts_published", "finance_published"} <= set(tasks["dbt_docs"]["upstream"])
    assert "dbt_docs" in tasks["finish_run"]["upstream"]


def test_marts_are_published_as_assets_and_drive_the_monthly_dag(parsed):
    """The marts become Airflow Assets once dbt_marts is done; the monthly publication is triggered by the
    ranking's asset, not by the clock."""
    tasks = parsed["dag"]["tasks"]
    published = tasks["marts_published"]
    assert "marts.rpt_monthly_ranking" in published["outlets"] and "marts.fct_dq_issue" in published["outlets"]
    assert any(t.startswith("dbt_marts.") for t in published["upstream"])
    assert "marts_published" in tasks["write_report"]["upstream"] or "marts_published" in set().union(
        *(tasks[u]["upstream"] for u in tasks["write_report"]["upstream"]))
    assert "marts.fct_disbursement" not in published["outlets"]
    assert set(tasks["finance_published"]["outlets"]) == {"marts.fct_disbursement",
                                                          "marts.rpt_disbursement_by_investor"}
    assert not [t for t, v in tasks.items() if v["outlets"] and t not in ("marts_published", "finance_published")]
    # ... and only those: the dbt tasks (Cosmos) emit no assets of their own at run time, which would name the
    # warehouse's host and port, and which two tasks ending together would both create (a unique-key error)
    emitting = {t: v["emit_datasets"] for t, v in tasks.items() if v["emit_datasets"] is not None}
    assert {"dbt_staging.build", "dbt_marts.build", "finance.marts.build"} <= set(emitting)
    assert not any(emitting.values()), emitting
    assert parsed["monthly"]["timetable"] == "AssetTriggeredTimetable"
    assert parsed["monthly"]["assets"] == ["marts.rpt_monthly_ranking"]
    assert parsed["monthly"]["params"] == ["force", "month"]


def test_dbt_tasks_emit_no_assets_at_node_grain_either(parsed_per_node):
    emitting = {t: v["emit_datasets"] for t, v in parsed_per_node["dag"]["tasks"].items()
                if v["emit_datasets"] is not None}
    assert len(emitting) > 10 and not any(emitting.values()), emitting


def test_schedule_and_run_limits(parsed):
    dag = parsed["dag"]
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["expression"] == "0 1 * * *"
    assert dag["timezone"] == "Asia/Ho_Chi_Minh"
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False
    assert dag["start_date"] == "2022-12-31T17:00:00+00:00"  # 2023-01-01 00:00 Asia/Ho_Chi_Minh
    assert dag["tags"] and dag["doc_md"]


def test_every_task_retries_alerts_and_has_a_timeout(parsed):
    assert parsed["dag"]["dagrun_timeout"] == 360 * 60, "a stuck night must not block the next ones"
    for task_id, task in parsed["dag"]["tasks"].items():
        assert task["retries"] >= 1, task_id
        assert task["retry_delay"] > 0, task_id
        assert task["on_failure_callback"], f"{task_id} has no task-level on_failure_callback"
        assert task["execution_timeout"] == 120 * 60, f"{task_id} has no execution_timeout"


def test_timeouts_come_from_the_environment(parsed_per_node):
    out = parsed_per_node
    assert out["dag"]["dagrun_timeout"] == 30 * 60
    assert {t["execution_timeout"] for t in out["dag"]["tasks"].values()} == {7 * 60}
    # the monthly publication and the weekly integrity DAG share the defaults
    assert set(out["timeouts"]) == {DAG_ID, "cchc_monthly_publication", "cchc_weekly_integrity"}
    for dag_id, dag in out["timeouts"].items():
        assert dag == {"dagrun_timeout": 30 * 60, "execution_timeouts": [7 * 60], "callbacks": True}, dag_id


def test_parse_is_light(parsed):
    heavy = [m for m in parsed["new_modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES)]
    assert heavy == [], f"the DAG file imports heavy modules at parse time: {heavy}"
    assert parsed["parse_seconds"] < 3, parsed["parse_seconds"]


def test_dag_wires_existing_pipeline_functions():
    """Every function the DAG calls exists in ``ingestion.loads`` / ``pipeline.runs`` with the parameters
    it passes."""
    from ingestion import loads
    from pipeline import runs

    calls = {
        (runs, "begin_night"): {"run_id", "interval_start", "interval_end", "settings"},
        (loads, "refresh_reference"): {"run_id", "settings"},
        (loads, "plan_dossier_partitions"): {"settings"},
        (loads, "pull_dossiers"): {"run_id", "partition", "interval_start", "interval_end", "settings"},
        (loads, "complete_partitions"): {"run_id", "interval_start", "interval_end", "results", "settings"},
        (loads, "load_workbooks"): {"run_id", "settings"},
        (runs, "finish_night"): {"run_id", "as_of", "results", "states", "settings"},
    }
    source = DAG_FILE.read_text()
    for (module, name), params in calls.items():
        assert f"{module.__name__.rsplit('.', 1)[-1]}.{name}(" in source, name
        assert params <= set(inspect.signature(getattr(module, name)).parameters), name


GLUE_PROBE = """
    import importlib.util, json
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from pipeline import orchestration as m

    utc = timezone.utc
    ctx = {{"run_id": "scheduled__2023-09-30T18:00:00+00:00",
           "data_interval_start": datetime(2023, 9, 29, 18, tzinfo=utc),
           "data_interval_end": datetime(2023, 9, 30, 18, tzinfo=utc)}}
    no_interval = {{"run_id": "manual__2023-10-01 x/y", "data_interval_start": None, "data_interval_end": None,
                   "dag_run": SimpleNamespace(run_after=datetime(2023, 10, 1, 18, 30, tzinfo=utc))}}
    early = dict(no_interval, dag_run=SimpleNamespace(run_after=datetime(2023, 10, 1, 17, 30, tzinfo=utc)))
    print(json.dumps({{
        "descriptor": m.run_descriptor(ctx),
        "no_interval": m.run_descriptor(no_interval),
        "early": m.run_descriptor(early),
        "api": m.api_from_connection(),
    }}))
"""


def test_glue_interval_run_id_and_connection(tmp_path):
    code = GLUE_PROBE.format(dag_file=str(DAG_FILE))
    # a URI connection: scheme, host, port and path make the base URL; the password is the token
    out = _run_python(code, tmp_path, {"AIRFLOW_CONN_PROCEDURE_API": "https://:s3cret-token@api.example.vn:8443/api/v1"})
    assert out["descriptor"] == {
        "run_id": "scheduled__2023-09-30T18:00:00+00:00",
        "airflow_run_id": "scheduled__2023-09-30T18:00:00+00:00",
        "interval_start": "2023-09-30T01:00:00",  # naive local time (UTC+7)
        "interval_end": "2023-10-01T01:00:00",
    }
    # no data interval (manual run without a logical date): the last 01:00 local at or before run_after
    assert out["no_interval"]["interval_start"] is None
    assert out["no_interval"]["interval_end"] == "2023-10-02T01:00:00"  # run_after = 2023-10-02 01:30 local
    assert out["no_interval"]["run_id"] == "manual__2023-10-01_x_y"
    assert out["early"]["interval_end"] == "2023-10-01T01:00:00"  # run_after = 2023-10-02 00:30 local
    assert out["api"] == ["https://api.example.vn:8443/api/v1", "s3cret-token"]

    # a JSON connection whose host is the whole base URL
    conn = json.dumps({"conn_type": "http", "host": "http://127.0.0.1:8800/api/v1", "password": "tok-12345"})
    out = _run_python(code, tmp_path, {"AIRFLOW_CONN_PROCEDURE_API": conn})
    assert out["api"] == ["http://127.0.0.1:8800/api/v1", "tok-12345"]

    # no connection: (None, None), so Settings.with_api keeps the environment variables
    out = _run_python(code, tmp_path)
    assert out["api"] == [None, None]


# --- ops.airflow -------------------------------------------------------------------------------------

def test_logical_date_is_the_interval_end():
    assert logical_date_for(date(2023, 10, 1)) == "2023-10-01T01:00:00+07:00"


def test_airflow_env_defaults_and_overrides(tmp_path):
    env = airflow_env(base={"PYTHONPATH": "/x", "AIRFLOW__CORE__UNIT_TEST_MODE": "True"})
    assert env["AIRFLOW_HOME"] == str(PROJECT_ROOT / ".local" / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__UNIT_TEST_MODE"] == "False"
    home = PROJECT_ROOT / ".local" / "airflow"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert 2 <= int(env["AIRFLOW__CORE__PARALLELISM"]) <= 8
    assert env["PYTHONPATH"].split(":")[:2] == [str(PROJECT_ROOT), "/x"]

    env = airflow_env(base={"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://h/db"})
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://h/db"
    assert airflow_env({"AIRFLOW_HOME": "/a"}, base={})["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "sqlite:////a/airflow.db"


PROBE_DAG = '''
"""Probe airflow dag (generated by the test): records its data interval and the environment it got, or
sleeps (with PROBE_SLEEP) after writing its pid."""
import json, os, time
import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

@dag(dag_id="interval_probe", schedule=CronDataIntervalTimetable("0 1 * * *", timezone="Asia/Ho_Chi_Minh"),
     start_date=pendulum.datetime(2023, 1, 1, tz="Asia/Ho_Chi_Minh"), catchup=False, max_active_runs=1)
def interval_probe():
    @task
    def record():
        c = get_current_context()
        seen = {k: c[k].isoformat() for k in ("logical_date", "data_interval_start", "data_interval_end")}
        seen.update({k: os.environ.get(k) for k in ("PROCEDURE_API_URL", "PROCEDURE_API_TOKEN",
                                                     "PIPELINE_RETRY_DELAY_SECONDS", "WAREHOUSE_WRITER_URL")})
        seen["pid"] = os.getpid()
        with open(os.environ["PROBE_OUT"], "w") as fh:
            json.dump(seen, fh)
        if os.environ.get("PROBE_SLEEP"):
            time.sleep(float(os.environ["PROBE_SLEEP"]))

    record()

interval_probe()
'''


def _probe_env(tmp_path: Path, **more) -> dict:
    """A newcomer's shell after `make run`: no API variables, the simulator's URL and token in its state
    folder, the probe DAG's folder."""
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "interval_probe.py").write_text(PROBE_DAG)
    state = tmp_path / "simulator"
    state.mkdir(exist_ok=True)
    (state / "simulator.env").write_text("PROCEDURE_API_URL=http://127.0.0.1:1/api/v1\nPROCEDURE_API_TOKEN=tok-1\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PROCEDURE_API_URL", "PROCEDURE_API_TOKEN",
                                                           "PIPELINE_RETRY_DELAY_SECONDS", "RUN_DATE")}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "SIM_STATE_DIR": str(state), "WAREHOUSE_WRITER_URL": "postgresql://u:p@127.0.0.1:1/db",
                "PROBE_OUT": str(tmp_path / "probe.json"), "FINANCE_INBOX": str(tmp_path), **more})
    premigrated_home(tmp_path / "home")
    return env


@pytest.mark.slow
def test_dags_test_runs_the_night_ending_at_01_local(tmp_path):
    """The README's night-by-night command, typed after `make run`: the run gets the data interval ending at
    01:00 local on the run date, the running simulator's URL and token, and short retries."""
    env = _probe_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--dag-id", "interval_probe",
                           "--run-date", "2023-10-01"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = json.loads((tmp_path / "probe.json").read_text())
    assert {k: _utc(seen[k]) for k in ("data_interval_start", "data_interval_end", "logical_date")} == {
        "data_interval_start": "2023-09-29T18:00:00+00:00",  # 2023-09-30 01:00 Asia/Ho_Chi_Minh
        "data_interval_end": "2023-09-30T18:00:00+00:00",    # 2023-10-01 01:00 Asia/Ho_Chi_Minh
        "logical_date": "2023-09-30T18:00:00+00:00",         # under `dags test`: the interval's end
    }
    assert (seen["PROCEDURE_API_URL"], seen["PROCEDURE_API_TOKEN"]) == ("http://127.0.0.1:1/api/v1", "tok-1")
    assert seen["PIPELINE_RETRY_DELAY_SECONDS"] == "10"
    # No simulator and no API configured: a clear message at once, no night that sits out retries.
    (tmp_path / "simulator" / "simulator.env").unlink()
    proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--dag-id", "interval_probe"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no procedure-system API" in proc.stderr


@pytest.mark.slow
def test_the_night_dies_with_its_wrapper(tmp_path):
    """A timeout that kills `python -m ops.airflow test-dag` — even with SIGKILL, as a test's timeout does —
    leaves no `airflow dags test` running, nor its task processes (the guard gets SIGTERM as its parent
    dies, and stops its whole process group, which is also what a SIGTERM to the wrapper does)."""
    how = "SIGKILL"
    env = _probe_env(tmp_path, PROBE_SLEEP="600")
    wrapper = subprocess.Popen([sys.executable, "-m", "ops.airflow", "test-dag", "--dag-id", "interval_probe",
                                "--run-date", "2023-10-01"], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = tmp_path / "probe.json"
    try:
        deadline = time.monotonic() + 180
        while not probe.exists() or not probe.read_text():
            assert wrapper.poll() is None and time.monotonic() < deadline, "the probe task never started"
            time.sleep(0.2)
        time.sleep(0.2)
        task_pid = json.loads(probe.read_text())["pid"]
        os.kill(wrapper.pid, getattr(signal, how))
        wrapper.wait(60)
        deadline = time.monotonic() + 30
        while _alive(task_pid):
            assert time.monotonic() < deadline, f"airflow dags test outlived its wrapper ({how})"
            time.sleep(0.2)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()


PROGRESS_DAG = '''
"""Progress probe (generated by the test): a task that takes a while, a mapped one, a failing one."""
import time
import pendulum
from airflow.sdk import dag, task

@dag(dag_id="progress_probe", schedule=None, start_date=pendulum.datetime(2023, 1, 1, tz="Asia/Ho_Chi_Minh"),
     catchup=False)
def progress_probe():
    @task(retries=0)
    def slow():
        time.sleep(2)

    @task(retries=0)
    def mapped(i):
        return i

    @task(retries=0)
    def broken():
        raise ValueError("on purpose")

    slow() >> mapped.expand(i=[1, 2]) >> broken()

progress_probe()
'''
PROGRESS_LINE = re.compile(r"^  \[\s*(\d+)s\] (\S+)\s+(\w+)\s+(\d+\.\d)s$")


@pytest.mark.slow
def test_make_runs_progress_prints_each_finished_task_with_its_duration(tmp_path, capsys):
    """`make run` shows one line per finished task, read from what `airflow dags test` (Airflow 3.3) logs
    while it runs: the time since the run started, the task (with its map index), its state, its duration."""
    from ops.airflow import dags_test, ensure_db

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "progress_probe.py").write_text(PROGRESS_DAG)
    base = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_PROCEDURE_API"}
    env = airflow_env({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}, base=base)
    premigrated_home(tmp_path / "home")
    ensure_db(env)
    started = time.monotonic()
    code = dags_test("progress_probe", date(2023, 10, 1), env, log_file=tmp_path / "run.log", progress=True)
    took = time.monotonic() - started
    assert code != 0, "the broken task fails the run"
    lines = [PROGRESS_LINE.match(line) for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert all(lines), lines
    seen = {m[2]: (int(m[1]), m[3], float(m[4])) for m in lines}
    order = list(seen)
    # the two mapped instances run in whichever order `dags test` picks them; both after `slow`, before `broken`
    assert order[0] == "slow" and sorted(order[1:3]) == ["mapped[0]", "mapped[1]"] and order[3:] == ["broken"], order
    assert [seen[name][1] for name in ("slow", "mapped[0]", "mapped[1]", "broken")] == [
        "success", "success", "success", "failed"]
    assert seen["slow"][2] >= 2.0, "a task's duration is its own, from the log's timestamps"
    elapsed = [at for at, _, _ in seen.values()]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= took + 1
    assert elapsed[0] >= seen["slow"][2] - 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()
