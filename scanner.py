"""scanner.py: the live cross-exchange view (docs/reference.md, "The scanner") on a web page, a JSON API
and the terminal.

Lifecycle: load config -> listen (the page and the API, served from a thread) -> connect to RabbitMQ (with
backoff, never exiting for it) and consume the boards and snapshots through an exclusive, length-limited
queue, keeping the latest values per (exchange, symbol) -> on SIGTERM/SIGINT: stop the web server, close,
exit 0. The main thread owns the blocking pika connection; the web server's thread only reads the latest
values, under a lock, and computes its answers from them (common/scan.py) at each request. A third thread
reads every leg's realized funding from the recorder's history database once a minute (common/realized.py),
so that neither the requests nor the consumer wait on that query.
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

import uvicorn

from common.board import Board
from common.broker import Broker, declare_exchange
from common.config import Config, ConfigError, load_config
from common.logs import printable, secret_mask, setup_logging
from common.roles import connect_as
from common.models import FuturesData
from common.latest import LatestValues, RateLimitedLog
from common.messages import Malformed, check_board_size, validated
from common.realized import RealizedFunding
from common.scan import Leg, ScannerConfig, board_sources, snapshot_source, split_listen
from common.scan_page import make_app
from common.shutdown import StopSignal
from common.symbols import routing_key

BINDINGS = ("board.*", "futures.#")
# Boards and snapshots each through an exclusive queue of their own, so that each has a prefetch of its own:
# RabbitMQ counts prefetch in messages only, and a board may be 16 times a snapshot's size. The queues are
# the scanner's own and only the latest values matter: when the scanner falls behind, the broker drops the
# oldest messages (drop-head) instead of piling them up for everyone.
BOARD_QUEUE = {"x-max-length": 100, "x-max-length-bytes": 64 * 2**20, "x-overflow": "drop-head"}
SNAPSHOT_QUEUE = {"x-max-length": 10_000, "x-max-length-bytes": 256 * 2**20, "x-overflow": "drop-head"}
BOARD_PREFETCH = 8   # boards in flight: one per exchange per cycle arrives
PREFETCH = 200       # snapshots in flight
ACK_EVERY = PREFETCH // 2  # one ack (multiple=True) per this many messages: a write per message costs
# A message over its cap is dropped on arrival, before it is parsed. The largest real board is ~600 rows,
# ~200 KB; a snapshot at depth 1000 is ~40-80 KB. Held in flight at most: 8 x 4 MiB + 200 x 256 KiB = 82 MiB.
MAX_BOARD_BYTES = 4 * 2**20
MAX_SNAPSHOT_BYTES = 256 * 2**10
FORGET_AFTER_MS = 3600 * 1000    # a delisted symbol's (or a silent exchange's) last values are shown stale
                                 # for an hour, then dropped
GC_THRESHOLDS = (10_000, 20, 20)  # Python's default (700, 10, 10): see main()

log = logging.getLogger("scanner")


class Scanner:
    def __init__(self, config: Config, settings: ScannerConfig):
        self.config = config
        self.settings = settings
        self.latest = LatestValues()
        self.realized_funding = RealizedFunding(config.path(config.history.database))
        rabbit, self.roles = connect_as(config.rabbitmq, "scanner")
        self.broker = Broker(rabbit, on_connect=self._declare, confirm=False)
        self.warnings = RateLimitedLog(log)
        self.messages_seen = 0
        self.messages_dropped = 0
        self.last_message_ms: int | None = None  # when the last usable message arrived (our clock)
        self._unacked: tuple[object, int] | None = None  # (channel, newest delivery tag) not yet acknowledged
        self._unacked_count = 0
        self._window_start, self._window_seen = time.monotonic(), 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self, stop: StopSignal) -> None:
        self.realized_funding.start()
        while not stop.requested:
            self.broker.ensure_connected()
            self.broker.pump(0.2)
            self._ack_received()
            if time.monotonic() - self._window_start >= self.config.collection.statistics_interval_seconds:
                self.housekeeping()

    def shutdown(self) -> None:
        self.realized_funding.stop()
        self.broker.close()
        log.info("Stopped after %d messages (%d dropped as malformed)", self.messages_seen, self.messages_dropped)

    def _declare(self, channel) -> None:
        exchange = self.config.rabbitmq.exchange
        declare_exchange(channel, exchange, "topic", passive=self.roles.separate)
        # basic_qos (per consumer) applies to the consumers started after it on the channel.
        for binding, arguments, prefetch in zip(BINDINGS, (BOARD_QUEUE, SNAPSHOT_QUEUE), (BOARD_PREFETCH, PREFETCH)):
            queue = channel.queue_declare("", exclusive=True, arguments=arguments).method.queue
            channel.queue_bind(queue, exchange, binding)
            channel.basic_qos(prefetch_count=prefetch)
            channel.basic_consume(queue, self._on_message)
        log.info("Consuming %s from %s", " and ".join(BINDINGS), exchange)

    def housekeeping(self) -> None:
        forgotten, gone = self.latest.forget_older_than(_now_ms() - FORGET_AFTER_MS)
        boards, snapshots = self.latest.counts()
        seconds = time.monotonic() - self._window_start
        log.info("%d messages in %.0fs; holding %d board rows and %d snapshots%s%s; broker %s",
                 self.messages_seen - self._window_seen, seconds, boards, snapshots,
                 f" ({forgotten} older than an hour forgotten)" if forgotten else "",
                 f" (forgot {', '.join(printable(e, 40) for e in gone)}: silent for an hour)" if gone else "",
                 "connected" if self.broker.connected else "unreachable")
        self._window_start, self._window_seen = time.monotonic(), self.messages_seen

    # -- messages ----------------------------------------------------------------------------------
    def _on_message(self, channel, method, properties, body: bytes) -> None:
        try:
            self.ingest(method.routing_key, body, properties.user_id)
        except Malformed as e:
            self.messages_dropped += 1
            kind = method.routing_key.partition(".")[0]
            kind = kind if kind in ("board", "futures") else "unrouted"
            self.warnings.warning(kind, "Dropped a malformed %s message: %s", kind, printable(e, 300))
        except Exception as e:  # noqa: BLE001 - no message may take the scanner down
            self.messages_dropped += 1
            self.warnings.log(logging.ERROR, f"error {type(e).__name__}", "Could not use a message on %s: %s",
                              printable(method.routing_key), type(e).__name__, exc_info=True)
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
        kind, _, rest = key.partition(".")
        cap = MAX_BOARD_BYTES if kind == "board" else MAX_SNAPSHOT_BYTES
        if len(body) > cap:
            raise Malformed(f"{len(body)} bytes on {key[:80]}, more than {cap}")
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
        check_board_size(body, f"board.{exchange}")
        board = validated(Board, body, f"board.{exchange}")
        if board.exchange != exchange:
            raise Malformed(f"board for {board.exchange!r} published as board.{exchange[:40]}")
        self._check_clock(board.timestamp, f"board.{exchange}")
        self.latest.put_board(exchange, board.timestamp, board_sources(board))

    def _ingest_snapshot(self, key: str, body: bytes) -> None:
        snapshot = validated(FuturesData, body, key[:80])
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
    def legs_by_symbol(self, now_ms: int, asset: str | None = None) -> dict[str, list[Leg]]:
        return self.latest.legs_by_symbol(now_ms, self.settings.stale_after_ms, asset)

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
                "notionals": self.settings.notionals, "exchanges": exchanges,
                "history": self.realized_funding.status()}

    def realized(self):
        return self.realized_funding.by_leg()

    def history(self, base: str, from_ms: int, to_ms: int) -> dict:
        return self.realized_funding.history(base, from_ms, to_ms)


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
        if settings.access_token is not None:
            secret_mask.add(settings.access_token.get_secret_value())
        scanner = Scanner(config, settings)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    stop = StopSignal(log)
    stop.install()
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
    log.info("Serving the page and the API on %s (stale after %.0fs, notionals %s%s)", web.url,
             settings.stale_after_seconds, ", ".join(map(str, settings.notionals)),
             "; an access token required" if settings.access_token is not None else "")
    try:
        scanner.run(stop)
    finally:
        web.stop()
        scanner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
