"""One night on the CeleryExecutor against the same night on the LocalExecutor (``make bench-celery``; not a test).

The night is the first of ``cchc_nightly`` on a fresh warehouse — the scenario's whole history landed, then every
later stage — with the partitioned pull (``INGEST_PARTITION=district``: one mapped pull per district) and one
Cosmos task per dbt model, snapshot and test (``DBT_TASK_GRAIN=node``), the grain at which the work spreads over
workers. It runs twice, one stack after the other, each started the way people start it:

- ``make airflow`` (``python -m ops.airflow standalone``: the LocalExecutor),
- ``make airflow-celery`` (``python -m ops.airflow celery``: a private Redis broker and two Celery workers),

each against its own throw-away warehouse (production server settings) fed by the same simulator and the same
finance inbox, with the same ``APPLICANT_HASH_KEY``, and the run triggered through the REST API with the same
run id and data interval, as the scheduler would create it. Then it checks that both runs succeeded, that on
Celery both workers ran tasks (the task instances' ``hostname`` from the REST API: ``worker1.<host>``,
``worker2.<host>``), and that the two warehouses' marts are equal (a checksum of every marts table's rows).

Both stacks run with the same Airflow settings but the executor: ``airflow_env``'s parallelism (the number of
CPUs: two task processes on the LocalExecutor, two workers of one task each on Celery) and ``[workers]
min_heartbeat_interval=1`` (the shared Celery configuration's; the LocalExecutor's task supervisor reads the same
setting). The wall time is the DAG run's own, from its start to its end (Airflow's ``start_date`` and
``end_date``); the stacks' start-up is not in it. The last line is machine-readable:
``celery_night_s=… local_night_s=… workers=2 tasks_worker1=… tasks_worker2=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the project importable

from benchmarks.harness import TOKEN, serving_simulator
from pipeline.settings import NIGHTLY_DAG_ID
from simulator.__main__ import investors
from simulator.finance import write_workbooks
from tests.support.airflow_stack import Stack, stack_environment
from tests.support.postgres import throwaway_warehouse
from tests.support.redis import redis_server

NIGHT = datetime(2023, 10, 1, 1)  # the simulator's clock: the default scenario ends on 30 September 2023
INTERVAL = ("2023-09-30T01:00:00+07:00", "2023-10-01T01:00:00+07:00")
RUN_ID = "bench-celery-2023-10-01"
RUN_TIMEOUT = 3600
WORKERS = 2
EXECUTORS = {"local": "standalone", "celery": "celery"}
# The setting both stacks share so that only the executor differs (the Celery configuration file's value).
SAME_SETTINGS = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1"}


# Columns that hold when the night ran, not what it computed: two runs of the same night differ there and only
# there (found by this benchmark, which names the differing columns of any table whose checksum differs).
RUN_TIME_COLUMNS = {
    "dim_unit_geo": {"computed_at"},  # when the reference step computed the geography
    "fct_dossier": {"source_changed_at"},  # when the dossier's landed state last changed: the landing's time
    "fct_dq_daily": {"validated_through"},  # the incremental build's bookmark: the validation's end
    "fct_dq_issue": {"validated_through"},
}


def checksums(conn: psycopg.Connection) -> dict[str, str]:
    """A digest of every marts table's rows, ``RUN_TIME_COLUMNS`` left out: their count and the md5 of their
    text forms in order (as ``checksums`` in tests/dags/test_nightly_run.py, on the chosen columns)."""
    tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'marts' ORDER BY 1")]
    digests = {}
    for table in tables:
        columns = [c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = %s "
            "ORDER BY ordinal_position", [table]) if c not in RUN_TIME_COLUMNS.get(table, ())]
        row = "row(" + ", ".join(f'"{c}"' for c in columns) + ")::text"
        digests[table] = conn.execute(f"SELECT count(*) || ':' || coalesce(md5(string_agg(r, '|' ORDER BY r)), '') "
                                      f"FROM (SELECT {row} AS r FROM marts.{table}) x").fetchone()[0]
    return digests


def differing_columns(local_url: str, celery_url: str, table: str) -> list[str]:
    """The columns of ``marts.<table>`` whose values differ between the two warehouses (to name what a
    checksum difference is made of)."""
    def digests(url: str) -> dict[str, str]:
        with psycopg.connect(url) as conn:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = %s ORDER BY ordinal_position", [table])]
            return {c: conn.execute(f'SELECT md5(string_agg(coalesce("{c}"::text, \'<null>\'), \'|\' '
                                    f'ORDER BY "{c}"::text)) FROM marts.{table}').fetchone()[0] for c in columns}

    local, celery = digests(local_url), digests(celery_url)
    return sorted(c for c in local.keys() | celery.keys() if local.get(c) != celery.get(c))


def seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_night(name: str, wh, base: Path, api_url: str, inbox: Path, hash_key: str) -> dict:
    """The night on one stack, against the fresh warehouse ``wh``; returns its figures, task instances and
    marts' checksums."""
    print(f"\n== {name}: {'make airflow-celery' if name == 'celery' else 'make airflow'} ==", flush=True)
    home = base / "airflow"
    env = stack_environment(home, wh, api_url, TOKEN, inbox, INGEST_PARTITION="district", DBT_TASK_GRAIN="node",
                            APPLICANT_HASH_KEY=hash_key, CELERY_WORKERS=str(WORKERS), **SAME_SETTINGS)
    started = time.monotonic()
    stack = Stack(home, env, EXECUTORS[name])
    try:
        print(f"  {stack.wait_ready(timeout=600).split('] ', 1)[-1]} "
              f"({time.monotonic() - started:.0f}s after the start)", flush=True)
        errors, _ = stack.wait_dags({NIGHTLY_DAG_ID})
        if errors["total_entries"]:
            raise stack.fail(f"import errors: {errors['import_errors']}")
        stack.trigger_night(NIGHTLY_DAG_ID, RUN_ID, *INTERVAL)
        run = stack.wait_run(NIGHTLY_DAG_ID, RUN_ID, RUN_TIMEOUT)
        tis = stack.task_instances(NIGHTLY_DAG_ID, RUN_ID)
    finally:
        left = stack.close()
    if left:
        raise RuntimeError(f"{name}: processes left after the stop: {left}")
    failed = sorted(f"{t['task_id']}[{t['map_index']}]: {t['state']}" for t in tis if t["state"] != "success")
    if run["state"] != "success" or failed:
        raise RuntimeError(f"{name}: the night ended {run['state']}; tasks not successful: {failed}; "
                           f"logs in {home / 'logs'}")
    with psycopg.connect(wh.urls["writer"]) as conn:
        marts = checksums(conn)
        dossiers = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
    return {"run": run, "tis": tis, "marts": marts, "dossiers": dossiers, "writer": wh.urls["writer"],
            "wall": seconds_between(run["start_date"], run["end_date"])}


