//! Decision rules of the built-in schedulers and the contract every one keeps.

use braid_proto::sched::{
    by_name, Assignment, Blest, KernelDefault, MinRtt, Redundant, Reinject, RoundRobin, SchedInput,
    Scheduler, SubflowView, NAMES, SEND_BURST,
};
use braid_proto::Duration;
use proptest::prelude::*;

const MSS: u64 = 1400;

/// An established, idle subflow with a 10-segment window, 10 ms RTT and 1 MB/s pacing.
fn sf(id: usize) -> SubflowView {
    SubflowView {
        id,
        established: true,
        backup: false,
        stale: false,
        stale_count: 0,
        cwnd: 10 * MSS,
        in_flight: 0,
        queued_bytes: 0,
        send_space: 1 << 20,
        srtt: Some(Duration::from_millis(10)),
        min_rtt: Some(Duration::from_millis(10)),
        pacing_rate: Some(1_000_000),
        mss: MSS,
    }
}

fn run(
    s: &mut dyn Scheduler,
    subs: &[SubflowView],
    new: core::ops::Range<u64>,
    re: &[Reinject],
) -> Vec<Assignment> {
    let input = SchedInput {
        subflows: subs,
        new_data: new,
        reinject: re,
        send_window: 1 << 30,
        stream_end: None,
    };
    let mut out = Vec::new();
    s.schedule(&input, &mut out);
    out
}

fn a(subflow: usize, range: core::ops::Range<u64>, reinjection: bool) -> Assignment {
    Assignment {
        subflow,
        range,
        reinjection,
    }
}

// ---- by_name ----

#[test]
fn by_name_knows_every_builtin() {
    for name in NAMES {
        let s = by_name(name).expect(name);
        assert_eq!(s.name(), name);
    }
    assert!(by_name("ecf").is_none());
    assert!(by_name("").is_none());
    assert!(by_name("Default").is_none());
}

// ---- view helpers ----

#[test]
fn view_rate_falls_back_to_cwnd_over_srtt_then_cwnd_per_second() {
    let mut v = sf(0);
    assert_eq!(v.rate(), 1_000_000);
    v.pacing_rate = None;
    assert_eq!(v.rate(), 10 * MSS * 100); // cwnd / 10 ms
    v.srtt = None;
    assert_eq!(v.rate(), 10 * MSS);
    v.cwnd = 0;
    assert_eq!(v.rate(), 1);
}

#[test]
fn view_cwnd_room_counts_queued_and_in_flight() {
    let mut v = sf(0);
    v.queued_bytes = 4 * MSS;
    v.in_flight = 3 * MSS;
    assert_eq!(v.cwnd_room(), 6 * MSS);
    v.in_flight = 12 * MSS;
    assert_eq!(v.cwnd_room(), 0);
}

// ---- Default ----

#[test]
fn default_picks_smallest_linger() {
    let mut s0 = sf(0);
    s0.queued_bytes = 100_000; // 0.1 s at 1 MB/s
    let mut s1 = sf(1);
    s1.queued_bytes = 100_000;
    s1.pacing_rate = Some(10_000_000); // 0.01 s
    let out = run(&mut KernelDefault::new(), &[s0, s1], 0..1000, &[]);
    assert_eq!(out, vec![a(1, 0..1000, false)]);
}

#[test]
fn default_ties_go_to_lowest_id_and_one_pick_per_call() {
    let out = run(
        &mut KernelDefault::new(),
        &[sf(3), sf(1), sf(2)],
        10..500,
        &[],
    );
    assert_eq!(out, vec![a(1, 10..500, false)]);
}

#[test]
fn default_skips_stale_and_unestablished() {
    let mut s0 = sf(0);
    s0.stale = true;
    let mut s1 = sf(1);
    s1.established = false;
    let mut s2 = sf(2);
    s2.queued_bytes = 500_000;
    let out = run(&mut KernelDefault::new(), &[s0, s1, s2], 0..10, &[]);
    assert_eq!(out, vec![a(2, 0..10, false)]);
}

