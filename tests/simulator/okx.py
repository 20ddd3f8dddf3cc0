"""OKX API v5 dialect (ccxt class `okx`): USDT-margined linear swaps, plus two USD-margined inverse swaps
(BTC-USD-SWAP, ETH-USD-SWAP) that a worker must leave out of its board. The inverse ones follow the linear
swap's prices, with their own contract (100 / 10 USD) in volumes and open interest, half its funding rate, and
its book (levels not converted: no truth is kept for them).

Wire format as in ccxt 4.5.90's okx.py (response examples in its comments) and OKX's v5 docs:

* Every answer is ``{"code": "0", "msg": "", "data": [...]}``; every value a string, times in ms as strings.
  A value OKX does not have is ``""`` (a fresh listing's funding rate and times; a drop_fields fault).
* Sizes are contracts: a swap's contract is ``ctVal`` of ``ctValCcy`` (the base for linear swaps: BTC 0.01,
  DOGE 1000; USD 100 / 10 for the inverse ones). Tickers' ``vol24h`` and book levels are contracts;
  ``volCcy24h`` is base units for swaps (ccxt reads ``vol24h`` as baseVolume: contracts, not base).
  Open interest: ``oi`` contracts, ``oiCcy`` base units, ``oiUsd``.
* Funding: ``fundingTime`` is the upcoming settlement, ``nextFundingTime`` the one after; ccxt derives the
  symbol's interval (8, 4, 2 or 1 h) from their gap.
* Settled funding: ``/public/funding-rate-history?instId=&before=&after=&limit=`` answers the newest ``limit``
  settlements with before < fundingTime < after (both bounds exclusive, either optional), newest first, as
  ``{"formulaType", "fundingRate", "fundingTime", "instId", "instType", "method", "realizedRate"}`` strings;
  ccxt 4.5.90 reads ``realizedRate`` and sends since as ``before`` = since - 1. ``limit`` is 400 at most and by
  default (docs-v5, "Get funding rate history": "The maximum is 400; The default is 400"; it was 100 before):
  a larger one is answered as 400 (the docs do not say; not verified), one that is not a positive number is
  refused (51000).
* Errors: HTTP status + ``{"code": "<OKX code>", "msg": ..., "data": []}``, ccxt maps the code
  (okx.py ``exceptions.exact``): 51001 unknown instrument (BadSymbol), 51000 a bad parameter, 50014 a missing
  one (BadRequest), 50026 system error (ExchangeNotAvailable). A 429 is ``{"msg": "Too Many Requests",
  "code": "50011"}`` (RateLimitExceeded) as OKX sends it, without Retry-After. OKX never answers 418; what
  would (a CDN) sends no OKX body, so ccxt falls back to its status table (DDoSProtection).

Endpoints (paths without the /okx prefix), each with the limit OKX publishes (per IP, 2 s):
  GET /api/v5/public/instruments?instType=SWAP      20   every swap (other instTypes: no instruments)
  GET /api/v5/market/tickers?instType=SWAP          20   bid/ask/last/sizes/24 h volumes
  GET /api/v5/market/ticker?instId=                 20   one of them
  GET /api/v5/public/funding-rate?instId=ANY|<id>   10   funding rate, fundingTime, nextFundingTime
  GET /api/v5/public/mark-price?instType=SWAP       10   mark prices
  GET /api/v5/market/index-tickers?quoteCcy=USDT    20   index prices (instId BTC-USDT)
  GET /api/v5/public/open-interest?instType=SWAP    20   open interest
  GET /api/v5/market/books?instId=&sz=              40   sz 1..400 (default 1)
  GET /api/v5/market/books-full?instId=&sz=         10   sz 1..5000 (default 1): what the book has
  GET /api/v5/public/funding-rate-history?instId=   10   settled funding, newest first
The limits match ccxt 4.5.90's costs (rateLimit 100 ms: cost 1 = 20 / 2 s, books 0.5, books-full 2,
funding-rate, mark-price and funding-rate-history 2). OKX counts funding-rate-history per IP and instrument
("Rate limit rule: IP + Instrument ID"); the simulator counts it per IP, every instrument together: stricter.
"""
from __future__ import annotations

from decimal import Decimal

from tests.simulator.server import Budget, Rejected, Reply

