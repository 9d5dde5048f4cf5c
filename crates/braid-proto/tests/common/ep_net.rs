//! [`EpNet`]: two whole `Endpoint`s over one simulated wire, and [`App`], one side's
//! application. Part of the shared harness; see `conn_pair.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use braid_proto::time::{Duration, Instant};
use braid_proto::wire::parse_tcp_packet;
use braid_proto::{
    ConnectOptions, ConnectionError, ConnectionHandle, Endpoint, EndpointConfig, Event,
    ListenOptions,
};

use super::{byte, Link};

/// Two `Endpoint`s (a: the client, b: the server) joined by one simulated wire, a [`Link`]
/// each way (by default [`Link::wire`]: 100 Mbit/s, 5 ms one way), with optional seeded loss
/// shared by both directions. Any number of addresses share it, so a subflow from a second
/// address is a second path. Every packet goes through the wire codec.
pub struct EpNet {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    /// (arrival, seq) → (to b?, packet)
    pub queue: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    pub seq: u64,
    /// The links a → b and b → a.
    pub ab: Link,
    pub ba: Link,
    pub rng: u64,
    pub loss_per_mille: u64,
    /// Payload bytes a → b by source IP, and b → a by destination IP.
    pub up_by_src: BTreeMap<IpAddr, u64>,
    pub down_by_dst: BTreeMap<IpAddr, u64>,
    /// Packets seen on the wire, both ways (to b?, packet), while `keep_log`.
    pub log: Vec<(bool, Vec<u8>)>,
    pub keep_log: bool,
    /// While set, every packet towards a (index 0) or b (index 1) is lost.
    pub cut: [bool; 2],
}

impl EpNet {
    /// b listens on `server` and a connects to it from 10.0.0.1 (an ephemeral port), now;
    /// the connection's handle at a.
    pub fn open(
        &mut self,
        server: SocketAddr,
        client_mptcp: bool,
        server_mptcp: bool,
    ) -> ConnectionHandle {
        self.b
            .listen(
                server,
                ListenOptions {
                    mptcp: server_mptcp,
                },
            )
            .expect("listen");
        self.a
            .connect(
                self.now,
                SocketAddr::from(([10, 0, 0, 1], 0)),
                server,
                ConnectOptions {
                    mptcp: client_mptcp,
                },
            )
            .expect("connect")
    }

    pub fn new(a_cfg: EndpointConfig, b_cfg: EndpointConfig, loss_per_mille: u64) -> EpNet {
        let mut net = EpNet::with_links(a_cfg, b_cfg, Link::wire(), Link::wire());
        net.loss_per_mille = loss_per_mille;
        net
    }

