//! The sender's loss recovery, in the style of `tcp_tcb.rs`: RFC 6675 / NewReno, RACK-TLP
//! (RFC 8985), PRR (RFC 6937), and undo of spurious recoveries and timeouts (RFC 3522,
//! RFC 3708).

#[macro_use]
#[path = "common/tcb.rs"]
mod common_tcb;
use common_tcb::*;

use braid_proto::tcp::{Tcb, TcpConfig, Timer};
use braid_proto::wire::{TcpOptions, TcpRepr, Timestamps};
use braid_proto::{Duration, Instant};

// ------------------------------------------------------------------ loss recovery

fn send_segments(t: &mut Tcb, n: usize) -> Vec<(TcpRepr, Vec<u8>)> {
    let data: Vec<u8> = (0..n * 1000).map(|i| i as u8).collect();
    assert_eq!(t.write(&data), data.len());
    let segs = drain(t, T0);
    assert_eq!(segs.len(), n);
    segs
}

#[test]
fn newreno_fast_retransmit_on_three_dupacks_and_partial_ack() {
    let mut t = established();
    let segs = send_segments(&mut t, 10);
    // Segments 1 and 4 lost; duplicate ACKs for the rest.
    let now = Instant::from_millis(10);
    for _ in 0..2 {
        send!(t, now, seg(r(1), l(1), ACK));
        recv_nothing!(t, now);
    }
    assert!(!t.in_recovery());
    send!(t, now, seg(r(1), l(1), ACK));
    assert!(t.in_recovery());
    let (re, p) = recv!(t, now).unwrap();
    assert_eq!(re.seq, l(1));
    assert_eq!(p, segs[0].1);
    // Reno: ssthresh = flight / 2
    assert_eq!(t.ssthresh(), 5000);
    // Partial ACK up to the second hole: its segment goes out at once.
    send!(t, now, seg(r(1), l(3001), ACK));
    assert!(t.in_recovery());
    let (re, _) = recv!(t, now).unwrap();
    assert_eq!(re.seq, l(3001));
    // Full ACK ends recovery.
    send!(t, now, seg(r(1), l(10_001), ACK));
    assert!(!t.in_recovery());
    assert_eq!(t.retransmits(), 2);
}

#[test]
fn sack_recovery_retransmits_only_holes() {
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
    let _ = send_segments(&mut t, 10);
    let now = Instant::from_millis(10);
    // Segments 0 and 5 lost. SACKs for 1..5 and 6..10 arrive.
    let mut a = seg(r(1), l(1), ACK);
    a.options.sack_blocks.push((l(1001), l(3001)));
    send!(t, now, a.clone());
    assert!(!t.in_recovery());
    a.options.sack_blocks[0] = (l(1001), l(5001));
    send!(t, now, a.clone());
    // more than 2 * SMSS SACKed above segment 0: IsLost, recovery starts
    assert!(t.in_recovery());
    let (re, _) = recv!(t, now).unwrap();
    assert_eq!(re.seq, l(1));
    a.options.sack_blocks.clear();
    a.options.sack_blocks.push((l(6001), l(10_001)));
    a.options.sack_blocks.push((l(1001), l(5001)));
    send!(t, now, a);
    let (re, _) = recv!(t, now).unwrap();
    assert_eq!(re.seq, l(5001));
    // nothing else is lost: no more retransmissions
    let rest = drain(&mut t, now);
    assert!(rest.iter().all(|s| s.1.is_empty()), "{rest:?}");
    assert_eq!(t.retransmits(), 2);
    send!(t, now, seg(r(1), l(10_001), ACK));
    assert!(!t.in_recovery());
}

// ------------------------------------------------------------------ spurious recovery undo

/// A SACK connection with timestamps that sent ten 1000-byte segments (MSS 1012 less 12
/// bytes of timestamps) at 5 ms; the TSval they carry.
fn ten_timestamped_segments() -> (Tcb, u32) {
    let cfg = TcpConfig {
        timestamps: true,
        sack: true,
        pacing: false,
        send_buffer: 1 << 20,
        ..plain()
    };
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1012),
            sack_permitted: true,
            timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
            ..TcpOptions::default()
        },
    );
    t.write(&[1u8; 10_000]);
    let segs = drain(&mut t, Instant::from_millis(5));
    assert_eq!(segs.len(), 10);
    let orig_ts = segs[0].0.options.timestamps.map_or(0, |ts| ts.tsval);
    (t, orig_ts)
}

