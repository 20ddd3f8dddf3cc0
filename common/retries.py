"""ccxt calls on the configured retry schedule: the worker's requests, from its main thread (which serves the
broker while it waits) or from a book thread (which must not touch the broker)."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable

import ccxt

from common.config import CollectionConfig
from common.problems import describe
from common.routes import Routes
from common.shutdown import Shutdown, StopSignal

# Errors that a retry cannot fix: the request itself is wrong.
NOT_RETRYABLE = (ccxt.BadSymbol, ccxt.BadRequest, ccxt.NotSupported, ccxt.AuthenticationError,
                 ccxt.PermissionDenied, ccxt.ArgumentsRequired)


class Retrying:
    """`wait(seconds)`: the main thread's wait (serving the broker, raising Shutdown when asked to stop)."""

    def __init__(self, collection: CollectionConfig, routes: Routes, stop: StopSignal,
                 wait: Callable[[float], None], log: logging.Logger):
        self.collection = collection
        self.routes = routes
        self.stop = stop
        self.wait = wait
        self.log = log

    def __call__(self, what: str, fn, *args, empty_ok: bool = False, retries: int | None = None,
                 quiet: bool = False):
        """fn(*args), retried on the configured schedule (or `retries` times); None once the retries are spent
        (`quiet`: without an ERROR line, for a failure the caller already said and tries again each cycle).
        An empty answer counts as a failure (ccxt turns some malformed bodies into {} instead of raising),
        unless `empty_ok`: some answers are legitimately empty."""
        in_main = threading.current_thread() is threading.main_thread()
        retries = self.collection.retry_attempts if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return self._once(fn, args, in_main, empty_ok)
            except NOT_RETRYABLE as e:
                if not quiet:
                    self.log.error("Failed to fetch %s: %s", what, describe(e))
                return None
            except Exception as e:  # noqa: BLE001 - ccxt's parsers raise plain errors on malformed bodies
                if attempt == retries:
                    say = self.log.debug if quiet else self.log.error
                    say("Failed to fetch %s: %s (giving up after %d retries)", what, describe(e), retries)
                    return None
                self.log.error("Failed to fetch %s: %s (retry %d/%d)", what, describe(e), attempt + 1, retries)
                delay = self.collection.retry_delay(attempt + 1)  # a Retry-After: the throttle waits it
                self.wait(delay) if in_main else self.pause(delay)
        return None

    def _once(self, fn, args, in_main: bool, empty_ok: bool):
        throttle = self.routes.bulk_route().throttle if in_main else None
        if throttle is not None and throttle.paused_for() > 0:
            self.wait(throttle.paused_for())  # the pause of a 429/418, serving the broker
        with self.stop.interruptible() if in_main else contextlib.nullcontext():
            result = fn(*args)
        if not result and not (empty_ok and result is not None):
            raise ccxt.BadResponse("empty response")
        return result

    def pause(self, seconds: float) -> None:
        """A book thread's wait: no broker, but stops as soon as a stop is asked for."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop.requested:
                raise Shutdown
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
