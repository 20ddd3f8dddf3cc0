"""Runs of real `worker.py` processes: requests and weight per cycle from the simulator's log, cycle times
from the worker's own statistics messages, and the largest N that holds the 5 s cadence.
"""
from __future__ import annotations

import importlib
import json
import statistics
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl

from bench.budget import INTERVAL, Floor, request_name
from bench.harness import LATENCY, Lab, cpu_seconds, log, rss_mb, stop_process, wait_for_broker


def exchange_weight(ex: str, entry: dict) -> float:
    """A logged request's weight by the exchange's own rules (the simulator's dialect), independent of what
    the worker's throttle thinks it costs. A POST's body is logged as its fields (Hyperliquid weighs by type)."""
    dialect = importlib.import_module(f"tests.simulator.{ex}")
    query = dict(parse_qsl(entry["query"]))
    body = json.dumps(query).encode() if entry.get("method") == "POST" else b""
    return dialect.weight(SimpleNamespace(path=entry["path"], query=query, body=body))


def named(entries: list[dict]) -> list[dict]:
    """The log's entries, each with its request's name as the floor's charges name it (bench.budget.request_name:
    Hyperliquid's /info by its body's type)."""
    for e in entries:
        e["request"] = request_name(e["path"], e.get("method", "GET"), e["query"])
    return entries


def trial(lab: Lab, ex: str, floor: Floor, symbols: list[str], purpose: str, measured: int = 2,
          retry: bool = True, proxies: list[str] = ()) -> dict:
    """worker.py watching `symbols` until `measured` cycles after the first have ended (fewer when cycles are
    long), then stopped. Cycle 1 (cold connections) counts only when it is the only one. `proxies`: more
    addresses for the worker (docs/reference.md, "Past one IP"), each counted apart by the simulator."""
    sim = lab.sims[ex]
    sim.fresh()
    n, depth = len(symbols), floor.depth
    name = f"worker-{ex}-{n}-{depth or 'fixed'}-{1 + len(proxies)}ip"
    config = lab.write_config(name, ex, symbols, depth=depth, proxies=list(proxies))
    t0 = time.time()
    proc, logf = lab.start_worker(config, ex, name)
    seen = {}
    try:
        seen = _watch(lab, ex, proc, t0, measured)
    finally:
        seen["rss_end_mb"] = rss_mb(proc.pid)
        seen.update(_cpu_shares(seen.pop("cpu_from", None), proc.pid, sim.proc.pid))
        stop_process(proc)
        logf.close()
    t_end = time.time()
    result = _measure(lab, ex, floor, n, proc.pid, t0, t_end)
    result.update(purpose=purpose, ips=1 + len(proxies), **seen)
    if (result["broker_outage"] or not result["cycles"]) and retry:
        log("  the broker was lost during this run (someone restarted it?): waiting for it, then once more")
        wait_for_broker(lab.vhost.port)
        return trial(lab, ex, floor, symbols, purpose, measured, retry=False, proxies=proxies)
    _say(result)
    return result


def _watch(lab: Lab, ex: str, proc, t0: float, measured: int) -> dict:
    """Wait for the worker's cycles; its start-up to first snapshot, RSS after cycle 1."""
    first_snapshot = rss_warm = need = cpu_from = None
    deadline = t0 + 150   # binance's first cycle at 100 symbols takes ~52 s
    while True:
        time.sleep(0.05)
        if first_snapshot is None:
            snaps = lab.listener.snapshots_of(ex, t0)
            first_snapshot = snaps[0][1] - t0 if snaps else None
        msgs = lab.listener.stats_of(proc.pid)
        if msgs and need is None:
            rss_warm = rss_mb(proc.pid)
            cpu_from = (time.monotonic(), cpu_seconds(proc.pid), cpu_seconds(lab.sims[ex].proc.pid))
            first = msgs[0]["last_cycle_seconds"]
            # Long cycles: fewer of them, but cycles that overrun share windows with their neighbours, so a few.
            need = 1 + (measured if first <= 8 else 3 if first <= 30 else 0)
            deadline = time.time() + need * max(first, INTERVAL) * 1.5 + 20
        if need is not None and len(msgs) >= need:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"worker {ex} exited ({proc.returncode}); see its log in {lab.work}")
        if time.time() > deadline:
            log(f"  {ex}: timed out waiting for cycles ({len(msgs)} of {need})")
            break
    return {"first_snapshot_seconds": first_snapshot, "rss_warm_mb": rss_warm, "cpu_from": cpu_from}


