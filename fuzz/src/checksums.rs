//! Checksum repair, so that mutated packets get past checksum verification.

use core::net::IpAddr;

use braid_proto::wire::{Ipv4Packet, Ipv6Packet, TcpPacket};

/// Recompute the IPv4 header checksum and the TCP checksum of `packet` in place, using only
/// the views' checked accessors. Returns whether a TCP segment (at least a fixed header) was
/// found and fixed; bytes that do not locate one are left as they are.
pub fn fix_checksums(packet: &mut [u8]) -> bool {
    let (src, dst, start, end) = match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(mut p) = Ipv4Packet::new_checked(&mut *packet) else {
                return false;
            };
            p.fill_checksum();
            let src = IpAddr::V4(p.src_addr());
            let dst = IpAddr::V4(p.dst_addr());
            (src, dst, p.header_len(), usize::from(p.total_len()))
        }
        Some(6) => {
            let Ok(p) = Ipv6Packet::new_checked(&*packet) else {
                return false;
            };
            let Ok((_, start)) = p.upper_layer() else {
                return false;
            };
            let end = 40 + usize::from(p.payload_len());
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                start,
                end,
            )
        }
        _ => return false,
    };
    match packet.get_mut(start..end) {
        Some(segment) if segment.len() >= 20 => TcpPacket::new_unchecked(segment)
            .fill_checksum(src, dst)
            .is_ok(),
        _ => false,
    }
}
