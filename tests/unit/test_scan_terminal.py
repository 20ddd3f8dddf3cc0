"""scripts/scan.py's table: what came over the wire (symbols, exchange names) is shown as text, never read
as rich markup or passed to the terminal as control sequences."""
from __future__ import annotations

import importlib.util
import io

import pytest
from rich.console import Console

from common.scan import terminal_text
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("scan_tool", ROOT / "scripts" / "scan.py")
scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scan)

EVIL = "[link=https://evil.example]BTC[/link]\x1b]8;;https://evil.example\x07[bold red]/USDT:USDT\x1b[2J\u202e"


def leg(exchange: str, **values) -> dict:
    return {"exchange": exchange, "funding_apr": 0.1, "next_funding_time": 1_800_003_600_000, "basis_bps": 1.0,
            "age_seconds": 1.0, **values}


def rendered(data: dict, title="futures_scan scanner") -> str:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=400)
    console.print(scan.build_table(data, 10, title))
    return console.file.getvalue()


def test_a_crafted_symbol_is_shown_as_text_without_links_or_escapes():
    data = {"timestamp": 1_800_000_000_000, "rows": [
        {"symbol": EVIL, "long": leg("bin[i]ance\x1b[31m"), "short": leg("bybit"), "funding_apr_spread": 0.2,
         "price_spread_bps": 1.0, "at_size": None}]}
    out = rendered(data, title="at http://x: [link=https://evil.example]down[/link]\x1b[2J")
    assert "\x1b]8" not in out and "\x07" not in out and "\x1b[2J" not in out and "\u202e" not in out
    assert "[link=https://evil.example]BTC[/link]" in out and "[bold red]/USDT" in out
    assert "bin[i]ance" in out and "[link=https://evil.example]down[/link]" in out


def test_numbers_that_cannot_be_formatted_cost_their_cell_only():
    data = {"timestamp": 1_800_000_000_000, "rows": [
        {"symbol": "BTC/USDT:USDT", "long": leg("binance", funding_apr=10**400, next_funding_time=-10**400),
         "short": leg("bybit", next_funding_time=10**30, age_seconds="old"), "funding_apr_spread": float("nan"),
         "price_spread_bps": "wide", "at_size": None}]}
    out = rendered(data)
    assert "BTC/USDT:USDT" in out and "binance" in out and "10.00%" in out


def test_terminal_text_keeps_letters_of_every_script_and_drops_controls():
    assert terminal_text("币安人生/USDT:USDT") == "币安人生/USDT:USDT"
    assert terminal_text("A\x00B\x1bC\u200bD\u202eE\x9b") == "ABCDE"
    assert terminal_text("X" * 500, 64) == "X" * 64
