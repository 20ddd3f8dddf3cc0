"""The operator's tools on their own: what they do when there is nothing to talk to."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from tests.conftest import ROOT


def closed_port() -> int:
    """A loopback port nobody listens on: bound, then released (connecting is refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_control_client_exits_2_when_the_broker_cannot_be_reached(tmp_path):
    port = closed_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"rabbitmq": {"host": "127.0.0.1", "port": port, "user": "operator",
                                               "password": "pw-not-shown"},
                                  "exchanges": ["bybit"], "symbols": []}))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "scripts/control_client.py", "get_symbols", "--config", str(config),
                          "--timeout", "30"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"Cannot reach RabbitMQ at 127.0.0.1:{port}" in out.stderr, out.stderr
    assert out.stdout == ""  # no made-up response
    assert "pw-not-shown" not in out.stdout + out.stderr
    assert elapsed < 20, f"took {elapsed:.1f}s: it should not wait out --timeout for a refused connection"


def test_control_client_names_a_missing_config(tmp_path):
    out = subprocess.run([sys.executable, "scripts/control_client.py", "get_symbols", "--config",
                          str(tmp_path / "none.json")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"Configuration error: {tmp_path / 'none.json'}: file not found" in out.stderr, out.stderr
