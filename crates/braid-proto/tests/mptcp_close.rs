//! The end of an MPTCP connection, in-process (the pair harness of `mptcp_connection.rs`):
//! the DATA_FIN goes before any subflow FIN and again until it is DATA_ACKed (RFC 8684
//! §3.3.3), and data-level retransmission moves data to another subflow, never onto the
//! one whose TCP still holds it (a closed window is not a lost path).

#[path = "common/conn_pair.rs"]
mod conn_pair;
use conn_pair::*;

use std::cell::RefCell;
use std::rc::Rc;

use braid_proto::mptcp::connection::MIN_RECV_BUFFER;
use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::TcpRepr;

/// A client segment as it left.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    fin: bool,
    data_fin: bool,
    mp_capable: bool,
}

fn sent(at: Instant, repr: &TcpRepr) -> Sent {
    let opts = &repr.options.mptcp;
    Sent {
        at,
        fin: repr.flags.fin(),
        data_fin: opts
            .iter()
            .any(|o| matches!(o, MptcpOption::Dss(d) if d.data_fin)),
        mp_capable: opts.iter().any(|o| matches!(o, MptcpOption::MpCapable(_))),
    }
}

/// Sends what is due now, else moves time to the next event; false when nothing is left.
fn step(p: &mut Pair) -> bool {
    if p.queue.keys().next().is_some_and(|k| k.0 <= p.now) {
        return true;
    }
    let before = p.seq;
    p.poll_all();
    p.seq != before || p.advance()
}

/// Reads everything readable into `into`.
fn read_all(c: &mut MptcpConnection, into: &mut Vec<u8>) {
    let mut buf = [0u8; 16384];
    loop {
        let got = c.read(&mut buf);
        if got == 0 {
            break;
        }
        into.extend_from_slice(&buf[..got]);
    }
}

/// Where a close ended.
struct Closed {
    received: Vec<u8>,
    /// When the client saw its DATA_FIN acknowledged.
    fin_acked_at: Option<Instant>,
    log: Vec<Sent>,
    pair: Pair,
}

/// The client writes `n` bytes and closes; the server reads everything and closes once it
/// has read the end of the stream. `drop_data_fins` client segments carrying a DATA_FIN are
/// lost. Runs until both connections are closed (or nothing is left to happen).
fn close_after(n: usize, drop_data_fins: usize, seed: u64) -> Closed {
    let mut dropped = 0usize;
    close_with(n, seed, move |to_server, _, repr| {
        let s = sent(Instant::ZERO, repr);
        let keep = !(to_server && s.data_fin && dropped < drop_data_fins);
        if !keep {
            dropped += 1;
        }
        keep
    })
}

/// As [`close_after`], with `filter` seeing (and perhaps rewriting) every segment as it
/// leaves (towards the server?, with payload?, header); `false` drops it. Client segments are
/// logged as they were before the filter.
fn close_with(
    n: usize,
    seed: u64,
    mut filter: impl FnMut(bool, bool, &mut TcpRepr) -> bool + 'static,
) -> Closed {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), seed);
    let log = Rc::new(RefCell::new(Vec::new()));
    {
        let log = log.clone();
        p.filter = Some(Box::new(move |at, to_server, repr, payload| {
            if to_server {
                log.borrow_mut().push(sent(at, repr));
            }
            filter(to_server, !payload.is_empty(), repr)
        }));
    }
    let data: Vec<u8> = (0..n).map(|i| stream_byte(1, i)).collect();
    let mut written = false;
    let mut received = Vec::new();
    let mut server_closed = false;
    let mut fin_acked_at = None;
    for _ in 0..1_000_000 {
        p.poll_all();
        p.deliver_due();
        // Written and closed as soon as the SYN/ACK is in, as `braid connect --send`
        // does: the bytes go with the third ACK (MP_CAPABLE with data).
        let up = p
            .client
            .subflow(0)
            .is_some_and(|t| t.state().is_synchronized());
        if up && !written {
            assert_eq!(p.client.write(&data), n);
            p.client.close();
            written = true;
        }
        if let Some(s) = p.server.as_mut() {
            read_all(s, &mut received);
            if s.is_read_finished() && !server_closed {
                s.close();
                server_closed = true;
            }
        }
        if fin_acked_at.is_none() && p.client.is_write_finished() {
            fin_acked_at = Some(p.now);
        }
        let closed = p.client.is_closed() && p.server.as_ref().is_some_and(|s| s.is_closed());
        if closed {
            break;
        }
        if !step(&mut p) {
            break;
        }
    }
    let log = log.borrow().clone();
    Closed {
        received,
        fin_acked_at,
        log,
        pair: p,
    }
}

