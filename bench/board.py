"""The market board's cost, measured inside one worker built as `worker.main()` builds it (docs/reference.md,
"The market board"; issue 10): CPU per cycle for the product's part (the worker's `board_rows` +
`publish_board`) beside ccxt's own parse of the same bulk answers, the message's size, and the delay from the last bulk answer to a
consumer's receipt of the board.

ccxt's part is the venue's bulk calls' `fetch` with the HTTP layer replaced by the bodies recorded from one
real cycle: JSON decode + ccxt's request building and parsing, as for the books, and the ccxt parsers the
venue's merge functions call (bybit's and htx's parse_funding_rate; all of Hyperliquid's parsing, whose bulk
call is a raw POST /info). Joining the rows into the cycle's Bulk (the merge functions' own work) is shown
apart: it serves the snapshots and the board alike.
"""
from __future__ import annotations

import itertools
import statistics
import time
from contextlib import contextmanager

from common.board import Board

clock = time.thread_time_ns   # this thread's CPU time: another process or thread on the machine is not counted


def bulk_client(w):
    """The client the worker sends its bulk calls with (its first address's)."""
    return w.routes.bulk_route().clients[0]


def all_clients(w) -> list:
    return [client for route in w.routes.routes for client in route.clients]


def mean_ms(samples_ns: list[int]) -> float:
    """Mean, so that the garbage collections some calls pay for are counted."""
    return statistics.fmean(samples_ns) / 1e6


def cpu_ms(action, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t = clock()
        action()
        samples.append(clock() - t)
    return mean_ms(samples)


def recorded(client, action) -> tuple[object, list[str]]:
    """action()'s result and the raw bodies of the requests it sent, in order."""
    bodies: list[str] = []
    real_fetch = client.fetch

    def fetching(url, method="GET", headers=None, body=None):
        out = real_fetch(url, method, headers, body)
        bodies.append(client.last_http_response)
        return out
    client.fetch = fetching
    try:
        return action(), bodies
    finally:
        client.fetch = real_fetch


@contextmanager
def replaying(client, bodies: list[str]):
    """The client answers from `bodies` (in order, round and round) instead of the network, unthrottled."""
    answers = itertools.cycle(bodies)
    real_fetch, throttled = client.fetch, client.enableRateLimit
    client.fetch = lambda url, method="GET", headers=None, body=None: client.parse_json(next(answers))  # noqa: ARG005
    client.enableRateLimit = False
    try:
        yield
    finally:
        client.fetch, client.enableRateLimit = real_fetch, throttled


PARSERS = ("parse_ticker", "parse_funding_rate")   # ccxt's per-row parsers a venue's merge functions may call


@contextmanager
def parsing_timed(client, spent: list[int]):
    """The client's per-row parsers timed (this thread's CPU, outermost calls only) into spent[0], so that the
    ccxt parsing a venue's merge functions do (Hyperliquid's whole parse; bybit's and htx's funding) counts as
    ccxt's, not the joining's."""
    depth = [0]
    real = {name: getattr(client, name) for name in PARSERS}

    def timed(parse):
        def call(*args, **kwargs):
            depth[0] += 1
            t = clock()
            try:
                return parse(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    spent[0] += clock() - t
        return call
    for name, parse in real.items():
        setattr(client, name, timed(parse))
    try:
        yield
    finally:
        for name, parse in real.items():
            setattr(client, name, parse)


def measure_board_cpu(w, repeats: int) -> dict:
    """CPU per cycle of the board at the simulator's market size, beside ccxt's parse of the bulk answers
    (in the bulk calls' fetch, and in the venue's merge functions)."""
    client = bulk_client(w)
    calls = w.venue.bulk_calls
    bodies = {call: recorded(client, lambda call=call: call.fetch(client))[1] for call in calls}
    ccxt_by_call, in_fetch = {}, [0]
    for call in calls:
        with replaying(client, bodies[call]), parsing_timed(client, in_fetch):
            ccxt_by_call[call.what] = cpu_ms(lambda call=call: call.fetch(client), repeats)
    in_all = [0]
    with replaying(client, [b for call in calls for b in bodies[call]]):
        bulk = w.fetch_bulk()
        with parsing_timed(client, in_all):
            fetch_and_join = cpu_ms(w.fetch_bulk, repeats)
    markets = list(w.perpetuals)   # the board's rows: every perpetual, as the worker's cycle asks for them
    rows = list(w.board_rows(bulk, markets).values())
    board_body = _board_body(w, rows)
    parse_in_join = max(in_all[0] - in_fetch[0], 0) / repeats / 1e6
    ccxt_ms = sum(ccxt_by_call.values()) + parse_in_join
    out = {"exchange": w.name, "markets": len(rows), "perpetuals": len(w.perpetuals),
           "answer_bytes": {call.what: sum(len(b.encode()) for b in bodies[call]) for call in calls},
           "board_bytes": len(board_body), "repeats": repeats,
           "ccxt_ms_by_call": ccxt_by_call, "ccxt_parse_in_join_ms": parse_in_join, "ccxt_ms": ccxt_ms,
           "join_ms": max(fetch_and_join - ccxt_ms, 0.0),
           "rows_ms": cpu_ms(lambda: w.board_rows(bulk, markets), repeats),
           "serialize_ms": cpu_ms(lambda: _board_body(w, rows), repeats),
           "publish_board_ms": cpu_ms(lambda: w.publish_board(rows), repeats)}
    out["product_ms"] = out["rows_ms"] + out["publish_board_ms"]
    out["product_share"] = out["product_ms"] / ccxt_ms
    out["whole_ms"] = ccxt_ms + out["join_ms"] + out["product_ms"]
    return out


def _board_body(w, rows: list) -> bytes:
    """The board message as publish_board serializes it (to time the JSON apart from the publish)."""
    board = Board.model_construct(exchange=w.name, timestamp=bulk_client(w).milliseconds(), markets=rows)
    return board.model_dump_json().encode()


def measure_board_delay(w, cycles: int, interval: float) -> dict:
    """Real cycles (`collect_cycle` every `interval` seconds, as the worker's loop starts them; the
    simulator's latency and budgets on: a faster pace would make the throttle hold the bulk calls): per cycle the wall times its
    first and last bulk answers were in (the HTTP body read, before ccxt's parse) and when publish_board
    returned. The consumer's receipt is the harness's listener, in another process."""
    answers: list[float] = []
    marks: list[dict] = []
    session = bulk_client(w).session
    real_request, real_fetch_bulk, real_publish = session.request, w.fetch_bulk, w.publish_board

    def request(*args, **kwargs):
        response = real_request(*args, **kwargs)
        answers.append(time.time())
        return response

    def fetch_bulk():
        first = len(answers)
        bulk = real_fetch_bulk()
        marks.append({"bulk_first_answered": answers[first], "bulk_answered": answers[-1]})
        return bulk

    def publish_board(rows):
        real_publish(rows)   # the books come after the board: nothing else was fetched since fetch_bulk
        marks[-1]["published"] = time.time()
    session.request, w.fetch_bulk, w.publish_board = request, fetch_bulk, publish_board
    try:
        started = time.monotonic()
        for k in range(1, cycles + 1):
            w.collect_cycle()
            time.sleep(max(0.0, started + k * interval - time.monotonic()))
    finally:
        session.request, w.fetch_bulk, w.publish_board = real_request, real_fetch_bulk, real_publish
    return {"exchange": w.name, "cycles": [m for m in marks if "published" in m]}
