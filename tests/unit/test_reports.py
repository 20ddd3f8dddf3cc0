"""Worker statistics reports as the controller accepts them, and totals summed across worker processes."""
from __future__ import annotations

import json

import pytest

from common.stats import (MAX_REPORT_BYTES, Counters, ExchangeTotals, ReportError, WorkerStatistics, WorkerTotals,
                          parse_report)

pytestmark = pytest.mark.unit

STALE = 25.0


def report(pid=100, started_at=1000.0, success=0, errors=0, published=0, publish_failed=0, exchange="bybit",
           **fields) -> dict:
    stats = WorkerStatistics(exchange=exchange, pid=pid, started_at=started_at,
                             totals=Counters(success, errors, published, publish_failed), cycles=3)
    return {**stats.to_message(), "timestamp": 1_800_000_000.0, **fields}  # fixed: test ids stay the same


def raw(message) -> bytes:
    return json.dumps(message).encode()


def parsed(**kwargs):
    return parse_report(raw(report(**kwargs)))


# -- validation ------------------------------------------------------------------------------------
def test_a_workers_own_message_is_accepted():
    r = parse_report(raw(report(success=7, errors=1, published=6, publish_failed=1)))
    assert (r.exchange, r.pid, r.cycles, r.final) == ("bybit", 100, 3, False)
    assert r.totals.counters() == Counters(7, 1, 6, 1)
    assert parse_report(raw(WorkerStatistics("bybit", 7).to_message(final=True))).final is True
    assert parse_report(raw(report(flavour=2))).pid == 100  # fields the controller does not read are ignored
    assert parse_report(raw(report(shard="2/3"))).shard == "2/3"


@pytest.mark.parametrize("body, problem", [
    (raw({"totals": {"success": "a"}}), "Field required"),
    (raw(report(totals={"success": "a", "errors": 0, "published": 0, "publish_failed": 0})), "totals.success"),
    (raw({k: v for k, v in report().items() if k != "cycles"}), "cycles: Field required"),
    (raw(report(cycles=-1)), "cycles: Input should be greater than or equal to 0"),
    (raw(report(cycles=True)), "cycles: Input should be a valid integer"),
    (raw(report(cycles=2.0)), "cycles: Input should be a valid integer"),
    (raw(report(cycles=10 ** 30)), "cycles: Input should be less than or equal to"),
    (raw(report(success=-5)), "totals.success: Input should be greater than or equal to 0"),
    (raw(report(pid="100")), "pid: Input should be a valid integer"),
    (raw(report(exchange="bybit.#")), "exchange: String should match pattern"),
    (raw(report(exchange=["bybit"])), "exchange: Input should be a valid string"),
    (raw(report(unlisted_symbols=["X" * 101])), "unlisted_symbols.0: String should have at most 100 characters"),
    (raw(report(unlisted_symbols=["A/B"] * 1001)), "unlisted_symbols: List should have at most 1000 items"),
    (raw(report(final="yes")), "final: Input should be a valid boolean"),
    (json.dumps(report(timestamp=float("nan"))).encode(), "timestamp: Input should be a finite number"),
    (b"[" * 100000, "Invalid JSON: recursion limit exceeded"),
    (b"\xff\xfe{}", "report is not UTF-8"),
    (b"{not json", "Invalid JSON"),
    (b"[1, 2]", "Input should be an object"),
    (b'{"pad": "' + b"x" * MAX_REPORT_BYTES + b'"}', f"exceeds {MAX_REPORT_BYTES}"),
])
def test_invalid_reports_are_refused_naming_the_problem(body, problem):
    with pytest.raises(ReportError) as refused:
        parse_report(body)
    assert problem in str(refused.value)


# -- totals across processes ------------------------------------------------------------------------
def test_processes_running_at_once_are_summed():
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=1, success=10, published=9, publish_failed=1), now=0)
    totals.record(parsed(pid=2, success=5, errors=2, published=5), now=1)
    totals.record(parsed(pid=1, success=12, published=11, publish_failed=1), now=5)  # latest report counts
    assert totals.total() == Counters(17, 2, 16, 1)
    assert len(totals.live) == 2


