"""Run the data-quality stage: Great Expectations checkpoints over the warehouse, results kept in ``dq``.

``run_data_quality(run_id, as_of, settings)`` is what the nightly DAG's ``data_quality`` task calls,
between dbt's staging models (which build ``dq.dq_dossiers``) and the marts:

1. the **batch** checkpoint (critical): duplicate keys, required columns and fields, the API count
   reconciliation. A failure is stored, goes into the digest, and raises ``CriticalDataQualityError`` —
   the marts are not rebuilt, yesterday's stay in place for BI;
2. the **dossiers** checkpoint: every rule of dq-rules.md at the as-of time (warnings);
3. the **finance** checkpoint: the disbursement workbooks' rows (warnings);
4. the digest for the data team (``expectations/digest.py``).

Each checkpoint updates the Data Docs site in ``<REPORTS_DIR>/data-docs``. Great Expectations counts
each rule's failing rows in the database; the failing records themselves are then written by the
server with ``INSERT … SELECT`` of the very same query into ``dq.findings`` — no table is pulled into
Python, whatever the number of dossiers — and the stored count is checked against Great Expectations'.
A validation's rows replace those of an earlier attempt of the same run (``validation_id`` =
``{run_id}/{suite}``), in one transaction.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg

from expectations import intervals
from expectations.rules import CRITICAL
from pipeline.db import connect
from pipeline.runs import stop_run
from pipeline.settings import Settings, current

APPLICATION = "cchc-data-quality"

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
DOCS_SITE = "reports"
URL_VARIABLE = "CCHC_GX_WAREHOUSE_URL"  # the connection string reaches GX's config by substitution only


class DataQualityError(RuntimeError):
    """The validation itself could not run (a query failed, the counts disagree)."""


class CriticalDataQualityError(DataQualityError):
    """The batch is broken: a critical check failed. The run must stop before the marts."""


@dataclass
class CheckResult:
    check_id: str
    rule_id: str
    expectation_type: str
    severity: str
    description: str
    success: bool
    unexpected_count: int | None
    observed: dict
    stored: int = 0


@dataclass
class SuiteOutcome:
    suite: str
    validation_id: str
    status: str
    checks: list[CheckResult] = field(default_factory=list)
    evaluated: int | None = None
    seconds: float = 0.0
    intervals: dict[str, int] | None = None  # dossiers: intervals opened and closed

    @property
    def failed_critical(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == CRITICAL]

    def to_dict(self) -> dict:
        return {"suite": self.suite, "validation_id": self.validation_id, "status": self.status,
                "evaluated": self.evaluated, "seconds": round(self.seconds, 2), "intervals": self.intervals,
                "failed": {c.check_id: c.unexpected_count for c in self.checks if not c.success}}


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@contextmanager
def project_lock(settings: Settings) -> Iterator[None]:
    """Hold Great Expectations' project folder alone: every validation rewrites its stores and checkpoints,
    and two at once (the nightly DAG's dossier and workbook checks run side by side under a scheduler, or
    a validation run by hand) would leave a configuration neither can read. An exclusive ``flock`` on a
    file of the folder, released when the validation ends (or its process dies)."""
    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.gx_dir / ".validation.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_library() -> None:
    """Import Great Expectations (and SQLAlchemy, its data source's engine): 2.3 s of CPU here, which a
    process pays once, at its first validation. ``pipeline.night.run_night`` calls it on a thread of its own
    while dbt builds the staging stage, so the gate (the batch checks) does not pay it after them."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations  # noqa: F401
    from great_expectations.execution_engine import SqlAlchemyExecutionEngine  # noqa: F401


def open_context(settings: Settings):
    """Great Expectations' file project in ``settings.gx_dir``, with the warehouse as a data source and a
    Data Docs site in ``<reports_dir>/data-docs``. The connection string is passed by environment
    substitution, so no password is written to the project's YAML."""
    load_library()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    settings.gx_dir.mkdir(parents=True, exist_ok=True)
    # Checkpoints and validation definitions are rebuilt from code every run: drop the previous run's,
    # which may name suites or assets this version no longer has (Great Expectations then refuses to load
    # them). Validation results (uncommitted/validations) and the Data Docs stay.
    for folder in ("checkpoints", "validation_definitions"):
        for stale in (settings.gx_dir / "gx" / folder).glob("*.json"):
            stale.unlink()
    context = gx.get_context(mode="file", project_root_dir=str(settings.gx_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    docs = settings.reports_dir / "data-docs"
    docs.mkdir(parents=True, exist_ok=True)
    site = {"class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    sites = context.config.data_docs_sites or {}
    for name in [n for n in sites if n != DOCS_SITE]:
        context.delete_data_docs_site(name)  # the default site under the project folder: one place only
    if DOCS_SITE in sites:
        context.update_data_docs_site(DOCS_SITE, site)
    else:
        context.add_data_docs_site(DOCS_SITE, site)
    os.environ[URL_VARIABLE] = _sqlalchemy_url(settings.warehouse_url)
    context.data_sources.add_or_update_postgres(DATASOURCE, connection_string="${" + URL_VARIABLE + "}")
    return context


def _batch_definition(context, schema: str, table: str):
    source = context.data_sources.get(DATASOURCE)
    name = f"{schema}.{table}"
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_table_asset(name=name, table_name=table, schema_name=schema)
    try:
        return asset.get_batch_definition("whole_table")
    except KeyError:
        return asset.add_batch_definition_whole_table("whole_table")


def _run_checkpoint(context, name: str, parts: list, run_id: str) -> dict[str, Any]:
    """Run one checkpoint over the suite parts; returns {suite name: validation result}."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    definitions = []
    for part in parts:
        suite = context.suites.add_or_update(part.suite)
        definition = gx.ValidationDefinition(name=part.name, data=_batch_definition(context, *part.table),
                                             suite=suite)
        definitions.append(context.validation_definitions.add_or_update(definition))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=name, validation_definitions=definitions,
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
        result_format={"result_format": "SUMMARY"}))
    result = checkpoint.run(run_id=RunIdentifier(run_name=run_id))
    return {r.suite_name: r for r in result.run_results.values()}


def _checks(result) -> list[CheckResult]:
    out = []
    for r in result.results:
        config = r.expectation_config
        meta = config.meta or {}
        info = r.exception_info or {}
        # a flat {raised_exception, exception_message} or, per failed metric, {metric id: {...}}
        errors = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
        messages = [e.get("exception_message") for e in errors
                    if e.get("raised_exception", True) and e.get("exception_message")]
        if messages:
            raise DataQualityError(f"{meta.get('check_id', config.type)} could not be evaluated: {messages[0]}")
        res = r.result or {}
        count = res.get("observed_value") if config.type == "unexpected_rows_expectation" \
            else res.get("unexpected_count")
        severity = getattr(config.severity, "value", config.severity) or CRITICAL
        out.append(CheckResult(meta.get("check_id", config.type), meta.get("rule_id", config.type), config.type,
                               str(severity), config.description or "", bool(r.success),
                               count if isinstance(count, int) else None, res))
    return out


def _store(conn: psycopg.Connection, outcome: SuiteOutcome, parts: list, run_id: str, as_of: datetime,
           started: datetime, plan: intervals.Plan | None = None) -> None:
    """Replace the validation's rows (run, results, findings) in one transaction; findings are written by
    the server from each failing rule's own query: into ``dq.findings`` (the batch and workbook checks, a
    dossier validation out of order), or, for a dossier validation in order (``plan``), into the issues'
    intervals (``expectations.intervals``)."""
    rules = {check_id: (rule, part.table) for part in parts for check_id, rule in part.rules.items()}
    to_intervals = plan is not None and plan.keeps_intervals
    with conn.transaction():
        conn.execute("DELETE FROM dq.validation_runs WHERE validation_id = %s", (outcome.validation_id,))
        seq = conn.execute(
            "INSERT INTO dq.validation_runs (validation_id, run_id, suite, as_of, run_date, started_at, status, "
            "evaluated, expectations, failed_critical, failed_warning, gx_run_name, batch_kind, changed_through, "
            "reference_hash) VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq",
            (outcome.validation_id, run_id, outcome.suite, as_of, as_of.date(), started, outcome.evaluated,
             len(outcome.checks), len(outcome.failed_critical),
             sum(1 for c in outcome.checks if not c.success and c.severity != CRITICAL), run_id,
             plan and plan.kind, plan and plan.changed_through, plan and plan.reference_hash)).fetchone()[0]
        if to_intervals:
            # keyed once filled (intervals.apply), or never when it fills empty intervals
            conn.execute("CREATE TEMPORARY TABLE found (dossier_id text NOT NULL, rule_id text NOT NULL, "
                         "unit_code text, observed_value text) ON COMMIT DROP")
        for check in outcome.checks:
            if not check.success and check.check_id in rules:
                rule, (schema, table) = rules[check.check_id]
                query = rule.sql(as_of, batch=f"{schema}.{table}").replace("%", "%%")
                if to_intervals:
                    cur = conn.execute(
                        "INSERT INTO found (rule_id, dossier_id, unit_code, observed_value) "
                        f"SELECT %s, q.record_key, q.unit_code, q.observed_value FROM ({query}) AS q",
                        (rule.rule_id,))
                else:
                    cur = conn.execute(
                        "INSERT INTO dq.findings (validation_id, rule_id, record_key, unit_code, observed_value) "
                        f"SELECT %s, %s, q.record_key, q.unit_code, q.observed_value FROM ({query}) AS q "
                        "ON CONFLICT DO NOTHING", (outcome.validation_id, rule.rule_id))
                check.stored = cur.rowcount
                if check.unexpected_count is not None and check.stored != check.unexpected_count:
                    raise DataQualityError(
                        f"{check.check_id}: Great Expectations counted {check.unexpected_count} failing rows "
                        f"but {check.stored} findings were stored")
            conn.execute(
                "INSERT INTO dq.expectation_results (validation_id, check_id, rule_id, expectation_type, severity, "
                "description, success, unexpected_count, element_count, observed) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (outcome.validation_id, check.check_id, check.rule_id, check.expectation_type, check.severity,
                 check.description, check.success, check.unexpected_count, outcome.evaluated,
                 orjson.dumps(check.observed, default=str).decode()))
        if to_intervals:
            try:
                outcome.intervals = intervals.apply(conn, plan, outcome.validation_id, seq, as_of, "found")
            except psycopg.errors.UniqueViolation as exc:
                raise DataQualityError(f"a dossier rule found a dossier twice: {exc.diag.message_detail}") from exc
        outcome.seconds = time.perf_counter() - outcome.seconds
        conn.execute("UPDATE dq.validation_runs SET status = %s, finished_at = clock_timestamp(), seconds = %s "
                     "WHERE validation_id = %s", (outcome.status, round(outcome.seconds, 3), outcome.validation_id))


def _validate(context, conn: psycopg.Connection, suite: str, parts: list, run_id: str, as_of: datetime,
              count_table: tuple[str, str] | None, plan: intervals.Plan | None = None) -> SuiteOutcome:
    # the warehouse's clock, as the landings' changed_at: BAT05 compares what landed after a good check began
    started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    outcome = SuiteOutcome(suite, f"{run_id}/{suite}", "running", seconds=time.perf_counter())
    results = _run_checkpoint(context, suite, parts, run_id)
    for part in parts:
        outcome.checks += _checks(results[part.name])
    if count_table:
        outcome.evaluated = conn.execute(f"SELECT count(*) FROM {count_table[0]}.{count_table[1]}").fetchone()[0]
    if outcome.failed_critical:
        outcome.status = "failed"
    elif any(not c.success for c in outcome.checks):
        outcome.status = "warnings"
    else:
        outcome.status = "passed"
    _store(conn, outcome, parts, run_id, as_of, started, plan)
    log.info("data quality %s: %s in %.1fs, failing %s", suite, outcome.status, outcome.seconds,
             {c.check_id: c.unexpected_count for c in outcome.checks if not c.success})
    return outcome


def _dossiers(context, conn: psycopg.Connection, run_id: str, as_of: datetime, settings: Settings) -> SuiteOutcome:
    """The rules of dq-rules.md on the dossiers the night must evaluate (``expectations.intervals``): the
    change set, or every dossier."""
    from expectations.suites import dossier_suite

    validation_id = f"{run_id}/dossiers"
    with conn.transaction():
        # An earlier attempt of this validation (a retried task): undo it before anything else reads the state.
        intervals.undo(conn, validation_id)
        conn.execute("DELETE FROM dq.validation_runs WHERE validation_id = %s", (validation_id,))
        plan = intervals.plan(conn, validation_id, as_of, settings.incremental_lookback_minutes)
    outcome = _validate(context, conn, "dossiers", dossier_suite(as_of, plan.table), run_id, as_of, plan.table,
                        plan)
    log.info("data quality dossiers: %s evaluation of %s dossiers, intervals %s", plan.kind, outcome.evaluated,
             outcome.intervals)
    return outcome


def prune_findings(conn: psycopg.Connection, as_of: datetime, keep_days: int) -> int:
    """Delete the per-record findings of validations more than ``keep_days`` before ``as_of`` (their runs
    and expectation results stay). The issues' history lives on in ``fct_dq_issue``/``fct_dq_daily``,
    which only ever read validations newer than their last build; 35 days leave a month of nights to
    compare and a wide margin for a marts build that did not run."""
    cur = conn.execute("DELETE FROM dq.findings f USING dq.validation_runs v WHERE f.validation_id = v.validation_id "
                       "AND v.as_of < %s::timestamp - make_interval(days => %s)", (as_of, keep_days))
    return cur.rowcount


def run_data_quality(run_id: str, as_of: datetime, settings: Settings | None = None,
                     notify: bool = True, finance: bool = True, digest: bool = True) -> dict:
    """Validate the batch and the dossiers of ``run_id`` at ``as_of`` (naive local time), and unless told
    otherwise the workbooks (``finance``) and the digest (``digest``; the nightly DAG runs the workbook
    checks on their own branch and sends the digest at the end of the night).

    Returns a summary (per suite: status, seconds, failing checks; the digest). Raises
    ``CriticalDataQualityError`` after storing (and, with ``digest``, reporting) a critical failure."""

    settings = current(settings)
    t0 = time.perf_counter()
    with project_lock(settings):
        summary, batch = _dossier_checks(run_id, as_of, settings, notify, finance, digest)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["data_docs"] = str(settings.reports_dir / "data-docs" / "index.html")
    if batch.failed_critical:
        raise _critical(run_id, batch)
    return summary


def run_batch_checks(run_id: str, as_of: datetime, settings: Settings | None = None) -> dict:
    """The batch checkpoint alone — the night's gate (the nightly DAG's ``batch_checks`` task): a critical
    failure is stored, stops the run (``stop_run``) and raises ``CriticalDataQualityError``; then neither the
    dossier rules nor the marts run. Passed, the marts build while ``run_dossier_checks`` evaluates the
    dossier rules beside them: those read only the staged tables and ``dq``, and only the marts of their
    findings (``nightly_dq_marts``) wait for them. Returns the summary's ``batch`` part."""
    settings = current(settings)
    t0 = time.perf_counter()
    with project_lock(settings), connect(settings, APPLICATION) as conn:
        batch = _batch(open_context(settings), conn, run_id, as_of, settings)
        if batch.failed_critical:
            stop_run(conn, run_id, {"data_quality": {"run_id": run_id, "as_of": as_of.isoformat(),
                                                     "batch": batch.to_dict()}})
    if batch.failed_critical:
        raise _critical(run_id, batch)
    return {"run_id": run_id, "as_of": as_of.isoformat(), "batch": batch.to_dict(),
            "seconds": round(time.perf_counter() - t0, 2)}


def run_dossier_checks(run_id: str, as_of: datetime, settings: Settings | None = None) -> dict:
    """The dossier rules of dq-rules.md at ``as_of`` (warnings) and the pruning of old findings, after
    ``run_batch_checks`` passed (the nightly DAG's ``data_quality`` task). Returns the summary's
    ``dossiers`` part, with the pruned findings, the seconds and the Data Docs' index."""
    settings = current(settings)
    t0 = time.perf_counter()
    with project_lock(settings), connect(settings, APPLICATION) as conn:
        summary = {"run_id": run_id, "as_of": as_of.isoformat(),
                   "dossiers": _dossiers(open_context(settings), conn, run_id, as_of, settings).to_dict(),
                   "pruned_findings": prune_findings(conn, as_of, settings.findings_keep_days)}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["data_docs"] = str(settings.reports_dir / "data-docs" / "index.html")
    return summary


def quality_summary(batch: dict | None, dossiers: dict | None) -> dict | None:
    """The night's data-quality summary, as ``run_data_quality`` gives it, from its two tasks' results
    (``run_batch_checks``, ``run_dossier_checks``; either may be missing: a task that failed or did not
    run)."""
    if not batch and not dossiers:
        return None
    merged = {**(batch or {}), **(dossiers or {})}
    merged["seconds"] = round(sum(part.get("seconds") or 0 for part in (batch, dossiers) if part), 2)
    return merged


def _critical(run_id: str, batch: SuiteOutcome) -> CriticalDataQualityError:
    failed = "; ".join(f"{c.check_id} {c.description.split(': ', 1)[-1]} ({c.unexpected_count})"
                       for c in batch.failed_critical)
    return CriticalDataQualityError(f"the batch of run {run_id} is broken, the marts are not rebuilt: {failed}")


def _batch(context, conn: psycopg.Connection, run_id: str, as_of: datetime, settings: Settings) -> SuiteOutcome:
    from expectations.suites import batch_suite

    return _validate(context, conn, "batch", batch_suite(run_id, settings.bat03_share), run_id, as_of, None)


def _dossier_checks(run_id: str, as_of: datetime, settings: Settings, notify: bool, finance: bool,
                    digest: bool) -> tuple[dict, SuiteOutcome]:
    from expectations.digest import send_digest

    context = open_context(settings)
    summary: dict[str, Any] = {"run_id": run_id, "as_of": as_of.isoformat()}
    with connect(settings, APPLICATION) as conn:
        batch = _batch(context, conn, run_id, as_of, settings)
        summary["batch"] = batch.to_dict()
        if not batch.failed_critical:
            summary["dossiers"] = _dossiers(context, conn, run_id, as_of, settings).to_dict()
            if finance:
                summary["finance"] = _finance(context, conn, run_id, as_of)
        if digest:
            summary["digest"] = send_digest(conn, run_id, settings, deliver=notify)
        summary["pruned_findings"] = prune_findings(conn, as_of, settings.findings_keep_days)
        if batch.failed_critical:
            stop_run(conn, run_id, {"data_quality": summary})
    return summary, batch


def _finance(context, conn: psycopg.Connection, run_id: str, as_of: datetime) -> dict:
    from expectations.rules import FINANCE_TABLE
    from expectations.suites import finance_suite

    return _validate(context, conn, "finance", finance_suite(), run_id, as_of, FINANCE_TABLE).to_dict()


def run_finance_quality(run_id: str, as_of: datetime, settings: Settings | None = None) -> dict:
    """The workbook checks alone (warnings), for the nightly DAG's finance branch."""
    settings = current(settings)
    t0 = time.perf_counter()
    with project_lock(settings), connect(settings, APPLICATION) as conn:
        summary = {"run_id": run_id, "finance": _finance(open_context(settings), conn, run_id, as_of)}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def release_batch(url: str, run_id: str, released_by: str, note: str | None = None) -> bool:
    """Accept a batch stopped by a critical check (the data team reviewed it): the next nights' batch checks
    start after it, so what it landed is published by the next night. False when the run has no stopped
    batch validation."""
    with psycopg.connect(url, autocommit=True) as conn:
        stopped = conn.execute("SELECT 1 FROM dq.validation_runs WHERE run_id = %s AND suite = 'batch' "
                               "AND status = 'failed'", (run_id,)).fetchone()
        if stopped is None:
            return False
        conn.execute("INSERT INTO dq.batch_releases (run_id, released_by, note) VALUES (%s, %s, %s) "
                     "ON CONFLICT (run_id) DO UPDATE SET released_at = now(), released_by = excluded.released_by, "
                     "note = excluded.note", (run_id, released_by, note))
    return True
