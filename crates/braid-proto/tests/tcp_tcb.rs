//! Transmission control block tests in smoltcp's style: segments are built from a template,
//! fed with `send!` and the TCB's output checked with `recv!` (helpers in `common/tcb.rs`;
//! loss recovery is in `tcp_recovery.rs`; MPTCP's hooks, pacing and pluggable congestion
//! control in `tcp_tcb_hooks.rs`).

#[macro_use]
#[path = "common/tcb.rs"]
mod common_tcb;
use common_tcb::*;

use braid_proto::tcp::{Tcb, TcpConfig, TcpState, Timer};
use braid_proto::wire::{TcpOptions, Timestamps};
use braid_proto::{ConnectionError, Duration, Instant};

// ------------------------------------------------------------------ handshake

#[test]
fn active_open_negotiates_options() {
    let cfg = TcpConfig::default();
    let mut t = Tcb::connect(&cfg, params());
    assert_eq!(t.state(), TcpState::SynSent);
    let (syn, p) = recv!(t, T0).unwrap();
    assert!(p.is_empty());
    assert_eq!(syn.flags.0, SYN);
    assert_eq!(syn.seq, LOCAL_ISS);
    assert_eq!(syn.options.mss, Some(1460));
    // 4 MiB buffer: shift 7 (4 MiB >> 7 = 32 KiB fits 16 bits)
    assert_eq!(syn.options.window_scale, Some(7));
    assert!(syn.options.sack_permitted);
    let tsval = syn.options.timestamps.unwrap().tsval;
    recv_nothing!(t, T0);

    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.options.mss = Some(1400);
    sa.options.window_scale = Some(2);
    sa.options.sack_permitted = true;
    sa.options.timestamps = Some(Timestamps {
        tsval: 777,
        tsecr: tsval,
    });
    let now = Instant::from_millis(30);
    send!(t, now, sa);
    assert_eq!(t.state(), TcpState::Established);
    assert!(t.take_events().established);
    assert_eq!(t.mss(), 1400);
    assert_eq!(t.window_scales(), (7, 2));
    assert!(t.sack_enabled() && t.timestamps_enabled());
    assert_eq!(t.rtt(), Some(Duration::from_millis(30)));
    let (ack, _) = recv!(t, now).unwrap();
    assert_eq!(ack.flags.0, ACK);
    assert_eq!(ack.seq, l(1));
    assert_eq!(ack.ack, r(1));
    assert_eq!(ack.options.timestamps.unwrap().tsecr, 777);
    // window scaled by our shift: 4 MiB >> 7 = 32768
    assert_eq!(ack.window, 32768);
}

#[test]
fn passive_open_answers_only_offered_options() {
    let cfg = TcpConfig::default();
    let mut syn = seg(r(0), 0, SYN);
    syn.options.mss = Some(1200);
    let mut t = Tcb::accept(&cfg, params(), T0, &syn).unwrap();
    assert_eq!(t.state(), TcpState::SynReceived);
    let (sa, _) = recv!(t, T0).unwrap();
    assert_eq!(sa.flags.0, SYN | ACK);
    assert_eq!(sa.ack, r(1));
    assert_eq!(sa.options.mss, Some(1460));
    // The peer offered neither window scaling, SACK nor timestamps.
    assert_eq!(sa.options.window_scale, None);
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamps, None);
    assert_eq!(t.mss(), 1200);
    send!(t, T0, seg(r(1), l(1), ACK));
    assert_eq!(t.state(), TcpState::Established);
    assert!(t.take_events().established);
    assert_eq!(t.window_scales(), (0, 0));
}

#[test]
fn mss_defaults_to_536_when_absent() {
    let mut t = Tcb::connect(&plain(), params());
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(0), l(1), SYN | ACK));
    assert_eq!(t.mss(), 536);
}

#[test]
fn syn_sent_bad_ack_gets_reset() {
    let mut t = Tcb::connect(&plain(), params());
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(0), l(77), SYN | ACK));
    assert_eq!(t.state(), TcpState::SynSent);
    let (rst, _) = recv!(t, T0).unwrap();
    assert_eq!(rst.flags.0, RST);
    assert_eq!(rst.seq, l(77));
}

#[test]
fn syn_sent_rst_with_acceptable_ack_refuses() {
    let mut t = Tcb::connect(&plain(), params());
    recv!(t, T0).unwrap();
    send!(t, T0, seg(0, l(1), RST | ACK));
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), Some(ConnectionError::Refused));
}

