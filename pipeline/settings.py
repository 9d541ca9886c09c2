"""The configuration of the whole project, in one place: every environment variable the READMEs document is
declared here (``VARIABLES``: its README section, its default and its meaning) and read here, and nowhere
else. Each part of the project takes a typed settings object whose fields name their variable once
(``_setting``: the default is the declared one):

| object | for | variables |
|---|---|---|
| ``Settings`` | the pipeline's stages (ingestion, data quality, dbt, publication) | sources, pipeline |
| ``AlertSettings`` | the alerts (``pipeline.alerts``), also when the rest is broken | ``ALERT_*`` |
| ``PublicationTargets`` | dbt ``--vars``: target, ranking minimum, look-back | ``PUBLICATION_*``, ``DBT_…`` |
| ``DagSettings`` | the DAG files, when they are parsed | retries, timeouts, dbt grain and manifest |
| ``WarehouseSettings`` | the warehouse (``warehouse.config.Settings`` adds its passwords and URLs) | warehouse |
| ``RunSettings`` | the commands people type (``ops/``), before anything is resolved | run date, Airflow home, … |
| ``SimulatorSettings`` | the simulator: scenario (with ``SIM_SCENARIO``'s file), server, faults | simulator |
| ``CelerySettings`` | ``make airflow-celery``: its workers and its Redis broker | Celery |
| ``FrontDoorSettings``, ``SupersetSettings`` | ``make serve``; ``python -m bi`` (Superset) | front door, Superset |

Code that runs inside Superset's own Python (``bi/superset_setup.py``) does not import this module: it gets
its values from ``python -m bi``, which read them here, or from the compose file (docs/architecture.md).

Airflow's own configuration (``AIRFLOW__<SECTION>__<KEY>``) is Airflow's: the project passes it through and
sets defaults for it in ``ops.airflow.airflow_env``; it is not declared here. Only the stdlib is imported,
so DAG files may import this module at parse time, and Superset's image carries it for ``python -m bi``.

``tests/test_settings.py`` checks the READMEs' variable tables against ``VARIABLES`` and that no other
module reads a documented variable from the environment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".local"  # every generated state: warehouse, simulator, Airflow, dbt, GX
LOCAL_TZ = "Asia/Ho_Chi_Minh"  # the API's timestamps are local time (UTC+7, no DST)
RUN_HOUR = time(1, 0)  # the nightly data interval ends at 01:00 local time
NIGHTLY_DAG_ID = "cchc_nightly"
WEEKLY_DAG_ID = "cchc_weekly_integrity"
MONTHLY_DAG_ID = "cchc_monthly_publication"
# A night run by hand (make run, python -m ops.airflow test-dag) should not sit out five-minute retries.
INTERACTIVE_RETRY_DELAY_SECONDS = "10"
MIN_APPLICANT_HASH_KEY_LENGTH = 16  # shorter HMAC keys are guessable; the generated one has 32 bytes


class SettingsError(ValueError):
    """A documented variable holds a value the project cannot use; the message names the variable."""


@dataclass(frozen=True)
class Variable:
    """A documented environment variable: its README section, its default as the README says it, and
    what it does (one line)."""

    name: str
    section: str
    default: str | None
    doc: str

    def matches(self, name: str) -> bool:
        if "<" in self.name:  # a family, e.g. SIM_DEFECT_<RULE>
            return name.startswith(self.name.split("<", 1)[0])
        return name == self.name


def _vars(section: str, *entries: tuple[str, str | None, str]) -> list[Variable]:
    return [Variable(name, section, default, doc) for name, default, doc in entries]


VARIABLES: dict[str, Variable] = {v.name: v for v in [
    *_vars(
        "Warehouse",
        ("WAREHOUSE_URL", None, "an external warehouse (postgresql:// URL); unset: the private cluster"),
        ("WAREHOUSE_PORT", "55432", "TCP port of the private cluster (127.0.0.1 only)"),
        ("WAREHOUSE_DATA_DIR", ".local/warehouse/pgdata", "data directory of the private cluster"),
        ("WAREHOUSE_CREDENTIALS_FILE", None, "generated passwords (0600); unset: credentials.json beside the data"),
        ("WAREHOUSE_DB", "warehouse", "database name"),
        ("WAREHOUSE_ADMIN_PASSWORD", None, "password of the private cluster's superuser (generated)"),
        ("WAREHOUSE_OS_USER", "pgwarehouse", "system user running PostgreSQL when invoked as root"),
        ("WAREHOUSE_PG_BIN", None, "folder of initdb, pg_ctl, postgres (PATH, else the newest installed)"),
        ("WAREHOUSE_START_TIMEOUT", "60", "seconds to wait for the server to start or stop"),
        ("WAREHOUSE_WRITER_ROLE", "pipeline", "the pipeline's role, owner of the six schemas"),
        ("WAREHOUSE_WRITER_PASSWORD", None, "its password (generated)"),
        ("WAREHOUSE_WRITER_URL", None, "the writer's full URL; unset: derived from the settings above"),
        ("BI_READER_ROLE", "bi_reader", "read-only role for BI tools"),
        ("BI_READER_PASSWORD", None, "its password (generated)"),
        ("BI_READER_STATEMENT_TIMEOUT", "60s", "statement_timeout of the read-only role"),
        ("BI_READER_IDLE_TIMEOUT", "5min", "idle_in_transaction_session_timeout of the read-only role"),
        ("BI_READER_CONNECTION_LIMIT", "20", "connections the read-only role may hold"),
        ("APPLICANT_HASH_KEY", None, "key of the HMAC behind applicant_key (generated once, kept)"),
    ),
    *_vars(
        "Sources",
        ("PROCEDURE_API_URL", None, "base URL of the procedure-system API; unset: the simulator"),
        ("PROCEDURE_API_TOKEN", None, "its bearer token"),
        ("FINANCE_INBOX", ".local/finance-inbox", "folder of the giai-ngan-*.xlsx workbooks"),
        ("FINANCE_MAX_FILE_BYTES", str(50 * 2**20), "a larger workbook is rejected unread"),
        ("FINANCE_MAX_UNCOMPRESSED_BYTES", str(200 * 2**20), "a workbook expanding beyond this is rejected"),
    ),
    *_vars(
        "Pipeline",
        ("RUN_DATE", None, "the night make run runs (default: the simulator's clock, else today)"),
        ("HISTORY_START", "2023-01-01", "first day of the first load"),
        ("REPORTS_DIR", "reports", "reports, alerts.log, digests, Data Docs, dbt docs"),
        ("GX_PROJECT_DIR", ".local/gx", "Great Expectations' project folder"),
        ("PROCEDURE_API_PAGE_SIZE", "1000", "limit of each API page"),
        ("PROCEDURE_API_CONNECT_TIMEOUT", "10", "seconds"),
        ("PROCEDURE_API_READ_TIMEOUT", "120", "seconds"),
        ("PROCEDURE_API_MAX_RETRY_SECONDS", "300", "a page still failing after this long is given up"),
        ("PROCEDURE_API_PAGE_DEADLINE_SECONDS", "180", "one attempt at a page, at most"),
        ("PROCEDURE_API_MAX_PAGE_BYTES", str(64 * 2**20), "a larger page body fails its window at once"),
        ("INGEST_LOOKBACK_MINUTES", "180", "each night re-reads this much before the watermark"),
        ("INGEST_WORKERS", "2", "dossier windows loaded in parallel"),
        ("INGEST_MAX_WINDOW_RECORDS", "200000", "a window holding more records is halved"),
        ("INGEST_MAX_KEY_BYTES", "1000", "a record whose key is longer is quarantined"),
        ("INGEST_PARTITION", "none", "none, or district: one mapped pull per unit under the province"),
        ("INGEST_PULL_CONCURRENCY", "4", "mapped pulls running at once"),
        ("REFERENCE_MAX_MISSING_SHARE", "0.2", "a reference list missing more of its records is refused"),
        ("REFERENCE_ACCEPT_CHANGES", None, "lists whose large change is deliberate"),
        ("DQ_BAT03_SHARE", "0.05", "a required field absent from this share of a batch stops the run"),
        ("DQ_FINDINGS_KEEP_DAYS", "35", "per-run findings older than this are pruned"),
        ("PUBLICATION_ON_TIME_TARGET", "0.95", "the on-time target (metrics.md: at least 95%)"),
        ("PUBLICATION_MIN_RESOLVED", "10", "units with fewer resolved dossiers in a month are not ranked"),
        ("DBT_INCREMENTAL_LOOKBACK_MINUTES", "15", "an incremental model re-reads dossiers changed this long "
                                                   "before its last build"),
        ("DBT_FULL_BUILD_WORK_MEM", "256MB", "work_mem of a first or full build's joins and groupings of whole "
                                            "per-dossier tables (dbt var full_build_work_mem)"),
        ("PIPELINE_TASK_RETRIES", "2", "retries of every task"),
        ("PIPELINE_RETRY_DELAY_SECONDS", "300", "delay between them (10 under make run and test-dag)"),
        ("PIPELINE_TASK_TIMEOUT_MINUTES", "120", "execution_timeout of every task"),
        ("PIPELINE_RUN_TIMEOUT_MINUTES", "360", "dagrun_timeout of every DAG"),
        ("PIPELINE_LOCK_WAIT_SECONDS", "900", "a run waits this long for another run's lease"),
        ("PIPELINE_LOCK_TTL_SECONDS", "21600", "a lease not renewed for this long is free"),
        ("DBT_TASK_GRAIN", "layer", "layer: one dbt build per group; node: one Airflow task per dbt node"),
        ("ALERT_SLACK_CONN_ID", "cchc_slack", "Airflow connection (Slack incoming webhook) for alerts"),
        ("ALERT_SMTP_CONN_ID", "cchc_smtp", "Airflow connection (SMTP) for alerts"),
        ("ALERT_EMAIL_FROM", None, "sender of the alert e-mails"),
        ("ALERT_EMAIL_TO", None, "recipients of the alert e-mails, comma-separated"),
        ("DBT_MANIFEST_PATH", ".local/dbt/manifest/manifest.json", "the manifest Cosmos renders from"),
        ("DBT_EXECUTABLE", None, "dbt binary (default: the .venv's)"),
        ("AIRFLOW_HOME", ".local/airflow", "Airflow's state"),
        ("AIRFLOW_CONN_PROCEDURE_API", None, "an Airflow connection overriding the two API variables"),
    ),
    *_vars(
        "Celery",
        ("CELERY_WORKERS", "2", "Celery workers make airflow-celery starts on this machine"),
        ("CELERY_WORKER_NAME", None, "a worker's name in its task instances' hostname (make airflow-celery sets it)"),
        ("REDIS_PORT", "56379", "port of the private Redis broker (127.0.0.1 only)"),
        ("REDIS_DATA_DIR", ".local/redis", "its folder: configuration and generated password"),
        ("REDIS_PASSWORD", None, "its password (generated)"),
        ("REDIS_SERVER", None, "the redis-server binary (default: PATH, else /usr/bin/redis-server)"),
        ("REDIS_OS_USER", "redis", "system user running Redis when invoked as root"),
    ),
    *_vars(
        "Front door",
        ("SERVE_PORT", "8090", "port of make serve (127.0.0.1 only)"),
    ),
    *_vars(
        "Superset",
        ("SUPERSET_PORT", "8088", "port of make superset (127.0.0.1 only)"),
        ("SUPERSET_ADMIN_USERNAME", None, "the local admin (unset: the one kept, admin at first)"),
        ("SUPERSET_ADMIN_PASSWORD", None, "its password (unset: generated once and kept)"),
        ("SUPERSET_URL", None, "another Superset for python -m bi import and export"),
        ("BI_READER_URL", None, "the warehouse as bi_reader, as that Superset reaches it"),
        ("SUPERSET_VENV", None, "where Superset's own environment is built"),
    ),
    *_vars(
        "Simulator",
        ("SIM_SEED", "2023", "scenario seed"),
        ("SIM_START", "2023-01-01", "first submission day"),
        ("SIM_END", "2023-09-30", "last submission day"),
        ("SIM_SCALE", "1", "volume"),
        ("SIM_CLOCK", None, "the scenario's now (default: 01:00 the day after SIM_END)"),
        ("SIM_DEFECT_<RULE>", None, "share of dossiers breaking a data-quality rule"),
        ("SIM_SCENARIO", None, "a JSON file with any of the scenario fields"),
        ("SIM_HOST", "127.0.0.1", "where make simulator listens"),
        ("SIM_PORT", "8800", "its port"),
        ("SIM_TOKEN", None, "the simulator's token (generated)"),
        ("SIM_STATE_DIR", ".local/simulator", "pid, log and simulator.env"),
        ("SIM_START_TIMEOUT", "600", "seconds make simulator waits for the scenario"),
        ("SIM_RENDER_CACHE", "0", "1: pre-render every record"),
        ("SIM_FAULTS", None, "all:<rate> turns every fault on"),
        ("SIM_FAULT_5XX", "0", "rate of 5xx answers"),
        ("SIM_FAULT_429", "0", "rate of 429 answers"),
        ("SIM_FAULT_SLOW", "0", "rate of slow answers"),
        ("SIM_FAULT_TRUNCATE", "0", "rate of truncated bodies"),
        ("SIM_FAULT_DUPLICATE", "0", "rate of pages starting a few records back"),
        ("SIM_FAULT_EXTRA_FIELDS", "0", "share of records with an unknown field"),
        ("SIM_FAULT_MALFORMED", "0", "share of records replaced by a corrupt one"),
        ("SIM_FAULT_OMIT_FIELDS", None, "fields dropped from non-deleted dossiers"),
        ("SIM_FAULT_OMIT_SHARE", "1", "share of them"),
        ("SIM_FAULT_DROP", "0", "share of records left out while counted"),
        ("SIM_FAULT_RETRY_AFTER", "1", "Retry-After of the 429 answers"),
        ("SIM_FAULT_SLOW_SECONDS", "2", "delay of the slow answers"),
        ("SIM_FAULT_SEED", "7", "seed of the faults"),
    ),
]}


def variable(name: str) -> Variable:
    """The declaration of ``name``; KeyError for a variable the README does not document."""
    found = VARIABLES.get(name) or next((v for v in VARIABLES.values() if v.matches(name)), None)
    if found is None:
        raise KeyError(f"{name} is not a documented variable (pipeline/settings.py VARIABLES)")
    return found


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The raw value of the documented variable ``name`` in ``env`` (default: the process environment); an
    empty value counts as unset, as ``FOO= make run`` users expect. For this module and the tests: the rest
    of the project takes typed fields."""
    variable(name)
    value = (os.environ if env is None else env).get(name)
    return value if value not in (None, "") else None


