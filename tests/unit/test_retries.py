"""common/retries.py: the retry schedule of the worker's requests (the requests themselves are plain callables
here; tests/test_worker_faults.py runs them against the simulator)."""
from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import ccxt
import pytest

from common.config import CollectionConfig
from common.retries import Retrying
from common.shutdown import Shutdown, StopSignal

pytestmark = pytest.mark.unit

LOG = logging.getLogger("test.retries")


def retrying(waits: list, attempts: int = 2) -> Retrying:
    routes = SimpleNamespace(bulk_route=lambda: SimpleNamespace(throttle=None))
    return Retrying(CollectionConfig(retry_attempts=attempts, retry_delays=[1, 2]), routes, StopSignal(LOG),
                    waits.append, LOG)


def answers(*results):
    """A call answering each of `results` in turn (raising the exceptions)."""
    pending = list(results)

    def fn():
        result = pending.pop(0)
        if isinstance(result, Exception):
            raise result
        return result
    return fn


def test_a_failing_call_is_retried_on_the_schedule_and_its_answer_returned(caplog):
    waits = []
    assert retrying(waits)("tickers", answers(ccxt.NetworkError("down"), {}, {"BTC": 1})) == {"BTC": 1}
    assert waits == [1, 2]  # an empty answer is a failure too
    assert "Failed to fetch tickers: NetworkError: down (retry 1/2)" in caplog.text
    assert "(retry 2/2)" in caplog.text


def test_the_retries_spent_give_none_said_at_error_unless_quiet(caplog):
    waits = []
    assert retrying(waits)("tickers", answers(*[ccxt.NetworkError("down")] * 3)) is None
    assert "(giving up after 2 retries)" in caplog.text
    caplog.clear()
    assert retrying(waits)("intervals", answers(ccxt.NetworkError("down")), retries=0, quiet=True) is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_wrong_request_is_not_retried_and_an_empty_answer_may_be_fine():
    waits = []
    assert retrying(waits)("book", answers(ccxt.BadSymbol("no such"), {"x": 1})) is None
    assert retrying(waits)("intervals", answers({}), empty_ok=True) == {}
    assert waits == []


def test_a_book_thread_waits_without_the_broker_and_stops_when_asked():
    waits, results = [], []
    calls = retrying(waits, attempts=1)
    calls.stop.requested = True

    def book_thread():
        try:
            calls("orderbook BTC", answers(ccxt.NetworkError("down"), {"bids": []}))
        except Shutdown:
            results.append("stopped")
    thread = threading.Thread(target=book_thread)
    thread.start()
    thread.join(5)
    assert results == ["stopped"] and waits == []
