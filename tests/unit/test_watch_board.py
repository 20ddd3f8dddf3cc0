"""scripts/watch_snapshots.py's line for a board: the widest funding, normalized by each symbol's interval."""
from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("watch_snapshots", ROOT / "scripts" / "watch_snapshots.py")
watch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(watch)


def test_a_board_line_ranks_funding_by_its_own_interval():
    board = {"exchange": "bybit", "timestamp": 1_800_000_000_000, "markets": [
        {"symbol": "BTC/USDT:USDT", "funding_rate": 0.0008, "funding_interval_hours": 8.0},   # 87.6 % a year
        {"symbol": "WIF/USDT:USDT", "funding_rate": 0.0002, "funding_interval_hours": 1.0},   # 175.2 % a year
        {"symbol": "NEW/USDT:USDT", "funding_rate": None, "funding_interval_hours": None}]}
    line = watch.format_line(board)
    assert "bybit" in line and "board: 3 perpetuals, 2 with funding (intervals 1h, 8h)" in line
    assert line.endswith("highest funding APR: WIF/USDT:USDT 175.2%, BTC/USDT:USDT 87.6%")


@pytest.mark.parametrize("raw", [
    '"timestamp": 1' + "0" * 30, '"timestamp": -1' + "0" * 400, '"timestamp": 1e308', '"timestamp": "soon"',
    '"next_funding_time": 1' + "0" * 30, '"next_funding_time": -1' + "0" * 400, '"funding_rate": 1' + "0" * 400,
    '"funding_rate": "high"',
])
def test_a_snapshot_line_survives_values_no_clock_or_float_can_hold(raw):
    body = json.loads('{"exchange": "bybit", "symbol": "BTC/USDT:USDT", "ticker": {"bid": 1.0, "ask": 2.0, "last": 1.5}, '
                      + raw + "}")
    line = watch.format_line(body)
    assert "bybit" in line and "BTC/USDT:USDT" in line and "bid 1 ask 2 last 1.5" in line


def test_a_board_line_survives_huge_values():
    board = {"exchange": "bybit", "timestamp": -10**400, "markets": [
        {"symbol": "A/USDT:USDT", "funding_rate": 10**400, "funding_interval_hours": 8},
        {"symbol": "B/USDT:USDT", "funding_rate": 1e308, "funding_interval_hours": 1e-300},
        {"symbol": "C/USDT:USDT", "funding_rate": 0.0001, "funding_interval_hours": 10**400}]}
    assert watch.format_line(board).startswith("? bybit    board: 3 perpetuals, 0 with funding")


def test_escape_sequences_from_the_wire_never_reach_the_terminal():
    line = watch.format_line({"exchange": "by\x1b]8;;http://x\x07bit", "symbol": "BTC\x1b[2J\u202e/USDT:USDT",
                              "timestamp": 1_800_000_000_000})
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "BTC[2J/USDT:USDT" in line
