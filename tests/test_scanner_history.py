"""The scanner's realized funding and history, end to end: a real scanner.py reads a history database the test
writes with common/history's writers (as the recorder does) while the test publishes the live market on a
vhost of its own; the JSON API's realized values equal hand computations, and the page draws the history in
real headless Chromium."""
from __future__ import annotations

import os
import shutil

import pytest

from common.history import note_coverage, open_history, store_samples, store_settlements
from tests.conftest import ROOT
from tests.test_scanner import (BTC, DATA_EXCHANGE, ETH, ScannerProcess, now_ms, poll, publish_market,  # noqa: F401
                                publisher)
from tests.test_scanner_page import browser  # noqa: F401 - the fixture

HOUR = 3_600_000
DAY = 24 * HOUR
# Where to also write the screenshot, e.g. SCANNER_HISTORY_SCREENSHOT=docs/scanner-history.png for the README.
SCREENSHOT = os.environ.get("SCANNER_HISTORY_SCREENSHOT")
HYPERLIQUID_BTC = "BTC/USDC:USDC"


def history_rows(now: int) -> dict[tuple[str, str], dict]:
    """Every leg's settlements [(funding_time, rate, interval_hours)] and samples [(ts, bid, ask, mark,
    funding_rate, interval)], none within 30 minutes of a window's edge (the scanner's clock runs a little
    after the test's). The live pairs (publish_market): BTC long gateio, short bybit; ETH long binance, short
    bybit."""
    gateio = [(now - 1 * HOUR, 0.0001, 8.0), (now - 9 * HOUR, 0.0002, 8.0), (now - 17 * HOUR, -0.00005, 8.0)]
    gateio += [(now - 17 * HOUR - k * 8 * HOUR, 0.0001, 8.0) for k in range(1, 23)]      # back to 193 h
    samples = {  # every 6 h for 6 days, the newest 10 minutes ago; bybit quotes 0.4 higher
        exchange: [(now - 600_000 - k * 6 * HOUR, 100.0 + lift + k / 10, 100.2 + lift + k / 10, 100.1 + lift, 0.0001,
                    8.0) for k in range(25)]
        for exchange, lift in (("gateio", 0.0), ("bybit", 0.4))}
    return {
        ("gateio", BTC): {"settlements": sorted(gateio), "samples": sorted(samples["gateio"])},
        ("bybit", BTC): {"settlements": sorted((now - HOUR // 2 - h * HOUR, 0.00005, 1.0) for h in range(192)),
                         "samples": sorted(samples["bybit"])},
        ("binance", ETH): {"settlements": sorted((now - 2 * HOUR - k * 8 * HOUR, 0.0001, 8.0) for k in range(24)),
                           "samples": []},
        ("bybit", ETH): {"settlements": sorted((now - 2 * HOUR - k * 8 * HOUR, 0.0005, 8.0) for k in range(24)),
                         "samples": []},
        # Sampled 4 days ago only: in a 7-day history, not in a 3-day one. No coverage: its windows are null.
        ("hyperliquid", HYPERLIQUID_BTC): {"settlements": [], "samples": [(now - 4 * DAY, None, None, 99.9, 0.00001, 1.0)]},
    }


def write_history(path, now: int) -> dict:
    rows = history_rows(now)
    conn = open_history(path)
    for (exchange, symbol), leg in rows.items():
        store_settlements(conn, exchange, [{"symbol": symbol, "funding_time": t, "rate": rate, "interval_hours": hours}
                                           for t, rate, hours in leg["settlements"]])
        for ts, bid, ask, mark, rate, hours in leg["samples"]:
            store_samples(conn, ts, exchange, [{"symbol": symbol, "bid": bid, "ask": ask, "mark_price": mark,
                                                "funding_rate": rate, "funding_interval_hours": hours}])
        if leg["settlements"]:
            note_coverage(conn, exchange, symbol, now - 8 * DAY)  # the backfill reached 8 days back
    conn.close()
    return rows


@pytest.fixture
def history(tmp_path, own_rabbit):
    """(scanner, the rows stored, the test's now) with the database written before the scanner starts."""
    now = now_ms()
    path = tmp_path / "state" / "history.sqlite"
    rows = write_history(path, now)
    scanner = ScannerProcess(tmp_path, own_rabbit.config(DATA_EXCHANGE), history_database=path)
    scanner.wait_consuming()
    poll(lambda: scanner.get("/api/status")["history"]["available"], 10, "the history read")
    yield scanner, rows, now
    scanner.process.kill()


def apr(total_rate: float, hours: float) -> float:
    return total_rate * 8760 / hours


def test_the_legs_carry_their_realized_apr_and_sort_realized_7d_orders_the_rows(history, publisher):
    scanner, _, _ = history
    scanner.await_messages(publish_market(publisher))
    status = scanner.get("/api/status")["history"]
    assert status["available"] is True and status["legs"] == 5 and status["database"].endswith("history.sqlite")
    rows = scanner.get("/api/opportunities")["rows"]
    assert [r["symbol"] for r in rows] == ["BTC", "ETH"]  # the live spreads: 0.876, 0.219
    btc, eth = rows
    assert (btc["long"]["exchange"], btc["short"]["exchange"]) == ("gateio", "bybit")
    # gateio: 0.0001 + 0.0002 - 0.00005 in the last day; 18 more of 0.0001 within 7 days; covered 8 days back.
    gateio = btc["long"]["realized_apr"]
    assert gateio["1d"] == pytest.approx(apr(0.00025, 24)) and gateio["1d"] == pytest.approx(0.09125)
    assert gateio["3d"] == pytest.approx(apr(0.00025 + 6 * 0.0001, 72))
    assert gateio["7d"] == pytest.approx(apr(0.00025 + 18 * 0.0001, 168))
    assert gateio["30d"] is None
    bybit = btc["short"]["realized_apr"]  # 0.00005 every hour: 0.438 a year over any window
    assert bybit["1d"] == pytest.approx(0.438) and bybit["7d"] == pytest.approx(0.438) and bybit["30d"] is None
    assert btc["realized_apr_spread"]["7d"] == pytest.approx(0.438 - apr(0.00205, 168))
    assert btc["realized_apr_spread"]["30d"] is None
    assert eth["realized_apr_spread"]["7d"] == pytest.approx(apr(21 * 0.0005, 168) - apr(21 * 0.0001, 168))

    by_realized = scanner.get("/api/opportunities?sort=realized_7d")["rows"]
    assert [r["symbol"] for r in by_realized] == ["ETH", "BTC"]  # 0.438 over 0.331
    legs = {leg["exchange"]: leg for leg in scanner.get("/api/symbol/BTCUSDT")["legs"]}
    assert legs["binance"]["realized_apr"] == {"1d": None, "3d": None, "7d": None, "30d": None}  # not in the database
    assert legs["gateio"]["realized_apr"]["1d"] == pytest.approx(0.09125)
    status, body = scanner.get_error("/api/opportunities?sort=realized_2d")
    assert status == 400 and "realized_7d" in body["error"]


def test_history_gives_exactly_the_stored_rows_within_the_days_asked(history):
    scanner, rows, now = history
    answer = scanner.get("/api/history/BTC?days=3")
    assert answer["symbol"] == "BTC" and answer["to"] - answer["from"] == 3 * DAY and answer["to"] >= now
    window = now - 3 * DAY  # no row lies within 30 minutes of it
    got = {(leg["exchange"], leg["symbol"]): leg for leg in answer["legs"]}
    assert list(got) == [("bybit", BTC), ("gateio", BTC)]  # hyperliquid's one sample is 4 days old
    for key, leg in got.items():
        assert leg["settlements"] == [list(s) for s in rows[key]["settlements"] if s[0] > window]
        assert leg["samples"] == [list(s) for s in rows[key]["samples"] if s[0] > window]
    assert len(got[("gateio", BTC)]["settlements"]) == 9 and len(got[("bybit", BTC)]["samples"]) == 12

    week = scanner.get("/api/history/BTCUSDC?days=7")  # BTCUSDC names the asset, as /api/symbol takes it
    assert [(leg["exchange"], leg["symbol"]) for leg in week["legs"]] == \
        [("bybit", BTC), ("gateio", BTC), ("hyperliquid", HYPERLIQUID_BTC)]
    assert week["legs"][2]["samples"] == [[now - 4 * DAY, None, None, 99.9, 0.00001, 1.0]]
    default = scanner.get("/api/history/BTC")
    assert default["to"] - default["from"] == 7 * DAY
    for bad in ("0", "31", "seven", "1.5", "-3"):
        status, body = scanner.get_error(f"/api/history/BTC?days={bad}")
        assert status == 400 and "from 1 to 30" in body["error"], bad
    status, body = scanner.get_error("/api/history/BTC%3Cscript%3E")
    assert status == 400 and "base" in body["error"]


def test_without_a_database_every_realized_value_is_null_and_history_says_why(tmp_path, own_rabbit, publisher):
    scanner = ScannerProcess(tmp_path, own_rabbit.config(DATA_EXCHANGE))  # its database does not exist
    try:
        scanner.wait_consuming()
        scanner.await_messages(publish_market(publisher))
        status = scanner.get("/api/status")["history"]
        assert status["available"] is False and "does not exist" in status["problem"]
        rows = scanner.get("/api/opportunities")["rows"]
        assert rows and all(r["realized_apr_spread"] == {"1d": None, "3d": None, "7d": None, "30d": None} for r in rows)
        assert all(r["long"]["realized_apr"]["7d"] is None for r in rows)
        code, body = scanner.get_error("/api/history/BTC?days=3")
        assert code == 503 and "does not exist" in body["error"]
        log = scanner.process.log_text()
        assert log.count("History database unavailable") == 1
        assert not (tmp_path / "history").exists()  # read only: the scanner creates nothing
    finally:
        scanner.process.kill()


# -- the page ----------------------------------------------------------------------------------------
LEGEND = "[...document.querySelectorAll('#chart-{name} .u-legend .u-series .u-label')].map(label => label.textContent)"


def line_pixels(name: str) -> str:
    """Per drawn series, how many of the chart canvas's pixels have its legend marker's colour: the lines as
    they are drawn, not the axes or the grid."""
    return f"""(() => {{
        const canvas = document.querySelector('#chart-{name} canvas');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const markers = [...document.querySelectorAll('#chart-{name} .u-legend .u-series .u-marker')].slice(1);
        return markers.map((m) => {{
            const [r, g, b] = getComputedStyle(m).borderColor.match(/\\d+/g).map(Number);
            let count = 0;
            for (let i = 0; i < pixels.length; i += 4) {{
                if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 40) count++;
            }}
            return count;
        }});
    }})()"""


def drawn(name: str, days: int) -> str:
    return f"document.getElementById('chart-{name}').dataset.days === '{days}' && !!document.querySelector('#chart-{name} canvas')"


def test_a_symbols_detail_draws_every_legs_funding_and_the_pairs_spread(history, publisher, browser, tmp_path):
    scanner, rows, now = history
    scanner.await_messages(publish_market(publisher))
    browser.open(scanner.url + "/#BTC")
    browser.wait_for(drawn("funding", 7) + " && " + drawn("spread", 7), what="BTC's history charts over 7 days")

    def settled_within(days: int) -> int:
        return sum(1 for key in (("bybit", BTC), ("gateio", BTC)) for t, *_ in rows[key]["settlements"]
                   if t > now - days * DAY)

    # One line per leg with settlements (hyperliquid's leg has none), each drawn in its own colour.
    assert browser.evaluate(LEGEND.format(name="funding")) == ["Time", "bybit", "gateio"]
    assert browser.evaluate("document.getElementById('chart-funding').dataset.points") == str(settled_within(7))
    assert all(count > 100 for count in browser.evaluate(line_pixels("funding"))), browser.evaluate(line_pixels("funding"))
    # The live pair's price spread: bybit's mid over gateio's, at each of the 25 samples (all within 7 days).
    assert browser.evaluate(LEGEND.format(name="spread")) == ["Time", "bybit over gateio"]
    assert browser.evaluate("document.getElementById('chart-spread').dataset.points") == "25"
    assert browser.evaluate(line_pixels("spread"))[0] > 100
    assert [browser.evaluate(f"document.getElementById('spread-{side}').value") for side in ("long", "short")] == \
        ["gateio " + BTC, "bybit " + BTC]

    # Another number of days draws again, from the history of those days.
    for days in (3, 30):
        browser.evaluate(f"document.querySelector('#history-days button[data-days=\"{days}\"]').click()")
        browser.wait_for(drawn("funding", days), what=f"the funding chart over {days} days")
        assert browser.evaluate("document.getElementById('chart-funding').dataset.points") == str(settled_within(days))
        assert browser.evaluate(f"document.querySelector('#history-days button[data-days=\"{days}\"]')"
                                ".getAttribute('aria-pressed')") == "true"
    assert settled_within(3) < settled_within(7) < settled_within(30)
    assert browser.evaluate("document.getElementById('chart-spread').dataset.points") == "25"
    realized = browser.evaluate("[...document.querySelectorAll('#detail-legs tr')].find(tr => "
                                "tr.firstChild.textContent === 'Realized APR 1d').innerText")
    assert ("9.13%" in realized or "9.12%" in realized) and "43.80%" in realized  # gateio's 0.09125, bybit's 0.438

    browser.evaluate("document.querySelector('#history-days button[data-days=\"7\"]').click()")  # for the picture
    browser.wait_for(drawn("funding", 7) + " && " + drawn("spread", 7), what="the charts over 7 days again")
    shot = tmp_path / "scanner-history.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if SCREENSHOT:
        shutil.copyfile(shot, ROOT / SCREENSHOT)


def test_the_table_sorts_by_a_realized_column(history, publisher, browser):
    scanner, _, _ = history
    scanner.await_messages(publish_market(publisher))
    browser.open(scanner.url + "/")
    rows = "[...document.querySelectorAll('#opportunities tbody tr')].map(tr => tr.dataset.symbol)"
    browser.wait_for(f"JSON.stringify({rows}) === JSON.stringify(['BTC', 'ETH'])", what="BTC and ETH rows")
    cell = "document.querySelector('#opportunities tbody tr[data-symbol=\"{0}\"] td[data-col=\"{1}\"]').textContent"
    assert browser.evaluate(cell.format("ETH", "realized_7d")) == "43.80%"      # 0.5475 - 0.1095
    assert browser.evaluate(cell.format("BTC", "realized_7d")) == f"{(0.438 - apr(0.00205, 168)) * 100:.2f}%"
    assert browser.evaluate(cell.format("BTC", "realized_30d")) == "–"          # covered 8 days back only
    browser.evaluate("document.querySelector('#head th[data-col=\"realized_7d\"]').click()")
    assert browser.evaluate(rows) == ["ETH", "BTC"]