#[test]
fn simultaneous_open() {
    let mut t = Tcb::connect(&plain(), params());
    recv!(t, T0).unwrap();
    // The peer's SYN crosses ours.
    send!(t, T0, seg(r(0), 0, SYN));
    assert_eq!(t.state(), TcpState::SynReceived);
    let (sa, _) = recv!(t, T0).unwrap();
    assert_eq!(sa.flags.0, SYN | ACK);
    assert_eq!(sa.seq, l(0));
    assert_eq!(sa.ack, r(1));
    // The peer's SYN-ACK crosses ours. It acknowledges our SYN: the handshake completes
    // (as in Linux), and an ACK goes out so that the peer completes too.
    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.window = 3000;
    send!(t, T0, sa);
    assert_eq!(t.state(), TcpState::Established);
    assert!(t.take_events().established);
    assert_eq!(t.send_window(), 3000);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.flags.0, ACK);
    assert_eq!(a.seq, l(1));
    assert_eq!(a.ack, r(1));
    // The peer's own ACK is a harmless duplicate.
    send!(t, T0, seg(r(1), l(1), ACK));
    assert_eq!(t.state(), TcpState::Established);
}

#[test]
fn syn_retransmits_then_times_out() {
    let cfg = TcpConfig {
        max_syn_retransmissions: 2,
        ..plain()
    };
    let mut t = Tcb::connect(&cfg, params());
    recv!(t, T0).unwrap();
    let first = t.poll_timeout().unwrap();
    assert_eq!(first, T0 + Duration::from_secs(1));
    t.handle_timeout(first);
    let (syn, _) = recv!(t, first).unwrap();
    assert_eq!(syn.flags.0, SYN);
    assert_eq!(t.retransmits(), 1);
    let second = t.poll_timeout().unwrap();
    assert_eq!(second, first + Duration::from_secs(2));
    t.handle_timeout(second);
    recv!(t, second).unwrap();
    let third = t.poll_timeout().unwrap();
    t.handle_timeout(third);
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), Some(ConnectionError::TimedOut));
}

// ------------------------------------------------------------------ data

#[test]
fn data_both_ways() {
    let mut t = established();
    assert_eq!(t.write(b"hello world"), 11);
    let (s, p) = recv!(t, T0).unwrap();
    assert_eq!(p, b"hello world");
    assert_eq!(s.seq, l(1));
    assert_eq!(s.flags.0, ACK | PSH);
    recv_nothing!(t, T0);
    send!(t, T0, seg(r(1), l(12), ACK), b"and back");
    assert_eq!(t.bytes_acked(), 11);
    assert!(t.take_events().readable);
    let mut buf = [0u8; 64];
    assert_eq!(t.read(&mut buf), 8);
    assert_eq!(&buf[..8], b"and back");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(9));
}

#[test]
fn segments_respect_mss_and_peer_window() {
    let mut t = established();
    let data = vec![7u8; 5000];
    assert_eq!(t.write(&data), 5000);
    let mut w = seg(r(1), l(1), ACK);
    w.window = 2500;
    send!(t, T0, w);
    let lens = |t: &mut Tcb| drain(t, T0).iter().map(|s| s.1.len()).collect::<Vec<_>>();
    // MSS 1000; the window allows 2500 bytes, but the last 500 would be a silly segment
    // (less than half the largest window seen) while data is in flight: held.
    assert_eq!(lens(&mut t), vec![1000, 1000]);
    let mut w = seg(r(1), l(2001), ACK);
    w.window = 2500;
    send!(t, T0, w);
    assert_eq!(lens(&mut t), vec![1000, 1000]);
    send!(t, T0, seg(r(1), l(4001), ACK));
    assert_eq!(lens(&mut t), vec![1000]);
}

