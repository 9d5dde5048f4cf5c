//! The MPTCP option (TCP option kind 30) codec, RFC 8684 §2 and §3.
//!
//! CONTRACT (implemented by the wire-mptcp work): `MptcpOption::parse` takes the whole option
//! bytes *including* kind (30) and length; `buffer_len` is the number of bytes `emit` writes
//! (kind and length included, no padding); `emit` writes exactly that many bytes.
//!
//! Decoding rules (all of them are exercised by `tests/wire_mptcp*.rs`):
//! - `parse` needs the length byte to equal `data.len()`; a shorter buffer is
//!   [`Error::Truncated`](super::Error::Truncated), any length a subtype does not allow is
//!   [`Error::BadLength`](super::Error::BadLength). Parsing never panics.
//! - Which form of a subtype is present is told by the length alone (MP_CAPABLE, MP_JOIN,
//!   the DSS checksum, ADD_ADDR's address family, port and HMAC, MP_PRIO's address id).
//! - Reserved bits are ignored on parse and written as zero.
//! - Every value `parse` returns survives `emit` + `parse` unchanged. The other way round,
//!   `emit` writes the canonical encoding, which differs from the input only in reserved
//!   bits and in the DSS `m` flag of an option without a mapping (it has no field to live in).

use core::net::IpAddr;

mod emit;
mod parse;

/// TCP option kind of every MPTCP option.
pub const KIND: u8 = 30;

/// MP_CAPABLE, RFC 8684 §3.1. The four v1 forms are told apart by which fields are present:
/// SYN (no key), SYN/ACK (`sender_key`), third ACK (both keys), ACK with data (both keys,
/// `data_len`, optional `checksum`). `emit` picks the form by the first absent field in the
/// order `sender_key`, `receiver_key`, `data_len`, `checksum` and writes nothing after it;
/// the constructors [`MpCapable::syn`], [`MpCapable::syn_ack`], [`MpCapable::ack`] and
/// [`MpCapable::ack_with_data`] build exactly the five wire forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpCapable {
    /// Version (1 for RFC 8684).
    pub version: u8,
    /// The flag byte: A (checksum required, 0x80), B (extensibility, 0x40),
    /// C (no more subflows to the source address, 0x20), H (HMAC-SHA256, 0x01).
    pub flags: u8,
    pub sender_key: Option<u64>,
    pub receiver_key: Option<u64>,
    /// Data-level length of the data on the third ACK (form 4).
    pub data_len: Option<u16>,
    /// DSS checksum of that data when checksums are in use (form 4).
    pub checksum: Option<u16>,
}

impl MpCapable {
    pub const FLAG_CHECKSUM: u8 = 0x80;
    pub const FLAG_EXTENSIBILITY: u8 = 0x40;
    pub const FLAG_NO_MORE_SUBFLOWS: u8 = 0x20;
    pub const FLAG_HMAC_SHA256: u8 = 0x01;
}

/// The DSS mapping, RFC 8684 §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DssMapping {
    /// Data sequence number of the mapping's first byte (64-bit, or the low 32 bits when
    /// `dsn_64` is false).
    pub dsn: u64,
    pub dsn_64: bool,
    /// Subflow sequence number, relative to the subflow's initial sequence number.
    pub subflow_seq: u32,
    /// Data-level length; 0 is the infinite mapping (see [`DssMapping::is_infinite`]).
    pub data_len: u16,
    /// The DSS checksum, present when checksums were negotiated.
    pub checksum: Option<u16>,
}

/// The Data Sequence Signal, RFC 8684 §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dss {
    /// DATA_ACK (64-bit, or the low 32 bits when `data_ack_64` is false).
    pub data_ack: Option<u64>,
    /// The `a` flag. Kept even without a DATA_ACK so that every parsed flag byte round-trips.
    pub data_ack_64: bool,
    pub mapping: Option<DssMapping>,
    /// The F flag: the mapping covers a DATA_FIN.
    pub data_fin: bool,
}

