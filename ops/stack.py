"""``make airflow``: this project's Airflow, running every night — scheduler, api-server (UI and REST
API), dag-processor and triggerer on the LocalExecutor, under one supervisor (``ops.supervisor``); and
``make airflow-celery``: the same on the CeleryExecutor, with a private Redis broker and Celery workers
(see "The CeleryExecutor" below).

    python -m ops.airflow standalone        # what `make airflow` runs; Ctrl-C or SIGTERM stops it
    python -m ops.airflow celery            # what `make airflow-celery` runs

What it does, in order:

1. brings up what ``make run`` brings up when nothing external is configured (``ops.run.bring_up``):
   the private warehouse (or bootstraps ``WAREHOUSE_URL``), the simulator as the source when
   ``PROCEDURE_API_URL`` is unset, the finance inbox, ``REPORTS_DIR``;
2. builds one environment for every component (``stack_env``, on top of ``ops.airflow.airflow_env``);
3. prepares the metadata database (``airflow db migrate``, once per version) and the dbt manifest Cosmos
   renders the dbt task groups from (``ops.dbt.ensure_manifest``);
4. starts the four components with the venv's own ``airflow`` executable (absolute path; the venv's
   ``bin`` first on ``PATH`` for whatever they spawn), prints the UI address, the admin password and
   where the logs are, and supervises them: when one dies, it says which, with its exit code and the tail
   of its log, stops the others and exits 1.

Environment, on top of ``airflow_env`` (a variable already set wins):

| variable | default |
|---|---|
| ``AIRFLOW__API__HOST`` / ``AIRFLOW__API__PORT`` | ``127.0.0.1`` / ``8080`` (UI and REST API) |
| ``AIRFLOW__API__BASE_URL`` | ``http://<host>:<port>`` |
| ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL`` | ``<base url>/execution/`` (the tasks report there) |
| ``AIRFLOW__API__WORKERS`` | ``1`` (one uvicorn worker is plenty for one operator on 2 cores) |
| ``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT`` / ``…TRIGGER_LOG_SERVER_PORT`` | Airflow's ``8793`` / ``8794`` |
| ``AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION`` | ``False`` (the nightly DAG runs without a click) |
| ``AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES`` | ``1`` (three DAG files) |
| ``AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL`` | ``120`` s (the files change at deployments only) |
| ``AIRFLOW__COSMOS__CACHE_DIR`` | ``<AIRFLOW_HOME>/cosmos-cache`` (dbt's partial-parse state, this stack's own) |
| ``AIRFLOW__API_AUTH__JWT_SECRET``, ``AIRFLOW__API__SECRET_KEY``, ``AIRFLOW__CORE__FERNET_KEY`` | see "Secrets" |
| ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` | see "Metadata database" |

The executor is always the LocalExecutor and the auth manager Airflow 3's SimpleAuthManager: the
configured users (``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS``, default ``admin:admin``) get generated
passwords in ``<AIRFLOW_HOME>/simple_auth_manager_passwords.json.generated`` (mode 0600), written here
before the api-server starts (Airflow's own would be world-readable). Parallelism: ``airflow_env``'s, the
number of CPUs between 2 and 8 — 2 task processes at a time on a 2-core server.

Decisions:

- **Secrets.** Every component must share the JWT secret (the api-server signs the tasks' tokens, the
  scheduler and the tasks present them), the API secret key and the fernet key (connections and variables
  are encrypted with it). Values given by the environment win; otherwise they are generated once into
  ``<AIRFLOW_HOME>/secrets.json`` (mode 0600) — taking those of an existing ``airflow.cfg`` in that home,
  so that what ``make run``'s ``airflow dags test`` encrypted there stays readable.
- **Metadata database.** ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` when given. Otherwise, with the private
  warehouse cluster, a PostgreSQL database of its own there: role and database ``airflow`` (the role's
  generated password in ``secrets.json``; no other role may connect to it), created or re-keyed at each
  start. Four processes write Airflow's metadata for months; SQLite did run two scheduled nights here
  without "database is locked", but it is Airflow's demo backend, and PostgreSQL costs the same to set
  up (``airflow db migrate``: 7 s either way). With an external ``WAREHOUSE_URL`` and no connection
  given, SQLite in ``AIRFLOW_HOME`` with a warning: creating databases on a server this project does not
  manage is not done silently. (``make run``'s ``airflow dags test`` keeps its own SQLite file.)
- **Another shell's Airflow CLI** (``airflow tasks clear``, ``airflow backfill create``) needs the same
  metadata database, folders and keys: they are written to ``<AIRFLOW_HOME>/stack.env`` (mode 0600) at
  each start, for ``set -a; . .local/airflow/stack.env; set +a``.
- **Supervision, not restarts**: a dead component stops the whole stack with exit code 1; run it under
  systemd (``Restart=on-failure``) to have it come back. Component logs: ``<AIRFLOW_HOME>/logs/stack/``.

The CeleryExecutor (``make airflow-celery``, ``main(CELERY_EXECUTOR)``), on this one machine:

- **Its configuration** is ``deploy/airflow-celery.env``, the file the compose stack's Airflow services read
  too (``env_file``): one place for the executor, prefetch, acknowledgement, visibility timeout and heartbeat
  settings. What depends on the machine is computed here: the broker's URL, the result backend (``db+`` and
  the metadata database's URL: Celery keeps its task results beside Airflow's metadata) and the sizing.
- **The broker**: ``AIRFLOW__CELERY__BROKER_URL`` when given; otherwise a private Redis server
  (``ops.broker``: 127.0.0.1:``REDIS_PORT``, a password from the environment or generated, never on a command
  line), the first supervised component, waited for (``PING``) before Airflow's components start.
- **The workers**: ``CELERY_WORKERS`` (2) ``airflow celery worker`` processes, ``worker1``, ``worker2``…, each
  with its own Celery node name (``-H worker1@%h``), pid file (``<AIRFLOW_HOME>/celery-worker1.pid``) and log
  server port (``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT``, 8793, then 8794…; the triggerer's moves after
  them unless set), and its own host name in its task instances (``worker1.<host>``:
  ``ops.celery_hostname``), so that the UI, the REST API and the metadata database tell which worker ran what.
- **Sizing**: ``AIRFLOW__CORE__PARALLELISM`` as for the LocalExecutor (the number of CPUs, 2 to 8), shared out
  among the workers: ``AIRFLOW__CELERY__WORKER_CONCURRENCY`` defaults to parallelism ÷ workers (at least 1) —
  on 2 cores, one task at a time per worker, as many task slots as the LocalExecutor's.
- The metadata database must be PostgreSQL (Airflow refuses the CeleryExecutor on SQLite): with an external
  ``WAREHOUSE_URL``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` must be given.
- Ready means: every component healthy on the health endpoint and every worker answering a Celery ping.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
import shlex
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from ops.airflow import PROJECT_ROOT, airflow_env, ensure_db
from ops.broker import BrokerUnavailable, RedisBroker
from ops.supervisor import Component, Supervisor
from pipeline.settings import LOCAL_TZ, NIGHTLY_DAG_ID, RUN_HOUR, CelerySettings, RunSettings

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
LOCAL_EXECUTOR = "LocalExecutor"
CELERY_EXECUTOR = "CeleryExecutor"
COMMANDS = {LOCAL_EXECUTOR: "make airflow", CELERY_EXECUTOR: "make airflow-celery"}
# The CeleryExecutor's configuration, shared with the compose stack (its Airflow services' env_file).
CELERY_CONFIG_FILE = PROJECT_ROOT / "deploy" / "airflow-celery.env"
HOSTNAME_CALLABLE = "ops.celery_hostname.hostname"
BROKER_COMPONENT = "redis"
DEFAULT_WORKER_LOG_PORT = 8793  # Airflow's default [logging] worker_log_server_port
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
SECRETS_FILE = "secrets.json"
CLI_ENV_FILE = "stack.env"
METADATA_DB = "airflow"  # role and database in the private warehouse cluster
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
HEALTH_PATH = "/api/v2/monitor/health"
# The shared secrets: environment variable → (airflow.cfg section, option), and how to make a new one.
SECRET_VARIABLES = {
    "AIRFLOW__API_AUTH__JWT_SECRET": ("api_auth", "jwt_secret"),
    "AIRFLOW__API__SECRET_KEY": ("api", "secret_key"),
    "AIRFLOW__CORE__FERNET_KEY": ("core", "fernet_key"),
}


def airflow_executable() -> Path:
    """The ``airflow`` of the running interpreter's environment (``.venv/bin/airflow``), as an absolute path
    — never looked up on ``PATH``, which may not hold the venv."""
    candidate = Path(sys.executable).absolute().parent / "airflow"
    if not candidate.exists():
        raise FileNotFoundError(f"no airflow executable beside {sys.executable}: run `make venv`")
    return candidate


def _new_secret(variable: str) -> str:
    if variable == "AIRFLOW__CORE__FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()  # the format cryptography's Fernet expects
    return secrets.token_urlsafe(32)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}


def stored_secret(home: Path, key: str) -> str:
    """A generated secret of this stack (e.g. the metadata database role's password), kept in
    ``<home>/secrets.json`` (mode 0600): made once, then the same at every start."""
    path = home / SECRETS_FILE
    stored = _read_json(path)
    if not stored.get(key):
        stored[key] = secrets.token_urlsafe(24)
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return stored[key]


def ensure_secrets(home: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The shared secrets, as environment variables: the environment's, else ``<home>/secrets.json``'s,
    else an existing ``airflow.cfg``'s, else new ones (then stored in ``secrets.json``, mode 0600)."""
    path = home / SECRETS_FILE
    stored = _read_json(path)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(home / "airflow.cfg")
    changed = False
    for variable, (section, option) in SECRET_VARIABLES.items():
        if env.get(variable) or stored.get(variable):
            continue
        from_cfg = cfg.get(section, option, fallback="")
        stored[variable] = from_cfg if from_cfg and "{" not in from_cfg else _new_secret(variable)
        changed = True
    if changed:
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    elif path.exists():
        path.chmod(0o600)
    return {v: env.get(v) or stored[v] for v in SECRET_VARIABLES}


def ensure_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """A password for every SimpleAuthManager user, in its passwords file (mode 0600); returns them."""
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords = _read_json(path)
    users = [u.split(":")[0].strip() for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if u.strip()]
    missing = [u for u in users if u not in passwords]
    for user in missing:
        passwords[user] = secrets.token_urlsafe(12)
    if missing or not path.exists():
        _write_private(path, json.dumps(passwords) + "\n")
    else:
        path.chmod(0o600)
    return passwords


def celery_config(path: Path = CELERY_CONFIG_FILE) -> dict[str, str]:
    """The CeleryExecutor's configuration both Celery stacks share: the ``KEY=value`` lines of
    ``deploy/airflow-celery.env`` (comments and blank lines skipped)."""
    config = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path}:{number}: not a KEY=value line: {line!r}")
        config[key] = value
    return config


