//! Liveness on hostile paths: whatever the path does (random loss both ways, jitter that
//! reorders, outages of up to 1.5 s in either direction) and however the reader behaves
//! (pauses that close the window), a transfer over an MPTCP connection with a backup
//! subflow, or one that fell back to plain TCP when its handshake options were lost, ends
//! byte-exact. It may slow down; it must never reach a state where data is owed and
//! nothing is scheduled, nor keep firing timers that send nothing.
//!
//! A third mix has the receiver drop the data of one mapping in 200 after its TCP
//! acknowledged it, as Linux does when its MPTCP receive memory is full (`DropAfterAck`).
//!
//! Found this way: after a timeout proven spurious, CUBIC restored its window in the MSS
//! unit it had before a fallback to plain TCP dropped the MPTCP option reservation; the
//! next timeout left a window of one old segment, less than one full new segment, and the
//! retransmission timer fired for ever without sending (RFC 5681 §3.1: the loss window is
//! one full-sized segment).

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::tcp::TcpConfig;
use braid_proto::time::{Duration, Instant};
use braid_proto::{ConnectionHandle, EndpointConfig, Error, Event};
use conn_pair::{EpNet, Link, Rng};

const TOTAL: u64 = 4 << 20;

fn byte(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 11) as u8
}

/// One transfer of [`TOTAL`] pattern bytes from a client on `net.a` to a listener on
/// `net.b`, with a join from a second address once connected when `join` says so (its
/// backup flag; refused quietly by a connection that fell back to TCP).
struct Transfer {
    server: SocketAddr,
    c: ConnectionHandle,
    s: Option<ConnectionHandle>,
    join: Option<bool>,
    written: u64,
    read: u64,
    buf: Vec<u8>,
}

impl Transfer {
    fn open(net: &mut EpNet, join: Option<bool>) -> Transfer {
        let server: SocketAddr = "10.0.0.2:80".parse().expect("address");
        let c = net.open(server, true, true);
        Transfer {
            server,
            c,
            s: None,
            join,
            written: 0,
            read: 0,
            buf: vec![0u8; 65536],
        }
    }

    /// Takes the events (the server's accept, the client's connect and its join) and
    /// writes what the client may.
    fn drive(&mut self, net: &mut EpNet) -> Result<(), String> {
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                self.s = Some(conn);
            }
        }
        while let Some(ev) = net.a.poll_event() {
            if let (Event::Connected(_), Some(backup)) = (ev, self.join.take()) {
                let local: SocketAddr = "10.0.1.1:0".parse().expect("address");
                let _ = net
                    .a
                    .request_subflow(net.now, self.c, local, self.server, backup);
            }
        }
        while self.written < TOTAL {
            let n = (TOTAL - self.written).min(16384);
            let chunk: Vec<u8> = (0..n).map(|i| byte(self.written + i)).collect();
            match net.a.write(self.c, &chunk) {
                Ok(0) | Err(Error::WouldBlock) => break,
                Ok(w) => self.written += w as u64,
                Err(e) => return Err(format!("write: {e:?}")),
            }
        }
        Ok(())
    }

    /// The server's application reads up to `max` bytes (none before the accept) and
    /// checks them; how many it read.
    fn read(&mut self, net: &mut EpNet, max: usize) -> Result<usize, String> {
        let Some(sc) = self.s else {
            return Ok(0);
        };
        let want = max.min(self.buf.len());
        match net.b.read(sc, &mut self.buf[..want]) {
            Ok(n) => {
                let at = self.read;
                if let Some(i) = (0..n).find(|&i| self.buf[i] != byte(at + i as u64)) {
                    return Err(format!("byte {} differs", at + i as u64));
                }
                self.read += n as u64;
                Ok(n)
            }
            Err(Error::WouldBlock) => Ok(0),
            Err(e) => Err(format!("read: {e:?}")),
        }
    }
}

/// The wire's way to make the receiver drop data after its TCP acknowledged it, as Linux
/// does when its MPTCP receive memory is full: the DSN of chosen DSS mappings is moved back
/// by 1 MiB, so that the receiver's TCP takes the segments and its data level sees bytes it
/// already has and discards them. A mapping once chosen is moved on every copy (a
/// retransmission carries the same mapping: two different ones for the same bytes would be
/// a protocol error, not a drop).
#[derive(Default)]
struct DropAfterAck {
    /// Chosen mappings: (source port, relative subflow sequence number).
    chosen: std::collections::HashSet<(u16, u32)>,
}

