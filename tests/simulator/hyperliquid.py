"""Hyperliquid dialect: https://api.hyperliquid.xyz/info as ccxt 4.5.90's `hyperliquid` class posts to it.

Every public request is ``POST /info`` with a JSON body whose ``type`` says what is asked:
  {"type": "metaAndAssetCtxs"}        [{"universe": [asset...]}, [context...]]: the whole perpetual market in one
                                      answer (funding, mark, oracle, open interest, day volumes, impact prices)
  {"type": "l2Book", "coin": "BTC"}   {"coin", "time", "levels": [[bids], [asks]]}: 20 levels a side, each
                                      {"px", "sz", "n"} (sz in base units); an unknown coin answers `null`
  {"type": "meta"}                    {"universe": [asset...]}
  {"type": "allMids"}                 {coin: mid}
  {"type": "exchangeStatus"}          {"time": ms, "specialStatuses": null}
  {"type": "fundingHistory", "coin": "BTC", "startTime": ms, "endTime": ms (optional, default now)}
                                      [{"coin", "fundingRate", "premium", "time"}]: settled funding with
                                      startTime <= time <= endTime, oldest first, the first 500 at most (no
                                      limit parameter: the next page starts after the last time); an unknown
                                      coin answers [] (not verified against Hyperliquid)
  {"type": "spotMeta"}, {"type": "spotMetaAndAssetCtxs"}, {"type": "perpDexs"}: small valid answers (one spot
                                      pair, no builder-deployed dex), so that ccxt's default load_markets
                                      (types spot, swap, hip3) and fetch_currencies work.
A body that is not JSON, has no type or an unknown one: HTTP 422 with serde's plain-text message, as Hyperliquid
answers (its server rejects the body before any handler runs).

Wire format: prices, sizes, rates and volumes are strings; times are integer milliseconds; a value Hyperliquid
does not have is `null` (premium, midPx and impactPxs of a market without impact prices). Hyperliquid never
leaves funding or volumes out: a market with no funding estimate yet says "funding": "0.0" with a null premium
(and null impactPxs), one that did not trade says "dayNtlVlm": "0.0". The simulated market's fresh listing
(market.FRESH) renders that way, and so does its no-volume one (market.NO_VOLUME: volumes and open interest
"0.0"): ccxt reads 0.0 where the market model's truth is None. A drop_fields fault, which stands for a
value the answer lacks, writes null even there.

Impact prices: the average price at which IMPACT_NOTIONAL_USDC (Hyperliquid's funding impact notional: 20000 USDC
for BTC and ETH, 6000 for every other asset) fills against the book, bid rounded down and ask up to the price
tick, so impact bid <= best bid and impact ask >= best ask; `impact_prices(quote)` is the truth tests compare
with. None where the book is too thin (or the listing is fresh: no impact prices yet).

Budget: 1200 weight per minute per IP; l2Book, allMids, clearinghouseState, orderStatus, spotClearinghouseState
and exchangeStatus weigh 2, every other info type 20 (Hyperliquid's "Rate limits and user limits");
fundingHistory adds 1 per 20 items it returns (a part of 20 counting whole), charged from the answer's own
items. Over it:
HTTP 429 with a plain-text body and no Retry-After (Hyperliquid sends none: SENDS_RETRY_AFTER).
The server core logs a request, and matches a fault's `endpoint`, by its body's fields as a query
("type=l2Book&coin=BTC").
"""
from __future__ import annotations

import copy
import json
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tests.simulator.server import Budget, Reply

BUDGETS = [Budget(1200, 60.0)]
BAN_AFTER_429S = None
SENDS_RETRY_AFTER = False  # Hyperliquid's 429 carries no Retry-After header
BOOK_LEVELS = 20           # a side: all that l2Book gives
LIGHT_TYPES = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                         "exchangeStatus"})
LIGHT_WEIGHT, DEFAULT_WEIGHT = 2, 20
ITEMS_PER_WEIGHT = 20      # fundingHistory: "an additional rate limit weight per 20 items returned"
FUNDING_HISTORY_MOST = 500  # settlements one fundingHistory answer holds
IMPACT_NOTIONAL_USDC = {"BTC": Decimal(20000), "ETH": Decimal(20000)}
DEFAULT_IMPACT_NOTIONAL_USDC = Decimal(6000)
MAX_LEVERAGE = {"BTC": 40, "ETH": 25, "SOL": 20, "XRP": 20, "DOGE": 10}
DEFAULT_MAX_LEVERAGE = 5
IMPACT_WALK = (128, 512, None)   # book levels tried in turn for an impact price (None: all)
SPOT_TOKEN = "PURR"        # the one spot pair, PURR/USDC, that ccxt's default load_markets finds


