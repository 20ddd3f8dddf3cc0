"""The history store (SPEC section 14): settled funding and board samples in one SQLite file, and the realized
funding arithmetic the scanner ranks by.

The tables are a contract (pandas, DuckDB or sqlite3 read them directly; columns may be added, never renamed):
* `settlements(exchange, symbol, funding_time, rate, interval_hours, base)`, key (exchange, symbol,
  funding_time).
* `samples(ts, exchange, symbol, bid, ask, mark_price, index_price, funding_rate, funding_interval_hours,
  open_interest, volume_24h, base)`, key (exchange, symbol, ts): a board delivered twice (a recorder
  restart) stores one sample.
* `legs(exchange, symbol, base)`, indexed by base: every leg ever stored, so that one asset's history is
  `legs JOIN samples USING (exchange, symbol) WHERE base = ?`. `base` is the asset ('BTC' of
  'BTC/USDC:USDC', as the scanner pairs them); it is also a column of both tables above, for readers who
  filter by it directly (a scan: the legs table is the indexed way).
* `coverage(exchange, symbol, complete_from)`: the history of that leg holds every settlement from
  `complete_from` (ms) on; a realized window reaching further back is null.
Both big tables are stored in the order of their key (WITHOUT ROWID): one leg's 30 days are adjacent pages
(a rowid table with an index on (base, ts) read the 60k samples of a 7-leg asset five times slower), the
key is the only index (a second one on 30M samples would add a third to the file), and pruning deletes the
head of each leg's range rather than scanning the table.
Times are ms since the epoch; rates are fractions per funding interval.

Decisions where the issue is silent:
* A batch with one invalid row is refused whole (ValueError naming the row and the problem) and writes
  nothing: the caller (the recorder) filters with `settlement_problem` / `sample_problem` and says why.
* `interval_hours` may be null (the venue did not say): the rate is still stored, and the realized APR
  does not need the interval.
* `prune` raises every coverage to the cut: history that was deleted no longer covers a window.
* `history_for_base` takes both ends inclusive and adds each leg's `complete_from` (null when unknown).
"""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence

from common.models import SYMBOL_LENGTH
from common.scan import asset_of

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000  # a writer's commit takes milliseconds; seconds of waiting means something is stuck
HOUR_MS = 3_600_000
HOURS_PER_YEAR = 8760
WINDOWS = {"1d": 24, "3d": 72, "7d": 168, "30d": 720}  # name -> hours, as the API names them
SAMPLE_FIELDS = ("bid", "ask", "mark_price", "index_price", "funding_rate", "funding_interval_hours",
                 "open_interest", "volume_24h")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settlements (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, funding_time INTEGER NOT NULL,
    rate REAL NOT NULL, interval_hours REAL, base TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, funding_time)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    ts INTEGER NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
    bid REAL, ask REAL, mark_price REAL, index_price REAL, funding_rate REAL, funding_interval_hours REAL,
    open_interest REAL, volume_24h REAL, base TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS legs (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, base TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS legs_by_base ON legs (base);
CREATE TABLE IF NOT EXISTS coverage (
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, complete_from INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol)) WITHOUT ROWID;
"""


class Pruned(NamedTuple):
    samples: int
    settlements: int


# ---------------------------------------------------------------------------------------------- opening

def open_history(path: str | Path) -> sqlite3.Connection:
    """The history database at `path`, created with its schema when missing (idempotent: any number of
    processes may open it at once). WAL, so that the scanner's reads never wait for the recorder's writes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError(f"{path}: the history database cannot use WAL journaling")
        # With WAL, NORMAL may lose the last commits to a power cut but never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        _create_or_migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_or_migrate(conn: sqlite3.Connection, path) -> None:
    # IMMEDIATE: two processes starting together must not both read version 0 and both create.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"{path}: history schema version {version} is newer than this code's "
                                        f"{SCHEMA_VERSION}; upgrade futures_scan")
        if version < SCHEMA_VERSION:  # 0: a new file; later versions add their migrations here
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------------------------- validation

