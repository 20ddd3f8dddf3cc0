"""The bitget dialect of the exchange simulator, exercised through the real ccxt `bitget` class."""
import dataclasses
import time
from urllib.parse import parse_qsl
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import ccxt
import pytest

from common.config import Config
from common.exchanges import VENUES, SharedThrottle, redirect_urls
from common.settled import fetch_settled
from tests.conftest import DAY_MS, history_client, pages_needed
from tests.simulator import bitget as dialect
from tests.simulator.server import Budget
from worker import create_routes

SWAP = "BTC/USDT:USDT"
# The throttle counts a request when it leaves, the simulator when it arrives: on a loaded test machine a
# request can take longer than the venue's 100 ms guard to arrive, so throttled tests hold each one longer.
LOADED_MACHINE_GUARD = 0.3


@pytest.fixture
def client(make_client):
    """The VENUES client (linear swaps only), markets loaded."""
    c = make_client("bitget")
    c.load_markets()
    return c


def stock_client(sim, **config):
    """ccxt.bitget with ccxt's own defaults (spot + swap markets, currencies on), pointed at the simulator."""
    c = ccxt.bitget({"timeout": 3000, **config})
    c.urls["api"] = redirect_urls(c.urls["api"], sim.api_url("bitget"))
    return c


def listed(sim):
    return sim.market.listed("bitget")


def sym(coin):
    return f"{coin.base}/USDT:USDT"


# -- load_markets --------------------------------------------------------------------------------------------
def check_usdt_swaps(sim, markets):
    for coin in listed(sim):
        m = markets[sym(coin)]
        assert m["swap"] and m["linear"] and m["active"] and m["settle"] == "USDT", m["symbol"]
        assert m["contractSize"] == 1
        assert m["precision"]["price"] == float(coin.price_tick)
        assert m["precision"]["amount"] == float(coin.amount_step)
        assert m["info"]["fundInterval"] == str(coin.funding_hours.get("bitget", 8))
    assert "WIF/USDT:USDT" not in markets      # listed on binance, bybit, gateio only
    assert "TAO/USDT:USDT" in markets          # listed on bitget


def test_load_markets_ccxt_defaults(sim):
    c = stock_client(sim)
    c.load_markets()
    check_usdt_swaps(sim, c.markets)
    assert c.markets["BTC/USDT"]["spot"] and c.markets["BTC/USD:BTC"]["inverse"]
    assert c.markets["BTC/USDC:USDC"]["linear"]
    # currencies, spot symbols, margin pairs and six futures product types
    assert sim.counts("bitget") == {"bitget": {"/api/v2/spot/public/coins": 1, "/api/v2/spot/public/symbols": 1,
                                               "/api/v2/margin/currencies": 1, "/api/v2/mix/market/contracts": 6}}
    assert {e.query for e in sim.requests("bitget", path="contracts")} == {
        f"productType={pt}" for pt in dialect.PRODUCT_TYPES}


def test_load_markets_venue_options(sim, make_client):
    c = make_client("bitget")
    c.load_markets()
    check_usdt_swaps(sim, c.markets)
    assert not any(m["spot"] for m in c.markets.values())
    assert len(c.markets) == len(listed(sim)) + 2   # + one COIN-M and one USDC perpetual
    # ccxt always asks all six futures product types; no currencies, no spot, no margin
    assert sim.counts("bitget") == {"bitget": {"/api/v2/mix/market/contracts": 6}}


# -- tickers -------------------------------------------------------------------------------------------------
def test_fetch_tickers_bulk_matches_truth(sim, client):
    sim.market.freeze()
    since = time.time()
    tickers = client.fetch_tickers()
    assert sim.counts("bitget", since) == {"bitget": {"/api/v2/mix/market/tickers": 1}}
    assert {sym(c) for c in listed(sim)} <= set(tickers)
    for coin in listed(sim):
        t, truth = tickers[sym(coin)], sim.truth("bitget", sym(coin))
        assert (t["bid"], t["ask"], t["last"]) == (truth["bid"], truth["ask"], truth["last"])
        assert t["baseVolume"] == pytest.approx(truth["volume_24h"])     # base units: contractSize is 1
        assert (t["markPrice"], t["indexPrice"]) == (truth["mark_price"], truth["index_price"])
        assert t["timestamp"] == truth["timestamp"]
        assert float(t["info"]["fundingRate"]) == truth["funding_rate"]


