"""Processing steps (quá trình xử lý, ``QuaTrinhXuLy``): the offices a dossier passes and their deadlines.

Every dossier follows a **route** through real offices of its handling unit, by the unit's type and the
procedure's field:

- a district (UBND huyện, thị xã, thành phố): the one-stop desk (Bộ phận Tiếp nhận và Trả kết quả), the
  specialised office of the field — for land (đất đai) the branch of the Land Registration Office (Chi nhánh
  Văn phòng Đăng ký đất đai) and then Phòng Tài nguyên và Môi trường; Phòng Tư pháp, Phòng Kinh tế và Hạ
  tầng (Phòng Quản lý đô thị, Phòng Kinh tế in a city or town), Phòng Lao động – Thương binh và Xã hội,
  Phòng Văn hóa và Thông tin, ... otherwise — and the leadership (Lãnh đạo UBND huyện);
- a commune: the desk, the commune official of the field (Công chức Tư pháp – Hộ tịch, Công chức Địa chính
  – Xây dựng for land, Công chức Văn hóa – Xã hội, ...) and the chairman (Chủ tịch UBND xã);
- a department (Sở): the desk at the provincial public-service centre, the department's own division (for
  land the Văn phòng Đăng ký đất đai and the Chi cục Quản lý đất đai) and its leadership (Lãnh đạo Sở).

Each step has a **legal deadline** (``NgayKetThucTheoQuyDinh``): its start (``NgayBatDau``, when the office
received the dossier) plus its allotment, a fixed share of the procedure's legal time, so that the
allotments of a route add up to the legal duration (``ThoiHanGiaiQuyet``). Working-day and hour durations
run on the simulator's office clock (08:00–17:00 on working days, so a working day is 9 office hours, as the
appointment dates are computed); calendar-day durations on the calendar.

The steps' times are placed inside the dossier's own timeline (from reception, or from the answer to a
supplement request, to the end of processing), which is generated before and does not change: a dossier
finished late has a step that overran its allotment — the office where its delay began — and the other
steps kept theirs. A few offices are **slow** (their steps systematically overrun, and they are where
their units' late dossiers are held up); they are chosen among the units with the most late dossiers. A
few offices **never record** their steps: either the step is missing from ``QuaTrinhXuLy`` (the next office
still records when it received the dossier), or it is recorded with ``PhongBanXuLy`` empty. So the System
holds late dossiers with no late step at all: their delay is not recorded anywhere (the seed's complaint).

Everything is deterministic in the scenario's seed and drawn from a random stream of its own, so the other
generated fields (channels, dates, defects, personal data) are the same as without steps. The slow and
silent offices are the scenario's ground truth (``office_defects``, exported by ``simulator.truth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from simulator.calendar import WorkCalendar
from simulator.catalogue import Procedure
from simulator.reorganisation import LAST_DAY as REORGANISATION_LAST_DAY
from simulator.timefmt import DAY, NEVER, to_secs
from simulator.units import Unit

MAX_STEPS = 4
CHUNK = 1 << 20  # dossiers planned at once
OPEN, CLOSE = 8 * 3600, 17 * 3600  # office hours, as the appointment dates are computed
WORK_DAY = CLOSE - OPEN

SLOW, SILENT_MISSING, SILENT_UNNAMED = "slow", "silent_missing", "silent_unnamed"
DEFECTS = (SLOW, SILENT_MISSING, SILENT_UNNAMED)

# Shares of the legal time per route position (desk, specialised office(s), leadership).
SHARES = {3: (0.10, 0.70, 0.20), 4: (0.05, 0.50, 0.30, 0.15)}
# How the steps of a dossier use their allotments: an ordinary office uses 15–90% of its own; a slow one
# 130–220% (unless the dossier is late, when the office it is held up at takes the overrun).
ORDINARY_USE, SLOW_USE = (0.15, 0.90), (1.30, 2.20)
HELD_AT_SLOW, HELD_AT_SILENT = 0.9, 0.8  # a late dossier passing such an office is held up there

DESK = "Bộ phận Tiếp nhận và Trả kết quả"
PROVINCIAL_DESK = "Bộ phận Tiếp nhận và Trả kết quả tại Trung tâm Phục vụ hành chính công tỉnh"
LAND_REGISTRY_BRANCH = "Chi nhánh Văn phòng Đăng ký đất đai"
DISTRICT_ENVIRONMENT = "Phòng Tài nguyên và Môi trường"
DISTRICT_LABOUR = "Phòng Lao động – Thương binh và Xã hội"
COMMUNE_JUSTICE = "Công chức Tư pháp – Hộ tịch"
COMMUNE_LAND = "Công chức Địa chính – Xây dựng"

# A district's specialised offices per field: (in a huyện, in a thành phố or thị xã).
_DISTRICT_OFFICES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "DAT_DAI": ((LAND_REGISTRY_BRANCH, DISTRICT_ENVIRONMENT),) * 2,
    "MOI_TRUONG": ((DISTRICT_ENVIRONMENT,),) * 2,
    "HO_TICH": (("Phòng Tư pháp",),) * 2,
    "CHUNG_THUC": (("Phòng Tư pháp",),) * 2,
    "TU_PHAP": (("Phòng Tư pháp",),) * 2,
    "HO_KINH_DOANH": (("Phòng Tài chính – Kế hoạch",),) * 2,
    "XAY_DUNG": (("Phòng Kinh tế và Hạ tầng",), ("Phòng Quản lý đô thị",)),
    "GIAO_THONG": (("Phòng Kinh tế và Hạ tầng",), ("Phòng Quản lý đô thị",)),
    "CONG_THUONG": (("Phòng Kinh tế và Hạ tầng",), ("Phòng Kinh tế",)),
    "NONG_NGHIEP": (("Phòng Nông nghiệp và Phát triển nông thôn",), ("Phòng Kinh tế",)),
    "LAO_DONG": ((DISTRICT_LABOUR,),) * 2,
    "BAO_TRO_XA_HOI": ((DISTRICT_LABOUR,),) * 2,
    "NGUOI_CO_CONG": ((DISTRICT_LABOUR,),) * 2,
    "VAN_HOA": (("Phòng Văn hóa và Thông tin",),) * 2,
    "THONG_TIN": (("Phòng Văn hóa và Thông tin",),) * 2,
    "GIAO_DUC": (("Phòng Giáo dục và Đào tạo",),) * 2,
    "Y_TE": (("Phòng Y tế",),) * 2,
    "NOI_VU": (("Phòng Nội vụ",),) * 2,
    "DAN_TOC": (("Phòng Dân tộc",),) * 2,
}
_DISTRICT_DEFAULT = ("Văn phòng HĐND và UBND",)

_COMMUNE_OFFICES: dict[str, str] = {
    **dict.fromkeys(("HO_TICH", "CHUNG_THUC", "TU_PHAP"), COMMUNE_JUSTICE),
    **dict.fromkeys(("DAT_DAI", "XAY_DUNG", "MOI_TRUONG", "GIAO_THONG", "NONG_NGHIEP"), COMMUNE_LAND),
    **dict.fromkeys(("BAO_TRO_XA_HOI", "NGUOI_CO_CONG", "LAO_DONG", "DAN_TOC", "VAN_HOA", "Y_TE", "GIAO_DUC"),
                    "Công chức Văn hóa – Xã hội"),
}
_COMMUNE_DEFAULT = "Công chức Văn phòng – Thống kê"

# A department's divisions per field (its own fields; anything else goes to its office).
_DEPARTMENT_OFFICES: dict[str, tuple[str, ...]] = {
    "NOI_VU": ("Ban Thi đua – Khen thưởng",),
    "TU_PHAP": ("Phòng Hành chính tư pháp",),
    "CHUNG_THUC": ("Phòng Bổ trợ tư pháp",),
    "DOANH_NGHIEP": ("Phòng Đăng ký kinh doanh",),
    "TAI_CHINH": ("Phòng Quản lý giá và Công sản",),
    "CONG_THUONG": ("Phòng Quản lý thương mại",),
    "NONG_NGHIEP": ("Chi cục Quản lý chất lượng Nông lâm sản và Thủy sản",),
    "GIAO_THONG": ("Phòng Quản lý vận tải, phương tiện và người lái",),
    "XAY_DUNG": ("Phòng Quản lý hoạt động xây dựng",),
    "DAT_DAI": ("Văn phòng Đăng ký đất đai", "Chi cục Quản lý đất đai"),
    "MOI_TRUONG": ("Chi cục Bảo vệ môi trường",),
    "THONG_TIN": ("Phòng Thông tin – Báo chí – Xuất bản",),
    "LAO_DONG": ("Phòng Lao động – Việc làm – Giáo dục nghề nghiệp",),
    "BAO_TRO_XA_HOI": ("Phòng Bảo trợ xã hội",),
    "VAN_HOA": ("Phòng Quản lý du lịch",),
    "KHOA_HOC": ("Phòng Quản lý khoa học",),
    "GIAO_DUC": ("Phòng Khảo thí và Quản lý chất lượng giáo dục",),
    "Y_TE": ("Phòng Nghiệp vụ Y",),
    "DAN_TOC": ("Phòng Chính sách dân tộc",),
}


@dataclass(frozen=True)
class Stage:
    """One office of a route: ``PhongBanXuLy``, ``ChucDanh`` and ``NoiDungXuLy`` of its step."""

    office: str
    title: str
    content: str


@dataclass(frozen=True)
class OfficeDefect:
    """An office of the scenario's ground truth: slow, or never recording its steps."""

    unit_code: str
    office: str
    defect: str  # SLOW, SILENT_MISSING (its steps are missing) or SILENT_UNNAMED (PhongBanXuLy empty)

    def to_record(self) -> dict:
        return {"MaDonVi": self.unit_code, "PhongBanXuLy": self.office, "defect": self.defect}


