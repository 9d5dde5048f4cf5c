//! The harness of the in-process `MptcpConnection` pair tests: a client and a server
//! exchange real packets (emitted and parsed with the wire codec, so every option must fit
//! and round-trip) over a simulated path with delay, a bottleneck rate, seeded loss and
//! reordering. [`Pair::filter`] sees every segment and may rewrite or drop it.
//!
//! [`EpNet`] does the same one level up: two whole `Endpoint`s over one wire.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::tcp::TcbParams;
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};
use braid_proto::{Endpoint, EndpointConfig};

pub const CLIENT_KEY: u64 = 0xa460_6019_1787_3ac7;
pub const SERVER_KEY: u64 = 0xb100_1876_e183_73d4;
pub const C_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
pub const S_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

pub fn params(local: u16, remote: u16, iss: u32) -> TcbParams {
    TcbParams {
        local_port: local,
        remote_port: remote,
        iss,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    }
}

/// A deterministic xorshift generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// What the network does to packets.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub loss_per_mille: u64,
    pub reorder_per_mille: u64,
    pub strip_syn: bool,
    pub strip_syn_ack: bool,
    /// Drop MP_CAPABLE-only pure ACKs from the client (the third ACK and its repeats).
    pub drop_third_ack: bool,
    /// Drop the server's pure ACKs with a DSS until the client's first data segment
    /// (MP_CAPABLE with data) has gone, and drop that segment once.
    pub drop_first_data: bool,
    /// Strip every MPTCP option from segments without SYN.
    pub strip_data: bool,
    /// Strip every MPTCP option once this many packets were sent (both directions, or only
    /// towards the server with `strip_one_way`).
    pub strip_after: Option<u64>,
    pub strip_one_way: bool,
    /// Drop every SYN that carries an MPTCP option (a middlebox that blocks MPTCP).
    pub drop_mptcp_syn: bool,
    /// Rewrite DATA_ACKs and mappings to their 32-bit forms.
    pub narrow_dss: bool,
    /// Flip one payload bit of the client's n-th data segment (the TCP checksum stays valid,
    /// as with a middlebox rewriting payload).
    pub corrupt_client_data: Option<u64>,
}

pub fn stream_byte(seed: u64, i: usize) -> u8 {
    ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) >> 7) as u8
}

pub struct Pair {
    /// `drop_first_data`: the sequence number of the dropped segment, and the MPTCP
    /// options of every later segment that starts there.
    pub dropped_first_seq: Option<u32>,
    pub first_data_resent: Vec<Vec<MptcpOption>>,
    pub now: Instant,
    pub client: MptcpConnection,
    pub server: Option<MptcpConnection>,
    /// (arrival time, sequence) → (to server?, packet bytes)
    pub queue: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    pub seq: u64,
    pub link_free: [Instant; 2],
    pub rng: Rng,
    pub faults: Faults,
    pub cfg: MptcpConfig,
    pub delivered: u64,
    pub third_acks_dropped: u64,
    pub client_data_segments: u64,
    /// Sees every segment as it leaves (time, towards the server?, header, payload) and may
    /// rewrite its header; `false` drops it.
    pub filter: Option<Filter>,
}

/// See [`Pair::filter`].
pub type Filter = Box<dyn FnMut(Instant, bool, &mut TcpRepr, &[u8]) -> bool>;

impl Pair {
    pub fn new(cfg: MptcpConfig, faults: Faults, seed: u64) -> Pair {
        let client = MptcpConnection::connect(&cfg, params(40000, 80, 1000), CLIENT_KEY);
        Pair {
            dropped_first_seq: None,
            first_data_resent: Vec::new(),
            now: Instant::ZERO,
            client,
            server: None,
            queue: BTreeMap::new(),
            seq: 0,
            link_free: [Instant::ZERO; 2],
            rng: Rng(seed | 1),
            faults,
            cfg,
            delivered: 0,
            third_acks_dropped: 0,
            client_data_segments: 0,
            filter: None,
        }
    }

