"""The scanner's realized funding (common/realized.py, common/scan.py): read through the scanner's own
refresh from a history database the test writes with common/history's writers, every value computed by
hand; the rows' realized spread and the sort by it. sqlite files under tmp_path; no process, no network."""
from __future__ import annotations

import logging
import sqlite3

import pytest

from common.history import HOUR_MS, WINDOWS, note_coverage, open_history, open_reader, store_samples, store_settlements
from common.realized import HistoryUnavailable, RealizedFunding
from common.scan import (REALIZED_WINDOWS, SORTS, Leg, ScannerConfig, opportunities, parse_filters,
                         symbol_detail)

pytestmark = pytest.mark.unit

NOW = 1_780_000_000_000
DAY = 24 * HOUR_MS
CONFIG = ScannerConfig(notionals=[1000], stale_after_seconds=15)
BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
NULLS = {"1d": None, "3d": None, "7d": None, "30d": None}


def settlement(symbol: str, funding_time: int, rate: float, hours: float = 8.0) -> dict:
    return {"symbol": symbol, "funding_time": funding_time, "rate": rate, "interval_hours": hours}


def every_8h(symbol: str, rate: float, days: int) -> list[dict]:
    """One settlement of `rate` every 8 h for `days` days, the last one 1 h before NOW."""
    return [settlement(symbol, NOW - HOUR_MS - k * 8 * HOUR_MS, rate) for k in range(days * 3)]


def live_leg(exchange: str, symbol: str, rate: float, hours: float = 8.0) -> Leg:
    return Leg(exchange, symbol, NOW - 1000, {"bid": 100.0, "ask": 100.1, "funding_rate": rate,
                                              "funding_interval_hours": hours})


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "state" / "history.sqlite"
    conn = open_history(path)
    yield path, conn
    conn.close()


def refreshed(path) -> RealizedFunding:
    realized = RealizedFunding(path)
    realized.refresh(NOW)
    return realized


# -- a leg's realized APR, by hand -----------------------------------------------------------------------
def test_a_legs_realized_apr_equals_the_hand_computation_and_an_uncovered_window_is_null(database):
    path, conn = database
    # Three 8 h settlements in the last day, 0.0001 + 0.0002 - 0.00005 = 0.00025: x 8760 / 24 = 0.09125.
    store_settlements(conn, "binance", [settlement(BTC, NOW - 1 * HOUR_MS, 0.0001),
                                        settlement(BTC, NOW - 9 * HOUR_MS, 0.0002),
                                        settlement(BTC, NOW - 17 * HOUR_MS, -0.00005),
                                        settlement(BTC, NOW - 25 * HOUR_MS, 0.001)])  # 3 d only: 0.00125
    note_coverage(conn, "binance", BTC, NOW - 5 * DAY)  # the backfill reached 5 days back: not 7 nor 30
    realized = refreshed(path)
    windows = realized.by_leg()[("binance", BTC)]
    assert windows["1d"] == pytest.approx(0.00025 * 8760 / 24) and windows["1d"] == pytest.approx(0.09125)
    assert windows["3d"] == pytest.approx(0.00125 * 8760 / 72)
    assert windows["7d"] is None and windows["30d"] is None
    assert realized.status() == {"database": str(path), "available": True, "refreshed": NOW, "legs": 1,
                                 "problem": None}


def test_the_row_carries_each_legs_realized_apr_and_the_spread_short_minus_long(database):
    path, conn = database
    store_settlements(conn, "binance", every_8h(BTC, 0.0001, 8))   # 3 a day x 0.0001 x 365 = 0.1095
    store_settlements(conn, "bybit", every_8h(BTC, 0.0003, 8))     # 0.3285
    for exchange in ("binance", "bybit"):
        note_coverage(conn, exchange, BTC, NOW - 8 * DAY)
    realized = refreshed(path).by_leg()
    # Live: binance pays less now (the long), bybit more (the short).
    legs = {BTC: [live_leg("binance", BTC, 0.0001), live_leg("bybit", BTC, 0.0005)]}
    (row,) = opportunities(legs, NOW, CONFIG, realized=realized)["rows"]
    assert (row["long"]["exchange"], row["short"]["exchange"]) == ("binance", "bybit")
    assert row["long"]["realized_apr"]["7d"] == pytest.approx(0.1095)
    assert row["short"]["realized_apr"]["7d"] == pytest.approx(0.3285)
    assert row["realized_apr_spread"]["1d"] == pytest.approx(0.3285 - 0.1095)
    assert row["realized_apr_spread"]["7d"] == pytest.approx(0.3285 - 0.1095)
    assert row["realized_apr_spread"]["30d"] is None  # covered 8 days back only
    detail = symbol_detail("BTC", legs, NOW, CONFIG, realized=realized)
    assert [leg["realized_apr"]["7d"] for leg in detail["legs"]] == [pytest.approx(0.1095), pytest.approx(0.3285)]
    assert detail["pairs"][0]["realized_apr_spread"] == row["realized_apr_spread"]


