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


@pytest.mark.parametrize("name", ["bybit", "bitget", "htx", "gateio"])
def test_venues_that_count_requests_have_no_call_heavier_than_one(name):
    budget = VENUES[name].budget
    assert not budget.ccxt_cost_is_weight and budget.heaviest[1] == 1