#[test]
fn reordering_detected_by_timestamps_undoes_the_reduction() {
    let (mut t, orig_ts) = ten_timestamped_segments();
    let cwnd_before = t.cwnd();
    // Segment 0 is delayed; SACKs for 1..4 arrive later and trigger a fast retransmit.
    let t2 = Instant::from_millis(20);
    let mut a = seg(r(1), l(1), ACK);
    a.options.timestamps = Some(Timestamps {
        tsval: 2,
        tsecr: orig_ts,
    });
    a.options.sack_blocks.push((l(1001), l(4001)));
    send!(t, t2, a.clone());
    assert!(t.in_recovery());
    assert!(t.cwnd() < cwnd_before);
    let (re, _) = recv!(t, t2).unwrap();
    assert_eq!(re.seq, l(1));
    assert!(re.options.timestamps.unwrap().tsval > orig_ts);
    // The original segment 0 arrives: the cumulative ACK echoes its (older) timestamp.
    let mut full = seg(r(1), l(10_001), ACK);
    full.options.timestamps = Some(Timestamps {
        tsval: 3,
        tsecr: orig_ts,
    });
    send!(t, t2, full);
    assert!(!t.in_recovery());
    assert_eq!(t.spurious_recoveries(), 1);
    assert!(t.cwnd() >= cwnd_before);
}

#[test]
fn a_real_loss_is_not_undone() {
    let (mut t, orig_ts) = ten_timestamped_segments();
    let t2 = Instant::from_millis(20);
    let mut a = seg(r(1), l(1), ACK);
    a.options.timestamps = Some(Timestamps {
        tsval: 2,
        tsecr: orig_ts,
    });
    a.options.sack_blocks.push((l(1001), l(4001)));
    send!(t, t2, a);
    let (re, _) = recv!(t, t2).unwrap();
    let rexmit_ts = re.options.timestamps.unwrap().tsval;
    let reduced = t.cwnd();
    // The retransmission filled the hole: the ACK echoes its timestamp.
    let mut full = seg(r(1), l(10_001), ACK);
    full.options.timestamps = Some(Timestamps {
        tsval: 3,
        tsecr: rexmit_ts,
    });
    send!(t, Instant::from_millis(40), full);
    assert_eq!(t.spurious_recoveries(), 0);
    assert!(t.cwnd() <= reduced + 2000);
}

// ------------------------------------------------------------------ RACK-TLP, PRR, undo

const RTT: Duration = Duration::from_millis(50);

/// An established SACK connection whose handshake measured `RTT`; 1000-byte segments, no
/// pacing; `initial_window` segments of congestion window.
fn sack_tcb(initial_window: u32, timestamps: bool) -> Tcb {
    let cfg = TcpConfig {
        sack: true,
        timestamps,
        pacing: false,
        initial_window,
        send_buffer: 1 << 20,
        ..plain()
    };
    let mut t = Tcb::connect(&cfg, params());
    let (syn, _) = recv!(t, T0).unwrap();
    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.options.mss = Some(if timestamps { 1012 } else { 1000 });
    sa.options.sack_permitted = true;
    if timestamps {
        sa.options.timestamps = Some(Timestamps {
            tsval: 1,
            tsecr: syn.options.timestamps.map_or(0, |t| t.tsval),
        });
    }
    send!(t, T0 + RTT, sa);
    recv!(t, T0 + RTT).unwrap();
    t
}

/// [`sack_tcb`] with `initial_window` that was given `bytes` and sent `segments` of them
/// at once, one RTT after the SYN: the connection and that instant.
fn sending(initial_window: u32, bytes: usize, segments: usize) -> (Tcb, Instant) {
    let mut t = sack_tcb(initial_window, false);
    let t0 = T0 + RTT;
    t.write(&vec![7u8; bytes]);
    assert_eq!(drain(&mut t, t0).len(), segments);
    (t, t0)
}

