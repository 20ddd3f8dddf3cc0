"""common/logs.py in this process: the mask, log-safe text, the shared file's place (no process is started:
the masking of every way a process writes text is tests/test_logs.py)."""
from __future__ import annotations

import json

import pytest

from common.config import ConfigError, load_config
from common.logs import SecretMask, printable, secret_mask, setup_logging
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_secrets_are_masked_longest_first():
    mask = SecretMask()
    mask.add("abcd", "abcdefgh", "xy", None, "")  # "xy": too short to mask without masking ordinary text
    assert mask.mask("key abcdefgh, pw abcd, xy") == "key ***, pw ***, xy"


def test_unwritable_shared_file_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"logging\.file: cannot open .*not-a-folder/app\.log for appending"):
        setup_logging("INFO", blocker / "app.log")


def test_log_file_is_relative_to_the_repository_root(tmp_path):
    def config_with(logging_section):
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"exchanges": ["bybit"], "symbols": [], "logging": logging_section}))
        return load_config(path)
    assert config_with({"level": "INFO", "file": "logs/app.log"}).log_file == ROOT / "logs" / "app.log"
    assert config_with({"file": str(tmp_path / "all.log")}).log_file == tmp_path / "all.log"
    assert config_with({"level": "INFO"}).log_file is None


def test_printable_escapes_what_could_forge_a_log_line_and_cuts():
    assert printable("BTC\n2026-01-01 [ERROR] [controller] forged\x1b[31m") == \
        "BTC\\n2026-01-01 [ERROR] [controller] forged\\x1b[31m"
    assert printable("x" * 500, 40) == "x" * 40


def test_printable_masks_a_secret_before_cutting_it():
    secret = "pw-0123456789abcdef0123456789"
    secret_mask.add(secret)
    try:
        assert printable(f"login refused for {secret}", 30) == "login refused for ***"
        assert "pw-0123" not in printable(f"{'.' * 20}{secret}", 30)
    finally:
        secret_mask.secrets.discard(secret)
