"""Shared fixtures: the exchange simulator, a real RabbitMQ server (one private vhost per test session),
consumers that await snapshots, and worker processes started as an operator would start them."""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from common.broker import symbols_queue
from common.exchanges import VENUES, SharedThrottle, create_exchange
from common.settled import SettledPaging, fetch_settled
from tests.simulator import Simulator
from tests.simulator.market import symbol_of

ROOT = Path(__file__).resolve().parent.parent
# The checkout's own .env (written by scripts/run.sh or demo.sh: role passwords) must not change what the
# processes a test starts connect as: each test says that itself.
os.environ["FUTURES_SCAN_DOTENV"] = os.devnull
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", int(os.environ.get("RABBITMQ_PORT", 5672))
EXCHANGES = ("binance", "bybit", "bitget", "htx", "gateio", "okx", "hyperliquid")


def symbol_on(exchange: str, base: str) -> str:
    """`base`'s perpetual on `exchange` as ccxt names it: BTC/USDT:USDT, BTC/USDC:USDC on Hyperliquid."""
    return symbol_of(exchange, base)


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: no broker, no network, no processes: `scripts/test.sh -m unit`")


# The files whose tests wait longest (a promise about 60 s takes a minute to see kept) are collected first:
# the parallel run (scripts/test.sh: -n 5 --dist loadfile) hands out whole files in collection order, so a
# long file collected last would run on alone while the other workers idle.
LONGEST_FIRST = ("test_worker_faults.py", "test_worker_cycle.py", "test_broker_outage.py", "test_supervision.py",
                 "test_worker_truth.py", "test_controller.py", "test_system.py", "test_worker.py", "test_proxies.py",
                 "test_worker_lifecycle.py", "test_trust.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


# -- exchange simulator ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def simulator():
    sim = Simulator(extra_markets=5).start()
    yield sim
    sim.stop()


@pytest.fixture
def own_sim():
    """A simulator of this test's own: its faults, clock and rate-limit windows touch no other test."""
    sim = Simulator(extra_markets=5).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator):
    """The shared simulator, reset to a clean state (no faults, no log, fresh rate-limit windows)."""
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def make_client(sim):
    """Build a real ccxt client for a config name, pointed at the simulator."""
    def make(name, **kwargs):
        kwargs.setdefault("timeout_ms", 3000)
        return create_exchange(name, api_url=sim.api_url(name), **kwargs)
    return make


# -- settled funding -------------------------------------------------------------------------------
# The simulator serves each exchange's settled funding history (Simulator.settlements is its truth) and
# common/settled.py's fetch_settled pages through it. What every exchange does alike is tested in
# tests/test_simulator_settled.py; what one does alone (page size, order, time bounds, limits) in its own
# tests/test_simulator_<exchange>.py. Both build on these.
DAY_MS = 86_400_000
# The throttle holds each request's weight this much longer: a loaded machine sends late.
LOADED_MACHINE_GUARD = 0.3


def history_client(sim: Simulator, exchange: str, throttled: bool = True):
    """A worker's client of `sim`'s `exchange`, markets loaded: behind the venue's throttle or, where not
    `throttled`, with none at all (not even ccxt's), so that the simulator's budget is what it meets. Then
    the request log emptied and the clock frozen: the test sees its own requests, and no settlement falls
    due while it runs."""
    throttle = SharedThrottle(dataclasses.replace(VENUES[exchange].budget, guard=LOADED_MACHINE_GUARD))
    client = create_exchange(exchange, api_url=sim.api_url(exchange), timeout_ms=3000, throttle=throttle)
    client.load_markets()
    client.enableRateLimit = throttled
    sim.reset()
    sim.market.freeze()
    return client


def settled_pairs(entries: list[dict]) -> list[tuple]:
    """(timestamp, fundingRate) of ccxt's funding rate history entries."""
    return [(e["timestamp"], e["fundingRate"]) for e in entries]


def truth_pairs(truth: list[dict]) -> list[tuple]:
    """(funding_time, rate) of Simulator.settlements."""
    return [(s["funding_time"], s["rate"]) for s in truth]