#[test]
fn default_leaves_backup_alone_while_a_primary_is_active() {
    let mut s0 = sf(0);
    s0.queued_bytes = 900_000;
    let mut b = sf(1);
    b.backup = true;
    let out = run(
        &mut KernelDefault::new(),
        &[s0.clone(), b.clone()],
        0..10,
        &[],
    );
    assert_eq!(out, vec![a(0, 0..10, false)]);
    // Even with the primary's buffer full: wait, do not spill to the backup.
    s0.send_space = 0;
    let out = run(
        &mut KernelDefault::new(),
        &[s0.clone(), b.clone()],
        0..10,
        &[],
    );
    assert!(out.is_empty());
    // Primary stale: the backup takes over.
    s0.stale = true;
    let out = run(&mut KernelDefault::new(), &[s0, b], 0..10, &[]);
    assert_eq!(out, vec![a(1, 0..10, false)]);
}

#[test]
fn default_waits_when_the_best_subflow_is_full() {
    let mut s0 = sf(0);
    s0.send_space = 0;
    let mut s1 = sf(1);
    s1.queued_bytes = 1_000_000;
    let out = run(&mut KernelDefault::new(), &[s0, s1], 0..10, &[]);
    assert!(out.is_empty());
}

#[test]
fn default_bursts_at_most_64k_and_the_send_space() {
    let out = run(&mut KernelDefault::new(), &[sf(0)], 0..1_000_000, &[]);
    assert_eq!(out, vec![a(0, 0..SEND_BURST, false)]);
    let mut s = sf(0);
    s.send_space = 5000;
    let out = run(&mut KernelDefault::new(), &[s], 0..1_000_000, &[]);
    assert_eq!(out, vec![a(0, 0..5000, false)]);
}

#[test]
fn default_sends_nothing_without_new_data_or_subflows() {
    assert!(run(&mut KernelDefault::new(), &[sf(0)], 7..7, &[]).is_empty());
    assert!(run(&mut KernelDefault::new(), &[], 0..100, &[]).is_empty());
}

#[test]
fn reinjection_goes_to_an_empty_subflow_other_than_the_origin() {
    let mut s0 = sf(0);
    s0.queued_bytes = 5000;
    let mut s1 = sf(1);
    s1.queued_bytes = 3000; // busy: not a retransmission target
    let s2 = sf(2);
    let re = [Reinject {
        range: 100..900,
        from: 0,
    }];
    let out = run(&mut KernelDefault::new(), &[s0, s1, s2], 2000..2000, &re);
    assert_eq!(out, vec![a(2, 100..900, true)]);
}

#[test]
fn reinjection_never_returns_to_its_origin() {
    let re = [Reinject {
        range: 0..10,
        from: 0,
    }];
    let out = run(&mut KernelDefault::new(), &[sf(0)], 10..10, &re);
    assert!(out.is_empty());
}

#[test]
fn reinjection_and_new_data_use_distinct_subflows() {
    let mut s0 = sf(0);
    s0.stale = true;
    s0.queued_bytes = 1000;
    let re = [Reinject {
        range: 0..1000,
        from: 0,
    }];
    let out = run(
        &mut KernelDefault::new(),
        &[s0.clone(), sf(1)],
        1000..3000,
        &re,
    );
    // Subflow 1 takes the reinjection; it is the only candidate for new data, so none.
    assert_eq!(out, vec![a(1, 0..1000, true)]);
    let out = run(
        &mut KernelDefault::new(),
        &[s0, sf(1), sf(2)],
        1000..3000,
        &re,
    );
    assert_eq!(out, vec![a(1, 0..1000, true), a(2, 1000..3000, false)]);
}

#[test]
fn reinjection_uses_a_backup_only_when_no_busy_subflow_progresses() {
    let mut s0 = sf(0);
    s0.queued_bytes = 5000;
    s0.stale_count = 1;
    let mut b = sf(1);
    b.backup = true;
    let mut s0_full = s0.clone();
    s0_full.send_space = 0;
    let re = [Reinject {
        range: 0..100,
        from: 2,
    }];
    // An active primary with room takes it, even with bytes queued.
    let out = run(
        &mut KernelDefault::new(),
        &[s0.clone(), b.clone()],
        0..0,
        &re,
    );
    assert_eq!(out, vec![a(0, 0..100, true)]);
    // A full primary that still progresses: the backup stays idle.
    let out = run(
        &mut KernelDefault::new(),
        &[s0_full.clone(), b.clone()],
        0..0,
        &re,
    );
    assert!(out.is_empty());
    s0_full.stale_count = 2;
    let out = run(
        &mut KernelDefault::new(),
        &[s0_full.clone(), b.clone()],
        0..0,
        &re,
    );
    assert_eq!(out, vec![a(1, 0..100, true)]);
    // No active primary other than the origin: the backup takes it.
    s0.stale = true;
    s0.stale_count = 0;
    let out = run(&mut KernelDefault::new(), &[s0, b], 0..0, &re);
    assert_eq!(out, vec![a(1, 0..100, true)]);
}