/// Sizes around nothing, one byte and one segment (the MP_CAPABLE data segment carries
/// 1448 bytes here), as the bug report measured against Linux.
const SIZES: [usize; 7] = [0, 1, 500, 1447, 1448, 1449, 3000];

//= rfc8684#3.3.3
//= A connection is closed at the data level by the DATA_FIN, retransmitted until
//  acknowledged; Linux closes a subflow whose FIN comes before the DATA_FIN as a lost
//  subflow, so the subflows' FINs must wait for the DATA_ACK of the DATA_FIN.
#[test]
fn the_data_fin_is_acknowledged_before_any_subflow_fin_at_every_small_size() {
    for n in SIZES {
        let c = close_after(n, 0, 7);
        assert_eq!(c.received.len(), n, "{n} bytes: all delivered");
        assert!(
            c.received
                .iter()
                .enumerate()
                .all(|(i, &b)| b == stream_byte(1, i)),
            "{n} bytes: intact"
        );
        let server = c.pair.server.as_ref().expect("server");
        assert!(server.is_read_finished(), "{n} bytes: the server saw EOF");
        let acked = c
            .fin_acked_at
            .unwrap_or_else(|| panic!("{n} bytes: the DATA_FIN was never acknowledged"));
        for s in c.log.iter().filter(|s| s.fin) {
            assert!(
                s.at >= acked,
                "{n} bytes: a subflow FIN at {:?} before the DATA_FIN was acknowledged at {acked:?}: {:?}",
                s.at,
                c.log
            );
            assert!(!s.mp_capable, "{n} bytes: FIN on an MP_CAPABLE segment");
        }
        assert!(
            c.log.iter().any(|s| s.data_fin),
            "{n} bytes: a DATA_FIN went out"
        );
        assert!(
            c.pair.client.is_closed() && server.is_closed(),
            "{n} bytes: both ends closed"
        );
        assert!(c.pair.client.error().is_none() && server.error().is_none());
        assert_eq!(c.pair.client.counters().MPTCPRetrans, 0);
    }
}

/// Every copy of the DATA_FIN is lost a few times: the client sends it again (on pure
/// ACKs, from the data-level retransmission timer) until it is acknowledged, and only then
/// closes its subflow.
#[test]
fn a_lost_data_fin_is_sent_again_until_acknowledged() {
    for n in [0usize, 500, 3000] {
        let c = close_after(n, 3, 11);
        assert_eq!(c.received.len(), n);
        let acked = c.fin_acked_at.expect("the DATA_FIN was acknowledged");
        let copies: Vec<&Sent> = c.log.iter().filter(|s| s.data_fin).collect();
        assert!(copies.len() >= 4, "{n} bytes: {copies:?}");
        assert!(c.log.iter().filter(|s| s.fin).all(|s| s.at >= acked));
        // Sent again by the data-level timer (200 ms, then doubling); with data, ACKs of
        // the subflow also carry copies. Without data only the timer sends them.
        assert!(copies.len() <= 12, "{n} bytes: {} copies", copies.len());
        if n == 0 {
            let gaps: Vec<Duration> = copies.windows(2).map(|w| w[1].at - w[0].at).collect();
            assert!(
                gaps.iter().all(|&g| g >= Duration::from_millis(190)),
                "{gaps:?}"
            );
        }
        assert!(c.pair.client.is_closed());
    }
}

