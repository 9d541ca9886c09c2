"""The project's scheduled Airflow stack, started as people start it, for tests and benchmarks: ``make airflow``
(``python -m ops.airflow standalone``, the LocalExecutor) or ``make airflow-celery`` (``python -m ops.airflow
celery``), in a process group of its own, with its own ``AIRFLOW_HOME`` and free ports, against a given warehouse,
source and finance inbox — so it runs beside a developer's Airflow.

``stack_environment`` builds the environment such a command would see on a machine configured for the test;
``Stack`` starts it, waits for it, talks to its REST API (one night triggered, its task instances) and stops it;
``processes_of``, ``wait_gone`` and ``kill_leftovers`` find every process the stack started, to prove that a stop
leaves none behind. Failures raise ``StackError`` (an ``AssertionError``, so pytest reports them as failed checks)
with the end of the supervisor's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import free_port

# The developer's own settings must not leak into a test's stack (it would use their warehouse, their Airflow
# metadata, their source, their broker).
SCRUBBED_PREFIXES = ("AIRFLOW", "WAREHOUSE_", "PROCEDURE_API_", "SIM_", "DBT_", "BI_READER_", "REDIS_", "CELERY_")
SCRUBBED = {"FINANCE_INBOX", "REPORTS_DIR", "GX_PROJECT_DIR", "RUN_DATE", "HISTORY_START", "INGEST_PARTITION",
            "APPLICANT_SALT"}
STARTUP_TIMEOUT = 240  # seconds, generous: the machine may be busy with other test runs
COMMANDS = {"standalone": "make airflow", "celery": "make airflow-celery"}


class StackError(AssertionError):
    """The stack did not do what was expected; the message ends with the supervisor's output."""


