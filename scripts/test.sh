#!/usr/bin/env bash
# The test command: prepares the machine (venv, requirements, local RabbitMQ, Debian's chromium, tinyproxy and tmux)
# and runs the whole suite: the test files five at a time (they mostly wait on 5 s cycles; each has its own
# vhost, simulator and processes; the tests that stop a broker stop a node of their own).
# `scripts/test.sh -m unit` runs the unit layer (no broker, no network, no processes) in seconds: it only needs
# the virtualenv. Any other arguments go to one plain pytest run, e.g. scripts/test.sh -k worker -x.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$*" = "-m unit" ]; then
  bash scripts/setup.sh --tests --venv-only
  exec .venv/bin/python -m pytest -q tests -m unit
fi
bash scripts/setup.sh --tests
bash scripts/install_test_tools.sh
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q tests "$@"
fi
exec .venv/bin/python -m pytest -q tests -n 5 --dist loadfile
