#!/usr/bin/env python3
"""Write one canonical encoding of every MPTCP option form (RFC 8684 §3) into mptcp_option/.

These are the named seeds of the `mptcp_option` fuzz target; the braid-proto test
`wire_mptcp::fuzz_seeds_parse_and_reencode_exactly` checks that each one parses and that
emitting the result gives the same bytes back.
"""
import os
import struct

K_A = bytes.fromhex("a460601917873ac7")
K_B = bytes.fromhex("b1001876e18373d4")
V6 = bytes.fromhex("20010db8000000000000000000000002")

SEEDS = {
    "mpc_syn": bytes([30, 4, 0x01, 0x01]),
    "mpc_synack": bytes([30, 12, 0x01, 0x01]) + K_B,
    "mpc_ack": bytes([30, 20, 0x01, 0x01]) + K_A + K_B,
    "mpc_data": bytes([30, 22, 0x01, 0x01]) + K_A + K_B + struct.pack(">H", 1500),
    "mpc_data_csum": bytes([30, 24, 0x01, 0x81]) + K_A + K_B + struct.pack(">HH", 1500, 0xBEEF),
    "join_syn": bytes([30, 12, 0x11, 2]) + struct.pack(">II", 1314713917, 748849082),
    "join_synack": bytes([30, 16, 0x10, 0]) + struct.pack(">QI", 1396593307132662883, 3929586875),
    "join_ack": bytes([30, 24, 0x10, 0]) + bytes.fromhex("b26ab0a75999593b77954fbd0f8644228a26efb6"),
    "dss_ack4": bytes([30, 8, 0x20, 0x01]) + struct.pack(">I", 0xDEADBEEF),
    "dss_ack8": bytes([30, 12, 0x20, 0x03]) + struct.pack(">Q", 1),
    "dss_full": bytes([30, 26, 0x20, 0x0F]) + struct.pack(">QQIH", 5, 6, 1, 1448),
    "dss_full_csum_fin": bytes([30, 28, 0x20, 0x1F]) + struct.pack(">QQIHH", 5, 6, 1, 1448, 0x1234),
    "dss_map4_csum_fin": bytes([30, 16, 0x20, 0x14]) + struct.pack(">IIHH", 0x1000, 0x20, 1, 0xABCD),
    "dss_ack4_map4": bytes([30, 18, 0x20, 0x05]) + struct.pack(">IIIH", 1, 2, 3, 4),
    "dss_infinite": bytes([30, 14, 0x20, 0x04]) + bytes(10),
    "addaddr_v4_hmac": bytes([30, 16, 0x30, 5, 10, 99, 2, 2]) + struct.pack(">Q", 5367539639038772624),
    "addaddr_v4_port_hmac": bytes([30, 18, 0x30, 1, 192, 0, 2, 1]) + struct.pack(">HQ", 8080, 7),
    "addaddr_v4_echo": bytes([30, 8, 0x31, 1, 192, 0, 2, 1]),
    "addaddr_v4_port_echo": bytes([30, 10, 0x31, 1, 192, 0, 2, 1, 0x1F, 0x90]),
    "addaddr_v6_echo": bytes([30, 20, 0x31, 9]) + V6,
    "addaddr_v6_port_echo": bytes([30, 22, 0x31, 9]) + V6 + struct.pack(">H", 443),
    "addaddr_v6_hmac": bytes([30, 28, 0x30, 9]) + V6 + struct.pack(">Q", 3),
    "addaddr_v6_port_hmac": bytes([30, 30, 0x30, 9]) + V6 + struct.pack(">HQ", 443, 3),
    "rmaddr_1": bytes([30, 4, 0x40, 7]),
    "rmaddr_3": bytes([30, 6, 0x40, 1, 2, 3]),
    "prio": bytes([30, 3, 0x51]),
    "prio_v0": bytes([30, 4, 0x50, 3]),
    "fail": bytes([30, 12, 0x60, 0]) + struct.pack(">Q", 0xCF77DF7DF7BAC01A),
    "fastclose": bytes([30, 12, 0x70, 0]) + K_A,
    "tcprst": bytes([30, 4, 0x81, 3]),
    "experimental": bytes([30, 6, 0xF5, 1, 2, 3]),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mptcp_option")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        assert data[1] == len(data), name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")
