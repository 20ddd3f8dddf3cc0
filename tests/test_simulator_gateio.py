"""The gateio dialect of the simulator, exercised through the real ccxt `gate` class."""
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import ccxt
import pytest

from common.exchanges import VENUES, SharedThrottle, redirect_urls
from tests.conftest import history_client
from tests.simulator import gateio
from tests.simulator.server import Request

EX = "gateio"
BTC = "BTC/USDT:USDT"
BOOK = "/api/v4/futures/usdt/order_book"
CONTRACTS = "/api/v4/futures/usdt/contracts"
TICKERS = "/api/v4/futures/usdt/tickers"
MAX_DEPTH = 300
# The throttle counts a request when it leaves, the simulator when it arrives: on a loaded test machine a
# request can take longer than the venue's 100 ms guard to arrive, so throttled tests hold each one longer.
LOADED_MACHINE_GUARD = 0.3

# ccxt's own defaults for gate's load_markets (undoing the VENUES restriction).
CCXT_DEFAULT_MARKET_OPTIONS = {
    "fetchMarkets": {"types": ["spot", "swap", "future", "option"]},
    "defaultType": "spot",
    "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt", "btc"]}},
}


def symbols(sim):
    return [f"{c.base}/USDT:USDT" for c in sim.market.listed(EX)]


@pytest.fixture
def client(make_client):
    ex = make_client(EX)
    ex.load_markets()
    return ex


# -- markets -----------------------------------------------------------------------------------------------
def assert_usdt_swaps(sim, markets):
    listed = sim.market.listed(EX)
    assert listed, "the simulator lists contracts on gateio"
    for coin in listed:
        m = markets[f"{coin.base}/USDT:USDT"]
        assert (m["type"], m["swap"], m["linear"], m["active"], m["settle"]) == ("swap", True, True, True, "USDT")
        assert m["id"] == f"{coin.base}_USDT"
        assert m["contractSize"] == float(coin.contract_size[EX])
        assert m["precision"]["price"] == float(coin.price_tick)
        assert m["precision"]["amount"] == 1  # one contract is the lot
        assert m["info"]["funding_interval"] == coin.funding_hours.get(EX, 8) * 3600
    assert "TAO/USDT:USDT" not in markets  # TAO is not listed on gate
    assert "WIF/USDT:USDT" in markets


def test_load_markets_restricted_is_one_request(sim, make_client):
    ex = make_client(EX)
    markets = ex.load_markets()
    assert_usdt_swaps(sim, markets)
    assert all(m["swap"] and m["linear"] for m in markets.values())
    assert len(markets) == len(sim.market.listed(EX))
    assert sim.counts(EX) == {EX: {CONTRACTS: 1}}


def test_load_markets_with_ccxt_default_options(sim, make_client):
    ex = make_client(EX, options=CCXT_DEFAULT_MARKET_OPTIONS)
    markets = ex.load_markets()
    assert_usdt_swaps(sim, markets)
    types = {m["type"] for m in markets.values()}
    assert types == {"spot", "swap", "future", "option"}
    assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT"]["margin"]
    assert markets["BTC/USD:BTC"]["inverse"]
    assert sim.counts(EX) == {EX: {
        "/api/v4/margin/currency_pairs": 1, "/api/v4/spot/currency_pairs": 1, CONTRACTS: 1,
        "/api/v4/futures/btc/contracts": 1, "/api/v4/delivery/usdt/contracts": 1,
        "/api/v4/options/underlyings": 1, "/api/v4/options/contracts": 1,
    }}


def test_plain_ccxt_gate_also_fetches_currencies(sim):
    ex = ccxt.gate({"timeout": 3000})
    ex.urls["api"] = redirect_urls(ex.urls["api"], sim.api_url(EX))
    markets = ex.load_markets()
    assert_usdt_swaps(sim, markets)
    assert {"USDT", "BTC", "ETH"} <= set(ex.currencies)
    counts = sim.counts(EX)[EX]
    assert counts["/api/v4/spot/currencies"] == 1
    assert sum(counts.values()) == 8


# -- tickers -----------------------------------------------------------------------------------------------
def assert_ticker(t, truth, contract_size):
    assert t["bid"] == truth["bid"]
    assert t["ask"] == truth["ask"]
    assert t["last"] == truth["last"]
    # ccxt takes baseVolume from volume_24h_base: already base units, not contracts.
    assert t["baseVolume"] == pytest.approx(truth["volume_24h"])
    assert float(t["info"]["volume_24h"]) * contract_size == pytest.approx(truth["volume_24h"])
    assert t["markPrice"] == truth["mark_price"]
    assert t["indexPrice"] == truth["index_price"]
    # funding rate rides in the raw ticker only
    assert float(t["info"]["funding_rate"]) == pytest.approx(truth["funding_rate"])


