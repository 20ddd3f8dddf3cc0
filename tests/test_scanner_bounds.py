"""No message can exhaust or break the scanner (docs/reference.md, "Security"): a real scanner.py on a vhost
of the test's own, sent what a worker gone wrong could send. Its queues drop the oldest when full, a board
or snapshot over its cap is dropped before it is parsed, and a value outside sane bounds is refused at
validation: every /api/* endpoint still answers 200, and the value is never stored."""
from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request


from scanner import BOARD_PREFETCH, BOARD_QUEUE, MAX_BOARD_BYTES, MAX_SNAPSHOT_BYTES
from common.board import MAX_BOARD_ROWS
from tests.test_scanner import (BTC, ETH, board, now_ms, pairs, poll, publisher, row, scanner,  # noqa: F401
                                snapshot)


def status_of(scanner, path: str) -> int:
    try:
        with urllib.request.urlopen(scanner.url + path, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_a_full_board_queue_drops_the_oldest(scanner, publisher):
    """Stopped, the scanner holds BOARD_PREFETCH boards in flight; of the rest, the queue keeps the newest
    x-max-length and the broker drops the oldest (drop-head)."""
    cap, sent = BOARD_QUEUE["x-max-length"], BOARD_QUEUE["x-max-length"] + 50
    t = now_ms()
    scanner.process.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(sent):  # confirmed one by one: each is in the queue (or dropped) when publish returns
            publisher.publish("board.bybit", board("bybit", t + i, [row(f"S{i}/USDT:USDT", 1.0, 1.1, 0.0001, 8, 1.0)]))
    finally:
        scanner.process.proc.send_signal(signal.SIGCONT)
    poll(lambda: status_of(scanner, f"/api/symbol/S{sent - 1}USDT") == 200, 20, "the newest board taken in")
    held = [i for i in range(sent) if status_of(scanner, f"/api/symbol/S{i}USDT") == 200]
    in_flight = [i for i in held if i < sent - cap]
    assert held[len(in_flight):] == list(range(sent - cap, sent)), held   # the newest `cap` all arrived
    assert in_flight == list(range(len(in_flight))) and len(in_flight) <= BOARD_PREFETCH, held
    assert scanner.get("/api/status")["messages_seen"] == len(held)  # the oldest queued never reached it


def test_a_board_or_snapshot_over_its_cap_is_dropped_before_parsing(scanner, publisher):
    t = now_ms()
    valid = board("bybit", t, [row(BTC, 100.0, 100.1, 0.0001, 8, 1.0)])
    padded = json.dumps(valid).encode()
    padded = padded[:-1] + b" " * (MAX_BOARD_BYTES + 1 - len(padded)) + b"}"  # valid JSON, one byte too long
    many_rows = board("bybit", t, [row(f"S{i}/USDT:USDT", 1.0, 1.1, 0.0001, 8, 1.0) for i in range(MAX_BOARD_ROWS + 1)])
    # ~4 MiB of tiny rows: parsed, they would take hundreds of MiB before validation could count them
    tiny = b'{"exchange": "bybit", "timestamp": %d, "markets": [' % t + \
        b",".join(b'{"symbol":"S%d"}' % i for i in range(190_000)) + b"]}"
    assert len(tiny) < MAX_BOARD_BYTES
    deep = snapshot("bybit", BTC, t, 100.0, 100.1, 0.0001, 8, [[100.0, 1.0]], [[100.1, 1.0]])
    big_snapshot = json.dumps(deep).encode()
    big_snapshot = big_snapshot[:-1] + b" " * (MAX_SNAPSHOT_BYTES + 1 - len(big_snapshot)) + b"}"
    peak_before = peak_rss_mib(scanner.process.proc.pid)
    for key, body in [("board.bybit", padded), ("board.bybit", many_rows), ("board.bybit", tiny),
                      ("futures.bybit.BTCUSDT", big_snapshot)]:
        publisher.publish(key, body)
    publisher.publish("board.binance", board("binance", t, [row(ETH, 10.0, 10.01, 0.0001, 8, 1.0)]))
    status = scanner.await_messages(5)
    assert status["messages_dropped"] == 4
    assert status_of(scanner, "/api/symbol/BTCUSDT") == 404 and status_of(scanner, "/api/symbol/S1USDT") == 404
    assert status_of(scanner, "/api/symbol/ETHUSDT") == 200
    assert peak_rss_mib(scanner.process.proc.pid) - peak_before < 64  # the 4 MiB bodies, never their trees
    log = scanner.process.log_text()
    assert f"more than {MAX_BOARD_BYTES}" in log and f"more than {MAX_SNAPSHOT_BYTES}" in log


def test_values_outside_sane_bounds_are_refused_and_every_api_answers(scanner, publisher):
    t = now_ms()
    good_btc = row(BTC, 100.0, 100.1, 0.0001, 8, 1000.0)
    sane = snapshot("bybit", BTC, t, 100.2, 100.3, 0.0005, 8, [[100.2, 5.0]], [[100.3, 5.0]])
    raw_sane = json.dumps(sane).encode()
    bad = [
        ("board.bybit", board("bybit", t, [{**good_btc, "next_funding_time": 10**30, "funding_rate": 0.01}])),
        ("board.bybit", json.dumps(board("bybit", t, [good_btc])).encode()
         .replace(b'"timestamp": %d' % t, b'"timestamp": -1' + b"0" * 400)),
        ("futures.bybit.BTCUSDT", raw_sane.replace(b'"timestamp": %d, "ticker"' % t,
                                                   b'"timestamp": -1' + b"0" * 400 + b', "ticker"')),
        ("futures.bybit.BTCUSDT", raw_sane.replace(b"[[100.2, 5.0]]", b"[[NaN, 5.0]]")),
        ("futures.bybit.BTCUSDT", raw_sane.replace(b"[[100.2, 5.0]]", b"[[100.2, -5.0]]")),
        ("futures.bybit.BTCUSDT", raw_sane.replace(b'"index_price": null', b'"index_price": 1' + b"0" * 30)),
        ("futures.bybit.BTCUSDT", raw_sane.replace(b'"funding_rate": 0.0005', b'"funding_rate": Infinity')),
    ]
    for key, body in bad:
        assert body != raw_sane  # each replacement took place
        publisher.publish(key, body)
    publisher.publish("board.binance", board("binance", t, [good_btc, row(ETH, 10.0, 10.01, 0.0001, 8, 1.0)]))
    publisher.publish("board.gateio", board("gateio", t, [{**good_btc, "funding_rate": -0.0001},
                                                          row(ETH, 10.0, 10.01, 0.0003, 8, 1.0)]))
    status = scanner.await_messages(len(bad) + 2)
    assert status["messages_dropped"] == len(bad)
    for path in ("/api/status", "/api/opportunities", "/api/symbol/BTCUSDT", "/api/symbol/ETHUSDT",
                 "/api/opportunities?symbol=BTC"):
        assert status_of(scanner, path) == 200, path
    assert set(scanner.get("/api/status")["exchanges"]) == {"binance", "gateio"}  # bybit's never counted
    legs = scanner.get("/api/symbol/BTCUSDT")["legs"]
    assert {leg["exchange"] for leg in legs} == {"binance", "gateio"}
    assert pairs(scanner.get("/api/opportunities")["rows"]) == [("BTC", "gateio", "binance"), ("ETH", "binance", "gateio")]