# -- the request body ----------------------------------------------------------------------------------
class BadBody(ValueError):
    """A body Hyperliquid's server would refuse before any handler runs (HTTP 422)."""


def _body(req) -> dict:
    try:
        body = json.loads(req.body or b"")
    except ValueError as e:
        raise BadBody(f"Failed to parse the request body as JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadBody("Failed to deserialize the JSON body into the target type: invalid type, expected "
                      "internally tagged enum InfoRequest")
    if "type" not in body:
        raise BadBody("Failed to deserialize the JSON body into the target type: missing field `type`")
    return body


def weight(req) -> int:
    try:
        body = _body(req)
    except BadBody:
        return DEFAULT_WEIGHT
    if body["type"] == "fundingHistory":
        answer = funding_history(req, body)
        items = len(answer) if isinstance(answer, list) else 0
        return DEFAULT_WEIGHT - (-items // ITEMS_PER_WEIGHT)
    return LIGHT_WEIGHT if body["type"] in LIGHT_TYPES else DEFAULT_WEIGHT


def error_body(status: int, message: str) -> bytes:
    """Hyperliquid's HTTP-level errors are plain text, not JSON: ccxt's handle_errors finds no JSON and maps
    the HTTP status (429 RateLimitExceeded, 5xx ExchangeNotAvailable, 422 ExchangeError)."""
    return message.encode()


def _unprocessable(message: str) -> Reply:
    return Reply(422, error_body(422, message), {"Content-Type": "text/plain; charset=utf-8"})


# -- values as Hyperliquid writes them -----------------------------------------------------------------
def _s(d) -> str | None:
    """A Decimal as Hyperliquid writes it: plain notation with at least one decimal ("0.0", "65000.0")."""
    if d is None:
        return None
    text = format(d, "f")
    return text if "." in text else text + ".0"


def _sz_decimals(amount_step: str) -> int:
    return max(0, -Decimal(amount_step).normalize().as_tuple().exponent)


def impact_notional(base: str) -> Decimal:
    return IMPACT_NOTIONAL_USDC.get(base, DEFAULT_IMPACT_NOTIONAL_USDC)


def _fill_price(levels, lot: Decimal, notional: Decimal) -> Decimal | None:
    """The average price of `notional` quote filled level by level ((price, lots) pairs), or None if the levels
    hold less. Walked in floats: a thin book takes hundreds of levels, for each of 200 markets every tick."""
    want, size = float(notional), float(lot)
    base = filled = 0.0
    for price, lots in levels:
        p = float(price)
        take = min(lots * size * p, want - filled)
        filled += take
        base += take / p
        if filled >= want:
            return Decimal(repr(want / base))
    return None


def impact_prices(quote) -> tuple[Decimal | None, Decimal | None]:
    """(impact bid, impact ask) of a quote's book: the truth behind impactPxs and ccxt's bid/ask."""
    if quote.funding_rate is None or quote.bid is None or quote.ask is None:
        return None, None   # a fresh listing: no impact prices (hence no premium, no funding estimate) yet
    notional, tick = impact_notional(quote.base), quote.price_tick
    bid, ask = (_side_fill(quote.book, side, notional) for side in ("bids", "asks"))
    if bid is None or ask is None:
        return None, None   # Hyperliquid gives both or neither
    return (bid / tick).to_integral_value(ROUND_FLOOR) * tick, (ask / tick).to_integral_value(ROUND_CEILING) * tick


def _side_fill(book, side: str, notional: Decimal) -> Decimal | None:
    """The fill price on one side, from the book's first levels when they hold the notional, else from more
    of them. A whole market's books (200 x 2 x 1000 levels) cost the simulator half a second per tick, taken
    from the worker's CPU; the first levels of a book built shorter are the same levels (market.Book draws
    them in order), and the tests check the result against the whole book."""
    for depth in IMPACT_WALK:
        price = _fill_price(getattr(_shorter(book, side, depth), side), book.lot, notional)
        if price is not None or depth is None:
            return price
    return None


def _shorter(book, side: str, depth: int | None):
    if depth is None or side in vars(book) or depth >= book._depth:   # the whole book, or already built
        return book
    short = copy.copy(book)
    short._depth = depth
    return short


def mid_price(quote) -> Decimal | None:
    """midPx: the middle of the book's best bid and ask."""
    if quote.bid is None or quote.ask is None:
        return None
    return (quote.bid + quote.ask) / 2


def _premium(impact, oracle) -> str | None:
    bid, ask = impact
    if bid is None or oracle is None:
        return None
    premium = (max(bid - oracle, 0) - max(oracle - ask, 0)) / oracle
    return "0.0" if premium == 0 else _s(premium.quantize(Decimal("1e-10")))


# -- metaAndAssetCtxs ---------------------------------------------------------------------------------
def _asset(coin) -> dict:
    leverage = MAX_LEVERAGE.get(coin.base, DEFAULT_MAX_LEVERAGE)
    return {"szDecimals": _sz_decimals(coin.amount_step), "name": coin.base, "maxLeverage": leverage,
            "marginTableId": leverage}


def asset_context(quote, dropped=frozenset()) -> dict:
    """One market's context as metaAndAssetCtxs lists it, from the market's true quote, less the fields a
    drop_fields fault takes out (null: the fault stands for a value the answer lacks, even where Hyperliquid
    itself would have written "0.0")."""
    shown = {f: None if f in dropped else getattr(quote, f)
             for f in ("bid", "ask", "mark_price", "index_price", "funding_rate")}
    impact = (None, None) if shown["bid"] is None or shown["ask"] is None else impact_prices(quote)
    volume = quote.volume_24h
    funding = None if "funding_rate" in dropped else "0.0" if quote.funding_rate is None else _s(quote.funding_rate)
    return {
        "funding": funding,
        "openInterest": _s(quote.open_interest) if volume is not None else "0.0",
        "prevDayPx": _s(quote.open),
        "dayNtlVlm": _s(quote.quote_volume_24h) if volume is not None else "0.0",
        "premium": _premium(impact, shown["index_price"]),
        "oraclePx": _s(shown["index_price"]),
        "markPx": _s(shown["mark_price"]),
        "midPx": None if shown["bid"] is None or shown["ask"] is None else _s(mid_price(quote)),
        "impactPxs": None if impact[0] is None else [_s(impact[0]), _s(impact[1])],
        "dayBaseVlm": _s(volume) if volume is not None else "0.0",
    }


def _dex(body) -> Reply | None:
    """Only the first perp dex (named "") exists here: perpDexs lists no builder-deployed one."""
    if body.get("dex") not in (None, ""):
        return _unprocessable(f"Unknown perp dex {body['dex']!r}")
    return None


def meta(req, body) -> dict | Reply:
    return _dex(body) or {"universe": [_asset(c) for c in req.listed()], "marginTables": _margin_tables(req)}


def _margin_tables(req) -> list:
    leverages = sorted({MAX_LEVERAGE.get(c.base, DEFAULT_MAX_LEVERAGE) for c in req.listed()})
    return [[lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
            for lev in leverages]


def meta_and_asset_ctxs(req, body) -> list | Reply:
    bad = _dex(body)
    if bad:
        return bad
    coins = req.listed()
    contexts = [asset_context(req.market.quote(req.exchange, c.base, req.tick), req.dropped) for c in coins]
    return [{"universe": [_asset(c) for c in coins]}, contexts]


# -- l2Book -------------------------------------------------------------------------------------------
def _level_orders(amount: str) -> int:
    """`n`, the orders at a level: deterministic from its size."""
    return 1 + int(Decimal(amount).as_tuple().digits[-1]) % 7


def l2_book(req, body) -> dict | None | Reply:
    coin = body.get("coin")
    if not isinstance(coin, str):
        return _unprocessable("Failed to deserialize the JSON body into the target type: missing field `coin`")
    if coin not in {c.base for c in req.listed()}:
        return None   # Hyperliquid answers an unknown coin with null (HTTP 200)
    q = req.quote(coin)
    levels = [[{"px": px, "sz": sz, "n": _level_orders(sz)} for px, sz in q.book.levels(side, BOOK_LEVELS, "base")]
              for side in ("bids", "asks")]
    return {"coin": coin, "time": q.timestamp, "levels": levels}


# -- fundingHistory -----------------------------------------------------------------------------------
def _time_field(body, name: str, default: int | None = None) -> int | Reply:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        problem = "missing field" if value is None else "invalid type: expected u64, for field"
        return _unprocessable(f"Failed to deserialize the JSON body into the target type: {problem} `{name}`")
    return value


def funding_history(req, body) -> list | Reply:
    """A coin's settled funding from startTime to endTime (inclusive), oldest first, the first 500."""
    coin = body.get("coin")
    start, end = _time_field(body, "startTime"), _time_field(body, "endTime", req.market.now_ms())
    if not isinstance(coin, str):
        return _unprocessable("Failed to deserialize the JSON body into the target type: missing field `coin`")
    bad = next((value for value in (start, end) if isinstance(value, Reply)), None)
    if bad:
        return bad
    if coin not in {c.base for c in req.listed()}:
        return []
    settled = req.market.settlements(req.exchange, coin, start, end)[:FUNDING_HISTORY_MOST]
    return [{"coin": coin, "fundingRate": _s(s.rate), "premium": _s(s.rate * 8 - Decimal("0.0001")),
             "time": s.funding_time} for s in settled]


# -- the rest of what ccxt may ask ---------------------------------------------------------------------
def all_mids(req, body) -> dict:
    return {c.base: _s(mid_price(req.quote(c.base))) for c in req.listed()}


def exchange_status(req, body) -> dict:
    """The server's clock (ccxt's fetch_time), and no special status (fetch_status: ok)."""
    return {"time": int(time.time() * 1000), "specialStatuses": None}


def spot_meta(req, body) -> dict:
    tokens = [{"name": name, "szDecimals": sz, "weiDecimals": wei, "index": i, "tokenId": f"0x{i:032x}",
               "isCanonical": True, "evmContract": None, "fullName": None}
              for i, (name, sz, wei) in enumerate((("USDC", 8, 8), (SPOT_TOKEN, 0, 5)))]
    return {"tokens": tokens, "universe": [{"name": f"{SPOT_TOKEN}/USDC", "tokens": [1, 0], "index": 0,
                                            "isCanonical": True}]}


def spot_meta_and_asset_ctxs(req, body) -> list:
    ctx = {"prevDayPx": "0.2", "dayNtlVlm": "8906.0", "markPx": "0.21", "midPx": "0.2105",
           "circulatingSupply": "598000000.0", "coin": f"{SPOT_TOKEN}/USDC", "totalSupply": "600000000.0",
           "dayBaseVlm": "42400.0"}
    return [spot_meta(req, body), [ctx]]


def perp_dexs(req, body) -> list:
    return [None]   # the first perp dex, and no builder-deployed (HIP-3) one


INFO_TYPES = {
    "metaAndAssetCtxs": meta_and_asset_ctxs,
    "meta": meta,
    "l2Book": l2_book,
    "allMids": all_mids,
    "exchangeStatus": exchange_status,
    "spotMeta": spot_meta,
    "spotMetaAndAssetCtxs": spot_meta_and_asset_ctxs,
    "perpDexs": perp_dexs,
    "fundingHistory": funding_history,
}


def info(req):
    try:
        body = _body(req)
    except BadBody as e:
        return _unprocessable(str(e))
    handler = INFO_TYPES.get(body["type"])
    if handler is None:
        known = ", ".join(f"`{name}`" for name in INFO_TYPES)
        return _unprocessable(f"Failed to deserialize the JSON body into the target type: unknown variant "
                              f"`{body['type']}`, expected one of {known}")
    return handler(req, body)   # None is sent as `null`: an unknown coin's book


ROUTES = {"/info": info}


# -- the shapes the server core's bad_level and bad_row faults break -------------------------------------
# Hyperliquid's levels are {"px", "sz", "n"} objects and its bulk answer a [meta, contexts] pair: the core's
# generic breakers find no level there, and would garble the meta (the whole answer) instead of one row.
def without_first_size(body) -> bool:
    """bad_level: the first bid of an l2Book answer has no size (null)."""
    try:
        body["levels"][0][0]["sz"] = None
    except (TypeError, KeyError, IndexError):
        return False
    return True


def first_row_garbled(body) -> bool:
    """bad_row: metaAndAssetCtxs's first asset context is a string instead of an object (the universe, which
    only names the assets, stays whole)."""
    try:
        contexts = body[1]
        if isinstance(contexts, list) and contexts and isinstance(contexts[0], dict):
            contexts[0] = "garbled"
            return True
    except (TypeError, KeyError, IndexError):
        pass
    return False