def _family(prefix: str, env: Mapping[str, str] | None) -> dict[str, str]:
    """The documented variables of a family set in ``env`` (e.g. ``SIM_DEFECT_``), by name."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith(prefix) and v != "" and variable(k)}


# ------------------------------------------------------------------------------------------ parsers

def project_path(value: str | Path) -> Path:
    """A path from a variable: relative ones are relative to the project folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _resolved_path(value: str) -> Path:
    return project_path(value).resolve()


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    bounds = f"{low}..{high}" if high is not None else f">= {low}"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            raise ValueError(f"not an integer in {bounds}")
        return number

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be {' or '.join(repr(a) for a in allowed)}")
        return value

    return parse


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("must be a fraction in (0, 1]")
    return number


def _seconds(value: str) -> timedelta:
    return timedelta(seconds=float(value))


def _minutes(value: str) -> timedelta:
    return timedelta(minutes=float(value))


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str) -> bool:
    return value != "0"


def _all_rate(value: str) -> float:
    if not value.startswith("all:"):
        raise ValueError("write all:<rate>")
    return float(value.split(":", 1)[1])


# PostgreSQL's time units for integer settings (https://www.postgresql.org/docs/current/config-setting.html).
_DURATION = re.compile(r"(?P<amount>\d+)\s*(?P<unit>us|ms|s|min|h|d)?")


