"""The okx dialect of the simulator, exercised through the real ccxt `okx` class (4.5.90)."""
import dataclasses
import time

import ccxt
import pytest

from common.exchanges import VENUES, SharedThrottle, create_exchange, redirect_urls
from tests.conftest import backfill, history_client
from tests.simulator import Simulator, okx

EX = "okx"
BTC = "BTC/USDT:USDT"
INVERSE = {"BTC/USD:BTC": 100.0, "ETH/USD:ETH": 10.0}
# OKX's published limits, requests per IP per 2 s, endpoint by endpoint (docs-v5; ccxt's costs agree).
PUBLISHED = {
    okx.INSTRUMENTS: 20, okx.TICKERS: 20, okx.TICKER: 20, okx.BOOKS: 40, okx.BOOKS_FULL: 10, okx.FUNDING: 10,
    okx.MARK: 10, okx.INDEX: 20, okx.OPEN_INTEREST: 20, okx.FUNDING_HISTORY: 10,
}


# The throttle counts a request when it leaves, the simulator when it arrives: on a loaded test machine a
# request can take longer than the venue's guard to arrive, so throttled tests hold each one longer.
LOADED_MACHINE_GUARD = 0.3


@pytest.fixture
def client(make_client):
    ex = make_client(EX)
    ex.load_markets()
    return ex


@pytest.fixture
def fast(client):
    """The client without any throttle: what the exchange's own limits do to a burst."""
    client.enableRateLimit = False
    return client


def linear_symbols(market):
    return [f"{c.base}/USDT:USDT" for c in market.listed(EX)]


def contract_size(market, symbol):
    return float(market.contract_size(EX, market.coins[symbol.split("/")[0]]))


# -- markets -----------------------------------------------------------------------------------------------
def assert_markets(market, markets):
    listed = market.listed(EX)
    assert listed, "the simulator lists swaps on okx"
    for coin in listed:
        m = markets[f"{coin.base}/USDT:USDT"]
        assert (m["type"], m["swap"], m["linear"], m["inverse"], m["active"]) == ("swap", True, True, False, True)
        assert (m["settle"], m["quote"], m["id"]) == ("USDT", "USDT", f"{coin.base}-USDT-SWAP")
        assert m["contractSize"] == float(coin.contract_size[EX])
        assert m["precision"] == {"amount": 1.0, "price": float(coin.price_tick)}
        assert m["limits"]["amount"]["min"] == 1
    for symbol, usd in INVERSE.items():
        m = markets[symbol]
        assert (m["inverse"], m["linear"], m["contractSize"]) == (True, False, usd)
    linear = [s for s, m in markets.items() if m["linear"]]
    assert sorted(linear) == sorted(linear_symbols(market))


def test_load_markets_is_one_swap_request(sim, client):
    assert_markets(sim.market, client.markets)
    assert client.markets["BTC/USDT:USDT"]["contractSize"] == 0.01
    assert client.markets["DOGE/USDT:USDT"]["contractSize"] == 1000
    assert "WIF/USDT:USDT" not in client.markets  # WIF is not listed on okx here
    assert len(client.markets) == len(sim.market.listed(EX)) + len(INVERSE)
    assert [(e.path, e.query) for e in sim.requests(EX)] == [(okx.INSTRUMENTS, "instType=SWAP")]


def test_load_markets_with_ccxt_default_options(sim):
    ex = ccxt.okx({"timeout": 3000})
    ex.urls["api"] = redirect_urls(ex.urls["api"], sim.api_url(EX))
    assert_markets(sim.market, ex.load_markets())
    queries = sorted(e.query for e in sim.requests(EX, path=okx.INSTRUMENTS))
    assert queries == ["instType=FUTURES", "instType=OPTION&uly=BTC-USD", "instType=OPTION&uly=ETH-USD",
                       "instType=SPOT", "instType=SWAP"]
    assert sim.statuses(EX) == {200: 5}


