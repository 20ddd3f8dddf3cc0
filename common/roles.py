"""Who is who on the broker (docs/reference.md, "Security"): one RabbitMQ user per role, and how a consumer
tells which role sent a message.

A message is trusted for its sender, never for its body: RabbitMQ refuses a publish whose `user_id` property
is not the connection's own user, so a `user_id` names the sender as the broker verified it. Each role's
user is `{rabbitmq.user_prefix}{role}` (`fs_worker_bybit`, `fs_operator`, ...), its password
`FUTURES_SCAN_{ROLE}_PASSWORD` in the environment or `.env`. A process whose role has no password there
connects as `rabbitmq.user`, which then holds every role (the layout before roles existed), with a WARNING.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from dataclasses import dataclass

from pydantic import SecretStr

from common.config import ConfigError, RabbitMQConfig
from common.logs import secret_mask

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
    """The broker settings this process connects with, and the roles it checks senders against. The password
    joins the log's secrets. ConfigError when there is neither the role's password nor `rabbitmq.user`."""
    password = os.environ.get(password_variable(role, exchange))
    prefix = rabbitmq.user_prefix
    if password:
        secret_mask.add(password)
        user = prefix + role_name(role, exchange)
        return rabbitmq.model_copy(update={"user": user, "password": SecretStr(password)}), Roles(prefix)
    if not rabbitmq.user or rabbitmq.password is None:
        raise ConfigError(f"no broker login for the {role_name(role, exchange)} role: {password_variable(role, exchange)} "
                          "is in neither the environment nor .env (scripts/broker_users.py creates the role users "
                          "and writes their passwords there), and rabbitmq.user/password are not set")
    secret_mask.add(rabbitmq.password.get_secret_value())
    log.warning("No %s in the environment or .env: connecting as %r, which then holds every role. This is not "
                "least-privilege: run scripts/broker_users.py to create a user per role (docs/reference.md, "
                "\"Security\")", password_variable(role, exchange), rabbitmq.user)
    return rabbitmq, Roles(prefix, shared_user=rabbitmq.user)


# -- what each role may do (scripts/broker_users.py applies it) -------------------------------------
@dataclass(frozen=True)
class Rights:
    """One user's rights on one vhost: RabbitMQ's configure/write/read regexes, and per topic exchange the
    routing keys it may publish (write) and bind (read)."""
    configure: str
    write: str
    read: str
    topics: dict[str, tuple[str, str]]
    tags: tuple[str, ...] = ()


NOTHING = "^$"
OWN_QUEUES = r"amq\.gen-.*"  # server-named exclusive queues: no other connection may touch them


def _any_of(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def rights(role: str, data_exchange: str, exchange: str | None = None) -> Rights:
    """Least privilege per role (docs/reference.md, "Security"). Publishing to a queue by name goes through
    the default exchange (`amq.default`), which no permission can narrow by queue: whoever may do it (workers
    asking for the set, the controller answering, the operator) is checked by the receiver's user_id test."""
    from common.broker import RECORDER_QUEUE, RESPONSES_EXCHANGE, STATS_EXCHANGE, SYMBOLS_EXCHANGE, CONTROL_QUEUE
    data = re.escape(data_exchange)
    if role == "worker":
        ex = re.escape(exchange)
        own = rf"{re.escape(SYMBOLS_EXCHANGE)}\.{ex}(\.shard-[0-9]+-of-[0-9]+)?"
        return Rights(configure=_any_of(own),
                      write=_any_of(data, re.escape(STATS_EXCHANGE), r"amq\.default", own),
                      read=_any_of(re.escape(SYMBOLS_EXCHANGE), own),
                      topics={data_exchange: (rf"^(futures\.{ex}\.[^.]+|board\.{ex}|funding\.{ex})$", NOTHING),
                              STATS_EXCHANGE: (rf"^stats\.{ex}$", NOTHING)})
    if role == "controller":
        return Rights(configure=_any_of(OWN_QUEUES),
                      write=_any_of(re.escape(SYMBOLS_EXCHANGE), re.escape(RESPONSES_EXCHANGE), r"amq\.default",
                                    OWN_QUEUES),
                      read=_any_of(re.escape(CONTROL_QUEUE), re.escape(STATS_EXCHANGE), OWN_QUEUES),
                      topics={data_exchange: (NOTHING, NOTHING)})
    if role == "recorder":  # its durable queue of settlements, and a queue of its own for the boards
        queue = re.escape(RECORDER_QUEUE)
        return Rights(configure=_any_of(OWN_QUEUES, queue), write=_any_of(OWN_QUEUES, queue),
                      read=_any_of(data, OWN_QUEUES, queue),
                      topics={data_exchange: (NOTHING, r"^(board|funding)\.\*$"), STATS_EXCHANGE: (NOTHING, NOTHING)})
    if role in ("scanner", "consumer"):
        return Rights(configure=_any_of(OWN_QUEUES), write=_any_of(OWN_QUEUES), read=_any_of(data, OWN_QUEUES),
                      topics={data_exchange: (NOTHING, ".*"), STATS_EXCHANGE: (NOTHING, NOTHING)})
    if role == "operator":
        return Rights(configure=_any_of(OWN_QUEUES), write=_any_of(r"amq\.default", OWN_QUEUES),
                      read=_any_of(re.escape(RESPONSES_EXCHANGE), OWN_QUEUES),
                      topics={data_exchange: (NOTHING, NOTHING)}, tags=("management",))
    raise ValueError(f"unknown role {role!r}")


