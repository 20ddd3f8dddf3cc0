"""Settled funding from an exchange (SPEC 14): how each exchange's history pages, and one symbol's settlements
fetched through ccxt's fetch_funding_rate_history, page by page, oldest first.

ccxt's own `paginate` stops short on several exchanges (bitget at the newest 1000, okx and htx at one page),
so the pages are walked here, the same way everywhere: the newest page first, each next one older than the
oldest settlement seen, until the window's start (or the listing) is reached. An exchange that can only page
forward (from `since`, oldest first) walks from the start instead.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from common.logs import printable
from common.problems import describe

if TYPE_CHECKING:
    import ccxt

HOUR_MS = 3_600_000
# More pages than any 30-day backfill needs (720 hourly settlements at 50 a page is 15): a loop that does
# not advance (an exchange ignoring the paging parameter) ends here, said as an error.
MAX_PAGES = 64


class PagingError(ValueError):
    """An exchange's history answer that cannot be paged through (it stopped advancing, or it is malformed)."""


@dataclass(frozen=True)
class SettledPaging:
    """How one exchange's settled funding history pages through ccxt's fetch_funding_rate_history.

    `page_size`: the `limit` sent, the most settlements one answer holds. `forward`: the answer starts at
    `since`, oldest first (the next page's since is the newest seen + 1). Otherwise the answer holds the
    newest settlements before a bound, and `older_than(before_ms, page)` gives the params of a page of those
    older than `before_ms` (now + 1 for the first page) or, where the exchange pages by number, of page
    number `page` (1, 2, ...)."""
    page_size: int
    forward: bool = False
    older_than: Callable[[int, int], dict] | None = None
    # Where the exchange counts the history endpoint apart from the budget the worker keeps (Binance: 500
    # per 5 minutes per IP, shared with fundingInfo): (limit, window seconds).
    own_limit: tuple[float, float] | None = None
    # The weight of the fullest page as the throttle charges it (Hyperliquid's grows with its items): the
    # worker's share of the budget must hold it (common/config.py checks).
    heaviest: float = 1.0


def fetch_settled(client: ccxt.Exchange, paging: SettledPaging, symbol: str, since_ms: int,
                  now_ms: int) -> list[dict]:
    """Every settlement of `symbol` with funding_time in [since_ms, now_ms], oldest first, as ccxt parses
    them ({"timestamp", "fundingRate", ...}). Raises ccxt's errors, or PagingError."""
    pages = _forward if paging.forward else _backward
    seen: dict[int, dict] = {}
    for page in pages(client, paging, symbol, since_ms, now_ms):
        for entry in page:
            ts = entry.get("timestamp") if isinstance(entry, dict) else None
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise PagingError(f"{symbol}: a settlement without a timestamp: {entry!r:.80}")
            if since_ms <= ts <= now_ms:
                seen[ts] = entry
    return [seen[ts] for ts in sorted(seen)]


def _forward(client, paging: SettledPaging, symbol: str, since_ms: int, now_ms: int):
    cursor = since_ms
    for _ in range(MAX_PAGES):
        # `until` bounds the answer (ccxt: endTime) and so its size: Hyperliquid weighs a page by it.
        page = _page(client, symbol, cursor, paging.page_size, {"until": now_ms})
        yield page
        newest = max((e["timestamp"] for e in page if isinstance(e, dict) and isinstance(e.get("timestamp"), int)),
                     default=None)
        if newest is None or len(page) < paging.page_size or newest >= now_ms:
            return
        if newest < cursor:
            raise PagingError(f"{symbol}: the history page from {cursor} went back to {newest}")
        cursor = newest + 1
    raise PagingError(f"{symbol}: more than {MAX_PAGES} pages of history")


