//! The named seeds are what they claim to be: every `tcp_packet` seed is a valid IPv4/IPv6
//! TCP packet (checksums right) that survives the target's re-emit round trip.

use std::fs;
use std::path::Path;

use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, IpRepr};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tcp_packet_seeds_parse_and_round_trip() {
    let all = seeds("tcp_packet");
    assert!(all.len() >= 10, "{} seeds", all.len());
    let (mut v4, mut v6, mut mptcp, mut sack, mut payload) = (0, 0, 0, 0, 0);
    for (name, bytes) in &all {
        let seg = parse_tcp_packet(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        match seg.ip {
            IpRepr::V4(_) => v4 += 1,
            IpRepr::V6(_) => v6 += 1,
        }
        mptcp += usize::from(!seg.tcp.options.mptcp.is_empty());
        sack += usize::from(!seg.tcp.options.sack_blocks.is_empty());
        payload += usize::from(!seg.payload.is_empty());
        assert!(
            seg.tcp.options.unknown.is_empty() || name.contains("unknown"),
            "{name}"
        );

        let mut buf = vec![0u8; 40 + 60 + seg.payload.len()];
        let len = emit_tcp_packet(
            &mut buf,
            seg.ip.src_addr(),
            seg.ip.dst_addr(),
            seg.ip.hop_limit(),
            &seg.tcp,
            seg.payload,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = parse_tcp_packet(&buf[..len]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again.tcp, seg.tcp, "{name}");
        assert_eq!(again.payload, seg.payload, "{name}");
    }
    assert!(v4 >= 5 && v6 >= 4, "v4 {v4} v6 {v6}");
    assert!(mptcp >= 8, "mptcp {mptcp}");
    assert!(sack >= 2, "sack {sack}");
    assert!(payload >= 4, "payload {payload}");
}