INSTRUMENTS = "/api/v5/public/instruments"
TICKERS = "/api/v5/market/tickers"
TICKER = "/api/v5/market/ticker"
FUNDING = "/api/v5/public/funding-rate"
MARK = "/api/v5/public/mark-price"
INDEX = "/api/v5/market/index-tickers"
OPEN_INTEREST = "/api/v5/public/open-interest"
BOOKS = "/api/v5/market/books"
BOOKS_FULL = "/api/v5/market/books-full"
FUNDING_HISTORY = "/api/v5/public/funding-rate-history"

LIMITS_PER_2S = {INSTRUMENTS: 20, TICKERS: 20, TICKER: 20, FUNDING: 10, MARK: 10, INDEX: 20, OPEN_INTEREST: 20,
                 BOOKS: 40, BOOKS_FULL: 10, FUNDING_HISTORY: 10}
BUDGETS = [Budget(limit, 2.0, paths=(path,)) for path, limit in LIMITS_PER_2S.items()]
BAN_AFTER_429S = None
SENDS_RETRY_AFTER = False
MAX_SZ = {BOOKS: 400, BOOKS_FULL: 5000}
HISTORY_LIMIT = 400   # the most, and the default, settlements one funding-rate-history answer holds

# USD-margined swaps: contract value in USD, and the base whose prices they follow.
INVERSE = {"BTC": Decimal(100), "ETH": Decimal(10)}
_INVERSE_FUNDING_SHARE = Decimal("0.5")   # their own funding rate, not the linear swap's
MAX_FUNDING_RATE = "0.0075"


def weight(req) -> int:
    return 1


def _error(code: str, msg: str) -> dict:
    return {"code": code, "msg": msg, "data": []}


def error_body(status: int, message: str) -> object:
    if status == 429:
        return {"msg": "Too Many Requests", "code": "50011"}
    if status == 418:
        return b"<html><body><h1>418 I'm a teapot</h1></body></html>"
    if status == 400 and "unknown symbol" in message:
        return _error("51001", "Instrument ID doesn't exist.")
    if status >= 500:
        return _error("50026", "System error. Try again later.")
    if status == 404:
        return _error("404", message)
    return _error("51000", message)


def _reject(code: str, msg: str, status: int = 400):
    raise Rejected(Reply(status, _error(code, msg)))


def _ok(rows: list) -> dict:
    return {"code": "0", "msg": "", "data": rows}


def _s(value) -> str:
    """A value as OKX writes it: a plain decimal string, "" when missing."""
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _required(req, name: str) -> str:
    value = req.query.get(name)
    if not value:
        _reject("50014", f"Parameter {name} can not be empty")
    return value


# -- instruments: the listed linear swaps and the inverse ones ---------------------------------------------
def linear_id(base: str) -> str:
    return f"{base}-USDT-SWAP"


def inverse_id(base: str) -> str:
    return f"{base}-USD-SWAP"


def _swaps(req) -> dict:
    """instId -> (coin, inverse?) for every swap OKX lists here, linear first."""
    listed = req.listed()
    swaps = {linear_id(c.base): (c, False) for c in listed}
    swaps.update({inverse_id(c.base): (c, True) for c in listed if c.base in INVERSE})
    return swaps


def _swap(req, inst_id: str):
    swap = _swaps(req).get(inst_id)
    if swap is None:
        _reject("51001", "Instrument ID doesn't exist.")
    return swap


def _selected(req, inst_id: str | None) -> list:
    """The swaps an answer covers: all, or the one `inst_id` names."""
    if inst_id and inst_id != "ANY":
        return [_swap(req, inst_id)]
    return list(_swaps(req).values())


def _contract_value(req, coin, inverse: bool) -> Decimal:
    return INVERSE[coin.base] if inverse else req.market.contract_size("okx", coin)


def _instrument(req, coin, inverse: bool) -> dict:
    q = req.quote(coin.base)
    base = coin.base
    quote, settle = ("USD", base) if inverse else ("USDT", "USDT")
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "contTdSwTime": "1611916828000",
        "ctMult": "1", "ctType": "inverse" if inverse else "linear",
        "ctVal": _s(_contract_value(req, coin, inverse)), "ctValCcy": "USD" if inverse else base,
        "expTime": "", "futureSettlement": False, "instFamily": f"{base}-{quote}",
        "instId": inverse_id(base) if inverse else linear_id(base), "instIdCode": 10000 + _code(base, inverse),
        "instType": "SWAP", "lever": "100", "listTime": "1611916828000", "lotSz": "1",
        "maxIcebergSz": "100000000", "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "",
        "maxMktSz": "12000", "maxStopSz": "12000", "maxTriggerSz": "100000000", "maxTwapSz": "100000000",
        "minSz": "1", "openType": "", "optType": "", "quoteCcy": "", "ruleType": "normal", "settleCcy": settle,
        "state": "live", "stk": "", "tickSz": _s(q.price_tick), "uly": f"{base}-{quote}",
    }


