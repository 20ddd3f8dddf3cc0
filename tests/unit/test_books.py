"""common/books.py: books cut to depth and never empty; the per-symbol extras tried once and said once while
failing (clients are stand-ins answering ccxt's parsed shapes; the simulator runs are tests/test_worker*.py)."""
from __future__ import annotations

import logging

import ccxt
import pytest

from common.books import SymbolExtras, fetch_book
from common.shutdown import StopSignal

pytestmark = pytest.mark.unit

LOG = logging.getLogger("test.books")


class Client:
    def __init__(self, book):
        self.book = book

    def fetch_order_book(self, symbol, limit, params):
        return self.book


def test_a_book_is_cut_to_the_depth_asked_for():
    book = {"bids": [[100 - i, 1] for i in range(150)], "asks": [[101 + i, 1] for i in range(150)]}
    cut = fetch_book(Client(book), "BTC/USDT:USDT", 20, {})
    assert len(cut["bids"]) == len(cut["asks"]) == 20


def test_a_book_without_a_side_is_a_bad_response():
    with pytest.raises(ccxt.BadResponse, match="order book without asks"):
        fetch_book(Client({"bids": [[100, 1]], "asks": []}), "BTC/USDT:USDT", 20, {})


def test_a_failing_extra_publishes_nothing_said_once_until_it_recovers(caplog):
    caplog.set_level(logging.INFO)
    failing = True

    def mark_price(client, symbol):
        if failing:
            raise ccxt.NetworkError("down")
        return {"mark_price": 1.0}
    extras = SymbolExtras((mark_price,), StopSignal(LOG), LOG)
    assert extras.fetch(None, "BTC") == {} and extras.fetch(None, "BTC") == {}
    assert caplog.text.count("Failed to fetch mark_price of BTC") == 1
    failing = False
    assert extras.fetch(None, "BTC") == {"mark_price": 1.0}
    assert "Fetched mark_price of BTC again" in caplog.text


def test_an_unwatched_symbols_extra_problem_is_forgotten(caplog):
    def mark_price(client, symbol):
        raise ccxt.NetworkError("down")
    extras = SymbolExtras((mark_price,), StopSignal(LOG), LOG)
    extras.fetch(None, "BTC")
    extras.keep_only(frozenset())
    extras.fetch(None, "BTC")  # watched again: news again
    assert caplog.text.count("Failed to fetch mark_price of BTC") == 2
