"""Render dossiers as API records (``GET /dossiers``) at a clock.

A record shows the dossier as it stands at the clock: the events of its timeline that have happened,
the injected defects that have not been corrected yet, and personal data that is fake but well
formed. Rendering works on a page of rows at once: the columns are sliced with numpy, then turned
into plain Python values, which keeps serving well above 20k dossiers a second on one core.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.catalogue import Procedure
from simulator.dossiers import DEFECT_BITS, FINISHED, NOT_ACCEPTED, STOPPED, WITHDRAWN, DossierTable
from simulator.steps import SILENT_UNNAMED, StepModel
from simulator.timefmt import DAY, NEVER, ts_str
from simulator.units import Unit

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Phan", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý",
          "Đoàn", "Trương"]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Hữu", "Đức", "Thanh", "Quốc", "Xuân", "Thu"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Lan", "Linh", "Long", "Mai", "Nam",
         "Nga", "Phúc", "Phương", "Quang", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Vy", "Yến", "Khánh", "Lộc", "Tú"]
COMPONENTS = ["Tờ khai", "Đơn đề nghị", "Bản sao giấy tờ tùy thân", "Giấy tờ chứng minh quyền sử dụng đất",
              "Bản vẽ thiết kế", "Giấy ủy quyền"]
BAD_TIMESTAMPS = ["{y}0230{hms}", "{y}-05-01 08:30:00", "{y}0501083", "{y}050108300a", "{y}1332083000"]
UNKNOWN_UNIT = "000.00.99.H47"
UNKNOWN_PROCEDURE = "9.999999"


@dataclass
class RenderContext:
    """What rendering needs besides the columns: unit codes, the catalogue, the share of ``""``, the steps'
    offices and deadlines."""

    units: list[Unit]
    procedures: list[Procedure]
    empty_string_share: float
    offices: StepModel

    def __post_init__(self) -> None:
        self.unit_codes = [u.code for u in self.units]
        self.unit_names = [u.name for u in self.units]
        self.proc_rows = [(p.code, p.name, p.field_code, p.to_record()["TenLinhVuc"], p.fee)
                          for p in self.procedures]
        self.empty_cut = int(self.empty_string_share * 1000)


def _name(r: int) -> str:
    return f"{FAMILY[r % 16]} {MIDDLE[(r >> 4) % 10]} {GIVEN[(r >> 8) % 28]}"


@lru_cache(maxsize=8192)
def _ascii_parts(name: str) -> list[str]:
    text = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in text if ord(ch) < 128).lower().split()


def _email(name: str, r: int) -> str:
    parts = _ascii_parts(name)
    return f"{parts[-1]}.{parts[0]}{r % 997}@gmail.com"


def render_rows(table: DossierTable, rows: np.ndarray, clock: int, ctx: RenderContext) -> list[dict]:
    """API records of dossiers ``rows`` (row numbers, all submitted by ``clock``) at ``clock``."""
    cols = {name: getattr(table, name)[rows].tolist() for name in (
        "unit", "proc", "channel", "obj_type", "seq", "outcome", "submit", "receive", "due", "supp_req",
        "supp_done", "due_new", "oblig", "paid", "end", "returned", "steps", "step_at", "intake_flags",
        "result_link_at", "defects", "fixed", "deleted", "rand", "moved_at", "moved_to")}
    out = []
    for j, row in enumerate(rows.tolist()):
        out.append(_render_one(row, {k: v[j] for k, v in cols.items()}, clock, ctx))
    return out


def dossier_code(unit_code: str, submit: int, seq: int) -> str:
    """``MaHoSo``: ``{MaDonVi}-{yyMMdd}-{NNNNN}`` of the unit that received it, its submission day and rank."""
    return f"{unit_code}-{ts_str(submit)[2:8]}-{seq:05d}"


def _missing(r: int, ctx: RenderContext) -> str | None:
    return "" if (r >> 20) % 1000 < ctx.empty_cut else None


def _render_one(row: int, c: dict, clock: int, ctx: RenderContext) -> dict:
    r = c["rand"]
    code = dossier_code(ctx.unit_codes[c["unit"]], c["submit"], c["seq"])
    handler = c["unit"]
    for at, to in zip(c["moved_at"], c["moved_to"], strict=True):  # transferred to a successor (reorganisation)
        if at <= clock:
            handler = to
    unit_code = ctx.unit_codes[handler]
    updated = _updated(c, clock)
    if c["deleted"] <= clock:
        return {"MaHoSo": code, "NgayCapNhat": ts_str(c["deleted"]), "DaXoa": True, "DonViXuLy": unit_code,
                "MaTTHC": None, "TrangThaiHoSo": None}

    defects = c["defects"] if c["fixed"] > clock else 0
    miss = _missing(r, ctx)
    outcome = c["outcome"]
    received = c["receive"] <= clock and outcome != NOT_ACCEPTED
    refused = c["receive"] <= clock and outcome == NOT_ACCEPTED
    ended = c["end"] <= clock and received
    finished = ended and outcome == FINISHED
    returned = c["returned"] <= clock
    step_times = [t for t in c["step_at"][:c["steps"]] if t <= clock] if received else []

    # Status: the latest state-changing event at the clock.
    if refused:
        status = 3
    elif not received:
        status = 1
    elif returned:
        status = 10
    elif ended and outcome in (FINISHED, WITHDRAWN, STOPPED):
        status = {FINISHED: 9, WITHDRAWN: 7, STOPPED: 8}[outcome]
    elif c["supp_req"] <= clock < c["supp_done"]:
        status = 5
    elif c["oblig"] <= clock < c["paid"]:
        status = 6
    else:
        status = 4 if step_times else 2

    proc_code, proc_name, field_code, field_name, fee = ctx.proc_rows[c["proc"]]
    channel = c["channel"] or None
    due = c["due_new"] if c["supp_done"] <= clock else c["due"]
    t = {
        "NgayNopHoSo": ts_str(c["submit"]),
        "NgayTiepNhan": ts_str(c["receive"]) if received else None,
        "NgayHenTra": ts_str(due) if received else None,
        "NgayKetThucXuLy": ts_str(c["end"]) if finished else None,
        "NgayTra": ts_str(c["returned"]) if returned else None,
        "NgayTuChoi": ts_str(c["receive"]) if refused else None,
    }
    if defects:
        t, proc_code, unit_out, status, channel, obj = _apply_defects(defects, t, c, status, channel, r,
                                                                      proc_code, unit_code)
    else:
        unit_out, obj = unit_code, c["obj_type"]
    for k, v in t.items():
        if v is None:
            t[k] = miss

    name = _name(r)
    enterprise = obj == 2
    rec = {
        "MaHoSo": code,
        "NgayCapNhat": ts_str(updated),
        "DaXoa": False,
        "MaTTHC": proc_code,
        "TenTTHC": proc_name,
        "MaLinhVuc": field_code,
        "TenLinhVuc": field_name,
        "DonViXuLy": unit_out,
        "KenhThucHien": channel,
        "LoaiDoiTuong": obj,
        "ChuHoSo": f"Công ty TNHH {GIVEN[r % 28]} {FAMILY[(r >> 5) % 16]}" if enterprise else name,
        "SoDienThoai": f"0{(3, 5, 7, 8, 9)[r % 5]}{(r >> 3) % 100_000_000:08d}",
        "Email": _email(name, r) if (r >> 12) % 3 else miss,
        "DinhDanhCHS": [{"LoaiDinhDanh": 3, "SoDinhDanh": f"4000{(r >> 2) % 1_000_000:06d}"}] if enterprise else
        [{"LoaiDinhDanh": 1, "SoDinhDanh": f"049{(r >> 30) % 2}{(r >> 4) % 100:02d}{(r >> 9) % 1_000_000:06d}"}],
        "TrichYeuHoSo": f"{proc_name} cho {name}",
        **t,
        "TrangThaiHoSo": status,
        "HoSoCoThanhPhanSoHoa": c["intake_flags"] & 1,
        "DuocThanhToanTrucTuyen": (1 + (r >> 7) % 2) if fee and channel == 2 else 0,
        "TaiLieuNop": _components(row, c, r),
        "DanhSachGiayToKetQua": _results(row, c, clock, r, proc_name) if finished else [],
        "DanhSachHoSoBoSung": _supplements(row, c, clock),
        "QuaTrinhXuLy": [] if defects & DEFECT_BITS["INC04"] else _steps(step_times, c, r, miss, ctx),
    }
    return rec


def _updated(c: dict, clock: int) -> int:
    if c["deleted"] <= clock:
        return c["deleted"]
    best = 0
    for k in ("submit", "receive", "supp_req", "supp_done", "oblig", "paid", "end", "returned", "result_link_at",
              "fixed"):
        v = c[k]
        if best < v <= clock:
            best = v
    for v in c["step_at"][:c["steps"]]:
        if best < v <= clock:
            best = v
    for v in c["moved_at"]:
        if best < v <= clock:
            best = v
    return best


def _apply_defects(defects: int, t: dict, c: dict, status: int, channel, r: int, proc_code: str, unit_code: str):
    """Apply the dossier's uncorrected defects to its fields (see dq-rules.md for what each breaks)."""
    bits = DEFECT_BITS
    obj = c["obj_type"]
    unit_out = unit_code
    if defects & bits["INC01"]:
        t["NgayTiepNhan"] = None
    if defects & bits["INC02"]:
        t["NgayKetThucXuLy"] = None
    if defects & bits["INC03"]:
        t["NgayHenTra"] = None
    if defects & bits["INC06"]:
        t["NgayTra"] = None
    if defects & bits["VAL02"] and t["NgayKetThucXuLy"] and t["NgayTiepNhan"]:
        t["NgayKetThucXuLy"] = ts_str(c["receive"] - (1 + r % 5) * DAY)
    if defects & bits["VAL05"] and t["NgayHenTra"] and t["NgayTiepNhan"]:
        t["NgayHenTra"] = ts_str(c["receive"] - (1 + r % 3) * DAY)
    if defects & bits["VAL01"]:  # a year typed wrong: ten years ahead
        for k in ("NgayTra", "NgayKetThucXuLy", "NgayTiepNhan"):
            if t[k]:
                t[k] = str(int(t[k][:4]) + 10) + t[k][4:]
                break
    if defects & bits["VAL03"]:
        if r % 2:
            proc_code = UNKNOWN_PROCEDURE
        else:
            unit_out = UNKNOWN_UNIT
    if defects & bits["VAL04"]:
        which = (r >> 3) % 3
        if which == 0:
            status = 11
        elif which == 1:
            channel = 4
        else:
            obj = 5
    if defects & bits["VAL06"]:
        present = [k for k in ("NgayHenTra", "NgayTiepNhan", "NgayNopHoSo") if t[k]]
        if present:
            k = present[r % len(present)]
            t[k] = BAD_TIMESTAMPS[(r >> 5) % len(BAD_TIMESTAMPS)].format(y=t[k][:4], hms=t[k][8:])
    return t, proc_code, unit_out, status, channel, obj