#[test]
fn reinjection_prefers_the_least_queued_primary() {
    let mut s1 = sf(1);
    s1.queued_bytes = 9000;
    let mut s2 = sf(2);
    s2.queued_bytes = 4000;
    let re = [Reinject {
        range: 0..100,
        from: 0,
    }];
    let out = run(&mut KernelDefault::new(), &[sf(0), s1, s2], 0..0, &re);
    assert_eq!(out, vec![a(2, 0..100, true)]);
}

#[test]
fn reinjection_is_capped_and_one_per_subflow() {
    let re = [
        Reinject {
            range: 0..200_000,
            from: 0,
        },
        Reinject {
            range: 300_000..300_100,
            from: 0,
        },
        Reinject {
            range: 400_000..400_100,
            from: 0,
        },
    ];
    let mut s0 = sf(0);
    s0.stale = true;
    let out = run(&mut KernelDefault::new(), &[s0, sf(1), sf(2)], 0..0, &re);
    assert_eq!(
        out,
        vec![a(1, 0..SEND_BURST, true), a(2, 300_000..300_100, true)]
    );
}

// ---- MinRtt ----

#[test]
fn minrtt_fills_lowest_rtt_first_up_to_cwnd() {
    let mut fast = sf(0);
    fast.srtt = Some(Duration::from_millis(5));
    let mut slow = sf(1);
    slow.srtt = Some(Duration::from_millis(50));
    let out = run(
        &mut MinRtt::new(),
        &[slow.clone(), fast.clone()],
        0..100_000,
        &[],
    );
    assert_eq!(
        out,
        vec![a(0, 0..10 * MSS, false), a(1, 10 * MSS..20 * MSS, false)]
    );
    // Enough room on the fast one alone.
    let out = run(&mut MinRtt::new(), &[slow, fast], 0..1000, &[]);
    assert_eq!(out, vec![a(0, 0..1000, false)]);
}

#[test]
fn minrtt_skips_full_windows_and_puts_unknown_rtt_last() {
    let mut fast = sf(0);
    fast.srtt = Some(Duration::from_millis(1));
    fast.in_flight = fast.cwnd;
    let mut unknown = sf(1);
    unknown.srtt = None;
    let slow = sf(2);
    let out = run(&mut MinRtt::new(), &[fast, unknown, slow], 0..100_000, &[]);
    assert_eq!(
        out,
        vec![a(2, 0..10 * MSS, false), a(1, 10 * MSS..20 * MSS, false)]
    );
}

#[test]
fn minrtt_respects_backup_rule() {
    let mut b = sf(0);
    b.backup = true;
    b.srtt = Some(Duration::from_millis(1));
    let out = run(&mut MinRtt::new(), &[b.clone(), sf(1)], 0..100, &[]);
    assert_eq!(out, vec![a(1, 0..100, false)]);
    let mut dead = sf(1);
    dead.stale = true;
    let out = run(&mut MinRtt::new(), &[b, dead], 0..100, &[]);
    assert_eq!(out, vec![a(0, 0..100, false)]);
}

// ---- RoundRobin ----

#[test]
fn roundrobin_gives_one_segment_per_turn_and_rotates_between_calls() {
    let mut rr = RoundRobin::new();
    let subs = [sf(0), sf(1), sf(2)];
    let out = run(&mut rr, &subs, 0..2 * MSS, &[]);
    assert_eq!(out, vec![a(0, 0..MSS, false), a(1, MSS..2 * MSS, false)]);
    assert_eq!(rr.last(), Some(1));
    let out = run(&mut rr, &subs, 2 * MSS..3 * MSS, &[]);
    assert_eq!(out, vec![a(2, 2 * MSS..3 * MSS, false)]);
    let out = run(&mut rr, &subs, 3 * MSS..4 * MSS, &[]);
    assert_eq!(out, vec![a(0, 3 * MSS..4 * MSS, false)]);
}

