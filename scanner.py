"""scanner.py: the live cross-exchange view (docs/reference.md, "The scanner") on a web page, a JSON API
and the terminal.

Lifecycle: load config -> listen (the page and the API, served from a thread) -> connect to RabbitMQ (with
backoff, never exiting for it) and consume the boards and snapshots through an exclusive, length-limited
queue, keeping the latest values per (exchange, symbol) -> on SIGTERM/SIGINT: stop the web server, close,
exit 0. The main thread owns the blocking pika connection; the web server's thread only reads the latest
values, under a lock, and computes its answers from them (common/scan.py) at each request.
"""
from __future__ import annotations

import signal
import sys

# Until the scanner's own handler is installed (the imports take a moment), a stop is a clean exit.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse  # noqa: E402 - after the early signal handlers, on purpose
import contextlib
import gc
import logging
import socket
import threading
import time
from collections import Counter

import uvicorn
from pydantic import ValidationError

from common.board import Board
from common.broker import Broker, declare_exchange
from common.config import Config, ConfigError, load_config
from common.logs import printable, secret_mask, setup_logging
from common.roles import connect_as
from common.models import FuturesData
from common.scan import Book, Leg, ScannerConfig, Source, board_sources, compact_symbol, \
    merge_leg, snapshot_source, split_listen
from common.scan_page import make_app
from common.shutdown import StopSignal
from common.symbols import routing_key

BINDINGS = ("board.*", "futures.#")
# The queue is the scanner's own and only the latest values matter: when the scanner falls behind, the
# broker drops the oldest messages (drop-head) instead of piling them up for everyone.
QUEUE_ARGUMENTS = {"x-max-length": 10_000, "x-max-length-bytes": 256 * 2**20, "x-overflow": "drop-head"}
PREFETCH = 200                   # unacknowledged messages in flight: bounds the scanner's own memory too
ACK_EVERY = PREFETCH // 2        # one ack (multiple=True) per this many messages: a write per message costs
MAX_BODY_BYTES = 32 * 2**20      # a board of every listed perpetual is well under 1 MiB
FORGET_AFTER_MS = 3600 * 1000    # a delisted symbol's last values are shown stale for an hour, then dropped
GC_THRESHOLDS = (10_000, 20, 20)  # Python's default (700, 10, 10): see main()
DROP_LOG_SECONDS = 10            # at most one warning per kind of malformed message in this time

log = logging.getLogger("scanner")


class Malformed(ValueError):
    """A message that cannot be used; the message says why (never its content)."""