def _components(row: int, c: dict, r: int) -> list[dict]:
    flags = c["intake_flags"]
    n = (r >> 13) % 4 + (1 if flags & 2 else 0)
    if n == 0:
        return []
    items = []
    for k in range(n):
        name = COMPONENTS[(r >> (14 + k)) % len(COMPONENTS)]
        items.append({
            "TepDinhKemId": f"{row}{k:02d}",
            "TenTepDinhKem": f"{name}.pdf",
            "MaThanhPhanHoSo": f"TP{(r >> (14 + k)) % len(COMPONENTS) + 1:02d}",
            "DuongDanTaiTepTin": f"https://dichvucong.quangnam.gov.vn/files/{row}/{k}.pdf",
            "DuocSoHoa": 1 if (flags & 2 and k == n - 1) else 0,
            "DuocTaiSuDung": ((r >> (20 + k)) % 5 == 0 and 1) or 0,
            "DuocLayTuKhoDMQG": ((r >> (22 + k)) % 7 == 0 and 1) or 0,
        })
    return items


def _results(row: int, c: dict, clock: int, r: int, proc_name: str) -> list[dict]:
    linked = c["result_link_at"] <= clock
    if not linked and r % 20 == 0:
        return []
    return [{
        "GiayToId": f"KQ{row}",
        "TenGiayTo": f"Kết quả: {proc_name}"[:120],
        "MaGiayToKetQua": f"KQ.{c['proc']:03d}.{row}",
        "DuongDanTepTinKetQua": f"https://dichvucong.quangnam.gov.vn/ketqua/{row}.pdf" if linked else
        ("" if r % 2 else None),
    }]


