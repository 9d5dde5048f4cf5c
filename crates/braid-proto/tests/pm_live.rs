//! The path manager on live connections, end to end through two `Endpoint`s in simulated
//! time: subflows removed, failed and recreated, paths gone dark, data-level
//! retransmission across subflows, fallback ending path management, per-connection
//! policies, fullmesh endpoints, and changes made mid-transfer. The harness is
//! `common/addr_net.rs` (shared with `addr_signalling.rs`).

#[path = "common/addr_net.rs"]
mod addr_net;
#[path = "common/conn_pair.rs"]
mod conn_pair;

use addr_net::*;

#[test]
fn remove_addr_of_id_zero_closes_the_initial_subflow_and_the_connection_goes_on() {
    //= rfc8684#3.4.2
    //= Address id 0 is the initial subflow's: removing it closes that subflow only; the
    //  connection continues on the others and no byte is lost.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    net.transfer(4 << 20, 11, |n| {
        n.tamper.inject_remove_to_a = Some(vec![0]);
    });
    let ca = net.a.counters();
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
    let m = net.a.mptcp_connection(net.c).unwrap();
    assert_eq!(
        m.subflow(0).map(|t| t.state()),
        Some(braid_proto::TcpState::Closed)
    );
    assert!(m.is_subflow_established(1));
    // Writing goes on: the connection is carried by the joined subflow now.
    let first = net.by_src[&ip("10.0.0.1")];
    net.transfer(1 << 20, 12, |_| {});
    assert_eq!(
        net.by_src[&ip("10.0.0.1")],
        first,
        "nothing more on the removed path"
    );
    assert!(net.a.conn_info(net.c).is_some());
}

#[test]
fn a_connection_whose_first_path_died_still_closes_cleanly() {
    //= rfc8684#3.3.3
    //= Once both DATA_FINs are exchanged the connection is over, cleanly, whatever ended its
    //  subflows: here the initial subflow's path goes dark mid-transfer, the subflow goes
    //  stale and is reset after the close, and the application sees no error.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(2 << 20, 21, |n| n.tamper.blackhole = Some(ip("10.0.0.1")));
    let (c, s) = (net.c, net.server());
    net.a.close(c).unwrap();
    net.b.close(s).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..200_000 {
        while matches!(net.a.read(c, &mut buf), Ok(n) if n > 0) {}
        while matches!(net.b.read(s, &mut buf), Ok(n) if n > 0) {}
        if !net.closed_a.is_empty() || !net.step() {
            break;
        }
    }
    assert!(net.a.counters().SubflowStale >= 1);
    assert_eq!(net.closed_a, vec![None], "closed without an error");
}

#[test]
fn data_the_peer_acknowledged_but_never_delivered_is_sent_again_on_another_subflow() {
    //= rfc8684#3.3.6
    //= The subflows acknowledge every segment but the DATA_ACK stands still: after the
    //  data-level retransmission timeout the first unacknowledged bytes go again on the
    //  other subflow, and the transfer completes.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(12 << 20, 41, |n| n.tamper.freeze_data_ack_to_a = true);
    let c = net.a.counters();
    assert_eq!(c.MPTCPRetrans, 1, "{c:?}");
    assert_eq!(c.SubflowStale, 0, "no subflow stalled: {c:?}");
    assert!(
        net.b.counters().DuplicateData >= 1,
        "the copy arrived second: {:?}",
        net.b.counters()
    );
}

