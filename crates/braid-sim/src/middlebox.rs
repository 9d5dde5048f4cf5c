//! Reusable middleboxes for [`Link::add_middlebox`](crate::Link::add_middlebox): the devices
//! between MPTCP hosts that the RFC 8684 fallback and recovery rules exist for.
//!
//! - [`StripMptcp`] removes every MPTCP option (kind 30) from TCP segments: from SYNs only,
//!   from the first data segment on, or always.
//! - [`CorruptPayload`] flips a payload byte of chosen data segments and fixes the TCP
//!   checksum, so only the MPTCP DSS checksum can notice.
//! - [`Nat`] rewrites an inside host's source address and port to a public one on the way
//!   out and back on the way in (one [`Nat`], two middleboxes: [`Nat::outbound`] and
//!   [`Nat::inbound`]).
//!
//! Each parses packets with [`braid_proto::wire`]; packets that are not valid TCP over IP
//! pass untouched. A rewritten packet is emitted again with correct IP and TCP checksums.
//! Each middlebox counts the packets it changed in a [`Hits`] handle that stays readable
//! after the middlebox itself was moved into a link.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;

use braid_proto::time::Instant;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpRepr};

use crate::link::{Middlebox, Verdict};

/// A shared count of the packets a middlebox changed (or dropped).
#[derive(Debug, Clone, Default)]
pub struct Hits(Rc<Cell<u64>>);

impl Hits {
    /// How many packets were changed so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// An owned, decoded TCP packet that a middlebox may change and emit again.
struct Editable {
    src: IpAddr,
    dst: IpAddr,
    hop_limit: u8,
    tcp: TcpRepr,
    payload: Vec<u8>,
}

impl Editable {
    fn parse(packet: &[u8]) -> Option<Editable> {
        let seg = parse_tcp_packet(packet).ok()?;
        Some(Editable {
            src: seg.ip.src_addr(),
            dst: seg.ip.dst_addr(),
            hop_limit: seg.ip.hop_limit(),
            tcp: seg.tcp,
            payload: seg.payload.to_vec(),
        })
    }

    /// Writes the packet (with fresh checksums) over `packet`; false if it cannot be
    /// emitted (e.g. mixed address families), leaving `packet` as it was.
    fn emit(&self, packet: &mut Vec<u8>) -> bool {
        // IPv6 header (the larger) + the largest TCP header + the payload.
        let mut buf = vec![0u8; 40 + 60 + self.payload.len()];
        match emit_tcp_packet(
            &mut buf,
            self.src,
            self.dst,
            self.hop_limit,
            &self.tcp,
            &self.payload,
        ) {
            Ok(len) => {
                buf.truncate(len);
                *packet = buf;
                true
            }
            Err(_) => false,
        }
    }
}

/// Which segments [`StripMptcp`] strips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripWhen {
    /// Only segments with SYN set (the SYN and the SYN/ACK): the MP_CAPABLE handshake
    /// never gets through and the connection is plain TCP from the start.
    Syn,
    /// Every segment once `n` segments carrying payload went through untouched: with
    /// `n = 0` from the first data segment on (that one included); with `n = 1` the first
    /// data segment (the client's MP_CAPABLE third ACK with data) completes the handshake
    /// and then the options vanish (RFC 8684 §3.7, fallback after the handshake).
    /// Middleboxes made by [`StripMptcp::pair`] share the count, so data seen in one
    /// direction starts stripping in both.
    AfterData(u64),
    /// Every segment.
    Always,
}

/// Removes MPTCP options (TCP option kind 30) from TCP segments, the way some firewalls and
/// normalisers drop options they do not know. See [`StripWhen`].
#[derive(Debug)]
pub struct StripMptcp {
    when: StripWhen,
    /// Data segments seen (shared by a pair), counted until the trigger.
    data_seen: Rc<Cell<u64>>,
    hits: Hits,
}

impl StripMptcp {
    /// A stripper for one link direction.
    pub fn new(when: StripWhen) -> StripMptcp {
        StripMptcp {
            when,
            data_seen: Rc::new(Cell::new(0)),
            hits: Hits::default(),
        }
    }

    /// Two strippers (one per direction of a path) that share their trigger and counter.
    pub fn pair(when: StripWhen) -> (StripMptcp, StripMptcp) {
        let a = StripMptcp::new(when);
        let b = StripMptcp {
            when,
            data_seen: Rc::clone(&a.data_seen),
            hits: a.hits.clone(),
        };
        (a, b)
    }

    /// The count of segments this stripper changed.
    pub fn hits(&self) -> Hits {
        self.hits.clone()
    }
}

