#!/usr/bin/env bash
# kwex test environment: two search servers on loopback, for the OpenSearch/Elasticsearch sink tests.
#
#   search-servers.sh install      install (or reuse the cached) binaries only
#   search-servers.sh start DIR    start both servers, all state and logs under DIR
#   search-servers.sh stop DIR     stop both (SIGTERM, up to 10 s, then SIGKILL) and check none is left
#                                  (grace: KWEX_SEARCH_STOP_TIMEOUT, see STOP_TIMEOUT_S below)
#
# What it is: two independently written servers that speak the real wire protocols, each a static
# binary shipped inside a PyPI package (pip fetches nothing else):
#   osmem-server 0.1.6  answers as OpenSearch 3.8.0       (in memory)
#   noida-db 0.2.3      answers as Elasticsearch 8.15.3   (only its elasticsearch service is started;
#                                                          data under DIR/noida-data)
# No real OpenSearch/Elasticsearch distribution is installable here. What they do and where they differ
# from the real servers (per-item _bulk statuses, mappings, templates, ISM/ILM, data streams, 413,
# malformed bodies, no auth at all): docs/decisions/2026-11-25-search-test-servers.md.
# On glibc < 2.39 noida-db prints "weak version `GLIBC_2.39' not found" to its log and runs anyway.
#
# Costs (measured on a 2-core machine): install ~2 s and 44 MB, cached OUTSIDE the repo, keyed by
# versions, at ${KWEX_CACHE_DIR:-$HOME/.cache/kwex}/search-servers-osmem0.1.6-noida0.2.3 (a second
# install returns at once: pip runs only when the cached binaries are missing or do not run).
# start: both ready within ~0.1 s; ~20 MB RSS each when empty (osmem keeps documents in memory and
# grows with them: keep test volumes small).
#
# `start DIR` (DIR must be absent or empty: use a fresh dir per test run) writes:
#   DIR/env        KWEX_TEST_OPENSEARCH_URL=, KWEX_TEST_ELASTICSEARCH_URL= (one per line, unquoted:
#                  DIR may not contain shell-special chars)
#   DIR/ports      the ports used; DIR/osmem.pid, DIR/noida.pid; DIR/osmem.log, DIR/noida.log;
#                  DIR/noida-data/
# Ports (loopback only): KWEX_OSMEM_PORT (default 19200), KWEX_NOIDA_PORT (default 19201). noida-db
# also listens on a random loopback port for its own control API.
set -euo pipefail

OSMEM_VERSION=0.1.6
NOIDA_VERSION=0.2.3
CACHE_DIR=${KWEX_CACHE_DIR:-$HOME/.cache/kwex}
PY_DIR=$CACHE_DIR/search-servers-osmem$OSMEM_VERSION-noida$NOIDA_VERSION
OSMEM_BIN=$PY_DIR/osmem_server/bin/osmem-server
NOIDA_BIN=$PY_DIR/noida_db/noida-db
READY_TIMEOUT_S=30
# SIGTERM grace before SIGKILL (both servers exit within ~50 ms of SIGTERM when healthy).
STOP_TIMEOUT_S=${KWEX_SEARCH_STOP_TIMEOUT:-10}

die() { echo "search-servers.sh: $*" >&2; exit 1; }
[[ $STOP_TIMEOUT_S =~ ^[0-9]+$ ]] || die "KWEX_SEARCH_STOP_TIMEOUT must be whole seconds: $STOP_TIMEOUT_S"
now_ms() { date +%s%3N; }
fmt_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)); }

# -------------------------------------------------------------------------------------------- install

bins_ok() {
  local out
  [ -x "$OSMEM_BIN" ] && [ -x "$NOIDA_BIN" ] || return 1
  out=$("$OSMEM_BIN" -version 2>/dev/null) && [[ $out == "osmem-server $OSMEM_VERSION "* ]] || return 1
  out=$("$NOIDA_BIN" version 2>/dev/null) && [[ $out == "noida-db $NOIDA_VERSION"* ]]
}

cmd_install() {
  if bins_ok; then
    echo "cached: $PY_DIR"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed (to pip install the servers)"
  command -v curl >/dev/null 2>&1 || die "curl is needed"
  local t0 tmp
  t0=$(now_ms)
  mkdir -p "$CACHE_DIR"
  # Install into a temporary dir and rename it into place, so an interrupted or concurrent install
  # never leaves a half-filled cache.
  tmp=$(mktemp -d "$PY_DIR.tmp.XXXXXX")
  if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps \
    --target "$tmp" "osmem-server==$OSMEM_VERSION" "noida-db==$NOIDA_VERSION"; then
    rm -rf "$tmp"
    die "pip install of osmem-server==$OSMEM_VERSION noida-db==$NOIDA_VERSION failed"
  fi
  rm -rf "$PY_DIR"
  mv -T "$tmp" "$PY_DIR" 2>/dev/null || rm -rf "$tmp" # lost a race with another install: keep theirs
  bins_ok || die "installed, but the binaries in $PY_DIR do not run"
  echo "installed $PY_DIR in $(fmt_ms $(($(now_ms) - t0)))"
}

# ------------------------------------------------------------------------------------ start / stop