/// An ACK of everything below `ack` (offset) with SACK blocks (offsets).
fn sack(ack: u32, blocks: &[(u32, u32)]) -> TcpRepr {
    let mut a = seg(r(1), l(ack), ACK);
    for &(s, e) in blocks {
        a.options.sack_blocks.push((l(s), l(e)));
    }
    a
}

/// Offsets of the data segments in `out`, and whether each was a retransmission of
/// something below `below`.
fn data_offsets(out: &[(TcpRepr, Vec<u8>)]) -> Vec<u32> {
    out.iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(h, _)| h.seq.wrapping_sub(l(0)))
        .collect()
}

//= rfc8985#6.2
//= A retransmission is a transmission like any other: when data sent after it is delivered
//  and it is not, it is lost, and goes again without waiting for the RTO.
#[test]
fn a_lost_retransmission_is_found_and_resent_without_a_timeout() {
    let (mut t, t0) = sending(10, 40_000, 10);
    // One RTT later: segment 0 was lost, the others are SACKed one ACK at a time.
    let t1 = t0 + RTT;
    let mut sent = Vec::new();
    for i in 1..10u32 {
        send!(t, t1, sack(1, &[(1001, 1001 + 1000 * i)]));
        sent.extend(drain(&mut t, t1));
    }
    assert!(t.in_recovery());
    // SACKs before the loss is known let new data out; then the hole goes, once.
    let offs = data_offsets(&sent);
    assert_eq!(offs.iter().filter(|&&o| o == 1).count(), 1, "{offs:?}");
    let new_end = offs.iter().max().copied().unwrap_or(0) + 1000;
    assert!(
        new_end > 10_001,
        "new data went out during the recovery: {offs:?}"
    );
    // The retransmission is lost too; the new data sent after it is SACKed.
    let t2 = t1 + RTT;
    send!(t, t2, sack(1, &[(1001, new_end)]));
    let again = data_offsets(&drain(&mut t, t2));
    assert_eq!(again.first(), Some(&1), "resent at once: {again:?}");
    assert_eq!(t.timeouts(), 0);
    assert!(t.timer(Timer::Retransmit).is_some_and(|rto| rto > t2));
}

//= rfc8985#7
//= A lost tail costs a probe after about two RTTs, not an RTO: the probe's SACK lets RACK
//  find the rest.
#[test]
fn a_lost_tail_is_probed_before_the_rto() {
    let (mut t, t0) = sending(10, 4_000, 4);
    // Segments 2 and 3 are lost: the ACK covers 0 and 1.
    let t1 = t0 + RTT;
    send!(t, t1, sack(2001, &[]));
    recv_nothing!(t, t1);
    let pto = t.timer(Timer::Probe).expect("probe armed");
    let rto = t.timer(Timer::Retransmit).expect("rto armed");
    assert!(pto < rto, "probe at {pto:?}, rto at {rto:?}");
    assert_eq!(pto - t1, RTT * 2 + Duration::from_micros(200));
    t.handle_timeout(pto);
    // Nothing new to send: the last segment goes again.
    let probe = data_offsets(&drain(&mut t, pto));
    assert_eq!(probe, vec![3001]);
    // Its SACK shows segment 2 lost: it goes at once.
    let t2 = pto + RTT;
    send!(t, t2, sack(2001, &[(3001, 4001)]));
    assert!(t.in_recovery());
    assert_eq!(data_offsets(&drain(&mut t, t2)), vec![2001]);
    send!(t, t2 + RTT, sack(4001, &[]));
    assert!(!t.in_recovery());
    assert_eq!(t.timeouts(), 0);
}

//= rfc8985#6.3
//= With fewer than DupThresh segments SACKed above a hole, the hole is lost once the
//  reordering window (a quarter of the minimum RTT) has passed: the reordering timer.
#[test]
fn the_reordering_timer_declares_a_hole_lost_when_few_segments_follow() {
    let (mut t, t0) = sending(10, 2_000, 2);
    let t1 = t0 + RTT;
    send!(t, t1, sack(1, &[(1001, 2001)]));
    assert!(!t.in_recovery());
    recv_nothing!(t, t1);
    let at = t.timer(Timer::Reorder).expect("reordering timer");
    assert_eq!(at - t1, RTT / 4);
    t.handle_timeout(at);
    assert!(t.in_recovery());
    assert_eq!(data_offsets(&drain(&mut t, at)), vec![1]);
    assert_eq!(t.timeouts(), 0);
}

