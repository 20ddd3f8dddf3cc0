"""common/history.py: the SQLite history store (SPEC section 14) and the realized funding arithmetic. Every
realized APR here is computed by hand in the test. sqlite files live under tmp_path; no process, no network."""
from __future__ import annotations

import json
import math
import os
import sqlite3
import time

import pytest

from common.history import (
    HOUR_MS, Pruned, complete_from, history_for_base, note_coverage, open_history, prune, realized_apr,
    realized_aprs, realized_by_leg, realized_spread, settlements_since, store_samples, store_settlements)

pytestmark = pytest.mark.unit

NOW = 1_780_000_000_000  # a settlement time on the hour is not needed: windows are (now - W, now]
DAY = 24 * HOUR_MS


@pytest.fixture
def db(tmp_path):
    conn = open_history(tmp_path / "state" / "history.sqlite")
    yield conn
    conn.close()


def settlement(symbol, funding_time, rate, hours=8.0):
    return {"symbol": symbol, "funding_time": funding_time, "rate": rate, "interval_hours": hours}


def board_row(symbol, bid, ask, **values):
    return {"symbol": symbol, "bid": bid, "ask": ask, **values}


# ---------------------------------------------------------------------------------------------- arithmetic

def test_realized_apr_is_the_sum_of_the_windows_rates_per_year_computed_by_hand():
    # Three 8 h settlements of 0.0001 in the last day: 0.0003 x 8760 / 24 = 0.1095.
    day = [[NOW - 16 * HOUR_MS, 0.0001, 8.0], [NOW - 8 * HOUR_MS, 0.0001, 8.0], [NOW, 0.0001, 8.0]]
    assert realized_apr(day, NOW, 24, complete_from_ms=NOW - 30 * DAY) == pytest.approx(0.1095)
    # 1 h settlements of 0.00002 for three days, one -0.0005 among them:
    # (71 x 0.00002 - 0.0005) x 8760 / 72 = (0.00142 - 0.0005) x 121.666... = 0.11193333...
    hourly = [[NOW - h * HOUR_MS, 0.00002, 1.0] for h in range(1, 72)] + [[NOW, -0.0005, 1.0]]
    assert realized_apr(hourly, NOW, 72, NOW - 3 * DAY) == pytest.approx(0.00092 * 8760 / 72)
    assert realized_apr(hourly, NOW, 72, NOW - 3 * DAY) == pytest.approx(0.1119333333)


def test_the_window_excludes_now_minus_w_and_includes_now():
    at_start, at_now = [[NOW - DAY, 0.001]], [[NOW, 0.001]]
    assert realized_apr(at_start, NOW, 24, 0) == 0.0
    assert realized_apr(at_now, NOW, 24, 0) == pytest.approx(0.001 * 8760 / 24)  # 0.365
    assert realized_apr([[NOW + 1, 0.001]], NOW, 24, 0) == 0.0  # not yet settled at now
    assert realized_apr([[NOW - DAY + 1, 0.001]], NOW, 24, 0) == pytest.approx(0.365)


def test_null_unless_the_history_reaches_back_over_the_whole_window():
    rates = [[NOW - 8 * HOUR_MS, 0.0001], [NOW, 0.0001]]
    assert realized_apr(rates, NOW, 24, complete_from_ms=NOW - DAY) == pytest.approx(0.0002 * 8760 / 24)
    assert realized_apr(rates, NOW, 24, complete_from_ms=NOW - DAY + 1) is None
    assert realized_apr(rates, NOW, 24, complete_from_ms=None) is None