#[test]
fn roundrobin_segments_per_turn_and_cwnd_limit() {
    let mut rr = RoundRobin::with_segments(3);
    let mut s1 = sf(1);
    s1.in_flight = s1.cwnd - 100; // 100 bytes of room
    let out = run(&mut rr, &[sf(0), s1, sf(2)], 0..100_000, &[]);
    assert_eq!(
        out,
        vec![
            a(0, 0..3 * MSS, false),
            a(1, 3 * MSS..3 * MSS + 100, false),
            a(2, 3 * MSS + 100..6 * MSS + 100, false),
        ]
    );
    let mut s0 = sf(0);
    s0.in_flight = s0.cwnd;
    let out = run(&mut RoundRobin::new(), &[s0], 0..100, &[]);
    assert!(out.is_empty());
}

// ---- Redundant ----

#[test]
fn redundant_sends_every_byte_on_every_subflow() {
    let out = run(&mut Redundant::new(), &[sf(1), sf(0)], 0..5000, &[]);
    assert_eq!(out, vec![a(0, 0..5000, false), a(1, 0..5000, true)]);
}

#[test]
fn redundant_is_held_back_by_the_smallest_send_space() {
    let mut s1 = sf(1);
    s1.send_space = 700;
    let out = run(&mut Redundant::new(), &[sf(0), s1.clone()], 0..5000, &[]);
    assert_eq!(out, vec![a(0, 0..700, false), a(1, 0..700, true)]);
    s1.send_space = 0;
    assert!(run(&mut Redundant::new(), &[sf(0), s1], 0..5000, &[]).is_empty());
}

#[test]
fn redundant_excludes_backups_and_stale_subflows() {
    let mut b = sf(1);
    b.backup = true;
    let mut st = sf(2);
    st.stale = true;
    let out = run(&mut Redundant::new(), &[sf(0), b, st], 0..10, &[]);
    assert_eq!(out, vec![a(0, 0..10, false)]);
}

#[test]
fn redundant_sends_no_new_data_in_a_reinjection_round() {
    let mut s0 = sf(0);
    s0.stale = true;
    let re = [Reinject {
        range: 0..10,
        from: 0,
    }];
    let out = run(&mut Redundant::new(), &[s0, sf(1), sf(2)], 10..20, &re);
    assert_eq!(out, vec![a(1, 0..10, true)]);
}

// ---- BLEST ----

fn blest_pair() -> (SubflowView, SubflowView) {
    let mut fast = sf(0);
    fast.srtt = Some(Duration::from_millis(10));
    fast.in_flight = fast.cwnd; // no room: the slow one is considered
    let mut slow = sf(1);
    slow.srtt = Some(Duration::from_millis(40));
    (fast, slow)
}

#[test]
fn blest_estimate_matches_the_paper() {
    let (fast, slow) = blest_pair();
    // n = 4, cwnd = 10 segments: X = MSS * (10 + 1.5) * 4.
    let x = Blest::fast_bytes_during(&fast, &slow).expect("rtts known");
    assert!((x - MSS as f64 * 46.0).abs() < 1e-6);
    let mut unknown = slow.clone();
    unknown.srtt = None;
    assert!(Blest::fast_bytes_during(&fast, &unknown).is_none());
}

#[test]
fn blest_uses_the_fast_subflow_when_it_has_room() {
    let (mut fast, slow) = blest_pair();
    fast.in_flight = 0;
    let out = run(&mut Blest::new(), &[slow, fast], 0..1000, &[]);
    assert_eq!(out, vec![a(0, 0..1000, false)]);
}

#[test]
fn blest_skips_the_slow_subflow_when_it_would_block() {
    let (fast, slow) = blest_pair();
    let subs = [fast, slow];
    // X·λ = 64400 · 1.2 = 77280 bytes. A 60 kB window leaves far less: wait for the fast one.
    let input = SchedInput {
        subflows: &subs,
        new_data: 0..1000,
        reinject: &[],
        send_window: 60_000,
        stream_end: None,
    };
    let mut out = Vec::new();
    Blest::new().schedule(&input, &mut out);
    assert!(out.is_empty());
    // A 1 MB window: no blocking, the slow one is used.
    let input = SchedInput {
        send_window: 1_000_000,
        stream_end: None,
        ..input
    };
    Blest::new().schedule(&input, &mut out);
    assert_eq!(out, vec![a(1, 0..1000, false)]);
}

