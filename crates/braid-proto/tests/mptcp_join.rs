//! MP_JOIN (RFC 8684 §3.2) between two in-process `MptcpConnection`s over two simulated
//! paths: the client adds a second subflow after the MP_CAPABLE handshake, both subflows
//! carry data, forged HMACs are refused and counted, and a dying path's data is reinjected.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use braid_proto::mptcp::connection::{JoinError, JoinParams};
use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::tcp::TcbParams;
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::tcp::{TcpFlags, TcpOptions};
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};
use braid_proto::TcpState;

const CLIENT_KEY: u64 = 0x1122_3344_5566_7788;
const SERVER_KEY: u64 = 0x8877_6655_4433_2211;

fn addrs(path: usize) -> (IpAddr, IpAddr) {
    let p = path as u8;
    (
        IpAddr::V4(Ipv4Addr::new(10, 0, p, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, p, 2)),
    )
}

fn params(local: u16, remote: u16, iss: u32) -> TcbParams {
    TcbParams {
        local_port: local,
        remote_port: remote,
        iss,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    }
}

fn stream_byte(seed: u64, i: usize) -> u8 {
    ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) >> 7) as u8
}

#[derive(Clone, Copy, Default)]
struct Faults {
    /// Flip a bit of the HMAC of the server's MP_JOIN SYN/ACK.
    forge_synack: bool,
    /// Flip a bit of the HMAC of the client's MP_JOIN third ACK.
    forge_ack: bool,
    /// Path 1 drops everything once this many payload bytes crossed it towards the server.
    kill_path1_after: Option<u64>,
}

struct Net {
    now: Instant,
    client: MptcpConnection,
    server: Option<MptcpConnection>,
    /// Path of each client / server subflow id.
    client_paths: Vec<usize>,
    server_paths: Vec<usize>,
    queue: BTreeMap<(Instant, u64), (bool, usize, Vec<u8>)>,
    seq: u64,
    link_free: [[Instant; 2]; 2],
    faults: Faults,
    cfg: MptcpConfig,
    path1_payload: u64,
    path1_dead: bool,
    /// Payload bytes carried towards the server per path.
    up_bytes: [u64; 2],
    /// Payload bytes carried towards the client per path.
    down_bytes: [u64; 2],
    /// Client-side: a segment with payload was sent on subflow 1 before it was established.
    early_data: bool,
    /// RSTs with MP_TCPRST seen, by direction (to server, to client).
    mp_tcprst: [u64; 2],
    join_refused: Option<JoinError>,
}

impl Net {
    fn new(cfg: MptcpConfig, faults: Faults) -> Net {
        Net {
            now: Instant::ZERO,
            client: MptcpConnection::connect(&cfg, params(40000, 80, 1000), CLIENT_KEY),
            server: None,
            client_paths: vec![0],
            server_paths: Vec::new(),
            queue: BTreeMap::new(),
            seq: 0,
            link_free: [[Instant::ZERO; 2]; 2],
            faults,
            cfg,
            path1_payload: 0,
            path1_dead: false,
            up_bytes: [0; 2],
            down_bytes: [0; 2],
            early_data: false,
            mp_tcprst: [0; 2],
            join_refused: None,
        }
    }

