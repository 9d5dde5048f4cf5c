//! `Endpoint::snapshot`: one picture of a connection and its subflows, for plain TCP, MPTCP
//! with a joined subflow, and a fallback; over the in-process endpoint pair.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::{ConnSnapshot, ConnectionHandle, EndpointConfig, Event, TcpState};
use conn_pair::EpNet;

const SERVER: &str = "10.0.0.2:80";

/// Connects (MPTCP or not) to a listener (MPTCP or not), joins from 10.0.1.1 once
/// connected if `join`, sends `bytes` from the client and runs until the server read them.
fn run(
    checksum: bool,
    client_mptcp: bool,
    server_mptcp: bool,
    join: bool,
    bytes: usize,
) -> (EpNet, ConnectionHandle, ConnectionHandle) {
    let cfg = EndpointConfig {
        mptcp_checksum: checksum,
        ..EndpointConfig::default()
    };
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let server: SocketAddr = SERVER.parse().unwrap();
    let c = net.open(server, client_mptcp, server_mptcp);
    let mut s = None;
    let (mut sent, mut received) = (0, 0);
    let mut buf = vec![0u8; 16384];
    for _ in 0..200_000 {
        while let Some(ev) = net.a.poll_event() {
            if ev == Event::Connected(c) && join {
                net.a
                    .add_subflow(net.now, c, "10.0.1.1:0".parse().unwrap(), server, false)
                    .unwrap();
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                s = Some(conn);
            }
        }
        let ready = !join
            || net
                .a
                .mptcp_connection(c)
                .is_some_and(|m| m.is_subflow_established(1));
        while ready && sent < bytes {
            let n = (bytes - sent).min(buf.len());
            match net.a.write(c, &buf[..n]) {
                Ok(w) => sent += w,
                Err(_) => break,
            }
        }
        if let Some(sc) = s {
            while let Ok(n) = net.b.read(sc, &mut buf) {
                if n == 0 {
                    break;
                }
                received += n;
            }
        }
        if received == bytes && s.is_some() {
            // A few more steps so the last ACKs arrive.
            for _ in 0..50 {
                net.step();
            }
            break;
        }
        net.step();
    }
    assert_eq!(received, bytes);
    (net, c, s.expect("accepted"))
}

fn check_subflow_sums(snap: &ConnSnapshot) {
    for (i, s) in snap.subflows.iter().enumerate() {
        assert_eq!(s.id, i);
        assert_eq!(
            s.open,
            s.state != TcpState::Closed && s.state != TcpState::TimeWait
        );
    }
}

#[test]
fn plain_tcp_has_one_subflow_its_own_tcb() {
    let (net, c, s) = run(false, false, true, false, 100_000);
    let snap = net.a.snapshot(c).expect("snapshot");
    assert!(!snap.mptcp && !snap.mptcp_requested && !snap.fallback && !snap.checksum);
    assert_eq!(snap.local_token, None);
    assert_eq!(snap.state, TcpState::Established);
    assert_eq!(snap.remote, SERVER.parse().unwrap());
    assert_eq!(snap.bytes_sent, 100_000);
    assert_eq!(snap.bytes_acked, 100_000);
    assert_eq!(snap.counters, Default::default());
    assert_eq!(snap.subflows.len(), 1);
    let sf = &snap.subflows[0];
    assert_eq!((sf.id, sf.local, sf.remote), (0, snap.local, snap.remote));
    assert_eq!(
        (sf.local_id, sf.remote_id, sf.backup, sf.stale),
        (0, 0, false, false)
    );
    assert!(sf.open && sf.rtt.is_some() && sf.cwnd > 0 && sf.mss == 1460);
    assert_eq!(sf.bytes_sent, 100_000);
    assert_eq!(sf.bytes_acked, 100_000);
    let info = net.a.conn_info(c).expect("info");
    assert_eq!(snap.rtt, info.rtt);
    assert_eq!(
        (sf.rto, sf.cwnd, sf.ssthresh),
        (info.rto, info.cwnd, info.ssthresh)
    );
    let peer = net.b.snapshot(s).expect("server snapshot");
    assert_eq!(peer.bytes_received, 100_000);
    assert_eq!(peer.subflows[0].bytes_received, 100_000);
    assert_eq!((peer.local, peer.remote), (snap.remote, snap.local));
    check_subflow_sums(&snap);
    // Unknown handles have no picture.
    assert_eq!(net.a.snapshot(ConnectionHandle(99)), None);
}

