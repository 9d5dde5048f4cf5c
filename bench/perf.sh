#!/usr/bin/env bash
# bench/perf.sh: braid against the Linux kernel's MPTCP, side by side, in one run (issue 15).
#
# Five bulk transfers, one path each, every one in fresh network namespaces:
#
#   k2k-mptcp  kernel -> kernel, MPTCP, over veth   kpeer connect --proto mptcp --send N
#                                                   -> kpeer listen --proto mptcp --sink
#   k2k-tcp    kernel -> kernel, plain TCP, over veth (the same with --proto tcp)
#   b2k        braid -> kernel, MPTCP, over TUN     braid connect --send N -> kpeer listen --sink
#   k2b        kernel -> braid, MPTCP, over TUN     kpeer connect --send N -> braid listen --sink
#   b2b        braid -> braid, MPTCP, over TUN      braid connect --send N -> braid listen --sink
#
# Goodput is the receiver's: bytes received * 8 / its duration_s (from the JSON report of
# kpeer or braid). The repetitions are interleaved (repetition 1 of every row, then 2, ...)
# so that drift in the machine's load falls on every row alike; the median and every
# repetition are printed, and each row's median divided by kernel -> kernel MPTCP's.
#
# Topologies (namespaces braid-perf-<pid>-<n>-{a,b,t}, one fresh set per transfer, deleted
# after it and on any exit; nothing outside them is touched):
#
#   veth (k2k-*):  a: v0 10.9.0.1 (sender)  <-- veth -->  b: v0 10.9.0.2 (receiver)
#   TUN (b2k, k2b): t: TUN braid0, the kernel on 10.0.0.1/24, braid on 10.0.0.2 behind it
#   TUN (b2b):      t: TUN braid0 (kernel 10.1.0.1, braid client 10.1.0.2) and braid2
#                   (kernel 10.3.0.1, braid server 10.3.0.2), the kernel forwarding between
#
# Offloads stay at their defaults: GSO/GRO on veth (what the kernel uses there) and braid's
# TUN offloads (virtio-net header, on unless BRAID_OFFLOAD=off).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/perf.sh [options]          (needs root; builds release binaries first)

  --bytes N       bytes per transfer (default 1G; K, M, G suffixes = KiB, MiB, GiB)
  --reps N        repetitions of every row, interleaved; the median is shown (default 3)
  --quick         smoke run: 64M, one repetition (under a minute)
  --limit S       time limit of one transfer in seconds (default 120)
  --out DIR       keep every transfer's JSON and stderr in DIR (default: a new directory
                  under /tmp, printed at the end), with results.tsv, table.txt, table.md
  --markdown F    also write the table as markdown to F
  --svg F         also write the plot (plot.svg in the output directory) to F
  --no-build      do not run cargo; use $BRAID_BIN and $KPEER_BIN, else the release
                  binaries under ${CARGO_TARGET_DIR:-target}; $BRAID_COMMIT, if set, names
                  the commit they were built from (else the work tree's, as printed)
  -h, --help      this text

Rows: kernel -> kernel MPTCP and plain TCP over veth, braid -> kernel, kernel -> braid and
braid -> braid over TUN (all MPTCP, one path). Goodput is the receiver's, in Mbit/s; the
last column is each row's median over kernel -> kernel MPTCP's. A transfer counts only if
every byte arrived (receiver's SHA-256 = sender's) and the connection stayed MPTCP; the
exit status is 1 if any transfer did not.
EOF
}

die() {
    echo "perf.sh: $*" >&2
    exit 1
}
# shellcheck source=bench/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- arguments ----------------------------------------------------------------------------

BYTES=1G
REPS=3
LIMIT=120
OUT=""
MARKDOWN=""
SVG=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --quick)
        BYTES=64M
        REPS=1
        ;;
    --no-build) BUILD=0 ;;
    --bytes | --reps | --limit | --out | --markdown | --svg)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --bytes) BYTES="$2" ;;
        --reps) REPS="$2" ;;
        --limit) LIMIT="$2" ;;
        --out) OUT="$2" ;;
        --markdown) MARKDOWN="$2" ;;
        --svg) SVG="$2" ;;
        esac
        shift
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

# "64M" -> 67108864
to_bytes() {
    local v=$1 n mult=1
    case "$v" in
    *[kK]) mult=1024 n=${v%?} ;;
    *[mM]) mult=1048576 n=${v%?} ;;
    *[gG]) mult=1073741824 n=${v%?} ;;
    *) n=$v ;;
    esac
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "bad byte count: $v"
    echo $((n * mult))
}
N=$(to_bytes "$BYTES")
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "bad --reps: $REPS"
[[ "$LIMIT" =~ ^[1-9][0-9]*$ ]] || die "bad --limit: $LIMIT (whole seconds)"

