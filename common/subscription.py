"""The symbol set a worker collects, as the controller sends it: taken from the worker's symbols queue (or
asked for with get_symbols where the queue is empty), only when the controller sent it. The worker asks it
"what is the current set" (`current`, `watched`) and hears of each adopted set through `on_adopt`."""
from __future__ import annotations

import json
import logging
from typing import Callable

from pydantic import ValidationError

from common.broker import CONTROL_QUEUE, ask
from common.logs import printable
from common.problems import describe
from common.roles import Roles
from common.symbols import SymbolSet


class SymbolSubscription:
    """`on_adopt(update, changed)` is called with every set adopted; `changed` when it differs from the one
    held (in symbols or version). `watched` is read by book threads: replaced, never mutated."""

    def __init__(self, roles: Roles, log: logging.Logger, initial: SymbolSet,
                 on_adopt: Callable[[SymbolSet, bool], None]):
        self.roles = roles
        self.log = log
        self.on_adopt = on_adopt
        self.current = initial
        self.watched = frozenset(initial.symbols)
        self.asking = False         # a get_symbols is unanswered
        self._held_tag = None       # the delivery of the set held unacknowledged

    def start(self, channel, queue: str, user: str) -> None:
        """On each connect, once `queue` is declared: take the current set synchronously (so that the very
        next cycle already collects it), then consume the queue."""
        self._held_tag = None
        method, properties, body = channel.basic_get(queue)
        if method is None or not self.on_symbol_set(channel, method, properties, body):
            # A queue the controller never filled (a new shard's): ask it for the current set.
            ask(channel, CONTROL_QUEUE, json.dumps({"command": "get_symbols"}).encode(), self.on_current_set, user)
            self.asking = True
        channel.basic_consume(queue, self.on_symbol_set)

    def on_symbol_set(self, channel, method, properties, body: bytes) -> bool:
        """Adopt a set from the symbols queue; False (and the message dropped) if it is not the controller's."""
        if not self.roles.sent_by(properties.user_id, "controller"):
            # Anyone allowed to publish to the default exchange can reach this queue: only the controller's
            # sets count. Dropped, so that the one held stays, and the controller's next broadcast replaces it.
            self.log.error("Ignoring a symbol set not sent by the controller (user_id %s)",
                           printable(properties.user_id))
            channel.basic_ack(method.delivery_tag)
            return False
        try:
            update = SymbolSet.model_validate_json(body)
        except ValidationError as e:
            self.log.error("Ignoring an invalid symbol set: %s", e.errors()[0]["msg"])
            channel.basic_ack(method.delivery_tag)
            return False
        # The queue holds only the latest set and delivers in order, so the last delivery is the current set
        # (whatever its version: a controller that lost its state file starts again at v1).
        # Keep it unacknowledged: if this process dies, the broker hands it to the next one.
        if self._held_tag is not None:
            channel.basic_ack(self._held_tag)
        self._held_tag = method.delivery_tag
        self.asking = False
        self._adopt(update)
        return True

    def on_current_set(self, properties, body: bytes) -> None:
        """The controller's answer to get_symbols; a broadcast that came first wins."""
        if not self.roles.sent_by(properties.user_id, "controller"):
            self.log.error("Ignoring an answer to get_symbols not sent by the controller (user_id %s)",
                           printable(properties.user_id))
            return
        self.asking = False
        try:
            data = json.loads(body)["data"]
            update = SymbolSet(version=data["version"], symbols=data["symbols"])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            self.log.error("Ignoring an invalid answer to get_symbols: %s", describe(e))
            return
        if self._held_tag is None:
            self._adopt(update)

    def _adopt(self, update: SymbolSet) -> None:
        changed = update.symbols != self.current.symbols or update.version != self.current.version
        if changed:
            self.log.info("Symbol set v%d: %s", update.version, ", ".join(update.symbols) or "(empty)")
        self.current = update
        self.watched = frozenset(update.symbols)
        self.on_adopt(update, changed)