class LatestValues:
    """The newest board row, snapshot values and book per (exchange, symbol). Written by the consumer
    thread, read by the web server's: every access holds the lock, and the values themselves are immutable."""

    def __init__(self):
        self._lock = threading.Lock()
        self._boards: dict[tuple[str, str], Source] = {}
        self._snapshots: dict[tuple[str, str], tuple[Source, Book]] = {}
        self._by_compact: dict[str, set[tuple[str, str]]] = {}  # "BTCUSDT" -> {(exchange, symbol)}
        self._exchange_times: dict[str, dict[str, int]] = {}  # exchange -> {"board"/"snapshot": newest ms}

    def put_board(self, exchange: str, timestamp: int, sources: dict[str, Source]) -> None:
        with self._lock:
            self._note_time(exchange, "board", timestamp)
            for symbol, source in sources.items():
                held = self._boards.get((exchange, symbol))
                if held is None:
                    self._index((exchange, symbol))
                if held is None or held.timestamp <= source.timestamp:  # out-of-order delivery keeps the newer
                    self._boards[(exchange, symbol)] = source

    def put_snapshot(self, exchange: str, symbol: str, source: Source, book: Book) -> None:
        with self._lock:
            self._note_time(exchange, "snapshot", source.timestamp)
            held = self._snapshots.get((exchange, symbol))
            if held is None:
                self._index((exchange, symbol))
            if held is None or held[0].timestamp <= source.timestamp:
                self._snapshots[(exchange, symbol)] = (source, book)

    def _index(self, key: tuple[str, str]) -> None:
        self._by_compact.setdefault(_compact_key(key), set()).add(key)

    def _unindex(self, key: tuple[str, str]) -> None:
        compact = _compact_key(key)
        self._by_compact[compact].discard(key)
        if not self._by_compact[compact]:
            del self._by_compact[compact]

    def _note_time(self, exchange: str, kind: str, timestamp: int) -> None:
        times = self._exchange_times.setdefault(exchange, {})
        times[kind] = max(timestamp, times.get(kind, timestamp))

    def exchange_times(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {exchange: dict(times) for exchange, times in self._exchange_times.items()}

    def legs_by_symbol(self, now_ms: int, stale_after_ms: float, compact: str | None = None) -> dict[str, list[Leg]]:
        """symbol -> its legs; only the symbols of one routing-key form ("BTCUSDT") when `compact` is given."""
        with self._lock:
            if compact is None:
                keys = self._boards.keys() | self._snapshots.keys()
            else:
                keys = set(self._by_compact.get(compact.upper(), ()))
            held = [(key, self._boards.get(key), self._snapshots.get(key, (None, None))) for key in keys]
        out: dict[str, list[Leg]] = {}
        for (exchange, symbol), board, (source, book) in held:
            leg = merge_leg(exchange, symbol, board, source, book, now_ms, stale_after_ms)
            out.setdefault(symbol, []).append(leg)
        return out

    def forget_older_than(self, cutoff_ms: int) -> int:
        with self._lock:
            old_boards = [k for k, s in self._boards.items() if s.timestamp < cutoff_ms]
            old_snapshots = [k for k, (s, _) in self._snapshots.items() if s.timestamp < cutoff_ms]
            for key in old_boards:
                del self._boards[key]
            for key in old_snapshots:
                del self._snapshots[key]
            for key in set(old_boards) | set(old_snapshots):  # a symbol may have gone stale on both
                if key not in self._boards and key not in self._snapshots:
                    self._unindex(key)
        return len(old_boards) + len(old_snapshots)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._boards), len(self._snapshots)


class DropLog:
    """Warnings about dropped messages, at most one per kind every DROP_LOG_SECONDS: a producer gone wrong
    can send thousands a second, and the log must stay readable."""

    def __init__(self):
        self._last: dict[str, float] = {}
        self._suppressed: Counter = Counter()

    def warn(self, kind: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -DROP_LOG_SECONDS) < DROP_LOG_SECONDS:
            self._suppressed[kind] += 1
            return
        more = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        log.warning("Dropped a malformed %s message: %s%s", kind, printable(reason, 300),
                    f" ({more} more dropped since the last warning)" if more else "")


def _compact_key(key: tuple[str, str]) -> str:
    """(exchange, symbol) -> the symbol's routing-key form in upper case, as /api/symbol/X asks for it."""
    return compact_symbol(key[1]).upper()


