"""The report's section "Hồ sơ bị chậm ở đâu" (where dossiers are held up) against the independent reference
(tests/support/reference.py, reference_steps.py): every figure embedded in the report's JSON and ``data-*``
attributes — the share of late dossiers with no recorded late step, the land field's offices, the offices of
the units below target, the slowest offices — equals the reference's reading of metrics.md."""

from __future__ import annotations

import html as htmllib
import re
from collections import defaultdict
from datetime import date
from fractions import Fraction

import pytest

from publication import held_up
from publication.report import write_report
from tests.publication.scenario import HOSTILE_NAMES
from tests.support.reference_steps import NOT_NAMED, NOT_RECORDED
from tests.support.report import cell_values, close, embedded_figures

MONTH = date(2023, 6, 1)  # the report's month: the latest complete month of a warehouse built as of 2023-07-01


@pytest.fixture(scope="module")
def report(built, tmp_path_factory):
    path = write_report(built["url"], tmp_path_factory.mktemp("report-steps"))
    page = path.read_text(encoding="utf-8")
    figures = embedded_figures(page)
    section = re.search(r'<section id="ho-so-bi-cham">.*?</section>', page, re.S).group(0)
    return {"html": page, "section": section, "figures": figures, "h": figures["held_up"],
            "cells": cell_values(section)}


@pytest.fixture(scope="module")
def ref(reference) -> dict:
    """The reference's rows of the report's month, with each unit's level and the land field's codes."""
    level = {u["unit_code"]: u["level"] for u in reference["dim_unit"]}
    land = sorted({p["field_code"] for p in reference["dim_procedure"] if p["field_name"] == "Đất đai"})
    month = {t: [r for r in reference[t] if r["month"] == MONTH] for t in (
        "fct_late_origin_monthly", "fct_late_origin_monthly_by_field", "fct_step_monthly",
        "fct_step_monthly_by_field", "fct_timeliness_monthly", "rpt_monthly_ranking")}
    return {"level": level, "land": land, **month}


def offices_of(rows) -> list[tuple[str, int]]:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["office"]] += r["late_dossiers"]
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def test_the_section_is_the_report_s_month(report):
    assert report["h"]["month"] == MONTH.isoformat() == report["figures"]["month"]
    assert "Hồ sơ bị chậm ở đâu (tháng 06/2023)" in report["section"]
    for chart_id in ("chart-held-up-not-recorded", "chart-held-up-land"):
        assert f'<svg id="{chart_id}"' in report["section"], chart_id
    sections = re.findall(r'<section id="([^"]+)"><h2>(\d+)\.', report["html"])
    assert [n for _, n in sections] == [str(i) for i in range(1, len(sections) + 1)], "numbered in order"
    assert ("ho-so-bi-cham", "5") in sections


def test_the_share_with_no_recorded_late_step_equals_the_reference(report, ref):
    origins = ref["fct_late_origin_monthly"]
    scopes = [("province", origins),
              *[(lv, [r for r in origins if ref["level"].get(r["unit_code"]) == lv]) for lv in (1, 2, 3)],
              ("land", [r for r in ref["fct_late_origin_monthly_by_field"] if r["field_code"] in ref["land"]])]
    expected: dict = {}
    for scope, rows in scopes:
        late = sum(r["late_dossiers"] for r in rows)
        if late:
            expected[str(scope)] = (late, sum(r["late_dossiers"] for r in rows if r["office"] == NOT_RECORDED),
                                    sum(r["late_dossiers"] for r in rows if r["office"] == NOT_NAMED))
    got = {str(r["scope"]): r for r in report["h"]["not_recorded"]}
    assert got.keys() == expected.keys() and {"province", "2", "3", "land"} <= got.keys()
    for scope, (late, silent, unnamed) in expected.items():
        g = got[scope]
        assert (g["late_dossiers"], g["not_recorded"], g["not_named"]) == (late, silent, unnamed), scope
        assert close(g["not_recorded_share"], Fraction(silent, late)), scope
        assert close(float(report["cells"][f"held_up.not_recorded_share_table.{scope}"]), Fraction(silent, late))
        assert int(report["cells"][f"held_up.not_recorded.{scope}"]) == silent
    # every late dossier of the month, once: the timeliness mart's late dossiers
    assert got["province"]["late_dossiers"] == sum(r["late"] for r in ref["fct_timeliness_monthly"])
    assert got["province"]["not_recorded"] > 0 and got["land"]["not_recorded"] > 0, "the scenario's silent offices"
    for scope in ("province", "land"):
        assert close(float(report["cells"][f"held_up.not_recorded_share.{scope}"]), got[scope]["not_recorded_share"])


