"""The scanner across quote currencies (SPEC 13, common/scan.py): legs grouped by base asset, USDC prices
compared in USDT at the mid of the freshest fresh USDC/USDT:USDT row. Expected values written out by hand."""
from __future__ import annotations

import pytest

from common.models import FuturesData
from common.scan import (NO_RATE_NOTE, Book, Filters, Leg, ScannerConfig, asset_of, opportunities, pair_legs,
                         snapshot_source, symbol_detail, usdc_rate, volume_usd)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
STALE_MS = 15_000
CONFIG = ScannerConfig(notionals=[10000], stale_after_seconds=15)  # fees: binance 5, hyperliquid 4.5, bybit 5.5
BTC_USDT, BTC_USDC, RATE = "BTC/USDT:USDT", "BTC/USDC:USDC", "USDC/USDT:USDT"


def leg(exchange: str, symbol: str, age_ms: int = 1000, book: Book | None = None, **values) -> Leg:
    fields = {"bid": None, "ask": None, "last": None, "volume_24h": 10.0, "mark_price": None, "index_price": None,
              "funding_rate": None, "next_funding_time": None, "funding_interval_hours": 8.0, "contract_size": None,
              "open_interest": None, "impact_bid": None, "impact_ask": None}
    return Leg(exchange, symbol, NOW - age_ms, {**fields, **values}, book)


def rate_leg(exchange: str = "binance", bid: float = 0.9989, ask: float = 0.9991, age_ms: int = 1000) -> Leg:
    return leg(exchange, RATE, age_ms, bid=bid, ask=ask, funding_rate=0.00001)  # mid 0.9990


def binance_btc(**values) -> Leg:  # APR 0.0001 x 3 x 365 = 0.1095: the long
    return leg("binance", BTC_USDT, **{"bid": 99_940.0, "ask": 99_950.0, "funding_rate": 0.0001, **values})


def hyperliquid_btc(**values) -> Leg:  # APR 0.00002 x 24 x 365 = 0.1752: the short
    return leg("hyperliquid", BTC_USDC, **{"bid": 100_100.0, "ask": 100_110.0, "funding_rate": 0.00002,
                                           "funding_interval_hours": 1.0, **values})


def book(bids=(), asks=(), age_ms: int = 1000) -> Book:
    return Book(NOW - age_ms, tuple(bids), tuple(asks), len(bids), len(asks))


def btc_row(legs: list[Leg], filters: Filters = Filters()) -> dict:
    rows = [r for r in opportunities({"any": legs}, NOW, CONFIG, filters)["rows"] if r["symbol"] == "BTC"]
    return rows[0] if rows else None


# -- the rate ------------------------------------------------------------------------------------------
def test_the_rate_is_the_mid_of_the_freshest_fresh_usdc_usdt_row():
    assert usdc_rate([rate_leg()], NOW, STALE_MS) == pytest.approx((0.9989 + 0.9991) / 2)  # 0.9990
    older, newer = rate_leg("binance", 0.9980, 0.9982, age_ms=3000), rate_leg("bybit", 0.9994, 0.9996, age_ms=500)
    assert usdc_rate([older, newer], NOW, STALE_MS) == pytest.approx(0.9995)
    stale = rate_leg("bybit", 0.5, 0.5, age_ms=STALE_MS + 1)  # the newest would win, but it is stale
    assert usdc_rate([older, stale], NOW, STALE_MS) == pytest.approx(0.9981)
    assert usdc_rate([stale], NOW, STALE_MS) is None
    no_book = leg("bybit", RATE, 100, bid=None, ask=None, last=0.97)  # a mid needs a bid and an ask
    assert usdc_rate([no_book, older], NOW, STALE_MS) == pytest.approx(0.9981)
    assert usdc_rate([binance_btc()], NOW, STALE_MS) is None  # other symbols are not the rate


# -- a Hyperliquid USDC leg against a Binance USDT leg --------------------------------------------------
def test_a_usdc_leg_pairs_with_a_usdt_leg_its_prices_converted_at_the_rate():
    row = btc_row([binance_btc(), hyperliquid_btc(), rate_leg()])
    assert row["symbol"] == "BTC"
    assert (row["long"]["exchange"], row["long"]["symbol"], row["long"]["quote"]) == ("binance", BTC_USDT, "USDT")
    assert (row["short"]["exchange"], row["short"]["symbol"], row["short"]["quote"]) == ("hyperliquid", BTC_USDC, "USDC")
    assert row["funding_apr_spread"] == pytest.approx(0.00002 * 24 * 365 - 0.0001 * 3 * 365)  # 0.1752 - 0.1095
    # Hyperliquid's bid 100,100 USDC is 100,100 x 0.9990 = 99,999.9 USDT; Binance's ask 99,950 USDT.
    # (99,999.9 - 99,950) / ((99,999.9 + 99,950) / 2) x 1e4 = 49.9 / 99,974.95 x 1e4 = 4.99125... bps
    assert row["price_spread_bps"] == pytest.approx((100_100 * 0.9990 - 99_950) / ((100_100 * 0.9990 + 99_950) / 2)
                                                    * 1e4)
    assert row["price_spread_bps"] == pytest.approx(4.99125, abs=1e-5)  # unconverted it would be 14.996
    assert row["usdc_usdt_rate"] == pytest.approx(0.9990) and "price_note" not in row
    assert row["short"]["bid"] == 100_100.0  # a leg's own prices stay in its own quote


