"""The scanner's cost at the whole market's size (issue 11): every exchange's board at its real number of
perpetuals (the simulator's real sizes: 550/500/450/300/500) and 100 watched symbols per exchange at full
depth, every 5 s, published onto a private vhost the way the workers publish them; a real scanner.py process
consumes them. Measured: its CPU (share of one core) and resident memory over the cycles, and the delay from
a snapshot's publication to the JSON API showing it (the last message of each cycle's burst: the worst
place in the queue, probed every PROBE_S). Meanwhile a page polls /api/opportunities every POLL_MS as the
real one does, so its cost is in the figures, and its data is at most that much older than the API's.

    .venv/bin/python -m bench.scanner              # about 3 minutes; writes docs/benchmarks-scanner.md, .json
    .venv/bin/python -m bench.scanner --cycles 4   # a short run
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pika

from bench.harness import ROOT, PY, Vhost, cpu_seconds, log, percentile, rss_mb, stop_process
from common.board import board_routing_key
from common.exchanges import VENUES
from common.symbols import routing_key, routing_symbol
from tests.simulator import Simulator

INTERVAL = 5.0
PROBE_S = 0.05  # the probe is the bench's, not a user's: often enough to time the delay, rarely enough to cost little
WATCHED = 100
MAX_DEPTH = {"binance": 1000, "bybit": 1000, "bitget": 150, "htx": 150, "gateio": 300}
TARGETS = {"cpu_share": 0.10, "rss_mb": 150.0, "delay_p99_s": 1.0}
POLL_MS = int(re.search(r"const POLL_MS = (\d+);", (ROOT / "common/scanner_page/scanner.js").read_text()).group(1))
DATA_EXCHANGE = "futures_data"


# -- the messages, built once from the simulator's truth -------------------------------------------
def board_rows(sim: Simulator, exchange: str) -> list[dict]:
    fields = ("bid", "ask", "last", "volume_24h", "mark_price", "index_price", "funding_rate", "next_funding_time",
              "funding_interval_hours", "contract_size", "open_interest")
    rows = []
    for coin in sim.market.listed(exchange):
        truth = sim.truth(exchange, f"{coin.base}/USDT:USDT", depth=1)
        rows.append({"symbol": f"{coin.base}/USDT:USDT", **{f: _float(truth[f], f) for f in fields}})
    return rows


def _float(value, field: str):
    if value is None or field == "next_funding_time":
        return value
    return float(value)


def snapshot(sim: Simulator, exchange: str, symbol: str) -> dict:
    truth = sim.truth(exchange, symbol, depth=MAX_DEPTH[exchange])
    return {"exchange": exchange, "symbol": symbol, "timestamp": 0,
            "ticker": {"bid": truth["bid"], "ask": truth["ask"], "last": truth["last"],
                       "volume_24h": truth["volume_24h"]},
            "orderbook": {"bids": truth["bids"], "asks": truth["asks"], "timestamp": 0},
            "funding_rate": truth["funding_rate"], "next_funding_time": truth["next_funding_time"],
            "mark_price": truth["mark_price"],
            "extra": {"contract_size": truth["contract_size"], "index_price": truth["index_price"],
                      "funding_interval_hours": truth["funding_interval_hours"]}}


class Messages:
    """Every cycle's messages as (routing key, body), encoded once with a placeholder timestamp that each
    cycle replaces (the bench shares the two cores with the scanner and RabbitMQ: encoding 10 MB a cycle
    would load them as no worker does)."""
    STAMP = 1_111_111_111_111

    def __init__(self, sim: Simulator):
        self.items: list[tuple[str, dict]] = []
        self.board_sizes: dict[str, int] = {}
        for exchange in VENUES:
            rows = board_rows(sim, exchange)
            self.board_sizes[exchange] = len(rows)
            self.items.append((board_routing_key(exchange), {"exchange": exchange, "timestamp": 0, "markets": rows}))
            for row in rows[:WATCHED]:
                self.items.append((routing_key(exchange, row["symbol"]), snapshot(sim, exchange, row["symbol"])))
        self.probe_key, self.probe = self.items[-1]   # the last of each burst: the delay's worst place
        self.encoded = [(key, self._encode(body)) for key, body in self.items[:-1]]

    def _encode(self, body: dict) -> bytes:
        body["timestamp"] = self.STAMP
        if "orderbook" in body:
            body["orderbook"]["timestamp"] = self.STAMP
        return json.dumps(body).encode()

    def bodies(self, now_ms: int, cycle: int) -> list[tuple[str, bytes]]:
        # a value of its own each cycle for the probe, so that the API shows which one it has
        self.probe["ticker"]["last"] = round(self.probe["ticker"]["bid"] + cycle * 1e-6, 9)
        stamp, now = str(self.STAMP).encode(), str(now_ms).encode()
        return [(key, body.replace(stamp, now)) for key, body in self.encoded] + \
            [(self.probe_key, self._encode(self.probe).replace(stamp, now))]


# -- one run -----------------------------------------------------------------------------------------------
def start_scanner(vhost: Vhost, work: Path):
    config = {"rabbitmq": vhost.config(DATA_EXCHANGE), "exchanges": list(VENUES), "symbols": [],
              "api_keys_file": None, "logging": {"level": "INFO"}, "scanner": {"listen": "127.0.0.1:0"}}
    (work / "scanner.json").write_text(json.dumps(config))
    out = open(work / "scanner.log", "wb")
    proc = subprocess.Popen([PY, "scanner.py", "--config", str(work / "scanner.json")], cwd=ROOT,
                            stdout=out, stderr=out)
    deadline = time.time() + 30
    while not (match := re.search(r"Serving the page and the API on (http://[\d.:]+)/",
                                  (work / "scanner.log").read_text())):
        assert proc.poll() is None and time.time() < deadline, (work / "scanner.log").read_text()
        time.sleep(0.1)
    while "Consuming board" not in (work / "scanner.log").read_text():
        time.sleep(0.1)
    return proc, match.group(1)


def shown_last(url: str, exchange: str, symbol: str):
    try:
        with urllib.request.urlopen(f"{url}/api/symbol/{routing_symbol(symbol)}", timeout=5) as answer:
            legs = json.loads(answer.read())["legs"]
    except OSError:
        return None
    # The answer holds every leg of the asset (its USDC perpetual too): the probe's is its exchange's and symbol's.
    return next((leg.get("last") for leg in legs if leg["exchange"] == exchange and leg["symbol"] == symbol), None)


class Page(threading.Thread):
    """Polls /api/opportunities every POLL_MS, as the page does, and times each answer."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.seconds, self.rows = url, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.wait(POLL_MS / 1000):
            started = time.monotonic()
            with urllib.request.urlopen(f"{self.url}/api/opportunities", timeout=10) as answer:
                self.rows = len(json.loads(answer.read())["rows"])
            self.seconds.append(time.monotonic() - started)


