"""Worker statistics reports as the controller accepts them, and totals summed across worker processes."""
from __future__ import annotations

import json

import pytest

from common.stats import (MAX_REPORT_BYTES, MAX_SHARD_LABELS, STATISTICS_BYTES_PER_EXCHANGE, Counters,
                          ExchangeTotals, ReportError, WorkerStatistics, WorkerTotals, parse_report)

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


# -- shard labels and the size of get_statistics ----------------------------------------------------------
@pytest.mark.parametrize("shard, problem", [("0/3", "the index must be from 1 to the count"),
                                            ("4/3", "the index must be from 1 to the count"),
                                            ("0/0", "the index must be from 1 to the count"),
                                            ("1/1000", "String should match pattern")])
def test_a_shard_label_that_cannot_exist_is_refused(shard, problem):
    with pytest.raises(ReportError, match=f"shard: .*{problem}"):
        parsed(shard=shard)


def test_shard_labels_per_exchange_are_bounded_the_least_recently_heard_going_first():
    workers = WorkerTotals(["bybit"], stale_after=STALE, shard_silence=10 ** 6)
    for index in range(1, 101):  # 100 processes, each claiming another label: a flood, or a big re-sharding
        workers.record(parsed(pid=index, shard=f"{index}/100", success=1), now=index)
    shards = workers.response_data(now=101)["workers"]["bybit"]["shards"]
    assert len(shards) == MAX_SHARD_LABELS == 32
    assert set(shards) == {f"{index}/100" for index in range(69, 101)}
    assert workers.response_data()["exchange_success"] == {"bybit": 100}  # totals keep every process


def test_a_silent_shard_label_is_forgotten_and_the_totals_kept():
    workers = WorkerTotals(["bybit"], stale_after=STALE, shard_silence=60)
    for index in (1, 2, 3):
        workers.record(parsed(pid=index, shard=f"{index}/3", success=10, final=True), now=0)
    for index in (1, 2):  # re-sharded from 3 to 2
        workers.record(parsed(pid=10 + index, started_at=2000.0, shard=f"{index}/2", success=1), now=30)
    assert sorted(workers.response_data(now=60)["workers"]["bybit"]["shards"]) == ["1/2", "1/3", "2/2", "2/3", "3/3"]
    data = workers.response_data(now=61)  # no report since: the reading itself forgets the silent ones
    assert sorted(data["workers"]["bybit"]["shards"]) == ["1/2", "2/2"]
    assert data["exchange_success"] == {"bybit": 32}
    workers.record(parsed(pid=11, started_at=2000.0, shard="1/2", success=2), now=200)
    assert sorted(workers.response_data()["workers"]["bybit"]["shards"]) == ["1/2"]  # a report prunes too


@pytest.mark.parametrize("routes, problem", [
    ({"direct\x1b[31m": {"requests": 1, "failures": 0}}, "routes.direct\\x1b[31m.[key]: String should match pattern"),
    ({"d\u00e9": {"requests": 1, "failures": 0}}, "String should match pattern"),
    ({"direct": {"requests": 1}}, "routes.direct.failures: Field required"),
    ({f"p{i}": {"requests": 1, "failures": 0} for i in range(66)}, "routes: Dictionary should have at most 65 items"),
])
def test_routes_are_printable_and_bounded(routes, problem):
    with pytest.raises(ReportError) as refused:
        parsed(routes=routes)
    assert problem in str(refused.value)


def test_get_statistics_stays_under_its_bound_with_every_field_at_its_maximum():
    """The largest answer reports can make, per configured exchange (docs/reference.md states the figure)."""
    workers = WorkerTotals(["bybit"], stale_after=STALE, shard_silence=10 ** 6)
    label = '"\\' * 100  # printable characters that JSON escapes: two bytes each
    routes = {label[:198] + str(i % 10) + chr(33 + i): {"requests": 10 ** 15, "failures": 10 ** 15}
              for i in range(65)}
    for index in range(1, 41):
        workers.record(parsed(pid=index, shard=f"{index}/999", success=10 ** 15, cycles=10 ** 15, routes=routes,
                              symbols_version=10 ** 15, unlisted_symbols=['"' * 100] * 1000), now=index)
    size = len(json.dumps(workers.response_data(now=41)))
    assert 1_000_000 < size <= STATISTICS_BYTES_PER_EXCHANGE == 1_250_000, size
