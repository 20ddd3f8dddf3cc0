"""The bybit dialect of the exchange simulator, checked through the real ccxt `bybit` class."""
import dataclasses
import time
from collections import Counter
from urllib.parse import parse_qsl

import ccxt
import pytest

from common.exchanges import VENUES, SharedThrottle, redirect_urls
from tests.conftest import history_client

EX = "bybit"
VENUE = VENUES[EX]
# The throttle counts a request when it leaves, the simulator when it arrives: on a loaded test machine a
# request can take longer than the venue's 100 ms guard to arrive, so throttled tests hold each one longer.
LOADED_MACHINE_GUARD = 0.3
UNLISTED = "PEPE/USDT:USDT"  # every coin of market.py is listed on Bybit (WIF and TAO too); PEPE is nowhere


def listed_symbols(sim):
    return [f"{c.base}/USDT:USDT" for c in sim.market.listed(EX)]


def queries(sim, path):
    return [dict(parse_qsl(e.query)) for e in sim.requests(EX, path=path)]


@pytest.fixture
def client(sim, make_client):
    """A client as the worker builds it (VENUES row), markets loaded, request log cleared afterwards."""
    c = make_client(EX)
    c.load_markets()
    sim.reset()
    return c


# -- load_markets ---------------------------------------------------------------------------------------------
def check_swaps(sim, markets):
    for coin in sim.market.listed(EX):
        m = markets[f"{coin.base}/USDT:USDT"]
        assert (m["type"], m["swap"], m["linear"], m["active"], m["settle"]) == ("swap", True, True, True, "USDT")
        assert m["id"] == f"{coin.base}USDT"
        assert m["contractSize"] == float(sim.market.contract_size(EX, coin)) == 1.0
        assert m["precision"]["price"] == float(coin.price_tick)
        assert m["precision"]["amount"] == float(coin.amount_step)
        assert m["info"]["fundingInterval"] == coin.funding_hours.get(EX, 8) * 60
    assert UNLISTED not in markets


def test_load_markets_ccxt_default_options(sim):
    c = ccxt.bybit({"timeout": 3000})  # ccxt's own defaults: every market type
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    markets = c.load_markets()
    check_swaps(sim, markets)
    assert {"WIF/USDT:USDT", "TAO/USDT:USDT"} <= set(markets)
    # the other categories answer small, valid lists
    assert markets["BTC/USDT"]["spot"] and markets["BTC/USD:BTC"]["inverse"]
    assert markets["BTC/USDC:USDC"]["swap"] and markets["BTC/USDT:USDT-300329"]["future"]
    assert any(m["option"] for m in markets.values())
    # spot 1 + linear 2 (Trading, PreLaunch) + inverse 2 + option 6 (BTC ETH SOL XRP MNT DOGE) = 11
    assert sim.counts(EX) == {EX: {"/v5/market/instruments-info": 11}}
    cats = Counter(q["category"] for q in queries(sim, "instruments-info"))
    assert cats == {"spot": 1, "linear": 2, "inverse": 2, "option": 6}


def test_load_markets_venue_options(sim, make_client):
    c = make_client(EX)
    markets = c.load_markets()
    check_swaps(sim, markets)
    assert {"WIF/USDT:USDT", "TAO/USDT:USDT"} <= set(markets)
    assert "BTC/USDT" not in markets and "BTC/USD:BTC" not in markets
    assert all(m["linear"] for m in markets.values())
    assert sim.counts(EX) == {EX: {"/v5/market/instruments-info": 2}}
    assert sorted(q.get("status", "") for q in queries(sim, "instruments-info")) == ["", "PreLaunch"]
    assert all(q["category"] == "linear" and q["limit"] == "1000" for q in queries(sim, "instruments-info"))


def test_instruments_pagination(sim, client):
    rows, cursor = [], None
    while True:
        params = {"category": "linear", "limit": 3, **({"cursor": cursor} if cursor else {})}
        result = client.public_get_v5_market_instruments_info(params)["result"]
        rows += result["list"]
        cursor = result["nextPageCursor"]
        if not cursor:
            break
    assert {r["symbol"] for r in rows} >= {f"{c.base}USDT" for c in sim.market.listed(EX)}
    assert len(rows) == len({r["symbol"] for r in rows})


