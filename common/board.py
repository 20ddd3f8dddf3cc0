"""The market board (docs/reference.md, "The market board"): every linear perpetual an exchange lists, from
the bulk calls a worker makes each cycle anyway, published as one message on routing key `board.{exchange}`.

The worker validates what it publishes with these models and the scanner validates what it consumes with
the same ones, so both sides agree on one contract. Amounts are in base units, as in the snapshot.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from common.models import EXCHANGE_PATTERN, SYMBOL_LENGTH, Amount, Finite, Price, TimeMs

# Strict numbers: a string where a price belongs is a fault to reject, not to coerce. Finite only: NaN or
# Infinity would pass through to every consumer's JSON parser, and JavaScript's rejects them. Times within
# years of now, no negative prices or amounts (common/models.py).
_CONTRACT = ConfigDict(extra="forbid", allow_inf_nan=False)
# The largest real board is ~600 rows (~200 KB): ample headroom, yet a board's parsed rows stay a few MB
# (a board of 200k rows held 258 MiB in the scanner). scanner.py also caps a board's bytes before parsing.
MAX_BOARD_ROWS = 5000


def board_routing_key(exchange: str) -> str:
    return f"board.{exchange}"


class BoardRow(BaseModel):
    """One perpetual's values as the exchange's bulk rows give them; a value they lack is null."""
    model_config = _CONTRACT
    symbol: str = Field(min_length=1, max_length=SYMBOL_LENGTH)  # ccxt unified, e.g. BTC/USDT:USDT
    bid: Optional[Price] = None
    ask: Optional[Price] = None
    last: Optional[Price] = None
    volume_24h: Optional[Amount] = None                        # base units
    mark_price: Optional[Price] = None
    index_price: Optional[Price] = None
    funding_rate: Optional[Finite] = None                      # a fraction per funding interval
    next_funding_time: Optional[TimeMs] = None                 # ms
    # The symbol's own interval (1, 2, 4, 8 h differ per symbol on one exchange), never an assumed 8 h.
    funding_interval_hours: Optional[StrictFloat] = Field(None, gt=0)
    contract_size: Optional[StrictFloat] = Field(None, gt=0)
    open_interest: Optional[Amount] = None                     # base units
    # Where the open interest comes per symbol in a rotation (Binance), the exchange's time of it (ms): it can
    # be minutes older than the row. Null where it comes with the row.
    open_interest_time: Optional[TimeMs] = None
    # Hyperliquid's bulk answer has no best bid/ask, only the prices at which a set notional would fill
    # (impactPxs): carried apart, never as bid/ask, which then stay null (the top of the book is in the
    # watched symbols' snapshots).
    impact_bid: Optional[Price] = None
    impact_ask: Optional[Price] = None


class Board(BaseModel):
    model_config = _CONTRACT
    exchange: str = Field(pattern=EXCHANGE_PATTERN)  # the config name, e.g. gateio
    timestamp: TimeMs = Field(description="ms, when the board was assembled")
    markets: list[BoardRow] = Field(max_length=MAX_BOARD_ROWS)
