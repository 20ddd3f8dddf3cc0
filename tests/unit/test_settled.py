"""Settled funding's arithmetic (common/settled.py): paging, which symbol next, intervals, the budget's share.
Against the simulator through real ccxt: tests/test_simulator_<exchange>.py and tests/test_settled_feed.py."""
import pytest

from common.exchanges import VENUES, RateBudget
from common.settled import (HOUR_MS, LEAD_MS, MAX_PAGES, RETRY_FIRST_MS, PagingError,
                            SettledPaging, SettledSchedule, fetch_settled, settlements_of)
from common.between_cycles import share_budget

SETTLE_DELAY_MS = 30_000  # SettledSchedule's default
T0 = 1_800_000_000_000 // (8 * HOUR_MS) * (8 * HOUR_MS)  # a funding time on every schedule
DAY = 24 * HOUR_MS


class Pages:
    """An exchange's history as a plain object answering fetch_funding_rate_history's signature, to test the
    paging arithmetic alone (the real ccxt clients page the simulator in the integration tests)."""

    def __init__(self, times, page_size):
        self.times = sorted(times)
        self.page_size = page_size
        self.calls = []

    def fetch_funding_rate_history(self, symbol, since, limit, params):
        self.calls.append((since, limit, dict(params)))
        if "until" in params:  # forward: from since, oldest first
            times = [t for t in self.times if since <= t <= params["until"]][:limit]
        elif "before" in params:  # backward: the newest before the bound
            times = [t for t in self.times if since <= t < params["before"]][-limit:]
        else:  # by page number, newest first
            newest_first = [t for t in reversed(self.times)]
            page = params["page"]
            times = sorted(newest_first[(page - 1) * limit:page * limit])
            times = [t for t in times if t >= since]
        return [{"timestamp": t, "fundingRate": 0.0001} for t in times]


BACKWARD = SettledPaging(10, older_than=lambda before, _: {"before": before})
BY_NUMBER = SettledPaging(10, older_than=lambda _, page: {"page": page})
FORWARD = SettledPaging(10, forward=True)


