"""The 2025 reorganisation of Quảng Nam's area, for the reorganisation scenario (``Scenario.reorganisation``).

From 1 July 2025 Vietnam has two tiers of local government (Resolution 202/2025/QH15): district-level units
are abolished, communes are merged into far fewer, directly under the province, and Quảng Nam is part of
Đà Nẵng city. The real crosswalk comes from the ``vietnamadminunits`` package: its legacy list (the
simulator's units, ``simulator.units``), its 2025 list and ``converter_2025.json`` — for each 2025 commune the
legacy communes it was made of (``DICT_PROVINCE_WARD_NO_DIVIDED``), and for each legacy commune divided
between several 2025 ones those, with the default successor marked (``DICT_PROVINCE_WARD_DIVIDED``).

What the System serves (reorganisation.md), and the simulator's decisions where the spec is silent:

- **Old units close** with ``HieuLucDen`` 2025-06-30 and ``DonViKeThua`` (the main successor first):
  - a commune: the 2025 communes the package names, the default one first then the others in the package's
    order. (The package divides none of Quảng Nam's 233 communes — its only divided commune in the merged
    city is Hòa Liên, of the old Đà Nẵng; ``crosswalk`` reads divided communes all the same.)
  - a district-level unit: every 2025 commune that took over one of its communes, the main one first — the
    commune that bears the district's name (Phường Tam Kỳ, Xã Quế Sơn), else the one that took its seat
    (its thị trấn: Khâm Đức for Phước Sơn, Trà My for Bắc Trà My), else the one that took most of its
    communes; the others in 2025-code order. Nông Sơn, merged into Quế Sơn on 2024-12-01, keeps Quế Sơn as
    its successor: its area reaches Xã Quế Sơn through two successions.
  - the province's bodies: the departments of the merged city that took over their fields, as the 2025
    mergers of departments left them (Planning and Investment into Finance; Natural Resources and
    Environment with Agriculture into Agriculture and Environment; Transport into Construction; Information
    and Communications into Science and Technology; Labour, Invalids and Social Affairs divided between Home
    Affairs — the main successor — and Health; the Ethnic Minorities Committee into the Department of Ethnic
    and Religious Affairs). Those mergers are folded into 1 July here: the scenario's departments change once.
  - the provincial People's Committee and its public-service centre: the city's.
- **On purpose, one closed unit without successor**: the System's record of the Department of Transport omits
  ``DonViKeThua`` (reorganisation.md: it closes without successors), although its area and its open dossiers
  did pass to the city's Department of Construction.
- **New units** open with ``HieuLucTu`` 2025-07-01, in the QCVN 102 style with the merged city's suffix
  ``H17``: the city's People's Committee ``000.00.00.H17`` (level 1, the root: it is "the province" from that
  day), its departments ``000.00.NN.H17`` and public-service centre ``000.00.31.H17`` (level 1), and the 78
  communes and wards of the 2025 list made from Quảng Nam's communes, ``000.KK.00.H17`` (level 3, ``KK`` their
  rank by 2025 code; ``MaDonViCha`` the city; ``MaHanhChinh`` their 2025 code). The 16 wards of the old Đà
  Nẵng city are not in this System's area. No level-2 unit is in force from 2025-07-01.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from importlib import resources

import numpy as np

from simulator.catalogue import Procedure
from simulator.delegations import DelegationItem
from simulator.timefmt import DAY, NEVER, to_secs
from simulator.units import CENTRE_CODE, NONG_SON_LAST_DAY, PROVINCE_CODE, Unit

REORGANISED_ON = date(2025, 7, 1)  # first day of the two-tier local government
LAST_DAY = date(2025, 6, 30)  # the old units' HieuLucDen
LEGACY_PROVINCE = "49"  # Quảng Nam, in the package's legacy list
NEW_PROVINCE_KEY = "thanhphodanang"  # the 2025 province it is part of, in the package's crosswalk
CITY_CODE = "000.00.00.H17"
CITY_CENTRE_CODE = "000.00.31.H17"
CITY_STAT_CODE = "48"

# The merged city's departments: (code suffix NN, name, fields it handles).
CITY_DEPARTMENTS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "Sở Nội vụ", ("NOI_VU", "LAO_DONG")),
    (2, "Sở Tư pháp", ("TU_PHAP", "CHUNG_THUC")),
    (3, "Sở Tài chính", ("DOANH_NGHIEP", "TAI_CHINH")),
    (4, "Sở Công Thương", ("CONG_THUONG",)),
    (5, "Sở Nông nghiệp và Môi trường", ("NONG_NGHIEP", "DAT_DAI", "MOI_TRUONG")),
    (6, "Sở Xây dựng", ("XAY_DUNG", "GIAO_THONG")),
    (7, "Sở Khoa học và Công nghệ", ("KHOA_HOC", "THONG_TIN")),
    (8, "Sở Văn hóa và Thể thao", ("VAN_HOA",)),
    (9, "Sở Y tế", ("Y_TE", "BAO_TRO_XA_HOI")),
    (10, "Sở Giáo dục và Đào tạo", ("GIAO_DUC",)),
    (11, "Sở Dân tộc và Tôn giáo", ("DAN_TOC",)),
]
# Quảng Nam's department NN (simulator.units.DEPARTMENTS) -> the city's departments that took it over, main first.
DEPARTMENT_SUCCESSORS: dict[int, tuple[int, ...]] = {
    1: (1,), 2: (2,), 3: (3,), 4: (3,), 5: (4,), 6: (5,), 7: (6,), 8: (6,), 9: (5,), 10: (7,), 11: (1, 9),
    12: (8,), 13: (7,), 14: (10,), 15: (9,), 16: (11,),
}
UNANNOUNCED_SUCCESSOR = "000.00.07.H47"  # Sở Giao thông vận tải: its record omits DonViKeThua


def city_department_code(nn: int) -> str:
    return f"000.00.{nn:02d}.H17"


@dataclass(frozen=True)
class NewCommune:
    """A commune or ward of the 2025 list."""

    stat_code: str  # its 2025 code (wardCode)
    name: str  # as the package spells it, e.g. "Phường Bàn Thạch"
    key: str  # the package's wardKey
    short_key: str


def _db_rows(query: str, *params) -> list[sqlite3.Row]:
    path = resources.files("vietnamadminunits") / "data" / "dataset.db"
    with sqlite3.connect(str(path)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(query, params).fetchall()


@lru_cache(maxsize=4)
def _converter() -> dict:
    return json.loads((resources.files("vietnamadminunits") / "data" / "converter_2025.json").read_text())


@lru_cache(maxsize=8)
def crosswalk(legacy_province: str = LEGACY_PROVINCE,
              new_province_key: str = NEW_PROVINCE_KEY) -> dict[str, tuple[str, ...]]:
    """``{legacy wardCode: (2025 wardCodes of its successors, the default one first)}`` for every commune of
    the legacy province ``legacy_province`` that the package's crosswalk to ``new_province_key`` names: a
    commune merged whole has one successor; a divided one every commune it was divided between."""
    legacy = {f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}": r["wardCode"] for r in _db_rows(
        "SELECT provinceKey, districtKey, wardKey, wardCode FROM admin_units_legacy WHERE provinceCode = ?",
        legacy_province)}
    new_codes = {r["wardKey"]: r["wardCode"] for r in _db_rows(
        "SELECT wardKey, wardCode FROM admin_units WHERE provinceKey = ?", new_province_key)}
    data = _converter()
    out: dict[str, list[str]] = {}
    for new_key, old_keys in data["DICT_PROVINCE_WARD_NO_DIVIDED"].get(new_province_key, {}).items():
        for old in old_keys:
            if old in legacy:
                out.setdefault(legacy[old], []).append(new_codes[new_key])
    for old, parts in data["DICT_PROVINCE_WARD_DIVIDED"].get(new_province_key, {}).items():
        if old in legacy:
            ordered = sorted(parts, key=lambda p: not p["isDefaultNewWard"])  # stable: the package's order
            out.setdefault(legacy[old], []).extend(new_codes[p["newWardKey"]] for p in ordered)
    return {code: tuple(dict.fromkeys(successors)) for code, successors in out.items()}


@lru_cache(maxsize=4)
def new_communes(new_province_key: str = NEW_PROVINCE_KEY) -> dict[str, NewCommune]:
    """The 2025 communes of ``new_province_key`` by 2025 code."""
    return {r["wardCode"]: NewCommune(r["wardCode"], r["ward"], r["wardKey"], r["wardShortKey"]) for r in _db_rows(
        "SELECT wardCode, ward, wardKey, wardShortKey FROM admin_units WHERE provinceKey = ? ORDER BY wardCode",
        new_province_key)}


@lru_cache(maxsize=4)
def _legacy_districts(legacy_province: str = LEGACY_PROVINCE) -> dict[str, dict]:
    """``{districtCode: {short_key, seats: {wardCode of its thị trấn}}}`` from the package's legacy list."""
    out: dict[str, dict] = {}
    for r in _db_rows("SELECT districtCode, districtShortKey, wardCode, wardType FROM admin_units_legacy "
                      "WHERE provinceCode = ?", legacy_province):
        d = out.setdefault(r["districtCode"], {"short_key": r["districtShortKey"], "seats": set()})
        if r["wardType"].casefold() == "thị trấn":
            d["seats"].add(r["wardCode"])
    return out


