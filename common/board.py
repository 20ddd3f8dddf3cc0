"""The market board (docs/reference.md, "The market board"): every linear perpetual an exchange lists, from
the bulk calls a worker makes each cycle anyway, published as one message on routing key `board.{exchange}`.

The worker validates what it publishes with these models and the scanner validates what it consumes with
the same ones, so both sides agree on one contract. Amounts are in base units, as in the snapshot.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

# Strict numbers: a string where a price belongs is a fault to reject, not to coerce. Finite only: NaN or
# Infinity would pass through to every consumer's JSON parser, and JavaScript's rejects them.
_CONTRACT = ConfigDict(extra="forbid", allow_inf_nan=False)


def board_routing_key(exchange: str) -> str:
    return f"board.{exchange}"


class BoardRow(BaseModel):
    """One perpetual's values as the exchange's bulk rows give them; a value they lack is null."""
    model_config = _CONTRACT
    symbol: str = Field(min_length=1, max_length=64)  # ccxt unified, e.g. BTC/USDT:USDT
    bid: Optional[StrictFloat] = None
    ask: Optional[StrictFloat] = None
    last: Optional[StrictFloat] = None
    volume_24h: Optional[StrictFloat] = Field(None, ge=0)      # base units
    mark_price: Optional[StrictFloat] = None
    index_price: Optional[StrictFloat] = None
    funding_rate: Optional[StrictFloat] = None                 # a fraction per funding interval
    next_funding_time: Optional[StrictInt] = Field(None, ge=0)  # ms
    # The symbol's own interval (1, 2, 4, 8 h differ per symbol on one exchange), never an assumed 8 h.
    funding_interval_hours: Optional[StrictFloat] = Field(None, gt=0)
    contract_size: Optional[StrictFloat] = Field(None, gt=0)
    open_interest: Optional[StrictFloat] = Field(None, ge=0)   # base units


class Board(BaseModel):
    model_config = _CONTRACT
    exchange: str = Field(pattern=r"^[a-z0-9_]{1,32}$")  # the config name, e.g. gateio
    timestamp: StrictInt = Field(ge=0, description="ms, when the board was assembled")
    markets: list[BoardRow]