def _pg_duration(value: str) -> str:
    """A PostgreSQL duration such as ``60s``; a unit is required (a bare number would mean milliseconds to
    PostgreSQL, a surprise for a setting documented in seconds) except for ``0``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or (match["unit"] is None and int(match["amount"]) != 0):
        raise ValueError("not a duration: write a number with a unit (ms, s, min, h, d), e.g. 60s or 5min, "
                         "or 0 for no limit")
    if int(match["amount"]) > 2_147_483_647:
        raise ValueError("too large")
    return f"{int(match['amount'])}{match['unit'] or ''}"


_MEMORY = re.compile(r"(?P<amount>\d+)\s*(?P<unit>kB|MB|GB|TB)")


def _pg_memory(value: str) -> str:
    """A PostgreSQL memory size such as ``256MB``; the unit is required (a bare number would mean kilobytes)."""
    match = _MEMORY.fullmatch(value.strip())
    if match is None or int(match["amount"]) == 0:
        raise ValueError("not a memory size: write a number with a unit (kB, MB, GB, TB), e.g. 256MB")
    return f"{int(match['amount'])}{match['unit']}"


def _postgresql_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return value


def _hash_key(value: str) -> str:
    if len(value.encode()) < MIN_APPLICANT_HASH_KEY_LENGTH:
        raise ValueError(f"must hold at least {MIN_APPLICANT_HASH_KEY_LENGTH} characters (e.g. `openssl rand -hex "
                         "32`), or be unset to keep the generated key")
    return value


def _redis_password(value: str) -> str:
    if any(ord(c) < 32 or c.isspace() for c in value):
        raise ValueError("must not hold spaces or control characters")
    return value


def reference_sources(value: str) -> frozenset[str]:
    """The reference lists named by ``REFERENCE_ACCEPT_CHANGES`` (``all`` for the three)."""
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    known = {"units", "procedures", "delegations"}
    if "all" in names:
        return frozenset(known)
    unknown = names - known
    if unknown:
        raise ValueError(f"unknown list(s) {', '.join(sorted(unknown))} (units, procedures, delegations or all)")
    return frozenset(names)


# ------------------------------------------------------------------------------------------ fields

def _setting(name: str, parse: Callable[[str], Any] = str, *, unset: Any = None, secret: bool = False) -> Any:
    """A settings field read from the documented variable ``name`` and parsed by ``parse``. Its default is
    the declared one, parsed (``unset`` where the README declares none); a ``secret`` stays out of repr()
    and of error messages."""
    declared = variable(name).default
    return field(default=unset if declared is None else parse(declared), repr=not secret,
                 metadata={"variable": name, "parse": parse, "secret": secret})


def _read(f, env: Mapping[str, str] | None) -> Any:
    """The field ``f`` from its variable in ``env``; its default when the variable is unset."""
    name = f.metadata["variable"]
    raw = env_value(name, env)
    if raw is None:
        return f.default
    try:
        return f.metadata["parse"](raw)
    except (ValueError, TypeError) as exc:
        shown = name if f.metadata["secret"] else f"{name}={raw!r}"
        raise SettingsError(f"{shown}: {exc}") from None


def _given(cls, env: Mapping[str, str] | None) -> dict[str, Any]:
    """The fields of the settings class ``cls`` whose variables are set in ``env``, parsed."""
    return {f.name: _read(f, env) for f in fields(cls)
            if "variable" in f.metadata and env_value(f.metadata["variable"], env) is not None}


def _field(cls, attribute: str, env: Mapping[str, str] | None) -> Any:
    """One field of ``cls`` from the environment, without reading (or validating) the others."""
    return _read(next(f for f in fields(cls) if f.name == attribute), env)


class _FromEnv:
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None):
        """Every field from its variable in ``env`` (default: the process environment); unset: the default."""
        return cls(**_given(cls, env))


# ------------------------------------------------------------------------------------------ the objects

@dataclass(frozen=True)
class PublicationTargets(_FromEnv):
    """The on-time target (metrics.md: at least 95%) and the ranking's minimum of resolved dossiers: the
    publication's pages print them, dbt gets them as ``--vars`` (its models have no default of their own)."""

    on_time_target: float = _setting("PUBLICATION_ON_TIME_TARGET", _fraction)
    min_resolved: int = _setting("PUBLICATION_MIN_RESOLVED", _int_in(0))
    incremental_lookback_minutes: float = _setting("DBT_INCREMENTAL_LOOKBACK_MINUTES", float)
    full_build_work_mem: str = _setting("DBT_FULL_BUILD_WORK_MEM", _pg_memory)

    def dbt_vars(self, **more) -> dict:
        """The vars every dbt invocation gets (``on_time_target``, ``min_resolved``,
        ``incremental_lookback_minutes``, ``full_build_work_mem``), and ``more``."""
        return {"on_time_target": self.on_time_target, "min_resolved": self.min_resolved,
                "incremental_lookback_minutes": self.incremental_lookback_minutes,
                "full_build_work_mem": self.full_build_work_mem, **more}