def _is_time(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _name_problem(what: str, value) -> Optional[str]:
    if not isinstance(value, str) or not value or len(value) > SYMBOL_LENGTH or not value.isprintable():
        return f"{what} must be a non-empty printable string of at most {SYMBOL_LENGTH} characters, " \
               f"got {value!r:.80}"
    return None


def settlement_problem(row) -> Optional[str]:
    """Why a settlement ({"symbol", "funding_time", "rate", "interval_hours"}) cannot be stored, or None."""
    if not isinstance(row, Mapping):
        return f"a settlement must be an object, got {type(row).__name__}"
    problem = _name_problem("symbol", row.get("symbol"))
    if problem:
        return problem
    if not _is_time(row.get("funding_time")):
        return f"funding_time must be a non-negative integer (ms), got {row.get('funding_time')!r:.40}"
    if not _is_number(row.get("rate")):
        return f"rate must be a finite number, got {row.get('rate')!r:.40}"
    hours = row.get("interval_hours")
    if hours is not None and not (_is_number(hours) and hours > 0):
        return f"interval_hours must be a positive number or null, got {hours!r:.40}"
    return None


def sample_problem(row) -> Optional[str]:
    """Why a board row cannot be stored as a sample, or None."""
    if not isinstance(row, Mapping):
        return f"a sample must be an object, got {type(row).__name__}"
    problem = _name_problem("symbol", row.get("symbol"))
    if problem:
        return problem
    for name in SAMPLE_FIELDS:
        value = row.get(name)
        if value is not None and not _is_number(value):
            return f"{name} must be a finite number or null, got {value!r:.40}"
    return None


def _refuse_bad(rows: list, problem_of, what: str) -> None:
    for index, row in enumerate(rows):
        problem = problem_of(row)
        if problem:
            symbol = row.get("symbol") if isinstance(row, Mapping) else None
            raise ValueError(f"{what} {index} ({symbol!r:.70}): {problem}; nothing stored")


def _check_exchange(exchange) -> None:
    problem = _name_problem("exchange", exchange)
    if problem:
        raise ValueError(problem)


def _check_time(name: str, value) -> None:
    if not _is_time(value):
        raise ValueError(f"{name} must be a non-negative integer (ms), got {value!r:.40}")


# ---------------------------------------------------------------------------------------------- writers

def _changes(conn: sqlite3.Connection, statement: str, rows, legs=()) -> int:
    """Run `statement` for every row, and note the `legs` [(exchange, symbol, base)], in one transaction;
    the rows the statement inserted, updated or deleted."""
    with conn:
        conn.executemany("INSERT OR IGNORE INTO legs (exchange, symbol, base) VALUES (?, ?, ?)", legs)
        before = conn.total_changes
        conn.executemany(statement, rows)
        return conn.total_changes - before


def _legs(exchange: str, rows: list[Mapping]) -> list[tuple[str, str, str]]:
    return [(exchange, symbol, asset_of(symbol)) for symbol in {row["symbol"] for row in rows}]


def store_settlements(conn: sqlite3.Connection, exchange: str, rows: Iterable[Mapping]) -> int:
    """Store an exchange's settlements (funding message rows); how many rows were new or corrected. A repeat
    changes nothing; another rate or interval for a stored (symbol, funding_time) overwrites it."""
    _check_exchange(exchange)
    rows = list(rows)
    _refuse_bad(rows, settlement_problem, "settlement")
    values = [(exchange, row["symbol"], row["funding_time"], float(row["rate"]),
               None if row.get("interval_hours") is None else float(row["interval_hours"]), asset_of(row["symbol"]))
              for row in rows]
    # The WHERE makes an unchanged repeat a no-op, so that the count says what a delivery really changed.
    return _changes(conn, """
        INSERT INTO settlements (exchange, symbol, funding_time, rate, interval_hours, base)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (exchange, symbol, funding_time) DO UPDATE
            SET rate = excluded.rate, interval_hours = excluded.interval_hours
            WHERE rate IS NOT excluded.rate OR interval_hours IS NOT excluded.interval_hours""",
                    values, _legs(exchange, rows))


def note_coverage(conn: sqlite3.Connection, exchange: str, symbol: str, from_ms: int) -> None:
    """Record that (exchange, symbol)'s history holds every settlement from `from_ms` on (a backfill's start);
    the earliest noted stays."""
    _check_exchange(exchange)
    problem = _name_problem("symbol", symbol)
    if problem:
        raise ValueError(problem)
    _check_time("from_ms", from_ms)
    _changes(conn, """
        INSERT INTO coverage (exchange, symbol, complete_from) VALUES (?, ?, ?)
        ON CONFLICT (exchange, symbol) DO UPDATE SET complete_from = min(complete_from, excluded.complete_from)""",
             [(exchange, symbol, from_ms)], [(exchange, symbol, asset_of(symbol))])


def store_samples(conn: sqlite3.Connection, ts: int, exchange: str, rows: Iterable[Mapping]) -> int:
    """Store one sample of each board row (a dict with BoardRow's names) at `ts`; how many were written. A
    second sample of a leg at the same `ts` replaces the first."""
    _check_exchange(exchange)
    _check_time("ts", ts)
    rows = list(rows)
    _refuse_bad(rows, sample_problem, "sample")
    values = [(ts, exchange, row["symbol"], *(_float(row.get(name)) for name in SAMPLE_FIELDS),
               asset_of(row["symbol"])) for row in rows]
    return _changes(conn, f"""
        INSERT OR REPLACE INTO samples (ts, exchange, symbol, {", ".join(SAMPLE_FIELDS)}, base)
        VALUES (?, ?, ?, {", ".join("?" * len(SAMPLE_FIELDS))}, ?)""", values, _legs(exchange, rows))


def _float(value) -> Optional[float]:
    return None if value is None else float(value)


def prune(conn: sqlite3.Connection, older_than_ms: int) -> Pruned:
    """Delete the samples and settlements older than `older_than_ms` (the retention's cut) in one
    transaction, leg by leg (each a range at the head of the leg's key); coverage then starts at the cut
    at the earliest, and a leg with nothing left is forgotten."""
    _check_time("older_than_ms", older_than_ms)
    with conn:
        legs = [(exchange, symbol, older_than_ms)
                for exchange, symbol in conn.execute("SELECT exchange, symbol FROM legs")]
        before = conn.total_changes
        conn.executemany("DELETE FROM samples WHERE exchange = ? AND symbol = ? AND ts < ?", legs)
        samples = conn.total_changes - before
        conn.executemany("DELETE FROM settlements WHERE exchange = ? AND symbol = ? AND funding_time < ?", legs)
        settlements = conn.total_changes - before - samples
        conn.execute("""DELETE FROM legs
            WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.exchange = legs.exchange AND s.symbol = legs.symbol)
              AND NOT EXISTS (SELECT 1 FROM settlements s
                              WHERE s.exchange = legs.exchange AND s.symbol = legs.symbol)""")
        conn.execute("UPDATE coverage SET complete_from = ? WHERE complete_from < ?",
                     (older_than_ms, older_than_ms))
    return Pruned(samples, settlements)


# ---------------------------------------------------------------------------------------------- readers

def open_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing history database (the scanner's: the recorder writes it). It never
    creates the file, its folder or the schema: sqlite3.OperationalError when the file is missing or unreadable,
    sqlite3.DatabaseError when it is not a history database of this schema (not one yet, or a newer one)."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"{path}: history schema version {version}, this code reads "
                                        f"{SCHEMA_VERSION}" + ("; upgrade futures_scan" if version > SCHEMA_VERSION
                                                               else " (the recorder has not created it yet)"))
    except BaseException:
        conn.close()
        raise
    return conn


def settlements_since(conn: sqlite3.Connection, exchange: str, symbol: str, since_ms: int) -> list[tuple]:
    """[(funding_time, rate, interval_hours), ...] of one leg with funding_time >= since_ms, oldest first."""
    return conn.execute("""
        SELECT funding_time, rate, interval_hours FROM settlements
        WHERE exchange = ? AND symbol = ? AND funding_time >= ? ORDER BY funding_time""",
                        (exchange, symbol, since_ms)).fetchall()


def complete_from(conn: sqlite3.Connection, exchange: str, symbol: str) -> Optional[int]:
    """Since when (ms) the leg's history is complete, None when unknown."""
    row = conn.execute("SELECT complete_from FROM coverage WHERE exchange = ? AND symbol = ?",
                       (exchange, symbol)).fetchone()
    return row[0] if row else None


def history_for_base(conn: sqlite3.Connection, base: str, from_ms: int, to_ms: int) -> dict:
    """Every leg of one base asset with history between from_ms and to_ms (both included), in the shape of
    `GET /api/history/{base}`: legs ordered by (exchange, symbol), their settlements [(funding_time, rate,
    interval_hours), ...] and samples [(ts, bid, ask, mark_price, funding_rate, funding_interval_hours), ...]
    oldest first (tuples: JSON arrays once dumped), and each leg's complete_from (None when unknown)."""
    base = asset_of(base)
    legs = [_leg_history(conn, exchange, symbol, from_ms, to_ms) for exchange, symbol in conn.execute(
        "SELECT exchange, symbol FROM legs WHERE base = ? ORDER BY exchange, symbol", (base,)).fetchall()]
    return {"symbol": base, "from": from_ms, "to": to_ms,
            "legs": [leg for leg in legs if leg["settlements"] or leg["samples"]]}


def _leg_history(conn: sqlite3.Connection, exchange: str, symbol: str, from_ms: int, to_ms: int) -> dict:
    # One range of each table's key per leg: the rows come back as tuples without their leg's names, the
    # cheapest form for Python to build (it is most of a 30-day query's time).
    leg = (exchange, symbol, from_ms, to_ms)
    return {"exchange": exchange, "symbol": symbol, "complete_from": complete_from(conn, exchange, symbol),
            "settlements": conn.execute("""
                SELECT funding_time, rate, interval_hours FROM settlements
                WHERE exchange = ? AND symbol = ? AND funding_time BETWEEN ? AND ? ORDER BY funding_time""",
                                        leg).fetchall(),
            "samples": conn.execute("""
                SELECT ts, bid, ask, mark_price, funding_rate, funding_interval_hours FROM samples
                WHERE exchange = ? AND symbol = ? AND ts BETWEEN ? AND ? ORDER BY ts""", leg).fetchall()}


# ---------------------------------------------------------------------------------------------- arithmetic

def realized_apr(settlements: Iterable[Sequence], now_ms: int, window_hours: float,
                 complete_from_ms: Optional[int]) -> Optional[float]:
    """The yearly rate actually paid over the window: the sum of the rates of the settlements
    ([funding_time, rate, ...]) with funding_time in (now - W, now], x 8760 / W. None unless the history
    is complete from now - W on (complete_from_ms <= now - W; None when unknown)."""
    _check_time("now_ms", now_ms)
    if not (_is_number(window_hours) and window_hours > 0):
        raise ValueError(f"window_hours must be a positive number, got {window_hours!r:.40}")
    start = now_ms - window_hours * HOUR_MS
    rates = [_rate(settlement) for settlement in settlements]
    return _window_apr(math.fsum(rate for funding_time, rate in rates if start < funding_time <= now_ms),
                       now_ms, window_hours, complete_from_ms)


def _window_apr(total: float, now_ms: int, window_hours: float, complete_from_ms: Optional[int]) -> Optional[float]:
    """The rule both the plain and the database form follow: the window's sum per year, when covered."""
    if complete_from_ms is None or complete_from_ms > now_ms - window_hours * HOUR_MS:
        return None
    return total * HOURS_PER_YEAR / window_hours


def _rate(settlement) -> tuple[int, float]:
    """(funding_time, rate) of one settlement, validated: a wrong rate would silently skew every window."""
    if not isinstance(settlement, Sequence) or len(settlement) < 2:
        raise ValueError(f"a settlement must be [funding_time, rate, ...], got {settlement!r:.80}")
    funding_time, rate = settlement[0], settlement[1]
    if not _is_time(funding_time):
        raise ValueError(f"settlement funding_time must be a non-negative integer (ms), "
                         f"got {funding_time!r:.40}")
    if not _is_number(rate):
        raise ValueError(f"settlement at funding_time {funding_time}: rate {rate!r:.40} is not a finite number")
    return funding_time, rate


def realized_aprs(settlements: Iterable[Sequence], now_ms: int,
                  complete_from_ms: Optional[int]) -> dict[str, Optional[float]]:
    """{"1d": ..., "3d": ..., "7d": ..., "30d": ...}: realized_apr over each window."""
    settlements = list(settlements)
    return {name: realized_apr(settlements, now_ms, hours, complete_from_ms) for name, hours in WINDOWS.items()}


def realized_spread(long: Mapping[str, Optional[float]],
                    short: Mapping[str, Optional[float]]) -> dict[str, Optional[float]]:
    """Per window, what the short leg earned minus what the long leg paid (None when either is unknown)."""
    return {name: None if long.get(name) is None or short.get(name) is None else short[name] - long[name]
            for name in WINDOWS}


def realized_by_leg(conn: sqlite3.Connection, now_ms: int) -> dict[tuple[str, str], dict[str, Optional[float]]]:
    """realized_aprs of every leg the database knows, {(exchange, symbol): {"1d": ..., ...}}, summed by SQLite
    in one pass over the longest window's settlements: the scanner's whole market (~500k settlements in 30
    days) would take seconds to load into Python. A leg absent from the answer has no history (all null)."""
    _check_time("now_ms", now_ms)
    sums = ", ".join(f"total(CASE WHEN funding_time > :now - {hours * HOUR_MS} THEN rate END)"
                     for hours in WINDOWS.values())
    longest = max(WINDOWS.values()) * HOUR_MS
    rows = conn.execute(f"""
        SELECT legs.exchange, legs.symbol, coverage.complete_from, {sums}
        FROM legs LEFT JOIN coverage ON coverage.exchange = legs.exchange AND coverage.symbol = legs.symbol
        LEFT JOIN settlements ON settlements.exchange = legs.exchange AND settlements.symbol = legs.symbol
            AND settlements.funding_time > :now - {longest} AND settlements.funding_time <= :now
        GROUP BY legs.exchange, legs.symbol""", {"now": now_ms})
    return {(exchange, symbol): {name: _window_apr(total, now_ms, hours, covered)
                                 for (name, hours), total in zip(WINDOWS.items(), totals)}
            for exchange, symbol, covered, *totals in rows}
