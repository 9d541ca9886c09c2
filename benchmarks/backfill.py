"""Backfill benchmark (``make bench-backfill``; not a test): what a rebuild costs — a fresh warehouse, the
whole history of the 10× scenario (about 3M dossiers; ``--scales 10,30`` for 9M too, memory allowing)
landed, built and validated end to end (``pipeline.night.run_night``: the loads, dbt's nightly selections
— every model, the snapshot, the marts' tests —, the data-quality stage, the report), timed per stage.

The loads' rate against the single-stream ``psql \\copy`` ceiling is ``make bench-ingest``'s (measured in
one run there); here, where the time of a rebuild goes. Last line, machine-readable: ``backfill_3m_s=<total>
ingest_s=… dbt_s=… dq_s=… report_s=…`` (and ``backfill_9m_s=…`` when run).
"""

from __future__ import annotations

import argparse
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
STAGES = {"ingest": ("land", "load_workbooks"), "dbt": ("staging", "marts", "finance.staging", "finance.marts"),
          "dq": ("quality", "finance.quality"), "report": ("report",)}


def bench(scale: float) -> dict[str, float]:
    with serving_simulator(scale, NIGHT) as api, tempfile.TemporaryDirectory() as tmp, \
            throwaway_warehouse(Path(tmp), server_settings={}) as wh:
        writer = wh.urls["writer"]
        settings = bench_settings(api, writer, tmp)
        t0 = time.perf_counter()
        done = run_night(settings, NIGHT, run_id="backfill", lease=False)
        total = time.perf_counter() - t0
        with psycopg.connect(writer) as conn:
            dossiers = conn.execute("SELECT count(*) FROM raw.dossier_current").fetchone()[0]
        seconds = {name: sum(done["seconds"].get(s, 0.0) for s in parts) for name, parts in STAGES.items()}
        print(f"  {dossiers:,} dossiers landed, built and validated in {total:.1f}s")
        for name, part in seconds.items():
            detail = ", ".join(f"{stage} {done['seconds'].get(stage, 0):.1f}s" for stage in STAGES[name])
            print(f"    {name:<8}{part:>8.1f}s  ({detail})")
        print(f"  ingest: {dossiers / seconds['ingest']:,.0f} dossiers/s")
        return {"total": total, **seconds, "dossiers": dossiers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="10")
    args = parser.parse_args()
    results = {}
    for scale in (float(s) for s in args.scales.split(",")):
        print(f"\n== scenario scale {scale:g} ==")
        results[scale] = bench(scale)
    parts = []
    for r in results.values():
        parts.append(f"backfill_{round(r['dossiers'] / 1e6)}m_s={r['total']:.1f}")
    last = results[max(results)] if len(results) == 1 else results[min(results)]
    parts += [f"ingest_s={last['ingest']:.1f}", f"dbt_s={last['dbt']:.1f}", f"dq_s={last['dq']:.1f}",
              f"report_s={last['report']:.1f}"]
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
