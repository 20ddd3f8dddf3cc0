"""Bitget's classic (v2) public REST API, as ccxt 4.5.90's `bitget` class calls and parses it.

Shapes follow ccxt's parse_* functions, the response examples in its comments and Bitget's API docs:
every body is ``{"code": "00000", "msg": "success", "requestTime": <ms>, "data": ...}``; tickers, contracts
and funding carry every number as a string, ``merge-depth`` carries its levels as JSON numbers. A value the
exchange does not have (a `drop_fields` fault) is rendered as an empty string, which ccxt reads as None.

Served (paths below the /bitget prefix):
  /api/v2/public/time                    server time
  /api/v2/spot/public/coins              currencies (two; only when ccxt's fetchCurrencies is on)
  /api/v2/spot/public/symbols            spot markets (two, for ccxt's default load_markets)
  /api/v2/margin/currencies              margin pairs (one, idem)
  /api/v2/spot/market/tickers            spot tickers (idem)
  /api/v2/spot/market/orderbook          spot book (idem)
  /api/v2/mix/market/contracts           futures markets per productType: every listed coin as a USDT
                                         perpetual; one COIN-M and one USDC perpetual; demo types empty
  /api/v2/mix/market/tickers             all tickers of a productType: bid, ask, last, base volume,
                                         mark, index, funding rate (no next funding time)
  /api/v2/mix/market/ticker              one ticker (same row, in a one-element list)
  /api/v2/mix/market/merge-depth         the book: limit 1/5/15/50/max (default 100, max MAX_DEPTH)
  /api/v2/mix/market/current-fund-rate   funding rate, interval, next funding time; all symbols
                                         of a productType when `symbol` is absent
  /api/v2/mix/market/funding-time        next funding time and interval of one symbol
  /api/v2/mix/market/symbol-price        last, mark and index of one symbol
  /api/v2/mix/market/history-fund-rate   settled funding of one symbol, newest first, by page: pageSize
                                         (default 20, at most 100: more is served as 100), pageNo (from 1)

Rate limit: Bitget's public market endpoints allow 20 requests per second per IP, per endpoint.
"""
from __future__ import annotations

import time
from decimal import Decimal

from tests.simulator.server import Budget, Rejected, Reply

BUDGETS = [Budget(20, 1.0, per_endpoint=True)]
BAN_AFTER_429S = None

# merge-depth takes a fixed gear, not a free number. Bitget documents the gears 1/5/15/50/max, 100 when
# absent, and "max = the maximum gear of the trading pair" without naming it; 150 is the cap of its other
# REST books (spot orderbook), used here as that maximum.
MAX_DEPTH = 150
DEFAULT_DEPTH = 100
DEPTH_GEARS = {"1": 1, "5": 5, "15": 15, "50": 50, "max": MAX_DEPTH}

PRODUCT_TYPES = ("USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES", "SUSDT-FUTURES", "SCOIN-FUTURES", "SUSDC-FUTURES")
SPOT_BASES = ("BTC", "ETH")   # the spot markets listed for ccxt's default load_markets


def weight(req) -> int:
    return 1  # Bitget counts requests


def _ms() -> int:
    return int(time.time() * 1000)


def _envelope(data) -> dict:
    return {"code": "00000", "msg": "success", "requestTime": _ms(), "data": data}


def _error(status: int, code: str, msg: str) -> Reply:
    return Reply(status, {"code": code, "msg": msg, "requestTime": _ms(), "data": None})


def error_body(status: int, message: str) -> dict:
    """Bitget's error JSON. ccxt's handle_errors maps `code` through its exact table:
    429 -> DDoSProtection, 500 -> ExchangeNotAvailable, 40404 -> BadRequest, 40034 -> ExchangeError."""
    if status in (429, 418):
        # Bitget answers a rate-limit breach with 429 {"code":"429","msg":"Too Many Requests"}; it has no 418,
        # a ban looks the same.
        code, msg = "429", "Too Many Requests"
    elif status >= 500:
        code, msg = "500", "Internal Server Error"
    elif status == 404:
        code, msg = "40404", "Request URL NOT FOUND"
    elif message.startswith("unknown symbol"):
        code, msg = "40034", "Parameter does not exist"
    else:
        code, msg = "40017", "Parameter verification failed"
    return {"code": code, "msg": msg, "requestTime": _ms(), "data": None}


def _s(value) -> str:
    """A number as Bitget writes it: a plain decimal string; a missing value is ""."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _place_and_step(step: str) -> tuple[str, str]:
    """Bitget's (pricePlace, priceEndStep) for a tick: 0.001 -> ("3", "1"), 0.5 -> ("1", "5"), 10 -> ("0", "10")."""
    d = Decimal(step).normalize()
    place = max(0, -d.as_tuple().exponent)
    return str(place), format((d * (Decimal(10) ** place)).to_integral_value(), "f")


