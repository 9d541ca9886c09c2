"""The pages' templates rendered from small inline figures (no warehouse): text from the warehouse is escaped
in the text and the attributes, the figures' JSON block reads back as given, the data attributes carry exact
values, and a page needs nothing from elsewhere. The end-to-end checks against the marts are in
``tests/publication``."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from publication.monthly import render_html
from publication.pages import exact
from publication.report import render

HOSTILE = '<script>alert(1)</script> & "Sở" \'A\''
STAMP = datetime(2023, 7, 1, 1, 5)


class Page(HTMLParser):
    """Start tags with their attributes (decoded), the decoded text, and the script elements."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def figures_block(html: str):
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="application/json" id="figures">']
    return json.loads(re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S).group(1))


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>") and '<html lang="vi">' in html and '<meta charset="utf-8">' in html
    assert not re.search(r"https?://|@import|url\(|\b(src|href)\s*=|<(link|img|iframe|object|embed)\b", html, re.I)


def ranked(level: int, rank: int, code: str, name: str, resolved: int, late: int, below: bool) -> dict:
    return {"level": level, "rank": rank, "unit_code": code, "unit_name": name, "resolved": resolved, "late": late,
            "on_time_rate": (resolved - late) / resolved, "below_target": below}


@pytest.fixture
def publication() -> dict:
    return {"month": date(2023, 6, 1), "province_name": HOSTILE, "target": 0.95, "min_resolved": 10,
            "generated_at": STAMP,
            "levels": {1: [ranked(1, 1, "000.00.01.H47", "Sở Tư pháp", 20, 0, False)],
                       2: [ranked(2, 1, 'H47"<i>', HOSTILE, 40, 10, True),
                           ranked(2, 2, "000.00.20.H47", "UBND huyện Duy Xuyên", 200, 8, False)],
                       3: []}}


def test_the_publication_page_escapes_what_comes_from_the_warehouse(publication):
    html = render_html(publication)
    assert_self_contained(html)
    page = Page(html)
    assert HOSTILE not in html and "<i>" not in html
    assert page.text.count(HOSTILE) == 3  # the masthead, the list of units below target, the ranking table
    rows = [attrs for tag, attrs in page.elements if tag == "tr" and "data-unit-code" in attrs]
    assert [r["data-unit-code"] for r in rows] == ["000.00.01.H47", 'H47"<i>', "000.00.20.H47"]
    listed = [attrs["data-unit-code"] for tag, attrs in page.elements if tag == "li"]
    assert listed == ['H47"<i>']
    assert rows[1] == {"class": "below", "data-level": "2", "data-unit-code": 'H47"<i>', "data-rank": "1",
                       "data-resolved": "40", "data-late": "10", "data-on-time-rate": "0.75",
                       "data-below-target": "true"}
    assert f"{HOSTILE}: 75,0% đúng hạn (30/40 hồ sơ trước và đúng hạn, 10 hồ sơ trễ hạn)" in page.text
    assert "Không có đơn vị đủ điều kiện xếp hạng trong tháng." in page.text  # level 3
    assert "Tất cả 1 đơn vị được xếp hạng đạt mục tiêu." in page.text  # level 1


def test_the_publication_figures_read_back_as_given(publication):
    figures = figures_block(render_html(publication))
    assert figures["month"] == "2023-06-01" and figures["target"] == 0.95
    assert figures["levels"]["2"][0]["unit_name"] == HOSTILE and figures["levels"]["3"] == []


def nothing_yet() -> dict:
    """The figures of a warehouse with no complete month, no pending dossier, workbook or finding yet."""
    return {"as_of": date(2023, 7, 1), "month": None, "target": 0.95, "province_name": HOSTILE,
            "generated_at": STAMP, "timeliness": None, "ranking": {}, "online": [], "digitisation": [],
            "pending_overdue": {"as_of_date": None, "in_processing": 0, "pending_overdue": 0, "overdue_share": None,
                                "by_level": [], "units": []},
            "delegation": {"as_of_date": None, "total": None, "by_plan": [], "by_type": [], "by_receiving_unit": []},
            "disbursement": {"report_date": None, "plan_year": None, "plan_years": [], "total": None,
                             "by_source": [], "by_investor": []},
            "dq": {"validated_at": None, "open": 0, "by_rule": {}, "by_unit": []}}


