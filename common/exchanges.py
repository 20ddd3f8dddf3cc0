"""What differs between exchanges, as data: ccxt class, options, depth, bulk calls, rate budget.

`create_exchange` builds a sync ccxt client from one row of VENUES plus the user's config entry.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import ccxt


@dataclass(frozen=True)
class Venue:
    ccxt_id: str
    # Restrict load_markets to USDT-margined swaps: fewer start-up requests, smaller process.
    options: dict
    book_limit: int | None          # the `limit` asked of fetch_order_book: the REST maximum
    # ccxt's rateLimit in ms per unit of cost, tuned to the exchange's published budget (SPEC section 8):
    # ccxt's own defaults are more cautious than the exchange requires.
    rate_limit_ms: float
    extra: dict = field(default_factory=dict)
    # The bulk calls of one cycle, in order: "tickers" (fetch_tickers), "bids_asks" (fetch_bids_asks, when
    # the tickers lack bid/ask), then funding from "funding_rates" (fetch_funding_rates),
    # "funding_from_tickers" (ccxt's parser on the tickers' raw rows: no extra request) or "funding_raw"
    # (the endpoint extra["funding_batch"] where ccxt has no bulk method), and "index_raw" (index prices
    # from extra["index_batch"]).
    bulk_calls: tuple = ("tickers", "funding_rates")
    book_params: dict = field(default_factory=dict)  # extra params of fetch_order_book
    # ccxt's field for the next funding time: on all five (ccxt 4.5.90) it is fundingTimestamp, the time of
    # the upcoming settlement; nextFundingTimestamp is empty (binance, bybit, bitget, gate) or the one after.
    next_funding_field: str = "fundingTimestamp"
    # With "funding_intervals" in bulk_calls: fetch_funding_intervals at each market load (binance lists
    # only symbols off this default schedule).
    default_funding_hours: float | None = None
    # Order books in flight at once. A synchronous client sending one request at a time is bound by the
    # round trip (N <= interval / RTT); several clients sharing one throttle stay inside the same budget.
    book_threads: int = 4


VENUES: dict[str, Venue] = {
    # 2400 weight / min = 40 weight/s = 25 ms per weight; ccxt charges binance costs in weight units, +5%.
    # Cycle: 24hr 40 + bookTicker 5 + premiumIndex 10 (ccxt charges it 1) + depth@1000 20 per symbol:
    # ccxt spaces 46 + 20*7 = 186 units x 26.25 ms = 4.9 s, real weight 195 / 5 s = 2340 / min < 2400.
    # 24hr has no bid/ask (bookTicker) nor funding (premiumIndex, next funding in fundingTimestamp). The
    # interval comes from fetch_funding_intervals (/fapi/v1/fundingInfo, weight 0), listing only non-8 h symbols.
    "binance": Venue("binanceusdm", {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap",
                                     "defaultSubType": "linear"}, 1000, rate_limit_ms=25.0 * 1.05, book_threads=2,
                     bulk_calls=("tickers", "bids_asks", "funding_rates", "funding_intervals"),
                     default_funding_hours=8.0),
    # 600 requests / 5 s per IP = 120/s. ccxt charges every bybit public call cost 5 (rateLimit 20 ms x 5 =
    # 100 ms by default), so rateLimit = 1000 / 120 / 5 ms, +5% margin = 1.75 ms -> one request per 8.75 ms.
    # /v5/market/tickers?category=linear carries bid, ask, last, volume, mark, index, funding rate and next
    # funding time: one bulk request per cycle; ccxt's parse_funding_rate puts nextFundingTime in fundingTimestamp.
    "bybit": Venue("bybit", {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap",
                             "defaultSubType": "linear"}, 1000, rate_limit_ms=1000 / 120 / 5 * 1.05,
                   bulk_calls=("tickers", "funding_from_tickers")),
    # 20 requests / s per endpoint; ccxt's throttle is one global queue at cost 1, so 50 ms (+5%) keeps every
    # endpoint (merge-depth is the busy one) under 20/s. Book depth is a gear: "max" (not a number).
    # fetch_funding_rates -> /current-fund-rate: rate, next funding time and interval for all symbols.
    "bitget": Venue("bitget", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap", "defaultSubType": "linear",
                               "fetchFundingRates": {"method": "publicMixGetV2MixMarketCurrentFundRate"}}, "max",
                    rate_limit_ms=50.0 * 1.05, book_threads=2),
    # 800 market-data requests / s per IP; ccxt costs 1 per public contract call (v5 funding: 0.125). Depth is
    # 150 levels fixed (type=step0; ccxt ignores `limit`). ccxt's fetch_funding_rates raises NotSupported for
    # linear swaps: funding per symbol (fetch_funding_rate, /v5/market/funding_rate) or the raw batch endpoint
    # in extra. HTX's funding_time is the upcoming settlement: ccxt puts it in fundingTimestamp.
    "htx": Venue("htx", {"fetchMarkets": {"types": {"spot": False, "linear": True, "inverse": False}},
                         "defaultType": "swap", "defaultSubType": "linear"}, None,
                 rate_limit_ms=1000 / 800 * 1.05,
                 extra={"funding_batch": ("linear-swap-api/v1/swap_batch_funding_rate", ["contract", "public"]),
                        "index_batch": ("linear-swap-api/v1/swap_index", ["contract", "public"])},
                 bulk_calls=("tickers", "funding_raw", "index_raw")),
    "gateio": Venue("gate", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap",
                             "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt"]}}}, 300,
                    # 200 requests / 10 s per endpoint = 50 ms; ccxt's sync throttle spaces all calls, +5% margin.
                    # Tickers have no next funding time: fetch_funding_rates (/contracts) puts it in fundingTimestamp.
                    rate_limit_ms=50.0 * 1.05, book_threads=2),
}

_SCHEME_AND_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+")


def venue_for(name: str) -> Venue:
    """The table row for a config name; any other ccxt id gets a generic swap-only row."""
    if name in VENUES:
        return VENUES[name]
    if name not in ccxt.exchanges:
        raise ValueError(f"unknown exchange {name!r}: not one of {sorted(VENUES)} nor a ccxt exchange id")
    return Venue(name, {"defaultType": "swap"}, None, rate_limit_ms=0.0)


def redirect_urls(urls, api_url: str):
    """Replace scheme and host of every URL in ccxt's (nested) urls['api'], keeping path and query."""
    base = api_url.rstrip("/")
    if isinstance(urls, dict):
        return {k: redirect_urls(v, api_url) for k, v in urls.items()}
    if isinstance(urls, str):
        return _SCHEME_AND_HOST.sub(lambda _: base, urls, count=1)
    return urls