def test_fetch_tickers_for_symbols_and_single(sim, client):
    sim.market.freeze()
    tickers = client.fetch_tickers([SWAP, "SOL/USDT:USDT"])
    assert set(tickers) == {SWAP, "SOL/USDT:USDT"}
    one = client.fetch_ticker("TAO/USDT:USDT")
    truth = sim.truth("bitget", "TAO/USDT:USDT")
    assert (one["bid"], one["ask"], one["last"], one["markPrice"]) == (
        truth["bid"], truth["ask"], truth["last"], truth["mark_price"])
    assert sim.counts("bitget")["bitget"]["/api/v2/mix/market/ticker"] == 1


def test_unknown_symbol_is_bitget_40034(sim, client):
    with pytest.raises(ccxt.ExchangeError) as e:   # 40034 is not in ccxt's table: plain ExchangeError
        client.publicMixGetV2MixMarketTicker({"symbol": "WIFUSDT", "productType": "USDT-FUTURES"})
    assert '"code":"40034"' in str(e.value)
    assert sim.statuses("bitget").get(400) == 1
    with pytest.raises(ccxt.BadSymbol):            # a unified symbol ccxt does not know never leaves the client
        client.fetch_ticker("WIF/USDT:USDT")


# -- order book ----------------------------------------------------------------------------------------------
def test_order_book_max_depth_matches_truth(sim, client):
    sim.market.freeze()
    limit = VENUES["bitget"].book_limit
    assert limit == "max"
    book = client.fetch_order_book(SWAP, limit)
    truth = sim.truth("bitget", SWAP, depth=dialect.MAX_DEPTH)
    assert len(book["bids"]) == len(book["asks"]) == dialect.MAX_DEPTH
    assert book["bids"][0] == [truth["bid"], pytest.approx(truth["bids"][0][1])]
    assert book["asks"][0][0] == truth["ask"]
    assert book["bids"] == [[p, pytest.approx(a)] for p, a in truth["bids"]]
    assert book["asks"] == [[p, pytest.approx(a)] for p, a in truth["asks"]]
    assert book["timestamp"] == truth["timestamp"]
    assert "limit=max" in sim.requests("bitget", path="merge-depth")[-1].query


@pytest.mark.parametrize("limit, depth", [(5, 5), (50, 50), (None, dialect.DEFAULT_DEPTH)])
def test_order_book_gears(sim, client, limit, depth):
    sim.market.freeze()
    book = client.fetch_order_book("SOL/USDT:USDT", limit)
    assert len(book["bids"]) == len(book["asks"]) == depth
    assert book["bids"] == [[p, pytest.approx(a)] for p, a in sim.truth("bitget", "SOL/USDT:USDT", depth)["bids"]]


def test_order_book_limit_outside_gears_is_rejected(sim, client):
    with pytest.raises(ccxt.BadRequest):           # 40017 Parameter verification failed
        client.fetch_order_book(SWAP, 20)


