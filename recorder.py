"""recorder.py: keep the settled funding and samples of the boards in SQLite (docs/reference.md, "History").

Lifecycle: load config -> open the database (state/history.sqlite, WAL; the schema is common/history.py's)
-> connect to RabbitMQ (with backoff, never exiting for it) -> consume the workers' settlements from a
durable queue (what they publish while the recorder is down waits there) and the boards from a short queue
of its own, storing a sample of each exchange's board every `history.sample_seconds`, and once an hour
deleting what is older than `history.retention_days` -> on SIGTERM/SIGINT: close, exit 0. A settlement
message is acknowledged once its transaction is committed: a crash before then has it delivered again, and
storing it twice changes nothing.
"""
from __future__ import annotations

import signal
import sys

# Until the recorder's own handler is installed (the imports take a moment), a stop is a clean exit.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse  # noqa: E402 - after the early signal handlers, on purpose
import logging
import sqlite3
import time

from common.board import Board
from common.broker import Broker, declare_exchange, declare_recorder_queue
from common.config import Config, ConfigError, load_config
from common.history import note_coverage, open_history, prune, store_samples, store_settlements
from common.latest import RateLimitedLog
from common.logs import printable, setup_logging
from common.messages import Malformed, check_board_size, parse_funding, validated
from common.roles import connect_as
from common.shutdown import StopSignal

# Only each exchange's latest boards matter (one sample every few minutes): its queue holds 16 at most, the
# oldest dropped first. A board is at most 4 MiB (the scanner's cap), so at most 64 MiB wait there.
BOARD_QUEUE = {"x-max-length": 16, "x-max-length-bytes": 64 * 2**20, "x-overflow": "drop-head"}
MAX_BOARD_BYTES = 4 * 2**20
# Messages in flight to the recorder: settlements at most 8 x 1 MiB, boards 4 x 4 MiB.
SETTLEMENT_PREFETCH, BOARD_PREFETCH = 8, 4
PRUNE_EVERY_SECONDS = 3600

log = logging.getLogger("recorder")


