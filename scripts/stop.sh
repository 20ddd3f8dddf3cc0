#!/usr/bin/env bash
# Stop futures_scan (the real system or the demo): every process gets SIGTERM, prints its final statistics
# and exits; then supervisord itself exits. Waits until it has, then removes run/config.path (the running
# system's config, recorded by scripts/run.sh and scripts/demo.sh for the operator's tools).
set -euo pipefail
cd "$(dirname "$0")/.."
CTL=(.venv/bin/supervisorctl -c supervisord.conf)
if ! pid=$("${CTL[@]}" pid 2>/dev/null) || ! [[ "$pid" =~ ^[0-9]+$ ]]; then
  echo "stop: supervisord is not running"
  rm -f run/config.path
  exit 0
fi
"${CTL[@]}" shutdown
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || { rm -f run/config.path; echo "stop: stopped (supervisord pid $pid)"; exit 0; }
  sleep 0.1
done
echo "stop: supervisord (pid $pid) is still stopping, see logs/supervisord.log" >&2
exit 1
