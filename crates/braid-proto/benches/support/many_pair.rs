//! Many connections between two whole `Endpoint`s on one thread, with no I/O: the client
//! `a` (10.0.0.1, and 10.0.1.1 for second subflows) opens connections to the server `b`
//! (10.0.0.2:5201), each packet one endpoint emits is handed to the other at once, and the
//! clock moves one microsecond per round (as in `bulk.rs`), or jumps to the next timer when
//! nothing moves. The benchmark `memory` weighs the connections with a counting allocator;
//! the test `memory_bound` checks that 10,000 of them open, each with both subflows.
//!
//! Every call into an endpoint goes through [`ManyPair::on`], which tells the caller's
//! `owner` hook whose code runs (so that a counting allocator can tell the client's heap
//! from the server's and from the harness's own); the hook is a no-op where nothing is
//! counted.

// Each user (the benchmark, the test) takes what it needs.
#![allow(dead_code)]

use std::net::SocketAddr;

use braid_proto::time::{Duration, Instant};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, Error, Event, ListenOptions,
    TcpState,
};

/// Room for one packet as the endpoints emit them (MTU 1500).
const PACKET: usize = 2048;
/// Rounds a batch of handshakes, an exchange or a settling may take before the harness
/// calls it stuck.
const MAX_ROUNDS: usize = 100_000;
/// How far ahead a timer may lie and still be waited for while settling: further ones
/// (none are expected of an idle connection) count as idle.
const SETTLE_HORIZON: Duration = Duration::from_secs(10);

/// Whose code runs: the harness's own, the client endpoint's or the server endpoint's
/// (the owner numbers of `counting_alloc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Harness = 0,
    Client = 1,
    Server = 2,
}

/// What kind of connections: plain TCP, or MPTCP with 1 or 2 subflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Mptcp1,
    Mptcp2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Mptcp1 => "mptcp_1_subflow",
            Kind::Mptcp2 => "mptcp_2_subflows",
        }
    }

    pub fn subflows(self) -> usize {
        match self {
            Kind::Tcp => 1,
            Kind::Mptcp1 => 1,
            Kind::Mptcp2 => 2,
        }
    }

    fn mptcp(self) -> bool {
        self != Kind::Tcp
    }
}

/// Two endpoints and the connections between them.
pub struct ManyPair {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub kind: Kind,
    /// Client handles in the order opened, and server handles in the order accepted.
    pub clients: Vec<ConnectionHandle>,
    pub servers: Vec<ConnectionHandle>,
    /// Rounds run so far.
    pub rounds: u64,
    server: SocketAddr,
    owner: fn(Side),
    packet: Vec<u8>,
    scratch: Vec<u8>,
}

