"""The futures_scan benchmark: collection cost and freshness per exchange, against each exchange's rate-limit
floor (SPEC section 8) and against the naive ccxt loop a user would write first.

Usage (from the repository root; scripts/bench.sh runs scripts/setup.sh first, then this):

    .venv/bin/python -m bench.run            # full run, ~15 min on 2 cores; writes docs/benchmarks.md + .png
    .venv/bin/python -m bench.run --quick    # smoke run (< 2 min): N=3 only, short soak; writes to a temp dir
    .venv/bin/python -m bench.run --exchanges bybit,gateio --out /tmp/bench   # a subset, elsewhere

What it starts, and stops again by PID: the exchange simulator (`python -m tests.simulator`, 120 extra markets,
every exchange's real rate budget, 50 ms added to every answer), a private RabbitMQ vhost and user on the local
server (created and deleted with rabbitmqctl), and real `worker.py` processes with generated config files
(interval 5 s, symbols BTC, ETH, SOL, DOGE, XRP, then SIM001...). A listener thread in this process receives
every snapshot (`futures_data`, `#`) and every worker statistics message (`futures_collector_stats`).

Phases, exchanges one after another (the simulator's log and rate windows are reset between runs, so that one
run's budget use does not leak into the next, as if each run had its own IP):
  1. worker runs at N = 3, 20, 100: requests and weight per cycle (the simulator's log inside each cycle's
     [end - last_cycle_seconds, end] window from the worker's statistics messages), cycle time, 429/418 answers,
     RSS of the worker process, start-to-first-snapshot, book-answer-to-consumer delay;
  2. the largest N whose cycles all take <= 5 s at maximum depth: a search between the measured points;
  3. the naive loop (ccxt defaults; fetch_ticker, fetch_order_book at the same depth, fetch_funding_rate per
     symbol, one after another) in this process, at N = 20, against the same simulator and latency;
  4. `python -m bench.inproc cpu`: CPU per snapshot, ccxt's parse vs the product's build/serialize/publish;
  5. `python -m bench.inproc soak`: collect_cycle() 1,000 times back to back in one process (simulator
     latency and rate limits off, ccxt's throttle off, 5 symbols at maximum depth), RSS sampled.
Raw figures go to results.json beside the page.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl

import ccxt
import pika
import pika.exceptions

from common.broker import STATS_EXCHANGE
from common.config import ExchangeEntry
from common.exchanges import VENUES, redirect_urls
from tests.simulator import binance as binance_dialect

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
EXCHANGES = ("binance", "bybit", "bitget", "htx", "gateio")
INTERVAL = 5.0
LOAD_START = os.getloadavg()[0]
LATENCY = 0.05
EXTRA_MARKETS = 120
SYMBOLS = [f"{b}/USDT:USDT" for b in ("BTC", "ETH", "SOL", "DOGE", "XRP")] + \
          [f"SIM{i:03d}/USDT:USDT" for i in range(1, EXTRA_MARKETS + 1)]
BOOK_PATH = {"binance": "/fapi/v1/depth", "bybit": "/v5/market/orderbook", "bitget": "/api/v2/mix/market/merge-depth",
             "htx": "/linear-swap-ex/market/depth", "gateio": "/api/v4/futures/usdt/order_book"}
BOOK_SYMBOL_PARAM = {"binance": "symbol", "bybit": "symbol", "bitget": "symbol", "htx": "contract_code",
                     "gateio": "contract"}
MAX_DEPTH = {"binance": 1000, "bybit": 1000, "bitget": 150, "htx": 150, "gateio": 300}
# SPEC section 8: the bulk calls of one cycle (name, weight) and the book's weight; the budget per 5 s for books.
FLOOR_BULK = {
    "binance": [("/fapi/v1/ticker/24hr", 40), ("/fapi/v1/ticker/bookTicker", 5), ("/fapi/v1/premiumIndex", 10)],
    "bybit": [("/v5/market/tickers", 1)],
    "bitget": [("/api/v2/mix/market/tickers", 1), ("/api/v2/mix/market/current-fund-rate", 1)],
    # batch_merged + the raw batch funding endpoint; + swap_index for index_price (SPEC section 3's extra).
    "htx": [("/linear-swap-ex/market/detail/batch_merged", 1), ("/linear-swap-api/v1/swap_batch_funding_rate", 1),
            ("/linear-swap-api/v1/swap_index", 1)],
    "gateio": [("/api/v4/futures/usdt/tickers", 1), ("/api/v4/futures/usdt/contracts", 1)],
}
BINANCE_BOOK_WEIGHT = {1000: 20, 500: 10, 100: 5}
BUDGET_NOTE = {"binance": "2400 weight/min per IP", "bybit": "600 req/5 s per IP", "bitget": "20 req/s per endpoint",
               "htx": "800 req/s per IP", "gateio": "200 req/10 s per endpoint"}


def rate_floor(ex: str, depth: int | None = None) -> int:
    """Most symbols per 5 s cycle the published budget allows at that depth (SPEC section 8)."""
    if ex == "binance":
        bulk = sum(w for _, w in FLOOR_BULK[ex])
        return int((2400 / 60 * INTERVAL - bulk) // BINANCE_BOOK_WEIGHT[depth or 1000])
    if ex == "bybit":
        return int(600 / 5 * INTERVAL) - len(FLOOR_BULK[ex])
    if ex in ("bitget", "gateio"):   # per-endpoint budgets (20/s, 200/10 s): the book endpoint alone
        return int(20 * INTERVAL)
    return int(800 * INTERVAL) - len(FLOOR_BULK[ex])   # htx


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_for_broker(port: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                time.sleep(2)  # listening is not yet serving
                return
        except OSError:
            time.sleep(1)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- the simulator, as a subprocess ------------------------------------------------------------------------
class Sim:
    def __init__(self, logdir: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(logdir / "simulator.log", "wb")
        self.proc = subprocess.Popen([PY, "-m", "tests.simulator", "--port", str(self.port),
                                      "--extra-markets", str(EXTRA_MARKETS)], cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while True:
            try:
                self.get("requests")
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("simulator did not start; see simulator.log") from None
                time.sleep(0.1)

    def api_url(self, ex: str) -> str:
        return f"{self.url}/{ex}"

    def get(self, name: str, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        with urllib.request.urlopen(f"{self.url}/__sim/{name}?{q}", timeout=30) as r:
            return json.loads(r.read())

    def post(self, name: str, body: dict | None = None):
        req = urllib.request.Request(f"{self.url}/__sim/{name}", data=json.dumps(body or {}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def fresh(self, latency: float = LATENCY, rate_limits: bool = True) -> None:
        """Forget the log and the rate windows; the same latency on every exchange."""
        self.post("reset")
        self.post("rate_limits", {"enabled": rate_limits})
        for ex in EXCHANGES:
            self.post("latency", {"exchange": ex, "seconds": latency})

    def entries(self, ex: str, since: float) -> list[dict]:
        return self.get("requests", exchange=ex, since=since, entries=1)["entries"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


# -- RabbitMQ: a private vhost and user (the pattern of tests/conftest.py Rabbit) ---------------------------
def rabbitmqctl(*args: str, check: bool = True) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
    return out.stdout


class Vhost:
    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.vhost = self.user = f"futures_scan_bench_{tag}"
        self.password = f"pw-{uuid.uuid4().hex}"
        self.port = int(os.environ.get("RABBITMQ_PORT", 5672))
        for attempt in range(60):  # the broker is shared: another session's test may be restarting it
            try:
                rabbitmqctl("add_vhost", self.vhost, check=False)
                rabbitmqctl("add_user", self.user, self.password, check=False)
                rabbitmqctl("change_password", self.user, self.password)
                rabbitmqctl("set_permissions", "-p", self.vhost, self.user, ".*", ".*", ".*")
                break
            except RuntimeError:
                if attempt == 59:
                    self.close()
                    raise
                time.sleep(2)

    def params(self) -> pika.ConnectionParameters:
        return pika.ConnectionParameters("127.0.0.1", self.port, self.vhost,
                                         pika.PlainCredentials(self.user, self.password))

    def config(self, data_exchange: str) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "password": self.password,
                "vhost": self.vhost, "exchange": data_exchange}

    def close(self) -> None:
        # The broker is shared and may be restarting (a test suite's outage test): retry for up to a minute.
        for _ in range(30):
            try:
                rabbitmqctl("delete_vhost", self.vhost)
                break
            except RuntimeError as e:
                if "does not exist" in str(e) or "no_such_vhost" in str(e):
                    break
                time.sleep(2)
        rabbitmqctl("delete_user", self.user, check=False)


class Listener(threading.Thread):
    """Receives every snapshot (routing key and arrival time only) and every statistics message."""

    def __init__(self, vhost: Vhost):
        super().__init__(daemon=True, name="listener")
        self.vhost = vhost
        self.lock = threading.Lock()
        self.snapshots: list[tuple[str, str, float]] = []     # (exchange, BASEQUOTE, time received)
        self.stats: list[dict] = []
        self.outages: list[tuple[float, str]] = []   # the listener lost the broker at these times
        self._closing = False
        self._ready = threading.Event()
        self.start()
        if not self._ready.wait(15):
            raise RuntimeError("listener could not connect to RabbitMQ")

    def run(self):
        while not self._closing:  # reconnects: the broker is shared, someone may restart it
            try:
                conn = pika.BlockingConnection(self.vhost.params())
                ch = conn.channel()
                for exchange in ("futures_data", STATS_EXCHANGE):
                    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
                snaps = ch.queue_declare("", exclusive=True).method.queue
                ch.queue_bind(snaps, "futures_data", "#")
                stats = ch.queue_declare("", exclusive=True).method.queue
                ch.queue_bind(stats, STATS_EXCHANGE, "stats.#")
                ch.basic_consume(snaps, self._on_snapshot, auto_ack=True)
                ch.basic_consume(stats, self._on_stats, auto_ack=True)
                self._ready.set()
                while not self._closing:
                    conn.process_data_events(time_limit=0.2)
                conn.close()
            except (pika.exceptions.AMQPError, OSError) as e:
                self.outages.append((time.time(), type(e).__name__))
                time.sleep(0.5)

    def _on_snapshot(self, _ch, method, _props, _body):
        now = time.time()
        _, ex, sym = method.routing_key.split(".", 2)
        with self.lock:
            self.snapshots.append((ex, sym, now))

    def _on_stats(self, _ch, _method, _props, body):
        msg = json.loads(body)
        msg["_received"] = time.time()
        with self.lock:
            self.stats.append(msg)

    def stats_of(self, pid: int) -> list[dict]:
        with self.lock:
            return [m for m in self.stats if m.get("pid") == pid]

    def snapshots_of(self, ex: str, since: float, until: float = math.inf) -> list[tuple[str, float]]:
        with self.lock:
            return [(s, t) for e, s, t in self.snapshots if e == ex and since <= t <= until]

    def close(self):
        self._closing = True
        self.join(5)


# -- measurements ------------------------------------------------------------------------------------------
def weight_of(ex: str, entry: dict) -> int:
    if ex != "binance":
        return 1
    return binance_dialect.weight(SimpleNamespace(path=entry["path"], query=dict(parse_qsl(entry["query"]))))


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.exchanges = args.exchanges
        self.work = Path(tempfile.mkdtemp(prefix="futures_scan_bench_"))
        self.out = Path(args.out) if args.out else (ROOT / "docs" if not args.quick else self.work)
        self.sim: Sim | None = None
        self.vhost: Vhost | None = None
        self.listener: Listener | None = None
        self.procs: list[subprocess.Popen] = []
        self.results: dict = {"trials": {ex: [] for ex in self.exchanges}, "naive": {}, "cpu": {}, "soak": {}}
        self.depth_field = "depth" if "depth" in ExchangeEntry.model_fields else None

    # -- set-up and tear-down --------------------------------------------------------------------------
    def __enter__(self):
        log(f"work dir {self.work}")
        try:
            self.sim = Sim(self.work)
            wait_for_broker(int(os.environ.get("RABBITMQ_PORT", 5672)))
            self.vhost = Vhost()
            self.listener = Listener(self.vhost)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for step in [*(lambda p=p: stop_process(p) for p in self.procs),
                     lambda: self.listener and self.listener.close(),
                     lambda: self.vhost and self.vhost.close(),
                     lambda: self.sim and self.sim.stop()]:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every later step must still run
                log(f"clean-up: {type(e).__name__}: {e}")

    def write_config(self, name: str, ex: str, symbols: list[str], data_exchange: str = "futures_data",
                     depth: int | None = None) -> Path:
        entry = {"name": ex, "api_url": self.sim.api_url(ex)}
        if depth and self.depth_field:
            entry[self.depth_field] = depth
        config = {"rabbitmq": self.vhost.config(data_exchange), "exchanges": [entry], "symbols": symbols,
                  "collection": {"interval_seconds": INTERVAL, "retry_attempts": 3, "retry_delays": [1, 2, 4],
                                 "request_timeout_seconds": 10, "statistics_interval_seconds": 60},
                  "api_keys_file": None, "state_file": str(self.work / "symbols.json"),
                  "logging": {"level": "INFO"}}
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    # -- one worker process at N symbols -----------------------------------------------------------------
    def trial(self, ex: str, n: int, purpose: str, depth: int | None = None, measured: int = 2,
              retry: bool = True) -> dict:
        """Run worker.py with N symbols until `measured` cycles after the first have ended (fewer when cycles
        are long), then stop it. Cycle 1 (cold connections) is measured only when it is the only one."""
        self.sim.fresh()
        symbols = SYMBOLS[:n]
        config = self.write_config(f"{ex}-{n}-{depth or 'max'}", ex, symbols, depth=depth)
        logf = open(self.work / f"worker-{ex}-{n}-{depth or 'max'}.log", "wb")
        t0 = time.time()
        proc = subprocess.Popen([PY, "worker.py", ex, "--config", str(config)], cwd=ROOT, stdout=logf,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        first_snapshot = rss_warm = None
        need, deadline = None, t0 + 150   # binance's first cycle at 100 symbols takes ~52 s
        try:
            while True:
                time.sleep(0.05)
                if first_snapshot is None:
                    snaps = self.listener.snapshots_of(ex, t0)
                    if snaps:
                        first_snapshot = snaps[0][1] - t0
                msgs = self.listener.stats_of(proc.pid)
                if msgs and need is None:
                    rss_warm = rss_mb(proc.pid)
                    d1 = msgs[0]["last_cycle_seconds"]
                    # a long cycle: fewer of them (binance at 100 symbols takes ~50 s whatever the worker does);
                    # but cycles that overrun share windows with their neighbours, so a few for a fair mean
                    need = 1 + (measured if d1 <= 8 else 3 if d1 <= 30 else 0)
                    deadline = time.time() + need * max(d1, INTERVAL) * 1.5 + 20
                if need is not None and len(msgs) >= need:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {ex} exited ({proc.returncode}); see {logf.name}")
                if time.time() > deadline:
                    log(f"  {ex} N={n}: timed out waiting for cycles ({len(msgs)} of {need})")
                    break
        finally:
            rss_end = rss_mb(proc.pid)
            stop_process(proc)
            logf.close()
        t_end = time.time()
        # Durations: last_cycle_seconds of each cycle count (the final message on SIGTERM repeats the last).
        durations = {}
        for m in self.listener.stats_of(proc.pid):
            if m.get("cycles", 0) >= 1:
                durations.setdefault(m["cycles"], m["last_cycle_seconds"])
        outage = any(t0 <= t <= t_end for t, _ in self.listener.outages) or any(
            m.get("totals", {}).get("publish_failed", 0) for m in self.listener.stats_of(proc.pid))
        # From the process start on: a request the previous run's worker had in flight when it was stopped is
        # logged (with its arrival time) only after the simulator's reset, and must not open a cycle here.
        entries = self.sim.entries(ex, t0)
        # Windows: cycle k runs from its first bulk call (tickers) to the next cycle's first bulk call.
        marker = FLOOR_BULK[ex][0][0]
        starts = [e["time"] for e in entries if e["path"] == marker]
        windows = {k: (starts[k - 1], starts[k] if k < len(starts) else t_end)
                   for k in durations if k <= len(starts)}
        chosen = sorted(windows)[1:] if len(windows) > 1 else sorted(windows)
        cycles = []
        for k in chosen:
            start, end = windows[k]
            inside = [e for e in entries if start <= e["time"] < end]
            books = [e for e in inside if e["path"] == BOOK_PATH[ex]]
            cycles.append({"cycle": k, "seconds": durations[k], "requests": len(inside), "books": len(books),
                           "bulk_phase": (books[0]["time"] - start) if books else None,
                           "bulk": len(inside) - len(books), "weight": sum(weight_of(ex, e) for e in inside),
                           "paths": sorted({e["path"] for e in inside if e["path"] != BOOK_PATH[ex]})})
        delays = self._delays(ex, entries, t0, t_end)
        # Evidence for every 429/418: how many requests (same path, and all) the simulator saw in the second before.
        limited = [{"time": e["time"], "path": e["path"], "status": e["status"],
                    "same_path_1s": sum(1 for x in entries if x["path"] == e["path"] and e["time"] - 1 < x["time"] <= e["time"]),
                    "all_1s": sum(1 for x in entries if e["time"] - 1 < x["time"] <= e["time"])}
                   for e in entries if e["status"] in (429, 418)]
        statuses = {}
        for e in entries:
            statuses[str(e["status"])] = statuses.get(str(e["status"]), 0) + 1
        result = {"exchange": ex, "n": n, "depth": depth or MAX_DEPTH[ex], "purpose": purpose, "cycles": cycles,
                  "cycle_seconds_max": max((c["seconds"] for c in cycles), default=None),
                  "cycle_seconds_mean": statistics.mean(c["seconds"] for c in cycles) if cycles else None,
                  "first_cycle_seconds": durations.get(1), "broker_outage": outage,
                  "first_snapshot_seconds": first_snapshot, "rss_warm_mb": rss_warm, "rss_end_mb": rss_end,
                  "statuses": statuses, "delays": delays, "rate_limited": limited}
        # A cadence the throttle can keep up: a short run alone would flatter a load above the budget, because
        # the first windows start empty and a sliding window lets a burst through.
        result["budget_share"] = max((budget_load(ex, c) for c in cycles), default=0.0) / sustained_load(ex)
        result["holds"] = (bool(cycles) and result["cycle_seconds_max"] <= INTERVAL
                           and all(c["books"] == n for c in cycles) and result["budget_share"] <= 1.0)
        c = cycles[-1] if cycles else {}
        log(f"  {ex} N={n} depth={result['depth']} ({purpose}): cycle {result['cycle_seconds_max'] or float('nan'):.2f} s"
            f" max over {len(cycles)}, {c.get('requests')} req ({c.get('bulk')} bulk + {c.get('books')} books),"
            f" weight {c.get('weight')}, first snapshot {first_snapshot or float('nan'):.2f} s,"
            f" rss {rss_warm or float('nan'):.0f}->{rss_end or float('nan'):.0f} MB, statuses {statuses}"
            f"{', BROKER OUTAGE' if outage else ''}")
        if (outage or not cycles) and retry:
            log("  the broker was lost during this run (someone restarted it?): waiting for it, then once more")
            wait_for_broker(self.vhost.port)
            return self.trial(ex, n, purpose, depth, measured, retry=False)
        self.results["trials"][ex].append(result)
        return result

    def _delays(self, ex: str, entries: list[dict], since: float, until: float) -> list[float]:
        """For each snapshot received: receipt time minus the time the simulator answered its book request
        (log time, taken on arrival, + the added latency; the answer's own build time is not subtracted)."""
        param = BOOK_SYMBOL_PARAM[ex]
        books: dict[str, list[float]] = {}
        for e in entries:
            if e["path"] == BOOK_PATH[ex] and e["status"] == 200:
                sym = dict(parse_qsl(e["query"])).get(param, "").replace("-", "").replace("_", "").upper()
                books.setdefault(sym, []).append(e["time"] + LATENCY)
        out = []
        for sym, received in self.listener.snapshots_of(ex, since, until):
            answered = [t for t in books.get(sym, ()) if t <= received]
            if answered:
                out.append(received - answered[-1])
        return out

    # -- the largest N that holds the 5 s cadence ----------------------------------------------------------
    def search_max_n(self, ex: str, known: dict[int, dict], budget: int, depth: int | None = None) -> dict:
        cap = len(SYMBOLS)
        holding = sorted(n for n, r in known.items() if r["holds"])
        failing = sorted(n for n, r in known.items() if not r["holds"])
        lo = holding[-1] if holding else 0
        hi = failing[0] if failing else None
        if hi is None and lo < cap and budget > 0:
            r = self.trial(ex, cap, "search", depth, measured=1)
            known[cap] = r
            budget -= 1
            if r["holds"]:
                lo = cap
            else:
                hi = cap
        while hi is not None and hi - lo > 1 and budget > 0:
            t_lo = known[lo]["cycle_seconds_max"] if lo in known else 0.0
            t_hi = known[hi]["cycle_seconds_max"]
            guess = lo + (INTERVAL - t_lo) * (hi - lo) / max(t_hi - t_lo, 1e-6)
            # Cycle time is not linear in N once the throttle binds: keep every guess inside the middle half.
            quarter = (hi - lo) / 4
            n = min(max(int(guess), int(lo + quarter), lo + 1), int(hi - quarter), hi - 1)
            r = self.trial(ex, n, "search", depth, measured=1)
            known[n] = r
            budget -= 1
            if r["holds"]:
                lo = n
            else:
                hi = n
        return {"largest": lo, "smallest_failing": hi, "capped": hi is None and lo == cap,
                "exact": hi is None or hi - lo == 1}

    def around_sustained(self, ex: str, depth: int | None = None) -> dict[int, dict]:
        """Runs at the largest N the throttle's sustained rate allows on paper, and one more: they settle the
        search at once when the budget is the limit (bybit and htx never reach it with the simulator's list)."""
        known = {}
        n = sustained_n(ex, depth)
        for m in (n, n + 1):
            if 0 < m <= len(SYMBOLS):
                known[m] = self.trial(ex, m, "search", depth, measured=1)
        return known

    # -- the naive loop ----------------------------------------------------------------------------------
    def naive(self, ex: str, n: int, cycles: int) -> dict:
        self.sim.fresh()
        venue = VENUES[ex]
        client = getattr(ccxt, venue.ccxt_id)()          # ccxt's defaults: enableRateLimit, default rateLimit
        client.urls["api"] = redirect_urls(client.urls["api"], self.sim.api_url(ex))
        # The simulator serves no currency endpoints (htx asks for them by default); load_markets only, not timed.
        client.has["fetchCurrencies"] = False
        t0 = time.time()
        client.load_markets()
        t_cycles = time.time()
        times, errors = [], []
        for i in range(cycles):
            if i and times[0] > 10:
                break  # one long cycle is enough (binance: ccxt's default throttle, ~1 s a book)
            t = time.perf_counter()
            for symbol in SYMBOLS[:n]:
                try:
                    client.fetch_ticker(symbol)
                    client.fetch_order_book(symbol, venue.book_limit, venue.book_params)
                    client.fetch_funding_rate(symbol)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    errors.append(f"{symbol}: {type(e).__name__}: {str(e)[:120]}")
            times.append(time.perf_counter() - t)
        entries = self.sim.entries(ex, t_cycles)
        statuses = {}
        for e in self.sim.entries(ex, t0):
            statuses[str(e["status"])] = statuses.get(str(e["status"]), 0) + 1
        result = {"exchange": ex, "n": n, "cycle_seconds": times, "cycle_seconds_mean": statistics.mean(times),
                  "requests_per_cycle": len(entries) / len(times),
                  "weight_per_cycle": sum(weight_of(ex, e) for e in entries) / len(times),
                  "rate_limit_ms": client.rateLimit, "errors": errors[:5], "error_count": len(errors),
                  "statuses": statuses}
        self.results["naive"][ex] = result
        log(f"  naive {ex} N={n}: cycle {result['cycle_seconds_mean']:.2f} s, {result['requests_per_cycle']:.0f} req,"
            f" rateLimit {client.rateLimit} ms, errors {len(errors)}, statuses {statuses}")
        return result

    # -- in-process measurements in subprocesses --------------------------------------------------------
    def inproc(self, mode: str, ex: str, *extra: str) -> dict:
        config = self.write_config(f"{mode}-{ex}", ex, SYMBOLS[:5], data_exchange=f"bench_{mode}")
        out = subprocess.run([PY, "-m", "bench.inproc", mode, ex, str(config), *extra], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
        (self.work / f"{mode}-{ex}.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"bench.inproc {mode} {ex} failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    # -- the whole run -----------------------------------------------------------------------------------
    def run(self) -> dict:
        started = time.time()
        self.results["import_seconds"] = min(import_seconds() for _ in range(3))
        quick = self.quick
        sizes = (3,) if quick else (3, 20, 100)
        measured = 1 if quick else 2
        for ex in self.exchanges:
            log(f"{ex}: worker runs")
            known = {n: self.trial(ex, n, "cost", measured=measured) for n in sizes}
            if not quick:
                seeds = {**known, **self.around_sustained(ex)}
                search = self.search_max_n(ex, seeds, budget=4)
                self.results.setdefault("max_n", {})[ex] = {"1000" if ex == "binance" else "max": search}
                log(f"  {ex}: largest N at 5 s = {search['largest']} (smallest failing {search['smallest_failing']})")
                if ex == "binance" and self.depth_field:
                    for depth in (500, 100):
                        self.results["max_n"][ex][str(depth)] = self.search_max_n(ex, self.around_sustained(ex, depth),
                                                                                 2, depth)
        naive_n = 3 if quick else 20
        log(f"naive loop at N={naive_n}")
        for ex in self.exchanges:
            self.naive(ex, naive_n, cycles=1 if quick else 2)
        log("CPU per snapshot (in-process)")
        self.sim.fresh()
        for ex in self.exchanges:
            r = self.results["cpu"][ex] = self.inproc("cpu", ex, "--repeats", "30" if quick else "200")
            log(f"  {ex}: ccxt {r['ccxt_total_ms']:.2f} ms (decode {r['ccxt_decode_ms']:.2f}), product "
                f"{r['product_ms']:.2f} ms (build {r['build_ms']:.2f}, json {r['serialize_ms']:.2f}, "
                f"publish {r['publish_ms']:.2f}) = {100 * r['product_share']:.0f}%")
        cycles = self.args.soak_cycles or (50 if quick else 1000)
        log(f"soak: {cycles} cycles back to back per exchange (latency and rate limits off)")
        self.sim.fresh(latency=0.0, rate_limits=False)
        for ex in self.exchanges:
            r = self.results["soak"][ex] = self.inproc("soak", ex, "--cycles", str(cycles),
                                                       "--warmup", "10" if quick else "20")
            log(f"  {ex}: RSS {r['rss_warm_mb']:.1f} -> {r['rss_end_mb']:.1f} MB ({r['growth_pct']:+.1f}%) over "
                f"{r['cycles']} cycles in {r['cycles_seconds']:.0f} s, errors {r['errors']}")
        self.sim.fresh()
        self.results["meta"] = meta(started, quick)
        return self.results


def import_seconds() -> float:
    t = time.perf_counter()
    subprocess.run([PY, "-c", "import worker"], cwd=ROOT, check=True)
    return time.perf_counter() - t


def meta(started: float, quick: bool) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "seconds": time.time() - started,
            "commit": git("rev-parse", "--short", "HEAD"), "worker_modified": bool(git("status", "--porcelain", "worker.py",
                                                                                      "common")),
            "cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "ccxt": ccxt.__version__,
            "quick": quick, "load_start": LOAD_START, "load_end": os.getloadavg()[0]}


# -- the page ------------------------------------------------------------------------------------------------
def _f(v, fmt="{:.2f}", none="–"):
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _ok(flag) -> str:
    return "–" if flag is None else ("yes" if flag else "**no**")


def _trial(results: dict, ex: str, n: int, purpose: str = "cost", depth: int | None = None) -> dict | None:
    for t in results["trials"].get(ex, []):
        if t["n"] == n and t["purpose"] == purpose and (depth is None or t["depth"] == depth):
            return t
    return None


def floor_of(ex: str, n: int, depth: int | None = None) -> tuple[int, int]:
    """(requests, weight) per cycle at the floor of SPEC section 8: the bulk calls + one book per symbol."""
    bulk = FLOOR_BULK[ex]
    book_weight = BINANCE_BOOK_WEIGHT.get(depth or 1000, 20) if ex == "binance" else 1
    return len(bulk) + n, sum(w for _, w in bulk) + n * book_weight


def sustained_load(ex: str) -> float:
    """The most weight per 5 s cycle the worker's throttle lets through for good: its budget's limit per
    window, each request held in the window `guard` seconds longer than the exchange holds it."""
    budget = VENUES[ex].budget
    return budget.limit * INTERVAL / (budget.window + budget.guard)


def sustained_n(ex: str, depth: int | None = None) -> int:
    """The most symbols whose cycle fits sustained_load: the bulk calls drawing on the same budget, then books."""
    budget = VENUES[ex].budget
    bulk = 0 if budget.per_endpoint else sum(w for _, w in FLOOR_BULK[ex])
    book = BINANCE_BOOK_WEIGHT[depth or 1000] if ex == "binance" else 1
    return int((sustained_load(ex) - bulk) // book)


def budget_load(ex: str, cycle: dict) -> float:
    """A measured cycle's weight on the budget its books draw from: the whole cycle where the budget is per
    IP (binance in weight), the book endpoint alone where it is per endpoint."""
    if VENUES[ex].budget.per_endpoint:
        return cycle["books"]
    return cycle["weight"] if ex == "binance" else cycle["requests"]


def cadence_miss(ex: str, depth: int, largest: int, target: int, failing: dict) -> str:
    """Why the first failing N of the search missed the 5 s cadence, from its measurements and the budget."""
    budget, c = VENUES[ex].budget, failing["cycles"][-1]
    load = budget_load(ex, c)
    unit = "weight" if ex == "binance" else "book requests" if budget.per_endpoint else "requests"
    text = (f"**{ex} holds 5 s up to N={largest} at depth {depth}, target {target}.** At N={failing['n']} a cycle "
            f"carries {load:.0f} {unit} on the budget its books draw from ({BUDGET_NOTE[ex]}); the throttle admits "
            f"{budget.limit:g} per {budget.window:g} s window, holding each request {1000 * budget.guard:.0f} ms "
            f"longer than the exchange does, which sustains {sustained_load(ex):.1f} per 5 s. ")
    text += (f"Its measured cycles took at most {_f(failing['cycle_seconds_max'])} s" +
             (": the first windows start empty, so a short run keeps up for a while; each cycle after that waits a "
              "little longer for the window, and the cadence is lost." if failing["cycle_seconds_max"] <= INTERVAL
              else "."))
    requests, weight = floor_of(ex, target, depth)
    target_load = target if budget.per_endpoint else weight
    need = target_load / (budget.limit * INTERVAL / budget.window)
    text += (f" N={target} needs {100 * need:.0f}% of the published budget"
             + (", leaving no time at all for requests that reach the exchange in a different order than they "
                "left (the guard)." if need >= 0.995 else "."))
    return text


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -r bench/requirements.txt): no plot")
        return False
    exchanges = [ex for ex in EXCHANGES if results["trials"].get(ex)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for ex in exchanges:
        for depth in sorted({t["depth"] for t in results["trials"][ex]}, reverse=True):
            pts = sorted((t["n"], t["cycle_seconds_max"]) for t in results["trials"][ex]
                         if t["depth"] == depth and t["cycle_seconds_max"] is not None)
            if not pts:
                continue
            label = f"{ex} (depth {depth})"
            style = "-o" if depth == MAX_DEPTH[ex] else "--s"
            left.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, markersize=4)
    left.axhline(INTERVAL, color="black", linewidth=1, linestyle=":")
    left.text(2.5, INTERVAL * 1.05, "5 s cadence", fontsize=8)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("symbols per worker (N)")
    left.set_ylabel("cycle time, s (slowest measured cycle)")
    left.set_title("Product: cycle time vs symbols, 50 ms per request")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    naive = [(ex, results["naive"][ex]["cycle_seconds_mean"], (_trial(results, ex, results["naive"][ex]["n"]) or {})
              .get("cycle_seconds_mean")) for ex in exchanges if ex in results["naive"]]
    if naive:
        xs = range(len(naive))
        right.bar([x - 0.2 for x in xs], [n[1] for n in naive], 0.4, label="naive ccxt loop")
        right.bar([x + 0.2 for x in xs], [n[2] or 0 for n in naive], 0.4, label="futures_scan worker")
        right.set_xticks(list(xs), [n[0] for n in naive])
        right.set_ylabel("cycle time, s")
        right.set_title(f"N = {results['naive'][naive[0][0]]['n']}: naive loop vs product")
        right.legend(fontsize=8)
        right.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(results: dict, out: Path) -> Path:
    m = results["meta"]
    exchanges = [ex for ex in EXCHANGES if results["trials"].get(ex)]
    has_plot = plot(results, out / "benchmarks.png")
    L: list[str] = []
    add = L.append
    misses: list[str] = []
    add("# futures_scan benchmarks")
    add("")
    add(f"Generated by `scripts/bench.sh` (`python -m bench.run{' --quick' if m['quick'] else ''}`) on {m['date']}, "
        f"commit `{m['commit']}`{' with local changes to worker.py/common/' if m['worker_modified'] else ''}; "
        f"{m['cores']} cores ({m['cpu']}), Python {m['python']}, ccxt {m['ccxt']}; the run took "
        f"{m['seconds'] / 60:.1f} min, load average {m['load_start']:.2f} at its start and {m['load_end']:.2f} at its end"
        f"{' (**other processes were busy: figures may be pessimistic**)' if max(m['load_start'], m['load_end']) > 1.5 else ''}.")
    add("")
    add(f"Set-up: the exchange simulator (`tests/simulator`, {EXTRA_MARKETS} extra markets) with every exchange's "
        f"published rate budget and **{LATENCY * 1000:.0f} ms added to every answer**, a private vhost on the local "
        f"RabbitMQ server, real `worker.py` processes (interval {INTERVAL:.0f} s, log level INFO), symbols BTC, ETH, SOL, "
        f"DOGE, XRP, then SIM001…; books at each exchange's maximum depth unless a depth is named. Between runs the "
        f"simulator's log and rate windows are reset, as if each run had its own IP. How each figure is taken: "
        f"the last section, and `bench/run.py`.")
    add("")
    if has_plot:
        add("![cycle time per symbol count, and the naive loop](benchmarks.png)")
        add("")

    # -- targets summary (filled below) --
    summary_at = len(L)

    # -- 1. requests and weight --
    add("## 1. Requests and weight per cycle")
    add("")
    add("Requests the simulator logged inside each measured cycle (from the cycle's first bulk call, the tickers, to "
        "the next cycle's), beside the floor of SPEC section 8: the bulk calls + one book per symbol. "
        "Weight is Binance's documented request weight (the simulator's `binance.weight()`); the other four count "
        "requests. Cycle time: the worker's `last_cycle_seconds`, slowest measured cycle (cycle 1 is left out when "
        "a later one was measured).")
    add("")
    add("| exchange | N | requests / cycle (bulk + books) | floor | weight / cycle | floor | cycle, s | 429 / 418 |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    req_ok = True
    for ex in exchanges:
        for t in results["trials"][ex]:
            if t["purpose"] != "cost" or not t["cycles"]:
                continue
            c = max(t["cycles"], key=lambda c: c["requests"])
            fr, fw = floor_of(ex, t["n"], t["depth"])
            bad = t["statuses"].get("429", 0) + t["statuses"].get("418", 0)
            if c["requests"] > fr:
                req_ok = False
                extra = sorted(set(c["paths"]) - {p for p, _ in FLOOR_BULK[ex]})
                misses.append(f"**{ex}, N={t['n']}: {c['requests']} requests per cycle against a floor of {fr}** "
                              f"(bulk paths seen: {', '.join(c['paths'])}{'; beyond the floor: ' + ', '.join(extra) if extra else ''}).")
            add(f"| {ex} | {t['n']} | {c['requests']} ({c['bulk']} + {c['books']}) | {fr} | {c['weight']} | {fw} | "
                f"{_f(t['cycle_seconds_max'])} | {t['statuses'].get('429', 0)} / {t['statuses'].get('418', 0)} |")
    add("")
    add("Floors: " + "; ".join(f"{ex}: {', '.join(p.rsplit('/', 1)[-1] for p, _ in FLOOR_BULK[ex])}" for ex in exchanges)
        + ". HTX's third bulk call (`swap_index`) carries the index price that SPEC section 3 asks for in `extra`.")
    add("")

    # -- 2. cadence --
    add("## 2. Most symbols at the 5 s cadence")
    add("")
    add("The largest N whose measured cycles all took at most 5 s with every book fetched, and whose requests fit "
        "what the worker's throttle sustains per 5 s (so that the cadence lasts beyond the run: a sliding window "
        "starts empty and lets the first cycles burst), found by a search between the runs of section 1 (each "
        "point a fresh worker process), beside the most the published budget allows (SPEC section 8).")
    add("")
    add("| exchange | depth | largest N at 5 s | first failing N: cycle, s | rate-limit floor | budget | target | met |")
    add("|---|---:|---:|---|---:|---|---:|---|")
    cadence_rows = []
    for ex in exchanges:
        for depth_key, search in (results.get("max_n", {}).get(ex) or {}).items():
            depth = MAX_DEPTH[ex] if depth_key in ("max", "1000") else int(depth_key)
            floor = rate_floor(ex, depth if ex == "binance" else None)
            hi = search["smallest_failing"]
            hi_t = next((t for t in results["trials"][ex] if t["n"] == hi and t["depth"] == depth), None) if hi else None
            largest = search["largest"]
            shown = f"{largest}" + ("" if search["exact"] else f" (≥{largest}, <{hi})")
            if search["capped"]:
                shown = f"≥ {largest} (all the simulator lists)"
            target = floor if ex == "binance" else 100
            met = largest >= min(target, len(SYMBOLS))
            cadence_rows.append((ex, depth, largest, target, met, hi, hi_t))
            add(f"| {ex} | {depth} | {shown} | {f'{hi}: ' + _f(hi_t['cycle_seconds_max']) if hi_t else '–'} | "
                f"{floor}{' (simulator lists ' + str(len(SYMBOLS)) + ')' if floor > len(SYMBOLS) else ''} | "
                f"{BUDGET_NOTE[ex]} | {target} | {_ok(met)} |")
            if not met and hi_t and hi_t["cycles"]:
                misses.append(cadence_miss(ex, depth, largest, target, hi_t))
    if "binance" in (results.get("max_n") or {}) and not any(r[0] == "binance" and r[1] != 1000 for r in cadence_rows):
        add("| binance | 500 / 100 | not measured: this worker has no depth setting | | 14 / 29 | | | |")
    add("")

    # -- 3. naive --
    naive_rows = []
    if results["naive"]:
        n_naive = next(iter(results["naive"].values()))["n"]
        add(f"## 3. The naive loop, N = {n_naive}")
        add("")
        add("What a user writes first: a ccxt client with default settings (ccxt's own rateLimit, enableRateLimit on), "
            "then per symbol `fetch_ticker`, `fetch_order_book` (same depth as the product) and `fetch_funding_rate`, "
            "one after another; same simulator, same 50 ms. Cycle: wall time of the loop (mean of the cycles run); "
            "product: the worker's `last_cycle_seconds` at the same N (section 1).")
        add("")
        add("| exchange | naive cycle, s | naive requests | ccxt default rateLimit, ms | product cycle, s | product / naive | target <= 0.4 |")
        add("|---|---:|---:|---:|---:|---:|---|")
        for ex in exchanges:
            nv = results["naive"].get(ex)
            if not nv:
                continue
            pt = _trial(results, ex, nv["n"])
            ratio = pt["cycle_seconds_mean"] / nv["cycle_seconds_mean"] if pt and pt["cycle_seconds_mean"] else None
            naive_rows.append((ex, ratio))
            add(f"| {ex} | {_f(nv['cycle_seconds_mean'])} | {nv['requests_per_cycle']:.0f}"
                f"{' (' + str(nv['error_count']) + ' errors)' if nv['error_count'] else ''} | {_f(nv['rate_limit_ms'], '{:g}')} | "
                f"{_f(pt and pt['cycle_seconds_mean'])} | {_f(ratio)} | {_ok(ratio is not None and ratio <= 0.4)} |")
            if ratio is not None and ratio > 0.4:
                why = ""
                if ex == "binance":
                    fr, fw = floor_of(ex, nv["n"])
                    best = fw / (2400 / 60)
                    why = (f" Binance's budget is weight: {fw} weight per cycle at 2400 weight/min takes at least "
                           f"{best:.1f} s however the requests are sent, {best / nv['cycle_seconds_mean']:.2f} of the "
                           f"naive loop; ccxt's default (rateLimit {nv['rate_limit_ms']:g} ms per weight unit = 1200 "
                           f"weight/min) is only 2x slower on the books that dominate, so 0.4 cannot be reached "
                           f"without going over the published budget.")
                misses.append(f"**{ex}: product/naive = {ratio:.2f} at N={nv['n']}** (product "
                              f"{pt['cycle_seconds_mean']:.2f} s, naive {nv['cycle_seconds_mean']:.2f} s).{why}")
            if nv["error_count"]:
                add(f"")
                add(f"naive {ex} errors, first: `{nv['errors'][0]}`")
        add("")

    # -- 4. CPU --
    cpu_rows = []
    if results["cpu"]:
        add("## 4. CPU per snapshot at maximum depth")
        add("")
        add("Mean thread CPU time per call, in one worker built as `worker.main()` builds it (`bench/inproc.py cpu`). "
            "ccxt: `fetch_order_book` on a recorded book answer with the network replaced by that body (JSON decode + "
            "ccxt's request building and parsing); decode is `json.loads` of the body alone. Product: `build_snapshot` "
            "(levels to base units, pydantic validation), `model_dump_json`, `broker.publish` (the worker's broker: "
            "no per-message confirms; CPU only).")
        add("")
        add("| exchange | levels | answer, KB | ccxt decode, ms | ccxt parse, ms | ccxt total, ms | build, ms | JSON, ms | publish, ms | product, ms | product / ccxt | target <= 30% |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for ex in exchanges:
            r = results["cpu"].get(ex)
            if not r:
                continue
            cpu_rows.append((ex, r["product_share"]))
            add(f"| {ex} | {r['levels']} | {r['raw_bytes'] / 1024:.0f} | {r['ccxt_decode_ms']:.2f} | {r['ccxt_parse_ms']:.2f} | "
                f"{r['ccxt_total_ms']:.2f} | {r['build_ms']:.2f} | {r['serialize_ms']:.2f} | {r['publish_ms']:.2f} | "
                f"{r['product_ms']:.2f} | {100 * r['product_share']:.0f}% | {_ok(r['product_share'] <= 0.3)} |")
            if r["product_share"] > 0.3:
                big = max((("build_snapshot", r["build_ms"]), ("model_dump_json", r["serialize_ms"]),
                           ("publish", r["publish_ms"])), key=lambda x: x[1])
                text = (f"**{ex}: the product's CPU per snapshot is {100 * r['product_share']:.0f}% of ccxt's** "
                        f"({r['product_ms']:.2f} ms vs {r['ccxt_total_ms']:.2f} ms); the largest part is "
                        f"{big[0]} at {big[1]:.2f} ms for {r['levels']} levels.")
                deep = sorted((x["product_share"], name) for name, x in results["cpu"].items()
                              if x["levels"] >= 4 * r["levels"])
                text += (f" Publishing is a fixed cost per snapshot, whatever the book's size: {r['publish_ms']:.2f} ms "
                         f"(pika's pure-Python AMQP framing, a poll and a socket write per message; no per-message "
                         f"confirms), {100 * r['publish_ms'] / r['ccxt_total_ms']:.0f}% of ccxt's "
                         f"{r['ccxt_total_ms']:.2f} ms for this {r['raw_bytes'] / 1024:.0f} KB answer on its own.")
                if deep:
                    text += (f" On the {results['cpu'][deep[0][1]]['levels']}-level books of "
                             f"{' and '.join(n for _, n in deep)} the same code takes "
                             f"{', '.join(f'{100 * share:.0f}%' for share, _ in deep)} of ccxt's work: per level, the "
                             f"product's validation and serialization cost well under 30% of ccxt's parsing.")
                misses.append(text)
        add("")

    # -- 5. memory and start-up --
    add("## 5. Memory and start-up")
    add("")
    soak_n = next(iter(results["soak"].values()))["cycles"] if results["soak"] else 0
    add(f"RSS of the real worker processes (`/proc/PID/status` VmRSS) after their first cycle and when stopped; the "
        f"soak (`bench/inproc.py soak`): one process building a Worker as `worker.main()` does and calling "
        f"`collect_cycle()` {soak_n} times back to back with 5 symbols at maximum depth (simulator latency and rate "
        f"limits off, ccxt's throttle off: 1,000 cycles at 5 s would take 83 min), RSS after a warm-up and at the end. "
        f"Start: from `Popen` of `worker.py` to the listener's receipt of its first snapshot.")
    add("")
    add(f"| exchange | RSS after cycle 1, N=3 / 20 / 100, MB | soak: RSS warm, MB | after {soak_n} cycles, MB | growth | soak, cycles/s | start to first snapshot, N=3 / 20 / 100, s |")
    add("|---|---|---:|---:|---:|---:|---|")
    rss_all, growth_all, start_all = [], [], []
    for ex in exchanges:
        ts = [t for t in results["trials"][ex] if t["purpose"] == "cost"]
        rss = " / ".join(_f(t["rss_warm_mb"], "{:.0f}") for t in ts)
        rss_all += [(ex, t["n"], t["rss_warm_mb"]) for t in ts if t["rss_warm_mb"]]
        rss_all += [(ex, t["n"], t["rss_end_mb"]) for t in ts if t["rss_end_mb"]]
        starts = " / ".join(_f(t["first_snapshot_seconds"]) for t in ts)
        start_all += [(ex, t["n"], t["first_snapshot_seconds"]) for t in ts if t["first_snapshot_seconds"] is not None]
        sk = results["soak"].get(ex)
        if sk:
            growth_all.append((ex, sk["growth_pct"], sk))
            rss_all.append((ex, "soak", sk["rss_end_mb"]))
        add(f"| {ex} | {rss} | {_f(sk and sk['rss_warm_mb'], '{:.1f}')} | {_f(sk and sk['rss_end_mb'], '{:.1f}')} | "
            f"{_f(sk and sk['growth_pct'], '{:+.1f}%')} | {_f(sk and sk['cycles'] / sk['cycles_seconds'], '{:.1f}')} | {starts} |")
    add("")
    if results.get("import_seconds"):
        add(f"`python -c 'import worker'` alone takes {results['import_seconds']:.2f} s on this machine (best of 3).")
        add("")
    worst_rss = max(rss_all, key=lambda x: x[2]) if rss_all else None
    if worst_rss and worst_rss[2] > 100:
        misses.append(f"**RSS over 100 MB: {worst_rss[0]} ({'N=' + str(worst_rss[1]) if worst_rss[1] != 'soak' else 'soak'}) "
                      f"at {worst_rss[2]:.0f} MB.**")
    for ex, g, sk in growth_all:
        if g >= 5:
            misses.append(f"**{ex}: RSS grew {g:.1f}% over {sk['cycles']} cycles** "
                          f"(samples every 100 cycles, MB: {', '.join(f'{v:.1f}' for _, v in sk['rss_samples'])}).")
    slow_start = [s for s in start_all if s[2] > 3]
    if slow_start:
        misses.append("**First snapshot later than 3 s:** " + ", ".join(f"{e} N={n}: {v:.2f} s" for e, n, v in slow_start)
                      + (f"; importing the worker alone takes {results['import_seconds']:.2f} s" if results.get("import_seconds") else "")
                      + ", then load_markets and the bulk calls of cycle 1 at 50 ms a request, and the first book.")

    # -- 6. delay --
    add("## 6. Freshness: from the exchange's answer to the consumer")
    add("")
    add("For every snapshot the listener received during the worker runs: receipt time minus the time the simulator "
        "answered that symbol's latest book request before it (its log time, taken on arrival, + the 50 ms it waits "
        "before answering; the time to build the answer is not subtracted, so these are slight over-estimates).")
    add("")
    add("| exchange | snapshots | p50, ms | p99, ms | max, ms |")
    add("|---|---:|---:|---:|---:|")
    for ex in exchanges:
        d = [x for t in results["trials"][ex] for x in t["delays"]]
        add(f"| {ex} | {len(d)} | {_f(percentile(d, 50) and percentile(d, 50) * 1000, '{:.1f}')} | "
            f"{_f(percentile(d, 99) and percentile(d, 99) * 1000, '{:.1f}')} | {_f(d and max(d) * 1000, '{:.1f}')} |")
    add("")

    # -- targets summary --
    bad = {ex: sum(t["statuses"].get("429", 0) + t["statuses"].get("418", 0) for t in results["trials"][ex])
           for ex in exchanges}
    for ex, n in bad.items():
        if n:
            seen = [(t["n"], x) for t in results["trials"][ex] for x in t.get("rate_limited", [])]
            where = [f"N={t['n']}: {t['statuses'].get('429', 0)} x 429, {t['statuses'].get('418', 0)} x 418"
                     for t in results["trials"][ex] if t["statuses"].get("429") or t["statuses"].get("418")]
            misses.append(f"**{ex}: {n} answers 429/418 during the worker runs** ({', '.join(where)}"
                          + "".join(f"; {x['status']} on {x['path']} with {x['same_path_1s']} requests to that "
                                    f"path in the second before it" for tn, x in seen[:3])
                          + "). " + ("Likely cause: the worker's throttle spaces request starts; requests in flight "
                                     "on several threads can still reach the exchange closer together than that spacing "
                                     "(thread scheduling, the GIL), so a budget used at 95% can be exceeded within a "
                                     "1 s window. The worker honours the 429's Retry-After." if ex in ("bitget",) else ""))
    summary = ["## Targets", "", "| target | result | met |", "|---|---|---|"]
    summary.append(f"| requests per cycle = bulk calls + one book per symbol | see section 1 | {_ok(req_ok)} |")
    summary.append(f"| no 429 or 418 (worker runs) | " + ", ".join(f"{ex} {n}" for ex, n in bad.items())
                   + f" | {_ok(not any(bad.values()))} |")
    for ex, depth, largest, target, met, *_ in cadence_rows:
        summary.append(f"| {ex}: {target} symbols at 5 s, depth {depth} | {largest} | {_ok(met)} |")
    if naive_rows:
        summary.append("| product cycle <= 0.4 of the naive loop | " + ", ".join(f"{ex} {_f(r)}" for ex, r in naive_rows)
                       + f" | {_ok(all(r is not None and r <= 0.4 for _, r in naive_rows))} |")
    if cpu_rows:
        summary.append("| product CPU <= 30% of ccxt's parsing | " + ", ".join(f"{ex} {100 * r:.0f}%" for ex, r in cpu_rows)
                       + f" | {_ok(all(r <= 0.3 for _, r in cpu_rows))} |")
    if rss_all:
        summary.append(f"| RSS <= 100 MB per worker | max {worst_rss[2]:.0f} MB ({worst_rss[0]}) | {_ok(worst_rss[2] <= 100)} |")
    if growth_all:
        summary.append(f"| RSS growth < 5% over {soak_n} cycles | " + ", ".join(f"{ex} {g:+.1f}%" for ex, g, _ in growth_all)
                       + f" | {_ok(all(g < 5 for _, g, _ in growth_all))} |")
    if start_all:
        summary.append(f"| first snapshot within 3 s of start | max {max(s[2] for s in start_all):.2f} s | {_ok(not slow_start)} |")
    summary += ["", "### Where a target is missed, and why", ""]
    summary += [f"- {m_}" for m_ in misses] or ["- None: every target above is met."]
    summary.append("")
    L[summary_at:summary_at] = summary

    # -- method --
    add("## How the figures are taken")
    add("")
    add("- Every worker run is a fresh `worker.py <exchange> --config <generated>` process; it is stopped with SIGTERM "
        "after its measured cycles. Its statistics messages (`futures_collector_stats`, one per cycle: `cycles`, "
        "`last_cycle_seconds`) give the cycle times; the simulator's request log (`/__sim/requests`) gives requests, "
        "paths, query strings (for Binance's weight) and statuses, cycle by cycle between two tickers requests. A run "
        "during which the shared broker went away is run once more.")
    add("- The largest N: a search (at most 4 more runs per exchange) between the largest N that held and the "
        "smallest that did not, guided by a straight line through their cycle times.")
    add("- 429/418: every answer the simulator gave the workers (`statuses` of its log), all runs.")
    add("- Reproduce: `scripts/bench.sh` (or `.venv/bin/python -m bench.run`); raw figures in `results.json` "
        "of the run's work folder (printed at the start); `--from-json FILE` renders this page again.")
    add("")
    page = out / "benchmarks.md"
    page.write_text("\n".join(L))
    return page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="futures_scan benchmark (see the module docstring)")
    p.add_argument("--quick", action="store_true", help="smoke run, < 2 minutes; output to a temp dir")
    p.add_argument("--exchanges", default=",".join(EXCHANGES), type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--out", help="folder for benchmarks.md/.png/results.json (default docs/, --quick: temp)")
    p.add_argument("--soak-cycles", type=int, help="cycles of the soak (default 1000, --quick 50)")
    p.add_argument("--from-json", help="only render the page from an earlier results.json")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        out = Path(args.out or ROOT / "docs")
    else:
        if not shutil.which("rabbitmqctl"):
            print("rabbitmqctl not found: run scripts/setup.sh (or scripts/bench.sh) first", file=sys.stderr)
            return 2
        with Bench(args) as bench:
            results = bench.run()
            out = bench.out
            (bench.work / "results.json").write_text(json.dumps(results, indent=1))
            log(f"raw figures: {bench.work / 'results.json'}")
    out.mkdir(parents=True, exist_ok=True)
    page = write_report(results, out)
    log(f"wrote {page} ({results['meta']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
