"""Ingestion benchmark (``make bench-ingest``; not a test).

For each size (default 100k, 1M and 3.08M dossiers — the last is the 10× scenario), in the same run and on
the same warehouse server (production settings: durable, WAL, fsync):
- **ingest**: the pipeline's own dossier pull (``ingestion.loads.pull_dossiers``: API paging, parsing,
  hashing, de-duplication, versions, current state, audit, watermark) of the whole history into an empty
  ``raw``, from a simulator subprocess that pre-renders its records (so the source is not what is
  measured), in a child process whose peak memory is read from the kernel;
- **(a) ceiling**: ``psql \\copy`` of the same rows (key, NgayCapNhat, payload into jsonb/lz4) from a
  prepared file — one stream, one backend parsing the JSON;
- **(b) by hand**: the same three columns through ``pandas.DataFrame.to_sql(chunksize=10_000)`` (sizes up to
  ``--to-sql-max`` only: at 11k rows/s it would dominate the run at 3M).

Where the time goes is printed beside each figure: the CPU seconds of the ingesting Python process, of the
PostgreSQL server's processes by role (the backends, autovacuum, the checkpointer, the WAL writer…) and of
the simulator, sampled from ``/proc`` while the pull runs; ``--statements`` adds the landing statements'
times from ``pg_stat_statements``.

The last line is machine-readable, per size label (100k, 1m, 3m):
``ingest_1m_per_s=… copy_1m_per_s=… ratio_1m=… ingest_3m_per_s=… copy_3m_per_s=… ratio_3m=…
rate_3m_vs_1m=… peak_rss_mb=…`` (ratio: the pipeline's dossiers/s over the ceiling's rows/s of the same
size; peak_rss_mb: the largest peak of the ingesting process over the sizes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

INGEST_CHILD = """
import resource, sys
from datetime import datetime
from ingestion.loads import pull_dossiers
from pipeline.settings import Settings
r = pull_dossiers(sys.argv[1], "*", datetime(2023, 10, 1, 1), settings=Settings.from_env())
# VmHWM: this process's own peak (ru_maxrss would also count the parent's pages shared before exec).
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(r["fetched"], r["new_versions"], r["quarantined"], r["retries"], peak_kb, usage.ru_utime + usage.ru_stime,
      r["windows"])
"""

STATEMENTS = """
SELECT calls, round(total_exec_time::numeric / 1000, 1) AS seconds, rows,
       regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10
"""


def label(n: int) -> str:
    return f"{n // 1_000_000}m" if n >= 1_000_000 else f"{n // 1000}k"


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (with ``children``: also of its exited, reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / CLOCK_TICKS


def _role(cmdline: str) -> str:
    """A PostgreSQL process's role from its title (``postgres: pipeline warehouse 127.0.0.1(…) COPY``)."""
    title = cmdline.removeprefix("postgres: ")
    for role in ("autovacuum", "checkpointer", "walwriter", "background writer", "logical replication",
                 "stats", "parallel worker"):
        if title.startswith(role) or role in title.split(" for ")[0]:
            return role
    return "backends" if "127.0.0.1" in title else "other"


class ServerCpu:
    """CPU seconds of a PostgreSQL server's processes by role, sampled from /proc while something runs.

    The postmaster reaps its exited children (whose CPU then counts in its own ``cutime``); sampling every
    ``interval`` keeps each process's last reading, so the roles add up to the server's total up to what
    short-lived processes used between two samples."""

    def __init__(self, data_dir: Path, interval: float = 0.25):
        self.postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.interval = interval
        self.last: dict[int, tuple[str, float]] = {}
        self.base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[int]:
        path = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children")
        return [int(p) for p in path.read_text().split()]

    def _sample(self) -> None:
        for pid in self._children():
            try:
                cpu = _cpu_seconds(pid)
                if pid not in self.last:
                    name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    self.last[pid] = (_role(name), cpu)
                    self.base.setdefault(pid, 0.0)  # started during the run
                else:
                    self.last[pid] = (self.last[pid][0], cpu)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ServerCpu:
        self._sample()  # what the processes alive now had used already is not this run's
        self.base = {pid: cpu for pid, (_, cpu) in self.last.items()}
        self.total0 = _cpu_seconds(self.postmaster, children=True) + sum(self.base.values())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        alive = {pid: self.last[pid][1] for pid in self._children() if pid in self.last}
        self.total = _cpu_seconds(self.postmaster, children=True) + sum(alive.values()) - self.total0
        self.by_role: dict[str, float] = defaultdict(float)
        for pid, (role, cpu) in self.last.items():
            self.by_role[role] += cpu - self.base.get(pid, 0.0)


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


def run_ingest(writer_url: str, api_url: str, run_id: str) -> dict:
    """Seconds, dossiers fetched, peak RSS (MB) and CPU seconds of an ingestion child process."""
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
    return {"seconds": seconds, "fetched": int(fields[0]), "versions": int(fields[1]), "rss": int(fields[4]) / 1024,
            "cpu": float(fields[5]), "windows": int(fields[6])}


