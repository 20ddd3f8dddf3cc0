"""The market board as a consumer sees it: seven real workers, the real broker, the simulator with its clock
frozen, so that every row of every board can be compared with the values behind the answers."""
from __future__ import annotations

import time

import pytest

from common.board import Board
from common.broker import STATS_EXCHANGE
from common.symbols import routing_key
from tests.conftest import EXCHANGES, Consumer, Process, symbol_on, write_config
from tests.simulator import Simulator
from tests.simulator.hyperliquid import impact_prices, mid_price

INTERVAL = 5
WATCHED = ["BTC/USDT:USDT", "SOL/USDT:USDT", "BTC/USDC:USDC", "SOL/USDC:USDC"]
# What the bulk rows carry (the rest is null on the board): HTX's mark price comes only per symbol, Binance
# puts no open interest in its bulk rows, Hyperliquid's has impact prices but no best bid and ask. HTX's open
# interest comes from its own bulk endpoint, in base units.
NOT_IN_BULK_ROWS = {"htx": {"mark_price"}, "binance": {"open_interest"},
                    "hyperliquid": {"bid", "ask"}}
# The simulator's one USDC-margined perpetual, on the exchanges where ccxt loads USDC perpetuals beside USDT.
USDC_PERPETUALS = {"bybit": ["BTC/USDC:USDC"], "bitget": ["BTC/USDC:USDC"]}
TRUTH_FIELDS = ("bid", "ask", "last", "volume_24h", "mark_price", "index_price", "funding_rate",
                "next_funding_time", "funding_interval_hours", "contract_size", "open_interest")


@pytest.fixture(scope="module")
def market(rabbit, tmp_path_factory):
    """Five workers watching two symbols; a consumer of every board and snapshot; the clock frozen."""
    sim = Simulator(extra_markets=5).start()
    sim.market.freeze()
    vhost = rabbit.isolated()
    tmp = tmp_path_factory.mktemp("board")
    config = write_config(tmp / "config.json", vhost, sim, symbols=WATCHED)
    boards = Consumer(vhost, "futures_data", "board.*")
    snapshots = Consumer(vhost, "futures_data", "futures.#")
    workers = {ex: Process(["worker.py", ex, "--config", str(config)], tmp / f"{ex}.log") for ex in EXCHANGES}
    yield sim, boards, snapshots, workers
    for worker in workers.values():
        worker.kill()
    boards.close()
    snapshots.close()
    vhost.close()
    sim.stop()


def board(boards: Consumer, exchange: str, after: float = 0.0) -> dict:
    return boards.wait_for(lambda k, b: k == f"board.{exchange}" and b["timestamp"] >= after * 1000,
                           3 * INTERVAL, f"board.{exchange}")[1]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_the_board_lists_every_perpetual_with_the_simulators_values(market, exchange):
    sim, boards, _, _ = market
    body = board(boards, exchange)
    Board.model_validate(body)
    assert body["exchange"] == exchange
    rows = {row["symbol"]: row for row in body["markets"]}
    own = [symbol_on(exchange, c.base) for c in sim.market.listed(exchange)]
    assert sorted(rows) == sorted(own + USDC_PERPETUALS.get(exchange, []))
    for symbol in own:
        row = rows[symbol]
        truth = {**sim.truth(exchange, symbol), **impact_truth(sim, exchange, symbol)}
        for name in TRUTH_FIELDS + ("impact_bid", "impact_ask"):
            expected = None if name in NOT_IN_BULK_ROWS.get(exchange, ()) else truth.get(name)
            assert row[name] == (pytest.approx(expected, rel=1e-9) if expected else expected), (symbol, name)


def impact_truth(sim, exchange: str, symbol: str) -> dict:
    """Hyperliquid's impact prices (its bulk answer's impactPxs) and its last price, the book's mid (no last
    trade in the bulk answer); nothing elsewhere."""
    if exchange != "hyperliquid":
        return {}
    quote = sim.market.quote(exchange, symbol.split("/")[0])
    impact_bid, impact_ask = impact_prices(quote)
    return {"impact_bid": float(impact_bid), "impact_ask": float(impact_ask), "last": float(mid_price(quote))}