# -- tickers --------------------------------------------------------------------------------------------------
def check_ticker(t, truth, market):
    assert t["bid"] == truth["bid"] and t["ask"] == truth["ask"] and t["last"] == truth["last"]
    assert t["baseVolume"] * market["contractSize"] == pytest.approx(truth["volume_24h"])
    assert t["markPrice"] == truth["mark_price"] and t["indexPrice"] == truth["index_price"]


def test_fetch_tickers_bulk(sim, client):
    sim.market.freeze()
    tickers = client.fetch_tickers()
    assert sim.counts(EX) == {EX: {"/v5/market/tickers": 1}}
    assert queries(sim, "tickers") == [{"category": "linear"}]
    for symbol in listed_symbols(sim):
        check_ticker(tickers[symbol], sim.truth(EX, symbol), client.market(symbol))
    assert UNLISTED not in tickers

    wanted = ["BTC/USDT:USDT", "SOL/USDT:USDT", "WIF/USDT:USDT"]
    subset = client.fetch_tickers(wanted)
    assert sorted(subset) == sorted(wanted)
    assert sim.counts(EX)[EX]["/v5/market/tickers"] == 2  # still one request, whatever the symbol count


def test_fetch_ticker_single(sim, client):
    sim.market.freeze()
    t = client.fetch_ticker("TAO/USDT:USDT")
    check_ticker(t, sim.truth(EX, "TAO/USDT:USDT"), client.market("TAO/USDT:USDT"))
    assert queries(sim, "tickers") == [{"symbol": "TAOUSDT", "category": "linear"}]


# -- funding --------------------------------------------------------------------------------------------------
def check_funding(f, truth):
    assert f["fundingRate"] == truth["funding_rate"]
    assert f["fundingTimestamp"] == truth["next_funding_time"]  # bybit: next funding time is fundingTimestamp
    assert f["nextFundingTimestamp"] is None
    assert f["markPrice"] == truth["mark_price"] and f["indexPrice"] == truth["index_price"]
    assert f["interval"] == f"{truth['funding_interval_hours']}h"


def test_fetch_funding_rates_bulk_and_single(sim, client):
    sim.market.freeze()
    rates = client.fetch_funding_rates()
    for symbol in listed_symbols(sim):
        check_funding(rates[symbol], sim.truth(EX, symbol))
    assert {rates[s]["interval"] for s in ("SOL/USDT:USDT", "WIF/USDT:USDT", "BTC/USDT:USDT")} == {"4h", "1h", "8h"}
    one = client.fetch_funding_rate("WIF/USDT:USDT")
    check_funding(one, sim.truth(EX, "WIF/USDT:USDT"))
    assert queries(sim, "tickers") == [{"category": "linear"}, {"symbol": "WIFUSDT", "category": "linear"}]


def test_funding_parsed_from_the_tickers_request(sim, client):
    """The worker's plan: one tickers request per cycle gives prices and funding (ccxt's own parser)."""
    sim.market.freeze()
    tickers = client.fetch_tickers(listed_symbols(sim))
    for symbol in listed_symbols(sim):
        f = client.parse_funding_rate(tickers[symbol]["info"], client.market(symbol))
        check_funding(f, sim.truth(EX, symbol))
    assert sim.counts(EX) == {EX: {"/v5/market/tickers": 1}}


# -- order book -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol", ["BTC/USDT:USDT", "DOGE/USDT:USDT"])
def test_order_book_max_depth(sim, client, symbol):
    sim.market.freeze()
    assert VENUE.book_limit == 1000
    book = client.fetch_order_book(symbol, VENUE.book_limit)
    truth = sim.truth(EX, symbol, depth=VENUE.book_limit)
    assert len(book["bids"]) == len(book["asks"]) == 1000
    assert book["timestamp"] == truth["timestamp"]
    assert book["bids"][0] == [truth["bid"], pytest.approx(truth["bids"][0][1])]
    assert book["asks"][0][0] == truth["ask"]
    size = client.market(symbol)["contractSize"]
    for side in ("bids", "asks"):
        assert [[p, a * size] for p, a in book[side]] == [[pytest.approx(p), pytest.approx(a)] for p, a in truth[side]]
    assert queries(sim, "orderbook") == [{"symbol": symbol.split("/")[0] + "USDT", "category": "linear",
                                          "limit": "1000"}]


