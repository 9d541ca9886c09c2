"""Where the units are: centres, bounds and approximate areas of the administrative units, for maps.

The procedure system's ``GET /units`` gives each district and commune its national statistics code
(``MaHanhChinh``) but no geography. The pinned ``vietnamadminunits`` package ships, for every province,
district and commune of the legacy (63-province) list, a geocoded centre and bounding box, and for the 2025
communes a centre. This step looks each unit's code up in it and writes one row per unit to
``raw.unit_geography``, which ``marts.dim_unit_geo`` publishes for BI tools and the morning report's map.
It runs inside the reference step of every night (``ingestion.loads.refresh_reference``), after the units
list is refreshed, and needs nothing but the installed package: no network, whichever server sends the
units, in any province.

Decisions (the contract and the package are silent on them):
- **Which list a code is looked up in.** The 2025 communes reuse codes of legacy communes for different
  areas, so the list is chosen by the unit's validity: a unit in force from the reorganisation day
  (``HieuLucTu`` ≥ 2025-07-01) is looked up among the 2025 communes (and provinces), any other among the
  legacy units, by its level (1 province, 2 district, 3 commune). A code not found there is ``unknown_code``
  and kept with the unit — never dropped, never guessed from the other list. Codes are compared as digits,
  so ``"0502"`` and ``"502"`` are the same district.
- **A district the package does not know** (Nông Sơn, code 519, merged into Quế Sơn in 2024 and absent from
  the package) whose communes it knows is ``derived``: its centre is the centre of its communes' area, its
  bounds those of its communes' bounds.
- **Areas** (the package has no outlines) are approximated: a Voronoi tessellation of the centres of the
  communes in force on the night, clipped to the province's area — the union of those communes' bounding
  boxes (a square of ~8 km for a commune without bounds, as in the 2025 list; holes and slivers between
  boxes filled), cut to the province's bounding box when the package has it. A district's area is the union of
  its communes' cells, the province's the whole clipped area. The Voronoi is computed in a plane scaled by
  the cosine of the province's latitude, so a cell is the set of points nearest to its centre on the ground.
  Units not in force, or not communes, districts or the province, get a centre and bounds but no area.
- **Centres the geocoder shared.** The package gives a few communes the very point of their district or of
  another commune (its geocoder fell back to a larger place). They keep that centre in the table
  (``centre_source`` says it is shared), but for the tessellation each group of identical centres is spread
  on a small circle around it (radius a quarter of the distance to the nearest other centre, at most
  1 km), in code order, so every commune gets a cell of its own.
- **The table is replaced whole** at every run, in one transaction, for the latest version of every unit
  ever served (as ``stg_api__units`` keeps them): it is derived from the units list and the pinned package,
  so it has no history of its own. A failure here is logged and returned, and yesterday's rows stay: a map
  must never stop the night.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from importlib import metadata, resources

import shapely
from shapely.geometry import MultiPoint, Point, Polygon, box, mapping
from shapely.ops import transform, unary_union

log = logging.getLogger(__name__)

PACKAGE = "vietnamadminunits"
REORGANISED_ON = date(2025, 7, 1)  # Resolution 202/2025/QH15: two tiers of local government from this day
LEVEL_NAMES = {1: "province", 2: "district", 3: "commune"}
CODE_WIDTH = {"province": 2, "district": 3, "commune": 5}
SPREAD_MAX_DEGREES = 0.009  # ~1 km: how far identical centres are moved apart for the tessellation
COORD_DIGITS = 5  # ~1 m: the stored areas' precision
NO_BOUNDS_HALF_SIDE = 0.04  # ~4 km: the square standing for a commune the package gives no bounds (2025 list)
CLOSING = 0.01  # ~1 km: slivers between communes' boxes narrower than twice this are the province too

LOCATED, DERIVED, UNKNOWN, NO_CODE = "located", "derived", "unknown_code", "no_code"
AREA_VORONOI = "voronoi of commune centres, clipped to the province"
AREA_UNION = "union of its communes' voronoi cells"
AREA_PROVINCE = "union of the communes' bounding boxes, clipped to the province's bounds"


@dataclass(frozen=True)
class Place:
    """One entry of the package's lists: a province, district or commune."""

    kind: str  # province | district | commune
    code: str
    name: str
    lat: float
    lon: float
    bounds: tuple[float, float, float, float] | None  # south, west, north, east
    dataset: str  # legacy | 2025


