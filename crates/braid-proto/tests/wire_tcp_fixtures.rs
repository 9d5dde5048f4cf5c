//! Hand-checked fixtures: real Linux 6.18 SYNs (captured from a TUN device, so the kernel
//! filled in every checksum), plus malformed variants.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use braid_proto::wire::tcp::{option_kind, Timestamps, UnknownOption};
use braid_proto::wire::{
    emit_tcp_packet, parse_tcp_packet, Error, IpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `connect(10.77.0.2:8080)` from 10.77.0.1:41668.
const LINUX_SYN_V4: &str = "4500003c4fc040004006d65f0a4d00010a4d0002a2c41f90fd87b42900000000\
                            a002faf03df00000020405b40402080adebda7bb000000000103030a";
/// `connect([fd77::2]:8080)` from [fd77::1]:39816.
const LINUX_SYN_V6: &str = "60071d4f00280640fd770000000000000000000000000001fd77000000000000\
                            00000000000000029b881f90b5e412aa00000000a002fd20d4510000020405a0\
                            0402080aa2845580000000000103030a";

#[test]
fn linux_syn_v4_fields() {
    let bytes = unhex(LINUX_SYN_V4);
    let seg = parse_tcp_packet(&bytes).unwrap();
    let IpRepr::V4(ip) = seg.ip else {
        panic!("not v4")
    };
    assert_eq!(
        ip,
        Ipv4Repr {
            src: Ipv4Addr::new(10, 77, 0, 1),
            dst: Ipv4Addr::new(10, 77, 0, 2),
            protocol: 6,
            payload_len: 40,
            ttl: 64,
            tos: 0,
            ident: 0x4fc0,
            dont_frag: true,
        }
    );
    assert_eq!(seg.tcp.src_port, 41668);
    assert_eq!(seg.tcp.dst_port, 8080);
    assert_eq!(seg.tcp.seq, 0xfd87_b429);
    assert_eq!(seg.tcp.ack, 0);
    assert_eq!(seg.tcp.flags, TcpFlags(TcpFlags::SYN));
    assert!(seg.tcp.flags.syn() && !seg.tcp.flags.ack());
    assert_eq!(seg.tcp.window, 64240);
    assert_eq!(seg.tcp.urgent, 0);
    assert_eq!(
        seg.tcp.options,
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(10),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 0xdebd_a7bb,
                tsecr: 0
            }),
            ..TcpOptions::default()
        }
    );
    assert!(seg.payload.is_empty());

    // The view agrees.
    let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(p.checksum(), 0xd65f);
    assert!(p.verify_checksum());
    let t = TcpPacket::new_checked(p.payload()).unwrap();
    assert_eq!(t.header_len(), 40);
    assert_eq!(t.checksum(), 0x3df0);
    assert!(t.verify_checksum(seg.ip.src_addr(), seg.ip.dst_addr()));
    assert_eq!(t.options().len(), 20);
}

#[test]
fn linux_syn_v6_fields() {
    let bytes = unhex(LINUX_SYN_V6);
    let seg = parse_tcp_packet(&bytes).unwrap();
    let IpRepr::V6(ip) = seg.ip else {
        panic!("not v6")
    };
    assert_eq!(
        ip,
        Ipv6Repr {
            src: "fd77::1".parse::<Ipv6Addr>().unwrap(),
            dst: "fd77::2".parse::<Ipv6Addr>().unwrap(),
            next_header: 6,
            payload_len: 40,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x71d4f,
        }
    );
    assert_eq!(seg.tcp.src_port, 39816);
    assert_eq!(seg.tcp.dst_port, 8080);
    assert_eq!(seg.tcp.seq, 0xb5e4_12aa);
    assert_eq!(seg.tcp.window, 64800);
    assert_eq!(seg.tcp.options.mss, Some(1440));
    assert_eq!(seg.tcp.options.window_scale, Some(10));
    assert!(seg.tcp.options.sack_permitted);
    assert_eq!(
        seg.tcp.options.timestamps,
        Some(Timestamps {
            tsval: 0xa284_5580,
            tsecr: 0
        })
    );
}

