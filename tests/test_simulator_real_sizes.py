"""The real-size market (Simulator(real_sizes=True)): every exchange lists as many perpetuals as it really
does, and a real ccxt client's markets, tickers and funding agree with truth() on a sample that includes
every funding interval, the largest contract size, the fresh listing without funding and the contract
without volume."""
import random

import pytest

from common.exchanges import create_exchange
from tests.simulator import Simulator
from tests.simulator.market import EXCHANGES, FRESH, FUNDING_MIX, NO_VOLUME, REAL_SIZES, Market

# The first five venues; OKX's and Hyperliquid's real-size markets are checked in their own test files.
FIVE = EXCHANGES[:5]

# The raw HTX batch funding endpoint (ccxt has no bulk funding method for linear swaps).
HTX_FUNDING_BATCH = ("linear-swap-api/v1/swap_batch_funding_rate", ["contract", "public"])


@pytest.fixture(scope="module")
def real_market():
    sim = Simulator(real_sizes=True).start()
    yield sim
    sim.stop()


@pytest.fixture
def big(real_market):
    """The real-size simulator, reset, its clock frozen so that answers and truth share a tick."""
    real_market.reset()
    real_market.market.freeze()
    yield real_market
    real_market.reset()


def client_for(sim, exchange):
    c = create_exchange(exchange, api_url=sim.api_url(exchange), timeout_ms=10_000)
    c.load_markets()
    return c


def symbol(coin) -> str:
    return f"{coin.base}/USDT:USDT"


def sample(sim, exchange) -> list[str]:
    """BTC, one contract per funding interval, the largest contract size, the odd ones, and a few more."""
    listed = sim.market.listed(exchange)
    hours = {Market.funding_hours(exchange, c): c for c in reversed(listed)}
    largest = max(listed, key=lambda c: sim.market.contract_size(exchange, c))
    odd = [c for c in listed if c.missing]
    more = random.Random(exchange).sample(listed, 5)
    return sorted({symbol(c) for c in [listed[0], largest, *hours.values(), *odd, *more]})


def odd_symbol(sim, missing) -> str:
    return next(symbol(c) for c in sim.market.coins.values() if c.missing == missing)


def interval_hours(interval):
    return None if interval is None else int(interval.rstrip("h"))


# -- the market itself ------------------------------------------------------------------------------------
def test_each_exchange_lists_its_real_number_with_its_mix_of_funding_intervals(big):
    for exchange in EXCHANGES:
        listed = big.market.listed(exchange)
        assert len(listed) == REAL_SIZES[exchange]
        assert {Market.funding_hours(exchange, c) for c in listed} == set(FUNDING_MIX[exchange])
    assert big.truth("gateio", "BTC/USDT:USDT")["contract_size"] == 0.0001
    assert big.truth("gateio", "DOGE/USDT:USDT")["contract_size"] == 10
    fresh = big.truth("bybit", odd_symbol(big, FRESH))
    assert (fresh["funding_rate"], fresh["next_funding_time"], fresh["funding_interval_hours"]) == (
        None, None, big.market.coins[fresh["symbol"].split("/")[0]].funding_hours["bybit"])
    assert big.truth("binance", odd_symbol(big, NO_VOLUME))["volume_24h"] is None


def test_the_default_market_is_unchanged():
    market = Market()
    assert {ex: len(market.listed(ex)) for ex in EXCHANGES} == {
        "binance": 6, "bybit": 7, "bitget": 6, "htx": 5, "gateio": 6, "okx": 6, "hyperliquid": 7}
    assert all(not coin.missing for coin in market.coins.values())


# -- through ccxt -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exchange", FIVE)
def test_load_markets_agrees_with_truth(big, exchange):
    c = client_for(big, exchange)
    swaps = {s for s, m in c.markets.items() if m["swap"] and m["linear"] and m["settle"] == "USDT"}
    assert swaps == {symbol(coin) for coin in big.market.listed(exchange)}
    for s in sample(big, exchange):
        truth, market = big.truth(exchange, s), c.market(s)
        coin = big.market.coins[market["base"]]
        assert market["contractSize"] == truth["contract_size"], s
        assert market["precision"]["price"] == float(coin.price_tick), s
    assert all(code == 200 for code in big.statuses(exchange))


def tickers_of(client, exchange) -> dict:
    """{symbol: (bid, ask, last, base volume)} from the exchange's bulk ticker calls."""
    tickers = client.fetch_tickers()
    bids_asks = client.fetch_bids_asks() if exchange == "binance" else tickers  # 24hr carries no bid/ask
    return {s: (bids_asks[s]["bid"], bids_asks[s]["ask"], t["last"], t["baseVolume"]) for s, t in tickers.items()}


@pytest.mark.parametrize("exchange", FIVE)
def test_bulk_tickers_agree_with_truth(big, exchange):
    c = client_for(big, exchange)
    tickers = tickers_of(c, exchange)
    assert set(tickers) >= {symbol(coin) for coin in big.market.listed(exchange)}
    for s in sample(big, exchange):
        truth = big.truth(exchange, s)
        bid, ask, last, volume = tickers[s]
        assert (bid, ask, last) == (truth["bid"], truth["ask"], truth["last"]), s
        assert volume == (None if truth["volume_24h"] is None else pytest.approx(truth["volume_24h"])), s
    assert tickers[odd_symbol(big, NO_VOLUME)][3] is None


def funding_of(client, exchange) -> dict:
    """{symbol: (rate, next funding time, interval hours)} as the exchange's bulk funding answers give them."""
    if exchange == "htx":
        path, api = HTX_FUNDING_BATCH
        rates = client.parse_funding_rates(client.request(path, api, "GET", {})["data"])
    else:
        rates = client.fetch_funding_rates()
    intervals = {}
    if exchange == "binance":  # /fapi/v1/fundingInfo lists only the symbols off 8 h
        intervals = {s: i["interval"] for s, i in client.fetch_funding_intervals().items()}
    out = {}
    for s, r in rates.items():
        interval = interval_hours(r["interval"] or intervals.get(s, "8h" if exchange == "binance" else None))
        # Binance writes "no next funding" as 0: the same missing value as the others' None
        out[s] = (r["fundingRate"], r["fundingTimestamp"] or None, interval)
    return out


@pytest.mark.parametrize("exchange", FIVE)
def test_bulk_funding_agrees_with_truth(big, exchange):
    c = client_for(big, exchange)
    funding = funding_of(c, exchange)
    assert set(funding) >= {symbol(coin) for coin in big.market.listed(exchange)}
    for s in sample(big, exchange):
        truth = big.truth(exchange, s)
        hours = truth["funding_interval_hours"]
        if exchange == "htx" and truth["next_funding_time"] is None:
            hours = None  # HTX publishes the interval only as the gap between two funding times
        assert funding[s] == (truth["funding_rate"], truth["next_funding_time"], hours), s
    assert {interval for _, _, interval in funding.values()} >= set(FUNDING_MIX[exchange])


@pytest.mark.parametrize("exchange, field, unit_seconds", [("bybit", "fundingInterval", 60),
                                                           ("gateio", "funding_interval", 1)])
def test_market_info_publishes_each_symbols_interval(big, exchange, field, unit_seconds):
    """Bybit's instruments give the interval in minutes, Gate's contracts in seconds."""
    c = client_for(big, exchange)
    for coin in big.market.listed(exchange):
        info = c.market(symbol(coin))["info"]
        assert int(info[field]) * unit_seconds == big.truth(exchange, symbol(coin))["funding_interval_hours"] * 3600
