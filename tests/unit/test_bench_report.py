"""The benchmark's arithmetic on synthetic measurements: the floor of the two venues whose budgets are not one
limit per IP (OKX's books-full has a limit of its own; Hyperliquid weighs each POST /info by its type), repeated
searches summarized as lowest / median with the target judged on the median, the search's probe ceiling, the
RSS target over every N measured, what bounds a figure, and the run's time estimate."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import estimate, report
from bench.budget import Charge, Floor, request_name
from bench.workers import NEAR, _symbol_of, exchange_weight, named, needs_repeats, repeat_search, search_max_n, summarize

pytestmark = pytest.mark.unit

BOOKS_FULL = "/api/v5/market/books-full"


def okx(depth: int = 5000) -> Floor:
    """OKX as VENUES has it: 20 / 2 s per endpoint, books-full 10, books 40; five bulk calls on endpoints of
    their own; a book per symbol."""
    bulk = [Charge(f"/api/v5/{p}", f"['public']:{p}", 1.0) for p in
            ("market/tickers", "public/funding-rate", "public/mark-price", "market/index-tickers", "public/open-interest")]
    book = ("market/books-full", BOOKS_FULL) if depth > 400 else ("market/books", "/api/v5/market/books")
    return Floor("okx", depth, bulk, [Charge(book[1], f"['public']:{book[0]}", 1.0)], 20, 2.0, True, 0.01,
                 notes={"book_threads": 4}, round_trip=0.05,
                 endpoint_limits={"market/books": 40, "market/books-full": 10, "public/funding-rate": 10,
                                  "public/mark-price": 10})


def hyperliquid() -> Floor:
    """100 weight / 5 s per IP; metaAndAssetCtxs 20 a cycle, l2Book 2 a symbol, both POST /info."""
    return Floor("hyperliquid", None, [Charge("/info?type=metaAndAssetCtxs", "['public']:info", 20.0)],
                 [Charge("/info?type=l2Book", "['public']:info", 2.0)], 100, 5.0, False, 0.01, "weight",
                 {"book_threads": 2}, round_trip=0.05)


# -- the floors ---------------------------------------------------------------------------------------------
def test_okx_is_bounded_by_the_books_endpoints_own_limit_not_the_budgets():
    floor = okx()
    # books-full: 10 per 2 s = 25 per 5 s, a book per request; the budget's 20 would claim 50.
    assert floor.most_symbols() == 25
    assert floor.binding == "['public']:market/books-full" and floor.binding_limit == 10
    assert floor.most_symbols(sustained=True) == int(10 * 5 / 2.06)   # each request held 2 s + 10 ms + 50 ms
    assert floor.describe_budget() == "10 requests / 2 s on market/books-full (per endpoint)"
    # At 400 levels `books` has 40 per 2 s: four times the symbols.
    assert okx(400).most_symbols() == 100
    # With 3 addresses each has the whole budget; the bulk calls are on endpoints of their own.
    assert floor.most_symbols(ips=3) == 75


def test_okx_load_and_share_count_the_books_endpoint_against_its_own_limit():
    floor = okx()
    cycle = {BOOKS_FULL: 24.0, "/api/v5/market/tickers": 1.0}
    assert floor.load(cycle) == 24.0
    assert floor.share(cycle) == pytest.approx(24 / (10 * 5 / 2.06))
    assert report.budget_bound(floor, 25) == pytest.approx(5.0)    # 25 books at 5 per second


def test_hyperliquid_is_bounded_by_weight_a_cycle_plus_weight_a_book():
    floor = hyperliquid()
    assert floor.most_symbols() == (100 - 20) // 2 == 40
    assert floor.weight(40) == 100
    assert floor.describe_budget() == "100 weight / 5 s per IP"
    # More addresses: the bulk call weighs on the first only, every other takes 50 books.
    assert floor.most_symbols(ips=2) == 40 + 50
    assert report.budget_bound(floor, 40) == pytest.approx(5.0)


def test_a_post_api_is_named_by_its_bodys_type_and_a_get_by_its_path():
    assert request_name("/info", "POST", "type=l2Book&coin=BTC") == "/info?type=l2Book"
    assert request_name("/info", "POST", {"type": "metaAndAssetCtxs"}) == "/info?type=metaAndAssetCtxs"
    assert request_name("/linear-swap-ex/market/depth", "GET", "contract_code=BTC-USDT&type=step0") == \
        "/linear-swap-ex/market/depth"
    assert request_name("/info", "POST", "") == "/info"


def test_the_simulators_log_is_read_by_request_name_and_weighed_by_the_bodys_type():
    entries = named([{"path": "/info", "method": "POST", "query": "type=l2Book&coin=BTC"},
                     {"path": "/info", "method": "POST", "query": "type=metaAndAssetCtxs"}])
    assert [e["request"] for e in entries] == ["/info?type=l2Book", "/info?type=metaAndAssetCtxs"]
    assert [exchange_weight("hyperliquid", e) for e in entries] == [2, 20]
    assert hyperliquid().weight(1) == sum(exchange_weight("hyperliquid", e) for e in entries)


def test_a_books_request_names_its_watched_symbol_in_each_venues_spelling():
    watched = {"BTCUSDC", "ETHUSDT"}
    assert _symbol_of({"query": "type=l2Book&coin=BTC"}, watched) == "BTCUSDC"          # Hyperliquid
    assert _symbol_of({"query": "instId=ETH-USDT-SWAP&sz=5000"}, watched) == "ETHUSDT"  # OKX
    assert _symbol_of({"query": "symbol=SOLUSDT"}, watched) is None


# -- repeated searches --------------------------------------------------------------------------------------
def trial(n: int, holds: bool, cycle: float = 4.0) -> dict:
    return {"n": n, "holds": holds, "cycle_seconds_max": cycle if holds else 5.3}


def test_repeats_are_summarized_as_lowest_and_median_with_every_run_kept():
    runs = [{"largest": n, "smallest_failing": n + 1, "capped": False, "exact": True} for n in (90, 88, 91)]
    found = summarize(runs)
    assert (found["largest"], found["lowest"], found["highest"]) == (90, 88, 91)
    assert found["values"] == [90, 88, 91] and found["runs"] == runs
    assert found["smallest_failing"] == 91   # the median run's
    # An even count: the lower middle one, an N that held in a run.
    assert summarize(runs + [{"largest": 95, "smallest_failing": 96, "capped": False, "exact": True}])["largest"] == 90


def test_the_target_is_judged_on_the_median_not_the_best_run():
    results = synthetic_results(values=[99, 100, 99])
    targets, _ = report.evaluate(results)
    row = next(t for t in targets if t.what.startswith("gateio: 100 symbols at 5 s"))
    assert row.met is False and "median of 3 searches: 99, 100, 99" in row.result
    results = synthetic_results(values=[100, 99, 100])
    row = next(t for t in report.evaluate(results)[0] if t.what.startswith("gateio: 100 symbols at 5 s"))
    assert row.met is True


def test_the_page_shows_the_lowest_and_says_the_median_is_judged():
    _, body = report.evaluate(synthetic_results(values=[99, 97, 100]))
    page = "\n".join(body)
    assert "| gateio | 300 | 99 | 97 (99 / 97 / 100) |" in page
    assert "the target is judged on the median" in page


def test_an_answer_near_a_limit_is_repeated_and_one_with_room_is_not():
    short = {"largest": 90, "capped": False, "cap": 450}
    assert needs_repeats(short, [100, 90, 196], 4.9)
    room = {"largest": 300, "capped": True, "cap": 300}
    assert not needs_repeats(room, [1998, 1816, 387], 1.7)
    assert needs_repeats(room, [1998, 1816, 387], NEAR * 5 + 0.1)       # every one held, but close to 5 s
    assert needs_repeats({**room, "cap": 400}, [1998, 1816, 387], 1.7)   # latency allows fewer than searched


def test_the_search_probes_one_over_the_budget_not_every_listed_symbol():
    ran = []

    def run(n):
        ran.append(n)
        return trial(n, n <= 15)
    found = search_max_n(run, {14: trial(14, True)}, cap=550, budget=4, ceiling=16)
    assert ran[0] == 16 and 550 not in ran
    assert found["largest"] == 15 and found["smallest_failing"] == 16 and not found["capped"]


def test_a_noisy_bracket_keeps_the_largest_that_held_below_the_first_failure():
    known = {267: trial(267, False), 270: trial(270, True), 260: trial(260, True)}
    found = search_max_n(lambda n: trial(n, n <= 262), known, cap=450, budget=4)
    assert found["largest"] < 267 and found["smallest_failing"] <= 267


def test_a_repeat_runs_fresh_at_the_previous_answer_and_one_over_it():
    ran = []

    def run(n):
        ran.append(n)
        return trial(n, n <= 88)
    again = repeat_search(run, {"largest": 90}, cap=450, budget=2)
    assert ran[:2] == [90, 91]        # the previous answer fails this time: 5% under it next
    assert ran[2] == 90 - 4
    assert again["largest"] <= 88


# -- memory over every N --------------------------------------------------------------------------------------
def test_the_rss_target_counts_every_run_the_whole_market_included():
    results = synthetic_results(values=[99, 99, 99])
    results["trials"]["gateio"].append({**cost_trial(500, "search"), "rss_warm_mb": 150.0, "rss_end_mb": 153.0})
    peaks = report.rss_peaks(results)
    assert peaks["gateio"] == (153.0, "N=500")
    targets, body = report.evaluate(results)
    rss = next(t for t in targets if t.what.startswith("RSS <= 100 MB"))
    assert rss.met is False and rss.result == "max 153 MB (gateio, N=500)"
    assert "gateio: up to 153 MB (N=500)" in rss.why
    assert any(line.startswith("| gateio |") and "153 (N=500)" in line for line in body)


def test_an_ip_scaling_run_counts_for_memory_too():
    results = synthetic_results(values=[99, 99, 99])
    results["trials"]["gateio"].append({**cost_trial(296, "ips"), "ips": 3, "rss_warm_mb": 99.0,
                                        "rss_end_mb": 120.0})
    assert report.rss_peaks(results)["gateio"] == (120.0, "N=296, 3 IPs")


# -- what bounds a figure ---------------------------------------------------------------------------------
def test_a_figure_at_the_throttle_is_the_budgets_and_the_same_on_a_dedicated_host():
    results = synthetic_results(values=[99, 99, 99])
    found = results["max_n"]["gateio"]["max"]
    bound, why = report.bound_of(results, "gateio", "max", found, gateio(), 1)
    assert bound == "the budget" and "same on a dedicated host" in why


def test_a_figure_under_every_bound_with_busy_cores_names_the_simulators_share():
    results = synthetic_results(values=[60, 60, 60])
    for t in results["trials"]["gateio"]:
        t.update(worker_cpu_share=0.7, simulator_cpu_share=0.6)
    found = results["max_n"]["gateio"]["max"]
    bound, why = report.bound_of(results, "gateio", "max", found, gateio(), 1)
    assert bound == "this machine's 2 cores"
    assert "the simulator 60%" in why and "dedicated host would allow up to 99 (the throttle)" in why


def test_the_bound_says_whether_the_first_failing_n_failed_by_its_cycle_or_its_load():
    results = synthetic_results(values=[99, 99, 99])
    found = results["max_n"]["gateio"]["max"]
    _, why = report.bound_of(results, "gateio", "max", found, gateio(), 1)
    assert "N=100 failed by its cycle, 5.20 s" in why
    for t in results["trials"]["gateio"]:
        if t["n"] == 100:
            t.update(cycle_seconds_max=4.6, budget_share=1.03)
    # A run at that N that held is not the one that failed.
    results["trials"]["gateio"].append({**cost_trial(100, "search", cycle=4.9), "budget_share": 0.99})
    _, why = report.bound_of(results, "gateio", "max", found, gateio(), 1)
    assert "N=100 failed by its load, 103% of what one address's throttle sustains, in cycles of 4.60 s" in why


def test_every_listed_symbol_held_near_the_cadence_says_it_may_not_hold_elsewhere():
    results = synthetic_results(values=[500, 500, 500], capped=True, cycle=4.6)
    found = results["max_n"]["gateio"]["max"]
    floor = Floor("gateio", 300, [], [Charge("/book", "b", 1.0)], 2000, 10.0, True, 0.01, round_trip=0.05,
                  notes={"book_threads": 12})
    bound, why = report.bound_of(results, "gateio", "max", found, floor, 1)
    assert bound == "the market; the cycle near 5 s" and "may not hold on another run" in why


# -- the run's length -----------------------------------------------------------------------------------------
def test_the_estimate_counts_repeats_only_where_the_answer_is_near_a_limit():
    one = estimate.trial_seconds(gateio(), 99, 1, 0.05)
    near = estimate.search_seconds(gateio(), 500, 1, 0.05, repeats=3, seeds=2)
    assert near == pytest.approx(one * (2 + estimate.SEARCH_EXTRA_RUNS + 2 * estimate.REPEAT_RUNS))
    roomy = Floor("htx", None, [], [Charge("/d", "d", 1.0)], 800, 1.0, False, 0.01, round_trip=0.05,
                  notes={"book_threads": 8})
    assert estimate.search_seconds(roomy, 300, 1, 0.05, repeats=3, seeds=2) == pytest.approx(
        estimate.trial_seconds(roomy, 300, 1, 0.05))


def test_a_cycle_over_the_budget_takes_the_time_the_budget_allows_and_more_addresses_share_it():
    floor = hyperliquid()
    assert estimate.cycle_seconds(floor, 90, 0.05) == pytest.approx((20 + 180) / 20)
    assert estimate.cycle_seconds(floor, 90, 0.05, ips=2) == pytest.approx((20 + 180) / 40)


def test_the_estimate_sums_the_phases_of_a_run():
    args = SimpleNamespace(exchanges=["gateio"], quick=False, sizes=[3], search=True, ips=False, ip_counts=[1],
                           max_n=None, naive_n=20, vision_n=[20], board_cycles=20, soak_cycles=1000, repeats_near=3)
    phases = estimate.estimate_seconds(args, {"gateio": {"max": gateio()}}, {"gateio": 500}, 0.05,
                                       {"gateio": 0.05}, ())
    assert phases["worker runs"] == pytest.approx(estimate.trial_seconds(gateio(), 3, 2, 0.05))
    assert phases["searches"] == pytest.approx(estimate.search_seconds(gateio(), 500, 1, 0.05, 3, 2))
    assert phases["IP scaling"] == 0
    assert phases["in-process"] == pytest.approx(estimate.INPROC_SECONDS + 100 + 5
                                                 + 1000 / estimate.SOAK_CYCLES_PER_SECOND + 5)
    assert estimate.describe(phases).startswith(f"about {sum(phases.values()) / 60:.0f} min")


# -- synthetic results ------------------------------------------------------------------------------------
def gateio() -> Floor:
    return Floor("gateio", 300, [Charge("/tickers", "t", 1.0), Charge("/contracts", "c", 1.0)],
                 [Charge("/order_book", "o", 1.0)], 200, 10.0, True, 0.01, round_trip=0.05,
                 notes={"book_threads": 2})


def cost_trial(n: int, purpose: str = "cost", holds: bool = True, cycle: float = 3.0) -> dict:
    return {"exchange": "gateio", "n": n, "depth": 300, "purpose": purpose, "ips": 1, "holds": holds,
            "cycles": [{"cycle": 2, "seconds": cycle, "requests": n + 2, "books": n, "per_symbol": n, "bulk": 2,
                        "weight": n + 2, "load": n, "share": 0.5, "paths": ["/tickers", "/contracts", "/order_book"]}],
            "cycle_seconds_max": cycle, "cycle_seconds_mean": cycle, "first_cycle_seconds": cycle,
            "broker_outage": False, "statuses": {"200": n + 2}, "delays": [0.01], "rate_limited": [],
            "boards": 2, "board_markets": 500, "cycles_run": 2, "per_ip": {}, "rss_warm_mb": 95.0,
            "rss_end_mb": 96.0, "first_snapshot_seconds": 1.0, "worker_cpu_share": 0.08,
            "simulator_cpu_share": 0.07}


def synthetic_results(values: list[int], capped: bool = False, cycle: float = 3.0) -> dict:
    runs = [{"largest": v, "smallest_failing": None if capped else v + 1, "capped": capped, "exact": True,
             "cap": 500} for v in values]
    trials = [cost_trial(3)] + [cost_trial(v, "search", cycle=cycle) for v in values]
    trials += [] if capped else [cost_trial(v + 1, "search", holds=False, cycle=5.2) for v in values]
    floor = gateio().to_dict()
    floor["notes"]["perpetuals"] = 500
    return {"trials": {"gateio": trials}, "floors": {"gateio": {"max": floor}},
            "max_n": {"gateio": {"max": {**summarize(runs), "cap": 500}}}, "listed": {"gateio": 500},
            "naive": {}, "vision": {}, "cpu": {}, "board": {}, "soak": {}, "ips": {},
            "meta": {"latency": 0.05, "cores": 2, "repeats_near": 3}}
