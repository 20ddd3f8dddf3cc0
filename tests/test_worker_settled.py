"""Settled funding end to end (SPEC 14): each worker backfills every listed perpetual's settlements through
real ccxt and the simulator's history endpoints (each exchange's own paging and limits), publishes them as
funding.{exchange}, asks again after each funding time, and the recorder stores what equals the truth."""
import sqlite3
import time

import pytest

from common.broker import STATS_EXCHANGE
from common.history import complete_from
from tests.conftest import EXCHANGES, Consumer, Process, write_config
from tests.simulator.market import symbol_of

HISTORY_PATH = {"okx": "/api/v5/public/funding-rate-history"}
# The simulator's clock ticks in whole seconds: a settlement is served a second after its time at most.
HISTORY = {"enabled": True, "backfill_days": 3, "rate_share": 0.5, "settle_delay_seconds": 2}


def listed(sim, exchange):
    return {symbol_of(exchange, coin.base) for coin in sim.market.listed(exchange)}


def backfill(consumer: Consumer, symbols: set | int, timeout: float) -> dict:
    """symbol -> (complete from, [settlements]) once the backfill of `symbols` (or of that many) is published."""
    done: dict = {}

    def complete(key, body):
        for entry in body["backfilled"]:
            done[entry["symbol"]] = entry["from"]
        return len(done) >= symbols if isinstance(symbols, int) else set(done) >= symbols
    consumer.wait_for(complete, timeout, f"the backfill of {symbols if isinstance(symbols, int) else len(symbols)} perpetuals")
    symbols = set(done)
    published: dict = {}
    for _, body in consumer.since(0):
        for s in body["settlements"]:
            published.setdefault(s["symbol"], {})[s["funding_time"]] = (s["rate"], s["interval_hours"])
    return {symbol: (done[symbol], published.get(symbol, {})) for symbol in symbols}


def truth(sim, exchange, symbol, since):
    return {s["funding_time"]: (s["rate"], s["interval_hours"]) for s in sim.settlements(exchange, symbol, since)}


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_the_backfill_publishes_every_settlement_of_every_listed_perpetual(exchange, own_sim, own_rabbit,
                                                                          start_worker, tmp_path):
    own_sim.market.freeze()  # no funding time passes during the test: the truth stays put
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=[exchange], symbols=[],
                          history=HISTORY)
    settlements = Consumer(own_rabbit, "futures_data", f"funding.{exchange}")
    stats = Consumer(own_rabbit, STATS_EXCHANGE, f"stats.{exchange}")
    try:
        worker = start_worker(exchange, config)
        # Every perpetual on the board: the listed USDT ones, and USDC ones where ccxt loads them (Bybit, Bitget).
        _, report = stats.wait_for(lambda k, b: (b.get("history") or {}).get("symbols_total"), 30,
                                   "the statistics' history block")
        total = report["history"]["symbols_total"]
        got = backfill(settlements, total, 60)
        assert set(got) >= listed(own_sim, exchange)
        window_start = own_sim.market.now_ms() - 3 * 86_400_000
        for symbol, (complete_from_ms, published) in got.items():
            assert complete_from_ms >= window_start - 60_000, symbol  # the worker's clock, not the frozen one
            assert published == truth(own_sim, exchange, symbol, complete_from_ms), symbol
        hours = {interval for _, published in got.values() for _, interval in published.values()}
        assert len(sum((list(p) for _, p in got.values()), [])) > 3 * total
        assert hours >= ({1.0} if exchange == "hyperliquid" else {8.0}), hours
        _, report = stats.wait_for(lambda k, b: (b.get("history") or {}).get("symbols_done") == total,
                                   15, "the statistics' history progress")
        assert report["history"]["symbols_total"] == total == len(got)
        assert report["history"]["oldest"] == min(min(p) for _, p in got.values() if p)
        assert "429" not in own_sim.statuses(exchange) and "418" not in own_sim.statuses(exchange)
        worker.wait_for_log(r"Settled funding backfill: \d+ of \d+ symbols \(100%\)", 10)
    finally:
        settlements.close()
        stats.close()


