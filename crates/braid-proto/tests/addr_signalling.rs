//! Address signalling and the in-stack path manager, end to end through two `Endpoint`s in
//! simulated time: ADD_ADDR with its HMAC, echo and retransmission (RFC 8684 §3.4.1),
//! REMOVE_ADDR (§3.4.2), MP_PRIO (§3.3.8), and the kernel path manager's endpoints and limits
//! driving them on live connections.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use braid_proto::endpoint::PmNotice;
use braid_proto::mptcp::MptcpCounters;
use braid_proto::pm::{
    EndpointFlags, EndpointTable, FlagChange, Limits, PathManager, PmCommand, PmEvent, PmFactory,
};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Duration, EndpointConfig, Event, Instant, ListenOptions,
};
use conn_pair::{byte, EpNet};

const SERVER: &str = "10.0.0.2:80";
const ADD_ADDR_TIMEOUT: Duration = Duration::from_secs(2);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the network does to packets.
#[derive(Default)]
struct Tamper {
    /// Flip a bit of the HMAC of ADD_ADDRs towards the client.
    forge_add_addr_to_a: bool,
    /// Drop this many ADD_ADDR echoes towards the server.
    drop_echoes_to_b: u32,
    /// Drop RSTs sent from this address.
    drop_rst_from: Option<IpAddr>,
    /// Put a REMOVE_ADDR with these ids on the next pure ACK towards the client.
    inject_remove_to_a: Option<Vec<u8>>,
    /// Strip every MPTCP option towards the server (a middlebox).
    strip_to_b: bool,
    /// Drop every packet from or to this address (a path gone dark).
    blackhole: Option<IpAddr>,
    /// Hold every DATA_ACK towards the client at the first one seen, while the subflows
    /// acknowledge everything (a receiver that does not move in-order data into the
    /// connection, as Linux's can when out-of-order data fills its buffer), until the
    /// client has retransmitted at the data level.
    freeze_data_ack_to_a: bool,
    frozen_data_ack: Option<u64>,
}

/// An address option seen on the wire.
#[derive(Debug, Clone)]
struct Seen {
    to_b: bool,
    src: IpAddr,
    opt: MptcpOption,
    payload: usize,
    with_dss: bool,
    with_timestamps: bool,
}

/// The shared endpoint pair (`net.a`, `net.b`, `net.now` reach it) with a tampering
/// network, a connection and what was seen.
struct Net {
    ep: EpNet,
    /// Payload bytes by source address.
    by_src: BTreeMap<IpAddr, u64>,
    tamper: Tamper,
    seen: Vec<Seen>,
    c: ConnectionHandle,
    s: Option<ConnectionHandle>,
    notices_a: Vec<PmNotice>,
    notices_b: Vec<PmNotice>,
    /// The client's `Closed` events: their errors.
    closed_a: Vec<Option<braid_proto::ConnectionError>>,
}

fn config(table: EndpointTable, local_addrs: &[&str]) -> EndpointConfig {
    EndpointConfig {
        pm_table: table,
        local_addrs: local_addrs.iter().map(|a| ip(a)).collect(),
        add_addr_timeout: Some(ADD_ADDR_TIMEOUT),
        ..Default::default()
    }
}

fn table(eps: &[(&str, u8, EndpointFlags)], subflows: u32, accepted: u32) -> EndpointTable {
    let mut t = EndpointTable::new();
    for (a, id, f) in eps {
        t.add(ip(a), Some(u32::from(*id)), None, None, *f).unwrap();
    }
    t.set_limits(Limits::new(subflows, accepted).unwrap());
    t
}

impl Net {
    /// Two endpoints, a connection from 10.0.0.1 to the server, run until established and
    /// the path managers are done.
    fn new(a: EndpointConfig, b: EndpointConfig, tamper: Tamper) -> Net {
        Net::between(a, b, tamper, "10.0.0.1:0", SERVER)
    }

    /// [`Net::new`] between given addresses.
    fn between(
        a: EndpointConfig,
        b: EndpointConfig,
        tamper: Tamper,
        client: &str,
        server: &str,
    ) -> Net {
        Net::with_policies(a, b, tamper, client, server, None, None)
    }

