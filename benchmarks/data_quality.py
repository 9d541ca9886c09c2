"""Data-quality benchmark (``make bench-dq``; not a test).

For the default scenario and a 10× larger one: land the scenario up to a night, build what the rules read
(``dbt build`` of staging and ``dq.dq_dossiers``), and time the data-quality stage
(``expectations.validate.run_data_quality``: the batch, dossier and workbook checkpoints, the findings
written by the server, Data Docs, the digest). Baseline, in the same process: the same rules evaluated in
plain Python over every current dossier's payload pulled from the warehouse (``simulator.truth``) — what
"pulling the table into Python" costs. Then one simulated day later: the incremental ``dq_dossiers`` build
and the validation again. The last line is machine-readable, for the last scale:
``validate_s=<s> python_baseline_s=<s> validate_vs_baseline=<ratio> findings=<n>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from benchmarks.harness import bench_settings, land_night, next_day, serving_simulator
from expectations.validate import run_data_quality
from pipeline import runs
from pipeline.night import dbt_build
from pipeline.settings import Settings
from simulator.truth import findings
from tests.support.postgres import throwaway_warehouse

NIGHT = datetime(2023, 9, 29, 1)


def _build(settings: Settings, night: datetime) -> float:
    t0 = time.perf_counter()
    dbt_build(settings, "nightly_staging", night)
    return time.perf_counter() - t0


def _baseline(writer: str, night: datetime) -> tuple[float, int]:
    """The rules in plain Python over every current dossier's payload, read from the warehouse."""
    t0 = time.perf_counter()
    with psycopg.connect(writer) as conn:
        units = [p for (p,) in conn.execute("SELECT payload FROM raw.units")]
        procedures = [p for (p,) in conn.execute("SELECT payload FROM raw.procedures")]
        with conn.cursor(name="payloads") as cur:
            cur.itersize = 20_000
            cur.execute("SELECT payload::text FROM raw.dossiers_current WHERE NOT is_deleted")
            records = (orjson.loads(text) for (text,) in cur)
            found = findings(records, night, procedures, units)
    return time.perf_counter() - t0, sum(len(v) for v in found.values())


def _validate(settings: Settings, run_id: str, night: datetime) -> tuple[float, int]:
    runs.start_run(run_id, night - timedelta(days=1), night, settings)
    t0 = time.perf_counter()
    summary = run_data_quality(run_id, night, settings, notify=False, finance=False)
    return time.perf_counter() - t0, summary["digest"]["open"]


def bench(scale: float) -> tuple[float, float, int]:
    with serving_simulator(scale, NIGHT) as api, tempfile.TemporaryDirectory() as tmp, \
            throwaway_warehouse(Path(tmp), server_settings={}) as wh:
        writer = wh.urls["writer"]
        settings = bench_settings(api, writer, tmp)
        land_night(settings, "night-1", NIGHT)
        print(f"  dbt build of staging + dq_dossiers (full): {_build(settings, NIGHT):.1f}s")
        validate_s, found = _validate(settings, "night-1", NIGHT)
        baseline_s, expected = _baseline(writer, NIGHT)
        for label, seconds, n in (("validation (Great Expectations, in the database)", validate_s, found),
                                  ("baseline: the rules in Python over every payload", baseline_s, expected)):
            print(f"  {label:<52}{seconds:>8.1f}s  {n:,} findings")
        if found != expected:
            print(f"  WARNING: the two disagree ({found} vs {expected})")
        nxt = NIGHT + timedelta(days=1)
        day = next_day(api, settings, "night-2", nxt)
        build_s = _build(settings, nxt)
        again_s = _validate(settings, "night-2", nxt)[0]
        print(f"  one day later: {day['new_versions']:,} new versions; dbt build of staging + dq_dossiers "
              f"(incremental): {build_s:.1f}s; validation: {again_s:.1f}s")
        return validate_s, baseline_s, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import great_expectations  # noqa: F401  (a once-per-process cost, kept out of the figures below)

    print(f"import great_expectations: {time.perf_counter() - t0:.1f}s (paid once per Airflow task process)")
    result = None
    for scale in (float(s) for s in args.scales.split(",")):
        print(f"\n== scenario scale {scale:g} ==")
        result = bench(scale)
    validate_s, baseline_s, found = result
    print(f"validate_s={validate_s:.1f} python_baseline_s={baseline_s:.1f} "
          f"validate_vs_baseline={validate_s / baseline_s:.2f} findings={found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
