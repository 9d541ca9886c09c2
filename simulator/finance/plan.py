"""The province's public-investment projects and their disbursement, invented from a seed.

``build_projects`` draws each plan year's projects: an investor's projects, their funding sources (plan
lines), both plans, and the cumulative disbursement at the end of every month the plan runs. Nothing here
knows about workbooks (``simulator.finance.layout`` turns the plan lines into a report date's rows).

Decisions where the spec is silent:

- Report dates are the month ends falling within [start, end]; figures are cumulative to that day.
- Row key. A plan line is project x funding source x plan year x carried-over flag, and the cumulative
  figure `GiaiNganLuyKe` runs per plan line (a carried-over plan starts again from zero). Each project has
  exactly one plan year (the year in its code, `DA-2023-0001`), so a workbook still holds one row per
  project x funding source, as the spec and the `fct_disbursement` grain say.
- Plan years. Plan year Y appears in every report dated in Y and in the report of 31 January Y+1 (the last
  day its plan may be disbursed), so the 31 January report of Y+1 holds both Y and Y+1 rows.
- Carried-over plans (kéo dài). Part of the plan a project did not disburse by 31 January Y+1 is extended
  into Y+1: a row with `LaKeoDai` = 1 and `NamKeHoach` = Y+1 (the year it is disbursed in), both plans equal
  to the undisbursed remainder (the Prime Minister's part floored at zero). The remainder is only known once
  the Y plan closes, so these rows appear from the February report of Y+1 to 31 January Y+2. A plan is
  extended at most once, as the Law on Public Investment allows.
- Plans. Amounts are integer VND; plans are whole millions, disbursement is exact to the dong as treasury
  figures are. `KeHoachUBNDGiao` >= `KeHoachTTgGiao` for most rows: the province adds local revenue to local
  budget (NSDP) and counterpart funds to national target programmes (CTMTQG); a few central (NSTW) and ODA
  rows have a provincial plan below the Prime Minister's because the province has not allocated all of it.
- Mid-year adjustment. A few fresh (not carried-over) lines get one provincial-plan adjustment effective
  from a report date between June and October: capital is taken from slow lines of far-behind investors and
  given to lines of the other investors. `KeHoachTTgGiao` never changes.
- Far-behind investors (the seed's "disbursement rate ... still low in some units and localities"): about
  15% of investors, at least one. Every one of their lines is below 27.5% of its provincial plan in each
  September report, so the investor is below 30%; every other investor's line is above 30%. Their year
  ends at 0-55% of plan, the others' at 60-97%.
- Over plan. A few lines of on-track investors end their year 0.4-2% above the provincial plan (advances
  recovered late).
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import date

FUNDING_SOURCES = ("NSTW", "NSDP", "CTMTQG", "ODA")

# Cumulative shape of a year's disbursement: slow until mid-year, then the usual year-end rush; the last
# weight is January of the next year, the final month a plan may be disbursed.
_WEIGHTS_TO_SEPTEMBER = (1, 2, 3, 4, 5, 6, 6, 7, 8)
_WEIGHTS_AFTER_SEPTEMBER = (7, 9, 14, 8)
_MONTHS_PER_PLAN = len(_WEIGHTS_TO_SEPTEMBER) + len(_WEIGHTS_AFTER_SEPTEMBER)
SEPTEMBER = 9  # the month whose report shows which investors are far behind

MILLION = 1_000_000
_MIN_CARRY_OVER = 500 * MILLION


@dataclass(frozen=True)
class Investor:
    """An investor unit (ChuDauTu): a department or a district People's Committee."""

    code: str
    name: str
    level: int