    pub fn send(&mut self, to_server: bool, mut repr: TcpRepr, payload: &[u8]) {
        let now = self.now;
        if let Some(f) = self.filter.as_mut() {
            if !f(now, to_server, &mut repr, payload) {
                return;
            }
        }
        let corrupted;
        let mut payload = payload;
        if to_server && !payload.is_empty() {
            self.client_data_segments += 1;
            if self.faults.corrupt_client_data == Some(self.client_data_segments) {
                let mut c = payload.to_vec();
                c[payload.len() / 2] ^= 0x04;
                corrupted = c;
                payload = &corrupted;
            }
        }
        if repr.flags.syn() {
            let strip = if repr.flags.ack() {
                self.faults.strip_syn_ack
            } else {
                self.faults.strip_syn
            };
            if strip {
                repr.options.mptcp.clear();
            }
            if self.faults.drop_mptcp_syn && !repr.options.mptcp.is_empty() {
                return;
            }
        } else {
            if self.rng.chance(self.faults.loss_per_mille) {
                return;
            }
            let mpc_only_ack = payload.is_empty()
                && repr
                    .options
                    .mptcp
                    .iter()
                    .any(|o| matches!(o, MptcpOption::MpCapable(c) if c.data_len.is_none()));
            if to_server && self.faults.drop_third_ack && mpc_only_ack {
                self.third_acks_dropped += 1;
                return;
            }
            let mpc_data = repr
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::MpCapable(c) if c.data_len.is_some()));
            if to_server && self.faults.drop_first_data && mpc_data {
                self.faults.drop_first_data = false;
                self.dropped_first_seq = Some(repr.seq);
                return;
            }
            if to_server && self.dropped_first_seq == Some(repr.seq) {
                self.first_data_resent.push(repr.options.mptcp.clone());
            }
            // The server's first DSS (the DATA_ACK answering the third ACK): lost, so the
            // client stays unconfirmed and its first data repeats MP_CAPABLE.
            let dss = repr
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::Dss(_)));
            if !to_server && self.faults.drop_first_data && dss && payload.is_empty() {
                return;
            }
            if self.faults.strip_data {
                repr.options.mptcp.clear();
            }
            if self
                .faults
                .strip_after
                .is_some_and(|n| self.seq >= n && (to_server || !self.faults.strip_one_way))
            {
                repr.options.mptcp.clear();
            }
            if self.faults.narrow_dss {
                for o in &mut repr.options.mptcp {
                    if let MptcpOption::Dss(d) = o {
                        if let Some(a) = d.data_ack.as_mut() {
                            *a &= 0xffff_ffff;
                            d.data_ack_64 = false;
                        }
                        if let Some(m) = d.mapping.as_mut() {
                            m.dsn &= 0xffff_ffff;
                            m.dsn_64 = false;
                        }
                    }
                }
            }
        }
        let (src, dst) = if to_server {
            (C_ADDR, S_ADDR)
        } else {
            (S_ADDR, C_ADDR)
        };
        let mut buf = vec![0u8; 1600];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &repr, payload).expect("packet fits");
        buf.truncate(n);
        // 100 Mbit/s bottleneck, 10 ms one way.
        let dir = usize::from(to_server);
        let tx = Duration::from_micros(n as u64 * 8 / 100);
        let start = self.link_free[dir].max(self.now);
        self.link_free[dir] = start + tx;
        let mut at = start + tx + Duration::from_millis(10);
        if self.rng.chance(self.faults.reorder_per_mille) {
            at += Duration::from_millis(3);
        }
        self.seq += 1;
        self.queue.insert((at, self.seq), (to_server, buf));
    }

    pub fn poll_all(&mut self) {
        while let Some((_, repr, payload)) = self.client.poll_segment(self.now) {
            self.send(true, repr, &payload);
        }
        while let Some(s) = self.server.as_mut() {
            let Some((_, repr, payload)) = s.poll_segment(self.now) else {
                break;
            };
            self.send(false, repr, &payload);
        }
    }

    pub fn deliver_due(&mut self) {
        while let Some((&(at, k), _)) = self.queue.iter().next() {
            if at > self.now {
                break;
            }
            let Some((to_server, pkt)) = self.queue.remove(&(at, k)) else {
                break;
            };
            self.delivered += 1;
            let seg = parse_tcp_packet(&pkt).expect("valid packet");
            if to_server {
                match self.server.as_mut() {
                    Some(s) => s.handle_segment(self.now, 0, &seg.tcp, seg.payload),
                    None => {
                        self.server = MptcpConnection::accept(
                            &self.cfg,
                            params(80, 40000, 7_000_000),
                            self.now,
                            &seg.tcp,
                            SERVER_KEY,
                        );
                    }
                }
            } else {
                self.client
                    .handle_segment(self.now, 0, &seg.tcp, seg.payload);
            }
        }
    }

    /// Advances time to the next event. Returns false when nothing is left to happen.
    pub fn advance(&mut self) -> bool {
        let mut next = self.queue.keys().next().map(|k| k.0);
        for t in [
            self.client.poll_timeout(),
            self.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        let Some(t) = next else {
            return false;
        };
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        let now = self.now;
        if let Some(s) = self.server.as_mut() {
            s.handle_timeout(now);
        }
        true
    }
}

