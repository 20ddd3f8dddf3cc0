"""scripts/scan.py's table: the columns, their priority, and which of them fit the terminal's width.

Every shown column is as wide as its widest rendered cell, so no number is ever cut; a column that does not fit
is left out whole, in reverse priority order, and the caption names it. Adding a column is one more entry in
`columns()`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from common.scan import terminal_text

# The view's point (the pair and what it earns) is shown whatever the width; when even these do not fit, the
# exchange-supplied texts fold onto a second line rather than any number being cut.
ALWAYS_SHOWN = 4


@dataclass(frozen=True)
class Column:
    header: str
    priority: int                          # 0 first; the highest are left out first when the width is short
    cell: Callable[[dict, float], "str | Text"]   # (row, the API's timestamp) -> the rendered cell
    text: bool = False                     # exchange-supplied text: left-justified, may fold as a last resort


# -- the arithmetic of fitting ------------------------------------------------------------------------
def table_width(widths: Sequence[int]) -> int:
    """A rich Table's width with its defaults (box with edges, padding 0 1): each column with one space either
    side, and a rule before, between and after the columns."""
    return sum(widths) + 3 * len(widths) + 1 if widths else 0


def natural_width(header: str, cells: Sequence[str | Text]) -> int:
    """The terminal cells a column needs to show its header and every cell whole (wide characters count 2)."""
    return max([cell_len(header)] + [c.cell_len if isinstance(c, Text) else cell_len(c) for c in cells])


def fitting(widths: Sequence[int], width: int, always: int = ALWAYS_SHOWN) -> int:
    """How many columns, taken in priority order (`widths` in that order), fit in `width` terminal cells: the
    longest prefix that fits, never fewer than `always`. A prefix, not the best packing: a narrow column of
    low priority never shows while a wider, more important one is left out."""
    count = 0
    while count < len(widths) and table_width(widths[:count + 1]) <= width:
        count += 1
    return max(count, min(always, len(widths)))


def left_out_note(headers: Sequence[str], full_width: int) -> str:
    """The caption's line naming the columns left out, and the width that would show them all."""
    return f"+ {len(headers)} columns at {full_width}+ columns: {', '.join(headers)}" if headers else ""


# -- formatting ----------------------------------------------------------------------------------------
# Every text that came over the wire (symbols, exchange names, error messages, the URL) goes into the table as
# a rich Text, never as a str: rich reads a str cell as markup, so a symbol like "[link=...]BTC[/link]"
# would become a hyperlink; and terminal_text strips the control characters that could rewrite the screen.
def plain(text, limit: int = 80) -> Text:
    return Text(terminal_text(text, limit))


def number(value) -> float | None:
    """A finite number, else None: the scanner's own API sends numbers, but a number this cannot format
    must cost a cell, never the table."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def pct(value) -> str:
    value = number(value)
    return "–" if value is None else f"{value * 100:.2f}%"


def bps(value) -> str:
    value = number(value)
    return "–" if value is None else f"{value:.1f}"


def until(next_ms, now_ms) -> str:
    next_ms, now_ms = number(next_ms), number(now_ms)
    if next_ms is None or now_ms is None:
        return "–"
    seconds = int(max(0, (next_ms - now_ms) // 1000))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def signed(text: str, value) -> Text:
    value = number(value)
    return Text(text, style="green" if value and value > 0 else "red" if value and value < 0 else "")


def compact(notional: int) -> str:
    """10000 -> 10k, 2500000 -> 2.5M: the notional in a header, short enough to leave room for another column."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if notional >= size:
            return f"{notional / size:.3g}{unit}"
    return str(notional)


# -- the columns ---------------------------------------------------------------------------------------
def cost_cell(notional: str) -> Callable[[dict, float], str]:
    def cell(row: dict, now: float) -> str:
        at = (row["at_size"] or {}).get(notional)
        if not at:
            return "–"
        thin = at["long_fill"] < 1 or at["short_fill"] < 1
        return bps(at["entry_cost_bps"]) + (" thin" if thin else "")
    return cell


def break_even_cell(notional: str) -> Callable[[dict, float], str]:
    def cell(row: dict, now: float) -> str:
        even = number(((row["at_size"] or {}).get(notional) or {}).get("break_even_hours"))
        return "–" if even is None else f"{even:.1f} h"
    return cell


def venue(leg: dict) -> Text:
    """The leg's exchange, and its quote when it is not USDT ("hyperliquid·USDC"): rows are base assets, and a
    USDC perpetual is a different contract from the USDT one on the same exchange."""
    quote = leg.get("quote")
    return plain(leg["exchange"] if quote in (None, "USDT") else f"{leg['exchange']}·{terminal_text(quote, 8)}")


