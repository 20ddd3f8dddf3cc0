#!/usr/bin/env bash
# What the tests need beside RabbitMQ, from Debian's packages: headless Chromium for the scanner page's browser
# test (tests/test_scanner_page.py) and tinyproxy for the proxy tests (tests/test_proxies.py; the tests start
# their own instances on 127.0.0.2 and up, never the system service), tmux for the terminal view's test
# (tests/test_scan_tmux.py, on a tmux server of its own). Idempotent. Needs root (or sudo).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
[ -x /usr/bin/tmux ] || missing+=(tmux)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install_test_tools: installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
# The package starts a system tinyproxy on 127.0.0.1:8888; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet tinyproxy 2>/dev/null; then
  $SUDO systemctl stop tinyproxy || true
fi
for tool in chromium tinyproxy tmux; do
  [ -x "/usr/bin/$tool" ] || { echo "install_test_tools: /usr/bin/$tool still missing" >&2; exit 1; }
done
