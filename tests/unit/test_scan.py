"""The scanner's arithmetic (common/scan.py) on hand-computed cases: no broker, no network, no clock."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from common.board import Board, BoardRow
from common.models import FuturesData
from common.scan import (Book, FilterError, Filters, Leg, ScannerConfig, Source, at_size, basis_bps,
                         best_levels, break_even_hours, compact_symbol, entry_cost_bps, funding_apr, merge_leg,
                         open_interest_usd, opportunities, pair_legs, parse_filters, price_spread_bps,
                         snapshot_source, split_listen, symbol_detail, walk_book)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
STALE_MS = 15_000
CONFIG = ScannerConfig(notionals=[1000, 10000], taker_fee_bps={"gateio": 4}, stale_after_seconds=15)
SYMBOL = "BTC/USDT:USDT"


def leg(exchange: str, age_ms: int = 1000, book: Book | None = None, **values) -> Leg:
    fields = {"bid": 100.0, "ask": 100.2, "last": 100.1, "volume_24h": 1000.0, "mark_price": None,
              "index_price": None, "funding_rate": None, "next_funding_time": None, "funding_interval_hours": 8.0,
              "contract_size": None, "open_interest": None}
    return Leg(exchange, SYMBOL, NOW - age_ms, {**fields, **values}, book)


def book(bids=(), asks=(), age_ms: int = 1000) -> Book:
    return Book(NOW - age_ms, tuple(bids), tuple(asks), len(bids), len(asks))


# -- funding normalized by each leg's own interval -----------------------------------------------------
def test_funding_apr_of_a_1h_leg_and_an_8h_leg():
    assert funding_apr(0.0001, 1) == pytest.approx(0.0001 * 24 * 365)   # 0.876
    assert funding_apr(0.0001, 8) == pytest.approx(0.0001 * 3 * 365)    # 0.1095
    assert funding_apr(-0.0002, 4) == pytest.approx(-0.0002 * 6 * 365)  # -0.438


def test_a_1h_leg_against_an_8h_leg_is_paired_by_apr_not_by_raw_rate():
    # The 8 h leg's raw rate is 4x the 1 h leg's, but per year the 1 h leg pays twice as much.
    hourly = leg("bybit", funding_rate=0.0001, funding_interval_hours=1.0)     # APR 0.876
    eight_hourly = leg("binance", funding_rate=0.0004, funding_interval_hours=8.0)  # APR 0.438
    long, short = pair_legs([hourly, eight_hourly], NOW, STALE_MS)
    assert (long.exchange, short.exchange) == ("binance", "bybit")
    row = opportunities({SYMBOL: [hourly, eight_hourly]}, NOW, CONFIG)["rows"][0]
    assert row["funding_apr_spread"] == pytest.approx(0.876 - 0.438)
    assert row["long"]["funding_apr"] == pytest.approx(0.438)
    assert row["short"]["funding_interval_hours"] == 1.0


def test_a_leg_without_funding_or_interval_is_never_paired():
    no_rate = leg("bybit", funding_rate=None)
    no_interval = leg("htx", funding_rate=0.001, funding_interval_hours=None)
    paid = leg("binance", funding_rate=0.0001)
    assert funding_apr(None, 8) is None and funding_apr(0.001, None) is None and funding_apr(0.001, 0) is None
    assert pair_legs([no_rate, no_interval, paid], NOW, STALE_MS) is None


# -- top of book, basis ------------------------------------------------------------------------------
def test_price_spread_and_basis():
    long = leg("gateio", ask=100.0)
    short = leg("bybit", bid=100.5)
    # mid = (100.5 + 100.0) / 2 = 100.25; (100.5 - 100.0) / 100.25 x 1e4 = 49.8753...
    assert price_spread_bps(long, short) == pytest.approx(0.5 / 100.25 * 1e4)
    assert price_spread_bps(leg("gateio", ask=101.0), leg("bybit", bid=100.0)) == pytest.approx(-1 / 100.5 * 1e4)
    assert basis_bps(100.1, 100.0) == pytest.approx(10.0)
    assert basis_bps(None, 100.0) is None and basis_bps(100.0, None) is None and basis_bps(100.0, 0) is None
    assert price_spread_bps(leg("gateio", ask=None), short) is None


# -- walking books -----------------------------------------------------------------------------------
def test_book_walk_fills_the_notional_across_levels():
    asks = [(100.0, 50.0), (101.0, 100.0)]
    fill = walk_book(asks, 10_000)
    # 5000 at 100 (50 base), then 5000 at 101 (5000/101 base)
    assert fill.fill == 1.0
    assert fill.base == pytest.approx(50 + 5000 / 101)
    assert fill.vwap == pytest.approx(10_000 / (50 + 5000 / 101))


def test_a_book_too_thin_for_the_notional_reports_the_part_filled():
    fill = walk_book([(100.0, 1.0), (110.0, 1.0)], 1000)
    # everything there is: 100 + 110 = 210 quote for 2 base
    assert fill.fill == pytest.approx(0.21)
    assert fill.vwap == pytest.approx(105.0)
    assert walk_book([], 1000).vwap is None and walk_book([], 1000).fill == 0.0


def test_book_walk_uses_base_amounts_whatever_the_contract_size():
    # Gate quotes contracts of 0.01 BTC; the worker already converted: 3.0 here means 3 BTC (300 contracts).
    # Multiplying by the contract size again would find only 0.03 BTC and report a 1.5% fill.
    asks = book(asks=[(100.0, 3.0)])
    bids = book(bids=[(100.0, 3.0)])
    long = leg("gateio", book=asks, ask=100.0, funding_rate=0.0, contract_size=0.01)
    short = leg("bybit", book=bids, bid=100.0, funding_rate=0.0001, contract_size=1.0)
    sized = at_size(long, short, NOW, ScannerConfig(notionals=[200], stale_after_seconds=15))["200"]
    assert (sized["long_fill"], sized["short_fill"]) == (1.0, 1.0)
    assert sized["long_vwap"] == 100.0 and sized["short_vwap"] == 100.0


def test_snapshot_books_are_sorted_best_first_and_cleaned():
    snapshot = FuturesData.model_validate({
        "exchange": "bybit", "symbol": SYMBOL, "timestamp": NOW,
        "ticker": {"bid": 99.0, "ask": 101.0, "last": 100.0, "volume_24h": 5.0},
        "orderbook": {"bids": [[98.0, 1.0], [99.0, 2.0], [97.0, 0.0]], "asks": [[102.0, 1.0], [101.0, 2.0]],
                      "timestamp": NOW},
        "funding_rate": 0.0001, "next_funding_time": NOW + 3600_000, "mark_price": None,
        "extra": {"index_price": 100.0, "funding_interval_hours": 4.0, "contract_size": 0.5}})
    source, deep = snapshot_source(snapshot, reach=1e9)
    assert deep.bids == ((99.0, 2.0), (98.0, 1.0)) and deep.asks == ((101.0, 2.0), (102.0, 1.0))
    assert (deep.bid_levels, deep.ask_levels) == (3, 2)
    assert source.values["index_price"] == 100.0 and source.values["funding_interval_hours"] == 4.0
    assert source.values["contract_size"] == 0.5


def test_a_book_is_kept_as_far_as_the_largest_notional_reaches():
    asks = [(100.0, 10.0), (101.0, 10.0), (102.0, 10.0), (103.0, 10.0)]  # 1000, 1010, 1020, 1030 quote
    assert best_levels(asks, "asks", 1500) == ((100.0, 10.0), (101.0, 10.0))         # 2010 > 1500: enough
    assert best_levels(asks, "asks", 2010) == ((100.0, 10.0), (101.0, 10.0), (102.0, 10.0))
    assert len(best_levels(asks, "asks", 1e9)) == 4
    kept = best_levels(asks, "asks", 1500)
    assert walk_book(kept, 1500) == walk_book(asks, 1500)  # the walk reads no further


def test_a_book_out_of_order_is_sorted_before_it_is_cut():
    bids = [(99.0, 1.0), (100.0, 1.0), (98.0, 5.0), (0.0, 1.0), (97.0, float("nan"))]
    assert best_levels(bids, "bids", 150) == ((100.0, 1.0), (99.0, 1.0))
    assert best_levels(bids, "bids", 1e9) == ((100.0, 1.0), (99.0, 1.0), (98.0, 5.0))


@pytest.mark.parametrize("bad", [(101.0, 0.0), (101.0, -1.0), (0.0, 1.0), (float("nan"), 1.0), (101.0, float("inf")),
                                 (float("inf"), 1.0)])
def test_a_level_that_cannot_be_walked_is_left_out_wherever_it_is(bad):
    asks = [(100.0, 10.0), (102.0, 10.0), (103.0, 10.0)]
    for at in range(4):
        book = asks[:at] + [bad] + asks[at:]
        assert best_levels(book, "asks", 1500) == ((100.0, 10.0), (102.0, 10.0))
        assert best_levels(book, "asks", 1e9) == tuple(asks)


def _walk_level_by_level(levels, notional):
    """The walk as a trader does it by hand: whole levels while the rest of the notional covers them."""
    spent, base = 0.0, 0.0
    for price, amount in levels:
        take = min(price * amount, notional - spent)
        base, spent = base + take / price, spent + take
    return base, spent


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 1e5), st.floats(1e-6, 1e4)), max_size=40), st.floats(1, 1e7))
def test_the_walk_by_bisection_equals_the_walk_level_by_level(levels, notional):
    levels = sorted(levels)
    fill = walk_book(levels, notional)
    base, spent = _walk_level_by_level(levels, notional)
    assert fill.base == pytest.approx(base, rel=1e-9)
    assert fill.fill == pytest.approx(spent / notional, rel=1e-9)
    assert fill.vwap == (pytest.approx(spent / base, rel=1e-9) if levels else None)


# -- entry cost at size, break-even -----------------------------------------------------------------------
def test_entry_cost_and_break_even_by_hand():
    long_book = book(asks=[(100.0, 50.0), (101.0, 100.0)])
    short_book = book(bids=[(100.5, 200.0)])
    long = leg("gateio", book=long_book, ask=100.0, funding_rate=-0.0002, funding_interval_hours=4.0)   # -0.438
    short = leg("bybit", book=short_book, bid=100.5, funding_rate=0.00005, funding_interval_hours=1.0)  # 0.438
    sized = at_size(long, short, NOW, CONFIG)
    mid, spread = (100.5 + 100.0) / 2, 0.438 + 0.438
    fees = 4 + 5.5  # gateio from the config, bybit its default

    small = sized["1000"]  # 1000 quote: all at the best levels
    assert small["long_vwap"] == pytest.approx(100.0) and small["short_vwap"] == pytest.approx(100.5)
    assert small["entry_cost_bps"] == pytest.approx((100.0 - 100.5) / mid * 1e4 + fees)  # -39.875 + 9.5 < 0
    assert small["break_even_hours"] == 0.0  # entry earns more than it costs

    large = sized["10000"]
    long_vwap = 10_000 / (50 + 5000 / 101)
    assert large["long_vwap"] == pytest.approx(long_vwap) and large["long_fill"] == 1.0
    cost = (long_vwap - 100.5) / mid * 1e4 + fees
    assert large["entry_cost_bps"] == pytest.approx(cost)
    assert large["break_even_hours"] == pytest.approx(max(cost, 0) / (spread * 1e4 / 8760))


def test_a_negative_or_zero_spread_has_no_break_even():
    assert break_even_hours(12.0, -0.1) is None
    assert break_even_hours(12.0, 0.0) is None
    assert break_even_hours(None, 0.1) is None
    assert break_even_hours(12.0, 0.1) == pytest.approx(12.0 / (0.1 * 1e4 / 8760))
    assert break_even_hours(-3.0, 0.1) == 0.0
    assert entry_cost_bps(101.0, 100.0, 100.5, 10.0) == pytest.approx(1 / 100.5 * 1e4 + 10)
    assert entry_cost_bps(None, 100.0, 100.5, 10.0) is None


def test_equal_funding_pairs_with_zero_spread_and_no_break_even():
    a = leg("binance", funding_rate=0.0001, book=book(bids=[(100.0, 10.0)], asks=[(100.2, 10.0)]))
    b = leg("bybit", funding_rate=0.0001, book=book(bids=[(100.0, 10.0)], asks=[(100.2, 10.0)]))
    row = opportunities({SYMBOL: [a, b]}, NOW, CONFIG)["rows"][0]
    assert row["funding_apr_spread"] == 0.0
    assert row["at_size"]["1000"]["break_even_hours"] is None


def test_no_at_size_without_two_fresh_books():
    deep = book(bids=[(100.0, 10.0)], asks=[(100.2, 10.0)])
    stale_book = book(bids=[(100.0, 10.0)], asks=[(100.2, 10.0)], age_ms=STALE_MS + 1)
    long, short = leg("binance", funding_rate=0.0, book=deep), leg("bybit", funding_rate=0.001, book=None)
    assert at_size(long, short, NOW, CONFIG) is None
    assert at_size(long, leg("bybit", funding_rate=0.001, book=stale_book), NOW, CONFIG) is None
    assert at_size(long, leg("bybit", funding_rate=0.001, book=deep), NOW, CONFIG) is not None


# -- freshness -----------------------------------------------------------------------------------------
def test_stale_legs_are_never_paired():
    fresh = leg("binance", age_ms=STALE_MS, funding_rate=0.0001)          # exactly at the limit: fresh
    stale = leg("bybit", age_ms=STALE_MS + 1, funding_rate=0.01)           # the widest spread, but stale
    other = leg("gateio", age_ms=2000, funding_rate=0.0003)
    assert pair_legs([fresh, stale], NOW, STALE_MS) is None
    long, short = pair_legs([fresh, stale, other], NOW, STALE_MS)
    assert (long.exchange, short.exchange) == ("binance", "gateio")
    assert opportunities({SYMBOL: [fresh, stale]}, NOW, CONFIG)["rows"] == []
    detail = symbol_detail("BTCUSDT", {SYMBOL: [fresh, stale]}, NOW, CONFIG)
    assert [(l["exchange"], l["stale"]) for l in detail["legs"]] == [("binance", False), ("bybit", True)]
    assert detail["pairs"] == []


def test_merge_takes_each_field_from_the_newer_message():
    board = Source(NOW - 2000, {"bid": 100.0, "ask": 101.0, "mark_price": None, "funding_rate": 0.0001})
    snapshot = Source(NOW - 4000, {"bid": 99.0, "ask": 100.5, "mark_price": 100.2, "funding_rate": 0.0002})
    merged = merge_leg("htx", SYMBOL, board, snapshot, None, NOW, STALE_MS)
    assert merged["bid"] == 100.0 and merged["funding_rate"] == 0.0001  # the board is newer
    assert merged["mark_price"] == 100.2  # the board lacks it (HTX): the snapshot's
    assert merged.timestamp == NOW - 2000
    newer_snapshot = Source(NOW - 1000, {**snapshot.values, "bid": 98.0})
    assert merge_leg("htx", SYMBOL, board, newer_snapshot, None, NOW, STALE_MS)["bid"] == 98.0


def test_merge_ignores_a_stale_message_while_a_fresh_one_is_there():
    board = Source(NOW - 1000, {"bid": 100.0, "mark_price": None})
    old_snapshot = Source(NOW - STALE_MS - 1, {"bid": 99.0, "mark_price": 100.2})
    merged = merge_leg("htx", SYMBOL, board, old_snapshot, None, NOW, STALE_MS)
    assert merged["bid"] == 100.0 and merged["mark_price"] is None
    only_stale = merge_leg("htx", SYMBOL, None, old_snapshot, None, NOW, STALE_MS)
    assert only_stale["mark_price"] == 100.2 and not only_stale.fresh(NOW, STALE_MS)


# -- filters -------------------------------------------------------------------------------------------
def test_exchanges_filter_chooses_the_pair_among_them_only():
    legs = [leg("binance", funding_rate=0.0001), leg("bybit", funding_rate=0.0003), leg("gateio", funding_rate=-0.0001)]
    rows = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(exchanges=frozenset({"binance", "bybit"})))["rows"]
    assert (rows[0]["long"]["exchange"], rows[0]["short"]["exchange"]) == ("binance", "bybit")
    assert opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(exchanges=frozenset({"bybit"})))["rows"] == []


def test_min_volume_usd_applies_to_both_legs_volume_times_mid():
    # mid 100.1: gateio 1000 base = $100,100; binance 10 base = $1,001
    legs = [leg("binance", funding_rate=0.0001, volume_24h=10.0), leg("bybit", funding_rate=0.0003),
            leg("gateio", funding_rate=-0.0001), leg("htx", funding_rate=0.0, volume_24h=None)]
    row = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_volume_usd=100_100))["rows"][0]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("gateio", "bybit")
    assert opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_volume_usd=100_101))["rows"] == []


def test_min_open_interest_usd_applies_to_both_legs_open_interest_times_mid():
    # mid 100.1 (bid 100, ask 100.2): bybit 2000 base = $200,200; gateio 1500 = $150,150; binance 10 = $1,001;
    # htx's open interest unknown. bybit has the highest APR, binance the lowest, gateio between.
    legs = [leg("binance", funding_rate=0.0001, open_interest=10.0),
            leg("bybit", funding_rate=0.0003, open_interest=2000.0),
            leg("gateio", funding_rate=-0.0001, open_interest=1500.0),
            leg("htx", funding_rate=-0.0002, open_interest=None)]
    assert open_interest_usd(legs[1]) == pytest.approx(200_200) and open_interest_usd(legs[3]) is None
    unfiltered = opportunities({SYMBOL: legs}, NOW, CONFIG)["rows"][0]
    assert (unfiltered["long"]["exchange"], unfiltered["short"]["exchange"]) == ("htx", "bybit")
    row = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_open_interest_usd=1_001))["rows"][0]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("gateio", "bybit")  # htx's unknown fails it
    assert row["funding_apr_spread"] == pytest.approx(0.0004 * 3 * 365)
    row = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_open_interest_usd=150_150))["rows"][0]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("gateio", "bybit")
    assert opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_open_interest_usd=150_151))["rows"] == []


def test_min_open_interest_values_a_usdc_leg_at_the_rate_and_fails_it_without_one():
    # mid 100.1 USDC; 1000 base open = 100,100 USDC = 99,999.9 USDT at 0.999
    usdc = Leg("hyperliquid", "BTC/USDC:USDC", NOW - 1000, {**leg("x").values, "funding_rate": 0.0003,
                                                              "open_interest": 1000.0})
    usdt = leg("binance", funding_rate=0.0001, open_interest=1000.0)
    assert open_interest_usd(usdc, 0.999) == pytest.approx(99_999.9) and open_interest_usd(usdc, None) is None
    long, short = pair_legs([usdt, usdc], NOW, STALE_MS, Filters(min_open_interest_usd=99_999.8), rate=0.999)
    assert (long.exchange, short.exchange) == ("binance", "hyperliquid")
    assert pair_legs([usdt, usdc], NOW, STALE_MS, Filters(min_open_interest_usd=100_000), rate=0.999) is None
    assert pair_legs([usdt, usdc], NOW, STALE_MS, Filters(min_open_interest_usd=1), rate=None) is None
    detail = symbol_detail("BTC", {SYMBOL: [usdt], "BTC/USDC:USDC": [usdc]}, NOW, CONFIG, rate=0.999)
    assert [(d["exchange"], d["open_interest_usd"]) for d in detail["legs"]] == \
        [("binance", pytest.approx(100_100)), ("hyperliquid", pytest.approx(99_999.9))]


def test_volume_and_open_interest_floors_both_apply():
    # mid 100.1: binance 1000 base a day ($100,100), open interest 10 ($1,001); bybit 10 a day ($1,001),
    # open interest 1000 ($100,100); gateio both 1000.
    legs = [leg("binance", funding_rate=0.0001, volume_24h=1000.0, open_interest=10.0),
            leg("bybit", funding_rate=0.0003, volume_24h=10.0, open_interest=1000.0),
            leg("gateio", funding_rate=-0.0001, volume_24h=1000.0, open_interest=1000.0)]
    both = Filters(min_volume_usd=100_000, min_open_interest_usd=100_000)
    assert opportunities({SYMBOL: legs}, NOW, CONFIG, both)["rows"] == []  # only gateio passes both
    row = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_volume_usd=100_000))["rows"][0]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("gateio", "binance")
    row = opportunities({SYMBOL: legs}, NOW, CONFIG, Filters(min_open_interest_usd=100_000))["rows"][0]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("gateio", "bybit")


def test_rows_sorted_by_spread_and_filtered_by_symbol():
    eth = "ETH/USDT:USDT"
    legs = {SYMBOL: [leg("binance", funding_rate=0.0001), leg("bybit", funding_rate=0.0002)],
            eth: [Leg("binance", eth, NOW, {**leg("x").values, "funding_rate": 0.0}),
                  Leg("bybit", eth, NOW, {**leg("x").values, "funding_rate": 0.001})]}
    rows = opportunities(legs, NOW, CONFIG)["rows"]
    assert [r["symbol"] for r in rows] == ["ETH", "BTC"]  # rows are base assets
    for wanted in ("btc", "BTCUSDT", "BTCUSDC", "BTC/USDT:USDT", "btc/usdc:usdc"):
        assert [r["symbol"] for r in opportunities(legs, NOW, CONFIG, parse_filters({"symbol": wanted}))["rows"]] == \
            ["BTC"], wanted
    assert [r["symbol"] for r in opportunities(legs, NOW, CONFIG, parse_filters({"symbol": "ETHUSDT"}))["rows"]] == ["ETH"]


@pytest.mark.parametrize("query, named", [
    ({"min_volume_usd": "lots"}, "min_volume_usd"), ({"min_volume_usd": "-1"}, "min_volume_usd"),
    ({"min_volume_usd": "nan"}, "min_volume_usd"), ({"min_open_interest_usd": "much"}, "min_open_interest_usd"),
    ({"min_open_interest_usd": "-5"}, "min_open_interest_usd"),
    ({"min_open_interest_usd": "inf"}, "min_open_interest_usd"), ({"exchanges": "binance,By Bit"}, "exchanges"),
    ({"symbol": "BTC<script>"}, "symbol"), ({"sort": "spread"}, "sort"),
    ({"sort": "realized_2d"}, "funding_apr_spread, realized_1d, realized_3d, realized_7d, realized_30d")])
def test_bad_filters_name_the_parameter(query, named):
    with pytest.raises(FilterError, match=named):
        parse_filters(query)


def test_good_filters():
    assert parse_filters({}) == Filters()
    assert parse_filters({"exchanges": "binance, bybit,", "min_volume_usd": "1e6", "symbol": "btc/usdt:usdt"}) == \
        Filters(frozenset({"binance", "bybit"}), 1e6, "BTC")
    assert parse_filters({"min_open_interest_usd": "2.5e6", "min_volume_usd": " "}) == \
        Filters(min_open_interest_usd=2.5e6)
    assert parse_filters({"sort": "realized_7d"}) == Filters(sort="realized_7d")
    assert parse_filters({"sort": " "}) == Filters(sort="funding_apr_spread")


# -- the API's leg and config ----------------------------------------------------------------------------
def test_leg_json_has_the_spec_fields():
    row = opportunities({SYMBOL: [leg("binance", funding_rate=0.0001, mark_price=100.1, index_price=100.0),
                                  leg("bybit", age_ms=2500, funding_rate=0.0002)]}, NOW, CONFIG)["rows"][0]
    assert set(row) == {"symbol", "long", "short", "funding_apr_spread", "price_spread_bps", "at_size",
                        "realized_apr_spread"}
    assert row["symbol"] == "BTC" and (row["long"]["symbol"], row["long"]["quote"]) == (SYMBOL, "USDT")
    assert set(row["long"]) == {"exchange", "symbol", "quote", "funding_rate", "funding_interval_hours", "funding_apr",
                                "next_funding_time", "bid", "ask", "mark_price", "index_price", "basis_bps",
                                "volume_24h", "age_seconds", "realized_apr"}
    # Without history, every window is null (tests/unit/test_scan_history.py: with it).
    assert row["long"]["realized_apr"] == row["realized_apr_spread"] == {"1d": None, "3d": None, "7d": None, "30d": None}
    assert row["long"]["basis_bps"] == pytest.approx(10.0)
    assert row["short"]["age_seconds"] == 2.5
    assert row["at_size"] is None


def test_scanner_config_defaults_and_fees():
    config = ScannerConfig(taker_fee_bps={"bybit": 2})
    assert config.listen == "127.0.0.1:8000" and config.notionals == [10000, 100000]
    assert config.fee_bps("bybit") == 2 and config.fee_bps("bitget") == 6 and config.fee_bps("kraken") == 0
    assert config.fee_bps("okx") == 5 and config.fee_bps("hyperliquid") == 4.5
    assert config.resolved(5).stale_after_seconds == 15
    assert ScannerConfig(stale_after_seconds=40).resolved(5).stale_after_seconds == 40
    assert split_listen("[::1]:8080") == ("::1", 8080)
    for bad in ({"listen": "8000"}, {"listen": "host:99999"}, {"notionals": [0]}, {"taker_fee_bps": {"x": -1}},
                {"stale_after_seconds": 0}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            ScannerConfig.model_validate(bad)


def test_board_model_rejects_strings_and_non_finite_numbers():
    row = {"symbol": SYMBOL, "bid": 1, "funding_interval_hours": 8}
    assert BoardRow.model_validate(row).bid == 1.0
    for bad in ({"bid": "1.0"}, {"funding_interval_hours": 0}, {"next_funding_time": 1.5}, {"price": 1.0}):
        with pytest.raises(ValidationError):
            BoardRow.model_validate({**row, **bad})
    with pytest.raises(ValidationError):
        Board.model_validate_json(b'{"exchange": "bybit", "timestamp": %d, "markets": [{"symbol": "X", "bid": NaN}]}' % NOW)
    with pytest.raises(ValidationError):
        Board.model_validate({"exchange": "By Bit", "timestamp": NOW, "markets": []})


def test_compact_symbol():
    assert compact_symbol("BTC/USDT:USDT") == "BTCUSDT"
    assert compact_symbol("BTC/USDT:USDT-250328") == "BTCUSDT-250328"
    assert compact_symbol("1000PEPE/USDT:USDT") == "1000PEPEUSDT"


def test_a_listen_off_loopback_requires_an_access_token():
    for loopback in ("127.0.0.1:8000", "127.8.9.10:0", "[::1]:8000", "localhost:8000"):
        assert ScannerConfig(listen=loopback).access_token is None
    for exposed in ("0.0.0.0:8000", "[::]:8000", "10.0.0.5:8000", "scanner.lan:8000"):
        with pytest.raises(ValidationError, match="access_token"):
            ScannerConfig(listen=exposed)
        assert ScannerConfig(listen=exposed, access_token="s" * 16).access_token.get_secret_value() == "s" * 16
    with pytest.raises(ValidationError):
        ScannerConfig(listen="0.0.0.0:8000", access_token="short")
    assert "s" * 16 not in repr(ScannerConfig(access_token="s" * 16))


def test_allowed_hosts_are_names_without_ports():
    from common.scan_page import allowed_hosts, host_name
    config = ScannerConfig(allowed_hosts=["Scanner.LAN", "10.0.0.5"])
    assert config.allowed_hosts == ["scanner.lan", "10.0.0.5"]
    assert allowed_hosts(config) == {"127.0.0.1", "localhost", "::1", "scanner.lan", "10.0.0.5"}
    assert allowed_hosts(ScannerConfig(listen="10.0.0.5:80", access_token="s" * 16)) == {"10.0.0.5"}
    assert "localhost" in allowed_hosts(ScannerConfig(listen="0.0.0.0:80", access_token="s" * 16))
    assert "0.0.0.0" not in allowed_hosts(ScannerConfig(listen="0.0.0.0:80", access_token="s" * 16))
    for bad in (["evil.example:80"], ["a b"], ["http://x"]):
        with pytest.raises(ValidationError):
            ScannerConfig(allowed_hosts=bad)
    assert [host_name(h) for h in ("Example.COM:8000", "[::1]:8000", "::1", "localhost", "")] == \
        ["example.com", "::1", "::1", "localhost", ""]