def test_the_report_of_a_warehouse_without_figures_yet():
    html = render(nothing_yet())
    assert_self_contained(html)
    page = Page(html)
    assert HOSTILE not in html and page.text.count(HOSTILE) == 2  # the title and the agency line
    for note in ("chưa có tháng trọn vẹn", "Chưa có hồ sơ giải quyết trong một tháng trọn vẹn.",
                 "Chưa có báo cáo giải ngân.", "Không có lỗi dữ liệu đang mở."):
        assert note in page.text, note
    assert "<svg" not in html, "no chart without figures"
    values = {a["data-metric"]: a["data-value"] for _, a in page.elements if "data-metric" in a}
    assert values == {"as_of": "2023-07-01", "dq.open": "0"}
    assert figures_block(html)["province_name"] == HOSTILE


def service_index() -> dict:
    """The service-index section's figures (publication.service_index.collect) for one commune named HOSTILE,
    with a dossier code that is markup."""
    lost = {"2.1": 2.0, "3.3": None, "3.6": 0.0, "4.1": 0.0, "4.2": 0.5, "4.3": 0.0}
    cell = {"numerator": 9, "denominator": 10, "rate": 0.9, "points": 18.0, "points_lost": 2.0}
    return {"month": date(2023, 6, 1),
            "ranking": {"3": [{"rank": 1, "unit_code": 'X"<i>', "unit_name": HOSTILE, "score": 37.5,
                               "points_max": 38.0, "score_100": 98.68421052631578, "points_lost": lost}]},
            "criteria": [{"criterion_id": "2.1", "criterion_name": "Tiến độ giải quyết", "threshold": 1.0,
                          "max_points": 20.0, "by_scope": {"province": cell, "3": cell}}],
            "scores": [{"scope": "province", "score": 18.0, "points_max": 20.0, "score_100": 90.0}],
            "dossiers": {"totals": {"pending_overdue": 0, "late": 1, "supplements": 0, "total": 1}, "listed_units": 1,
                         "units": [{"unit_code": 'X"<i>', "unit_name": HOSTILE, "level": 3, "numerator": 9,
                                    "denominator": 10, "rate": 0.9, "points_lost": 2.0, "total": 1,
                                    "pending_overdue": 0, "late": 1, "supplements": 0,
                                    "dossiers": [{"dossier_id": "<b>H47</b>", "reason": "late", "procedure_code": "1",
                                                  "due_at": datetime(2023, 6, 2, 17), "finished_at": STAMP,
                                                  "supplement_count": 0}]}]}}


def test_the_report_s_service_index_escapes_names_and_dossier_codes():
    html = render(nothing_yet() | {"service_index": service_index()})
    assert_self_contained(html)
    page = Page(html)
    assert HOSTILE not in html and "<b>H47</b>" not in html and "<i>" not in html
    assert page.text.count(HOSTILE) >= 4  # title, agency, the ranking and the 2.1 table (and the SVG labels)
    [item] = [a for tag, a in page.elements if tag == "li" and "data-dossier" in a]
    assert item == {"data-dossier": "<b>H47</b>", "data-reason": "late"}
    assert "<b>H47</b> (trễ hạn, hạn 02/06/2023)" in page.text
    values = {a["data-metric"]: a["data-value"] for _, a in page.elements if "data-metric" in a}
    assert values['si.rank.3.X"<i>'] == "98.68421052631578" and values["si.criterion.2.1.points_lost"] == "2.0"
    assert figures_block(html)["service_index"]["ranking"]["3"][0]["unit_name"] == HOSTILE


