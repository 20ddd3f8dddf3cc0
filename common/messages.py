"""What a consumer accepts from the broker: a message is checked for its size before it is parsed, then
validated whole; a problem is a Malformed naming it, never echoing the input (docs/reference.md, "Security").
The sender is checked apart, by the broker-verified user_id (common/roles.py)."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError

from common.board import MAX_BOARD_ROWS
from common.models import EXCHANGE_PATTERN, SYMBOL_LENGTH, Finite, TimeMs

# A board's JSON values counted before parsing, at C speed: a row is one object of 15 values, so more
# "{" or "," than this many rows could hold is refused unparsed (the parser's tree of a 4 MiB body of
# tiny values is ~200 MiB before validation could count anything).
MAX_BOARD_VALUES = MAX_BOARD_ROWS * 16
# A funding message holds what one worker fetched between two cycles: at most 5000 settlements (the worker
# splits there, common/settled.py), ~100 bytes each.
MAX_SETTLEMENTS = 5000
MAX_FUNDING_BYTES = 1 * 2**20


class Malformed(ValueError):
    """A message that cannot be used or held; the message says why (never its content)."""


def validated(model, body: bytes, where: str):
    """The message as `model`; Malformed naming the first problem (bad JSON, non-UTF-8, nesting too deep,
    a missing field or a wrong type) without echoing the input."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        first = e.errors(include_input=False, include_url=False)[0]
        at = ".".join(str(part) for part in first["loc"])
        raise Malformed(f"{where}: {at + ': ' if at else ''}{first['msg']} ({e.error_count()} problems)") from None


def check_board_size(body: bytes, where: str) -> None:
    """More rows or values than a board may hold, counted before the body is parsed (MAX_BOARD_VALUES). A "{"
    or "," inside a string counts too: an overestimate, which only a symbol full of them could reach."""
    objects, separators = body.count(b"{"), body.count(b",")
    if objects > MAX_BOARD_ROWS + 1 or separators > MAX_BOARD_VALUES:
        raise Malformed(f"{where}: more than {MAX_BOARD_ROWS} rows or {MAX_BOARD_VALUES} values "
                        f"({objects} objects, {separators} separators)")


_CONTRACT = ConfigDict(extra="ignore", strict=True)
Symbol = Annotated[str, Field(min_length=1, max_length=SYMBOL_LENGTH)]


class SettledRate(BaseModel):
    """One settled funding payment (SPEC 14)."""
    model_config = _CONTRACT
    symbol: Symbol
    funding_time: TimeMs
    rate: Annotated[Finite, Field(ge=-1, le=1)]
    interval_hours: Optional[Annotated[StrictFloat, Field(gt=0, le=24 * 31, allow_inf_nan=False)]] = None


class Backfilled(BaseModel):
    """A symbol whose backfill is complete: every settlement from `from_ms` on has been published."""
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)
    symbol: Symbol
    from_ms: TimeMs = Field(alias="from")


class FundingMessage(BaseModel):
    """funding.{exchange}: settlements a worker fetched (SPEC 14)."""
    model_config = _CONTRACT
    exchange: str = Field(pattern=EXCHANGE_PATTERN)
    timestamp: TimeMs
    settlements: list[SettledRate] = Field(max_length=MAX_SETTLEMENTS)
    backfilled: list[Backfilled] = Field(default_factory=list, max_length=MAX_SETTLEMENTS)


def parse_funding(body: bytes, exchange: str) -> FundingMessage:
    where = f"funding.{exchange[:40]}"
    if len(body) > MAX_FUNDING_BYTES:
        raise Malformed(f"{len(body)} bytes on {where}, more than {MAX_FUNDING_BYTES}")
    message = validated(FundingMessage, body, where)
    if message.exchange != exchange:
        raise Malformed(f"settlements of {message.exchange!r} published as {where}")
    return message