# -- request checks ----------------------------------------------------------------------------------------
def _product_type(req) -> str:
    pt = req.query.get("productType")
    if not pt:
        raise Rejected(_error(400, "40019", "Parameter productType cannot be empty"))
    pt = pt.upper()
    if pt not in PRODUCT_TYPES:
        raise Rejected(_error(400, "40020", "Parameter productType error"))
    return pt


def _usdt_coins(req) -> dict:
    return {f"{c.base}USDT": c for c in req.listed()}


def _one_coin(req, product_type: str):
    """The Coin named by `symbol` (USDT-M, and the one USDC perpetual, BTCPERP, which shares BTC's values);
    else Rejected with the error Bitget gives."""
    symbol = req.query.get("symbol")
    if not symbol:
        raise Rejected(_error(400, "40019", "Parameter symbol cannot be empty"))
    coin = None
    if product_type == "USDT-FUTURES":
        coin = _usdt_coins(req).get(symbol.upper())
    elif product_type == "USDC-FUTURES" and symbol.upper() == "BTCPERP":
        coin = _usdt_coins(req).get("BTCUSDT")
    if coin is None:
        raise Rejected(_error(400, "40034", f"Parameter {symbol} does not exist"))
    return coin


def _selected_coins(req, product_type: str):
    """Bulk endpoints: every listed coin, or the one `symbol` when given."""
    if req.query.get("symbol"):
        return [_one_coin(req, product_type)]
    return list(_usdt_coins(req).values()) if product_type == "USDT-FUTURES" else []


# -- markets -----------------------------------------------------------------------------------------------
def _contract(symbol, base, quote, margin_coin, price_tick, amount_step, hours, symbol_type="perpetual") -> dict:
    price_place, price_end_step = _place_and_step(price_tick)
    volume_place, _ = _place_and_step(amount_step)
    return {
        "symbol": symbol, "baseCoin": base, "quoteCoin": quote,
        "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05", "feeRateUpRatio": "0.005",
        "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "openCostUpRatio": "0.01",
        "supportMarginCoins": [margin_coin], "minTradeNum": amount_step, "priceEndStep": price_end_step,
        "volumePlace": volume_place, "pricePlace": price_place, "sizeMultiplier": amount_step,
        "symbolType": symbol_type, "minTradeUSDT": "5", "maxSymbolOrderNum": "200", "maxProductOrderNum": "400",
        "maxPositionNum": "150", "symbolStatus": "normal", "offTime": "-1", "limitOpenTime": "-1",
        "deliveryTime": "", "deliveryStartTime": "", "deliveryPeriod": "", "launchTime": "",
        "fundInterval": str(hours), "minLever": "1", "maxLever": "125", "posLimit": "0.05", "maintainTime": "",
    }


def contracts(req):
    pt = _product_type(req)
    if pt == "USDT-FUTURES":
        rows = [_contract(f"{c.base}USDT", c.base, "USDT", "USDT", c.price_tick, c.amount_step,
                          c.funding_hours.get("bitget", 8)) for c in req.listed()]
        if req.query.get("symbol"):
            rows = [r for r in rows if r["symbol"] == req.query["symbol"].upper()]
            if not rows:
                return _error(400, "40034", f"Parameter {req.query['symbol']} does not exist")
        return _envelope(rows)
    if pt == "COIN-FUTURES":   # one inverse perpetual, margined in BTC
        return _envelope([_contract("BTCUSD", "BTC", "USD", "BTC", "0.1", "0.001", 8)])
    if pt == "USDC-FUTURES":   # one USDC-margined perpetual
        return _envelope([_contract("BTCPERP", "BTC", "USDC", "USDC", "0.1", "0.0001", 8)])
    return _envelope([])       # demo product types


def spot_symbols(req):
    rows = []
    for c in req.listed():
        if c.base not in SPOT_BASES:
            continue
        price_place, _ = _place_and_step(c.price_tick)
        quantity_place, _ = _place_and_step(c.amount_step)
        rows.append({
            "symbol": f"{c.base}USDT", "baseCoin": c.base, "quoteCoin": "USDT", "minTradeAmount": "0",
            "maxTradeAmount": "10000000000", "takerFeeRate": "0.001", "makerFeeRate": "0.001",
            "pricePrecision": price_place, "quantityPrecision": quantity_place, "quotePrecision": "8",
            "status": "online", "minTradeUSDT": "1", "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05",
            "areaSymbol": "no", "orderQuantity": "200", "openTime": "1532454360000", "offTime": "",
        })
    return _envelope(rows)


