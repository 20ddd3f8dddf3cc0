"""Counters and the vision's statistics block, shared by the workers and the controller; the workers'
statistics reports as the controller accepts them, and their totals summed across worker processes."""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Annotated, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.exchanges import VENUES
from common.logs import printable
from common.symbols import MAX_SYMBOLS



def display_name(exchange: str) -> str:
    """'Gate.io' for gateio: the table's name, else the config name."""
    return VENUES[exchange].display_name if exchange in VENUES else exchange


@dataclass
class Counters:
    success: int = 0           # snapshots collected and valid
    errors: int = 0            # symbols (or whole cycles) that could not be collected
    published: int = 0         # snapshots handed to the broker (no publisher confirms: see worker.py)
    publish_failed: int = 0    # snapshots dropped because the broker was unreachable

    def minus(self, other: "Counters") -> "Counters":
        return Counters(*(a - b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def plus(self, other: "Counters") -> "Counters":
        return Counters(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def copy(self) -> "Counters":
        return Counters(**asdict(self))


@dataclass
class WorkerStatistics:
    """What one worker reports about itself; totals since the process started."""
    exchange: str
    pid: int
    started_at: float = field(default_factory=time.time)
    totals: Counters = field(default_factory=Counters)
    cycles: int = 0
    last_cycle_seconds: float = 0.0
    unlisted_symbols: list[str] = field(default_factory=list)  # configured but not listed on the exchange
    symbols_version: int = 0
    shard: str = "1/1"                                          # this process's part of the symbols
    routes: dict = field(default_factory=dict)                  # address -> {requests, failures}
    history: dict | None = None                                 # settled funding's progress (SettledSchedule)
    open_interest_age_seconds: float | None = None              # the oldest rotated open interest (Binance)

    def to_message(self, final: bool = False) -> dict:
        """The report as published; `final` on the last one a stopping process sends (the controller then
        folds its totals at once instead of waiting for it to fall silent)."""
        return {**asdict(self), "timestamp": time.time(), "final": final}


def format_block(window_seconds: float, per_exchange: dict[str, Counters], published: int, failed: int,
                 routes: dict | None = None) -> str:
    """The vision's block; `routes` (address -> {requests, failures}) adds a line per address where a worker
    sends from more than one."""
    lines = [f"=== Statistics (last {window_seconds:.0f}s) ==="]
    for name, c in per_exchange.items():
        lines.append(f"{display_name(name)}: {c.success} success, {c.errors} errors")
    for label, counts in (routes or {}).items() if len(routes or {}) > 1 else ():
        lines.append(f"  via {label}: {counts['requests']} requests, {counts['failures']} failed")
    lines.append(f"RabbitMQ: {published} published, {failed} failed")
    lines.append("=============================")
    return "\n".join(lines)


# -- reports as the controller accepts them ----------------------------------------------------------
# Anyone who may publish to the stats exchange can send anything: every field is typed strictly (no "5" for
# 5, no true for 1), counters are non-negative and bounded, strings and lists have a maximum length.
MAX_REPORT_BYTES = 256 * 1024
MAX_COUNT = 10 ** 15  # far above any real total, far below where sums lose meaning
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0, le=10 ** 11)]
# Strings echoed in get_statistics are printable ASCII: JSON escapes at most double them (a code point outside
# ASCII could take 12 bytes), so that the answer's size bound holds in bytes, not only in characters.
PRINTABLE = r"^[ -~]*$"
MAX_ROUTES = 65  # the machine's own address and up to 64 proxies


class ReportError(ValueError):
    """A worker report the controller does not accept; the message names the problem."""


class ReportTotals(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    success: Count
    errors: Count
    published: Count
    publish_failed: Count

    def counters(self) -> Counters:
        return Counters(self.success, self.errors, self.published, self.publish_failed)


class RouteCounts(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    requests: Count
    failures: Count


class HistoryProgress(BaseModel):
    """A worker's settled funding: perpetuals backfilled of those listed, the oldest settlement (ms)."""
    model_config = ConfigDict(strict=True, extra="ignore")
    symbols_done: Count
    symbols_total: Count
    oldest: int | None = Field(None, ge=0, le=10 ** 14)
    fetches: Count
    settlements: Count


class WorkerReport(BaseModel):
    """A worker's statistics message (WorkerStatistics.to_message(), plus `final` on the last one a
    process sends). Unknown fields are ignored, so that workers may report more than the controller reads."""
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)
    exchange: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    pid: int = Field(ge=1, le=2 ** 31)
    started_at: Seconds
    totals: ReportTotals
    cycles: Count
    last_cycle_seconds: Seconds
    unlisted_symbols: list[Annotated[str, Field(max_length=100, pattern=PRINTABLE)]] = Field(max_length=MAX_SYMBOLS)
    symbols_version: Count
    timestamp: Seconds
    final: bool = False
    shard: str = Field("1/1", pattern=r"^\d{1,3}/\d{1,3}$")
    routes: dict[Annotated[str, Field(max_length=200, pattern=PRINTABLE)], RouteCounts] = \
        Field(default_factory=dict, max_length=MAX_ROUTES)
    history: HistoryProgress | None = None
    open_interest_age_seconds: Seconds | None = None

    @field_validator("shard")
    @classmethod
    def _a_shard_that_can_exist(cls, shard: str) -> str:
        index, count = (int(n) for n in shard.split("/"))
        if not 1 <= index <= count:
            raise ValueError(f"shard {shard}: the index must be from 1 to the count")
        return shard

    @property
    def process(self) -> tuple[int, float]:
        """A worker process: pids are reused, pid and start time together are not."""
        return self.pid, self.started_at


def parse_report(body: bytes) -> WorkerReport:
    """Validate one raw report; ReportError naming the first problem."""
    if len(body) > MAX_REPORT_BYTES:
        raise ReportError(f"report of {len(body)} bytes exceeds {MAX_REPORT_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReportError(f"report is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        return WorkerReport.model_validate_json(text)
    except ValidationError as e:  # also invalid or too deeply nested JSON: pydantic's parser has a depth limit
        errors = e.errors(include_url=False, include_input=False)
        first = errors[0]
        where = printable(".".join(str(part) for part in first["loc"]), 120)  # a dict key is wire text
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ReportError(f"{where + ': ' if where else ''}{first['msg'][:200]}{more}") from None


# -- totals across worker processes ------------------------------------------------------------------
@dataclass
class _LiveProcess:
    totals: Counters
    started_at: float
    last_seen: float  # the receiver's clock, not the report's: reports may come from anywhere


class ExchangeTotals:
    """One exchange's totals: the sum of the latest totals of every worker process that ever reported.

    Each process reports totals since it started, and several run at once (shards), so the latest report
    of each live process is kept, and a process that is gone is folded into `base` (its last totals added
    once, the process forgotten). A process is folded when its final report arrives, when a newer process
    has reported and it has been silent for `stale_after` seconds, or when more than `max_live` processes
    are live (the least recently heard of first). Folding is exact even when wrong: a folded process that
    reports again has its folded totals taken back out of `base` (for the last `max_folded` folded ones)."""

    def __init__(self, stale_after: float, max_live: int = 32, max_folded: int = 256):
        self.stale_after, self.max_live, self.max_folded = stale_after, max_live, max_folded
        self.base = Counters()
        self.live: dict[tuple, _LiveProcess] = {}
        self.folded: OrderedDict[tuple, Counters] = OrderedDict()

    def record(self, report: WorkerReport, now: float) -> None:
        key, totals = report.process, report.totals.counters()
        previous = self.live[key].totals if key in self.live else self.folded.get(key)
        if previous is not None and any(n < 0 for n in asdict(totals.minus(previous)).values()):
            # A process's totals only grow: a report going back is a replay or a forgery, and taking it
            # would make the printed window negative.
            raise ReportError(f"totals of process {report.pid} went back from {asdict(previous)} to {asdict(totals)}")
        if key in self.folded:
            self.base = self.base.minus(self.folded.pop(key))
        self.live[key] = _LiveProcess(totals, report.started_at, now)
        if report.final:
            self._fold(key)
        self._fold_superseded(now)
        while len(self.live) > self.max_live:
            self._fold(min(self.live, key=lambda k: self.live[k].last_seen))

    def total(self) -> Counters:
        total = self.base
        for process in self.live.values():
            total = total.plus(process.totals)
        return total

    def _fold_superseded(self, now: float) -> None:
        if not self.live:
            return
        newest = max(p.started_at for p in self.live.values())
        for key, process in list(self.live.items()):
            if process.started_at < newest and now - process.last_seen > self.stale_after:
                self._fold(key)

    def _fold(self, key: tuple) -> None:
        process = self.live.pop(key)
        self.base = self.base.plus(process.totals)
        self.folded[key] = process.totals
        while len(self.folded) > self.max_folded:
            self.folded.popitem(last=False)


MAX_SHARD_LABELS = 32  # per exchange, as many as ExchangeTotals keeps live processes
# get_statistics' answer grows by at most this per configured exchange, whatever the reports say: 32 shard
# labels of 65 routes, 1000 unlisted symbols, every string at its longest (tests/unit/test_reports.py).
STATISTICS_BYTES_PER_EXCHANGE = 1_250_000


@dataclass
class _ShardSeen:
    report: WorkerReport
    last_seen: float  # the receiver's clock


class WorkerTotals:
    """Totals per exchange from the workers' reports, for the exchanges the controller knows (a report
    for any other is refused: a stranger must not grow the controller's memory or its answers).

    Each exchange's shards ('2/3') are shown with their latest report: at most `max_shards` labels (the least
    recently heard of goes first), and a label silent for `shard_silence` seconds is forgotten (after
    re-sharding from 3 to 2, '3/3' reports no more). Totals are ExchangeTotals', unaffected by either."""

    def __init__(self, exchanges: Iterable[str], stale_after: float, shard_silence: float | None = None,
                 max_shards: int = MAX_SHARD_LABELS):
        self.exchanges = {name: ExchangeTotals(stale_after) for name in exchanges}
        self.latest: dict[str, WorkerReport] = {}
        self.shards: dict[str, OrderedDict[str, _ShardSeen]] = {}  # exchange -> label -> latest, oldest first
        self.shard_silence = stale_after if shard_silence is None else shard_silence
        self.max_shards = max_shards

    def record(self, report: WorkerReport, now: float) -> None:
        """Take one valid report; ReportError (nothing changed) for an unknown exchange or totals going back."""
        if report.exchange not in self.exchanges:
            raise ReportError(f"exchange {report.exchange!r} is not in the controller's configuration "
                              f"({', '.join(self.exchanges)})")
        self.exchanges[report.exchange].record(report, now)
        self.latest[report.exchange] = report
        shards = self.shards.setdefault(report.exchange, OrderedDict())
        shards[report.shard] = _ShardSeen(report, now)
        shards.move_to_end(report.shard)
        while len(shards) > self.max_shards:
            shards.popitem(last=False)
        self.prune(now)

    def prune(self, now: float) -> None:
        """Forget the shard labels silent for longer than `shard_silence`."""
        for shards in self.shards.values():
            while shards and now - next(iter(shards.values())).last_seen > self.shard_silence:
                shards.popitem(last=False)

    def per_exchange(self) -> dict[str, Counters]:
        """Totals of every exchange that has reported."""
        return {name: self.exchanges[name].total() for name in self.latest}

    def response_data(self, now: float | None = None) -> dict:
        if now is not None:
            self.prune(now)
        totals = self.per_exchange()
        return {
            "exchange_success": {ex: c.success for ex, c in totals.items()},
            "exchange_errors": {ex: c.errors for ex, c in totals.items()},
            "rabbitmq_published": sum(c.published for c in totals.values()),
            "rabbitmq_failed": sum(c.publish_failed for c in totals.values()),
            "workers": {ex: self._worker_data(ex, r) for ex, r in self.latest.items()},
        }

    def _worker_data(self, exchange: str, r: WorkerReport) -> dict:
        shards = self.shards[exchange]
        return {"pid": r.pid, "cycles": r.cycles, "last_report": int(r.timestamp),
                "symbols_version": r.symbols_version, "unlisted_symbols": r.unlisted_symbols,
                "live_processes": len(self.exchanges[exchange].live),
                "history": r.history.model_dump() if r.history else None,
                "open_interest_age_seconds": r.open_interest_age_seconds,
                "shards": {label: _shard_data(shards[label].report) for label in sorted(shards)}}


def _shard_data(report: WorkerReport) -> dict:
    return {"pid": report.pid, "cycles": report.cycles, "last_report": int(report.timestamp),
            "totals": asdict(report.totals.counters()),
            "routes": {label: counts.model_dump() for label, counts in report.routes.items()}}