@dataclass(frozen=True)
class Settings(_FromEnv):
    """Everything the pipeline's stages need; build it with ``Settings.from_env()``."""

    warehouse_url: str = field(default="", repr=False)  # resolved by from_env (the writer role's URL)
    api_url: str | None = _setting("PROCEDURE_API_URL")
    api_token: str | None = _setting("PROCEDURE_API_TOKEN", secret=True)
    finance_inbox: Path = _setting("FINANCE_INBOX", project_path)
    history_start: date = _setting("HISTORY_START", date.fromisoformat)
    reports_dir: Path = _setting("REPORTS_DIR", project_path)
    gx_dir: Path = _setting("GX_PROJECT_DIR", project_path)
    findings_keep_days: int = _setting("DQ_FINDINGS_KEEP_DAYS", int)
    bat03_share: float = _setting("DQ_BAT03_SHARE", float)
    page_size: int = _setting("PROCEDURE_API_PAGE_SIZE", _int_in(1, 1000))
    connect_timeout: float = _setting("PROCEDURE_API_CONNECT_TIMEOUT", float)
    read_timeout: float = _setting("PROCEDURE_API_READ_TIMEOUT", float)
    max_retry_seconds: float = _setting("PROCEDURE_API_MAX_RETRY_SECONDS", float)
    page_deadline: float = _setting("PROCEDURE_API_PAGE_DEADLINE_SECONDS", float)
    max_page_bytes: int = _setting("PROCEDURE_API_MAX_PAGE_BYTES", int)
    reference_max_missing_share: float = _setting("REFERENCE_MAX_MISSING_SHARE", float)
    reference_accept: frozenset[str] = _setting("REFERENCE_ACCEPT_CHANGES", reference_sources, unset=frozenset())
    lock_wait_seconds: float = _setting("PIPELINE_LOCK_WAIT_SECONDS", float)
    lock_ttl_seconds: float = _setting("PIPELINE_LOCK_TTL_SECONDS", float)
    lookback: timedelta = _setting("INGEST_LOOKBACK_MINUTES", _minutes)
    partition: str = _setting("INGEST_PARTITION", _choice("none", "district"))
    max_window_records: int = _setting("INGEST_MAX_WINDOW_RECORDS", int)
    workers: int = _setting("INGEST_WORKERS", _int_in(1))
    max_key_bytes: int = _setting("INGEST_MAX_KEY_BYTES", int)
    finance_max_file_bytes: int = _setting("FINANCE_MAX_FILE_BYTES", _int_in(1))
    finance_max_uncompressed_bytes: int = _setting("FINANCE_MAX_UNCOMPRESSED_BYTES", _int_in(1))
    on_time_target: float = _setting("PUBLICATION_ON_TIME_TARGET", _fraction)
    min_resolved: int = _setting("PUBLICATION_MIN_RESOLVED", _int_in(0))
    incremental_lookback_minutes: float = _setting("DBT_INCREMENTAL_LOOKBACK_MINUTES", float)
    full_build_work_mem: str = _setting("DBT_FULL_BUILD_WORK_MEM", _pg_memory)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, warehouse_url: str | None = None) -> Settings:
        """Read every setting from ``env`` (default: the process environment); ``warehouse_url`` overrides the
        writer URL (else ``WAREHOUSE_WRITER_URL``, else the configured warehouse's)."""
        given = _given(cls, env)  # every value checked before the warehouse is looked for
        return cls(warehouse_url=writer_url(env) if warehouse_url is None else warehouse_url, **given)

    def with_api(self, url: str | None, token: str | None) -> Settings:
        """The same settings with another API endpoint (e.g. from an Airflow connection)."""
        return replace(self, api_url=url or self.api_url, api_token=token or self.api_token)

    @property
    def targets(self) -> PublicationTargets:
        return PublicationTargets(self.on_time_target, self.min_resolved, self.incremental_lookback_minutes,
                                  self.full_build_work_mem)

    def dbt_vars(self, **more) -> dict:
        """The settings the dbt models read as ``--vars`` (the ranking's target and threshold, the incremental
        look-back), and ``more``."""
        return self.targets.dbt_vars(**more)


