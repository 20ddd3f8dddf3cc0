"""The HTX dialect of the simulator, exercised through the real ccxt `htx` class."""
import dataclasses
import json
import threading
import time

import ccxt
import pytest

from common.exchanges import VENUES, Bulk, SharedThrottle, create_exchange, htx_open_interest, redirect_urls
from common.mapping import open_interest
from tests.conftest import history_client
from tests.simulator import server as sim_server

EX = "htx"
VENUE = VENUES[EX]
BTC, DOGE = "BTC/USDT:USDT", "DOGE/USDT:USDT"
DEPTH_PATH = "/linear-swap-ex/market/depth"
MAX_DEPTH = 150  # type=step0: HTX's fixed REST depth
# The raw batch endpoints (ccxt has no bulk funding or index method for linear swaps): (path, api) for
# client.request, as the worker calls them.
FUNDING_BATCH = ("linear-swap-api/v1/swap_batch_funding_rate", ["contract", "public"])
INDEX_BATCH = ("linear-swap-api/v1/swap_index", ["contract", "public"])
OPEN_INTEREST_PATH = "/linear-swap-api/v1/swap_open_interest"
OPEN_INTEREST_CALL = next(call for call in VENUE.bulk_calls if call.fetch is htx_open_interest)


@pytest.fixture
def client(make_client):
    c = make_client(EX)
    c.load_markets()
    return c


def listed_symbols(sim):
    return {f"{c.base}/USDT:USDT" for c in sim.market.listed(EX)}


def contract_size(sim, symbol):
    return float(sim.market.contract_size(EX, sim.market.coins[symbol.split("/")[0]]))


def approx_levels(levels):
    return [[pytest.approx(p, rel=1e-12), pytest.approx(a, rel=1e-9)] for p, a in levels]


# -- markets ---------------------------------------------------------------------------------------

def test_load_markets_with_ccxt_default_options(sim):
    c = ccxt.htx({"timeout": 3000})  # ccxt's defaults: currencies, then spot, linear and inverse markets
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url(EX))
    c.load_markets()
    assert sim.counts(EX)[EX] == {"/v2/reference/currencies": 1, "/v1/common/symbols": 1,
                                  "/linear-swap-api/v1/swap_contract_info": 1,
                                  "/swap-api/v1/swap_contract_info": 1, "/api/v1/contract_contract_info": 1}
    swaps = {s for s, m in c.markets.items() if m["swap"] and m["linear"]}
    assert swaps == listed_symbols(sim)
    assert c.markets["BTC/USDT"]["spot"] and c.markets["BTC/USD:BTC"]["inverse"]
    assert any(m["future"] and m["inverse"] for m in c.markets.values())
    for absent in ("WIF/USDT:USDT", "TAO/USDT:USDT"):
        assert absent not in c.markets


def test_load_markets_restricted_to_linear_swaps(sim, client):
    assert sim.counts(EX)[EX] == {"/linear-swap-api/v1/swap_contract_info": 1}
    assert set(client.markets) == listed_symbols(sim)
    assert "WIF/USDT:USDT" not in client.markets and "TAO/USDT:USDT" not in client.markets
    for symbol, m in client.markets.items():
        coin = sim.market.coins[m["base"]]
        assert m["swap"] and m["linear"] and m["active"] and m["settle"] == "USDT" and m["id"] == f"{coin.base}-USDT"
        assert m["contractSize"] == contract_size(sim, symbol)
        assert m["precision"]["price"] == float(coin.price_tick)
        assert m["precision"]["amount"] == 1  # one contract = contract_size base units (the lot)
    assert client.markets[DOGE]["contractSize"] == 100 and client.markets[BTC]["contractSize"] == 0.001


# -- tickers ---------------------------------------------------------------------------------------

def check_ticker(sim, t, symbol):
    truth = sim.truth(EX, symbol)
    size = contract_size(sim, symbol)
    assert t["bid"] == truth["bid"] and t["ask"] == truth["ask"] and t["last"] == truth["last"]
    # ccxt takes baseVolume from HTX's `amount`, already in base units; `vol` is in contracts.
    assert t["baseVolume"] == pytest.approx(truth["volume_24h"])
    assert float(t["info"]["vol"]) * size == pytest.approx(truth["volume_24h"])
    assert t["bidVolume"] * size == pytest.approx(truth["bids"][0][1])
    assert t["askVolume"] * size == pytest.approx(truth["asks"][0][1])
    assert t["markPrice"] is None and t["indexPrice"] is None  # HTX tickers carry neither


