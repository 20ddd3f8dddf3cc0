"""The simulated market: which contracts each exchange lists and the exact values behind every answer.

Everything is a pure function of (exchange, symbol, tick), so a test can ask for the truth behind any
response. The tick advances with wall time (``tick_seconds``) unless the clock is frozen, which tests that
compare values do, so that the answer and the truth come from the same tick.

Two sizes: the default, seven real coins (plus ``extra_markets`` synthetic SIM001.. listed everywhere), and
``real_sizes``: as many USDT perpetuals as each exchange really lists (REAL_SIZES), generated coins ranked by
popularity so that the big ones are listed everywhere and the tail on some exchanges only, each with its
own funding interval per exchange (FUNDING_MIX), contract sizes scaled to the price on the contract
exchanges (0.0001 BTC, 10 DOGE, 1000000 of a coin at 0.000005), and two odd ones listed everywhere: one
freshly listed (no funding rate nor next funding time yet) and one without a 24 h volume.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

EXCHANGES = ("binance", "bybit", "bitget", "htx", "gateio", "okx", "hyperliquid")
# The quote (and settle) currency of each exchange's perpetuals here: Hyperliquid's settle in USDC.
QUOTE = {"hyperliquid": "USDC"}
# The funding interval of a contract that names none for the exchange: Hyperliquid pays every hour.
DEFAULT_FUNDING_HOURS = {"hyperliquid": 1}


@dataclass(frozen=True)
class Coin:
    base: str
    price: float          # starting mid price in USDT
    price_tick: str       # price step, as the exchange publishes it
    amount_step: str      # base-unit amount step on the exchanges that quote base units
    contract_size: dict   # contract size in base units on the exchanges that quote contracts
    funding_hours: dict = field(default_factory=dict)  # per exchange; 8 when absent
    listed_on: tuple = EXCHANGES
    missing: tuple = ()   # Quote fields no exchange has for it (a fresh listing: funding_rate, next_funding_time)
    # Settled funding (SPEC 14): per exchange, days since listing where the history starts later than
    # HISTORY_DAYS ago (0: no settlement yet), and (days ago, hours before) where the schedule changed then.
    listed_days: dict = field(default_factory=dict)
    schedule_change: dict = field(default_factory=dict)


# Contract sizes and funding intervals are the real ones for these markets (Gate's quanto_multiplier,
# HTX's contract_size, OKX's ctVal); SOL, DOGE and WIF run on shorter funding schedules on some exchanges.
COINS = (
    Coin("BTC", 65000.0, "0.1", "0.001", {"gateio": "0.0001", "htx": "0.001", "okx": "0.01"}),
    Coin("ETH", 3200.0, "0.01", "0.001", {"gateio": "0.01", "htx": "0.01", "okx": "0.1"}),
    Coin("SOL", 150.0, "0.001", "0.1", {"gateio": "1", "htx": "1", "okx": "1"},
         funding_hours={"bybit": 4, "gateio": 4, "bitget": 4, "okx": 4}),
    Coin("DOGE", 0.15, "0.00001", "1", {"gateio": "10", "htx": "100", "okx": "1000"},
         funding_hours={"htx": 4, "binance": 4, "okx": 2}, schedule_change={"binance": (12, 8), "okx": (5, 8)}),
    Coin("XRP", 0.55, "0.0001", "0.1", {"gateio": "10", "htx": "10", "okx": "100"}),
    Coin("WIF", 2.5, "0.0001", "1", {"gateio": "1", "htx": "1", "okx": "1"},
         funding_hours={"bybit": 1, "binance": 4, "gateio": 4}, listed_on=("binance", "bybit", "gateio", "hyperliquid")),
    Coin("TAO", 450.0, "0.01", "0.01", {"gateio": "0.001", "htx": "0.01", "okx": "0.1"},
         funding_hours={"bybit": 4, "okx": 1}, listed_on=("bybit", "bitget", "okx", "hyperliquid"),
         listed_days={"hyperliquid": 10, "okx": 2}),
)
# USDC priced in USDT: Binance lists the perpetual USDC/USDT:USDT, whose mid converts USDC prices to USDT for
# the scanner (docs/reference.md, "The scanner"). Listed only when the market is built with it (Market(usdc=True)),
# so that the other tests' small market stays the seven coins.
USDC = Coin("USDC", 1.0, "0.0001", "1", {}, listed_on=("binance",))


def extra_coins(count: int) -> tuple[Coin, ...]:
    """Synthetic contracts (SIM001...) listed everywhere, for benchmarks that need 100+ symbols."""
    coins = []
    for i in range(1, count + 1):
        price = 1.0 + (i * 7919 % 1000) / 10
        coins.append(Coin(f"SIM{i:03d}", price, "0.001", "0.1", {"gateio": "1", "htx": "1", "okx": "1"}))
    return tuple(coins)


# USDT-margined perpetuals each exchange lists (late 2025, rounded): the size of a real-size market.
REAL_SIZES = {"binance": 550, "bybit": 500, "bitget": 450, "gateio": 500, "htx": 300, "okx": 250,
              "hyperliquid": 200}
# Funding intervals on a real-size market, hours: weight. Most contracts settle every 8 h, many every 4 h,
# a few every 1 h (every 2 h on Bybit and Bitget); each symbol has its own on each exchange.
FUNDING_MIX = {
    "binance": {8: 70, 4: 26, 1: 4},
    "bybit": {8: 55, 4: 35, 2: 3, 1: 7},
    "bitget": {8: 60, 4: 32, 2: 3, 1: 5},
    "gateio": {8: 55, 4: 40, 1: 5},
    "htx": {8: 80, 4: 20},
    "okx": {8: 60, 4: 30, 2: 4, 1: 6},
    "hyperliquid": {1: 100},
}
# A contract is worth about this many USDT on the contract exchanges (Gate's quanto_multiplier, HTX's
# contract_size), rounded to a power of ten: BTC 0.0001 on Gate, DOGE 10.
CONTRACT_VALUE_USDT = {"gateio": 3.0, "htx": 50.0, "okx": 10.0}
FRESH = ("funding_rate", "next_funding_time")   # a contract listed before its first funding
# How far back every listing's settled funding goes, unless it was listed later (Coin.listed_days): past
# the 30 days a backfill asks for by default.
HISTORY_DAYS = 45
DAY_MS = 86_400_000
NO_VOLUME = ("volume_24h",)                      # a contract without a 24 h volume in the answers


def real_size_coins() -> tuple[Coin, ...]:
    """The generated coins that, with COINS, give every exchange its REAL_SIZES count of perpetuals."""
    rng = random.Random(_seed("real-sizes"))
    need = {ex: REAL_SIZES[ex] - sum(ex in c.listed_on for c in COINS) for ex in EXCHANGES}
    names = _coin_names(rng, max(need.values()) + 200)
    odd = [_generated_coin(rng, names.pop(), EXCHANGES, missing) for missing in (FRESH, NO_VOLUME)]
    odd[0] = dataclasses.replace(odd[0], listed_days={ex: 0 for ex in EXCHANGES})
    need = {ex: n - len(odd) for ex, n in need.items()}
    # Popular coins (low rank) are listed nearly everywhere, the tail on some exchanges: each exchange lists
    # the `need` coins of lowest rank x (0.5 + its own draw).
    ranked = names
    listed_on = {name: [] for name in ranked}
    for ex in EXCHANGES:
        key = {name: rank * (0.5 + random.Random(_seed("listing", name, ex)).random())
               for rank, name in enumerate(ranked)}
        for name in sorted(ranked, key=key.get)[:need[ex]]:
            listed_on[name].append(ex)
    coins = [_generated_coin(rng, name, tuple(listed_on[name])) for name in ranked if listed_on[name]]
    return tuple(coins + odd)


def _coin_names(rng: random.Random, count: int) -> list[str]:
    """Pronounceable 3-5 letter bases, none a real coin of COINS nor one ccxt renames (commonCurrencies)."""
    taken = {c.base for c in COINS} | _renamed_by_ccxt()
    names: list[str] = []
    while len(names) < count:
        letters = [rng.choice("BCDFGHKLMNPRSTVZ") if i % 2 == 0 else rng.choice("AEIOU")
                   for i in range(rng.randint(3, 5))]
        name = "".join(letters) + rng.choice(("", "X", "Y"))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _renamed_by_ccxt() -> set[str]:
    try:
        import ccxt
    except ImportError:  # the simulator run alone: names stay as they are generated
        return set()
    classes = (ccxt.binanceusdm, ccxt.bybit, ccxt.bitget, ccxt.htx, ccxt.gate, ccxt.okx, ccxt.hyperliquid)
    return {name for cls in classes for pair in cls().commonCurrencies.items() for name in pair}


def _power_of_ten(exponent: int) -> str:
    return format(Decimal(10) ** exponent, "f")


def _generated_coin(rng: random.Random, base: str, listed_on: tuple, missing: tuple = ()) -> Coin:
    price = 10 ** rng.uniform(-5.4, 3.6)
    magnitude = math.floor(math.log10(price))
    amount_exponent = max(-3, min(3, math.floor(math.log10(100 / price)) - 2))
    contract_size = {ex: _power_of_ten(round(math.log10(value / price))) for ex, value in CONTRACT_VALUE_USDT.items()}
    funding_hours = {ex: rng.choices(list(FUNDING_MIX[ex]), weights=list(FUNDING_MIX[ex].values()))[0]
                     for ex in EXCHANGES}
    # One listing in twenty is younger than the history kept: its history starts 1-29 days ago.
    draws = random.Random(_seed("listed", base))
    listed_days = {ex: draws.randint(1, 29) for ex in EXCHANGES if draws.random() < 0.05}
    return Coin(base, float(f"{price:.6g}"), _power_of_ten(magnitude - 4), _power_of_ten(amount_exponent),
                contract_size, funding_hours, listed_on, missing, listed_days)


def symbol_of(exchange: str, base: str) -> str:
    """The ccxt unified symbol of `base`'s perpetual on `exchange`: BTC/USDT:USDT, or BTC/USDC:USDC."""
    quote = QUOTE.get(exchange, "USDT")
    return f"{base}/{quote}:{quote}"


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def _round_to(value: float, step: Decimal) -> Decimal:
    return (Decimal(repr(value)) / step).to_integral_value() * step