# ---- prerequisites ------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, TUN)"
bench_needs "apt-get install iproute2 jq gawk coreutils git" ip jq awk timeout git
HAVE_NSTAT=0
command -v nstat >/dev/null 2>&1 && HAVE_NSTAT=1

bench_binaries perf.sh "$BUILD"
bench_outdir /tmp/braid-perf.XXXXXX

# ---- cleanup: only what this script created -----------------------------------------------

NSS=()  # namespaces created by this script, still present
PIDS=() # processes started by this script, still running

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    for p in "${NSS[@]}"; do ip netns del "$p" 2>/dev/null || true; done
    NSS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- topologies ---------------------------------------------------------------------------

RUN=0
NS_A="" NS_B="" NS_T=""

new_ns() {
    ip netns add "$1"
    NSS+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.mptcp.enabled=1
}

# veth: a (10.9.0.1) <-> b (10.9.0.2), offloads at their defaults.
topo_veth() {
    RUN=$((RUN + 1))
    NS_A="braid-perf-$$-$RUN-a"
    NS_B="braid-perf-$$-$RUN-b"
    new_ns "$NS_A"
    new_ns "$NS_B"
    ip -n "$NS_A" link add v0 type veth peer name v0 netns "$NS_B"
    ip -n "$NS_A" addr add 10.9.0.1/24 dev v0
    ip -n "$NS_B" addr add 10.9.0.2/24 dev v0
    ip -n "$NS_A" link set v0 up
    ip -n "$NS_B" link set v0 up
}

# TUN: t with braid0 (kernel 10.0.0.1/24; braid 10.0.0.2); with "two", also braid2 and
# forwarding: braid0 10.1.0.1/24 (braid client 10.1.0.2), braid2 10.3.0.1/24 (server 10.3.0.2).
topo_tun() {
    RUN=$((RUN + 1))
    NS_T="braid-perf-$$-$RUN-t"
    new_ns "$NS_T"
    ip -n "$NS_T" tuntap add dev braid0 mode tun
    if [ "${1:-}" = two ]; then
        ip netns exec "$NS_T" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
            net.ipv4.conf.default.rp_filter=0
        ip -n "$NS_T" tuntap add dev braid2 mode tun
        ip -n "$NS_T" addr add 10.1.0.1/24 dev braid0
        ip -n "$NS_T" addr add 10.3.0.1/24 dev braid2
        ip -n "$NS_T" link set braid2 up
    else
        ip -n "$NS_T" addr add 10.0.0.1/24 dev braid0
    fi
    ip -n "$NS_T" link set braid0 up
}

topo_down() {
    local ns
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    NSS=()
}

# ---- processes ----------------------------------------------------------------------------