def _commune_name(name: str) -> str:
    """``UBND phường Bàn Thạch`` from ``Phường Bàn Thạch`` (the unit names' style, simulator.units)."""
    kind, _, rest = name.partition(" ")
    return f"UBND {kind.casefold()} {rest}"


def district_successors(district_stat: str, commune_successors: dict[str, tuple[str, ...]],
                        communes_of_district: list[str]) -> tuple[str, ...]:
    """2025 codes that took over a district's area, main first (see the module docstring)."""
    names = new_communes()
    counts: dict[str, int] = {}
    for commune in communes_of_district:
        for code in commune_successors.get(commune, ()):
            counts[code] = counts.get(code, 0) + 1
    if not counts:
        return ()
    info = _legacy_districts().get(district_stat, {"short_key": None, "seats": set()})
    named = [c for c in counts if names[c].short_key == info["short_key"]]
    seated = [commune_successors[s][0] for s in sorted(info["seats"]) if s in commune_successors]
    most = sorted(counts, key=lambda c: (-counts[c], c))
    main = (named or seated or most)[0]
    return (main, *sorted(c for c in counts if c != main))


def reorganise(units: list[Unit]) -> list[Unit]:
    """The legacy units closing on 2025-06-30 with their successors, and the merged city's units opening on
    2025-07-01, in code order."""
    by_stat = crosswalk()
    communes_2025 = new_communes()
    used = sorted({code for successors in by_stat.values() for code in successors})
    code_of = {stat: f"000.{k:02d}.00.H17" for k, stat in enumerate(used, start=1)}

    new_units = [Unit(CITY_CODE, "UBND thành phố Đà Nẵng", 1, "UBND_TINH", None, CITY_STAT_CODE, REORGANISED_ON)]
    new_units += [Unit(city_department_code(nn), name, 1, "SO_NGANH", CITY_CODE, None, REORGANISED_ON, fields=f)
                  for nn, name, f in CITY_DEPARTMENTS]
    new_units.append(Unit(CITY_CENTRE_CODE, "Trung tâm Phục vụ hành chính công thành phố Đà Nẵng", 1,
                          "TRUNG_TAM_PVHCC", CITY_CODE, None, REORGANISED_ON))
    new_units += [Unit(code_of[stat], _commune_name(communes_2025[stat].name), 3, "UBND_XA", CITY_CODE, stat,
                       REORGANISED_ON) for stat in used]

    out = []
    for u in units:
        if u.valid_to is not None and u.valid_to <= NONG_SON_LAST_DAY:
            out.append(u)  # closed before (Nông Sơn): keeps its successor
            continue
        if u.kind == "UBND_XA":
            successors = tuple(code_of[s] for s in by_stat[u.stat_code])
        elif u.kind == "UBND_HUYEN":
            own = [c.stat_code for c in units if c.kind == "UBND_XA" and c.parent_at(LAST_DAY) == u.code]
            successors = tuple(code_of[s] for s in district_successors(u.stat_code, by_stat, own))
        elif u.code == PROVINCE_CODE:
            successors = (CITY_CODE,)
        elif u.code == CENTRE_CODE:
            successors = (CITY_CENTRE_CODE,)
        else:
            nn = int(u.code[7:9])
            successors = tuple(city_department_code(k) for k in DEPARTMENT_SUCCESSORS[nn])
        out.append(replace(u, valid_to=LAST_DAY, successors=successors,
                           successors_served=u.code != UNANNOUNCED_SUCCESSOR))
    out += new_units
    out.sort(key=lambda u: u.code)
    return out


