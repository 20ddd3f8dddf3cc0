"""What the benchmark runs its measurements on: the exchange simulator (a subprocess), a private RabbitMQ
vhost, a listener that receives everything the workers publish, and runs of real `worker.py` processes.
Everything started here is stopped again by its PID; everything listens on 127.0.0.1.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pika
import pika.exceptions

from common.board import board_routing_key
from common.broker import STATS_EXCHANGE

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
EXCHANGES = ("binance", "bybit", "bitget", "htx", "gateio", "okx", "hyperliquid")
DATA_EXCHANGE = "futures_data"
LATENCY = 0.05          # seconds added to every answer: a nearby exchange's round trip
# Perpetuals each exchange lists (late 2025; Hyperliquid's settle in USDC): the market sizes the board is
# measured at. Used only when the simulator cannot list them itself (no --real-sizes): then one simulator per
# exchange with this many markets in all, SIM001.. added to the coins it always lists.
REAL_SIZES = {"binance": 550, "bybit": 500, "bitget": 450, "htx": 300, "gateio": 500, "okx": 250, "hyperliquid": 200}
FIRST_SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "XRP")   # watched first, in this order


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float | None:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulator_lists_real_sizes() -> bool:
    out = subprocess.run([PY, "-m", "tests.simulator", "--help"], cwd=ROOT, capture_output=True, text=True)
    return "--real-sizes" in out.stdout


# -- the simulator, as a subprocess ------------------------------------------------------------------------
class Sim:
    def __init__(self, logdir: Path, size_args: list[str], tag: str = "all"):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(logdir / f"simulator-{tag}.log", "wb")
        self.proc = subprocess.Popen([PY, "-m", "tests.simulator", "--port", str(self.port), *size_args],
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60   # real sizes: ~2,300 generated markets to build first
        while True:
            try:
                self.get("requests")
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"simulator did not start; see {self._log.name}") from None
                time.sleep(0.2)

    def api_url(self, ex: str) -> str:
        return f"{self.url}/{ex}"

    def proxies(self, count: int) -> list[str]:
        """`count` more addresses for a worker: the simulator is also an HTTP proxy to itself and counts a
        request sent through it for the proxy's user name, so each has an exchange's whole budget."""
        return [f"http://ip{i}:bench@127.0.0.1:{self.port}" for i in range(2, count + 2)]

    def get(self, name: str, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        with urllib.request.urlopen(f"{self.url}/__sim/{name}?{q}", timeout=60) as r:
            return json.loads(r.read())

    def post(self, name: str, body: dict | None = None):
        req = urllib.request.Request(f"{self.url}/__sim/{name}", data=json.dumps(body or {}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def fresh(self, latency: float = LATENCY, rate_limits: bool = True) -> None:
        """Forget the log and the rate windows (as if each run had its own IP); the same latency everywhere."""
        self.post("reset")
        self.post("rate_limits", {"enabled": rate_limits})
        for ex in EXCHANGES:
            self.post("latency", {"exchange": ex, "seconds": latency})

    def symbols(self, ex: str) -> list[str]:
        """Every perpetual it lists on `ex`, the well-known coins first: the order symbols are watched in. In
        the exchange's own quote (Hyperliquid's BTC/USDC:USDC), whatever quote the simulator's list writes."""
        from tests.simulator.market import symbol_of
        listed = [symbol_of(ex, s.split("/")[0]) for s in self.get("markets")[ex]]
        first = [symbol_of(ex, base) for base in FIRST_SYMBOLS if symbol_of(ex, base) in listed]
        return first + [s for s in listed if s not in first]

    def entries(self, ex: str, since: float) -> list[dict]:
        return self.get("requests", exchange=ex, since=since, entries=1)["entries"]

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self._log.close()


