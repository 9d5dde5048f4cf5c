//! Two endpoints in one process, joined by a simulated link (rate, delay, FIFO queue, optional
//! deterministic loss), moving multi-megabyte streams byte-exact.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::{
    CcAlgorithm, ConnectOptions, ConnectionHandle, Duration, EndpointConfig, Error, Event, Instant,
    ListenOptions, TcpConfig,
};
use conn_pair::{byte, EpNet, Link};

struct Outcome {
    received: u64,
    client_closed: bool,
    server_closed: bool,
    elapsed: Instant,
    dropped: u64,
    retransmits: u64,
}

fn transfer(cfg: TcpConfig, total: u64, ab: Link, ba: Link, limit: Instant) -> Outcome {
    let a_cfg = EndpointConfig {
        tcp: cfg.clone(),
        ..Default::default()
    };
    let b_cfg = EndpointConfig {
        tcp: cfg,
        ..Default::default()
    };
    let mut net = EpNet::with_links(a_cfg, b_cfg, ab, ba);
    let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let client: SocketAddr = "10.0.0.1:0".parse().unwrap();
    net.b.listen(server, ListenOptions::default()).unwrap();
    let conn = net
        .a
        .connect(net.now, client, server, ConnectOptions::default())
        .unwrap();
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut sconn: Option<ConnectionHandle> = None;
    let mut client_closed = false;
    let mut server_closed = false;
    let mut closed_write = false;
    let mut server_fin_sent = false;
    let mut chunk = vec![0u8; 65536];
    let mut chunk_at = 0u64;
    let mut chunk_len = 0usize;
    let mut rbuf = vec![0u8; 65536];
    let mut retransmits = 0;
    let mut last = String::new();
    let mut next_trace = Instant::ZERO;
    let mut done_at = Instant::ZERO;
    while net.now < limit && !(client_closed && server_closed) {
        // application: client writes, server reads
        if !closed_write {
            loop {
                if sent == total {
                    net.a.close(conn).unwrap();
                    closed_write = true;
                    break;
                }
                // `chunk` holds the stream from offset `chunk_at`; refill only when used up.
                if sent >= chunk_at + chunk_len as u64 {
                    chunk_at = sent;
                    chunk_len = (total - sent).min(chunk.len() as u64) as usize;
                    for (i, c) in chunk[..chunk_len].iter_mut().enumerate() {
                        *c = byte(0, sent + i as u64);
                    }
                }
                let from = (sent - chunk_at) as usize;
                match net.a.write(conn, &chunk[from..chunk_len]) {
                    Ok(w) => sent += w as u64,
                    Err(Error::WouldBlock) => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
        }
        if let Some(info) = net.a.conn_info(conn) {
            retransmits = info.retransmits;
        }
        if let Some(t) = net.a.tcb(conn) {
            if std::env::var("TRACE").is_ok() && t.state() != braid_proto::TcpState::Closed {
                if net.now >= next_trace {
                    eprintln!(
                        "{} cwnd {} ssth {} rtt {:?} una {} rexmit {} rec {}",
                        net.now,
                        t.cwnd(),
                        t.ssthresh(),
                        t.rtt(),
                        t.snd_una_offset(),
                        t.retransmits(),
                        t.in_recovery()
                    );
                    next_trace = net.now + Duration::from_millis(50);
                }
                last = format!(
                    "{:?}",
                    (
                        t.timeouts(),
                        t.spurious_recoveries(),
                        t.recoveries(),
                        t.cwnd(),
                        t.ssthresh(),
                        t.rtt()
                    )
                );
            }
        }
        while let Some(ev) = net.a.poll_event() {
            if std::env::var("TRACE").is_ok() {
                eprintln!("{} client {ev:?}", net.now);
            }
            if let Event::Closed { error, .. } = ev {
                assert_eq!(error, None);
                client_closed = true;
                done_at = done_at.max(net.now);
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if std::env::var("TRACE").is_ok() {
                eprintln!("{} server {ev:?}", net.now);
            }
            match ev {
                Event::Accepted { conn, .. } => sconn = Some(conn),
                Event::Closed { error, .. } => {
                    assert_eq!(error, None);
                    server_closed = true;
                    done_at = done_at.max(net.now);
                }
                _ => {}
            }
        }
        if let Some(sc) = sconn {
            if !server_fin_sent {
                loop {
                    match net.b.read(sc, &mut rbuf) {
                        Ok(0) => {
                            net.b.close(sc).unwrap();
                            server_fin_sent = true;
                            break;
                        }
                        Ok(n) => {
                            for (i, &c) in rbuf[..n].iter().enumerate() {
                                assert_eq!(
                                    c,
                                    byte(0, received + i as u64),
                                    "byte {}",
                                    received + i as u64
                                );
                            }
                            received += n as u64;
                        }
                        Err(Error::WouldBlock) => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
        }
        if !net.step() {
            eprintln!(
                "idle at {}: sent {sent} received {received} a={:?}",
                net.now,
                net.a.conn_info(conn)
            );
            break;
        }
    }
    eprintln!(
        "end {}: received {received} dropped {} {} rexmit {retransmits} info {:?}",
        net.now, net.ab.dropped, net.ba.dropped, last
    );
    Outcome {
        received,
        client_closed,
        server_closed,
        elapsed: done_at,
        dropped: net.ab.dropped + net.ba.dropped,
        retransmits,
    }
}

fn fast_config() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(1),
        ..TcpConfig::default()
    }
}

#[test]
fn lossless_transfer_is_byte_exact() {
    let total = 8 << 20;
    let link = || Link::new(12_500_000, Duration::from_millis(10), 1_000_000, None);
    let o = transfer(
        fast_config(),
        total,
        link(),
        link(),
        Instant::from_millis(60_000),
    );
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
    assert_eq!(o.dropped, 0);
    assert_eq!(o.retransmits, 0);
    // 8 MiB at 100 Mbit/s is 0.67 s plus slow start: the link must be kept busy.
    assert!(o.elapsed.as_secs_f64() < 1.0, "took {}", o.elapsed);
}

#[test]
fn queue_overflow_in_slow_start_recovers_without_spurious_retransmissions() {
    let total = 8 << 20;
    let link = || Link::new(12_500_000, Duration::from_millis(10), 200_000, None);
    let o = transfer(
        fast_config(),
        total,
        link(),
        link(),
        Instant::from_millis(60_000),
    );
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
    // No retransmission timeout, few spurious retransmissions (lost retransmissions are
    // detected from SACKs of later data).
    assert!(
        o.retransmits <= o.dropped + o.dropped / 10 + 2,
        "{} retransmits for {} drops",
        o.retransmits,
        o.dropped
    );
    assert!(o.elapsed.as_secs_f64() < 1.2, "took {}", o.elapsed);
}

#[test]
fn transfer_with_every_50th_packet_dropped() {
    let total = 4 << 20;
    let ab = Link::new(12_500_000, Duration::from_millis(10), 500_000, Some(50));
    let ba = Link::new(12_500_000, Duration::from_millis(10), 500_000, Some(37));
    let o = transfer(fast_config(), total, ab, ba, Instant::from_millis(120_000));
    assert!(o.dropped > 0);
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
    assert!(o.retransmits > 0);
}

#[test]
fn transfer_without_sack_or_timestamps_uses_newreno() {
    let total = 3 << 20;
    let cfg = TcpConfig {
        sack: false,
        timestamps: false,
        cc: CcAlgorithm::Reno,
        ..fast_config()
    };
    let ab = Link::new(12_500_000, Duration::from_millis(5), 300_000, Some(41));
    let ba = Link::new(12_500_000, Duration::from_millis(5), 300_000, None);
    let o = transfer(cfg, total, ab, ba, Instant::from_millis(300_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
}

#[test]
fn transfer_with_small_buffers_and_tail_drops() {
    let total = 2 << 20;
    let cfg = TcpConfig {
        send_buffer: 64 << 10,
        recv_buffer: 32 << 10,
        ..fast_config()
    };
    // A tiny queue forces congestion losses.
    let ab = Link::new(1_250_000, Duration::from_millis(20), 15_000, None);
    let ba = Link::new(1_250_000, Duration::from_millis(20), 15_000, None);
    let o = transfer(cfg, total, ab, ba, Instant::from_millis(300_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
}

#[test]
fn random_loss_goodput_against_mathis() {
    // 100 Mbit/s, 20 ms one way, 1% random loss on the data path.
    let total = 8 << 20;
    let mut ab = Link::new(12_500_000, Duration::from_millis(20), 1_000_000, None);
    ab.loss_ppm = 10_000;
    let ba = Link::new(12_500_000, Duration::from_millis(20), 1_000_000, None);
    let o = transfer(fast_config(), total, ab, ba, Instant::from_millis(600_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
    let goodput = total as f64 / o.elapsed.as_secs_f64();
    // Mathis: MSS/RTT * 1.22/sqrt(p)
    let mathis = 1448.0 / 0.040 * 1.22 / 0.01f64.sqrt();
    eprintln!(
        "goodput {:.0} B/s, mathis {:.0} B/s, ratio {:.2}",
        goodput,
        mathis,
        goodput / mathis
    );
    assert!(
        goodput >= 0.7 * mathis,
        "goodput {goodput} vs mathis {mathis}"
    );
}

#[test]
fn reordering_duplication_and_loss_stay_byte_exact() {
    let total = 3 << 20;
    let mut ab = Link::new(12_500_000, Duration::from_millis(10), 1_000_000, None);
    ab.jitter_us = 3_000;
    ab.dup_every = Some(17);
    ab.loss_ppm = 5_000;
    let mut ba = Link::new(12_500_000, Duration::from_millis(10), 1_000_000, None);
    ba.jitter_us = 2_000;
    ba.dup_every = Some(23);
    ba.loss_ppm = 5_000;
    let o = transfer(fast_config(), total, ab, ba, Instant::from_millis(600_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
}

#[test]
fn reno_without_sack_over_reordering_link() {
    let total = 1 << 20;
    let cfg = TcpConfig {
        sack: false,
        cc: CcAlgorithm::Reno,
        delayed_ack: false,
        ..fast_config()
    };
    let mut ab = Link::new(2_500_000, Duration::from_millis(15), 200_000, None);
    ab.jitter_us = 1_500;
    ab.loss_ppm = 10_000;
    let ba = Link::new(2_500_000, Duration::from_millis(15), 200_000, None);
    let o = transfer(cfg, total, ab, ba, Instant::from_millis(600_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
}

/// The lead's benchmark shape (run with `--ignored`): 100 Mbit/s, 20 ms one way, a queue of
/// `BENCH_QUEUE` bytes, `BENCH_LOSS_PPM` random loss, `BENCH_MIB` MiB.
#[test]
#[ignore]
fn bench_shape() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let total = env("BENCH_MIB", 64) << 20;
    let queue = env("BENCH_QUEUE", 64 * 1024) as usize;
    let mut ab = Link::new(12_500_000, Duration::from_millis(20), queue, None);
    ab.loss_ppm = env("BENCH_LOSS_PPM", 0) as u32;
    let mut ba = Link::new(12_500_000, Duration::from_millis(20), queue, None);
    ba.loss_ppm = env("BENCH_ACK_LOSS_PPM", 0) as u32;
    let cfg = TcpConfig {
        pacing: env("BENCH_PACING", 1) == 1,
        delayed_ack: env("BENCH_DELACK", 1) == 1,
        ..TcpConfig::default()
    };
    let o = transfer(cfg, total, ab, ba, Instant::from_millis(3_600_000));
    let goodput = total as f64 / o.elapsed.as_secs_f64();
    eprintln!(
        "bench: {:.2} s, goodput {:.1} Mbit/s ({:.1}% of link), drops {}, retransmits {}",
        o.elapsed.as_secs_f64(),
        goodput * 8e-6,
        goodput / 12_500_000.0 * 100.0,
        o.dropped,
        o.retransmits
    );
    assert_eq!(o.received, total);
}

#[test]
fn outage_mid_transfer_recovers_by_rto() {
    let total = 4 << 20;
    let mut ab = Link::new(12_500_000, Duration::from_millis(10), 500_000, None);
    ab.outage = Some((Instant::from_millis(150), Instant::from_millis(2_150)));
    let mut ba = Link::new(12_500_000, Duration::from_millis(10), 500_000, None);
    ba.outage = Some((Instant::from_millis(150), Instant::from_millis(2_150)));
    let o = transfer(fast_config(), total, ab, ba, Instant::from_millis(120_000));
    assert_eq!(o.received, total);
    assert!(o.client_closed && o.server_closed);
    assert!(o.dropped > 0);
    // Backoff 0.2 + 0.4 + 0.8 + 1.6 s: resumes within one backed-off RTO after the outage.
    assert!(
        o.elapsed < Instant::from_millis(2_150 + 1_600 + 2_000),
        "{}",
        o.elapsed
    );
}
