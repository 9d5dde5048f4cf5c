//! [`Pair`]: a client and a server `MptcpConnection` over simulated paths. Part of the
//! shared harness; see `conn_pair.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use braid_proto::mptcp::connection::{JoinError, JoinParams};
use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};
use braid_proto::TcpState;

use super::{params, stream_byte, Rng, CLIENT_KEY, SERVER_KEY};

/// What the network does to packets, on every path.
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
    /// Flip a bit of the HMAC of the server's MP_JOIN SYN/ACKs.
    pub forge_join_synack: bool,
    /// Flip a bit of the HMAC of the client's MP_JOIN third ACKs.
    pub forge_join_ack: bool,
}

/// One path between the client's and the server's address on it: a bottleneck rate and a
/// one-way delay each way, and its own faults.
pub struct Path {
    pub client: IpAddr,
    pub server: IpAddr,
    /// Mbit/s (bits per microsecond).
    pub mbit: u64,
    pub delay: Duration,
    /// The path drops everything once more than this many payload bytes were sent over it
    /// towards the server.
    pub kill_after: Option<u64>,
    /// `kill_after` struck.
    pub dead: bool,
    /// Payload bytes sent towards the server, dropped by the dead path or not.
    pub up_sent: u64,
    /// Payload bytes carried towards the server / the client.
    pub up_bytes: u64,
    pub down_bytes: u64,
    /// When each direction's bottleneck is free (0: to the client, 1: to the server).
    pub link_free: [Instant; 2],
}

impl Path {
    /// Path `n`: the client at 10.0.n.1, the server at 10.0.n.2.
    pub fn new(n: u8, mbit: u64, delay_ms: u64) -> Path {
        Path {
            client: IpAddr::V4(Ipv4Addr::new(10, 0, n, 1)),
            server: IpAddr::V4(Ipv4Addr::new(10, 0, n, 2)),
            mbit,
            delay: Duration::from_millis(delay_ms),
            kill_after: None,
            dead: false,
            up_sent: 0,
            up_bytes: 0,
            down_bytes: 0,
            link_free: [Instant::ZERO; 2],
        }
    }
}

pub struct Pair {
    /// `drop_first_data`: the sequence number of the dropped segment, and the MPTCP
    /// options of every later segment that starts there.
    pub dropped_first_seq: Option<u32>,
    pub first_data_resent: Vec<Vec<MptcpOption>>,
    pub now: Instant,
    pub client: MptcpConnection,
    pub server: Option<MptcpConnection>,
    /// The path of each client / server subflow id.
    pub client_paths: Vec<usize>,
    pub server_paths: Vec<usize>,
    /// (arrival time, sequence) → (to server?, packet bytes)
    pub queue: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    pub seq: u64,
    pub paths: Vec<Path>,
    pub rng: Rng,
    pub faults: Faults,
    pub cfg: MptcpConfig,
    pub delivered: u64,
    pub third_acks_dropped: u64,
    pub client_data_segments: u64,
    /// The client sent payload on an additional subflow before it was established.
    pub early_data: bool,
    /// RSTs with MP_TCPRST seen, by direction (to the server, to the client).
    pub mp_tcprst: [u64; 2],
    /// The server's last refusal of an MP_JOIN SYN.
    pub join_refused: Option<JoinError>,
    /// Sees every segment as it leaves (time, towards the server?, header, payload) and may
    /// rewrite its header; `false` drops it.
    pub filter: Option<Filter>,
}

/// See [`Pair::filter`].
pub type Filter = Box<dyn FnMut(Instant, bool, &mut TcpRepr, &[u8]) -> bool>;

impl Pair {
    /// One path (10.0.0.1 – 10.0.0.2): 100 Mbit/s, 10 ms one way.
    pub fn new(cfg: MptcpConfig, faults: Faults, seed: u64) -> Pair {
        Pair::with_paths(cfg, faults, seed, vec![Path::new(0, 100, 10)])
    }

