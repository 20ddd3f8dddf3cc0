#!/usr/bin/env bash
# Prepare this machine to run or test futures_scan: the virtualenv with every version requirements.lock pins,
# and a local RabbitMQ server (management plugin on) when none answers at RABBITMQ_HOST:RABBITMQ_PORT.
# Idempotent: a second run only checks. Needs root (or sudo) only to install Debian packages.
# --tests: the test tools too (tests/requirements.lock: the runtime's pins plus pytest and friends).
# --venv-only: the virtualenv and its packages only (what the unit tests need); with --tests, the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# 1. Python virtualenv
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  echo "setup: installing python3-venv"; apt_install python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"; python3 -m venv .venv
fi
lock=requirements.lock
venv_only=""
for arg in "$@"; do
  case "$arg" in
    --tests) lock=tests/requirements.lock ;;
    --venv-only) venv_only=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done
stamp=.venv/.requirements.sha
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing $lock"
  .venv/bin/pip install -q --disable-pip-version-check -r "$lock"
  echo "$want" > "$stamp"
fi

[ -n "$venv_only" ] && exit 0

# 2. RabbitMQ
host=${RABBITMQ_HOST:-127.0.0.1}
port=${RABBITMQ_PORT:-5672}
answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; }
if answers; then
  echo "setup: RabbitMQ answers at $host:$port"
  exit 0
fi
case "$host" in 127.*|localhost) ;; *) echo "setup: RabbitMQ at $host:$port does not answer" >&2; exit 1;; esac
if ! command -v rabbitmq-server >/dev/null; then
  echo "setup: installing rabbitmq-server"; apt_install rabbitmq-server
fi
echo "setup: starting a local RabbitMQ server"
$SUDO rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
if ! $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
  $SUDO rabbitmq-server -detached
fi
# -detached returns before the Erlang node registers, and await_startup fails at once (exit 69) on a node
# it cannot reach yet: poll until the node answers, then wait for the boot to finish.
for _ in $(seq 1 120); do $SUDO rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
if ! $SUDO rabbitmqctl -q await_startup --timeout 120 >/dev/null; then
  echo "setup: RabbitMQ did not start; the end of its log:" >&2
  tail -n 40 /var/log/rabbitmq/rabbit@*.log >&2 2>/dev/null || true
  exit 1
fi
$SUDO rabbitmqctl -q start_app >/dev/null 2>&1 || true
for _ in $(seq 1 60); do answers && break; sleep 1; done
answers || { echo "setup: RabbitMQ did not start" >&2; exit 1; }
echo "setup: RabbitMQ running at $host:$port, management UI at http://$host:15672"
