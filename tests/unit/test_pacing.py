"""The arithmetic of the throttle benchmark: what the throttle sustains once a request is held from sending
until a window after its answer (bench/budget.py), and the rates, spans and conclusions bench/pacing.py
computes from the simulator's log."""
from __future__ import annotations

import pytest

from bench.budget import Charge, Floor
from bench.pacing import book_phases, budget_rate, conclusions, hog_cost, measured_span, phase_rate, refusals

pytestmark = pytest.mark.unit

BOOK = "/api/v2/mix/market/merge-depth"


def bitget(round_trip: float | None = 0.05) -> Floor:
    """20 requests / 1 s per endpoint; two bulk calls on endpoints of their own, one book per symbol."""
    bulk = [Charge("/api/v2/mix/market/tickers", "public:tickers", 1.0),
            Charge("/api/v2/mix/market/current-fund-rate", "public:fund", 1.0)]
    return Floor("bitget", "max", bulk, [Charge(BOOK, "public:merge-depth", 1.0)], 20, 1.0, True, 0.01,
                 round_trip=round_trip)


def binance(round_trip: float | None = 0.05, guard: float = 0.01) -> Floor:
    """200 weight / 5 s per IP; bulk 40 + 5 + 10, a book of 1000 levels weighs 20."""
    bulk = [Charge("/fapi/v1/ticker/24hr", "a", 40.0), Charge("/fapi/v1/ticker/bookTicker", "b", 5.0),
            Charge("/fapi/v1/premiumIndex", "c", 10.0)]
    return Floor("binance", 1000, bulk, [Charge("/fapi/v1/depth", "d", 20.0)], 200, 5.0, False, guard,
                 "weight", round_trip=round_trip)