    /// The client connects over `paths[0]`; the others are for [`Pair::join`].
    pub fn with_paths(cfg: MptcpConfig, faults: Faults, seed: u64, paths: Vec<Path>) -> Pair {
        let client = MptcpConnection::connect(&cfg, params(40000, 80, 1000), CLIENT_KEY);
        Pair {
            dropped_first_seq: None,
            first_data_resent: Vec::new(),
            now: Instant::ZERO,
            client,
            server: None,
            client_paths: vec![0],
            server_paths: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            paths,
            rng: Rng(seed | 1),
            faults,
            cfg,
            delivered: 0,
            third_acks_dropped: 0,
            client_data_segments: 0,
            early_data: false,
            mp_tcprst: [0; 2],
            join_refused: None,
            filter: None,
        }
    }

    /// Two paths: path 0 at 100 Mbit/s, 10 ms; path 1 at 50 Mbit/s, 20 ms (one way).
    pub fn two_paths(cfg: MptcpConfig, faults: Faults) -> Pair {
        Pair::with_paths(
            cfg,
            faults,
            1,
            vec![Path::new(0, 100, 10), Path::new(1, 50, 20)],
        )
    }

    /// Payload bytes carried towards the server, per path.
    pub fn up_bytes(&self) -> Vec<u64> {
        self.paths.iter().map(|p| p.up_bytes).collect()
    }

    /// Payload bytes carried towards the client, per path.
    pub fn down_bytes(&self) -> Vec<u64> {
        self.paths.iter().map(|p| p.down_bytes).collect()
    }