class Book:
    """Levels as (price, lots): lots are contracts on contract exchanges, amount steps elsewhere.
    Built on first use: a tickers answer for hundreds of markets must not build hundreds of books."""

    def __init__(self, seed: int, best_bid: Decimal, best_ask: Decimal, step: Decimal, lot: Decimal, depth: int):
        self.lot, self._seed, self._step, self._depth = lot, seed, step, depth
        self._best = {"bids": best_bid, "asks": best_ask}

    def top_lots(self, side: str) -> int:
        return _lots(random.Random(self._seed_of(side)).random())  # the first draw of _side()

    @functools.cached_property
    def bids(self) -> list:
        return self._side("bids", -self._step)

    @functools.cached_property
    def asks(self) -> list:
        return self._side("asks", self._step)

    def _seed_of(self, side: str) -> int:
        return self._seed ^ (1 if side == "asks" else 2)

    def _side(self, side: str, step: Decimal) -> list:
        # A benchmark asks for hundreds of 1000-level books per second, and the simulator's CPU is taken from
        # the worker's on the same machine: one uniform draw per lot and per gap (randint costs ten times that).
        draw = random.Random(self._seed_of(side)).random
        levels, price, double_step = [], self._best[side], step * 2
        for _ in range(self._depth):
            if price <= 0:
                break
            levels.append((price, 1 + int(draw() * MAX_LEVEL_LOTS)))  # _lots(), inlined: 1000 calls a side
            price += double_step if draw() < 0.3 else step
        return levels

    def levels(self, side: str, depth: int, unit: str = "base") -> list[list[str]]:
        """Levels as strings, amounts in `unit` ('base' or 'lots' i.e. contracts)."""
        rows = self.bids if side == "bids" else self.asks
        amounts = _amount_texts(Decimal(1) if unit == "lots" else self.lot)
        return [[str(p), amounts[n]] for p, n in rows[:depth]]