@dataclass(frozen=True)
class PlanLine:
    """One funding source of a project for one plan year, with its cumulative disbursement path.

    `cumulative[m - 1]` is the figure at the end of month m of the plan year, m = 13 being 31 January of
    the next year. `plan_province_before` applies to report months before `adjusted_from_month`.
    """

    source: str
    plan_year: int
    carried_over: bool
    plan_pm: int
    plan_province: int
    cumulative: tuple[int, ...]
    plan_province_before: int | None = None
    adjusted_from_month: int | None = None

    def month_index(self, report_date: date) -> int | None:
        """The plan month (1-13) a report date falls in, or None if the line is not reported then."""
        if report_date.year == self.plan_year:
            # A carried-over remainder is only known once the previous year closes on 31 January.
            if self.carried_over and report_date.month == 1:
                return None
            return report_date.month
        if report_date.year == self.plan_year + 1 and report_date.month == 1:
            return _MONTHS_PER_PLAN
        return None

    def plan_province_at(self, month: int) -> int:
        """The provincial plan in force in a plan month."""
        if self.adjusted_from_month is not None and month < self.adjusted_from_month:
            return self.plan_province_before
        return self.plan_province


@dataclass(frozen=True)
class Project:
    """A public-investment project with its plan lines (fresh ones, then any carried over)."""

    code: str
    name: str
    investor_code: str
    plan_year: int
    lines: tuple[PlanLine, ...]