def _cpu_shares(cpu_from, worker_pid: int, sim_pid: int) -> dict:
    """Share of one core the worker and the simulator used from the end of cycle 1 to now: on this machine
    they share its cores, so a worker that cannot keep up may be short of CPU rather than of budget."""
    if cpu_from is None:
        return {}
    started, worker0, sim0 = cpu_from
    seconds, worker1, sim1 = time.monotonic() - started, cpu_seconds(worker_pid), cpu_seconds(sim_pid)
    if seconds <= 0 or None in (worker0, worker1, sim0, sim1):
        return {}
    return {"worker_cpu_share": (worker1 - worker0) / seconds, "simulator_cpu_share": (sim1 - sim0) / seconds}


def _measure(lab: Lab, ex: str, floor: Floor, n: int, pid: int, t0: float, t_end: float) -> dict:
    durations = {}   # cycle number -> last_cycle_seconds (the final message on SIGTERM repeats the last)
    for m in lab.listener.stats_of(pid):
        if m.get("cycles", 0) >= 1:
            durations.setdefault(m["cycles"], m["last_cycle_seconds"])
    outage = any(t0 <= t <= t_end for t, _ in lab.listener.outages) or any(
        m.get("totals", {}).get("publish_failed", 0) for m in lab.listener.stats_of(pid))
    # From the process start on: a request a previous worker had in flight when it was stopped is logged
    # (with its arrival time) only after the simulator's reset, and must not open a cycle here.
    entries = named(lab.sims[ex].entries(ex, t0))
    cycles = _cycles(ex, floor, entries, durations, t_end)
    statuses: dict[str, int] = {}
    for e in entries:
        statuses[str(e["status"])] = statuses.get(str(e["status"]), 0) + 1
    boards = lab.listener.boards_of(ex, t0, t_end)
    per_ip: dict[str, dict] = {}
    for e in entries:
        counts = per_ip.setdefault(e.get("client", "?"), {"requests": 0, "429": 0, "418": 0})
        counts["requests"] += 1
        if e["status"] in (429, 418):
            counts[str(e["status"])] += 1
    result = {"exchange": ex, "n": n, "depth": floor.depth, "cycles": cycles,
              "cycle_seconds_max": max((c["seconds"] for c in cycles), default=None),
              "cycle_seconds_mean": statistics.mean(c["seconds"] for c in cycles) if cycles else None,
              "first_cycle_seconds": durations.get(1), "broker_outage": outage, "statuses": statuses,
              "delays": _snapshot_delays(lab, ex, floor, entries, t0, t_end), "rate_limited": _rate_limited(entries),
              "boards": len(boards), "board_markets": boards[-1][2] if boards else None,
              "cycles_run": max(durations, default=0), "per_ip": per_ip}
    # A cadence the throttle keeps up for good: a short run alone would flatter a load above the budget,
    # because the first windows start empty and a sliding window lets a burst through.
    result["budget_share"] = max((c["share"] for c in cycles), default=0.0)
    result["holds"] = (bool(cycles) and result["cycle_seconds_max"] <= INTERVAL
                       and all(c["books"] == n for c in cycles) and result["budget_share"] <= 1.0)
    return result