LAST_PID=""
# start PREFIX NS CMD...: in NS, under timeout(1) at $LIMIT s; stdout to PREFIX.out, stderr
# to PREFIX.err.
start() {
    local pre=$1 ns=$2
    shift 2
    ip netns exec "$ns" timeout -k 5 "$LIMIT" "$@" >"$pre.out" 2>"$pre.err" </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_ready FILE PID: until FILE says "listening" (10 s at most, or the process ended)
wait_ready() {
    local _
    for _ in $(seq 1 200); do
        grep -q listening "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# reap PID: waits for it; its exit status in RC (and it is no longer ours to kill)
RC=0
reap() {
    local p keep=()
    RC=0
    wait "$1" 2>/dev/null || RC=$?
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# The last JSON object a process printed (or {}).
json_of() {
    local j
    j=$(grep '^{' "$1" 2>/dev/null | tail -n 1 || true)
    if [ -n "$j" ] && jq -e . >/dev/null 2>&1 <<<"$j"; then
        echo "$j"
    else
        echo "{}"
    fi
}

# A counter of the kernel's MIB in a namespace (0 if absent).
mib() { ip netns exec "$1" nstat -asz "$2" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'; }

# ---- one transfer -------------------------------------------------------------------------

ROWS=(k2k-mptcp k2k-tcp b2k k2b b2b)
declare -A LABEL=(
    [k2k-mptcp]="kernel -> kernel, MPTCP, veth"
    [k2k-tcp]="kernel -> kernel, TCP, veth"
    [b2k]="braid -> kernel, MPTCP, TUN"
    [k2b]="kernel -> braid, MPTCP, TUN"
    [b2b]="braid -> braid, MPTCP, TUN"
)
declare -A LABEL_MD
for row in "${ROWS[@]}"; do LABEL_MD[$row]=${LABEL[$row]//->/→}; done
PORT=5201

# run_one ROW REP: appends to results.tsv: row rep status mbps bytes_received duration_s
# server_rc/client_rc note
run_one() {
    local row=$1 rep=$2
    local pre="$OUT/$rep-$row"
    local srv cli ns_s ns_c
    # The receiver is the server, started first; the sender connects to it.
    case "$row" in
    k2k-mptcp | k2k-tcp)
        topo_veth
        ns_s=$NS_B ns_c=$NS_A
        start "$pre.server" "$ns_s" "$KPEER" listen --port "$PORT" --proto "${row#k2k-}" --sink --json
        srv=$LAST_PID
        wait_ready "$pre.server.err" "$srv" || echo "perf.sh: $row: the receiver did not say it listens" >&2
        start "$pre.client" "$ns_c" "$KPEER" connect "10.9.0.2:$PORT" --proto "${row#k2k-}" --send "$N" --json
        cli=$LAST_PID
        ;;
    b2k)
        topo_tun
        ns_s=$NS_T ns_c=$NS_T
        start "$pre.server" "$ns_s" "$KPEER" listen --port "$PORT" --proto mptcp --sink --json
        srv=$LAST_PID
        wait_ready "$pre.server.err" "$srv" || echo "perf.sh: $row: the receiver did not say it listens" >&2
        start "$pre.client" "$ns_c" "$BRAID" connect "10.0.0.1:$PORT" --path braid0=10.0.0.2 --send "$N" --json
        cli=$LAST_PID
        ;;
    k2b)
        topo_tun
        ns_s=$NS_T ns_c=$NS_T
        start "$pre.server" "$ns_s" "$BRAID" listen --port "$PORT" --path braid0=10.0.0.2 --sink --once --json
        srv=$LAST_PID
        wait_ready "$pre.server.err" "$srv" || echo "perf.sh: $row: the receiver did not say it listens" >&2
        start "$pre.client" "$ns_c" "$KPEER" connect "10.0.0.2:$PORT" --proto mptcp --send "$N" --json
        cli=$LAST_PID
        ;;
    b2b)
        topo_tun two
        ns_s=$NS_T ns_c=$NS_T
        start "$pre.server" "$ns_s" "$BRAID" listen --port "$PORT" --path braid2=10.3.0.2 --sink --once --json
        srv=$LAST_PID
        wait_ready "$pre.server.err" "$srv" || echo "perf.sh: $row: the receiver did not say it listens" >&2
        start "$pre.client" "$ns_c" "$BRAID" connect "10.3.0.2:$PORT" --path braid0=10.1.0.2 --send "$N" --json
        cli=$LAST_PID
        ;;
    esac
    local cli_rc srv_rc
    reap "$cli"
    cli_rc=$RC
    # A sender that failed leaves its receiver waiting: two seconds, then it is stopped.
    if [ "$cli_rc" != 0 ]; then
        local _
        for _ in $(seq 1 20); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$srv" 2>/dev/null || true
    fi
    reap "$srv"
    srv_rc=$RC
    # The kernel's MPTCP: did the sender get an MP_CAPABLE SYN/ACK (no fallback to TCP)?
    local kernel_mptcp=""
    if [ "$row" = k2k-mptcp ] && [ "$HAVE_NSTAT" = 1 ]; then
        ip netns exec "$ns_c" nstat -asz >"$pre.nstat-sender" 2>/dev/null || true
        ip netns exec "$ns_s" nstat -asz >"$pre.nstat-receiver" 2>/dev/null || true
        kernel_mptcp=$(mib "$ns_c" MPTcpExtMPCapableSYNACKRX)
    fi
    topo_down

    local recv_json send_json status received duration mbps note=""
    recv_json=$(json_of "$pre.server.out")
    send_json=$(json_of "$pre.client.out")
    received=$(jq -r '.bytes_received // 0' <<<"$recv_json")
    duration=$(jq -r '.duration_s // 0' <<<"$recv_json")
    if [ "$cli_rc" = 124 ] || [ "$srv_rc" = 124 ] || [ "$cli_rc" = 137 ] || [ "$srv_rc" = 137 ]; then
        status=timeout
    elif [ "$recv_json" = "{}" ]; then
        status=fail
    elif [ "$received" != "$N" ]; then
        status=short
    elif [ "$(jq -r '.sha256_received // "r"' <<<"$recv_json")" != "$(jq -r '.sha256_sent // "s"' <<<"$send_json")" ]; then
        status=corrupt
    elif [ "$cli_rc" != 0 ] || [ "$srv_rc" != 0 ]; then
        status=fail
    else
        status=ok
    fi
    if [ "$cli_rc" != 0 ] || [ "$srv_rc" != 0 ]; then
        note="exit status: receiver $srv_rc, sender $cli_rc"
        local why
        why=$(cat "$pre.client.err" "$pre.server.err" 2>/dev/null | grep -E '^(braid|kpeer|timeout): ' |
            tail -n 2 | tr '\n' ' ' || true)
        [ -z "$why" ] || note="$note: $why"
    fi
    # Every row but plain TCP must have stayed MPTCP: braid's reports say so, and for the
    # kernel alone its MP_CAPABLE counter.
    local j fell=0
    case "$row" in
    b2k) j=("$send_json") ;;
    k2b) j=("$recv_json") ;;
    b2b) j=("$send_json" "$recv_json") ;;
    *) j=() ;;
    esac
    for x in "${j[@]}"; do
        [ "$(jq -r '.mptcp // empty' <<<"$x")" = false ] && fell=1
    done
    [ "$row" = k2k-mptcp ] && [ "$kernel_mptcp" = 0 ] && fell=1
    if [ "$fell" = 1 ]; then
        note="${note:+$note; }fell back to plain TCP"
        [ "$status" = ok ] && status=fallback
    fi
    mbps=$(awk -v b="$received" -v d="$duration" 'BEGIN { if (d > 0) printf "%.0f", b * 8 / d / 1e6; else print "0" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$rep" "$status" "$mbps" "$received" "$duration" \
        "$srv_rc/$cli_rc" "$note" >>"$RESULTS"
    printf 'perf.sh: rep %s  %-32s %-8s %6s Mbit/s  (%s bytes in %.2f s)%s\n' "$rep" "${LABEL[$row]}" \
        "$status" "$mbps" "$received" "$duration" "${note:+  $note}" >&2
}

