"""A night without Airflow: the nightly DAG's sequence as plain function calls, for the tests, the benchmarks
and anyone who wants one night in a Python shell.

    from pipeline.night import run_night
    night = run_night(settings, datetime(2023, 10, 1, 1))     # the night ending 2023-10-01 01:00

The stages, in the DAG's order (``dags/nightly.py``): ``land`` (reference lists, the dossier pull with the
windows earlier nights left open, the workbooks), ``staging`` (dbt selector ``nightly_staging``),
``quality`` (the batch checks, a gate: a critical failure stops the dossier and finance marts, as in the
DAG; then the dossier rules), ``finance`` (``nightly_finance_staging``, the workbook checks,
``nightly_finance_marts``), ``marts`` (``nightly_marts``; ``nightly_dq_marts`` once the dossier rules are
done) — past the gate, the marts build while a thread of their own runs the dossier rules, the finance
branch and the data-quality marts, as the DAG runs them side by side —, ``report`` (and, with ``docs``, the
dbt docs site as the DAG's ``dbt_docs`` task
writes it: about seven seconds a night the tests of the figures do not need); then, always, the end of
the night (``pipeline.runs.finish_night``: the digest, the alert, the run's status, the lease).
Beside the staging stage and the batch checks, a thread of its own builds the processing steps
(``nightly_steps``), which the marts need and the gate does not (part of ``marts``: a night that stops
before them builds none). ``until`` stops after a stage. A failing stage is recorded as the DAG would
record its task (``failed``, the stages that needed it ``upstream_failed``) and does not raise, unless
``strict`` — the default, so a test sees a broken night at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("land", "staging", "quality", "finance", "marts", "report")


class NightFailed(RuntimeError):
    """A stage of the night failed (``strict``)."""


def dbt_build(settings: Settings, selector: str, as_of: datetime, run_id: str | None = None,
              extra_vars: dict | None = None, full_refresh: bool = False, beside: bool = False) -> str:
    """``dbt build --selector <selector>`` with the night's vars; returns dbt's output, raises on failure.
    ``beside``: while another dbt command runs, in target and log folders of their own (``beside_folders``)."""
    from ops.dbt import run_dbt

    dbt_vars = settings.dbt_vars(as_of=as_of.isoformat(), **({"pipeline_run_id": run_id} if run_id else {}),
                                 **(extra_vars or {}))
    args = ["build", "--selector", selector, "--vars", json.dumps(dbt_vars)]
    proc = run_dbt([*args, "--full-refresh"] if full_refresh else args, settings.warehouse_url,
                   base_env=beside_folders() if beside else None)
    if proc.returncode != 0:
        raise NightFailed(f"dbt build --selector {selector} failed:\n{proc.stdout[-6000:]}")
    return proc.stdout


def beside_folders() -> dict[str, str]:
    """The environment of a dbt command run beside the main one: dbt writes its compiled SQL, manifest, run
    results and parse state into its target folder and rotates its log, so two commands at once need folders
    of their own. The main target folder's name with ``-beside`` (and its log folder's); the parse state is
    seeded from the main one, so the first command there does not parse the whole project."""
    from ops.dbt import LOG_PATH, seed_partial_parse, target_path

    main = target_path()
    folder = main.with_name(main.name + "-beside")
    seed_partial_parse(main, folder)
    logs = Path(os.environ.get("DBT_LOG_PATH") or LOG_PATH)
    return {**os.environ, "DBT_TARGET_PATH": str(folder), "DBT_LOG_PATH": str(logs.with_name(logs.name + "-beside"))}


def run_night(settings: Settings, interval_end: datetime, *, interval_start: datetime | None = None,
              run_id: str | None = None, until: str = "report", lease: bool = True, checks: bool = True,
              strict: bool = True, extra_vars: dict | None = None, docs: bool = False) -> dict[str, Any]:
    """Run the night ending ``interval_end`` (naive local time). ``lease``: take the warehouse's lease as the
    DAG does; ``checks``: run the data-quality stage (a test of the marts alone may skip it);
    ``extra_vars``: more dbt vars (e.g. ``incremental_lookback_minutes``). Returns the run id, each stage's
    result, state, seconds and span (start and end, seconds into the night), dbt's output per selector, the
    run's status and printable summary."""
    from expectations.validate import (
        CriticalDataQualityError,
        load_library,
        quality_summary,
        run_batch_checks,
        run_dossier_checks,
        run_finance_quality,
    )
    from ingestion import loads
    from pipeline import runs

    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}")
    interval_start = interval_start or interval_end - timedelta(days=1)
    run_id = run_id or f"night-{interval_end:%Y%m%dT%H%M}"
    wanted = STAGES[:STAGES.index(until) + 1]
    results: dict[str, Any] = {"dbt": {}}
    states: dict[str, str] = {}
    seconds: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}  # each stage's start and end, seconds into the night
    t0 = time.perf_counter()

    def stage(name: str, part_of: str, needs: tuple[str, ...], work, stop: bool | None = None) -> Any:
        """Run one stage as the DAG runs its task. ``stop``: whether a failure ends the night at once
        (``strict``'s default); a stage run beside another is not stopped from its own thread."""
        if part_of not in wanted:
            return None
        if any(states.get(n) not in ("success", None) for n in needs):
            states[name] = "upstream_failed"
            return None
        started = time.perf_counter()
        try:
            value = work()
        except CriticalDataQualityError as exc:
            states[name] = "failed"
            results[name] = {"critical": str(exc)}
            return None
        except Exception as exc:
            states[name] = "failed"
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log.exception("night %s: %s failed", run_id, name)
            if strict if stop is None else stop:
                _finish(runs, run_id, interval_end, results, states, settings, lease)
                raise NightFailed(f"{name} failed: {exc}") from exc
            return None
        finally:
            ended = time.perf_counter()
            seconds[name] = round(ended - started, 3)
            spans[name] = (round(started - t0, 3), round(ended - t0, 3))
        states[name] = "success"
        results[name] = value
        return value

    if lease:
        results["start"] = runs.begin_night(run_id, interval_start, interval_end, settings)
    else:
        results["start"] = runs.start_run(run_id, interval_start, interval_end, settings)

    def land() -> dict:
        out = {"reference": loads.refresh_reference(run_id, interval_end, settings)}
        partitions = loads.plan_dossier_partitions(settings)
        pulled = [loads.pull_dossiers(run_id, p, interval_end, interval_start=interval_start, settings=settings)
                  for p in partitions]
        out["dossiers"] = pulled
        out["completion"] = loads.complete_partitions(run_id, interval_end, pulled, interval_start=interval_start,
                                                      settings=settings)
        return out

    def dbt(selector: str, beside: bool = False):
        return lambda: _dbt(results, settings, selector, interval_end, run_id, lease, extra_vars, beside)

    stage("land", "land", (), land)
    stage("load_workbooks", "land", ("land",), lambda: loads.load_workbooks(run_id, settings))
    # The staging stage and the gate, as in the DAG: the processing steps (nightly_steps) decode their part
    # of the payloads on a thread of their own (their dbt in a target folder of its own), while the staged
    # dossiers, dq_dossiers and the batch checks, which read no step, go on; the marts wait for both.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="night-steps") as pool:
        # (a part of the marts: a night that stops before them, ``until="quality"``, needs no step)
        steps = pool.submit(stage, "steps", "marts", ("land",), dbt("nightly_steps", True), False)
        if checks and "quality" in wanted:
            pool.submit(load_library)  # Great Expectations' import, while the dbt commands run
        stage("staging", "staging", ("land",), dbt("nightly_staging"), False)
        if checks:
            stage("batch", "quality", ("staging",), lambda: run_batch_checks(run_id, interval_end, settings),
                  False)
        steps.result()
    if strict and (failed := [n for n in ("staging", "steps", "batch")
                              if states.get(n) == "failed" and "error" in results[n]]):
        _finish(runs, run_id, interval_end, results, states, settings, lease)
        raise NightFailed(f"{failed[0]} failed: {results[failed[0]]['error']}")
    gate = ("staging", "batch") if checks else ("staging",)

    def beside_the_marts() -> None:
        """The dossier rules, the finance branch and the data-quality marts, one after the other, on a thread
        of their own while the marts build (their dbt in a target folder of its own)."""
        if checks:
            stage("quality", "quality", gate, lambda: run_dossier_checks(run_id, interval_end, settings), False)
        stage("finance.staging", "finance", ("load_workbooks", *gate), dbt("nightly_finance_staging", True), False)
        if checks:
            stage("finance.quality", "finance", ("finance.staging",),
                  lambda: run_finance_quality(run_id, interval_end, settings), False)
        stage("finance.marts", "finance", ("finance.staging", *(("finance.quality",) if checks else ())),
              dbt("nightly_finance_marts", True), False)
        stage("dq_marts", "marts", (*gate, *(("quality",) if checks else ())), dbt("nightly_dq_marts", True), False)

    # Past the gate, as in the DAG: the marts, and beside them what does not feed them — the dossier rules
    # (no mart but nightly_dq_marts reads their findings), then the finance branch and the data-quality marts.
    # Nothing stops the night from inside the section: a failure is raised (strict) once both sides ended.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="night-beside") as pool:
        beside = pool.submit(beside_the_marts)
        stage("marts", "marts", (*gate, "steps"), dbt("nightly_marts"), False)
        beside.result()
    if states.get("marts") == "success" and states.get("dq_marts") == "success":
        states["marts_published"] = "success"
    # The night's data-quality summary under "quality", as run_data_quality gives it: the batch checks' and
    # the dossier rules' parts together, or the batch's critical stop.
    if states.get("batch") == "failed":
        results["quality"] = results["batch"]
    elif states.get("quality") == "success":
        results["quality"] = quality_summary(results["batch"], results["quality"])
    if strict and (failed := [n for n, state in states.items() if state == "failed" and "error" in results[n]]):
        _finish(runs, run_id, interval_end, results, states, settings, lease)
        raise NightFailed(f"{failed[0]} failed: {results[failed[0]]['error']}")

    def report() -> dict:
        from ops.publish import nightly_report

        return nightly_report(run_id, interval_end, settings=settings)

    stage("report", "report", ("marts", "dq_marts"), report)
    if docs:
        from ops.dbt import write_docs_site

        stage("dbt_docs", "report", ("marts", "dq_marts"),
              lambda: str(write_docs_site(settings.warehouse_url, settings.reports_dir / "dbt-docs")))
    outcome = _finish(runs, run_id, interval_end, results, states, settings, lease)
    log.info("night %s: %s in %.1fs", run_id, outcome["status"], time.perf_counter() - t0)
    return {"run_id": run_id, "results": results, "states": states, "seconds": seconds, "spans": spans,
            **outcome}


def _dbt(results: dict, settings: Settings, selector: str, as_of: datetime, run_id: str, lease: bool,
         extra_vars: dict | None, beside: bool = False) -> str:
    output = dbt_build(settings, selector, as_of, run_id if lease else None, extra_vars, beside=beside)
    results["dbt"][selector] = output
    return f"dbt build --selector {selector}: ok"


def _finish(runs, run_id: str, as_of: datetime, results: dict, states: dict, settings: Settings,
            lease: bool) -> dict:
    """The end of the night, however it went: with the lease, ``finish_night`` (digest, alert, status,
    release); without, the run closed with its status."""
    summary_results = {k: v for k, v in results.items() if k != "dbt"}
    if lease:
        return runs.finish_night(run_id, as_of, summary_results, states, settings=settings)
    failed = sorted(t for t, s in states.items() if s == "failed")
    status = "failed" if failed else "success"
    return {"summary": runs.finish_run(run_id, summary_results, settings, status=status), "status": status,
            "failed_tasks": failed}
