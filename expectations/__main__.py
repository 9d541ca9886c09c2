"""Run the data-quality stage by hand: ``python -m expectations <command>``.

  validate [--as-of 2023-10-01T01:00] [--run-id ID] [--quiet]
      Validate the warehouse as it is (run dbt's staging and dq models first: ``python -m ops.dbt build
      --select path:models/staging path:models/dq``), store the results in ``dq``, write Data Docs and the
      digest; ``--quiet`` does not send the digest. Exit 0 passed or warnings, 1 error, 3 critical.
  digest --run-id ID
      Print the stored digest of a run.
  rules
      List the rules with their severity.
  stopped
      The runs whose batch a critical check stopped, and whether they were released.
  release --run-id ID [--note TEXT]
      Accept a stopped batch once reviewed: the next night's batch checks start after it, and what it
      landed is published by that night. (Until then every night checks it again and stops too.)

The warehouse is ``WAREHOUSE_WRITER_URL`` (or the private cluster); see ``pipeline/settings.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expectations", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate")
    validate.add_argument("--as-of", help="local ISO date-time (default: now, Asia/Ho_Chi_Minh)")
    validate.add_argument("--run-id", help="default: manual-<as-of>")
    validate.add_argument("--quiet", action="store_true", help="do not send the digest")
    digest = sub.add_parser("digest")
    digest.add_argument("--run-id", required=True)
    sub.add_parser("rules")
    sub.add_parser("stopped")
    release = sub.add_parser("release")
    release.add_argument("--run-id", required=True)
    release.add_argument("--note", help="why the batch is accepted (kept in dq.batch_releases)")
    args = parser.parse_args(argv)

    if args.command == "rules":
        from expectations.rules import DOSSIER_RULES, FINANCE_RULES, batch_rules

        for rule in (*DOSSIER_RULES, *(r for rules in batch_rules("<run>").values() for r in rules), *FINANCE_RULES):
            print(f"{rule.rule_id}  {rule.severity:<8}  {rule.title}")
        print("BAT02  critical  A column the rules and the marts need is missing from the staged dossiers")
        return 0

    import psycopg

    from pipeline.settings import LOCAL_TZ, Settings

    settings = Settings.from_env()
    if args.command == "stopped":
        with psycopg.connect(settings.warehouse_url) as conn:
            rows = conn.execute(
                "SELECT v.run_id, v.as_of, string_agg(e.check_id || ' (' || coalesce(e.unexpected_count::text, '?') "
                "|| ')', ', ' ORDER BY e.check_id), b.released_at, b.released_by FROM dq.validation_runs v "
                "JOIN dq.expectation_results e USING (validation_id) LEFT JOIN dq.batch_releases b USING (run_id) "
                "WHERE v.suite = 'batch' AND v.status = 'failed' AND NOT e.success "
                "GROUP BY v.run_id, v.as_of, b.released_at, b.released_by ORDER BY v.as_of").fetchall()
        if not rows:
            print("no stopped batch")
        for run_id, as_of, checks, released_at, released_by in rows:
            state = f"released {released_at:%Y-%m-%d %H:%M} by {released_by}" if released_at else "not released"
            print(f"{run_id}  as of {as_of:%Y-%m-%d %H:%M}  {checks}  {state}")
        return 0
    if args.command == "release":
        import getpass

        from expectations.validate import release_batch

        if not release_batch(settings.warehouse_url, args.run_id, getpass.getuser(), args.note):
            print(f"run {args.run_id} has no stopped batch", file=sys.stderr)
            return 1
        print(f"released the batch of run {args.run_id}: the next night publishes what it landed")
        return 0
    if args.command == "digest":
        with psycopg.connect(settings.warehouse_url) as conn:
            row = conn.execute("SELECT body FROM dq.digests WHERE run_id = %s", (args.run_id,)).fetchone()
        if row is None:
            print(f"no digest for run {args.run_id}", file=sys.stderr)
            return 1
        print(row[0], end="")
        return 0

    from zoneinfo import ZoneInfo

    from expectations.validate import CriticalDataQualityError, DataQualityError, run_data_quality
    from pipeline.runs import register_run

    as_of = datetime.fromisoformat(args.as_of) if args.as_of else \
        datetime.now(ZoneInfo(LOCAL_TZ)).replace(tzinfo=None, microsecond=0)
    run_id = args.run_id or f"manual-{as_of:%Y%m%dT%H%M%S}"
    with psycopg.connect(settings.warehouse_url, autocommit=True) as conn:
        register_run(conn, run_id, as_of)
    try:
        summary = run_data_quality(run_id, as_of, settings, notify=not args.quiet)
    except CriticalDataQualityError as exc:
        print(f"CRITICAL: {exc}", file=sys.stderr)
        return 3
    except DataQualityError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
