"""What the benchmarks share: a simulator serving a scenario in its own process, and a warehouse landed
from it up to a night (production server settings), through the real ingestion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable
from pipeline.night import run_night
from pipeline.settings import PROJECT_ROOT, Settings
from tests.support.postgres import free_port

TOKEN = "bench"


@contextmanager
def serving_simulator(scale: float, clock: datetime, start: date | None = None,
                      render_cache: bool = False) -> Iterator[str]:
    """``python -m simulator serve`` for the scale at ``clock`` (the scenario from ``start``, else the default
    scenario's first day); yields its base URL (token ``bench``). ``render_cache``: every record rendered before
    the server answers (``SIM_RENDER_CACHE``), so a pull of the history measures the pipeline, not the
    simulator's rendering on the same cores."""
    port = free_port()
    env = {**os.environ, "SIM_SCALE": str(scale), "SIM_TOKEN": TOKEN, "PROCEDURE_API_TOKEN": TOKEN,
           "SIM_CLOCK": clock.isoformat(), **({"SIM_START": start.isoformat()} if start else {}),
           **({"SIM_RENDER_CACHE": "1"} if render_cache else {})}
    sim = subprocess.Popen([sys.executable, "-m", "simulator", "serve", "--port", str(port)], cwd=PROJECT_ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while "serving" not in (line := sim.stdout.readline()):
            if not line:
                raise RuntimeError("the simulator did not start")
        print("  " + line.strip())
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        sim.terminate()
        sim.wait()


def bench_env(api_url: str, tmp: str, history_start: date | None = None) -> dict[str, str]:
    """The settings' variables of a benchmark run (its own inbox, reports and GX folders). Nights seconds
    apart, not a day: no wall-clock look-back, or every model would re-read the previous night's loads."""
    return {"PROCEDURE_API_URL": api_url, "PROCEDURE_API_TOKEN": TOKEN,
            "HISTORY_START": (history_start or date(2023, 1, 1)).isoformat(), "FINANCE_INBOX": tmp,
            "REPORTS_DIR": f"{tmp}/reports", "GX_PROJECT_DIR": f"{tmp}/gx", "DBT_INCREMENTAL_LOOKBACK_MINUTES": "0"}


def bench_settings(api_url: str, writer: str, tmp: str, history_start: date | None = None) -> Settings:
    return Settings.from_env(bench_env(api_url, tmp, history_start), warehouse_url=writer)


def set_clock(api_url: str, night: datetime) -> None:
    """Move the simulator's clock to ``night`` (the records served are the scenario's then)."""
    base = api_url.removesuffix("/api/v1")
    requests.post(f"{base}/_sim/clock", params={"to": night.strftime("%Y%m%d%H%M%S")},
                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600).raise_for_status()


def land_night(settings: Settings, run_id: str, night: datetime) -> int:
    """Land the reference data and every dossier up to ``night``; prints and returns the dossier count."""
    t0 = time.perf_counter()
    run_night(settings, night, run_id=run_id, until="land", lease=False, checks=False)
    with psycopg.connect(settings.warehouse_url) as conn:
        dossiers = conn.execute("SELECT count(*) FROM raw.dossier_current").fetchone()[0]
    print(f"  landed {dossiers:,} dossiers in {time.perf_counter() - t0:.0f}s")
    return dossiers


def next_day(api_url: str, settings: Settings, run_id: str, night: datetime) -> dict:
    """Move the simulator's clock to ``night`` and land that day's changes; returns the pull's summary."""
    set_clock(api_url, night)
    done = run_night(settings, night, run_id=run_id, until="land", lease=False, checks=False)
    pulled = done["results"]["land"]["dossiers"]
    return {k: sum(p[k] for p in pulled) for k in ("fetched", "new_versions", "seconds")}