# ---- the runs -----------------------------------------------------------------------------

human_bytes() {
    awk -v b="$1" 'BEGIN {
        if (b >= 1073741824 && b % 1073741824 == 0) printf "%d GiB", b / 1073741824
        else if (b >= 1048576 && b % 1048576 == 0) printf "%d MiB", b / 1048576
        else if (b >= 1024 && b % 1024 == 0) printf "%d KiB", b / 1024
        else printf "%d B", b }'
}

if [ "$BUILD" = 0 ] && [ -n "${BRAID_COMMIT:-}" ]; then
    COMMIT=$BRAID_COMMIT
else
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates 2>/dev/null)" ]; then
        COMMIT="$COMMIT (crates/ modified in the work tree)"
    fi
fi
CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
MACHINE="$(nproc) CPUs (${CPU:-unknown model}), Linux $(uname -r)"
SIZE=$(human_bytes "$N")
echo "perf.sh: $SIZE per transfer, $REPS repetition(s), ${#ROWS[@]} rows; braid $COMMIT" >&2

LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
started=$(date +%s)
for rep in $(seq 1 "$REPS"); do
    for row in "${ROWS[@]}"; do
        run_one "$row" "$rep"
    done
done
elapsed=$(($(date +%s) - started))

# ---- the table ----------------------------------------------------------------------------

# cell ROW REP: the goodput of that transfer, or its status if it did not succeed
cell() {
    awk -F'\t' -v r="$1" -v n="$2" '$1 == r && $2 == n { print ($3 == "ok" ? $4 : $3); exit }' "$RESULTS"
}
# median ROW: over the transfers that succeeded ("-" if none did)
median() {
    awk -F'\t' -v r="$1" '$1 == r && $3 == "ok" { print $4 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { # A B -> A / B, 2 decimals, or "-"
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || !(b > 0)) print "-"; else printf "%.2f", a / b }'
}

declare -A MED
for row in "${ROWS[@]}"; do MED[$row]=$(median "$row"); done
BASE=${MED[k2k-mptcp]}
failed=$(awk -F'\t' '$3 != "ok"' "$RESULTS" | wc -l)

