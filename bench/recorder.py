"""The recorder's cost at the whole market's size (issue 19): a real recorder.py process on a private vhost is
handed (1) the whole simulated market's 30-day settled funding (every listed perpetual of the seven exchanges at
their real sizes, each on its own schedule), as funding messages the way the workers publish them, and (2) every
exchange's board every 5 s. Measured: settlements stored per second, the recorder's CPU (share of one core) at
the real cadence, the database's growth per day, and the time of one asset's 30-day query (common/history.py's
history_for_base, what GET /api/history/{base}?days=30 runs) on a database holding 30 days of samples of the
whole market.

    .venv/bin/python -m bench.recorder              # about 5 minutes; writes docs/benchmarks-recorder.md, .json
    .venv/bin/python -m bench.recorder --cycles 6   # a short run
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pika

from bench.harness import PY, ROOT, Vhost, cpu_seconds, log, percentile, stop_process
from common.exchanges import VENUES
from common.history import SAMPLE_FIELDS, history_for_base, open_history
from common.messages import MAX_SETTLEMENTS
from common.scan import asset_of
from tests.simulator import Simulator
from tests.simulator.market import symbol_of

INTERVAL = 5.0
DAY_MS = 86_400_000
BACKFILL_DAYS = 30
SAMPLE_SECONDS = 300       # history.sample_seconds' default
FAST_SAMPLE_SECONDS = 10   # the steady phase samples 30 times as often: its CPU is an upper bound
QUERY_RUNS = 50
TARGETS = {"cpu_share": 0.05, "query_p99_s": 0.100}
DATA_EXCHANGE = "futures_data"
BOARD_FIELDS = ("bid", "ask", "last", "volume_24h", "mark_price", "index_price", "funding_rate", "next_funding_time",
                "funding_interval_hours", "contract_size", "open_interest")


# -- the market, from the simulator's truth ------------------------------------------------------------------
def market_rows(sim: Simulator) -> dict[str, list[dict]]:
    """exchange -> its board's rows (every listed perpetual)."""
    rows = {}
    for exchange in VENUES:
        rows[exchange] = []
        for coin in sim.market.listed(exchange):
            truth = sim.truth(exchange, symbol_of(exchange, coin.base), depth=1)
            rows[exchange].append({"symbol": truth["symbol"], **{f: truth[f] for f in BOARD_FIELDS}})
    return rows


def settlement_messages(sim: Simulator, rows: dict[str, list[dict]], now_ms: int) -> tuple[list, int]:
    """[(routing key, body)] of the whole market's 30-day settlements, at most MAX_SETTLEMENTS a message."""
    messages, total = [], 0
    for exchange, exchange_rows in rows.items():
        batch: list[dict] = []
        for row in exchange_rows:
            for s in sim.settlements(exchange, row["symbol"], now_ms - BACKFILL_DAYS * DAY_MS):
                batch.append({"symbol": row["symbol"], **s})
        total += len(batch)
        for start in range(0, len(batch), MAX_SETTLEMENTS):
            body = {"exchange": exchange, "timestamp": now_ms, "settlements": batch[start:start + MAX_SETTLEMENTS],
                    "backfilled": []}
            messages.append((f"funding.{exchange}", json.dumps(body).encode()))
    return messages, total


# -- the recorder process -------------------------------------------------------------------------------------
def start_recorder(vhost: Vhost, work: Path, sample_seconds: int) -> subprocess.Popen:
    config = {"rabbitmq": vhost.config(DATA_EXCHANGE), "exchanges": list(VENUES), "symbols": [],
              "api_keys_file": None, "logging": {"level": "INFO"},
              "history": {"sample_seconds": sample_seconds, "database": str(work / "history.sqlite")}}
    (work / "recorder.json").write_text(json.dumps(config))
    out = open(work / "recorder.log", "wb")
    # The bench's own user, never a role password a checkout's .env may hold.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUTURES_SCAN_")} | {"FUTURES_SCAN_DOTENV": "/dev/null"}
    proc = subprocess.Popen([PY, "recorder.py", "--config", str(work / "recorder.json")], cwd=ROOT,
                            stdout=out, stderr=out, env=env)
    deadline = time.time() + 30
    while "Recording funding" not in (work / "recorder.log").read_text():
        assert proc.poll() is None and time.time() < deadline, (work / "recorder.log").read_text()
        time.sleep(0.1)
    return proc


