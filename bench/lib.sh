# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): the release binaries and the output
# directory. The sourcing script defines `die MESSAGE`.

# bench_binaries NAME BUILD: sets BRAID and KPEER: the release binaries, built first when
# BUILD is 1, else $BRAID_BIN / $KPEER_BIN (or the release build's). NAME prefixes the
# progress line.
bench_binaries() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    if [ "$2" = 1 ]; then
        echo "$1: building release binaries" >&2
        (cd "$ROOT" && cargo build --release -q -p braid --bin braid &&
            cargo build --release -q -p braid-interop --bin kpeer) || die "cargo build failed"
        BRAID=$TARGET/release/braid
        KPEER=$TARGET/release/kpeer
    else
        BRAID=${BRAID_BIN:-$TARGET/release/braid}
        KPEER=${KPEER_BIN:-$TARGET/release/kpeer}
    fi
    [ -x "$BRAID" ] || die "no braid binary at $BRAID"
    [ -x "$KPEER" ] || die "no kpeer binary at $KPEER"
}

# bench_outdir TEMPLATE: sets OUT (the --out directory, made, absolute; by default a new
# mktemp TEMPLATE) and RESULTS (its empty results.tsv).
bench_outdir() {
    if [ -z "$OUT" ]; then
        OUT=$(mktemp -d "$1")
    else
        mkdir -p "$OUT"
    fi
    OUT=$(cd "$OUT" && pwd)
    RESULTS=$OUT/results.tsv
    : >"$RESULTS"
}

# bench_needs HINT TOOL...: dies unless every TOOL is on the PATH (HINT: how to install them).
bench_needs() {
    local hint=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "needs $tool ($hint)"
    done
}