#[test]
fn mptcp_lists_every_subflow_with_its_ids_and_the_data_level_bytes() {
    let (net, c, s) = run(true, true, true, true, 3 << 20);
    let snap = net.a.snapshot(c).expect("snapshot");
    assert!(snap.mptcp && snap.mptcp_requested && !snap.fallback && snap.checksum);
    let m = net.a.mptcp_connection(c).expect("mptcp");
    assert_eq!(snap.local_token, Some(m.local_token()));
    assert_eq!(snap.counters, m.counters());
    assert_eq!(snap.counters.MPJoinSynTx, 1);
    assert_eq!(snap.bytes_sent, 3 << 20);
    assert_eq!(snap.bytes_acked, 3 << 20);
    assert_eq!(snap.subflows.len(), 2);
    check_subflow_sums(&snap);
    let (first, second) = (&snap.subflows[0], &snap.subflows[1]);
    assert_eq!((first.local, first.remote), (snap.local, snap.remote));
    assert_eq!(second.local.ip().to_string(), "10.0.1.1");
    assert_eq!((second.local_id, second.remote_id), (1, 0));
    assert!(first.open && second.open);
    // Both paths carried data; together at least every data byte.
    assert!(first.bytes_sent > 0 && second.bytes_sent > 0);
    assert!(first.bytes_sent + second.bytes_sent >= snap.bytes_sent);
    assert_eq!(
        second.bytes_sent,
        net.up_by_src[&"10.0.1.1".parse().unwrap()],
        "the subflow's bytes are what left from its address"
    );
    let peer = net.b.snapshot(s).expect("server snapshot");
    assert_eq!(peer.bytes_received, 3 << 20);
    assert_eq!(peer.subflows.len(), 2);
    assert_eq!(peer.counters.MPJoinAckRx, 1);
    assert_eq!(
        peer.subflows.iter().map(|s| s.bytes_received).sum::<u64>(),
        first.bytes_acked + second.bytes_acked
    );
}

#[test]
fn a_fallback_is_mptcp_requested_not_running() {
    let (net, c, _) = run(false, true, false, false, 10_000);
    let snap = net.a.snapshot(c).expect("snapshot");
    assert!(!snap.mptcp && snap.mptcp_requested && snap.fallback && !snap.checksum);
    assert_eq!(snap.local_token, None);
    assert_eq!(snap.counters.MPCapableFallbackSYNACK, 1);
    assert_eq!(snap.subflows.len(), 1);
    assert_eq!(snap.subflows[0].bytes_sent, 10_000);
    assert_eq!(snap.bytes_acked, 10_000);
}

/// `Event::Closed` carries the last picture: after the handle is gone, the final bytes of
/// every subflow are still known.
#[test]
fn closed_carries_the_final_picture() {
    let (mut net, c, s) = run(false, true, true, true, 1 << 20);
    net.a.close(c).unwrap();
    net.b.close(s).unwrap();
    let (mut a_closed, mut b_closed) = (None, None);
    for _ in 0..100_000 {
        while let Some(ev) = net.a.poll_event() {
            if let Event::Closed { conn, error, info } = ev {
                assert_eq!((conn, error), (c, None));
                a_closed = Some(info);
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Closed { conn, error, info } = ev {
                assert_eq!((conn, error), (s, None));
                b_closed = Some(info);
            }
        }
        if (a_closed.is_some() && b_closed.is_some()) || !net.step() {
            break;
        }
    }
    let a = a_closed.expect("client Closed");
    let b = b_closed.expect("server Closed");
    assert_eq!(net.a.snapshot(c), None, "the handle is gone");
    assert!(a.mptcp && b.mptcp);
    assert_eq!((a.bytes_sent, a.bytes_acked), (1 << 20, 1 << 20));
    assert_eq!(b.bytes_received, 1 << 20);
    assert_eq!(a.subflows.len(), 2);
    assert!(a.subflows.iter().all(|s| !s.open), "{:?}", a.subflows);
    // Every payload byte that left the client is in its subflows' final counts.
    for sf in &a.subflows {
        assert_eq!(
            sf.bytes_sent,
            net.up_by_src[&sf.local.ip()],
            "subflow {}",
            sf.id
        );
        assert!(sf.bytes_sent > 0);
    }
}

/// The peer's abort: the Closed event says FastClosed and its picture counts the
/// MP_FASTCLOSE received.
#[test]
fn a_fast_close_is_reported_with_its_picture() {
    let (mut net, c, s) = run(false, true, true, false, 10_000);
    net.a.abort(c).unwrap();
    let mut closed = None;
    for _ in 0..10_000 {
        while let Some(ev) = net.b.poll_event() {
            if let Event::Closed { conn, error, info } = ev {
                assert_eq!(conn, s);
                closed = Some((error, info));
            }
        }
        if closed.is_some() || !net.step() {
            break;
        }
    }
    let (error, info) = closed.expect("server Closed");
    assert_eq!(error, Some(braid_proto::ConnectionError::FastClosed));
    assert_eq!(info.counters.MPFastcloseRx, 1);
    assert_eq!(info.bytes_received, 10_000);
    assert!(info.subflows.iter().all(|s| s.state == TcpState::Closed));
}