# ----- dossiers ----------------------------------------------------------------------------------------------
# The System's migration moves the open dossiers in the night before the first day, before any office opens.
TRANSFER_HOURS = (0, 6)
# Dossiers the System failed to move to the new units (VAL07, on purpose): a share of the dossiers submitted
# to district- and commune-level units in the first two weeks, at least a few whatever the scale.
UNTRANSFERRED_DAYS = 14
UNTRANSFERRED_SHARE = 0.01
UNTRANSFERRED_MIN = 3


def _closed_by_reorganisation(u: Unit) -> bool:
    return u.valid_to == LAST_DAY


def hand_over(units: list[Unit], unit: np.ndarray, day: np.ndarray, field_of: np.ndarray,
              rng: np.random.Generator, keep: np.ndarray | None = None) -> np.ndarray:
    """The handling unit of dossiers submitted on local day ``day`` whose unit had closed by then: its successor,
    followed until a unit in force. A unit closed by the 2025 reorganisation hands a department's dossiers to the
    city's department of the procedure's field (``field_of``), a district's to one of the communes that took
    over its area (weighted by how many of its communes each took), a commune's to its successors (the main one
    for half of them when it was divided). ``keep`` marks dossiers left where they are."""
    unit = unit.copy()
    idx = {u.code: i for i, u in enumerate(units)}
    last = np.array([(u.valid_to - date(2000, 1, 1)).days if u.valid_to else np.iinfo(np.int32).max for u in units])
    dept_of_field = {f: idx[u.code] for u in units for f in u.fields if u.valid_from >= REORGANISED_ON}
    choices: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, u in enumerate(units):
        if not u.successors:
            continue
        codes = list(u.successors)
        weights = [1.0] * len(codes)
        if _closed_by_reorganisation(u) and u.kind == "UBND_HUYEN":
            communes = [c for c in units if c.kind == "UBND_XA" and c.parent_at(LAST_DAY) == u.code]
            weights = [sum(c.successors.count(s) for c in communes) or 1.0 for s in codes]
        elif len(codes) > 1:
            weights = [1.0] + [1.0 / (len(codes) - 1)] * (len(codes) - 1)
        w = np.array(weights) / sum(weights)
        choices[i] = (np.array([idx[c] for c in codes]), np.cumsum(w))
    draw = rng.random(len(unit))
    fixed = np.zeros(len(unit), dtype=bool) if keep is None else keep.copy()
    for _ in range(4):  # chains are at most two successions long here
        closed = (day > last[unit]) & ~fixed
        if not closed.any():
            break
        for i in np.unique(unit[closed]).tolist():
            rows = np.nonzero(closed & (unit == i))[0]
            u = units[i]
            if i not in choices:
                fixed[rows] = True  # no successor: the dossiers stay (never the case in the scenario)
                continue
            targets, cum = choices[i]
            picked = targets[np.minimum(np.searchsorted(cum, draw[rows], "right"), len(targets) - 1)]
            if _closed_by_reorganisation(u) and u.kind == "SO_NGANH":
                picked = np.array([dept_of_field.get(f, t) for f, t in zip(field_of[rows].tolist(),
                                                                            picked.tolist(), strict=True)])
            unit[rows] = picked
    return unit


