"""The worker as a user sees it: seven real worker processes, the real broker, the simulator.

One fleet of workers runs for the whole module (starting them costs seconds and a cycle is 5 s), on a vhost
of its own, with the simulator's clock frozen so that every snapshot can be compared with the exact values
behind it. Tests that stop a worker or change its symbol set run workers of their own (tests/test_worker_*.py):
every fleet test leaves the fleet as it found it, so that the tests here run alone and in any order.
"""
from __future__ import annotations

import re
import time

import pytest

from common.broker import STATS_EXCHANGE
from common.symbols import routing_key
from tests.conftest import EXCHANGES, Consumer, Process, symbol_on, write_config

BASES = ["BTC", "ETH", "SOL", "DOGE", "WIF"]
# One symbol set for every worker, as the controller keeps it: Hyperliquid's perpetuals settle in USDC.
SYMBOLS = [f"{base}/USDT:USDT" for base in BASES] + [f"{base}/USDC:USDC" for base in BASES]
# The USDC perpetuals the simulator lists beside the USDT ones (ccxt loads them with the linear markets).
USDC_PERPETUALS = {"bybit": ["BTC/USDC:USDC"], "bitget": ["BTC/USDC:USDC"]}
INTERVAL = 5
# OKX's books-full answers up to 5000 levels: the simulated book has 1000. Hyperliquid gives 20 a side.
MAX_DEPTH = {"binance": 1000, "bybit": 1000, "bitget": 150, "htx": 150, "gateio": 300, "okx": 1000, "hyperliquid": 20}
# Each exchange's calls per cycle as docs/reference.md ("What each exchange costs") states them from the
# exchanges' docs: (bulk calls, calls per watched symbol). Written out rather than read from common.exchanges,
# so that a wrong row there shows here.
CALLS_PER_CYCLE = {
    "binance": (["/fapi/v1/ticker/24hr", "/fapi/v1/ticker/bookTicker", "/fapi/v1/premiumIndex"], ["/fapi/v1/depth"]),
    "bybit": (["/v5/market/tickers"], ["/v5/market/orderbook"]),
    "bitget": (["/api/v2/mix/market/tickers", "/api/v2/mix/market/current-fund-rate"],
               ["/api/v2/mix/market/merge-depth"]),
    "htx": (["/linear-swap-ex/market/detail/batch_merged", "/linear-swap-api/v1/swap_batch_funding_rate",
             "/linear-swap-api/v1/swap_index", "/linear-swap-api/v1/swap_open_interest"],
            ["/linear-swap-ex/market/depth", "/index/market/history/linear_swap_mark_price_kline"]),
    "gateio": (["/api/v4/futures/usdt/tickers", "/api/v4/futures/usdt/contracts"], ["/api/v4/futures/usdt/order_book"]),
    "okx": (["/api/v5/market/tickers", "/api/v5/public/funding-rate", "/api/v5/public/mark-price",
             "/api/v5/market/index-tickers", "/api/v5/public/open-interest"], ["/api/v5/market/books-full"]),
    "hyperliquid": (["/info?type=metaAndAssetCtxs"], ["/info?type=l2Book"]),
}
TICKERS_PATH = {"binance": "/fapi/v1/ticker/24hr", "bybit": "/v5/market/tickers", "bitget": "/api/v2/mix/market/tickers",
                "htx": "/linear-swap-ex/market/detail/batch_merged", "gateio": "/api/v4/futures/usdt/tickers",
                "okx": "/api/v5/market/tickers", "hyperliquid": "/info?type=metaAndAssetCtxs"}


def listed(sim, exchange):
    """The exchange's own perpetual (USDT, or USDC on Hyperliquid) of every base in BASES it lists."""
    names = {symbol_on(exchange, c.base) for c in sim.market.listed(exchange)}
    return [s for s in SYMBOLS if s in names]


def watched(sim, exchange):
    """Every symbol of the set the exchange lists: its own perpetuals and the USDC ones beside them."""
    return listed(sim, exchange) + [s for s in USDC_PERPETUALS.get(exchange, []) if s in SYMBOLS]


def request_kind(entry) -> str:
    """A logged request as CALLS_PER_CYCLE names it: the path, with the body's type where one path serves all."""
    kind = dict(part.split("=", 1) for part in entry.query.split("&") if "=" in part).get("type")
    return f"{entry.path}?type={kind}" if entry.path == "/info" else entry.path