@dataclass
class UnitGeo:
    """One row of ``raw.unit_geography``."""

    unit_code: str
    stat_code: str | None
    level: int | None
    status: str
    kind: str | None = None
    dataset: str | None = None
    geo_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    bounds: tuple[float, float, float, float] | None = None
    centre_source: str | None = None
    area_method: str | None = None
    area: object | None = field(default=None, repr=False)  # a shapely geometry, lon/lat

    def as_row(self) -> dict:
        """The table row: bounds spread out, the area as GeoJSON text (None when there is none)."""
        south, west, north, east = self.bounds or (None, None, None, None)
        return {"unit_code": self.unit_code, "stat_code": self.stat_code, "level": self.level,
                "geo_status": self.status, "geo_kind": self.kind, "geo_dataset": self.dataset,
                "geo_name": self.geo_name, "lat": self.lat, "lon": self.lon, "south": south, "west": west,
                "north": north, "east": east, "centre_source": self.centre_source,
                "area_method": self.area_method, "area_geojson": geojson(self.area)}


# ------------------------------------------------------------------------------------------- the package

def _bounds(text: str | None) -> tuple[float, float, float, float] | None:
    """``"14.95,107.21 – 16.07,108.74"`` → (south, west, north, east); None when unreadable."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text or "")
    if len(numbers) != 4:
        return None
    a, b, c, d = map(float, numbers)
    return min(a, c), min(b, d), max(a, c), max(b, d)


def _digits(code: str | None) -> str | None:
    """A statistics code as comparable digits (leading zeros dropped); None for anything else."""
    text = (code or "").strip()
    return (text.lstrip("0") or "0") if text.isdigit() else None


class Gazetteer:
    """The package's places, by (dataset, kind, code digits)."""

    def __init__(self, places: list[Place], version: str):
        self.version = version
        self._index = {(p.dataset, p.kind, _digits(p.code)): p for p in places}

    def find(self, dataset: str, kind: str, code: str | None) -> Place | None:
        """The place of that list, kind and code, or None."""
        return self._index.get((dataset, kind, _digits(code)))

    @classmethod
    @lru_cache(maxsize=1)
    def from_package(cls) -> Gazetteer:
        """Every place of the installed package (read once per process: a few thousand rows, ~0.1 s)."""
        path = resources.files(PACKAGE) / "data" / "dataset.db"
        places: dict[tuple, Place] = {}
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            for r in conn.execute("SELECT * FROM admin_units_legacy"):
                for kind in ("province", "district", "ward"):
                    name = "commune" if kind == "ward" else kind
                    key = ("legacy", name, r[f"{kind}Code"])
                    if key not in places and r[f"{kind}Lat"] is not None:
                        places[key] = Place(name, r[f"{kind}Code"], r[kind], r[f"{kind}Lat"], r[f"{kind}Lon"],
                                            _bounds(r[f"{kind}Bounds"]), "legacy")
            for r in conn.execute("SELECT * FROM admin_units"):
                for kind in ("province", "ward"):
                    name = "commune" if kind == "ward" else kind
                    key = ("2025", name, r[f"{kind}Code"])
                    if key not in places and r[f"{kind}Lat"] is not None:
                        places[key] = Place(name, r[f"{kind}Code"], r[kind], r[f"{kind}Lat"], r[f"{kind}Lon"],
                                            None, "2025")
        return cls(list(places.values()), metadata.version(PACKAGE))


# ------------------------------------------------------------------------------------------- the units

@dataclass(frozen=True)
class UnitRecord:
    """What the geography needs of a ``GET /units`` record."""

    unit_code: str
    level: int | None
    parent_code: str | None
    stat_code: str | None
    valid_from: date | None
    valid_to: date | None
    is_listed: bool = True

    def in_force(self, day: date) -> bool:
        """Listed, started, and not ended before ``day``."""
        return (self.is_listed and (self.valid_from is None or self.valid_from <= day)
                and (self.valid_to is None or self.valid_to >= day))

    @classmethod
    def from_payload(cls, unit_code: str, payload: dict, is_listed: bool = True,
                     stat_text: str | None = None) -> UnitRecord:
        """From the API's record (``MaDonVi``, ``CapDonVi``, ``MaDonViCha``, ``MaHanhChinh``, validity).
        ``stat_text`` is ``MaHanhChinh`` as the warehouse reads it (``payload ->> 'MaHanhChinh'``, as staging
        does), so the code kept here is the one ``dim_unit_geo`` joins on; by default the payload's string."""
        level = payload.get("CapDonVi")
        stat = stat_text if stat_text is not None else payload.get("MaHanhChinh")
        stat = stat if isinstance(stat, str) and stat != "" else None
        return cls(unit_code, level if isinstance(level, int) and not isinstance(level, bool) else None,
                   payload.get("MaDonViCha") or None, stat,
                   _api_date(payload.get("HieuLucTu")), _api_date(payload.get("HieuLucDen")), is_listed)


def _api_date(value) -> date | None:
    text = str(value or "")
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def _dataset(unit: UnitRecord) -> str:
    return "2025" if unit.valid_from is not None and unit.valid_from >= REORGANISED_ON else "legacy"


