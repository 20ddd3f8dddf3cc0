"""The control API as an operator uses it: a real controller process, the real broker, real workers."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid

import pika
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.broker import CONTROL_QUEUE, CONTROL_QUEUE_ARGUMENTS, RESPONSES_EXCHANGE, STATS_EXCHANGE, SYMBOLS_EXCHANGE
from common.stats import Counters, WorkerStatistics
from common.symbols import MAX_SYMBOLS
from tests.conftest import ROOT, Consumer, Process, rabbitmqctl, write_config

INTERVAL = 5
INITIAL = ["BTC/USDT:USDT", "ETH/USDT:USDT"]


class Control:
    """A controller process plus a client connection that sends raw requests and awaits the answers."""

    def __init__(self, rabbit, simulator, tmp, **config):
        self.rabbit, self.tmp = rabbit, tmp
        self.config = write_config(tmp / "config.json", rabbit, simulator, exchanges=["bybit", "gateio"],
                                   symbols=INITIAL, **config)
        self.state = tmp / "symbols.json"
        self.responses = Consumer(rabbit, RESPONSES_EXCHANGE, "control.response.#")
        self.process = self.start()
        self.conn = pika.BlockingConnection(rabbit.params())
        self.channel = self.conn.channel()
        self.channel.queue_declare(CONTROL_QUEUE, durable=True, arguments=CONTROL_QUEUE_ARGUMENTS)
        self.replies: dict[str, dict] = {}
        self.channel.basic_consume("amq.rabbitmq.reply-to", self._on_reply, auto_ack=True)

    def start(self) -> Process:
        process = Process(["controller.py", "--config", str(self.config)], self.tmp / "controller.log")
        process.wait_for_log(r"Connected to RabbitMQ", 20)
        return process

    def _on_reply(self, _ch, _method, props, body):
        self.replies[props.correlation_id] = json.loads(body)

    def send(self, body, reply: bool = True) -> str:
        cid = str(uuid.uuid4())
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        props = pika.BasicProperties(correlation_id=cid, reply_to="amq.rabbitmq.reply-to" if reply else None,
                                     user_id=self.rabbit.user)  # without role users, this user is the operator
        self.channel.basic_publish("", CONTROL_QUEUE, raw, props)
        return cid

    def await_reply(self, cid: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while cid not in self.replies:
            assert time.monotonic() < deadline, f"no reply to {cid} within {timeout}s"
            self.conn.process_data_events(time_limit=0.05)
        return self.replies.pop(cid)

    def ask(self, body, timeout: float = 10) -> dict:
        return self.await_reply(self.send(body), timeout)

    def saved(self) -> dict:
        return json.loads(self.state.read_text())

    def close(self):
        self.process.kill()
        self.responses.close()
        self.conn.close()


@pytest.fixture(scope="module")
def control(rabbit, simulator, tmp_path_factory):
    own = rabbit.isolated()  # a vhost of this module's own: no other test's queues, sets or reports
    c = Control(own, simulator, tmp_path_factory.mktemp("control"))
    yield c
    c.close()
    own.close()


@pytest.fixture
def fresh(control):
    """Each test starts from the initial set."""
    assert control.ask({"command": "set_symbols", "symbols": INITIAL})["success"]
    return control


# -- every command -----------------------------------------------------------------------------------
def test_get_symbols(fresh):
    r = fresh.ask({"command": "get_symbols", "correlation_id": "uuid-12348", "timestamp": 1730107608})
    assert r["correlation_id"] == "uuid-12348" and r["success"] is True and r["command"] == "get_symbols"
    assert r["message"] == "Symbols retrieved successfully"
    assert r["data"] == {"symbols": INITIAL, "count": 2, "version": fresh.saved()["version"]}
    assert abs(r["timestamp"] - time.time()) < 5 and set(r) == {"correlation_id", "success", "command",
                                                                 "message", "data", "timestamp"}


def test_add_and_remove_symbol_persist_before_answering(fresh):
    version = fresh.saved()["version"]
    r = fresh.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT", "correlation_id": "uuid-12345"})
    assert r["success"] and r["message"] == "Symbol SOL/USDT:USDT added successfully"
    assert r["data"] == {"symbol": "SOL/USDT:USDT", "current_symbols": INITIAL + ["SOL/USDT:USDT"]}
    assert fresh.saved()["symbols"] == INITIAL + ["SOL/USDT:USDT"] and fresh.saved()["version"] == version + 1
    r = fresh.ask({"command": "remove_symbol", "symbol": "ETH/USDT:USDT", "correlation_id": "uuid-12346"})
    assert r["success"] and r["message"] == "Symbol ETH/USDT:USDT removed successfully"
    assert r["data"]["current_symbols"] == ["BTC/USDT:USDT", "SOL/USDT:USDT"]
    assert fresh.saved()["symbols"] == ["BTC/USDT:USDT", "SOL/USDT:USDT"]


def test_set_symbols(fresh):
    r = fresh.ask({"command": "set_symbols", "symbols": ["BTC/USDT:USDT", "SOL/USDT:USDT", "DOGE/USDT:USDT"]})
    assert r["success"] and r["data"]["symbols"] == ["BTC/USDT:USDT", "SOL/USDT:USDT", "DOGE/USDT:USDT"]
    assert fresh.ask({"command": "get_symbols"})["data"]["count"] == 3


def test_get_statistics_has_the_vision_fields(fresh):
    r = fresh.ask({"command": "get_statistics", "correlation_id": "uuid-12349"})
    assert r["success"] and r["message"] == "Statistics retrieved successfully"
    assert {"exchange_success", "exchange_errors", "rabbitmq_published", "rabbitmq_failed", "workers"} <= set(r["data"])


def test_a_set_at_the_limit_refuses_one_more(fresh):
    full = [f"S{i:04d}/USDT:USDT" for i in range(MAX_SYMBOLS)]
    assert fresh.ask({"command": "set_symbols", "symbols": full})["data"]["count"] == MAX_SYMBOLS
    before = fresh.saved()
    r = fresh.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT"})
    assert r["success"] is False and r["error"] == "invalid_command", r
    assert "already holds 1000 symbols, the limit of 1000" in r["message"]
    assert fresh.saved() == before
    assert fresh.ask({"command": "get_symbols"})["data"]["count"] == MAX_SYMBOLS


def test_the_empty_set_is_valid_and_broadcast(fresh):
    broadcasts = Consumer(fresh.rabbit, SYMBOLS_EXCHANGE, exchange_type="fanout")
    try:
        r = fresh.ask({"command": "set_symbols", "symbols": []})
        assert r["success"] and r["data"] == {"symbols": [], "count": 0}
        saved = fresh.saved()
        assert saved["symbols"] == []
        broadcasts.wait_for(lambda k, b: b["version"] == saved["version"] and b["symbols"] == [], 10,
                            "the empty set on the symbols exchange")
        assert fresh.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT"})["success"]
        r = fresh.ask({"command": "remove_symbol", "symbol": "SOL/USDT:USDT"})  # the last one
        assert r["success"] and r["data"]["current_symbols"] == [] and fresh.saved()["symbols"] == []
        broadcasts.wait_for(lambda k, b: b["version"] == saved["version"] + 2 and b["symbols"] == [], 10,
                            "the emptied set on the symbols exchange")
    finally:
        broadcasts.close()


# -- every error code ------------------------------------------------------------------------------
@pytest.mark.parametrize("body, code, message", [
    (b"{not json", "invalid_json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "invalid_json", "not UTF-8"),
    (b"[1, 2]", "invalid_command", "must be a JSON object, got array"),
    (b'"get_symbols"', "invalid_command", "got string"),
    ({"symbol": "BTC/USDT:USDT"}, "invalid_command", "missing field 'command'"),
    ({"command": 5}, "invalid_command", "'command' must be a string"),
    ({"command": "add_symbol"}, "invalid_command", "missing field 'symbol'"),
    ({"command": "add_symbol", "symbol": "BTC.USDT"}, "invalid_command", "invalid symbol 'BTC.USDT'"),
    ({"command": "add_symbol", "symbol": "BTC/USDT:#"}, "invalid_command", "invalid symbol"),
    ({"command": "add_symbol", "symbol": "BTC /USDT"}, "invalid_command", "invalid symbol"),
    ({"command": "add_symbol", "symbol": ["BTC/USDT:USDT"]}, "invalid_command", "must be a string, got list"),
    ({"command": "set_symbols", "symbols": "BTC/USDT:USDT"}, "invalid_command", "must be a list"),
    ({"command": "set_symbols", "symbols": ["A%d/USDT:USDT" % i for i in range(1001)]}, "invalid_command",
     "exceed the limit of 1000"),
    (b'{"command": "get_symbols", "pad": "' + b"x" * 70000 + b'"}', "invalid_command", "exceeds 65536"),
    ({"command": "add_symbol", "symbol": "BTC/USDT:USDT"}, "duplicate_symbol", "Symbol BTC/USDT:USDT already exists"),
    ({"command": "remove_symbol", "symbol": "XRP/USDT:USDT"}, "symbol_not_found", "Symbol XRP/USDT:USDT not found"),
    ({"command": "launch_rockets"}, "unknown_command", "unknown command 'launch_rockets'"),
])
def test_bad_requests_get_their_error_code_and_change_nothing(fresh, body, code, message):
    before = fresh.saved()
    r = fresh.ask(body)
    assert r["success"] is False and r["error"] == code and message in r["message"], r
    assert "data" not in r
    assert fresh.saved() == before


def test_responses_also_go_to_the_topic_exchange(fresh):
    cid = fresh.send({"command": "get_symbols", "correlation_id": "topic-1"}, reply=False)
    key, body = fresh.responses.wait_for(lambda k, b: b.get("correlation_id") == "topic-1", 10)
    assert key == "control.response.get_symbols" and body["data"]["symbols"] == INITIAL
    fresh.send(b"\x00garbage", reply=False)
    key, body = fresh.responses.wait_for(lambda k, b: b.get("error") == "invalid_json", 10)
    assert key == "control.response.unknown"
    fresh.send({"command": "rm -rf #"}, reply=False)
    key, body = fresh.responses.wait_for(lambda k, b: b.get("error") == "unknown_command", 10)
    assert key == "control.response.unknown"
    assert cid not in fresh.replies  # no reply_to, no direct reply


def test_internal_error_when_the_set_cannot_be_saved(fresh):
    saved = fresh.saved()
    fresh.state.unlink()
    fresh.state.mkdir()  # a folder where the file should be: the atomic rename fails
    try:
        r = fresh.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT"})
        assert r["success"] is False and r["error"] == "internal_error"
        assert fresh.ask({"command": "get_symbols"})["data"]["symbols"] == saved["symbols"]
    finally:
        fresh.state.rmdir()
        fresh.state.write_text(json.dumps(saved))
    assert fresh.process.proc.poll() is None


def test_rabbitmqadmin_request_and_response(fresh):
    rabbit = fresh.rabbit
    payload = json.dumps({"command": "get_symbols", "correlation_id": "admin-1"})
    out = subprocess.run(["rabbitmqadmin", "-V", rabbit.vhost, "-u", rabbit.user, "-p", rabbit.password,
                          "publish", "exchange=amq.default", f"routing_key={CONTROL_QUEUE}", f"payload={payload}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Message published" in out.stdout, out.stderr
    key, body = fresh.responses.wait_for(lambda k, b: b.get("correlation_id") == "admin-1", 10)
    assert key == "control.response.get_symbols" and body["data"]["symbols"] == INITIAL


# -- the client script -----------------------------------------------------------------------------
def client(control, *args, timeout=20):
    return subprocess.run([sys.executable, "scripts/control_client.py", *args, "--config", str(control.config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_control_client_success_failure_and_timeout(fresh, rabbit, tmp_path, simulator):
    out = client(fresh, "add_symbol", "SOL/USDT:USDT")
    assert out.returncode == 0 and json.loads(out.stdout)["data"]["current_symbols"][-1] == "SOL/USDT:USDT"
    out = client(fresh, "add_symbol", "SOL/USDT:USDT")
    assert out.returncode == 1 and json.loads(out.stdout)["error"] == "duplicate_symbol"
    out = client(fresh, "set_symbols", "BTC/USDT:USDT, DOGE/USDT:USDT")
    assert out.returncode == 0 and json.loads(out.stdout)["data"]["symbols"] == ["BTC/USDT:USDT", "DOGE/USDT:USDT"]
    # A vhost with no controller: nobody answers.
    vhost = f"futures_scan_test_lonely_{uuid.uuid4().hex[:6]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, rabbit.user, ".*", ".*", ".*")
        lonely = write_config(tmp_path / "lonely.json", rabbit, simulator, rabbitmq={"vhost": vhost})
        started = time.monotonic()
        out = subprocess.run([sys.executable, "scripts/control_client.py", "get_symbols", "--timeout", "1.5",
                              "--config", str(lonely)], cwd=ROOT, capture_output=True, text=True, timeout=20)
    finally:
        rabbitmqctl("delete_vhost", vhost)
    assert out.returncode == 2 and json.loads(out.stdout)["error"] == "timeout"
    assert 1.5 <= time.monotonic() - started < 10


# -- robustness ------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
requests = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"command": st.sampled_from(["add_symbol", "remove_symbol", "set_symbols", "get_symbols",
                                                       "get_statistics", "nope", ""])},
                          optional={"symbol": json_values | st.text(max_size=40),
                                    "symbols": st.lists(st.text(max_size=20), max_size=5) | json_values,
                                    "correlation_id": json_values}).map(lambda v: json.dumps(v).encode()),
)


def would_change_the_set(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("command") in ("add_symbol", "remove_symbol", "set_symbols")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=requests)
def test_arbitrary_input_gets_one_answer_and_changes_nothing(control, raw):
    mutating = would_change_the_set(raw)
    if mutating:
        # Valid mutations may change the set; only the garbage among them is held to "changes nothing".
        assume(not _is_valid_mutation(raw))
    before = control.state.read_bytes()
    cid = control.send(raw)
    answer = control.await_reply(cid)
    assert answer["success"] in (True, False) and ("error" in answer) != answer["success"]
    assert control.state.read_bytes() == before
    assert control.process.proc.poll() is None
    # Exactly one answer: nothing else arrives for this request.
    control.conn.process_data_events(time_limit=0.01)
    assert cid not in control.replies


def _is_valid_mutation(raw: bytes) -> bool:
    from common.control import RequestError, parse_request
    try:
        parse_request(raw)
        return True
    except RequestError:
        return False


def test_kill_during_a_burst_leaves_a_valid_file_with_an_answered_set(control):
    assert control.ask({"command": "set_symbols", "symbols": INITIAL})["success"]
    cids = [control.send({"command": "add_symbol", "symbol": f"C{i:03d}/USDT:USDT"}) for i in range(300)]
    control.await_reply(cids[40])
    control.process.proc.kill()
    control.process.proc.wait(10)
    control.conn.process_data_events(time_limit=0.5)  # answers sent before the kill, still in flight
    answered = 41 + sum(1 for cid in cids[41:] if cid in control.replies)
    saved = control.saved()
    last = INITIAL + [f"C{i:03d}/USDT:USDT" for i in range(answered)]
    assert saved["symbols"] in (last, last + [f"C{answered:03d}/USDT:USDT"])
    control.channel.queue_purge(CONTROL_QUEUE)  # the unanswered rest would be redelivered after restart
    control.process = control.start()
    assert control.ask({"command": "get_symbols"})["data"]["symbols"] == saved["symbols"]


def test_controller_restart_keeps_the_set(control):
    assert control.ask({"command": "set_symbols", "symbols": ["SOL/USDT:USDT"]})["success"]
    control.process.proc.kill()
    control.process.proc.wait(10)
    control.process = control.start()
    assert control.ask({"command": "get_symbols"})["data"]["symbols"] == ["SOL/USDT:USDT"]


# -- workers follow the controller -----------------------------------------------------------------
def test_workers_follow_commands_and_statistics_survive_a_worker_restart(control, tmp_path):
    assert control.ask({"command": "set_symbols", "symbols": INITIAL})["success"]
    snapshots = Consumer(control.rabbit, "futures_data", "futures.#")
    workers = {ex: Process(["worker.py", ex, "--config", str(control.config)], tmp_path / f"{ex}.log")
               for ex in ("bybit", "gateio")}
    try:
        for ex in workers:
            snapshots.wait_for(lambda k, b, ex=ex: k == f"futures.{ex}.ETHUSDT", 3 * INTERVAL)
        assert control.ask({"command": "add_symbol", "symbol": "SOL/USDT:USDT"})["success"]
        added = time.time()
        for ex in workers:
            snapshots.wait_for(lambda k, b, ex=ex: k == f"futures.{ex}.SOLUSDT", 2 * INTERVAL)
        assert time.time() - added <= 2 * INTERVAL
        assert control.ask({"command": "remove_symbol", "symbol": "ETH/USDT:USDT"})["success"]
        removed = time.time()
        time.sleep(INTERVAL + 1)  # the claim is about absence over one interval: nothing to await
        late = [k for k, _ in snapshots.since(removed + 0.5) if k.endswith(".ETHUSDT")]
        assert late == []

        stats = control.ask({"command": "get_statistics"})["data"]
        before = stats["exchange_success"]["bybit"]
        assert before > 0 and stats["rabbitmq_published"] >= sum(stats["exchange_success"].values()) - 10
        workers["bybit"].kill()
        restarted = time.time()
        workers["bybit"] = Process(["worker.py", "bybit", "--config", str(control.config)], tmp_path / "bybit2.log")
        key, _ = snapshots.wait_for(lambda k, b: k.startswith("futures.bybit.") and b["timestamp"] > restarted * 1000,
                                    3 * INTERVAL)
        assert key in ("futures.bybit.BTCUSDT", "futures.bybit.SOLUSDT")  # the current set, not the config's
        deadline = time.time() + 2 * INTERVAL
        while control.ask({"command": "get_statistics"})["data"]["exchange_success"]["bybit"] <= before:
            assert time.time() < deadline, "totals did not grow across the worker restart"
            time.sleep(0.5)
        control.process.wait_for_log(r"Bybit: [1-9]\d* success, \d+ errors", 15)
    finally:
        for w in workers.values():
            w.kill()
        snapshots.close()


# -- statistics from the workers' reports ---------------------------------------------------------
@pytest.fixture
def stats_control(own_rabbit, simulator, tmp_path):
    """A controller of this test's own, so that only this test's reports are counted; it prints its
    statistics block every second."""
    c = Control(own_rabbit, simulator, tmp_path, collection={"statistics_interval_seconds": 1})
    c.stats = c.conn.channel()  # reports are published as workers publish them: on the stats exchange
    yield c
    c.close()


def report(pid, started_at, success=0, errors=0, published=0, publish_failed=0, exchange="bybit", **fields):
    stats = WorkerStatistics(exchange=exchange, pid=pid, started_at=started_at,
                             totals=Counters(success, errors, published, publish_failed), cycles=1)
    return {**stats.to_message(), **fields}


def send_report(control, message, exchange="bybit") -> None:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    control.stats.basic_publish(STATS_EXCHANGE, f"stats.{exchange}", body,
                                pika.BasicProperties(user_id=control.rabbit.user))  # as a worker: the same user


def await_statistics(control, predicate, timeout: float = 10) -> dict:
    """get_statistics' data once predicate(data) holds (reports are consumed asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        data = control.ask({"command": "get_statistics"})["data"]
        if predicate(data):
            return data
        assert time.monotonic() < deadline, f"statistics never matched: {data}"


