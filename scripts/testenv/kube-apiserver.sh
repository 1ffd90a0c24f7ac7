#!/usr/bin/env bash
# kwex test environment: a real Kubernetes API server (plus etcd) on loopback, for integration tests.
#
#   kube-apiserver.sh build                  build (or reuse the cached) kube-apiserver v1.20.2
#   kube-apiserver.sh start DIR              start etcd + kube-apiserver, all state under DIR
#   kube-apiserver.sh stop DIR               stop both (SIGTERM, up to 10 s, then SIGKILL)
#                                            (grace: KWEX_KAPI_STOP_TIMEOUT, see STOP_TIMEOUT_S below)
#   kube-apiserver.sh restart-apiserver DIR  stop and start only kube-apiserver (same flags, same etcd)
#
# What it is: kube-apiserver v1.20.2 built from Debian bookworm's `kubernetes` source package with
# Debian's Go (golang-go 1.19), and Debian's etcd (etcd-server 3.4). No kubelet, no controller-manager:
# just the API (enough for Events, watches and RBAC). The vendored modern-go/reflect2 is replaced by
# Debian's v1.0.2 (v1.0.1 makes the apiserver panic under Go >= 1.18). `build` apt-get installs
# golang-go dpkg-dev make rsync golang-github-modern-go-reflect2-dev (+ etcd-server openssl curl if
# missing) and adds a deb-src entry for bookworm main when there is none.
#
# Costs (measured on a 2-core machine):
#   build  ~4 min CPU-bound and ~1.6 GB of temporary disk (source + Go cache, removed afterwards);
#          the ~100 MB binary is cached OUTSIDE the repo, keyed by version, at
#          ${KWEX_CACHE_DIR:-$HOME/.cache/kwex}/kube-apiserver-v1.20.2/kube-apiserver
#          (override the path with KWEX_KAPI_BIN). A second `build` returns at once. Needs root (or
#          sudo) for apt-get; apt-get runs only for what is missing.
#   start  ~4 s to /readyz, ~350 MB RSS for etcd + kube-apiserver together.
#
# `start DIR` (DIR must be absent or empty: use a fresh dir per test run) writes:
#   DIR/kubeconfig          admin (token kwex-admin-token, user admin, group system:masters), namespace default
#   DIR/kubeconfig-limited  unprivileged user (token kwex-limited-token, user kwex-limited, no groups, no RBAC
#                           bindings: it gets 403 until a test binds a role to it)
#   DIR/ca.crt              the CA that signed the server certificate
#   DIR/env                 KWEX_TEST_KUBECONFIG=, KWEX_TEST_KUBECONFIG_LIMITED=, KWEX_TEST_KAPI_URL=,
#                           KWEX_TEST_KAPI_DIR= (one per line, unquoted: DIR may not contain shell-special chars)
#   DIR/etcd.log, DIR/kube-apiserver.log, DIR/etcd.pid, DIR/kube-apiserver.pid, DIR/pki/, DIR/etcd/
# Ports (loopback only): KWEX_KAPI_PORT (default 16443) for the API; KWEX_ETCD_PORT (default 23790) for
# etcd clients and KWEX_ETCD_PORT+10 for etcd peers. They are recorded in DIR/ports, so stop and
# restart-apiserver use the same ones.
set -euo pipefail

KAPI_VERSION=v1.20.2
CACHE_DIR=${KWEX_CACHE_DIR:-$HOME/.cache/kwex}
KAPI_BIN=${KWEX_KAPI_BIN:-$CACHE_DIR/kube-apiserver-$KAPI_VERSION/kube-apiserver}
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
READY_TIMEOUT_S=60
# SIGTERM grace before SIGKILL. kube-apiserver 1.20 stops listening at once on SIGTERM but does not
# exit while watch streams are open (it waits up to its --request-timeout, 60 s), so a stop or
# restart-apiserver with a client watching takes the full grace: tests that restart mid-watch may set
# KWEX_KAPI_STOP_TIMEOUT=1 (or 0: SIGKILL right after SIGTERM, a crash-like restart).
STOP_TIMEOUT_S=${KWEX_KAPI_STOP_TIMEOUT:-10}
ADMIN_TOKEN=kwex-admin-token
LIMITED_TOKEN=kwex-limited-token

