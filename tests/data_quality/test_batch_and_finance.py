"""The critical batch checks (a broken batch stops the run) and the workbook checks, on a real warehouse.

Each broken batch is made the way it happens in production — a loader bug duplicating a key or losing a
row, a reconciliation that does not add up, a staged column gone, an API that stops sending a field —
and must stop the run with the right finding (an API that stops sending a field, and the nights after it:
``test_held_batches.py``). Workbook findings are compared with what the simulator
says it put in the workbooks, and with the rules computed in plain Python over the loaded rows.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import psycopg
import pytest

from expectations.validate import CriticalDataQualityError, release_batch, run_data_quality
from ops.dbt import run_dbt
from pipeline import runs
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support.postgres import throwaway_warehouse
from tests.support.simulator import running_simulator

NIGHT = datetime(2023, 4, 1, 1, 0)
SCENARIO = Scenario(seed=5, start=date(2023, 1, 1), end=date(2023, 3, 31), scale=0.01, clock=NIGHT)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    finance = write_workbooks(tmp / "inbox", investors(), date(2023, 1, 1), date(2023, 3, 31), seed=5)
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp / "wh") as wh, running_simulator(province) as sim:
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-01-01", "FINANCE_INBOX": str(tmp / "inbox"),
                                      "REPORTS_DIR": str(tmp / "reports"), "GX_PROJECT_DIR": str(tmp / "gx"),
                                      "INGEST_LOOKBACK_MINUTES": "0"}, warehouse_url=wh.urls["writer"])
        summary = run_night(settings, NIGHT, run_id="clean", until="finance")["results"]["quality"]
        yield {"wh": wh, "url": wh.urls["writer"], "admin": wh.urls["admin"], "settings": settings, "sim": sim,
               "finance": finance, "summary": summary, "tmp": tmp}


def findings(url: str, validation_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with psycopg.connect(url) as conn:
        for rule, key in conn.execute("SELECT rule_id, record_key FROM dq.findings WHERE validation_id = %s",
                                      (validation_id,)):
            out.setdefault(rule, set()).add(key)
    return out


def stopped(env: dict, run_id: str) -> CriticalDataQualityError:
    """Run the data-quality stage for ``run_id``, expecting the critical stop; check what it left behind.
    The stopped batch is then released (as the data team would once it has seen it), so that the next
    tests' batches do not include it."""
    runs.start_run(run_id, None, NIGHT, env["settings"])
    with pytest.raises(CriticalDataQualityError) as caught:
        run_data_quality(run_id, NIGHT, env["settings"], notify=False)
    with psycopg.connect(env["url"]) as conn:
        suites = dict(conn.execute("SELECT suite, status FROM dq.validation_runs WHERE run_id = %s", (run_id,)))
        run_status = conn.execute("SELECT status FROM audit.pipeline_runs WHERE run_id = %s", (run_id,)).fetchone()
        digest = conn.execute("SELECT changed, body FROM dq.digests WHERE run_id = %s", (run_id,)).fetchone()
    assert suites == {"batch": "failed"}, "after a critical failure nothing else is validated"
    assert run_status == ("failed",)
    assert digest[0] and digest[1].startswith("[CRITICAL]")
    assert release_batch(env["url"], run_id, "test")
    return caught.value


def test_a_clean_batch_passes(env):
    assert env["summary"]["batch"]["status"] == "passed"
    assert env["summary"]["dossiers"]["status"] in ("passed", "warnings")
    assert (env["tmp"] / "reports" / "data-docs" / "index.html").exists()