class Recorder:
    def __init__(self, config: Config, db: sqlite3.Connection):
        self.config, self.db = config, db
        self.history = config.history
        rabbit, self.roles = connect_as(config.rabbitmq, "recorder")
        self.broker = Broker(rabbit, on_connect=self._declare, confirm=False)
        self.warnings = RateLimitedLog(log)
        self.sampled: dict[str, int] = {}  # exchange -> the sample period (ts // sample ms) last stored
        self.counts = {"settlements": 0, "samples": 0, "dropped": 0}
        self._pruned_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self, stop: StopSignal) -> None:
        while not stop.requested:
            if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
                self.prune()
            self.broker.ensure_connected()
            self.broker.pump(0.2)

    def shutdown(self) -> None:
        self.broker.close()
        self.db.close()
        log.info("Stopped: %(settlements)d settlements and %(samples)d samples stored, %(dropped)d messages "
                 "dropped as malformed", self.counts)

    def _declare(self, channel) -> None:
        exchange = self.config.rabbitmq.exchange
        declare_exchange(channel, exchange, "topic", passive=self.roles.separate)
        queue = declare_recorder_queue(channel, exchange)
        channel.basic_qos(prefetch_count=SETTLEMENT_PREFETCH)
        channel.basic_consume(queue, self._on_settlements)
        boards = channel.queue_declare("", exclusive=True, arguments=BOARD_QUEUE).method.queue
        channel.queue_bind(boards, exchange, "board.*")
        channel.basic_qos(prefetch_count=BOARD_PREFETCH)
        channel.basic_consume(boards, self._on_board)
        log.info("Recording funding.* (queue %s) and board.* from %s into %s", queue, exchange,
                 self.config.path(self.history.database))

    def prune(self) -> None:
        self._pruned_at = time.monotonic()
        cut = int(time.time() * 1000 - self.history.retention_days * 86_400_000)
        pruned = prune(self.db, cut)
        if pruned.samples or pruned.settlements:
            log.info("Deleted %d samples and %d settlements older than %g days", pruned.samples,
                     pruned.settlements, self.history.retention_days)

    # -- messages ----------------------------------------------------------------------------------
    def _on_settlements(self, channel, method, properties, body: bytes) -> None:
        self._handle(self.record_settlements, method.routing_key, body, properties.user_id)
        self.broker.ack_up_to(channel, method.delivery_tag)  # after the commit: a crash before it redelivers

    def _on_board(self, channel, method, properties, body: bytes) -> None:
        self._handle(self.record_board, method.routing_key, body, properties.user_id)
        self.broker.ack_up_to(channel, method.delivery_tag)

    def _handle(self, record, key: str, body: bytes, user_id: str | None) -> None:
        """One message, which may be malformed or forged: said (rate-limited) and dropped, never raised. A
        database error is raised: the message stays unacknowledged, and supervisord restarts the recorder."""
        try:
            record(self._sender(key, user_id), body)
        except (Malformed, ValueError) as e:
            self.counts["dropped"] += 1
            kind = key.partition(".")[0] if key.partition(".")[0] in ("funding", "board") else "unrouted"
            # Rate-limited: a producer gone wrong can send thousands; each one is still at DEBUG.
            if not self.warnings.warning(kind, "Dropped a %s message: %s", kind, printable(e, 300)):
                log.debug("Dropped a %s message: %s", kind, printable(e, 300))

    def _sender(self, key: str, user_id: str | None) -> str:
        """The exchange a message is about, once its sender is that exchange's worker (broker-verified)."""
        exchange = key.partition(".")[2]
        if not self.roles.sent_by_a_worker(user_id, exchange):
            raise Malformed(f"{key[:80]} sent by user {user_id!r:.60}, not by {exchange[:40]}'s worker")
        return exchange

    def record_settlements(self, exchange: str, body: bytes) -> None:
        message = parse_funding(body, exchange)
        stored = store_settlements(self.db, exchange, [s.model_dump() for s in message.settlements])
        for done in message.backfilled:
            note_coverage(self.db, exchange, done.symbol, done.from_ms)
        self.counts["settlements"] += stored
        log.debug("Stored %d of %d settlements of %s", stored, len(message.settlements), exchange)

    def record_board(self, exchange: str, body: bytes) -> None:
        """A sample of the board when it is the first of its sample period (ts // sample_seconds): every
        exchange is sampled at the same moments, so that its legs pair in the samples too."""
        if len(body) > MAX_BOARD_BYTES:
            raise Malformed(f"{len(body)} bytes on board.{exchange[:40]}, more than {MAX_BOARD_BYTES}")
        check_board_size(body, f"board.{exchange[:40]}")
        board = validated(Board, body, f"board.{exchange[:40]}")
        if board.exchange != exchange:
            raise Malformed(f"board for {board.exchange!r} published as board.{exchange[:40]}")
        period = board.timestamp // int(self.history.sample_seconds * 1000)
        if period <= self.sampled.get(exchange, -1):
            return
        self.sampled[exchange] = period
        self.counts["samples"] += store_samples(self.db, board.timestamp, exchange,
                                                [row.model_dump() for row in board.markets])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="futures_scan recorder: settled funding and board samples "
                                                 "into SQLite")
    parser.add_argument("--config", help="config file (default: $FUTURES_SCAN_CONFIG or config/config.json)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        setup_logging(config.logging.level, config.log_file)
        db = open_history(config.path(config.history.database))
        recorder = Recorder(config, db)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    except (OSError, sqlite3.Error, ValueError) as e:
        print(f"Cannot open the history database {config.history.database}: {e}", file=sys.stderr, flush=True)
        return 2
    stop = StopSignal(log)
    stop.install()
    try:
        recorder.run(stop)
    finally:
        recorder.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