/// MP_TCPRST reasons, RFC 8684 §3.6.
pub mod rst_reason {
    pub const UNSPECIFIED: u8 = 0;
    pub const MPTCP_SPECIFIC: u8 = 1;
    pub const LACK_OF_RESOURCES: u8 = 2;
    pub const ADMIN_PROHIBITED: u8 = 3;
    pub const TOO_MUCH_OUTSTANDING: u8 = 4;
    pub const UNACCEPTABLE_PERFORMANCE: u8 = 5;
    pub const MIDDLEBOX_INTERFERENCE: u8 = 6;
}

/// One MPTCP option, one variant per subtype (and per MP_JOIN form).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MptcpOption {
    MpCapable(MpCapable),
    /// MP_JOIN on a SYN: the receiver's token and the sender's random nonce.
    MpJoinSyn {
        backup: bool,
        addr_id: u8,
        token: u32,
        nonce: u32,
    },
    /// MP_JOIN on a SYN/ACK: the leftmost 64 bits of the HMAC and the sender's nonce.
    MpJoinSynAck {
        backup: bool,
        addr_id: u8,
        hmac: u64,
        nonce: u32,
    },
    /// MP_JOIN on the third ACK: the leftmost 160 bits of the HMAC.
    MpJoinAck {
        hmac: [u8; 20],
    },
    Dss(Dss),
    /// ADD_ADDR, RFC 8684 §3.4.1. `echo` set means no HMAC is carried. The decoder takes the
    /// address family, the port and the HMAC's presence from the length alone (all eight
    /// combinations have distinct lengths) and `echo` from the E bit, so an RFC 6824-style
    /// announcement (no HMAC, E = 0) parses with `hmac: None`; judging such combinations is
    /// the engine's business.
    AddAddr {
        echo: bool,
        addr_id: u8,
        addr: IpAddr,
        port: Option<u16>,
        hmac: Option<u64>,
    },
    /// REMOVE_ADDR, RFC 8684 §3.4.2. At least one id on the wire; `emit` writes at most
    /// [`MAX_REMOVE_ADDR_IDS`].
    RemoveAddr {
        addr_ids: Vec<u8>,
    },
    /// MP_PRIO, RFC 8684 §3.3.8 (v1 has no address id; a v0-style one is kept if present).
    MpPrio {
        backup: bool,
        addr_id: Option<u8>,
    },
    /// MP_FAIL, RFC 8684 §3.7.
    MpFail {
        dsn: u64,
    },
    /// MP_FASTCLOSE, RFC 8684 §3.5.
    MpFastclose {
        receiver_key: u64,
    },
    /// MP_TCPRST, RFC 8684 §3.6: `flags` holds U, V, W, T (T = transient, 0x1).
    MpTcpRst {
        flags: u8,
        reason: u8,
    },
    /// A subtype braid does not know (e.g. MP_EXPERIMENTAL), kept as its bytes after the
    /// subtype nibble: `data[0]` is the low nibble of the subtype byte (0..=15), `data[1..]`
    /// are the bytes after it. A parsed `Unknown` always has `data.len() >= 1`; on emit an empty
    /// `data` writes a zero nibble, `data[0]`'s high nibble is dropped and at most 253 bytes
    /// are written (the option length is one byte).
    Unknown {
        subtype: u8,
        data: Vec<u8>,
    },
}

/// MPTCP option subtypes, RFC 8684 §7.2 (IANA "MPTCP Option Subtypes").
pub mod subtype {
    pub const MP_CAPABLE: u8 = 0x0;
    pub const MP_JOIN: u8 = 0x1;
    pub const DSS: u8 = 0x2;
    pub const ADD_ADDR: u8 = 0x3;
    pub const REMOVE_ADDR: u8 = 0x4;
    pub const MP_PRIO: u8 = 0x5;
    pub const MP_FAIL: u8 = 0x6;
    pub const MP_FASTCLOSE: u8 = 0x7;
    pub const MP_TCPRST: u8 = 0x8;
    pub const MP_EXPERIMENTAL: u8 = 0xf;
}

