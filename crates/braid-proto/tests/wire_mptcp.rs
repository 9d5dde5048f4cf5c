//! Hand-written byte fixtures for every MPTCP option form (layouts of RFC 8684 §3's figures),
//! and the typed errors for every truncation and wrong length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::mptcp::{
    rst_flag, rst_reason, subtype, Dss, DssMapping, MpCapable, MptcpOption, MAX_REMOVE_ADDR_IDS,
};
use braid_proto::wire::Error;

/// Parse `bytes`, check the value, and check that emitting it gives `bytes` back.
fn check(bytes: &[u8], want: MptcpOption) {
    assert_eq!(
        MptcpOption::parse(bytes),
        Ok(want.clone()),
        "parse {bytes:02x?}"
    );
    assert_eq!(want.buffer_len(), bytes.len());
    assert_eq!(want.to_vec(), bytes, "emit {want:?}");
}

fn bad_len(bytes: &[u8]) -> bool {
    matches!(MptcpOption::parse(bytes), Err(Error::BadLength { .. }))
}

// ---------------------------------------------------------------- MP_CAPABLE (§3.1, Figure 4)

#[test]
fn mp_capable_syn() {
    // Linux's SYN: version 1, flags H.
    check(
        &[30, 4, 0x01, 0x01],
        MptcpOption::MpCapable(MpCapable::syn(1, 0x01)),
    );
    // With checksum required (A) and C.
    let c = MpCapable::syn(1, 0xa1);
    assert!(c.checksum_required() && c.hmac_sha256());
    check(&[30, 4, 0x01, 0xa1], MptcpOption::MpCapable(c));
}

#[test]
fn mp_capable_syn_ack() {
    check(
        &[
            30, 12, 0x01, 0x01, 0xb1, 0x00, 0x18, 0x76, 0xe1, 0x83, 0x73, 0xd4,
        ],
        MptcpOption::MpCapable(MpCapable::syn_ack(1, 0x01, 0xb100_1876_e183_73d4)),
    );
}

#[test]
fn mp_capable_third_ack() {
    let mut b = vec![30, 20, 0x01, 0x01];
    b.extend_from_slice(&0xa460_6019_1787_3ac7u64.to_be_bytes());
    b.extend_from_slice(&0xb100_1876_e183_73d4u64.to_be_bytes());
    check(
        &b,
        MptcpOption::MpCapable(MpCapable::ack(
            1,
            0x01,
            0xa460_6019_1787_3ac7,
            0xb100_1876_e183_73d4,
        )),
    );
}

#[test]
fn mp_capable_ack_with_data_with_and_without_checksum() {
    let mut b = vec![30, 22, 0x01, 0x01];
    b.extend_from_slice(&1u64.to_be_bytes());
    b.extend_from_slice(&2u64.to_be_bytes());
    b.extend_from_slice(&[0x05, 0xdc]);
    check(
        &b,
        MptcpOption::MpCapable(MpCapable::ack_with_data(1, 0x01, 1, 2, 1500, None)),
    );
    b[1] = 24;
    b[3] = 0x81;
    b.extend_from_slice(&[0xbe, 0xef]);
    check(
        &b,
        MptcpOption::MpCapable(MpCapable::ack_with_data(1, 0x81, 1, 2, 1500, Some(0xbeef))),
    );
}

#[test]
fn mp_capable_keeps_any_version() {
    // Version 0 (RFC 6824) with a key on the SYN parses as the 12-octet form, version kept.
    let b = [30, 12, 0x00, 0x81, 0, 0, 0, 0, 0, 0, 0, 9];
    check(&b, MptcpOption::MpCapable(MpCapable::syn_ack(0, 0x81, 9)));
    check(
        &[30, 4, 0x0f, 0],
        MptcpOption::MpCapable(MpCapable::syn(15, 0)),
    );
}

#[test]
fn mp_capable_wrong_lengths() {
    for len in 3..=40u8 {
        let mut b = vec![30, len, 0x01];
        b.resize(usize::from(len), 0);
        let ok = matches!(len, 4 | 12 | 20 | 22 | 24);
        assert_eq!(MptcpOption::parse(&b).is_ok(), ok, "len {len}");
        if !ok {
            assert!(bad_len(&b), "len {len}");
        }
    }
}

// ---------------------------------------------------------------- MP_JOIN (§3.2, Figures 5-7)