def stack_env(base: Mapping[str, str] | None = None, executor: str = LOCAL_EXECUTOR) -> dict[str, str]:
    """The one environment of every component: ``airflow_env(base=base)`` plus the stack's settings (with the
    CeleryExecutor: ``celery_env``'s), the shared secrets and the venv's ``bin`` first on ``PATH``."""
    given = (os.environ if base is None else base).get("AIRFLOW__CORE__EXECUTOR")
    env = airflow_env(base=base)
    home = RunSettings.from_env(env).airflow_home
    if given and given != executor:
        print(f"{COMMANDS[executor]}: AIRFLOW__CORE__EXECUTOR={given} ignored, this stack runs the {executor} "
              f"(for the {given}: {COMMANDS.get(given, 'the compose stack')})", file=sys.stderr)
    if executor == CELERY_EXECUTOR:
        env.update(celery_env(env))
    env["AIRFLOW__CORE__EXECUTOR"] = executor
    env["AIRFLOW__CORE__AUTH_MANAGER"] = SIMPLE_AUTH_MANAGER
    defaults = {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        # Cosmos keeps dbt's partial-parse state per DAG and task group; its default folder, /tmp/cosmos, is
        # shared by every Airflow on the machine (a `make run`, a test), whose other vars and profiles make
        # each dbt task here parse the whole project again (~20 s instead of ~6 s on 2 cores).
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos-cache"),
    }
    for key, value in defaults.items():
        if not env.get(key):
            env[key] = value
    if not env.get("AIRFLOW__API__BASE_URL"):
        env["AIRFLOW__API__BASE_URL"] = f"http://{_reachable_host(env['AIRFLOW__API__HOST'])}:{env['AIRFLOW__API__PORT']}"
    if not env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = env["AIRFLOW__API__BASE_URL"].rstrip("/") + "/execution/"
    env.update(ensure_secrets(home, env))
    venv_bin = str(airflow_executable().parent)
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *paths])
    return env