TEXT=$OUT/table.txt
MD=$OUT/table.md
{
    echo "$SIZE per transfer, one path, $REPS repetition(s) interleaved; receiver's goodput in Mbit/s"
    printf '%-32s %8s' "" median
    for rep in $(seq 1 "$REPS"); do printf ' %8s' "rep $rep"; done
    printf ' %14s\n' "/ k->k MPTCP"
    for row in "${ROWS[@]}"; do
        printf '%-32s %8s' "${LABEL[$row]}" "${MED[$row]}"
        for rep in $(seq 1 "$REPS"); do printf ' %8s' "$(cell "$row" "$rep")"; done
        if [ "$row" = k2k-mptcp ]; then r="-"; else r=$(ratio "${MED[$row]}" "$BASE"); fi
        printf ' %14s\n' "$r"
    done
    echo "machine: $MACHINE; load average $LOAD at the start; braid $COMMIT; $(date -u +%Y-%m-%d); $elapsed s in all"
    [ "$failed" = 0 ] || echo "$failed transfer(s) did not succeed (status in place of the goodput; see $RESULTS)"
} >"$TEXT"
{
    printf '| %s, one path, %s rep(s), receiver'"'"'s goodput (Mbit/s) | median |' "$SIZE" "$REPS"
    for rep in $(seq 1 "$REPS"); do printf ' rep %s |' "$rep"; done
    echo " ÷ kernel MPTCP |"
    printf '|---|---:|'
    for _ in $(seq 1 "$REPS"); do printf -- '---:|'; done
    echo '---:|'
    for row in "${ROWS[@]}"; do
        printf '| %s | %s |' "${LABEL_MD[$row]}" "${MED[$row]}"
        for rep in $(seq 1 "$REPS"); do printf ' %s |' "$(cell "$row" "$rep")"; done
        if [ "$row" = k2k-mptcp ]; then r="-"; else r=$(ratio "${MED[$row]}" "$BASE"); fi
        echo " $r |"
    done
    echo
    echo "Machine: $MACHINE; load average $LOAD at the start; braid $COMMIT; $(date -u +%Y-%m-%d); $elapsed s in all."
    [ "$failed" = 0 ] || echo "$failed transfer(s) did not succeed (status in place of the goodput)."
} >"$MD"

# ---- the plot: one bar per row (its median), a dot per repetition, the kernel's MPTCP as a
# dashed line ----------------------------------------------------------------------------------
PLOT=$OUT/plot.svg
for row in "${ROWS[@]}"; do
    printf '%s\t%s' "${LABEL[$row]}" "${MED[$row]}"
    awk -F'\t' -v r="$row" '$1 == r && $3 == "ok" { printf "\t%s", $4 }' "$RESULTS"
    echo
done | awk -F'\t' -v title="braid and the kernel, $SIZE per transfer, $REPS rep(s) (braid $COMMIT)" -v base="$BASE" '
    { label[NR] = $1; med[NR] = $2; nrep[NR] = NF - 2
      for (i = 3; i <= NF; i++) { rep[NR, i - 2] = $i; if ($i + 0 > max) max = $i + 0 }
      if ($2 + 0 > max) max = $2 + 0 }
    END {
        step = 1000; top = (int(max / step) + 1) * step; x0 = 250; w = 520; h = 34
        H = 70 + NR * h + 40
        printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", H
        printf "<rect width=\"820\" height=\"%d\" fill=\"white\"/>\n", H
        printf "<text x=\"10\" y=\"24\" font-size=\"14\">%s</text>\n", title
        for (v = 0; v <= top; v += step) {
            x = x0 + w * v / top
            printf "<line x1=\"%.1f\" y1=\"50\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, x, 60 + NR * h
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x, 76 + NR * h, v
        }
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">receiver goodput, Mbit/s (bar: median; dots: repetitions)</text>\n", x0 + w / 2, 96 + NR * h
        for (i = 1; i <= NR; i++) {
            y = 56 + (i - 1) * h
            printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", x0 - 8, y + 17, label[i]
            if (med[i] != "-") {
                printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"22\" fill=\"%s\"/>\n", x0, y + 2, w * med[i] / top, (label[i] ~ /^braid|-> braid/) ? "#4a7bb7" : "#999"
                printf "<text x=\"%.1f\" y=\"%d\">%d</text>\n", x0 + w * med[i] / top + 6, y + 17, med[i]
            }
            for (k = 1; k <= nrep[i]; k++)
                printf "<circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"black\"/>\n", x0 + w * rep[i, k] / top, y + 13
        }
        if (base != "-")
            printf "<line x1=\"%.1f\" y1=\"50\" x2=\"%.1f\" y2=\"%d\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>\n", x0 + w * base / top, x0 + w * base / top, 60 + NR * h
        print "</svg>"
    }' >"$PLOT"

cat "$TEXT"
if [ -n "$SVG" ]; then
    cp "$PLOT" "$SVG"
    echo "perf.sh: plot in $SVG" >&2
fi
if [ -n "$MARKDOWN" ]; then
    cp "$MD" "$MARKDOWN"
    echo "perf.sh: markdown table in $MARKDOWN" >&2
fi
echo "perf.sh: every transfer's JSON and stderr in $OUT (results.tsv, table.md, plot.svg)" >&2
[ "$failed" = 0 ]