impl DropAfterAck {
    /// `pkt` (client to server) with its mapping moved back when `choose` picks it or it
    /// was picked before; `None` when the packet goes as it is.
    fn apply(&mut self, pkt: &[u8], mut choose: impl FnMut() -> bool) -> Option<Vec<u8>> {
        use braid_proto::wire::mptcp::MptcpOption;
        use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet};

        let p = parse_tcp_packet(pkt).ok()?;
        let mut repr = p.tcp.clone();
        let mut hit = false;
        for o in &mut repr.options.mptcp {
            if let MptcpOption::Dss(d) = o {
                if let Some(m) = d.mapping.as_mut().filter(|m| m.data_len > 0) {
                    let key = (repr.src_port, m.subflow_seq);
                    if self.chosen.contains(&key) || (choose() && self.chosen.insert(key)) {
                        m.dsn = m.dsn.wrapping_sub(1 << 20);
                        hit = true;
                    }
                }
            }
        }
        if !hit {
            return None;
        }
        let mut out = vec![0u8; pkt.len() + 64];
        let (src, dst) = (p.ip.src_addr(), p.ip.dst_addr());
        let n = emit_tcp_packet(&mut out, src, dst, 64, &repr, p.payload).ok()?;
        out.truncate(n);
        Some(out)
    }
}

/// One hostile run's knobs.
#[derive(Clone, Copy, Debug)]
struct Hostile {
    /// Random loss each way, parts per million.
    loss_ppm: u32,
    /// Random extra delay per packet (reorders), microseconds.
    jitter_us: u64,
    /// Send and receive buffers of both sides.
    buffer: usize,
    /// The reader pauses (up to 300 ms) once in this many of its turns.
    pause_one_in: u64,
    /// The receiver drops the data of one in this many mappings after its TCP acknowledged
    /// it ([`DropAfterAck`]); 0: never.
    data_drop_one_in: u64,
}

/// Runs one transfer of [`TOTAL`] bytes, client to server, and returns how it ended.
fn run(seed: u64, backup: bool, h: Hostile) -> Result<(), String> {
    let cfg = || EndpointConfig {
        tcp: TcpConfig {
            recv_buffer: h.buffer,
            send_buffer: h.buffer,
            ..TcpConfig::default()
        },
        ..EndpointConfig::default()
    };
    let link = |salt: u64| {
        let mut l = Link::new(12_500_000, Duration::from_millis(2), 256 * 1024, None);
        l.loss_ppm = h.loss_ppm;
        l.jitter_us = h.jitter_us;
        l.rng ^= seed.wrapping_mul(salt) | 1;
        l
    };
    let mut net = EpNet::with_links(cfg(), cfg(), link(0x9E37_79B9), link(0x1234_5679));
    let mut t = Transfer::open(&mut net, Some(backup));
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491) | 1);
    let mut paused_until = Instant::ZERO;
    let mut cut_until = [Instant::ZERO; 2];
    let mut drops = DropAfterAck::default();
    let limit = Instant::ZERO + Duration::from_secs(600);
    while t.read < TOTAL {
        if net.now >= limit {
            return Err(format!("{} of {TOTAL} bytes after {limit:?}", t.read));
        }
        t.drive(&mut net)?;
        // Outages: each direction goes dark now and then, for up to 1.5 s.
        for (dir, until) in cut_until.iter_mut().enumerate() {
            if net.now >= *until {
                net.cut[dir] = false;
                let r = rng.next();
                if r % 2000 == 0 {
                    *until = net.now + Duration::from_millis(r % 1500);
                    net.cut[dir] = true;
                }
            }
        }
        // The reader: a random amount per turn, now and then a pause.
        let mut busy = false;
        if t.s.is_some() && net.now >= paused_until {
            let r = rng.next();
            if r % h.pause_one_in == 0 {
                paused_until = net.now + Duration::from_millis(r % 300);
                busy = true;
            } else {
                busy = t.read(&mut net, (r % 65536) as usize + 1)? > 0;
            }
        }
        // (Once 1 MiB went out: a DSN moved back from the first bytes would lie before the
        // start of the stream, a protocol error rather than a duplicate.)
        let past = net.up_by_src.values().sum::<u64>() > 1 << 20;
        if h.data_drop_one_in > 0 && past {
            net.flush_with(|_, to_b, pkt| {
                let moved = to_b
                    .then(|| drops.apply(&pkt, || rng.next() % h.data_drop_one_in == 0))
                    .flatten();
                Some(moved.unwrap_or(pkt))
            });
        }
        if !net.step() {
            // Nothing in flight and no timer anywhere: only the application can move.
            if busy || t.read >= TOTAL {
                continue;
            }
            if net.now < paused_until {
                net.now = paused_until;
                continue;
            }
            if net.cut.iter().any(|&c| c) {
                net.now = cut_until[0].max(cut_until[1]);
                continue;
            }
            return Err(format!(
                "stuck at {} of {TOTAL} bytes at {:?}: nothing in flight, no timer",
                t.read, net.now
            ));
        }
    }
    Ok(())
}

