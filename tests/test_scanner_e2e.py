"""From the simulator through real workers and RabbitMQ to the scanner's JSON API: the SOL row (funding every
4 h on bybit and gateio, 8 h on binance) equals what the simulator's truth gives by hand, and a stopped
worker's legs go stale and leave the pair."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import Process, write_config
from tests.simulator import Simulator

INTERVAL = 5
STALE_AFTER = 8.0
EXCHANGES = ("binance", "bybit", "gateio")
SOL = "SOL/USDT:USDT"


@pytest.fixture
def chain(own_rabbit, tmp_path):
    sim = Simulator(extra_markets=2).start()
    sim.market.freeze()
    config = write_config(tmp_path / "config.json", own_rabbit, sim, exchanges=EXCHANGES, symbols=[SOL],
                          scanner={"listen": "127.0.0.1:0", "stale_after_seconds": STALE_AFTER})
    scanner = Process(["scanner.py", "--config", str(config)], tmp_path / "scanner.log")
    port = scanner.wait_for_log(r"Serving the page and the API on http://127\.0\.0\.1:(\d+)/", 20).group(1)
    scanner.wait_for_log(r"Consuming board\.\* and futures\.# from", 20)
    workers = {ex: Process(["worker.py", ex, "--config", str(config)], tmp_path / f"{ex}.log") for ex in EXCHANGES}
    yield sim, f"http://127.0.0.1:{port}", workers, scanner
    for process in (*workers.values(), scanner):
        process.kill()
    sim.stop()


def get(url: str) -> dict:
    """The API's answer; {} for a 404 (nothing published yet for that symbol)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise


def poll(probe, timeout: float, what: str):
    """probe() until truthy: an HTTP API has no event to await."""
    deadline = time.time() + timeout
    while not (result := probe()):
        assert time.time() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.2)
    return result


def sol_row(url: str, with_books: bool = True):
    rows = [r for r in get(url + "/api/opportunities?symbol=SOLUSDT")["rows"] if r["symbol"] == "SOL"]
    return rows[0] if rows and (rows[0]["at_size"] or not with_books) else None


def apr(truth: dict) -> float:
    return truth["funding_rate"] * 24 / truth["funding_interval_hours"] * 365


def test_the_sol_row_equals_the_simulators_truth_and_a_stopped_worker_goes_stale(chain):
    sim, url, workers, _ = chain
    truths = {ex: sim.truth(ex, SOL) for ex in EXCHANGES}
    poll(lambda: len(get(url + "/api/symbol/SOLUSDT").get("legs", [])) == len(EXCHANGES), 6 * INTERVAL,
         "three SOL legs")
    row = poll(lambda: sol_row(url), 3 * INTERVAL, "a SOL row with books")
    aprs = {ex: apr(t) for ex, t in truths.items()}
    assert {t["funding_interval_hours"] for t in truths.values()} == {4, 8}  # else the test could not tell
    long, short = min(aprs, key=aprs.get), max(aprs, key=aprs.get)
    assert (row["long"]["exchange"], row["short"]["exchange"]) == (long, short)
    assert row["funding_apr_spread"] == pytest.approx(aprs[short] - aprs[long], rel=1e-9)
    mid = (truths[short]["bid"] + truths[long]["ask"]) / 2
    assert row["price_spread_bps"] == pytest.approx((truths[short]["bid"] - truths[long]["ask"]) / mid * 1e4,
                                                    rel=1e-6)
    for side, exchange in (("long", long), ("short", short)):
        leg, truth = row[side], truths[exchange]
        assert (leg["bid"], leg["ask"]) == (truth["bid"], truth["ask"])
        assert leg["funding_interval_hours"] == truth["funding_interval_hours"]
        assert leg["funding_apr"] == pytest.approx(aprs[exchange], rel=1e-9)
        basis = (truth["mark_price"] - truth["index_price"]) / truth["index_price"] * 1e4
        assert leg["basis_bps"] == pytest.approx(basis, rel=1e-6)
        assert leg["age_seconds"] <= STALE_AFTER
    assert set(row["at_size"]) == {"10000", "100000"}
    assert row["at_size"]["10000"]["long_fill"] == row["at_size"]["10000"]["short_fill"] == 1

    # A stopped worker's legs go stale: shown as such, never paired.
    stopped = long
    assert workers[stopped].terminate() == 0
    detail = poll(lambda: (d := get(url + "/api/symbol/SOLUSDT")) and
                  any(leg["exchange"] == stopped and leg["stale"] for leg in d["legs"]) and d,
                  STALE_AFTER + 3 * INTERVAL, f"{stopped}'s SOL leg stale")
    assert [leg["stale"] for leg in detail["legs"] if leg["exchange"] != stopped] == [False, False]
    row = poll(lambda: sol_row(url, with_books=False), INTERVAL, "a SOL row")
    assert stopped not in (row["long"]["exchange"], row["short"]["exchange"])
    remaining = {ex: a for ex, a in aprs.items() if ex != stopped}
    assert row["funding_apr_spread"] == pytest.approx(max(remaining.values()) - min(remaining.values()), rel=1e-9)
