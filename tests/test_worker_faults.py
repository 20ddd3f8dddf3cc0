"""What an exchange's bad moments cost a worker: a 429 or 418 pauses all its requests, a failed book costs
that symbol only, a failed extra publishes null, a symbol removed mid-cycle costs no more budget. Workers,
vhosts and simulators of each test's own."""
from __future__ import annotations

import time

import pytest

from common.broker import STATS_EXCHANGE
from common.exchanges import VENUES
from common.symbols import SymbolSet
from tests.conftest import Consumer, rabbitmqctl
from tests.test_worker_lifecycle import INTERVAL, publish_symbol_set, snapshot, solo  # noqa: F401 - fixture

BOOK_PATH = {"binance": "/fapi/v1/depth", "bybit": "/v5/market/orderbook", "htx": "/linear-swap-ex/market/depth"}
BTC_QUERY = {"binance": "symbol=BTCUSDT", "bybit": "symbol=BTCUSDT", "htx": "contract_code=BTC-USDT"}


def listed(sim, exchange: str) -> list[str]:
    return [f"{c.base}/USDT:USDT" for c in sim.market.listed(exchange)]


def book_symbol(entry) -> str:
    """The base of a book request in the simulator's log ('BTCUSDT', 'BTC-USDT' -> 'BTC')."""
    query = dict(part.split("=", 1) for part in entry.query.split("&") if "=" in part)
    code = query.get("symbol") or query.get("contract_code")
    return code.removesuffix("USDT").rstrip("-")


@pytest.mark.parametrize("exchange, kind, retry_after", [("htx", "http429", 3), ("binance", "http418", 2)])
def test_retry_after_pauses_every_request_of_the_worker(solo, own_sim, exchange, kind, retry_after):
    """Books are fetched by several threads at once; after one answer with Retry-After, none of them sends
    anything until it is over (the simulator's log shows the silence), then the worker carries on."""
    own_sim.set_latency(exchange, 0.2)  # keeps books in flight, so that a thread that ignored it would show
    worker, consumer = solo(exchange, symbols=listed(own_sim, exchange))
    snapshot(consumer, exchange, "ETH/USDT:USDT")
    own_sim.inject_fault(exchange, kind, endpoint=BTC_QUERY[exchange], count=1, retry_after=retry_after)
    deadline = time.monotonic() + 4 * INTERVAL
    while not (limited := [e for e in own_sim.requests(exchange) if e.status in (418, 429)]):
        assert time.monotonic() < deadline, "the fault was never served"
        time.sleep(0.05)  # the simulator's log has no event to await
    refused_at = limited[0].time
    got = snapshot(consumer, exchange, "BTC/USDT:USDT", after=refused_at, timeout=4 * INTERVAL)
    # The answer reaches the worker 0.2 s after the request arrived. Requests already in flight then may still
    # arrive (late, on a loaded machine), at most one per client (the book threads and the bulk calls' client);
    # a worker whose threads ignored the pause would send one per thread every 0.2 s, ~100 in the window.
    silent_from, silent_to = refused_at + 0.2 + 0.1, refused_at + 0.2 + retry_after - 0.05
    during = [(e.path, e.query) for e in own_sim.requests(exchange) if silent_from < e.time < silent_to]
    assert len(during) <= VENUES[exchange].book_threads + 1, f"requests during the {retry_after} s pause: {during}"
    assert got["symbol"] == "BTC/USDT:USDT"
    assert f"HTTP {kind[-3:]} from the exchange: every request waits {retry_after}s" in worker.log_text()


def test_a_book_that_keeps_failing_skips_its_symbol_only_and_counts_an_error(solo, own_sim, own_rabbit):
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    try:
        worker, consumer = solo("bybit")
        _, before = stats.wait_for(lambda k, b: b["cycles"] >= 1, 3 * INTERVAL, "a first report")
        own_sim.inject_fault("bybit", "http500", endpoint=BTC_QUERY["bybit"], count=4)  # the try and 3 retries
        worker.wait_for_log(r"Failed to fetch orderbook BTC/USDT:USDT: .*\(giving up after 3 retries\)", 30)
        _, report = stats.wait_for(lambda k, b: b["totals"]["errors"] > before["totals"]["errors"], 3 * INTERVAL,
                                   "a report with the error")
        failed_cycle = report["cycles"]
        assert report["totals"]["errors"] == before["totals"]["errors"] + 1
        # The same cycle published the other symbols.
        assert report["totals"]["success"] == before["totals"]["success"] + 3 * (failed_cycle - before["cycles"]) - 1
        recovered = snapshot(consumer, "bybit", "BTC/USDT:USDT", after=time.time())
        assert recovered["symbol"] == "BTC/USDT:USDT" and worker.proc.poll() is None
    finally:
        stats.close()


