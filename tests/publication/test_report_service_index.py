"""The report's service-index section (Chỉ số phục vụ, Quyết định 766) and its trends on today's units, against
the independent reference (tests/support/reference.py, reference_index.py, reference_units.py): every figure
embedded in the report's JSON and ``data-*`` attributes equals the reference's reading of the specs."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from functools import partial

import pytest

from publication import figures as F
from publication import service_index
from publication.report import write_report
from tests.support import reference_index
from tests.support.report import cell_values, embedded_figures
from tests.support.report import close as close_to

MONTH = date(2023, 6, 1)  # the report's month: the latest complete month of a warehouse built as of 2023-07-01
FIRST = date(2022, 7, 1)
CRITERIA = reference_index.CRITERIA


close = partial(close_to, tol=1e-9)


@pytest.fixture(scope="module")
def report(built, tmp_path_factory):
    path = write_report(built["url"], tmp_path_factory.mktemp("report-index"))
    html = path.read_text(encoding="utf-8")
    figures = embedded_figures(html)
    return {"html": html, "figures": figures, "si": figures["service_index"], "cells": cell_values(html)}


def of_month(rows: list[dict], month: date = MONTH) -> list[dict]:
    return [r for r in rows if r["month"] == month]


def levels(reference) -> dict[str, int | None]:
    return {u["unit_code"]: u["level"] for u in reference["dim_unit"]}


def test_the_section_is_the_report_s_month(report):
    assert report["si"]["month"] == MONTH.isoformat() == report["figures"]["month"]
    assert 'id="chi-so-phuc-vu"' in report["html"] and "Chỉ số phục vụ (Quyết định 766)" in report["html"]
    for chart_id in ("chart-si-criteria", "chart-si-level-1", "chart-si-level-2", "chart-si-level-3"):
        assert f'<svg id="{chart_id}"' in report["html"], chart_id


def test_each_level_s_units_by_score_equal_the_reference_ranking(report, reference):
    expected: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(of_month(reference["rpt_service_index_ranking"]), key=lambda r: (r["level"], r["rank"])):
        expected[str(r["level"])].append(r)
    got = report["si"]["ranking"]
    assert got.keys() == expected.keys() == {"1", "2", "3"}
    for level, rows in expected.items():
        assert [(u["rank"], u["unit_code"], u["unit_name"]) for u in got[level]] == \
            [(r["rank"], r["unit_code"], r["unit_name"]) for r in rows], level
        for u, r in zip(got[level], rows, strict=True):
            assert close(u["score_100"], r["score_100"]) and close(u["score"], r["score"]), u["unit_code"]
            assert close(u["points_max"], r["points_max"]), u["unit_code"]
            for c in CRITERIA:
                assert close(u["points_lost"][c], r[f"points_lost_{c.replace('.', '_')}"]), (u["unit_code"], c)
    # the tables show every ranked unit and no other, with its exact score
    shown = {k: v for k, v in report["cells"].items() if k.startswith("si.rank.")}
    assert shown.keys() == {f"si.rank.{r['level']}.{r['unit_code']}" for rows in expected.values() for r in rows}
    for rows in expected.values():
        for r in rows:
            assert close(float(shown[f"si.rank.{r['level']}.{r['unit_code']}"]), r["score_100"])


def test_the_criteria_are_the_province_s_roll_up_not_a_sum_of_unit_points(report, reference):
    rows = of_month(reference["fct_service_index_monthly"])
    level_of = levels(reference)
    expected = {"province": reference_index.province_rollup(rows)}
    for level in (1, 2, 3):
        expected[str(level)] = reference_index.province_rollup(r for r in rows if level_of.get(r["unit_code"]) == level)
    got = report["si"]["criteria"]
    assert {c["criterion_id"] for c in got} == set(CRITERIA)
    for c in got:
        assert c["criterion_name"] == F.SERVICE_INDEX_CRITERIA[c["criterion_id"]]
        for scope, rollup in expected.items():
            want, have = rollup[c["criterion_id"]], c["by_scope"][scope]
            assert (have["numerator"], have["denominator"]) == (want["numerator"], want["denominator"]), (scope, c)
            for key, ref_key in (("rate", "rate"), ("points", "points"), ("points_lost", "lost")):
                assert close(have[key], want[ref_key]), (scope, c["criterion_id"], key)
    lost = [c["by_scope"]["province"]["points_lost"] for c in got]
    assert lost == sorted(lost, reverse=True) and lost[0] > 0, "the criteria losing the province most points first"
    # the units' own points lost do not add up to the province's
    units_2_1 = sum(r["points_lost_2_1"] or 0 for r in of_month(reference["rpt_service_index_ranking"]))
    assert units_2_1 > 10 * expected["province"]["2.1"]["lost"]
    for scope, rollup in expected.items():
        rated = [v for v in rollup.values() if v["points"] is not None]
        maximum = sum(reference_index.MAX_POINTS[c] for c, v in rollup.items() if v["points"] is not None)
        [score] = [s for s in report["si"]["scores"] if str(s["scope"]) == scope]
        assert close(score["score_100"], sum(v["points"] for v in rated) / maximum * 100), scope
    cells = report["cells"]
    for c in got:
        assert close(float(cells[f"si.criterion.{c['criterion_id']}.points_lost"]),
                     expected["province"][c["criterion_id"]]["lost"])
    assert close(float(cells["si.score_100.province"]), report["si"]["scores"][0]["score_100"])


def test_the_dossiers_that_cost_2_1_points_equal_the_reference(report, reference):
    lost = of_month(reference["fct_service_index_2_1_dossiers"])
    assert {r["reason"] for r in lost} >= {"late", "pending_overdue"}, "the scenario has both reasons"
    counts: dict = defaultdict(lambda: dict.fromkeys(F.REASONS_2_1, 0))
    for r in lost:
        counts[r["unit_code"]][r["reason"]] += 1
    by_id = {r["dossier_id"]: r for r in lost}
    points = {r["unit_code"]: r["max_points"] - r["points"] for r in of_month(reference["fct_service_index_monthly"])
              if r["criterion_id"] == "2.1" and r["points"] is not None}
    d = report["si"]["dossiers"]
    assert d["totals"] == {**{k: sum(c[k] for c in counts.values()) for k in F.REASONS_2_1}, "total": len(lost)}
    units = d["units"]
    assert {u["unit_code"]: {k: u[k] for k in F.REASONS_2_1} for u in units} == counts
    for u in units:
        assert u["total"] == sum(counts[u["unit_code"]].values())
        assert close(u["points_lost"], points[u["unit_code"]]), u["unit_code"]
    order = [(-u["total"], -u["points_lost"]) for u in units]
    assert order == sorted(order), "most such dossiers first, then most 2.1 points lost"
    listed = units[:service_index.DOSSIER_UNITS]
    assert d["listed_units"] == len(listed) and all(not u["dossiers"] for u in units[len(listed):])
    rank = {reason: i for i, reason in enumerate(F.REASONS_2_1)}
    for u in listed:
        ids = u["dossiers"]
        assert len(ids) == min(u["total"], service_index.DOSSIER_IDS), u["unit_code"]
        for x in ids:
            ref = by_id[x["dossier_id"]]
            assert (ref["unit_code"], ref["reason"], ref["procedure_code"]) == \
                (u["unit_code"], x["reason"], x["procedure_code"])
            assert x["due_at"] == (ref["due_at"].isoformat() if ref["due_at"] else None)
        keys = [(rank[x["reason"]], x["due_at"] or "9", x["dossier_id"]) for x in ids]
        assert keys == sorted(keys), "pending overdue first, then the earliest due date"
        # a unit's first dossiers are its first ones of the whole list (bounded, not sampled)
        every = sorted((rank[r["reason"]], r["due_at"].isoformat() if r["due_at"] else "9", r["dossier_id"])
                       for r in lost if r["unit_code"] == u["unit_code"])
        assert keys == every[:len(keys)]
    html = report["html"]
    shown = set(re.findall(r'<li data-dossier="([^"]+)" data-reason="([^"]+)">', html))
    assert shown == {(x["dossier_id"], x["reason"]) for u in listed for x in u["dossiers"]}
    for u in listed:
        cell = report["cells"][f"si.dossiers.{u['unit_code']}.points_lost"]
        assert close(float(cell), u["points_lost"])


def _current_by_level(reference, table: str, counts: tuple[str, ...]) -> dict[tuple, dict]:
    level_of = levels(reference)
    out: dict[tuple, dict] = {}
    for r in reference[f"{table}_current"]:
        if FIRST <= r["month"] <= MONTH:
            acc = out.setdefault((r["month"].isoformat(), level_of[r["current_unit_code"]]), dict.fromkeys(counts, 0))
            for c in counts:
                acc[c] += r[c]
    return out


@pytest.mark.parametrize("key, table, counts", [
    ("timeliness", "fct_timeliness_monthly", F.TIMELINESS_COUNTS),
    ("online", "fct_online_monthly", F.ONLINE_COUNTS),
    ("digitisation", "fct_digitisation_monthly", F.DIGITISATION_COUNTS),
])
def test_the_trends_levels_are_today_s_units(report, reference, key, table, counts):
    """The trend charts' levels read the *_current marts (reorganisation.md) and equal the reference's; with no
    unit merged (the default scenario) they are the recorded-unit figures, so nothing changes on the page."""
    current = report["figures"]["current"]
    assert current["reorganisation_date"] == F.REORGANISATION_DATE.isoformat() == "2025-07-01"
    got = {(r["month"], r["scope"]): {c: r[c] for c in counts} for r in current[key]}
    assert got == _current_by_level(reference, table, counts) and got
    assert all(u["current_unit_code"] in (u["unit_code"], None) for u in reference["dim_unit"])
    assert current["merged_units"] == 0
    recorded = report["figures"]["timeliness"]["by_month"] if key == "timeliness" else report["figures"][key]
    assert got == {(r["month"], r["scope"]): {c: r[c] for c in counts} for r in recorded if r["scope"] != "province"}


def test_no_reorganisation_marker_before_2025(report):
    assert 'class="marker"' not in report["html"], "2023's trend charts do not span 2025-07-01"
    assert "đơn vị hiện nay" not in report["html"], "no note about merged units when none was merged"
