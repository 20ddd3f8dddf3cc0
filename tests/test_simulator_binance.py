"""The binance (USDⓈ-M futures) dialect of the simulator, driven through the real ccxt binanceusdm class."""
import dataclasses
import json
import time
import types
import urllib.request

import ccxt
import pytest

from common.exchanges import VENUES, SharedThrottle, create_exchange, redirect_urls
from tests.conftest import DAY_MS, history_client
from tests.simulator import Simulator
from tests.simulator import binance as dialect
from tests.simulator.server import Budget, Request

EX = "binance"
BTC = "BTC/USDT:USDT"


def flat(levels) -> list:
    """[[price, amount], ...] as one flat list, for pytest.approx (which does not nest)."""
    return [x for level in levels for x in level]


def listed(sim) -> set:
    return {f"{c.base}/USDT:USDT" for c in sim.market.listed(EX)}


@pytest.fixture
def client(sim, make_client):
    """A client with markets loaded and ccxt's throttle off (value tests need speed, not pacing); the request
    log and rate-limit windows start empty and the clock is frozen."""
    c = make_client(EX)
    c.load_markets()
    c.enableRateLimit = False
    sim.reset()
    sim.market.freeze()
    return c


# -- load_markets -------------------------------------------------------------------------------------------
def _assert_perpetuals(sim, markets):
    swaps = {s for s, m in markets.items() if m["swap"] and m["linear"]}
    assert swaps == listed(sim)
    assert "WIF/USDT:USDT" in swaps and "TAO/USDT:USDT" not in markets  # TAO is not listed on binance
    for coin in sim.market.listed(EX):
        m = markets[f"{coin.base}/USDT:USDT"]
        assert (m["id"], m["type"], m["linear"], m["active"], m["settle"]) == (
            f"{coin.base}USDT", "swap", True, True, "USDT")
        assert m["contractSize"] == 1
        assert m["precision"]["price"] == float(coin.price_tick)
        assert m["precision"]["amount"] == float(coin.amount_step)


def test_load_markets_with_venue_options(sim, make_client):
    c = make_client(EX)
    markets = c.load_markets()
    _assert_perpetuals(sim, markets)
    assert all(m["swap"] for m in markets.values())
    assert sim.counts(EX) == {EX: {"/fapi/v1/exchangeInfo": 1}}


def test_load_markets_with_ccxt_defaults(sim):
    # binanceusdm's own default loads linear markets only: one request, same result as the VENUES row.
    c = ccxt.binanceusdm({"timeout": 3000})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    _assert_perpetuals(sim, c.load_markets())
    assert sim.counts(EX) == {EX: {"/fapi/v1/exchangeInfo": 1}}

    # Every market type binance's classes know: spot, COIN-M and options each cost one more request.
    sim.reset()
    c = ccxt.binanceusdm({"timeout": 3000, "options": {"fetchMarkets": {"types": ["spot", "linear", "inverse",
                                                                                    "option"]}}})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    markets = c.load_markets()
    _assert_perpetuals(sim, markets)
    assert markets["BTC/USDT"]["spot"] and markets["BTC/USD:BTC"]["inverse"]
    assert markets["BTC/USD:BTC"]["contractSize"] == 100
    assert not any(m["option"] for m in markets.values())
    assert sim.counts(EX) == {EX: {"/api/v3/exchangeInfo": 1, "/fapi/v1/exchangeInfo": 1,
                                   "/dapi/v1/exchangeInfo": 1, "/eapi/v1/exchangeInfo": 1}}


