"""scripts/scan.py as a person sees it: run in a real terminal (a tmux pane 80 or 120 columns wide) against a
real scanner.py fed on a vhost of the test's own, and read off the screen with `tmux capture-pane`."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_scanner import (expected_btc_row, poll, publish_market, publish_usdc_market,  # noqa: F401
                                publisher, scanner)
from tests.test_scanner_history import apr, history  # noqa: F401 - the fixture

BTC, ETH = "BTC", "ETH"  # rows are base assets


class Pane:
    """One detached tmux session of the given size running one command, on a tmux server of its own (its socket
    in the test's directory, no user config), so that nothing of the user's tmux is touched; killed by name after."""

    def __init__(self, socket: Path, width: int, command: list[str], height: int = 40):
        if not shutil.which("tmux"):
            pytest.fail("/usr/bin/tmux is missing: run scripts/install_test_tools.sh (the test command does)")
        self.name = f"scan-{uuid.uuid4().hex}"
        self.marker = f"DONE-{self.name}"
        self.tmux = ["tmux", "-S", str(socket), "-f", "/dev/null"]
        # COLUMNS/LINES from the test's own environment would override the pane's real size; the shell then
        # waits on its terminal so that the pane, and what the command printed, stays after the command ends.
        line = f"env -u COLUMNS -u LINES {shlex.join(command)}; echo {self.marker}; read _"
        subprocess.run(self.tmux + ["new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                                    "-c", str(ROOT), f"sh -c {shlex.quote(line)}"], check=True, timeout=10)

    def screen_when_done(self, timeout: float = 30) -> str:
        """The pane's text once the command has ended (its end marker is on a line of its own)."""
        def done() -> str | None:
            screen = self.capture()
            return screen if self.marker in screen.splitlines() else None
        return poll(done, timeout, f"{self.marker} on the screen")

    def capture(self) -> str:
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def close(self) -> None:
        subprocess.run(self.tmux + ["kill-session", "-t", self.name], timeout=10)


@pytest.fixture
def panes(tmp_path):
    """Makes panes: (width, command) -> Pane; every one is killed after the test."""
    made: list[Pane] = []

    def make(width: int, command: list[str]) -> Pane:
        made.append(Pane(tmp_path / f"tmux-{len(made)}.sock", width, command))
        return made[-1]
    yield make
    for pane in made:
        pane.close()


def shown(panes, scanner, width: int, *options: str) -> list[str]:
    """scan.py --once in a pane `width` columns wide: the lines it printed, each checked to fit and be whole."""
    pane = panes(width, [sys.executable, "scripts/scan.py", "--url", scanner.url, "--once", *options])
    screen = pane.screen_when_done()
    lines = screen[:screen.index(pane.marker)].rstrip("\n").splitlines()
    assert any(f"│ {BTC} " in line for line in lines), screen
    assert max(len(line) for line in lines) <= width and not any("…" in line for line in lines), screen
    return lines


def pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def bps(value: float) -> str:
    return f"{value:.1f}"


def cells(lines: list[str], asset: str) -> list[str]:
    return [cell.strip() for cell in next(line for line in lines if f"│ {asset} " in line).split("│")[1:-1]]


def headers(lines: list[str]) -> list[str]:
    return [cell.strip() for cell in next(line for line in lines if "Symbol" in line).split("┃")[1:-1]]


def test_at_80_columns_the_pair_and_its_spreads_show_whole(scanner, publisher, panes):
    scanner.await_messages(publish_market(publisher))
    want = expected_btc_row()
    lines = shown(panes, scanner, 80)
    # The 7 d realized spread (null: this scanner has no history database) comes before the cost at size.
    assert headers(lines) == ["Symbol", "Long", "Short", "APR spread", "Price bps", "7d real", "Cost bps @10k"]
    assert cells(lines, BTC) == [BTC, "gateio", "bybit", pct(want["spread"]), bps(want["price_spread_bps"]), "–",
                                 bps(want["10000"]["entry_cost_bps"])]
    assert cells(lines, ETH)[:4] == [ETH, "binance", "bybit", "21.90%"]
    assert any(line.strip().startswith("+ 8 columns at") for line in lines)


def test_at_120_columns_each_legs_apr_and_the_break_even_show_too(scanner, publisher, panes):
    scanner.await_messages(publish_market(publisher))
    want = expected_btc_row()
    lines = shown(panes, scanner, 120)
    assert headers(lines) == ["Symbol", "Long", "Long APR", "Short", "Short APR", "APR spread", "Price bps", "7d real",
                              "Cost bps @10k", "Break-even @10k"]
    assert cells(lines, BTC) == [BTC, "gateio", pct(want["long_apr"]), "bybit", pct(want["short_apr"]),
                                 pct(want["spread"]), bps(want["price_spread_bps"]), "–",
                                 bps(want["10000"]["entry_cost_bps"]), f"{want['10000']['break_even_hours']:.1f} h"]
    assert any(line.strip().startswith("+ 5 columns at") for line in lines)


def test_at_80_columns_a_usdc_leg_names_its_quote_and_the_row_stays_whole(scanner, publisher, panes):
    scanner.await_messages(publish_usdc_market(publisher))
    lines = shown(panes, scanner, 80)
    # hyperliquid·USDC widens the Short column: the cost at size is left out whole, the 7 d realized spread stays.
    assert headers(lines) == ["Symbol", "Long", "Short", "APR spread", "Price bps", "7d real"]
    row = cells(lines, BTC)
    rate = (0.9989 + 0.9991) / 2  # the USDC/USDT mid: Hyperliquid's bid 100,100 USDC in USDT
    assert row[:5] == [BTC, "binance", "hyperliquid·USDC", pct(0.00002 * 24 * 365 - 0.0001 * 3 * 365),
                       bps((100_100 * rate - 99_950) / ((100_100 * rate + 99_950) / 2) * 1e4)]


def test_at_120_columns_the_7d_realized_spread_shows_whole_and_sorts(history, publisher, panes):
    scanner, _, _ = history
    scanner.await_messages(publish_market(publisher))
    btc_7d = pct(0.438 - apr(0.00205, 168))  # bybit's 0.438 over gateio's, by hand (tests/test_scanner_history.py)
    lines = shown(panes, scanner, 120)
    assert "7d real" in headers(lines) and "Short APR" in headers(lines) and "Break-even @10k" in headers(lines)
    column = headers(lines).index("7d real")
    assert cells(lines, BTC)[column] == btc_7d and cells(lines, ETH)[column] == "43.80%"
    assert [line.split("│")[1].strip() for line in lines if line.startswith("│")] == [BTC, ETH]
    by_realized = shown(panes, scanner, 120, "--sort", "realized_7d")
    assert [line.split("│")[1].strip() for line in by_realized if line.startswith("│")] == [ETH, BTC]
    assert cells(by_realized, ETH)[column] == "43.80%"
