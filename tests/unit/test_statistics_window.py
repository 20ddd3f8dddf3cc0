"""common/statistics_window.py: each printed block counts its own window, the final one the whole run."""
from __future__ import annotations

import time

import pytest

from common.statistics_window import StatisticsWindow
from common.stats import WorkerStatistics

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_window_counts_what_happened_since_the_last_one_and_is_due_after_its_seconds():
    clock, stats = Clock(), WorkerStatistics(exchange="bybit", pid=1)
    window = StatisticsWindow(60, clock)
    stats.totals.success = 5
    clock.now += 59
    assert not window.due()
    clock.now += 1
    assert window.due()
    counts, seconds = window.take(stats)
    assert (counts.success, seconds) == (5, 60) and not window.due()
    stats.totals.success, stats.totals.errors = 8, 1
    clock.now += 30
    counts, seconds = window.take(stats)
    assert (counts.success, counts.errors, seconds) == (3, 1, 30)


def test_the_final_window_is_the_whole_run():
    clock, stats = Clock(), WorkerStatistics(exchange="bybit", pid=1, started_at=time.time() - 3600)
    window = StatisticsWindow(60, clock)
    stats.totals.success = 5
    window.take(stats)
    stats.totals.success = 7
    counts, seconds = window.take(stats, final=True)
    assert counts.success == 7 and 3600 <= seconds < 3660