# -- bulk answers against the truth ------------------------------------------------------------------------
def test_tickers_equal_truth(sim, client):
    sim.market.freeze()
    since = time.time()
    tickers = client.fetch_tickers()
    assert [(e.path, e.query) for e in sim.requests(EX, since)] == [(okx.TICKERS, "instType=SWAP")]
    assert set(tickers) == set(linear_symbols(sim.market)) | set(INVERSE)
    for symbol in linear_symbols(sim.market):
        t, truth, size = tickers[symbol], sim.truth(EX, symbol), contract_size(sim.market, symbol)
        assert (t["bid"], t["ask"], t["last"]) == (truth["bid"], truth["ask"], truth["last"])
        assert t["timestamp"] == truth["timestamp"]
        # ccxt's baseVolume is OKX's vol24h: contracts. volCcy24h is the base volume.
        assert float(t["info"]["volCcy24h"]) == pytest.approx(truth["volume_24h"])
        assert t["baseVolume"] * size == pytest.approx(truth["volume_24h"])
        assert t["bidVolume"] * size == pytest.approx(truth["bids"][0][1])
        assert t["askVolume"] * size == pytest.approx(truth["asks"][0][1])
    btc = tickers[BTC]
    assert btc["baseVolume"] == pytest.approx(float(btc["info"]["volCcy24h"]) * 100)  # ctVal 0.01: they differ


def test_single_ticker(sim, client):
    sim.market.freeze()
    t = client.fetch_ticker("SOL/USDT:USDT")
    assert t["bid"] == sim.truth(EX, "SOL/USDT:USDT")["bid"]
    assert sim.requests(EX, path=okx.TICKER)[-1].query == "instId=SOL-USDT-SWAP"


def test_funding_rates_and_intervals(sim, client):
    sim.market.freeze()
    since = time.time()
    rates = client.fetch_funding_rates()
    assert [(e.path, e.query) for e in sim.requests(EX, since)] == [(okx.FUNDING, "instId=ANY")]
    assert set(rates) == set(linear_symbols(sim.market)) | set(INVERSE)
    for symbol in linear_symbols(sim.market):
        f, truth = rates[symbol], sim.truth(EX, symbol)
        hours = truth["funding_interval_hours"]
        assert f["fundingRate"] == truth["funding_rate"]
        assert f["fundingTimestamp"] == truth["next_funding_time"]  # OKX's fundingTime: the upcoming one
        assert f["nextFundingTimestamp"] == truth["next_funding_time"] + hours * 3_600_000
        assert f["interval"] == f"{hours}h"
        assert f["info"]["method"] and f["info"]["ts"] == str(truth["timestamp"])
    intervals = {s: rates[s]["interval"] for s in ("BTC/USDT:USDT", "SOL/USDT:USDT", "DOGE/USDT:USDT", "TAO/USDT:USDT")}
    assert intervals == {"BTC/USDT:USDT": "8h", "SOL/USDT:USDT": "4h", "DOGE/USDT:USDT": "2h", "TAO/USDT:USDT": "1h"}
    one = client.fetch_funding_rate("DOGE/USDT:USDT")
    assert one["interval"] == "2h" and sim.requests(EX, path=okx.FUNDING)[-1].query == "instId=DOGE-USDT-SWAP"


def test_mark_prices(sim, client):
    sim.market.freeze()
    marks = client.fetch_mark_prices()
    assert sim.requests(EX, path=okx.MARK)[-1].query == "instType=SWAP"
    for symbol in linear_symbols(sim.market):
        assert marks[symbol]["markPrice"] == sim.truth(EX, symbol)["mark_price"]
        assert marks[symbol]["timestamp"] == sim.truth(EX, symbol)["timestamp"]


def test_index_prices(sim, client):
    sim.market.freeze()
    rows = {r["instId"]: r for r in client.publicGetMarketIndexTickers({"quoteCcy": "USDT"})["data"]}
    assert set(rows) == {f"{c.base}-USDT" for c in sim.market.listed(EX)}
    for symbol in linear_symbols(sim.market):
        row, truth = rows[symbol.split("/")[0] + "-USDT"], sim.truth(EX, symbol)
        assert float(row["idxPx"]) == truth["index_price"] and int(row["ts"]) == truth["timestamp"]
    one = client.publicGetMarketIndexTickers({"instId": "ETH-USDT"})["data"]
    assert [r["instId"] for r in one] == ["ETH-USDT"]
    with pytest.raises(ccxt.ExchangeError, match="50015"):
        client.publicGetMarketIndexTickers()


def test_open_interest(sim, client):
    sim.market.freeze()
    rows = {r["instId"]: r for r in client.publicGetPublicOpenInterest({"instType": "SWAP"})["data"]}
    interests = client.fetch_open_interests()
    for symbol in linear_symbols(sim.market):
        truth, size = sim.truth(EX, symbol), contract_size(sim.market, symbol)
        row = rows[client.market(symbol)["id"]]
        assert float(row["oiCcy"]) == pytest.approx(truth["open_interest"])
        assert float(row["oi"]) * size == pytest.approx(truth["open_interest"])  # oi: contracts
        assert float(row["oiUsd"]) == pytest.approx(truth["open_interest"] * truth["mark_price"], abs=0.01)
        assert interests[symbol]["openInterestAmount"] == float(row["oi"])
    assert {"BTC-USD-SWAP", "ETH-USD-SWAP"} <= set(rows)