/// Re-emitting the parsed SYNs reproduces Linux's header fields and a valid checksum.
#[test]
fn linux_syn_reemit() {
    for fixture in [LINUX_SYN_V4, LINUX_SYN_V6] {
        let bytes = unhex(fixture);
        let seg = parse_tcp_packet(&bytes).unwrap();
        let mut buf = [0u8; 128];
        let n = emit_tcp_packet(
            &mut buf,
            seg.ip.src_addr(),
            seg.ip.dst_addr(),
            seg.ip.hop_limit(),
            &seg.tcp,
            seg.payload,
        )
        .unwrap();
        assert_eq!(n, bytes.len());
        let again = parse_tcp_packet(&buf[..n]).unwrap();
        assert_eq!(again.tcp, seg.tcp);
        assert_eq!(again.ip.src_addr(), seg.ip.src_addr());
        assert_eq!(again.ip.payload_len(), seg.ip.payload_len());
        // Same fixed TCP header except the checksum (option order differs from Linux's).
        let ip_len = seg.ip.header_len();
        assert_eq!(buf[ip_len..ip_len + 16], bytes[ip_len..ip_len + 16]);
    }
}

#[test]
fn every_truncation_errors() {
    for fixture in [LINUX_SYN_V4, LINUX_SYN_V6] {
        let bytes = unhex(fixture);
        for n in 0..bytes.len() {
            assert!(parse_tcp_packet(&bytes[..n]).is_err(), "len {n}");
        }
    }
}

#[test]
fn trailing_bytes_past_total_length_are_ignored() {
    for fixture in [LINUX_SYN_V4, LINUX_SYN_V6] {
        let mut bytes = unhex(fixture);
        let base = parse_tcp_packet(&bytes).unwrap().tcp;
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let seg = parse_tcp_packet(&bytes).unwrap();
        assert_eq!(seg.tcp, base);
        assert!(seg.payload.is_empty());
    }
}

#[test]
fn every_single_bit_flip_is_caught_or_harmless() {
    // Flipping any bit either fails to parse (checksum, length, version...) — never panics.
    // Bits covered by a checksum must be caught.
    for fixture in [LINUX_SYN_V4, LINUX_SYN_V6] {
        let bytes = unhex(fixture);
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            let r = parse_tcp_packet(&b);
            // IPv6 traffic class, flow label and hop limit are covered by no checksum;
            // every IPv4 bit is (header checksum or TCP checksum).
            let (byte, bit) = (i / 8, i % 8);
            let v6_uncovered = fixture == LINUX_SYN_V6
                && ((byte == 0 && bit < 4) || (1..4).contains(&byte) || byte == 7);
            if v6_uncovered {
                assert!(r.is_ok(), "bit {i}");
            } else {
                assert!(r.is_err(), "bit {i} flip accepted");
            }
        }
    }
}

#[test]
fn bad_checksums() {
    let mut v4 = unhex(LINUX_SYN_V4);
    v4[11] ^= 1;
    assert_eq!(
        parse_tcp_packet(&v4),
        Err(Error::Checksum {
            what: "IPv4 header"
        })
    );
    let mut v4 = unhex(LINUX_SYN_V4);
    v4[20 + 17] ^= 1;
    assert_eq!(parse_tcp_packet(&v4), Err(Error::Checksum { what: "TCP" }));
    let mut v6 = unhex(LINUX_SYN_V6);
    v6[40 + 16] ^= 0x80;
    assert_eq!(parse_tcp_packet(&v6), Err(Error::Checksum { what: "TCP" }));
}

/// Rewrite the IPv4 header checksum after editing the header.
fn refill_v4(b: &mut [u8]) {
    let mut p = Ipv4Packet::new_unchecked(b);
    p.fill_checksum();
}

#[test]
fn ipv4_fragments_rejected() {
    for (flags_hi, flags_lo) in [(0x20u8, 0u8), (0x00, 0x01), (0x40, 0x10)] {
        let mut b = unhex(LINUX_SYN_V4);
        b[6] = flags_hi;
        b[7] = flags_lo;
        refill_v4(&mut b);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(
            Ipv4Repr::parse(&p),
            Err(Error::Malformed { why, .. }) if why.contains("fragment")
        ));
    }
}

#[test]
fn ipv4_bad_ihl_and_total_length() {
    let mut b = unhex(LINUX_SYN_V4);
    b[0] = 0x44; // IHL 4
    assert!(matches!(
        Ipv4Packet::new_checked(&b[..]),
        Err(Error::BadLength { .. })
    ));
    let mut b = unhex(LINUX_SYN_V4);
    b[3] = 19; // total length below the header
    assert!(matches!(
        Ipv4Packet::new_checked(&b[..]),
        Err(Error::BadLength { .. })
    ));
    let mut b = unhex(LINUX_SYN_V4);
    b[3] = 61; // longer than the buffer
    assert!(matches!(
        Ipv4Packet::new_checked(&b[..]),
        Err(Error::Truncated { .. })
    ));
    let mut b = unhex(LINUX_SYN_V4);
    b[0] = 0x55; // version 5
    refill_v4(&mut b);
    assert!(parse_tcp_packet(&b).is_err());
}

