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

//!
//! Behaviour of this implementation (plain TCP; MPTCP arrives with the connection layer):
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

use crate::tcp::{Tcb, TcbParams, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::{self, TcpFlags, TcpOptions, TcpRepr};

/// Identifies a connection inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

/// Endpoint-wide configuration.
#[derive(Debug, Clone, Default)]
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
}

/// Most handshakes pending on listeners at once (SYN flood bound).
const MAX_HALF_OPEN: usize = 1024;
/// Most queued RST replies to unknown segments.
const MAX_RST_QUEUE: usize = 64;
/// Hop limit / TTL of emitted packets.
const HOP_LIMIT: u8 = 64;
const EPHEMERAL_FIRST: u16 = 49152;

#[derive(Debug)]
struct Conn {
    tcb: Tcb,
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
}

/// The endpoint: all connections and listeners of one host. See the module docs for the
/// contract.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    rng: ChaCha20Rng,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), usize>,
    listeners: Vec<(SocketAddr, ListenOptions)>,
    events: VecDeque<Event>,
    rst_queue: VecDeque<(IpAddr, IpAddr, TcpRepr)>,
    next_port: u16,
    rr: usize,
    half_open: usize,
    stats: EndpointStats,
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
            listeners: Vec::new(),
            events: VecDeque::new(),
            rst_queue: VecDeque::new(),
            next_port,
            rr: 0,
            half_open: 0,
            stats: EndpointStats::default(),
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

    fn insert(&mut self, conn: Conn) -> usize {
        let key = (conn.local, conn.remote);
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
        idx
    }

    /// Opens a connection from `local` (port 0: an ephemeral port) to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        _opts: ConnectOptions,
    ) -> Result<ConnectionHandle, Error> {
        let _ = now;
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
        let tcb = Tcb::connect(&self.config.tcp, params);
        let idx = self.insert(Conn {
            tcb,
            local,
            remote,
            passive: false,
            known: true,
            closed_reported: false,
            app_closed: false,
        });
        Ok(ConnectionHandle(idx))
    }

    /// Processes one received IPv4 or IPv6 packet. Malformed packets are dropped and counted.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        let seg = match wire::parse_tcp_packet(packet) {
            Ok(s) => s,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let local = SocketAddr::new(seg.ip.dst_addr(), seg.tcp.dst_port);
        let remote = SocketAddr::new(seg.ip.src_addr(), seg.tcp.src_port);
        if let Some(&idx) = self.by_tuple.get(&(local, remote)) {
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                c.tcb.handle_segment(now, &seg.tcp, seg.payload);
            }
            self.sync(idx);
            return;
        }
        let f = seg.tcp.flags;
        if f.syn() && !f.ack() && !f.rst() {
            let listening = self.listeners.iter().any(|(l, _)| {
                l.port() == local.port() && (l.ip().is_unspecified() || l.ip() == local.ip())
            });
            if listening && family_matches(local.ip(), remote.ip()) {
                if self.half_open >= MAX_HALF_OPEN {
                    self.stats.syn_dropped += 1;
                    return;
                }
                let params = self.params(local, remote);
                if let Some(tcb) = Tcb::accept(&self.config.tcp, params, now, &seg.tcp) {
                    self.half_open += 1;
                    self.insert(Conn {
                        tcb,
                        local,
                        remote,
                        passive: true,
                        known: false,
                        closed_reported: false,
                        app_closed: false,
                    });
                }
                return;
            }
        }
        self.reset_unknown(local, remote, &seg.tcp, seg.payload.len());
    }

    fn reset_unknown(&mut self, local: SocketAddr, remote: SocketAddr, tcp: &TcpRepr, len: usize) {
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
        let repr = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        self.rst_queue.push_back((local.ip(), remote.ip(), repr));
    }

    /// Writes the next packet to send into `buf`. One packet per call.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some((src, dst, repr)) = self.rst_queue.pop_front() {
            match wire::emit_tcp_packet(buf, src, dst, HOP_LIMIT, &repr, &[]) {
                Ok(len) => {
                    self.stats.resets_sent += 1;
                    return Some(Transmit {
                        len,
                        src,
                        dst,
                        segment_size: None,
                    });
                }
                Err(_) => self.stats.emit_errors += 1,
            }
        }
        // A segment that does not fit the caller's buffer is dropped (and counted): the TCB
        // recovers it by retransmission. At most a few are skipped per call (bounded work).
        for _ in 0..8 {
            let n = self.conns.len();
            let mut found = None;
            for k in 0..n {
                let idx = (self.rr + k) % n;
                let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                let Some(seg) = c.tcb.poll_segment(now) else {
                    continue;
                };
                let (src, dst) = (c.local.ip(), c.remote.ip());
                let res =
                    wire::emit_tcp_packet(buf, src, dst, HOP_LIMIT, &seg.repr, c.tcb.payload(&seg));
                found = Some((idx, src, dst, res));
                break;
            }
            let (idx, src, dst, res) = found?;
            // Next call starts with the next connection: connections take turns.
            self.rr = idx + 1;
            self.sync(idx);
            match res {
                Ok(len) => {
                    return Some(Transmit {
                        len,
                        src,
                        dst,
                        segment_size: None,
                    })
                }
                Err(_) => self.stats.emit_errors += 1,
            }
        }
        None
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flatten()
            .filter_map(|c| c.tcb.poll_timeout())
            .min()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        for idx in 0..self.conns.len() {
            let due = match self.conns[idx].as_ref() {
                Some(c) => c.tcb.poll_timeout().is_some_and(|t| t <= now),
                None => false,
            };
            if due {
                if let Some(c) = self.conns[idx].as_mut() {
                    c.tcb.handle_timeout(now);
                }
                self.sync(idx);
            }
        }
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
        let n = c.tcb.read(buf);
        let res = if n > 0 || buf.is_empty() {
            Ok(n)
        } else if c.tcb.is_read_finished() {
            Ok(0)
        } else if let Some(e) = c.tcb.error() {
            Err(Error::Closed(e))
        } else if c.tcb.state() == TcpState::Closed {
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
        if let Some(e) = c.tcb.error() {
            return Err(Error::Closed(e));
        }
        if !matches!(
            c.tcb.state(),
            TcpState::SynSent | TcpState::SynReceived | TcpState::Established | TcpState::CloseWait
        ) || c.tcb.send_capacity() == 0 && c.tcb.send_queued() == 0
        {
            return Err(Error::InvalidState);
        }
        if data.is_empty() {
            return Ok(0);
        }
        match c.tcb.write(data) {
            0 => Err(Error::WouldBlock),
            n => Ok(n),
        }
    }

    /// Closes the sending direction (FIN after the queued data).
    pub fn close(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.app_closed = true;
        c.tcb.close();
        self.sync(conn.0);
        Ok(())
    }

    /// Resets the connection now.
    pub fn abort(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.tcb.abort();
        self.sync(conn.0);
        Ok(())
    }

    /// A snapshot of a connection, while its handle is valid.
    pub fn conn_info(&self, conn: ConnectionHandle) -> Option<ConnInfo> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        if !c.known || c.closed_reported {
            return None;
        }
        let t = &c.tcb;
        Some(ConnInfo {
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
        })
    }

    /// The TCB of a connection (read only), for diagnostics and tests.
    pub fn tcb(&self, conn: ConnectionHandle) -> Option<&Tcb> {
        Some(&self.conns.get(conn.0)?.as_ref()?.tcb)
    }

    /// Number of connection slots in use (including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.by_tuple.len()
    }

    /// Turns TCB events into application events and frees finished connections.
    fn sync(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let handle = ConnectionHandle(idx);
        let ev = c.tcb.take_events();
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
        let state = c.tcb.state();
        let done = matches!(state, TcpState::Closed | TcpState::TimeWait);
        if done && !c.closed_reported {
            let error = c.tcb.error();
            if !c.known {
                // An embryonic passive connection: nobody to tell.
                c.closed_reported = true;
                self.half_open = self.half_open.saturating_sub(1);
            } else if error.is_some()
                || c.tcb.readable() == 0
                || (state == TcpState::Closed && c.app_closed)
            {
                c.closed_reported = true;
                self.events.push_back(Event::Closed {
                    conn: handle,
                    error,
                });
            }
        }
        if c.closed_reported && state == TcpState::Closed && c.tcb.poll_timeout().is_none() {
            let key = (c.local, c.remote);
            // Keep the slot until a pending RST (abort) has gone out.
            let mut tcb_has_output = false;
            if let Some(c) = self.conns[idx].as_mut() {
                tcb_has_output = c.tcb.has_pending_output();
            }
            if !tcb_has_output {
                self.by_tuple.remove(&key);
                self.conns[idx] = None;
                self.free.push(idx);
            }
        }
    }
}