def backfill(sim: Simulator, exchange: str, client, symbol: str, days: int = 30) -> tuple[list, list]:
    """(what fetch_settled got with the venue's paging, the truth) over the last `days`, as (time, rate)."""
    now = sim.market.now_ms()
    got = fetch_settled(client, VENUES[exchange].settled, symbol, now - days * DAY_MS, now)
    return settled_pairs(got), truth_pairs(sim.settlements(exchange, symbol, now - days * DAY_MS))


def pages_needed(paging: SettledPaging, truth: list[dict], since_ms: int) -> int:
    """The requests fetch_settled needs for the window's settlements `truth` (from `since_ms`): full pages,
    then the one that ends it. Forward, that is a short page; backward (newest first), the page holding the
    settlement at or before `since_ms`, or a short one where the listing is younger than the window."""
    held = len(truth) if paging.forward else sum(1 for s in truth if s["funding_time"] > since_ms)
    return held // paging.page_size + 1


# -- RabbitMQ --------------------------------------------------------------------------------------
def rabbitmqctl(*args: str, check: bool = True, node: str | None = None) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *(("-n", node) if node else ()), *args], capture_output=True,
                         text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
    return out.stdout


class BrokerAdmin:
    """The broker's HTTP management API as an administrator of this test process's own: vhosts, users and
    permissions for the fixtures. rabbitmqctl boots an Erlang VM per call (about 1.3 s of CPU); hundreds of
    test vhosts made with it took minutes of the suite's two cores. One rabbitmqctl call makes the admin."""

    PORT = int(os.environ.get("RABBITMQ_MANAGEMENT_PORT", 15672))

    def __init__(self):
        self.user, self.password = f"futures_scan_admin_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        rabbitmqctl("eval", f'rabbit_auth_backend_internal:add_user(<<"{self.user}">>, <<"{self.password}">>, '
                            f'<<"futures_scan tests">>), rabbit_auth_backend_internal:set_tags(<<"{self.user}">>, '
                            f'[administrator], <<"futures_scan tests">>).')
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None, ok_missing: bool = False):
        request = urllib.request.Request(f"http://{RABBIT_HOST}:{self.PORT}/api/{path}", method=method,
                                         headers=self._headers,
                                         data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                text = answer.read()
        except urllib.error.HTTPError as e:
            if ok_missing and e.code == 404:
                return None
            raise RuntimeError(f"management API {method} /api/{path}: {e.code} {e.read()[:300]!r}") from None
        return json.loads(text) if text else None

    def add_vhost(self, vhost: str) -> None:
        self.call("PUT", f"vhosts/{quote(vhost, safe='')}")

    def delete_vhost(self, vhost: str) -> None:
        self.call("DELETE", f"vhosts/{quote(vhost, safe='')}", ok_missing=True)

    def add_user(self, user: str, password: str, tags: str = "") -> None:
        self.call("PUT", f"users/{quote(user, safe='')}", {"password": password, "tags": tags})

    def permit(self, vhost: str, user: str) -> None:
        self.call("PUT", f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                  {"configure": ".*", "write": ".*", "read": ".*"})

    def delete_users(self, users: list[str]) -> None:
        if users:
            self.call("POST", "users/bulk-delete", {"users": users})

    def close(self) -> None:
        rabbitmqctl("delete_user", self.user, check=False)


_ADMIN: BrokerAdmin | None = None


def broker_admin() -> BrokerAdmin:
    """This process's BrokerAdmin, made at first use (an xdist worker is a process of its own)."""
    global _ADMIN
    if _ADMIN is None:
        _ADMIN = BrokerAdmin()
    return _ADMIN


def pytest_sessionfinish(session, exitstatus):
    if _ADMIN is not None:
        _ADMIN.close()


class Rabbit:
    """A vhost of its own on the local server, with a user whose password is a known secret. The session's
    Rabbit makes the user; `isolated()` gives a fixture or a test a fresh vhost for the same user, so that
    no test sees another's messages, queues or held symbol sets."""

    def __init__(self, user: str | None = None, password: str | None = None):
        tag = uuid.uuid4().hex[:8]  # concurrent test sessions must not share a vhost or a user
        self.port = RABBIT_PORT
        self.vhost = f"futures_scan_test_{tag}"
        self.owns_user = user is None
        self.user = user or f"futures_scan_test_{tag}"
        self.password = password or f"pw-{uuid.uuid4().hex}"
        admin = broker_admin()
        admin.add_vhost(self.vhost)
        if self.owns_user:
            admin.add_user(self.user, self.password, "management")  # rabbitmqadmin goes through the HTTP API
        admin.permit(self.vhost, self.user)

    def isolated(self) -> "Rabbit":
        """A fresh vhost for the same user; close() deletes it."""
        return Rabbit(self.user, self.password)

    def params(self) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(RABBIT_HOST, self.port, self.vhost,
                                         pika.PlainCredentials(self.user, self.password))

    def config(self, exchange: str = "futures_data") -> dict:
        return {"host": RABBIT_HOST, "port": self.port, "user": self.user, "password": self.password,
                "vhost": self.vhost, "exchange": exchange}

    def forget_symbol_sets(self, exchanges=EXCHANGES) -> None:
        """Delete the workers' symbol-set queues, so that workers start from their config's list and not
        from a set an earlier test's controller left there."""
        conn = pika.BlockingConnection(self.params())
        channel = conn.channel()
        for exchange in exchanges:
            channel.queue_delete(symbols_queue(exchange))
        conn.close()

    def stop_app(self) -> None:
        rabbitmqctl("stop_app")

    def start_app(self) -> None:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")

    def close(self) -> None:
        """Tests that stop the broker start it again themselves (in a finally)."""
        broker_admin().delete_vhost(self.vhost)
        if self.owns_user:
            broker_admin().delete_users([self.user])


class PrivateBroker(Rabbit):
    """A RabbitMQ node of its own (Debian's rabbitmq-server, a second node beside the shared one: its own name,
    ports and data folder), for tests that stop the broker: stopping it touches no other test, so they run
    beside the rest. Its default vhost, and a user with every right on it."""

    def __init__(self):
        self.node = f"fs_test_{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        # Under /tmp, not pytest's folders: those are root's alone, and the node runs as the rabbitmq user.
        folder = Path(tempfile.mkdtemp(prefix="futures_scan_broker_"))
        self.folder, self.port = folder, free_port()
        self.vhost, self.owns_user = "/", False
        self.user, self.password = "futures_scan_test", f"pw-{uuid.uuid4().hex}"
        for sub in ("mnesia", "log"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "enabled_plugins").write_text("[].\n")  # no management plugin: no port of its own needed
        shutil.chown(folder, "rabbitmq", "rabbitmq")
        for path in folder.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
               "RABBITMQ_LOG_BASE": str(folder / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(folder / "node.pid"), "RABBITMQ_CONFIG_FILE": str(folder / "none")}
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True, timeout=60)
        self._await_startup()
        rabbitmqctl("add_user", self.user, self.password, node=self.node)
        rabbitmqctl("set_permissions", "-p", "/", self.user, ".*", ".*", ".*", node=self.node)

    def _await_startup(self) -> None:
        deadline = time.time() + 90
        while subprocess.run(["rabbitmqctl", "-q", "-n", self.node, "await_startup", "--timeout", "60"],
                             capture_output=True, timeout=120).returncode != 0:
            assert time.time() < deadline, f"RabbitMQ node {self.node} did not start: see {self.folder / 'log'}"
            time.sleep(1)  # the node registers with epmd a moment after -detached returns

    def isolated(self) -> Rabbit:
        raise NotImplementedError("a private broker has one vhost")

    def stop_app(self) -> None:
        rabbitmqctl("stop_app", node=self.node)

    def start_app(self) -> None:
        rabbitmqctl("start_app", node=self.node)
        rabbitmqctl("await_startup", node=self.node)

    def close(self) -> None:
        rabbitmqctl("stop", node=self.node, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def free_port() -> int:
    """A port nothing listens on (bound and released: the kernel does not hand it out again at once)."""
    with socket.socket() as s:
        s.bind((RABBIT_HOST, 0))
        return s.getsockname()[1]


class RoleUsers:
    """The role users of scripts/broker_users.py on a vhost of the test's own, under a prefix of its own (users
    are broker-wide), with their passwords; `env` hands them to the processes the test starts."""

    def __init__(self, rabbit: Rabbit, folder: Path, exchanges=EXCHANGES, data_exchange: str = "futures_data"):
        self.rabbit, self.exchanges = rabbit, exchanges
        self.prefix = f"t{uuid.uuid4().hex[:8]}_"
        self.rabbitmq = {**rabbit.config(data_exchange), "user_prefix": self.prefix}
        config = folder / "broker_users.json"
        config.write_text(json.dumps({"rabbitmq": self.rabbitmq, "exchanges": list(exchanges), "symbols": []}))
        self.dotenv = folder / "roles.env"
        admin = broker_admin()  # through the API: rabbitmqctl import_definitions boots a VM per call
        out = subprocess.run([sys.executable, "scripts/broker_users.py", "--config", str(config), "--via", "api"],
                             cwd=ROOT, env={**os.environ, "FUTURES_SCAN_DOTENV": str(self.dotenv),
                                            "RABBITMQ_ADMIN_USER": admin.user, "RABBITMQ_ADMIN_PASSWORD": admin.password},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        self.env = dict(line.split("=", 1) for line in self.dotenv.read_text().splitlines() if "=" in line)

    def user(self, role: str, exchange: str | None = None) -> str:
        return self.prefix + (f"worker_{exchange}" if exchange else role)

    def password(self, role: str, exchange: str | None = None) -> str:
        name = f"worker_{exchange}" if exchange else role
        return self.env[f"FUTURES_SCAN_{name.upper()}_PASSWORD"]

    def params(self, role: str, exchange: str | None = None) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(RABBIT_HOST, RABBIT_PORT, self.rabbit.vhost,
                                         pika.PlainCredentials(self.user(role, exchange), self.password(role, exchange)))

    def close(self) -> None:
        delete_users([self.user("worker", ex) for ex in self.exchanges] + [
            self.user(role) for role in ("controller", "scanner", "recorder", "consumer", "operator")])


def delete_users(users: list[str]) -> None:
    """In one call to the broker's API (users that are gone already are no error)."""
    broker_admin().delete_users(users)


@pytest.fixture
def role_users(own_rabbit, tmp_path):
    users = RoleUsers(own_rabbit, tmp_path)
    yield users
    users.close()


@pytest.fixture(scope="session")
def rabbit():
    r = Rabbit()
    yield r
    r.close()


@pytest.fixture
def own_rabbit(rabbit):
    """A vhost of this test's own (same user and password as `rabbit`)."""
    r = rabbit.isolated()
    yield r
    r.close()


class Consumer:
    """A private queue bound to a topic exchange; a background thread collects every message."""

    def __init__(self, rabbit: Rabbit, exchange: str, binding: str | tuple = "#", exchange_type: str = "topic"):
        self.messages: list[tuple[str, dict, float, pika.BasicProperties]] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(rabbit, exchange, binding, exchange_type),
                                        daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "consumer could not connect"

    def _run(self, rabbit, exchange, binding, exchange_type):
        # Reconnects by itself: some tests stop the broker under it.
        while not self._stop:
            try:
                conn = pika.BlockingConnection(rabbit.params())
                ch = conn.channel()
                ch.exchange_declare(exchange, exchange_type=exchange_type, durable=True)
                queue = ch.queue_declare("", exclusive=True).method.queue
                for key in (binding,) if isinstance(binding, str) else binding:
                    ch.queue_bind(queue, exchange, key)
                ch.basic_consume(queue, self._on_message, auto_ack=True)
                self._ready.set()
                while not self._stop:
                    conn.process_data_events(time_limit=0.1)
                conn.close()
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.2)

    def _on_message(self, _ch, method, props, body):
        with self._cond:
            self.messages.append((method.routing_key, json.loads(body), time.time(), props))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float, what: str = "message"):
        """The first collected message (key, body) that satisfies predicate(key, body), awaited."""
        deadline = time.time() + timeout
        with self._cond:
            seen = 0
            while True:
                for key, body, _, _ in self.messages[seen:]:
                    if predicate(key, body):
                        return key, body
                seen = len(self.messages)
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s ({len(self.messages)} messages seen)")
                self._cond.wait(left)

    def since(self, t: float) -> list[tuple[str, dict]]:
        with self._cond:
            return [(k, b) for k, b, when, _ in self.messages if when >= t]

    def close(self):
        self._stop = True
        self._thread.join(5)