//= rfc6937#3
//= In recovery the sender sends in proportion to what is delivered, about ssthresh /
//  RecoverFS per delivered byte, spread over the ACKs rather than in one burst.
#[test]
fn prr_spreads_sending_over_the_recovery() {
    let (mut t, t0) = sending(20, 100_000, 20);
    let t1 = t0 + RTT;
    let mut per_ack = Vec::new();
    for i in 1..20u32 {
        send!(t, t1, sack(1, &[(1001, 1001 + 1000 * i)]));
        per_ack.push(data_offsets(&drain(&mut t, t1)).len());
    }
    assert!(t.in_recovery());
    // Reno: ssthresh = 10 segments of the 20 in flight; 19 delivered → about 9.5 sent.
    let total: usize = per_ack.iter().sum();
    assert!((9..=11).contains(&total), "{per_ack:?}");
    assert!(per_ack.iter().all(|&n| n <= 2), "{per_ack:?}");
    assert!(t.pipe() <= t.ssthresh() as u64 + 1000, "pipe {}", t.pipe());
}

//= rfc3708#2
//= A recovery whose every retransmission comes back as a DSACK was caused by reordering:
//  the reduction is undone.
#[test]
fn dsacks_for_every_retransmission_undo_the_reduction() {
    let (mut t, t0) = sending(10, 10_000, 10);
    let cwnd_before = t.cwnd();
    let t1 = t0 + RTT;
    send!(t, t1, sack(1, &[(1001, 5001)]));
    assert!(t.in_recovery());
    assert!(t.cwnd() < cwnd_before);
    assert_eq!(data_offsets(&drain(&mut t, t1)).first(), Some(&1));
    // Segment 0 was only late: everything is acknowledged, then the retransmission comes
    // back as a duplicate.
    send!(t, t1 + Duration::from_millis(1), sack(10_001, &[]));
    assert!(!t.in_recovery());
    assert_eq!(t.spurious_recoveries(), 0);
    send!(t, t1 + RTT, sack(10_001, &[(1, 1001)]));
    assert_eq!(t.spurious_recoveries(), 1);
    assert!(t.cwnd() >= cwnd_before, "{} < {cwnd_before}", t.cwnd());
}

//= rfc3522#3.2
//= The first ACK after an RTO echoes the original's timestamp: the original arrived, the
//  timeout was spurious. The reduction is undone and nothing more is resent.
#[test]
fn a_spurious_timeout_is_undone_by_timestamps() {
    let mut t = sack_tcb(10, true);
    let t0 = T0 + RTT;
    t.write(&[7u8; 10_000]);
    let segs = drain(&mut t, t0);
    assert_eq!(segs.len(), 10);
    let orig_ts = segs[0].0.options.timestamps.map_or(0, |ts| ts.tsval);
    let cwnd_before = t.cwnd();
    let rto = t.timer(Timer::Retransmit).expect("rto");
    t.handle_timeout(rto);
    assert_eq!(t.timeouts(), 1);
    let re = drain(&mut t, rto);
    assert_eq!(data_offsets(&re), vec![1], "one segment after the timeout");
    // The ACK of the originals arrives: it echoes their timestamp.
    let mut a = sack(10_001, &[]);
    a.options.timestamps = Some(Timestamps {
        tsval: 2,
        tsecr: orig_ts,
    });
    let t2 = rto + Duration::from_millis(1);
    send!(t, t2, a);
    assert_eq!(t.spurious_recoveries(), 1);
    assert!(t.cwnd() >= cwnd_before, "{} < {cwnd_before}", t.cwnd());
    assert!(data_offsets(&drain(&mut t, t2)).is_empty());
}