# Pages back from the newest; forward from since. (Hyperliquid's next funding time is the next whole hour by the
# clock, as ccxt computes it: a settlement off the hour is never announced there.)
@pytest.mark.parametrize("exchange", ["bybit", "binance"])
def test_a_new_settlement_is_published_after_its_funding_time(exchange, own_sim, own_rabbit, start_worker, tmp_path):
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=[exchange], symbols=[],
                          history={**HISTORY, "backfill_days": 1})
    settlements = Consumer(own_rabbit, "futures_data", f"funding.{exchange}")
    try:
        start_worker(exchange, config)
        backfill(settlements, listed(own_sim, exchange), 60)
        symbol = symbol_of(exchange, "ETH")
        # Off the schedule, announced as ETH's next funding time until then: for two cycles at least, as a
        # real one is announced for hours (a worker learns of a funding time from its board).
        at = own_sim.market.now_ms() + 12_000
        own_sim.market.settle_at(exchange, "ETH", at)
        expected = own_sim.market._settled_rate(exchange, "ETH", at)
        _, body = settlements.wait_for(
            lambda k, b: any(s["symbol"] == symbol and s["funding_time"] == at for s in b["settlements"]), 40,
            f"the settlement of {symbol} at its funding time")
        [new] = [s for s in body["settlements"] if s["funding_time"] == at]
        assert new["rate"] == float(expected)
        assert new == {"symbol": symbol, "funding_time": at, **truth_at(own_sim, exchange, "ETH", at)}
    finally:
        settlements.close()


def truth_at(sim, exchange, base, at):
    [settled] = [s for s in sim.market.settlements(exchange, base, at, at)]
    return {"rate": float(settled.rate), "interval_hours": settled.interval_hours}


def test_the_recorder_holds_what_the_exchange_settled_and_from_when_it_is_complete(own_sim, own_rabbit,
                                                                                   start_worker, tmp_path):
    """OKX over 7 days: DOGE went from 8 h to 2 h five days ago, TAO was listed two days ago (its history is
    complete from its first settlement only), the others run 8, 4 and 1 h schedules."""
    own_sim.market.freeze()
    db = tmp_path / "history.sqlite"
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=["okx"], symbols=[],
                          history={**HISTORY, "backfill_days": 7, "database": str(db)})
    recorder = Process(["recorder.py", "--config", str(config)], tmp_path / "recorder.log")
    try:
        recorder.wait_for_log(r"Recording funding\.\*", 30)
        worker = start_worker("okx", config)
        worker.wait_for_log(r"Settled funding backfill: \d+ of \d+ symbols \(100%\)", 90)
        symbols = listed(own_sim, "okx")
        recorder.wait_for_log(r"Stored \d+ of \d+ settlements of okx", 30)

        def stored():
            with sqlite3.connect(db) as conn:
                covered = {symbol: complete_from(conn, "okx", symbol) for symbol in symbols}
                rows = conn.execute("SELECT symbol, funding_time, rate, interval_hours FROM settlements "
                                    "WHERE exchange = 'okx'").fetchall()
            return covered, rows
        # The last message may still be on its way to the database: await it through the log, not a sleep.
        while None in stored()[0].values():
            recorder.wait_for_log(r"Stored \d+ of \d+ settlements of okx", 30, len(recorder.log_text()))
        covered, rows = stored()
        held = {}
        for symbol, funding_time, rate, interval in rows:
            held.setdefault(symbol, {})[funding_time] = (rate, interval)
        for symbol in symbols:
            assert held.get(symbol, {}) == truth(own_sim, "okx", symbol, covered[symbol]), symbol
        tao, doge = symbol_of("okx", "TAO"), symbol_of("okx", "DOGE")
        assert covered[tao] == min(held[tao]) > own_sim.market.now_ms() - 3 * 86_400_000  # listed 2 days ago
        assert {interval for _, interval in held[doge].values()} == {8.0, 2.0}
        assert all(covered[s] <= own_sim.market.now_ms() - 7 * 86_400_000 + 60_000 for s in symbols - {tao})
        # A restarted worker on the recorder's host resumes from the database: no backfill again.
        first_run = len(own_sim.requests("okx", path=HISTORY_PATH["okx"]))
        worker.terminate()
        offset, restarted = len(worker.log_text()), time.time()
        again = start_worker("okx", config)  # appends to the same log file
        again.wait_for_log(rf"Settled funding: {len(symbols)} perpetuals already backfilled in ", 30, offset)
        again.wait_for_log(r"Published the board", 30, offset)
        assert first_run >= len(symbols)
        assert len(own_sim.requests("okx", since=restarted, path=HISTORY_PATH["okx"])) <= 2  # a settlement due meanwhile
    finally:
        recorder.kill()
