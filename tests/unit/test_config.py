"""Loading the config: every bad field named in one message, defaults, the vision's own config, symbols,
the operator tools' config. No process, no network: the processes' exits are in tests/test_config.py."""
import json
import os
from pathlib import Path

import re

import pytest

from common.config import ConfigError, load_config
from common.symbols import SymbolSet, routing_key, symbol_problem
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


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


def test_example_config_is_valid_and_names_every_worker_supervisord_runs():
    """A worker whose exchange the config lacks exits with a configuration error (FATAL under supervisord)."""
    config = load_config(ROOT / "config" / "config.example.json")
    names = [e.name for e in config.exchanges]
    assert names == ["bitget", "bybit", "binance", "htx", "gateio", "okx", "hyperliquid"]
    assert config.collection.interval_seconds == 5
    for conf in ("supervisord.conf",):
        programs = re.search(r"\[group:worker\]\nprograms=(.*)\n", (ROOT / conf).read_text()).group(1).split(",")
        assert sorted(programs) == sorted(names)
    demo = load_config(ROOT / "config" / "config.demo.json")
    assert sorted(e.name for e in demo.exchanges) == sorted(names)


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
    ("symbols", [f"S{i}/USDT:USDT" for i in range(1001)], r"symbols: 1001 symbols, at most 1000 allowed"),
    ("collection.interval_seconds", 2, r"collection\.interval_seconds: Input should be greater than or equal to 5"),
    ("collection.retry_attempts", "three", r"collection\.retry_attempts: Input should be a valid integer"),
    ("rabbitmq.port", 70000, r"rabbitmq\.port: Input should be less than or equal to 65535"),
    ("logging.level", "LOUD", r"logging\.level: Input should be 'DEBUG'"),
    ("rabbitmq.hots", "x", r"rabbitmq\.hots: Extra inputs are not permitted"),
    ("exchanges", [{"name": "binance", "rate_share": 1.5}], r"exchanges\.0\.rate_share: Input should be less than or equal to 1"),
    ("exchanges", [{"name": "binance", "rate_share": 0}], r"exchanges\.0\.rate_share: Input should be greater than 0"),
    ("exchanges", ["bybit", {"name": "bitget", "depth": 100}],
     r"exchanges\.1\.depth: depth 100 is not one the exchange accepts \(1, 5, 15, 50, max\) on bitget"),
    ("exchanges", [{"name": "bybit", "depth": 2000}],
     r"exchanges\.0\.depth: depth 2000 is not one the exchange accepts \(1\.\.1000\) on bybit"),
    ("exchanges", [{"name": "htx", "depth": "max"}],
     r"exchanges\.0\.depth: depth 'max' is not one the exchange accepts \(150\)"),
    ("exchanges", [{"name": "binance", "depth": 0}],
     r"exchanges\.0\.depth: depth must be a number of levels above 0 or \"max\", got 0$"),
    ("exchanges", [{"name": "okx", "depth": "all"}], r"exchanges\.0\.depth: depth must be .* got 'all'$"),
    ("exchanges", [{"name": "htx", "per_symbol_extras": "sometimes"}],
     r"exchanges\.0\.per_symbol_extras: Input should be a valid boolean"),
    ("logging.file", "", r"logging\.file: String should have at least 1 character"),
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


# -- the vision's own config (seed, sections 9 and 10), verbatim ----------------------------------------------
VISION_SECTION_9 = """{
  "rabbitmq": {
    "host": "192.168.192.42",
    "port": 5672,
    "user": "rmuser",
    "password": "rmpassword",
    "exchange": "futures_data"
  },
  "exchanges": ["bitget", "bybit", "binance", "htx", "gateio"],
  "symbols": [
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "SOL/USDT:USDT"
  ],
  "collection": {
    "interval_seconds": 5,
    "retry_attempts": 3,
    "retry_delays": [1, 2, 4]
  },
  "api_keys_file": ".env.keys"
}"""
VISION_SECTION_10 = """{
  "logging": {
    "level": "DEBUG",
    "file": "app.log"
  }
}"""
VISION = Path(ROOT).parent / "shared" / "seed" / "000_2509af42f60ecc26.txt"  # beside the checkout, if at all


def test_the_visions_config_loads_unchanged(tmp_path):
    """Section 9's config.json with section 10's logging "added to config.json" (docs/reference.md, "Configuration")."""
    merged = {**json.loads(VISION_SECTION_9), **json.loads(VISION_SECTION_10)}
    config = load_config(write(tmp_path, merged))
    assert config.logging.level == "DEBUG" and config.logging.file == "app.log"
    assert config.log_file == ROOT / "app.log"
    assert [e.name for e in config.exchanges] == ["bitget", "bybit", "binance", "htx", "gateio"]
    assert config.symbols == ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
    assert config.collection.retry_delays == [1, 2, 4] and config.api_keys_file == ".env.keys"


@pytest.mark.skipif(not VISION.exists(), reason="the vision's text is not beside this checkout")
def test_the_visions_config_above_is_its_text_verbatim():
    text = VISION.read_text(encoding="utf-8")
    assert f"```json\n{VISION_SECTION_9}\n```" in text
    assert f"```json\n{VISION_SECTION_10}\n```" in text


def test_example_config_logs_to_one_shared_file():
    config = load_config(ROOT / "config" / "config.example.json")
    assert config.log_file == ROOT / "logs" / "app.log"


# -- symbols: none at all, up to 1000 ------------------------------------------------------------------------
def test_empty_symbol_list_is_valid(tmp_path):
    assert load_config(write(tmp_path, with_change("symbols", []))).symbols == []


