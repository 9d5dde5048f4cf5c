//! `Endpoint::request_subflow`: a subflow asked for right after `connect` joins only once
//! the connection is fully established (the peer DATA_ACKed data, or sent some), then
//! carries data; a plain-TCP peer, a failed join and the bound end in `SubflowFailed` or an
//! error. In simulated time over the in-process endpoint pair.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::{IpAddr, SocketAddr};

use braid_proto::endpoint::MAX_PENDING_JOINS;
use braid_proto::sched::SchedulerKind;
use braid_proto::{ConnectOptions, ConnectionHandle, EndpointConfig, Error, Event};
use conn_pair::{byte, EpNet};

const SERVER: &str = "10.0.0.2:80";
const SECOND: &str = "10.0.1.1:0";

fn pair(server_mptcp: bool) -> (EpNet, ConnectionHandle) {
    // Both addresses share one wire here: round robin puts data on every subflow (the
    // default scheduler rightly keeps the new one idle while the first is quicker).
    let cfg = EndpointConfig {
        scheduler: SchedulerKind::RoundRobin,
        ..EndpointConfig::default()
    };
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let server: SocketAddr = SERVER.parse().unwrap();
    let c = net.open(server, true, server_mptcp);
    (net, c)
}

/// What the run saw.
#[derive(Default)]
struct Seen {
    connected: bool,
    /// MP_JOIN SYNs sent when the connection came up.
    joins_at_connect: u64,
    /// The client's data-level bytes acknowledged and received when the first MP_JOIN SYN
    /// went out.
    at_join: Option<(u64, u64)>,
    failed: Vec<Event>,
    up: u64,
    down: u64,
}

/// Runs a transfer: the client sends `up` bytes (starting once connected), the server
/// `down` bytes, both close once everything arrived; returns what happened.
fn transfer(net: &mut EpNet, c: ConnectionHandle, up: u64, down: u64) -> Seen {
    let mut seen = Seen::default();
    let mut s = None;
    let (mut sent_up, mut sent_down) = (0u64, 0u64);
    let (mut closed_a, mut closed_b) = (false, false);
    let mut buf = vec![0u8; 16384];
    for _ in 0..2_000_000 {
        while let Some(ev) = net.a.poll_event() {
            match ev {
                Event::Connected(h) if h == c => {
                    seen.connected = true;
                    seen.joins_at_connect = net.a.counters().MPJoinSynTx;
                }
                e @ Event::SubflowFailed { .. } => seen.failed.push(e),
                _ => {}
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                s = Some(conn);
            }
        }
        if seen.at_join.is_none() && net.a.counters().MPJoinSynTx > 0 {
            let snap = net.a.snapshot(c).expect("live");
            seen.at_join = Some((snap.bytes_acked, snap.bytes_received));
        }
        if seen.connected {
            while sent_up < up {
                let n = (up - sent_up).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = byte(0, sent_up + i as u64);
                }
                match net.a.write(c, &buf[..n]) {
                    Ok(w) => sent_up += w as u64,
                    Err(_) => break,
                }
            }
            // Each side closes once the peer read everything: a known end of stream makes
            // the scheduler keep the tail off a new, slower subflow.
            if sent_up == up && seen.up == up && seen.down == down && !closed_a {
                net.a.close(c).unwrap();
                closed_a = true;
            }
            loop {
                match net.a.read(c, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            assert_eq!(*b, byte(0, seen.down + i as u64), "byte-exact down");
                        }
                        seen.down += n as u64;
                    }
                }
            }
        }
        if let Some(sc) = s {
            while sent_down < down {
                let n = (down - sent_down).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = byte(0, sent_down + i as u64);
                }
                match net.b.write(sc, &buf[..n]) {
                    Ok(w) => sent_down += w as u64,
                    Err(_) => break,
                }
            }
            if sent_down == down && seen.down == down && seen.up == up && !closed_b {
                net.b.close(sc).unwrap();
                closed_b = true;
            }
            loop {
                match net.b.read(sc, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            assert_eq!(*b, byte(0, seen.up + i as u64), "byte-exact up");
                        }
                        seen.up += n as u64;
                    }
                }
            }
        }
        if seen.up == up && seen.down == down && closed_a && closed_b {
            break;
        }
        if !net.step() {
            break;
        }
    }
    assert_eq!((seen.up, seen.down), (up, down), "every byte arrived");
    seen
}

fn second_ip() -> IpAddr {
    "10.0.1.1".parse().unwrap()
}