#[test]
fn out_of_order_reassembly_with_sack_blocks() {
    let mut cfg = plain();
    cfg.sack = true;
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1000),
            sack_permitted: true,
            ..TcpOptions::default()
        },
    );
    send!(t, T0, seg(r(11), l(1), ACK), b"world");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(1));
    assert_eq!(a.options.sack_blocks.as_slice(), &[(r(11), r(16))]);
    send!(t, T0, seg(r(21), l(1), ACK), b"!!!");
    let (a, _) = recv!(t, T0).unwrap();
    // The most recent block first (RFC 2018 §4).
    assert_eq!(
        a.options.sack_blocks.as_slice(),
        &[(r(21), r(24)), (r(11), r(16))]
    );
    let mut buf = [0u8; 64];
    assert_eq!(t.read(&mut buf), 0);
    send!(t, T0, seg(r(1), l(1), ACK), b"hello, the");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(16));
    assert_eq!(a.options.sack_blocks.as_slice(), &[(r(21), r(24))]);
    assert_eq!(t.read(&mut buf), 15);
    assert_eq!(&buf[..15], b"hello, theworld");
    send!(t, T0, seg(r(16), l(1), ACK), b"12345");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(24));
    assert!(a.options.sack_blocks.is_empty());
    assert_eq!(t.read(&mut buf), 8);
    assert_eq!(&buf[..8], b"12345!!!");
}

#[test]
fn duplicate_segment_is_acked_and_not_delivered_twice() {
    let mut t = established();
    send!(t, T0, seg(r(1), l(1), ACK), b"abc");
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(1), l(1), ACK), b"abc");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(4));
    let mut buf = [0u8; 8];
    assert_eq!(t.read(&mut buf), 3);
    assert_eq!(t.bytes_received(), 3);
}

#[test]
fn unacceptable_segment_gets_an_ack() {
    let mut t = established();
    // Far outside the 16 KiB window.
    let out = send!(t, T0, seg(r(100_000), l(1), ACK), b"x");
    assert!(!out.accepted);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(1));
}

#[test]
fn delayed_ack_every_second_segment_or_timer() {
    let cfg = TcpConfig {
        delayed_ack: true,
        ..plain()
    };
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1000),
            ..TcpOptions::default()
        },
    );
    let full = vec![1u8; 1000];
    send!(t, T0, seg(r(1), l(1), ACK), &full);
    recv_nothing!(t, T0);
    let at = t.timer(Timer::DelayedAck).unwrap();
    assert_eq!(at, T0 + Duration::from_millis(40));
    send!(t, T0, seg(r(1001), l(1), ACK), &full);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(2001));
    assert_eq!(t.timer(Timer::DelayedAck), None);
    // A single segment is acknowledged when the timer fires.
    send!(t, T0, seg(r(2001), l(1), ACK), &full);
    recv_nothing!(t, T0);
    let at = t.poll_timeout().unwrap();
    t.handle_timeout(at);
    let (a, _) = recv!(t, at).unwrap();
    assert_eq!(a.ack, r(3001));
    // Out of order: immediately.
    send!(t, at, seg(r(4001), l(1), ACK), &full);
    let (a, _) = recv!(t, at).unwrap();
    assert_eq!(a.ack, r(3001));
}

#[test]
fn window_scaling_math() {
    let cfg = TcpConfig {
        window_scaling: true,
        recv_buffer: 1 << 20,
        ..plain()
    };
    let mut t = Tcb::connect(&cfg, params());
    let (syn, _) = recv!(t, T0).unwrap();
    // 1 MiB >> 4 = 65536 > 65535, >> 5 fits.
    assert_eq!(syn.options.window_scale, Some(5));
    // The window in a SYN is never scaled.
    assert_eq!(syn.window, 65535);
    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.options.window_scale = Some(3);
    sa.window = 1000;
    send!(t, T0, sa);
    // SYN-ACK window unscaled.
    assert_eq!(t.send_window(), 1000);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.window, ((1u32 << 20) >> 5) as u16);
    let mut w = seg(r(1), l(1), ACK);
    w.window = 1000;
    send!(t, T0, w);
    assert_eq!(t.send_window(), 8000);
}

#[test]
fn window_scale_needs_both_sides() {
    let cfg = TcpConfig {
        window_scaling: true,
        recv_buffer: 1 << 20,
        ..plain()
    };
    let mut t = Tcb::connect(&cfg, params());
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(0), l(1), SYN | ACK));
    assert_eq!(t.window_scales(), (0, 0));
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.window, 65535);
}

/// An established TCB whose 16 KiB receive buffer the peer filled (16 384 bytes unread,
/// the zero window acknowledged).
fn established_with_full_receive_buffer() -> Tcb {
    let mut t = established();
    let chunk = vec![3u8; 1000];
    for i in 0..16u32 {
        send!(t, T0, seg(r(1 + 1000 * i), l(1), ACK), &chunk);
        drain(&mut t, T0);
    }
    // 16 KiB buffer: 384 bytes left.
    send!(t, T0, seg(r(16_001), l(1), ACK), &chunk[..384]);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.window, 0);
    t
}

