"""The peers the product is compared with, both with ccxt's defaults (its own rateLimit, enableRateLimit on)
and per symbol `fetch_ticker`, `fetch_order_book` at the product's depth and `fetch_funding_rate`:

- the naive loop a user writes first: one sync client, one request after another;
- the vision's own design (issue 12): one asyncio process with `ccxt.async_support`, a task per exchange
  gathering the three calls of every symbol at once, ccxt's default throttle spacing them.
"""
from __future__ import annotations

import asyncio
import statistics
import time

import ccxt
import ccxt.async_support

from bench.harness import Sim, log
from bench.workers import exchange_weight
from common.exchanges import VENUES, redirect_urls

LONG_CYCLE = 10.0   # seconds: one cycle this long is enough (binance at ccxt's default throttle)


def naive_loop(sim: Sim, ex: str, symbols: list[str], cycles: int, depth=None) -> dict:
    sim.fresh()
    venue = VENUES[ex]
    client = getattr(ccxt, venue.ccxt_id)()
    client.urls["api"] = redirect_urls(client.urls["api"], sim.api_url(ex))
    # The simulator serves no currency endpoints (htx asks for them by default); markets are loaded untimed.
    client.has["fetchCurrencies"] = False
    t0 = time.time()
    client.load_markets()
    t_cycles = time.time()
    times, errors = [], []
    for i in range(cycles):
        if i and times[0] > LONG_CYCLE:
            break
        t = time.perf_counter()
        for symbol in symbols:
            try:
                client.fetch_ticker(symbol)
                client.fetch_order_book(symbol, depth or venue.book_limit, venue.book_params)
                client.fetch_funding_rate(symbol)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(f"{symbol}: {type(e).__name__}: {str(e)[:120]}")
        times.append(time.perf_counter() - t)
    return _result("naive", sim, ex, symbols, t0, t_cycles, times, errors, client.rateLimit)


def vision_design(sim: Sim, ex: str, symbols: list[str], cycles: int, depth=None) -> dict:
    sim.fresh()
    return asyncio.run(_vision_cycles(sim, ex, symbols, cycles, depth))


async def _vision_cycles(sim: Sim, ex: str, symbols: list[str], cycles: int, depth) -> dict:
    venue = VENUES[ex]
    client = getattr(ccxt.async_support, venue.ccxt_id)()
    client.urls["api"] = redirect_urls(client.urls["api"], sim.api_url(ex))
    client.has["fetchCurrencies"] = False

    async def one_symbol(symbol: str):
        return await asyncio.gather(client.fetch_ticker(symbol),
                                    client.fetch_order_book(symbol, depth or venue.book_limit, venue.book_params),
                                    client.fetch_funding_rate(symbol))
    try:
        t0 = time.time()
        await client.load_markets()
        t_cycles = time.time()
        times, errors = [], []
        for i in range(cycles):
            if i and times[0] > LONG_CYCLE:
                break
            t = time.perf_counter()
            answers = await asyncio.gather(*(one_symbol(s) for s in symbols), return_exceptions=True)
            times.append(time.perf_counter() - t)
            errors += [f"{s}: {type(a).__name__}: {str(a)[:120]}" for s, a in zip(symbols, answers)
                       if isinstance(a, Exception)]
    finally:
        await client.close()
    return _result("vision", sim, ex, symbols, t0, t_cycles, times, errors, client.rateLimit)


def _result(peer: str, sim: Sim, ex: str, symbols: list[str], t0: float, t_cycles: float, times: list[float],
            errors: list[str], rate_limit_ms: float) -> dict:
    entries = sim.entries(ex, t_cycles)
    statuses: dict[str, int] = {}
    for e in sim.entries(ex, t0):
        statuses[str(e["status"])] = statuses.get(str(e["status"]), 0) + 1
    result = {"exchange": ex, "peer": peer, "n": len(symbols), "cycle_seconds": times,
              "cycle_seconds_mean": statistics.mean(times), "requests_per_cycle": len(entries) / len(times),
              "weight_per_cycle": sum(exchange_weight(ex, e) for e in entries) / len(times),
              "rate_limit_ms": rate_limit_ms, "errors": errors[:5], "error_count": len(errors), "statuses": statuses}
    log(f"  {peer} {ex} N={len(symbols)}: cycle {result['cycle_seconds_mean']:.2f} s, "
        f"{result['requests_per_cycle']:.0f} req, rateLimit {rate_limit_ms} ms, errors {len(errors)}, "
        f"statuses {statuses}")
    return result
