"""Run this project's Airflow without a scheduler: environment, metadata DB, one ``dags test`` run.

    python -m ops.airflow db-migrate                          # create/upgrade the metadata DB (idempotent)
    python -m ops.airflow test-dag [--run-date YYYY-MM-DD]    # run cchc_nightly once, in-process
                                   [--dag-id ID] [--mark-success PATTERN]
    python -m ops.airflow standalone                          # `make airflow`: the scheduled stack (ops/stack.py)
    python -m ops.airflow celery                              # `make airflow-celery`: the same on Celery workers

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

``AIRFLOW__CORE__UNIT_TEST_MODE`` is always ``False``. ``AIRFLOW_HOME`` and ``RUN_DATE`` (``YYYY-MM-DD``, the
default of ``--run-date``; without it, today in Asia/Ho_Chi_Minh) are read by
``pipeline.settings.RunSettings``.

With a log file and ``progress``, ``dags_test`` prints one line per finished task as the run goes: the time
since the run started, the task, its state and its duration, from the timestamps ``airflow dags test``
writes (``TaskProgress``).
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.settings import LOCAL_TZ, NIGHTLY_DAG_ID, PROJECT_ROOT, RUN_HOUR, RunSettings

STOP_GRACE_SECONDS = 20
# What `airflow dags test` (Airflow 3.3) logs around each task, e.g.
#   2026-12-05T23:48:14.588772Z [info     ] [DAG TEST] starting task_id=first map_index=-1 [airflow.sdk…]
#   … [DAG TEST] running task <TaskInstance: probe.first manual__… [TaskInstanceState.SCHEDULED] ti_id=01a2…>
#   … Task instance state updated … new_state=success rows_affected=1 ti_id=01a2…
#   … [DAG TEST] end task task_id=first map_index=-1 [airflow.sdk…]
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d)?\s")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_TASK_RUNNING = re.compile(r"\[DAG TEST\] running task .* ti_id=([0-9a-f-]+)")
_TASK_STATE = re.compile(r"new_state=(\w+).* ti_id=([0-9a-f-]+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")


def _parallelism() -> str:
    return str(min(8, max(2, os.cpu_count() or 2)))


def airflow_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Airflow commands of this project: ``base`` (default ``os.environ``), the
    project defaults for whatever it does not set, then ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    extra = dict(extra or {})
    home = RunSettings.from_env({**env, **extra}).airflow_home
    defaults = {
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
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *paths])
    writer_url = RunSettings.from_env(env).writer_url
    if writer_url:
        # dbt (run by Cosmos inside the tasks) connects with the same writer role, through DBT_* variables.
        from ops.dbt import dbt_env

        env = dbt_env(writer_url, env)
    return env


def _airflow() -> str:
    """The ``airflow`` executable of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def _migration_stamp(env: Mapping[str, str]) -> Path:
    from importlib.metadata import version

    key = f"{version('apache-airflow-core')}|{env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}"
    return RunSettings.from_env(env).airflow_home / f".db-migrated-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _sqlite_file(env: Mapping[str, str]) -> Path | None:
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def ensure_db(env: Mapping[str, str]) -> None:
    """``airflow db migrate``, once: skipped when this Airflow version already migrated this database
    (and, for SQLite, the file still exists)."""
    home = RunSettings.from_env(env).airflow_home
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
    mark_migrated(env)


def mark_migrated(env: Mapping[str, str]) -> None:
    """Record that this Airflow version's migrations are in the metadata database of ``env`` (what
    ``ensure_db`` checks): after ``airflow db migrate``, or after copying in a database it migrated."""
    stamp = _migration_stamp(env)
    stamp.parent.mkdir(parents=True, exist_ok=True)
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


