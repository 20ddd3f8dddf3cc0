"""What the scanner and the controller import, seen from an interpreter of their own (pytest's has ccxt loaded
by other tests, so the check needs a fresh process)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_scanner_and_the_controller_do_not_load_ccxt():
    # ccxt costs 60 MB of resident memory and a third of a second to import; only the workers build clients.
    code = ("import sys, scanner, controller\n"
            "from common.config import load_config\n"
            "from common.exchanges import ccxt_exchange_ids, venue_for\n"
            "venue_for('kraken'); assert 'kraken' in ccxt_exchange_ids() and 'base' not in ccxt_exchange_ids()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ccxt'))")
    assert printed_by_fresh_python(code) == "[]"


def printed_by_fresh_python(code: str) -> str:
    """What `code` prints in an interpreter of its own (imports and signal handlers stay out of pytest's)."""
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()
