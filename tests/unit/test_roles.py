"""common/roles.py: who is who on the broker, and the rights each role is given (no broker here: the real
broker's refusals are tests/test_trust.py)."""
from __future__ import annotations

import logging
import re

import pytest

from common.config import RabbitMQConfig
from common.roles import connect_as, definitions, password_hash, rights

pytestmark = pytest.mark.unit


def test_the_password_hash_is_rabbitmq_s():
    # RabbitMQ's passwords guide works this example by hand: salt 908DC60A, password "test12".
    assert password_hash("test12", bytes.fromhex("908DC60A")) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"


def test_a_role_with_its_password_connects_as_its_own_user(monkeypatch, caplog):
    monkeypatch.setenv("FUTURES_SCAN_WORKER_BYBIT_PASSWORD", "s3cret")
    rabbit, roles = connect_as(RabbitMQConfig(user="admin", password="admin", user_prefix="fs_"), "worker", "bybit")
    assert (rabbit.user, rabbit.password.get_secret_value()) == ("fs_worker_bybit", "s3cret")
    assert roles.separate and "least-privilege" not in caplog.text
    assert roles.sent_by_a_worker("fs_worker_bybit", "bybit")
    assert not roles.sent_by_a_worker("fs_worker_binance", "bybit")
    assert not roles.sent_by_a_worker("admin", "bybit")  # the configured user is no role of its own
    assert not roles.sent_by(None, "operator") and not roles.sent_by("", "operator")


def test_without_role_passwords_one_user_holds_every_role_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("FUTURES_SCAN_CONTROLLER_PASSWORD", raising=False)
    with caplog.at_level(logging.WARNING):
        rabbit, roles = connect_as(RabbitMQConfig(user="admin", password="pw"), "controller")
    assert rabbit.user == "admin" and not roles.separate
    assert "not least-privilege" in caplog.text and "FUTURES_SCAN_CONTROLLER_PASSWORD" in caplog.text
    assert roles.sent_by("admin", "operator") and roles.sent_by_a_worker("admin", "gateio")
    assert not roles.sent_by("someone", "operator")


def full(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None  # RabbitMQ matches permission regexes anywhere: ours anchor


def test_a_worker_may_publish_its_own_exchange_s_keys_only():
    worker = rights("worker", "futures_data", "bybit")
    write, read = worker.topics["futures_data"]
    assert full(write, "futures.bybit.BTCUSDT") and full(write, "board.bybit") and full(write, "funding.bybit")
    for other in ("futures.binance.BTCUSDT", "board.binance", "futures.bybitx.BTCUSDT", "board.bybit.x",
                  "futures.bybit.BTC.USDT", "stats.bybit"):
        assert not full(write, other), other
    assert read == "^$"
    assert full(worker.topics["futures_collector_stats"][0], "stats.bybit")
    assert not full(worker.topics["futures_collector_stats"][0], "stats.binance")
    assert full(worker.configure, "futures_collector_symbols.bybit.shard-2-of-3")
    assert not full(worker.configure, "futures_collector_symbols.binance")
    assert not full(worker.configure, "futures_data")  # configure would allow deleting it


def test_no_role_may_configure_a_shared_exchange_and_only_the_operator_has_a_tag():
    shared = ("futures_data", "futures_collector_symbols", "futures_collector_stats", "futures_collector_responses",
              "futures_collector_control")
    for role, exchange in [("worker", "htx"), ("controller", None), ("scanner", None), ("recorder", None),
                           ("consumer", None), ("operator", None)]:
        granted = rights(role, "futures_data", exchange)
        assert not any(full(granted.configure, name) for name in shared), role
        assert granted.tags == (("management",) if role == "operator" else ()), role
    consumer = rights("consumer", "futures_data")
    assert not full(consumer.write, "amq.default") and not full(consumer.read, "futures_collector_stats")
    assert consumer.topics["futures_data"][0] == "^$"


def test_the_recorder_owns_its_queue_and_binds_settlements_and_boards_only():
    recorder = rights("recorder", "futures_data")
    assert all(full(right, "futures_collector_recorder") for right in (recorder.configure, recorder.write, recorder.read))
    assert not full(recorder.configure, "futures_collector_control") and not full(recorder.write, "futures_data")
    bind = recorder.topics["futures_data"][1]
    assert full(bind, "funding.*") and full(bind, "board.*") and not full(bind, "futures.#")
    assert not full(rights("scanner", "futures_data").read, "futures_collector_recorder")


def test_definitions_hold_every_role_the_topology_and_no_password():
    config = RabbitMQConfig(vhost="v", exchange="data.x", user_prefix="p_")
    passwords = {name: f"pw-{name}" for name in ("worker_bybit", "worker_gateio", "controller", "scanner",
                                                 "recorder", "consumer", "operator")}
    document = definitions(config, ["bybit", "gateio"], passwords)
    assert sorted(u["name"] for u in document["users"]) == sorted("p_" + name for name in passwords)
    assert "pw-" not in str(document)
    assert {(e["name"], e["type"]) for e in document["exchanges"]} == {
        ("data.x", "topic"), ("futures_collector_responses", "topic"), ("futures_collector_stats", "topic"),
        ("futures_collector_symbols", "fanout")}
    assert {q["name"] for q in document["queues"]} == {
        "futures_collector_control", "futures_collector_recorder", "futures_collector_symbols.bybit",
        "futures_collector_symbols.gateio"}
    assert {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]} >= {
        ("data.x", "futures_collector_recorder", "funding.*")}
    assert all(p["vhost"] == "v" for p in document["permissions"] + document["topic_permissions"])
    bybit = [p for p in document["topic_permissions"] if p["user"] == "p_worker_bybit" and p["exchange"] == "data.x"]
    assert full(bybit[0]["write"], "futures.bybit.ETHUSDT")


def test_no_role_password_and_no_user_is_a_configuration_error_naming_the_variable(monkeypatch):
    from common.config import ConfigError
    monkeypatch.delenv("FUTURES_SCAN_SCANNER_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="FUTURES_SCAN_SCANNER_PASSWORD .*scripts/broker_users.py"):
        connect_as(RabbitMQConfig(), "scanner")  # no guest to fall back to
