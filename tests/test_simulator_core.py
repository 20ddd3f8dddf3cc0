"""The simulator's core (server.py): faults, rate limits and controls, through real ccxt clients."""
import time

import ccxt
import pytest
from requests.adapters import HTTPAdapter

from common.exchanges import redirect_urls
from tests.simulator import bybit
from tests.simulator.server import Budget, LogEntry

BTC = "BTC/USDT:USDT"


@pytest.fixture
def bybit_client(sim, make_client):
    c = make_client("bybit")
    c.load_markets()
    c.enableRateLimit = False  # these tests drive the exchange's own limit, not ccxt's pacing
    sim.reset()
    return c


def test_rate_limited_request_does_not_take_a_count_limited_fault(sim, bybit_client, monkeypatch):
    """One request per endpoint per minute: the second tickers request is answered 429 by the rate limit and
    must leave the fault for the next request that the exchange serves (the order book, another endpoint)."""
    monkeypatch.setattr(bybit, "BUDGETS", [Budget(1, 60.0, per_endpoint=True)])
    bybit_client.fetch_tickers()
    sim.inject_fault("bybit", "http500", count=1)
    with pytest.raises(ccxt.RateLimitExceeded):
        bybit_client.fetch_tickers()
    with pytest.raises(ccxt.ExchangeNotAvailable):  # the fault, still there
        bybit_client.fetch_order_book(BTC, 5)
    assert len(bybit_client.public_get_v5_market_time()["result"]["timeNano"]) > 0  # the fault is spent
    assert [(e.path, e.status) for e in sim.requests("bybit")] == [
        ("/v5/market/tickers", 200), ("/v5/market/tickers", 429), ("/v5/market/orderbook", 500),
        ("/v5/market/time", 200)]


def test_rate_limited_request_keeps_a_drop_fields_fault(sim, bybit_client, monkeypatch):
    monkeypatch.setattr(bybit, "BUDGETS", [Budget(1, 60.0, per_endpoint=True)])
    sim.market.freeze()
    bybit_client.fetch_order_book(BTC, 5)
    sim.inject_fault("bybit", "drop_fields", count=1, fields=("bid",))
    with pytest.raises(ccxt.RateLimitExceeded):
        bybit_client.fetch_order_book(BTC, 5)
    ticker = bybit_client.fetch_ticker(BTC)  # another endpoint: served, and the fault drops its bid
    assert ticker["bid"] is None and ticker["ask"] == sim.truth("bybit", BTC)["ask"]
    assert sim.statuses("bybit") == {200: 2, 429: 1}


def test_reset_restores_rate_limits(sim):
    sim.rate_limits = False
    sim.reset()
    assert sim.rate_limits is True


# -- budgets per client address (docs/reference.md, "Past one IP": each proxy is one IP with the whole budget) --
class SourceAddressAdapter(HTTPAdapter):
    """Connections that leave from `address`: a second loopback IP stands for a proxy's."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False, **kwargs):
        super().init_poolmanager(connections, maxsize, block, source_address=(self.address, 0), **kwargs)


def binance_from(sim, address: str):
    c = ccxt.binanceusdm({"timeout": 3000, "enableRateLimit": False})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url("binance"))
    c.session.mount("http://", SourceAddressAdapter(address))
    return c


def books_until_refused(client) -> int:
    """Order books of weight 20 until Binance refuses one; how many it served."""
    served = 0
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        while served < 200:
            client.fetch_order_book(BTC, 1000)
            served += 1
    return served


@pytest.fixture
def fixed_minute(sim, monkeypatch):
    """The rate-limit clock held 10 s into a clock minute, so no minute turns during the test."""
    now = time.time() // 60 * 60 + 10
    monkeypatch.setattr(sim, "clock", lambda: now)


def test_each_client_address_has_the_whole_budget(sim, fixed_minute):
    sim.market.freeze()
    first, second = binance_from(sim, "127.0.0.1"), binance_from(sim, "127.0.0.2")
    for c in (first, second):
        c.load_markets()                                                     # weight 1
    assert books_until_refused(first) == 119                                 # (2400 - 1) // 20
    assert books_until_refused(second) == 119                                # not a book less
    for c in (first, second):
        assert c.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "2381"
    for address in ("127.0.0.1", "127.0.0.2"):
        assert sim.statuses("binance", client=address) == {200: 120, 429: 1}
        assert sim.peak_share("binance", client=address) == 2381 / 2400
        assert {e.client for e in sim.requests("binance", client=address)} == {address}
    assert sim.statuses("binance") == {200: 240, 429: 2}


def test_a_ban_keeps_to_the_address_that_earned_it(sim, fixed_minute):
    first, second = binance_from(sim, "127.0.0.1"), binance_from(sim, "127.0.0.2")
    sim.spend_weight("binance", 2400, client="127.0.0.1")
    for _ in range(3):                                                       # three 429s ignored...
        with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
            first.fapiPublicGetTime()
    with pytest.raises(ccxt.DDoSProtection, match=" 418 "):                  # ...ban the first address
        first.fapiPublicGetTime()
    assert second.fapiPublicGetTime()["serverTime"] > 0                      # the second is served
    assert sim.statuses("binance", client="127.0.0.1") == {429: 3, 418: 1}
    assert sim.statuses("binance", client="127.0.0.2") == {200: 1}
    assert (sim.peak_share("binance", "127.0.0.1"), sim.peak_share("binance", "127.0.0.2")) == (1.0, 1 / 2400)


def test_log_entries_default_to_the_local_address():
    entry = LogEntry(0.0, "bybit", "GET", "/v5/market/time", "", 200)
    assert entry.client == "127.0.0.1"


def test_a_request_through_the_simulator_as_proxy_counts_for_the_proxy(sim, fixed_minute):
    """A worker's proxy (docs/reference.md, "Past one IP"), played by the simulator itself: ccxt's httpProxy with a
    user name per proxy; each proxy is one more IP with the whole budget."""
    direct = binance_from(sim, "127.0.0.1")
    proxied = binance_from(sim, "127.0.0.1")
    proxied.httpProxy = f"http://proxy-a:secret@127.0.0.1:{sim.port}"
    sim.spend_weight("binance", 2400)                                        # the direct IP's budget is gone
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        direct.fapiPublicGetTime()
    assert proxied.fapiPublicGetTime()["serverTime"] > 0
    assert proxied.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert [(e.path, e.status) for e in sim.requests("binance", client="proxy-a")] == [("/fapi/v1/time", 200)]
    assert sim.statuses("binance", client="127.0.0.1") == {429: 1}
