"""RabbitMQ: names of the product's exchanges and queues, and a blocking pika connection that outlives
broker outages (publish never raises; reconnects happen with backoff, never blocking for long)."""
from __future__ import annotations

import logging
import re
import ssl
import time
from typing import Callable

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from common.config import RabbitMQConfig

CONTROL_QUEUE = "futures_collector_control"
# A flood of commands waits in at most this many messages; more are refused to their publisher.
CONTROL_QUEUE_ARGUMENTS = {"x-max-length": 1000, "x-overflow": "reject-publish"}
RESPONSES_EXCHANGE = "futures_collector_responses"
SYMBOLS_EXCHANGE = "futures_collector_symbols"      # fanout: the full symbol set, versioned
STATS_EXCHANGE = "futures_collector_stats"          # topic: stats.{exchange}, each worker's totals
JSON = "application/json"
SYMBOLS_QUEUE_ARGUMENTS = {"x-max-length": 1, "x-overflow": "drop-head"}
# The recorder's settlements (funding.*), durable and named: what workers publish while the recorder is down
# waits there. A 30-day backfill of seven real-size markets is ~50 MB, a day's new settlements ~1.5 MB: past
# 256 MiB (months of a recorder down) the oldest go first, and a worker's next start fetches them again.
RECORDER_QUEUE = "futures_collector_recorder"
RECORDER_QUEUE_ARGUMENTS = {"x-max-length-bytes": 256 * 2**20, "x-overflow": "drop-head"}
RECORDER_BINDING = "funding.*"

log = logging.getLogger("rabbitmq")

# What a lost, refused or broken connection looks like from pika 1.4's side, and nothing else: a bug in a
# callback (AttributeError, KeyError, ...) must surface as itself, not as "Cannot connect". BlockingConnection()
# raises AMQPConnectionError subclasses, OSError, or, when the connection workflow itself fails (e.g. a broker
# that accepts TCP but never completes the handshake: AMQPConnectorStackTimeout), an AMQPConnectorException;
# a dead connection or channel raises AMQPConnectionError/AMQPChannelError subclasses (StreamLostError,
# ConnectionWrongStateError, ChannelClosedByBroker, ChannelWrongStateError, NackError...); a corrupt
# stream from the broker raises a ProtocolSyntaxError.
CONNECTION_ERRORS = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError,
                     pika.exceptions.ProtocolSyntaxError, AMQPConnectorException, OSError)


def symbols_queue(exchange: str, shard: str | None = None) -> str:
    """Each worker's queue on the symbols fanout. It holds only the latest set (x-max-length 1), and the
    worker keeps that message unacknowledged, so a restarted worker is handed the current set. Shards of
    one exchange (`shard` '2/3') each have their own, so that every one gets every set."""
    name = f"{SYMBOLS_EXCHANGE}.{exchange}"
    return name if shard in (None, "1/1") else f"{name}.shard-{shard.replace('/', '-of-')}"


def declare_exchange(channel, name: str, exchange_type: str, passive: bool = False) -> None:
    """Passive where scripts/broker_users.py declared the shared topology: a role user has no `configure`
    right on the shared exchanges (it would let it delete them), and a passive declaration needs none."""
    channel.exchange_declare(name, exchange_type=exchange_type, durable=True, passive=passive)


def declare_symbols_queue(channel, exchange: str, shard: str | None = None, passive_exchange: bool = False) -> str:
    declare_exchange(channel, SYMBOLS_EXCHANGE, "fanout", passive_exchange)
    queue = symbols_queue(exchange, shard)
    channel.queue_declare(queue, durable=True, arguments=SYMBOLS_QUEUE_ARGUMENTS)
    channel.queue_bind(queue, SYMBOLS_EXCHANGE)
    return queue


def declare_recorder_queue(channel, data_exchange: str) -> str:
    channel.queue_declare(RECORDER_QUEUE, durable=True, arguments=RECORDER_QUEUE_ARGUMENTS)
    channel.queue_bind(RECORDER_QUEUE, data_exchange, RECORDER_BINDING)
    return RECORDER_QUEUE


DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def ask(channel, queue: str, body: bytes, on_reply: Callable[[pika.BasicProperties, bytes], None], user: str) -> None:
    """Send a request to `queue` as `user` with RabbitMQ's direct reply-to: `on_reply(properties, body)` gets the
    answer (its `user_id` says who sent it), delivered
    while the connection is served. Nothing arrives when no one answers (no controller running)."""
    channel.basic_consume(DIRECT_REPLY_TO, lambda _ch, _method, props, reply: on_reply(props, reply), auto_ack=True)
    channel.basic_publish("", queue, body, pika.BasicProperties(reply_to=DIRECT_REPLY_TO, content_type=JSON,
                                                                 content_encoding="utf-8", user_id=user))


def connection_parameters(config: RabbitMQConfig, timeout: float = 5.0, **extra) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=config.host, port=config.port, virtual_host=config.vhost,
        credentials=pika.PlainCredentials(config.user, config.password.get_secret_value()),
        ssl_options=tls_options(config), connection_attempts=1, socket_timeout=timeout, stack_timeout=timeout * 2,
        **extra)


def tls_options(config: RabbitMQConfig) -> pika.SSLOptions | None:
    tls = config.tls
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file)
    if not tls.verify:  # an operator's explicit choice, e.g. a test broker with a throwaway certificate
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return pika.SSLOptions(context, server_hostname=tls.server_hostname or config.host)