MAX_LEVEL_LOTS = 500


def _lots(uniform: float) -> int:
    """A level's size in lots, 1..MAX_LEVEL_LOTS, from one uniform draw."""
    return 1 + int(uniform * MAX_LEVEL_LOTS)


@functools.lru_cache(maxsize=256)
def _amount_texts(lot: Decimal) -> tuple[str, ...]:
    """str(n * lot) for every level size n: a level's amount is looked up, not multiplied and formatted."""
    return tuple(str(n * lot) for n in range(MAX_LEVEL_LOTS + 1))


@dataclass(frozen=True)
class Settlement:
    """One settled funding payment: at `funding_time` (ms), `rate`, on a schedule of `interval_hours`."""
    funding_time: int
    rate: Decimal
    interval_hours: float

    def truth(self) -> dict:
        return {"funding_time": self.funding_time, "rate": float(self.rate), "interval_hours": self.interval_hours}


@dataclass
class Quote:
    """What one exchange says about one contract at one tick. Amounts in base units unless named."""
    exchange: str
    symbol: str
    base: str
    tick: int
    timestamp: int            # ms
    price_tick: Decimal
    contract_size: Decimal    # 1 on exchanges that quote base units
    bid: Decimal | None
    ask: Decimal | None
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal | None
    open: Decimal
    high: Decimal
    low: Decimal
    volume_24h: Decimal | None   # base units
    mark_price: Decimal | None
    index_price: Decimal | None
    funding_rate: Decimal | None
    next_funding_time: int | None   # ms
    funding_interval_hours: int
    book: Book

    @property
    def quote_volume_24h(self) -> Decimal | None:
        if self.volume_24h is None:
            return None
        return (self.volume_24h * (self.last or self.open)).quantize(Decimal("0.0001"))

    @property
    def volume_24h_contracts(self) -> Decimal | None:
        if self.volume_24h is None:
            return None
        return (self.volume_24h / self.contract_size).to_integral_value()

    @property
    def open_interest(self) -> Decimal | None:
        """Base units, whole lots: a quarter of the day's volume (None without a volume)."""
        if self.volume_24h is None:
            return None
        return (self.volume_24h / 4 / self.book.lot).to_integral_value(ROUND_DOWN) * self.book.lot

    @property
    def open_interest_contracts(self) -> Decimal | None:
        return None if self.open_interest is None else (self.open_interest / self.contract_size).to_integral_value()

    def truth(self, depth: int | None = None) -> dict:
        """The unified values a correct client derives from this quote (amounts in base units)."""
        f = lambda d: None if d is None else float(d)  # noqa: E731
        depth = depth or len(self.book.bids)
        return {
            "exchange": self.exchange, "symbol": self.symbol, "tick": self.tick, "timestamp": self.timestamp,
            "bid": f(self.bid), "ask": f(self.ask), "last": f(self.last), "volume_24h": f(self.volume_24h),
            "mark_price": f(self.mark_price), "index_price": f(self.index_price),
            "funding_rate": f(self.funding_rate), "next_funding_time": self.next_funding_time,
            "funding_interval_hours": self.funding_interval_hours, "contract_size": float(self.contract_size),
            "open_interest": f(self.open_interest),
            "bids": [[float(p), float(a)] for p, a in self.book.levels("bids", depth)],
            "asks": [[float(p), float(a)] for p, a in self.book.levels("asks", depth)],
        }


