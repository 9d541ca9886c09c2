"""The terminal summary, the command line, and every output on a warehouse whose marts are missing or empty."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from publication.monthly import NoRankingError, write_publication
from publication.report import write_report
from publication.summary import build_summary
from tests.publication.scenario import RUN_ID
from tests.support.paths import PROJECT_ROOT
from tests.support.postgres import throwaway_warehouse

MONTH = date(2023, 6, 1)


def one(url: str, sql: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()


def test_the_summary_names_the_run_and_the_headline_figures(built):
    url = built["url"]
    text = build_summary(url)
    lines = text.splitlines()
    assert 18 <= len(lines) <= 32, text
    assert all(len(line) <= 120 for line in lines), text
    assert lines[0].startswith(f"Run {RUN_ID}: success")
    fetched = one(url, "SELECT sum(fetched) FROM audit.ingest_runs WHERE run_id = %s AND source = 'dossiers'",
                  (RUN_ID,))[0]
    assert f"{fetched:,}" in text
    resolved, timely = one(url, "SELECT sum(resolved), sum(early + on_time) FROM marts.fct_timeliness_monthly "
                           "WHERE month = %s", (MONTH,))
    province = next(line for line in lines if line.strip().startswith("province "))
    assert f"{resolved:,}" in province and f"{timely / resolved:.1%}" in province
    assert "06/2023" in text and "target 95%" in text
    below, ranked = one(url, "SELECT count(*) FILTER (WHERE below_target), count(*) FROM marts.rpt_monthly_ranking "
                        "WHERE month = %s AND level = 2", (MONTH,))
    district = next(line for line in lines if line.strip().startswith("district "))
    assert f"{below} of {ranked}" in district
    worst = one(url, "SELECT unit_name FROM marts.rpt_monthly_ranking WHERE month = %s AND level = 2 AND rank = 1",
                (MONTH,))[0]
    assert worst in district
    overdue, processing = one(url, "SELECT sum(pending_overdue), sum(in_processing) FROM marts.fct_pending_overdue")
    assert f"{overdue:,} of {processing:,} in processing" in text
    disbursed, plan = one(url, "SELECT sum(disbursed_cumulative), sum(plan_province) FROM marts.fct_disbursement "
                          "WHERE report_date = '2023-06-30' AND plan_year = 2023")
    assert f"{Decimal(disbursed) / plan:.1%} of the provincial plan" in text
    open_issues = one(url, "SELECT count(*) FROM marts.fct_dq_issue WHERE is_open")[0]
    assert open_issues and f"Open data-quality issues at 2023-07-01 01:00: {open_issues:,}" in text
    for part in ("land (đất đai)", "Delegation (phân cấp, ủy quyền)", "online", "intake digitised"):
        assert part in text
    assert build_summary(url, RUN_ID) == text
    with pytest.raises(LookupError, match="no pipeline run 'nope'"):
        build_summary(url, "nope")


def cli(url: str, *args: str, reports: os.PathLike) -> subprocess.CompletedProcess:
    env = {**os.environ, "WAREHOUSE_WRITER_URL": url, "REPORTS_DIR": str(reports)}
    return subprocess.run([sys.executable, "-m", "publication", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def test_the_command_line(built, tmp_path):
    url = built["url"]
    proc = cli(url, "summary", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Run {RUN_ID}: success")
    proc = cli(url, "report", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report" / "bao-cao-2023-07-01.html").exists() and (tmp_path / "report" / "latest.html").exists()
    proc = cli(url, "monthly", "--month", "2023-06", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "cong-khai").iterdir()) == ["cong-khai-2023-06.html",
                                                                          "cong-khai-2023-06.xlsx"]
    proc = cli(url, "report", "--out", str(tmp_path / "elsewhere"), "--as-of", "2023-06-15", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elsewhere" / "bao-cao-2023-06-15.html").exists()
    proc = cli(url, "monthly", "--month", "2024-01", reports=tmp_path)
    assert proc.returncode == 1 and "no ranking for 01/2024" in proc.stderr
    proc = cli(url, "summary", "--run-id", "nope", reports=tmp_path)
    assert proc.returncode == 1 and "no pipeline run 'nope'" in proc.stderr
    proc = cli(url, "monthly", "--month", "June", reports=tmp_path)
    assert proc.returncode == 2 and "not a month" in proc.stderr


def test_an_earlier_as_of_date_reads_the_marts_as_they_stood(built, tmp_path):
    """As of 15 June the latest complete month is May, and the latest workbook is the one of 31 May."""
    html = write_report(built["url"], tmp_path, date(2023, 6, 15)).read_text(encoding="utf-8")
    figures = json.loads(re.search(r'id="figures">(.*?)</script>', html, re.S).group(1))
    assert figures["month"] == "2023-05-01"
    assert max(r["month"] for r in figures["timeliness"]["by_month"]) == "2023-05-01"
    assert figures["disbursement"]["report_date"] == "2023-05-31"
    assert figures["pending_overdue"]["as_of_date"] is None, "no pending-overdue row set dated before 1 July"


@pytest.fixture(scope="module")
def empty(built, tmp_path_factory):
    """A fresh warehouse: first without marts, then with every mart table created empty."""
    with psycopg.connect(built["url"]) as conn:
        columns = conn.execute(
            "SELECT c.relname, string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' "
            "ORDER BY a.attnum) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'marts'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 "
            "AND NOT a.attisdropped GROUP BY c.relname").fetchall()
    with throwaway_warehouse(tmp_path_factory.mktemp("empty")) as wh:
        yield {"url": wh.urls["writer"], "tables": columns}


def test_outputs_on_a_warehouse_without_marts_or_runs(empty, tmp_path):
    text = build_summary(empty["url"])
    assert text.splitlines() == ["No pipeline run recorded in audit.pipeline_runs.", "The marts are not built yet."]
    with pytest.raises(RuntimeError, match="marts are not built"):
        write_report(empty["url"], tmp_path)
    with pytest.raises(NoRankingError, match="empty or not built"):
        write_publication(empty["url"], MONTH, tmp_path)


def test_outputs_on_empty_marts(empty, tmp_path):
    with psycopg.connect(empty["url"]) as conn:
        for table, columns in empty["tables"]:
            conn.execute(f"CREATE TABLE IF NOT EXISTS marts.{table} ({columns})")
    text = build_summary(empty["url"])
    for line in ("On-time rate: no resolved dossiers in a complete month yet", "Pending overdue: no row",
                 "Delegation (phân cấp, ủy quyền): no row", "Disbursement (giải ngân): no row",
                 "Open data-quality issues: none"):
        assert line in text, text
    path = write_report(empty["url"], tmp_path, date(2023, 7, 1))
    html = path.read_text(encoding="utf-8")
    assert path.name == "bao-cao-2023-07-01.html"
    assert "Chưa có hồ sơ giải quyết trong một tháng trọn vẹn" in html and "Chưa có báo cáo giải ngân" in html
    assert "Không có lỗi dữ liệu đang mở" in html
    with pytest.raises(NoRankingError, match="no ranking for 06/2023"):
        write_publication(empty["url"], MONTH, tmp_path)
