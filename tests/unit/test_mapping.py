"""From ccxt's structures to board rows and snapshots, on hand-made ccxt structures: no network."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.mapping import MissingValues, base_levels, board_row, interval_hours, open_interest, snapshot

pytestmark = pytest.mark.unit

GATE_SOL = {"contractSize": 10.0}  # contracts of 10 SOL, as Gate and HTX quote them
TICKER = {"bid": 150.1, "ask": 150.2, "last": 150.15, "baseVolume": 1234.5, "markPrice": 150.16,
          "indexPrice": 150.12, "info": {"total_size": "300", "openInterest": "42.5"}}
FUNDING = {"fundingRate": 0.0001, "fundingTimestamp": 1_800_000_000_000, "interval": "4h"}


def test_interval_hours_reads_ccxt_intervals_and_nothing_else():
    assert [interval_hours(v) for v in ("8h", "1h", "4h")] == [8.0, 1.0, 4.0]
    assert [interval_hours(v) for v in (None, "", "h", "0h", "8m", 8, "x8h")] == [None] * 7


def test_a_row_takes_the_funding_interval_from_the_funding_structure_before_the_default():
    row = board_row("SOL/USDT:USDT", {"contractSize": 1}, TICKER, FUNDING, hours=8.0)
    assert row.funding_interval_hours == 4.0
    row = board_row("SOL/USDT:USDT", {"contractSize": 1}, TICKER, {**FUNDING, "interval": None}, hours=8.0)
    assert row.funding_interval_hours == 8.0
    assert board_row("SOL/USDT:USDT", {}, TICKER, {}, hours=None).funding_interval_hours is None


def test_a_row_carries_every_field_and_null_for_what_the_bulk_rows_lack():
    row = board_row("SOL/USDT:USDT", GATE_SOL, TICKER, FUNDING, hours=None, open_interest_field=("total_size", True))
    assert row.model_dump() == {
        "symbol": "SOL/USDT:USDT", "bid": 150.1, "ask": 150.2, "last": 150.15, "volume_24h": 1234.5,
        "mark_price": 150.16, "index_price": 150.12, "funding_rate": 0.0001,
        "next_funding_time": 1_800_000_000_000, "funding_interval_hours": 4.0, "contract_size": 10.0,
        "open_interest": 3000.0, "open_interest_time": None, "impact_bid": None,
        "impact_ask": None}  # 300 contracts of 10 SOL
    bare = board_row("NEW/USDT:USDT", {"contractSize": 1}, {}, {}, hours=None)
    assert bare.symbol == "NEW/USDT:USDT" and bare.contract_size == 1.0
    assert {k for k, v in bare.model_dump().items() if v is None} == {
        "bid", "ask", "last", "volume_24h", "mark_price", "index_price", "funding_rate", "next_funding_time",
        "funding_interval_hours", "open_interest", "open_interest_time", "impact_bid", "impact_ask"}


def test_a_rotated_open_interest_comes_with_its_own_time():
    """Binance: no bulk row carries it; the rotation's value (base units) and Binance's time of it."""
    row = board_row("BTC/USDT:USDT", {"contractSize": 1}, {"info": {}}, FUNDING, hours=8.0,
                    rotated_open_interest=(1234.5, 1_799_999_000_000))
    assert (row.open_interest, row.open_interest_time) == (1234.5, 1_799_999_000_000)


def test_impact_prices_are_carried_apart_and_never_as_the_top_of_the_book():
    """Hyperliquid: ccxt reports impactPxs as bid/ask; the row keeps them as impact prices, bid/ask null."""
    ticker = {"bid": 64990.0, "ask": 65012.0, "last": 65001.0, "info": {"dayBaseVlm": "812.5"}}
    row = board_row("BTC/USDC:USDC", {"contractSize": 1}, ticker, FUNDING, hours=1.0, base_volume_field="dayBaseVlm",
                    impact_prices=True)
    assert (row.bid, row.ask, row.impact_bid, row.impact_ask) == (None, None, 64990.0, 65012.0)
    assert row.volume_24h == 812.5
    plain = board_row("BTC/USDT:USDT", {"contractSize": 1}, ticker, FUNDING, hours=1.0)
    assert (plain.bid, plain.ask, plain.impact_bid, plain.impact_ask) == (64990.0, 65012.0, None, None)


def test_the_base_volume_comes_from_the_venues_raw_field_where_ccxts_counts_contracts():
    """OKX: ccxt's baseVolume is vol24h, contracts of ctVal; volCcy24h is the base units."""
    ticker = {"baseVolume": 31250.0, "info": {"vol24h": "31250", "volCcy24h": "312.5"}}
    assert board_row("BTC/USDT:USDT", {"contractSize": 0.01}, ticker, {}, None,
                     base_volume_field="volCcy24h").volume_24h == 312.5
    assert board_row("BTC/USDT:USDT", {"contractSize": 0.01}, {"info": {}}, {}, None,
                     base_volume_field="volCcy24h").volume_24h is None


def test_funding_structure_prices_win_and_binance_zero_next_funding_is_null():
    row = board_row("BTC/USDT:USDT", {}, {"markPrice": 1.0, "indexPrice": 2.0},
                    {"markPrice": 3.0, "indexPrice": 4.0, "fundingRate": 0.0, "fundingTimestamp": 0}, hours=8.0)
    assert (row.mark_price, row.index_price, row.funding_rate, row.next_funding_time) == (3.0, 4.0, 0.0, None)


def test_open_interest_in_base_units_or_null():
    assert open_interest({"contractSize": 10.0}, TICKER, ("total_size", True)) == 3000.0
    assert open_interest({"contractSize": 10.0}, TICKER, ("openInterest", False)) == 42.5
    assert open_interest({}, TICKER, None) is None
    assert open_interest({}, {"info": {"openInterest": ""}}, ("openInterest", False)) is None


