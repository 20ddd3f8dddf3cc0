"""The hyperliquid dialect of the exchange simulator, checked through the real ccxt `hyperliquid` class."""
import dataclasses
import http.client
import json
import math
import time
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
import pytest

from common.exchanges import VENUES, SharedThrottle, create_exchange, redirect_urls
from tests.conftest import DAY_MS, backfill, history_client
from tests.simulator import Simulator
from tests.simulator import hyperliquid as dialect
from tests.simulator.server import Budget
from tests.simulator.market import FRESH, NO_VOLUME, symbol_of

EX = "hyperliquid"
UNLISTED = "PEPE/USDC:USDC"   # no coin of market.py is PEPE


def listed_symbols(sim):
    return [symbol_of(EX, c.base) for c in sim.market.listed(EX)]


def info_types(sim) -> Counter:
    """What was asked, by body type: every request is POST /info, logged with its body's fields as a query."""
    return Counter(e.query.split("&")[0] for e in sim.requests(EX))


def quote(sim, symbol):
    return sim.market.quote(EX, symbol.split("/")[0])


def mid(sim, symbol) -> float:
    """The middle of the truth's best bid and ask (in decimals: halving a float sum can miss the last digit)."""
    q = quote(sim, symbol)
    return float((q.bid + q.ask) / 2)


@pytest.fixture
def client(sim, make_client):
    """A client as the worker builds it (VENUES row), markets loaded, the request log cleared afterwards;
    ccxt's own throttle off, so that the simulator's budget is what the tests meet."""
    c = make_client(EX)
    c.load_markets()
    c.enableRateLimit = False
    sim.reset()
    return c


# -- load_markets ---------------------------------------------------------------------------------------------
def hyperliquid_price_precision(mark: float, sz_decimals: int) -> float:
    """Hyperliquid's price rule: at most 5 significant figures and 6 - szDecimals decimals."""
    if mark >= 1:
        decimals = max(0, 5 - len(str(int(mark))))
    else:
        fraction = f"{mark:.12f}".split(".")[1]
        decimals = len(fraction) - len(fraction.lstrip("0")) + 5
    return float(Decimal(1).scaleb(-min(6 - sz_decimals, decimals)))


def check_swaps(sim, markets):
    for i, coin in enumerate(sim.market.listed(EX)):
        m = markets[symbol_of(EX, coin.base)]
        assert (m["type"], m["swap"], m["linear"], m["active"]) == ("swap", True, True, True)
        assert (m["quote"], m["settle"], m["base"]) == ("USDC", "USDC", coin.base)
        assert m["id"] == str(i) and m["baseName"] == coin.base      # ccxt's id is the asset's index
        assert m["contractSize"] == 1.0
        assert m["precision"]["amount"] == float(coin.amount_step)   # 10 ** -szDecimals
        mark = float(quote(sim, m["symbol"]).mark_price)
        assert m["precision"]["price"] == hyperliquid_price_precision(mark, m["info"]["szDecimals"])
        assert m["limits"]["leverage"]["max"] == m["info"]["maxLeverage"]
    assert UNLISTED not in markets


def test_load_markets_venue_options(sim, make_client):
    sim.market.freeze()
    c = make_client(EX)
    markets = c.load_markets()
    check_swaps(sim, markets)
    assert {"WIF/USDC:USDC", "TAO/USDC:USDC"} <= set(markets)
    assert all(m["swap"] for m in markets.values())
    assert info_types(sim) == {"type=metaAndAssetCtxs": 1}
    assert markets["BTC/USDC:USDC"]["precision"]["price"] == 1.0   # 5 significant figures at ~65000


def test_load_markets_ccxt_default_options(sim):
    c = ccxt.hyperliquid({"timeout": 3000})   # ccxt's defaults: spot, swap and builder-deployed (hip3) dexes
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    markets = c.load_markets()
    check_swaps(sim, markets)
    assert markets["PURR/USDC"]["spot"]
    assert info_types(sim) == {"type=spotMeta": 1, "type=spotMetaAndAssetCtxs": 1, "type=metaAndAssetCtxs": 1,
                               "type=perpDexs": 1}   # no builder dex listed: no metaAndAssetCtxs per dex


# -- the bulk answer: metaAndAssetCtxs ------------------------------------------------------------------------
def full_book_fill(levels, notional: float):
    """The average price of `notional` USDC filled against truth levels, walked over the whole book."""
    filled = base = 0.0
    for price, amount in levels:
        take = min(price * amount, notional - filled)
        filled, base = filled + take, base + take / price
        if filled >= notional:
            return notional / base
    return None


