//! The TCP header and its options, RFC 9293 §3.1, RFC 7323, RFC 2018.
//!
//! CONTRACT (implemented by the wire-ip-tcp work): `TcpPacket::new_checked` validates the
//! data offset; `TcpRepr::parse(&packet, src, dst, verify_checksum)` decodes header and
//! options; `TcpRepr::emit(&self, &mut packet, src, dst, payload_len)` writes the header
//! and options (padded to 4 bytes) and, with the payload already in place after the header,
//! the checksum over the pseudo-header.

use core::net::IpAddr;
use core::ops::Range;

use arrayvec::ArrayVec;
use smallvec::SmallVec;

use super::checksum;
use super::ip::PROTOCOL_TCP;
use super::mptcp::{self, MptcpOption};
use super::{Error, Result};

/// TCP header flags as their on-wire bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// RFC 7323 timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// An option braid does not interpret, preserved as (kind, bytes after the length byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOption {
    pub kind: u8,
    pub data: Vec<u8>,
}

/// The MPTCP options of one segment. Two fit inline (a DSS and one signal, what real
/// segments carry), so parsing or building a segment allocates nothing; more spill to the
/// heap, so any number the option space can hold is kept.
pub type MptcpOptions = SmallVec<[MptcpOption; 2]>;

/// Decoded TCP options. Empty vectors do not allocate, so plain segments cost nothing here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks as (left edge, right edge), at most 4 (RFC 2018 §3).
    pub sack_blocks: ArrayVec<(u32, u32), 4>,
    pub timestamps: Option<Timestamps>,
    /// MPTCP options (kind 30), in the order they appear.
    pub mptcp: MptcpOptions,
    /// Options of other kinds, preserved.
    pub unknown: Vec<UnknownOption>,
}

/// A decoded TCP header (the payload stays in the packet buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// The window field as sent (not scaled).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
}

/// TCP option kinds braid interprets (IANA "TCP Option Kind Numbers").
pub mod option_kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
    pub const MPTCP: u8 = super::mptcp::KIND;
}

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;
/// The most option bytes a TCP header can carry (data offset 15 × 4 − 20).
pub const MAX_OPTIONS_LEN: usize = 40;

/// The largest window shift RFC 7323 allows.
pub const MAX_WINDOW_SHIFT: u8 = 14;

/// A view of a TCP segment (header, options and payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap a buffer without checking it; see [`TcpPacket::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap a buffer after [`TcpPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the fixed header fits and that the data offset is at least 5 words and
    /// within the buffer, so that no accessor can panic.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated {
                what: "TCP header",
                need: HEADER_LEN,
                have: data.len(),
            });
        }
        let header_len = self.header_len();
        //= rfc9293#3.1
        //= Data Offset is the header length in 32-bit words; a header is at least 5 words.
        if header_len < HEADER_LEN {
            return Err(Error::BadLength {
                what: "TCP data offset",
                len: header_len,
            });
        }
        if data.len() < header_len {
            return Err(Error::Truncated {
                what: "TCP options",
                need: header_len,
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

    fn u16_at(&self, r: Range<usize>) -> u16 {
        let d = &self.data()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    fn u32_at(&self, r: Range<usize>) -> u32 {
        let d = &self.data()[r];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ)
    }

    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK)
    }

    /// Header length in bytes, options included (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits (CWR … FIN).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.data()[field::FLAGS])
    }

    /// The window field as sent (not scaled).
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The options area (between the fixed header and the payload), padding included.
    pub fn options(&self) -> &[u8] {
        &self.data()[HEADER_LEN..self.header_len()]
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.data()[self.header_len()..]
    }

    /// Whether the checksum over the pseudo-header and the whole segment verifies. A
    /// mixed-family address pair never verifies.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.data();
        let Ok(len) = segment_len(src, dst, data.len()) else {
            return false;
        };
        //= rfc9293#3.1
        //= The checksum covers a pseudo-header, the TCP header and the data.
        let sum = checksum::pseudo_header(src, dst, PROTOCOL_TCP, len);
        checksum::fold(checksum::add(sum, data)) == 0xffff
    }
}

