"""``make run``: bring up what is not configured externally, run the nightly pipeline through Airflow,
then say where the warehouse is and what the run found.

- The warehouse: ``WAREHOUSE_URL`` if set (bootstrapped), else the private PostgreSQL cluster.
- The procedure-system API: ``PROCEDURE_API_URL``/``PROCEDURE_API_TOKEN`` if set, else the simulator
  (scenario from ``SIM_*``), started in the background.
- The finance inbox: ``FINANCE_INBOX``; with the simulator, it receives the scenario's workbooks.
- The night: ``RUN_DATE``, else the simulator's clock, else today; the DAG runs with
  ``airflow dags test`` for the data interval that ends at 01:00 that day.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import requests

from ops.airflow import airflow_env, dags_test, ensure_db
from ops.dbt import ensure_manifest
from pipeline.settings import (
    LOCAL_DIR,
    LOCAL_TZ,
    NIGHTLY_DAG_ID,
    PROJECT_ROOT,
    RunSettings,
    SimulatorSettings,
    interactive_defaults,
    reports_dir,
    writer_url,
)


def simulator_env_file(env: dict[str, str] | None = None) -> Path:
    """Where ``python -m simulator start`` writes the running simulator's URL and token."""
    return SimulatorSettings.from_env(env).state_dir / "simulator.env"


def _run(*args: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env or os.environ.copy(),
                          text=True, capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"make run: `python {' '.join(args)}` failed (exit {proc.returncode})")
    return proc.stdout.strip()


def local_environment(base: dict[str, str] | None = None) -> tuple[dict[str, str], bool]:
    """The environment a night run by hand gets, as ``make run`` gives it — without starting anything:
    the writer URL of the configured warehouse, the running simulator's URL and token when no API is
    configured, the finance inbox, the reports folder, short retries. Returns it and whether the simulator
    is the source (``python -m ops.airflow test-dag`` uses it too). The defaults it fills in are the
    settings' (``pipeline.settings.interactive_defaults``)."""
    from simulator.__main__ import read_env_file
    from warehouse.errors import WarehouseError

    env = dict(os.environ if base is None else base)
    try:
        env["WAREHOUSE_WRITER_URL"] = writer_url(env)
    except WarehouseError as exc:
        raise SystemExit(f"no warehouse to write to ({exc})") from None
    simulated = not RunSettings.from_env(env).api_url
    if simulated:
        env.update(read_env_file(simulator_env_file(env)))
    run = RunSettings.from_env(env)
    if not run.finance_inbox_configured:  # a configured inbox is the finance department's: never created here
        run.finance_inbox.mkdir(parents=True, exist_ok=True)
    env.update(interactive_defaults(env, simulated))
    return env, simulated


def bring_up() -> tuple[dict[str, str], str, bool]:
    """Start or reach every service; returns the pipeline's environment, the warehouse description and
    whether the simulator is the source."""
    print("starting the warehouse …", flush=True)
    warehouse = _run("-m", "warehouse", "up")
    if not RunSettings.from_env().api_url:
        print("starting the procedure-system simulator (generating its province takes a few seconds) …",
              flush=True)
        print(_run("-m", "simulator", "start"))
    env, simulated = local_environment()
    inbox = RunSettings.from_env(env).finance_inbox
    if simulated and inbox.is_dir() and not any(inbox.rglob("giai-ngan-*.xlsx")):
        print(_run("-m", "simulator", "workbooks", "--out", str(inbox)))
    return env, warehouse, simulated


def run_date(env: dict[str, str], simulated: bool) -> date:
    """``RUN_DATE``, else the simulator's clock, else today (local time)."""
    settings = RunSettings.from_env(env)
    if settings.run_date:
        return settings.run_date
    if simulated:
        base = settings.api_url.rsplit("/api/", 1)[0]
        health = requests.get(base + "/_sim/health", timeout=10).json()
        return datetime.strptime(health["clock"], "%Y%m%d%H%M%S").date()
    return datetime.now(ZoneInfo(LOCAL_TZ)).date()


