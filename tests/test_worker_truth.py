"""Values the worker must never get silently wrong: a funding interval it does not know, a dated future it
watches, a book deeper than asked. Workers, vhosts and simulators of each test's own."""
from __future__ import annotations

import time

import pytest

from common.broker import STATS_EXCHANGE
from common.symbols import SymbolSet, routing_key
from tests.conftest import Consumer
from tests.simulator.binance import quarterly_quote, quarterly_symbol
from tests.test_worker_lifecycle import INTERVAL, publish_symbol_set, snapshot, solo  # noqa: F401 - fixture

UNLISTED_RELOAD = 60  # the worker reloads the markets within a minute of a set naming an unlisted symbol


def interval(consumer, symbol: str, after: float, where=lambda hours: True) -> float | None:
    key = f"futures.binance.{symbol.split('/')[0]}USDT"
    return consumer.wait_for(lambda k, b: k == key and b["timestamp"] >= after * 1000
                             and where(b["extra"]["funding_interval_hours"]), 4 * INTERVAL,
                             f"{key} after {after}")[1]["extra"]["funding_interval_hours"]


def test_binance_funding_intervals_are_null_until_fundinginfo_answers_and_kept_when_it_fails(solo, own_sim, own_rabbit):
    """DOGE settles every 4 h on Binance, BTC every 8 h (absent from fundingInfo). Taking 8 h for an unknown
    interval would halve DOGE's APR and pair the wrong legs: null until fundingInfo answers, then the last
    answer's through any later failure."""
    assert own_sim.truth("binance", "DOGE/USDT:USDT")["funding_interval_hours"] == 4
    own_sim.inject_fault("binance", "http500", endpoint="/fapi/v1/fundingInfo", seconds=600)
    worker, consumer = solo("binance", symbols=["BTC/USDT:USDT", "DOGE/USDT:USDT"])
    first = snapshot(consumer, "binance", "DOGE/USDT:USDT")
    assert first["extra"]["funding_interval_hours"] is None
    second = first["timestamp"] / 1000 + 1
    assert interval(consumer, "DOGE/USDT:USDT", second) is None and interval(consumer, "BTC/USDT:USDT", second) is None
    log = worker.log_text()
    assert log.count("Funding intervals unknown: published as null (never paired)") == 1, log
    assert log.count("[ERROR] [binance] Failed to fetch funding intervals") == 1  # then tried each cycle, quietly

    own_sim.clear_faults("binance")
    cleared = time.time()
    assert interval(consumer, "DOGE/USDT:USDT", cleared, lambda hours: hours is not None) == 4.0
    assert interval(consumer, "BTC/USDT:USDT", cleared, lambda hours: hours is not None) == 8.0
    worker.wait_for_log(r"\[INFO\] \[binance\] Funding intervals fetched again", INTERVAL)

    # The next fetch comes with the next market load: the one a minute after a set names an unlisted symbol.
    own_sim.inject_fault("binance", "http500", endpoint="/fapi/v1/fundingInfo", seconds=600)
    publish_symbol_set(own_rabbit, SymbolSet(version=2, symbols=["BTC/USDT:USDT", "DOGE/USDT:USDT", "TAO/USDT:USDT"]),
                       exchanges=("binance",))
    worker.wait_for_log(r"\[WARNING\] \[binance\] Keeping the last known funding intervals",
                        UNLISTED_RELOAD + 3 * INTERVAL)
    kept = time.time()
    assert [e.status for e in own_sim.requests("binance", since=cleared, path="/fapi/v1/fundingInfo")][-1] == 500
    assert interval(consumer, "DOGE/USDT:USDT", kept) == 4.0 and interval(consumer, "BTC/USDT:USDT", kept) == 8.0
    own_sim.clear_faults("binance")
    worker.wait_for_log(r"Funding intervals fetched again", 2 * INTERVAL, worker.log_text().index("Keeping the last"))


@pytest.mark.parametrize("exchange, depth, book_path, limit", [
    ("binance", 20, "/fapi/v1/depth", "limit=20"), ("gateio", 7, "/api/v4/futures/usdt/order_book", "limit=7")])
def test_the_configured_depth_reaches_the_request_and_bounds_the_snapshot(solo, own_sim, exchange, depth,
                                                                          book_path, limit):
    worker, consumer = solo(exchange, entry={"depth": depth})
    got = snapshot(consumer, exchange, "BTC/USDT:USDT")
    assert len(got["orderbook"]["bids"]) == len(got["orderbook"]["asks"]) == depth
    books = own_sim.requests(exchange, path=book_path)
    assert books and all(limit in e.query.split("&") for e in books), [e.query for e in books]


def test_a_watched_dated_future_is_published_from_the_bulk_rows_with_the_board_on(solo, own_sim, own_rabbit):
    """Binance lists quarterlies beside the perpetuals: BTC's, 1 % above the perpetual with a book of its
    own. Watched, it is published every cycle from its own rows of the bulk answers, with no funding (null,
    no warning); the board stays the perpetuals'."""
    own_sim.market.freeze()
    own_sim.market.dated["binance"] = ("BTC",)
    dated = quarterly_symbol("BTC")
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    boards = Consumer(own_rabbit, "futures_data", "board.*")
    try:
        worker, consumer = solo("binance", symbols=["BTC/USDT:USDT", dated])
        assert routing_key("binance", dated) == f"futures.binance.BTCUSDT-{dated[-6:]}"
        got = snapshot(consumer, "binance", dated)
        truth = quarterly_quote(own_sim.market.quote("binance", "BTC"), own_sim.market.book_depth).truth(1000)
        perpetual = own_sim.truth("binance", "BTC/USDT:USDT")
        assert got["symbol"] == dated and truth["bid"] != perpetual["bid"]
        assert (got["ticker"]["bid"], got["ticker"]["ask"], got["ticker"]["last"]) == \
            (truth["bid"], truth["ask"], truth["last"])
        assert got["orderbook"]["bids"][:5] == [[p, pytest.approx(a)] for p, a in truth["bids"][:5]]
        assert got["mark_price"] == truth["mark_price"] and got["extra"]["index_price"] == truth["index_price"]
        assert got["funding_rate"] is None and got["next_funding_time"] is None
        assert got["extra"]["funding_interval_hours"] is None
        _, report = stats.wait_for(lambda k, b: b["cycles"] >= 2, 3 * INTERVAL, "two cycles")
        assert report["totals"]["errors"] == 0 and report["unlisted_symbols"] == [], report
        _, board = boards.wait_for(lambda k, b: True, INTERVAL, "a board")
        symbols = {row["symbol"] for row in board["markets"]}
        assert "BTC/USDT:USDT" in symbols and dated not in symbols
        log = worker.log_text()
        assert "Not publishing" not in log and f"Funding rate not available for {dated}" not in log
    finally:
        stats.close()
        boards.close()