#[test]
fn ipv4_options_are_skipped() {
    // Insert a 4-byte options area (NOP NOP NOP EOL) and fix up the header.
    let orig = unhex(LINUX_SYN_V4);
    let mut b = orig[..20].to_vec();
    b.extend_from_slice(&[1, 1, 1, 0]);
    b.extend_from_slice(&orig[20..]);
    b[0] = 0x46;
    b[3] += 4;
    refill_v4(&mut b);
    let p = Ipv4Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.header_len(), 24);
    assert_eq!(p.options(), &[1, 1, 1, 0]);
    let seg = parse_tcp_packet(&b).unwrap();
    assert_eq!(seg.ip.payload_len(), 40);
    assert_eq!(seg.tcp, parse_tcp_packet(&orig).unwrap().tcp);
}

#[test]
fn not_tcp_rejected() {
    let mut b = unhex(LINUX_SYN_V4);
    b[9] = 17;
    refill_v4(&mut b);
    assert!(matches!(
        parse_tcp_packet(&b),
        Err(Error::Malformed { why, .. }) if why.contains("not TCP")
    ));
    let mut b = unhex(LINUX_SYN_V6);
    b[6] = 17;
    assert!(parse_tcp_packet(&b).is_err());
    assert!(parse_tcp_packet(&[0x70; 60]).is_err());
    assert!(parse_tcp_packet(&[]).is_err());
}

/// Build the v6 fixture with extension headers `exts` (each: (type, bytes)) in front of TCP.
fn v6_with_exts(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let orig = unhex(LINUX_SYN_V6);
    let mut b = orig[..40].to_vec();
    let mut next_types: Vec<u8> = exts.iter().map(|e| e.0).collect();
    next_types.push(6);
    b[6] = next_types[0];
    for (i, (_, body)) in exts.iter().enumerate() {
        let mut h = body.clone();
        h[0] = next_types[i + 1];
        b.extend_from_slice(&h);
    }
    b.extend_from_slice(&orig[40..]);
    let plen = (b.len() - 40) as u16;
    b[4..6].copy_from_slice(&plen.to_be_bytes());
    b
}

#[test]
fn ipv6_extension_headers_skipped() {
    // Hop-by-Hop with PadN (8 bytes), Routing (type 0 segments-left 0, 16 bytes),
    // Destination Options (8 bytes).
    let hbh = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let mut rt = vec![0, 1, 0, 0, 0, 0, 0, 0];
    rt.extend_from_slice(&[0; 8]);
    let dst = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let b = v6_with_exts(&[(0, hbh), (43, rt), (60, dst)]);
    let p = Ipv6Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.upper_layer().unwrap(), (6, 40 + 32));
    let seg = parse_tcp_packet(&b).unwrap();
    let IpRepr::V6(ip) = seg.ip else { panic!() };
    assert_eq!(ip.next_header, 6);
    assert_eq!(ip.payload_len, 40);
    assert_eq!(seg.tcp, parse_tcp_packet(&unhex(LINUX_SYN_V6)).unwrap().tcp);
    // Every truncation (with a consistent payload length field or not) errors.
    for n in 0..b.len() {
        assert!(parse_tcp_packet(&b[..n]).is_err());
    }
}

#[test]
fn ipv6_fragment_header_rejected() {
    let frag = vec![0, 0, 0, 0, 0, 0, 0, 1];
    let b = v6_with_exts(&[(0, vec![0, 0, 1, 4, 0, 0, 0, 0]), (44, frag)]);
    assert!(matches!(
        parse_tcp_packet(&b),
        Err(Error::Malformed { why, .. }) if why.contains("fragment")
    ));
}

#[test]
fn ipv6_extension_header_overrunning_payload() {
    // Hop-by-Hop claiming 16 bytes when only the TCP header follows within 8... bytes.
    let b = v6_with_exts(&[(0, vec![0, 200, 1, 4, 0, 0, 0, 0])]);
    assert!(matches!(
        Ipv6Packet::new_checked(&b[..]).unwrap().upper_layer(),
        Err(Error::Truncated { .. })
    ));
    assert!(parse_tcp_packet(&b).is_err());
}

fn tcp_header_with_options(opts: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    b[12] = (((20 + opts.len()) / 4) as u8) << 4;
    b.extend_from_slice(opts);
    b
}

