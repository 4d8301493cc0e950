#!/usr/bin/env bash
# Install (from Debian's packages), start, stop or locate the PostgreSQL server the conversation-record
# tests use: scripts/postgres.sh install|start|stop|status|url. Listens on 127.0.0.1 only, on a fixed
# port (MEMSCOPE_PG_PORT, 5433), runs as the non-root `postgres` user, and has a `memscope` user (password
# `memscope`, may create databases) and a `memscope` database.
set -euo pipefail
port=${MEMSCOPE_PG_PORT:-5433}
dir=${MEMSCOPE_SERVICES_DIR:-${TMPDIR:-/tmp}/memscope-services}/postgres
data=$dir/data
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

install() {
  [ -n "$bin" ] && [ -x "$bin/postgres" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed: run 'sudo apt-get install postgresql' (or your system's package)" >&2
    exit 1
  fi
  echo "installing postgresql from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
}

# The server refuses to run as root: as root, run it as the `postgres` user the package created.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_admin() { as_owner psql -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

running() { as_owner "$bin/pg_isready" -h 127.0.0.1 -p "$port" -q 2>/dev/null; }

start() {
  install
  if running; then echo "postgres already answers on 127.0.0.1:$port" >&2; return 0; fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -s "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
  fi
  as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres-$port.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" >/dev/null
  psql_admin -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'memscope') THEN
        CREATE ROLE memscope LOGIN CREATEDB PASSWORD 'memscope';
      END IF; END \$\$;"
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'memscope'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE memscope OWNER memscope"
  fi
  echo "postgres started on 127.0.0.1:$port (data in $data)" >&2
}

stop() { running && as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) running && echo "running on 127.0.0.1:$port" || { echo "not running"; exit 1; } ;;
  url) echo "postgresql://memscope:memscope@127.0.0.1:$port/memscope" ;;
  *) echo "usage: $0 install|start|stop|status|url" >&2; exit 2 ;;
esac
