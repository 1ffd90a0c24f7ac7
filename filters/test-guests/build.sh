#!/usr/bin/env bash
# Builds every test guest into out/*.wasm (gitignored). Idempotent: cargo
# rebuilds only what changed, and the copy is skipped for unchanged files.
# host/tests/filter.rs runs it once before its tests.
#
# Needs the wasm32 targets of the Rust toolchain (installed below; `rustup
# target add` of an installed target does nothing) and, on the first run,
# crates.io for serde_json.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s%N)

rustup target add wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2 2>&1 | grep -v "is up to date" || true

# Guests that speak the ABI with no WASI at all, as most filters will.
unknown=(keep-warnings route replace counter infinite-loop alloc-bomb panic invalid-utf8
         invalid-json out-of-bounds huge-output missing-filter wrong-abi forbidden-import
         init-rejects wasi-probe)
args=()
for p in "${unknown[@]}"; do args+=(-p "$p"); done
cargo build --quiet --release --target wasm32-unknown-unknown "${args[@]}"
# A std filter as a WASI preview 1 toolchain builds it.
cargo build --quiet --release --target wasm32-wasip1 -p wasip1-std
# Rust on wasip2 makes a component of the kwex:filter world.
cargo build --quiet --release --target wasm32-wasip2 -p component -p component-http

mkdir -p out
copy() { cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
for p in "${unknown[@]}"; do
    copy "target/wasm32-unknown-unknown/release/${p//-/_}.wasm" "out/${p//-/_}.wasm"
done
copy target/wasm32-wasip1/release/wasip1_std.wasm out/wasip1_std.wasm
copy target/wasm32-wasip2/release/component.wasm out/component.wasm
copy target/wasm32-wasip2/release/component_http.wasm out/component_http.wasm

count=$(ls out/*.wasm | wc -l)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'test guests: %d modules in out/ (%d.%03d s)\n' "$count" $((ms / 1000)) $((ms % 1000))