def test_books_of_symbols_removed_mid_cycle_are_not_fetched(solo, own_sim, own_rabbit):
    """Binance at half its budget holds a few 1000-level books per 5 s: a cycle of every listed symbol
    takes several windows. A set that arrives meanwhile stops the books of the symbols it removed, but
    for those a book thread had already picked up."""
    symbols = listed(own_sim, "binance")
    worker, consumer = solo("binance", symbols=symbols, entry={"rate_share": 0.5})
    deadline = time.monotonic() + 3 * INTERVAL
    while not own_sim.requests("binance", path=BOOK_PATH["binance"]):
        assert time.monotonic() < deadline, worker.log_text()
        time.sleep(0.05)  # the simulator's log has no event to await
    publish_symbol_set(own_rabbit, SymbolSet(version=2, symbols=["BTC/USDT:USDT"]), exchanges=("binance",))
    worker.wait_for_log(r"Symbol set v2", INTERVAL)
    received = time.time()
    snapshot(consumer, "binance", "BTC/USDT:USDT", after=received + 0.5, timeout=6 * INTERVAL)
    removed_books = [book_symbol(e) for e in own_sim.requests("binance", since=received, path=BOOK_PATH["binance"])
                     if book_symbol(e) != "BTC"]
    assert len(symbols) - 1 > VENUES["binance"].book_threads  # else the test could not tell
    assert len(removed_books) <= VENUES["binance"].book_threads, removed_books


def test_htx_mark_price_comes_per_symbol_and_a_failure_publishes_null(solo, own_sim):
    own_sim.market.freeze()
    worker, consumer = solo("htx")
    truth = own_sim.truth("htx", "SOL/USDT:USDT")
    assert snapshot(consumer, "htx", "SOL/USDT:USDT")["mark_price"] == truth["mark_price"]
    own_sim.inject_fault("htx", "http500", endpoint="mark_price_kline?period=1min&size=1&contract_code=SOL-USDT", count=1)
    got = consumer.wait_for(lambda k, b: k == "futures.htx.SOLUSDT" and b["mark_price"] is None, 3 * INTERVAL,
                            "a SOL snapshot without its mark price")[1]
    assert got["ticker"]["bid"] == truth["bid"] and got["orderbook"]["bids"]
    assert "[WARNING] [htx] Failed to fetch htx_mark_price of SOL/USDT:USDT" in worker.log_text()
    after = time.time()
    assert snapshot(consumer, "htx", "SOL/USDT:USDT", after=after)["mark_price"] == truth["mark_price"]


def test_per_symbol_extras_off_sends_no_extra_request(solo, own_sim):
    worker, consumer = solo("htx", entry={"per_symbol_extras": False})
    first = snapshot(consumer, "htx", "BTC/USDT:USDT")
    snapshot(consumer, "htx", "BTC/USDT:USDT", after=first["timestamp"] / 1000 + 1)
    assert first["mark_price"] is None
    assert not own_sim.requests("htx", path="mark_price_kline")
    assert own_sim.requests("htx", path=BOOK_PATH["htx"])


def test_weight_another_program_spent_on_the_ip_holds_the_workers_requests(solo, own_sim):
    """A trading bot on the same IP has spent most of Binance's minute when the worker starts: the answers'
    X-MBX-USED-WEIGHT-1M tell it, and it holds its requests for the next minute (no 429), though its own
    5 s window would allow 200 weight at once."""
    while time.time() % 60 > 40:  # the spend and the hold in one clock minute
        time.sleep(0.2)  # waiting for the clock itself: no event to await
    started = time.time()
    left = 100  # markets (1), the bulk calls (40 + 5 + 10) and two books of 20: the third does not fit
    own_sim.spend_weight("binance", 2400 - left)
    worker, _ = solo("binance", symbols=listed(own_sim, "binance"))
    worker.wait_for_log(r"of the IP's 2400 weight used this minute \(other programs included\): requests wait",
                        3 * INTERVAL)
    after = own_sim.requests("binance", since=started)
    assert own_sim.statuses("binance").get(429, 0) == 0, [(e.path, e.status) for e in after]
    assert 1 <= len([e for e in after if e.path == BOOK_PATH["binance"]]) <= 2
    assert own_sim.used_weight("binance") <= 2400


