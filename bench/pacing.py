"""The throttle beside CPU hogs: does a loaded host ever put one request too many into an exchange's window, and
what share of the published budget does the throttle keep? (issue 17, "The throttle can still earn a 429").

Usage (from the repository root; needs rabbitmqctl, as bench.run does):

    .venv/bin/python -m bench.pacing                        # 2 hogs, 6 cycles, every exchange; writes docs/
    .venv/bin/python -m bench.pacing --hogs 2 --cycles 6 --exchanges bitget,gateio --out /tmp/pacing
    .venv/bin/python -m bench.pacing --from-json docs/benchmarks-pacing.json   # only render the page again

Per exchange, on the simulator at real market sizes with every rate budget and 50 ms added to each answer
(bench.harness.Lab): the floor (bench/budget.py) gives the most symbols the throttle sustains at the default
depth (the whole market where it fits); a real worker.py watches them for `--cycles` cycles, once alone and
once beside `--hogs` busy-loop processes (started and stopped by PID). From the simulator's log: 429/418
answers (the exchange's own windows, as the simulator counts them), the peak share of the budget in any
window, the rate achieved on the budget the symbols draw from, and cycle times. Every conclusion on the page
is computed from these figures.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.budget import INTERVAL, Floor, measure_floor
from bench.harness import EXCHANGES, LATENCY, PY, ROOT, Lab, log, stop_process
from bench.workers import exchange_weight, trial

REFUSALS = ("429", "418", "403")   # too many requests, banned (Binance), banned (Bybit's bare 403)
HOG = "while True: pass"


# -- pure arithmetic (tests/unit/test_pacing.py) -----------------------------------------------------------
def budget_rate(floor: Floor, entries: list[dict], start: float, end: float) -> float:
    """Weight per second the requests that reached the exchange in [start, end) put on the budget the symbols
    draw from (the whole IP's, or the busiest per-symbol endpoint's): entries carry `path`, `time` and
    `weight` (the exchange's own rule)."""
    by_path: dict[str, float] = {}
    for e in entries:
        if start <= e["time"] < end:
            by_path[e["path"]] = by_path.get(e["path"], 0.0) + e["weight"]
    return floor.load(by_path) / (end - start) if end > start else 0.0


def measured_span(cycle_starts: list[float]) -> tuple[float, float] | None:
    """From the second cycle's start to the last cycle's start: whole cycles only, the cold first one (market
    load, new connections) left out when there are enough; None with fewer than two starts."""
    if len(cycle_starts) < 2:
        return None
    first = 1 if len(cycle_starts) >= 3 else 0
    return cycle_starts[first], cycle_starts[-1]


def book_phases(floor: Floor, entries: list[dict], cycle_starts: list[float]) -> list[tuple[float, float]]:
    """Per measured cycle, where the worker fetches books as fast as the throttle lets them go: from one
    window after its first per-symbol request (the budget's window starts empty after the bulk calls, so
    the first window runs ahead of the steady rate) to its last. A cycle whose books take less than two
    windows has no steady part (gate's 10 s, binance's 5 s windows) and gives none."""
    span = measured_span(cycle_starts)
    if span is None:
        return []
    per_symbol = {c.path for c in floor.per_symbol}
    bounds = [t for t in cycle_starts if span[0] <= t <= span[1]]
    phases = []
    for start, end in zip(bounds, bounds[1:]):
        times = [e["time"] for e in entries if e["path"] in per_symbol and start <= e["time"] < end]
        if len(times) >= 2 and max(times) - min(times) >= 2 * floor.window:
            phases.append((min(times) + floor.window, max(times)))
    return phases


def phase_rate(floor: Floor, entries: list[dict], phases: list[tuple[float, float]]) -> float | None:
    """Weight per second on the symbols' budget over the book phases together: a phase's last request is its
    end, so it is left out of the count (n requests span n - 1 intervals)."""
    weight = seconds = 0.0
    for start, end in phases:
        weight += budget_rate(floor, entries, start, end) * (end - start)
        seconds += end - start
    return weight / seconds if seconds > 0 else None


def cycles_to_fill(windows: list[float], cycles: int) -> int:
    """At least `cycles`, and enough that the measured cycles (the first is not) span the exchange's longest
    window: Binance counts a minute, and a shorter run could never fill it."""
    return max(cycles, math.ceil(max(windows, default=0.0) / INTERVAL) + 1)


def refusals(statuses: dict) -> int:
    return sum(statuses.get(s, 0) for s in REFUSALS)


def conclusions(runs: list[dict], hogs: int) -> list[tuple[str, bool | None, str]]:
    """(claim, held?, the figures behind it), computed from the runs: each run has exchange, hogs, refused,
    peak_share, achieved_share, bound (the throttle, not the market, set N), cycle_seconds_max."""
    loaded = [r for r in runs if r["hogs"] == hogs and hogs > 0]
    alone = [r for r in runs if r["hogs"] == 0]
    out = []
    for label, group in ((f"with {hogs} CPU hogs", loaded), ("without a hog", alone)):
        if group:
            bad = [f"{r['exchange']} {r['refused']}" for r in group if r["refused"]]
            out.append((f"0 x 429/418/403 on every exchange {label}", not bad,
                        ", ".join(bad) or f"0 on {', '.join(r['exchange'] for r in group)}"))
    if runs:
        peak = max(runs, key=lambda r: r["peak_share"])
        out.append(("no window of any exchange held more than its budget (peak share <= 100 %)",
                    peak["peak_share"] <= 1.0, f"highest {_pct(peak['peak_share'])} ({peak['exchange']}, "
                    f"{_hogs(peak['hogs'])})"))
    for label, group in ((f"with {hogs} CPU hogs", loaded), ("without a hog", alone)):
        for key, what in (("books_share", "while books are fetched (the throttle's pacing)"),
                          ("achieved_share", "over whole cycles (bulk calls included)")):
            bound = [r for r in group if r["bound"] and r.get(key) is not None]
            if bound:
                shares = [r[key] for r in bound]
                out.append((f"throughput kept {label} {what}, where the throttle sets N", None,
                            f"{_pct(min(shares))}-{_pct(max(shares))} of the published budget ("
                            + ", ".join(f"{r['exchange']} {_pct(r[key])} (rule {_pct(r['sustained_share'])})"
                                        for r in bound) + ")"))
    cost = hog_cost(runs, hogs)
    if cost:
        out.append((f"what {hogs} CPU hogs cost the achieved rate, where the throttle sets N", None,
                    ", ".join(f"{ex} {_signed_pct(c)}" for ex, c in cost.items())))
    return out


def hog_cost(runs: list[dict], hogs: int) -> dict[str, float]:
    """Per exchange where the throttle sets N: the achieved rate with hogs relative to without, minus one."""
    by = {(r["exchange"], r["hogs"]): r for r in runs}
    out = {}
    for (ex, h), r in by.items():
        base = by.get((ex, 0))
        if h == hogs and hogs > 0 and base and r["bound"] and r["achieved_share"] and base["achieved_share"]:
            out[ex] = r["achieved_share"] / base["achieved_share"] - 1
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _signed_pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _hogs(n: int) -> str:
    return "no hog" if n == 0 else f"{n} hog{'s' if n > 1 else ''}"


# -- the runs ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def cpu_hogs(count: int):
    """`count` processes that each keep one core busy until the block ends, stopped by PID whatever happens."""
    procs = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([PY, "-c", HOG], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            stop_process(p, 5)


def exchange_budgets(ex: str) -> list[tuple[float, float, bool]]:
    """(limit, window, per endpoint) of every budget the simulator enforces for `ex`, as the exchange
    publishes it: the peak share and the 429s are counted against these, not against the worker's own."""
    return [(b.limit, b.window, b.per_endpoint) for b in importlib.import_module(f"tests.simulator.{ex}").BUDGETS]


def run_exchange(lab: Lab, ex: str, hogs: int, cycles: int) -> list[dict]:
    sim = lab.sims[ex]
    sim.fresh()
    floor = measure_floor(ex, sim.api_url(ex))
    symbols = sim.symbols(ex)
    sustained = floor.most_symbols(sustained=True)
    n = min(sustained, len(symbols))
    windows = exchange_budgets(ex)
    cycles = cycles_to_fill([w for _, w, _ in windows], cycles)
    log(f"{ex}: the throttle sustains {sustained} symbols at depth {floor.shown_depth} (round trip "
        f"{1000 * floor.round_trip:.0f} ms), {len(symbols)} listed: N = {n}, {cycles} cycles")
    runs = []
    for count in dict.fromkeys((0, hogs)):
        with cpu_hogs(count) as pids:
            load = os.getloadavg()[0]
            if pids:
                log(f"  {count} CPU hogs: PIDs {', '.join(map(str, pids))}")
            since = time.time()
            result = trial(lab, ex, floor, symbols[:n], f"pacing, {_hogs(count)}", measured=cycles)
            peak = sim.get("requests", exchange=ex, since=since)["peak_share"]
            entries = sim.entries(ex, since)
        runs.append(summary(ex, floor, result, entries, peak, count, load, bound=n < len(symbols)))
        runs[-1]["exchange_budgets"] = windows
        r = runs[-1]
        log(f"  {ex} {_hogs(count)}: {r['refused']} refused, peak {_pct(r['peak_share'])}, achieved "
            f"{_pct(r['achieved_share'])} of the budget, slowest cycle {r['cycle_seconds_max'] or float('nan'):.2f} s")
    return runs


def summary(ex: str, floor: Floor, result: dict, entries: list[dict], peak: float, hogs: int, load: float,
            bound: bool) -> dict:
    for e in entries:
        e["weight"] = exchange_weight(ex, e)
    starts = [e["time"] for e in entries if e["path"] == floor.bulk[0].path]
    span = measured_span(starts)
    in_books = phase_rate(floor, entries, book_phases(floor, entries, starts))
    published = floor.limit / floor.window
    cycles = result["cycles"]
    return {"exchange": ex, "hogs": hogs, "load_before": load, "n": result["n"], "depth": floor.shown_depth,
            "bound": bound, "budget": floor.describe_budget(), "round_trip": floor.round_trip,
            "sustained_share": floor.sustained_share(), "statuses": result["statuses"],
            "refused": refusals(result["statuses"]), "rate_limited": result["rate_limited"], "peak_share": peak,
            "achieved_share": budget_rate(floor, entries, *span) / published if span else None,
            "books_share": None if in_books is None else in_books / published,
            "span_seconds": span[1] - span[0] if span else None, "cycles_measured": len(cycles),
            "requests_per_cycle": sum(c["requests"] for c in cycles) / len(cycles) if cycles else None,
            "cycle_seconds": [c["seconds"] for c in cycles], "cycle_seconds_max": result["cycle_seconds_max"],
            "books_short": sum(1 for c in cycles if c["books"] < result["n"]),
            "worker_cpu_share": result.get("worker_cpu_share"), "broker_outage": result["broker_outage"],
            "floor": floor.to_dict()}


# -- the page --------------------------------------------------------------------------------------------------
def render(results: dict) -> str:
    meta, runs, hogs = results["meta"], results["runs"], results["hogs"]
    lines = ["# The throttle beside CPU hogs", "",
             f"Generated by `python -m bench.pacing` ({meta['date']}, commit {meta['commit']}, "
             f"{meta['seconds'] / 60:.0f} min). Machine: {meta['cores']} cores ({meta['cpu']}), Python "
             f"{meta['python']}, ccxt {meta['ccxt']}; load average before the run {meta['load_start']:.2f} "
             f"(1 min; other engineers' tests share this machine: that is noise in these figures, not removed).", "",
             f"Per exchange, on the simulator at real market sizes with its rate budgets and {1000 * meta['latency']:.0f} ms "
             "added to every answer, a real `worker.py` watches the most symbols the throttle sustains at the default "
             "depth (bench/budget.py: published limit / (window + 10 ms + the book's round trip) per window, the "
             "whole market where it fits) for "
             f"{results['cycles']} cycles at least (as many more as the exchange's longest window needs: Binance's "
             f"minute), once alone and once beside {hogs} CPU hogs (busy loops, one core each). "
             "Refused: 429, 418 and 403 answers, counted by the simulator in the exchange's own windows. Peak: the "
             "largest share of a published budget any window held. Achieved: weight per second on the budget the "
             "symbols draw from (the IP's, or the busiest per-symbol endpoint's where the exchange counts each "
             "apart), as a share of the published rate: while fetching books, from one window after each measured "
             "cycle's first per-symbol request to its last, where that is a window or more (the throttle's steady "
             "pace; none where the books of a cycle take less than two windows); over cycles, from the second "
             "cycle's start to the last cycle's (the bulk calls, which leave a per-endpoint budget idle, included). Rule: "
             "what the throttle sustains by its arithmetic, window / (window + 10 ms + round trip).", "",
             "## Conclusions", ""]
    for claim, held, figures in conclusions(runs, hogs):
        mark = "" if held is None else ("**yes**: " if held else "**NO**: ")
        lines.append(f"- {claim}: {mark}{figures}")
    lines += ["", "## Per exchange", ""]
    for ex in dict.fromkeys(r["exchange"] for r in runs):
        mine = [r for r in runs if r["exchange"] == ex]
        first = mine[0]
        lines += [f"### {ex}", "",
                  f"Budget the worker keeps {first['budget']}; the exchange's own, as the simulator enforces it: "
                  + "; ".join(f"{lim:g} / {win:g} s{' per endpoint' if pe else ''}"
                              for lim, win, pe in first.get("exchange_budgets", [])) + f"; depth {first['depth']}; round trip of a book "
                  f"{1000 * first['round_trip']:.0f} ms; the rule sustains {_pct(first['sustained_share'])} of the "
                  f"budget; N = {first['n']} ({'the throttle sets it' if first['bound'] else 'the whole market'}).", "",
                  "| run | load before | N | requests per cycle | achieved while fetching books | achieved over "
                  "cycles | peak window share | 429/418/403 | slowest cycle, s | cycles measured |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in mine:
            lines.append(f"| {_hogs(r['hogs'])} | {r['load_before']:.2f} | {r['n']} | "
                         f"{_num(r['requests_per_cycle'], '{:.0f}')} | {_pct(r.get('books_share'))} | "
                         f"{_pct(r['achieved_share'])} | "
                         f"{_pct(r['peak_share'])} | {r['refused']} | {_num(r['cycle_seconds_max'], '{:.2f}')} | "
                         f"{r['cycles_measured']}{' (broker outage)' if r['broker_outage'] else ''} |")
        for r in mine:
            for x in r["rate_limited"][:3]:
                lines.append(f"\n{_hogs(r['hogs'])}: {x['status']} on {x['path']} after {x['same_path_1s']} requests "
                             f"to it ({x['all_1s']} in all) within the second before.")
        lines.append("")
    slow = [r for r in runs if (r["cycle_seconds_max"] or 0) > INTERVAL]
    if slow:
        lines += ["Cycles over 5 s: " + ", ".join(f"{r['exchange']} ({_hogs(r['hogs'])}) "
                                                    f"{r['cycle_seconds_max']:.2f} s" for r in slow)
                  + ". N is what the budget holds; a cycle's round trips and CPU (here shared with the hogs and the "
                  "simulator) can take longer than the budget's 5 s.", ""]
    return "\n".join(lines)


def _num(x, fmt: str) -> str:
    return "–" if x is None else fmt.format(x)


# -- the command --------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="the throttle beside CPU hogs (see the module docstring)")
    p.add_argument("--hogs", type=int, default=2, help="CPU-hog processes beside the worker (2)")
    p.add_argument("--cycles", type=int, default=6, help="cycles measured per run after the first (6)")
    p.add_argument("--exchanges", default=",".join(EXCHANGES), type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--out", help="folder for benchmarks-pacing.md/.json (default docs/)")
    p.add_argument("--from-json", help="only render the page from an earlier benchmarks-pacing.json")
    args = p.parse_args(argv)
    unknown = set(args.exchanges) - set(EXCHANGES)
    if unknown or args.hogs < 0 or args.cycles < 1:
        p.error(f"--exchanges from {', '.join(EXCHANGES)} (unknown: {', '.join(sorted(unknown)) or 'none'}); "
                "--hogs >= 0; --cycles >= 1")
    return args


def measure(args) -> dict:
    from bench.run import meta   # bench.run's machine description, without its page
    load_start, started = os.getloadavg()[0], time.time()
    work = Path(tempfile.mkdtemp(prefix="futures_scan_pacing_"))
    runs = []
    with Lab(work) as lab:
        for ex in args.exchanges:
            runs += run_exchange(lab, ex, args.hogs, args.cycles)
        real_sizes = lab.sims.real_sizes
    info = meta(started, False, real_sizes)
    info.update(load_start=load_start, latency=LATENCY, work=str(work))
    return {"meta": info, "hogs": args.hogs, "cycles": args.cycles, "runs": runs}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out or ROOT / "docs")
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        if not shutil.which("rabbitmqctl"):
            print("rabbitmqctl not found: run scripts/setup.sh first", file=sys.stderr)
            return 2
        results = measure(args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "benchmarks-pacing.json").write_text(json.dumps(results, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    page = out / "benchmarks-pacing.md"
    page.write_text(render(results) + "\n")
    for claim, held, figures in conclusions(results["runs"], results["hogs"]):
        print(f"{'' if held is None else ('yes' if held else 'NO'):>4}  {claim}: {figures}")
    log(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
