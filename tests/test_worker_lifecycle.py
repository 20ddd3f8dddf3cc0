"""A worker's life as an operator sees it: symbol sets from the controller, restarts, stop signals at any
moment, secrets, and an exchange outside the table. Each test runs workers of its own, on a vhost and a
simulator of its own."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pika
import pytest

from common.broker import STATS_EXCHANGE, SYMBOLS_EXCHANGE, declare_symbols_queue
from common.symbols import SymbolSet, routing_key
from tests.conftest import Consumer, write_config

INTERVAL = 5
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]


@pytest.fixture
def solo(own_sim, own_rabbit, tmp_path, start_worker):
    """start(exchange, ...) -> (worker process, consumer of its snapshots), on this test's own vhost."""
    consumers = []

    def start(exchange: str, symbols=SYMBOLS, name: str | None = None, entry: dict | None = None, **overrides):
        """`name`: a config name outside VENUES, pointed at the exchange's dialect; `entry`: more settings
        of the exchange's config entry."""
        config = write_config(tmp_path / f"{name or exchange}.json", own_rabbit, own_sim, exchanges=[exchange],
                              symbols=symbols, **overrides)
        raw = json.loads(config.read_text())
        raw["exchanges"] = [{"name": name or exchange, "api_url": own_sim.api_url(exchange), **(entry or {})}]
        config.write_text(json.dumps(raw))
        consumers.append(Consumer(own_rabbit, "futures_data", "futures.#"))
        return start_worker(name or exchange, config), consumers[-1]
    yield start
    for consumer in consumers:
        consumer.close()


def snapshot(consumer: Consumer, exchange: str, symbol: str, after: float = 0.0, timeout: float = 3 * INTERVAL):
    key = routing_key(exchange, symbol)
    return consumer.wait_for(lambda k, b: k == key and b["timestamp"] >= after * 1000, timeout,
                             f"snapshot {key}")[1]


def publish_symbol_set(rabbit, symbol_set: SymbolSet, exchanges=("bybit",)):
    """As the controller does: every worker's queue declared, so that a worker not started yet gets it too."""
    conn = pika.BlockingConnection(rabbit.params())
    channel = conn.channel()
    for exchange in exchanges:
        declare_symbols_queue(channel, exchange)
    channel.basic_publish(SYMBOLS_EXCHANGE, "", symbol_set.model_dump_json().encode(),
                          pika.BasicProperties(user_id=rabbit.user))  # without role users: the controller's user
    conn.close()


# -- the symbol set from the controller ------------------------------------------------------------
def test_symbol_set_broadcast_changes_collection_without_restart(solo, own_rabbit):
    worker, consumer = solo("bybit")
    snapshot(consumer, "bybit", "ETH/USDT:USDT")
    publish_symbol_set(own_rabbit, SymbolSet(version=7, symbols=["BTC/USDT:USDT", "XRP/USDT:USDT"]))
    changed = time.time()
    first = snapshot(consumer, "bybit", "XRP/USDT:USDT", after=changed, timeout=2 * INTERVAL + 2)
    settled = first["timestamp"] / 1000 + 1  # the cycle after the one that first had XRP
    for symbol in ("BTC/USDT:USDT", "XRP/USDT:USDT"):  # the whole next cycle: books arrive in any order
        snapshot(consumer, "bybit", symbol, after=settled)
    assert "futures.bybit.ETHUSDT" not in {k for k, _ in consumer.since(settled)}
    assert worker.proc.poll() is None


def test_restarted_worker_collects_the_current_set_not_the_config(solo, own_rabbit):
    publish_symbol_set(own_rabbit, SymbolSet(version=7, symbols=["BTC/USDT:USDT", "XRP/USDT:USDT"]))
    worker, consumer = solo("bybit")  # the config says BTC, ETH, SOL
    first = snapshot(consumer, "bybit", "XRP/USDT:USDT")
    worker.kill()
    restarted = time.time()
    worker, _ = solo("bybit")
    snapshot(consumer, "bybit", "XRP/USDT:USDT", after=restarted)
    keys = {k for k, _ in consumer.since(first["timestamp"] / 1000 - INTERVAL)}
    assert keys <= {"futures.bybit.BTCUSDT", "futures.bybit.XRPUSDT"}, keys
    assert "Symbol set v7" in worker.log_text()


def test_empty_symbol_set_stops_collection_but_not_the_worker(solo, own_rabbit):
    worker, consumer = solo("bybit")
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    try:
        snapshot(consumer, "bybit", "BTC/USDT:USDT")
        publish_symbol_set(own_rabbit, SymbolSet(version=2, symbols=[]))
        # A report with the new version ends the cycle it arrived in; the cycles after it collect nothing.
        _, report = stats.wait_for(lambda k, b: b["symbols_version"] == 2, 3 * INTERVAL, "report of v2")
        emptied = time.time()
        stats.wait_for(lambda k, b: b["cycles"] >= report["cycles"] + 2, 3 * INTERVAL, "two empty cycles")
        assert consumer.since(emptied) == []
        assert "Symbol set v2: (empty)" in worker.log_text() and worker.proc.poll() is None
        publish_symbol_set(own_rabbit, SymbolSet(version=3, symbols=["ETH/USDT:USDT"]))
        assert snapshot(consumer, "bybit", "ETH/USDT:USDT", after=emptied)["symbol"] == "ETH/USDT:USDT"
    finally:
        stats.close()