# -- order books -------------------------------------------------------------------------------------------
def assert_book(book, truth, size, depth):
    assert len(book["bids"]) == len(book["asks"]) == depth
    assert book["timestamp"] == truth["timestamp"]
    for side in ("bids", "asks"):
        got = [[p, a * size] for p, a, *_ in book[side]]  # ccxt leaves okx amounts in contracts
        assert got == [[pytest.approx(p), pytest.approx(a)] for p, a in truth[side]]


def test_books_at_400_and_books_full_at_1000(sim, client):
    sim.market.freeze()
    size = contract_size(sim.market, BTC)
    assert_book(client.fetch_order_book(BTC, 400), sim.truth(EX, BTC, depth=400), size, 400)
    assert [(e.path, e.query) for e in sim.requests(EX, path="/books")] == [(okx.BOOKS, "instId=BTC-USDT-SWAP&sz=400")]
    full = client.fetch_order_book(BTC, 1000)  # over 400: ccxt asks books-full
    assert_book(full, sim.truth(EX, BTC, depth=1000), size, 1000)
    assert sim.requests(EX)[-1].path == okx.BOOKS_FULL
    doge = "DOGE/USDT:USDT"
    assert_book(client.fetch_order_book(doge, 20), sim.truth(EX, doge, depth=20), 1000.0, 20)


def test_books_full_answers_what_the_book_has(sim, client):
    sim.market.freeze()
    book = client.fetch_order_book(BTC, params={"method": "publicGetMarketBooksFull"})  # ccxt's default sz 5000
    assert sim.requests(EX)[-1].query == "instId=BTC-USDT-SWAP&sz=5000"
    assert len(book["bids"]) == len(book["asks"]) == sim.market.book_depth
    raw = client.publicGetMarketBooks({"instId": "BTC-USDT-SWAP"})["data"][0]
    assert len(raw["bids"]) == 1 and len(raw["bids"][0]) == 4  # default sz 1; [px, sz, "0", orders]


@pytest.mark.parametrize("method, sz", [("publicGetMarketBooks", 401), ("publicGetMarketBooks", 0),
                                        ("publicGetMarketBooksFull", 5001), ("publicGetMarketBooksFull", "x")])
def test_book_depth_out_of_range(sim, client, method, sz):
    with pytest.raises(ccxt.BadRequest, match='"51000"'):
        getattr(client, method)({"instId": "BTC-USDT-SWAP", "sz": sz})
    assert sim.statuses(EX) == {200: 1, 400: 1}


def test_unknown_instrument(sim, client):
    calls = (lambda: client.publicGetMarketBooks({"instId": "WIF-USDT-SWAP"}),
             lambda: client.publicGetMarketTicker({"instId": "NOPE-USDT-SWAP"}),
             lambda: client.publicGetPublicFundingRate({"instId": "NOPE-USDT-SWAP"}))
    for call in calls:
        with pytest.raises(ccxt.BadSymbol, match='"51001"'):
            call()
    with pytest.raises(ccxt.BadRequest, match='"50014"'):  # a parameter left out
        client.publicGetPublicFundingRate()
    assert sim.statuses(EX) == {200: 1, 400: 4}


# -- rate limits -------------------------------------------------------------------------------------------
RAW_CALLS = {
    okx.INSTRUMENTS: ("publicGetPublicInstruments", {"instType": "SWAP"}),
    okx.TICKERS: ("publicGetMarketTickers", {"instType": "SWAP"}),
    okx.TICKER: ("publicGetMarketTicker", {"instId": "BTC-USDT-SWAP"}),
    okx.BOOKS: ("publicGetMarketBooks", {"instId": "BTC-USDT-SWAP", "sz": 5}),
    okx.BOOKS_FULL: ("publicGetMarketBooksFull", {"instId": "BTC-USDT-SWAP", "sz": 5}),
    okx.FUNDING: ("publicGetPublicFundingRate", {"instId": "ANY"}),
    okx.MARK: ("publicGetPublicMarkPrice", {"instType": "SWAP"}),
    okx.INDEX: ("publicGetMarketIndexTickers", {"quoteCcy": "USDT"}),
    okx.OPEN_INTEREST: ("publicGetPublicOpenInterest", {"instType": "SWAP"}),
    okx.FUNDING_HISTORY: ("publicGetPublicFundingRateHistory", {"instId": "BTC-USDT-SWAP"}),
}


