"""Reports from the warehouse's marts.

    python -m publication summary [--run-id ID]                 # a night's summary on the terminal
    python -m publication report [--out DIR] [--as-of DATE]     # the HTML monitoring report
    python -m publication monthly --month 2023-09 [--out DIR]   # the monthly publication (HTML + XLSX)

The warehouse is ``WAREHOUSE_WRITER_URL``, else the configured warehouse's writer URL
(``warehouse.resolve_url("writer")``). Files go to ``REPORTS_DIR`` (default ``<project>/reports``): the
report to ``report/``, the publication to ``cong-khai/``; ``--out`` names another folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pipeline.settings import reports_dir, writer_url


def _month(text: str) -> date:
    try:
        return date.fromisoformat(text if len(text) > 7 else f"{text}-01").replace(day=1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month: {text!r} (expected YYYY-MM)") from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (expected YYYY-MM-DD)") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m publication", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summary", help="what a run loaded and the headline figures of the marts")
    s.add_argument("--run-id", help="the pipeline run (default: the latest)")
    r = sub.add_parser("report", help="the self-contained HTML monitoring report")
    r.add_argument("--out", type=Path, help="folder (default: $REPORTS_DIR/report)")
    r.add_argument("--as-of", type=_day, help="figures as of this date (default: the marts' own as-of date)")
    m = sub.add_parser("monthly", help="the monthly publication (công khai) of the ranking, HTML and XLSX")
    m.add_argument("--month", type=_month, required=True, help="YYYY-MM")
    m.add_argument("--out", type=Path, help="folder (default: $REPORTS_DIR/cong-khai)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "summary":
            from publication.summary import build_summary

            print(build_summary(writer_url(), args.run_id))
        elif args.command == "report":
            from publication.report import write_report

            path = write_report(writer_url(), args.out or reports_dir() / "report", args.as_of)
            print(f"report: {path} (also {path.parent / 'latest.html'})")
        else:
            from publication.monthly import write_publication

            for path in write_publication(writer_url(), args.month, args.out or reports_dir() / "cong-khai"):
                print(f"publication: {path}")
    except (LookupError, RuntimeError) as exc:
        print(f"python -m publication {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