//= rfc6298#5
//= The timer's backoff is for a silent path: an ACK that SACKs new data shows the path
//  delivers, so the backoff (and the MPTCP layer's sign of a stale subflow) ends there, not
//  only when SND.UNA moves.
#[test]
fn sacks_after_a_timeout_end_the_backoff_and_the_stall() {
    let (mut t, _) = sending(10, 10_000, 10);
    let rto = t.timer(Timer::Retransmit).expect("rto");
    t.handle_timeout(rto);
    drain(&mut t, rto);
    assert!(t.is_stalled());
    assert_eq!(t.rto_backoff(), 1);
    // The segments after the first arrive: the ACK SACKs them.
    send!(t, rto + RTT, sack(1, &[(1001, 10_001)]));
    assert_eq!(t.rto_backoff(), 0);
    assert!(!t.is_stalled());
}

/// A window of two segments lets two of the longest segments go, even when the congestion
/// controller counts in shorter ones (an MPTCP subflow reserves room for a DSS mapping that
/// most segments do not carry): counted in bytes, the second would wait for an ACK, and
/// with the first lost, for a probe or the RTO.
#[test]
fn a_two_segment_window_sends_two_full_segments() {
    let mut t = sack_tcb(2, false);
    // From here the controller counts 972-byte segments; new data goes 1000 bytes a segment.
    t.set_reserved_option_len(28);
    let mut no_dss = |_: u64| 0usize;
    let mut poll = |t: &mut Tcb, now: Instant| {
        let mut sent = Vec::new();
        while let Some(s) = t.poll_segment_with(now, Some(&mut no_dss)) {
            if !s.data.is_empty() {
                sent.push(s.data.end - s.data.start);
            }
            assert!(sent.len() < 10);
        }
        sent
    };
    t.write(&[7u8; 20_000]);
    let t0 = T0 + RTT;
    assert_eq!(poll(&mut t, t0), vec![1000, 1000]);
    // The first is lost: the reordering timer finds it, the window falls to its floor of
    // two (controller) segments.
    let t1 = t0 + RTT;
    send!(t, t1, sack(1, &[(1001, 2001)]));
    let at = t.timer(Timer::Reorder).expect("reordering timer");
    t.handle_timeout(at);
    assert!(t.in_recovery());
    assert_eq!(t.cwnd(), 2 * 972);
    assert_eq!(poll(&mut t, at).len(), 1);
    // Its retransmission arrives: two full segments fit the window of two.
    let t2 = at + RTT;
    send!(t, t2, sack(2001, &[]));
    assert!(!t.in_recovery());
    assert_eq!(poll(&mut t, t2), vec![1000, 1000]);
}

/// A lone segment in flight is probed too: after two RTTs and the 50 ms a receiver may
/// hold the ACK of a lone segment, before the RTO.
#[test]
fn a_lone_lost_segment_is_probed_before_the_rto() {
    let (mut t, t0) = sending(10, 1_000, 1);
    let pto = t.timer(Timer::Probe).expect("probe armed");
    let rto = t.timer(Timer::Retransmit).expect("rto armed");
    assert_eq!(pto - t0, RTT * 2 + Duration::from_millis(50));
    assert!(pto < rto);
    t.handle_timeout(pto);
    assert_eq!(data_offsets(&drain(&mut t, pto)), vec![1]);
    assert_eq!(t.timeouts(), 0);
}

//= rfc5682#3.1
//= Without timestamps a spurious timeout is found by F-RTO: after the head's retransmission
//  is acknowledged, new data goes instead of the rest; an ACK of data sent before the
//  timeout and never resent then undoes the timeout.
#[test]
fn f_rto_finds_a_spurious_timeout_without_timestamps() {
    let (mut t, _) = sending(10, 30_000, 10);
    let cwnd_before = t.cwnd();
    let rto = t.timer(Timer::Retransmit).expect("rto");
    t.handle_timeout(rto);
    assert_eq!(data_offsets(&drain(&mut t, rto)), vec![1]);
    // The first ACK covers the head: new data goes, not the rest of the window.
    let t1 = rto + RTT;
    send!(t, t1, sack(1001, &[]));
    let next = data_offsets(&drain(&mut t, t1));
    assert!(
        !next.is_empty() && next.iter().all(|&o| o >= 10_001),
        "{next:?}"
    );
    // The next ACK covers the segments sent before the timeout, never resent: spurious.
    send!(t, t1 + Duration::from_millis(1), sack(10_001, &[]));
    assert_eq!(t.spurious_recoveries(), 1);
    assert!(t.cwnd() >= cwnd_before, "{} < {cwnd_before}", t.cwnd());
    let after = data_offsets(&drain(&mut t, t1 + Duration::from_millis(1)));
    assert!(
        after.iter().all(|&o| o >= 10_001),
        "nothing old resent: {after:?}"
    );
}