def call(client, path):
    method, params = RAW_CALLS[path]
    return getattr(client, method)(dict(params))


def test_books_full_11th_request_in_2s_is_429_without_retry_after(sim, fast):
    now = time.time()
    sim.clock = lambda: now  # every request inside one 2 s window
    for _ in range(10):
        call(fast, okx.BOOKS_FULL)
    with pytest.raises(ccxt.RateLimitExceeded) as info:
        call(fast, okx.BOOKS_FULL)
    assert '"code":"50011"' in str(info.value) and '"msg":"Too Many Requests"' in str(info.value)
    assert "Retry-After" not in fast.last_response_headers
    assert sim.requests(EX)[-1].status == 429
    assert len(fast.fetch_order_book(BTC, 400)["bids"]) == 400  # books has a budget of its own
    sim.clock = lambda: now + 2.0  # the window has passed
    call(fast, okx.BOOKS_FULL)
    assert sim.statuses(EX) == {200: 13, 429: 1}


def test_every_endpoint_has_its_published_budget(sim, fast):
    assert {b.paths: (b.limit, b.window) for b in okx.BUDGETS} == {(p,): (n, 2.0) for p, n in PUBLISHED.items()}
    now = time.time() + 5  # past the window of the fixture's load_markets
    sim.clock = lambda: now
    for path, limit in PUBLISHED.items():
        for _ in range(limit):
            call(fast, path)
        with pytest.raises(ccxt.RateLimitExceeded):
            call(fast, path)
        statuses = [e.status for e in sim.requests(EX, since=now, path=path) if e.path == path]
        assert statuses == [200] * limit + [429], path
    assert sim.peak_share(EX) == 1.0


def test_throttled_worker_client_gets_no_429(sim, make_client):
    """The worker's own budget (VENUES) keeps to every endpoint's published limit: more requests than one
    window holds, on the tightest endpoints, all answered."""
    ex = make_client(EX, throttle=SharedThrottle(dataclasses.replace(VENUES[EX].budget, guard=LOADED_MACHINE_GUARD)))
    ex.load_markets()
    for _ in range(12):  # books-full: 10 per 2 s
        assert len(ex.fetch_order_book(BTC, VENUES[EX].book_limit)["bids"]) == sim.market.book_depth
    for _ in range(12):  # funding-rate: 10 per 2 s
        ex.fetch_funding_rates()
    assert sim.requests(EX, path=okx.BOOKS_FULL)[0].query == f"instId=BTC-USDT-SWAP&sz={VENUES[EX].book_limit}"
    assert sim.statuses(EX) == {200: 25}


def test_budgets_are_per_client_address(sim, fast):
    now = time.time()
    sim.clock = lambda: now
    for _ in range(10):
        call(fast, okx.BOOKS_FULL)
    assert sim.handle("GET", f"/okx{okx.BOOKS_FULL}?instId=BTC-USDT-SWAP&sz=1", b"").status == 429
    assert sim.handle("GET", f"/okx{okx.BOOKS_FULL}?instId=BTC-USDT-SWAP&sz=1", b"", client="127.0.0.2").status == 200


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
        assert "Retry-After" not in client.last_response_headers  # OKX sends none, whatever the fault asks
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
def test_unparseable_bodies_come_back_empty(sim, fast, kind):
    """What ccxt 4.5.90's okx does with a 200 whose body is not JSON: no error, an empty answer. A worker
    must tell an empty bulk answer from a market with no contracts."""
    sim.market.freeze()
    for fetch in (fast.fetch_tickers, fast.fetch_funding_rates, fast.fetch_mark_prices, fast.fetch_open_interests):
        sim.inject_fault(EX, kind, count=1)
        assert fetch() == {}
    sim.inject_fault(EX, kind, count=1)
    book = fast.fetch_order_book(BTC, 10)
    assert (book["bids"], book["asks"], book["timestamp"]) == ([], [], None)
    assert fast.fetch_tickers()[BTC]["bid"] == sim.truth(EX, BTC)["bid"]


