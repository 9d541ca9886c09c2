"""The data team's digest of a run's data-quality results: what changed since the previous validation.

One short message per run, critical failures first, then the dossier issues that are new and those
resolved since the previous dossier validation (by rule and by unit), the units carrying the largest
backlog, and what the workbook checks found. Everything is counted by the server: the dossier issues from the
intervals the run's validation opened and closed (``dq.issue_intervals``: its change set, so the digest costs
what changed), the workbook findings from ``dq.findings``.

It is always stored (``dq.digests``) and written to ``<REPORTS_DIR>/dq-digest/<run_date>.txt`` (and
``latest.txt``); it is *sent* through the configured channels (``pipeline.alerts``: Slack webhook,
SMTP e-mail; see ``ALERT_*``) only when something changed — a critical failure, a new issue or a
resolved one. No change, no message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg

from expectations.intervals import CHANGES, FULL, OUT_OF_ORDER
from expectations.rules import DOSSIER_RULES, FINANCE_RULES
from pipeline.settings import Settings

log = logging.getLogger(__name__)

TOP_UNITS = 10
TITLES = {r.rule_id: r.title for r in (*DOSSIER_RULES, *FINANCE_RULES)}


@dataclass
class Digest:
    run_id: str
    as_of: str | None = None
    previous_as_of: str | None = None
    critical: list[tuple[str, str, int | None]] = field(default_factory=list)  # check, description, count
    open_total: int = 0
    new_by_rule: list[tuple[str, int]] = field(default_factory=list)
    new_by_unit: list[tuple[str, str, int]] = field(default_factory=list)  # unit, name, count
    resolved_by_rule: list[tuple[str, int]] = field(default_factory=list)
    resolved_by_unit: list[tuple[str, str, int]] = field(default_factory=list)
    backlog: list[tuple[str, str, int, str]] = field(default_factory=list)  # unit, name, open, worst rule
    finance_new: list[tuple[str, int]] = field(default_factory=list)
    finance_open: int = 0
    # What the night's ingestion could not do: (source, status, detail) of every window or list that did not
    # complete, the windows still open from earlier nights, the records quarantined, rejected workbooks.
    ingestion: list[tuple[str, str, str]] = field(default_factory=list)
    open_windows: list[tuple[int, str, str, str, str]] = field(default_factory=list)  # id, source, from, to, why
    quarantined: list[tuple[str, str, int]] = field(default_factory=list)  # source, reason, records
    rejected_workbooks: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)
    out_of_order: bool = False  # the dossier validation was of a night earlier than the latest validated

    @property
    def new_total(self) -> int:
        return sum(n for _, n in self.new_by_rule)

    @property
    def resolved_total(self) -> int:
        return sum(n for _, n in self.resolved_by_rule)

    @property
    def incomplete(self) -> bool:
        """The night could not take in everything the sources offered."""
        return bool(self.ingestion or self.open_windows or self.rejected_workbooks or self.failed_tasks)

    @property
    def changed(self) -> bool:
        return bool(self.critical or self.new_by_rule or self.resolved_by_rule or self.finance_new
                    or self.incomplete or self.quarantined)

    def subject(self) -> str:
        if self.critical:
            return f"[CRITICAL] Data quality, run {self.run_id}: the batch is broken, marts not rebuilt"
        head = "[INCOMPLETE] " if self.incomplete else ""
        return (f"{head}Data quality, run {self.run_id}: {self.new_total:,} new, {self.resolved_total:,} resolved, "
                f"{self.open_total:,} open")

    def text(self) -> str:
        lines = [self.subject(), ""]
        if self.critical:
            lines.append("CRITICAL — the run stopped before the marts; yesterday's marts are still published:")
            lines += [f"  {check}: {description}" + (f" ({count:,})" if count is not None else "")
                      for check, description, count in self.critical]
            lines += ["  Failing records: dq.findings / dq.expectation_results of validation "
                      f"'{self.run_id}/batch'.",
                      "  Every next night checks this batch again until the source sends it corrected or the data "
                      "team releases it: python -m expectations release --run-id " + self.run_id, ""]
        if self.failed_tasks:
            lines += [f"FAILED TASKS: {', '.join(self.failed_tasks)} (see reports/alerts.log and the task logs).", ""]
        if self.ingestion or self.open_windows:
            lines.append("NOT COMPLETE — what the night could not take in (everything else is published):")
            lines += [f"  {source} {status}: {detail}" for source, status, detail in self.ingestion]
            if self.open_windows:
                lines.append(f"  Windows still to pull again ({len(self.open_windows)}; each night retries them "
                             "first, or now: python -m ingestion repull):")
                lines += [f"    #{issue} {source} [{start}, {end}): {why}"
                          for issue, source, start, end, why in self.open_windows[:TOP_UNITS]]
            lines += ["  Kept whole: raw.quarantined_pages (pages), raw.quarantine (records), audit.window_issues.", ""]
        if self.rejected_workbooks:
            lines.append("Finance workbooks rejected (kept in the inbox, recorded in raw.finance_files):")
            lines += [f"  {reason}" for reason in self.rejected_workbooks[:TOP_UNITS]]
            lines.append("")
        if self.quarantined:
            lines.append("Records quarantined this run (raw.quarantine: bytes as received, with the reason):")
            lines += [f"  {source}: {n:,} × {reason}" for source, reason, n in self.quarantined[:TOP_UNITS]]
            lines.append("")
        if self.as_of and self.out_of_order:
            lines.append(f"Dossier issues as of {self.as_of}, a night earlier than the latest validated: "
                         f"{self.open_total:,} found (dq.findings); the issues' history follows the nights in "
                         "order and is unchanged.")
        elif self.as_of:
            since = f" since {self.previous_as_of}" if self.previous_as_of else " (first validation)"
            lines.append(f"Dossier issues as of {self.as_of}: {self.open_total:,} open, "
                         f"{self.new_total:,} new and {self.resolved_total:,} resolved{since}.")
            for heading, rows in (("New by rule", self.new_by_rule), ("Resolved by rule", self.resolved_by_rule)):
                if rows:
                    lines.append(f"{heading}:")
                    lines += [f"  {rule} {n:>7,}  {TITLES.get(rule, '')}" for rule, n in rows]
            for heading, rows in (("New by unit", self.new_by_unit), ("Resolved by unit", self.resolved_by_unit)):
                if rows:
                    lines.append(f"{heading} (top {TOP_UNITS}):")
                    lines += [f"  {n:>7,}  {unit or '(no unit)'} {name or ''}".rstrip() for unit, name, n in rows]
            if self.backlog:
                lines.append(f"Largest backlog (open issues, top {TOP_UNITS}):")
                lines += [f"  {n:>7,}  {unit or '(no unit)'} {name or ''} — mostly {rule}".replace("  —", " —")
                          for unit, name, n, rule in self.backlog]
            if self.finance_open or self.finance_new:
                new = ", ".join(f"{rule} {n}" for rule, n in self.finance_new) or "none"
                lines.append(f"Disbursement workbooks: {self.finance_open:,} rows flagged; new: {new}.")
            lines.append("Lists: marts.fct_dq_issue (is_open), dq.issue_intervals (observed values); "
                         "Data Docs: <REPORTS_DIR>/data-docs/index.html.")
        return "\n".join(lines) + "\n"


def _latest_two(conn: psycopg.Connection, suite: str, run_id: str) -> tuple[tuple | None, tuple | None]:
    """This run's validation of ``suite`` (id, as_of) and the previous completed one before it."""
    current = conn.execute(
        "SELECT validation_id, as_of FROM dq.validation_runs WHERE validation_id = %s AND status IN "
        "('passed', 'warnings')", (f"{run_id}/{suite}",)).fetchone()
    if current is None:
        return None, None
    previous = conn.execute(
        "SELECT validation_id, as_of FROM dq.validation_runs WHERE suite = %s AND status IN ('passed', 'warnings') "
        "AND validation_id <> %s AND (as_of, finished_at) < (%s, (SELECT finished_at FROM dq.validation_runs "
        "WHERE validation_id = %s)) ORDER BY as_of DESC, finished_at DESC LIMIT 1",
        (suite, current[0], current[1], current[0])).fetchone()
    return current, previous


