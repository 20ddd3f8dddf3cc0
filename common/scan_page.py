"""The scanner's web side: the page `/` (plain HTML, CSS and JavaScript from common/scanner_page, no build
step) and the JSON API it polls, as a Starlette app.

Starlette and uvicorn: well kept, small, and uvicorn runs in a thread of its own beside pika's blocking
loop in the main thread. The handlers are plain functions, which Starlette runs in its thread pool, so that
taking the latest values' lock, or reading an asset's history from SQLite, never stalls the event loop.

The page's charts are drawn with uPlot (MIT; common/scanner_page/vendor/, with its license), served from
/static like the page's own files: the page needs nothing from the internet.

Exposure (docs/reference.md, "Security"), one ASGI layer around everything, static files included:
* every answer carries SECURITY_HEADERS (the page loads only its own script and style, in no frame);
* the Host header must name this scanner (`allowed_hosts`): a DNS-rebinding page, whose name resolves to
  127.0.0.1, is refused with 400, so it cannot read the API from a browser on this machine;
* with `scanner.access_token` (required off loopback), every request needs it: `Authorization: Bearer
  <token>`, or the cookie that `?token=<token>` sets once (HttpOnly, SameSite=Strict; the answer redirects
  to the same address without the token, so it stays out of the address bar and history); else 401.
"""
from __future__ import annotations

import hmac
import re
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Mapping, Optional, Protocol
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from common.realized import HistoryUnavailable
from common.scan import (USDC, FilterError, Leg, ScannerConfig, asset_of, is_loopback, opportunities, parse_filters,
                         split_listen, symbol_detail, usdc_rate)
from common.symbols import SYMBOL_PATTERN

PAGE = Path(__file__).resolve().parent / "scanner_page"
COMPACT_SYMBOL = re.compile(r"^[A-Za-z0-9]{1,64}(-[0-9]{6})?$")  # BTC, BTCUSDT, BTCUSDC, BTCUSDT-250328
NO_STORE = {"Cache-Control": "no-store"}
PAGE_HEADERS = {"Cache-Control": "no-cache"}
# The page loads only its own script and style, calls only its own API, and is shown in no frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
TOKEN_COOKIE = "futures_scan_token"
HISTORY_DAYS = (1, 30)   # GET /api/history/{base}?days=N: N from 1 to 30 (the recorder keeps 30 days by default)
DEFAULT_HISTORY_DAYS = 7
DAY_MS = 86_400_000
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class FastJSONResponse(JSONResponse):
    """orjson instead of the standard library: a table of every pair, every 2 s, serializes in a fifth of
    the time (a value that is NaN or infinite becomes null, which the table never holds anyway)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class LatestView(Protocol):
    """What the scanner process offers the web side."""
    def legs_by_symbol(self, now_ms: int, asset: str | None = None) -> dict[str, list[Leg]]:
        """symbol -> its legs; only those of one base asset (upper case, "BTC") when given."""
    def status(self, now_ms: int) -> dict: ...
    def realized(self) -> Mapping[tuple[str, str], Mapping[str, Optional[float]]]:
        """{(exchange, symbol): {"1d": realized APR or None, ...}} as last refreshed (common/realized.py)."""
    def history(self, base: str, from_ms: int, to_ms: int) -> dict:
        """common/history.history_for_base's answer; HistoryUnavailable when the database cannot be read."""


