//! The connection-level receive window (RFC 8684 §3.3.4): one window, relative to the
//! DATA_ACK and shared by every subflow. An application that stops reading stops the
//! sender with at most about one connection-level receive buffer beyond what it read, on
//! one subflow or two, without data-level retransmissions; once it reads again the window
//! update goes out (or, lost, the sender's probe of the closed window brings it) and the
//! transfer ends byte-exact. In simulated time over the in-process endpoint pair.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::sched::SchedulerKind;
use braid_proto::tcp::TcpConfig;
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::parse_tcp_packet;
use braid_proto::{ConnectionHandle, EndpointConfig, Event};
use conn_pair::EpNet;

const SERVER: &str = "10.0.0.2:80";
/// The receive buffer of both sides (data level and each subflow TCB).
const BUFFER: usize = 1 << 20;
/// Window rounding (the scale of a 1 MiB buffer is 16 bytes), plus a segment or two.
const SLACK: u64 = 8 * 1024;

fn byte(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 11) as u8
}

fn config(scheduler: SchedulerKind) -> EndpointConfig {
    EndpointConfig {
        scheduler,
        tcp: TcpConfig {
            recv_buffer: BUFFER,
            send_buffer: BUFFER,
            ..TcpConfig::default()
        },
        ..EndpointConfig::default()
    }
}

/// A client on `net.a` connected to a listener on `net.b`, with `joins` more subflows
/// from other addresses (all on the same wire).
fn pair(joins: usize) -> (EpNet, ConnectionHandle) {
    // Round robin puts data on every subflow (the default scheduler keeps an equally
    // fast second subflow on the same wire mostly idle).
    let sched = if joins > 0 {
        SchedulerKind::RoundRobin
    } else {
        SchedulerKind::Default
    };
    let mut net = EpNet::new(config(sched), config(sched), 0);
    let server: SocketAddr = SERVER.parse().unwrap();
    let c = net.open(server, true, true);
    for i in 0..joins {
        let local: SocketAddr = format!("10.0.{}.1:0", i + 1).parse().unwrap();
        net.a
            .request_subflow(net.now, c, local, server, false)
            .unwrap();
    }
    (net, c)
}

/// The run: the client writes without end; the server reads everything until it has
/// `stop_at` bytes, then nothing for `pause`, then everything again until `total`.
struct Run {
    net: EpNet,
    c: ConnectionHandle,
    s: Option<ConnectionHandle>,
    written: u64,
    read: u64,
    buf: Vec<u8>,
}

impl Run {
    fn new(joins: usize) -> Run {
        let (net, c) = pair(joins);
        Run {
            net,
            c,
            s: None,
            written: 0,
            read: 0,
            buf: vec![0u8; 65536],
        }
    }

    /// Steps the pair until `until`, the server reading only while `reading` and at most
    /// up to `read_limit` bytes in all; the client writes up to `total`.
    fn run(&mut self, until: Instant, reading: bool, read_limit: u64, total: u64) {
        while self.net.now < until {
            while let Some(ev) = self.net.b.poll_event() {
                if let Event::Accepted { conn, .. } = ev {
                    self.s = Some(conn);
                }
            }
            while self.net.a.poll_event().is_some() {}
            while self.written < total {
                let n = (total - self.written).min(16384) as usize;
                let chunk: Vec<u8> = (0..n as u64).map(|i| byte(self.written + i)).collect();
                match self.net.a.write(self.c, &chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(w) => self.written += w as u64,
                }
            }
            if let (Some(s), true) = (self.s, reading) {
                while self.read < read_limit {
                    let want = (read_limit - self.read).min(self.buf.len() as u64) as usize;
                    match self.net.b.read(s, &mut self.buf[..want]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            for (i, b) in self.buf[..n].iter().enumerate() {
                                assert_eq!(*b, byte(self.read + i as u64), "byte-exact");
                            }
                            self.read += n as u64;
                        }
                    }
                }
            }
            if !self.net.step() {
                break;
            }
        }
    }

    /// Bytes the client's subflows had acknowledged at the TCP level, summed (what the
    /// kernel's `ss` shows as bytes_acked), the SYNs not counted.
    fn subflow_acked(&self) -> u64 {
        let conn = self
            .net
            .a
            .mptcp_connection(self.c)
            .expect("client connection");
        conn.subflow_infos()
            .iter()
            .map(|s| s.bytes_acked)
            .sum::<u64>()
    }

    /// Bytes the client's subflows sent at least once, summed.
    fn subflow_sent(&self) -> u64 {
        let conn = self
            .net
            .a
            .mptcp_connection(self.c)
            .expect("client connection");
        conn.subflow_infos().iter().map(|s| s.bytes_sent).sum()
    }
}

