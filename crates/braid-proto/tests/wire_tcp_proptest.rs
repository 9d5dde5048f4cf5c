//! Property tests for the IP and TCP codecs: `parse(emit(x)) == x` for IPv4, IPv6 and TCP
//! headers with arbitrary options (MPTCP included), and no input makes the parsers panic.

#[path = "common/mptcp_strategy.rs"]
mod mptcp_strategy;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::tcp::{Timestamps, UnknownOption, MAX_OPTIONS_LEN};
use braid_proto::wire::{
    emit_tcp_packet, parse_tcp_packet, Error, IpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    MptcpOption, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};
use proptest::collection::vec;
use proptest::prelude::*;

use mptcp_strategy::arb_mptcp_option;

fn arb_payload_len(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..1500, 1 => 0usize..=max]
}

fn arb_ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        arb_payload_len(65_535 - 20),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(
            |(src, dst, protocol, payload_len, ttl, tos, ident, dont_frag)| Ipv4Repr {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                protocol,
                payload_len,
                ttl,
                tos,
                ident,
                dont_frag,
            },
        )
}

fn arb_ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        // Not an extension header number: those are skipped or rejected by parse.
        any::<u8>().prop_filter("upper layer", |n| ![0, 43, 44, 60].contains(n)),
        arb_payload_len(65_535),
        any::<u8>(),
        any::<u8>(),
        0u32..=0x000f_ffff,
    )
        .prop_map(
            |(src, dst, next_header, payload_len, hop_limit, traffic_class, flow_label)| Ipv6Repr {
                src: Ipv6Addr::from(src),
                dst: Ipv6Addr::from(dst),
                next_header,
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            },
        )
}

/// Option kinds with no meaning to braid's parser.
fn arb_unknown_option() -> impl Strategy<Value = UnknownOption> {
    (
        any::<u8>().prop_filter("unknown kind", |k| ![0, 1, 2, 3, 4, 5, 8, 30].contains(k)),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(kind, data)| UnknownOption { kind, data })
}

fn arb_options(with_mptcp: bool) -> impl Strategy<Value = TcpOptions> {
    let mptcp = if with_mptcp {
        vec(
            arb_mptcp_option().prop_filter("fits a TCP header", |o| o.buffer_len() <= 28),
            0..=2,
        )
        .boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (
        any::<Option<u16>>(),
        proptest::option::of(0u8..=14),
        any::<bool>(),
        vec(any::<(u32, u32)>(), 0..=4),
        any::<Option<(u32, u32)>>(),
        mptcp,
        vec(arb_unknown_option(), 0..=2),
    )
        .prop_map(
            |(mss, window_scale, sack_permitted, sack, ts, mptcp, unknown)| TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                sack_blocks: sack.into_iter().collect(),
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                mptcp: mptcp.into(),
                unknown,
            },
        )
}

fn arb_tcp_repr(with_mptcp: bool) -> impl Strategy<Value = TcpRepr> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        arb_options(with_mptcp),
    )
        .prop_map(
            |(src_port, dst_port, seq, ack, flags, window, urgent, options)| TcpRepr {
                src_port,
                dst_port,
                seq,
                ack,
                flags: TcpFlags(flags),
                window,
                urgent,
                options,
            },
        )
}

fn arb_addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))),
    ]
}