# -- funding -------------------------------------------------------------------------------------------------
def test_funding_rates_bulk_current_fund_rate(sim, client):
    """The VENUES option routes fetch_funding_rates to /current-fund-rate: rate, next time and interval."""
    sim.market.freeze()
    since = time.time()
    rates = client.fetch_funding_rates()
    assert sim.counts("bitget", since) == {"bitget": {"/api/v2/mix/market/current-fund-rate": 1}}
    for coin in listed(sim):
        r, truth = rates[sym(coin)], sim.truth("bitget", sym(coin))
        assert r["fundingRate"] == truth["funding_rate"]
        assert r["fundingTimestamp"] == truth["next_funding_time"]   # bitget: next funding in fundingTimestamp
        assert r["nextFundingTimestamp"] is None
        assert r["interval"] == f"{truth['funding_interval_hours']}h"
    assert rates["SOL/USDT:USDT"]["interval"] == "4h"
    # as the worker asks: a symbol list, the same one request, filtered by ccxt; the VENUES field names
    some = client.fetch_funding_rates([SWAP, "SOL/USDT:USDT"])
    assert set(some) == {SWAP, "SOL/USDT:USDT"}
    assert some[SWAP][VENUES["bitget"].next_funding_field] == sim.truth("bitget", SWAP)["next_funding_time"]


def test_funding_rates_bulk_from_tickers(sim, client):
    """ccxt's default method (the tickers endpoint): rate, mark and index, but no next time nor interval."""
    sim.market.freeze()
    rates = client.fetch_funding_rates(params={"method": "publicMixGetV2MixMarketTickers"})
    assert sim.counts("bitget")["bitget"]["/api/v2/mix/market/tickers"] == 1
    for coin in listed(sim):
        r, truth = rates[sym(coin)], sim.truth("bitget", sym(coin))
        assert (r["fundingRate"], r["markPrice"], r["indexPrice"]) == (
            truth["funding_rate"], truth["mark_price"], truth["index_price"])
        assert r["fundingTimestamp"] is None and r["interval"] is None


def test_funding_rate_single_and_funding_time(sim, client):
    sim.market.freeze()
    truth = sim.truth("bitget", "SOL/USDT:USDT")
    r = client.fetch_funding_rate("SOL/USDT:USDT")
    assert (r["fundingRate"], r["fundingTimestamp"], r["interval"]) == (
        truth["funding_rate"], truth["next_funding_time"], "4h")
    r = client.fetch_funding_rate("SOL/USDT:USDT", {"method": "publicMixGetV2MixMarketFundingTime"})
    assert (r["fundingTimestamp"], r["interval"]) == (truth["next_funding_time"], "4h")
    mark = client.fetch_mark_price("SOL/USDT:USDT")
    assert (mark["markPrice"], mark["indexPrice"]) == (truth["mark_price"], truth["index_price"])


# -- rate limits ---------------------------------------------------------------------------------------------
def test_burst_without_throttle_gets_429_per_endpoint(sim, client, monkeypatch):
    """Bitget's 20 per second per endpoint, stretched to 20 per minute so that a loaded machine's slow burst
    still fills one window."""
    monkeypatch.setattr(dialect, "BUDGETS", [Budget(20, 60.0, per_endpoint=True)])
    client.enableRateLimit = False
    sim.market.freeze()
    errors = 0
    for _ in range(30):
        try:
            client.fetch_order_book(SWAP, 1)
        except ccxt.DDoSProtection:
            errors += 1
    assert errors == 10
    assert [e.status for e in sim.requests("bitget", path="merge-depth")] == [200] * 20 + [429] * 10
    # the budget is per endpoint: the tickers endpoint still answers in the same window
    assert client.fetch_tickers()[SWAP]["bid"] == sim.truth("bitget", SWAP)["bid"]


def test_clients_sharing_the_venue_throttle_stay_inside_each_endpoints_budget(sim, client, make_client):
    """The worker's set-up: book threads, one client each, one throttle. Books queue for the merge-depth
    budget; the tickers endpoint has its own and does not wait behind them."""
    throttle = SharedThrottle(dataclasses.replace(VENUES["bitget"].budget, guard=LOADED_MACHINE_GUARD))
    clients = [make_client("bitget", throttle=throttle) for _ in range(4)]
    for c in clients:
        c.set_markets(client.markets)
    sim.market.freeze()
    logged_since = time.time()
    with ThreadPoolExecutor(len(clients)) as pool:
        books = [pool.submit(c.fetch_order_book, sym(listed(sim)[i % 5]), 1) for i, c in enumerate(clients * 12)]
        assert clients[0].fetch_tickers([SWAP])[SWAP]["bid"] == sim.truth("bitget", SWAP)["bid"]
        assert all(len(b.result()["bids"]) == 1 for b in books)
    log = sim.requests("bitget", logged_since)
    assert {e.status for e in log} == {200} and len(log) == 49
    # 48 books take three windows of 20; the tickers request, sent right after they were queued, went out
    # among the first window's books instead of behind all of them
    assert [e.path for e in log].index("/api/v2/mix/market/tickers") < 25
    assert sim.peak_share("bitget") == 1.0       # bursts use the whole budget, no more


