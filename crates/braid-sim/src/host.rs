//! A simulated host: one braid [`Endpoint`] with one address per interface, plus a small
//! application that sends a reproducible stream, receives and hashes everything, and records
//! when each byte was delivered. Both ends of every `braid sim` scenario are `Host`s.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use braid_proto::endpoint::{ConnectOptions, Error as EndpointError, ListenOptions};
use braid_proto::SubflowSnapshot;
use braid_proto::{ConnectionHandle, Duration, Endpoint, Event, Instant, TcpState};

use crate::stream::{PatternStream, Tally};
use crate::Node;

/// What the application on a host does.
#[derive(Debug, Clone)]
pub enum AppRole {
    /// Open a connection from `local` to `remote` at time zero.
    Client {
        local: SocketAddr,
        remote: SocketAddr,
        options: ConnectOptions,
    },
    /// Accept connections on `local`.
    Server {
        local: SocketAddr,
        options: ListenOptions,
    },
}

/// Progress and results of one host's application.
#[derive(Debug, Clone, Default)]
pub struct AppStats {
    /// Bytes of the pattern stream accepted by the endpoint, and their hash.
    pub sent: Tally,
    /// Bytes read from the connection, and their hash.
    pub received: Tally,
    /// When the connection was opened (client) or accepted (server).
    pub started: Option<Instant>,
    /// When the first and the last byte were read.
    pub first_byte: Option<Instant>,
    pub last_byte: Option<Instant>,
    /// The peer closed its direction (read returned end of stream).
    pub eof: bool,
    /// The connection has closed; `error` says why if it was not clean.
    pub closed: bool,
    pub error: Option<String>,
    /// (time, cumulative bytes received), one sample per read.
    pub delivery: Vec<(Instant, u64)>,
    /// The connection ran MPTCP (negotiated, not fallen back), as last seen while open.
    pub mptcp: bool,
    /// The longest interval in which no new in-order byte reached the application, from the
    /// connection's start (connect or accept) to the last byte read.
    pub max_gap: Duration,
    /// Every subflow of the connection, as last seen while the connection existed.
    pub subflows: Vec<SubflowStats>,
}

/// One subflow of a host's connection (a snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct SubflowStats {
    /// Subflow id (0: the initial subflow).
    pub id: usize,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// MPTCP address ids (local, remote), 0 for the initial subflow.
    pub local_id: u8,
    pub remote_id: u8,
    pub backup: bool,
    pub state: TcpState,
    /// Subflow-level bytes sent at least once, acknowledged, and received in order.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
    /// Retransmission timeouts, fast recoveries entered, and fast recoveries undone as
    /// spurious.
    pub timeouts: u64,
    pub recoveries: u64,
    pub spurious_recoveries: u64,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: usize,
    pub ssthresh: usize,
    pub mss: usize,
}

impl From<&SubflowSnapshot> for SubflowStats {
    fn from(s: &SubflowSnapshot) -> SubflowStats {
        SubflowStats {
            id: s.id,
            local: Some(s.local),
            remote: Some(s.remote),
            local_id: s.local_id,
            remote_id: s.remote_id,
            backup: s.backup,
            state: s.state,
            bytes_sent: s.bytes_sent,
            bytes_acked: s.bytes_acked,
            bytes_received: s.bytes_received,
            retransmits: s.retransmits,
            timeouts: s.timeouts,
            recoveries: s.recoveries,
            spurious_recoveries: s.spurious_recoveries,
            srtt: s.rtt,
            rto: s.rto,
            cwnd: s.cwnd,
            ssthresh: s.ssthresh,
            mss: s.mss,
        }
    }
}