def test_fetch_tickers_bulk(sim, client):
    sim.market.freeze()
    since = time.time()
    tickers = client.fetch_tickers()
    assert sim.counts(EX, since) == {EX: {TICKERS: 1}}
    assert set(tickers) == set(symbols(sim))
    for symbol, t in tickers.items():
        assert_ticker(t, sim.truth(EX, symbol), client.market(symbol)["contractSize"])


def test_fetch_tickers_for_symbols_and_single(sim, client):
    sim.market.freeze()
    some = [BTC, "SOL/USDT:USDT"]
    tickers = client.fetch_tickers(some)
    assert set(tickers) == set(some)
    for symbol in some:
        assert_ticker(tickers[symbol], sim.truth(EX, symbol), client.market(symbol)["contractSize"])
    t = client.fetch_ticker("ETH/USDT:USDT")
    assert_ticker(t, sim.truth(EX, "ETH/USDT:USDT"), 0.01)
    assert sim.requests(EX, path=TICKERS)[-1].query == "contract=ETH_USDT"


# -- order book --------------------------------------------------------------------------------------------
def test_order_book_at_max_depth(sim, client):
    sim.market.freeze()
    book = client.fetch_order_book(BTC, VENUES[EX].book_limit)
    truth = sim.truth(EX, BTC, depth=MAX_DEPTH)
    size = client.market(BTC)["contractSize"]
    assert len(book["bids"]) == len(book["asks"]) == MAX_DEPTH
    assert book["bids"][0][0] == truth["bid"] and book["asks"][0][0] == truth["ask"]
    for side in ("bids", "asks"):
        got = [[p, a * size] for p, a in book[side]]  # ccxt leaves gate amounts in contracts
        assert got == [[pytest.approx(p), pytest.approx(a)] for p, a in truth[side]]
    # Gate sends `current` in float seconds; ccxt truncates it to whole seconds.
    assert book["timestamp"] == truth["timestamp"] // 1000 * 1000
    raw = client.publicFuturesGetSettleOrderBook({"settle": "usdt", "contract": "BTC_USDT", "limit": 1})
    assert round(raw["current"] * 1000) == truth["timestamp"]


def test_order_book_limits(sim, client):
    sim.market.freeze()
    truth = sim.truth(EX, "DOGE/USDT:USDT", depth=20)
    book = client.fetch_order_book("DOGE/USDT:USDT", 20)
    assert len(book["bids"]) == len(book["asks"]) == 20
    assert [[p, a * 10] for p, a in book["asks"]] == [[pytest.approx(p), pytest.approx(a)] for p, a in truth["asks"]]
    # ccxt caps the limit at 300; the exchange's default depth without a limit is 10.
    assert len(client.fetch_order_book(BTC, 1000)["bids"]) == MAX_DEPTH
    assert "limit=300" in sim.requests(EX, path=BOOK)[-1].query
    assert len(client.fetch_order_book(BTC)["bids"]) == 10
    raw = client.publicFuturesGetSettleOrderBook({"settle": "usdt", "contract": "BTC_USDT", "limit": 5000})
    assert len(raw["bids"]) == MAX_DEPTH


def test_book_handler_renders_levels_in_contracts(sim):
    """The order-book handler alone (no HTTP): 300 levels of the truth, sizes in contracts, prices as strings."""
    tick = sim.market.freeze()
    req = Request(EX, "GET", BOOK, {"contract": "DOGE_USDT", "limit": "300", "with_id": "true"}, b"", sim.market,
                  tick)
    book = gateio.futures_order_book(req)
    truth = sim.truth(EX, "DOGE/USDT:USDT", depth=MAX_DEPTH)
    assert book["id"] == 6358770031 + tick and round(book["current"] * 1000) == truth["timestamp"]
    for side in ("bids", "asks"):
        assert [[float(level["p"]), level["s"] * 10] for level in book[side]] == [  # DOGE: 10 per contract
            [pytest.approx(p), pytest.approx(a)] for p, a in truth[side]]


# -- funding -----------------------------------------------------------------------------------------------
def assert_funding(f, truth):
    assert f["fundingRate"] == truth["funding_rate"]
    assert f["fundingTimestamp"] == truth["next_funding_time"]  # gate: next funding time is fundingTimestamp
    assert f["nextFundingTimestamp"] is None
    assert f[VENUES[EX].next_funding_field] == truth["next_funding_time"]
    assert f["markPrice"] == truth["mark_price"]
    assert f["indexPrice"] == truth["index_price"]
    assert f["interval"] == f"{truth['funding_interval_hours']}h"


