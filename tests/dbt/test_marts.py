"""Every published table (marts.md) checked row by row against figures computed independently in plain
Python (``tests/support/reference.py``) from the simulator's API records and the finance workbooks; where
late dossiers were held up checked against the simulator's own truth. (That nights built incrementally equal a
full rebuild is checked through Airflow across the 2025 reorganisation: tests/dags/test_reorganisation_nights.py.)"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from ops.dbt import DOCS_STAMP, docs_fingerprint, write_docs_site
from pipeline.night import run_night
from pipeline.settings import Settings
from simulator.__main__ import investors
from simulator.finance import write_workbooks
from simulator.province import Province
from simulator.scenario import Scenario
from tests.support import reference_steps
from tests.support.marts import compare, fetch
from tests.support.postgres import throwaway_warehouse
from tests.support.reference import compute_marts
from tests.support.reference_steps import NOT_NAMED, NOT_RECORDED
from tests.support.simulator import running_simulator

SCENARIO = Scenario(seed=42, start=date(2023, 1, 1), end=date(2023, 6, 30), scale=0.04,
                    clock=datetime(2023, 7, 1, 1, 0))
AS_OF = datetime(2023, 7, 1, 1, 0)
KEYS = {
    "dim_unit": ["unit_code"],
    "dim_procedure": ["procedure_code"],
    "fct_dossier": ["dossier_id"],
    "fct_timeliness_monthly": ["month", "unit_code", "field_code"],
    "fct_online_monthly": ["month", "unit_code"],
    "fct_digitisation_monthly": ["month", "unit_code"],
    "fct_pending_overdue": ["as_of_date", "unit_code"],
    "fct_delegation_progress": ["as_of_date", "delegation_id"],
    "fct_delegation_usage": ["procedure_code"],
    "fct_disbursement": ["report_date", "project_code", "funding_source", "plan_year", "is_carried_over"],
    "rpt_monthly_ranking": ["month", "level", "unit_code"],
    "fct_service_index_monthly": ["month", "unit_code", "criterion_id"],
    "rpt_service_index_ranking": ["month", "level", "unit_code"],
    "fct_service_index_2_1_dossiers": ["month", "dossier_id"],
    "fct_timeliness_monthly_current": ["month", "current_unit_code", "field_code"],
    "fct_online_monthly_current": ["month", "current_unit_code"],
    "fct_digitisation_monthly_current": ["month", "current_unit_code"],
    "fct_step_monthly": ["month", "unit_code", "office"],
    "fct_late_origin_monthly": ["month", "unit_code", "office"],
    "fct_step_monthly_by_field": ["month", "unit_code", "field_code", "office"],
    "fct_late_origin_monthly_by_field": ["month", "unit_code", "field_code", "office"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse loaded from a simulator scenario and its workbooks, with `dbt build` run once."""
    tmp = tmp_path_factory.mktemp("marts")
    inbox = tmp / "inbox"
    finance = write_workbooks(inbox, investors(), date(2023, 1, 1), date(2023, 6, 30), seed=42)
    province = Province(SCENARIO)
    with throwaway_warehouse(tmp) as wh, running_simulator(province) as sim:
        settings = Settings.from_env({"PROCEDURE_API_URL": sim.url, "PROCEDURE_API_TOKEN": sim.token,
                                      "HISTORY_START": "2023-01-01", "FINANCE_INBOX": str(inbox)},
                                     warehouse_url=wh.urls["writer"])
        run_night(settings, AS_OF, run_id="e2e", until="marts", checks=False, lease=False)
        expected = compute_marts(list(province.iter_all()), province.unit_records(), province.procedure_records(),
                                 province.delegation_records(), finance.effective_rows(), AS_OF)
        yield {"url": wh.urls["writer"], "bi": wh.urls["bi_reader"], "expected": expected, "province": province,
               "settings": settings}


@pytest.mark.parametrize("table", list(KEYS))
def test_every_published_table_matches_the_definitions(built, table):
    expected = built["expected"][table]
    assert expected, f"the scenario produces no {table} rows: the test would prove nothing"
    got = fetch(built["url"], table, list(expected[0]))
    compare(table, got, expected, KEYS[table])