def test_a_previous_version_s_checkpoints_do_not_break_the_run(env):
    """Great Expectations' stored checkpoints are build output: one naming an asset this version no longer
    has (as after an upgrade that moved a check) must not stop the next run."""
    gx = env["tmp"] / "gx" / "gx"
    # The night's last validation (the workbooks') left its definition and checkpoint behind.
    definition = json.loads((gx / "validation_definitions" / "finance.json").read_text())
    stale = json.loads(json.dumps(definition).replace("stg_finance__disbursement_rows", "gone"))
    stale["id"], stale["name"] = "00000000-0000-0000-0000-000000000001", "batch.raw.gone"
    (gx / "validation_definitions" / "batch.raw.gone.json").write_text(json.dumps(stale))
    checkpoint = json.loads((gx / "checkpoints" / "finance.json").read_text())
    checkpoint["name"] = "batch"
    checkpoint["validation_definitions"].append({"id": stale["id"], "name": "batch.raw.gone"})
    (gx / "checkpoints" / "batch.json").write_text(json.dumps(checkpoint))
    runs.start_run("upgrade", None, NIGHT, env["settings"])
    summary = run_data_quality("upgrade", NIGHT, env["settings"], notify=False)
    assert summary["batch"]["status"] == "passed"


def test_dq_dossiers_refuses_a_second_row_for_a_dossier(env):
    """The build's own guard: a unique index, so a loader bug cannot add a second row silently."""
    with psycopg.connect(env["url"]) as conn:
        key = conn.execute("SELECT dossier_id FROM dq.dq_dossiers ORDER BY dossier_id LIMIT 1").fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (key,))


def test_a_duplicate_key_stops_the_run(env):
    """BAT01 all the same, for a table changed by hand (here: with its unique index dropped first)."""
    with psycopg.connect(env["url"]) as conn:
        key = conn.execute("SELECT dossier_id FROM dq.dq_dossiers ORDER BY dossier_id LIMIT 1").fetchone()[0]
        index = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = "
                             "'dq.dq_dossiers'::regclass AND indisunique").fetchone()[0]
        definition = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (index,)).fetchone()[0]
        conn.execute(f"DROP INDEX {index}")
        conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (key,))
    try:
        error = stopped(env, "dup")
        assert "BAT01" in str(error)
        assert findings(env["url"], "dup/batch") == {"BAT01": {key}}
    finally:
        with psycopg.connect(env["url"]) as conn:
            conn.execute("DELETE FROM dq.dq_dossiers WHERE ctid = (SELECT max(ctid) FROM dq.dq_dossiers "
                         "WHERE dossier_id = %s)", (key,))
            conn.execute(definition)


def test_a_lost_staged_row_stops_the_run(env):
    with psycopg.connect(env["url"]) as conn:
        conn.execute("CREATE TABLE dq.kept AS SELECT * FROM dq.dq_dossiers ORDER BY dossier_id LIMIT 1")
        conn.execute("DELETE FROM dq.dq_dossiers WHERE dossier_id IN (SELECT dossier_id FROM dq.kept)")
    try:
        stopped(env, "lost")
        with psycopg.connect(env["url"]) as conn:
            lost = conn.execute("SELECT dossier_id FROM dq.kept").fetchone()[0]
        assert findings(env["url"], "lost/batch") == {"BAT05": {lost}}
    finally:
        with psycopg.connect(env["url"]) as conn:
            conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM dq.kept")
            conn.execute("DROP TABLE dq.kept")