def test_statistics_sum_processes_keep_a_restarted_ones_totals_and_fold_final_reports(stats_control):
    c = stats_control
    send_report(c, report(101, 1000.0, success=10, errors=1, published=9, publish_failed=1))  # shard 1
    send_report(c, report(102, 1001.0, success=5, errors=2, published=5))                      # shard 2
    send_report(c, report(201, 1002.0, exchange="gateio", success=7, published=7), "gateio")
    data = await_statistics(c, lambda d: d["exchange_success"] == {"bybit": 15, "gateio": 7})
    assert data["exchange_errors"] == {"bybit": 3, "gateio": 0}
    assert (data["rabbitmq_published"], data["rabbitmq_failed"]) == (21, 1)
    assert data["workers"]["bybit"]["live_processes"] == 2 and data["workers"]["gateio"]["pid"] == 201

    send_report(c, report(101, 1000.0, success=12, errors=1, published=11, publish_failed=1, final=True))
    data = await_statistics(c, lambda d: d["workers"]["bybit"]["live_processes"] == 1)
    assert data["exchange_success"]["bybit"] == 17  # the stopped shard's last totals are kept
    send_report(c, report(103, 2000.0, success=4, published=4))  # shard 1 restarted: counts from zero again
    data = await_statistics(c, lambda d: d["workers"]["bybit"]["pid"] == 103)
    assert data["exchange_success"] == {"bybit": 21, "gateio": 7} and data["exchange_errors"]["bybit"] == 3
    assert (data["rabbitmq_published"], data["rabbitmq_failed"]) == (27, 1)
    assert c.process.terminate() == 0
    assert re.search(r"Final statistics \(totals\)\n.*\nBybit: 21 success, 3 errors\nGate\.io: 7 success, 0 errors\n"
                     r"RabbitMQ: 27 published, 1 failed", c.process.log_text())  # the printed block sums the same way


