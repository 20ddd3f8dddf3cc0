"""A worker's per-symbol requests: one order book per symbol, cut to the depth asked for, and the venue's
per-symbol extras (htx's mark price), on the routes' clients; concurrently where there are several clients.
The broker stays the main thread's: `serve` (heartbeats, symbol sets) runs there between arrivals."""
from __future__ import annotations

import contextlib
import logging
import threading
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import ccxt

from common.mapping import cut_book
from common.problems import Problems, describe
from common.routes import Routes
from common.shutdown import Shutdown, StopSignal


def fetch_book(client: ccxt.Exchange, symbol: str, limit: int, params: dict) -> dict:
    book = cut_book(client.fetch_order_book(symbol, limit, params), limit)
    if not book["bids"] or not book["asks"]:
        # ccxt parses some malformed bodies into an empty book instead of raising.
        raise ccxt.BadResponse(f"order book without {'bids' if not book['bids'] else 'asks'}")
    return book


class SymbolExtras:
    """The venue's per-symbol extra calls: one try each, no retries: a missing extra publishes null and never
    holds the snapshot back. A failing extra is said once until it recovers."""

    def __init__(self, fetchers, stop: StopSignal, log: logging.Logger):
        self.fetchers = fetchers
        self.stop = stop
        self.log = log
        self._problems = Problems()   # (extra, symbol) -> failing

    def fetch(self, client: ccxt.Exchange, symbol: str) -> dict:
        extras = {}
        for fetch_extra in self.fetchers:
            extras.update(self._fetch_one(fetch_extra, client, symbol))
        return extras

    def _fetch_one(self, fetch_extra, client: ccxt.Exchange, symbol: str) -> dict:
        key = (fetch_extra.__name__, symbol)
        try:
            with self.stop.interruptible() if threading.current_thread() is threading.main_thread() \
                    else contextlib.nullcontext():
                extra = fetch_extra(client, symbol)
        except Exception as e:  # noqa: BLE001 - anything an exchange sends may be malformed
            if self._problems.note(key, "failing"):  # every cycle until it recovers: said once
                self.log.warning("Failed to fetch %s of %s: %s (said once until it recovers)", *key, describe(e))
            return {}
        if self._problems.clear(key):
            self.log.info("Fetched %s of %s again", *key)
        return extra

    def keep_only(self, watched: frozenset[str]) -> None:
        """Forget the symbols no longer watched: said again if they come back."""
        self._problems.keep_only(lambda key: key[1] in watched)


class BookFetcher:
    """`call`: the worker's retrying call; `watched()`: the symbols watched now (a set may arrive mid-cycle);
    `serve()`: serve the broker a moment, from the main thread."""

    def __init__(self, routes: Routes, extras: SymbolExtras, limit: int, params: dict, call,
                 watched: Callable[[], frozenset[str]], serve: Callable[[], None], stop: StopSignal):
        self.routes = routes
        self.extras = extras
        self.limit = limit
        self.params = params
        self.call = call
        self.watched = watched
        self.serve = serve
        self.stop = stop
        count = routes.client_count
        self.pool = ThreadPoolExecutor(count, thread_name_prefix="book") if count > 1 else None

    def fetch_all(self, symbols: list[str]):
        """(symbol, book or None, extras) for every symbol still watched, as they arrive. With several
        clients the books are fetched concurrently (each address's throttle keeps its budget); the broker is
        served from this thread only, between arrivals."""
        if self.pool is None:
            for symbol in symbols:
                self.serve()  # keep heartbeats flowing through long cycles
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
                self.serve()
        finally:
            for future in pending:
                future.cancel()

    def fetch_symbol(self, symbol: str) -> tuple[str, dict | None, dict]:
        """The book and the per-symbol extras of one symbol; nothing for a symbol no longer watched (a set
        that arrived mid-cycle: its budget goes to the symbols that are)."""
        if symbol not in self.watched():
            return symbol, None, {}
        book, extras = self.call(f"orderbook {symbol}", self._book_and_extras, symbol) or (None, {})
        return symbol, book, extras

    def _book_and_extras(self, symbol: str) -> tuple[dict, dict]:
        """On a free client of an address with room; a proxy that cannot be reached hands the request to
        another address at once (the exchange never saw it, so it is no retry)."""
        while True:
            with self.routes.client() as (route, client):
                try:
                    book = fetch_book(client, symbol, self.limit, self.params)
                except Exception as e:
                    if self.routes.failed(route, e):
                        continue
                    raise
                self.routes.answered(route)
                return book, self.extras.fetch(client, symbol)
