"""Run this project's Airflow without a scheduler: environment, metadata DB, one ``dags test`` run.

    python -m ops.airflow db-migrate                          # create/upgrade the metadata DB (idempotent)
    python -m ops.airflow test-dag [--run-date YYYY-MM-DD]    # run cchc_nightly once, in-process
                                   [--dag-id ID]
    python -m ops.airflow standalone                          # `make airflow`: the scheduled stack (ops/stack.py)

``airflow dags test`` runs a whole DAG run in one process, without scheduler, api-server or workers,
and exits non-zero when the run fails. The run's data interval is the one that **ends at 01:00
Asia/Ho_Chi_Minh on the run date**: for a ``CronDataIntervalTimetable`` Airflow infers a manual run's
interval as the last complete cron period at or before the given logical date, so the logical date
passed is that end itself (``2023-10-01`` → ``2023-10-01T01:00:00+07:00``, data interval
``2023-09-30 01:00`` → ``2023-10-01 01:00`` local). Re-running the same date replaces that run.

Environment (``airflow_env``); a variable already set in the environment wins over the default:

| variable | default |
|---|---|
| ``AIRFLOW_HOME`` | ``<project>/.local/airflow`` |
| ``AIRFLOW__CORE__DAGS_FOLDER`` | ``<project>/dags`` |
| ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` | ``sqlite:///<AIRFLOW_HOME>/airflow.db`` (use PostgreSQL for a server) |
| ``AIRFLOW__CORE__LOAD_EXAMPLES`` | ``False`` |
| ``AIRFLOW__CORE__PARALLELISM`` | the number of CPUs, at least 2 and at most 8 |
| ``AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG`` | the same |
| ``AIRFLOW__CORE__EXECUTOR`` | ``LocalExecutor`` |
| ``AIRFLOW__LOGGING__BASE_LOG_FOLDER`` | ``<AIRFLOW_HOME>/logs`` |
| ``PYTHONPATH`` | the project root, prepended |

``AIRFLOW__CORE__UNIT_TEST_MODE`` is always ``False``. ``RUN_DATE`` (``YYYY-MM-DD``) is the default of
``--run-date``; without it, today in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DAG_ID = "cchc_nightly"
LOCAL_TZ = "Asia/Ho_Chi_Minh"
RUN_HOUR = 1  # the nightly data interval ends at 01:00 local time (ingestion.settings.RUN_HOUR)


def _parallelism() -> str:
    return str(min(8, max(2, os.cpu_count() or 2)))


def airflow_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Airflow commands of this project: ``base`` (default ``os.environ``), the
    project defaults for whatever it does not set, then ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    extra = dict(extra or {})
    home = Path(extra.get("AIRFLOW_HOME") or env.get("AIRFLOW_HOME") or PROJECT_ROOT / ".local" / "airflow")
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": _parallelism(),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": _parallelism(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # No usage telemetry: the machines running this have no network but the package registries.
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
    }
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    env.update(extra)
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])
    if env.get("WAREHOUSE_WRITER_URL"):
        # dbt (run by Cosmos inside the tasks) connects with the same writer role, through DBT_* variables.
        from ops.dbt import dbt_env

        env = dbt_env(env["WAREHOUSE_WRITER_URL"], env)
    return env


def _airflow() -> str:
    """The ``airflow`` executable of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def _migration_stamp(env: Mapping[str, str]) -> Path:
    from importlib.metadata import version

    key = f"{version('apache-airflow-core')}|{env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}"
    return Path(env["AIRFLOW_HOME"]) / f".db-migrated-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _sqlite_file(env: Mapping[str, str]) -> Path | None:
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def ensure_db(env: Mapping[str, str]) -> None:
    """``airflow db migrate``, once: skipped when this Airflow version already migrated this database
    (and, for SQLite, the file still exists)."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp = _migration_stamp(env)
    db_file = _sqlite_file(env)
    if stamp.exists() and (db_file is None or db_file.exists()):
        return
    proc = subprocess.run([_airflow(), "db", "migrate"], env=dict(env), cwd=PROJECT_ROOT,
                          text=True, capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"`airflow db migrate` failed (exit {proc.returncode})")
    stamp.touch()


def logical_date_for(run_date: date) -> str:
    """The ``dags test`` logical date whose inferred data interval ends at 01:00 local on ``run_date``."""
    end = datetime(run_date.year, run_date.month, run_date.day, RUN_HOUR, tzinfo=ZoneInfo(LOCAL_TZ))
    return end.isoformat()  # e.g. 2023-10-01T01:00:00+07:00


def dags_test(dag_id: str, run_date: date, env: Mapping[str, str], log_file: Path | None = None) -> int:
    """Run ``airflow dags test`` for the night of ``run_date``; output streams through, or goes to
    ``log_file``. Returns the exit code (0: the run succeeded)."""
    cmd = [_airflow(), "dags", "test", dag_id, logical_date_for(run_date)]
    print(f"$ {' '.join(cmd)}" + (f"  (log: {log_file})" if log_file else ""), flush=True)
    if log_file is None:
        return subprocess.call(cmd, env=dict(env), cwd=PROJECT_ROOT)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        return subprocess.call(cmd, env=dict(env), cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def default_run_date(env: Mapping[str, str] | None = None) -> date:
    env = os.environ if env is None else env
    if env.get("RUN_DATE"):
        return date.fromisoformat(env["RUN_DATE"])
    return datetime.now(ZoneInfo(LOCAL_TZ)).date()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.airflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("db-migrate", help="create or upgrade the Airflow metadata database")
    test = sub.add_parser("test-dag", help="run the nightly DAG once with `airflow dags test`")
    test.add_argument("--run-date", type=date.fromisoformat, default=None,
                      help="the night to run (YYYY-MM-DD): the data interval ends at 01:00 local that day "
                           "(default: RUN_DATE, else today)")
    test.add_argument("--dag-id", default=DEFAULT_DAG_ID)
    sub.add_parser("standalone", help="run Airflow every night: scheduler, api-server, dag-processor and "
                                      "triggerer under a supervisor (ops/stack.py)")
    args = parser.parse_args(argv)

    if args.command == "standalone":
        from ops.stack import main as stack_main

        return stack_main()
    env = airflow_env()
    ensure_db(env)
    from ops.dbt import ensure_manifest

    ensure_manifest(env.get("WAREHOUSE_WRITER_URL"))
    if args.command == "db-migrate":
        print(f"Airflow metadata database ready ({env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']})")
        return 0
    return dags_test(args.dag_id, args.run_date or default_run_date(), env)


if __name__ == "__main__":
    sys.exit(main())