def check_impact_prices(sim, symbol):
    """impact_prices() against an independent walk of the truth's whole book (1000 levels)."""
    truth = sim.truth(EX, symbol)
    q = quote(sim, symbol)
    bid, ask = dialect.impact_prices(q)
    notional = float(dialect.impact_notional(q.base))
    tick = float(q.price_tick)
    expected_bid, expected_ask = full_book_fill(truth["bids"], notional), full_book_fill(truth["asks"], notional)
    assert float(bid) == pytest.approx(expected_bid, abs=tick) and float(bid) <= expected_bid + 1e-12
    assert float(ask) == pytest.approx(expected_ask, abs=tick) and float(ask) >= expected_ask - 1e-12
    assert float(bid) <= truth["bid"] and float(ask) >= truth["ask"]
    return float(bid), float(ask)


def check_ticker(sim, t):
    truth, q = sim.truth(EX, t["symbol"]), quote(sim, t["symbol"])
    bid, ask = dialect.impact_prices(q)
    assert (t["bid"], t["ask"]) == (float(bid), float(ask))      # ccxt's bid/ask are the impact prices
    assert t["close"] == t["last"] == mid(sim, t["symbol"]) == float(t["info"]["midPx"])
    assert t["previousClose"] == float(q.open)
    assert t["quoteVolume"] == float(q.quote_volume_24h)
    info = t["info"]
    assert float(info["dayBaseVlm"]) == truth["volume_24h"]
    assert float(info["openInterest"]) == truth["open_interest"]   # base units
    assert float(info["markPx"]) == truth["mark_price"] and float(info["oraclePx"]) == truth["index_price"]
    assert float(info["funding"]) == truth["funding_rate"]
    premium = (max(bid - q.index_price, 0) - max(q.index_price - ask, 0)) / q.index_price
    assert float(info["premium"]) == pytest.approx(float(premium), abs=1e-10)


def test_fetch_tickers_swap(sim, client):
    sim.market.freeze()
    tickers = client.fetch_tickers(params={"type": "swap"})
    assert info_types(sim) == {"type=metaAndAssetCtxs": 1}
    assert sorted(tickers) == sorted(listed_symbols(sim))
    for symbol in listed_symbols(sim):
        check_ticker(sim, tickers[symbol])
        check_impact_prices(sim, symbol)
    assert dialect.impact_notional("BTC") == 20000 and dialect.impact_notional("DOGE") == 6000
    # the impact notional reaches past the top level: the impact bid is not the best bid
    assert any(tickers[s]["bid"] < sim.truth(EX, s)["bid"] for s in listed_symbols(sim))


def test_fetch_tickers_without_type_posts_once_with_venue_options(sim, client):
    sim.market.freeze()
    tickers = client.fetch_tickers(["BTC/USDC:USDC", "WIF/USDC:USDC"])
    assert sorted(tickers) == ["BTC/USDC:USDC", "WIF/USDC:USDC"]
    assert info_types(sim) == {"type=metaAndAssetCtxs": 1}   # fetchMarkets types ["swap"]: no spot request


def next_hour_or_later(f, truth):
    """ccxt computes the next funding time from the local clock (the next whole hour), the truth from its
    tick's time: they agree unless the clock crossed the hour in between."""
    assert truth["next_funding_time"] % 3_600_000 == 0
    if f["fundingTimestamp"] != truth["next_funding_time"]:
        assert f["fundingTimestamp"] == truth["next_funding_time"] + 3_600_000
        assert time.time() * 1000 >= truth["next_funding_time"]


def test_fetch_funding_rates(sim, client):
    sim.market.freeze()
    rates = client.fetch_funding_rates()
    assert info_types(sim) == {"type=metaAndAssetCtxs": 1}
    assert sorted(rates) == sorted(listed_symbols(sim))
    for symbol in listed_symbols(sim):
        f, truth = rates[symbol], sim.truth(EX, symbol)
        assert f["fundingRate"] == truth["funding_rate"]
        assert f["markPrice"] == truth["mark_price"] and f["indexPrice"] == truth["index_price"]
        assert f["interval"] == "1h" and truth["funding_interval_hours"] == 1
        assert truth["next_funding_time"] - truth["timestamp"] <= 3_600_000
        next_hour_or_later(f, truth)