def test_fetch_tickers_bulk(sim, client):
    sim.market.freeze()
    since = time.time()
    tickers = client.fetch_tickers()
    assert set(tickers) == listed_symbols(sim)
    for symbol, t in tickers.items():
        check_ticker(sim, t, symbol)
        assert t["timestamp"] == sim.truth(EX, symbol)["timestamp"]
    entries = sim.requests(EX, since)
    assert [(e.path, e.query) for e in entries] == [("/linear-swap-ex/market/detail/batch_merged",
                                                     "business_type=swap")]


def test_fetch_tickers_for_symbols_and_single(sim, client):
    sim.market.freeze()
    tickers = client.fetch_tickers([BTC, DOGE])
    assert set(tickers) == {BTC, DOGE}
    for symbol, t in tickers.items():
        check_ticker(sim, t, symbol)
    t = client.fetch_ticker("ETH/USDT:USDT")
    check_ticker(sim, t, "ETH/USDT:USDT")
    assert sim.counts(EX)[EX]["/linear-swap-ex/market/detail/merged"] == 1


# -- order book ------------------------------------------------------------------------------------

def test_order_book_at_max_depth(sim, client):
    sim.market.freeze()
    since = time.time()
    for symbol in (BTC, DOGE):
        book = client.fetch_order_book(symbol, VENUE.book_limit)
        truth = sim.truth(EX, symbol, depth=MAX_DEPTH)
        size = contract_size(sim, symbol)
        assert len(book["bids"]) == len(book["asks"]) == MAX_DEPTH
        assert book["timestamp"] == truth["timestamp"]
        assert book["bids"][0][0] == truth["bid"] and book["asks"][0][0] == truth["ask"]
        # amounts arrive in contracts: convert with the market's contract size
        assert [[p, a * size] for p, a in book["bids"]] == approx_levels(truth["bids"])
        assert [[p, a * size] for p, a in book["asks"]] == approx_levels(truth["asks"])
    assert {e.query for e in sim.requests(EX, since, DEPTH_PATH)} == {"type=step0&contract_code=BTC-USDT",
                                                                     "type=step0&contract_code=DOGE-USDT"}


def test_order_book_limits(sim, client):
    sim.market.freeze()
    # HTX's contract depth takes no size: ccxt sends nothing for `limit` and the answer keeps 150 levels.
    book = client.fetch_order_book(BTC, 20)
    assert len(book["bids"]) == MAX_DEPTH
    # The smaller fixed depth is type=step6: 20 levels, unmerged.
    book = client.fetch_order_book(BTC, params={"type": "step6"})
    truth = sim.truth(EX, BTC, depth=20)
    size = contract_size(sim, BTC)
    assert len(book["bids"]) == len(book["asks"]) == 20
    assert [[p, a * size] for p, a in book["asks"]] == approx_levels(truth["asks"])
    assert sim.requests(EX, path=DEPTH_PATH)[-1].query == "type=step6&contract_code=BTC-USDT"
    # merged steps are not simulated, an unknown type is HTX's error
    with pytest.raises(ccxt.ExchangeError, match="invalid type"):
        client.fetch_order_book(BTC, params={"type": "step99"})


# -- funding, mark, index --------------------------------------------------------------------------

def check_funding(sim, f, symbol):
    truth = sim.truth(EX, symbol)
    hours = truth["funding_interval_hours"]
    assert f["symbol"] == symbol
    assert f["fundingRate"] == pytest.approx(truth["funding_rate"])
    # HTX's funding_time is the upcoming settlement: ccxt's fundingTimestamp carries the next funding time,
    # and nextFundingTimestamp is the settlement after it.
    assert f["fundingTimestamp"] == truth["next_funding_time"] == f[VENUE.next_funding_field]
    assert f["nextFundingTimestamp"] == truth["next_funding_time"] + hours * 3_600_000
    assert f["interval"] == f"{hours}h"
    assert f["markPrice"] is None and f["indexPrice"] is None  # not in HTX's funding answers


