"""What the scanner holds (docs/reference.md, "The scanner"): the latest values per (exchange, symbol), within
stated bounds, and its rate-limited warnings. No broker and no clock here: callers pass the times.

Bounds, so that no producer can grow the scanner without limit (a worker gone wrong, or any user where all
roles share one user):
* per exchange, MAX_HELD_ROWS board rows and MAX_HELD_SNAPSHOTS snapshots: past them, that exchange's
  oldest are dropped (a real exchange lists ~600 perpetuals; the watched set is at most 1000 symbols);
* MAX_EXCHANGES exchanges: a message of one more is refused until one goes away;
* an exchange that has sent nothing for the forget time (the caller's cutoff, an hour in scanner.py) is
  forgotten whole: its values, its times, its counters.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from common.board import MAX_BOARD_ROWS
from common.messages import Malformed
from common.scan import Book, Leg, Source, asset_of, merge_leg

MAX_HELD_ROWS = 2 * MAX_BOARD_ROWS  # one board's rows and, for the forget time, the rows it dropped
MAX_HELD_SNAPSHOTS = 2000           # per exchange: twice the largest watched set (1000 symbols)
MAX_EXCHANGES = 64                  # every venue ccxt knows is ~100; the product runs a handful
LOG_EVERY_SECONDS = 10              # at most one line per kind of warning in this time

Key = tuple[str, str]  # (exchange, symbol)


class LatestValues:
    """The newest board row, snapshot values and book per (exchange, symbol). Written by the consumer
    thread, read by the web server's: every access holds the lock, and the values themselves are immutable."""

    def __init__(self):
        self._lock = threading.Lock()
        self._boards: dict[Key, Source] = {}
        self._snapshots: dict[Key, tuple[Source, Book]] = {}
        # "BTC" -> {(exchange, symbol)} of every quote: at most one entry per key held, so bounded as they are.
        self._by_asset: dict[str, set[Key]] = {}
        self._exchange_times: dict[str, dict[str, int]] = {}  # exchange -> {"board"/"snapshot": newest ms}
        self._held: Counter = Counter()  # ("board" or "snapshot", exchange) -> how many it holds

    def put_board(self, exchange: str, timestamp: int, sources: dict[str, Source]) -> None:
        with self._lock:
            self._note_time(exchange, "board", timestamp)
            for symbol, source in sources.items():
                held = self._boards.get((exchange, symbol))
                if held is None:
                    self._add((exchange, symbol), "board")
                if held is None or held.timestamp <= source.timestamp:  # out-of-order delivery keeps the newer
                    self._boards[(exchange, symbol)] = source
            self._keep_newest(self._boards, "board", exchange, MAX_HELD_ROWS, lambda s: s.timestamp)

    def put_snapshot(self, exchange: str, symbol: str, source: Source, book: Book) -> None:
        with self._lock:
            self._note_time(exchange, "snapshot", source.timestamp)
            held = self._snapshots.get((exchange, symbol))
            if held is None:
                self._add((exchange, symbol), "snapshot")
            if held is None or held[0].timestamp <= source.timestamp:
                self._snapshots[(exchange, symbol)] = (source, book)
            self._keep_newest(self._snapshots, "snapshot", exchange, MAX_HELD_SNAPSHOTS, lambda s: s[0].timestamp)

    def _note_time(self, exchange: str, kind: str, timestamp: int) -> None:
        if exchange not in self._exchange_times and len(self._exchange_times) >= MAX_EXCHANGES:
            raise Malformed(f"already {MAX_EXCHANGES} exchanges held: {exchange[:40]} refused until one goes away")
        times = self._exchange_times.setdefault(exchange, {})
        times[kind] = max(timestamp, times.get(kind, timestamp))

    def _add(self, key: Key, kind: str) -> None:
        self._held[(kind, key[0])] += 1
        self._by_asset.setdefault(_asset_key(key), set()).add(key)

    def _keep_newest(self, store: dict, kind: str, exchange: str, limit: int, stamp) -> None:
        """Past `limit` of one exchange's entries, its oldest go (a scan of the store: it never happens with
        a sane producer, and then once per message that overflows)."""
        over = self._held[(kind, exchange)] - limit
        if over <= 0:
            return
        mine = sorted((stamp(value), key) for key, value in store.items() if key[0] == exchange)
        self._drop(store, kind, [key for _, key in mine[:over]])

    def _drop(self, store: dict, kind: str, keys) -> None:
        for key in keys:
            del store[key]
            self._held[(kind, key[0])] -= 1
            if key not in self._boards and key not in self._snapshots:  # gone from both: unindex it
                asset = _asset_key(key)
                self._by_asset[asset].discard(key)
                if not self._by_asset[asset]:
                    del self._by_asset[asset]

    def exchange_times(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {exchange: dict(times) for exchange, times in self._exchange_times.items()}

    def legs_by_symbol(self, now_ms: int, stale_after_ms: float, asset: str | None = None) -> dict[str, list[Leg]]:
        """symbol -> its legs; only the symbols of one base asset ("BTC": BTC/USDT:USDT, BTC/USDC:USDC, ...) when
        `asset` is given."""
        with self._lock:
            if asset is None:
                keys = self._boards.keys() | self._snapshots.keys()
            else:
                keys = set(self._by_asset.get(asset.upper(), ()))
            held = [(key, self._boards.get(key), self._snapshots.get(key, (None, None))) for key in keys]
        out: dict[str, list[Leg]] = {}
        for (exchange, symbol), board, (source, book) in held:
            leg = merge_leg(exchange, symbol, board, source, book, now_ms, stale_after_ms)
            out.setdefault(symbol, []).append(leg)
        return out

    def forget_older_than(self, cutoff_ms: int) -> tuple[int, list[str]]:
        """Drop the values older than the cutoff, and the exchanges that have sent nothing since: (how many
        values, which exchanges)."""
        with self._lock:
            old_boards = [k for k, s in self._boards.items() if s.timestamp < cutoff_ms]
            old_snapshots = [k for k, (s, _) in self._snapshots.items() if s.timestamp < cutoff_ms]
            self._drop(self._boards, "board", old_boards)
            self._drop(self._snapshots, "snapshot", old_snapshots)
            gone = sorted(e for e, times in self._exchange_times.items() if max(times.values()) < cutoff_ms)
            for exchange in gone:
                del self._exchange_times[exchange]
                for kind in ("board", "snapshot"):
                    self._held.pop((kind, exchange), None)  # 0 by now: every value of it was older
        return len(old_boards) + len(old_snapshots), gone

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._boards), len(self._snapshots)


def _asset_key(key: Key) -> str:
    """(exchange, symbol) -> the symbol's base asset in upper case, as /api/symbol/X asks for it."""
    return asset_of(key[1])


class RateLimitedLog:
    """At most one line per kind every `seconds`, then how many were held back: a producer gone wrong can
    cause thousands a second (tracebacks included), and the log must stay readable and small. Kinds are
    fixed strings and exception type names, a set the code bounds."""

    def __init__(self, logger: logging.Logger, seconds: float = LOG_EVERY_SECONDS, clock=time.monotonic):
        self.logger, self.seconds, self.clock = logger, seconds, clock
        self._last: dict[str, float] = {}
        self._held_back: Counter = Counter()

    def log(self, level: int, kind: str, message: str, *args, exc_info=None) -> bool:
        """Whether it was written (False: counted, to be said with the next line of its kind)."""
        now = self.clock()
        if kind in self._last and now - self._last[kind] < self.seconds:
            self._held_back[kind] += 1
            return False
        more = self._held_back.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({more} more like it since the last such line)" if more else ""
        self.logger.log(level, message + suffix, *args, exc_info=exc_info)
        return True

    def warning(self, kind: str, message: str, *args) -> bool:
        return self.log(logging.WARNING, kind, message, *args)