#[derive(Default)]
pub struct Transfer {
    pub up: usize,
    pub down: usize,
    /// The client starts writing only at this time.
    pub up_start: Duration,
    /// The server reads at most this many bytes per step (a slow reader); 0 = all.
    pub server_read_chunk: usize,
}

/// Runs a bidirectional transfer; returns the pair for inspection.
pub fn run(cfg: MptcpConfig, faults: Faults, seed: u64, t: Transfer) -> Pair {
    let mut p = Pair::new(cfg, faults, seed);
    let (mut up_w, mut down_w) = (0usize, 0usize);
    let mut up_r: Vec<u8> = Vec::with_capacity(t.up);
    let mut down_r: Vec<u8> = Vec::with_capacity(t.down);
    let (mut c_closed, mut s_closed) = (false, false);
    let mut buf = vec![0u8; 65536];
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 5_000_000, "transfer did not finish");
        // client writes, reads
        while up_w < t.up && p.now >= Instant::ZERO + t.up_start {
            let chunk: Vec<u8> = (up_w..(up_w + 16384).min(t.up))
                .map(|i| stream_byte(1, i))
                .collect();
            let n = p.client.write(&chunk);
            up_w += n;
            if n < chunk.len() {
                break;
            }
        }
        if up_w == t.up && !c_closed && p.now >= Instant::ZERO + t.up_start {
            p.client.close();
            c_closed = true;
        }
        loop {
            let n = p.client.read(&mut buf);
            if n == 0 {
                break;
            }
            down_r.extend_from_slice(&buf[..n]);
        }
        if let Some(s) = p.server.as_mut() {
            while down_w < t.down {
                let chunk: Vec<u8> = (down_w..(down_w + 16384).min(t.down))
                    .map(|i| stream_byte(2, i))
                    .collect();
                let n = s.write(&chunk);
                down_w += n;
                if n < chunk.len() {
                    break;
                }
            }
            if down_w == t.down && !s_closed {
                s.close();
                s_closed = true;
            }
            let limit = if t.server_read_chunk == 0 {
                usize::MAX
            } else {
                t.server_read_chunk
            };
            let mut got = 0;
            while got < limit {
                let want = buf.len().min(limit - got);
                let n = s.read(&mut buf[..want]);
                if n == 0 {
                    break;
                }
                got += n;
                up_r.extend_from_slice(&buf[..n]);
            }
        }
        p.poll_all();
        p.deliver_due();
        let done = p.client.is_read_finished()
            && p.server.as_ref().is_some_and(|s| s.is_read_finished())
            && p.client.is_write_finished()
            && p.server.as_ref().is_some_and(|s| s.is_write_finished());
        if done {
            break;
        }
        if p.queue.keys().next().is_some_and(|k| k.0 <= p.now) {
            continue;
        }
        // nothing due now: anything new to send?
        let before = p.seq;
        p.poll_all();
        if p.seq == before && !p.advance() {
            let unread = p.client.readable() + p.server.as_ref().map_or(0, |s| s.readable());
            if unread == 0 && std::env::var("DBGST").is_ok() {
                let sv = p.server.as_ref().expect("server");
                eprintln!(
                    "done parts c.rf {} s.rf {} c.wf {} s.wf {}",
                    p.client.is_read_finished(),
                    sv.is_read_finished(),
                    p.client.is_write_finished(),
                    sv.is_write_finished()
                );
                eprintln!(
                    "C fb {} {:?}\n{:?}\nS fb {} {:?}\n{:?}\nup_w {up_w} up_r {} c {:?}\ns {:?}",
                    p.client.is_fallback(),
                    p.client.info(),
                    p.client.subflow_infos(),
                    sv.is_fallback(),
                    sv.info(),
                    sv.subflow_infos(),
                    up_r.len(),
                    p.client.counters(),
                    sv.counters()
                );
            }
            assert!(unread > 0, "stalled at {:?}", p.now);
        }
    }
    assert_eq!(up_r.len(), t.up, "upload length");
    assert_eq!(down_r.len(), t.down, "download length");
    let differing = up_r
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b != stream_byte(1, i))
        .count();
    let expected = usize::from(p.faults.corrupt_client_data.is_some());
    assert_eq!(differing, expected, "upload bytes differ");
    assert!(
        down_r
            .iter()
            .enumerate()
            .all(|(i, &b)| b == stream_byte(2, i)),
        "download bytes differ"
    );
    p
}

