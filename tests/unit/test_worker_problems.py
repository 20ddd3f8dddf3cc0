"""What the worker says about failures: once while they last, bounded, in log-safe text. No network."""
from __future__ import annotations

import pytest

from common.problems import ROW_ID_LIMIT, CycleProblems, Problems, describe, row_id

pytestmark = pytest.mark.unit


def test_a_problem_is_news_when_new_or_changed_and_its_end_is_news_once():
    problems = Problems()
    assert problems.note("BTC", "no last") and not problems.note("BTC", "no last")
    assert problems.note("BTC", "no bid")
    assert problems.clear("BTC") and not problems.clear("BTC")
    assert problems.note("BTC", "no bid")  # after a recovery, the same problem is news again


def test_problems_of_symbols_no_longer_watched_are_forgotten():
    problems = Problems()
    for symbol in ("BTC", "ETH", "SOL"):
        problems.note(symbol, "failing")
    problems.keep_only(lambda symbol: symbol == "ETH")
    assert len(problems) == 1 and "ETH" in problems and "BTC" not in problems


def test_a_bulk_row_failing_every_cycle_is_news_once_and_a_row_gone_for_a_cycle_is_forgotten():
    rows = CycleProblems()
    assert rows.note("funding X", "bad") and not rows.note("funding X", "bad")  # twice in one cycle
    rows.end_cycle()
    assert not rows.note("funding X", "bad")  # the next cycle, the same
    assert rows.note("funding X", "worse")
    rows.end_cycle()
    rows.end_cycle()  # a cycle without the row
    assert len(rows) == 0
    assert rows.note("funding X", "worse")


def test_bulk_row_bookkeeping_stays_bounded_by_one_cycles_rows():
    """An exchange (or whoever answers in its name) that sends new garbled names every cycle cannot grow it."""
    rows = CycleProblems()
    for cycle in range(50):
        for i in range(100):
            rows.note(f"board row-{cycle}-{i}", "bad")
        rows.end_cycle()
    assert len(rows) == 100


@pytest.mark.parametrize("row", [
    {"contract_code": "BTC-USDT\n2026-01-01 [ERROR] [htx] forged line"},
    {"symbol": "X\r\x1b[31mRED"},
    "garbled\nrow",
])
def test_row_ids_are_escaped_and_cut(row):
    shown = row_id(row)
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    assert len(shown) <= ROW_ID_LIMIT * 10  # an escape takes up to ten characters per character (\\U0001f600)
    assert shown.startswith(("BTC-USDT\\n", "X\\r\\x1b", "'garbled\\n"))


def test_an_error_is_described_on_one_escaped_line():
    text = describe(ValueError("could not convert 'x\n2026-01-01 [ERROR] forged' to float" + "y" * 1000))
    assert text.startswith("ValueError: could not convert 'x\\n2026-01-01 [ERROR] forged'")
    assert "\n" not in text and len(text) < 400
    assert describe(KeyError()) == "KeyError"
