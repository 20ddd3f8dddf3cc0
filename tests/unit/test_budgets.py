"""The heaviest call of each venue, which a rate_share must hold, against the exchanges' documented
weights (Binance, USDⓈ-M futures: GET /fapi/v1/ticker/24hr without a symbol 40, /ticker/bookTicker without
a symbol 5, /premiumIndex without a symbol 10, /depth at 1000 levels 20): what the worker's throttle
charges (ccxt's cost, corrected by RateBudget.weigh) must agree."""
from __future__ import annotations

import pytest

from common.exchanges import VENUES, create_exchange

pytestmark = pytest.mark.unit

BINANCE_DOCUMENTED = {("ticker/24hr", ()): 40, ("ticker/bookTicker", ()): 5, ("premiumIndex", ()): 10,
                      ("depth", (("limit", 1000),)): 20}


def test_binance_charges_the_documented_weights_and_its_heaviest_is_the_24h_tickers():
    client = create_exchange("binance")
    charged = {}
    for (path, params), documented in BINANCE_DOCUMENTED.items():
        _, weight = client.calculate_rate_limiter_cost(["fapiPublic"], "GET", path, dict(params),
                                                        client.api["fapiPublic"]["get"][path])
        charged[path] = weight
        assert weight == documented, path
    what, heaviest = VENUES["binance"].budget.heaviest
    assert heaviest == max(charged.values()) == 40 and "/fapi/v1/ticker/24hr" in what


@pytest.mark.parametrize("name", ["bybit", "bitget", "htx", "gateio", "okx"])
def test_venues_that_count_requests_have_no_call_heavier_than_one(name):
    budget = VENUES[name].budget
    assert not budget.ccxt_cost_is_weight and budget.heaviest[1] == 1


# Hyperliquid's documented /info weights: l2Book 2, every other type (metaAndAssetCtxs among them) 20. ccxt
# 4.5.90 charges the others 10 (cost 10 at 50 ms = 1200 per minute: twice the budget for them).
HYPERLIQUID_DOCUMENTED = {"l2Book": 2, "metaAndAssetCtxs": 20, "meta": 20}


def test_hyperliquid_charges_the_documented_weight_of_each_info_type():
    client = create_exchange("hyperliquid")
    config = client.api["public"]["post"]["info"]
    charged = {kind: client.calculate_rate_limiter_cost("public", "POST", "info", {"type": kind}, config)[1]
               for kind in HYPERLIQUID_DOCUMENTED}
    assert charged == HYPERLIQUID_DOCUMENTED
    what, heaviest = VENUES["hyperliquid"].budget.heaviest
    assert heaviest == 20 and "metaAndAssetCtxs" in what


HOUR_MS = 3_600_000
ON_THE_HOUR = 1_700_000_000_000 // HOUR_MS * HOUR_MS


def funding_history(start: int, end: int | None = None) -> dict:
    """The body ccxt's fetch_funding_rate_history posts (endTime from params['until'])."""
    body = {"type": "fundingHistory", "coin": "BTC", "startTime": start}
    return body if end is None else {**body, "endTime": end}


# Hyperliquid's "Rate limits": fundingHistory weighs 20 plus 1 per 20 items returned, at most 500 items (hourly
# settlements). Charged before sending, by the settlements its [startTime, endTime] window can hold.
@pytest.mark.parametrize("start, end, weight", [
    (ON_THE_HOUR, ON_THE_HOUR, 21),                          # one settlement: a group of 20 begun
    (ON_THE_HOUR + 1, ON_THE_HOUR + HOUR_MS - 1, 20),        # no hour inside: nothing to return
    (ON_THE_HOUR, ON_THE_HOUR + 19 * HOUR_MS, 21),           # 20 settlements
    (ON_THE_HOUR, ON_THE_HOUR + 20 * HOUR_MS, 22),           # 21
    (ON_THE_HOUR - 30 * 24 * HOUR_MS, ON_THE_HOUR, 45),      # 721, of which one answer holds 500
    (ON_THE_HOUR, None, 45),                                 # no end: as many as an answer holds
])
def test_hyperliquid_charges_funding_history_by_the_settlements_its_window_holds(start, end, weight):
    client = create_exchange("hyperliquid")
    config = client.api["public"]["post"]["info"]
    _, charged = client.calculate_rate_limiter_cost("public", "POST", "info", funding_history(start, end), config)
    assert charged == weight


def test_item_weight_applies_to_its_type_only():
    budget = VENUES["hyperliquid"].budget
    window = {"startTime": ON_THE_HOUR, "endTime": ON_THE_HOUR + 100 * HOUR_MS}
    assert budget.weigh("info", {"type": "l2Book", "coin": "BTC", **window}, 1) == 2
    assert budget.weigh("info", {"type": "meta", **window}, 1) == 20


def test_okx_counts_each_endpoint_against_its_own_documented_limit():
    """OKX per IP, per 2 s: books 40, books-full 10, funding-rate 10, mark-price 10, the rest 20."""
    client = create_exchange("okx")
    budget = VENUES["okx"].budget
    limits = {}
    for path in ("market/books", "market/books-full", "public/funding-rate", "public/mark-price", "market/tickers",
                 "market/index-tickers", "public/open-interest", "public/instruments"):
        key, weight = client.calculate_rate_limiter_cost("public", "GET", path, {}, client.api["public"]["get"][path])
        assert weight == 1, path
        limits[path] = budget.limit_of(key)
    assert limits == {"market/books": 40, "market/books-full": 10, "public/funding-rate": 10, "public/mark-price": 10,
                      "market/tickers": 20, "market/index-tickers": 20, "public/open-interest": 20,
                      "public/instruments": 20}
    assert budget.window == 2.0 and budget.per_endpoint
    # A share scales every endpoint's limit, and must leave the smallest one a whole request.
    assert budget.share(0.5).limit_of("public:market/books-full") == 5
    assert budget.share_problem(0.1) is None and "0.1" in budget.share_problem(0.05)
