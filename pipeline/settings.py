"""The configuration of the whole project, in one place: every environment variable the README documents
is declared here (``VARIABLES``, with its section, default and meaning) and read here (``env_value``), and
nowhere else. The pipeline's stages take a typed ``Settings``; the warehouse (``warehouse.config``), the
simulator and the run scripts (``ops``) read their own variables through ``env_value`` too.

Airflow's own configuration (``AIRFLOW__<SECTION>__<KEY>``) is Airflow's: the project passes it through and
sets defaults for it in ``ops.airflow.airflow_env``; it is not declared here. Only the stdlib is imported,
so DAG files may import this module at parse time.

``tests/test_settings.py`` checks the README's variable tables against ``VARIABLES``, so they cannot drift.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".local"  # every generated state: warehouse, simulator, Airflow, dbt, GX
LOCAL_TZ = "Asia/Ho_Chi_Minh"  # the API's timestamps are local time (UTC+7, no DST)
RUN_HOUR = time(1, 0)  # the nightly data interval ends at 01:00 local time
DEFAULT_REPORTS_DIR = PROJECT_ROOT / "reports"


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
        ("WAREHOUSE_CREDENTIALS_FILE", ".local/warehouse/credentials.json", "generated passwords (0600)"),
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
        "Front door",
        ("SERVE_PORT", "8090", "port of make serve (127.0.0.1 only)"),
        ("SUPERSET_PORT", "8088", "port of make superset (127.0.0.1 only)"),
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


def env_value(name: str, env: Mapping[str, str] | None = None, default: str | None = None) -> str | None:
    """The value of the documented variable ``name`` in ``env`` (default: the process environment); an empty
    value counts as unset, as ``FOO= make run`` users expect. ``default`` when unset."""
    variable(name)
    value = (os.environ if env is None else env).get(name)
    return value if value not in (None, "") else default


def env_names(prefix: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The documented variables of a family set in ``env`` (e.g. ``SIM_DEFECT_``), by name."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith(prefix) and v != "" and variable(k)}


def project_path(value: str | Path) -> Path:
    """A path from a variable: relative ones are relative to the project folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def interval_end_for(run_date: date) -> datetime:
    """The local (naive) end of the nightly data interval of ``run_date``: 01:00 that day."""
    return datetime.combine(run_date, RUN_HOUR)


def reference_sources(value: str) -> frozenset[str]:
    """The reference lists named by ``REFERENCE_ACCEPT_CHANGES`` (``all`` for the three)."""
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    known = {"units", "procedures", "delegations"}
    if "all" in names:
        return frozenset(known)
    unknown = names - known
    if unknown:
        raise ValueError(f"REFERENCE_ACCEPT_CHANGES: unknown list(s) {', '.join(sorted(unknown))} "
                         "(units, procedures, delegations or all)")
    return frozenset(names)


def _int(name: str, env: Mapping[str, str] | None) -> int:
    return int(env_value(name, env, variable(name).default))


def _float(name: str, env: Mapping[str, str] | None) -> float:
    return float(env_value(name, env, variable(name).default))


def _path(name: str, env: Mapping[str, str] | None) -> Path:
    return project_path(env_value(name, env, variable(name).default))


def writer_url(env: Mapping[str, str] | None = None) -> str:
    """The pipeline's (writer role's) URL: ``WAREHOUSE_WRITER_URL``, else the configured warehouse's writer
    URL (``warehouse.resolve_url``: the private cluster, or ``WAREHOUSE_URL``)."""
    found = env_value("WAREHOUSE_WRITER_URL", env)
    if found:
        return found
    from warehouse import resolve_url
    from warehouse.config import Settings as WarehouseSettings

    return resolve_url("writer", WarehouseSettings.from_env(env))


