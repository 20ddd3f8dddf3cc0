"""Whom the controller obeys, on a real broker: a second RabbitMQ user, neither the operator nor a worker, may
read the set but not change it, and its reports count for nothing; a mutating command without `user_id` is
refused even from the operator's own user. (Without role passwords, the test's one user holds every role.)"""
from __future__ import annotations

import json
import re
import time
import uuid
from types import SimpleNamespace

import pika
import pytest

from common.broker import CONTROL_QUEUE, STATS_EXCHANGE
from tests.conftest import RABBIT_HOST, RABBIT_PORT, broker_admin
from tests.test_controller import INITIAL, Control, report

MUTATIONS = [{"command": "add_symbol", "symbol": "SOL/USDT:USDT"}, {"command": "remove_symbol", "symbol": "BTC/USDT:USDT"},
             {"command": "set_symbols", "symbols": []}]


class Client:
    """One connection as `user`: requests with direct reply-to, reports on the stats exchange (confirmed, so
    that each is in the controller's queue before the next publish from anyone)."""

    def __init__(self, vhost: str, user: str, password: str):
        self.user = user
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(RABBIT_HOST, RABBIT_PORT, vhost,
                                                                      pika.PlainCredentials(user, password)))
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()
        self.replies: dict[str, dict] = {}
        self.channel.basic_consume("amq.rabbitmq.reply-to", self._on_reply, auto_ack=True)

    def _on_reply(self, _ch, _method, props, body):
        self.replies[props.correlation_id] = json.loads(body)

    def ask(self, request: dict, user_id: str | None = "self", timeout: float = 10) -> dict:
        cid = str(uuid.uuid4())
        self.channel.basic_publish("", CONTROL_QUEUE, json.dumps(request).encode(), pika.BasicProperties(
            correlation_id=cid, reply_to="amq.rabbitmq.reply-to", user_id=self.user if user_id == "self" else user_id))
        deadline = time.monotonic() + timeout
        while cid not in self.replies:
            assert time.monotonic() < deadline, f"no answer to {request} within {timeout}s"
            self.conn.process_data_events(time_limit=0.05)
        return self.replies.pop(cid)

    def report(self, message: dict, exchange: str = "bybit") -> None:
        self.channel.basic_publish(STATS_EXCHANGE, f"stats.{exchange}", json.dumps(message).encode(),
                                   pika.BasicProperties(user_id=self.user))

    def close(self):
        self.conn.close()


@pytest.fixture(scope="module")
def trust(rabbit, simulator, tmp_path_factory):
    own = rabbit.isolated()
    control = Control(own, simulator, tmp_path_factory.mktemp("trust"))
    name, password = f"futures_scan_stranger_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    broker_admin().add_user(name, password)
    try:
        # Every right on the vhost: only the controller's user_id check stands between it and the set.
        broker_admin().permit(own.vhost, name)
        stranger, operator = Client(own.vhost, name, password), Client(own.vhost, own.user, own.password)
        yield SimpleNamespace(control=control, stranger=stranger, operator=operator)
        stranger.close()
        operator.close()
    finally:
        control.close()
        broker_admin().delete_users([name])
        own.close()


@pytest.mark.parametrize("request_", MUTATIONS, ids=[m["command"] for m in MUTATIONS])
def test_a_mutating_command_from_another_user_is_forbidden_and_changes_nothing(trust, request_):
    saved = trust.control.state.read_bytes()
    answer = trust.stranger.ask(request_)
    assert (answer["success"], answer["error"], answer["command"]) == (False, "forbidden", request_["command"])
    assert "verified by the broker in user_id" in answer["message"] and "data" not in answer
    assert trust.control.state.read_bytes() == saved
    assert trust.operator.ask({"command": "get_symbols"})["data"]["symbols"] == INITIAL


@pytest.mark.parametrize("request_", MUTATIONS, ids=[m["command"] for m in MUTATIONS])
def test_a_mutating_command_without_user_id_is_forbidden_even_from_the_operators_user(trust, request_):
    saved = trust.control.state.read_bytes()
    answer = trust.operator.ask(request_, user_id=None)
    assert (answer["success"], answer["error"]) == (False, "forbidden")
    assert trust.control.state.read_bytes() == saved
    assert trust.operator.ask({"command": "get_symbols"})["data"]["symbols"] == INITIAL


def test_read_only_commands_from_another_user_are_answered(trust):
    answer = trust.stranger.ask({"command": "get_symbols", "correlation_id": "s-1"})
    assert answer["success"] is True and answer["correlation_id"] == "s-1"
    assert answer["data"]["symbols"] == INITIAL
    assert trust.stranger.ask({"command": "get_statistics"})["success"] is True


def test_the_operators_user_is_obeyed(trust):
    """The counterpart of the refusals above: the same commands, with the operator's user_id, do change the set."""
    try:
        assert trust.operator.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT"})["success"]
        assert json.loads(trust.control.state.read_bytes())["symbols"] == INITIAL + ["SOL/USDT:USDT"]
    finally:
        assert trust.operator.ask({"command": "set_symbols", "symbols": INITIAL})["success"]


def test_forged_reports_under_another_user_change_no_total(trust):
    """The issue's attack: a report per new (pid, started_at), each claiming 10^15 successes."""
    trust.operator.report(report(101, 1000.0, success=7, published=7))  # the worker's (the one test user)
    start = len(trust.control.process.log_text())
    for pid in range(200, 250):
        trust.stranger.report(report(pid, 2000.0 + pid, success=10 ** 15, errors=10 ** 15, published=10 ** 15))
    trust.operator.report(report(101, 1000.0, success=8, published=8))  # queued after every forged one
    deadline = time.monotonic() + 10
    while (data := trust.operator.ask({"command": "get_statistics"})["data"])["exchange_success"].get("bybit") != 8:
        assert time.monotonic() < deadline, data
    assert data["exchange_errors"] == {"bybit": 0} and data["rabbitmq_published"] == 8
    assert data["workers"]["bybit"]["live_processes"] == 1 and data["workers"]["bybit"]["pid"] == 101
    refusals = re.findall(r"\[WARNING\] \[controller\] Ignoring an invalid worker report \(routing key 'stats\.bybit'\): "
                          rf"sent by user {trust.stranger.user}, not by bybit's worker",
                          trust.control.process.log_text()[start:])
    assert len(refusals) == 50
