"""worker.py <exchange>: collect one exchange's perpetual-futures snapshots and publish them to RabbitMQ.

Lifecycle: load config -> connect (broker lazily, with backoff) -> load markets -> every interval:
bulk calls, one order book per symbol, publish one snapshot per symbol -> on SIGTERM/SIGINT: final
statistics, close, exit 0. Synchronous ccxt and blocking pika: the main thread owns the broker connection;
order books come from a few ccxt clients in threads sharing one throttle, because one request at a time is
bound by the round trip. One process per exchange: supervisord isolates and restarts it.
The Worker orchestrates; its parts live in common/: subscription.py (the symbol set the controller sends),
books.py (books and per-symbol extras), funding.py (intervals and missing rates), retries.py (the retry
schedule), statistics_window.py (the printed statistics' window).
"""
from __future__ import annotations

import signal
import sys

# Until the worker's own handler is installed (importing ccxt takes a second or more), a stop is a clean
# exit: nothing has been collected yet, so there is nothing to report.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse  # noqa: E402 - after the early signal handlers, on purpose
import json
import logging
import os
import sqlite3
import threading
import time
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from common.broker import STATS_EXCHANGE, Broker, declare_exchange, declare_symbols_queue
from common.config import Config, ConfigError, ExchangeEntry, load_config, load_credentials, proxy_label
from common.board import Board, BoardRow, board_routing_key
from common.books import BookFetcher, SymbolExtras
from common.exchanges import Bulk, SharedThrottle, Venue, create_exchange, venue_for
from common.funding import FundingIntervals, MissingRates
from common.logs import printable, secret_mask, setup_logging
from common.mapping import MissingValues, board_row
from common.mapping import snapshot as build_snapshot
from common.models import FuturesData
from common.problems import CycleProblems, Problems, describe, row_id
from common.retries import Retrying
from common.roles import connect_as
from common.routes import Route, Routes
from common.between_cycles import BetweenCycles, ChainedThrottle, share_budget
from common.open_interest import ROTATION_SHARE, OpenInterestRotation
from common.settled import SettledFeed, SettledSchedule, held_in_database
from common.shutdown import Shutdown, StopSignal
from common.statistics_window import StatisticsWindow
from common.stats import WorkerStatistics, format_block
from common.subscription import SymbolSubscription
from common.symbols import Shard, SymbolSet, routing_key

MARKETS_RELOAD_SECONDS = 15 * 60      # notice new listings without a restart
UNLISTED_RELOAD_SECONDS = 60          # sooner when a new symbol set names a symbol not listed yet


