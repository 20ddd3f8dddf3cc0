"""The scanner's page in real headless Chromium (Debian's /usr/bin/chromium, scripts/install_test_tools.sh),
driven over the DevTools protocol: the page's own JavaScript polls a real scanner.py, which consumes what
the test publishes on a vhost of its own."""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import websocket

from tests.conftest import ROOT
from tests.test_scanner import (BTC, DATA_EXCHANGE, Publisher, ScannerProcess, board, free_port, now_ms, poll,
                                publish_market, publish_usdc_market, publisher, row, scanner,  # noqa: F401 - fixtures
                                snapshot)

CHROMIUM = "/usr/bin/chromium"
# Where to also write the screenshot, e.g. SCANNER_SCREENSHOT=docs/scanner.png for the README's picture.
SCREENSHOT = os.environ.get("SCANNER_SCREENSHOT")


class Chromium:
    """One headless Chromium with a fresh profile, and a DevTools session on its first page."""

    def __init__(self, profile: Path, width: int = 1920, height: int = 1000):
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"{CHROMIUM} is missing: run scripts/install_test_tools.sh (the test command does)")
        self.log = open(profile.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"], stdout=self.log, stderr=subprocess.STDOUT)
        # Chromium writes the port it chose into the profile once DevTools listens.
        port_file = profile / "DevToolsActivePort"
        port = poll(lambda: port_file.exists() and port_file.read_text().split("\n")[0].strip(), 30,
                    "DevTools port from Chromium")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:  # events in between are not ours to handle
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def run(self, statements: str) -> None:
        """Statements in a scope of their own (top-level `const`s would clash between calls)."""
        self.evaluate(f"(() => {{ {statements} }})()")

    def open(self, url: str) -> None:
        """Navigate, and await the new document (until then, expressions run in the old one)."""
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
                      what=f"{url} loaded")

    def wait_for(self, expression: str, timeout: float = 15, what: str | None = None):
        """Evaluate until truthy: the page redraws on its own timer, so there is nothing else to await."""
        return poll(lambda: self.evaluate(expression), timeout, what or expression)

    def screenshot(self, path: Path) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=1920, height=min(int(height) + 20, 4000),
                  deviceScaleFactor=1, mobile=False)
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(png)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait(10)
            self.log.close()


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    chromium = Chromium(profile)
    yield chromium
    chromium.close()


ROW_SYMBOLS = "[...document.querySelectorAll('#opportunities tbody tr')].map(tr => tr.dataset.symbol)"
BTC_ROW, ETH = "BTC", "ETH"  # rows are base assets


def cell(symbol: str, column: str) -> str:
    return (f"document.querySelector('#opportunities tbody tr[data-symbol=\"{symbol}\"] "
            f"td[data-col=\"{column}\"]').textContent")


