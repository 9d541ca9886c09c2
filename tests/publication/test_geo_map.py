"""The report's maps, rendered by a real headless Chromium from the file on disk (DevTools protocol).

Checked in the DOM the browser built: every commune and district in force with a statistics code is drawn once
(its ``<title>`` its name, then its figure), each area's colour is the legend colour of the class of its rate —
the rate summed here from the independent reference's marts (``tests/support/reference.py``, read from the
API records), the classes written out from the report's documented breaks — the legend and the note are in
Vietnamese, the communes without a known code are listed beside the map with their figures, and the page sent
no request but its own file. A screenshot of the maps is kept under ``.local/test-artifacts/``.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from publication.report import write_report
from tests.publication.scenario import UNMAPPED_CODES
from tests.support.devtools import DevToolsBrowser

MONTH = date(2023, 6, 1)  # the report's month (the latest complete one of a warehouse built as of 2023-07-01)
# The classes the report documents (publication/geo_map.py): lower bounds, best first.
BREAKS = {"on_time": (0.95, 0.90, 0.80), "intake_digitisation": (0.90, 0.70, 0.50)}
MAPS = {"on_time": "map-on-time", "intake_digitisation": "map-intake-digitisation"}
LEGEND = {"on_time": ["Từ 95% (đạt mục tiêu)", "Từ 90% đến dưới 95%", "Từ 80% đến dưới 90%", "Dưới 80%",
                      "Không có hồ sơ"],
          "intake_digitisation": ["Từ 90%", "Từ 70% đến dưới 90%", "Từ 50% đến dưới 70%", "Dưới 50%",
                                  "Không có hồ sơ"]}

DOM = """(() => {
  const maps = {};
  for (const svg of document.querySelectorAll('svg.geo-map')) {
    const areas = [...svg.querySelectorAll('path.area')].map(p => ({
      unit: p.getAttribute('data-unit'), level: p.getAttribute('data-level'), cls: p.getAttribute('data-class'),
      fill: p.getAttribute('fill'), title: p.querySelector('title') ? p.querySelector('title').textContent : null,
      group: p.parentElement.getAttribute('class'), width: p.getBoundingClientRect().width}));
    const label = cls => svg.querySelector(`g.legend text[data-class="${cls}"]`).textContent;
    const legend = [...svg.querySelectorAll('g.legend rect')].map(r => ({cls: r.getAttribute('data-class'),
      fill: r.getAttribute('fill'), label: label(r.getAttribute('data-class'))}));
    maps[svg.id] = {areas, legend, title: svg.querySelector('title').textContent, text: svg.textContent,
                    outlines: svg.querySelectorAll('g.district-outlines path').length,
                    rect: svg.getBoundingClientRect().toJSON()};
  }
  const rows = [...document.querySelectorAll('#table-map-unplaced tbody tr')].map(tr => ({
    unit: tr.getAttribute('data-unit'), cells: [...tr.cells].map(td => td.textContent),
    values: [...tr.querySelectorAll('[data-metric]')].map(td => [td.getAttribute('data-metric'),
                                                                 td.getAttribute('data-value')])}));
  const section = document.getElementById('ban-do').getBoundingClientRect().toJSON();
  return JSON.stringify({maps, rows, section, scrollY: window.scrollY});
})()"""


def expected_class(value: float | None, breaks: tuple[float, ...]) -> str:
    if value is None:
        return "none"
    return next((f"c{i}" for i, lower in enumerate(breaks) if value >= lower), f"c{len(breaks)}")


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@pytest.fixture(scope="module")
def rendered(built, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("map-report")
    path = write_report(built["url"], out)
    shot = out / "report-map.png"
    with DevToolsBrowser(width=1200, height=1400) as page:
        page.navigate(path.resolve().as_uri())
        page.pump(0.5)
        dom = json.loads(page.evaluate(DOM))
        s = dom["section"]
        data = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": s["y"] + dom["scrollY"], "width": 1200, "height": s["height"],
                               "scale": 1})["data"]
        shot.write_bytes(base64.b64decode(data))
        requests = [e["params"]["request"]["url"] for e in page.events
                    if e["method"] == "Network.requestWillBeSent"]
    return {"dom": dom, "requests": requests, "url": path.resolve().as_uri(), "html": path.read_text("utf-8"),
            "units": built["province"].unit_records(), "reference": reference, "shot": shot}


def figures_by_unit(reference: dict) -> dict[str, dict]:
    """The month's counts per unit, every field summed, from the independent reference's marts."""
    out: dict[str, dict] = {}
    for r in reference["fct_timeliness_monthly"]:
        if r["month"] == MONTH:
            u = out.setdefault(r["unit_code"], {"resolved": 0, "timely": 0, "paper": 0, "digitised": 0})
            u["resolved"] += r["resolved"]
            u["timely"] += r["early"] + r["on_time"]
    for r in reference["fct_digitisation_monthly"]:
        if r["month"] == MONTH:
            u = out.setdefault(r["unit_code"], {"resolved": 0, "timely": 0, "paper": 0, "digitised": 0})
            u["paper"] += r["paper_received"]
            u["digitised"] += r["intake_digitised"]
    return out


def _mapped(units: list[dict]) -> dict[str, dict]:
    """Districts and communes in force with a statistics code that is not one of the scenario's unmapped ones."""
    return {u["MaDonVi"]: u for u in units if u["CapDonVi"] in (2, 3) and not u.get("HieuLucDen")
            and u["MaHanhChinh"] not in UNMAPPED_CODES}


