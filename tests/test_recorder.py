"""recorder.py against a real RabbitMQ under role users: settlements stored once whoever repeats them, only
from the exchange's own worker, kept while the recorder is down; a sample of each board per period."""
import json
import sqlite3
import time

import pika
import pika.exceptions
import pytest

from common.history import complete_from
from tests.conftest import Process, write_config

HOUR = 3_600_000
T0 = (int(time.time() * 1000) // (8 * HOUR) - 3) * 8 * HOUR


def publish_as(role_users, exchange: str, key: str, body, sender: str | None = None, signed: bool = True) -> None:
    """Publish on the data exchange as `sender`'s worker (default: the key's exchange's), with its user_id
    unless not `signed`."""
    sender = sender or exchange
    connection = pika.BlockingConnection(role_users.params("worker", sender))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        user_id = role_users.user("worker", sender) if signed else None
        channel.basic_publish("futures_data", key, payload, pika.BasicProperties(user_id=user_id))
    finally:
        if connection.is_open:
            connection.close()


def funding(exchange, settlements, backfilled=()):
    return {"exchange": exchange, "timestamp": T0 + 24 * HOUR, "settlements": settlements,
            "backfilled": [{"symbol": s, "from": t} for s, t in backfilled]}


def settlement(symbol, hours_after, rate, interval=8.0):
    return {"symbol": symbol, "funding_time": T0 + hours_after * HOUR, "rate": rate, "interval_hours": interval}


@pytest.fixture
def recorder(role_users, own_rabbit, simulator, tmp_path):
    config = write_config(tmp_path / "config.json", own_rabbit, simulator, exchanges=["bybit", "okx"], symbols=[],
                          rabbitmq={"user_prefix": role_users.prefix},
                          history={"sample_seconds": 10, "database": str(tmp_path / "history.sqlite")})
    started = []

    def start() -> Process:
        process = Process(["recorder.py", "--config", str(config)], tmp_path / f"recorder-{len(started)}.log",
                          role_users.env)
        started.append(process)
        process.wait_for_log(r"Recording funding\.\*", 30)
        return process
    yield start, tmp_path / "history.sqlite"
    for process in started:
        process.kill()


def rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_settlements_are_stored_once_and_only_from_the_exchanges_own_worker(recorder, role_users):
    start, db = recorder
    process = start()
    btc = [settlement("BTC/USDT:USDT", 0, 0.0001), settlement("BTC/USDT:USDT", 8, -0.00025)]
    publish_as(role_users, "bybit", "funding.bybit", funding("bybit", btc, [("BTC/USDT:USDT", T0)]))
    publish_as(role_users, "bybit", "funding.bybit", funding("bybit", btc))  # a repeat changes nothing
    corrected = settlement("BTC/USDT:USDT", 8, -0.0003)
    publish_as(role_users, "bybit", "funding.bybit", funding("bybit", [corrected]))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):  # the broker's own check
        publish_as(role_users, "bybit", "funding.bybit", funding("bybit", [settlement("ETH/USDT:USDT", 0, 0.5)]),
                   sender="okx")
    publish_as(role_users, "bybit", "funding.bybit", funding("bybit", [settlement("ETH/USDT:USDT", 0, 0.5)]),
               signed=False)  # no user_id: nobody the broker vouches for
    publish_as(role_users, "okx", "funding.okx", funding("bybit", [settlement("ETH/USDT:USDT", 0, 0.5)]))
    publish_as(role_users, "okx", "funding.okx", b'{"exchange": "okx", "timestamp": 1, "settlements": [')
    publish_as(role_users, "okx", "funding.okx", funding("okx", [{**settlement("ETH/USDT:USDT", 0, 0.1), "rate": "0.1"}]))
    ok = settlement("ETH/USDT:USDT", 16, 0.0002, 4.0)
    publish_as(role_users, "okx", "funding.okx", funding("okx", [ok]))
    process.wait_for_log(r"Stored 1 of 1 settlements of okx", 20)
    log = process.log_text()
    assert "funding.bybit sent by user None, not by bybit's worker" in log
    assert "settlements of 'bybit' published as funding.okx" in log
    assert "settlements.0.rate: Input should be a valid number" in log
    assert rows(db, "SELECT exchange, symbol, funding_time, rate, interval_hours FROM settlements ORDER BY 1, 3") == [
        ("bybit", "BTC/USDT:USDT", T0, 0.0001, 8.0), ("bybit", "BTC/USDT:USDT", T0 + 8 * HOUR, -0.0003, 8.0),
        ("okx", "ETH/USDT:USDT", T0 + 16 * HOUR, 0.0002, 4.0)]
    with sqlite3.connect(db) as conn:
        assert complete_from(conn, "bybit", "BTC/USDT:USDT") == T0
        assert complete_from(conn, "okx", "ETH/USDT:USDT") is None
    assert "Stored 2 of 2 settlements of bybit" in log and "Stored 0 of 2 settlements of bybit" in log
    assert process.proc.poll() is None


def test_what_a_worker_publishes_while_the_recorder_is_down_waits_in_its_queue(recorder, role_users):
    start, db = recorder
    first = start()
    first.terminate()
    publish_as(role_users, "bybit", "funding.bybit", funding("bybit", [settlement("SOL/USDT:USDT", 4, 0.0004, 4.0)]))
    second = start()
    second.wait_for_log(r"Stored 1 of 1 settlements of bybit", 20)
    assert rows(db, "SELECT symbol, rate FROM settlements") == [("SOL/USDT:USDT", 0.0004)]


def board(exchange, ts, bid):
    return {"exchange": exchange, "timestamp": ts, "markets": [
        {"symbol": "BTC/USDT:USDT", "bid": bid, "ask": bid + 1, "mark_price": bid + 0.5, "funding_rate": 0.0001,
         "funding_interval_hours": 8.0, "open_interest": 12.5}]}


def test_each_exchanges_board_is_sampled_once_per_period(recorder, role_users):
    start, db = recorder
    process = start()
    period = (int(time.time() * 1000) // 10_000 - 5) * 10_000  # sample_seconds 10
    for ts, bid in ((period + 1000, 100.0), (period + 6000, 101.0), (period + 11_000, 102.0)):
        publish_as(role_users, "bybit", "board.bybit", board("bybit", ts, bid))
    publish_as(role_users, "okx", "board.okx", board("okx", period + 2000, 200.0))
    publish_as(role_users, "bybit", "board.bybit", board("bybit", period + 21_000, 1.0), signed=False)
    process.wait_for_log(r"Dropped a board message: board\.bybit sent by user None", 20)
    assert rows(db, "SELECT exchange, ts, bid, open_interest FROM samples ORDER BY exchange, ts") == [
        ("bybit", period + 1000, 100.0, 12.5), ("bybit", period + 11_000, 102.0, 12.5), ("okx", period + 2000, 200.0, 12.5)]
