//! Loss and reordering on a link: random loss, Gilbert–Elliott burst loss (also as
//! parameterised by its long-run loss rate and mean burst length, and with idle time moving
//! the chain), and reordering by a uniform hold. Each statistic is checked over a long seeded
//! run against the parameters it was built from.

mod common;

use std::collections::{HashMap, HashSet};

use braid_proto::time::{Duration, Instant};
use braid_sim::scenario::{BURSTY_LOSS, BURSTY_MEAN_BURST, REORDER_MAX, REORDER_SHARE};
use braid_sim::{Direction, GilbertElliott, LinkConfig, LinkId, Network, NodeId, RunOutcome};
use common::{Pinger, Sink};

const FAR: Instant = Instant::from_millis(1_000_000_000);

/// `n` numbered packets of 48 bytes, one every `interval`, over `ab` (the way back ideal).
fn run(seed: u64, n: u64, interval: Duration, ab: LinkConfig) -> (Network, NodeId, LinkId) {
    let mut net = Network::new(seed);
    let p = net.add_node(Box::new(Pinger::new(n, 48, interval)));
    let s = net.add_node(Box::new(Sink::new()));
    let l = net.add_link((p, 0), (s, 0), ab, LinkConfig::default());
    assert_eq!(net.run_until(FAR, |_| false), RunOutcome::Idle);
    (net, s, l)
}

fn sink(net: &Network, id: NodeId) -> &Sink {
    net.node::<Sink>(id).expect("a sink")
}