class Scanner:
    def __init__(self, config: Config, settings: ScannerConfig):
        self.config = config
        self.settings = settings
        self.latest = LatestValues()
        rabbit, self.roles = connect_as(config.rabbitmq, "scanner")
        secret_mask.add(rabbit.password.get_secret_value())
        self.broker = Broker(rabbit, on_connect=self._declare, confirm=False)
        self.drops = DropLog()
        self.messages_seen = 0
        self.messages_dropped = 0
        self.last_message_ms: int | None = None  # when the last usable message arrived (our clock)
        self._unacked: tuple[object, int] | None = None  # (channel, newest delivery tag) not yet acknowledged
        self._unacked_count = 0
        self._window_start, self._window_seen = time.monotonic(), 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self, stop: StopSignal) -> None:
        while not stop.requested:
            self.broker.ensure_connected()
            self.broker.pump(0.2)
            self._ack_received()
            if time.monotonic() - self._window_start >= self.config.collection.statistics_interval_seconds:
                self.housekeeping()

    def shutdown(self) -> None:
        self.broker.close()
        log.info("Stopped after %d messages (%d dropped as malformed)", self.messages_seen, self.messages_dropped)

    def _declare(self, channel) -> None:
        exchange = self.config.rabbitmq.exchange
        declare_exchange(channel, exchange, "topic", passive=self.roles.separate)
        queue = channel.queue_declare("", exclusive=True, arguments=QUEUE_ARGUMENTS).method.queue
        for binding in BINDINGS:
            channel.queue_bind(queue, exchange, binding)
        channel.basic_qos(prefetch_count=PREFETCH)
        channel.basic_consume(queue, self._on_message)
        log.info("Consuming %s from %s", " and ".join(BINDINGS), exchange)

    def housekeeping(self) -> None:
        forgotten = self.latest.forget_older_than(_now_ms() - FORGET_AFTER_MS)
        boards, snapshots = self.latest.counts()
        seconds = time.monotonic() - self._window_start
        log.info("%d messages in %.0fs; holding %d board rows and %d snapshots%s; broker %s",
                 self.messages_seen - self._window_seen, seconds, boards, snapshots,
                 f" ({forgotten} older than an hour forgotten)" if forgotten else "",
                 "connected" if self.broker.connected else "unreachable")
        self._window_start, self._window_seen = time.monotonic(), self.messages_seen

    # -- messages ----------------------------------------------------------------------------------
    def _on_message(self, channel, method, properties, body: bytes) -> None:
        try:
            self.ingest(method.routing_key, body, properties.user_id)
        except Malformed as e:
            self.messages_dropped += 1
            kind = method.routing_key.partition(".")[0]
            self.drops.warn(kind if kind in ("board", "futures") else "unrouted", str(e))
        except Exception as e:  # noqa: BLE001 - no message may take the scanner down
            self.messages_dropped += 1
            log.exception("Could not use a message on %s: %s", printable(method.routing_key), type(e).__name__)
        self._unacked = (channel, method.delivery_tag)
        self._unacked_count += 1
        if self._unacked_count >= ACK_EVERY:
            self._ack_received()

    def _ack_received(self) -> None:
        if self._unacked is not None:
            channel, tag = self._unacked
            self._unacked, self._unacked_count = None, 0
            self.broker.ack_up_to(channel, tag)

    def ingest(self, key: str, body: bytes, user_id: str | None) -> None:
        self.messages_seen += 1
        if len(body) > MAX_BODY_BYTES:
            raise Malformed(f"{len(body)} bytes on {key[:80]}, more than {MAX_BODY_BYTES}")
        kind, _, rest = key.partition(".")
        exchange = rest.partition(".")[0]
        if not self.roles.sent_by_a_worker(user_id, exchange):
            raise Malformed(f"{key[:80]} sent by user {user_id!r}, not by {exchange[:40]}'s worker")
        if kind == "board":
            self._ingest_board(rest, body)
        elif kind == "futures":
            self._ingest_snapshot(key, body)
        else:
            raise Malformed(f"unexpected routing key {key[:80]!r}")
        self.last_message_ms = _now_ms()

    def _ingest_board(self, exchange: str, body: bytes) -> None:
        board = _validated(Board, body, f"board.{exchange}")
        if board.exchange != exchange:
            raise Malformed(f"board for {board.exchange!r} published as board.{exchange[:40]}")
        self._check_clock(board.timestamp, f"board.{exchange}")
        self.latest.put_board(exchange, board.timestamp, board_sources(board))

    def _ingest_snapshot(self, key: str, body: bytes) -> None:
        snapshot = _validated(FuturesData, body, key[:80])
        try:
            expected = routing_key(snapshot.exchange, snapshot.symbol)
        except ValueError as e:
            raise Malformed(f"{key[:80]}: {e}") from None
        if expected != key:
            raise Malformed(f"snapshot of {snapshot.exchange} {snapshot.symbol} published as {key[:80]}")
        self._check_clock(snapshot.timestamp, key)
        source, book = snapshot_source(snapshot, reach=max(self.settings.notionals))
        self.latest.put_snapshot(snapshot.exchange, snapshot.symbol, source, book)

    def _check_clock(self, timestamp_ms: int, where: str) -> None:
        """A message stamped in the future would be "fresh" until then and win every newer-value contest."""
        ahead = timestamp_ms - _now_ms()
        if ahead > self.settings.stale_after_ms:
            raise Malformed(f"{where}: timestamp {ahead / 1000:.0f}s in the future (clocks out of step?)")

    # -- what the web server reads -------------------------------------------------------------------
    def legs_by_symbol(self, now_ms: int, compact: str | None = None) -> dict[str, list[Leg]]:
        return self.latest.legs_by_symbol(now_ms, self.settings.stale_after_ms, compact)

    def status(self, now_ms: int) -> dict:
        stale_ms = self.settings.stale_after_ms
        exchanges = {}
        for name, times in sorted(self.latest.exchange_times().items()):
            newest = max(times.values())
            exchanges[name] = {"last_board": times.get("board"), "last_snapshot": times.get("snapshot"),
                               "age_seconds": round((now_ms - newest) / 1000, 3), "stale": now_ms - newest > stale_ms}
        fresh = any(not e["stale"] for e in exchanges.values())
        connection = self.broker.connection  # read once: the consumer thread may drop it meanwhile
        return {"timestamp": now_ms, "broker_connected": connection is not None and connection.is_open,
                "messages_seen": self.messages_seen,
                "messages_dropped": self.messages_dropped, "last_message_time": self.last_message_ms,
                "data_stale": not fresh, "stale_after_seconds": self.settings.stale_after_seconds,
                "notionals": self.settings.notionals, "exchanges": exchanges}


