"""The simulator's core (server.py): faults, rate limits and controls, through real ccxt clients."""
import ccxt
import pytest

from tests.simulator import bybit
from tests.simulator.server import Budget

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