def test_the_land_field_s_offices_equal_the_reference(report, ref):
    land = report["h"]["land"]
    assert report["h"]["land_codes"] == ref["land"] and ref["land"]
    origins = [r for r in ref["fct_late_origin_monthly_by_field"] if r["field_code"] in ref["land"]]
    steps = [r for r in ref["fct_step_monthly_by_field"] if r["field_code"] in ref["land"]]
    expected: dict[tuple, int] = defaultdict(int)
    for r in origins:
        expected[(ref["level"].get(r["unit_code"]), r["office"])] += r["late_dossiers"]
    got = {(r["level"], r["office"]): r for r in land["by_office"]}
    assert {k: r["late_dossiers"] for k, r in got.items()} == expected
    assert land["late_dossiers"] == sum(expected.values()) == sum(
        r["late"] for r in ref["fct_timeliness_monthly"] if r["field_code"] in ref["land"])
    assert any(office == NOT_RECORDED for _, office in expected) and len(expected) >= 4
    for (level, office), r in got.items():
        mine = [s for s in steps if ref["level"].get(s["unit_code"]) == level and s["office"] == office]
        n, late = sum(s["steps"] for s in mine), sum(s["late_steps"] for s in mine)
        assert (r["steps"], r["late_steps"]) == (n, late), (level, office)
        assert close(r["late_step_rate"], Fraction(late, n) if n else None), (level, office)
        in_level = sum(v for (lv, _), v in expected.items() if lv == level)
        assert close(r["share_of_level"], Fraction(r["late_dossiers"], in_level))
        assert int(report["cells"][f"held_up.land.{level or ''}.{office}"]) == r["late_dossiers"]
    order = [(r["level"] is None, r["level"] or 0, -r["late_dossiers"], r["office"]) for r in land["by_office"]]
    assert order == sorted(order)
    # per unit: its offices, most late dossiers first; every unit in the figures, the first LAND_UNITS in the page
    by_unit: dict = defaultdict(list)
    for r in origins:
        by_unit[r["unit_code"]].append(r)
    assert {u["unit_code"]: [(o["office"], o["late_dossiers"]) for o in u["offices"]] for u in land["units"]} == \
        {unit: offices_of(rows) for unit, rows in by_unit.items()}
    totals = [u["late_dossiers"] for u in land["units"]]
    assert totals == sorted(totals, reverse=True)
    shown = re.findall(r'<tr data-unit="([^"]*)">', re.search(r'id="table-held-up-land-units".*?</table>',
                                                                 report["section"], re.S).group(0))
    assert [htmllib.unescape(c) for c in shown] == [u["unit_code"] or "" for u in land["units"][:held_up.LAND_UNITS]]


def test_the_offices_of_the_units_below_target_equal_the_reference(report, ref):
    below = sorted((r for r in ref["rpt_monthly_ranking"] if r["below_target"]), key=lambda r: (r["level"], r["rank"]))
    assert below, "the scenario has units below target: the test would prove nothing"
    late = defaultdict(int)
    for r in ref["fct_timeliness_monthly"]:
        late[r["unit_code"]] += r["late"]
    got = report["h"]["below_target"]
    assert [(u["level"], u["rank"], u["unit_code"], u["unit_name"]) for u in got] == \
        [(r["level"], r["rank"], r["unit_code"], r["unit_name"]) for r in below]
    for u in got:
        rows = [r for r in ref["fct_late_origin_monthly"] if r["unit_code"] == u["unit_code"]]
        assert [(o["office"], o["late_dossiers"]) for o in u["offices"]] == offices_of(rows), u["unit_code"]
        assert u["late_dossiers"] == late[u["unit_code"]] == sum(o["late_dossiers"] for o in u["offices"])
        assert u["not_recorded"] == sum(r["late_dossiers"] for r in rows if r["office"] == NOT_RECORDED)
        assert int(report["cells"][f"held_up.below.{u['unit_code']}.late_dossiers"]) == u["late_dossiers"]
    # the page lists each unit's offices with their counts, as text
    table = re.search(r'id="table-held-up-below".*?</table>', report["section"], re.S).group(0)
    rows = re.findall(r'<tr class="below" data-unit="([^"]*)">(.*?)</tr>', table, re.S)
    assert [htmllib.unescape(code) for code, _ in rows] == [u["unit_code"] for u in got]
    for (_, cells), u in zip(rows, got, strict=True):
        items = [(htmllib.unescape(o), int(n)) for o, n in re.findall(r'<li data-office="([^"]*)" data-value="(\d+)">',
                                                                       cells)]
        assert items == [(o["office"], o["late_dossiers"]) for o in u["offices"]]


def test_the_slowest_offices_equal_the_reference(report, ref):
    eligible = [r for r in ref["fct_step_monthly"] if r["steps"] >= held_up.MIN_STEPS and r["office"] != NOT_NAMED]
    eligible.sort(key=lambda r: (-Fraction(r["late_steps"], r["steps"]), r["p90_hours"] is None,
                                 -(r["p90_hours"] or 0), -r["steps"], r["unit_code"] or "", r["office"]))
    expected = eligible[:held_up.SLOW_OFFICES]
    got = report["h"]["slow_offices"]
    assert any(r["late_steps"] for r in expected), "the scenario has offices with late steps"
    assert [(r["unit_code"], r["office"], r["steps"], r["late_steps"]) for r in got] == \
        [(r["unit_code"], r["office"], r["steps"], r["late_steps"]) for r in expected]
    for i, (g, e) in enumerate(zip(got, expected, strict=True), 1):
        for k in ("late_step_rate", "median_hours", "p90_hours"):
            assert close(g[k], e[k]), (g["unit_code"], g["office"], k)
        assert close(float(report["cells"][f"held_up.slow.{i}.p90_hours"]), e["p90_hours"])


def test_names_are_text_in_the_section(report):
    """The busiest units are named as markup and formulas (tests/publication/scenario.py): escaped in the page,
    and in the JSON block as given."""
    section = report["section"]
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", section))
    shown = [n for n in HOSTILE_NAMES if n in text]
    assert "<script>alert(1)</script>" in shown, "a hostile name among the units shown"
    for name in shown:
        if any(ch in name for ch in "<>&"):
            assert name not in section, name
    h = report["h"]
    names = {u["unit_name"] for key in ("below_target", "slow_offices") for u in h[key]} | \
        {u["unit_name"] for u in h["land"]["units"]}
    assert set(shown) <= names
