"""One HTTP server on 127.0.0.1 speaking seven exchanges' REST dialects, with faults, rate limits and a log.

Each exchange is a dialect module (binance.py, bybit.py, ...) exposing:
  ROUTES         {path: handler(req) -> JSON-able object or Reply}, paths without the /<exchange> prefix
  BUDGETS        [Budget(...)]: the exchange's published rate limits
  BAN_AFTER_429S int or None: 418 once a client ignores this many 429s (binance)
  weight(req)    cost of one request against the budgets
  error_body(status, message) -> the exchange's error JSON
  USED_WEIGHT    optional UsedWeight(...): a header reporting the weight used in the current clock window
  SENDS_RETRY_AFTER optional bool, default True: False for exchanges whose 429 carries no Retry-After
  without_first_size(body), first_row_garbled(body)  optional: the bad_level / bad_row breakers of answers
                 whose shapes the generic ones miss (Hyperliquid)

Exchanges count their budgets per IP, so every rate-limit state (windows, 429 strikes, bans, peaks, used
weight) is kept per (exchange, client address), the client address being the request's TCP peer. The server
listens on 127.0.0.1; on Linux all of 127.0.0.0/8 is loopback, so a client whose socket is bound to
127.0.0.2 (a second "IP", as a proxy would give) reaches it and is counted apart.

The server is also an HTTP proxy to itself, for a worker's `proxies` (docs/reference.md, "Past one IP"): a request sent
through it (absolute-form request line, e.g. ccxt's httpProxy = "http://proxy-a:pw@127.0.0.1:PORT") is
answered as usual and counted for the proxy, its client being the proxy's user name ("proxy-a") or, without
credentials, the address the connection reached.

Used in-process by tests (``Simulator().start()``) or as ``python -m tests.simulator --port 8900``; the
same controls are served over HTTP under ``/__sim/`` (see ``_control``).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from base64 import b64decode
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.simulator.market import EXCHANGES, Market, Quote

FAULT_KINDS = ("http500", "http429", "http418", "hang", "bad_json", "empty", "reset", "drop_fields", "bad_level",
               "bad_row")
QUOTE_FIELDS = ("bid", "ask", "last", "mark_price", "index_price", "funding_rate", "next_funding_time")
LOCAL_CLIENT = "127.0.0.1"     # the client address of callers that do not name one


@dataclass
class Reply:
    status: int
    body: object = None            # JSON-able object, or bytes sent as they are
    headers: dict = field(default_factory=dict)


class Rejected(Exception):
    """Raised by a dialect's request checks: the core answers with `reply` (the exchange's own error)."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


@dataclass(frozen=True)
class Budget:
    limit: int                     # weight allowed per window
    window: float                  # seconds, sliding
    per_endpoint: bool = False     # a separate budget for each path (bitget, gate) or one per IP
    paths: tuple = ()              # the paths it applies to (OKX publishes a limit per endpoint); () = every path


@dataclass(frozen=True)
class UsedWeight:
    """A response header carrying the weight the client's IP used in the current fixed window, aligned to
    the wall clock (Binance's REQUEST_WEIGHT minute: X-MBX-USED-WEIGHT-1M), on answers below `prefix`."""
    header: str
    window: float          # seconds; windows start at multiples of it since the epoch
    prefix: str = "/"


@dataclass
class Fault:
    exchange: str
    kind: str
    endpoint: str | None = None    # substring of "path?query"; None matches every request
    count: int | None = None       # requests left to hit; None = until `until`
    until: float | None = None     # Simulator.clock() when it expires; None = until count runs out
    fields: tuple = ()             # for drop_fields
    retry_after: int = 1           # for http429 / http418
    hang_seconds: float = 60.0     # for hang
    message: str = "simulated fault"  # the error text of http500 / http429 / http418, as the exchange words it

    def matches(self, exchange: str, path: str, now: float) -> bool:
        if self.exchange != exchange or (self.endpoint and self.endpoint not in path):
            return False
        return (self.count is None or self.count > 0) and (self.until is None or now < self.until)


@dataclass
class Request:
    exchange: str
    method: str
    path: str
    query: dict
    body: bytes
    market: Market
    tick: int
    dropped: frozenset = frozenset()
    client: str = LOCAL_CLIENT     # the IP the exchange counts budgets for: TCP peer, or proxy identity

    def listed(self):
        return self.market.listed(self.exchange)

    def quote(self, base: str) -> Quote:
        quote = self.market.quote(self.exchange, base, self.tick)
        if self.dropped:
            quote = dataclasses.replace(quote, **{f: None for f in self.dropped})
        return quote


