"""Requests that wait for the cycle's books (settled funding, Binance's open interest): each on a thread of
its own that sends only while the worker's `idle` event is set (from the cycle's last book to the next cycle's
start), within a share of the budget kept inside the worker's own throttle, which counts every request of the
worker, so that the cycle and these never overspend together."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from common.exchanges import SharedThrottle


def share_budget(budget, share: float, own_limit: tuple[float, float] | None = None) -> list:
    """The budgets a request between cycles keeps to beside the worker's whole one: `share` of it, counted over
    a minute (so that one of Hyperliquid's heavier history pages fits in a tenth of its budget), and the
    endpoint's own limit where it has one (Binance's funding history), a tenth of it left to the other calls
    counted there."""
    from common.exchanges import RateBudget
    scale = 60.0 / budget.window
    shared = budget.share(share)
    minute = replace(shared, limit=shared.limit * scale, window=60.0, used_weight_header=None,
                     endpoint_limits={path: limit * scale for path, limit in shared.endpoint_limits.items()})
    own = [RateBudget(own_limit[0] * 0.9, own_limit[1], guard=budget.guard)] if own_limit else []
    return [minute, *own]


class ChainedThrottle:
    """A between-cycles client's throttle: a request leaves once each of `first` (its share) lets it, and then
    the worker's own throttle, which counts every request of the worker, books and the rest alike."""

    def __init__(self, first: list[SharedThrottle], worker: SharedThrottle):
        self.first, self.worker = first, worker
        self.budget = worker.budget

    def __call__(self, cost=None):
        for throttle in self.first:
            throttle(cost)
        return self.worker(cost)

    def answered(self, ticket=None) -> None:
        for throttle in self.first:
            throttle.answered()
        self.worker.answered()

    def observe(self, status: int, headers) -> None:
        self.worker.observe(status, headers)

    def paused_for(self) -> float:
        return self.worker.paused_for()


class BetweenCycles:
    """Runs `step()` over and over on a thread of its own while `idle` is set; `step` returns False when it had
    nothing to do (the thread then rests half a second). The thread is a daemon: a stop ends the process."""

    def __init__(self, name: str, step: Callable[[], bool], idle: threading.Event, stop):
        self.step, self.idle, self.stop = step, idle, stop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.requested:
            if self.idle.wait(0.5) and not self.step():
                time.sleep(0.5)