def test_order_book_smaller_limit_and_bounds(sim, client):
    sim.market.freeze()
    book = client.fetch_order_book("ETH/USDT:USDT", 50)
    truth = sim.truth(EX, "ETH/USDT:USDT", depth=50)
    assert len(book["bids"]) == len(book["asks"]) == 50
    assert book["asks"] == [[pytest.approx(p), pytest.approx(a)] for p, a in truth["asks"]]
    assert len(client.fetch_order_book("ETH/USDT:USDT")["bids"]) == 25  # ccxt's default limit for linear
    with pytest.raises(ccxt.BadRequest, match="limit"):
        client.fetch_order_book("ETH/USDT:USDT", 1001)


# -- unknown symbols ------------------------------------------------------------------------------------------
def test_unknown_symbol(sim, client):
    with pytest.raises(ccxt.BadSymbol):  # ccxt refuses before sending anything
        client.fetch_order_book(UNLISTED)
    assert sim.counts(EX) == {}
    # the exchange's own answer: HTTP 200, retCode 10001 "Not supported symbols" -> BadSymbol
    with pytest.raises(ccxt.BadSymbol, match="Not supported symbols"):
        client.public_get_v5_market_tickers({"category": "linear", "symbol": "PEPEUSDT"})
    with pytest.raises(ccxt.BadSymbol, match="Not supported symbols"):
        client.public_get_v5_market_orderbook({"category": "linear", "symbol": "PEPEUSDT", "limit": 5})
    assert sim.statuses(EX) == {200: 2}


# -- rate limits ----------------------------------------------------------------------------------------------
def test_burst_without_throttle_gets_429(sim, client):
    client.enableRateLimit = False
    # Every request inside one 5 s window, however long 700 requests take on a loaded machine.
    now = time.time()
    sim.clock = lambda: now
    ok = 0
    with pytest.raises(ccxt.RateLimitExceeded, match="10006"):
        for _ in range(700):
            client.fetch_order_book("BTC/USDT:USDT", 1)
            ok += 1
    assert ok == 600  # exactly one budget window (600 / 5 s) went through
    assert sim.statuses(EX) == {200: 600, 429: 1}
    # the wait until the oldest of the 600 leaves the 5 s window, rounded up
    assert client.last_response_headers["Retry-After"] in {"1", "2", "3", "4", "5", "6"}


def test_throttled_burst_stays_in_budget(sim, make_client):
    c = make_client(EX, throttle=SharedThrottle(dataclasses.replace(VENUE.budget, guard=LOADED_MACHINE_GUARD)))
    c.load_markets()
    n = 660  # more than one 5 s window of 600: all answered only if the throttle spread them out
    for _ in range(n):
        c.fetch_order_book("ETH/USDT:USDT", 1)
    assert sim.statuses(EX) == {200: n + 2}
    times = [e.time for e in sim.requests(EX)]
    assert max(sum(1 for u in times[i:] if u < t + 5.0) for i, t in enumerate(times)) <= 600


# -- faults ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, error", [
    ("http500", ccxt.ExchangeNotAvailable),  # gateway 5xx, no JSON: ccxt maps the HTTP status
    ("http429", ccxt.RateLimitExceeded),     # retCode 10006 "Too many visits!"
    ("http418", ccxt.RateLimitExceeded),     # retCode 10018 (IP limit); Bybit has no 418 of its own
    ("reset", ccxt.NetworkError),
])
def test_fault_raises(sim, client, kind, error):
    sim.market.freeze()
    sim.inject_fault(EX, kind, count=1, retry_after=7)
    with pytest.raises(error) as info:
        client.fetch_tickers()
    assert type(info.value) is error  # the most specific class, not a subclass
    if kind == "http429":
        assert client.last_response_headers["Retry-After"] == "7"
    assert client.fetch_tickers()["BTC/USDT:USDT"]["bid"] == sim.truth(EX, "BTC/USDT:USDT")["bid"]  # consumed