    /// Endpoints joined by the links `ab` (a → b) and `ba`.
    pub fn with_links(a_cfg: EndpointConfig, b_cfg: EndpointConfig, ab: Link, ba: Link) -> EpNet {
        EpNet {
            now: Instant::ZERO,
            a: Endpoint::new(a_cfg, [1; 32]),
            b: Endpoint::new(b_cfg, [2; 32]),
            queue: BTreeMap::new(),
            seq: 0,
            ab,
            ba,
            rng: 0x2545_F491_4F6C_DD1D,
            loss_per_mille: 0,
            up_by_src: BTreeMap::new(),
            down_by_dst: BTreeMap::new(),
            log: Vec::new(),
            keep_log: false,
            cut: [false; 2],
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Puts a packet on the wire towards b (`to_b`) or a.
    pub fn send(&mut self, to_b: bool, pkt: Vec<u8>) {
        if self.keep_log {
            self.log.push((to_b, pkt.clone()));
        }
        if self.loss_per_mille > 0 && self.rand() % 1000 < self.loss_per_mille {
            return;
        }
        if self.cut[usize::from(to_b)] {
            return;
        }
        let link = if to_b { &mut self.ab } else { &mut self.ba };
        for at in link.send(self.now, pkt.len()) {
            self.seq += 1;
            self.queue.insert((at, self.seq), (to_b, pkt.clone()));
        }
    }

    /// Everything both endpoints have to send, onto the wire.
    pub fn flush(&mut self) {
        self.flush_with(|_, _, pkt| Some(pkt));
    }

    /// [`EpNet::flush`] through a middlebox: `tamper` sees each packet (with the pair as it
    /// is, and whether it goes to b) and returns what goes on the wire, or `None` to drop
    /// it.
    pub fn flush_with(&mut self, mut tamper: impl FnMut(&EpNet, bool, Vec<u8>) -> Option<Vec<u8>>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit(self.now, &mut buf) {
                let pkt = buf[..t.len].to_vec();
                let len = parse_tcp_packet(&pkt).map_or(0, |p| p.payload.len() as u64);
                *self.up_by_src.entry(t.src).or_default() += len;
                if let Some(pkt) = tamper(self, true, pkt) {
                    self.send(true, pkt);
                }
                any = true;
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut buf) {
                let pkt = buf[..t.len].to_vec();
                let len = parse_tcp_packet(&pkt).map_or(0, |p| p.payload.len() as u64);
                *self.down_by_dst.entry(t.dst).or_default() += len;
                if let Some(pkt) = tamper(self, false, pkt) {
                    self.send(false, pkt);
                }
                any = true;
            }
            if !any {
                break;
            }
        }
    }

    /// One step: transmit, advance time to the next event, deliver, fire timers. False
    /// when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next = [
            self.queue.keys().next().map(|k| k.0),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        while let Some(e) = self.queue.first_entry() {
            if e.key().0 > self.now {
                break;
            }
            let (to_b, pkt) = e.remove();
            if to_b {
                self.b.handle_packet(self.now, &pkt);
            } else {
                self.a.handle_packet(self.now, &pkt);
            }
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        true
    }

    /// Runs the applications `ca` (on a) and `sb` (on b) until both saw `Closed`, until
    /// `limit` from time zero, or until nothing is left to happen.
    pub fn run_apps(&mut self, ca: &mut App, sb: &mut App, limit: Duration) {
        let end = Instant::ZERO + limit;
        while self.now < end && !(ca.closed.is_some() && sb.closed.is_some()) {
            for (ep, app) in [(&mut self.a, &mut *ca), (&mut self.b, &mut *sb)] {
                while let Some(ev) = ep.poll_event() {
                    match ev {
                        Event::Accepted { conn, .. } | Event::Connected(conn) => {
                            app.conn = Some(conn);
                            app.mptcp_seen = ep.is_mptcp(conn);
                        }
                        Event::Closed { error, .. } => app.closed = Some(error),
                        _ => {}
                    }
                }
                app.step(ep);
            }
            if !self.step() {
                break;
            }
        }
    }
}

/// One side's application: sends `to_send` pattern bytes ([`byte`] with `seed`) then
/// closes; checks what it reads against the peer's pattern.
#[derive(Default)]
pub struct App {
    pub conn: Option<ConnectionHandle>,
    pub to_send: u64,
    pub sent: u64,
    pub closed_write: bool,
    pub received: u64,
    /// Pattern seed of the bytes expected from the peer.
    pub peer_seed: u64,
    pub seed: u64,
    pub mismatch: bool,
    pub eof: bool,
    pub closed: Option<Option<ConnectionError>>,
    /// `is_mptcp` as seen once the connection was up.
    pub mptcp_seen: bool,
}

impl App {
    /// A client sending `a_bytes` and a server sending `b_bytes`, each expecting the
    /// other's pattern.
    pub fn pair(a_bytes: u64, b_bytes: u64) -> (App, App) {
        let ca = App {
            to_send: a_bytes,
            seed: 7,
            peer_seed: 9,
            ..App::default()
        };
        let sb = App {
            to_send: b_bytes,
            seed: 9,
            peer_seed: 7,
            ..App::default()
        };
        (ca, sb)
    }

    /// Writes what it can (and closes once all is sent), reads what there is.
    pub fn step(&mut self, ep: &mut Endpoint) {
        let Some(c) = self.conn else { return };
        let mut buf = [0u8; 16384];
        while !self.closed_write {
            if self.sent == self.to_send {
                if ep.close(c).is_ok() {
                    self.closed_write = true;
                }
                break;
            }
            let n = (self.to_send - self.sent).min(buf.len() as u64) as usize;
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(self.seed, self.sent + i as u64);
            }
            match ep.write(c, &buf[..n]) {
                Ok(w) if w > 0 => self.sent += w as u64,
                _ => break,
            }
        }
        loop {
            match ep.read(c, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    for (i, b) in buf[..n].iter().enumerate() {
                        if *b != byte(self.peer_seed, self.received + i as u64) {
                            self.mismatch = true;
                        }
                    }
                    self.received += n as u64;
                }
                Err(_) => break,
            }
        }
    }
}
