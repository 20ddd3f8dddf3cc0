#!/usr/bin/env bash
# The test command: prepares the machine (venv, requirements, local RabbitMQ, Debian's chromium for the scanner
# page's browser test) and runs the whole suite. Extra arguments go to pytest, e.g. scripts/test.sh -k worker -x.
# `scripts/test.sh -m unit` runs the unit layer (no broker, no network, no processes) in seconds: it only needs
# the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$*" = "-m unit" ]; then
  bash scripts/setup.sh --venv-only
else
  bash scripts/setup.sh
  bash scripts/install_test_tools.sh
fi
exec .venv/bin/python -m pytest -q tests "$@"
