#!/usr/bin/env bash
# bench/loss.sh: goodput under random packet loss, braid against the Linux kernel.
#
# For each loss rate, three single-subflow MPTCP transfers (optionally plain TCP too):
#   braid -> kernel   braid connect --send    to  kpeer listen --sink
#   kernel -> braid   kpeer connect --send    to  braid listen --sink --once
#   kernel -> kernel  kpeer connect --send    to  kpeer listen --sink
# through the same router namespace, which drops that share of the connection's packets
# (data and ACKs, both directions) with nftables. Prints goodput, retention (goodput under
# loss / goodput at 0 % of the same direction in the same run) and the ratio of braid's
# sending retention to its receiving retention. Run with --help for the options.
#
# Topology (all namespaces created here, named braid-bench-<pid>-<run>-{r,k,p}, deleted on
# exit; one fresh set per transfer):
#
#   braid (userspace, 10.0.0.2)              kpeer (kernel, 10.2.0.1)
#        | TUN braid0                              | veth p0 / r1
#   [ r: router, 10.0.0.1 | 10.1.0.254 | 10.2.0.254; nftables forward hook drops ]
#        | veth r0 / k0
#   kpeer (kernel under test, 10.1.0.1)
#
# Why a router and not a rule in the kernel peer's own namespace: a packet that netfilter
# drops in the sender's OUTPUT (or netdev egress) hook is reported back to the sending
# TCP, which keeps it queued and sends it again at once; that is not loss (10 % dropped
# there: 64 MiB at full speed, no retransmission counted, nothing out of order at the
# receiver). And there the kernel's TCP packets are still GSO bursts of up to 64 KB. A
# drop in a router's forward hook is a real loss for both ends; with offloads (TSO, GSO,
# GRO) off on every device the bursts are split before they leave the sender, so the
# router sees, and drops, single segments. SYNs are never dropped: a lost SYN costs a 1 s
# timeout that says nothing about loss recovery.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/loss.sh [options]          (needs root; builds release binaries first)

  --quick            smoke mode: loss 0, 1 and 5 %, 8 MiB per transfer, 8 s limit
  --loss LIST        loss rates in percent, comma separated (default 0,0.5,1,2,5,10);
                     each a multiple of 0.1
  --bytes N          bytes per transfer at every loss rate (suffix K, M, G = KiB, MiB,
                     GiB); default by loss rate: 128M up to 0.5 %, 64M up to 2 %, 32M
                     above. Env: BENCH_BYTES
  --limit S          time limit of one transfer in seconds (default 45; env BENCH_LIMIT);
                     a transfer still running then is reported as timed out, with the
                     goodput of the bytes that arrived within the limit
  --reps N           repetitions of each transfer; the table shows the median (default 1)
  --tcp              also measure plain TCP (braid --tcp, kpeer --proto tcp): a second table
  --kernel-cc NAME   the kernel sockets' congestion control (kpeer --cc, TCP_CONGESTION),
                     e.g. cubic to compare with braid's default like for like; default:
                     the namespace's (net.ipv4.tcp_congestion_control; printed)
  --markdown FILE    also write the tables as markdown to FILE
  --out DIR          keep every run's JSON, stderr and kernel counters in DIR (default: a
                     new directory under /tmp, printed at the end)
  --no-build         do not run cargo; use $BRAID_BIN and $KPEER_BIN, else the release
                     binaries under ${CARGO_TARGET_DIR:-target}
  --report DIR       measure nothing: print the tables of an earlier run's --out DIR again
  -h, --help         this text

Goodput is the receiver's: bytes received / its duration_s (from the connection's
establishment to the end of the transfer). The target of issue 12: braid->kernel retention /
kernel->braid retention >= 0.8 at every loss rate up to 10 %.
EOF
}

die() {
    echo "loss.sh: $*" >&2
    exit 1
}
# shellcheck source=bench/lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- arguments ----------------------------------------------------------------------------

LOSSES="0,0.5,1,2,5,10"
BYTES_ALL="${BENCH_BYTES:-}"
LIMIT="${BENCH_LIMIT:-45}"
REPS=1
QUICK=0
TCP=0
MARKDOWN=""
OUT=""
BUILD=1
REPORT=""
KERNEL_CC=""

