"""common/subscription.py: the symbol set a worker takes only from the controller (a channel stand-in records
what the worker does on the broker; the real broker's side is tests/test_worker.py and tests/test_trust.py)."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from common.broker import CONTROL_QUEUE
from common.roles import Roles
from common.subscription import SymbolSubscription
from common.symbols import SymbolSet

pytestmark = pytest.mark.unit

CONTROLLER = "controller"
LOG = logging.getLogger("test.subscription")


class Channel:
    """Records acks, publishes and consumers; `queued` is what basic_get takes."""

    def __init__(self, queued=None):
        self.queued = queued
        self.acked, self.published, self.consumed = [], [], []

    def basic_get(self, queue):
        return self.queued or (None, None, None)

    def basic_ack(self, tag):
        self.acked.append(tag)

    def basic_consume(self, queue, callback, auto_ack=False):
        self.consumed.append(queue)

    def basic_publish(self, exchange, queue, body, properties):
        self.published.append((queue, json.loads(body), properties.user_id))


def delivery(tag: int, symbols: list[str], version: int = 1, user_id: str = CONTROLLER):
    body = SymbolSet(version=version, symbols=symbols).model_dump_json().encode()
    return SimpleNamespace(delivery_tag=tag), SimpleNamespace(user_id=user_id), body


@pytest.fixture
def subscription():
    adopted = []
    sub = SymbolSubscription(Roles(prefix="", shared_user=None), LOG, SymbolSet(version=0, symbols=["BTC/USDT:USDT"]),
                             lambda update, changed: adopted.append((update.version, changed)))
    sub.adopted = adopted
    return sub


def test_a_set_waiting_in_the_queue_is_taken_at_connect_and_held_unacknowledged(subscription):
    channel = Channel(delivery(7, ["ETH/USDT:USDT"], version=3))
    subscription.start(channel, "symbols.bybit", "worker_bybit")
    assert subscription.current.version == 3 and subscription.watched == {"ETH/USDT:USDT"}
    assert channel.acked == [] and channel.published == [] and not subscription.asking
    assert subscription.adopted == [(3, True)]
    # The next set replaces it: only then is the held one acknowledged.
    subscription.on_symbol_set(channel, *delivery(8, ["SOL/USDT:USDT"], version=4))
    assert channel.acked == [7] and subscription.watched == {"SOL/USDT:USDT"}


def test_an_empty_queue_asks_the_controller_and_its_answer_is_adopted(subscription):
    channel = Channel()
    subscription.start(channel, "symbols.bybit.1-2", "worker_bybit")
    assert channel.published == [(CONTROL_QUEUE, {"command": "get_symbols"}, "worker_bybit")]
    assert subscription.asking
    answer = json.dumps({"success": True, "data": {"version": 5, "symbols": ["XRP/USDT:USDT"]}}).encode()
    subscription.on_current_set(SimpleNamespace(user_id=CONTROLLER), answer)
    assert not subscription.asking and subscription.current.version == 5


def test_sets_not_sent_by_the_controller_are_dropped_and_the_held_one_stays(subscription, caplog):
    channel = Channel()
    subscription.start(channel, "symbols.bybit", "worker_bybit")
    assert not subscription.on_symbol_set(channel, *delivery(9, [], version=99, user_id="consumer"))
    answer = json.dumps({"data": {"version": 98, "symbols": []}}).encode()
    subscription.on_current_set(SimpleNamespace(user_id="consumer"), answer)
    assert channel.acked == [9] and subscription.current.symbols == ["BTC/USDT:USDT"] and subscription.asking
    assert "Ignoring a symbol set not sent by the controller (user_id consumer)" in caplog.text
    assert "Ignoring an answer to get_symbols not sent by the controller (user_id consumer)" in caplog.text
    assert subscription.adopted == []


def test_an_invalid_set_is_dropped_with_its_reason(subscription, caplog):
    channel = Channel()
    method, properties, _ = delivery(4, [])
    assert not subscription.on_symbol_set(channel, method, properties, b'{"version": 1, "symbols": "BTC"}')
    subscription.on_current_set(properties, b'{"data": {"version": 1}}')
    assert channel.acked == [4] and subscription.current.version == 0
    assert "Ignoring an invalid symbol set" in caplog.text and "Ignoring an invalid answer to get_symbols" in caplog.text


def test_a_broadcast_that_came_first_wins_over_the_answer(subscription):
    channel = Channel()
    subscription.start(channel, "symbols.bybit", "worker_bybit")
    subscription.on_symbol_set(channel, *delivery(1, ["ETH/USDT:USDT"], version=6))
    late = json.dumps({"data": {"version": 5, "symbols": ["XRP/USDT:USDT"]}}).encode()
    subscription.on_current_set(SimpleNamespace(user_id=CONTROLLER), late)
    assert subscription.current.version == 6


def test_the_same_set_again_is_adopted_without_a_change(subscription, caplog):
    caplog.set_level(logging.INFO)
    channel = Channel()
    subscription.on_symbol_set(channel, *delivery(1, ["ETH/USDT:USDT"], version=2))
    subscription.on_symbol_set(channel, *delivery(2, ["ETH/USDT:USDT"], version=2))
    assert subscription.adopted == [(2, True), (2, False)]
    assert caplog.text.count("Symbol set v2: ETH/USDT:USDT") == 1
