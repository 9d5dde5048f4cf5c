//! MPTCP options captured from Linux 6.18 (two network namespaces, `checksum_enabled=1`, an
//! ADD_ADDR signal endpoint and a subflow endpoint, Python clients on IPPROTO_MPTCP), parsed
//! field by field, with the field values cross-checked against tshark 4's decoding, and the
//! crypto recomputed from the parsed fields: token, IDSN, both MP_JOIN HMACs, the ADD_ADDR
//! HMAC, and DSS checksums over the known payloads.

use std::net::{IpAddr, Ipv4Addr};

use braid_proto::crypto::{
    add_addr_hmac, dss_checksum, join_ack_hmac, join_synack_hmac, key_idsn, key_token,
    verify_dss_checksum,
};
use braid_proto::wire::mptcp::{Dss, DssMapping, MpCapable, MptcpOption};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Parse a captured option and check that braid re-encodes it byte for byte.
fn parse(s: &str) -> MptcpOption {
    let bytes = hex(s);
    let opt = MptcpOption::parse(&bytes).unwrap();
    assert_eq!(opt.to_vec(), bytes, "re-encoding of {s}");
    opt
}

// Capture 1: client 10.99.1.1 -> server 10.99.1.2:5000, join 10.99.2.1 -> 10.99.2.2.
const CLIENT_KEY: u64 = 11_225_365_208_452_796_594; // 0x9bc8822ebbdb90b2
const SERVER_KEY: u64 = 9_362_000_292_188_167_148; // 0x81ec81a9eafa9bec

#[test]
fn mp_capable_handshake() {
    // SYN: version 1, flags A (checksum) and H.
    let syn = parse("1e040181");
    assert_eq!(syn, MptcpOption::MpCapable(MpCapable::syn(1, 0x81)));
    let MptcpOption::MpCapable(c) = syn else {
        unreachable!()
    };
    assert!(c.checksum_required() && c.hmac_sha256());
    // SYN/ACK: the server's key.
    assert_eq!(
        parse("1e0c018181ec81a9eafa9bec"),
        MptcpOption::MpCapable(MpCapable::syn_ack(1, 0x81, SERVER_KEY))
    );
    // Third ACK: both keys, sender (client) first.
    assert_eq!(
        parse("1e1401819bc8822ebbdb90b281ec81a9eafa9bec"),
        MptcpOption::MpCapable(MpCapable::ack(1, 0x81, CLIENT_KEY, SERVER_KEY))
    );
    // tshark's mptcp.expected_token / expected_idsn for the two keys.
    assert_eq!(key_token(SERVER_KEY), 3_293_904_351);
    assert_eq!(key_idsn(SERVER_KEY), 7_130_561_390_109_812_168);
    assert_eq!(key_token(CLIENT_KEY), 3_189_645_017);
    assert_eq!(key_idsn(CLIENT_KEY), 9_342_598_932_093_743_939);
}

#[test]
fn mp_join_handshake_and_hmacs() {
    let syn = parse("1e0c1001c454fddf21ce3f82");
    let MptcpOption::MpJoinSyn {
        backup,
        addr_id,
        token,
        nonce: client_nonce,
    } = syn
    else {
        panic!("{syn:?}")
    };
    assert!(!backup);
    assert_eq!(addr_id, 1);
    // The SYN carries the receiver's (server's) token.
    assert_eq!(token, 3_293_904_351);
    assert_eq!(token, key_token(SERVER_KEY));
    assert_eq!(client_nonce, 567_164_802);

    let synack = parse("1e1010015a90517491cfa62414cf1f70");
    let MptcpOption::MpJoinSynAck {
        hmac,
        nonce: server_nonce,
        addr_id,
        backup,
    } = synack
    else {
        panic!("{synack:?}")
    };
    assert!(!backup);
    assert_eq!(addr_id, 1);
    assert_eq!(hmac, 6_525_805_421_164_209_700);
    assert_eq!(server_nonce, 349_118_320);
    assert_eq!(
        join_synack_hmac(CLIENT_KEY, SERVER_KEY, client_nonce, server_nonce),
        hmac
    );

    let ack = parse("1e181000eb8b0d231865b99f7cf639f41e942ad9ae9cf0fc");
    let MptcpOption::MpJoinAck { hmac } = ack else {
        panic!("{ack:?}")
    };
    assert_eq!(
        join_ack_hmac(CLIENT_KEY, SERVER_KEY, client_nonce, server_nonce),
        hmac
    );
}

#[test]
fn add_addr_and_its_echo() {
    let addr = IpAddr::V4(Ipv4Addr::new(10, 99, 2, 2));
    let announce = parse("1e1030010a6302024f368290c48dcd79");
    assert_eq!(
        announce,
        MptcpOption::AddAddr {
            echo: false,
            addr_id: 1,
            addr,
            port: None,
            hmac: Some(5_707_893_136_023_211_385),
        }
    );
    // Sent by the server: keyed with server ‖ client.
    assert_eq!(
        add_addr_hmac(SERVER_KEY, CLIENT_KEY, 1, addr, None),
        5_707_893_136_023_211_385
    );
    assert_eq!(
        parse("1e0831010a630202"),
        MptcpOption::AddAddr {
            echo: true,
            addr_id: 1,
            addr,
            port: None,
            hmac: None,
        }
    );
}

/// The client wrote 20 chunks of 3001 bytes, chunk i holding `(i * 7 + j) as u8` at j.
fn client_chunk(i: usize) -> Vec<u8> {
    (0..3001).map(|j| (i * 7 + j) as u8).collect()
}

