"""A pipeline run's bookkeeping: its start (with the warehouse's lease), its end (the digest, the night's
alert, its status, the lease released) and its printable summary. Called by the nightly DAG's first and
last tasks, by ``pipeline.night`` (a night without Airflow) and by the commands that write the warehouse
outside a night (``python -m ingestion repull``, ``refresh-reference``).
"""

from __future__ import annotations

from datetime import datetime

import orjson
import psycopg

from pipeline.db import connect
from pipeline.settings import Settings, current

APPLICATION = "cchc-runs"

def start_run(run_id: str, interval_start: datetime | None, interval_end: datetime,
              settings: Settings | None = None) -> dict:
    """Record the run in ``audit.pipeline_runs`` (a rerun of the same run id starts it again)."""
    settings = current(settings)
    with connect(settings, APPLICATION) as conn:
        conn.execute(
            "INSERT INTO audit.pipeline_runs (run_id, run_date, interval_start, interval_end) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET started_at = now(), finished_at = NULL, status = 'running'",
            (run_id, interval_end.date(), interval_start, interval_end))
    return {"run_id": run_id, "interval_start": interval_start and interval_start.isoformat(),
            "interval_end": interval_end.isoformat()}



def register_run(conn: psycopg.Connection, run_id: str, interval_end: datetime) -> None:
    """Record a run started by hand (e.g. ``python -m expectations validate``) unless it is recorded already:
    the rows its stages write refer to it."""
    conn.execute("INSERT INTO audit.pipeline_runs (run_id, run_date, interval_end) VALUES (%s, %s, %s) "
                 "ON CONFLICT (run_id) DO NOTHING", (run_id, interval_end.date(), interval_end))


def stop_run(conn: psycopg.Connection, run_id: str, results: dict) -> None:
    """Record the run as failed now, ``results`` added to its summary: a stage that stops the night (the
    data-quality gate) says so at once, before the night's last task closes the run."""
    conn.execute("UPDATE audit.pipeline_runs SET status = 'failed', finished_at = now(), "
                 "summary = coalesce(summary, '{}'::jsonb) || %s::jsonb WHERE run_id = %s",
                 (orjson.dumps(results, default=str).decode(), run_id))


def begin_night(run_id: str, interval_start: datetime | None, interval_end: datetime,
                settings: Settings | None = None) -> dict:
    """The first step of a nightly run: take the warehouse's lease (``pipeline.lease``: waiting for another
    run to finish, failing after ``PIPELINE_LOCK_WAIT_SECONDS`` with a message naming it), then record the
    run."""
    from pipeline.lease import acquire

    settings = current(settings)
    lease = acquire(settings.warehouse_url, run_id, wait_seconds=settings.lock_wait_seconds,
                    ttl_seconds=settings.lock_ttl_seconds)
    return {**start_run(run_id, interval_start, interval_end, settings), "lease": lease.holder}



def summarize(conn: psycopg.Connection, run_id: str) -> list[tuple]:
    """Per source, what the run did: (source, windows, fetched, landed, new versions, quarantined, retries, s)."""
    return conn.execute(
        "SELECT source, count(*), sum(fetched), sum(landed), sum(new_versions), sum(quarantined), sum(retries), "
        "round(sum(seconds), 1) FROM audit.ingest_runs WHERE run_id = %s GROUP BY source ORDER BY source",
        (run_id,)).fetchall()



def finish_night(run_id: str, as_of: datetime, results: dict, states: dict[str, str],
                 settings: Settings | None = None) -> dict:
    """The last step of a nightly run, however the night went (``states``: every task's state).

    Sends the data-quality digest (leading with what the night could not do: a critical stop, windows
    not complete, refused lists, rejected workbooks), one alert when the night's data needs attention,
    closes the run in ``audit.pipeline_runs`` — ``success``; ``incomplete`` (every task succeeded, but a
    window, a list or a workbook could not be taken in: what was good is published, the rest is named);
    ``partial`` (a task failed but the dossier marts were published); ``failed`` — and releases the
    warehouse's lease. Returns the printable summary, the status and the failed tasks."""
    from expectations.digest import send_digest
    from pipeline.alerts import notify_event
    from pipeline.lease import release

    settings = current(settings)
    failed = sorted(t for t, s in states.items() if s == "failed" and t != "finish_run")
    if not failed:
        status = "success"
    elif states.get("marts_published") == "success":
        status = "partial"
    else:
        status = "failed"
    with connect(settings, APPLICATION) as conn:
        digest = send_digest(conn, run_id, settings, failed_tasks=failed)
        problems = night_problems(conn, run_id)
    if status == "success" and problems:
        status = "incomplete"
    results = {**results, "digest": digest, "failed_tasks": failed, "problems": problems}
    if problems:
        notify_event("night_incomplete", f"Nightly run {run_id}: " + "; ".join(problems[:3])
                     + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""),
                     {"run_id": run_id, "problems": problems, "failed_tasks": failed})
    summary = finish_run(run_id, results, settings, status=status)
    release(settings.warehouse_url, run_id)
    return {"summary": summary, "status": status, "failed_tasks": failed}