def test_fetch_funding_rate_per_symbol(sim, client):
    sim.market.freeze()
    for symbol in (BTC, DOGE):  # DOGE settles every 4 h on HTX
        check_funding(sim, client.fetch_funding_rate(symbol), symbol)
    assert sim.counts(EX)[EX]["/v5/market/funding_rate"] == 2
    assert sim.truth(EX, DOGE)["funding_interval_hours"] == 4
    with pytest.raises(ccxt.NotSupported):  # ccxt has no bulk funding for linear swaps
        client.fetch_funding_rates()


def test_batch_funding_rate_raw_endpoint(sim, client):
    sim.market.freeze()
    since = time.time()
    path, api = FUNDING_BATCH
    raw = client.request(path, api, "GET", {})
    rates = client.parse_funding_rates(raw["data"])
    assert set(rates) == listed_symbols(sim)
    for symbol, f in rates.items():
        check_funding(sim, f, symbol)
    assert sim.counts(EX, since)[EX] == {"/linear-swap-api/v1/swap_batch_funding_rate": 1}


def test_mark_and_index_prices(sim, client):
    sim.market.freeze()
    since = time.time()
    candles = client.fetch_ohlcv(BTC, "1m", limit=1, params={"price": "mark"})
    assert len(candles) == 1 and candles[0][4] == sim.truth(EX, BTC)["mark_price"]
    path, api = INDEX_BATCH
    index = {row["contract_code"]: row["index_price"] for row in client.request(path, api, "GET", {})["data"]}
    for symbol in listed_symbols(sim):
        assert index[client.market(symbol)["id"]] == sim.truth(EX, symbol)["index_price"]
    assert sim.counts(EX, since)[EX] == {"/index/market/history/linear_swap_mark_price_kline": 1,
                                  "/linear-swap-api/v1/swap_index": 1}
    assert "size=1" in sim.requests(EX, path="mark_price_kline")[0].query


# -- open interest ---------------------------------------------------------------------------------

def merged_open_interest(client) -> dict:
    """The board's open interest per symbol, as the worker derives it: this cycle's tickers, the bulk
    open-interest rows merged into them by the venue's own merge, read through the venue's field."""
    bulk = Bulk(tickers=client.fetch_tickers())
    for row in OPEN_INTEREST_CALL.fetch(client):
        try:
            OPEN_INTEREST_CALL.merge(client, bulk, None, row)
        except (TypeError, ValueError):
            pass  # a malformed row costs its own open interest (the worker logs it)
    return {symbol: open_interest(client.market(symbol), t, VENUE.open_interest) for symbol, t in bulk.tickers.items()}


def test_open_interest_bulk_endpoint(sim, client):
    """One request answers every swap: `amount` in base units, `volume` in contracts of contract_size (DOGE's 100,
    BTC's 0.001); the board takes `amount`."""
    sim.market.freeze()
    since = time.time()
    rows = htx_open_interest(client)
    assert sim.counts(EX, since)[EX] == {OPEN_INTEREST_PATH: 1}
    assert "contract_type=swap" in sim.requests(EX, since)[0].query
    assert {client.safe_symbol(row["contract_code"], None, "-", "swap") for row in rows} == listed_symbols(sim)
    for row in rows:
        symbol = client.safe_symbol(row["contract_code"], None, "-", "swap")
        truth = sim.truth(EX, symbol)["open_interest"]
        assert isinstance(row["amount"], float) and isinstance(row["volume"], float)  # JSON numbers, as HTX's v1
        assert row["amount"] == pytest.approx(truth, rel=1e-12)
        assert row["volume"] * contract_size(sim, symbol) == pytest.approx(truth, rel=1e-9)
    merged = merged_open_interest(client)
    assert merged == {s: pytest.approx(sim.truth(EX, s)["open_interest"], rel=1e-12) for s in listed_symbols(sim)}
    assert merged[DOGE] != pytest.approx(float(sim.market.quote(EX, "DOGE").open_interest_contracts))