def _cycles(ex: str, floor: Floor, entries: list[dict], durations: dict, t_end: float) -> list[dict]:
    """Cycle k runs from its first bulk call to the next cycle's first bulk call, in the simulator's log."""
    marker = floor.bulk[0].path
    starts = [e["time"] for e in entries if e["request"] == marker]
    windows = {k: (starts[k - 1], starts[k] if k < len(starts) else t_end) for k in durations if k <= len(starts)}
    chosen = sorted(windows)[1:] if len(windows) > 1 else sorted(windows)
    cycles = []
    for k in chosen:
        start, end = windows[k]
        inside = [e for e in entries if start <= e["time"] < end]
        by_ip: dict[str, dict[str, float]] = {}   # each address has the whole budget: loads are per address
        for e in inside:
            by_path = by_ip.setdefault(e.get("client", "?"), {})
            by_path[e["request"]] = by_path.get(e["request"], 0.0) + exchange_weight(ex, e)
        books = sum(1 for e in inside if e["request"] == floor.book_path)
        per_symbol = {c.path for c in floor.per_symbol}
        cycles.append({"cycle": k, "seconds": durations[k], "requests": len(inside), "books": books,
                       "per_symbol": sum(1 for e in inside if e["request"] in per_symbol),
                       "bulk": sum(1 for e in inside if e["request"] not in per_symbol),
                       "weight": sum(sum(p.values()) for p in by_ip.values()),
                       "load": max((floor.load(p) for p in by_ip.values()), default=0.0),
                       "share": max((floor.share(p) for p in by_ip.values()), default=0.0),
                       "paths": sorted({path for p in by_ip.values() for path in p})})
    return cycles


QUOTES = ("USDT", "USDC")


def _symbol_of(entry: dict, watched: set[str]) -> str | None:
    """The watched symbol (BASEQUOTE, as in routing keys) a per-symbol request names in its query: BTCUSDT,
    BTC_USDT, BTC-USDT-SWAP (OKX), or a coin alone (Hyperliquid's l2Book {"coin": "BTC"}, routed BTCUSDC)."""
    for value in dict(parse_qsl(entry["query"])).values():
        key = value.replace("-", "").replace("_", "").upper()
        for candidate in (key, key.removesuffix("SWAP"), *(key + quote for quote in QUOTES)):
            if candidate in watched:
                return candidate
    return None


def _snapshot_delays(lab: Lab, ex: str, floor: Floor, entries: list[dict], since: float, until: float) -> list[float]:
    """For each snapshot received: receipt time minus the simulator's answer to the last per-symbol request it
    waited for (book or extra): log time, taken on arrival, + the added latency; the time to build the answer
    is not subtracted, so these are slight over-estimates."""
    received = lab.listener.snapshots_of(ex, since, until)
    watched = {sym for sym, _ in received}
    per_symbol = {c.path for c in floor.per_symbol}
    answered: dict[str, list[float]] = {}
    for e in entries:
        if e["request"] in per_symbol and e["status"] == 200:
            sym = _symbol_of(e, watched)
            if sym:
                answered.setdefault(sym, []).append(e["time"] + LATENCY)
    out = []
    for sym, t in received:
        before = [a for a in answered.get(sym, ()) if a <= t]
        if before:
            out.append(t - before[-1])
    return out


def _rate_limited(entries: list[dict]) -> list[dict]:
    """Evidence for every 429/418: how many requests (same path, and all) the simulator saw in the second before."""
    return [{"time": e["time"], "path": e["request"], "status": e["status"],
             "same_path_1s": sum(1 for x in entries if x["request"] == e["request"] and e["time"] - 1 < x["time"] <= e["time"]),
             "all_1s": sum(1 for x in entries if e["time"] - 1 < x["time"] <= e["time"])}
            for e in entries if e["status"] in (429, 418)]


def _say(r: dict) -> None:
    c = r["cycles"][-1] if r["cycles"] else {}
    nan = float("nan")
    log(f"  {r['exchange']} N={r['n']} depth={r['depth'] or 'fixed'} IPs={r['ips']} ({r['purpose']}): cycle {r['cycle_seconds_max'] or nan:.2f} s"
        f" max over {len(r['cycles'])}, {c.get('requests')} req ({c.get('bulk')} bulk + {c.get('per_symbol')} per"
        f" symbol), weight {c.get('weight')}, boards {r['boards']} of {r['board_markets']} markets,"
        f" first snapshot {r['first_snapshot_seconds'] or nan:.2f} s, rss {r['rss_warm_mb'] or nan:.0f}->"
        f"{r['rss_end_mb'] or nan:.0f} MB, statuses {r['statuses']}{', BROKER OUTAGE' if r['broker_outage'] else ''}")