def test_realized_aprs_gives_each_window_null_past_the_coverage():
    # One 8 h settlement of 0.0001 every 8 h for 10 days, the last at now; history complete from 10 days ago.
    rates = [[NOW - k * 8 * HOUR_MS, 0.0001, 8.0] for k in range(30)]
    aprs = realized_aprs(rates, NOW, complete_from_ms=NOW - 10 * DAY)
    assert aprs["1d"] == pytest.approx(3 * 0.0001 * 8760 / 24)     # 0.1095
    assert aprs["3d"] == pytest.approx(9 * 0.0001 * 8760 / 72)     # 0.1095
    assert aprs["7d"] == pytest.approx(21 * 0.0001 * 8760 / 168)   # 0.1095
    assert aprs["30d"] is None                                      # 10 days held of 30
    assert list(aprs) == ["1d", "3d", "7d", "30d"]


def test_realized_spread_is_the_shorts_minus_the_longs_per_window():
    long = {"1d": 0.05, "3d": 0.02, "7d": None, "30d": 0.01}
    short = {"1d": 0.1095, "3d": -0.01, "7d": 0.3, "30d": None}
    spread = realized_spread(long, short)
    assert spread["1d"] == pytest.approx(0.0595) and spread["3d"] == pytest.approx(-0.03)
    assert spread["7d"] is None and spread["30d"] is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, "0.0001", None, True])
def test_a_rate_that_is_not_a_finite_number_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=f"funding_time {NOW}: rate .* is not a finite number"):
        realized_apr([[NOW - HOUR_MS, 0.0001], [NOW, bad]], NOW, 24, 0)


def test_bad_windows_and_settlements_are_refused():
    with pytest.raises(ValueError, match="window_hours must be a positive number"):
        realized_apr([], NOW, 0, 0)
    with pytest.raises(ValueError, match="funding_time must be a non-negative integer"):
        realized_apr([[1.5, 0.0001]], NOW, 24, 0)
    with pytest.raises(ValueError, match=r"must be \[funding_time, rate"):
        realized_apr([[NOW]], NOW, 24, 0)


# ---------------------------------------------------------------------------------------------- the file

def test_open_creates_the_schema_in_wal_with_a_version_and_a_busy_timeout(tmp_path):
    path = tmp_path / "new" / "history.sqlite"
    conn = open_history(path)
    assert path.exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"settlements", "samples", "coverage", "legs"} <= tables
    columns = {row[1] for row in conn.execute("PRAGMA table_info(samples)")}
    assert {"ts", "exchange", "symbol", "bid", "ask", "mark_price", "index_price", "funding_rate",
            "funding_interval_hours", "open_interest", "volume_24h", "base"} <= columns
    # One asset's history is its legs by an index, then a range of each table's key: no scan.
    plan = " ".join(str(row) for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT samples.* FROM legs JOIN samples USING (exchange, symbol) "
        "WHERE legs.base = 'BTC' AND ts BETWEEN 0 AND 1"))
    assert "legs_by_base (base=?)" in plan and "PRIMARY KEY (exchange=? AND symbol=? AND ts>? AND ts<?)" in plan
    assert "SCAN" not in plan
    conn.close()


def test_reopening_an_existing_file_keeps_its_data(tmp_path):
    path = tmp_path / "history.sqlite"
    first = open_history(path)
    store_settlements(first, "bybit", [settlement("SOL/USDT:USDT", NOW, 0.0001, 4.0)])
    note_coverage(first, "bybit", "SOL/USDT:USDT", NOW - DAY)
    first.close()
    again = open_history(path)
    assert settlements_since(again, "bybit", "SOL/USDT:USDT", 0) == [(NOW, 0.0001, 4.0)]
    assert complete_from(again, "bybit", "SOL/USDT:USDT") == NOW - DAY
    again.close()


