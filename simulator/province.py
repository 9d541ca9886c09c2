"""A simulated province at a clock: its reference data and an index of its dossiers for the API.

``Province`` generates everything once (units, catalogue, delegation plan, dossier timelines) and
keeps, for the current clock, the dossiers sorted by (NgayCapNhat, MaHoSo) — the API's stable order —
so that a window query is two binary searches and a page is a slice. Moving the clock only recomputes
that index; the dossiers themselves never change.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson

from simulator.calendar import WorkCalendar
from simulator.catalogue import build_procedures
from simulator.delegations import build_delegations
from simulator.dossiers import DEFECT_BITS, generate
from simulator.render import RenderContext, dossier_code, render_rows
from simulator.reorganisation import REORGANISED_ON, reorganise_delegations
from simulator.scenario import Scenario
from simulator.timefmt import to_datetime, to_secs, ts_str
from simulator.truth import parse_timestamp
from simulator.units import PROVINCE_CODE, build_units


@dataclass(frozen=True)
class ClockIndex:
    """Dossiers that exist at ``clock``, in API order."""

    clock: int
    upd: np.ndarray  # int64 NgayCapNhat, ascending
    key: np.ndarray  # int64 sortable MaHoSo, ascending within equal upd
    rows: np.ndarray  # row numbers in the DossierTable
    funit: np.ndarray  # unit index as the record shows it (-1: a code no unit has)


class Province:
    """Units, procedures, delegations and dossiers of a scenario, served at a movable clock."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.units = build_units(scenario.reorganisation)
        self.procedures = build_procedures()
        self.unit_index = {u.code: i for i, u in enumerate(self.units)}
        self._code_rank = {code: r for r, code in enumerate(sorted(self.unit_index))}
        self.calendar = WorkCalendar(scenario.start.year - 1, scenario.end.year + 3)
        districts = [u.code for u in self.units if u.kind == "UBND_HUYEN"]
        plan = build_delegations(scenario.seed, {p.name: p.code for p in self.procedures}, districts, PROVINCE_CODE)
        # The plan as served names the new units after the 2025 reorganisation; dossiers follow the plan as made
        # and are handed over to the new units like every other dossier (simulator.reorganisation).
        self.delegations = reorganise_delegations(plan, self.units, self.procedures, scenario.seed) \
            if scenario.reorganisation else plan
        self.dossiers = generate(scenario, self.units, self.procedures, plan, self.calendar)
        self.render_ctx = RenderContext(self.units, self.procedures, scenario.empty_string_share,
                                        self.dossiers.offices)
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[int, bytes]] | None = None
        self.index: ClockIndex
        self.set_clock(scenario.now)

    # ----- clock -------------------------------------------------------------------------------------
    @property
    def clock(self) -> datetime:
        return to_datetime(self.index.clock)

    def set_clock(self, clock: datetime) -> None:
        """Move the province to local time ``clock`` (forwards or backwards)."""
        t = to_secs(clock)
        d = self.dossiers
        exists = np.nonzero(d.submit <= t)[0]
        upd = d.updated_at(t)[exists]
        key = d.key[exists]
        order = np.lexsort((key, upd))
        rows = exists[order]
        funit = d.handler_at(rows, t)
        unknown_unit = ((d.defects[rows] & DEFECT_BITS["VAL03"]) != 0) & (d.fixed[rows] > t) & (d.rand[rows] % 2 == 0) \
            & (d.deleted[rows] > t)
        funit[unknown_unit] = -1
        index = ClockIndex(t, upd[order], key[order], rows, funit)
        with self._lock:
            self.index = index
            self._subtrees: dict[str, np.ndarray] = {}

    def subtree_mask(self, unit_code: str) -> np.ndarray | None:
        """Boolean mask over units: ``unit_code`` and its descendants at the clock (None if unknown)."""
        if unit_code not in self.unit_index:
            return None
        cached = self._subtrees.get(unit_code)
        if cached is not None:
            return cached
        day = to_datetime(self.index.clock).date()
        parent = [self.unit_index.get(u.parent_at(day) or "", -1) for u in self.units]
        mask = np.zeros(len(self.units), dtype=bool)
        mask[self.unit_index[unit_code]] = True
        changed = True
        while changed:  # the tree is three levels deep: this loops at most three times
            new = mask | np.array([p >= 0 and mask[p] for p in parent])
            changed = bool((new != mask).any())
            mask = new
        self._subtrees[unit_code] = mask
        return mask

    # ----- reference data ----------------------------------------------------------------------------
    def unit_records(self) -> list[dict]:
        day = self.clock.date()
        return [u.to_record(day) for u in self.units if u.exists_at(day)]

    def procedure_records(self) -> list[dict]:
        return [p.to_record() for p in self.procedures]

    def office_defect_records(self) -> list[dict]:
        """The scenario's slow offices and offices that never record their steps (simulator.steps)."""
        return [d.to_record() for d in self.dossiers.offices.defects]

    def non_recording_units(self) -> list[str]:
        """``MaDonVi`` of the units that leave most of their dossiers' ``QuaTrinhXuLy`` empty."""
        return list(self.dossiers.offices.non_recording)

    def held_up_at(self) -> dict[str, str]:
        """``{MaHoSo: PhongBanXuLy}``: for every current dossier finished late by the clock, the office of its
        route it was held up at — where its delay began, whether or not that office (or its unit) records its
        steps, and whatever defects its record carries."""
        d, t = self.dossiers, self.index.clock
        rows = np.nonzero((d.held_step >= 0) & (d.end <= t) & (d.submit <= t) & (d.deleted > t))[0]
        offices = d.offices
        return {dossier_code(self.units[u].code, s, q): offices.office_of(u, p, k) for u, p, k, s, q in zip(
            d.unit[rows].tolist(), d.proc[rows].tolist(), d.held_step[rows].tolist(), d.submit[rows].tolist(),
            d.seq[rows].tolist(), strict=True)}

    def reorganisation_truth(self) -> dict:
        """What no record shows whole, at the clock (reorganisation scenario): ``successors``, every closed unit's
        successors as they really are (main first; also where the record omits ``DonViKeThua``),
        ``unannounced``, the closed units whose record omits them, ``transferred``, ``{MaHoSo: [[NgayCapNhat of
        the transfer, from MaDonVi, to MaDonVi], ...]}`` for every dossier the System moved by the clock, and
        ``untransferred``, the dossiers submitted after their unit's last day that it failed to move (those it
        received break VAL07; a few were refused at the desk)."""
        d, t = self.dossiers, self.index.clock
        codes = [u.code for u in self.units]
        day = self.clock.date()
        closed = [u for u in self.units if u.valid_to is not None and u.valid_to < day]
        exists = (d.submit <= t) & (d.deleted > t)
        moved = {}
        rows = np.nonzero((d.moved_at <= t).any(axis=1) & (d.submit <= t))[0]
        for row in rows.tolist():
            held, moves = int(d.unit[row]), []
            for at, to in zip(d.moved_at[row].tolist(), d.moved_to[row].tolist(), strict=True):
                if at <= t:
                    moves.append([ts_str(at), codes[held], codes[to]])
                    held = to
            moved[self._code(row)] = moves
        left = exists & d.untransferred
        return {"reorganised_on": REORGANISED_ON.strftime("%Y%m%d"),
                "successors": {u.code: list(u.successors) for u in closed},
                "unannounced": [u.code for u in closed if u.successors and not u.successors_served],
                "transferred": moved,
                "untransferred": sorted(self._code(r) for r in np.nonzero(left)[0].tolist())}

    def _code(self, row: int) -> str:
        d = self.dossiers
        return dossier_code(self.units[int(d.unit[row])].code, int(d.submit[row]), int(d.seq[row]))

    def delegation_records(self) -> list[dict]:
        t = self.index.clock
        recs = (item.to_record(t) for item in self.delegations)
        return [r for r in recs if r is not None]

    # ----- dossiers ----------------------------------------------------------------------------------
    def _bounds(self, index: ClockIndex, frm: int, to: int) -> tuple[int, int]:
        return int(np.searchsorted(index.upd, frm, "left")), int(np.searchsorted(index.upd, to, "left"))

    def count(self, frm: int, to: int, unit_mask: np.ndarray | None) -> int:
        """Dossiers with NgayCapNhat in ``[frm, to)`` (within ``unit_mask`` if given)."""
        index = self.index
        lo, hi = self._bounds(index, frm, to)
        if unit_mask is None:
            return hi - lo
        f = index.funit[lo:hi]
        return int(((f >= 0) & unit_mask[np.maximum(f, 0)]).sum())

    def _select(self, frm: int, to: int, unit_mask: np.ndarray | None, after: tuple[int, int] | None,
                limit: int) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Index positions of the next page after position ``after`` = (upd, key), and the page's own last
        position when more records follow (None on the last page)."""
        index = self.index
        lo, hi = self._bounds(index, frm, to)
        start = lo
        if after is not None:
            u, k = after
            a = int(np.searchsorted(index.upd, u, "left"))
            b = int(np.searchsorted(index.upd, u, "right"))
            start = max(lo, a + int(np.searchsorted(index.key[a:b], k, "right")))
        if unit_mask is None:
            sel = np.arange(start, min(hi, start + limit + 1))
        else:
            picked: list[np.ndarray] = []
            got = 0
            pos = start
            step = max(4 * limit, 4096)
            while pos < hi and got <= limit:
                f = index.funit[pos:min(hi, pos + step)]
                hit = np.nonzero((f >= 0) & unit_mask[np.maximum(f, 0)])[0] + pos
                picked.append(hit)
                got += len(hit)
                pos += step
            sel = np.concatenate(picked)[:limit + 1] if picked else np.arange(0)
        more = len(sel) > limit
        sel = sel[:limit]
        nxt = (int(index.upd[sel[-1]]), int(index.key[sel[-1]])) if more and len(sel) else None
        return sel, nxt

    def page(self, frm: int, to: int, unit_mask: np.ndarray | None, after: tuple[int, int] | None,
             limit: int) -> tuple[list[dict], tuple[int, int] | None]:
        """Up to ``limit`` records after position ``after``, and the next position (None on the last page)."""
        sel, nxt = self._select(frm, to, unit_mask, after, limit)
        return render_rows(self.dossiers, self.index.rows[sel], self.index.clock, self.render_ctx), nxt

    def page_json(self, frm: int, to: int, unit_mask: np.ndarray | None, after: tuple[int, int] | None,
                  limit: int) -> tuple[list[bytes], tuple[int, int] | None]:
        """Like ``page``, as one JSON document per record; served from the render cache when it is on."""
        sel, nxt = self._select(frm, to, unit_mask, after, limit)
        return self._json_rows(sel), nxt

    def _json_rows(self, sel: np.ndarray) -> list[bytes]:
        index = self.index
        rows = index.rows[sel]
        if self._cache is None:
            return [orjson.dumps(r) for r in render_rows(self.dossiers, rows, index.clock, self.render_ctx)]
        cache = self._cache
        upds = index.upd[sel].tolist()
        out: list[bytes | None] = []
        missing = []
        for j, (row, upd) in enumerate(zip(rows.tolist(), upds, strict=True)):
            hit = cache.get(row)
            # A record not updated since it was cached is identical at any later clock.
            if hit is not None and hit[0] == upd:
                out.append(hit[1])
            else:
                out.append(None)
                missing.append(j)
        if missing:
            fresh = render_rows(self.dossiers, rows[missing], index.clock, self.render_ctx)
            for j, rec in zip(missing, fresh, strict=True):
                out[j] = orjson.dumps(rec)
                cache[int(rows[j])] = (upds[j], out[j])
        return out

    def enable_cache(self, workers: int | None = None) -> float:
        """Keep every record's JSON in memory (about 2.3 KB a dossier) and pre-render them all with
        ``workers`` processes; returns the seconds it took. Used where serving speed matters (benchmarks)."""
        t0 = time.perf_counter()
        self._cache = {}
        index = self.index
        chunks = [np.arange(s, min(s + 20_000, len(index.rows))) for s in range(0, len(index.rows), 20_000)]
        workers = workers or os.cpu_count() or 1
        global _WARM_PROVINCE
        _WARM_PROVINCE = self
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for sel, blobs in zip(chunks, pool.imap(_render_chunk, chunks), strict=True):
                for row, upd, blob in zip(index.rows[sel].tolist(), index.upd[sel].tolist(), blobs, strict=True):
                    self._cache[row] = (upd, blob)
        _WARM_PROVINCE = None
        return time.perf_counter() - t0

    def position_of(self, dossier_code: str, updated: str) -> tuple[int, int] | None:
        """The API-order position (upd, key) of a record, from its MaHoSo and NgayCapNhat."""
        unit_code, yymmdd, seq = dossier_code.rsplit("-", 2)
        when = parse_timestamp(updated)
        if unit_code not in self._code_rank or when is None:
            return None
        return to_secs(when), self._code_rank[unit_code] * 10**11 + int(yymmdd) * 10**5 + int(seq)

    def iter_all(self, chunk: int = 5000) -> Iterator[dict]:
        """Every dossier record at the clock (tombstones included), in API order."""
        index = self.index
        for s in range(0, len(index.rows), chunk):
            yield from render_rows(self.dossiers, index.rows[s:s + chunk], index.clock, self.render_ctx)



_WARM_PROVINCE: Province | None = None


def _render_chunk(sel: np.ndarray) -> list[bytes]:
    """Worker of ``Province.enable_cache`` (forked: the province is inherited, not pickled)."""
    p = _WARM_PROVINCE
    return [orjson.dumps(r) for r in render_rows(p.dossiers, p.index.rows[sel], p.index.clock, p.render_ctx)]
