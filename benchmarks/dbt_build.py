"""dbt benchmark (``make bench-dbt``; not a test).

For the default scenario and a 10× larger one: land the scenario up to a night, time a full
``dbt build`` (the nightly selection: every model, the snapshot, unit tests and the marts' tests; the
whole-history staging tests run weekly), then advance the simulator one day, land that day's changes, and
time the incremental nightly ``dbt build``. Each build also prints the seconds of the models that follow the
history (``WATCHED``: the per-dossier tables and the monthly scans of them), read from dbt's log. The last line
is machine-readable, for the 10× scenario: ``full_s=<seconds> incremental_s=<seconds>
incremental_vs_full=<ratio>``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from benchmarks.harness import bench_settings, land_night, next_day, serving_simulator
from pipeline.night import dbt_build
from tests.support.postgres import throwaway_warehouse

NIGHT = datetime(2023, 9, 29, 1)
WATCHED = ("staging.stg_api__dossiers", "marts.fct_dossier", "marts.fct_timeliness_monthly",
           "intermediate.int_dossiers__steps", "marts.fct_step_monthly", "marts.fct_late_origin_monthly",
           "marts.fct_step_monthly_by_field", "marts.fct_late_origin_monthly_by_field",
           "intermediate.int_service_index__contributions",
           "marts.fct_service_index_monthly",
           "marts.fct_service_index_2_1_dossiers", "intermediate.int_dq_issues")
# dbt pads the name with dots up to a width, and writes none after a long name.
_MODEL_LINE = re.compile(r"OK created sql \w+ model (\S+) \.* ?\[(?:\x1b\[\d+m)?(.*?)(?:\x1b\[\d+m)? in ([\d.]+)s\]")


def _build(settings, night: datetime) -> float:
    # The nights here are seconds apart, not a day: the settings set no look-back (benchmarks.harness), so the
    # incremental build selects what a real night would (the previous load committed a day before).
    t0 = time.perf_counter()
    log = ""
    # The nightly selectors (dbt_project/selectors.yml); the whole-history staging tests run weekly, not here.
    for selector in ("nightly_staging", "nightly_steps", "nightly_marts", "nightly_dq_marts", "nightly_finance_staging",
                     "nightly_finance_marts"):
        log += dbt_build(settings, selector, night)
    seconds = time.perf_counter() - t0
    models = {m.group(1): (m.group(2), m.group(3)) for m in _MODEL_LINE.finditer(log)}
    for name in WATCHED:
        if name in models:
            print(f"    {name}: {models[name][1]}s ({models[name][0]})")
    return seconds


def bench(scale: float) -> tuple[float, float, int]:
    with serving_simulator(scale, NIGHT) as api, tempfile.TemporaryDirectory() as tmp, \
            throwaway_warehouse(Path(tmp), server_settings={}) as wh:
        writer = wh.urls["writer"]
        settings = bench_settings(api, writer, tmp)
        dossiers = land_night(settings, "night-1", NIGHT)
        full = _build(settings, NIGHT)
        print(f"  full dbt build: {full:.1f}s")
        day = next_day(api, settings, "night-2", NIGHT + timedelta(days=1))
        print(f"  one day later: {day['fetched']:,} dossiers fetched, {day['new_versions']:,} new versions")
        incremental = _build(settings, NIGHT + timedelta(days=1))
        print(f"  incremental dbt build: {incremental:.1f}s ({incremental / full:.2f} of the full build)")
        return full, incremental, dossiers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10")
    args = parser.parse_args()
    result = None
    for scale in (float(s) for s in args.scales.split(",")):
        print(f"\n== scenario scale {scale:g} ==")
        result = bench(scale)
    full, incremental, _ = result
    print(f"full_s={full:.1f} incremental_s={incremental:.1f} incremental_vs_full={incremental / full:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