def test_the_workers_bulk_call_parses_both_ways(sim, client):
    """The worker posts metaAndAssetCtxs once and hands each row to ccxt's ticker and funding parsers."""
    from common.exchanges import hyperliquid_contexts
    sim.market.freeze()
    rows = hyperliquid_contexts(client)
    assert info_types(sim) == {"type=metaAndAssetCtxs": 1}
    for row in rows:
        t = client.parse_ticker(row)
        check_ticker(sim, t)
        assert client.parse_funding_rate(row)["fundingRate"] == sim.truth(EX, t["symbol"])["funding_rate"]


# -- l2Book ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol", ["BTC/USDC:USDC", "DOGE/USDC:USDC", "TAO/USDC:USDC"])
def test_order_book_20_levels(sim, client, symbol):
    sim.market.freeze()
    book = client.fetch_order_book(symbol, 1000)   # ccxt sends no limit: 20 levels is all there is
    truth = sim.truth(EX, symbol, depth=20)
    assert len(book["bids"]) == len(book["asks"]) == 20
    assert book["bids"] == truth["bids"] and book["asks"] == truth["asks"]   # base units
    assert book["timestamp"] == truth["timestamp"]
    assert book["bids"][0][0] == truth["bid"] and book["asks"][0][0] == truth["ask"]
    assert info_types(sim) == {"type=l2Book": 1}
    assert sim.requests(EX)[0].query == f"type=l2Book&coin={symbol.split('/')[0]}"
    raw = client.publicPostInfo({"type": "l2Book", "coin": symbol.split("/")[0]})
    assert raw["coin"] == symbol.split("/")[0] and all(set(level) == {"px", "sz", "n"} for level in raw["levels"][0])


def test_unknown_coin_and_bad_bodies(sim, client):
    with pytest.raises(ccxt.BadSymbol):   # ccxt refuses before sending anything
        client.fetch_order_book(UNLISTED)
    assert sim.counts(EX) == {}
    # Hyperliquid's own answer is `null` (HTTP 200); ccxt hands back a JSON body that is not an object or a
    # list as its text, and its fetch_order_book would read it as an empty book
    assert client.publicPostInfo({"type": "l2Book", "coin": "PEPE"}) == "null"
    assert sim.statuses(EX) == {200: 1}
    with pytest.raises(ccxt.ExchangeError, match="422.*unknown variant `fundingRates`"):
        client.publicPostInfo({"type": "fundingRates"})
    with pytest.raises(ccxt.ExchangeError, match="422.*missing field `coin`"):
        client.publicPostInfo({"type": "l2Book"})
    assert post_raw(sim, b'{"coin": "BTC"}') == (422, "Failed to deserialize the JSON body into the target "
                                                      "type: missing field `type`")
    status, text = post_raw(sim, b"not json")
    assert status == 422 and "JSON" in text


def post_raw(sim, body: bytes) -> tuple[int, str]:
    url = urlsplit(sim.api_url(EX))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=3)
    conn.request("POST", f"{url.path}/info", body, {"Content-Type": "application/json"})
    reply = conn.getresponse()
    out = reply.status, reply.read().decode()
    conn.close()
    return out


def test_time_and_status(sim, client):
    before = int(time.time() * 1000)
    assert before <= client.fetch_time() <= int(time.time() * 1000)
    assert client.fetch_status()["status"] == "ok"
    assert info_types(sim) == {"type=exchangeStatus": 2}
    assert sim.peak_share(EX) == pytest.approx(4 / 1200)   # exchangeStatus weighs 2


# -- the budget -----------------------------------------------------------------------------------------------
def test_weights_by_body_type(sim, client):
    for _ in range(10):
        client.publicPostInfo({"type": "metaAndAssetCtxs"})
    assert sim.peak_share(EX) == pytest.approx(200 / 1200)   # 10 x 20
    for _ in range(10):
        client.fetch_order_book("BTC/USDC:USDC")
    assert sim.peak_share(EX) == pytest.approx(220 / 1200)   # + 10 x 2
    client.publicPostInfo({"type": "allMids"})
    client.publicPostInfo({"type": "meta"})
    assert sim.peak_share(EX) == pytest.approx(242 / 1200)   # allMids 2, meta 20


