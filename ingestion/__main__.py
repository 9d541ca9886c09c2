"""What the night could not take in, and pulling it again once the source is fixed: ``python -m ingestion``.

  issues
      The windows still to pull again (``audit.window_issues``: a page no parser could read, a listing
      that broke the contract, a count that did not reconcile), the pages kept whole
      (``raw.quarantined_pages``), the reference lists refused, and the quarantined records by reason.
  repull [--issue ID ...]
      Pull every open window (or those given) again now, under the warehouse's lease, as a run of its own
      (``repull-<time>``); a window whose whole range completes and reconciles is closed. The marts show it
      after the next nightly run (or ``make run``), whose batch checks cover what this landed.
  refresh-reference [--accept units,procedures,delegations|all]
      Refresh the reference lists now; ``--accept`` takes a deliberate large change (a list that lost more
      than ``REFERENCE_MAX_MISSING_SHARE`` of its records) that the nightly run refused.

Every night also pulls the open windows again first, so ``repull`` is only needed to recover before the
next night. The warehouse and the API come from the usual variables (``pipeline/settings.py``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime


def _print_issues(settings) -> int:
    import psycopg

    with psycopg.connect(settings.warehouse_url) as conn:
        windows = conn.execute(
            "SELECT issue_id, source, partition, window_start, window_end, kind, attempts, first_run_id, "
            "left(reason, 160), page_id FROM audit.window_issues WHERE resolved_at IS NULL ORDER BY window_start"
        ).fetchall()
        pages = conn.execute("SELECT page_id, run_id, request, page_number, attempts, body_bytes, left(reason, 120) "
                             "FROM raw.quarantined_pages ORDER BY page_id DESC LIMIT 20").fetchall()
        refused = conn.execute("SELECT run_id, source, left(detail, 200) FROM audit.ingest_runs WHERE status = "
                               "'refused' ORDER BY finished_at DESC LIMIT 10").fetchall()
        records = conn.execute("SELECT source, disposition, split_part(reason, ':', 1), count(*), sum(times_seen) "
                               "FROM raw.quarantine GROUP BY 1, 2, 3 ORDER BY 4 DESC").fetchall()
    print(f"Windows to pull again: {len(windows)}" + (" (python -m ingestion repull)" if windows else ""))
    for issue, source, partition, start, end, kind, attempts, first, reason, page in windows:
        print(f"  #{issue} {source}/{partition} [{start}, {end}) {kind}, {attempts} attempt(s) since run {first}"
              + (f", page #{page} kept" if page else "") + f": {reason}")
    print(f"Pages kept whole (latest {len(pages)}; raw.quarantined_pages):")
    for page, run, request, number, attempts, size, reason in pages:
        print(f"  #{page} run {run} page {number} ({size or 0:,} bytes, {attempts} attempts): {request} — {reason}")
    if refused:
        print("Reference lists refused (yesterday's versions stayed current):")
        for run, source, detail in refused:
            print(f"  run {run} {source}: {detail}")
    print("Quarantined records (raw.quarantine):")
    for source, disposition, reason, distinct, seen in records:
        print(f"  {source:<12} {disposition:<22} {distinct:>6} distinct, {seen:>7} received: {reason}")
    return 0


def _repull(settings, issue_ids: list[int]) -> int:
    import psycopg

    from ingestion import loads
    from ingestion.client import ProcedureApiClient
    from ingestion.landing import COMPLETE, land_dossiers, resolve_issue
    from pipeline import runs
    from pipeline.lease import acquire, release

    run_id = f"repull-{datetime.now():%Y%m%dT%H%M%S}"
    with psycopg.connect(settings.warehouse_url) as conn:
        rows = conn.execute("SELECT issue_id, partition, window_start, window_end FROM audit.window_issues "
                            "WHERE resolved_at IS NULL AND source = 'dossiers' "
                            "AND (cardinality(%s::bigint[]) = 0 OR issue_id = ANY(%s::bigint[])) ORDER BY window_start",
                            (issue_ids, issue_ids)).fetchall()
    if not rows:
        print("no open window to pull again")
        return 0
    acquire(settings.warehouse_url, run_id, wait_seconds=settings.lock_wait_seconds,
            ttl_seconds=settings.lock_ttl_seconds)
    status = "failed"
    try:
        now = datetime.now().replace(microsecond=0)
        runs.start_run(run_id, None, now, settings)
        client = ProcedureApiClient.from_settings(settings)
        closed = 0
        with psycopg.connect(settings.warehouse_url, autocommit=True) as conn:
            for issue_id, partition, start, end in rows:
                results = land_dossiers(conn, client, run_id, partition, start, end, settings.max_window_records,
                                        moves_watermark=False, reader=loads.dossier_reader(settings))
                done = all(r.status == COMPLETE for r in results)
                if done:
                    resolve_issue(conn, issue_id, run_id)
                    closed += 1
                landed = sum(r.new_versions for r in results)
                print(f"#{issue_id} [{start}, {end}): {'complete' if done else 'still not complete'}, "
                      f"{landed} new versions" + ("" if done else f" — {results[-1].detail}"))
        status = "success" if closed == len(rows) else "partial"
        print(f"{closed} of {len(rows)} window(s) closed by run {run_id}; the next nightly run (or make run) "
              "publishes them")
        return 0 if status == "success" else 1
    finally:
        runs.finish_run(run_id, {"repull": [r[0] for r in rows]}, settings, status=status)
        release(settings.warehouse_url, run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("issues", help="what the nights could not take in")
    repull = sub.add_parser("repull", help="pull the open windows again now")
    repull.add_argument("--issue", type=int, action="append", default=[], help="an issue id (repeatable)")
    refresh = sub.add_parser("refresh-reference", help="refresh units, procedures and delegations now")
    refresh.add_argument("--accept", default="", help="lists whose large change is deliberate (or 'all')")
    args = parser.parse_args(argv)

    from pipeline.settings import Settings, reference_sources

    settings = Settings.from_env()
    if args.command == "issues":
        return _print_issues(settings)
    if args.command == "repull":
        return _repull(settings, args.issue)
    from ingestion import loads
    from pipeline import runs
    from pipeline.lease import acquire, release

    settings = replace(settings, reference_accept=settings.reference_accept | reference_sources(args.accept))
    run_id = f"reference-{datetime.now():%Y%m%dT%H%M%S}"
    acquire(settings.warehouse_url, run_id, wait_seconds=settings.lock_wait_seconds,
            ttl_seconds=settings.lock_ttl_seconds)
    try:
        runs.start_run(run_id, None, datetime.now().replace(microsecond=0), settings)
        result = loads.refresh_reference(run_id, settings=settings)
        for source, outcome in result.items():
            print(f"{source}: {outcome['status']}, {outcome['new_versions']} new, {outcome['closed']} closed"
                  + (f" — {outcome['detail']}" if outcome.get("detail") else ""))
        ok = all(o["status"] == "complete" for o in result.values())
        runs.finish_run(run_id, {"reference": result}, settings, status="success" if ok else "partial")
        return 0 if ok else 1
    finally:
        release(settings.warehouse_url, run_id)


if __name__ == "__main__":
    sys.exit(main())
