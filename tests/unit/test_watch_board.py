"""scripts/watch_snapshots.py's line for a board: the widest funding, normalized by each symbol's interval."""
from __future__ import annotations

import importlib.util

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
