"""The snapshot published per (exchange, symbol) per cycle: the vision's section 5 model.

Every number is checked for sanity here, where the worker builds a snapshot and where the scanner reads
one, so that a value no consumer can use is refused at the door instead of stored (docs/reference.md,
"Security"): times within years of now (a next funding time of 10^30 broke the scanner's JSON encoder),
no NaN or infinity (JSON has no such numbers: they went out as null), no negative prices or amounts.
"""
from __future__ import annotations

import time
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

# 2015-01-01 UTC: older than every perpetual any venue here lists, so a real time is never refused; a
# time further than 5 years ahead is a unit error (s vs ms vs ns) or a forgery.
MIN_TIME_MS = 1_420_070_400_000
MAX_AHEAD_MS = 5 * 365 * 24 * 3600 * 1000
MAX_BOOK_LEVELS = 5000  # per side: the deepest REST book here is 1000 levels (Binance)


def sane_time_ms(ms: int) -> int:
    """`ms` when it is a time between 2015-01-01 and 5 years from now; ValueError otherwise. The error never
    repeats the value: a 400-digit integer does not belong in an error message or a log line."""
    if not MIN_TIME_MS <= ms <= time.time() * 1000 + MAX_AHEAD_MS:
        raise ValueError("must be a time in ms between 2015-01-01 and 5 years from now")
    return ms


# A time in ms. Strict: 1.7e12 as a float or "1700000000000" as a string is a producer's fault.
TimeMs = Annotated[StrictInt, AfterValidator(sane_time_ms)]
# Finite numbers only: NaN and Infinity pass through to every consumer's JSON parser, and JavaScript's and
# orjson's reject them. Strict: a string where a number belongs is a fault to reject, not to coerce.
Finite = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Price = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]   # 0: the exchange has none
Amount = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]  # base units
EXCHANGE_PATTERN = r"^[a-z0-9_]{1,32}$"  # a config name, e.g. gateio
SYMBOL_LENGTH = 64

# (price, amount in base units), serialized as [price, amount]. The container is lax, so ccxt's
# [price, amount] lists validate as they are, without a copy per level first; and tuples of floats, unlike
# lists, drop out of the garbage collector's sight, which a 2 x 1000-level book held for a cycle notices.
Level = tuple[Price, Amount]
# The values of `extra` that consumers read as numbers (the scanner among them): null or a finite number.
EXTRA_NUMBERS = ("contract_size", "index_price", "funding_interval_hours", "open_interest")


class TickerData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bid: Price
    ask: Price
    last: Price
    volume_24h: Optional[Amount] = None  # base units


class OrderbookData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bids: list[Level] = Field(max_length=MAX_BOOK_LEVELS)
    asks: list[Level] = Field(max_length=MAX_BOOK_LEVELS)
    timestamp: TimeMs


class FuturesData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exchange: str = Field(pattern=EXCHANGE_PATTERN)
    symbol: str = Field(min_length=1, max_length=SYMBOL_LENGTH)
    timestamp: TimeMs = Field(description="ms, when the snapshot was assembled")
    ticker: TickerData
    orderbook: OrderbookData
    funding_rate: Optional[Finite] = None
    next_funding_time: Optional[TimeMs] = None
    mark_price: Optional[Price] = None
    extra: Optional[dict[str, Any]] = None

    @field_validator("extra")
    @classmethod
    def _extra_numbers(cls, extra: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        for name in EXTRA_NUMBERS:
            value = (extra or {}).get(name)
            if value is None:
                continue
            if not _finite_non_negative(value):
                raise ValueError(f"{name} must be null or a finite number >= 0")
        return extra


def _finite_non_negative(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):  # JSON's integers are unbounded, orjson's and JavaScript's are not
        return 0 <= value <= 2**53
    return 0 <= value < float("inf")  # NaN fails both comparisons