def test_fetch_funding_rates_bulk(sim, client):
    sim.market.freeze()
    since = time.time()
    rates = client.fetch_funding_rates()
    assert sim.counts(EX, since) == {EX: {CONTRACTS: 1}}
    assert set(rates) == set(symbols(sim))
    for symbol, f in rates.items():
        assert_funding(f, sim.truth(EX, symbol))
    assert rates["SOL/USDT:USDT"]["interval"] == "4h" and rates[BTC]["interval"] == "8h"
    # with symbols, ccxt still fetches the whole list (the contract parameter filters nothing) and keeps those
    two = client.fetch_funding_rates([BTC, "WIF/USDT:USDT"])
    assert set(two) == {BTC, "WIF/USDT:USDT"}


def test_fetch_funding_rate_single(sim, client):
    sim.market.freeze()
    f = client.fetch_funding_rate("WIF/USDT:USDT")
    assert_funding(f, sim.truth(EX, "WIF/USDT:USDT"))
    assert f["interval"] == "4h"
    assert sim.requests(EX)[-1].path == CONTRACTS + "/WIF_USDT"


def test_unknown_symbol(sim, client):
    with pytest.raises(ccxt.BadSymbol):  # ccxt refuses locally, no request
        client.fetch_order_book("TAO/USDT:USDT")
    assert sim.requests(EX, path=BOOK) == []
    for call in (lambda: client.publicFuturesGetSettleOrderBook({"settle": "usdt", "contract": "TAO_USDT"}),
                 lambda: client.publicFuturesGetSettleContractsContract({"settle": "usdt", "contract": "TAO_USDT"}),
                 lambda: client.publicFuturesGetSettleTickers({"settle": "usdt", "contract": "NOPE_USDT"})):
        with pytest.raises(ccxt.BadSymbol, match="CONTRACT_NOT_FOUND"):
            call()
    assert sim.statuses(EX) == {200: 1, 400: 3}


# -- rate limits -------------------------------------------------------------------------------------------
def test_burst_without_throttle_gets_429_per_endpoint(sim, make_client):
    clients = []
    for _ in range(5):  # several connections, so the burst fits well inside one 10 s window
        ex = make_client(EX)
        ex.load_markets()
        ex.enableRateLimit = False
        clients.append(ex)

    def burst(ex):
        with pytest.raises(ccxt.RateLimitExceeded, match="TOO_MANY_REQUESTS"):
            for _ in range(100):
                ex.fetch_order_book(BTC, 5)
        return int(ex.last_response_headers["Retry-After"])

    with ThreadPoolExecutor(len(clients)) as pool:
        retry_after = list(pool.map(burst, clients))
    book_statuses = [e.status for e in sim.requests(EX, path=BOOK)]
    assert book_statuses.count(200) == 200
    assert 1 <= book_statuses.count(429) <= len(clients)
    assert all(1 <= r <= 11 for r in retry_after)
    # the budget is per endpoint: the tickers endpoint is still open
    assert clients[0].fetch_tickers([BTC])[BTC]["symbol"] == BTC


def test_throttled_burst_over_a_window_gets_no_429(sim, make_client):
    ex = make_client(EX, throttle=SharedThrottle(dataclasses.replace(VENUES[EX].budget, guard=LOADED_MACHINE_GUARD)))
    ex.load_markets()
    n = 205  # more than the 200 of one 10 s window on this endpoint: all answered only if spread out
    for _ in range(n):
        ex.fetch_order_book(BTC, 5)
    ex.fetch_tickers()
    assert sim.statuses(EX) == {200: n + 2}
    assert sim.peak_share(EX) == 1.0  # the burst used the whole window, no more


# -- faults ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, error", [
    ("http500", ccxt.ExchangeNotAvailable),
    ("http429", ccxt.RateLimitExceeded),
    ("http418", ccxt.DDoSProtection),
    ("reset", ccxt.NetworkError),
])
def test_http_faults(sim, client, kind, error):
    sim.inject_fault(EX, kind, count=1, retry_after=7)
    with pytest.raises(error) as info:
        client.fetch_order_book(BTC, 10)
    if kind == "reset":
        assert not isinstance(info.value, (ccxt.ExchangeNotAvailable, ccxt.RequestTimeout, ccxt.DDoSProtection))
    if kind in ("http429", "http418"):
        assert client.last_response_headers["Retry-After"] == "7"
    if kind == "http418":
        assert not isinstance(info.value, ccxt.RateLimitExceeded)
    assert len(client.fetch_order_book(BTC, 10)["bids"]) == 10


