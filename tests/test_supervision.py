"""What README promises about processes coming and going: one that cannot start ends FATAL with the reason in
its log instead of restarting forever; SIGINT (Ctrl+C) stops a worker cleanly."""
from __future__ import annotations

import configparser
import json
import re
import signal
import time
from pathlib import Path

from tests.conftest import write_config
from tests.test_system import Supervisor, clean_env, copy_repo, kill_leftovers

# supervisord waits 1 s, 2 s, ... 10 s between the 10 retries (55 s), plus the starts themselves.
FATAL_WITHIN = 150


def one_worker_conf(root: Path, exchange: str) -> str:
    """supervisord.conf of the copy reduced to one worker: its [program:...] block verbatim (startsecs,
    startretries, autorestart as shipped), in the group `worker`, so that only one process keeps failing."""
    shipped = configparser.RawConfigParser()
    shipped.read(root / "supervisord.conf")
    reduced = configparser.RawConfigParser()
    for section in ("unix_http_server", "supervisord", "rpcinterface:supervisor", "supervisorctl",
                    f"program:{exchange}"):
        reduced[section] = dict(shipped[section])
    reduced["group:worker"] = {"programs": exchange, "priority": shipped["group:worker"]["priority"]}
    with open(root / "supervisord.one.conf", "w") as out:
        reduced.write(out)
    return "supervisord.one.conf"


def test_a_process_that_cannot_start_ends_fatal_with_the_reason_in_its_log(tmp_path):
    root = copy_repo(tmp_path / "repo")
    broken = tmp_path / "config.json"
    broken.write_text(json.dumps({"exchanges": ["htx"], "symbols": [], "collection": {"interval_seconds": 1}}))
    sup = Supervisor(root, one_worker_conf(root, "htx"), clean_env(FUTURES_SCAN_CONFIG=str(broken)))
    try:
        sup.start()
        states = sup.wait_states(lambda s: s.get("worker:htx", ("",))[0] == "FATAL", FATAL_WITHIN,
                                 "worker:htx FATAL")
        assert states["worker:htx"][1] is None
        status = sup.ctl("status", "worker:htx").stdout
        assert re.search(r"worker:htx\s+FATAL\s+Exited too quickly", status), status
        sup_log = sup.log("supervisord")
        spawns = len(re.findall(r"spawned: 'htx'", sup_log))
        assert spawns == 11, sup_log  # the first start and 10 retries
        assert "gave up: htx entered FATAL state, too many start retries too quickly" in sup_log, sup_log
        # The reason, once per attempt, in the process's own log (supervisorctl tail worker:htx shows it).
        reason = f"Configuration error: {broken}: collection.interval_seconds: Input should be greater than or equal to 5"
        assert sup.log("worker:htx").count(reason) == spawns, sup.log("worker:htx")
        assert reason in sup.ctl("tail", "worker:htx").stdout
    finally:
        sup.shutdown()
        kill_leftovers(sup.pids, root)


def test_sigint_stops_a_worker_with_exit_0_and_final_statistics(tmp_path, own_rabbit, sim, start_worker):
    config = write_config(tmp_path / "config.json", own_rabbit, sim, exchanges=("bybit",),
                          symbols=["BTC/USDT:USDT"])
    worker = start_worker("bybit", config)
    worker.wait_for_log(r"Published message to futures\.bybit\.BTCUSDT", 30)
    worker.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    assert worker.proc.wait(15) == 0, worker.log_text()[-3000:]
    assert time.monotonic() - sent < 5, f"took {time.monotonic() - sent:.1f}s to stop"
    log = worker.log_text()
    assert re.search(r"Received SIGINT, stopping\n(.*\n)*Final statistics\n=== Statistics .*===\n"
                     r"Bybit: [1-9]\d* success, \d+ errors\nRabbitMQ: [1-9]\d* published, \d+ failed\n", log), log
    assert "[bybit] Stopped" in log and "Traceback" not in log and "KeyboardInterrupt" not in log


def test_sigint_mid_retry_still_stops_within_seconds(tmp_path, own_rabbit, sim, start_worker):
    """Every bybit request hangs (past the 3 s request timeout): SIGINT arrives while the worker is inside a
    request or waiting to retry one."""
    config = write_config(tmp_path / "config.json", own_rabbit, sim, exchanges=("bybit",),
                          symbols=["BTC/USDT:USDT"])
    worker = start_worker("bybit", config)
    worker.wait_for_log(r"Published message to futures\.bybit\.BTCUSDT", 30)
    offset = len(worker.log_text())
    sim.inject_fault("bybit", "hang", seconds=60, hang_seconds=60)
    worker.wait_for_log(r"\(retry 1/3\)", 30, offset)
    worker.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    assert worker.proc.wait(15) == 0, worker.log_text()[-3000:]
    assert time.monotonic() - sent < 5, f"took {time.monotonic() - sent:.1f}s to stop"
    assert "Final statistics" in worker.log_text()[offset:]