def _code(base: str, inverse: bool) -> int:
    return sum(ord(ch) * 31 ** i for i, ch in enumerate(base)) % 100_000 * 2 + inverse


def instruments(req):
    inst_type = _required(req, "instType")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        _reject("51000", "Parameter instType error")
    if inst_type != "SWAP":
        return _ok([])  # ccxt's default load_markets asks for every type: no spot, futures or options here
    return _ok([_instrument(req, coin, inverse) for coin, inverse in _selected(req, req.query.get("instId"))])


# -- tickers -----------------------------------------------------------------------------------------------
def _contracts(req, coin, inverse: bool, base_amount: Decimal | None, price: Decimal | None) -> Decimal | None:
    """A base amount in contracts: / ctVal (linear), x price / ctVal in USD (inverse)."""
    if base_amount is None:
        return None
    if inverse:
        return (base_amount * (price or 0) / INVERSE[coin.base]).to_integral_value()
    return (base_amount / req.market.contract_size("okx", coin)).to_integral_value()


def _ticker(req, coin, inverse: bool) -> dict:
    q = req.quote(coin.base)
    ts = _s(q.timestamp)
    bid_sz, ask_sz = q.book.top_lots("bids"), q.book.top_lots("asks")
    return {
        "instType": "SWAP", "instId": inverse_id(coin.base) if inverse else linear_id(coin.base),
        "last": _s(q.last), "lastSz": _s(1 + q.tick % 17),
        "askPx": _s(q.ask), "askSz": _s(ask_sz) if q.ask is not None else "",
        "bidPx": _s(q.bid), "bidSz": _s(bid_sz) if q.bid is not None else "",
        "open24h": _s(q.open), "high24h": _s(q.high), "low24h": _s(q.low),
        "volCcy24h": _s(q.volume_24h), "vol24h": _s(_contracts(req, coin, inverse, q.volume_24h, q.last or q.open)),
        "ts": ts, "sodUtc0": _s(q.open), "sodUtc8": _s(q.open),
    }


def _inst_type_rows(req, row) -> dict:
    inst_type = _required(req, "instType")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        _reject("51000", "Parameter instType error")
    if inst_type != "SWAP":
        return _ok([])
    return _ok([row(req, coin, inverse) for coin, inverse in _selected(req, req.query.get("instId"))])


def tickers(req):
    return _inst_type_rows(req, _ticker)


def ticker(req):
    coin, inverse = _swap(req, _required(req, "instId"))
    return _ok([_ticker(req, coin, inverse)])


def _mark(req, coin, inverse: bool) -> dict:
    q = req.quote(coin.base)
    return {"instType": "SWAP", "instId": inverse_id(coin.base) if inverse else linear_id(coin.base),
            "markPx": _s(q.mark_price), "ts": _s(q.timestamp)}


def mark_prices(req):
    return _inst_type_rows(req, _mark)


def _open_interest(req, coin, inverse: bool) -> dict:
    q = req.quote(coin.base)
    base = q.open_interest
    usd = None if base is None or q.mark_price is None else (base * q.mark_price).quantize(Decimal("0.01"))
    return {"instType": "SWAP", "instId": inverse_id(coin.base) if inverse else linear_id(coin.base),
            "oi": _s(_contracts(req, coin, inverse, base, q.mark_price)), "oiCcy": _s(base), "oiUsd": _s(usd),
            "ts": _s(q.timestamp)}


def open_interest(req):
    return _inst_type_rows(req, _open_interest)


def index_tickers(req):
    quote_ccy, inst_id = req.query.get("quoteCcy"), req.query.get("instId")
    if not quote_ccy and not inst_id:
        _reject("50015", "Either parameter quoteCcy or instId is required")
    coins = {f"{c.base}-USDT": c for c in req.listed()}
    if inst_id:
        coins = {inst_id: coins[inst_id]} if inst_id in coins else {}
    elif quote_ccy != "USDT":
        coins = {}  # USD and USDC indexes are not simulated
    rows = []
    for index_id, coin in coins.items():
        q = req.quote(coin.base)
        rows.append({"instId": index_id, "idxPx": _s(q.index_price), "high24h": _s(q.high), "low24h": _s(q.low),
                     "open24h": _s(q.open), "sodUtc0": _s(q.open), "sodUtc8": _s(q.open), "ts": _s(q.timestamp)})
    return _ok(rows)