@pytest.fixture
def consume(rabbit):
    consumers = []

    def make(exchange: str, binding: str = "#", exchange_type: str = "topic") -> Consumer:
        consumers.append(Consumer(rabbit, exchange, binding, exchange_type))
        return consumers[-1]
    yield make
    for c in consumers:
        c.close()


# -- worker processes ------------------------------------------------------------------------------
class Process:
    """A project process (worker.py, controller.py) run as `python <script> ...`, output to a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """Await a line matching `pattern` in the output (from character offset `start`)."""
        regex = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            match = regex.search(self.log_text(), start)
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}) before /{pattern}/:\n"
                                     + self.log_text()[-3000:])
            if time.time() > deadline:
                raise AssertionError(f"no /{pattern}/ within {timeout}s:\n" + self.log_text()[-3000:])
            time.sleep(0.05)  # polling a file: there is no event to await

    def terminate(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def write_config(path: Path, rabbit: Rabbit, sim: Simulator, exchanges=EXCHANGES, symbols=None,
                 data_exchange: str = "futures_data", entry: dict | None = None, **overrides) -> Path:
    """A config for the test's vhost and simulator; `entry`: settings of every exchange's entry (proxies,
    depth...); `overrides`: top-level sections, merged into the defaults' when both are objects."""
    config = {
        "rabbitmq": rabbit.config(data_exchange),
        "exchanges": [{"name": ex, "api_url": sim.api_url(ex), **(entry or {})} for ex in exchanges],
        "symbols": ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "DOGE/USDT:USDT"] if symbols is None
        else symbols,
        # The open-interest rotation off unless a test is about it, as the history below: its requests would
        # join every request count.
        "collection": {"interval_seconds": 5, "retry_attempts": 3, "retry_delays": [1, 2, 4],
                       "request_timeout_seconds": 3, "statistics_interval_seconds": 10,
                       "open_interest_rotation": False},
        "api_keys_file": None,
        "state_file": str(path.parent / "symbols.json"),
        "logging": {"level": "DEBUG"},
        "scanner": {"listen": "127.0.0.1:0"},  # a free port: tests run beside each other and a user's system
        # Off unless a test is about it: the settled funding's requests would join every request count.
        "history": {"enabled": False, "database": str(path.parent / "history.sqlite")},
    }
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) \
            else value
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture
def start_worker(tmp_path):
    processes = []

    def start(exchange: str, config: Path, env: dict | None = None) -> Process:
        p = Process(["worker.py", exchange, "--config", str(config)], tmp_path / f"worker-{exchange}.log", env)
        processes.append(p)
        return p
    yield start
    for p in processes:
        p.kill()


