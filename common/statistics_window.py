"""The window a worker's printed statistics cover: the counts since the last block, every
`statistics_interval_seconds`; the final block covers the whole run."""
from __future__ import annotations

import time

from common.stats import Counters, WorkerStatistics


class StatisticsWindow:
    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self._start, self._base = clock(), Counters()

    def due(self) -> bool:
        return self._clock() - self._start >= self.seconds

    def take(self, stats: WorkerStatistics, final: bool = False) -> tuple[Counters, float]:
        """(the window's counts, its length in seconds), and a new window starts; `final`: the whole run's."""
        window, seconds = stats.totals.minus(self._base), self._clock() - self._start
        if final:
            window, seconds = stats.totals, time.time() - stats.started_at
        self._start, self._base = self._clock(), stats.totals.copy()
        return window, seconds
