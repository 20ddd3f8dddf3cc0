"""Open interest where an exchange gives it per symbol only (Binance: /fapi/v1/openInterest, weight 1): a
rotation through the listed perpetuals between cycles (common/between_cycles.py), each value kept with the
exchange's own time of it, so that a board row says how old its open interest is (`open_interest_time`).
At a tenth of Binance's 2400 weight a minute, 550 perpetuals take 2.3 minutes: that is the worst age."""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Callable

from common.logs import printable
from common.problems import describe

if TYPE_CHECKING:
    import ccxt

# The rotation's share of the budget: what the cycle leaves, at most this much of it.
ROTATION_SHARE = 0.1


class OpenInterestRotation:
    """`step()` fetches the next symbol's open interest (BetweenCycles' step); `latest(symbol)` gives
    (amount in base units, time ms) or None. Bounded by the listed perpetuals: a delisted symbol is dropped."""

    def __init__(self, client: ccxt.Exchange, fetch: Callable[[ccxt.Exchange, str], dict], log):
        self.client, self.fetch, self.log = client, fetch, log
        self.symbols: list[str] = []
        self.values: dict[str, tuple[float, int]] = {}
        self._next = 0
        self._failing: dict[str, str] = {}
        self._lock = threading.Lock()

    def update(self, symbols) -> None:
        with self._lock:
            self.symbols = sorted(symbols)
            listed = set(self.symbols)
            self.values = {s: v for s, v in self.values.items() if s in listed}

    def latest(self, symbol: str) -> tuple[float, int] | None:
        return self.values.get(symbol)

    def step(self) -> bool:
        with self._lock:
            if not self.symbols:
                return False
            symbol = self.symbols[self._next % len(self.symbols)]
            self._next += 1
        try:
            value = amount_and_time(self.fetch(self.client, symbol))
        except Exception as e:  # noqa: BLE001 - anything an exchange sends may be malformed; next round
            reason = describe(e)
            if self._failing.get(symbol) != reason:
                self._failing[symbol] = reason
                self.log.warning("Open interest of %s not fetched: %s", printable(symbol), reason)
            return True
        self._failing.pop(symbol, None)
        with self._lock:
            if symbol in set(self.symbols):
                self.values[symbol] = value
        return True

    def worst_age_ms(self, now_ms: int) -> int | None:
        """How old the oldest value is, or None before every listed symbol has one."""
        with self._lock:
            if not self.symbols or len(self.values) < len(self.symbols):
                return None
            return now_ms - min(time for _, time in self.values.values())


def amount_and_time(interest: dict) -> tuple[float, int]:
    """(base units, ms) from ccxt's open interest structure; ValueError naming what is wrong."""
    amount, time = interest.get("openInterestAmount"), interest.get("timestamp")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount < 0:
        raise ValueError(f"open interest {amount!r:.40} is not a non-negative number")
    if isinstance(time, bool) or not isinstance(time, int) or time <= 0:
        raise ValueError(f"open interest time {time!r:.40} is not a time in ms")
    return float(amount), time
