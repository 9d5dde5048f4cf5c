//! One connection of the endpoint: its protocol engine (plain TCP or MPTCP) and what the
//! endpoint keeps beside it.

use super::*;

/// The protocol engine of one connection. Both are boxed: the endpoint's slots hold every
/// connection, so a slot's size is paid by each one (an inline TCB made every MPTCP
/// connection's slot 1.6 KB).
#[derive(Debug)]
pub(super) enum Proto {
    Tcp(Box<Tcb>),
    Mptcp(Box<MptcpConnection>),
}

/// Events of either engine, in one shape.
#[derive(Debug, Default)]
pub(super) struct ProtoEvents {
    pub(super) established: bool,
    pub(super) readable: bool,
    pub(super) writable: bool,
}

impl Proto {
    /// The TCB carrying the connection: the TCP connection itself, or the initial subflow
    /// (while it is open; after it closed, the first subflow still open: a peer's
    /// REMOVE_ADDR of address id 0 or a dead first path leaves the connection running).
    pub(super) fn tcb(&self) -> Option<&Tcb> {
        match self {
            Proto::Tcp(t) => Some(t),
            Proto::Mptcp(m) => (0..m.subflow_count())
                .filter_map(|i| m.subflow(i))
                .find(|t| t.state() != TcpState::Closed)
                .or_else(|| m.subflow(0)),
        }
    }
    /// Whether the TCB of subflow `id` (the TCP connection itself for plain TCP) owes an
    /// ACK at once ([`Tcb::urgent_ack`]).
    pub(super) fn urgent_ack(&self, id: usize) -> bool {
        match self {
            Proto::Tcp(t) => t.urgent_ack(),
            Proto::Mptcp(m) => m.subflow(id).is_some_and(Tcb::urgent_ack),
        }
    }
    pub(super) fn handle_segment(&mut self, now: Instant, repr: &TcpRepr, payload: &[u8]) {
        match self {
            Proto::Tcp(t) => {
                t.handle_segment(now, repr, payload);
            }
            Proto::Mptcp(m) => m.handle_segment(now, 0, repr, payload),
        }
    }
    /// Holds the receive window to `clamp` bytes (see [`EndpointConfig::recv_budget`]).
    pub(super) fn set_window_clamp(&mut self, clamp: Option<u64>) {
        match self {
            Proto::Tcp(t) => t.set_window_clamp(clamp),
            Proto::Mptcp(m) => m.set_window_clamp(clamp),
        }
    }
    pub(super) fn mptcp_mut(&mut self) -> Option<&mut MptcpConnection> {
        match self {
            Proto::Tcp(_) => None,
            Proto::Mptcp(m) => Some(m),
        }
    }
    /// Emits the next segment into `buf`: `None` when there is nothing to send.
    /// `paths` holds the (local, remote) addresses of each subflow.
    pub(super) fn emit(
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
                    wire::emit_tcp_packet_parts(
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
                    wire::emit_tcp_packet_parts(buf, l.ip(), r.ip(), HOP_LIMIT, &repr, payload),
                ))
            }
        }
    }
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Proto::Tcp(t) => t.poll_timeout(),
            Proto::Mptcp(m) => m.poll_timeout(),
        }
    }
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Proto::Tcp(t) => t.handle_timeout(now),
            Proto::Mptcp(m) => m.handle_timeout(now),
        }
    }
    pub(super) fn state(&self) -> TcpState {
        self.tcb().map_or(TcpState::Closed, Tcb::state)
    }
    /// Closed for good (CLOSED, or TIME-WAIT after which nothing is delivered).
    pub(super) fn is_done(&self) -> bool {
        match self {
            Proto::Tcp(t) => matches!(t.state(), TcpState::Closed | TcpState::TimeWait),
            Proto::Mptcp(m) => m.is_closed(),
        }
    }
    /// Fully closed, timers included: the slot can be freed.
    pub(super) fn is_gone(&self) -> bool {
        self.state() == TcpState::Closed
            && self.poll_timeout().is_none()
            && !self.has_pending_output()
    }
    pub(super) fn has_pending_output(&self) -> bool {
        match self {
            Proto::Tcp(t) => t.has_pending_output(),
            Proto::Mptcp(m) => m.has_pending_output(),
        }
    }
    pub(super) fn error(&self) -> Option<ConnectionError> {
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
    pub(super) fn read(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Proto::Tcp(t) => t.read(buf),
            Proto::Mptcp(m) => m.read(buf),
        }
    }
    pub(super) fn readable(&self) -> usize {
        match self {
            Proto::Tcp(t) => t.readable(),
            Proto::Mptcp(m) => m.readable(),
        }
    }
    pub(super) fn is_read_finished(&self) -> bool {
        match self {
            Proto::Tcp(t) => t.is_read_finished(),
            Proto::Mptcp(m) => m.is_read_finished(),
        }
    }
    pub(super) fn write(&mut self, data: &[u8]) -> usize {
        match self {
            Proto::Tcp(t) => t.write(data),
            Proto::Mptcp(m) => m.write(data),
        }
    }
    pub(super) fn close(&mut self) {
        match self {
            Proto::Tcp(t) => t.close(),
            Proto::Mptcp(m) => m.close(),
        }
    }
    pub(super) fn abort(&mut self) {
        match self {
            Proto::Tcp(t) => t.abort(),
            Proto::Mptcp(m) => m.abort(),
        }
    }
    pub(super) fn take_events(&mut self) -> ProtoEvents {
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
    pub(super) fn mptcp(&self) -> Option<&MptcpConnection> {
        match self {
            Proto::Tcp(_) => None,
            Proto::Mptcp(m) => Some(m),
        }
    }
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) proto: Proto,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    /// Passive open (from a listener).
    pub(super) passive: bool,
    /// The application knows the handle (active open, or Accepted was emitted).
    pub(super) known: bool,
    /// Closed was emitted: the handle is invalid for the application.
    pub(super) closed_reported: bool,
    /// The application called `close`.
    pub(super) app_closed: bool,
    /// (local, remote) of every subflow by id; the first is (`local`, `remote`).
    pub(super) paths: Vec<(SocketAddr, SocketAddr)>,
    /// Local addresses by MPTCP address id (id 0: the initial subflow's).
    pub(super) addr_ids: Vec<(u8, IpAddr)>,
    /// The path manager of an MPTCP connection.
    pub(super) pm: Option<Pm>,
    /// Subflows the application asked for, opened once the connection is fully
    /// established: (local, remote, backup).
    pub(super) pending_joins: Vec<(SocketAddr, SocketAddr, bool)>,
}

