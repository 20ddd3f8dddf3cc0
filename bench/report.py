"""The benchmark's page (docs/benchmarks.md) and plot, from the figures alone: every "met", every comparison
with a target and every sentence that says why a target is missed is computed from the measurements and the
floors (bench/budget.py), so that the page cannot say more than the run showed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.budget import INTERVAL, Floor
from bench.harness import EXCHANGES, log, percentile
from bench.workers import NEAR, REPEATS

NAIVE_TARGET = 0.4          # the product's cycle at most this share of the naive loop's
CPU_SHARE_TARGET = 0.30     # the product's CPU at most this share of ccxt's (per snapshot, and per board)
BOARD_CORE_TARGET = 0.05    # the whole board under this share of one core at the 5 s cadence
RSS_TARGET_MB = 100
RSS_GROWTH_TARGET_PCT = 5
START_TARGET_SECONDS = 3


@dataclass
class Target:
    what: str
    result: str
    met: bool | None
    why: list[str]   # where missed: the figures that show it


def _f(v, fmt="{:.2f}", none="–"):
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _ok(flag) -> str:
    return "–" if flag is None else ("yes" if flag else "**no**")


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _floor(results: dict, ex: str, depth_key: str = "max") -> Floor | None:
    data = results.get("floors", {}).get(ex, {}).get(depth_key)
    return Floor.from_dict(data) if data else None


def _shown_depth(results: dict, ex: str, depth) -> str:
    """A trial's depth as the page shows it: the floor's (levels where the depth is max or fixed)."""
    floor = _floor(results, ex)
    if floor is None or depth != floor.depth:
        return str(depth)
    return floor.shown_depth


def _exchanges(results: dict) -> list[str]:
    return [ex for ex in EXCHANGES if results["trials"].get(ex) or results.get("board", {}).get(ex)]


def _trial(results: dict, ex: str, n: int, purpose: str = "cost") -> dict | None:
    return next((t for t in results["trials"].get(ex, []) if t["n"] == n and t["purpose"] == purpose), None)


# -- sections: each returns its lines and adds its targets -------------------------------------------------
def requests_section(results: dict, targets: list[Target]) -> list[str]:
    lines = ["## 1. Requests and weight per cycle", "",
             "Requests the simulator logged inside each measured cycle (from the cycle's first bulk call to the "
             "next cycle's), beside the floor: the venue's bulk calls once, then per watched symbol its book and its "
             "per-symbol extras (`VENUES[...].symbol_extras`), as the worker's own throttle charges them "
             "(bench/budget.py). Weight: each exchange's documented request weight (the simulator's `weight()`); "
             "Binance and Hyperliquid count weight (Hyperliquid's by the body's type of each `POST /info`, shown as "
             "`/info?type=...`), the others requests. The board is on: it must cost no request. Cycle "
             "time: the worker's `last_cycle_seconds`, slowest measured cycle.", "",
             "| exchange | N | requests / cycle (bulk + per symbol) | floor | weight / cycle | floor | boards / cycles | board: markets / perpetuals | cycle, s | 429 / 418 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    over, boards_missing = [], []
    for ex in _exchanges(results):
        for t in results["trials"][ex]:
            floor = _floor(results, ex)
            if t["purpose"] != "cost" or not t["cycles"] or floor is None:
                continue
            c = max(t["cycles"], key=lambda c: c["requests"])
            if c["requests"] > floor.requests(t["n"]):
                beyond = sorted(set(c["paths"]) - {x.path for x in floor.bulk + floor.per_symbol})
                over.append(f"{ex} N={t['n']}: {c['requests']} requests against a floor of {floor.requests(t['n'])}"
                            + (f"; paths beyond the floor: {', '.join(beyond)}" if beyond else ""))
            perpetuals = floor.notes.get("perpetuals")
            if t["boards"] < t["cycles_run"] or t["board_markets"] != perpetuals:
                boards_missing.append(f"{ex} N={t['n']}: {t['boards']} boards in {t['cycles_run']} cycles, the last "
                                      f"with {t['board_markets']} markets of {perpetuals} perpetuals ccxt loads")
            lines.append(f"| {ex} | {t['n']} | {c['requests']} ({c['bulk']} + {c['per_symbol']}) | "
                         f"{floor.requests(t['n'])} | {c['weight']:g} | {floor.weight(t['n']):g} | "
                         f"{t['boards']} / {t['cycles_run']} | {t['board_markets']} / {perpetuals} | "
                         f"{_f(t['cycle_seconds_max'])} | "
                         f"{t['statuses'].get('429', 0)} / {t['statuses'].get('418', 0)} |")
    lines += ["", "The floor's requests, per exchange (bulk once per cycle; then per symbol):", ""]
    for ex in _exchanges(results):
        floor = _floor(results, ex)
        if floor:
            lines.append(f"- {ex}: " + ", ".join(f"`{c.path}` ({c.weight:g})" for c in floor.bulk) + "; per symbol: "
                         + ", ".join(f"`{c.path}` ({c.weight:g})" for c in floor.per_symbol))
    lines.append("")
    measured = any(t["purpose"] == "cost" and t["cycles"] for ex in _exchanges(results) for t in results["trials"][ex])
    targets.append(Target("requests per cycle at the floor (bulk calls + book and extras per symbol), board on",
                          "see section 1", not over if measured else None, over))
    targets.append(Target("a board every cycle with every listed perpetual (worker runs)", "see section 1",
                          not boards_missing if measured else None, boards_missing))
    bad = {ex: sum(t["statuses"].get("429", 0) + t["statuses"].get("418", 0) for t in results["trials"][ex])
           for ex in _exchanges(results)}
    why = [f"{ex}: " + "; ".join(f"{x['status']} on {x['path']} at N={t['n']}, {x['same_path_1s']} requests to "
                                 f"that path in the second before" for t in results["trials"][ex]
                                 for x in t["rate_limited"][:2]) for ex, n in bad.items() if n]
    targets.append(Target("no 429 or 418 (worker runs)", ", ".join(f"{ex} {n}" for ex, n in bad.items()),
                          not any(bad.values()) if bad else None, why))
    return lines


def cadence_section(results: dict, targets: list[Target]) -> list[str]:
    if not results.get("max_n"):
        return []
    lines = ["## 2. Most symbols at the 5 s cadence", "",
             "The largest N whose measured cycles all took at most 5 s with every book fetched, and whose load on "
             "the budget fits what the worker's throttle sustains (a sliding window starts empty and lets a short "
             "run burst), found by a search between the runs of section 1 (each point a fresh worker process), "
             "never above one over what the published budget allows. Where the answer sits near a limit (the "
             "search stopped short of every listed perpetual, a bound below allows no more, or every one held in "
             f"a cycle over {_pct(NEAR)} of {INTERVAL:g} s) the search is repeated on fresh runs, "
             f"{results['meta'].get('repeats_near', REPEATS)} in all: "
             "the table gives the median (the lower middle one for an even count) and the lowest, **the target is "
             "judged on the median**, and every run is in benchmarks.json. "
             "Target: what the published budget allows (bench/budget.py), or every perpetual the simulator lists "
             "where the budget allows more. Latency allows: the most symbols the round trips leave room for (the bulk "
             "calls one after another, then the per-symbol requests with the venue's `book_threads` in flight). CPU "
             "allows: the most symbols one core can fetch, parse and publish in 5 s, at the worker's CPU per symbol "
             "measured in section 5 (HTTP, ccxt's decode and parse, the product's own), the venue's maximum depth. "
             "Bound by: what stopped the median on this machine, where the simulator builds every answer on the "
             "same cores as the worker (below the table: the figures, and what a dedicated host would change).", "",
             "| exchange | depth | largest N at 5 s: median | lowest (runs) | first failing N: cycle, s | budget | budget allows | throttle sustains | latency allows | CPU allows | listed | target | met | bound by |",
             "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    notes = []
    for ex, searches in results["max_n"].items():
        for depth_key, found in searches.items():
            floor = _floor(results, ex, depth_key)
            listed = results["listed"].get(ex)
            cap = found.get("cap") or listed
            target = min(floor.most_symbols(), cap)
            largest, hi = found["largest"], found["smallest_failing"]
            failing = _slowest_at(results, ex, hi, floor.depth, 1, failed=True)
            shown = f"{largest}" + ("" if found["exact"] else f" (≥{largest}, <{hi})")
            if found["capped"]:
                shown = f"≥ {largest} (every one searched)"
            met = largest >= target
            bound, why = bound_of(results, ex, depth_key, found, floor, 1)
            notes.append(f"- {ex}, depth {floor.shown_depth}: {why}")
            lines.append(f"| {ex} | {floor.shown_depth} | {shown} | {_spread(found)} | "
                         f"{f'{hi}: ' + _f(failing['cycle_seconds_max']) if failing else '–'} | "
                         f"{floor.describe_budget()} | {floor.most_symbols()} | {floor.most_symbols(sustained=True)} | "
                         f"{floor.latency_allows(results['meta']['latency'])} | {cpu_allows(results, ex, depth_key) or '–'} | "
                         f"{listed} | {target} | {_ok(met)} | {bound} |")
            targets.append(Target(f"{ex}: {target} symbols at 5 s, depth {floor.shown_depth} (median)",
                                  shown + _spread_words(found), met,
                                  [] if met or not failing else
                                  [cadence_miss(floor, largest, target, failing, results["meta"]["latency"]) +
                                   cpu_miss(results, ex, depth_key, failing)]))
    lines += ["", "What bounds each figure on this 2-core machine, and what a dedicated host would change:", ""]
    return lines + notes + [""]


def _spread(found: dict) -> str:
    """The lowest of repeated searches and every run's answer; one search: its answer alone."""
    values = found.get("values") or [found["largest"]]
    if len(values) == 1:
        return f"{values[0]} (one search)"
    return f"{min(values)} ({' / '.join(map(str, values))})"


