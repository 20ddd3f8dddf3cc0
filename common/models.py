"""The snapshot published per (exchange, symbol) per cycle: the vision's section 5 model."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

Level = tuple[float, float]  # (price, amount in base units), serialized as [price, amount]


class TickerData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bid: float
    ask: float
    last: float
    volume_24h: Optional[float] = None  # base units


class OrderbookData(BaseModel):
    # Strict: ccxt hands over floats already, and lax coercion of 2 x 1000 levels costs ~20% more CPU.
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