def report(writer_url: str) -> str:
    """What the latest run did, from the audit tables."""
    with psycopg.connect(writer_url) as conn:
        run = conn.execute("SELECT run_id, status, interval_start, interval_end, summary->'workbooks', "
                           "extract(epoch FROM finished_at - started_at) FROM audit.pipeline_runs "
                           "ORDER BY started_at DESC LIMIT 1").fetchone()
        if run is None:
            return "no pipeline run recorded"
        run_id, status, start, end, workbooks, seconds = run
        rows = conn.execute(
            "SELECT source, count(*), sum(fetched), sum(new_versions), sum(duplicates), sum(quarantined), "
            "sum(retries), round(sum(seconds), 1) FROM audit.ingest_runs WHERE run_id = %s GROUP BY source "
            "ORDER BY source", (run_id,)).fetchall()
        totals = conn.execute("SELECT count(*), count(*) FILTER (WHERE is_deleted) FROM raw.dossier_current").fetchone()
        quarantine = conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
        files = conn.execute("SELECT status, count(*), coalesce(sum(rows), 0) FROM raw.finance_files GROUP BY status "
                             "ORDER BY status").fetchall()
        rejected = conn.execute("SELECT reason FROM raw.finance_files WHERE status = 'rejected' ORDER BY file_name"
                                ).fetchall()
    lines = [f"run {run_id}: {status}, data interval {start} → {end} (local time), {float(seconds or 0):.1f}s",
             f"  {'source':<12}{'windows':>8}{'fetched':>10}{'new versions':>14}{'duplicates':>12}"
             f"{'quarantined':>13}{'retries':>9}{'seconds':>9}"]
    for source, n, fetched, new, dup, quarantined, retries, secs in rows:
        lines.append(f"  {source:<12}{n:>8}{fetched:>10}{new:>14}{dup:>12}{quarantined:>13}{retries:>9}{secs:>9}")
    lines.append(f"  dossiers in the warehouse: {totals[0]:,} (of which {totals[1]:,} deleted); "
                 f"records in quarantine: {quarantine}")
    if workbooks:
        lines.append(f"  workbooks this run: {workbooks.get('loaded', 0)} loaded, {workbooks.get('rejected', 0)} "
                     f"rejected, {workbooks.get('skipped', 0)} skipped, {workbooks.get('rows', 0)} rows")
    lines.append("  workbooks in the warehouse: " + ", ".join(f"{n} {s} ({r} rows)" for s, n, r in files))
    lines += [f"  rejected workbook: {reason}" for (reason,) in rejected]
    lines += ["", "== Summary ==", summary(writer_url, run_id)]
    lines += quality(writer_url, run_id)
    return "\n".join(lines)


def summary(writer_url: str, run_id: str) -> str:
    """The figures the seed asks for (publication.summary), or the reason they are missing."""
    from publication.summary import build_summary

    try:
        return build_summary(writer_url, run_id)
    except Exception as exc:  # e.g. the marts were not built because the run stopped
        return f"(no summary: {exc})"


def quality(writer_url: str, run_id: str) -> list[str]:
    """The run's data-quality digest (expectations/digest.py) and where the details are."""
    with psycopg.connect(writer_url) as conn:
        digest = conn.execute("SELECT body FROM dq.digests WHERE run_id = %s", (run_id,)).fetchone()
    if digest is None:
        return []
    reports = reports_dir()
    return ["", "== Data quality (Great Expectations) ==", digest[0].rstrip(),
            f"Data Docs: {reports / 'data-docs' / 'index.html'}",
            f"Digest files: {reports / 'dq-digest'}"]


def published(env: dict[str, str]) -> str:
    """The night's HTML report (written by the DAG) and the monthly publication of the latest complete
    month (the monthly DAG is triggered by the marts' asset under a scheduler; here it is run directly)."""
    from ops.publish import publication_dir, publish_due_month
    from pipeline.settings import Settings

    settings = Settings.from_env(env)
    lines = [f"HTML report: {settings.reports_dir / 'report' / 'latest.html'}"]
    try:
        result = publish_due_month(settings=settings)
        files = result.get("published") or result.get("already") or []
        lines.append(f"monthly publication (công khai) {result.get('month', '')}: "
                     + (", ".join(files) if files else result.get("reason", "nothing to publish")))
    except LookupError as exc:
        lines.append(f"monthly publication: {exc}")
    lines.append(f"any month: python -m publication monthly --month YYYY-MM  (into {publication_dir(settings)})")
    return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    env, warehouse, simulated = bring_up()
    night = run_date(env, simulated)
    airflow = airflow_env(env)
    print("preparing Airflow's metadata database and the dbt manifest …", flush=True)
    ensure_db(airflow)
    run = RunSettings.from_env(env)
    ensure_manifest(run.writer_url)
    log_file = LOCAL_DIR / "airflow" / "last-run.log"
    print(f"\n== Nightly pipeline for the night of {night} (Airflow DAG {NIGHTLY_DAG_ID}) ==", flush=True)
    code = dags_test(NIGHTLY_DAG_ID, night, airflow, log_file=log_file, progress=True)
    print("\n== Warehouse ==\n" + warehouse)
    source = run.api_url
    source += f" (the simulator; token in {simulator_env_file(env)})" if simulated else ""
    print(f"\n== Sources ==\nprocedure-system API: {source}\nfinance workbooks: {run.finance_inbox}")
    print("\n== What the run did ==\n" + report(run.writer_url))
    if code == 0:
        print("\n== Published ==\n" + published(env))
    if code != 0:
        tail = log_file.read_text().splitlines()[-40:]
        print("\n".join(["", f"The DAG run FAILED (exit {code}); last lines of {log_file}:", *tail]), file=sys.stderr)
    print(f"\nmake run took {time.monotonic() - started:.0f}s. Open: {_where_to_click(env)}")
    return code


def _where_to_click(env: dict[str, str]) -> str:
    from ops.serve import serve_port

    reports = reports_dir(env)
    return (f"{reports / 'report' / 'latest.html'} (the morning report); `make serve` puts every page behind "
            f"http://127.0.0.1:{serve_port()}/ (report, publications, digests, Data Docs, dbt docs), "
            "`make superset` the dashboards, `make airflow` the nightly scheduler and its UI")

if __name__ == "__main__":
    sys.exit(main())
