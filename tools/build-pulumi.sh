#!/usr/bin/env bash
# Build a pinned Pulumi CLI (and what it needs for Python programs, Python
# dynamic providers and Python policy packs) from Go modules into .tools/bin.
#
#   tools/build-pulumi.sh            # build what is missing, print the PATH to use
#   tools/build-pulumi.sh --force    # rebuild everything in .tools/bin
#
# Idempotent: every piece carries a stamp (.tools/bin/.stamp-<name>) with the
# pinned version and a hash of its inputs; a piece whose stamp matches is
# skipped. If a usable `pulumi` is already on PATH (outside .tools/bin) it is
# used and only the missing Python pieces are provided. See tools/README.md.
set -euo pipefail

PULUMI_VERSION=3.259.0            # github.com/pulumi/pulumi/pkg/v3 and sdk/v3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD="$ROOT/tools/pulumi"          # our Go module pinning pkg/v3 + sdk/v3
BIN="$ROOT/.tools/bin"
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

say() { printf '[build-pulumi] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not installed (need Go >= 1.25.11; this machine's Go 1.26 works)"
mkdir -p "$BIN"

inputs_hash() {  # hash of the files a piece is built from
    cat "$@" | sha256sum | cut -c1-16
}

up_to_date() {  # <name> <stamp-content>
    [[ $FORCE == 0 && -x "$BIN/$1" && -f "$BIN/.stamp-$1" && "$(cat "$BIN/.stamp-$1")" == "$2" ]]
}

go_build() {  # <name> <package> <stamp>: build with a heartbeat, log in .tools/build-<name>.log
    local name=$1 pkg=$2 stamp=$3 start=$SECONDS pid rc log
    log="$ROOT/.tools/build-$name.log"
    say "building $name ($pkg) -- cold builds take minutes on 2 cores; log: $log"
    rm -f "$BIN/.stamp-$name"
    (cd "$MOD" && exec nice -n 10 go build -v -trimpath -ldflags "$LDFLAGS" -o "$BIN/$name.tmp" "$pkg") >"$log" 2>&1 &
    pid=$!
    local tick=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if (( ++tick % 15 == 0 )) && kill -0 "$pid" 2>/dev/null; then
            say "  ... $name: $((SECONDS - start))s, $(wc -l <"$log") packages compiled"
        fi
    done
    rc=0; wait "$pid" || rc=$?
    if [[ $rc != 0 ]]; then
        tail -n 30 "$log" >&2
        die "go build of $name failed (exit $rc); full log: $log"
    fi
    mv -f "$BIN/$name.tmp" "$BIN/$name"
    echo "$stamp" >"$BIN/.stamp-$name"
    say "built $BIN/$name in $((SECONDS - start))s"
}

# Locate the published sdk/v3 module (it ships the Python exec shim and the
# dynamic-provider launcher).
say "resolving Go modules (pkg/v3 and sdk/v3 v$PULUMI_VERSION) ..."
SDK_DIR=$(cd "$MOD" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3 2>/dev/null) || true
if [[ -z $SDK_DIR || ! -d $SDK_DIR ]]; then
    (cd "$MOD" && go mod download github.com/pulumi/pulumi/sdk/v3) ||
        die "cannot download github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION from the Go module proxy"
    SDK_DIR=$(cd "$MOD" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
fi

# 1. The CLI.
existing=""
if p=$(command -v pulumi 2>/dev/null) && [[ $(cd "$(dirname "$p")" && pwd) != "$BIN" ]]; then
    if v=$("$p" version 2>/dev/null); then
        existing=$p
        say "using the pulumi already on PATH: $p ($v); not building the CLI"
        [[ $v == "v$PULUMI_VERSION" ]] || say "note: it is $v, the pinned version is v$PULUMI_VERSION"
    else
        say "pulumi on PATH ($p) does not run; building the pinned one"
    fi
fi
if [[ -z $existing ]]; then
    stamp="v$PULUMI_VERSION $(inputs_hash "$MOD/go.mod" "$MOD/go.sum")"
    if up_to_date pulumi "$stamp"; then
        say "pulumi v$PULUMI_VERSION already built"
    else
        go_build pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "$stamp"
    fi
    "$BIN/pulumi" version >/dev/null || die "$BIN/pulumi was built but does not run"
fi

# 2. The Python language host (ours: upstream's module is not on the proxy),
#    unless a real one is already on PATH next to an existing CLI.
if [[ -n $existing ]] && command -v pulumi-language-python >/dev/null 2>&1 &&
   [[ $(dirname "$(command -v pulumi-language-python)") != "$BIN" ]]; then
    say "using pulumi-language-python from PATH: $(command -v pulumi-language-python)"
else
    stamp="v$PULUMI_VERSION $(inputs_hash "$MOD/go.mod" "$MOD/go.sum" "$MOD/cmd/pulumi-language-python/main.go")"
    if up_to_date pulumi-language-python "$stamp"; then
        say "pulumi-language-python already built"
    else
        go_build pulumi-language-python ./cmd/pulumi-language-python "$stamp"
    fi
    # The exec shim it runs, from the pinned sdk/v3 module.
    install -m 0755 "$SDK_DIR/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
fi

# 3. Launchers: dynamic providers (upstream script, shipped in sdk/v3) and
#    Python policy packs (ours; only used when no language host is found).
install -m 0755 "$SDK_DIR/python/dist/pulumi-resource-pulumi-python" "$BIN/pulumi-resource-pulumi-python"
install -m 0755 "$MOD/launchers/pulumi-analyzer-policy-python" "$BIN/pulumi-analyzer-policy-python"
say "installed launchers: pulumi-resource-pulumi-python, pulumi-analyzer-policy-python"

say "done. Add to PATH:"
if [[ -n $existing ]]; then
    echo "export PATH=\"$BIN:\$PATH\"   # (pulumi itself: $existing)"
else
    echo "export PATH=\"$BIN:\$PATH\""
fi