def concurrency_profile(night: dict) -> dict[int, float]:
    """Seconds of the night during which 0, 1, 2… task instances were running, from their start and end
    times: how much of the night could use more task slots at all."""
    run = night["run"]
    events = [(datetime.fromisoformat(run["start_date"]), 0), (datetime.fromisoformat(run["end_date"]), 0)]
    for ti in night["tis"]:
        if ti["start_date"] and ti["end_date"]:
            events += [(datetime.fromisoformat(ti["start_date"]), 1), (datetime.fromisoformat(ti["end_date"]), -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    profile: Counter = Counter()
    running, last = 0, events[0][0]
    for when, change in events:
        profile[running] += (when - last).total_seconds()
        running, last = running + change, when
    return dict(sorted(profile.items()))


def describe(name: str, night: dict) -> Counter:
    """Print one night's figures; returns its task instances by host."""
    tis = night["tis"]
    hosts = Counter(t["hostname"] for t in tis if t["hostname"])
    busy = sum(t["duration"] or 0 for t in tis)
    waits = [seconds_between(t["queued_when"], t["start_date"]) for t in tis if t["queued_when"]]
    print(f"  {name}: the night took {night['wall']:.1f}s for {len(tis)} task instances "
          f"({night['dossiers']:,} dossiers in fct_dossier); the tasks ran {busy:.0f}s in all; "
          f"queued → running {statistics.median(waits):.1f}s median, {max(waits):.1f}s at most")
    profile = concurrency_profile(night)
    print("    tasks running at once, share of the night: " + ", ".join(
        f"{n}: {seconds / night['wall']:.0%}" for n, seconds in profile.items()))
    for host, count in sorted(hosts.items()):
        print(f"    {host}: {count} task instances")
    return hosts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.1,
                        help="the scenario's volume (1: the province's, about 300k dossiers; default 0.1)")
    args = parser.parse_args()
    redis_server()  # installed when missing, as the tests do
    hash_key = secrets.token_hex(32)
    nights: dict[str, dict] = {}
    with contextlib.ExitStack() as cleanup:
        base = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-celery-")))
        api = cleanup.enter_context(serving_simulator(args.scale, NIGHT))
        inbox = base / "inbox"
        write_workbooks(inbox, investors(), datetime(2023, 1, 1).date(), datetime(2023, 9, 30).date(), seed=2023)
        for name in EXECUTORS:  # one after the other; each warehouse is kept for the comparison
            wh = cleanup.enter_context(throwaway_warehouse(base / name / "wh", env={"APPLICANT_HASH_KEY": hash_key},
                                                           server_settings={}))
            nights[name] = run_night(name, wh, base / name, api, inbox, hash_key)
        local, celery = nights["local"], nights["celery"]
        print(f"\n== the night, scale {args.scale:g}: {INTERVAL[0]} → {INTERVAL[1]} ==")
        describe("LocalExecutor", local)
        hosts = describe("CeleryExecutor", celery)
        different = sorted(t for t in local["marts"].keys() | celery["marts"].keys()
                           if local["marts"].get(t) != celery["marts"].get(t))
        for table in different:
            print(f"  marts.{table} differs: columns {differing_columns(local['writer'], celery['writer'], table)}")
    per_worker = {f"worker{i}": sum(n for host, n in hosts.items() if host.split(".")[0] == f"worker{i}")
                  for i in range(1, WORKERS + 1)}
    excluded = ", ".join(f"{t}.{c}" for t, cs in sorted(RUN_TIME_COLUMNS.items()) for c in sorted(cs))
    print(f"  marts: {len(local['marts'])} tables, "
          + ("identical on both executors" if not different else f"{len(different)} differ: {different}")
          + f" (run-time columns left out: {excluded})")
    print(f"  Celery / Local wall time: {celery['wall'] / local['wall']:.2f}")
    ok = not different and all(per_worker.values())
    if not all(per_worker.values()):
        print(f"  FAILED: a worker ran no task: {per_worker}")
    print(f"celery_night_s={celery['wall']:.1f} local_night_s={local['wall']:.1f} workers={WORKERS} "
          + " ".join(f"tasks_{name}={count}" for name, count in per_worker.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