MALFORMED_REPORTS = [
    ({"totals": {"success": "a"}}, "exchange: Field required"),
    (report(301, 1.0, totals={"success": "a", "errors": 0, "published": 0, "publish_failed": 0}),
     "totals.success: Input should be a valid integer"),
    ({k: v for k, v in report(302, 1.0, success=50).items() if k != "cycles"}, "cycles: Field required"),
    (report(303, 1.0, success=-50), "totals.success: Input should be greater than or equal to 0"),
    (report(304, 1.0, exchange="htx", success=50), "a report of htx published as stats.bybit"),
    (b"[" * 100000, "Invalid JSON: recursion limit exceeded"),
    (b"\xff\xfe\x00garbage", "report is not UTF-8"),
]


def test_malformed_reports_are_logged_and_change_nothing(stats_control):
    c = stats_control
    send_report(c, report(101, 1000.0, success=3, published=3))
    await_statistics(c, lambda d: d["exchange_success"] == {"bybit": 3})
    for body, _ in MALFORMED_REPORTS:
        send_report(c, body)
    send_report(c, report(101, 1000.0, success=4, published=4))  # consumed after all of the above
    data = await_statistics(c, lambda d: d["exchange_success"] == {"bybit": 4})
    assert data["rabbitmq_published"] == 4 and data["workers"]["bybit"]["pid"] == 101
    log_text = c.process.log_text()
    for _, problem in MALFORMED_REPORTS:
        assert re.search(r"\[WARNING\] \[controller\] Ignoring an invalid worker report \(routing key "
                         r"'stats\.bybit'\): .*" + re.escape(problem), log_text), problem
    start = len(c.process.log_text())
    c.process.wait_for_log(r"Bybit: \d+ success", 10, start)  # the statistics print still works
    assert c.process.proc.poll() is None and "Traceback" not in c.process.log_text()


