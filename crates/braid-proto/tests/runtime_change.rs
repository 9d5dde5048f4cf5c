//! A live connection's scheduler and path manager can be replaced: the new scheduler decides
//! from the next round, the new manager learns the connection's state and acts on it at once
//! (a `fullmesh` manager opens the subflow the `kernel` one with no endpoints never would).
//! Plain TCP refuses both. In simulated time over the in-process endpoint pair.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::{IpAddr, SocketAddr};

use braid_proto::pm::PmFactory;
use braid_proto::sched::SchedulerKind;
use braid_proto::{ConnectionHandle, EndpointConfig, Error, Event};
use conn_pair::EpNet;

fn connected(client_addrs: &[&str], server_mptcp: bool) -> (EpNet, ConnectionHandle) {
    let a_cfg = EndpointConfig {
        local_addrs: client_addrs.iter().map(|a| a.parse().unwrap()).collect(),
        ..EndpointConfig::default()
    };
    let mut net = EpNet::new(a_cfg, EndpointConfig::default(), 0);
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let c = net.open(server, true, server_mptcp);
    let mut up = false;
    for _ in 0..10_000 {
        while let Some(ev) = net.a.poll_event() {
            up |= ev == Event::Connected(c);
        }
        while net.b.poll_event().is_some() {}
        if up {
            break;
        }
        assert!(net.step(), "the handshake stalled");
    }
    assert!(up, "never connected");
    (net, c)
}

/// Sends `n` bytes from the client and lets the server read them.
fn push(net: &mut EpNet, c: ConnectionHandle, n: usize) {
    let data = vec![7u8; n];
    let mut off = 0;
    let mut buf = vec![0u8; 65536];
    let mut server = None;
    for _ in 0..1_000_000 {
        if off < n {
            if let Ok(k) = net.a.write(c, &data[off..]) {
                off += k;
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                server = Some(conn);
            }
        }
        if let Some(s) = server {
            while let Ok(k) = net.b.read(s, &mut buf) {
                if k == 0 {
                    break;
                }
            }
        }
        while net.a.poll_event().is_some() {}
        let acked = net.a.snapshot(c).map_or(0, |i| i.bytes_acked);
        if off == n && acked >= n as u64 {
            return;
        }
        assert!(net.step(), "the transfer stalled");
    }
    panic!("not delivered");
}

#[test]
fn a_new_path_manager_acts_on_the_connection_as_it_is() {
    let (mut net, c) = connected(&["10.0.0.1", "10.0.1.1"], true);
    push(&mut net, c, 100_000);
    // The kernel manager with no endpoints opens nothing.
    assert_eq!(net.a.snapshot(c).unwrap().subflows.len(), 1);
    assert_eq!(net.a.counters().MPJoinSynTx, 0);
    let fullmesh = PmFactory::by_name("fullmesh").unwrap();
    net.a.set_path_manager(net.now, c, &fullmesh).unwrap();
    push(&mut net, c, 100_000);
    let snap = net.a.snapshot(c).unwrap();
    assert!(
        net.a.counters().MPJoinSynTx >= 1,
        "fullmesh opened no subflow: {snap:?}"
    );
    let from_second: IpAddr = "10.0.1.1".parse().unwrap();
    assert!(
        snap.subflows
            .iter()
            .any(|s| s.id > 0 && s.local.ip() == from_second && s.open),
        "{snap:?}"
    );
}

#[test]
fn a_new_scheduler_decides_from_the_next_round() {
    let (mut net, c) = connected(&["10.0.0.1"], true);
    assert_eq!(
        net.a.mptcp_connection(c).unwrap().scheduler_name(),
        SchedulerKind::Default.name()
    );
    net.a
        .set_scheduler(c, SchedulerKind::RoundRobin.build())
        .unwrap();
    assert_eq!(
        net.a.mptcp_connection(c).unwrap().scheduler_name(),
        SchedulerKind::RoundRobin.name()
    );
    push(&mut net, c, 200_000);
}

#[test]
fn plain_tcp_has_neither() {
    let (mut net, c) = connected(&["10.0.0.1"], false);
    assert_eq!(
        net.a.set_scheduler(c, SchedulerKind::MinRtt.build()),
        Err(Error::NotMptcp)
    );
    let now = net.now;
    assert_eq!(
        net.a
            .set_path_manager(now, c, &PmFactory::by_name("fullmesh").unwrap()),
        Err(Error::NotMptcp)
    );
    assert_eq!(
        net.a
            .set_scheduler(ConnectionHandle(99), SchedulerKind::MinRtt.build()),
        Err(Error::UnknownConnection)
    );
}
