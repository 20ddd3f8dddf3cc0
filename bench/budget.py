"""The floor (docs/reference.md, "What each exchange costs"), derived from the product itself: what one
cycle's requests cost, and the most symbols each exchange's published budget holds every 5 s.

The paths and weights are not written down here: they are what the worker's own throttle charges when a
client built by `common.exchanges.create_exchange` runs the venue's `bulk_calls` once and one symbol's
book and `symbol_extras` once (ccxt's cost table, corrected by `RateBudget.weigh`). So the floor follows
VENUES: a bulk call or extra added there shows up here, and a request the worker sends beyond them shows up
as a cycle above the floor.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qsl, urlsplit

from common.exchanges import VENUES, create_exchange

INTERVAL = 5.0
BOOKS_TIMED = 5   # book requests whose round trip measure_floor times: the median of a few, not one outlier


def request_name(path: str, method: str = "GET", fields: dict | str | None = None) -> str:
    """What a request asks, as the floor and the simulator's log name it: its path, and where one path serves
    every kind of request (Hyperliquid's POST /info {"type": ...}) the body's type too: `/info?type=l2Book`.
    `fields`: the body's fields, or the log's query string (the simulator logs a POST body's fields there)."""
    if method.upper() != "POST":
        return path
    if isinstance(fields, str):
        fields = dict(parse_qsl(fields))
    kind = (fields or {}).get("type")
    return f"{path}?type={kind}" if isinstance(kind, str) and kind else path


@dataclass(frozen=True)
class Charge:
    """One request as the worker's throttle charges it."""
    path: str        # request_name(): as the exchange (and the simulator's log) sees it, e.g. /fapi/v1/depth
    endpoint: str    # the throttle's key (ccxt's api:path): per-endpoint budgets count each apart
    weight: float


@dataclass
class Floor:
    """One cycle's requests at the floor: the bulk calls once, then per watched symbol its book and extras."""
    exchange: str
    depth: object                     # the book depth asked for (None: the exchange's fixed depth)
    bulk: list[Charge]
    per_symbol: list[Charge]          # the book first
    limit: float                      # the RateBudget: `limit` weight per `window` seconds
    window: float
    per_endpoint: bool
    guard: float
    weight_unit: str = "requests"     # "weight" where the exchange counts request weight (binance)
    notes: dict = field(default_factory=dict)
    # Seconds from a book request leaving to its answer read, as measured against the simulator. The throttle
    # holds each request's weight that long plus window + guard (common/exchanges.py SharedThrottle). None: a
    # floor measured under the earlier throttle, which held a request `guard` longer than the window from
    # the moment it left, whatever its round trip (the figures of an older docs/benchmarks.json).
    round_trip: float | None = None
    # Where the exchange gives an endpoint a limit of its own (OKX: books-full 10 per 2 s, books 40): ccxt's
    # path (the throttle key after "api:") -> limit within `window` (RateBudget.endpoint_limits).
    endpoint_limits: dict = field(default_factory=dict)

    @property
    def book_path(self) -> str:
        return self.per_symbol[0].path

    def requests(self, n: int) -> int:
        return len(self.bulk) + n * len(self.per_symbol)

    def weight(self, n: int) -> float:
        return sum(c.weight for c in self.bulk) + n * sum(c.weight for c in self.per_symbol)

    @property
    def hold(self) -> float:
        """Seconds the throttle holds a request's weight: window + guard after its answer, from the moment it
        left (round trip included); under the earlier throttle, window + guard from the moment it left."""
        return self.window + self.guard + (self.round_trip or 0.0)

    def hold_rule(self) -> str:
        """How long the throttle holds a request, in words, for the page."""
        if self.round_trip is None:
            return f"each request held {1000 * self.guard:.0f} ms longer than the exchange holds it"
        return (f"each request held from sending until {self.window:g} s + {1000 * self.guard:.0f} ms after its "
                f"answer, {1000 * self.round_trip:.0f} ms later: {self.hold:.3f} s")

    def limit_of(self, endpoint: str | None) -> float:
        """The limit a throttle key counts against: its endpoint's own, else the budget's (RateBudget.limit_of)."""
        if endpoint is None or not self.endpoint_limits:
            return self.limit
        return self.endpoint_limits.get(endpoint.partition(":")[2], self.limit)

    def _groups(self) -> set:
        """The budgets per-symbol requests draw from: each per-symbol endpoint where the exchange counts each
        apart, else the one budget of the IP (None)."""
        return {c.endpoint for c in self.per_symbol} if self.per_endpoint else {None}

    def _symbols_on(self, endpoint, sustained: bool, ips: int) -> int:
        """Whole symbols per address (the worker sends each book to an address with room for all of it): the
        first also carries the bulk calls, the others the per-symbol requests alone."""
        per_cycle = self.limit_of(endpoint) * INTERVAL / (self.hold if sustained else self.window)
        bulk = sum(c.weight for c in self.bulk if endpoint in (None, c.endpoint))
        symbol = sum(c.weight for c in self.per_symbol if endpoint in (None, c.endpoint))
        return int((per_cycle - bulk) // symbol) + (ips - 1) * int(per_cycle // symbol)

    def most_symbols(self, sustained: bool = False, ips: int = 1) -> int:
        """The most symbols per 5 s cycle the budget holds: the published one, or (`sustained`) what the
        worker's throttle lets through for good, each request's weight held `hold` seconds, not the window.
        Where the exchange counts per endpoint, every per-symbol endpoint has a budget of its own (OKX's
        books-full its own limit, not the budget's). With `ips` addresses each has the whole budget, and the
        bulk calls go on one."""
        return min(self._symbols_on(e, sustained, ips) for e in self._groups())

    @property
    def binding(self) -> str | None:
        """The throttle key whose budget allows the fewest symbols (None: the IP's one budget)."""
        return min(self._groups(), key=lambda e: (self._symbols_on(e, False, 1), str(e)))

    @property
    def binding_limit(self) -> float:
        return self.limit_of(self.binding)

    def load(self, weight_by_path: dict[str, float]) -> float:
        """A measured cycle's weight on the budget its symbols draw from: the whole cycle where the budget
        is per IP, the busiest per-symbol endpoint where the exchange counts each endpoint apart (with limits of
        their own: the binding endpoint's)."""
        if not self.per_endpoint:
            return sum(weight_by_path.values())
        if self.endpoint_limits:
            return sum(weight_by_path.get(c.path, 0.0) for c in self.per_symbol if c.endpoint == self.binding)
        return max(weight_by_path.get(c.path, 0.0) for c in self.per_symbol)

    def share(self, weight_by_path: dict[str, float]) -> float:
        """A measured cycle's load as a share of what the throttle sustains, on its fullest budget."""
        if not self.per_endpoint:
            return sum(weight_by_path.values()) / self.sustained_load()
        return max(sum(weight_by_path.get(c.path, 0.0) for c in self.per_symbol if c.endpoint == e)
                   / self.sustained_load(e) for e in self._groups())

    def latency_allows(self, round_trip: float) -> int:
        """The most symbols one 5 s cycle holds when every answer takes `round_trip` seconds: the bulk calls one
        after another, then the per-symbol requests with `book_threads` in flight (docs/reference.md: a
        synchronous client is bound by N <= interval / RTT)."""
        threads = self.notes.get("book_threads", 1)
        left = INTERVAL - len(self.bulk) * round_trip
        return int(left * threads // (len(self.per_symbol) * round_trip))

    def sustained_load(self, endpoint: str | None = "binding") -> float:
        """The most weight per 5 s the throttle sustains on one budget (see most_symbols): the binding one's
        unless an endpoint is named."""
        limit = self.binding_limit if endpoint == "binding" else self.limit_of(endpoint)
        return limit * INTERVAL / self.hold

    def sustained_share(self) -> float:
        """The share of the published budget the throttle sustains: window / hold."""
        return self.window / self.hold

    @property
    def shown_depth(self) -> str:
        """The depth as asked for, with the levels a book then has where it is not a number (max, fixed)."""
        if isinstance(self.depth, int):
            return str(self.depth)
        return f"{self.notes.get('book_levels')} ({self.depth or 'fixed'})"

    def describe_budget(self) -> str:
        """The budget the symbols draw from, in words: OKX's books-full names its own limit."""
        if self.per_endpoint and self.binding_limit != self.limit:
            path = self.binding.partition(":")[2]
            return f"{self.binding_limit:g} {self.weight_unit} / {self.window:g} s on {path} (per endpoint)"
        scope = "per endpoint" if self.per_endpoint else "per IP"
        return f"{self.limit:g} {self.weight_unit} / {self.window:g} s {scope}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Floor:
        charges = {k: [Charge(**c) for c in data[k]] for k in ("bulk", "per_symbol")}
        return cls(**{**data, **charges})


def measure_floor(exchange: str, api_url: str, depth=None, symbol: str | None = None) -> Floor:
    """Run the venue's cycle once for one symbol against `api_url` (the simulator) with a client as the worker
    builds it, and keep what its throttle charged. The market load before it is not part of a cycle."""
    venue = VENUES[exchange]
    client = create_exchange(exchange, api_url)
    client.load_markets()
    symbol = symbol or _a_perpetual(client)
    charged = _record_charges(client, api_url)
    for call in venue.bulk_calls:
        call.fetch(client)
    bulk = list(charged)
    charged.clear()
    book = client.fetch_order_book(symbol, depth or venue.book_limit, venue.book_params)
    for extra in venue.symbol_extras:
        extra(client, symbol)
    per_symbol = list(charged)
    budget = venue.budget
    return Floor(exchange, depth or venue.book_limit, bulk, per_symbol, budget.limit, budget.window,
                 budget.per_endpoint, budget.guard, "weight" if budget.ccxt_cost_is_weight else "requests",
                 {"book_threads": venue.book_threads, "perpetuals": len(_perpetuals(client)), "book_levels": len(book["bids"]), "bulk_calls": [call.what for call in venue.bulk_calls],
                  "symbol_extras": [extra.__name__ for extra in venue.symbol_extras]},
                 _book_round_trip(client, symbol, depth or venue.book_limit, venue.book_params, charged.seconds),
                 dict(budget.endpoint_limits))


def _book_round_trip(client, symbol: str, depth, params: dict, seconds: list[float]) -> float:
    """The median time from a book request leaving to its answer read (the simulator's added latency and
    its serve time), over BOOKS_TIMED requests, the floor's own first among them. The client's throttle may
    space them, but the timing starts when a request leaves, as the throttle's hold does."""
    timed = seconds[:1]
    for _ in range(BOOKS_TIMED - 1):
        seconds.clear()
        client.fetch_order_book(symbol, depth, params)
        timed += seconds[:1]
    return statistics.median(timed)


def _perpetuals(client) -> list[str]:
    """The linear perpetuals ccxt loaded: the rows of the board, as the worker selects them."""
    return [s for s, m in client.markets.items() if m.get("swap") and m.get("linear")]


def _a_perpetual(client) -> str:
    linear = _perpetuals(client)
    return next((s for s in ("BTC/USDT:USDT", "BTC/USDC:USDC") if s in linear), linear[0])


class _Charged(list):
    """The Charges recorded, and `seconds`: each request's time from leaving to its answer read."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def clear(self) -> None:
        super().clear()
        self.seconds.clear()


def _record_charges(client, api_url: str) -> _Charged:
    """Wrap the client's throttle (what each request is charged) and fetch (which URL it went to, how long
    its answer took); ccxt calls the one right before the other, from one thread here."""
    charged = _Charged()
    costs: list = []
    throttle, fetch = client.throttle, client.fetch
    prefix = urlsplit(api_url).path.rstrip("/")

    def charging(cost=None):
        costs.append(cost)
        return throttle(cost)

    def fetching(url, method="GET", headers=None, body=None):
        endpoint, weight = costs.pop() if costs and isinstance(costs[-1], tuple) else ("", 1.0)
        charged.append(Charge(request_name(urlsplit(url).path[len(prefix):], method, _fields(body)), endpoint,
                              float(weight)))
        started = time.monotonic()
        try:
            return fetch(url, method, headers, body)
        finally:
            charged.seconds.append(time.monotonic() - started)

    client.throttle, client.fetch = charging, fetching
    return charged


def _fields(body) -> dict:
    """A JSON request body's fields ({} for none or another body)."""
    try:
        fields = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return fields if isinstance(fields, dict) else {}