/// Round-trip one TCP repr through `TcpRepr::emit`/`parse` and the whole-packet functions.
fn tcp_round_trip(
    repr: &TcpRepr,
    (src, dst): (IpAddr, IpAddr),
    payload: &[u8],
) -> Result<(), TestCaseError> {
    let options_len = repr.options.padded_len();
    let mut buf = vec![0u8; 60 + payload.len()];
    if options_len > MAX_OPTIONS_LEN {
        // Too many options: a typed error, never a panic, from both entry points.
        let r = repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, 0);
        prop_assert!(matches!(r, Err(Error::BufferTooSmall { .. })), "{:?}", r);
        let mut pkt = vec![0u8; 100 + payload.len()];
        prop_assert!(emit_tcp_packet(&mut pkt, src, dst, 64, repr, payload).is_err());
        return Ok(());
    }
    let hl = repr.header_len();
    prop_assert_eq!(hl, 20 + options_len);
    prop_assert_eq!(hl % 4, 0);
    let seg = &mut buf[..hl + payload.len()];
    seg[hl..].copy_from_slice(payload);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut *seg),
        src,
        dst,
        payload.len(),
    )
    .map_err(|e| TestCaseError::fail(format!("emit: {e}")))?;
    let p = TcpPacket::new_checked(&*seg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(p.header_len(), hl);
    prop_assert!(p.verify_checksum(src, dst));
    prop_assert_eq!(p.payload(), payload);
    prop_assert_eq!(TcpRepr::parse(&p, src, dst, true), Ok(repr.clone()));

    // Whole packet.
    let mut pkt = vec![0u8; 100 + payload.len()];
    let n = emit_tcp_packet(&mut pkt, src, dst, 64, repr, payload)
        .map_err(|e| TestCaseError::fail(format!("emit_tcp_packet: {e}")))?;
    let ip_hl = if src.is_ipv4() { 20 } else { 40 };
    prop_assert_eq!(n, ip_hl + hl + payload.len());
    // Identical TCP bytes either way.
    prop_assert_eq!(&pkt[ip_hl..n], &*seg);
    let parsed = parse_tcp_packet(&pkt[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&parsed.tcp, repr);
    prop_assert_eq!(parsed.payload, payload);
    prop_assert_eq!(parsed.ip.src_addr(), src);
    prop_assert_eq!(parsed.ip.dst_addr(), dst);
    prop_assert_eq!(parsed.ip.protocol(), 6);
    prop_assert_eq!(parsed.ip.payload_len(), hl + payload.len());
    prop_assert_eq!(parsed.ip.hop_limit(), 64);
    // Every truncation of the packet is an error.
    for cut in 0..n {
        prop_assert!(parse_tcp_packet(&pkt[..cut]).is_err());
    }
    // A flipped payload or header bit breaks a checksum.
    if n > ip_hl {
        let mut bad = pkt[..n].to_vec();
        let last = n - 1;
        bad[last] ^= 0x01;
        prop_assert!(parse_tcp_packet(&bad).is_err());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ipv4_round_trip(repr in arb_ipv4_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(p.payload().len(), repr.payload_len);
        prop_assert_eq!(Ipv4Repr::parse(&p), Ok(repr));
        let ip = IpRepr::V4(repr);
        let mut buf2 = vec![0u8; ip.buffer_len()];
        ip.emit(&mut buf2).unwrap();
        prop_assert_eq!(buf2, buf);
    }

    #[test]
    fn ipv6_round_trip(repr in arb_ipv6_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(p.payload().len(), repr.payload_len);
        prop_assert_eq!(Ipv6Repr::parse(&p), Ok(repr));
        let ip = IpRepr::V6(repr);
        prop_assert_eq!(ip.header_len(), 40);
        let mut buf2 = vec![0u8; ip.buffer_len()];
        ip.emit(&mut buf2).unwrap();
        prop_assert_eq!(buf2, buf);
    }

    #[test]
    fn tcp_round_trip_plain_options(
        repr in arb_tcp_repr(false),
        addrs in arb_addr_pair(),
        payload in vec(any::<u8>(), 0..200),
    ) {
        tcp_round_trip(&repr, addrs, &payload)?;
    }

    #[test]
    fn tcp_round_trip_with_mptcp(
        repr in arb_tcp_repr(true),
        addrs in arb_addr_pair(),
        payload in vec(any::<u8>(), 0..64),
    ) {
        tcp_round_trip(&repr, addrs, &payload)?;
    }

    /// Arbitrary bytes never panic the whole-packet parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = parse_tcp_packet(&bytes);
    }

    /// Bytes that start like an IPv4 or IPv6 header never panic either, and whatever
    /// parses re-encodes to a packet that parses to the same segment.
    #[test]
    fn ip_looking_bytes_never_panic(
        v6 in any::<bool>(),
        mut bytes in vec(any::<u8>(), 40..200),
    ) {
        let len = bytes.len() as u16;
        if v6 {
            bytes[0] = 0x60 | (bytes[0] & 0x0f);
            bytes[4..6].copy_from_slice(&(len - 40).to_be_bytes());
        } else {
            bytes[0] = 0x45;
            bytes[2..4].copy_from_slice(&len.to_be_bytes());
            bytes[6] &= 0x40;
            bytes[7] = 0;
            bytes[9] = 6;
            let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
            p.fill_checksum();
        }
        let _ = parse_tcp_packet(&bytes);
    }

    /// Arbitrary option bytes inside a valid TCP/IP packet (checksums fixed up): parsing
    /// never panics, and a successful parse re-encodes to the same repr.
    #[test]
    fn arbitrary_options_never_panic_and_reencode(
        words in 0usize..=10,
        opts in vec(any::<u8>(), 40),
        addrs in arb_addr_pair(),
    ) {
        let (src, dst) = addrs;
        let opts = &opts[..words * 4];
        let mut seg = vec![0u8; 20];
        seg[12] = ((5 + words) as u8) << 4;
        seg.extend_from_slice(opts);
        {
            let mut t = TcpPacket::new_unchecked(&mut seg[..]);
            t.fill_checksum(src, dst).unwrap();
        }
        let direct = TcpOptions::parse(opts);
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        let parsed = TcpRepr::parse(&p, src, dst, true);
        prop_assert_eq!(parsed.as_ref().map(|r| &r.options), direct.as_ref());
        if let Ok(repr) = parsed {
            let mut out = vec![0u8; 200];
            match emit_tcp_packet(&mut out, src, dst, 9, &repr, &[]) {
                Ok(n) => {
                    let again = parse_tcp_packet(&out[..n]);
                    prop_assert_eq!(again.map(|s| s.tcp), Ok(repr));
                }
                // Re-encoding can only fail for want of option space (e.g. MPTCP forms
                // whose canonical encoding is longer than what was received).
                Err(e) => prop_assert!(matches!(e, Error::BufferTooSmall { .. }), "{e}"),
            }
        }
    }

    /// MPTCP options inside the options area are parsed in order.
    #[test]
    fn mptcp_options_keep_their_order(
        opts in vec(arb_mptcp_option().prop_filter("small", |o| o.buffer_len() <= 18), 1..=2),
    ) {
        let mut repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags(TcpFlags::ACK),
            window: 5,
            urgent: 0,
            options: TcpOptions::default(),
        };
        repr.options.mptcp = opts.clone().into();
        let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut buf = vec![0u8; 100];
        let n = emit_tcp_packet(&mut buf, a, a, 1, &repr, &[]).unwrap();
        let seg = parse_tcp_packet(&buf[..n]).unwrap();
        let got: &[MptcpOption] = &seg.tcp.options.mptcp;
        prop_assert_eq!(got, &opts[..]);
    }
}