def count(db: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def size_bytes(db: Path) -> int:
    """The database with its write-ahead log: what the disk holds."""
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def backfill(channel, props, proc, db: Path, messages: list, total: int) -> dict:
    size, cpu, started = size_bytes(db), cpu_seconds(proc.pid), time.monotonic()
    for key, body in messages:
        channel.basic_publish(DATA_EXCHANGE, key, body, props)
    while (stored := count(db, "settlements")) < total:
        assert proc.poll() is None, "the recorder died"
        assert time.monotonic() - started < 600, f"{stored} of {total} settlements stored in 10 minutes"
        time.sleep(0.2)  # polling the database: the bench's own clock, no event to await
    seconds = time.monotonic() - started
    return {"settlements": total, "messages": len(messages), "seconds": seconds, "rows_per_s": total / seconds,
            "cpu_s": cpu_seconds(proc.pid) - cpu, "bytes_per_settlement": (size_bytes(db) - size) / total}


def steady(connection, channel, props, proc, db: Path, rows: dict, cycles: int) -> dict:
    """Boards every 5 s, sampled every FAST_SAMPLE_SECONDS."""
    encoded = {ex: json.dumps({"exchange": ex, "timestamp": 1_111_111_111_111, "markets": r}).encode()
               for ex, r in rows.items()}
    samples, size = count(db, "samples"), size_bytes(db)
    cpu, wall = cpu_seconds(proc.pid), time.monotonic()
    for _ in range(cycles):
        started = time.time()
        stamp = str(int(started * 1000)).encode()
        for exchange, body in encoded.items():
            channel.basic_publish(DATA_EXCHANGE, f"board.{exchange}", body.replace(b"1111111111111", stamp), props)
        connection.process_data_events(time_limit=max(0.0, started + INTERVAL - time.time()))
    connection.process_data_events(time_limit=2.0)  # the last boards reach the recorder
    written = count(db, "samples") - samples
    return {"cycles": cycles, "boards_per_cycle": len(rows), "rows_per_board": {ex: len(r) for ex, r in rows.items()},
            "cpu_share": (cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall), "samples_written": written,
            "bytes_per_sample": (size_bytes(db) - size) / written if written else None}


# -- one asset's 30 days --------------------------------------------------------------------------------------
def fill_samples(db: Path, rows: dict, now_ms: int) -> int:
    """30 days of samples of every perpetual, every SAMPLE_SECONDS, written straight into the database (the
    recorder would take 30 days to): the table as large as the query meets it."""
    period = SAMPLE_SECONDS * 1000
    times = range(now_ms - BACKFILL_DAYS * DAY_MS, now_ms, period)
    conn = open_history(db)
    written = 0
    with conn:
        for exchange, exchange_rows in rows.items():
            conn.executemany("INSERT OR IGNORE INTO legs (exchange, symbol, base) VALUES (?, ?, ?)",
                             [(exchange, r["symbol"], asset_of(r["symbol"])) for r in exchange_rows])
            for row in exchange_rows:
                values = tuple(row.get(name) for name in SAMPLE_FIELDS)
                conn.executemany(
                    f"INSERT OR REPLACE INTO samples (ts, exchange, symbol, {', '.join(SAMPLE_FIELDS)}, base) "
                    f"VALUES (?, ?, ?, {', '.join('?' * len(SAMPLE_FIELDS))}, ?)",
                    ((ts, exchange, row["symbol"], *values, asset_of(row["symbol"])) for ts in times))
                written += len(times)
    conn.close()
    return written


def query(db: Path, now_ms: int) -> dict:
    conn = open_history(db)
    seconds, legs, rows = [], 0, 0
    for _ in range(QUERY_RUNS):
        started = time.perf_counter()
        answer = history_for_base(conn, "BTC", now_ms - BACKFILL_DAYS * DAY_MS, now_ms)
        seconds.append(time.perf_counter() - started)
        legs = len(answer["legs"])
        rows = sum(len(leg["samples"]) + len(leg["settlements"]) for leg in answer["legs"])
    conn.close()
    return {"runs": QUERY_RUNS, "legs": legs, "rows": rows, "p50_s": statistics.median(seconds),
            "p99_s": percentile(seconds, 99), "max_s": max(seconds)}


def measure(cycles: int) -> dict:
    sim = Simulator(real_sizes=True, usdc=True)
    now_ms = sim.market.now_ms()
    log("building the market from the simulator's truth")
    rows = market_rows(sim)
    messages, total = settlement_messages(sim, rows, now_ms)
    vhost, work = Vhost(), Path(tempfile.mkdtemp(prefix="futures_scan_recorder_bench_"))
    db = work / "history.sqlite"
    proc = start_recorder(vhost, work, FAST_SAMPLE_SECONDS)
    connection = pika.BlockingConnection(vhost.params())
    channel = connection.channel()
    channel.exchange_declare(DATA_EXCHANGE, exchange_type="topic", durable=True)
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8", user_id=vhost.user)
    try:
        log(f"backfill: {total} settlements in {len(messages)} messages")
        filled = backfill(channel, props, proc, db, messages, total)
        log(f"steady: {cycles} cycles of {len(rows)} boards")
        running = steady(connection, channel, props, proc, db, rows, cycles)
    finally:
        connection.close()
        stop_process(proc)
        vhost.close()
    log("30 days of samples of the whole market, then one asset's 30-day query")
    filled_samples = fill_samples(db, rows, now_ms)
    asked = query(db, now_ms)
    perpetuals = sum(len(r) for r in rows.values())
    per_day = settlements_per_day(rows)
    samples_per_day = perpetuals * 86_400 // SAMPLE_SECONDS
    return {"perpetuals": perpetuals, "backfill": filled, "steady": running, "query": asked,
            "samples_filled": filled_samples, "database_mb": size_bytes(db) / 1e6,
            "settlements_per_day": per_day, "samples_per_day": samples_per_day,
            "growth_mb_per_day": (per_day * filled["bytes_per_settlement"]
                                  + samples_per_day * (running["bytes_per_sample"] or 0)) / 1e6}


def settlements_per_day(rows: dict) -> int:
    return int(sum(24 / (row["funding_interval_hours"] or 8) for exchange_rows in rows.values() for row in exchange_rows))


# -- the page -------------------------------------------------------------------------------------------------
def verdicts(r: dict) -> dict:
    return {"cpu": r["steady"]["cpu_share"] < TARGETS["cpu_share"], "query": r["query"]["p99_s"] < TARGETS["query_p99_s"]}


def page(r: dict) -> str:
    ok = verdicts(r)
    mark = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    b, s, q = r["backfill"], r["steady"], r["query"]
    boards = ", ".join(f"{ex} {n}" for ex, n in s["rows_per_board"].items())
    return "\n".join([
        "# The recorder's cost at the whole market's size",
        "",
        f"Made by `python -m bench.recorder` (bench/recorder.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"the simulator's real-size market, {r['perpetuals']} perpetuals ({boards}), each on its own funding "
        f"schedule; one recorder.py process on a private vhost of the local RabbitMQ, sharing this 2-core machine "
        f"with the broker and the bench.",
        "",
        "| measure | figure | target | |",
        "|---|---|---|---|",
        f"| 30-day backfill of the whole market: settlements stored | {b['settlements']:,} in {b['seconds']:.1f} s: "
        f"**{b['rows_per_s']:,.0f} rows/s** ({b['messages']} messages) | | |",
        f"| recorder CPU at the 5 s cadence, share of one core | {s['cpu_share'] * 100:.1f} % (boards of every "
        f"exchange every 5 s, sampled every {FAST_SAMPLE_SECONDS} s: {SAMPLE_SECONDS // FAST_SAMPLE_SECONDS} times "
        f"the default, so an upper bound) | < {TARGETS['cpu_share'] * 100:.0f} % | {mark(ok['cpu'])} |",
        f"| database growth per day | **{r['growth_mb_per_day']:.0f} MB** ({r['samples_per_day']:,} samples at "
        f"{s['bytes_per_sample']:.0f} B, {r['settlements_per_day']:,} settlements at {b['bytes_per_settlement']:.0f} B) "
        f"| | |",
        f"| one asset's 30-day history (`history_for_base`, {q['legs']} legs, {q['rows']:,} rows), p50 / p99 / max "
        f"of {q['runs']} | {q['p50_s'] * 1000:.0f} / {q['p99_s'] * 1000:.0f} / {q['max_s'] * 1000:.0f} ms "
        f"| p99 < {TARGETS['query_p99_s'] * 1000:.0f} ms | {mark(ok['query'])} |",
        "",
        f"The query ran on the database as 30 days make it: {r['samples_filled']:,} samples of the whole market "
        f"every {SAMPLE_SECONDS} s beside the settlements ({r['database_mb']:,.0f} MB on disk).",
        ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=36, help="steady cycles of 5 s (36: 3 minutes)")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    results = measure(args.cycles)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks-recorder.json").write_text(json.dumps(results, indent=2))
    (out / "benchmarks-recorder.md").write_text(page(results))
    print(page(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