def current(settings: Settings | None) -> Settings:
    """``settings``, else ``Settings.from_env()``: the stages' functions take them or read them."""
    return settings or Settings.from_env()


@dataclass(frozen=True)
class AlertSettings(_FromEnv):
    """Where alerts go (``pipeline.alerts``): the Airflow connections of Slack and SMTP and the e-mail's
    addresses. Read apart from ``Settings``, which resolves the warehouse: a failure callback must alert
    even when that is what is broken."""

    slack_conn_id: str = _setting("ALERT_SLACK_CONN_ID")
    smtp_conn_id: str = _setting("ALERT_SMTP_CONN_ID")
    email_from: str | None = _setting("ALERT_EMAIL_FROM")
    email_to: tuple[str, ...] = _setting("ALERT_EMAIL_TO", _csv, unset=())


@dataclass(frozen=True)
class DagSettings(_FromEnv):
    """What the DAG files read when they are parsed (stdlib only)."""

    retries: int = _setting("PIPELINE_TASK_RETRIES", _int_in(0))
    retry_delay: timedelta = _setting("PIPELINE_RETRY_DELAY_SECONDS", _seconds)
    task_timeout: timedelta = _setting("PIPELINE_TASK_TIMEOUT_MINUTES", _minutes)
    run_timeout: timedelta = _setting("PIPELINE_RUN_TIMEOUT_MINUTES", _minutes)
    dbt_task_grain: str = _setting("DBT_TASK_GRAIN", _choice("node", "layer"))
    pull_concurrency: int = _setting("INGEST_PULL_CONCURRENCY", _int_in(1))
    dbt_manifest_path: Path = _setting("DBT_MANIFEST_PATH", project_path)