# -- tickers --------------------------------------------------------------------------------------------------
def test_bulk_tickers_carry_last_and_volume_but_no_bid_ask(sim, client):
    tickers = client.fetch_tickers()
    assert set(tickers) == listed(sim)
    for symbol, t in tickers.items():
        truth = sim.truth(EX, symbol, depth=1)
        assert t["last"] == truth["last"]
        assert t["baseVolume"] == truth["volume_24h"]  # base units: binance quotes no contracts
        assert t["timestamp"] == truth["timestamp"]
        # /fapi/v1/ticker/24hr has no bid/ask and no mark/index: those need bookTicker and premiumIndex.
        assert (t["bid"], t["ask"], t["markPrice"], t["indexPrice"]) == (None, None, None, None)

    some = client.fetch_tickers([BTC, "ETH/USDT:USDT"])
    assert set(some) == {BTC, "ETH/USDT:USDT"}
    one = client.fetch_ticker("DOGE/USDT:USDT")
    assert one["last"] == sim.truth(EX, "DOGE/USDT:USDT", depth=1)["last"]
    queries = [e.query for e in sim.requests(EX, path="/fapi/v1/ticker/24hr")]
    assert queries == ["", "", "symbol=DOGEUSDT"]  # ccxt asks the bulk endpoint even for a list of symbols


def test_bids_asks_and_mark_prices_in_bulk(sim, client):
    books = client.fetch_bids_asks()
    marks = client.fetch_mark_prices()
    assert set(books) == set(marks) == listed(sim)
    for symbol in listed(sim):
        truth = sim.truth(EX, symbol, depth=1)
        assert (books[symbol]["bid"], books[symbol]["ask"]) == (truth["bid"], truth["ask"])
        assert books[symbol]["bidVolume"] == pytest.approx(truth["bids"][0][1])
        assert books[symbol]["askVolume"] == pytest.approx(truth["asks"][0][1])
        assert (marks[symbol]["markPrice"], marks[symbol]["indexPrice"]) == (truth["mark_price"],
                                                                             truth["index_price"])
    assert sim.counts(EX) == {EX: {"/fapi/v1/ticker/bookTicker": 1, "/fapi/v1/premiumIndex": 1}}


# -- order book -----------------------------------------------------------------------------------------------
def test_order_book_at_max_depth_and_smaller_limits(sim, client):
    book = client.fetch_order_book(BTC, VENUES[EX].book_limit)
    truth = sim.truth(EX, BTC, depth=1000)
    assert VENUES[EX].book_limit == 1000
    assert len(book["bids"]) == len(book["asks"]) == 1000
    assert book["timestamp"] == truth["timestamp"]
    assert book["bids"][0] == [truth["bid"], pytest.approx(truth["bids"][0][1])]
    assert book["asks"][0] == [truth["ask"], pytest.approx(truth["asks"][0][1])]
    assert flat(book["bids"]) == pytest.approx(flat(truth["bids"]))
    assert flat(book["asks"]) == pytest.approx(flat(truth["asks"]))

    for limit in (5, 100, 500):
        small = client.fetch_order_book("SOL/USDT:USDT", limit)
        assert len(small["bids"]) == len(small["asks"]) == limit
        assert flat(small["bids"]) == pytest.approx(flat(sim.truth(EX, "SOL/USDT:USDT", depth=limit)["bids"]))
    assert len(client.fetch_order_book("SOL/USDT:USDT")["asks"]) == 500  # Binance's default limit
    with pytest.raises(ccxt.BadRequest, match="-1130"):  # only 5, 10, 20, 50, 100, 500, 1000 are valid
        client.fetch_order_book(BTC, 200)


