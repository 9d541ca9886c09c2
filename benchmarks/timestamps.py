"""Timestamp-decoding benchmark (``make bench-timestamps``; not a test): what one API timestamp costs the
staging models — the project's ``parse_ts`` macro (compiled by dbt, as the models use it) against the former
decoder as the baseline (the text taken apart as six integers, validated, then ``make_timestamp``), over the
same table of JSON values in one warehouse (production server settings), one process, no parallel worker.

Both are checked to agree on every value first (valid ones, and invalid: a 30 February, month 13, hour 24,
second 60, the year 0000, letters, the wrong length), so the figure compares equals. Last line:
``parse_ts_us=… baseline_us=… speedup=…`` (microseconds a value, the JSON lookup included).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from ops.dbt import PARSE_ONLY_URL, run_dbt
from tests.support.postgres import throwaway_warehouse

EDGES = ["20240229235959", "20230229000000", "20240230000000", "20241301000000", "20240100000000",
         "20240131240000", "20240131236000", "20240131235960", "00000101000000", "00010101000000",
         "20240431000000", "20240430000000", "2024013123595", "202401312359590", "2024013123595a", "",
         "19000229000000", "20000229000000", "99991231235959", "2024-01-31T23:59"]


def baseline(column: str) -> str:
    """The former parse_ts: six substrings as integers, a calendar check, ``make_timestamp``."""
    y, mo, d, h, mi, s = (f"substr({column}, {i}, {n})::int" for i, n in ((1, 4), (5, 2), (7, 2), (9, 2), (11, 2),
                                                                          (13, 2)))
    days = (f"case when {mo} = 2 then case when ({y} % 4 = 0 and {y} % 100 <> 0) or {y} % 400 = 0 then 29 "
            f"else 28 end when {mo} in (4, 6, 9, 11) then 30 else 31 end")
    return (f"case when {column} ~ '^[0-9]{{14}}$' then case when {y} >= 1 and {mo} between 1 and 12 "
            f"and {d} between 1 and {days} and {h} <= 23 and {mi} <= 59 and {s} <= 59 "
            f"then make_timestamp({y}, {mo}, {d}, {h}, {mi}, {s}) end end")


def project_parse_ts(column: str) -> str:
    """The macro as dbt compiles it (``dbt compile --inline``), for ``column``."""
    proc = run_dbt(["compile", "--quiet", "--no-populate-cache", "--inline",
                    f"select {{{{ parse_ts(\"{column}\") }}}}"], PARSE_ONLY_URL)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt compile failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout.strip().removeprefix("select").strip()


def timed(conn: psycopg.Connection, expression: str, rounds: int) -> float:
    """Best of ``rounds``: seconds to evaluate ``expression`` on every row of ``values``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        conn.execute(f"select count({expression}) from values_ as v").fetchone()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="JSON values to decode")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each decoder (the best one counts)")
    args = parser.parse_args()
    column = "(v.payload -> 'NgayTiepNhan' #>> '{}')"
    mine, former = project_parse_ts(column), baseline(column)
    with tempfile.TemporaryDirectory() as tmp, throwaway_warehouse(Path(tmp), server_settings={}) as wh, \
            psycopg.connect(wh.urls["writer"], autocommit=True) as conn:
        conn.execute("set max_parallel_workers_per_gather = 0")
        conn.execute("create temporary table edges (payload jsonb)")
        conn.cursor().executemany("insert into edges values (jsonb_build_object('NgayTiepNhan', %s::text))",
                         [(e,) for e in EDGES])
        disagree = conn.execute(f"select v.payload from edges as v where ({mine}) is distinct from ({former})"
                                ).fetchall()
        if disagree:
            raise SystemExit(f"the decoders disagree on {disagree}")
        conn.execute(
            "create temporary table values_ as select jsonb_build_object('NgayTiepNhan', to_char(timestamp "
            "'2016-01-01' + (random() * 3000)::int * interval '1 day' + (random() * 86399)::int * interval "
            f"'1 second', 'YYYYMMDDHH24MISS'), 'x', repeat('y', 200)) as payload from generate_series(1, {args.rows})")
        conn.execute("analyze values_")
        lookup = timed(conn, column, args.rounds)
        new = timed(conn, mine, args.rounds)
        old = timed(conn, former, args.rounds)
    per = 1e6 / args.rows
    print(f"  {args.rows:,} values; the JSON lookup alone {lookup * per:.2f} µs a value")
    print(f"  parse_ts (the project's): {new * per:.2f} µs a value")
    print(f"  the former decoder:       {old * per:.2f} µs a value")
    print(f"parse_ts_us={new * per:.2f} baseline_us={old * per:.2f} speedup={old / new:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