#[test]
fn blest_lambda_scales_the_estimate() {
    let (fast, slow) = blest_pair();
    // X = 64400; left = 70000 − 1000 = 69000: blocks with λ = 1.2, not with λ = 1.0.
    assert!(Blest::new().would_block(&fast, &slow, 1000, 70_000));
    assert!(!Blest::with_lambda(1.0).would_block(&fast, &slow, 1000, 70_000));
    assert_eq!(Blest::with_lambda(f64::NAN).lambda(), 1.2);
    assert_eq!(Blest::with_lambda(100.0).lambda(), 10.0);
}

// ---- The contract, for every scheduler, on arbitrary inputs ----

fn arb_view(id: usize) -> impl Strategy<Value = SubflowView> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u32..4,
        0u64..200_000,
        0u64..200_000,
        0u64..300_000,
        0u64..100_000,
        proptest::option::of(0u64..200_000),
        proptest::option::of(0u64..10_000_000),
        (0u64..2000, any::<bool>()),
    )
        .prop_map(
            move |(est, backup, stale, sc, cwnd, inf, q, space, rtt, rate, (mss, _))| SubflowView {
                id,
                established: est || id == 0,
                backup,
                stale,
                stale_count: sc,
                cwnd,
                in_flight: inf,
                queued_bytes: q,
                send_space: space,
                srtt: rtt.map(Duration::from_micros),
                min_rtt: rtt.map(|r| Duration::from_micros(r / 2)),
                pacing_rate: rate,
                mss,
            },
        )
}

fn arb_input() -> impl Strategy<Value = (Vec<SubflowView>, u64, u64, Vec<Reinject>, u64)> {
    (1usize..6)
        .prop_flat_map(|n| {
            let views: Vec<_> = (0..n).map(arb_view).collect();
            (
                views,
                0u64..1_000_000,
                0u64..500_000,
                proptest::collection::vec((0u64..1_000_000, 0u64..100_000, 0..n), 0..4),
                0u64..2_000_000,
            )
        })
        .prop_map(|(v, start, len, re, win)| {
            let re = re
                .into_iter()
                .map(|(s, l, from)| Reinject {
                    range: s..s + l,
                    from,
                })
                .collect();
            (v, start, len, re, win)
        })
}

proptest! {
    #[test]
    fn every_scheduler_keeps_the_contract((subs, start, len, re, win) in arb_input(), rounds in 1usize..4) {
        for name in NAMES {
            let mut s = by_name(name).expect("builtin");
            for _ in 0..rounds {
                let input = SchedInput { subflows: &subs, new_data: start..start + len, reinject: &re, send_window: win, stream_end: None };
                let mut out = Vec::new();
                s.schedule(&input, &mut out);
                prop_assert!(out.len() <= subs.len(), "{name}: too many assignments");
                let mut seen = Vec::new();
                let mut next = start;
                let mut new_ranges = Vec::new();
                for asg in &out {
                    prop_assert!(!asg.is_empty(), "{name}: empty assignment");
                    prop_assert!(asg.len() <= SEND_BURST, "{name}: over the burst");
                    prop_assert!(!seen.contains(&asg.subflow), "{name}: subflow twice");
                    seen.push(asg.subflow);
                    let v = subs.iter().find(|v| v.id == asg.subflow).expect("known subflow");
                    prop_assert!(v.established && !v.stale && v.send_space >= asg.len(), "{name}: bad subflow");
                    // Backups only when no non-backup subflow is active; a reinjection also
                    // when no busy active subflow progresses (all found stale twice).
                    if v.backup {
                        let primary = subs.iter().any(|s| s.established && !s.stale && !s.backup);
                        let stuck = subs
                            .iter()
                            .filter(|s| s.is_active() && s.queued_bytes > 0)
                            .all(|s| s.stale_count > 1);
                        prop_assert!(!primary || (asg.reinjection && stuck), "{name}: backup used");
                    }
                    if asg.reinjection {
                        let from_re = re.iter().any(|r| r.from != asg.subflow && r.range.start <= asg.range.start && asg.range.end <= r.range.end);
                        let copy = new_ranges.contains(&asg.range);
                        prop_assert!(from_re || copy, "{name}: reinjection of nothing");
                    } else {
                        prop_assert_eq!(asg.range.start, next, "{}: new data not contiguous", name);
                        prop_assert!(asg.range.end <= start + len, "{name}: beyond new data");
                        next = asg.range.end;
                        new_ranges.push(asg.range.clone());
                    }
                }
            }
        }
    }
}