def test_a_final_report_is_folded_and_its_totals_kept():
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=1, success=10, published=10), now=0)
    totals.record(parsed(pid=1, success=11, published=11, final=True), now=1)
    assert totals.live == {} and totals.base == Counters(11, 0, 11, 0)
    totals.record(parsed(pid=2, started_at=2000.0, success=3, published=3), now=2)  # the restarted worker
    assert totals.total() == Counters(14, 0, 14, 0)


def test_a_restarted_process_is_folded_once_silent_and_its_totals_kept():
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=1, started_at=1000.0, success=10), now=0)  # killed: no final report
    totals.record(parsed(pid=2, started_at=2000.0, success=1), now=5)
    assert len(totals.live) == 2  # not silent long enough to be called gone
    totals.record(parsed(pid=2, started_at=2000.0, success=4), now=STALE + 1)
    assert list(totals.live) == [(2, 2000.0)] and totals.base == Counters(success=10)
    assert totals.total() == Counters(success=14)


def test_a_silent_process_without_a_newer_one_stays_live():
    """A shard with slow cycles is not gone just because it is silent; only a newer process supersedes."""
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=2, started_at=2000.0, success=4), now=0)
    totals.record(parsed(pid=1, started_at=1000.0, success=10), now=STALE * 10)
    assert len(totals.live) == 2 and totals.total() == Counters(success=14)


def test_a_folded_process_that_reports_again_is_not_counted_twice():
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=1, started_at=1000.0, success=10), now=0)
    totals.record(parsed(pid=2, started_at=2000.0, success=1), now=STALE + 1)  # folds pid 1
    assert totals.base == Counters(success=10)
    totals.record(parsed(pid=1, started_at=1000.0, success=12), now=STALE + 2)  # it was alive after all
    assert totals.total() == Counters(success=13) and totals.base == Counters()


def test_live_processes_are_capped_and_the_sums_kept():
    totals = ExchangeTotals(STALE, max_live=3, max_folded=2)
    for pid in range(1, 11):
        totals.record(parsed(pid=pid, success=pid), now=pid)
    assert len(totals.live) == 3 and len(totals.folded) == 2
    assert sorted(pid for pid, _ in totals.live) == [8, 9, 10]  # the least recently heard of were folded
    assert totals.total() == Counters(success=sum(range(1, 11)))


def test_worker_totals_answer_the_vision_fields_and_refuse_unknown_exchanges():
    workers = WorkerTotals(["bybit", "gateio"], stale_after=STALE)
    workers.record(parsed(pid=1, success=10, errors=1, published=9, publish_failed=1), now=0)
    workers.record(parsed(pid=2, success=5, published=5), now=0)
    workers.record(parsed(pid=3, exchange="gateio", success=7, errors=2, published=7, unlisted_symbols=["X/Y:Y"]),
                   now=0)
    with pytest.raises(ReportError, match="exchange 'htx' is not in the controller's configuration"):
        workers.record(parsed(pid=4, exchange="htx", success=99), now=0)
    data = workers.response_data()
    assert data["exchange_success"] == {"bybit": 15, "gateio": 7}
    assert data["exchange_errors"] == {"bybit": 1, "gateio": 2}
    assert (data["rabbitmq_published"], data["rabbitmq_failed"]) == (21, 1)
    assert data["workers"]["gateio"]["pid"] == 3 and data["workers"]["gateio"]["unlisted_symbols"] == ["X/Y:Y"]
    assert data["workers"]["bybit"]["live_processes"] == 2 and data["workers"]["bybit"]["cycles"] == 3
    assert "htx" not in data["workers"]


def test_totals_going_back_are_refused_and_change_nothing():
    totals = ExchangeTotals(STALE)
    totals.record(parsed(pid=1, success=10, published=10), now=0)
    with pytest.raises(ReportError, match="totals of process 1 went back"):
        totals.record(parsed(pid=1, success=11, published=9), now=1)
    totals.record(parsed(pid=1, success=10, published=10, final=True), now=2)
    with pytest.raises(ReportError, match="went back"):  # also once folded
        totals.record(parsed(pid=1, success=3, published=3), now=3)
    assert totals.total() == Counters(10, 0, 10, 0) and totals.live == {}
