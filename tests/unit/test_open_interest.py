"""The open-interest rotation's arithmetic (common/open_interest.py); against the simulator's Binance through
real ccxt and a real broker: tests/test_worker_settled.py."""
import logging

import pytest

from common.open_interest import OpenInterestRotation, amount_and_time


class Answers:
    """Answers as ccxt's fetch_open_interest structures, by symbol; a symbol's exception is raised."""

    def __init__(self, **by_symbol):
        self.by_symbol, self.asked = by_symbol, []

    def __call__(self, client, symbol):
        self.asked.append(symbol)
        answer = self.by_symbol[symbol.split("/")[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer


def rotation(answers):
    return OpenInterestRotation(client=None, fetch=answers, log=logging.getLogger("test"))


def test_the_rotation_visits_every_listed_symbol_in_turn_and_keeps_each_values_time():
    answers = Answers(A={"openInterestAmount": 10.0, "timestamp": 1000}, B={"openInterestAmount": 0, "timestamp": 2000})
    oi = rotation(answers)
    oi.update({"B/USDT:USDT", "A/USDT:USDT"})
    assert oi.worst_age_ms(5000) is None  # not every symbol has one yet
    for _ in range(3):
        assert oi.step()
    assert answers.asked == ["A/USDT:USDT", "B/USDT:USDT", "A/USDT:USDT"]
    assert oi.latest("A/USDT:USDT") == (10.0, 1000) and oi.latest("B/USDT:USDT") == (0.0, 2000)
    assert oi.worst_age_ms(5000) == 4000


def test_a_delisted_symbol_is_forgotten_and_nothing_listed_is_nothing_to_do():
    oi = rotation(Answers(A={"openInterestAmount": 1.0, "timestamp": 1}))
    oi.update({"A/USDT:USDT"})
    oi.step()
    oi.update(set())
    assert oi.latest("A/USDT:USDT") is None and oi.step() is False


def test_a_malformed_or_failed_answer_keeps_the_last_good_value_and_says_why_once(caplog):
    answers = Answers(A={"openInterestAmount": 5.0, "timestamp": 100})
    oi = rotation(answers)
    oi.update({"A/USDT:USDT"})
    oi.step()
    answers.by_symbol["A"] = {"openInterestAmount": float("nan"), "timestamp": 200}
    oi.step()
    oi.step()
    assert oi.latest("A/USDT:USDT") == (5.0, 100)
    assert [r.getMessage() for r in caplog.records].count(
        "Open interest of A/USDT:USDT not fetched: ValueError: open interest nan is not a non-negative number") == 1


@pytest.mark.parametrize("interest, problem", [
    ({"openInterestAmount": None, "timestamp": 1}, "open interest None"),
    ({"openInterestAmount": -1.0, "timestamp": 1}, "open interest -1.0"),
    ({"openInterestAmount": True, "timestamp": 1}, "open interest True"),
    ({"openInterestAmount": 1.0, "timestamp": None}, "open interest time None"),
    ({"openInterestAmount": 1.0, "timestamp": "1"}, "open interest time '1'"),
])
def test_amount_and_time_name_what_is_wrong(interest, problem):
    with pytest.raises(ValueError, match=problem):
        amount_and_time(interest)