    pub fn send(&mut self, to_server: bool, path: usize, mut repr: TcpRepr, payload: &[u8]) {
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
                self.first_data_resent.push(repr.options.mptcp.to_vec());
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
        for o in &mut repr.options.mptcp {
            match o {
                MptcpOption::MpJoinSynAck { hmac, .. } if self.faults.forge_join_synack => {
                    *hmac ^= 1;
                }
                MptcpOption::MpJoinAck { hmac } if self.faults.forge_join_ack => {
                    hmac[19] ^= 1;
                }
                MptcpOption::MpTcpRst { .. } => {
                    self.mp_tcprst[usize::from(!to_server)] += 1;
                }
                _ => {}
            }
        }
        let p = &mut self.paths[path];
        if to_server {
            p.up_sent += payload.len() as u64;
        }
        if p.kill_after.is_some_and(|n| p.up_sent > n) {
            p.dead = true;
        }
        if p.dead {
            return;
        }
        if to_server {
            p.up_bytes += payload.len() as u64;
        } else {
            p.down_bytes += payload.len() as u64;
        }
        let (src, dst) = if to_server {
            (p.client, p.server)
        } else {
            (p.server, p.client)
        };
        let mut buf = vec![0u8; 1600];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &repr, payload).expect("packet fits");
        buf.truncate(n);
        let dir = usize::from(to_server);
        let tx = Duration::from_micros(n as u64 * 8 / p.mbit);
        let start = p.link_free[dir].max(self.now);
        p.link_free[dir] = start + tx;
        let mut at = start + tx + p.delay;
        if self.rng.chance(self.faults.reorder_per_mille) {
            at += Duration::from_millis(3);
        }
        self.seq += 1;
        self.queue.insert((at, self.seq), (to_server, buf));
    }

    pub fn poll_all(&mut self) {
        while let Some((id, repr, payload)) = self.client.poll_segment(self.now) {
            let payload = payload.to_vec();
            if id > 0 && !payload.is_empty() && !self.client.is_subflow_established(id) {
                self.early_data = true;
            }
            let path = self.client_paths.get(id).copied().unwrap_or(0);
            self.send(true, path, repr, &payload);
        }
        while let Some(s) = self.server.as_mut() {
            let Some((id, repr, payload)) = s.poll_segment(self.now) else {
                break;
            };
            let payload = payload.to_vec();
            let path = self.server_paths.get(id).copied().unwrap_or(0);
            self.send(false, path, repr, &payload);
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
            let dst = seg.ip.dst_addr();
            let path = self
                .paths
                .iter()
                .position(|p| dst == if to_server { p.server } else { p.client })
                .expect("a packet of a known path");
            if to_server {
                let known = self.server_paths.iter().position(|&p| p == path);
                match (self.server.as_mut(), known) {
                    (Some(s), Some(id)) => s.handle_segment(self.now, id, &seg.tcp, seg.payload),
                    (Some(s), None) => {
                        match s.accept_join(
                            self.now,
                            params(80, seg.tcp.src_port, 9_000_000),
                            &seg.tcp,
                            path as u8,
                            0x5eed_0000 + 2 * path as u32,
                            false,
                        ) {
                            Ok(id) => {
                                assert_eq!(id, self.server_paths.len());
                                self.server_paths.push(path);
                            }
                            Err(e) => self.join_refused = Some(e),
                        }
                    }
                    (None, _) => {
                        self.server = MptcpConnection::accept(
                            &self.cfg,
                            params(80, 40000, 7_000_000),
                            self.now,
                            &seg.tcp,
                            SERVER_KEY,
                        );
                        if self.server.is_some() {
                            self.server_paths.push(path);
                        }
                    }
                }
            } else if let Some(id) = self.client_paths.iter().position(|&p| p == path) {
                self.client
                    .handle_segment(self.now, id, &seg.tcp, seg.payload);
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

    /// Sends, advances time, delivers. False when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.poll_all();
        if !self.advance() {
            return false;
        }
        self.deliver_due();
        true
    }

    /// The client adds a subflow over `path` (from port 40000 + path, address id `path`);
    /// returns its id.
    pub fn join(&mut self, path: usize) -> usize {
        let id = self
            .client
            .add_subflow(
                params(40000 + path as u16, 80, 5000),
                JoinParams {
                    local_id: path as u8,
                    remote_id: 0,
                    backup: false,
                    nonce: 0x5eed_0000 + 2 * path as u32 - 1,
                },
            )
            .expect("join allowed");
        assert_eq!(id, self.client_paths.len());
        self.client_paths.push(path);
        id
    }

    /// Runs until the client is established, then joins over path 1 and runs until that
    /// subflow is established or closed (and 20 steps more, for the server to see the last
    /// handshake segment).
    pub fn establish_and_join(&mut self) {
        let mut added = false;
        for _ in 0..10_000 {
            if !added && self.client.take_events().established {
                assert_eq!(self.join(1), 1);
                added = true;
            }
            if added
                && (self.client.is_subflow_established(1)
                    || self
                        .client
                        .subflow(1)
                        .is_some_and(|t| t.state() == TcpState::Closed))
            {
                for _ in 0..20 {
                    if !self.step() {
                        break;
                    }
                }
                return;
            }
            if !self.step() {
                return;
            }
        }
        panic!("join did not finish");
    }

    /// Runs a pair until the server's first DSS-mapped data packet is queued, takes it out of
    /// the network and returns it decoded.
    pub fn intercept_server_data(&mut self) -> (TcpRepr, Vec<u8>) {
        for _ in 0..10_000 {
            self.deliver_due();
            if let Some(s) = self.server.as_mut() {
                // Less than a segment: the DSS maps exactly this segment's payload.
                if s.is_mptcp() && s.send_capacity() == MptcpConfig::default().send_buffer {
                    s.write(&[0x5a; 1000]);
                }
            }
            self.poll_all();
            let hit = self.queue.iter().find_map(|(k, (to_server, pkt))| {
                let seg = parse_tcp_packet(pkt).ok()?;
                let dss = seg
                    .tcp
                    .options
                    .mptcp
                    .iter()
                    .any(|o| matches!(o, MptcpOption::Dss(d) if d.mapping.is_some()));
                (!*to_server && !seg.payload.is_empty() && dss)
                    .then(|| (*k, seg.tcp.clone(), seg.payload.to_vec()))
            });
            if let Some((k, repr, payload)) = hit {
                self.queue.remove(&k);
                return (repr, payload);
            }
            assert!(self.advance(), "no server data");
        }
        panic!("no server data");
    }

    /// On an established pair: `up` bytes to the server and `down` bytes back, each side
    /// closing when done, driven by [`Pair::step`]; both streams byte-exact.
    pub fn transfer(&mut self, up: usize, down: usize) {
        let mut st = Streams::new(Transfer {
            up,
            down,
            ..Transfer::default()
        });
        for _ in 0..5_000_000u64 {
            assert!(self.server.is_some(), "server");
            st.app(self);
            if st.done(self) || !self.step() {
                break;
            }
        }
        st.check(self);
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

/// The applications of a [`Transfer`]: what each side wrote and read so far.
struct Streams {
    t: Transfer,
    up_w: usize,
    down_w: usize,
    up_r: Vec<u8>,
    down_r: Vec<u8>,
    c_closed: bool,
    s_closed: bool,
    buf: Vec<u8>,
}

impl Streams {
    fn new(t: Transfer) -> Streams {
        Streams {
            up_w: 0,
            down_w: 0,
            up_r: Vec::with_capacity(t.up),
            down_r: Vec::with_capacity(t.down),
            c_closed: false,
            s_closed: false,
            buf: vec![0u8; 65536],
            t,
        }
    }

    /// The client writes (from `up_start`), closes when done, reads; so does the server
    /// once it exists.
    fn app(&mut self, p: &mut Pair) {
        let t = &self.t;
        let started = p.now >= Instant::ZERO + t.up_start;
        while self.up_w < t.up && started {
            let chunk: Vec<u8> = (self.up_w..(self.up_w + 16384).min(t.up))
                .map(|i| stream_byte(1, i))
                .collect();
            let n = p.client.write(&chunk);
            self.up_w += n;
            if n < chunk.len() {
                break;
            }
        }
        if self.up_w == t.up && !self.c_closed && started {
            p.client.close();
            self.c_closed = true;
        }
        loop {
            let n = p.client.read(&mut self.buf);
            if n == 0 {
                break;
            }
            self.down_r.extend_from_slice(&self.buf[..n]);
        }
        let Some(s) = p.server.as_mut() else { return };
        while self.down_w < t.down {
            let chunk: Vec<u8> = (self.down_w..(self.down_w + 16384).min(t.down))
                .map(|i| stream_byte(2, i))
                .collect();
            let n = s.write(&chunk);
            self.down_w += n;
            if n < chunk.len() {
                break;
            }
        }
        if self.down_w == t.down && !self.s_closed {
            s.close();
            self.s_closed = true;
        }
        let limit = if t.server_read_chunk == 0 {
            usize::MAX
        } else {
            t.server_read_chunk
        };
        let mut got = 0;
        while got < limit {
            let want = self.buf.len().min(limit - got);
            let n = s.read(&mut self.buf[..want]);
            if n == 0 {
                break;
            }
            got += n;
            self.up_r.extend_from_slice(&self.buf[..n]);
        }
    }

    /// Both sides read and wrote everything.
    fn done(&self, p: &Pair) -> bool {
        p.client.is_read_finished()
            && p.server.as_ref().is_some_and(|s| s.is_read_finished())
            && p.client.is_write_finished()
            && p.server.as_ref().is_some_and(|s| s.is_write_finished())
    }

    /// Both streams complete and byte-exact (but for `corrupt_client_data`'s one byte).
    fn check(&self, p: &Pair) {
        assert_eq!(self.up_r.len(), self.t.up, "upload length");
        assert_eq!(self.down_r.len(), self.t.down, "download length");
        let differing = self
            .up_r
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b != stream_byte(1, i))
            .count();
        let expected = usize::from(p.faults.corrupt_client_data.is_some());
        assert_eq!(differing, expected, "upload bytes differ");
        assert!(
            self.down_r
                .iter()
                .enumerate()
                .all(|(i, &b)| b == stream_byte(2, i)),
            "download bytes differ"
        );
    }
}

/// Runs a bidirectional transfer on a new one-path [`Pair`]; returns the pair for
/// inspection.
pub fn run(cfg: MptcpConfig, faults: Faults, seed: u64, t: Transfer) -> Pair {
    let mut p = Pair::new(cfg, faults, seed);
    let mut st = Streams::new(t);
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 5_000_000, "transfer did not finish");
        st.app(&mut p);
        p.poll_all();
        p.deliver_due();
        if st.done(&p) {
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
                    "C fb {} {:?}\n{:?}\nS fb {} {:?}\n{:?}\nup_w {} up_r {} c {:?}\ns {:?}",
                    p.client.is_fallback(),
                    p.client.info(),
                    p.client.subflow_infos(),
                    sv.is_fallback(),
                    sv.info(),
                    sv.subflow_infos(),
                    st.up_w,
                    st.up_r.len(),
                    p.client.counters(),
                    sv.counters()
                );
            }
            assert!(unread > 0, "stalled at {:?}", p.now);
        }
    }
    st.check(&p);
    p
}
