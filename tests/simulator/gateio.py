"""Gate.io APIv4 dialect (ccxt class `gate`): futures/usdt perpetuals plus small spot, inverse, delivery
and option answers so that ccxt's default load_markets works.

Wire format as Gate sends it: bare JSON arrays/objects (no envelope), decimals as strings, integers (sizes in
contracts, seconds) as numbers, times in seconds (order book `current` as float seconds with ms).
Errors: HTTP status + ``{"label": "...", "message": "..."}``; ccxt maps the label (gate.py `exceptions.exact`).
A value Gate does not have is an empty string (as in its spot tickers' `highest_bid` on an empty book and
the `""` trigger prices in its order responses); integer fields are left out.

Endpoints (paths without the /gateio prefix):
  GET /api/v4/futures/usdt/contracts            all USDT perpetuals: contract spec + mark/index/funding/next funding
  GET /api/v4/futures/usdt/contracts/{contract} one of them (ccxt fetch_funding_rate)
  GET /api/v4/futures/usdt/tickers[?contract=]   bid/ask/last/volume/mark/index/funding rate
  GET /api/v4/futures/usdt/order_book?contract=&limit=&with_id=   up to 300 levels per side, sizes in contracts
  GET /api/v4/futures/usdt/funding_rate?contract=&limit=&from=&to=   settled funding, newest first, times in
                                                seconds; limit default 100, at most 1000 (more is served as 1000)
  GET /api/v4/futures/btc/contracts             one inverse perpetual (ccxt default load_markets)
  GET /api/v4/delivery/usdt/contracts           one dated future (ccxt default load_markets)
  GET /api/v4/spot/currency_pairs, /api/v4/margin/currency_pairs   two spot pairs (default load_markets)
  GET /api/v4/spot/currencies                   three currencies (fetch_currencies of a plain ccxt.gate())
  GET /api/v4/options/underlyings, /api/v4/options/contracts?underlying=   one option (default load_markets)
"""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from tests.simulator.server import Budget, Reply

# Gate: "all public endpoints 200r/10s per endpoint" (ccxt gate.py; docs/reference.md, "What each exchange costs").
BUDGETS = [Budget(200, 10.0, per_endpoint=True)]
BAN_AFTER_429S = None
MAX_BOOK_DEPTH = 300
DEFAULT_BOOK_DEPTH = 10

_FUTURES = "/api/v4/futures/usdt"
_CONTRACT_PREFIX = _FUTURES + "/contracts/"


def weight(req) -> int:
    return 1


