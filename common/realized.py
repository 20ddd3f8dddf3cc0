"""The scanner's realized funding (SPEC 14): every leg's realized APR over 1, 3, 7 and 30 days from the
recorder's history database, and one asset's settlements and samples for `GET /api/history/{base}`.

The scanner only reads the database (common/history.open_reader: read-only, never created here). Every leg's
realized APRs come from one query over the whole market (~0.3 s at its size), run by a thread of its own once
a minute, never by a request: the API reads the last answer, which is up to a minute old (its windows end at
the refresh, `refreshed` in /api/status). One asset's history is small and read per request, in the web
server's thread pool.

Decisions where the issue is silent:
* A database that is missing, unreadable or of another schema: every realized value is null, said once in
  the log (again when the reason changes, and when it is readable again) and in /api/status's `history`;
  it is tried again at the next refresh (the recorder may create it later).
* A refresh that fails (the file went away, a read error) leaves every value null until one succeeds, rather
  than keeping the last values at an age nobody sees.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Mapping, NamedTuple, Optional

from common.history import history_for_base, open_reader, realized_by_leg

REFRESH_SECONDS = 60.0
log = logging.getLogger("scanner.history")


class HistoryUnavailable(Exception):
    """The history database cannot be read now; the message says why (without the query's values)."""


class Realized(NamedTuple):
    """One refresh's answer, replaced whole: a reader takes one reference and sees one refresh."""
    by_leg: Mapping[tuple[str, str], Mapping[str, Optional[float]]]  # (exchange, symbol) -> {"1d": ...}
    available: bool
    refreshed_ms: Optional[int]   # when the values were computed (their windows end then)
    problem: Optional[str]        # why the database is not available


class RealizedFunding:
    """The realized APRs of every leg, refreshed from `path` every REFRESH_SECONDS by `start()`'s thread."""

    def __init__(self, path: str | Path, refresh_seconds: float = REFRESH_SECONDS):
        self.path = Path(path)
        self.refresh_seconds = refresh_seconds
        self.current = Realized({}, False, None, "not read yet")
        self._reader: Optional[sqlite3.Connection] = None  # the refreshing thread's own
        self._said: Optional[str] = None                   # the problem last logged ("" once readable)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)

    # -- the refreshing thread ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        try:
            while True:
                self.refresh(_now_ms())
                if self._stop.wait(self.refresh_seconds):  # the refresh period, or the stop, whichever first
                    return
        finally:
            self._close()

    def refresh(self, now_ms: int) -> Realized:
        """Every leg's realized APRs at `now_ms`; on any database error, every value null and the reason."""
        try:
            if self._reader is None:
                self._reader = self._open()
            by_leg = realized_by_leg(self._reader, now_ms)
        except (sqlite3.Error, OSError, HistoryUnavailable) as e:
            self._close()
            self.current = Realized({}, False, None, str(e))
            self._say(str(e))
            return self.current
        self.current = Realized(by_leg, True, now_ms, None)
        self._say("", len(by_leg))
        return self.current

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise HistoryUnavailable(f"{self.path} does not exist (the recorder creates it)")
        return open_reader(self.path)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _say(self, problem: str, legs: int = 0) -> None:
        """Log a change of state once, not every refresh."""
        if problem == self._said:
            return
        if problem:
            log.warning("History database unavailable, realized funding is null until it can be read: %s", problem)
        else:
            log.info("Realized funding from %s: %d legs, refreshed every %.0fs", self.path, legs,
                     self.refresh_seconds)
        self._said = problem

    # -- what the web server reads -----------------------------------------------------------------
    def by_leg(self) -> Mapping[tuple[str, str], Mapping[str, Optional[float]]]:
        return self.current.by_leg

    def status(self) -> dict:
        current = self.current
        return {"database": str(self.path), "available": current.available, "refreshed": current.refreshed_ms,
                "legs": len(current.by_leg), "problem": current.problem}

    def history(self, base: str, from_ms: int, to_ms: int) -> dict:
        """history_for_base on a connection of the calling thread's own (sqlite3 connections are not shared
        between threads), opened and closed per request: opening costs well under a millisecond."""
        try:
            reader = self._open()
        except (sqlite3.Error, OSError) as e:
            raise HistoryUnavailable(str(e)) from None
        try:
            return history_for_base(reader, base, from_ms, to_ms)
        except sqlite3.Error as e:
            raise HistoryUnavailable(f"{self.path}: {e}") from None
        finally:
            reader.close()


def _now_ms() -> int:
    return int(time.time() * 1000)