    /// [`Net::between`] with a path-manager policy for the connection and the listener.
    fn with_policies(
        a: EndpointConfig,
        b: EndpointConfig,
        tamper: Tamper,
        client: &str,
        server: &str,
        client_pm: Option<PmFactory>,
        server_pm: Option<PmFactory>,
    ) -> Net {
        let mut ep = EpNet::new(a, b, 0);
        let server: SocketAddr = server.parse().unwrap();
        let opts = ListenOptions { mptcp: true };
        match server_pm {
            Some(pm) => ep.b.listen_with_pm(server, opts, pm).unwrap(),
            None => ep.b.listen(server, opts).unwrap(),
        }
        let c =
            ep.a.connect_with_pm(
                Instant::ZERO,
                client.parse().unwrap(),
                server,
                ConnectOptions { mptcp: true },
                client_pm,
            )
            .unwrap();
        let mut net = Net {
            ep,
            by_src: BTreeMap::new(),
            tamper,
            seen: Vec::new(),
            c,
            s: None,
            notices_a: Vec::new(),
            notices_b: Vec::new(),
            closed_a: Vec::new(),
        };
        net.run_for(Duration::from_secs(1));
        assert!(net.s.is_some(), "accepted");
        assert!(net.a.is_mptcp(c));
        net
    }

    fn server(&self) -> ConnectionHandle {
        self.s.expect("accepted")
    }

    /// Everything both endpoints have to send, through [`Net::tamper`], onto the wire.
    fn flush(&mut self) {
        let (tamper, seen, by_src) = (&mut self.tamper, &mut self.seen, &mut self.by_src);
        self.ep
            .flush_with(|ep, to_b, pkt| Net::tamper(tamper, seen, by_src, ep, to_b, pkt));
    }