/// The reader stops at 3 MiB for 4 s, then reads the rest (8 MiB in all).
fn slow_reader_is_bounded_and_resumes(joins: usize) {
    let total = 8u64 << 20;
    let stop_at = 3u64 << 20;
    let mut r = Run::new(joins);
    r.run(Instant::ZERO + Duration::from_secs(2), true, stop_at, total);
    assert_eq!(r.read, stop_at, "read up to the pause");
    let pause_end = r.net.now + Duration::from_secs(4);
    r.run(pause_end, false, stop_at, total);
    let conn = r.net.a.mptcp_connection(r.c).expect("client connection");
    assert!(conn.is_mptcp());
    let used = conn
        .subflow_infos()
        .iter()
        .filter(|s| s.bytes_sent > 0)
        .count();
    assert_eq!(used, joins + 1, "every subflow carried data");
    let info = conn.info();
    let (acked, sent) = (r.subflow_acked(), r.subflow_sent());
    let bound = stop_at + BUFFER as u64 + SLACK;
    println!(
        "{} subflow(s): read {stop_at}, data level sent {} acked {}, subflows sent {sent} \
         acked {acked} (bound {bound}), MPTCPRetrans {} / {}",
        joins + 1,
        info.bytes_sent,
        info.bytes_acked,
        r.net.a.counters().MPTCPRetrans,
        r.net.b.counters().MPTCPRetrans,
    );
    // Stopped: the window is closed, nothing more went out.
    assert!(
        info.bytes_acked <= bound,
        "data level acked {} > {bound}",
        info.bytes_acked
    );
    assert!(acked <= bound, "subflows acknowledged {acked} > {bound}");
    assert!(sent <= bound + 2 * 1448, "subflows sent {sent} > {bound}");
    assert!(
        acked >= stop_at + BUFFER as u64 / 2,
        "the window was used: {acked}"
    );
    assert_eq!(
        r.net.a.counters().MPTCPRetrans,
        0,
        "a closed window is no reason for data-level retransmissions"
    );
    assert_eq!(
        r.net.a.counters().SubflowStale,
        0,
        "a closed window is no stale path"
    );
    // The server holds no more than its receive buffer beyond what was read: the
    // data level and what its subflows took in.
    let server = r.net.b.mptcp_connection(r.s.unwrap()).expect("server");
    let taken: u64 = server
        .subflow_infos()
        .iter()
        .map(|s| s.bytes_received)
        .sum();
    assert!(
        taken <= bound,
        "the server's subflows took in {taken} > {bound}"
    );

    // Reading again: the window update goes out, the rest arrives byte-exact.
    let end = r.net.now + Duration::from_secs(20);
    r.run(end, true, total, total);
    assert_eq!(r.read, total, "everything arrived after the pause");
    assert_eq!(
        r.net.a.counters().MPTCPRetrans,
        0,
        "data-level retransmissions"
    );
}

#[test]
fn a_reader_that_stops_stops_the_sender_within_one_receive_buffer() {
    slow_reader_is_bounded_and_resumes(0);
}

#[test]
fn with_two_subflows_the_window_is_still_one_receive_buffer() {
    slow_reader_is_bounded_and_resumes(1);
}

/// Every segment the server sent while its application did not read, on either subflow,
/// advertised a right edge (DATA_ACK + window, in data sequence space) within what was read
/// plus the receive buffer, and the edge never moved left (beyond the window scale's
/// rounding): one window, shared by the subflows.
#[test]
fn every_subflow_advertises_the_same_right_edge_and_it_never_moves_left() {
    let total = 8u64 << 20;
    let stop_at = 3u64 << 20;
    let mut r = Run::new(1);
    while r.read < stop_at {
        let next = r.net.now + Duration::from_millis(1);
        r.run(next, true, stop_at, total);
    }
    // From the last read on.
    r.net.keep_log = true;
    r.net.log.clear();
    let pause_end = r.net.now + Duration::from_secs(1);
    r.run(pause_end, false, stop_at, total);
    let server = r.net.b.mptcp_connection(r.s.unwrap()).expect("server");
    let idsn = server.negotiated().expect("MPTCP").remote_idsn;
    let shift = server.subflow(0).expect("subflow").window_scales().0;
    let (mut max_edge, mut segments) = (0u64, 0u64);
    let mut ports = std::collections::BTreeSet::new();
    for (to_b, pkt) in &r.net.log {
        if *to_b {
            continue;
        }
        let seg = parse_tcp_packet(pkt).expect("valid packet");
        if seg.tcp.flags.syn() || seg.tcp.flags.rst() {
            continue;
        }
        let Some(ack) = seg.tcp.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::Dss(d) if d.data_ack_64 => d.data_ack,
            _ => None,
        }) else {
            continue;
        };
        let edge = ack.wrapping_sub(idsn).wrapping_sub(1) + (u64::from(seg.tcp.window) << shift);
        assert!(
            edge <= stop_at + BUFFER as u64,
            "segment {segments} advertised edge {edge} beyond {stop_at} read + {BUFFER}"
        );
        assert!(
            edge + (1 << shift) > max_edge,
            "the right edge moved left: {edge} after {max_edge}"
        );
        max_edge = max_edge.max(edge);
        segments += 1;
        ports.insert(seg.tcp.dst_port);
    }
    assert!(segments > 100, "{segments} segments seen");
    assert_eq!(ports.len(), 2, "both subflows advertised");
    assert!(
        max_edge + (1 << shift) > stop_at + BUFFER as u64,
        "the window was offered"
    );
}

