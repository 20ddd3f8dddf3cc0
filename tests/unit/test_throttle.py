"""The shared throttle on a fake clock: budgets as sliding windows, Retry-After pauses shared by every
thread, and the used weight an exchange reports."""
from __future__ import annotations

import pytest

from common.exchanges import MAX_PAUSE_SECONDS, VENUES, RateBudget, SharedThrottle

pytestmark = pytest.mark.unit


class FakeClock:
    """Monotonic and wall time that only move when a request sleeps."""

    def __init__(self, wall: float = 1_800_000_000.0):
        self.now, self.wall_start = 0.0, wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def throttle(budget: RateBudget, clock: FakeClock) -> SharedThrottle:
    return SharedThrottle(budget, clock=clock.monotonic, wall_clock=clock.wall, sleep=clock.sleep)


def send_times(t: SharedThrottle, clock: FakeClock, count: int, cost=("public:depth", 1.0)) -> list[float]:
    times = []
    for _ in range(count):
        t(cost)
        times.append(clock.now)
    return times


def test_a_burst_up_to_the_budget_leaves_at_once_then_waits_for_the_window():
    clock = FakeClock()
    t = throttle(RateBudget(10, 1.0), clock)
    times = send_times(t, clock, 11)
    assert times[:10] == [0.0] * 10
    assert times[10] == pytest.approx(1.0 + RateBudget(10, 1.0).guard)


def test_per_endpoint_budgets_do_not_take_from_each_other():
    clock = FakeClock()
    t = throttle(RateBudget(2, 1.0, per_endpoint=True), clock)
    assert send_times(t, clock, 2, ("public:tickers", 1.0)) == [0.0, 0.0]
    assert send_times(t, clock, 2, ("public:depth", 1.0)) == [0.0, 0.0]


def test_retry_after_pauses_every_request_not_only_the_one_answered():
    clock = FakeClock()
    t = throttle(RateBudget(100, 1.0), clock)
    t(("public:depth", 1.0))
    t.observe(429, {"Retry-After": "3"})
    assert t.paused_for() == pytest.approx(3.0)
    # Any thread's next request, whatever its endpoint, leaves only once the 3 s are over.
    t(("public:tickers", 1.0))
    assert clock.now >= 3.0
    assert t.paused_for() == 0.0


def test_a_418_ban_is_capped_and_said_so(caplog):
    clock = FakeClock()
    t = throttle(RateBudget(100, 1.0), clock)
    with caplog.at_level("WARNING"):
        t.observe(418, {"Retry-After": "259200"})  # three days
    assert t.paused_for() == MAX_PAUSE_SECONDS
    assert "HTTP 418" in caplog.text and "capped" in caplog.text


def test_an_answer_without_retry_after_or_a_later_ok_answer_sets_no_pause():
    clock = FakeClock()
    t = throttle(RateBudget(100, 1.0), clock)
    t.observe(429, {})
    t.observe(200, {"Retry-After": "30"})  # only 429/418 answers pause
    t.observe(429, {"Retry-After": "soon"})
    assert t.paused_for() == 0.0


def test_a_shorter_retry_after_never_shortens_a_running_pause():
    clock = FakeClock()
    t = throttle(RateBudget(100, 1.0), clock)
    t.observe(429, {"Retry-After": "10"})
    t.observe(429, {"Retry-After": "1"})
    assert t.paused_for() == pytest.approx(10.0)


def binance_budget() -> RateBudget:
    return VENUES["binance"].budget


def test_reported_used_weight_holds_requests_until_the_next_minute():
    """A trading bot on the same IP spent 2390 of Binance's 2400 this minute: a book of weight 20 waits
    for the next clock minute, though our own 5 s window is empty."""
    clock = FakeClock(wall=1_800_000_000.0 + 30)  # half a minute in
    t = throttle(binance_budget(), clock)
    header, limit = binance_budget().used_weight_header
    t.observe(200, {header: str(limit - 10)})
    t(("fapiPublic:depth", 20.0))
    assert clock.wall() % 60 == pytest.approx(binance_budget().guard, abs=1e-6)
    assert clock.now == pytest.approx(30 + binance_budget().guard)


def test_reported_used_weight_below_our_own_count_changes_nothing():
    clock = FakeClock(wall=1_800_000_000.0)
    t = throttle(binance_budget(), clock)
    header, _ = binance_budget().used_weight_header
    send_times(t, clock, 5, ("fapiPublic:depth", 20.0))
    t.observe(200, {header: "3"})  # stale or partial: never plans below what we know we sent
    assert send_times(t, clock, 5, ("fapiPublic:depth", 20.0)) == [0.0] * 5


def test_our_own_requests_count_in_the_minute():
    clock = FakeClock(wall=1_800_000_000.0 + 10)  # 10 s into a minute
    budget = RateBudget(1000, 60.0, used_weight_header=("X-USED", 100))
    t = throttle(budget, clock)
    times = send_times(t, clock, 6, ("api:depth", 20.0))
    assert times[:5] == [0.0] * 5 and times[5] == pytest.approx(50 + budget.guard)
