//! The loss scenarios of issue 12 (`lossy`, `bursty`, `reorder`, `lossy-path`, `lossy-lan`):
//! each moves its stream byte-exact with MPTCP and with plain TCP, its impairment happens on
//! the paths it names, and a run is a pure function of its seed. Goodput and gaps are printed
//! (`--nocapture`) for the record, never asserted: loss recovery is being reworked, and
//! `docs/sim-loss.md` keeps the figures.

use braid_proto::Duration;
use braid_sim::scenario::{self, Scenario, SimConfig, SimResult, LOSS_SCENARIOS};
use braid_sim::GilbertElliott;

/// Small enough to keep the suite fast: `lossy` at 1% loss delivers about 3 Mbit/s, so
/// 4 MiB is some 10 s of simulated time. `lossy-path` needs more: the default scheduler
/// leaves the slow path 2 out of a transfer that path 1 alone finishes about as soon (at
/// 4 MiB path 2 carries nothing; at 16 MiB a few hundred KiB, and loses some).
fn bytes(name: &str) -> u64 {
    match name {
        "lossy-path" => 16 << 20,
        _ => 4 << 20,
    }
}

fn run(name: &str, tcp: bool, seed: u64) -> SimResult {
    let s = Scenario::by_name(name).expect("built-in scenario");
    let bytes = bytes(name);
    let cfg = SimConfig {
        bytes,
        seed,
        tcp,
        ..SimConfig::default()
    };
    let r = scenario::run(&s, &cfg).expect("run");
    let subs = &r.client.subflows;
    println!(
        "{name:<10} {} seed {seed}: goodput {:.2} Mbit/s, max gap {:.1} ms, retransmits {:?}, \
         timeouts {:?}",
        if tcp { "TCP  " } else { "MPTCP" },
        r.goodput_mbps(),
        r.max_gap().as_secs_f64() * 1e3,
        subs.iter().map(|s| s.retransmits).collect::<Vec<_>>(),
        subs.iter().map(|s| s.timeouts).collect::<Vec<_>>(),
    );
    assert!(
        r.integrity_ok(bytes),
        "{name} tcp={tcp} seed {seed}: not byte-exact: completed={} received={} \
         client_err={:?} server_err={:?}",
        r.completed,
        r.server.received.bytes(),
        r.client.error,
        r.server.error
    );
    if tcp {
        assert!(!r.mptcp && r.client_counters.MPCapableSYNTX == 0, "{name}");
    } else {
        // MPTCP was asked for. Loss may still end in a fallback (bursty, seed 2, at 4 MiB:
        // the MP_CAPABLE third ACK, which carries the first data, is lost and the server
        // meets the next segment without MP_CAPABLE): that is allowed, and reported.
        assert_eq!(r.client_counters.MPCapableSYNTX, 1, "{name}");
        if !r.mptcp {
            println!("{name} seed {seed}: fell back to TCP");
        }
    }
    r
}

#[test]
fn every_loss_scenario_is_byte_exact_with_mptcp_and_with_plain_tcp() {
    for name in LOSS_SCENARIOS {
        assert!(scenario::SCENARIOS.contains(name), "{name}");
        let s = Scenario::by_name(name).expect("scenario");
        assert!(!s.needs_mptcp, "{name} has a plain-TCP baseline");
        for seed in [1, 2] {
            for tcp in [false, true] {
                let r = run(name, tcp, seed);
                let (up, down) = r.links[r.links.len() - 1];
                match *name {
                    "reorder" => {
                        assert!(up.reordered > 0 && down.reordered > 0, "{name}");
                        assert_eq!(up.dropped_loss + down.dropped_loss, 0, "{name}");
                    }
                    "lossy-path" if tcp => {
                        assert_eq!(up.sent_packets, 0, "plain TCP stays on path 1");
                    }
                    _ => assert!(
                        up.dropped_loss > 0 && down.dropped_loss > 0,
                        "{name} tcp={tcp}: data and ACKs are lost: {up:?} {down:?}"
                    ),
                }
            }
        }
    }
}

