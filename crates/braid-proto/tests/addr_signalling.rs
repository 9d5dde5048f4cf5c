//! Address signalling and the in-stack path manager, end to end through two `Endpoint`s in
//! simulated time: ADD_ADDR with its HMAC, echo and retransmission (RFC 8684 §3.4.1),
//! REMOVE_ADDR (§3.4.2), MP_PRIO (§3.3.8), and the kernel path manager's endpoints and limits
//! driving them on live connections. The harness is
//! `common/addr_net.rs`; `pm_live.rs` has the path manager's live changes and failures.

#[path = "common/addr_net.rs"]
mod addr_net;
#[path = "common/conn_pair.rs"]
mod conn_pair;

use addr_net::*;

#[test]
fn announce_both_ways_with_echo_and_the_client_joins_the_announced_address() {
    //= rfc8684#3.4.1
    //= ADD_ADDR both ways, each echoed; an accepted address gets a subflow.
    let client = config(
        table(&[("10.0.1.1", 5, EndpointFlags::SIGNAL)], 2, 1),
        &["10.0.0.1", "10.0.1.1"],
    );
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(2 << 20, 7, |_| {});

    let (ca, cb) = (net.a.counters(), net.b.counters());
    // [AddAddr, AddAddrTx, EchoAdd, EchoAddTx, AddAddrDrop, RmAddr, RmAddrTx, RmSubflow,
    //  MPPrioRx, MPPrioTx]
    assert_eq!(addr_counters(&ca), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    // One join, from the client's address nearest the announced one.
    assert_eq!(ca.MPJoinSynTx, 1);
    assert_eq!(cb.MPJoinAckRx, 1);
    assert!(
        net.by_src[&ip("10.0.1.1")] > 100_000,
        "second subflow carried data"
    );
    assert!(
        net.by_src[&ip("10.0.0.1")] > 100_000,
        "first subflow carried data"
    );

    // ADD_ADDR rides on pure ACKs beside the timestamps and a DATA_ACK.
    let adds: Vec<&Seen> = net
        .seen
        .iter()
        .filter(|s| add_addr(false)(&s.opt))
        .collect();
    assert_eq!(adds.len(), 2);
    assert!(adds
        .iter()
        .all(|s| s.payload == 0 && s.with_dss && s.with_timestamps));

    let m = net.a.mptcp_connection(net.c).unwrap();
    let peers = m.peer_addrs();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].id, peers[0].addr, peers[0].port),
        (1, ip("10.0.1.2"), None)
    );
    let ann = m.announced_addrs();
    assert_eq!(ann.len(), 1);
    assert!(ann[0].echoed && ann[0].id == 5 && ann[0].retransmissions == 0);
    // The join uses the kernel's ids: our endpoint id 5, the peer's announced id 1.
    assert_eq!(m.subflow_info(1), Some((5, 1, false)));
    let sm = net.b.mptcp_connection(net.server()).unwrap();
    assert_eq!(sm.peer_addrs().len(), 1);
    assert_eq!(sm.peer_addrs()[0].id, 5);
    assert_eq!(sm.subflow_info(1), Some((1, 5, false)));

    // The monitor saw it all, tagged with each side's token.
    let token_a = m.local_token();
    assert!(net.notices_a.iter().all(|n| n.token == token_a));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::ConnectionEstablished { .. }
    )));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::AddAddrReceived { id: 1, .. }
    )));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::AddAddrEchoed { id: 5 }
    )));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowEstablished { .. }
    )));
    assert!(has_notice(&net.notices_b, |e| matches!(
        e,
        PmEvent::SubflowEstablished { .. }
    )));
}

#[test]
fn add_addr_accepted_zero_echoes_but_opens_nothing() {
    let client = config(table(&[], 2, 0), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(256 << 10, 1, |_| {});
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ca.MPJoinSynTx, 0, "limit add_addr_accepted 0");
    assert_eq!(net.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0), 0);
    // The address is still recorded.
    assert_eq!(net.a.mptcp_connection(net.c).unwrap().peer_addrs().len(), 1);
}