def measure(cycles: int, warmup: int) -> dict:
    sim = Simulator(real_sizes=True)
    log("building the messages from the simulator's truth")
    messages = Messages(sim)
    vhost, work = Vhost(), Path(tempfile.mkdtemp(prefix="futures_scan_scanner_bench_"))
    proc, url = start_scanner(vhost, work)
    connection = pika.BlockingConnection(vhost.params())
    channel = connection.channel()
    channel.exchange_declare(DATA_EXCHANGE, exchange_type="topic", durable=True)
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8", user_id=vhost.user)
    delays, rss, cpu_start, wall_start = [], [], None, None
    page = Page(url)
    page.start()
    try:
        for cycle in range(warmup + cycles):
            started = time.time()
            if cycle == warmup:
                cpu_start, wall_start = cpu_seconds(proc.pid), time.monotonic()
            batch = messages.bodies(int(started * 1000), cycle)
            for key, body in batch:
                channel.basic_publish(DATA_EXCHANGE, key, body, props)
            published = time.time()
            want = messages.probe["ticker"]["last"]
            while shown_last(url, messages.probe["exchange"], messages.probe["symbol"]) != want:
                if time.time() - published > INTERVAL:
                    break
                time.sleep(PROBE_S)
            if cycle >= warmup:
                delays.append(time.time() - published)
                rss.append(rss_mb(proc.pid))
            connection.process_data_events(time_limit=max(0.0, started + INTERVAL - time.time()))
        cpu = cpu_seconds(proc.pid) - cpu_start
        wall = time.monotonic() - wall_start
        return {"cycles": cycles, "messages_per_cycle": len(batch),
                "bytes_per_cycle": sum(len(b) for _, b in batch),
                "boards": messages.board_sizes, "watched_per_exchange": WATCHED,
                "cpu_share": cpu / wall, "rss_mb_max": max(rss), "rss_mb_end": rss[-1],
                "delay_p50_s": statistics.median(delays), "delay_p99_s": percentile(delays, 99),
                "delay_max_s": max(delays), "poll_ms": POLL_MS, "page_rows": page.rows,
                "page_answer_p50_s": statistics.median(page.seconds),
                "page_answer_p99_s": percentile(page.seconds, 99)}
    finally:
        page.stop.set()
        connection.close()
        stop_process(proc)
        vhost.close()


