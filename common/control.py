"""The control API's wire format (the vision's section 6.5): requests, responses, error codes.

Shared by controller.py, which answers, and scripts/control_client.py, which asks.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from common.symbols import MAX_SYMBOLS, symbol_problem

COMMANDS = ("add_symbol", "remove_symbol", "set_symbols", "get_symbols", "get_statistics")
MAX_REQUEST_BYTES = 64 * 1024


def response_key(command: str | None) -> str:
    """control.response.{command}; 'unknown' when no known command could be read (a free-form name could
    carry '.', '*' or '#' into the routing key)."""
    return f"control.response.{command if command in COMMANDS else 'unknown'}"


@dataclass
class Request:
    command: str
    correlation_id: str | None
    symbol: str | None = None
    symbols: list[str] | None = None


class RequestError(Exception):
    """A request that cannot be executed; `code` is one of the vision's error codes."""

    def __init__(self, code: str, message: str, command: str | None = None, correlation_id: str | None = None):
        super().__init__(message)
        self.code, self.message, self.command, self.correlation_id = code, message, command, correlation_id


def parse_request(body: bytes, correlation_id: str | None = None) -> Request:
    """Validate one raw request. `correlation_id` is the AMQP property, used when the body has none."""
    if len(body) > MAX_REQUEST_BYTES:
        raise RequestError("invalid_command", f"request of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}",
                           correlation_id=correlation_id)
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RequestError("invalid_json", f"request is not UTF-8: {e.reason} at byte {e.start}",
                           correlation_id=correlation_id) from None
    except (ValueError, RecursionError) as e:
        raise RequestError("invalid_json", f"request is not valid JSON: {str(e)[:200]}",
                           correlation_id=correlation_id) from None
    if not isinstance(data, dict):
        raise RequestError("invalid_command", f"request must be a JSON object, got {_json_type(data)}",
                           correlation_id=correlation_id)
    cid = data.get("correlation_id", correlation_id)
    if isinstance(cid, bool) or (cid is not None and not isinstance(cid, (str, int))):
        raise RequestError("invalid_command", "correlation_id must be a string", correlation_id=correlation_id)
    cid = None if cid is None else str(cid)[:200]
    command = data.get("command")
    if command is None:
        raise RequestError("invalid_command", "missing field 'command'", correlation_id=cid)
    if not isinstance(command, str):
        raise RequestError("invalid_command", f"'command' must be a string, got {_json_type(command)}",
                           correlation_id=cid)
    if command not in COMMANDS:
        shown = command if len(command) <= 60 else command[:60] + "..."
        raise RequestError("unknown_command", f"unknown command {shown!r}; known: {', '.join(COMMANDS)}",
                           shown, cid)
    request = Request(command, cid)
    if command in ("add_symbol", "remove_symbol"):
        request.symbol = _symbol_field(data, command, cid)
    elif command == "set_symbols":
        request.symbols = _symbols_field(data, command, cid)
    return request


def _symbol_field(data: dict, command: str, cid) -> str:
    if "symbol" not in data:
        raise RequestError("invalid_command", "missing field 'symbol'", command, cid)
    problem = symbol_problem(data["symbol"])
    if problem:
        raise RequestError("invalid_command", problem, command, cid)
    return data["symbol"]


def _symbols_field(data: dict, command: str, cid) -> list[str]:
    symbols = data.get("symbols")
    if not isinstance(symbols, list):
        raise RequestError("invalid_command", "field 'symbols' must be a list of symbols", command, cid)
    for symbol in symbols:  # before de-duplicating: a list or an object is not hashable
        problem = symbol_problem(symbol)
        if problem:
            raise RequestError("invalid_command", problem, command, cid)
    unique = list(dict.fromkeys(symbols))
    if len(unique) > MAX_SYMBOLS:  # counted as the config counts them: a repeated symbol is one symbol
        raise RequestError("invalid_command", f"{len(unique)} symbols exceed the limit of {MAX_SYMBOLS}",
                           command, cid)
    return unique


def symbols_summary(symbols: list[str], shown: int = 5) -> str:
    """A log line's view of a set: the first `shown` symbols and how many more (the full set is in the state
    file), so that a flood of 1000-symbol sets does not write 1000 symbols per line."""
    if not symbols:
        return "(empty)"
    head = ", ".join(symbols[:shown])
    return head if len(symbols) <= shown else f"{head} and {len(symbols) - shown} more ({len(symbols)} symbols)"


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def success(request: Request, message: str, data: dict) -> dict:
    return {"correlation_id": request.correlation_id, "success": True, "command": request.command,
            "message": message, "data": data, "timestamp": int(time.time())}


def failure(error: RequestError) -> dict:
    return {"correlation_id": error.correlation_id, "success": False, "command": error.command,
            "message": error.message, "error": error.code, "timestamp": int(time.time())}
