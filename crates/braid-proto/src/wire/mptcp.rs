//! The MPTCP option (TCP option kind 30) codec, RFC 8684 §2 and §3.
//!
//! CONTRACT (implemented by the wire-mptcp work): `MptcpOption::parse` takes the whole option
//! bytes *including* kind (30) and length; `buffer_len` is the number of bytes `emit` writes
//! (kind and length included, no padding); `emit` writes exactly that many bytes.

use core::net::IpAddr;

/// TCP option kind of every MPTCP option.
pub const KIND: u8 = 30;

/// MP_CAPABLE, RFC 8684 §3.1. The four v1 forms are told apart by which fields are present:
/// SYN (no key), SYN/ACK (`sender_key`), third ACK (both keys), ACK with data (both keys,
/// `data_len`, optional `checksum`).
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
    /// Data-level length; 0 with a DSN of 0 is the infinite mapping.
    pub data_len: u16,
    /// The DSS checksum, present when checksums were negotiated.
    pub checksum: Option<u16>,
}

/// The Data Sequence Signal, RFC 8684 §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dss {
    /// DATA_ACK (64-bit, or the low 32 bits when `data_ack_64` is false).
    pub data_ack: Option<u64>,
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
    /// ADD_ADDR, RFC 8684 §3.4.1. `echo` set means no HMAC is carried.
    AddAddr {
        echo: bool,
        addr_id: u8,
        addr: IpAddr,
        port: Option<u16>,
        hmac: Option<u64>,
    },
    /// REMOVE_ADDR, RFC 8684 §3.4.2.
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
    /// subtype nibble.
    Unknown {
        subtype: u8,
        data: Vec<u8>,
    },
}

impl MptcpOption {
    /// Parse one option; `data` is the whole option including kind and length.
    pub fn parse(data: &[u8]) -> super::Result<MptcpOption> {
        let _ = data;
        todo!("wire-mptcp")
    }

    /// The number of bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        todo!("wire-mptcp")
    }

    /// Write the option into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let _ = buf;
        todo!("wire-mptcp")
    }
}