def night_problems(conn: psycopg.Connection, run_id: str) -> list[str]:
    """What the run's ingestion could not do, one line each: windows not complete, lists not refreshed,
    pages kept whole, workbooks rejected."""
    lines = [f"{source} {status}: {detail}" for source, status, detail in conn.execute(
        "SELECT source, status, coalesce(detail, '') FROM audit.ingest_runs WHERE run_id = %s "
        "AND status <> 'complete' ORDER BY source <> 'dossiers', source, window_start", (run_id,))]
    rejected = conn.execute("SELECT count(*) FROM raw.finance_files WHERE run_id = %s AND status = 'rejected'",
                            (run_id,)).fetchone()[0]
    if rejected:
        lines.append(f"{rejected} finance workbook(s) rejected (raw.finance_files)")
    return lines



def finish_run(run_id: str, results: dict, settings: Settings | None = None, status: str = "success") -> str:
    """Close the run in ``audit.pipeline_runs`` and return the printable summary of what it did."""
    settings = current(settings)
    with connect(settings, APPLICATION) as conn:
        rows = summarize(conn, run_id)
        conn.execute("UPDATE audit.pipeline_runs SET finished_at = now(), status = %s, summary = %s "
                     "WHERE run_id = %s", (status, orjson.dumps(results, default=str).decode(), run_id))
        elapsed = conn.execute("SELECT extract(epoch FROM finished_at - started_at) FROM audit.pipeline_runs "
                               "WHERE run_id = %s", (run_id,)).fetchone()
    lines = [f"Run {run_id}", f"{'source':<12}{'windows':>8}{'fetched':>10}{'landed':>10}{'new versions':>14}"
             f"{'quarantined':>13}{'retries':>9}{'seconds':>9}"]
    for source, n, fetched, landed, new, quarantined, retries, seconds in rows:
        lines.append(f"{source:<12}{n:>8}{fetched:>10}{landed:>10}{new:>14}{quarantined:>13}{retries:>9}{seconds:>9}")
    finance = results.get("workbooks") or {}
    if finance:
        lines.append(f"workbooks: {finance.get('loaded', 0)} loaded, {finance.get('rejected', 0)} rejected, "
                     f"{finance.get('skipped', 0)} skipped, {finance.get('rows', 0)} rows")
        for f in finance.get("files", []):
            if f.get("status") == "rejected" and f.get("reason"):
                lines.append(f"  rejected: {f['reason']}")
    quality = results.get("data_quality") or {}
    for problem in results.get("problems") or []:
        lines.append(f"NOT COMPLETE: {problem}")
    if results.get("failed_tasks"):
        lines.append(f"failed tasks: {', '.join(results['failed_tasks'])}")
    if quality:
        digest = results.get("digest") or quality.get("digest") or {}
        lines.append(f"data quality: batch {quality.get('batch', {}).get('status')}, "
                     f"{digest.get('open', 0)} open dossier issues ({digest.get('new', 0)} new, "
                     f"{digest.get('resolved', 0)} resolved), {quality.get('seconds')}s; "
                     f"digest {digest.get('file')}; Data Docs {quality.get('data_docs')}")
    if elapsed and elapsed[0] is not None:
        lines.append(f"total {float(elapsed[0]):.1f}s")
    return "\n".join(lines)




def last_run(conn: psycopg.Connection) -> dict | None:
    """The latest run recorded in ``audit.pipeline_runs`` (by start): its id, night, status, start, end,
    seconds, problems and failed tasks; ``None`` before the first run."""
    row = conn.execute(
        "SELECT run_id, run_date, status, started_at, finished_at, "
        "extract(epoch FROM coalesce(finished_at, now()) - started_at), "
        "coalesce(summary->'problems', '[]'::jsonb), coalesce(summary->'failed_tasks', '[]'::jsonb), "
        "extract(epoch FROM now() - coalesce(finished_at, started_at)) "
        "FROM audit.pipeline_runs ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        return None
    keys = ("run_id", "run_date", "status", "started_at", "finished_at", "seconds", "problems", "failed_tasks",
            "age_seconds")
    return dict(zip(keys, row, strict=True))


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def status_lines(settings: Settings | None = None) -> list[str]:
    """``make status``'s pipeline part: the last run's state and when it ran, what it could not do, and who
    holds the warehouse's lease now."""
    from zoneinfo import ZoneInfo

    from pipeline.lease import read
    from pipeline.settings import LOCAL_TZ

    settings = current(settings)
    tz = ZoneInfo(LOCAL_TZ)
    # a status command answers quickly, also when the warehouse is far or down
    with psycopg.connect(settings.warehouse_url, autocommit=True, connect_timeout=5,
                         application_name="cchc-status") as conn:
        run = last_run(conn)
    if run is None:
        lines = ["last run: none yet (make run runs the first night)"]
    else:
        when = run["finished_at"] or run["started_at"]
        verb = "finished" if run["finished_at"] else "started"
        lines = [f"last run: {run['run_id']} (night of {run['run_date']}): {run['status'].upper()}, "
                 f"{verb} {when.astimezone(tz):%Y-%m-%d %H:%M} {LOCAL_TZ} ({_ago(run['age_seconds'])}), "
                 f"{float(run['seconds']):.0f} s"]
        lines += [f"  failed task: {t}" for t in run["failed_tasks"]]
        lines += [f"  NOT COMPLETE: {p}" for p in run["problems"]]
    held = read(settings.warehouse_url)
    lines.append(f"lease: held by {held.describe()}" if held else "lease: free")
    return lines