def _backward(client, paging: SettledPaging, symbol: str, since_ms: int, now_ms: int):
    oldest = now_ms + 1
    for number in range(1, MAX_PAGES + 1):
        page = _page(client, symbol, since_ms, paging.page_size, paging.older_than(oldest, number))
        yield page
        times = [e["timestamp"] for e in page if isinstance(e, dict) and isinstance(e.get("timestamp"), int)]
        if not times or len(page) < paging.page_size or min(times) <= since_ms:
            return
        if min(times) >= oldest:
            raise PagingError(f"{symbol}: the history page before {oldest} did not go back")
        oldest = min(times)
    raise PagingError(f"{symbol}: more than {MAX_PAGES} pages of history")


def _page(client, symbol: str, since: int, limit: int, params: dict) -> list:
    page = client.fetch_funding_rate_history(symbol, since, limit, params)
    if not isinstance(page, list):
        raise PagingError(f"{symbol}: the history answer is a {type(page).__name__}, not a list")
    return page


def settlements_of(entries: list[dict], previous_ms: int | None, default_hours: float | None) -> list[dict]:
    """Our settlements from ccxt's entries (oldest first): {"funding_time", "rate", "interval_hours"}, the
    interval being the time since the settlement before (the period it paid for), the first one's since
    `previous_ms` (the newest already held), else `default_hours` (its schedule's). An entry with a malformed
    rate raises ValueError naming it."""
    out = []
    for entry in entries:
        ts, rate = entry["timestamp"], entry.get("fundingRate")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != rate or abs(rate) > 1:
            raise ValueError(f"settlement at {ts}: rate {rate!r:.40} is not a number in [-1, 1]")
        hours = (ts - previous_ms) / HOUR_MS if previous_ms is not None else default_hours
        out.append({"funding_time": ts, "rate": float(rate), "interval_hours": hours})
        previous_ms = ts
    return out


# -- which symbol's history next -----------------------------------------------------------------------
# A symbol whose new settlement is not there yet, or whose fetch failed, is asked again after 1, 2, 4...
# minutes, at most every 15.
RETRY_FIRST_MS, RETRY_MAX_MS = 60_000, 15 * 60_000
# The backfill asks for this much before its window, so that the window's first settlement has the one
# before it and with it the interval it paid for (the longest schedule: 8 h).
LEAD_MS = 8 * HOUR_MS


@dataclass
class SymbolHistory:
    newest: int | None = None        # the newest funding time published (ms)
    oldest: int | None = None        # the oldest
    backfilled_from: int | None = None  # set once the backfill is done: every settlement since is published
    # The earliest funding time the board announced that is newer than the newest held: once it has passed,
    # its settlement is due (the board has moved on to the next one by then).
    awaited: int | None = None
    retry_at: int = 0                # not before (ms): after a failure or an answer with nothing new
    failures: int = 0