/// The pseudo-header length of a segment of `len` bytes between `src` and `dst`, or an error
/// for mixed families or an IPv4 segment longer than 16 bits can say.
fn segment_len(src: IpAddr, dst: IpAddr, len: usize) -> Result<u32> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            u16::try_from(len)
                .map(u32::from)
                .map_err(|_| Error::BadLength {
                    what: "TCP segment",
                    len,
                })
        }
        (IpAddr::V6(_), IpAddr::V6(_)) => u32::try_from(len).map_err(|_| Error::BadLength {
            what: "TCP segment",
            len,
        }),
        _ => Err(Error::Malformed {
            what: "TCP pseudo-header",
            why: "source and destination are of different address families",
        }),
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_u16_at(&mut self, r: Range<usize>, v: u16) {
        self.data_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u32_at(&mut self, r: Range<usize>, v: u32) {
        self.data_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        self.set_u32_at(field::SEQ, v);
    }

    pub fn set_ack_number(&mut self, v: u32) {
        self.set_u32_at(field::ACK, v);
    }

    /// Set the data offset from a header length in bytes (a multiple of 4, at most 60);
    /// the reserved bits are cleared.
    pub fn set_header_len(&mut self, len: usize) {
        self.data_mut()[field::DATA_OFF] = ((len / 4) as u8 & 0x0f) << 4;
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.data_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16_at(field::WINDOW, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16_at(field::URGENT, v);
    }

    /// The options area, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let len = self.header_len();
        &mut self.data_mut()[HEADER_LEN..len]
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.header_len();
        &mut self.data_mut()[len..]
    }

    /// Compute and store the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) -> Result<()> {
        self.set_checksum(0);
        let data = self.data();
        let len = segment_len(src, dst, data.len())?;
        let sum = checksum::pseudo_header(src, dst, PROTOCOL_TCP, len);
        let c = !checksum::fold(checksum::add(sum, data));
        self.set_checksum(c);
        Ok(())
    }
}

