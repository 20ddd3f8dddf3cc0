"""Past one IP: a Binance (and an OKX) worker sending from the machine's own address and two proxies (Debian's
tinyproxy on 127.0.0.2 and 127.0.0.3, each sending from its own address), against a simulator that keeps the
exchange's budget per client address, as the exchanges do per IP. A proxy is benched only when it cannot be reached, never for
what the exchange answered through it."""
from __future__ import annotations

import re
import time

import pytest

from common.broker import STATS_EXCHANGE
from tests.conftest import Consumer, Process, write_config

INTERVAL = 5
BOOK_PATH = "/fapi/v1/depth"
PROXY_PASSWORD = "s3cret-proxy-pw"


def worker_via_proxies(exchange, own_sim, own_rabbit, tmp_path, tinyproxies):
    proxies = tinyproxies(2)
    symbols = [f"{c.base}/USDT:USDT" for c in own_sim.market.listed(exchange)]
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=[exchange], symbols=symbols,
                          entry={"proxies": [p.url(f"trader:{PROXY_PASSWORD}") for p in proxies]})
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    worker = Process(["worker.py", exchange, "--config", str(config)], tmp_path / f"{exchange}.log")
    return worker, stats, proxies, symbols


@pytest.fixture
def binance(own_sim, own_rabbit, tmp_path, tinyproxies):
    """Eleven symbols at depth 1000 every 5 s: 275 weight a cycle, more than one IP's 200 per 5 s."""
    worker, stats, proxies, symbols = worker_via_proxies("binance", own_sim, own_rabbit, tmp_path, tinyproxies)
    yield worker, stats, proxies, symbols
    worker.kill()
    stats.close()


# Binance: eleven books of weight 20 (275 a cycle against 200 per 5 s per IP). OKX: eleven 1000-level books
# from books-full, whose endpoint allows 10 per 2 s per IP, beside a budget of 20 per 2 s on its other endpoints.
BOOK_PATHS = {"binance": BOOK_PATH, "okx": "/api/v5/market/books-full"}


@pytest.fixture(params=sorted(BOOK_PATHS))
def spread(request, own_sim, own_rabbit, tmp_path, tinyproxies):
    worker, stats, proxies, symbols = worker_via_proxies(request.param, own_sim, own_rabbit, tmp_path, tinyproxies)
    yield request.param, worker, stats, proxies, symbols
    worker.kill()
    stats.close()


def report_after(stats: Consumer, cycles: int, timeout: float = 6 * INTERVAL) -> dict:
    return stats.wait_for(lambda k, b: b["cycles"] >= cycles, timeout, f"cycle {cycles}")[1]


def test_books_spread_over_the_addresses_each_within_its_budget(spread, own_sim):
    exchange, worker, stats, proxies, symbols = spread
    first, third = report_after(stats, 1), report_after(stats, 3)
    # Every symbol, every cycle, in time.
    assert third["totals"]["success"] - first["totals"]["success"] == 2 * len(symbols)
    assert third["totals"]["errors"] == 0 and third["last_cycle_seconds"] < INTERVAL
    clients = {e.client for e in own_sim.requests(exchange, path=BOOK_PATHS[exchange])}
    assert clients == {"127.0.0.1", *(p.address for p in proxies)}
    assert own_sim.statuses(exchange).get(429, 0) == own_sim.statuses(exchange).get(418, 0) == 0
    for client in clients:
        assert 0 < own_sim.peak_share(exchange, client=client) <= 1.0, client
    labels = {"direct", *(p.url() for p in proxies)}
    assert set(third["routes"]) == labels and all(r["requests"] > 0 for r in third["routes"].values())
    assert PROXY_PASSWORD not in worker.log_text()


def test_a_proxy_killed_mid_run_costs_no_symbol_its_cycle(binance, own_sim):
    worker, stats, proxies, symbols = binance
    before = report_after(stats, 2)
    proxies[0].stop()
    killed_at = before["cycles"]
    worker.wait_for_log(rf"Proxy {proxies[0].url()} failed \(\w+\): its books go to the other addresses", 3 * INTERVAL)
    after = report_after(stats, killed_at + 3)
    assert after["totals"]["errors"] == 0
    assert after["totals"]["success"] - before["totals"]["success"] == (after["cycles"] - killed_at) * len(symbols)
    assert after["routes"][proxies[0].url()]["failures"] >= 1
    assert own_sim.statuses("binance").get(429, 0) == 0
    assert worker.proc.poll() is None and PROXY_PASSWORD not in worker.log_text()


@pytest.fixture
def bybit_via_proxies(own_sim, own_rabbit, tmp_path, tinyproxies):
    """Six Bybit symbols sent through two live proxies only (`direct: false`)."""
    proxies = tinyproxies(2)
    symbols = [f"{c.base}/USDT:USDT" for c in own_sim.market.listed("bybit")][:6]
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=["bybit"], symbols=symbols,
                          entry={"proxies": [p.url() for p in proxies], "direct": False, "depth": 50})
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    worker = Process(["worker.py", "bybit", "--config", str(config)], tmp_path / "bybit.log")
    yield worker, stats, proxies, symbols
    worker.kill()
    stats.close()


@pytest.mark.parametrize("fault", ["http500", "hang"])
def test_what_the_exchange_answers_through_a_live_proxy_benches_no_proxy(bybit_via_proxies, own_sim, fault):
    """A 5xx of the exchange, or a timeout after the request left (the exchange may have counted it), is
    the exchange's: retried on the schedule as a retry, never handed to another address as if unseen, and
    both proxies keep their books."""
    worker, stats, proxies, symbols = bybit_via_proxies
    before = report_after(stats, 1)
    since = time.time()
    injected = own_sim.inject_fault("bybit", fault, endpoint="/v5/market/orderbook", count=4, hang_seconds=5)
    worker.wait_for_log(r"Failed to fetch orderbook \S+: \w+.* \(retry 1/3\)", 3 * INTERVAL)
    after = report_after(stats, before["cycles"] + 3, timeout=8 * INTERVAL)
    assert injected.count == 0
    assert not re.search(r"Proxy \S+ failed", worker.log_text())
    for proxy in proxies:
        assert own_sim.requests("bybit", since=since + 2 * INTERVAL, path="/v5/market/orderbook",
                                client=proxy.address), f"{proxy.url()} took no books after the {fault}s"
    assert sum(route["failures"] for route in after["routes"].values()) >= 4
    assert after["totals"]["success"] > before["totals"]["success"]