    fn send(&mut self, to_server: bool, path: usize, mut repr: TcpRepr, payload: &[u8]) {
        for o in &mut repr.options.mptcp {
            match o {
                MptcpOption::MpJoinSynAck { hmac, .. } if self.faults.forge_synack => {
                    *hmac ^= 1;
                }
                MptcpOption::MpJoinAck { hmac } if self.faults.forge_ack => {
                    hmac[19] ^= 1;
                }
                MptcpOption::MpTcpRst { .. } => {
                    self.mp_tcprst[usize::from(!to_server)] += 1;
                }
                _ => {}
            }
        }
        if path == 1 {
            if to_server {
                self.path1_payload += payload.len() as u64;
            }
            if self
                .faults
                .kill_path1_after
                .is_some_and(|n| self.path1_payload > n)
            {
                self.path1_dead = true;
            }
            if self.path1_dead {
                return;
            }
        }
        if to_server {
            self.up_bytes[path] += payload.len() as u64;
        } else {
            self.down_bytes[path] += payload.len() as u64;
        }
        let (c, s) = addrs(path);
        let (src, dst) = if to_server { (c, s) } else { (s, c) };
        let mut buf = vec![0u8; 1600];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &repr, payload).expect("packet fits");
        buf.truncate(n);
        // Path 0: 100 Mbit/s, 10 ms; path 1: 50 Mbit/s, 20 ms (one way).
        let (per_us, delay) = if path == 0 { (100, 10) } else { (50, 20) };
        let dir = usize::from(to_server);
        let tx = Duration::from_micros(n as u64 * 8 / per_us);
        let start = self.link_free[path][dir].max(self.now);
        self.link_free[path][dir] = start + tx;
        let at = start + tx + Duration::from_millis(delay);
        self.seq += 1;
        self.queue.insert((at, self.seq), (to_server, path, buf));
    }

    fn poll_all(&mut self) {
        while let Some((id, repr, payload)) = self.client.poll_segment(self.now) {
            if id == 1 && !payload.is_empty() && !self.client.is_subflow_established(1) {
                self.early_data = true;
            }
            let path = self.client_paths.get(id).copied().unwrap_or(0);
            self.send(true, path, repr, &payload);
        }
        while let Some(s) = self.server.as_mut() {
            let Some((id, repr, payload)) = s.poll_segment(self.now) else {
                break;
            };
            let path = self.server_paths.get(id).copied().unwrap_or(0);
            self.send(false, path, repr, &payload);
        }
    }

    fn deliver_due(&mut self) {
        while let Some((&(at, k), _)) = self.queue.iter().next() {
            if at > self.now {
                break;
            }
            let Some((to_server, path, pkt)) = self.queue.remove(&(at, k)) else {
                break;
            };
            let seg = parse_tcp_packet(&pkt).expect("valid packet");
            if to_server {
                let known = self.server_paths.iter().position(|&p| p == path);
                match (self.server.as_mut(), known) {
                    (Some(s), Some(id)) => s.handle_segment(self.now, id, &seg.tcp, seg.payload),
                    (Some(s), None) => {
                        match s.accept_join(
                            self.now,
                            params(80, seg.tcp.src_port, 9_000_000),
                            &seg.tcp,
                            1,
                            0x5eed_0002,
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
                        self.server_paths.push(path);
                    }
                }
            } else if let Some(id) = self.client_paths.iter().position(|&p| p == path) {
                self.client
                    .handle_segment(self.now, id, &seg.tcp, seg.payload);
            }
        }
    }

    fn advance(&mut self) -> bool {
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

    fn step(&mut self) -> bool {
        self.poll_all();
        if !self.advance() {
            return false;
        }
        self.deliver_due();
        true
    }

    /// Runs until the client is established and then adds the subflow over path 1.
    fn establish_and_join(&mut self) {
        let mut added = false;
        for _ in 0..10_000 {
            if !added && self.client.take_events().established {
                let id = self
                    .client
                    .add_subflow(
                        params(40001, 80, 5000),
                        JoinParams {
                            local_id: 1,
                            remote_id: 0,
                            backup: false,
                            nonce: 0x5eed_0001,
                        },
                    )
                    .expect("join allowed");
                assert_eq!(id, 1);
                self.client_paths.push(1);
                added = true;
            }
            if added
                && (self.client.is_subflow_established(1)
                    || self
                        .client
                        .subflow(1)
                        .is_some_and(|t| t.state() == TcpState::Closed))
            {
                // Let the server see the last handshake segment too.
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

    /// A transfer of `up` bytes to the server and `down` bytes back; both byte-exact.
    fn transfer(&mut self, up: usize, down: usize) {
        let (mut up_w, mut down_w) = (0usize, 0usize);
        let mut up_r = Vec::with_capacity(up);
        let mut down_r = Vec::with_capacity(down);
        let (mut c_closed, mut s_closed) = (false, false);
        let mut buf = vec![0u8; 65536];
        for _ in 0..5_000_000u64 {
            while up_w < up {
                let chunk: Vec<u8> = (up_w..(up_w + 16384).min(up))
                    .map(|i| stream_byte(1, i))
                    .collect();
                let n = self.client.write(&chunk);
                up_w += n;
                if n < chunk.len() {
                    break;
                }
            }
            if up_w == up && !c_closed {
                self.client.close();
                c_closed = true;
            }
            loop {
                let n = self.client.read(&mut buf);
                if n == 0 {
                    break;
                }
                down_r.extend_from_slice(&buf[..n]);
            }
            let s = self.server.as_mut().expect("server");
            while down_w < down {
                let chunk: Vec<u8> = (down_w..(down_w + 16384).min(down))
                    .map(|i| stream_byte(2, i))
                    .collect();
                let n = s.write(&chunk);
                down_w += n;
                if n < chunk.len() {
                    break;
                }
            }
            if down_w == down && !s_closed {
                s.close();
                s_closed = true;
            }
            loop {
                let n = s.read(&mut buf);
                if n == 0 {
                    break;
                }
                up_r.extend_from_slice(&buf[..n]);
            }
            let done = self.client.is_read_finished()
                && s.is_read_finished()
                && self.client.is_write_finished()
                && s.is_write_finished();
            if done {
                break;
            }
            if !self.step() {
                break;
            }
        }
        assert_eq!(up_r.len(), up, "bytes to the server");
        assert_eq!(down_r.len(), down, "bytes to the client");
        assert!(up_r
            .iter()
            .enumerate()
            .all(|(i, &b)| b == stream_byte(1, i)));
        assert!(down_r
            .iter()
            .enumerate()
            .all(|(i, &b)| b == stream_byte(2, i)));
    }
}

#[test]
fn two_subflows_both_carry_data_byte_exact() {
    let mut n = Net::new(MptcpConfig::default(), Faults::default());
    n.establish_and_join();
    assert!(n.client.is_subflow_established(1));
    let srv = n.server.as_ref().expect("server");
    assert!(srv.is_subflow_established(1));
    assert_eq!(srv.counters().MPJoinSynRx, 1);
    assert_eq!(srv.counters().MPJoinAckRx, 1);
    assert_eq!(n.client.counters().MPJoinSynAckRx, 1);
    assert_eq!(n.client.counters().MPJoinSynTx, 1);
    assert_eq!(n.client.subflow_info(1), Some((1, 1, false)));
    assert_eq!(srv.subflow_info(1), Some((1, 1, false)));

    n.transfer(4 << 20, 2 << 20);
    assert!(!n.early_data, "data on the join before the fourth ACK");
    assert!(n.up_bytes[0] > 0 && n.up_bytes[1] > 0, "{:?}", n.up_bytes);
    assert!(
        n.down_bytes[0] > 0 && n.down_bytes[1] > 0,
        "{:?}",
        n.down_bytes
    );
    assert!(n.client.is_mptcp());
    assert_eq!(n.client.info().subflows, 1);
}

#[test]
fn forged_synack_hmac_is_reset_and_counted() {
    let faults = Faults {
        forge_synack: true,
        ..Faults::default()
    };
    let mut n = Net::new(MptcpConfig::default(), faults);
    n.establish_and_join();
    assert!(!n.client.is_subflow_established(1));
    assert_eq!(n.client.counters().MPJoinSynAckHMacFailure, 1);
    assert_eq!(n.client.counters().MPJoinSynAckRx, 0);
    assert!(n.mp_tcprst[0] >= 1, "MP_TCPRST towards the server");
    assert_eq!(
        n.client.subflow(1).map(|t| t.state()),
        Some(TcpState::Closed)
    );
    // The connection goes on over the initial subflow.
    n.transfer(256 << 10, 64 << 10);
    assert_eq!(n.up_bytes[1], 0);
}

#[test]
fn forged_third_ack_hmac_is_reset_and_counted() {
    let faults = Faults {
        forge_ack: true,
        ..Faults::default()
    };
    let mut n = Net::new(MptcpConfig::default(), faults);
    n.establish_and_join();
    // Give the client's subflow time to see the reset.
    for _ in 0..200 {
        if !n.step() {
            break;
        }
    }
    let srv = n.server.as_ref().expect("server");
    assert_eq!(srv.counters().MPJoinAckHMacFailure, 1);
    assert_eq!(srv.counters().MPJoinAckRx, 0);
    assert!(!srv.is_subflow_established(1));
    assert!(n.mp_tcprst[1] >= 1, "MP_TCPRST towards the client");
    assert_eq!(srv.counters().MPRstTx, 1);
    assert!(!n.client.is_subflow_established(1));
    n.transfer(256 << 10, 64 << 10);
    assert_eq!(n.up_bytes[1], 0, "no data on a refused subflow");
}

#[test]
fn a_dying_path_completes_on_the_other() {
    let mut cfg = MptcpConfig::default();
    cfg.tcp.max_retransmissions = 3;
    let faults = Faults {
        kill_path1_after: Some(300_000),
        ..Faults::default()
    };
    let mut n = Net::new(cfg, faults);
    n.establish_and_join();
    assert!(n.client.is_subflow_established(1));
    n.transfer(4 << 20, 0);
    assert!(n.path1_dead);
    assert!(n.up_bytes[1] > 0);
    assert!(n.client.counters().SubflowStale >= 1);
}

#[test]
fn a_stale_path_is_bypassed_long_before_its_subflow_gives_up() {
    // With Linux's 15 retransmissions the dead subflow's TCB would take minutes to give
    // up; the transfer completes because the stale subflow's data is reinjected at once.
    let cfg = MptcpConfig::default();
    let faults = Faults {
        kill_path1_after: Some(300_000),
        ..Faults::default()
    };
    let mut n = Net::new(cfg, faults);
    n.establish_and_join();
    n.transfer(4 << 20, 0);
    assert!(n.path1_dead);
    assert_eq!(n.client.counters().SubflowStale, 1);
    assert_ne!(
        n.client.subflow(1).map(|t| t.state()),
        Some(TcpState::Closed),
        "completed without waiting for the dead subflow to time out"
    );
}

#[test]
fn subflow_limit_and_not_mptcp_are_refused() {
    let cfg = MptcpConfig {
        max_subflows: 0,
        ..MptcpConfig::default()
    };
    let mut c = MptcpConnection::connect(&cfg, params(1, 2, 3), CLIENT_KEY);
    let join = JoinParams {
        local_id: 1,
        remote_id: 0,
        backup: true,
        nonce: 7,
    };
    // Before the handshake no keys: refused.
    assert_eq!(
        c.add_subflow(params(5, 2, 9), join),
        Err(JoinError::NotMptcp)
    );
    // Established with a limit of 0 additional subflows: refused on both sides.
    let mut n = Net::new(cfg, Faults::default());
    for _ in 0..100 {
        n.step();
    }
    assert!(n.client.is_mptcp());
    assert_eq!(
        n.client.add_subflow(params(5, 80, 9), join),
        Err(JoinError::Limit)
    );
    let mut syn = TcpRepr {
        src_port: 5,
        dst_port: 80,
        seq: 100,
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    };
    syn.options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 3,
        token: n.server.as_ref().expect("server").local_token(),
        nonce: 1,
    });
    let srv = n.server.as_mut().expect("server");
    assert_eq!(
        srv.accept_join(n.now, params(80, 5, 1), &syn, 1, 2, false),
        Err(JoinError::Limit)
    );
    assert_eq!(srv.counters().MPJoinSynRx, 1);
    // A wrong token is not a join for this connection.
    syn.options.mptcp.clear();
    syn.options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 3,
        token: srv.local_token() ^ 1,
        nonce: 1,
    });
    assert_eq!(
        srv.accept_join(n.now, params(80, 5, 1), &syn, 1, 2, false),
        Err(JoinError::NotJoin)
    );
}

