"""The futures_scan benchmark: collection cost and freshness per exchange against each exchange's rate-limit
floor (docs/reference.md, "What each exchange costs"), the market board's cost ("The market board"), and two
peers: the naive ccxt loop and the vision's own asyncio design.

Usage (from the repository root; scripts/bench.sh prepares the machine first, then runs this):

    .venv/bin/python -m bench.run            # full run; writes docs/benchmarks.md, .png, .json
    .venv/bin/python -m bench.run --quick    # smoke run (a few minutes): N=3, no search; writes to a temp dir
    .venv/bin/python -m bench.run --exchanges okx,hyperliquid --out /tmp/bench   # a subset, elsewhere
    .venv/bin/python -m bench.run --from-json docs/benchmarks.json           # only render the page again

What it starts, and stops again by PID (bench/harness.py): the exchange simulator listing each exchange's real
number of perpetuals (binance 550, bybit 500, bitget 450, gate 500, htx 300, okx 250, hyperliquid 200: USDC)
with every exchange's rate budget and 50 ms added to every answer, a private RabbitMQ vhost and user
(rabbitmqctl), a listener, and real `worker.py` processes with generated configs (interval 5 s, the board on).

Phases (the simulator's log and rate windows are reset between runs, as if each run had its own IP):
  0. the floors (bench/budget.py): one cycle's requests and weight as the worker's throttle charges them, for
     every exchange first; from them the run's expected length is printed (bench/estimate.py);
then exchange after exchange:
  1. worker runs at N = 3, 20, 100 (bench/workers.py): requests per cycle from the simulator's log, cycle time,
     429/418, RSS, start to first snapshot, answer-to-consumer delay, a board every cycle;
  2. the largest N at 5 s (binance also at depths 500 and 100, okx at 400): a search between the measured
     points, up to every listed perpetual, never above
     one over what the published budget allows; where its answer sits near a limit, repeated (3 searches in
     all, on fresh runs) and reported as lowest / median; for binance, bitget, gate, okx and hyperliquid also
     with 2 and 3 IPs (proxies through the simulator, each counted as its own IP), repeated alike;
then phase after phase:
  3. the peers (bench/naive.py): the naive loop at N = 20, the vision's asyncio design at N = 20 and 100;
  4. CPU per snapshot, ccxt vs the product (bench/inproc.py cpu);
  5. the board (bench/board.py): CPU per cycle beside ccxt's parse of the bulk answers, size, delay;
  6. soak: collect_cycle() 1,000 times back to back in one process, RSS sampled.
Every worker run's RSS (after cycle 1 and at its end) counts for the memory target, whatever its N.
The page (bench/report.py) computes every conclusion from these figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ccxt

from bench import estimate, report
from bench.budget import Floor, measure_floor
from bench.harness import DATA_EXCHANGE, EXCHANGES, LATENCY, PY, ROOT, Lab, log
from bench.naive import naive_loop, vision_design
from common.exchanges import VENUES
from bench.workers import REPEATS, needs_repeats, repeat_search, search_max_n, summarize, trial

# Other depths searched beside the maximum (docs/reference.md): binance's weigh less; OKX's up to 400 go to
# `books`, whose limit is four times books-full's.
OTHER_DEPTHS = {"binance": (500, 100), "okx": (400,)}
# Where the budget binds long before the market size, more addresses hold more symbols (docs/reference.md,
# "Past one IP").
SCALED_BY_IPS = ("binance", "bitget", "gateio", "okx", "hyperliquid")
LOAD_START = os.getloadavg()[0]


class Run:
    def __init__(self, args, lab: Lab):
        self.args, self.lab = args, lab
        self.started = time.time()
        self.quick = args.quick
        self.results: dict = {"trials": {ex: [] for ex in args.exchanges}, "floors": {}, "max_n": {}, "naive": {},
                              "vision": {}, "cpu": {}, "board": {}, "soak": {}, "listed": {}, "ips": {}}

    def symbols(self, ex: str) -> list[str]:
        return self.lab.sims[ex].symbols(ex)

    def floor(self, ex: str, depth=None) -> Floor:
        key = str(depth or "max")
        cached = self.results["floors"].setdefault(ex, {}).get(key)
        if cached:
            return Floor.from_dict(cached)
        floor = measure_floor(ex, self.lab.sims[ex].api_url(ex), depth)
        self.results["floors"][ex][key] = floor.to_dict()
        return floor

    def all(self) -> dict:
        started = self.started = time.time()
        self.results["import_seconds"] = min(import_seconds() for _ in range(3))
        self.plan()
        for ex in self.args.exchanges:
            self.worker_runs(ex)
            if self.args.ips and ex in SCALED_BY_IPS:
                self.ip_scaling(ex)
        self.phase("the peers: the naive loop, the vision's asyncio design", self.peers)
        self.phase("CPU per snapshot (in-process)", self.cpu)
        self.phase("the board (in-process)", self.board)
        self.phase("soak (latency and rate limits off)", self.soak)
        self.results["meta"] = meta(started, self.quick, self.lab.sims.real_sizes, self.args.repeats_near)
        return self.results

    def plan(self) -> None:
        """The floors first (a few seconds each), then how long the run will take (bench/estimate.py)."""
        floors = {}
        for ex in self.args.exchanges:
            self.results["listed"][ex] = len(self.symbols(ex))
            floors[ex] = {}
            for depth in [None, *(OTHER_DEPTHS.get(ex, ()) if self.args.search else ())]:
                self.lab.sims[ex].fresh()   # each floor on empty windows: a new client knows nothing of the last's
                floors[ex][str(depth or "max")] = self.floor(ex, depth)
        rate_limits = {ex: getattr(ccxt, VENUES[ex].ccxt_id)().rateLimit / 1000 for ex in self.args.exchanges}
        phases = estimate.estimate_seconds(self.args, floors, self.results["listed"], LATENCY, rate_limits,
                                           SCALED_BY_IPS)
        self.results["estimate_seconds"] = phases
        log(f"this run will take {estimate.describe(phases)}")

    def phase(self, title: str, per_exchange) -> None:
        log(title)
        for ex in self.args.exchanges:
            self.lab.sims[ex].fresh()
            per_exchange(ex)

    def worker_runs(self, ex: str) -> None:
        log(f"{ex}: worker runs ({self.results['listed'][ex]} perpetuals listed)")
        symbols, floor = self.symbols(ex), self.floor(ex)
        measured = 1 if self.quick else 2
        known = {n: self.trial(ex, floor, symbols[:n], "cost", measured) for n in self.args.sizes}
        if self.args.search:
            self.search(ex, None, known, symbols)
            for depth in OTHER_DEPTHS.get(ex, ()):
                self.search(ex, depth, {}, symbols)

    def trial(self, ex: str, floor: Floor, symbols: list[str], purpose: str, measured: int = 1,
              proxies: list[str] = ()) -> dict:
        result = trial(self.lab, ex, floor, symbols, purpose, measured, proxies=proxies)
        self.results["trials"][ex].append(result)
        return result

    def search(self, ex: str, depth, known: dict, symbols: list[str]) -> None:
        """Seeded at the most symbols the throttle sustains on paper and one more: they settle the search at
        once where the budget is the limit. Near a limit, REPEATS searches in all (repeated_search)."""
        floor = self.floor(ex, depth)
        cap = min(len(symbols), self.args.max_n or len(symbols))

        def run(n):
            return self.trial(ex, floor, symbols[:n], "search")
        for n in (floor.most_symbols(sustained=True), floor.most_symbols(sustained=True) + 1):
            if 0 < n <= cap and n not in known:
                known[n] = run(n)
        found = self.repeated_search(run, floor, known, cap, 1)
        self.results["max_n"].setdefault(ex, {})[str(depth or "max")] = found
        log(f"  {ex} depth {floor.shown_depth}: largest N at 5 s = {found['largest']} (runs {found['values']}; "
            f"smallest failing {found['smallest_failing']})")

    def repeated_search(self, run, floor: Floor, known: dict, cap: int, ips: int) -> dict:
        """The search, then where its answer sits near a limit (bench.workers.needs_repeats) REPEATS - 1 more
        on fresh runs, summarized as lowest / median (bench.workers.summarize). No probe above one over what
        the published budget allows: that one must fail."""
        ceiling = floor.most_symbols(ips=ips) + 1
        seen: dict[int, dict] = dict(known)

        def recorded(n):
            seen[n] = run(n)
            return seen[n]
        first = search_max_n(recorded, known, cap, self.args.search_runs, ceiling)
        first["cap"] = cap
        runs = [first]
        at_largest = seen.get(first["largest"], {}).get("cycle_seconds_max")
        bounds = [floor.most_symbols(ips=ips), floor.most_symbols(sustained=True, ips=ips),
                  floor.latency_allows(LATENCY)]
        if needs_repeats(first, bounds, at_largest):
            while len(runs) < self.args.repeats_near:
                again = repeat_search(run, runs[-1], cap, self.args.search_runs // 2, ceiling)
                runs.append({**again, "cap": cap})
        return {**summarize(runs), "cap": cap}

    def ip_scaling(self, ex: str) -> None:
        """The largest N at 5 s with 1, 2, 3 addresses (the machine's own and proxies through the simulator),
        seeded around that many times what one address sustains on paper."""
        floor, symbols, sim = self.floor(ex), self.symbols(ex), self.lab.sims[ex]
        cap = min(len(symbols), self.args.max_n or len(symbols))
        for ips in self.args.ip_counts:
            proxies = sim.proxies(ips - 1)

            def run(n, proxies=proxies):
                return self.trial(ex, floor, symbols[:n], "ips", proxies=proxies)
            found = dict(self.results["max_n"].get(ex, {}).get("max") or {}) if ips == 1 else {}
            if not found:   # one IP: section 2's search when it ran
                known: dict[int, dict] = {}
                # What the k addresses' throttles sustain together (the bulk calls on one), a symbol per
                # address under it, and one over bracket the answer before the search starts.
                sustained = floor.most_symbols(sustained=True, ips=ips)
                for n in (sustained - ips, sustained, sustained + 1):
                    if 0 < n <= cap:
                        known[n] = run(n)
                found = self.repeated_search(run, floor, known, cap, ips)
            found.update(cap=cap, target=min(ips * floor.most_symbols(), cap))
            self.results["ips"].setdefault(ex, {})[str(ips)] = found
            log(f"  {ex} with {ips} IPs: largest N at 5 s = {found['largest']} (runs {found.get('values')}; "
                f"target {found['target']})")

    def peers(self, ex: str) -> None:
        sim, cycles = self.lab.sims[ex], 1 if self.quick else 2
        self.results["naive"][ex] = naive_loop(sim, ex, self.symbols(ex)[:self.args.naive_n], cycles)
        self.results["vision"][ex] = {str(n): vision_design(sim, ex, self.symbols(ex)[:n], cycles)
                                      for n in self.args.vision_n}

    def cpu(self, ex: str) -> None:
        # Its HTTP part sends the recorded requests again unthrottled (CPU time only): OKX's books-full, 10 per
        # 2 s, would refuse them. Latency stays: it costs no CPU.
        self.lab.sims[ex].fresh(rate_limits=False)
        r = self.results["cpu"][ex] = self.lab.inproc("cpu", ex, self.symbols(ex)[:5], "--repeats",
                                                      str(self.args.repeats))
        log(f"  {ex}: ccxt {r['ccxt_total_ms']:.2f} ms, product {r['product_ms']:.2f} ms "
            f"({100 * r['product_share']:.0f}%)")

    def board(self, ex: str) -> None:
        cpu = self.lab.inproc("board-cpu", ex, self.symbols(ex)[:5], "--repeats", str(self.args.board_repeats))
        log(f"  {ex}: {cpu['markets']} markets, {cpu['board_bytes'] / 1024:.0f} KB; ccxt {cpu['ccxt_ms']:.1f} ms, "
            f"join {cpu['join_ms']:.1f} ms, product {cpu['product_ms']:.1f} ms ({100 * cpu['product_share']:.0f}%)")
        since = time.time()
        delay = self.lab.inproc("board-delay", ex, self.symbols(ex)[:5], "--cycles", str(self.args.board_cycles),
                                data_exchange=DATA_EXCHANGE)
        time.sleep(0.5)   # the last board's receipt
        cpu["delays"] = board_delays(delay["cycles"], self.lab.listener.boards_of(ex, since))
        self.results["board"][ex] = cpu
        log(f"  {ex}: {len(cpu['delays'])} boards received of {len(delay['cycles'])} published")

    def soak(self, ex: str) -> None:
        self.lab.sims[ex].fresh(latency=0.0, rate_limits=False)
        r = self.results["soak"][ex] = self.lab.inproc("soak", ex, self.symbols(ex)[:5], "--cycles",
                                                       str(self.args.soak_cycles), "--warmup",
                                                       "10" if self.quick else "20")
        log(f"  {ex}: RSS {r['rss_warm_mb']:.1f} -> {r['rss_end_mb']:.1f} MB ({r['growth_pct']:+.1f}%) over "
            f"{r['cycles']} cycles in {r['cycles_seconds']:.0f} s, errors {r['errors']}")


def board_delays(marks: list[dict], receipts: list[tuple[float, int, int]]) -> list[dict]:
    """Each published board's receipt: the first one the listener got after its cycle's last bulk answer
    (cycles are a second apart, so the next cycle's board cannot be taken for it)."""
    out = []
    for mark in marks:
        got = [t for t, _, _ in receipts if t >= mark["bulk_answered"]]
        if got:
            out.append({"worker": mark["published"] - mark["bulk_answered"], "total": got[0] - mark["bulk_answered"],
                        "from_first": got[0] - mark["bulk_first_answered"]})
    return out


def import_seconds() -> float:
    t = time.perf_counter()
    subprocess.run([PY, "-c", "import worker"], cwd=ROOT, check=True)
    return time.perf_counter() - t


def meta(started: float, quick: bool, real_sizes: bool, repeats_near: int = REPEATS) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "seconds": time.time() - started,
            "commit": git("rev-parse", "--short", "HEAD"),
            "product_modified": bool(git("status", "--porcelain", "worker.py", "common", "tests/simulator")),
            "cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "ccxt": ccxt.__version__,
            "quick": quick, "load_start": LOAD_START, "load_end": os.getloadavg()[0], "latency": LATENCY,
            "simulator_real_sizes": real_sizes, "repeats_near": repeats_near}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="futures_scan benchmark (see the module docstring)")
    p.add_argument("--quick", action="store_true", help="smoke run, a few minutes; output to a temp dir")
    p.add_argument("--exchanges", default=",".join(EXCHANGES), type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--out", help="folder for benchmarks.md/.png/.json (default docs/, --quick: the work dir)")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="worker runs' N (3,20,100)")
    p.add_argument("--search", action=argparse.BooleanOptionalAction, help="the largest-N search (off with --quick)")
    p.add_argument("--max-n", type=int, help="the search's largest N (default: every listed perpetual)")
    p.add_argument("--search-runs", type=int, default=4,
                   help="worker runs a search may add beyond its seeds (4; a repeat half of it)")
    p.add_argument("--repeats-near", type=int, default=REPEATS,
                   help=f"searches in all where the answer sits near a limit ({REPEATS}; 1: no repeat)")
    p.add_argument("--ips", action=argparse.BooleanOptionalAction,
                   help="symbols at 5 s with several IPs, binance/bitget/gateio (off with --quick)")
    p.add_argument("--ip-counts", type=lambda s: [int(x) for x in s.split(",")], help="IPs per run (1,2,3)")
    p.add_argument("--naive-n", type=int, help="N of the naive loop (20; --quick 3)")
    p.add_argument("--vision-n", type=lambda s: [int(x) for x in s.split(",")],
                   help="N of the vision's asyncio design (20,100; --quick 3)")
    p.add_argument("--repeats", type=int, help="CPU per snapshot: calls averaged (200; --quick 30)")
    p.add_argument("--board-repeats", type=int, help="board CPU: cycles averaged (50; --quick 5)")
    p.add_argument("--board-cycles", type=int, help="board delay: cycles at 5 s (20; --quick 4)")
    p.add_argument("--soak-cycles", type=int, help="cycles of the soak (1000; --quick 50)")
    p.add_argument("--from-json", help="only render the page from an earlier benchmarks.json")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"sizes": [3] if quick else [3, 20, 100], "search": not quick, "ips": not quick,
                "ip_counts": [1, 2, 3], "naive_n": 3 if quick else 20,
                "vision_n": [3] if quick else [20, 100],
                "repeats": 30 if quick else 200, "board_repeats": 5 if quick else 50,
                "board_cycles": 4 if quick else 20, "soak_cycles": 50 if quick else 1000}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _interrupted(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        out = Path(args.out or ROOT / "docs")
    else:
        if not shutil.which("rabbitmqctl"):
            print("rabbitmqctl not found: run scripts/setup.sh (or scripts/bench.sh) first", file=sys.stderr)
            return 2
        work = Path(tempfile.mkdtemp(prefix="futures_scan_bench_"))
        out = Path(args.out) if args.out else (work if args.quick else ROOT / "docs")
        # SIGTERM (a timeout, a stopped session) unwinds like Ctrl-C: the Lab stops what it started by PID.
        signal.signal(signal.SIGTERM, _interrupted)
        with Lab(work) as lab:
            run = Run(args, lab)
            try:
                results = run.all()
            except BaseException:
                # An hour of measurements is not thrown away with the run: what was measured so far.
                partial = work / "benchmarks.partial.json"
                run.results["meta"] = meta(run.started, args.quick, lab.sims.real_sizes, args.repeats_near)
                partial.write_text(json.dumps(run.results, indent=1))   # --from-json renders it
                log(f"stopped; the figures so far: {partial}")
                raise
        out.mkdir(parents=True, exist_ok=True)
        (out / "benchmarks.json").write_text(json.dumps(results, indent=1))
        log(f"raw figures: {out / 'benchmarks.json'}")
    out.mkdir(parents=True, exist_ok=True)
    page = report.write(results, out)
    for line in report.summary_lines(results):
        print(line)
    log(f"wrote {page} ({results['meta']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
