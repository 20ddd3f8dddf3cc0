"""The shared throttle on a fake clock: requests counted as the exchange counts them (from leaving until a
window after their answer), evenly spaced, Retry-After and ban pauses shared by every thread, and the used
weight an exchange reports."""
from __future__ import annotations

import dataclasses
import heapq
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.exchanges import MAX_PAUSE_SECONDS, VENUES, RateBudget, SharedThrottle

pytestmark = pytest.mark.unit


class FakeClock:
    """Monotonic and wall time that only move when a request sleeps (or a test says so)."""

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
    """One synchronous client: each request is answered at once (the next call says so)."""
    times = []
    for _ in range(count):
        t(cost)
        times.append(clock.now)
    return times


def test_requests_leave_evenly_spaced_after_a_small_burst():
    clock = FakeClock()
    budget = RateBudget(20, 1.0, burst=0.1)  # 50 ms apart; 2 of the 20 may leave back to back
    times = send_times(throttle(budget, clock), clock, 10)
    assert times[:3] == [0.0, 0.0, 0.0]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times[2:])] == [0.05] * 7


def test_a_request_counts_until_a_window_after_its_answer_not_after_it_left():
    """The exchange may have counted a slow request at any moment until its answer: its weight is held
    a window past the answer."""
    clock = FakeClock()
    budget = RateBudget(2, 1.0, burst=1.0)  # no spacing in the way: the window alone
    t = throttle(budget, clock)
    slow, _ = t.acquire()
    fast, _ = t.acquire()
    t.answered(fast)
    clock.now = 0.7
    t.answered(slow)  # answered 0.7 s after it left
    t()
    assert clock.now == pytest.approx(1.0 + budget.guard)  # room once the fast one's window is over
    t()
    assert clock.now == pytest.approx(0.7 + 1.0 + budget.guard)  # and the slow one's: 1.7, not 1.0


def test_requests_in_flight_hold_their_weight_until_answered():
    clock = FakeClock()
    t = throttle(RateBudget(2, 1.0, burst=1.0), clock)
    first, _ = t.acquire()
    t.acquire()
    clock.now = 5.0  # long after the window: both still unanswered
    ticket, wait = t.acquire()
    assert ticket is None and 0 < wait <= 0.01
    t.answered(first)
    ticket, wait = t.acquire()
    assert ticket is None and wait == pytest.approx(1.0 + t.budget.guard, abs=1e-5)


def test_a_client_sending_its_next_request_has_had_its_answer():
    """A ccxt client sends one request at a time: one that never said `answered` (an error before ccxt's
    answer hook) is over when the same thread calls again, so its weight cannot stay held for ever."""
    clock = FakeClock()
    t = throttle(RateBudget(1, 1.0, burst=1.0), clock)
    t()
    clock.now = 0.5
    t()  # the first counts as answered at 0.5
    assert clock.now == pytest.approx(1.5 + t.budget.guard)


def test_per_endpoint_budgets_do_not_take_from_each_other():
    clock = FakeClock()
    t = throttle(RateBudget(2, 1.0, per_endpoint=True, burst=1.0), clock)
    assert send_times(t, clock, 2, ("public:tickers", 1.0)) == [0.0, 0.0]
    assert send_times(t, clock, 2, ("public:depth", 1.0)) == [0.0, 0.0]


def test_a_request_heavier_than_the_whole_budget_is_refused_not_sent():
    t = throttle(RateBudget(30, 5.0, ccxt_cost_is_weight=True), FakeClock())
    with pytest.raises(ValueError, match="weight 40 is heavier than the whole budget"):
        t(("fapiPublic:ticker/24hr", 40.0))


