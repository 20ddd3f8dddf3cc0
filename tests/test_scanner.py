"""scanner.py as a real process on a vhost of the test's own: the test publishes boards and snapshots the way
the workers do, and checks the JSON API against values computed by hand from what it published."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pika
import pytest

from tests.conftest import ROOT, Process, Rabbit, free_port, rabbitmqctl

DATA_EXCHANGE = "futures_data"
STALE_AFTER = 20  # s
NOTIONALS = [10000, 100000]
FEES = {"gateio": 4.0}  # bybit and binance keep their defaults (5.5, 5)
BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"


# -- the scanner process and its API ------------------------------------------------------------------
class ScannerProcess:
    def __init__(self, tmp: Path, rabbit_config: dict, history_database: Path | None = None, **scanner):
        # The history database the test prepares; by default one in the test's directory that does not exist
        # (never the repository's state/history.sqlite): every realized value null.
        history = {"database": str(history_database or tmp / "history" / "history.sqlite")}
        config = {"rabbitmq": rabbit_config, "exchanges": ["binance", "bybit", "gateio"], "symbols": [BTC],
                  "api_keys_file": None, "logging": {"level": "DEBUG"}, "history": history,
                  "collection": {"interval_seconds": 5, "statistics_interval_seconds": 5},
                  "scanner": {"listen": "127.0.0.1:0", "stale_after_seconds": STALE_AFTER, "notionals": NOTIONALS,
                              "taker_fee_bps": FEES, **scanner}}
        self.config_path = tmp / "scanner.json"
        self.config_path.write_text(json.dumps(config))
        self.process = Process(["scanner.py", "--config", str(self.config_path)], tmp / "scanner.log")
        port = self.process.wait_for_log(r"Serving the page and the API on http://127\.0\.0\.1:(\d+)/", 20).group(1)
        self.url = f"http://127.0.0.1:{port}"

    def wait_consuming(self, start: int = 0) -> int:
        """Await the queue's bindings (messages published before them are not seen); the log offset after."""
        return self.process.wait_for_log(r"Consuming board\.\* and futures\.# from", 20, start).end()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def get_error(self, path: str) -> tuple[int, dict]:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(self.url + path, timeout=5)
        return caught.value.code, json.loads(caught.value.read())

    def await_messages(self, count: int, timeout: float = 10) -> dict:
        """Await the scanner having taken `count` messages in (its status counts them)."""
        return poll(lambda: (s := self.get("/api/status"))["messages_seen"] >= count and s, timeout,
                    f"{count} messages consumed")


def poll(probe, timeout: float, what: str):
    """probe() until it returns something truthy: there is no event to await on an HTTP API."""
    deadline = time.time() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.time() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.1)


class Publisher:
    """Publishes onto the data exchange as the workers do."""

    def __init__(self, rabbit: Rabbit):
        self.user = rabbit.user  # without role users, the one user every worker connects as
        self.connection = pika.BlockingConnection(rabbit.params())
        self.channel = self.connection.channel()
        self.channel.exchange_declare(DATA_EXCHANGE, exchange_type="topic", durable=True)
        self.channel.confirm_delivery()
        self.count = 0

    def publish(self, key: str, body) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.channel.basic_publish(DATA_EXCHANGE, key, raw,
                                   pika.BasicProperties(content_type="application/json", user_id=self.user))
        self.count += 1

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def scanner(tmp_path, own_rabbit):
    process = ScannerProcess(tmp_path, own_rabbit.config(DATA_EXCHANGE))
    process.wait_consuming()
    yield process
    process.process.kill()


@pytest.fixture
def publisher(own_rabbit):
    p = Publisher(own_rabbit)
    yield p
    p.close()


# -- what the workers would publish ------------------------------------------------------------------
def now_ms() -> int:
    return int(time.time() * 1000)


def row(symbol: str, bid: float, ask: float, rate: float, hours: float, volume: float, **extra) -> dict:
    return {"symbol": symbol, "bid": bid, "ask": ask, "last": (bid + ask) / 2, "volume_24h": volume,
            "mark_price": extra.get("mark"), "index_price": extra.get("index"), "funding_rate": rate,
            "next_funding_time": extra.get("next", now_ms() + 3_600_000), "funding_interval_hours": hours,
            "contract_size": extra.get("contract_size", 1.0), "open_interest": extra.get("oi")}


def board(exchange: str, timestamp: int, rows: list[dict]) -> dict:
    return {"exchange": exchange, "timestamp": timestamp, "markets": rows}