die() { echo "kube-apiserver.sh: $*" >&2; exit 1; }
[[ $STOP_TIMEOUT_S =~ ^[0-9]+$ ]] || die "KWEX_KAPI_STOP_TIMEOUT must be whole seconds: $STOP_TIMEOUT_S"
now_ms() { date +%s%3N; }
fmt_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)); }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root or sudo to run: $*"
  fi
}
apt_get() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

# ---------------------------------------------------------------------------------------------- build

kapi_bin_ok() {
  local out
  [ -x "$KAPI_BIN" ] && out=$("$KAPI_BIN" --version 2>/dev/null) && [[ $out == *" $KAPI_VERSION" ]]
}

# Runtime needs etcd, openssl and curl, even when the binary comes from the cache.
ensure_runtime_deps() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_deb_src() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if grep -Eqs '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' "$f"; then return 0; fi
  done
  echo "adding a deb-src entry for bookworm main (/etc/apt/sources.list.d/kwex-debsrc.sources)"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | as_root tee /etc/apt/sources.list.d/kwex-debsrc.sources >/dev/null
}

# Runs in a subshell with output to the build log.
do_build() {
  local work=$1 v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  set -x
  mkdir -p "$work" && cd "$work"
  apt-get source --download-only kubernetes
  ls -l kubernetes_*
  dpkg-source -x kubernetes_*.dsc src
  # k8s 1.20 vendors modern-go/reflect2 v1.0.1, which breaks under Go >= 1.18: the apiserver panics
  # (nil pointer in reflect2.Type2, via json-iterator) on e.g. an admin `GET /api/v1/events`.
  # Debian's golang-github-modern-go-reflect2-dev is v1.0.2, the upstream fix: use it instead.
  test -f "$REFLECT2_SRC/go_above_118.go"
  rm -rf src/vendor/github.com/modern-go/reflect2
  cp -r "$REFLECT2_SRC" src/vendor/github.com/modern-go/reflect2
  # Debian's Go, in GOPATH mode (the package builds without modules), everything inside $work.
  export PATH=/usr/lib/go/bin:$PATH GOPATH=$work/gopath GOCACHE=$work/gocache HOME=$work/home \
    GO111MODULE=off GOPROXY=off GOFLAGS='' CGO_ENABLED=0
  go version
  mkdir -p "$HOME" "$GOPATH/src/k8s.io"
  ln -sfn "$work/src" "$GOPATH/src/k8s.io/kubernetes"
  cd "$GOPATH/src/k8s.io/kubernetes"
  nice -n 10 make gen_openapi
  mkdir -p "$(dirname "$KAPI_BIN")"
  nice -n 10 go build -trimpath \
    -ldflags "-s -w -X $v.gitVersion=$KAPI_VERSION -X $v.gitMajor=1 -X $v.gitMinor=20" \
    -o "$KAPI_BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv -f "$KAPI_BIN.tmp" "$KAPI_BIN"
}

