"""Plan the incremental windows of a dossier pull (pure functions)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

MAX_WINDOW = timedelta(days=31)  # the API refuses longer windows


def plan_windows(watermark: datetime | None, history_start: date, interval_end: datetime, lookback: timedelta,
                 interval_start: datetime | None = None) -> tuple[list[tuple[datetime, datetime]], bool]:
    """Windows ``[start, end)`` of ``NgayCapNhat`` to pull for a run whose data interval ends at
    ``interval_end``, and whether they advance the watermark.

    - No watermark yet: the whole history, from ``history_start``.
    - Normally: from the watermark minus ``lookback`` (late commits) to ``interval_end`` — a missed
      night is simply a longer span.
    - A past interval (a backfill, ``interval_end`` at or before the watermark): that interval again
      (minus the look-back), without moving the watermark.
    Spans longer than the API's 31-day limit are split.
    """
    advances = True
    if watermark is None:
        start = datetime.combine(history_start, time())
    elif interval_end <= watermark:
        start = (interval_start or interval_end - timedelta(days=1)) - lookback
        advances = False
    else:
        start = watermark - lookback
    windows = []
    while start < interval_end:
        end = min(start + MAX_WINDOW, interval_end)
        windows.append((start, end))
        start = end
    return windows, advances