fn parse_opts(opts: &[u8]) -> braid_proto::wire::Result<TcpRepr> {
    let b = tcp_header_with_options(opts);
    let p = TcpPacket::new_checked(&b[..])?;
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    TcpRepr::parse(&p, a, a, false)
}

#[test]
fn tcp_option_lengths() {
    // Length byte < 2.
    assert!(matches!(
        parse_opts(&[99, 1, 0, 0]),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        parse_opts(&[99, 0, 0, 0]),
        Err(Error::BadLength { .. })
    ));
    // Runs past the options area.
    assert!(matches!(
        parse_opts(&[99, 5, 0, 0]),
        Err(Error::Truncated { .. })
    ));
    // Missing length byte.
    assert!(matches!(
        parse_opts(&[1, 1, 1, 99]),
        Err(Error::Truncated { .. })
    ));
    // Known kinds with wrong lengths.
    for bad in [
        &[2u8, 3, 5, 0][..],
        &[2, 5, 5, 0, 0, 1, 1, 1][..],
        &[3, 2, 1, 1][..],
        &[3, 4, 1, 1][..],
        &[4, 3, 0, 1][..],
        &[8, 9, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1][..],
        &[5, 2, 1, 1][..],
        &[5, 6, 0, 0, 0, 0, 1, 1][..],
        &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
        &[
            5, 42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
    ] {
        assert!(parse_opts(bad).is_err(), "{bad:?}");
    }
    // Five SACK blocks cannot be expressed in 40 bytes, but a 42-length claim is an error
    // above; four are accepted.
    let mut four = vec![5u8, 34];
    for i in 0..8u32 {
        four.extend_from_slice(&i.to_be_bytes());
    }
    four.extend_from_slice(&[1, 1]);
    let r = parse_opts(&four).unwrap();
    assert_eq!(
        &r.options.sack_blocks[..],
        &[(0, 1), (2, 3), (4, 5), (6, 7)]
    );
}

#[test]
fn tcp_window_scale_clamped() {
    let r = parse_opts(&[3, 3, 15, 1]).unwrap();
    assert_eq!(r.options.window_scale, Some(14));
    let r = parse_opts(&[3, 3, 255, 1]).unwrap();
    assert_eq!(r.options.window_scale, Some(14));
    let r = parse_opts(&[3, 3, 14, 1]).unwrap();
    assert_eq!(r.options.window_scale, Some(14));
}

#[test]
fn tcp_eol_stops_parsing_and_unknown_preserved() {
    let r = parse_opts(&[0, 99, 0, 0]).unwrap();
    assert_eq!(r.options, TcpOptions::default());
    let r = parse_opts(&[99, 4, 0xab, 0xcd, 1, 1, 0, 0]).unwrap();
    assert_eq!(
        r.options.unknown,
        vec![UnknownOption {
            kind: 99,
            data: vec![0xab, 0xcd]
        }]
    );
}

#[test]
fn tcp_data_offset_checked() {
    let mut b = [0u8; 20];
    b[12] = 4 << 4;
    assert!(matches!(
        TcpPacket::new_checked(&b[..]),
        Err(Error::BadLength { .. })
    ));
    b[12] = 6 << 4;
    assert!(matches!(
        TcpPacket::new_checked(&b[..]),
        Err(Error::Truncated { .. })
    ));
    assert!(TcpPacket::new_checked(&b[..19]).is_err());
}

fn base_repr() -> TcpRepr {
    TcpRepr {
        src_port: 4000,
        dst_port: 80,
        seq: 0x0102_0304,
        ack: 0x0506_0708,
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

#[test]
fn tcp_too_many_options_is_an_error() {
    let mut r = base_repr();
    r.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
    for i in 0..4 {
        r.options.sack_blocks.push((i, i + 1));
    }
    // 10 + 34 = 44 bytes > 40.
    assert_eq!(r.header_len(), 64);
    let mut buf = [0u8; 100];
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(matches!(
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), a, a, 0),
        Err(Error::BufferTooSmall { .. })
    ));
    assert!(emit_tcp_packet(&mut buf, a, a, 64, &r, &[]).is_err());
    // A huge unknown option too.
    let mut r = base_repr();
    r.options.unknown.push(UnknownOption {
        kind: 99,
        data: vec![0; 300],
    });
    assert!(r
        .emit(&mut TcpPacket::new_unchecked(&mut buf[..]), a, a, 0)
        .is_err());
}

#[test]
fn tcp_emit_pads_with_eol() {
    let mut r = base_repr();
    r.options.mss = Some(536);
    r.options.window_scale = Some(2);
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut buf = [0xffu8; 28];
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), a, a, 0)
        .unwrap();
    assert_eq!(
        &buf[20..],
        &[
            option_kind::MSS,
            4,
            2,
            24,
            option_kind::WINDOW_SCALE,
            3,
            2,
            option_kind::EOL
        ]
    );
}