def bench(n: int, wh, port: int, to_sql_max: int, statements: bool) -> dict:
    scale = n / DOSSIERS_AT_SCALE_1
    print(f"\n== {n:,} dossiers (scenario scale {scale:.3f}) ==", flush=True)
    sim = start_simulator(scale, port)
    writer, admin = wh.urls["writer"], wh.urls["admin"]
    try:
        with psycopg.connect(writer, autocommit=True) as conn:
            conn.execute("TRUNCATE raw.dossier_versions, raw.dossier_current, audit.ingest_runs, audit.watermarks")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the previous size's dirty pages are not this one's cost
            if statements:
                conn.execute("SELECT pg_stat_statements_reset()")
        api = f"http://127.0.0.1:{port}/api/v1"
        requests.get(api.replace("/api/v1", "/_sim/health"), timeout=10).raise_for_status()
        sim_cpu0 = _cpu_seconds(sim.pid)
        with ServerCpu(wh.cluster.data_dir) as server:
            run = run_ingest(writer, api, f"bench-{n}")
        sim_cpu = _cpu_seconds(sim.pid) - sim_cpu0
        ingest_server_cpu, ingest_backend_cpu = server.total, server.by_role["backends"]
        fetched, ingest_s = run["fetched"], run["seconds"]
        print(f"  ingest: {fetched:,} dossiers ({run['versions']:,} versions, {run['windows']} windows) "
              f"in {ingest_s:.1f}s", flush=True)
        roles = ", ".join(f"{role} {cpu:.0f}" for role, cpu in sorted(server.by_role.items(), key=lambda x: -x[1])
                          if cpu >= 0.5)
        print(f"  CPU seconds: ingesting process {run['cpu']:.0f}, PostgreSQL {server.total:.0f} ({roles}), "
              f"simulator {sim_cpu:.0f}; {(run['cpu'] + server.total + sim_cpu) / ingest_s:.2f} cores busy "
              f"of {os.cpu_count()}")
        if statements:
            with psycopg.connect(admin, autocommit=True) as conn:
                for calls, secs, rows, query in conn.execute(STATEMENTS):
                    print(f"    {secs:>7}s {calls:>6} calls {rows:>9} rows  {query}")
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
        with psycopg.connect(admin, autocommit=True) as su:
            su.execute("CHECKPOINT")
        t0 = time.perf_counter()
        # The URL's password goes to psql in its environment, not in its arguments (visible in `ps`).
        argv, psql_env = libpq_command("psql", writer, ["-q", "-c", f"\\copy bench.ceiling FROM '{rows_file}'"])
        with ServerCpu(wh.cluster.data_dir) as copy_cpu:
            subprocess.run(argv, env=psql_env, check=True)
        copy_s = time.perf_counter() - t0
        copied = conn.execute("SELECT count(*) FROM bench.ceiling").fetchone()[0]
        # What a user would write: records as parsed from the API, the payload into a jsonb column. The
        # frame is built 100k rows at a time (1M parsed payloads would not fit in memory); only the
        # to_sql calls are timed.
        to_sql_s = None
        if n <= to_sql_max:
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
        conn.execute("DROP TABLE IF EXISTS bench.ceiling, bench.to_sql")
    result = {"n": fetched, "label": label(n), "ingest": fetched / ingest_s, "copy": copied / copy_s,
              "to_sql": None if to_sql_s is None else fetched / to_sql_s, "rss": run["rss"]}
    print(f"  ingest (API → raw, everything):  {result['ingest']:>9,.0f} dossiers/s   peak RSS {run['rss']:,.0f} MB")
    print(f"  (a) psql \\copy, prepared file:   {result['copy']:>9,.0f} rows/s ({copied:,} rows in {copy_s:.1f}s; "
          f"PostgreSQL CPU {copy_cpu.total:.0f}s = {copy_cpu.total / copied * 1e6:.0f} µs a row, the backend "
          f"{copy_cpu.by_role['backends'] / copied * 1e6:.0f})")
    print(f"  ingest CPU a dossier: Python {run['cpu'] / fetched * 1e6:.0f} µs, PostgreSQL "
          f"{ingest_server_cpu / fetched * 1e6:.0f} µs (backends {ingest_backend_cpu / fetched * 1e6:.0f})")
    if to_sql_s is not None:
        print(f"  (b) pandas to_sql(10_000), jsonb: {result['to_sql']:>9,.0f} rows/s   "
              f"ingest / to_sql = {result['ingest'] / result['to_sql']:.2f}")
    print(f"  ingest / ceiling = {result['ingest'] / result['copy']:.2f}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,3080000")
    parser.add_argument("--to-sql-max", type=int, default=1_000_000, help="largest size timed with to_sql")
    parser.add_argument("--statements", action="store_true", help="print the top statements (pg_stat_statements)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # The production server configuration (durable), not the tests' fast one.
    server = {"shared_preload_libraries": "pg_stat_statements"} if args.statements else {}
    with tempfile.TemporaryDirectory() as tmp, throwaway_warehouse(Path(tmp), server_settings=server) as wh:
        if args.statements:
            with psycopg.connect(wh.urls["admin"], autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        load = os.getloadavg()
        results = [bench(n, wh, free_port(), args.to_sql_max, args.statements) for n in sizes]
    print(f"\nload average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    fields = []
    for r in results:
        fields += [f"ingest_{r['label']}_per_s={r['ingest']:.0f}", f"copy_{r['label']}_per_s={r['copy']:.0f}",
                   f"ratio_{r['label']}={r['ingest'] / r['copy']:.2f}"]
    by_label = {r["label"]: r for r in results}
    if "1m" in by_label and "3m" in by_label:
        fields.append(f"rate_3m_vs_1m={by_label['3m']['ingest'] / by_label['1m']['ingest']:.2f}")
    fields.append(f"peak_rss_mb={max(r['rss'] for r in results):.0f}")
    print(" ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
