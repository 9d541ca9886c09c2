"""Quảng Nam's agencies and administrative units before the 2025 reorganisation.

District- and commune-level units, with their names and national statistics codes, come from the
``vietnamadminunits`` package's legacy (63-province) dataset. That dataset reflects the end of 2024,
after Nông Sơn district (code 519) was merged into Quế Sơn on 2024-12-01 (Resolution
1251/NQ-UBTVQH15); 2023 had 18 district-level units. Nông Sơn is restored here with the communes the
dataset itself attributes to it: those whose current name or recorded former names are Nông Sơn's
communes. Provincial departments (Sở) and the public-service centre are not in that dataset and are
listed below.

Unit codes follow the QCVN 102 style ``000.XX.YY.H47`` (H47 = Quảng Nam): the province is
``000.00.00.H47``, departments ``000.00.NN.H47`` (NN < 40), district-level units ``000.00.DD.H47``
(DD = 41…), communes ``000.CC.DD.H47`` (CC = their rank inside the district). All codes have the
same length, so string order equals (prefix, district, commune) order.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import date
from importlib import resources

PROVINCE_CODE = "000.00.00.H47"
CENTRE_CODE = "000.00.31.H47"
NONG_SON_STAT_CODE = "519"
QUE_SON_STAT_CODE = "509"
NONG_SON_MERGED_ON = date(2024, 12, 1)  # first day in Quế Sơn
NONG_SON_LAST_DAY = date(2024, 11, 30)
NONG_SON_ESTABLISHED = date(2008, 12, 8)
# Nông Sơn's communes in 2023, by name; matched against the dataset's names and former-name aliases.
NONG_SON_COMMUNE_KEYS = {"quetrung", "queninh", "quephuoc", "phuocninh", "queloc", "sonvien", "quelam"}
UNITS_VALID_FROM = date(2008, 1, 1)

# (code suffix NN, name, fields it handles) — the departments with administrative procedures.
DEPARTMENTS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "Sở Nội vụ", ("NOI_VU",)),
    (2, "Sở Tư pháp", ("TU_PHAP", "CHUNG_THUC")),
    (3, "Sở Kế hoạch và Đầu tư", ("DOANH_NGHIEP",)),
    (4, "Sở Tài chính", ("TAI_CHINH",)),
    (5, "Sở Công Thương", ("CONG_THUONG",)),
    (6, "Sở Nông nghiệp và Phát triển nông thôn", ("NONG_NGHIEP",)),
    (7, "Sở Giao thông vận tải", ("GIAO_THONG",)),
    (8, "Sở Xây dựng", ("XAY_DUNG",)),
    (9, "Sở Tài nguyên và Môi trường", ("DAT_DAI", "MOI_TRUONG")),
    (10, "Sở Thông tin và Truyền thông", ("THONG_TIN",)),
    (11, "Sở Lao động - Thương binh và Xã hội", ("LAO_DONG", "BAO_TRO_XA_HOI")),
    (12, "Sở Văn hóa, Thể thao và Du lịch", ("VAN_HOA",)),
    (13, "Sở Khoa học và Công nghệ", ("KHOA_HOC",)),
    (14, "Sở Giáo dục và Đào tạo", ("GIAO_DUC",)),
    (15, "Sở Y tế", ("Y_TE",)),
    (16, "Ban Dân tộc tỉnh", ("DAN_TOC",)),
]


@dataclass(frozen=True)
class Unit:
    """One record of ``GET /units`` (before clock-dependent fields are applied)."""

    code: str
    name: str
    level: int
    kind: str
    parent: str | None
    stat_code: str | None
    valid_from: date
    valid_to: date | None = None
    fields: tuple[str, ...] = ()
    # communes that change parent on a date (Nông Sơn's communes) carry (date, new parent)
    reparent: tuple[date, str] | None = None
    # a closed unit's successors (DonViKeThua), the main one first
    successors: tuple[str, ...] = ()
    # False: the System's record of the closed unit omits DonViKeThua (it closes "without successors"),
    # although its area and dossiers did pass to ``successors`` (simulator.reorganisation)
    successors_served: bool = True

    @property
    def merged_into(self) -> str | None:
        """The main successor of a closed unit (None while in force or without one)."""
        return self.successors[0] if self.successors else None

    def parent_at(self, day: date) -> str | None:
        """Parent unit code in force on ``day``."""
        if self.reparent and day >= self.reparent[0]:
            return self.reparent[1]
        return self.parent

    def exists_at(self, day: date) -> bool:
        """Whether the unit has been established by ``day`` (closed units stay listed)."""
        return self.valid_from <= day

    def to_record(self, day: date) -> dict:
        """The API record as of ``day``: validity end only once it has passed."""
        valid_to = self.valid_to if self.valid_to and self.valid_to < day else None
        record = {
            "MaDonVi": self.code,
            "TenDonVi": self.name,
            "CapDonVi": self.level,
            "LoaiDonVi": self.kind,
            "MaDonViCha": self.parent_at(day),
            "MaHanhChinh": self.stat_code,
            "HieuLucTu": self.valid_from.strftime("%Y%m%d"),
            "HieuLucDen": valid_to.strftime("%Y%m%d") if valid_to else None,
        }
        if valid_to and self.successors and self.successors_served:
            record["DonViKeThua"] = list(self.successors)  # reorganisation.md: only once the unit has closed
        return record


def _key(text: str) -> str:
    """ASCII key of a Vietnamese name without its type word, as the dataset's aliases spell it."""
    for prefix in ("Thị trấn ", "Phường ", "Xã "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.replace("Đ", "D").replace("đ", "d")
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c.isalnum() and ord(c) < 128).lower()


