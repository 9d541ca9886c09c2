"""Backfill benchmark (``make bench-backfill``; not a test): what a rebuild costs — a fresh warehouse, the
whole history of the 10× scenario (about 3M dossiers; ``--scales 10,30`` for 9M too, memory allowing)
landed, built and validated end to end (``pipeline.night.run_night``: the loads, dbt's nightly selections
— every model, the snapshot, the marts' tests —, the data-quality stage, the report), timed per stage.

The simulator renders its records before it answers (as in ``make bench-ingest``): in production the API runs
on the province's servers, not on the warehouse's cores. The loads' rate against the single-stream ``psql
\\copy`` ceiling is ``make bench-ingest``'s (measured in one run there); here, where the time of a rebuild
goes. Last line, machine-readable: ``backfill_3m_s=<total> ingest_s=… dbt_s=… dq_s=… report_s=…`` (and
``backfill_9m_s=…`` when run).

Where dbt's time goes: the slowest nodes of the build, from dbt's own per-node times, and ``EXPLAIN (ANALYZE,
BUFFERS)`` of the ``--explain`` slowest models' compiled queries (their full-build SELECT, run again on the
built warehouse; the plan's costliest nodes printed).

``--servers default,larger``: the same rebuild on the project's server settings and on a larger server's
(``SETTINGS``), side by side; ``--sources prerendered,on-demand``: the same rebuild from a simulator that renders
every page as it is asked for, on the same cores. The default's line (project settings, pre-rendered source)
comes last.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from benchmarks.harness import bench_settings, serving_simulator
from pipeline.night import run_night
from tests.support.postgres import throwaway_warehouse

NIGHT = datetime(2023, 10, 1, 1)
# The warehouse's server settings a rebuild runs on: the project's own (warehouse/cluster.py, sized for 2 cores
# and a few GB shared with Airflow and dbt), and a larger server's, as README "Scaling out" advises for a
# machine with more memory — here the same two cores with 24 GB: the rule of thumb's shared_buffers (a quarter
# of the RAM is 6GB; 4GB leaves room for the simulator and dbt), effective_cache_size, a work_mem that keeps the
# steps' sort in memory (a full build is a handful of connections, not BI's dozens), index builds with 1GB, and
# every core for one query.
SETTINGS = {
    "default": {},
    "larger": {"shared_buffers": "4GB", "effective_cache_size": "16GB", "work_mem": "256MB",
               "maintenance_work_mem": "1GB", "max_parallel_workers_per_gather": "2", "max_wal_size": "8GB"},
}
SOURCES = ("prerendered", "on-demand")
STAGES = {"ingest": ("land", "load_workbooks"),
          "dbt": ("staging", "steps", "marts", "dq_marts", "finance.staging", "finance.marts"),
          "dq": ("batch", "quality", "finance.quality"), "report": ("report",)}


# A node's line in dbt's output: "12 of 60 OK created sql table model marts.fct_dossier ... [SELECT 3060000 in 45.20s]"
NODE_LINE = re.compile(r"\d+ of \d+ (?:OK|PASS|WARN)\s+(?:created sql (\w+) model |snapshotted )?(\S+)"
                       r".*?\[(.+?) in ([\d.]+)s\]")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def slowest_nodes(outputs: dict[str, str], most: int) -> list[tuple[float, str, str]]:
    """The ``most`` slowest nodes of the dbt builds' outputs: (seconds, node, what dbt said it did)."""
    nodes = []
    for output in outputs.values():
        for line in ANSI.sub("", output).splitlines():
            if m := NODE_LINE.search(line):
                nodes.append((float(m[4]), m[2], f"{m[1] or 'test/snapshot'}: {m[3]}"))
    return sorted(nodes, reverse=True)[:most]