def test_rate_share_in_the_config_caps_the_workers_budget(sim, client, tmp_path):
    """An operator leaves half of the budget to other programs on the IP: the worker's clients, built from the
    config as worker.main builds them, never take more than half of a window."""
    config = Config.model_validate({"exchanges": [{"name": "bitget", "api_url": sim.api_url("bitget"),
                                                   "rate_share": 0.5}], "symbols": [SWAP], "api_keys_file": None})
    entry = config.exchange("bitget")
    clients = create_routes(config, entry, VENUES["bitget"], {}).routes[0].clients
    for c in clients:
        c.set_markets(client.markets)
    with ThreadPoolExecutor(len(clients)) as pool:
        books = [pool.submit(c.fetch_order_book, SWAP, 1) for c in clients * 10]  # 20 books: two half-windows
        assert all(len(b.result()["bids"]) == 1 for b in books)
    assert [e.status for e in sim.requests("bitget", path="merge-depth")] == [200] * 20
    assert sim.peak_share("bitget") == 0.5


# -- faults --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, error", [
    ("http500", ccxt.ExchangeNotAvailable),   # {"code":"500"} -> ExchangeNotAvailable
    ("http429", ccxt.DDoSProtection),         # {"code":"429"} -> DDoSProtection (before the HTTP status map)
    ("http418", ccxt.DDoSProtection),
    ("reset", ccxt.NetworkError),
])
def test_fault_raises(sim, client, kind, error):
    sim.inject_fault("bitget", kind, count=1, retry_after=3)
    with pytest.raises(error) as e:
        client.fetch_order_book(SWAP, "max")
    assert type(e.value) is error
    if kind == "http429":
        assert client.last_response_headers["Retry-After"] == "3"
    assert len(client.fetch_order_book(SWAP, "max")["bids"]) == dialect.MAX_DEPTH   # the fault is consumed


def test_fault_hang_times_out(sim, make_client):
    c = make_client("bitget", timeout_ms=500)
    c.load_markets()
    sim.market.freeze()
    sim.inject_fault("bitget", "hang", count=1, hang_seconds=2)
    with pytest.raises(ccxt.RequestTimeout):  # ccxt's 500 ms timeout, not the 2 s hang ending
        c.fetch_tickers()
    assert c.fetch_tickers()[SWAP]["bid"] == sim.truth("bitget", SWAP)["bid"]


@pytest.mark.parametrize("kind", ["bad_json", "empty"])
def test_fault_unparseable_200_is_silently_empty(sim, client, kind):
    """ccxt's bitget raises nothing for a 200 whose body is not JSON: it parses an empty result.
    A worker must treat an empty book / empty tickers as a failed request."""
    sim.inject_fault("bitget", kind, count=1)
    book = client.fetch_order_book(SWAP, "max")
    assert book["bids"] == [] and book["asks"] == [] and book["timestamp"] is None
    sim.inject_fault("bitget", kind, count=1)
    assert client.fetch_tickers() == {}
    assert len(client.fetch_order_book(SWAP, "max")["bids"]) == dialect.MAX_DEPTH


def test_fault_drop_bid_ask(sim, client):
    sim.market.freeze()
    sim.inject_fault("bitget", "drop_fields", count=1, fields=("bid", "ask"))
    t = client.fetch_tickers()[SWAP]
    assert t["bid"] is None and t["ask"] is None
    assert t["info"]["bidPr"] == "" and t["last"] == sim.truth("bitget", SWAP)["last"]
    assert client.fetch_tickers()[SWAP]["bid"] == sim.truth("bitget", SWAP)["bid"]