# -- funding --------------------------------------------------------------------------------------------------
def test_funding_rates_next_funding_time_and_interval(sim, client):
    rates = client.fetch_funding_rates()
    intervals = client.fetch_funding_intervals()
    assert set(rates) == listed(sim)
    for symbol, r in rates.items():
        truth = sim.truth(EX, symbol, depth=1)
        assert r["fundingRate"] == truth["funding_rate"]
        assert r["fundingTimestamp"] == truth["next_funding_time"]  # binance: not nextFundingTimestamp
        assert r["nextFundingTimestamp"] is None
        assert (r["markPrice"], r["indexPrice"]) == (truth["mark_price"], truth["index_price"])
        assert r["interval"] is None  # premiumIndex has no interval...
        # ...fundingInfo lists only the symbols whose interval differs from the default 8 h
        hours = int(intervals[symbol]["interval"][:-1]) if symbol in intervals else 8
        assert hours == truth["funding_interval_hours"]
    assert {s: i["interval"] for s, i in intervals.items()} == {"DOGE/USDT:USDT": "4h", "WIF/USDT:USDT": "4h"}

    single = client.fetch_funding_rate("DOGE/USDT:USDT")
    assert single["fundingRate"] == rates["DOGE/USDT:USDT"]["fundingRate"]
    assert single["fundingTimestamp"] == sim.truth(EX, "DOGE/USDT:USDT")["next_funding_time"]
    assert client.fetch_funding_interval("WIF/USDT:USDT")["interval"] == "4h"
    with pytest.raises(ccxt.NullResponse):  # an 8 h symbol is absent from fundingInfo
        client.fetch_funding_interval(BTC)


def test_unknown_symbol(sim, client):
    with pytest.raises(ccxt.BadSymbol):  # ccxt refuses before sending anything
        client.fetch_ticker("TAO/USDT:USDT")
    assert sim.counts(EX) == {}
    for call in (client.fapiPublicGetTicker24hr, client.fapiPublicGetDepth, client.fapiPublicGetPremiumIndex):
        with pytest.raises(ccxt.BadSymbol, match="-1121"):
            call({"symbol": "TAOUSDT"})
    assert sim.statuses(EX) == {400: 3}


def test_weights_are_binances(sim):
    def w(path, **query):
        return dialect.weight(Request(EX, "GET", path, {k: str(v) for k, v in query.items()}, b"", sim.market, 0))
    assert [w("/fapi/v1/depth", symbol="BTCUSDT", limit=n) for n in dialect.DEPTH_LIMITS] == [2, 2, 2, 2, 5, 10, 20]
    assert w("/fapi/v1/depth", symbol="BTCUSDT") == 10
    assert (w("/fapi/v1/ticker/24hr"), w("/fapi/v1/ticker/24hr", symbol="BTCUSDT")) == (40, 1)
    assert (w("/fapi/v1/ticker/bookTicker"), w("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")) == (5, 2)
    assert (w("/fapi/v1/premiumIndex"), w("/fapi/v1/premiumIndex", symbol="BTCUSDT")) == (10, 1)
    assert w("/fapi/v1/exchangeInfo") == 1 and w("/api/v3/exchangeInfo") == 0


# -- rate limits ----------------------------------------------------------------------------------------------
def test_unthrottled_burst_gets_429_then_418(sim, client):
    sim.market.unfreeze()
    ok, errors = 0, []
    while len(errors) < 5 and ok < 200:
        try:
            client.fetch_order_book(BTC, 1000)  # weight 20: 2400 / 20 = 120 per minute
            ok += 1
        except ccxt.DDoSProtection as e:
            errors.append(e)
    assert ok == 120
    assert all(type(e) is ccxt.DDoSProtection for e in errors)  # binance maps 429 and 418 to DDoSProtection
    assert [" 429 " in str(e) for e in errors] == [True, True, True, False, False]
    assert " 418 " in str(errors[3]) and "banned until" in str(errors[4])
    assert sim.statuses(EX) == {200: 120, 429: 3, 418: 2}


def _scaled_simulator(window: float) -> Simulator:
    """A private simulator whose binance budget keeps Binance's 40 weight/s but over a short window, so a
    throttled burst can span several windows in a few seconds."""
    sim = Simulator()
    rate = dialect.BUDGETS[0].limit / dialect.BUDGETS[0].window
    sim.dialects[EX] = types.SimpleNamespace(ROUTES=dialect.ROUTES, BUDGETS=[Budget(int(rate * window), window)],
                                             BAN_AFTER_429S=dialect.BAN_AFTER_429S, weight=dialect.weight,
                                             error_body=dialect.error_body)
    return sim.start()