@dataclass
class TaskProgress:
    """Follows ``airflow dags test``'s log, line by line, and tells each task that finished: its name (with its
    map index), its state and its duration — from the log's own timestamps, so a log read late tells the same
    durations — and when it finished, counted from ``started`` (a Unix time: the run's start)."""

    started: float
    _begun: dict[tuple[str, str], float] = field(default_factory=dict)
    _ti: dict[str, tuple[str, str]] = field(default_factory=dict)
    _state: dict[tuple[str, str], str] = field(default_factory=dict)
    _current: tuple[str, str] | None = None

    def feed(self, lines: Iterable[str]) -> Iterator[str]:
        """The lines to print for ``lines`` of the log: one per task that ended in them."""
        for line in lines:
            stamp = _STAMP.match(line)
            at = datetime.fromisoformat(stamp.group(1) + (stamp.group(2) or "+00:00").replace("Z", "+00:00")
                                        ).timestamp() if stamp else time.time()
            if m := _TASK_START.search(line):
                self._current = m.groups()
                self._begun[self._current] = at
            elif (m := _TASK_RUNNING.search(line)) and self._current:
                self._ti[m.group(1)] = self._current
            elif m := _TASK_STATE.search(line):
                task = self._ti.get(m.group(2), self._current)
                if task:
                    self._state[task] = m.group(1)
            elif m := _TASK_END.search(line):
                task = m.groups()
                took = at - self._begun.get(task, at)
                name = task[0] + (f"[{task[1]}]" if task[1] != "-1" else "")
                yield (f"  [{at - self.started:6.0f}s] {name:<58} {self._state.get(task, 'done'):<16} "
                       f"{took:6.1f}s")


def _progress(log_file: Path, proc: subprocess.Popen, started: float) -> None:
    """Follow the run's log while it runs and print one line per finished task (``TaskProgress``)."""
    position, pending, progress = 0, "", TaskProgress(started)
    while True:
        done = proc.poll() is not None
        with log_file.open(errors="replace") as fh:
            fh.seek(position)
            chunk = fh.read()
            position = fh.tell()
        lines = (pending + chunk).split("\n")
        pending = "" if done else lines.pop()  # a line still being written waits for its end
        for line in progress.feed(lines):
            print(line, flush=True)
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
    started = time.time()

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
    if simulated or RunSettings.from_env(env).run_date:
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
    test.add_argument("--dag-id", default=NIGHTLY_DAG_ID)
    test.add_argument("--mark-success", metavar="PATTERN", default=None,
                      help="task ids (a regular expression) marked successful without running them")
    sub.add_parser("standalone", help="run Airflow every night: scheduler, api-server, dag-processor and "
                                      "triggerer under a supervisor (ops/stack.py)")
    sub.add_parser("celery", help="the same on the CeleryExecutor: a private Redis broker and CELERY_WORKERS "
                                  "Celery workers beside them (ops/stack.py, ops/broker.py)")
    args = parser.parse_args(argv)

    if args.command in ("standalone", "celery"):
        from ops.stack import CELERY_EXECUTOR, LOCAL_EXECUTOR
        from ops.stack import main as stack_main

        return stack_main(CELERY_EXECUTOR if args.command == "celery" else LOCAL_EXECUTOR)
    from ops.dbt import ensure_manifest
    from ops.run import local_environment

    # As `make run` does, without starting anything: the configured warehouse, the running simulator when
    # no API is configured, the finance inbox, short retries.
    local, simulated = local_environment()
    if args.command == "test-dag" and not RunSettings.from_env(local).api_url:
        print("no procedure-system API: set PROCEDURE_API_URL (and PROCEDURE_API_TOKEN), or start the "
              "simulator (`make simulator`, or `make run` once)", file=sys.stderr)
        return 2
    env = airflow_env(base=local)
    ensure_db(env)
    ensure_manifest(RunSettings.from_env(env).writer_url)
    if args.command == "db-migrate":
        print(f"Airflow metadata database ready ({env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']})")
        return 0
    return dags_test(args.dag_id, args.run_date or default_run_date(local, simulated), env,
                     mark_success=args.mark_success)


if __name__ == "__main__":
    sys.exit(main())