#[test]
fn loss_scenarios_have_the_documented_links() {
    let both = |name| {
        let s = Scenario::by_name(name).expect("scenario");
        s.paths
            .iter()
            .map(|p| {
                assert_eq!(p.up, p.down, "{name}: both directions alike");
                p.up.clone()
            })
            .collect::<Vec<_>>()
    };
    let ms = Duration::from_millis;

    let bursty = both("bursty");
    assert_eq!(bursty.len(), 1);
    let ge = bursty[0].burst_loss.expect("burst loss");
    assert_eq!(
        ge,
        GilbertElliott::with_loss_and_burst(0.01, 3.0).with_slot(ms(10))
    );
    assert!((ge.mean_loss() - 0.01).abs() < 1e-12);
    assert_eq!((bursty[0].rate_bps, bursty[0].delay), (100_000_000, ms(20)));
    assert_eq!(bursty[0].loss, 0.0, "only the burst channel loses");

    let reorder = both("reorder");
    assert_eq!(
        (
            reorder[0].reorder,
            reorder[0].reorder_delay,
            reorder[0].reorder_uniform
        ),
        (0.03, ms(5), true)
    );
    assert_eq!((reorder[0].loss, reorder[0].burst_loss), (0.0, None));

    let lossy_path = both("lossy-path");
    assert_eq!(lossy_path.len(), 2);
    assert_eq!(lossy_path[0].loss, 0.0);
    assert_eq!(lossy_path[1].loss, 0.02);
    let two = both("two-paths");
    for (a, b) in lossy_path.iter().zip(&two) {
        assert_eq!((a.rate_bps, a.delay), (b.rate_bps, b.delay), "as two-paths");
    }

    let lan = both("lossy-lan");
    assert_eq!(
        (lan[0].rate_bps, lan[0].delay, lan[0].loss),
        (1_000_000_000, Duration::from_micros(100), 0.02)
    );
}

#[test]
fn lossy_path_uses_both_paths_with_mptcp() {
    let r = run("lossy-path", false, 1);
    assert_eq!(r.server_counters.MPJoinAckRx, 1, "path 2 joined");
    let subs = &r.client.subflows;
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().all(|s| s.bytes_sent > 0), "{subs:?}");
    let (up2, down2) = r.links[1];
    assert!(
        up2.dropped_loss + down2.dropped_loss > 0,
        "path 2 lost packets"
    );
    let (up1, down1) = r.links[0];
    assert_eq!(
        up1.dropped_loss + down1.dropped_loss,
        0,
        "path 1 loses nothing"
    );
}

#[test]
fn loss_scenarios_are_deterministic_per_seed() {
    for name in ["bursty", "reorder"] {
        let a = run(name, false, 5);
        let b = run(name, false, 5);
        let c = run(name, false, 6);
        assert_eq!(a.server.delivery, b.server.delivery, "{name}");
        assert_eq!(a.links, b.links, "{name}");
        assert_eq!(a.client.subflows, b.client.subflows, "{name}");
        assert_ne!(a.links, c.links, "{name}: another seed, other impairments");
    }
}

#[test]
fn compare_runs_every_loss_scenario_both_ways_deterministically() {
    use braid_sim::compare;
    let cfg = SimConfig {
        bytes: 1 << 20,
        ..SimConfig::default()
    };
    let a = compare::compare_all(&cfg).expect("compare");
    let names: Vec<&str> = a.iter().map(|c| c.scenario).collect();
    assert_eq!(names, LOSS_SCENARIOS);
    for c in &a {
        println!("{c:?}");
        assert!(c.mptcp.integrity_ok && c.tcp.integrity_ok, "{c:?}");
        assert!(!c.tcp.mptcp, "{c:?}");
        assert_eq!(c.tcp.reinjections, 0);
        assert!(c.goodput_ratio() > 0.0 && c.goodput_ratio().is_finite());
        assert!(c.mptcp.max_gap <= c.mptcp.duration, "{c:?}");
    }
    assert_eq!(a, compare::compare_all(&cfg).expect("compare again"));
    // Scenarios without a plain-TCP baseline are refused.
    let e = compare::compare("failover", &cfg).expect_err("needs MPTCP");
    assert!(e.to_string().contains("needs MPTCP"), "{e}");
}
