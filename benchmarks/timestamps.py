"""Timestamp-decoding benchmark (``make bench-timestamps``; not a test): what one API timestamp costs the
staging decoders — the project's macros as the decoders use them (``ts_digits`` once a value in a projection
of its own, then ``ts_from_digits``, compiled by dbt) against two baselines: the single regular expression
and ISO 8601 cast the decoders used before, and the decoder before that (the text taken apart as six
integers, validated, then ``make_timestamp``), over the same table of timestamp texts in one warehouse
(production server settings), one process, no parallel worker.

All three are checked to agree on every value first (valid ones, and invalid: a 30 February, month 13, hour
24, second 60, the year 0000, letters, a sign, spaces, the wrong length), so the figure compares equals.
Last line: ``parse_ts_us=… regex_us=… baseline_us=… speedup=…`` (microseconds a value; the speedup is
against the regular expression).
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
         "19000229000000", "20000229000000", "99991231235959", "2024-01-31T23:59", "+2024013123595",
         " 20240131235959", "2024013123595 ", "2024 131235959", "-2024013123595", "20240131235959.5",
         "٢٠٢٤٠١٣١٢٣٥٩٥٩", None]


def regex_former(column: str) -> str:
    """The parse_ts before the arithmetic one: one regular expression for the shape and the ranges, the days
    29–31 checked against their month, then PostgreSQL's ISO 8601 cast."""
    day, month = f"substr({column}, 7, 2)", f"substr({column}, 5, 2)"
    year = f"substr({column}, 1, 4)::int"
    has_day = (f"({day} <= '28' or case {month} when '02' then {day} = '29' and (({year} % 4 = 0 and {year} % 100 "
               f"<> 0) or {year} % 400 = 0) when '04' then {day} <> '31' when '06' then {day} <> '31' when '09' "
               f"then {day} <> '31' when '11' then {day} <> '31' else true end)")
    return (f"case when {column} ~ '^[0-9]{{4}}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])"
            f"[0-5][0-9][0-5][0-9]$' and left({column}, 4) <> '0000' and {has_day} "
            f"then (left({column}, 8) || 'T' || right({column}, 6))::timestamp end")


def baseline(column: str) -> str:
    """The former parse_ts: six substrings as integers, a calendar check, ``make_timestamp``."""
    y, mo, d, h, mi, s = (f"substr({column}, {i}, {n})::int" for i, n in ((1, 4), (5, 2), (7, 2), (9, 2), (11, 2),
                                                                          (13, 2)))
    days = (f"case when {mo} = 2 then case when ({y} % 4 = 0 and {y} % 100 <> 0) or {y} % 400 = 0 then 29 "
            f"else 28 end when {mo} in (4, 6, 9, 11) then 30 else 31 end")
    return (f"case when {column} ~ '^[0-9]{{14}}$' then case when {y} >= 1 and {mo} between 1 and 12 "
            f"and {d} between 1 and {days} and {h} <= 23 and {mi} <= 59 and {s} <= 59 "
            f"then make_timestamp({y}, {mo}, {d}, {h}, {mi}, {s}) end end")


def compiled(expression: str) -> str:
    """A Jinja expression of the project's macros as dbt compiles it (``dbt compile --inline``)."""
    proc = run_dbt(["compile", "--quiet", "--no-populate-cache", "--inline", f"select {{{{ {expression} }}}}"],
                   PARSE_ONLY_URL)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt compile failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout.strip().removeprefix("select").strip()


def timed(conn: psycopg.Connection, query: str, rounds: int) -> float:
    """Best of ``rounds``: seconds to run ``query`` (a count over every value)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        conn.execute(query).fetchone()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="JSON values to decode")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each decoder (the best one counts)")
    args = parser.parse_args()
    # the decoders' way: the digits once a value, in a projection the planner cannot fold into the next
    digits, from_digits = compiled("ts_digits('v.t')"), compiled("ts_from_digits('d.n')")
    mine = f"(select {from_digits} from (select {digits} as n offset 0) as d)"
    regex, former = regex_former("v.t"), baseline("v.t")
    with tempfile.TemporaryDirectory() as tmp, throwaway_warehouse(Path(tmp), server_settings={}) as wh, \
            psycopg.connect(wh.urls["writer"], autocommit=True) as conn:
        conn.execute("set max_parallel_workers_per_gather = 0")
        conn.execute("create temporary table edges (t text)")
        conn.cursor().executemany("insert into edges values (%s)", [(e,) for e in EDGES])
        disagree = conn.execute(f"select v.t from edges as v where ({mine}) is distinct from ({regex}) "
                                f"or ({regex}) is distinct from ({former})").fetchall()
        if disagree:
            raise SystemExit(f"the decoders disagree on {disagree}")
        conn.execute(
            "create temporary table values_ as select to_char(timestamp '2016-01-01' + (random() * 3000)::int "
            "* interval '1 day' + (random() * 86399)::int * interval '1 second', 'YYYYMMDDHH24MISS') as t "
            f"from generate_series(1, {args.rows})")
        conn.execute("analyze values_")
        scan = timed(conn, "select count(v.t) from values_ as v", args.rounds)
        new = timed(conn, f"select count({from_digits}) from (select {digits} as n from values_ as v offset 0) "
                          "as d", args.rounds)
        old_regex = timed(conn, f"select count({regex}) from values_ as v", args.rounds)
        old = timed(conn, f"select count({former}) from values_ as v", args.rounds)
    per = 1e6 / args.rows
    print(f"  {args.rows:,} values; reading them alone {scan * per:.2f} µs a value")
    print(f"  ts_digits, then ts_from_digits (the decoders'): {new * per:.2f} µs a value")
    print(f"  the regular expression and ISO cast (before):   {old_regex * per:.2f} µs a value")
    print(f"  six substrings as integers (the first decoder): {old * per:.2f} µs a value")
    print(f"parse_ts_us={new * per:.2f} regex_us={old_regex * per:.2f} baseline_us={old * per:.2f} "
          f"speedup={old_regex / new:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
