//! The endpoint's receive budget (`EndpointConfig::recv_budget`): every connection's
//! receive window is held to an equal share of it (at least `MIN_WINDOW_SHARE`), so that
//! however many connections send at once, the bytes they are invited to send fit the queue
//! in front of the endpoint. MPTCP (the connection-level window) and plain TCP alike; each
//! transfer still ends byte-exact. In simulated time over the in-process endpoint pair.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use braid_proto::time::{Duration, Instant};
use braid_proto::wire::parse_tcp_packet;
use braid_proto::{ConnectOptions, EndpointConfig, Event, ListenOptions, MIN_WINDOW_SHARE};
use conn_pair::{App, EpNet};

/// Connections sending at once.
const N: usize = 8;
/// Bytes each one sends.
const EACH: u64 = 300_000;
/// Each connection's share of the budget the tests give.
const SHARE: u64 = 24 * 1024;

/// What a run saw: the largest window the receiving endpoint advertised (scaled) once
/// each connection was under way, and whether every byte arrived intact.
struct Seen {
    max_window: u64,
    complete: bool,
}

/// `N` connections from a to b, each sending `EACH` bytes, with b's receive budget
/// `budget`.
fn run(budget: Option<usize>, mptcp: bool) -> Seen {
    let b_cfg = EndpointConfig {
        recv_budget: budget,
        ..EndpointConfig::default()
    };
    let mut net = EpNet::new(EndpointConfig::default(), b_cfg, 0);
    net.keep_log = true;
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    net.b.listen(server, ListenOptions { mptcp }).unwrap();
    let mut senders: Vec<App> = (0..N)
        .map(|_| {
            let conn = net
                .a
                .connect(
                    net.now,
                    "10.0.0.1:0".parse().unwrap(),
                    server,
                    ConnectOptions { mptcp },
                )
                .unwrap();
            let (mut a, _) = App::pair(EACH, 0);
            a.conn = Some(conn);
            a
        })
        .collect();
    let mut receivers: Vec<App> = Vec::new();
    let end = Instant::ZERO + Duration::from_secs(60);
    // The end of each stream: read to its end, or (plain TCP, whose connection goes once
    // both FINs are through) closed without an error after every byte was read.
    let done = |r: &[App]| {
        r.len() == N
            && r.iter()
                .all(|a| a.received == EACH && (a.eof || a.closed == Some(None)))
    };
    while net.now < end && !done(&receivers) {
        while let Some(ev) = net.b.poll_event() {
            match ev {
                Event::Accepted { conn, .. } => {
                    let (_, mut b) = App::pair(EACH, 0);
                    b.conn = Some(conn);
                    receivers.push(b);
                }
                Event::Closed { conn, error, .. } => {
                    if let Some(b) = receivers.iter_mut().find(|b| b.conn == Some(conn)) {
                        b.closed = Some(error);
                    }
                }
                _ => {}
            }
        }
        while net.a.poll_event().is_some() {}
        for a in &mut senders {
            a.step(&mut net.a);
        }
        for b in &mut receivers {
            b.step(&mut net.b);
        }
        if !net.step() {
            break;
        }
    }
    let complete = done(&receivers) && receivers.iter().all(|r| !r.mismatch);
    // The window b advertised to each client port, scaled by the shift of its SYN/ACK,
    // once the first 100 kB of that connection were acknowledged: a window advertised
    // before the other connections arrived (a whole budget to the first) is not taken
    // back, only used up.
    let mut syn_ack: BTreeMap<u16, (u8, u32)> = BTreeMap::new();
    let mut max_window = 0;
    for (to_b, pkt) in &net.log {
        if *to_b {
            continue;
        }
        let Ok(seg) = parse_tcp_packet(pkt) else {
            continue;
        };
        let t = &seg.tcp;
        if t.flags.syn() {
            let shift = t.options.window_scale.unwrap_or(0);
            syn_ack.insert(t.dst_port, (shift, t.ack));
            continue;
        }
        let Some(&(shift, first)) = syn_ack.get(&t.dst_port) else {
            continue;
        };
        if t.ack.wrapping_sub(first) > 100_000 {
            max_window = max_window.max(u64::from(t.window) << shift);
        }
    }
    Seen {
        max_window,
        complete,
    }
}

#[test]
fn every_connection_keeps_to_its_share_of_the_budget_and_completes() {
    for mptcp in [true, false] {
        let free = run(None, mptcp);
        assert!(free.complete, "mptcp {mptcp}: without a budget");
        // Without a budget the windows open well beyond the share the budget would give.
        assert!(
            free.max_window > 2 * SHARE,
            "mptcp {mptcp}: {}",
            free.max_window
        );
        let held = run(Some(N * SHARE as usize), mptcp);
        assert!(held.complete, "mptcp {mptcp}: with a budget");
        assert!(
            held.max_window <= SHARE,
            "mptcp {mptcp}: a window of {} beyond the share {SHARE}",
            held.max_window
        );
    }
}

#[test]
fn a_tiny_budget_still_leaves_each_connection_a_few_segments() {
    for mptcp in [true, false] {
        let held = run(Some(1), mptcp);
        assert!(held.complete, "mptcp {mptcp}");
        assert!(
            held.max_window <= MIN_WINDOW_SHARE && held.max_window > MIN_WINDOW_SHARE / 2,
            "mptcp {mptcp}: {}",
            held.max_window
        );
    }
}