class Worker:
    def __init__(self, config: Config, entry: ExchangeEntry, routes: Routes, venue: Venue, stop: StopSignal,
                 shard: Shard = Shard(), settled: SettledFeed | None = None,
                 rotation: OpenInterestRotation | None = None):
        self.config = config
        self.name = entry.name
        self.routes = routes  # the addresses it sends from, each with its throttle and book clients
        self.exchange = routes.routes[0].clients[0]  # holds the markets and parses; every client shares them
        self.venue = venue
        self.shard = shard
        self.stop = stop
        self.log = logging.getLogger(self.name)
        # No publisher confirms: a confirm costs a round trip and as much CPU as validating the snapshot,
        # and a snapshot lost with a dying connection is stale five seconds later anyway.
        rabbit, self.roles = connect_as(config.rabbitmq, "worker", self.name)
        self.broker = Broker(rabbit, on_connect=self._declare, confirm=False)
        self.symbols = SymbolSubscription(self.roles, self.log, SymbolSet(version=0, symbols=config.symbols),
                                          self._adopted)
        self.call = Retrying(config.collection, routes, stop, self.wait, self.log)
        self.extras = SymbolExtras(venue.symbol_extras if entry.per_symbol_extras else (), stop, self.log)
        self.books = BookFetcher(routes, self.extras, entry.depth or venue.book_limit, venue.book_params, self.call,
                                 lambda: self.symbols.watched, self.broker.pump, stop)
        self.board = config.collection.board and shard.publishes_board
        # The whole market's settled funding and rotated open interest: fetched by the shard that publishes the
        # board, between cycles (set from the cycle's last book to the next cycle's start).
        self.settled = settled if self.board else None
        self.rotation = rotation if self.board else None
        if settled and not config.collection.board:
            self.log.warning("history.enabled but collection.board is false: settled funding follows the board's "
                             "rows, so none is fetched")
        self.idle = threading.Event()
        self.between_cycles = [BetweenCycles(name, part.step, self.idle, stop)
                               for name, part in (("settled", self.settled), ("open-interest", self.rotation)) if part]
        self.perpetuals: dict[str, dict] = {}  # symbol -> market: the board's rows
        self._problems = Problems()            # symbol -> why it was not published, to log each problem once
        self._row_problems = CycleProblems()   # bulk row -> why it was left out, likewise
        self.funding = FundingIntervals(venue, self.log)
        self.missing_rates = MissingRates(self.log)
        self.stats = WorkerStatistics(exchange=self.name, pid=os.getpid(), shard=str(shard))
        self.window = StatisticsWindow(config.collection.statistics_interval_seconds)
        self._markets_loaded_at = 0.0
        self._unknown_symbols_asked = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.log.info("Starting: %d symbols every %ss", len(self.symbols.current.symbols),
                      self.config.collection.interval_seconds)
        self.broker.ensure_connected()
        while not self._load_markets():
            self.wait(self.config.collection.interval_seconds)
        self._await_current_set()
        for thread in self.between_cycles:
            thread.start()
        next_start = time.monotonic()
        while not self.stop.requested:
            self.collect_cycle()
            if self.window.due():
                self.print_statistics()
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
        while self.shard.count > 1 and self.symbols.asking and time.monotonic() < deadline:
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
        for part in filter(None, (self.settled, self.rotation)):
            part.client.set_markets(loader.markets, loader.currencies)
        self.log.info("Loaded %d markets", len(markets))
        self.funding.markets_loaded(markets)
        return True

    def _refresh_funding_intervals_if_due(self) -> None:
        """One try per cycle while due: the next cycle is the retry, so a failing call never holds a cycle
        up with the retry schedule. A failure keeps the last known intervals (None before any)."""
        if self.funding.due:
            self.funding.answered(self.call("funding intervals", self.venue.funding_intervals,
                                            self.routes.bulk_route().clients[0], empty_ok=True, retries=0,
                                            quiet=self.funding.failing))

    def _refresh_markets_if_due(self) -> None:
        age = time.monotonic() - self._markets_loaded_at
        if age > MARKETS_RELOAD_SECONDS or (self._unknown_symbols_asked and age > UNLISTED_RELOAD_SECONDS):
            self._unknown_symbols_asked = False
            self._load_markets(reload=True)

    def listed_symbols(self) -> list[str]:
        """This shard's part of the current symbols that the exchange lists; the unlisted ones are reported
        in the statistics."""
        listed, unlisted = [], []
        for symbol in filter(self.shard.owns, self.symbols.current.symbols):
            (listed if symbol in self.exchange.markets else unlisted).append(symbol)
        if unlisted != self.stats.unlisted_symbols:
            for symbol in set(unlisted) - set(self.stats.unlisted_symbols):
                self.log.debug("Symbol %s not available on exchange", symbol)
            self.stats.unlisted_symbols = unlisted
        return listed

    # -- one cycle ---------------------------------------------------------------------------------
    def collect_cycle(self) -> None:
        started = time.monotonic()
        self.idle.clear()  # what waits for the books waits while this cycle's requests go out
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
            if self.settled:
                self.settled.schedule.update({symbol: (row.next_funding_time, row.funding_interval_hours)
                                              for symbol, row in rows.items() if symbol in self.perpetuals},
                                             first=self.symbols.watched)
            if self.rotation:
                self.rotation.update(self.perpetuals)
            for symbol, book, extras in self.books.fetch_all(symbols):
                if symbol in self.symbols.watched:  # a set may arrive mid-cycle
                    self.publish_collected(symbol, rows.get(symbol), book, extras)
        if self.settled:
            self.publish_settled()
        self.idle.set()
        self._row_problems.end_cycle()
        self.stats.cycles += 1
        self.stats.last_cycle_seconds = time.monotonic() - started
        self.stats.routes = self.routes.report()
        if self.rotation:
            age = self.rotation.worst_age_ms(self.exchange.milliseconds())
            self.stats.open_interest_age_seconds = None if age is None else max(0.0, age / 1000)
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
                if symbol in self.symbols.watched:
                    self._problem(symbol, f"malformed bulk row: {describe(e)}")
                else:
                    self._row_problem("board", printable(symbol), describe(e))
        return rows

    def board_row(self, symbol: str, bulk: Bulk) -> BoardRow:
        funding = bulk.funding.get(symbol) or {}
        self.funding.check_row(symbol, funding)
        market = self.exchange.markets[symbol]
        return board_row(symbol, market, bulk.tickers.get(symbol) or {}, funding,
                         self.funding.default_hours(symbol, market), self.venue.next_funding_field,
                         self.venue.open_interest, self.venue.base_volume_field, self.venue.impact_prices,
                         self.rotation.latest(symbol) if self.rotation else None)

    def publish_board(self, rows: list[BoardRow]) -> None:
        board = Board.model_construct(exchange=self.name, timestamp=self.exchange.milliseconds(),
                                      markets=rows)  # rows are validated one by one
        if self.broker.publish(self.config.rabbitmq.exchange, board_routing_key(self.name),
                               board.model_dump_json().encode()):
            self.log.debug("Published the board: %d markets", len(rows))

    def publish_collected(self, symbol: str, row: BoardRow | None, book: dict | None, extras: dict) -> None:
        snapshot = None
        if book is not None and row is not None:
            try:
                self.missing_rates.note(symbol, self.exchange.markets[symbol], row.funding_rate)
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

    def publish_settled(self) -> None:
        """What the history thread fetched since the last cycle, as funding.{exchange} messages (SPEC 14)."""
        for message in self.settled.take(self.name, self.exchange.milliseconds()):
            if self.broker.publish(self.config.rabbitmq.exchange, f"funding.{self.name}", json.dumps(message).encode()):
                self.log.debug("Published %d settlements", len(message["settlements"]))
        self.stats.history = self.settled.schedule.progress()

    def _problem(self, symbol: str, reason: str) -> None:
        """Log why a symbol was not published, once while the reason stays the same."""
        if self._problems.note(symbol, reason):
            self.log.error("Not publishing %s: %s", symbol, reason)

    def _row_problem(self, what: str, row: str, reason: str) -> None:
        """Log a bulk row left out, once while it fails the same way."""
        if self._row_problems.note(f"{what} {row}", reason):
            self.log.warning("Leaving out a malformed %s row (%s): %s", what, row, reason)

    def publish_snapshot(self, snapshot: FuturesData) -> None:
        key = routing_key(self.name, snapshot.symbol)
        if self.broker.publish(self.config.rabbitmq.exchange, key, snapshot.model_dump_json().encode()):
            self.stats.totals.published += 1
            self.log.debug("Published message to %s", key)
        else:
            self.stats.totals.publish_failed += 1

    # -- broker side -------------------------------------------------------------------------------
    def _declare(self, channel) -> None:
        shared = self.roles.separate  # declared by scripts/broker_users.py
        declare_exchange(channel, self.config.rabbitmq.exchange, "topic", passive=shared)
        declare_exchange(channel, STATS_EXCHANGE, "topic", passive=shared)
        queue = declare_symbols_queue(channel, self.name, str(self.shard), passive_exchange=shared)
        channel.basic_qos(prefetch_count=2)
        self.symbols.start(channel, queue, self.broker.config.user)

    def _adopted(self, update: SymbolSet, changed: bool) -> None:
        if changed:
            # Before the first load (a set taken at connect) the load itself will tell: no second one.
            markets = self.exchange.markets
            self._unknown_symbols_asked = bool(markets) and any(s not in markets for s in update.symbols)
        self._forget_unwatched()
        self.stats.symbols_version = update.version

    def _forget_unwatched(self) -> None:
        """What was said about symbols no longer watched: said again if they come back."""
        watched = self.symbols.watched
        self._problems.keep_only(lambda symbol: symbol in watched)
        self.extras.keep_only(watched)
        self.missing_rates.keep_only(watched)

    # -- statistics --------------------------------------------------------------------------------
    def publish_statistics(self, final: bool = False) -> None:
        """This process's totals for the controller; `final` when it stops, so that they can be folded."""
        report = self.stats.to_message(final=final)
        self.broker.publish(STATS_EXCHANGE, f"stats.{self.name}", json.dumps(report).encode())

    def print_statistics(self, final: bool = False) -> None:
        window, seconds = self.window.take(self.stats, final)
        block = format_block(seconds, {self.name: window}, window.published, window.publish_failed,
                             self.routes.report())
        print(("Final statistics\n" if final else "") + block, flush=True)


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


