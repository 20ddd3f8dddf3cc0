"""How long a benchmark run will take, printed at its start (bench/run.py), from the floors (bench/budget.py) and
the run's arguments: each worker run's cycles at what the budget and the round trips allow, the searches'
expected runs (more where the answer sits near a limit and is repeated), and the fixed phases. A model, not a
measurement: the machine's load and the searches' luck move it by a fifth either way.
"""
from __future__ import annotations

import math

from bench.budget import INTERVAL, Floor
from bench.workers import NEAR, REPEATS

START_SECONDS = 4.0        # a worker run beside its cycles: start (import, markets, broker), stop, the log read
# Runs a first search adds to its seeds, and a repeat takes in all (its two seeds, then a probe over them
# or 5% under, and the search between), as the searches of okx and hyperliquid went (3-4 each).
SEARCH_EXTRA_RUNS = 3.5
REPEAT_RUNS = 3.5
PEER_CYCLE_CAP = 10.0      # bench/naive.py LONG_CYCLE: one cycle that long is enough
SOAK_CYCLES_PER_SECOND = 7.0
INPROC_SECONDS = 25.0      # CPU per snapshot and the board's CPU, with their processes' start
# Seconds a symbol costs the peers where ccxt's throttle is slower than the rule of peer_seconds, as measured:
# Hyperliquid's fetch_ticker and fetch_funding_rate each post whole-market calls ccxt spaces ~1 s apart.
PEER_SECONDS_PER_SYMBOL = {"hyperliquid": 2.3}


def cycle_seconds(floor: Floor, n: int, round_trip: float, ips: int = 1) -> float:
    """One cycle at N: the round trips (the bulk calls one after another, the per-symbol requests `book_threads`
    at a time, each answer half again as long on a busy host) or the published budget, whichever is slower."""
    threads = floor.notes.get("book_threads", 1)
    trips = len(floor.bulk) * round_trip + math.ceil(n * len(floor.per_symbol) / threads) * round_trip * 1.5
    return max(trips, budget_seconds(floor, n, ips))


def budget_seconds(floor: Floor, n: int, ips: int = 1) -> float:
    """The least time the published budget of `ips` addresses allows for a cycle's weight on its binding budget."""
    if floor.per_endpoint:
        weight = n * sum(c.weight for c in floor.per_symbol if c.endpoint == floor.binding)
    else:
        weight = floor.weight(n)
    return weight / (ips * floor.binding_limit / floor.window)


def trial_seconds(floor: Floor, n: int, measured: int, round_trip: float, ips: int = 1) -> float:
    """A worker run as bench/workers.py's _watch waits for it: cycle 1 and `measured` more when cycles are
    short, 3 more up to 30 s, none beyond; each cycle at least the 5 s interval."""
    cycle = cycle_seconds(floor, n, round_trip, ips)
    need = 1 + (measured if cycle <= 8 else 3 if cycle <= 30 else 0)
    return START_SECONDS + need * max(cycle, INTERVAL)


def search_seconds(floor: Floor, cap: int, ips: int, round_trip: float, repeats: int, seeds: int) -> float:
    """A search for the largest N at 5 s: its seeds and the runs it adds near the answer, then the repeats where
    the answer sits near a limit (every listed symbol held in a cycle close to 5 s, or a bound under the cap)."""
    answer = min(cap, floor.most_symbols(sustained=True, ips=ips), floor.latency_allows(round_trip))
    one = trial_seconds(floor, max(answer, 1), 1, round_trip, ips)
    near = answer < cap or cycle_seconds(floor, cap, round_trip, ips) > NEAR * INTERVAL
    if answer >= cap:   # one run at every listed symbol, and one per repeat where its cycle is near 5 s
        return one * (1 + (repeats - 1 if near else 0))
    return one * (seeds + SEARCH_EXTRA_RUNS + REPEAT_RUNS * (repeats - 1))


def peer_seconds(floor: Floor, n: int, cycles: int, round_trip: float, rate_limit: float) -> float:
    """The naive loop or the vision's design at N: per symbol a ticker, a book and a funding rate, each at
    least a round trip or ccxt's rateLimit times its cost (the book's weight where the budget counts weight)."""
    book = floor.per_symbol[0].weight if floor.weight_unit == "weight" else 1.0
    per_symbol = 2 * max(round_trip, rate_limit) + max(round_trip, rate_limit * book)
    cycle = n * PEER_SECONDS_PER_SYMBOL.get(floor.exchange, per_symbol)
    return 3.0 + cycle * (1 if cycle > PEER_CYCLE_CAP else cycles)


def estimate_seconds(args, floors: dict[str, dict[str, Floor]], listed: dict[str, int], round_trip: float,
                     rate_limits: dict[str, float], scaled_by_ips: tuple[str, ...]) -> dict[str, float]:
    """Seconds per phase of a run of `args` (bench/run.py parse_args). `floors`: exchange -> depth key -> Floor
    ("max", and binance's other depths); `rate_limits`: ccxt's default rateLimit per exchange, in seconds."""
    out = {"worker runs": 0.0, "searches": 0.0, "IP scaling": 0.0, "peers": 0.0, "in-process": 0.0}
    repeats = getattr(args, "repeats_near", REPEATS)
    for ex in args.exchanges:
        floor, cap = floors[ex]["max"], min(listed[ex], args.max_n or listed[ex])
        out["worker runs"] += sum(trial_seconds(floor, n, 1 if args.quick else 2, round_trip) for n in args.sizes)
        if args.search:
            out["searches"] += sum(search_seconds(f, cap, 1, round_trip, repeats, 2) for f in floors[ex].values())
        if args.ips and ex in scaled_by_ips:
            out["IP scaling"] += sum(search_seconds(floor, cap, k, round_trip, repeats, 3)
                                     for k in args.ip_counts if k > 1)
        peers = 1 if args.quick else 2
        out["peers"] += peer_seconds(floor, args.naive_n, peers, round_trip, rate_limits.get(ex, 0.05))
        out["peers"] += sum(peer_seconds(floor, n, peers, round_trip, rate_limits.get(ex, 0.05)) for n in args.vision_n)
        out["in-process"] += (INPROC_SECONDS + args.board_cycles * INTERVAL + 5
                              + args.soak_cycles / SOAK_CYCLES_PER_SECOND + 5)
    return out


def describe(phases: dict[str, float]) -> str:
    total = sum(phases.values())
    parts = ", ".join(f"{name} {seconds / 60:.0f}" for name, seconds in phases.items() if seconds)
    return f"about {total / 60:.0f} min ({parts} min)"