// ------------------------------------------------------------------ endpoint pair

/// Two `Endpoint`s (a: the client, b: the server) joined by one simulated wire each way:
/// 100 Mbit/s, 5 ms one way, optional seeded loss. Any number of addresses share it, so a
/// subflow from a second address is a second path. Every packet goes through the wire codec.
pub struct EpNet {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    /// (arrival, seq) → (to b?, packet)
    pub queue: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    pub seq: u64,
    pub free_at: [Instant; 2],
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
    pub fn new(a_cfg: EndpointConfig, b_cfg: EndpointConfig, loss_per_mille: u64) -> EpNet {
        EpNet {
            now: Instant::ZERO,
            a: Endpoint::new(a_cfg, [1; 32]),
            b: Endpoint::new(b_cfg, [2; 32]),
            queue: BTreeMap::new(),
            seq: 0,
            free_at: [Instant::ZERO; 2],
            rng: 0x2545_F491_4F6C_DD1D,
            loss_per_mille,
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
        let d = usize::from(to_b);
        if self.cut[d] {
            return;
        }
        let tx = Duration::from_nanos(pkt.len() as u64 * 80);
        let start = self.free_at[d].max(self.now);
        self.free_at[d] = start + tx;
        let at = self.free_at[d] + Duration::from_millis(5);
        self.seq += 1;
        self.queue.insert((at, self.seq), (to_b, pkt));
    }

    /// Everything both endpoints have to send, onto the wire.
    pub fn flush(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let mut any = false;
            while let Some(t) = self.a.poll_transmit(self.now, &mut buf) {
                let pkt = buf[..t.len].to_vec();
                let len = parse_tcp_packet(&pkt).map_or(0, |p| p.payload.len() as u64);
                *self.up_by_src.entry(t.src).or_default() += len;
                self.send(true, pkt);
                any = true;
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut buf) {
                let pkt = buf[..t.len].to_vec();
                let len = parse_tcp_packet(&pkt).map_or(0, |p| p.payload.len() as u64);
                *self.down_by_dst.entry(t.dst).or_default() += len;
                self.send(false, pkt);
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
}