def test_the_table_shows_the_rows_sorts_and_filters(scanner, publisher, browser):
    scanner.await_messages(publish_market(publisher))
    browser.open(scanner.url + "/")
    browser.wait_for(f"JSON.stringify({ROW_SYMBOLS}) === JSON.stringify(['{BTC_ROW}', '{ETH}'])", what="BTC and ETH rows")
    assert browser.evaluate(cell(BTC_ROW, "long")) == "gateio"
    assert browser.evaluate(cell(BTC_ROW, "short")) == "bybit"
    assert browser.evaluate(cell(BTC_ROW, "spread")) == "87.60%"          # 0.438 - (-0.438)
    assert browser.evaluate(cell(BTC_ROW, "short_apr")) == "43.80%"       # 0.00005 per 1 h
    assert browser.evaluate(cell(BTC_ROW, "price_spread")) == "49.9"      # 0.5 / 100.25 x 1e4
    assert browser.evaluate(cell(ETH, "cost_10000")) == "–"           # no deep books for ETH
    assert browser.evaluate(cell(BTC_ROW, "cost_100000")).endswith("(thin)")  # the books fill 15% and 20%
    countdown = browser.evaluate(cell(BTC_ROW, "long_next"))
    assert countdown.endswith("s") and "m" in countdown, countdown     # ~59m 5xs to the next funding
    assert browser.evaluate("document.getElementById('banner').hidden") is True

    # Sorting: a column's first click sorts it descending, the second ascending.
    browser.evaluate("document.querySelector('#head th[data-col=\"symbol\"]').click()")
    assert browser.evaluate(ROW_SYMBOLS) == [ETH, BTC_ROW]
    browser.evaluate("document.querySelector('#head th[data-col=\"symbol\"]').click()")
    assert browser.evaluate(ROW_SYMBOLS) == [BTC_ROW, ETH]
    browser.evaluate("document.querySelector('#head th[data-col=\"price_spread\"]').click()")
    assert browser.evaluate(ROW_SYMBOLS) == [BTC_ROW, ETH]  # 49.9 bps > 0 bps

    # Filters: the symbol, then the exchanges (the pair is chosen among the checked ones).
    browser.run("const s = document.getElementById('f-symbol'); s.value = 'eth';"
                     "s.dispatchEvent(new Event('input', {bubbles: true}))")
    browser.wait_for(f"JSON.stringify({ROW_SYMBOLS}) === JSON.stringify(['{ETH}'])", what="only ETH")
    assert "symbol=eth" in browser.evaluate("location.search")
    browser.run("const s = document.getElementById('f-symbol'); s.value = '';"
                     "s.dispatchEvent(new Event('input', {bubbles: true}))")
    browser.wait_for("document.querySelectorAll('#f-exchanges input').length === 4", what="exchange boxes")
    browser.run("const box = document.querySelector('#f-exchanges input[value=\"gateio\"]'); box.click()")
    browser.wait_for(f"document.querySelector('#opportunities tbody tr[data-symbol=\"{BTC_ROW}\"] "
                     "td[data-col=\"long\"]')?.textContent === 'binance'", what="BTC paired without gateio")
    assert "exchanges=binance%2Cbybit%2Chtx" in browser.evaluate("location.search")
    # The minimum volume: gateio's and bybit's ETH legs trade under $50,000 a day.
    browser.run("const v = document.getElementById('f-volume'); v.value = '50000';"
                     "v.dispatchEvent(new Event('input', {bubbles: true}))")
    browser.wait_for(f"JSON.stringify({ROW_SYMBOLS}) === JSON.stringify(['{BTC_ROW}'])", what="ETH filtered out")


def test_a_symbols_detail_shows_every_exchange_and_marks_stale_legs(scanner, publisher, browser):
    scanner.await_messages(publish_market(publisher))
    browser.open(scanner.url + "/")
    browser.wait_for(f"!!document.querySelector('#opportunities tbody tr[data-symbol=\"{BTC_ROW}\"]')", what="BTC row")
    browser.evaluate(f"document.querySelector('#opportunities tbody tr[data-symbol=\"{BTC_ROW}\"] td').click()")
    browser.wait_for("!document.getElementById('detail').hidden && "
                     "document.querySelectorAll('#detail-legs tr').length > 5", what="the detail")
    assert browser.evaluate("location.hash") == "#BTC"
    headers = browser.evaluate("[...document.querySelectorAll('#detail-legs tr:first-child th')].map(t => t.textContent)")
    assert headers == ["", "binance", "bybit", "gateio", "htx"]
    states = browser.evaluate("[...document.querySelectorAll('#detail-legs tr')].find(tr => "
                              "tr.firstChild.textContent === 'State').textContent")
    assert states == "StatefreshfreshfreshSTALE"
    assert browser.evaluate("document.querySelector('#detail-legs td[data-exchange=\"htx\"]').classList.contains('stale')")
    at_size = browser.evaluate("[...document.querySelectorAll('#pair-at-size tr')].map(tr => tr.textContent)")
    assert len(at_size) == 3 and at_size[1].startswith("$10k") and at_size[2].startswith("$100k")
    assert "15.1%" in at_size[2] and "20.1%" in at_size[2]  # the fills of the thin books
    depth = browser.evaluate("document.getElementById('detail-depth').textContent")
    assert "Buy $10k" in depth and "Sell $100k" in depth


def visible(selector: str) -> str:
    """The texts of the matching elements as the page renders them (innerText: what a person sees)."""
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.innerText)"