def test_fault_drop_funding(sim, client):
    sim.market.freeze()
    sim.inject_fault("bitget", "drop_fields", count=1, fields=("funding_rate", "next_funding_time"))
    r = client.fetch_funding_rates()[SWAP]
    assert r["fundingRate"] is None and r["fundingTimestamp"] is None and r["interval"] == "8h"
    assert client.fetch_funding_rates()[SWAP]["fundingRate"] == sim.truth("bitget", SWAP)["funding_rate"]


def test_fault_drop_mark_index(sim, client):
    sim.market.freeze()
    sim.inject_fault("bitget", "drop_fields", count=1, fields=("mark_price", "index_price"))
    t = client.fetch_tickers()[SWAP]
    assert t["markPrice"] is None and t["indexPrice"] is None and t["bid"] == sim.truth("bitget", SWAP)["bid"]


def test_drop_mark_with_spot_markets_loaded_misfiles_the_ticker(sim):
    """ccxt quirk: parse_ticker tells swap from spot by the presence of markPrice. With spot markets loaded
    (ccxt's default), a swap ticker without markPrice is filed under the spot symbol BTC/USDT."""
    c = stock_client(sim, options={"defaultType": "swap"})
    c.load_markets()
    sim.inject_fault("bitget", "drop_fields", count=1, fields=("mark_price",))
    tickers = c.fetch_tickers()
    assert SWAP not in tickers and "BTC/USDT" in tickers
    assert SWAP in c.fetch_tickers()


def test_precision_helper():
    assert dialect._place_and_step("0.001") == ("3", "1")
    assert dialect._place_and_step("0.5") == ("1", "5")
    assert dialect._place_and_step("10") == ("0", "10")
    assert dialect._s(Decimal("1E-7")) == "0.0000001" and dialect._s(None) == ""


# -- settled funding: what Bitget alone does (tests/test_simulator_settled.py: what every exchange does) --------
EX = "bitget"


@pytest.fixture
def throttled(sim):
    return history_client(sim, EX)


@pytest.mark.parametrize("page_size", [100, 20])   # the venue's: two pages of SOL's 30 days; Bitget's default: ten
def test_a_backfill_pages_by_number_newest_first(sim, throttled, page_size):
    paging = dataclasses.replace(VENUES[EX].settled, page_size=page_size)
    symbol, now = "SOL/USDT:USDT", sim.market.now_ms()
    since = now - 30 * DAY_MS
    fetch_settled(throttled, paging, symbol, since, now)
    pages = pages_needed(paging, sim.settlements(EX, symbol, since, now), since)
    sent = [dict(parse_qsl(e.query)) for e in sim.requests(EX)]
    assert [(q["pageNo"], q["pageSize"]) for q in sent] == [(str(n), str(page_size)) for n in range(1, pages + 1)]


def test_history_is_newest_first_at_most_100_a_page(sim, throttled):
    truth = [s["funding_time"] for s in sim.settlements(EX, "SOL/USDT:USDT")][::-1]
    assert len(truth) > 200
    request = {"symbol": "SOLUSDT", "productType": "USDT-FUTURES"}
    page = throttled.publicMixGetV2MixMarketHistoryFundRate({**request, "pageSize": 500})["data"]
    assert [row["fundingTime"] for row in page] == [str(t) for t in truth[:100]]   # more than 100: 100
    assert isinstance(page[0]["fundingRate"], str)
    third = throttled.publicMixGetV2MixMarketHistoryFundRate({**request, "pageSize": 100, "pageNo": 3})["data"]
    assert [int(row["fundingTime"]) for row in third] == truth[200:300]
    assert len(throttled.publicMixGetV2MixMarketHistoryFundRate(request)["data"]) == 20   # the default