def price_cell(row: dict, now: float) -> Text:
    """The price spread; "no rate" when a cross-quote pair has no USDC/USDT rate to compare its prices at."""
    if row.get("price_note") and number(row["price_spread_bps"]) is None:
        return Text("no rate")
    return signed(bps(row["price_spread_bps"]), row["price_spread_bps"])


def realized_cell(window: str) -> Callable[[dict, float], Text]:
    """The pair's realized APR spread over `window` ("–" when the history does not cover it, or the scanner is
    older than the field)."""
    def cell(row: dict, now: float) -> Text:
        spread = (row.get("realized_apr_spread") or {}).get(window)
        return signed(pct(spread), spread)
    return cell


def age_cell(row: dict, now: float) -> str:
    ages = [a for a in (number(row["long"]["age_seconds"]), number(row["short"]["age_seconds"])) if a is not None]
    return f"{max(ages):.1f}" if ages else "–"


def columns(notionals: Sequence[str]) -> list[Column]:
    """Every column in display order. Priority: the pair and its spreads first, then what the pair actually earned
    over the last 7 days (a spread of one funding cycle may be a spike: this says whether it lasts), the cost of
    entering at the smallest size and its break-even, each leg's APR, the larger sizes, and last the details."""
    head = [
        Column("Symbol", 0, lambda r, now: plain(r["symbol"]), text=True),
        Column("Long", 1, lambda r, now: venue(r["long"]), text=True),
        Column("Long APR", 8, lambda r, now: pct(r["long"]["funding_apr"])),
        Column("Short", 2, lambda r, now: venue(r["short"]), text=True),
        Column("Short APR", 9, lambda r, now: pct(r["short"]["funding_apr"])),
        Column("APR spread", 3, lambda r, now: signed(pct(r["funding_apr_spread"]), r["funding_apr_spread"])),
        Column("Price bps", 4, price_cell),
        # "7d real" (7 wide) rather than "7d realized": at 120 columns it leaves room for both legs' APRs.
        Column("7d real", 5, realized_cell("7d")),
    ]
    sized = []
    for i, notional in enumerate(notionals):
        first = 6 if i == 0 else 10 + 2 * (i - 1)   # the smallest size before the legs' APRs, the others after
        sized += [Column(f"Cost bps @{compact(int(notional))}", first, cost_cell(notional)),
                  Column(f"Break-even @{compact(int(notional))}", first + 1, break_even_cell(notional))]
    last = 10 + 2 * max(len(notionals) - 1, 0)
    tail = [
        Column("Funding in L/S", last, lambda r, now: f"{until(r['long']['next_funding_time'], now)} / "
                                                      f"{until(r['short']['next_funding_time'], now)}"),
        Column("Basis L/S bps", last + 1, lambda r, now: f"{bps(r['long']['basis_bps'])} / {bps(r['short']['basis_bps'])}"),
        Column("Age s", last + 2, age_cell),
    ]
    return head + sized + tail


def shown(cols: Sequence[Column], widths: Sequence[int], width: int) -> list[int]:
    """The indexes (in display order) of the columns that fit in `width`."""
    by_priority = sorted(range(len(cols)), key=lambda i: cols[i].priority)
    count = fitting([widths[i] for i in by_priority], width)
    return sorted(by_priority[:count])


def build_table(data: dict, limit: int, title: str | Text, width: int) -> Table:
    now, rows = data["timestamp"], data["rows"][:limit]
    notionals = sorted({n for row in data["rows"] for n in (row["at_size"] or {})}, key=int)
    cols = columns(notionals)
    cells = [[column.cell(row, now) for column in cols] for row in rows]
    widths = [natural_width(c.header, [r[i] for r in cells]) for i, c in enumerate(cols)]
    keep = shown(cols, widths, width)
    dropped = sorted((i for i in range(len(cols)) if i not in keep), key=lambda i: cols[i].priority)
    caption = Text(f"{len(data['rows'])} pairs · long lowest funding APR, short highest")
    if dropped:
        caption.append("\n" + left_out_note([cols[i].header for i in dropped], table_width(widths)))
    table = Table(title=title if isinstance(title, Text) else plain(title, 300), caption=caption,
                  header_style="bold", expand=False)
    for i in keep:
        # A number's column is never narrower than its widest cell (min_width holds even through rich's last-resort
        # shrinking), so rich never has to cut one; only exchange-supplied text may fold, and only when even the
        # columns always shown do not fit.
        text = cols[i].text
        table.add_column(cols[i].header, justify="left" if text else "right", no_wrap=not text,
                         overflow="fold" if text else "ellipsis", min_width=None if text else widths[i])
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    return table