class SettledSchedule:
    """Which perpetual's settled funding to fetch next, and what has been fetched: every listed perpetual is
    backfilled from `backfill_days` ago (the watched ones first), then asked again after each of its funding
    times. Thread-safe: the fetching thread takes jobs, the main thread updates the market."""

    def __init__(self, backfill_days: float, settle_delay_seconds: float = 30):
        self.backfill_ms = int(backfill_days * 24 * HOUR_MS)
        self.settle_delay_ms = int(settle_delay_seconds * 1000)  # after a funding time, before asking
        self.symbols: dict[str, SymbolHistory] = {}
        self.interval_hours: dict[str, float | None] = {}
        self.first: set[str] = set()                     # backfilled before the others
        self.fetches = self.settlements = 0
        self._lock = threading.Lock()

    def update(self, rows: dict[str, tuple[int | None, float | None]], first=()) -> None:
        """The listed perpetuals with (next funding time, interval hours); a delisted one is forgotten (a
        symbol resumed from the database but no longer listed too)."""
        with self._lock:
            for symbol in list(self.symbols):
                if symbol not in rows:
                    del self.symbols[symbol]
            for symbol, (next_funding, _) in rows.items():
                held = self.symbols.setdefault(symbol, SymbolHistory())
                if next_funding is not None and (held.newest is None or next_funding > held.newest):
                    held.awaited = next_funding if held.awaited is None else min(held.awaited, next_funding)
            self.interval_hours = {symbol: row[1] for symbol, row in rows.items()}
            self.first = set(first)

    def resume(self, held: dict[str, tuple[int, int | None, float | None]]) -> None:
        """Start from what the database holds: symbol -> (complete from, newest funding time, its interval).
        A symbol held is backfilled already; its next settlement is due one interval after the newest, at
        once when that has passed (the settlements missed while no worker ran)."""
        with self._lock:
            for symbol, (complete_from, newest, hours) in held.items():
                due = None if newest is None else newest + int(hours * HOUR_MS) if hours else newest + 1
                self.symbols[symbol] = SymbolHistory(newest=newest, backfilled_from=complete_from, awaited=due)

    def next_job(self, now_ms: int) -> tuple[str, int] | None:
        """(symbol, since ms) of the fetch due now, backfills before updates, or None."""
        with self._lock:
            pending = [s for s, h in self.symbols.items() if h.backfilled_from is None and h.retry_at <= now_ms]
            if pending:
                symbol = min(pending, key=lambda s: (s not in self.first, s))
                return symbol, now_ms - self.backfill_ms - LEAD_MS
            for symbol, held in self.symbols.items():
                if held.retry_at <= now_ms and self._settled_since(symbol, held, now_ms):
                    return symbol, held.newest + 1 if held.newest is not None else held.backfilled_from
        return None

    def _settled_since(self, symbol: str, held: SymbolHistory, now_ms: int) -> bool:
        """Whether a settlement newer than the newest held should exist by now: the awaited funding time, or
        where the board announces none, one interval after the newest."""
        due = held.awaited
        if due is None:
            hours = self.interval_hours.get(symbol)
            if held.newest is None or not hours:
                return False
            due = held.newest + int(hours * HOUR_MS)
        return now_ms >= due + self.settle_delay_ms

    def fetched(self, symbol: str, since_ms: int, entries: list[dict], now_ms: int) -> tuple[list[dict], int | None]:
        """Record one fetch's ccxt entries (oldest first); returns (the new settlements to publish, when this
        fetch completed the backfill: the time from which the history is complete). ValueError for a
        malformed entry (nothing recorded)."""
        with self._lock:
            held = self.symbols.get(symbol)
            if held is None:  # delisted meanwhile
                return [], None
            backfill = held.backfilled_from is None
            if backfill:
                start = since_ms + LEAD_MS
                previous = max((e["timestamp"] for e in entries if e["timestamp"] < start), default=None)
                fresh = [e for e in entries if e["timestamp"] >= start]
            else:
                previous = held.newest
                fresh = [e for e in entries if previous is None or e["timestamp"] > previous]
            new = settlements_of(fresh, previous, self.interval_hours.get(symbol))
            self.fetches += 1
            self.settlements += len(new)
            if new:
                held.newest = new[-1]["funding_time"]
                held.oldest = min(held.oldest or new[0]["funding_time"], new[0]["funding_time"])
                held.failures, held.retry_at = 0, 0
                if held.awaited is not None and held.awaited <= held.newest:
                    held.awaited = None
            elif not backfill:
                self._retry_later(held, now_ms)
            if backfill:
                # Complete from the window's start when a settlement came before it; else the perpetual was
                # listed within the window, and its history starts at its first settlement (or now).
                held.backfilled_from = start if previous is not None else new[0]["funding_time"] if new else now_ms
            return new, held.backfilled_from if backfill else None

    def failed(self, symbol: str, now_ms: int) -> None:
        with self._lock:
            if symbol in self.symbols:
                self._retry_later(self.symbols[symbol], now_ms)

    @staticmethod
    def _retry_later(held: SymbolHistory, now_ms: int) -> None:
        held.retry_at = now_ms + min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** held.failures)
        held.failures += 1

    def progress(self) -> dict:
        """The statistics' history block: symbols backfilled of those listed, the oldest settlement held."""
        with self._lock:
            done = [h for h in self.symbols.values() if h.backfilled_from is not None]
            oldest = [h.oldest for h in self.symbols.values() if h.oldest is not None]
            return {"symbols_done": len(done), "symbols_total": len(self.symbols), "oldest": min(oldest, default=None),
                    "fetches": self.fetches, "settlements": self.settlements}


