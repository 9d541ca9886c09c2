"""Run this project's Airflow without a scheduler: environment, metadata DB, one ``dags test`` run.

    python -m ops.airflow db-migrate                          # create/upgrade the metadata DB (idempotent)
    python -m ops.airflow test-dag [--run-date YYYY-MM-DD]    # run cchc_nightly once, in-process
                                   [--dag-id ID] [--mark-success PATTERN]
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
import contextlib
import ctypes
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.settings import LOCAL_DIR, LOCAL_TZ, PROJECT_ROOT, RUN_HOUR, env_value, project_path

DEFAULT_DAG_ID = "cchc_nightly"
STOP_GRACE_SECONDS = 20
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_TASK_STATE = re.compile(r"new_state=(\w+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")


def _parallelism() -> str:
    return str(min(8, max(2, os.cpu_count() or 2)))


def airflow_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Airflow commands of this project: ``base`` (default ``os.environ``), the
    project defaults for whatever it does not set, then ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    extra = dict(extra or {})
    home = project_path(env_value("AIRFLOW_HOME", extra) or env_value("AIRFLOW_HOME", env) or LOCAL_DIR / "airflow")
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
        # The dbt selectors come from the manifest; caching them would write Airflow Variables at parse time.
        "AIRFLOW__COSMOS__ENABLE_CACHE_DBT_YAML_SELECTORS": "False",
        "DO_NOT_TRACK": "1",
    }
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    env.update(extra)
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])
    if env_value("WAREHOUSE_WRITER_URL", env):
        # dbt (run by Cosmos inside the tasks) connects with the same writer role, through DBT_* variables.
        from ops.dbt import dbt_env

        env = dbt_env(env_value("WAREHOUSE_WRITER_URL", env), env)
    return env


def _airflow() -> str:
    """The ``airflow`` executable of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def _migration_stamp(env: Mapping[str, str]) -> Path:
    from importlib.metadata import version

    key = f"{version('apache-airflow-core')}|{env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}"
    return Path(env_value("AIRFLOW_HOME", env)) / f".db-migrated-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _sqlite_file(env: Mapping[str, str]) -> Path | None:
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def ensure_db(env: Mapping[str, str]) -> None:
    """``airflow db migrate``, once: skipped when this Airflow version already migrated this database
    (and, for SQLite, the file still exists)."""
    home = Path(env_value("AIRFLOW_HOME", env))
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
    end = datetime(run_date.year, run_date.month, run_date.day, RUN_HOUR.hour, tzinfo=ZoneInfo(LOCAL_TZ))
    return end.isoformat()  # e.g. 2023-10-01T01:00:00+07:00


def _die_with_parent() -> None:
    """In the child, before ``airflow dags test`` starts: die (SIGTERM) when the wrapper dies, even by
    SIGKILL (a test's timeout), so the run never outlives it as an orphan (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop ``proc``'s whole process group: SIGTERM, then SIGKILL after ``STOP_GRACE_SECONDS``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _progress(log_file: Path, proc: subprocess.Popen, started: float) -> None:
    """Follow the run's log and print one line per finished task: its state and duration."""
    position, begun, state = 0, {}, {}
    while True:
        done = proc.poll() is not None
        with log_file.open(errors="replace") as fh:
            fh.seek(position)
            chunk = fh.read()
            position = fh.tell()
        for line in chunk.splitlines():
            if m := _TASK_START.search(line):
                begun[m.groups()] = time.monotonic()
            elif (m := _TASK_STATE.search(line)) and begun:
                state[list(begun)[-1]] = m.group(1)
            elif m := _TASK_END.search(line):
                task = m.groups()
                took = time.monotonic() - begun.get(task, time.monotonic())
                name = task[0] + (f"[{task[1]}]" if task[1] != "-1" else "")
                print(f"  [{time.monotonic() - started:6.0f}s] {name:<58} {state.get(task, 'done'):<16} "
                      f"{took:6.1f}s", flush=True)
        if done:
            return
        time.sleep(0.5)


def dags_test(dag_id: str, run_date: date, env: Mapping[str, str], log_file: Path | None = None,
              progress: bool = False, mark_success: str | None = None) -> int:
    """Run ``airflow dags test`` for the night of ``run_date``; output streams through, or goes to
    ``log_file`` (with ``progress``: one line per finished task printed meanwhile). ``mark_success``: a
    regular expression of task ids marked successful without running (Airflow's ``--mark-success-pattern``,
    e.g. the docs site in a test that does not look at it). Returns the exit code (0: the run succeeded).
    The run is its own process group, stopped whole when this wrapper is interrupted, terminated, or killed."""
    cmd = [_airflow(), "dags", "test", dag_id, logical_date_for(run_date)]
    if mark_success:
        cmd += ["--mark-success-pattern", mark_success]
    print(f"$ {' '.join(cmd)}" + (f"  (log: {log_file})" if log_file else ""), flush=True)
    out = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        out = log_file.open("w")
    started = time.monotonic()

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # Through ops.guard, a session of its own that dies with this wrapper, taking every task process along.
    proc = subprocess.Popen([sys.executable, "-m", "ops.guard", *cmd], env=dict(env), cwd=PROJECT_ROOT, stdout=out,
                            stderr=subprocess.STDOUT if out else None, start_new_session=True,
                            preexec_fn=_die_with_parent)
    try:
        if progress and log_file is not None:
            _progress(log_file, proc, started)
        return proc.wait()
    finally:
        _stop_group(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if out is not None:
            out.close()


def default_run_date(env: Mapping[str, str] | None = None, simulated: bool = False) -> date:
    """``RUN_DATE``, else the simulator's clock (when it is the source), else today (local time)."""
    from ops.run import run_date

    env = dict(os.environ if env is None else env)
    if simulated or env_value("RUN_DATE", env):
        return run_date(env, simulated)
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
    test.add_argument("--mark-success", metavar="PATTERN", default=None,
                      help="task ids (a regular expression) marked successful without running them")
    sub.add_parser("standalone", help="run Airflow every night: scheduler, api-server, dag-processor and "
                                      "triggerer under a supervisor (ops/stack.py)")
    args = parser.parse_args(argv)

    if args.command == "standalone":
        from ops.stack import main as stack_main

        return stack_main()
    from ops.dbt import ensure_manifest
    from ops.run import local_environment

    # As `make run` does, without starting anything: the configured warehouse, the running simulator when
    # no API is configured, the finance inbox, short retries.
    local, simulated = local_environment()
    if args.command == "test-dag" and not env_value("PROCEDURE_API_URL", local):
        print("no procedure-system API: set PROCEDURE_API_URL (and PROCEDURE_API_TOKEN), or start the "
              "simulator (`make simulator`, or `make run` once)", file=sys.stderr)
        return 2
    env = airflow_env(base=local)
    ensure_db(env)
    ensure_manifest(env_value("WAREHOUSE_WRITER_URL", env))
    if args.command == "db-migrate":
        print(f"Airflow metadata database ready ({env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']})")
        return 0
    return dags_test(args.dag_id, args.run_date or default_run_date(local, simulated), env,
                     mark_success=args.mark_success)


if __name__ == "__main__":
    sys.exit(main())
