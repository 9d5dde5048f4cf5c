#!/usr/bin/env python3
"""Write valid IPv4 and IPv6 TCP packets (checksums filled in) into tcp_packet/.

These are the named seeds of the `tcp_packet` fuzz target: two SYNs captured from Linux 6.18
(the same bytes as crates/braid-proto/tests/wire_tcp_fixtures.rs) and packets built here with
MSS, window scale, SACK-permitted, SACK blocks, timestamps, MPTCP options (MP_CAPABLE,
MP_JOIN, DSS, ADD_ADDR), an unknown option, NOP alignment, IPv4 options, IPv6 extension
headers, payloads and trailing bytes past the IP length.
"""
import ipaddress
import os
import struct

LINUX_SYN_V4 = (
    "4500003c4fc040004006d65f0a4d00010a4d0002a2c41f90fd87b42900000000"
    "a002faf03df00000020405b40402080adebda7bb000000000103030a"
)
LINUX_SYN_V6 = (
    "60071d4f00280640fd770000000000000000000000000001fd77000000000000"
    "00000000000000029b881f90b5e412aa00000000a002fd20d4510000020405a0"
    "0402080aa2845580000000000103030a"
)

K_A = bytes.fromhex("a460601917873ac7")
K_B = bytes.fromhex("b1001876e18373d4")

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip(a: str):
    return ipaddress.ip_address(a)


# Option builders.
def mss(v):
    return struct.pack(">BBH", 2, 4, v)


def ws(v):
    return bytes([3, 3, v])


def sackp():
    return bytes([4, 2])


def ts(val, ecr):
    return struct.pack(">BBII", 8, 10, val, ecr)


def sack(*blocks):
    return bytes([5, 2 + 8 * len(blocks)]) + b"".join(struct.pack(">II", l, r) for l, r in blocks)


NOP = b"\x01"


def tcp(src, dst, sport, dport, seq, ack, flags, window, opts=b"", payload=b"", urgent=0, reserved=0):
    if len(opts) % 4:
        opts += b"\0" * (4 - len(opts) % 4)
    assert len(opts) <= 40, len(opts)
    hlen = 20 + len(opts)
    hdr = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (hlen // 4) << 4 | reserved, flags, window, 0, urgent)
    seg = hdr + opts + payload
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack(">BBH", 0, 6, len(seg))
    else:
        pseudo = src.packed + dst.packed + struct.pack(">IxxxB", len(seg), 6)
    c = ~csum(pseudo + seg) & 0xFFFF
    return seg[:16] + struct.pack(">H", c) + seg[18:]


def v4(src, dst, seg, ttl=64, ident=0x1234, ip_opts=b"", trailer=b""):
    src, dst = ip(src), ip(dst)
    seg = seg(src, dst)
    assert len(ip_opts) % 4 == 0
    ihl = 5 + len(ip_opts) // 4
    total = ihl * 4 + len(seg)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, 0x4000, ttl, 6, 0, src.packed, dst.packed) + ip_opts
    c = ~csum(hdr) & 0xFFFF
    hdr = hdr[:10] + struct.pack(">H", c) + hdr[12:]
    return hdr + seg + trailer


