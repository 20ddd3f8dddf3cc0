"""Binance USDⓈ-M futures (ccxt ``binanceusdm``) as the simulator speaks it.

Shapes follow ccxt 4.5.90's binance.py (parse_market, parse_ticker, parse_funding_rate, fetch_order_book and
the response examples in its comments) and Binance's futures REST documentation:

  /fapi/v1/exchangeInfo        load_markets (linear); one perpetual per listed coin, and a quarterly
                               (BTCUSDT_YYMMDD, CURRENT_QUARTER) for the bases Market.dated names
  /fapi/v1/ticker/24hr         fetch_ticker(s): last, volume (base units), no bid/ask       weight 1 / 40 bulk
  /fapi/v1/ticker/bookTicker   fetch_bids_asks: bid, ask                                     weight 2 / 5 bulk
  /fapi/v1/premiumIndex        fetch_funding_rate(s), fetch_mark_price(s): mark, index,
                               lastFundingRate, nextFundingTime                              weight 1 / 10 bulk
  /fapi/v1/fundingInfo         fetch_funding_intervals: only symbols whose interval was
                               adjusted away from 8 h (absent = 8 h), as on the real API    500 / 5 min
  /fapi/v1/fundingRate         fetch_funding_rate_history: settled funding, oldest first, from
                               startTime (inclusive) to endTime (inclusive); limit default
                               100, max 1000 (more: -1130)                                  500 / 5 min
  /fapi/v1/depth               fetch_order_book; limit in 5,10,20,50,100,500,1000 (default 500),
                               weight 2 (<=50), 5 (100), 10 (500), 20 (1000)
  /fapi/v2/ticker/price, /fapi/v1/ticker/price, /fapi/v1/time, /fapi/v1/ping
  /api/v3/exchangeInfo, /dapi/v1/exchangeInfo, /eapi/v1/exchangeInfo: the other market types ccxt's
                               binance classes load by default (one small market each / none)

Every /fapi/ answer carries X-MBX-USED-WEIGHT-1M: the weight the client's IP used in the current clock minute
(Binance's REQUEST_WEIGHT minute), another program's spend (Simulator.spend_weight) included. The budget itself
stays enforced as a sliding 60 s window, stricter than Binance's fixed minute: see USED_WEIGHT below.

Missing values: Binance shows a contract without funding as ``"lastFundingRate": ""`` and
``"nextFundingTime": 0`` (delivery contracts); mark/index likewise render as "". Ticker fields that a
``drop_fields`` fault removes are left out of the row. Unknown symbol: HTTP 400 ``{"code":-1121,...}``.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
import zlib
from decimal import Decimal

from tests.simulator.market import Book
from tests.simulator.server import Budget, Rejected, Reply, UsedWeight

# 2400 request weight per minute per IP (fapi). The spot/dapi/eapi endpoints have their own budgets on the
# real exchange; the core keeps one pool per exchange, so they weigh 0 here (see weight()).
# The funding history and fundingInfo share a limit of their own: 500 requests per 5 minutes per IP. The core
# charges one weight to every budget a path falls under, so each of them also weighs 1 in the 2400 (Binance:
# nothing), as ccxt's cost of 1 charges the worker's own throttle: stricter than Binance by at most 100 a minute.
FUNDING_HISTORY_PATHS = ("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo")
BUDGETS = [Budget(2400, 60.0), Budget(500, 300.0, paths=FUNDING_HISTORY_PATHS)]
# Every fapi answer reports the weight the IP used in the current clock minute (Binance's futures docs write
# the header X-MBX-USED-WEIGHT-1M; over HTTP/2 it arrives as x-mbx-used-weight-1m, header names being
# case-insensitive). One header only: two spellings would reach a client (requests, aiohttp) as one
# header whose value is "n, n". Binance enforces REQUEST_WEIGHT over that fixed minute; the simulator keeps
# enforcing its sliding 60 s window, which is stricter (no sliding window over 2400 means no clock minute
# over 2400 either), so a client that stays inside it is never wrongly refused, and reports the fixed minute
# as Binance does: the header can read 0 right after the minute turns while the sliding window still holds
# the weight of the seconds before.
USED_WEIGHT = UsedWeight("X-MBX-USED-WEIGHT-1M", 60.0, prefix="/fapi/")
# Binance answers 429 first and bans the IP (418, from 2 minutes up to 3 days) when a client keeps going.
BAN_AFTER_429S = 3

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
PERPETUAL_DELIVERY = 4133404800000  # Binance's deliveryDate of every perpetual (2100-12-25)
_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]
_INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}


# -- helpers -----------------------------------------------------------------------------------------------
def _decimals(step: str) -> int:
    return max(0, -Decimal(step).as_tuple().exponent)


def _s(value) -> str:
    """A Decimal as Binance writes it: plain notation, never exponent."""
    return format(value, "f")


def _fixed_or_none(value) -> str | None:
    return None if value is None else _s(value)


def _fixed(value, places: int) -> str:
    return "" if value is None else f"{value:.{places}f}"


def _symbols(req) -> dict:
    """{exchange id: Coin} of the listed USDT perpetuals."""
    return {f"{c.base}USDT": c for c in req.listed()}


# -- dated futures (quarterlies), listed only where Market.dated names the base ---------------------------
def quarterly_expiry(now: float | None = None) -> int:
    """The delivery time (ms) of the simulated quarterly: 08:00 UTC on the 27th, three months ahead."""
    today = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.timezone.utc)
    month = today.month + 3
    year, month = today.year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime.datetime(year, month, 27, 8, tzinfo=datetime.timezone.utc).timestamp() * 1000)


QUARTERLY_EXPIRY = quarterly_expiry()
_YYMMDD = datetime.datetime.fromtimestamp(QUARTERLY_EXPIRY / 1000, datetime.timezone.utc).strftime("%y%m%d")


def quarterly_symbol(base: str) -> str:
    """ccxt's unified symbol of a simulated quarterly, e.g. BTC/USDT:USDT-270327."""
    return f"{base}/USDT:USDT-{_YYMMDD}"