def test_a_leg_the_database_does_not_know_has_every_window_null_and_so_has_its_rows_spread(database):
    path, conn = database
    store_settlements(conn, "binance", every_8h(BTC, 0.0001, 31))
    note_coverage(conn, "binance", BTC, NOW - 31 * DAY)
    realized = refreshed(path).by_leg()
    # Matched by (exchange, unified symbol): gateio's BTC and binance's BTC/USDC:USDC are other legs.
    legs = {BTC: [live_leg("binance", BTC, 0.0001), live_leg("gateio", BTC, 0.0005)],
            "BTC/USDC:USDC": [live_leg("binance", "BTC/USDC:USDC", 0.0009)]}
    detail = symbol_detail("BTC", legs, NOW, CONFIG, realized=realized)
    by_leg = {(leg["exchange"], leg["symbol"]): leg["realized_apr"] for leg in detail["legs"]}
    assert by_leg[("binance", BTC)]["30d"] == pytest.approx(0.1095)
    assert by_leg[("gateio", BTC)] == NULLS and by_leg[("binance", "BTC/USDC:USDC")] == NULLS
    assert detail["pairs"][0]["realized_apr_spread"] == NULLS


def test_sort_realized_7d_orders_by_that_spread_descending_with_nulls_last(database):
    path, conn = database
    # Realized 7 d spreads: BTC 0.0001 a settlement (0.1095), ETH 0.0004 (0.438), SOL unknown on one leg.
    for exchange, symbol, rate in (("binance", BTC, 0.0001), ("bybit", BTC, 0.0002), ("binance", ETH, 0.0001),
                                   ("bybit", ETH, 0.0005), ("binance", SOL, 0.0001)):
        store_settlements(conn, exchange, every_8h(symbol, rate, 8))
        note_coverage(conn, exchange, symbol, NOW - 8 * DAY)
    realized = refreshed(path).by_leg()
    # The live spreads order them the other way: SOL widest, then BTC, then ETH.
    legs = {BTC: [live_leg("binance", BTC, 0.0001), live_leg("bybit", BTC, 0.0004)],
            ETH: [live_leg("binance", ETH, 0.0001), live_leg("bybit", ETH, 0.0002)],
            SOL: [live_leg("binance", SOL, 0.0001), live_leg("bybit", SOL, 0.0009)]}
    live = opportunities(legs, NOW, CONFIG, realized=realized)["rows"]
    assert [row["symbol"] for row in live] == ["SOL", "BTC", "ETH"]
    rows = opportunities(legs, NOW, CONFIG, parse_filters({"sort": "realized_7d"}), realized)["rows"]
    assert [row["symbol"] for row in rows] == ["ETH", "BTC", "SOL"]
    assert [row["realized_apr_spread"]["7d"] for row in rows] == [pytest.approx(0.438), pytest.approx(0.1095), None]
    # 30 d is covered nowhere: every row null, in the asset's order.
    rows = opportunities(legs, NOW, CONFIG, parse_filters({"sort": "realized_30d"}), realized)["rows"]
    assert [row["symbol"] for row in rows] == ["BTC", "ETH", "SOL"]


def test_the_window_names_are_the_history_stores_and_each_has_a_sort():
    assert REALIZED_WINDOWS == tuple(WINDOWS)
    assert SORTS == ("funding_apr_spread", "realized_1d", "realized_3d", "realized_7d", "realized_30d")


