"""HTX (ex-Huobi) REST dialect: USDT-margined ("linear") swaps on api.hbdm.com, plus the small currencies,
spot and coin-margined answers ccxt's default load_markets asks for (/v2/reference/currencies,
/v1/common/symbols, swap and futures contract info).

Wire format as in ccxt 4.5.90's htx.py (parse_ticker, fetch_order_book, parse_funding_rate and the response
examples in its comments) and HTX's USDT-margined swap docs:

* Every answer is HTTP 200; errors are ``{"status": "error", ...}`` bodies. Market endpoints
  (``/linear-swap-ex/market/*``) use ``err-code``/``err-msg``; ``/linear-swap-api/v1/*`` uses numeric
  ``err_code``/``err_msg`` (1013 = "This contract symbol doesn't exist.", which ccxt maps to BadSymbol);
  ``/v5/*`` answers ``{"code": 200, "message": "Success", "data": ..., "ts": ...}``.
* Prices in the order book and in ticker ``bid``/``ask`` arrays are JSON numbers; OHLC and volumes in tickers are
  strings. Book and ticker sizes are in contracts (``vol`` too); ``amount`` is the 24 h volume in base units.
* ``/linear-swap-ex/market/depth`` has no depth parameter: ``type=step0`` gives 150 levels unmerged,
  ``type=step6`` gives 20 levels unmerged (merged steps are not simulated).
* Open interest: ``/linear-swap-api/v1/swap_open_interest`` lists every swap in one answer, JSON numbers,
  ``volume`` in contracts and ``amount`` in base units (ccxt has no bulk method for it on linear swaps).
* Funding: ``funding_time`` is the *upcoming* settlement (what other exchanges call the next funding time),
  ``next_funding_time`` the one after it, so ccxt derives the interval from their difference.
* A missing value (drop_fields fault) is rendered as JSON null (bid/ask arrays become null, strings null).
* Settled funding: ``/v5/market/funding_rate_history?contract_code=&start_time=&end_time=&limit=`` (what ccxt
  4.5.90's fetch_funding_rate_history asks for a linear swap: ``start_time`` = since, ``limit`` = min(limit,
  100)): the newest ``limit`` settlements with start_time <= funding_time <= end_time (both inclusive; end:
  now), newest first, every value a string (``{"id", "contract_code", "funding_rate", "funding_time"}``).
  ``limit`` 1..100, 50 when absent (SPEC 14: "returns the newest 50"); HTX refuses more than 100 with code
  1067 "The limit field is invalid" (measured by users of the v5 API; ccxt maps 1067 to InvalidOrder).
  ``from`` and ``direct`` (paging by record id) are not simulated: the answer pages by time only.

Budget: HTX publishes 800 requests/s per IP for market data on the USDT-margined API (the separate
240 requests / 3 s group for funding/index is not modelled: the core has no per-path-group budgets); the
history endpoint counts in it, one request each.
"""
from __future__ import annotations

import time
from decimal import Decimal

from tests.simulator.server import Budget, Rejected, Reply

BUDGETS = [Budget(800, 1.0)]
BAN_AFTER_429S = None

