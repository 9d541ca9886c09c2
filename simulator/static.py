"""A province whose dossiers are a given list of records, served by the same contract server.

``StaticProvince(base, records)`` takes its units, procedures, delegations and clock from a generated
``Province`` and serves exactly ``records`` (any dicts with a ``MaHoSo`` and a valid ``NgayCapNhat``)
as ``GET /dossiers``, in the contract's order, with its windows, ``don_vi`` filter and cursors. Tests
use it for hand-made edge cases (a scenario's records plus records no generator would produce) and to
change records between nights (``set_records``).

A record may also be a ``RawRecord``: bytes served exactly as given — what a real System emits and no
JSON library would write (a string cut in the middle of a UTF-16 surrogate pair, ``\u0000``, a number
beyond any database's range, bytes that are not UTF-8) — with the ``MaHoSo``, ``NgayCapNhat`` and
``DonViXuLy`` the server files it under. ``units``, ``procedures`` and ``delegations`` replace the base
province's reference lists the same way (dicts or ``RawRecord``s).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import orjson

from simulator.province import Province
from simulator.timefmt import to_secs
from simulator.truth import parse_timestamp


@dataclass(frozen=True)
class RawRecord:
    """A record served as these exact bytes, filed under (``key``, ``updated``, ``unit``)."""

    body: bytes
    key: str = ""
    updated: str = ""  # yyyyMMddHHmmss: where the server puts it in the order and the windows
    unit: str | None = None


def _blob(record) -> bytes:
    return record.body if isinstance(record, RawRecord) else orjson.dumps(record)


@dataclass(frozen=True)
class _Index:
    clock: int
    rows: list[bytes]


class StaticProvince:
    """The ``Province`` interface ``ProcedureApi`` uses, over a fixed list of dossier records."""

    def __init__(self, base: Province, records: list, units: list | None = None,
                 procedures: list | None = None, delegations: list | None = None):
        self.base = base
        self.scenario = base.scenario
        self._lock = threading.Lock()
        self.units_override, self.procedures_override, self.delegations_override = units, procedures, delegations
        self.set_records(records)

    def set_records(self, records: list) -> None:
        """Serve ``records`` from now on (each a dict with a MaHoSo and a valid NgayCapNhat, or a RawRecord)."""
        keyed = []
        for rec in records:
            if isinstance(rec, RawRecord):
                key, updated, unit = rec.key, rec.updated, rec.unit
            else:
                key, updated, unit = rec.get("MaHoSo"), rec.get("NgayCapNhat"), rec.get("DonViXuLy")
            when = parse_timestamp(updated)
            if when is None or not isinstance(key, str):
                raise ValueError(f"record without a MaHoSo or a valid NgayCapNhat: {rec!r:.200}")
            keyed.append((to_secs(when), key, rec, unit))
        keyed.sort(key=lambda k: (k[0], k[1]))
        with self._lock:
            self._upd = [k[0] for k in keyed]
            self._keys = [k[1] for k in keyed]
            self._units = [k[3] for k in keyed]
            self._blobs = [_blob(k[2]) for k in keyed]
            self._records = [k[2] for k in keyed if not isinstance(k[2], RawRecord)]

    @property
    def index(self) -> _Index:
        return _Index(self.base.index.clock, self._blobs)

    @property
    def clock(self):
        return self.base.clock

    def set_clock(self, clock) -> None:
        self.base.set_clock(clock)

    def iter_all(self):
        return iter(list(self._records))

    def unit_records(self) -> list:
        return self.base.unit_records() if self.units_override is None else list(self.units_override)

    def procedure_records(self) -> list:
        return self.base.procedure_records() if self.procedures_override is None else list(self.procedures_override)

    def delegation_records(self) -> list:
        return self.base.delegation_records() if self.delegations_override is None else list(self.delegations_override)

    def subtree_mask(self, unit_code: str) -> set[str] | None:
        mask = self.base.subtree_mask(unit_code)
        if mask is None:
            return None
        return {u.code for u, inside in zip(self.base.units, mask, strict=True) if inside}

    def _positions(self, frm: int, to: int, mask: set[str] | None) -> list[int]:
        lo, hi = bisect.bisect_left(self._upd, frm), bisect.bisect_left(self._upd, to)
        return [i for i in range(lo, hi) if mask is None or self._units[i] in mask]

    def count(self, frm: int, to: int, mask: set[str] | None) -> int:
        return len(self._positions(frm, to, mask))

    def page_json(self, frm: int, to: int, mask: set[str] | None, after: tuple[int, int] | None,
                  limit: int) -> tuple[list[bytes], tuple[int, int] | None]:
        """Up to ``limit`` records after position ``after`` = (NgayCapNhat, rank in the order)."""
        positions = [i for i in self._positions(frm, to, mask) if after is None or i > after[1]]
        page = positions[:limit]
        more = len(positions) > limit
        nxt = (self._upd[page[-1]], page[-1]) if more and page else None
        return [self._blobs[i] for i in page], nxt

    def position_of(self, dossier_code: str, updated: str) -> tuple[int, int] | None:
        when = parse_timestamp(updated)
        for i, key in enumerate(self._keys):
            if key == dossier_code and when is not None and self._upd[i] == to_secs(when):
                return self._upd[i], i
        return None
