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
//! snapshot(&self, conn) -> Option<ConnSnapshot>                        // connection + every subflow
//! request_subflow(&mut self, now, conn, local, remote, backup) -> Result<(), Error>
//!                                          // join once fully established; else SubflowFailed
//! ```

//!
//! Behaviour of this implementation:
//! - A connection is plain TCP ([`Tcb`]) or MPTCP ([`MptcpConnection`], one subflow for
//!   now); every application call works the same on both. `ConnectOptions { mptcp: true }`
//!   opens with MP_CAPABLE; a listener with `ListenOptions { mptcp: true }` accepts an
//!   MP_CAPABLE SYN as MPTCP and a plain SYN as plain TCP (as a Linux MPTCP listener does).
//!   A connection that falls back stays an MPTCP connection running plain TCP
//!   ([`Endpoint::is_mptcp`] then says false).
//! - Local MPTCP tokens are unique among the endpoint's connections: on a collision the key
//!   is drawn again (RFC 8684 §3.1). Demultiplexing is by 4-tuple; a SYN with MP_JOIN whose
//!   token names a local MPTCP connection becomes a subflow of it
//!   ([`MptcpConnection::accept_join`]), its 4-tuple then leading to that connection; an
//!   unknown token (`MPJoinNoTokenFound`) or a join the connection refuses is answered with
//!   a RST carrying MP_TCPRST and counted in [`EndpointStats::join_refused`].
//!   [`Endpoint::add_subflow`] starts a join from the client side (outside the path
//!   manager's accounting).
//! - Path management (RFC 8684 §3.4, the kernel's model): every MPTCP connection gets a
//!   [`PathManager`] from [`EndpointConfig::path_manager`] (the kernel's in-kernel manager by
//!   default), configured from [`EndpointConfig::pm_table`] (endpoints and limits). The
//!   connection's events (established, ADD_ADDR / REMOVE_ADDR received, subflows
//!   established / closed, MP_PRIO) go to it, and its commands (announce, remove, create /
//!   destroy a subflow, set backup) are carried out at once; incoming joins need its
//!   consent (the `subflows` limit). [`Endpoint::endpoint_add`], [`Endpoint::endpoint_delete`],
//!   [`Endpoint::endpoint_change`], [`Endpoint::endpoint_flush`], [`Endpoint::set_limits`] and
//!   [`Endpoint::set_pm_endpoints`] change the table and take effect on live connections;
//!   [`Endpoint::poll_pm_event`] drains the events for a monitor, tagged with the token.
//! - Demultiplexing is by (local, remote) socket address. A SYN for a listening port (an
//!   unspecified listener address matches every local address) creates a connection in
//!   SYN-RECEIVED; `Accepted` is emitted when the handshake completes. At most 1024
//!   handshakes are pending at once; further SYNs are dropped and counted.
//! - A segment for no connection and no listener gets a RST (RFC 9293 §3.10.7.1), never in
//!   reply to a RST; at most 64 such replies are queued.
//! - Malformed packets (bad checksum, truncated, not TCP, ...) are dropped and counted in
//!   [`EndpointStats::malformed`]; no input panics.
//! - ISNs, timestamp offsets and the first ephemeral port come from a ChaCha20 generator
//!   seeded with `seed`: the same seed and inputs give the same packets. Ephemeral ports are
//!   49152..=65535.
//! - `Closed` is emitted when the connection reaches CLOSED or TIME-WAIT and the application
//!   has read every received byte (at once on an error, and at CLOSED if the application
//!   closed without reading everything). A connection in TIME-WAIT keeps its
//!   4-tuple until the timer expires, but its handle is invalid after `Closed`.
//! - The MSS advertised is `TcpConfig::mss` on IPv4 and 20 bytes less on IPv6.

