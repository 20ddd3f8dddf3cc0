"""The controller's handling of one request: the 1000-symbol limit after duplicates, an unchanged set not saved
again, log lines of bounded length, and exactly one answer and one acknowledgement whatever breaks."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pika
import pytest

from common.broker import SYMBOLS_EXCHANGE
from common.config import Config
from common.control import RequestError, parse_request, symbols_summary
from common.shutdown import StopSignal
from common.symbols import MAX_SYMBOLS
from controller import SHARD_SILENCE_INTERVALS, Controller

pytestmark = pytest.mark.unit

INITIAL = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
MANY = [f"S{i:04d}/USDT:USDT" for i in range(MAX_SYMBOLS)]


def set_symbols(symbols) -> bytes:
    return json.dumps({"command": "set_symbols", "symbols": symbols}).encode()


# -- the limit counts distinct symbols, as the config does ----------------------------------------
def test_repeated_symbols_count_once_against_the_limit():
    request = parse_request(set_symbols(MANY + MANY[:200]))
    assert request.symbols == MANY


def test_more_distinct_symbols_than_the_limit_are_refused():
    with pytest.raises(RequestError) as refused:
        parse_request(set_symbols(MANY + ["ONE/USDT:USDT", "ONE/USDT:USDT"]))
    assert refused.value.code == "invalid_command" and refused.value.message == "1001 symbols exceed the limit of 1000"


def test_a_repeated_invalid_symbol_is_named_not_counted():
    with pytest.raises(RequestError, match="symbol must be a string, got list"):
        parse_request(set_symbols(["BTC/USDT:USDT", ["x"], ["x"]]))


# -- log lines --------------------------------------------------------------------------------------
def test_a_summary_shows_a_few_symbols_and_the_count():
    assert symbols_summary([]) == "(empty)"
    assert symbols_summary(INITIAL) == "BTC/USDT:USDT, ETH/USDT:USDT"
    assert symbols_summary(MANY) == ", ".join(MANY[:5]) + " and 995 more (1000 symbols)"


# -- a controller with a recording channel in place of the broker's ----------------------------------
class RecordingChannel:
    """What the controller does on its channel: publishes and acknowledgements, nothing sent anywhere."""

    def __init__(self):
        self.published: list[tuple[str, str, dict]] = []
        self.acked: list[int] = []
        self.is_open = True  # stands for the connection too

    def basic_publish(self, exchange, routing_key, body, properties=None):
        self.published.append((exchange, routing_key, json.loads(body)))

    def basic_ack(self, delivery_tag, multiple=False):
        assert not multiple
        self.acked.append(delivery_tag)


@pytest.fixture
def controller(tmp_path, caplog):
    config = Config(rabbitmq={"port": 1, "user": "fs_test", "password": "pw"}, exchanges=["bybit"], symbols=INITIAL, api_keys_file=None,
                    state_file=str(tmp_path / "symbols.json"))
    c = Controller(config, StopSignal(logging.getLogger("test")))
    c.broker.channel = c.broker.connection = RecordingChannel()
    caplog.set_level(logging.INFO, "controller")
    return c


def deliver(controller, body: bytes, tag: int = 7, user: str = "fs_test", cid: str = "cid-1"):
    channel = controller.broker.channel
    controller._on_request(channel, SimpleNamespace(delivery_tag=tag),
                           pika.BasicProperties(correlation_id=cid, user_id=user), body)
    return [body for exchange, _, body in channel.published if exchange != SYMBOLS_EXCHANGE]


def test_an_unchanged_set_is_answered_without_a_new_version_a_save_or_a_broadcast(controller):
    saved = controller.store.path.read_bytes()
    answers = deliver(controller, set_symbols(INITIAL + ["BTC/USDT:USDT"]))
    assert answers[0]["success"] is True and answers[0]["message"] == "Symbol list unchanged (2 symbols)"
    assert answers[0]["data"] == {"symbols": INITIAL, "count": 2}
    assert controller.symbol_set.version == 1 and controller.store.path.read_bytes() == saved
    assert all(exchange != SYMBOLS_EXCHANGE for exchange, _, _ in controller.broker.channel.published)


def test_a_changed_set_is_saved_once_and_logged_without_all_its_symbols(controller, caplog):
    deliver(controller, set_symbols(MANY))
    assert controller.symbol_set.version == 2 and json.loads(controller.store.path.read_bytes())["symbols"] == MANY
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Symbol set v2"))
    assert line == "Symbol set v2: " + ", ".join(MANY[:5]) + " and 995 more (1000 symbols)"
    assert all(MANY[-1] not in r.getMessage() for r in caplog.records)


def test_a_handler_that_breaks_is_answered_internal_error_and_acknowledged_once(controller):
    def broken(_request):
        raise ZeroDivisionError
    controller._handlers["get_symbols"] = broken
    answers = deliver(controller, b'{"command": "get_symbols", "correlation_id": "c-9"}', tag=11)
    assert [a["error"] for a in answers] == ["internal_error"] and answers[0]["correlation_id"] == "c-9"
    assert answers[0]["command"] == "get_symbols" and controller.broker.channel.acked == [11]


def test_a_request_whose_answer_cannot_be_sent_is_still_acknowledged_not_redelivered(controller):
    sent = []

    def respond(response, _properties):
        sent.append(response)
        if len(sent) == 1:  # a bug in the first attempt; the internal_error answer goes out
            raise TypeError("not serializable")
    controller.respond = respond
    deliver(controller, b'{"command": "get_symbols"}', tag=12, cid="c" * 255)
    assert controller.broker.channel.acked == [12]
    assert sent[0]["success"] is True and sent[1]["error"] == "internal_error"
    assert sent[1]["correlation_id"] == "c" * 200


def test_a_report_is_acknowledged_whether_taken_or_refused(controller):
    channel = controller.broker.channel
    for tag, body in enumerate([b"garbage", json.dumps({"exchange": "bybit"}).encode()], 1):
        controller._on_worker_report(channel, SimpleNamespace(delivery_tag=tag, routing_key="stats.bybit"),
                                     pika.BasicProperties(user_id="fs_test"), body)
    assert channel.acked == [1, 2]


def test_a_delivery_of_a_channel_no_longer_in_use_is_not_acknowledged(controller):
    old = controller.broker.channel
    controller.broker.channel = RecordingChannel()  # reconnected meanwhile: the old deliveries went with it
    controller._on_request(old, SimpleNamespace(delivery_tag=3), pika.BasicProperties(user_id="fs_test"),
                           b'{"command": "get_symbols"}')
    assert old.acked == [] and controller.broker.channel.acked == []


def test_the_controller_forgets_a_shard_label_after_twelve_silent_intervals(controller):
    interval = controller.config.collection.interval_seconds
    assert controller.workers.shard_silence == SHARD_SILENCE_INTERVALS * interval == 12 * interval
