"""The scanner's arithmetic (docs/reference.md, "The scanner"): legs from the latest board rows and snapshots, funding
normalized to a yearly rate, the pair per base asset (across exchanges and across USDT and USDC perpetuals),
spreads, basis and entry costs at size, USDC prices converted to USDT.

Plain functions of plain values: no broker, no clock (callers pass `now_ms`), no I/O. Every value may be
missing (null in the messages), and every function answers None rather than guessing. Decisions where
the reference is silent:
* A leg without `funding_rate` or `funding_interval_hours` has no `funding_apr` and is never paired:
  assuming 8 h would compare a 1 h rate with an 8 h one, the error the scanner exists to avoid.
* A leg's values: each field from the newest message (board row or snapshot) that has it, among the
  fresh messages when one is fresh, so that a fresh leg never shows a stale message's value. Its age is
  that of the newest message used.
* `min_volume_usd` filters legs before the pair is chosen: the pair is the widest among liquid legs.
  A leg's USD volume is `volume_24h` x its mid (bid/ask; else last; else mark); unknown fails the filter.
* A book's age is its snapshot's `timestamp` (our clocks), not the exchange's book time.
* Only linear perpetuals quoted and settled in USDT or USDC pair (`BTC/USDT:USDT`, `BTC/USDC:USDC`): a dated
  future has no funding, and another quote (an inverse `BTC/USD:BTC`) has no rate to USDT here. Such legs
  are still shown in their asset's detail.
* A USDC leg's USD volume (for `min_volume_usd`) is its volume x its mid x the USDC/USDT rate; with no fresh
  rate it is unknown and fails the filter, as any unknown volume does.
* `min_open_interest_usd` works as `min_volume_usd` does, on `open_interest` (base units) x the same mid: before
  the pair is chosen, a USDC leg's at the rate, an unknown open interest (or rate) failing it.
* A pair of two USDC legs compares them in USDC: same-quote pairs never need the rate, and their costs at
  size are in their own quote. A cross-quote pair's VWAPs are in USDT.
* Realized funding (SPEC 14) comes in as plain values, {(exchange, symbol): {"1d": apr or None, ...}} (the
  scanner reads them from the history database, common/realized.py); a leg absent from them has every window
  null. It never chooses the pair: the pair is the live one, and its realized spread is what that pair would
  have earned. `sort=realized_7d` orders the rows by it, descending, nulls last.
"""
from __future__ import annotations

import bisect
import functools
import ipaddress
import itertools
import math
import operator
import re
import unicodedata
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr, field_validator, model_validator

from common.board import Board, BoardRow
from common.models import FuturesData
from common.symbols import SYMBOL_PATTERN, routing_symbol

HOURS_PER_YEAR = 24 * 365
BPS = 1e4
DEFAULT_TAKER_FEE_BPS = {"binance": 5.0, "bybit": 5.5, "bitget": 6.0, "htx": 5.0, "gateio": 5.0, "okx": 5.0,
                         "hyperliquid": 4.5}
# Prices are compared in USDT; a USDC price is multiplied by the mid of this perpetual (SPEC 13).
COMPARED_IN = "USDT"
USDC = "USDC"
RATE_SYMBOL = "USDC/USDT:USDT"
PAIRED_QUOTES = frozenset({COMPARED_IN, USDC})
NO_RATE_NOTE = "no fresh USDC/USDT rate"
# A USDC book is kept this much further than the largest notional: walked for a notional in USDT, it is walked
# for notional / rate USDC, which passes the notional when USDC trades below 1 USDT (covers rates down to 0.5).
CONVERTED_REACH = 2.0
STALE_INTERVALS = 3  # stale_after_seconds defaults to this many collection intervals
# A leg's values, as the board row names them; a snapshot gives the same ones from its own fields.
FIELDS = ("bid", "ask", "last", "volume_24h", "mark_price", "index_price", "funding_rate", "next_funding_time",
          "funding_interval_hours", "contract_size", "open_interest", "impact_bid", "impact_ask")
# The realized funding windows as the API names them: common/history.WINDOWS's names (history imports this module,
# so they are repeated here; tests/unit/test_scan_history.py checks that they agree).
REALIZED_WINDOWS = ("1d", "3d", "7d", "30d")
NO_REALIZED: Mapping[str, None] = MappingProxyType(dict.fromkeys(REALIZED_WINDOWS))
NO_HISTORY: Mapping[tuple[str, str], Mapping[str, Optional[float]]] = MappingProxyType({})
DEFAULT_SORT = "funding_apr_spread"
SORTS = (DEFAULT_SORT, *(f"realized_{window}" for window in REALIZED_WINDOWS))  # the `sort` values, as accepted
EXCHANGE_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]{2,45}$")