def locate(units: list[UnitRecord], gazetteer: Gazetteer) -> dict[str, UnitGeo]:
    """Each unit's centre and bounds from the package (see the module docstring), by unit code."""
    out: dict[str, UnitGeo] = {}
    for u in units:
        kind = LEVEL_NAMES.get(u.level)
        if not u.stat_code:
            out[u.unit_code] = UnitGeo(u.unit_code, None, u.level, NO_CODE, kind)
            continue
        place = gazetteer.find(_dataset(u), kind, u.stat_code) if kind else None
        if place is None:
            out[u.unit_code] = UnitGeo(u.unit_code, u.stat_code, u.level, UNKNOWN, kind, _dataset(u))
            continue
        out[u.unit_code] = UnitGeo(u.unit_code, u.stat_code, u.level, LOCATED, kind, place.dataset, place.name,
                                   place.lat, place.lon, place.bounds,
                                   f"{PACKAGE} {gazetteer.version}, {place.dataset} list")
    # The geocoder gave some units the very point of another: say so, the point stays as the package has it.
    shared: dict[tuple, list[UnitGeo]] = defaultdict(list)
    for g in out.values():
        if g.status == LOCATED:
            shared[(g.kind, g.lat, g.lon)].append(g)
    for group in shared.values():
        if len(group) > 1:
            for g in group:
                g.centre_source += f" (approximate: the same point as {len(group) - 1} other unit(s))"
    return out


# ------------------------------------------------------------------------------------------- the areas

def _plane(lat0: float):
    """Forward and inverse maps lon/lat ↔ a plane where a degree of longitude is cos(lat0) of one of latitude."""
    k = math.cos(math.radians(lat0))
    return (lambda x, y, z=None: (x * k, y)), (lambda x, y, z=None: (x / k, y))


def _spread(points: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Identical points moved apart on a small circle (module docstring), in key order; others unchanged."""
    groups: dict[tuple[float, float], list[str]] = defaultdict(list)
    for key in sorted(points):
        groups[points[key]].append(key)
    distinct = list(groups)
    out = dict(points)
    for centre, keys in groups.items():
        if len(keys) == 1:
            continue
        nearest = min((math.dist(centre, other) for other in distinct if other != centre), default=1.0)
        radius = min(nearest / 4, SPREAD_MAX_DEGREES)
        for i, key in enumerate(keys):
            angle = 2 * math.pi * i / len(keys)
            out[key] = (centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
    return out


def _without_holes(geometry):
    """The geometry with its interior rings filled: a gap between communes' boxes is still the province."""
    polygons = [geometry] if geometry.geom_type == "Polygon" else list(getattr(geometry, "geoms", []))
    return unary_union([Polygon(p.exterior) for p in polygons if p.geom_type == "Polygon"]) or geometry


def tessellate(units: list[UnitRecord], located: dict[str, UnitGeo], day: date) -> None:
    """Give the communes in force on ``day`` their Voronoi cell, districts the union of their communes' cells,
    the province the whole area (in place, on ``located``); derive the centre of districts the package does
    not know from their communes."""
    communes = [u for u in units if u.level == 3 and u.in_force(day) and located[u.unit_code].status == LOCATED]
    if not communes:
        return
    geo = {u.unit_code: located[u.unit_code] for u in communes}
    province = next((located[u.unit_code] for u in units if u.level == 1 and u.in_force(day)
                     and located[u.unit_code].status == LOCATED and located[u.unit_code].bounds), None)
    boxes = [box(g.bounds[1], g.bounds[0], g.bounds[3], g.bounds[2]) if g.bounds
             else Point(g.lon, g.lat).buffer(NO_BOUNDS_HALF_SIDE, cap_style="square") for g in geo.values()]
    region = _without_holes(unary_union(boxes).buffer(CLOSING, join_style="mitre").buffer(-CLOSING,
                                                                                         join_style="mitre"))
    if province is not None:
        s, w, n, e = province.bounds
        region = region.intersection(box(w, s, e, n))
    lat0 = sum(g.lat for g in geo.values()) / len(geo)
    forward, inverse = _plane(lat0)
    region_plane = transform(forward, region)
    points = _spread({code: forward(g.lon, g.lat) for code, g in geo.items()})
    codes = sorted(points)
    cells = shapely.voronoi_polygons(MultiPoint([points[c] for c in codes]), extend_to=region_plane.envelope,
                                     ordered=True)
    for code, cell in zip(codes, cells.geoms, strict=True):
        clipped = cell.intersection(region_plane)
        geo[code].area = transform(inverse, clipped) if not clipped.is_empty else None
        geo[code].area_method = AREA_VORONOI if geo[code].area is not None else None

    by_district: dict[str, list[UnitGeo]] = defaultdict(list)
    for u in communes:
        if u.parent_code:
            by_district[u.parent_code].append(geo[u.unit_code])
    levels = {u.unit_code: u for u in units}
    for district_code, members in by_district.items():
        district = located.get(district_code)
        record = levels.get(district_code)
        if district is None or record is None or record.level != 2 or not record.in_force(day):
            continue
        cells_of = [m.area for m in members if m.area is not None]
        if cells_of:
            district.area = unary_union(cells_of)
            district.area_method = AREA_UNION
        if district.status == UNKNOWN and district.stat_code:
            _derive(district, members, district.area)
    if province is not None:
        province.area = region
        province.area_method = AREA_PROVINCE


def _derive(district: UnitGeo, members: list[UnitGeo], area) -> None:
    """A district the package does not know, placed by its communes (module docstring)."""
    boxes = [m.bounds for m in members if m.bounds]
    centre = area.representative_point() if area is not None and not area.contains(area.centroid) else (
        area.centroid if area is not None else None)
    if centre is None:
        centre = Point(sum(m.lon for m in members) / len(members), sum(m.lat for m in members) / len(members))
    district.status = DERIVED
    district.lat, district.lon = round(centre.y, 6), round(centre.x, 6)
    if boxes:
        district.bounds = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                           max(b[3] for b in boxes))
    district.centre_source = f"derived from its {len(members)} communes' areas ({PACKAGE} list)"