@pytest.mark.parametrize("ticker", [{"bid": "abc"}, {"bid": float("nan")}, {"baseVolume": -1.0}, {"last": [1.0]}])
def test_a_malformed_value_raises_naming_the_field(ticker):
    with pytest.raises(ValidationError) as raised:
        board_row("BTC/USDT:USDT", {}, ticker, {}, hours=None)
    assert raised.value.errors()[0]["loc"][0] in ("bid", "baseVolume", "volume_24h", "last")


def test_a_malformed_open_interest_raises():
    with pytest.raises(ValueError):
        open_interest({}, {"info": {"total_size": "lots"}}, ("total_size", True))


def test_levels_in_contracts_become_base_units_and_base_levels_stay_as_they_are():
    levels = [[101.0, 3.0], [100.0, 5.0]]
    assert base_levels(levels, 1) is levels
    assert base_levels(levels, 0.01) == [(101.0, 0.03), (100.0, 0.05)]
    assert base_levels([[101.0, 3.0, 7]], 1) == [(101.0, 3.0)]  # ccxt's order count dropped
    with pytest.raises(TypeError):
        base_levels([[101.0, None]], 10.0)  # a level without a size: the symbol is skipped, not the process


BOOK = {"bids": [[150.0, 2.0], [149.9, 1.0]], "asks": [[150.3, 1.5]], "timestamp": 1_800_000_000_500}


def test_a_snapshot_is_its_board_row_plus_its_book_in_base_units():
    row = board_row("SOL/USDT:USDT", GATE_SOL, TICKER, FUNDING, hours=None)
    snap = snapshot("gateio", row, BOOK, {}, now_ms=1_800_000_001_000)
    assert snap.model_dump() == {
        "exchange": "gateio", "symbol": "SOL/USDT:USDT", "timestamp": 1_800_000_001_000,
        "ticker": {"bid": 150.1, "ask": 150.2, "last": 150.15, "volume_24h": 1234.5},
        "orderbook": {"bids": [(150.0, 20.0), (149.9, 10.0)], "asks": [(150.3, 15.0)],
                      "timestamp": 1_800_000_000_500},
        "funding_rate": 0.0001, "next_funding_time": 1_800_000_000_000, "mark_price": 150.16,
        "extra": {"contract_size": 10.0, "index_price": 150.12, "funding_interval_hours": 4.0}}


def test_bid_and_ask_fall_back_to_the_book_and_extras_fill_the_mark_price():
    row = board_row("BTC/USDT:USDT", {}, {"last": 150.1}, {}, hours=None)
    snap = snapshot("htx", row, BOOK, {"markPrice": 150.2}, now_ms=1_800_000_001_000)
    assert (snap.ticker.bid, snap.ticker.ask, snap.mark_price) == (150.0, 150.3, 150.2)
    assert snap.orderbook.timestamp == BOOK["timestamp"]


def test_a_snapshot_without_last_or_with_a_malformed_level_is_refused():
    with pytest.raises(MissingValues, match="no last"):
        snapshot("bybit", board_row("BTC/USDT:USDT", {}, {"bid": 1.0, "ask": 2.0}, {}, hours=None), BOOK, {}, 1)
    row = board_row("BTC/USDT:USDT", {}, TICKER, {}, hours=None)
    with pytest.raises(ValidationError):
        snapshot("bybit", row, {"bids": [[150.0, None]], "asks": [[150.3, 1.0]]}, {}, 1)


def test_an_interval_that_cannot_be_read_is_null_never_the_default():
    from common.mapping import interval_problem, row_interval
    assert row_interval({"interval": "4h"}, 8.0) == 4.0
    assert row_interval({"interval": None}, 8.0) == 8.0 and row_interval({}, None) is None
    for raw in ("30m", "", "x8h", 8, "0h"):
        assert row_interval({"interval": raw}, 8.0) is None
        assert "cannot be read" in interval_problem({"interval": raw})
    assert interval_problem({"interval": "4h"}) is None and interval_problem({}) is None
    row = board_row("SOL/USDT:USDT", {"contractSize": 1}, TICKER, {**FUNDING, "interval": "4 hours"}, hours=8.0)
    assert row.funding_interval_hours is None


def test_binances_listed_intervals_with_the_unreadable_ones_named():
    from common.mapping import listed_intervals
    hours, problems = listed_intervals({"DOGE/USDT:USDT": {"interval": "4h"}, "WIF/USDT:USDT": {"interval": "xh"},
                                        "SOL/USDT:USDT": {"interval": None}, "BAD/USDT:USDT": "garbled"})
    assert hours == {"DOGE/USDT:USDT": 4.0, "WIF/USDT:USDT": None, "SOL/USDT:USDT": None, "BAD/USDT:USDT": None}
    assert set(problems) == {"WIF/USDT:USDT", "SOL/USDT:USDT", "BAD/USDT:USDT"}
    assert "'xh'" in problems["WIF/USDT:USDT"] and "not an object" in problems["BAD/USDT:USDT"]


def test_a_book_is_cut_to_the_depth_asked_for():
    from common.mapping import cut_book
    book = {"bids": [[100 - i, 1] for i in range(150)], "asks": [[101 + i, 1] for i in range(150)], "timestamp": 5}
    cut = cut_book(book, 20)
    assert len(cut["bids"]) == len(cut["asks"]) == 20 and cut["bids"][0] == [100, 1] and cut["timestamp"] == 5
    assert cut_book(book, 150) is book and cut_book(book, 1000) is book
    assert cut_book(book, "max") is book and cut_book(book, None) is book