#[test]
fn forged_add_addr_hmac_is_dropped_counted_and_retransmitted() {
    //= rfc8684#3.4.1
    //= An ADD_ADDR whose HMAC fails is dropped: not echoed, not used; the sender
    //  retransmits it add_addr_retrans_max times and gives up.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let tamper = Tamper {
        forge_add_addr_to_a: true,
        ..Tamper::default()
    };
    let mut net = Net::new(client, server, tamper);
    net.run_for(ADD_ADDR_TIMEOUT * 10);
    let (ca, cb) = (net.a.counters(), net.b.counters());
    // The first transmission and 3 retransmissions, every one dropped.
    assert_eq!(addr_counters(&ca), [0, 0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(net.count_seen(false, add_addr(false)), 4);
    assert_eq!(net.count_seen(true, add_addr(true)), 0, "no echo");
    assert_eq!(ca.MPJoinSynTx, 0);
    assert!(net
        .a
        .mptcp_connection(net.c)
        .unwrap()
        .peer_addrs()
        .is_empty());
    let ann = net
        .b
        .mptcp_connection(net.server())
        .unwrap()
        .announced_addrs();
    assert_eq!(ann.len(), 1);
    assert!(!ann[0].echoed);
    assert_eq!(ann[0].retransmissions, 3);
    assert!(!has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::AddAddrReceived { .. }
    )));
}

#[test]
fn add_addr_is_retransmitted_until_echoed() {
    //= rfc8684#3.4.1
    //= Without the echo the ADD_ADDR is sent again after the timeout; once echoed it stops.
    let client = config(table(&[], 2, 0), &[]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let tamper = Tamper {
        drop_echoes_to_b: 2,
        ..Tamper::default()
    };
    let mut net = Net::new(client, server, tamper);
    net.run_for(ADD_ADDR_TIMEOUT * 10);
    let (ca, cb) = (net.a.counters(), net.b.counters());
    // Three ADD_ADDRs, each received and echoed; only the third echo arrives.
    assert_eq!(addr_counters(&ca), [3, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 3, 1, 0, 0, 0, 0, 0, 0, 0]);
    let ann = net
        .b
        .mptcp_connection(net.server())
        .unwrap()
        .announced_addrs();
    assert!(ann[0].echoed);
    assert_eq!(ann[0].retransmissions, 2);
    // The peer reports the address once, however often it arrives.
    let received = net
        .notices_a
        .iter()
        .filter(|n| matches!(n.event, PmEvent::AddAddrReceived { .. }))
        .count();
    assert_eq!(received, 1);
}

#[test]
fn remove_addr_closes_the_subflow_and_the_transfer_completes() {
    //= rfc8684#3.4.2
    //= Deleting the announced endpoint sends REMOVE_ADDR and closes its subflow; the peer
    //  closes its subflow on that address too, and the data is reinjected.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    // The server's own reset of the subflow is lost: the client closes it on REMOVE_ADDR.
    let tamper = Tamper {
        drop_rst_from: Some(ip("10.0.1.2")),
        ..Tamper::default()
    };
    let mut net = Net::new(client, server, tamper);
    let path1_before = std::cell::Cell::new(0u64);
    net.transfer(4 << 20, 9, |n| {
        path1_before.set(n.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0));
        let now = n.now;
        let ep = n.b.endpoint_delete(now, 1).unwrap();
        assert_eq!(ep.addr, ip("10.0.1.2"));
    });
    assert!(path1_before.get() > 0, "the subflow carried data before");
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 1, 1, 0, 0]);
    // REMOVE_ADDR went on the subflow that stays.
    let rm: Vec<&Seen> = net
        .seen
        .iter()
        .filter(|s| matches!(&s.opt, MptcpOption::RemoveAddr { addr_ids } if addr_ids == &[1]))
        .collect();
    assert_eq!(rm.len(), 1);
    assert_eq!(rm[0].src, ip("10.0.0.2"));
    let m = net.a.mptcp_connection(net.c).unwrap();
    assert!(m.peer_addrs().is_empty(), "the address is forgotten");
    assert!(!m.is_subflow_established(1));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::RemoveAddrReceived { ids } if ids == &[1]
    )));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowClosed { error: None, .. }
    )));
    // The add_addr_accepted slot is free again, but the address is gone: no new join.
    assert_eq!(ca.MPJoinSynTx, 1);
    // Nothing more on the removed path after the transfer.
    let after = net.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0);
    net.transfer(256 << 10, 3, |_| {});
    assert_eq!(net.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0), after);
}

