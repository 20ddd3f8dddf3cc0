"""The broker going away, as operators meet it: a RabbitMQ node of these tests' own (tests/conftest.py,
PrivateBroker) is stopped and started again under real workers and under the whole system run by supervisord,
so that no other test shares the outage and these run beside the rest of the suite."""
from __future__ import annotations

import time

import pytest

from common.symbols import routing_key
from tests.conftest import EXCHANGES, Consumer, PrivateBroker, Process, symbol_on, write_config
from tests.test_system import ADDED, ADDED_BY, INTERVAL, LOST, PROGRAMS, added_snapshot, running_system

OUTAGE_WORKERS = ("bybit", "gateio", "hyperliquid")


@pytest.fixture(scope="module")
def broker():
    node = PrivateBroker()
    yield node
    node.close()


@pytest.fixture(scope="module")
def outage_system(simulator, broker, tmp_path_factory):
    with running_system(simulator, broker, tmp_path_factory.mktemp("system")) as system:
        yield system


@pytest.fixture
def workers(own_sim, broker, tmp_path):
    """start(exchange) -> a worker on the private broker; a consumer of their snapshots."""
    config = write_config(tmp_path / "config.json", broker, own_sim, exchanges=OUTAGE_WORKERS,
                          symbols=["BTC/USDT:USDT", "BTC/USDC:USDC"])
    started = []
    consumer = Consumer(broker, "futures_data", "futures.#")

    def start(exchange: str) -> Process:
        started.append(Process(["worker.py", exchange, "--config", str(config)],
                               tmp_path / f"{exchange}-{len(started)}.log"))
        return started[-1]
    yield start, consumer
    for worker in started:
        worker.kill()
    consumer.close()


def test_broker_outage_and_late_broker_at_start(workers, broker):
    start, consumer = workers
    running = {exchange: start(exchange) for exchange in OUTAGE_WORKERS}
    for exchange in OUTAGE_WORKERS:
        key = routing_key(exchange, symbol_on(exchange, "BTC"))
        consumer.wait_for(lambda k, b, key=key: k == key, 4 * INTERVAL, f"a first {key}")
    offsets = {ex: len(w.log_text()) for ex, w in running.items()}
    broker.stop_app()
    try:
        for exchange, worker in running.items():
            worker.wait_for_log(r"Lost the RabbitMQ connection|Cannot connect to RabbitMQ", 2 * INTERVAL,
                                offsets[exchange])
        late = start("gateio")  # a second gateio worker that starts while the broker is down
        late.wait_for_log(r"Cannot connect to RabbitMQ", 10)
        time.sleep(INTERVAL)  # let the outage last through a full cycle of every worker
    finally:
        broker.start_app()
    back = time.time()
    for exchange in OUTAGE_WORKERS:
        key = routing_key(exchange, symbol_on(exchange, "BTC"))
        consumer.wait_for(lambda k, b, key=key: k == key and b["timestamp"] >= back * 1000, 40, f"{key} again")
    late.wait_for_log(r"Reconnected to RabbitMQ", 40)
    assert late.terminate() == 0
    assert all(w.proc.poll() is None for w in running.values())
    for exchange, worker in running.items():
        worker.wait_for_log(r"RabbitMQ: \d+ published, [1-9]\d* failed", 3 * 10, offsets[exchange])


def test_broker_stopped_20s_mid_run_nothing_exits_and_everything_resumes(outage_system):
    outage_system.ensure_added()
    before = outage_system.sup.wait_running()
    offsets = outage_system.sup.offsets()
    outage_system.rabbit.stop_app()
    stopped = time.time()
    try:
        for program in PROGRAMS:
            outage_system.sup.wait_for_log(program, LOST, 2 * INTERVAL, offsets[program])
        while time.time() < stopped + 20:
            assert outage_system.sup.status() == before, "a process exited during the broker outage"
            time.sleep(1)
    finally:
        outage_system.rabbit.start_app()
    back = time.time()
    for exchange in EXCHANGES:
        outage_system.snapshot(exchange, "BTC/USDT:USDT", after=back, timeout=40)
    resumed = time.time() - back
    response = outage_system.control("get_symbols", timeout=30)
    assert response["success"] is True and ADDED in response["data"]["symbols"], response
    assert outage_system.sup.status() == before
    assert "gave up" not in outage_system.sup.log("supervisord", offsets["supervisord"])
    print(f"publishing resumed {resumed:.1f}s after the broker's return")


def test_supervisord_started_while_the_broker_is_down(outage_system):
    """A fresh supervisord while RabbitMQ is down: every process starts, waits, and never ends FATAL or
    EXITED; once the broker is back, snapshots flow and the control API answers, with the set the
    controller persisted (the symbol added at run time) rather than the config's."""
    outage_system.ensure_added()
    outage_system.sup.shutdown()
    offsets = outage_system.sup.offsets()
    outage_system.rabbit.stop_app()
    stopped = time.time()
    try:
        outage_system.sup.start()
        running = outage_system.sup.wait_running(timeout=20)
        for program in PROGRAMS:
            outage_system.sup.wait_for_log(program, r"Cannot connect to RabbitMQ", 15, offsets[program])
        while time.time() < stopped + 15:
            assert outage_system.sup.status() == running, "a process exited while the broker was down"
            time.sleep(1)
    finally:
        outage_system.rabbit.start_app()
    back = time.time()
    for exchange in EXCHANGES:
        outage_system.snapshot(exchange, "BTC/USDT:USDT", after=back, timeout=40)
    for exchange in ADDED_BY:
        added_snapshot(outage_system, exchange, after=back, timeout=2 * INTERVAL)
    print(f"publishing started {time.time() - back:.1f}s after the broker's return")
    response = outage_system.control("get_symbols", timeout=30)
    assert response["success"] is True and ADDED in response["data"]["symbols"], response
    assert outage_system.sup.status() == running
    sup_log = outage_system.sup.log("supervisord", offsets["supervisord"])
    assert "exited:" not in sup_log and "gave up" not in sup_log, sup_log
    # Not needed by any other test (System.up starts it again), and the CPU it takes would slow the tests
    # that start systems of their own.
    outage_system.sup.shutdown()