/// Many seeds, two hostile mixes, with a backup subflow or a second working one: every
/// transfer ends byte-exact. (Before the fix, seeds 33, 49 and 65 of the first mix
/// fell back to TCP and stalled for good.)
#[test]
fn transfers_end_whatever_the_path_and_the_reader_do() {
    let mixes = [
        Hostile {
            loss_ppm: 50_000,
            jitter_us: 2000,
            buffer: 64 * 1024,
            pause_one_in: 10,
            data_drop_one_in: 0,
        },
        Hostile {
            loss_ppm: 20_000,
            jitter_us: 500,
            buffer: 128 * 1024,
            pause_one_in: 20,
            data_drop_one_in: 0,
        },
        Hostile {
            loss_ppm: 10_000,
            jitter_us: 500,
            buffer: 256 * 1024,
            pause_one_in: 20,
            data_drop_one_in: 200,
        },
    ];
    let mut failed = Vec::new();
    for seed in (0..24).chain([33, 49, 52, 54, 65]) {
        for (i, h) in mixes.iter().enumerate() {
            let backup = seed % 2 == 0;
            if let Err(e) = run(seed, backup, *h) {
                failed.push(format!("seed {seed} mix {i} backup {backup}: {e}"));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// Runs a 4 MiB transfer over one subflow, or a subflow and a backup, where the receiver
/// acknowledges one mapping's bytes at the TCP level and then drops them at the data
/// level, as Linux does when its MPTCP-level receive memory is full (it acknowledged the
/// segments, then `skmem` counts them as dropped). The wire emulates that by moving the
/// mapping's data sequence number back by 1 MiB: the receiver's TCP takes the segments,
/// its data level sees bytes it already has. Returns the sender's data-level
/// retransmissions.
fn data_dropped_after_the_tcp_ack(backup_join: bool) -> u64 {
    let cfg = EndpointConfig::default;
    let mut net = EpNet::new(cfg(), cfg(), 0);
    let mut t = Transfer::open(&mut net, backup_join.then_some(true));
    let mut drops = DropAfterAck::default();
    // One mapping, the first after 1 MiB.
    let mut left = 1;
    let limit = Instant::ZERO + Duration::from_secs(120);
    while t.read < TOTAL && net.now < limit {
        t.drive(&mut net).expect("the client writes");
        while t.read(&mut net, usize::MAX).expect("byte-exact") > 0 {}
        let past = net.up_by_src.values().sum::<u64>() > 1 << 20;
        let mut choose = || {
            let now = past && left > 0;
            left -= usize::from(now);
            now
        };
        net.flush_with(|_, to_b, pkt| {
            let out = to_b.then(|| drops.apply(&pkt, &mut choose)).flatten();
            Some(out.unwrap_or(pkt))
        });
        if !net.step() {
            break;
        }
    }
    assert_eq!(drops.chosen.len(), 1, "one mapping was dropped");
    assert_eq!(
        t.read, TOTAL,
        "everything arrived (backup join: {backup_join}), at {:?}",
        net.now
    );
    let subflows = net
        .a
        .mptcp_connection(t.c)
        .map_or(0, |c| c.subflow_infos().len());
    assert_eq!(subflows, 1 + usize::from(backup_join), "the join was made");
    net.a.counters().MPTCPRetrans
}

//= rfc8684#3.3.6
//= Bytes acknowledged at the subflow level but never DATA_ACKed are sent again at the
//  data level, on the same subflow when no other may take them (Linux retransmits on any
//  subflow, the one that carried them included).
/// With one subflow, the bytes go again on it; with a backup beside a working primary,
/// on the primary, not never.
#[test]
fn bytes_the_peer_dropped_after_the_tcp_ack_are_sent_again_on_the_same_subflow() {
    for backup_join in [false, true] {
        let retrans = data_dropped_after_the_tcp_ack(backup_join);
        assert!(retrans >= 1, "data-level retransmissions: {retrans}");
    }
}
