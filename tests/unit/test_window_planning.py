"""Window planning of the dossier pull (``ingestion.windows.plan_windows``): the expected windows are written
out by hand from the contract (``updated_from`` inclusive, ``updated_to`` exclusive, at most 31 days a
window) and the function's documented rules, never computed with it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise

import pytest

from ingestion.windows import plan_windows

NO_LOOKBACK = timedelta(0)


def test_the_first_run_pulls_the_whole_history_in_windows_of_at_most_31_days():
    windows, advances = plan_windows(None, date(2023, 1, 1), datetime(2023, 3, 15, 1, 0), timedelta(hours=2))
    # 2023-01-01 + 31 days = 2023-02-01; + 31 days = 2023-03-04 (February 2023 has 28 days).
    assert windows == [
        (datetime(2023, 1, 1), datetime(2023, 2, 1)),
        (datetime(2023, 2, 1), datetime(2023, 3, 4)),
        (datetime(2023, 3, 4), datetime(2023, 3, 15, 1, 0)),
    ]
    assert advances


def test_a_night_pulls_from_the_watermark_minus_the_lookback():
    windows, advances = plan_windows(datetime(2023, 6, 30, 1, 0), date(2023, 1, 1), datetime(2023, 7, 1, 1, 0),
                                     timedelta(minutes=30))
    assert windows == [(datetime(2023, 6, 30, 0, 30), datetime(2023, 7, 1, 1, 0))]
    assert advances


def test_missed_nights_are_one_longer_span_split_at_31_days():
    windows, advances = plan_windows(datetime(2023, 5, 1), date(2020, 1, 1), datetime(2023, 7, 1), NO_LOOKBACK)
    assert windows == [(datetime(2023, 5, 1), datetime(2023, 6, 1)), (datetime(2023, 6, 1), datetime(2023, 7, 1))]
    assert advances


def test_exactly_31_days_is_one_window_and_a_second_more_is_two():
    start = datetime(2023, 1, 1)
    assert plan_windows(start, date(2020, 1, 1), start + timedelta(days=31), NO_LOOKBACK)[0] == [
        (start, datetime(2023, 2, 1))
    ]
    assert plan_windows(start, date(2020, 1, 1), datetime(2023, 2, 1, 0, 0, 1), NO_LOOKBACK)[0] == [
        (start, datetime(2023, 2, 1)),
        (datetime(2023, 2, 1), datetime(2023, 2, 1, 0, 0, 1)),
    ]


def test_a_backfill_pulls_its_own_interval_again_without_moving_the_watermark():
    watermark = datetime(2023, 7, 10, 1, 0)
    windows, advances = plan_windows(watermark, date(2023, 1, 1), datetime(2023, 6, 2, 1, 0), timedelta(hours=1),
                                     interval_start=datetime(2023, 6, 1, 1, 0))
    assert windows == [(datetime(2023, 6, 1, 0, 0), datetime(2023, 6, 2, 1, 0))]
    assert not advances


def test_a_backfill_without_its_interval_start_takes_the_day_before_its_end():
    windows, advances = plan_windows(datetime(2023, 7, 10), date(2023, 1, 1), datetime(2023, 6, 2, 1, 0),
                                     timedelta(hours=1))
    assert windows == [(datetime(2023, 6, 1, 0, 0), datetime(2023, 6, 2, 1, 0))]
    assert not advances


def test_an_interval_ending_at_the_watermark_is_a_backfill():
    windows, advances = plan_windows(datetime(2023, 7, 1, 1, 0), date(2023, 1, 1), datetime(2023, 7, 1, 1, 0),
                                     NO_LOOKBACK, interval_start=datetime(2023, 6, 30, 1, 0))
    assert windows == [(datetime(2023, 6, 30, 1, 0), datetime(2023, 7, 1, 1, 0))]
    assert not advances


def test_a_history_starting_after_the_interval_has_nothing_to_pull():
    assert plan_windows(None, date(2023, 8, 1), datetime(2023, 7, 1), NO_LOOKBACK) == ([], True)


@pytest.mark.parametrize("history_start", [date(2019, 1, 1), date(2020, 2, 29), date(2022, 12, 31)])
def test_windows_tile_the_span_without_gap_or_overlap(history_start):
    end = datetime(2023, 7, 1, 1, 0)
    windows, _ = plan_windows(None, history_start, end, NO_LOOKBACK)
    assert windows[0][0] == datetime(history_start.year, history_start.month, history_start.day)
    assert windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in pairwise(windows))
    assert all(timedelta(0) < stop - start <= timedelta(days=31) for start, stop in windows)