@dataclass(frozen=True)
class WarehouseSettings(_FromEnv):
    """The warehouse's settings: the private cluster, or an external server (``WAREHOUSE_URL``), and the
    roles. ``warehouse.config.Settings`` adds what they imply (passwords, URLs)."""

    data_dir: Path = _setting("WAREHOUSE_DATA_DIR", _resolved_path)
    credentials_file: Path | None = _setting("WAREHOUSE_CREDENTIALS_FILE", _resolved_path)  # None: beside data
    port: int = _setting("WAREHOUSE_PORT", _int_in(1, 65535))
    host: str = "127.0.0.1"  # the private cluster listens on loopback only
    database: str = _setting("WAREHOUSE_DB")
    os_user: str = _setting("WAREHOUSE_OS_USER")
    pg_bin: Path | None = _setting("WAREHOUSE_PG_BIN", Path)
    start_timeout: int = _setting("WAREHOUSE_START_TIMEOUT", _int_in(1))
    writer_role: str = _setting("WAREHOUSE_WRITER_ROLE")
    bi_reader_role: str = _setting("BI_READER_ROLE")
    bi_reader_statement_timeout: str = _setting("BI_READER_STATEMENT_TIMEOUT", _pg_duration)
    bi_reader_idle_timeout: str = _setting("BI_READER_IDLE_TIMEOUT", _pg_duration)
    bi_reader_connection_limit: int = _setting("BI_READER_CONNECTION_LIMIT", _int_in(-1))
    # True when the retired APPLICANT_SALT is still set, so the bootstrap can say it is ignored.
    legacy_applicant_salt: bool = False
    external_url: str | None = _setting("WAREHOUSE_URL", _postgresql_url, secret=True)
    admin_password: str | None = _setting("WAREHOUSE_ADMIN_PASSWORD", secret=True)
    writer_password: str | None = _setting("WAREHOUSE_WRITER_PASSWORD", secret=True)
    bi_reader_password: str | None = _setting("BI_READER_PASSWORD", secret=True)
    applicant_hash_key: str | None = _setting("APPLICANT_HASH_KEY", _hash_key, secret=True)

    def __post_init__(self) -> None:
        if self.credentials_file is None:
            object.__setattr__(self, "credentials_file", self.data_dir.parent / "credentials.json")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None):
        """Every field from its variable in ``env`` (default: the process environment)."""
        retired = (os.environ if env is None else env).get("APPLICANT_SALT")  # only to say it is ignored
        return cls(legacy_applicant_salt=bool(retired), **_given(cls, env))


