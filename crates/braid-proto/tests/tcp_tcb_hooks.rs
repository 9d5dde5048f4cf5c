//! Transmission control block tests, the second part (the first is `tcp_tcb.rs`): what
//! MPTCP asks of a subflow's TCB (reserved option space, segment boundaries, offsets),
//! pacing, and pluggable congestion control; same style and helpers (`common/tcb.rs`).

#[macro_use]
#[path = "common/tcb.rs"]
mod common_tcb;
use common_tcb::*;

use braid_proto::tcp::{Tcb, TcpConfig, Timer};
use braid_proto::wire::{TcpOptions, TcpRepr, Timestamps};
use braid_proto::Duration;

// ------------------------------------------------------------------ MPTCP hooks

#[test]
fn reserved_option_space_shrinks_payload_and_offsets_track_data() {
    let mut t = established();
    t.set_reserved_option_len(20);
    assert_eq!(t.effective_mss(), 980);
    let data = vec![9u8; 3000];
    t.write(&data);
    let s = t.poll_segment(T0).unwrap();
    assert_eq!(s.data, 0..980);
    assert!(!s.retransmission);
    let s2 = t.poll_segment(T0).unwrap();
    assert_eq!(s2.data, 980..1960);
    assert_eq!(t.snd_una_offset(), 0);
    assert_eq!(t.snd_nxt_offset(), 1960);
    send!(t, T0, seg(r(1), l(1961), ACK));
    assert_eq!(t.snd_una_offset(), 1960);
    assert_eq!(t.bytes_acked(), 1960);
}

// ------------------------------------------------------------------ pacing

#[test]
fn pacing_spreads_segments_over_the_rtt() {
    let cfg = TcpConfig {
        send_buffer: 1 << 20,
        ..plain()
    };
    let rtt = Duration::from_millis(100);
    let mut t = established_with_rtt(&cfg, rtt);
    // slow start: 2 * cwnd / srtt = 2 * 10_000 B / 0.1 s = 200 kB/s
    assert_eq!(t.pacing_rate(), Some(200_000));
    t.write(&[5u8; 10_000]);
    let now = T0 + rtt;
    let (_, p) = recv!(t, now).unwrap();
    assert_eq!(p.len(), 1000);
    // The next segment waits (1040 wire bytes at 200 kB/s = 5.2 ms).
    recv_nothing!(t, now);
    let next = t.timer(Timer::Pacing).unwrap();
    assert_eq!(next - now, Duration::from_micros(5200));
    t.handle_timeout(next);
    let (_, p) = recv!(t, next).unwrap();
    assert_eq!(p.len(), 1000);
    recv_nothing!(t, next);
}

#[test]
fn without_pacing_the_window_goes_out_at_once() {
    let cfg = TcpConfig {
        send_buffer: 1 << 20,
        pacing: false,
        ..plain()
    };
    let rtt = Duration::from_millis(100);
    let mut t = established_with_rtt(&cfg, rtt);
    assert_eq!(t.pacing_rate(), None);
    t.write(&[5u8; 20_000]);
    // initial window: 10 segments
    assert_eq!(drain(&mut t, T0 + rtt).len(), 10);
}

#[test]
fn options_never_exceed_forty_bytes_with_reserved_space() {
    let mut cfg = plain();
    cfg.sack = true;
    cfg.timestamps = true;
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
            ..TcpOptions::default()
        },
    );
    // Four out-of-order blocks held.
    for i in 0..4u32 {
        let mut s = seg(r(1 + 100 * (2 * i + 1)), l(1), ACK);
        s.options.timestamps = Some(Timestamps { tsval: 2, tsecr: 0 });
        send!(t, T0, s, &[0u8; 100]);
    }
    drain(&mut t, T0);
    for (reserved, blocks) in [(0usize, 3usize), (12, 2), (20, 1), (28, 0)] {
        t.set_reserved_option_len(reserved);
        // Timestamps (10) + reserved, padded: the payload shrinks accordingly.
        assert_eq!(t.effective_mss(), 1460 - (10 + reserved).div_ceil(4) * 4);
        let mut s = seg(r(2), l(1), ACK);
        s.options.timestamps = Some(Timestamps { tsval: 3, tsecr: 0 });
        send!(t, T0, s, b"dup");
        let (a, _) = recv!(t, T0).unwrap();
        assert_eq!(a.options.sack_blocks.len(), blocks, "reserved {reserved}");
        let used = a.options.padded_len() + reserved.div_ceil(4) * 4;
        assert!(used <= 40 + 4, "reserved {reserved}: {used}");
        assert!(a.options.unpadded_len() + reserved <= 40);
        // A full data segment with these options still fits the MSS.
        t.write(&[7u8; 3000]);
        let seg = t.poll_segment(T0).unwrap();
        let len = (seg.data.end - seg.data.start) as usize;
        assert!(len + seg.repr.options.unpadded_len() + reserved <= 1460 + 3);
        send!(t, T0, {
            let mut s = seg_ack(seg.data.end as u32 + 1);
            s.options.timestamps = Some(Timestamps { tsval: 4, tsecr: 0 });
            s
        });
        drain(&mut t, T0);
    }
}