def _supplements(row: int, c: dict, clock: int) -> list[dict]:
    if c["supp_req"] > clock:
        return []
    done = c["supp_done"] <= clock
    return [{
        "HoSoBoSungId": f"BS{row}",
        "NgayYeuCauBoSung": ts_str(c["supp_req"]),
        "NgayBoSung": ts_str(c["supp_done"]) if done else None,
        "NgayTiepNhanBoSung": ts_str(c["supp_done"]) if done else None,
        "NgayHenTraTruoc": ts_str(c["due"]),
        "NgayHenTraMoi": ts_str(c["due_new"]) if done else None,
        "TrangThaiBoSung": 1 if done else 0,
    }]


def _steps(step_times: list[int], c: dict, r: int, miss: str | None, ctx: RenderContext) -> list[dict]:
    """``QuaTrinhXuLy``: the recorded steps among ``step_times`` (simulator.steps), numbered as recorded; a
    step starts when its office received the dossier (the previous step, recorded or not)."""
    start = c["supp_done"] if c["supp_done"] != NEVER else c["receive"]
    items = ctx.offices.items(c["unit"], c["proc"], start, step_times, step_times[-1] if step_times else 0)
    out = []
    for k, (stage, defect, started, processed, legal_end) in enumerate(items, start=1):
        out.append({
            "BuocXuLy": k,
            "ThoiDiemXuLy": ts_str(processed),
            "NguoiXuLy": _name(r >> k),
            "ChucDanh": stage.title,
            "PhongBanXuLy": miss if defect == SILENT_UNNAMED else stage.office,
            "NoiDungXuLy": stage.content,
            "TrangThai": 1,
            "NgayBatDau": ts_str(started),
            "NgayKetThucTheoQuyDinh": ts_str(legal_end),
        })
    return out