#[test]
fn a_fallback_ends_path_management() {
    //= rfc8684#3.7
    //= After a fallback to plain TCP nothing MPTCP is sent: the path manager is told the
    //  connection is over and opens nothing more.
    let client = config(table(&[("10.0.1.1", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let server = config(table(&[], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    assert_eq!(net.a.counters().AddAddrTx, 1);
    net.transfer(1 << 20, 13, |n| n.tamper.strip_to_b = true);
    assert_eq!(net.b.counters().NoDSSFallback, 1);
    let closed = |ns: &[PmNotice]| {
        ns.iter()
            .filter(|n| n.event == PmEvent::ConnectionClosed)
            .count()
    };
    assert_eq!(closed(&net.notices_b), 1);
    // The server's manager is stopped; nothing new was signalled either way.
    let now = net.now;
    net.b
        .endpoint_add(now, ip("10.0.1.2"), None, None, None, EndpointFlags::SIGNAL)
        .unwrap();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.b.counters().AddAddrTx, 0);
    assert_eq!(closed(&net.notices_b), 1);
}

/// A policy that refuses every join.
#[derive(Debug)]
struct RefuseJoins;

impl PathManager for RefuseJoins {
    fn name(&self) -> &'static str {
        "refuse-joins"
    }
    fn handle(&mut self, _now: Instant, event: &PmEvent, out: &mut Vec<PmCommand>) {
        if let PmEvent::JoinRequested { addrs, .. } = event {
            out.push(PmCommand::RefuseJoin { addrs: *addrs });
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// A policy that opens one subflow from 10.0.1.1 as soon as the connection is established.
#[derive(Debug)]
struct OneMore {
    done: bool,
}

impl PathManager for OneMore {
    fn name(&self) -> &'static str {
        "one-more"
    }
    fn handle(&mut self, _now: Instant, event: &PmEvent, out: &mut Vec<PmCommand>) {
        if let PmEvent::ConnectionEstablished { remote, .. } = event {
            if !self.done {
                self.done = true;
                out.push(PmCommand::CreateSubflow {
                    local: ip("10.0.1.1"),
                    local_id: 7,
                    remote: *remote,
                    remote_id: 0,
                    backup: false,
                });
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
fn policies_are_chosen_per_connection_and_per_listener() {
    // The factories learn the role of the connection they serve.
    let one_more = PmFactory::new("one-more", |ctx| {
        assert!(ctx.active, "client side");
        Box::new(OneMore { done: false })
    });
    let refuse = PmFactory::new("refuse-joins", |ctx| {
        assert!(!ctx.active, "listener side");
        Box::new(RefuseJoins)
    });
    // The endpoints' own (kernel) managers would do nothing here: no endpoints.
    let client = config(table(&[], 2, 0), &[]);
    let server = config(table(&[], 8, 0), &[]);
    let net = Net::with_policies(
        client.clone(),
        server.clone(),
        Tamper::default(),
        "10.0.0.1:0",
        SERVER,
        Some(one_more.clone()),
        Some(refuse),
    );
    // The connection's policy opened a subflow; the listener's refused it.
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    assert_eq!(net.b.stats().join_refused, 1);
    assert_eq!(net.b.counters().MPJoinAckRx, 0);

    // With the kernel manager on the listener the same join is accepted, with our id.
    let mut net = Net::with_policies(
        client,
        server,
        Tamper::default(),
        "10.0.0.1:0",
        SERVER,
        Some(one_more),
        None,
    );
    assert_eq!(net.b.stats().join_refused, 0);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    let sm = net.b.mptcp_connection(net.server()).unwrap();
    assert_eq!(sm.subflow_info(1).map(|i| i.1), Some(7));
    net.transfer(512 << 10, 3, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > 0);
}

#[test]
fn a_fullmesh_endpoint_joins_every_peer_address() {
    // subflow + fullmesh: a subflow towards the peer's initial address at establishment,
    // and one towards each address it announces (accepted).
    let client = config(
        table(
            &[(
                "10.0.1.1",
                3,
                EndpointFlags::SUBFLOW | EndpointFlags::FULLMESH,
            )],
            4,
            1,
        ),
        &[],
    );
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 4, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(1 << 20, 21, |_| {});
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ca.MPJoinSynTx, 2);
    assert_eq!(cb.MPJoinAckRx, 2);
    let m = net.a.mptcp_connection(net.c).unwrap();
    let mut remotes: Vec<(u8, u8)> = (1..3)
        .filter_map(|i| m.subflow_info(i))
        .map(|(l, r, _)| (l, r))
        .collect();
    remotes.sort_unstable();
    assert_eq!(remotes, vec![(3, 0), (3, 1)]);
}

#[test]
fn built_in_policies_by_name_drive_real_connections() {
    assert!(PmFactory::by_name("bogus").is_none());
    assert!(PmFactory::by_name("ndiffports=9").is_none());
    assert_eq!(
        PmFactory::by_name("ndiffports=3").map(|f| f.name()),
        Some("ndiffports")
    );

    // ndiffports=3: three subflows over the one address pair, each from its own port,
    // all carrying data.
    let client = config(table(&[], 8, 0), &[]);
    let server = config(table(&[], 8, 0), &[]);
    let mut net = Net::with_policies(
        client,
        server,
        Tamper::default(),
        "10.0.0.1:0",
        SERVER,
        PmFactory::by_name("ndiffports=3"),
        None,
    );
    assert_eq!(net.a.counters().MPJoinSynTx, 2);
    assert_eq!(net.b.counters().MPJoinAckRx, 2);
    net.transfer(1 << 20, 31, |_| {});
    let m = net.a.mptcp_connection(net.c).unwrap();
    let infos = m.subflow_infos();
    assert_eq!(infos.len(), 3);
    assert!(
        infos.iter().all(|i| i.bytes_acked > 0),
        "every subflow carried data: {infos:?}"
    );
    let paths = net.a.subflow_addrs(net.c).unwrap();
    assert!(paths.iter().all(|(l, _)| l.ip() == ip("10.0.0.1")));
    let mut ports: Vec<u16> = paths.iter().map(|(l, _)| l.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "distinct source ports: {paths:?}");

    // fullmesh over two local addresses and a server that announces a second one
    // (add_addr_accepted 1): 2 x 2 subflows.
    let client = config(table(&[], 8, 1), &["10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 8, 0), &[]);
    let mut net = Net::with_policies(
        client,
        server,
        Tamper::default(),
        "10.0.0.1:0",
        SERVER,
        PmFactory::by_name("fullmesh"),
        None,
    );
    net.transfer(1 << 20, 32, |_| {});
    assert_eq!(net.a.counters().MPJoinSynTx, 3);
    assert_eq!(net.b.counters().MPJoinAckRx, 3);
    let paths = net.a.subflow_addrs(net.c).unwrap();
    for (l, r) in [
        ("10.0.0.1", "10.0.1.2"),
        ("10.0.1.1", "10.0.0.2"),
        ("10.0.1.1", "10.0.1.2"),
    ] {
        assert!(
            paths
                .iter()
                .any(|(a, b)| a.ip() == ip(l) && b.ip() == ip(r)),
            "{l} -> {r} in {paths:?}"
        );
    }
}

#[test]
fn a_subflow_that_failed_is_recreated_once_its_path_comes_back() {
    // braid's addition to the kernel's manager: the subflow from 10.0.1.1 dies with its
    // path (the TCB gives up after 4 retransmissions), is retried with backoff while the
    // path stays dark, and is re-created, carrying data again, once it is back.
    let mut client = config(table(&[("10.0.1.1", 1, EndpointFlags::SUBFLOW)], 2, 0), &[]);
    client.tcp.max_retransmissions = 4;
    let server = config(table(&[], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(1 << 20, 41, |_| {});
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    let before = net.by_src[&ip("10.0.1.1")];
    assert!(before > 0);

    net.tamper.blackhole = Some(ip("10.0.1.1"));
    net.transfer(1 << 20, 42, |_| {});
    net.run_for(Duration::from_secs(60));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowClosed { error: Some(_), .. }
    )));
    let tries_dark = net.a.counters().MPJoinSynTx;
    assert!(tries_dark >= 2, "retried while dark: {tries_dark}");
    assert_eq!(
        net.b.counters().MPJoinAckRx,
        1,
        "nothing got through the dark path"
    );

    net.tamper.blackhole = None;
    net.run_for(Duration::from_secs(70));
    assert_eq!(
        net.b.counters().MPJoinAckRx,
        2,
        "re-created once the path is back"
    );
    let mid = net.by_src[&ip("10.0.1.1")];
    net.transfer(2 << 20, 43, |_| {});
    assert!(
        net.by_src[&ip("10.0.1.1")] > mid,
        "the new subflow carries data"
    );
}

#[test]
fn a_subflow_added_made_backup_and_deleted_mid_transfer_loses_nothing() {
    // The control plane's sequence on a live connection: a subflow endpoint added, turned
    // into a backup (MP_PRIO), deleted (REMOVE_ADDR); every byte arrives once.
    let client = config(
        table(&[("10.0.1.1", 1, EndpointFlags::SUBFLOW)], 3, 0),
        &["10.0.0.1", "10.0.1.1", "10.0.2.1"],
    );
    let server = config(table(&[], 3, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(4 << 20, 31, |n| {
        let now = n.now;
        n.a.endpoint_add(
            now,
            ip("10.0.2.1"),
            Some(5),
            None,
            None,
            EndpointFlags::SUBFLOW,
        )
        .unwrap();
    });
    assert_eq!(net.b.counters().MPJoinAckRx, 2);
    net.transfer(8 << 20, 32, |n| {
        let now = n.now;
        n.a.endpoint_change(now, 5, braid_proto::pm::FlagChange::Backup)
            .unwrap();
    });
    assert!(net.b.counters().MPPrioRx >= 1);
    net.transfer(4 << 20, 33, |n| {
        let now = n.now;
        n.a.endpoint_delete(now, 5).unwrap();
    });
    net.transfer(1 << 20, 34, |_| {});
}