use core::net::{IpAddr, SocketAddr};
use std::collections::{HashMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub use crate::error::ConnectionError;
use crate::mptcp::{
    ConnPmEvent, JoinError, JoinParams, MptcpConfig, MptcpConnection, MptcpCounters, SubflowId,
};
use crate::pm::{
    EndpointFlags, EndpointTable, FlagChange, Limits, PathManager, PmCommand, PmContext,
    PmEndpoint, PmError, PmEvent, PmFactory, SubflowAddrs, SubflowError,
};
use crate::snapshot::{ConnSnapshot, SubflowSnapshot};
use crate::tcp::{Tcb, TcbParams, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::mptcp::{rst_reason, MptcpOption};
use crate::wire::{self, TcpFlags, TcpOptions, TcpRepr};

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

/// Most subflow requests ([`Endpoint::request_subflow`]) a connection holds at once.
pub const MAX_PENDING_JOINS: usize = 8;
/// Most handshakes pending on listeners at once (SYN flood bound).
const MAX_HALF_OPEN: usize = 1024;
/// Most queued RST replies to unknown segments.
const MAX_RST_QUEUE: usize = 64;
/// Hop limit / TTL of emitted packets.
const HOP_LIMIT: u8 = 64;
const EPHEMERAL_FIRST: u16 = 49152;

/// The protocol engine of one connection.
// The TCB stays inline: the connection slots are already heap-allocated, one per connection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Proto {
    Tcp(Tcb),
    Mptcp(Box<MptcpConnection>),
}

/// Events of either engine, in one shape.
#[derive(Debug, Default)]
struct ProtoEvents {
    established: bool,
    readable: bool,
    writable: bool,
}

impl Proto {
    /// The TCB carrying the connection: the TCP connection itself, or the initial subflow
    /// (while it is open; after it closed, the first subflow still open: a peer's
    /// REMOVE_ADDR of address id 0 or a dead first path leaves the connection running).
    fn tcb(&self) -> Option<&Tcb> {
        match self {
            Proto::Tcp(t) => Some(t),
            Proto::Mptcp(m) => (0..m.subflow_count())
                .filter_map(|i| m.subflow(i))
                .find(|t| t.state() != TcpState::Closed)
                .or_else(|| m.subflow(0)),
        }
    }
    fn handle_segment(&mut self, now: Instant, repr: &TcpRepr, payload: &[u8]) {
        match self {
            Proto::Tcp(t) => {
                t.handle_segment(now, repr, payload);
            }
            Proto::Mptcp(m) => m.handle_segment(now, 0, repr, payload),
        }
    }
    /// Holds the receive window to `clamp` bytes (see [`EndpointConfig::recv_budget`]).
    fn set_window_clamp(&mut self, clamp: Option<u64>) {
        match self {
            Proto::Tcp(t) => t.set_window_clamp(clamp),
            Proto::Mptcp(m) => m.set_window_clamp(clamp),
        }
    }
    fn mptcp_mut(&mut self) -> Option<&mut MptcpConnection> {
        match self {
            Proto::Tcp(_) => None,
            Proto::Mptcp(m) => Some(m),
        }
    }
    /// Emits the next segment into `buf`: `None` when there is nothing to send.
    /// `paths` holds the (local, remote) addresses of each subflow.
    fn emit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        paths: &[(SocketAddr, SocketAddr)],
    ) -> Option<(IpAddr, IpAddr, Result<usize, wire::Error>)> {
        let (l0, r0) = *paths.first()?;
        match self {
            Proto::Tcp(t) => {
                let seg = t.poll_segment(now)?;
                Some((
                    l0.ip(),
                    r0.ip(),
                    wire::emit_tcp_packet(
                        buf,
                        l0.ip(),
                        r0.ip(),
                        HOP_LIMIT,
                        &seg.repr,
                        t.payload(&seg),
                    ),
                ))
            }
            Proto::Mptcp(m) => {
                let (id, repr, payload) = m.poll_segment(now)?;
                let (l, r) = paths.get(id).copied().unwrap_or((l0, r0));
                Some((
                    l.ip(),
                    r.ip(),
                    wire::emit_tcp_packet(buf, l.ip(), r.ip(), HOP_LIMIT, &repr, &payload),
                ))
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Proto::Tcp(t) => t.poll_timeout(),
            Proto::Mptcp(m) => m.poll_timeout(),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Proto::Tcp(t) => t.handle_timeout(now),
            Proto::Mptcp(m) => m.handle_timeout(now),
        }
    }
    fn state(&self) -> TcpState {
        self.tcb().map_or(TcpState::Closed, Tcb::state)
    }
    /// Closed for good (CLOSED, or TIME-WAIT after which nothing is delivered).
    fn is_done(&self) -> bool {
        match self {
            Proto::Tcp(t) => matches!(t.state(), TcpState::Closed | TcpState::TimeWait),
            Proto::Mptcp(m) => m.is_closed(),
        }
    }
    /// Fully closed, timers included: the slot can be freed.
    fn is_gone(&self) -> bool {
        self.state() == TcpState::Closed
            && self.poll_timeout().is_none()
            && !self.has_pending_output()
    }
    fn has_pending_output(&self) -> bool {
        match self {
            Proto::Tcp(t) => t.has_pending_output(),
            Proto::Mptcp(m) => m.has_pending_output(),
        }
    }
    fn error(&self) -> Option<ConnectionError> {
        match self {
            Proto::Tcp(t) => t.error(),
            // Subflows still open carry on: no error yet.
            Proto::Mptcp(_) if self.tcb().is_some_and(|t| t.state() != TcpState::Closed) => None,
            //= rfc8684#3.3.3
            //= Both DATA_FINs exchanged and acknowledged: the connection closed cleanly,
            //   whatever ended its subflows (a dead path's subflow timing out or reset).
            Proto::Mptcp(m) if m.is_read_finished() && m.is_write_finished() => None,
            //= rfc8684#3.5
            //= MP_FASTCLOSE from the peer closed the whole connection: reported as such,
            //  not as a plain reset.
            Proto::Mptcp(m) if m.is_fast_closed_by_peer() => Some(ConnectionError::FastClosed),
            Proto::Mptcp(m) => m.subflow(0).and_then(Tcb::error).or_else(|| {
                // A data-level error that ended every subflow.
                (m.error().is_some() && m.is_closed()).then_some(ConnectionError::Reset)
            }),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Proto::Tcp(t) => t.read(buf),
            Proto::Mptcp(m) => m.read(buf),
        }
    }
    fn readable(&self) -> usize {
        match self {
            Proto::Tcp(t) => t.readable(),
            Proto::Mptcp(m) => m.readable(),
        }
    }
    fn is_read_finished(&self) -> bool {
        match self {
            Proto::Tcp(t) => t.is_read_finished(),
            Proto::Mptcp(m) => m.is_read_finished(),
        }
    }
    fn write(&mut self, data: &[u8]) -> usize {
        match self {
            Proto::Tcp(t) => t.write(data),
            Proto::Mptcp(m) => m.write(data),
        }
    }
    fn close(&mut self) {
        match self {
            Proto::Tcp(t) => t.close(),
            Proto::Mptcp(m) => m.close(),
        }
    }
    fn abort(&mut self) {
        match self {
            Proto::Tcp(t) => t.abort(),
            Proto::Mptcp(m) => m.abort(),
        }
    }
    fn take_events(&mut self) -> ProtoEvents {
        match self {
            Proto::Tcp(t) => {
                let e = t.take_events();
                ProtoEvents {
                    established: e.established,
                    readable: e.readable,
                    writable: e.writable,
                }
            }
            Proto::Mptcp(m) => {
                let e = m.take_events();
                ProtoEvents {
                    established: e.established,
                    readable: e.readable,
                    writable: e.writable,
                }
            }
        }
    }
    fn mptcp(&self) -> Option<&MptcpConnection> {
        match self {
            Proto::Tcp(_) => None,
            Proto::Mptcp(m) => Some(m),
        }
    }
}

#[derive(Debug)]
struct Conn {
    proto: Proto,
    local: SocketAddr,
    remote: SocketAddr,
    /// Passive open (from a listener).
    passive: bool,
    /// The application knows the handle (active open, or Accepted was emitted).
    known: bool,
    /// Closed was emitted: the handle is invalid for the application.
    closed_reported: bool,
    /// The application called `close`.
    app_closed: bool,
    /// (local, remote) of every subflow by id; the first is (`local`, `remote`).
    paths: Vec<(SocketAddr, SocketAddr)>,
    /// Local addresses by MPTCP address id (id 0: the initial subflow's).
    addr_ids: Vec<(u8, IpAddr)>,
    /// The path manager of an MPTCP connection.
    pm: Option<Box<dyn PathManager>>,
    /// Subflows the application asked for, opened once the connection is fully
    /// established: (local, remote, backup).
    pending_joins: Vec<(SocketAddr, SocketAddr, bool)>,
}

impl Conn {
    fn new(proto: Proto, local: SocketAddr, remote: SocketAddr, passive: bool) -> Conn {
        Conn {
            proto,
            local,
            remote,
            passive,
            known: !passive,
            closed_reported: false,
            app_closed: false,
            paths: vec![(local, remote)],
            addr_ids: vec![(0, local.ip())],
            pm: None,
            pending_joins: Vec::new(),
        }
    }

    /// The connection's picture now.
    fn snapshot(&self) -> ConnSnapshot {
        let t = self.proto.tcb();
        let of = |f: fn(&Tcb) -> u64| t.map_or(0, f);
        let mut snap = ConnSnapshot {
            local: self.local,
            remote: self.remote,
            state: self.proto.state(),
            mptcp: false,
            mptcp_requested: false,
            fallback: false,
            checksum: false,
            local_token: None,
            remote_denies_join: false,
            rtt: t.and_then(Tcb::rtt),
            bytes_sent: of(Tcb::bytes_sent),
            bytes_acked: of(Tcb::bytes_acked),
            bytes_received: of(Tcb::bytes_received),
            retransmits: of(Tcb::retransmits),
            counters: MptcpCounters::default(),
            subflows: Vec::new(),
        };
        match &self.proto {
            Proto::Tcp(t) => {
                snap.subflows = vec![SubflowSnapshot::of(0, self.local, self.remote, t)];
            }
            Proto::Mptcp(m) => {
                // Application bytes are data-level bytes.
                let i = m.info();
                snap.mptcp = m.is_mptcp();
                snap.mptcp_requested = true;
                snap.fallback = m.is_fallback();
                snap.checksum = i.csum_enabled;
                snap.local_token = snap.mptcp.then(|| m.local_token());
                snap.remote_denies_join = m.peer_denies_initial_join();
                snap.bytes_sent = i.bytes_sent;
                snap.bytes_acked = i.bytes_acked;
                snap.bytes_received = i.bytes_received;
                snap.retransmits = i.retransmits;
                snap.counters = m.counters();
                snap.subflows = SubflowSnapshot::all_of(m, &self.paths);
            }
        }
        snap
    }

    /// The address id of a local address: 0 for the initial subflow's, the endpoint's id
    /// for a path-manager endpoint, else the lowest id neither used nor an endpoint's.
    fn addr_id(&mut self, ip: IpAddr, table: &EndpointTable) -> u8 {
        if let Some((id, _)) = self.addr_ids.iter().find(|(_, a)| *a == ip) {
            return *id;
        }
        let id = match table.endpoints().iter().find(|e| e.addr == ip) {
            Some(e) => e.id,
            None => (1..=u8::MAX)
                .find(|i| table.get(*i).is_none() && !self.addr_ids.iter().any(|(x, _)| x == i))
                .unwrap_or(u8::MAX),
        };
        self.addr_ids.push((id, ip));
        id
    }

    /// The addresses of subflow `id`.
    fn subflow_addrs(&self, id: SubflowId) -> Option<SubflowAddrs> {
        self.paths
            .get(id)
            .map(|&(local, remote)| SubflowAddrs { local, remote })
    }

    /// Subflow ids from `local` (any port) to `remote`.
    fn subflows_between(&self, local: IpAddr, remote: SocketAddr) -> Vec<SubflowId> {
        self.paths
            .iter()
            .enumerate()
            .filter(|(_, (l, r))| l.ip() == local && *r == remote)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Most path-manager notices kept for [`Endpoint::poll_pm_event`].
const MAX_PM_NOTICES: usize = 1024;

/// The endpoint: all connections and listeners of one host. See the module docs for the
/// contract.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    rng: ChaCha20Rng,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), usize>,
    /// Local MPTCP tokens of live connections.
    tokens: HashMap<u32, usize>,
    /// 4-tuples of joined subflows: connection slot and subflow id.
    joins: HashMap<(SocketAddr, SocketAddr), (usize, SubflowId)>,
    /// MP_JOIN SYNs whose token matched no connection (Linux: MPJoinNoTokenFound).
    join_no_token: u64,
    listeners: Vec<(SocketAddr, ListenOptions)>,
    events: VecDeque<Event>,
    rst_queue: VecDeque<(IpAddr, IpAddr, TcpRepr)>,
    next_port: u16,
    /// Which connections may send and when each one's timer fires.
    agenda: agenda::Agenda,
    /// The interface each peer address's packets arrive on.
    routes: routes::Routes,
    half_open: usize,
    stats: EndpointStats,
    /// MP_TCPRST resets sent by the endpoint itself (refused joins).
    mp_rst_tx: u64,
    /// Counters of MPTCP connections already freed.
    retired: MptcpCounters,
    /// Path-manager events for a monitor.
    pm_notices: VecDeque<PmNotice>,
    /// Path-manager policies of listeners that have their own.
    listener_pms: Vec<(SocketAddr, PmFactory)>,
    /// The latest time the endpoint was given (path-manager commands run at it).
    now: Instant,
}

fn family_matches(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

impl Endpoint {
    /// A new endpoint. `seed` drives every random choice (ISNs, timestamp offsets, ports).
    pub fn new(config: EndpointConfig, seed: [u8; 32]) -> Endpoint {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let next_port = EPHEMERAL_FIRST + (rng.next_u32() % 16384) as u16;
        Endpoint {
            config,
            rng,
            conns: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::new(),
            tokens: HashMap::new(),
            joins: HashMap::new(),
            join_no_token: 0,
            listeners: Vec::new(),
            events: VecDeque::new(),
            rst_queue: VecDeque::new(),
            next_port,
            agenda: agenda::Agenda::default(),
            routes: routes::Routes::default(),
            half_open: 0,
            stats: EndpointStats::default(),
            mp_rst_tx: 0,
            retired: MptcpCounters::default(),
            pm_notices: VecDeque::new(),
            listener_pms: Vec::new(),
            now: Instant::ZERO,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Endpoint-wide counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// [`Endpoint::listen`] whose MPTCP connections get their own path-manager policy.
    pub fn listen_with_pm(
        &mut self,
        local: SocketAddr,
        opts: ListenOptions,
        pm: PmFactory,
    ) -> Result<(), Error> {
        self.listen(local, opts)?;
        self.listener_pms.push((local, pm));
        Ok(())
    }

    /// Accepts connections on `local` (an unspecified IP matches any local address).
    pub fn listen(&mut self, local: SocketAddr, opts: ListenOptions) -> Result<(), Error> {
        if self.listeners.iter().any(|(l, _)| *l == local) {
            return Err(Error::AddrInUse);
        }
        self.listeners.push((local, opts));
        Ok(())
    }

    fn mss_for(&self, ip: IpAddr) -> (u16, u16) {
        let cfg = &self.config.tcp;
        if ip.is_ipv4() {
            (cfg.mss, 536)
        } else {
            //= rfc9293#3.7.1
            //# the MSS excludes IP and TCP headers: 20 bytes less on IPv6 (default 1220 = 1280 - 60)
            (cfg.mss.saturating_sub(20).max(64), 1220)
        }
    }

    fn params(&mut self, local: SocketAddr, remote: SocketAddr) -> TcbParams {
        let (mss, default_mss) = self.mss_for(local.ip());
        TcbParams {
            local_port: local.port(),
            remote_port: remote.port(),
            //= rfc9293#3.4.1
            //# the ISN is unpredictable (here drawn from the endpoint's seeded ChaCha20 generator)
            iss: self.rng.next_u32(),
            ts_offset: self.rng.next_u32(),
            mss,
            default_mss,
        }
    }

    fn mptcp_config(&self) -> MptcpConfig {
        let tcp = self.config.tcp.clone();
        MptcpConfig {
            send_buffer: tcp.send_buffer,
            recv_buffer: tcp.recv_buffer,
            tcp,
            checksum: self.config.mptcp_checksum,
            scheduler: self.config.scheduler,
            // The path manager enforces the subflows limit; this is the hard cap.
            max_subflows: usize::from(crate::pm::MAX_LIMIT),
            add_addr_timeout: self
                .config
                .add_addr_timeout
                .unwrap_or(crate::time::Duration::from_secs(120)),
            ..MptcpConfig::default()
        }
    }

    /// A fresh MPTCP key whose token no live local connection uses.
    fn unique_key(&mut self) -> u64 {
        loop {
            //= rfc8684#3.1
            //= A key whose token collides with an existing local token is replaced by a
            //  new one (the token must identify the connection uniquely).
            let key = crate::crypto::generate_key(&mut self.rng);
            if !self.tokens.contains_key(&crate::crypto::key_token(key)) {
                return key;
            }
            self.stats.token_collisions += 1;
        }
    }

    /// Files a new connection; an MPTCP one gets a path manager of policy `pm` (else the
    /// endpoint's).
    fn insert_with_pm(&mut self, mut conn: Conn, pm: Option<&PmFactory>) -> usize {
        if conn.proto.mptcp().is_some() {
            let ctx = PmContext {
                table: &self.config.pm_table,
                local_addrs: &self.config.local_addrs,
                active: !conn.passive,
            };
            let factory = pm.unwrap_or(&self.config.path_manager);
            conn.pm = Some(factory.build(&ctx));
        }
        let key = (conn.local, conn.remote);
        let token = conn.proto.mptcp().map(MptcpConnection::local_token);
        let idx = match self.free.pop() {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        self.by_tuple.insert(key, idx);
        if let Some(t) = token {
            self.tokens.insert(t, idx);
        }
        self.touch(idx);
        idx
    }

    /// Opens a connection from `local` (port 0: an ephemeral port) to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        opts: ConnectOptions,
    ) -> Result<ConnectionHandle, Error> {
        self.connect_with_pm(now, local, remote, opts, None)
    }

    /// [`Endpoint::connect`] with its own path-manager policy (`None`: the endpoint's
    /// [`EndpointConfig::path_manager`]).
    pub fn connect_with_pm(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        opts: ConnectOptions,
        pm: Option<PmFactory>,
    ) -> Result<ConnectionHandle, Error> {
        self.now = self.now.max(now);
        if local.ip().is_unspecified() || !family_matches(local.ip(), remote.ip()) {
            return Err(Error::InvalidState);
        }
        let mut local = local;
        if local.port() == 0 {
            let mut found = None;
            for _ in 0..16384 {
                let p = self.next_port;
                self.next_port = if p == u16::MAX {
                    EPHEMERAL_FIRST
                } else {
                    p + 1
                };
                let cand = SocketAddr::new(local.ip(), p);
                if !self.by_tuple.contains_key(&(cand, remote))
                    && !self.listeners.iter().any(|(l, _)| l.port() == p)
                {
                    found = Some(cand);
                    break;
                }
            }
            local = found.ok_or(Error::AddrInUse)?;
        } else if self.by_tuple.contains_key(&(local, remote)) {
            return Err(Error::AddrInUse);
        }
        let params = self.params(local, remote);
        let proto = if opts.mptcp {
            let key = self.unique_key();
            Proto::Mptcp(Box::new(MptcpConnection::connect(
                &self.mptcp_config(),
                params,
                key,
            )))
        } else {
            Proto::Tcp(Tcb::connect(&self.config.tcp, params))
        };
        let idx = self.insert_with_pm(Conn::new(proto, local, remote, false), pm.as_ref());
        Ok(ConnectionHandle(idx))
    }

    /// Processes one received IPv4 or IPv6 packet. Malformed packets are dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle(now, None, packet);
    }

    /// [`Endpoint::handle_packet`] for a packet that arrived on interface `iface` (as the
    /// driver numbers its devices): replies between the same two addresses carry it in
    /// [`Transmit::iface`], so they leave the way the peer's packets came.
    pub fn handle_packet_on(&mut self, now: Instant, iface: usize, packet: &[u8]) {
        self.handle(now, Some(iface), packet);
    }

    fn handle(&mut self, now: Instant, iface: Option<usize>, packet: &[u8]) {
        self.now = self.now.max(now);
        let seg = match wire::parse_tcp_packet(packet) {
            Ok(s) => s,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if let Some(i) = iface {
            self.routes.learn(seg.ip.dst_addr(), seg.ip.src_addr(), i);
        }
        let local = SocketAddr::new(seg.ip.dst_addr(), seg.tcp.dst_port);
        let remote = SocketAddr::new(seg.ip.src_addr(), seg.tcp.src_port);
        if let Some(&idx) = self.by_tuple.get(&(local, remote)) {
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                c.proto.handle_segment(now, &seg.tcp, seg.payload);
            }
            self.sync(idx);
            return;
        }
        if let Some(&(idx, id)) = self.joins.get(&(local, remote)) {
            if let Some(m) = self
                .conns
                .get_mut(idx)
                .and_then(Option::as_mut)
                .and_then(|c| c.proto.mptcp_mut())
            {
                m.handle_segment(now, id, &seg.tcp, seg.payload);
            }
            self.sync(idx);
            return;
        }
        let f = seg.tcp.flags;
        if f.syn() && !f.ack() && !f.rst() {
            let has = |pred: fn(&MptcpOption) -> bool| seg.tcp.options.mptcp.iter().any(pred);
            let token = seg.tcp.options.mptcp.iter().find_map(|o| match o {
                MptcpOption::MpJoinSyn { token, .. } => Some(*token),
                _ => None,
            });
            if let Some(token) = token {
                let refused = match self.accept_join(now, local, remote, &seg.tcp, token) {
                    Ok(()) => return,
                    Err(None) => {
                        self.join_no_token += 1;
                        rst_reason::MPTCP_SPECIFIC
                    }
                    Err(Some(JoinError::Limit)) => rst_reason::ADMIN_PROHIBITED,
                    Err(Some(_)) => rst_reason::MPTCP_SPECIFIC,
                };
                //= rfc8684#3.2
                //= A SYN with MP_JOIN for a connection the receiver cannot join (unknown
                //  token, limit reached, not MPTCP) is answered with a RST carrying
                //  MP_TCPRST.
                self.stats.join_refused += 1;
                self.reset_unknown(local, remote, &seg.tcp, seg.payload.len(), Some(refused));
                return;
            }
            let listener = self.listeners.iter().find(|(l, _)| {
                l.port() == local.port() && (l.ip().is_unspecified() || l.ip() == local.ip())
            });
            let listen_mptcp = listener.is_some_and(|(_, o)| o.mptcp);
            let listener_pm = listener.and_then(|(l, _)| {
                self.listener_pms
                    .iter()
                    .find(|(a, _)| a == l)
                    .map(|(_, f)| f.clone())
            });
            if listener.is_some() && family_matches(local.ip(), remote.ip()) {
                if self.half_open >= MAX_HALF_OPEN {
                    self.stats.syn_dropped += 1;
                    return;
                }
                let params = self.params(local, remote);
                let mp_capable = has(|o| matches!(o, MptcpOption::MpCapable(_)));
                let proto = if listen_mptcp && mp_capable {
                    let key = self.unique_key();
                    MptcpConnection::accept(&self.mptcp_config(), params, now, &seg.tcp, key)
                        .map(|m| Proto::Mptcp(Box::new(m)))
                } else {
                    Tcb::accept(&self.config.tcp, params, now, &seg.tcp).map(Proto::Tcp)
                };
                if let Some(proto) = proto {
                    self.half_open += 1;
                    self.insert_with_pm(
                        Conn::new(proto, local, remote, true),
                        listener_pm.as_ref(),
                    );
                }
                return;
            }
        }
        self.reset_unknown(local, remote, &seg.tcp, seg.payload.len(), None);
    }

    /// Hands an MP_JOIN SYN to the connection owning `token`. `Err(None)`: no such token.
    fn accept_join(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        token: u32,
    ) -> Result<(), Option<JoinError>> {
        let idx = *self.tokens.get(&token).ok_or(None)?;
        let params = self.params(local, remote);
        let nonce = self.rng.next_u32();
        let c = self
            .conns
            .get_mut(idx)
            .and_then(Option::as_mut)
            .filter(|c| !c.closed_reported)
            .ok_or(None)?;
        let local_id = c.addr_id(local.ip(), &self.config.pm_table);
        // A local endpoint flagged backup makes the joins that arrive on it backups too
        // (our SYN/ACK says so with its B bit), as Linux's in-kernel manager does.
        let local_backup = self
            .config
            .pm_table
            .endpoints()
            .iter()
            .any(|e| e.addr == local.ip() && e.flags.backup());
        let addrs = SubflowAddrs { local, remote };
        let asked = match (
            c.proto.mptcp().map(MptcpConnection::is_mptcp),
            c.pm.as_mut(),
        ) {
            (Some(true), Some(pm)) => {
                let (backup, remote_id) = syn
                    .options
                    .mptcp
                    .iter()
                    .find_map(|o| match *o {
                        MptcpOption::MpJoinSyn {
                            backup, addr_id, ..
                        } => Some((backup, addr_id)),
                        _ => None,
                    })
                    .unwrap_or((false, 0));
                let mut out = Vec::new();
                let ev = PmEvent::JoinRequested {
                    addrs,
                    remote_id,
                    backup: backup || local_backup,
                };
                pm.handle(now, &ev, &mut out);
                //= rfc8684#3.2
                //= The path manager's subflows limit refuses joins beyond it.
                if out
                    .iter()
                    .any(|c| matches!(c, PmCommand::RefuseJoin { .. }))
                {
                    return Err(Some(JoinError::Limit));
                }
                true
            }
            _ => false,
        };
        let m = c.proto.mptcp_mut().ok_or(None)?;
        let id = match m.accept_join(now, params, syn, local_id, nonce, local_backup) {
            Ok(id) => id,
            Err(e) => {
                if asked {
                    if let Some(pm) = c.pm.as_mut() {
                        let ev = PmEvent::SubflowClosed {
                            addrs,
                            error: Some(SubflowError::Refused),
                        };
                        pm.handle(now, &ev, &mut Vec::new());
                    }
                }
                return Err(Some(e));
            }
        };
        c.paths.push((local, remote));
        debug_assert_eq!(c.paths.len(), id + 1);
        self.joins.insert((local, remote), (idx, id));
        self.sync(idx);
        Ok(())
    }

    /// Adds a subflow from `local` (port 0: an ephemeral port) to `remote` to an
    /// established MPTCP connection (MP_JOIN, RFC 8684 §3.2; client side).
    pub fn add_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<SubflowId, Error> {
        self.now = self.now.max(now);
        self.conn_mut(conn)?;
        self.open_subflow(conn.0, local, remote, None, backup)
    }

    /// Asks for a subflow from `local` (port 0: an ephemeral port) to `remote`, opened (as
    /// [`Endpoint::add_subflow`] does) once the connection runs MPTCP and is fully
    /// established: the peer DATA_ACKed data, or data from the peer arrived, or the
    /// application closed with nothing left to send. May be called right after
    /// [`Endpoint::connect`]. A request that cannot be carried out later ends in
    /// [`Event::SubflowFailed`]; at most [`MAX_PENDING_JOINS`] wait at once.
    ///
    /// Errors now: `UnknownConnection`, `NotMptcp` (a plain TCP connection),
    /// `InvalidState` (an unspecified local address or mixed address families),
    /// `TooManyPendingJoins`.
    pub fn request_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<(), Error> {
        self.now = self.now.max(now);
        let c = self.conn_mut(conn)?;
        if c.proto.mptcp().is_none() {
            return Err(Error::NotMptcp);
        }
        if local.ip().is_unspecified() || !family_matches(local.ip(), remote.ip()) {
            return Err(Error::InvalidState);
        }
        if c.pending_joins.len() >= MAX_PENDING_JOINS {
            return Err(Error::TooManyPendingJoins);
        }
        c.pending_joins.push((local, remote, backup));
        self.sync(conn.0);
        Ok(())
    }

    /// Opens the requested subflows of slot `idx` once the connection is fully established,
    /// or fails them with [`Event::SubflowFailed`] once it cannot be.
    fn run_pending_joins(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if c.pending_joins.is_empty() || c.closed_reported || !c.known {
            return;
        }
        let failure = match c.proto.mptcp() {
            None => Some(Error::NotMptcp),
            //= rfc8684#3.7
            //= A connection that fell back to plain TCP takes no further subflows.
            Some(m) if m.is_fallback() => Some(Error::NotMptcp),
            Some(_) if c.proto.is_done() => {
                Some(c.proto.error().map_or(Error::InvalidState, Error::Closed))
            }
            // Still in the handshake.
            Some(m) if !m.is_mptcp() => return,
            Some(m) => {
                // Fully established (as Linux's path manager waits for): until the peer
                // DATA_ACKed data or sent some (its DSS carrying a DATA_ACK), its
                // connection-level window is only a guess from the SYN/ACK, and data a new
                // subflow sends beyond the real one is dropped.
                let i = m.info();
                let send = m.data_send();
                let idle_closed = c.app_closed && send.una() >= send.end();
                if i.bytes_acked == 0 && i.bytes_received == 0 && !idle_closed {
                    return;
                }
                None
            }
        };
        let joins = std::mem::take(&mut c.pending_joins);
        for (local, remote, backup) in joins {
            let res = match failure {
                Some(e) => Err(e),
                None => self
                    .open_subflow(idx, local, remote, None, backup)
                    .map(|_| ()),
            };
            if let Err(error) = res {
                self.events.push_back(Event::SubflowFailed {
                    conn: ConnectionHandle(idx),
                    local,
                    remote,
                    error,
                });
            }
        }
    }

    /// [`Endpoint::add_subflow`] on slot `idx`; `ids` (local, remote) overrides the address
    /// ids (the path manager's choice), else the local one is derived and the remote one
    /// is 0.
    fn open_subflow(
        &mut self,
        idx: usize,
        local: SocketAddr,
        remote: SocketAddr,
        ids: Option<(u8, u8)>,
        backup: bool,
    ) -> Result<SubflowId, Error> {
        if local.ip().is_unspecified() || !family_matches(local.ip(), remote.ip()) {
            return Err(Error::InvalidState);
        }
        let local = self.free_local(local, remote)?;
        let params = self.params(local, remote);
        let nonce = self.rng.next_u32();
        let c = self
            .conns
            .get_mut(idx)
            .and_then(Option::as_mut)
            .filter(|c| !c.closed_reported)
            .ok_or(Error::UnknownConnection)?;
        let derived = c.addr_id(local.ip(), &self.config.pm_table);
        let (local_id, remote_id) = ids.unwrap_or((derived, 0));
        let m = c.proto.mptcp_mut().ok_or(Error::InvalidState)?;
        //= rfc8684#3.1
        //= A peer that set C on its MP_CAPABLE SYN or SYN/ACK gets no subflows towards the
        //  address and port that option came from.
        if m.peer_denies_initial_join() && remote == c.remote {
            return Err(Error::JoinDenied);
        }
        let id = m
            .add_subflow(
                params,
                JoinParams {
                    local_id,
                    remote_id,
                    backup,
                    nonce,
                },
            )
            .map_err(|_| Error::InvalidState)?;
        c.paths.push((local, remote));
        self.joins.insert((local, remote), (idx, id));
        Ok(id)
    }

    /// `local` with an ephemeral port when its port is 0; `AddrInUse` when the 4-tuple is
    /// taken.
    fn free_local(&mut self, local: SocketAddr, remote: SocketAddr) -> Result<SocketAddr, Error> {
        let taken = |ep: &Endpoint, l: SocketAddr| {
            ep.by_tuple.contains_key(&(l, remote)) || ep.joins.contains_key(&(l, remote))
        };
        if local.port() != 0 {
            return if taken(self, local) {
                Err(Error::AddrInUse)
            } else {
                Ok(local)
            };
        }
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            let cand = SocketAddr::new(local.ip(), p);
            if !taken(self, cand) && !self.listeners.iter().any(|(l, _)| l.port() == p) {
                return Ok(cand);
            }
        }
        Err(Error::AddrInUse)
    }

    fn reset_unknown(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        tcp: &TcpRepr,
        len: usize,
        mptcp_reason: Option<u8>,
    ) {
        //= rfc9293#3.10.7.1
        //# CLOSED: an incoming RST is discarded; otherwise send <SEQ=SEG.ACK><CTL=RST> if ACK is on, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        if tcp.flags.rst() || self.rst_queue.len() >= MAX_RST_QUEUE {
            return;
        }
        let f = tcp.flags;
        let (seq, ack, flags) = if f.ack() {
            (tcp.ack, 0, TcpFlags::RST)
        } else {
            let seg_len = len as u32 + u32::from(f.syn()) + u32::from(f.fin());
            (
                0,
                tcp.seq.wrapping_add(seg_len),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        let mut options = TcpOptions::default();
        if let Some(reason) = mptcp_reason {
            //= rfc8684#3.6
            //= MP_TCPRST on a RST gives the reason the subflow was refused.
            options
                .mptcp
                .push(MptcpOption::MpTcpRst { flags: 0, reason });
            self.mp_rst_tx += 1;
        }
        let repr = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 0,
            urgent: 0,
            options,
        };
        self.rst_queue.push_back((local.ip(), remote.ip(), repr));
    }

    /// Writes the next packet to send into `buf`. One packet per call.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.now = self.now.max(now);
        while let Some((src, dst, repr)) = self.rst_queue.pop_front() {
            match wire::emit_tcp_packet(buf, src, dst, HOP_LIMIT, &repr, &[]) {
                Ok(len) => {
                    self.stats.resets_sent += 1;
                    return Some(Transmit {
                        len,
                        src,
                        dst,
                        segment_size: None,
                        iface: self.routes.lookup(src, dst),
                    });
                }
                Err(_) => self.stats.emit_errors += 1,
            }
        }
        // Only connections that may have something to send are asked, each once per call
        // at most, in turns (one that sends goes to the back of the queue). A segment that
        // does not fit the caller's buffer is dropped (and counted): the TCB recovers it by
        // retransmission.
        let share = self.window_share();
        let mut tries = self.agenda.ready_len();
        while tries > 0 {
            tries -= 1;
            let idx = self.agenda.pop()?;
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            c.proto.set_window_clamp(share);
            let Some((src, dst, res)) = c.proto.emit(now, buf, &c.paths) else {
                // Nothing now: it is marked again when something changes (its timers
                // included).
                self.refresh_deadline(idx);
                continue;
            };
            self.sync(idx);
            match res {
                Ok(len) => {
                    return Some(Transmit {
                        len,
                        src,
                        dst,
                        segment_size: None,
                        iface: self.routes.lookup(src, dst),
                    })
                }
                Err(_) => self.stats.emit_errors += 1,
            }
        }
        None
    }

    /// Each connection's share of the receive budget, when there is one: the budget over
    /// the connections there are, at least [`MIN_WINDOW_SHARE`].
    fn window_share(&self) -> Option<u64> {
        let budget = self.config.recv_budget? as u64;
        let live = self.conns.len().saturating_sub(self.free.len()).max(1) as u64;
        Some((budget / live).max(MIN_WINDOW_SHARE))
    }

    /// The time of the earliest timer of any connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.agenda.next_deadline()
    }

    /// Fires due timers (only the connections whose deadline has come are visited).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for idx in self.agenda.due(now) {
            let mut out = Vec::new();
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                if !c.closed_reported {
                    if let Some(pm) = c.pm.as_mut() {
                        if pm.poll_timeout().is_some_and(|t| t <= now) {
                            pm.handle(now, &PmEvent::Timeout, &mut out);
                        }
                    }
                }
            }
            if !out.is_empty() {
                self.pm_execute(idx, out);
            }
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                if c.proto.poll_timeout().is_some_and(|t| t <= now) {
                    c.proto.handle_timeout(now);
                }
            }
            self.sync(idx);
        }
    }

    /// Files connection `idx`'s next deadline: its TCBs' and (until it is reported closed)
    /// its path manager's.
    fn refresh_deadline(&mut self, idx: usize) {
        let t = self.conns.get(idx).and_then(Option::as_ref).and_then(|c| {
            let pm =
                c.pm.as_ref()
                    .filter(|_| !c.closed_reported)
                    .and_then(|p| p.poll_timeout());
            [c.proto.poll_timeout(), pm].into_iter().flatten().min()
        });
        self.agenda.set_deadline(idx, t);
    }

    /// Connection `idx` may have something to send, and its timers may have moved.
    fn touch(&mut self, idx: usize) {
        self.agenda.mark(idx);
        self.refresh_deadline(idx);
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn conn_mut(&mut self, conn: ConnectionHandle) -> Result<&mut Conn, Error> {
        match self.conns.get_mut(conn.0).and_then(Option::as_mut) {
            Some(c) if c.known && !c.closed_reported => Ok(c),
            _ => Err(Error::UnknownConnection),
        }
    }

    /// Reads received bytes. `Ok(0)`: the peer closed its direction (EOF).
    pub fn read(&mut self, conn: ConnectionHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        let n = c.proto.read(buf);
        let res = if n > 0 || buf.is_empty() {
            Ok(n)
        } else if c.proto.is_read_finished() {
            Ok(0)
        } else if let Some(e) = c.proto.error() {
            Err(Error::Closed(e))
        } else if c.proto.is_done() {
            Ok(0)
        } else {
            Err(Error::WouldBlock)
        };
        self.sync(conn.0);
        res
    }

    /// Queues bytes for sending. `Err(WouldBlock)`: the send buffer is full.
    pub fn write(&mut self, conn: ConnectionHandle, data: &[u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        if let Some(e) = c.proto.error() {
            return Err(Error::Closed(e));
        }
        if c.app_closed
            || !matches!(
                c.proto.state(),
                TcpState::SynSent
                    | TcpState::SynReceived
                    | TcpState::Established
                    | TcpState::CloseWait
            )
        {
            return Err(Error::InvalidState);
        }
        if data.is_empty() {
            return Ok(0);
        }
        match c.proto.write(data) {
            0 => Err(Error::WouldBlock),
            n => {
                self.touch(conn.0);
                Ok(n)
            }
        }
    }

    /// Closes the sending direction (FIN after the queued data).
    pub fn close(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.app_closed = true;
        c.proto.close();
        self.sync(conn.0);
        Ok(())
    }

    /// Resets the connection now.
    pub fn abort(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.proto.abort();
        self.sync(conn.0);
        Ok(())
    }

    /// A snapshot of a connection, while its handle is valid.
    pub fn conn_info(&self, conn: ConnectionHandle) -> Option<ConnInfo> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        if !c.known || c.closed_reported {
            return None;
        }
        let t = c.proto.tcb()?;
        let mut info = ConnInfo {
            local: c.local,
            remote: c.remote,
            state: t.state(),
            rtt: t.rtt(),
            rto: t.rto(),
            cwnd: t.cwnd(),
            ssthresh: t.ssthresh(),
            bytes_sent: t.bytes_sent(),
            bytes_acked: t.bytes_acked(),
            bytes_received: t.bytes_received(),
            retransmits: t.retransmits(),
            mss: t.mss(),
        };
        if let Some(m) = c.proto.mptcp() {
            // Application bytes are data-level bytes.
            let i = m.info();
            info.bytes_sent = i.bytes_sent;
            info.bytes_acked = i.bytes_acked;
            info.bytes_received = i.bytes_received;
            info.retransmits = i.retransmits;
        }
        Some(info)
    }

    /// The picture of a connection and its subflows, while its handle is valid (the last
    /// one comes with [`Event::Closed`]).
    pub fn snapshot(&self, conn: ConnectionHandle) -> Option<ConnSnapshot> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        if !c.known || c.closed_reported {
            return None;
        }
        Some(c.snapshot())
    }

    /// The (local, remote) addresses of a connection's subflows by subflow id (the first is
    /// the connection's own), while its handle is valid.
    pub fn subflow_addrs(&self, conn: ConnectionHandle) -> Option<&[(SocketAddr, SocketAddr)]> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        (c.known && !c.closed_reported).then_some(c.paths.as_slice())
    }

    /// The TCB of a connection (read only; for an MPTCP connection the initial subflow, or
    /// once it closed the first subflow still open), for diagnostics and tests.
    pub fn tcb(&self, conn: ConnectionHandle) -> Option<&Tcb> {
        self.conns.get(conn.0)?.as_ref()?.proto.tcb()
    }

    /// The MPTCP connection behind a handle (read only), `None` for plain TCP.
    pub fn mptcp_connection(&self, conn: ConnectionHandle) -> Option<&MptcpConnection> {
        self.conns.get(conn.0)?.as_ref()?.proto.mptcp()
    }

    /// True when the connection runs MPTCP: negotiated and not fallen back. False for plain
    /// TCP, during the handshake, after a fallback, and for unknown handles.
    pub fn is_mptcp(&self, conn: ConnectionHandle) -> bool {
        self.mptcp_connection(conn)
            .is_some_and(MptcpConnection::is_mptcp)
    }

    /// MPTCP counters under the kernel's MIB names, summed over every MPTCP connection this
    /// endpoint has had (live and freed), plus the endpoint's own MP_TCPRST replies.
    pub fn counters(&self) -> MptcpCounters {
        let mut sum = self.retired;
        for m in self.conns.iter().flatten().filter_map(|c| c.proto.mptcp()) {
            sum.add(&m.counters());
        }
        sum.MPRstTx += self.mp_rst_tx;
        sum.MPJoinNoTokenFound += self.join_no_token;
        sum
    }

    /// Number of connection slots in use (including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.by_tuple.len()
    }

    /// Handles of every connection held (established, closing or in TIME-WAIT).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| ConnectionHandle(i))
    }

    /// Turns TCB events into application events and frees finished connections.
    fn sync(&mut self, idx: usize) {
        self.pm_round(idx);
        self.run_pending_joins(idx);
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let handle = ConnectionHandle(idx);
        let ev = c.proto.take_events();
        if ev.established && !c.closed_reported {
            if c.passive {
                if !c.known {
                    c.known = true;
                    self.half_open = self.half_open.saturating_sub(1);
                    self.events.push_back(Event::Accepted {
                        conn: handle,
                        local: c.local,
                        remote: c.remote,
                    });
                }
            } else {
                self.events.push_back(Event::Connected(handle));
            }
        }
        if c.known && !c.closed_reported {
            // Consecutive duplicates carry no news: keep the queue short.
            for (flag, e) in [
                (ev.readable, Event::Readable(handle)),
                (ev.writable, Event::Writable(handle)),
            ] {
                if flag && self.events.back() != Some(&e) {
                    self.events.push_back(e);
                }
            }
        }
        let state = c.proto.state();
        let done = c.proto.is_done();
        if done && !c.closed_reported {
            let error = c.proto.error();
            if !c.known {
                // An embryonic passive connection: nobody to tell.
                c.closed_reported = true;
                self.half_open = self.half_open.saturating_sub(1);
            } else if error.is_some()
                || c.proto.readable() == 0
                || (state == TcpState::Closed && c.app_closed)
            {
                c.closed_reported = true;
                self.events.push_back(Event::Closed {
                    conn: handle,
                    error,
                    info: Box::new(c.snapshot()),
                });
            }
        }
        // Keep the slot until a pending RST (abort) has gone out.
        if c.closed_reported && c.proto.is_gone() {
            let key = (c.local, c.remote);
            if let Some(m) = c.proto.mptcp() {
                self.retired.add(&m.counters());
                let token = m.local_token();
                if self.tokens.get(&token) == Some(&idx) {
                    self.tokens.remove(&token);
                }
            }
            self.by_tuple.remove(&key);
            for p in c.paths.iter().skip(1) {
                if self.joins.get(p).is_some_and(|&(i, _)| i == idx) {
                    self.joins.remove(p);
                }
            }
            self.conns[idx] = None;
            self.free.push(idx);
            self.agenda.set_deadline(idx, None);
            return;
        }
        self.touch(idx);
    }
}

mod agenda;
mod pm;
mod routes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_token_redraws_the_key() {
        let mut ep = Endpoint::new(EndpointConfig::default(), [5; 32]);
        let mut predict = ep.rng.clone();
        let first = crate::crypto::generate_key(&mut predict);
        ep.tokens.insert(crate::crypto::key_token(first), 999);
        let key = ep.unique_key();
        assert_ne!(key, first);
        assert_ne!(
            crate::crypto::key_token(key),
            crate::crypto::key_token(first)
        );
        assert_eq!(ep.stats().token_collisions, 1);
    }
}