def _quarterlies(req) -> dict:
    """{exchange id: base} of the listed quarterlies (BTCUSDT_270327)."""
    listed = {c.base for c in req.listed()}
    return {f"{base}USDT_{_YYMMDD}": base for base in req.market.dated.get(req.exchange, ()) if base in listed}


def quarterly_quote(q, book_depth: int):
    """A quarterly's quote from its perpetual's: 1 % above it (its own book), no funding. The truth of the
    quarterly is quarterly_quote(market.quote(...)).truth()."""
    premium = (q.bid / 100).quantize(q.price_tick)
    up = lambda price: None if price is None else price + premium  # noqa: E731
    book = Book(zlib.crc32(f"quarterly {q.base} {q.tick}".encode()), up(q.bid), up(q.ask), q.price_tick,
                q.book.lot, book_depth)
    return dataclasses.replace(q, symbol=quarterly_symbol(q.base), bid=up(q.bid), ask=up(q.ask), last=up(q.last),
                               open=up(q.open), high=up(q.high), low=up(q.low), mark_price=up(q.mark_price),
                               funding_rate=None, next_funding_time=None, funding_interval_hours=None, book=book)


def _quote_of(req, symbol: str):
    """The quote behind an exchange id, perpetual or quarterly; None for an unknown id."""
    coin = _symbols(req).get(symbol)
    if coin is not None:
        return req.quote(coin.base)
    base = _quarterlies(req).get(symbol)
    return None if base is None else quarterly_quote(req.quote(base), req.market.book_depth)


def _one_or_all(req, render):
    """The row of ?symbol=..., or the list of every listed symbol's row, or Binance's invalid-symbol error."""
    symbol = req.query.get("symbol")
    if symbol is not None:
        quote = _quote_of(req, symbol)
        if quote is None:
            return Reply(400, _INVALID_SYMBOL)
        return render(symbol, quote)
    rows = [render(sym, req.quote(coin.base)) for sym, coin in _symbols(req).items()]
    return rows + [render(sym, _quote_of(req, sym)) for sym in _quarterlies(req)]


def _bad_param(code: int, msg: str) -> Reply:
    return Reply(400, {"code": code, "msg": msg})


