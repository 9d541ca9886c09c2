"""Nightly benchmark (``make bench-nightly``; not a test): does a night cost what changed that day, or what
happened before it?

The same day of changes on two histories, side by side in one run: the 10× scenario's volume (about 50k
changed dossiers a day) from 1 July 2023 (about 1M dossiers by the night) and from 1 January 2023 (about 3M).
For each, a throw-away warehouse is brought to the night of 2023-09-29 (``pipeline.night.run_night``:
landing, dbt, data quality, report — the backfill, timed per stage — then Airflow's metadata database and
the dbt docs site as the nights before it would have left them), the simulator's clock moves one day, and
the next night runs **end to end through the DAG** (``python -m ops.airflow test-dag``: pull, dbt, data
quality, report, dbt docs, the digest): its wall time and each task's. The last line is machine-readable:
``nightly_1m_s=… nightly_3m_s=… growth=<3m/1m> changed_1m=… changed_3m=…``. The goal: growth ≤ 1.2, and
the 3M night within 90 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from benchmarks.harness import bench_env, bench_settings, serving_simulator, set_clock
from ops.airflow import TaskProgress
from pipeline.night import run_night
from pipeline.settings import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse

NIGHT = datetime(2023, 9, 29, 1)
SCALE = 10
HISTORIES = {"1m": date(2023, 7, 1), "3m": date(2023, 1, 1)}


def dag_night(env: dict[str, str], night: datetime, log: Path) -> tuple[float, list[str]]:
    """The night ending at ``night`` through ``airflow dags test``: its wall time and one line per task."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "ops.airflow", "test-dag", "--run-date", night.date().isoformat()],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.time() - t0
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"the night failed ({proc.returncode}); see {log}")
    return seconds, list(TaskProgress(t0).feed(log.read_text(errors="replace").splitlines()))


def steady_state(env: dict[str, str], writer: str, out_dir: Path) -> None:
    """What the nights before would have left: Airflow's metadata database migrated and the dbt manifest the
    DAG is rendered from written (``python -m ops.airflow db-migrate``, once per deployment and dbt project),
    and the dbt docs site (``ops.dbt.write_docs_site`` under the DAG's settings), so the night measured starts
    as a steady night does instead of doing any of them for the first time."""
    from ops.dbt import write_docs_site

    subprocess.run([sys.executable, "-m", "ops.airflow", "db-migrate"], cwd=PROJECT_ROOT, env=env, check=True,
                   capture_output=True, text=True, timeout=600)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        write_docs_site(writer, out_dir)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def bench(label: str, start: date, keep: Path | None) -> tuple[float, int, int]:
    with serving_simulator(SCALE, NIGHT, start=start) as api, tempfile.TemporaryDirectory() as tmp, \
            throwaway_warehouse(Path(tmp), server_settings={}) as wh:
        writer = wh.urls["writer"]
        settings = bench_settings(api, writer, tmp, history_start=start)
        t0 = time.perf_counter()
        prime = run_night(settings, NIGHT, run_id="history", lease=False)
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in prime["seconds"].items() if v >= 1)
        with psycopg.connect(writer) as conn:
            history = conn.execute("SELECT count(*) FROM raw.dossier_current").fetchone()[0]
        print(f"  history to {NIGHT:%Y-%m-%d}: {history:,} dossiers in {time.perf_counter() - t0:.0f}s "
              f"({stages})")
        nxt = NIGHT + timedelta(days=1)
        set_clock(api, nxt)
        env = {**os.environ, **bench_env(api, tmp, start), "WAREHOUSE_WRITER_URL": writer,
               "AIRFLOW_HOME": f"{tmp}/airflow", "PIPELINE_TASK_RETRIES": "0"}
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
        steady_state(env, writer, Path(tmp) / "reports" / "dbt-docs")
        log = (keep or Path(tmp)) / f"night-{label}.log"
        seconds, tasks = dag_night(env, nxt, log)
        with psycopg.connect(writer) as conn:
            changed = conn.execute("SELECT coalesce(sum(new_versions), 0) FROM audit.ingest_runs "
                                   "WHERE source = 'dossiers' AND run_id <> 'history'").fetchone()[0]
        print(f"  the next night through the DAG: {seconds:.1f}s, {changed:,} changed dossiers (new versions) landed")
        for line in tasks:
            print("  " + line)
        return seconds, changed, history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-logs", type=Path, default=None, help="a folder to keep the nights' logs in")
    args = parser.parse_args()
    if args.keep_logs:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    out = {}
    for label, start in HISTORIES.items():
        print(f"\n== a history from {start} at scale {SCALE} ({label}) ==")
        out[label] = bench(label, start, args.keep_logs)
    (s1, c1, _), (s3, c3, _) = out["1m"], out["3m"]
    print(f"\n{'history':>10} {'dossiers':>12} {'changed':>9} {'night':>8}")
    for label, (s, c, h) in out.items():
        print(f"{label:>10} {h:>12,} {c:>9,} {s:>7.1f}s")
    print(f"nightly_1m_s={s1:.1f} nightly_3m_s={s3:.1f} growth={s3 / s1:.2f} changed_1m={c1} changed_3m={c3}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
