"""The snapshot model's level rules, and the worker's conversion of ccxt levels into them."""
import pytest
from pydantic import ValidationError

from common.models import OrderbookData
from worker import _base_levels


def test_levels_are_validated_copies_of_ccxt_lists():
    bids = [[100.5, 2.0], [100.0, 1.5]]
    book = OrderbookData(bids=bids, asks=[[101.0, 0.5]], timestamp=1)
    bids[0][1] = 99.0  # ccxt's book changing afterwards must not change the snapshot
    assert book.bids == [(100.5, 2.0), (100.0, 1.5)]
    assert book.model_dump_json() == '{"bids":[[100.5,2.0],[100.0,1.5]],"asks":[[101.0,0.5]],"timestamp":1}'


@pytest.mark.parametrize("level, problem", [
    ([100.0], "missing"), ([100.0, 1.0, 3.0], "too_long"), (["100.0", 1.0], "float_type"), ([None, 1.0], "float_type"),
])
def test_malformed_level_is_rejected(level, problem):
    with pytest.raises(ValidationError) as e:
        OrderbookData(bids=[level], asks=[], timestamp=1)
    assert e.value.errors()[0]["type"] == problem


def test_base_levels_convert_contracts_and_drop_order_counts():
    assert _base_levels([[10.0, 3.0], [9.0, 1.0]], 0.01) == [(10.0, 0.03), (9.0, 0.01)]
    assert _base_levels([[10.0, 3.0, 7]], 1) == [(10.0, 3.0)]  # ccxt's [price, amount, count]
    levels = [[10.0, 3.0]]
    assert _base_levels(levels, 1) is levels  # already base units: no copy before validation
    assert _base_levels([], 1) == []
