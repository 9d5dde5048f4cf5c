#!/usr/bin/env python3
"""Write scripted sessions for the `endpoint` fuzz target into endpoint/.

The input format is documented at the top of fuzz_targets/endpoint.rs. Tuples: 0 is the
active connection (peer 10.0.0.2:80), 1 and 2 IPv4 clients of the listener, 3 and 4 IPv6
clients, 5 a client of port 81 (no listener). Handles: 0 is the active connection, then
accepted connections in the order they were accepted.
"""
import os
import struct

FIN, SYN, RST, PSH, ACK, URG = 1, 2, 4, 8, 16, 32

# Time advance codes.
NOW, MS10, S1, TIMEOUT = 0, 10, 110, 255


def header(cfg=0, sizes=0, seed=0):
    return bytes([cfg, sizes, seed])


def seg(tuple_, flags, seq=0, ack=0, window=65535, adv=NOW, mss=None, ws=None, sackp=False,
        ts=None, sack=(), mptcp=None, unknown=None, tmpl=None, payload=0, fill=0x61):
    opts = 0
    body = b""
    if mss is not None:
        opts |= 1
        body += struct.pack(">H", mss)
    if ws is not None:
        opts |= 2
        body += bytes([ws])
    if sackp:
        opts |= 4
    if ts is not None:
        opts |= 8
        step, ecr = ts
        body += struct.pack(">Bb", step, ecr)
    if sack:
        opts |= 16
        body += bytes([len(sack) - 1])
        for left, length in sack:
            body += struct.pack(">hH", left, length)
    if mptcp is not None:
        opts |= 32
        body += bytes([len(mptcp)]) + mptcp
    if unknown is not None:
        opts |= 64
        kind, data = unknown
        body += bytes([kind, len(data)]) + data
    if tmpl is not None:
        opts |= 128
        form, tflags, delta = tmpl
        body += struct.pack(">BBh", form, tflags, delta)
    return (bytes([adv, 0, tuple_, flags]) + struct.pack(">hhHB", seq, ack, window, opts) + body
            + struct.pack(">HB", payload, fill))


def raw(data, fix=True, adv=NOW):
    return bytes([adv, 1, 1 if fix else 0]) + struct.pack(">H", len(data)) + data


def app(conn, op, arg=0, adv=NOW):
    return bytes([adv, 2, conn, op]) + struct.pack(">H", arg)


def tick(adv):
    return bytes([adv, 3])


READ, WRITE, CLOSE, ABORT, INFO, CONNECT = range(6)
# Template MPTCP options (opts bit 7): forms, and the DSS flags of form 3.
T_MPC_SYN, T_MPC_SYNACK, T_MPC_ACK, T_DSS, T_FASTCLOSE, T_PRIO, T_JOIN_SYN, T_JOIN_ACK, \
    T_ADD_ADDR, T_RM_ADDR, T_MP_FAIL = range(11)
D_ACK, D_MAP, D_FIN, D_CSUM, D_DSN64, D_ACK64, D_INFINITE = 1, 2, 4, 8, 16, 32, 64
D_DATA = D_ACK | D_MAP | D_DSN64 | D_ACK64
SYN_OPTS = dict(mss=1460, ws=7, sackp=True, ts=(1, 0))
MPC_SYN = bytes([30, 4, 0x01, 0x01])