def held_up() -> dict:
    """The section "where dossiers are held up" (publication.held_up.collect) for one district named HOSTILE
    whose late land dossiers began at an office whose name is markup too."""
    office = '<b>Phòng "Đất"</b> & co'
    offices = [{"office": office, "late_dossiers": 2}, {"office": "(không ghi nhận)", "late_dossiers": 1}]
    return {"month": date(2023, 6, 1), "available": True, "min_steps": 20, "land_codes": ["G01"],
            "not_recorded": [{"scope": "province", "late_dossiers": 3, "not_recorded": 1, "not_named": 0,
                              "not_recorded_share": 1 / 3},
                             {"scope": "land", "late_dossiers": 3, "not_recorded": 1, "not_named": 0,
                              "not_recorded_share": 1 / 3}],
            "land": {"late_dossiers": 3, "units": [{"unit_code": 'H"<i>', "unit_name": HOSTILE, "level": 2,
                                                    "late_dossiers": 3, "offices": offices}],
                     "by_office": [{"level": 2, "office": office, "late_dossiers": 2, "share_of_level": 2 / 3,
                                    "steps": 10, "late_steps": 4, "late_step_rate": 0.4},
                                   {"level": 2, "office": "(không ghi nhận)", "late_dossiers": 1,
                                    "share_of_level": 1 / 3, "steps": 0, "late_steps": 0, "late_step_rate": None}]},
            "below_target": [{"level": 2, "rank": 1, "unit_code": 'H"<i>', "unit_name": HOSTILE, "resolved": 12,
                              "on_time_rate": 0.75, "late_dossiers": 3, "not_recorded": 1, "offices": offices}],
            "slow_offices": [{"unit_code": 'H"<i>', "unit_name": HOSTILE, "level": 2, "office": office, "steps": 20,
                              "late_steps": 4, "late_step_rate": 0.2, "median_hours": 3.5, "p90_hours": 70.25}]}


def test_the_report_s_held_up_section_escapes_unit_and_office_names():
    html = render(nothing_yet() | {"held_up": held_up()})
    assert_self_contained(html)
    page = Page(html)
    office = '<b>Phòng "Đất"</b> & co'
    assert HOSTILE not in html and office not in html and "<b>" not in html and "<i>" not in html
    assert page.text.count(HOSTILE) >= 5  # title, agency, the land units, below target, the slowest offices
    assert page.text.count(office) >= 4  # the chart's label, the land table, two office lists, the slowest offices
    items = [a for tag, a in page.elements if tag == "li" and "data-office" in a]
    assert items[:2] == [{"data-office": office, "data-value": "2"}, {"data-office": "(không ghi nhận)",
                                                                     "data-value": "1"}]
    values = {a["data-metric"]: a["data-value"] for _, a in page.elements if "data-metric" in a}
    assert values[f"held_up.land.2.{office}"] == "2" and values['held_up.below.H"<i>.not_recorded'] == "1"
    assert values["held_up.not_recorded_share.province"] == repr(1 / 3)
    assert values["held_up.slow.1.p90_hours"] == "70.25"
    assert figures_block(html)["held_up"]["slow_offices"][0]["office"] == office


def test_the_report_s_held_up_section_of_a_month_without_late_dossiers():
    quiet = {"month": date(2023, 6, 1), "available": True, "min_steps": 20, "land_codes": ["G01"], "not_recorded": [],
             "land": {"late_dossiers": 0, "by_office": [], "units": []}, "below_target": [], "slow_offices": []}
    page = Page(render(nothing_yet() | {"held_up": quiet}))
    for note in ("Không có hồ sơ giải quyết trễ hạn trong tháng.", "Không có hồ sơ đất đai giải quyết trễ hạn",
                 "Không có đơn vị được xếp hạng nào dưới mục tiêu.", "Không có phòng ban nào xử lý từ 20 bước"):
        assert note in page.text, note
    assert not [a for _, a in page.elements if a.get("data-metric", "").startswith("held_up.")]
    assert "Chưa có số liệu quá trình xử lý hồ sơ." in Page(render(nothing_yet())).text


@pytest.mark.parametrize(("value", "shown"), [
    (None, ""), (True, "true"), (False, "false"), (0, "0"), (1234567, "1234567"), (0.1, "0.1"),
    (0.8764044943820225, "0.8764044943820225"), (Decimal("618400000000"), "618400000000.0"), (Decimal("0.5"), "0.5"),
])
def test_data_values_are_exact(value, shown):
    assert exact(value) == shown
