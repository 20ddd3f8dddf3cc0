"""The scanner's table, live in a terminal: reads the running scanner's JSON API (GET /api/opportunities).

    python scripts/scan.py                                   the scanner of the config (scanner.listen)
    python scripts/scan.py --url http://127.0.0.1:8000 --exchanges binance,bybit --min-volume-usd 1e6
    python scripts/scan.py --symbol BTC --once               one table, then exit (for scripts and pipes)

The address comes from --url, else the config's `scanner.listen` (--config, $FUTURES_SCAN_CONFIG, the running
system's config, config/config.json), else http://127.0.0.1:8000. A scanner that requires an access token
(scanner.access_token) is sent it as `Authorization: Bearer`: from $FUTURES_SCAN_SCANNER_TOKEN, else the
config's. Ctrl+C stops it. Exit status 2 when the scanner cannot be reached (--once) or refuses a filter.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import ValidationError  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from common.config import OPERATOR_CONFIG_HELP, operator_config_path  # noqa: E402
from common.scan import ScannerConfig, split_listen, terminal_text  # noqa: E402

DEFAULT_URL = "http://127.0.0.1:8000"


class ScannerUnreachable(Exception):
    pass


class FilterRefused(Exception):
    pass


def scanner_section(config: str | None) -> ScannerConfig | None:
    try:
        raw = json.loads(operator_config_path(config).read_text(encoding="utf-8"))
        return ScannerConfig.model_validate(raw.get("scanner") or {})
    except (OSError, ValueError, ValidationError, AttributeError):
        return None


def default_url(config: str | None) -> str:
    """http://host:port of the config's scanner.listen; a wildcard address is reached on loopback."""
    section = scanner_section(config)
    if section is None:
        return DEFAULT_URL
    host, port = split_listen(section.listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def access_token(config: str | None) -> str | None:
    """$FUTURES_SCAN_SCANNER_TOKEN, else the config's scanner.access_token, else None."""
    if os.environ.get("FUTURES_SCAN_SCANNER_TOKEN"):
        return os.environ["FUTURES_SCAN_SCANNER_TOKEN"]
    section = scanner_section(config)
    return section.access_token.get_secret_value() if section and section.access_token else None


def fetch(url: str, filters: dict, token: str | None = None) -> dict:
    query = urllib.parse.urlencode({k: v for k, v in filters.items() if v not in (None, "")})
    request = urllib.request.Request(f"{url.rstrip('/')}/api/opportunities?{query}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 400:
            raise FilterRefused(json.loads(e.read()).get("error", "bad filter")) from None
        raise ScannerUnreachable(f"HTTP {e.code}" + (" (an access token is required: $FUTURES_SCAN_SCANNER_TOKEN)"
                                                     if e.code == 401 else "")) from None
    except (OSError, ValueError) as e:
        raise ScannerUnreachable(str(getattr(e, "reason", e))) from None


# -- formatting ----------------------------------------------------------------------------------------
# Every text that came over the wire (symbols, exchange names, error messages, the URL) goes into the table as
# a rich Text, never as a str: rich reads a str cell as markup, so a symbol like "[link=...]BTC[/link]"
# would become a hyperlink; and terminal_text strips the control characters that could rewrite the screen.
def plain(text, limit: int = 80) -> Text:
    return Text(terminal_text(text, limit))


def _number(value) -> float | None:
    """A finite number, else None: the scanner's own API sends numbers, but a number this cannot format
    must cost a cell, never the table."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def pct(value) -> str:
    value = _number(value)
    return "–" if value is None else f"{value * 100:.2f}%"


def bps(value) -> str:
    value = _number(value)
    return "–" if value is None else f"{value:.1f}"


def until(next_ms, now_ms) -> str:
    next_ms, now_ms = _number(next_ms), _number(now_ms)
    if next_ms is None or now_ms is None:
        return "–"
    seconds = int(max(0, (next_ms - now_ms) // 1000))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def signed(text: str, value) -> Text:
    value = _number(value)
    return Text(text, style="green" if value and value > 0 else "red" if value and value < 0 else "")


def build_table(data: dict, limit: int, title: str | Text) -> Table:
    now = data["timestamp"]
    notionals = sorted({n for row in data["rows"] for n in (row["at_size"] or {})}, key=int)
    table = Table(title=title if isinstance(title, Text) else plain(title, 300), caption=f"{len(data['rows'])} pairs · long lowest funding APR, short highest",
                  header_style="bold", expand=False)
    for name in ("Symbol", "Long", "Long APR", "Funding in", "Short", "Short APR", "Funding in", "APR spread",
                 "Price bps", "Basis L/S bps"):
        table.add_column(name, justify="left" if name in ("Symbol", "Long", "Short") else "right", no_wrap=True)
    for notional in notionals:
        table.add_column(f"Cost bps @{int(notional):,}", justify="right", no_wrap=True)
        table.add_column(f"Break-even @{int(notional):,}", justify="right", no_wrap=True)
    table.add_column("Age s", justify="right")
    for row in data["rows"][:limit]:
        long, short, sized = row["long"], row["short"], row["at_size"] or {}
        cells = [plain(row["symbol"]), plain(long["exchange"]), pct(long["funding_apr"]),
                 until(long["next_funding_time"], now), plain(short["exchange"]), pct(short["funding_apr"]),
                 until(short["next_funding_time"], now),
                 signed(pct(row["funding_apr_spread"]), row["funding_apr_spread"]),
                 signed(bps(row["price_spread_bps"]), row["price_spread_bps"]),
                 f"{bps(long['basis_bps'])} / {bps(short['basis_bps'])}"]
        for notional in notionals:
            at = sized.get(notional)
            thin = at and (at["long_fill"] < 1 or at["short_fill"] < 1)
            cells.append("–" if not at else bps(at["entry_cost_bps"]) + (" thin" if thin else ""))
            even = at and at["break_even_hours"]
            cells.append("–" if _number(even) is None or not at else f"{even:.1f} h")
        ages = [a for a in (_number(long["age_seconds"]), _number(short["age_seconds"])) if a is not None]
        cells.append(f"{max(ages):.1f}" if ages else "–")
        table.add_row(*cells)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The scanner's opportunities table, live in the terminal")
    parser.add_argument("--url", help=f"the scanner (default: from the config's scanner.listen, else {DEFAULT_URL})")
    parser.add_argument("--config", help=OPERATOR_CONFIG_HELP)
    parser.add_argument("--exchanges", help="comma-separated: choose the pair among these only")
    parser.add_argument("--min-volume-usd", type=float, help="both legs' 24 h volume in USD at least this")
    parser.add_argument("--symbol", help="e.g. BTC, BTCUSDT, BTC/USDT:USDT")
    parser.add_argument("--limit", type=int, default=40, help="rows shown (default 40)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    parser.add_argument("--once", action="store_true", help="print the table once and exit")
    args = parser.parse_args(argv)
    url = args.url or default_url(args.config)
    filters = {"exchanges": args.exchanges, "min_volume_usd": args.min_volume_usd, "symbol": args.symbol}
    token = access_token(args.config)
    console = Console()
    if args.once:
        try:
            console.print(build_table(fetch(url, filters, token), args.limit, f"futures_scan scanner · {url}"))
        except (ScannerUnreachable, FilterRefused) as e:
            kind = "the scanner refused a filter" if isinstance(e, FilterRefused) else "cannot reach the scanner"
            print(f"scan: {kind} at {terminal_text(url, 200)}: {terminal_text(e, 300)}", file=sys.stderr)
            return 2
        return 0
    return run_live(console, url, filters, token, args)


def run_live(console: Console, url: str, filters: dict, token: str | None, args) -> int:
    last = None
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                try:
                    last = fetch(url, filters, token)
                    title = plain(f"futures_scan scanner · {url} · {time.strftime('%H:%M:%S')}", 300)
                except FilterRefused as e:
                    print(f"scan: the scanner refused a filter: {terminal_text(e, 300)}", file=sys.stderr)
                    return 2
                except ScannerUnreachable as e:
                    title = Text(terminal_text(f"cannot reach the scanner at {url}: {e} (retrying)", 300), style="red")
                live.update(build_table(last or {"timestamp": 0, "rows": []}, args.limit, title), refresh=True)
                time.sleep(args.interval)  # the refresh cadence itself, not a wait for an event
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
