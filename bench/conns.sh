#!/usr/bin/env bash
# bench/conns.sh: many concurrent connections. N kernel MPTCP echo clients (kecho), each
# sending B bytes and reading them back, against `braid listen --echo` over a TUN device,
# and the same clients against a kernel MPTCP echo server over a veth pair, in one run.
# Prints, per N: the wall time for all clients, the slowest client, the packets the kernel
# dropped at the TUN device's transmit queue (braid did not read them in time), the
# segments the kernel clients retransmitted (a loss or a timeout anywhere on the way), and
# braid's peak memory; with three client counts or more, a least-squares line of the wall
# time against the number of clients (ms per client added, intercept, R^2) for braid and
# for the kernel.
#
# PERF=F records braid with perf into F.<n>; PCAP=F captures braid0 (96 bytes a packet) into
# F.<n>, and the kernel server's veth into F.<n>.kernel.
#
# Namespaces braid-conns-<pid>-{t,a,b} are created here and deleted on exit:
#   t: TUN braid0, kernel side 10.0.0.1/24, braid behind it at 10.0.0.2 (clients run in t)
#   a, b: veth pair, 10.9.0.1 (clients) and 10.9.0.2 (kernel echo server)
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/conns.sh [options]          (needs root; builds release binaries first)

  --n LIST        client counts, comma separated (default 100,200,500,1000)
  --bytes N       bytes each client sends and reads back (default 262144)
  --limit S       time limit of one run in seconds (default 180)
  --workers N     braid's worker threads (default 1; more: a multi-queue TUN device)
  --no-build      use $BRAID_BIN and $KECHO_BIN, else the release binaries
  --markdown F    also write the table as markdown to F
  -h, --help      this text
EOF
}

NS_LIST="100,200,500,1000"
BYTES=262144
LIMIT=180
BUILD=1
MARKDOWN=""
WORKERS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --n) NS_LIST="$2"; shift 2 ;;
        --bytes) BYTES="$2"; shift 2 ;;
        --limit) LIMIT="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --markdown) MARKDOWN="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "conns.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "conns.sh: needs root (network namespaces, TUN)" >&2; exit 1; }
if [ -n "${PCAP:-}" ] && ! command -v tcpdump >/dev/null; then
    echo "conns.sh: PCAP needs tcpdump" >&2; exit 1
fi

cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
if [ "$BUILD" -eq 1 ]; then
    cargo build -q --release -p braid --bin braid -p braid-interop --bin kecho
fi
BRAID="${BRAID_BIN:-$TARGET/release/braid}"
KECHO="${KECHO_BIN:-$TARGET/release/kecho}"

P="braid-conns-$$"
T="$P-t"; A="$P-a"; B="$P-b"
BRAID_PID=""
KSERVER=""
cleanup() {
    if [ -n "$BRAID_PID" ]; then kill "$BRAID_PID" 2>/dev/null || true; fi
    if [ -n "$KSERVER" ]; then kill "$KSERVER" 2>/dev/null || true; fi
    for n in "$T" "$A" "$B"; do ip netns del "$n" 2>/dev/null || true; done
    rm -f "/tmp/$P"-braid-*
}
trap cleanup EXIT

ip netns add "$T"; ip netns add "$A"; ip netns add "$B"
for n in "$T" "$A" "$B"; do
    ip -n "$n" link set lo up
    ip netns exec "$n" sysctl -qw net.mptcp.enabled=1
    # Thousands of connections: room for them.
    ip netns exec "$n" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
done
if [ "$WORKERS" -gt 1 ]; then
    ip -n "$T" tuntap add dev braid0 mode tun multi_queue
else
    ip -n "$T" tuntap add dev braid0 mode tun
fi
ip -n "$T" addr add 10.0.0.1/24 dev braid0
ip -n "$T" link set braid0 up
[ -n "${TXQLEN:-}" ] && ip -n "$T" link set braid0 txqueuelen "$TXQLEN"
ip link add "bc$$a" netns "$A" type veth peer name "bc$$b" netns "$B"
ip -n "$A" link set "bc$$a" name v0; ip -n "$B" link set "bc$$b" name v0
ip -n "$A" addr add 10.9.0.1/24 dev v0; ip -n "$B" addr add 10.9.0.2/24 dev v0
ip -n "$A" link set v0 up; ip -n "$B" link set v0 up

dev_stat() { # ns dev expr: a figure of the device's counters (`s`, its stats64)
    ip -n "$1" -s -j link show "$2" | python3 -c \
        "import json,sys; s=json.load(sys.stdin)[0]['stats64']; print($3)"
}

tx_dropped() { dev_stat "$T" braid0 's["tx"]["dropped"]'; }

dev_packets() { # ns dev: packets through the device so far, both directions
    dev_stat "$1" "$2" 's["tx"]["packets"] + s["rx"]["packets"]'
}

retrans() { # ns: segments the namespace's TCP retransmitted so far
    ip netns exec "$1" nstat -asz TcpRetransSegs 2>/dev/null | awk '$1 == "TcpRetransSegs" {print $2}'
}

run_clients() { # ns remote n
    ulimit -n "$(ulimit -Hn)"
    ip netns exec "$1" "$KECHO" clients "$2" --n "$3" --bytes "$BYTES" --time-limit "$LIMIT" || true
}

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ''))" "$1" "$2"; }