# -- broker-side trouble ----------------------------------------------------------------------------
def test_a_control_queue_declared_otherwise_is_explained_and_retried(own_rabbit, simulator, tmp_path):
    conn = pika.BlockingConnection(own_rabbit.params())
    conn.channel().queue_declare(CONTROL_QUEUE, durable=True, arguments={"x-max-length": 5})  # someone else's
    config = write_config(tmp_path / "config.json", own_rabbit, simulator, exchanges=["bybit"])
    process = Process(["controller.py", "--config", str(config)], tmp_path / "controller.log")
    try:
        first = process.wait_for_log(r"\[ERROR\] \[rabbitmq\] RabbitMQ refused to declare queue "
                                     r"'futures_collector_control' in vhost '([^']+)': (.*)", 20)
        assert first.group(1) == own_rabbit.vhost
        assert first.group(2).startswith(
            "it already exists with a different 'x-max-length' (the broker says: received '1000' but current is "
            "'5'). Another program or an older version made it; delete it and it "
            f"is declared anew (its messages are lost): rabbitmqadmin -V '{own_rabbit.vhost}' delete queue "
            "name='futures_collector_control'; next attempt in")
        process.wait_for_log(r"refused to declare queue 'futures_collector_control'", 20, first.end())  # retried
        conn.channel().queue_delete(CONTROL_QUEUE)  # what the log says to do
        process.wait_for_log(r"Reconnected to RabbitMQ", 20)
        assert process.proc.poll() is None and "Cannot connect" not in process.log_text()
    finally:
        process.kill()
        conn.close()