def _validated(model, body: bytes, where: str):
    """The message as `model`; Malformed naming the first problem (bad JSON, non-UTF-8, nesting too deep,
    a missing field or a wrong type) without echoing the input."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        first = e.errors(include_input=False, include_url=False)[0]
        at = ".".join(str(part) for part in first["loc"])
        raise Malformed(f"{where}: {at + ': ' if at else ''}{first['msg']} ({e.error_count()} problems)") from None


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- the web server --------------------------------------------------------------------------------
class WebServer:
    """uvicorn serving the page and the API from a thread of its own, on a socket bound up front, so that a
    port in use is an error at start (naming the address) rather than a dead thread."""

    def __init__(self, app, listen: str):
        host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(128)
        self.address = self.socket.getsockname()[:2]
        # lifespan off: the app has no start-up work; uvicorn's own logging stays at WARNING (no access log).
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                                                    log_config=None, timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="web", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        with contextlib.suppress(OSError):
            self.socket.close()


# -- configuration ---------------------------------------------------------------------------------
def load_scanner_config(path: str | None) -> tuple[Config, ScannerConfig]:
    """The whole config, validated as every process validates it, and its `scanner` section resolved."""
    config = load_config(path)
    return config, config.scanner.resolved(config.collection.interval_seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="futures_scan scanner: cross-exchange funding and spreads, "
                                                 "on a web page and a JSON API")
    parser.add_argument("--config", help="config file (default: $FUTURES_SCAN_CONFIG or config/config.json)")
    args = parser.parse_args(argv)
    try:
        config, settings = load_scanner_config(args.config)
        setup_logging(config.logging.level, config.log_file)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    secret_mask.add(config.rabbitmq.password.get_secret_value())
    stop = StopSignal(log)
    stop.install()
    scanner = Scanner(config, settings)
    try:
        web = WebServer(make_app(scanner, settings), settings.listen)
    except OSError as e:
        log.error("Cannot serve the page on %s: %s", settings.listen, e.strerror or e)
        return 2
    # Every cycle allocates and frees some million objects (parsed books) by reference counting alone;
    # the collector's passes over the imported modules' objects found nothing and cost a few percent of a
    # core: set those aside for good, and look at young objects less often.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    web.start()
    log.info("Serving the page and the API on %s (stale after %.0fs, notionals %s)", web.url,
             settings.stale_after_seconds, ", ".join(map(str, settings.notionals)))
    try:
        scanner.run(stop)
    finally:
        web.stop()
        scanner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