_DIFF = """
SELECT {group}, count(*) AS n
FROM dq.findings a
{join}
WHERE a.validation_id = %(a)s
  AND NOT EXISTS (SELECT 1 FROM dq.findings b
                  WHERE b.validation_id = %(b)s AND b.rule_id = a.rule_id AND b.record_key = a.record_key)
GROUP BY {group}
ORDER BY n DESC, 1
"""
_UNIT_JOIN = "LEFT JOIN staging.stg_api__units u ON u.unit_code = a.unit_code"


def _diff(conn, a: str, b: str | None, by_unit: bool) -> list[tuple]:
    """Findings of validation ``a`` that validation ``b`` does not have, by rule or by unit."""
    group = "a.unit_code, u.unit_name" if by_unit else "a.rule_id"
    sql = _DIFF.format(group=group, join=_UNIT_JOIN if by_unit else "")
    rows = conn.execute(sql + (f" LIMIT {TOP_UNITS}" if by_unit else ""), {"a": a, "b": b or ""}).fetchall()
    return [tuple(r) for r in rows]


def _ingestion(conn: psycopg.Connection, digest: Digest) -> None:
    """What the run's ingestion could not do (see ``Digest.ingestion``)."""
    run_id = digest.run_id
    digest.ingestion = [tuple(r) for r in conn.execute(
        "SELECT source, status, coalesce(detail, '') FROM audit.ingest_runs WHERE run_id = %s AND status <> 'complete' "
        "ORDER BY source <> 'dossiers', source, window_start", (run_id,))]
    digest.open_windows = [(i, s, f"{a:%Y-%m-%d %H:%M}", f"{b:%Y-%m-%d %H:%M}", why[:200]) for i, s, a, b, why in
                           conn.execute("SELECT issue_id, source, window_start, window_end, kind || ': ' || reason "
                                        "FROM audit.window_issues WHERE resolved_at IS NULL ORDER BY window_start")]
    digest.quarantined = [tuple(r) for r in conn.execute(
        "SELECT source, split_part(reason, ':', 1), sum(times_seen_last_run)::int FROM raw.quarantine "
        "WHERE last_run_id = %s GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2", (run_id,))]
    # Where, not what: the reasons themselves may quote cells (raw.finance_files has them).
    digest.rejected_workbooks = [r for (r,) in conn.execute(
        "SELECT path || coalesce(' (row ' || reject_row || coalesce(', column ' || reject_column, '') || ')', '') "
        "FROM raw.finance_files WHERE run_id = %s AND status = 'rejected' ORDER BY path", (run_id,))]