# -- markets -----------------------------------------------------------------------------------------------
def _filters(price_tick: str, step: str) -> list:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": price_tick, "maxPrice": "4529764", "tickSize": price_tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000000", "stepSize": step},
        {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "100000", "stepSize": step},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
        {"filterType": "MIN_NOTIONAL", "notional": "5"},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
         "multiplierDecimal": "4"},
    ]


def _perpetual(coin) -> dict:
    return {
        "symbol": f"{coin.base}USDT", "pair": f"{coin.base}USDT", "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": coin.base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": _decimals(coin.price_tick), "quantityPrecision": _decimals(coin.amount_step),
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000, "filters": _filters(coin.price_tick, coin.amount_step),
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"],
    }


def _quarterly(coin, symbol: str) -> dict:
    return {**_perpetual(coin), "symbol": symbol, "contractType": "CURRENT_QUARTER",
            "deliveryDate": QUARTERLY_EXPIRY, "onboardDate": QUARTERLY_EXPIRY - 180 * 86_400_000}


def exchange_info(req):
    coins = {c.base: c for c in req.listed()}
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "futuresType": "U_MARGINED",
            "rateLimits": _RATE_LIMITS, "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [_perpetual(c) for c in req.listed()]
            + [_quarterly(coins[base], symbol) for symbol, base in _quarterlies(req).items()]}


def spot_exchange_info(req):
    """ccxt's binance (not binanceusdm) loads spot by default: one market is enough."""
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
        "exchangeFilters": [], "symbols": [{
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True, "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00000", "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "5.00", "applyMinToMarket": True,
                 "maxNotional": "9000000.00", "applyMaxToMarket": False, "avgPriceMins": 5}],
            "permissions": [], "permissionSets": [["SPOT", "MARGIN"]]}]}


def inverse_exchange_info(req):
    """COIN-M (dapi): one inverse perpetual, contract size 100 USD."""
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
        "exchangeFilters": [], "symbols": [{
            "symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY, "onboardDate": 1596006000000, "contractStatus": "TRADING",
            "contractSize": 100, "marginAsset": "BTC", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": "BTC", "quoteAsset": "USD", "pricePrecision": 1,
            "quantityPrecision": 0, "baseAssetPrecision": 8, "quotePrecision": 8, "equalQtyPrecision": 4,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "1000", "maxPrice": "4520958", "tickSize": "0.1"},
                {"filterType": "LOT_SIZE", "stepSize": "1", "maxQty": "1000000", "minQty": "1"}],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}]}


def option_exchange_info(req):
    """European options (eapi): no option listed."""
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "optionContracts": [],
            "optionAssets": [{"id": 1, "name": "USDT"}], "optionSymbols": [],
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                            "limit": 2400}]}


# -- tickers -----------------------------------------------------------------------------------------------
def _ticker_24hr(symbol: str, q) -> dict:
    ref = q.last if q.last is not None else q.open
    change = ref - q.open
    row = {
        "symbol": symbol, "priceChange": _s(change),
        "priceChangePercent": f"{change / q.open * 100:.3f}", "weightedAvgPrice": _s(ref),
        "lastPrice": _s(q.last) if q.last is not None else None, "lastQty": _s(q.book.lot),
        "openPrice": _s(q.open), "highPrice": _s(q.high), "lowPrice": _s(q.low),
        "volume": _fixed_or_none(q.volume_24h), "quoteVolume": _fixed_or_none(q.quote_volume_24h),
        "openTime": q.timestamp - 86_400_000, "closeTime": q.timestamp,
        "firstId": 10_000_000 + q.tick * 100, "lastId": 10_000_000 + q.tick * 100 + 99, "count": 100,
    }
    if q.last is None:  # no last trade: nothing derived from it either (ccxt would rebuild it from open + change)
        for key in ("lastPrice", "lastQty", "priceChange", "priceChangePercent"):
            del row[key]
    if q.volume_24h is None:  # a row without a volume leaves the fields out
        del row["volume"], row["quoteVolume"]
    return row


def ticker_24hr(req):
    return _one_or_all(req, _ticker_24hr)


def _book_ticker(symbol: str, q) -> dict:
    row = {"symbol": symbol}
    if q.bid is not None:
        row["bidPrice"], row["bidQty"] = _s(q.bid), _s(q.bid_size)
    if q.ask is not None:
        row["askPrice"], row["askQty"] = _s(q.ask), _s(q.ask_size)
    row["time"] = q.timestamp
    return row