@pytest.mark.parametrize("paging", [BACKWARD, BY_NUMBER, FORWARD], ids=["backward", "by-number", "forward"])
def test_every_settlement_of_the_window_once_oldest_first_in_as_few_pages_as_the_size_allows(paging):
    times = [T0 + i * HOUR_MS for i in range(95)]
    exchange = Pages(times, 10)
    since, now = T0 + 3 * HOUR_MS, T0 + 94 * HOUR_MS
    got = [e["timestamp"] for e in fetch_settled(exchange, paging, "X", since, now)]
    assert got == [t for t in times if since <= t <= now]
    assert len(exchange.calls) <= -(-len(got) // 10) + 1


def test_a_window_before_the_listing_ends_at_the_first_settlement():
    times = [T0 + i * HOUR_MS for i in range(25)]
    exchange = Pages(times, 10)
    got = fetch_settled(exchange, BACKWARD, "X", T0 - 30 * DAY, T0 + 30 * HOUR_MS)
    assert [e["timestamp"] for e in got] == times
    assert len(exchange.calls) == 3  # 10, 10, then 5: a short page is the last


class Stuck(Pages):
    def fetch_funding_rate_history(self, symbol, since, limit, params):
        self.calls.append((since, limit, dict(params)))
        return [{"timestamp": T0 + i * HOUR_MS, "fundingRate": 0.0} for i in range(limit)]


@pytest.mark.parametrize("paging", [BACKWARD, FORWARD], ids=["backward", "forward"])
def test_an_exchange_ignoring_the_paging_is_an_error_not_a_loop(paging):
    exchange = Stuck([], 10)
    with pytest.raises(PagingError, match="X: the history page"):
        fetch_settled(exchange, paging, "X", T0 - DAY, T0 + 100 * HOUR_MS)
    assert len(exchange.calls) == 2
    assert MAX_PAGES >= 720 // 50  # a 30-day hourly backfill at HTX-sized pages fits


def test_an_entry_without_a_timestamp_names_the_symbol():
    class Bad(Pages):
        def fetch_funding_rate_history(self, *args):
            return [{"fundingRate": 0.1}]
    with pytest.raises(PagingError, match="BTC/USDT:USDT: a settlement without a timestamp"):
        fetch_settled(Bad([], 10), BACKWARD, "BTC/USDT:USDT", T0, T0 + DAY)


def test_intervals_are_the_time_since_the_settlement_before():
    entries = [{"timestamp": T0 + h * HOUR_MS, "fundingRate": r} for h, r in ((0, 0.0001), (8, -0.0002), (12, 0.0003))]
    assert settlements_of(entries, T0 - 8 * HOUR_MS, 4.0) == [
        {"funding_time": T0, "rate": 0.0001, "interval_hours": 8.0},
        {"funding_time": T0 + 8 * HOUR_MS, "rate": -0.0002, "interval_hours": 8.0},
        {"funding_time": T0 + 12 * HOUR_MS, "rate": 0.0003, "interval_hours": 4.0}]
    assert settlements_of(entries[:1], None, 4.0)[0]["interval_hours"] == 4.0


@pytest.mark.parametrize("rate", [None, "0.1", True, float("nan"), 2.0])
def test_a_malformed_rate_is_refused_by_name(rate):
    with pytest.raises(ValueError, match=f"settlement at {T0}: rate"):
        settlements_of([{"timestamp": T0, "fundingRate": rate}], None, 8.0)


# -- the schedule ----------------------------------------------------------------------------------------
def schedule_of(*symbols, hours=8.0, next_funding=None, first=()):
    schedule = SettledSchedule(backfill_days=30)
    schedule.update({s: (next_funding, hours) for s in symbols}, first=first)
    return schedule


def hourly(start, end, hours=8):
    return [{"timestamp": t, "fundingRate": 0.0001} for t in range(start, end + 1, hours * HOUR_MS)]


def test_the_backfill_comes_first_watched_symbols_before_the_others_from_the_window_less_a_lead():
    schedule = schedule_of("AAA", "ZZZ", first={"ZZZ"})
    assert schedule.next_job(T0) == ("ZZZ", T0 - 30 * DAY - LEAD_MS)


def test_a_backfill_publishes_the_window_only_with_the_first_settlements_interval_from_the_one_before():
    schedule = schedule_of("X", hours=4.0)
    since = T0 - 30 * DAY - LEAD_MS
    new, backfilled_from = schedule.fetched("X", since, hourly(since, T0), T0)
    assert backfilled_from == T0 - 30 * DAY
    assert new[0]["funding_time"] == T0 - 30 * DAY and new[-1]["funding_time"] == T0
    assert {s["interval_hours"] for s in new} == {8.0}  # from the data, not the schedule's 4 h
    assert schedule.progress() == {"symbols_done": 1, "symbols_total": 1, "oldest": T0 - 30 * DAY,
                                   "fetches": 1, "settlements": len(new)}


def test_a_perpetual_listed_within_the_window_is_complete_from_its_first_settlement_only():
    schedule = schedule_of("NEW", "FRESH")
    since = T0 - 30 * DAY - LEAD_MS
    listed = T0 - 10 * DAY
    new, backfilled_from = schedule.fetched("NEW", since, hourly(listed, T0), T0)
    assert backfilled_from == listed == new[0]["funding_time"]
    assert new[0]["interval_hours"] == 8.0  # its schedule's: nothing came before it
    assert schedule.fetched("FRESH", since, [], T0) == ([], T0)


def test_after_the_backfill_a_symbol_is_asked_again_only_once_its_funding_time_has_passed():
    schedule = schedule_of("X", next_funding=T0 + 8 * HOUR_MS)
    since = T0 - 30 * DAY - LEAD_MS
    schedule.fetched("X", since, hourly(since, T0), T0)
    assert schedule.next_job(T0 + 8 * HOUR_MS) is None
    due = T0 + 8 * HOUR_MS + SETTLE_DELAY_MS
    assert schedule.next_job(due) == ("X", T0 + 1)
    new, _ = schedule.fetched("X", T0 + 1, hourly(T0, T0 + 8 * HOUR_MS), due)
    assert new == [{"funding_time": T0 + 8 * HOUR_MS, "rate": 0.0001, "interval_hours": 8.0}]
    assert schedule.next_job(due) is None  # the board still says T0 + 8 h until the next cycle: held


def test_a_funding_time_the_board_has_moved_past_is_still_asked_for():
    schedule = schedule_of("X", next_funding=T0 + 8 * HOUR_MS)
    since = T0 - 30 * DAY - LEAD_MS
    schedule.fetched("X", since, hourly(since, T0), T0)
    schedule.update({"X": (T0 + 16 * HOUR_MS, 8.0)})  # the next cycle after T0 + 8 h
    assert schedule.next_job(T0 + 8 * HOUR_MS + SETTLE_DELAY_MS) == ("X", T0 + 1)
    schedule.fetched("X", T0 + 1, hourly(T0, T0 + 8 * HOUR_MS), T0 + 9 * HOUR_MS)
    assert schedule.next_job(T0 + 9 * HOUR_MS) is None
    schedule.update({"X": (T0 + 16 * HOUR_MS, 8.0)})
    assert schedule.next_job(T0 + 16 * HOUR_MS + SETTLE_DELAY_MS) == ("X", T0 + 8 * HOUR_MS + 1)


def test_a_settlement_not_there_yet_is_asked_again_later_and_later():
    schedule = schedule_of("X", next_funding=T0 + 8 * HOUR_MS)
    since = T0 - 30 * DAY - LEAD_MS
    schedule.fetched("X", since, hourly(since, T0), T0)
    due = T0 + 8 * HOUR_MS + SETTLE_DELAY_MS
    assert schedule.fetched("X", T0 + 1, [], due) == ([], None)
    assert schedule.next_job(due + RETRY_FIRST_MS - 1) is None
    assert schedule.next_job(due + RETRY_FIRST_MS) == ("X", T0 + 1)
    schedule.fetched("X", T0 + 1, [], due + RETRY_FIRST_MS)
    assert schedule.next_job(due + 3 * RETRY_FIRST_MS - 1) is None  # then 2 minutes


def test_without_a_next_funding_time_the_interval_says_when():
    schedule = schedule_of("X", hours=1.0, next_funding=None)
    since = T0 - 30 * DAY - LEAD_MS
    schedule.fetched("X", since, hourly(since, T0, 1), T0)
    assert schedule.next_job(T0 + HOUR_MS) is None
    assert schedule.next_job(T0 + HOUR_MS + SETTLE_DELAY_MS) == ("X", T0 + 1)


def test_a_malformed_answer_records_nothing_and_a_delisted_symbol_is_forgotten():
    schedule = schedule_of("X", "Y")
    since = T0 - 30 * DAY - LEAD_MS
    with pytest.raises(ValueError):
        schedule.fetched("X", since, [{"timestamp": T0, "fundingRate": "x"}], T0)
    assert schedule.progress()["symbols_done"] == 0
    schedule.update({"Y": (None, 8.0)})
    assert schedule.fetched("X", since, hourly(since, T0), T0) == ([], None)
    assert schedule.progress()["symbols_total"] == 1


# -- the budget's share ----------------------------------------------------------------------------------
def test_the_share_is_counted_over_a_minute_so_a_heavy_page_fits():
    hyperliquid = VENUES["hyperliquid"].budget  # 100 per 5 s
    [minute] = share_budget(hyperliquid, 0.1)
    assert (minute.limit, minute.window) == pytest.approx((120, 60.0))
    assert minute.used_weight_header is None


def test_an_endpoints_own_limit_joins_the_share():
    binance = VENUES["binance"]
    minute, own = share_budget(binance.budget, 0.1, binance.settled.own_limit)
    assert minute.limit == pytest.approx(2400 * 0.1)
    assert (own.limit, own.window) == pytest.approx((500 * 0.9, 300.0))


def test_per_endpoint_limits_are_shared_alike():
    okx = VENUES["okx"].budget
    [minute] = share_budget(okx, 0.1)
    assert minute.endpoint_limits["market/books-full"] == pytest.approx(10 * 0.1 * 30)
    assert isinstance(minute, RateBudget) and minute.per_endpoint


# -- resuming from the recorder's database ---------------------------------------------------------------
def test_a_worker_resumes_from_what_the_database_holds_and_fetches_only_the_gap(tmp_path):
    from common.history import note_coverage, open_history, store_settlements
    from common.settled import held_in_database
    db = tmp_path / "history.sqlite"
    conn = open_history(db)
    store_settlements(conn, "okx", [{"symbol": "X", "funding_time": T0 - 8 * HOUR_MS, "rate": 0.1, "interval_hours": 8.0},
                                    {"symbol": "X", "funding_time": T0, "rate": 0.2, "interval_hours": 8.0},
                                    {"symbol": "Y", "funding_time": T0, "rate": 0.3, "interval_hours": 1.0}])
    note_coverage(conn, "okx", "X", T0 - 30 * DAY)
    note_coverage(conn, "bybit", "X", T0)  # another exchange's
    conn.close()
    held = held_in_database(db, "okx")
    assert held == {"X": (T0 - 30 * DAY, T0, 8.0)}  # Y never completed its backfill: backfilled again
    assert held_in_database(tmp_path / "none.sqlite", "okx") == {}
    schedule = schedule_of("X", "Y", next_funding=T0 + 24 * HOUR_MS)
    schedule.resume(held)
    schedule.update({"X": (T0 + 24 * HOUR_MS, 8.0), "Y": (T0 + 24 * HOUR_MS, 8.0)})
    assert schedule.next_job(T0 + HOUR_MS)[0] == "Y"  # the one without a backfill first
    schedule.fetched("Y", T0 - 30 * DAY - LEAD_MS, [], T0 + HOUR_MS)
    assert schedule.next_job(T0 + 8 * HOUR_MS) is None
    # Missed while no worker ran: due one interval after the newest held, not at the board's next funding.
    assert schedule.next_job(T0 + 8 * HOUR_MS + SETTLE_DELAY_MS) == ("X", T0 + 1)
    assert schedule.progress()["symbols_done"] == 2
