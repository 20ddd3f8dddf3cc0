"""The broker is a trust boundary (docs/reference.md, "Security"): each process connects as its role's user,
created by scripts/broker_users.py, and RabbitMQ itself refuses what a role may not do; what it lets through is
trusted for its broker-verified sender (user_id), never for its body."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid

import pika
import pika.exceptions
import pytest

from common.broker import CONTROL_QUEUE, RESPONSES_EXCHANGE, STATS_EXCHANGE, symbols_queue
from tests.conftest import ROOT, Process, rabbitmqctl, write_config
from tests.test_scanner import BTC, board, now_ms, poll, row

DATA = "futures_data"
SNAPSHOT = json.dumps({"exchange": "bybit"}).encode()  # the body does not matter: the broker decides first


def channel_of(role_users, role, exchange=None):
    connection = pika.BlockingConnection(role_users.params(role, exchange))
    channel = connection.channel()
    channel.confirm_delivery()  # a refusal arrives with the confirm, so that basic_publish raises it
    return connection, channel


def refused(publish) -> int | None:
    """The reply code if the broker closes the channel over `publish`, else None."""
    try:
        publish()
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code
    return None


def test_the_broker_refuses_what_a_role_may_not_publish(role_users):
    consumer, channel = channel_of(role_users, "consumer")
    assert refused(lambda: channel.basic_publish("", CONTROL_QUEUE, b'{"command": "set_symbols", "symbols": []}')) \
        == 403  # no control command from the consumer
    channel = consumer.channel()
    channel.confirm_delivery()
    assert refused(lambda: channel.basic_publish(DATA, "futures.bybit.BTCUSDT", SNAPSHOT)) == 403
    consumer.close()

    worker, channel = channel_of(role_users, "worker", "bybit")
    assert refused(lambda: channel.basic_publish(DATA, "futures.bybit.BTCUSDT", SNAPSHOT)) is None  # its own keys
    assert refused(lambda: channel.basic_publish(DATA, "board.bybit", SNAPSHOT)) is None
    assert refused(lambda: channel.basic_publish(DATA, "futures.binance.BTCUSDT", SNAPSHOT)) == 403
    channel = worker.channel()
    channel.confirm_delivery()
    assert refused(lambda: channel.basic_publish(STATS_EXCHANGE, "stats.binance", b"{}")) == 403
    channel = worker.channel()
    channel.confirm_delivery()
    # It cannot pass for another user either: the broker checks user_id against the connection's user.
    forged = pika.BasicProperties(user_id=role_users.user("worker", "binance"))
    assert refused(lambda: channel.basic_publish(DATA, "futures.bybit.BTCUSDT", SNAPSHOT, forged)) == 406
    worker.close()


def test_the_consumer_reads_the_data_and_nothing_else(role_users):
    connection, channel = channel_of(role_users, "consumer")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, DATA, "futures.#")  # allowed: the user handed to downstream programs
    for other in (STATS_EXCHANGE, RESPONSES_EXCHANGE):
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refusal:
            channel.queue_bind(queue, other, "#")
        assert refusal.value.reply_code == 403, other
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refusal:
        channel.exchange_delete(DATA)  # configure would allow deleting the shared exchange: it has none
    assert refusal.value.reply_code == 403
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refusal:
        channel.basic_get(CONTROL_QUEUE)
    assert refusal.value.reply_code == 403
    connection.close()


def test_broker_users_is_idempotent_and_keeps_the_passwords(role_users, tmp_path):
    before = role_users.dotenv.read_text()
    out = subprocess.run([sys.executable, "scripts/broker_users.py", "--config", str(tmp_path / "broker_users.json")],
                         cwd=ROOT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                        "FUTURES_SCAN_DOTENV": str(role_users.dotenv)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert role_users.dotenv.read_text() == before  # nothing generated again
    assert oct(role_users.dotenv.stat().st_mode & 0o777) == "0o600"
    assert role_users.password("operator") not in out.stdout + out.stderr
    pika.BlockingConnection(role_users.params("operator")).close()  # the password still opens the door


def connections(vhost: str) -> set[str]:
    lines = rabbitmqctl("list_connections", "user", "vhost").splitlines()
    return {line.split("\t")[0] for line in lines[1:] if line.endswith("\t" + vhost)}


def test_the_system_runs_under_role_users_and_obeys_only_the_operator(role_users, own_rabbit, simulator, tmp_path):
    config = write_config(tmp_path / "config.json", own_rabbit, simulator, exchanges=["bybit"],
                          symbols=["BTC/USDT:USDT"], rabbitmq={"user_prefix": role_users.prefix})
    env = role_users.env
    controller = Process(["controller.py", "--config", str(config)], tmp_path / "controller.log", env)
    worker = Process(["worker.py", "bybit", "--config", str(config)], tmp_path / "worker.log", env)
    try:
        worker.wait_for_log(r"Published message to futures\.bybit\.BTCUSDT", 30)
        controller.wait_for_log(r"Connected to RabbitMQ", 20)
        assert "not least-privilege" not in worker.log_text() + controller.log_text()
        users = connections(own_rabbit.vhost)
        assert users == {role_users.user("controller"), role_users.user("worker", "bybit")}, users

        def control(*command) -> dict:
            out = subprocess.run([sys.executable, "scripts/control_client.py", *command, "--config", str(config),
                                  "--timeout", "20"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                                 env={"PATH": "/usr/bin:/bin", "FUTURES_SCAN_DOTENV": "/dev/null",
                                      "FUTURES_SCAN_OPERATOR_PASSWORD": role_users.password("operator")})
            return json.loads(out.stdout) if out.stdout.startswith("{") else {"stderr": out.stderr}

        # A worker's user may publish to the control queue (it asks for the set), but is not obeyed.
        forged = forge_command(role_users, {"command": "set_symbols", "symbols": []})
        assert forged["success"] is False and forged["error"] == "forbidden", forged
        answer = control("add_symbol", "ETH/USDT:USDT")
        assert answer.get("success") is True, answer
        worker.wait_for_log(r"Published message to futures\.bybit\.ETHUSDT", 30)
        assert "BTC/USDT:USDT" in control("get_symbols")["data"]["symbols"]
        # The operator's user may publish to any queue through the default exchange, the worker's symbols queue
        # included: a set there that the controller did not send is dropped, and the worker keeps its set.
        offset = len(worker.log_text())
        publish_as(role_users, "operator", None, "", symbols_queue("bybit"),
                   {"version": 99, "symbols": ["DOGE/USDT:USDT"], "timestamp": now_ms()})
        worker.wait_for_log(rf"Ignoring a symbol set not sent by the controller \(user_id {role_users.prefix}operator\)",
                            20, offset)
        worker.wait_for_log(r"Published message to futures\.bybit\.ETHUSDT", 15, len(worker.log_text()))
        assert "DOGEUSDT" not in worker.log_text()[offset:]
    finally:
        worker.terminate()
        controller.terminate()


def forge_command(role_users, request: dict) -> dict:
    """`request` sent by the bybit worker's user, as a compromised shard host could; the controller's answer."""
    connection = pika.BlockingConnection(role_users.params("worker", "bybit"))
    channel = connection.channel()
    answers = []
    channel.basic_consume("amq.rabbitmq.reply-to", lambda _c, _m, _p, body: answers.append(json.loads(body)),
                          auto_ack=True)
    channel.basic_publish("", CONTROL_QUEUE, json.dumps({**request, "correlation_id": uuid.uuid4().hex}).encode(),
                          pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                               user_id=role_users.user("worker", "bybit")))
    deadline = time.monotonic() + 20
    while not answers and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.2)
    connection.close()
    assert answers, "the controller did not answer"
    return answers[0]


def publish_as(role_users, role, exchange, target: str, key: str, body: dict) -> None:
    connection = pika.BlockingConnection(role_users.params(role, exchange))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(target, key, json.dumps(body).encode(),
                          pika.BasicProperties(content_type="application/json", user_id=role_users.user(role, exchange)))
    connection.close()


def test_the_scanner_shows_only_what_each_exchange_s_worker_sent(role_users, own_rabbit, tmp_path):
    config = tmp_path / "scanner.json"
    config.write_text(json.dumps({"rabbitmq": {**own_rabbit.config(DATA), "user_prefix": role_users.prefix},
                                  "exchanges": ["binance", "bybit"], "symbols": [], "api_keys_file": None,
                                  "scanner": {"listen": "127.0.0.1:0"}}))
    scanner = Process(["scanner.py", "--config", str(config)], tmp_path / "scanner.log", role_users.env)
    try:
        port = scanner.wait_for_log(r"Serving the page and the API on http://127\.0\.0\.1:(\d+)/", 20).group(1)
        scanner.wait_for_log(r"Consuming board\.\* and futures\.# from", 20)
        t = now_ms()
        # A user with every right on the vhost (an administrator, or a program given too much) is still not
        # binance's worker: what it publishes as binance's board is dropped.
        admin = pika.BlockingConnection(own_rabbit.params())
        admin.channel().basic_publish(DATA, "board.binance", json.dumps(board("binance", t, [
            row(BTC, 100, 101, 0.001, 8, 1e6)])).encode(), pika.BasicProperties(user_id=own_rabbit.user))
        admin.close()
        publish_as(role_users, "worker", "bybit", DATA, "board.bybit", board("bybit", t, [row(BTC, 99, 100, 0.0001, 8, 1e6)]))
        # bybit's worker may publish board.bybit only; a body that claims binance's is dropped too.
        publish_as(role_users, "worker", "bybit", DATA, "board.bybit", board("binance", t, [row(BTC, 1, 2, 0.1, 8, 1e6)]))
        status = poll(lambda: (s := get(port, "/api/status"))["messages_seen"] >= 3 and s, 10, "3 messages")
        assert status["messages_dropped"] == 2, status
        legs = get(port, "/api/symbol/BTCUSDT")["legs"]
        assert [leg["exchange"] for leg in legs] == ["bybit"], legs
        assert f"sent by user '{own_rabbit.user}', not by binance's worker" in scanner.log_text()
    finally:
        scanner.terminate()


def get(port: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())