cmd_build() {
  if kapi_bin_ok; then
    ensure_runtime_deps
    echo "cached: $KAPI_BIN ($KAPI_VERSION)"
    return 0
  fi
  local t0 dir work log rc
  # rsync: hack/lib/golang.sh places built tools with it; reflect2: see do_build.
  local pkgs=(golang-go dpkg-dev make rsync golang-github-modern-go-reflect2-dev)
  t0=$(now_ms)
  dir=$(dirname "$KAPI_BIN")
  work=$dir/build
  log=$dir/build.log
  mkdir -p "$dir"
  echo "building kube-apiserver $KAPI_VERSION (~4 min on 2 cores), log: $log"
  ensure_deb_src
  apt_get update -qq
  command -v etcd >/dev/null 2>&1 || pkgs+=(etcd-server)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  apt_get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
    || die "no source package 'kubernetes' after apt-get update (deb-src for bookworm main missing?)"
  rm -rf "$work"
  set +e
  (set -e; do_build "$work") >"$log" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ] || ! kapi_bin_ok; then
    echo "build FAILED (rc=$rc); last lines of $log:" >&2
    tail -n 40 "$log" >&2
    echo "(build dir kept for inspection: $work)" >&2
    exit 1
  fi
  rm -rf "$work" # ~1.6 GB of source and Go cache
  echo "built $KAPI_BIN ($("$KAPI_BIN" --version)) in $(fmt_ms $(($(now_ms) - t0)))"
}

# ------------------------------------------------------------------------------------ start / stop

# Sets DIR (absolute) from the argument; creates it when $2 = create.
set_dir() {
  [ -n "${1:-}" ] || die "usage: $0 start|stop|restart-apiserver DIR"
  if [ "${2:-}" = create ]; then mkdir -p "$1"; fi
  [ -d "$1" ] || die "no such directory: $1"
  DIR=$(cd "$1" && pwd -P)
  [[ $DIR =~ ^[A-Za-z0-9_./+@:,-]+$ ]] || die "DIR may only contain [A-Za-z0-9_./+@:,-] (it is written unquoted to DIR/env): $DIR"
}