# -- no window of the exchange holds more than the budget, whatever the delays ----------------------
def simulate(budget: RateBudget, clients: int, requests: list[tuple[float, float, float, float]]) -> list:
    """Clients sending `requests` (weight, round trip, where in it the exchange counts it 0..1, pause after
    the answer) through one throttle on a fake clock, each client one request at a time. Returns (arrival at
    the exchange, weight) of every request."""
    clock = FakeClock()
    t = throttle(budget, clock)
    order = itertools.count()
    events = [(0.0, next(order), "ready", c) for c in range(clients)]
    pending, arrivals = list(requests), []
    while events:
        clock.now, _, kind, what = heapq.heappop(events)
        if kind == "answer":
            ticket, client, pause = what
            t.answered(ticket)
            heapq.heappush(events, (clock.now + pause, next(order), "ready", client))
        elif pending:
            weight, round_trip, counted_at, pause = pending[0]
            ticket, wait = t.acquire(("api:depth", weight))
            if ticket is None:
                heapq.heappush(events, (clock.now + wait, next(order), "ready", what))
                continue
            pending.pop(0)
            arrivals.append((clock.now + counted_at * round_trip, weight))
            heapq.heappush(events, (clock.now + round_trip, next(order), "answer", (ticket, what, pause)))
    return sorted(arrivals)


def most_in_a_window(arrivals: list, window: float) -> float:
    """The most weight any closed window of `window` seconds holds (windows starting at an arrival)."""
    return max(sum(w for a, w in arrivals if start <= a <= start + window) for start, _ in arrivals)


delays = st.floats(0.0, 1.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(2, 30), window=st.sampled_from([0.5, 1.0, 5.0]), burst=st.floats(0.0, 0.5),
       clients=st.integers(1, 12),
       requests=st.lists(st.tuples(st.sampled_from([1.0, 1.0, 2.0, 5.0]), delays, st.floats(0.0, 1.0),
                                   st.floats(0.0, 0.2)), min_size=1, max_size=80))
def test_no_window_of_the_exchange_holds_more_than_the_budget_whatever_the_delays(
        limit, window, burst, clients, requests):
    budget = RateBudget(limit, window, burst=burst, guard=0.0)  # the proof needs no guard
    requests = [(min(w, limit), rtt, at, pause) for w, rtt, at, pause in requests]
    arrivals = simulate(budget, clients, requests)
    assert len(arrivals) == len(requests)
    assert most_in_a_window(arrivals, window) <= limit + 1e-9


def test_the_old_sliding_window_fails_the_same_delays():
    """The check above can fail: counting from the moment a request leaves (the old throttle, guard 100 ms)
    lets a request delayed past the guard add one too many. Two bursts 1.1 s apart, the first request of
    the first burst reaching the exchange 150 ms late."""
    limit, window, guard = 20, 1.0, 0.1
    first = [(0.15, 1.0)] + [(0.0, 1.0)] * (limit - 1)
    second = [(window + guard, 1.0)] * limit
    assert most_in_a_window(sorted(first + second), window) == limit + 1
    # The new throttle on the same delay pattern (every request counted 150 ms after it left, or at once).
    budget = RateBudget(limit, window, burst=1.0, guard=0.0)
    arrivals = simulate(budget, 4, [(1.0, 0.15, at, 0.0) for at in [1.0, 0.0] * limit])
    assert most_in_a_window(arrivals, window) <= limit


# -- what it costs ---------------------------------------------------------------------------------
ROUND_TRIP = 0.05  # the benchmark's network round trip