def _locality(unit: Unit) -> str:
    """``huyện``, ``thị xã``, ``thành phố`` (districts) or ``xã``, ``phường``, ``thị trấn`` (communes)."""
    name = unit.name.removeprefix("UBND ").casefold()
    for word in ("thành phố", "thị xã", "thị trấn", "phường", "huyện", "xã"):
        if name.startswith(word):
            return word
    return "huyện" if unit.kind == "UBND_HUYEN" else "xã"


def route_for(unit: Unit, procedure: Procedure) -> tuple[Stage, ...]:
    """The offices a dossier of ``procedure`` handled by ``unit`` passes, in order."""
    field = procedure.field
    if unit.kind == "UBND_HUYEN":
        where = _locality(unit)
        offices = _DISTRICT_OFFICES.get(field, (_DISTRICT_DEFAULT,) * 2)[where != "huyện"]
        if offices is _DISTRICT_DEFAULT:
            offices = (f"Văn phòng HĐND và UBND {where}",)
        lead = Stage(f"Lãnh đạo UBND {where}", f"Phó Chủ tịch UBND {where}", "Ký duyệt kết quả")
        desk = Stage(DESK, "Công chức tiếp nhận", "Tiếp nhận hồ sơ, chuyển xử lý")
        title = "Chuyên viên"
    elif unit.kind == "UBND_XA":
        where = _locality(unit)
        offices = (_COMMUNE_OFFICES.get(field, _COMMUNE_DEFAULT),)
        lead = Stage(f"Chủ tịch UBND {where}", f"Chủ tịch UBND {where}", "Ký duyệt kết quả")
        desk = Stage(DESK, "Công chức tiếp nhận", "Tiếp nhận hồ sơ, chuyển xử lý")
        title = "Công chức"
    else:
        desk = Stage(PROVINCIAL_DESK, "Công chức tiếp nhận", "Tiếp nhận hồ sơ, chuyển xử lý")
        title = "Chuyên viên"
        if unit.kind == "UBND_TINH":  # the provincial People's Committee (a city's, after 2025: thành phố)
            where = "thành phố" if unit.name.startswith("UBND thành phố") else "tỉnh"
            offices = (f"Văn phòng UBND {where}",)
            lead = Stage(f"Lãnh đạo UBND {where}", f"Phó Chủ tịch UBND {where}", "Ký duyệt kết quả")
        elif unit.kind == "TRUNG_TAM_PVHCC":
            offices = ("Phòng Kiểm soát thủ tục hành chính",)
            lead = Stage("Lãnh đạo Trung tâm", "Giám đốc Trung tâm", "Ký duyệt kết quả")
        else:
            offices = _DEPARTMENT_OFFICES.get(field, ("Văn phòng Sở",)) if field in unit.fields else ("Văn phòng Sở",)
            board = unit.name.startswith("Ban ")
            lead = Stage("Lãnh đạo Ban" if board else "Lãnh đạo Sở",
                         "Phó Trưởng ban" if board else "Phó Giám đốc Sở", "Ký duyệt kết quả")
    if len(offices) == 1:
        middle = (Stage(offices[0], title, "Thẩm định hồ sơ, trình ký"),)
    else:
        middle = (Stage(offices[0], title, "Thẩm định hồ sơ"), Stage(offices[1], "Trưởng phòng", "Kiểm tra, trình ký"))
    return (desk, *middle, lead)


