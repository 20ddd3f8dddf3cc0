"""What a worker says about what went wrong: each problem once while it lasts, in log-safe text, with the
bookkeeping bounded by what the exchange still sends. Plain objects and functions, no I/O: the worker
decides what to log, these decide whether it is news."""
from __future__ import annotations

import threading

from common.logs import printable

ROW_ID_LIMIT = 40         # characters of a bulk row's contract name (or excerpt) in a log line
DESCRIBE_LIMIT = 300      # characters of an error's text in a log line


class Problems:
    """The current problem of each key (a symbol, an extra of a symbol): `note` says whether it is news
    (new, or another reason than last time), `clear` whether there was one (so that its end is news too).
    Thread-safe: book threads note their own requests' problems."""

    def __init__(self):
        self._reasons: dict = {}
        self._lock = threading.Lock()

    def note(self, key, reason: str) -> bool:
        with self._lock:
            news = self._reasons.get(key) != reason
            self._reasons[key] = reason
        return news

    def clear(self, key) -> bool:
        with self._lock:
            return self._reasons.pop(key, None) is not None

    def keep_only(self, alive) -> None:
        """Forget the keys for which `alive(key)` is false (symbols no longer watched)."""
        with self._lock:
            self._reasons = {key: reason for key, reason in self._reasons.items() if alive(key)}

    def __len__(self) -> int:
        return len(self._reasons)

    def __contains__(self, key) -> bool:
        return key in self._reasons


class CycleProblems:
    """Problems of rows that come anew every cycle (bulk rows): news when a row fails unlike it did in the
    previous cycle or earlier in this one. Only the last two cycles are held, so a row the exchange no
    longer sends (a delisted contract, a crafted name) is forgotten after one cycle without it."""

    def __init__(self):
        self._last: dict = {}
        self._this: dict = {}

    def note(self, key, reason: str) -> bool:
        news = self._this.get(key, self._last.get(key)) != reason
        self._this[key] = reason
        return news

    def end_cycle(self) -> None:
        self._last, self._this = self._this, {}

    def __len__(self) -> int:
        return len(self._last.keys() | self._this.keys())


def row_id(row) -> str:
    """A bulk row's contract name for the log, or a short excerpt of it, escaped: the exchange wrote it."""
    if isinstance(row, dict):
        for key in ("contract_code", "symbol", "contract", "name"):
            if isinstance(row.get(key), str):
                return printable(row[key], ROW_ID_LIMIT)
    return ascii(row)[:ROW_ID_LIMIT]  # ascii() escapes what a JSON value holds


def describe(error: Exception) -> str:
    """An error as one escaped log line: its type and the start of its text (which may quote the answer)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {printable(text, DESCRIBE_LIMIT)}" if text else type(error).__name__