class Fleet:
    def __init__(self, sim, rabbit, tmp, consumer: Consumer, stats: Consumer):
        self.sim, self.rabbit, self.tmp = sim, rabbit, tmp
        self.consumer, self.stats = consumer, stats
        self.config = write_config(tmp / "config.json", rabbit, sim, symbols=SYMBOLS)
        self.workers = {ex: self.start(ex) for ex in EXCHANGES}

    def start(self, exchange: str) -> Process:
        return Process(["worker.py", exchange, "--config", str(self.config)], self.tmp / f"{exchange}.log")

    def snapshot(self, exchange: str, symbol: str, after: float = 0.0, timeout: float = 3 * INTERVAL,
                 where=lambda body: True) -> dict:
        """The exchange's snapshot of `symbol`, its own perpetual of that base on Hyperliquid (BTC/USDC:USDC)."""
        symbol = symbol_on(exchange, symbol.split("/")[0])
        routing = routing_key(exchange, symbol)
        return self.consumer.wait_for(
            lambda key, body: key == routing and body["timestamp"] >= after * 1000 and where(body),
            timeout, f"snapshot {routing}")[1]


@pytest.fixture(scope="module")
def fleet(simulator, rabbit, tmp_path_factory):
    simulator.reset()
    simulator.market.freeze()
    vhost = rabbit.isolated()
    consumer = Consumer(vhost, "futures_data", "futures.#")
    stats = Consumer(vhost, STATS_EXCHANGE, "stats.#")
    fleet = Fleet(simulator, vhost, tmp_path_factory.mktemp("fleet"), consumer, stats)
    yield fleet
    for worker in fleet.workers.values():
        worker.kill()
    consumer.close()
    stats.close()
    vhost.close()
    simulator.reset()


def assert_matches_truth(snapshot: dict, truth: dict, depth: int):
    approx = lambda v: pytest.approx(v, rel=1e-9)  # noqa: E731
    ticker, book, extra = snapshot["ticker"], snapshot["orderbook"], snapshot["extra"]
    # Hyperliquid's bulk answer has no last trade: ccxt takes its mid (midPx). Its bid/ask come from the book.
    last = (truth["bid"] + truth["ask"]) / 2 if truth["exchange"] == "hyperliquid" else truth["last"]
    assert (ticker["bid"], ticker["ask"]) == (truth["bid"], truth["ask"])
    assert ticker["last"] == approx(last)
    assert ticker["volume_24h"] == approx(truth["volume_24h"])
    assert len(book["bids"]) == len(book["asks"]) == depth
    assert book["bids"] == [[p, approx(a)] for p, a in truth["bids"][:depth]]
    assert book["asks"] == [[p, approx(a)] for p, a in truth["asks"][:depth]]
    assert snapshot["funding_rate"] == approx(truth["funding_rate"])
    assert snapshot["next_funding_time"] == truth["next_funding_time"]
    # HTX has no bulk mark price: a request per symbol beside the book brings it.
    assert snapshot["mark_price"] == truth["mark_price"]
    assert extra["index_price"] == truth["index_price"]
    assert extra["contract_size"] == truth["contract_size"]
    assert extra["funding_interval_hours"] == truth["funding_interval_hours"]


# -- values, cadence, cost -------------------------------------------------------------------------
@pytest.mark.parametrize("exchange", EXCHANGES)
def test_snapshots_equal_simulator_truth(fleet, exchange):
    tick = fleet.sim.market.tick
    for symbol in listed(fleet.sim, exchange):
        snapshot = fleet.snapshot(exchange, symbol)
        assert snapshot["exchange"] == exchange and snapshot["symbol"] == symbol
        assert_matches_truth(snapshot, fleet.sim.truth(exchange, symbol, tick=tick), MAX_DEPTH[exchange])