def snapshot(exchange: str, symbol: str, timestamp: int, bid: float, ask: float, rate: float, hours: float,
             bids: list, asks: list, mark: float | None = None, index: float | None = None,
             volume: float = 1000.0) -> dict:
    return {"exchange": exchange, "symbol": symbol, "timestamp": timestamp,
            "ticker": {"bid": bid, "ask": ask, "last": (bid + ask) / 2, "volume_24h": volume},
            "orderbook": {"bids": bids, "asks": asks, "timestamp": timestamp},
            "funding_rate": rate, "next_funding_time": timestamp + 3_600_000, "mark_price": mark,
            "extra": {"contract_size": 1.0, "index_price": index, "funding_interval_hours": hours}}


def publish_market(publisher: Publisher) -> int:
    """Four exchanges; htx's board is ten minutes old (stale). Returns the number of messages published."""
    t = now_ms()
    publisher.publish("board.binance", board("binance", t - 3000, [
        row(BTC, 100.0, 100.1, 0.0001, 8, 1000.0, mark=100.05, index=100.0),     # APR 0.1095, $100,050 a day
        row(ETH, 10.0, 10.01, 0.0001, 8, 50_000.0),                              # APR 0.1095, $500,250
        row(SOL, 5.0, 5.01, 0.0001, 8, 10_000.0)]))
    publisher.publish("board.bybit", board("bybit", t - 3000, [
        row(BTC, 100.4, 100.6, 0.00005, 1, 2000.0, index=100.5),                 # APR 0.438 (1 h interval)
        row(ETH, 10.0, 10.01, 0.0003, 8, 1000.0)]))                              # APR 0.3285, $10,005
    publisher.publish("board.gateio", board("gateio", t - 3000, [
        row(BTC, 99.9, 100.0, -0.0002, 4, 500.0, contract_size=0.0001)]))        # APR -0.438, $49,975
    publisher.publish("board.htx", board("htx", t - 600_000, [                   # stale: never paired
        row(BTC, 100.0, 100.1, 0.01, 8, 1000.0), row(SOL, 5.0, 5.01, -0.01, 8, 10_000.0)]))
    # Deep books for BTC on the pair's legs, newer than the boards (bybit's bid and mark come from here).
    publisher.publish("futures.gateio.BTCUSDT", snapshot(
        "gateio", BTC, t - 1000, 99.9, 100.0, -0.0002, 4, bids=[[99.9, 10.0]], asks=[[100.0, 50.0], [101.0, 100.0]],
        volume=500.0))
    publisher.publish("futures.bybit.BTCUSDT", snapshot(
        "bybit", BTC, t - 1000, 100.5, 100.6, 0.00005, 1, bids=[[100.5, 200.0]], asks=[[100.6, 10.0]],
        mark=100.55, index=None, volume=2000.0))
    return 6


# -- the expected values, by hand ---------------------------------------------------------------------
def expected_btc_row() -> dict:
    apr_long, apr_short = -0.0002 * 6 * 365, 0.00005 * 24 * 365   # gateio (4 h), bybit (1 h)
    spread = apr_short - apr_long
    mid = (100.5 + 100.0) / 2                                        # bybit's bid (snapshot), gateio's ask
    fees = 4.0 + 5.5
    long_small = 10_000 / (50 + 5000 / 101)                          # 5000 at 100, 5000 at 101
    cost_small = (long_small - 100.5) / mid * 1e4 + fees
    long_large, short_large = 15_100 / 150, 100.5                    # the whole books: 5000 + 10100 for 150 base
    cost_large = (long_large - short_large) / mid * 1e4 + fees
    return {
        "spread": spread, "price_spread_bps": (100.5 - 100.0) / mid * 1e4,
        "long_apr": apr_long, "short_apr": apr_short,
        "short_basis_bps": (100.55 - 100.5) / 100.5 * 1e4,          # mark from the snapshot, index from the board
        "10000": {"long_vwap": long_small, "short_vwap": 100.5, "long_fill": 1.0, "short_fill": 1.0,
                  "entry_cost_bps": cost_small, "break_even_hours": max(cost_small, 0) / (spread * 1e4 / 8760)},
        "100000": {"long_vwap": long_large, "short_vwap": short_large, "long_fill": 15_100 / 100_000,
                   "short_fill": 20_100 / 100_000, "entry_cost_bps": cost_large,
                   "break_even_hours": max(cost_large, 0) / (spread * 1e4 / 8760)},
    }


