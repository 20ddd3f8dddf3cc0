"""What differs between exchanges, as data: ccxt class, options, depth, bulk calls, rate budget.

`create_exchange` builds a sync ccxt client from one row of VENUES plus the user's config entry.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import math
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from common.settled import SettledPaging

if TYPE_CHECKING:  # imported where a client is built: the controller and the scanner only check names
    import ccxt


@dataclass(frozen=True)
class ItemWeight:
    """Weight an exchange adds for the items an answer returns: 1 per `per` items (Hyperliquid: "an additional
    rate limit weight per 20 items returned", fundingHistory among them). The throttle charges it before
    sending, so it bounds the items by the request: at most one per `spacing_ms` in the body's [`start`,
    `end`] window (both inclusive; hourly settlements), at most `most` (the answer's cap), `most` when the
    body has no such window. Partial groups count whole: never less than the exchange charges."""
    per: int
    spacing_ms: int
    most: int
    start: str = "startTime"
    end: str = "endTime"

    def items(self, params: dict) -> int:
        """The most items an answer to `params` can hold."""
        start, end = params.get(self.start), params.get(self.end)
        if not (isinstance(start, int) and isinstance(end, int)):
            return self.most
        first, last = -(-start // self.spacing_ms), end // self.spacing_ms
        return max(0, min(last - first + 1, self.most))

    def weight(self, params: dict) -> int:
        return -(-self.items(params) // self.per)


@dataclass(frozen=True)
class RateBudget:
    """An exchange's published rate limit: at most `limit` units of weight in any `window` seconds, per IP
    or per endpoint (bitget, gate count each endpoint apart)."""
    limit: float
    window: float
    per_endpoint: bool = False
    # The exchange counts a request when it arrives, at some moment between our sending it and our reading
    # its answer, however late a loaded host sends it. So the throttle holds each request's weight until
    # `window` seconds after its answer (not after it left), plus `guard` for the exchange's clock ticking in
    # milliseconds apart from ours; the guard also starts our clock minute that much late (used weight).
    guard: float = 0.01
    # Requests leave evenly spaced, one unit of weight every window / limit seconds, `burst` x limit of it
    # back to back at most: a window's worth never leaves at once to pile up on the host and the network.
    burst: float = 0.1
    # Binance counts request weight, and ccxt's cost of a call is that weight, except where `bulk_weights`
    # (path -> weight of the call without a symbol) corrects it. Elsewhere every request weighs 1.
    ccxt_cost_is_weight: bool = False
    bulk_weights: dict = field(default_factory=dict)
    # The heaviest request a cycle sends, (what, weight): a share of the budget smaller than it could never
    # send it (a configuration error, not an overspend).
    heaviest: tuple[str, float] = ("a request", 1.0)
    # Binance reports in a response header the weight already used on the IP in the current clock minute,
    # ours and any other program's (a trading bot, a worker that restarted mid-minute). The throttle never
    # plans below it: (header, the IP's whole limit per minute).
    used_weight_header: tuple[str, float] | None = None
    # Answers that mean the IP is banned, beside 418: status -> seconds every request waits when the answer
    # carries no Retry-After (Bybit answers a ban with a bare 403 and asks for at least 10 minutes).
    ban_statuses: dict = field(default_factory=dict)
    # Where the exchange gives each endpoint its own limit (OKX: books-full 10 per 2 s, books 40): path ->
    # limit within the same window; other endpoints take `limit`. Only with per_endpoint.
    endpoint_limits: dict = field(default_factory=dict)
    # Where one path serves every kind of request and the kind is in the body (Hyperliquid's POST /info
    # {"type": ...}): type -> weight, "*" for every other type. Overrides ccxt's cost, which halves them.
    type_weights: dict = field(default_factory=dict)
    # Types whose answer adds weight by its items, type -> ItemWeight, on top of their type weight.
    item_weights: dict = field(default_factory=dict)

    def share(self, fraction: float) -> RateBudget:
        """The part of this budget one worker may use when other programs share the IP."""
        if fraction == 1:
            return self
        return replace(self, limit=self.limit * fraction,
                       endpoint_limits={path: limit * fraction for path, limit in self.endpoint_limits.items()})

    def share_problem(self, fraction: float) -> str | None:
        """Why a worker could not work within `fraction` of this budget (its heaviest call does not fit
        in it), or None."""
        what, weight = self.heaviest
        smallest = min([self.limit, *self.endpoint_limits.values()])
        if smallest * fraction >= weight:
            return None
        unit = "weight" if self.ccxt_cost_is_weight else "requests"
        return (f"rate_share {fraction:g} leaves {smallest * fraction:g} {unit} per {self.window:g} s, less "
                f"than its heaviest call weighs: {what}, {weight:g}; the smallest share that holds it is "
                f"{weight / smallest:g}")

    def limit_of(self, key: str) -> float:
        """The limit of a throttle key: an endpoint's own ("public:market/books-full"), else the budget's."""
        return self.endpoint_limits.get(key.partition(":")[2], self.limit) if self.endpoint_limits else self.limit

    @property
    def spacing(self) -> float:
        """Seconds between two units of weight leaving (GCRA's emission interval)."""
        return self.window / self.limit

    def spacing_of(self, key: str) -> float:
        return self.window / self.limit_of(key)

    def weigh(self, path: str, params: dict, ccxt_cost: float) -> float:
        if not self.ccxt_cost_is_weight:
            return 1.0
        if self.type_weights and "type" in params:
            kind = params["type"]
            by_items = self.item_weights.get(kind)
            return self.type_weights.get(kind, self.type_weights["*"]) + (by_items.weight(params) if by_items else 0)
        if "symbol" not in params and path in self.bulk_weights:
            return self.bulk_weights[path]
        return ccxt_cost


@dataclass
class Bulk:
    """What one cycle's bulk calls returned, by ccxt unified symbol: ccxt's ticker and funding structures."""
    tickers: dict = field(default_factory=dict)
    funding: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BulkCall:
    """One request of a cycle's bulk calls, and how each of its rows joins the cycle's Bulk. `fetch` answers
    rows by symbol (a dict) or a list of raw rows; `merge(client, bulk, symbol or None, row)` takes one row
    and may raise on a malformed one, which then costs that row only."""
    fetch: Callable[[ccxt.Exchange], object]
    merge: Callable[[ccxt.Exchange, Bulk, str | None, object], None]
    required: bool = False  # without it there is nothing to publish: the cycle is skipped (the tickers)

    @property
    def what(self) -> str:
        return self.fetch.__name__.replace("_", " ")


# -- the requests ------------------------------------------------------------------------------------
def tickers(client: ccxt.Exchange) -> dict:
    return client.fetch_tickers()


def book_tickers(client: ccxt.Exchange) -> dict:
    return client.fetch_bids_asks()


def funding_rates(client: ccxt.Exchange) -> dict:
    return client.fetch_funding_rates()


def htx_funding_rates(client: ccxt.Exchange) -> list:
    """ccxt's fetch_funding_rates raises NotSupported for HTX's linear swaps: the raw batch endpoint."""
    return _data_rows(client, "linear-swap-api/v1/swap_batch_funding_rate")


def htx_index_prices(client: ccxt.Exchange) -> list:
    return _data_rows(client, "linear-swap-api/v1/swap_index")


def htx_open_interest(client: ccxt.Exchange) -> list:
    """Every swap's open interest in one request. ccxt's fetch_open_interests refuses linear markets and its
    fetch_open_interest asks per contract (/v5/market/open_interest): the raw v1 endpoint, swaps only (`all`
    would add the dated linear futures)."""
    return _data_rows(client, "linear-swap-api/v1/swap_open_interest",
                      {"contract_type": "swap", "business_type": "swap"})


def _data_rows(client: ccxt.Exchange, path: str, params: dict | None = None) -> list:
    return _rows_under_data(client.request(path, ["contract", "public"], "GET", params or {}), path)


def _rows_under_data(answer, path: str) -> list:
    rows = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        import ccxt
        raise ccxt.BadResponse(f"{path}: no list of rows under 'data'")
    return rows


def okx_mark_prices(client: ccxt.Exchange) -> dict:
    return client.fetch_mark_prices()


def okx_index_prices(client: ccxt.Exchange) -> list:
    """/market/index-tickers?quoteCcy=USDT: one index per base ("BTC-USDT"), shared by its USDT swap."""
    return _rows_under_data(client.publicGetMarketIndexTickers({"quoteCcy": "USDT"}), "market/index-tickers")


def okx_open_interest(client: ccxt.Exchange) -> list:
    return _rows_under_data(client.publicGetPublicOpenInterest({"instType": "SWAP"}), "public/open-interest")


def hyperliquid_contexts(client: ccxt.Exchange) -> list:
    """One POST /info {"type": "metaAndAssetCtxs"} for the whole market: funding, mark, oracle, open interest,
    day volumes, impact prices. ccxt's fetch_tickers and fetch_funding_rates would post it twice (and
    fetch_tickers reloads spot markets too): one request, each row parsed by both of ccxt's parsers."""
    answer = client.publicPostInfo({"type": "metaAndAssetCtxs"})
    if not (isinstance(answer, list) and len(answer) == 2 and isinstance(answer[0], dict)
            and isinstance(answer[0].get("universe"), list) and isinstance(answer[1], list)):
        import ccxt
        raise ccxt.BadResponse("metaAndAssetCtxs: not [{universe: [...]}, [contexts]]")
    universe, contexts = answer[0]["universe"], answer[1]
    if len(universe) != len(contexts):
        import ccxt
        raise ccxt.BadResponse(f"metaAndAssetCtxs: {len(universe)} assets but {len(contexts)} contexts")
    return [{**asset, **context} if isinstance(asset, dict) and isinstance(context, dict) else context
            for asset, context in zip(universe, contexts)]


def binance_open_interest(client: ccxt.Exchange, symbol: str) -> dict:
    """/fapi/v1/openInterest: one symbol's, with Binance's time of it (weight 1): the bulk rows carry none."""
    return client.fetch_open_interest(symbol)


def binance_funding_intervals(client: ccxt.Exchange) -> dict:
    """Lists only the symbols off the default 8 h schedule (so an empty answer is a normal one)."""
    return client.fetch_funding_intervals()


def htx_mark_price(client: ccxt.Exchange, symbol: str) -> dict:
    """HTX has no bulk mark price: the close of the current mark-price candle (one request per symbol)."""
    candles = client.fetch_ohlcv(symbol, "1m", None, 1, {"price": "mark"})
    return {"markPrice": candles[-1][4]}


# -- how their rows join the cycle's Bulk ------------------------------------------------------------
def set_ticker(_client, bulk: Bulk, symbol: str, row: dict) -> None:
    bulk.tickers[symbol] = _mapping(row)


def set_ticker_and_its_funding(client: ccxt.Exchange, bulk: Bulk, symbol: str, row: dict) -> None:
    """Bybit's ticker rows carry the funding too: ccxt's own funding parser on the same raw row."""
    bulk.tickers[symbol] = _mapping(row)
    bulk.funding[symbol] = client.parse_funding_rate(row["info"], client.market(symbol))


def set_bid_ask(_client, bulk: Bulk, symbol: str, row: dict) -> None:
    if symbol in bulk.tickers:
        bulk.tickers[symbol].update(bid=row["bid"], ask=row["ask"])


def set_funding(_client, bulk: Bulk, symbol: str, row: dict) -> None:
    bulk.funding[symbol] = _mapping(row)


def set_raw_funding(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    parsed = client.parse_funding_rate(_mapping(row))
    bulk.funding[parsed["symbol"]] = parsed


def set_htx_index(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    symbol = client.safe_symbol(_mapping(row).get("contract_code"), None, "-", "swap")
    if symbol in bulk.tickers:
        bulk.tickers[symbol]["indexPrice"] = client.safe_number(row, "index_price")


# HTX's ticker rows already use `amount` (the day's volume): the open interest joins their info under this name.
HTX_OPEN_INTEREST_FIELD = "open_interest_amount"


def set_htx_open_interest(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    """`amount` is in base units (HTX's own volume x contract size; `volume` counts contracts). A value that is
    no number raises here, costing this row's open interest only, not the symbol's row on the board."""
    symbol = client.safe_symbol(_mapping(row).get("contract_code"), None, "-", "swap")
    if symbol in bulk.tickers:
        bulk.tickers[symbol]["info"][HTX_OPEN_INTEREST_FIELD] = _amount(row.get("amount"))


def _amount(value) -> float | None:
    """A non-negative finite number, or None when the row carries none; anything else is malformed."""
    if value is None or value == "":
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"amount {str(value)[:40]!r} is not a non-negative number")
    return number


def set_mark_price(_client, bulk: Bulk, symbol: str, row: dict) -> None:
    if symbol in bulk.tickers:
        bulk.tickers[symbol]["markPrice"] = _mapping(row)["markPrice"]


def set_okx_index(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    symbol = client.safe_symbol(f"{_mapping(row).get('instId')}-SWAP", None, "-", "swap")
    if symbol in bulk.tickers:
        bulk.tickers[symbol]["indexPrice"] = client.safe_number(row, "idxPx")


def set_okx_open_interest(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    """oiCcy: base units (oi counts contracts); read where the venue's `open_interest` says, the ticker's info."""
    symbol = client.safe_symbol(_mapping(row).get("instId"), None, "-", "swap")
    if symbol in bulk.tickers:
        bulk.tickers[symbol]["info"]["oiCcy"] = row.get("oiCcy")


def set_hyperliquid_context(client: ccxt.Exchange, bulk: Bulk, _symbol, row: dict) -> None:
    ticker = client.parse_ticker(_mapping(row))
    bulk.tickers[ticker["symbol"]] = ticker
    bulk.funding[ticker["symbol"]] = client.parse_funding_rate(row)


def _mapping(row) -> dict:
    if not isinstance(row, dict):
        raise TypeError(f"a row is a {type(row).__name__}, not an object")
    return row


TICKERS = BulkCall(tickers, set_ticker, required=True)
FUNDING_RATES = BulkCall(funding_rates, set_funding)


@dataclass(frozen=True)
class Venue:
    ccxt_id: str
    display_name: str               # in the statistics block
    # Restrict load_markets to USDT-margined swaps: fewer start-up requests, smaller process.
    options: dict
    book_limit: int | None          # the `limit` asked of fetch_order_book: the REST maximum
    # The published budget of the exchange. None: ccxt's own throttle (rateLimit x cost), one client.
    budget: RateBudget | None
    # The requests of one cycle, in order; every one answers for every listed perpetual (the board).
    bulk_calls: tuple[BulkCall, ...] = (TICKERS, FUNDING_RATES)
    book_params: dict = field(default_factory=dict)  # extra params of fetch_order_book
    # ccxt's field for the next funding time: on all five (ccxt 4.5.90) it is fundingTimestamp, the time of
    # the upcoming settlement; nextFundingTimestamp is empty (binance, bybit, bitget, gate) or the one after.
    next_funding_field: str = "fundingTimestamp"
    # Where the funding structures do not say a symbol's interval: a request at each market load answering
    # {symbol: ccxt funding interval} for the symbols off `default_funding_hours` (binance).
    funding_intervals: Callable[[ccxt.Exchange], dict] | None = None
    default_funding_hours: float | None = None
    # The open interest in the raw ticker rows: (field, whether it counts contracts); None where they lack it.
    open_interest: tuple[str, bool] | None = None
    # Order books in flight at once. A synchronous client sending one request at a time is bound by the
    # round trip (N <= interval / RTT); several clients sharing one throttle stay inside the same budget.
    # In flight = requests per second x round trip, and the round trip is the network's plus the time the
    # answer waits for parsing: Bybit's 600 requests / 5 s (120/s) of 1000-level books, whose answers took
    # ~100 ms at a 50 ms network round trip with a busy parser, want 12; HTX's 300 books and 300 mark prices
    # (small answers) 8.
    book_threads: int = 4
    # Book depths the exchange's REST API accepts (a `depth` in the config outside them is a configuration
    # error at start, not a BadRequest every cycle); None: not checked (ccxt's generic row).
    depths: tuple | range | None = None
    # Per-symbol requests beside the book, for fields no bulk call carries: functions (client, symbol) ->
    # {ccxt field: value}, fetched on the book's client within the same budget (config: per_symbol_extras).
    symbol_extras: tuple = ()
    # The raw ticker field holding the day's volume in base units where ccxt's baseVolume holds something else
    # (OKX: vol24h counts contracts, volCcy24h is base units) or nothing (Hyperliquid: dayBaseVlm).
    base_volume_field: str | None = None
    # The bulk rows' bid/ask are impact prices, not the top of the book (Hyperliquid's impactPxs): the board
    # carries them as impact_bid/impact_ask and its bid/ask stay null.
    impact_prices: bool = False
    # How the settled funding history pages (common/settled.py); None: not fetched (ccxt's generic row).
    settled: SettledPaging | None = None
    # Where no bulk call carries the open interest but a per-symbol one does: (client, symbol) -> ccxt's open
    # interest structure, fetched in a rotation between cycles (common/open_interest.py).
    rotating_open_interest: Callable[[ccxt.Exchange, str], dict] | None = None

    def depth_problem(self, depth) -> str | None:
        """Why the exchange would reject a `depth` from the config, or None when it accepts it."""
        if self.depths is None or depth is None or depth in self.depths:
            return None
        shown = (f"{self.depths.start}..{self.depths.stop - 1}" if isinstance(self.depths, range)
                 else ", ".join(map(str, self.depths)))
        return f"depth {depth!r} is not one the exchange accepts ({shown})"


HYPERLIQUID_FUNDING_ITEMS = ItemWeight(20, 3_600_000, 500)  # 500 hourly settlements at most: 25 more

VENUES: dict[str, Venue] = {
    # 2400 weight / min, kept as 200 per 5 s so that a restarted worker cannot add a minute's burst to what
    # its predecessor just spent. Cycle: 24hr 40 + bookTicker 5 + premiumIndex 10 (ccxt charges it
    # 1) + depth 20 per symbol at 1000 levels (10 at 500, 5 at 100). 24hr has no bid/ask (bookTicker) nor
    # funding (premiumIndex, next funding in fundingTimestamp). The interval comes from fetch_funding_intervals
    # (/fapi/v1/fundingInfo, its own limit), listing only non-8 h symbols. No open interest in bulk rows.
    "binance": Venue("binanceusdm", "Binance", {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap",
                                                "defaultSubType": "linear"}, 1000,
                     RateBudget(200, 5.0, ccxt_cost_is_weight=True, bulk_weights={"premiumIndex": 10},
                                heaviest=("the 24 h tickers (/fapi/v1/ticker/24hr)", 40),
                                used_weight_header=("X-MBX-USED-WEIGHT-1M", 2400)),
                     bulk_calls=(TICKERS, BulkCall(book_tickers, set_bid_ask), FUNDING_RATES),
                     funding_intervals=binance_funding_intervals, default_funding_hours=8.0,
                     book_threads=2, depths=(5, 10, 20, 50, 100, 500, 1000), rotating_open_interest=binance_open_interest,
                     settled=SettledPaging(1000, forward=True, own_limit=(500, 300.0))),
    # 600 requests / 5 s per IP; over it, the IP is banned and every answer is a bare 403 ("wait for at
    # least 10 minutes", usually 30). /v5/market/tickers?category=linear carries bid, ask, last, volume, mark,
    # index, funding rate, interval, next funding time and open interest (base units): one bulk request.
    "bybit": Venue("bybit", "Bybit", {"fetchMarkets": {"types": ["linear"]}, "defaultType": "swap",
                                      "defaultSubType": "linear"}, 1000,
                   RateBudget(600, 5.0, ban_statuses={403: 600.0}),
                   bulk_calls=(BulkCall(tickers, set_ticker_and_its_funding, required=True),),
                   open_interest=("openInterest", False), depths=range(1, 1001), book_threads=12,
                   settled=SettledPaging(200, older_than=lambda before, _: {"endTime": before - 1})),
    # 20 requests / s per endpoint: the books (merge-depth) have the budget to themselves. Book depth is a
    # gear: "max" (not a number). fetch_funding_rates -> /current-fund-rate: rate, next funding time and
    # interval for all symbols. Open interest: the tickers' holdingAmount (base units).
    "bitget": Venue("bitget", "Bitget", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap",
                                         "defaultSubType": "linear",
                                         "fetchFundingRates": {"method": "publicMixGetV2MixMarketCurrentFundRate"}},
                    "max", RateBudget(20, 1.0, per_endpoint=True), open_interest=("holdingAmount", False),
                    book_threads=2, depths=(1, 5, 15, 50, "max"),
                    settled=SettledPaging(100, older_than=lambda _, page: {"pageNo": page})),
    # 800 market-data requests / s per IP. Depth is 150 levels fixed (type=step0; ccxt ignores `limit`).
    # Funding and index from raw batch endpoints (ccxt has no bulk method for linear swaps); HTX's
    # funding_time is the upcoming settlement: ccxt puts it in fundingTimestamp. The mark price only per
    # contract (mark-price candles), beside the book. Open interest from the raw bulk endpoint (swap_open_interest):
    # one request a cycle, its `amount` in base units.
    "htx": Venue("htx", "HTX", {"fetchMarkets": {"types": {"spot": False, "linear": True, "inverse": False}},
                                "defaultType": "swap", "defaultSubType": "linear"}, None, RateBudget(800, 1.0),
                 bulk_calls=(TICKERS, BulkCall(htx_funding_rates, set_raw_funding),
                             BulkCall(htx_index_prices, set_htx_index),
                             BulkCall(htx_open_interest, set_htx_open_interest)),
                 open_interest=(HTX_OPEN_INTEREST_FIELD, False), depths=(150,), symbol_extras=(htx_mark_price,),
                 book_threads=8, settled=SettledPaging(100, older_than=lambda before, _: {"end_time": before - 1})),
    # 200 requests / 10 s per endpoint: the books (order_book) have the budget to themselves. Tickers have no
    # next funding time: fetch_funding_rates (/contracts) puts it in fundingTimestamp. Open interest: the
    # tickers' total_size, in contracts.
    "gateio": Venue("gate", "Gate.io", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap",
                                        "swap": {"fetchMarkets": {"settlementCurrencies": ["usdt"]}}}, 300,
                    RateBudget(200, 10.0, per_endpoint=True), open_interest=("total_size", True),
                    book_threads=2, depths=range(1, 301),
                    settled=SettledPaging(1000, older_than=lambda before, _: {"until": before - 1})),
    # Each endpoint has its own limit per IP, counted over 2 s: tickers 20, funding-rate 10, mark-price 10,
    # index-tickers 20, open-interest 20, books 40 (<= 400 levels), books-full 10 (up to 5000). A book deeper
    # than 400 levels goes to books-full (ccxt picks it by `limit`): the deepest book costs a quarter of the
    # budget a 400-level one has. Amounts count contracts of ctVal (ccxt's contractSize). Funding: fundingTime
    # is the upcoming settlement, nextFundingTime the one after; ccxt takes each symbol's interval from the gap.
    # No Retry-After on a 429 (code 50011).
    "okx": Venue("okx", "OKX", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}, 5000,
                 RateBudget(20, 2.0, per_endpoint=True,
                            endpoint_limits={"market/books": 40, "market/books-full": 10, "public/funding-rate": 10,
                                             "public/mark-price": 10,
                                             # per IP and instrument at OKX; per IP here (never more)
                                             "public/funding-rate-history": 10}),
                 bulk_calls=(TICKERS, FUNDING_RATES, BulkCall(okx_mark_prices, set_mark_price),
                             BulkCall(okx_index_prices, set_okx_index), BulkCall(okx_open_interest, set_okx_open_interest)),
                 open_interest=("oiCcy", False), base_volume_field="volCcy24h", depths=range(1, 5001),
                 book_threads=4,
                 # docs-v5 "Get funding rate history": limit "The maximum is 400; The default is 400" (it was 100,
                 # as ccxt's paginate still assumes): a 30-day backfill of an hourly swap takes 2 pages, not 8.
                 settled=SettledPaging(400, older_than=lambda before, _: {"after": before})),
    # 1200 weight / min per IP, kept as 100 per 5 s (as Binance's minute). Every request is POST /info; its
    # weight depends on the body's type: l2Book 2, metaAndAssetCtxs (and most others) 20, while ccxt charges
    # 10 for those. One metaAndAssetCtxs per cycle carries the whole market but no best bid/ask: its impactPxs
    # are ccxt's bid/ask, carried apart (impact_prices). The book: 20 levels a side, whatever the limit.
    # Funding every hour, on the hour, for every perpetual (USDC-settled: BTC/USDC:USDC).
    "hyperliquid": Venue("hyperliquid", "Hyperliquid", {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"},
                         None, RateBudget(100, 5.0, ccxt_cost_is_weight=True, type_weights={"l2Book": 2, "*": 20},
                                          # "Rate limits": fundingHistory (with userFills, userFunding, ...) has
                                          # "an additional rate limit weight per 20 items returned"; an answer
                                          # holds at most 500 hourly settlements.
                                          item_weights={"fundingHistory": HYPERLIQUID_FUNDING_ITEMS},
                                          heaviest=("the market's asset contexts (metaAndAssetCtxs)", 20)),
                         bulk_calls=(BulkCall(hyperliquid_contexts, set_hyperliquid_context, required=True),),
                         default_funding_hours=1.0, open_interest=("openInterest", False),
                         base_volume_field="dayBaseVlm", impact_prices=True, depths=range(1, 21), book_threads=2,
                         settled=SettledPaging(500, forward=True,
                                               heaviest=20 + HYPERLIQUID_FUNDING_ITEMS.weight({}))),
}

_SCHEME_AND_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+")


def venue_for(name: str) -> Venue:
    """The table row for a config name; any other ccxt id gets a generic swap-only row."""
    if name in VENUES:
        return VENUES[name]
    if name not in ccxt_exchange_ids():
        raise ValueError(f"unknown exchange {name!r}: not one of {sorted(VENUES)} nor a ccxt exchange id")
    return Venue(name, name, {"defaultType": "swap"}, None, budget=None, book_threads=1)


@functools.cache
def ccxt_exchange_ids() -> frozenset[str]:
    """ccxt's exchange ids (ccxt.exchanges), read off its package: one module per exchange beside __init__.
    Importing ccxt costs 60 MB and a third of a second, which processes that only check names need not pay."""
    package = Path(importlib.util.find_spec("ccxt").origin).parent
    return frozenset(p.stem for p in package.glob("*.py") if p.stem != "__init__")


def redirect_urls(urls, api_url: str):
    """Replace scheme and host of every URL in ccxt's (nested) urls['api'], keeping path and query."""
    base = api_url.rstrip("/")
    if isinstance(urls, dict):
        return {k: redirect_urls(v, api_url) for k, v in urls.items()}
    if isinstance(urls, str):
        return _SCHEME_AND_HOST.sub(lambda _: base, urls, count=1)
    return urls


# The longest a Retry-After is honoured in one go: a 418 ban can last days, and a worker paused for days
# helps nobody; after the cap the next answer tells again.
MAX_PAUSE_SECONDS = 300.0
# How often a request that waits for answers still in flight looks again (their time is unknown).
IN_FLIGHT_POLL_SECONDS = 0.005


@dataclass(eq=False)
class Ticket:
    """One request let through: its weight stays in the window until `window` after its answer."""
    key: str
    weight: float
    sent_at: float
    answered_at: float | None = None


class SharedThrottle:
    """Keeps every ccxt client of one exchange inside its RateBudget, counted as the exchange counts it.

    The exchange counts a request when it arrives, which is after we let it go (late by any amount on a
    loaded host) and before we read its answer. So a request leaves only when the weight of the requests
    still in flight or answered less than `window` (+ guard) ago leaves room for it: then no window of the
    exchange, wherever it falls, can hold more than the budget, whatever the delays (tests/unit/
    test_throttle.py proves it on random delays). Requests are also spaced evenly (GCRA: one unit of weight
    every window / limit seconds, a small burst at most), so a window's worth never leaves at once.

    Also, on its endpoint where the exchange counts per endpoint; until a Retry-After of a 429/418 (or a
    venue's ban status) is over, every request of the worker waits with it (one thread that kept sending
    after a 429 is what turns Binance's 429s into IP bans); and, where the exchange reports the weight used
    on the IP, until the clock minute has room for it. Thread-safe: several clients fetching books at once
    share one budget. ccxt's fetch2 calls it with the cost from `calculate_rate_limiter_cost`, which
    create_exchange makes an (endpoint, weight) pair, and `answered` when the request is over; `observe`
    sees every answer's status and headers."""

    def __init__(self, budget: RateBudget, log: logging.Logger | None = None, clock=time.monotonic,
                 wall_clock=time.time, sleep=time.sleep):
        self.budget = budget
        self.log = log or logging.getLogger("throttle")
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self._lock = threading.Lock()
        self._local = threading.local()                     # .ticket: the thread's request in flight
        self._tat: dict[str, float] = defaultdict(float)    # GCRA's theoretical arrival time, per endpoint
        self._in_flight: dict[str, float] = defaultdict(float)       # endpoint -> weight not answered yet
        self._answered: dict[str, deque] = defaultdict(deque)        # endpoint -> Tickets, by answer time
        self._answered_weight: dict[str, float] = defaultdict(float)
        self._paused_until = 0.0                            # monotonic
        self._minute, self._minute_used = -1, 0.0           # clock minute, weight used on the IP in it
        self._held_minute = -1                              # the last minute whose hold was logged

    def __call__(self, cost=None) -> Ticket:
        """Wait until the request may leave; the thread's previous request is over by now (a ccxt client
        sends one at a time), should nothing have said so."""
        self.answered()
        while True:
            ticket, wait = self.acquire(cost)
            if ticket is not None:
                self._local.ticket = ticket
                return ticket
            self._sleep(min(wait, 1.0))  # re-check: a pause may have been set meanwhile

    def acquire(self, cost=None) -> tuple[Ticket | None, float]:
        """(ticket, 0) when the request may leave now, else (None, seconds to wait before asking again)."""
        endpoint, weight = cost if isinstance(cost, tuple) else ("", 1.0)
        key = endpoint if self.budget.per_endpoint else ""
        if weight > self.budget.limit_of(key):  # config.py refuses such a rate_share; never silently overspend
            raise ValueError(f"a request of weight {weight:g} is heavier than the whole budget "
                             f"({self.budget.limit_of(key):g} per {self.budget.window:g} s)")
        with self._lock:
            now = self._clock()
            wait = self._wait(key, weight, now)
            return (None, wait) if wait > 0 else (self._record(key, weight, now), 0.0)

    def answered(self, ticket: Ticket | None = None) -> None:
        """The request is over (its answer read, or it failed): its weight leaves the window `window`
        seconds from now. Without a ticket: the calling thread's latest request. Idempotent."""
        if ticket is None:
            ticket = getattr(self._local, "ticket", None)
            self._local.ticket = None
        if ticket is None:
            return
        with self._lock:
            if ticket.answered_at is not None:
                return
            ticket.answered_at = self._clock()
            self._in_flight[ticket.key] -= ticket.weight
            self._answered[ticket.key].append(ticket)
            self._answered_weight[ticket.key] += ticket.weight

    def paused_for(self) -> float:
        """Seconds left of a Retry-After pause (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    def observe(self, status: int, headers) -> None:
        """One answer of the exchange: a 429/418's (or a ban status's) Retry-After pauses every request; a
        reported used weight raises what this minute counts."""
        if status in (418, 429) or status in self.budget.ban_statuses:
            self._pause(status, _seconds(headers.get("Retry-After")))
        if self.budget.used_weight_header:
            used = _seconds(headers.get(self.budget.used_weight_header[0]))
            if used is not None:
                with self._lock:
                    self._roll_minute()
                    self._minute_used = max(self._minute_used, used)

    def _pause(self, status: int, retry_after: float | None) -> None:
        if retry_after is not None:
            seconds = min(retry_after, MAX_PAUSE_SECONDS)
        elif status in self.budget.ban_statuses:
            seconds = retry_after = self.budget.ban_statuses[status]  # the venue's own word, not capped
        else:
            return  # no header: the retry schedule alone applies
        with self._lock:
            until = self._clock() + seconds
            if until <= self._paused_until:
                return
            self._paused_until = until
        capped = f" (Retry-After {retry_after:g}s, capped)" if retry_after > seconds else ""
        self.log.warning("HTTP %d from the exchange: every request waits %.0fs%s", status, seconds, capped)

    def _wait(self, key: str, weight: float, now: float) -> float:
        """0 when a request of `weight` may leave now; else the seconds to wait first."""
        if self._paused_until > now:
            return self._paused_until - now
        return max(self._minute_wait(weight), self._spacing_wait(key, now), self._window_wait(key, weight, now))

    def _record(self, key: str, weight: float, now: float) -> Ticket:
        self._tat[key] = max(self._tat[key], now) + weight * self.budget.spacing_of(key)
        self._in_flight[key] += weight
        if self.budget.used_weight_header:
            self._minute_used += weight
        return Ticket(key, weight, now)

    def _spacing_wait(self, key: str, now: float) -> float:
        """GCRA: a request leaves once the ones before it are `spacing` apart per unit of weight, with a
        burst of `burst` x limit at most (charged after: a heavy call spaces out the ones after it)."""
        tolerance = self.budget.burst * self.budget.window
        return max(self._tat[key] - tolerance - now, 0.0)

    def _window_wait(self, key: str, weight: float, now: float) -> float:
        """Room for `weight` among the requests the exchange may still count: in flight, or answered less
        than window + guard ago."""
        hold = self.budget.window + self.budget.guard
        answered = self._answered[key]
        while answered and answered[0].answered_at + hold < now:
            self._answered_weight[key] -= answered.popleft().weight
        excess = self._in_flight[key] + self._answered_weight[key] + weight - self.budget.limit_of(key)
        if excess <= 1e-9:
            return 0.0
        for ticket in answered:
            excess -= ticket.weight
            if excess <= 1e-9:
                return ticket.answered_at + hold - now + 1e-6
        return IN_FLIGHT_POLL_SECONDS  # room only once answers still in flight come back

    def _minute_wait(self, weight: float) -> float:
        """Seconds until the clock minute that the exchange counts has room for `weight` (0: it has)."""
        if not self.budget.used_weight_header:
            return 0.0
        self._roll_minute()
        limit = self.budget.used_weight_header[1]
        if self._minute_used + weight <= limit:
            return 0.0
        wait = max(60.0 - self._minute_clock() % 60.0, 0.0005)
        if self._held_minute != self._minute:
            self._held_minute = self._minute
            self.log.warning("%.0f of the IP's %.0f weight used this minute (other programs included): "
                             "requests wait %.0fs for the next minute", self._minute_used, limit, wait)
        return wait

    def _minute_clock(self) -> float:
        """Wall time `guard` late: a new minute starts for us a little after the exchange's clock says so."""
        return self._wall_clock() - self.budget.guard

    def _roll_minute(self) -> None:
        minute = int(self._minute_clock() // 60)
        if minute != self._minute:
            self._minute, self._minute_used = minute, 0.0


def _seconds(value) -> float | None:
    """A numeric header value (Retry-After in seconds, a used weight), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number else None


def create_exchange(name: str, api_url: str | None = None, sandbox: bool = False, options: dict | None = None,
                    credentials: dict | None = None, timeout_ms: int = 10_000,
                    throttle: SharedThrottle | None = None, proxy: str | None = None) -> ccxt.Exchange:
    """A sync ccxt client for a config name. Its requests keep to the venue's RateBudget through `throttle`
    (shared by all clients of one worker), or a throttle of its own when none is given."""
    venue = venue_for(name)
    params = {"enableRateLimit": True, "timeout": timeout_ms, "options": _merge(venue.options, options or {})}
    params.update(credentials or {})
    import ccxt
    exchange = getattr(ccxt, venue.ccxt_id)(params)
    # Public market data needs no currency list; skipping it saves requests at start-up.
    exchange.has["fetchCurrencies"] = False
    if sandbox:
        exchange.set_sandbox_mode(True)
    if api_url:
        exchange.urls["api"] = redirect_urls(exchange.urls["api"], api_url)
    if proxy:
        exchange.proxies = {"http": proxy, "https": proxy}  # requests' own proxy map: http, https or socks
    if venue.budget is not None:
        _throttle_by_budget(exchange, throttle or SharedThrottle(venue.budget))
    return exchange


def _throttle_by_budget(exchange: ccxt.Exchange, throttle: SharedThrottle) -> None:
    """Replace ccxt's throttle (one queue, rateLimit x cost) with the budget's: fetch2 passes whatever
    calculate_rate_limiter_cost returns to throttle(), so the cost becomes an (endpoint, weight) pair. The
    throttle learns when each request is over: at its answer (read in full, before it is parsed), else when
    fetch2 ends (a request that failed without one)."""
    ccxt_cost = exchange.calculate_rate_limiter_cost
    budget = throttle.budget

    def endpoint_and_weight(api, method, path, params, config={}):  # noqa: B006 - ccxt's signature
        return f"{api}:{path}", budget.weigh(path, params, ccxt_cost(api, method, path, params, config))

    def observed(status, reason, url, method, headers, body, *rest):
        throttle.answered()
        throttle.observe(status, headers)
        return on_rest_response(status, reason, url, method, headers, body, *rest)

    def fetch2(*args, **kwargs):
        try:
            return send(*args, **kwargs)
        finally:
            throttle.answered()

    on_rest_response, send = exchange.on_rest_response, exchange.fetch2
    exchange.calculate_rate_limiter_cost = endpoint_and_weight
    exchange.throttle = throttle
    exchange.on_rest_response = observed  # called by ccxt's fetch with every answer, errors included
    exchange.fetch2 = fetch2  # every request of ccxt's sync clients goes through it, its throttle call too


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