/// Lengths of the runs of consecutive sequence numbers below `n` that never arrived.
fn loss_runs(received: &[u64], n: u64) -> Vec<u64> {
    let got: HashSet<u64> = received.iter().copied().collect();
    let mut runs = Vec::new();
    let mut run = 0;
    for seq in 0..n {
        if got.contains(&seq) {
            if run > 0 {
                runs.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    if run > 0 {
        runs.push(run);
    }
    runs
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

#[test]
fn random_loss_fraction_is_within_bounds() {
    let n = 100_000u64;
    let p = 0.1;
    let cfg = LinkConfig::new().loss(p);
    let (net, s, l) = run(11, n, Duration::from_micros(1), cfg);
    let stats = *net.link(l).stats(Direction::AtoB);
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let lost = stats.dropped_loss as f64;
    assert!((lost - n as f64 * p).abs() < 5.0 * sigma, "lost {lost}");
    assert_eq!(stats.dropped_loss + stats.delivered_packets, n);
    assert_eq!(sink(&net, s).arrivals.len() as u64, stats.delivered_packets);
}

#[test]
fn gilbert_elliott_losses_come_in_bursts() {
    let n = 100_000u64;
    let ge = GilbertElliott::gilbert(0.01, 0.3);
    let cfg = LinkConfig::new().burst_loss(ge);
    let (net, s, l) = run(5, n, Duration::from_micros(1), cfg);
    let lost = net.link(l).stats(Direction::AtoB).dropped_loss;
    // Stationary probability of the bad state: 0.01 / 0.31.
    let frac = lost as f64 / n as f64;
    assert!((frac - 0.01 / 0.31).abs() < 0.008, "loss fraction {frac}");
    let runs = loss_runs(&sink(&net, s).seqs(), n);
    let m = mean(&runs);
    // Mean stay in the bad state: 1 / 0.3 packets.
    assert!((2.8..4.0).contains(&m), "mean burst {m}");

    // Independent loss at the same rate has bursts barely longer than one packet.
    let (net, s, _) = run(5, n, Duration::from_micros(1), LinkConfig::new().loss(frac));
    let m = mean(&loss_runs(&sink(&net, s).seqs(), n));
    assert!(m < 1.2, "independent mean burst {m}");
}

#[test]
fn gilbert_elliott_good_state_loss_applies() {
    // Never leaves the good state, which loses half.
    let ge = GilbertElliott {
        p_good_to_bad: 0.0,
        p_bad_to_good: 1.0,
        loss_in_bad: 1.0,
        loss_in_good: 0.5,
        slot: None,
    };
    let (net, _, l) = run(
        5,
        10_000,
        Duration::from_micros(1),
        LinkConfig::new().burst_loss(ge),
    );
    let lost = net.link(l).stats(Direction::AtoB).dropped_loss;
    assert!((4_750..5_250).contains(&lost), "{lost}");
}

#[test]
fn gilbert_elliott_parameters_from_loss_rate_and_burst_length() {
    let ge = GilbertElliott::with_loss_and_burst(0.01, 3.0);
    assert_eq!((ge.loss_in_bad, ge.loss_in_good), (1.0, 0.0));
    assert!((ge.p_bad_to_good - 1.0 / 3.0).abs() < 1e-12, "{ge:?}");
    assert!((ge.mean_loss() - 0.01).abs() < 1e-12, "{ge:?}");
    assert!((ge.mean_burst() - 3.0).abs() < 1e-12, "{ge:?}");
    // Out-of-range parameters are clamped, never NaN.
    let g = GilbertElliott::with_loss_and_burst(f64::NAN, 0.2);
    assert_eq!((g.p_good_to_bad, g.p_bad_to_good), (0.0, 1.0));
    assert_eq!(g.mean_loss(), 0.0);
    let g = GilbertElliott::with_loss_and_burst(0.9, 2.0);
    assert!((g.mean_loss() - 0.5).abs() < 1e-12, "{g:?}");
    assert_eq!(GilbertElliott::default().mean_loss(), 0.0);
}

/// Over 400 000 packets the loss rate and the mean burst length of a seeded run are those
/// the channel was built from, for the `bursty` scenario's channel and a harsher one.
#[test]
fn gilbert_elliott_long_run_loss_rate_and_mean_burst_match_their_parameters() {
    let n = 400_000u64;
    for (loss, burst) in [(BURSTY_LOSS, BURSTY_MEAN_BURST), (0.02, 5.0)] {
        let ge = GilbertElliott::with_loss_and_burst(loss, burst);
        let cfg = LinkConfig::new().burst_loss(ge);
        let (net, s, l) = run(3, n, Duration::from_micros(1), cfg);
        let stats = *net.link(l).stats(Direction::AtoB);
        let rate = stats.dropped_loss as f64 / n as f64;
        // Losses come in bursts, so the count varies more than a binomial's: about
        // sqrt(n * loss * (2 * burst - 1)) in the long run. 10% is several of those.
        assert!(
            (rate - loss).abs() < 0.1 * loss,
            "loss {loss} burst {burst}: rate {rate}"
        );
        let runs = loss_runs(&sink(&net, s).seqs(), n);
        let m = mean(&runs);
        println!("loss {loss} burst {burst}: rate {rate:.5}, mean burst {m:.3}");
        assert!(
            (m - burst).abs() < 0.1 * burst,
            "loss {loss} burst {burst}: mean burst {m} over {} bursts",
            runs.len()
        );
        assert_eq!(stats.dropped_loss, runs.iter().sum::<u64>());
    }
}

#[test]
fn gilbert_elliott_is_deterministic_per_seed() {
    let lost = |seed| {
        let ge = GilbertElliott::with_loss_and_burst(0.02, 4.0);
        let (net, s, _) = run(
            seed,
            50_000,
            Duration::from_micros(1),
            LinkConfig::new().burst_loss(ge),
        );
        let got: HashSet<u64> = sink(&net, s).seqs().into_iter().collect();
        (0..50_000)
            .filter(|q| !got.contains(q))
            .collect::<Vec<u64>>()
    };
    let (a, b, c) = (lost(7), lost(7), lost(8));
    assert!(a.len() > 500, "{}", a.len());
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// Arrival time (µs) of every packet by sequence number.
fn arrivals(net: &Network, s: NodeId) -> HashMap<u64, u64> {
    sink(net, s)
        .arrivals
        .iter()
        .filter_map(|a| Some((a.seq?, a.at.as_micros())))
        .collect()
}

/// The `reorder` scenario's knob: 3% of packets are held back, each by a uniform draw from
/// [1 µs, 5 ms]; a held packet is overtaken by those sent after it and never delays them.
#[test]
fn uniform_reordering_holds_its_share_by_up_to_the_bound_and_delays_no_other_packet() {
    let n = 100_000u64;
    // A 10 Mbit/s bottleneck with 48-byte packets back to back every 40 µs (38.4 µs of
    // serialization each): a queue builds and drains, so holds must not disturb it.
    let base = LinkConfig::new()
        .rate(10_000_000)
        .delay(Duration::from_millis(10));
    let every = Duration::from_micros(40);
    let (plain_net, ps, _) = run(5, n, every, base.clone());
    let (net, s, l) = run(5, n, every, base.reorder_upto(REORDER_SHARE, REORDER_MAX));
    let stats = *net.link(l).stats(Direction::AtoB);
    let share = stats.reordered as f64 / n as f64;
    let sigma = (REORDER_SHARE * (1.0 - REORDER_SHARE) / n as f64).sqrt();
    assert!(
        (share - REORDER_SHARE).abs() < 5.0 * sigma,
        "held back {share}"
    );
    assert_eq!(stats.delivered_packets, n);

    let plain = arrivals(&plain_net, ps);
    let held = arrivals(&net, s);
    let max = u64::try_from(REORDER_MAX.as_micros()).expect("small");
    let mut holds = Vec::new();
    for seq in 0..n {
        let (p, h) = (plain[&seq], held[&seq]);
        assert!(h >= p, "packet {seq} arrived early");
        if h > p {
            holds.push(h - p);
        }
    }
    // Only the held packets moved, each by 1 µs to 5 ms; the rest arrived exactly when they
    // would have without reordering.
    assert_eq!(holds.len() as u64, stats.reordered);
    assert!(holds.iter().all(|&d| (1..=max).contains(&d)), "{holds:?}");
    // Uniform: the mean hold is about half the bound, and both halves are used.
    let m = mean(&holds);
    println!("held back {share:.5}, mean hold {m:.0} us");
    assert!((m - max as f64 / 2.0).abs() < 0.05 * max as f64, "mean {m}");
    let short = holds.iter().filter(|&&d| d < max / 2).count() as f64;
    assert!((short / holds.len() as f64 - 0.5).abs() < 0.05);
    // Most held packets are overtaken (a hold shorter than the 40 µs spacing may not be).
    let seqs = sink(&net, s).seqs();
    let mut latest = 0;
    let mut overtaken = 0u64;
    for &q in &seqs {
        if q < latest {
            overtaken += 1;
        }
        latest = latest.max(q);
    }
    assert!(
        overtaken as f64 > 0.95 * stats.reordered as f64,
        "{overtaken} of {}",
        stats.reordered
    );
}

#[test]
fn uniform_reordering_is_deterministic_per_seed() {
    let trace = |seed| {
        let cfg = LinkConfig::new()
            .delay(Duration::from_millis(1))
            .reorder_upto(0.05, Duration::from_millis(5));
        let (net, s, _) = run(seed, 20_000, Duration::from_micros(100), cfg);
        sink(&net, s)
            .arrivals
            .iter()
            .map(|a| (a.at.as_micros(), a.seq))
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (trace(1), trace(1), trace(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// With a slot, idle time moves the chain: packets far apart meet it in its long-run state
/// (each is lost with the mean loss rate, independently), while back-to-back packets still
/// see bursts of the mean length.
#[test]
fn gilbert_elliott_with_a_slot_forgets_a_burst_while_the_link_is_idle() {
    let ge = GilbertElliott::with_loss_and_burst(0.05, 4.0);
    let slot = Duration::from_micros(120); // 1500 bytes at 100 Mbit/s
    let n = 200_000u64;
    let link = |ge: GilbertElliott| LinkConfig::new().rate(100_000_000).burst_loss(ge);

    // Back to back (1500-byte packets every 120 µs fill every slot): as without a slot.
    let mut net = Network::new(4);
    let p = net.add_node(Box::new(Pinger::new(n, 1500, slot)));
    let s = net.add_node(Box::new(Sink::new()));
    net.add_link(
        (p, 0),
        (s, 0),
        link(ge.with_slot(slot)),
        LinkConfig::default(),
    );
    assert_eq!(net.run_until(FAR, |_| false), RunOutcome::Idle);
    let runs = loss_runs(&sink(&net, s).seqs(), n);
    let (rate, m) = (runs.iter().sum::<u64>() as f64 / n as f64, mean(&runs));
    println!("back to back: rate {rate:.4}, mean burst {m:.2}");
    assert!(
        (rate - 0.05).abs() < 0.005 && (m - 4.0).abs() < 0.4,
        "{rate} {m}"
    );

    // One small packet every 200 ms (a timeout's pace): the loss rate stays, the bursts go.
    // Without the slot, the same channel keeps its bursts of 4.
    for (ge, burst) in [(ge.with_slot(slot), 1.0..1.2), (ge, 3.6..4.4)] {
        let (net, s, l) = run(4, 50_000, Duration::from_millis(200), link(ge));
        let lost = net.link(l).stats(Direction::AtoB).dropped_loss;
        let rate = lost as f64 / 50_000.0;
        let m = mean(&loss_runs(&sink(&net, s).seqs(), 50_000));
        println!(
            "sparse, slot {:?}: rate {rate:.4}, mean burst {m:.2}",
            ge.slot
        );
        assert!((rate - 0.05).abs() < 0.01, "{ge:?}: rate {rate}");
        assert!(burst.contains(&m), "{ge:?}: mean burst {m}");
    }
}