@pytest.mark.parametrize("exchange", ["gateio", "okx", "htx"])
def test_open_interest_and_volume_counted_in_contracts_are_published_in_base_units(market, exchange):
    """Gate.io's tickers count open interest in contracts (`total_size`), OKX's answers both (`oi`, `oiCcy`) and
    its tickers' vol24h, which ccxt takes for the base volume, counts contracts too; HTX's open-interest rows
    answer both (`volume` in contracts, `amount` in base units), as its tickers do; the board says base units,
    like the other exchanges. Contracts of 0.0001 BTC or 1000 DOGE make the figures differ by orders of
    magnitude."""
    sim, boards, _, _ = market
    rows = {row["symbol"]: row for row in board(boards, exchange)["markets"]}
    converted = 0
    for coin in sim.market.listed(exchange):
        quote = sim.market.quote(exchange, coin.base)
        if quote.contract_size == 1 or not quote.open_interest:
            continue
        row = rows[f"{coin.base}/USDT:USDT"]
        assert row["open_interest"] == pytest.approx(float(quote.open_interest), rel=1e-9), coin.base
        assert row["open_interest"] != pytest.approx(float(quote.open_interest_contracts)), coin.base
        assert row["volume_24h"] == pytest.approx(float(quote.volume_24h), rel=1e-9), coin.base
        assert row["volume_24h"] != pytest.approx(float(quote.volume_24h_contracts)), coin.base
        converted += 1
    assert converted >= 3, f"the simulator should list {exchange} contracts whose size is not 1"


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_funding_intervals_are_each_symbols_own(market, exchange):
    """The simulator runs symbols on 1 h and 4 h schedules beside 8 h ones on the same exchange."""
    sim, boards, _, _ = market
    own = {symbol_on(exchange, c.base) for c in sim.market.listed(exchange)}
    rows = {row["symbol"]: row for row in board(boards, exchange)["markets"] if row["symbol"] in own}
    hours = {s: r["funding_interval_hours"] for s, r in rows.items()}
    expected = {s: sim.truth(exchange, s)["funding_interval_hours"] for s in rows}
    assert hours == expected and len(hours) == len(own)
    if exchange == "hyperliquid":  # every perpetual every hour
        assert set(hours.values()) == {1.0}
    else:
        assert len(set(expected.values())) > 1, f"{exchange}: the simulator should mix schedules"


def test_a_board_every_cycle_beside_unchanged_snapshots(market):
    sim, boards, snapshots, _ = market
    start = time.time()
    for exchange in EXCHANGES:
        first = board(boards, exchange, after=start)
        second = board(boards, exchange, after=first["timestamp"] / 1000 + 1)
        assert INTERVAL - 1 <= (second["timestamp"] - first["timestamp"]) / 1000 <= INTERVAL + 1.5, exchange
        rows = {row["symbol"]: row for row in second["markets"]}
        sol = symbol_on(exchange, "SOL")
        snapshot = snapshots.wait_for(lambda k, b, key=routing_key(exchange, sol): k == key, 3 * INTERVAL)[1]
        row = rows[sol]
        if row["impact_bid"] is None:
            assert (snapshot["ticker"]["bid"], snapshot["ticker"]["ask"]) == (row["bid"], row["ask"])
        else:  # Hyperliquid: the snapshot's bid/ask are its book's top, inside the impact prices
            assert row["bid"] is None and row["impact_bid"] <= snapshot["ticker"]["bid"] < snapshot["ticker"]["ask"] <= row["impact_ask"]
        assert snapshot["funding_rate"] == row["funding_rate"]
        assert snapshot["extra"]["funding_interval_hours"] == row["funding_interval_hours"]


def test_consumers_of_snapshots_see_no_board(market):
    _, boards, snapshots, _ = market
    board(boards, "bybit")
    assert {k.split(".")[0] for k, _ in snapshots.since(0)} == {"futures"}


def test_board_off_publishes_none_and_sends_the_same_requests(rabbit, tmp_path):
    """`collection.board: false`: no board message, and a whole cycle's requests are those of the same config
    with the board on (the bulk calls feed the snapshots too: turning the board off saves no request)."""
    runs = {board_on: Run(rabbit, tmp_path / f"board-{board_on}", board_on) for board_on in (True, False)}
    try:
        cycles = {board_on: run.second_cycle() for board_on, run in runs.items()}
        assert cycles[False] == cycles[True]
        assert sorted(path for path, _ in cycles[False]) == [  # the bulk calls and a book per watched symbol
            "/api/v4/futures/usdt/contracts", *["/api/v4/futures/usdt/order_book"] * 2,  # Gate lists the USDT two
            "/api/v4/futures/usdt/tickers"]
        assert runs[False].boards.since(0) == []
        assert "Published the board" not in runs[False].worker.log_text()
        assert [k for k, _ in runs[True].boards.since(0)], "the board-on run should publish boards"
    finally:
        for run in runs.values():
            run.close()


class Run:
    """A gateio worker watching WATCHED on a simulator and a vhost of its own, the board on or off."""

    def __init__(self, rabbit, tmp, board_on: bool):
        tmp.mkdir()
        self.sim = Simulator(extra_markets=5).start()
        self.vhost = rabbit.isolated()
        self.boards = Consumer(self.vhost, "futures_data", "board.*")
        self.stats = Consumer(self.vhost, STATS_EXCHANGE, "stats.#")
        config = write_config(tmp / "config.json", self.vhost, self.sim, exchanges=["gateio"], symbols=WATCHED,
                              collection={"board": board_on})
        self.worker = Process(["worker.py", "gateio", "--config", str(config)], tmp / "gateio.log")

    def second_cycle(self) -> list[tuple[str, str]]:
        """The requests from the second tickers request to the third, sorted (books go out concurrently). The
        first cycle follows the market load; the third tickers request leaves only once the second cycle's
        books are all in, and the third report comes after it."""
        self.stats.wait_for(lambda k, b: b["cycles"] >= 3, 5 * INTERVAL, "three cycles")
        log = self.sim.requests("gateio")
        tickers = [e.time for e in log if e.path == "/api/v4/futures/usdt/tickers"]
        return sorted((e.path, e.query) for e in log if tickers[1] <= e.time < tickers[2])

    def close(self):
        self.worker.kill()
        self.boards.close()
        self.stats.close()
        self.vhost.close()
        self.sim.stop()