/// The DSS flag bits, RFC 8684 §3.3 (Figure 9).
pub mod dss_flag {
    /// A: a DATA_ACK is present.
    pub const DATA_ACK: u8 = 0x01;
    /// a: the DATA_ACK is 8 octets.
    pub const DATA_ACK_64: u8 = 0x02;
    /// M: DSN, subflow sequence number, data-level length (and checksum) are present.
    pub const MAPPING: u8 = 0x04;
    /// m: the DSN is 8 octets.
    pub const DSN_64: u8 = 0x08;
    /// F: DATA_FIN.
    pub const DATA_FIN: u8 = 0x10;
}

/// The MP_TCPRST flag bits (low nibble of the subtype byte), RFC 8684 §3.6.
pub mod rst_flag {
    pub const U: u8 = 0x8;
    pub const V: u8 = 0x4;
    pub const W: u8 = 0x2;
    /// T: the error is transient, the subflow may be retried.
    pub const TRANSIENT: u8 = 0x1;
}

/// The largest value of the one-byte option length.
const MAX_OPTION_LEN: usize = 255;
/// kind + length + subtype byte.
const HEADER_LEN: usize = 3;
/// REMOVE_ADDR ids that fit the one-byte length.
pub const MAX_REMOVE_ADDR_IDS: usize = MAX_OPTION_LEN - HEADER_LEN;
/// Bytes of `Unknown::data` that fit the one-byte length.
pub const MAX_UNKNOWN_DATA: usize = MAX_OPTION_LEN - HEADER_LEN + 1;

impl MpCapable {
    /// Form 1, on the SYN: no key.
    pub fn syn(version: u8, flags: u8) -> MpCapable {
        MpCapable {
            version,
            flags,
            sender_key: None,
            receiver_key: None,
            data_len: None,
            checksum: None,
        }
    }

    /// Form 2, on the SYN/ACK: the sender's key.
    pub fn syn_ack(version: u8, flags: u8, sender_key: u64) -> MpCapable {
        MpCapable {
            sender_key: Some(sender_key),
            ..MpCapable::syn(version, flags)
        }
    }

    /// Form 3, on the third ACK: both keys.
    pub fn ack(version: u8, flags: u8, sender_key: u64, receiver_key: u64) -> MpCapable {
        MpCapable {
            receiver_key: Some(receiver_key),
            ..MpCapable::syn_ack(version, flags, sender_key)
        }
    }

    /// Form 4, on the first data packet: both keys, the data-level length and, with
    /// checksums in use, the DSS checksum.
    pub fn ack_with_data(
        version: u8,
        flags: u8,
        sender_key: u64,
        receiver_key: u64,
        data_len: u16,
        checksum: Option<u16>,
    ) -> MpCapable {
        MpCapable {
            data_len: Some(data_len),
            checksum,
            ..MpCapable::ack(version, flags, sender_key, receiver_key)
        }
    }

    /// The option length of the form these fields select. The form is chosen by the first
    /// absent field in the order sender key, receiver key, data length, checksum; fields
    /// after an absent one are not written (a `receiver_key` without a `sender_key` is
    /// ignored, for example).
    fn wire_len(&self) -> usize {
        match (
            self.sender_key,
            self.receiver_key,
            self.data_len,
            self.checksum,
        ) {
            (None, ..) => 4,
            (Some(_), None, ..) => 12,
            (Some(_), Some(_), None, _) => 20,
            (Some(_), Some(_), Some(_), None) => 22,
            (Some(_), Some(_), Some(_), Some(_)) => 24,
        }
    }

    /// Whether the A flag (checksum required) is set.
    pub fn checksum_required(&self) -> bool {
        self.flags & Self::FLAG_CHECKSUM != 0
    }

    /// Whether the H flag (HMAC-SHA256) is set.
    pub fn hmac_sha256(&self) -> bool {
        self.flags & Self::FLAG_HMAC_SHA256 != 0
    }
}

impl DssMapping {
    //= rfc8684#3.3.1
    //= A data-level length of zero announces the infinite mapping (used on fallback).
    /// Whether this is the infinite mapping: a data-level length of 0.
    pub fn is_infinite(&self) -> bool {
        self.data_len == 0
    }