CONTRACT_EXCHANGES = ("gateio", "htx", "okx")


class Market:
    """Deterministic values for every listed (exchange, contract), advancing one tick per `tick_seconds`."""

    def __init__(self, extra_markets: int = 0, tick_seconds: float = 1.0, book_depth: int = 1000,
                 real_sizes: bool = False, usdc: bool = False):
        generated = real_size_coins() if real_sizes else ()
        self.coins = {c.base: c for c in COINS + generated + extra_coins(extra_markets) + ((USDC,) if usdc else ())}
        self.tick_seconds = tick_seconds
        self.book_depth = book_depth
        self._epoch = time.time()
        self._frozen_tick: int | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple, Quote] = {}
        # exchange -> the bases that also have a dated (quarterly) future there; none unless a test lists
        # them, so that every other answer stays as it is (binance.py renders them).
        self.dated: dict[str, tuple[str, ...]] = {}
        # (exchange, base) -> extra funding times (ms) a test scheduled off the regular schedule (settle_at):
        # announced as the next funding time until they pass, then settled.
        self.extra_settlements: dict[tuple[str, str], list[int]] = {}

    # -- which contracts exist ---------------------------------------------------------------------
    def listed(self, exchange: str) -> list[Coin]:
        return [c for c in self.coins.values() if exchange in c.listed_on]

    def contract_size(self, exchange: str, coin: Coin) -> Decimal:
        if exchange in CONTRACT_EXCHANGES:
            return Decimal(coin.contract_size[exchange])
        return Decimal(1)

    @staticmethod
    def funding_hours(exchange: str, coin: Coin) -> int:
        return coin.funding_hours.get(exchange, DEFAULT_FUNDING_HOURS.get(exchange, 8))

    def lot(self, exchange: str, coin: Coin) -> Decimal:
        return self.contract_size(exchange, coin) if exchange in CONTRACT_EXCHANGES else Decimal(coin.amount_step)

    # -- the clock ---------------------------------------------------------------------------------
    @property
    def tick(self) -> int:
        if self._frozen_tick is not None:
            return self._frozen_tick
        return int((time.time() - self._epoch) / self.tick_seconds)

    def freeze(self) -> int:
        self._frozen_tick = self.tick
        return self._frozen_tick

    def step(self, ticks: int = 1) -> int:
        """Advance a frozen clock (freezing it first if needed)."""
        self._frozen_tick = self.tick + ticks
        return self._frozen_tick

    def unfreeze(self) -> None:
        if self._frozen_tick is not None:
            self._epoch = time.time() - self._frozen_tick * self.tick_seconds
        self._frozen_tick = None

    # -- settled funding ---------------------------------------------------------------------------
    def now_ms(self, tick: int | None = None) -> int:
        """The market's clock in ms (a frozen clock stops it): settlements up to it have happened."""
        return int((self._epoch + (self.tick if tick is None else tick) * self.tick_seconds) * 1000)

    def settle_at(self, exchange: str, base: str, at_ms: int) -> None:
        """Add a settlement off the schedule at `at_ms`, announced as the next funding time until then."""
        self.coins[base]  # KeyError names an unknown base
        with self._lock:
            self.extra_settlements.setdefault((exchange, base), []).append(int(at_ms))
            self._cache.clear()

    def forget_extra_settlements(self) -> None:
        with self._lock:
            self.extra_settlements.clear()
            self._cache.clear()

    def settlements(self, exchange: str, base: str, start_ms: int = 0, end_ms: int | None = None) -> list[Settlement]:
        """Every settlement of `base`'s perpetual on `exchange` with funding_time in [start_ms, end_ms]
        (end: now), oldest first: on each schedule's whole periods since the listing, plus any settle_at.
        A settlement's interval is the time since the one before it, the period it paid for (the first
        one's: its schedule's)."""
        coin = self.coins[base]
        now = self.now_ms()
        end = now if end_ms is None else min(int(end_ms), now)
        listed = now - coin.listed_days.get(exchange, HISTORY_DAYS) * DAY_MS
        hours_now = self.funding_hours(exchange, coin)
        change_days, hours_before = coin.schedule_change.get(exchange, (0, hours_now))
        changed_at = (now - change_days * DAY_MS) // (8 * 3_600_000) * (8 * 3_600_000)
        times: dict[int, int] = {}
        for hours, lo, hi in ((hours_before, listed, changed_at), (hours_now, max(listed, changed_at), end + 1)):
            period = hours * 3_600_000
            t = -(-lo // period) * period
            while t < min(hi, end + 1):
                times[t] = hours
                t += period
        for t in self.extra_settlements.get((exchange, base), ()):
            if listed <= t <= end:
                times.setdefault(t, hours_now)
        ordered = sorted(times)
        intervals = [times[ordered[0]]] + [(b - a) / 3_600_000 for a, b in zip(ordered, ordered[1:])] if ordered else []
        return [Settlement(t, self._settled_rate(exchange, base, t), hours)
                for t, hours in zip(ordered, intervals) if t >= start_ms]

    @staticmethod
    def _settled_rate(exchange: str, base: str, funding_time: int) -> Decimal:
        return Decimal(random.Random(_seed("settled", base, exchange, funding_time)).randint(-300, 1000)) / Decimal(10**6)

    def _next_funding_time(self, exchange: str, base: str, ts: int, period: int) -> int:
        regular = (ts // period + 1) * period
        extra = [t for t in self.extra_settlements.get((exchange, base), ()) if ts < t < regular]
        return min(extra, default=regular)

    # -- values ------------------------------------------------------------------------------------
    def quote(self, exchange: str, base: str, tick: int | None = None) -> Quote:
        tick = self.tick if tick is None else tick
        key = (exchange, base, tick)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        quote = self._make_quote(exchange, self.coins[base], tick)
        with self._lock:
            if len(self._cache) > 5000:
                self._cache.clear()
            self._cache[key] = quote
        return quote

    def _mid(self, exchange: str, coin: Coin, tick: int) -> float:
        # A random walk whose steps are a pure function of (coin, exchange, step), summed in blocks of 64
        # so that any tick is reachable without replaying history step by step.
        log_move = 0.0
        block = tick // 64
        for b in range(block):
            log_move += random.Random(_seed("block", coin.base, exchange, b)).gauss(0, 0.0008 * 8)
        rng = random.Random(_seed("step", coin.base, exchange, block))
        for _ in range(tick % 64):
            log_move += rng.gauss(0, 0.0008)
        basis = (_seed("basis", coin.base, exchange) % 200 - 100) / 1e5
        return coin.price * (1 + basis) * math.exp(log_move)

    def _make_quote(self, exchange: str, coin: Coin, tick: int) -> Quote:
        rng = random.Random(_seed("quote", coin.base, exchange, tick))
        step = Decimal(coin.price_tick)
        mid = self._mid(exchange, coin, tick)
        bid = _round_to(mid, step) - step * rng.randint(0, 2)
        ask = bid + step * rng.randint(1, 3)
        lot = self.lot(exchange, coin)
        book = Book(_seed("book", coin.base, exchange, tick), bid, ask, step, lot, self.book_depth)
        ts = int((self._epoch + tick * self.tick_seconds) * 1000)
        hours = self.funding_hours(exchange, coin)
        period = hours * 3600 * 1000
        mark = _round_to(mid * (1 + rng.uniform(-2e-4, 2e-4)), step)
        index = _round_to(mid * (1 + rng.uniform(-3e-4, 3e-4)), step)
        last = bid if rng.random() < 0.5 else ask
        volume = Decimal(rng.randint(10_000, 5_000_000)) * lot
        quote = Quote(
            exchange=exchange, symbol=symbol_of(exchange, coin.base), base=coin.base, tick=tick, timestamp=ts,
            price_tick=step, contract_size=self.contract_size(exchange, coin),
            bid=bid, ask=ask, bid_size=book.top_lots("bids") * lot, ask_size=book.top_lots("asks") * lot, last=last,
            open=_round_to(mid * 0.99, step), high=_round_to(mid * 1.02, step), low=_round_to(mid * 0.97, step),
            volume_24h=volume, mark_price=mark, index_price=index,
            funding_rate=Decimal(rng.randint(-300, 1000)) / Decimal(10**6),
            next_funding_time=self._next_funding_time(exchange, coin.base, ts, period), funding_interval_hours=hours,
            book=book,
        )
        return dataclasses.replace(quote, **{name: None for name in coin.missing}) if coin.missing else quote