def _spread_words(found: dict) -> str:
    values = found.get("values") or []
    return f" (median of {len(values)} searches: {', '.join(map(str, values))})" if len(values) > 1 else ""


def _slowest_at(results: dict, ex: str, n: int | None, depth, ips: int, failed: bool = False) -> dict | None:
    """Of the runs at N (section 1's and the searches'; repeats measure an N more than once), the slowest;
    `failed`: of those that did not hold, where any did not."""
    if not n:
        return None
    runs = [t for t in results["trials"].get(ex, []) if t["n"] == n and str(t["depth"]) == str(depth)
            and t.get("ips", 1) == ips and t["cycles"]]
    if failed and any(not t.get("holds", True) for t in runs):
        runs = [t for t in runs if not t.get("holds", True)]
    return max(runs, key=lambda t: t["cycle_seconds_max"] or 0.0, default=None)


def bound_of(results: dict, ex: str, depth_key: str, found: dict, floor: Floor, ips: int) -> tuple[str, str]:
    """What stopped a search's median on this machine, in a word and in figures, and what a dedicated host (the
    exchange's servers build the answers, not the simulator on the worker's cores) would change: the bounds on
    paper beside the CPU the worker and the simulator used at the answer and at the first failing N."""
    cores = results["meta"].get("cores") or 1
    median, cap = found["largest"], found.get("cap") or results["listed"].get(ex)
    paper = {"the throttle": floor.most_symbols(sustained=True, ips=ips),
             "the round trips": floor.latency_allows(results["meta"]["latency"]),
             "the worker's CPU": cpu_allows(results, ex, depth_key), "the listed perpetuals": cap}
    paper = {k: v for k, v in paper.items() if v is not None}
    at, failing = _slowest_at(results, ex, median, floor.depth, ips), _slowest_at(
        results, ex, found["smallest_failing"], floor.depth, ips, failed=True)
    spent = "; ".join(x for x in (_cpu_words(at, failing, cores), _failed_by(failing)) if x) or "CPU not measured"
    dedicated = min(paper, key=paper.get)
    host = f"a dedicated host would allow up to {paper[dedicated]} ({dedicated})"
    if found["capped"]:
        return _market_bound(median, at, spent, host)
    return _short_bound(results, floor, ips, median, paper, spent, host, _busy(at, failing, cores))


def _market_bound(median: int, at: dict | None, spent: str, host: str) -> tuple[str, str]:
    """Every listed perpetual held: with room, or in a cycle so close to 5 s that another run may not hold."""
    cycle = at and at["cycle_seconds_max"]
    if cycle is not None and cycle > NEAR * INTERVAL:
        return "the market; the cycle near 5 s", (
            f"every listed perpetual ({median}) held, its slowest cycle {_f(cycle)} s, over {_pct(NEAR)} of "
            f"{INTERVAL:g} s: on this machine it may not hold on another run ({spent}); {host}.")
    return "the market", f"every listed perpetual ({median}) held, its slowest cycle {_f(cycle)} s ({spent})."