@dataclass(frozen=True)
class RunSettings(_FromEnv):
    """What the commands people type (``make run``, ``make airflow``, ``python -m ops.*``, the simulator's
    state file) read before anything is resolved or started: nothing here connects."""

    run_date: date | None = _setting("RUN_DATE", date.fromisoformat)
    airflow_home: Path = _setting("AIRFLOW_HOME", project_path)
    writer_url: str | None = _setting("WAREHOUSE_WRITER_URL", secret=True)  # as given; else resolved
    api_url: str | None = _setting("PROCEDURE_API_URL")
    api_token: str | None = _setting("PROCEDURE_API_TOKEN", secret=True)
    finance_inbox: Path = _setting("FINANCE_INBOX", project_path)
    finance_inbox_configured: bool = False  # a configured inbox is the finance department's: never created
    dbt_executable: str | None = _setting("DBT_EXECUTABLE")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunSettings:
        given = _given(cls, env)
        return cls(finance_inbox_configured="finance_inbox" in given, **given)


def interactive_defaults(env: Mapping[str, str], simulated: bool) -> dict[str, str]:
    """The variables a night run by hand (``make run``, ``python -m ops.airflow test-dag``) gets where ``env``
    leaves them unset, as the README says: ``HISTORY_START`` is the simulator's first day when it is the
    source, retries wait ``INTERACTIVE_RETRY_DELAY_SECONDS``; the inbox and reports folders as absolute paths."""
    out = {"FINANCE_INBOX": str(RunSettings.from_env(env).finance_inbox), "REPORTS_DIR": str(reports_dir(env))}
    if simulated and env_value("HISTORY_START", env) is None:
        out["HISTORY_START"] = SimulatorSettings.from_env(env).start.isoformat()
    if env_value("PIPELINE_RETRY_DELAY_SECONDS", env) is None:
        out["PIPELINE_RETRY_DELAY_SECONDS"] = INTERACTIVE_RETRY_DELAY_SECONDS
    return out


# The faults SIM_FAULTS=all:<rate> turns on (not malformed: it loses records on purpose).
_ALL_FAULTS = ("fault_5xx", "fault_429", "fault_slow", "fault_truncate", "fault_duplicate", "fault_extra_fields")
# Scenario fields SIM_SCENARIO's file may hold that have a variable too (the variable wins), and their types.
_SCENARIO_FIELDS = {"seed": int, "start": date.fromisoformat, "end": date.fromisoformat, "scale": float,
                    "clock": datetime.fromisoformat}


@dataclass(frozen=True)
class SimulatorSettings(_FromEnv):
    """The simulator's scenario (declared defaults, then ``SIM_SCENARIO``'s file, then the variables), its
    server and its faults. ``SimulatorSettings()`` holds the declared defaults (``simulator.scenario`` and
    ``simulator.server`` take theirs from it)."""

    seed: int = _setting("SIM_SEED", int)
    start: date = _setting("SIM_START", date.fromisoformat)
    end: date = _setting("SIM_END", date.fromisoformat)
    scale: float = _setting("SIM_SCALE", float)
    clock: datetime | None = _setting("SIM_CLOCK", datetime.fromisoformat)
    defect_rates: Mapping[str, float] = field(default_factory=dict)  # SIM_DEFECT_<RULE>, by rule
    scenario_file: Path | None = _setting("SIM_SCENARIO", project_path)
    scenario_extra: Mapping[str, Any] = field(default_factory=dict)  # the file's other scenario fields
    host: str = _setting("SIM_HOST")
    port: int = _setting("SIM_PORT", _int_in(0, 65535))
    token: str | None = _setting("SIM_TOKEN", secret=True)  # PROCEDURE_API_TOKEN, when set, wins
    state_dir: Path = _setting("SIM_STATE_DIR", project_path)
    start_timeout: float = _setting("SIM_START_TIMEOUT", float)
    render_cache: bool = _setting("SIM_RENDER_CACHE", _flag)
    faults_all: float | None = _setting("SIM_FAULTS", _all_rate)
    fault_5xx: float = _setting("SIM_FAULT_5XX", float)
    fault_429: float = _setting("SIM_FAULT_429", float)
    fault_slow: float = _setting("SIM_FAULT_SLOW", float)
    fault_truncate: float = _setting("SIM_FAULT_TRUNCATE", float)
    fault_duplicate: float = _setting("SIM_FAULT_DUPLICATE", float)
    fault_extra_fields: float = _setting("SIM_FAULT_EXTRA_FIELDS", float)
    fault_malformed: float = _setting("SIM_FAULT_MALFORMED", float)
    fault_omit_fields: tuple[str, ...] = _setting("SIM_FAULT_OMIT_FIELDS", _csv, unset=())
    fault_omit_share: float = _setting("SIM_FAULT_OMIT_SHARE", float)
    fault_drop: float = _setting("SIM_FAULT_DROP", float)
    fault_retry_after: int = _setting("SIM_FAULT_RETRY_AFTER", int)
    fault_slow_seconds: float = _setting("SIM_FAULT_SLOW_SECONDS", float)
    fault_seed: int = _setting("SIM_FAULT_SEED", int)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SimulatorSettings:
        given = _given(cls, env)
        api_token = env_value("PROCEDURE_API_TOKEN", env)
        if api_token:  # the simulator serves the token the pipeline is given
            given["token"] = api_token
        extra = json.loads(given["scenario_file"].read_text()) if given.get("scenario_file") else {}
        for key, parse in _SCENARIO_FIELDS.items():
            if key in extra:
                value = extra.pop(key)
                given.setdefault(key, parse(value) if isinstance(value, str) else value)
        rates = {**extra.pop("defect_rates", {}),
                 **{k.removeprefix("SIM_DEFECT_"): float(v) for k, v in _family("SIM_DEFECT_", env).items()}}
        if given.get("faults_all") is not None:
            for name in _ALL_FAULTS:
                given.setdefault(name, given["faults_all"])
        return cls(defect_rates=rates, scenario_extra=extra, **given)

    def scenario(self) -> dict[str, Any]:
        """The scenario's fields (``simulator.scenario.Scenario.from_dict``)."""
        return {"seed": self.seed, "start": self.start, "end": self.end, "scale": self.scale, "clock": self.clock,
                "defect_rates": dict(self.defect_rates), **self.scenario_extra}