#[test]
fn emit_tcp_packet_v4_with_payload() {
    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut r = base_repr();
    r.options.timestamps = Some(Timestamps { tsval: 7, tsecr: 9 });
    let payload = b"hello, braid";
    let mut buf = [0u8; 200];
    let n = emit_tcp_packet(&mut buf, src, dst, 33, &r, payload).unwrap();
    assert_eq!(n, 20 + 32 + payload.len());
    let p = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    assert!(p.dont_frag());
    assert_eq!(p.ttl(), 33);
    assert_eq!(p.total_len() as usize, n);
    let seg = parse_tcp_packet(&buf[..n]).unwrap();
    assert_eq!(seg.tcp, r);
    assert_eq!(seg.payload, payload);
    assert_eq!(seg.ip.src_addr(), src);
    assert_eq!(seg.ip.dst_addr(), dst);
    // A corrupted payload byte breaks the TCP checksum.
    buf[n - 1] ^= 0x20;
    assert_eq!(
        parse_tcp_packet(&buf[..n]),
        Err(Error::Checksum { what: "TCP" })
    );
    // Too small a buffer.
    assert!(matches!(
        emit_tcp_packet(&mut buf[..n - 1], src, dst, 33, &r, payload),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn emit_tcp_packet_v6_and_mixed_family() {
    let src: IpAddr = "2001:db8::1".parse().unwrap();
    let dst: IpAddr = "2001:db8::2".parse().unwrap();
    let r = base_repr();
    let payload = [0x5a; 101];
    let mut buf = [0u8; 400];
    let n = emit_tcp_packet(&mut buf, src, dst, 1, &r, &payload).unwrap();
    assert_eq!(n, 40 + 20 + 101);
    let seg = parse_tcp_packet(&buf[..n]).unwrap();
    assert_eq!(seg.tcp, r);
    assert_eq!(seg.payload, &payload[..]);
    assert_eq!(seg.ip.hop_limit(), 1);
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(emit_tcp_packet(&mut buf, src, v4, 1, &r, &payload).is_err());
    assert!(emit_tcp_packet(&mut buf, v4, dst, 1, &r, &payload).is_err());
    // Checksum verification against the wrong family fails cleanly too.
    let ip_hdr = 40;
    let t = TcpPacket::new_checked(&buf[ip_hdr..n]).unwrap();
    assert!(!t.verify_checksum(src, v4));
    assert!(TcpRepr::parse(&t, src, v4, true).is_err());
}

#[test]
fn emit_tcp_packet_too_long_for_ipv4() {
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let payload = vec![0u8; 65_516];
    let mut buf = vec![0u8; 70_000];
    assert!(emit_tcp_packet(&mut buf, a, a, 64, &base_repr(), &payload).is_err());
    let payload = vec![0u8; 65_495];
    let n = emit_tcp_packet(&mut buf, a, a, 64, &base_repr(), &payload).unwrap();
    assert_eq!(n, 65_535);
    assert_eq!(parse_tcp_packet(&buf[..n]).unwrap().payload.len(), 65_495);
}

#[test]
fn tcp_emit_order_sack_mptcp_unknown() {
    use braid_proto::wire::MptcpOption;
    let mut r = base_repr();
    r.options.unknown.push(UnknownOption {
        kind: 99,
        data: vec![7],
    });
    let prio = MptcpOption::MpPrio {
        backup: true,
        addr_id: None,
    };
    r.options.mptcp.push(prio.clone());
    r.options.sack_blocks.push((10, 20));
    r.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
    let a = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut buf = [0u8; 60];
    let mut expected = vec![8u8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    expected.extend_from_slice(&[5, 10, 0, 0, 0, 10, 0, 0, 0, 20]);
    expected.extend_from_slice(&prio.to_vec());
    expected.extend_from_slice(&[99, 3, 7]);
    while expected.len() % 4 != 0 {
        expected.push(0);
    }
    assert_eq!(r.header_len(), 20 + expected.len());
    r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), a, a, 0)
        .unwrap();
    assert_eq!(&buf[20..r.header_len()], &expected[..]);
    let p = TcpPacket::new_checked(&buf[..r.header_len()]).unwrap();
    assert_eq!(TcpRepr::parse(&p, a, a, true).unwrap(), r);
}