def test_the_round_trip_is_held_too_so_the_throttle_sustains_less_than_window_plus_guard_says():
    floor = bitget(0.05)
    assert floor.hold == pytest.approx(1.06)
    assert floor.sustained_load() == pytest.approx(100 / 1.06)
    assert floor.sustained_share() == pytest.approx(1 / 1.06)
    # 100 requests per 5 s published; 94.3 sustained; the bulk calls have endpoints of their own.
    assert floor.most_symbols() == 100
    assert floor.most_symbols(sustained=True) == 94
    assert bitget(0.0).most_symbols(sustained=True) == 99       # window + guard alone would claim 99
    assert binance(0.05).most_symbols(sustained=True) == int((1000 / 5.06 - 55) // 20)   # 7


def test_a_floor_from_before_the_round_trip_keeps_its_figures_and_its_words():
    old = binance(round_trip=None, guard=0.1)
    assert old.hold == pytest.approx(5.1)
    assert old.most_symbols(sustained=True) == int((1000 / 5.1 - 55) // 20)
    assert old.hold_rule() == "each request held 100 ms longer than the exchange holds it"
    assert Floor.from_dict({k: v for k, v in old.to_dict().items() if k != "round_trip"}).round_trip is None
    new = bitget(0.055)
    assert "55 ms" in new.hold_rule() and "after its answer" in new.hold_rule() and "1.065 s" in new.hold_rule()


def entry(t: float, path: str, weight: float = 1.0) -> dict:
    return {"time": t, "path": path, "weight": weight}


def test_budget_rate_is_the_busiest_book_endpoint_where_each_endpoint_counts_apart_and_the_ip_elsewhere():
    per_endpoint = [entry(0.0, "/api/v2/mix/market/tickers")] + [entry(0.1 * i, BOOK) for i in range(10)]
    assert budget_rate(bitget(), per_endpoint, 0.0, 1.0) == pytest.approx(10.0)    # the tickers call not counted
    assert budget_rate(bitget(), per_endpoint, 0.0, 0.5) == pytest.approx(10.0)    # [0, 0.5): 5 books
    per_ip = [entry(0.0, "/fapi/v1/ticker/24hr", 40)] + [entry(1.0 + i, "/fapi/v1/depth", 20) for i in range(3)]
    assert budget_rate(binance(), per_ip, 0.0, 5.0) == pytest.approx(100 / 5)
    assert budget_rate(binance(), per_ip, 1.0, 1.0) == 0.0


def test_the_measured_span_leaves_the_cold_first_cycle_out_when_there_are_enough():
    assert measured_span([0.0, 6.0, 11.0, 16.0]) == (6.0, 16.0)
    assert measured_span([0.0, 6.0]) == (0.0, 6.0)
    assert measured_span([0.0]) is None


def test_the_book_phase_rate_counts_from_the_first_book_to_the_last_of_each_measured_cycle():
    floor = bitget()
    starts = [0.0, 5.0, 10.0, 15.0]
    log = []
    for start in starts[:3]:
        log.append(entry(start, "/api/v2/mix/market/tickers"))
        # a 1 s bulk phase, then a window's burst of 20 books, then 31 books 0.1 s apart: 10 requests / s steady
        log += [entry(start + 1.0 + 0.01 * i, BOOK) for i in range(20)]
        log += [entry(start + 1.0 + 0.1 * i, BOOK) for i in range(1, 31)]
    phases = book_phases(floor, log, starts)
    assert phases == [pytest.approx((7.0, 9.0)), pytest.approx((12.0, 14.0))]   # the first window left out
    assert phase_rate(floor, log, phases) == pytest.approx(10.0)
    assert budget_rate(floor, log, 5.0, 15.0) == pytest.approx(100 / 10)    # whole cycles: books only, bulk phase idle
    assert phase_rate(floor, log, []) is None
    short = [entry(t, BOOK) for t in (5.5, 6.5, 10.5, 11.5)] + [entry(t, "/x") for t in starts]
    assert book_phases(floor, short, starts) == []     # books over less than two windows: no steady part


def run(ex: str, hogs: int, refused: int = 0, peak: float = 0.9, achieved: float = 0.8, books: float = 0.95,
        bound: bool = True) -> dict:
    return {"exchange": ex, "hogs": hogs, "refused": refused, "peak_share": peak, "achieved_share": achieved,
            "books_share": books, "sustained_share": 0.94, "bound": bound, "cycle_seconds_max": 5.2}


def test_refusals_count_429_418_and_bybits_ban_403():
    assert refusals({"200": 50, "429": 1, "418": 2, "403": 3, "500": 4}) == 6
    assert refusals({"200": 50}) == 0


def test_conclusions_say_no_when_one_run_was_refused_or_a_window_held_too_much():
    good = [run("bitget", 0), run("bitget", 2), run("bybit", 0, bound=False), run("bybit", 2, bound=False)]
    held = {claim: ok for claim, ok, _ in conclusions(good, 2)}
    assert held["0 x 429/418/403 on every exchange with 2 CPU hogs"] is True
    assert held["0 x 429/418/403 on every exchange without a hog"] is True
    assert held["no window of any exchange held more than its budget (peak share <= 100 %)"] is True

    bad = [run("bitget", 0), run("bitget", 2, refused=1, peak=1.05)]
    said = {claim: (ok, figures) for claim, ok, figures in conclusions(bad, 2)}
    assert said["0 x 429/418/403 on every exchange with 2 CPU hogs"] == (False, "bitget 1")
    assert said["0 x 429/418/403 on every exchange without a hog"][0] is True
    ok, figures = said["no window of any exchange held more than its budget (peak share <= 100 %)"]
    assert ok is False and "105.0 %" in figures and "bitget, 2 hogs" in figures


def test_throughput_is_stated_only_where_the_throttle_sets_n_and_the_hogs_cost_relative_to_alone():
    runs = [run("bitget", 0, achieved=0.80, books=0.95), run("bitget", 2, achieved=0.60, books=0.90),
            run("gateio", 0, achieved=0.90, books=0.99), run("gateio", 2, achieved=0.90, books=0.97),
            run("bybit", 0, achieved=0.10, bound=False), run("bybit", 2, achieved=0.05, bound=False)]
    figures = {claim: text for claim, _, text in conclusions(runs, 2)}
    books = figures["throughput kept with 2 CPU hogs while books are fetched (the throttle's pacing), where the "
                    "throttle sets N"]
    assert books.startswith("90.0 %-97.0 % of the published budget") and "bybit" not in books
    assert hog_cost(runs, 2) == {"bitget": pytest.approx(-0.25), "gateio": pytest.approx(0.0)}


def test_a_run_spans_the_exchanges_longest_window_binances_minute():
    from bench.pacing import cycles_to_fill
    assert cycles_to_fill([60.0], 6) == 13        # 12 measured cycles of 5 s fill the minute, the first is cold
    assert cycles_to_fill([1.0], 6) == 6
    assert cycles_to_fill([10.0], 1) == 3
    assert cycles_to_fill([], 4) == 4