def celery_env(env: Mapping[str, str]) -> dict[str, str]:
    """What the CeleryExecutor adds to ``env`` (a variable ``env`` already sets wins): the shared configuration
    (``celery_config``), the broker (``AIRFLOW__CELERY__BROKER_URL``, else the private Redis), each worker's
    share of the parallelism, and the log servers' ports (the workers' from ``worker_log_server_port`` on, the
    triggerer's after them)."""
    settings = CelerySettings.from_env(env)
    out = {k: v for k, v in celery_config().items() if not env.get(k)}
    if not env.get("AIRFLOW__CELERY__BROKER_URL"):
        out["AIRFLOW__CELERY__BROKER_URL"] = RedisBroker(settings).url()
    if not env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY"):
        out["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(max(1, int(env["AIRFLOW__CORE__PARALLELISM"])
                                                             // settings.workers))
    first = int(env.get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT") or DEFAULT_WORKER_LOG_PORT)
    out["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(first)
    if not env.get("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"):
        out["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(first + settings.workers)
    return out


def private_broker(env: Mapping[str, str]) -> RedisBroker | None:
    """The private Redis broker when the stack's broker URL is its, else None (a broker given by the
    environment, which this stack neither starts nor stops)."""
    broker = RedisBroker(CelerySettings.from_env(env))
    return broker if env.get("AIRFLOW__CELERY__BROKER_URL") == broker.url() else None


def worker_log_ports(env: Mapping[str, str]) -> dict[str, int]:
    """Each worker's log server port, by worker name (``worker1``: ``worker_log_server_port``, then +1…)."""
    first = int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"])
    return {f"worker{i}": first + i - 1 for i in range(1, CelerySettings.from_env(env).workers + 1)}


def listening_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The TCP ports the stack's components listen on, by what listens: every one must be free, and they must
    differ (a worker's log server on the triggerer's port would fail at start)."""
    ports = {"api-server": int(env["AIRFLOW__API__PORT"])}
    if env["AIRFLOW__CORE__EXECUTOR"] == CELERY_EXECUTOR:
        broker = private_broker(env)
        if broker is not None:
            ports[BROKER_COMPONENT] = broker.settings.redis_port
        ports.update({f"{name} log server": port for name, port in worker_log_ports(env).items()})
    else:
        ports["scheduler log server"] = int(env.get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")
                                            or DEFAULT_WORKER_LOG_PORT)
    ports["triggerer log server"] = int(env.get("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT") or 8794)
    return ports


def result_backend(env: Mapping[str, str]) -> str:
    """Celery's result backend: ``AIRFLOW__CELERY__RESULT_BACKEND``, else the metadata database (``db+`` its
    URL). Airflow refuses the CeleryExecutor on SQLite: a ValueError says what to set."""
    if env.get("AIRFLOW__CELERY__RESULT_BACKEND"):
        return env["AIRFLOW__CELERY__RESULT_BACKEND"]
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if not url.startswith("postgresql"):
        raise ValueError(f"the CeleryExecutor needs a PostgreSQL metadata database, not {url.split(':', 1)[0]}: "
                         "with an external WAREHOUSE_URL set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    return f"db+{url}"


def metadata_database(pipeline_env: Mapping[str, str], home: Path) -> str:
    """The metadata database when none is configured: ``airflow`` in the private warehouse cluster (role and
    database created if missing, the role's password set from ``secrets.json``), else SQLite in ``home``."""
    from psycopg import sql

    from warehouse.bootstrap import connect
    from warehouse.config import Settings, resolve_url

    settings = Settings.from_env(pipeline_env)
    if settings.external:
        print("make airflow: WAREHOUSE_URL is an external server and AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is unset: "
              "Airflow's metadata goes to SQLite; give it a PostgreSQL database for a long-running server",
              file=sys.stderr)
        return f"sqlite:///{home / 'airflow.db'}"
    password = stored_secret(home, "AIRFLOW_METADATA_DB_PASSWORD")
    with connect(resolve_url("admin", settings)) as conn:
        role = sql.Identifier(METADATA_DB)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [METADATA_DB]).fetchone()
        conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
            sql.SQL("ALTER" if exists else "CREATE"), role, sql.Literal(password)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [METADATA_DB]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
        # the pipeline's and the BI tools' roles have no business in Airflow's metadata
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(role))
    return (f"postgresql+psycopg2://{METADATA_DB}:{quote(password, safe='')}@{settings.host}:{settings.port}/"
            f"{METADATA_DB}")


def write_cli_env(env: Mapping[str, str]) -> Path:
    """``<AIRFLOW_HOME>/stack.env`` (mode 0600): what another shell's ``airflow`` command needs to act on
    this stack (metadata database, folders, keys), as shell assignments."""
    names = ["AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
             "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__EXECUTOR",
             "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND", "PYTHONPATH", *SECRET_VARIABLES]
    path = RunSettings.from_env(env).airflow_home / CLI_ENV_FILE
    _write_private(path, "".join(f"{name}={shlex.quote(env[name])}\n" for name in names if env.get(name)))
    return path


def _reachable_host(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def components(env: Mapping[str, str]) -> list[Component]:
    """The stack's components, each logging to ``<AIRFLOW_HOME>/logs/stack/<name>.log``: Airflow's four, run by
    the venv's ``airflow``; with the CeleryExecutor, the private broker first (unless another is configured)
    and the workers last."""
    airflow = str(airflow_executable())
    logs = log_dir(env)
    airflow_components = [Component(name, [airflow, name], logs / f"{name}.log") for name in COMPONENTS]
    if env["AIRFLOW__CORE__EXECUTOR"] != CELERY_EXECUTOR:
        return airflow_components
    broker = private_broker(env)
    first = [] if broker is None else [
        Component(BROKER_COMPONENT, broker.command(), logs / f"{BROKER_COMPONENT}.log", ready=broker.ping)]
    home = RunSettings.from_env(env).airflow_home
    workers = [Component(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h",
                                "--pid", str(home / f"celery-{name}.pid")], logs / f"{name}.log",
                         env={"CELERY_WORKER_NAME": name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
                              "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port)})
               for name, port in worker_log_ports(env).items()]
    return [*first, *airflow_components, *workers]


def log_dir(env: Mapping[str, str]) -> Path:
    """Where the components' own output goes."""
    return RunSettings.from_env(env).airflow_home / "logs" / "stack"


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (e.g. another Airflow's api-server)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def answering_workers(broker_url: str) -> set[str]:
    """The Celery node names (``worker1@host``…) answering a ping through the broker within a second."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    app = Celery(broker=broker_url, set_as_current=False)
    try:
        return {name for reply in app.control.ping(timeout=1.0) for name in reply}
    except (OperationalError, OSError):
        return set()
    finally:
        app.close()


class HealthWatch:
    """Polls the api-server's health endpoint until every component reports healthy — and, given ``workers``
    (a function returning the Celery node names that answer) and their ``expected`` names, until each of them
    answers — then says so once."""

    def __init__(self, base_url: str, say, every: float = 2.0, workers=None, expected: tuple[str, ...] = ()):
        self.url = base_url.rstrip("/") + HEALTH_PATH
        self.say = say
        self.every = every
        self.workers = workers
        self.expected = expected
        self.ready = False
        self._next = 0.0

    def __call__(self) -> None:
        if self.ready or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        try:
            health = requests.get(self.url, timeout=2).json()
        except (requests.RequestException, ValueError):
            return
        if not all(isinstance(v, dict) and v.get("status") == "healthy" for v in health.values()):
            return
        answering = ""
        if self.workers is not None:
            nodes = self.workers()
            if not set(self.expected) <= {node.split("@")[0] for node in nodes}:
                return
            answering = f"; Celery workers answering: {', '.join(sorted(nodes))}"
        self.ready = True
        self.say(f"Airflow is ready: every component reports healthy ({self.url}){answering}")


def check_ports(env: Mapping[str, str]) -> str | None:
    """Why the stack cannot listen where ``env`` says (two components on one port, a port already taken),
    else None."""
    ports = listening_ports(env)
    by_port: dict[int, list[str]] = {}
    for what, port in ports.items():
        by_port.setdefault(port, []).append(what)
    shared = {port: whats for port, whats in by_port.items() if len(whats) > 1}
    if shared:
        return "; ".join(f"{' and '.join(whats)} would both listen on port {port}" for port, whats in shared.items())
    hosts = {"api-server": env["AIRFLOW__API__HOST"], BROKER_COMPONENT: "127.0.0.1"}
    for what, port in ports.items():
        if port_taken(hosts.get(what, "127.0.0.1"), port):
            return f"port {port} ({what}) is already in use (another Airflow?): stop it or choose another port"
    return None


def main(executor: str = LOCAL_EXECUTOR) -> int:
    """Bring everything up and supervise the components of the stack on ``executor`` (``LOCAL_EXECUTOR`` for
    ``make airflow``, ``CELERY_EXECUTOR`` for ``make airflow-celery``); returns the exit code."""
    from ops.dbt import ensure_manifest
    from ops.run import bring_up

    command = COMMANDS[executor]
    try:
        probe = stack_env(executor=executor)
        if private_broker(probe) is not None:
            private_broker(probe).binary()
    except BrokerUnavailable as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    problem = check_ports(probe)
    if problem:
        print(f"{command}: {problem} (AIRFLOW__API__PORT, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT, "
              "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT, REDIS_PORT)", file=sys.stderr)
        return 1
    pipeline_env, warehouse, simulated = bring_up()
    print(warehouse)
    env = stack_env(pipeline_env, executor)
    run = RunSettings.from_env(env)
    home = run.airflow_home
    if not pipeline_env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata_database(pipeline_env, home)
    celery_lines: list[str] = []
    watch: dict = {}
    if executor == CELERY_EXECUTOR:
        try:
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = result_backend(env)
        except ValueError as exc:
            print(f"{command}: {exc}", file=sys.stderr)
            return 1
        broker = private_broker(env)
        workers = worker_log_ports(env)
        celery_lines = [
            f"broker: {mask_url(env['AIRFLOW__CELERY__BROKER_URL'])}" + (
                f" (private Redis, password in {broker.data_dir / 'password'} unless REDIS_PASSWORD is set)"
                if broker else " (given by AIRFLOW__CELERY__BROKER_URL)"),
            f"Celery workers: {', '.join(workers)}, {env['AIRFLOW__CELERY__WORKER_CONCURRENCY']} task(s) at a time "
            f"each, {env['AIRFLOW__CORE__PARALLELISM']} at once in all; configuration: "
            f"{CELERY_CONFIG_FILE.relative_to(PROJECT_ROOT)}",
        ]
        watch = {"workers": lambda: answering_workers(env["AIRFLOW__CELERY__BROKER_URL"]), "expected": tuple(workers)}
    ensure_db(env)
    cli_env = write_cli_env(env)
    ensure_manifest(run.writer_url)
    passwords = ensure_passwords(env)
    user = next(iter(passwords)) if "admin" not in passwords else "admin"
    base_url = env["AIRFLOW__API__BASE_URL"]
    source = (run.api_url or "") + (" (the simulator)" if simulated else "")
    parts = components(env)
    broker = private_broker(env) if executor == CELERY_EXECUTOR else None
    if broker is not None:
        try:
            broker.prepare()
        except BrokerUnavailable as exc:
            print(f"{command}: {exc}", file=sys.stderr)
            return 1
    print("\n".join([
        "",
        f"== Airflow ({command}: the {executor}) ==",
        f"UI and REST API: {base_url}   user {user}, password {passwords[user]}",
        f"  (passwords kept in {env['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE']}, mode 0600)",
        f"metadata database: {mask_url(env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}",
        *celery_lines,
        f"Airflow CLI in another shell: set -a; . {cli_env}; set +a",
        f"procedure-system API: {source}",
        f"component logs: {log_dir(env)}/<component>.log; task logs: {home / 'logs'}/dag_id=…",
        f"{NIGHTLY_DAG_ID} runs at {RUN_HOUR:%H:%M} {LOCAL_TZ}; stop with Ctrl-C or `kill {os.getpid()}` (SIGTERM).",
        "If a component dies, everything stops and this exits 1.",
        "",
    ]), flush=True)
    supervisor = Supervisor(parts, env, cwd=PROJECT_ROOT)
    return supervisor.run(on_tick=HealthWatch(base_url, supervisor.say, **watch))
