"""common/funding.py: funding intervals never guessed (null until known, the last known kept through a failure)
and each funding problem said once. No network: the answers are what ccxt's fundingInfo parse returns."""
from __future__ import annotations

import logging

import pytest

from common.exchanges import venue_for
from common.funding import FundingIntervals, MissingRates

pytestmark = pytest.mark.unit

LOG = logging.getLogger("test.funding")
SWAP, DATED = {"swap": True}, {"swap": False, "future": True}


@pytest.fixture
def binance():
    return FundingIntervals(venue_for("binance"), LOG)


def test_intervals_are_unknown_until_the_first_answer_then_the_listed_ones_or_the_default(binance, caplog):
    assert binance.due and binance.default_hours("BTC/USDT:USDT", SWAP) is None
    binance.answered(None)
    assert binance.failing and binance.default_hours("BTC/USDT:USDT", SWAP) is None
    assert "Funding intervals unknown: published as null (never paired)" in caplog.text
    binance.answered({"ETH/USDT:USDT": {"interval": "4h"}})
    assert not binance.due and not binance.failing
    assert binance.default_hours("ETH/USDT:USDT", SWAP) == 4.0
    assert binance.default_hours("BTC/USDT:USDT", SWAP) == 8.0
    assert binance.default_hours("BTC/USDT-250328", DATED) is None


def test_a_failure_keeps_the_last_known_intervals_said_once_per_outage(binance, caplog):
    caplog.set_level(logging.INFO)
    binance.answered({"ETH/USDT:USDT": {"interval": "4h"}})
    binance.markets_loaded({"ETH/USDT:USDT": SWAP})
    assert binance.due  # fetched again with each market load
    binance.answered(None)
    binance.answered(None)
    assert caplog.text.count("Keeping the last known funding intervals") == 1
    assert binance.default_hours("ETH/USDT:USDT", SWAP) == 4.0
    binance.answered({"ETH/USDT:USDT": {"interval": "4h"}})
    assert "Funding intervals fetched again" in caplog.text


def test_an_unreadable_interval_is_null_and_said_once_until_readable(binance, caplog):
    caplog.set_level(logging.INFO)
    binance.answered({"ETH/USDT:USDT": {"interval": "soon"}})
    binance.answered({"ETH/USDT:USDT": {"interval": "soon"}})
    assert binance.default_hours("ETH/USDT:USDT", SWAP) is None
    assert caplog.text.count("Funding interval of ETH/USDT:USDT published as null") == 1
    binance.check_row("SOL/USDT:USDT", {"interval": "8x"})
    binance.check_row("SOL/USDT:USDT", {"interval": "8x"})
    binance.check_row("SOL/USDT:USDT", {"interval": "8h"})
    assert caplog.text.count("Funding interval of SOL/USDT:USDT published as null") == 1
    assert "Funding interval of SOL/USDT:USDT readable again" in caplog.text


def test_a_venue_whose_rows_say_the_interval_needs_no_call():
    bybit = FundingIntervals(venue_for("bybit"), LOG)
    assert not bybit.due
    assert bybit.default_hours("BTC/USDT:USDT", SWAP) == venue_for("bybit").default_funding_hours


def test_a_missing_rate_is_said_when_it_goes_and_when_it_is_back_and_forgotten_when_unwatched(caplog):
    caplog.set_level(logging.INFO)
    rates = MissingRates(LOG)
    rates.note("BTC/USDT:USDT", SWAP, None)
    rates.note("BTC/USDT:USDT", SWAP, None)
    rates.note("BTC/USDT-250328", DATED, None)  # a dated future has no funding
    assert caplog.text.count("Funding rate not available for") == 1
    rates.note("BTC/USDT:USDT", SWAP, 0.0001)
    assert "Funding rate available again for BTC/USDT:USDT" in caplog.text
    rates.note("ETH/USDT:USDT", SWAP, None)
    rates.keep_only(frozenset())
    rates.note("ETH/USDT:USDT", SWAP, None)  # watched again: news again
    assert caplog.text.count("Funding rate not available for ETH/USDT:USDT") == 2