def margin_currencies(req):
    return _envelope([{
        "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "maxCrossedLeverage": "3",
        "maxIsolatedLeverage": "10", "warningRiskRatio": "0.8", "liquidationRiskRatio": "1",
        "minTradeAmount": "0.0001", "maxTradeAmount": "10000", "takerFeeRate": "0.001", "makerFeeRate": "0.001",
        "pricePrecision": "2", "quantityPrecision": "6", "minTradeUSDT": "5", "isBorrowable": True,
        "userMinBorrow": "0.00000001", "status": "1", "isIsolatedBaseBorrowable": True,
        "isIsolatedQuoteBorrowable": True, "isCrossBorrowable": True,
    }])


def _chain(chain: str, fee: str) -> dict:
    return {"chain": chain, "needTag": "false", "withdrawable": "true", "rechargeable": "true", "withdrawFee": fee,
            "extraWithdrawFee": "0", "depositConfirm": "12", "withdrawConfirm": "64", "minDepositAmount": "0.0001",
            "minWithdrawAmount": "0.001", "browserUrl": "", "contractAddress": "", "withdrawStep": "0",
            "withdrawMinScale": "8", "congestion": "normal"}


def spot_coins(req):
    """Currencies (ccxt's fetch_currencies, on unless has['fetchCurrencies'] is switched off): a small list."""
    return _envelope([
        {"coinId": "1", "coin": "BTC", "transfer": "true", "chains": [_chain("BTC", "0.0002")]},
        {"coinId": "2", "coin": "USDT", "transfer": "true", "chains": [_chain("TRC20", "1")]},
    ])


def server_time(req):
    return _envelope({"serverTime": str(_ms())})


# -- tickers -----------------------------------------------------------------------------------------------
def _change(q) -> Decimal | None:
    if q.last is None or not q.open:
        return None
    return ((q.last - q.open) / q.open).quantize(Decimal("0.00001"))


def _mix_ticker(q) -> dict:
    change = _s(_change(q))
    return {
        "symbol": f"{q.base}USDT", "lastPr": _s(q.last), "askPr": _s(q.ask), "bidPr": _s(q.bid),
        "bidSz": _s(q.bid_size), "askSz": _s(q.ask_size), "high24h": _s(q.high), "low24h": _s(q.low),
        "ts": str(q.timestamp), "change24h": change, "baseVolume": _s(q.volume_24h),
        "quoteVolume": _s(q.quote_volume_24h), "usdtVolume": _s(q.quote_volume_24h), "openUtc": _s(q.open),
        "changeUtc24h": change, "indexPrice": _s(q.index_price), "fundingRate": _s(q.funding_rate),
        "holdingAmount": _s(q.open_interest), "deliveryStartTime": None,
        "deliveryTime": None, "deliveryStatus": "", "open24h": _s(q.open), "markPrice": _s(q.mark_price),
    }


def mix_tickers(req):
    pt = _product_type(req)
    coins = _selected_coins(req, pt)
    return _envelope([_mix_ticker(req.quote(c.base)) for c in coins])


def mix_ticker(req):
    pt = _product_type(req)
    coin = _one_coin(req, pt)
    return _envelope([_mix_ticker(req.quote(coin.base))])


def spot_tickers(req):
    coins = [c for c in req.listed() if c.base in SPOT_BASES]
    symbol = req.query.get("symbol")
    if symbol:
        coins = [c for c in coins if f"{c.base}USDT" == symbol.upper()]
        if not coins:
            return _error(400, "40034", f"Parameter {symbol} does not exist")
    rows = []
    for c in coins:
        q = req.quote(c.base)
        rows.append({
            "open": _s(q.open), "symbol": f"{c.base}USDT", "high24h": _s(q.high), "low24h": _s(q.low),
            "lastPr": _s(q.last), "quoteVolume": _s(q.quote_volume_24h), "baseVolume": _s(q.volume_24h),
            "usdtVolume": _s(q.quote_volume_24h), "ts": str(q.timestamp), "bidPr": _s(q.bid), "askPr": _s(q.ask),
            "bidSz": _s(q.bid_size), "askSz": _s(q.ask_size), "openUtc": _s(q.open),
            "changeUtc24h": _s(_change(q)), "change24h": _s(_change(q)),
        })
    return _envelope(rows)


# -- books -------------------------------------------------------------------------------------------------
def _numeric_levels(book, side: str, depth: int) -> str:
    return "[" + ",".join(f"[{p},{a}]" for p, a in book.levels(side, depth)) + "]"


