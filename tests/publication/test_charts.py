"""The inline SVG charts: well-formed, titled, with axes, legend and target line, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

from publication import report
from publication.charts import Marker, Series, bar_chart, empty_chart, hbar_chart, line_chart
from publication.formatting import fmt_number

TRICKY = "UBND xã Ch'ơm <A&B> \"x\""


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("text")]


def test_line_chart_has_title_axes_legend_and_a_dashed_target():
    svg = line_chart("Tỷ lệ giải quyết đúng hạn theo tháng", ["01/2023", "02/2023", "03/2023"],
                     [Series("Toàn tỉnh", [0.9, 0.953, 0.97]), Series("Cấp huyện", [0.8, None, 0.85])],
                     x_label="Tháng", y_label="Tỷ lệ đúng hạn (%)", target=0.95, target_label="Mục tiêu 95%")
    root = parse(svg)
    assert root[0].tag == "title" and root[0].text == "Tỷ lệ giải quyết đúng hạn theo tháng"
    shown = texts(root)
    assert "Tỷ lệ giải quyết đúng hạn theo tháng" in shown
    assert {"Tháng", "Tỷ lệ đúng hạn (%)", "01/2023", "03/2023"} <= set(shown)
    assert {"Toàn tỉnh", "Cấp huyện", "Mục tiêu 95%"} <= set(shown), "legend"
    assert "100%" in shown and all("." not in t for t in shown if t.endswith("%")), "ticks in Vietnamese style"
    target = root.find("./g[@class='target']/line")
    assert target is not None and target.get("stroke-dasharray")
    paths = [p.get("d") for p in root.iter("path")]
    assert len(paths) == 2
    assert paths[1].count("M") == 2, "a missing value breaks the line"
    tooltips = [t.text for c in root.iter("circle") for t in c.iter("title")]
    assert "Toàn tỉnh – 02/2023: 95,3%" in tooltips
    assert len(tooltips) == 5


def test_horizontal_bars_escape_text_highlight_and_annotate():
    svg = hbar_chart("Đơn vị <dưới> mục tiêu", [TRICKY, "Đất đai", "Hộ tịch"],
                     [Series("Tỷ lệ đúng hạn", [0.5, 0.659, None])], x_label="Tỷ lệ (%)", target=0.95,
                     highlight=["Đất đai"], notes=["5 trễ hạn/10", "43 trễ hạn/126", None])
    assert "<dưới>" not in svg and "<A&B>" not in svg
    root = parse(svg)
    assert root[0].text == "Đơn vị <dưới> mục tiêu"
    shown = texts(root)
    assert any(t.endswith(TRICKY) for t in shown), "the full label survives escaping"
    assert "50,0% (5 trễ hạn/10)" in shown and "65,9% (43 trễ hạn/126)" in shown
    assert len(root.findall("./g[@class='series']/rect")) == 2, "no bar for a missing value"
    bold = [t for t in root.iter("text") if t.get("font-weight") == "700"]
    assert len(bold) == 1 and "Đất đai" in "".join(bold[0].itertext())
    assert root.find("./g[@class='target']/line").get("stroke-dasharray")


def test_grouped_bars_have_one_bar_per_category_and_series():
    svg = bar_chart("Giải ngân theo nguồn vốn", ["NSTW", "NSDP", "ODA"],
                    [Series("Kế hoạch", [1215.5, 1707.4, 10.0]), Series("Giải ngân", [233.6, 325.4, None])],
                    x_label="Nguồn vốn", y_label="Tỷ đồng", percent=False, fmt=lambda v: fmt_number(v, 1))
    root = parse(svg)
    assert len(root.findall("./g[@class='series']/rect")) == 5, "one bar per category and series with a value"
    assert len(root.findall("./g[@class='legend']/rect")) == 2
    shown = texts(root)
    assert {"1.215,5", "1.707,4", "Nguồn vốn", "Tỷ đồng", "Kế hoạch", "Giải ngân"} <= set(shown)
    assert "2.000,0" in shown, "a tick above the tallest bar"


def test_counts_have_whole_ticks():
    root = parse(bar_chart("Số đơn vị", ["Cấp tỉnh", "Cấp huyện"], [Series("Dưới 95%", [1, 11])],
                           x_label="Cấp", y_label="Số đơn vị", percent=False))
    ticks = [t.text for t in root.find("./g[@class='axis y-axis']").iter("text") if t.get("class") == "tick"]
    assert ticks[0] == "0" and len(ticks) >= 3
    assert all(t.isdigit() for t in ticks), f"counts need no decimal ticks: {ticks}"


def test_empty_chart_is_titled():
    root = parse(empty_chart("Lỗi dữ liệu", "Không có số liệu"))
    assert root[0].text == "Lỗi dữ liệu"
    assert "Không có số liệu" in texts(root)


def months(first: date, count: int) -> list[date]:
    return [date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1) for i in range(count)]


def test_the_reorganisation_is_marked_where_a_trend_crosses_it():
    crossing = months(date(2025, 1, 1), 12)
    assert report.reorganisation_markers(crossing) == [Marker(5.5, "Sắp xếp đơn vị hành chính (01/07/2025)")]
    assert report.reorganisation_markers(months(date(2023, 1, 1), 6)) == [], "2023 does not reach it"
    assert report.reorganisation_markers(months(date(2025, 8, 1), 6)) == [], "after it"
    assert report.reorganisation_markers(months(date(2025, 7, 1), 3))[0].position == -0.5, "its first month"
    gap = [date(2025, 5, 1), date(2025, 6, 1), date(2025, 9, 1)]  # months without figures are not charted
    assert report.reorganisation_markers(gap)[0].position == 1.5
    svg = line_chart("Tỷ lệ", [f"{m:%m/%Y}" for m in crossing], [Series("Toàn tỉnh", [0.9] * 12)], x_label="Tháng",
                     y_label="%", markers=[*report.reorganisation_markers(crossing), Marker(40, "ngoài biểu đồ")])
    root = parse(svg)
    [marker] = root.findall("./g[@class='marker']")
    line = marker.find("line")
    xs = [float(c.get("cx")) for c in root.iter("circle")]
    assert line.get("x1") == line.get("x2")
    assert abs(float(line.get("x1")) - (xs[5] + xs[6]) / 2) <= 0.1, "between 06/2025 and 07/2025"
    assert "Sắp xếp đơn vị hành chính (01/07/2025)" in texts(root)


def test_trend_levels_come_from_today_s_units_and_the_province_as_recorded():
    """Across the reorganisation: the level lines are the *_current figures (a district's history counted in the
    commune that took over its area), the province line every dossier as recorded; the date is marked."""
    crossing = months(date(2024, 11, 1), 12)

    def row(month, scope, resolved, late):
        return {"month": month, "scope": scope, "resolved": resolved, "early": 0, "on_time": resolved - late,
                "late": late, "timely": resolved - late, "on_time_rate": (resolved - late) / resolved,
                "overdue_rate": late / resolved}

    recorded = [r for m in crossing for r in (row(m, "province", 100, 10), row(m, 2, 40, 8), row(m, 3, 60, 2))]
    current = [r for m in crossing for r in (row(m, 3, 98, 9),)]  # today: communes only, 2 dossiers of unknown units
    fig = {"timeliness": {"by_month": recorded}, "pending_overdue": {"units": [], "as_of_date": None},
           "current": {"timeliness": current, "merged_units": 3}}
    svg = report._timeliness_charts(fig)["chart-on-time"]
    root = parse(svg)
    series = {g.get("data-series"): [c.find("title").text for c in g.iter("circle")]
              for g in root.findall("./g[@class='series']")}
    assert set(series) == {"Toàn tỉnh", "Cấp xã"}, "no district line: no district exists today"
    assert series["Toàn tỉnh"][0].endswith(": 90,0%") and series["Cấp xã"][0].endswith(": 90,8%")
    assert len(root.findall("./g[@class='marker']")) == 1
    del fig["current"]  # figures made without today's units: the recorded levels
    root = parse(report._timeliness_charts(fig)["chart-on-time"])
    assert {g.get("data-series") for g in root.findall("./g[@class='series']")} == {"Toàn tỉnh", "Cấp huyện", "Cấp xã"}