def test_over_budget_429_without_retry_after(sim, client):
    sim.spend_weight(EX, 1200 - 20 + 1)   # the rest of this minute holds 19: one weight-20 request too few
    with pytest.raises(ccxt.RateLimitExceeded) as info:
        client.publicPostInfo({"type": "metaAndAssetCtxs"})
    assert type(info.value) is ccxt.RateLimitExceeded
    assert "429" in str(info.value)
    assert "Retry-After" not in client.last_response_headers   # Hyperliquid sends none
    for _ in range(9):                                          # while 9 weight-2 books still fit (18 <= 19)
        client.fetch_order_book("BTC/USDC:USDC")
    with pytest.raises(ccxt.RateLimitExceeded):
        client.fetch_order_book("BTC/USDC:USDC")
    assert sim.statuses(EX) == {429: 2, 200: 9}


def test_l2book_budget_in_one_minute(sim, client):
    """57 x 20 + 30 x 2 = 1200: the minute's whole budget; the next l2Book is a 429."""
    sim.spend_weight(EX, 57 * 20)
    for _ in range(30):
        client.fetch_order_book("ETH/USDC:USDC")
    with pytest.raises(ccxt.RateLimitExceeded):
        client.fetch_order_book("ETH/USDC:USDC")
    assert sim.statuses(EX) == {200: 30, 429: 1}
    assert sim.peak_share(EX) == pytest.approx(1.0)


# -- faults ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, error", [
    ("http500", ccxt.ExchangeNotAvailable),  # plain text, no JSON: ccxt maps the HTTP status
    ("http429", ccxt.RateLimitExceeded),
    ("http418", ccxt.DDoSProtection),        # Hyperliquid has no 418 of its own; ccxt's status table
    ("reset", ccxt.NetworkError),
])
def test_fault_raises(sim, client, kind, error):
    sim.market.freeze()
    sim.inject_fault(EX, kind, count=1, retry_after=7)
    with pytest.raises(error) as info:
        client.fetch_tickers(params={"type": "swap"})
    assert type(info.value) is error
    if kind in ("http429", "http418"):
        assert "Retry-After" not in client.last_response_headers
    assert client.fetch_tickers(params={"type": "swap"})["BTC/USDC:USDC"]["close"] == mid(sim, "BTC/USDC:USDC")


def test_fault_by_body_type(sim, client):
    """A fault's endpoint matches the body's fields: a book fault leaves the bulk answer alone."""
    sim.inject_fault(EX, "http500", endpoint="type=l2Book&coin=ETH", count=1)
    assert len(client.fetch_tickers(params={"type": "swap"})) == len(listed_symbols(sim))
    assert len(client.fetch_order_book("BTC/USDC:USDC")["bids"]) == 20
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_order_book("ETH/USDC:USDC")
    assert len(client.fetch_order_book("ETH/USDC:USDC")["bids"]) == 20


def test_fault_hang_times_out(sim, make_client):
    c = make_client(EX, timeout_ms=500)
    c.load_markets()
    sim.inject_fault(EX, "hang", count=1, hang_seconds=2)
    with pytest.raises(ccxt.RequestTimeout):   # ccxt's 500 ms timeout, not the 2 s hang ending
        c.fetch_order_book("BTC/USDC:USDC")
    assert len(c.fetch_order_book("BTC/USDC:USDC")["bids"]) == 20


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_fault_unparseable_body(sim, client, kind):
    """ccxt reads a non-JSON 200 as no answer: empty tickers and an empty book, no exception; the worker's
    own bulk call refuses it (BadResponse)."""
    from common.exchanges import hyperliquid_contexts
    sim.inject_fault(EX, kind, count=3)
    assert client.fetch_tickers(params={"type": "swap"}) == {}
    book = client.fetch_order_book("BTC/USDC:USDC")
    assert book["bids"] == [] and book["asks"] == [] and book["timestamp"] is None
    with pytest.raises(ccxt.BadResponse):
        hyperliquid_contexts(client)
    assert len(client.fetch_order_book("BTC/USDC:USDC")["bids"]) == 20


