"""The morning report's maps (bản đồ): every commune and district coloured by its figure of the month.

Two maps, each one inline SVG (no tile, font, script or request: the report opens offline and prints):
- **on-time rate** (tỷ lệ giải quyết đúng hạn) of the report's month — resolved early or on time over resolved,
  every field summed, from ``fct_timeliness_monthly``;
- **intake digitisation rate** (số hóa hồ sơ khi tiếp nhận) of the same month — paper dossiers received with
  a digitised component over paper dossiers received, from ``fct_digitisation_monthly``.

Each map has two panels: the communes (UBND cấp xã), each coloured by the dossiers its People's Committee
handled, with the district outlines drawn over them; and the districts (UBND cấp huyện), each coloured by
the dossiers of the district People's Committee itself (not its communes'). Every area is a ``<path>`` with
``data-unit``, ``data-level``, ``data-class`` and ``data-value`` and a ``<title>`` tooltip (the unit's name,
then its figure). The legend and a note saying how the areas were drawn are in the SVG, in Vietnamese.

The areas are ``marts.dim_unit_geo.area_geojson`` (computed by the nightly reference step,
``ingestion/geography.py``): Voronoi cells of the communes' centres clipped to the province, districts as
the union of their communes' cells. They are projected here with an equirectangular projection scaled by
the cosine of the province's middle latitude (at this size indistinguishable from any conformal one).

Decisions:
- **Classes.** On-time: at least the target (95%, ``PUBLICATION_ON_TIME_TARGET``), then 5 and 15 points
  below it (90–95%, 80–90%, under 80% with the default target) — the seed's target and how far a unit is from
  it. Digitisation has no target in metrics.md: 90%, 70% and 50% break it into nearly done, under way,
  lagging and far behind. A unit without a denominator that month is "không có hồ sơ" (grey). A class holds
  its lower bound (exactly 95% meets the target).
- **Who is listed beside the map**: district- and commune-level units that have no area to draw — no
  statistics code, a code the geography does not know, or not yet looked up — when they are in force during
  the month or have figures in it, and units of the facts missing from ``dim_unit``, with their figures.
  Provincial bodies (departments, the centre) have no territory of their own and are not mapped; their
  figures are in the report's other sections.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import date
from html import escape

from markupsafe import Markup

from publication import figures as F
from publication.formatting import fmt_int, fmt_month, fmt_percent, rate

WIDTH = 960.0
COMMUNE_PANEL = 600.0  # width of the communes' panel
DISTRICT_PANEL = 320.0  # width of the districts' panel
GAP = 30.0
TOP = 48.0
NO_DATA = "none"
NO_DATA_LABEL = "Không có hồ sơ"
NO_DATA_COLOUR = "#d9dee3"
# From good to bad; dark enough apart to tell in greyscale print.
COLOURS = ("#1a9850", "#a6d96a", "#fdae61", "#d73027")
FONT = "'Segoe UI', 'Noto Sans', Roboto, 'Helvetica Neue', Arial, sans-serif"
NOTE = ("Ranh giới gần đúng: vùng của mỗi xã là các điểm gần tâm xã đó hơn tâm các xã khác (phân vùng Voronoi "
        "từ tọa độ tâm xã của gói vietnamadminunits), cắt theo phạm vi tỉnh; vùng huyện là hợp các vùng xã.")


def on_time_breaks(target: float = F.TARGET) -> tuple[float, ...]:
    """Lower bounds of the on-time classes, best first: the target, 5 and 15 points below it."""
    return (target, round(target - 0.05, 4), round(target - 0.15, 4))


MEASURES = {
    "on_time": {"title": "Tỷ lệ giải quyết hồ sơ đúng hạn", "short": "đúng hạn", "breaks": on_time_breaks(),
                "numerator": "timely", "denominator": "resolved", "noun": "hồ sơ đã giải quyết"},
    "intake_digitisation": {"title": "Tỷ lệ số hóa hồ sơ khi tiếp nhận", "short": "số hóa",
                            "breaks": (0.9, 0.7, 0.5), "numerator": "intake_digitised",
                            "denominator": "paper_received", "noun": "hồ sơ giấy tiếp nhận"},
}
MAP_IDS = {"on_time": "map-on-time", "intake_digitisation": "map-intake-digitisation"}


def classify(value: float | None, breaks: tuple[float, ...]) -> str:
    """The class key of a rate: ``c0`` (at least ``breaks[0]``) … ``c<len(breaks)>``, ``none`` for no rate."""
    if value is None:
        return NO_DATA
    for i, lower in enumerate(breaks):
        if value >= lower:
            return f"c{i}"
    return f"c{len(breaks)}"


def legend(breaks: tuple[float, ...], target_note: bool = False) -> list[dict]:
    """The classes of a measure, best first, then no data: key, colour and Vietnamese label."""
    out = []
    for i, lower in enumerate(breaks):
        label = f"Từ {fmt_percent(lower, 0)}" if i == 0 else \
            f"Từ {fmt_percent(lower, 0)} đến dưới {fmt_percent(breaks[i - 1], 0)}"
        if i == 0 and target_note:
            label += " (đạt mục tiêu)"
        out.append({"key": f"c{i}", "colour": COLOURS[i], "label": label})
    out.append({"key": f"c{len(breaks)}", "colour": COLOURS[len(breaks)],
                "label": f"Dưới {fmt_percent(breaks[-1], 0)}"})
    out.append({"key": NO_DATA, "colour": NO_DATA_COLOUR, "label": NO_DATA_LABEL})
    return out


# --------------------------------------------------------------------------------------------- figures

def collect(conn, month: date | None) -> dict:
    """The map's figures for ``month``: every unit of ``dim_unit_geo`` with both measures and their classes, the
    units listed beside the map, and the areas projected to SVG paths (``areas``; empty when the warehouse has
    no geography yet)."""
    out: dict = {"month": month, "units": [], "unplaced": [], "areas": {}, "frame": None,
                 "legends": {k: legend(m["breaks"], k == "on_time") for k, m in MEASURES.items()}}
    if month is None or not F.exists(conn, "marts.dim_unit_geo"):
        return out
    geo = F._rows(conn, "SELECT unit_code, unit_name, level, district_code, stat_code, geo_status, area_geojson, "
                  "valid_from, valid_to FROM marts.dim_unit_geo ORDER BY unit_code", (), "marts.dim_unit_geo")
    counts: dict[str, dict] = {}
    for r in F._rows(conn, "SELECT unit_code, sum(resolved)::bigint AS resolved, sum(early + on_time)::bigint AS "
                     "timely FROM marts.fct_timeliness_monthly WHERE month = %s GROUP BY unit_code", (month,),
                     "marts.fct_timeliness_monthly"):
        counts.setdefault(r["unit_code"], {}).update(resolved=r["resolved"], timely=r["timely"])
    for r in F._rows(conn, "SELECT unit_code, sum(paper_received)::bigint AS paper_received, "
                     "sum(intake_digitised)::bigint AS intake_digitised FROM marts.fct_digitisation_monthly "
                     "WHERE month = %s GROUP BY unit_code", (month,), "marts.fct_digitisation_monthly"):
        counts.setdefault(r["unit_code"], {}).update(paper_received=r["paper_received"],
                                                     intake_digitised=r["intake_digitised"])
    province_area = next((r["area_geojson"] for r in geo if r["level"] == 1 and r["area_geojson"]), None)
    drawn = [r for r in geo if r["level"] in (2, 3) and r["area_geojson"]]
    if drawn:
        frame = Frame.around([province_area] if province_area else [r["area_geojson"] for r in drawn])
        out["frame"] = {"width": frame.width, "height": frame.height}
        out["areas"] = {r["unit_code"]: frame.path(r["area_geojson"]) for r in drawn}
        if province_area:
            out["province_outline"] = frame.path(province_area)
    known = set()
    for r in geo:
        known.add(r["unit_code"])
        if r["level"] not in (2, 3):
            continue
        unit = _unit(r["unit_code"], r["unit_name"], r["level"], counts.get(r["unit_code"], {}))
        unit.update(district_code=r["district_code"], stat_code=r["stat_code"], geo_status=r["geo_status"],
                    drawn=r["unit_code"] in out["areas"])
        out["units"].append(unit)
        in_force = ((r["valid_from"] is None or r["valid_from"] < F.add_months(month, 1))
                    and (r["valid_to"] is None or r["valid_to"] >= month))
        if not unit["drawn"] and (in_force or _has_figures(unit)):
            out["unplaced"].append(unit)
    for code in sorted(set(counts) - known, key=lambda c: (c is None, c or "")):
        unit = _unit(code, F.UNKNOWN_UNIT, None, counts[code])
        unit.update(district_code=None, stat_code=None, geo_status="not_in_dim_unit", drawn=False)
        out["unplaced"].append(unit)
    return out


def _unit(code: str | None, name: str | None, level: int | None, c: dict) -> dict:
    unit = {"unit_code": code, "unit_name": name or code or F.UNKNOWN_UNIT, "level": level,
            "resolved": c.get("resolved", 0), "timely": c.get("timely", 0),
            "paper_received": c.get("paper_received", 0), "intake_digitised": c.get("intake_digitised", 0)}
    for key, m in MEASURES.items():
        value = rate(unit[m["numerator"]], unit[m["denominator"]])
        unit[f"{key}_rate"] = value
        unit[f"{key}_class"] = classify(value, m["breaks"])
    return unit


def _has_figures(unit: dict) -> bool:
    return bool(unit["resolved"] or unit["paper_received"])


# --------------------------------------------------------------------------------------------- projection

class Frame:
    """Longitude/latitude → SVG pixels of the communes' panel: equirectangular, scaled by cos(mid-latitude)."""

    def __init__(self, west: float, south: float, east: float, north: float, width: float = COMMUNE_PANEL):
        self.west, self.north = west, north
        self.k = math.cos(math.radians((south + north) / 2))
        self.scale = width / max((east - west) * self.k, 1e-9)
        self.width, self.height = width, round((north - south) * self.scale, 1)

    @classmethod
    def around(cls, areas: Iterable) -> Frame:
        """The frame holding every point of ``areas`` (GeoJSON geometries, as dicts or text)."""
        xs, ys = [], []
        for area in areas:
            for x, y in _points(_geometry(area)):
                xs.append(x)
                ys.append(y)
        return cls(min(xs), min(ys), max(xs), max(ys))

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """The pixel of a point."""
        return (lon - self.west) * self.k * self.scale, (self.north - lat) * self.scale

    def path(self, area) -> str:
        """SVG path data of a GeoJSON Polygon or MultiPolygon (every ring closed, holes by the even-odd rule)."""
        geometry = _geometry(area)
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        parts = []
        for polygon in polygons:
            for ring in polygon:
                pixels = [self.xy(lon, lat) for lon, lat, *_ in ring]
                parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in _dedupe(pixels)) + "Z")
        return "".join(parts)