def pairs(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(asset, long exchange, short exchange) per row."""
    return [(r["symbol"], r["long"]["exchange"], r["short"]["exchange"]) for r in rows]


# -- tests ---------------------------------------------------------------------------------------------
def test_opportunities_equal_the_values_computed_by_hand(scanner, publisher):
    scanner.await_messages(publish_market(publisher))
    data = scanner.get("/api/opportunities")
    assert abs(data["timestamp"] - now_ms()) < 5000
    # BTC: spread 0.876 > ETH 0.219; SOL is only fresh on binance (htx is stale): no row.
    assert pairs(data["rows"]) == [("BTC", "gateio", "bybit"), ("ETH", "binance", "bybit")]
    btc, want = data["rows"][0], expected_btc_row()
    assert btc["funding_apr_spread"] == pytest.approx(want["spread"])
    assert btc["price_spread_bps"] == pytest.approx(want["price_spread_bps"])
    assert btc["long"]["funding_apr"] == pytest.approx(want["long_apr"])
    assert btc["short"]["funding_apr"] == pytest.approx(want["short_apr"])
    assert btc["short"]["funding_interval_hours"] == 1.0 and btc["long"]["funding_interval_hours"] == 4.0
    assert btc["short"]["bid"] == 100.5 and btc["short"]["mark_price"] == 100.55 and btc["short"]["index_price"] == 100.5
    assert btc["short"]["basis_bps"] == pytest.approx(want["short_basis_bps"])
    assert 0.5 < btc["short"]["age_seconds"] < 10  # the snapshot's age (1 s when published)
    assert set(btc["at_size"]) == {"10000", "100000"}
    for notional in ("10000", "100000"):
        for key, value in want[notional].items():
            assert btc["at_size"][notional][key] == pytest.approx(value), (notional, key)
    eth = data["rows"][1]
    assert eth["funding_apr_spread"] == pytest.approx(0.0003 * 3 * 365 - 0.0001 * 3 * 365)
    assert eth["at_size"] is None  # no deep books for ETH


def test_filters(scanner, publisher):
    scanner.await_messages(publish_market(publisher))
    rows = scanner.get("/api/opportunities?exchanges=binance,bybit")["rows"]
    assert pairs(rows) == [("BTC", "binance", "bybit"), ("ETH", "binance", "bybit")]
    assert rows[0]["funding_apr_spread"] == pytest.approx(0.00005 * 24 * 365 - 0.0001 * 3 * 365)
    assert rows[0]["at_size"] is None  # binance has no deep book here
    # gateio's BTC trades $49,975 a day, bybit's ETH $10,005: both fall below $50,000
    assert pairs(scanner.get("/api/opportunities?min_volume_usd=50000")["rows"]) == [("BTC", "binance", "bybit")]
    assert pairs(scanner.get("/api/opportunities?symbol=eth")["rows"]) == [("ETH", "binance", "bybit")]
    assert pairs(scanner.get("/api/opportunities?symbol=BTC/USDT:USDT&exchanges=gateio,binance")["rows"]) == \
        [("BTC", "gateio", "binance")]


def publish_usdc_market(publisher: Publisher) -> int:
    """Hyperliquid's BTC/USDC:USDC (its board has only impact prices; the snapshot's book gives the top), Binance's
    BTC/USDT:USDT and USDC/USDT:USDT (mid 0.9990). Returns the number of messages published."""
    t = now_ms()
    publisher.publish("board.binance", board("binance", t - 2000, [
        row(BTC, 99_940.0, 99_950.0, 0.0001, 8, 10.0),                          # APR 0.1095: the long
        row("USDC/USDT:USDT", 0.9989, 0.9991, 0.00001, 8, 1e6)]))
    hyper = {**row("BTC/USDC:USDC", 0.0, 0.0, 0.00002, 1, 10.0), "bid": None, "ask": None,  # APR 0.1752: the short
             "impact_bid": 100_080.0, "impact_ask": 100_130.0}
    publisher.publish("board.hyperliquid", board("hyperliquid", t - 2000, [hyper]))
    publisher.publish("futures.binance.BTCUSDT", snapshot(
        "binance", BTC, t - 1000, 99_940.0, 99_950.0, 0.0001, 8, bids=[[99_940.0, 1.0]], asks=[[99_950.0, 1.0]]))
    publisher.publish("futures.hyperliquid.BTCUSDC", snapshot(
        "hyperliquid", "BTC/USDC:USDC", t - 1000, 100_100.0, 100_110.0, 0.00002, 1,
        bids=[[100_100.0, 0.05], [100_000.0, 1.0]], asks=[[100_110.0, 1.0]]))
    return 4


def test_a_hyperliquid_usdc_leg_pairs_with_a_binance_usdt_leg_at_the_usdc_usdt_rate(scanner, publisher):
    scanner.await_messages(publish_usdc_market(publisher))
    (btc,) = [r for r in scanner.get("/api/opportunities")["rows"] if r["symbol"] == "BTC"]
    assert (btc["long"]["exchange"], btc["long"]["symbol"], btc["long"]["quote"]) == ("binance", BTC, "USDT")
    assert (btc["short"]["exchange"], btc["short"]["symbol"], btc["short"]["quote"]) == \
        ("hyperliquid", "BTC/USDC:USDC", "USDC")
    assert btc["funding_apr_spread"] == pytest.approx(0.00002 * 24 * 365 - 0.0001 * 3 * 365)
    # The short's bid from its snapshot, in USDT: 100,100 x 0.9990 = 99,999.9; the long's ask 99,950.
    rate = (0.9989 + 0.9991) / 2
    mid = (100_100 * rate + 99_950) / 2
    assert btc["usdc_usdt_rate"] == pytest.approx(rate)
    assert btc["price_spread_bps"] == pytest.approx((100_100 * rate - 99_950) / mid * 1e4)  # 4.99 bps
    short_vwap = 10_000 / (0.05 + (10_000 - 0.05 * 100_100 * rate) / (100_000 * rate))
    assert btc["at_size"]["10000"]["short_vwap"] == pytest.approx(short_vwap)
    assert btc["at_size"]["10000"]["entry_cost_bps"] == pytest.approx((99_950 - short_vwap) / mid * 1e4 + 5 + 4.5)
    for asked in ("BTC", "btcusdc", "BTCUSDT", "BTC/USDC:USDC"):
        detail = scanner.get(f"/api/symbol/{asked}")
        assert detail["symbol"] == "BTC" and detail["usdc_usdt_rate"] == pytest.approx(rate)
        legs = {(leg["exchange"], leg["symbol"], leg["quote"]): leg for leg in detail["legs"]}
        assert set(legs) == {("binance", BTC, "USDT"), ("hyperliquid", "BTC/USDC:USDC", "USDC")}
        hyper = legs[("hyperliquid", "BTC/USDC:USDC", "USDC")]
        assert (hyper["bid"], hyper["impact_bid"], hyper["impact_ask"]) == (100_100.0, 100_080.0, 100_130.0)
        assert pairs(detail["pairs"]) == [("BTC", "binance", "hyperliquid")]
    usdc = scanner.get("/api/symbol/USDCUSDT")
    assert [(leg["exchange"], leg["symbol"]) for leg in usdc["legs"]] == [("binance", "USDC/USDT:USDT")]
    assert usdc["pairs"] == []  # listed on one exchange only


def test_bad_query_values_are_400_naming_the_parameter(scanner):
    for path, named in [("/api/opportunities?min_volume_usd=lots", "min_volume_usd"),
                        ("/api/opportunities?exchanges=Bin%20ance", "exchanges"),
                        ("/api/opportunities?symbol=%3Cb%3E", "symbol"),
                        ("/api/opportunities?limit=3", "limit"),
                        ("/api/symbol/BTC-USDT", "symbol")]:
        status, body = scanner.get_error(path)
        assert status == 400 and named in body["error"], (path, body)
    status, body = scanner.get_error("/api/symbol/XRPUSDT")
    assert status == 404 and "XRP" in body["error"]


def test_symbol_detail_shows_every_exchange_stale_ones_flagged(scanner, publisher):
    scanner.await_messages(publish_market(publisher))
    detail = scanner.get("/api/symbol/BTCUSDT")
    legs = {leg["exchange"]: leg for leg in detail["legs"]}
    assert set(legs) == {"binance", "bybit", "gateio", "htx"}
    assert [legs[ex]["stale"] for ex in ("binance", "bybit", "gateio", "htx")] == [False, False, False, True]
    assert legs["htx"]["age_seconds"] > 590
    assert legs["gateio"]["book"] == {"bid_levels": 1, "ask_levels": 2, "age_seconds": pytest.approx(1, abs=5)}
    assert legs["gateio"]["at_size"]["10000"]["buy_vwap"] == pytest.approx(10_000 / (50 + 5000 / 101))
    assert legs["gateio"]["taker_fee_bps"] == 4.0 and legs["bybit"]["taker_fee_bps"] == 5.5
    assert legs["binance"]["at_size"] is None and legs["binance"]["book"] is None
    assert pairs(detail["pairs"]) == [("BTC", "gateio", "bybit")]
    sol = scanner.get("/api/symbol/solusdt")
    assert {leg["exchange"]: leg["stale"] for leg in sol["legs"]} == {"binance": False, "htx": True}
    assert sol["pairs"] == []


def test_newer_values_replace_older_and_old_ones_never_do(scanner, publisher):
    sent = publish_market(publisher)
    t = now_ms()
    publisher.publish("board.bybit", board("bybit", t, [row(BTC, 100.7, 100.8, 0.0001, 1, 2000.0)]))
    publisher.publish("board.binance", board("binance", t - 60_000, [row(BTC, 1.0, 2.0, 0.5, 8, 1.0)]))  # late
    scanner.await_messages(sent + 2)
    btc = scanner.get("/api/opportunities?symbol=BTCUSDT")["rows"][0]
    assert btc["short"]["exchange"] == "bybit" and btc["short"]["bid"] == 100.7       # the newer board
    assert btc["short"]["funding_apr"] == pytest.approx(0.0001 * 24 * 365)
    assert btc["short"]["mark_price"] == 100.55  # the board has none: still the snapshot's
    binance = [leg for leg in scanner.get("/api/symbol/BTCUSDT")["legs"] if leg["exchange"] == "binance"][0]
    assert binance["bid"] == 100.0  # the late board, older than the one held, changed nothing


def test_malformed_messages_are_dropped_and_the_scanner_carries_on(scanner, publisher):
    t = now_ms()
    bad = [
        ("board.bybit", b"{not json"),
        ("board.bybit", b"\xff\xfe\x00garbage"),
        ("board.bybit", b"[" * 200_000 + b"]" * 200_000),                                  # nesting
        ("board.bybit", board("bybit", t, [{**row(BTC, 1, 2, 0.1, 8, 1), "bid": "1.0"}])),  # a string price
        ("board.bybit", board("bybit", t, [{**row(BTC, 1, 2, 0.1, 8, 1), "funding_interval_hours": -8}])),
        ("board.bybit", board("binance", t, [])),                                         # key and body disagree
        ("board.bybit", board("bybit", t + 3_600_000, [row(BTC, 1, 2, 0.1, 8, 1)])),      # from the future
        ("board.bybit", [1, 2, 3]),
        ("futures.bybit.BTCUSDT", {"exchange": "bybit", "symbol": BTC}),                  # fields missing
        ("futures.bybit.ETHUSDT", snapshot("bybit", BTC, t, 1, 2, 0.1, 8, [], [])),       # wrong key
        ("futures.bybit.BTCUSDT", b'{"exchange": "bybit", "timestamp": 1e400}'),
    ]
    for key, body in bad:
        publisher.publish(key, body)
    publisher.publish("board.bybit", board("bybit", t, [row(ETH, 10.0, 10.01, 0.001, 8, 1000.0)]))
    publisher.publish("board.binance", board("binance", t, [row(ETH, 10.0, 10.01, 0.0001, 8, 1000.0)]))
    status = scanner.await_messages(len(bad) + 2)
    assert status["messages_dropped"] == len(bad)
    assert scanner.process.proc.poll() is None
    assert pairs(scanner.get("/api/opportunities")["rows"]) == [("ETH", "binance", "bybit")]
    log = scanner.process.log_text()
    assert "Dropped a malformed board message" in log and "Dropped a malformed futures message" in log
    # Rate-limited: one warning per kind every 10 s, not one per message; never the content.
    assert log.count("Dropped a malformed") <= 2 and "garbage" not in log and "not json" not in log
    assert "Traceback" not in log


def test_sigterm_exits_0_within_seconds(scanner, publisher):
    scanner.await_messages(publish_market(publisher))
    started = time.monotonic()
    assert scanner.process.terminate(10) == 0
    assert time.monotonic() - started < 5
    assert "Stopped after 6 messages (0 dropped" in scanner.process.log_text()


def test_reconnects_after_losing_the_broker(scanner, publisher, own_rabbit):
    scanner.await_messages(publish_market(publisher))
    log_offset = len(scanner.process.log_text())
    close_connections(own_rabbit.vhost, "futures_scan")
    scanner.process.wait_for_log(r"Lost the RabbitMQ connection", 20, log_offset)
    scanner.wait_consuming(log_offset)  # a new exclusive queue, bound again
    t = now_ms()
    publisher.publish("board.binance", board("binance", t, [row(ETH, 10.0, 10.01, -0.001, 8, 50_000.0)]))
    scanner.await_messages(7)
    eth = scanner.get("/api/opportunities?symbol=ETH")["rows"][0]
    assert eth["long"]["exchange"] == "binance" and eth["long"]["funding_rate"] == -0.001
    assert scanner.get("/api/status")["broker_connected"] is True


def test_broker_down_the_status_says_so_and_sigterm_still_exits_0(tmp_path, own_rabbit):
    unreachable = {**own_rabbit.config(DATA_EXCHANGE), "port": free_port()}
    process = ScannerProcess(tmp_path, unreachable)
    try:
        process.process.wait_for_log(r"Cannot connect to RabbitMQ", 20)
        status = process.get("/api/status")
        assert status["broker_connected"] is False and status["data_stale"] is True
        assert status["messages_seen"] == 0 and status["last_message_time"] is None
        assert process.get("/api/opportunities")["rows"] == []
        started = time.monotonic()
        assert process.process.terminate(10) == 0
        assert time.monotonic() - started < 8
    finally:
        process.process.kill()


def test_a_bad_scanner_section_stops_before_connecting(tmp_path, own_rabbit):
    config = {"rabbitmq": own_rabbit.config(), "exchanges": ["bybit"], "symbols": [BTC], "api_keys_file": None,
              "scanner": {"notionals": [0]}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "scanner.py", "--config", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "scanner.notionals.0" in result.stderr and "greater than 0" in result.stderr


def test_a_port_in_use_is_an_error_naming_the_address(tmp_path, own_rabbit, scanner):
    busy = scanner.url.removeprefix("http://")
    config = {"rabbitmq": own_rabbit.config(), "exchanges": ["bybit"], "symbols": [BTC], "api_keys_file": None,
              "scanner": {"listen": busy}}
    path = tmp_path / "busy.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "scanner.py", "--config", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and f"Cannot serve the page on {busy}" in result.stdout


def test_terminal_view_prints_the_table(scanner, publisher):
    scanner.await_messages(publish_market(publisher))
    result = subprocess.run([sys.executable, "scripts/scan.py", "--url", scanner.url, "--once"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, env={**os.environ, "COLUMNS": "220"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    btc = next(line for line in lines if "│ BTC " in line)
    assert "gateio" in btc and "bybit" in btc and "87.60%" in btc  # the APR spread, 0.876
    assert any("│ ETH " in line and "21.90%" in line for line in lines)
    failed = subprocess.run([sys.executable, "scripts/scan.py", "--url", f"http://127.0.0.1:{free_port()}", "--once"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert failed.returncode == 2 and "cannot reach the scanner" in failed.stderr


# -- helpers -----------------------------------------------------------------------------------------

def close_connections(vhost: str, name: str) -> None:
    """Close, on the broker's side, the connections of one vhost (as a broker restart would)."""
    listing = rabbitmqctl("list_connections", "pid", "vhost", "client_properties")
    pids = [line.split("\t")[0] for line in listing.splitlines()
            if f"\t{vhost}\t" in line and f'{{"connection_name","{name}"}}' in line]
    assert pids, f"no connection named {name} on {vhost}:\n{listing}"
    for pid in pids:
        rabbitmqctl("close_connection", pid, "test: broker went away")


def test_its_queues_are_exclusive_and_bounded_in_messages_and_bytes(scanner, own_rabbit):
    """Boards and snapshots each through a queue of their own (tests/test_scanner_bounds.py fills one)."""
    listing = rabbitmqctl("list_queues", "-p", own_rabbit.vhost, "name", "exclusive", "arguments")
    queues = [line for line in listing.splitlines() if line.startswith("amq.gen-")]
    assert len(queues) == 2, listing
    for queue in queues:
        assert "\ttrue\t" in queue
        assert '{"x-overflow","drop-head"}' in queue and '"x-max-length"' in queue and '"x-max-length-bytes"' in queue
    bindings = rabbitmqctl("list_bindings", "-p", own_rabbit.vhost, "source_name", "routing_key")
    assert f"{DATA_EXCHANGE}\tboard.*" in bindings and f"{DATA_EXCHANGE}\tfutures.#" in bindings
