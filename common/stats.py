"""Counters and the vision's statistics block, shared by the workers and the controller."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

DISPLAY_NAMES = {"binance": "Binance", "bybit": "Bybit", "bitget": "Bitget", "htx": "HTX", "gateio": "Gate.io"}


@dataclass
class Counters:
    success: int = 0           # snapshots collected and valid
    errors: int = 0            # symbols (or whole cycles) that could not be collected
    published: int = 0         # snapshots the broker confirmed
    publish_failed: int = 0    # snapshots dropped because the broker was unreachable

    def minus(self, other: "Counters") -> "Counters":
        return Counters(*(a - b for a, b in zip(asdict(self).values(), asdict(other).values())))

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

    def to_message(self) -> dict:
        return {**asdict(self), "timestamp": time.time()}


def format_block(window_seconds: float, per_exchange: dict[str, Counters], published: int, failed: int) -> str:
    lines = [f"=== Statistics (last {window_seconds:.0f}s) ==="]
    for name, c in per_exchange.items():
        lines.append(f"{DISPLAY_NAMES.get(name, name)}: {c.success} success, {c.errors} errors")
    lines.append(f"RabbitMQ: {published} published, {failed} failed")
    lines.append("=============================")
    return "\n".join(lines)
