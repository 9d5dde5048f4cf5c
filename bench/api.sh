#!/usr/bin/env bash
# bench/api.sh: throughput through braid's library API against the CLI, one path, both
# directions, against the Linux kernel's MPTCP, in one run.
#
#   braid -> kernel   sender: `braid connect --send`, apipeer send (the library API, with a
#                     multi-thread and a current-thread tokio runtime), and optionally an
#                     older braid binary (--old BIN); receiver: kpeer listen --sink
#   kernel -> braid   sender: kpeer connect --send; receiver: `braid listen --sink --once`,
#                     apipeer recv (both runtimes), the older binary
#
# Goodput is the receiver's: bytes / its duration_s. Each transfer runs in a fresh
# namespace braid-api-<pid>-<n> (TUN braid0, the kernel on 10.0.0.1/24, braid on
# 10.0.0.2), deleted on exit. The median of --reps runs is printed.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/api.sh [options]          (needs root; builds release binaries first)

  --bytes N     bytes per transfer (default 1G; K, M, G suffixes)
  --reps N      repetitions; the median is printed (default 3)
  --old BIN     also measure this braid binary (e.g. one built before the library API)
  --no-build    use the release binaries as they are
  --markdown F  also write the table as markdown to F
  -h, --help    this text
EOF
}

BYTES=1G
REPS=3
OLD=""
BUILD=1
MARKDOWN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bytes) BYTES="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --old) OLD="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --markdown) MARKDOWN="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "api.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "api.sh: needs root (network namespaces, TUN)" >&2; exit 1; }
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$BUILD" -eq 1 ]; then
    cargo build -q --release -p braid --bin braid -p braid-interop --bin kpeer --bin apipeer
fi
BRAID="$TARGET/release/braid"
KPEER="$TARGET/release/kpeer"
APIPEER="$TARGET/release/apipeer"
case "$BYTES" in
    *G) N=$(( ${BYTES%G} << 30 )) ;;
    *M) N=$(( ${BYTES%M} << 20 )) ;;
    *K) N=$(( ${BYTES%K} << 10 )) ;;
    *) N=$BYTES ;;
esac

RUN=0
NS=""
cleanup() {
    if [ -n "$NS" ]; then
        ip netns del "$NS" 2>/dev/null || true
        rm -f "/tmp/$NS".*
    fi
}
trap cleanup EXIT

# Each transfer runs in a command substitution (a subshell): its namespace is named after
# the subshell and deleted when the subshell exits.
fresh_ns() {
    cleanup
    RUN=$((RUN + 1))
    NS="braid-api-$$-$BASHPID-$RUN"
    trap cleanup EXIT
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip netns exec "$NS" sysctl -qw net.mptcp.enabled=1
    ip -n "$NS" tuntap add dev braid0 mode tun
    ip -n "$NS" addr add 10.0.0.1/24 dev braid0
    ip -n "$NS" link set braid0 up
}

mbps() { python3 -c 'import json,sys
d = json.loads(sys.argv[1]); b = d.get("bytes_received", 0); t = d.get("duration_s", 0)
print("%.0f" % (b * 8 / t / 1e6 if t else 0))' "$1"; }

last_json() { grep '^{' | tail -1; }

wait_listening() { for _ in $(seq 100); do grep -q listening "$1" 2>/dev/null && return; sleep 0.05; done; }

# One braid -> kernel transfer; $1 names the sender kind.
send_once() {
    fresh_ns
    local err="/tmp/$NS.err"
    ip netns exec "$NS" "$KPEER" listen --port 5000 --proto mptcp --sink --json >"/tmp/$NS.k" 2>"$err" &
    local k=$!
    wait_listening "$err"
    case "$1" in
        cli) ip netns exec "$NS" "$BRAID" connect 10.0.0.1:5000 --path braid0=10.0.0.2 --send "$N" --json >/dev/null 2>&1 ;;
        old) ip netns exec "$NS" "$OLD" connect 10.0.0.1:5000 --path braid0=10.0.0.2 --send "$N" --json >/dev/null 2>&1 ;;
        api) ip netns exec "$NS" "$APIPEER" send --path braid0=10.0.0.2 --remote 10.0.0.1:5000 --bytes "$N" >/dev/null 2>&1 ;;
        api-ct) APIPEER_RUNTIME=current ip netns exec "$NS" "$APIPEER" send --path braid0=10.0.0.2 --remote 10.0.0.1:5000 --bytes "$N" >/dev/null 2>&1 ;;
    esac
    wait "$k" || true
    mbps "$(last_json < "/tmp/$NS.k")"
}

