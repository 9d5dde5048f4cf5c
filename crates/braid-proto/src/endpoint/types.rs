//! The endpoint's public types: its configuration, options, events, errors and counters.

use super::*;

/// Identifies a connection inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// Endpoint-wide configuration.
#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    /// TCP engine configuration used for every connection (buffers, MSS, CC, ...).
    pub tcp: crate::tcp::TcpConfig,
    /// Ask for DSS checksums on MPTCP connections (Linux's `net.mptcp.checksum_enabled`).
    pub mptcp_checksum: bool,
    /// Packet scheduler of MPTCP connections.
    pub scheduler: crate::sched::SchedulerKind,
    /// Path-manager endpoints and limits (`ip mptcp endpoint` / `limits`); changed at run
    /// time with [`Endpoint::endpoint_add`] and friends.
    pub pm_table: EndpointTable,
    /// The path manager each MPTCP connection gets ([`PmFactory::kernel`] by default).
    pub path_manager: PmFactory,
    /// Local addresses a subflow towards a peer's announced address may leave from,
    /// besides the endpoints' and the connection's own.
    pub local_addrs: Vec<IpAddr>,
    /// ADD_ADDR retransmission timeout (`None`: Linux's 120 s).
    pub add_addr_timeout: Option<Duration>,
    /// The most bytes all connections together invite their peers to send (the sum of
    /// the receive windows they advertise), as Linux's `tcp_mem` bounds its sockets: each
    /// connection's window is held to an equal share of it, at least
    /// [`MIN_WINDOW_SHARE`], never beyond its own buffer. A packet device's queue in front
    /// of the endpoint holds what peers send until the endpoint reads it; a budget that
    /// fits that queue keeps it from overflowing however many connections there are.
    /// `None` (the default): each connection's buffer is its only bound.
    pub recv_budget: Option<usize>,
    /// This endpoint's share of the connections when several serve the same addresses,
    /// one per worker (see [`Shard`] and [`Endpoint::handle_packet_sharded`]); the
    /// default is the only worker.
    pub shard: Shard,
}

/// The smallest receive window a connection's share of [`EndpointConfig::recv_budget`]
/// comes to, however many connections there are: a few full segments, so that ACKs keep
/// coming and fast retransmit still works.
pub const MIN_WINDOW_SHARE: u64 = 16 * 1024;

/// A path-manager event of one connection, for a monitor (`braid monitor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmNotice {
    /// The connection.
    pub conn: ConnectionHandle,
    /// Its local MPTCP token (what the kernel's events carry).
    pub token: u32,
    /// What happened.
    pub event: PmEvent,
}

/// Options for an active open.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Negotiate MPTCP (MP_CAPABLE on the SYN; plain TCP if the peer does not answer it).
    pub mptcp: bool,
}

/// Options for a listener.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Accept MP_CAPABLE SYNs as MPTCP (plain SYNs are still accepted as plain TCP).
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
    /// The interface the peer's packets between the same two addresses last arrived on
    /// (given to [`Endpoint::handle_packet_on`]); `None` when none did.
    pub iface: Option<usize>,
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
    /// A subflow asked for with [`Endpoint::request_subflow`] could not be opened: the
    /// connection is plain TCP or fell back ([`Error::NotMptcp`]), closed first, or the
    /// join itself failed (the error [`Endpoint::add_subflow`] would have returned).
    SubflowFailed {
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        error: Error,
    },
    /// The connection is fully closed (`error` is None for a clean close) and its handle is
    /// no longer valid after this event. `info` is its last picture, taken as it closed
    /// (final per-subflow bytes included).
    Closed {
        conn: ConnectionHandle,
        error: Option<ConnectionError>,
        info: Box<ConnSnapshot>,
    },
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
    /// The peer set C in MP_CAPABLE: it takes no subflows to its initial address and port.
    #[error("the peer accepts no more subflows to its initial address (MP_CAPABLE C flag)")]
    JoinDenied,
    /// The connection is plain TCP (or fell back): it takes no subflows.
    #[error("the peer does not speak MPTCP")]
    NotMptcp,
    /// [`Endpoint::request_subflow`]: the connection already holds its most requests.
    #[error("too many subflow requests pending (at most {MAX_PENDING_JOINS})")]
    TooManyPendingJoins,
}

/// A snapshot of one connection, for `braid stat` and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    /// Smoothed RTT, once measured.
    pub rtt: Option<Duration>,
    /// Current retransmission timeout (with backoff).
    pub rto: Duration,
    pub cwnd: usize,
    /// `usize::MAX` before the first loss.
    pub ssthresh: usize,
    /// Application bytes sent at least once (first transmissions only; retransmissions are
    /// not counted again). Acknowledged bytes are `bytes_acked`.
    pub bytes_sent: u64,
    /// Application bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Application bytes received in order.
    pub bytes_received: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Send MSS.
    pub mss: usize,
}

/// Endpoint-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Packets that could not be parsed (bad checksum, truncated, not TCP...), dropped.
    pub malformed: u64,
    /// RSTs sent for segments matching no connection or listener.
    pub resets_sent: u64,
    /// Packets that could not be written into the caller's buffer (too small); the TCB
    /// recovers them by retransmission.
    pub emit_errors: u64,
    /// SYNs refused because too many handshakes were pending.
    pub syn_dropped: u64,
    /// MP_JOIN SYNs refused (with a RST carrying MP_TCPRST).
    pub join_refused: u64,
    /// MPTCP keys drawn again because their token was already in use.
    pub token_collisions: u64,
}