def _short_bound(results: dict, floor: Floor, ips: int, median: int, paper: dict, spent: str, host: str,
                 busy: bool) -> tuple[str, str]:
    """A median short of the listed perpetuals: the bound on paper it reached, else the cores where they were
    busy, else the budget's pacing."""
    throttle, cores = paper["the throttle"], results["meta"].get("cores") or 1
    per = f"{floor.describe_budget()}{f' x {ips} IPs' if ips > 1 else ''}"
    if median >= throttle - ips:
        return "the budget", (f"{median} of the {throttle} the throttle sustains on {per}: the exchange's budget, "
                              f"the same on a dedicated host ({spent}).")
    if median >= 0.95 * paper["the round trips"]:
        return "the round trips", (f"{median} of the {paper['the round trips']} the round trips allow at "
                                   f"{1000 * results['meta']['latency']:.0f} ms with {floor.notes.get('book_threads', 1)} "
                                   f"requests in flight ({spent}); a dedicated host at the same latency changes little.")
    cpu = paper.get("the worker's CPU")
    if cpu is not None and median >= 0.9 * cpu:
        return "the worker's CPU", (f"{median} of the {cpu} one core allows at the worker's CPU per symbol "
                                    f"({spent}); a dedicated host with faster cores, or shards (section 3), more.")
    if busy:
        return f"this machine's {cores} cores", (
            f"{median}, under every bound on paper ({', '.join(f'{k} {v}' for k, v in paper.items())}), with the "
            f"cores busy ({spent}): the simulator's share is the exchange's own work on a real venue, so {host}.")
    return f"the budget, {throttle - median} short", (
        f"{median}, {throttle - median} short of the {throttle} the throttle sustains on {per}, with the cores "
        f"not busy ({spent}): the figure is the budget's, less what its pacing loses at this N; a dedicated host "
        f"would change little.")


def _failed_by(failing: dict | None) -> str:
    """Why the first failing N failed: a cycle over the interval, or a load its throttle cannot keep up."""
    if not failing or failing.get("cycle_seconds_max") is None:
        return ""
    if failing["cycle_seconds_max"] > INTERVAL:
        return f"N={failing['n']} failed by its cycle, {_f(failing['cycle_seconds_max'])} s"
    return (f"N={failing['n']} failed by its load, {_pct(failing.get('budget_share') or 0)} of what one address's "
            f"throttle sustains, in cycles of {_f(failing['cycle_seconds_max'])} s")


BUSY = 0.6   # the cores count as busy when the worker and the simulator together used this share of them


def _busy(at: dict | None, failing: dict | None, cores: int) -> bool:
    """Whether the cores, not the budget, were short: the worker and the simulator together used BUSY of
    them, or the worker most of its one core (Python's GIL)."""
    return any(t and t.get("worker_cpu_share") is not None
               and ((t["worker_cpu_share"] + t["simulator_cpu_share"]) / cores >= BUSY or t["worker_cpu_share"] >= 0.8)
               for t in (at, failing))


def _cpu_words(at: dict | None, failing: dict | None, cores: int) -> str:
    """The worker's and the simulator's CPU at the answer and at the first failing N, as shares of one core."""
    out = []
    for t in (at, failing):
        if t and t.get("worker_cpu_share") is not None:
            both = t["worker_cpu_share"] + t["simulator_cpu_share"]
            out.append(f"at N={t['n']} the worker used {_pct(t['worker_cpu_share'])} of a core and the simulator "
                       f"{_pct(t['simulator_cpu_share'])}, {_pct(both / cores)} of the {cores} cores")
    return "; ".join(out)


def cadence_miss(floor: Floor, largest: int, target: int, failing: dict, round_trip: float) -> str:
    """The first failing N's figures beside the budget's and the round trip's arithmetic."""
    load = max(c["load"] for c in failing["cycles"])
    share = floor.weight(target) if not floor.per_endpoint else target * sum(
        c.weight for c in floor.per_symbol if c.endpoint == floor.binding)
    need = share / (floor.binding_limit * INTERVAL / floor.window)
    return (f"{floor.exchange} holds 5 s up to N={largest} at depth {floor.shown_depth}, target {target}: at "
            f"N={failing['n']} a cycle put {load:g} {floor.weight_unit} on the budget ({floor.describe_budget()}), "
            f"the throttle sustains {floor.sustained_load():.1f} per 5 s ({floor.hold_rule()}); its cycles took at most {_f(failing['cycle_seconds_max'])} s. "
            f"N={target} needs {_pct(need)} of the published budget; at {1000 * round_trip:.0f} ms an answer with "
            f"{floor.notes.get('book_threads', 1)} requests in flight, the round trips allow "
            f"{floor.latency_allows(round_trip)} symbols per 5 s{_measured_round_trip(floor, failing, round_trip)}.")


def _measured_round_trip(floor: Floor, failing: dict, network: float) -> str:
    """What a book's round trip really took at the failing N, by Little's law (requests in flight = rate x
    time in flight): the threads were never idle in a cycle that overran."""
    threads, requests = floor.notes.get("book_threads", 1), failing["n"] * len(floor.per_symbol)
    if threads < 2:
        return ""
    seconds = threads * failing["cycle_seconds_max"] / requests
    return (f"; measured at N={failing['n']}, a request was in flight {1000 * seconds:.0f} ms "
            f"({threads} in flight x {_f(failing['cycle_seconds_max'])} s / {requests} requests), "
            f"{1000 * network:.0f} ms of it the simulated network")


def cpu_per_symbol(results: dict, ex: str, depth_key: str) -> dict | None:
    """The worker's CPU per symbol at the venue's maximum depth (section 5), by part, in ms."""
    cpu = (results.get("cpu") or {}).get(ex)
    if not cpu or depth_key != "max" or "http_ms" not in cpu:
        return None
    parts = {"HTTP": cpu["http_ms"], "ccxt's decode": cpu["ccxt_decode_ms"], "ccxt's parse": cpu["ccxt_parse_ms"],
             "the product's own": cpu["product_ms"]}
    return {"parts": parts, "total": sum(parts.values())}


def cpu_allows(results: dict, ex: str, depth_key: str) -> int | None:
    per = cpu_per_symbol(results, ex, depth_key)
    return int(INTERVAL * 1000 / per["total"]) if per else None


def cpu_miss(results: dict, ex: str, depth_key: str, failing: dict) -> str:
    """Where the CPU went at the first failing N: the worker's and the simulator's shares of a core, and
    the worker's CPU per symbol by part."""
    out = []
    if failing.get("worker_cpu_share") is not None:
        out.append(f" At N={failing['n']} the worker used {_pct(failing['worker_cpu_share'])} of a core and the "
                   f"simulator, which builds every book on the same {results['meta'].get('cores', '?')} cores, "
                   f"{_pct(failing['simulator_cpu_share'])}.")
    per = cpu_per_symbol(results, ex, depth_key)
    if per:
        parts = ", ".join(f"{name} {ms:.2f} ms ({_pct(ms / per['total'])})" for name, ms in per["parts"].items())
        out.append(f" A symbol costs the worker {per['total']:.2f} ms of CPU ({parts}): one process (one core, "
                   f"Python's GIL) allows {cpu_allows(results, ex, depth_key)} symbols per 5 s, and the book "
                   f"threads' waits for the GIL grow as it fills.")
    return "".join(out)


LINEAR_TOLERANCE = 0.95   # "linear": N at k IPs at least this share of k times N at one IP


