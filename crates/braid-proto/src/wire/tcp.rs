//! The TCP header and its options, RFC 9293 §3.1, RFC 7323, RFC 2018.
//!
//! CONTRACT (implemented by the wire-ip-tcp work): `TcpPacket::new_checked` validates the
//! data offset; `TcpRepr::parse(&packet, src, dst, verify_checksum)` decodes header and
//! options; `TcpRepr::emit(&self, &mut packet, src, dst, payload_len)` writes the header
//! and options (padded to 4 bytes) and, with the payload already in place after the header,
//! the checksum over the pseudo-header.

use arrayvec::ArrayVec;

use super::mptcp::MptcpOption;

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
    pub mptcp: Vec<MptcpOption>,
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
