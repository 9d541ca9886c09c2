"""The pipeline's state: ``python -m pipeline status``, ``python -m pipeline lease [--break]``.

  status          the last run: its state, when it ran, what it could not do; the lease (make status)
  lease           who holds the warehouse now (the run, its process, since when, until when)
  lease --break   free it: only for a run known to be dead (killed before it could release it), when
                  the next run should not wait for the lease to expire (PIPELINE_LOCK_TTL_SECONDS)
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="the last run's state and when it ran")
    lease = sub.add_parser("lease", help="who holds the warehouse")
    lease.add_argument("--break", dest="break_it", action="store_true", help="free the lease (a dead run's)")
    args = parser.parse_args(argv)

    from pipeline.lease import break_lease, read
    from pipeline.settings import Settings

    settings = Settings.from_env()
    url = settings.warehouse_url
    if args.command == "status":
        import psycopg

        from pipeline.runs import status_lines

        try:
            print("\n".join(status_lines(settings)))
        except psycopg.OperationalError as exc:
            print(f"last run: unknown, the warehouse does not answer ({str(exc).strip().splitlines()[0]})")
            return 3
        return 0
    if args.break_it:
        freed = break_lease(url)
        print(f"freed the lease of {freed.describe()}" if freed else "the lease was free")
        return 0
    held = read(url)
    print(f"held by {held.describe()}" if held else "free: no run is writing the warehouse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
