"""Shards as operators run them on several hosts: three worker processes of one exchange with the same
config, `--shard k/3`, one controller, the real broker and the simulator."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from common.broker import STATS_EXCHANGE
from common.symbols import Shard, routing_key
from tests.conftest import ROOT, Consumer, Process, symbol_on, write_config
from tests.unit.test_shards import SYMBOLS, owners

INTERVAL = 5


@pytest.fixture
def cluster(own_sim, own_rabbit, tmp_path, request):
    """start_shard(k, n) -> worker process; the controller runs; `control(...)` is the control client. Bybit's
    shards unless the test names another exchange (indirect parametrization)."""
    exchange = getattr(request, "param", "bybit")
    symbols = [symbol_on(exchange, c.base) for c in own_sim.market.listed(exchange)]
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=[exchange], symbols=symbols)
    processes = [Process(["controller.py", "--config", str(config)], tmp_path / "controller.log")]
    processes[0].wait_for_log(r"Connected to RabbitMQ", 20)

    def start_shard(index: int, count: int) -> Process:
        processes.append(Process(["worker.py", exchange, "--config", str(config), "--shard", f"{index}/{count}"],
                                 tmp_path / f"{exchange}-{index}-of-{count}.log"))
        return processes[-1]

    def control(*args: str) -> dict:
        out = subprocess.run([sys.executable, "scripts/control_client.py", *args, "--config", str(config),
                              "--timeout", "15"], cwd=ROOT, capture_output=True, text=True, timeout=40)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    yield symbols, start_shard, control
    for process in processes:
        process.kill()


def published(log: str, exchange: str = "bybit") -> set[str]:
    return set(re.findall(rf"Published message to (futures\.{exchange}\.\S+)", log))


@pytest.mark.parametrize("cluster", ["bybit", "hyperliquid"], indirect=True)
def test_every_symbol_is_collected_by_exactly_one_shard_and_statistics_sum_them(cluster, own_rabbit):
    symbols, start_shard, control = cluster
    exchange = "hyperliquid" if symbols[0].endswith(":USDC") else "bybit"
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    boards = Consumer(own_rabbit, "futures_data", "board.*")
    try:
        shards = {index: start_shard(index, 3) for index in (1, 2, 3)}
        for index in shards:  # each has run two cycles
            stats.wait_for(lambda k, b, i=index: b["shard"] == f"{i}/3" and b["cycles"] >= 2, 4 * INTERVAL,
                           f"shard {index}'s second cycle")
        for index, process in shards.items():
            expected = {routing_key(exchange, s) for s in symbols if Shard(index, 3).owns(s)}
            assert published(process.log_text(), exchange) == expected, index
        assert set.union(*(published(p.log_text(), exchange) for p in shards.values())) == \
            {routing_key(exchange, s) for s in symbols}
        # One board per cycle, from the first shard.
        assert boards.since(0) and all(key == f"board.{exchange}" for key, _ in boards.since(0))
        assert ["Published the board" in p.log_text() for p in shards.values()] == [True, False, False]
        finals = {}
        for index, process in shards.items():
            assert process.terminate() == 0
            _, finals[index] = stats.wait_for(lambda k, b, i=index: b["shard"] == f"{i}/3" and b["final"],
                                              10, f"shard {index}'s final report")
        answer = control("get_statistics")["data"]
        assert answer["exchange_success"][exchange] == sum(r["totals"]["success"] for r in finals.values())
        assert sorted(answer["workers"][exchange]["shards"]) == ["1/3", "2/3", "3/3"]
        assert {s: d["totals"]["success"] for s, d in answer["workers"][exchange]["shards"].items()} == \
            {f"{i}/3": r["totals"]["success"] for i, r in finals.items()}
    finally:
        stats.close()
        boards.close()


def test_a_new_shard_collects_the_current_set_within_one_cycle(cluster, own_rabbit):
    """The set changed through the control API before the shard ever ran: its own symbols queue is new and
    empty, so it asks the controller, and its first cycle collects the current set, not the config's."""
    symbols, start_shard, control = cluster
    current = symbols[:6]
    assert control("set_symbols", ",".join(current))["success"]
    expected = {routing_key("bybit", s) for s in current if Shard(2, 2).owns(s)}
    assert expected, "the test needs symbols of shard 2/2 in the set"
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.#")
    try:
        shard = start_shard(2, 2)
        stats.wait_for(lambda k, b: b["shard"] == "2/2" and b["cycles"] >= 1, 3 * INTERVAL, "the first cycle")
        assert published(shard.log_text()) == expected
        assert re.search(r"Symbol set v\d+: " + re.escape(", ".join(current)), shard.log_text())
    finally:
        stats.close()


def test_the_same_shards_in_another_process_with_another_hash_seed():
    """Shards on different hosts must agree: Python's str hash is salted per process, the shard's is not."""
    code = ("from common.symbols import Shard; import sys; "
            "print(','.join(str(next(i for i in (1, 2, 3) if Shard(i, 3).owns(s))) for s in sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *SYMBOLS[:20]], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=ROOT)
    assert out.stdout.strip() == ",".join(str(owners(SYMBOLS[:20], 3)[s]) for s in SYMBOLS[:20])
