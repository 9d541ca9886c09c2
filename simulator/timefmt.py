"""Local-time arithmetic for the simulator.

Times are integers: seconds since 2000-01-01 00:00 *local* time (Asia/Ho_Chi_Minh, UTC+7, no DST).
Working in local seconds keeps day boundaries trivial (``t // 86400`` is the local day) and lets
numpy hold millions of timestamps as int32/int64 columns.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

EPOCH = datetime(2000, 1, 1)
EPOCH_DATE = EPOCH.date()
DAY = 86_400
NEVER = 2**31 - 1  # sentinel: an event that does not happen

_day_cache: dict[int, str] = {}


def to_secs(value: datetime | date) -> int:
    """Local naive datetime (or date, at midnight) to simulator seconds."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return int((value - EPOCH).total_seconds())


def to_datetime(secs: int) -> datetime:
    """Simulator seconds to a local naive datetime."""
    return EPOCH + timedelta(seconds=int(secs))


def day_str(day_index: int) -> str:
    """``yyyyMMdd`` for a local day number (days since the epoch); cached, it is on the hot path."""
    s = _day_cache.get(day_index)
    if s is None:
        s = (EPOCH_DATE + timedelta(days=day_index)).strftime("%Y%m%d")
        _day_cache[day_index] = s
    return s


# HHmmss of every second of a day: formatting is the hot path of serving records.
_TIME_OF_DAY = [f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}" for s in range(DAY)]


def ts_str(secs: int) -> str:
    """``yyyyMMddHHmmss`` local timestamp string."""
    d, r = divmod(secs, DAY)
    s = _day_cache.get(d)
    if s is None:
        s = day_str(d)
    return s + _TIME_OF_DAY[r]


def date_str(secs: int) -> str:
    """``yyyyMMdd`` local date string of a time."""
    return day_str(int(secs) // DAY)


def parse_ts(text: str) -> int:
    """Parse a strict ``yyyyMMddHHmmss`` string; raises ValueError on anything else."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"not a yyyyMMddHHmmss timestamp: {text!r}")
    return to_secs(datetime.strptime(text, "%Y%m%d%H%M%S"))
