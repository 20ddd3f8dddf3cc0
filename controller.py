"""controller.py: owns the symbol set, answers the control API, aggregates the workers' statistics.

Lifecycle: load config -> load the persisted symbol set (or start from the config's list) -> connect
(with backoff) -> consume commands one at a time, persist before answering, broadcast every change ->
on SIGTERM/SIGINT: final statistics, close, exit 0.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pika
from pydantic import ValidationError

from common.broker import (CONNECTION_ERRORS, CONTROL_QUEUE, CONTROL_QUEUE_ARGUMENTS, RESPONSES_EXCHANGE,
                           STATS_EXCHANGE, SYMBOLS_EXCHANGE, Broker, declare_exchange, declare_symbols_queue)
from common.config import Config, ConfigError, load_config
from common.control import Request, RequestError, failure, parse_request, response_key, success, symbols_summary
from common.logs import printable, setup_logging
from common.roles import connect_as
from common.shutdown import StopSignal
from common.stats import Counters, ReportError, WorkerTotals, format_block, parse_report
from common.symbols import MAX_SYMBOLS, SymbolSet

MUTATING = frozenset({"add_symbol", "remove_symbol", "set_symbols"})  # obeyed from the operator only
BROADCAST_SECONDS = 60  # the set is also re-sent periodically, in case a worker's queue was purged
# A worker reports every cycle; one silent this many intervals while a newer one of its exchange reports is gone.
STALE_REPORT_INTERVALS = 5
# A shard label ('3/3') not heard of for this many intervals is no longer shown (e.g. after re-sharding to 2).
SHARD_SILENCE_INTERVALS = 12
# The controller's own queue of reports: a flood waits in the broker, bounded, and the oldest reports go first
# (each process's totals are cumulative, so a newer report makes a dropped older one redundant).
STATS_QUEUE_ARGUMENTS = {"x-max-length": 10_000, "x-max-length-bytes": 32 * 2 ** 20, "x-overflow": "drop-head"}
STATS_PREFETCH = 100  # reports in the controller's memory at once, at most MAX_REPORT_BYTES each

log = logging.getLogger("controller")


class SymbolStore:
    """The symbol set on disk. Written atomically (temp file, fsync, rename, fsync of the folder), so a
    crash at any instant leaves the old file or the new one, never a torn one."""

    def __init__(self, path: Path):
        self.path = path

    def load(self, initial: list[str]) -> SymbolSet:
        try:
            return SymbolSet.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            symbol_set = SymbolSet(version=1, symbols=initial, timestamp=_now_ms())
            self.save(symbol_set)
            log.info("No saved symbol set at %s; starting from the config's %d symbols", self.path, len(initial))
            return symbol_set
        except (OSError, ValidationError) as e:
            # Keep the unreadable file for inspection; never silently overwrite what an operator had.
            aside = self.path.with_suffix(f".unreadable-{int(time.time())}")
            self.path.replace(aside)
            log.error("Saved symbol set %s is unreadable (%s); moved to %s, starting from the config",
                      self.path, type(e).__name__, aside)
            return self.load(initial)

    def save(self, symbol_set: SymbolSet) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(symbol_set.model_dump_json().encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class Controller:
    def __init__(self, config: Config, stop: StopSignal):
        self.config = config
        self.stop = stop
        self.store = SymbolStore(config.path(config.state_file))
        self.symbol_set = self.store.load(config.symbols)
        interval = config.collection.interval_seconds
        self.workers = WorkerTotals([e.name for e in config.exchanges], stale_after=STALE_REPORT_INTERVALS * interval,
                                    shard_silence=SHARD_SILENCE_INTERVALS * interval)
        rabbit, self.roles = connect_as(config.rabbitmq, "controller")
        self.broker = Broker(rabbit, on_connect=self._declare)
        self._last_broadcast = 0.0
        self._window_start, self._window_base = time.monotonic(), {}
        self._handlers = {"get_symbols": self._get_symbols, "get_statistics": self._get_statistics,
                          "add_symbol": self._add_symbol, "remove_symbol": self._remove_symbol,
                          "set_symbols": self._set_symbols}

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("Starting with symbol set v%d: %s", self.symbol_set.version, symbols_summary(self.symbol_set.symbols))
        while not self.stop.requested:
            if self.broker.ensure_connected() and time.monotonic() - self._last_broadcast > BROADCAST_SECONDS:
                self.broadcast()
            self.broker.pump(0.2)
            if time.monotonic() - self._window_start >= self.config.collection.statistics_interval_seconds:
                self.print_statistics()

    def shutdown(self) -> None:
        self.print_statistics(final=True)
        self.broker.close()
        log.info("Stopped")

    def _declare(self, channel) -> None:
        shared = self.roles.separate  # the shared topology is scripts/broker_users.py's: declared passively
        declare_exchange(channel, RESPONSES_EXCHANGE, "topic", passive=shared)
        declare_exchange(channel, STATS_EXCHANGE, "topic", passive=shared)
        if not shared:  # so that a worker not started yet still gets the current set (else broker_users.py's)
            for entry in self.config.exchanges:
                declare_symbols_queue(channel, entry.name)
        stats_queue = channel.queue_declare("", exclusive=True, arguments=STATS_QUEUE_ARGUMENTS).method.queue
        channel.queue_bind(stats_queue, STATS_EXCHANGE, "stats.#")
        # Acknowledged one by one, so that a flood waits in the bounded queue, not in this process. A prefetch
        # applies to the consumers started after it on the channel.
        channel.basic_qos(prefetch_count=STATS_PREFETCH)
        channel.basic_consume(stats_queue, self._on_worker_report)
        channel.queue_declare(CONTROL_QUEUE, durable=True, passive=shared, arguments=CONTROL_QUEUE_ARGUMENTS)
        channel.basic_qos(prefetch_count=1)  # one command at a time, in order
        channel.basic_consume(CONTROL_QUEUE, self._on_request)
        self._last_broadcast = 0.0  # re-send the set on every (re)connection

    # -- the control API ---------------------------------------------------------------------------
    def _on_request(self, channel, method, properties, body: bytes) -> None:
        """One answer and one acknowledgement per request, after it is handled, whatever happens meanwhile: a
        request that breaks the handler is answered internal_error and dropped, never requeued to break it again."""
        try:
            self.respond(self.answer(properties, body), properties)
        except Exception:  # noqa: BLE001 - a bug in answering: named as one, the request is still acknowledged
            log.exception("Bug while answering a request; it is dropped")
            self._respond_internal_error(properties)
        finally:
            self._ack(channel, method.delivery_tag)

    def answer(self, properties: pika.BasicProperties, body: bytes) -> dict:
        """The response to one raw request; a failure response for anything that goes wrong."""
        request = None
        try:
            request = parse_request(body, properties.correlation_id)
            if request.command in MUTATING and not self.roles.sent_by(properties.user_id, "operator"):
                raise RequestError("forbidden", f"{request.command} is obeyed only from the operator's user "
                                   f"({self.roles.user('operator')}), verified by the broker in user_id",
                                   request.command, request.correlation_id)
            log.info("Command %s%s", request.command, f" {request.symbol}" if request.symbol else "")
            response = self.execute(request)
        except RequestError as e:
            log.warning("Rejected request: %s (%s)", e.message, e.code)
            response = failure(e)
        except Exception as e:  # noqa: BLE001 - no request may take the controller down
            log.exception("Command failed")
            response = failure(RequestError(
                "internal_error", f"internal error: {type(e).__name__}", request and request.command,
                request.correlation_id if request else _cut(properties.correlation_id)))
        return response

    def _respond_internal_error(self, properties: pika.BasicProperties) -> None:
        try:
            self.respond(failure(RequestError("internal_error", "internal error while answering",
                                              correlation_id=_cut(properties.correlation_id))), properties)
        except Exception:  # noqa: BLE001 - the request is dropped either way; the first traceback is logged
            log.error("Could not answer the request with internal_error either")

    def _ack(self, channel, delivery_tag: int) -> None:
        """Acknowledge one delivery (never `multiple`: the control and stats consumers share the channel's
        delivery tags) if its channel is still the one in use: after a reconnect, its deliveries are gone."""
        if channel is not self.broker.channel or not self.broker.connected:
            return
        try:
            channel.basic_ack(delivery_tag)
        except CONNECTION_ERRORS as e:  # the next pump finds the connection gone and reconnects
            log.warning("Could not acknowledge delivery %d: %s", delivery_tag, type(e).__name__)

    def execute(self, request: Request) -> dict:
        """Run one parsed request; RequestError for what the request asks that cannot be done."""
        handler = self._handlers.get(request.command)
        if handler is None:  # parse_request admits only known commands; whatever else comes is refused
            raise RequestError("unknown_command", f"unknown command {str(request.command)[:60]!r}", None,
                               request.correlation_id)
        return handler(request)

    def _get_symbols(self, request: Request) -> dict:
        current = self.symbol_set.symbols
        # The version too: a worker whose symbols queue is new (a new shard) asks for the set this way.
        return success(request, "Symbols retrieved successfully",
                       {"symbols": current, "count": len(current), "version": self.symbol_set.version})

    def _get_statistics(self, request: Request) -> dict:
        return success(request, "Statistics retrieved successfully", self.workers.response_data(time.monotonic()))

    def _add_symbol(self, request: Request) -> dict:
        current = self.symbol_set.symbols
        if request.symbol in current:
            raise RequestError("duplicate_symbol", f"Symbol {request.symbol} already exists", request.command,
                               request.correlation_id)
        if len(current) >= MAX_SYMBOLS:
            raise RequestError("invalid_command", f"the set already holds {len(current)} symbols, the limit of "
                               f"{MAX_SYMBOLS}; remove one first", request.command, request.correlation_id)
        self.change(current + [request.symbol])
        return success(request, f"Symbol {request.symbol} added successfully",
                       {"symbol": request.symbol, "current_symbols": self.symbol_set.symbols})

    def _remove_symbol(self, request: Request) -> dict:
        current = self.symbol_set.symbols
        if request.symbol not in current:
            raise RequestError("symbol_not_found", f"Symbol {request.symbol} not found", request.command,
                               request.correlation_id)
        self.change([s for s in current if s != request.symbol])  # the last one may go: an empty set is valid
        return success(request, f"Symbol {request.symbol} removed successfully",
                       {"symbol": request.symbol, "current_symbols": self.symbol_set.symbols})

    def _set_symbols(self, request: Request) -> dict:
        if request.symbols == self.symbol_set.symbols:  # a repeat: no new version, no fsync, no broadcast
            return success(request, f"Symbol list unchanged ({len(request.symbols)} symbols)",
                           {"symbols": self.symbol_set.symbols, "count": len(self.symbol_set.symbols)})
        self.change(request.symbols)
        return success(request, f"Symbol list replaced ({len(request.symbols)} symbols)",
                       {"symbols": self.symbol_set.symbols, "count": len(self.symbol_set.symbols)})

    def change(self, symbols: list[str]) -> None:
        """Persist, then adopt and broadcast: an answer never reports a set that is not on disk."""
        new = SymbolSet(version=self.symbol_set.version + 1, symbols=symbols, timestamp=_now_ms())
        self.store.save(new)
        self.symbol_set = new
        log.info("Symbol set v%d: %s", new.version, symbols_summary(new.symbols))
        self.broadcast()

    def respond(self, response: dict, request_properties: pika.BasicProperties) -> None:
        body = json.dumps(response).encode()
        key = response_key(response["command"])
        if not self.broker.publish(RESPONSES_EXCHANGE, key, body, correlation_id=request_properties.correlation_id):
            log.error("Could not publish the response to %s", key)
        if request_properties.reply_to:
            self.broker.publish("", request_properties.reply_to, body,
                                correlation_id=request_properties.correlation_id)

    def broadcast(self) -> None:
        started = time.monotonic()  # the period runs from the sending, not from a confirm the broker held up
        if self.broker.publish(SYMBOLS_EXCHANGE, "", self.symbol_set.model_dump_json().encode()):
            self._last_broadcast = started

    # -- statistics --------------------------------------------------------------------------------
    def _on_worker_report(self, channel, method, properties, body: bytes) -> None:
        """Record one report; an invalid one is logged and dropped, and changes nothing."""
        try:
            self._record_report(method, properties, body)
        finally:
            self._ack(channel, method.delivery_tag)

    def _record_report(self, method, properties, body: bytes) -> None:
        try:
            report = parse_report(body)
            if method.routing_key != f"stats.{report.exchange}":
                raise ReportError(f"a report of {report.exchange} published as {printable(method.routing_key)}")
            if not self.roles.sent_by_a_worker(properties.user_id, report.exchange):
                raise ReportError(f"sent by user {printable(properties.user_id)}, not by {report.exchange}'s worker")
            self.workers.record(report, time.monotonic())
        except ReportError as e:
            log.warning("Ignoring an invalid worker report (routing key %r): %s", method.routing_key[:100], e)
        except Exception:  # noqa: BLE001 - a bug: named as one, and no report may take the controller down
            log.exception("Bug while recording a worker report (routing key %r); report dropped",
                          method.routing_key[:100])

    def print_statistics(self, final: bool = False) -> None:
        totals = self.workers.per_exchange()
        names = [e.name for e in self.config.exchanges]
        window = {ex: totals.get(ex, Counters()).minus(self._window_base.get(ex, Counters())) for ex in names}
        if final:
            window = {ex: totals.get(ex, Counters()) for ex in names}
        seconds = time.monotonic() - self._window_start
        block = format_block(seconds, window, sum(c.published for c in window.values()),
                             sum(c.publish_failed for c in window.values()))
        print(("Final statistics (totals)\n" if final else "") + block, flush=True)
        self._window_start, self._window_base = time.monotonic(), totals


def _cut(correlation_id: str | None) -> str | None:
    return None if correlation_id is None else correlation_id[:200]  # as parse_request cuts it


def _now_ms() -> int:
    return int(time.time() * 1000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="futures_scan controller: symbol set and control API")
    parser.add_argument("--config", help="config file (default: $FUTURES_SCAN_CONFIG or config/config.json)")
    args = parser.parse_args(argv)
    stop = StopSignal(log)
    try:
        config = load_config(args.config)
        setup_logging(config.logging.level, config.log_file)
        controller = Controller(config, stop)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    stop.install()
    try:
        controller.run()
    finally:
        controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