#[test]
fn dss_first_data_mapping_with_checksum() {
    // A M m: 4-octet DATA_ACK, 8-octet DSN, checksum (24 octets).
    let opt = parse("1e18200d129c65c981a7943ac2643344000000010bb918cc");
    let idsn = key_idsn(CLIENT_KEY);
    assert_eq!(
        opt,
        MptcpOption::Dss(Dss {
            data_ack: Some(312_239_561),
            data_ack_64: false,
            mapping: Some(DssMapping {
                dsn: idsn + 1,
                dsn_64: true,
                subflow_seq: 1,
                data_len: 3001,
                checksum: Some(0x18cc),
            }),
            data_fin: false,
        })
    );
    // The server's IDSN + 1, truncated to 32 bits, is what it acknowledges.
    assert_eq!(312_239_561, (key_idsn(SERVER_KEY) + 1) as u32);
    let payload = client_chunk(0);
    assert_eq!(dss_checksum(idsn + 1, 1, 3001, &payload), 0x18cc);
    assert!(verify_dss_checksum(idsn + 1, 1, 3001, &payload, 0x18cc));
    let mut bad = payload;
    bad[1000] ^= 1;
    assert!(!verify_dss_checksum(idsn + 1, 1, 3001, &bad, 0x18cc));
}

#[test]
fn dss_data_acks() {
    assert_eq!(
        parse("1e082001c2643344"),
        MptcpOption::Dss(Dss {
            data_ack: Some(0xc264_3344),
            data_ack_64: false,
            mapping: None,
            data_fin: false,
        })
    );
    let Ok(MptcpOption::Dss(d)) = MptcpOption::parse(&hex("1e0c200381a7943ac2643efd")) else {
        panic!()
    };
    // tshark: 9342598932093746941 = the client's IDSN + 1 + 3001.
    assert_eq!(d.data_ack, Some(9_342_598_932_093_746_941));
    assert_eq!(d.data_ack, Some(key_idsn(CLIENT_KEY) + 1 + 3001));
    assert!(d.data_ack_64 && d.mapping.is_none() && !d.data_fin);
}

#[test]
fn dss_server_reply_with_8_octet_ack_and_checksum() {
    let opt = parse("1e1c200f81a7943ac2651db962f4d7ce129c65c90000000100085acc");
    let server_dsn = key_idsn(SERVER_KEY) + 1;
    assert_eq!(
        opt,
        MptcpOption::Dss(Dss {
            data_ack: Some(9_342_598_932_093_803_961),
            data_ack_64: true,
            mapping: Some(DssMapping {
                dsn: server_dsn,
                dsn_64: true,
                subflow_seq: 1,
                data_len: 8,
                checksum: Some(0x5acc),
            }),
            data_fin: false,
        })
    );
    // The server answered "ok 60020" (20 chunks of 3001 bytes received).
    assert!(verify_dss_checksum(server_dsn, 1, 8, b"ok 60020", 0x5acc));
    // The DATA_ACK covers 60020 bytes and the client's DATA_FIN.
    assert_eq!(
        9_342_598_932_093_803_961,
        key_idsn(CLIENT_KEY) + 1 + 60_020 + 1
    );
}

#[test]
fn dss_data_fin_only_mappings() {
    // Client: A M m F, DATA_FIN alone: subflow sequence 0, length 1, no payload.
    let opt = parse("1e18201d129c65c981a7943ac2651db800000000000109ff");
    let MptcpOption::Dss(d) = opt else {
        panic!("{opt:?}")
    };
    assert!(d.data_fin);
    let m = d.mapping.unwrap();
    assert_eq!(m.dsn, key_idsn(CLIENT_KEY) + 1 + 60_020);
    assert_eq!(
        (m.subflow_seq, m.data_len, m.checksum),
        (0, 1, Some(0x09ff))
    );
    assert!(!m.is_infinite());
    assert_eq!(dss_checksum(m.dsn, 0, 1, &[]), 0x09ff);

    // Server: A a M m F.
    let opt = parse("1e1c201f81a7943ac2651db962f4d7ce129c65d10000000000014cce");
    let MptcpOption::Dss(d) = opt else {
        panic!("{opt:?}")
    };
    let m = d.mapping.unwrap();
    assert!(d.data_fin && d.data_ack_64);
    assert_eq!(m.dsn, key_idsn(SERVER_KEY) + 1 + 8);
    assert!(verify_dss_checksum(m.dsn, 0, 1, &[], 0x4cce));
}

// Capture 2: `ip mptcp endpoint change ... backup` on the client, `endpoint delete` on the
// server, then the client closes with SO_LINGER 0.

#[test]
fn mp_prio_remove_addr_fastclose_tcprst() {
    assert_eq!(
        parse("1e0351"),
        MptcpOption::MpPrio {
            backup: true,
            addr_id: None
        }
    );
    assert_eq!(
        parse("1e044001"),
        MptcpOption::RemoveAddr { addr_ids: vec![1] }
    );
    // MP_FASTCLOSE carries the receiver's key: the server's, from its SYN/ACK.
    let Ok(MptcpOption::MpCapable(synack)) = MptcpOption::parse(&hex("1e0c018147cd67b3a6a1e470"))
    else {
        panic!()
    };
    assert_eq!(
        parse("1e0c700047cd67b3a6a1e470"),
        MptcpOption::MpFastclose {
            receiver_key: synack.sender_key.unwrap()
        }
    );
    assert_eq!(
        parse("1e048000"),
        MptcpOption::MpTcpRst {
            flags: 0,
            reason: 0
        }
    );
}