def book_ticker(req):
    return _one_or_all(req, _book_ticker)


def _price(symbol: str, q) -> dict:
    row = {"symbol": symbol, "time": q.timestamp}
    if q.last is not None:
        row["price"] = _s(q.last)
    return row


def ticker_price(req):
    return _one_or_all(req, _price)


# -- funding -----------------------------------------------------------------------------------------------
def _premium(symbol: str, q) -> dict:
    return {
        "symbol": symbol, "markPrice": _fixed(q.mark_price, 8), "indexPrice": _fixed(q.index_price, 8),
        "estimatedSettlePrice": _fixed(q.index_price, 8), "lastFundingRate": _fixed(q.funding_rate, 8),
        "interestRate": "0.00010000",
        # A contract without a next funding (delivery futures) shows 0 here on the real API.
        "nextFundingTime": q.next_funding_time if q.next_funding_time is not None else 0,
        "time": q.timestamp,
    }


def premium_index(req):
    return _one_or_all(req, _premium)


def funding_info(req):
    """Only symbols with an adjusted cap/floor or interval appear (Binance: "absent means 8 h")."""
    rows = []
    for symbol, coin in _symbols(req).items():
        q = req.quote(coin.base)
        if q.funding_interval_hours != 8:
            rows.append({"symbol": symbol, "adjustedFundingRateCap": "0.02000000",
                         "adjustedFundingRateFloor": "-0.02000000",
                         "fundingIntervalHours": q.funding_interval_hours, "disclaimer": False})
    return rows


# -- settled funding -------------------------------------------------------------------------------------------
HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 100, 1000


def _int_param(req, name: str, default: int | None) -> int | None:
    value = req.query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise Rejected(_bad_param(-1100, f"Illegal characters found in parameter '{name}'."))


def _history_rows(req, symbol: str, coin, start: int, end: int) -> list[dict]:
    mark = _fixed(Decimal(repr(coin.price)), 8)  # the mark at settlement: ccxt reads none, so the listing price
    return [{"symbol": symbol, "fundingTime": s.funding_time, "fundingRate": _fixed(s.rate, 8), "markPrice": mark}
            for s in req.market.settlements(req.exchange, coin.base, start, end)]


def funding_rate_history(req):
    """Settled funding, oldest first. Binance: with startTime, the `limit` oldest from it (up to endTime); without
    it, the newest `limit` up to endTime (or now). A settlement after the market's now has not happened.
    Without `symbol`, every symbol's, in time order. A fapi `limit` over 1000 is refused (-1130), not clamped."""
    limit = _int_param(req, "limit", HISTORY_LIMIT_DEFAULT)
    if not 1 <= limit <= HISTORY_LIMIT_MAX:
        return _bad_param(-1130, "Data sent for parameter 'limit' is not valid.")
    start, end = _int_param(req, "startTime", None), _int_param(req, "endTime", None)
    end = min(end if end is not None else req.market.now_ms(req.tick), req.market.now_ms(req.tick))
    symbol = req.query.get("symbol")
    symbols = _symbols(req)
    if symbol is not None and symbol not in symbols:
        return Reply(400, _INVALID_SYMBOL)
    chosen = {symbol: symbols[symbol]} if symbol is not None else symbols
    rows = sorted((row for sym, coin in chosen.items() for row in _history_rows(req, sym, coin, start or 0, end)),
                  key=lambda row: row["fundingTime"])
    return rows[:limit] if start is not None else rows[-limit:]


