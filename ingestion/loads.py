"""The ingestion stage's entry points, called by the nightly DAG's tasks (which only wire them).

Each function reads its configuration from ``Settings`` (environment variables, or an Airflow
connection passed in by the task) and returns a small JSON-serialisable summary for XCom and the
run log. Times passed in are naive local times (Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime

import orjson
import psycopg

from ingestion.client import ProcedureApiClient
from ingestion.landing import (
    ALL_PARTITIONS,
    COMPLETE,
    DOSSIERS,
    REFERENCE_KEYS,
    ReferencePolicy,
    WindowResult,
    advance_watermark,
    catch_up_watermark,
    land_dossier_window,
    land_dossiers,
    open_issues,
    read_watermark,
    refresh_reference_source,
    resolve_issue,
    split_window,
)
from ingestion.records import RecordReader
from ingestion.windows import plan_windows
from pipeline.db import connect
from pipeline.settings import Settings, current

log = logging.getLogger(__name__)
REMAINDER = "_remainder"  # watermark of what no partition covers, in partitioned mode


APPLICATION = "cchc-ingestion"


def refresh_reference(run_id: str, as_of: datetime | None = None, settings: Settings | None = None) -> dict:
    """Full refresh of units, procedures and delegations into ``raw.reference_versions``. A list that cannot
    be read, or that is refused (empty, or too many current records missing: ``REFERENCE_MAX_MISSING_SHARE``,
    overridden by ``REFERENCE_ACCEPT_CHANGES``), leaves yesterday's versions current and the night goes on;
    its status and reason are in the result and in ``audit.ingest_runs``. Then ``raw.unit_geography`` is
    rebuilt from the units (``ingestion.geography``; result key ``unit_geography``)."""
    settings = current(settings)
    client = ProcedureApiClient.from_settings(settings)
    as_of = as_of or datetime.now().replace(microsecond=0)
    policy = ReferencePolicy(settings.reference_max_missing_share, settings.reference_accept)
    with connect(settings, APPLICATION) as conn:
        out = {source: refresh_reference_source(conn, client, run_id, source, as_of, policy, settings.max_key_bytes)
               for source in REFERENCE_KEYS}
        from ingestion.geography import refresh_unit_geography  # shapely: only the tasks that need it import it

        out["unit_geography"] = refresh_unit_geography(conn, run_id, as_of)  # the units' centres and areas, for maps
        return out


def plan_dossier_partitions(settings: Settings | None = None) -> list[str]:
    """``["*"]`` unpartitioned (the default), or the units directly under the province (departments,
    the public-service centre, district-level units) when ``INGEST_PARTITION=district``."""
    settings = current(settings)
    if settings.partition == "none":
        return [ALL_PARTITIONS]
    client = ProcedureApiClient.from_settings(settings)
    units = [u for page in client.pages("units") for u in (orjson.loads(bytes(r)) for r in page.records)
             if isinstance(u, dict)]
    roots = {u["MaDonVi"] for u in units if not u.get("MaDonViCha")}
    return sorted(u["MaDonVi"] for u in units if u.get("MaDonViCha") in roots and not u.get("HieuLucDen"))


def _sum(results: list[dict]) -> dict:
    keys = ("pages", "fetched", "landed", "new_versions", "duplicates", "quarantined", "retries", "seconds")
    out = {k: sum(r[k] for r in results) for k in keys}
    out["windows"] = len(results)
    out["seconds"] = round(out["seconds"], 3)
    out["not_complete"] = [{"window": f"[{r['window_start']}, {r['window_end']})", "status": r["status"],
                            "detail": r["detail"]} for r in results if r.get("status", COMPLETE) != COMPLETE]
    return out


def pull_dossiers(run_id: str, partition: str, interval_end: datetime, interval_start: datetime | None = None,
                  settings: Settings | None = None) -> dict:
    """Pull the dossiers of ``partition`` from its watermark (minus the look-back) to ``interval_end`` in
    ≤31-day windows, each committed atomically with its watermark.

    Windows load in parallel (``INGEST_WORKERS`` threads, each with its own connection and API session): the
    warehouse parses each payload into JSONB, which makes one stream server-bound on one core; a second
    stream uses the other. The windows are cut to at most ``INGEST_MAX_WINDOW_RECORDS`` records before they
    are handed out (``landing.split_window``), so the workers stay busy to the end of a long pull instead of
    one of them finishing a last large window alone, and memory does not grow with the pull. The watermark
    still only passes windows that are committed (see ``landing.advance_watermark``)."""
    settings = current(settings)
    with connect(settings, APPLICATION) as conn:
        watermark = read_watermark(conn, DOSSIERS, partition)
        issues = open_issues(conn, DOSSIERS, partition)
    windows, advances = plan_windows(watermark, settings.history_start, interval_end, settings.lookback,
                                     interval_start)

    reader = dossier_reader(settings)
    local = threading.local()

    with ExitStack() as resources:
        lock = threading.Lock()

        def worker() -> tuple[ProcedureApiClient, psycopg.Connection]:
            """This thread's API session and warehouse connection, opened at its first window."""
            if getattr(local, "conn", None) is None:
                with lock:
                    local.conn = resources.enter_context(connect(settings, APPLICATION))
                local.client = ProcedureApiClient.from_settings(settings)
            return local.client, local.conn

        def log_window(r: WindowResult) -> dict:
            log.info("dossiers %s [%s, %s) %s: %d fetched, %d new versions, %d quarantined in %.1fs", partition,
                     r.window_start, r.window_end, r.status, r.fetched, r.new_versions, r.quarantined, r.seconds)
            return r.to_dict()

        def load(first: bool, start: datetime, end: datetime) -> dict:
            client, conn = worker()
            return log_window(land_dossier_window(conn, client, run_id, partition, start, end,
                                                  moves_watermark=advances, first=first, reader=reader))

        # Windows an earlier night could not complete are pulled again first, one after the other: they may
        # overlap each other and tonight's windows, which must then see what they landed (they do not move the
        # watermark).
        results: list[dict] = []
        client, conn = worker()
        for issue_id, start, end in issues:
            out = [log_window(r) for r in land_dossiers(conn, client, run_id, partition, start, end,
                                                          settings.max_window_records, moves_watermark=False,
                                                          reader=reader)]
            if all(r["status"] == COMPLETE for r in out):
                resolve_issue(conn, issue_id, run_id)
                log.info("dossiers %s [%s, %s): pulled again in full, issue %d resolved", partition, start, end,
                         issue_id)
            results += out
        planner = ProcedureApiClient.from_settings(settings)  # counts while the workers load
        with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="window") as pool:
            futures = []
            try:
                for start, end in windows:
                    for part_start, part_end in split_window(planner, partition, start, end,
                                                             settings.max_window_records):
                        futures.append(pool.submit(load, not futures, part_start, part_end))
                for future in futures:
                    results.append(future.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if advances and windows:
            catch_up_watermark(conn, DOSSIERS, partition, run_id)
    return {"partition": partition, "repulled_issues": len(issues), **_sum(results)}


def dossier_reader(settings: Settings) -> RecordReader:
    """How dossier records are classified under ``settings`` (the key length ``jsonb`` rows may have)."""
    return RecordReader("MaHoSo", "NgayCapNhat", max_key_bytes=settings.max_key_bytes)


def complete_partitions(run_id: str, interval_end: datetime, results: list[dict],
                        interval_start: datetime | None = None, settings: Settings | None = None) -> dict:
    """After a partitioned pull, land what no partition covers — dossiers of the province unit itself and of
    units the API does not list — by comparing, per window, the unfiltered total with the partitions'
    totals and re-pulling unfiltered only the windows that differ. A no-op when unpartitioned."""
    settings = current(settings)
    partitions = [r["partition"] for r in results]
    if partitions == [ALL_PARTITIONS]:
        return {"partition": REMAINDER, "skipped": True, **_sum([])}
    client = ProcedureApiClient.from_settings(settings)
    pulled = []
    with connect(settings, APPLICATION) as conn:
        watermark = conn.execute("SELECT watermark FROM audit.watermarks WHERE source = %s AND partition = %s",
                                 (DOSSIERS, REMAINDER)).fetchone()
        windows, advances = plan_windows(watermark[0] if watermark else None, settings.history_start, interval_end,
                                         settings.lookback, interval_start)
        for start, end in windows:
            params = {"updated_from": start.strftime("%Y%m%d%H%M%S"), "updated_to": end.strftime("%Y%m%d%H%M%S")}
            covered = sum(client.count(DOSSIERS, {**params, "don_vi": p}) for p in partitions)
            if client.count(DOSSIERS, params) != covered:
                pulled += [r.to_dict() for r in land_dossiers(conn, client, run_id, ALL_PARTITIONS, start, end,
                                                              settings.max_window_records, moves_watermark=False,
                                                              reader=dossier_reader(settings))]
            if advances:
                with conn.transaction(), conn.cursor() as cur:
                    advance_watermark(cur, DOSSIERS, REMAINDER, run_id, start, end, first=True)
    return {"partition": REMAINDER, **_sum(pulled)}


def load_workbooks(run_id: str, settings: Settings | None = None) -> dict:
    """Load new or re-issued finance workbooks from the inbox."""
    from ingestion.finance import load_inbox

    settings = current(settings)
    return load_inbox(settings.warehouse_url, settings.finance_inbox, run_id, settings.finance_max_file_bytes,
                      settings.finance_max_uncompressed_bytes).to_dict()