#[test]
fn every_scheduler_moves_data_byte_exact_over_two_subflows_and_survives_a_dead_path() {
    use braid_proto::sched::SchedulerKind;
    for kind in [
        SchedulerKind::Default,
        SchedulerKind::MinRtt,
        SchedulerKind::RoundRobin,
        SchedulerKind::Redundant,
        SchedulerKind::Blest,
    ] {
        let cfg = MptcpConfig {
            scheduler: kind,
            ..MptcpConfig::default()
        };
        let mut n = Net::new(cfg.clone(), Faults::default());
        n.establish_and_join();
        n.transfer(2 << 20, 1 << 20);
        assert!(
            n.up_bytes[0] > 0 && n.up_bytes[1] > 0,
            "{kind}: {:?}",
            n.up_bytes
        );
        let faults = Faults {
            kill_path1_after: Some(100_000),
            ..Faults::default()
        };
        let mut n = Net::new(cfg, faults);
        n.establish_and_join();
        n.transfer(2 << 20, 0);
        assert!(n.path1_dead, "{kind}");
    }
}

#[test]
fn full_info_lists_every_subflow_and_marks_the_stale_one() {
    let faults = Faults {
        kill_path1_after: Some(100_000),
        ..Faults::default()
    };
    let mut n = Net::new(MptcpConfig::default(), faults);
    n.establish_and_join();
    let infos = n.client.subflow_infos();
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.established && !i.stale && !i.closed));
    assert_eq!((infos[1].local_id, infos[1].backup), (1, false));
    n.transfer(2 << 20, 0);
    let infos = n.client.subflow_infos();
    assert!(
        infos[1].stale && infos[1].stale_count == 1,
        "{:?}",
        infos[1]
    );
    assert!(infos[1].retransmits >= 1);
    assert!(infos[0].bytes_acked > infos[1].bytes_acked);
}