# -- open interest -----------------------------------------------------------------------------------------
def open_interest(req):
    """/fapi/v1/openInterest: one symbol's, in base units, with Binance's time of it (weight 1). A contract
    without a day's volume has none here (the truth's null): the field is left out."""
    symbol = req.query.get("symbol")
    if not symbol:
        return _bad_param(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    coin = _symbols(req).get(symbol)
    if coin is None:
        return Reply(400, _INVALID_SYMBOL)
    q = req.quote(coin.base)
    row = {"symbol": symbol, "time": q.timestamp}
    return row if q.open_interest is None else {"openInterest": str(q.open_interest), **row}


# -- order book --------------------------------------------------------------------------------------------
_book_cache: dict = {}


def depth(req):
    symbol = req.query.get("symbol")
    if not symbol:
        return _bad_param(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
    q = _quote_of(req, symbol)
    if q is None:
        return Reply(400, _INVALID_SYMBOL)
    try:
        limit = int(req.query.get("limit", 500))
    except ValueError:
        limit = -1
    if limit not in DEPTH_LIMITS:
        return _bad_param(-1130, "Data sent for parameter 'limit' is not valid.")
    # Rendered levels per (quote object, limit); holding the quote keeps its id from being reused.
    cached = _book_cache.get((id(q), limit))
    if cached is not None and cached[0] is q:
        sides = cached[1]
    else:
        if len(_book_cache) > 2000:
            _book_cache.clear()
        sides = (q.book.levels("bids", limit), q.book.levels("asks", limit))
        _book_cache[(id(q), limit)] = (q, sides)
    return {"lastUpdateId": 1_000_000_000 + q.tick * 1000, "E": q.timestamp, "T": q.timestamp,
            "bids": sides[0], "asks": sides[1]}


# -- misc --------------------------------------------------------------------------------------------------
def server_time(req):
    return {"serverTime": int(time.time() * 1000)}


def ping(req):
    return {}


ROUTES = {
    "/fapi/v1/exchangeInfo": exchange_info,
    "/fapi/v1/ticker/24hr": ticker_24hr,
    "/fapi/v1/ticker/bookTicker": book_ticker,
    "/fapi/v1/ticker/price": ticker_price,
    "/fapi/v2/ticker/price": ticker_price,
    "/fapi/v1/premiumIndex": premium_index,
    "/fapi/v1/fundingInfo": funding_info,
    "/fapi/v1/fundingRate": funding_rate_history,
    "/fapi/v1/openInterest": open_interest,
    "/fapi/v1/depth": depth,
    "/fapi/v1/time": server_time,
    "/fapi/v1/ping": ping,
    "/api/v3/exchangeInfo": spot_exchange_info,
    "/dapi/v1/exchangeInfo": inverse_exchange_info,
    "/eapi/v1/exchangeInfo": option_exchange_info,
}


def weight(req) -> int:
    """Binance's documented request weight of the USDⓈ-M endpoints (what ccxt's describe() also charges,
    except premiumIndex without a symbol: 10 on Binance, 1 in ccxt)."""
    path, has_symbol = req.path, "symbol" in req.query
    if not path.startswith("/fapi/"):
        return 0  # spot / COIN-M / options count against their own budgets on the real exchange
    if path == "/fapi/v1/depth":
        try:
            limit = int(req.query.get("limit", 500))
        except ValueError:
            limit = 500
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
    if path == "/fapi/v1/ticker/24hr":
        return 1 if has_symbol else 40
    if path == "/fapi/v1/ticker/bookTicker":
        return 2 if has_symbol else 5
    if path in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price"):
        return 1 if has_symbol else 2
    if path == "/fapi/v1/premiumIndex":
        return 1 if has_symbol else 10
    return 1  # openInterest; fundingRate and fundingInfo: also one of their own 500 / 5 min (BUDGETS)


def error_body(status: int, message: str):
    """Binance's error JSON ({"code": -NNNN, "msg": ...}) for the statuses the core produces."""
    if status == 429:
        return {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per "
                                      "minute. Please use the websocket for live updates to avoid polling the API."
                                      f" ({message})"}
    if status == 418:
        banned = message.rsplit(" ", 1)[-1]
        until = banned if banned.isdigit() else str(int(time.time() * 1000) + 120_000)
        return {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}. "
                                      "Please use the websocket for live updates to avoid bans."}
    if status == 400:  # the core's unknown-symbol path
        return dict(_INVALID_SYMBOL)
    if status == 404:  # Binance's gateway answers unknown paths with an HTML page
        return f"<html><body><h2>404 Not found</h2><p>{message}</p></body></html>".encode()
    if status >= 500:
        return {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
    return {"code": -1000, "msg": f"An unknown error occurred while processing the request. ({message})"}