# -- configuration ---------------------------------------------------------------------------------
class ScannerConfig(BaseModel):
    """The config file's `scanner` section."""
    model_config = ConfigDict(extra="forbid")
    listen: str = "127.0.0.1:8000"   # host:port of the page and the API; port 0 picks a free one
    notionals: list[PositiveInt] = Field(default_factory=lambda: [10000, 100000], min_length=1, max_length=8)
    taker_fee_bps: dict[str, float] = Field(default_factory=dict)
    stale_after_seconds: Optional[float] = Field(None, gt=0)  # None: STALE_INTERVALS collection intervals
    # Host names the page may be reached by besides the listen address (DNS rebinding: common/scan_page.py).
    allowed_hosts: list[str] = Field(default_factory=list, max_length=64)
    # Required when `listen` is not a loopback address: the page and the API are then for its holders only.
    access_token: Optional[SecretStr] = Field(None, min_length=16, max_length=256)

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, listen: str) -> str:
        split_listen(listen)  # raises ValueError naming the problem
        return listen

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        bad = [h for h in hosts if not HOST_NAME.match(h)]
        if bad:
            raise ValueError(f"{bad[0][:60]!r} is not a host name or address without a port (e.g. scanner.lan, "
                             "10.0.0.5, ::1)")
        return [h.lower() for h in hosts]

    @model_validator(mode="after")
    def _token_off_loopback(self) -> "ScannerConfig":
        if self.access_token is None and not is_loopback(split_listen(self.listen)[0]):
            raise ValueError(f"listen {self.listen} is not a loopback address: set scanner.access_token (at least "
                             "16 characters) so that only its holders can read the page and the API")
        return self

    @field_validator("notionals")
    @classmethod
    def _unique(cls, notionals: list[int]) -> list[int]:
        return sorted(set(notionals))

    @field_validator("taker_fee_bps")
    @classmethod
    def _fees(cls, fees: dict[str, float]) -> dict[str, float]:
        bad = [f"{name}: {bps}" for name, bps in fees.items() if not 0 <= bps <= 1000 or math.isnan(bps)]
        if bad:
            raise ValueError(f"taker fees must be between 0 and 1000 bps ({', '.join(bad)})")
        return fees

    def fee_bps(self, exchange: str) -> float:
        """The configured taker fee; else the exchange's published default; an unknown exchange 0."""
        return self.taker_fee_bps.get(exchange, DEFAULT_TAKER_FEE_BPS.get(exchange, 0.0))

    def resolved(self, interval_seconds: float) -> "ScannerConfig":
        """A copy with `stale_after_seconds` filled in from the collection interval when not set."""
        if self.stale_after_seconds is not None:
            return self
        return self.model_copy(update={"stale_after_seconds": STALE_INTERVALS * interval_seconds})

    @property
    def stale_after_ms(self) -> float:
        if self.stale_after_seconds is None:
            raise ValueError("stale_after_seconds is not resolved (call resolved(interval_seconds))")
        return self.stale_after_seconds * 1000


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; a wildcard (0.0.0.0, ::) is every address, so it is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8000' -> ('127.0.0.1', 8000); '[::1]:8000' -> ('::1', 8000)."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen must be host:port with a port from 0 to 65535, got {listen!r}")
    return host, int(port)


# -- the latest values -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """The values one message gave for one (exchange, symbol), and when that message was assembled."""
    timestamp: int  # ms
    values: Mapping[str, float | int | None]


@dataclass(frozen=True)
class Book:
    """A snapshot's order book as far as the scanner walks it: (price, amount in base units), best level
    first, finite and positive, up to the largest notional (`best_levels`)."""
    timestamp: int  # ms, the snapshot's
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    bid_levels: int  # how many levels the snapshot had
    ask_levels: int
    _walks: dict = field(default_factory=dict, compare=False, repr=False)

    def walk(self, side: str, notional: float, factor: float = 1.0) -> "Fill":
        """walk_book through "bids" or "asks", once per notional: every request of the page reads the same
        books until the next snapshot replaces them. With prices in another currency (`factor` of it per
        unit of the book's quote, e.g. the USDC/USDT rate), `notional` is in that currency: the walk is the
        same as one of notional / factor in the book's own quote, with the VWAP converted (not kept: the
        rate moves every board, and a cache per rate would grow)."""
        if factor != 1.0:
            fill = walk_book(getattr(self, side), notional / factor)
            return Fill(None if fill.vwap is None else fill.vwap * factor, fill.fill, fill.base)
        fill = self._walks.get((side, notional))
        if fill is None:
            fill = self._walks[(side, notional)] = walk_book(getattr(self, side), notional)
        return fill