# -- funding -----------------------------------------------------------------------------------------------
def _funding(req, coin, inverse: bool) -> dict:
    q = req.quote(coin.base)
    rate = q.funding_rate
    if rate is not None and inverse:
        rate = rate * _INVERSE_FUNDING_SHARE
    upcoming = q.next_funding_time
    after = None if upcoming is None else upcoming + q.funding_interval_hours * 3_600_000
    premium = None
    if q.mark_price is not None and q.index_price:
        premium = ((q.mark_price - q.index_price) / q.index_price).quantize(Decimal("0.0000000001"))
    return {
        "formulaType": "withRate", "fundingRate": _s(rate), "fundingTime": _s(upcoming), "impactValue": "",
        "instId": inverse_id(coin.base) if inverse else linear_id(coin.base), "instType": "SWAP",
        "interestRate": "0.0001", "maxFundingRate": MAX_FUNDING_RATE, "method": "current_period",
        "minFundingRate": "-" + MAX_FUNDING_RATE, "nextFundingRate": "", "nextFundingTime": _s(after),
        "premium": _s(premium), "settFundingRate": _s(rate), "settState": "settled", "ts": _s(q.timestamp),
    }


def funding_rate(req):
    inst_id = _required(req, "instId")
    return _ok([_funding(req, coin, inverse) for coin, inverse in _selected(req, inst_id)])


def _bound(req, name: str) -> int | None:
    text = req.query.get(name)
    if not text:
        return None
    if not text.isdigit():
        _reject("51000", f"Parameter {name} error")
    return int(text)


def _history_limit(req) -> int:
    text = req.query.get("limit") or str(HISTORY_LIMIT)
    if not text.isdigit() or int(text) < 1:
        _reject("51000", "Parameter limit error")
    return min(int(text), HISTORY_LIMIT)


def funding_rate_history(req):
    """A swap's settled funding, newest first: the newest `limit` strictly between `before` and `after`."""
    coin, inverse = _swap(req, _required(req, "instId"))
    newer_than, older_than, limit = _bound(req, "before"), _bound(req, "after"), _history_limit(req)
    settled = [s for s in req.market.settlements("okx", coin.base)
               if (newer_than is None or s.funding_time > newer_than)
               and (older_than is None or s.funding_time < older_than)]
    share = _INVERSE_FUNDING_SHARE if inverse else 1
    inst_id = inverse_id(coin.base) if inverse else linear_id(coin.base)
    return _ok([{"formulaType": "withRate", "fundingRate": _s(s.rate * share), "fundingTime": _s(s.funding_time),
                 "instId": inst_id, "instType": "SWAP", "method": "current_period",
                 "realizedRate": _s(s.rate * share)} for s in reversed(settled[-limit:])])


# -- order books -------------------------------------------------------------------------------------------
def _sz(req) -> int:
    """The depth asked for: OKX's `sz`, 1 by default, refused out of the endpoint's range."""
    text = req.query.get("sz", "1")
    try:
        sz = int(text)
    except ValueError:
        sz = 0
    if not 1 <= sz <= MAX_SZ[req.path]:
        _reject("51000", "Parameter sz error")
    return sz


def _levels(book, side: str, depth: int) -> list:
    """[price, contracts, "0" (liquidated orders, deprecated), orders] as OKX writes a level."""
    return [[p, n, "0", str(1 + len(n) % 5)] for p, n in book.levels(side, depth, unit="lots")]


def books(req):
    coin, _inverse = _swap(req, _required(req, "instId"))
    depth = _sz(req)
    q = req.quote(coin.base)
    return _ok([{"asks": _levels(q.book, "asks", depth), "bids": _levels(q.book, "bids", depth),
                 "ts": _s(q.timestamp)}])


ROUTES = {
    INSTRUMENTS: instruments,
    TICKERS: tickers,
    TICKER: ticker,
    FUNDING: funding_rate,
    FUNDING_HISTORY: funding_rate_history,
    MARK: mark_prices,
    INDEX: index_tickers,
    OPEN_INTEREST: open_interest,
    BOOKS: books,
    BOOKS_FULL: books,
}