def error_body(status: int, message: str) -> dict:
    if status == 429:
        return {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"}
    if status == 400:
        if "unknown symbol" in message:
            return {"label": "CONTRACT_NOT_FOUND", "message": ""}
        return {"label": "INVALID_PARAM_VALUE", "message": message}
    if status == 404:
        return {"label": "NOT_FOUND", "message": message}
    if status == 418:
        # Gate itself never answers 418; what sends it (a CDN/WAF) carries no Gate label, so ccxt falls back to
        # its HTTP status table (418 -> DDoSProtection).
        return {"message": message}
    if status == 503:
        return {"label": "TOO_BUSY", "message": message}
    return {"label": "SERVER_ERROR", "message": message}


# -- formatting ------------------------------------------------------------------------------------------
def _s(value) -> str:
    """A decimal as Gate writes it: a plain string; a missing value as ""."""
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _contract_not_found() -> Reply:
    return Reply(400, {"label": "CONTRACT_NOT_FOUND", "message": ""})


def _listed(req) -> dict:
    return {c.base: c for c in req.listed()}


def _coin_for(req, contract: str | None):
    """The listed Coin for a Gate contract name like BTC_USDT, or None."""
    if not contract or not contract.endswith("_USDT"):
        return None
    return _listed(req).get(contract[: -len("_USDT")])


# -- USDT perpetuals ---------------------------------------------------------------------------------------
def _contract(req, coin) -> dict:
    q = req.quote(coin.base)
    tick = _s(q.price_tick)
    out = {
        "name": f"{coin.base}_USDT",
        "type": "direct",
        "quanto_multiplier": _s(q.contract_size),
        "ref_discount_rate": "0",
        "order_price_deviate": "0.5",
        "maintenance_rate": "0.005",
        "mark_type": "index",
        "last_price": _s(q.last),
        "mark_price": _s(q.mark_price),
        "index_price": _s(q.index_price),
        "funding_rate_indicative": _s(q.funding_rate),
        "mark_price_round": tick,
        "funding_offset": 0,
        "in_delisting": False,
        "risk_limit_base": "1000000",
        "interest_rate": "0.0003",
        "order_price_round": tick,
        "order_size_min": 1,
        "ref_rebate_rate": "0.2",
        "funding_interval": q.funding_interval_hours * 3600,
        "risk_limit_step": "1000000",
        "leverage_min": "1",
        "leverage_max": "100",
        "risk_limit_max": "8000000",
        "maker_fee_rate": "-0.00025",
        "taker_fee_rate": "0.00075",
        "funding_rate": _s(q.funding_rate),
        "order_size_max": 1000000,
        "short_users": 977,
        "config_change_time": 1609899548,
        "create_time": 1609800048,
        "trade_size": int(q.volume_24h_contracts or 0) * 30,
        "position_size": int(q.open_interest_contracts or 0),
        "long_users": 455,
        "funding_impact_value": "60000",
        "orders_limit": 50,
        "trade_id": 10851092 + q.tick,
        "orderbook_id": 2129638396 + q.tick,
        "enable_bonus": True,
        "enable_credit": True,
        "enable_decimal": False,
        "funding_cap_ratio": "0.75",
        "voucher_leverage": "0",
        "is_pre_market": False,
        "status": "trading",
        "launch_time": 1609800048,
        "contract_type": "",
    }
    if q.next_funding_time is not None:
        out["funding_next_apply"] = q.next_funding_time // 1000
    return out


def futures_contracts(req):
    # `limit`/`offset` page the real list; without them Gate returns every contract. A `contract` query
    # parameter (ccxt fetch_funding_rates(symbols) sends one) is not a filter of this endpoint.
    coins = req.listed()
    try:
        offset = int(req.query.get("offset", 0))
        limit = int(req.query["limit"]) if "limit" in req.query else len(coins)
    except ValueError:
        return Reply(400, error_body(400, "invalid argument: limit/offset"))
    return [_contract(req, c) for c in coins[offset: offset + limit]]


def futures_contract(req):
    coin = _coin_for(req, req.path[len(_CONTRACT_PREFIX):])
    if coin is None:
        return _contract_not_found()
    return _contract(req, coin)


def _ticker(req, coin) -> dict:
    q = req.quote(coin.base)
    contracts = q.volume_24h_contracts
    change = (Decimal(100) * (q.last - q.open) / q.open).quantize(Decimal("0.01")) if q.last is not None else None
    return {
        "contract": f"{coin.base}_USDT",
        "last": _s(q.last),
        "change_percentage": _s(change),
        "total_size": _s(q.open_interest_contracts),
        "low_24h": _s(q.low),
        "high_24h": _s(q.high),
        "volume_24h": _s(contracts),
        "volume_24h_btc": _s(q.volume_24h),
        "volume_24h_usd": _s(q.quote_volume_24h),
        "volume_24h_base": _s(q.volume_24h),
        "volume_24h_quote": _s(q.quote_volume_24h),
        "volume_24h_settle": _s(q.quote_volume_24h),
        "mark_price": _s(q.mark_price),
        "funding_rate": _s(q.funding_rate),
        "funding_rate_indicative": _s(q.funding_rate),
        "index_price": _s(q.index_price),
        "quanto_base_rate": "",
        "highest_bid": _s(q.bid),
        "highest_size": _s(q.book.top_lots("bids")) if q.bid is not None else "",
        "lowest_ask": _s(q.ask),
        "lowest_size": _s(q.book.top_lots("asks")) if q.ask is not None else "",
    }


def futures_tickers(req):
    contract = req.query.get("contract")
    if contract is not None:
        coin = _coin_for(req, contract)
        if coin is None:
            return _contract_not_found()
        return [_ticker(req, coin)]
    return [_ticker(req, c) for c in req.listed()]


def futures_order_book(req):
    coin = _coin_for(req, req.query.get("contract"))
    if coin is None:
        if not req.query.get("contract"):
            return Reply(400, {"label": "MISSING_REQUIRED_PARAM", "message": "contract"})
        return _contract_not_found()
    try:
        limit = int(req.query.get("limit", DEFAULT_BOOK_DEPTH))
    except ValueError:
        return Reply(400, error_body(400, "invalid argument: limit"))
    if limit <= 0:
        return Reply(400, error_body(400, "invalid argument: limit"))
    depth = min(limit, MAX_BOOK_DEPTH)
    q = req.quote(coin.base)
    book = q.book
    current = q.timestamp / 1000
    out = {
        "current": current,
        "update": current,
        "asks": [{"p": p, "s": int(s)} for p, s in book.levels("asks", depth, unit="lots")],
        "bids": [{"p": p, "s": int(s)} for p, s in book.levels("bids", depth, unit="lots")],
    }
    if req.query.get("with_id") in ("true", "True", "1"):
        out = {"id": 6358770031 + q.tick, **out}
    return out


HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 100, 1000


def futures_funding_rate(req):
    """Gate's settled funding: the newest `limit` settlements with time in [from, to] (seconds, both inclusive;
    to: now), newest first, {"t": seconds, "r": "rate"}. A settlement after the market's now has not happened."""
    coin = _coin_for(req, req.query.get("contract"))
    if coin is None:
        if not req.query.get("contract"):
            return Reply(400, {"label": "MISSING_REQUIRED_PARAM", "message": "contract"})
        return _contract_not_found()
    try:
        limit = int(req.query.get("limit", HISTORY_LIMIT_DEFAULT))
        start = int(req.query.get("from", 0)) * 1000
        end = int(req.query["to"]) * 1000 + 999 if "to" in req.query else None
    except ValueError:
        return Reply(400, error_body(400, "invalid argument: limit, from or to"))
    if limit <= 0:
        return Reply(400, error_body(400, "invalid argument: limit"))
    settled = req.market.settlements(req.exchange, coin.base, start, end)[-min(limit, HISTORY_LIMIT_MAX):]
    return [{"t": s.funding_time // 1000, "r": _s(s.rate.normalize())} for s in reversed(settled)]


# -- the other market types ccxt's default load_markets asks for -----------------------------------------
def _btc(req):
    return req.quote("BTC")


def spot_currency_pairs(req):
    return [
        {"id": "BTC_USDT", "base": "BTC", "base_name": "Bitcoin", "quote": "USDT", "quote_name": "Tether",
         "fee": "0.2", "min_base_amount": "0.00001", "min_quote_amount": "3", "max_quote_amount": "5000000",
         "amount_precision": 6, "precision": 1, "trade_status": "tradable", "sell_start": 1516378650,
         "buy_start": 1516378650, "type": "normal", "trade_url": "https://www.gate.com/trade/BTC_USDT"},
        {"id": "ETH_USDT", "base": "ETH", "base_name": "Ethereum", "quote": "USDT", "quote_name": "Tether",
         "fee": "0.2", "min_base_amount": "0.0001", "min_quote_amount": "3", "max_quote_amount": "5000000",
         "amount_precision": 4, "precision": 2, "trade_status": "tradable", "sell_start": 1516378650,
         "buy_start": 1516378650, "type": "normal", "trade_url": "https://www.gate.com/trade/ETH_USDT"},
    ]


def spot_currencies(req):
    """fetch_currencies (only when has['fetchCurrencies'] is left on, as in a plain ccxt.gate())."""
    def chain(name, addr):
        return {"name": name, "addr": addr, "withdraw_disabled": False, "withdraw_delayed": False,
                "deposit_disabled": False}
    def currency(code, name, chains):
        return {"currency": code, "name": name, "delisted": False, "withdraw_disabled": False,
                "withdraw_delayed": False, "deposit_disabled": False, "trade_disabled": False, "fixed_rate": "",
                "chain": chains[0]["name"], "chains": chains}
    return [
        currency("USDT", "Tether", [chain("ETH", "0xdAC17F958D2ee523a2206206994597C13D831ec7"),
                                    chain("TRX", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")]),
        currency("BTC", "Bitcoin", [chain("BTC", "")]),
        currency("ETH", "Ethereum", [chain("ETH", "")]),
    ]


def margin_currency_pairs(req):
    return [{"id": "BTC_USDT", "base": "BTC", "quote": "USDT", "leverage": 10, "min_base_amount": "0.0001",
             "min_quote_amount": "1", "max_quote_amount": "5000000", "status": 1}]


def inverse_contracts(req):
    q = _btc(req)
    return [{
        "name": "BTC_USD", "type": "inverse", "quanto_multiplier": "0", "ref_discount_rate": "0",
        "order_price_deviate": "0.5", "maintenance_rate": "0.005", "mark_type": "index",
        "last_price": _s(q.last), "mark_price": _s(q.mark_price), "index_price": _s(q.index_price),
        "funding_rate_indicative": "0.0001", "mark_price_round": "0.01", "funding_offset": 0,
        "in_delisting": False, "risk_limit_base": "100", "interest_rate": "0.0003", "order_price_round": "0.1",
        "order_size_min": 1, "ref_rebate_rate": "0.2", "funding_interval": 28800, "risk_limit_step": "100",
        "leverage_min": "1", "leverage_max": "100", "risk_limit_max": "800", "maker_fee_rate": "-0.0002",
        "taker_fee_rate": "0.00075", "funding_rate": "0.0001", "order_size_max": 1000000,
        "funding_next_apply": q.timestamp // 1000 // 28800 * 28800 + 28800, "short_users": 207,
        "config_change_time": 1732783287, "create_time": 1545235200, "trade_size": 59939537641,
        "position_size": 11835253, "long_users": 486, "funding_impact_value": "0.5", "orders_limit": 50,
        "trade_id": 46136002, "orderbook_id": 4871277879, "status": "trading",
    }]


def _next_friday_0800(ts_ms: int) -> int:
    now = _dt.datetime.fromtimestamp(ts_ms / 1000, _dt.timezone.utc)
    day = (now + _dt.timedelta(days=(4 - now.weekday()) % 7 or 7)).date()
    return int(_dt.datetime(day.year, day.month, day.day, 8, tzinfo=_dt.timezone.utc).timestamp())


def delivery_contracts(req):
    q = _btc(req)
    expire = _next_friday_0800(q.timestamp)
    date = _dt.datetime.fromtimestamp(expire, _dt.timezone.utc).strftime("%Y%m%d")
    return [{
        "name": f"BTC_USDT_{date}", "underlying": "BTC_USDT", "cycle": "WEEKLY", "type": "direct",
        "quanto_multiplier": "0.0001", "mark_type": "index", "last_price": _s(q.last),
        "mark_price": _s(q.mark_price), "index_price": _s(q.index_price), "basis_rate": "0.0001",
        "basis_value": "6.5", "basis_impact_value": "100000", "settle_price": "0", "settle_price_interval": 60,
        "settle_price_duration": 1800, "settle_fee_rate": "0.0015", "expire_time": expire,
        "order_price_round": "0.1", "mark_price_round": "0.1", "leverage_min": "1", "leverage_max": "100",
        "maintenance_rate": "0.005", "risk_limit_base": "140.726652109199", "risk_limit_step": "1000000",
        "risk_limit_max": "8000000", "maker_fee_rate": "-0.00025", "taker_fee_rate": "0.00075",
        "ref_discount_rate": "0", "ref_rebate_rate": "0.2", "order_price_deviate": "0.5", "order_size_min": 1,
        "order_size_max": 1000000, "orders_limit": 50, "orderbook_id": 63, "trade_id": 26, "trade_size": 435,
        "position_size": 130, "config_change_time": 1593158867, "in_delisting": False,
    }]


def option_underlyings(req):
    q = _btc(req)
    return [{"name": "BTC_USDT", "index_price": _s(q.index_price), "index_time": str(q.timestamp // 1000)}]


def option_contracts(req):
    if req.query.get("underlying") != "BTC_USDT":
        return Reply(400, {"label": "INVALID_PARAM_VALUE", "message": "invalid argument: underlying"})
    q = _btc(req)
    expire = _next_friday_0800(q.timestamp)
    date = _dt.datetime.fromtimestamp(expire, _dt.timezone.utc).strftime("%Y%m%d")
    strike = int(q.index_price or q.open) // 1000 * 1000
    return [{
        "orders_limit": "50", "order_size_max": "100000", "mark_price_round": "0.1", "order_size_min": "1",
        "position_limit": "1000000", "orderbook_id": "575967", "order_price_deviate": "0.9", "is_call": True,
        "last_price": "93.9", "bid1_size": "0", "bid1_price": "0", "taker_fee_rate": "0.0004",
        "underlying": "BTC_USDT", "create_time": "1646381188", "price_limit_fee_rate": "0.1",
        "maker_fee_rate": "0.0004", "trade_id": "727", "order_price_round": "0.1", "settle_fee_rate": "0.0001",
        "trade_size": "1982", "ref_rebate_rate": "0", "name": f"BTC_USDT-{date}-{strike}-C",
        "underlying_price": _s(q.index_price), "strike_price": str(strike), "multiplier": "0.0001",
        "ask1_price": "0", "ref_discount_rate": "0", "expiration_time": str(expire), "mark_price": "12.15",
        "position_size": "4", "ask1_size": "0", "tag": "WEEK",
    }]


class _Routes(dict):
    """Exact paths, plus the one templated path /api/v4/futures/usdt/contracts/{contract}: the core looks
    handlers up with ROUTES.get(path), so the template is matched here."""

    def get(self, path, default=None):
        handler = super().get(path)
        if handler is None and path.startswith(_CONTRACT_PREFIX) and "/" not in path[len(_CONTRACT_PREFIX):]:
            return futures_contract
        return default if handler is None else handler


ROUTES = _Routes({
    _FUTURES + "/contracts": futures_contracts,
    _FUTURES + "/tickers": futures_tickers,
    _FUTURES + "/order_book": futures_order_book,
    _FUTURES + "/funding_rate": futures_funding_rate,
    "/api/v4/futures/btc/contracts": inverse_contracts,
    "/api/v4/delivery/usdt/contracts": delivery_contracts,
    "/api/v4/spot/currency_pairs": spot_currency_pairs,
    "/api/v4/spot/currencies": spot_currencies,
    "/api/v4/margin/currency_pairs": margin_currency_pairs,
    "/api/v4/options/underlyings": option_underlyings,
    "/api/v4/options/contracts": option_contracts,
})
