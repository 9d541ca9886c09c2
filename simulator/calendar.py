"""Working-day arithmetic over Vietnamese public holidays (the ``holidays`` package), vectorised."""

from __future__ import annotations

import holidays
import numpy as np

from simulator.timefmt import EPOCH_DATE

_EPOCH_1970_OFFSET = (EPOCH_DATE - EPOCH_DATE.replace(year=1970, month=1, day=1)).days


class WorkCalendar:
    """Monday–Friday minus Vietnam's public holidays (Tết, Hùng Kings, 30/4, 1/5, 2/9 and observed days)."""

    def __init__(self, first_year: int, last_year: int):
        days = sorted(holidays.VN(years=range(first_year, last_year + 1)))
        self.holidays = days
        self.cal = np.busdaycalendar(weekmask="1111100", holidays=np.array(days, dtype="datetime64[D]"))

    @staticmethod
    def to_d64(days: np.ndarray) -> np.ndarray:
        return (np.asarray(days, dtype=np.int64) + _EPOCH_1970_OFFSET).astype("datetime64[D]")

    @staticmethod
    def _from_d64(d64: np.ndarray) -> np.ndarray:
        return d64.astype(np.int64) - _EPOCH_1970_OFFSET

    def add(self, days: np.ndarray, n: np.ndarray | int) -> np.ndarray:
        """The working day ``n`` working days after ``days`` (a non-working day first rolls forward)."""
        return self._from_d64(np.busday_offset(self.to_d64(days), n, roll="forward", busdaycal=self.cal))

    def roll(self, days: np.ndarray) -> np.ndarray:
        """The day itself if it is a working day, else the next working day."""
        return self.add(days, 0)

    def count(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Working days in ``[start, end)``."""
        return np.busday_count(self.to_d64(start), self.to_d64(end), busdaycal=self.cal)

    def is_workday(self, days: np.ndarray) -> np.ndarray:
        return np.is_busday(self.to_d64(days), busdaycal=self.cal)