def test_a_file_from_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "history.sqlite"
    open_history(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99 is newer"):
        open_history(path)


# ---------------------------------------------------------------------------------------------- writers

def test_a_repeated_delivery_changes_nothing_and_a_correction_overwrites(db):
    rows = [settlement("BTC/USDT:USDT", NOW - 8 * HOUR_MS, 0.0001), settlement("BTC/USDT:USDT", NOW, 0.0002)]
    assert store_settlements(db, "binance", rows) == 2
    assert store_settlements(db, "binance", rows) == 0
    corrected = [settlement("BTC/USDT:USDT", NOW, 0.00025), settlement("BTC/USDT:USDT", NOW - 8 * HOUR_MS, 0.0001, 4.0)]
    assert store_settlements(db, "binance", corrected) == 2
    assert settlements_since(db, "binance", "BTC/USDT:USDT", 0) == [
        (NOW - 8 * HOUR_MS, 0.0001, 4.0), (NOW, 0.00025, 8.0)]
    assert db.execute("SELECT count(*) FROM settlements").fetchone()[0] == 2


def test_the_same_time_on_another_exchange_or_symbol_is_another_settlement(db):
    store_settlements(db, "binance", [settlement("BTC/USDT:USDT", NOW, 0.0001)])
    assert store_settlements(db, "bybit", [settlement("BTC/USDT:USDT", NOW, 0.0001)]) == 1
    assert store_settlements(db, "binance", [settlement("BTC/USDC:USDC", NOW, 0.0001)]) == 1


def test_a_batch_with_a_bad_row_is_refused_whole_naming_the_row(db):
    good = settlement("ETH/USDT:USDT", NOW, 0.0001)
    for bad, problem in [(settlement("ETH/USDT:USDT", NOW, math.nan), "rate must be a finite number"),
                         (settlement("ETH/USDT:USDT", 1.5, 0.0001), "funding_time must be a non-negative"),
                         (settlement("", NOW, 0.0001), "symbol must be a non-empty"),
                         (settlement("ETH/USDT:USDT", NOW, 0.0001, 0), "interval_hours must be a positive")]:
        with pytest.raises(ValueError, match=f"settlement 1 .*{problem}.*nothing stored"):
            store_settlements(db, "okx", [good, bad])
    assert settlements_since(db, "okx", "ETH/USDT:USDT", 0) == []
    with pytest.raises(ValueError, match="open_interest must be a finite number"):
        store_samples(db, NOW, "okx", [board_row("ETH/USDT:USDT", 1.0, 2.0, open_interest=math.inf)])
    with pytest.raises(ValueError, match="exchange must be"):
        store_settlements(db, "", [good])


def test_an_unknown_interval_still_stores_the_rate(db):
    assert store_settlements(db, "htx", [settlement("BTC/USDT:USDT", NOW, 0.0001, None)]) == 1
    assert settlements_since(db, "htx", "BTC/USDT:USDT", NOW) == [(NOW, 0.0001, None)]


def test_coverage_keeps_the_earliest_noted(db):
    assert complete_from(db, "gateio", "BTC/USDT:USDT") is None
    note_coverage(db, "gateio", "BTC/USDT:USDT", NOW - 30 * DAY)
    note_coverage(db, "gateio", "BTC/USDT:USDT", NOW - DAY)  # a later, shorter backfill
    assert complete_from(db, "gateio", "BTC/USDT:USDT") == NOW - 30 * DAY
    note_coverage(db, "gateio", "BTC/USDT:USDT", NOW - 40 * DAY)
    assert complete_from(db, "gateio", "BTC/USDT:USDT") == NOW - 40 * DAY


def test_samples_store_the_board_rows_values_once_per_time(db):
    rows = [board_row("BTC/USDT:USDT", 100.0, 101.0, mark_price=100.5, index_price=100.4, funding_rate=0.0001,
                      funding_interval_hours=8.0, open_interest=5.0, volume_24h=7.0, last=100.6)]
    assert store_samples(db, NOW, "binance", rows) == 1
    store_samples(db, NOW, "binance", rows)  # the same board delivered again
    stored = db.execute("SELECT ts, exchange, symbol, bid, ask, mark_price, index_price, funding_rate, "
                        "funding_interval_hours, open_interest, volume_24h, base FROM samples").fetchall()
    assert stored == [(NOW, "binance", "BTC/USDT:USDT", 100.0, 101.0, 100.5, 100.4, 0.0001, 8.0, 5.0, 7.0, "BTC")]


def test_prune_deletes_what_is_older_than_the_retention_and_says_how_many(db):
    cut = NOW - 30 * DAY
    store_settlements(db, "bitget", [settlement("BTC/USDT:USDT", cut - 1, 0.0001),
                                     settlement("BTC/USDT:USDT", cut, 0.0002),
                                     settlement("BTC/USDT:USDT", NOW, 0.0003)])
    for ts in (cut - 2, cut - 1, cut, NOW):
        store_samples(db, ts, "bitget", [board_row("BTC/USDT:USDT", 1.0, 2.0)])
    note_coverage(db, "bitget", "BTC/USDT:USDT", cut - 8 * HOUR_MS)
    store_samples(db, cut - 1, "bitget", [board_row("OLD/USDT:USDT", 1.0, 2.0)])  # delisted since
    assert prune(db, cut) == Pruned(samples=3, settlements=1)
    assert [row[0] for row in settlements_since(db, "bitget", "BTC/USDT:USDT", 0)] == [cut, NOW]
    assert [row[0] for row in db.execute("SELECT ts FROM samples ORDER BY ts")] == [cut, NOW]
    assert complete_from(db, "bitget", "BTC/USDT:USDT") == cut  # deleted history no longer covers a window
    assert db.execute("SELECT exchange, symbol, base FROM legs").fetchall() == [("bitget", "BTC/USDT:USDT", "BTC")]
    assert prune(db, cut) == Pruned(0, 0)


# ---------------------------------------------------------------------------------------------- readers

def test_history_for_base_gives_every_exchange_and_quote_of_the_asset(db):
    store_settlements(db, "binance", [settlement("BTC/USDT:USDT", NOW, 0.0002),
                                      settlement("BTC/USDT:USDT", NOW - 8 * HOUR_MS, 0.0001),
                                      settlement("ETH/USDT:USDT", NOW, 0.0009)])
    store_settlements(db, "hyperliquid", [settlement("BTC/USDC:USDC", NOW - HOUR_MS, 0.00001, 1.0)])
    store_settlements(db, "bybit", [settlement("BTC/USDT:USDT", NOW - 3 * DAY, 0.0001)])  # before `from`
    store_samples(db, NOW, "binance", [board_row("BTC/USDT:USDT", 100.0, 101.0, mark_price=100.5,
                                                 funding_rate=0.0002, funding_interval_hours=8.0),
                                       board_row("ETH/USDT:USDT", 3.0, 4.0)])
    store_samples(db, NOW - 300_000, "hyperliquid", [board_row("BTC/USDC:USDC", None, None, mark_price=99.0)])
    store_samples(db, NOW, "hyperliquid", [board_row("BTC/USDC:USDC", None, None, mark_price=99.5)])
    note_coverage(db, "binance", "BTC/USDT:USDT", NOW - 30 * DAY)

    history = history_for_base(db, "btc", NOW - DAY, NOW)
    assert history == {"symbol": "BTC", "from": NOW - DAY, "to": NOW, "legs": [
        {"exchange": "binance", "symbol": "BTC/USDT:USDT", "complete_from": NOW - 30 * DAY,
         "settlements": [(NOW - 8 * HOUR_MS, 0.0001, 8.0), (NOW, 0.0002, 8.0)],
         "samples": [(NOW, 100.0, 101.0, 100.5, 0.0002, 8.0)]},
        {"exchange": "hyperliquid", "symbol": "BTC/USDC:USDC", "complete_from": None,
         "settlements": [(NOW - HOUR_MS, 0.00001, 1.0)],
         "samples": [(NOW - 300_000, None, None, 99.0, None, None), (NOW, None, None, 99.5, None, None)]}]}
    assert json.loads(json.dumps(history))["legs"][1]["settlements"] == [[NOW - HOUR_MS, 0.00001, 1.0]]
    assert history_for_base(db, "DOGE", NOW - DAY, NOW)["legs"] == []


def test_settlements_since_feed_the_realized_arithmetic(db):
    # Hourly 0.00001 for two days on one leg: 24 x 0.00001 x 8760 / 24 = 0.0876 over 1 day.
    store_settlements(db, "hyperliquid", [settlement("ETH/USDC:USDC", NOW - h * HOUR_MS, 0.00001, 1.0)
                                          for h in range(48)])
    note_coverage(db, "hyperliquid", "ETH/USDC:USDC", NOW - 2 * DAY)
    rows = settlements_since(db, "hyperliquid", "ETH/USDC:USDC", NOW - 30 * DAY)
    aprs = realized_aprs(rows, NOW, complete_from(db, "hyperliquid", "ETH/USDC:USDC"))
    assert aprs["1d"] == pytest.approx(0.0876) and aprs["3d"] is None


def test_realized_by_leg_sums_every_leg_in_the_database_as_the_plain_arithmetic_does(db):
    # bybit SOL, 4 h: 0.0001 every 4 h for 8 days, the last at now, complete from 8 days ago.
    #   1d: 6 x 0.0001 x 8760 / 24 = 0.219; 3d: 18 x 0.0001 x 8760 / 72 = 0.219; 7d: 42 x ... = 0.219; 30d: null.
    # bybit XRP: the same rates, coverage unknown -> null everywhere.
    # binance BTC, 8 h: -0.0001 at now - 8 h and 0.0003 at now - 24 h (outside 1d: the window is open there),
    #   complete from 31 days ago: 1d: -0.0001 x 365 = -0.0365; 3d: 0.0002 x 8760 / 72 = 0.02433...;
    #   30d: 0.0002 x 8760 / 720 = 0.002433...
    store_settlements(db, "bybit", [settlement(symbol, NOW - k * 4 * HOUR_MS, 0.0001, 4.0)
                                    for symbol in ("SOL/USDT:USDT", "XRP/USDT:USDT") for k in range(48)])
    note_coverage(db, "bybit", "SOL/USDT:USDT", NOW - 8 * DAY)
    store_settlements(db, "binance", [settlement("BTC/USDT:USDT", NOW - 8 * HOUR_MS, -0.0001),
                                      settlement("BTC/USDT:USDT", NOW - DAY, 0.0003),
                                      settlement("BTC/USDT:USDT", NOW + 8 * HOUR_MS, 0.5)])  # after now: out
    note_coverage(db, "binance", "BTC/USDT:USDT", NOW - 31 * DAY)
    store_samples(db, NOW, "okx", [board_row("ETH/USDT:USDT", 1.0, 2.0)])  # a leg without settlements
    note_coverage(db, "okx", "ETH/USDT:USDT", NOW - 31 * DAY)
    note_coverage(db, "okx", "NEW/USDT:USDT", NOW - DAY)  # backfilled, nothing settled yet: a leg all the same

    realized = realized_by_leg(db, NOW)
    assert realized[("bybit", "SOL/USDT:USDT")] == pytest.approx({"1d": 0.219, "3d": 0.219, "7d": 0.219, "30d": None})
    assert realized[("bybit", "XRP/USDT:USDT")] == {"1d": None, "3d": None, "7d": None, "30d": None}
    assert realized[("binance", "BTC/USDT:USDT")] == pytest.approx(
        {"1d": -0.0365, "3d": 0.0002 * 8760 / 72, "7d": 0.0002 * 8760 / 168, "30d": 0.0002 * 8760 / 720})
    assert realized[("okx", "ETH/USDT:USDT")] == {"1d": 0.0, "3d": 0.0, "7d": 0.0, "30d": 0.0}  # nothing paid
    assert realized[("okx", "NEW/USDT:USDT")] == {"1d": 0.0, "3d": None, "7d": None, "30d": None}
    for exchange, symbol in realized:  # the database form and the plain one agree
        plain = realized_aprs(settlements_since(db, exchange, symbol, 0), NOW, complete_from(db, exchange, symbol))
        assert realized[exchange, symbol] == pytest.approx(plain)


# ---------------------------------------------------------------------------------------------- concurrency

def test_a_reader_is_not_blocked_by_a_writer_nor_blocks_it(tmp_path):
    path = tmp_path / "history.sqlite"
    writer, reader = open_history(path), open_history(path)
    writer.execute("PRAGMA busy_timeout = 200")  # without WAL the commit below would fail in 0.2 s, not hang
    reader.execute("PRAGMA busy_timeout = 200")
    store_settlements(writer, "okx", [settlement("BTC/USDT:USDT", NOW - 8 * HOUR_MS, 0.0001)])

    writer.execute("BEGIN IMMEDIATE")  # a write in progress, not committed
    writer.execute("INSERT INTO settlements VALUES ('okx', 'BTC/USDT:USDT', ?, 0.0002, 8.0, 'BTC')", (NOW,))
    assert len(settlements_since(reader, "okx", "BTC/USDT:USDT", 0)) == 1  # read at once, the committed rows
    writer.execute("COMMIT")

    reader.execute("BEGIN")  # a read in progress (the scanner answering a request)
    assert len(settlements_since(reader, "okx", "BTC/USDT:USDT", 0)) == 2
    assert store_settlements(writer, "okx", [settlement("BTC/USDT:USDT", NOW + 8 * HOUR_MS, 0.0003)]) == 1
    assert len(settlements_since(reader, "okx", "BTC/USDT:USDT", 0)) == 2  # its snapshot holds
    reader.execute("COMMIT")
    assert len(settlements_since(reader, "okx", "BTC/USDT:USDT", 0)) == 3
    writer.close()
    reader.close()


# ---------------------------------------------------------------------------------------------- a figure

def test_figure_a_30_day_query_for_one_asset(tmp_path):
    """Seven exchanges' legs of one asset (hourly or 8-hourly settlements, a sample every 5 minutes) beside
    nine other assets; prints the query's time. No timing assertion: the benchmark page states the figure."""
    conn = open_history(tmp_path / "history.sqlite")
    exchanges = {"binance": 8, "bybit": 8, "okx": 8, "bitget": 8, "gateio": 8, "htx": 8, "hyperliquid": 1}
    bases = ["BTC"] + [f"ALT{n}" for n in range(9)]
    start = NOW - 30 * DAY
    for exchange, hours in exchanges.items():
        quote = "USDC" if exchange == "hyperliquid" else "USDT"
        symbols = [f"{base}/{quote}:{quote}" for base in bases]
        store_settlements(conn, exchange, [settlement(symbol, t, 0.0001, float(hours))
                                           for symbol in symbols for t in range(start, NOW + 1, hours * HOUR_MS)])
        # Written directly, in one transaction: 60k store_samples commits would take a minute here.
        store_samples(conn, start, exchange, [board_row(symbol, 100.0, 100.1) for symbol in symbols])
        with conn:
            conn.executemany(
                "INSERT INTO samples (ts, exchange, symbol, bid, ask, mark_price, funding_rate, funding_interval_hours,"
                " base) VALUES (?, ?, ?, 100.0, 100.1, 100.05, 0.0001, ?, ?)",
                [(ts, exchange, symbol, float(hours), symbol.partition("/")[0])
                 for ts in range(start + 300_000, NOW + 1, 300_000) for symbol in symbols])
    took = []
    for _ in range(5):
        began = time.perf_counter()
        history = history_for_base(conn, "BTC", start, NOW)
        took.append(time.perf_counter() - began)
    samples = sum(len(leg["samples"]) for leg in history["legs"])
    settlements = sum(len(leg["settlements"]) for leg in history["legs"])
    assert len(history["legs"]) == 7 and samples == 7 * 8641
    print(f"\n30-day history_for_base: {len(history['legs'])} legs, {samples} samples, {settlements} settlements; "
          f"best {min(took) * 1000:.1f} ms, worst {max(took) * 1000:.1f} ms of {len(took)} "
          f"(load average {os.getloadavg()[0]:.1f})")
    conn.close()
