"""Settled funding from an exchange (SPEC 14): how each exchange's history pages, and one symbol's settlements
fetched through ccxt's fetch_funding_rate_history, page by page, oldest first.

ccxt's own `paginate` stops short on several exchanges (bitget at the newest 1000, okx and htx at one page),
so the pages are walked here, the same way everywhere: the newest page first, each next one older than the
oldest settlement seen, until the window's start (or the listing) is reached. An exchange that can only page
forward (from `since`, oldest first) walks from the start instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

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