class SharedThrottle:
    """ccxt's throttle (request starts spaced by rateLimit x cost) made thread-safe and shared, so that
    several clients of one exchange together keep to one budget."""

    def __init__(self, rate_limit_ms: float):
        self.rate_limit_ms = rate_limit_ms
        self._lock = threading.Lock()
        self._next = 0.0

    def __call__(self, cost=None) -> None:
        spacing = self.rate_limit_ms * (1 if cost is None else cost) / 1000
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._next:
                    # Spaced from the moment a request really goes out, not from its planned slot: a thread
                    # that wakes late must not let the next one follow it closer than the spacing.
                    self._next = now + spacing
                    return
                wait = self._next - now
            time.sleep(wait)


def create_exchange(name: str, api_url: str | None = None, sandbox: bool = False, options: dict | None = None,
                    credentials: dict | None = None, timeout_ms: int = 10_000,
                    throttle: SharedThrottle | None = None) -> ccxt.Exchange:
    venue = venue_for(name)
    params = {"enableRateLimit": True, "timeout": timeout_ms, "options": _merge(venue.options, options or {})}
    if venue.rate_limit_ms:
        params["rateLimit"] = venue.rate_limit_ms
    params.update(credentials or {})
    exchange = getattr(ccxt, venue.ccxt_id)(params)
    # Public market data needs no currency list; skipping it saves requests at start-up.
    exchange.has["fetchCurrencies"] = False
    if sandbox:
        exchange.set_sandbox_mode(True)
    if api_url:
        exchange.urls["api"] = redirect_urls(exchange.urls["api"], api_url)
    if throttle is not None:
        throttle.rate_limit_ms = throttle.rate_limit_ms or exchange.rateLimit  # ccxt's own for other ids
        exchange.throttle = throttle  # ccxt's fetch2 calls self.throttle(cost) before every request
    return exchange


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