def test_hang_times_out(sim, make_client):
    ex = make_client(EX, timeout_ms=500)
    ex.load_markets()
    sim.market.freeze()
    sim.inject_fault(EX, "hang", count=1, hang_seconds=2)
    with pytest.raises(ccxt.RequestTimeout):  # ccxt's 500 ms timeout, not the 2 s hang ending
        ex.fetch_tickers()
    assert ex.fetch_tickers()[BTC]["bid"] == sim.truth(EX, BTC)["bid"]


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_unparseable_bodies(sim, client, kind):
    """What ccxt 4.5.90's gate does with a 200 whose body is not JSON: it does not always raise."""
    sim.market.freeze()
    sim.inject_fault(EX, kind, count=1)
    with pytest.raises(ccxt.BadResponse):  # NullResponse: "fetchTicker() returned empty response"
        client.fetch_ticker(BTC)
    sim.inject_fault(EX, kind, count=1)
    with pytest.raises(ccxt.ExchangeError, match="missing timestamp"):
        client.fetch_order_book(BTC, 10)
    sim.inject_fault(EX, kind, count=1)
    with pytest.raises(AttributeError):  # parse_tickers on a str: not a ccxt error
        client.fetch_tickers()
    sim.inject_fault(EX, kind, count=1)
    assert client.fetch_funding_rates() == {}  # silently empty
    sim.inject_fault(EX, kind, count=1)
    assert client.fetch_funding_rate(BTC)["fundingRate"] is None  # silently all None
    assert client.fetch_funding_rates()[BTC]["fundingRate"] == sim.truth(EX, BTC)["funding_rate"]


def test_drop_fields(sim, client):
    sim.market.freeze()
    truth = sim.truth(EX, BTC)
    sim.inject_fault(EX, "drop_fields", count=1, fields=("bid", "ask"))
    t = client.fetch_tickers()[BTC]
    assert t["bid"] is None and t["ask"] is None
    assert t["last"] == truth["last"] and t["symbol"] == BTC
    sim.inject_fault(EX, "drop_fields", count=1, fields=("last", "mark_price", "index_price"))
    t = client.fetch_ticker(BTC)
    assert (t["last"], t["markPrice"], t["indexPrice"]) == (None, None, None)
    assert t["bid"] == truth["bid"]
    sim.inject_fault(EX, "drop_fields", count=1, fields=("funding_rate", "next_funding_time"))
    f = client.fetch_funding_rates()[BTC]
    assert f["fundingRate"] is None and f["fundingTimestamp"] is None
    assert f["markPrice"] == truth["mark_price"]
    sim.inject_fault(EX, "drop_fields", count=1, fields=("mark_price", "index_price"))
    f = client.fetch_funding_rate(BTC)
    assert f["markPrice"] is None and f["indexPrice"] is None
    assert f["fundingRate"] == truth["funding_rate"]
    # every fault consumed: the next answers are whole
    assert_ticker(client.fetch_tickers()[BTC], truth, client.market(BTC)["contractSize"])
    assert_funding(client.fetch_funding_rates()[BTC], truth)


# -- settled funding: what Gate alone does (tests/test_simulator_settled.py: what every exchange does) ----------
def test_history_is_newest_first_in_seconds_at_most_1000(own_sim):
    c = history_client(own_sim, EX)   # a simulator of the test's own: a settle_at must not reach the shared one's
    now = own_sim.market.now_ms() // 1000 * 1000   # Gate counts in seconds
    for minutes in range(1, 1001):   # off-schedule settlements, so that BTC holds more than 1000
        own_sim.market.settle_at(EX, "BTC", now - minutes * 60_000 - 30_000)
    truth = [s["funding_time"] for s in own_sim.settlements(EX, BTC)][::-1]
    request = {"settle": "usdt", "contract": "BTC_USDT"}
    answer = c.publicFuturesGetSettleFundingRate({**request, "limit": 5000})
    assert [row["t"] for row in answer] == [t // 1000 for t in truth[:1000]]   # more than 1000: 1000
    assert isinstance(answer[0]["r"], str)
    assert len(c.publicFuturesGetSettleFundingRate(request)) == 100           # the default
    bounded = c.publicFuturesGetSettleFundingRate({**request, "from": truth[5] // 1000, "to": truth[2] // 1000})
    assert [row["t"] * 1000 for row in bounded] == truth[2:6]                   # both bounds inclusive