def ips_section(results: dict, targets: list[Target]) -> list[str]:
    scaled = {ex: found for ex, found in (results.get("ips") or {}).items() if found}
    if not scaled:
        return []
    counts = sorted({int(k) for found in scaled.values() for k in found})
    lines = [f"## 3. Past one IP: symbols at 5 s with {', '.join(map(str, counts))} IPs", "",
             "The search of section 2 with the worker's `proxies` (docs/reference.md, 'Past one IP'): the machine's own address and "
             "proxies, here the simulator itself acting as an HTTP proxy that counts each proxy's requests as one "
             "more IP with the exchange's whole budget. Target: that many times what one IP's budget allows. "
             f"Linear: N at k IPs at least {_pct(LINEAR_TOLERANCE)} of k times N at one IP. Busiest IP: the most "
             "weight one address carried in a cycle at the largest N, beside what its throttle sustains. 429 / 418: "
             "the most any one IP got in the runs of that row.", "",
             "Where the answer sits near a limit each row is repeated as in section 2: the median, judged against "
             "the target, and the lowest.", "",
             "| exchange | IPs | largest N at 5 s: median | lowest (runs) | N / N at 1 IP | target | met | busiest IP per cycle / sustained | 429 / 418 per IP (max) | bound by |",
             "|---|---:|---:|---|---:|---:|---|---|---|---|"]
    limited, notes = [], []
    for ex in _exchanges(results):
        found, floor = scaled.get(ex), _floor(results, ex)
        if not found or floor is None:
            continue
        one = found.get("1", {}).get("largest")
        ratios = []
        for ips, row in sorted(found.items(), key=lambda kv: int(kv[0])):
            runs = [t for t in results["trials"][ex] if t.get("ips", 1) == int(ips) and t["depth"] == floor.depth
                    and t["purpose"] in ("ips", "search")]
            per_ip = [c for t in runs for c in t.get("per_ip", {}).values()]
            worst_pair = max(((c["429"], c["418"]) for c in per_ip), default=(0, 0), key=sum)
            if sum(worst_pair):
                limited.append(f"{ex} with {ips} IPs: {worst_pair[0]} x 429, {worst_pair[1]} x 418 on one IP")
            at_largest = next((t for t in runs if t["n"] == row["largest"] and t["cycles"]), None)
            busiest = max(c["load"] for c in at_largest["cycles"]) if at_largest else None
            ratio = row["largest"] / one if one else None
            ratios.append((int(ips), ratio))
            shown = f"{row['largest']}" + (" (every one searched)" if row["capped"] else "")
            bound, why = bound_of(results, ex, "max", row, floor, int(ips))
            notes.append(f"- {ex} with {_ips(ips)}: {why}")
            lines.append(f"| {ex} | {ips} | {shown} | {_spread(row)} | {_f(ratio)} | {row['target']} | "
                         f"{_ok(row['largest'] >= row['target'])} | "
                         f"{_f(busiest, '{:g}')} / {floor.sustained_load():.0f} {floor.weight_unit} | "
                         f"{worst_pair[0]} / {worst_pair[1]} | {bound} |")
            targets.append(Target(f"{ex}: {row['target']} symbols at 5 s with {_ips(ips)} (median)",
                                  shown + _spread_words(row), row["largest"] >= row["target"],
                                  [_ips_miss(floor, int(ips), row)]))
        linear = all(r is not None and r >= LINEAR_TOLERANCE * k for k, r in ratios)
        capped = any(found[str(k)]["capped"] for k, _ in ratios)
        if capped and not linear:
            linear = None   # every symbol searched held: the market, not the IPs, set the ceiling
        targets.append(Target(f"{ex}: symbols at 5 s linear in IPs", ", ".join(
            f"{_ips(k)}: {found[str(k)]['largest']}" for k, _ in ratios) + (" (capped: every symbol searched held)" if capped else ""),
            linear, [] if linear is not False else [f"{ex}: N(k) / N(1) = " + ", ".join(f"{k}: {_f(r)}" for k, r in ratios)]))
    lines += ["", "What bounds each figure on this 2-core machine, and what a dedicated host would change:", "",
              *notes, ""]
    targets.append(Target("no 429 or 418 on any IP (IP scaling runs)", "see section 3", not limited, limited))
    return lines


def _ips(k) -> str:
    return f"{k} IP" if int(k) == 1 else f"{k} IPs"


def _ips_miss(floor: Floor, ips: int, row: dict) -> str:
    """A missed IP-scaling count beside what the addresses' throttles sustain together."""
    sustained = floor.most_symbols(sustained=True, ips=ips)
    short = sustained - row["largest"]
    whose = "one address's throttle sustains" if ips == 1 else f"{ips} addresses' throttles sustain"
    return (f"{row['largest']} held; {whose} {sustained} ({floor.hold_rule()}), "
            + ("so the throttle's margin, not the addresses, sets the figure." if short <= ips else
               f"{short} more than held."))


