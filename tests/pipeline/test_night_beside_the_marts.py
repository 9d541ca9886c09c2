"""Past the batch checks (the gate), a night builds the marts while the dossier rules, the finance branch and
the data-quality marts run beside them, and before it the processing steps build beside the staging stage and
the gate (``pipeline.night.run_night``, as the nightly DAG does: its wiring is
checked in ``tests/dags/test_dag_integrity.py``).

Real nights on a throw-away warehouse and the contract server: the order is read from each stage's start and
end, and the data-quality mart is compared with the intervals the rules stored — a mart built before the
rules, or from another night's findings, would not match. A failure of the rules themselves (a query that
could not run, injected here) leaves the other marts built and nothing of the data-quality marts published.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise

import psycopg
import pytest

from expectations import validate
from pipeline.night import run_night
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.ingestion import api_settings
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

NIGHT = datetime(2023, 3, 1, 1, 0)
SCENARIO = Scenario(seed=23, start=date(2023, 2, 1), end=date(2023, 3, 31), scale=0.005, clock=NIGHT)
BESIDE = ("quality", "finance.staging", "finance.marts", "dq_marts")  # one after the other, beside the marts


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beside")
    inbox = tmp / "finance-inbox"  # no workbook: the finance branch builds from none
    inbox.mkdir()
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp / "wh") as wh, running_simulator(province) as sim:
        settings = api_settings(sim, wh.urls["writer"], HISTORY_START="2023-02-01", REPORTS_DIR=str(tmp / "reports"),
                                GX_PROJECT_DIR=str(tmp / "gx"), INGEST_LOOKBACK_MINUTES="0", FINANCE_INBOX=str(inbox))
        first = run_night(settings, NIGHT, run_id="beside-1", lease=False)
        yield {"url": wh.urls["writer"], "settings": settings, "province": province, "first": first}


def test_the_dossier_rules_run_beside_the_marts_and_the_data_quality_marts_after_them(env):
    night = env["first"]
    span = night["spans"]
    assert night["status"] == "success"
    assert night["states"]["marts_published"] == "success"
    assert {s: night["states"][s] for s in ("batch", "marts", *BESIDE, "report")} == \
        dict.fromkeys(("batch", "marts", *BESIDE, "report"), "success")
    # the processing steps build beside the staging stage and the batch checks (neither reads them), and the
    # marts wait for them as for the gate
    assert night["states"]["steps"] == "success"
    assert span["steps"][0] < span["staging"][1] and span["staging"][0] < span["steps"][1]
    assert span["steps"][1] <= span["marts"][0]
    # both sides start once the gate has passed, and overlap
    assert span["staging"][1] <= span["batch"][0]
    assert span["batch"][1] <= span["marts"][0] and span["batch"][1] <= span["quality"][0]
    assert span["quality"][0] < span["marts"][1] and span["marts"][0] < span["quality"][1]
    # beside the marts, one after the other; the report once both sides are done
    for before, after in pairwise(BESIDE):
        assert span[before][1] <= span[after][0], f"{after} must start after {before}"
    assert max(span["marts"][1], span["dq_marts"][1]) <= span["report"][0]
    # the night's data-quality summary holds both parts, as the batch and dossier checks gave them
    assert night["results"]["quality"]["batch"]["status"] == "passed"
    assert night["results"]["quality"]["dossiers"]["evaluated"] > 0
    with psycopg.connect(env["url"]) as conn:
        stored = set(conn.execute(
            "SELECT dossier_id, rule_id FROM dq.issue_intervals WHERE NOT voided AND closed_seq IS NULL"))
        published = set(conn.execute("SELECT dossier_id, rule_id FROM marts.fct_dq_issue WHERE is_open"))
        marts = conn.execute("SELECT count(*) FROM marts.fct_dossier").fetchone()[0]
        # the first night's tables were analysed before it ended (macros/statistics.sql), the snapshot too:
        # the next night is planned with statistics, whether or not autovacuum came round to them
        unanalysed = [t for (t,) in conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) AND last_analyze IS NULL",
            (["snap_dossier_status", "dq_dossiers", "int_dq_issues", "fct_dossier", "int_dossiers__steps"],))]
    assert stored, "the scenario's dossiers break some rule: nothing to compare otherwise"
    assert published == stored, "the data-quality mart is built from the night's findings, after the rules"
    assert marts > 0
    assert unanalysed == []


def test_a_failure_of_the_dossier_rules_leaves_the_other_marts_built_and_publishes_nothing_else(env, monkeypatch):
    def broken(*args, **kwargs):
        raise validate.DataQualityError("the rules could not run (injected)")

    monkeypatch.setattr(validate, "run_dossier_checks", broken)
    when = NIGHT + timedelta(days=1)
    env["province"].set_clock(when)
    with psycopg.connect(env["url"]) as conn:
        built = conn.execute("SELECT max(seq) FROM dq.validation_runs").fetchone()[0]
    night = run_night(env["settings"], when, run_id="beside-2", lease=False, strict=False)
    states = night["states"]
    assert night["status"] == "failed"
    assert states["batch"] == "success" and states["quality"] == "failed"
    assert "injected" in night["results"]["quality"]["error"]
    # the marts and the finance branch are built; the data-quality marts, the Assets and the report wait
    assert {s: states[s] for s in ("marts", "finance.staging", "finance.marts")} == \
        dict.fromkeys(("marts", "finance.staging", "finance.marts"), "success")
    assert states["dq_marts"] == "upstream_failed" and states["report"] == "upstream_failed"
    assert "marts_published" not in states
    with psycopg.connect(env["url"]) as conn:
        # the batch and the workbook checks validated this night, no dossier rule
        assert conn.execute("SELECT array_agg(suite ORDER BY suite) FROM dq.validation_runs WHERE seq > %s",
                            (built,)).fetchone()[0] == ["batch", "finance"]


def test_a_failure_of_the_steps_holds_the_marts_back_not_the_gate(env, monkeypatch):
    """The steps' dbt build fails (injected): the staging stage and the batch checks beside it still run and
    pass, and so do the dossier rules, their marts and the finance branch, which read no step; the marts and
    the report wait; the night ends failed, and a strict night raises once both sides have ended."""
    from pipeline import night as night_module

    real = night_module.dbt_build

    def steps_broken(settings, selector, *args, **kwargs):
        if selector == "nightly_steps":
            raise night_module.NightFailed("dbt build --selector nightly_steps failed: injected")
        return real(settings, selector, *args, **kwargs)

    monkeypatch.setattr(night_module, "dbt_build", steps_broken)
    when = NIGHT + timedelta(days=2)
    env["province"].set_clock(when)
    night = run_night(env["settings"], when, run_id="beside-3", lease=False, strict=False)
    states = night["states"]
    assert night["status"] == "failed"
    assert states["steps"] == "failed" and "injected" in night["results"]["steps"]["error"]
    assert states["staging"] == "success" and states["batch"] == "success"
    assert {s: states[s] for s in ("quality", "dq_marts", "finance.marts")} == \
        dict.fromkeys(("quality", "dq_marts", "finance.marts"), "success")
    assert states["marts"] == "upstream_failed" and states["report"] == "upstream_failed"
    with pytest.raises(night_module.NightFailed, match="steps failed"):
        run_night(env["settings"], when, run_id="beside-4", lease=False)