def every_role(exchanges) -> list[tuple[str, str | None]]:
    return [("worker", name) for name in exchanges] + [(role, None) for role in ROLES if role != "worker"]


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), 4-byte salt."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(rabbitmq: RabbitMQConfig, exchanges, passwords: dict[str, str]) -> dict:
    """RabbitMQ definitions (the format of `rabbitmqctl import_definitions` and POST /api/definitions): the
    role users of `exchanges` with their rights on the configured vhost, and the shared topology they use,
    so that no role needs the `configure` right on shared exchanges (it would also let it delete them).
    `passwords` maps role_name() to the password."""
    from common.broker import (CONTROL_QUEUE, CONTROL_QUEUE_ARGUMENTS, RECORDER_BINDING, RECORDER_QUEUE,
                               RECORDER_QUEUE_ARGUMENTS, RESPONSES_EXCHANGE, STATS_EXCHANGE, SYMBOLS_EXCHANGE,
                               SYMBOLS_QUEUE_ARGUMENTS, symbols_queue)
    vhost, data = rabbitmq.vhost, rabbitmq.exchange
    users, permissions, topic_permissions = [], [], []
    for role, exchange in every_role(exchanges):
        user = rabbitmq.user_prefix + role_name(role, exchange)
        granted = rights(role, data, exchange)
        users.append({"name": user, "password_hash": password_hash(passwords[role_name(role, exchange)]),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ",".join(granted.tags)})
        permissions.append({"user": user, "vhost": vhost, "configure": granted.configure, "write": granted.write,
                            "read": granted.read})
        topic_permissions += [{"user": user, "vhost": vhost, "exchange": name, "write": write, "read": read}
                              for name, (write, read) in granted.topics.items()]
    kinds = {data: "topic", RESPONSES_EXCHANGE: "topic", STATS_EXCHANGE: "topic", SYMBOLS_EXCHANGE: "fanout"}
    queues = {CONTROL_QUEUE: CONTROL_QUEUE_ARGUMENTS, RECORDER_QUEUE: RECORDER_QUEUE_ARGUMENTS,
              **{symbols_queue(name): SYMBOLS_QUEUE_ARGUMENTS for name in exchanges}}
    return {
        "users": users, "vhosts": [{"name": vhost}], "permissions": permissions,
        "topic_permissions": topic_permissions,
        "exchanges": [{"name": name, "vhost": vhost, "type": kind, "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}} for name, kind in kinds.items()],
        "queues": [{"name": name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": arguments}
                   for name, arguments in queues.items()],
        "bindings": [{"source": SYMBOLS_EXCHANGE, "vhost": vhost, "destination": symbols_queue(name),
                      "destination_type": "queue", "routing_key": "", "arguments": {}} for name in exchanges]
                    + [{"source": data, "vhost": vhost, "destination": RECORDER_QUEUE, "destination_type": "queue",
                        "routing_key": RECORDER_BINDING, "arguments": {}}],
    }
