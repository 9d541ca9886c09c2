"""A critical stop holds the bad batch back, night after night, until it is fixed or released; BAT03 fires
on a share of the batch; BAT04 fires on a count mismatch the API itself produces.

Nights are real: the contract server (with faults that drop a field from a share of the records, or lose
records it still counts), ingestion, dbt's staging and ``dq_dossiers``, Great Expectations, all against a
throw-away PostgreSQL. What each night must decide is computed here from the records served — which
records lack the field, how many of the batch's records that is — never taken from the code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta

import orjson
import psycopg
import pytest

from expectations.validate import CriticalDataQualityError, run_data_quality
from pipeline import runs
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.province import Province
from simulator.scenario import Scenario
from simulator.server import Faults, _hits
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

START = datetime(2023, 2, 1, 1, 0)
SCENARIO = Scenario(seed=17, start=date(2023, 1, 1), end=date(2023, 2, 28), scale=0.02, clock=START)
SHARE = 0.05


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("held")
    inbox = tmp / "finance-inbox"  # no workbook this month; never the project's own .local folder
    inbox.mkdir()
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp / "wh") as wh, running_simulator(province) as sim:
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-01-01", "REPORTS_DIR": str(tmp / "reports"),
                                      "GX_PROJECT_DIR": str(tmp / "gx"), "INGEST_LOOKBACK_MINUTES": "0",
                                      "FINANCE_INBOX": str(inbox),
                                      "PROCEDURE_API_MAX_RETRY_SECONDS": "5"}, warehouse_url=wh.urls["writer"])
        yield {"url": wh.urls["writer"], "settings": settings, "sim": sim, "province": province}


def night(env: dict, run_id: str, when: datetime, faults: Faults | None = None) -> dict:
    """Land the night ending ``when`` with ``faults``, build dq_dossiers, validate: the summary, or the
    critical error."""
    env["province"].set_clock(when)
    env["sim"].api.faults = faults or Faults()
    done = run_night(env["settings"], when, run_id=run_id, until="quality")
    quality = done["results"]["quality"]
    return {"pulled": done["results"]["land"]["dossiers"][0],
            **({"critical": quality["critical"]} if "critical" in quality else {"summary": quality})}


def validate(env: dict, run_id: str, when: datetime) -> dict:
    """The batch and dossier checks of ``run_id`` at ``when``: the summary, or the critical error."""
    runs.start_run(run_id, when - timedelta(days=1), when, env["settings"])
    try:
        return {"summary": run_data_quality(run_id, when, env["settings"], notify=False, finance=False,
                                            digest=False)}
    except CriticalDataQualityError as exc:
        return {"critical": str(exc)}


def batch_findings(env: dict, run_id: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(env["url"]) as conn:
        rows = conn.execute("SELECT rule_id, record_key, observed_value FROM dq.findings WHERE validation_id = %s",
                            (f"{run_id}/batch",)).fetchall()
    out: dict[str, dict[str, str]] = {}
    for rule, key, observed in rows:
        out.setdefault(rule, {})[key] = observed
    return out


def served_without_status(env: dict, runs: list[str]) -> tuple[int, int]:
    """Plain Python over what was served: of the current, non-deleted records the ``runs`` landed, how many
    lack TrangThaiHoSo (the landed payload is the served record)."""
    with psycopg.connect(env["url"]) as conn:
        payloads = [p for (p,) in conn.execute(
            "SELECT payload FROM raw.dossiers_current WHERE NOT is_deleted AND run_id = ANY(%s)", (runs,))]
    return sum("TrangThaiHoSo" not in p for p in payloads), len(payloads)


def test_critical_stops_hold_the_bad_batch_back_until_fixed_or_released(env):
    province = env["province"]
    # A field dropped from 1% of the records: below the 5% share, the night goes on.
    low = Faults(omit_fields=("TrangThaiHoSo",), omit_share=0.01)
    first = night(env, "n1", START, low)
    lacking, total = served_without_status(env, ["n1"])
    assert lacking and lacking / total < SHARE, "the case must be below the share to prove anything"
    assert "critical" not in first, first.get("critical")

    # From 30% of the records: BAT03 stops the night, naming the field and the count.
    high = Faults(omit_fields=("TrangThaiHoSo",), omit_share=0.3)
    third = night(env, "n3", START + timedelta(days=12), high)
    lacking3, total3 = served_without_status(env, ["n3"])
    assert lacking3 / total3 >= SHARE
    assert "BAT03" in third["critical"]
    assert batch_findings(env, "n3") == {
        "BAT03": {"TrangThaiHoSo (run n3)": f"{lacking3} of {total3} records without it"}}

    # The next night the source is fine, but the broken versions of night 3 are still what staging serves:
    # the batch checks cover them too, so the night stops again — nothing of night 3 is published, however
    # many good records night 4 lands beside them.
    fourth = night(env, "n4", START + timedelta(days=14))
    lacking4, total4 = served_without_status(env, ["n3"])
    assert lacking4 and lacking4 / total4 >= SHARE
    assert served_without_status(env, ["n4"])[0] == 0
    assert "BAT03" in fourth["critical"]
    assert batch_findings(env, "n4")["BAT03"] == {
        "TrangThaiHoSo (run n3)": f"{lacking4} of {total4} records without it"}

    # The data team reviews night 3 and releases it (the documented command): the next night publishes.
    command = [sys.executable, "-m", "expectations", "release", "--run-id", "n3", "--note", "checked by hand"]
    released = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "WAREHOUSE_WRITER_URL": env["url"]})
    assert released.returncode == 0, released.stdout + released.stderr
    listed = subprocess.run([sys.executable, "-m", "expectations", "stopped"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "WAREHOUSE_WRITER_URL": env["url"]})
    assert "n3" in listed.stdout and "released" in listed.stdout
    # Released: n3 is out of scope; n4 (stopped, not released) is in it, and holds no broken record.
    assert served_without_status(env, ["n4"])[0] == 0
    again = validate(env, "n4-again", START + timedelta(days=14))
    assert "critical" not in again, again.get("critical")

    # BAT04 on a real count mismatch: the API loses records it still counts in its total.
    lossy = night(env, "n6", START + timedelta(days=20), Faults(drop=0.05))
    assert [w["status"] for w in lossy["pulled"]["not_complete"]] == ["mismatch"]
    assert "BAT04" in lossy["critical"]
    start, end = ts(START + timedelta(days=14)), ts(START + timedelta(days=20))
    in_window = [orjson.dumps(r) for r in province.iter_all() if start <= r["NgayCapNhat"] < end]
    lost = [r for r in in_window if _hits(r, 0.05, 4)]
    assert lost, "the fault must lose records to prove anything"
    kept = len(in_window) - len(lost)
    assert batch_findings(env, "n6")["BAT04"] == {
        f"dossiers/*/{start}": f"reported {len(in_window)}, fetched {kept}, landed {kept}, duplicates 0, "
                               "quarantined 0"}

    # The next night the API is whole again: the mismatched window is pulled again first, reconciles, and
    # the batch passes.
    healed = night(env, "n7", START + timedelta(days=21))
    assert healed["pulled"]["repulled_issues"] == 1 and healed["pulled"]["not_complete"] == []
    assert "critical" not in healed, healed.get("critical")
    with psycopg.connect(env["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM audit.window_issues WHERE resolved_at IS NULL").fetchone()[0] == 0
        landed = {k for (k,) in conn.execute("SELECT dossier_id FROM raw.dossier_current")}
    assert landed == {r["MaHoSo"] for r in province.iter_all()}, "every record the API lost was pulled again"


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")
