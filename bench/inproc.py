"""In-process measurements of one worker's own code, each run by bench.run in a fresh subprocess:

    python -m bench.inproc cpu  EXCHANGE CONFIG [--repeats 200]
    python -m bench.inproc soak EXCHANGE CONFIG [--cycles 1000] [--warmup 20]

Both build a `worker.Worker` the way `worker.main()` does (real config file, real ccxt client pointed at the
simulator, real broker connection to the benchmark's private vhost) and print one JSON line of results.

cpu:  CPU time (this thread's, time.thread_time) per snapshot at the venue's maximum depth, split into
      ccxt's work on a recorded book answer (`fetch_order_book` with the network replaced by the recorded
      body: JSON decode + ccxt's request building and parsing) and the product's (`build_snapshot`:
      level conversion + pydantic validation; `model_dump_json`; `broker.publish` with confirms).
soak: `collect_cycle()` back to back, `--cycles` times, against the simulator (the harness turns its
      latency and rate limits off for this phase, and ccxt's throttle is off here), sampling this
      process's resident memory (VmRSS) after the warm-up and every 100 cycles.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time

from common.config import load_config
from common.exchanges import venue_for
from common.shutdown import StopSignal
from common.symbols import routing_key


def rss_mb(pid: str | int = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_worker(config_path: str, name: str):
    """A Worker as worker.main() builds it (without signal handlers), connected, markets loaded. Follows
    worker.main's construction: a pool of clients sharing one throttle."""
    import worker as worker_module
    config = load_config(config_path)
    entry = config.exchange(name)
    venue = venue_for(entry.name)
    stop = StopSignal(logging.getLogger(name))
    w = worker_module.Worker(config, entry, worker_module.create_clients(config, entry, venue, {}), venue, stop)
    w.broker.ensure_connected()
    if not w._load_markets():
        raise SystemExit(f"{name}: could not load markets")
    return w


def _mean_ms(samples_ns: list[int]) -> float:
    """Mean, so that the garbage collections some calls pay for are counted."""
    return statistics.fmean(samples_ns) / 1e6


def measure_cpu(w, repeats: int) -> dict:
    symbols = w.listed_symbols()
    symbol = symbols[0]
    tickers, funding = w.fetch_bulk(symbols)
    ex = w.exchange
    limit = getattr(w, "book_limit", w.venue.book_limit)
    params = w.venue.book_params

    def fetch_book():  # what the worker asks of ccxt for one book
        return ex.fetch_order_book(symbol, limit, params)
    book = fetch_book()                       # one real request; ccxt keeps its body
    raw = ex.last_http_response
    ex.enableRateLimit = False
    real_fetch = ex.fetch
    ex.fetch = lambda url, method="GET", headers=None, body=None: ex.parse_json(raw)  # noqa: ARG005
    clock = time.thread_time_ns
    decode, total = [], []
    try:
        for _ in range(repeats):
            t = clock()
            json.loads(raw)
            decode.append(clock() - t)
            t = clock()
            book = fetch_book()
            total.append(clock() - t)
    finally:
        ex.fetch = real_fetch
    build, dump, publish, publish_wall = [], [], [], []
    key = routing_key(w.name, symbol)
    ticker, fund = tickers.get(symbol) or {}, funding.get(symbol) or {}
    for _ in range(repeats):
        t = clock()
        snapshot = w.build_snapshot(symbol, ticker, book, fund)
        build.append(clock() - t)
        t = clock()
        body = snapshot.model_dump_json().encode()
        dump.append(clock() - t)
        t, tw = clock(), time.perf_counter_ns()
        ok = w.broker.publish(w.config.rabbitmq.exchange, key, body)
        publish.append(clock() - t)
        publish_wall.append(time.perf_counter_ns() - tw)
        assert ok, "publish failed"
    out = {
        "exchange": w.name, "symbol": symbol, "levels": len(book["bids"]) + len(book["asks"]),
        "depth": len(book["bids"]), "raw_bytes": len(raw.encode()), "snapshot_bytes": len(body),
        "ccxt_decode_ms": _mean_ms(decode), "ccxt_total_ms": _mean_ms(total),
        "build_ms": _mean_ms(build), "serialize_ms": _mean_ms(dump), "publish_ms": _mean_ms(publish),
        "publish_wall_ms": _mean_ms(publish_wall), "repeats": repeats,
    }
    out["ccxt_parse_ms"] = out["ccxt_total_ms"] - out["ccxt_decode_ms"]
    out["product_ms"] = out["build_ms"] + out["serialize_ms"] + out["publish_ms"]
    out["product_share"] = out["product_ms"] / out["ccxt_total_ms"]
    return out


def soak(w, cycles: int, warmup: int) -> dict:
    for client in w.clients:
        client.enableRateLimit = False
    t0 = time.perf_counter()
    for _ in range(warmup):
        w.collect_cycle()
    samples = [(0, rss_mb())]
    t1 = time.perf_counter()
    for i in range(1, cycles + 1):
        w.collect_cycle()
        if i % 100 == 0 or i == cycles:
            samples.append((i, rss_mb()))
    t2 = time.perf_counter()
    totals = w.stats.totals
    return {"exchange": w.name, "symbols": len(w.listed_symbols()), "warmup_cycles": warmup, "cycles": cycles,
            "warmup_seconds": t1 - t0, "cycles_seconds": t2 - t1, "rss_samples": samples,
            "rss_warm_mb": samples[0][1], "rss_end_mb": samples[-1][1],
            "growth_pct": 100 * (samples[-1][1] - samples[0][1]) / samples[0][1],
            "success": totals.success, "errors": totals.errors, "published": totals.published,
            "publish_failed": totals.publish_failed}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("cpu", "soak"))
    p.add_argument("exchange")
    p.add_argument("config")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    w = make_worker(args.config, args.exchange)
    try:
        result = measure_cpu(w, args.repeats) if args.mode == "cpu" else soak(w, args.cycles, args.warmup)
    finally:
        w.broker.close()
        if getattr(w, "pool", None) is not None:
            w.pool.shutdown(wait=False)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