@dataclass(frozen=True)
class CelerySettings(_FromEnv):
    """``make airflow-celery``: the Celery workers on this machine and the private Redis broker they share
    (``ops.broker``); ``worker_name`` is what one worker's task processes record as their host
    (``ops.celery_hostname``)."""

    workers: int = _setting("CELERY_WORKERS", _int_in(1, 16))
    worker_name: str | None = _setting("CELERY_WORKER_NAME")
    redis_host: str = "127.0.0.1"  # the private broker listens on loopback only
    redis_port: int = _setting("REDIS_PORT", _int_in(1, 65535))
    redis_data_dir: Path = _setting("REDIS_DATA_DIR", _resolved_path)
    redis_password: str | None = _setting("REDIS_PASSWORD", _redis_password, secret=True)
    redis_server: str | None = _setting("REDIS_SERVER")
    redis_os_user: str = _setting("REDIS_OS_USER")


@dataclass(frozen=True)
class FrontDoorSettings(_FromEnv):
    """``make serve``: the read-only index of everything published."""

    serve_port: int = _setting("SERVE_PORT", _int_in(1, 65535))


@dataclass(frozen=True)
class SupersetSettings(_FromEnv):
    """``python -m bi`` (``make superset``): the local Superset, or another one, and the warehouse as it
    reaches it."""

    port: int = _setting("SUPERSET_PORT", _int_in(1, 65535))
    admin_username: str | None = _setting("SUPERSET_ADMIN_USERNAME")
    admin_password: str | None = _setting("SUPERSET_ADMIN_PASSWORD", secret=True)
    url: str | None = _setting("SUPERSET_URL")
    reader_url: str | None = _setting("BI_READER_URL", secret=True)
    venv: Path | None = _setting("SUPERSET_VENV", _resolved_path)


# ------------------------------------------------------------------------------------------ helpers

def interval_end_for(run_date: date) -> datetime:
    """The local (naive) end of the nightly data interval of ``run_date``: 01:00 that day."""
    return datetime.combine(run_date, RUN_HOUR)


def writer_url(env: Mapping[str, str] | None = None) -> str:
    """The pipeline's (writer role's) URL: ``WAREHOUSE_WRITER_URL``, else the configured warehouse's writer
    URL (``warehouse.resolve_url``: the private cluster, or ``WAREHOUSE_URL``)."""
    given = _field(RunSettings, "writer_url", env)
    if given:
        return given
    from warehouse import resolve_url
    from warehouse.config import Settings as Warehouse

    return resolve_url("writer", Warehouse.from_env(env))


def reports_dir(env: Mapping[str, str] | None = None) -> Path:
    """``REPORTS_DIR`` (relative to the project), without resolving anything else."""
    return _field(Settings, "reports_dir", env)


def dbt_vars(env: Mapping[str, str] | None = None, **more) -> dict:
    """``PublicationTargets.dbt_vars`` from the environment alone (the DAG files, ``ops.dbt``)."""
    return PublicationTargets.from_env(env).dbt_vars(**more)