fn seg_ack(ack_off: u32) -> TcpRepr {
    seg(r(1), l(ack_off), ACK)
}

#[test]
fn delayed_ack_unit_is_the_segment_size_seen_not_the_mss() {
    let cfg = TcpConfig {
        delayed_ack: true,
        ..plain()
    };
    // The peer's MSS is 1460 but its segments carry 1448 bytes (12 bytes of options).
    let mut t = established_with(
        &cfg,
        TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
    );
    let seg_data = vec![1u8; 1448];
    send!(t, T0, seg(r(1), l(1), ACK), &seg_data);
    recv_nothing!(t, T0);
    send!(t, T0, seg(r(1449), l(1), ACK), &seg_data);
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(2897));
}

#[test]
fn duplicate_data_is_reported_with_dsack() {
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
    send!(t, T0, seg(r(1), l(1), ACK), b"abcdef");
    drain(&mut t, T0);
    // A duplicate below RCV.NXT: the D-SACK block comes first and covers it.
    send!(t, T0, seg(r(3), l(1), ACK), b"cd");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(a.ack, r(7));
    assert_eq!(a.options.sack_blocks.as_slice(), &[(r(3), r(5))]);
    // Reported once.
    send!(t, T0, seg(r(7), l(1), ACK), b"gh");
    let (a, _) = recv!(t, T0).unwrap();
    assert!(a.options.sack_blocks.is_empty());
    // A duplicate of out-of-order data: D-SACK first, then the block holding it.
    send!(t, T0, seg(r(20), l(1), ACK), b"xyz");
    drain(&mut t, T0);
    send!(t, T0, seg(r(21), l(1), ACK), b"y");
    let (a, _) = recv!(t, T0).unwrap();
    assert_eq!(
        a.options.sack_blocks.as_slice(),
        &[(r(21), r(22)), (r(20), r(23))]
    );
}

// ------------------------------------------------------------------ pluggable congestion control

#[test]
fn an_installed_controller_governs_the_window() {
    let mut t = established();
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    t.set_congestion_control(Box::new(Fixed {
        cwnd: 2000,
        acks: acks.clone(),
    }));
    assert_eq!(t.congestion_control().name(), "fixed");
    t.write(&[0u8; 10_000]);
    assert_eq!(drain(&mut t, T0).len(), 2);
    send!(t, T0, seg(r(1), l(1001), ACK));
    assert_eq!(acks.load(std::sync::atomic::Ordering::Relaxed), 1000);
    assert_eq!(drain(&mut t, T0).len(), 1);
}

#[test]
fn sack_scoreboard_is_bounded() {
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
    t.write(&[0u8; 10_000]);
    drain(&mut t, T0);
    // 4 one-byte blocks per ACK, at even offsets: 5000 disjoint ranges asked for.
    for k in 0..1250u32 {
        let mut a = seg(r(1), l(1), ACK);
        for j in 0..4u32 {
            let off = 2 + 2 * (4 * k + j);
            a.options.sack_blocks.push((l(off), l(off + 1)));
        }
        send!(t, T0, a);
        drain(&mut t, T0);
    }
    assert_eq!(t.sack_ranges(), 1024);
}

// ------------------------------------------------------------------ MPTCP hooks