    /// What the network does to a packet: `None` drops it.
    fn tamper(
        tamper: &mut Tamper,
        seen: &mut Vec<Seen>,
        by_src: &mut BTreeMap<IpAddr, u64>,
        ep: &EpNet,
        to_b: bool,
        pkt: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let p = parse_tcp_packet(&pkt).unwrap();
        let (src, dst) = (p.ip.src_addr(), p.ip.dst_addr());
        let mut repr: TcpRepr = p.tcp.clone();
        let payload = p.payload.to_vec();
        if repr.flags.rst() && tamper.drop_rst_from == Some(src) {
            return None;
        }
        if tamper.blackhole.is_some_and(|a| a == src || a == dst) {
            return None;
        }
        let with_dss = repr
            .options
            .mptcp
            .iter()
            .any(|o| matches!(o, MptcpOption::Dss(_)));
        let mut drop = false;
        for o in &mut repr.options.mptcp {
            match o {
                MptcpOption::AddAddr { .. }
                | MptcpOption::RemoveAddr { .. }
                | MptcpOption::MpPrio { .. } => {
                    seen.push(Seen {
                        to_b,
                        src,
                        opt: o.clone(),
                        payload: payload.len(),
                        with_dss,
                        with_timestamps: repr.options.timestamps.is_some(),
                    });
                }
                _ => {}
            }
            match o {
                MptcpOption::AddAddr {
                    echo: false,
                    hmac: Some(h),
                    ..
                } if !to_b && tamper.forge_add_addr_to_a => *h ^= 1,
                MptcpOption::AddAddr { echo: true, .. } if to_b && tamper.drop_echoes_to_b > 0 => {
                    tamper.drop_echoes_to_b -= 1;
                    drop = true;
                }
                _ => {}
            }
        }
        if drop {
            return None;
        }
        if to_b && tamper.strip_to_b {
            repr.options.mptcp.clear();
        }
        if !to_b && tamper.freeze_data_ack_to_a {
            // Frozen until the copy arrived (the sender may cancel a copy it has not sent
            // yet once the true DATA_ACK comes).
            if ep.a.counters().MPTCPRetrans > 0 && ep.b.counters().DuplicateData > 0 {
                tamper.freeze_data_ack_to_a = false;
            }
            for o in &mut repr.options.mptcp {
                if let MptcpOption::Dss(d) = o {
                    if let (true, Some(ack)) = (tamper.freeze_data_ack_to_a, d.data_ack) {
                        d.data_ack = Some(*tamper.frozen_data_ack.get_or_insert(ack));
                    }
                }
            }
        }
        if !to_b && payload.is_empty() && !repr.flags.rst() {
            if let Some(ids) = tamper.inject_remove_to_a.take() {
                repr.options.sack_blocks.clear();
                repr.options
                    .mptcp
                    .push(MptcpOption::RemoveAddr { addr_ids: ids });
            }
        }
        *by_src.entry(src).or_default() += payload.len() as u64;
        let mut buf = vec![0u8; 2048];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &repr, &payload).unwrap();
        buf.truncate(n);
        Some(buf)
    }

    fn events(&mut self) {
        while let Some(ev) = self.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                self.s = Some(conn);
            }
        }
        while let Some(ev) = self.a.poll_event() {
            if let Event::Closed { error, .. } = ev {
                self.closed_a.push(error);
            }
        }
        while let Some(n) = self.a.poll_pm_event() {
            self.notices_a.push(n);
        }
        while let Some(n) = self.b.poll_pm_event() {
            self.notices_b.push(n);
        }
    }

    /// One step: transmit, advance to the next event, deliver. False when idle.
    fn step(&mut self) -> bool {
        self.events();
        self.flush();
        // Nothing left to transmit: the pair's own flush finds nothing.
        if !self.ep.step() {
            return false;
        }
        self.events();
        true
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            if !self.step() {
                break;
            }
            self.flush();
            if self.queue.is_empty()
                && [self.a.poll_timeout(), self.b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .all(|t| t > end)
            {
                break;
            }
        }
        self.now = self.now.max(end);
    }

    /// Sends `total` bytes client → server and checks them; `mid` runs once when half is
    /// through.
    fn transfer(&mut self, total: u64, seed: u64, mut mid: impl FnMut(&mut Net)) {
        let (c, s) = (self.c, self.server());
        let mut buf = vec![0u8; 16384];
        let (mut sent, mut received) = (0u64, 0u64);
        let mut mid_done = false;
        for _ in 0..4_000_000 {
            while sent < total {
                let n = (total - sent).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = byte(seed, sent + i as u64);
                }
                match self.a.write(c, &buf[..n]) {
                    Ok(w) => sent += w as u64,
                    Err(_) => break,
                }
            }
            loop {
                match self.b.read(s, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            assert_eq!(*b, byte(seed, received + i as u64), "byte-exact");
                        }
                        received += n as u64;
                    }
                }
            }
            if !mid_done && received >= total / 2 {
                mid_done = true;
                mid(self);
            }
            if received == total {
                break;
            }
            assert!(self.step(), "stalled at {received} of {total}");
        }
        assert_eq!(received, total);
    }

    fn count_seen(&self, to_b: bool, pred: impl Fn(&MptcpOption) -> bool) -> usize {
        self.seen
            .iter()
            .filter(|s| s.to_b == to_b && pred(&s.opt))
            .count()
    }
}

impl std::ops::Deref for Net {
    type Target = EpNet;
    fn deref(&self) -> &EpNet {
        &self.ep
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut EpNet {
        &mut self.ep
    }
}

fn add_addr(echo_wanted: bool) -> impl Fn(&MptcpOption) -> bool {
    move |o| matches!(o, MptcpOption::AddAddr { echo, .. } if *echo == echo_wanted)
}

/// The address counters of one side.
fn addr_counters(c: &MptcpCounters) -> [u64; 10] {
    [
        c.AddAddr,
        c.AddAddrTx,
        c.EchoAdd,
        c.EchoAddTx,
        c.AddAddrDrop,
        c.RmAddr,
        c.RmAddrTx,
        c.RmSubflow,
        c.MPPrioRx,
        c.MPPrioTx,
    ]
}

fn has_notice(ns: &[PmNotice], pred: impl Fn(&PmEvent) -> bool) -> bool {
    ns.iter().any(|n| pred(&n.event))
}

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