    /// The infinite mapping a host sends when it falls back to plain TCP after the handshake
    /// (RFC 8684 §3.7): `dsn` is the DSN of the first byte the subflow carries from now on,
    /// the subflow sequence number and length are 0, and the checksum field, when checksums
    /// are in use, is 0 as well.
    pub fn infinite(dsn: u64, with_checksum: bool) -> DssMapping {
        DssMapping {
            dsn,
            dsn_64: true,
            subflow_seq: 0,
            data_len: 0,
            checksum: with_checksum.then_some(0),
        }
    }

    /// The option bytes the mapping takes (DSN, subflow sequence number, length, checksum).
    fn wire_len(&self) -> usize {
        (if self.dsn_64 { 8 } else { 4 }) + 4 + 2 + if self.checksum.is_some() { 2 } else { 0 }
    }
}

impl Dss {
    /// The flag byte these fields encode.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.data_ack.is_some() {
            f |= dss_flag::DATA_ACK;
        }
        if self.data_ack_64 {
            f |= dss_flag::DATA_ACK_64;
        }
        if let Some(m) = &self.mapping {
            f |= dss_flag::MAPPING;
            if m.dsn_64 {
                f |= dss_flag::DSN_64;
            }
        }
        if self.data_fin {
            f |= dss_flag::DATA_FIN;
        }
        f
    }

    fn wire_len(&self) -> usize {
        let ack = match self.data_ack {
            None => 0,
            Some(_) if self.data_ack_64 => 8,
            Some(_) => 4,
        };
        4 + ack + self.mapping.as_ref().map_or(0, DssMapping::wire_len)
    }
}

impl MptcpOption {
    /// The number of bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            MptcpOption::MpCapable(c) => c.wire_len(),
            MptcpOption::MpJoinSyn { .. } => 12,
            MptcpOption::MpJoinSynAck { .. } => 16,
            MptcpOption::MpJoinAck { .. } => 24,
            MptcpOption::Dss(d) => d.wire_len(),
            MptcpOption::AddAddr {
                addr, port, hmac, ..
            } => {
                4 + match addr {
                    IpAddr::V4(_) => 4,
                    IpAddr::V6(_) => 16,
                } + if port.is_some() { 2 } else { 0 }
                    + if hmac.is_some() { 8 } else { 0 }
            }
            MptcpOption::RemoveAddr { addr_ids } => {
                HEADER_LEN + addr_ids.len().min(MAX_REMOVE_ADDR_IDS)
            }
            MptcpOption::MpPrio { addr_id, .. } => {
                HEADER_LEN + if addr_id.is_some() { 1 } else { 0 }
            }
            MptcpOption::MpFail { .. } | MptcpOption::MpFastclose { .. } => 12,
            MptcpOption::MpTcpRst { .. } => 4,
            MptcpOption::Unknown { data, .. } => {
                HEADER_LEN + data.len().clamp(1, MAX_UNKNOWN_DATA) - 1
            }
        }
    }

    /// The option's subtype nibble.
    pub fn subtype(&self) -> u8 {
        match self {
            MptcpOption::MpCapable(_) => subtype::MP_CAPABLE,
            MptcpOption::MpJoinSyn { .. }
            | MptcpOption::MpJoinSynAck { .. }
            | MptcpOption::MpJoinAck { .. } => subtype::MP_JOIN,
            MptcpOption::Dss(_) => subtype::DSS,
            MptcpOption::AddAddr { .. } => subtype::ADD_ADDR,
            MptcpOption::RemoveAddr { .. } => subtype::REMOVE_ADDR,
            MptcpOption::MpPrio { .. } => subtype::MP_PRIO,
            MptcpOption::MpFail { .. } => subtype::MP_FAIL,
            MptcpOption::MpFastclose { .. } => subtype::MP_FASTCLOSE,
            MptcpOption::MpTcpRst { .. } => subtype::MP_TCPRST,
            MptcpOption::Unknown { subtype, .. } => subtype & 0x0f,
        }
    }

    /// The option encoded into a fresh vector (`buffer_len` bytes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}
