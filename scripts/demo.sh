#!/usr/bin/env bash
# The demo: the whole system under supervisord, with every exchange's api_url pointed at the built-in
# exchange simulator (which supervisord runs too, on 127.0.0.1:8900). No internet, no API keys needed.
# Prepares the machine like scripts/run.sh (virtualenv, requirements, local RabbitMQ).
#   FUTURES_SCAN_SIM_PORT=8901 scripts/demo.sh       another port for the simulator
#   FUTURES_SCAN_SCANNER_PORT=8001 scripts/demo.sh   another port for the scanner's page (default 8000)
# The config's path is recorded in run/config.path while the demo runs, so that scripts/control_client.py and
# scripts/watch_snapshots.py talk to the demo without --config. Stop with scripts/stop.sh (removes the record).
set -euo pipefail
cd "$(dirname "$0")/.."
CTL=(.venv/bin/supervisorctl -c supervisord.conf)

export FUTURES_SCAN_SIM_PORT=${FUTURES_SCAN_SIM_PORT:-8900}
SCANNER_PORT=${FUTURES_SCAN_SCANNER_PORT:-8000}
[[ "$SCANNER_PORT" =~ ^[0-9]+$ ]] || { echo "demo: FUTURES_SCAN_SCANNER_PORT must be a port number" >&2; exit 1; }
[[ "$FUTURES_SCAN_SIM_PORT" =~ ^[0-9]+$ ]] || { echo "demo: FUTURES_SCAN_SIM_PORT must be a port number" >&2; exit 1; }
mkdir -p logs run state
config=config/config.demo.json
if [ "$FUTURES_SCAN_SIM_PORT" != 8900 ] || [ "$SCANNER_PORT" != 8000 ]; then
  config=run/config.demo.json
  sed -e "s#http://127.0.0.1:8900/#http://127.0.0.1:$FUTURES_SCAN_SIM_PORT/#" \
      -e "s#\"listen\": \"127.0.0.1:8000\"#\"listen\": \"127.0.0.1:$SCANNER_PORT\"#" config/config.demo.json > "$config"
fi
export FUTURES_SCAN_CONFIG="$PWD/$config"

bash scripts/setup.sh
# The demo runs as it should in production: each process as its role's RabbitMQ user (passwords in .env).
.venv/bin/python scripts/broker_users.py --config "$FUTURES_SCAN_CONFIG"

if pid=$("${CTL[@]}" pid 2>/dev/null) && [[ "$pid" =~ ^[0-9]+$ ]]; then
  if "${CTL[@]}" status simulator >/dev/null 2>&1; then
    echo "demo: the demo already runs (supervisord pid $pid)"
    "${CTL[@]}" status || true
    exit 0
  fi
  echo "demo: supervisord already runs the real system (pid $pid); stop it first with scripts/stop.sh" >&2
  exit 1
fi
if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FUTURES_SCAN_SIM_PORT" 2>/dev/null; then
  echo "demo: port $FUTURES_SCAN_SIM_PORT is taken; choose another: FUTURES_SCAN_SIM_PORT=8901 scripts/demo.sh" >&2
  exit 1
fi
echo "$FUTURES_SCAN_CONFIG" > run/config.path
.venv/bin/supervisord -c supervisord.demo.conf || { rm -f run/config.path; exit 1; }
for _ in $(seq 1 50); do
  pid=$("${CTL[@]}" pid 2>/dev/null) && [[ "$pid" =~ ^[0-9]+$ ]] && break
  sleep 0.2
done
[[ "${pid:-}" =~ ^[0-9]+$ ]] || { rm -f run/config.path; echo "demo: supervisord did not start, see logs/supervisord.log" >&2; exit 1; }
echo "demo: supervisord started (pid $pid): simulator on 127.0.0.1:$FUTURES_SCAN_SIM_PORT, config $config"
sleep 1
"${CTL[@]}" status || true
cat <<HELP

Snapshots appear within about 10 seconds. Watch them (the tools find the demo's config by themselves):
  .venv/bin/python scripts/watch_snapshots.py                      everything
  .venv/bin/python scripts/watch_snapshots.py 'futures.*.BTCUSDT' 'futures.*.BTCUSDC'  BTC on every exchange
                                                                 (Hyperliquid's perpetuals settle in USDC)
  .venv/bin/python scripts/watch_snapshots.py 'futures.bybit.#'    everything from Bybit
The scanner's live table: http://127.0.0.1:$SCANNER_PORT  (or in a terminal: .venv/bin/python scripts/scan.py)
Operate it:
  .venv/bin/python scripts/control_client.py get_symbols          the symbol set; add_symbol "XRP/USDT:USDT" adds one
  tail -f logs/app.log                            every process's log in one file
  .venv/bin/supervisorctl status                  process states (run from the repository root)
  .venv/bin/supervisorctl tail -f worker:bybit    one exchange's log; or: tail -f logs/worker-bybit.log
  .venv/bin/supervisorctl restart worker:bybit    restart one exchange
  curl -X POST 127.0.0.1:$FUTURES_SCAN_SIM_PORT/__sim/fault -d '{"exchange": "bybit", "kind": "hang", "seconds": 20}'
                                                  make Bybit hang for 20 s; the others carry on
  http://127.0.0.1:15672                          RabbitMQ management UI (user fs_operator, its password in .env)
  scripts/stop.sh                                 stop everything
HELP
