#!/usr/bin/env bash
# bench/proxy.sh: throughput through a braid proxy pair against braid connect -> braid listen
# on the same setup, in one run, both directions, one path.
#
#   direct:  braid connect --send N  ->  braid listen --sink        (up)
#            braid connect (reads)   <-  braid listen --send N      (down)
#   proxy:   program -> TCP -> braid proxy client -> MPTCP -> braid proxy server -> TCP -> sink
#            (up), and a source upstream read by the program (down); the program and the
#            upstream are small Python loops on the namespace's loopback.
#
# Namespace braid-pxb-<pid> (deleted on exit): TUN braid0 (kernel 10.1.0.1, braid client
# 10.1.0.2) and braid2 (10.3.0.1, braid server 10.3.0.2), forwarding between them.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/proxy.sh [options]          (needs root; builds the release binary first)

  --bytes N      bytes per transfer (default 1G; K, M, G suffixes)
  --reps N       repetitions of each measurement; the median is reported (default 3)
  --quick        64M, one repetition (a smoke run)
  --no-build     use $BRAID_BIN, else target/release/braid
  --markdown F   also write the table as markdown to F
  -h, --help     this text
EOF
}

BYTES=1G
REPS=3
BUILD=1
MARKDOWN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bytes) BYTES="$2"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --quick) BYTES=64M; REPS=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --markdown) MARKDOWN="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "proxy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "proxy.sh: needs root (network namespaces, TUN)" >&2; exit 1; }

cd "$(dirname "$0")/.."
if [ "$BUILD" -eq 1 ]; then cargo build -q --release -p braid --bin braid; fi
BRAID="${BRAID_BIN:-${CARGO_TARGET_DIR:-target}/release/braid}"
N=$(python3 -c "import sys; s=sys.argv[1].upper(); m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$BYTES")

NS="braid-pxb-$$"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -f "/tmp/$NS"-*
}
trap cleanup EXIT
x() { ip netns exec "$NS" "$@"; }

ip netns add "$NS"
x ip link set lo up
x sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.mptcp.enabled=1
for i in 0 2; do
    x ip tuntap add dev "braid$i" mode tun
    x ip addr add "10.$((i + 1)).0.1/24" dev "braid$i"
    x ip link set "braid$i" up
done

# The program's side and the upstream's, on loopback: `sink PORT` reads to EOF and answers
# with the count; `source PORT N` sends N bytes to each connection; `up PORT N` sends N bytes
# and waits for the answer; `down PORT` reads to EOF. The last two print seconds taken.
PY='
import socket, sys, time
mode = sys.argv[1]; port = int(sys.argv[2]); buf = bytearray(1 << 20)
def listener():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(8); print("listening", file=sys.stderr, flush=True)
    return l
if mode == "sink":
    l = listener()
    while True:
        c, _ = l.accept(); n = 0
        while True:
            k = c.recv_into(buf)
            if not k: break
            n += k
        c.sendall(str(n).encode()); c.close()
elif mode == "source":
    l = listener(); n = int(sys.argv[3]); view = memoryview(bytes(1 << 20))
    while True:
        c, _ = l.accept(); left = n
        while left: k = c.send(view[:min(left, len(view))]); left -= k
        c.close()
elif mode == "up":
    n = int(sys.argv[3]); view = memoryview(bytes(1 << 20)); t = time.time()
    s = socket.create_connection(("127.0.0.1", port)); left = n
    while left: k = s.send(view[:min(left, len(view))]); left -= k
    s.shutdown(socket.SHUT_WR); got = s.recv(64); dt = time.time() - t
    assert int(got) == n, (got, n); print(f"{dt:.3f}")
else:
    t = time.time(); s = socket.create_connection(("127.0.0.1", port)); n = 0
    while True:
        k = s.recv_into(buf)
        if not k: break
        n += k
    print(f"{time.time() - t:.3f}"); assert n == int(sys.argv[3]), n
'

