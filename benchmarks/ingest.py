"""Ingestion benchmark (``make bench-ingest``; not a test).

For 100k and 1M dossiers, in the same run and on the same warehouse server:
- **ingest**: the pipeline's own dossier pull (``ingestion.loads.pull_dossiers``: API paging, parsing,
  hashing, de-duplication, versions, current state, audit, watermark) from a simulator subprocess that
  pre-renders its records (so the source is not what is measured), in a child process whose peak
  memory is read from the kernel;
- **(a) ceiling**: ``psql \\copy`` of the same rows (key, NgayCapNhat, payload) from a prepared file;
- **(b) by hand**: the same three columns through ``pandas.DataFrame.to_sql(chunksize=10_000)``.
The last line is machine-readable, for the 1M run:
``ingest_vs_copy=<ratio> ingest_vs_to_sql=<ratio> peak_rss_mb=<n>``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pandas as pd
import psycopg
import requests
from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import JSONB

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable
from pipeline.settings import PROJECT_ROOT
from tests.support.postgres import free_port, throwaway_warehouse
from warehouse.psql import libpq_command

DOSSIERS_AT_SCALE_1 = 308_000  # default scenario (Jan–Sep 2023) at scale 1

INGEST_CHILD = """
import sys
from datetime import datetime
from ingestion.loads import pull_dossiers
from pipeline.settings import Settings
r = pull_dossiers(sys.argv[1], "*", datetime(2023, 10, 1, 1), settings=Settings.from_env())
# VmHWM: this process's own peak (ru_maxrss would also count the parent's pages shared before exec).
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(r["fetched"], r["new_versions"], r["quarantined"], r["retries"], peak_kb)
"""


def start_simulator(scale: float, port: int) -> subprocess.Popen:
    env = {**os.environ, "SIM_SCALE": str(scale), "SIM_TOKEN": "bench", "PROCEDURE_API_TOKEN": "bench",
           "SIM_RENDER_CACHE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "serve", "--port", str(port)], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("simulator exited before serving")
        print("  " + line.rstrip())
        if "serving" in line:
            return proc


def run_ingest(writer_url: str, api_url: str, run_id: str) -> tuple[float, int, float]:
    """Seconds, dossiers fetched and peak RSS (MB) of an ingestion child process."""
    env = {**os.environ, "PROCEDURE_API_URL": api_url, "PROCEDURE_API_TOKEN": "bench", "HISTORY_START": "2023-01-01",
           "WAREHOUSE_WRITER_URL": writer_url, "PYTHONPATH": str(PROJECT_ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", INGEST_CHILD, run_id], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ingestion failed: {out}")
    fields = out.split()
    return seconds, int(fields[0]), int(fields[4]) / 1024


def bench(n: int, wh, port: int) -> dict:
    scale = n / DOSSIERS_AT_SCALE_1
    print(f"\n== {n:,} dossiers (scenario scale {scale:.3f}) ==")
    sim = start_simulator(scale, port)
    writer = wh.urls["writer"]
    try:
        with psycopg.connect(writer, autocommit=True) as conn:
            conn.execute("TRUNCATE raw.dossier_versions, raw.dossier_current, audit.ingest_runs, audit.watermarks")
        api = f"http://127.0.0.1:{port}/api/v1"
        requests.get(api.replace("/api/v1", "/_sim/health"), timeout=10).raise_for_status()
        ingest_s, fetched, rss = run_ingest(writer, api, f"bench-{n}")
        print(f"  ingest: {fetched:,} dossiers in {ingest_s:.1f}s")
    finally:
        sim.terminate()
        sim.wait()
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(writer, autocommit=True) as conn:
        rows_file = Path(tmp) / "rows.tsv"
        with rows_file.open("wb") as fh, conn.cursor().copy(
                "COPY (SELECT dossier_id, updated_at, payload FROM raw.dossier_versions) TO STDOUT") as copy:
            for chunk in copy:
                fh.write(chunk)
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("DROP TABLE IF EXISTS bench.ceiling, bench.to_sql")
        # The same shape and storage as raw.dossier_versions' three columns (jsonb, lz4-compressed).
        conn.execute("CREATE TABLE bench.ceiling (dossier_id text, updated_at timestamp, "
                     "payload jsonb COMPRESSION lz4)")
        t0 = time.perf_counter()
        # The URL's password goes to psql in its environment, not in its arguments (visible in `ps`).
        argv, psql_env = libpq_command("psql", writer, ["-q", "-c", f"\\copy bench.ceiling FROM '{rows_file}'"])
        subprocess.run(argv, env=psql_env, check=True)
        copy_s = time.perf_counter() - t0
        # What a user would write: records as parsed from the API, the payload into a jsonb column. The
        # frame is built 100k rows at a time (1M parsed payloads would not fit in memory); only the
        # to_sql calls are timed.
        engine = create_engine(writer.replace("postgresql://", "postgresql+psycopg://"))
        to_sql_s = 0.0
        for frame in pd.read_csv(rows_file, sep="\t", header=None, names=["dossier_id", "updated_at", "payload"],
                                 quoting=3, dtype=str, keep_default_na=False, chunksize=100_000):
            frame["updated_at"] = pd.to_datetime(frame["updated_at"])
            frame["payload"] = [orjson.loads(p.replace("\\\\", "\\")) for p in frame["payload"]]
            t0 = time.perf_counter()
            frame.to_sql("to_sql", engine, schema="bench", index=False, chunksize=10_000, if_exists="append",
                         dtype={"payload": JSONB()})
            to_sql_s += time.perf_counter() - t0
        engine.dispose()
        conn.execute("DROP TABLE bench.ceiling, bench.to_sql")
    result = {"n": fetched, "ingest": fetched / ingest_s, "copy": fetched / copy_s, "to_sql": fetched / to_sql_s,
              "rss": rss}
    print(f"  ingest (API → raw, everything):  {result['ingest']:>9,.0f} dossiers/s   peak RSS {rss:,.0f} MB")
    print(f"  (a) psql \\copy, prepared file:   {result['copy']:>9,.0f} rows/s")
    print(f"  (b) pandas to_sql(10_000), jsonb: {result['to_sql']:>9,.0f} rows/s")
    print(f"  ingest / ceiling = {result['ingest'] / result['copy']:.2f}   "
          f"ingest / to_sql = {result['ingest'] / result['to_sql']:.2f}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # The production server configuration (durable), not the tests' fast one.
    with tempfile.TemporaryDirectory() as tmp, throwaway_warehouse(Path(tmp), server_settings={}) as wh:
        results = [bench(n, wh, free_port()) for n in sizes]
    last = results[-1]
    print(f"ingest_vs_copy={last['ingest'] / last['copy']:.2f} ingest_vs_to_sql={last['ingest'] / last['to_sql']:.2f} "
          f"peak_rss_mb={last['rss']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
