"""The snapshot published per (exchange, symbol) per cycle: the vision's section 5 model."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

# (price, amount in base units), serialized as [price, amount]. Strict floats: ccxt hands over floats, and a
# string or None in a level is a parsing fault to reject, not to coerce. The container is lax, so ccxt's
# [price, amount] lists validate as they are, without a copy per level first; and tuples of floats, unlike
# lists, drop out of the garbage collector's sight, which a 2 x 1000-level book held for a cycle notices.
Level = tuple[StrictFloat, StrictFloat]


class TickerData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bid: float
    ask: float
    last: float
    volume_24h: Optional[float] = None  # base units


class OrderbookData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bids: list[Level]
    asks: list[Level]
    timestamp: StrictInt  # ms


class FuturesData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exchange: str
    symbol: str
    timestamp: int = Field(description="ms, when the snapshot was assembled")
    ticker: TickerData
    orderbook: OrderbookData
    funding_rate: Optional[float] = None
    next_funding_time: Optional[int] = None  # ms
    mark_price: Optional[float] = None
    extra: Optional[dict[str, Any]] = None