def test_bad_row_drops_the_first_row(sim, fast):
    sim.market.freeze()
    first = linear_symbols(sim.market)[0]
    for fetch, endpoint in ((fast.fetch_tickers, okx.TICKERS), (fast.fetch_funding_rates, okx.FUNDING),
                            (fast.fetch_mark_prices, okx.MARK), (fast.fetch_open_interests, okx.OPEN_INTEREST)):
        sim.inject_fault(EX, "bad_row", endpoint=endpoint, count=1)
        rows = fetch()
        assert first not in rows and "ETH/USDT:USDT" in rows, endpoint
    sim.inject_fault(EX, "bad_row", endpoint=okx.INDEX, count=1)
    assert call(fast, okx.INDEX)["data"][0] == "garbled"
    sim.inject_fault(EX, "bad_row", endpoint=okx.BOOKS, count=1)
    assert fast.fetch_order_book(BTC, 10)["bids"] == []  # data[0] is the book: nothing left


def test_bad_level(sim, fast):
    sim.market.freeze()
    truth = sim.truth(EX, BTC, depth=10)
    sim.inject_fault(EX, "bad_level", endpoint=okx.BOOKS, count=1)
    book = fast.fetch_order_book(BTC, 10)
    assert book["asks"][0][0] == truth["ask"] and book["asks"][0][1] is None  # ccxt passes the hole on
    assert book["bids"][0][1] * 0.01 == pytest.approx(truth["bids"][0][1])
    assert fast.fetch_order_book(BTC, 10)["asks"][0][1] is not None


def test_drop_fields(sim, fast):
    sim.market.freeze()
    truth = sim.truth(EX, BTC)
    sim.inject_fault(EX, "drop_fields", endpoint=okx.TICKERS, count=1, fields=("bid", "ask", "last"))
    t = fast.fetch_tickers()[BTC]
    assert (t["bid"], t["ask"], t["last"], t["bidVolume"]) == (None, None, None, None)
    assert t["info"]["bidPx"] == "" and t["baseVolume"] is not None
    sim.inject_fault(EX, "drop_fields", endpoint=okx.FUNDING, count=1, fields=("funding_rate", "next_funding_time"))
    f = fast.fetch_funding_rates()[BTC]
    assert (f["fundingRate"], f["fundingTimestamp"], f["nextFundingTimestamp"], f["interval"]) == (None,) * 4
    sim.inject_fault(EX, "drop_fields", endpoint=okx.MARK, count=1, fields=("mark_price",))
    assert fast.fetch_mark_prices()[BTC]["markPrice"] is None
    sim.inject_fault(EX, "drop_fields", endpoint=okx.INDEX, count=1, fields=("index_price",))
    assert call(fast, okx.INDEX)["data"][0]["idxPx"] == ""
    # every fault consumed: the next answers are whole
    assert fast.fetch_tickers()[BTC]["bid"] == truth["bid"]
    assert fast.fetch_funding_rates()[BTC]["fundingRate"] == truth["funding_rate"]


# -- settled funding (SPEC 14): what OKX alone does (tests/test_simulator_settled.py: what every exchange does) --
HOUR_MS = 3_600_000
SETTLED = VENUES[EX].settled


@pytest.fixture
def history(own_sim):
    """A simulator of the test's own (a settle_at must not reach the shared one's market) and a client of it."""
    return own_sim, history_client(own_sim, EX)


def history_pages(sim) -> int:
    return len(sim.requests(EX, path=okx.FUNDING_HISTORY))


