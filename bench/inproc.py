"""In-process measurements of one worker's own code, each run by bench.run in a fresh subprocess:

    python -m bench.inproc cpu         EXCHANGE CONFIG [--repeats 200]
    python -m bench.inproc board-cpu   EXCHANGE CONFIG [--repeats 50]
    python -m bench.inproc board-delay EXCHANGE CONFIG [--cycles 20] [--interval 5]
    python -m bench.inproc soak        EXCHANGE CONFIG [--cycles 1000] [--warmup 20]

Each builds a `worker.Worker` the way `worker.main()` does (real config file, real ccxt clients pointed at
the simulator, real broker connection to the benchmark's private vhost) and prints one JSON line of results.

cpu:   CPU time (this thread's) per snapshot at the venue's maximum depth: ccxt's work on the recorded answers
       of one symbol's requests (its book, and its extras: HTX's mark price), with the network replaced by
       those bodies; the same requests over loopback (the HTTP stack's part); beside the product's (`common.mapping.snapshot` from the symbol's board row: level
       conversion + pydantic validation; `model_dump_json`; `broker.publish`).
board-cpu, board-delay: bench/board.py.
soak:  `collect_cycle()` back to back, `--cycles` times, against the simulator (the harness turns its latency
       and rate limits off for this phase, and the throttle is off here), sampling this process's resident
       memory (VmRSS) after the warm-up and every 100 cycles.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from bench.board import (all_clients, bulk_client, clock, cpu_ms, mean_ms, measure_board_cpu, measure_board_delay,
                         recorded, replaying)
from bench.harness import rss_mb
from common.config import load_config
from common.exchanges import venue_for
from common.mapping import snapshot
from common.shutdown import StopSignal
from common.symbols import routing_key


def make_worker(config_path: str, name: str):
    """A Worker as worker.main() builds it (without signal handlers), connected, markets loaded."""
    import worker as worker_module
    config = load_config(config_path)
    entry = config.exchange(name)
    venue = venue_for(entry.name)
    stop = StopSignal(logging.getLogger(name))
    w = worker_module.Worker(config, entry, worker_module.create_routes(config, entry, venue, {}), venue, stop)
    w.broker.ensure_connected()
    if not w._load_markets():
        raise SystemExit(f"{name}: could not load markets")
    return w


def measure_cpu(w, repeats: int) -> dict:
    client, symbol = bulk_client(w), w.listed_symbols()[0]
    row = w.board_rows(w.fetch_bulk(), [symbol])[symbol]

    limit, params, extra_calls = w.books.limit, w.books.params, w.extras.fetchers

    def fetch_symbol():  # what the worker asks of ccxt for one symbol: its book, then its extras
        book = client.fetch_order_book(symbol, limit, params)
        extras = {}
        for fetch_extra in extra_calls:
            extras.update(fetch_extra(client, symbol))
        return book, extras
    requests, real_fetch = [], client.fetch

    def noting(url, method="GET", headers=None, body=None):
        requests.append((url, method, headers, body))
        return real_fetch(url, method, headers, body)
    client.fetch = noting
    try:
        (book, extras), bodies = recorded(client, fetch_symbol)
    finally:
        client.fetch = real_fetch
    with replaying(client, bodies[:1]):
        book_ms = cpu_ms(lambda: client.fetch_order_book(symbol, limit, params), repeats)
    extras_ms = 0.0
    if bodies[1:]:
        with replaying(client, bodies[1:]):
            extras_ms = cpu_ms(lambda: [fetch_extra(client, symbol) for fetch_extra in extra_calls], repeats)
    decode_ms = cpu_ms(lambda: [json.loads(b) for b in bodies], repeats)
    # The same requests sent again over loopback (CPU time only: the simulator's latency is not counted),
    # through ccxt's fetch (the HTTP stack: requests, urllib3, http.client; then its JSON decode).
    fetched_ms = cpu_ms(lambda: [client.fetch(*request) for request in requests], max(20, repeats // 4))
    build, dump, publish = [], [], []
    key = routing_key(w.name, symbol)
    for _ in range(repeats):
        t = clock()
        message = snapshot(w.name, row, book, extras, w.exchange.milliseconds())
        build.append(clock() - t)
        t = clock()
        body = message.model_dump_json().encode()
        dump.append(clock() - t)
        t = clock()
        assert w.broker.publish(w.config.rabbitmq.exchange, key, body), "publish failed"
        publish.append(clock() - t)
    out = {"exchange": w.name, "symbol": symbol, "levels": len(book["bids"]) + len(book["asks"]),
           "depth": len(book["bids"]), "requests": len(bodies), "raw_bytes": sum(len(b.encode()) for b in bodies),
           "snapshot_bytes": len(body), "ccxt_decode_ms": decode_ms, "ccxt_total_ms": book_ms + extras_ms,
           "ccxt_book_ms": book_ms, "ccxt_extras_ms": extras_ms,
           "build_ms": mean_ms(build), "serialize_ms": mean_ms(dump), "publish_ms": mean_ms(publish),
           "repeats": repeats}
    out["ccxt_parse_ms"] = out["ccxt_total_ms"] - out["ccxt_decode_ms"]
    out["http_ms"] = max(0.0, fetched_ms - decode_ms)
    out["product_ms"] = out["build_ms"] + out["serialize_ms"] + out["publish_ms"]
    out["product_share"] = out["product_ms"] / out["ccxt_total_ms"]
    return out


def soak(w, cycles: int, warmup: int) -> dict:
    for client in all_clients(w):
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
    return {"exchange": w.name, "symbols": len(w.listed_symbols()), "markets": len(w.perpetuals),
            "warmup_cycles": warmup, "cycles": cycles, "warmup_seconds": t1 - t0, "cycles_seconds": t2 - t1,
            "rss_samples": samples, "rss_warm_mb": samples[0][1], "rss_end_mb": samples[-1][1],
            "growth_pct": 100 * (samples[-1][1] - samples[0][1]) / samples[0][1],
            "success": totals.success, "errors": totals.errors, "published": totals.published,
            "publish_failed": totals.publish_failed}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("cpu", "board-cpu", "board-delay", "soak"))
    p.add_argument("exchange")
    p.add_argument("config")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--interval", type=float, default=5.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    w = make_worker(args.config, args.exchange)
    try:
        result = {"cpu": lambda: measure_cpu(w, args.repeats),
                  "board-cpu": lambda: measure_board_cpu(w, args.repeats),
                  "board-delay": lambda: measure_board_delay(w, args.cycles, args.interval),
                  "soak": lambda: soak(w, args.cycles, args.warmup)}[args.mode]()
    finally:
        w.broker.close()
        if w.books.pool is not None:
            w.books.pool.shutdown(wait=False)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
