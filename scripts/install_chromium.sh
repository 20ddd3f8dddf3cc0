#!/usr/bin/env bash
# Headless Chromium for the scanner page's browser test (tests/test_scanner_page.py), from Debian's packages.
# Idempotent: does nothing when /usr/bin/chromium is there. Needs root (or sudo) to install.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install_chromium: installing chromium (Debian package) for the scanner page's browser test"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
[ -x /usr/bin/chromium ] || { echo "install_chromium: /usr/bin/chromium still missing" >&2; exit 1; }