def stack_environment(home: Path, wh, api_url: str, api_token: str, inbox: Path, **extra: str) -> dict[str, str]:
    """The environment ``make airflow`` / ``make airflow-celery`` would see on a machine configured for a test:
    the throw-away warehouse ``wh`` (found running by ``python -m warehouse up``), the source at ``api_url``, the
    finance inbox, reports and Great Expectations' folder beside ``home``, no retries, no scheduled runs (runs
    are triggered), free ports for every listener (api-server, log servers, Redis); ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED}
    env.update({name: os.environ[name] for name in ("WAREHOUSE_OS_USER", "WAREHOUSE_PG_BIN", "REDIS_SERVER",
                                                    "REDIS_OS_USER") if name in os.environ})
    first_log_port = free_port()
    env.update({
        "AIRFLOW_HOME": str(home),
        "WAREHOUSE_DATA_DIR": str(wh.settings.data_dir),
        "WAREHOUSE_CREDENTIALS_FILE": str(wh.settings.credentials_file),
        "WAREHOUSE_PORT": str(wh.port),
        "PROCEDURE_API_URL": api_url,
        "PROCEDURE_API_TOKEN": api_token,
        "FINANCE_INBOX": str(inbox),
        "HISTORY_START": "2023-01-01",
        "REPORTS_DIR": str(home.parent / "reports"),
        "GX_PROJECT_DIR": str(home.parent / "gx"),  # not the project's .local/gx, which other runs rewrite
        "REDIS_DATA_DIR": str(home.parent / "redis"),
        "REDIS_PORT": str(free_port()),
        "PIPELINE_TASK_RETRIES": "0",
        # the scheduler creates no run of its own (today's night, the weekly one); triggered runs still run
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(first_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    env.update(extra)
    return env


class Stack:
    """``python -m ops.airflow <command>`` (``standalone``: ``make airflow``; ``celery``: ``make airflow-celery``)
    in a process group of its own, its output in ``<home>-stack.out`` beside ``home``."""

    def __init__(self, home: Path, env: dict[str, str], command: str = "standalone"):
        self.home = home
        self.env = env
        self.command = command
        self.base_url = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        self.output = home.parent / f"{home.name}-stack.out"
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ops.airflow", command], cwd=PROJECT_ROOT,
                                         env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: set[tuple[int, int]] = set()
        self._session: requests.Session | None = None

    def text(self) -> str:
        """The supervisor's output so far."""
        return self.output.read_text(errors="replace")

    def fail(self, message: str) -> StackError:
        return StackError(f"{COMMANDS[self.command]}: {message}\n{self.text()[-6000:]}")

    def components(self) -> dict[str, int]:
        """Component → pid, as the supervisor announced them ("started scheduler (pid 123), log: …")."""
        return {m[1]: int(m[2]) for m in re.finditer(r"started (\S+) \(pid (\d+)\)", self.text())}

    def roots(self) -> set[int]:
        """The supervisor and the components: every process of the stack is in their sessions or below."""
        return {self.proc.pid, *self.components().values()}

    def watch(self) -> dict[tuple[int, int], list[str]]:
        """The stack's processes now; remembered, so that the stop can be checked against all of them."""
        procs = processes_of(self.home, self.roots())
        self.seen |= set(procs)
        return procs

    def alive(self) -> None:
        """Raise at once, with the supervisor's output, if it has exited."""
        self.watch()
        if self.proc.poll() is not None:
            raise self.fail(f"the stack exited ({self.proc.returncode}) early")

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> dict:
        """Wait until the health endpoint reports every component healthy; returns the last report."""
        deadline = time.monotonic() + timeout
        health: dict = {}
        while time.monotonic() < deadline:
            self.alive()
            try:
                health = requests.get(self.base_url + "/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                health = {}
            if health and all(v.get("status") == "healthy" for v in health.values()):
                return health
            time.sleep(1)
        raise self.fail(f"not healthy after {timeout}s: {health}")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """Wait for the supervisor's "Airflow is ready" line (every component healthy and, on Celery, every
        worker answering); returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            found = re.search(r"^.*Airflow is ready.*$", self.text(), re.M)
            if found:
                return found[0]
            time.sleep(1)
        raise self.fail(f"not ready after {timeout}s")

    def token(self) -> str:
        """A JWT for the admin user, whose password the stack generated into AIRFLOW_HOME."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        response = requests.post(self.base_url + "/auth/token", timeout=30,
                                 json={"username": "admin", "password": passwords["admin"]})
        if response.status_code not in (200, 201):
            raise self.fail(f"no token: {response.status_code} {response.text}")
        return response.json()["access_token"]

    @property
    def api(self) -> requests.Session:
        """A session on the REST API as the admin user."""
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["Authorization"] = f"Bearer {self.token()}"
        return self._session

    def get(self, path: str, **params) -> dict:
        response = self.api.get(self.base_url + "/api/v2" + path, params=params or None, timeout=30)
        if response.status_code != 200:
            raise self.fail(f"GET {path}: {response.status_code} {response.text}")
        return response.json()

    def wait_dags(self, dag_ids: set[str], timeout: float = STARTUP_TIMEOUT) -> tuple[dict, dict]:
        """Wait until the dag-processor has parsed ``dag_ids`` (or reported an import error); returns the import
        errors and the DAGs, by id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            errors = self.get("/importErrors")
            dags = {d["dag_id"]: d for d in self.get("/dags")["dags"]}
            if errors["total_entries"] or set(dags) >= dag_ids:
                return errors, dags
            time.sleep(1)
        raise self.fail(f"the DAGs {sorted(dag_ids)} were not parsed within {timeout}s")

    def trigger_night(self, dag_id: str, run_id: str, start: str, end: str) -> None:
        """Trigger one run of ``dag_id`` for the data interval ``start`` → ``end`` (ISO times with offset), as
        the scheduler would create it."""
        response = self.api.post(f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns", timeout=30, json={
            "dag_run_id": run_id, "logical_date": start, "data_interval_start": start, "data_interval_end": end})
        if response.status_code != 200:
            raise self.fail(f"trigger {dag_id}: {response.status_code} {response.text}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        """Wait until the run ends (success or failed); returns the run as the REST API describes it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        raise self.fail(f"run {run_id} not finished within {timeout}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run (mapped ones one by one)."""
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Signal the stack's process group and wait for the supervisor; SIGKILL the group if it hangs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise self.fail(f"the stack did not stop within {timeout}s of {signal.Signals(sig).name}") from None

    def close(self) -> dict[tuple[int, int], list[str]]:
        """Stop the stack (SIGTERM) and every process it left; returns those that had to be killed."""
        self.watch()
        with contextlib.suppress(StackError):
            self.stop(signal.SIGTERM)
        left = wait_gone(self.seen, self.home, self.roots())
        kill_leftovers(left)
        return left


def _proc_table() -> dict[int, dict]:
    """Every live (non-zombie) process: parent, process group, session, start time, environment, command."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(entry.name)] = {"ppid": int(fields[1]), "pgrp": int(fields[2]), "sid": int(fields[3]),
                                      "start": int(fields[19]), "environ": environ, "cmdline": cmdline}
    return table


def processes_of(home: Path, roots: set[int] = frozenset()) -> dict[tuple[int, int], list[str]]:
    """Every live process of a stack, as (pid, start time) → command line: those whose environment names
    this ``AIRFLOW_HOME``, those in the sessions or process groups of ``roots`` (the supervisor and the
    components) and every descendant of these. (The environment alone is not enough: setproctitle, which
    the api-server calls, overwrites it in /proc.)"""
    marker = f"AIRFLOW_HOME={home}".encode()
    table = _proc_table()
    members = {pid for pid, p in table.items()
               if marker in p["environ"] or pid in roots or p["pgrp"] in roots or p["sid"] in roots}
    grew = True
    while grew:
        more = {pid for pid, p in table.items() if p["ppid"] in members} - members
        members |= more
        grew = bool(more)
    return {(pid, table[pid]["start"]): table[pid]["cmdline"] for pid in members}


def parent_of(pid: int) -> int:
    """The parent process id of ``pid``."""
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_gone(seen: set[tuple[int, int]], home: Path, roots: set[int],
              timeout: float = 30) -> dict[tuple[int, int], list[str]]:
    """Processes of the stack still alive after ``timeout`` seconds — any seen while it ran (same pid and
    start time) or found now (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    while True:
        now = processes_of(home, roots)
        table = _proc_table()
        left = {**{k: table[k[0]]["cmdline"] for k in seen if k[0] in table and table[k[0]]["start"] == k[1]}, **now}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def kill_leftovers(left: dict[tuple[int, int], list[str]]) -> None:
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