/// The peer's application does not read for 1.5 s: its buffers fill and the only subflow's
/// window shuts with data queued behind it. When the reader comes back each byte goes
/// once. The data-level timer finds no other subflow to move the bytes to (the only one
/// still holds them), so it queues nothing; before, it queued them again on the same
/// subflow at every expiry, one more copy per backed-off timeout.
#[test]
fn a_closed_window_on_the_only_subflow_sends_nothing_twice() {
    let mut cfg = MptcpConfig {
        recv_buffer: MIN_RECV_BUFFER,
        ..MptcpConfig::default()
    };
    cfg.tcp.recv_buffer = 8192;
    let mut p = Pair::new(cfg, Faults::default(), 5);
    let payload_bytes = Rc::new(RefCell::new(0usize));
    {
        let payload_bytes = payload_bytes.clone();
        p.filter = Some(Box::new(move |_, to_server, _, payload| {
            if to_server {
                *payload_bytes.borrow_mut() += payload.len();
            }
            true
        }));
    }
    // More than both of the server's buffers hold, so the window shuts on data in flight.
    let n = MIN_RECV_BUFFER + 8192 + 3000;
    let data: Vec<u8> = (0..n).map(|i| stream_byte(1, i)).collect();
    let mut written = 0;
    let mut received = Vec::new();
    let reader_back = Instant::ZERO + Duration::from_millis(1500);
    for _ in 0..1_000_000 {
        p.poll_all();
        p.deliver_due();
        if written < n {
            written += p.client.write(&data[written..]);
            if written == n {
                p.client.close();
            }
        }
        if p.now >= reader_back {
            if let Some(s) = p.server.as_mut() {
                read_all(s, &mut received);
            }
        }
        if p.client.is_write_finished() || !step(&mut p) {
            break;
        }
    }
    assert_eq!(received.len(), n);
    assert!(received == data, "intact");
    assert!(p.client.is_write_finished());
    let window = p
        .client
        .subflow_infos()
        .first()
        .map_or(0, |s| s.retransmits);
    let sent = *payload_bytes.borrow();
    // Window probes and the subflow's own retransmissions add a few segments; a copy of
    // the data queued by the data-level timer adds thousands of bytes each time.
    assert!(
        sent < n + 4 * 1448,
        "{sent} subflow bytes for {n} data bytes ({window} subflow retransmissions)"
    );
    assert_eq!(
        p.client.counters().MPTCPRetrans,
        0,
        "no data-level retransmission"
    );
}

/// A peer that never acknowledges the DATA_FIN (every copy is lost) does not keep the
/// connection for ever: after as many tries as TCP makes for data, it ends timed out.
#[test]
fn an_unacknowledged_data_fin_times_out() {
    let c = close_after(500, usize::MAX, 13);
    assert_eq!(c.received.len(), 500);
    assert!(c.fin_acked_at.is_none());
    assert!(c.pair.client.is_closed(), "the client gave up");
    assert_eq!(
        c.pair.client.subflow(0).and_then(|t| t.error()),
        Some(braid_proto::ConnectionError::TimedOut)
    );
    let gave_up = c.log.last().map(|s| s.at).expect("segments");
    assert!(
        gave_up < Instant::ZERO + Duration::from_secs(300),
        "{gave_up:?}"
    );
}

//= rfc8684#3.7
//= Only a sign of stripped options counts: the peer's TCP answers from TIME-WAIT without
//  MPTCP options (Linux's time-wait socket knows nothing of MPTCP), after its FIN.
/// The client's ACKs after the server's FIN carry no MPTCP option, as a Linux peer's
/// TIME-WAIT answers do: the server does not take them for stripped options (no fallback,
/// `NoDSSFallback` stays 0), and the connection closes with every byte.
#[test]
fn a_time_wait_ack_without_options_is_not_a_fallback() {
    let mut server_fin = false;
    let c = close_with(3000, 21, move |to_server, has_payload, repr| {
        if !to_server && repr.flags.fin() {
            server_fin = true;
        }
        if to_server && server_fin && !has_payload && !repr.flags.fin() && !repr.flags.syn() {
            repr.options.mptcp.clear();
        }
        true
    });
    assert_eq!(c.received.len(), 3000);
    let s = c.pair.server.as_ref().expect("server");
    assert_eq!(s.counters().NoDSSFallback, 0);
    assert!(!s.is_fallback());
    assert!(s.is_closed() && c.pair.client.is_closed());
}

