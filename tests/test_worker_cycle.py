"""The worker's cycle over time: when it loads the exchange's markets, what a cycle that overruns its
interval does, and what a cycle without tickers publishes. Workers, vhosts and simulators of each test's own."""
from __future__ import annotations

import dataclasses
import time

from common.broker import STATS_EXCHANGE
from common.symbols import SymbolSet
from tests.conftest import Consumer
from tests.test_worker_lifecycle import INTERVAL, SYMBOLS, publish_symbol_set, snapshot, solo  # noqa: F401 - fixture

MARKETS_PATH = "/linear-swap-api/v1/swap_contract_info"  # HTX's linear markets (ccxt's load_markets)
UNLISTED_RELOAD = 60  # the worker's documented reload after a set names a symbol the exchange does not list


def markets_loads(sim) -> list[float]:
    return [e.time for e in sim.requests("htx", path=MARKETS_PATH)]


def wait_for_log_time(worker, pattern: str, timeout: float) -> float:
    worker.wait_for_log(pattern, timeout)
    return time.time()


def test_a_start_with_a_held_set_loads_the_markets_once(solo, own_sim, own_rabbit):
    """The set is taken from the queue at connect, before the markets are loaded: that must not count as a
    set naming unknown symbols (which reloads the markets a minute later)."""
    publish_symbol_set(own_rabbit, SymbolSet(version=3, symbols=SYMBOLS), exchanges=("htx",))
    worker, consumer = solo("htx")
    first = snapshot(consumer, "htx", "BTC/USDT:USDT")
    loaded = markets_loads(own_sim)
    assert loaded and "Symbol set v3" in worker.log_text()
    # A cycle that starts more than the reload delay after the load: where the second load would come.
    snapshot(consumer, "htx", "BTC/USDT:USDT", after=loaded[-1] + UNLISTED_RELOAD + INTERVAL + 1,
             timeout=UNLISTED_RELOAD + 4 * INTERVAL)
    assert markets_loads(own_sim) == loaded, worker.log_text()[-2000:]
    assert worker.log_text().count("Loaded ") == 1 and first["symbol"] == "BTC/USDT:USDT"


def test_a_set_naming_an_unlisted_symbol_reloads_the_markets_a_minute_later(solo, own_sim, own_rabbit):
    """HTX lists no WIF when the worker starts; it lists it right after a set names it: the worker notices
    at the reload within a minute (at the first cycle once the last load is a minute old: reloads stay a
    minute apart), not at the 15-minute one, and publishes it from then on."""
    worker, consumer = solo("htx")
    snapshot(consumer, "htx", "BTC/USDT:USDT")
    loads = len(markets_loads(own_sim))
    loaded_at = markets_loads(own_sim)[-1]
    wif = own_sim.market.coins["WIF"]
    assert "htx" not in wif.listed_on
    publish_symbol_set(own_rabbit, SymbolSet(version=2, symbols=["BTC/USDT:USDT", "WIF/USDT:USDT"]),
                       exchanges=("htx",))
    asked = wait_for_log_time(worker, r"Symbol set v2", 2 * INTERVAL)
    worker.wait_for_log(r"Symbol WIF/USDT:USDT not available on exchange", 2 * INTERVAL)
    own_sim.market.coins["WIF"] = dataclasses.replace(wif, listed_on=wif.listed_on + ("htx",))
    got = snapshot(consumer, "htx", "WIF/USDT:USDT", after=asked, timeout=UNLISTED_RELOAD + 3 * INTERVAL)
    reloads = markets_loads(own_sim)[loads:]
    assert reloads, "WIF published without a reload"
    due = max(asked, loaded_at + UNLISTED_RELOAD)
    assert due <= reloads[0] <= due + 2 * INTERVAL, (reloads[0] - asked, reloads[0] - loaded_at)
    assert got["symbol"] == "WIF/USDT:USDT"


def test_a_cycle_that_overruns_its_interval_is_said_and_the_next_starts_at_once(solo, own_sim):
    own_sim.set_latency("bybit", 4.0)  # tickers, then the books: about 8 s a cycle, for 5 s
    worker, _ = solo("bybit", collection={"request_timeout_seconds": 10})
    overran = r"\[WARNING\] \[bybit\] Cycle overran the 5(\.0)?s interval by \d+\.\ds; starting the next at once"
    worker.wait_for_log(overran, 6 * INTERVAL)
    starts = [e.time for e in own_sim.requests("bybit", path="/v5/market/tickers")]
    while len(starts) < 3:
        worker.wait_for_log(r"Cycle overran", 4 * INTERVAL, len(worker.log_text()))
        starts = [e.time for e in own_sim.requests("bybit", path="/v5/market/tickers")]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # Each cycle takes two round trips of 4 s; waiting the interval after it would add 5 s.
    assert all(2 * 4.0 - 0.5 <= gap < 2 * 4.0 + 2.5 for gap in gaps), gaps


def test_a_cycle_without_tickers_publishes_no_board_and_counts_an_error_per_symbol(solo, own_sim, own_rabbit):
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    boards = Consumer(own_rabbit, "futures_data", "board.*")
    try:
        worker, consumer = solo("bybit")
        _, before = stats.wait_for(lambda k, b: b["cycles"] >= 1, 3 * INTERVAL, "a first report")
        boards.wait_for(lambda k, b: True, INTERVAL, "a first board")
        own_sim.inject_fault("bybit", "http500", endpoint="/v5/market/tickers", count=4)  # the try and 3 retries
        worker.wait_for_log(r"Skipping this cycle: no tickers", 6 * INTERVAL)
        _, skipped = stats.wait_for(lambda k, b: b["totals"]["errors"] > before["totals"]["errors"], 2 * INTERVAL,
                                    "the skipped cycle's report")
        assert skipped["totals"]["errors"] - before["totals"]["errors"] == len(SYMBOLS)
        assert skipped["totals"]["success"] - before["totals"]["success"] == \
            len(SYMBOLS) * (skipped["cycles"] - before["cycles"] - 1)
        failed = [e.time for e in own_sim.requests("bybit", path="/v5/market/tickers") if e.status == 500]
        recovered_at = snapshot(consumer, "bybit", "BTC/USDT:USDT", after=failed[-1])["timestamp"] / 1000
        during = [b["timestamp"] for _, b in boards.since(0)
                  if failed[0] * 1000 <= b["timestamp"] < (recovered_at - 1) * 1000]
        assert during == [], "a board from the cycle without tickers"
        assert worker.proc.poll() is None
    finally:
        stats.close()
        boards.close()