load_ports() {
  [ -f "$DIR/ports" ] || die "$DIR/ports missing: was '$0 start $DIR' run?"
  KAPI_PORT=$(sed -n 's/^KAPI_PORT=//p' "$DIR/ports")
  ETCD_PORT=$(sed -n 's/^ETCD_PORT=//p' "$DIR/ports")
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is PID alive, not a zombie, and started by us for this DIR (guards against pid reuse)?
our_pid_alive() {
  local pid=$1 state
  [ -r "/proc/$pid/cmdline" ] || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [ "$state" != Z ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$DIR/"
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

start_etcd() {
  local peer=$((ETCD_PORT + 10))
  etcd --name kwex --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "kwex=http://127.0.0.1:$peer" \
    </dev/null >>"$DIR/etcd.log" 2>&1 &
  echo $! >"$DIR/etcd.pid"
}

# The one place the kube-apiserver command line lives (start and restart-apiserver both use it).
start_apiserver() {
  "$KAPI_BIN" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$KAPI_PORT" \
    --tls-cert-file="$DIR/pki/server.crt" --tls-private-key-file="$DIR/pki/server.key" \
    --cert-dir="$DIR/pki/generated" \
    --client-ca-file="$DIR/pki/ca.crt" \
    --token-auth-file="$DIR/pki/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$DIR/pki/sa.key" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false \
    </dev/null >>"$DIR/kube-apiserver.log" 2>&1 &
  echo $! >"$DIR/kube-apiserver.pid"
}

# Ready = /readyz answers 200 (it includes the RBAC bootstrap-roles hook) and namespace `default` exists
# (created by the bootstrap controller shortly after; tests write Events into it).
wait_ready() {
  local what=$1 t0=$2 url="https://127.0.0.1:$KAPI_PORT" pid deadline
  pid=$(cat "$DIR/kube-apiserver.pid")
  deadline=$((t0 + READY_TIMEOUT_S * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    if ! our_pid_alive "$pid"; then
      echo "kube-apiserver (pid $pid) exited" >&2
      break
    fi
    if curl -sf -m 2 --cacert "$DIR/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$url/readyz" >/dev/null 2>&1 &&
      curl -sf -m 2 --cacert "$DIR/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$url/api/v1/namespaces/default" >/dev/null 2>&1; then
      echo "$what: ready at $url in $(fmt_ms $(($(now_ms) - t0)))"
      return 0
    fi
    sleep 0.2
  done
  echo "$what: kube-apiserver NOT ready at $url after $(fmt_ms $(($(now_ms) - t0)))" >&2
  echo "--- tail $DIR/etcd.log" >&2
  tail -n 20 "$DIR/etcd.log" >&2 || true
  echo "--- tail $DIR/kube-apiserver.log" >&2
  tail -n 40 "$DIR/kube-apiserver.log" >&2 || true
  stop_proc kube-apiserver
  stop_proc etcd
  exit 1
}

gen_pki() {
  local p=$DIR/pki
  mkdir -p "$p"
  (
    cd "$p"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=kwex-test-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >server-ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 3650 \
      -extfile server-ext.cnf 2>/dev/null
    # token,user,uid[,"group1,group2"]
    printf '%s,admin,kwex-admin-uid,"system:masters"\n%s,kwex-limited,kwex-limited-uid\n' \
      "$ADMIN_TOKEN" "$LIMITED_TOKEN" >tokens.csv
    chmod 600 ./*.key tokens.csv
  )
  cp "$p/ca.crt" "$DIR/ca.crt"
}

write_kubeconfig() { # FILE USER TOKEN
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kwex-test
  cluster:
    server: https://127.0.0.1:$KAPI_PORT
    certificate-authority-data: $(base64 -w0 "$DIR/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: kwex-test
  context:
    cluster: kwex-test
    user: $2
    namespace: default
current-context: kwex-test
KC
  chmod 600 "$1"
}

cmd_start() {
  set_dir "${1:-}" create
  [ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty: use a fresh directory per test run"
  kapi_bin_ok || die "no working kube-apiserver $KAPI_VERSION at $KAPI_BIN: run '$0 build' first"
  command -v etcd >/dev/null 2>&1 || die "etcd not installed: run '$0 build' (installs etcd-server)"
  KAPI_PORT=${KWEX_KAPI_PORT:-16443}
  ETCD_PORT=${KWEX_ETCD_PORT:-23790}
  local p
  for p in "$KAPI_PORT" "$ETCD_PORT" $((ETCD_PORT + 10)); do
    ! port_in_use "$p" || die "127.0.0.1:$p is already in use (set KWEX_KAPI_PORT / KWEX_ETCD_PORT)"
  done
  local t0
  t0=$(now_ms)
  printf 'KAPI_PORT=%s\nETCD_PORT=%s\n' "$KAPI_PORT" "$ETCD_PORT" >"$DIR/ports"
  gen_pki
  write_kubeconfig "$DIR/kubeconfig" admin "$ADMIN_TOKEN"
  write_kubeconfig "$DIR/kubeconfig-limited" kwex-limited "$LIMITED_TOKEN"
  cat >"$DIR/env" <<ENV
KWEX_TEST_KUBECONFIG=$DIR/kubeconfig
KWEX_TEST_KUBECONFIG_LIMITED=$DIR/kubeconfig-limited
KWEX_TEST_KAPI_URL=https://127.0.0.1:$KAPI_PORT
KWEX_TEST_KAPI_DIR=$DIR
ENV
  start_etcd
  start_apiserver
  wait_ready start "$t0"
  echo "env: $DIR/env"
}

cmd_stop() {
  set_dir "${1:-}"
  stop_proc kube-apiserver
  stop_proc etcd
  echo "stopped ($DIR)"
}

cmd_restart_apiserver() {
  set_dir "${1:-}"
  load_ports
  if [ ! -f "$DIR/etcd.pid" ] || ! our_pid_alive "$(cat "$DIR/etcd.pid")"; then
    die "etcd for $DIR is not running (start it with '$0 start DIR')"
  fi
  local t0
  t0=$(now_ms)
  stop_proc kube-apiserver
  echo "restart-apiserver: stopped in $(fmt_ms $(($(now_ms) - t0)))"
  start_apiserver
  wait_ready restart-apiserver "$t0"
}

case "${1:-}" in
build) cmd_build ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
restart-apiserver) cmd_restart_apiserver "${2:-}" ;;
*)
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
