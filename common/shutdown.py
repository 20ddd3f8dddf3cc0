"""Stopping on SIGTERM (supervisorctl stop) and SIGINT (Ctrl+C) within a few seconds, whatever is running."""
from __future__ import annotations

import contextlib
import logging
import signal


class Shutdown(BaseException):
    """Raised to abandon whatever is in progress (a request, a retry wait) once a stop is asked for.
    A BaseException, so that no `except Exception` in ccxt or requests swallows it."""


class StopSignal:
    """SIGTERM/SIGINT set a flag; inside `interruptible()` (a blocking HTTP request) they also raise."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self.requested = False
        self._interruptible = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.log.info("Received %s, stopping", signal.Signals(signum).name)
        self.requested = True
        if self._interruptible:
            raise Shutdown

    @contextlib.contextmanager
    def interruptible(self):
        if self.requested:
            raise Shutdown
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
