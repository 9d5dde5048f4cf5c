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

mod app;
mod conn;
mod joins;
mod output;
mod shard;
mod types;

use conn::{Conn, Proto};
pub use shard::{Handoff, Shard};
pub use types::*;

/// A 4-tuple and where its packets go: the connection slot, and the joined subflow's id.
type Recent = ((SocketAddr, SocketAddr), usize, Option<SubflowId>);

/// Most subflow requests ([`Endpoint::request_subflow`]) a connection holds at once.
pub const MAX_PENDING_JOINS: usize = 8;
/// Most handshakes pending on listeners at once (SYN flood bound).
const MAX_HALF_OPEN: usize = 1024;
/// Most queued RST replies to unknown segments.
const MAX_RST_QUEUE: usize = 64;
/// Hop limit / TTL of emitted packets.
const HOP_LIMIT: u8 = 64;
const EPHEMERAL_FIRST: u16 = 49152;
/// Packets a connection sends in a row before the next one's turn in
/// [`Endpoint::poll_transmit`].
pub const SEND_BURST: usize = 16;

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
    /// The last two 4-tuples a packet came for and where they led (the connection, and the
    /// joined subflow): a bulk flow's packets skip the hash maps. Cleared whenever
    /// `by_tuple` or `joins` change.
    recent: [Option<Recent>; 2],
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
    /// The connection that sent the last packet and how many more it may send before the
    /// next one's turn.
    burst: Option<(usize, usize)>,
    /// A segment handled since the last `take_urgent_ack` left its TCB owing an ACK at once.
    urgent_ack: bool,
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
            recent: [None; 2],
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
            burst: None,
            urgent_ack: false,
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
            let token = crate::crypto::key_token(key);
            // A worker's tokens are its own share (see `shard`): drawn again, not counted.
            if !self.config.shard.owns(token) {
                continue;
            }
            if !self.tokens.contains_key(&token) {
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
            conn.pm = Some(conn::Pm::new(factory.build(&ctx)));
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
        self.recent = [None; 2];
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
        let local = self.free_local(local, remote)?;
        let params = self.params(local, remote);
        let proto = if opts.mptcp {
            let key = self.unique_key();
            Proto::Mptcp(Box::new(MptcpConnection::connect(
                &self.mptcp_config(),
                params,
                key,
            )))
        } else {
            Proto::Tcp(Box::new(Tcb::connect(&self.config.tcp, params)))
        };
        let idx = self.insert_with_pm(Conn::new(proto, local, remote, false), pm.as_ref());
        Ok(ConnectionHandle(idx))
    }

    /// Processes one received IPv4 or IPv6 packet. Malformed packets are dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle(now, None, packet, false);
    }

    /// [`Endpoint::handle_packet`] for a packet that arrived on interface `iface` (as the
    /// driver numbers its devices): replies between the same two addresses carry it in
    /// [`Transmit::iface`], so they leave the way the peer's packets came.
    pub fn handle_packet_on(&mut self, now: Instant, iface: usize, packet: &[u8]) {
        self.handle(now, Some(iface), packet, false);
    }

    /// [`Endpoint::handle_packet_on`] for one worker of several
    /// ([`EndpointConfig::shard`]): a packet another worker may own is left untouched and
    /// said where to go. An MP_JOIN SYN whose token is another worker's goes
    /// [`Handoff::To`] it; a segment of no connection here (not a SYN for a listener) goes
    /// [`Handoff::Next`] unless `last` says that every other worker has passed on it
    /// already, when it is answered here as an unknown segment (RST).
    pub fn handle_packet_sharded(
        &mut self,
        now: Instant,
        iface: usize,
        packet: &[u8],
        last: bool,
    ) -> Option<Handoff> {
        let pass_on = self.config.shard.count > 1 && !last;
        self.handle(now, Some(iface), packet, pass_on)
    }

    /// Whether a packet handled since the last call left a connection owing an ACK at once
    /// (RFC 5681 §4.2: for a segment out of order, one that fills a gap, a duplicate).
    /// Each such segment should get its own ACK, with the SACK blocks as they stand after
    /// it; a driver that hands packets over in batches polls its transmits before the next
    /// packet when this is true. Clears the flag.
    pub fn take_urgent_ack(&mut self) -> bool {
        std::mem::take(&mut self.urgent_ack)
    }

    /// Handles a packet, or (`pass_on`) says which other worker may own it.
    fn handle(
        &mut self,
        now: Instant,
        iface: Option<usize>,
        packet: &[u8],
        pass_on: bool,
    ) -> Option<Handoff> {
        self.now = self.now.max(now);
        let seg = match wire::parse_tcp_packet(packet) {
            Ok(s) => s,
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        let local = SocketAddr::new(seg.ip.dst_addr(), seg.tcp.dst_port);
        let remote = SocketAddr::new(seg.ip.src_addr(), seg.tcp.src_port);
        let key = (local, remote);
        let route = match self.recent.iter().flatten().find(|r| r.0 == key) {
            Some(&(_, idx, sub)) => Some((idx, sub)),
            None => {
                let found = self
                    .by_tuple
                    .get(&key)
                    .map(|&idx| (idx, None))
                    .or_else(|| self.joins.get(&key).map(|&(idx, id)| (idx, Some(id))));
                if let Some((idx, sub)) = found {
                    self.recent = [Some((key, idx, sub)), self.recent[0]];
                }
                found
            }
        };
        let f = seg.tcp.flags;
        let is_syn = f.syn() && !f.ack() && !f.rst();
        let token = seg.tcp.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::MpJoinSyn { token, .. } if is_syn => Some(*token),
            _ => None,
        });
        if route.is_none() && self.config.shard.count > 1 {
            match token {
                Some(t) if !self.config.shard.owns(t) => {
                    return Some(Handoff::To(self.config.shard.owner_of(t)));
                }
                None if pass_on && !is_syn => return Some(Handoff::Next),
                _ => {}
            }
        }
        if let Some(i) = iface {
            self.routes.learn(seg.ip.dst_addr(), seg.ip.src_addr(), i);
        }
        if let Some((idx, None)) = route {
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                c.proto.handle_segment(now, &seg.tcp, seg.payload);
                self.urgent_ack |= c.proto.urgent_ack(0);
            }
            self.sync(idx);
            return None;
        }
        if let Some((idx, Some(id))) = route {
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                if let Some(m) = c.proto.mptcp_mut() {
                    m.handle_segment(now, id, &seg.tcp, seg.payload);
                }
                self.urgent_ack |= c.proto.urgent_ack(id);
            }
            self.sync(idx);
            return None;
        }
        if is_syn {
            let has = |pred: fn(&MptcpOption) -> bool| seg.tcp.options.mptcp.iter().any(pred);
            if let Some(token) = token {
                let refused = match self.accept_join(now, local, remote, &seg.tcp, token) {
                    Ok(()) => return None,
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
                return None;
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
                    return None;
                }
                let params = self.params(local, remote);
                let mp_capable = has(|o| matches!(o, MptcpOption::MpCapable(_)));
                let proto = if listen_mptcp && mp_capable {
                    let key = self.unique_key();
                    MptcpConnection::accept(&self.mptcp_config(), params, now, &seg.tcp, key)
                        .map(|m| Proto::Mptcp(Box::new(m)))
                } else {
                    Tcb::accept(&self.config.tcp, params, now, &seg.tcp)
                        .map(|t| Proto::Tcp(Box::new(t)))
                };
                if let Some(proto) = proto {
                    self.half_open += 1;
                    self.insert_with_pm(
                        Conn::new(proto, local, remote, true),
                        listener_pm.as_ref(),
                    );
                }
                return None;
            }
        }
        self.reset_unknown(local, remote, &seg.tcp, seg.payload.len(), None);
        None
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
            // A worker's ephemeral ports are its own share (see `shard`).
            if !self.config.shard.owns(u32::from(p)) {
                continue;
            }
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
        if self.rst_queue.len() >= MAX_RST_QUEUE {
            return;
        }
        let Some((seq, ack)) = crate::tcp::reset_answer(tcp, len) else {
            return;
        };
        let (ack, flags) = match ack {
            Some(a) => (a, TcpFlags::RST | TcpFlags::ACK),
            None => (0, TcpFlags::RST),
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
            self.recent = [None; 2];
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