class Simulators:
    """The simulator each exchange is measured on, listing that exchange's real market size: one process
    with --real-sizes, or one per exchange with as many synthetic markets where that option is missing."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.real_sizes = simulator_lists_real_sizes()
        self._sims: dict[str, Sim] = {}

    def __getitem__(self, ex: str) -> Sim:
        key = "all" if self.real_sizes else ex
        if key not in self._sims:
            args = ["--real-sizes"] if self.real_sizes else ["--extra-markets", str(REAL_SIZES[ex] - 5)]
            self._sims[key] = Sim(self.logdir, args, key)
            if not self.real_sizes:   # SIM001.. beside the coins it always lists: within two of the real size
                log(f"  simulator for {ex}: no --real-sizes, {len(self._sims[key].symbols(ex))} markets")
        return self._sims[key]

    def stop(self) -> None:
        for sim in self._sims.values():
            sim.stop()


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
    """A consumer in its own process's thread: every snapshot and board (routing key, size, arrival time) and
    every statistics message the workers publish."""

    def __init__(self, vhost: Vhost):
        super().__init__(daemon=True, name="listener")
        self.vhost = vhost
        self.lock = threading.Lock()
        self.snapshots: list[tuple[str, str, float]] = []          # (exchange, BASEQUOTE, time received)
        self.boards: list[tuple[str, float, int, int]] = []        # (exchange, time received, bytes, markets)
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
                self._consume(conn.channel())
                self._ready.set()
                while not self._closing:
                    conn.process_data_events(time_limit=0.2)
                conn.close()
            except (pika.exceptions.AMQPError, OSError) as e:
                self.outages.append((time.time(), type(e).__name__))
                time.sleep(0.5)

    def _consume(self, ch) -> None:
        for exchange in (DATA_EXCHANGE, STATS_EXCHANGE):
            ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        data = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(data, DATA_EXCHANGE, "futures.#")
        ch.queue_bind(data, DATA_EXCHANGE, board_routing_key("*"))
        stats = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(stats, STATS_EXCHANGE, "stats.#")
        ch.basic_consume(data, self._on_data, auto_ack=True)
        ch.basic_consume(stats, self._on_stats, auto_ack=True)

    def _on_data(self, _ch, method, _props, body):
        now = time.time()
        kind, rest = method.routing_key.split(".", 1)
        with self.lock:
            if kind == "board":
                self.boards.append((rest, now, len(body), len(json.loads(body)["markets"])))
            else:
                ex, sym = rest.split(".", 1)
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

    def boards_of(self, ex: str, since: float, until: float = math.inf) -> list[tuple[float, int, int]]:
        with self.lock:
            return [(t, size, n) for e, t, size, n in self.boards if e == ex and since <= t <= until]

    def close(self):
        self._closing = True
        self.join(5)


class Lab:
    """Everything one benchmark run measures on, set up once and torn down by PID whatever happens: the
    simulators, the private vhost, the listener, the work folder with generated configs and logs."""

    def __init__(self, work: Path):
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.sims = self.vhost = self.listener = None

    def __enter__(self) -> Lab:
        log(f"work dir {self.work}")
        try:
            self.sims = Simulators(self.work)
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
                     lambda: self.sims and self.sims.stop()]:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every later step must still run
                log(f"clean-up: {type(e).__name__}: {e}")

    def write_config(self, name: str, ex: str, symbols: list[str], data_exchange: str = DATA_EXCHANGE,
                     depth=None, board: bool = True, interval: float = 5.0, proxies: list[str] = ()) -> Path:
        entry = {"name": ex, "api_url": self.sims[ex].api_url(ex)}
        if depth:
            entry["depth"] = depth
        if proxies:
            entry["proxies"] = list(proxies)
        config = {"rabbitmq": self.vhost.config(data_exchange), "exchanges": [entry], "symbols": symbols,
                  "collection": {"interval_seconds": interval, "retry_attempts": 3, "retry_delays": [1, 2, 4],
                                 "request_timeout_seconds": 10, "statistics_interval_seconds": 60,
                                 "board": board},
                  "api_keys_file": None, "state_file": str(self.work / "symbols.json"),
                  "logging": {"level": "INFO"}}
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def start_worker(self, config: Path, ex: str, logname: str) -> tuple[subprocess.Popen, object]:
        logf = open(self.work / f"{logname}.log", "wb")
        proc = subprocess.Popen([PY, "worker.py", ex, "--config", str(config)], cwd=ROOT, stdout=logf,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, logf

    def inproc(self, mode: str, ex: str, symbols: list[str], *extra: str, data_exchange: str | None = None) -> dict:
        """`python -m bench.inproc MODE` in a fresh process (its own RSS, no state from an earlier mode)."""
        config = self.write_config(f"{mode}-{ex}", ex, symbols, data_exchange=data_exchange or f"bench_{mode}")
        out = subprocess.run([PY, "-m", "bench.inproc", mode, ex, str(config), *extra], cwd=ROOT,
                             capture_output=True, text=True, timeout=1800)
        (self.work / f"{mode}-{ex}.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"bench.inproc {mode} {ex} failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
