"""Shards: every symbol goes to exactly one of them, the same one in every process on every host, and a
symbol added or removed moves no other."""
from __future__ import annotations

import pytest

from common.broker import symbols_queue
from common.symbols import Shard

pytestmark = pytest.mark.unit

SYMBOLS = [f"{base}/USDT:USDT" for base in ("BTC", "ETH", "SOL", "DOGE", "XRP", "WIF", "TAO")] + \
          [f"SIM{i:03d}/USDT:USDT" for i in range(1, 200)]


def owners(symbols, count: int) -> dict[str, int]:
    return {s: next(i for i in range(1, count + 1) if Shard(i, count).owns(s)) for s in symbols}


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_symbol_belongs_to_exactly_one_shard(count):
    for symbol in SYMBOLS:
        assert sum(Shard(i, count).owns(symbol) for i in range(1, count + 1)) == 1


def test_shards_share_the_symbols_about_evenly():
    sizes = sorted(list(owners(SYMBOLS, 3).values()).count(i) for i in (1, 2, 3))
    assert sizes[0] > len(SYMBOLS) / 3 * 0.6, sizes


def test_adding_or_removing_a_symbol_moves_no_other():
    before = owners(SYMBOLS, 3)
    assert owners(SYMBOLS + ["NEW/USDT:USDT"], 3) == {**before, "NEW/USDT:USDT": owners(["NEW/USDT:USDT"], 3)[
        "NEW/USDT:USDT"]}
    assert owners(SYMBOLS[1:], 3) == {s: before[s] for s in SYMBOLS[1:]}


@pytest.mark.parametrize("text, problem", [("0/3", "from 1 to the count"), ("4/3", "from 1 to the count"),
                                           ("2", "INDEX/COUNT"), ("a/b", "INDEX/COUNT"), ("", "INDEX/COUNT")])
def test_a_bad_shard_is_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        Shard.parse(text)


def test_only_the_first_shard_publishes_the_board_and_each_shard_has_its_own_symbols_queue():
    assert Shard.parse("1/3").publishes_board and not Shard.parse("2/3").publishes_board
    assert symbols_queue("bybit", "1/1") == symbols_queue("bybit") == "futures_collector_symbols.bybit"
    assert len({symbols_queue("bybit", f"{i}/3") for i in (1, 2, 3)}) == 3