def test_a_night_compares_what_changed_and_the_weekly_tests_everything(env):
    """BAT05 each night: the dossiers changed since the last good batch, both ways, and everything when the
    counts differ. A staged row lost for a dossier landed tonight is found even when a hand-made extra row
    older than the batch evens the counts; that row is the weekly DAG's to find: its dbt test
    (staged_equals_landed, in the weekly selector) compares every dossier and sees both."""
    with psycopg.connect(env["url"]) as conn:
        recent, old = [r[0] for r in conn.execute(
            "SELECT dossier_id FROM dq.dq_dossiers ORDER BY dossier_id DESC LIMIT 2")]
        changed_at = conn.execute("SELECT changed_at FROM raw.dossier_current WHERE dossier_id = %s",
                                  (recent,)).fetchone()[0]
        conn.execute("CREATE TABLE dq.kept AS SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (recent,))
        conn.execute("CREATE TEMP TABLE extra AS SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (old,))
        conn.execute("UPDATE extra SET dossier_id = 'HAND-MADE', source_changed_at = '2000-01-01'")
        conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM extra")
        conn.execute("DELETE FROM dq.dq_dossiers WHERE dossier_id = %s", (recent,))
        conn.execute("UPDATE raw.dossier_current SET changed_at = now() WHERE dossier_id = %s", (recent,))
    try:
        stopped(env, "night-part")
        assert findings(env["url"], "night-part/batch") == {"BAT05": {recent}}
        proc = run_dbt(["test", "--select", "staged_equals_landed"], env["url"])
        assert proc.returncode != 0 and "FAIL 2 staged_equals_landed" in proc.stdout, proc.stdout[-3000:]
    finally:
        with psycopg.connect(env["url"]) as conn:
            conn.execute("DELETE FROM dq.dq_dossiers WHERE dossier_id = 'HAND-MADE'")
            conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM dq.kept")
            conn.execute("DROP TABLE dq.kept")
            conn.execute("UPDATE raw.dossier_current SET changed_at = %s WHERE dossier_id = %s", (changed_at, recent))


def test_a_first_validation_compares_every_dossier(env):
    """With no good batch before it (a first night, a rebuild), every landed dossier is new: BAT05 compares them
    all, both ways — here a lost staged row and a hand-made extra one that even the counts, neither of them
    changed lately, which a later night would leave to the weekly test."""
    with psycopg.connect(env["url"]) as conn:
        lost, old = [r[0] for r in conn.execute("SELECT dossier_id FROM dq.dq_dossiers ORDER BY dossier_id LIMIT 2")]
        conn.execute("CREATE TABLE dq.kept AS SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (lost,))
        conn.execute("CREATE TEMP TABLE extra AS SELECT * FROM dq.dq_dossiers WHERE dossier_id = %s", (old,))
        conn.execute("UPDATE extra SET dossier_id = 'HAND-MADE-FIRST', source_changed_at = '2000-01-01'")
        conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM extra")
        conn.execute("DELETE FROM dq.dq_dossiers WHERE dossier_id = %s", (lost,))
        # no good batch on record: none passed, none released
        conn.execute("CREATE TABLE dq.kept_runs AS SELECT validation_id, status FROM dq.validation_runs "
                     "WHERE suite = 'batch'")
        conn.execute("UPDATE dq.validation_runs SET status = 'failed' WHERE suite = 'batch'")
        conn.execute("CREATE TABLE dq.kept_releases AS SELECT * FROM dq.batch_releases")
        conn.execute("DELETE FROM dq.batch_releases")
    try:
        stopped(env, "first")
        assert findings(env["url"], "first/batch") == {"BAT05": {lost, "HAND-MADE-FIRST"}}
    finally:
        with psycopg.connect(env["url"]) as conn:
            conn.execute("DELETE FROM dq.dq_dossiers WHERE dossier_id = 'HAND-MADE-FIRST'")
            conn.execute("INSERT INTO dq.dq_dossiers SELECT * FROM dq.kept")
            conn.execute("UPDATE dq.validation_runs AS v SET status = k.status FROM dq.kept_runs AS k "
                         "WHERE k.validation_id = v.validation_id")
            conn.execute("INSERT INTO dq.batch_releases SELECT * FROM dq.kept_releases ON CONFLICT DO NOTHING")
            conn.execute("DROP TABLE dq.kept, dq.kept_runs, dq.kept_releases")


def test_a_reconciliation_that_does_not_add_up_stops_the_run(env):
    with psycopg.connect(env["url"]) as conn:
        conn.execute("INSERT INTO audit.ingest_runs (run_id, source, partition, window_start, window_end, pages, "
                     "reported, fetched, landed, new_versions, duplicates, quarantined, retries, seconds, "
                     "started_at, finished_at) VALUES ('audit', 'dossiers', '*', '2023-03-31 01:00', "
                     "'2023-04-01 01:00', 1, 120, 119, 119, 119, 0, 0, 0, 1, now(), now())")
    stopped(env, "audit")
    assert findings(env["url"], "audit/batch") == {"BAT04": {"dossiers/*/20230331010000"}}


def test_a_missing_staged_column_stops_the_run(env):
    with psycopg.connect(env["url"]) as conn:
        columns = [c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'staging' "
            "AND table_name = 'stg_api__dossiers' ORDER BY ordinal_position") if c != "channel_raw"]
        conn.execute("ALTER TABLE staging.stg_api__dossiers RENAME TO stg_api__dossiers_kept")
        conn.execute(f"CREATE VIEW staging.stg_api__dossiers AS SELECT {', '.join(columns)} "
                     "FROM staging.stg_api__dossiers_kept")
    try:
        error = stopped(env, "columns")
        assert "BAT02" in str(error)
        with psycopg.connect(env["url"]) as conn:
            failed = conn.execute("SELECT check_id FROM dq.expectation_results WHERE validation_id = 'columns/batch' "
                                  "AND NOT success").fetchall()
        assert failed == [("BAT02",)]
    finally:
        with psycopg.connect(env["url"]) as conn:
            conn.execute("DROP VIEW staging.stg_api__dossiers")
            conn.execute("ALTER TABLE staging.stg_api__dossiers_kept RENAME TO stg_api__dossiers")


def test_workbook_rows_above_plan_are_flagged(env):
    """FIN03 lists exactly the rows the simulator put above their provincial plan; the other workbook
    rules find nothing in clean workbooks."""
    expected = {(d, f.project_code, f.funding_source, f.plan_year, bool(f.carried_over))
                for f in env["finance"].over_plan for d in f.report_dates
                if d in env["finance"].effective_rows()}
    assert expected, "no row above plan: the test would prove nothing"
    got = findings(env["url"], "clean/finance")
    with psycopg.connect(env["url"]) as conn:
        rows = {f"{d:%Y-%m-%d}#{n}": (d, p, s, y, c) for d, n, p, s, y, c in conn.execute(
            "SELECT report_date, row_number, project_code, funding_source, plan_year, is_carried_over "
            "FROM raw.disbursement_rows")}
    assert {rows[k] for k in got.get("FIN03", set())} == expected
    assert set(got) == {"FIN03"}


def test_workbook_rules_flag_broken_rows(env):
    """Rows broken in the warehouse (as a loader bug or a hand edit would) are each flagged by their rule,
    as computed in plain Python over the rows."""
    with psycopg.connect(env["admin"], autocommit=True) as conn:
        for (name,) in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = "
                                    "'raw.disbursement_rows'::regclass AND contype = 'c'").fetchall():
            conn.execute(f'ALTER TABLE raw.disbursement_rows DROP CONSTRAINT "{name}"')
        last = conn.execute("SELECT max(report_date) FROM raw.disbursement_rows").fetchone()[0]
        lines = conn.execute(
            "SELECT row_number FROM raw.disbursement_rows r WHERE report_date = %s AND disbursed_cumulative > 0 "
            "AND EXISTS (SELECT 1 FROM raw.disbursement_rows p WHERE p.report_date < r.report_date "
            "AND (p.project_code, p.funding_source, p.plan_year, p.is_carried_over) = "
            "(r.project_code, r.funding_source, r.plan_year, r.is_carried_over) AND p.disbursed_cumulative > 0) "
            "ORDER BY row_number LIMIT 4", (last,)).fetchall()
        (a,), (b,), (c,), (d,) = lines
        conn.execute("UPDATE raw.disbursement_rows SET plan_pm = -1 WHERE report_date = %s AND row_number = %s",
                     (last, a))
        conn.execute("UPDATE raw.disbursement_rows SET disbursed_cumulative = 0 WHERE report_date = %s "
                     "AND row_number = %s", (last, b))
        conn.execute("UPDATE raw.disbursement_rows SET investor_code = '000.00.99.H47' WHERE report_date = %s "
                     "AND row_number = %s", (last, c))
        conn.execute("UPDATE raw.disbursement_rows SET funding_source = 'NSX' WHERE report_date = %s "
                     "AND row_number = %s", (last, d))
        rows = conn.execute("SELECT report_date, row_number, project_code, funding_source, plan_year, "
                            "is_carried_over, plan_pm, plan_province, disbursed_cumulative, investor_code "
                            "FROM raw.disbursement_rows ORDER BY report_date").fetchall()
        units = {u for (u,) in conn.execute("SELECT record_key FROM raw.reference_versions WHERE source = 'units'")}
    runs.start_run("fin", None, NIGHT, env["settings"])
    run_data_quality("fin", NIGHT, env["settings"], notify=False)
    expected: dict[str, set[str]] = {}
    previous: dict[tuple, Decimal] = {}
    for when, n, project, source, year, carried, plan_pm, plan_province, disbursed, investor in rows:
        key, line = f"{when:%Y-%m-%d}#{n}", (project, source, year, carried)
        checks = {"FIN01": min(plan_pm, plan_province, disbursed) < 0,
                  "FIN02": line in previous and disbursed < previous[line],
                  "FIN03": disbursed > plan_province,
                  "FIN04": investor not in units,
                  "FIN05": source not in ("NSTW", "NSDP", "CTMTQG", "ODA")}
        for rule, broken in checks.items():
            if broken:
                expected.setdefault(rule, set()).add(key)
        previous[line] = disbursed
    assert set(expected) == {"FIN01", "FIN02", "FIN03", "FIN04", "FIN05"}
    assert findings(env["url"], "fin/finance") == expected
    assert f"{last:%Y-%m-%d}#{b}" in expected["FIN02"]


@pytest.mark.parametrize("intervals_before", ["kept", "empty"])
def test_a_rule_finding_a_dossier_twice_fails_its_validation_and_stores_nothing(env, intervals_before):
    """A dossier validation's findings get their key (dossier, rule) once every rule's rows are in: a rule that
    returns a dossier twice fails the validation with that message, and its transaction leaves nothing. So
    too when the validation fills empty intervals (a first validation, whose findings get no key: the
    intervals' unique index, built after them, refuses the dossier) — tried in a transaction rolled back."""
    from expectations import intervals
    from expectations.rules import SqlRule
    from expectations.suites import SuitePart
    from expectations.validate import CheckResult, DataQualityError, SuiteOutcome, _store

    rule = SqlRule("TWICE", "every row of a batch holding one dossier twice", where="true")
    with psycopg.connect(env["url"], autocommit=intervals_before == "kept") as conn:
        if intervals_before == "empty":
            conn.execute("DELETE FROM dq.issue_intervals")
            indexes = conn.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                   "WHERE indrelid = 'dq.issue_intervals'::regclass ORDER BY 1").fetchall()
        conn.execute("CREATE TEMP TABLE twice AS SELECT * FROM dq.dq_dossiers ORDER BY dossier_id LIMIT 1")
        conn.execute("INSERT INTO twice SELECT * FROM twice")
        counts_before = conn.execute("SELECT count(*), max(changed_seq) FROM dq.issue_intervals").fetchone()
        outcome = SuiteOutcome("dossiers", "twice/dossiers", "warnings",
                               [CheckResult("TWICE", "TWICE", "unexpected_rows_expectation", "warning", "", False, 2,
                                            {})])
        plan = intervals.Plan(intervals.FULL, ("pg_temp", "twice"), None, None, "", None, 0)
        with pytest.raises(DataQualityError, match="a dossier rule found a dossier twice"):
            _store(conn, outcome, [SuitePart("dossiers", ("pg_temp", "twice"), None, {"TWICE": rule})], "twice",
                   NIGHT, NIGHT, plan)
        assert conn.execute("SELECT count(*) FROM dq.validation_runs WHERE run_id = 'twice'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*), max(changed_seq) FROM dq.issue_intervals").fetchone() == counts_before
        if intervals_before == "empty":
            assert conn.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                "WHERE indrelid = 'dq.issue_intervals'::regclass ORDER BY 1").fetchall() == indexes
            conn.rollback()