def test_fault_hang_times_out(sim, make_client):
    c = make_client(EX, timeout_ms=500)
    c.load_markets()
    sim.inject_fault(EX, "hang", count=1, hang_seconds=2)
    with pytest.raises(ccxt.RequestTimeout):  # ccxt's 500 ms timeout, not the 2 s hang ending
        c.fetch_order_book("BTC/USDT:USDT", 5)
    assert len(c.fetch_order_book("BTC/USDT:USDT", 5)["bids"]) == 5


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_fault_unparseable_body(sim, client, kind):
    """ccxt's bybit methods read a non-JSON 200 as an empty result: no exception for tickers and books,
    NullResponse (a BadResponse) where ccxt looks a symbol up. The worker must treat empty results as failures."""
    sim.inject_fault(EX, kind, count=3)
    assert client.fetch_tickers() == {}
    book = client.fetch_order_book("BTC/USDT:USDT", 5)
    assert book["bids"] == [] and book["asks"] == [] and book["timestamp"] is None
    with pytest.raises(ccxt.NullResponse) as info:
        client.fetch_funding_rate("BTC/USDT:USDT")
    assert isinstance(info.value, ccxt.BadResponse)
    assert len(client.fetch_order_book("BTC/USDT:USDT", 5)["bids"]) == 5


def test_fault_drop_bid_ask(sim, client):
    sim.market.freeze()
    sim.inject_fault(EX, "drop_fields", count=1, fields=("bid", "ask"))
    t = client.fetch_ticker("BTC/USDT:USDT")
    assert t["bid"] is None and t["ask"] is None and t["bidVolume"] is None
    assert t["info"]["bid1Price"] == "" and t["info"]["ask1Price"] == ""  # Bybit writes a missing value as ""
    assert t["last"] == sim.truth(EX, "BTC/USDT:USDT")["last"]
    assert client.fetch_ticker("BTC/USDT:USDT")["bid"] == sim.truth(EX, "BTC/USDT:USDT")["bid"]


@pytest.mark.parametrize("fields", [("funding_rate", "next_funding_time"), ("mark_price", "index_price"), ("last",)])
def test_fault_drop_fields_funding_and_prices(sim, client, fields):
    sim.market.freeze()
    truth = sim.truth(EX, "SOL/USDT:USDT")
    sim.inject_fault(EX, "drop_fields", count=1, fields=fields)
    f = client.fetch_funding_rate("SOL/USDT:USDT")
    ticker_fields = {"funding_rate": "fundingRate", "next_funding_time": "fundingTimestamp",
                     "mark_price": "markPrice", "index_price": "indexPrice"}
    for name, key in ticker_fields.items():
        assert f[key] == (None if name in fields else truth[name])
    if "last" in fields:
        assert f["info"]["lastPrice"] == ""
        sim.inject_fault(EX, "drop_fields", count=1, fields=fields)
        t = client.fetch_ticker("SOL/USDT:USDT")
        assert t["last"] is None and t["bid"] == truth["bid"]
    assert client.fetch_funding_rate("SOL/USDT:USDT")["fundingRate"] == truth["funding_rate"]


# -- settled funding: what Bybit alone does (tests/test_simulator_settled.py: what every exchange does) ---------
@pytest.fixture
def throttled(sim):
    return history_client(sim, EX)


def test_history_is_newest_first_at_most_200(sim, throttled):
    truth = [s["funding_time"] for s in sim.settlements(EX, "WIF/USDT:USDT")]
    assert len(truth) > 200
    request = {"category": "linear", "symbol": "WIFUSDT"}
    page = throttled.publicGetV5MarketFundingHistory({**request, "limit": 200})["result"]["list"]
    assert [row["fundingRateTimestamp"] for row in page] == [str(t) for t in truth[::-1][:200]]
    assert isinstance(page[0]["fundingRate"], str)
    assert len(throttled.publicGetV5MarketFundingHistory(request)["result"]["list"]) == 200   # the default
    bounded = throttled.publicGetV5MarketFundingHistory({**request, "startTime": truth[-5], "endTime": truth[-2]})
    assert [int(row["fundingRateTimestamp"]) for row in bounded["result"]["list"]] == truth[-2:-6:-1]  # inclusive
    with pytest.raises(ccxt.BadRequest, match="10001"):                # more than 200 is refused
        throttled.publicGetV5MarketFundingHistory({**request, "limit": 201})
    with pytest.raises(ccxt.BadRequest, match="10001"):                # startTime alone is an error
        throttled.publicGetV5MarketFundingHistory({**request, "startTime": truth[0]})