def sustained_rate(budget: RateBudget, round_trip: float) -> float:
    """Requests per second the throttle lets through for good, over four windows: enough clients that it,
    not the round trip, is the bound."""
    count = int(4 * budget.limit)
    clients = int(2 * round_trip * budget.limit / budget.window) + 2
    arrivals = simulate(budget, clients, [(1.0, round_trip, 0.5, 0.0)] * count)
    settled = arrivals[count // 3:]
    return (len(settled) - 1) / (settled[-1][0] - settled[0][0])


@pytest.mark.parametrize("name", ["binance", "bybit", "bitget", "htx", "gateio", "okx", "hyperliquid"])
def test_the_sustained_rate_is_within_a_few_percent_of_the_budget(name, capsys):
    budget = VENUES[name].budget
    if budget.ccxt_cost_is_weight:
        budget = dataclasses.replace(budget, used_weight_header=None)  # the minute's cap: another test
    published = budget.limit / budget.window
    rate = sustained_rate(budget, ROUND_TRIP)
    expected = budget.limit / (budget.window + budget.guard + ROUND_TRIP)  # each held a window past its answer
    old = budget.limit / (budget.window + 0.1)  # the sliding window held each request 100 ms longer
    with capsys.disabled():
        print(f"\n{name}: {rate:.2f}/s sustained at a {1000 * ROUND_TRIP:.0f} ms round trip = "
              f"{100 * rate / published:.1f} % of the published {published:g}/s (old throttle "
              f"{100 * old / published:.1f} %: {100 * (rate / old - 1):+.1f} %)")
    assert rate == pytest.approx(expected, rel=0.02)
    assert rate >= 0.94 * published


# -- pauses ----------------------------------------------------------------------------------------
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


def test_bybits_ban_answer_403_pauses_every_request_as_bybit_asks(caplog):
    """Bybit bans an IP with a bare 403 (no Retry-After) and asks for at least 10 minutes' silence."""
    clock = FakeClock()
    t = throttle(VENUES["bybit"].budget, clock)
    with caplog.at_level("WARNING"):
        t.observe(403, {})
    assert t.paused_for() == pytest.approx(600.0)
    assert "HTTP 403 from the exchange: every request waits 600s" in caplog.text
    t(("public:depth", 1.0))
    assert clock.now == pytest.approx(600.0)


def test_a_403_is_no_ban_where_the_venue_does_not_say_so():
    t = throttle(VENUES["binance"].budget, FakeClock())
    t.observe(403, {"Retry-After": "30"})  # Binance: a WAF refusal, not a rate-limit ban
    assert t.paused_for() == 0.0


# -- the used weight the exchange reports ----------------------------------------------------------
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
    budget = dataclasses.replace(binance_budget(), burst=1.0)  # the minute alone, not the spacing
    t = throttle(budget, clock)
    header, _ = budget.used_weight_header
    send_times(t, clock, 5, ("fapiPublic:depth", 20.0))
    t.observe(200, {header: "3"})  # stale or partial: never plans below what we know we sent
    assert send_times(t, clock, 5, ("fapiPublic:depth", 20.0)) == [0.0] * 5


def test_our_own_requests_count_in_the_minute():
    clock = FakeClock(wall=1_800_000_000.0 + 10)  # 10 s into a minute
    budget = RateBudget(1000, 60.0, used_weight_header=("X-USED", 100), burst=1.0)
    t = throttle(budget, clock)
    times = send_times(t, clock, 6, ("api:depth", 20.0))
    assert times[:5] == [0.0] * 5 and times[5] == pytest.approx(50 + budget.guard)


def test_a_client_request_that_fails_without_an_answer_frees_its_weight_when_it_ends():
    """ccxt's answer hook never runs for a refused connection: the request is over when fetch2 ends."""
    import ccxt

    from common.exchanges import create_exchange
    clock = FakeClock()
    t = throttle(RateBudget(1, 1.0, burst=1.0), clock)
    client = create_exchange("bybit", throttle=t)

    def refused(*_args):  # the HTTP layer, 300 ms to fail
        clock.now += 0.3
        raise ccxt.NetworkError("connection refused")
    client.fetch = refused
    with pytest.raises(ccxt.NetworkError):
        client.publicGetV5MarketTime()
    ticket, wait = t.acquire()
    assert ticket is None and wait == pytest.approx(1.0 + t.budget.guard, abs=1e-5)  # answered at 0.3


def test_an_endpoint_with_a_smaller_limit_is_spaced_by_it_and_the_others_are_not():
    """OKX: books-full 10 per 2 s beside books 40: each endpoint's own limit, its own spacing."""
    clock = FakeClock()
    budget = RateBudget(20, 2.0, per_endpoint=True, endpoint_limits={"market/books-full": 10, "market/books": 40})
    t = throttle(budget, clock)
    full = send_times(t, clock, 21, ("public:market/books-full", 1.0))
    assert most_in_a_window([(at, 1.0) for at in full], 2.0) <= 10
    clock.now = 100.0
    books = send_times(t, clock, 41, ("public:market/books", 1.0))
    assert most_in_a_window([(at, 1.0) for at in books], 2.0) <= 40
    assert books[-1] - books[0] < full[-1] - full[0]  # 41 books leave sooner than 21 full books
