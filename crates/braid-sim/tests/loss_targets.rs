//! Issue 12's targets for loss recovery, held in the simulator over three seeds each:
//! - reordering of 3 % of packets by up to 5 ms (`reorder`) costs less than 10 % of the
//!   goodput of the same path without it (`single-path`), MPTCP and plain TCP alike;
//! - at 2 % random loss (`lossy-lan`: 1 Gbit/s, 0.1 ms one way; `lossy-path`: path 2 of
//!   `two-paths`, 40 ms one way) no delivery gap is longer than three round trips of the
//!   lossy path plus 200 ms;
//! - MPTCP's subflows lose no more to loss than plain TCP: its retransmissions are TCP's (a
//!   lost segment goes again as one segment) and its goodput under loss within 10 % of TCP's.
//!
//! Goodputs are simulated (deterministic), so comparing them is not a timing assertion.

use braid_proto::Duration;
use braid_sim::scenario::{self, Scenario, SimConfig, SimResult};

const SEEDS: [u64; 3] = [1, 2, 3];

fn run(name: &str, bytes: u64, tcp: bool, seed: u64) -> SimResult {
    let s = Scenario::by_name(name).expect("built-in scenario");
    let cfg = SimConfig {
        bytes,
        seed,
        tcp,
        ..SimConfig::default()
    };
    let r = scenario::run(&s, &cfg).expect("run");
    assert!(
        r.integrity_ok(bytes),
        "{name} tcp={tcp} seed {seed}: not byte-exact"
    );
    r
}

#[test]
fn reordering_costs_less_than_a_tenth_of_the_goodput() {
    let bytes = 32 << 20;
    for seed in SEEDS {
        for tcp in [false, true] {
            let clean = run("single-path", bytes, tcp, seed).goodput_mbps();
            let reordered = run("reorder", bytes, tcp, seed).goodput_mbps();
            println!("seed {seed} tcp={tcp}: clean {clean:.2}, reordered {reordered:.2} Mbit/s");
            assert!(
                reordered >= 0.9 * clean,
                "seed {seed} tcp={tcp}: {reordered:.2} Mbit/s reordered vs {clean:.2} clean"
            );
        }
    }
}

#[test]
fn at_two_percent_loss_no_gap_is_longer_than_three_round_trips_and_200_ms() {
    // (scenario, bytes, round trip of its lossy path)
    let cases = [
        ("lossy-lan", 32 << 20, Duration::from_micros(200)),
        ("lossy-path", 16 << 20, Duration::from_millis(80)),
    ];
    for (name, bytes, rtt) in cases {
        let limit = rtt * 3 + Duration::from_millis(200);
        for seed in SEEDS {
            let r = run(name, bytes, false, seed);
            let gap = r.max_gap();
            println!("{name} seed {seed}: longest gap {gap:?} (limit {limit:?})");
            assert!(gap <= limit, "{name} seed {seed}: gap {gap:?} > {limit:?}");
        }
    }
}

#[test]
fn mptcp_retransmits_like_tcp_and_keeps_its_goodput_under_loss() {
    for name in ["lossy", "lossy-lan"] {
        for seed in SEEDS {
            let bytes = if name == "lossy" { 4 << 20 } else { 32 << 20 };
            let m = run(name, bytes, false, seed);
            let t = run(name, bytes, true, seed);
            let rex = |r: &SimResult| r.client.subflows.iter().map(|s| s.retransmits).sum::<u64>();
            let (mr, tr) = (rex(&m), rex(&t));
            println!(
                "{name} seed {seed}: MPTCP {:.2} Mbit/s {mr} retransmits, TCP {:.2} Mbit/s {tr}",
                m.goodput_mbps(),
                t.goodput_mbps()
            );
            // The same losses (the links draw them per packet), each sent again once.
            assert!(mr <= tr + tr / 10 + 5, "{name} seed {seed}: {mr} vs {tr}");
            assert!(
                m.goodput_mbps() >= 0.9 * t.goodput_mbps(),
                "{name} seed {seed}: {:.2} vs {:.2}",
                m.goodput_mbps(),
                t.goodput_mbps()
            );
        }
    }
}