def test_a_usdc_legs_quote_shows_beside_its_exchange_and_in_the_detail(scanner, publisher, browser):
    scanner.await_messages(publish_usdc_market(publisher))
    browser.open(scanner.url + "/")
    btc = "#opportunities tbody tr[data-symbol='BTC']"
    browser.wait_for(f"!!document.querySelector({json.dumps(btc)})", what="the BTC row")
    assert browser.evaluate(visible(f"{btc} td[data-col='long']")) == ["binance"]  # USDT goes unsaid
    assert browser.evaluate(visible(f"{btc} td[data-col='short']")) == ["hyperliquid · USDC"]
    # (100,100 x 0.9990 - 99,950) / mid x 1e4 = 4.99 bps: Hyperliquid's bid converted to USDT
    assert browser.evaluate(visible(f"{btc} td[data-col='price_spread']")) == ["5.0"]
    browser.evaluate(f"document.querySelector({json.dumps(btc + ' td')}).click()")
    browser.wait_for("!document.getElementById('detail').hidden && "
                     "document.querySelectorAll('#detail-legs tr').length > 5", what="the detail")
    assert browser.evaluate("location.hash") == "#BTC"
    assert browser.evaluate(visible("#detail-legs tr:first-child th")) == ["", "binance", "hyperliquid · USDC"]
    rows = {cells[0]: cells[1:] for cells in browser.evaluate(
        "[...document.querySelectorAll('#detail-legs tr')].map(tr => [...tr.children].map(c => c.innerText))")}
    assert rows["Symbol"] == ["BTC/USDT:USDT", "BTC/USDC:USDC"] and rows["Quote"] == ["USDT", "USDC"]
    assert rows["Impact bid / ask"] == ["–", "100080 / 100130"] and rows["Bid"][1] == "100100"
    assert "0.999 USDT per USDC" in browser.evaluate("document.getElementById('detail-rate').innerText")
    pair = browser.evaluate("document.querySelector('#detail-pairs .pair-text').innerText")
    assert "short hyperliquid · USDC BTC/USDC:USDC" in pair and "price spread 5.0 bps" in pair


def test_banner_when_the_broker_is_down(tmp_path, own_rabbit, browser):
    down = ScannerProcess(tmp_path, {**own_rabbit.config(DATA_EXCHANGE), "port": free_port()})
    try:
        browser.open(down.url + "/")
        text = browser.wait_for("!document.getElementById('banner').hidden && "
                                "document.getElementById('banner').textContent", what="the banner")
        assert "RabbitMQ is unreachable" in text
    finally:
        down.process.kill()


def test_banner_when_the_data_is_stale(scanner, publisher, browser):
    old = now_ms() - 120_000
    publisher.publish("board.bybit", board("bybit", old, [row(BTC, 100.0, 100.1, 0.0001, 8, 10.0)]))
    scanner.await_messages(1)
    browser.open(scanner.url + "/")
    text = browser.wait_for("!document.getElementById('banner').hidden && "
                            "document.getElementById('banner').textContent", what="the banner")
    assert "Data is stale" in text
    assert browser.wait_for("document.querySelector('#feeds .feed.stale')?.textContent").startswith("bybit stale")


def test_screenshot(scanner, publisher, browser, tmp_path):
    """A fuller market for the README's picture; checks that Chromium rendered it."""
    scanner.await_messages(publish_showcase(publisher))
    browser.open(scanner.url + "/#BTCUSDT")
    browser.wait_for("document.querySelectorAll('#opportunities tbody tr').length >= 6 && "
                     "!document.getElementById('detail').hidden && !!document.getElementById('pair-at-size') && "
                     "document.getElementById('detail-legs').innerText.includes('hyperliquid · USDC')",
                     what="the table and BTC's detail with its USDC leg")
    shot = tmp_path / "scanner.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if SCREENSHOT:
        shutil.copyfile(shot, ROOT / SCREENSHOT)


