#!/usr/bin/env bash
# Install (from Debian's packages), start, stop or locate the Redis server the tests and the
# Celery backend use: scripts/redis.sh install|start|stop|status|url. Listens on 127.0.0.1 only.
set -euo pipefail
port=${MEMSCOPE_REDIS_PORT:-6379}
dir=${MEMSCOPE_SERVICES_DIR:-${TMPDIR:-/tmp}/memscope-services}/redis

install() {
  command -v redis-server >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "redis-server is not installed: run 'sudo apt-get install redis-server' (or your system's package)" >&2
    exit 1
  fi
  echo "installing redis-server from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}

running() { redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; }

start() {
  install
  if running; then echo "redis already answers on 127.0.0.1:$port" >&2; return 0; fi
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log"
  for _ in $(seq 1 100); do running && { echo "redis started on 127.0.0.1:$port" >&2; return 0; }; sleep 0.1; done
  echo "redis did not answer on 127.0.0.1:$port within 10 s; see $dir/redis-$port.log" >&2
  exit 1
}

stop() { running && redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) running && echo "running on 127.0.0.1:$port" || { echo "not running"; exit 1; } ;;
  url) echo "redis://127.0.0.1:$port/0" ;;
  *) echo "usage: $0 install|start|stop|status|url" >&2; exit 2 ;;
esac