def merge_depth(req):
    pt = _product_type(req)
    coin = _one_coin(req, pt)
    limit = req.query.get("limit")
    if limit is None:
        depth = DEFAULT_DEPTH
    elif limit.lower() in DEPTH_GEARS:
        depth = DEPTH_GEARS[limit.lower()]
    else:
        return _error(400, "40017", "Parameter verification failed")
    q = req.quote(coin.base)
    # Rendered by hand: the levels are JSON numbers, written exactly as the Decimal prices and sizes.
    body = ('{"code":"00000","msg":"success","requestTime":%d,"data":{"asks":%s,"bids":%s,"ts":"%d",'
            '"scale":"%s","precision":"scale0","isMaxPrecision":"NO"}}') % (
        _ms(), _numeric_levels(q.book, "asks", depth), _numeric_levels(q.book, "bids", depth), q.timestamp,
        _s(q.price_tick))
    return Reply(200, body.encode())


def spot_orderbook(req):
    symbol = req.query.get("symbol", "")
    coins = {f"{c.base}USDT": c for c in req.listed() if c.base in SPOT_BASES}
    if symbol.upper() not in coins:
        return _error(400, "40034", f"Parameter {symbol} does not exist")
    try:
        depth = min(int(req.query.get("limit", 150)), 150)
    except ValueError:
        return _error(400, "40017", "Parameter verification failed")
    q = req.quote(coins[symbol.upper()].base)
    return _envelope({"asks": q.book.levels("asks", depth), "bids": q.book.levels("bids", depth),
                      "ts": str(q.timestamp)})


# -- funding -----------------------------------------------------------------------------------------------
def current_fund_rate(req):
    pt = _product_type(req)
    coins = _selected_coins(req, pt)
    rows = []
    for c in coins:
        q = req.quote(c.base)
        rows.append({"symbol": f"{c.base}USDT", "fundingRate": _s(q.funding_rate),
                     "fundingRateInterval": str(q.funding_interval_hours), "nextUpdate": _s(q.next_funding_time),
                     "minFundingRate": "-0.003", "maxFundingRate": "0.003"})
    return _envelope(rows)


def funding_time(req):
    pt = _product_type(req)
    coin = _one_coin(req, pt)
    q = req.quote(coin.base)
    return _envelope([{"symbol": f"{coin.base}USDT", "nextFundingTime": _s(q.next_funding_time),
                       "ratePeriod": str(q.funding_interval_hours)}])


def symbol_price(req):
    pt = _product_type(req)
    coin = _one_coin(req, pt)
    q = req.quote(coin.base)
    return _envelope([{"symbol": f"{coin.base}USDT", "price": _s(q.last), "indexPrice": _s(q.index_price),
                       "markPrice": _s(q.mark_price), "ts": str(q.timestamp)}])


# -- settled funding ---------------------------------------------------------------------------------------
HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 20, 100


def history_fund_rate(req):
    """Bitget's settled funding: page `pageNo` of `pageSize` settlements, newest first, each field a string. No
    time bounds (ccxt filters by `since` after the answer). A settlement after the market's now has not
    happened yet."""
    coin = _one_coin(req, _product_type(req))
    try:
        size = min(int(req.query.get("pageSize", HISTORY_PAGE_DEFAULT)), HISTORY_PAGE_MAX)
        number = int(req.query.get("pageNo", 1))
    except ValueError:
        return _error(400, "40017", "Parameter verification failed")
    if size < 1 or number < 1:
        return _error(400, "40017", "Parameter verification failed")
    newest_first = req.market.settlements(req.exchange, coin.base)[::-1]
    page = newest_first[(number - 1) * size: number * size]
    return _envelope([{"symbol": req.query["symbol"].upper(), "fundingRate": _s(s.rate.normalize()),
                       "fundingTime": str(s.funding_time)} for s in page])


ROUTES = {
    "/api/v2/public/time": server_time,
    "/api/v2/spot/public/coins": spot_coins,
    "/api/v2/spot/public/symbols": spot_symbols,
    "/api/v2/margin/currencies": margin_currencies,
    "/api/v2/spot/market/tickers": spot_tickers,
    "/api/v2/spot/market/orderbook": spot_orderbook,
    "/api/v2/mix/market/contracts": contracts,
    "/api/v2/mix/market/tickers": mix_tickers,
    "/api/v2/mix/market/ticker": mix_ticker,
    "/api/v2/mix/market/merge-depth": merge_depth,
    "/api/v2/mix/market/current-fund-rate": current_fund_rate,
    "/api/v2/mix/market/funding-time": funding_time,
    "/api/v2/mix/market/symbol-price": symbol_price,
    "/api/v2/mix/market/history-fund-rate": history_fund_rate,
}