_OPEN_AT = """
SELECT {select} FROM (
    SELECT * FROM dq.issue_intervals WHERE closed_seq IS NULL AND NOT voided AND opened_seq <= %(seq)s
    UNION ALL
    SELECT * FROM dq.issue_intervals WHERE closed_seq > %(seq)s AND NOT voided AND opened_seq <= %(seq)s
) AS i
{join}
{tail}
"""
_CHANGED = """
SELECT {group}, count(*) AS n FROM dq.issue_intervals AS i
{join}
WHERE i.{column} = %(seq)s AND NOT i.voided
GROUP BY {group}
ORDER BY n DESC, 1
"""
_INTERVAL_UNITS = "LEFT JOIN staging.stg_api__units u ON u.unit_code = i.unit_code"


def _dossier_issues(conn: psycopg.Connection, digest: Digest) -> None:
    """The dossier issues of the run's validation, from the intervals it opened and closed (its change set):
    what is open after it, what it found new and resolved, the largest backlogs."""
    current = conn.execute(
        "SELECT validation_id, as_of, seq, batch_kind FROM dq.validation_runs WHERE validation_id = %s "
        "AND status IN ('passed', 'warnings')", (f"{digest.run_id}/dossiers",)).fetchone()
    if current is None:
        return
    validation_id, as_of, seq, kind = current
    digest.as_of = f"{as_of:%Y-%m-%d %H:%M}"
    if kind == OUT_OF_ORDER:
        # a night earlier than the latest one validated again: its findings, not the issues' history
        digest.out_of_order = True
        digest.open_total = conn.execute("SELECT count(*) FROM dq.findings WHERE validation_id = %s",
                                         (validation_id,)).fetchone()[0]
        return
    previous = conn.execute(
        "SELECT as_of FROM dq.validation_runs WHERE suite = 'dossiers' AND status IN ('passed', 'warnings') "
        "AND batch_kind IN (%s, %s) AND seq < %s ORDER BY seq DESC LIMIT 1", (FULL, CHANGES, seq)).fetchone()
    digest.previous_as_of = f"{previous[0]:%Y-%m-%d %H:%M}" if previous else None
    at = {"seq": seq}
    digest.open_total = conn.execute(_OPEN_AT.format(select="count(*)", join="", tail=""), at).fetchone()[0]
    for column, by_rule, by_unit in (("opened_seq", "new_by_rule", "new_by_unit"),
                                     ("closed_seq", "resolved_by_rule", "resolved_by_unit")):
        setattr(digest, by_rule, [tuple(r) for r in conn.execute(
            _CHANGED.format(group="i.rule_id", join="", column=column), at)])
        setattr(digest, by_unit, [tuple(r) for r in conn.execute(
            _CHANGED.format(group="i.unit_code, u.unit_name", join=_INTERVAL_UNITS, column=column)
            + f" LIMIT {TOP_UNITS}", at)])
    digest.backlog = [tuple(r) for r in conn.execute(_OPEN_AT.format(
        select="i.unit_code, min(u.unit_name), count(*) AS n, mode() WITHIN GROUP (ORDER BY i.rule_id)",
        join=_INTERVAL_UNITS, tail=f"GROUP BY i.unit_code ORDER BY n DESC, 1 LIMIT {TOP_UNITS}"), at)]