def held_in_database(path, exchange: str) -> dict[str, tuple[int, int | None, float | None]]:
    """What the recorder's database (common/history.py's schema) holds of `exchange`, read-only: symbol ->
    (complete from, newest funding time, its interval) for every symbol whose backfill completed. {} when
    there is no database here (a worker on another host than the recorder backfills again; the recorder
    stores a repeat as nothing new)."""
    import sqlite3
    from pathlib import Path
    if not Path(path).exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute("""
            SELECT c.symbol, c.complete_from, s.funding_time, s.interval_hours FROM coverage c
            LEFT JOIN settlements s ON s.exchange = c.exchange AND s.symbol = c.symbol
                AND s.funding_time = (SELECT max(funding_time) FROM settlements
                                      WHERE exchange = c.exchange AND symbol = c.symbol)
            WHERE c.exchange = ?""", (exchange,)).fetchall()
    return {symbol: (complete_from, newest, hours) for symbol, complete_from, newest, hours in rows}


# -- the fetching thread --------------------------------------------------------------------------------
class SettledFeed:
    """Fetches settled funding between cycles (common/between_cycles.py): history never delays a book. What it
    fetched waits in `out` for the main thread, which alone may publish."""

    def __init__(self, client: ccxt.Exchange, paging: SettledPaging, schedule: SettledSchedule, log):
        self.client, self.paging, self.schedule, self.log = client, paging, schedule, log
        self.out: queue.SimpleQueue = queue.SimpleQueue()  # (symbol, settlements, backfilled_from)
        self._failing: dict[str, str] = {}
        self._decile = 0

    def step(self) -> bool:
        """Fetch the one symbol due now, if any (BetweenCycles' step)."""
        now = self.client.milliseconds()
        job = self.schedule.next_job(now)
        if job is None:
            return False
        self._fetch(*job, now)
        return True

    def _fetch(self, symbol: str, since: int, now: int) -> None:
        try:
            entries = fetch_settled(self.client, self.paging, symbol, since, now)
            new, backfilled_from = self.schedule.fetched(symbol, since, entries, now)
        except Exception as e:  # noqa: BLE001 - anything an exchange sends may be malformed; try again later
            self.schedule.failed(symbol, now)
            reason = describe(e)
            if self._failing.get(symbol) != reason:
                self._failing[symbol] = reason
                self.log.warning("Settled funding of %s not fetched: %s (trying again later)", printable(symbol), reason)
            return
        if self._failing.pop(symbol, None):
            self.log.info("Settled funding of %s fetched again", printable(symbol))
        if new or backfilled_from is not None:
            self.out.put((symbol, new, backfilled_from))
        self._log_progress()

    def _log_progress(self) -> None:
        progress = self.schedule.progress()
        total = progress["symbols_total"]
        decile = progress["symbols_done"] * 10 // total if total else 0
        if decile > self._decile:
            self._decile = decile
            self.log.info("Settled funding backfill: %d of %d symbols (%d%%), %d settlements",
                          progress["symbols_done"], total, decile * 10, progress["settlements"])

    def take(self, exchange: str, now_ms: int, max_settlements: int = 5000) -> list[dict]:
        """The `funding.{exchange}` messages of what was fetched since the last take (SPEC 14), each at most
        `max_settlements` long."""
        messages, current = [], None
        while True:
            try:
                symbol, settlements, backfilled_from = self.out.get_nowait()
            except queue.Empty:
                return messages
            if current is None or len(current["settlements"]) + len(settlements) > max_settlements:
                current = {"exchange": exchange, "timestamp": now_ms, "settlements": [], "backfilled": []}
                messages.append(current)
            current["settlements"] += [{"symbol": symbol, **s} for s in settlements]
            if backfilled_from is not None:
                current["backfilled"].append({"symbol": symbol, "from": backfilled_from})