def test_fault_drop_fields(sim, client):
    sim.market.freeze()
    truth = sim.truth(EX, "SOL/USDC:USDC")
    sim.inject_fault(EX, "drop_fields", count=1, fields=("bid", "ask"))
    t = client.fetch_tickers(params={"type": "swap"})["SOL/USDC:USDC"]
    assert t["bid"] is None and t["ask"] is None and t["close"] is None   # no book top: no mid, no impact
    assert t["info"]["impactPxs"] is None and t["info"]["midPx"] is None and t["info"]["premium"] is None
    sim.inject_fault(EX, "drop_fields", count=1, fields=("mark_price", "index_price", "funding_rate"))
    f = client.fetch_funding_rates()["SOL/USDC:USDC"]
    assert f["markPrice"] is None and f["indexPrice"] is None
    assert f["fundingRate"] is None and f["info"]["funding"] is None   # the fault's missing value: null
    assert f["info"]["impactPxs"] is not None and f["info"]["premium"] is None   # no oracle: no premium
    f = client.fetch_funding_rates()["SOL/USDC:USDC"]
    assert (f["fundingRate"], f["markPrice"], f["indexPrice"]) == (truth["funding_rate"], truth["mark_price"],
                                                                  truth["index_price"])


def test_fault_bad_level(sim, client):
    sim.market.freeze()
    sim.inject_fault(EX, "bad_level", count=1)
    raw = client.publicPostInfo({"type": "l2Book", "coin": "BTC"})
    assert raw["levels"][0][0]["sz"] is None and raw["levels"][0][1]["sz"] is not None
    assert raw["levels"][1][0]["sz"] is not None


def test_fault_bad_row(sim, client):
    sim.market.freeze()
    sim.inject_fault(EX, "bad_row", count=1)
    raw = client.publicPostInfo({"type": "metaAndAssetCtxs"})
    assert isinstance(raw[0], dict) and len(raw[0]["universe"]) == len(listed_symbols(sim))
    assert raw[1][0] == "garbled" and isinstance(raw[1][1], dict)


def test_fault_breakers_in_hyperliquids_shapes():
    """The dialect's own breakers, as the core would apply them to a copy of the answer."""
    book = {"coin": "BTC", "time": 1, "levels": [[{"px": "1.0", "sz": "2.0", "n": 1}], [{"px": "1.1", "sz": "3.0",
                                                                                          "n": 2}]]}
    assert dialect.without_first_size(book) and book["levels"][0][0]["sz"] is None
    assert book["levels"][1][0]["sz"] == "3.0"
    bulk = [{"universe": [{"name": "BTC"}, {"name": "ETH"}]}, [{"funding": "0.0"}, {"funding": "0.1"}]]
    assert dialect.first_row_garbled(bulk) and bulk[1] == ["garbled", {"funding": "0.1"}]
    assert bulk[0] == {"universe": [{"name": "BTC"}, {"name": "ETH"}]}
    assert not dialect.without_first_size(None) and not dialect.first_row_garbled(None)


# -- settled funding (SPEC 14): Hyperliquid's own (tests/test_simulator_settled.py: what every exchange does) ---
BTC, TAO = "BTC/USDC:USDC", "TAO/USDC:USDC"


@pytest.fixture
def history(sim):
    """A client with no throttle: the simulator's budget is what it meets."""
    return sim, history_client(sim, EX, throttled=False)


def funding_history(client, coin, start, end=None) -> list:
    body = {"type": "fundingHistory", "coin": coin, "startTime": start}
    return client.publicPostInfo(body if end is None else {**body, "endTime": end})


def item_weight(items: int) -> int:
    """Hyperliquid's weight of a fundingHistory answer: 20, and 1 per 20 items (a part of 20 counting whole)."""
    return 20 + math.ceil(items / 20)


def test_history_answers_500_at_most_oldest_first_from_start_time(history):
    sim, client = history
    every = sim.settlements(EX, BTC)
    rows = funding_history(client, "BTC", 0)
    assert [(r["time"], float(r["fundingRate"])) for r in rows] == [(t["funding_time"], t["rate"]) for t in every[:500]]
    assert all(isinstance(r["fundingRate"], str) and isinstance(r["premium"], str) and r["coin"] == "BTC"
               for r in rows)
    start, end = every[-20]["funding_time"], every[-10]["funding_time"]    # both bounds inclusive
    assert [r["time"] for r in funding_history(client, "BTC", start, end)] == \
        [t["funding_time"] for t in every[-20:-9]]


def test_funding_history_weighs_20_and_1_per_20_items_it_returns(history):
    sim, client = history
    now = sim.market.now_ms()
    items = [len(funding_history(client, coin, now - DAY_MS * days)) for coin, days in
             (("BTC", 30), ("TAO", 30), ("ETH", 1))]
    assert items == [500, 240, 24]
    assert sim.peak_share(EX) == pytest.approx(sum(map(item_weight, items)) / 1200)   # 45 + 32 + 22