#[test]
fn default_averages_the_pacing_rate_by_bytes() {
    let mut d = KernelDefault::new();
    let mut s0 = sf(0);
    assert_eq!(d.avg_rate(0), None);
    run(&mut d, &[s0.clone()], 0..SEND_BURST, &[]);
    // Empty queue: the average becomes the current rate.
    assert_eq!(d.avg_rate(0), Some(1_000_000));
    s0.pacing_rate = Some(3_000_000);
    s0.queued_bytes = SEND_BURST;
    run(&mut d, &[s0.clone()], SEND_BURST..2 * SEND_BURST, &[]);
    // (1 MB/s · 64 KiB queued + 3 MB/s · 64 KiB burst) / 128 KiB.
    assert_eq!(d.avg_rate(0), Some(2_000_000));
    // A subflow that is gone is forgotten.
    run(&mut d, &[sf(1)], 0..10, &[]);
    assert_eq!(d.avg_rate(0), None);
    assert_eq!(d.avg_rate(1), Some(1_000_000));
}

#[test]
fn default_lingers_on_the_averaged_rate() {
    let mut d = KernelDefault::new();
    // Subflow 0 was slow for a long time; now its instantaneous rate looks fast.
    let mut s0 = sf(0);
    s0.pacing_rate = Some(100_000);
    let mut s1 = sf(1);
    s1.pacing_rate = Some(1_000_000);
    s1.queued_bytes = 1_000_000;
    run(&mut d, &[s0.clone(), s1.clone()], 0..1000, &[]);
    assert_eq!(d.avg_rate(0), Some(100_000));
    s0.pacing_rate = Some(10_000_000);
    s0.queued_bytes = 500_000;
    // Instantaneous linger: 0.05 s vs 1 s; averaged: 5 s vs 1 s, so subflow 1 wins.
    let out = run(&mut d, &[s0, s1], 1000..2000, &[]);
    assert_eq!(out, vec![a(1, 1000..2000, false)]);
}

#[test]
fn roundrobin_wraps_when_the_last_subflow_is_gone() {
    let mut rr = RoundRobin::new();
    run(&mut rr, &[sf(0), sf(1), sf(2)], 0..3 * MSS, &[]);
    assert_eq!(rr.last(), Some(2));
    let out = run(&mut rr, &[sf(0), sf(1)], 0..MSS, &[]);
    assert_eq!(out, vec![a(0, 0..MSS, false)]);
}

#[test]
fn blest_uses_a_slow_subflow_without_rtt_samples() {
    let (fast, mut slow) = blest_pair();
    slow.srtt = None;
    let subs = [fast, slow];
    let input = SchedInput {
        subflows: &subs,
        new_data: 0..1000,
        reinject: &[],
        send_window: 0,
        stream_end: None,
    };
    let mut out = Vec::new();
    Blest::new().schedule(&input, &mut out);
    assert_eq!(out, vec![a(1, 0..1000, false)]);
}

#[test]
fn every_builtin_reinjects_before_new_data() {
    let mut s0 = sf(0);
    s0.stale = true;
    let re = [Reinject {
        range: 0..100,
        from: 0,
    }];
    for name in NAMES {
        let mut s = by_name(name).expect("builtin");
        let out = run(s.as_mut(), &[s0.clone(), sf(1), sf(2)], 100..200, &re);
        assert_eq!(out.first(), Some(&a(1, 0..100, true)), "{name}");
        assert!(out.iter().all(|x| x.subflow != 0), "{name}");
    }
}

#[test]
fn view_from_a_tcb() {
    use braid_proto::tcp::{Tcb, TcbParams};
    let params = TcbParams {
        local_port: 1,
        remote_port: 2,
        iss: 7,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    };
    let cfg = braid_proto::TcpConfig::default();
    let mut tcb = Tcb::connect(&cfg, params);
    assert_eq!(tcb.write(&[0u8; 3000]), 3000);
    let v = SubflowView::from_tcb(4, &tcb, true, true, false, 2);
    assert_eq!(v.id, 4);
    assert!(v.established && v.backup && !v.stale);
    assert_eq!(v.stale_count, 2);
    assert_eq!(v.cwnd, tcb.cwnd() as u64);
    assert_eq!(v.queued_bytes, 3000);
    assert_eq!(v.in_flight, 0);
    assert_eq!(v.send_space, tcb.send_capacity() as u64);
    assert_eq!(v.srtt, None);
    assert_eq!(v.pacing_rate, None);
    assert_eq!(v.mss, tcb.effective_mss() as u64);
}