# -- the page ----------------------------------------------------------------------------------------------
def verdicts(r: dict) -> dict:
    return {"cpu": r["cpu_share"] < TARGETS["cpu_share"], "rss": r["rss_mb_max"] < TARGETS["rss_mb"],
            "delay": r["delay_p99_s"] < TARGETS["delay_p99_s"],
            "page": r["delay_p99_s"] + r["poll_ms"] / 1000 < INTERVAL}


def page(r: dict) -> str:
    ok = verdicts(r)
    mark = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    boards = ", ".join(f"{ex} {n}" for ex, n in r["boards"].items())
    return "\n".join([
        "# The scanner's cost at the whole market's size",
        "",
        f"Made by `python -m bench.scanner` (bench/scanner.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"every 5 s, boards of every perpetual ({boards}) and {r['watched_per_exchange']} watched symbols per "
        f"exchange at full depth, {r['messages_per_cycle']} messages and {r['bytes_per_cycle'] / 1e6:.1f} MB a "
        f"cycle, consumed by one scanner.py process; {r['cycles']} measured cycles after a warm-up. A page polls "
        f"the table every {r['poll_ms']} ms meanwhile ({r['page_rows']} rows; answered in "
        f"{r['page_answer_p50_s'] * 1000:.0f} ms at the median, {r['page_answer_p99_s'] * 1000:.0f} ms at p99).",
        "",
        "| measure | figure | target | |",
        "|---|---|---|---|",
        f"| scanner CPU, share of one core | {r['cpu_share'] * 100:.1f} % | < {TARGETS['cpu_share'] * 100:.0f} % "
        f"| {mark(ok['cpu'])} |",
        f"| resident memory, largest | {r['rss_mb_max']:.0f} MB | < {TARGETS['rss_mb']:.0f} MB | {mark(ok['rss'])} |",
        f"| publication to API, p50 / p99 / max | {r['delay_p50_s'] * 1000:.0f} / {r['delay_p99_s'] * 1000:.0f} / "
        f"{r['delay_max_s'] * 1000:.0f} ms | p99 < {TARGETS['delay_p99_s'] * 1000:.0f} ms | {mark(ok['delay'])} |",
        f"| the page's data, at most | {(r['delay_p99_s'] + r['poll_ms'] / 1000):.1f} s old (p99 delay + its "
        f"{r['poll_ms']} ms poll) | within one 5 s cycle | {mark(ok['page'])} |",
        "",
        "The delay is measured on the last message of each cycle's burst, the worst place in the scanner's queue, "
        f"by asking for its symbol every {PROBE_S * 1000:.0f} ms.",
        ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    results = measure(args.cycles, args.warmup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks-scanner.json").write_text(json.dumps(results, indent=2))
    (out / "benchmarks-scanner.md").write_text(page(results))
    print(page(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
