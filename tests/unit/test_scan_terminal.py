"""scripts/scan.py's table: what came over the wire (symbols, exchange names) is shown as text, never read
as rich markup or passed to the terminal as control sequences; the columns shown are those that fit the
terminal's width, each whole."""
from __future__ import annotations

import importlib.util
import io

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from common.scan import terminal_text
from common.scan_terminal import ALWAYS_SHOWN, build_table, fitting, table_width
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("scan_tool", ROOT / "scripts" / "scan.py")
scan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scan)

EVIL = "[link=https://evil.example]BTC[/link]\x1b]8;;https://evil.example\x07[bold red]/USDT:USDT\x1b[2J\u202e"


def leg(exchange: str, quote: str = "USDT", **values) -> dict:
    return {"exchange": exchange, "symbol": f"BTC/{quote}:{quote}", "quote": quote, "funding_apr": 0.1,
            "next_funding_time": 1_800_003_600_000, "basis_bps": 1.0, "age_seconds": 1.0, **values}


def rendered(data: dict, title="futures_scan scanner", width: int = 400) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=width)
    console.print(scan.ScanView(data, 10, title))
    return console.file.getvalue()


def plain_lines(data: dict, width: int, title="futures_scan scanner · http://127.0.0.1:8000") -> list[str]:
    console = Console(file=io.StringIO(), width=width)
    console.print(scan.ScanView(data, 10, title))
    return console.file.getvalue().splitlines()


def market(symbol="BTC", long_apr=-0.438, realized_7d=0.5432) -> dict:
    """Two rows, the first with costs at two sizes (the second size's books thin) and a realized 7 d spread,
    the second with neither (its history does not cover 7 days)."""
    at_size = {"10000": {"long_fill": 1.0, "short_fill": 1.0, "entry_cost_bps": 12.345, "break_even_hours": 3.21},
               "100000": {"long_fill": 0.151, "short_fill": 0.201, "entry_cost_bps": 55.55, "break_even_hours": 17.94}}
    return {"timestamp": 1_800_000_000_000, "rows": [
        {"symbol": symbol, "long": leg("gateio", funding_apr=long_apr), "short": leg("bybit", funding_apr=0.438),
         "funding_apr_spread": 0.876, "price_spread_bps": 49.875, "at_size": at_size,
         "realized_apr_spread": {"1d": 0.9, "3d": 0.7, "7d": realized_7d, "30d": None}},
        {"symbol": "ETH", "long": leg("binance"), "short": leg("bybit", basis_bps=-2.5),
         "funding_apr_spread": 0.219, "price_spread_bps": -3.0, "at_size": None,
         "realized_apr_spread": {"1d": 0.1, "3d": None, "7d": None, "30d": None}}]}


def header_line(lines: list[str]) -> str:
    return next(line for line in lines if "Symbol" in line)


def row_line(lines: list[str], symbol: str) -> str:
    return next(line for line in lines if symbol in line)


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


# -- the columns that fit --------------------------------------------------------------------------------
def test_table_width_is_the_width_rich_draws():
    for widths in ([6], [13, 6, 5, 10], [1, 2, 3, 4, 5, 6, 7]):
        table = Table()
        for w in widths:
            table.add_column("x" * w)
        console = Console(file=io.StringIO(), width=300)
        console.print(table)
        assert max(len(line) for line in console.file.getvalue().splitlines()) == table_width(widths)


def test_fitting_takes_the_longest_prefix_that_fits_and_never_fewer_than_the_always_shown():
    widths = [13, 6, 5, 10, 9, 16, 40, 3]            # by priority; the table of the first five is 59 wide
    assert fitting(widths, 59) == 5 and fitting(widths, 58) == 4 and fitting(widths, 78) == 6
    assert fitting(widths, 200) == 8
    assert fitting(widths, 120) == 6                 # the 3-wide last column would fit, but the 40 before it not
    assert fitting(widths, 10) == ALWAYS_SHOWN and fitting([5, 5], 3) == 2


@pytest.mark.parametrize("width", [80, 120])
def test_at_80_and_120_columns_no_line_is_longer_and_no_value_is_cut(width):
    lines = plain_lines(market(), width)
    assert max(cell_len(line) for line in lines) <= width
    assert not any("…" in line for line in lines)
    btc = row_line(lines, "│ BTC ")
    for whole in ("gateio", "bybit", "87.60%", "49.9", "12.3"):
        assert f" {whole} " in btc, (whole, btc)
    assert " -3.0 " in row_line(lines, "│ ETH ")


def test_80_columns_show_the_pair_and_spreads_and_name_what_is_left_out():
    lines = plain_lines(market(), 80)
    # The 7 d realized spread comes before the cost at size; here both fit, in exactly 80 columns.
    assert header_line(lines).split("┃")[1:-1] == [
        " Symbol ", " Long    ", " Short ", " APR spread ", " Price bps ", " 7d real ", " Cost bps @10k "]
    assert " 54.32% " in row_line(lines, "│ BTC ") and " – " in row_line(lines, "│ ETH ").split("│")[6]
    caption = " ".join(line.strip() for line in lines[lines.index(next(x for x in lines if "pairs" in x)) + 1:])
    assert caption == ("+ 8 columns at 197+ columns: Break-even @10k, Long APR, Short APR, Cost bps @100k, "
                       "Break-even @100k, Funding in L/S, Basis L/S bps, Age s")