/// Once the application reads again, the window update goes out at once (not at the
/// sender's next zero-window probe): within a few round trips the sender's data is
/// acknowledged beyond the point where it stopped.
#[test]
fn a_read_that_opens_the_window_sends_the_update_at_once() {
    for joins in [0, 1] {
        let total = 8u64 << 20;
        let stop_at = 3u64 << 20;
        let mut r = Run::new(joins);
        r.run(Instant::ZERO + Duration::from_secs(2), true, stop_at, total);
        let pause_end = r.net.now + Duration::from_secs(4);
        r.run(pause_end, false, stop_at, total);
        let stopped = r.subflow_acked();
        // The reader takes one buffer's worth (its window was closed): the sender goes on.
        let resume = r.net.now + Duration::from_millis(40);
        r.run(resume, true, stop_at + BUFFER as u64, total);
        let acked = r.subflow_acked();
        assert!(
            acked > stopped + BUFFER as u64 / 4,
            "{} subflow(s): 40 ms after the read, acknowledged {acked}, stopped at {stopped}",
            joins + 1
        );
    }
}

/// The window updates after the pause are lost: the sender, whose bytes beyond the closed
/// window were already acknowledged on a subflow (no TCP persist timer runs there), probes
/// the window from its data-level timer and resumes, without data-level retransmissions:
/// the answer, on one subflow, opens the other subflow's send window too.
#[test]
fn a_lost_window_update_is_recovered_by_the_senders_probe() {
    let total = 8u64 << 20;
    let stop_at = 3u64 << 20;
    let mut r = Run::new(1);
    r.run(Instant::ZERO + Duration::from_secs(2), true, stop_at, total);
    let pause_end = r.net.now + Duration::from_secs(2);
    r.run(pause_end, false, stop_at, total);
    let stopped = r.subflow_acked();
    // Everything towards the sender is lost for a while: the reader's updates vanish.
    r.net.cut[0] = true;
    let cut_end = r.net.now + Duration::from_millis(100);
    r.run(cut_end, true, stop_at + BUFFER as u64, total);
    r.net.cut[0] = false;
    let end = r.net.now + Duration::from_secs(20);
    r.run(end, true, total, total);
    assert_eq!(r.read, total, "everything arrived");
    assert!(r.subflow_acked() > stopped);
    assert_eq!(
        r.net.a.counters().MPTCPRetrans,
        0,
        "data-level retransmissions"
    );
}

/// An MP_PRIO asked for while the peer's window is closed does not ride on a TCP
/// zero-window probe (an old sequence number: the peer answers it and drops the rest,
/// options included, as Linux does); it follows on a pure ACK and arrives.
#[test]
fn a_signal_asked_for_while_probing_a_closed_window_is_not_lost_on_the_probe() {
    use braid_proto::mptcp::MptcpConfig;
    use braid_proto::tcp::Timer;
    use conn_pair::{Faults, Pair};

    let cfg = MptcpConfig {
        tcp: TcpConfig {
            recv_buffer: 128 * 1024,
            ..TcpConfig::default()
        },
        recv_buffer: 128 * 1024,
        ..MptcpConfig::default()
    };
    let mut p = Pair::new(cfg, Faults::default(), 7);
    let chunk = vec![0x5a_u8; 16384];
    let deadline = Instant::ZERO + Duration::from_secs(10);
    // The server never reads: the client ends up probing the closed window.
    let asked_at = loop {
        assert!(p.now < deadline, "the client never probed a closed window");
        while p.client.write(&chunk) > 0 {}
        p.poll_all();
        p.deliver_due();
        let persist = p.client.subflow(0).and_then(|t| t.timer(Timer::Persist));
        let next = [
            p.queue.keys().next().map(|k| k.0),
            p.client.poll_timeout(),
            p.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        match (persist, next) {
            // The persist timer is next: fire it, then ask for the MP_PRIO before the
            // probe is polled.
            (Some(at), Some(n)) if at <= n => {
                p.now = at;
                p.client.handle_timeout(at);
                p.client.set_backup(0, true).expect("MPTCP");
                break at;
            }
            _ => assert!(p.advance(), "nothing left to happen"),
        }
    };
    let end = asked_at + Duration::from_millis(500);
    while p.now < end {
        p.poll_all();
        p.deliver_due();
        if !p.advance() {
            break;
        }
    }
    assert_eq!(p.client.counters().MPPrioTx, 1);
    let server = p.server.as_ref().expect("server");
    assert_eq!(server.counters().MPPrioRx, 1, "the MP_PRIO arrived");
    assert_eq!(server.subflow_info(0).map(|i| i.2), Some(true));
}
