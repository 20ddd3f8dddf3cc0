"""Which failures bench a proxy: only those that died on the way to it (the exchange never saw the request),
as ccxt raises them (built here the way ccxt's fetch chains requests' and urllib3's errors)."""
from __future__ import annotations

import logging

import ccxt
import pytest
import requests
import urllib3

from common.routes import PROXY_RETRY_SECONDS, Route, Routes, proxy_unreachable

pytestmark = pytest.mark.unit


def raised_from(ccxt_error: type, cause: BaseException) -> BaseException:
    """What ccxt's fetch raises: its own error, from requests' (`raise NetworkError(details) from e`)."""
    try:
        try:
            raise cause
        except BaseException as e:
            raise ccxt_error("bybit GET https://api.bybit.com/v5/market/orderbook") from e
    except ccxt.BaseError as error:
        return error


def wrapped(reason: BaseException, outer: type) -> BaseException:
    """requests' error holding urllib3's MaxRetryError, whose reason is what happened."""
    return outer(urllib3.exceptions.MaxRetryError(None, "/v5/market/orderbook", reason))


REFUSED = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: refused")
NEVER_SENT = {
    "proxy refused": raised_from(ccxt.NetworkError, wrapped(urllib3.exceptions.ProxyError(
        "Unable to connect to proxy", REFUSED), requests.exceptions.ProxyError)),
    "CONNECT refused (407)": raised_from(ccxt.NetworkError, requests.exceptions.ProxyError(
        "Tunnel connection failed: 407 Proxy Authentication Required")),
    "socks proxy refused": raised_from(ccxt.NetworkError, wrapped(REFUSED, requests.exceptions.ConnectionError)),
    "connect timeout": raised_from(ccxt.RequestTimeout, requests.exceptions.ConnectTimeout("timed out")),
    "407 answer (http target)": ccxt.AuthenticationError(
        "bybit GET http://127.0.0.1:8900/bybit/v5/market/orderbook 407 Proxy Authentication Required <html>"),
}
SEEN = {
    "5xx": ccxt.ExchangeNotAvailable("bybit GET https://api.bybit.com/v5/market/orderbook 502 Bad Gateway"),
    "read timeout": raised_from(ccxt.RequestTimeout, requests.exceptions.ReadTimeout("Read timed out.")),
    "reset": raised_from(ccxt.NetworkError, requests.exceptions.ConnectionError("Connection aborted.")),
    "429": ccxt.RateLimitExceeded("bybit 429 Too Many Requests"),
    "a book that does not parse": ccxt.BadResponse("bybit: no bids"),
}


@pytest.mark.parametrize("error", NEVER_SENT.values(), ids=NEVER_SENT)
def test_a_request_that_never_left_for_the_exchange_marks_the_proxy_unreachable(error):
    assert proxy_unreachable(error)


@pytest.mark.parametrize("error", SEEN.values(), ids=SEEN)
def test_what_the_exchange_answered_or_may_have_seen_says_nothing_against_the_proxy(error):
    assert not proxy_unreachable(error)


def routes(clock) -> Routes:
    return Routes([Route("direct", [], None), Route("http://127.0.0.2:3128", [], None, is_proxy=True)],
                  logging.getLogger("test"), clock=clock)


def test_only_an_unreachable_proxy_is_benched_and_its_request_handed_over():
    now = [100.0]
    r = routes(lambda: now[0])
    proxy = r.routes[1]
    assert r.failed(proxy, SEEN["5xx"]) is False and proxy.down_until == 0.0
    assert r.failed(proxy, NEVER_SENT["proxy refused"]) is True
    assert proxy.down_until == 100.0 + PROXY_RETRY_SECONDS
    assert proxy.failures == 2 and proxy.requests == 2


def test_the_machines_own_address_is_never_benched():
    r = routes(lambda: 0.0)
    assert r.failed(r.routes[0], NEVER_SENT["socks proxy refused"]) is False
    assert r.routes[0].down_until == 0.0