/// F-RTO with a real loss: the ACK after the new data SACKs only it, so the recovery goes on
/// and resends the rest.
#[test]
fn f_rto_goes_on_with_the_recovery_when_the_loss_was_real() {
    let (mut t, _) = sending(10, 30_000, 10);
    let rto = t.timer(Timer::Retransmit).expect("rto");
    t.handle_timeout(rto);
    drain(&mut t, rto);
    let t1 = rto + RTT;
    send!(t, t1, sack(1001, &[]));
    let new = data_offsets(&drain(&mut t, t1));
    let first_new = *new.first().expect("new data");
    let t2 = t1 + RTT;
    send!(t, t2, sack(1001, &[(first_new, first_new + 1000)]));
    assert_eq!(t.spurious_recoveries(), 0);
    let again = data_offsets(&drain(&mut t, t2));
    assert_eq!(again.first(), Some(&1001), "{again:?}");
}

/// A DSACK for an earlier episode's retransmission says nothing about the current one: it
/// does not undo the current reduction (only DSACKs from the episode's start on count).
#[test]
fn an_old_dsack_does_not_undo_the_current_recovery() {
    let (mut t, t0) = sending(10, 40_000, 10);
    // Episode 1: segment 0 lost, resent, everything acknowledged.
    let t1 = t0 + RTT;
    send!(t, t1, sack(1, &[(1001, 5001)]));
    assert!(t.in_recovery());
    drain(&mut t, t1);
    let t2 = t1 + RTT;
    send!(t, t2, sack(10_001, &[]));
    assert!(!t.in_recovery());
    let sent = data_offsets(&drain(&mut t, t2));
    let last = *sent.last().expect("new data");
    // Episode 2: the first new segment is lost.
    let t3 = t2 + RTT;
    send!(t, t3, sack(10_001, &[(11_001, last + 1000)]));
    assert!(t.in_recovery(), "episode 2");
    let reduced = t.cwnd();
    drain(&mut t, t3);
    // A DSACK for episode 1's retransmission (below this episode's start) arrives.
    send!(
        t,
        t3 + Duration::from_millis(1),
        sack(10_001, &[(1, 1001), (11_001, last + 1000)])
    );
    assert_eq!(t.spurious_recoveries(), 0);
    assert!(t.in_recovery());
    assert!(t.cwnd() <= reduced);
}

/// RFC 5681 §3.1: the loss window is one full-sized segment. A window below one segment
/// still lets one whole segment go when nothing is in flight, before and after a timeout
/// (else the retransmission timer fires for ever and sends nothing), and only one.
#[test]
fn a_window_below_one_segment_still_sends_one_segment() {
    let mut t = established();
    // A window below one segment (one built for another MSS, or a pluggable controller
    // that floors at a few hundred bytes).
    t.set_congestion_control(Box::new(Fixed {
        cwnd: 600,
        acks: Default::default(),
    }));
    let data = vec![7u8; 5000];
    assert_eq!(t.write(&data), data.len());
    let first = drain(&mut t, T0);
    assert_eq!(first.len(), 1, "one segment, not none and not more");
    assert_eq!(first[0].1.len(), 1000, "a whole segment");
    let rto = t
        .timer(Timer::Retransmit)
        .expect("retransmission timer armed");
    t.handle_timeout(rto);
    let again = drain(&mut t, rto);
    assert_eq!(again.len(), 1, "the timeout retransmits");
    assert_eq!(again[0].0.seq, first[0].0.seq);
}