def build_digest(conn: psycopg.Connection, run_id: str, failed_tasks: list[str] | None = None) -> Digest:
    digest = Digest(run_id, failed_tasks=list(failed_tasks or []))
    _ingestion(conn, digest)
    digest.critical = [tuple(r) for r in conn.execute(
        "SELECT check_id, description, unexpected_count FROM dq.expectation_results WHERE validation_id = %s "
        "AND NOT success AND severity = 'critical' ORDER BY check_id", (f"{run_id}/batch",))]
    _dossier_issues(conn, digest)
    fin_current, fin_previous = _latest_two(conn, "finance", run_id)
    if fin_current is not None:
        digest.finance_open = conn.execute("SELECT count(*) FROM dq.findings WHERE validation_id = %s",
                                           (fin_current[0],)).fetchone()[0]
        digest.finance_new = _diff(conn, fin_current[0], fin_previous[0] if fin_previous else None, by_unit=False)
    return digest


def digest_paths(settings: Settings, run_date: str) -> tuple[Path, Path]:
    folder = settings.reports_dir / "dq-digest"
    return folder / f"{run_date}.txt", folder / "latest.txt"


def send_digest(conn: psycopg.Connection, run_id: str, settings: Settings, deliver: bool = True,
                failed_tasks: list[str] | None = None) -> dict:
    """Build the run's digest, store and write it, and send it when something changed (or the night could
    not take in everything)."""
    from pipeline.alerts import deliver_message

    digest = build_digest(conn, run_id, failed_tasks)
    body = digest.text()
    run_date = conn.execute("SELECT coalesce((SELECT run_date::text FROM audit.pipeline_runs WHERE run_id = %s), "
                            "current_date::text)", (run_id,)).fetchone()[0]
    dated, latest = digest_paths(settings, run_date)
    from pipeline.files import write_atomic  # whole files only: a reader never sees half a digest

    write_atomic(dated, body)
    write_atomic(latest, body)
    if digest.changed and deliver:
        outcome = deliver_message(digest.subject(), body)
    else:
        outcome = {"sent": "no: nothing changed" if not digest.changed else "no: delivery off"}
    conn.execute("INSERT INTO dq.digests (run_id, changed, delivered, body) VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT (run_id) DO UPDATE SET created_at = now(), changed = EXCLUDED.changed, "
                 "delivered = EXCLUDED.delivered, body = EXCLUDED.body",
                 (run_id, digest.changed, orjson.dumps(outcome).decode(), body))
    log.info("data-quality digest of %s: changed=%s, %s", run_id, digest.changed, outcome)
    return {"changed": digest.changed, "new": digest.new_total, "resolved": digest.resolved_total,
            "open": digest.open_total, "critical": len(digest.critical), "file": str(dated), "delivered": outcome,
            "incomplete": digest.incomplete}
