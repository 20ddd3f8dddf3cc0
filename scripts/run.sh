#!/usr/bin/env bash
# Run futures_scan on this machine: prepares it (virtualenv, requirements, a local RabbitMQ server when none
# answers at the configured address), copies config/config.example.json to config/config.json when there is
# none, and starts supervisord with supervisord.conf (the controller and one worker per exchange).
# Idempotent: when supervisord already runs, it says so and shows the status.
# FUTURES_SCAN_CONFIG=/path/to/config.json selects another config file. The config's path is recorded in
# run/config.path while the system runs, so that scripts/control_client.py and scripts/watch_snapshots.py
# talk to this system without --config; scripts/stop.sh removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
CONF=supervisord.conf
CTL=(.venv/bin/supervisorctl -c "$CONF")

# 1. Config
config=${FUTURES_SCAN_CONFIG:-config/config.json}
if [ ! -e "$config" ]; then
  if [ "$config" = config/config.json ]; then
    install -m 600 config/config.example.json config/config.json  # it will hold secrets: for its owner only
    echo "run: created config/config.json from config/config.example.json (edit it, then: supervisorctl restart all)"
  else
    echo "run: $config does not exist" >&2; exit 1
  fi
fi

# 2. Virtualenv, requirements, RabbitMQ at the config's address (RABBITMQ_HOST/PORT override it, as in the workers)
read -r cfg_host cfg_port < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1])).get("rabbitmq") or {}
print(r.get("host") or "127.0.0.1", r.get("port") or 5672)' "$config")
RABBITMQ_HOST=${RABBITMQ_HOST:-$cfg_host} RABBITMQ_PORT=${RABBITMQ_PORT:-$cfg_port} bash scripts/setup.sh

# 3. A RabbitMQ user per role (passwords generated into .env, mode 0600, when absent): every process connects
#    as its own role's user, with the least rights the broker can enforce.
.venv/bin/python scripts/broker_users.py --config "$config" || {
  echo "run: could not create the role users (above); for a remote broker set RABBITMQ_ADMIN_USER and" \
       "RABBITMQ_ADMIN_PASSWORD (an administrator of the broker) and run scripts/run.sh again" >&2; exit 1; }

# 4. supervisord
mkdir -p logs run state
if pid=$("${CTL[@]}" pid 2>/dev/null) && [[ "$pid" =~ ^[0-9]+$ ]]; then
  echo "run: supervisord already runs (pid $pid)"
  "${CTL[@]}" status || true
  exit 0
fi
readlink -f "$config" > run/config.path
.venv/bin/supervisord -c "$CONF" || { rm -f run/config.path; exit 1; }
for _ in $(seq 1 50); do
  pid=$("${CTL[@]}" pid 2>/dev/null) && [[ "$pid" =~ ^[0-9]+$ ]] && break
  sleep 0.2
done
[[ "${pid:-}" =~ ^[0-9]+$ ]] || { rm -f run/config.path; echo "run: supervisord did not start, see logs/supervisord.log" >&2; exit 1; }
echo "run: supervisord started (pid $pid), config ${config}"
sleep 1
"${CTL[@]}" status || true
cat <<HELP

  .venv/bin/supervisorctl status                  process states (run from the repository root)
  .venv/bin/supervisorctl tail -f worker:bybit    one exchange's log; or: tail -f logs/worker-bybit.log
  .venv/bin/supervisorctl restart worker:bybit    restart one exchange
  .venv/bin/python scripts/watch_snapshots.py 'futures.*.BTCUSDT'    one line per snapshot
  .venv/bin/python scripts/control_client.py get_symbols            the symbol set (add_symbol, ...)
  scripts/stop.sh                                 stop everything
HELP