# -- the largest N that holds the 5 s cadence ----------------------------------------------------------------
REPEATS = 3     # searches near a limit run this many times: one run's answer did not hold on another machine
NEAR = 0.8      # a search that held every listed symbol is near a limit when its slowest cycle took this share of 5 s


def search_max_n(run, known: dict[int, dict], cap: int, budget: int, ceiling: int | None = None) -> dict:
    """Between the largest N that held and the smallest that did not, at most `budget` more runs, guided by a
    straight line through their cycle times. `run(n)` runs one trial. With nothing failing yet, the first
    probe is at `ceiling` (default `cap`): one over what the published budget allows must fail, so a search
    need not wait for a run at every listed symbol's slow cycles."""
    ceiling = min(cap, ceiling or cap)
    holding = sorted(n for n, r in known.items() if r["holds"])
    failing = sorted(n for n, r in known.items() if not r["holds"])
    lo, hi = (holding[-1] if holding else 0), (failing[0] if failing else None)
    if hi is not None and hi <= lo:   # a noisy bracket (a larger N held): the largest that held below it
        lo = max((n for n in holding if n < hi), default=0)
    if hi is None and lo < ceiling and budget > 0:
        known[ceiling] = run(ceiling)
        budget -= 1
        lo, hi = (ceiling, None) if known[ceiling]["holds"] else (lo, ceiling)
    while hi is not None and hi - lo > 1 and budget > 0:
        t_lo = known[lo]["cycle_seconds_max"] if lo in known else 0.0
        guess = lo + (INTERVAL - t_lo) * (hi - lo) / max(known[hi]["cycle_seconds_max"] - t_lo, 1e-6)
        # Cycle time is not linear in N once the throttle binds: keep every guess inside the middle half.
        quarter = (hi - lo) / 4
        n = min(max(int(guess), int(lo + quarter), lo + 1), int(hi - quarter), hi - 1)
        known[n] = run(n)
        budget -= 1
        lo, hi = (n, hi) if known[n]["holds"] else (lo, n)
    return {"largest": lo, "smallest_failing": hi, "capped": hi is None and lo == cap,
            "exact": (hi is None and lo == cap) or (hi is not None and hi - lo == 1)}


def repeat_search(run, previous: dict, cap: int, budget: int, ceiling: int | None = None) -> dict:
    """The search once more, on fresh runs only: seeded at the previous answer and one over it, and where the
    previous answer fails now, 5% under it, so that the usual repeat costs two or three runs."""
    largest, known = previous["largest"], {}
    for n in (largest, largest + 1):
        if 0 < n <= min(cap, ceiling or cap):
            known[n] = run(n)
    if largest in known and not known[largest]["holds"] and largest > 1:
        lower = largest - max(1, largest // 20)
        known[lower] = run(lower)
    return search_max_n(run, known, cap, budget, ceiling)


def needs_repeats(found: dict, bounds: list[int], cycle_at_largest: float | None) -> bool:
    """Whether a search's answer sits near a limit, so that one run of it is not enough: it stopped short of
    every listed symbol, a bound on paper (budget, throttle, latency, CPU) allows no more than it searched, or
    every symbol held but with a cycle close to the cadence (the cores, shared with the simulator, may not
    hold it on another run)."""
    if not found["capped"]:
        return True
    if any(b is not None and b <= found["cap"] for b in bounds):
        return True
    return cycle_at_largest is not None and cycle_at_largest > NEAR * INTERVAL


def summarize(runs: list[dict]) -> dict:
    """Repeated searches as one figure: the median (the lower middle one for an even count: an N that held in
    a run), the lowest and the highest, every run kept. The target is judged on the median; "first failing" and
    capped/exact are those of the run that gave the median."""
    values = [r["largest"] for r in runs]
    median = statistics.median_low(values)
    at_median = next(r for r in runs if r["largest"] == median)
    return {"largest": median, "lowest": min(values), "highest": max(values), "values": values,
            "smallest_failing": at_median["smallest_failing"], "capped": at_median["capped"],
            "exact": at_median["exact"], "runs": runs}