def _geometry(area) -> dict:
    return json.loads(area) if isinstance(area, str) else area


def _points(geometry: dict) -> Iterable[tuple[float, float]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    for polygon in polygons:
        for ring in polygon:
            for lon, lat, *_ in ring:
                yield lon, lat


def _dedupe(pixels: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Consecutive points that round to the same pixel tenth, once (smaller paths, same drawing)."""
    out: list[tuple[float, float]] = []
    last = None
    for x, y in pixels:
        key = (round(x, 1), round(y, 1))
        if key != last:
            out.append((x, y))
            last = key
    return out


# --------------------------------------------------------------------------------------------- drawing

def _t(text: object) -> str:
    return escape(str(text), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def tooltip(unit: dict, key: str) -> str:
    """``<name>: 93,2% đúng hạn (41/44 hồ sơ đã giải quyết)`` or ``<name>: không có hồ sơ ...``."""
    m = MEASURES[key]
    den, num = unit[m["denominator"]], unit[m["numerator"]]
    if not den:
        return f"{unit['unit_name']}: không có {m['noun']}"
    return f"{unit['unit_name']}: {fmt_percent(unit[f'{key}_rate'])} {m['short']} ({fmt_int(num)}/{fmt_int(den)} " \
           f"{m['noun']})"


def draw(fig_map: dict) -> dict[str, Markup]:
    """Map id → SVG markup (marked safe) for each measure; empty with nothing to draw (no month, no areas)."""
    if not fig_map.get("areas") or not fig_map.get("frame"):
        return {}
    return {MAP_IDS[key]: Markup(_draw_one(fig_map, key)) for key in MEASURES}  # the SVG escapes its own text


def _draw_one(fig_map: dict, key: str) -> str:
    m, areas, frame = MEASURES[key], fig_map["areas"], fig_map["frame"]
    colours = {c["key"]: c["colour"] for c in fig_map["legends"][key]}
    scale = DISTRICT_PANEL / frame["width"]
    d_left = COMMUNE_PANEL + GAP
    d_height = frame["height"] * scale
    legend_top = TOP + d_height + 40
    entries = fig_map["legends"][key]
    height = max(TOP + frame["height"], legend_top + 20 * len(entries)) + 48
    title = f"Bản đồ {m['title'].lower()}, tháng {fmt_month(fig_map['month'])}"
    out = [f'<svg id="{MAP_IDS[key]}" class="chart geo-map" role="img" viewBox="0 0 {_n(WIDTH)} {_n(height)}" '
           f'width="{_n(WIDTH)}" height="{_n(height)}" font-family="{_t(FONT)}" font-size="12" fill="#222222">',
           f"<title>{_t(title)}</title>",
           "<style>.geo-map{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
           ".geo-map path.area:hover{stroke:#000;stroke-width:1.5}</style>",
           f'<text class="chart-title" x="{_n(WIDTH / 2)}" y="20" text-anchor="middle" font-size="15" '
           f'font-weight="600">{_t(title)}</text>',
           f'<text class="axis-label" x="0" y="{_n(TOP - 8)}" font-weight="600">Cấp xã (UBND xã, phường, thị '
           f'trấn); đường đậm: ranh giới huyện</text>']
    units = {u["unit_code"]: u for u in fig_map["units"]}

    def area(unit: dict) -> str:
        cls = unit[f"{key}_class"]
        value = unit[f"{key}_rate"]
        return (f'<path class="area" d="{areas[unit["unit_code"]]}" fill="{colours[cls]}" stroke="#ffffff" '
                f'stroke-width="0.6" vector-effect="non-scaling-stroke" data-unit="{_t(unit["unit_code"])}" '
                f'data-level="{unit["level"]}" data-class="{cls}" data-value="{"" if value is None else repr(value)}">'
                f"<title>{_t(tooltip(unit, key))}</title></path>")

    communes = [u for u in units.values() if u["level"] == 3 and u["drawn"]]
    districts = [u for u in units.values() if u["level"] == 2 and u["drawn"]]
    out.append(f'<g class="communes" transform="translate(0,{_n(TOP)})">')
    if fig_map.get("province_outline"):
        out.append(f'<path d="{fig_map["province_outline"]}" fill="{NO_DATA_COLOUR}" stroke="none"/>')
    out.extend(area(u) for u in communes)
    out.append('<g class="district-outlines" fill="none" stroke="#333333" stroke-width="1.3" '
               'pointer-events="none">')
    out.extend(f'<path d="{areas[u["unit_code"]]}" data-outline="{_t(u["unit_code"])}"/>' for u in districts)
    out.append("</g></g>")
    out.append(f'<text class="axis-label" x="{_n(d_left)}" y="{_n(TOP - 8)}" font-weight="600">Cấp huyện '
               f'(hồ sơ của UBND huyện)</text>')
    out.append(f'<g class="districts" transform="translate({_n(d_left)},{_n(TOP)}) scale({scale:.5f})">')
    out.extend(area(u) for u in districts)
    out.append("</g>")
    out.append(f'<g class="legend" transform="translate({_n(d_left)},{_n(legend_top)})">')
    out.append(f'<text x="0" y="-8" font-weight="600">Chú giải: {_t(m["title"].lower())}</text>')
    for i, entry in enumerate(entries):
        y = 6 + i * 20
        out.append(f'<rect x="0" y="{y}" width="22" height="13" fill="{entry["colour"]}" stroke="#777777" '
                   f'stroke-width="0.5" data-class="{entry["key"]}"/>'
                   f'<text x="30" y="{y + 11}" data-class="{entry["key"]}">{_t(entry["label"])}</text>')
    out.append("</g>")
    note_y = height - 26
    for i, line in enumerate(_wrap(NOTE, 150)):
        out.append(f'<text class="map-note" x="0" y="{_n(note_y + i * 15)}" font-size="11" fill="#5f6b76">'
                   f"{_t(line)}</text>")
    out.append("</svg>")
    return "".join(out)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