def allotments(procedure: Procedure, n_stages: int) -> tuple[int, ...]:
    """Each stage's legal time in seconds of its clock (office clock, or calendar for ``NGAY``): shares of
    the procedure's legal time in whole minutes, adding up to it exactly."""
    dur = procedure.duration
    if procedure.duration_unit == "GIO":
        total = round(dur * 3600)
    elif procedure.duration_unit == "NGAY":
        total = int(np.ceil(dur)) * DAY
    else:
        total = int(np.ceil(dur)) * WORK_DAY
    shares = SHARES[n_stages]
    parts = [max(60, round(s * total / 60) * 60) for s in shares[:-1]]
    return (*parts, total - sum(parts))


class WorkClock:
    """The office clock: seconds of office hours (08:00–17:00 on working days) since the calendar's first day.

    ``to_work`` maps a time to the office seconds before it (a time outside office hours to the next
    opening); ``from_work`` maps back, an end of a working day to 17:00 (not to the next morning), so that
    ``to_work(from_work(w)) == w``. Both exist for numpy arrays and, for rendering, for single integers.
    """

    def __init__(self, cal: WorkCalendar, first_day: int, last_day: int):
        days = np.arange(first_day, last_day + 1)
        work = cal.is_workday(days)
        self.first_day = first_day
        self.is_work = work
        self.before = np.concatenate([[0], np.cumsum(work)[:-1]]).astype(np.int64)  # working days before each day
        self.workdays = days[work].astype(np.int64)
        self._is_work = work.tolist()
        self._before = self.before.tolist()
        self._workdays = self.workdays.tolist()

    def to_work(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.int64)
        i = t // DAY - self.first_day
        tod = np.clip(t % DAY - OPEN, 0, WORK_DAY)
        return self.before[i] * WORK_DAY + np.where(self.is_work[i], tod, 0)

    def from_work(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, dtype=np.int64)
        q, r = np.divmod(w, WORK_DAY)
        end_of_day = r == 0
        day = self.workdays[np.where(end_of_day, q - 1, q)]
        return day * DAY + np.where(end_of_day, CLOSE, OPEN + r)

    def to_work1(self, t: int) -> int:
        i = t // DAY - self.first_day
        if not self._is_work[i]:
            return self._before[i] * WORK_DAY
        return self._before[i] * WORK_DAY + min(max(t % DAY - OPEN, 0), WORK_DAY)

    def from_work1(self, w: int) -> int:
        q, r = divmod(w, WORK_DAY)
        if r == 0:
            return self._workdays[q - 1] * DAY + CLOSE
        return self._workdays[q] * DAY + OPEN + r


