"""No secret reaches a worker's log, even when an exchange echoes it back: the API key, the proxy's URL with its
password and the broker password all come back in an exchange's error text, which the worker logs. Only the
mask stands between them and the log: without it, this test goes red."""
from __future__ import annotations

import json

from tests.conftest import write_config

KEY, SECRET = "KEY-echoed-back-123", "SECRET-echoed-back-456"
PROXY_CREDENTIALS = "fsuser:PROXY-pass-echoed-789"


def test_secrets_an_exchange_echoes_back_are_masked(own_sim, own_rabbit, tmp_path, tinyproxies, start_worker):
    proxy_url = tinyproxies(1)[0].url(PROXY_CREDENTIALS)
    (tmp_path / "keys.json").write_text(json.dumps({"bybit": {"apiKey": KEY, "secret": SECRET}}))
    config = write_config(tmp_path / "config.json", own_rabbit, own_sim, symbols=["BTC/USDT:USDT"],
                          exchanges=["bybit"], api_keys_file=str(tmp_path / "keys.json"),
                          entry={"proxies": [proxy_url], "direct": False})
    echoed = [KEY, SECRET, proxy_url, own_rabbit.password]
    own_sim.inject_fault("bybit", "http500", endpoint="tickers", count=2,
                         message="request rejected; you sent " + " ".join(echoed))
    worker = start_worker("bybit", config)
    failure = worker.wait_for_log(r"(?m)^.*\[(WARNING|ERROR)\].*request rejected; you sent .*$", 30).group(0)
    assert failure.count("***") == len(echoed), failure  # each secret was there, and masked
    worker.wait_for_log(r"Published message to futures\.bybit\.BTCUSDT", 60)  # the fault ran out: it carries on
    assert worker.terminate() == 0
    log = worker.log_text()
    for secret in (KEY, SECRET, "PROXY-pass-echoed-789", own_rabbit.password):
        assert secret not in log