#[test]
fn mp_join_syn() {
    // B set, address id 2, token 1314713917 (0x4e5cf13d), nonce 748849082 (0x2ca287ba).
    check(
        &[
            30, 12, 0x11, 0x02, 0x4e, 0x5c, 0xf1, 0x3d, 0x2c, 0xa2, 0x87, 0xba,
        ],
        MptcpOption::MpJoinSyn {
            backup: true,
            addr_id: 2,
            token: 1_314_713_917,
            nonce: 748_849_082,
        },
    );
    assert_eq!(1_314_713_917u32, 0x4e5c_f13d);
    assert_eq!(748_849_082u32, 0x2ca2_87ba);
}

#[test]
fn mp_join_syn_ack() {
    let hmac = 1_396_593_307_132_662_883u64;
    let mut b = vec![30, 16, 0x10, 0x00];
    b.extend_from_slice(&hmac.to_be_bytes());
    b.extend_from_slice(&3_929_586_875u32.to_be_bytes());
    check(
        &b,
        MptcpOption::MpJoinSynAck {
            backup: false,
            addr_id: 0,
            hmac,
            nonce: 3_929_586_875,
        },
    );
}

#[test]
fn mp_join_ack() {
    let hmac: [u8; 20] = core::array::from_fn(|i| i as u8 + 1);
    let mut b = vec![30, 24, 0x10, 0x00];
    b.extend_from_slice(&hmac);
    check(&b, MptcpOption::MpJoinAck { hmac });
    // Reserved bits are ignored on parse.
    b[2] = 0x1f;
    b[3] = 0xff;
    assert_eq!(MptcpOption::parse(&b), Ok(MptcpOption::MpJoinAck { hmac }));
}

#[test]
fn mp_join_wrong_lengths() {
    for len in 3..=40u8 {
        let mut b = vec![30, len, 0x10];
        b.resize(usize::from(len), 0);
        let ok = matches!(len, 12 | 16 | 24);
        assert_eq!(MptcpOption::parse(&b).is_ok(), ok, "len {len}");
        if !ok {
            assert!(bad_len(&b), "len {len}");
        }
    }
}

// ---------------------------------------------------------------- DSS (§3.3, Figure 9)

#[test]
fn dss_data_ack_only_4_and_8() {
    check(
        &[30, 8, 0x20, 0x01, 0xde, 0xad, 0xbe, 0xef],
        MptcpOption::Dss(Dss {
            data_ack: Some(0xdead_beef),
            data_ack_64: false,
            mapping: None,
            data_fin: false,
        }),
    );
    check(
        &[30, 12, 0x20, 0x03, 1, 2, 3, 4, 5, 6, 7, 8],
        MptcpOption::Dss(Dss {
            data_ack: Some(0x0102_0304_0506_0708),
            data_ack_64: true,
            mapping: None,
            data_fin: false,
        }),
    );
}

#[test]
fn dss_linux_data_packet_8_byte_ack_8_byte_dsn_no_checksum() {
    // Linux's usual DSS: A a M m, length 4 + 8 + 8 + 4 + 2 = 26.
    let mut b = vec![30, 26, 0x20, 0x0f];
    b.extend_from_slice(&0x1111_2222_3333_4444u64.to_be_bytes());
    b.extend_from_slice(&0xcf77_df7d_f7ba_c01au64.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&1448u16.to_be_bytes());
    check(
        &b,
        MptcpOption::Dss(Dss {
            data_ack: Some(0x1111_2222_3333_4444),
            data_ack_64: true,
            mapping: Some(DssMapping {
                dsn: 0xcf77_df7d_f7ba_c01a,
                dsn_64: true,
                subflow_seq: 1,
                data_len: 1448,
                checksum: None,
            }),
            data_fin: false,
        }),
    );
    // The same with a checksum: 28 octets.
    b[1] = 28;
    b.extend_from_slice(&[0x12, 0x34]);
    let Ok(MptcpOption::Dss(d)) = MptcpOption::parse(&b) else {
        panic!("no DSS")
    };
    assert_eq!(d.mapping.and_then(|m| m.checksum), Some(0x1234));
    assert_eq!(MptcpOption::Dss(d).to_vec(), b);
}