def publish_showcase(publisher: Publisher) -> int:
    """Five exchanges of USDT perpetuals and Hyperliquid's USDC ones, eight assets, deep books for BTC and ETH;
    one exchange's legs stale."""
    t = now_ms()
    prices = {"BTC": 97_250.0, "ETH": 3_412.5, "SOL": 187.42, "XRP": 2.3145, "DOGE": 0.38215, "BNB": 702.1,
              "ADA": 1.0412, "LINK": 24.871}
    funding = {  # exchange: (interval hours, rate per symbol index)
        "binance": (8, [0.0001, 0.00008, 0.00012, 0.0001, 0.00025, 0.0001, 0.00005, 0.0001]),
        "bybit": (8, [0.00012, 0.0001, -0.00005, 0.0001, 0.0003, 0.00008, 0.0001, 0.00015]),
        "bitget": (8, [0.00009, 0.0001, 0.0001, 0.00007, 0.0002, 0.0001, 0.0001, 0.00011]),
        "htx": (4, [0.00006, 0.00004, 0.00008, 0.00005, 0.00009, 0.00005, 0.00003, 0.00004]),
        "gateio": (1, [0.00001, 0.000015, 0.00002, 0.00001, 0.00003, 0.00001, 0.00002, 0.00001]),
    }
    count = 0
    for e, (exchange, (hours, rates)) in enumerate(funding.items()):
        rows = []
        for i, (base, p) in enumerate(prices.items()):
            mid = p * (1 + (e - 2) * 0.0002)
            rows.append(row(f"{base}/USDT:USDT", round(mid * 0.99995, 6), round(mid * 1.00005, 6), rates[i], hours,
                            2e9 / p / (i + 1) / (e + 1), mark=round(mid * 1.0001, 6), index=round(mid, 6),
                            next=t + ((i + 1) * 600_000)))
        if exchange == "binance":  # the USDC/USDT rate the USDC legs are compared at
            rows.append(row("USDC/USDT:USDT", 0.9998, 0.9999, 0.00001, 8, 5e8))
        stamp = t - 600_000 if exchange == "htx" else t - 1500  # htx: stale, shown so, never paired
        publisher.publish(f"board.{exchange}", board(exchange, stamp, rows))
        count += 1
        for base in ("BTC", "ETH"):
            p = prices[base] * (1 + (e - 2) * 0.0002)
            step = p * 0.00002
            bids = [[round(p - step * k, 6), round(30_000 / p * (1 + k), 6)] for k in range(1, 40)]
            asks = [[round(p + step * k, 6), round(30_000 / p * (1 + k), 6)] for k in range(1, 40)]
            publisher.publish(f"futures.{exchange}.{base}USDT", snapshot(
                exchange, f"{base}/USDT:USDT", stamp + 500, bids[0][0], asks[0][0], funding[exchange][1][0 if base == "BTC" else 1],
                hours, bids, asks, mark=p * 1.0001, index=p, volume=2e9 / p))
            count += 1
    publisher.publish("board.hyperliquid", board("hyperliquid", t - 1500, [  # USDC perpetuals, hourly funding
        {**row(f"{base}/USDC:USDC", 0.0, 0.0, rate, 1, 1e9 / p, mark=round(p * 1.0002, 6), index=round(p, 6),
               next=t + 600_000), "bid": None, "ask": None,  # its board has impact prices only
         "impact_bid": round(p * 0.9997, 6), "impact_ask": round(p * 1.0003, 6)}
        for (base, p), rate in zip(prices.items(), (0.0000125, 0.00002, -0.00001, 0.00001, 0.00004, 0.00001,
                                                    0.000005, 0.0000125))]))
    publisher.publish("futures.hyperliquid.BTCUSDC", snapshot(  # watched: the top of its book from its l2Book
        "hyperliquid", "BTC/USDC:USDC", t - 1000, 97_262.0, 97_264.0, 0.0000125, 1,
        [[97_262.0 - 2 * k, 0.3 * k] for k in range(20)], [[97_264.0 + 2 * k, 0.3 * k + 0.1] for k in range(20)],
        mark=97_263.0, index=97_250.0, volume=1e9 / 97_250))
    return count + 2


# -- exposure: security headers, the Host check, the access token (real HTTP to a running scanner.py) --------
SECURITY = {"content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"}
TOKEN = "t0ken-for-the-test-" + "x" * 8