#[test]
fn receive_window_shrinks_as_data_waits_and_reopens_after_read() {
    let mut t = established_with_full_receive_buffer();
    let mut buf = vec![0u8; 16 * 1024];
    assert_eq!(t.read(&mut buf), 16_384);
    // A window update goes out after the application drained the buffer.
    let (u, _) = recv!(t, T0).unwrap();
    assert_eq!(u.window, 16_384);
}

#[test]
fn with_a_zero_receive_window_the_acknowledgment_on_a_data_segment_still_counts() {
    // Both sides' buffers full (an echo whose reader stalled): the peer's ACKs ride on
    // data. The data cannot be taken, but its ACK must be, or both senders wait on RTOs.
    let mut t = established_with_full_receive_buffer();
    assert_eq!(t.write(b"0123456789"), 10);
    let (d, _) = recv!(t, T0).unwrap();
    assert_eq!(d.seq, l(1));
    assert!(t.timer(Timer::Retransmit).is_some());
    // The peer's next data segment, at RCV.NXT, acknowledges our ten bytes (and says FIN).
    let chunk = [3u8; 100];
    send!(t, T0, seg(r(16_385), l(11), ACK | PSH | FIN), &chunk);
    assert_eq!(
        t.snd_una_offset(),
        10,
        "the ACK on a dropped segment was processed"
    );
    assert_eq!(t.timer(Timer::Retransmit), None);
    // The text and the FIN behind it were dropped: the ACK we send still says r(16_385).
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(16_385));
    assert_eq!(a.window, 0);
    assert_eq!(t.state(), TcpState::Established);
    // A segment past RCV.NXT is still dropped whole, its ACK unread.
    assert_eq!(t.write(b"abc"), 3);
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(16_386), l(14), ACK), &chunk);
    assert_eq!(t.snd_una_offset(), 10);
}

#[test]
fn zero_window_persist_probe() {
    let mut t = established();
    let mut z = seg(r(1), l(1), ACK);
    z.window = 0;
    send!(t, T0, z.clone());
    assert_eq!(t.write(b"blocked"), 7);
    recv_nothing!(t, T0);
    let probe_at = t.timer(Timer::Persist).unwrap();
    t.handle_timeout(probe_at);
    let (p, payload) = recv!(t, probe_at).unwrap();
    // A zero-length probe with an old sequence number elicits an ACK with the window.
    assert!(payload.is_empty());
    assert_eq!(p.seq, l(0));
    // Backoff: the next probe is later than the first interval.
    let next = t.timer(Timer::Persist).unwrap();
    assert!(next - probe_at > probe_at - T0);
    send!(t, probe_at, z);
    recv_nothing!(t, probe_at);
    // The window opens: data flows and the persist timer stops.
    send!(t, probe_at, seg(r(1), l(1), ACK));
    let (d, payload) = recv!(t, probe_at).unwrap();
    assert_eq!(payload, b"blocked");
    assert_eq!(d.seq, l(1));
    assert_eq!(t.timer(Timer::Persist), None);
}

#[test]
fn zero_window_probe_is_answered_with_an_ack() {
    let mut t = established();
    // The peer probes with an old sequence number.
    send!(t, T0, seg(r(0), l(1), ACK));
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(1));
    assert_eq!(a.window, 16 * 1024);
}

#[test]
fn nagle_holds_small_segments_while_unacked() {
    let cfg = TcpConfig {
        nagle: true,
        ..plain()
    };
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1000),
            ..TcpOptions::default()
        },
    );
    t.write(b"a");
    recv!(t, T0).unwrap();
    t.write(b"b");
    recv_nothing!(t, T0);
    send!(t, T0, seg(r(1), l(2), ACK));
    let (_, p) = recv!(t, T0).unwrap();
    assert_eq!(p, b"b");
}

#[test]
fn nagle_off_sends_small_segments_at_once() {
    let mut t = established();
    t.write(b"a");
    recv!(t, T0).unwrap();
    t.write(b"b");
    let (_, p) = recv!(t, T0).unwrap();
    assert_eq!(p, b"b");
}

// ------------------------------------------------------------------ RTT, RTO

