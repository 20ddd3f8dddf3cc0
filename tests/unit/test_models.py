"""The snapshot model's level rules (the conversion of ccxt's levels into them: test_mapping.py)."""
import pytest
from pydantic import ValidationError

from common.models import OrderbookData

pytestmark = pytest.mark.unit


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
