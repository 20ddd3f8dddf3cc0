"""worker.py <exchange>: collect one exchange's perpetual-futures snapshots and publish them to RabbitMQ.

Lifecycle: load config -> connect (broker lazily, with backoff) -> load markets -> every interval:
bulk calls, one order book per symbol, publish one snapshot per symbol -> on SIGTERM/SIGINT: final
statistics, close, exit 0. Synchronous ccxt and blocking pika: the main thread owns the broker connection;
order books come from a few ccxt clients in threads sharing one throttle, because one request at a time is
bound by the round trip. One process per exchange: supervisord isolates and restarts it.
"""
from __future__ import annotations

import signal
import sys

# Until the worker's own handler is installed (importing ccxt takes a second or more), a stop is a clean
# exit: nothing has been collected yet, so there is nothing to report.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse  # noqa: E402 - after the early signal handlers, on purpose
import contextlib
import json
import logging
import os
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit

import ccxt
from pydantic import ValidationError

from common.broker import CONTROL_QUEUE, STATS_EXCHANGE, Broker, ask, declare_exchange, declare_symbols_queue
from common.config import Config, ConfigError, ExchangeEntry, load_config, load_credentials, proxy_label
from common.board import Board, BoardRow, board_routing_key
from common.exchanges import Bulk, SharedThrottle, Venue, create_exchange, venue_for
from common.logs import printable, secret_mask, setup_logging
from common.mapping import MissingValues, board_row, cut_book, interval_problem, listed_intervals
from common.mapping import snapshot as build_snapshot
from common.models import FuturesData
from common.problems import CycleProblems, Problems, describe, row_id
from common.roles import connect_as
from common.routes import Route, Routes
from common.shutdown import Shutdown, StopSignal
from common.stats import Counters, WorkerStatistics, format_block
from common.symbols import Shard, SymbolSet, routing_key

MARKETS_RELOAD_SECONDS = 15 * 60      # notice new listings without a restart
UNLISTED_RELOAD_SECONDS = 60          # sooner when a new symbol set names a symbol not listed yet
# Errors that a retry cannot fix: the request itself is wrong.
NOT_RETRYABLE = (ccxt.BadSymbol, ccxt.BadRequest, ccxt.NotSupported, ccxt.AuthenticationError,
                 ccxt.PermissionDenied, ccxt.ArgumentsRequired)