#[test]
fn finish_time_fills_the_fastest_subflows_first() {
    use braid_proto::sched::finish_time;
    // One subflow: its own start plus the bytes at its rate.
    assert!((finish_time(&mut [(0.1, 1000.0)], 500) - 0.6).abs() < 1e-9);
    // Two: a late slow one is left out while the fast one finishes first.
    assert!((finish_time(&mut [(0.5, 10.0), (0.0, 1000.0)], 100) - 0.1).abs() < 1e-9);
    // Both help once the remainder is large: 2000 bytes, (t - 0) 1000 + (t - 0.5) 1000.
    assert!((finish_time(&mut [(0.5, 1000.0), (0.0, 1000.0)], 2000) - 1.25).abs() < 1e-9);
    assert!(finish_time(&mut [], 10).is_infinite());
}

#[test]
fn default_at_the_end_of_the_stream_spares_a_subflow_that_would_arrive_last() {
    // A fast subflow and a slow one whose queue takes a second to drain.
    let mut fast = sf(0);
    fast.pacing_rate = Some(10_000_000);
    fast.cwnd = 100_000;
    fast.srtt = Some(Duration::from_millis(10));
    fast.queued_bytes = 200_000;
    fast.in_flight = 100_000;
    // The slow one delivers 1 MB/s (cwnd / srtt) and holds a second's worth, but its pacing
    // rate is high, so the kernel's linger (queued / pacing rate) picks it.
    let mut slow = sf(1);
    slow.cwnd = 1_000_000;
    slow.srtt = Some(Duration::from_secs(1));
    slow.in_flight = 1_000_000;
    slow.queued_bytes = 1_000_000;
    slow.pacing_rate = Some(100_000_000);
    let subs = [fast.clone(), slow.clone()];
    let mut s = KernelDefault::new();
    let out = run(&mut s, &subs, 0..50_000, &[]);
    assert_eq!(
        out,
        vec![a(1, 0..50_000, false)],
        "mid-stream: lowest linger"
    );
    // The same with the stream ending after these 50 kB: the fast one carries them.
    let input = SchedInput {
        subflows: &subs,
        new_data: 0..50_000,
        reinject: &[],
        send_window: 1 << 30,
        stream_end: Some(50_000),
    };
    let mut out = Vec::new();
    KernelDefault::new().schedule(&input, &mut out);
    assert_eq!(out, vec![a(0, 0..50_000, false)]);
}

#[test]
fn default_at_the_end_of_the_stream_gives_a_subflow_only_what_it_delivers_by_the_finish() {
    // Two idle subflows with the same delay (a byte arrives 5 ms after it is sent), one
    // delivering 10 MB/s (cwnd / srtt), the other 1 MB/s. The last 11 kB are done soonest
    // when both end together, at 6 ms: the fast one carries about 10 kB of them and the
    // slow one the rest, rather than the fast one taking everything it has room for.
    let mut fast = sf(0);
    fast.cwnd = 100_000;
    let mut slow = sf(1);
    slow.cwnd = 10_000;
    let subs = [fast, slow];
    let input = SchedInput {
        subflows: &subs,
        new_data: 0..11_000,
        reinject: &[],
        send_window: 1 << 30,
        stream_end: Some(11_000),
    };
    let mut out = Vec::new();
    KernelDefault::new().schedule(&input, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let first = &out[0];
    assert_eq!((first.subflow, first.range.start), (0, 0));
    assert!(
        (9_990..=10_010).contains(&first.len()),
        "fast subflow's share: {first:?}"
    );
    // Mid-stream the same subflow takes all of it.
    let mut out = Vec::new();
    KernelDefault::new().schedule(
        &SchedInput {
            stream_end: None,
            ..input
        },
        &mut out,
    );
    assert_eq!(out, vec![a(0, 0..11_000, false)]);
}
