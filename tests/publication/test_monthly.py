"""The monthly publication (công khai): the units below target are exactly those the definitions give
(computed independently from the API records by tests/support/reference.py), in the HTML and the XLSX."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from html import unescape
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook

from publication.formatting import fmt_percent
from publication.monthly import HEADER_ROW, HEADERS, NoRankingError, write_publication

LEVEL_SHEETS = {1: "Cấp tỉnh", 2: "Cấp huyện", 3: "Cấp xã"}


class Rows(HTMLParser):
    """The ranking rows (``tr`` with data attributes) and the listed units below target, per level."""

    def __init__(self):
        super().__init__()
        self.level: int | None = None
        self.rows: list[dict] = []
        self.listed: dict[int, list[str]] = defaultdict(list)
        self.title = ""
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-level" in a:
            self.level = int(a["data-level"])
        elif tag == "tr" and "data-unit-code" in a:
            self.rows.append(a)
        elif tag == "li" and "data-unit-code" in a:
            self.listed[self.level].append(a["data-unit-code"])
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.title += data


def expected_for(reference: dict, month: date) -> dict[int, list[dict]]:
    late: dict[str, int] = defaultdict(int)
    for r in reference["fct_timeliness_monthly"]:
        if r["month"] == month:
            late[r["unit_code"]] += r["late"]
    out: dict[int, list[dict]] = defaultdict(list)
    for r in sorted(reference["rpt_monthly_ranking"], key=lambda r: (r["level"], r["rank"])):
        if r["month"] == month:
            out[r["level"]].append({**r, "late": late[r["unit_code"]]})
    return out


def months_ranked(reference: dict) -> list[date]:
    return sorted({r["month"] for r in reference["rpt_monthly_ranking"]})


@pytest.fixture(scope="module")
def published(built, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("cong-khai")
    return {month: write_publication(built["url"], month, out) for month in months_ranked(reference)}


def test_every_month_with_a_ranking_is_published(reference, published):
    assert [m.isoformat() for m in published] == [f"2023-0{m}-01" for m in range(1, 7)]
    html, xlsx = published[date(2023, 6, 1)]
    assert (html.name, xlsx.name) == ("cong-khai-2023-06.html", "cong-khai-2023-06.xlsx")


def test_units_below_target_are_exactly_those_of_the_definitions(reference, published):
    found_any = False
    for month, (html, _) in published.items():
        expected = expected_for(reference, month)
        page = Rows()
        page.feed(html.read_text(encoding="utf-8"))
        assert page.title == f"Công khai tỷ lệ giải quyết hồ sơ đúng hạn tháng {month:%m/%Y}"
        got_below = {(int(r["data-level"]), r["data-unit-code"]) for r in page.rows if r["data-below-target"] == "true"}
        want_below = {(lv, r["unit_code"]) for lv, rows in expected.items() for r in rows if r["below_target"]}
        assert got_below == want_below, month
        found_any |= bool(want_below)
        for level, rows in expected.items():
            assert page.listed.get(level, []) == [r["unit_code"] for r in rows if r["below_target"]], (month, level)
        got = [(int(r["data-level"]), int(r["data-rank"]), r["data-unit-code"], int(r["data-resolved"]),
                int(r["data-late"])) for r in page.rows]
        want = [(lv, r["rank"], r["unit_code"], r["resolved"], r["late"]) for lv, rows in sorted(expected.items())
                for r in rows]
        assert got == want, month
        rates = [float(r["data-on-time-rate"]) for r in page.rows]
        assert all(math.isclose(a, r["on_time_rate"], rel_tol=1e-12)
                   for a, r in zip(rates, [r for _, rows in sorted(expected.items()) for r in rows], strict=True))
    assert found_any, "no month has a unit below target: the test would prove nothing"


def test_the_page_prints_on_a4_with_vietnamese_figures(reference, published):
    html = published[date(2023, 6, 1)][0].read_text(encoding="utf-8")
    assert "@page" in html and "A4" in html and "@media screen" in html
    worst = expected_for(reference, date(2023, 6, 1))[2][0]
    assert worst["below_target"]
    # As text (however the page escapes it: the escaping itself is test_text_is_data's).
    assert f"{worst['unit_name']}: {fmt_percent(worst['on_time_rate'])} đúng hạn" in unescape(html)
    assert "Cấp tỉnh" in html and "Cấp huyện" in html and "Cấp xã" in html
    assert "http://" not in html and "https://" not in html


def test_the_workbook_holds_the_same_rows_as_numbers(reference, published):
    for month, (_, xlsx) in published.items():
        expected = expected_for(reference, month)
        wb = load_workbook(xlsx)
        assert wb.sheetnames == list(LEVEL_SHEETS.values())
        for level, sheet in LEVEL_SHEETS.items():
            ws = wb[sheet]
            assert ws.cell(row=1, column=1).value.startswith(
                f"Công khai tỷ lệ giải quyết hồ sơ đúng hạn tháng {month:%m/%Y}")
            assert tuple(c.value for c in ws[HEADER_ROW]) == HEADERS
            rows = [r for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True) if isinstance(r[0], int)]
            want = expected.get(level, [])
            assert len(rows) == len(want), (month, level)
            for got, r in zip(rows, want, strict=True):
                assert got[:5] == (r["rank"], r["unit_code"], r["unit_name"], r["resolved"], r["late"])
                assert isinstance(got[5], int | float) and math.isclose(got[5], r["on_time_rate"], rel_tol=1e-12)
                assert got[6] == ("Dưới 95%" if r["below_target"] else "Đạt")
            for row in range(HEADER_ROW + 1, HEADER_ROW + 1 + len(want)):
                assert ws.cell(row=row, column=4).number_format == "#,##0"
                assert ws.cell(row=row, column=6).number_format == "0.0%"


def test_a_month_without_ranking_is_a_clear_error(built, tmp_path):
    with pytest.raises(NoRankingError, match=r"no ranking for 09/2023 .*months with a ranking: 06/2023"):
        write_publication(built["url"], date(2023, 9, 1), tmp_path)
    assert not list(tmp_path.iterdir()), "nothing written"