@dataclass
class LogEntry:
    time: float
    exchange: str
    method: str
    path: str
    query: str
    status: int
    client: str = LOCAL_CLIENT     # the IP the exchange counts budgets for: TCP peer, or proxy identity


def _body_query(body: bytes) -> str:
    """A JSON object body's plain fields as a query string ("type=l2Book&coin=BTC"), so that a POST API with
    one path (Hyperliquid's /info) is logged, and matched by faults' `endpoint`, by what it asks."""
    try:
        fields = json.loads(body) if body else None
    except ValueError:
        return ""
    if not isinstance(fields, dict):
        return ""
    return urlencode({k: v for k, v in fields.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)})


class Simulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, extra_markets: int = 0,
                 tick_seconds: float = 1.0, rate_limits: bool = True, ban_seconds: float = 120.0,
                 real_sizes: bool = False, usdc: bool = False):
        """real_sizes: list as many perpetuals as each exchange really does (market.REAL_SIZES), with mixed
        funding intervals, price-scaled contract sizes and two odd contracts; the default is the small market
        of seven coins (plus `extra_markets` SIM001..). usdc: Binance also lists USDC/USDT:USDT (the scanner's
        USDC -> USDT rate)."""
        self.market = Market(extra_markets=extra_markets, tick_seconds=tick_seconds, real_sizes=real_sizes,
                             usdc=usdc)
        self.dialects = {name: importlib.import_module(f"tests.simulator.{name}") for name in EXCHANGES
                         if importlib.util.find_spec(f"tests.simulator.{name}")}
        # The wall clock that request times, rate-limit windows and fault expiry read. A test may replace it
        # (a fixed or stepped time) to place requests in a chosen clock minute; reset() restores it.
        self.clock = time.time
        self.rate_limits = rate_limits
        self._rate_limits_default = rate_limits   # what reset() restores
        self.ban_seconds = ban_seconds
        self._lock = threading.Lock()
        self._log: deque[LogEntry] = deque(maxlen=500_000)
        self._faults: list[Fault] = []
        self._latency: dict[str, float] = defaultdict(float)
        # Rate-limit state, keyed (exchange, client, budget index, endpoint) for windows and peaks and
        # (exchange, client) for the rest: each client address has the exchange's whole budget.
        self._windows: dict[tuple, deque] = defaultdict(deque)
        self._window_sums: dict[tuple, float] = defaultdict(float)
        self._peaks: dict[tuple, float] = defaultdict(float)   # the most weight ever inside one window
        self._strikes: dict[tuple, list] = defaultdict(list)
        self._banned_until: dict[tuple, float] = defaultdict(float)
        self._used: dict[tuple, tuple] = {}   # (exchange, client) -> (fixed window start, weight used in it)
        self._stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.sim = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_url(self, exchange: str) -> str:
        return f"{self.url}/{exchange}"

    def start(self) -> "Simulator":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="simulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- controls ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the log, faults, latencies, rate-limit state and settlements added off the schedule; rate
        limits on or off as built; unfreeze the clock. A test that starts from reset() sees nothing an earlier test did."""
        self.rate_limits = self._rate_limits_default
        self.clock = time.time
        with self._lock:
            self._log.clear()
            self._faults.clear()
            self._latency.clear()
            self._windows.clear()
            self._window_sums.clear()
            self._peaks.clear()
            self._strikes.clear()
            self._banned_until.clear()
            self._used.clear()
        self.market.unfreeze()
        self.market.forget_extra_settlements()

    def inject_fault(self, exchange: str, kind: str, endpoint: str | None = None, count: int | None = None,
                     seconds: float | None = None, fields=(), retry_after: int = 1,
                     hang_seconds: float = 60.0, message: str = "simulated fault") -> Fault:
        self._dialect(exchange)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        bad = set(fields) - set(QUOTE_FIELDS)
        if bad:
            raise ValueError(f"unknown fields {sorted(bad)}; known: {', '.join(QUOTE_FIELDS)}")
        if count is None and seconds is None:
            raise ValueError("a fault needs count, seconds or both")
        fault = Fault(exchange, kind, endpoint, count, None if seconds is None else self.clock() + seconds,
                      tuple(fields), retry_after, hang_seconds, message)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self, exchange: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if exchange and f.exchange != exchange]

    def set_latency(self, exchange: str, seconds: float) -> None:
        self._latency[exchange] = seconds

    def spend_weight(self, exchange: str, weight: float, client: str = LOCAL_CLIENT,
                     endpoint: str | None = None) -> None:
        """Another program on the client's IP (a trading bot) spends `weight` now: it fills the exchange's
        budget windows for that IP, the per-endpoint ones only for `endpoint` (a path, e.g. /fapi/v1/depth),
        and the used weight the exchange reports (Binance's X-MBX-USED-WEIGHT-1M)."""
        dialect = self._dialect(exchange)
        if weight < 0:
            raise ValueError(f"weight must be >= 0, not {weight}")
        now = self.clock()
        with self._lock:
            keys = [key for key in self._budget_keys(dialect, exchange, client, endpoint)
                    if key[3] or not dialect.BUDGETS[key[2]].per_endpoint]
            self._admit(dialect, (exchange, client), keys, weight, now)

    def used_weight(self, exchange: str, client: str = LOCAL_CLIENT) -> float:
        """The weight the client's IP used in the exchange's current fixed window (what its header reports)."""
        with self._lock:
            return self._used_now(self._dialect(exchange), exchange, client, self.clock())

    def requests(self, exchange: str | None = None, since: float = 0.0, path: str | None = None,
                 client: str | None = None) -> list[LogEntry]:
        with self._lock:
            entries = list(self._log)
        return [e for e in entries if e.time >= since and (exchange is None or e.exchange == exchange)
                and (path is None or path in e.path) and (client is None or e.client == client)]

    def counts(self, exchange: str | None = None, since: float = 0.0, client: str | None = None) -> dict:
        """{exchange: {path: n}} over the log."""
        out: dict = defaultdict(lambda: defaultdict(int))
        for e in self.requests(exchange, since, client=client):
            out[e.exchange][e.path] += 1
        return {ex: dict(paths) for ex, paths in out.items()}

    def peak_share(self, exchange: str, client: str | None = None) -> float:
        """The largest share of a published budget one IP's use ever took inside one window (1.0 = the whole
        budget), over every budget, endpoint and client address (or `client`'s alone) since the last reset.
        Weight spent with spend_weight counts: it is the IP's use, not only this client's."""
        with self._lock:
            return max((v for k, v in self._peaks.items() if k[0] == exchange and client in (None, k[1])),
                       default=0.0)

    def statuses(self, exchange: str | None = None, since: float = 0.0, client: str | None = None) -> dict:
        """{status: n} over the log, e.g. to assert that no 429 was ever answered."""
        out: dict = defaultdict(int)
        for e in self.requests(exchange, since, client=client):
            out[e.status] += 1
        return dict(out)

    def truth(self, exchange: str, symbol: str, depth: int | None = None, tick: int | None = None) -> dict:
        base = symbol.split("/")[0]
        if base not in self.market.coins or exchange not in self.market.coins[base].listed_on:
            raise KeyError(f"{symbol} is not listed on {exchange}")
        return self.market.quote(exchange, base, tick).truth(depth)

    def settlements(self, exchange: str, symbol: str, since: int = 0, until: int | None = None) -> list[dict]:
        """The truth of a perpetual's settled funding, oldest first (SPEC 14)."""
        base = symbol.split("/")[0]
        if base not in self.market.coins or exchange not in self.market.coins[base].listed_on:
            raise KeyError(f"{symbol} is not listed on {exchange}")
        return [s.truth() for s in self.market.settlements(exchange, base, since, until)]

    # -- the request path --------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, body: bytes, client: str = LOCAL_CLIENT) -> Reply | str:
        """Answer one exchange request from the client address. Returns a Reply, or 'hang' / 'reset' for
        the socket layer."""
        parts = urlsplit(raw_path)
        prefix, _, rest = parts.path.lstrip("/").partition("/")
        dialect = self.dialects.get(prefix)
        if dialect is None:
            return Reply(404, {"error": f"no exchange at /{prefix}/; known: {', '.join(self.dialects)}"})
        path = "/" + rest
        now = self.clock()
        req = Request(prefix, method, path, dict(parse_qsl(parts.query)), body, self.market, self.market.tick,
                      client=client)
        if self._latency.get(prefix):
            time.sleep(self._latency[prefix])
        query = parts.query or _body_query(body)
        reply = self._answer(dialect, req, f"{path}?{query}", now)
        if isinstance(reply, Reply):
            self._report_used_weight(dialect, req, reply, now)
        status = reply.status if isinstance(reply, Reply) else 0
        with self._lock:
            self._log.append(LogEntry(now, prefix, method, path, query, status, client))
        return reply

    def _dialect(self, exchange: str):
        if exchange not in self.dialects:
            raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(self.dialects)}")
        return self.dialects[exchange]

    def _answer(self, dialect, req: Request, target: str, now: float) -> Reply | str:
        limited = self._rate_limit(dialect, req, now)
        if limited:
            return limited
        # Only a request the exchange would have served takes a fault: a count-limited fault must not be
        # spent on a request that the rate limit answered 429/418 anyway.
        fault = self._take_fault(req.exchange, target, now)
        if fault and fault.kind == "drop_fields":
            req.dropped = frozenset(fault.fields)
        elif fault and fault.kind not in ("bad_level", "bad_row"):
            return self._fault_reply(dialect, fault)
        handler = dialect.ROUTES.get(req.path)
        if handler is None:
            return Reply(404, dialect.error_body(404, f"simulator: no route {req.method} {req.path}"))
        try:
            result = handler(req)
        except Rejected as e:
            return e.reply
        except KeyError as e:  # an unknown symbol in the query
            return Reply(400, dialect.error_body(400, f"unknown symbol {e}"))
        reply = result if isinstance(result, Reply) else Reply(200, result)
        if fault and fault.kind in ("bad_level", "bad_row"):
            reply = _malformed(reply, _breaker(dialect, fault.kind))
        return reply

    def _take_fault(self, exchange: str, path: str, now: float) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(exchange, path, now):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def _fault_reply(self, dialect, fault: Fault) -> Reply | str:
        if fault.kind in ("hang", "reset"):
            return fault.kind if fault.kind == "reset" else f"hang:{fault.hang_seconds}"
        if fault.kind == "bad_json":
            return Reply(200, b'{"result": {"list": [ {"symbol": "BTC')
        if fault.kind == "empty":
            return Reply(200, b"")
        status = {"http500": 500, "http429": 429, "http418": 418}[fault.kind]
        headers = _retry_after(dialect, fault.retry_after) if status in (429, 418) else {}
        return Reply(status, dialect.error_body(status, fault.message), headers)

    def _rate_limit(self, dialect, req: Request, now: float) -> Reply | None:
        """None when the request fits every budget of its client's IP (its weight is then counted), else
        the exchange's 429, or 418 for a banned IP."""
        ip = (req.exchange, req.client)
        weight = dialect.weight(req)
        with self._lock:
            if not self.rate_limits:
                self._count_used(dialect, ip, weight, now)
                return None
            if self._banned_until[ip] > now:
                retry = int(self._banned_until[ip] - now) + 1
                return Reply(418, dialect.error_body(418, f"IP banned until {int(self._banned_until[ip] * 1000)}"),
                             {"Retry-After": str(retry)})
            keys = self._budget_keys(dialect, req.exchange, req.client, req.path)
            for key in keys:
                budget = dialect.BUDGETS[key[2]]
                window = self._expire(key, budget, now)
                if self._window_sums[key] + weight > budget.limit:
                    retry = int(window[0][0] + budget.window - now) + 1 if window else 1
                    return self._too_many(dialect, ip, now, retry, budget)
            self._admit(dialect, ip, keys, weight, now)
        return None

    @staticmethod
    def _budget_keys(dialect, exchange: str, client: str, endpoint: str | None) -> list[tuple]:
        """The window keys a request on `endpoint` counts against: one per budget, per endpoint where the
        exchange counts each endpoint apart."""
        return [(exchange, client, i, (endpoint or "") if b.per_endpoint else "")
                for i, b in enumerate(dialect.BUDGETS) if not b.paths or endpoint in b.paths]

    def _expire(self, key: tuple, budget: Budget, now: float) -> deque:
        window = self._windows[key]
        while window and window[0][0] <= now - budget.window:
            self._window_sums[key] -= window.popleft()[1]
        return window

    def _admit(self, dialect, ip: tuple, keys: list[tuple], weight: float, now: float) -> None:
        """Count `weight` in the windows of `keys` and in the IP's used weight (lock held)."""
        for key in keys:
            budget = dialect.BUDGETS[key[2]]
            self._expire(key, budget, now)
            self._windows[key].append((now, weight))
            self._window_sums[key] += weight
            self._peaks[key] = max(self._peaks[key], self._window_sums[key] / budget.limit)
        self._count_used(dialect, ip, weight, now)

    def _count_used(self, dialect, ip: tuple, weight: float, now: float) -> None:
        self._used[ip] = (self._fixed_window(dialect, now), self._used_now(dialect, *ip, now) + weight)

    @staticmethod
    def _fixed_window(dialect, now: float) -> float | None:
        used = getattr(dialect, "USED_WEIGHT", None)
        return None if used is None else now // used.window * used.window

    def _used_now(self, dialect, exchange: str, client: str, now: float) -> float:
        start, used = self._used.get((exchange, client), (None, 0))
        return used if start is not None and start == self._fixed_window(dialect, now) else 0

    def _report_used_weight(self, dialect, req: Request, reply: Reply, now: float) -> None:
        used = getattr(dialect, "USED_WEIGHT", None)
        if used is not None and req.path.startswith(used.prefix):
            with self._lock:
                weight = self._used_now(dialect, req.exchange, req.client, now)
            reply.headers = {**reply.headers, used.header: str(int(weight))}

    def _too_many(self, dialect, ip: tuple, now: float, retry: int, budget: Budget) -> Reply:
        ban_after = getattr(dialect, "BAN_AFTER_429S", None)
        if ban_after:
            strikes = [t for t in self._strikes[ip] if t > now - 60] + [now]
            self._strikes[ip] = strikes
            if len(strikes) > ban_after:
                self._banned_until[ip] = now + self.ban_seconds
                return Reply(418, dialect.error_body(418, "IP banned for ignoring 429"),
                             {"Retry-After": str(int(self.ban_seconds))})
        message = f"Too many requests: over {budget.limit} per {budget.window:g}s"
        return Reply(429, dialect.error_body(429, message), _retry_after(dialect, retry))

    # -- /__sim/ over HTTP -------------------------------------------------------------------------
    def control(self, method: str, raw_path: str, body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        q = dict(parse_qsl(parts.query))
        try:
            args = json.loads(body) if body else {}
            return Reply(200, self._control(method, parts.path[len("/__sim/"):], q, args))
        except (ValueError, KeyError, TypeError) as e:
            return Reply(400, {"error": str(e)})

    def _control(self, method: str, name: str, q: dict, args: dict):
        since = float(q.get("since", 0))
        client = q.get("client")
        if name == "requests":
            entries = self.requests(q.get("exchange"), since, q.get("path"), client)
            out = {"counts": self.counts(q.get("exchange"), since, client),
                   "statuses": self.statuses(q.get("exchange"), since, client), "total": len(entries)}
            if q.get("exchange"):
                out["peak_share"] = self.peak_share(q["exchange"], client)
                out["used_weight"] = self.used_weight(q["exchange"], client or LOCAL_CLIENT)
            if q.get("entries"):
                out["entries"] = [dataclasses.asdict(e) for e in entries]
            return out
        if name == "truth":
            depth = int(q["depth"]) if "depth" in q else None
            tick = int(q["tick"]) if "tick" in q else None
            return self.truth(q["exchange"], q["symbol"], depth, tick)
        if name == "settlements":
            return self.settlements(q["exchange"], q["symbol"], int(q.get("from", 0)),
                                    int(q["until"]) if "until" in q else None)
        if name == "markets":
            return {ex: [f"{c.base}/USDT:USDT" for c in self.market.listed(ex)] for ex in self.dialects}
        if method != "POST":
            raise ValueError(f"/__sim/{name} takes POST, or is unknown")
        if name == "reset":
            self.reset()
        elif name == "fault":
            self.inject_fault(**args)
        elif name == "clear_faults":
            self.clear_faults(args.get("exchange"))
        elif name == "spend_weight":
            self.spend_weight(args["exchange"], float(args["weight"]), args.get("client", LOCAL_CLIENT),
                              args.get("endpoint"))
        elif name == "settle_at":
            self.market.settle_at(args["exchange"], args["symbol"].split("/")[0], int(args["at_ms"]))
        elif name == "latency":
            self.set_latency(args["exchange"], float(args["seconds"]))
        elif name == "rate_limits":
            self.rate_limits = bool(args["enabled"])
        elif name == "clock":
            action = args["action"]
            if action == "freeze":
                self.market.freeze()
            elif action == "step":
                self.market.step(int(args.get("ticks", 1)))
            elif action == "unfreeze":
                self.market.unfreeze()
            else:
                raise ValueError(f"clock action {action!r}: use freeze, step or unfreeze")
        else:
            raise ValueError(f"unknown control /__sim/{name}")
        return {"ok": True, "tick": self.market.tick}


def _retry_after(dialect, seconds: int) -> dict:
    """The Retry-After header of a 429/418, unless the exchange sends none (dialect SENDS_RETRY_AFTER = False:
    OKX, Hyperliquid), so that a client is tested without one."""
    return {"Retry-After": str(seconds)} if getattr(dialect, "SENDS_RETRY_AFTER", True) else {}


def _breaker(dialect, kind: str):
    """How a bad_level / bad_row fault breaks an answer: the dialect's own breaker where its shapes are not the
    generic ones (Hyperliquid's {"px", "sz", "n"} levels, its [meta, contexts] pair), else the generic one."""
    if kind == "bad_level":
        return getattr(dialect, "without_first_size", _without_first_size)
    return getattr(dialect, "first_row_garbled", _first_row_garbled)


def _malformed(reply: Reply, break_body) -> Reply:
    """The answer with `break_body` applied to a copy of its JSON (dialects that write exact numbers send
    bytes; the market model keeps the objects it hands out, and a frozen clock hands out the same again)."""
    body = json.loads(reply.body) if isinstance(reply.body, bytes) else copy.deepcopy(reply.body)
    break_body(body)
    return dataclasses.replace(reply, body=body)


def _first_row_garbled(body) -> bool:
    """A bulk answer whose first row (the first object in the first list of objects) is a string instead."""
    if isinstance(body, dict):
        return any(_first_row_garbled(value) for value in body.values())
    if isinstance(body, list) and body:
        if isinstance(body[0], dict):
            body[0] = "garbled"
            return True
        return any(_first_row_garbled(item) for item in body)
    return False


def _without_first_size(body) -> bool:
    """A book answer whose first level has no size (null), in whatever shape the exchange writes levels:
    [price, size] lists, or {"p": ..., "s": ...} objects (gate). Depth first, so the first side listed."""
    if isinstance(body, dict):
        return any(_without_first_size(value) for value in body.values())
    if isinstance(body, list) and body:
        first = body[0]
        if isinstance(first, list) and len(first) >= 2 and not isinstance(first[0], (dict, list)):
            first[1] = None
            return True
        if isinstance(first, dict) and "s" in first and "p" in first:
            first["s"] = None
            return True
        return any(_without_first_size(item) for item in body)
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    sim: Simulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms for a delayed ACK
    server: _Server

    def log_message(self, *args):  # the simulator's own log is its request log
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PUT(self):
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sim = self.server.sim
        path, client = self._path_and_client()
        if path.startswith("/__sim/"):
            reply = sim.control(method, path, body)
        else:
            reply = sim.handle(method, path, body, client)
        if reply == "reset":
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if isinstance(reply, str) and reply.startswith("hang:"):
            sim._stopping.wait(float(reply.split(":", 1)[1]))
            self.close_connection = True
            return
        self._send(reply)

    def _path_and_client(self) -> tuple[str, str]:
        """The request's path?query and the address its exchange counts it for: the TCP peer, or for a
        request sent to us as its HTTP proxy (absolute-form target) the proxy's identity."""
        target = urlsplit(self.path)
        if not target.scheme:
            return self.path, self.client_address[0]
        return urlunsplit(("", "", target.path, target.query, "")), self._proxy_identity()

    def _proxy_identity(self) -> str:
        kind, _, credentials = (self.headers.get("Proxy-Authorization") or "").partition(" ")
        if kind.lower() == "basic" and credentials:
            try:
                return b64decode(credentials).decode().partition(":")[0]
            except ValueError:
                pass
        return self.connection.getsockname()[0]

    def _send(self, reply: Reply) -> None:
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