# -- proxies ---------------------------------------------------------------------------------------
class Tinyproxy:
    """Debian's tinyproxy listening on, and sending from, its own loopback address (127.0.0.2 and up), so
    that the simulator sees each proxy as one more client IP."""

    def __init__(self, address: str, folder: Path):
        with socket.socket() as probe:
            probe.bind((address, 0))
            self.port = probe.getsockname()[1]
        self.address = address
        conf = folder / f"tinyproxy-{address}.conf"
        conf.write_text(f"Listen {address}\nPort {self.port}\nBind {address}\nAllow 127.0.0.0/8\nMaxClients 64\n"
                        "Timeout 30\nLogLevel Connect\nDisableViaHeader Yes\n")
        self.log_path = folder / f"tinyproxy-{address}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:  # listening is the event; there is no other way to learn of it
            try:
                socket.create_connection((address, self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.time() < deadline, self.log_path.read_text()
                time.sleep(0.05)

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}{self.address}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def tinyproxies(tmp_path):
    """start(n) -> n proxies on 127.0.0.2, 127.0.0.3, ...; all stopped (by PID) after the test."""
    if not shutil.which("tinyproxy"):
        pytest.fail("tinyproxy is missing: run scripts/install_test_tools.sh (the test command does)")
    started: list[Tinyproxy] = []

    def start(count: int) -> list[Tinyproxy]:
        new = [Tinyproxy(f"127.0.0.{len(started) + i + 2}", tmp_path) for i in range(count)]
        started.extend(new)
        return new
    yield start
    for proxy in started:
        proxy.stop()
