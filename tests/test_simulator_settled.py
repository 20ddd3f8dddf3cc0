"""Settled funding as every exchange's simulator serves it, fetched the worker's way (common/settled.py's
fetch_settled through the real ccxt classes): a 30-day backfill equals the truth in the requests its paging
needs, and a settlement is served once the clock passes it. What one exchange does alone (its page size,
order, time bounds, limits) is tested in its own tests/test_simulator_<exchange>.py."""
import dataclasses
import math
from urllib.parse import parse_qsl

import pytest

from common.exchanges import VENUES
from common.settled import fetch_settled
from tests.conftest import (DAY_MS, EXCHANGES, history_client, pages_needed, settled_pairs, symbol_on,
                            truth_pairs)


def limit(page_size: int) -> dict:
    return {"limit": str(page_size)}


# Each exchange's history endpoint, and what every page's query holds: the page size asked for. Hyperliquid's
# pages run by time, with no size: its every request is POST /info, the body logged as the query, whose type
# names the history.
HISTORY = {
    "binance": ("/fapi/v1/fundingRate", limit),
    "bybit": ("/v5/market/funding/history", limit),
    "bitget": ("/api/v2/mix/market/history-fund-rate", lambda page_size: {"pageSize": str(page_size)}),
    "gateio": ("/api/v4/futures/usdt/funding_rate", limit),
    "htx": ("/v5/market/funding_rate_history", limit),
    "okx": ("/api/v5/public/funding-rate-history", limit),
    "hyperliquid": ("/info", lambda _: {"type": "fundingHistory"}),
}


# page_size None: the venue's. counts: how many settlements the 30 days hold; where the schedule changed, the
# change falls on the 8 h grid, and the count grows with the hour of the day the test runs at.
@pytest.mark.parametrize("exchange, base, page_size, hours, counts", [
    ("binance", "BTC", None, {8.0}, {90}), ("binance", "WIF", None, {4.0}, {180}),
    ("binance", "DOGE", None, {8.0, 4.0}, {126, 127}),   # 8 h -> 4 h 12 days ago
    ("binance", "WIF", 50, {4.0}, {180}),   # pages smaller than 30 days: each next one starts after the newest seen
    ("bybit", "BTC", None, {8.0}, {90}), ("bybit", "SOL", None, {4.0}, {180}), ("bybit", "TAO", None, {4.0}, {180}),
    ("bybit", "WIF", None, {1.0}, {720}),   # four pages of 200
    ("bitget", "BTC", None, {8.0}, {90}), ("bitget", "SOL", None, {4.0}, {180}),   # SOL: two pages of 100
    ("bitget", "SOL", 20, {4.0}, {180}),   # Bitget's default page: ten pages, by number
    ("gateio", "BTC", None, {8.0}, {90}), ("gateio", "SOL", None, {4.0}, {180}), ("gateio", "WIF", None, {4.0}, {180}),
    ("gateio", "SOL", 50, {4.0}, {180}),   # pages smaller than 30 days: each next one ends before the oldest seen
    ("htx", "BTC", None, {8.0}, {90}), ("htx", "DOGE", None, {4.0}, {180}),   # HTX lists no 1 h nor 2 h swap here
    ("okx", "BTC", None, {8.0}, {90}), ("okx", "SOL", None, {4.0}, {180}),
    ("okx", "TAO", None, {1.0}, {48}),   # listed 2 days ago
    ("okx", "DOGE", None, {8.0, 2.0}, range(135, 139)),   # 8 h until 5 days ago, 2 h since
    ("hyperliquid", "BTC", None, {1.0}, {720}),   # two answers: 500 + 220
    ("hyperliquid", "TAO", None, {1.0}, {240}),   # listed 10 days ago
], ids=str)
def test_settled_30_days_equal_the_truth_in_the_pages_they_need(sim, exchange, base, page_size, hours, counts):
    client = history_client(sim, exchange)
    paging = VENUES[exchange].settled
    paging = paging if page_size is None else dataclasses.replace(paging, page_size=page_size)
    symbol, now = symbol_on(exchange, base), sim.market.now_ms()
    since = now - 30 * DAY_MS
    truth = sim.settlements(exchange, symbol, since, now)
    assert {s["interval_hours"] for s in truth[1:]} == hours and len(truth) in counts
    assert settled_pairs(fetch_settled(client, paging, symbol, since, now)) == truth_pairs(truth)
    pages = pages_needed(paging, truth, since)
    path, page_query = HISTORY[exchange]
    assert sim.counts(exchange) == {exchange: {path: pages}} and sim.statuses(exchange) == {200: pages}
    assert all(page_query(paging.page_size).items() <= dict(parse_qsl(e.query)).items()
               for e in sim.requests(exchange))


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_settlement_not_yet_due_is_served_once_the_clock_passes_it(own_sim, exchange):
    """On a simulator of the test's own: a settle_at must not reach the shared one's market."""
    client = history_client(own_sim, exchange)
    symbol, now = symbol_on(exchange, "BTC"), own_sim.market.now_ms() // 1000 * 1000   # Gate counts in seconds
    due = now + 60_000
    own_sim.market.settle_at(exchange, "BTC", due)
    before = fetch_settled(client, VENUES[exchange].settled, symbol, now - DAY_MS, due + 3_600_000)
    assert due not in {e["timestamp"] for e in before}
    assert settled_pairs(before) == truth_pairs(own_sim.settlements(exchange, symbol, now - DAY_MS))
    own_sim.market.step(math.ceil(62 / own_sim.market.tick_seconds))
    after = fetch_settled(client, VENUES[exchange].settled, symbol, now - DAY_MS, due + 3_600_000)
    assert due in {e["timestamp"] for e in after}
    assert settled_pairs(after) == truth_pairs(own_sim.settlements(exchange, symbol, now - DAY_MS))
