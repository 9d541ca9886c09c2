"""The delegation and decentralisation plan (phân cấp, ủy quyền) and how it moves dossiers.

Plan 325/KH-UBND (16/01/2023) schedules items of two kinds:
- ``UY_QUYEN``: the Chairman of the provincial People's Committee delegates a procedure to a
  department (dossiers move from UBND tỉnh to the department);
- ``PHAN_CAP``: a department decentralises a procedure to every district People's Committee
  (dossiers move from the department to the applicant's district).
An older plan (2351/KH-UBND, 2022) has items already in use, some of which expire in 2023.

Each item has a timeline (decision issued → configured in the System → in use, or expired); its
status at the clock is the latest step reached. Once an item is configured, a share of the new
dossiers of its procedure is handled by the receiving unit, which is what the usage metric measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from simulator.timefmt import DAY, NEVER, date_str, to_datetime, to_secs, ts_str

PLAN_2023 = ("325/KH-UBND", date(2023, 1, 16))
PLAN_2022 = ("2351/KH-UBND", date(2022, 4, 12))

# Plan groups: (procedure, kind, delegating department NN or None for UBND tỉnh, receiving department NN or
# None for "every district", plan, NgayKeHoach, decision date or None while only planned, decision number
# or None to number it by date, validity end or None). Chosen so the plan shows every status: issued
# and in use, configured, issued but not configured, planned and behind, planned ahead, expired.
DELEGATED: list[tuple] = [
    ("Giao đất, cho thuê đất cho tổ chức", "UY_QUYEN", None, 9, PLAN_2023, date(2023, 3, 31), date(2023, 3, 20),
     None, None),
    ("Thanh lý tài sản công", "UY_QUYEN", None, 4, PLAN_2023, date(2023, 6, 30), None, None, None),
    ("Công nhận hạng cơ sở lưu trú du lịch", "UY_QUYEN", None, 12, PLAN_2022, date(2022, 6, 30), date(2022, 6, 15),
     None, date(2023, 6, 30)),
    ("Cấp giấy phép xây dựng đối với công trình cấp đặc biệt, cấp I, cấp II", "UY_QUYEN", None, 8, PLAN_2023,
     date(2023, 12, 29), None, None, None),
    ("Tặng Bằng khen của Chủ tịch UBND tỉnh", "UY_QUYEN", None, 1, PLAN_2022, date(2022, 9, 30), date(2022, 9, 12),
     None, None),
    ("Cấp giấy phép môi trường", "PHAN_CAP", 9, None, PLAN_2023, date(2023, 6, 30), date(2023, 7, 26),
     "1726/QĐ-UBND", None),
    ("Cấp giấy phép thi công công trình trên đường bộ đang khai thác", "PHAN_CAP", 7, None, PLAN_2023,
     date(2023, 9, 29), date(2023, 9, 20), None, None),
    ("Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm nông lâm thủy sản", "PHAN_CAP", 6, None, PLAN_2022,
     date(2022, 12, 30), date(2022, 12, 5), None, None),
]
USAGE_SHARE = {"UY_QUYEN": 0.9, "PHAN_CAP": 0.8}


@dataclass
class DelegationItem:
    """One plan item and its timeline (times in simulator seconds; NEVER when it does not happen)."""

    item_id: str
    plan: str
    kind: str
    procedure_code: str
    from_unit: str
    to_unit: str
    created: int
    planned_day: int  # NgayKeHoach, a local day number
    decision_no: str | None
    decided: int
    configured: int
    in_use: int
    valid_to_day: int | None  # HieuLucDen (a day), when the item expires
    expired: int
    # From this time the item names the successors of its units (the 2025 reorganisation; NEVER: never).
    handed_over: int = NEVER
    new_units: tuple[str, str] | None = None  # (DonViUyQuyen, DonViNhanUyQuyen) from then on

    def status_at(self, t: int) -> str | None:
        """Status at time ``t``; None if the item did not exist yet."""
        if self.created > t:
            return None
        for when, status in ((self.expired, "HET_HIEU_LUC"), (self.in_use, "DANG_THUC_HIEN"),
                             (self.configured, "DA_CAU_HINH"), (self.decided, "DA_BAN_HANH")):
            if when <= t:
                return status
        return "KE_HOACH"

    def updated_at(self, t: int) -> int:
        return max(x for x in (self.created, self.decided, self.configured, self.in_use, self.expired,
                               self.handed_over) if x <= t)

    def to_record(self, t: int) -> dict | None:
        status = self.status_at(t)
        if status is None:
            return None
        decided = self.decided <= t
        from_unit, to_unit = self.new_units if self.handed_over <= t else (self.from_unit, self.to_unit)
        return {
            "MaUyQuyen": self.item_id,
            "SoQuyetDinh": self.decision_no if decided else None,
            "NgayQuyetDinh": date_str(self.decided) if decided else None,
            "HieuLucDen": date_str(self.valid_to_day * DAY) if decided and self.valid_to_day else None,
            "LoaiUyQuyen": self.kind,
            "KeHoach": self.plan,
            "MaTTHC": self.procedure_code,
            "DonViUyQuyen": from_unit,
            "DonViNhanUyQuyen": to_unit,
            "NgayKeHoach": date_str(self.planned_day * DAY),
            "TrangThai": status,
            "NgayCapNhat": ts_str(self.updated_at(t)),
        }


def _decision_no(t: int, rng: np.random.Generator) -> str:
    """A decision number like ``1726/QĐ-UBND``: the province issues about 3,000 decisions a year."""
    day_of_year = to_datetime(t).timetuple().tm_yday
    return f"{day_of_year * 8 + int(rng.integers(0, 8))}/QĐ-UBND"


def build_delegations(seed: int, procedures_by_name: dict[str, str], district_codes: list[str],
                      province_code: str) -> list[DelegationItem]:
    """Every plan item of both plans with its timeline; deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 325])
    items: list[DelegationItem] = []
    counters: dict[str, int] = {}
    for name, kind, frm, to, (plan, plan_day), planned, decided_on, number, valid_to in DELEGATED:
        decided = NEVER if decided_on is None else to_secs(decided_on) + 15 * 3600
        if decided != NEVER and number is None:
            number = _decision_no(decided, rng)
        from_code = province_code if frm is None else f"000.00.{frm:02d}.H47"
        receivers = district_codes if to is None else [f"000.00.{to:02d}.H47"]
        for recv in receivers:
            counters[plan] = counters.get(plan, 0) + 1
            configured = in_use = expired = NEVER
            # Districts take a few weeks each to configure the procedure in the System; some lag far behind.
            if decided != NEVER and (to is not None or rng.random() < 0.8):
                configured = decided + int(rng.integers(3, 60)) * DAY + int(rng.integers(0, 8 * 3600))
                if to is not None or rng.random() < 0.75:
                    in_use = configured + int(rng.integers(1, 25)) * DAY
            if valid_to is not None:
                expired = to_secs(valid_to) + DAY + 8 * 3600
            items.append(DelegationItem(
                item_id=f"UQ-{plan.split('/')[0]}-{counters[plan]:03d}", plan=plan, kind=kind,
                procedure_code=procedures_by_name[name], from_unit=from_code, to_unit=recv,
                created=to_secs(plan_day) + 9 * 3600, planned_day=to_secs(planned) // DAY, decision_no=number,
                decided=decided, configured=configured, in_use=in_use,
                valid_to_day=None if valid_to is None else to_secs(valid_to) // DAY, expired=expired,
            ))
    return items
