"""The history store (SPEC section 14): settled funding and board samples in one SQLite file, and the realized
funding arithmetic the scanner ranks by.

The tables are a contract (pandas, DuckDB or sqlite3 read them directly; columns may be added, never renamed):
* `settlements(exchange, symbol, funding_time, rate, interval_hours, base)`, key (exchange, symbol,
  funding_time); `base` (e.g. 'BTC' of 'BTC/USDC:USDC') is added so that one asset's history is one indexed
  query.
* `samples(ts, exchange, symbol, bid, ask, mark_price, index_price, funding_rate, funding_interval_hours,
  open_interest, volume_24h, base)`, unique per (exchange, symbol, ts): a board delivered twice (a recorder
  restart) stores one sample. Stored in the order of its key (base, exchange, symbol, ts) (WITHOUT ROWID),
  so that one asset's 30 days are read from adjacent pages: with a rowid table and an index on (base, ts),
  the 60k row lookups of a 7-leg query took five times as long.
* `coverage(exchange, symbol, complete_from)`: the history of that leg holds every settlement from
  `complete_from` (ms) on; a realized window reaching further back is null.
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
CREATE INDEX IF NOT EXISTS settlements_by_base ON settlements (base, funding_time);
CREATE TABLE IF NOT EXISTS samples (
    ts INTEGER NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
    bid REAL, ask REAL, mark_price REAL, index_price REAL, funding_rate REAL, funding_interval_hours REAL,
    open_interest REAL, volume_24h REAL, base TEXT NOT NULL,
    PRIMARY KEY (base, exchange, symbol, ts)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS samples_by_leg ON samples (exchange, symbol, ts);
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

def _changes(conn: sqlite3.Connection, statement: str, rows) -> int:
    """Run `statement` for every row in one transaction; the rows it inserted, updated or deleted."""
    with conn:
        before = conn.total_changes
        conn.executemany(statement, rows)
        return conn.total_changes - before


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
            WHERE rate IS NOT excluded.rate OR interval_hours IS NOT excluded.interval_hours""", values)


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
             [(exchange, symbol, from_ms)])


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
        VALUES (?, ?, ?, {", ".join("?" * len(SAMPLE_FIELDS))}, ?)""", values)


def _float(value) -> Optional[float]:
    return None if value is None else float(value)


def prune(conn: sqlite3.Connection, older_than_ms: int) -> Pruned:
    """Delete the samples and settlements older than `older_than_ms` (the retention's cut) in one
    transaction; coverage then starts at the cut at the earliest."""
    _check_time("older_than_ms", older_than_ms)
    with conn:
        samples = conn.execute("DELETE FROM samples WHERE ts < ?", (older_than_ms,)).rowcount
        settlements = conn.execute("DELETE FROM settlements WHERE funding_time < ?", (older_than_ms,)).rowcount
        conn.execute("UPDATE coverage SET complete_from = ? WHERE complete_from < ?",
                     (older_than_ms, older_than_ms))
    return Pruned(samples, settlements)


# ---------------------------------------------------------------------------------------------- readers

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
    """Every leg of one base asset between from_ms and to_ms (both included), in the shape of
    `GET /api/history/{base}`: legs ordered by (exchange, symbol), their settlements [(funding_time, rate,
    interval_hours), ...] and samples [(ts, bid, ask, mark_price, funding_rate, funding_interval_hours), ...]
    oldest first (tuples: JSON arrays once dumped), and each leg's complete_from (None when unknown)."""
    base = asset_of(base)
    window = (from_ms, to_ms)
    legs = conn.execute("""
        SELECT exchange, symbol FROM settlements WHERE base = ? AND funding_time BETWEEN ? AND ?
        UNION SELECT exchange, symbol FROM samples WHERE base = ? AND ts BETWEEN ? AND ?
        ORDER BY exchange, symbol""", (base, *window, base, *window)).fetchall()
    return {"symbol": base, "from": from_ms, "to": to_ms, "legs": [
        {"exchange": exchange, "symbol": symbol, "complete_from": complete_from(conn, exchange, symbol),
         "settlements": conn.execute("""
             SELECT funding_time, rate, interval_hours FROM settlements
             WHERE exchange = ? AND symbol = ? AND funding_time BETWEEN ? AND ? ORDER BY funding_time""",
                                     (exchange, symbol, *window)).fetchall(),
         "samples": conn.execute("""
             SELECT ts, bid, ask, mark_price, funding_rate, funding_interval_hours FROM samples
             WHERE base = ? AND exchange = ? AND symbol = ? AND ts BETWEEN ? AND ? ORDER BY ts""",
                                 (base, exchange, symbol, *window)).fetchall()}
        for exchange, symbol in legs]}


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
    if complete_from_ms is None or complete_from_ms > start:
        return None
    return math.fsum(rate for funding_time, rate in rates if start < funding_time <= now_ms) \
        * HOURS_PER_YEAR / window_hours


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