impl Conn {
    pub(super) fn new(proto: Proto, local: SocketAddr, remote: SocketAddr, passive: bool) -> Conn {
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
    pub(super) fn snapshot(&self) -> ConnSnapshot {
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
    pub(super) fn addr_id(&mut self, ip: IpAddr, table: &EndpointTable) -> u8 {
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
    pub(super) fn subflow_addrs(&self, id: SubflowId) -> Option<SubflowAddrs> {
        self.paths
            .get(id)
            .map(|&(local, remote)| SubflowAddrs { local, remote })
    }

    /// Subflow ids from `local` (any port) to `remote`.
    pub(super) fn subflows_between(&self, local: IpAddr, remote: SocketAddr) -> Vec<SubflowId> {
        self.paths
            .iter()
            .enumerate()
            .filter(|(_, (l, r))| l.ip() == local && *r == remote)
            .map(|(i, _)| i)
            .collect()
    }
}

/// A connection's path manager and its next deadline, read again after every event it
/// handles (the only way its timers change): the endpoint files the connection's deadline
/// after each packet, and asking the manager each time touched its state for nothing.
pub(super) struct Pm {
    inner: Box<dyn PathManager>,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for Pm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pm")
            .field("name", &self.inner.name())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Pm {
    pub(super) fn new(inner: Box<dyn PathManager>) -> Pm {
        let deadline = inner.poll_timeout();
        Pm { inner, deadline }
    }

    /// [`PathManager::handle`], then the deadline again.
    pub(super) fn handle(&mut self, now: Instant, ev: &PmEvent, out: &mut Vec<PmCommand>) {
        self.inner.handle(now, ev, out);
        self.deadline = self.inner.poll_timeout();
    }

    /// The manager's next deadline, as of the last event it handled.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}