BOOK_DEPTH = {"step0": 150, "step6": 20}
MERGED_STEPS = {f"step{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15)}


def weight(req) -> int:
    return 1


def _ms() -> int:
    return int(time.time() * 1000)


def error_body(status: int, message: str) -> object:
    """HTX error JSON. 429: the body HTX sends when its request limit trips (ccxt maps 'request limit' to
    RateLimitExceeded); 5xx: its gateway error (ExchangeNotAvailable)."""
    if status in (429, 418):
        return {"status": "error", "err-code": "invalid-parameter", "err-msg": "request limit", "ts": _ms()}
    if status >= 500:
        return {"status": "error", "err-code": "gateway-internal-error",
                "err-msg": "Failed to load data. Try again later.", "ts": _ms()}
    return {"status": "error", "err-code": "bad-request", "err-msg": message, "ts": _ms()}


# -- helpers ---------------------------------------------------------------------------------------

def _num(d) -> str:
    """A Decimal as a JSON number literal."""
    return str(d)


def _s(d):
    return None if d is None else str(d)


def _code(coin) -> str:
    return f"{coin.base}-USDT"


def _coins_by_code(req) -> dict:
    return {_code(c): c for c in req.listed()}


def _lookup(req, code: str | None):
    """The coin for a contract_code (case-insensitive), or None."""
    if code is None:
        return None
    return _coins_by_code(req).get(code.upper())


def _selected(req, error) -> list:
    """Every listed coin, or the one named by contract_code; an unknown code answers with error()."""
    code = req.query.get("contract_code")
    if code is None:
        return req.listed()
    coin = _lookup(req, code)
    if coin is None:
        raise Rejected(Reply(200, error()))
    return [coin]


def _market_error(msg: str = "invalid contract code") -> dict:
    # Market-data endpoints answer HTTP 200 with a hyphenated error body.
    return {"status": "error", "err-code": "invalid-parameter", "err-msg": msg, "ts": _ms()}


def _api_error(code: int = 1013, msg: str = "This contract symbol doesn't exist.") -> dict:
    return {"status": "error", "err_code": code, "err_msg": msg, "ts": _ms()}


def _period_ms(q) -> int:
    return q.funding_interval_hours * 3600 * 1000


# -- markets ---------------------------------------------------------------------------------------

def linear_contract_info(req):
    business_type = req.query.get("business_type", "swap")
    if business_type not in ("swap", "futures", "all"):
        return _api_error(1067, "Illegal parameter business_type.")
    coins = _selected(req, _api_error)
    if business_type == "futures":  # no linear futures in the simulated market
        coins = []
    data = []
    for coin in coins:
        q = req.quote(coin.base)
        data.append({
            "symbol": coin.base,
            "contract_code": _code(coin),
            "contract_size": float(q.contract_size),
            "price_tick": float(q.price_tick),
            "delivery_date": "",
            "delivery_time": "",
            "create_date": "20201021",
            "contract_status": 1,
            "settlement_date": str(q.next_funding_time) if q.next_funding_time is not None else "",
            "support_margin_mode": "all",
            "business_type": "swap",
            "pair": _code(coin),
            "contract_type": "swap",
            "trade_partition": "USDT",
        })
    return {"status": "ok", "data": data, "ts": _ms()}


def spot_symbols(req):
    return {"status": "ok", "data": [
        {"base-currency": base, "quote-currency": "usdt", "price-precision": prec, "amount-precision": 6,
         "symbol-partition": "main", "symbol": f"{base}usdt", "state": "online", "value-precision": 8,
         "min-order-amt": 0.0001, "max-order-amt": 1000, "min-order-value": 5, "leverage-ratio": 5,
         "super-margin-leverage-ratio": 3, "api-trading": "enabled", "tags": ""}
        for base, prec in (("btc", 2), ("eth", 2))
    ]}


def currencies(req):
    """/v2/reference/currencies: fetch_currencies, part of a default load_markets (``fetchCurrencies`` on).
    USDT on two chains and the spot bases, in the shape of ccxt's htx.fetch_currencies example."""
    def chain(name, base_chain, protocol):
        return {"chain": name, "displayName": protocol or base_chain, "baseChain": base_chain,
                "baseChainProtocol": protocol, "isDynamic": True, "numOfConfirmations": "12",
                "numOfFastConfirmations": "12", "depositStatus": "allowed", "minDepositAmt": "1",
                "withdrawStatus": "allowed", "minWithdrawAmt": "2", "withdrawPrecision": "6",
                "maxWithdrawAmt": "1000000.000000000000000000", "withdrawQuotaPerDay": "1000000.000000000000000000",
                "withdrawQuotaPerYear": None, "withdrawQuotaTotal": None, "withdrawFeeType": "fixed",
                "transactFeeWithdraw": "1", "addrWithTag": False, "addrDepositTag": False}
    return {"code": 200, "data": [
        {"currency": "usdt", "assetType": "1", "instStatus": "normal",
         "chains": [chain("usdterc20", "ETH", "ERC20"), chain("trc20usdt", "TRX", "TRC20")]},
        {"currency": "btc", "assetType": "1", "instStatus": "normal", "chains": [chain("btc", "BTC", None)]},
        {"currency": "eth", "assetType": "1", "instStatus": "normal", "chains": [chain("eth", "ETH", None)]},
    ]}


def inverse_swap_contract_info(req):
    return {"status": "ok", "data": [
        {"symbol": "BTC", "contract_code": "BTC-USD", "contract_size": 100, "price_tick": 0.1,
         "delivery_time": "", "create_date": "20200325", "contract_status": 1, "settlement_date": "1781280000000"},
    ], "ts": _ms()}


def inverse_future_contract_info(req):
    # One quarterly BTC future; its delivery is a fixed Friday 08:00 UTC a few months ahead.
    now = time.time()
    day = 86400
    friday = int(now // day + 90) * day
    while time.gmtime(friday).tm_wday != 4:
        friday += day
    delivery = (friday + 8 * 3600) * 1000
    return {"status": "ok", "data": [
        {"symbol": "BTC", "contract_code": "BTC" + time.strftime("%y%m%d", time.gmtime(friday)),
         "contract_type": "quarter", "contract_size": 100, "price_tick": 0.01,
         "delivery_date": time.strftime("%Y%m%d", time.gmtime(friday)), "delivery_time": str(delivery),
         "create_date": "20240301", "contract_status": 1, "settlement_time": str(delivery)},
    ], "ts": _ms()}


# -- tickers ---------------------------------------------------------------------------------------

def _side(price, lots):
    return None if price is None else [float(price), int(lots)]


def _tick(q, ts: int) -> dict:
    lot = q.contract_size
    return {
        "id": ts // 1000,
        "ts": q.timestamp,
        "ask": _side(q.ask, q.ask_size / lot),
        "bid": _side(q.bid, q.bid_size / lot),
        "open": str(q.open),
        "close": _s(q.last),
        "low": str(q.low),
        "high": str(q.high),
        "amount": _s(q.volume_24h),                  # base units
        "count": int(q.volume_24h_contracts or 0) // 7 + 1,
        "vol": _s(q.volume_24h_contracts),           # contracts
        "trade_turnover": _s(q.quote_volume_24h),    # USDT
    }


def batch_merged(req):
    business_type = req.query.get("business_type")
    coins = _selected(req, _market_error)
    if business_type == "futures":
        coins = []
    ts = _ms()
    ticks = []
    for coin in coins:
        q = req.quote(coin.base)
        t = _tick(q, ts)
        t["contract_code"] = _code(coin)
        t["business_type"] = "swap"
        t["number_of"] = t["count"]
        ticks.append(t)
    return {"status": "ok", "ticks": ticks, "ts": ts}


def detail_merged(req):
    coin = _lookup(req, req.query.get("contract_code"))
    if coin is None:
        return _market_error()
    q = req.quote(coin.base)
    ts = _ms()
    return {"ch": f"market.{_code(coin)}.detail.merged", "status": "ok", "tick": _tick(q, ts), "ts": ts}


# -- order book ------------------------------------------------------------------------------------

def depth(req):
    coin = _lookup(req, req.query.get("contract_code"))
    if coin is None:
        return _market_error()
    step = req.query.get("type")
    if step not in BOOK_DEPTH:
        if step in MERGED_STEPS:
            return _market_error("merged depth is not simulated; use step0 (150 levels) or step6 (20 levels)")
        return _market_error("invalid type")
    n = BOOK_DEPTH[step]
    q = req.quote(coin.base)
    book = q.book
    bids = ",".join(f"[{p},{v}]" for p, v in book.bids[:n])
    asks = ",".join(f"[{p},{v}]" for p, v in book.asks[:n])
    ch = f"market.{_code(coin)}.depth.{step}"
    ts = _ms()
    body = (f'{{"ch":"{ch}","status":"ok","tick":{{"asks":[{asks}],"bids":[{bids}],"ch":"{ch}",'
            f'"id":{q.timestamp // 1000},"mrid":{q.tick + 100000},"ts":{q.timestamp},"version":{q.tick + 1}}},'
            f'"ts":{ts}}}')
    return Reply(200, body.encode())


# -- funding, index, mark --------------------------------------------------------------------------

def _funding_entry(q, coin, with_batch_fields: bool) -> dict:
    nft = q.next_funding_time
    entry = {
        "contract_code": _code(coin),
        "funding_rate": None if q.funding_rate is None else f"{q.funding_rate:.18f}",
        "funding_time": None if nft is None else str(nft),
        "next_funding_time": None if nft is None else str(nft + _period_ms(q)),
    }
    if with_batch_fields:
        entry.update({"estimated_rate": None, "symbol": coin.base, "fee_asset": "USDT", "trade_partition": "USDT"})
    else:
        entry.update({"min_funding_rate": "-0.003750000000000000", "max_funding_rate": "0.003750000000000000"})
    return entry


def v5_funding_rate(req):
    code = req.query.get("contract_code")
    if code is None:
        return {"code": 1066, "message": "contract_code cannot be empty.", "data": None, "ts": _ms()}
    coin = _lookup(req, code)
    if coin is None:
        return {"code": 1013, "message": "This contract symbol doesn't exist.", "data": None, "ts": _ms()}
    return {"code": 200, "message": "Success", "data": [_funding_entry(req.quote(coin.base), coin, False)],
            "ts": _ms()}


def batch_funding_rate(req):
    coins = _selected(req, _api_error)
    return {"status": "ok", "data": [_funding_entry(req.quote(c.base), c, True) for c in coins], "ts": _ms()}


def swap_index(req):
    coins = _selected(req, _api_error)
    data = []
    for c in coins:
        q = req.quote(c.base)
        data.append({"contract_code": _code(c), "index_price": None if q.index_price is None else float(q.index_price),
                     "index_ts": q.timestamp})
    return {"status": "ok", "data": data, "ts": _ms()}


CONTRACT_TYPES = ("swap", "this_week", "next_week", "quarter", "next_quarter")


def _open_interest_row(q, coin) -> dict:
    """One contract's open interest as /linear-swap-api/v1/swap_open_interest writes it: JSON numbers; `volume`
    in contracts, `amount` in base units, `value` in USDT; the trade_* fields are the day's trading."""
    def number(d):
        return None if d is None else float(d)
    base, price = q.open_interest, q.mark_price or q.last
    return {"volume": number(q.open_interest_contracts), "amount": number(base), "symbol": coin.base,
            "value": None if base is None or price is None else number((base * price).quantize(Decimal("0.0001"))),
            "contract_code": _code(coin), "trade_amount": number(q.volume_24h),
            "trade_volume": number(q.volume_24h_contracts), "trade_turnover": number(q.quote_volume_24h),
            "business_type": "swap", "pair": _code(coin), "contract_type": "swap"}


def swap_open_interest(req):
    """Every swap's open interest (or the one contract_code names). Linear futures are not simulated: asked
    for them alone (business_type=futures, or a dated contract_type), the answer lists nothing."""
    business_type = req.query.get("business_type", "swap")
    contract_type = req.query.get("contract_type")
    if business_type not in ("swap", "futures", "all"):
        return _api_error(1067, "Illegal parameter business_type.")
    if contract_type is not None and contract_type not in CONTRACT_TYPES:
        return _api_error(1067, "Illegal parameter contract_type.")
    coins = _selected(req, _api_error)
    if business_type == "futures" or contract_type not in (None, "swap"):
        coins = []
    return {"status": "ok", "data": [_open_interest_row(req.quote(c.base), c) for c in coins], "ts": _ms()}


PERIODS = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600, "4hour": 14400, "1day": 86400}


def mark_price_kline(req):
    """Mark-price candles; the last candle's close is the current mark price (ccxt fetch_ohlcv price='mark')."""
    coin = _lookup(req, req.query.get("contract_code"))
    if coin is None:
        return _market_error()
    period = req.query.get("period")
    if period not in PERIODS:
        return _market_error("invalid period")
    try:
        size = max(1, min(int(req.query.get("size", 150)), 2000))
    except ValueError:
        return _market_error("invalid size")
    q = req.quote(coin.base)
    mark = None if q.mark_price is None else str(q.mark_price)
    start = q.timestamp // 1000 // PERIODS[period] * PERIODS[period]
    data = []
    for i in range(size - 1, -1, -1):  # oldest first, the current (open) candle last
        data.append({"id": start - i * PERIODS[period], "open": mark, "close": mark, "high": mark, "low": mark,
                     "amount": "0", "vol": "0", "trade_turnover": "0", "count": 0})
    return {"ch": f"market.{_code(coin)}.mark_price.{period}", "data": data, "status": "ok", "ts": _ms()}


HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT = 50, 100


def _v5_error(code: int, message: str) -> dict:
    return {"code": code, "message": message, "data": None, "ts": _ms()}


def _history_limit(req) -> int | None:
    try:
        limit = int(req.query.get("limit", HISTORY_DEFAULT_LIMIT))
    except ValueError:
        return None
    return limit if 1 <= limit <= HISTORY_MAX_LIMIT else None


def _time_param(req, name: str, default: int) -> int | None:
    try:
        return int(req.query.get(name, default))
    except ValueError:
        return None


def funding_rate_history(req):
    """Settled funding of one linear swap, newest first: the newest `limit` in [start_time, end_time]."""
    code = req.query.get("contract_code")
    if code is None:
        return _v5_error(1066, "contract_code cannot be empty.")
    coin = _lookup(req, code)
    if coin is None:
        return _v5_error(1013, "This contract symbol doesn't exist.")
    limit = _history_limit(req)
    start, end = _time_param(req, "start_time", 0), _time_param(req, "end_time", req.market.now_ms())
    if limit is None:
        return _v5_error(1067, "The limit field is invalid")
    if start is None or end is None:
        return _v5_error(1067, "The start_time or end_time field is invalid")
    every = req.market.settlements("htx", coin.base)
    ordinal = {s.funding_time: i for i, s in enumerate(every, 1)}
    chosen = [s for s in every if start <= s.funding_time <= end][-limit:]
    data = [{"id": str(ordinal[s.funding_time]), "contract_code": _code(coin), "funding_rate": _rate(s.rate),
             "funding_time": str(s.funding_time)} for s in reversed(chosen)]
    return {"code": 200, "message": "Success", "data": data, "ts": _ms()}


def _rate(rate: Decimal) -> str:
    """A settled rate as HTX's v5 writes it: plain decimals, no trailing zeros ("0.0001")."""
    return format(rate.normalize(), "f")


def _single_funding(req):
    """The v1 single-contract funding endpoint (same entry shape as the batch one, data is an object)."""
    coin = _lookup(req, req.query.get("contract_code"))
    if coin is None:
        return _api_error()
    return {"status": "ok", "data": _funding_entry(req.quote(coin.base), coin, True), "ts": _ms()}


ROUTES = {
    # markets
    "/linear-swap-api/v1/swap_contract_info": linear_contract_info,
    "/v1/common/symbols": spot_symbols,
    "/v2/reference/currencies": currencies,
    "/swap-api/v1/swap_contract_info": inverse_swap_contract_info,
    "/api/v1/contract_contract_info": inverse_future_contract_info,
    # tickers
    "/linear-swap-ex/market/detail/batch_merged": batch_merged,
    "/v2/linear-swap-ex/market/detail/batch_merged": batch_merged,
    "/linear-swap-ex/market/detail/merged": detail_merged,
    # order book
    "/linear-swap-ex/market/depth": depth,
    # funding, index, mark
    "/v5/market/funding_rate": v5_funding_rate,
    "/v5/market/funding_rate_history": funding_rate_history,
    "/linear-swap-api/v1/swap_batch_funding_rate": batch_funding_rate,
    "/linear-swap-api/v1/swap_funding_rate": _single_funding,
    "/linear-swap-api/v1/swap_index": swap_index,
    "/linear-swap-api/v1/swap_open_interest": swap_open_interest,
    "/index/market/history/linear_swap_mark_price_kline": mark_price_kline,
}

