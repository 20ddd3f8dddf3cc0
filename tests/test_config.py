"""A bad config ends the process with one message naming the field, before anything connects; secrets
from .env, in a fresh process. What load_config answers without a process is in tests/unit/test_config.py."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.unit.test_config import GOOD, with_change, write


def test_worker_exits_nonzero_before_connecting(tmp_path):
    # A broker stand-in that records whether anyone connects.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    bad = with_change("collection.interval_seconds", 1)
    bad["rabbitmq"]["port"] = listener.getsockname()[1]
    out = subprocess.run([sys.executable, "worker.py", "bybit", "--config", write(tmp_path, bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "collection.interval_seconds: Input should be greater than or equal to 5" in out.stderr
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_worker_rejects_exchange_not_in_config(tmp_path):
    out = subprocess.run([sys.executable, "worker.py", "okx", "--config", write(tmp_path, GOOD)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "'okx' is not in the config's exchanges" in out.stderr


@pytest.mark.parametrize("script", [["controller.py"], ["worker.py", "bybit"]])
def test_too_many_symbols_is_a_configuration_error_in_every_process(tmp_path, script):
    config = write(tmp_path, with_change("symbols", [f"S{i}/USDT:USDT" for i in range(1001)]))
    out = subprocess.run([sys.executable, *script, "--config", config], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"Configuration error: {config}: symbols: 1001 symbols, at most 1000 allowed" in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr


# -- .env: secrets from ROOT/.env, the environment first ---------------------------------------------------------
def load_in_copy(tmp_path, dotenv: str, env: dict) -> dict:
    """load_config in a copy of the code whose root holds `dotenv` as .env, in a fresh process (load_dotenv
    changes the process's environment)."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "common", root / "common", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".env").write_text(dotenv)
    config = write(tmp_path, GOOD)
    code = ("import json; from common.config import load_config; r = load_config(%r).rabbitmq; "
            "print(json.dumps({'user': r.user, 'password': r.password.get_secret_value(), 'port': r.port, "
            "'vhost': r.vhost}))" % config)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_") and k != "FUTURES_SCAN_DOTENV"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env={**clean, **env}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


DOTENV = "RABBITMQ_USER=dotenv-user\nRABBITMQ_PASSWORD=dotenv-secret\nRABBITMQ_PORT=5673\nRABBITMQ_VHOST=prod\n"


def test_dotenv_beside_the_code_overrides_the_file(tmp_path):
    assert load_in_copy(tmp_path, DOTENV, {}) == {"user": "dotenv-user", "password": "dotenv-secret",
                                                  "port": 5673, "vhost": "prod"}


def test_the_environment_wins_over_dotenv(tmp_path):
    loaded = load_in_copy(tmp_path, DOTENV, {"RABBITMQ_PASSWORD": "env-secret", "RABBITMQ_PORT": "5674"})
    assert loaded == {"user": "dotenv-user", "password": "env-secret", "port": 5674, "vhost": "prod"}