def test_doge_changed_from_8_h_to_2_h(history):
    """8 h until 5 days ago, 2 h since: 25 days of 8 h and 5 of 2 h (75 + 60, less the 8 h one the window starts
    after); the change falls on the 8 h grid, so one more 2 h settlement for each 2 h the clock is past it."""
    sim, client = history
    got, truth = backfill(sim, EX, client, "DOGE/USDT:USDT")
    gaps = [(b - a) // HOUR_MS for (a, _), (b, _) in zip(got, got[1:])]
    assert got == truth and gaps == sorted(gaps, reverse=True) and set(gaps) == {8, 2}
    assert len(truth) == 25 * 3 + 5 * 12 + sim.market.now_ms() % (8 * HOUR_MS) // (2 * HOUR_MS)


@pytest.fixture
def hourly_btc(history):
    """BTC settled every hour for the last 30 days (settle_at between its 8 h ones): more than one answer holds."""
    sim, client = history
    now = sim.market.now_ms()
    for t in range(now // HOUR_MS * HOUR_MS - 30 * 24 * HOUR_MS + HOUR_MS, now, HOUR_MS):
        if t % (8 * HOUR_MS):
            sim.market.settle_at(EX, "BTC", t)
    return sim, client


def test_history_answers_the_newest_400_at_most_newest_first(hourly_btc):
    sim, client = hourly_btc
    newest = sim.settlements(EX, BTC)[::-1]
    rows = client.publicGetPublicFundingRateHistory({"instId": "BTC-USDT-SWAP", "limit": "500"})["data"]
    assert [(int(r["fundingTime"]), float(r["realizedRate"])) for r in rows] == \
        [(t["funding_time"], t["rate"]) for t in newest[:400]]
    assert all(isinstance(value, str) for r in rows for value in r.values())
    assert len(client.publicGetPublicFundingRateHistory({"instId": "BTC-USDT-SWAP"})["data"]) == 400
    with pytest.raises(ccxt.BadRequest, match='"51000"'):
        client.publicGetPublicFundingRateHistory({"instId": "BTC-USDT-SWAP", "limit": "0"})


def test_history_bounds_are_exclusive(hourly_btc):
    sim, client = hourly_btc
    newest = sim.settlements(EX, BTC)[::-1]
    rows = client.publicGetPublicFundingRateHistory(
        {"instId": "BTC-USDT-SWAP", "after": newest[10]["funding_time"], "before": newest[20]["funding_time"]})["data"]
    assert [int(r["fundingTime"]) for r in rows] == [t["funding_time"] for t in newest[11:20]]


def test_a_backfill_longer_than_one_answer_pages_back_by_after(hourly_btc):
    sim, client = hourly_btc
    got, truth = backfill(sim, EX, client, BTC)
    assert got == truth and len(truth) == 30 * 24
    assert history_pages(sim) == len(truth) // SETTLED.page_size + 1 == 2
    assert sim.statuses(EX) == {200: len(sim.requests(EX))}


# -- the real-size market ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real():
    sim = Simulator(real_sizes=True).start()
    sim.market.freeze()
    yield sim
    sim.stop()


def test_real_size_market(real):
    ex = create_exchange(EX, api_url=real.api_url(EX), timeout_ms=3000)
    markets = ex.load_markets()
    assert_markets(real.market, markets)
    linear = linear_symbols(real.market)
    assert len(linear) == 250
    tickers, rates = ex.fetch_tickers(), ex.fetch_funding_rates()
    marks = ex.fetch_mark_prices()
    oi = {r["instId"]: r for r in ex.publicGetPublicOpenInterest({"instType": "SWAP"})["data"]}
    index = {r["instId"]: r for r in ex.publicGetMarketIndexTickers({"quoteCcy": "USDT"})["data"]}
    odd = [f"{c.base}/USDT:USDT" for c in real.market.listed(EX) if c.missing]
    for symbol in linear[::10] + odd:
        truth, size = real.truth(EX, symbol), contract_size(real.market, symbol)
        base = symbol.split("/")[0]
        assert markets[symbol]["contractSize"] == size
        t, f = tickers[symbol], rates[symbol]
        assert (t["bid"], t["ask"], t["last"]) == (truth["bid"], truth["ask"], truth["last"])
        volume = None if t["baseVolume"] is None else t["baseVolume"] * size
        assert volume == (None if truth["volume_24h"] is None else pytest.approx(truth["volume_24h"]))
        assert f["fundingRate"] == truth["funding_rate"]
        assert f["fundingTimestamp"] == truth["next_funding_time"]
        hours = truth["funding_interval_hours"]
        assert f["interval"] == (None if truth["next_funding_time"] is None else f"{hours}h")
        assert marks[symbol]["markPrice"] == truth["mark_price"]
        assert float(index[f"{base}-USDT"]["idxPx"]) == truth["index_price"]
        oi_base = oi[f"{base}-USDT-SWAP"]["oiCcy"]
        assert (float(oi_base) if oi_base else None) == (None if truth["open_interest"] is None
                                                         else pytest.approx(truth["open_interest"]))
    fresh = [s for s in odd if real.truth(EX, s)["funding_rate"] is None]
    assert len(fresh) == 1 and rates[fresh[0]]["info"]["fundingRate"] == ""  # OKX writes "" before the first funding
    mix = {rates[s]["interval"] for s in linear if s not in fresh}
    assert mix == {"8h", "4h", "2h", "1h"}
    assert all(rates[s]["interval"] == f"{real.truth(EX, s)['funding_interval_hours']}h"
               for s in linear if s not in fresh)