# Sets DIR (absolute) from the argument; creates it when $2 = create.
set_dir() {
  [ -n "${1:-}" ] || die "usage: $0 start|stop DIR"
  if [ "${2:-}" = create ]; then mkdir -p "$1"; fi
  [ -d "$1" ] || die "no such directory: $1"
  DIR=$(cd "$1" && pwd -P)
  [[ $DIR =~ ^[A-Za-z0-9_./+@:,-]+$ ]] || die "DIR may only contain [A-Za-z0-9_./+@:,-] (it is written unquoted to DIR/env): $DIR"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is PID alive, not a zombie, and one of ours for this DIR? Both servers are started with DIR as
# their working directory (their command lines need not mention DIR), which guards against pid reuse.
our_pid_alive() {
  local pid=$1 state
  [ -r "/proc/$pid/cmdline" ] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [ "$state" != Z ] || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$DIR" ]
}

# Pids of any osmem-server / noida-db process still running in DIR (pid file or not).
leftovers() {
  local p pid exe
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "${exe##*/}" in
    osmem-server* | noida-db*) our_pid_alive "$pid" && echo "$pid" ;;
    esac
  done
  return 0
}

# stop_proc NAME: SIGTERM the process in DIR/NAME.pid, wait up to STOP_TIMEOUT_S, then SIGKILL.
stop_proc() {
  local name=$1 pidfile=$DIR/$1.pid pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if our_pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
      our_pid_alive "$pid" || break
      sleep 0.1
    done
    if our_pid_alive "$pid"; then
      echo "$name (pid $pid) still running after ${STOP_TIMEOUT_S}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do our_pid_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

stop_all() {
  stop_proc osmem
  stop_proc noida
}

start_osmem() {
  # -no-stdin-watch: it would exit when stdin closes; -no-ja: no Japanese analysis (not needed).
  (cd "$DIR" && exec "$OSMEM_BIN" -addr "127.0.0.1:$OSMEM_PORT" -no-stdin-watch -no-ja) \
    </dev/null >>"$DIR/osmem.log" 2>&1 &
  echo $! >"$DIR/osmem.pid"
}

start_noida() {
  mkdir -p "$DIR/noida-data"
  (cd "$DIR" && exec "$NOIDA_BIN" start --only elasticsearch --host 127.0.0.1 \
    --elasticsearch-port "$NOIDA_PORT" --data-dir "$DIR/noida-data") \
    </dev/null >>"$DIR/noida.log" 2>&1 &
  echo $! >"$DIR/noida.pid"
}

fail_start() {
  local f
  for f in osmem noida; do
    echo "--- tail $DIR/$f.log" >&2
    tail -n 30 "$DIR/$f.log" >&2 || true
  done
  stop_all
  exit 1
}

# wait_ready NAME PORT EXPECT T0: ready = `GET /` answers 200 and its body contains EXPECT (the version).
wait_ready() {
  local name=$1 url="http://127.0.0.1:$2" expect=$3 t0=$4 pid deadline body
  pid=$(cat "$DIR/$name.pid")
  deadline=$((t0 + READY_TIMEOUT_S * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    if ! our_pid_alive "$pid"; then
      echo "$name (pid $pid) exited" >&2
      fail_start
    fi
    if body=$(curl -sf -m 2 "$url/" 2>/dev/null); then
      if [[ $body != *"$expect"* ]]; then
        echo "$name at $url answers, but not as expected ($expect): $body" >&2
        fail_start
      fi
      echo "$name: ready at $url in $(fmt_ms $(($(now_ms) - t0)))"
      return 0
    fi
    sleep 0.05
  done
  echo "$name: NOT ready at $url after $(fmt_ms $(($(now_ms) - t0)))" >&2
  fail_start
}

cmd_start() {
  set_dir "${1:-}" create
  [ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty: use a fresh directory per test run"
  cmd_install
  OSMEM_PORT=${KWEX_OSMEM_PORT:-19200}
  NOIDA_PORT=${KWEX_NOIDA_PORT:-19201}
  local p
  for p in "$OSMEM_PORT" "$NOIDA_PORT"; do
    [[ $p =~ ^[0-9]+$ ]] || die "not a port: $p (KWEX_OSMEM_PORT / KWEX_NOIDA_PORT)"
    ! port_in_use "$p" || die "127.0.0.1:$p is already in use (set KWEX_OSMEM_PORT / KWEX_NOIDA_PORT)"
  done
  [ "$OSMEM_PORT" != "$NOIDA_PORT" ] || die "KWEX_OSMEM_PORT and KWEX_NOIDA_PORT are both $OSMEM_PORT"
  local t0
  t0=$(now_ms)
  printf 'OSMEM_PORT=%s\nNOIDA_PORT=%s\n' "$OSMEM_PORT" "$NOIDA_PORT" >"$DIR/ports"
  cat >"$DIR/env" <<ENV
KWEX_TEST_OPENSEARCH_URL=http://127.0.0.1:$OSMEM_PORT
KWEX_TEST_ELASTICSEARCH_URL=http://127.0.0.1:$NOIDA_PORT
ENV
  start_osmem
  start_noida
  wait_ready osmem "$OSMEM_PORT" '"number":"3.8.0"' "$t0"
  wait_ready noida "$NOIDA_PORT" '"number":"8.15.3"' "$t0"
  echo "start: both ready in $(fmt_ms $(($(now_ms) - t0)))"
  echo "env: $DIR/env"
}

cmd_stop() {
  set_dir "${1:-}"
  local t0 left
  t0=$(now_ms)
  stop_all
  # Servers of this DIR without a pid file (e.g. a start killed half-way): stop those too.
  left=$(leftovers)
  if [ -n "$left" ]; then
    local pid
    for pid in $left; do
      echo "found pid $pid without a pid file in $DIR: stopping it"
      echo "$pid" >"$DIR/leftover.pid"
      stop_proc leftover
    done
    left=$(leftovers)
    if [ -n "$left" ]; then
      echo "still running in $DIR after stop: $(echo "$left" | tr '\n' ' ')" >&2
      exit 1
    fi
  fi
  echo "stopped ($DIR) in $(fmt_ms $(($(now_ms) - t0)))"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
*)
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
