"""The procedure catalogue: administrative procedures (TTHC) across the fields the province handles.

Names and durations follow the published national catalogue's common procedures; codes are
``N.00xxxx`` in the national style, assigned deterministically. ``weight`` is the relative dossier
volume of a procedure within its level (civil status and certification dominate at communes, land
dominates at districts), which is what makes land the field that drives the district late rate.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS: dict[str, str] = {
    "DAT_DAI": "Đất đai",
    "MOI_TRUONG": "Môi trường",
    "HO_TICH": "Hộ tịch",
    "CHUNG_THUC": "Chứng thực",
    "TU_PHAP": "Tư pháp",
    "DOANH_NGHIEP": "Thành lập và hoạt động doanh nghiệp",
    "HO_KINH_DOANH": "Thành lập và hoạt động hộ kinh doanh",
    "XAY_DUNG": "Hoạt động xây dựng",
    "LAO_DONG": "Lao động - Việc làm",
    "BAO_TRO_XA_HOI": "Bảo trợ xã hội",
    "NGUOI_CO_CONG": "Người có công",
    "GIAO_THONG": "Đường bộ",
    "Y_TE": "Khám bệnh, chữa bệnh",
    "GIAO_DUC": "Giáo dục và Đào tạo",
    "CONG_THUONG": "Lưu thông hàng hóa trong nước",
    "NONG_NGHIEP": "Trồng trọt và bảo vệ thực vật",
    "VAN_HOA": "Văn hóa",
    "THONG_TIN": "Báo chí, xuất bản",
    "KHOA_HOC": "Hoạt động khoa học và công nghệ",
    "NOI_VU": "Thi đua - Khen thưởng",
    "TAI_CHINH": "Quản lý công sản",
    "DAN_TOC": "Công tác dân tộc",
}

# Field codes as the portal spells them: a short sector prefix and a number.
FIELD_CODES: dict[str, str] = {key: f"G{(i + 1):02d}-{key[:2]}{(i * 7) % 100:02d}"
                               for i, key in enumerate(FIELDS)}


@dataclass(frozen=True)
class Procedure:
    """One record of ``GET /procedures`` plus the simulator's volume weight."""

    code: str
    name: str
    field: str  # key of FIELDS
    levels: tuple[int, ...]
    online_level: int  # MucDo 2/3/4
    duration: float
    duration_unit: str  # NGAY_LAM_VIEC / NGAY / GIO
    paper_result: bool
    fee: bool
    weight: float

    @property
    def field_code(self) -> str:
        return FIELD_CODES[self.field]

    def to_record(self) -> dict:
        return {
            "MaTTHC": self.code,
            "TenTTHC": self.name,
            "MaLinhVuc": self.field_code,
            "TenLinhVuc": FIELDS[self.field],
            "CapThucHien": list(self.levels),
            "MucDo": self.online_level,
            "ThoiHanGiaiQuyet": int(self.duration) if self.duration.is_integer() else self.duration,
            "DonViThoiHan": self.duration_unit,
            "TraKetQuaGiay": self.paper_result,
            "CoPhiLePhi": self.fee,
        }