class StepModel:
    """The province's routes, allotments and office defects, for generating and rendering steps."""

    def __init__(self, units: list[Unit], procedures: list[Procedure], cal: WorkCalendar, start: date, end: date):
        self.units, self.procedures = units, procedures
        # The province's calendar spans the year before the scenario to three years after (simulator.province).
        self.clock = WorkClock(cal, to_secs(date(start.year - 1, 1, 1)) // DAY,
                               to_secs(date(end.year + 3, 12, 31)) // DAY)
        nu, np_ = len(units), len(procedures)
        self.routes = [[route_for(u, p) for p in procedures] for u in units]
        self.length = np.array([[len(r) for r in row] for row in self.routes], dtype=np.int8)
        allot = {n: [allotments(p, n) for p in procedures] for n in SHARES}
        self.allot_rows = [[allot[len(r)][j] for j, r in enumerate(row)] for row in self.routes]
        self.allot = np.zeros((nu, np_, MAX_STEPS), dtype=np.int64)
        for i, row in enumerate(self.allot_rows):
            for j, a in enumerate(row):
                self.allot[i, j, :len(a)] = a
        self.calendar = np.array([p.duration_unit == "NGAY" for p in procedures])
        self._calendar = self.calendar.tolist()
        self.defects: list[OfficeDefect] = []
        self.non_recording: list[str] = []  # units most of whose dossiers carry no steps at all
        self.defect_rows = [[(None,) * len(r) for r in row] for row in self.routes]
        self.slow = np.zeros((nu, np_, MAX_STEPS), dtype=bool)  # per unit, procedure and stage
        self.silent = np.zeros((nu, np_, MAX_STEPS), dtype=bool)

    # ----- ground truth --------------------------------------------------------------------------------
    def choose_defects(self, rng: np.random.Generator, punctuality: np.ndarray, recording: np.ndarray,
                       size: np.ndarray) -> list[OfficeDefect]:
        """Pick the slow and the silent offices. Slow ones where late dossiers are: the land offices of the three
        districts with the most late dossiers (the least punctual), and the division of a busy department
        with long procedures (an office can only overrun when a dossier spends longer than its allotment).
        Silent ones in other units, where the land dossiers are late too: two districts' land offices whose
        steps are missing, one whose steps carry no office name, a large commune's civil-status official."""
        self.non_recording = [u.code for u, r in zip(self.units, recording, strict=True) if not r]
        kinds = np.array([u.kind for u in self.units])
        # Units not closed by an earlier merger (Nông Sơn): in the reorganisation scenario, the old units until
        # they close on 2025-06-30 and the new ones from the next day.
        in_force = np.array([u.valid_to is None or u.valid_to >= REORGANISATION_LAST_DAY for u in self.units])
        ok = recording & in_force
        districts = np.nonzero((kinds == "UBND_HUYEN") & ok)[0]
        communes = np.nonzero((kinds == "UBND_XA") & ok)[0]
        by_lateness = districts[np.argsort(-punctuality[districts], kind="stable")]
        picked: list[tuple[int, str, str]] = []
        for i in by_lateness[:3]:
            office = LAND_REGISTRY_BRANCH if rng.random() < 2 / 3 else DISTRICT_ENVIRONMENT
            picked.append((int(i), office, SLOW))

        def provincial(i: int) -> list[Procedure]:
            return [p for p in self.procedures if p.levels == (1,) and p.field in self.units[i].fields]

        long_busy = [i for i, u in enumerate(self.units) if u.kind == "SO_NGANH" and ok[i]
                     and sum(p.weight for p in provincial(i)) >= 5
                     and sum(p.weight * p.duration for p in provincial(i)) / sum(p.weight for p in provincial(i)) >= 10]
        dept = int(long_busy[rng.integers(0, len(long_busy))])
        main_field = max(self.units[dept].fields, key=lambda f: sum(p.weight for p in provincial(dept) if p.field == f))
        picked.append((dept, _DEPARTMENT_OFFICES[main_field][0], SLOW))
        rest = [int(i) for i in districts if int(i) not in {u for u, _, _ in picked}]
        silent = rng.choice(rest, size=3, replace=False)
        picked += [(int(silent[0]), DISTRICT_ENVIRONMENT, SILENT_MISSING),
                   (int(silent[1]), LAND_REGISTRY_BRANCH, SILENT_MISSING),
                   (int(silent[2]), LAND_REGISTRY_BRANCH, SILENT_UNNAMED)]
        big = communes[np.argsort(-size[communes], kind="stable")][:30]
        picked.append((int(big[rng.integers(0, len(big))]), COMMUNE_JUSTICE, SILENT_MISSING))

        defect_of = {(u, office): defect for u, office, defect in picked}
        self.defect_rows = [[tuple(defect_of.get((i, s.office)) for s in r) for r in row]
                            for i, row in enumerate(self.routes)]
        for i, row in enumerate(self.defect_rows):
            for j, r in enumerate(row):
                for k, d in enumerate(r):
                    self.slow[i, j, k] = d == SLOW
                    self.silent[i, j, k] = d in (SILENT_MISSING, SILENT_UNNAMED)
        self.defects = [OfficeDefect(self.units[u].code, office, defect) for u, office, defect in picked]
        return self.defects

    # ----- generation ----------------------------------------------------------------------------------
    def plan(self, rng: np.random.Generator, unit: np.ndarray, proc: np.ndarray, steps: np.ndarray,
             late: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The time of each step (``(n, MAX_STEPS)`` int32, NEVER where there is none) of dossiers whose
        ``steps`` first stages run from ``start`` to ``end``, ``late`` ones held up at one office; and that
        office's stage (int8, -1 for dossiers that are not late).

        In the clock of the procedure, every step but one uses a share of its allotment; the one the dossier
        is held up at (a slow or silent office on the route when there is one, else an office drawn by its
        allotment; never the desk unless it is the only step) takes what remains to ``end``. A late dossier
        used more than the legal time (its appointment is the legal time rounded up to 17:00), so that
        office overran its allotment; otherwise, the steps' uses are scaled down to fit, or stretched up to
        their allotments (slack beyond them goes to that office).
        """
        # In chunks: the temporaries are several (n, MAX_STEPS) float arrays (10M dossiers would need gigabytes).
        parts = [self._plan(rng, unit[c:c + CHUNK], proc[c:c + CHUNK], steps[c:c + CHUNK], late[c:c + CHUNK],
                            start[c:c + CHUNK], end[c:c + CHUNK]) for c in range(0, len(unit), CHUNK)]
        if not parts:
            return np.zeros((0, MAX_STEPS), dtype=np.int32), np.zeros(0, dtype=np.int8)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _plan(self, rng: np.random.Generator, unit: np.ndarray, proc: np.ndarray, steps: np.ndarray,
              late: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(unit)
        k = np.arange(MAX_STEPS)
        m = steps.astype(np.int64)
        run = k < m[:, None]
        a = self.allot[unit, proc].astype(np.float64)
        slow = self.slow[unit, proc] & run
        silent = self.silent[unit, proc] & run
        calendar = self.calendar[proc]
        s64, e64 = start.astype(np.int64), end.astype(np.int64)
        valid = m > 0
        w0 = np.where(calendar, s64, 0)
        w1 = np.where(calendar, e64, 0)
        w0[valid & ~calendar] = self.clock.to_work(s64[valid & ~calendar])
        w1[valid & ~calendar] = self.clock.to_work(e64[valid & ~calendar])
        total = np.maximum(w1 - w0, 0)

        use = rng.uniform(*ORDINARY_USE, (n, MAX_STEPS))
        slow_use = rng.uniform(*SLOW_USE, (n, MAX_STEPS))
        u_pick, u_held = rng.random(n), rng.random(n)

        # The office a dossier is held up at.
        candidate = run & ((k >= 1) | (m[:, None] == 1))
        weight = np.where(candidate, a, 0.0)
        cum = np.cumsum(weight, axis=1)
        held = np.argmax(cum > (u_pick * cum[:, -1])[:, None], axis=1)
        held = np.where(slow.any(1) & (u_held < HELD_AT_SLOW), np.argmax(slow, 1), held)
        held = np.where(~slow.any(1) & silent.any(1) & (u_held < HELD_AT_SILENT), np.argmax(silent, 1), held)
        is_held = k == held[:, None]

        slow_now = slow & ~late[:, None]
        base = np.where(run, a * np.where(slow_now, slow_use, use), 0.0)
        desired = base.sum(1)
        headroom = np.where(run & ~slow_now, np.maximum(a * (1 - use) - 1, 0), 0.0)
        room = headroom.sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(desired > 0, total / desired, 0.0)
            stretch = np.where(room > 0, np.clip((total - desired) / room, 0, 1), 0.0)
        fitted = np.where((total <= desired)[:, None], base * scale[:, None], base + headroom * stretch[:, None])
        d = np.where(late[:, None], base, fitted)
        d = np.floor(np.where(is_held | ~run, 0.0, d)).astype(np.int64)
        d[np.arange(n), held] = np.where(valid, total - d.sum(1), 0)

        bounds = w0[:, None] + np.cumsum(d, axis=1)
        wall = bounds.copy()
        office = run & ~calendar[:, None]
        wall[office] = self.clock.from_work(bounds[office])
        wall = np.maximum(wall, s64[:, None])
        last = k == (m - 1)[:, None]
        wall = np.where(last, e64[:, None], wall)
        step_at = np.where(run, np.minimum(wall, NEVER), NEVER).astype(np.int32)
        return step_at, np.where(late & valid, held, -1).astype(np.int8)

    def office_of(self, unit: int, proc: int, stage: int) -> str:
        """``PhongBanXuLy`` of a route's stage (as the office itself names it)."""
        return self.routes[unit][proc][stage].office

    # ----- rendering -----------------------------------------------------------------------------------
    def items(self, unit: int, proc: int, start: int, times: list[int], clock: int) -> list[tuple]:
        """The recorded steps among ``times`` (the dossier's step times) up to ``clock``:
        ``(stage, defect, started_at, processed_at, legal_end_at)`` — a silent office's missing step left out."""
        stages = self.routes[unit][proc]
        allot = self.allot_rows[unit][proc]
        defects = self.defect_rows[unit][proc]
        calendar = self._calendar[proc]
        out = []
        for k, t in enumerate(times):
            if t > clock:
                break
            if defects[k] != SILENT_MISSING:
                due = start + allot[k] if calendar else self.clock.from_work1(self.clock.to_work1(start) + allot[k])
                out.append((stages[k], defects[k], start, t, due))
            start = t
        return out
