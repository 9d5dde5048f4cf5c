//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers.
//!
//! [`Ipv4Packet`] and [`Ipv6Packet`] are zero-copy views: after `new_checked` succeeds no
//! accessor can panic. [`Ipv4Repr`] and [`Ipv6Repr`] are the decoded headers; [`IpRepr`] is
//! either of them. braid neither sends nor accepts fragments.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{Error, Result};

/// IP protocol number of TCP.
pub const PROTOCOL_TCP: u8 = 6;

/// Bounds-checked slice of `data[start..end]` as a typed error.
fn slice<'a>(data: &'a [u8], start: usize, end: usize, what: &'static str) -> Result<&'a [u8]> {
    data.get(start..end).ok_or(Error::Truncated {
        what,
        need: end,
        have: data.len(),
    })
}

// ---------------------------------------------------------------------------------------------
// IPv4
// ---------------------------------------------------------------------------------------------

mod v4 {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
    pub const HEADER_LEN: usize = 20;

    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const OFFSET_MASK: u16 = 0x1fff;
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap a buffer without checking it; accessors may panic on a short buffer. Use
    /// [`Ipv4Packet::new_checked`] for anything that came from the network.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap a buffer after [`Ipv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the fixed header, the options (IHL) and `total_length` all fit the buffer,
    /// so that no accessor can panic. A buffer longer than `total_length` is accepted; the
    /// trailing bytes (e.g. Ethernet padding) are not part of the packet.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < v4::HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv4 header",
                need: v4::HEADER_LEN,
                have: data.len(),
            });
        }
        let header_len = self.header_len();
        //= rfc791#3.1
        //= IHL is the header length in 32-bit words; the minimum value is 5.
        if header_len < v4::HEADER_LEN {
            return Err(Error::BadLength {
                what: "IPv4 IHL",
                len: header_len,
            });
        }
        if data.len() < header_len {
            return Err(Error::Truncated {
                what: "IPv4 options",
                need: header_len,
                have: data.len(),
            });
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::BadLength {
                what: "IPv4 total length",
                len: total_len,
            });
        }
        if data.len() < total_len {
            return Err(Error::Truncated {
                what: "IPv4 packet",
                need: total_len,
                have: data.len(),
            });
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.data()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The version nibble (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.data()[v4::VER_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[v4::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP + ECN byte (formerly type of service).
    pub fn tos(&self) -> u8 {
        self.data()[v4::TOS]
    }

    /// Total length of the packet, header included.
    pub fn total_len(&self) -> u16 {
        self.u16_at(v4::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        self.u16_at(v4::IDENT)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(v4::FLG_OFF) & v4::FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(v4::FLG_OFF) & v4::FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(v4::FLG_OFF) & v4::OFFSET_MASK) << 3
    }

    pub fn ttl(&self) -> u8 {
        self.data()[v4::TTL]
    }

    /// The upper-layer protocol number.
    pub fn protocol(&self) -> u8 {
        self.data()[v4::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(v4::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.data()[v4::SRC];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.data()[v4::DST];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The options bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.data()[v4::HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum (options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        //= rfc791#3.1
        //= The header checksum is the one's complement of the one's complement sum of the header.
        checksum::checksum(&self.data()[..self.header_len()]) == 0
    }

    /// The payload: the bytes after the header up to `total_length`.
    pub fn payload(&self) -> &[u8] {
        &self.data()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.data_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Set version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.data_mut()[v4::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_tos(&mut self, v: u8) {
        self.data_mut()[v4::TOS] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16_at(v4::LENGTH, v);
    }

    pub fn set_ident(&mut self, v: u16) {
        self.set_u16_at(v4::IDENT, v);
    }

    /// Set the flags and fragment offset word to DF (or nothing), offset 0.
    pub fn set_dont_frag_only(&mut self, df: bool) {
        self.set_u16_at(v4::FLG_OFF, if df { v4::FLAG_DF } else { 0 });
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.data_mut()[v4::TTL] = v;
    }

    pub fn set_protocol(&mut self, v: u8) {
        self.data_mut()[v4::PROTOCOL] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(v4::CHECKSUM, v);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.data_mut()[v4::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.data_mut()[v4::DST].copy_from_slice(&a.octets());
    }

    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = self.header_len();
        let c = checksum::checksum(&self.data()[..len]);
        self.set_checksum(c);
    }
}

/// A decoded IPv4 header. Options are not represented (skipped on parse, never emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Length of the upper-layer payload (total length minus the header, options included).
    pub payload_len: usize,
    pub ttl: u8,
    /// The DSCP + ECN byte.
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// The length of the header `emit` writes (no options).
    pub const HEADER_LEN: usize = v4::HEADER_LEN;

    /// Decode a checked packet: version 4, a verifying header checksum, no fragment.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed {
                what: "IPv4 header",
                why: "version is not 4",
            });
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum {
                what: "IPv4 header",
            });
        }
        //= rfc791#3.2
        //= A fragment has MF set or a nonzero offset; braid does no reassembly.
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Error::Malformed {
                what: "IPv4 header",
                why: "fragments are not supported",
            });
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Header length in bytes (always 20: braid emits no IPv4 options).
    pub const fn header_len(&self) -> usize {
        v4::HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        v4::HEADER_LEN + self.payload_len
    }

    /// Write the header (with its checksum) into the first 20 bytes of `packet`. The
    /// payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) -> Result<()> {
        let have = packet.buffer.as_ref().len();
        if have < v4::HEADER_LEN {
            return Err(Error::BufferTooSmall {
                what: "IPv4 header",
                need: v4::HEADER_LEN,
                have,
            });
        }
        let total = v4::HEADER_LEN + self.payload_len;
        let total = u16::try_from(total).map_err(|_| Error::BadLength {
            what: "IPv4 total length",
            len: total,
        })?;
        packet.set_version_and_header_len(v4::HEADER_LEN);
        packet.set_tos(self.tos);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_dont_frag_only(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        packet.fill_checksum();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------------------------

mod v6 {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = 40;
}

/// IPv6 extension header numbers this module knows about (RFC 8200 §4).
pub mod ext {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap a buffer without checking it; see [`Ipv6Packet::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap a buffer after [`Ipv6Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the fixed header and `payload_length` fit the buffer. Trailing bytes past
    /// the payload length are accepted and ignored.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < v6::HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv6 header",
                need: v6::HEADER_LEN,
                have: data.len(),
            });
        }
        let total = v6::HEADER_LEN + usize::from(self.payload_len());
        if data.len() < total {
            return Err(Error::Truncated {
                what: "IPv6 packet",
                need: total,
                have: data.len(),
            });
        }
        Ok(())
    }

    /// Unwrap the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word0(&self) -> u32 {
        let d = &self.data()[v6::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The version nibble (6 for IPv6).
    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// The payload length field: everything after the fixed header, extension headers
    /// included.
    pub fn payload_len(&self) -> u16 {
        let d = &self.data()[v6::LENGTH];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The Next Header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.data()[v6::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.data()[v6::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.data()[v6::SRC]))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.data()[v6::DST]))
    }

    /// The bytes after the fixed header up to the payload length (extension headers
    /// included).
    pub fn payload(&self) -> &[u8] {
        &self.data()[v6::HEADER_LEN..v6::HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers: the upper-layer protocol and the offset of its header
    /// from the start of the packet. Hop-by-Hop, Routing and Destination Options headers
    /// are skipped; a Fragment header is an error (braid does no reassembly).
    pub fn upper_layer(&self) -> Result<(u8, usize)> {
        let payload = self.payload();
        let mut next = self.next_header();
        let mut off = 0usize;
        loop {
            match next {
                //= rfc8200#4.3
                //= Hop-by-Hop, Routing and Destination Options share the layout
                //= (next header, length in 8-octet units not counting the first 8, data).
                ext::HOP_BY_HOP | ext::ROUTING | ext::DESTINATION_OPTIONS => {
                    let hdr = slice(payload, off, off + 2, "IPv6 extension header")?;
                    let len = 8 + usize::from(hdr[1]) * 8;
                    slice(payload, off, off + len, "IPv6 extension header")?;
                    next = hdr[0];
                    off += len;
                }
                //= rfc8200#4.5
                //= Fragmented packets would need reassembly, which braid does not do.
                ext::FRAGMENT => {
                    return Err(Error::Malformed {
                        what: "IPv6 header",
                        why: "fragments are not supported",
                    })
                }
                proto => return Ok((proto, v6::HEADER_LEN + off)),
            }
        }
    }
}

fn addr16(d: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(d);
    a
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set version 6, the traffic class and the flow label (masked to 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.data_mut()[v6::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, v: u16) {
        self.data_mut()[v6::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_next_header(&mut self, v: u8) {
        self.data_mut()[v6::NXT_HDR] = v;
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.data_mut()[v6::HOP_LIMIT] = v;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.data_mut()[v6::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.data_mut()[v6::DST].copy_from_slice(&a.octets());
    }
}

/// A decoded IPv6 header. Extension headers are skipped on parse and never emitted, so
/// `next_header` is the upper-layer protocol and `payload_len` the upper-layer length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (after any skipped extension headers).
    pub next_header: u8,
    /// Length of the upper-layer payload (excluding skipped extension headers).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// The 20-bit flow label.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// The length of the header `emit` writes (no extension headers).
    pub const HEADER_LEN: usize = v6::HEADER_LEN;

    /// Decode a checked packet: version 6, extension headers skipped, no fragment.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Malformed {
                what: "IPv6 header",
                why: "version is not 6",
            });
        }
        let (next_header, offset) = packet.upper_layer()?;
        let payload_len = v6::HEADER_LEN + usize::from(packet.payload_len()) - offset;
        Ok(Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header,
            payload_len,
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header length in bytes (always 40: braid emits no extension headers).
    pub const fn header_len(&self) -> usize {
        v6::HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        v6::HEADER_LEN + self.payload_len
    }

    /// Write the 40-byte fixed header into `packet`. The payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) -> Result<()> {
        let have = packet.buffer.as_ref().len();
        if have < v6::HEADER_LEN {
            return Err(Error::BufferTooSmall {
                what: "IPv6 header",
                need: v6::HEADER_LEN,
                have,
            });
        }
        let len = u16::try_from(self.payload_len).map_err(|_| Error::BadLength {
            what: "IPv6 payload length",
            len: self.payload_len,
        })?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed {
                what: "IPv6 header",
                why: "flow label wider than 20 bits",
            });
        }
        packet.set_version_tc_flow(self.traffic_class, self.flow_label);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Either
// ---------------------------------------------------------------------------------------------

/// An IPv4 or IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRepr {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

impl IpRepr {
    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => IpAddr::V4(r.src),
            IpRepr::V6(r) => IpAddr::V6(r.src),
        }
    }

    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => IpAddr::V4(r.dst),
            IpRepr::V6(r) => IpAddr::V6(r.dst),
        }
    }

    /// The upper-layer protocol.
    pub fn protocol(&self) -> u8 {
        match self {
            IpRepr::V4(r) => r.protocol,
            IpRepr::V6(r) => r.next_header,
        }
    }

    /// TTL or hop limit.
    pub fn hop_limit(&self) -> u8 {
        match self {
            IpRepr::V4(r) => r.ttl,
            IpRepr::V6(r) => r.hop_limit,
        }
    }

    /// The length of the header `emit` writes.
    pub fn header_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.header_len(),
            IpRepr::V6(r) => r.header_len(),
        }
    }

    /// Length of the upper-layer payload.
    pub fn payload_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.payload_len,
            IpRepr::V6(r) => r.payload_len,
        }
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len()
    }

    /// Write the header into the start of `buf`; the payload is not touched.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        match self {
            IpRepr::V4(r) => r.emit(&mut Ipv4Packet::new_unchecked(buf)),
            IpRepr::V6(r) => r.emit(&mut Ipv6Packet::new_unchecked(buf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: PROTOCOL_TCP,
            payload_len: 4,
            ttl: 64,
            tos: 0x02,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    #[test]
    fn v4_emit_parse() {
        let r = v4_repr();
        let mut buf = [0u8; 24];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn v4_emit_short_buffer_errors() {
        let mut buf = [0u8; 19];
        assert!(matches!(
            v4_repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])),
            Err(Error::BufferTooSmall { .. })
        ));
        let mut big = v4_repr();
        big.payload_len = 65_516;
        let mut buf = [0u8; 20];
        assert!(big
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
            .is_err());
    }

    #[test]
    fn v6_emit_rejects_wide_flow_label() {
        let r = Ipv6Repr {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::LOCALHOST,
            next_header: 6,
            payload_len: 0,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0x10_0000,
        };
        let mut buf = [0u8; 40];
        assert!(r
            .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
            .is_err());
    }
}
