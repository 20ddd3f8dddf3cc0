"""Past one IP: the addresses a worker sends from, the machine's own ("direct") and each configured proxy.

Exchanges count their budgets per IP, so each address gets the whole budget (times rate_share) in a throttle
of its own, its own book clients, and its own Retry-After pauses. A book goes to whichever address has a free
client: a client waiting in its throttle is not free, so a full or paused address takes no more books while
another has room, and the cycle is as short as the addresses together allow. A proxy that cannot be reached
(refused, no answer to the connection, its own error or 407) takes no books for a while; its books go to
the others. An answer of the exchange through a proxy (a 5xx, a 429) or a request it may have seen (a
timeout once sent) says nothing against the proxy."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

import ccxt
import requests
import urllib3

from common.exchanges import SharedThrottle

# How long a failed proxy sits out before it is tried again.
PROXY_RETRY_SECONDS = 60.0


@dataclass
class Route:
    """One address: its label (never the proxy's credentials), its throttle, its clients."""
    label: str
    clients: list
    throttle: SharedThrottle | None
    is_proxy: bool = False
    idle: list = field(default_factory=list)
    down_until: float = 0.0
    requests: int = 0
    failures: int = 0

    def __post_init__(self):
        self.idle = list(self.clients)

    def usable(self, now: float) -> bool:
        return self.down_until <= now and (self.throttle is None or self.throttle.paused_for() == 0)


class Routes:
    """The worker's addresses; `client()` lends a book client, `bulk_client()` the client for bulk calls."""

    def __init__(self, routes: list[Route], log: logging.Logger, clock=time.monotonic):
        self.routes = routes
        self.log = log
        self._clock = clock
        self._free = threading.Condition()

    @property
    def client_count(self) -> int:
        return sum(len(route.clients) for route in self.routes)

    def bulk_route(self) -> Route:
        """The first address that is up (the machine's own, where it is used): bulk calls go on one."""
        now = self._clock()
        return next((r for r in self.routes if r.down_until <= now), self.routes[0])

    @contextlib.contextmanager
    def client(self):
        """(route, client): a free client of a usable address, the one with most free clients; when every
        address is paused or down, the first free client of any (the throttle then holds the request)."""
        with self._free:
            while True:
                route = self._pick(self._clock())
                if route is not None:
                    client = route.idle.pop()
                    break
                self._free.wait(0.2)
        try:
            yield route, client
        finally:
            with self._free:
                route.idle.append(client)
                self._free.notify()

    def _pick(self, now: float) -> Route | None:
        free = [r for r in self.routes if r.idle]
        usable = [r for r in free if r.usable(now)]
        if usable:
            return max(usable, key=lambda r: len(r.idle))
        if free and not any(r.usable(now) for r in self.routes):
            return min(free, key=lambda r: r.down_until)
        return None

    def answered(self, route: Route) -> None:
        route.requests += 1

    def failed(self, route: Route, error: Exception) -> bool:
        """Count a failed request. True when it went through a proxy that could not be reached, so the
        exchange never saw it, and another address is up: that one takes it over now (no retry), and the
        proxy sits out PROXY_RETRY_SECONDS. False for anything else, for the caller to retry or give up."""
        route.requests += 1
        route.failures += 1
        others = [r for r in self.routes if r is not route and r.down_until <= self._clock()]
        if not (route.is_proxy and others and proxy_unreachable(error)):
            return False
        if route.down_until <= self._clock():
            self.log.warning("Proxy %s failed (%s): its books go to the other addresses; tried again in %.0fs",
                             route.label, type(error).__name__, PROXY_RETRY_SECONDS)
        route.down_until = self._clock() + PROXY_RETRY_SECONDS
        return True

    def report(self) -> dict:
        """Requests and failures per address, for the statistics."""
        return {r.label: {"requests": r.requests, "failures": r.failures} for r in self.routes}


# Failures of the way to the proxy, before any request left it: requests' own proxy error (refused,
# unreachable, a CONNECT the proxy refused, 407 included), a connection never made (a SOCKS proxy's
# refusal), a connect timeout. A read timeout or a reset is not here: the request may have been seen.
_NEVER_SENT = (requests.exceptions.ProxyError, requests.exceptions.ConnectTimeout,
               urllib3.exceptions.ProxyError, urllib3.exceptions.NewConnectionError,
               urllib3.exceptions.ConnectTimeoutError)


def proxy_unreachable(error: BaseException) -> bool:
    """Whether a failed request died on the way to its proxy (the exchange never saw it), from the errors
    ccxt's raises on (requests wraps urllib3's, ccxt requests')."""
    if isinstance(error, ccxt.AuthenticationError) and " 407 " in str(error):
        return True  # an http:// target: the proxy's own answer "407 Proxy Authentication Required"
    return any(isinstance(cause, _NEVER_SENT) for cause in _causes(error))


def _causes(error: BaseException, depth: int = 8):
    """The error, what it was raised from, and what urllib3 and requests keep as its reason or argument."""
    seen, todo = set(), [error]
    while todo and len(seen) < depth * 4:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *getattr(current, "args", ())]
        todo.extend(e for e in linked if isinstance(e, BaseException))