#[test]
fn mp_prio_both_ways_and_the_backup_subflow_goes_idle() {
    //= rfc8684#3.3.8
    //= endpoint change ... backup sends MP_PRIO on the endpoint's subflows; the receiver
    //  marks the subflow backup and its scheduler stops using it.
    let client = config(
        table(&[("10.0.1.1", 2, EndpointFlags::SUBFLOW)], 2, 0),
        &["10.0.0.1", "10.0.1.1"],
    );
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    // The subflow endpoint opened a subflow towards the peer's initial address.
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    net.transfer(1 << 20, 1, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > 0);

    // Client → server.
    let now = net.now;
    let ep = net.a.endpoint_change(now, 2, FlagChange::Backup).unwrap();
    assert!(ep.flags.backup());
    net.run_for(Duration::from_millis(200));
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 0, 0, 1, 0]);
    let prio: Vec<&Seen> = net
        .seen
        .iter()
        .filter(|s| matches!(s.opt, MptcpOption::MpPrio { backup: true, .. }))
        .collect();
    assert_eq!(prio.len(), 1);
    assert_eq!(
        prio[0].src,
        ip("10.0.1.1"),
        "MP_PRIO on the subflow it changes"
    );
    assert_eq!(
        net.a
            .mptcp_connection(net.c)
            .unwrap()
            .subflow_info(1)
            .map(|i| i.2),
        Some(true)
    );
    let sm = net.b.mptcp_connection(net.server()).unwrap();
    assert_eq!(sm.subflow_info(1).map(|i| i.2), Some(true));
    assert!(has_notice(&net.notices_b, |e| matches!(
        e,
        PmEvent::SubflowPriority { backup: true, .. }
    )));

    // The client no longer sends on its backup subflow.
    let before = net.by_src[&ip("10.0.1.1")];
    net.transfer(1 << 20, 2, |_| {});
    assert_eq!(net.by_src[&ip("10.0.1.1")], before, "backup subflow idle");

    // And back, from the client's side again: nobackup.
    let now = net.now;
    net.a.endpoint_change(now, 2, FlagChange::NoBackup).unwrap();
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.a.counters().MPPrioTx, 2);
    assert_eq!(net.b.counters().MPPrioRx, 2);
    let sm = net.b.mptcp_connection(net.server()).unwrap();
    assert_eq!(sm.subflow_info(1).map(|i| i.2), Some(false));
    let before = net.by_src[&ip("10.0.1.1")];
    net.transfer(1 << 20, 4, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > before, "in use again");
}

#[test]
fn server_side_mp_prio_through_set_backup() {
    //= rfc8684#3.3.8
    //= Either host may send MP_PRIO.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[("10.0.1.2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    net.transfer(1 << 20, 4, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > 0, "in use before");
    let now = net.now;
    net.b.endpoint_change(now, 1, FlagChange::Backup).unwrap();
    net.run_for(Duration::from_millis(200));
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(cb.MPPrioTx, 1);
    assert_eq!(ca.MPPrioRx, 1);
    assert_eq!(ca.MPPrioTx, 0);
    assert_eq!(cb.MPPrioRx, 0);
    let m = net.a.mptcp_connection(net.c).unwrap();
    assert_eq!(m.subflow_info(1).map(|i| i.2), Some(true));
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowPriority { backup: true, .. }
    )));
    // Data from the client now avoids the subflow the server asked to be backup.
    let before = net.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0);
    net.transfer(1 << 20, 5, |_| {});
    assert_eq!(
        net.by_src.get(&ip("10.0.1.1")).copied().unwrap_or(0),
        before
    );
}

#[test]
fn endpoint_add_and_limits_on_a_live_connection() {
    // No endpoints at first; subflows limit 0.
    let client = config(table(&[], 0, 0), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    let now = net.now;
    let ep = net
        .a
        .endpoint_add(
            now,
            ip("10.0.1.1"),
            None,
            None,
            None,
            EndpointFlags::SUBFLOW,
        )
        .unwrap();
    assert_eq!(ep.id, 1);
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.a.counters().MPJoinSynTx, 0, "subflows limit 0");
    // Raising the limit opens the subflow at once.
    let now = net.now;
    net.a.set_limits(now, Limits::new(1, 0).unwrap());
    assert_eq!(net.a.pm_table().limits().subflows, 1);
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    net.transfer(1 << 20, 6, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > 0);
    // A second subflow endpoint stays unused: the limit is 1.
    let now = net.now;
    net.a
        .endpoint_add(
            now,
            ip("10.0.2.1"),
            Some(7),
            None,
            None,
            EndpointFlags::SUBFLOW,
        )
        .unwrap();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.a.counters().MPJoinSynTx, 1);

    // Deleting the endpoint in use closes its subflow (the kernel's endpoint delete); the
    // address was never announced but was used, so REMOVE_ADDR tells the peer, which
    // closes its side of the subflow too.
    let now = net.now;
    net.a.endpoint_delete(now, 1).unwrap();
    net.run_for(Duration::from_millis(500));
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [0, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowClosed { error: None, .. }
    )));
    assert!(has_notice(&net.notices_b, |e| matches!(
        e,
        PmEvent::RemoveAddrReceived { ids } if ids == &[1]
    )));
    net.transfer(256 << 10, 8, |_| {});
    let now = net.now;
    assert!(net.a.endpoint_delete(now, 1).is_err(), "unknown id");
}