def between_cycles_client(config: Config, entry: ExchangeEntry, venue: Venue, routes: Routes, credentials: dict,
                          share: float, own_limit: tuple[float, float] | None = None):
    """A client of its own for requests between cycles, on the worker's first address, keeping to `share` of the
    budget (and an endpoint's own limit) inside the worker's throttle (common/between_cycles.py)."""
    route = routes.routes[0]
    log = logging.getLogger(entry.name)
    budgets = share_budget(route.throttle.budget, share, own_limit)
    throttle = ChainedThrottle([SharedThrottle(budget, log) for budget in budgets], route.throttle)
    return create_exchange(entry.name, entry.api_url, entry.sandbox, entry.options, credentials,
                           timeout_ms=int(config.collection.request_timeout_seconds * 1000), throttle=throttle,
                           proxy=None if entry.direct else entry.proxies[0].get_secret_value())


def create_settled_feed(config: Config, entry: ExchangeEntry, venue: Venue, routes: Routes,
                        credentials: dict) -> SettledFeed | None:
    """The settled funding's fetcher (SPEC 14), within history.rate_share of the budget."""
    if not config.history.enabled or venue.settled is None or venue.budget is None:
        return None
    client = between_cycles_client(config, entry, venue, routes, credentials, config.history.rate_share,
                                   venue.settled.own_limit)
    log = logging.getLogger(entry.name)
    schedule = SettledSchedule(config.history.backfill_days, config.history.settle_delay_seconds)
    database = config.path(config.history.database)
    try:
        held = held_in_database(database, entry.name)
    except sqlite3.Error as e:  # a database being created, or not ours: backfill again, nothing is doubled
        log.warning("Cannot read what %s holds (%s): backfilling every perpetual again", database, e)
        held = {}
    if held:
        log.info("Settled funding: %d perpetuals already backfilled in %s, resuming from there", len(held), database)
        schedule.resume(held)
    return SettledFeed(client, venue.settled, schedule, log)


def create_rotation(config: Config, entry: ExchangeEntry, venue: Venue, routes: Routes,
                    credentials: dict) -> OpenInterestRotation | None:
    """Open interest per symbol where no bulk call carries it (Binance), within ROTATION_SHARE of the budget."""
    if not config.collection.open_interest_rotation or venue.rotating_open_interest is None or venue.budget is None:
        return None
    client = between_cycles_client(config, entry, venue, routes, credentials, ROTATION_SHARE)
    return OpenInterestRotation(client, venue.rotating_open_interest, logging.getLogger(entry.name))


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
        routes = create_routes(config, entry, venue, credentials, sleep)
        worker = Worker(config, entry, routes, venue, stop, shard,
                        create_settled_feed(config, entry, venue, routes, credentials),
                        create_rotation(config, entry, venue, routes, credentials))
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