class Worker:
    def __init__(self, config: Config, entry: ExchangeEntry, routes: Routes, venue: Venue, stop: StopSignal,
                 shard: Shard = Shard()):
        self.config = config
        self.name = entry.name
        self.routes = routes  # the addresses it sends from, each with its throttle and book clients
        self.exchange = routes.routes[0].clients[0]  # holds the markets and parses; every client shares them
        self.venue = venue
        self.shard = shard
        self.book_limit = entry.depth or venue.book_limit
        count = routes.client_count
        self.pool = ThreadPoolExecutor(count, thread_name_prefix="book") if count > 1 else None
        self.stop = stop
        self.log = logging.getLogger(self.name)
        # No publisher confirms: a confirm costs a round trip and as much CPU as validating the snapshot,
        # and a snapshot lost with a dying connection is stale five seconds later anyway.
        rabbit, self.roles = connect_as(config.rabbitmq, "worker", self.name)
        self.broker = Broker(rabbit, on_connect=self._declare, confirm=False)
        self.symbol_set = SymbolSet(version=0, symbols=config.symbols)
        self.watched = frozenset(self.symbol_set.symbols)  # read by book threads: replaced, never mutated
        self.symbol_extras = venue.symbol_extras if entry.per_symbol_extras else ()
        self.board = config.collection.board and shard.publishes_board
        self.perpetuals: dict[str, dict] = {}  # symbol -> market: the board's rows
        self._problems = Problems()            # symbol -> why it was not published, to log each problem once
        self._row_problems = CycleProblems()   # bulk row -> why it was left out, likewise
        self._extra_problems = Problems()      # (extra, symbol) -> failing, to warn once until it recovers
        self.stats = WorkerStatistics(exchange=self.name, pid=os.getpid(), shard=str(shard))
        self._window_start, self._window_base = time.monotonic(), Counters()
        self._held_symbols_tag = None
        self._asking_for_set = False
        self._markets_loaded_at = 0.0
        self._funding_missing: set[str] = set()
        # From the venue's funding_intervals call (binance's fundingInfo), where the funding rows lack them:
        # None until it first answers (intervals unknown, published as null), then the last answer's.
        self.funding_hours: dict[str, float | None] | None = None
        self._funding_intervals_due = bool(venue.funding_intervals)
        self._funding_intervals_failing = False
        self._interval_problems = Problems()   # symbol -> why its funding interval cannot be read
        self._unknown_symbols_asked = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.log.info("Starting: %d symbols every %ss", len(self.symbol_set.symbols),
                      self.config.collection.interval_seconds)
        self.broker.ensure_connected()
        while not self._load_markets():
            self.wait(self.config.collection.interval_seconds)
        self._await_current_set()
        next_start = time.monotonic()
        while not self.stop.requested:
            self.collect_cycle()
            self.report_statistics_if_due()
            next_start += self.config.collection.interval_seconds
            late = time.monotonic() - next_start
            if late > 0:
                self.log.warning("Cycle overran the %ss interval by %.1fs; starting the next at once",
                                 self.config.collection.interval_seconds, late)
                next_start = time.monotonic()
            self.wait(next_start - time.monotonic())

    def _await_current_set(self, seconds: float = 3.0) -> None:
        """A shard gives the controller a moment to answer get_symbols, so that its first cycle collects the
        current set (the controller fills only the unsharded queues it knows of); without a controller the
        config's list stands until a broadcast arrives."""
        deadline = time.monotonic() + seconds
        while self.shard.count > 1 and self._asking_for_set and time.monotonic() < deadline:
            self.wait(0.05)

    def shutdown(self) -> None:
        self.print_statistics(final=True)
        self.publish_statistics(final=True)
        self.broker.close()
        self.log.info("Stopped")

    def wait(self, seconds: float) -> None:
        """Sleep while serving the broker (heartbeats, symbol sets); raise Shutdown when asked to stop."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            if self.stop.requested:
                raise Shutdown
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.broker.ensure_connected()
            self.broker.pump(min(0.2, left))

    # -- markets -----------------------------------------------------------------------------------
    def _load_markets(self, reload: bool = False) -> bool:
        loader = self.routes.bulk_route().clients[0]
        markets = self.call("markets", loader.load_markets, reload)
        if markets is None:
            return False
        self._markets_loaded_at = time.monotonic()
        for route in self.routes.routes:
            for client in route.clients:
                if client is not loader:
                    client.set_markets(loader.markets, loader.currencies)
        # The board's rows: every linear perpetual loaded (USDT-margined; USDC too where the options load it).
        self.perpetuals = {symbol: market for symbol, market in self.exchange.markets.items()
                           if market.get("swap") and market.get("linear")}
        self.log.info("Loaded %d markets", len(markets))
        # Intervals change rarely: fetched again with each market load (and each cycle while they fail).
        self._funding_intervals_due = bool(self.venue.funding_intervals)
        self._interval_problems.keep_only(lambda key: key[1] in markets)
        return True

    def _refresh_funding_intervals_if_due(self) -> None:
        """One try per cycle while due: the next cycle is the retry, so a failing call never holds a cycle
        up with the retry schedule. A failure keeps the last known intervals (None before any)."""
        if not self._funding_intervals_due:
            return
        answer = self.call("funding intervals", self.venue.funding_intervals, self.routes.bulk_route().clients[0],
                           empty_ok=True, retries=0, quiet=self._funding_intervals_failing)
        if not isinstance(answer, dict):  # None: failed (said); ccxt answers a dict by symbol
            self._funding_intervals_failed()
            return
        self.funding_hours, problems = listed_intervals(answer)
        self._funding_intervals_due = False
        self._interval_problems.keep_only(lambda key: key[0] != "fundingInfo" or key[1] in problems)
        for symbol, reason in problems.items():
            self._interval_problem(("fundingInfo", symbol), reason)
        if self._funding_intervals_failing:
            self._funding_intervals_failing = False
            self.log.info("Funding intervals fetched again")

    def _funding_intervals_failed(self) -> None:
        if not self._funding_intervals_failing:  # said once per outage, tried every cycle
            self._funding_intervals_failing = True
            if self.funding_hours is None:
                self.log.warning("Funding intervals unknown: published as null (never paired) until %s answers",
                                 self.venue.funding_intervals.__name__)
            else:
                self.log.warning("Keeping the last known funding intervals until %s answers again",
                                 self.venue.funding_intervals.__name__)

    def _refresh_markets_if_due(self) -> None:
        age = time.monotonic() - self._markets_loaded_at
        if age > MARKETS_RELOAD_SECONDS or (self._unknown_symbols_asked and age > UNLISTED_RELOAD_SECONDS):
            self._unknown_symbols_asked = False
            self._load_markets(reload=True)

    def listed_symbols(self) -> list[str]:
        """This shard's part of the current symbols that the exchange lists; the unlisted ones are reported
        in the statistics."""
        listed, unlisted = [], []
        for symbol in filter(self.shard.owns, self.symbol_set.symbols):
            (listed if symbol in self.exchange.markets else unlisted).append(symbol)
        if unlisted != self.stats.unlisted_symbols:
            for symbol in set(unlisted) - set(self.stats.unlisted_symbols):
                self.log.debug("Symbol %s not available on exchange", symbol)
            self.stats.unlisted_symbols = unlisted
        return listed

    # -- one cycle ---------------------------------------------------------------------------------
    def collect_cycle(self) -> None:
        started = time.monotonic()
        self._refresh_markets_if_due()
        self._refresh_funding_intervals_if_due()
        symbols = self.listed_symbols()
        bulk = self.fetch_bulk() if symbols or self.board else None
        if bulk is None and symbols:
            self.log.error("Skipping this cycle: no tickers")
            self.stats.totals.errors += len(symbols)
        elif bulk is not None:
            rows = self.board_rows(bulk, self._row_symbols(symbols))
            if self.board:
                self.publish_board([row for symbol, row in rows.items() if symbol in self.perpetuals])
            for symbol, book, extras in self.fetch_books(symbols):
                if symbol in self.watched:  # a set may arrive mid-cycle
                    self.publish_collected(symbol, rows.get(symbol), book, extras)
        self._row_problems.end_cycle()
        self.stats.cycles += 1
        self.stats.last_cycle_seconds = time.monotonic() - started
        self.stats.routes = self.routes.report()
        self.publish_statistics()

    def fetch_bulk(self) -> Bulk | None:
        """Every listed perpetual's tickers and funding, with as few requests as the exchange allows (the
        venue's bulk calls); None without tickers. A malformed row costs its own symbol only."""
        bulk, client = Bulk(), self.routes.bulk_route().clients[0]
        for call in self.venue.bulk_calls:
            rows = self.call(call.what, call.fetch, client)
            if not isinstance(rows, (dict, list)):
                if rows is not None:
                    self.log.error("Failed to fetch %s: the answer is a %s", call.what, type(rows).__name__)
                if call.required:
                    return None
                continue
            pairs = list(rows.items()) if isinstance(rows, dict) else [(None, row) for row in rows]
            for symbol, row in pairs:
                try:
                    call.merge(self.exchange, bulk, symbol, row)
                except Exception as e:  # noqa: BLE001 - anything an exchange sends may be malformed
                    self._row_problem(call.what, printable(symbol) if symbol else row_id(row), describe(e))
        return bulk

    def _row_symbols(self, symbols: list[str]) -> list[str]:
        """The rows a cycle needs: the watched symbols', and with the board every perpetual's. A watched dated
        future is no perpetual (not on the board) but has its row in the bulk tickers all the same."""
        if not self.board:
            return symbols
        return list(self.perpetuals) + [symbol for symbol in symbols if symbol not in self.perpetuals]

    def board_rows(self, bulk: Bulk, symbols: list[str]) -> dict[str, BoardRow]:
        """Rows by symbol from the cycle's bulk answers; a row with a malformed value is left out (its
        symbol's snapshot with it), said once."""
        rows = {}
        for symbol in symbols:
            try:
                rows[symbol] = self.board_row(symbol, bulk)
            except Exception as e:  # noqa: BLE001 - one malformed value costs its symbol, never the cycle
                if symbol in self.watched:
                    self._problem(symbol, f"malformed bulk row: {describe(e)}")
                else:
                    self._row_problem("board", printable(symbol), describe(e))
        return rows

    def board_row(self, symbol: str, bulk: Bulk) -> BoardRow:
        funding = bulk.funding.get(symbol) or {}
        problem = interval_problem(funding)
        if problem:
            self._interval_problem(("row", symbol), problem)
        elif self._interval_problems.clear(("row", symbol)):
            self.log.info("Funding interval of %s readable again", printable(symbol))
        return board_row(symbol, self.exchange.markets[symbol], bulk.tickers.get(symbol) or {}, funding,
                         self._default_hours(symbol), self.venue.next_funding_field, self.venue.open_interest)

    def _default_hours(self, symbol: str) -> float | None:
        """A symbol's funding interval where its funding row does not say it (binance: from fundingInfo,
        which lists only the symbols off the default); None while unknown, and for a dated future (no funding)."""
        if not self.exchange.markets[symbol].get("swap"):
            return None
        if not self.venue.funding_intervals:
            return self.venue.default_funding_hours
        if self.funding_hours is None:
            return None
        return self.funding_hours.get(symbol, self.venue.default_funding_hours)

    def _interval_problem(self, key: tuple[str, str], reason: str) -> None:
        """key: (where the interval came from, symbol)."""
        if self._interval_problems.note(key, reason):
            self.log.warning("Funding interval of %s published as null: %s", printable(key[1]), reason)

    def publish_board(self, rows: list[BoardRow]) -> None:
        board = Board.model_construct(exchange=self.name, timestamp=self.exchange.milliseconds(),
                                      markets=rows)  # rows are validated one by one
        if self.broker.publish(self.config.rabbitmq.exchange, board_routing_key(self.name),
                               board.model_dump_json().encode()):
            self.log.debug("Published the board: %d markets", len(rows))

    def fetch_books(self, symbols: list[str]):
        """(symbol, book or None, extras) for every symbol still watched, as they arrive. With several
        clients the books are fetched concurrently (each address's throttle keeps its budget); the broker is
        served from this thread only, between arrivals."""
        if self.pool is None:
            for symbol in symbols:
                self.broker.pump()  # keep heartbeats flowing through long cycles
                yield self.fetch_symbol(symbol)
            return
        pending = {self.pool.submit(self.fetch_symbol, symbol) for symbol in symbols}
        try:
            while pending:
                done, pending = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                if self.stop.requested:
                    raise Shutdown
                self.broker.pump()
        finally:
            for future in pending:
                future.cancel()

    def fetch_symbol(self, symbol: str) -> tuple[str, dict | None, dict]:
        """The book and the per-symbol extras of one symbol; nothing for a symbol no longer watched (a set
        that arrived mid-cycle: its budget goes to the symbols that are)."""
        if symbol not in self.watched:
            return symbol, None, {}
        book, extras = self.call(f"orderbook {symbol}", self.fetch_book_and_extras, symbol) or (None, {})
        return symbol, book, extras

    def fetch_book_and_extras(self, symbol: str) -> tuple[dict, dict]:
        """On a free client of an address with room; a proxy that cannot be reached hands the request to
        another address at once (the exchange never saw it, so it is no retry)."""
        while True:
            with self.routes.client() as (route, client):
                try:
                    book = self.fetch_book(client, symbol)
                except Exception as e:
                    if self.routes.failed(route, e):
                        continue
                    raise
                self.routes.answered(route)
                extras = {}
                for fetch_extra in self.symbol_extras:
                    extras.update(self.fetch_extra(fetch_extra, client, symbol))
                return book, extras

    def fetch_extra(self, fetch_extra, client: ccxt.Exchange, symbol: str) -> dict:
        """One try, no retries: a missing extra publishes null and never holds the snapshot back."""
        key = (fetch_extra.__name__, symbol)
        try:
            with self.stop.interruptible() if threading.current_thread() is threading.main_thread() \
                    else contextlib.nullcontext():
                extra = fetch_extra(client, symbol)
        except Exception as e:  # noqa: BLE001 - anything an exchange sends may be malformed
            if self._extra_problems.note(key, "failing"):  # every cycle until it recovers: said once
                self.log.warning("Failed to fetch %s of %s: %s (said once until it recovers)", *key, describe(e))
            return {}
        if self._extra_problems.clear(key):
            self.log.info("Fetched %s of %s again", *key)
        return extra

    def fetch_book(self, client: ccxt.Exchange, symbol: str) -> dict:
        book = cut_book(client.fetch_order_book(symbol, self.book_limit, self.venue.book_params), self.book_limit)
        if not book["bids"] or not book["asks"]:
            # ccxt parses some malformed bodies into an empty book instead of raising.
            raise ccxt.BadResponse(f"order book without {'bids' if not book['bids'] else 'asks'}")
        return book

    def publish_collected(self, symbol: str, row: BoardRow | None, book: dict | None, extras: dict) -> None:
        snapshot = None
        if book is not None and row is not None:
            try:
                self._note_funding(symbol, row.funding_rate)
                snapshot = build_snapshot(self.name, row, book, extras, self.exchange.milliseconds())
            except ValidationError as e:
                error = e.errors()[0]
                self._problem(symbol, f"invalid snapshot: {'.'.join(map(str, error['loc']))}: {error['msg']}")
            except Exception as e:  # noqa: BLE001 - one malformed value costs its symbol, never the process
                self._problem(symbol, str(e) if isinstance(e, MissingValues) else describe(e))
        if snapshot is None:
            self.stats.totals.errors += 1
            return
        if self._problems.clear(symbol):
            self.log.info("Publishing %s again", symbol)
        self.stats.totals.success += 1
        self.log.debug("Collected %s", symbol)
        self.publish_snapshot(snapshot)

    def _problem(self, symbol: str, reason: str) -> None:
        """Log why a symbol was not published, once while the reason stays the same."""
        if self._problems.note(symbol, reason):
            self.log.error("Not publishing %s: %s", symbol, reason)

    def _row_problem(self, what: str, row: str, reason: str) -> None:
        """Log a bulk row left out, once while it fails the same way."""
        if self._row_problems.note(f"{what} {row}", reason):
            self.log.warning("Leaving out a malformed %s row (%s): %s", what, row, reason)

    def _note_funding(self, symbol: str, rate) -> None:
        if not self.exchange.markets[symbol].get("swap"):
            return  # a dated future has no funding: nothing is missing
        if rate is None and symbol not in self._funding_missing:
            self._funding_missing.add(symbol)
            self.log.warning("Funding rate not available for %s", symbol)
        elif rate is not None and symbol in self._funding_missing:
            self._funding_missing.discard(symbol)
            self.log.info("Funding rate available again for %s", symbol)

    def publish_snapshot(self, snapshot: FuturesData) -> None:
        key = routing_key(self.name, snapshot.symbol)
        if self.broker.publish(self.config.rabbitmq.exchange, key, snapshot.model_dump_json().encode()):
            self.stats.totals.published += 1
            self.log.debug("Published message to %s", key)
        else:
            self.stats.totals.publish_failed += 1

    # -- requests with retries ---------------------------------------------------------------------
    def call(self, what: str, fn, *args, empty_ok: bool = False, retries: int | None = None, quiet: bool = False):
        """fn(*args), retried on the configured schedule (or `retries` times); None once the retries are spent
        (`quiet`: without an ERROR line, for a failure the caller already said and tries again each cycle).
        An empty answer counts as a failure (ccxt turns some malformed bodies into {} instead of raising),
        unless `empty_ok`: some answers are legitimately empty. Runs in the main thread (bulk calls) or a
        book thread, which must not touch the broker."""
        in_main = threading.current_thread() is threading.main_thread()
        retries = self.config.collection.retry_attempts if retries is None else retries
        for attempt in range(retries + 1):
            try:
                throttle = self.routes.bulk_route().throttle if in_main else None
                if throttle is not None and throttle.paused_for() > 0:
                    self.wait(throttle.paused_for())  # the pause of a 429/418, serving the broker
                with self.stop.interruptible() if in_main else contextlib.nullcontext():
                    result = fn(*args)
                if not result and not (empty_ok and result is not None):
                    raise ccxt.BadResponse("empty response")
                return result
            except NOT_RETRYABLE as e:
                if not quiet:
                    self.log.error("Failed to fetch %s: %s", what, describe(e))
                return None
            except Exception as e:  # noqa: BLE001 - ccxt's parsers raise plain errors on malformed bodies
                if attempt == retries:
                    say = self.log.debug if quiet else self.log.error
                    say("Failed to fetch %s: %s (giving up after %d retries)", what, describe(e), retries)
                    return None
                self.log.error("Failed to fetch %s: %s (retry %d/%d)", what, describe(e), attempt + 1, retries)
                delay = self.config.collection.retry_delay(attempt + 1)  # a Retry-After: the throttle waits it
                self.wait(delay) if in_main else self._pause(delay)
        return None

    def _pause(self, seconds: float) -> None:
        """A book thread's wait: no broker, but stops as soon as a stop is asked for."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop.requested:
                raise Shutdown
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # -- broker side -------------------------------------------------------------------------------
    def _declare(self, channel) -> None:
        shared = self.roles.separate  # declared by scripts/broker_users.py
        declare_exchange(channel, self.config.rabbitmq.exchange, "topic", passive=shared)
        declare_exchange(channel, STATS_EXCHANGE, "topic", passive=shared)
        queue = declare_symbols_queue(channel, self.name, str(self.shard), passive_exchange=shared)
        channel.basic_qos(prefetch_count=2)
        self._held_symbols_tag = None
        # Take the current set synchronously, so that the very next cycle already collects it.
        method, properties, body = channel.basic_get(queue)
        if method is None or not self._on_symbol_set(channel, method, properties, body):
            # A queue the controller never filled (a new shard's): ask it for the current set.
            ask(channel, CONTROL_QUEUE, json.dumps({"command": "get_symbols"}).encode(), self._on_current_set,
                self.broker.config.user)
            self._asking_for_set = True
        channel.basic_consume(queue, self._on_symbol_set)

    def _on_symbol_set(self, channel, method, properties, body: bytes) -> bool:
        """Adopt a set from the symbols queue; False (and the message dropped) if it is not the controller's."""
        if not self.roles.sent_by(properties.user_id, "controller"):
            # Anyone allowed to publish to the default exchange can reach this queue: only the controller's
            # sets count. Dropped, so that the one held stays, and the controller's next broadcast replaces it.
            self.log.error("Ignoring a symbol set not sent by the controller (user_id %s)",
                           printable(properties.user_id))
            channel.basic_ack(method.delivery_tag)
            return False
        try:
            update = SymbolSet.model_validate_json(body)
        except ValidationError as e:
            self.log.error("Ignoring an invalid symbol set: %s", e.errors()[0]["msg"])
            channel.basic_ack(method.delivery_tag)
            return False
        # The queue holds only the latest set and delivers in order, so the last delivery is the current set
        # (whatever its version: a controller that lost its state file starts again at v1).
        # Keep it unacknowledged: if this process dies, the broker hands it to the next one.
        if self._held_symbols_tag is not None:
            channel.basic_ack(self._held_symbols_tag)
        self._held_symbols_tag = method.delivery_tag
        self._asking_for_set = False
        self._adopt(update)
        return True

    def _on_current_set(self, properties, body: bytes) -> None:
        """The controller's answer to get_symbols; a broadcast that came first wins."""
        if not self.roles.sent_by(properties.user_id, "controller"):
            self.log.error("Ignoring an answer to get_symbols not sent by the controller (user_id %s)",
                           printable(properties.user_id))
            return
        self._asking_for_set = False
        try:
            data = json.loads(body)["data"]
            update = SymbolSet(version=data["version"], symbols=data["symbols"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            self.log.error("Ignoring an invalid answer to get_symbols: %s", describe(e))
            return
        if self._held_symbols_tag is None:
            self._adopt(update)

    def _adopt(self, update: SymbolSet) -> None:
        if update.symbols != self.symbol_set.symbols or update.version != self.symbol_set.version:
            self.log.info("Symbol set v%d: %s", update.version, ", ".join(update.symbols) or "(empty)")
            # Before the first load (a set taken at connect) the load itself will tell: no second one.
            markets = self.exchange.markets
            self._unknown_symbols_asked = bool(markets) and any(s not in markets for s in update.symbols)
        self.symbol_set = update
        self.watched = frozenset(update.symbols)
        self._forget_unwatched()
        self.stats.symbols_version = update.version

    def _forget_unwatched(self) -> None:
        """What was said about symbols no longer watched: said again if they come back."""
        watched = self.watched
        self._problems.keep_only(lambda symbol: symbol in watched)
        self._extra_problems.keep_only(lambda key: key[1] in watched)
        self._funding_missing &= watched

    def publish_statistics(self, final: bool = False) -> None:
        """This process's totals for the controller; `final` when it stops, so that they can be folded."""
        report = self.stats.to_message(final=final)
        self.broker.publish(STATS_EXCHANGE, f"stats.{self.name}", json.dumps(report).encode())

    def report_statistics_if_due(self) -> None:
        if time.monotonic() - self._window_start >= self.config.collection.statistics_interval_seconds:
            self.print_statistics()

    def print_statistics(self, final: bool = False) -> None:
        window = self.stats.totals.minus(self._window_base)
        seconds = time.monotonic() - self._window_start
        if final:
            window, seconds = self.stats.totals, time.time() - self.stats.started_at
        block = format_block(seconds, {self.name: window}, window.published, window.publish_failed,
                             self.routes.report())
        print(("Final statistics\n" if final else "") + block, flush=True)
        self._window_start, self._window_base = time.monotonic(), self.stats.totals.copy()


class ServingSleep:
    """The throttles' sleep. A hold (a clock minute's used weight, a Retry-After) can last a minute, and a
    bulk call waits it on the main thread, which alone may serve the broker: there it waits with `serve`
    (the worker's wait: heartbeats and symbol sets go on), so the broker does not drop the connection."""

    def __init__(self):
        self.serve = None

    def __call__(self, seconds: float) -> None:
        if self.serve is not None and threading.current_thread() is threading.main_thread():
            self.serve(seconds)
        else:
            time.sleep(seconds)  # a book thread: the main thread serves the broker meanwhile


def create_routes(config: Config, entry: ExchangeEntry, venue: Venue, credentials: dict,
                  sleep=time.sleep) -> Routes:
    """The addresses the worker sends from: the machine's own (unless `direct: false`) and each proxy, each
    with the published budget (the entry's share of it) in a throttle of its own (waiting with `sleep`) and
    one ccxt client per book thread sharing it."""
    log = logging.getLogger(entry.name)
    proxies = [proxy.get_secret_value() for proxy in entry.proxies]
    routes = []
    for proxy in ([None] if entry.direct else []) + proxies:
        throttle = SharedThrottle(venue.budget.share(entry.rate_share), log, sleep=sleep) if venue.budget else None
        clients = [create_exchange(entry.name, entry.api_url, entry.sandbox, entry.options, credentials,
                                   timeout_ms=int(config.collection.request_timeout_seconds * 1000),
                                   throttle=throttle, proxy=proxy)
                   for _ in range(venue.book_threads if throttle else 1)]
        routes.append(Route("direct" if proxy is None else proxy_label(proxy), clients, throttle,
                            is_proxy=proxy is not None))
    return Routes(routes, log)


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise ConfigError(f"--shard: {e}") from None


def _proxy_secrets(url: str) -> list[str]:
    """What of a proxy URL must never be logged: the URL itself and its password."""
    password = urlsplit(url).password
    return [url] + ([password, unquote(password)] if password else [])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Collect one exchange's futures snapshots into RabbitMQ")
    parser.add_argument("exchange", help="exchange name from the config, e.g. bybit")
    parser.add_argument("--config", help="config file (default: $FUTURES_SCAN_CONFIG or config/config.json)")
    parser.add_argument("--shard", default=os.environ.get("FUTURES_SCAN_SHARD", "1/1"),
                        help="INDEX/COUNT: collect only this shard's part of the symbols, e.g. 2/3 "
                             "(default: $FUTURES_SCAN_SHARD or 1/1, all of them)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        shard = _shard(args.shard)
        config = load_config(args.config)
        entry = config.exchange(args.exchange)
        credentials = load_credentials(config, args.exchange)
        secret_mask.add(*credentials.values(),
                        *(secret for proxy in entry.proxies for secret in _proxy_secrets(proxy.get_secret_value())))
        setup_logging(config.logging.level, config.log_file)
        venue = venue_for(entry.name)
        stop = StopSignal(logging.getLogger(entry.name))
        sleep = ServingSleep()
        worker = Worker(config, entry, create_routes(config, entry, venue, credentials, sleep), venue, stop, shard)
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    stop.install()
    sleep.serve = worker.wait
    try:
        worker.run()
    except Shutdown:
        pass
    finally:
        stop.requested = True
        worker.shutdown()
    # A book thread may still sit in a request (up to the request timeout); nothing it could still do
    # matters now, and waiting for it would break "stops within a few seconds".
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
