//! Parse arbitrary bytes as an IPv4 or IPv6 packet carrying TCP. Parsing must never panic;
//! whatever parses must re-emit (`emit_tcp_packet`, same addresses and hop limit) to a packet
//! that parses back to the same TCP header, options and payload.
//!
//! Each input is tried twice: as is, and with its IPv4 header checksum and TCP checksum
//! recomputed (when the IP header locates a segment), so that mutations of the TCP header,
//! options and payload reach the option parser instead of stopping at the checksum.
//!
//! Emission packs options in a fixed order without alignment NOPs and drops IP options,
//! IPv6 extension headers, the TCP reserved bits and repeated options, so the decoded
//! representations are compared, not the bytes.
#![no_main]

use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, IpRepr};
use libfuzzer_sys::fuzz_target;

use braid_fuzz::checksums::fix_checksums;

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    let mut fixed = data.to_vec();
    if fix_checksums(&mut fixed) {
        round_trip(&fixed);
    }
});

fn round_trip(data: &[u8]) {
    let Ok(seg) = parse_tcp_packet(data) else {
        return;
    };
    let src = seg.ip.src_addr();
    let dst = seg.ip.dst_addr();
    let hop_limit = seg.ip.hop_limit();

    // What parsed came from at most 40 option bytes, and emission never takes more room than
    // the input did (no NOPs, repeated options once), so the header always fits again.
    let header_len = seg.tcp.header_len();
    assert!((20..=60).contains(&header_len), "header_len {header_len}");

    let ip_header = match seg.ip {
        IpRepr::V4(_) => 20,
        IpRepr::V6(_) => 40,
    };
    let total = ip_header + header_len + seg.payload.len();
    // One spare byte: emission must write exactly `total`, not fill the buffer.
    let mut buf = vec![0u8; total + 1];
    let len = emit_tcp_packet(&mut buf, src, dst, hop_limit, &seg.tcp, seg.payload)
        .expect("a parsed segment must re-emit");
    assert_eq!(len, total);

    let again = parse_tcp_packet(&buf[..len]).expect("an emitted segment must parse");
    assert_eq!(again.tcp, seg.tcp);
    assert_eq!(again.payload, seg.payload);
    assert_eq!(again.ip.src_addr(), src);
    assert_eq!(again.ip.dst_addr(), dst);
    assert_eq!(again.ip.hop_limit(), hop_limit);
    assert_eq!(again.ip.payload_len(), header_len + seg.payload.len());

    // The spare byte after the packet is ignored, as any trailing bytes are.
    let with_trailer = parse_tcp_packet(&buf).expect("trailing bytes must be ignored");
    assert_eq!(with_trailer.tcp, seg.tcp);
    assert_eq!(with_trailer.payload, seg.payload);
}
