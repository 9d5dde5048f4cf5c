//! Goodput of MPTCP over the `two-paths` scenario (100 Mbit/s 10 ms + 50 Mbit/s 40 ms one
//! way, queues of twice the BDP) with the kernel's default scheduler, in simulated time.
//!
//! The ceiling: a 1500-byte packet carries 1448 payload bytes with timestamps, and a DSS
//! mapping covers up to 64 KiB, so only the first segment of each mapping gives 28 of them to
//! the DSS: the two links carry at most about 144.7 Mbit/s of data (96.5% of 150). The second
//! subflow starts only after the MP_CAPABLE and MP_JOIN handshakes (its fourth ACK at
//! ~0.18 s) and, from an initial window of ten segments, needs six 80 ms round trips of slow
//! start to fill its path; the first needs five 20 ms ones. Together that costs about 0.21 s
//! of a 64 MiB transfer even for an ideal sender, which bounds the end-to-end figure at about
//! 91% (measured: 90.07%, 135.1 Mbit/s; the kernel reaches about 86% on a comparable real
//! setup). The 64 MiB end-to-end figure is held to 90% (issue 3's bar), the steady state and
//! long transfers to 95% and 92% of the sum of the link rates.

use braid_proto::Instant;
use braid_sim::scenario::{self, Scenario, SimConfig, SimResult};

const SUM_MBPS: f64 = 150.0;

fn two_paths(bytes: u64) -> SimResult {
    let scenario = Scenario::by_name("two-paths").expect("built-in scenario");
    let cfg = SimConfig {
        bytes,
        ..SimConfig::default()
    };
    let r = scenario::run(&scenario, &cfg).expect("run");
    assert!(r.integrity_ok(bytes), "two-paths {bytes}: not byte-exact");
    assert!(r.mptcp);
    r
}

/// Goodput between `from` and the last byte, Mbit/s.
fn goodput_after(r: &SimResult, from: Instant) -> f64 {
    let base = r
        .server
        .delivery
        .iter()
        .rev()
        .find(|(t, _)| *t <= from)
        .map_or(0, |&(_, b)| b);
    let (last, total) = r.server.delivery.last().copied().unwrap_or((from, 0));
    (total - base) as f64 * 8.0 / (last - from).as_secs_f64() / 1e6
}

#[test]
fn two_paths_64_mib_uses_both_paths_near_their_capacity() {
    let r = two_paths(64 << 20);
    let e2e = r.goodput_mbps();
    let steady = goodput_after(&r, Instant::ZERO + braid_proto::Duration::from_secs(1));
    let (up0, up1) = (r.links[0].0.delivered_bytes, r.links[1].0.delivered_bytes);
    println!(
        "two-paths 64 MiB: {e2e:.1} Mbit/s end to end ({:.1}% of {SUM_MBPS}), \
         {steady:.1} Mbit/s after 1 s ({:.1}%), path bytes {up0} / {up1}",
        e2e / SUM_MBPS * 100.0,
        steady / SUM_MBPS * 100.0
    );
    assert!(steady >= 0.95 * SUM_MBPS, "steady state {steady:.1} Mbit/s");
    assert!(e2e >= 0.90 * SUM_MBPS, "end to end {e2e:.1} Mbit/s");
    // Both paths carry their share: the slow one about a third.
    let share1 = up1 as f64 / (up0 + up1) as f64;
    assert!((0.25..0.40).contains(&share1), "path 2 share {share1:.2}");
    // The scheduler committed data at most a window ahead: few retransmissions, none
    // from reinjection (no subflow went stale).
    assert_eq!(r.client_counters.SubflowStale, 0);
}

#[test]
fn two_paths_256_mib_end_to_end_reaches_92_percent() {
    let r = two_paths(256 << 20);
    let e2e = r.goodput_mbps();
    println!(
        "two-paths 256 MiB: {e2e:.1} Mbit/s end to end ({:.1}% of {SUM_MBPS})",
        e2e / SUM_MBPS * 100.0
    );
    assert!(e2e >= 0.92 * SUM_MBPS, "end to end {e2e:.1} Mbit/s");
}