def test_up_to_1000_distinct_symbols_counted_after_duplicates_go(tmp_path):
    thousand = [f"S{i}/USDT:USDT" for i in range(1000)]
    assert len(load_config(write(tmp_path, with_change("symbols", thousand))).symbols) == 1000
    assert len(load_config(write(tmp_path, with_change("symbols", [*thousand, thousand[0]]))).symbols) == 1000


# -- exchange entries: depth, per-symbol extras -----------------------------------------------------------------
def test_depths_the_exchanges_accept(tmp_path):
    config = load_config(write(tmp_path, with_change("exchanges", [
        {"name": "binance", "depth": 100}, {"name": "bitget", "depth": "max"}, {"name": "htx", "depth": 150},
        {"name": "gateio", "depth": 300}, {"name": "bybit"}, {"name": "okx", "depth": 7}])))
    assert [e.depth for e in config.exchanges] == [100, "max", 150, 300, None, 7]  # okx: ccxt's generic row


def test_per_symbol_extras_on_unless_turned_off(tmp_path):
    config = load_config(write(tmp_path, with_change("exchanges", [
        "bybit", {"name": "htx", "per_symbol_extras": False}])))
    assert config.exchange("bybit").per_symbol_extras is True
    assert config.exchange("htx").per_symbol_extras is False


# -- the config of the operator's tools ----------------------------------------------------------------------
@pytest.fixture
def running_record(tmp_path, monkeypatch):
    """common.config's record of the running system's config, moved to tmp_path."""
    import common.config as config_module
    record, pid_file = tmp_path / "config.path", tmp_path / "supervisord.pid"
    monkeypatch.setattr(config_module, "RUNNING_CONFIG_RECORD", record)
    monkeypatch.setattr(config_module, "SUPERVISORD_PID", pid_file)
    monkeypatch.delenv("FUTURES_SCAN_CONFIG", raising=False)
    return record, pid_file


def test_operator_tools_use_the_running_systems_config(running_record, monkeypatch):
    from common.config import DEFAULT_CONFIG, operator_config_path
    record, pid_file = running_record
    assert operator_config_path() == DEFAULT_CONFIG  # nothing runs
    record.write_text("/srv/demo/config.demo.json\n")
    pid_file.write_text(f"{os.getpid()}\n")  # a process that certainly lives
    assert operator_config_path() == Path("/srv/demo/config.demo.json")
    assert operator_config_path("mine.json") == Path("mine.json")
    monkeypatch.setenv("FUTURES_SCAN_CONFIG", "/etc/fs.json")
    assert operator_config_path() == Path("/etc/fs.json")


def test_a_record_whose_supervisord_is_gone_is_ignored(running_record):
    from common.config import DEFAULT_CONFIG, operator_config_path
    record, pid_file = running_record
    record.write_text("/srv/demo/config.demo.json\n")
    never_a_pid = Path("/proc/sys/kernel/pid_max").read_text()  # pids stay below pid_max
    pid_file.write_text(never_a_pid)
    assert operator_config_path() == DEFAULT_CONFIG
    pid_file.write_text("0\n")
    assert operator_config_path() == DEFAULT_CONFIG


@pytest.mark.parametrize("entry, message", [
    ({"name": "binance", "rate_share": 0.1},
     r"exchanges\.0: binance: rate_share 0\.1 leaves 20 weight per 5 s, less than its heaviest call weighs: "
     r"the 24 h tickers \(/fapi/v1/ticker/24hr\), 40; the smallest share that holds it is 0\.2$"),
    ({"name": "bitget", "rate_share": 0.01},
     r"exchanges\.0: bitget: rate_share 0\.01 leaves 0\.2 requests per 1 s, less than its heaviest call "
     r"weighs: a request, 1; the smallest share that holds it is 0\.05$"),
])
def test_a_rate_share_too_small_for_the_heaviest_call_is_refused(tmp_path, entry, message):
    """Binance's 24 h tickers weigh 40: a share of its 200 per 5 s below 40 could never send them."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, with_change("exchanges", [entry])))


def test_the_smallest_rate_share_that_holds_the_heaviest_call_is_accepted(tmp_path):
    config = load_config(write(tmp_path, with_change("exchanges", [{"name": "binance", "rate_share": 0.2}])))
    assert config.exchange("binance").rate_share == 0.2


def test_a_share_too_small_for_the_fullest_settled_funding_page_is_refused_unless_history_is_off(tmp_path):
    """Hyperliquid weighs a page of 500 settlements 20 + 25: a share of its 100 per 5 s below 45 could never send it."""
    config = with_change("exchanges", [{"name": "hyperliquid", "rate_share": 0.3}])
    with pytest.raises(ConfigError, match=r"hyperliquid: rate_share 0\.3 leaves less than its fullest settled funding "
                                          r"page weighs \(45\); raise it to at least 0\.45, or set history\.enabled"):
        load_config(write(tmp_path, config))
    assert load_config(write(tmp_path, {**config, "history": {"enabled": False}})).exchange("hyperliquid").rate_share == 0.3
    assert load_config(write(tmp_path, with_change("exchanges", [{"name": "hyperliquid", "rate_share": 0.45}])))


@pytest.mark.parametrize("history, message", [
    ({"backfill_days": 60}, r"backfill_days 60 exceeds retention_days 30: the recorder would delete"),
    ({"rate_share": 0.9}, r"history\.rate_share: Input should be less than or equal to 0\.5"),
    ({"sample_seconds": 1}, r"history\.sample_seconds: Input should be greater than or equal to 10"),
])
def test_the_history_section_names_what_it_refuses(tmp_path, history, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, with_change("history", history)))
