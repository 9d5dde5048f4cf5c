//! Wire formats: zero-copy packet views and typed representations (smoltcp's pattern).
//!
//! Every `Packet<T: AsRef<[u8]>>` view has a `new_checked` constructor after which no accessor
//! can panic; every `Repr` has `parse`, `emit` and `buffer_len`. Parsing never panics and
//! rejects malformed input with a typed [`Error`].

pub mod checksum;
pub mod ip;
pub mod mptcp;
pub mod packet;
pub mod tcp;

pub use ip::{IpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};
pub use mptcp::MptcpOption;
pub use packet::{emit_tcp_packet, emit_tcp_packet_parts, parse_tcp_packet, Payload, TcpSegment};
pub use tcp::{MptcpOptions, TcpFlags, TcpOptions, TcpPacket, TcpRepr, Timestamps, UnknownOption};

/// Why a packet or option could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the structure it should hold.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field disagrees with the structure it describes.
    #[error("bad length in {what}: {len}")]
    BadLength { what: &'static str, len: usize },
    /// A field holds a value the format does not allow.
    #[error("malformed {what}: {why}")]
    Malformed {
        what: &'static str,
        why: &'static str,
    },
    /// An IPv4/IPv6/TCP checksum does not verify.
    #[error("bad {what} checksum")]
    Checksum { what: &'static str },
    /// The output buffer is too small for what is being emitted.
    #[error("buffer too small for {what}: need {need}, have {have}")]
    BufferTooSmall {
        what: &'static str,
        need: usize,
        have: usize,
    },
}

/// The result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;