start() { # name, command...: in the namespace, in the background; waits for its "listening"
    local name="$1"; shift
    ip netns exec "$NS" "$@" >"/tmp/$NS-$name.out" 2>"/tmp/$NS-$name.err" &
    PIDS+=("$!")
    for _ in $(seq 100); do grep -q listening "/tmp/$NS-$name.err" 2>/dev/null && return; sleep 0.1; done
    echo "proxy.sh: $name did not start: $(cat "/tmp/$NS-$name.err")" >&2; exit 1
}

json_duration() { python3 -c 'import json,sys; print("%.3f" % json.loads(sys.stdin.read().strip().splitlines()[-1])["duration_s"])'; }

direct_up() {
    start "dl$1" "$BRAID" listen --port 5201 --path braid2=10.3.0.2 --sink --once
    x "$BRAID" connect 10.3.0.2:5201 --path braid0=10.1.0.2 --send "$N" --json | json_duration
    wait "${PIDS[-1]}" 2>/dev/null || true
}
direct_down() {
    start "dd$1" "$BRAID" listen --port 5202 --path braid2=10.3.0.2 --send "$N" --once
    x "$BRAID" connect 10.3.0.2:5202 --path braid0=10.1.0.2 --json | json_duration
    wait "${PIDS[-1]}" 2>/dev/null || true
}

stop_last_two() { # the proxy pair started last: stopped, and its TUN devices free again
    local a="${PIDS[-1]}" b="${PIDS[-2]}"
    kill "$a" "$b" 2>/dev/null || true
    wait "$a" "$b" 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
rate() { python3 -c "import sys; print('%.0f' % ($N * 8 / float(sys.argv[1]) / 1e6))" "$1"; }

start sink python3 -c "$PY" sink 9000
start source python3 -c "$PY" source 9001 "$N"
du=(); dd=(); pu=(); pd=()
for r in $(seq "$REPS"); do
    du+=("$(direct_up "$r")")
    dd+=("$(direct_down "$r")")
done
start pserver-up "$BRAID" proxy server --port 1080 --path braid2=10.3.0.2 --upstream 127.0.0.1:9000
start pclient-up "$BRAID" proxy client --listen 127.0.0.1:1080 --remote 10.3.0.2:1080 --path braid0=10.1.0.2
for r in $(seq "$REPS"); do
    pu+=("$(x python3 -c "$PY" up 1080 "$N")")
done
stop_last_two
start pserver-down "$BRAID" proxy server --port 1081 --path braid2=10.3.0.2 --upstream 127.0.0.1:9001
start pclient-down "$BRAID" proxy client --listen 127.0.0.1:1081 --remote 10.3.0.2:1081 --path braid0=10.1.0.2
for r in $(seq "$REPS"); do
    pd+=("$(x python3 -c "$PY" down 1081 "$N")")
done
stop_last_two

row() { # label, seconds...
    local label="$1"; shift
    local m; m=$(printf '%s\n' "$@" | median)
    local all; all=$(for s in "$@"; do printf '%s ' "$(rate "$s")"; done)
    echo "$label | $(rate "$m") | ${all% }"
}
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) / float(sys.argv[1])))" "$1" "$2"; }
mdu=$(printf '%s\n' "${du[@]}" | median); mpu=$(printf '%s\n' "${pu[@]}" | median)
mdd=$(printf '%s\n' "${dd[@]}" | median); mpd=$(printf '%s\n' "${pd[@]}" | median)
{
    echo "transfer ($BYTES, one path, $REPS reps) | median Mbit/s | each rep Mbit/s"
    echo "--- | --- | ---"
    row "braid connect -> braid listen (up)" "${du[@]}"
    row "proxy pair, program -> upstream (up)" "${pu[@]}"
    row "braid listen -> braid connect (down)" "${dd[@]}"
    row "proxy pair, upstream -> program (down)" "${pd[@]}"
    echo "proxy / direct: up $(ratio "$mpu" "$mdu"), down $(ratio "$mpd" "$mdd")"
} | tee "${MARKDOWN:-/dev/null}"
