"""The controller's command dispatch: each command has its handler, and nothing else reaches one."""
from __future__ import annotations

import logging

import pytest

from common.config import Config
from common.control import Request, RequestError
from common.shutdown import StopSignal
from controller import Controller

pytestmark = pytest.mark.unit

INITIAL = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


@pytest.fixture
def controller(tmp_path):
    # Port 1: nothing listens there, so a publish that should not happen fails at once instead of going out.
    config = Config(rabbitmq={"port": 1, "user": "fs_test", "password": "pw"}, exchanges=["bybit"], symbols=INITIAL, api_keys_file=None,
                    state_file=str(tmp_path / "symbols.json"))
    return Controller(config, StopSignal(logging.getLogger("test")))


@pytest.mark.parametrize("command", ["launch_rockets", "", None, "set_symbols ", "SET_SYMBOLS"])
def test_an_unmatched_command_is_refused_and_never_sets_the_symbols(controller, command):
    saved = controller.store.path.read_bytes()
    with pytest.raises(RequestError) as refused:
        controller.execute(Request(command, "cid-1", symbols=["SOL/USDT:USDT"]))
    assert refused.value.code == "unknown_command" and refused.value.correlation_id == "cid-1"
    assert controller.symbol_set.symbols == INITIAL and controller.store.path.read_bytes() == saved


def test_every_known_command_has_its_own_handler(controller):
    assert controller.execute(Request("get_symbols", None))["data"] == {"symbols": INITIAL, "count": 2,
                                                                         "version": controller.symbol_set.version}
    assert set(controller.execute(Request("get_statistics", None))["data"]) >= {
        "exchange_success", "exchange_errors", "rabbitmq_published", "rabbitmq_failed", "workers"}
    with pytest.raises(RequestError, match="already exists"):
        controller.execute(Request("add_symbol", None, symbol="BTC/USDT:USDT"))
    with pytest.raises(RequestError, match="not found"):
        controller.execute(Request("remove_symbol", None, symbol="SOL/USDT:USDT"))
    assert controller.symbol_set.symbols == INITIAL