def test_every_commune_and_district_is_drawn_once_named_by_its_title(rendered):
    mapped = _mapped(rendered["units"])
    assert sum(u["CapDonVi"] == 3 for u in mapped.values()) > 200
    for map_id in MAPS.values():
        areas = rendered["dom"]["maps"][map_id]["areas"]
        drawn = [a["unit"] for a in areas]
        assert sorted(drawn) == sorted(mapped), f"{map_id}: one path per commune and district with a code"
        for a in areas:
            unit = mapped[a["unit"]]
            assert a["group"] == ("communes" if unit["CapDonVi"] == 3 else "districts")
            assert a["title"].startswith(unit["TenDonVi"] + ": "), (a["title"], unit["TenDonVi"])
            assert a["width"] > 0, f"{a['unit']} is drawn with no size"
        assert rendered["dom"]["maps"][map_id]["outlines"] == sum(u["CapDonVi"] == 2 for u in mapped.values())


def test_colours_are_the_class_of_each_units_rate(rendered):
    figures = figures_by_unit(rendered["reference"])
    empty = {"resolved": 0, "timely": 0, "paper": 0, "digitised": 0}
    seen_classes = set()
    for key, map_id in MAPS.items():
        m = rendered["dom"]["maps"][map_id]
        colour_of = {entry["cls"]: entry["fill"] for entry in m["legend"]}
        assert len(set(colour_of.values())) == len(colour_of) == 5, "five distinct legend colours"
        for a in m["areas"]:
            f = figures.get(a["unit"], empty)
            value = _rate(f["timely"], f["resolved"]) if key == "on_time" else _rate(f["digitised"], f["paper"])
            cls = expected_class(value, BREAKS[key])
            assert (a["cls"], a["fill"]) == (cls, colour_of[cls]), (map_id, a["unit"], value)
            seen_classes.add((key, cls))
            if value is not None:  # the figure the tooltip shows: one decimal, half up, a decimal comma
                shown = str((Decimal(str(value)) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)).replace(".", ",")
                assert f": {shown}%" in a["title"], (a["title"], value)
            else:
                assert "không có" in a["title"]
    # the scenario spreads units over several classes, so the comparison is not one colour against itself
    assert len({c for k, c in seen_classes if k == "on_time"}) >= 3, seen_classes


def test_the_legend_and_the_note_are_in_vietnamese(rendered):
    for key, map_id in MAPS.items():
        m = rendered["dom"]["maps"][map_id]
        assert [e["label"] for e in m["legend"]] == LEGEND[key]
        assert "06/2023" in m["title"] and m["title"].startswith("Bản đồ tỷ lệ")
        assert "Ranh giới gần đúng" in m["text"] and "Voronoi" in m["text"] and "vietnamadminunits" in m["text"]
        assert "Cấp xã" in m["text"] and "Cấp huyện" in m["text"]


def test_communes_without_a_known_code_are_listed_with_their_figures(rendered):
    figures = figures_by_unit(rendered["reference"])
    unplaced = [u for u in rendered["units"] if u["CapDonVi"] in (2, 3) and u["MaHanhChinh"] in UNMAPPED_CODES]
    assert len(unplaced) == len(UNMAPPED_CODES)
    rows = {r["unit"]: r for r in rendered["dom"]["rows"]}
    assert set(rows) >= {u["MaDonVi"] for u in unplaced}
    for u in unplaced:
        row, f = rows[u["MaDonVi"]], figures.get(u["MaDonVi"])
        assert f and (f["resolved"] or f["paper"]), "the scenario gives these communes dossiers"
        assert row["cells"][0] == u["TenDonVi"]
        assert row["cells"][2] == (u["MaHanhChinh"] or "–")
        assert row["cells"][4] == f"{f['resolved']:,}".replace(",", ".")
        values = dict(row["values"])
        on_time = _rate(f["timely"], f["resolved"])
        got = values[f"map.on_time_rate.{u['MaDonVi']}"]
        assert (got == "" and on_time is None) or math.isclose(float(got), on_time, rel_tol=1e-12)
    # and not drawn
    for map_id in MAPS.values():
        drawn = {a["unit"] for a in rendered["dom"]["maps"][map_id]["areas"]}
        assert not drawn & {u["MaDonVi"] for u in unplaced}


def test_the_page_sends_no_request_and_prints_its_colours(rendered, keep_artifact):
    assert rendered["requests"] == [rendered["url"]], "the report loads nothing but itself"
    assert "print-color-adjust:exact" in rendered["html"]
    shot = Path(rendered["shot"])
    assert shot.stat().st_size > 20_000
    keep_artifact("the report's maps (headless Chromium)", shot, "report-map.png")
