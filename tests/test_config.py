"""A bad config ends the process with one message naming the field, before anything connects."""
import json
import socket
import subprocess
import sys

import pytest

from common.config import ConfigError, load_config
from common.symbols import SymbolSet, routing_key, symbol_problem
from tests.conftest import ROOT

GOOD = {
    "rabbitmq": {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest", "vhost": "/",
                 "exchange": "futures_data"},
    "exchanges": ["bitget", "bybit", "binance", "htx", "gateio"],
    "symbols": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
    "collection": {"interval_seconds": 5, "retry_attempts": 3, "retry_delays": [1, 2, 4]},
    "api_keys_file": ".env.keys",
    "logging": {"level": "DEBUG"},
}


def write(tmp_path, config) -> str:
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


def with_change(path: str, value):
    config = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value
    return config


def test_example_config_is_valid():
    config = load_config(ROOT / "config" / "config.example.json")
    assert [e.name for e in config.exchanges] == ["bitget", "bybit", "binance", "htx", "gateio"]
    assert config.collection.interval_seconds == 5


def test_exchange_entries_accept_names_and_objects(tmp_path):
    config = load_config(write(tmp_path, with_change("exchanges", [
        "binance", {"name": "bybit", "api_url": "http://127.0.0.1:8900/bybit", "sandbox": False,
                    "options": {"recvWindow": 10000}}])))
    assert config.exchange("bybit").api_url == "http://127.0.0.1:8900/bybit"
    assert config.exchange("binance").api_url is None
    with pytest.raises(ConfigError, match="'okx' is not in the config"):
        config.exchange("okx")


@pytest.mark.parametrize("field, value, message", [
    ("exchanges", ["binance", "nosuchex"], r"exchanges\.1\.name: unknown exchange 'nosuchex'"),
    ("exchanges", ["bybit", "bybit"], "exchange listed twice: bybit"),
    ("symbols", ["BTC/USDT:USDT", "BTC.USDT"], r"symbols: invalid symbol 'BTC.USDT'"),
    ("symbols", ["BTC/USDT:USDT", "ETH/USDT #"], r"symbols: invalid symbol"),
    ("symbols", [], r"symbols: List should have at least 1 item"),
    ("collection.interval_seconds", 2, r"collection\.interval_seconds: Input should be greater than or equal to 5"),
    ("collection.retry_attempts", "three", r"collection\.retry_attempts: Input should be a valid integer"),
    ("rabbitmq.port", 70000, r"rabbitmq\.port: Input should be less than or equal to 65535"),
    ("logging.level", "LOUD", r"logging\.level: Input should be 'DEBUG'"),
    ("rabbitmq.hots", "x", r"rabbitmq\.hots: Extra inputs are not permitted"),
    ("exchanges", [{"name": "binance", "rate_share": 1.5}], r"exchanges\.0\.rate_share: Input should be less than or equal to 1"),
    ("exchanges", [{"name": "binance", "rate_share": 0}], r"exchanges\.0\.rate_share: Input should be greater than 0"),
])
def test_bad_field_is_named(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, with_change(field, value)))


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(write(tmp_path, "{not json"))


def test_environment_overrides_broker_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("RABBITMQ_PASSWORD", "from-env")
    monkeypatch.setenv("RABBITMQ_PORT", "5673")
    config = load_config(write(tmp_path, GOOD))
    assert config.rabbitmq.password.get_secret_value() == "from-env"
    assert config.rabbitmq.port == 5673
    assert "from-env" not in repr(config)


def test_worker_exits_nonzero_before_connecting(tmp_path):
    # A broker stand-in that records whether anyone connects.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    bad = with_change("collection.interval_seconds", 1)
    bad["rabbitmq"]["port"] = listener.getsockname()[1]
    out = subprocess.run([sys.executable, "worker.py", "bybit", "--config", write(tmp_path, bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "collection.interval_seconds: Input should be greater than or equal to 5" in out.stderr
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_worker_rejects_exchange_not_in_config(tmp_path):
    out = subprocess.run([sys.executable, "worker.py", "okx", "--config", write(tmp_path, GOOD)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "'okx' is not in the config's exchanges" in out.stderr


@pytest.mark.parametrize("symbol, key", [
    ("BTC/USDT:USDT", "futures.bybit.BTCUSDT"),
    ("1000PEPE/USDT:USDT", "futures.bybit.1000PEPEUSDT"),
    ("BTC/USDT:USDT-250328", "futures.bybit.BTCUSDT-250328"),
])
def test_routing_keys(symbol, key):
    assert routing_key("bybit", symbol) == key


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/USDT:USDT.x", "BTC/*", "#", "BTC/USDT :USDT", "", 5, None,
                                    "A" * 40 + "/USDT:USDT"])
def test_bad_symbols_rejected(symbol):
    assert symbol_problem(symbol) is not None


def test_symbol_set_deduplicates_and_validates():
    assert SymbolSet(version=3, symbols=["BTC/USDT:USDT", "BTC/USDT:USDT"]).symbols == ["BTC/USDT:USDT"]
    with pytest.raises(ValueError, match="invalid symbol"):
        SymbolSet(version=1, symbols=["BTC.USDT"])
