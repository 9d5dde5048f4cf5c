//! Tiny test nodes: a pinger that sends numbered packets, a sink that records them (and may
//! acknowledge each one), and a window-limited blaster for bulk runs.

#![allow(dead_code)]

use std::any::Any;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

use braid_proto::time::{Duration, Instant};
use braid_sim::Node;

/// Length of the IPv4 + TCP headers before the sequence number.
pub const HEADER_LEN: usize = 40;
/// Smallest packet the test nodes build: headers plus an 8-byte sequence number.
pub const MIN_LEN: usize = HEADER_LEN + 8;

/// An IPv4/TCP packet of `len` bytes (at least [`MIN_LEN`]) carrying `seq` after the headers.
pub fn numbered_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u64,
    len: usize,
) -> Vec<u8> {
    let len = len.max(MIN_LEN);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for chunk in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..28].copy_from_slice(&(seq as u32).to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x18; // PSH, ACK
    p[34..36].copy_from_slice(&65535u16.to_be_bytes());
    p[HEADER_LEN..MIN_LEN].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number a [`numbered_packet`] carries.
pub fn seq_of(packet: &[u8]) -> Option<u64> {
    let bytes = packet.get(HEADER_LEN..MIN_LEN)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Sends `count` numbered packets of `len` bytes on interface 0, `burst` at a time, one burst
/// every `interval` starting at `start`. Counts what it receives.
pub struct Pinger {
    pub count: u64,
    pub len: usize,
    pub interval: Duration,
    pub burst: u64,
    next_seq: u64,
    next_at: Instant,
    queue: VecDeque<Vec<u8>>,
    pub sent_at: Vec<Instant>,
    pub received: u64,
}

impl Pinger {
    pub fn new(count: u64, len: usize, interval: Duration) -> Self {
        Pinger {
            count,
            len,
            interval,
            burst: 1,
            next_seq: 0,
            next_at: Instant::ZERO,
            queue: VecDeque::new(),
            sent_at: Vec::new(),
            received: 0,
        }
    }

    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = burst.max(1);
        self
    }

    pub fn start(mut self, at: Instant) -> Self {
        self.next_at = at;
        self
    }
}

impl Node for Pinger {
    fn handle_packet(&mut self, _now: Instant, _iface: usize, _packet: &[u8]) {
        self.received += 1;
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        self.queue.pop_front().map(|p| (0, p))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.next_seq < self.count).then_some(self.next_at)
    }

    fn handle_timeout(&mut self, now: Instant) {
        assert!(
            now >= self.next_at,
            "timer fired early: {now} < {}",
            self.next_at
        );
        for _ in 0..self.burst {
            if self.next_seq >= self.count {
                break;
            }
            let p = numbered_packet(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                40000,
                5201,
                self.next_seq,
                self.len,
            );
            self.queue.push_back(p);
            self.sent_at.push(now);
            self.next_seq += 1;
        }
        self.next_at = now + self.interval;
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// One packet a [`Sink`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub at: Instant,
    pub iface: usize,
    pub seq: Option<u64>,
    pub len: usize,
    pub bytes: Vec<u8>,
}

/// Records every packet; with `ack` set, answers each numbered packet with a 48-byte one
/// carrying the same number on the interface it came from.
#[derive(Default)]
pub struct Sink {
    pub arrivals: Vec<Arrival>,
    pub keep_bytes: bool,
    pub ack: bool,
    queue: VecDeque<(usize, Vec<u8>)>,
}

impl Sink {
    pub fn new() -> Self {
        Sink::default()
    }

    pub fn acking() -> Self {
        Sink {
            ack: true,
            ..Sink::default()
        }
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.arrivals.iter().filter_map(|a| a.seq).collect()
    }
}

impl Node for Sink {
    fn handle_packet(&mut self, now: Instant, iface: usize, packet: &[u8]) {
        let seq = seq_of(packet);
        if self.ack {
            if let Some(seq) = seq {
                let p = numbered_packet(
                    Ipv4Addr::new(10, 0, 0, 2),
                    Ipv4Addr::new(10, 0, 0, 1),
                    5201,
                    40000,
                    seq,
                    MIN_LEN,
                );
                self.queue.push_back((iface, p));
            }
        }
        self.arrivals.push(Arrival {
            at: now,
            iface,
            seq,
            len: packet.len(),
            bytes: if self.keep_bytes {
                packet.to_vec()
            } else {
                Vec::new()
            },
        });
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        self.queue.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Sends `total` numbered packets of `len` bytes keeping at most `window` unacknowledged; each
/// acknowledgement releases the next one. No retransmission: with a lossless path it ends when
/// every packet is acknowledged.
pub struct Blaster {
    pub total: u64,
    pub len: usize,
    pub window: u64,
    pub next_seq: u64,
    pub acked: u64,
    queue: VecDeque<Vec<u8>>,
}

impl Blaster {
    pub fn new(total: u64, len: usize, window: u64) -> Self {
        let mut b = Blaster {
            total,
            len,
            window,
            next_seq: 0,
            acked: 0,
            queue: VecDeque::new(),
        };
        b.fill();
        b
    }

    fn fill(&mut self) {
        while self.next_seq < self.total && self.next_seq - self.acked < self.window {
            self.queue.push_back(numbered_packet(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                40000,
                5201,
                self.next_seq,
                self.len,
            ));
            self.next_seq += 1;
        }
    }

    pub fn done(&self) -> bool {
        self.acked == self.total
    }
}

impl Node for Blaster {
    fn handle_packet(&mut self, _now: Instant, _iface: usize, _packet: &[u8]) {
        self.acked += 1;
        self.fill();
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        self.queue.pop_front().map(|p| (0, p))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
