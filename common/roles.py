"""Who is who on the broker (docs/reference.md, "Security"): one RabbitMQ user per role, and how a consumer
tells which role sent a message.

A message is trusted for its sender, never for its body: RabbitMQ refuses a publish whose `user_id` property
is not the connection's own user, so a `user_id` names the sender as the broker verified it. Each role's
user is `{rabbitmq.user_prefix}{role}` (`fs_worker_bybit`, `fs_operator`, ...), its password
`FUTURES_SCAN_{ROLE}_PASSWORD` in the environment or `.env`. A process whose role has no password there
connects as `rabbitmq.user`, which then holds every role (the layout before roles existed), with a WARNING.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pydantic import SecretStr

from common.config import RabbitMQConfig

ROLES = ("worker", "controller", "scanner", "recorder", "consumer", "operator")

log = logging.getLogger("rabbitmq")


def role_name(role: str, exchange: str | None = None) -> str:
    """'worker' + 'bybit' -> 'worker_bybit'; the other roles are their own name."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if (role == "worker") != (exchange is not None):
        raise ValueError("a worker's role names its exchange, and only a worker's")
    return f"worker_{exchange}" if exchange else role


def password_variable(role: str, exchange: str | None = None) -> str:
    return f"FUTURES_SCAN_{role_name(role, exchange).upper()}_PASSWORD"


@dataclass(frozen=True)
class Roles:
    """The user names of every role, as consumers compare them with a message's `user_id`. `shared_user` is
    set when this process runs without role users: that one user then speaks for every role too."""
    prefix: str
    shared_user: str | None = None

    @property
    def separate(self) -> bool:
        """Each role its own user: the shared topology is declared by scripts/broker_users.py, not by us."""
        return self.shared_user is None

    def user(self, role: str, exchange: str | None = None) -> str:
        return self.prefix + role_name(role, exchange)

    def sent_by(self, user_id: str | None, role: str, exchange: str | None = None) -> bool:
        """Whether a message whose (broker-verified) `user_id` is this was sent by `role`."""
        if not user_id:
            return False
        return user_id == self.user(role, exchange) or (self.shared_user is not None and user_id == self.shared_user)

    def sent_by_a_worker(self, user_id: str | None, exchange: str) -> bool:
        return self.sent_by(user_id, "worker", exchange)


def connect_as(rabbitmq: RabbitMQConfig, role: str, exchange: str | None = None) -> tuple[RabbitMQConfig, Roles]:
    """The broker settings this process connects with, and the roles it checks senders against."""
    password = os.environ.get(password_variable(role, exchange))
    prefix = rabbitmq.user_prefix
    if password:
        user = prefix + role_name(role, exchange)
        return rabbitmq.model_copy(update={"user": user, "password": SecretStr(password)}), Roles(prefix)
    log.warning("No %s in the environment or .env: connecting as %r, which then holds every role. This is not "
                "least-privilege: run scripts/broker_users.py to create a user per role (docs/reference.md, "
                "\"Security\")", password_variable(role, exchange), rabbitmq.user)
    return rabbitmq, Roles(prefix, shared_user=rabbitmq.user)