def test_snapshots_track_the_market_every_interval(fleet):
    """Step the simulated market: the next cycle of every exchange publishes the new values."""
    tick = fleet.sim.market.step()
    stepped_at = time.time()
    for exchange in EXCHANGES:
        truth = fleet.sim.truth(exchange, symbol_on(exchange, "BTC"), tick=tick)
        first = fleet.snapshot(exchange, "BTC/USDT:USDT", after=stepped_at + 0.5,
                               where=lambda b, t=truth: b["ticker"]["bid"] == t["bid"])
        second = fleet.snapshot(exchange, "BTC/USDT:USDT", after=first["timestamp"] / 1000 + 1)
        assert_matches_truth(second, truth, MAX_DEPTH[exchange])
        # Cycles start at a fixed rate; a symbol's place within its cycle moves by up to a book spacing
        # or two, because books arrive concurrently (binance: 0.5 s per book).
        assert INTERVAL - 1.2 <= (second["timestamp"] - first["timestamp"]) / 1000 <= INTERVAL + 1.5


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_requests_per_cycle_are_the_documented_bulk_calls_plus_the_per_symbol_calls(fleet, exchange):
    """One whole cycle in the simulator's log: from one tickers request to the next (a cycle starts with its
    tickers, and the next starts only once every book of this one is in)."""
    start = time.time()
    deadline = start + 4 * INTERVAL
    while len(tickers := [e for e in fleet.sim.requests(exchange, since=start)
                          if request_kind(e) == TICKERS_PATH[exchange]]) < 3:
        assert time.time() < deadline, f"fewer than 3 cycles of {exchange} in {4 * INTERVAL}s"
        time.sleep(0.1)  # the simulator's log has no event to await
    cycle = [e for e in fleet.sim.requests(exchange, since=tickers[1].time) if e.time < tickers[2].time]
    bulk, per_symbol = CALLS_PER_CYCLE[exchange]
    assert sorted(request_kind(e) for e in cycle) == sorted(bulk + per_symbol * len(watched(fleet.sim, exchange)))


def test_unlisted_symbol_is_skipped_and_reported(fleet):
    unlisted = {ex: [s for s in SYMBOLS if s not in watched(fleet.sim, ex)] for ex in EXCHANGES}
    assert "WIF/USDT:USDT" in unlisted["htx"] and "WIF/USDT:USDT" not in unlisted["bybit"]
    assert unlisted["hyperliquid"] == [s for s in SYMBOLS if s.endswith(":USDT")]
    for exchange in ("htx", "bitget", "hyperliquid"):
        _, stats = fleet.stats.wait_for(lambda k, b, ex=exchange: k == f"stats.{ex}" and b["cycles"] >= 2, 3 * INTERVAL)
        assert stats["unlisted_symbols"] == unlisted[exchange]
        for symbol in unlisted[exchange]:
            assert not [k for k, _ in fleet.consumer.since(0) if k == routing_key(exchange, symbol)]
            log = fleet.workers[exchange].log_text()
            assert log.count(f"Symbol {symbol} not available on exchange") == 1


def test_no_rate_limit_answers(fleet):
    statuses = fleet.sim.statuses()
    assert statuses.get(429, 0) == 0 and statuses.get(418, 0) == 0, statuses
    assert statuses.get(200, 0) > 50


def test_snapshot_message_format(fleet):
    fleet.snapshot("gateio", "BTC/USDT:USDT")
    _, body, _, props = next(m for m in list(fleet.consumer.messages) if m[0] == "futures.gateio.BTCUSDT")
    assert props.content_type == "application/json" and props.content_encoding == "utf-8"
    assert set(body) == {"exchange", "symbol", "timestamp", "ticker", "orderbook", "funding_rate",
                         "next_funding_time", "mark_price", "extra"}
    assert set(body["ticker"]) == {"bid", "ask", "last", "volume_24h"}


# -- faults ----------------------------------------------------------------------------------------
BTC_BOOK = {"binance": "symbol=BTCUSDT", "bybit": "symbol=BTCUSDT", "bitget": "symbol=BTCUSDT",
            "htx": "depth?type=step0&contract_code=BTC-USDT",  # not the mark price's request for BTC
            "gateio": "order_book?contract=BTC_USDT", "okx": "books-full?instId=BTC-USDT-SWAP",
            "hyperliquid": "/info?type=l2Book&coin=BTC"}


def test_failed_book_requests_are_retried_and_the_symbol_still_published(fleet):
    """Three different faults in a row on one book request: retries 1/3, 2/3, 3/3, then success."""
    plan = {"binance": ["http418", "http429", "empty"], "bybit": ["http500", "reset", "bad_json"],
            "gateio": ["hang", "http500", "reset"], "bitget": ["bad_json", "empty", "http429"],
            "htx": ["reset", "hang", "http500"], "okx": ["http429", "bad_json", "hang"],
            "hyperliquid": ["empty", "http500", "http429"]}
    offsets = {ex: len(w.log_text()) for ex, w in fleet.workers.items()}
    for exchange, kinds in plan.items():
        for kind in kinds:
            fleet.sim.inject_fault(exchange, kind, endpoint=BTC_BOOK[exchange], count=1, hang_seconds=5)
    injected = time.time()
    for exchange, worker in fleet.workers.items():
        btc = re.escape(symbol_on(exchange, "BTC"))
        match = worker.wait_for_log(rf"Failed to fetch orderbook {btc}: .*\(retry 3/3\)", 30, offsets[exchange])
        retries = worker.log_text()[offsets[exchange]:match.end()]
        assert "(retry 1/3)" in retries and "(retry 2/3)" in retries
        fleet.snapshot(exchange, "BTC/USDT:USDT", after=injected, timeout=20)
        assert "giving up" not in worker.log_text()[offsets[exchange]:]
        assert "Failed to fetch orderbook ETH" not in worker.log_text()[offsets[exchange]:]