def v6(src, dst, seg, hop=64, exts=(), trailer=b""):
    """exts: [(next_header_of_this_ext_type, body)] -- each body is padded to 8n-2 bytes."""
    src, dst = ip(src), ip(dst)
    seg = seg(src, dst)
    chain = b""
    types = [t for t, _ in exts] + [6]
    for i, (_, body) in enumerate(exts):
        body = body + b"\0" * ((-(len(body) + 2)) % 8)
        chain += bytes([types[i + 1], (len(body) + 2) // 8 - 1]) + body
    first = types[0]
    hdr = struct.pack(">IHBB16s16s", 0x60000000, len(chain) + len(seg), first, hop, src.packed, dst.packed)
    return hdr + chain + seg + trailer


def seg(*a, **kw):
    return lambda s, d: tcp(s, d, *a, **kw)


SEEDS = {
    "linux_syn_v4": bytes.fromhex(LINUX_SYN_V4),
    "linux_syn_v6": bytes.fromhex(LINUX_SYN_V6),
    # MPTCP handshake, IPv4 (RFC 8684 §3.1).
    "v4_mpc_syn": v4("10.0.0.1", "10.0.0.2",
                     seg(40000, 80, 1000, 0, SYN, 64240,
                         mss(1460) + sackp() + ts(1, 0) + NOP + ws(7) + bytes([30, 4, 0x01, 0x01]))),
    "v4_mpc_synack": v4("10.0.0.2", "10.0.0.1",
                        seg(80, 40000, 5000, 1001, SYN | ACK, 65160,
                            mss(1460) + sackp() + ts(2, 1) + NOP + ws(7) + bytes([30, 12, 0x01, 0x01]) + K_B)),
    "v4_mpc_ack_data": v4("10.0.0.1", "10.0.0.2",
                          seg(40000, 80, 1001, 5001, ACK | PSH, 502,
                              NOP + NOP + ts(3, 2) + bytes([30, 22, 0x01, 0x01]) + K_A + K_B + struct.pack(">H", 5),
                              payload=b"hello")),
    # Data with a DSS mapping and DATA_ACK (RFC 8684 §3.3).
    "v4_dss_data": v4("10.0.0.1", "10.0.0.2",
                      seg(40000, 80, 1006, 5001, ACK | PSH, 502,
                          NOP + NOP + ts(4, 2) + bytes([30, 20, 0x20, 0x05]) + struct.pack(">IIIHH", 1, 6, 6, 11, 0),
                          payload=b"hello world")),
    "v4_sack_blocks": v4("10.0.0.2", "10.0.0.1",
                         seg(80, 40000, 5001, 1006, ACK, 1000,
                             NOP + NOP + ts(5, 4) + NOP + NOP + sack((2000, 3000), (4000, 5000), (6000, 7000)))),
    "v4_fin_urg_unknown": v4("10.0.0.1", "10.0.0.2",
                             seg(40000, 80, 2000, 5001, FIN | ACK | URG | PSH, 0,
                                 bytes([253, 6, 0xde, 0xad, 0xbe, 0xef]) + NOP + NOP, payload=b"!", urgent=1,
                                 reserved=0x01)),
    "v4_rst": v4("10.0.0.2", "10.0.0.1", seg(80, 40000, 5001, 0, RST, 0)),
    "v4_ip_options_trailer": v4("192.0.2.1", "192.0.2.2",
                                seg(1234, 443, 7, 8, ACK | ECE | CWR, 29200, ts(9, 10) + NOP + NOP,
                                    payload=bytes(range(32))),
                                ttl=1, ip_opts=bytes([7, 7, 4, 0, 0, 0, 0, 1]), trailer=b"\xff\xff\xff"),
    # IPv6.
    "v6_join_syn": v6("fd77::1", "fd77::2",
                      seg(41000, 80, 99, 0, SYN, 64800,
                          mss(1440) + sackp() + ts(11, 0) + NOP + ws(10)
                          + bytes([30, 12, 0x11, 2]) + struct.pack(">II", 1314713917, 748849082))),
    "v6_join_synack": v6("fd77::2", "fd77::1",
                         seg(80, 41000, 777, 100, SYN | ACK, 64800,
                             mss(1440) + NOP + ws(10) + bytes([30, 16, 0x10, 0]) +
                             struct.pack(">QI", 1396593307132662883, 3929586875))),
    "v6_addaddr_dss_ack": v6("fd77::2", "fd77::1",
                             seg(80, 41000, 778, 100, ACK, 500,
                                 bytes([30, 8, 0x20, 0x01]) + struct.pack(">I", 123) +
                                 bytes([30, 16, 0x30, 5, 10, 99, 2, 2]) + struct.pack(">Q", 5367539639038772624))),
    "v6_exts_payload": v6("2001:db8::1", "2001:db8::2",
                          seg(5555, 80, 0xFFFFFFF0, 0x10, ACK | PSH, 65535,
                              NOP + NOP + ts(0xFFFFFFFF, 0x80000000) + NOP + NOP + sack((1, 2)),
                              payload=b"GET / HTTP/1.1\r\n\r\n"),
                          hop=255, exts=[(0, bytes([1, 4, 0, 0, 0, 0])), (60, bytes([1, 4, 0, 0, 0, 0]))],
                          trailer=b"\0"),
    "v6_fastclose_rst": v6("fd77::1", "fd77::2",
                           seg(41000, 80, 101, 779, RST | ACK, 0, bytes([30, 12, 0x70, 0]) + K_A + bytes([30, 4, 0x81, 3]))),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_packet")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")