def test_without_a_fresh_rate_the_price_spread_and_costs_are_null_and_the_funding_spread_still_ranks():
    deep = {"book": book(bids=[(100_100.0, 1.0)], asks=[(100_110.0, 1.0)])}
    legs = [binance_btc(book=book(asks=[(99_950.0, 1.0)])), hyperliquid_btc(**deep),
            rate_leg(age_ms=STALE_MS + 1),  # stale: no rate
            leg("binance", "ETH/USDT:USDT", bid=10.0, ask=10.01, funding_rate=0.0),
            leg("bybit", "ETH/USDT:USDT", bid=10.0, ask=10.01, funding_rate=0.00001)]  # ETH spread 0.01095
    rows = opportunities({"any": legs}, NOW, CONFIG)["rows"]
    assert [r["symbol"] for r in rows] == ["BTC", "ETH"]  # BTC's 0.0657 still ranks first
    btc = rows[0]
    assert btc["funding_apr_spread"] == pytest.approx(0.1752 - 0.1095)
    assert btc["price_spread_bps"] is None and btc["at_size"] is None
    assert btc["price_note"] == NO_RATE_NOTE == "no fresh USDC/USDT rate" and btc["usdc_usdt_rate"] is None
    assert "price_note" not in rows[1] and rows[1]["price_spread_bps"] is not None  # same quote: no rate needed


def test_two_usdc_legs_compare_in_usdc_without_a_rate():
    bybit = leg("bybit", BTC_USDC, bid=100_000.0, ask=100_010.0, funding_rate=0.0001)  # APR 0.1095
    row = btc_row([bybit, hyperliquid_btc()])
    # Both in USDC: (100,100 - 100,010) / ((100,100 + 100,010) / 2) x 1e4
    assert row["price_spread_bps"] == pytest.approx(90 / 100_055 * 1e4)
    assert "price_note" not in row and "usdc_usdt_rate" not in row


def test_a_usdt_and_a_usdc_perpetual_of_one_exchange_pair():
    usdc = leg("binance", BTC_USDC, bid=100_100.0, ask=100_110.0, funding_rate=0.0002)  # APR 0.219
    row = btc_row([binance_btc(), usdc, rate_leg()])
    assert (row["long"]["exchange"], row["long"]["quote"]) == ("binance", "USDT")
    assert (row["short"]["exchange"], row["short"]["quote"]) == ("binance", "USDC")
    assert row["funding_apr_spread"] == pytest.approx(0.0002 * 3 * 365 - 0.0001 * 3 * 365)
    assert row["price_spread_bps"] == pytest.approx((100_100 * 0.9990 - 99_950) / ((100_100 * 0.9990 + 99_950) / 2)
                                                    * 1e4)


def test_costs_at_size_walk_a_usdc_book_in_usdt():
    # Hyperliquid's bids in USDT: 100,100 x 0.999 = 99,999.9 (0.05 BTC = 4,999.995 USDT), then
    # 100,000 x 0.999 = 99,900. 10,000 USDT: 4,999.995 at the first, the other 5,000.005 at the second.
    short_book = book(bids=[(100_100.0, 0.05), (100_000.0, 1.0)])
    long_book = book(asks=[(99_950.0, 1.0)])
    row = btc_row([binance_btc(book=long_book), hyperliquid_btc(book=short_book), rate_leg()])
    sized = row["at_size"]["10000"]
    short_vwap = 10_000 / (0.05 + 5_000.005 / 99_900)
    mid = (100_100 * 0.999 + 99_950) / 2
    cost = (99_950 - short_vwap) / mid * 1e4 + 5 + 4.5  # binance's and hyperliquid's default taker fees
    assert sized["short_vwap"] == pytest.approx(short_vwap) and sized["short_fill"] == pytest.approx(1.0)
    assert sized["long_vwap"] == pytest.approx(99_950.0) and sized["long_fill"] == 1.0
    assert sized["entry_cost_bps"] == pytest.approx(cost)
    assert sized["break_even_hours"] == pytest.approx(max(cost, 0) / ((0.1752 - 0.1095) * 1e4 / 8760))