def test_a_malformed_bulk_row_costs_its_symbol_only(solo, own_sim):
    """HTX's raw batch funding and index answers, parsed row by row outside ccxt's request: a row that is
    not an object leaves its symbol without funding (or index), and every other symbol keeps them."""
    own_sim.market.freeze()
    worker, consumer = solo("htx")
    snapshot(consumer, "htx", "ETH/USDT:USDT")
    first_coin = own_sim.market.listed("htx")[0].base  # the first row of each batch answer
    start = time.time()
    for endpoint in ("swap_batch_funding_rate", "swap_index"):
        own_sim.inject_fault("htx", "bad_row", endpoint=endpoint, seconds=INTERVAL + 1)
    broken = consumer.wait_for(lambda k, b: k == f"futures.htx.{first_coin}USDT" and b["timestamp"] > start * 1000
                               and b["funding_rate"] is None, 3 * INTERVAL, "a snapshot without the bad row")[1]
    assert broken["extra"]["index_price"] is None and broken["ticker"]["bid"] is not None
    other = "SOL" if first_coin != "SOL" else "ETH"
    same_cycle = consumer.wait_for(lambda k, b: k == f"futures.htx.{other}USDT"
                                   and abs(b["timestamp"] - broken["timestamp"]) < 2000, 2 * INTERVAL,
                                   f"{other} from the same cycle")[1]
    assert same_cycle["funding_rate"] is not None and same_cycle["extra"]["index_price"] is not None
    log = worker.log_text()
    assert "Leaving out a malformed htx funding rates row" in log and "Leaving out a malformed htx index prices row" in log
    assert worker.proc.poll() is None


def test_a_mark_price_failing_for_several_cycles_is_said_once_and_its_recovery_once(solo, own_sim):
    worker, consumer = solo("htx")
    snapshot(consumer, "htx", "SOL/USDT:USDT")
    start = time.time()
    own_sim.inject_fault("htx", "http500", endpoint="mark_price_kline?period=1min&size=1&contract_code=SOL-USDT",
                         seconds=3 * INTERVAL)
    for _ in range(3):  # three cycles without SOL's mark price
        start = snapshot(consumer, "htx", "SOL/USDT:USDT", after=start)["timestamp"] / 1000 + 1
    recovered = consumer.wait_for(lambda k, b: k == "futures.htx.SOLUSDT" and b["mark_price"] is not None
                                  and b["timestamp"] >= start * 1000, 4 * INTERVAL, "SOL with its mark price")[1]
    log = worker.log_text()
    assert log.count("Failed to fetch htx_mark_price of SOL/USDT:USDT") == 1, log
    assert log.count("Fetched htx_mark_price of SOL/USDT:USDT again") == 1
    assert recovered["ticker"]["bid"] is not None and worker.proc.poll() is None


def vhost_connections(rabbit) -> set[str]:
    out = rabbitmqctl("list_connections", "name", "vhost")
    return {line.split("\t")[0] for line in out.splitlines() if line.endswith("\t" + rabbit.vhost)}


def test_a_twenty_second_hold_keeps_the_broker_connection(solo, own_sim, own_rabbit):
    """The IP's clock minute is nearly spent when the worker starts: a bulk call on the main thread waits
    some 20 s for the next minute, four times the heartbeat. The broker must not drop the connection."""
    own_sim.rate_limits = False  # the used weight alone holds the worker (no sliding-window 429 after the minute)
    while not 36 <= time.time() % 60 <= 39:
        time.sleep(0.2)  # waiting for the clock itself: no event to await
    own_sim.spend_weight("binance", 2400 - 46)  # markets (1), tickers (40), book tickers (5): then a hold
    worker, consumer = solo("binance", rabbitmq={"heartbeat_seconds": 5})
    worker.wait_for_log(r"weight used this minute \(other programs included\): requests wait (1\d|2\d)s", 3 * INTERVAL)
    held = vhost_connections(own_rabbit)
    assert len(held) == 2, held  # the worker's and the test's consumer
    resumed = time.time() + 60 - time.time() % 60
    snapshot(consumer, "binance", "BTC/USDT:USDT", after=resumed, timeout=40)
    assert vhost_connections(own_rabbit) == held
    log = worker.log_text()
    assert "Lost the RabbitMQ connection" not in log and "Reconnected" not in log