def untransferred(units: list[Unit], unit: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dossiers submitted in the first days to a district or commune that has closed, which the System keeps
    at the old unit (it failed to move them): a boolean mask."""
    first = (REORGANISED_ON - date(2000, 1, 1)).days
    lower = np.array([_closed_by_reorganisation(u) and u.level >= 2 for u in units])
    candidates = np.nonzero((day >= first) & (day < first + UNTRANSFERRED_DAYS) & lower[unit])[0]
    k = min(len(candidates), max(UNTRANSFERRED_MIN, round(UNTRANSFERRED_SHARE * len(candidates))))
    mask = np.zeros(len(unit), dtype=bool)
    mask[rng.choice(candidates, size=k, replace=False)] = True
    return mask


def closures(units: list[Unit], first_day: int, last_day: int) -> list[int]:
    """The local days within [first_day, last_day] on which units with successors closed (their day after)."""
    days = {(u.valid_to - date(2000, 1, 1)).days + 1 for u in units if u.valid_to and u.successors}
    return sorted(d for d in days if first_day <= d <= last_day)


def transfers(units: list[Unit], unit: np.ndarray, submit: np.ndarray, ended: Callable[[np.ndarray], np.ndarray],
              days: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The System's transfers of open dossiers (reorganisation.md): on each closing day, every dossier submitted
    before it, still open at its transfer time and handled by a unit that closed the day before, is given the
    unit's main successor as ``DonViXuLy``. Returns ``(moved_at, moved_to)``, ``(n, len(days))`` arrays of the
    times (NEVER: not moved) and the units (-1) of each day's transfer. ``ended(t)`` says, for transfer times
    ``t``, which dossiers are finished, withdrawn, stopped, refused or deleted by then."""
    n = len(unit)
    moved_at = np.full((n, len(days)), NEVER, dtype=np.int32)
    moved_to = np.full((n, len(days)), -1, dtype=np.int16)
    idx = {u.code: i for i, u in enumerate(units)}
    main = np.array([idx.get(u.merged_into, -1) if u.merged_into else -1 for u in units])
    closing = np.array([(u.valid_to - date(2000, 1, 1)).days + 1 if u.valid_to else -1 for u in units])
    current = unit.astype(np.int64)
    for k, d in enumerate(days):
        at = d * DAY + rng.integers(TRANSFER_HOURS[0] * 3600, TRANSFER_HOURS[1] * 3600, n)
        moving = (closing[current] == d) & (main[current] >= 0) & (submit < d * DAY) & ~ended(at)
        moved_at[moving, k] = at[moving]
        moved_to[moving, k] = main[current[moving]]
        current = np.where(moving, main[current], current)
    return moved_at, moved_to


# ----- the delegation plan -----------------------------------------------------------------------------------
HANDOVER_HOUR = 7  # the System's configuration names the new units from 07:00 on the first day


def reorganise_delegations(items: list[DelegationItem], units: list[Unit], procedures: list[Procedure],
                           seed: int) -> list[DelegationItem]:
    """The delegation plan as the System serves it through the reorganisation: an item still in force on
    2025-07-01 from the provincial Committee to a department (ủy quyền) names, from that day, the city's
    Committee and the city's department of the procedure's field; an item to a district (phân cấp) ends
    (``HET_HIEU_LUC``, ``HieuLucDen`` 2025-06-30) — the district is gone — and, for a procedure some district had
    a decision for, the city decentralises it on the same day to every new commune, configured at once (the
    System carried the configuration over), under the same plan. Expired items stay as they were."""
    by_code = {u.code: u for u in units}
    field = {p.code: p.field for p in procedures}
    new_dept = {f: u.code for u in units if u.valid_from >= REORGANISED_ON for f in u.fields}
    communes = [u.code for u in units if u.kind == "UBND_XA" and u.valid_from >= REORGANISED_ON]
    at = to_secs(REORGANISED_ON) + HANDOVER_HOUR * 3600
    rng = np.random.default_rng([seed, 325, 2025])
    counters: dict[str, int] = {}
    for item in items:
        counters[item.plan] = max(counters.get(item.plan, 0), int(item.item_id.rsplit("-", 1)[1]))
    out: list[DelegationItem] = []
    reissued: dict[str, DelegationItem] = {}
    for item in items:
        if item.expired <= at:
            out.append(item)
            continue
        successor = new_dept.get(field[item.procedure_code]) or by_code[item.to_unit].merged_into
        if by_code[item.to_unit].kind != "UBND_HUYEN":
            out.append(replace(item, handed_over=at,
                               new_units=(by_code[item.from_unit].merged_into, successor or item.to_unit)))
            continue
        out.append(replace(item, expired=at, valid_to_day=to_secs(LAST_DAY) // DAY))
        if item.decided <= at:
            reissued.setdefault(item.procedure_code, item)
    for code, item in reissued.items():
        number = f"{int(rng.integers(1, 300))}/QĐ-UBND"
        for commune in communes:
            counters[item.plan] += 1
            out.append(DelegationItem(
                item_id=f"UQ-{item.plan.split('/')[0]}-{counters[item.plan]:03d}", plan=item.plan, kind=item.kind,
                procedure_code=code, from_unit=new_dept.get(field[code], CITY_CODE), to_unit=commune, created=at,
                planned_day=at // DAY, decision_no=number, decided=at, configured=at, in_use=at,
                valid_to_day=None, expired=NEVER))
    return out
