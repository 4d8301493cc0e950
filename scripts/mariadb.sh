#!/usr/bin/env bash
# Install (from Debian's packages), start, stop or locate the MariaDB server the conversation-record
# tests use: scripts/mariadb.sh install|start|stop|status|url. Listens on 127.0.0.1 only, on a fixed
# port (MEMSCOPE_MARIADB_PORT, 3307), and has a `memscope` user (password `memscope`) allowed to create
# and drop the databases named `memscope` and `memscope_*`, and a `memscope` database.
set -euo pipefail
port=${MEMSCOPE_MARIADB_PORT:-3307}
dir=${MEMSCOPE_SERVICES_DIR:-${TMPDIR:-/tmp}/memscope-services}/mariadb
data=$dir/data
sock=$dir/mariadb.sock

install() {
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "mariadb-server is not installed: run 'sudo apt-get install mariadb-server' (or your system's package)" >&2
    exit 1
  fi
  echo "installing mariadb-server from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null
}

# As root, the server runs as the `mysql` user the package created.
owner() { if [ "$(id -u)" = 0 ]; then echo mysql; else id -un; fi; }

admin() { mariadb --socket="$sock" -u root "$@"; }

running() { mariadb-admin --socket="$sock" -u root ping >/dev/null 2>&1; }

start() {
  install
  if running; then echo "mariadb already answers on 127.0.0.1:$port" >&2; return 0; fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown mysql:mysql "$dir"
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$data" --user="$(owner)" --auth-root-authentication-method=socket \
      --skip-test-db >"$dir/install-db.log" 2>&1
  fi
  (setsid mariadbd --no-defaults --datadir="$data" --user="$(owner)" --bind-address=127.0.0.1 --port="$port" \
    --socket="$sock" --pid-file="$dir/mariadb.pid" --log-error="$dir/mariadb-$port.log" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --max-connections=300 \
    --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=2 --skip-name-resolve \
    </dev/null >/dev/null 2>&1 &)
  for _ in $(seq 1 300); do running && break; sleep 0.1; done
  running || { echo "mariadb did not answer on 127.0.0.1:$port within 30 s; see $dir/mariadb-$port.log" >&2; exit 1; }
  admin -e "CREATE USER IF NOT EXISTS 'memscope'@'127.0.0.1' IDENTIFIED BY 'memscope';
    CREATE DATABASE IF NOT EXISTS memscope CHARACTER SET utf8mb4;
    GRANT ALL PRIVILEGES ON \`memscope\`.* TO 'memscope'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON \`memscope\\_%\`.* TO 'memscope'@'127.0.0.1';"
  echo "mariadb started on 127.0.0.1:$port (data in $data)" >&2
}

stop() { running && mariadb-admin --socket="$sock" -u root shutdown >/dev/null 2>&1 || true; }

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) running && echo "running on 127.0.0.1:$port" || { echo "not running"; exit 1; } ;;
  url) echo "mysql://memscope:memscope@127.0.0.1:$port/memscope" ;;
  *) echo "usage: $0 install|start|stop|status|url" >&2; exit 2 ;;
esac
