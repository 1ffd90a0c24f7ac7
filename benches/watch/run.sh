#!/usr/bin/env bash
# The watch benchmark (BENCHMARKS.md, "Watch"): a real kube-apiserver holding
# N Events (default 50,000), kwex started with a filter chain and the discard
# _bulk endpoint as sink, timed from start until every document it should
# deliver has been acknowledged, then stopped with SIGTERM. Prints CPU
# seconds and peak RSS (/usr/bin/time -v) of kwex.
#
#   benches/watch/run.sh FILTER_DIR [N]
#
# Needs release builds (cargo build --release -p kwex -p kwex-benches), the
# test kube-apiserver (scripts/testenv/kube-apiserver.sh build), and
# `cargo xtask gen-events`.
set -euo pipefail
cd "$(dirname "$0")/../.."
filters=$1
n=${2:-50000}
dir=target/bench-watch
rm -rf "$dir" && mkdir -p "$dir"
bash scripts/testenv/kube-apiserver.sh start "$dir/kapi" >/dev/null
trap 'kill $discard 2>/dev/null || true; bash scripts/testenv/kube-apiserver.sh stop "$dir/kapi" >/dev/null' EXIT
. <(sed 's/^/export /' "$dir/kapi/env")
cargo xtask gen-events --count "$n" --output "$dir/events.ndjson" >/dev/null
python3 benches/watch/post-events.py "$KWEX_TEST_KAPI_URL" kwex-admin-token "$dir/kapi/ca.crt" "$dir/events.ndjson" "$n"

target/release/discard-bulk 127.0.0.1:19260 2>/dev/null &
discard=$!
sleep 0.5
# What the chain keeps: run it over the same Events with replay first.
expected=$(target/release/kwex replay --filters "$filters" --no-progress "$dir/events.ndjson" 2>/dev/null | wc -l)
start=$(date +%s%N)
/usr/bin/time -v -o "$dir/time.txt" target/release/kwex run --kubeconfig "$KWEX_TEST_KUBECONFIG" \
    --url http://127.0.0.1:19260 --filters "$filters" --spool memory \
    --kube-api-qps 50 --kube-api-burst 100 --metrics-address 127.0.0.1:19261 >/dev/null 2>"$dir/kwex.log" &
timer=$!
until [[ $(curl -s 127.0.0.1:19260/_stats/discard | python3 -c 'import json,sys; print(json.load(sys.stdin)["documents"])') -ge $expected ]]; do
    sleep 0.05
    (( $(date +%s%N) - start < 120000000000 )) || { echo "timed out; see $dir/kwex.log" >&2; exit 1; }
done
wall=$(( ($(date +%s%N) - start) / 1000000 ))
# SIGTERM to kwex itself, not to /usr/bin/time (whose command line is the same).
kill -TERM "$(pgrep -P "$timer" -x kwex)" || true
wait $timer || true
echo "watch job: $n Events listed, $expected documents acknowledged in ${wall} ms"
grep -E "User time|System time|Maximum resident" "$dir/time.txt"