# -- stopping --------------------------------------------------------------------------------------
def test_sigterm_mid_retry_exits_zero_with_final_statistics(solo, own_sim):
    worker, consumer = solo("htx")
    snapshot(consumer, "htx", "BTC/USDT:USDT")
    offset = len(worker.log_text())
    own_sim.inject_fault("htx", "hang", endpoint="/linear-swap-ex/market/depth", seconds=60, hang_seconds=60)
    worker.wait_for_log(r"Failed to fetch orderbook .*\(retry 1/3\)", 20, offset)
    asked = time.monotonic()
    assert worker.terminate(timeout=10) == 0
    assert time.monotonic() - asked < 4
    log = worker.log_text()[offset:]
    assert "Received SIGTERM, stopping" in log and "Final statistics" in log
    assert "HTX: " in log.split("Final statistics")[1]


def test_sigint_exits_zero_with_final_statistics(solo):
    worker, consumer = solo("gateio")
    snapshot(consumer, "gateio", "BTC/USDT:USDT")
    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(10) == 0
    log = worker.log_text()
    assert "Received SIGINT, stopping" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    final = log.split("Final statistics")[1]
    assert "Gate.io: " in final and "[gateio] Stopped" in final


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (bit 15 of SigCgt in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_sigterm_in_the_first_moments_exits_zero(solo):
    """supervisorctl stop right after a start: the worker is still importing ccxt, and stops cleanly."""
    worker, _ = solo("bybit")
    deadline = time.monotonic() + 10
    while not catches_sigterm(worker.proc.pid):  # no event to await: the kernel's view of the process
        assert worker.proc.poll() is None and time.monotonic() < deadline, worker.log_text()
        time.sleep(0.005)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(10) == 0, worker.log_text()
    assert "Traceback" not in worker.log_text()


# -- secrets ---------------------------------------------------------------------------------------
def test_api_keys_and_broker_password_never_logged(solo, own_rabbit, tmp_path):
    keys = {"bybit": {"apiKey": "KEY-visible-nowhere-123", "secret": "SECRET-visible-nowhere-456"}}
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    worker, consumer = solo("bybit", api_keys_file=str(tmp_path / "keys.json"))
    snapshot(consumer, "bybit", "BTC/USDT:USDT")
    assert worker.terminate() == 0
    log = worker.log_text()
    assert "Published message to futures.bybit.BTCUSDT" in log
    for secret in (*keys["bybit"].values(), own_rabbit.password):
        assert secret not in log


@pytest.mark.parametrize("content, problem", [
    ('{"bybit": "KEY-in-a-string-123"}', "the API keys of 'bybit' must be an object"),
    ('{"bybit": {"apiKey": 12345678, "secret": "SECRET-visible-nowhere-456"}}', "apiKey must be strings"),
    ('["KEY-in-a-list-123"]', "API keys must be an object by exchange name"),
    ('{"bybit": {"apiKey": "KEY-cut-short-123"', "cannot read API keys: JSONDecodeError"),
])
def test_a_malformed_keys_file_is_a_configuration_error(solo, tmp_path, content, problem):
    """Exit 2 with the problem named, no traceback, and nothing of the file's contents shown."""
    (tmp_path / "keys.json").write_text(content)
    worker, _ = solo("bybit", api_keys_file=str(tmp_path / "keys.json"))
    assert worker.proc.wait(30) == 2, worker.log_text()
    log = worker.log_text()
    assert "Configuration error: " in log and problem in log, log
    assert "Traceback" not in log
    for secret in ("KEY-in-a-string-123", "SECRET-visible-nowhere-456", "KEY-in-a-list-123", "KEY-cut-short-123"):
        assert secret not in log


# -- an exchange outside the table -----------------------------------------------------------------
def test_a_sixth_exchange_runs_through_the_generic_row(solo, own_sim):
    """Any ccxt id with swap markets: here `binanceusdm` by its ccxt id (not the table's `binance`), so
    ccxt's own throttle, fetch_tickers and fetch_funding_rates serve it; bid/ask come from the book."""
    own_sim.market.freeze()
    worker, consumer = solo("binance", name="binanceusdm")
    got = snapshot(consumer, "binanceusdm", "BTC/USDT:USDT")
    truth = own_sim.truth("binance", "BTC/USDT:USDT")
    assert got["exchange"] == "binanceusdm"
    assert (got["ticker"]["bid"], got["ticker"]["ask"]) == (truth["bids"][0][0], truth["asks"][0][0])
    assert got["ticker"]["last"] == truth["last"]
    assert got["funding_rate"] == pytest.approx(truth["funding_rate"])
    assert got["mark_price"] == truth["mark_price"]
    assert own_sim.statuses().get(429, 0) == 0