def test_budget_throttle_keeps_the_weight_of_a_burst_inside_the_window():
    sim = _scaled_simulator(window=2.0)  # 80 weight per 2 s
    budget = dataclasses.replace(VENUES[EX].budget, limit=78, window=2.0)
    try:
        c = create_exchange(EX, api_url=sim.api_url(EX), timeout_ms=3000, throttle=SharedThrottle(budget))
        c.load_markets()
        for _ in range(10):  # 200 weight: two and a half windows, all answered only if spread out
            c.fetch_order_book(BTC, 1000)
        assert sim.statuses(EX) == {200: 11}
        assert sim.peak_share(EX) <= 78 / 80

        # The same burst with a budget 40 % over the exchange's does get a 429: the check above can fail.
        sim.reset()
        fast = create_exchange(EX, api_url=sim.api_url(EX), timeout_ms=3000,
                               throttle=SharedThrottle(dataclasses.replace(budget, limit=112)))
        fast.load_markets()
        with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
            for _ in range(10):
                fast.fetch_order_book(BTC, 1000)
    finally:
        sim.stop()


class RecordingThrottle(SharedThrottle):
    """The venue throttle, noting the (endpoint, weight) of each request ccxt hands it."""

    def __init__(self, budget):
        super().__init__(budget)
        self.costs = []

    def __call__(self, cost=None):
        self.costs.append(cost)
        return super().__call__(cost)


def test_budget_weighs_premium_index_without_symbol_as_binance_does(sim, make_client):
    # ccxt charges /fapi/v1/premiumIndex 1 with or without a symbol; Binance charges 10 without one.
    loader = make_client(EX)
    loader.load_markets()
    throttle = RecordingThrottle(VENUES[EX].budget)
    c = create_exchange(EX, api_url=sim.api_url(EX), timeout_ms=3000, throttle=throttle)
    c.set_markets(loader.markets)
    c.fetch_funding_rate(BTC)
    c.fetch_funding_rates()
    assert [weight for _, weight in throttle.costs] == [1, 10]
    assert [e.query for e in sim.requests(EX, path="/fapi/v1/premiumIndex")] == ["symbol=BTCUSDT", ""]


# -- faults ---------------------------------------------------------------------------------------------------
ERRORS = [  # kind, extra inject_fault arguments, exact ccxt class, text in the message
    ("http500", {}, ccxt.OperationFailed, "-1001"),  # Binance's {"code":-1001,"msg":"Internal error; ..."}
    ("http429", {"retry_after": 7}, ccxt.DDoSProtection, " 429 "),
    ("http418", {"retry_after": 9}, ccxt.DDoSProtection, " 418 "),
    ("hang", {"hang_seconds": 2}, ccxt.RequestTimeout, "/fapi/v1/depth"),
    ("reset", {}, ccxt.NetworkError, "/fapi/v1/depth"),
]


@pytest.mark.parametrize("kind, extra, error, text", ERRORS, ids=[e[0] for e in ERRORS])
def test_fault_raises(sim, make_client, kind, extra, error, text):
    c = make_client(EX, timeout_ms=500)
    c.load_markets()
    c.enableRateLimit = False
    sim.market.freeze()
    sim.inject_fault(EX, kind, endpoint="/fapi/v1/depth", count=1, **extra)
    with pytest.raises(ccxt.BaseError) as info:
        c.fetch_order_book(BTC, 5)
    assert type(info.value) is error and text in str(info.value)
    if "retry_after" in extra:
        assert c.last_response_headers["Retry-After"] == str(extra["retry_after"])
    book = c.fetch_order_book(BTC, 5)  # the fault is consumed
    assert flat(book["bids"]) == pytest.approx(flat(sim.truth(EX, BTC, depth=5)["bids"]))


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_garbled_body_is_not_an_exception_in_ccxt(sim, client, kind):
    """ccxt's binance parsers swallow a 200 whose body is not JSON: the worker must check for emptiness."""
    sim.inject_fault(EX, kind, endpoint="/fapi/v1/depth", count=1)
    book = client.fetch_order_book(BTC, 5)
    assert (book["bids"], book["asks"], book["timestamp"]) == ([], [], None)
    sim.inject_fault(EX, kind, endpoint="/fapi/v1/premiumIndex", count=1)
    assert client.fetch_funding_rates() == {}
    sim.inject_fault(EX, kind, endpoint="/fapi/v1/ticker/24hr", count=1)
    with pytest.raises(AttributeError):  # not even a ccxt error
        client.fetch_tickers()
    assert len(client.fetch_order_book(BTC, 5)["bids"]) == 5
    assert len(client.fetch_funding_rates()) == len(listed(sim))
    assert len(client.fetch_tickers()) == len(listed(sim))