@dataclass(frozen=True)
class Leg:
    """One (exchange, symbol) as the scanner sees it now."""
    exchange: str
    symbol: str
    timestamp: int  # ms, the newest message its values came from
    values: Mapping[str, float | int | None]
    book: Optional[Book] = None

    def __getitem__(self, name: str):
        return self.values.get(name)

    def age_ms(self, now_ms: int) -> int:
        return now_ms - self.timestamp

    def fresh(self, now_ms: int, stale_after_ms: float) -> bool:
        return self.age_ms(now_ms) <= stale_after_ms

    @functools.cached_property  # asked for several times per leg and request; a leg never changes
    def funding_apr(self) -> Optional[float]:
        return funding_apr(self["funding_rate"], self["funding_interval_hours"])

    # Legs are made anew for every request: a symbol's parts are looked up (symbol_parts), not cached per leg.
    @property
    def base(self) -> str:
        return symbol_parts(self.symbol)[0]

    @property
    def quote(self) -> Optional[str]:
        return symbol_parts(self.symbol)[1]

    @property
    def pairable(self) -> bool:
        """A linear perpetual in USDT or USDC (module docstring): quoted and settled alike, no expiry."""
        return symbol_parts(self.symbol)[2]


@functools.lru_cache(maxsize=16384)  # every symbol of a few exchanges' boards; bounded whatever they send
def symbol_parts(symbol: str) -> tuple[str, Optional[str], bool]:
    """(base asset, quote or None, pairable) of a symbol, e.g. 'BTC/USDC:USDC' -> ('BTC', 'USDC', True)."""
    parts = SYMBOL_PATTERN.match(symbol)
    quote = parts.group(2).upper() if parts else None
    pairable = bool(parts) and parts.group(4) is None and quote in PAIRED_QUOTES \
        and (parts.group(3) or "").upper() == quote
    return asset_of(symbol), quote, pairable


def quote_of(symbol: str) -> Optional[str]:
    """'BTC/USDC:USDC' -> 'USDC'; None for a symbol not in unified form."""
    return symbol_parts(symbol)[1]


def asset_of(text: str) -> str:
    """The base asset a symbol names, in upper case: 'BTC/USDC:USDC', 'BTCUSDT', 'BTCUSDC', 'btc',
    'BTCUSDT-250328' -> 'BTC'. A compact form loses a trailing USDT or USDC (not when nothing would be left:
    'USDC' is the asset USDC)."""
    text = text.strip().upper()
    if "/" in text:
        return text.partition("/")[0]
    text = text.partition("-")[0]
    for quote in (COMPARED_IN, USDC):
        if text.endswith(quote) and len(text) > len(quote):
            return text[:-len(quote)]
    return text