SEEDS = {
    # The active open completes, data both ways, orderly close from both sides, TIME-WAIT.
    "active_session": header() + b"".join([
        seg(0, SYN | ACK, **SYN_OPTS),
        seg(0, ACK, ts=(1, 0)),
        app(0, WRITE, 4000),
        seg(0, ACK, adv=MS10, ts=(10, 0)),
        seg(0, ACK | PSH, ts=(1, 0), payload=700),
        app(0, READ, 1000),
        seg(0, FIN | ACK, ts=(1, 0)),
        app(0, READ, 10),
        app(0, CLOSE),
        seg(0, ACK, ts=(1, 0)),
        tick(TIMEOUT),
        app(0, INFO),
    ]),
    # A v4 client of the listener: handshake, request, response, loss and SACK, RTO, reset.
    "passive_v4_sack_rto": header() + b"".join([
        seg(1, SYN, **SYN_OPTS),
        seg(1, ACK, ts=(1, 0)),
        seg(1, ACK | PSH, ts=(1, 0), payload=300),
        app(1, READ, 2000),
        app(1, WRITE, 20000),
        seg(1, ACK, ack=-20000 + 1460, ts=(5, 0), adv=MS10),
        seg(1, ACK, ack=-20000 + 1460, ts=(1, 0), sack=((-20000 + 2920, 1460),)),
        seg(1, ACK, ack=-20000 + 1460, ts=(1, 0), sack=((-20000 + 2920, 2920), (-20000 + 8760, 1460))),
        seg(1, ACK, ack=-20000 + 1460, ts=(1, 0), sack=((-20000 + 2920, 5840),)),
        tick(TIMEOUT),
        tick(TIMEOUT),
        seg(1, ACK, ts=(100, 0)),
        seg(1, RST | ACK, ts=(1, 0)),
        app(1, READ, 10),
        app(1, WRITE, 10),
    ]),
    # Wrapping sequence numbers, no options, out-of-order data and a peer FIN.
    "passive_v4_wrap_ooo": header(cfg=0x0b, sizes=0x0a) + b"".join([
        seg(2, SYN),
        seg(2, ACK),
        seg(2, ACK | PSH, seq=1000, payload=500),
        seg(2, ACK | PSH, payload=1000),
        app(1, READ, 4000),
        seg(2, FIN | ACK, seq=500),
        app(1, READ, 4000),
        app(1, WRITE, 9000),
        app(1, CLOSE),
        seg(2, ACK, adv=MS10),
        tick(TIMEOUT),
    ]),
    # IPv6 clients: MPTCP SYN, duplicate SYN, zero window and persist, FIN in SYN-RECEIVED.
    "passive_v6_zero_window": header(cfg=0x40, sizes=0x15) + b"".join([
        seg(3, SYN, mptcp=MPC_SYN, **SYN_OPTS),
        seg(3, SYN, seq=-1, **SYN_OPTS),
        seg(3, ACK, window=0, ts=(1, 0)),
        app(1, WRITE, 3000),
        tick(TIMEOUT),
        tick(TIMEOUT),
        seg(3, ACK, window=65535, ts=(200, 0)),
        seg(4, SYN, mss=1220, unknown=(253, b"\xde\xad")),
        seg(4, FIN | ACK),
        tick(TIMEOUT),
        app(2, ABORT),
    ]),
    # The active open as MPTCP: the peer's SYN/ACK carries its key, data both ways at the
    # data level (DSS mappings at the peer's DSNs, DATA_ACKs of what the endpoint mapped),
    # a DATA_FIN, close.
    "mptcp_active_session": header(seed=7) + b"".join([
        seg(0, SYN | ACK, tmpl=(T_MPC_SYNACK, 0x01, 0), **SYN_OPTS),
        app(0, WRITE, 3000),
        seg(0, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA, 0), payload=1000, fill=0x41),
        app(0, READ, 4000),
        seg(0, ACK | PSH, adv=40, ts=(1, 0), tmpl=(T_DSS, D_ACK | D_MAP | D_ACK64, 0),
            payload=1000),
        app(0, READ, 4000),
        seg(0, ACK, adv=MS10, ts=(1, 0), tmpl=(T_DSS, D_DATA | D_FIN, 0)),
        app(0, CLOSE),
        tick(TIMEOUT),
        seg(0, FIN | ACK, adv=MS10, ts=(1, 0), tmpl=(T_DSS, D_ACK | D_ACK64, 0)),
        tick(TIMEOUT),
        tick(TIMEOUT),
    ]),
    # A v4 MPTCP client of the listener: keyless SYN, third ACK with both keys, data,
    # MP_PRIO, then MP_FASTCLOSE on an ACK (RFC 8684 §3.5.1).
    "mptcp_passive_fastclose": header(seed=9) + b"".join([
        seg(1, SYN, tmpl=(T_MPC_SYN, 0x01, 0), **SYN_OPTS),
        seg(1, ACK, ts=(1, 0), tmpl=(T_MPC_ACK, 0x01, 0)),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA, 0), payload=1200, fill=0x30),
        app(1, READ, 4000),
        app(1, WRITE, 2000),
        seg(1, ACK, adv=MS10, ts=(1, 0), tmpl=(T_DSS, D_ACK | D_ACK64, 0)),
        seg(1, ACK, adv=5, ts=(1, 0), tmpl=(T_PRIO, 1, 0)),
        seg(1, ACK, adv=5, ts=(1, 0), tmpl=(T_FASTCLOSE, 0, 0)),
        tick(TIMEOUT),
        tick(TIMEOUT),
    ]),
    # An MPTCP client of the listener opens a second subflow from another port (MP_JOIN
    # with the connection's token, the third ACK with the HMAC), sends data on both,
    # announces and removes an address.
    "mptcp_passive_join": header(seed=11) + b"".join([
        seg(1, SYN, tmpl=(T_MPC_SYN, 0x01, 0), **SYN_OPTS),
        seg(1, ACK, ts=(1, 0), tmpl=(T_MPC_ACK, 0x01, 0)),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA, 0), payload=700, fill=0x30),
        seg(2, SYN, adv=5, tmpl=(T_JOIN_SYN, 0, 1), **SYN_OPTS),
        seg(2, ACK, ts=(1, 0), tmpl=(T_JOIN_ACK, 0, 0)),
        seg(2, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA, 0), payload=900, fill=0x40),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA, 0), payload=500, fill=0x50),
        app(1, READ, 4000),
        seg(1, ACK, adv=5, ts=(1, 0), tmpl=(T_ADD_ADDR, 7, 0)),
        seg(1, ACK, adv=5, ts=(1, 0), tmpl=(T_RM_ADDR, 7, 0)),
        tick(TIMEOUT),
    ]),
    # An MPTCP client asking for DSS checksums: data with a checksum, then MP_FAIL, then
    # the infinite mapping and data as plain TCP (RFC 8684 §3.7).
    "mptcp_checksum_fail_fallback": header(seed=13) + b"".join([
        seg(1, SYN, tmpl=(T_MPC_SYN, 0x81, 0), **SYN_OPTS),
        seg(1, ACK, ts=(1, 0), tmpl=(T_MPC_ACK, 0x81, 0)),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA | D_CSUM, 0), payload=1000,
            fill=0x30),
        app(1, READ, 4000),
        app(1, WRITE, 3000),
        seg(1, ACK, adv=5, ts=(1, 0), tmpl=(T_MP_FAIL, 0, 0)),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), tmpl=(T_DSS, D_DATA | D_INFINITE, 0), payload=800,
            fill=0x60),
        seg(1, ACK | PSH, adv=5, ts=(1, 0), payload=600, fill=0x70),
        app(1, READ, 4000),
        tick(TIMEOUT),
    ]),
    # Unknown port, bad segments, raw and checksum-broken packets, a second active open.
    "resets_and_garbage": header() + b"".join([
        seg(5, SYN, mss=536),
        seg(5, ACK | PSH, payload=10),
        seg(1, ACK, ack=1234),
        seg(0, SYN | ACK, ack=5, **SYN_OPTS),
        seg(0, RST, seq=100),
        raw(bytes.fromhex("4500003c4fc040004006d65f0a000003" "0a000001a2c40050fd87b42900000000"
                          "a002faf03df00000020405b40402080adebda7bb000000000103030a")),
        raw(bytes.fromhex("4500003c4fc040004006d65f0a000003" "0a000001a2c40050fd87b42900000000"
                          "a002faf03df00000020405b40402080adebda7bb000000000103030a"), fix=False),
        raw(b"\x60" + bytes(50)),
        app(0, CONNECT, 1),
        app(0, CONNECT, 0),
        tick(TIMEOUT),
        tick(254),
        tick(TIMEOUT),
        app(0, WRITE, 10),
        app(0, READ, 10),
    ]),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "endpoint")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")