#[test]
fn rto_backoff_doubles_and_karn_skips_retransmitted_samples() {
    let mut t = established();
    t.write(b"0123456789");
    recv!(t, T0).unwrap();
    // The handshake measured an RTT of 0: RTO = max(G, 4 * 0) raised to the 200 ms minimum.
    assert_eq!(t.rtt(), Some(Duration::ZERO));
    let rto1 = t.timer(Timer::Retransmit).unwrap();
    assert_eq!(rto1, T0 + Duration::from_millis(200));
    t.handle_timeout(rto1);
    let (s, p) = recv!(t, rto1).unwrap();
    assert_eq!(s.seq, l(1));
    assert_eq!(p, b"0123456789");
    assert_eq!(t.retransmits(), 1);
    assert_eq!(t.cwnd(), 1000);
    let rto2 = t.timer(Timer::Retransmit).unwrap();
    assert_eq!(rto2 - rto1, Duration::from_millis(400));
    t.handle_timeout(rto2);
    recv!(t, rto2).unwrap();
    let rto3 = t.timer(Timer::Retransmit).unwrap();
    assert_eq!(rto3 - rto2, Duration::from_millis(800));
    // The ACK of retransmitted data gives no RTT sample (Karn).
    send!(t, rto2 + Duration::from_millis(10), seg(r(1), l(11), ACK));
    assert_eq!(t.rtt(), Some(Duration::ZERO));
    assert_eq!(t.timer(Timer::Retransmit), None);
    // Fresh data is timed again and the backoff is gone.
    let now = rto2 + Duration::from_millis(10);
    t.write(b"x");
    recv!(t, now).unwrap();
    assert_eq!(
        t.timer(Timer::Retransmit),
        Some(now + Duration::from_millis(200))
    );
    send!(t, now + Duration::from_millis(50), seg(r(1), l(12), ACK));
    // RFC 6298: SRTT = 7/8 * 0 + 1/8 * 50 ms
    assert_eq!(t.rtt(), Some(Duration::from_micros(6250)));
    assert_eq!(t.rto(), Duration::from_millis(200));
}

#[test]
fn retransmission_limit_times_out() {
    let cfg = TcpConfig {
        max_retransmissions: 3,
        ..plain()
    };
    let mut t = established_with(&cfg, TcpOptions::default());
    t.write(b"data");
    recv!(t, T0).unwrap();
    for _ in 0..3 {
        let now = t.poll_timeout().unwrap();
        t.handle_timeout(now);
        recv!(t, now).unwrap();
        assert_eq!(t.state(), TcpState::Established);
    }
    let now = t.poll_timeout().unwrap();
    t.handle_timeout(now);
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), Some(ConnectionError::TimedOut));
    assert!(t.take_events().closed);
}

// ------------------------------------------------------------------ RFC 5961, PAWS

#[test]
fn in_window_rst_gets_challenge_ack_and_exact_rst_resets() {
    let mut t = established();
    send!(t, T0, seg(r(100), 0, RST));
    assert_eq!(t.state(), TcpState::Established);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.flags.0, ACK);
    assert_eq!(a.ack, r(1));
    assert_eq!(t.challenge_acks(), 1);
    // Out of window: silently dropped.
    send!(t, T0, seg(r(1_000_000), 0, RST));
    recv_nothing!(t, T0);
    send!(t, T0, seg(r(1), 0, RST));
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), Some(ConnectionError::Reset));
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    let mut t = established();
    send!(t, T0, seg(r(5), 0, SYN));
    assert_eq!(t.state(), TcpState::Established);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.flags.0, ACK);
    assert_eq!(a.ack, r(1));
    assert_eq!(t.challenge_acks(), 1);
}

#[test]
fn ack_of_unsent_data_is_dropped_and_acked() {
    let mut t = established();
    let out = send!(t, T0, seg(r(1), l(500), ACK), b"zz");
    assert!(!out.accepted);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(1));
    assert_eq!(t.readable(), 0);
}

#[test]
fn challenge_acks_are_rate_limited() {
    let mut t = established();
    for _ in 0..50 {
        send!(t, T0, seg(r(5), 0, SYN));
        drain(&mut t, T0);
    }
    assert_eq!(t.challenge_acks(), 10);
}

