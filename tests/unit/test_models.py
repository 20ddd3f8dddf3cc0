"""The snapshot's and the board's value rules (the conversion of ccxt's levels into them: test_mapping.py):
strict types, and no value a consumer cannot use (docs/reference.md, "Security")."""
import json
import math
import time

import pytest
from pydantic import ValidationError

from common.board import MAX_BOARD_ROWS, Board, BoardRow
from common.mapping import snapshot as build_snapshot
from common.models import MAX_AHEAD_MS, MIN_TIME_MS, FuturesData, OrderbookData

pytestmark = pytest.mark.unit

NOW = int(time.time() * 1000)
SYMBOL = "BTC/USDT:USDT"


def test_levels_are_validated_copies_of_ccxt_lists():
    bids = [[100.5, 2.0], [100.0, 1.5]]
    book = OrderbookData(bids=bids, asks=[[101.0, 0.5]], timestamp=NOW)
    bids[0][1] = 99.0  # ccxt's book changing afterwards must not change the snapshot
    assert book.bids == [(100.5, 2.0), (100.0, 1.5)]
    assert book.model_dump_json() == f'{{"bids":[[100.5,2.0],[100.0,1.5]],"asks":[[101.0,0.5]],"timestamp":{NOW}}}'


@pytest.mark.parametrize("level, problem", [
    ([100.0], "missing"), ([100.0, 1.0, 3.0], "too_long"), (["100.0", 1.0], "float_type"), ([None, 1.0], "float_type"),
    ([math.nan, 1.0], "finite_number"), ([100.0, math.inf], "finite_number"), ([-100.0, 1.0], "greater_than_equal"),
    ([100.0, -1.0], "greater_than_equal"),
])
def test_malformed_level_is_rejected(level, problem):
    with pytest.raises(ValidationError) as e:
        OrderbookData(bids=[level], asks=[], timestamp=NOW)
    assert e.value.errors()[0]["type"] == problem


def snapshot_json(**changes) -> dict:
    body = {"exchange": "bybit", "symbol": SYMBOL, "timestamp": NOW,
            "ticker": {"bid": 100.0, "ask": 100.1, "last": 100.05, "volume_24h": 5.0},
            "orderbook": {"bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]], "timestamp": NOW},
            "funding_rate": -0.0001, "next_funding_time": NOW + 3_600_000, "mark_price": 100.02,
            "extra": {"contract_size": 1.0, "index_price": 100.0, "funding_interval_hours": 8.0}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = body
        for name in parents:
            node = node[name]
        node[last] = value
    return body


def test_a_sane_snapshot_validates_from_json():
    assert FuturesData.model_validate_json(json.dumps(snapshot_json())).funding_rate == -0.0001


@pytest.mark.parametrize("raw", [
    b'"timestamp": 1000000000000000000000000000000', b'"timestamp": -1' + b"0" * 400, b'"timestamp": 1',
    b'"timestamp": 1.7e12', b'"timestamp": "1800000000000"', b'"next_funding_time": 1' + b"0" * 30,
    b'"next_funding_time": -5', b'"orderbook": {"bids": [], "asks": [], "timestamp": 1' + b"0" * 20 + b"}",
    b'"funding_rate": NaN', b'"funding_rate": Infinity', b'"mark_price": -1.0', b'"ticker": {"bid": 1.0, '
    b'"ask": 1.0, "last": -1.0}', b'"ticker": {"bid": 1.0, "ask": 1.0, "last": 1.0, "volume_24h": -1.0}',
    b'"extra": {"index_price": 1' + b"0" * 30 + b"}", b'"extra": {"contract_size": "1"}',
    b'"extra": {"open_interest": -1.0}', b'"extra": {"funding_interval_hours": Infinity}',
    b'"exchange": "By Bit"', b'"symbol": "' + b"X" * 65 + b'"',
])
def test_values_no_consumer_can_use_are_refused(raw):
    """Each replaces one field of a sane snapshot, as raw JSON (Python's json cannot write some of them)."""
    name = raw.split(b'"')[1].decode()
    sane = json.dumps({k: v for k, v in snapshot_json().items() if k != name}).encode()
    body = sane[:-1] + b", " + raw + b"}"
    with pytest.raises(ValidationError) as e:
        FuturesData.model_validate_json(body)
    assert e.value.errors()[0]["loc"][0] == name
    assert "0000000000" not in e.value.errors(include_input=False)[0]["msg"]  # never repeats a huge number


def test_times_are_within_2015_and_5_years_ahead():
    now, day = int(time.time() * 1000), 86_400_000  # a day's margin: the bound moves with the clock
    FuturesData.model_validate(snapshot_json(timestamp=MIN_TIME_MS, next_funding_time=now + MAX_AHEAD_MS - day))
    for bad in (MIN_TIME_MS - 1, now + MAX_AHEAD_MS + day):
        with pytest.raises(ValidationError):
            FuturesData.model_validate(snapshot_json(timestamp=bad))


def test_the_workers_snapshot_refuses_a_nan_or_negative_level():
    """common.mapping.snapshot is how the worker builds one: a ValidationError there is counted as an error
    and logged (worker.publish_collected), never published as null."""
    row = BoardRow(symbol=SYMBOL, bid=100.0, ask=100.1, last=100.05, contract_size=1.0)
    for level in ([math.nan, 1.0], [100.0, math.inf], [100.0, -2.0]):
        with pytest.raises(ValidationError):
            build_snapshot("bybit", row, {"bids": [level], "asks": [[100.1, 1.0]], "timestamp": NOW}, {}, NOW)
    with pytest.raises(ValidationError):
        build_snapshot("bybit", row, {"bids": [[100.0, 1.0]], "asks": [[100.1, 1.0]], "timestamp": NOW}, {}, 10**30)


@pytest.mark.parametrize("bad", [
    {"next_funding_time": 10**30}, {"next_funding_time": -1}, {"bid": -1.0}, {"mark_price": -0.5},
    {"index_price": math.inf}, {"volume_24h": -3.0}, {"funding_rate": math.nan}, {"open_interest": -1.0},
])
def test_board_rows_refuse_what_snapshots_refuse(bad):
    with pytest.raises(ValidationError):
        BoardRow.model_validate({"symbol": SYMBOL, **bad})


def test_a_board_is_capped_in_rows_and_its_time_is_sane():
    rows = [{"symbol": f"S{i}/USDT:USDT"} for i in range(MAX_BOARD_ROWS)]
    assert len(Board.model_validate({"exchange": "bybit", "timestamp": NOW, "markets": rows}).markets) == MAX_BOARD_ROWS
    with pytest.raises(ValidationError) as e:
        Board.model_validate({"exchange": "bybit", "timestamp": NOW, "markets": rows + [{"symbol": "X"}]})
    assert e.value.errors()[0]["type"] == "too_long"
    for stamp in (10**30, -10**400, 0):
        with pytest.raises(ValidationError):
            Board.model_validate({"exchange": "bybit", "timestamp": stamp, "markets": []})
