//! The MPTCP connection layer (RFC 8684): the data level above the subflow TCP engine.
//!
//! Sans-IO building blocks, each unit-tested on its own:
//! - [`dsn`]: 64-bit data sequence numbers, 32-bit expansion, data offsets;
//! - [`recv`]: data-level reassembly with the shared receive window and the DATA_FIN;
//! - [`send`]: the data-level send buffer, DATA_ACK processing, the peer's window;
//! - [`mapping`]: per-subflow DSS mappings, transmit and receive, DSS checksums;
//! - [`handshake`]: the MP_CAPABLE v1 state machine for both roles;
//! - [`connection`]: [`MptcpConnection`], which drives subflow TCBs with all of the above,
//!   with address signalling (ADD_ADDR, REMOVE_ADDR, MP_PRIO) in its `addr` child module.

pub mod connection;
pub mod dsn;
pub mod handshake;
pub mod mapping;
pub mod recv;
pub mod send;

pub use connection::{
    AddrError, AnnouncedAddr, ConnEvents, ConnPmEvent, JoinError, JoinParams, MptcpConfig,
    MptcpConnection, MptcpCounters, MptcpError, MptcpInfo, PeerAddr, SubflowId, SubflowInfo,
};
