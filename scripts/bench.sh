#!/usr/bin/env bash
# The benchmark command: prepares the machine (scripts/setup.sh: venv, requirements, local RabbitMQ), adds the
# plot's requirements (bench/requirements.txt), then runs the benchmark. The full run takes ~50 minutes on 2 cores
# (real market sizes, the largest-N searches up to every listed perpetual and with 1-3 IPs, the board at 5 s) and writes
# docs/benchmarks.md, .png and .json; `scripts/bench.sh --quick` is a smoke run of a few minutes into a temp dir.
# Arguments go to `python -m bench.run` (see bench/run.py). Needs rabbitmqctl (root or sudo) for a private vhost.
# The throttle beside CPU hogs (0 x 429 under load, the throughput it keeps) is a run of its own, ~15 minutes:
# `.venv/bin/python -m bench.pacing` writes docs/benchmarks-pacing.md and .json (see bench/pacing.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stamp=.venv/.bench-requirements.sha
want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench: installing bench/requirements.txt"
  .venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
  echo "$want" > "$stamp"
fi
exec .venv/bin/python -m bench.run "$@"
