"""The scanner's table, live in a terminal: reads the running scanner's JSON API (GET /api/opportunities).

    python scripts/scan.py                                   the scanner of the config (scanner.listen)
    python scripts/scan.py --url http://127.0.0.1:8000 --exchanges binance,bybit --min-volume-usd 1e6
    python scripts/scan.py --symbol BTC --once               one table, then exit (for scripts and pipes)
    python scripts/scan.py --sort realized_7d                 the pairs that earned most over 7 days first

The address comes from --url, else the config's `scanner.listen` (--config, $FUTURES_SCAN_CONFIG, the running
system's config, config/config.json), else http://127.0.0.1:8000. A scanner that requires an access token
(scanner.access_token) is sent it as `Authorization: Bearer`: from $FUTURES_SCAN_SCANNER_TOKEN, else the
config's. Ctrl+C stops it. Exit status 2 when the scanner cannot be reached (--once) or refuses a filter.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import ValidationError  # noqa: E402
from rich.console import Console, ConsoleOptions  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.text import Text  # noqa: E402

from common.config import OPERATOR_CONFIG_HELP, operator_config_path  # noqa: E402
from common.scan import SORTS, ScannerConfig, split_listen, terminal_text  # noqa: E402
from common.scan_terminal import build_table, plain  # noqa: E402

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


class ScanView:
    """The table as a renderable: its columns are chosen when it is drawn, at the width the console has then,
    so the live view follows a resized terminal at its next refresh."""

    def __init__(self, data: dict, limit: int, title: str | Text):
        self.data, self.limit, self.title = data, limit, title

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        yield build_table(self.data, self.limit, self.title, options.max_width)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The scanner's opportunities table, live in the terminal")
    parser.add_argument("--url", help=f"the scanner (default: from the config's scanner.listen, else {DEFAULT_URL})")
    parser.add_argument("--config", help=OPERATOR_CONFIG_HELP)
    parser.add_argument("--exchanges", help="comma-separated: choose the pair among these only")
    parser.add_argument("--min-volume-usd", type=float, help="both legs' 24 h volume in USD at least this")
    parser.add_argument("--symbol", help="a base asset, e.g. BTC (BTCUSDT, BTCUSDC, BTC/USDC:USDC mean BTC too)")
    parser.add_argument("--sort", choices=SORTS, help="the rows' order (default: the funding APR spread now; "
                                                      "realized_7d: what the pair earned over 7 days)")
    parser.add_argument("--limit", type=int, default=40, help="rows shown (default 40)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    parser.add_argument("--once", action="store_true", help="print the table once and exit")
    args = parser.parse_args(argv)
    url = args.url or default_url(args.config)
    filters = {"exchanges": args.exchanges, "min_volume_usd": args.min_volume_usd, "symbol": args.symbol,
               "sort": args.sort}
    token = access_token(args.config)
    console = Console()
    if args.once:
        try:
            console.print(ScanView(fetch(url, filters, token), args.limit, f"futures_scan scanner · {url}"))
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
                live.update(ScanView(last or {"timestamp": 0, "rows": []}, args.limit, title), refresh=True)
                time.sleep(args.interval)  # the refresh cadence itself, not a wait for an event
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