def _finite(value) -> Optional[float | int]:
    """The number, or None for null and for NaN/Infinity (which no JSON consumer could read back)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def board_sources(board: Board) -> dict[str, Source]:
    """symbol -> the values its board row gives."""
    return {row.symbol: Source(board.timestamp, _row_values(row)) for row in board.markets}


def _row_values(row: BoardRow) -> dict:
    return {name: getattr(row, name) for name in FIELDS}


def snapshot_source(snapshot: FuturesData, reach: float) -> tuple[Source, Book]:
    """The values and the book a snapshot gives (extra's index price, interval and contract size too); the
    book's levels as far as `reach` in quote currency (the largest notional walked) goes."""
    extra = snapshot.extra or {}
    values = {
        "bid": snapshot.ticker.bid, "ask": snapshot.ticker.ask, "last": snapshot.ticker.last,
        "volume_24h": snapshot.ticker.volume_24h, "mark_price": snapshot.mark_price,
        "index_price": extra.get("index_price"), "funding_rate": snapshot.funding_rate,
        "next_funding_time": snapshot.next_funding_time,
        "funding_interval_hours": extra.get("funding_interval_hours"),
        "contract_size": extra.get("contract_size"), "open_interest": extra.get("open_interest"),
        "impact_bid": None, "impact_ask": None,  # the board's only: the merge takes them from there
    }
    values = {name: _finite(value) for name, value in values.items()}
    if values["funding_interval_hours"] is not None and values["funding_interval_hours"] <= 0:
        values["funding_interval_hours"] = None
    bids, asks = snapshot.orderbook.bids, snapshot.orderbook.asks
    if quote_of(snapshot.symbol) != COMPARED_IN:
        reach *= CONVERTED_REACH
    book = Book(snapshot.timestamp, best_levels(bids, "bids", reach), best_levels(asks, "asks", reach),
                len(bids), len(asks))
    return Source(snapshot.timestamp, values), book


def best_levels(levels: Sequence[tuple[float, float]], side: str, reach: float) -> tuple[tuple[float, float], ...]:
    """The best levels of one side ("bids" or "asks") until their notional passes `reach`: a walk of up to
    `reach` never reads further. Levels that cannot be walked (zero, negative, not finite) are left out, and
    a side out of order is sorted first (workers send them sorted; a walk out of order misprices)."""
    return _prefix_as_sent(levels, side, reach) or _sorted_usable_prefix(levels, side, reach)


def _prefix_as_sent(levels: Sequence[tuple[float, float]], side: str, reach: float):
    """The prefix as it is when it is clean and in order (the usual case), found and checked at C speed:
    a whole book is read every cycle for each watched symbol. None otherwise."""
    if not levels:
        return ()
    notionals = list(itertools.starmap(operator.mul, levels))
    reached = list(itertools.accumulate(notionals))
    end = min(bisect.bisect_right(reached, reach) + 1, len(levels))
    prices = list(map(operator.itemgetter(0), levels[:end]))
    ordered = prices == sorted(prices, reverse=side == "bids")
    # In order, the worst price is the last bid or the first ask; with it and every notional above 0, every
    # price and amount is; a finite sum means no level is infinite or NaN.
    clean = ordered and min(prices[-1], prices[0]) > 0 and min(notionals[:end]) > 0 and math.isfinite(reached[end - 1])
    first_past_reach = (end == len(levels) or reached[end - 1] > reach) and (end < 2 or reached[end - 2] <= reach)
    return tuple(levels[:end]) if clean and first_past_reach else None


def _sorted_usable_prefix(levels: Sequence[tuple[float, float]], side: str, reach: float) -> tuple[tuple[float, float], ...]:
    usable = [(p, a) for p, a in levels if 0 < p < math.inf and 0 < a < math.inf]  # NaN fails both
    kept, spent = [], 0.0
    for price, amount in sorted(usable, key=lambda level: level[0], reverse=side == "bids"):
        kept.append((price, amount))
        spent += price * amount
        if spent > reach:
            break
    return tuple(kept)


def merge_leg(exchange: str, symbol: str, board: Optional[Source], snapshot: Optional[Source],
              book: Optional[Book], now_ms: int, stale_after_ms: float) -> Optional[Leg]:
    """Each field from the newest message that has it, fresh messages first (module docstring)."""
    if board is None or snapshot is None:  # most symbols: a board row alone, its values as they are
        only = snapshot or board
        return None if only is None else Leg(exchange, symbol, only.timestamp, only.values, book)
    used = [s for s in (snapshot, board) if now_ms - s.timestamp <= stale_after_ms] or [snapshot, board]
    used.sort(key=lambda s: s.timestamp, reverse=True)  # stable: a snapshot stays ahead of an equal board
    values = dict(used[0].values)
    for older in used[1:]:
        for name, value in values.items():
            if value is None:
                values[name] = older.values.get(name)
    return Leg(exchange, symbol, used[0].timestamp, values, book)


# -- the arithmetic --------------------------------------------------------------------------------
def funding_apr(rate: Optional[float], interval_hours: Optional[float]) -> Optional[float]:
    """The funding rate per interval as a yearly fraction: rate x (24 / interval) x 365."""
    if rate is None or not interval_hours or interval_hours <= 0:
        return None
    return rate * (24 / interval_hours) * 365


def basis_bps(mark_price: Optional[float], index_price: Optional[float]) -> Optional[float]:
    if mark_price is None or not index_price or index_price <= 0:
        return None
    return (mark_price - index_price) / index_price * BPS


# -- quote currencies -----------------------------------------------------------------------------------
def usdc_rate(legs: Iterable[Leg], now_ms: int, stale_after_ms: float) -> Optional[float]:
    """USDT per USDC: the mid of the freshest fresh `USDC/USDT:USDT` leg (any exchange) with a bid and an ask;
    None when there is none. Other symbols among `legs` are ignored."""
    quoted = [leg for leg in legs if leg.symbol == RATE_SYMBOL and leg.fresh(now_ms, stale_after_ms)
              and _positive(leg["bid"]) and _positive(leg["ask"])]
    if not quoted:
        return None
    freshest = max(quoted, key=lambda leg: (leg.timestamp, leg.exchange))
    return (freshest["bid"] + freshest["ask"]) / 2


def _positive(value) -> bool:
    return value is not None and value > 0


def to_usdt(leg: Leg, rate: Optional[float]) -> Optional[float]:
    """What one unit of the leg's quote is worth in USDT: 1 for USDT, the rate for USDC, else unknown."""
    if leg.quote == COMPARED_IN:
        return 1.0
    return rate if leg.quote == USDC else None


def pair_factors(long: Leg, short: Leg, rate: Optional[float]) -> Optional[tuple[float, float]]:
    """The multipliers that bring both legs' prices to one currency: none needed within one quote (the
    pair is then compared in it), USDT across quotes; None when the rate that needs is unknown."""
    if long.quote == short.quote:
        return 1.0, 1.0
    factors = to_usdt(long, rate), to_usdt(short, rate)
    return None if None in factors else factors


def pair_mid(long: Leg, short: Leg, factors: tuple[float, float] = (1.0, 1.0)) -> Optional[float]:
    """The mid of the pair's entry at the top of the books: (short's bid + long's ask) / 2, both in the
    compared currency (`factors`: the long's and the short's, from pair_factors)."""
    if not _positive(long["ask"]) or not _positive(short["bid"]):
        return None
    return (short["bid"] * factors[1] + long["ask"] * factors[0]) / 2


def price_spread_bps(long: Leg, short: Leg, factors: tuple[float, float] = (1.0, 1.0)) -> Optional[float]:
    """The price gap earned (positive) or paid (negative) buying the long leg's ask, selling the short's bid."""
    mid = pair_mid(long, short, factors)
    return None if mid is None else (short["bid"] * factors[1] - long["ask"] * factors[0]) / mid * BPS


def leg_mid(leg: Leg) -> Optional[float]:
    bid, ask = leg["bid"], leg["ask"]
    if bid and ask and bid > 0 and ask > 0:
        return (bid + ask) / 2
    return next((p for p in (leg["last"], leg["mark_price"]) if p and p > 0), None)


def volume_usd(leg: Leg, rate: Optional[float] = None) -> Optional[float]:
    """24 h volume x mid, in USDT; a USDC leg's needs the rate (module docstring)."""
    return _base_amount_usd(leg, leg["volume_24h"], rate)


def open_interest_usd(leg: Leg, rate: Optional[float] = None) -> Optional[float]:
    """Open interest x mid, in USDT; a USDC leg's needs the rate, as its volume does."""
    return _base_amount_usd(leg, leg["open_interest"], rate)


def _base_amount_usd(leg: Leg, amount: Optional[float], rate: Optional[float]) -> Optional[float]:
    mid, factor = leg_mid(leg), to_usdt(leg, rate)
    return None if mid is None or amount is None or factor is None else amount * mid * factor


@dataclass(frozen=True)
class Fill:
    """A market order of `notional` (quote currency) walked through one side of a book."""
    vwap: Optional[float]  # None when nothing filled
    fill: float            # the fraction of the notional filled: < 1 when the book is too thin
    base: float            # base units bought or sold


def walk_book(levels: Sequence[tuple[float, float]], notional: float) -> Fill:
    """Take levels (best first, amounts in base units) until `notional` in quote currency is spent: whole
    levels while they fit, then part of the next. Found by bisection on the running notional, at C speed:
    the page walks every pair's books for each notional every cycle."""
    reached = list(itertools.accumulate(itertools.starmap(operator.mul, levels)))
    whole = bisect.bisect_left(reached, notional * (1 - 1e-12))  # levels taken whole; 1e-12: float rounding
    base = sum(map(operator.itemgetter(1), levels[:whole]))
    if whole < len(levels):
        spent = notional
        base += (notional - (reached[whole - 1] if whole else 0.0)) / levels[whole][0]
    else:
        spent = reached[-1] if reached else 0.0
    if base <= 0:
        return Fill(None, 0.0, 0.0)
    filled = 1.0 if spent >= notional * (1 - 1e-12) else spent / notional
    return Fill(spent / base, filled, base)


def entry_cost_bps(long_vwap: Optional[float], short_vwap: Optional[float], mid: Optional[float],
                   fees_bps: float) -> Optional[float]:
    """Buying the long leg at its VWAP and selling the short leg at its VWAP, against the pair's mid,
    plus both legs' taker fees."""
    if long_vwap is None or short_vwap is None or not mid:
        return None
    return (long_vwap - short_vwap) / mid * BPS + fees_bps


def break_even_hours(entry_cost: Optional[float], apr_spread: Optional[float]) -> Optional[float]:
    """Hours of the funding spread it takes to earn the entry cost back; None when the spread earns nothing."""
    if entry_cost is None or apr_spread is None or apr_spread <= 0:
        return None
    return max(entry_cost, 0.0) / (apr_spread * BPS / HOURS_PER_YEAR)


# -- pairs, filters and the API's rows -------------------------------------------------------------
class FilterError(ValueError):
    """A query parameter that cannot be used; the message names it."""


@dataclass(frozen=True)
class Filters:
    exchanges: Optional[frozenset[str]] = None  # None: every exchange
    min_volume_usd: float = 0.0
    symbol: Optional[str] = None                # the asset it names (asset_of), upper case; a part of the base
    min_open_interest_usd: float = 0.0
    sort: str = DEFAULT_SORT                    # one of SORTS: the rows' order

    def liquid(self, leg: Leg, rate: Optional[float]) -> bool:
        """The leg passes both USD floors (an unknown amount fails a floor above 0)."""
        return all(floor <= 0 or (value(leg, rate) or 0.0) >= floor
                   for floor, value in ((self.min_volume_usd, volume_usd),
                                        (self.min_open_interest_usd, open_interest_usd)))


KNOWN_FILTERS = ("exchanges", "min_volume_usd", "min_open_interest_usd", "symbol", "sort")
_SYMBOL_FILTER = re.compile(r"^[A-Za-z0-9/:\-]{1,64}$")


def parse_filters(query: Mapping[str, str]) -> Filters:
    unknown = sorted(set(query) - set(KNOWN_FILTERS))
    if unknown:
        raise FilterError(f"unknown query parameter {unknown[0]!r}; known: {', '.join(KNOWN_FILTERS)}")
    exchanges = None
    if query.get("exchanges", "").strip():
        names = [n.strip() for n in query["exchanges"].split(",") if n.strip()]
        bad = [n for n in names if not EXCHANGE_NAME.match(n)]
        if bad:
            raise FilterError(f"exchanges: {bad[0][:40]!r} is not an exchange name "
                              "(comma-separated lower-case names, e.g. binance,bybit)")
        exchanges = frozenset(names)
    symbol = query.get("symbol", "").strip() or None
    if symbol is not None and not _SYMBOL_FILTER.match(symbol):
        raise FilterError(f"symbol: {symbol[:40]!r} is not a symbol (letters, digits, '/', ':', '-'; "
                          "e.g. BTC, BTCUSDT or BTC/USDT:USDT)")
    sort = query.get("sort", "").strip() or DEFAULT_SORT
    if sort not in SORTS:
        raise FilterError(f"sort: {sort[:40]!r} is not one of {', '.join(SORTS)}")
    return Filters(exchanges, _usd_floor(query, "min_volume_usd"), asset_of(symbol) if symbol else None,
                   _usd_floor(query, "min_open_interest_usd"), sort)


def _usd_floor(query: Mapping[str, str], name: str) -> float:
    """A filter's floor in USD: a finite number >= 0; absent or blank, 0 (no floor)."""
    if not query.get(name, "").strip():
        return 0.0
    try:
        floor = float(query[name])
    except ValueError:
        raise FilterError(f"{name}: {query[name][:40]!r} is not a number") from None
    if not math.isfinite(floor) or floor < 0:
        raise FilterError(f"{name}: must be a finite number >= 0")
    return floor


def compact_symbol(symbol: str) -> str:
    """The routing-key form: 'BTC/USDT:USDT' -> 'BTCUSDT' (letters and digits only for any other form)."""
    try:
        return routing_symbol(symbol)
    except ValueError:
        return re.sub(r"[^A-Za-z0-9]", "", symbol)


def terminal_text(text, limit: int = 80) -> str:
    """Text from the wire, fit for a terminal: without control and format characters (escape sequences,
    bidirectional overrides), which a crafted symbol could use to rewrite the screen or forge a link; cut
    to `limit` characters. Unlike common.logs.printable, other characters stay as they are: symbols may be
    Chinese or emoji, and an operator reads them."""
    kept = "".join(c for c in str(text)[:limit * 4] if not unicodedata.category(c).startswith("C"))
    return kept[:limit]


def symbol_matches(asset: str, wanted: Optional[str]) -> bool:
    """`wanted` (an asset, from parse_filters) is a part of the row's base asset."""
    return wanted is None or wanted in asset.upper()


def pair_legs(legs: Iterable[Leg], now_ms: int, stale_after_ms: float, filters: Filters = Filters(),
              rate: Optional[float] = None) -> Optional[tuple[Leg, Leg]]:
    """(long, short): the lowest and the highest funding APR among the fresh perpetual legs that pass the
    filters, two different (exchange, symbol) (a USDT and a USDC perpetual of one exchange pair too); None
    with fewer than two such legs. `rate` (USDT per USDC) values USDC legs' volume and open interest for the
    USD floors."""
    candidates = [leg for leg in legs if now_ms - leg.timestamp <= stale_after_ms and leg.funding_apr is not None
                  and symbol_parts(leg.symbol)[2] and (filters.exchanges is None or leg.exchange in filters.exchanges)
                  and filters.liquid(leg, rate)]
    if len({(leg.exchange, leg.symbol) for leg in candidates}) < 2:
        return None
    ordered = sorted(candidates, key=lambda leg: (leg.funding_apr, leg.exchange, leg.symbol))
    return ordered[0], ordered[-1]


def at_size(long: Leg, short: Leg, now_ms: int, config: ScannerConfig,
            factors: Optional[tuple[float, float]] = (1.0, 1.0)) -> Optional[dict]:
    """Per notional (in the compared currency): both legs' VWAPs (in it too) and fills, the entry cost and the
    break-even; None without two fresh deep books or without the `factors` (pair_factors) to compare them."""
    books = (long.book, short.book)
    if factors is None or any(b is None or now_ms - b.timestamp > config.stale_after_ms for b in books):
        return None
    mid, spread = pair_mid(long, short, factors), apr_spread(long, short)
    fees = config.fee_bps(long.exchange) + config.fee_bps(short.exchange)
    out = {}
    for notional in config.notionals:
        bought, sold = long.book.walk("asks", notional, factors[0]), short.book.walk("bids", notional, factors[1])
        cost = entry_cost_bps(bought.vwap, sold.vwap, mid, fees)
        out[str(notional)] = {"long_vwap": bought.vwap, "short_vwap": sold.vwap, "long_fill": bought.fill,
                              "short_fill": sold.fill, "entry_cost_bps": cost,
                              "break_even_hours": break_even_hours(cost, spread)}
    return out


def apr_spread(long: Leg, short: Leg) -> Optional[float]:
    if long.funding_apr is None or short.funding_apr is None:
        return None
    return short.funding_apr - long.funding_apr


def leg_json(leg: Leg, now_ms: int, realized: Mapping = NO_HISTORY) -> dict:
    """The API's leg: its prices in its own quote (`quote`), and its realized APR per window."""
    return {"exchange": leg.exchange, "symbol": leg.symbol, "quote": leg.quote, "funding_rate": leg["funding_rate"],
            "funding_interval_hours": leg["funding_interval_hours"], "funding_apr": leg.funding_apr,
            "next_funding_time": leg["next_funding_time"], "bid": leg["bid"], "ask": leg["ask"],
            "mark_price": leg["mark_price"], "index_price": leg["index_price"],
            "basis_bps": basis_bps(leg["mark_price"], leg["index_price"]), "volume_24h": leg["volume_24h"],
            "age_seconds": round(leg.age_ms(now_ms) / 1000, 3), "realized_apr": realized_of(leg, realized)}


def realized_of(leg: Leg, realized: Mapping) -> dict[str, Optional[float]]:
    """The leg's realized APR per window (REALIZED_WINDOWS), every one null when the history does not know it."""
    windows = realized.get((leg.exchange, leg.symbol), NO_REALIZED)
    return {window: windows.get(window) for window in REALIZED_WINDOWS}


def realized_spread(long: Mapping[str, Optional[float]], short: Mapping[str, Optional[float]]) -> dict:
    """Per window, the short leg's realized APR minus the long leg's; null when either is (common/history's
    rule: that module imports this one)."""
    return {window: None if long[window] is None or short[window] is None else short[window] - long[window]
            for window in REALIZED_WINDOWS}


def opportunity_row(asset: str, long: Leg, short: Leg, now_ms: int, config: ScannerConfig,
                    rate: Optional[float] = None, realized: Mapping = NO_HISTORY) -> dict:
    """A pair's row; a cross-quote pair also carries the rate it was compared at, and `price_note` when
    there is none (its price spread and costs are then null, its funding spread still counts)."""
    factors = pair_factors(long, short, rate)
    long_json, short_json = leg_json(long, now_ms, realized), leg_json(short, now_ms, realized)
    row = {"symbol": asset, "long": long_json, "short": short_json,
           "funding_apr_spread": apr_spread(long, short),
           "realized_apr_spread": realized_spread(long_json["realized_apr"], short_json["realized_apr"]),
           "price_spread_bps": None if factors is None else price_spread_bps(long, short, factors),
           "at_size": at_size(long, short, now_ms, config, factors)}
    if long.quote != short.quote:
        row["usdc_usdt_rate"] = rate
        if factors is None:
            row["price_note"] = NO_RATE_NOTE
    return row


def by_asset(legs_by_symbol: Mapping[str, list[Leg]]) -> dict[str, list[Leg]]:
    """Every leg under its base asset: BTC/USDT:USDT and BTC/USDC:USDC are legs of one asset, BTC."""
    out: dict[str, list[Leg]] = {}
    for symbol, legs in legs_by_symbol.items():
        if all(leg.symbol == symbol for leg in legs):  # as LatestValues gives them: one look-up per symbol
            out.setdefault(symbol_parts(symbol)[0], []).extend(legs)
            continue
        for leg in legs:
            out.setdefault(leg.base, []).append(leg)
    return out


def opportunities(legs_by_symbol: Mapping[str, list[Leg]], now_ms: int, config: ScannerConfig,
                  filters: Filters = Filters(), realized: Mapping = NO_HISTORY) -> dict:
    """GET /api/opportunities: one row per base asset that can be paired, widest funding spread first (or
    the widest realized spread of `filters.sort`'s window, nulls last). `realized`: the legs' realized APRs,
    {(exchange, symbol): {"1d": ..., ...}}."""
    assets = by_asset(legs_by_symbol)
    rate = usdc_rate(assets.get(USDC, ()), now_ms, config.stale_after_ms)
    rows = []
    for asset, legs in assets.items():
        if not symbol_matches(asset, filters.symbol):
            continue
        pair = pair_legs(legs, now_ms, config.stale_after_ms, filters, rate)
        if pair:
            rows.append(opportunity_row(asset, *pair, now_ms, config, rate, realized))
    rows.sort(key=row_order(filters.sort))
    return {"timestamp": now_ms, "rows": rows}


def row_order(sort: str):
    """The rows' sort key for a SORTS value: its spread descending, nulls last, then the asset's name."""
    if sort == DEFAULT_SORT:
        return lambda row: (-row["funding_apr_spread"], row["symbol"])
    window = sort.removeprefix("realized_")

    def key(row):
        spread = row["realized_apr_spread"][window]
        return (spread is None, -spread if spread is not None else 0.0, row["symbol"])
    return key


def leg_at_size(leg: Leg, now_ms: int, config: ScannerConfig) -> Optional[dict]:
    """One leg's depth at each notional, in its own quote: buying through its asks, selling through its bids."""
    if leg.book is None or now_ms - leg.book.timestamp > config.stale_after_ms:
        return None
    out = {}
    for notional in config.notionals:
        bought, sold = leg.book.walk("asks", notional), leg.book.walk("bids", notional)
        out[str(notional)] = {"buy_vwap": bought.vwap, "buy_fill": bought.fill,
                              "sell_vwap": sold.vwap, "sell_fill": sold.fill}
    return out


def symbol_detail(asset: str, legs_by_symbol: Mapping[str, list[Leg]], now_ms: int, config: ScannerConfig,
                  rate: Optional[float] = None, realized: Mapping = NO_HISTORY) -> dict:
    """GET /api/symbol/{asset}: every leg of the asset, each exchange's and quote's latest values (stale ones
    flagged), and its pair. `rate`: usdc_rate of the moment (the caller has the USDC/USDT legs)."""
    legs = sorted((leg for legs in legs_by_symbol.values() for leg in legs), key=lambda leg: (leg.exchange, leg.symbol))
    pair = pair_legs(legs, now_ms, config.stale_after_ms, rate=rate)
    return {"timestamp": now_ms, "symbol": asset, "stale_after_seconds": config.stale_after_seconds,
            "usdc_usdt_rate": rate, "legs": [_detail_leg(leg, now_ms, config, rate, realized) for leg in legs],
            "pairs": [opportunity_row(asset, *pair, now_ms, config, rate, realized)] if pair else []}


def _detail_leg(leg: Leg, now_ms: int, config: ScannerConfig, rate: Optional[float], realized: Mapping) -> dict:
    book = None
    if leg.book is not None:
        book = {"bid_levels": leg.book.bid_levels, "ask_levels": leg.book.ask_levels,
                "age_seconds": round((now_ms - leg.book.timestamp) / 1000, 3)}
    return {**leg_json(leg, now_ms, realized), "last": leg["last"], "impact_bid": leg["impact_bid"],
            "impact_ask": leg["impact_ask"], "contract_size": leg["contract_size"],
            "open_interest": leg["open_interest"], "open_interest_usd": open_interest_usd(leg, rate),
            "volume_usd": volume_usd(leg, rate),
            "stale": not leg.fresh(now_ms, config.stale_after_ms), "pairable": leg.pairable,
            "taker_fee_bps": config.fee_bps(leg.exchange), "book": book, "at_size": leg_at_size(leg, now_ms, config)}