impl Middlebox for StripMptcp {
    fn process(&mut self, _now: Instant, packet: &mut Vec<u8>) -> Verdict {
        let Some(mut p) = Editable::parse(packet) else {
            return Verdict::Forward;
        };
        let strip = match self.when {
            StripWhen::Syn => p.tcp.flags.syn(),
            StripWhen::Always => true,
            StripWhen::AfterData(n) => {
                let seen = self.data_seen.get();
                if seen > n {
                    true
                } else if p.payload.is_empty() {
                    // Before the trigger only data segments count; after the n-th one
                    // went through, everything is stripped.
                    seen == n && n > 0
                } else {
                    // The (n + 1)-th data segment and every segment after it.
                    self.data_seen.set(seen + 1);
                    seen == n
                }
            }
        };
        if strip && !p.tcp.options.mptcp.is_empty() {
            p.tcp.options.mptcp.clear();
            if p.emit(packet) {
                self.hits.bump();
            }
        }
        Verdict::Forward
    }
}

/// Flips one payload byte of chosen data segments (segments with payload) and fixes the TCP
/// checksum, so the segment is valid TCP and only the MPTCP DSS checksum (RFC 8684 §3.3.1)
/// can tell. A single flipped byte always changes a ones'-complement sum, so the DSS
/// checksum is certain to catch it.
#[derive(Debug)]
pub struct CorruptPayload {
    /// Data segments to let through before corrupting.
    skip: u64,
    /// Data segments to corrupt after those.
    count: u64,
    seen: u64,
    hits: Hits,
}

impl CorruptPayload {
    /// Lets `skip` data segments through, then corrupts the next `count`.
    pub fn new(skip: u64, count: u64) -> CorruptPayload {
        CorruptPayload {
            skip,
            count,
            seen: 0,
            hits: Hits::default(),
        }
    }

    /// The count of segments corrupted.
    pub fn hits(&self) -> Hits {
        self.hits.clone()
    }
}

impl Middlebox for CorruptPayload {
    fn process(&mut self, _now: Instant, packet: &mut Vec<u8>) -> Verdict {
        if self.seen >= self.skip.saturating_add(self.count) {
            return Verdict::Forward;
        }
        let Some(mut p) = Editable::parse(packet) else {
            return Verdict::Forward;
        };
        let Some(first) = p.payload.first_mut() else {
            return Verdict::Forward;
        };
        self.seen += 1;
        if self.seen <= self.skip {
            return Verdict::Forward;
        }
        *first ^= 0xff;
        if p.emit(packet) {
            self.hits.bump();
        }
        Verdict::Forward
    }
}

#[derive(Debug)]
struct NatTable {
    public: IpAddr,
    next_port: u16,
    /// (inside address, inside port) → public port.
    out: BTreeMap<(IpAddr, u16), u16>,
    /// Public port → (inside address, inside port).
    back: BTreeMap<u16, (IpAddr, u16)>,
}

impl NatTable {
    fn map(&mut self, inside: (IpAddr, u16)) -> Option<u16> {
        if let Some(&port) = self.out.get(&inside) {
            return Some(port);
        }
        // Ports are handed out upwards and never reused; a full table refuses new flows.
        let port = self.next_port;
        if port == 0 {
            return None;
        }
        self.next_port = port.wrapping_add(1);
        self.out.insert(inside, port);
        self.back.insert(port, inside);
        Some(port)
    }
}

/// A source NAT (NAPT) for the hosts on one side of a link: every TCP flow leaving through
/// [`Nat::outbound`] gets the public address and a port of the NAT's own, and replies coming
/// in through [`Nat::inbound`] are translated back. Inbound packets to the public address
/// that match no mapping are dropped, as a NAT does; packets to other addresses pass.
#[derive(Debug, Clone)]
pub struct Nat {
    table: Rc<RefCell<NatTable>>,
    hits: Hits,
}

impl Nat {
    /// A NAT whose public side is `public`, mapping flows to ports from `first_port` up.
    pub fn new(public: IpAddr, first_port: u16) -> Nat {
        Nat {
            table: Rc::new(RefCell::new(NatTable {
                public,
                next_port: first_port.max(1),
                out: BTreeMap::new(),
                back: BTreeMap::new(),
            })),
            hits: Hits::default(),
        }
    }

    /// The middlebox for the direction leaving the inside hosts.
    pub fn outbound(&self) -> NatOutbound {
        NatOutbound(self.clone())
    }

    /// The middlebox for the direction towards the inside hosts.
    pub fn inbound(&self) -> NatInbound {
        NatInbound(self.clone())
    }

    /// The count of packets translated (both directions) or dropped inbound.
    pub fn hits(&self) -> Hits {
        self.hits.clone()
    }

    /// The mappings made so far: (inside address, inside port, public port).
    pub fn mappings(&self) -> Vec<(IpAddr, u16, u16)> {
        self.table
            .borrow()
            .out
            .iter()
            .map(|(&(a, p), &q)| (a, p, q))
            .collect()
    }
}