def test_late_dossiers_are_held_up_where_the_simulator_says(built):
    """The simulator's truth of where each late dossier's delay began (``held_up_at``) is what
    fct_late_origin_monthly counts, for the offices that record their steps; a dossier held up at an office
    whose steps are missing counts under '(không ghi nhận)', at one that records them without a name under
    '(không ghi)', and so does a dossier with no steps at all. Which dossiers are late, and in which month and
    unit, is the reference's reading of the records; the office is the truth's."""
    province = built["province"]
    records = list(province.iter_all())
    held = province.held_up_at()
    defects = {(d["MaDonVi"], d["PhongBanXuLy"]): d["defect"] for d in province.office_defect_records()}
    with_steps = {r["MaHoSo"] for r in records if not r["DaXoa"] and r["QuaTrinhXuLy"]}
    expected, outcome = Counter(), Counter()
    for code, (month, unit, by_reference) in reference_steps.first_late_offices(records).items():
        if code not in held:  # late only through a defect of its dates (VAL01, VAL02, VAL05): no truth
            expected[(month, unit, by_reference)] += 1
            outcome["no truth"] += 1
            continue
        defect = defects.get((unit, held[code]))
        if code not in with_steps:
            office, why = NOT_RECORDED, "no steps"
        elif defect == "silent_missing":
            office, why = NOT_RECORDED, defect
        elif defect == "silent_unnamed":
            office, why = NOT_NAMED, defect
        else:
            office, why = held[code], defect or "recorded"
        expected[(month, unit, office)] += 1
        outcome[why] += 1
    assert outcome["recorded"] > 500 and outcome["slow"] > 50 and outcome["no steps"] > 20, outcome
    assert outcome["silent_missing"] > 5 and outcome["silent_unnamed"] > 5, outcome
    assert outcome["no truth"] < sum(outcome.values()) / 20, outcome
    got = {(r["month"], r["unit_code"], r["office"]): r["late_dossiers"]
           for r in fetch(built["url"], "fct_late_origin_monthly", ["month", "unit_code", "office", "late_dossiers"])}
    assert got == dict(expected)

    steps = fetch(built["url"], "fct_step_monthly", ["unit_code", "office", "steps", "late_steps"])
    offices = {(r["unit_code"], r["office"]) for r in steps}
    for (unit, office), defect in defects.items():
        if defect == "silent_missing":
            assert (unit, office) not in offices and any(u == unit for u, _ in offices)
        elif defect == "silent_unnamed":
            assert (unit, office) not in offices and (unit, NOT_NAMED) in offices
        else:
            assert (unit, office) in offices
    totals = defaultdict(lambda: [0, 0])
    for r in steps:
        totals[(r["unit_code"], r["office"])][0] += r["steps"]
        totals[(r["unit_code"], r["office"])][1] += r["late_steps"]
    rate = {k: late / n for k, (n, late) in totals.items() if n >= 10}
    ordinary = sorted(r for k, r in rate.items() if k not in defects and k[1] != NOT_NAMED)
    slow = {k: rate.get(k) for k, d in defects.items() if d == "slow"}
    assert all(r is not None and r > 4 * ordinary[len(ordinary) // 2] for r in slow.values()), slow


def test_bi_reader_reads_every_mart(built):
    with psycopg.connect(built["bi"]) as conn:
        for table in KEYS:
            conn.execute(f"SELECT 1 FROM marts.{table} LIMIT 1")


def test_no_personal_data_reaches_the_marts(built):
    with psycopg.connect(built["url"]) as conn:
        cols = {c for (c,) in conn.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_schema IN ('marts', 'staging', 'intermediate')")}
    assert not cols & {"chu_ho_so", "ChuHoSo", "so_dien_thoai", "email", "dinh_danh", "applicant_name", "phone"}


def _weekly_not_null_columns() -> set[tuple[str, str]]:
    """(model, column) of every not_null test the nightly build leaves to the weekly DAG (tag history_scan)."""
    found = set()
    for path in Path("dbt_project/models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            for column in model.get("columns", []):
                for test in column.get("data_tests", []):
                    if isinstance(test, dict) and "not_null" in test and \
                            "history_scan" in ((test["not_null"] or {}).get("config", {}).get("tags", [])):
                        found.add((model["name"], column["name"]))
    return found


def test_what_the_nightly_tests_no_longer_scan_the_database_refuses(built):
    """The large per-dossier tables' not-null, value and first-late tests run weekly; every night the database
    itself holds them: each weekly not_null column is NOT NULL in its table (fct_dq_issue, a view, in
    int_dq_issues, which it reads unchanged), and a row breaking any of them is refused."""
    weekly = _weekly_not_null_columns()
    assert len(weekly) >= 20 and ("int_dossiers__steps", "office") in weekly
    with psycopg.connect(built["url"]) as conn:
        nullable = [(model, column) for model, column in sorted(weekly) if not conn.execute(
            "SELECT a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('intermediate', 'marts') AND c.relkind = 'r' AND c.relname = %s "
            "AND a.attname = %s",
            ("int_dq_issues" if model == "fct_dq_issue" else model, column)).fetchone()[0]]
        assert not nullable
        step = conn.execute("SELECT dossier_id, position FROM intermediate.int_dossiers__steps "
                            "WHERE is_first_late LIMIT 1").fetchone()
        breaches = {
            psycopg.errors.NotNullViolation:
                "UPDATE intermediate.int_dossiers__steps SET office = NULL WHERE dossier_id = %(d)s",
            psycopg.errors.CheckViolation:
                "UPDATE intermediate.int_dossiers__steps SET duration_seconds = -1 WHERE dossier_id = %(d)s",
            psycopg.errors.UniqueViolation:
                "INSERT INTO intermediate.int_dossiers__steps SELECT dossier_id, position + 1000, step_no, unit_code, "
                "office, processed_at, started_at, legal_end_at, month, duration_seconds, is_late, is_first_late, "
                "source_changed_at FROM intermediate.int_dossiers__steps WHERE dossier_id = %(d)s AND is_first_late",
        }
        for error, statement in breaches.items():
            with pytest.raises(error), conn.transaction():
                conn.execute(statement, {"d": step[0]})
        for statement in ("UPDATE marts.fct_dossier SET timeliness = 'soon' WHERE dossier_id = "
                          "(SELECT min(dossier_id) FROM marts.fct_dossier)",
                          "UPDATE intermediate.int_dossiers__steps SET is_late = false "
                          "WHERE dossier_id = %(d)s AND is_first_late"):
            with pytest.raises(psycopg.errors.IntegrityError), conn.transaction():
                conn.execute(statement, {"d": step[0]})


def test_the_docs_site_is_generated_again_only_when_what_it_shows_changed(built, tmp_path):
    """The nightly `dbt_docs` task (`dbt docs generate --static` through ops.dbt): a page stamped with another
    project is generated again, with every mart in it; the same project, dbt, vars and warehouse keep the page;
    each of them changes the stamp."""
    out = tmp_path / "dbt-docs"
    out.mkdir()
    (out / "index.html").write_text("an older project's page")
    (out / DOCS_STAMP).write_text("another project\n")
    page = write_docs_site(built["url"], out)
    text = page.read_text()
    with psycopg.connect(built["url"]) as conn:
        marts = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'marts'")]
    assert "an older project's page" not in text and marts and all(t in text for t in marts)
    written = page.stat().st_mtime_ns
    assert write_docs_site(built["url"], out).stat().st_mtime_ns == written  # nothing changed: kept
    stamp = docs_fingerprint(built["url"])
    assert (out / DOCS_STAMP).read_text().strip() == stamp
    assert docs_fingerprint(built["url"], {"PUBLICATION_ON_TIME_TARGET": "0.9"}) != stamp
    assert docs_fingerprint(built["url"].replace("/warehouse", "/another")) != stamp


def test_the_marts_documentation_reaches_the_database(built):
    """The marts' descriptions are the tables' and columns' comments (BI tools show them; persisted by the
    build). The docs site itself: the test above."""
    with psycopg.connect(built["bi"]) as conn:
        undocumented = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "WHERE c.table_schema = 'marts' AND col_description(to_regclass(format('marts.%I', c.table_name)), "
            "c.ordinal_position) IS NULL").fetchall()
        tables = conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'marts'::regnamespace "
                              "AND relkind = 'r' AND obj_description(oid) IS NULL").fetchall()
    assert not tables, f"marts tables without a comment: {tables}"
    assert not undocumented, f"marts columns without a comment: {undocumented[:10]}"