def report_dates(start: date, end: date) -> list[date]:
    """The month ends d with start <= d <= end."""
    dates = []
    year, month = start.year, start.month
    while True:
        last_day = month_end(year, month)
        if last_day > end:
            return dates
        if last_day >= start:
            dates.append(last_day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def month_end(year: int, month: int) -> date:
    """The last day of a month."""
    return date(year, month, calendar.monthrange(year, month)[1])


_QUANG_NAM_LOCALITIES = (
    "thành phố Tam Kỳ",
    "thành phố Hội An",
    "thị xã Điện Bàn",
    "huyện Duy Xuyên",
    "huyện Đại Lộc",
    "huyện Thăng Bình",
    "huyện Quế Sơn",
    "huyện Nông Sơn",
    "huyện Hiệp Đức",
    "huyện Tiên Phước",
    "huyện Bắc Trà My",
    "huyện Nam Trà My",
    "huyện Núi Thành",
    "huyện Phú Ninh",
    "huyện Đông Giang",
    "huyện Tây Giang",
    "huyện Nam Giang",
    "huyện Phước Sơn",
)
_VOCABULARY = {
    "river": ("Thu Bồn", "Vu Gia", "Trường Giang", "Bàn Thạch", "Tam Kỳ", "Ly Ly", "Tranh", "Yên"),
    "dt": ("ĐT603", "ĐT604", "ĐT605", "ĐT606", "ĐT607", "ĐT608", "ĐT609", "ĐT610", "ĐT611", "ĐT614", "ĐT616", "ĐT617"),
    "coast": (
        "Cửa Đại, thành phố Hội An",
        "xã Tam Hải, huyện Núi Thành",
        "xã Bình Minh, huyện Thăng Bình",
        "xã Duy Hải, huyện Duy Xuyên",
    ),
    "lake": ("Phú Ninh", "Việt An", "Khe Tân"),
    "person": (
        "Nguyễn Du",
        "Lê Lợi",
        "Trần Phú",
        "Phan Châu Trinh",
        "Huỳnh Thúc Kháng",
        "Nguyễn Duy Hiệu",
        "Lý Tự Trọng",
        "Kim Đồng",
        "Lê Quý Đôn",
        "Chu Văn An",
        "Phan Bội Châu",
        "Trần Cao Vân",
        "Hoàng Diệu",
        "Tiểu La",
        "Nguyễn Hiền",
    ),
    "flower": ("Hoa Hồng", "Sơn Ca", "Họa Mi", "Hoa Sen", "Hoa Mai", "Vành Khuyên"),
}
_TEMPLATES = {
    "road": (
        "Đường giao thông liên thôn {n} – thôn {m}, {place}",
        "Nâng cấp, mở rộng tuyến {dt}, đoạn qua {place}",
        "Đường giao thông nông thôn tuyến ĐH{n}, {place}",
        "Đường cứu hộ, cứu nạn kết hợp phát triển kinh tế – xã hội {place}",
    ),
    "bridge": (
        "Cầu qua sông {river} trên tuyến {dt}",
        "Cầu tràn liên hợp thôn {n}, {place}",
        "Xây dựng cầu dân sinh thôn {n}, {place}",
    ),
    # Rivers, the coast and large reservoirs are the province's; districts work within their own area.
    "embankment": (
        "Kè chống sạt lở bờ sông {river}, đoạn Km{n} – Km{m}",
        "Kè chống xâm thực bờ biển {coast}",
    ),
    "local_embankment": (
        "Kè chống sạt lở khu dân cư thôn {n}, {place}",
        "Kè chống sạt lở bờ suối đoạn qua thôn {n}, {place}",
    ),
    # Upper-secondary schools belong to the province, the lower grades to the districts.
    "high_school": (
        "Trường THPT {person}, {place}: nhà học bộ môn",
        "Trường THPT {person}, {place}: khu nội trú và nhà đa năng",
    ),
    "school": (
        "Trường THCS {person}, {place}: phòng học và các hạng mục phụ trợ",
        "Trường Tiểu học {person}, {place}: khối phòng học 2 tầng",
        "Trường Mầm non {flower}, {place}",
    ),
    "health": (
        "Nâng cấp các trạm y tế xã, {place}",
        "Trung tâm Y tế {place}: khối điều trị nội trú",
    ),
    "irrigation": (
        "Sửa chữa, nâng cao an toàn đập hồ chứa nước {lake}",
        "Hệ thống kênh chính hồ chứa nước {lake}: kiên cố hóa đoạn Km{n} – Km{m}",
    ),
    "local_irrigation": (
        "Kiên cố hóa kênh mương nội đồng, {place}",
        "Trạm bơm điện thôn {n}, {place}",
    ),
    "urban": (
        "Hạ tầng kỹ thuật khu tái định cư thôn {n}, {place}",
        "Chỉnh trang đô thị trung tâm {place}",
        "Trụ sở làm việc HĐND và UBND {place}",
        "Hệ thống thoát nước và vỉa hè khu trung tâm {place}",
    ),
    "it": (
        "Trung tâm Giám sát, điều hành thông minh (IOC) tỉnh Quảng Nam giai đoạn {phase}",
        "Nâng cấp Hệ thống thông tin giải quyết thủ tục hành chính tỉnh Quảng Nam",
        "Hạ tầng số và Trung tâm dữ liệu tỉnh Quảng Nam giai đoạn {phase}",
        "Số hóa hồ sơ, kết quả giải quyết thủ tục hành chính tại Bộ phận Một cửa {place}",
    ),
    "rural": (
        "Đường giao thông nội đồng thôn {n}, {place} (Chương trình MTQG xây dựng nông thôn mới)",
        "Nhà sinh hoạt cộng đồng thôn {n}, {place} (Chương trình MTQG giảm nghèo bền vững)",
        "Nước sinh hoạt tập trung thôn {n}, {place} (Chương trình MTQG vùng đồng bào dân tộc thiểu số)",
    ),
    "office": (
        "Cải tạo, sửa chữa trụ sở làm việc {investor}",
        "Chuyển đổi số, nâng cấp hạ tầng công nghệ thông tin của {investor}",
        "Nhà lưu trữ hồ sơ, tài liệu của {investor}",
    ),
}
# A department builds what it is responsible for; a district builds a bit of everything.
_KEYWORD_CATEGORIES = (
    ("giao thông", ("road", "bridge")),
    ("giáo dục", ("high_school",)),
    ("y tế", ("health",)),
    ("nông nghiệp", ("irrigation", "embankment", "local_irrigation")),
    ("thông tin", ("it",)),
    ("dân tộc", ("rural", "office")),
    ("ban quản lý dự án", ("road", "bridge", "embankment", "urban", "irrigation")),
    ("xây dựng", ("urban", "road")),
)
# Other departments only invest in their own premises and systems.
_DEFAULT_CATEGORIES = {
    1: ("office",),
    2: ("road", "school", "rural", "rural", "urban", "local_embankment", "local_irrigation", "health"),
}
_ODA_CATEGORIES = frozenset({"road", "bridge", "embankment", "irrigation"})
_COMMITTEE_PREFIXES = ("ủy ban nhân dân ", "uỷ ban nhân dân ", "ubnd ")


@dataclass(frozen=True)
class _Profile:
    far_behind: bool
    base_rate: float


@dataclass
class _Draft:
    """A fresh plan line before its disbursement path is drawn."""

    project: int
    investor: Investor
    source: str
    plan_pm: int
    plan_province: int
    role: str | None = None


def build_projects(investors: list[Investor], plan_years: list[int], seed: int, scale: float = 1.0) -> list[Project]:
    """Invent the projects of each plan year, with their plans and monthly cumulative disbursement.

    Each year is drawn from its own random stream, so a year's projects do not depend on which other years
    are asked for. `scale` multiplies the number of projects per investor (at least one each).
    """
    if not investors:
        raise ValueError("at least one investor is needed")
    profiles = _investor_profiles(investors, seed)
    places = _places(investors)
    projects: list[Project] = []
    for year in sorted(set(plan_years)):
        projects.extend(_projects_of_year(year, investors, profiles, places, seed, scale))
    return projects


def far_behind_investors(investors: list[Investor], seed: int) -> list[str]:
    """Codes of the investors whose disbursement the simulation keeps far behind plan."""
    profiles = _investor_profiles(investors, seed)
    return [inv.code for inv in investors if profiles[inv.code].far_behind]


def _investor_profiles(investors: list[Investor], seed: int) -> dict[str, _Profile]:
    rng = random.Random(f"{seed}:investors")
    count = max(1, round(0.15 * len(investors))) if len(investors) > 1 else 0
    chosen: list[Investor] = []
    # The seed blames "units and localities": take one of each level first when there is room.
    for level in sorted({inv.level for inv in investors}):
        if len(chosen) < count and count > 1:
            chosen.append(rng.choice([inv for inv in investors if inv.level == level]))
    rest = [inv for inv in investors if inv not in chosen]
    chosen.extend(rng.sample(rest, count - len(chosen)))
    codes = {inv.code for inv in chosen}
    return {
        inv.code: _Profile(
            far_behind=inv.code in codes,
            base_rate=rng.uniform(0.2, 0.45) if inv.code in codes else rng.uniform(0.68, 0.92),
        )
        for inv in investors
    }


def _places(investors: list[Investor]) -> tuple[str, ...]:
    districts = tuple(_locality(inv) for inv in investors if inv.level == 2)
    return districts or _QUANG_NAM_LOCALITIES


def _locality(investor: Investor) -> str:
    for prefix in _COMMITTEE_PREFIXES:
        if investor.name.lower().startswith(prefix):
            return investor.name[len(prefix) :]
    return investor.name


def _categories(investor: Investor) -> tuple[str, ...]:
    name = investor.name.lower()
    for keyword, categories in _KEYWORD_CATEGORIES:
        if keyword in name:
            return categories
    return _DEFAULT_CATEGORIES.get(investor.level, _DEFAULT_CATEGORIES[2])


def _project_name(rng: random.Random, category: str, investor: Investor, places: tuple[str, ...]) -> str:
    template = rng.choice(_TEMPLATES[category])
    # Local committees build in their own area; provincial investors anywhere in the province.
    place = _locality(investor) if investor.level >= 2 else rng.choice(places)
    values = {key: rng.choice(words) for key, words in _VOCABULARY.items()}
    first = rng.randint(1, 12)
    return template.format(
        place=place,
        investor=investor.name,
        n=first,
        m=first + rng.randint(1, 4),
        phase=rng.choice(("1", "2")),
        **values,
    )


def _sources(rng: random.Random, category: str, investor: Investor) -> list[str]:
    if category == "rural":
        primary = "CTMTQG"
    elif investor.level == 1:
        oda = 0.15 if category in _ODA_CATEGORIES else 0.0
        primary = rng.choices(("NSTW", "NSDP", "ODA"), weights=(0.4, 0.45, oda))[0]
    else:
        primary = rng.choices(("NSDP", "NSTW", "CTMTQG"), weights=(0.6, 0.2, 0.2))[0]
    if primary == "ODA":
        # ODA always comes with its local counterpart capital (vốn đối ứng).
        return ["ODA", "NSDP"]
    if rng.random() < 0.3:
        return [primary, rng.choice([s for s in ("NSTW", "NSDP") if s != primary])]
    return [primary]


def whole_millions(amount: float) -> int:
    """An amount rounded to whole millions of VND, at least one million (plans are whole millions)."""
    return max(1, round(amount / MILLION)) * MILLION


def _plans(rng: random.Random, source: str, investor: Investor, secondary: bool) -> tuple[int, int]:
    median = 60e9 if source == "ODA" else (20e9 if investor.level == 1 else 7e9)
    base = min(max(rng.lognormvariate(0, 0.7) * median * (0.3 if secondary else 1.0), 1.5e9), 300e9)
    plan_pm = whole_millions(base)
    if source == "NSDP":
        # The province adds local revenue (land-use fees, over-collection) to the local budget plan.
        factor = rng.uniform(1.0, 1.5) if rng.random() < 0.8 else 1.0
    elif source == "CTMTQG":
        factor = rng.uniform(1.0, 1.1) if rng.random() < 0.6 else 1.0
    else:
        # Central and ODA capital: sometimes not yet fully allocated by the province.
        factor = rng.uniform(0.7, 0.95) if rng.random() < 0.07 else 1.0
    return plan_pm, whole_millions(plan_pm * factor)


def _unique_name(
    rng: random.Random, category: str, investor: Investor, places: tuple[str, ...], taken: set[str]
) -> str:
    for _ in range(20):
        name = _project_name(rng, category, investor, places)
        if name not in taken:
            break
    else:
        # A place that keeps getting the same kind of work: the next phase of it.
        phase = 2
        while f"{name} (giai đoạn {phase})" in taken:
            phase += 1
        name = f"{name} (giai đoạn {phase})"
    taken.add(name)
    return name


def _projects_of_year(
    year: int,
    investors: list[Investor],
    profiles: dict[str, _Profile],
    places: tuple[str, ...],
    seed: int,
    scale: float,
) -> list[Project]:
    rng = random.Random(f"{seed}:{year}")
    heads: list[tuple[str, str, Investor]] = []
    drafts: list[_Draft] = []
    taken: set[str] = set()
    for investor in investors:
        for _ in range(max(1, round(rng.randint(2, 6) * scale))):
            category = rng.choice(_categories(investor))
            code = f"DA-{year}-{len(heads) + 1:04d}"
            heads.append((code, _unique_name(rng, category, investor, places, taken), investor))
            for i, source in enumerate(_sources(rng, category, investor)):
                plan_pm, plan_province = _plans(rng, source, investor, secondary=i > 0)
                drafts.append(_Draft(len(heads) - 1, investor, source, plan_pm, plan_province))
    _assign_roles(rng, drafts, profiles)

    lines: list[list[PlanLine]] = [[] for _ in heads]
    carried: list[list[PlanLine]] = [[] for _ in heads]
    for draft in drafts:
        profile = profiles[draft.investor.code]
        line = _fresh_line(rng, draft, year, profile)
        lines[draft.project].append(line)
        remainder = line.plan_province - line.cumulative[-1]
        extend_share = 0.7 if profile.far_behind else 0.3
        if remainder >= _MIN_CARRY_OVER and rng.random() < extend_share:
            plan_pm = max(line.plan_pm - line.cumulative[-1], 0)
            carried[draft.project].append(_carried_line(rng, line, plan_pm, remainder, profile))
    return [
        Project(code, name, investor.code, year, tuple(lines[i] + carried[i]))
        for i, (code, name, investor) in enumerate(heads)
    ]


def _assign_roles(rng: random.Random, drafts: list[_Draft], profiles: dict[str, _Profile]) -> None:
    on_track = []
    for draft in drafts:
        if profiles[draft.investor.code].far_behind:
            if rng.random() < 0.08:
                draft.role = "reduce"
        else:
            draw = rng.random()
            if draw < 0.04:
                draft.role = "increase"
            elif draw < 0.055:
                draft.role = "over_plan"
            else:
                on_track.append(draft)
    if on_track and not any(d.role == "over_plan" for d in drafts):
        rng.choice(on_track).role = "over_plan"


def _rate_and_september_share(rng: random.Random, profile: _Profile) -> tuple[float, float]:
    """Year-end rate vs the provincial plan, and the share of it reached by September.

    The bounds make every far-behind line < 0.55 * 0.5 of plan in September and every other line
    > 0.6 * 0.52 of it, so the investor-level 30% threshold separates them exactly.
    """
    if profile.far_behind:
        # Stuck lines (site clearance, procedures) disburse nothing all year.
        rate = 0.0 if rng.random() < 0.2 else min(max(profile.base_rate + rng.uniform(-0.1, 0.1), 0.05), 0.55)
        return rate, rng.uniform(0.25, 0.45)
    rate = min(max(profile.base_rate + rng.uniform(-0.05, 0.05), 0.6), 0.97)
    return rate, rng.uniform(0.52, 0.62)


def _path(rng: random.Random, plan: int, rate: float, september_share: float) -> tuple[int, ...]:
    early = [w * rng.uniform(0.5, 1.5) for w in _WEIGHTS_TO_SEPTEMBER]
    late = [w * rng.uniform(0.5, 1.5) for w in _WEIGHTS_AFTER_SEPTEMBER]
    shares = [september_share * w / sum(early) for w in early]
    shares += [(1 - september_share) * w / sum(late) for w in late]
    path = []
    reached = 0.0
    for share in shares[:-1]:
        reached += share
        path.append(int(plan * rate * min(reached, 1.0)))
    # Flooring a non-decreasing share keeps the figures non-decreasing; the last one is exact.
    path.append(int(plan * rate))
    return tuple(path)


def _fresh_line(rng: random.Random, draft: _Draft, year: int, profile: _Profile) -> PlanLine:
    rate, september_share = _rate_and_september_share(rng, profile)
    if draft.role == "over_plan":
        rate = rng.uniform(1.004, 1.02)
    path = _path(rng, draft.plan_province, rate, september_share)
    before = from_month = None
    if draft.role in ("increase", "reduce"):
        from_month = rng.randint(6, 10)
        if draft.role == "increase":
            before = whole_millions(draft.plan_province * rng.uniform(0.75, 0.9))
            # Treasury cannot pay beyond the plan in force.
            path = tuple(min(v, before) if m < from_month else v for m, v in enumerate(path, 1))
        else:
            before = whole_millions(draft.plan_province / rng.uniform(0.5, 0.8))
    return PlanLine(
        source=draft.source,
        plan_year=year,
        carried_over=False,
        plan_pm=draft.plan_pm,
        plan_province=draft.plan_province,
        cumulative=path,
        plan_province_before=before,
        adjusted_from_month=from_month,
    )


def _carried_line(rng: random.Random, line: PlanLine, plan_pm: int, plan_province: int, profile: _Profile) -> PlanLine:
    rate, september_share = _rate_and_september_share(rng, profile)
    return PlanLine(
        source=line.source,
        plan_year=line.plan_year + 1,
        carried_over=True,
        plan_pm=plan_pm,
        plan_province=plan_province,
        cumulative=_path(rng, plan_province, rate, september_share),
    )
