"""common/broker.py against the real broker: what counts as a lost connection, and what is a bug."""
from __future__ import annotations

import logging
import socket
import time

import pika
import pytest

from common.broker import Broker, declare_symbols_queue, symbols_queue
from common.config import RabbitMQConfig


def broker_for(rabbit, **kwargs) -> Broker:
    return Broker(RabbitMQConfig(**rabbit.config()), **kwargs)


def consume_with(callback, queue="test_inbox"):
    def on_connect(channel):
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_consume(queue, callback, auto_ack=True)
    return on_connect


def pump_until(broker: Broker, done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        broker.pump(0.05)


def test_a_bug_in_a_consumer_callback_surfaces_as_itself(own_rabbit, caplog):
    def buggy(_channel, _method, _properties, _body):
        return None.missing  # AttributeError, as a typo would raise it

    broker = broker_for(own_rabbit, on_connect=consume_with(buggy))
    try:
        assert broker.ensure_connected()
        assert broker.publish("", "test_inbox", b"{}")
        with pytest.raises(AttributeError, match="missing"):
            pump_until(broker, lambda: False)
        assert "Lost the RabbitMQ connection" not in caplog.text
        assert broker.connected  # nothing was wrong with the connection
    finally:
        broker.close()


def test_a_bug_in_on_connect_surfaces_as_itself_and_leaves_no_connection(own_rabbit, caplog):
    def buggy(channel):
        channel.queue_declare("test_half", auto_delete=True)
        raise AttributeError("'Config' object has no attribute 'exchnage'")

    broker = broker_for(own_rabbit, on_connect=buggy)
    with pytest.raises(AttributeError, match="exchnage"):
        broker.ensure_connected()
    assert not broker.connected and "Cannot connect" not in caplog.text


def test_a_broker_that_never_answers_the_handshake_is_retried_not_fatal(caplog):
    """TCP accepted, AMQP never answered (an overloaded or wedged broker): pika raises its connection
    workflow's own AMQPConnectorStackTimeout, which is neither an AMQPError nor an OSError."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        broker = Broker(RabbitMQConfig(host="127.0.0.1", port=silent.getsockname()[1], user="u", password="p"),
                        connect_timeout=0.3)
        with caplog.at_level(logging.WARNING, "rabbitmq"):
            assert broker.ensure_connected() is False
        assert "Cannot connect to RabbitMQ" in caplog.text and "next attempt in 1s" in caplog.text
        assert broker.ensure_connected() is False  # within the backoff: no attempt, no raise
    finally:
        silent.close()


def test_a_refused_declaration_is_explained_and_retried(own_rabbit, caplog):
    queue = symbols_queue("bybit")
    conn = pika.BlockingConnection(own_rabbit.params())
    try:
        conn.channel().queue_declare(queue, durable=True)  # as an older version declared it: no x-max-length
        broker = broker_for(own_rabbit, on_connect=lambda channel: declare_symbols_queue(channel, "bybit"))
        with caplog.at_level(logging.ERROR, "rabbitmq"):
            assert broker.ensure_connected() is False
        assert (f"RabbitMQ refused to declare queue '{queue}' in vhost '{own_rabbit.vhost}': it already exists "
                "with a different 'x-max-length' (the broker says: received the value '1' of type 'signedint' "
                "but current is none)") in caplog.text
        assert f"rabbitmqadmin -V '{own_rabbit.vhost}' delete queue name='{queue}'" in caplog.text
        assert "Cannot connect" not in caplog.text and not broker.connected
        conn.channel().queue_delete(queue)  # what the log says to do
        with caplog.at_level(logging.INFO, "rabbitmq"):
            pump_until(broker, broker.ensure_connected)  # the next attempt, after the backoff
        assert "Reconnected to RabbitMQ" in caplog.text
        broker.close()
    finally:
        conn.close()