# -- a database that cannot be read --------------------------------------------------------------------
def test_a_missing_database_makes_every_value_null_says_so_once_and_is_not_created(tmp_path, caplog):
    path = tmp_path / "state" / "history.sqlite"
    realized = RealizedFunding(path)
    with caplog.at_level(logging.INFO, logger="scanner.history"):
        realized.refresh(NOW)
        realized.refresh(NOW + 60_000)
    assert realized.by_leg() == {}
    status = realized.status()
    assert status["available"] is False and status["refreshed"] is None and "does not exist" in status["problem"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "History database unavailable" in said[0] and str(path) in said[0]
    assert not path.exists() and not path.parent.exists()  # the scanner only reads: it creates nothing
    (row,) = opportunities({BTC: [live_leg("binance", BTC, 0.0001), live_leg("bybit", BTC, 0.0002)]}, NOW, CONFIG,
                           realized=realized.by_leg())["rows"]
    assert row["long"]["realized_apr"] == row["short"]["realized_apr"] == row["realized_apr_spread"] == NULLS
    with pytest.raises(HistoryUnavailable, match="does not exist"):
        realized.history("BTC", NOW - DAY, NOW)

    # The recorder creates it later: the next refresh reads it, and says so once.
    conn = open_history(path)
    store_settlements(conn, "binance", every_8h(BTC, 0.0001, 2))
    note_coverage(conn, "binance", BTC, NOW - 2 * DAY)
    conn.close()
    with caplog.at_level(logging.INFO, logger="scanner.history"):
        realized.refresh(NOW)
    assert realized.status()["available"] is True
    assert realized.by_leg()[("binance", BTC)]["1d"] == pytest.approx(0.1095)
    assert "Realized funding from" in caplog.records[-1].getMessage()


def test_a_file_that_is_not_a_history_database_is_unavailable(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 100)
    realized = RealizedFunding(garbage)
    realized.refresh(NOW)
    assert realized.status()["available"] is False and realized.by_leg() == {}
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()  # a SQLite file without the recorder's schema
    with pytest.raises(sqlite3.DatabaseError, match="has not created it yet"):
        open_reader(empty)
    assert "schema version 0" in RealizedFunding(empty).refresh(NOW).problem


def test_a_database_that_goes_away_nulls_every_value_at_the_next_refresh(database):
    path, conn = database
    store_settlements(conn, "binance", every_8h(BTC, 0.0001, 2))
    note_coverage(conn, "binance", BTC, NOW - 2 * DAY)
    conn.close()
    realized = refreshed(path)
    assert realized.by_leg()[("binance", BTC)]["1d"] == pytest.approx(0.1095)
    realized._close()  # as after a restart of the reader: the file is opened again at the next refresh
    path.unlink()
    realized.refresh(NOW + 60_000)
    assert realized.by_leg() == {} and realized.status()["available"] is False


def test_the_reader_never_writes(database):
    path, conn = database
    reader = open_reader(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM settlements")
    reader.close()


# -- one asset's history, for GET /api/history ---------------------------------------------------------
def test_history_gives_the_stored_rows_of_the_window_oldest_first(database):
    path, conn = database
    store_settlements(conn, "bybit", [settlement(BTC, NOW - 40 * HOUR_MS, 0.0003, 4.0),
                                      settlement(BTC, NOW - 4 * HOUR_MS, 0.0002, 4.0),
                                      settlement(BTC, NOW - 8 * HOUR_MS, 0.0001, 4.0)])
    store_samples(conn, NOW - 600_000, "bybit", [{"symbol": BTC, "bid": 100.0, "ask": 100.2, "mark_price": 100.1,
                                                  "funding_rate": 0.0001, "funding_interval_hours": 4.0}])
    store_samples(conn, NOW - 2 * DAY, "bybit", [{"symbol": BTC, "bid": 90.0, "ask": 90.2}])
    answer = RealizedFunding(path).history("BTC", NOW - DAY, NOW)
    assert answer["symbol"] == "BTC" and (answer["from"], answer["to"]) == (NOW - DAY, NOW)
    (leg,) = answer["legs"]
    assert (leg["exchange"], leg["symbol"]) == ("bybit", BTC)
    assert [tuple(s) for s in leg["settlements"]] == [(NOW - 8 * HOUR_MS, 0.0001, 4.0), (NOW - 4 * HOUR_MS, 0.0002, 4.0)]
    assert [tuple(s) for s in leg["samples"]] == [(NOW - 600_000, 100.0, 100.2, 100.1, 0.0001, 4.0)]