/// [`Nat`]'s outbound half: rewrites the source.
#[derive(Debug)]
pub struct NatOutbound(Nat);

/// [`Nat`]'s inbound half: rewrites the destination back.
#[derive(Debug)]
pub struct NatInbound(Nat);

impl Middlebox for NatOutbound {
    fn process(&mut self, _now: Instant, packet: &mut Vec<u8>) -> Verdict {
        let Some(mut p) = Editable::parse(packet) else {
            return Verdict::Forward;
        };
        let mut t = self.0.table.borrow_mut();
        let Some(port) = t.map((p.src, p.tcp.src_port)) else {
            self.0.hits.bump();
            return Verdict::Drop;
        };
        p.src = t.public;
        p.tcp.src_port = port;
        if p.emit(packet) {
            self.0.hits.bump();
            Verdict::Forward
        } else {
            self.0.hits.bump();
            Verdict::Drop
        }
    }
}

impl Middlebox for NatInbound {
    fn process(&mut self, _now: Instant, packet: &mut Vec<u8>) -> Verdict {
        let Some(mut p) = Editable::parse(packet) else {
            return Verdict::Forward;
        };
        let t = self.0.table.borrow();
        if p.dst != t.public {
            return Verdict::Forward;
        }
        self.0.hits.bump();
        let Some(&(addr, port)) = t.back.get(&p.tcp.dst_port) else {
            return Verdict::Drop;
        };
        p.dst = addr;
        p.tcp.dst_port = port;
        if p.emit(packet) {
            Verdict::Forward
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_proto::wire::mptcp::{Dss, MpCapable};
    use braid_proto::wire::{MptcpOption, TcpFlags, TcpOptions};
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
    const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn segment(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mptcp = if flags & TcpFlags::SYN != 0 {
            vec![MptcpOption::MpCapable(MpCapable::syn(1, 0x81))]
        } else {
            vec![MptcpOption::Dss(Dss {
                data_ack: Some(77),
                data_ack_64: true,
                mapping: None,
                data_fin: false,
            })]
        };
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: dport,
            seq: 1000,
            ack: 2000,
            flags: TcpFlags(flags),
            window: 1000,
            urgent: 0,
            options: TcpOptions {
                mss: (flags & TcpFlags::SYN != 0).then_some(1460),
                mptcp: mptcp.into(),
                ..TcpOptions::default()
            },
        };
        let mut buf = vec![0u8; 200 + payload.len()];
        let n = emit_tcp_packet(&mut buf, src, dst, 64, &tcp, payload).expect("emit");
        buf.truncate(n);
        buf
    }

    fn syn() -> Vec<u8> {
        segment(A, 40000, B, 5201, TcpFlags::SYN, &[])
    }

    fn data(payload: &[u8]) -> Vec<u8> {
        segment(A, 40000, B, 5201, TcpFlags::ACK, payload)
    }

    fn ack() -> Vec<u8> {
        segment(B, 5201, A, 40000, TcpFlags::ACK, &[])
    }

    fn has_mptcp(packet: &[u8]) -> bool {
        !parse_tcp_packet(packet)
            .expect("valid after the middlebox")
            .tcp
            .options
            .mptcp
            .is_empty()
    }

    #[test]
    fn strip_syn_strips_only_syns_and_keeps_the_rest() {
        let mut mb = StripMptcp::new(StripWhen::Syn);
        let mut p = syn();
        assert_eq!(mb.process(Instant::ZERO, &mut p), Verdict::Forward);
        assert!(!has_mptcp(&p));
        let seg = parse_tcp_packet(&p).expect("checksums valid");
        assert_eq!(seg.tcp.options.mss, Some(1460), "other options survive");
        let mut d = data(b"hello");
        mb.process(Instant::ZERO, &mut d);
        assert!(has_mptcp(&d));
        assert_eq!(mb.hits().get(), 1);
    }

    #[test]
    fn strip_from_first_data_triggers_both_directions() {
        let (mut up, mut down) = StripMptcp::pair(StripWhen::AfterData(0));
        let hits = up.hits();
        let mut s = syn();
        up.process(Instant::ZERO, &mut s);
        let mut a = ack();
        down.process(Instant::ZERO, &mut a);
        assert!(has_mptcp(&s) && has_mptcp(&a), "the handshake passes");
        let mut d = data(b"payload");
        up.process(Instant::ZERO, &mut d);
        assert!(!has_mptcp(&d));
        assert_eq!(parse_tcp_packet(&d).expect("valid").payload, b"payload");
        let mut a = ack();
        down.process(Instant::ZERO, &mut a);
        assert!(!has_mptcp(&a), "the other direction strips too");
        assert_eq!(hits.get(), 2);
    }

    #[test]
    fn strip_after_one_data_segment_lets_the_first_through() {
        let (mut up, mut down) = StripMptcp::pair(StripWhen::AfterData(1));
        let mut d = data(b"third ack with data");
        up.process(Instant::ZERO, &mut d);
        assert!(has_mptcp(&d), "the first data segment passes");
        let mut a = ack();
        down.process(Instant::ZERO, &mut a);
        assert!(!has_mptcp(&a), "everything after it is stripped, both ways");
        let mut d = data(b"more");
        up.process(Instant::ZERO, &mut d);
        assert!(!has_mptcp(&d));
        assert_eq!(up.hits().get(), 2);
    }

    #[test]
    fn strip_always_strips_everything() {
        let mut mb = StripMptcp::new(StripWhen::Always);
        for mut p in [syn(), ack(), data(b"x")] {
            mb.process(Instant::ZERO, &mut p);
            assert!(!has_mptcp(&p));
        }
        assert_eq!(mb.hits().get(), 3);
    }

    #[test]
    fn non_tcp_packets_pass_untouched() {
        let mut mb = StripMptcp::new(StripWhen::Always);
        let mut junk = vec![0x45, 0, 0, 3];
        mb.process(Instant::ZERO, &mut junk);
        assert_eq!(junk, vec![0x45, 0, 0, 3]);
        assert_eq!(mb.hits().get(), 0);
    }

    #[test]
    fn corrupt_flips_one_byte_of_the_chosen_data_segment_with_a_valid_tcp_checksum() {
        let mut mb = CorruptPayload::new(1, 1);
        let mut s = syn();
        let orig = s.clone();
        mb.process(Instant::ZERO, &mut s);
        assert_eq!(
            s, orig,
            "segments without payload are neither counted nor changed"
        );
        let mut first = data(b"abcd");
        mb.process(Instant::ZERO, &mut first);
        assert_eq!(parse_tcp_packet(&first).expect("valid").payload, b"abcd");
        let mut second = data(b"abcd");
        mb.process(Instant::ZERO, &mut second);
        let seg = parse_tcp_packet(&second).expect("TCP checksum fixed");
        assert_eq!(seg.payload, &[b'a' ^ 0xff, b'b', b'c', b'd']);
        assert!(!seg.tcp.options.mptcp.is_empty(), "options untouched");
        let mut third = data(b"abcd");
        mb.process(Instant::ZERO, &mut third);
        assert_eq!(parse_tcp_packet(&third).expect("valid").payload, b"abcd");
        assert_eq!(mb.hits().get(), 1);
    }

    #[test]
    fn nat_translates_out_and_back_and_drops_unknown_inbound() {
        let nat = Nat::new(PUBLIC, 61000);
        let (mut out, mut inb) = (nat.outbound(), nat.inbound());
        let mut s = syn();
        assert_eq!(out.process(Instant::ZERO, &mut s), Verdict::Forward);
        let seg = parse_tcp_packet(&s).expect("checksums fixed");
        assert_eq!(seg.ip.src_addr(), PUBLIC);
        assert_eq!(seg.tcp.src_port, 61000);
        assert!(!seg.tcp.options.mptcp.is_empty(), "MPTCP options survive");
        // A second flow from the same host gets the next port; the first keeps its own.
        let mut other = segment(A, 40001, B, 5201, TcpFlags::SYN, &[]);
        out.process(Instant::ZERO, &mut other);
        assert_eq!(parse_tcp_packet(&other).expect("valid").tcp.src_port, 61001);
        let mut again = data(b"xy");
        out.process(Instant::ZERO, &mut again);
        assert_eq!(parse_tcp_packet(&again).expect("valid").tcp.src_port, 61000);

        let mut reply = segment(B, 5201, PUBLIC, 61000, TcpFlags::ACK, b"r");
        assert_eq!(inb.process(Instant::ZERO, &mut reply), Verdict::Forward);
        let seg = parse_tcp_packet(&reply).expect("checksums fixed");
        assert_eq!((seg.ip.dst_addr(), seg.tcp.dst_port), (A, 40000));
        assert_eq!(seg.payload, b"r");

        let mut stray = segment(B, 5201, PUBLIC, 62000, TcpFlags::ACK, &[]);
        assert_eq!(inb.process(Instant::ZERO, &mut stray), Verdict::Drop);
        let mut elsewhere = ack();
        let orig = elsewhere.clone();
        assert_eq!(inb.process(Instant::ZERO, &mut elsewhere), Verdict::Forward);
        assert_eq!(elsewhere, orig, "not for the public address: untouched");
        assert_eq!(nat.mappings(), vec![(A, 40000, 61000), (A, 40001, 61001)]);
        assert_eq!(nat.hits().get(), 5);
    }
}