/// One well-formed option (or NOP / EOL) as its bytes.
fn arb_option_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![1u8]),
        Just(vec![0u8]),
        any::<u16>().prop_map(|m| vec![2, 4, (m >> 8) as u8, m as u8]),
        any::<u8>().prop_map(|s| vec![3, 3, s]),
        Just(vec![4u8, 2]),
        vec(any::<u8>(), 1..=4).prop_flat_map(|n| {
            vec(any::<u8>(), n.len() * 8).prop_map(|blocks| {
                let mut v = vec![5u8, 2 + blocks.len() as u8];
                v.extend(blocks);
                v
            })
        }),
        any::<[u8; 8]>().prop_map(|t| {
            let mut v = vec![8u8, 10];
            v.extend(t);
            v
        }),
        arb_mptcp_option()
            .prop_filter("small", |o| o.buffer_len() <= 24)
            .prop_map(|o| o.to_vec()),
        arb_unknown_option().prop_map(|u| {
            let mut v = vec![u.kind, 2 + u.data.len() as u8];
            v.extend(u.data);
            v
        }),
    ]
}

/// What a parser must make of a sequence of well-formed options: the model.
fn model(tokens: &[Vec<u8>]) -> TcpOptions {
    let mut o = TcpOptions::default();
    for t in tokens {
        match t[0] {
            0 => break,
            1 => {}
            2 => o.mss = Some(u16::from_be_bytes([t[2], t[3]])),
            3 => o.window_scale = Some(t[2].min(14)),
            4 => o.sack_permitted = true,
            5 => {
                o.sack_blocks = t[2..]
                    .chunks(8)
                    .map(|c| {
                        (
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                            u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        )
                    })
                    .collect()
            }
            8 => {
                o.timestamps = Some(Timestamps {
                    tsval: u32::from_be_bytes([t[2], t[3], t[4], t[5]]),
                    tsecr: u32::from_be_bytes([t[6], t[7], t[8], t[9]]),
                })
            }
            30 => o.mptcp.push(MptcpOption::parse(t).unwrap()),
            kind => o.unknown.push(UnknownOption {
                kind,
                data: t[2..].to_vec(),
            }),
        }
    }
    o
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any sequence of well-formed options (in any order, repeated, with NOPs and EOLs)
    /// parses to what the model says: later duplicates win, EOL ends the list, the window
    /// shift is clamped to 14.
    #[test]
    fn well_formed_option_sequences_match_the_model(tokens in vec(arb_option_bytes(), 0..8)) {
        // Keep the tokens that fit in 40 bytes.
        let mut kept = Vec::new();
        let mut area = Vec::new();
        for t in tokens {
            if area.len() + t.len() <= MAX_OPTIONS_LEN {
                area.extend_from_slice(&t);
                kept.push(t);
            }
        }
        while area.len() % 4 != 0 {
            area.push(0);
        }
        prop_assert_eq!(TcpOptions::parse(&area), Ok(model(&kept)));
    }

    /// Corrupting one byte of a well-formed options area never panics; what still parses
    /// re-encodes to the same options (when they fit).
    #[test]
    fn corrupted_option_sequences_never_panic(
        tokens in vec(arb_option_bytes(), 1..8),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut area: Vec<u8> = tokens.concat();
        area.truncate(MAX_OPTIONS_LEN);
        let i = at.index(area.len());
        area[i] = value;
        if let Ok(opts) = TcpOptions::parse(&area) {
            let mut out = [0u8; MAX_OPTIONS_LEN];
            match opts.emit(&mut out) {
                Ok(n) => prop_assert_eq!(TcpOptions::parse(&out[..n]), Ok(opts)),
                Err(e) => prop_assert!(matches!(e, Error::BufferTooSmall { .. }), "{e}"),
            }
        }
    }
}
