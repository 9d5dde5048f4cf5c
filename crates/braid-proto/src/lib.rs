//! braid-proto: the sans-IO engine of braid, Multipath TCP v1 (RFC 8684) in Rust.
//!
//! Nothing in this crate performs I/O or reads a clock: every input carries `now`
//! ([`time::Instant`]) and randomness is injected as a seed. The same engine runs under the
//! deterministic simulator (`braid-sim`), the TUN runtime (`braid`) and the fuzzers.
//!
//! Layers, bottom up:
//! - [`error`]: the errors every layer shares ([`ConnectionError`]).
//! - [`wire`]: zero-copy views and typed `Repr`s of IPv4, IPv6, TCP and every MPTCP option.
//! - [`crypto`]: key → token / IDSN, MP_JOIN and ADD_ADDR HMACs, the DSS checksum.
//! - [`tcp`]: the subflow TCP engine (RFC 9293, 6298, 7323, 2018, 6675) with pluggable
//!   congestion control ([`cc`]).
//! - [`endpoint`]: demultiplexing of IP packets to connections, listeners.
//! - [`snapshot`]: one picture of a connection and its subflows for every consumer.
#![forbid(unsafe_code)]

pub mod cc;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod mptcp;
pub mod pm;
pub mod sched;
pub mod snapshot;
pub mod tcp;
pub mod time;
pub mod wire;

pub use cc::{CcAlgorithm, CongestionControl};
pub use endpoint::{
    ConnInfo, ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, EndpointStats, Error,
    Event, Handoff, ListenOptions, Shard, Transmit, MIN_WINDOW_SHARE,
};
pub use error::ConnectionError;
pub use snapshot::{ConnSnapshot, SubflowSnapshot};
pub use tcp::{TcpConfig, TcpState};
pub use time::{Duration, Instant};