while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --quick) QUICK=1 ;;
    --tcp) TCP=1 ;;
    --no-build) BUILD=0 ;;
    --loss | --bytes | --limit | --reps | --markdown | --out | --report | --kernel-cc)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --loss) LOSSES="$2" ;;
        --bytes) BYTES_ALL="$2" ;;
        --limit) LIMIT="$2" ;;
        --reps) REPS="$2" ;;
        --markdown) MARKDOWN="$2" ;;
        --out) OUT="$2" ;;
        --report) REPORT="$2" ;;
        --kernel-cc) KERNEL_CC="$2" ;;
        esac
        shift
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    LOSSES="0,1,5"
    BYTES_ALL="${BYTES_ALL:-8M}"
    LIMIT=8
fi

# "16M" -> 16777216
to_bytes() {
    local v=$1 n mult=1
    case "$v" in
    *[kK]) mult=1024 n=${v%?} ;;
    *[mM]) mult=1048576 n=${v%?} ;;
    *[gG]) mult=1073741824 n=${v%?} ;;
    *) n=$v ;;
    esac
    [[ "$n" =~ ^[0-9]+$ ]] || die "bad byte count: $v"
    echo $((n * mult))
}

# "0.5" -> 5 (per mille)
to_permille() {
    [[ "$1" =~ ^[0-9]+(\.[0-9])?$ ]] || die "bad loss rate: $1 (percent, at most one decimal)"
    local whole=${1%%.*} frac=0
    [[ "$1" == *.* ]] && frac=${1#*.}
    local pm=$((10#$whole * 10 + 10#$frac))
    [ "$pm" -le 1000 ] || die "bad loss rate: $1 (over 100 %)"
    echo "$pm"
}

[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "bad --reps: $REPS"
[[ "$LIMIT" =~ ^[1-9][0-9]*$ ]] || die "bad --limit: $LIMIT (whole seconds)"
[ -z "$BYTES_ALL" ] || BYTES_ALL=$(to_bytes "$BYTES_ALL")
PERMILLES=()
IFS=',' read -r -a loss_list <<<"$LOSSES"
for l in "${loss_list[@]}"; do
    PERMILLES+=("$(to_permille "$l")")
done
[ "${#PERMILLES[@]}" -gt 0 ] || die "no loss rates"

# Bytes per transfer at a loss rate (per mille).
bytes_for() {
    if [ -n "$BYTES_ALL" ]; then
        echo "$BYTES_ALL"
    elif [ "$1" -le 5 ]; then
        echo $((128 << 20))
    elif [ "$1" -le 20 ]; then
        echo $((64 << 20))
    else
        echo $((32 << 20))
    fi
}

# ---- prerequisites ------------------------------------------------------------------------

DIRS=(b2k k2b k2k)

if [ -n "$REPORT" ]; then
    [ -f "$REPORT/results.tsv" ] || die "no results.tsv in $REPORT"
    command -v awk >/dev/null 2>&1 || die "needs awk"
    OUT=$(cd "$REPORT" && pwd)
    RESULTS=$OUT/results.tsv
else # up to the table

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN devices, nftables)"
bench_needs "apt-get install iproute2 nftables ethtool jq" ip nft ethtool jq awk
HAVE_NSTAT=0
command -v nstat >/dev/null 2>&1 && HAVE_NSTAT=1

bench_binaries loss.sh "$BUILD"
bench_outdir /tmp/braid-bench.XXXXXX
: >"$OUT/namespaces.txt"

# ---- cleanup: only what this script created -----------------------------------------------

NSS=()  # namespaces created by this script, still present
PIDS=() # processes started by this script

cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for ns in "${NSS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    PIDS=()
    NSS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- topology -----------------------------------------------------------------------------

PORT=5201
RUN=0
NS_R="" NS_K="" NS_P=""

add_ns() {
    ip netns add "$1" || die "cannot create namespace $1"
    NSS+=("$1")
    echo "$1" >>"$OUT/namespaces.txt"
    ip -n "$1" link set lo up
}

# braid writes one segment per TUN write, as the kernel's senders do with TSO and GSO off:
# with its TUN offloads on, the router would drop whole GSO writes (several segments at
# once), a burstier loss than the kernel's senders see.
export BRAID_OFFLOAD=off

no_offloads() { # NS DEV
    ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 ||
        ip netns exec "$1" ethtool -K "$2" gso off gro off >/dev/null 2>&1 || true
}

# Three fresh namespaces (router r, kernel k, peer p); drop `permille` of the TCP packets of
# port PORT that the router forwards, each direction.
topo_up() {
    local permille=$1
    RUN=$((RUN + 1))
    local base="braid-bench-$$-$RUN"
    NS_R=$base-r NS_K=$base-k NS_P=$base-p
    add_ns "$NS_R"
    add_ns "$NS_K"
    add_ns "$NS_P"
    KCC=${KERNEL_CC:-$(ip netns exec "$NS_K" sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)}
    ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=1
    # r <-> k
    ip -n "$NS_R" link add r0 type veth peer name k0 netns "$NS_K"
    ip -n "$NS_R" addr add 10.1.0.254/24 dev r0
    ip -n "$NS_K" addr add 10.1.0.1/24 dev k0
    # r <-> p
    ip -n "$NS_R" link add r1 type veth peer name p0 netns "$NS_P"
    ip -n "$NS_R" addr add 10.2.0.254/24 dev r1
    ip -n "$NS_P" addr add 10.2.0.1/24 dev p0
    # r's side of braid's TUN; braid is 10.0.0.2 behind it
    ip -n "$NS_R" tuntap add dev braid0 mode tun
    ip -n "$NS_R" addr add 10.0.0.1/24 dev braid0
    local ns dev
    for ns_dev in "$NS_R r0" "$NS_R r1" "$NS_R braid0" "$NS_K k0" "$NS_P p0"; do
        read -r ns dev <<<"$ns_dev"
        no_offloads "$ns" "$dev"
        ip -n "$ns" link set "$dev" up
    done
    ip -n "$NS_K" route add default via 10.1.0.254
    ip -n "$NS_P" route add default via 10.2.0.254
    # Client -> server (data) is dport PORT, server -> client (ACKs) sport PORT.
    local drop=""
    [ "$permille" -gt 0 ] && drop="numgen random mod 1000 < $permille counter name fwd_drop drop"
    rnft -f - <<EOF || die "nft failed"
table inet braidbench {
    counter fwd_seen { }
    counter fwd_drop { }
    counter rev_seen { }
    counter rev_drop { }
    chain forward {
        type filter hook forward priority 0; policy accept;
        tcp dport $PORT tcp flags & syn == 0 counter name fwd_seen ${drop}
        tcp sport $PORT tcp flags & syn == 0 counter name rev_seen ${drop//fwd_drop/rev_drop}
    }
}
EOF
    true
}

# nft inside the router namespace.
rnft() { ip netns exec "$NS_R" nft "$@"; }

topo_down() {
    local ns keep=()
    for ns in "${NSS[@]}"; do
        if [ "$ns" = "$NS_R" ] || [ "$ns" = "$NS_K" ] || [ "$ns" = "$NS_P" ]; then
            ip netns del "$ns" 2>/dev/null || true
        else
            keep+=("$ns")
        fi
    done
    NSS=("${keep[@]}")
}

# Packets seen and dropped by the router's rules: "fwd_seen fwd_drop rev_seen rev_drop".
drop_counts() {
    rnft -j list counters table inet braidbench 2>/dev/null | jq -r '
        [.nftables[] | select(.counter) | .counter | {(.name): .packets}] | add
        | "\(.fwd_seen // 0) \(.fwd_drop // 0) \(.rev_seen // 0) \(.rev_drop // 0)"' ||
        echo "0 0 0 0"
}

# ---- processes ----------------------------------------------------------------------------

LAST_PID=""
# start PREFIX NS CMD...: stdout to PREFIX.out, stderr to PREFIX.err
start() {
    local pre=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" >"$pre.out" 2>"$pre.err" </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

now() { date +%s.%N; }
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; } # later A B: A >= B

# wait_ready FILE NEEDLE PID: until FILE has NEEDLE (10 s at most, or the process died)
wait_ready() {
    local _
    for _ in $(seq 1 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# finish PID...: wait for every PID. At the deadline ($LIMIT s after now, plus a second so
# that kpeer's own --time-limit reports first): SIGINT, a second later SIGTERM (braid: abort,
# and its JSON report), two seconds later SIGKILL; TIMED_OUT=1 then. A process that fails
# early (exit status not 0) brings the deadline of the others to two seconds later, e.g. a
# server whose client could not connect. Exit statuses in RCS (in the order given).
TIMED_OUT=0
RCS=()
finish() {
    local t stage=0 i alive sig rc
    local -a at pids=("$@") reaped=()
    read -r -a at <<<"$(awk -v t="$(now)" -v l="$LIMIT" \
        'BEGIN { printf "%.3f %.3f %.3f", t + l + 1, t + l + 2, t + l + 4 }')"
    TIMED_OUT=0
    RCS=()
    while :; do
        alive=0
        for i in "${!pids[@]}"; do
            [ -n "${reaped[$i]:-}" ] && continue
            if kill -0 "${pids[$i]}" 2>/dev/null; then
                alive=1
                continue
            fi
            rc=0
            wait "${pids[$i]}" 2>/dev/null || rc=$?
            reaped[i]=1
            RCS[i]=$rc
            if [ "$rc" != 0 ] && [ "$stage" = 0 ]; then
                # The others get two seconds more, unless the deadline is nearer.
                read -r -a at <<<"$(awk -v t="$(now)" -v d="${at[0]}" 'BEGIN {
                    if (t + 2 < d) d = t + 2; printf "%.3f %.3f %.3f", d, d + 1, d + 3 }')"
                EARLY_FAIL=1
            fi
        done
        [ "$alive" = 0 ] && break
        t=$(now)
        if [ "$stage" -lt 3 ] && later "$t" "${at[$stage]}"; then
            sig=$(echo INT TERM KILL | cut -d' ' -f$((stage + 1)))
            stage=$((stage + 1))
            [ "$EARLY_FAIL" = 0 ] && TIMED_OUT=1
            if [ -n "${BENCH_DEBUG:-}" ]; then
                echo "loss.sh: SIG$sig at $t to $*" >&2
            fi
            for i in "${!pids[@]}"; do
                [ -n "${reaped[$i]:-}" ] || kill -"$sig" "${pids[$i]}" 2>/dev/null || true
            done
        fi
        sleep 0.1
    done
    # These are gone: nothing left to kill on exit.
    local keep=() p pid gone
    for p in "${PIDS[@]}"; do
        gone=0
        for pid in "$@"; do [ "$p" = "$pid" ] && gone=1; done
        [ "$gone" = 0 ] && keep+=("$p")
    done
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

# ---- one transfer -------------------------------------------------------------------------

# run_one DIR PROTO PERMILLE REP: DIR is b2k, k2b or k2k; PROTO mptcp or tcp. Appends a line
# to results.tsv: dir proto permille rep bytes status mbps bytes_received duration_s
# data_dropped_% ack_dropped_% data_packets ack_packets server_rc/client_rc note
# sender_retransmitted_segments sender_dsacked_segments (a kernel sender's; "-" unknown)
run_one() {
    local dir=$1 proto=$2 permille=$3 rep=$4
    local bytes
    bytes=$(bytes_for "$permille")
    topo_up "$permille"
    local pre="$OUT/$dir-$proto-$permille-$rep"
    local braid_proto=() kproto=(--proto "$proto")
    [ -n "$KERNEL_CC" ] && kproto+=(--cc "$KERNEL_CC")
    [ "$proto" = tcp ] && braid_proto=(--tcp)
    local klimit=(--time-limit "$LIMIT")
    local srv cli recv_json send_json
    case "$dir" in
    b2k)
        start "$pre.server" "$NS_K" "$KPEER" listen --port "$PORT" "${kproto[@]}" --sink --json "${klimit[@]}"
        srv=$LAST_PID
        wait_ready "$pre.server.err" "listening on" "$srv" ||
            echo "loss.sh: the server did not say it listens; starting the client anyway" >&2
        start "$pre.client" "$NS_R" "$BRAID" connect "10.1.0.1:$PORT" --path braid0=10.0.0.2 \
            "${braid_proto[@]}" --send "$bytes" --json
        cli=$LAST_PID
        ;;
    k2b)
        start "$pre.server" "$NS_R" "$BRAID" listen --port "$PORT" --path braid0=10.0.0.2 \
            "${braid_proto[@]}" --sink --once --json
        srv=$LAST_PID
        wait_ready "$pre.server.err" "listening on" "$srv" ||
            echo "loss.sh: the server did not say it listens; starting the client anyway" >&2
        # braid says so just before its event loop starts (the device is open already: an
        # early SYN waits in its queue).
        start "$pre.client" "$NS_K" "$KPEER" connect "10.0.0.2:$PORT" "${kproto[@]}" \
            --send "$bytes" --json "${klimit[@]}"
        cli=$LAST_PID
        ;;
    k2k)
        start "$pre.server" "$NS_K" "$KPEER" listen --port "$PORT" "${kproto[@]}" --sink --json "${klimit[@]}"
        srv=$LAST_PID
        wait_ready "$pre.server.err" "listening on" "$srv" ||
            echo "loss.sh: the server did not say it listens; starting the client anyway" >&2
        start "$pre.client" "$NS_P" "$KPEER" connect "10.1.0.1:$PORT" "${kproto[@]}" \
            --send "$bytes" --json "${klimit[@]}"
        cli=$LAST_PID
        ;;
    esac
    EARLY_FAIL=0
    finish "$srv" "$cli"
    local timed_out=$TIMED_OUT srv_rc=${RCS[0]:-?} cli_rc=${RCS[1]:-?}
    if [ "$HAVE_NSTAT" = 1 ]; then
        ip netns exec "$NS_K" nstat -asz >"$pre.nstat-kernel" 2>/dev/null || true
        [ "$dir" = k2k ] && { ip netns exec "$NS_P" nstat -asz >"$pre.nstat-peer" 2>/dev/null || true; }
    fi
    local seen_f drop_f seen_r drop_r
    read -r seen_f drop_f seen_r drop_r <<<"$(drop_counts)"
    topo_down
    recv_json=$(json_of "$pre.server.out")
    send_json=$(json_of "$pre.client.out")
    # status: ok, timeout (the receiver's bytes within the limit), short, corrupt or fail
    local status received duration mbps note=""
    received=$(jq -r '.bytes_received // 0' <<<"$recv_json")
    duration=$(jq -r '.duration_s // 0' <<<"$recv_json")
    if [ "$timed_out" = 1 ] || [ "$(jq -r '.timed_out // false' <<<"$recv_json")" = true ] ||
        [ "$(jq -r '.timed_out // false' <<<"$send_json")" = true ]; then
        status=timeout
    elif [ "$recv_json" = "{}" ]; then
        status=fail
    elif [ "$received" != "$bytes" ]; then
        status=short
    elif [ "$(jq -r '.sha256_received' <<<"$recv_json")" != "$(jq -r '.sha256_sent' <<<"$send_json")" ]; then
        status=corrupt
    else
        status=ok
    fi
    [ "$status" = timeout ] || [ "$EARLY_FAIL" = 0 ] || status=fail
    if [ "$srv_rc" != 0 ] || [ "$cli_rc" != 0 ]; then
        note="exit status: server $srv_rc, client $cli_rc"
        local why
        # No such line is no error (grep's status would end the script under pipefail).
        why=$({ cat "$pre.client.err" "$pre.server.err" 2>/dev/null || true; } |
            { grep -E '^(braid|kpeer): ' || true; } | tail -n 2 | tr '\n' ' ')
        [ -z "$why" ] || note="$note: $why"
    fi
    # braid's own report says whether the connection stayed MPTCP.
    local braid_json=""
    case "$dir" in
    b2k) braid_json=$send_json ;;
    k2b) braid_json=$recv_json ;;
    esac
    if [ "$proto" = mptcp ] && [ -n "$braid_json" ] && [ "$(jq -r '.mptcp // empty' <<<"$braid_json")" = false ]; then
        note="${note:+$note; }braid fell back to plain TCP"
    fi
    # The sender's retransmitted segments and, for a kernel sender, how many of them the
    # receiver reported as duplicates (DSACK: sent again for nothing). braid's report counts
    # retransmissions per subflow; the kernel's are in its namespace's counters.
    local rexmit="-" dsacked="-" sender_nstat=""
    case "$dir" in
    b2k) rexmit=$(jq -r '[.subflows[]?.retransmits // 0] | add // 0' <<<"$send_json") ;;
    k2b) sender_nstat=$pre.nstat-kernel ;;
    k2k) sender_nstat=$pre.nstat-peer ;;
    esac
    if [ -n "$sender_nstat" ] && [ -s "$sender_nstat" ]; then
        rexmit=$(awk '$1 == "TcpRetransSegs" { print $2; found = 1 } END { if (!found) print 0 }' "$sender_nstat")
        dsacked=$(awk '$1 == "TcpExtTCPDSACKRecvSegs" { print $2; found = 1 } END { if (!found) print 0 }' "$sender_nstat")
    fi
    mbps=$(awk -v b="$received" -v d="$duration" 'BEGIN { if (d > 0) printf "%.1f", b * 8 / d / 1e6; else print "0" }')
    local dl al
    dl=$(awk -v s="$seen_f" -v d="$drop_f" 'BEGIN { if (s > 0) printf "%.2f", 100 * d / s; else print "-" }')
    al=$(awk -v s="$seen_r" -v d="$drop_r" 'BEGIN { if (s > 0) printf "%.2f", 100 * d / s; else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dir" "$proto" "$permille" \
        "$rep" "$bytes" "$status" "$mbps" "$received" "$duration" "$dl" "$al" "$seen_f" "$seen_r" \
        "$srv_rc/$cli_rc" "$note" "$rexmit" "$dsacked" >>"$RESULTS"
    printf 'loss.sh: %-4s %-5s loss %5s %%  %9d bytes  %-7s %9s Mbit/s  (%s bytes in %.2f s; %s data packets, %s %% dropped; %s ACKs, %s %% dropped; sender retransmitted %s, %s of them DSACKed)%s\n' \
        "$dir" "$proto" "$(awk -v p="$permille" 'BEGIN { printf "%.1f", p / 10 }')" "$bytes" "$status" "$mbps" \
        "$received" "$duration" "$seen_f" "$dl" "$seen_r" "$al" "$rexmit" "$dsacked" "${note:+ $note}" >&2
}