def test_backfill_of_hourly_symbols_through_the_throttle_gets_no_429(sim, monkeypatch):
    """The worker's throttle charges each fundingHistory what Hyperliquid will (20 + 1 per 20 of the hourly
    settlements its window can hold): the simulator, which charges the items it returns, never answers 429.
    Budget scaled to 100 per 1 s on both sides, so that a minute's budget is not a minute's wait."""
    monkeypatch.setattr(dialect, "BUDGETS", [Budget(100, 1.0)])
    sim.market.freeze()
    throttle = SharedThrottle(dataclasses.replace(VENUES[EX].budget, window=1.0, guard=0.3))
    client = create_exchange(EX, api_url=sim.api_url(EX), timeout_ms=3000, throttle=throttle)
    client.load_markets()
    for symbol in (BTC, "ETH/USDC:USDC"):
        got, truth = backfill(sim, EX, client, symbol)
        assert got == truth and len(truth) == 30 * 24
    assert info_types(sim)["type=fundingHistory"] == 4
    assert sim.statuses(EX) == {200: len(sim.requests(EX))}
    assert sim.peak_share(EX) > 0.5   # the budget was used, not left idle


# -- the real-size market -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_sim():
    sim = Simulator(real_sizes=True).start()
    yield sim
    sim.stop()


def test_real_size_market(real_sim):
    sim = real_sim
    sim.market.freeze()
    c = ccxt.hyperliquid({"timeout": 10000, "enableRateLimit": False,
                          "options": {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    markets = c.load_markets()
    coins = sim.market.listed(EX)
    assert len(coins) == len(markets) == 200
    assert {sim.market.funding_hours(EX, coin) for coin in coins} == {1}
    tickers = c.fetch_tickers(params={"type": "swap"})
    rates = c.fetch_funding_rates()
    ordinary = [coin for coin in coins if not coin.missing]
    for coin in ordinary[::9]:
        symbol = symbol_of(EX, coin.base)
        truth = sim.truth(EX, symbol)
        assert rates[symbol]["fundingRate"] == truth["funding_rate"] and rates[symbol]["interval"] == "1h"
        next_hour_or_later(rates[symbol], truth)
        bid, ask = dialect.impact_prices(quote(sim, symbol))
        if bid is None:   # a book too thin for the impact notional: no impact prices, as Hyperliquid
            assert tickers[symbol]["bid"] is None and tickers[symbol]["info"]["premium"] is None
            assert full_book_fill(truth["bids"], float(dialect.impact_notional(coin.base))) is None or \
                full_book_fill(truth["asks"], float(dialect.impact_notional(coin.base))) is None
        else:
            check_ticker(sim, tickers[symbol])
            check_impact_prices(sim, symbol)
        assert c.fetch_order_book(symbol)["bids"] == sim.truth(EX, symbol, depth=20)["bids"]
    thin = sum(tickers[symbol_of(EX, coin.base)]["bid"] is None for coin in ordinary)
    assert 0 < thin < len(ordinary) / 5
    check_odd_listings(sim, tickers)


def check_odd_listings(sim, tickers):
    """Hyperliquid never leaves funding or volumes out: a listing without a funding estimate yet says funding
    "0.0" with null premium and impact prices; one that did not trade says "0.0" volumes and open interest."""
    odd = {coin.missing: symbol_of(EX, coin.base) for coin in sim.market.listed(EX) if coin.missing}
    fresh, quiet = tickers[odd[FRESH]], tickers[odd[NO_VOLUME]]
    assert sim.truth(EX, odd[FRESH])["funding_rate"] is None
    assert fresh["info"]["funding"] == "0.0" and fresh["info"]["premium"] is None
    assert fresh["info"]["impactPxs"] is None and fresh["bid"] is None and fresh["ask"] is None
    assert fresh["close"] == mid(sim, odd[FRESH])
    assert sim.truth(EX, odd[NO_VOLUME])["volume_24h"] is None
    assert (quiet["info"]["dayNtlVlm"], quiet["info"]["dayBaseVlm"], quiet["info"]["openInterest"]) == \
        ("0.0", "0.0", "0.0")
    assert quiet["quoteVolume"] == 0.0 and quiet["bid"] is not None
    assert json.dumps(fresh["info"])   # plain JSON, as sent