def test_the_7d_realized_spread_is_worth_more_than_the_cost_at_size():
    """A realized spread wide enough to crowd the 80 columns keeps its place; the cost at size gives way."""
    lines = plain_lines(market(realized_7d=-12.3456), 80)
    assert [h.strip() for h in header_line(lines).split("┃")[1:-1]] == [
        "Symbol", "Long", "Short", "APR spread", "Price bps", "7d real"]
    assert " -1234.56% " in row_line(lines, "│ BTC ") and not any("…" in line for line in lines)


def test_120_columns_add_each_legs_apr_and_the_break_even():
    lines = plain_lines(market(), 120)
    assert [h.strip() for h in header_line(lines).split("┃")[1:-1]] == [
        "Symbol", "Long", "Long APR", "Short", "Short APR", "APR spread", "Price bps", "7d real", "Cost bps @10k",
        "Break-even @10k"]
    btc = row_line(lines, "│ BTC ")
    assert " -43.80% " in btc and " 43.80% " in btc and " 3.2 h " in btc and " 54.32% " in btc
    assert any(line.strip().startswith("+ 5 columns at 197+ columns: Cost bps @100k") for line in lines)


def test_wide_enough_shows_every_column_and_no_note():
    lines = plain_lines(market(), 197)
    assert len(header_line(lines).split("┃")[1:-1]) == 15
    assert " 55.5 thin " in row_line(lines, "│ BTC ")
    assert " 1.0 / -2.5 " in row_line(lines, "│ ETH ")
    assert not any("columns at" in line for line in lines)


def test_a_long_number_widens_its_column_and_pushes_others_out_rather_than_being_cut():
    lines = plain_lines(market(long_apr=-1234567890123456.0), 130)
    assert max(cell_len(line) for line in lines) <= 130 and not any("…" in line for line in lines)
    # Long APR (23 wide now) comes before Short APR in priority: it is shown whole, and Short APR is left out.
    assert "-123456789012345600.00%" in row_line(lines, "│ BTC ") and "Short APR" not in header_line(lines)


def usdc_market(price_note: bool = False, usdc_longs: bool = False) -> dict:
    """BTC long on gateio's USDT perpetual, short on hyperliquid's USDC one; ETH binance/bybit in USDT, or
    (usdc_longs) long on bybit's USDC perpetual."""
    data = market()
    btc, eth = data["rows"]
    btc["short"] = leg("hyperliquid", quote="USDC", funding_apr=0.438)
    if usdc_longs:
        eth["long"] = leg("bybit", quote="USDC")
    if price_note:
        btc.update(price_spread_bps=None, at_size=None, price_note="no fresh USDC/USDT rate")
    return data


@pytest.mark.parametrize("width", [80, 120])
def test_a_usdc_leg_shows_its_quote_beside_its_exchange_whole(width):
    lines = plain_lines(usdc_market(), width)
    assert max(cell_len(line) for line in lines) <= width and not any("…" in line for line in lines)
    btc, eth = row_line(lines, "│ BTC "), row_line(lines, "│ ETH ")
    for whole in (" gateio ", " hyperliquid·USDC ", " 87.60% ", " 49.9 ", " 54.32% "):
        assert whole in btc, (whole, btc)
    assert (" 12.3 " in btc) == (width == 120)  # at 80, the longer exchange name pushes the cost out whole
    assert " binance " in eth and " bybit " in eth and "·USDT" not in "".join(lines)  # USDT, the usual, goes unsaid


def test_quotes_in_both_exchange_columns_push_the_cost_out_at_80_rather_than_cut_anything():
    lines = plain_lines(usdc_market(usdc_longs=True), 80)
    assert max(cell_len(line) for line in lines) <= 80 and not any("…" in line for line in lines)
    assert " bybit·USDC " in row_line(lines, "│ ETH ") and " hyperliquid·USDC " in row_line(lines, "│ BTC ")
    assert "Cost bps @10k" not in header_line(lines) and any("Cost bps @10k" in line for line in lines)


def test_a_cross_quote_pair_without_a_rate_says_so_in_its_price_cell():
    btc = row_line(plain_lines(usdc_market(price_note=True), 80), "│ BTC ")
    assert " no rate " in btc and " 87.60% " in btc


def test_wide_characters_count_twice():
    lines = plain_lines(market(symbol="币安人生" * 4), 80)
    assert max(cell_len(line) for line in lines) <= 80 and "币安人生" * 4 in row_line(lines, "币安人生")


def test_the_view_chooses_its_columns_at_the_width_it_is_drawn_at():
    """The live view keeps one ScanView between fetches: a resized terminal gets its columns at the next draw."""
    view, console = scan.ScanView(market(), 10, "t"), Console(file=io.StringIO(), width=80)
    console.print(view)
    console.width = 120
    console.print(view)
    drawn = console.file.getvalue()
    assert drawn.count("Cost bps @10k") == 2 and drawn.count("┃ Long APR ┃") == 1


def test_build_table_without_rows_shows_the_headers_that_fit():
    console = Console(file=io.StringIO(), width=80)
    console.print(build_table({"timestamp": 0, "rows": []}, 10, "t", 80))
    lines = console.file.getvalue().splitlines()
    assert "APR spread" in header_line(lines) and max(cell_len(line) for line in lines) <= 80