def publish_properties(config: RabbitMQConfig, **properties) -> pika.BasicProperties:
    """Every message carries its sender's user name in `user_id`: the broker checks it against the
    connection's user, so a consumer can trust it (common/roles.py)."""
    return pika.BasicProperties(content_type=JSON, content_encoding="utf-8", user_id=config.user, **properties)


class Broker:
    """One BlockingConnection. `on_connect(channel)` declares what the caller needs each time a connection
    is made (topology, consumers). With `confirm`, each publish waits for the broker's acknowledgement.

    Broker-side trouble never ends the process: a lost or refused connection (CONNECTION_ERRORS), and a
    declaration the broker refuses (e.g. 406 PRECONDITION_FAILED: a queue exists with other arguments; the
    log says which and how to fix it), are logged and retried with backoff. Anything else raised by
    `on_connect` or by a consumer callback (delivered inside `pump`) is a bug and propagates to the caller
    unchanged, with the connection left as it was (closed if `on_connect` failed): a callback that must
    survive bad input catches what it expects and logs the rest with log.exception; what escapes ends the
    process with its traceback, and supervisord restarts it."""

    def __init__(self, config: RabbitMQConfig, on_connect: Callable | None = None, confirm: bool = True,
                 max_backoff: float = 5.0, connect_timeout: float = 3.0):
        self.config = config
        self.confirm = confirm
        self.on_connect = on_connect
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.connection: pika.BlockingConnection | None = None
        self.channel = None
        self._failures = 0
        self._next_attempt = 0.0
        self._properties = publish_properties(config)  # built once: reused per publish

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.is_open

    def ensure_connected(self) -> bool:
        """Connect if down and the backoff allows an attempt now. Returns whether connected."""
        if self.connected:
            return True
        if time.monotonic() < self._next_attempt:
            return False
        try:
            self._connect()
        except CONNECTION_ERRORS as e:
            self._drop()
            self._failures += 1
            delay = min(self.max_backoff, 2 ** (self._failures - 1))
            self._next_attempt = time.monotonic() + delay
            refusal = _refusal(e, self.config.vhost)
            if refusal:
                log.error("%s; next attempt in %.0fs", refusal, delay)
            else:
                log.warning("Cannot connect to RabbitMQ at %s:%s (%s); next attempt in %.0fs",
                            self.config.host, self.config.port, _describe(e), delay)
            return False
        if self._failures:
            log.info("Reconnected to RabbitMQ at %s:%s", self.config.host, self.config.port)
        else:
            log.info("Connected to RabbitMQ at %s:%s", self.config.host, self.config.port)
        self._failures = 0
        return True

    def _connect(self) -> None:
        params = connection_parameters(self.config, self.connect_timeout, heartbeat=self.config.heartbeat_seconds,
                                       blocked_connection_timeout=30,
                                       client_properties={"connection_name": "futures_scan"})
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        if self.confirm:
            self.channel.confirm_delivery()
        if self.on_connect:
            try:
                self.on_connect(self.channel)
            except Exception:
                self._drop()  # half-declared: the next attempt starts from a fresh connection
                raise

    def publish(self, exchange: str, routing_key: str, body: bytes, **properties) -> bool:
        """Publish (confirmed, if so built). False, and a reconnect scheduled, if the broker is not there."""
        if not self.ensure_connected():
            return False
        props = publish_properties(self.config, **properties) if properties else self._properties
        try:
            self.channel.basic_publish(exchange, routing_key, body, props)
            return True
        except CONNECTION_ERRORS as e:
            self._lost(e)
            return False

    def pump(self, seconds: float = 0.0) -> None:
        """Serve heartbeats and deliver consumed messages for up to `seconds`."""
        if not self.connected:
            if seconds:
                time.sleep(seconds)
            return
        try:
            self.connection.process_data_events(time_limit=seconds)
        except CONNECTION_ERRORS as e:
            self._lost(e)

    def ack_up_to(self, channel, delivery_tag: int) -> None:
        """Acknowledge every delivery up to `delivery_tag` in one frame, if `channel` is still the one in use
        (after a reconnect its deliveries are gone with it)."""
        if channel is not self.channel or not self.connected:
            return
        try:
            channel.basic_ack(delivery_tag, multiple=True)
        except CONNECTION_ERRORS as e:
            self._lost(e)

    def _lost(self, error: Exception) -> None:
        log.error("Lost the RabbitMQ connection: %s", _describe(error))
        self._drop()
        self._next_attempt = time.monotonic()  # first reconnect attempt at once, then backoff

    def _drop(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except CONNECTION_ERRORS:
                pass

    def close(self) -> None:
        self._drop()


_INEQUIVALENT = re.compile(r"inequivalent arg '([^']*)' for (queue|exchange) '([^']*)' in vhost '[^']*': (.*)")


def _refusal(error: Exception, vhost: str) -> str | None:
    """What the broker refused while declaring, and what to do about it, in words; None for anything that
    is not a refusal by the broker (an outage is not news worth more than a warning)."""
    if not isinstance(error, pika.exceptions.ChannelClosedByBroker):
        return None
    text = str(error.reply_text)[:500]
    match = _INEQUIVALENT.search(text)
    if error.reply_code == 406 and match:
        arg, kind, name, difference = match.groups()
        return (f"RabbitMQ refused to declare {kind} '{name}' in vhost '{vhost}': it already exists with a different "
                f"'{arg}' (the broker says: {difference}). Another program or an older version made it; delete it "
                f"and it is declared anew (its messages are lost): rabbitmqadmin -V '{vhost}' delete {kind} "
                f"name='{name}'")
    return f"RabbitMQ refused what this process declares in vhost '{vhost}' on connecting ({error.reply_code} {text})"


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
