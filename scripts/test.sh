#!/usr/bin/env bash
# The test command: prepares the machine (venv, requirements, local RabbitMQ) and runs the whole suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k worker -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q tests "$@"
