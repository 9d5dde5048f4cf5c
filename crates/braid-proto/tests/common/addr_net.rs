//! The harness of the address-signalling tests (`addr_signalling.rs`, `pm_live.rs`): two
//! `Endpoint`s in simulated time over a network that can tamper with what passes (forge an
//! ADD_ADDR's HMAC, drop echoes or RSTs, strip options, black-hole a path, freeze the
//! DATA_ACK), one connection between them, and what was seen on the wire. Include it after
//! `conn_pair` with `#[path = "common/addr_net.rs"] mod addr_net;`.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeMap;
pub use std::net::{IpAddr, SocketAddr};

pub use crate::conn_pair::{byte, EpNet};
pub use braid_proto::endpoint::PmNotice;
pub use braid_proto::mptcp::MptcpCounters;
pub use braid_proto::pm::{
    EndpointFlags, EndpointTable, FlagChange, Limits, PathManager, PmCommand, PmEvent, PmFactory,
};
pub use braid_proto::wire::mptcp::MptcpOption;
pub use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};
pub use braid_proto::{
    ConnectOptions, ConnectionHandle, Duration, EndpointConfig, Event, Instant, ListenOptions,
};

pub const SERVER: &str = "10.0.0.2:80";
pub const ADD_ADDR_TIMEOUT: Duration = Duration::from_secs(2);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the network does to packets.
#[derive(Default)]
pub struct Tamper {
    /// Flip a bit of the HMAC of ADD_ADDRs towards the client.
    pub forge_add_addr_to_a: bool,
    /// Drop this many ADD_ADDR echoes towards the server.
    pub drop_echoes_to_b: u32,
    /// Drop RSTs sent from this address.
    pub drop_rst_from: Option<IpAddr>,
    /// Put a REMOVE_ADDR with these ids on the next pure ACK towards the client.
    pub inject_remove_to_a: Option<Vec<u8>>,
    /// Strip every MPTCP option towards the server (a middlebox).
    pub strip_to_b: bool,
    /// Drop every packet from or to this address (a path gone dark).
    pub blackhole: Option<IpAddr>,
    /// Hold every DATA_ACK towards the client at the first one seen, while the subflows
    /// acknowledge everything (a receiver that does not move in-order data into the
    /// connection, as Linux's can when out-of-order data fills its buffer), until the
    /// client has retransmitted at the data level.
    pub freeze_data_ack_to_a: bool,
    pub frozen_data_ack: Option<u64>,
}

/// An address option seen on the wire.
#[derive(Debug, Clone)]
pub struct Seen {
    pub to_b: bool,
    pub src: IpAddr,
    pub opt: MptcpOption,
    pub payload: usize,
    pub with_dss: bool,
    pub with_timestamps: bool,
}

/// The shared endpoint pair (`net.a`, `net.b`, `net.now` reach it) with a tampering
/// network, a connection and what was seen.
pub struct Net {
    pub ep: EpNet,
    /// Payload bytes by source address.
    pub by_src: BTreeMap<IpAddr, u64>,
    pub tamper: Tamper,
    pub seen: Vec<Seen>,
    pub c: ConnectionHandle,
    pub s: Option<ConnectionHandle>,
    pub notices_a: Vec<PmNotice>,
    pub notices_b: Vec<PmNotice>,
    /// The client's `Closed` events: their errors.
    pub closed_a: Vec<Option<braid_proto::ConnectionError>>,
}

pub fn config(table: EndpointTable, local_addrs: &[&str]) -> EndpointConfig {
    EndpointConfig {
        pm_table: table,
        local_addrs: local_addrs.iter().map(|a| ip(a)).collect(),
        add_addr_timeout: Some(ADD_ADDR_TIMEOUT),
        ..Default::default()
    }
}

pub fn table(eps: &[(&str, u8, EndpointFlags)], subflows: u32, accepted: u32) -> EndpointTable {
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
    pub fn new(a: EndpointConfig, b: EndpointConfig, tamper: Tamper) -> Net {
        Net::between(a, b, tamper, "10.0.0.1:0", SERVER)
    }

    /// [`Net::new`] between given addresses.
    pub fn between(
        a: EndpointConfig,
        b: EndpointConfig,
        tamper: Tamper,
        client: &str,
        server: &str,
    ) -> Net {
        Net::with_policies(a, b, tamper, client, server, None, None)
    }

    /// [`Net::between`] with a path-manager policy for the connection and the listener.
    pub fn with_policies(
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

    pub fn server(&self) -> ConnectionHandle {
        self.s.expect("accepted")
    }

    /// Everything both endpoints have to send, through [`Net::tamper`], onto the wire.
    pub fn flush(&mut self) {
        let (tamper, seen, by_src) = (&mut self.tamper, &mut self.seen, &mut self.by_src);
        self.ep
            .flush_with(|ep, to_b, pkt| Net::tamper(tamper, seen, by_src, ep, to_b, pkt));
    }

    /// What the network does to a packet: `None` drops it.
    pub fn tamper(
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

    pub fn events(&mut self) {
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
    pub fn step(&mut self) -> bool {
        self.events();
        self.flush();
        // Nothing left to transmit: the pair's own flush finds nothing.
        if !self.ep.step() {
            return false;
        }
        self.events();
        true
    }

    pub fn run_for(&mut self, d: Duration) {
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
    pub fn transfer(&mut self, total: u64, seed: u64, mut mid: impl FnMut(&mut Net)) {
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

    pub fn count_seen(&self, to_b: bool, pred: impl Fn(&MptcpOption) -> bool) -> usize {
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

pub fn add_addr(echo_wanted: bool) -> impl Fn(&MptcpOption) -> bool {
    move |o| matches!(o, MptcpOption::AddAddr { echo, .. } if *echo == echo_wanted)
}

/// The address counters of one side.
pub fn addr_counters(c: &MptcpCounters) -> [u64; 10] {
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

pub fn has_notice(ns: &[PmNotice], pred: impl Fn(&PmEvent) -> bool) -> bool {
    ns.iter().any(|n| pred(&n.event))
}
