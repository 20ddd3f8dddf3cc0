"""From ccxt's parsed structures to our messages: one board row per perpetual, and a watched symbol's
snapshot built from its board row plus its book. Plain functions, no network: the worker's cycle calls
them, and tests/unit checks them against hand-made ccxt structures.

Units are those of the snapshot everywhere: amounts in base currency (contracts times the market's
contract size where the exchange quotes contracts), times in ms, funding intervals in hours.
"""
from __future__ import annotations

from common.board import BoardRow
from common.logs import printable
from common.models import FuturesData, OrderbookData, TickerData


class MissingValues(ValueError):
    """A snapshot that lacks what every snapshot must carry (bid, ask, last)."""


def interval_hours(interval) -> float | None:
    """ccxt's funding interval ('8h', '1h') as hours."""
    if isinstance(interval, str) and interval.endswith("h") and interval[:-1].isdigit() and interval[:-1] != "0":
        return float(interval[:-1])
    return None


def row_interval(funding: dict, hours: float | None) -> float | None:
    """A funding structure's own interval in hours; `hours` where it says none; None where it says one
    that cannot be read (a guess would pair the wrong legs: null is never paired)."""
    raw = funding.get("interval")
    return hours if raw is None else interval_hours(raw)


def interval_problem(funding: dict) -> str | None:
    """Why a funding structure's interval cannot be read, or None (also when it has none)."""
    raw = funding.get("interval")
    if raw is None or interval_hours(raw) is not None:
        return None
    return f"funding interval '{printable(raw, 40)}' cannot be read"


def listed_intervals(answer: dict) -> tuple[dict[str, float | None], dict[str, str]]:
    """Binance's fundingInfo as ccxt parses it ({symbol: funding structure}, only the symbols off the default
    schedule) -> ({symbol: hours, None where unreadable}, {symbol: why its interval cannot be read})."""
    hours, problems = {}, {}
    for symbol, row in answer.items():
        hours[symbol] = interval_hours(row.get("interval")) if isinstance(row, dict) else None
        if hours[symbol] is None:
            problems[symbol] = ((interval_problem(row) or "no funding interval in its fundingInfo row")
                                if isinstance(row, dict) else "its fundingInfo row is not an object")
    return hours, problems


def _first(*values):
    """The first value that is there: ccxt writes a missing number as None (0 means missing for prices)."""
    for value in values:
        if value:
            return value
    return None


def open_interest(market: dict, ticker: dict, field: tuple[str, bool] | None) -> float | None:
    """The open interest a ticker's raw row carries, in base units: `field` is (the row's field, whether it
    counts contracts), from the venue's table; None where the bulk rows carry none."""
    if field is None:
        return None
    name, in_contracts = field
    raw = (ticker.get("info") or {}).get(name)
    if raw is None or raw == "":
        return None
    value = float(raw)
    return value * (market.get("contractSize") or 1) if in_contracts else value


def base_volume(ticker: dict, field: str | None) -> float | None:
    """The day's volume in base units: ccxt's baseVolume (base units on the first five), or the raw field
    the venue's table names where ccxt's holds contracts (OKX) or nothing (Hyperliquid)."""
    if field is None:
        return ticker.get("baseVolume")
    raw = (ticker.get("info") or {}).get(field)
    return None if raw is None or raw == "" else float(raw)


def board_row(symbol: str, market: dict, ticker: dict, funding: dict, hours: float | None,
              next_funding_field: str = "fundingTimestamp", open_interest_field: tuple[str, bool] | None = None,
              base_volume_field: str | None = None, impact_prices: bool = False,
              rotated_open_interest: tuple[float, int] | None = None) -> BoardRow:
    """One perpetual's row from ccxt's ticker and funding structures (either may be {}). `hours` is the
    symbol's own funding interval where the funding structure does not say it (None: unknown). With
    `impact_prices` the ticker's bid/ask are impact prices (Hyperliquid), never the top of the book. Raises on
    a malformed value (pydantic's ValidationError names the field). `rotated_open_interest`: (amount, time)
    where the open interest comes per symbol (Binance)."""
    bid, ask = ticker.get("bid"), ticker.get("ask")
    interest, interest_time = rotated_open_interest or (open_interest(market, ticker, open_interest_field), None)
    return BoardRow(
        symbol=symbol,
        bid=None if impact_prices else bid, ask=None if impact_prices else ask, last=ticker.get("last"),
        impact_bid=bid if impact_prices else None, impact_ask=ask if impact_prices else None,
        volume_24h=base_volume(ticker, base_volume_field),
        mark_price=_first(funding.get("markPrice"), ticker.get("markPrice")),
        index_price=_first(funding.get("indexPrice"), ticker.get("indexPrice")),
        funding_rate=funding.get("fundingRate"),
        next_funding_time=funding.get(next_funding_field) or None,  # binance: 0 = none
        funding_interval_hours=row_interval(funding, hours),
        contract_size=float(market.get("contractSize") or 1),
        open_interest=interest, open_interest_time=interest_time)


def base_levels(levels: list, contract_size: float) -> list:
    """ccxt's levels as (price, base amount): as they are where they already are (validation makes the
    snapshot's own tuples), else converted from contracts, or cut to two entries where ccxt adds a count."""
    if contract_size == 1 and (not levels or len(levels[0]) == 2):
        return levels
    # Rounded to 12 places: 271 contracts of 0.0001 BTC are 0.0271 BTC, not 0.027100000000000003.
    return [(level[0], round(level[1] * contract_size, 12)) for level in levels]


def cut_book(book: dict, depth) -> dict:
    """The book cut to the `depth` levels a side that were asked for: an exchange may send more (HTX's fixed
    150, a gear rounded up), and the snapshot promises the configured depth. "max" or None: as it came."""
    if not isinstance(depth, int) or isinstance(depth, bool):
        return book
    if len(book["bids"]) <= depth and len(book["asks"]) <= depth:
        return book
    return {**book, "bids": book["bids"][:depth], "asks": book["asks"][:depth]}


def snapshot(exchange: str, row: BoardRow, book: dict, extras: dict, now_ms: int) -> FuturesData:
    """A watched symbol's snapshot: its board row's values, its book in base units, and the per-symbol
    extras (fields no bulk call carries, e.g. HTX's mark price). bid/ask fall back to the best levels.
    Raises MissingValues without bid, ask or last, ValidationError on a malformed value."""
    size = row.contract_size or 1
    bids, asks = base_levels(book["bids"], size), base_levels(book["asks"], size)
    bid = row.bid or (bids[0][0] if bids else None)
    ask = row.ask or (asks[0][0] if asks else None)
    missing = [name for name, value in (("bid", bid), ("ask", ask), ("last", row.last)) if value is None]
    if missing:
        raise MissingValues(f"no {', '.join(missing)}")
    return FuturesData(
        exchange=exchange, symbol=row.symbol, timestamp=now_ms,
        ticker=TickerData(bid=bid, ask=ask, last=row.last, volume_24h=row.volume_24h),
        orderbook=OrderbookData(bids=bids, asks=asks, timestamp=book.get("timestamp") or now_ms),
        funding_rate=row.funding_rate,
        next_funding_time=row.next_funding_time,
        mark_price=row.mark_price or extras.get("markPrice"),
        extra={"contract_size": size, "index_price": row.index_price or extras.get("indexPrice"),
               "funding_interval_hours": row.funding_interval_hours})