def naive_section(results: dict, targets: list[Target]) -> list[str]:
    if not results.get("naive"):
        return []
    n = next(iter(results["naive"].values()))["n"]
    lines = ["## 4. The peers", "", f"### The naive loop, N = {n}", "",
             "What a user writes first: a ccxt client with default settings (ccxt's own rateLimit), then per symbol "
             "`fetch_ticker`, `fetch_order_book` (same depth as the product) and `fetch_funding_rate`, one after "
             "another; same simulator, same latency. Cycle: wall time of the loop (mean); product: the worker's "
             "`last_cycle_seconds` at the same N (section 1). Budget bound: the least time the published budget "
             "allows for the product's own cycle at this N, however its requests are sent.", "",
             f"| exchange | naive cycle, s | naive requests | ccxt default rateLimit, ms | product cycle, s | budget bound, s | product / naive | target <= {NAIVE_TARGET} |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    ratios, why = [], []
    for ex in _exchanges(results):
        nv, floor = results["naive"].get(ex), _floor(results, ex)
        if not nv or not floor:
            continue
        pt = _trial(results, ex, nv["n"])
        ratio = pt["cycle_seconds_mean"] / nv["cycle_seconds_mean"] if pt and pt["cycle_seconds_mean"] else None
        bound = budget_bound(floor, nv["n"])
        ratios.append((ex, ratio))
        lines.append(f"| {ex} | {_f(nv['cycle_seconds_mean'])} | {nv['requests_per_cycle']:.0f}"
                     f"{' (' + str(nv['error_count']) + ' errors)' if nv['error_count'] else ''} | "
                     f"{_f(nv['rate_limit_ms'], '{:g}')} | {_f(pt and pt['cycle_seconds_mean'])} | {_f(bound)} | "
                     f"{_f(ratio)} | {_ok(None if ratio is None else ratio <= NAIVE_TARGET)} |")
        if ratio is not None and ratio > NAIVE_TARGET:
            reach = bound / nv["cycle_seconds_mean"]
            why.append(f"{ex}: product/naive = {ratio:.2f} at N={nv['n']} (product {pt['cycle_seconds_mean']:.2f} s, "
                       f"naive {nv['cycle_seconds_mean']:.2f} s); the published budget alone needs {bound:.2f} s for "
                       f"the product's cycle, {reach:.2f} of the naive loop's, so {NAIVE_TARGET} is "
                       + ("out of reach within the budget." if reach > NAIVE_TARGET else "within the budget's reach."))
    lines.append("")
    if ratios:
        targets.append(Target(f"product cycle <= {NAIVE_TARGET} of the naive loop",
                              ", ".join(f"{ex} {_f(r)}" for ex, r in ratios),
                              all(r is not None and r <= NAIVE_TARGET for _, r in ratios), why))
    return lines


def vision_section(results: dict, targets: list[Target]) -> list[str]:
    vision = results.get("vision") or {}
    if not vision:
        return []
    lines = ["### The vision's own design", "",
             "One asyncio process with `ccxt.async_support` (the technical vision's design), a task per exchange "
             "gathering `fetch_ticker` + `fetch_order_book` + `fetch_funding_rate` for every symbol at once, ccxt's "
             "default throttle; same simulator, same latency, same N. Cycle: wall time of one gather (mean); product: "
             "the worker's `last_cycle_seconds` at the same N. The product beats it where its cycle is shorter.", "",
             "| exchange | N | vision cycle, s | requests | errors | product cycle, s | product / vision | beats |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    rows, why = [], []
    for ex in _exchanges(results):
        for n_key, v in sorted((vision.get(ex) or {}).items(), key=lambda kv: int(kv[0])):
            pt = _trial(results, ex, v["n"])
            ratio = pt["cycle_seconds_mean"] / v["cycle_seconds_mean"] if pt and pt["cycle_seconds_mean"] else None
            beats = None if ratio is None else ratio < 1
            rows.append((ex, v["n"], ratio, beats))
            lines.append(f"| {ex} | {v['n']} | {_f(v['cycle_seconds_mean'])} | {v['requests_per_cycle']:.0f} | "
                         f"{v['error_count']} | {_f(pt and pt['cycle_seconds_mean'])} | {_f(ratio)} | {_ok(beats)} |")
            if beats is False:
                why.append(f"{ex} N={v['n']}: product {pt['cycle_seconds_mean']:.2f} s, vision "
                           f"{v['cycle_seconds_mean']:.2f} s ({v['requests_per_cycle']:.0f} requests, "
                           f"{v['error_count']} errors)")
            if v["error_count"]:
                lines.append(f"| | | first error: `{v['errors'][0]}` | | | | | |")
    lines.append("")
    measured = [r for r in rows if r[3] is not None]
    if measured:
        targets.append(Target("product beats the vision's asyncio design (cycle time, same N)",
                              ", ".join(f"{ex} N={n} {_f(r)}" for ex, n, r, _ in measured),
                              all(b for *_, b in measured), why))
    return lines


def budget_bound(floor: Floor, n: int) -> float:
    """Seconds the published budget needs at least for one cycle's weight on its busiest budget."""
    if floor.per_endpoint:   # each endpoint at its own limit (OKX's books-full 10 per 2 s)
        return max(n * sum(c.weight for c in floor.per_symbol if c.endpoint == e) / (floor.limit_of(e) / floor.window)
                   for e in {c.endpoint for c in floor.per_symbol})
    return floor.weight(n) / (floor.limit / floor.window)


def cpu_section(results: dict, targets: list[Target]) -> list[str]:
    if not results.get("cpu"):
        return []
    lines = ["## 5. CPU per snapshot at maximum depth", "",
             "Mean thread CPU time per call in one worker built as `worker.main()` builds it (`bench/inproc.py cpu`). "
             "ccxt: the symbol's requests (its book; on HTX also the mark price) with the network replaced by their "
             "recorded bodies (JSON decode + ccxt's request building and parsing). Product: "
             "`common.mapping.snapshot` (levels to base units, pydantic validation), `model_dump_json`, "
             "`broker.publish` (no per-message confirms).", "",
             f"| exchange | levels | requests | answers, KB | ccxt book, ms | ccxt extras, ms | ccxt total, ms | build, ms | JSON, ms | publish, ms | product, ms | product / ccxt | target <= {_pct(CPU_SHARE_TARGET)} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    rows, why = [], []
    for ex in _exchanges(results):
        r = results["cpu"].get(ex)
        if not r:
            continue
        rows.append((ex, r["product_share"]))
        lines.append(f"| {ex} | {r['levels']} | {r['requests']} | {r['raw_bytes'] / 1024:.0f} | {r['ccxt_book_ms']:.2f} | "
                     f"{r['ccxt_extras_ms']:.2f} | {r['ccxt_total_ms']:.2f} | {r['build_ms']:.2f} | {r['serialize_ms']:.2f} | "
                     f"{r['publish_ms']:.2f} | {r['product_ms']:.2f} | {_pct(r['product_share'])} | "
                     f"{_ok(r['product_share'] <= CPU_SHARE_TARGET)} |")
        if r["product_share"] > CPU_SHARE_TARGET:
            parts = {"build": r["build_ms"], "JSON": r["serialize_ms"], "publish": r["publish_ms"]}
            big = max(parts, key=parts.get)
            why.append(f"{ex}: {_pct(r['product_share'])} of ccxt's ({r['product_ms']:.2f} ms vs "
                       f"{r['ccxt_total_ms']:.2f} ms for {r['levels']} levels); the largest part is {big}, "
                       f"{parts[big]:.2f} ms ({_pct(parts[big] / r['ccxt_total_ms'])} of ccxt's alone).")
    lines.append("")
    targets.append(Target(f"product CPU per snapshot <= {_pct(CPU_SHARE_TARGET)} of ccxt's",
                          ", ".join(f"{ex} {_pct(s)}" for ex, s in rows), all(s <= CPU_SHARE_TARGET for _, s in rows), why))
    return lines


def board_section(results: dict, targets: list[Target]) -> list[str]:
    boards = results.get("board") or {}
    shown = [ex for ex in _exchanges(results) if ex in boards]
    if not shown:
        return []
    lines = ["## 6. The market board", "",
             "Every listed perpetual, every cycle, from the bulk calls already made (docs/reference.md, 'The market board'), at the "
             "simulator's market sizes; its requests per cycle are those of section 1 (the floor, board on).", "",
             "CPU per cycle: mean thread CPU time in one worker built as `worker.main()` builds it "
             "(`bench/inproc.py board-cpu`, bench/board.py). ccxt: the venue's bulk calls' `fetch` with the network "
             "replaced by the bodies of one real cycle (JSON decode + ccxt's parsing), and the ccxt parsers the venue's "
             "merge functions call (`parse_ticker`, `parse_funding_rate`: bybit's and htx's funding, all of "
             "Hyperliquid's parsing, whose bulk call is a raw `POST /info`). Joining: the merge functions' own work "
             "putting the rows into the cycle's Bulk, which the snapshots need as well. Product: the worker's `board_rows` (one pydantic row per perpetual) and "
             "`publish_board` (JSON, then `broker.publish`). Whole board: ccxt + joining + product, as a share of one "
             f"core at one cycle per {INTERVAL:g} s.", "",
             f"| exchange | markets | ccxt, ms | joining, ms | rows, ms | JSON, ms | publish, ms | product, ms | product / ccxt | target <= {_pct(CPU_SHARE_TARGET)} | whole board, ms | one core at {INTERVAL:g} s | target < {_pct(BOARD_CORE_TARGET)} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    shares, cores, why_share, why_core = [], [], [], []
    for ex in shown:
        b = boards[ex]
        core = b["whole_ms"] / 1000 / INTERVAL
        publish = b["publish_board_ms"] - b["serialize_ms"]
        shares.append((ex, b["product_share"]))
        cores.append((ex, core))
        lines.append(f"| {ex} | {b['markets']} | {b['ccxt_ms']:.1f} | {b['join_ms']:.1f} | {b['rows_ms']:.1f} | "
                     f"{b['serialize_ms']:.1f} | {publish:.1f} | {b['product_ms']:.1f} | {_pct(b['product_share'])} | "
                     f"{_ok(b['product_share'] <= CPU_SHARE_TARGET)} | {b['whole_ms']:.1f} | {100 * core:.2f}% | "
                     f"{_ok(core < BOARD_CORE_TARGET)} |")
        if b["product_share"] > CPU_SHARE_TARGET:
            parts = {"board_rows": b["rows_ms"], "JSON": b["serialize_ms"], "publish": publish}
            big = max(parts, key=parts.get)
            why_share.append(f"{ex}: the board's {b['product_ms']:.1f} ms are {_pct(b['product_share'])} of ccxt's "
                             f"{b['ccxt_ms']:.1f} ms for {b['markets']} markets; the largest part is {big}, "
                             f"{parts[big]:.1f} ms ({parts[big] / b['markets'] * 1000:.0f} µs per market).")
        if core >= BOARD_CORE_TARGET:
            why_core.append(f"{ex}: {b['whole_ms']:.1f} ms per cycle = {100 * core:.1f}% of a core at {INTERVAL:g} s "
                            f"(ccxt {b['ccxt_ms']:.1f}, joining {b['join_ms']:.1f}, product {b['product_ms']:.1f}).")
    lines += ["", "ccxt's parse per bulk call, ms: " + "; ".join(
        f"{ex}: " + ", ".join([f"{what} {ms:.1f}" for what, ms in boards[ex]["ccxt_ms_by_call"].items()]
                              + ([f"in the merge functions {boards[ex]['ccxt_parse_in_join_ms']:.1f}"]
                                 if boards[ex].get("ccxt_parse_in_join_ms") else []))
        for ex in shown) + ".", ""]
    lines += ["Size and delay. Delay: from the wall time the cycle's last bulk answer was read to the benchmark's "
              "listener (another process) receiving the board (`bench/inproc.py board-delay`: real cycles, the "
              "simulator's latency and budgets on, a cycle every 5 s); worker: until `publish_board` returned; from the first bulk "
              "answer: the age of the board's oldest values at receipt (the later bulk calls' round trips included).",
              "", "| exchange | markets | bulk answers, KB | board message, KB | boards | delay p50 / p99, ms | worker p50 / p99, ms | from the first bulk answer p50 / p99, ms |",
              "|---|---:|---:|---:|---:|---|---|---|"]
    delays = []
    for ex in shown:
        b = boards[ex]
        total, worker, oldest = ([d[k] * 1000 for d in b["delays"]] for k in ("total", "worker", "from_first"))
        delays.append((ex, percentile(total, 50), percentile(total, 99), len(total)))
        lines.append(f"| {ex} | {b['markets']} | {sum(b['answer_bytes'].values()) / 1024:.0f} | "
                     f"{b['board_bytes'] / 1024:.0f} | {len(total)} | {_p50_p99(total)} | {_p50_p99(worker)} | "
                     f"{_p50_p99(oldest)} |")
    lines.append("")
    targets.append(Target(f"board: product CPU <= {_pct(CPU_SHARE_TARGET)} of ccxt's parse of the bulk answers",
                          ", ".join(f"{ex} {_pct(s)}" for ex, s in shares), all(s <= CPU_SHARE_TARGET for _, s in shares),
                          why_share))
    targets.append(Target(f"board: the whole board < {_pct(BOARD_CORE_TARGET)} of one core at {INTERVAL:g} s",
                          ", ".join(f"{ex} {100 * c:.2f}%" for ex, c in cores), all(c < BOARD_CORE_TARGET for _, c in cores),
                          why_core))
    targets.append(Target("board: delay from the last bulk answer to the consumer, p50 / p99 (no target)",
                          ", ".join(f"{ex} {_f(p50, '{:.0f}')} / {_f(p99, '{:.0f}')} ms" for ex, p50, p99, _ in delays),
                          None, []))
    return lines


def _p50_p99(values_ms: list[float]) -> str:
    return f"{_f(percentile(values_ms, 50), '{:.0f}')} / {_f(percentile(values_ms, 99), '{:.0f}')}"


def rss_peaks(results: dict) -> dict[str, tuple[float, str]]:
    """The largest RSS each exchange's workers reached, and where: every worker run counts (section 1's, every
    search point, every IP-scaling run: the whole market's N included), after cycle 1 and at its end, and the
    soak's end."""
    peaks: dict[str, tuple[float, str]] = {}
    for ex in _exchanges(results):
        seen = [(v, f"N={t['n']}" + (f", {t['ips']} IPs" if t.get("ips", 1) > 1 else ""))
                for t in results["trials"].get(ex, []) for v in (t.get("rss_warm_mb"), t.get("rss_end_mb")) if v]
        soak = results.get("soak", {}).get(ex)
        if soak:
            seen.append((soak["rss_end_mb"], "soak"))
        if seen:
            peaks[ex] = max(seen, key=lambda x: x[0])
    return peaks


def memory_section(results: dict, targets: list[Target]) -> list[str]:
    soak_n = next(iter(results["soak"].values()))["cycles"] if results.get("soak") else 0
    lines = ["## 7. Memory and start-up", "",
             "RSS of the real worker processes (VmRSS) after their first cycle, per N of section 1; the largest "
             "RSS of every worker run of the benchmark (sections 1-3: every N measured, the whole market "
             "included; after cycle 1 and at the run's end) and where it was reached, which the target counts; "
             "the soak (`bench/inproc.py soak`): "
             f"`collect_cycle()` {soak_n} times back to back, 5 symbols at maximum depth and the board, "
             "simulator latency and rate limits off and the throttle off, RSS after a warm-up and at the end. Start: "
             "from `Popen` of `worker.py` to the listener's receipt of its first snapshot.", "",
             f"| exchange | RSS after cycle 1, by N, MB | max over every run, MB | runs | soak: RSS warm, MB | after {soak_n} cycles, MB | growth | soak, cycles/s | start to first snapshot, by N, s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    growth, starts = [], []
    peaks = rss_peaks(results)
    for ex in _exchanges(results):
        ts = [t for t in results["trials"][ex] if t["purpose"] == "cost"]
        starts += [(ex, t["n"], t["first_snapshot_seconds"]) for t in ts if t["first_snapshot_seconds"] is not None]
        sk = results.get("soak", {}).get(ex)
        if sk:
            growth.append((ex, sk["growth_pct"], sk))
        by_n = " / ".join(f"{t['n']}: " + _f(t["rss_warm_mb"], "{:.0f}") for t in ts)
        start_by_n = " / ".join(f"{t['n']}: " + _f(t["first_snapshot_seconds"]) for t in ts)
        peak = f"{peaks[ex][0]:.0f} ({peaks[ex][1]})" if ex in peaks else "–"
        lines.append(f"| {ex} | {by_n} | {peak} | {len(results['trials'][ex])} | "
                     f"{_f(sk and sk['rss_warm_mb'], '{:.1f}')} | {_f(sk and sk['rss_end_mb'], '{:.1f}')} | "
                     f"{_f(sk and sk['growth_pct'], '{:+.1f}%')} | {_f(sk and sk['cycles'] / sk['cycles_seconds'], '{:.1f}')} | "
                     f"{start_by_n} |")
    lines.append("")
    if results.get("import_seconds"):
        lines += [f"`python -c 'import worker'` alone takes {results['import_seconds']:.2f} s on this machine (best of 3).", ""]
    if peaks:
        worst = max(peaks, key=lambda e: peaks[e][0])
        targets.append(Target(f"RSS <= {RSS_TARGET_MB} MB per worker (every run, every N)",
                              f"max {peaks[worst][0]:.0f} MB ({worst}, {peaks[worst][1]})",
                              peaks[worst][0] <= RSS_TARGET_MB,
                              [f"{e}: up to {v:.0f} MB ({where})" for e, (v, where) in peaks.items() if v > RSS_TARGET_MB]))
    if growth:
        targets.append(Target(f"RSS growth < {RSS_GROWTH_TARGET_PCT}% over {soak_n} cycles",
                              ", ".join(f"{ex} {g:+.1f}%" for ex, g, _ in growth),
                              all(g < RSS_GROWTH_TARGET_PCT for _, g, _ in growth),
                              [f"{ex}: {g:+.1f}% (MB every 100 cycles: {', '.join(f'{v:.1f}' for _, v in sk['rss_samples'])})"
                               for ex, g, sk in growth if g >= RSS_GROWTH_TARGET_PCT]))
    if starts:
        slow = [f"{e} N={n}: {v:.2f} s" for e, n, v in starts if v > START_TARGET_SECONDS]
        targets.append(Target(f"first snapshot within {START_TARGET_SECONDS} s of start",
                              f"max {max(s[2] for s in starts):.2f} s", not slow, slow))
    return lines


def freshness_section(results: dict) -> list[str]:
    lines = ["## 8. Freshness: from the exchange's answer to the consumer", "",
             "For every snapshot the listener received during the worker runs: receipt time minus the time the "
             "simulator answered the last request of that symbol before it (book, or extra: HTX's mark price comes "
             "after the book); its log time, taken on arrival, + the latency it adds. The time to build the answer "
             "is not subtracted, so these are slight over-estimates.", "",
             "| exchange | snapshots | p50, ms | p99, ms | max, ms |", "|---|---:|---:|---:|---:|"]
    for ex in _exchanges(results):
        d = [x * 1000 for t in results["trials"][ex] for x in t["delays"]]
        lines.append(f"| {ex} | {len(d)} | {_f(percentile(d, 50), '{:.1f}')} | {_f(percentile(d, 99), '{:.1f}')} | "
                     f"{_f(max(d) if d else None, '{:.1f}')} |")
    return lines + [""]


def header(results: dict, has_plot: bool) -> list[str]:
    m = results["meta"]
    busy = max(m["load_start"], m["load_end"]) > (m["cores"] or 1) * 0.75
    sizes = ", ".join(f"{ex} {n}" for ex, n in results.get("listed", {}).items())
    lines = ["# futures_scan benchmarks", "",
             f"Generated by `scripts/bench.sh` (`python -m bench.run{' --quick' if m['quick'] else ''}`) on {m['date']}, "
             f"commit `{m['commit']}`{' with local changes to worker.py, common/ or the simulator' if m['product_modified'] else ''}; "
             f"{m['cores']} cores ({m['cpu']}), Python {m['python']}, ccxt {m['ccxt']}; the run took "
             f"{m['seconds'] / 60:.1f} min{_estimated(results)}, load average {m['load_start']:.2f} at its start and {m['load_end']:.2f} at "
             f"its end{' (**other processes were busy: figures may be pessimistic**)' if busy else ''}.", "",
             f"Set-up: the exchange simulator (`tests/simulator`) listing {sizes} perpetuals"
             f"{'' if m['simulator_real_sizes'] else ' (synthetic SIM001.. markets: this simulator has no --real-sizes)'}, "
             f"with every exchange's published rate budget and **{m['latency'] * 1000:.0f} ms added to every answer**; a "
             f"private vhost on the local RabbitMQ server; real `worker.py` processes (interval {INTERVAL:g} s, board on, "
             "log level INFO), watching BTC, ETH, SOL, DOGE, XRP, then the simulator's other perpetuals; books at each "
             "exchange's maximum depth unless a depth is named. Between runs the simulator's log and rate windows are "
             "reset, as if each run had its own IP. How each figure is taken: each section, the last one, and `bench/`.",
             "",
             "The scanner's cost at the whole market's size is measured apart, by `python -m bench.scanner`: "
             "[benchmarks-scanner.md](benchmarks-scanner.md).",
             ""]
    if has_plot:
        lines += ["![cycle time per symbol count, the peers, the board's CPU](benchmarks.png)", ""]
    return lines


def _estimated(results: dict) -> str:
    """What bench/estimate.py expected at the start, beside what the run took: its model's check."""
    phases = results.get("estimate_seconds")
    return f" (estimated at its start: {sum(phases.values()) / 60:.0f} min)" if phases else ""


def targets_table(targets: list[Target]) -> list[str]:
    lines = ["## Targets", "", "| target | result | met |", "|---|---|---|"]
    lines += [f"| {t.what} | {t.result} | {_ok(t.met)} |" for t in targets]
    lines += ["", "### Where a target is missed: the figures", ""]
    missed = [f"- **{t.what}**: {w}" for t in targets if t.met is False for w in (t.why or ["see its section"])]
    return lines + (missed or ["- None: every target above is met."]) + [""]


def method(results: dict) -> list[str]:
    return ["## How the figures are taken", "",
            "- Every worker run is a fresh `worker.py <exchange> --config <generated>` process, stopped with SIGTERM "
            "after its measured cycles. Its statistics messages (`futures_collector_stats`, one per cycle) give the "
            "cycle times; the simulator's request log (`/__sim/requests`) gives requests, paths, queries (for "
            "Binance's weight) and statuses. A run during which the shared broker went away is run once more.",
            "- The floor (bench/budget.py): a client built by `create_exchange` runs the venue's bulk calls once and "
            "one symbol's book and extras once against the simulator; what the worker's throttle charged for each "
            "request is the floor's weight. The most symbols per 5 s follow from the venue's `RateBudget`.",
            "- The largest N: a search (a few more runs per exchange and depth) between the largest N that held and "
            "the smallest that did not, guided by a straight line through their cycle times, never above one over "
            f"what the published budget allows. Near a limit it runs {results['meta'].get('repeats_near', REPEATS)} "
            "times in all (each repeat on fresh "
            "runs, seeded at the previous answer and one over it): the page gives the median, which the target is "
            "judged on, and the lowest; benchmarks.json keeps every run (`max_n`, `ips`: `values`, `runs`).",
            "- Reproduce: `scripts/bench.sh` (or `.venv/bin/python -m bench.run`); raw figures in `benchmarks.json` "
            "beside this page; `--from-json FILE` renders the page again.", ""]


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install -r bench/requirements.txt): no plot")
        return False
    exchanges = _exchanges(results)
    scaled = {ex: found for ex, found in (results.get("ips") or {}).items() if found}
    panels = 4 if scaled else 3
    fig, axes = plt.subplots(1, panels, figsize=(5.7 * panels, 5), gridspec_kw={"width_ratios": [3, 2, 2, 2][:panels]})
    left, middle, right = axes[:3]
    if scaled:
        _plot_ips(axes[3], scaled)
    for ex in exchanges:
        for depth in sorted({str(t["depth"]) for t in results["trials"][ex]}):
            slowest: dict[int, float] = {}   # repeated searches measure an N more than once: its slowest cycle
            for t in results["trials"][ex]:
                if str(t["depth"]) == depth and t["cycle_seconds_max"] is not None and t.get("ips", 1) == 1:
                    slowest[t["n"]] = max(slowest.get(t["n"], 0.0), t["cycle_seconds_max"])
            pts = sorted(slowest.items())
            if pts:
                shown = _shown_depth(results, ex, next(t["depth"] for t in results["trials"][ex] if str(t["depth"]) == depth))
                left.plot([p[0] for p in pts], [p[1] for p in pts], "-o", label=f"{ex} (depth {shown})", markersize=4)
    left.axhline(INTERVAL, color="black", linewidth=1, linestyle=":")
    left.set(xscale="log", yscale="log", xlabel="symbols per worker (N)", ylabel="cycle time, s (slowest measured)",
             title="Product: cycle time vs symbols")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    naive = [(ex, results["naive"][ex]) for ex in exchanges if ex in results.get("naive", {})]
    if naive:
        n = naive[0][1]["n"]
        xs = list(range(len(naive)))
        vision = [((results.get("vision", {}).get(ex) or {}).get(str(n)) or {}).get("cycle_seconds_mean") or 0
                  for ex, _ in naive]
        product = [(_trial(results, ex, n) or {}).get("cycle_seconds_mean") or 0 for ex, _ in naive]
        middle.bar([x - 0.27 for x in xs], [nv["cycle_seconds_mean"] for _, nv in naive], 0.27, label="naive ccxt loop")
        middle.bar(xs, vision, 0.27, label="the vision's asyncio design")
        middle.bar([x + 0.27 for x in xs], product, 0.27, label="futures_scan worker")
        middle.set_xticks(xs, [ex for ex, _ in naive])
        middle.set(ylabel="cycle time, s", title=f"N = {n}: the peers vs the product")
        middle.legend(fontsize=8)
    boards = [(ex, results["board"][ex]) for ex in exchanges if ex in results.get("board", {})]
    if boards:
        xs = range(len(boards))
        right.bar(xs, [b["ccxt_ms"] for _, b in boards], 0.6, label="ccxt's parse of the bulk answers")
        right.bar(xs, [b["join_ms"] for _, b in boards], 0.6, bottom=[b["ccxt_ms"] for _, b in boards], label="joining")
        right.bar(xs, [b["product_ms"] for _, b in boards], 0.6,
                  bottom=[b["ccxt_ms"] + b["join_ms"] for _, b in boards], label="board rows + publish (product)")
        right.set_xticks(list(xs), [f"{ex}\n{b['markets']}" for ex, b in boards])
        right.set(ylabel="CPU ms per cycle", title="The board: CPU per cycle, by market size")
        right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_ips(ax, scaled: dict) -> None:
    for ex, found in scaled.items():
        ips = sorted(int(k) for k in found)
        line, = ax.plot(ips, [found[str(k)]["largest"] for k in ips], "-o", label=f"{ex}: measured")
        ax.plot(ips, [found[str(k)]["target"] for k in ips], ":", color=line.get_color(), label=f"{ex}: budget allows")
    ax.set(xlabel="IPs (own address + proxies)", ylabel="largest N at 5 s", title="Past one IP")
    ax.set_xticks(sorted({int(k) for found in scaled.values() for k in found}))
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)


def evaluate(results: dict) -> tuple[list[Target], list[str]]:
    targets: list[Target] = []
    body = (requests_section(results, targets) + cadence_section(results, targets) + ips_section(results, targets)
            + naive_section(results, targets)
            + vision_section(results, targets)
            + cpu_section(results, targets) + board_section(results, targets) + memory_section(results, targets)
            + freshness_section(results))
    return targets, body


def write(results: dict, out: Path) -> Path:
    targets, body = evaluate(results)
    try:
        has_plot = plot(results, out / "benchmarks.png")
    except Exception as e:  # noqa: BLE001 - the page and its figures matter more than the picture
        log(f"no plot: {type(e).__name__}: {e}")
        has_plot = False
    page = out / "benchmarks.md"
    page.write_text("\n".join(header(results, has_plot) + targets_table(targets) + body + method(results)))
    return page


def summary_lines(results: dict) -> list[str]:
    """The targets, for the terminal."""
    targets, _ = evaluate(results)
    return [f"{'met' if t.met else 'MISSED' if t.met is False else '    ':>6}  {t.what}: {t.result}" for t in targets]
