"""The HTML report: every embedded figure equals the marts (summed here with SQL of the test's own), the file
is self-contained, and a real headless Chromium renders its charts."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from publication.formatting import fmt_percent
from publication.report import write_report
from tests.support.browser import render
from tests.support.report import cell_values, close, embedded_figures

MONTH = date(2023, 6, 1)  # the latest complete month of a warehouse built as of 2023-07-01
FIRST = date(2022, 7, 1)  # twelve months back
LEVELS = {"province": None, 1: 1, 2: 2, 3: 3}


def query(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def report(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = write_report(built["url"], out)
    html = path.read_text(encoding="utf-8")
    return {"path": path, "out": out, "html": html, "figures": embedded_figures(html)}


def test_files_are_dated_and_latest_is_a_copy(report):
    assert report["path"].name == "bao-cao-2023-07-01.html"
    assert (report["out"] / "latest.html").read_bytes() == report["path"].read_bytes()
    figures = report["figures"]
    assert figures["as_of"] == "2023-07-01" and figures["month"] == MONTH.isoformat()


def test_the_report_is_self_contained(report):
    html = report["html"]
    assert not re.search(r"https?://", html, re.I), "no http(s) reference: the file must open offline"
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"\b(src|href)\s*=", html, re.I)
    assert not re.search(r"@import|url\(", html, re.I)
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="application/json" id="figures">']
    assert html.startswith("<!DOCTYPE html>") and '<html lang="vi">' in html and '<meta charset="utf-8">' in html


def test_charts_are_titled_and_labelled_in_vietnamese(report):
    html = report["html"]
    charts = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert len(charts) >= 14
    for svg in charts:
        assert re.match(r"<svg\b[^>]*>\s*<title>[^<]+</title>", svg), svg[:200]
        assert 'class="axis-label"' in svg or "Không có" in svg
    for term in ("Tỷ lệ giải quyết đúng hạn", "trễ hạn", "Số hóa hồ sơ", "nộp trực tuyến", "Giải ngân vốn đầu tư công",
                 "phân cấp, ủy quyền", "Đất đai", "Cấp huyện", "Cấp xã", "Mục tiêu 95%"):
        assert term.casefold() in html.casefold(), term
    for chart_id in ("chart-on-time", "chart-below-by-level", "chart-land-months", "chart-land-levels", "chart-fields",
                     "chart-online", "chart-intake-digitisation", "chart-result-digitisation",
                     "chart-delegation-plans", "chart-delegation-units", "chart-disbursement-sources",
                     "chart-disbursement-investors", "chart-dq-rules", "chart-dq-units"):
        assert f'id="{chart_id}"' in html, chart_id
    on_time = re.search(r'<svg id="chart-on-time".*?</svg>', html, re.S).group(0)
    assert 'stroke-dasharray="7 5"' in on_time, "the 95% target is a dashed line"
    for legend in ("Toàn tỉnh", "Cấp tỉnh", "Cấp huyện", "Cấp xã", "Mục tiêu 95%"):
        assert f">{legend}</text>" in on_time


def test_on_time_figures_equal_the_marts(built, report):
    got = {(r["month"], r["scope"]): r for r in report["figures"]["timeliness"]["by_month"]}
    rows = query(built["url"], """
        SELECT t.month, u.level, sum(t.resolved), sum(t.early), sum(t.on_time), sum(t.late)
        FROM marts.fct_timeliness_monthly t LEFT JOIN marts.dim_unit u USING (unit_code)
        WHERE t.month BETWEEN %s AND %s GROUP BY 1, 2""", (FIRST, MONTH))
    expected: dict[tuple, list[int]] = {}
    for month, level, *counts in rows:
        for scope in ("province", level):
            if scope is not None:
                acc = expected.setdefault((month.isoformat(), scope), [0, 0, 0, 0])
                for i, c in enumerate(counts):
                    acc[i] += c
    assert set(got) == set(expected)
    assert len({m for m, _ in got}) == 6, "January to June 2023"
    for key, (resolved, early, on_time, late) in expected.items():
        g = got[key]
        assert (g["resolved"], g["early"], g["on_time"], g["late"]) == (resolved, early, on_time, late), key
        assert close(g["on_time_rate"], Decimal(early + on_time) / resolved), key
        assert close(g["overdue_rate"], Decimal(late) / resolved), key


def test_the_ranking_and_the_units_below_target_equal_the_marts(built, report):
    rows = query(built["url"], "SELECT level, rank, unit_code, unit_name, resolved, on_time_rate, below_target "
                 "FROM marts.rpt_monthly_ranking WHERE month = %s ORDER BY level, rank", (MONTH,))
    got = report["figures"]["ranking"]
    assert sum(len(v) for v in got.values()) == len(rows) > 0
    for level, rank, code, name, resolved, rate, below in rows:
        g = got[str(level)][rank - 1]
        assert (g["rank"], g["unit_code"], g["unit_name"], g["resolved"], g["below_target"]) == \
            (rank, code, name, resolved, below)
        assert close(g["on_time_rate"], rate)
    below = {(str(lv), code) for lv, _, code, *_, b in rows if b}
    assert below, "the scenario has units below target: the test would prove nothing"
    html = report["html"]
    shown = set(re.findall(r'data-metric="below\.(\d)\.([^"]+)"', html))
    assert shown == below


def test_land_against_the_other_fields_equals_the_marts(built, report):
    t = report["figures"]["timeliness"]
    land = [c for (c,) in query(built["url"], "SELECT DISTINCT field_code FROM marts.dim_procedure "
                                "WHERE field_name = 'Đất đai'")]
    assert t["land_codes"] == sorted(land) and land
    rows = query(built["url"], """
        SELECT month, field_code = ANY(%s), sum(resolved), sum(early + on_time), sum(late)
        FROM marts.fct_timeliness_monthly WHERE month BETWEEN %s AND %s GROUP BY 1, 2""", (land, FIRST, MONTH))
    expected = {(m.isoformat(), "land" if is_land else "other"): (r, ok, late) for m, is_land, r, ok, late in rows}
    got = {(r["month"], r["group"]): (r["resolved"], r["timely"], r["late"]) for r in t["land_by_month"]}
    assert got == expected
    by_level = query(built["url"], """
        SELECT u.level, t.field_code = ANY(%s), sum(t.resolved), sum(t.early + t.on_time)
        FROM marts.fct_timeliness_monthly t JOIN marts.dim_unit u USING (unit_code) WHERE t.month = %s
        GROUP BY 1, 2""", (land, MONTH))
    assert {(r["scope"], r["group"]): (r["resolved"], r["timely"]) for r in t["land_by_level"]} == \
        {(lv, "land" if is_land else "other"): (r, ok) for lv, is_land, r, ok in by_level}
    fields = query(built["url"], "SELECT field_code, sum(resolved), sum(late) FROM marts.fct_timeliness_monthly "
                   "WHERE month = %s GROUP BY 1", (MONTH,))
    assert {f["field_code"]: (f["resolved"], f["late"]) for f in t["by_field"]} == \
        {code: (resolved, late) for code, resolved, late in fields}
    land_row = next(f for f in t["by_field"] if f["is_land"])
    assert land_row["field_name"] == "Đất đai"


def test_online_and_digitisation_equal_the_marts(built, report):
    figures = report["figures"]
    online = query(built["url"], """
        SELECT o.month, u.level, sum(o.received), sum(o.online) FROM marts.fct_online_monthly o
        LEFT JOIN marts.dim_unit u USING (unit_code) WHERE o.month BETWEEN %s AND %s GROUP BY 1, 2""", (FIRST, MONTH))
    expected: dict[tuple, list] = {}
    for month, level, received, on in online:
        for scope in ("province", level):
            if scope is not None:
                acc = expected.setdefault((month.isoformat(), scope), [0, 0])
                acc[0] += received
                acc[1] += on
    got = {(r["month"], r["scope"]): r for r in figures["online"]}
    assert set(got) == set(expected)
    for key, (received, on) in expected.items():
        assert (got[key]["received"], got[key]["online"]) == (received, on)
        assert close(got[key]["online_rate"], Decimal(on) / received)
    digit = query(built["url"], """
        SELECT d.month, u.level, sum(paper_received), sum(intake_digitised), sum(paper_result_resolved),
               sum(result_digitised)
        FROM marts.fct_digitisation_monthly d JOIN marts.dim_unit u USING (unit_code)
        WHERE d.month = %s GROUP BY 1, 2""", (MONTH,))
    got = {r["scope"]: r for r in figures["digitisation"] if r["month"] == MONTH.isoformat()}
    for _, level, paper, intake, paper_results, results in digit:
        g = got[level]
        assert (g["paper_received"], g["intake_digitised"], g["paper_result_resolved"], g["result_digitised"]) == \
            (paper, intake, paper_results, results)
        assert close(g["intake_digitisation_rate"], Decimal(intake) / paper if paper else None)
        assert close(g["result_digitisation_rate"], Decimal(results) / paper_results if paper_results else None)


def test_pending_overdue_and_delegation_equal_the_marts(built, report):
    figures = report["figures"]
    (as_of, processing, overdue), = query(built["url"], """
        SELECT as_of_date, sum(in_processing), sum(pending_overdue) FROM marts.fct_pending_overdue
        WHERE as_of_date = (SELECT max(as_of_date) FROM marts.fct_pending_overdue) GROUP BY 1""")
    p = figures["pending_overdue"]
    assert (p["as_of_date"], p["in_processing"], p["pending_overdue"]) == (as_of.isoformat(), processing, overdue)
    plans = query(built["url"], """
        SELECT plan, count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE is_done AND is_active),
               count(*) FILTER (WHERE is_behind_plan)
        FROM marts.fct_delegation_progress
        WHERE as_of_date = (SELECT max(as_of_date) FROM marts.fct_delegation_progress) GROUP BY 1""")
    got = {p["plan"]: (p["active"], p["done"], p["behind_plan"]) for p in figures["delegation"]["by_plan"]}
    assert got == {plan: (active, done, behind) for plan, active, done, behind in plans} and len(got) >= 2
    receiving = query(built["url"], """
        SELECT receiving_unit_code, count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE is_done AND is_active)
        FROM marts.fct_delegation_progress
        WHERE as_of_date = (SELECT max(as_of_date) FROM marts.fct_delegation_progress) GROUP BY 1""")
    got = {u["unit_code"]: (u["active"], u["done"]) for u in figures["delegation"]["by_receiving_unit"]}
    assert got == {code: (active, done) for code, active, done in receiving}


def test_disbursement_equals_the_marts(built, report):
    d = report["figures"]["disbursement"]
    assert d["report_date"] == "2023-06-30" and d["plan_year"] == 2023
    by_investor = query(built["url"], """
        SELECT investor_unit_code, plan_pm, plan_province, disbursed_cumulative, rate_vs_pm, rate_vs_province
        FROM marts.rpt_disbursement_by_investor WHERE report_date = %s AND plan_year = %s""",
                        (date(2023, 6, 30), 2023))
    got = {i["investor_unit_code"]: i for i in d["by_investor"]}
    assert set(got) == {r[0] for r in by_investor} and got
    for code, pm, province, disbursed, rate_pm, rate_province in by_investor:
        g = got[code]
        assert (Decimal(str(g["plan_pm"])), Decimal(str(g["plan_province"])),
                Decimal(str(g["disbursed_cumulative"]))) == (pm, province, disbursed)
        assert close(g["rate_vs_pm"], rate_pm) and close(g["rate_vs_province"], rate_province)
    rates = [i["rate_vs_province"] for i in d["by_investor"]]
    assert rates == sorted(rates), "lowest disbursement first"
    by_source = query(built["url"], """
        SELECT funding_source, sum(plan_pm), sum(plan_province), sum(disbursed_cumulative)
        FROM marts.fct_disbursement WHERE report_date = %s AND plan_year = %s GROUP BY 1""", (date(2023, 6, 30), 2023))
    got = {s["funding_source"]: (s["plan_pm"], s["plan_province"], s["disbursed_cumulative"]) for s in d["by_source"]}
    assert {k: tuple(Decimal(str(x)) for x in v) for k, v in got.items()} == {s: (a, b, c) for s, a, b, c in by_source}
    total = [sum(r[i] for r in by_source) for i in (1, 2, 3)]
    assert [Decimal(str(d["total"][k])) for k in ("plan_pm", "plan_province", "disbursed_cumulative")] == total
    assert close(d["total"]["rate_vs_province"], total[2] / total[1])


def test_data_quality_backlog_equals_the_marts(built, report):
    q = report["figures"]["dq"]
    by_rule = dict(query(built["url"], "SELECT rule_id, count(*) FROM marts.fct_dq_issue WHERE is_open GROUP BY 1"))
    assert by_rule, "the data-quality stage ran: the backlog chart has data"
    assert q["by_rule"] == by_rule and q["open"] == sum(by_rule.values())
    by_unit = dict(query(built["url"], "SELECT unit_code, count(*) FROM marts.fct_dq_issue WHERE is_open GROUP BY 1"))
    assert {u["unit_code"]: u["open"] for u in q["by_unit"]} == by_unit


def test_cells_carry_the_same_figures_formatted_the_vietnamese_way(report):
    html, figures = report["html"], report["figures"]
    cells = cell_values(html)
    province = next(r for r in figures["timeliness"]["by_month"]
                    if r["month"] == MONTH.isoformat() and r["scope"] == "province")
    assert close(float(cells["on_time_rate.province"]), province["on_time_rate"])
    assert int(cells["dq.total"]) == figures["dq"]["open"]
    assert close(float(cells["disbursement.total.rate_vs_province"]),
                 figures["disbursement"]["total"]["rate_vs_province"])
    assert int(cells["pending_overdue.province"]) == figures["pending_overdue"]["pending_overdue"]
    shown = re.search(r'data-metric="on_time_rate.province" data-value="[^"]*">([^<]+)<', html).group(1)
    assert shown == fmt_percent(province["on_time_rate"]) and "," in shown and "." not in shown
    dq = re.search(r'data-metric="dq.total" data-value="[^"]*">([^<]+)<', html).group(1)
    assert dq == f"{figures['dq']['open']:,}".replace(",", ".")


@pytest.mark.slow
def test_a_headless_browser_renders_the_charts(report, tmp_path, keep_artifact):
    rendered = render(report["path"], tmp_path / "report.png", window_size=(1400, 4000))
    kept = keep_artifact("report screenshot", rendered.screenshot, "report.png")
    print(f"report screenshot kept at {kept}")
    dom = rendered.dom
    svgs = re.findall(r"<svg\b.*?</svg>", dom, re.S)
    assert len(svgs) == len(re.findall(r"<svg\b", report["html"])) >= 14
    titles = [re.search(r"<title>([^<]+)</title>", s).group(1) for s in svgs]
    assert "Tỷ lệ giải quyết đúng hạn theo tháng" in titles
    assert "Giải ngân so với kế hoạch theo nguồn vốn" in titles
    assert "Điểm bị mất theo tiêu chí, tháng 06/2023" in titles, "the service index (Quyết định 766)"
    assert all(titles)
    assert 'id="figures"' in dom
    png = rendered.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 4000)
    assert len(png) > 100_000, "a blank page compresses to a few kilobytes"
    assert Path(kept).stat().st_size == len(png)