#[test]
fn dss_mapping_4_byte_dsn_with_checksum_and_data_fin() {
    // M F, 4-octet DSN, checksum: 4 + 4 + 4 + 2 + 2 = 16.
    let b = [
        30, 16, 0x20, 0x14, 0, 0, 0x10, 0, 0, 0, 0, 0x20, 0, 1, 0xab, 0xcd,
    ];
    check(
        &b,
        MptcpOption::Dss(Dss {
            data_ack: None,
            data_ack_64: false,
            mapping: Some(DssMapping {
                dsn: 0x1000,
                dsn_64: false,
                subflow_seq: 0x20,
                data_len: 1,
                checksum: Some(0xabcd),
            }),
            data_fin: true,
        }),
    );
}

#[test]
fn dss_infinite_mapping() {
    // Infinite mapping on fallback: data-level length 0 (RFC 8684 §3.3.1, §3.7).
    let b = [30, 14, 0x20, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let Ok(MptcpOption::Dss(d)) = MptcpOption::parse(&b) else {
        panic!("no DSS")
    };
    let m = d.mapping.unwrap();
    assert!(m.is_infinite());
    assert!(!DssMapping { data_len: 1, ..m }.is_infinite());
    let inf = DssMapping::infinite(0x0102_0304_0506_0708, true);
    assert!(inf.is_infinite());
    let opt = MptcpOption::Dss(Dss {
        data_ack: None,
        data_ack_64: false,
        mapping: Some(inf),
        data_fin: false,
    });
    assert_eq!(
        opt.to_vec(),
        [30, 20, 0x20, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(DssMapping::infinite(5, false).checksum, None);
}

#[test]
fn dss_every_flag_combination_accepts_exactly_its_lengths() {
    for flags in 0u8..=0xff {
        let a = flags & 0x01 != 0;
        let a8 = flags & 0x02 != 0;
        let m = flags & 0x04 != 0;
        let m8 = flags & 0x08 != 0;
        let base =
            4 + if a {
                if a8 {
                    8
                } else {
                    4
                }
            } else {
                0
            } + if m { (if m8 { 8 } else { 4 }) + 6 } else { 0 };
        for len in 3..=40usize {
            let mut b = vec![30, len as u8, 0x20];
            b.resize(len, 0);
            if len > 3 {
                b[3] = flags;
            }
            let ok = len > 3 && (len == base || (m && len == base + 2));
            let r = MptcpOption::parse(&b);
            assert_eq!(r.is_ok(), ok, "flags {flags:#x} len {len}");
            if let Ok(MptcpOption::Dss(d)) = r {
                assert_eq!(d.data_ack.is_some(), a);
                assert_eq!(d.data_ack_64, a8);
                assert_eq!(d.mapping.is_some(), m);
                assert_eq!(d.data_fin, flags & 0x10 != 0);
                if let Some(map) = d.mapping {
                    assert_eq!(map.dsn_64, m8);
                    assert_eq!(map.checksum.is_some(), len == base + 2);
                }
                // The canonical encoding keeps every flag but m without M and the reserved bits.
                let canon = MptcpOption::Dss(d).to_vec();
                let keep = if m { 0x1f } else { 0x17 };
                assert_eq!(canon[3], flags & keep);
                assert_eq!(canon.len(), len);
            } else {
                assert!(bad_len(&b), "flags {flags:#x} len {len}");
            }
        }
    }
}

#[test]
fn dss_32_bit_fields_are_zero_extended_and_truncated_on_emit() {
    let d = Dss {
        data_ack: Some(0x1_0000_0002),
        data_ack_64: false,
        mapping: None,
        data_fin: false,
    };
    let b = MptcpOption::Dss(d).to_vec();
    assert_eq!(b, [30, 8, 0x20, 0x01, 0, 0, 0, 2]);
}

// ---------------------------------------------------------------- ADD_ADDR (§3.4.1, Figure 12)

#[test]
fn add_addr_v4_with_hmac() {
    // The Linux announcement of mptcp-facts.md: id 5, 10.99.2.2, no port.
    let hmac = 5_367_539_639_038_772_624u64;
    let mut b = vec![30, 16, 0x30, 5, 10, 99, 2, 2];
    b.extend_from_slice(&hmac.to_be_bytes());
    check(
        &b,
        MptcpOption::AddAddr {
            echo: false,
            addr_id: 5,
            addr: IpAddr::V4(Ipv4Addr::new(10, 99, 2, 2)),
            port: None,
            hmac: Some(hmac),
        },
    );
}

#[test]
fn add_addr_v4_port_hmac_and_echo_forms() {
    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut b = vec![30, 18, 0x30, 1, 192, 0, 2, 1, 0x1f, 0x90];
    b.extend_from_slice(&7u64.to_be_bytes());
    check(
        &b,
        MptcpOption::AddAddr {
            echo: false,
            addr_id: 1,
            addr,
            port: Some(8080),
            hmac: Some(7),
        },
    );
    check(
        &[30, 8, 0x31, 1, 192, 0, 2, 1],
        MptcpOption::AddAddr {
            echo: true,
            addr_id: 1,
            addr,
            port: None,
            hmac: None,
        },
    );
    check(
        &[30, 10, 0x31, 1, 192, 0, 2, 1, 0x1f, 0x90],
        MptcpOption::AddAddr {
            echo: true,
            addr_id: 1,
            addr,
            port: Some(8080),
            hmac: None,
        },
    );
}

#[test]
fn add_addr_v6_forms() {
    let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let addr = IpAddr::V6(v6);
    for (echo, port, hmac, len) in [
        (true, None, None, 20u8),
        (true, Some(443u16), None, 22),
        (false, None, Some(0x0102_0304_0506_0708u64), 28),
        (false, Some(443), Some(0x0102_0304_0506_0708), 30),
    ] {
        let mut b = vec![30, len, 0x30 | u8::from(echo), 9];
        b.extend_from_slice(&v6.octets());
        if let Some(p) = port {
            b.extend_from_slice(&p.to_be_bytes());
        }
        if let Some(h) = hmac {
            b.extend_from_slice(&h.to_be_bytes());
        }
        check(
            &b,
            MptcpOption::AddAddr {
                echo,
                addr_id: 9,
                addr,
                port,
                hmac,
            },
        );
    }
}

#[test]
fn add_addr_wrong_lengths() {
    for len in 3..=40u8 {
        let mut b = vec![30, len, 0x30];
        b.resize(usize::from(len), 0);
        let ok = matches!(len, 8 | 10 | 16 | 18 | 20 | 22 | 28 | 30);
        assert_eq!(MptcpOption::parse(&b).is_ok(), ok, "len {len}");
        if !ok {
            assert!(bad_len(&b), "len {len}");
        }
    }
}

// ---------------------------------------------------------------- REMOVE_ADDR (§3.4.2)

#[test]
fn remove_addr_lists() {
    check(
        &[30, 4, 0x40, 7],
        MptcpOption::RemoveAddr { addr_ids: vec![7] },
    );
    check(
        &[30, 6, 0x40, 1, 2, 3],
        MptcpOption::RemoveAddr {
            addr_ids: vec![1, 2, 3],
        },
    );
    assert!(bad_len(&[30, 3, 0x40]));
}

#[test]
fn remove_addr_emit_is_clamped_to_the_length_byte() {
    let opt = MptcpOption::RemoveAddr {
        addr_ids: vec![1; 300],
    };
    assert_eq!(opt.buffer_len(), 255);
    let b = opt.to_vec();
    assert_eq!(
        MptcpOption::parse(&b),
        Ok(MptcpOption::RemoveAddr {
            addr_ids: vec![1; MAX_REMOVE_ADDR_IDS]
        })
    );
}

// ---------------------------------------------------------------- MP_PRIO (§3.3.8)

#[test]
fn mp_prio_forms() {
    check(
        &[30, 3, 0x51],
        MptcpOption::MpPrio {
            backup: true,
            addr_id: None,
        },
    );
    check(
        &[30, 4, 0x50, 3],
        MptcpOption::MpPrio {
            backup: false,
            addr_id: Some(3),
        },
    );
    assert!(bad_len(&[30, 5, 0x50, 3, 4]));
}

// ---------------------------------------------------------------- MP_FAIL, MP_FASTCLOSE

#[test]
fn mp_fail() {
    check(
        &[
            30, 12, 0x60, 0, 0xcf, 0x77, 0xdf, 0x7d, 0xf7, 0xba, 0xc0, 0x1a,
        ],
        MptcpOption::MpFail {
            dsn: 0xcf77_df7d_f7ba_c01a,
        },
    );
}

#[test]
fn mp_fastclose() {
    check(
        &[
            30, 12, 0x70, 0, 0xa4, 0x60, 0x60, 0x19, 0x17, 0x87, 0x3a, 0xc7,
        ],
        MptcpOption::MpFastclose {
            receiver_key: 0xa460_6019_1787_3ac7,
        },
    );
}

#[test]
fn fixed_length_subtypes_reject_every_other_length() {
    for (sub, good) in [
        (subtype::MP_FAIL, 12u8),
        (subtype::MP_FASTCLOSE, 12),
        (subtype::MP_TCPRST, 4),
    ] {
        for len in 3..=40u8 {
            let mut b = vec![30, len, sub << 4];
            b.resize(usize::from(len), 0);
            assert_eq!(
                MptcpOption::parse(&b).is_ok(),
                len == good,
                "{sub} len {len}"
            );
            if len != good {
                assert!(bad_len(&b));
            }
        }
    }
}

// ---------------------------------------------------------------- MP_TCPRST (§3.6)

#[test]
fn mp_tcprst() {
    check(
        &[30, 4, 0x81, rst_reason::ADMIN_PROHIBITED],
        MptcpOption::MpTcpRst {
            flags: rst_flag::TRANSIENT,
            reason: rst_reason::ADMIN_PROHIBITED,
        },
    );
    check(
        &[30, 4, 0x8f, 0x06],
        MptcpOption::MpTcpRst {
            flags: rst_flag::U | rst_flag::V | rst_flag::W | rst_flag::TRANSIENT,
            reason: rst_reason::MIDDLEBOX_INTERFERENCE,
        },
    );
}

// ---------------------------------------------------------------- unknown subtypes

#[test]
fn unknown_subtypes_are_preserved_with_their_low_nibble() {
    check(
        &[30, 3, 0xf5],
        MptcpOption::Unknown {
            subtype: subtype::MP_EXPERIMENTAL,
            data: vec![5],
        },
    );
    check(
        &[30, 6, 0x9a, 1, 2, 3],
        MptcpOption::Unknown {
            subtype: 9,
            data: vec![0xa, 1, 2, 3],
        },
    );
    // Non-canonical values: empty data writes a zero nibble, a wide data[0] is masked.
    assert_eq!(
        MptcpOption::Unknown {
            subtype: 0xc,
            data: vec![]
        }
        .to_vec(),
        [30, 3, 0xc0]
    );
    assert_eq!(
        MptcpOption::Unknown {
            subtype: 0xc,
            data: vec![0xff, 9]
        }
        .to_vec(),
        [30, 4, 0xcf, 9]
    );
}

// ---------------------------------------------------------------- framing errors

#[test]
fn short_buffers_are_truncated_errors() {
    assert!(matches!(
        MptcpOption::parse(&[]),
        Err(Error::Truncated {
            need: 3,
            have: 0,
            ..
        })
    ));
    assert!(matches!(
        MptcpOption::parse(&[30, 4]),
        Err(Error::Truncated { .. })
    ));
    // Length byte says 12, only 8 present.
    assert!(matches!(
        MptcpOption::parse(&[30, 12, 0x60, 0, 1, 2, 3, 4]),
        Err(Error::Truncated {
            need: 12,
            have: 8,
            ..
        })
    ));
}

#[test]
fn length_below_header_or_short_of_the_buffer_is_bad_length() {
    for l in 0..3u8 {
        assert!(bad_len(&[30, l, 0x01, 0x01]), "len {l}");
    }
    // A buffer longer than the option's length.
    assert!(bad_len(&[30, 4, 0x01, 0x01, 0]));
}

#[test]
fn wrong_kind_is_malformed() {
    assert!(matches!(
        MptcpOption::parse(&[2, 4, 0x05, 0xb4]),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn every_subtype_and_length_never_panics() {
    for sub in 0u8..=0xff {
        for len in 0..=64usize {
            for fill in [0x00u8, 0xff, 0x5a] {
                let mut b = vec![fill; len];
                if len > 0 {
                    b[0] = 30;
                }
                if len > 1 {
                    b[1] = len as u8;
                }
                if len > 2 {
                    b[2] = sub;
                }
                if let Ok(opt) = MptcpOption::parse(&b) {
                    assert_eq!(MptcpOption::parse(&opt.to_vec()), Ok(opt));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- fuzz seeds

#[test]
fn fuzz_seeds_parse_and_reencode_exactly() {
    // fuzz/seeds/mptcp_option holds one canonical encoding of every option form.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/mptcp_option");
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let opt = MptcpOption::parse(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(opt.to_vec(), bytes, "{path:?}");
        seen.insert(opt.subtype());
        n += 1;
    }
    assert!(n >= 31, "{n} seeds");
    // Every assigned subtype plus MP_EXPERIMENTAL.
    assert_eq!(seen.len(), 10);
}