def explain(writer: str, target: Path, model: str, lines: int = 14) -> None:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of ``model``'s compiled SELECT; prints the plan's first lines."""
    name = model.rsplit(".", 1)[-1]
    # The model's own compiled SQL, not a unit test's fixture of the same name (under ``<tests>.yml/``).
    # (a model built beside the main dbt command, as the steps are, is compiled in the folder ``-beside``)
    found = [p for folder in (target, target.with_name(target.name + "-beside"))
             for p in (folder / "compiled").rglob(f"{name}.sql")
             if "/models/" in str(p) and not p.parent.name.endswith(".yml")]
    if not found:
        print(f"    {model}: no compiled SQL")
        return
    sql = found[0].read_text()
    with psycopg.connect(writer) as conn:
        conn.execute("SET statement_timeout = 0")
        plan = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
    print(f"    EXPLAIN ANALYZE {model}:")
    for row in plan[:lines] + [r for r in plan[lines:] if r.lstrip().startswith(("Planning Time", "Execution Time"))]:
        print("      " + row[:160])


def bench(scale: float, most: int, explain_models: int, server: str = "default",
          source: str = "prerendered") -> dict[str, float]:
    with serving_simulator(scale, NIGHT, render_cache=source == "prerendered") as api, \
            tempfile.TemporaryDirectory() as tmp, \
            throwaway_warehouse(Path(tmp), server_settings=SETTINGS[server]) as wh:
        writer = wh.urls["writer"]
        target = Path(tmp) / "dbt-target"
        os.environ["DBT_TARGET_PATH"] = str(target)  # this run's compiled SQL, for EXPLAIN
        settings = bench_settings(api, writer, tmp)
        t0 = time.perf_counter()
        done = run_night(settings, NIGHT, run_id="backfill", lease=False)
        total = time.perf_counter() - t0
        with psycopg.connect(writer) as conn:
            dossiers = conn.execute("SELECT count(*) FROM raw.dossier_current").fetchone()[0]
        seconds = {name: sum(done["seconds"].get(s, 0.0) for s in parts) for name, parts in STAGES.items()}
        print(f"  {dossiers:,} dossiers landed, built and validated in {total:.1f}s (the dossier rules run beside "
              "the marts and the finance branch: the stages' seconds overlap)")
        for name, part in seconds.items():
            detail = ", ".join(f"{stage} {done['seconds'].get(stage, 0):.1f}s" for stage in STAGES[name])
            print(f"    {name:<8}{part:>8.1f}s  ({detail})")
        print("  when (seconds into the rebuild): " + ", ".join(
            f"{stage} {start:.0f}–{end:.0f}" for stage, (start, end) in sorted(done["spans"].items(),
                                                                             key=lambda item: item[1])))
        print(f"  ingest: {dossiers / seconds['ingest']:,.0f} dossiers/s")
        slow = slowest_nodes(done["results"].get("dbt", {}), most)
        print(f"  the {len(slow)} slowest dbt nodes:")
        for node_s, node, what in slow:
            print(f"    {node_s:>7.1f}s  {node}  ({what})")
        for _, node, _what in [n for n in slow if not n[2].startswith("test")][:explain_models]:
            explain(writer, target, node)
        return {"total": total, **seconds, "dossiers": dossiers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="10")
    parser.add_argument("--slowest", type=int, default=12, help="how many of the slowest dbt nodes to list")
    parser.add_argument("--explain", type=int, default=3, help="EXPLAIN ANALYZE the slowest N models")
    parser.add_argument("--servers", default="default",
                        help=f"the warehouse settings to rebuild on, side by side: {', '.join(SETTINGS)} "
                             "(larger: " + ", ".join(f"{k}={v}" for k, v in SETTINGS["larger"].items()) + ")")
    parser.add_argument("--sources", default="prerendered",
                        help=f"how the simulator serves, side by side: {', '.join(SOURCES)} (on-demand: every page "
                             "rendered as it is asked for, on the same cores as the pipeline)")
    args = parser.parse_args()
    servers, sources = args.servers.split(","), args.sources.split(",")
    if unknown := [s for s in servers if s not in SETTINGS]:
        parser.error(f"unknown server settings {unknown}: choose from {', '.join(SETTINGS)}")
    if unknown := [s for s in sources if s not in SOURCES]:
        parser.error(f"unknown sources {unknown}: choose from {', '.join(SOURCES)}")
    runs = [(server, source) for server in servers for source in sources]
    results = {}
    for server, source in runs:
        for scale in (float(s) for s in args.scales.split(",")):
            print(f"\n== scenario scale {scale:g}, {server} server settings, {source} source ==")
            results[server, source, scale] = bench(scale, args.slowest, args.explain, server, source)
    for server, source in sorted(runs, key=lambda r: r == ("default", "prerendered")):  # the default's line last
        mine = {scale: r for (s, src, scale), r in results.items() if (s, src) == (server, source)}
        parts = [f"backfill_{round(r['dossiers'] / 1e6)}m_s={r['total']:.1f}" for r in mine.values()]
        last = mine[max(mine)] if len(mine) == 1 else mine[min(mine)]
        parts += [f"ingest_s={last['ingest']:.1f}", f"dbt_s={last['dbt']:.1f}", f"dq_s={last['dq']:.1f}",
                  f"report_s={last['report']:.1f}"]
        parts += [] if server == "default" else [f"server={server}"]
        parts += [] if source == "prerendered" else [f"source={source}"]
        print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