impl TcpOptions {
    /// Decode an options area. Parsing stops at End of Option List; NOPs are skipped.
    /// A later option of a kind seen before replaces it.
    pub fn parse(mut opts: &[u8]) -> Result<TcpOptions> {
        let mut out = TcpOptions::default();
        while let Some((&kind, rest)) = opts.split_first() {
            match kind {
                //= rfc9293#3.2
                //= End of Option List ends the options; what follows is padding.
                option_kind::EOL => break,
                option_kind::NOP => {
                    opts = rest;
                    continue;
                }
                _ => {}
            }
            //= rfc9293#3.2
            //= Other options carry a length octet counting the kind and length octets.
            let Some(&len) = rest.first() else {
                return Err(Error::Truncated {
                    what: "TCP option length",
                    need: 2,
                    have: 1,
                });
            };
            let len = usize::from(len);
            if len < 2 {
                return Err(Error::BadLength {
                    what: "TCP option",
                    len,
                });
            }
            let Some(option) = opts.get(..len) else {
                return Err(Error::Truncated {
                    what: "TCP option",
                    need: len,
                    have: opts.len(),
                });
            };
            let body = &option[2..];
            match kind {
                option_kind::MSS => {
                    //= rfc9293#3.2
                    //= Maximum Segment Size: kind 2, length 4, a 16-bit MSS.
                    let b = fixed::<2>(body, "TCP MSS option")?;
                    out.mss = Some(u16::from_be_bytes(b));
                }
                option_kind::WINDOW_SCALE => {
                    let [shift] = fixed::<1>(body, "TCP window scale option")?;
                    //= rfc7323#2.3
                    //= A shift count above 14 is treated as 14.
                    out.window_scale = Some(shift.min(MAX_WINDOW_SHIFT));
                }
                option_kind::SACK_PERMITTED => {
                    //= rfc2018#2
                    //= SACK-Permitted: kind 4, length 2.
                    fixed::<0>(body, "TCP SACK-permitted option")?;
                    out.sack_permitted = true;
                }
                option_kind::SACK => {
                    //= rfc2018#3
                    //= SACK: kind 5, length 2 + 8n, n blocks of (left edge, right edge).
                    if body.is_empty() || body.len() % 8 != 0 || body.len() > 32 {
                        return Err(Error::BadLength {
                            what: "TCP SACK option",
                            len,
                        });
                    }
                    out.sack_blocks.clear();
                    for b in body.chunks_exact(8) {
                        let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        out.sack_blocks.push((left, right));
                    }
                }
                option_kind::TIMESTAMPS => {
                    //= rfc7323#3.2
                    //= Timestamps: kind 8, length 10, TSval and TSecr.
                    let b = fixed::<8>(body, "TCP timestamps option")?;
                    out.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        tsecr: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    });
                }
                option_kind::MPTCP => {
                    //= rfc8684#2
                    //= MPTCP signals with TCP option kind 30, one subtype per option.
                    out.mptcp.push(MptcpOption::parse(option)?);
                }
                _ => out.unknown.push(UnknownOption {
                    kind,
                    data: body.to_vec(),
                }),
            }
            opts = &opts[len..];
        }
        Ok(out)
    }

    /// The number of option bytes `emit` writes before padding.
    pub fn unpadded_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.sack_permitted {
            n += 2;
        }
        if self.window_scale.is_some() {
            n += 3;
        }
        if self.timestamps.is_some() {
            n += 10;
        }
        if !self.sack_blocks.is_empty() {
            n += 2 + 8 * self.sack_blocks.len();
        }
        n += self
            .mptcp
            .iter()
            .map(MptcpOption::buffer_len)
            .sum::<usize>();
        n += self.unknown.iter().map(|u| 2 + u.data.len()).sum::<usize>();
        n
    }

    /// The option bytes `emit` writes, padded to a multiple of 4.
    pub fn padded_len(&self) -> usize {
        self.unpadded_len().div_ceil(4) * 4
    }

    /// Write the options into `buf` in the order MSS, SACK-permitted, window scale,
    /// timestamps, SACK blocks, MPTCP, unknown, then pad with End of Option List (zeros) to
    /// a multiple of 4. Returns the number of bytes written. Fails if the options need more
    /// than 40 bytes or more than `buf` holds.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let padded = self.padded_len();
        if padded > MAX_OPTIONS_LEN {
            return Err(Error::BufferTooSmall {
                what: "TCP options",
                need: padded,
                have: MAX_OPTIONS_LEN,
            });
        }
        let Some(buf) = buf.get_mut(..padded) else {
            return Err(Error::BufferTooSmall {
                what: "TCP options",
                need: padded,
                have: buf.len(),
            });
        };
        let mut w = Writer { buf, pos: 0 };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            w.put(&[option_kind::MSS, 4, m[0], m[1]])?;
        }
        if self.sack_permitted {
            w.put(&[option_kind::SACK_PERMITTED, 2])?;
        }
        if let Some(shift) = self.window_scale {
            w.put(&[option_kind::WINDOW_SCALE, 3, shift])?;
        }
        if let Some(ts) = self.timestamps {
            w.put(&[option_kind::TIMESTAMPS, 10])?;
            w.put(&ts.tsval.to_be_bytes())?;
            w.put(&ts.tsecr.to_be_bytes())?;
        }
        if !self.sack_blocks.is_empty() {
            let len = 2 + 8 * self.sack_blocks.len();
            // At most 4 blocks: len <= 34.
            w.put(&[option_kind::SACK, len as u8])?;
            for &(left, right) in &self.sack_blocks {
                w.put(&left.to_be_bytes())?;
                w.put(&right.to_be_bytes())?;
            }
        }
        for m in &self.mptcp {
            let len = m.buffer_len();
            m.emit(w.take(len)?);
        }
        for u in &self.unknown {
            // Bounded by the 40-byte check above, so the length fits a byte.
            let len = 2 + u.data.len();
            w.put(&[u.kind, len as u8])?;
            w.put(&u.data)?;
        }
        //= rfc9293#3.1
        //= The header padding after the options is zeros (End of Option List).
        let pos = w.pos;
        w.take(padded - pos)?.fill(option_kind::EOL);
        Ok(padded)
    }
}

