//! The endpoint: one per host. It owns every connection and listener, demultiplexes received
//! IP packets by 4-tuple (and, with MPTCP, by token), and hands out packets to send.
//!
//! CONTRACT (consumed by the simulator glue and the TUN runtime; implemented by the tcp work).
//! Driving loop, for any driver:
//! ```text
//! loop {
//!     endpoint.handle_packet(now, &ip_packet)       // for each packet received
//!     endpoint.handle_timeout(now)                  // when poll_timeout() has passed
//!     while let Some(t) = endpoint.poll_transmit(now, &mut buf) { send(&buf[..t.len]) }
//!     while let Some(ev) = endpoint.poll_event() { ... }
//!     app: endpoint.read / write / close on ConnectionHandles
//!     sleep until endpoint.poll_timeout() or the next packet
//! }
//! ```
//!
//! The `Endpoint` type (implemented by the tcp work) has exactly these methods:
//! ```text
//! Endpoint::new(config: EndpointConfig, seed: [u8; 32]) -> Endpoint      // seed: ISNs, keys, nonces
//! listen(&mut self, local: SocketAddr, opts: ListenOptions) -> Result<(), Error>  // unspecified ip = any
//! connect(&mut self, now, local: SocketAddr, remote: SocketAddr, opts: ConnectOptions)
//!     -> Result<ConnectionHandle, Error>                               // local port 0 = ephemeral
//! handle_packet(&mut self, now: Instant, packet: &[u8])                // one IPv4/IPv6 packet
//! poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>
//! poll_timeout(&self) -> Option<Instant>
//! handle_timeout(&mut self, now: Instant)
//! poll_event(&mut self) -> Option<Event>
//! read(&mut self, conn, buf: &mut [u8]) -> Result<usize, Error>       // Ok(0): peer closed (EOF);
//!                                                                      // Err(WouldBlock): nothing yet
//! write(&mut self, conn, data: &[u8]) -> Result<usize, Error>         // Err(WouldBlock): buffer full
//! close(&mut self, conn) -> Result<(), Error>                          // FIN after queued data
//! abort(&mut self, conn) -> Result<(), Error>                          // RST now
//! conn_info(&self, conn) -> Option<ConnInfo>                           // addrs, state, rtt, cwnd, bytes
//! ```

use core::net::{IpAddr, SocketAddr};

#[allow(unused_imports)]
use crate::time::Instant;

/// Identifies a connection inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// Endpoint-wide configuration.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// TCP engine configuration used for every connection (buffers, MSS, CC, ...).
    pub tcp: crate::tcp::TcpConfig,
}

/// Options for an active open.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Negotiate MPTCP (ignored until the connection layer lands; plain TCP then).
    pub mptcp: bool,
}

/// Options for a listener.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    pub mptcp: bool,
}

/// One IP packet ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
    /// Source address of the packet: selects the path / device it leaves on.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// When set, the buffer holds a GSO batch: consecutive packets of this size (the last
    /// may be shorter). `None`: exactly one packet.
    pub segment_size: Option<usize>,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A listener has a new established connection, ready for `read`/`write`.
    Accepted {
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// An active open completed.
    Connected(ConnectionHandle),
    /// New bytes can be read, or the peer closed its direction (read returns 0).
    Readable(ConnectionHandle),
    /// Send buffer space became available.
    Writable(ConnectionHandle),
    /// The connection is fully closed (`error` is None for a clean close) and its handle is
    /// no longer valid after this event.
    Closed {
        conn: ConnectionHandle,
        error: Option<ConnectionError>,
    },
}

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    #[error("connection refused")]
    Refused,
    #[error("connection reset by peer")]
    Reset,
    #[error("connection timed out")]
    TimedOut,
    #[error("connection aborted locally")]
    Aborted,
}

/// Errors of application calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("operation would block")]
    WouldBlock,
    #[error("no such connection")]
    UnknownConnection,
    #[error("address in use")]
    AddrInUse,
    #[error("invalid state for this operation")]
    InvalidState,
    #[error("connection closed: {0}")]
    Closed(ConnectionError),
}