/// A host node for [`crate::Network`].
pub struct Host {
    endpoint: Endpoint,
    /// Interface `i` has address `addrs[i]`.
    addrs: Vec<IpAddr>,
    role: AppRole,
    started: bool,
    conn: Option<ConnectionHandle>,
    /// Bytes to send on the connection before closing it.
    to_send: u64,
    pattern: PatternStream,
    /// Pattern bytes generated but not yet accepted by the endpoint.
    pending: Vec<u8>,
    pending_off: usize,
    send_closed: bool,
    record_delivery: bool,
    stats: AppStats,
    scratch: Vec<u8>,
    /// Where `poll_transmit` writes each packet (allocated once, not zeroed per call).
    tx_buf: Vec<u8>,
    out: VecDeque<(usize, Vec<u8>)>,
    /// Subflows (local, remote) the client adds once connected (MP_JOIN).
    joins: Vec<(SocketAddr, SocketAddr)>,
}

const CHUNK: usize = 64 * 1024;

impl Host {
    /// A host with `addrs[i]` on interface `i` that plays `role` and sends `to_send` bytes of
    /// the pattern stream on its connection, then closes it.
    pub fn new(endpoint: Endpoint, addrs: Vec<IpAddr>, role: AppRole, to_send: u64) -> Self {
        Host {
            endpoint,
            addrs,
            role,
            started: false,
            conn: None,
            to_send,
            pattern: PatternStream::new(),
            pending: Vec::new(),
            pending_off: 0,
            send_closed: false,
            record_delivery: true,
            stats: AppStats::default(),
            scratch: vec![0; CHUNK],
            tx_buf: vec![0; 65536],
            out: VecDeque::new(),
            joins: Vec::new(),
        }
    }

    /// Once connected (client role), add a subflow from `local` to `remote`.
    pub fn add_join(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.joins.push((local, remote));
    }

    /// Keep (or not) a delivery sample per read, for gap analysis and plots.
    pub fn set_record_delivery(&mut self, on: bool) {
        self.record_delivery = on;
    }

