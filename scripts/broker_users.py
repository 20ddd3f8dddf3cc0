#!/usr/bin/env python3
"""Create (or update) futures_scan's RabbitMQ users, one per role, with the least rights the broker can enforce,
and the shared topology they use, on the configured vhost. Idempotent: run it as often as you like.

    scripts/broker_users.py [--config PATH] [--via rabbitmqctl|api]

Passwords come from the environment or .env as FUTURES_SCAN_{ROLE}_PASSWORD (FUTURES_SCAN_WORKER_BYBIT_PASSWORD,
FUTURES_SCAN_OPERATOR_PASSWORD, ...); a missing one is generated and appended to .env (mode 0600), so that every
process started afterwards finds it. Nothing here prints a password.

Two ways to reach the broker, both loading one definitions document (users, permissions, topic permissions,
exchanges, queues, bindings):
* rabbitmqctl import_definitions: on the broker's own host, as root (no RabbitMQ user needed).
* the management HTTP API (POST /api/definitions) at rabbitmq.host:management_port, as an administrator named by
  RABBITMQ_ADMIN_USER and RABBITMQ_ADMIN_PASSWORD: for a remote broker.
Default: rabbitmqctl when the broker is on this host and rabbitmqctl exists, else the API.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import OPERATOR_CONFIG_HELP, ConfigError, dotenv_path, load_config, operator_config_path  # noqa: E402
from common.roles import definitions, every_role, password_variable, role_name  # noqa: E402

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def role_passwords(exchanges, dotenv: Path) -> dict[str, str]:
    """Each role's password from the environment (load_config read .env into it); missing ones generated and
    appended to `dotenv`, created 0600."""
    passwords, new_lines = {}, []
    for role, exchange in every_role(exchanges):
        variable = password_variable(role, exchange)
        password = os.environ.get(variable)
        if not password:
            password = secrets.token_urlsafe(24)
            os.environ[variable] = password
            new_lines.append(f"{variable}={password}\n")
        passwords[role_name(role, exchange)] = password
    if new_lines:
        fd = os.open(dotenv, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            if f.tell() and not dotenv.read_bytes().endswith(b"\n"):
                f.write("\n")
            f.writelines(new_lines)
        print(f"broker_users: {len(new_lines)} new role password(s) written to {dotenv}")
    os.chmod(dotenv, 0o600)
    return passwords


def import_with_rabbitmqctl(document: dict) -> None:
    # On standard input: a file would have to be readable by the broker's own user, and holds password hashes.
    out = subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=json.dumps(document),
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"broker_users: rabbitmqctl import_definitions failed: {(out.stderr or out.stdout)[-500:]}")


def import_with_api(document: dict, host: str, port: int) -> None:
    user, password = os.environ.get("RABBITMQ_ADMIN_USER"), os.environ.get("RABBITMQ_ADMIN_PASSWORD")
    if not user or not password:
        raise SystemExit("broker_users: the management API needs an administrator: set RABBITMQ_ADMIN_USER and "
                         "RABBITMQ_ADMIN_PASSWORD (or run it on the broker's host as root: --via rabbitmqctl)")
    host = f"[{host}]" if ":" in host else host
    request = urllib.request.Request(f"http://{host}:{port}/api/definitions", data=json.dumps(document).encode(),
                                     method="POST", headers={"content-type": "application/json"})
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as e:
        raise SystemExit(f"broker_users: the management API refused the definitions: HTTP {e.code} "
                         f"{e.read()[:300].decode(errors='replace')}") from None
    except OSError as e:
        raise SystemExit(f"broker_users: cannot reach the management API at {host}:{port}: {e}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Create futures_scan's RabbitMQ role users and their rights")
    parser.add_argument("--config", help=OPERATOR_CONFIG_HELP)
    parser.add_argument("--via", choices=("rabbitmqctl", "api"), help="how to reach the broker (default: "
                        "rabbitmqctl on the broker's own host, else the management API)")
    args = parser.parse_args(argv)
    try:
        config = load_config(operator_config_path(args.config))
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 2
    rabbit = config.rabbitmq
    exchanges = [entry.name for entry in config.exchanges]
    document = definitions(rabbit, exchanges, role_passwords(exchanges, dotenv_path()))
    via = args.via or ("rabbitmqctl" if rabbit.host in LOCAL_HOSTS and shutil.which("rabbitmqctl") else "api")
    if via == "rabbitmqctl":
        import_with_rabbitmqctl(document)
    else:
        import_with_api(document, rabbit.host, rabbit.management_port)
    users = ", ".join(user["name"] for user in document["users"])
    print(f"broker_users: vhost {rabbit.vhost!r} on {rabbit.host}: {users} (via {via})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
