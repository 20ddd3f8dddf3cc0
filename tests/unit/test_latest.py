"""What the scanner holds (common/latest.py): the newest values win, and every store is bounded: rows and
snapshots per exchange, exchanges, and exchanges that went away are forgotten; warnings are rate-limited."""
from __future__ import annotations

import logging

import pytest

from common.latest import (MAX_EXCHANGES, MAX_HELD_ROWS, MAX_HELD_SNAPSHOTS, LatestValues, Malformed,
                           RateLimitedLog)
from common.scan import Book, Source

pytestmark = pytest.mark.unit

STALE = 60_000


def rows(count: int, stamp: int, prefix: str = "S") -> dict[str, Source]:
    return {f"{prefix}{i}/USDT:USDT": Source(stamp, {"bid": float(i)}) for i in range(count)}


def snapshot(latest: LatestValues, exchange: str, symbol: str, stamp: int) -> None:
    latest.put_snapshot(exchange, symbol, Source(stamp, {}), Book(stamp, (), (), 0, 0))


def test_a_symbol_stale_on_board_and_snapshot_alike_is_forgotten_and_leaves_the_rest():
    latest = LatestValues()
    latest.put_board("bybit", 1_000, {"OLD/USDT:USDT": Source(1_000, {})})
    snapshot(latest, "bybit", "OLD/USDT:USDT", 1_000)
    latest.put_board("bybit", 9_000, {"BTC/USDT:USDT": Source(9_000, {})})
    assert latest.forget_older_than(5_000) == (2, [])
    assert sorted(latest.legs_by_symbol(9_000, STALE)) == ["BTC/USDT:USDT"]
    assert latest.legs_by_symbol(9_000, STALE, "OLD") == {}
    assert sorted(latest.legs_by_symbol(9_000, STALE, "BTC")) == ["BTC/USDT:USDT"]


def test_an_exchange_silent_past_the_cutoff_is_forgotten_whole():
    latest = LatestValues()
    latest.put_board("gone", 1_000, rows(3, 1_000))
    snapshot(latest, "gone", "S0/USDT:USDT", 2_000)
    latest.put_board("bybit", 9_000, rows(2, 9_000))
    assert latest.forget_older_than(5_000) == (4, ["gone"])
    assert set(latest.exchange_times()) == {"bybit"}
    assert latest.counts() == (2, 0)
    assert all(leg.exchange == "bybit" for legs in latest.legs_by_symbol(9_000, STALE).values() for leg in legs)


def test_an_assets_legs_of_every_quote_are_found_together_and_unindexed_when_gone():
    latest = LatestValues()
    latest.put_board("binance", 1_000, {"BTC/USDT:USDT": Source(1_000, {}), "BTC/USDC:USDC": Source(1_000, {}),
                                        "WBTC/USDT:USDT": Source(1_000, {})})
    latest.put_board("hyperliquid", 9_000, {"BTC/USDC:USDC": Source(9_000, {})})
    found = latest.legs_by_symbol(9_000, STALE, "btc")
    assert sorted((leg.exchange, leg.symbol) for legs in found.values() for leg in legs) == \
        [("binance", "BTC/USDC:USDC"), ("binance", "BTC/USDT:USDT"), ("hyperliquid", "BTC/USDC:USDC")]
    latest.forget_older_than(5_000)
    assert sorted(latest.legs_by_symbol(9_000, STALE, "BTC")) == ["BTC/USDC:USDC"]
    assert latest.legs_by_symbol(9_000, STALE, "WBTC") == {}
    assert set(latest._by_asset) == {"BTC"}  # the index holds no more than what is held


def test_board_rows_per_exchange_are_capped_keeping_the_newest():
    latest = LatestValues()
    latest.put_board("bybit", 1_000, rows(MAX_HELD_ROWS, 1_000, "OLD"))
    latest.put_board("bybit", 2_000, rows(10, 2_000, "NEW"))
    latest.put_board("gateio", 2_000, rows(5, 2_000))
    assert latest.counts() == (MAX_HELD_ROWS + 5, 0)
    legs = latest.legs_by_symbol(2_000, STALE)
    assert all(f"NEW{i}/USDT:USDT" in legs for i in range(10))
    assert sum(1 for symbol in legs if symbol.startswith("OLD")) == MAX_HELD_ROWS - 10
    # the dropped rows are unindexed too: /api/symbol finds nothing for them
    dropped = [f"OLD{i}" for i in range(MAX_HELD_ROWS) if f"OLD{i}/USDT:USDT" not in legs]
    assert len(dropped) == 10 and all(latest.legs_by_symbol(2_000, STALE, c) == {} for c in dropped)


def test_snapshots_per_exchange_are_capped_keeping_the_newest():
    latest = LatestValues()
    for i in range(MAX_HELD_SNAPSHOTS + 3):
        snapshot(latest, "bybit", f"S{i}/USDT:USDT", 1_000 + i)
    assert latest.counts() == (0, MAX_HELD_SNAPSHOTS)
    assert latest.legs_by_symbol(5_000, STALE, "S0") == {}
    assert "S2002/USDT:USDT" in latest.legs_by_symbol(5_000, STALE)


def test_exchanges_are_capped_until_one_goes_away():
    latest = LatestValues()
    for i in range(MAX_EXCHANGES):
        latest.put_board(f"ex{i}", 1_000 + i, rows(1, 1_000 + i))
    with pytest.raises(Malformed, match=f"already {MAX_EXCHANGES} exchanges"):
        latest.put_board("one_more", 9_000, rows(1, 9_000))
    latest.put_board("ex5", 9_000, rows(1, 9_000))  # one held already: still welcome
    latest.forget_older_than(1_001)  # ex0 went silent
    latest.put_board("one_more", 9_000, rows(1, 9_000))
    assert "one_more" in latest.exchange_times() and "ex0" not in latest.exchange_times()


def test_warnings_are_rate_limited_per_kind_and_say_how_many_were_held_back(caplog):
    now = [0.0]
    warnings = RateLimitedLog(logging.getLogger("test.latest"), seconds=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.latest"):
        assert warnings.warning("board", "bad board %d", 1)
        assert not warnings.warning("board", "bad board %d", 2)
        assert warnings.warning("futures", "bad snapshot")
        try:
            raise KeyError("boom")
        except KeyError:
            assert warnings.log(logging.ERROR, "error KeyError", "failed", exc_info=True)
            assert not warnings.log(logging.ERROR, "error KeyError", "failed", exc_info=True)
        now[0] = 10.5
        assert warnings.warning("board", "bad board %d", 3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad board 1", "bad snapshot", "failed", "bad board 3 (1 more like it since the last such line)"]
    assert sum(1 for r in caplog.records if r.exc_info) == 1  # one traceback, not one per message
