#!/usr/bin/env bash
# Builds the Rust example filters into out/ (gitignored):
#
#   out/<name>.wasm            every filter as a core module (ABI v1), built
#                              for wasm32-unknown-unknown: no imports at all
#   out/<name>.component.wasm  the polyglot filter and warnings-only as
#                              components (world kwex:filter/filter@1.0.0),
#                              built for wasm32-wasip2
#
# then prints each size and the time taken. Idempotent: cargo rebuilds only
# what changed. Needs the Rust toolchain with rustup, and crates.io on the
# first run.
#
#   filters/build.sh            build everything
#   filters/build.sh redact     build one filter (core module only)
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s%N)

# Crate name → output name. The polyglot filter is "polyglot-rust" in cargo
# and in out/, like the other languages' builds name theirs.
core=(warnings-only redact enrich route burst-limit dedot polyglot-rust)
components=(polyglot-rust warnings-only)
if [[ $# -gt 0 ]]; then
    core=("$@")
    components=()
fi

# `rustup target add` of an installed target only prints "up to date".
rustup target add wasm32-unknown-unknown wasm32-wasip1 wasm32-wasip2 2>&1 \
    | { grep -v "is up to date" || true; }

args=()
for p in "${core[@]}"; do args+=(-p "$p"); done
cargo build --release --target wasm32-unknown-unknown "${args[@]}"

if [[ ${#components[@]} -gt 0 ]]; then
    args=()
    for p in "${components[@]}"; do args+=(-p "$p"); done
    # Rust links a wasm32-wasip2 cdylib into a component (wasm-component-ld).
    cargo build --release --target wasm32-wasip2 "${args[@]}"
fi

mkdir -p out
copy() {
    [[ -f "$1" ]] || { echo "build.sh: $1 was not built" >&2; exit 1; }
    cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"
}
for p in "${core[@]}"; do
    copy "target/wasm32-unknown-unknown/release/${p//-/_}.wasm" "out/$p.wasm"
done
for p in "${components[@]}"; do
    copy "target/wasm32-wasip2/release/${p//-/_}.wasm" "out/$p.component.wasm"
done

for p in "${core[@]}"; do
    printf '%9d  out/%s.wasm\n' "$(stat -c %s "out/$p.wasm")" "$p"
done
for p in "${components[@]}"; do
    printf '%9d  out/%s.component.wasm\n' "$(stat -c %s "out/$p.component.wasm")" "$p"
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'filters: %d core modules, %d components in out/ (%d.%03d s)\n' \
    "${#core[@]}" "${#components[@]}" $((ms / 1000)) $((ms % 1000))