def test_open_interest_asked_for_futures_lists_nothing(sim, client):
    path, api = OPEN_INTEREST_PATH[1:], ["contract", "public"]
    assert client.request(path, api, "GET", {"business_type": "futures"})["data"] == []
    assert client.request(path, api, "GET", {"contract_type": "quarter"})["data"] == []
    assert len(client.request(path, api, "GET", {"business_type": "all"})["data"]) == len(listed_symbols(sim))
    assert [r["contract_code"] for r in client.request(path, api, "GET", {"contract_code": "BTC-USDT"})["data"]] == \
        ["BTC-USDT"]
    with pytest.raises(ccxt.ExchangeError, match="business_type"):
        client.request(path, api, "GET", {"business_type": "options"})


def test_open_interest_faults(sim, client):
    sim.market.freeze()
    sim.inject_fault(EX, "drop_fields", endpoint="swap_open_interest", count=1, fields=("mark_price", "last"))
    rows = htx_open_interest(client)
    assert {row["value"] for row in rows} == {None} and None not in {row["amount"] for row in rows}
    sim.inject_fault(EX, "bad_row", endpoint="swap_open_interest", count=1)
    merged = merged_open_interest(client)
    assert sum(value is None for value in merged.values()) == 1  # the garbled first row costs its symbol only
    assert sum(value is not None for value in merged.values()) == len(listed_symbols(sim)) - 1
    sim.inject_fault(EX, "http500", endpoint="swap_open_interest", count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        htx_open_interest(client)
    sim.inject_fault(EX, "bad_json", endpoint="swap_open_interest", count=1)
    with pytest.raises(ccxt.BaseError):
        htx_open_interest(client)
    assert len(htx_open_interest(client)) == len(listed_symbols(sim))  # the faults were consumed


def test_open_interest_merge_of_a_missing_or_malformed_amount(sim, client):
    """What the drop_fields fault cannot produce (open interest is no field of the simulator's quotes): a row
    without `amount` leaves the board's value null, never 0; one whose `amount` is no number raises (the worker
    counts it as a malformed row, and the symbol's other values stay)."""
    sim.market.freeze()
    bulk = Bulk(tickers=client.fetch_tickers([BTC, DOGE]))
    OPEN_INTEREST_CALL.merge(client, bulk, None, {"contract_code": "BTC-USDT", "amount": None, "volume": 5.0})
    assert open_interest(client.market(BTC), bulk.tickers[BTC], VENUE.open_interest) is None
    for bad in ("lots", -1.0, float("nan"), True, [1]):
        with pytest.raises(ValueError, match="amount"):
            OPEN_INTEREST_CALL.merge(client, bulk, None, {"contract_code": "DOGE-USDT", "amount": bad})
    assert open_interest(client.market(DOGE), bulk.tickers[DOGE], VENUE.open_interest) is None
    OPEN_INTEREST_CALL.merge(client, bulk, None, {"contract_code": "WIF-USDT", "amount": 3.0})  # not listed: ignored
    assert set(bulk.tickers) == {BTC, DOGE}


# -- unknown symbols -------------------------------------------------------------------------------

def test_unknown_symbol(sim, client):
    since = time.time()
    with pytest.raises(ccxt.BadSymbol):  # ccxt refuses a symbol its markets lack, without a request
        client.fetch_order_book("WIF/USDT:USDT")
    assert sim.requests(EX, since) == []
    # The exchange's own answers for a contract it does not list: HTTP 200 with an error body.
    with pytest.raises(ccxt.ExchangeError, match="invalid contract code"):
        client.contractPublicGetLinearSwapExMarketDepth({"contract_code": "WIF-USDT", "type": "step0"})
    with pytest.raises(ccxt.BadSymbol, match="1013"):
        client.contractPublicGetV5MarketFundingRate({"contract_code": "TAO-USDT"})
    with pytest.raises(ccxt.BadSymbol, match="1013"):
        client.request(FUNDING_BATCH[0], ["contract", "public"], "GET", {"contract_code": "WIF-USDT"})
    assert set(sim.statuses(EX)) == {200}


# -- rate limits -----------------------------------------------------------------------------------

def test_burst_without_throttle_gets_429(sim, make_client, monkeypatch):
    """Over budget within a second (several unthrottled clients at once) trips HTX's limit. The budget is
    scaled down to 200/s here: 800/s is more than a loaded 2-core machine reliably serves."""
    from tests.simulator import htx as dialect
    monkeypatch.setattr(dialect, "BUDGETS", [sim_server.Budget(200, 1.0)])
    clients = [make_client(EX) for _ in range(64)]
    errors, headers = [], []
    start = threading.Barrier(len(clients))

    def burst(c):
        c.enableRateLimit = False
        start.wait()
        for _ in range(20):
            try:
                c.contractPublicGetLinearSwapApiV1SwapIndex({"contract_code": "BTC-USDT"})
            except ccxt.BaseError as e:
                errors.append(e)
                headers.append(c.last_response_headers)

    threads = [threading.Thread(target=burst, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sim.statuses(EX)
    assert set(statuses) == {200, 429} and statuses[429] == len(errors)
    assert all(type(e) is ccxt.RateLimitExceeded for e in errors)
    assert {h["Retry-After"] for h in headers} <= {"1", "2"}  # a 1 s window: the oldest request leaves within it


def test_throttled_burst_over_several_windows_gets_no_429(sim, monkeypatch):
    """250 requests, two and a half windows' worth, all answered 200: the venue throttle spread them out.
    Budget scaled to 100/s on both sides, which one unthrottled client outruns on a loaded machine too."""
    from tests.simulator import htx as dialect
    monkeypatch.setattr(dialect, "BUDGETS", [sim_server.Budget(100, 1.0)])
    # guard: the throttle counts a request when it leaves, the simulator when it arrives, which on a loaded
    # machine can be more than the venue's 50 ms later
    throttle = SharedThrottle(dataclasses.replace(VENUE.budget, limit=100, window=1.0, guard=0.3))
    c = create_exchange(EX, api_url=sim.api_url(EX), timeout_ms=3000, throttle=throttle)
    for _ in range(250):
        c.contractPublicGetLinearSwapApiV1SwapIndex({"contract_code": "BTC-USDT"})
    assert sim.statuses(EX) == {200: 250}
    assert 0.5 <= sim.peak_share(EX) <= 1.0


# -- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, error", [
    ("http500", ccxt.ExchangeNotAvailable),   # HTX's gateway-internal-error body
    ("http429", ccxt.RateLimitExceeded),      # body {"err-msg": "request limit"}
    ("http418", ccxt.RateLimitExceeded),      # HTX sends no 418; ccxt reads the same body first
    ("hang", ccxt.RequestTimeout),
    ("reset", ccxt.NetworkError),
    ("bad_json", ccxt.ExchangeError),         # htx.fetch_order_book: "returned unrecognized response"
    ("empty", ccxt.ExchangeError),
])
def test_fault_on_order_book(sim, make_client, kind, error):
    c = make_client(EX, timeout_ms=500)
    c.load_markets()
    sim.inject_fault(EX, kind, endpoint="depth", count=1, retry_after=3, hang_seconds=2)
    with pytest.raises(error) as info:
        c.fetch_order_book(BTC)
    if kind == "reset":
        assert type(info.value) is ccxt.NetworkError  # not a timeout, not an exchange answer
    if kind in ("http429", "http418"):
        assert c.last_response_headers["Retry-After"] == "3"
        assert sim.statuses(EX)[int(kind[4:])] == 1
    assert len(c.fetch_order_book(BTC)["bids"]) == MAX_DEPTH  # the fault was consumed


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_garbled_tickers_parse_to_nothing(sim, client, kind):
    """ccxt's htx raises nothing for an unparsable ticker body: fetch_tickers returns {} (a worker must treat
    that as a failed call)."""
    sim.inject_fault(EX, kind, endpoint="batch_merged", count=1)
    assert client.fetch_tickers() == {}
    assert set(client.fetch_tickers()) == listed_symbols(sim)


def test_drop_fields(sim, client):
    sim.market.freeze()
    sim.inject_fault(EX, "drop_fields", endpoint="batch_merged", count=1, fields=("bid", "ask", "last"))
    tickers = client.fetch_tickers()
    assert set(tickers) == listed_symbols(sim)
    assert all(t["bid"] is None and t["ask"] is None and t["last"] is None for t in tickers.values())
    assert tickers[BTC]["info"]["bid"] is None and tickers[BTC]["info"]["close"] is None
    check_ticker(sim, client.fetch_tickers()[BTC], BTC)

    sim.inject_fault(EX, "drop_fields", endpoint="funding_rate", count=1, fields=("funding_rate", "next_funding_time"))
    f = client.fetch_funding_rate(BTC)
    assert f["fundingRate"] is None and f["fundingTimestamp"] is None and f["nextFundingTimestamp"] is None
    assert f["interval"] is None
    check_funding(sim, client.fetch_funding_rate(BTC), BTC)

    sim.inject_fault(EX, "drop_fields", endpoint="mark_price", count=1, fields=("mark_price",))
    assert client.fetch_ohlcv(BTC, "1m", limit=1, params={"price": "mark"})[0][4] is None
    assert client.fetch_ohlcv(BTC, "1m", limit=1, params={"price": "mark"})[0][4] == sim.truth(EX, BTC)["mark_price"]

    sim.inject_fault(EX, "drop_fields", endpoint="swap_index", count=1, fields=("index_price",))
    path, api = INDEX_BATCH
    assert all(row["index_price"] is None for row in client.request(path, api, "GET", {})["data"])


def test_depth_handler_renders_the_book_in_contracts(sim):
    """The depth handler alone (no HTTP): its hand-built JSON holds the truth's 150 levels, sizes in contracts."""
    from tests.simulator import htx
    from tests.simulator.server import Request
    tick = sim.market.freeze()
    req = Request(EX, "GET", DEPTH_PATH, {"contract_code": "DOGE-USDT", "type": "step0"}, b"", sim.market, tick)
    body = json.loads(htx.depth(req).body)
    truth = sim.truth(EX, DOGE, depth=MAX_DEPTH)
    size = contract_size(sim, DOGE)
    assert body["ch"] == "market.DOGE-USDT.depth.step0" and body["tick"]["ts"] == truth["timestamp"]
    for side in ("bids", "asks"):
        assert [[p, a * size] for p, a in body["tick"][side]] == approx_levels(truth[side])


# -- settled funding (SPEC 14): what HTX alone does (tests/test_simulator_settled.py: what every exchange does) --
HISTORY_PATH = "/v5/market/funding_rate_history"


@pytest.fixture
def history(sim):
    return sim, history_client(sim, EX)


def test_history_answers_the_newest_100_at_most_newest_first_in_strings(history):
    sim, client = history
    code = {"contract_code": "DOGE-USDT"}
    newest = sim.settlements(EX, DOGE)[::-1]
    rows = client.contractPublicGetV5MarketFundingRateHistory({**code, "limit": 100})["data"]
    assert [(int(r["funding_time"]), float(r["funding_rate"])) for r in rows] == \
        [(t["funding_time"], t["rate"]) for t in newest[:100]]
    assert all(isinstance(r[k], str) for r in rows for k in ("id", "funding_rate", "funding_time"))
    assert len(client.contractPublicGetV5MarketFundingRateHistory(code)["data"]) == 50   # without a limit
    with pytest.raises(ccxt.InvalidOrder, match="1067"):   # HTX refuses more than 100
        client.contractPublicGetV5MarketFundingRateHistory({**code, "limit": 101})
    assert len(client.fetch_funding_rate_history(DOGE, limit=500)) == 100   # ccxt asks for 100, no more
    assert "limit=100" in sim.requests(EX, path=HISTORY_PATH)[-1].query


def test_history_time_bounds_are_inclusive(history):
    sim, client = history
    newest = sim.settlements(EX, DOGE)[::-1]
    rows = client.contractPublicGetV5MarketFundingRateHistory(
        {"contract_code": "DOGE-USDT", "start_time": newest[20]["funding_time"],
         "end_time": newest[10]["funding_time"]})["data"]
    assert [int(r["funding_time"]) for r in rows] == [t["funding_time"] for t in newest[10:21]]