#[test]
fn the_servers_subflows_limit_refuses_joins() {
    use braid_proto::pm::{KernelPm, PmConfig};
    // A policy without braid's re-creation of failed subflows, through the factory.
    let no_retry = PmFactory::new("kernel-noretry", |ctx| {
        let cfg = PmConfig {
            retry: false,
            add_addr_retrans_max: 0,
            ..PmConfig::default()
        };
        Box::new(KernelPm::with_config(
            cfg,
            ctx.table.endpoints(),
            ctx.table.limits(),
            ctx.local_addrs,
        ))
    });
    assert_eq!(no_retry.name(), "kernel-noretry");
    let mut client = config(
        table(
            &[
                ("10.0.1.1", 1, EndpointFlags::SUBFLOW),
                ("10.0.2.1", 2, EndpointFlags::SUBFLOW),
            ],
            2,
            0,
        ),
        &[],
    );
    client.path_manager = no_retry;
    let server = config(table(&[], 1, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.run_for(Duration::from_secs(5));
    // The client tries both; the server takes one and refuses the other.
    assert_eq!(net.a.counters().MPJoinSynTx, 2);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    assert_eq!(net.b.stats().join_refused, 1);
    assert!(has_notice(&net.notices_a, |e| matches!(
        e,
        PmEvent::SubflowClosed { error: Some(_), .. }
    )));
    net.transfer(256 << 10, 2, |_| {});
    assert!(net.by_src[&ip("10.0.1.1")] > 0);
}

#[test]
fn ipv6_add_addr_takes_the_place_of_the_data_ack_on_its_pure_ack() {
    //= rfc8684#3.4.1
    //= An IPv6 ADD_ADDR with its HMAC (28 bytes) and the timestamps leave no room for the
    //  DATA_ACK: the pure ACK carries the ADD_ADDR alone, as Linux's.
    let client = config(table(&[], 2, 1), &["fd00::1", "fd00:1::1"]);
    let server = config(table(&[("fd00:1::2", 1, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut net = Net::between(
        client,
        server,
        Tamper::default(),
        "[fd00::1]:0",
        "[fd00::2]:80",
    );
    net.transfer(1 << 20, 3, |_| {});
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    let add: Vec<&Seen> = net
        .seen
        .iter()
        .filter(|s| add_addr(false)(&s.opt))
        .collect();
    assert_eq!(add.len(), 1);
    assert!(add[0].with_timestamps && !add[0].with_dss && add[0].payload == 0);
    // The echo (20 bytes) does not fit beside the DATA_ACK either.
    let echo: Vec<&Seen> = net.seen.iter().filter(|s| add_addr(true)(&s.opt)).collect();
    assert_eq!(echo.len(), 1);
    assert!(!echo[0].with_dss);
    assert!(!net.a.mptcp_connection(net.c).unwrap().is_fallback());
    assert_eq!(ca.MPJoinSynTx, 1);
    assert!(
        net.by_src[&ip("fd00:1::1")] > 0,
        "joined the announced address"
    );
}

#[test]
fn add_addr_with_a_port_is_joined_on_that_port() {
    //= rfc8684#3.4.1
    //= The port field: the announced address is reachable on that port.
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let mut t = EndpointTable::new();
    t.add(
        ip("10.0.1.2"),
        Some(3),
        Some(8080),
        None,
        EndpointFlags::SIGNAL,
    )
    .unwrap();
    let server = config(t, &[]);
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(1 << 20, 3, |_| {});
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    let add: Vec<&Seen> = net
        .seen
        .iter()
        .filter(|s| add_addr(false)(&s.opt))
        .collect();
    assert_eq!(add.len(), 1);
    assert!(matches!(
        add[0].opt,
        MptcpOption::AddAddr {
            port: Some(8080),
            hmac: Some(_),
            ..
        }
    ));
    assert!(
        add[0].with_dss,
        "IPv4 with a port still fits beside the DATA_ACK"
    );
    let peers = net.a.mptcp_connection(net.c).unwrap().peer_addrs();
    assert_eq!(peers[0].port, Some(8080));
    let sm = net.b.mptcp_connection(net.server()).unwrap();
    assert_eq!(sm.subflow_info(1).map(|i| i.0), Some(3));
    assert_eq!(cb.MPJoinAckRx, 1);
    assert!(net.by_src[&ip("10.0.1.1")] > 0);
}

#[test]
fn the_clients_announcement_goes_out_on_an_idle_connection() {
    //= rfc8684#3.4.1
    //= The client announces as soon as MPTCP is confirmed, without data to carry it and long
    //  before the retransmission timer.
    let client = config(table(&[("10.0.1.1", 4, EndpointFlags::SIGNAL)], 2, 0), &[]);
    let mut server = config(table(&[], 2, 0), &[]);
    server.add_addr_timeout = Some(Duration::from_secs(120));
    let mut client = client;
    client.add_addr_timeout = Some(Duration::from_secs(120));
    let net = Net::new(client, server, Tamper::default());
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let ann = net.a.mptcp_connection(net.c).unwrap().announced_addrs();
    assert!(ann[0].echoed && ann[0].retransmissions == 0);
    assert!(net.now < Instant::ZERO + Duration::from_secs(2));
}

#[test]
fn add_addr_accepted_caps_the_addresses_joined() {
    //= rfc8684#3.4.1
    //= Every valid ADD_ADDR is echoed; only add_addr_accepted of them get a subflow.
    let client = config(table(&[], 4, 1), &["10.0.0.1", "10.0.1.1", "10.0.2.1"]);
    let server = config(
        table(
            &[
                ("10.0.1.2", 1, EndpointFlags::SIGNAL),
                ("10.0.2.2", 2, EndpointFlags::SIGNAL),
            ],
            4,
            0,
        ),
        &[],
    );
    let mut net = Net::new(client, server, Tamper::default());
    net.transfer(512 << 10, 5, |_| {});
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&ca), [2, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(addr_counters(&cb), [0, 2, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ca.MPJoinSynTx, 1, "one address accepted");
    assert_eq!(cb.MPJoinAckRx, 1);
    assert_eq!(net.a.mptcp_connection(net.c).unwrap().peer_addrs().len(), 2);
    // The first announced address was the one joined, from the nearest local address.
    assert!(net.by_src[&ip("10.0.1.1")] > 0);
    assert_eq!(net.by_src.get(&ip("10.0.2.1")).copied().unwrap_or(0), 0);
}

#[test]
fn replacing_and_flushing_the_table_on_a_live_connection() {
    let client = config(table(&[], 2, 1), &["10.0.0.1", "10.0.1.1"]);
    let server = config(table(&[], 2, 0), &[]);
    let mut net = Net::new(client, server, Tamper::default());
    assert_eq!(addr_counters(&net.b.counters()), [0; 10]);

    // A new table: one signal endpoint (announced at once, and joined by the client).
    let now = net.now;
    net.b
        .set_pm_endpoints(now, table(&[("10.0.1.2", 9, EndpointFlags::SIGNAL)], 2, 0));
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.b.pm_table().endpoints().len(), 1);
    assert_eq!(
        addr_counters(&net.b.counters()),
        [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(net.a.counters().MPJoinSynTx, 1);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    assert!(has_notice(&net.notices_b, |e| matches!(
        e,
        PmEvent::SubflowEstablished { .. }
    )));

    // Flushing withdraws it: REMOVE_ADDR, the subflow on it closed on both sides.
    let now = net.now;
    let gone = net.b.endpoint_flush(now);
    assert_eq!(gone.len(), 1);
    net.run_for(Duration::from_millis(500));
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!(addr_counters(&cb), [0, 1, 1, 0, 0, 0, 1, 1, 0, 0]);
    // REMOVE_ADDR (on the initial subflow) arrives before the server's reset of the other:
    // the client closes its side itself.
    assert_eq!(addr_counters(&ca), [1, 0, 0, 1, 0, 1, 0, 1, 0, 0]);
    assert!(net
        .a
        .mptcp_connection(net.c)
        .unwrap()
        .peer_addrs()
        .is_empty());
    assert!(!net
        .b
        .mptcp_connection(net.server())
        .unwrap()
        .is_subflow_established(1));
    assert!(net.b.pm_table().endpoints().is_empty());
    net.transfer(256 << 10, 1, |_| {});
}