def test_a_malformed_book_level_costs_its_symbol_only_on_every_exchange(fleet):
    """A level without a size in BTC's book, for two cycles: every worker keeps its process, publishes the
    other symbols every cycle, says why BTC is missing once, and publishes BTC again afterwards."""
    pids = {ex: w.proc.pid for ex, w in fleet.workers.items()}
    offsets = {ex: len(w.log_text()) for ex, w in fleet.workers.items()}
    start = time.time()
    for exchange in EXCHANGES:
        fleet.sim.inject_fault(exchange, "bad_level", endpoint=BTC_BOOK[exchange], seconds=2 * INTERVAL + 1)
    for exchange, worker in fleet.workers.items():
        fleet.snapshot(exchange, "BTC/USDT:USDT", after=start + 2 * INTERVAL + 1.5, timeout=4 * INTERVAL)
        log = worker.log_text()[offsets[exchange]:]
        btc = symbol_on(exchange, "BTC")
        assert log.count(f"Not publishing {btc}: ") == 1, log
        assert f"Publishing {btc} again" in log
        during = [k for k, _ in fleet.consumer.since(start) if k == routing_key(exchange, symbol_on(exchange, "ETH"))]
        assert len(during) >= 2, exchange  # every cycle of the fault window
        assert worker.proc.pid == pids[exchange] and worker.proc.poll() is None


def test_tickers_down_skips_the_cycle_then_recovers(fleet):
    offsets = {ex: len(w.log_text()) for ex, w in fleet.workers.items()}
    for exchange in EXCHANGES:
        fleet.sim.inject_fault(exchange, "http500", endpoint=TICKERS_PATH[exchange], count=4)
    for exchange, worker in fleet.workers.items():
        what = "hyperliquid contexts" if exchange == "hyperliquid" else "tickers"  # its one bulk call
        worker.wait_for_log(rf"Failed to fetch {what}: .*\(giving up after 3 retries\)", 30, offsets[exchange])
        worker.wait_for_log(r"Skipping this cycle: no tickers", 5, offsets[exchange])
    recovered = time.time()
    for exchange in EXCHANGES:
        fleet.snapshot(exchange, "ETH/USDT:USDT", after=recovered, timeout=20)


def test_missing_funding_publishes_nulls_with_a_warning(fleet):
    funding_path = {"binance": "/fapi/v1/premiumIndex", "bybit": "/v5/market/tickers",
                    "bitget": "/api/v2/mix/market/current-fund-rate",
                    "htx": "/linear-swap-api/v1/swap_batch_funding_rate", "gateio": "/api/v4/futures/usdt/contracts",
                    "okx": "/api/v5/public/funding-rate", "hyperliquid": "/info?type=metaAndAssetCtxs"}
    offsets = {ex: len(w.log_text()) for ex, w in fleet.workers.items()}
    start = time.time()
    for exchange in EXCHANGES:
        fleet.sim.inject_fault(exchange, "drop_fields", endpoint=funding_path[exchange], seconds=INTERVAL + 1,
                               fields=("funding_rate", "next_funding_time"))
    for exchange, worker in fleet.workers.items():
        snapshot = fleet.snapshot(exchange, "SOL/USDT:USDT", after=start, where=lambda b: b["funding_rate"] is None)
        if exchange == "hyperliquid":  # every hour on the hour: ccxt states the next one from the clock
            assert snapshot["next_funding_time"] % 3_600_000 == 0
        else:
            assert snapshot["next_funding_time"] is None
        worker.wait_for_log(r"\[WARNING\] \[%s\] Funding rate not available for %s" % (
            exchange, re.escape(symbol_on(exchange, "SOL"))), 5, offsets[exchange])
        fleet.snapshot(exchange, "SOL/USDT:USDT", after=start, where=lambda b: b["funding_rate"] is not None,
                       timeout=4 * INTERVAL)


def test_no_secret_in_any_log(fleet):
    for worker in fleet.workers.values():
        assert fleet.rabbit.password not in worker.log_text()
        assert "[DEBUG]" in worker.log_text()