#[test]
fn a_join_requested_at_connect_waits_for_the_data_ack_then_carries_data() {
    let (mut net, c) = pair(true);
    let server: SocketAddr = SERVER.parse().unwrap();
    net.a
        .request_subflow(net.now, c, SECOND.parse().unwrap(), server, false)
        .unwrap();
    let seen = transfer(&mut net, c, 4 << 20, 0);
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    assert_eq!(
        seen.joins_at_connect, 0,
        "no join before the connection is up"
    );
    let (acked, received) = seen.at_join.expect("the join went out");
    assert!(
        acked > 0,
        "joined only after a DATA_ACK of data ({acked}, {received})"
    );
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    // Both subflows carried data.
    let first: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(net.up_by_src[&first] > 0);
    assert!(net.up_by_src.get(&second_ip()).copied().unwrap_or(0) > 0);
}

#[test]
fn data_from_the_peer_also_lets_the_join_go() {
    // The client sends nothing and keeps its direction open until the end: the server's
    // data (its DSS carrying a DATA_ACK) is what makes the connection fully established.
    let (mut net, c) = pair(true);
    let server: SocketAddr = SERVER.parse().unwrap();
    net.a
        .request_subflow(net.now, c, SECOND.parse().unwrap(), server, false)
        .unwrap();
    let seen = transfer(&mut net, c, 0, 4 << 20);
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    let (acked, received) = seen.at_join.expect("the join went out");
    assert_eq!(acked, 0, "the client sent nothing");
    assert!(received > 0, "joined only after data from the peer");
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    let first: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(net.down_by_dst[&first] > 0);
    assert!(net.down_by_dst.get(&second_ip()).copied().unwrap_or(0) > 0);
}

#[test]
fn a_plain_tcp_peer_fails_the_request_with_not_mptcp() {
    let (mut net, c) = pair(false);
    let server: SocketAddr = SERVER.parse().unwrap();
    let local: SocketAddr = SECOND.parse().unwrap();
    net.a
        .request_subflow(net.now, c, local, server, true)
        .unwrap();
    let seen = transfer(&mut net, c, 100_000, 0);
    assert_eq!(
        seen.failed,
        vec![Event::SubflowFailed {
            conn: c,
            local,
            remote: server,
            error: Error::NotMptcp
        }]
    );
    assert_eq!(net.a.counters().MPJoinSynTx, 0);
    assert_eq!(
        net.up_by_src.get(&second_ip()),
        None,
        "nothing left from the second address"
    );
}

#[test]
fn a_join_that_cannot_open_fails_with_the_add_subflow_error() {
    // Asked for on the initial subflow's own 4-tuple: taken when the join is tried.
    let (mut net, c) = pair(true);
    let snap = net.a.snapshot(c).expect("live");
    net.a
        .request_subflow(net.now, c, snap.local, snap.remote, false)
        .unwrap();
    let seen = transfer(&mut net, c, 200_000, 0);
    assert_eq!(
        seen.failed,
        vec![Event::SubflowFailed {
            conn: c,
            local: snap.local,
            remote: snap.remote,
            error: Error::AddrInUse
        }]
    );
    assert_eq!(net.a.counters().MPJoinSynTx, 0);
}

#[test]
fn requests_are_bounded_and_checked() {
    let (mut net, c) = pair(true);
    let server: SocketAddr = SERVER.parse().unwrap();
    let now = net.now;
    for i in 0..MAX_PENDING_JOINS {
        let local = SocketAddr::new(format!("10.0.{}.1", i + 1).parse().unwrap(), 0);
        assert_eq!(net.a.request_subflow(now, c, local, server, false), Ok(()));
    }
    let one_more: SocketAddr = "10.0.99.1:0".parse().unwrap();
    assert_eq!(
        net.a.request_subflow(now, c, one_more, server, false),
        Err(Error::TooManyPendingJoins)
    );
    assert_eq!(
        net.a
            .request_subflow(now, c, "0.0.0.0:0".parse().unwrap(), server, false),
        Err(Error::InvalidState)
    );
    assert_eq!(
        net.a
            .request_subflow(now, c, "[fd00::1]:0".parse().unwrap(), server, false),
        Err(Error::InvalidState)
    );
    assert_eq!(
        net.a
            .request_subflow(now, ConnectionHandle(77), one_more, server, false),
        Err(Error::UnknownConnection)
    );
    // A plain TCP connection says so at once.
    let plain = net
        .a
        .connect(
            now,
            "10.0.0.1:0".parse().unwrap(),
            server,
            ConnectOptions { mptcp: false },
        )
        .unwrap();
    assert_eq!(
        net.a.request_subflow(now, plain, one_more, server, false),
        Err(Error::NotMptcp)
    );
}
