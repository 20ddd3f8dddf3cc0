"""What a worker knows and has said of each symbol's funding: the intervals where the funding rows lack them
(binance's fundingInfo, fetched by the worker) and the rates that are missing. Bookkeeping and the decision
what to publish and log; no network."""
from __future__ import annotations

import logging

from common.exchanges import Venue
from common.logs import printable
from common.mapping import interval_problem, listed_intervals
from common.problems import Problems


class FundingIntervals:
    """A venue with a funding_intervals call: `hours` is None until it first answers (intervals unknown,
    published as null), then the last answer's; a failure keeps the last known. `due` says when the worker
    should call it: with each market load, and each cycle while it fails."""

    def __init__(self, venue: Venue, log: logging.Logger):
        self.venue = venue
        self.log = log
        self.hours: dict[str, float | None] | None = None
        self.due = bool(venue.funding_intervals)
        self.failing = False
        self._problems = Problems()   # (where the interval came from, symbol) -> why it cannot be read

    def markets_loaded(self, markets: dict) -> None:
        """Intervals change rarely: fetched again with each market load."""
        self.due = bool(self.venue.funding_intervals)
        self._problems.keep_only(lambda key: key[1] in markets)

    def answered(self, answer) -> None:
        """The funding_intervals call's answer: a dict by symbol, anything else (None) a failure."""
        if not isinstance(answer, dict):
            self._failed()
            return
        self.hours, problems = listed_intervals(answer)
        self.due = False
        self._problems.keep_only(lambda key: key[0] != "fundingInfo" or key[1] in problems)
        for symbol, reason in problems.items():
            self._problem(("fundingInfo", symbol), reason)
        if self.failing:
            self.failing = False
            self.log.info("Funding intervals fetched again")

    def _failed(self) -> None:
        if self.failing:  # said once per outage, tried every cycle
            return
        self.failing = True
        if self.hours is None:
            self.log.warning("Funding intervals unknown: published as null (never paired) until %s answers",
                             self.venue.funding_intervals.__name__)
        else:
            self.log.warning("Keeping the last known funding intervals until %s answers again",
                             self.venue.funding_intervals.__name__)

    def check_row(self, symbol: str, funding: dict) -> None:
        """Say once when a funding row's own interval cannot be read, and when it can again."""
        problem = interval_problem(funding)
        if problem:
            self._problem(("row", symbol), problem)
        elif self._problems.clear(("row", symbol)):
            self.log.info("Funding interval of %s readable again", printable(symbol))

    def default_hours(self, symbol: str, market: dict) -> float | None:
        """A symbol's funding interval where its funding row does not say it (binance: from fundingInfo,
        which lists only the symbols off the default); None while unknown, and for a dated future (no funding)."""
        if not market.get("swap"):
            return None
        if not self.venue.funding_intervals:
            return self.venue.default_funding_hours
        if self.hours is None:
            return None
        return self.hours.get(symbol, self.venue.default_funding_hours)

    def _problem(self, key: tuple[str, str], reason: str) -> None:
        if self._problems.note(key, reason):
            self.log.warning("Funding interval of %s published as null: %s", printable(key[1]), reason)


class MissingRates:
    """The perpetuals whose funding rate is missing: said when it goes missing and when it is back."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self._missing: set[str] = set()

    def note(self, symbol: str, market: dict, rate) -> None:
        if not market.get("swap"):
            return  # a dated future has no funding: nothing is missing
        if rate is None and symbol not in self._missing:
            self._missing.add(symbol)
            self.log.warning("Funding rate not available for %s", symbol)
        elif rate is not None and symbol in self._missing:
            self._missing.discard(symbol)
            self.log.info("Funding rate available again for %s", symbol)

    def keep_only(self, watched: frozenset[str]) -> None:
        """Forget the symbols no longer watched: said again if they come back."""
        self._missing &= watched