#[test]
fn segments_end_at_marked_boundaries_when_sent_and_retransmitted() {
    let mut t = established();
    t.write(&[1u8; 2500]);
    // Runs of 700 and 1800 bytes: no segment may straddle offset 700.
    t.mark_segment_boundary(700);
    let lens = |t: &mut Tcb, now| drain(t, now).iter().map(|s| s.1.len()).collect::<Vec<_>>();
    assert_eq!(lens(&mut t, T0), vec![700, 1000, 800]);
    // Retransmission after an RTO cuts at the same place.
    let rto = t.timer(Timer::Retransmit).unwrap();
    t.handle_timeout(rto);
    assert_eq!(t.rto_backoff(), 1);
    let (s, p) = recv!(t, rto).unwrap();
    assert_eq!((s.seq, p.len()), (l(1), 700));
    // Progress clears the backoff; boundaries at or below SND.UNA are forgotten.
    send!(t, rto, seg(r(1), l(701), ACK));
    assert_eq!(t.rto_backoff(), 0);
    t.mark_segment_boundary(300); // below SND.UNA: ignored
    let got = lens(&mut t, rto);
    assert!(got.iter().all(|&n| n <= 1000), "{got:?}");
}

#[test]
fn a_short_run_before_a_boundary_is_not_held_by_nagle() {
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
    t.write(&[2u8; 1000]);
    recv!(t, T0).unwrap();
    // 100 bytes end a run, then a new run begins: with data in flight Nagle would hold a
    // short segment, but this one cannot grow.
    t.write(&[3u8; 1100]);
    t.mark_segment_boundary(1100);
    let (_, p) = recv!(t, T0).unwrap();
    assert_eq!(p.len(), 100);
    let (_, p) = recv!(t, T0).unwrap();
    assert_eq!(p.len(), 1000);
}

#[test]
fn stalled_means_the_peer_went_silent_not_that_it_is_slow() {
    // An RTO without an acknowledgment since, with data in flight.
    let mut t = established();
    t.write(b"in flight");
    recv!(t, T0).unwrap();
    assert!(!t.is_stalled());
    let rto = t.timer(Timer::Retransmit).unwrap();
    t.handle_timeout(rto);
    assert!(t.is_stalled());
    send!(t, rto, seg(r(1), l(10), ACK));
    assert!(!t.is_stalled());

    // A zero window with data waiting: a peer that answers its probes is only not reading;
    // two probes without an answer mean it is gone.
    let mut z = seg(r(1), l(10), ACK);
    z.window = 0;
    send!(t, rto, z.clone());
    t.write(b"waiting");
    recv_nothing!(t, rto);
    let p1 = t.timer(Timer::Persist).unwrap();
    t.handle_timeout(p1);
    recv!(t, p1).unwrap();
    assert!(!t.is_stalled(), "one probe may still be answered");
    send!(t, p1, z.clone());
    let p2 = t.timer(Timer::Persist).unwrap();
    t.handle_timeout(p2);
    recv!(t, p2).unwrap();
    assert!(!t.is_stalled(), "the first probe was answered");
    let p3 = t.timer(Timer::Persist).unwrap();
    t.handle_timeout(p3);
    recv!(t, p3).unwrap();
    assert!(t.is_stalled(), "two probes in a row went unanswered");
    send!(t, p3, z);
    assert!(!t.is_stalled());
}

#[test]
fn a_per_segment_reservation_sizes_new_data_and_retransmissions_keep_the_set_one() {
    // The MPTCP layer reserves DSS room only on a mapping's first segment: the hook decides
    // the option space of each new segment; retransmissions keep `set_reserved_option_len`'s.
    let mut t = established();
    t.set_reserved_option_len(28);
    assert_eq!(t.write(&[1u8; 3000]), 3000);
    let mut asked = Vec::new();
    let mut lens = Vec::new();
    for _ in 0..3 {
        let mut hook = |off: u64| {
            asked.push(off);
            if off == 0 {
                28
            } else {
                0
            }
        };
        let s = t.poll_segment_with(T0, Some(&mut hook)).expect("segment");
        lens.push(t.payload(&s).len());
    }
    // MSS 1000: the first segment gives 28 bytes to options, the next ones none.
    assert_eq!(lens, vec![972, 1000, 1000]);
    assert_eq!(asked, vec![0, 972, 1972]);
    // The RTO retransmits from the start with the reservation set on the TCB.
    let at = t.poll_timeout().expect("retransmission timer");
    t.handle_timeout(at);
    let s = t
        .poll_segment_with(at, Some(&mut |_| 0))
        .expect("retransmission");
    assert!(s.retransmission);
    assert_eq!(t.payload(&s).len(), 972);
}
