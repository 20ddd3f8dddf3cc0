"""The snapshot published per (exchange, symbol) per cycle: the vision's section 5 model."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field

# [price, amount in base units]. A list, not a tuple: ccxt's levels are lists, and validating them as they
# are saves copying every level of a 1000-level book.
Level = Annotated[list[float], Field(min_length=2, max_length=2)]


class TickerData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bid: float
    ask: float
    last: float
    volume_24h: Optional[float] = None  # base units


class OrderbookData(BaseModel):
    # Strict: ccxt hands over floats already, and lax coercion of 2 x 1000 levels costs ~20% more CPU.
    # Validation copies the level lists, so the snapshot never shares them with ccxt's book.
    model_config = ConfigDict(extra="forbid", strict=True)
    bids: list[Level]
    asks: list[Level]
    timestamp: int  # ms


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