/// A subflow reset with data its peer never got: the RST's sequence number is beyond what
/// the peer expects, so the peer answers it with a challenge ACK (RFC 5961 §3.2); the closed
/// subflow answers that with a RST at the exact number (RFC 9293 §3.10.7.1), and the peer's
/// subflow closes. It ignored the challenge ACK before, and the peer's subflow waited in
/// FIN-WAIT-2 for good once the connection ended (the in-process workers test hung 7 runs
/// in 1000).
#[test]
fn a_reset_subflow_answers_the_challenge_ack_and_the_peer_closes_it() {
    let mut p = Pair::two_paths(MptcpConfig::default(), Faults::default());
    p.establish_and_join();
    assert!(p.client.is_subflow_established(1));
    // The client's data on subflow 0 (port 40000) is lost from now on.
    p.filter = Some(Box::new(
        |_, to_server, repr: &mut TcpRepr, payload: &[u8]| {
            !(to_server && repr.src_port == 40000 && !payload.is_empty())
        },
    ));
    let data: Vec<u8> = (0..200_000).map(|i| stream_byte(1, i)).collect();
    let mut written = 0;
    for _ in 0..2000 {
        written += p.client.write(&data[written..]);
        if !p.step() {
            break;
        }
        let lost = p
            .client
            .subflow(0)
            .is_some_and(|t| t.snd_una_offset() + 4000 < t.snd_nxt_offset());
        if lost {
            break;
        }
    }
    let t = p.client.subflow(0).expect("subflow 0");
    assert!(
        t.snd_una_offset() < t.snd_nxt_offset(),
        "data lost on subflow 0"
    );
    p.client.close_subflow(0).expect("reset");
    p.filter = None;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        written += p.client.write(&data[written..]);
        if let Some(s) = p.server.as_mut() {
            let n = s.read(&mut buf);
            got.extend_from_slice(&buf[..n]);
        }
        let closed = p
            .server
            .as_ref()
            .and_then(|s| s.subflow(0))
            .is_some_and(|t| t.state() == braid_proto::TcpState::Closed);
        if closed && got.len() == data.len() {
            break;
        }
        if !p.step() {
            break;
        }
    }
    assert!(
        got == data,
        "{} of {} bytes, byte-exact",
        got.len(),
        data.len()
    );
    let srv = p.server.as_ref().expect("server");
    assert_eq!(
        srv.subflow(0).map(|t| t.state()),
        Some(braid_proto::TcpState::Closed),
        "the server's subflow 0 took the exact RST"
    );
}

/// Both DATA_FINs acknowledged, but the peer's FIN (and its RST) on one subflow never
/// arrive: that subflow waits in FIN-WAIT-2 with nothing to retransmit, so after the close
/// timeout (Linux's `net.mptcp.close_timeout`, 60 s) it is reset and the connection ends.
#[test]
fn subflows_still_open_a_close_timeout_after_both_data_fins_are_reset() {
    let mut p = Pair::two_paths(MptcpConfig::default(), Faults::default());
    p.establish_and_join();
    assert!(p.client.is_subflow_established(1));
    // The client's FIN and RST on subflow 0 (port 40000) are lost.
    p.filter = Some(Box::new(|_, to_server, repr: &mut TcpRepr, _: &[u8]| {
        !(to_server && repr.src_port == 40000 && (repr.flags.fin() || repr.flags.rst()))
    }));
    p.transfer(100_000, 100_000);
    let done = p.now;
    let server_closed = |p: &Pair| p.server.as_ref().is_some_and(|s| s.is_closed());
    while !server_closed(&p) && p.now < done + Duration::from_secs(120) {
        if !p.step() {
            break;
        }
    }
    assert!(server_closed(&p), "the server's subflows closed");
    let took = p.now - done;
    assert!(
        took >= Duration::from_secs(59) && took <= Duration::from_secs(61),
        "{took:?} after both DATA_FINs"
    );
    let srv = p.server.as_ref().expect("server");
    assert_eq!(
        srv.subflow(0).map(|t| t.state()),
        Some(braid_proto::TcpState::Closed)
    );
}