def test_drop_fields(sim, client):
    truth = sim.truth(EX, BTC, depth=1)
    sim.inject_fault(EX, "drop_fields", endpoint="/fapi/v1/ticker/bookTicker", count=1, fields=("bid", "ask"))
    dropped = client.fetch_bids_asks()[BTC]
    assert (dropped["bid"], dropped["ask"]) == (None, None)
    again = client.fetch_bids_asks()[BTC]
    assert (again["bid"], again["ask"]) == (truth["bid"], truth["ask"])

    sim.inject_fault(EX, "drop_fields", endpoint="/fapi/v1/ticker/24hr", count=1, fields=("last",))
    assert client.fetch_tickers()[BTC]["last"] is None
    assert client.fetch_tickers()[BTC]["last"] == truth["last"]

    sim.inject_fault(EX, "drop_fields", endpoint="/fapi/v1/premiumIndex", count=1,
                     fields=("funding_rate", "next_funding_time", "mark_price", "index_price"))
    rate = client.fetch_funding_rates()[BTC]
    assert rate["info"]["lastFundingRate"] == "" and rate["info"]["nextFundingTime"] == 0
    assert (rate["fundingRate"], rate["markPrice"], rate["indexPrice"]) == (None, None, None)
    # Binance writes "no next funding" as 0 and ccxt passes it through: the worker must treat 0 as missing.
    assert rate["fundingTimestamp"] == 0
    rate = client.fetch_funding_rates()[BTC]
    assert (rate["fundingRate"], rate["fundingTimestamp"], rate["markPrice"]) == (
        truth["funding_rate"], truth["next_funding_time"], truth["mark_price"])


# -- settled funding: what Binance alone does (tests/test_simulator_settled.py: what every exchange does) -------
@pytest.fixture
def throttled(sim):
    return history_client(sim, EX)


def test_history_is_oldest_first_from_start_time_at_most_1000(sim, throttled):
    now = sim.market.now_ms()
    truth = [s["funding_time"] for s in sim.settlements(EX, BTC, now - 30 * DAY_MS)]
    first = throttled.fapiPublicGetFundingRate({"symbol": "BTCUSDT", "startTime": truth[0], "limit": 5})
    assert [row["fundingTime"] for row in first] == truth[:5]          # the oldest 5 from startTime
    assert isinstance(first[0]["fundingRate"], str) and len(first[0]["fundingRate"].split(".")[1]) == 8
    last = throttled.fapiPublicGetFundingRate({"symbol": "BTCUSDT", "endTime": truth[-2], "limit": 5})
    assert [row["fundingTime"] for row in last] == truth[-6:-1]        # without startTime: the newest up to endTime
    assert len(throttled.fapiPublicGetFundingRate({"symbol": "BTCUSDT"})) == 100   # Binance's default limit
    everyone = throttled.fapiPublicGetFundingRate({"startTime": 0, "limit": 1000})  # every symbol: > 1000 held
    assert len(everyone) == 1000
    with pytest.raises(ccxt.BadRequest, match="-1130"):               # fapi refuses more, it does not clamp
        throttled.fapiPublicGetFundingRate({"symbol": "BTCUSDT", "limit": 1001})


