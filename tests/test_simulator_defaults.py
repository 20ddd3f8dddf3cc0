"""ccxt's own default load_markets, on each exchange's plain ccxt class, answered in full by the simulator.

A plain client loads every market type and (where the class has it on) currencies: every request it sends
must have a route, so a default client, or a user's script, can point at the simulator unchanged."""
import ccxt
import pytest

from common.exchanges import redirect_urls

PLAIN_CLASSES = {"binance": ccxt.binanceusdm, "bybit": ccxt.bybit, "bitget": ccxt.bitget, "htx": ccxt.htx,
                 "gateio": ccxt.gate}
# Requests ccxt 4.5.90's default load_markets sends, per exchange (path: count).
DEFAULT_REQUESTS = {
    "binance": {"/fapi/v1/exchangeInfo": 1},
    "bybit": {"/v5/market/instruments-info": 11},
    "bitget": {"/api/v2/spot/public/coins": 1, "/api/v2/spot/public/symbols": 1, "/api/v2/margin/currencies": 1,
               "/api/v2/mix/market/contracts": 6},
    "htx": {"/v2/reference/currencies": 1, "/v1/common/symbols": 1, "/linear-swap-api/v1/swap_contract_info": 1,
            "/swap-api/v1/swap_contract_info": 1, "/api/v1/contract_contract_info": 1},
    "gateio": {"/api/v4/spot/currencies": 1, "/api/v4/margin/currency_pairs": 1, "/api/v4/spot/currency_pairs": 1,
               "/api/v4/futures/usdt/contracts": 1, "/api/v4/futures/btc/contracts": 1,
               "/api/v4/delivery/usdt/contracts": 1, "/api/v4/options/underlyings": 1,
               "/api/v4/options/contracts": 1},
}


def plain_client(sim, exchange):
    client = PLAIN_CLASSES[exchange]({"timeout": 3000})
    client.urls["api"] = redirect_urls(client.urls["api"], sim.api_url(exchange))
    return client


@pytest.mark.parametrize("exchange", sorted(PLAIN_CLASSES))
def test_default_load_markets_is_answered_in_full(sim, exchange):
    markets = plain_client(sim, exchange).load_markets()
    assert sim.counts(exchange) == {exchange: DEFAULT_REQUESTS[exchange]}
    assert sim.statuses(exchange) == {200: sum(DEFAULT_REQUESTS[exchange].values())}
    usdt_swaps = {s for s, m in markets.items() if m["swap"] and m["linear"] and m["settle"] == "USDT"}
    assert usdt_swaps == {f"{c.base}/USDT:USDT" for c in sim.market.listed(exchange)}


def test_htx_default_load_markets_parses_currencies(sim):
    client = plain_client(sim, "htx")
    client.load_markets()
    assert {"USDT", "BTC", "ETH"} <= set(client.currencies)
    assert set(client.currencies["USDT"]["networks"]) == {"ERC20", "TRC20"}
    assert client.currencies["USDT"]["active"] is True