W, C, H = "NGAY_LAM_VIEC", "NGAY", "GIO"
# (field, name, levels, online level, duration, unit, paper result, fee, weight)
_ROWS: list[tuple] = [
    # land — heavy at district level, slow, the worst on-time rate
    ("DAT_DAI", "Đăng ký, cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác gắn liền với đất lần đầu", (2,), 3, 30, W, True, True, 9),
    ("DAT_DAI", "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất do chuyển nhượng, tặng cho, thừa kế", (2,), 3, 10, W, True, True, 14),
    ("DAT_DAI", "Tách thửa hoặc hợp thửa đất", (2,), 3, 15, W, True, True, 6),
    ("DAT_DAI", "Chuyển mục đích sử dụng đất phải được phép của cơ quan nhà nước có thẩm quyền đối với hộ gia đình, cá nhân", (2,), 3, 15, W, True, True, 4),
    ("DAT_DAI", "Cấp đổi Giấy chứng nhận quyền sử dụng đất", (2,), 3, 7, W, True, True, 5),
    ("DAT_DAI", "Xóa đăng ký thế chấp quyền sử dụng đất, tài sản gắn liền với đất", (2,), 4, 3, W, False, True, 5),
    ("DAT_DAI", "Giao đất, cho thuê đất cho tổ chức", (1,), 3, 20, W, True, True, 0.6),
    ("DAT_DAI", "Đăng ký đất đai lần đầu đối với tổ chức", (1,), 3, 30, W, True, True, 0.6),
    ("DAT_DAI", "Hòa giải tranh chấp đất đai", (3,), 2, 45, C, True, False, 1.5),
    ("DAT_DAI", "Xác nhận nguồn gốc, thời điểm sử dụng đất", (3,), 2, 10, W, True, False, 2.5),
    ("MOI_TRUONG", "Cấp giấy phép môi trường", (1, 2), 3, 30, W, True, True, 0.4),
    # civil status and certification — communes' daily bread, fast
    ("HO_TICH", "Đăng ký khai sinh", (3,), 4, 1, W, True, False, 12),
    ("HO_TICH", "Đăng ký kết hôn", (3,), 3, 1, W, True, False, 3),
    ("HO_TICH", "Đăng ký khai tử", (3,), 4, 1, W, True, False, 3),
    ("HO_TICH", "Cấp bản sao trích lục hộ tịch", (2, 3), 4, 1, W, True, True, 6),
    ("HO_TICH", "Cấp giấy xác nhận tình trạng hôn nhân", (3,), 4, 3, W, True, False, 9),
    ("HO_TICH", "Đăng ký khai sinh có yếu tố nước ngoài", (2,), 3, 15, W, True, False, 0.3),
    ("HO_TICH", "Thay đổi, cải chính, bổ sung thông tin hộ tịch", (3,), 3, 3, W, True, True, 2),
    ("CHUNG_THUC", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", (2, 3), 3, 8, H, True, True, 22),
    ("CHUNG_THUC", "Chứng thực chữ ký trong các giấy tờ, văn bản", (2, 3), 3, 8, H, True, True, 8),
    ("CHUNG_THUC", "Chứng thực hợp đồng, giao dịch liên quan đến tài sản là động sản, quyền sử dụng đất và nhà ở", (3,), 2, 2, W, True, True, 5),
    ("TU_PHAP", "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam", (1,), 4, 10, W, True, True, 9),
    ("TU_PHAP", "Đăng ký hoạt động của Văn phòng công chứng", (1,), 3, 10, W, True, True, 0.2),
    # business registration
    ("DOANH_NGHIEP", "Đăng ký thành lập doanh nghiệp tư nhân", (1,), 4, 3, W, True, True, 5),
    ("DOANH_NGHIEP", "Đăng ký thành lập công ty TNHH một thành viên", (1,), 4, 3, W, True, True, 7),
    ("DOANH_NGHIEP", "Đăng ký thay đổi nội dung đăng ký doanh nghiệp", (1,), 4, 3, W, True, True, 10),
    ("DOANH_NGHIEP", "Thông báo tạm ngừng kinh doanh", (1,), 4, 3, W, False, False, 3),
    ("HO_KINH_DOANH", "Đăng ký thành lập hộ kinh doanh", (2,), 4, 3, W, True, True, 6),
    ("HO_KINH_DOANH", "Đăng ký thay đổi nội dung đăng ký hộ kinh doanh", (2,), 4, 3, W, True, True, 3),
    # construction
    ("XAY_DUNG", "Cấp giấy phép xây dựng mới đối với nhà ở riêng lẻ", (2,), 3, 15, W, True, True, 6),
    ("XAY_DUNG", "Cấp giấy phép xây dựng đối với công trình cấp đặc biệt, cấp I, cấp II", (1,), 3, 20, W, True, True, 0.8),
    ("XAY_DUNG", "Thẩm định báo cáo nghiên cứu khả thi đầu tư xây dựng", (1,), 2, 35, W, True, True, 0.7),
    ("XAY_DUNG", "Cấp chứng chỉ hành nghề hoạt động xây dựng", (1,), 4, 20, W, True, True, 1.5),
    # labour, social protection, people with merit
    ("LAO_DONG", "Cấp giấy phép lao động cho người lao động nước ngoài làm việc tại Việt Nam", (1,), 4, 5, W, True, True, 1.5),
    ("LAO_DONG", "Giải quyết hưởng trợ cấp thất nghiệp", (1,), 3, 20, W, True, False, 6),
    ("BAO_TRO_XA_HOI", "Thực hiện, điều chỉnh, thôi hưởng trợ cấp xã hội hằng tháng", (2, 3), 3, 10, W, True, False, 5),
    ("BAO_TRO_XA_HOI", "Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội", (2, 3), 3, 5, W, True, False, 2),
    ("BAO_TRO_XA_HOI", "Xác định, xác định lại mức độ khuyết tật", (3,), 2, 30, C, True, False, 2),
    ("NGUOI_CO_CONG", "Giải quyết chế độ trợ cấp thờ cúng liệt sĩ", (2, 3), 2, 12, W, True, False, 1.5),
    # transport
    ("GIAO_THONG", "Đổi Giấy phép lái xe do ngành Giao thông vận tải cấp", (1,), 4, 5, W, True, True, 10),
    ("GIAO_THONG", "Cấp phù hiệu xe ô tô kinh doanh vận tải", (1,), 4, 2, W, True, True, 4),
    ("GIAO_THONG", "Cấp giấy phép thi công công trình trên đường bộ đang khai thác", (1, 2), 3, 7, W, True, False, 1),
    # health, education
    ("Y_TE", "Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh", (1,), 3, 20, W, True, True, 1.5),
    ("Y_TE", "Cấp giấy chứng nhận đủ điều kiện kinh doanh dược", (1,), 3, 30, W, True, True, 1),
    ("GIAO_DUC", "Chuyển trường đối với học sinh trung học cơ sở", (2,), 4, 3, W, False, False, 1.5),
    ("GIAO_DUC", "Phúc khảo bài thi tốt nghiệp trung học phổ thông", (1,), 3, 15, C, True, False, 1),
    # trade, agriculture, culture, information, science, home affairs, finance, ethnic affairs
    ("CONG_THUONG", "Cấp giấy phép bán lẻ sản phẩm rượu", (2,), 4, 10, W, True, True, 1.2),
    ("CONG_THUONG", "Cấp Giấy chứng nhận đủ điều kiện kinh doanh xăng dầu", (1,), 3, 15, W, True, True, 0.5),
    ("NONG_NGHIEP", "Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm nông lâm thủy sản", (1, 2), 3, 15, W, True, True, 1.2),
    ("VAN_HOA", "Cấp giấy phép kinh doanh dịch vụ karaoke", (2,), 3, 5, W, True, True, 0.6),
    ("VAN_HOA", "Công nhận hạng cơ sở lưu trú du lịch", (1,), 3, 30, W, True, True, 0.5),
    ("THONG_TIN", "Cấp giấy phép xuất bản bản tin", (1,), 3, 10, W, True, True, 0.2),
    ("KHOA_HOC", "Đăng ký kết quả thực hiện nhiệm vụ khoa học và công nghệ", (1,), 3, 15, W, True, False, 0.2),
    ("NOI_VU", "Tặng Bằng khen của Chủ tịch UBND tỉnh", (1,), 2, 20, W, True, False, 0.8),
    ("NOI_VU", "Công nhận ban vận động thành lập hội", (2,), 2, 30, W, True, False, 0.3),
    ("TAI_CHINH", "Thanh lý tài sản công", (1,), 2, 30, W, True, False, 0.3),
    ("DAN_TOC", "Công nhận người có uy tín trong đồng bào dân tộc thiểu số", (2, 3), 2, 10, W, True, False, 0.5),
]


def build_procedures() -> list[Procedure]:
    """The catalogue, in code order. Codes: ``1.`` for provincial-only, ``2.`` for district, ``3.`` else."""
    procs = []
    for i, (field, name, levels, mucdo, duration, unit, paper, fee, weight) in enumerate(_ROWS):
        prefix = 1 if levels == (1,) else 2 if min(levels) == 2 else 3 if min(levels) == 3 else 1
        code = f"{prefix}.{(4000 + i * 137) % 10**6:06d}"
        procs.append(Procedure(code, name, field, levels, mucdo, float(duration), unit, paper, fee,
                               float(weight)))
    procs.sort(key=lambda p: p.code)
    return procs
