#!/usr/bin/env bash
# Fetch (from Maven Central, with mvn), start, stop or locate the Elasticsearch server the tests
# use: scripts/elasticsearch.sh install|start|stop|purge|status|url (purge: stop, delete the node's data). It is Elastic's test distribution
# (server core + x-pack core/security, no bundled JDK), listening on 127.0.0.1 only, security off,
# single node, 1 GB heap. As root it runs the server as the system user `memscope-es` (Elasticsearch
# refuses root). Override: MEMSCOPE_ES_VERSION, MEMSCOPE_ES_PORT, MEMSCOPE_ES_HEAP, ES_JAVA_HOME.
set -euo pipefail
version=${MEMSCOPE_ES_VERSION:-9.5.4}
port=${MEMSCOPE_ES_PORT:-9200}
heap=${MEMSCOPE_ES_HEAP:-1g}
base=${MEMSCOPE_SERVICES_DIR:-${TMPDIR:-/tmp}/memscope-services}/elasticsearch
home=$base/elasticsearch-$version
run=$base/node-$port            # data, logs and pid file of the server on this port
user=memscope-es
url="http://127.0.0.1:$port"

need_java() { case "$version" in 8.*) echo 17 ;; *) echo 21 ;; esac; }

java_major() { "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }

find_java() {
  local want candidates dir major
  want=$(need_java)
  candidates=("${ES_JAVA_HOME:-}" /usr/lib/jvm/*)
  for dir in "${candidates[@]}"; do
    [ -n "$dir" ] && [ -x "$dir/bin/java" ] || continue
    major=$(java_major "$dir")
    [ -n "$major" ] && [ "$major" -ge "$want" ] && { echo "$dir"; return 0; }
  done
  echo "Elasticsearch $version needs Java $want or newer: none found in ES_JAVA_HOME or /usr/lib/jvm;" \
    "install one (e.g. Temurin 25) and set ES_JAVA_HOME, or use MEMSCOPE_ES_VERSION=8.19.21 (Java 17)" >&2
  exit 1
}

install_tools() {
  local missing=()
  command -v mvn >/dev/null || missing+=(maven)
  command -v unzip >/dev/null || missing+=(unzip)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (or your system's packages)" >&2
    exit 1
  fi
  echo "installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install() {
  install_tools
  [ -x "$home/bin/elasticsearch" ] && return 0
  mkdir -p "$base"
  echo "fetching org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip with mvn" >&2
  mvn -B -q dependency:copy -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip" \
    -DoutputDirectory="$base" >&2
  rm -rf "$home.partial" && mkdir -p "$home.partial"
  unzip -q "$base/elasticsearch-$version.zip" -d "$home.partial"
  mv "$home.partial/elasticsearch-$version" "$home" && rm -rf "$home.partial" "$base/elasticsearch-$version.zip"
}

running() { curl -s -m 2 "$url/_cluster/health" 2>/dev/null | grep -q "\"cluster_name\""; }

healthy() { curl -s -m 5 "$url/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null | grep -q '"timed_out":false'; }

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

start() {
  install
  if running; then echo "elasticsearch already answers on $url" >&2; return 0; fi
  local java
  java=$(find_java)
  mkdir -p "$run/data" "$run/logs"
  if [ "$(id -u)" = 0 ]; then
    id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    chown -R "$user" "$home" "$run"
    chmod o+x "$base" "$(dirname "$base")"
  fi
  rm -f "$run/es.pid"
  as_server_user env ES_JAVA_HOME="$java" ES_JAVA_OPTS="-Xms$heap -Xmx$heap ${MEMSCOPE_ES_JAVA_OPTS:-}" \
    "$home/bin/elasticsearch" -d -p "$run/es.pid" \
    -Ediscovery.type=single-node -Expack.security.enabled=false -Enetwork.host=127.0.0.1 \
    -Ehttp.port="$port" -Epath.data="$run/data" -Epath.logs="$run/logs" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    >"$run/logs/stdout.log" 2>&1 || { tail -20 "$run/logs/stdout.log" >&2; exit 1; }
  for _ in $(seq 1 180); do
    healthy && { echo "elasticsearch $version started on $url" >&2; return 0; }
    sleep 1
  done
  echo "elasticsearch did not reach yellow health on $url within 180 s; see $run/logs" >&2
  exit 1
}

stop() {
  [ -f "$run/es.pid" ] || return 0
  local pid
  pid=$(cat "$run/es.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$run/es.pid"; return 0; }; sleep 1; done
  echo "elasticsearch (pid $pid) did not stop within 60 s" >&2
  exit 1
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  purge) stop; rm -rf "$run" ;;
  status) running && echo "running on $url" || { echo "not running"; exit 1; } ;;
  url) echo "$url" ;;
  *) echo "usage: $0 install|start|stop|purge|status|url" >&2; exit 2 ;;
esac