/// A body of exactly `N` bytes, or a length error naming the option.
fn fixed<const N: usize>(body: &[u8], what: &'static str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(body).map_err(|_| Error::BadLength {
        what,
        len: body.len() + 2,
    })
}

/// A cursor over an output buffer that reports overflow as an error instead of panicking.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn take(&mut self, n: usize) -> Result<&mut [u8]> {
        let have = self.buf.len();
        let end = self.pos + n;
        let out = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall {
                what: "TCP options",
                need: end,
                have,
            })?;
        self.pos = end;
        Ok(out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.take(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}

impl TcpRepr {
    /// Decode a checked segment's header and options. With `verify_checksum`, the checksum
    /// over the pseudo-header for `src`/`dst` and the whole buffer must verify.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        verify_checksum: bool,
    ) -> Result<TcpRepr> {
        packet.check_len()?;
        if verify_checksum {
            let len = packet.data().len();
            segment_len(src, dst, len)?;
            if !packet.verify_checksum(src, dst) {
                return Err(Error::Checksum { what: "TCP" });
            }
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options())?,
        })
    }

    /// The header length `emit` writes: 20 plus the options padded to a multiple of 4. May
    /// exceed 60 when the options do not fit, in which case `emit` fails.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.padded_len()
    }

    /// Same as [`TcpRepr::header_len`] (the payload is not part of the repr).
    pub fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Write header and options into `packet`, and, with `payload_len` bytes of payload
    /// already in place right after the header, the checksum over the pseudo-header for
    /// `src`/`dst`, the header and those bytes. `packet` must hold at least
    /// `header_len() + payload_len` bytes; only that prefix is written and summed.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        payload_len: usize,
    ) -> Result<()> {
        let options_len = self.options.padded_len();
        let header_len = HEADER_LEN + options_len;
        if options_len > MAX_OPTIONS_LEN {
            return Err(Error::BufferTooSmall {
                what: "TCP options",
                need: options_len,
                have: MAX_OPTIONS_LEN,
            });
        }
        let seg_len = header_len + payload_len;
        let pseudo_len = segment_len(src, dst, seg_len)?;
        let have = packet.data().len();
        let Some(seg) = packet.data_mut().get_mut(..seg_len) else {
            return Err(Error::BufferTooSmall {
                what: "TCP segment",
                need: seg_len,
                have,
            });
        };
        let mut p = TcpPacket::new_unchecked(seg);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len(header_len);
        p.set_flags(self.flags);
        p.set_window_len(self.window);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent);
        self.options.emit(p.options_mut())?;
        let sum = checksum::pseudo_header(src, dst, PROTOCOL_TCP, pseudo_len);
        let c = !checksum::fold(checksum::add(sum, p.data()));
        p.set_checksum(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn repr() -> TcpRepr {
        TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags(TcpFlags::ACK),
            window: 5,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    #[test]
    fn options_order_and_padding() {
        let mut r = repr();
        r.options.mss = Some(1460);
        r.options.window_scale = Some(7);
        r.options.sack_permitted = true;
        r.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
        assert_eq!(r.header_len(), 40);
        let mut buf = [0xaau8; 40];
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, 0)
            .unwrap();
        assert_eq!(
            &buf[20..],
            &[2, 4, 5, 180, 4, 2, 3, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0]
        );
    }

    #[test]
    fn emit_needs_room_for_payload() {
        let mut buf = [0u8; 23];
        assert!(matches!(
            repr().emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B, 4),
            Err(Error::BufferTooSmall { .. })
        ));
    }
}