def make_app(view: LatestView, config: ScannerConfig) -> Starlette:
    def page(_request: Request):
        return FileResponse(PAGE / "index.html", headers=PAGE_HEADERS)

    def api_opportunities(request: Request):
        try:
            filters = parse_filters(request.query_params)
        except FilterError as e:
            return _bad_request(str(e))
        now = _now_ms()
        return FastJSONResponse(opportunities(view.legs_by_symbol(now), now, config, filters, view.realized()),
                                headers=NO_STORE)

    def api_symbol(request: Request):
        wanted = request.path_params["symbol"]
        if not _names_an_asset(wanted):
            return _bad_request(_not_an_asset("symbol", wanted))
        asset = asset_of(wanted)
        now = _now_ms()
        legs = view.legs_by_symbol(now, asset)
        if not legs:
            return JSONResponse({"error": f"symbol: no exchange has published {asset}"}, 404, headers=NO_STORE)
        quoted = legs if asset == USDC else view.legs_by_symbol(now, USDC)
        rate = usdc_rate((leg for held in quoted.values() for leg in held), now, config.stale_after_ms)
        return FastJSONResponse(symbol_detail(asset, legs, now, config, rate, view.realized()), headers=NO_STORE)

    def api_history(request: Request):
        wanted = request.path_params["base"]
        if not _names_an_asset(wanted):
            return _bad_request(_not_an_asset("base", wanted))
        unknown = sorted(set(request.query_params) - {"days"})
        if unknown:
            return _bad_request(f"unknown query parameter {unknown[0][:40]!r}; known: days")
        days = _history_days(request.query_params.get("days"))
        if days is None:
            return _bad_request(f"days: must be a whole number from {HISTORY_DAYS[0]} to {HISTORY_DAYS[1]}")
        now = _now_ms()
        try:
            return FastJSONResponse(view.history(asset_of(wanted), now - days * DAY_MS, now), headers=NO_STORE)
        except HistoryUnavailable as e:
            return _error(f"the history database cannot be read: {e}", 503)

    def api_status(_request: Request):
        return JSONResponse(view.status(_now_ms()), headers=NO_STORE)

    app = Starlette(routes=[
        Route("/", page),
        Route("/api/opportunities", api_opportunities),
        Route("/api/symbol/{symbol:path}", api_symbol),  # path: a unified symbol has a "/"
        Route("/api/history/{base:path}", api_history),
        Route("/api/status", api_status),
        Mount("/static", StaticFiles(directory=PAGE), name="static"),
    ])
    token = config.access_token.get_secret_value() if config.access_token else None
    return Guard(app, allowed_hosts(config), token)


def _names_an_asset(text: str) -> bool:
    return bool(COMPACT_SYMBOL.match(text) or SYMBOL_PATTERN.match(text))


def _not_an_asset(parameter: str, text: str) -> str:
    return f"{parameter}: {text[:40]!r} is not an asset or a symbol, e.g. BTC, BTCUSDT, BTCUSDC or BTC/USDC:USDC"


def _history_days(text: Optional[str]) -> Optional[int]:
    """?days=N as a whole number of days in HISTORY_DAYS (DEFAULT_HISTORY_DAYS when absent); None when bad."""
    if text is None or not text.strip():
        return DEFAULT_HISTORY_DAYS
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    days = int(text)
    return days if HISTORY_DAYS[0] <= days <= HISTORY_DAYS[1] else None


def allowed_hosts(config: ScannerConfig) -> frozenset[str]:
    """The listen address's host, the loopback names when it listens on loopback or on every address, and
    the configured names: lower case, without port or brackets."""
    host = split_listen(config.listen)[0].lower()
    names = {host, *config.allowed_hosts}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names.update(LOOPBACK_NAMES)
    return frozenset(names - {"0.0.0.0", "::"})


def host_name(header: str) -> str:
    """'Example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class Guard:
    """The ASGI layer of the module docstring: security headers on every answer, the Host check, the token."""

    def __init__(self, app, hosts: frozenset[str], token: Optional[str]):
        self.app, self.hosts = app, hosts
        self.token = token.encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            return await refusal(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request):
        """The answer that refuses this request, or None to serve it."""
        if host_name(request.headers.get("host", "")) not in self.hosts:
            return _error("Host: this scanner is not served under that name (scanner.allowed_hosts)", 400)
        if self.token is None:
            return None
        offered = request.query_params.get("token")
        if offered is not None:
            return self._cookie_from_query(request, offered)
        if self._matches(_bearer(request.headers.get("authorization", ""))) or \
                self._matches(_cookie(request.headers.get("cookie", ""))):
            return None
        return _error("an access token is required: Authorization: Bearer <token>, or open the page once "
                      "with ?token=<token>", 401, {"WWW-Authenticate": "Bearer"})

    def _cookie_from_query(self, request: Request, offered: str):
        if not self._matches(offered):
            return _error("the access token is wrong", 401, {"WWW-Authenticate": "Bearer"})
        rest = urlencode([(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"])
        answer = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), 303, headers=NO_STORE)
        answer.set_cookie(TOKEN_COOKIE, offered, httponly=True, samesite="strict", path="/")
        return answer

    def _matches(self, offered: Optional[str]) -> bool:
        # Constant time: the comparison must not tell how much of a guess was right.
        return offered is not None and hmac.compare_digest(offered.encode(), self.token)


def _bearer(header: str) -> Optional[str]:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookie(header: str) -> Optional[str]:
    try:
        morsel = SimpleCookie(header).get(TOKEN_COOKIE)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no token
        return None
    return morsel.value if morsel else None


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers={**NO_STORE, **(headers or {})})


def _bad_request(message: str) -> JSONResponse:
    return _error(message, 400)


def _now_ms() -> int:
    return int(time.time() * 1000)
