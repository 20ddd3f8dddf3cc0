"""Print one line per futures_scan snapshot, as they arrive; boards (topic board.*) as a summary line and
the widest funding rates on them.

    python scripts/watch_snapshots.py                          every snapshot (topic futures.#)
    python scripts/watch_snapshots.py 'futures.*.BTCUSDT'      BTC on every exchange
    python scripts/watch_snapshots.py 'board.*'                every exchange's market board, each cycle
    python scripts/watch_snapshots.py 'futures.bybit.#' 'futures.gateio.ETHUSDT'
    python scripts/watch_snapshots.py --config config/config.demo.json --count 20

The broker address and exchange come from the config: --config, else $FUTURES_SCAN_CONFIG, else the config of
the system that scripts/run.sh or scripts/demo.sh runs from this checkout (so after scripts/demo.sh no --config
is needed), else config/config.json; RABBITMQ_* in the environment override it, as for the workers.
A private queue that disappears on exit, so watching never disturbs other consumers. Reconnects when the broker
goes away; Ctrl+C stops it.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from common.broker import connection_parameters, declare_exchange  # noqa: E402
from common.roles import connect_as  # noqa: E402
from common.config import OPERATOR_CONFIG_HELP, ConfigError, load_config, operator_config_path  # noqa: E402
from common.scan import terminal_text  # noqa: E402


# What a message carries is printed as text, never trusted: a time of 10^30 or -10^400, a string where a
# number belongs, or a symbol with terminal escape sequences costs its field ("?"), never the watch.
def _text(value, limit: int = 40) -> str:
    return terminal_text(value, limit)


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer past a float's range
        return None
    return value if math.isfinite(value) else None


def _num(value) -> str:
    if value is None:
        return "-"
    number = _finite(value)
    return "?" if number is None else f"{number:g}"


def _datetime(ms, tz=None) -> datetime | None:
    seconds = _finite(ms)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds / 1000, tz)
    except (OverflowError, OSError, ValueError):  # before year 1 or after 9999
        return None


def _time(ms) -> str:
    if not ms:
        return "-"
    when = _datetime(ms, timezone.utc)
    return "?" if when is None else when.strftime("%Y-%m-%d %H:%M UTC")


def _clock(ms) -> str:
    """HH:MM:SS of a message's timestamp; now when it has none."""
    when = _datetime(time.time() * 1000 if ms is None else ms)
    return "?" if when is None else when.strftime("%H:%M:%S")


def format_line(body: dict) -> str:
    """exchange, symbol, bid/ask/last, book depth, funding rate, next funding time: one line; a board's
    summary instead for a board."""
    if "markets" in body:
        return format_board(body)
    ticker = body.get("ticker") or {}
    book = body.get("orderbook") or {}
    rate = _finite(body.get("funding_rate"))
    return (f"{_clock(body.get('timestamp'))} {_text(body.get('exchange', '?')):<8} {_text(body.get('symbol', '?'), 64):<16} "
            f"bid {_num(ticker.get('bid'))} ask {_num(ticker.get('ask'))} last {_num(ticker.get('last'))}  "
            f"book {len(book.get('bids') or [])}x{len(book.get('asks') or [])}  "
            f"funding {'-' if rate is None else f'{rate * 100:.4f}%'}  next {_time(body.get('next_funding_time'))}")


def format_board(body: dict, top: int = 3) -> str:
    """A board: its exchange, how many perpetuals, how many with funding and intervals, and the highest
    funding rates normalized to a year (rate x 24 / the symbol's own interval x 365)."""
    rows = [r for r in body.get("markets") or [] if isinstance(r, dict)]
    aprs = sorted(((apr, _text(r.get("symbol", "?"), 64)) for r in rows
                   if (apr := _apr(r.get("funding_rate"), r.get("funding_interval_hours"))) is not None), reverse=True)
    hours = sorted({h for r in rows if (h := _finite(r.get("funding_interval_hours"))) and h > 0})
    best = ", ".join(f"{symbol} {apr * 100:.1f}%" for apr, symbol in aprs[:top]) or "-"
    return (f"{_clock(body.get('timestamp'))} {_text(body.get('exchange', '?')):<8} board: {len(rows)} perpetuals, "
            f"{len(aprs)} with funding (intervals {', '.join(f'{h:g}h' for h in hours) or '-'}); "
            f"highest funding APR: {best}")


def _apr(rate, hours) -> float | None:
    """The rate per interval as a yearly fraction; None unless both are finite and the interval positive."""
    rate, hours = _finite(rate), _finite(hours)
    if rate is None or hours is None or hours <= 0:
        return None
    apr = rate * 24 / hours * 365
    return apr if math.isfinite(apr) else None


class _Stop(BaseException):  # like KeyboardInterrupt: nothing in pika swallows it
    pass


def _raise_stop(*_):
    raise _Stop


def watch(params: pika.ConnectionParameters, exchange: str, topics: list[str], count: int | None,
          passive: bool = False) -> int:
    seen = 0
    warned = False
    while True:
        connection = None
        try:
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            declare_exchange(channel, exchange, "topic", passive)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            for topic in topics:
                channel.queue_bind(queue, exchange, topic)
            if warned:
                print("(reconnected)", file=sys.stderr, flush=True)
            else:
                print(f"watching {exchange} {' '.join(topics)} at {params.host}:{params.port} "
                      f"vhost {params.virtual_host} (Ctrl+C stops)", file=sys.stderr, flush=True)
            warned = False
            for _method, _props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
                if body is None:
                    continue
                try:
                    line = format_line(json.loads(body))
                except Exception as e:  # noqa: BLE001 - one message's oddity costs its line, never the watch
                    line = f"(unreadable message: {type(e).__name__})"
                print(line, flush=True)
                seen += 1
                if count and seen >= count:
                    return 0
        except (pika.exceptions.AMQPError, OSError) as e:
            if not warned:
                print(f"RabbitMQ at {params.host}:{params.port} unreachable ({type(e).__name__}); retrying",
                      file=sys.stderr, flush=True)
                warned = True
            time.sleep(2)
        finally:
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except (pika.exceptions.AMQPError, OSError):
                    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Print one line per futures_scan snapshot (or board)")
    parser.add_argument("topics", nargs="*", default=["futures.#"],
                        help="routing-key filters, e.g. 'futures.*.BTCUSDT' or 'board.*' (default: futures.#)")
    parser.add_argument("--config", help=OPERATOR_CONFIG_HELP)
    parser.add_argument("--count", type=int, help="exit after this many snapshots")
    args = parser.parse_args(argv)
    try:
        config = load_config(operator_config_path(args.config))
        r, roles = connect_as(config.rabbitmq, "consumer")
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 2
    params = connection_parameters(r)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        return watch(params, r.exchange, args.topics, args.count, passive=roles.separate)
    except (KeyboardInterrupt, _Stop):
        return 0


if __name__ == "__main__":
    sys.exit(main())