    pub fn stats(&self) -> &AppStats {
        &self.stats
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// The application's connection, once it exists.
    pub fn connection(&self) -> Option<ConnectionHandle> {
        self.conn
    }

    /// Both directions are finished: everything sent, the peer's end of stream read, closed.
    pub fn done(&self) -> bool {
        self.stats.closed || (self.stats.eof && self.send_closed)
    }

    fn start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        self.started = true;
        match self.role.clone() {
            AppRole::Client {
                local,
                remote,
                options,
            } => match self.endpoint.connect(now, local, remote, options) {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.stats.started = Some(now);
                }
                Err(e) => {
                    self.stats.closed = true;
                    self.stats.error = Some(format!("connect: {e}"));
                }
            },
            AppRole::Server { local, options } => {
                if let Err(e) = self.endpoint.listen(local, options) {
                    self.stats.closed = true;
                    self.stats.error = Some(format!("listen: {e}"));
                }
            }
        }
    }

    /// Run the application until it can make no more progress.
    fn run_app(&mut self, now: Instant) {
        self.start(now);
        self.handle_events(now);
        let Some(conn) = self.conn else { return };
        if self.stats.closed {
            return;
        }
        self.stats.mptcp = self.endpoint.is_mptcp(conn);
        self.read_all(now, conn);
        self.write_all(conn);
        self.snapshot_subflows(conn);
        // Reading the last bytes or closing may have ended the connection: its Closed event
        // is queued now. (Reads and writes run to exhaustion, so nothing else needs a rerun.)
        self.handle_events(now);
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::Connected(conn) if Some(conn) == self.conn => {
                    for (local, remote) in std::mem::take(&mut self.joins) {
                        if let Err(e) = self.endpoint.add_subflow(now, conn, local, remote, false) {
                            // Without MPTCP (fallback) there is nothing to join.
                            if self.endpoint.is_mptcp(conn) {
                                self.stats
                                    .error
                                    .get_or_insert_with(|| format!("add_subflow: {e}"));
                            }
                        }
                    }
                }
                Event::Accepted { conn, .. } if self.conn.is_none() => {
                    self.conn = Some(conn);
                    self.stats.started = Some(now);
                }
                Event::Closed { conn, error, info } if Some(conn) == self.conn => {
                    self.stats.closed = true;
                    // The last picture, the final bytes of every subflow.
                    self.stats.subflows = info.subflows.iter().map(SubflowStats::from).collect();
                    if let Some(e) = error {
                        self.stats.error = Some(e.to_string());
                    } else {
                        // A clean close: the peer's end of stream came with it.
                        self.stats.eof = true;
                    }
                }
                _ => {}
            }
        }
    }

    fn read_all(&mut self, now: Instant, conn: ConnectionHandle) {
        while !self.stats.eof {
            match self.endpoint.read(conn, &mut self.scratch) {
                Ok(0) => self.stats.eof = true,
                Ok(n) => {
                    let data = &self.scratch[..n];
                    self.stats.received.update(data);
                    if self.stats.first_byte.is_none() {
                        self.stats.first_byte = Some(now);
                    }
                    if let Some(prev) = self.stats.last_byte.or(self.stats.started) {
                        self.stats.max_gap = self.stats.max_gap.max(now - prev);
                    }
                    self.stats.last_byte = Some(now);
                    if self.record_delivery {
                        self.stats.delivery.push((now, self.stats.received.bytes()));
                    }
                }
                // WouldBlock: nothing yet. UnknownConnection: the read that emptied the
                // buffer of a closed connection ended it; its Closed event follows.
                Err(EndpointError::WouldBlock | EndpointError::UnknownConnection) => break,
                Err(e) => {
                    self.stats.error.get_or_insert_with(|| format!("read: {e}"));
                    break;
                }
            }
        }
    }

    fn write_all(&mut self, conn: ConnectionHandle) {
        loop {
            if self.pending_off == self.pending.len() {
                let left = self.to_send - self.stats.sent.bytes();
                if left == 0 {
                    if !self.send_closed {
                        if let Err(e) = self.endpoint.close(conn) {
                            self.stats
                                .error
                                .get_or_insert_with(|| format!("close: {e}"));
                        }
                        self.send_closed = true;
                    }
                    return;
                }
                let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                self.pending.resize(n, 0);
                self.pattern.fill(&mut self.pending);
                self.pending_off = 0;
            }
            match self.endpoint.write(conn, &self.pending[self.pending_off..]) {
                Ok(0) | Err(EndpointError::WouldBlock) => return,
                Ok(n) => {
                    let off = self.pending_off;
                    self.stats.sent.update(&self.pending[off..off + n]);
                    self.pending_off += n;
                }
                Err(e) => {
                    self.stats
                        .error
                        .get_or_insert_with(|| format!("write: {e}"));
                    return;
                }
            }
        }
    }

    /// Records every subflow's state while the connection still exists.
    fn snapshot_subflows(&mut self, conn: ConnectionHandle) {
        if let Some(snap) = self.endpoint.snapshot(conn) {
            self.stats.subflows = snap.subflows.iter().map(SubflowStats::from).collect();
        }
    }

    fn drain_transmits(&mut self, now: Instant) {
        while let Some(t) = self.endpoint.poll_transmit(now, &mut self.tx_buf) {
            let iface = self.addrs.iter().position(|a| *a == t.src).unwrap_or(0);
            self.out.push_back((iface, self.tx_buf[..t.len].to_vec()));
        }
    }
}

impl Node for Host {
    fn handle_packet(&mut self, now: Instant, _iface: usize, packet: &[u8]) {
        self.endpoint.handle_packet(now, packet);
        self.run_app(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        self.start_if_idle(now);
        if self.out.is_empty() {
            self.drain_transmits(now);
        }
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.started {
            return Some(Instant::ZERO);
        }
        self.endpoint.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.started {
            self.endpoint.handle_timeout(now);
        }
        self.run_app(now);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Host {
    fn start_if_idle(&mut self, now: Instant) {
        if !self.started {
            self.run_app(now);
        }
    }
}
