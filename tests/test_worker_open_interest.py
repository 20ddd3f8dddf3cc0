"""Binance's open interest (SPEC 14): no bulk call carries it, so the worker rotates through the market's
per-symbol endpoint between cycles, and every board row carries the value with Binance's own time of it."""
from common.broker import STATS_EXCHANGE
from tests.conftest import Consumer, write_config
from tests.simulator.market import symbol_of


def test_every_binance_board_row_gets_its_open_interest_with_its_own_time(own_sim, own_rabbit, start_worker,
                                                                          tmp_path):
    own_sim.market.freeze()  # the truth stays put while the rotation goes round
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, exchanges=["binance"], symbols=[],
                          collection={"open_interest_rotation": True})
    boards = Consumer(own_rabbit, "futures_data", "board.binance")
    stats = Consumer(own_rabbit, STATS_EXCHANGE, "stats.binance")
    try:
        start_worker("binance", config)
        listed = {symbol_of("binance", coin.base) for coin in own_sim.market.listed("binance")}
        _, board = boards.wait_for(
            lambda k, b: {r["symbol"] for r in b["markets"] if r["open_interest_time"] is not None} >= listed, 45,
            "a board whose every row has its rotated open interest")
        for row in board["markets"]:
            truth = own_sim.truth("binance", row["symbol"])
            assert (row["open_interest"], row["open_interest_time"]) == (truth["open_interest"], truth["timestamp"])
        requests = own_sim.requests("binance", path="/fapi/v1/openInterest")
        assert len(requests) >= len(listed)
        assert "429" not in own_sim.statuses("binance")
        _, report = stats.wait_for(lambda k, b: b.get("open_interest_age_seconds") is not None, 15,
                                   "the worst open-interest age in the statistics")
        assert 0 <= report["open_interest_age_seconds"] < 600
    finally:
        boards.close()
        stats.close()
