"""Send one control command to the controller and print its response.

    python scripts/control_client.py add_symbol "SOL/USDT:USDT"
    python scripts/control_client.py remove_symbol "ETH/USDT:USDT"
    python scripts/control_client.py set_symbols "BTC/USDT:USDT,SOL/USDT:USDT"
    python scripts/control_client.py get_symbols
    python scripts/control_client.py get_statistics --timeout 5

Exit status: 0 on success, 1 when the controller answers success: false, 2 on timeout or no broker.
Uses RabbitMQ's direct reply-to, so no queue is left behind.

The broker comes from the config: --config, else $FUTURES_SCAN_CONFIG, else the config of the system that
scripts/run.sh or scripts/demo.sh runs from this checkout (so after scripts/demo.sh no --config is needed),
else config/config.json; RABBITMQ_* in the environment override it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from common.broker import CONTROL_QUEUE, connection_parameters  # noqa: E402
from common.config import OPERATOR_CONFIG_HELP, ConfigError, load_config, operator_config_path  # noqa: E402
from common.control import COMMANDS  # noqa: E402
from common.roles import Roles, connect_as  # noqa: E402

REPLY_TO = "amq.rabbitmq.reply-to"


def build_request(command: str, argument: str | None) -> dict:
    request = {"command": command, "correlation_id": str(uuid.uuid4()), "timestamp": int(time.time())}
    if command in ("add_symbol", "remove_symbol"):
        request["symbol"] = argument
    elif command == "set_symbols":
        request["symbols"] = [s.strip() for s in argument.split(",") if s.strip()]
    return request


def send(params: pika.ConnectionParameters, request: dict, timeout: float, roles: Roles) -> dict | None:
    """Publish the request as the operator and wait up to `timeout` seconds for the controller's response."""
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        answers = []

        def on_reply(_ch, _method, properties, body):
            if properties.correlation_id == request["correlation_id"] and roles.sent_by(properties.user_id,
                                                                                        "controller"):
                answers.append(json.loads(body))

        channel.basic_consume(REPLY_TO, on_reply, auto_ack=True)
        channel.basic_publish("", CONTROL_QUEUE, json.dumps(request).encode(), pika.BasicProperties(
            reply_to=REPLY_TO, correlation_id=request["correlation_id"], content_type="application/json",
            user_id=params.credentials.username))
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            connection.process_data_events(time_limit=min(0.2, max(0.0, deadline - time.monotonic())))
        return answers[0] if answers else None
    finally:
        connection.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="futures_scan control client: sends one command, prints the "
                                     "response; exit 0 success, 1 refused, 2 timeout or no broker")
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("argument", nargs="?", help="a symbol, or comma-separated symbols for set_symbols")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    parser.add_argument("--config", help=OPERATOR_CONFIG_HELP)
    args = parser.parse_args(argv)
    if args.command in ("add_symbol", "remove_symbol", "set_symbols") and not args.argument:
        parser.error(f"{args.command} needs a symbol argument")
    try:
        config = load_config(operator_config_path(args.config))
        r, roles = connect_as(config.rabbitmq, "operator")
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 2
    params = connection_parameters(r)
    request = build_request(args.command, args.argument)
    try:
        response = send(params, request, args.timeout, roles)
    except pika.exceptions.AMQPError as e:
        print(f"Cannot reach RabbitMQ at {r.host}:{r.port}: {type(e).__name__}", file=sys.stderr)
        return 2
    if response is None:
        response = {"correlation_id": request["correlation_id"], "success": False, "command": args.command,
                    "message": f"No response within {args.timeout:g}s (is the controller running?)",
                    "error": "timeout", "timestamp": int(time.time())}
    print(json.dumps(response, indent=2))
    if response.get("error") == "timeout":
        return 2
    return 0 if response.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