# The kernel echo server (stays up for every N).
ip netns exec "$B" bash -c "ulimit -n \$(ulimit -Hn); exec $KECHO server --port 7000" 2>/dev/null &
KSERVER=$!
sleep 0.5

rows=()
IFS=',' read -ra counts <<< "$NS_LIST"
for n in "${counts[@]}"; do
    # braid's echo server, fresh for each N (its peak memory is per run).
    ip netns exec "$T" ${PERF:+perf record -q -g -o "$PERF.$n" --} "$BRAID" listen --port 7000 --path braid0=10.0.0.2 --echo --workers "$WORKERS" \
        --json >"/tmp/$P-braid-$n.json" 2>"/tmp/$P-braid-$n.err" &
    BRAID_PID=$!
    for _ in $(seq 50); do grep -q listening "/tmp/$P-braid-$n.err" 2>/dev/null && break; sleep 0.1; done
    TCPDUMP_PID=""
    if [ -n "${PCAP:-}" ]; then
        ip netns exec "$T" tcpdump -q -i braid0 -s 96 -w "$PCAP.$n" 2>/dev/null &
        TCPDUMP_PID=$!
        sleep 1
    fi
    d0=$(tx_dropped)
    p0=$(dev_packets "$T" braid0)
    r0=$(retrans "$T")
    b=$(run_clients "$T" 10.0.0.2:7000 "$n")
    d1=$(tx_dropped)
    p1=$(dev_packets "$T" braid0)
    r1=$(retrans "$T")
    if [ -n "$TCPDUMP_PID" ]; then sleep 0.5; kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
    if [ -n "${NSTAT:-}" ]; then ip netns exec "$T" nstat -az 2>/dev/null | grep -E "Drop|Prune|Collapse|TCPTimeouts|RetransSegs|MPTcpExt(DSS|Dup|OFO|Retrans)" | awk '$2 > 0' >&2; fi
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$BRAID_PID/status" 2>/dev/null || echo 0)
    # braid's CPU time (every thread), user + system, in seconds.
    cpu=$(awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$BRAID_PID/stat" 2>/dev/null || echo 0)
    kill -INT "$BRAID_PID" 2>/dev/null || true
    wait "$BRAID_PID" 2>/dev/null || true
    BRAID_PID=""
    if [ -n "${PCAP:-}" ]; then
        ip netns exec "$A" tcpdump -q -i v0 -s 96 -w "$PCAP.$n.kernel" 2>/dev/null &
        TCPDUMP_PID=$!
        sleep 1
    fi
    k0=$(dev_packets "$A" v0)
    k=$(run_clients "$A" 10.9.0.2:7000 "$n")
    k1=$(dev_packets "$A" v0)
    if [ -n "$TCPDUMP_PID" ]; then sleep 0.5; kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
    rows+=("$n $(field "$b" completed) $(field "$b" wall_s) $(field "$b" slowest_s) $((d1 - d0)) $((r1 - r0)) $(((p1 - p0) / n)) $rss $cpu $(field "$k" completed) $(field "$k" wall_s) $(field "$k" slowest_s) $(((k1 - k0) / n))")
    echo "n=$n braid: $b" >&2
    echo "n=$n kernel: $k" >&2
done
kill "$KSERVER" 2>/dev/null || true

header="clients | braid ok | braid wall s | braid slowest s | TUN tx drops | client retransmits | TUN packets per client | braid peak RSS KiB | braid CPU s | kernel ok | kernel wall s | kernel slowest s | veth packets per client"
echo "$header"
for r in "${rows[@]}"; do
    read -r n bok bw bs dr rt pk rss cpu kok kw ks kp <<< "$r"
    printf '%s | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %s\n' "$n" "$bok" "$bw" "$bs" "$dr" "$rt" "$pk" "$rss" "$cpu" "$kok" "$kw" "$ks" "$kp"
done
# With three client counts or more: how the wall time grows with the number of clients, a
# least-squares line through the points (seconds per client added, the intercept, R^2).
if [ "${#rows[@]}" -ge 3 ]; then
    printf '%s\n' "${rows[@]}" | python3 -c '
import sys
pts = [l.split() for l in sys.stdin if l.strip()]
def fit(col, name):
    xs = [float(p[0]) for p in pts]; ys = [float(p[col]) for p in pts]
    n = len(xs); mx = sum(xs) / n; my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs); syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    a = sxy / sxx; b = my - a * mx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else 1.0
    print("%s wall time: %.2f ms per client added, intercept %.3f s, R^2 %.4f" % (name, 1000 * a, b, r2))
fit(2, "braid")
fit(10, "kernel")
'
fi
if [ -n "$MARKDOWN" ]; then
    {
        echo "| $header |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for r in "${rows[@]}"; do
            read -r n bok bw bs dr rt pk rss cpu kok kw ks kp <<< "$r"
            printf '| %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %s |\n' "$n" "$bok" "$bw" "$bs" "$dr" "$rt" "$pk" "$rss" "$cpu" "$kok" "$kw" "$ks" "$kp"
        done
    } >"$MARKDOWN"
fi
