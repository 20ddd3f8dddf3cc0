"""Bybit V5 dialect: https://api.bybit.com/v5/market/... as ccxt 4.5.90's `bybit` class calls it.

Wire format (Bybit V5, public market data):
* Every answer is ``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}`` with HTTP 200;
  business errors (unknown symbol, bad parameter) are HTTP 200 too, with a non-zero ``retCode``.
* Numbers are strings; a missing value is the empty string ``""`` (ccxt's safe_string reads "" as None).
* Linear contracts are quoted in base units (contract size 1): volume24h and book sizes are base amounts.

Routes:
  /v5/market/instruments-info  category=spot|linear|inverse|option (+status, symbol, baseCoin, limit, cursor)
  /v5/market/tickers           category=spot|linear|inverse|option (+symbol, baseCoin): bid, ask, last,
                               volume, mark, index, funding rate, next funding time, funding interval
  /v5/market/orderbook         category, symbol, limit (linear/inverse 1..1000, spot 1..1000, option 1..25)
  /v5/market/time              server time (ccxt's fetch_time / adjustForTimeDifference)
  /v5/market/funding/history   category, symbol, startTime, endTime (both inclusive), limit 1..200 (default 200,
                               more: retCode 10001): the newest settlements up to endTime (or now), newest first;
                               startTime without endTime is an error, as Bybit documents

Budget: 600 requests per 5 s per IP, every public request counts 1.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

from tests.simulator.server import Budget, Rejected, Reply

BUDGETS = [Budget(600, 5.0)]
BAN_AFTER_429S = None      # Bybit answers 403 "access too frequent" and bans the IP for a while; no 418 ladder

MAX_DEPTH = {"linear": 1000, "inverse": 1000, "spot": 1000, "option": 25}
DEFAULT_DEPTH = {"linear": 25, "inverse": 25, "spot": 1, "option": 1}
LAUNCH_TIME = "1585526400000"

# Markets of the other categories (and the non-USDT linear contracts), so that ccxt's default load_markets,
# which asks every category, gets small valid answers. Values come from the listed coin's quote.
SPOT_BASES = ("BTC", "ETH")
INVERSE_BASE = "BTC"
_EXPIRY = datetime(2030, 3, 29, 8, 0, tzinfo=timezone.utc)
EXPIRY_MS = int(_EXPIRY.timestamp() * 1000)
EXPIRY_CODE = _EXPIRY.strftime("%d%b%y").upper()          # 29MAR30
OPTION_ID = f"BTC-{EXPIRY_CODE}-80000-C"
FUTURE_ID = f"BTCUSDT-{EXPIRY_CODE}"
USDC_PERP_ID = "BTCPERP"


def _s(d) -> str:
    """A Decimal as Bybit writes it: plain notation, "" when missing."""
    return "" if d is None else format(d, "f")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ok(result: dict, ts: int | None = None) -> dict:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": ts or _now_ms()}


def _err(code: int, message: str) -> dict:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": _now_ms()}


def weight(req) -> int:
    return 1


def error_body(status: int, message: str):
    """Bybit's error shapes. 5xx come from Bybit's gateway, not from the API: no JSON body, so ccxt maps the
    HTTP status (ExchangeNotAvailable) instead of reading a retCode."""
    if status >= 500:
        return f"<html><head><title>{status} Error</title></head><body>{message}</body></html>".encode()
    if status == 429:      # "System level frequency protection"
        return _err(10006, f"Too many visits! {message}")
    if status in (403, 418):  # the IP rate limit ban
        return _err(10018, f"Your IP has exceeded the rate limit: {message}")
    if status == 404:
        return _err(10017, f"Route not found: {message}")
    return _err(10001, f"params error: {message}")


def _bad_category(category) -> Reply:
    return Reply(200, _err(10001, f"params error: category {category!r} is invalid"))


def _listed(req) -> dict:
    """{exchange id: Coin} for the USDT linear perpetuals the simulated Bybit lists."""
    return {f"{c.base}USDT": c for c in req.listed()}


def _decimals(step: str) -> str:
    exp = Decimal(step).normalize().as_tuple().exponent
    return str(max(0, -exp))


# -- instruments-info -------------------------------------------------------------------------------------
def _linear_instrument(symbol, coin, contract_type="LinearPerpetual", base=None, quote="USDT", settle="USDT",
                       delivery="0", req=None):
    hours = coin.funding_hours.get("bybit", 8)
    amount_step = coin.amount_step
    return {
        "symbol": symbol, "contractType": contract_type, "status": "Trading",
        "baseCoin": base or coin.base, "quoteCoin": quote, "launchTime": LAUNCH_TIME, "deliveryTime": delivery,
        "deliveryFeeRate": "" if delivery == "0" else "0.0005", "priceScale": _decimals(coin.price_tick),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": coin.price_tick, "maxPrice": format(Decimal(coin.price_tick) * 10**8, "f"),
                        "tickSize": coin.price_tick},
        "lotSizeFilter": {"maxOrderQty": format(Decimal(amount_step) * 10**6, "f"), "minOrderQty": amount_step,
                          "qtyStep": amount_step, "postOnlyMaxOrderQty": format(Decimal(amount_step) * 10**7, "f"),
                          "maxMktOrderQty": format(Decimal(amount_step) * 10**5, "f"), "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": hours * 60 if contract_type.endswith("Perpetual") else 0,
        "settleCoin": settle, "copyTrading": "both", "upperFundingRate": "0.02", "lowerFundingRate": "-0.02",
        "isPreListing": False, "preListingInfo": None, "displayName": "",
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
    }


def _instruments(req) -> list[dict] | Reply:
    category = req.query.get("category")
    coins = {c.base: c for c in req.listed()}
    if category == "linear":
        if req.query.get("status") == "PreLaunch":
            return []
        rows = [_linear_instrument(f"{c.base}USDT", c) for c in coins.values()]
        if "BTC" in coins:
            btc = coins["BTC"]
            rows.append(_linear_instrument(USDC_PERP_ID, btc, quote="USDC", settle="USDC"))
            rows.append(_linear_instrument(FUTURE_ID, btc, contract_type="LinearFutures", delivery=str(EXPIRY_MS)))
        return rows
    if category == "inverse":
        if req.query.get("status") == "PreLaunch" or INVERSE_BASE not in coins:
            return []
        row = _linear_instrument(f"{INVERSE_BASE}USD", coins[INVERSE_BASE], "InversePerpetual", quote="USD",
                                 settle=INVERSE_BASE)
        row["lotSizeFilter"].update({"minOrderQty": "1", "qtyStep": "1", "maxOrderQty": "1000000"})
        return [row]
    if category == "spot":
        return [{
            "symbol": f"{b}USDT", "baseCoin": b, "quoteCoin": "USDT", "innovation": "0", "status": "Trading",
            "marginTrading": "utaOnly",
            "lotSizeFilter": {"basePrecision": coins[b].amount_step, "quotePrecision": "0.00000001",
                              "minOrderQty": coins[b].amount_step, "maxOrderQty": "1000000",
                              "minOrderAmt": "1", "maxOrderAmt": "2000000"},
            "priceFilter": {"tickSize": coins[b].price_tick},
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
        } for b in SPOT_BASES if b in coins]
    if category == "option":
        if req.query.get("baseCoin", "BTC") != "BTC" or "BTC" not in coins:
            return []
        return [{
            "symbol": OPTION_ID, "optionsType": "Call", "status": "Trading", "baseCoin": "BTC", "quoteCoin": "USD",
            "settleCoin": "USDC", "launchTime": LAUNCH_TIME, "deliveryTime": str(EXPIRY_MS),
            "deliveryFeeRate": "0.00015",
            "priceFilter": {"minPrice": "5", "maxPrice": "10000000", "tickSize": "5"},
            "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": "0.01", "qtyStep": "0.01"},
        }]
    return _bad_category(category)


def instruments_info(req):
    rows = _instruments(req)
    if isinstance(rows, Reply):
        return rows
    category = req.query["category"]
    if "symbol" in req.query:
        rows = [r for r in rows if r["symbol"] == req.query["symbol"]]
    # Pagination: `limit` rows per page (default 500, at most 1000); the cursor is the offset of the next page.
    try:
        limit = min(int(req.query.get("limit", 500)), 1000)
        start = int(req.query.get("cursor") or 0)
    except ValueError:
        return Reply(200, _err(10001, "params error: limit or cursor"))
    page = rows[start:start + limit]
    cursor = str(start + limit) if start + limit < len(rows) else ""
    result = {"category": category, "list": page}
    if category != "spot":
        result["nextPageCursor"] = cursor
    return _ok(result)


# -- tickers ----------------------------------------------------------------------------------------------
def _contract_ticker(symbol, q, funding=True, delivery="0"):
    open_interest = q.open_interest
    return {
        "symbol": symbol,
        "lastPrice": _s(q.last), "indexPrice": _s(q.index_price), "markPrice": _s(q.mark_price),
        "prevPrice24h": _s(q.open), "price24hPcnt": _s(((q.last or q.open) / q.open - 1).quantize(Decimal("0.000001"))),
        "highPrice24h": _s(q.high), "lowPrice24h": _s(q.low), "prevPrice1h": _s(q.open),
        "openInterest": _s(open_interest),
        "openInterestValue": "" if open_interest is None else _s((open_interest * q.open).quantize(Decimal("0.01"))),
        "turnover24h": _s(q.quote_volume_24h), "volume24h": _s(q.volume_24h),
        "fundingRate": _s(q.funding_rate) if funding else "",
        "nextFundingTime": ("" if q.next_funding_time is None else str(q.next_funding_time)) if funding else "0",
        "fundingIntervalHour": str(q.funding_interval_hours) if funding else "",
        "fundingCap": "0.02" if funding else "",
        "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": delivery,
        "ask1Size": "" if q.ask is None else _s(q.ask_size), "bid1Price": _s(q.bid), "ask1Price": _s(q.ask),
        "bid1Size": "" if q.bid is None else _s(q.bid_size),
        "basis": "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
    }


def _spot_ticker(symbol, q):
    return {
        "symbol": symbol, "bid1Price": _s(q.bid), "bid1Size": "" if q.bid is None else _s(q.bid_size),
        "ask1Price": _s(q.ask), "ask1Size": "" if q.ask is None else _s(q.ask_size), "lastPrice": _s(q.last),
        "prevPrice24h": _s(q.open), "price24hPcnt": "0", "highPrice24h": _s(q.high), "lowPrice24h": _s(q.low),
        "turnover24h": _s(q.quote_volume_24h), "volume24h": _s(q.volume_24h), "usdIndexPrice": _s(q.index_price),
    }


def _ticker_rows(req, category) -> list[tuple[str, callable]] | None:
    """[(exchange symbol, render() -> row)] for a category, or None for an unknown category."""
    coins = {c.base: c for c in req.listed()}
    if category == "linear":
        rows = [(f"{b}USDT", lambda b=b: _contract_ticker(f"{b}USDT", req.quote(b))) for b in coins]
        if "BTC" in coins:
            rows.append((USDC_PERP_ID, lambda: _contract_ticker(USDC_PERP_ID, req.quote("BTC"))))
            rows.append((FUTURE_ID, lambda: _contract_ticker(FUTURE_ID, req.quote("BTC"), funding=False,
                                                             delivery=str(EXPIRY_MS))))
        return rows
    if category == "inverse":
        sym = f"{INVERSE_BASE}USD"
        return [(sym, lambda: _contract_ticker(sym, req.quote(INVERSE_BASE)))] if INVERSE_BASE in coins else []
    if category == "spot":
        return [(f"{b}USDT", lambda b=b: _spot_ticker(f"{b}USDT", req.quote(b))) for b in SPOT_BASES if b in coins]
    if category == "option":
        return []
    return None


def tickers(req):
    category = req.query.get("category")
    rows = _ticker_rows(req, category)
    if rows is None:
        return _bad_category(category)
    symbol = req.query.get("symbol")
    if symbol is not None:
        rows = [r for r in rows if r[0] == symbol]
        if not rows:
            # Recorded in ccxt's bybit.json: {"retCode":10001,"retMsg":"Not supported symbols",...} (HTTP 200)
            return Reply(200, _err(10001, "Not supported symbols"))
    listed = req.listed()
    ts = req.quote(listed[0].base).timestamp if listed else _now_ms()
    return _ok({"category": category, "list": [render() for _, render in rows]}, ts)


# -- order book -------------------------------------------------------------------------------------------
def _book_base(req, category, symbol) -> str | None:
    coins = {c.base for c in req.listed()}
    if category == "linear":
        if symbol.endswith("USDT") and symbol[:-4] in coins:
            return symbol[:-4]
        if symbol in (USDC_PERP_ID, FUTURE_ID) and "BTC" in coins:
            return "BTC"
    elif category == "inverse":
        if symbol == f"{INVERSE_BASE}USD" and INVERSE_BASE in coins:
            return INVERSE_BASE
    elif category == "spot":
        if symbol.endswith("USDT") and symbol[:-4] in SPOT_BASES and symbol[:-4] in coins:
            return symbol[:-4]
    return None


def orderbook(req):
    category = req.query.get("category")
    if category not in MAX_DEPTH:
        return _bad_category(category)
    symbol = req.query.get("symbol")
    if not symbol:
        return Reply(200, _err(10001, "params error: symbol is required"))
    try:
        limit = int(req.query.get("limit", DEFAULT_DEPTH[category]))
    except ValueError:
        return Reply(200, _err(10001, "params error: limit must be an integer"))
    if not 1 <= limit <= MAX_DEPTH[category]:
        return Reply(200, _err(10001, f"params error: limit must be in [1, {MAX_DEPTH[category]}]"))
    base = _book_base(req, category, symbol)
    if base is None:
        return Reply(200, _err(10001, "Not supported symbols"))
    q = req.quote(base)
    book = q.book
    return _ok({"s": symbol, "b": book.levels("bids", limit, "base"), "a": book.levels("asks", limit, "base"),
                "ts": q.timestamp, "u": q.tick + 1, "seq": q.tick * 1000 + 1, "cts": q.timestamp - 5}, q.timestamp)


# -- settled funding --------------------------------------------------------------------------------------
HISTORY_LIMIT_MAX = 200


def _query_int(req, name: str, default: int | None) -> int | None:
    try:
        return default if req.query.get(name) is None else int(req.query[name])
    except ValueError:
        raise Rejected(Reply(200, _err(10001, f"params error: {name} must be an integer")))


def funding_history(req):
    """Bybit's settled funding: newest first, `limit` of those in [startTime, endTime] (endTime: now). A settlement
    after the market's now has not happened yet."""
    category = req.query.get("category")
    if category not in ("linear", "inverse"):
        return _bad_category(category)
    symbol = req.query.get("symbol") or ""
    # The USDT perpetuals and the USDC one (BTCPERP); the dated future has no funding.
    base = _book_base(req, category, symbol) if category == "linear" and symbol != FUTURE_ID else None
    if base is None:
        return Reply(200, _err(10001, "Not supported symbols"))
    limit = _query_int(req, "limit", HISTORY_LIMIT_MAX)
    start, end = _query_int(req, "startTime", None), _query_int(req, "endTime", None)
    if not 1 <= limit <= HISTORY_LIMIT_MAX:
        return Reply(200, _err(10001, f"params error: limit must be in [1, {HISTORY_LIMIT_MAX}]"))
    if start is not None and end is None:
        return Reply(200, _err(10001, "params error: endTime is required when startTime is given"))
    settled = req.market.settlements(req.exchange, base, start or 0, end)
    rows = [{"symbol": req.query["symbol"], "fundingRate": _s(s.rate.normalize()),
             "fundingRateTimestamp": str(s.funding_time)} for s in reversed(settled[-limit:])]
    return _ok({"category": category, "list": rows})


def server_time(req):
    now = time.time_ns()
    return _ok({"timeSecond": str(now // 10**9), "timeNano": str(now)}, now // 10**6)


ROUTES = {
    "/v5/market/instruments-info": instruments_info,
    "/v5/market/tickers": tickers,
    "/v5/market/orderbook": orderbook,
    "/v5/market/time": server_time,
    "/v5/market/funding/history": funding_history,
}