# ---- the runs -----------------------------------------------------------------------------

PROTOS=(mptcp)
[ "$TCP" = 1 ] && PROTOS+=(tcp)

started=$(date +%s)
for proto in "${PROTOS[@]}"; do
    for permille in "${PERMILLES[@]}"; do
        for rep in $(seq 1 "$REPS"); do
            for dir in "${DIRS[@]}"; do
                run_one "$dir" "$proto" "$permille" "$rep"
            done
        done
    done
done
elapsed=$(($(date +%s) - started))
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
{
    echo "date=$(date -u +%Y-%m-%d)"
    echo "machine=$(nproc) CPUs (${cpu:-unknown model}), Linux $(uname -r)"
    echo "reps=$REPS"
    echo "limit=$LIMIT"
    echo "kernel_cc=${KCC:-unknown}"
    echo "elapsed=$elapsed"
} >"$OUT/meta.txt"

fi # measuring (not --report)

# ---- the table ----------------------------------------------------------------------------

# cell DIR PROTO PERMILLE -> "MBPS FLAG": the median over the repetitions that ended (ok or
# timed out); FLAG ok if all were ok, else the worst status seen (timeout < short, corrupt,
# fail).
cell() {
    local vals flag m
    vals=$(awk -F'\t' -v d="$1" -v p="$2" -v l="$3" \
        '$1 == d && $2 == p && $3 == l && ($6 == "ok" || $6 == "timeout") { print $7 }' "$RESULTS" |
        sort -g)
    flag=$(awk -F'\t' -v d="$1" -v p="$2" -v l="$3" '
        $1 == d && $2 == p && $3 == l && $6 != "ok" { bad = (bad == "" || bad == "timeout") ? $6 : bad }
        END { print (bad == "" ? "ok" : bad) }' "$RESULTS")
    if [ -z "$vals" ]; then
        [ "$flag" = ok ] && flag=fail
        echo "0 $flag"
        return
    fi
    m=$(awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$vals")
    echo "$m $flag"
}

human_bytes() {
    awk -v b="$1" 'BEGIN {
        if (b >= 1048576 && b % 1048576 == 0) printf "%d MiB", b / 1048576
        else if (b >= 1024 && b % 1024 == 0) printf "%d KiB", b / 1024
        else printf "%d B", b }'
}

# fmt_rate MBPS FLAG
fmt_rate() {
    case "$2" in
    ok) echo "$1" ;;
    timeout) echo "$1*" ;;
    *) echo "$2" ;;
    esac
}