def reports_dir(env: Mapping[str, str] | None = None) -> Path:
    """``REPORTS_DIR`` (relative to the project), without resolving anything else."""
    return _path("REPORTS_DIR", env)


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline's stages need; build it with ``Settings.from_env()``."""

    api_url: str | None
    api_token: str | None
    warehouse_url: str
    finance_inbox: Path
    history_start: date
    reports_dir: Path = DEFAULT_REPORTS_DIR
    gx_dir: Path = LOCAL_DIR / "gx"
    findings_keep_days: int = 35
    bat03_share: float = 0.05
    page_size: int = 1000
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retry_seconds: float = 300.0
    page_deadline: float = 180.0
    max_page_bytes: int = 64 * 2**20
    reference_max_missing_share: float = 0.2
    reference_accept: frozenset[str] = frozenset()
    lock_wait_seconds: float = 900.0
    lock_ttl_seconds: float = 21600.0
    lookback: timedelta = timedelta(minutes=180)
    partition: str = "none"
    max_window_records: int = 200_000
    workers: int = 2
    max_key_bytes: int = 1000
    finance_max_file_bytes: int = 50 * 2**20
    finance_max_uncompressed_bytes: int = 200 * 2**20
    on_time_target: float = 0.95
    min_resolved: int = 10
    dbt_manifest_path: Path = LOCAL_DIR / "dbt" / "manifest" / "manifest.json"
    alert_slack_conn_id: str = "cchc_slack"
    alert_smtp_conn_id: str = "cchc_smtp"
    alert_email_from: str | None = None
    alert_email_to: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, warehouse_url: str | None = None) -> Settings:
        """Read every setting from ``env`` (default: the process environment); ``warehouse_url`` overrides the
        writer URL (else ``WAREHOUSE_WRITER_URL``, else the configured warehouse's)."""
        if warehouse_url is None:
            warehouse_url = writer_url(env)
        partition = env_value("INGEST_PARTITION", env, "none")
        if partition not in ("none", "district"):
            raise ValueError(f"INGEST_PARTITION must be 'none' or 'district', not {partition!r}")
        page_size = _int("PROCEDURE_API_PAGE_SIZE", env)
        if not 1 <= page_size <= 1000:
            raise ValueError("PROCEDURE_API_PAGE_SIZE must be in 1..1000")
        max_file, max_unzipped = _int("FINANCE_MAX_FILE_BYTES", env), _int("FINANCE_MAX_UNCOMPRESSED_BYTES", env)
        if min(max_file, max_unzipped) < 1:
            raise ValueError("FINANCE_MAX_FILE_BYTES and FINANCE_MAX_UNCOMPRESSED_BYTES must be positive byte counts")
        target = _float("PUBLICATION_ON_TIME_TARGET", env)
        if not 0 < target <= 1:
            raise ValueError("PUBLICATION_ON_TIME_TARGET must be a fraction in (0, 1]")
        recipients = tuple(a.strip() for a in (env_value("ALERT_EMAIL_TO", env) or "").split(",") if a.strip())
        return cls(
            api_url=env_value("PROCEDURE_API_URL", env),
            api_token=env_value("PROCEDURE_API_TOKEN", env),
            warehouse_url=warehouse_url,
            finance_inbox=_path("FINANCE_INBOX", env),
            history_start=date.fromisoformat(env_value("HISTORY_START", env, "2023-01-01")),
            reports_dir=reports_dir(env),
            gx_dir=_path("GX_PROJECT_DIR", env),
            findings_keep_days=_int("DQ_FINDINGS_KEEP_DAYS", env),
            bat03_share=_float("DQ_BAT03_SHARE", env),
            page_size=page_size,
            connect_timeout=_float("PROCEDURE_API_CONNECT_TIMEOUT", env),
            read_timeout=_float("PROCEDURE_API_READ_TIMEOUT", env),
            max_retry_seconds=_float("PROCEDURE_API_MAX_RETRY_SECONDS", env),
            page_deadline=_float("PROCEDURE_API_PAGE_DEADLINE_SECONDS", env),
            max_page_bytes=_int("PROCEDURE_API_MAX_PAGE_BYTES", env),
            reference_max_missing_share=_float("REFERENCE_MAX_MISSING_SHARE", env),
            reference_accept=reference_sources(env_value("REFERENCE_ACCEPT_CHANGES", env, "")),
            lock_wait_seconds=_float("PIPELINE_LOCK_WAIT_SECONDS", env),
            lock_ttl_seconds=_float("PIPELINE_LOCK_TTL_SECONDS", env),
            lookback=timedelta(minutes=_float("INGEST_LOOKBACK_MINUTES", env)),
            partition=partition,
            max_window_records=_int("INGEST_MAX_WINDOW_RECORDS", env),
            workers=max(1, _int("INGEST_WORKERS", env)),
            max_key_bytes=_int("INGEST_MAX_KEY_BYTES", env),
            finance_max_file_bytes=max_file,
            finance_max_uncompressed_bytes=max_unzipped,
            on_time_target=target,
            min_resolved=_int("PUBLICATION_MIN_RESOLVED", env),
            dbt_manifest_path=_path("DBT_MANIFEST_PATH", env),
            alert_slack_conn_id=env_value("ALERT_SLACK_CONN_ID", env, "cchc_slack"),
            alert_smtp_conn_id=env_value("ALERT_SMTP_CONN_ID", env, "cchc_smtp"),
            alert_email_from=env_value("ALERT_EMAIL_FROM", env),
            alert_email_to=recipients,
        )

    def with_api(self, url: str | None, token: str | None) -> Settings:
        """The same settings with another API endpoint (e.g. from an Airflow connection)."""
        return replace(self, api_url=url or self.api_url, api_token=token or self.api_token)

    def dbt_vars(self, **more) -> dict:
        """The settings the dbt models read as ``--vars`` (the ranking's target and threshold)."""
        return {"on_time_target": self.on_time_target, "min_resolved": self.min_resolved, **more}


def publication_targets(env: Mapping[str, str] | None = None) -> tuple[float, int]:
    """The on-time target and the ranking's minimum of resolved dossiers (``PUBLICATION_*``), without the
    rest of ``Settings`` (for DAG files and the publication's constants)."""
    return _float("PUBLICATION_ON_TIME_TARGET", env), _int("PUBLICATION_MIN_RESOLVED", env)


def dbt_vars(env: Mapping[str, str] | None = None, **more) -> dict:
    """``Settings.dbt_vars`` from the environment alone."""
    target, minimum = publication_targets(env)
    return {"on_time_target": target, "min_resolved": minimum, **more}


@dataclass(frozen=True)
class DagSettings:
    """What the DAG files read when they are parsed (stdlib only)."""

    retries: int
    retry_delay: timedelta
    task_timeout: timedelta
    run_timeout: timedelta
    dbt_task_grain: str
    pull_concurrency: int
    dbt_manifest_path: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DagSettings:
        grain = env_value("DBT_TASK_GRAIN", env, "layer")
        if grain not in ("node", "layer"):
            raise ValueError(f"DBT_TASK_GRAIN must be 'node' or 'layer', not {grain!r}")
        return cls(
            retries=_int("PIPELINE_TASK_RETRIES", env),
            retry_delay=timedelta(seconds=_float("PIPELINE_RETRY_DELAY_SECONDS", env)),
            task_timeout=timedelta(minutes=_float("PIPELINE_TASK_TIMEOUT_MINUTES", env)),
            run_timeout=timedelta(minutes=_float("PIPELINE_RUN_TIMEOUT_MINUTES", env)),
            dbt_task_grain=grain,
            pull_concurrency=_int("INGEST_PULL_CONCURRENCY", env),
            dbt_manifest_path=_path("DBT_MANIFEST_PATH", env),
        )


