//! Whole IP + TCP packets, as the engine receives and sends them.
//!
//! [`parse_tcp_packet`] decodes an IPv4 or IPv6 packet carrying TCP (checksums verified);
//! [`emit_tcp_packet`] writes one into a buffer and returns its length.

use core::net::IpAddr;

use super::ip::{IpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, PROTOCOL_TCP};
use super::tcp::{TcpPacket, TcpRepr};
use super::{Error, Result};

/// A decoded TCP segment: the IP header, the TCP header and the payload (borrowed from the
/// packet buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub ip: IpRepr,
    pub tcp: TcpRepr,
    pub payload: &'a [u8],
}

/// Decode an IPv4 or IPv6 packet (told apart by the version nibble) that carries TCP.
/// The IPv4 header checksum and the TCP checksum are verified; IPv4 options and IPv6
/// Hop-by-Hop, Routing and Destination Options headers are skipped. Fragments, other
/// protocols, bad lengths and malformed TCP options are errors. Bytes past the IP total
/// length (or the IPv6 payload length) are ignored.
pub fn parse_tcp_packet(packet: &[u8]) -> Result<TcpSegment<'_>> {
    let Some(&first) = packet.first() else {
        return Err(Error::Truncated {
            what: "IP header",
            need: 1,
            have: 0,
        });
    };
    let (ip, segment): (IpRepr, &[u8]) = match first >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(packet)?;
            let repr = Ipv4Repr::parse(&p)?;
            let end = usize::from(p.total_len());
            let start = end.saturating_sub(repr.payload_len);
            (IpRepr::V4(repr), sub(packet, start, end)?)
        }
        6 => {
            let p = Ipv6Packet::new_checked(packet)?;
            let repr = Ipv6Repr::parse(&p)?;
            // The extension headers end where the upper-layer payload begins.
            let end = Ipv6Repr::HEADER_LEN + usize::from(p.payload_len());
            let start = end.saturating_sub(repr.payload_len);
            (IpRepr::V6(repr), sub(packet, start, end)?)
        }
        _ => {
            return Err(Error::Malformed {
                what: "IP header",
                why: "version is neither 4 nor 6",
            })
        }
    };
    if ip.protocol() != PROTOCOL_TCP {
        return Err(Error::Malformed {
            what: "IP header",
            why: "protocol is not TCP",
        });
    }
    let tcp_packet = TcpPacket::new_checked(segment)?;
    let tcp = TcpRepr::parse(&tcp_packet, ip.src_addr(), ip.dst_addr(), true)?;
    let payload = sub(segment, tcp_packet.header_len(), segment.len())?;
    Ok(TcpSegment { ip, tcp, payload })
}

fn sub(data: &[u8], start: usize, end: usize) -> Result<&[u8]> {
    data.get(start..end).ok_or(Error::Truncated {
        what: "IP payload",
        need: end,
        have: data.len(),
    })
}

/// Write an IP packet carrying `tcp` and `payload` from `src` to `dst` into `buf`; returns
/// its total length. IPv4 packets have DF set, TOS 0 and an ident derived from the sequence
/// number; IPv6 packets have traffic class 0 and flow label 0. `src` and `dst` must be of
/// the same family, and the packet must fit both `buf` and the 16-bit length fields.
pub fn emit_tcp_packet(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    hop_limit: u8,
    tcp: &TcpRepr,
    payload: &[u8],
) -> Result<usize> {
    emit_tcp_packet_parts(buf, src, dst, hop_limit, tcp, Payload::from(payload))
}

/// A segment's payload as it sits in a ring buffer: one run of bytes, or two when it wraps
/// around the ring's end (`head` first, then `tail`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Payload<'a> {
    pub head: &'a [u8],
    pub tail: &'a [u8],
}

impl<'a> Payload<'a> {
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both runs, in order.
    pub fn parts(&self) -> [&'a [u8]; 2] {
        [self.head, self.tail]
    }

    /// The bytes, copied into one `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.head);
        v.extend_from_slice(self.tail);
        v
    }

    /// Copies the bytes to the front of `dst`, which must hold [`Payload::len`] bytes.
    pub fn copy_to(&self, dst: &mut [u8]) {
        let (a, b) = dst.split_at_mut(self.head.len());
        a.copy_from_slice(self.head);
        b[..self.tail.len()].copy_from_slice(self.tail);
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(head: &'a [u8]) -> Payload<'a> {
        Payload { head, tail: &[] }
    }
}

/// [`emit_tcp_packet`] with the payload in (up to) two runs, copied straight from a ring
/// buffer into the packet.
pub fn emit_tcp_packet_parts(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    hop_limit: u8,
    tcp: &TcpRepr,
    payload: Payload<'_>,
) -> Result<usize> {
    let tcp_len = tcp.header_len() + payload.len();
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IpRepr::V4(Ipv4Repr {
            src: s,
            dst: d,
            protocol: PROTOCOL_TCP,
            payload_len: tcp_len,
            ttl: hop_limit,
            tos: 0,
            ident: (tcp.seq ^ (tcp.seq >> 16)) as u16,
            dont_frag: true,
        }),
        (IpAddr::V6(s), IpAddr::V6(d)) => IpRepr::V6(Ipv6Repr {
            src: s,
            dst: d,
            next_header: PROTOCOL_TCP,
            payload_len: tcp_len,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }),
        _ => {
            return Err(Error::Malformed {
                what: "IP header",
                why: "source and destination are of different address families",
            })
        }
    };
    let total = ip.buffer_len();
    let have = buf.len();
    let Some(out) = buf.get_mut(..total) else {
        return Err(Error::BufferTooSmall {
            what: "IP packet",
            need: total,
            have,
        });
    };
    // Header first: it checks the length fields before anything else is written.
    ip.emit(out)?;
    let segment = out.get_mut(ip.header_len()..).unwrap_or_default();
    let Some(data) = segment.get_mut(tcp.header_len()..) else {
        return Err(Error::BufferTooSmall {
            what: "TCP segment",
            need: tcp_len,
            have: segment.len(),
        });
    };
    if data.len() != payload.len() {
        return Err(Error::BufferTooSmall {
            what: "TCP payload",
            need: payload.len(),
            have: data.len(),
        });
    }
    payload.copy_to(data);
    tcp.emit(
        &mut TcpPacket::new_unchecked(segment),
        src,
        dst,
        payload.len(),
    )?;
    Ok(total)
}