ratio() { # A B -> A / B with 2 decimals (3 below 0.1), or "-"
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || !(b > 0)) { print "-"; exit }
        r = a / b
        printf (r < 0.1 ? "%.3f" : "%.2f"), r }'
}

# What the results hold (the same as the arguments when just measured).
meta() { sed -n "s/^$1=//p" "$OUT/meta.txt" 2>/dev/null | head -n 1; }
mapfile -t PROTOS < <(awk -F'\t' '{ print $2 }' "$RESULTS" | sort -u) # mptcp, tcp
mapfile -t PERMILLES < <(awk -F'\t' '{ print $3 }' "$RESULTS" | sort -un)
# bytes_used PROTO PERMILLE: the transfer size of those runs
bytes_used() {
    awk -F'\t' -v p="$1" -v l="$2" '$2 == p && $3 == l { print $5; exit }' "$RESULTS"
}

TEXT=$OUT/table.txt
MD=$OUT/table.md
: >"$TEXT"
: >"$MD"
any_timeout=0
for proto in "${PROTOS[@]}"; do
    [ -n "$proto" ] || continue
    declare -A base=()
    for dir in "${DIRS[@]}"; do
        read -r v f <<<"$(cell "$dir" "$proto" 0)"
        [ "$f" = ok ] || [ "$f" = timeout ] && base[$dir]=$v
    done
    label="MPTCP (one subflow)"
    [ "$proto" = tcp ] && label="plain TCP"
    {
        echo "$label: goodput in Mbit/s, retention = goodput / goodput at 0 % loss"
        printf '%-6s %-8s %12s %12s %13s %8s %8s %8s %10s\n' loss bytes "braid->kern" "kern->braid" "kern->kern" \
            "b->k ret" "k->b ret" "k->k ret" "b->k/k->b"
    } >>"$TEXT"
    {
        echo "**$label**: goodput in Mbit/s; retention = goodput / goodput at 0 % loss in the same run"
        echo
        echo "| loss | bytes | braid → kernel | kernel → braid | kernel → kernel | b→k retention | k→b retention | k→k retention | b→k / k→b retention |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    } >>"$MD"
    for permille in "${PERMILLES[@]}"; do
        declare -A rate=() ret=() raw=()
        for dir in "${DIRS[@]}"; do
            read -r v f <<<"$(cell "$dir" "$proto" "$permille")"
            rate[$dir]=$(fmt_rate "$v" "$f")
            [ "$f" = timeout ] && any_timeout=1
            raw[$dir]=""
            if [ "$f" = ok ] || [ "$f" = timeout ]; then
                ret[$dir]=$(ratio "$v" "${base[$dir]:-}")
                [ "${ret[$dir]}" = "-" ] ||
                    raw[$dir]=$(awk -v a="$v" -v b="${base[$dir]}" 'BEGIN { printf "%.9f", a / b }')
            else
                ret[$dir]="-"
            fi
        done
        # From the unrounded retentions.
        target="-"
        [ -n "${raw[b2k]}" ] && [ -n "${raw[k2b]}" ] && target=$(ratio "${raw[b2k]}" "${raw[k2b]}")
        pct=$(awk -v p="$permille" 'BEGIN { printf "%.1f %%", p / 10 }')
        b=$(human_bytes "$(bytes_used "$proto" "$permille")")
        printf '%-6s %-8s %12s %12s %13s %8s %8s %8s %10s\n' "$pct" "$b" "${rate[b2k]}" "${rate[k2b]}" \
            "${rate[k2k]}" "${ret[b2k]}" "${ret[k2b]}" "${ret[k2k]}" "$target" >>"$TEXT"
        echo "| $pct | $b | ${rate[b2k]} | ${rate[k2b]} | ${rate[k2k]} | ${ret[b2k]} | ${ret[k2b]} | ${ret[k2k]} | $target |" |
            sed 's/\*/\\*/g' >>"$MD"
    done
    echo >>"$TEXT"
    echo >>"$MD"
done
note="$(meta date), $(meta machine); $(meta reps) repetition(s), median; time limit $(meta limit) s per transfer; kernel congestion control $(meta kernel_cc); $(meta elapsed) s in all"
[ "$any_timeout" = 1 ] && note="$note. * timed out: goodput of the bytes that arrived within the limit"
echo "$note" >>"$TEXT"
echo "$note." | sed 's/\* timed out/\\* timed out/' >>"$MD"

cat "$TEXT"
if [ -n "$MARKDOWN" ]; then
    cp "$MD" "$MARKDOWN"
    echo "loss.sh: markdown table in $MARKDOWN" >&2
fi
[ -n "$REPORT" ] ||
    echo "loss.sh: every run's JSON, stderr and kernel counters in $OUT (results.tsv, table.md)" >&2