# One kernel -> braid transfer; $1 names the receiver kind.
recv_once() {
    fresh_ns
    local err="/tmp/$NS.err" out="/tmp/$NS.b"
    case "$1" in
        cli) ip netns exec "$NS" "$BRAID" listen --port 5000 --path braid0=10.0.0.2 --sink --once --json >"$out" 2>"$err" & ;;
        old) ip netns exec "$NS" "$OLD" listen --port 5000 --path braid0=10.0.0.2 --sink --once --json >"$out" 2>"$err" & ;;
        api) ip netns exec "$NS" "$APIPEER" recv --path braid0=10.0.0.2 --port 5000 >"$out" 2>"$err" & ;;
        api-ct) APIPEER_RUNTIME=current ip netns exec "$NS" "$APIPEER" recv --path braid0=10.0.0.2 --port 5000 >"$out" 2>"$err" & ;;
    esac
    local b=$!
    wait_listening "$err"
    ip netns exec "$NS" "$KPEER" connect 10.0.0.2:5000 --proto mptcp --send "$N" --json >/dev/null 2>&1 || true
    wait "$b" || true
    local j
    j=$(last_json < "$out")
    case "$1" in
        cli|old) python3 -c 'import json,sys; print("%.0f" % json.loads(sys.argv[1]).get("goodput_mbps", 0))' "$j" ;;
        *) mbps "$j" ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

kinds=(cli api api-ct)
[ -n "$OLD" ] && kinds=(old "${kinds[@]}")
declare -A name=([old]="braid CLI, older binary" [cli]="braid CLI (on the library)" [api]="library API, multi-thread runtime" [api-ct]="library API, current-thread runtime")
# Interleaved (every kind once per repetition) so that drift in the machine's load falls on
# every kind alike.
declare -A sends recvs
for _ in $(seq "$REPS"); do
    for kind in "${kinds[@]}"; do
        sends[$kind]="${sends[$kind]:-} $(send_once "$kind")"
        recvs[$kind]="${recvs[$kind]:-} $(recv_once "$kind")"
    done
done
rows=()
for kind in "${kinds[@]}"; do
    s="${sends[$kind]}"; r="${recvs[$kind]}"
    rows+=("${name[$kind]}|$(echo "$s" | median)|$(echo "$r" | median)|$s|$r")
    echo "${name[$kind]}: braid->kernel$s; kernel->braid$r (Mbit/s)" >&2
done
echo "$BYTES per transfer, one path, median of $REPS (Mbit/s)"
printf '%-40s %15s %15s\n' "" "braid->kernel" "kernel->braid"
for row in "${rows[@]}"; do
    IFS='|' read -r n s r _ _ <<< "$row"
    printf '%-40s %15s %15s\n' "$n" "$s" "$r"
done
if [ -n "$MARKDOWN" ]; then
    {
        echo "| $BYTES, one path, median of $REPS (Mbit/s) | braid → kernel | kernel → braid | runs → | runs ← |"
        echo "|---|---|---|---|---|"
        for row in "${rows[@]}"; do
            IFS='|' read -r n s r rs rr <<< "$row"
            echo "| $n | $s | $r | $rs | $rr |"
        done
    } >"$MARKDOWN"
fi