#[test]
fn paws_drops_old_timestamps() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain()
    };
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1000),
            timestamps: Some(Timestamps {
                tsval: 1000,
                tsecr: 0,
            }),
            ..TcpOptions::default()
        },
    );
    let mut s = seg(r(1), l(1), ACK);
    s.options.timestamps = Some(Timestamps {
        tsval: 1010,
        tsecr: 0,
    });
    send!(t, T0, s.clone(), b"new");
    assert_eq!(t.readable(), 3);
    drain(&mut t, T0);
    // An older TSval on otherwise acceptable data: dropped, ACK sent.
    s.seq = r(4);
    s.options.timestamps = Some(Timestamps {
        tsval: 1005,
        tsecr: 0,
    });
    let out = send!(t, T0, s.clone(), b"old");
    assert!(!out.accepted);
    assert_eq!(t.readable(), 3);
    assert_eq!(t.paws_drops(), 1);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.options.timestamps.unwrap().tsecr, 1010);
    s.options.timestamps = Some(Timestamps {
        tsval: 1020,
        tsecr: 0,
    });
    send!(t, T0, s, b"old");
    assert_eq!(t.readable(), 6);
}

// ------------------------------------------------------------------ close

#[test]
fn active_close_through_time_wait() {
    let mut t = established();
    t.write(b"bye");
    t.close();
    assert_eq!(t.state(), TcpState::FinWait1);
    let (s, p) = recv!(t, T0).unwrap();
    assert_eq!(p, b"bye");
    assert_eq!(s.flags.0, ACK | PSH | FIN);
    send!(t, T0, seg(r(1), l(5), ACK));
    assert_eq!(t.state(), TcpState::FinWait2);
    send!(t, T0, seg(r(1), l(5), ACK | FIN));
    assert_eq!(t.state(), TcpState::TimeWait);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(2));
    assert!(t.is_read_finished());
    // A retransmitted FIN restarts TIME-WAIT.
    let later = T0 + Duration::from_secs(1);
    send!(t, later, seg(r(1), l(5), ACK | FIN));
    recv!(t, later).unwrap();
    assert_eq!(t.poll_timeout(), Some(later + Duration::from_secs(2)));
    t.handle_timeout(later + Duration::from_secs(2));
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), None);
}

#[test]
fn passive_close_through_last_ack() {
    let mut t = established();
    send!(t, T0, seg(r(1), l(1), ACK | FIN), b"end");
    assert_eq!(t.state(), TcpState::CloseWait);
    let mut buf = [0u8; 8];
    assert_eq!(t.read(&mut buf), 3);
    assert!(t.is_read_finished());
    recv!(t, T0).unwrap();
    t.close();
    assert_eq!(t.state(), TcpState::LastAck);
    let (f, _) = recv!(t, T0).unwrap();
    assert_eq!(f.flags.0, ACK | FIN);
    send!(t, T0, seg(r(5), l(2), ACK));
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), None);
}

#[test]
fn simultaneous_close_through_closing() {
    let mut t = established();
    t.close();
    let (f, _) = recv!(t, T0).unwrap();
    assert_eq!(f.flags.0, ACK | FIN);
    // The peer's FIN crosses ours (it has not seen our FIN).
    send!(t, T0, seg(r(1), l(1), ACK | FIN));
    assert_eq!(t.state(), TcpState::Closing);
    recv!(t, T0).unwrap();
    send!(t, T0, seg(r(2), l(2), ACK));
    assert_eq!(t.state(), TcpState::TimeWait);
}

#[test]
fn fin_is_retransmitted() {
    let mut t = established();
    t.close();
    recv!(t, T0).unwrap();
    let at = t.poll_timeout().unwrap();
    t.handle_timeout(at);
    let (f, p) = recv!(t, at).unwrap();
    assert!(p.is_empty());
    assert_eq!(f.flags.0, ACK | FIN);
    assert_eq!(f.seq, l(1));
}

#[test]
fn out_of_order_fin_waits_for_the_gap() {
    let mut t = established();
    send!(t, T0, seg(r(4), l(1), ACK | FIN), b"def");
    assert_eq!(t.state(), TcpState::Established);
    send!(t, T0, seg(r(1), l(1), ACK), b"abc");
    assert_eq!(t.state(), TcpState::CloseWait);
    let mut buf = [0u8; 8];
    assert_eq!(t.read(&mut buf), 6);
    assert_eq!(&buf[..6], b"abcdef");
}

#[test]
fn abort_sends_rst() {
    let mut t = established();
    t.abort();
    let (s, _) = recv!(t, T0).unwrap();
    assert_eq!(s.flags.0, RST);
    assert_eq!(s.seq, l(1));
    assert_eq!(t.state(), TcpState::Closed);
    assert_eq!(t.error(), Some(ConnectionError::Aborted));
}