def geojson(geometry) -> str | None:
    """A shapely geometry as compact GeoJSON text, coordinates rounded to ``COORD_DIGITS``; None for none."""
    if geometry is None or geometry.is_empty:
        return None
    rounded = shapely.set_precision(geometry, 10 ** -COORD_DIGITS)
    return json.dumps(mapping(rounded), separators=(",", ":"))


def unit_geography(units: list[UnitRecord], day: date, gazetteer: Gazetteer | None = None) -> list[UnitGeo]:
    """The geography of every unit (one per unit, in code order) as of ``day``."""
    gazetteer = gazetteer or Gazetteer.from_package()
    located = locate(units, gazetteer)
    tessellate(units, located, day)
    return [located[code] for code in sorted(located)]


# ------------------------------------------------------------------------------------------- the table

COLUMNS = ("unit_code", "stat_code", "level", "geo_status", "geo_kind", "geo_dataset", "geo_name", "lat", "lon",
           "south", "west", "north", "east", "centre_source", "area_method", "area_geojson")
UNITS_SQL = """
SELECT DISTINCT ON (record_key) record_key, payload, valid_to IS NULL AS is_listed, payload ->> 'MaHanhChinh'
FROM raw.reference_versions WHERE source = 'units' ORDER BY record_key, valid_from DESC
"""


def _comparable(row: dict) -> tuple:
    area = row["area_geojson"]
    return tuple(json.loads(area) if c == "area_geojson" and isinstance(area, str) else row[c] for c in COLUMNS)


def refresh_unit_geography(conn, run_id: str, as_of: datetime | date) -> dict:
    """Replace ``raw.unit_geography`` with the geography of the latest version of every unit landed (module
    docstring), as of ``as_of``'s day. Returns the outcome in the shape of a reference list's
    (``status``, ``new_versions``: rows added or changed, ``closed``: rows removed, ``detail``); a failure is
    logged and returned with ``status`` ``failed``, the table left as it was."""
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    try:
        gazetteer = Gazetteer.from_package()
        with conn.transaction():
            units = [UnitRecord.from_payload(code, payload if isinstance(payload, dict) else {}, listed, stat)
                     for code, payload, listed, stat in conn.execute(UNITS_SQL)]
            rows = [g.as_row() for g in unit_geography(units, day, gazetteer)]
            cur = conn.cursor()
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM raw.unit_geography")
            old = {r[0]: tuple(r) for r in cur.fetchall()}
            new = {r["unit_code"]: _comparable(r) for r in rows}
            conn.execute("DELETE FROM raw.unit_geography")
            package = f"{PACKAGE} {gazetteer.version}"
            with cur.copy(f"COPY raw.unit_geography ({', '.join(COLUMNS)}, run_id, package) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row([r[c] for c in COLUMNS] + [run_id, package])
    except Exception as exc:  # a map must never stop the night: yesterday's rows stay
        log.warning("unit geography not refreshed: %s", exc, exc_info=True)
        return {"status": "failed", "new_versions": 0, "closed": 0, "detail": f"{type(exc).__name__}: {exc}"}
    changed = sum(1 for code, values in new.items() if old.get(code) != values)
    statuses = defaultdict(int)
    for r in rows:
        statuses[r["geo_status"]] += 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    return {"status": "complete", "new_versions": changed, "closed": len(old.keys() - new.keys()),
            "detail": f"{len(rows)} units: {detail} ({package})"}
