"""The dossiers' lives, generated as numpy columns (one row per dossier), independent of the clock.

Every dossier gets a full timeline at generation time — submitted, received, supplement requested
and answered, financial obligation, processing steps, finished, returned, or withdrawn, stopped,
stuck, deleted, corrected later. The clock only decides which of those events have happened, so
advancing it day by day produces realistic incremental changes, and the same scenario always
produces the same province. Columns are vectorised so that 10 million dossiers generate in seconds
and take a few hundred bytes each; JSON records are rendered on demand (``simulator.render``).

Calibration (Quảng Nam's own figures): volumes of about 72k/150k/190k dossiers a year at
provincial/district/commune level; late shares that give ≥99% on time at provincial level,
≈78% at district level and ≈90% at communes, land the worst field; the online share rising through
the year; intake digitisation weakest at communes; some offices that do not record progress.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator import reorganisation
from simulator.calendar import WorkCalendar
from simulator.catalogue import Procedure
from simulator.delegations import USAGE_SHARE, DelegationItem
from simulator.reorganisation import REORGANISED_ON
from simulator.scenario import Scenario
from simulator.steps import MAX_STEPS, StepModel
from simulator.timefmt import DAY, NEVER, day_str, to_secs
from simulator.units import PROVINCE_CODE, Unit

YEARLY_VOLUME = {1: 72_000, 2: 150_000, 3: 190_000}
# Probability of finishing late, by level, for (other fields, land).
LATE_SHARE = {1: (0.004, 0.012), 2: (0.11, 0.38), 3: (0.085, 0.28)}
ONLINE_BASE = {2: 0.0, 3: 0.28, 4: 0.55}  # by the procedure's online level (MucDo)
ONLINE_LEVEL_FACTOR = {1: 1.25, 2: 0.9, 3: 0.75}
INTAKE_DIGITISED = {1: 0.93, 2: 0.78, 3: 0.45}  # paper intake with digitised components
RESULT_DIGITISED = {1: 0.92, 2: 0.70, 3: 0.55}  # paper-result dossiers with an electronic result
NON_RECORDING_UNIT_SHARE = 0.12  # district/commune offices that mostly do not record steps

# Defect bits (rule ids of dq-rules.md) carried by a dossier; rendered only when the field exists.
DEFECT_BITS = {rule: 1 << i for i, rule in enumerate(
    ["INC01", "INC02", "INC03", "INC04", "INC05", "INC06", "DIG01", "DIG02",
     "VAL01", "VAL02", "VAL03", "VAL04", "VAL05", "VAL06"])}

# Outcomes
FINISHED, WITHDRAWN, STOPPED, STUCK, NOT_ACCEPTED = 0, 1, 2, 3, 4


@dataclass
class DossierTable:
    """Column store of every dossier of a scenario (index = row number, in generation order)."""

    unit: np.ndarray  # int16 handling unit (index into units)
    proc: np.ndarray  # int16 procedure (index into procedures)
    level: np.ndarray  # int8 level of the handling unit
    channel: np.ndarray  # int8 1/2/3, 0 = sent as missing
    obj_type: np.ndarray  # int8
    seq: np.ndarray  # int32 NNNNN of the code: rank within (unit, submission day)
    key: np.ndarray  # int64 sortable image of MaHoSo
    outcome: np.ndarray  # int8
    submit: np.ndarray  # int32 times (simulator seconds)
    receive: np.ndarray  # reception, or refusal at the desk when NOT_ACCEPTED
    due: np.ndarray  # appointment date at reception
    supp_req: np.ndarray
    supp_done: np.ndarray
    due_new: np.ndarray  # appointment date after the supplement
    oblig: np.ndarray
    paid: np.ndarray
    end: np.ndarray  # finished / withdrawn / stopped / last activity of a stuck dossier
    returned: np.ndarray
    steps: np.ndarray  # int8 number of processing steps the System holds (0: none recorded)
    step_at: np.ndarray  # int32 (n, MAX_STEPS) time of each of those steps, NEVER beyond them (simulator.steps)
    held_step: np.ndarray  # int8 the route's stage a dossier finished late was held up at (-1: not late)
    intake_flags: np.ndarray  # int8 bit0 HoSoCoThanhPhanSoHoa, bit1 a TaiLieuNop item DuocSoHoa
    result_link_at: np.ndarray  # when the electronic result link appears (NEVER: never)
    defects: np.ndarray  # int32 DEFECT_BITS
    fixed: np.ndarray  # when injected defects are corrected (NEVER: never)
    deleted: np.ndarray
    rand: np.ndarray  # uint32 per-dossier randomness for rendering details
    offices: StepModel  # the routes, legal deadlines and slow or silent offices of the steps
    # Transfers to a closed unit's successor (reorganisation.md): (n, closing days) times (NEVER: not moved) and
    # units (-1); no columns outside the reorganisation scenario.
    moved_at: np.ndarray
    moved_to: np.ndarray
    untransferred: np.ndarray  # bool: left at a closed unit by the System (VAL07 on purpose)

    def __len__(self) -> int:
        return len(self.unit)

    def step_time(self, k: int) -> np.ndarray:
        """Time of step ``k`` (1-based) for every dossier; NEVER where there is no such step."""
        return self.step_at[:, k - 1].astype(np.int64)

    def handler_at(self, rows: np.ndarray, clock: int) -> np.ndarray:
        """The unit handling dossiers ``rows`` at ``clock`` (``DonViXuLy``): their unit, or the successor a
        transfer gave them."""
        unit = self.unit[rows].astype(np.int32)
        for k in range(self.moved_at.shape[1]):
            hit = self.moved_at[rows, k] <= clock
            unit[hit] = self.moved_to[rows[hit], k]
        return unit

    def updated_at(self, clock: int) -> np.ndarray:
        """NgayCapNhat of every dossier at ``clock``: its latest event not after the clock."""
        events = [self.submit, self.receive, self.supp_req, self.supp_done, self.oblig, self.paid, self.end,
                  self.returned, self.result_link_at, self.fixed]
        upd = np.zeros(len(self), dtype=np.int64)
        for col in events:
            c = col.astype(np.int64)
            upd = np.where((c <= clock) & (c > upd), c, upd)
        for k in range(1, MAX_STEPS + 1):
            c = self.step_time(k)
            upd = np.where((c <= clock) & (c > upd), c, upd)
        for k in range(self.moved_at.shape[1]):
            c = self.moved_at[:, k].astype(np.int64)
            upd = np.where((c <= clock) & (c > upd), c, upd)
        deleted = self.deleted.astype(np.int64)
        return np.where(deleted <= clock, deleted, upd)


def _lognormal_weights(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    w = rng.lognormal(0.0, sigma, n)
    return w / w.sum()


def _times_in_day(rng: np.random.Generator, days: np.ndarray, lo_h: float, hi_h: float) -> np.ndarray:
    return days.astype(np.int64) * DAY + rng.integers(int(lo_h * 3600), int(hi_h * 3600), len(days))


def generate(scenario: Scenario, units: list[Unit], procedures: list[Procedure],
             delegations: list[DelegationItem], cal: WorkCalendar) -> DossierTable:
    """Generate every dossier of the scenario. Deterministic in the scenario (not in its clock)."""
    rng = np.random.default_rng([scenario.seed, 2023])
    first_day = to_secs(scenario.start) // DAY
    last_day = to_secs(scenario.end) // DAY
    days = np.arange(first_day, last_day + 1)
    workday = cal.is_workday(days)
    day_w = np.where(workday, 1.0, 0.1)
    day_w /= day_w.sum()

    unit_idx = {u.code: i for i, u in enumerate(units)}
    proc_idx = {p.code: i for i, p in enumerate(procedures)}
    unit_level = np.array([u.level for u in units], dtype=np.int8)
    # Dossiers are drawn among the units of before the 2025 reorganisation (all of them but in the reorganisation
    # scenario), then handed over to the units in force on their day (below).
    legacy = [u.valid_from < REORGANISED_ON for u in units]
    communes = np.array([i for i, u in enumerate(units) if u.kind == "UBND_XA" and legacy[i]])
    districts = np.array([i for i, u in enumerate(units) if u.kind == "UBND_HUYEN" and legacy[i]])
    dept_of_field = {f: unit_idx[u.code] for i, u in enumerate(units) for f in u.fields if legacy[i]}
    # Offices' own character: size, punctuality, whether they record progress.
    size_w = {3: _lognormal_weights(rng, len(communes), 0.6), 2: _lognormal_weights(rng, len(districts), 0.5)}
    punctuality = rng.lognormal(0.0, 0.45, len(units))
    punctuality /= punctuality.mean()
    non_recording = (rng.random(len(units)) < NON_RECORDING_UNIT_SHARE) & (unit_level >= 2)

    delegated_from: dict[int, list[DelegationItem]] = {}
    for item in delegations:
        delegated_from.setdefault(proc_idx[item.procedure_code], []).append(item)

    parts = []
    ndays = len(days)
    for level in (1, 2, 3):
        n = round(YEARLY_VOLUME[level] * ndays / 365 * scenario.scale)
        if n == 0:
            continue
        sub_day = rng.choice(days, size=n, p=day_w)
        cands = [i for i, p in enumerate(procedures) if level in p.levels]
        pw = np.array([procedures[i].weight for i in cands])
        proc = np.array(cands)[rng.choice(len(cands), size=n, p=pw / pw.sum())]
        if level == 1:
            unit = np.array([dept_of_field.get(procedures[p].field, unit_idx[PROVINCE_CODE]) for p in proc])
        elif level == 2:
            unit = districts[rng.choice(len(districts), size=n, p=size_w[2])]
        else:
            unit = communes[rng.choice(len(communes), size=n, p=size_w[3])]
        parts.append((sub_day, proc, unit))
    sub_day = np.concatenate([p[0] for p in parts])
    proc = np.concatenate([p[1] for p in parts]).astype(np.int16)
    unit = np.concatenate([p[2] for p in parts]).astype(np.int32)
    n = len(sub_day)
    u01 = rng.random((n, 16), dtype=np.float32)  # independent uniforms for every draw below

    # Delegated procedures: before the change they sit with the delegating unit; once an item is
    # configured, most new dossiers of the procedure go to its receiving unit.
    home_district = districts[rng.integers(0, len(districts), n)]
    sub_time_approx = sub_day.astype(np.int64) * DAY + 12 * 3600
    for p, items in delegated_from.items():
        rows = np.nonzero(proc == p)[0]
        if not len(rows):
            continue
        unit[rows] = unit_idx[items[0].from_unit]
        share = USAGE_SHARE[items[0].kind]
        for item in items:
            if item.configured == NEVER:
                continue
            recv = unit_idx[item.to_unit]
            live = (sub_time_approx[rows] >= item.configured) & (sub_time_approx[rows] < item.expired)
            if units[recv].kind == "UBND_HUYEN":
                live &= home_district[rows] == recv
            unit[rows[live & (u01[rows, 0] < share)]] = recv

    # Units closed by a merger hand their new dossiers to the unit they merged into; in the reorganisation
    # scenario every closed unit hands them over to its successors (simulator.reorganisation), but for a few
    # the System failed to move in the first days (VAL07, on purpose).
    field_of = np.array([p.field for p in procedures])[proc]
    untransferred = np.zeros(n, dtype=bool)
    if scenario.reorganisation:
        hrng = np.random.default_rng([scenario.seed, 2025])
        untransferred = reorganisation.untransferred(units, unit, sub_day, hrng)
        unit = reorganisation.hand_over(units, unit, sub_day, field_of, hrng, untransferred)
    else:
        for i, u in enumerate(units):
            if u.merged_into is not None:
                after = (unit == i) & (sub_day > to_secs(u.valid_to) // DAY)
                unit[after] = unit_idx[u.merged_into]
    level = unit_level[unit]

    p_online_lvl = np.array([ONLINE_BASE[p.online_level] for p in procedures])[proc]
    d64 = WorkCalendar.to_d64(sub_day)
    year_frac = (d64 - d64.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) / 365.0
    p_online = np.clip(p_online_lvl * np.vectorize(ONLINE_LEVEL_FACTOR.get)(level) * (0.55 + 1.0 * year_frac), 0, 0.95)
    channel = np.where(u01[:, 1] < p_online, 2, np.where(u01[:, 2] < 0.03, 3, 1)).astype(np.int8)
    channel[(channel == 1) & (u01[:, 3] < 0.12)] = 0  # KenhThucHien left empty: counts as in person

    business = np.isin(field_of, ["DOANH_NGHIEP"])
    obj_type = np.where(business, np.where(u01[:, 4] < 0.95, 2, 1),
                        np.searchsorted([0.93, 0.97, 0.98], u01[:, 4]) + 1).astype(np.int8)

    # Submission and reception. Desks are closed on weekends and holidays: in-person and postal
    # dossiers submitted "then" arrive on the next working day; online ones keep their day.
    in_person = channel <= 1
    sub_day = np.where(channel == 2, sub_day, cal.roll(sub_day))
    if scenario.reorganisation:  # a desk closed on a unit's last days: the dossier goes to its successor
        unit = reorganisation.hand_over(units, unit, sub_day, field_of, hrng, untransferred)
        level = unit_level[unit]
    submit = np.where(in_person, _times_in_day(rng, sub_day, 7.5, 16.5), _times_in_day(rng, sub_day, 0, 24))
    lag = np.where(in_person, 0, np.where(channel == 2, rng.integers(0, 2, n), rng.integers(1, 4, n)))
    recv_day = cal.add(sub_day, lag)
    receive = np.where(in_person, submit + rng.integers(60, 1200, n),
                       np.maximum(_times_in_day(rng, recv_day, 8, 16.5), submit + rng.integers(600, 3600, n)))
    recv_day = receive // DAY
    not_accepted = (~in_person) & (u01[:, 5] < 0.03)

    # Legal processing time → appointment date.
    dur = np.array([p.duration for p in procedures])[proc]
    dunit = np.array([p.duration_unit for p in procedures])[proc]
    dur_days = np.ceil(dur).astype(np.int64)

    def due_after(start_secs: np.ndarray) -> np.ndarray:
        d0 = start_secs // DAY
        work = cal.add(d0, dur_days) * DAY + 17 * 3600
        calendar_days = cal.roll(d0 + dur_days) * DAY + 17 * 3600
        # Hours run in office hours: what passes 17:00 carries over to the next working day from 08:00.
        hours = start_secs + (dur * 3600).astype(np.int64)
        overflow = hours - (d0 * DAY + 17 * 3600)
        next_day = cal.add(d0, 1) * DAY + 8 * 3600 + overflow
        hours = np.where(overflow > 0, np.minimum(next_day, cal.add(d0, 1) * DAY + 17 * 3600), hours)
        return np.where(dunit == "NGAY_LAM_VIEC", work, np.where(dunit == "NGAY", calendar_days, hours))

    due = due_after(receive)

    # Supplement requests move the appointment date: the full legal time runs again from the answer.
    is_land = field_of == "DAT_DAI"
    p_supp = np.where(is_land, 0.14, np.where(field_of == "XAY_DUNG", 0.12, 0.05))
    has_supp = (~not_accepted) & (u01[:, 6] < p_supp) & (dunit != "GIO")
    supp_req = np.where(has_supp, receive + ((due - receive) * (0.1 + 0.5 * u01[:, 7])).astype(np.int64), NEVER)
    never_answered = has_supp & (u01[:, 8] < 0.04)
    supp_done = np.where(has_supp & ~never_answered, supp_req + rng.integers(1, 15, n) * DAY, NEVER)
    due_new = np.where(has_supp & ~never_answered, due_after(supp_done), NEVER)
    eff_due = np.where(has_supp & ~never_answered, due_new, due)
    proc_start = np.where(has_supp & ~never_answered, supp_done, receive)

    # Outcome and finishing time.
    r = u01[:, 9]
    rates = scenario.defect_rates
    outcome = np.full(n, FINISHED, dtype=np.int8)
    outcome[r < 0.012] = WITHDRAWN
    outcome[(r >= 0.012) & (r < 0.018)] = STOPPED
    outcome[(r >= 0.018) & (r < 0.018 + rates["INC05"])] = STUCK
    outcome[not_accepted] = NOT_ACCEPTED
    outcome[never_answered] = STUCK

    base = np.array([LATE_SHARE[lv] for lv in range(1, 4)])
    p_late = np.clip(base[level - 1, is_land.astype(int)] * punctuality[unit] ** (level >= 2), 0, 0.9)
    late = u01[:, 10] < p_late
    due_day = eff_due // DAY
    start_day = proc_start // DAY
    span_wd = np.maximum(cal.count(start_day, due_day), 0)
    early_k = (u01[:, 11] * span_wd).astype(np.int64)
    exactly = u01[:, 12] < 0.2
    ok_day = np.where(exactly | (span_wd == 0), due_day, cal.add(start_day, early_k))
    late_day = cal.add(due_day, 1 + np.minimum(rng.geometric(0.2, n), 40))
    fin_day = np.where(late, late_day, ok_day)
    finish = np.maximum(_times_in_day(rng, fin_day, 8, 17), proc_start + rng.integers(300, 3600, n))
    finish = np.where(finish // DAY > fin_day, fin_day * DAY + 86_399, finish)  # stay on the chosen day
    mid = proc_start + ((eff_due - proc_start) * (0.2 + 0.6 * u01[:, 13])).astype(np.int64)
    stall = proc_start + rng.integers(1, 6, n) * DAY
    end = np.select([outcome == FINISHED, (outcome == WITHDRAWN) | (outcome == STOPPED), outcome == STUCK],
                    [finish, mid, stall], default=receive)
    returned = np.where((outcome == FINISHED) & (u01[:, 14] < 0.92),
                        np.maximum(_times_in_day(rng, cal.add(end // DAY, rng.integers(0, 4, n)), 8, 17),
                                   end + 600), NEVER)

    # Financial obligation (land procedures with fees): requested and paid while in processing.
    has_oblig = (outcome == FINISHED) & is_land & np.array([p.fee for p in procedures])[proc] & (u01[:, 15] < 0.25)
    oblig = np.where(has_oblig, proc_start + (end - proc_start) // 3, NEVER)
    paid = np.where(has_oblig, proc_start + (end - proc_start) // 2, NEVER)

    # Processing steps: a finished dossier passes every office of its route (simulator.steps), a withdrawn or
    # stopped one the first few; offices that do not record progress mostly leave them empty (the steps are
    # taken all the same: the truth knows where such a dossier was held up). (The draw of 2..4 steps stays as
    # it was: the random stream after it must not move.)
    offices = StepModel(units, procedures, cal, scenario.start, scenario.end)
    drawn = rng.integers(2, 5, n).astype(np.int8)
    route_len = offices.length[unit, proc]
    taken = np.where(outcome == FINISHED, route_len, np.minimum(drawn, route_len)).astype(np.int8)
    taken[outcome == STUCK] = 1
    taken[outcome == NOT_ACCEPTED] = 0
    steps = taken.copy()
    steps[non_recording[unit] & (rng.random(n) < 0.75)] = 0

    # Digitisation: intake (paper dossiers' components) and results (electronic result link).
    d2 = rng.random((n, 4), dtype=np.float32)
    trend = 0.85 + 0.3 * year_frac
    lvl_intake = np.vectorize(INTAKE_DIGITISED.get)(level) * trend
    intake_ok = d2[:, 0] < lvl_intake
    how = (d2[:, 1] * 3).astype(np.int8) + 1  # 1 dossier flag only, 2 component flag only, 3 both
    intake_flags = np.where(intake_ok, how, 0).astype(np.int8)
    lvl_result = np.vectorize(RESULT_DIGITISED.get)(level) * trend
    res_ok = d2[:, 2] < lvl_result
    late_link = (~res_ok) & (d2[:, 3] < 0.2)
    result_link_at = np.where(outcome == FINISHED,
                              np.where(res_ok, end, np.where(late_link, end + rng.integers(2, 40, n) * DAY, NEVER)),
                              NEVER)

    # Injected defects, some corrected later (a late correction moves NgayCapNhat).
    defects = np.zeros(n, dtype=np.int32)
    dr = rng.random((n, len(DEFECT_BITS)), dtype=np.float32)
    for j, (rule, bit) in enumerate(DEFECT_BITS.items()):
        if rule in ("INC05", "DIG01", "DIG02"):
            continue  # these arise from stuck dossiers and the digitisation rates
        defects[dr[:, j] < rates[rule]] |= bit
    last_event = np.maximum(end, np.where(returned == NEVER, 0, returned))
    fixed = np.where((defects != 0) & (rng.random(n) < scenario.fix_share),
                     last_event + rng.integers(1, 20, n) * DAY + rng.integers(0, 8 * 3600, n), NEVER)
    deleted = np.where(rng.random(n) < scenario.delete_rate, submit + rng.integers(3600, 20 * DAY, n), NEVER)

    # Closed units' open dossiers moved to their successors (reorganisation.md), on streams of their own.
    if scenario.reorganisation:
        defects[untransferred] = 0  # the System's failures to transfer carry no defect that would hide them
        fixed[untransferred] = NEVER
        deleted[untransferred] = NEVER
        done = (outcome == FINISHED) | (outcome == WITHDRAWN) | (outcome == STOPPED)

        def ended(t: np.ndarray) -> np.ndarray:
            return (done & (end <= t)) | ((outcome == NOT_ACCEPTED) & (receive <= t)) | (deleted <= t)

        moved_at, moved_to = reorganisation.transfers(units, unit, submit, ended,
                                                      reorganisation.closures(units, first_day, last_day),
                                                      np.random.default_rng([scenario.seed, 2025, 7]))
    else:
        moved_at, moved_to = np.full((n, 0), NEVER, dtype=np.int32), np.full((n, 0), -1, dtype=np.int16)

    # Dossier codes: {unit of the desk}-{yyMMdd}-{NNNNN}, numbered in submission order per unit and day.
    order = np.lexsort((submit, sub_day, unit))
    grp = unit[order].astype(np.int64) * 100_000 + sub_day[order]
    starts = np.r_[0, np.nonzero(np.diff(grp))[0] + 1]
    run = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    seq = np.empty(n, dtype=np.int32)
    seq[order] = run + 1
    code_rank = np.argsort(np.argsort([u.code for u in units]))
    day_codes = np.array([_yymmdd(d) for d in range(first_day, int(sub_day.max()) + 1)], dtype=np.int64)
    yymmdd = day_codes[sub_day - first_day]
    key = code_rank[unit].astype(np.int64) * 10**11 + yymmdd * 10**5 + seq

    def i32(a: np.ndarray) -> np.ndarray:
        return np.minimum(a, NEVER).astype(np.int32)

    # The steps' offices and times come from a random stream of their own: the fields above do not depend
    # on them. Slow and silent offices are chosen among the recording units.
    srng = np.random.default_rng([scenario.seed, 2023, 7])
    size = np.zeros(len(units))
    size[communes], size[districts] = size_w[3], size_w[2]
    offices.choose_defects(srng, punctuality, ~non_recording, size)
    step_at, held_step = offices.plan(srng, unit, proc, taken, late & (outcome == FINISHED), proc_start, end)
    step_at[np.arange(MAX_STEPS) >= steps[:, None]] = NEVER  # taken, never recorded: no trace in the records

    return DossierTable(
        unit=unit.astype(np.int16), proc=proc, level=level.astype(np.int8), channel=channel, obj_type=obj_type,
        seq=seq, key=key, outcome=outcome, submit=i32(submit), receive=i32(receive), due=i32(due),
        supp_req=i32(supp_req), supp_done=i32(supp_done), due_new=i32(due_new), oblig=i32(oblig), paid=i32(paid),
        end=i32(end), returned=i32(returned), steps=steps, step_at=step_at, held_step=held_step,
        intake_flags=intake_flags,
        result_link_at=i32(result_link_at), defects=defects, fixed=i32(fixed), deleted=i32(deleted),
        rand=rng.integers(0, 2**32, n, dtype=np.uint32), offices=offices,
        moved_at=moved_at, moved_to=moved_to, untransferred=untransferred,
    )


def _yymmdd(day: int) -> int:
    return int(day_str(day)[2:])
