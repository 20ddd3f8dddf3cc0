#!/usr/bin/env bash
# The benchmark command: prepares the machine (scripts/setup.sh: venv, requirements, local RabbitMQ), adds the
# plot's requirements (bench/requirements.txt), then runs the benchmark. The full run of the seven exchanges takes
# 1.5-2 hours on a quiet 2-core machine (real market sizes; the largest-N searches, three times each where the answer
# sits near a limit, also with 1-3 IPs; the peers; the board at 5 s; a 1,000-cycle soak per exchange): it prints its
# own estimate at the start (bench/estimate.py). It writes docs/benchmarks.md, .png and .json (a run stopped early
# leaves benchmarks.partial.json in its work dir); `scripts/bench.sh --quick` is a smoke run (~10 minutes for the
# seven, ~1.5 per exchange) into a temp dir. Shorter: `--repeats-near 2` (~1 h 40), `--repeats-near 1` (one search
# each, ~1 h 20: figures as the earlier pages had them), `--exchanges okx,hyperliquid` (~40 min).
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