def _legacy_rows() -> list[sqlite3.Row]:
    path = resources.files("vietnamadminunits") / "data" / "dataset.db"
    with sqlite3.connect(str(path)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(
            "SELECT district, districtCode, ward, wardCode, wardAlias FROM admin_units_legacy "
            "WHERE provinceCode = '49' ORDER BY districtCode, wardCode"
        ).fetchall()


def _is_nong_son_commune(row: sqlite3.Row) -> bool:
    keys = {_key(row["ward"])}
    if row["wardAlias"]:
        keys |= {a.removeprefix("xa").removeprefix("thitran") for a in json.loads(row["wardAlias"])}
    return bool(keys & NONG_SON_COMMUNE_KEYS)


def build_units(reorganisation: bool = False) -> list[Unit]:
    """Every unit that existed in Quảng Nam from 2023 on, in code order; with ``reorganisation``, also through
    the 2025 reorganisation: the old units closing on 2025-06-30 and the units of the merged city opening on
    2025-07-01 (``simulator.reorganisation``)."""
    units = [
        Unit(PROVINCE_CODE, "UBND tỉnh Quảng Nam", 1, "UBND_TINH", None, "49", UNITS_VALID_FROM),
    ]
    for nn, name, fields in DEPARTMENTS:
        units.append(Unit(f"000.00.{nn:02d}.H47", name, 1, "SO_NGANH", PROVINCE_CODE, None,
                          UNITS_VALID_FROM, fields=fields))
    units.append(Unit(CENTRE_CODE, "Trung tâm Phục vụ hành chính công tỉnh Quảng Nam", 1,
                      "TRUNG_TAM_PVHCC", PROVINCE_CODE, None, date(2019, 1, 1)))

    rows = _legacy_rows()
    districts: dict[str, str] = {}
    for r in rows:
        districts.setdefault(r["districtCode"], r["district"])
    districts[NONG_SON_STAT_CODE] = "Huyện Nông Sơn"
    district_codes = {stat: f"000.00.{41 + i:02d}.H47" for i, stat in enumerate(sorted(districts))}
    for stat in sorted(districts):
        is_nong_son = stat == NONG_SON_STAT_CODE
        units.append(Unit(
            district_codes[stat], "UBND " + districts[stat].replace("Thành phố", "thành phố")
            .replace("Thị xã", "thị xã").replace("Huyện", "huyện"), 2, "UBND_HUYEN", PROVINCE_CODE,
            stat, NONG_SON_ESTABLISHED if is_nong_son else UNITS_VALID_FROM,
            valid_to=NONG_SON_LAST_DAY if is_nong_son else None,
            successors=(district_codes[QUE_SON_STAT_CODE],) if is_nong_son else (),
        ))

    rank: dict[str, int] = {}
    for r in rows:
        stat = NONG_SON_STAT_CODE if (
            r["districtCode"] == QUE_SON_STAT_CODE and _is_nong_son_commune(r)) else r["districtCode"]
        rank[stat] = rank.get(stat, 0) + 1
        dcode = district_codes[stat]
        reparent = None
        if stat == NONG_SON_STAT_CODE:
            reparent = (NONG_SON_MERGED_ON, district_codes[QUE_SON_STAT_CODE])
        units.append(Unit(
            f"000.{rank[stat]:02d}.{dcode[7:9]}.H47", "UBND " + r["ward"].replace("Phường", "phường")
            .replace("Thị trấn", "thị trấn").replace("Xã", "xã"), 3, "UBND_XA", dcode, r["wardCode"],
            UNITS_VALID_FROM, reparent=reparent,
        ))
    units.sort(key=lambda u: u.code)
    if reorganisation:
        from simulator.reorganisation import reorganise

        return reorganise(units)
    return units