def test_a_usdc_book_is_kept_past_the_largest_notional_for_the_conversion():
    levels = [[1.0, 6000.0], [1.0001, 6000.0], [1.0002, 6000.0]]  # ~6,000 USDC a level
    snapshot = {"exchange": "hyperliquid", "timestamp": NOW, "ticker": {"bid": 1.0, "ask": 1.0001, "last": 1.0, "volume_24h": 1.0},
                "orderbook": {"bids": [], "asks": levels, "timestamp": NOW}, "funding_rate": 0.0,
                "next_funding_time": None, "mark_price": None}
    usdc = FuturesData.model_validate({**snapshot, "symbol": "X/USDC:USDC"})
    usdt = FuturesData.model_validate({**snapshot, "symbol": "X/USDT:USDT"})
    assert len(snapshot_source(usdt, reach=10_000)[1].asks) == 2  # 12,000 passes 10,000
    assert len(snapshot_source(usdc, reach=10_000)[1].asks) == 3  # walked for 10,000 / rate USDC: kept further


# -- filters and what is never paired -------------------------------------------------------------------
def test_min_volume_values_a_usdc_leg_at_the_rate_and_fails_it_without_one():
    hyper = hyperliquid_btc(volume_24h=1.0)  # mid 100,105 USDC = 100,004.895 USDT a day at 0.999
    assert volume_usd(hyper, 0.999) == pytest.approx(100_105 * 0.999)
    assert volume_usd(hyper, None) is None and volume_usd(binance_btc(), None) == pytest.approx(10 * 99_945)
    legs = [binance_btc(), hyper]
    assert pair_legs(legs + [rate_leg()], NOW, STALE_MS, Filters(min_volume_usd=100_004), rate=0.999) is not None
    assert pair_legs(legs, NOW, STALE_MS, Filters(min_volume_usd=100_006), rate=0.999) is None
    assert pair_legs(legs, NOW, STALE_MS, Filters(min_volume_usd=1), rate=None) is None
    assert btc_row(legs + [rate_leg()], Filters(min_volume_usd=100_004))["short"]["exchange"] == "hyperliquid"


def test_dated_futures_and_other_quotes_are_never_paired():
    dated = leg("bybit", "BTC/USDT:USDT-250328", bid=101_000.0, ask=101_010.0, funding_rate=0.01)
    inverse = leg("bybit", "BTC/USD:BTC", bid=101_000.0, ask=101_010.0, funding_rate=0.02)
    assert pair_legs([binance_btc(), dated, inverse], NOW, STALE_MS) is None
    long, short = pair_legs([binance_btc(), dated, inverse, hyperliquid_btc()], NOW, STALE_MS)
    assert (long.symbol, short.symbol) == (BTC_USDT, BTC_USDC)


# -- the asset's detail and the names it is asked by -----------------------------------------------------
@pytest.mark.parametrize("asked", ["BTC", "btc", "BTCUSDT", "BTCUSDC", "BTC/USDC:USDC", "BTC/USDT:USDT",
                                   "BTCUSDT-250328", " btcusdc "])
def test_every_name_of_an_asset_maps_to_its_base(asked):
    assert asset_of(asked) == "BTC"


def test_the_names_of_the_quote_assets_themselves():
    assert [asset_of(x) for x in ("USDC", "USDCUSDT", RATE, "USDT", "1000PEPEUSDT")] == \
        ["USDC", "USDC", "USDC", "USDT", "1000PEPE"]


def test_the_detail_lists_every_leg_with_its_symbol_and_quote_and_the_pair():
    legs = {BTC_USDT: [binance_btc()],
            BTC_USDC: [hyperliquid_btc(impact_bid=100_080.0, impact_ask=100_130.0, bid=None, ask=None)]}
    detail = symbol_detail("BTC", legs, NOW, CONFIG, rate=0.999)
    assert detail["symbol"] == "BTC" and detail["usdc_usdt_rate"] == 0.999
    shown = [(l["exchange"], l["symbol"], l["quote"]) for l in detail["legs"]]
    assert shown == [("binance", BTC_USDT, "USDT"), ("hyperliquid", BTC_USDC, "USDC")]
    hyper = detail["legs"][1]
    # Impact prices are shown as such, never as the bid/ask: with no top of book there is no price spread.
    assert (hyper["impact_bid"], hyper["impact_ask"], hyper["bid"], hyper["ask"]) == (100_080.0, 100_130.0, None, None)
    assert hyper["taker_fee_bps"] == 4.5 and hyper["pairable"] is True
    (pair,) = detail["pairs"]
    assert pair["symbol"] == "BTC" and pair["short"]["symbol"] == BTC_USDC
    assert pair["price_spread_bps"] is None and "price_note" not in pair  # a rate, but no bid: nothing to compare
