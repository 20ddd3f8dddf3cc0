"""Symbols: validation of ccxt unified names, routing keys, and the versioned set the controller owns."""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator

# BASE/QUOTE:SETTLE with an optional expiry (dated futures). Letters and digits only in each part, so
# that nothing can break a topic routing key ('.', '*', '#') or a log line. \Z, not $: $ also matches before a
# final newline, which let 'BTC/USDT:USDT\n' in as a second BTC.
SYMBOL_PATTERN = re.compile(r"^([A-Za-z0-9]{1,32})/([A-Za-z0-9]{1,32})(?::([A-Za-z0-9]{1,32})(?:-([0-9]{6}))?)?\Z")
MAX_SYMBOLS = 1000


def symbol_problem(symbol: object) -> str | None:
    """Why `symbol` is not an acceptable ccxt unified symbol, or None when it is."""
    if not isinstance(symbol, str):
        return f"symbol must be a string, got {type(symbol).__name__}"
    if not SYMBOL_PATTERN.match(symbol):
        shown = symbol if len(symbol) <= 60 else symbol[:60] + "..."
        return (f"invalid symbol {shown!r}: expected ccxt unified form like 'BTC/USDT:USDT' "
                "(letters and digits, no '.', '*', '#' or spaces)")
    return None


def routing_symbol(symbol: str) -> str:
    """'BTC/USDT:USDT' -> 'BTCUSDT'; a dated future keeps its expiry: 'BTC/USDT:USDT-250328' -> 'BTCUSDT-250328'."""
    match = SYMBOL_PATTERN.match(symbol)
    if not match:
        raise ValueError(symbol_problem(symbol))
    base, quote, _settle, expiry = match.groups()
    return f"{base}{quote}" + (f"-{expiry}" if expiry else "")


def routing_key(exchange: str, symbol: str) -> str:
    return f"futures.{exchange}.{routing_symbol(symbol)}"


class SymbolSet(BaseModel):
    """The full set of symbols to collect, as the controller broadcasts it, with its version (the latest
    broadcast is the current set, whatever its version: a controller that lost its state starts again at 1)."""
    version: int = Field(ge=0)
    symbols: list[str] = Field(max_length=MAX_SYMBOLS)
    timestamp: int = 0  # ms, when the controller made this version

    @field_validator("symbols")
    @classmethod
    def _valid_and_unique(cls, symbols: list[str]) -> list[str]:
        return valid_symbols(symbols)


def valid_symbols(symbols: list[str]) -> list[str]:
    """The symbols without duplicates, in order; ValueError naming the first bad one."""
    for symbol in symbols:
        problem = symbol_problem(symbol)
        if problem:
            raise ValueError(problem)
    return list(dict.fromkeys(symbols))


@dataclass(frozen=True)
class Shard:
    """One of `count` workers sharing one exchange's symbols (on several hosts, each with its own IP): it
    collects the symbols whose CRC-32 falls to it. CRC-32 of the symbol alone, never Python's hash() (salted
    per process): every process on every host agrees, and adding or removing a symbol moves no other one."""
    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'2/3' -> Shard(2, 3); ValueError naming the problem."""
        match = re.fullmatch(r"\s*(\d{1,3})\s*/\s*(\d{1,3})\s*", text or "")
        if not match:
            raise ValueError(f"shard {text!r}: expected INDEX/COUNT, e.g. 2/3")
        shard = cls(int(match.group(1)), int(match.group(2)))
        if not 1 <= shard.index <= shard.count:
            raise ValueError(f"shard {text!r}: the index must be from 1 to the count")
        return shard

    def owns(self, symbol: str) -> bool:
        return self.count == 1 or zlib.crc32(symbol.encode()) % self.count == self.index - 1

    @property
    def publishes_board(self) -> bool:
        """One board per exchange per cycle: the first shard's (every shard makes the same bulk calls)."""
        return self.index == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