impl ManyPair {
    /// Two endpoints on `cfg`, the server listening; room for `capacity` connections in the
    /// harness's own vectors (so that they do not grow while the endpoints are weighed).
    pub fn new(kind: Kind, cfg: EndpointConfig, capacity: usize, owner: fn(Side)) -> ManyPair {
        let server = SocketAddr::from(([10, 0, 0, 2], 5201));
        owner(Side::Client);
        let a = Endpoint::new(cfg.clone(), [1; 32]);
        owner(Side::Server);
        let mut b = Endpoint::new(cfg, [2; 32]);
        b.listen(
            server,
            ListenOptions {
                mptcp: kind.mptcp(),
            },
        )
        .expect("listen");
        owner(Side::Harness);
        ManyPair {
            now: Instant::ZERO,
            a,
            b,
            kind,
            clients: Vec::with_capacity(capacity),
            servers: Vec::with_capacity(capacity),
            rounds: 0,
            server,
            owner,
            packet: vec![0; PACKET],
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Runs `f` on the client's (`Side::Client`) or the server's endpoint, with the owner
    /// hook told.
    pub fn on<R>(&mut self, side: Side, f: impl FnOnce(&mut Endpoint, Instant) -> R) -> R {
        (self.owner)(side);
        let ep = if side == Side::Server {
            &mut self.b
        } else {
            &mut self.a
        };
        let r = f(ep, self.now);
        (self.owner)(Side::Harness);
        r
    }

    /// One round: every packet the client has goes to the server, then every packet the
    /// server has to the client; the clock moves (to the next timer if nothing moved) and
    /// timers fire. The number of packets moved.
    pub fn round(&mut self) -> u64 {
        let moved = self.exchange_packets();
        if moved == 0 {
            if let Some(t) = self.next_timeout() {
                self.now = self.now.max(t);
            }
        }
        self.tick();
        moved
    }

    fn exchange_packets(&mut self) -> u64 {
        let mut moved = 0;
        for (from, to) in [(Side::Client, Side::Server), (Side::Server, Side::Client)] {
            loop {
                let mut packet = std::mem::take(&mut self.packet);
                let t = self.on(from, |ep, now| ep.poll_transmit(now, &mut packet));
                if let Some(t) = t {
                    self.on(to, |ep, now| ep.handle_packet(now, &packet[..t.len]));
                    moved += 1;
                }
                self.packet = packet;
                if t.is_none() {
                    break;
                }
            }
        }
        moved
    }

    /// The earliest timer of either endpoint.
    pub fn next_timeout(&mut self) -> Option<Instant> {
        let a = self.on(Side::Client, |ep, _| ep.poll_timeout());
        let b = self.on(Side::Server, |ep, _| ep.poll_timeout());
        [a, b].into_iter().flatten().min()
    }

    fn tick(&mut self) {
        self.now += Duration::from_micros(1);
        self.on(Side::Client, |ep, now| ep.handle_timeout(now));
        self.on(Side::Server, |ep, now| ep.handle_timeout(now));
        self.rounds += 1;
    }

    /// Handles pending events: a client connection that completed its handshake gets its
    /// second subflow (MPTCP with 2 subflows), an accepted one is filed.
    fn events(&mut self) -> Result<(), String> {
        let joins = self.kind == Kind::Mptcp2;
        let server = self.server;
        while let Some(ev) = self.on(Side::Client, |ep, _| ep.poll_event()) {
            match ev {
                Event::Connected(conn) if joins => {
                    let second = SocketAddr::from(([10, 0, 1, 1], 0));
                    self.on(Side::Client, |ep, now| {
                        ep.add_subflow(now, conn, second, server, false)
                    })
                    .map_err(|e| format!("add_subflow on {conn:?}: {e}"))?;
                }
                Event::Closed { conn, error, .. } => {
                    return Err(format!("client connection {conn:?} closed: {error:?}"));
                }
                Event::SubflowFailed { conn, error, .. } => {
                    return Err(format!(
                        "client connection {conn:?}: subflow failed: {error}"
                    ));
                }
                _ => {}
            }
        }
        while let Some(ev) = self.on(Side::Server, |ep, _| ep.poll_event()) {
            match ev {
                Event::Accepted { conn, .. } => self.servers.push(conn),
                Event::Closed { conn, error, .. } => {
                    return Err(format!("server connection {conn:?} closed: {error:?}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True when connection `conn` of `side` is established with every subflow of its kind.
    pub fn is_ready(&self, side: Side, conn: ConnectionHandle) -> bool {
        let ep = if side == Side::Server {
            &self.b
        } else {
            &self.a
        };
        match self.kind {
            Kind::Tcp => ep
                .tcb(conn)
                .is_some_and(|t| t.state() == TcpState::Established),
            Kind::Mptcp1 | Kind::Mptcp2 => ep.mptcp_connection(conn).is_some_and(|m| {
                m.is_mptcp()
                    && m.subflow_count() == self.kind.subflows()
                    && (0..self.kind.subflows()).all(|i| m.is_subflow_established(i))
            }),
        }
    }

    /// Opens `n` connections, `batch` at a time (each batch handshaken, second subflows
    /// included, before the next one starts: a listener holds at most 1024 pending
    /// handshakes).
    pub fn open(&mut self, n: usize, batch: usize) -> Result<(), String> {
        let server = self.server;
        let mptcp = self.kind.mptcp();
        let mut opened = 0;
        while opened < n {
            let first = self.clients.len();
            let k = batch.max(1).min(n - opened);
            for _ in 0..k {
                let conn = self
                    .on(Side::Client, |ep, now| {
                        ep.connect(
                            now,
                            SocketAddr::from(([10, 0, 0, 1], 0)),
                            server,
                            ConnectOptions { mptcp },
                        )
                    })
                    .map_err(|e| format!("connect #{}: {e}", self.clients.len()))?;
                self.clients.push(conn);
            }
            let mut rounds = 0;
            loop {
                self.events()?;
                if self.servers.len() >= self.clients.len()
                    && self.clients[first..]
                        .iter()
                        .all(|&c| self.is_ready(Side::Client, c))
                    && self.servers[first..]
                        .iter()
                        .all(|&s| self.is_ready(Side::Server, s))
                {
                    break;
                }
                rounds += 1;
                if rounds > MAX_ROUNDS {
                    return Err(format!(
                        "connections {first}..{} not established after {MAX_ROUNDS} rounds",
                        first + k
                    ));
                }
                self.round();
            }
            opened += k;
        }
        Ok(())
    }

    /// Every client sends `bytes` bytes and every server as many back; each side reads
    /// everything it receives.
    pub fn exchange(&mut self, bytes: usize) -> Result<(), String> {
        let data = vec![0x5a_u8; bytes];
        for side in [Side::Client, Side::Server] {
            for k in 0..self.handles(side).len() {
                let c = self.handles(side)[k];
                let n = self.on(side, |ep, _| ep.write(c, &data));
                if n != Ok(bytes) {
                    return Err(format!("{side:?} {c:?}: write gave {n:?}"));
                }
            }
        }
        let want = bytes * self.clients.len();
        let mut got = [0usize; 2];
        let mut scratch = std::mem::take(&mut self.scratch);
        for _ in 0..MAX_ROUNDS {
            self.round();
            self.events()?;
            for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
                for k in 0..self.handles(side).len() {
                    let c = self.handles(side)[k];
                    loop {
                        match self.on(side, |ep, _| ep.read(c, &mut scratch)) {
                            Ok(0) => return Err(format!("{side:?} {c:?}: early EOF")),
                            Ok(n) => got[i] += n,
                            Err(Error::WouldBlock) => break,
                            Err(e) => return Err(format!("{side:?} {c:?}: read: {e}")),
                        }
                    }
                }
            }
            if got == [want, want] {
                self.scratch = scratch;
                return Ok(());
            }
        }
        Err(format!(
            "exchange stuck: read {got:?} of {want} bytes each way"
        ))
    }

    fn handles(&self, side: Side) -> &[ConnectionHandle] {
        if side == Side::Server {
            &self.servers
        } else {
            &self.clients
        }
    }

    /// Runs until nothing moves and no timer is due within [`SETTLE_HORIZON`]: ACKs and
    /// window updates done, nothing in flight. The time to the next timer then, if any.
    pub fn settle(&mut self) -> Result<Option<Duration>, String> {
        for _ in 0..MAX_ROUNDS {
            let moved = self.exchange_packets();
            self.events()?;
            if moved == 0 {
                match self.next_timeout() {
                    Some(t) if t <= self.now + SETTLE_HORIZON => self.now = self.now.max(t),
                    next => return Ok(next.map(|t| t.saturating_duration_since(self.now))),
                }
            }
            self.tick();
        }
        Err(format!("not settled after {MAX_ROUNDS} rounds"))
    }

    /// Checks that every connection is established with all its subflows at both ends,
    /// and holds no unread, unsent or unacknowledged byte.
    pub fn check_idle(&self) -> Result<(), String> {
        if self.servers.len() != self.clients.len() {
            return Err(format!(
                "{} connections opened, {} accepted",
                self.clients.len(),
                self.servers.len()
            ));
        }
        for side in [Side::Client, Side::Server] {
            let ep = if side == Side::Server {
                &self.b
            } else {
                &self.a
            };
            for &c in self.handles(side) {
                if !self.is_ready(side, c) {
                    return Err(format!(
                        "{side:?} {c:?}: not established with every subflow"
                    ));
                }
                let busy = match ep.mptcp_connection(c) {
                    Some(m) => {
                        m.readable() > 0
                            || !m.data_send().all_acked()
                            || (0..m.subflow_count())
                                .filter_map(|i| m.subflow(i))
                                .any(|t| t.send_queued() > 0 || t.readable() > 0)
                    }
                    None => ep
                        .tcb(c)
                        .is_none_or(|t| t.send_queued() > 0 || t.readable() > 0),
                };
                if busy {
                    return Err(format!("{side:?} {c:?}: data still queued or unread"));
                }
            }
        }
        Ok(())
    }
}