def test_funding_rate_and_funding_info_share_500_per_5_minutes(sim, client):
    sim.spend_weight(EX, 499, endpoint="/fapi/v1/fundingInfo")       # another program's fundingInfo calls
    client.fetch_funding_rate_history(BTC, limit=10)
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        client.fetch_funding_rate_history(BTC, limit=10)
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        client.fetch_funding_intervals()
    client.fetch_order_book(BTC, 5)                                   # the request weight has room left
    assert sim.statuses(EX) == {200: 2, 429: 2}


# -- used weight: X-MBX-USED-WEIGHT-1M ----------------------------------------------------------------------
USED = "X-MBX-USED-WEIGHT-1M"


@pytest.fixture
def minute(sim, monkeypatch):
    """The simulator's wall clock held at a chosen second: [start of a clock minute, offset in seconds]."""
    now = [time.time() // 60 * 60, 10.0]
    monkeypatch.setattr(sim, "clock", lambda: now[0] + now[1])
    return now


def plain_client(sim):
    """ccxt.binanceusdm as a user builds it, its own throttle off: these tests drive Binance's limit."""
    c = ccxt.binanceusdm({"timeout": 3000, "enableRateLimit": False})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    return c


def used(client) -> int:
    return int(client.last_response_headers[USED])


def test_every_fapi_answer_reports_the_weight_used_this_minute(sim, minute):
    c = plain_client(sim)
    c.load_markets()
    assert used(c) == 1                                   # exchangeInfo
    c.fetch_order_book(BTC, 1000)
    assert used(c) == 21
    with pytest.raises(ccxt.BadSymbol):                   # an error answer reports it too
        c.fapiPublicGetDepth({"symbol": "TAOUSDT"})
    assert used(c) == 31                                  # depth without a limit: 500 levels, weight 10
    sim.spend_weight(EX, 2000)                            # a trading bot on the same IP
    c.fetch_funding_rate(BTC)
    assert used(c) == 2032 == sim.used_weight(EX)
    c.publicGetExchangeInfo()                             # spot has budgets of its own: no fapi header
    assert USED not in c.last_response_headers


def test_used_weight_restarts_with_the_clock_minute_while_the_sliding_budget_remembers(sim, minute):
    c = plain_client(sim)
    c.load_markets()                                      # weight 1 at second 10
    minute[1] = 50.0
    sim.spend_weight(EX, 2390)
    c.fetch_order_book(BTC, 5)
    assert used(c) == 2393
    minute[1] = 61.0                                      # the next clock minute
    c.fetch_order_book(BTC, 5)
    assert used(c) == 2                                   # Binance's count starts again...
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        c.fetch_order_book(BTC, 1000)                     # ...the sliding 60 s budget still holds 2395
    assert used(c) == 2                                   # a refused request weighs nothing
    minute[1] = 111.0                                     # the spend of second 50 has left the window
    c.fetch_order_book(BTC, 1000)
    assert used(c) == 22


def test_spend_weight_over_http_leaves_the_rest_of_the_budget(sim, minute):
    c = plain_client(sim)
    c.load_markets()                                      # weight 1
    request = urllib.request.Request(f"{sim.url}/__sim/spend_weight", method="POST",
                                     data=json.dumps({"exchange": EX, "weight": 2000}).encode())
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["ok"] is True
    books = 0
    with pytest.raises(ccxt.DDoSProtection, match=" 429 "):
        while books < 30:
            c.fetch_order_book(BTC, 1000)                 # weight 20: room for 19 of them
            books += 1
    assert books == 19 and used(c) == 2381
    assert sim.statuses(EX) == {200: 20, 429: 1} and sim.peak_share(EX) == 2381 / 2400
    with urllib.request.urlopen(f"{sim.url}/__sim/requests?exchange={EX}", timeout=5) as answer:
        assert json.loads(answer.read())["used_weight"] == 2381


def test_spend_weight_names_a_bad_exchange_or_weight(sim):
    with pytest.raises(ValueError, match="unknown exchange 'binanceusdm'"):
        sim.spend_weight("binanceusdm", 10)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        sim.spend_weight(EX, -1)