def raw_get(url: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One GET as sent, no redirect followed, no Host header added unless given: (status, headers, body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.putrequest("GET", path, skip_host=True)
        sent = {"Host": f"{host}:{port}", **(headers or {})}
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_every_answer_carries_the_security_headers(scanner):
    for path, status in [("/", 200), ("/static/scanner.js", 200), ("/static/scanner.css", 200), ("/api/status", 200),
                         ("/api/opportunities", 200), ("/api/opportunities?limit=1", 400), ("/nothing", 404),
                         ("/static/missing.js", 404), ("/static/history.js", 200),
                         ("/static/vendor/uPlot.iife.min.js", 200), ("/static/vendor/uPlot.min.css", 200),
                         ("/api/history/BTC?days=31", 400), ("/api/history/BTC", 503)]:  # 503: no database here
        got, headers, _ = raw_get(scanner.url, path)
        assert got == status, path
        assert SECURITY <= set(headers), (path, headers)
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer" and "frame-ancestors 'none'" in headers["content-security-policy"]
    status, headers, _ = raw_get(scanner.url, "/api/status", {"Host": "attacker.example"})
    assert status == 400 and SECURITY <= set(headers)


def test_the_host_header_must_name_this_scanner(tmp_path, own_rabbit):
    """A DNS-rebinding page (attacker.example resolving to 127.0.0.1) sends its own name as Host."""
    process = ScannerProcess(tmp_path, own_rabbit.config(DATA_EXCHANGE), allowed_hosts=["Scanner.LAN"])
    try:
        port = process.url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", f"scanner.lan:{port}"):
            assert raw_get(process.url, "/api/status", {"Host": host})[0] == 200, host
        for host in (f"attacker.example:{port}", "127.0.0.1.attacker.example", "scanner.lan.attacker.example", ""):
            status, _, body = raw_get(process.url, "/api/status", {"Host": host})
            assert status == 400 and b"Host" in body, host
            assert raw_get(process.url, "/static/scanner.js", {"Host": host})[0] == 400
    finally:
        process.process.kill()


@pytest.fixture
def guarded(tmp_path, own_rabbit):
    process = ScannerProcess(tmp_path, own_rabbit.config(DATA_EXCHANGE), access_token=TOKEN)
    process.wait_consuming()
    yield process
    process.process.kill()


def test_with_an_access_token_nothing_is_served_without_it(guarded):
    for path in ("/", "/api/status", "/api/opportunities", "/api/symbol/BTCUSDT", "/static/scanner.js",
                 "/api/history/BTC", "/static/vendor/uPlot.iife.min.js"):
        status, headers, _ = raw_get(guarded.url, path)
        assert status == 401 and headers["www-authenticate"] == "Bearer" and SECURITY <= set(headers), path
        for wrong in ("Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x", "Basic " + TOKEN, TOKEN):
            assert raw_get(guarded.url, path, {"Authorization": wrong})[0] == 401, (path, wrong)
        assert raw_get(guarded.url, path, {"Cookie": "futures_scan_token=guess"})[0] == 401
        # Nothing published: served, and not found; no history database: served, and unavailable.
        served = 404 if path.startswith("/api/symbol") else 503 if path.startswith("/api/history") else 200
        assert raw_get(guarded.url, path, {"Authorization": "Bearer " + TOKEN})[0] == served, path
    assert raw_get(guarded.url, "/?token=guess")[0] == 401
    assert TOKEN not in guarded.process.log_text()


def test_the_token_in_the_query_once_sets_a_strict_cookie_and_leaves_the_address(guarded):
    status, headers, _ = raw_get(guarded.url, f"/?symbol=eth&token={TOKEN}&exchanges=binance")
    assert status == 303 and headers["location"] == "/?symbol=eth&exchanges=binance"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"futures_scan_token={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert raw_get(guarded.url, "/api/status", {"Cookie": f"futures_scan_token={TOKEN}"})[0] == 200


def test_the_page_works_through_the_token_link(guarded, publisher, browser):
    publish_market(publisher)
    browser.call("Page.navigate", url=guarded.url + f"/?token={TOKEN}")  # redirected to /, the cookie set
    browser.wait_for(f"location.href === {json.dumps(guarded.url + '/')} && document.readyState === 'complete'",
                     what="the address without the token")
    browser.wait_for(f"JSON.stringify({ROW_SYMBOLS}) === JSON.stringify(['{BTC_ROW}', '{ETH}'])", what="the rows")
    assert browser.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read it


def test_a_non_loopback_listen_without_a_token_stops_at_start(tmp_path, own_rabbit):
    config = {"rabbitmq": own_rabbit.config(), "exchanges": ["bybit"], "symbols": [BTC], "api_keys_file": None,
              "scanner": {"listen": "0.0.0.0:0"}}
    path = tmp_path / "open.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([sys.executable, "scanner.py", "--config", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "scanner.access_token" in result.stderr, result.stderr


def test_a_hash_that_is_not_percent_encoding_does_not_stop_the_polls(scanner, publisher, browser):
    scanner.await_messages(publish_market(publisher))
    browser.open(scanner.url + "/#%")
    browser.wait_for(f"JSON.stringify({ROW_SYMBOLS}) === JSON.stringify(['{BTC_ROW}', '{ETH}'])", what="the rows")
    assert browser.evaluate("document.getElementById('detail').hidden") is True
    browser.run("location.hash = 'BTCUSDT'")
    browser.wait_for("!document.getElementById('detail').hidden", what="the detail after a good hash")


def test_the_terminal_view_sends_the_token(guarded, publisher):
    publish_market(publisher)
    command = [sys.executable, "scripts/scan.py", "--url", guarded.url, "--once"]
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30,
                             env={**os.environ, "FUTURES_SCAN_SCANNER_TOKEN": ""})
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr and TOKEN not in refused.stderr
    shown = poll(lambda: (r := subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30,
                                              env={**os.environ, "COLUMNS": "220", "FUTURES_SCAN_SCANNER_TOKEN": TOKEN}))
                 .returncode == 0 and "│ ETH " in r.stdout and r, 20, "the table through the token")
    assert "│ BTC " in shown.stdout
