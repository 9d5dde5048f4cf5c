//! Behaviour of the simulator, driven by the tiny test nodes in `common`.

mod common;

use std::any::Any;
use std::collections::{HashSet, VecDeque};

use braid_proto::time::{Duration, Instant};
use braid_sim::{
    Direction, GilbertElliott, LinkConfig, LinkId, Network, Node, NodeId, RunOutcome, Verdict,
};
use common::{seq_of, Arrival, Blaster, Pinger, Sink};

const FAR: Instant = Instant::from_millis(1_000_000_000);

/// A pinger on interface 0 linked to a sink on interface 0.
fn pair(seed: u64, pinger: Pinger, ab: LinkConfig) -> (Network, NodeId, NodeId, LinkId) {
    let mut net = Network::new(seed);
    let p = net.add_node(Box::new(pinger));
    let s = net.add_node(Box::new(Sink::new()));
    let l = net.add_link((p, 0), (s, 0), ab, LinkConfig::default());
    (net, p, s, l)
}

fn sink(net: &Network, id: NodeId) -> &Sink {
    net.node::<Sink>(id).expect("a sink")
}

fn run_idle(net: &mut Network) {
    assert_eq!(net.run_until(FAR, |_| false), RunOutcome::Idle);
}

fn times_us(arrivals: &[Arrival]) -> Vec<u64> {
    arrivals.iter().map(|a| a.at.as_micros()).collect()
}

#[test]
fn rate_and_delay_are_exact() {
    // 1250 bytes at 10 Mb/s take exactly 1 ms; back to back they queue behind each other.
    let cfg = LinkConfig::new()
        .rate(10_000_000)
        .delay(Duration::from_millis(20));
    let (mut net, _, s, _) = pair(
        1,
        Pinger::new(3, 1250, Duration::from_secs(1)).burst(3),
        cfg,
    );
    run_idle(&mut net);
    assert_eq!(
        times_us(&sink(&net, s).arrivals),
        vec![21_000, 22_000, 23_000]
    );
}

#[test]
fn fractional_serialization_accumulates_without_drift() {
    // 48 bytes at 7 b/s: 384/7 s each, not a whole number of microseconds. Each departure is
    // the exact sum rounded up, not a sum of rounded values.
    let cfg = LinkConfig::new().rate(7).delay(Duration::from_micros(3));
    let (mut net, _, s, _) = pair(
        1,
        Pinger::new(3, 48, Duration::from_secs(1000)).burst(3),
        cfg,
    );
    run_idle(&mut net);
    let expected: Vec<u64> = (1..=3u64)
        .map(|k| (k * 384 * 1_000_000).div_ceil(7) + 3)
        .collect();
    assert_eq!(expected, vec![54_857_146, 109_714_289, 164_571_432]);
    assert_eq!(times_us(&sink(&net, s).arrivals), expected);
}

#[test]
fn infinite_rate_adds_only_delay() {
    let cfg = LinkConfig::new().delay(Duration::from_micros(1234));
    let (mut net, _, s, _) = pair(
        1,
        Pinger::new(2, 9000, Duration::from_millis(1)).start(Instant::from_micros(5)),
        cfg.mtu(9000),
    );
    run_idle(&mut net);
    assert_eq!(times_us(&sink(&net, s).arrivals), vec![1239, 2239]);
}

#[test]
fn queue_overflow_drops_are_counted() {
    // 1000 bytes/s and room for three 1000-byte packets: of each burst of ten, three pass.
    let cfg = LinkConfig::new().rate(8_000).queue_limit(3_000);
    let (mut net, _, s, l) = pair(
        1,
        Pinger::new(20, 1000, Duration::from_secs(10)).burst(10),
        cfg,
    );
    run_idle(&mut net);
    let stats = *net.link(l).stats(Direction::AtoB);
    assert_eq!(stats.sent_packets, 20);
    assert_eq!(stats.dropped_queue, 14);
    assert_eq!(stats.delivered_packets, 6);
    assert_eq!(stats.dropped(), 14);
    assert_eq!(sink(&net, s).seqs(), vec![0, 1, 2, 10, 11, 12]);
    assert_eq!(
        times_us(&sink(&net, s).arrivals),
        vec![1_000_000, 2_000_000, 3_000_000, 11_000_000, 12_000_000, 13_000_000]
    );
}

#[test]
fn queue_admits_again_as_it_drains() {
    // A packet every 0.5 s into a 1 packet/s link with room for two: the backlog grows by
    // one packet per second, so drops start once it is full and then every other packet.
    let cfg = LinkConfig::new().rate(8_000).queue_limit(2_000);
    let (mut net, _, _, l) = pair(1, Pinger::new(10, 1000, Duration::from_millis(500)), cfg);
    run_idle(&mut net);
    let stats = net.link(l).stats(Direction::AtoB);
    assert_eq!(stats.delivered_packets + stats.dropped_queue, 10);
    assert!(stats.dropped_queue >= 3, "{stats:?}");
    assert!(stats.delivered_packets >= 5, "{stats:?}");
}

#[test]
fn mtu_drops_are_counted() {
    let mut net = Network::new(3);
    let small = net.add_node(Box::new(Pinger::new(5, 1000, Duration::from_millis(1))));
    let big = net.add_node(Box::new(Pinger::new(5, 1001, Duration::from_millis(1))));
    let s = net.add_node(Box::new(Sink::new()));
    let cfg = LinkConfig::new().mtu(1000);
    let l1 = net.add_link((small, 0), (s, 0), cfg.clone(), LinkConfig::default());
    let l2 = net.add_link((big, 0), (s, 1), cfg, LinkConfig::default());
    run_idle(&mut net);
    assert_eq!(net.link(l1).stats(Direction::AtoB).dropped_mtu, 0);
    assert_eq!(net.link(l1).stats(Direction::AtoB).delivered_packets, 5);
    assert_eq!(net.link(l2).stats(Direction::AtoB).dropped_mtu, 5);
    assert_eq!(net.link(l2).stats(Direction::AtoB).delivered_packets, 0);
    let arrivals = &sink(&net, s).arrivals;
    assert_eq!(arrivals.len(), 5);
    assert!(arrivals.iter().all(|a| a.iface == 0 && a.len == 1000));
}

/// How many arrivals carry a sequence number below one already seen.
fn out_of_order(seqs: &[u64]) -> u64 {
    let mut max = None;
    let mut count = 0;
    for &s in seqs {
        match max {
            Some(m) if s < m => count += 1,
            _ => max = Some(s),
        }
    }
    count
}

#[test]
fn reordering_is_counted_and_observed() {
    let n = 10_000u64;
    let cfg = LinkConfig::new()
        .delay(Duration::from_millis(10))
        .reorder(0.1, Duration::from_micros(5_500));
    let (mut net, _, s, l) = pair(9, Pinger::new(n, 48, Duration::from_millis(1)), cfg);
    run_idle(&mut net);
    let stats = *net.link(l).stats(Direction::AtoB);
    let sigma = (n as f64 * 0.1 * 0.9).sqrt();
    assert!(
        (stats.reordered as f64 - 1000.0).abs() < 5.0 * sigma,
        "{stats:?}"
    );
    let seqs = sink(&net, s).seqs();
    assert_eq!(seqs.len() as u64, n);
    // Every held-back packet is overtaken by the next unheld one, 1 ms behind it.
    assert_eq!(out_of_order(&seqs), stats.reordered);
}

#[test]
fn jitter_keeps_fifo_unless_allowed_to_reorder() {
    let n = 2_000u64;
    let base = LinkConfig::new()
        .delay(Duration::from_millis(10))
        .jitter(Duration::from_millis(5));
    let (mut net, p, s, _) = pair(
        4,
        Pinger::new(n, 48, Duration::from_millis(1)),
        base.clone(),
    );
    run_idle(&mut net);
    let seqs = sink(&net, s).seqs();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
    let sent = net.node::<Pinger>(p).expect("pinger").sent_at.clone();
    let arrivals = &sink(&net, s).arrivals;
    let mut extra = HashSet::new();
    for (a, t) in arrivals.iter().zip(&sent) {
        let d = a.at - *t;
        assert!(d >= Duration::from_millis(10), "{d:?}");
        extra.insert(d);
    }
    assert!(extra.len() > 100, "jitter varies the delay");

    let (mut net, _, s, _) = pair(
        4,
        Pinger::new(n, 48, Duration::from_millis(1)),
        base.jitter_reorders(true),
    );
    run_idle(&mut net);
    let seqs = sink(&net, s).seqs();
    assert_eq!(seqs.len() as u64, n);
    assert!(out_of_order(&seqs) > 100);
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
}

#[test]
fn duplicates_are_counted_and_delivered() {
    let n = 10_000u64;
    let cfg = LinkConfig::new()
        .delay(Duration::from_millis(1))
        .duplicate(0.1);
    let (mut net, _, s, l) = pair(21, Pinger::new(n, 48, Duration::from_micros(100)), cfg);
    run_idle(&mut net);
    let stats = *net.link(l).stats(Direction::AtoB);
    let sigma = (n as f64 * 0.1 * 0.9).sqrt();
    assert!(
        (stats.duplicated as f64 - 1000.0).abs() < 5.0 * sigma,
        "{stats:?}"
    );
    assert_eq!(stats.delivered_packets, n + stats.duplicated);
    let arrivals = &sink(&net, s).arrivals;
    assert_eq!(arrivals.len() as u64, n + stats.duplicated);
    let mut repeats = 0;
    for w in arrivals.windows(2) {
        if w[0].seq == w[1].seq {
            repeats += 1;
            assert_eq!(w[0].at, w[1].at, "a copy arrives with its original");
        }
    }
    assert_eq!(repeats, stats.duplicated);
}

#[test]
fn link_down_and_up_by_schedule() {
    // A packet every 10 ms for 1 s over 55 ms of delay; down from 300 ms to 595 ms.
    let cfg = LinkConfig::new().delay(Duration::from_millis(55));
    let (mut net, _, s, l) = pair(2, Pinger::new(100, 48, Duration::from_millis(10)), cfg);
    net.schedule(
        Instant::from_millis(300),
        Box::new(move |net: &mut Network| net.link_mut(l).set_up(false)),
    );
    net.schedule(
        Instant::from_millis(595),
        Box::new(move |net: &mut Network| net.link_mut(l).set_up(true)),
    );
    run_idle(&mut net);
    // Delivered: sent at k*10 ms with k*10 + 55 < 300 (k <= 24) or sent after 595 ms (k >= 60).
    let expected: Vec<u64> = (0..=24).chain(60..100).collect();
    assert_eq!(sink(&net, s).seqs(), expected);
    let stats = *net.link(l).stats(Direction::AtoB);
    // In flight at the cut (k = 25..=29) and sent while down (k = 30..=59).
    assert_eq!(stats.dropped_down, 35);
    assert_eq!(stats.delivered_packets + stats.dropped_down, 100);
    assert!(net.link(l).is_up(Direction::AtoB));
}

#[test]
fn one_direction_down_leaves_the_other() {
    let mut net = Network::new(2);
    let p = net.add_node(Box::new(Pinger::new(10, 48, Duration::from_millis(1))));
    let s = net.add_node(Box::new(Sink::acking()));
    let l = net.add_link((p, 0), (s, 0), LinkConfig::default(), LinkConfig::default());
    net.link_mut(l).set_dir_up(Direction::BtoA, false);
    run_idle(&mut net);
    assert_eq!(sink(&net, s).arrivals.len(), 10);
    assert_eq!(net.node::<Pinger>(p).expect("pinger").received, 0);
    assert_eq!(net.link(l).stats(Direction::BtoA).dropped_down, 10);
}

#[test]
fn middlebox_drops_and_rewrites() {
    let (mut net, _, s, l) = pair(
        1,
        Pinger::new(10, 64, Duration::from_millis(1)),
        LinkConfig::default(),
    );
    net.node_mut::<Sink>(s).expect("sink").keep_bytes = true;
    let drop_even = |_: Instant, p: &mut Vec<u8>| match seq_of(p) {
        Some(seq) if seq % 2 == 0 => Verdict::Drop,
        _ => Verdict::Forward,
    };
    let stamp = |_: Instant, p: &mut Vec<u8>| {
        if let Some(last) = p.last_mut() {
            *last = 0xab;
        }
        Verdict::Forward
    };
    net.link_mut(l)
        .add_middlebox(Direction::AtoB, Box::new(drop_even));
    net.link_mut(l)
        .add_middlebox(Direction::AtoB, Box::new(stamp));
    assert_eq!(net.link(l).middlebox_count(Direction::AtoB), 2);
    assert_eq!(net.link(l).middlebox_count(Direction::BtoA), 0);
    run_idle(&mut net);
    let sink = sink(&net, s);
    assert_eq!(sink.seqs(), vec![1, 3, 5, 7, 9]);
    assert!(sink.arrivals.iter().all(|a| a.bytes.last() == Some(&0xab)));
    let stats = net.link(l).stats(Direction::AtoB);
    assert_eq!(stats.dropped_middlebox, 5);
    assert_eq!(stats.delivered_packets, 5);
}

#[test]
fn middlebox_output_is_checked_against_the_mtu() {
    let (mut net, _, s, l) = pair(
        1,
        Pinger::new(4, 1500, Duration::from_millis(1)),
        LinkConfig::default(),
    );
    let grow = |_: Instant, p: &mut Vec<u8>| {
        if seq_of(p) == Some(2) {
            p.push(0);
        }
        Verdict::Forward
    };
    net.link_mut(l)
        .add_middlebox(Direction::AtoB, Box::new(grow));
    run_idle(&mut net);
    assert_eq!(sink(&net, s).seqs(), vec![0, 1, 3]);
    assert_eq!(net.link(l).stats(Direction::AtoB).dropped_mtu, 1);
    net.link_mut(l).clear_middleboxes(Direction::AtoB);
    assert_eq!(net.link(l).middlebox_count(Direction::AtoB), 0);
}

/// A noisy two-way scenario's full trace.
fn noisy_trace(seed: u64) -> (Vec<(u64, Option<u64>)>, Vec<u64>) {
    let mut net = Network::new(seed);
    let p = net.add_node(Box::new(
        Pinger::new(3_000, 600, Duration::from_millis(2)).burst(3),
    ));
    let s = net.add_node(Box::new(Sink::acking()));
    let cfg = LinkConfig::new()
        .rate(8_000_000)
        .delay(Duration::from_millis(7))
        .jitter(Duration::from_millis(2))
        .loss(0.02)
        .burst_loss(GilbertElliott::gilbert(0.01, 0.4))
        .reorder(0.03, Duration::from_millis(3))
        .duplicate(0.02)
        .queue_limit(1_700);
    let l = net.add_link((p, 0), (s, 0), cfg.clone(), cfg.jitter_reorders(true));
    run_idle(&mut net);
    let trace = sink(&net, s)
        .arrivals
        .iter()
        .map(|a| (a.at.as_micros(), a.seq))
        .collect();
    let ab = *net.link(l).stats(Direction::AtoB);
    let ba = *net.link(l).stats(Direction::BtoA);
    for st in [ab, ba] {
        assert_eq!(
            st.sent_packets + st.duplicated,
            st.delivered_packets + st.dropped()
        );
    }
    let counts = vec![
        ab.dropped_loss,
        ab.dropped_queue,
        ab.duplicated,
        ab.reordered,
        ba.dropped_loss,
        ba.duplicated,
        net.node::<Pinger>(p).expect("pinger").received,
    ];
    (trace, counts)
}

#[test]
fn same_seed_same_trace_different_seed_differs() {
    let (t1, c1) = noisy_trace(42);
    let (t2, c2) = noisy_trace(42);
    let (t3, c3) = noisy_trace(43);
    assert!(t1.len() > 1_500, "{}", t1.len());
    assert!(
        c1.iter().all(|&c| c > 0),
        "every impairment happened: {c1:?}"
    );
    assert_eq!(t1, t2);
    assert_eq!(c1, c2);
    assert_ne!(t1, t3);
    assert_ne!(c1, c3);
}

#[test]
fn links_draw_independent_randomness() {
    // Two identical links in one network lose different packets.
    let mut net = Network::new(8);
    let p1 = net.add_node(Box::new(Pinger::new(1_000, 48, Duration::from_millis(1))));
    let p2 = net.add_node(Box::new(Pinger::new(1_000, 48, Duration::from_millis(1))));
    let s1 = net.add_node(Box::new(Sink::new()));
    let s2 = net.add_node(Box::new(Sink::new()));
    let cfg = LinkConfig::new().loss(0.2);
    net.add_link((p1, 0), (s1, 0), cfg.clone(), LinkConfig::default());
    net.add_link((p2, 0), (s2, 0), cfg, LinkConfig::default());
    run_idle(&mut net);
    assert_ne!(sink(&net, s1).seqs(), sink(&net, s2).seqs());
}

/// Reports the deadlines it is given, one per received packet, and records its timeouts.
struct TimerProbe {
    deadline: Option<Instant>,
    plan: VecDeque<Option<Instant>>,
    fired: Vec<Instant>,
}

impl Node for TimerProbe {
    fn handle_packet(&mut self, _now: Instant, _iface: usize, _packet: &[u8]) {
        self.deadline = self.plan.pop_front().flatten();
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.fired.push(now);
        self.deadline = None;
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn probe_timeouts(initial: Option<Instant>, plan: &[Option<Instant>]) -> Vec<u64> {
    let mut net = Network::new(1);
    // Packets at 10, 20, 30 ... ms.
    let p = net.add_node(Box::new(
        Pinger::new(plan.len() as u64, 48, Duration::from_millis(10))
            .start(Instant::from_millis(10)),
    ));
    let t = net.add_node(Box::new(TimerProbe {
        deadline: initial,
        plan: plan.iter().copied().collect(),
        fired: Vec::new(),
    }));
    net.add_link((p, 0), (t, 0), LinkConfig::default(), LinkConfig::default());
    run_idle(&mut net);
    net.node::<TimerProbe>(t)
        .expect("probe")
        .fired
        .iter()
        .map(|i| i.as_millis())
        .collect()
}

#[test]
fn timers_follow_the_latest_deadline() {
    let ms = |m| Some(Instant::from_millis(m));
    // Postponed: fires once, at the new deadline.
    assert_eq!(probe_timeouts(ms(100), &[ms(200)]), vec![200]);
    // Brought forward: fires at the earlier one only.
    assert_eq!(probe_timeouts(ms(100), &[ms(50)]), vec![50]);
    // Withdrawn: never fires.
    assert_eq!(probe_timeouts(ms(100), &[None]), Vec::<u64>::new());
    // Postponed, then brought back before the original.
    assert_eq!(probe_timeouts(ms(100), &[ms(200), ms(60)]), vec![60]);
    // A deadline already past fires at once.
    assert_eq!(probe_timeouts(None, &[ms(1)]), vec![10]);
}

/// Sends whatever the test puts in its queue.
#[derive(Default)]
struct Manual {
    queue: VecDeque<(usize, Vec<u8>)>,
}

impl Node for Manual {
    fn handle_packet(&mut self, _now: Instant, _iface: usize, _packet: &[u8]) {}
    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        self.queue.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[test]
fn node_mut_wakes_the_node_and_unlinked_interfaces_count() {
    let mut net = Network::new(1);
    let m = net.add_node(Box::new(Manual::default()));
    let s = net.add_node(Box::new(Sink::new()));
    net.add_link(
        (m, 0),
        (s, 0),
        LinkConfig::new().delay(Duration::from_millis(3)),
        LinkConfig::default(),
    );
    assert!(net.node::<Sink>(m).is_none(), "wrong type");
    assert!(net.node::<Manual>(NodeId(99)).is_none(), "no such node");
    assert_eq!(
        net.run_until(Instant::from_millis(100), |_| false),
        RunOutcome::Idle
    );
    assert_eq!(net.now(), Instant::from_millis(100));
    let q = &mut net.node_mut::<Manual>(m).expect("manual").queue;
    q.push_back((
        0,
        common::numbered_packet([1, 1, 1, 1].into(), [2, 2, 2, 2].into(), 1, 2, 77, 48),
    ));
    q.push_back((5, vec![0x45; 20]));
    run_idle(&mut net);
    let arrivals = &sink(&net, s).arrivals;
    assert_eq!(arrivals.len(), 1);
    assert_eq!(arrivals[0].seq, Some(77));
    assert_eq!(arrivals[0].at, Instant::from_millis(103));
    assert_eq!(net.stats().unrouted, 1);
    assert_eq!(
        net.link_at(m, 0).map(|(l, d)| (l.0, d)),
        Some((0, Direction::AtoB))
    );
    assert_eq!(
        net.link_at(s, 0).map(|(l, d)| (l.0, d)),
        Some((0, Direction::BtoA))
    );
    assert!(net.link_at(m, 5).is_none());
}

#[test]
fn run_until_outcomes() {
    let (mut net, _, s, _) = pair(
        1,
        Pinger::new(10, 48, Duration::from_millis(10)),
        LinkConfig::default(),
    );
    // Stopped by the predicate, with the clock where it happened.
    let out = net.run_until(FAR, |net| {
        net.node::<Sink>(s).is_some_and(|k| k.arrivals.len() == 3)
    });
    assert_eq!(out, RunOutcome::Stopped);
    assert_eq!(net.now(), Instant::from_millis(20));
    // The next packet lies after the deadline.
    assert_eq!(
        net.run_until(Instant::from_millis(25), |_| false),
        RunOutcome::DeadlineReached
    );
    assert_eq!(net.now(), Instant::from_millis(25));
    assert_eq!(sink(&net, s).arrivals.len(), 3);
    // A deadline in the past does not move the clock back.
    assert_eq!(
        net.run_until(Instant::from_millis(1), |_| false),
        RunOutcome::DeadlineReached
    );
    assert_eq!(net.now(), Instant::from_millis(25));
    assert_eq!(net.run_until(FAR, |_| false), RunOutcome::Idle);
    assert_eq!(sink(&net, s).arrivals.len(), 10);
    assert!(!net.step());
}

/// Always asks for a timeout now: a broken node.
struct Spinner;

impl Node for Spinner {
    fn handle_packet(&mut self, _now: Instant, _iface: usize, _packet: &[u8]) {}
    fn poll_transmit(&mut self, _now: Instant) -> Option<(usize, Vec<u8>)> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(Instant::ZERO)
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[test]
fn livelock_at_one_instant_is_reported() {
    let mut net = Network::new(1);
    net.add_node(Box::new(Spinner));
    net.set_stall_limit(1_000);
    assert_eq!(net.run_until(FAR, |_| false), RunOutcome::Stalled);
    assert_eq!(net.now(), Instant::ZERO);
    assert!(net.stats().timeouts >= 1_000);
}

#[test]
fn schedule_in_the_past_runs_now_and_actions_keep_order() {
    let mut net = Network::new(1);
    net.run_until(Instant::from_millis(50), |_| false);
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for i in 0..3 {
        let log = log.clone();
        net.schedule(
            Instant::from_millis(10),
            Box::new(move |net: &mut Network| log.borrow_mut().push((i, net.now().as_millis()))),
        );
    }
    run_idle(&mut net);
    assert_eq!(*log.borrow(), vec![(0, 50), (1, 50), (2, 50)]);
}

#[test]
fn bulk_transfer_with_acks() {
    // About 64 MiB in 1500-byte packets, each acknowledged: ~90k packet events.
    let total = 64 * 1024 * 1024 / 1460;
    let mut net = Network::new(1);
    let b = net.add_node(Box::new(Blaster::new(total, 1500, 200)));
    let s = net.add_node(Box::new(Sink::acking()));
    let fwd = LinkConfig::new()
        .rate(100_000_000)
        .delay(Duration::from_millis(5))
        .queue_limit(1 << 20);
    let rev = LinkConfig::new()
        .rate(100_000_000)
        .delay(Duration::from_millis(5));
    let l = net.add_link((b, 0), (s, 0), fwd, rev);
    let start = std::time::Instant::now();
    let out = net.run_until(FAR, |net| net.node::<Blaster>(b).is_some_and(Blaster::done));
    let cpu = start.elapsed();
    assert_eq!(out, RunOutcome::Stopped);
    assert_eq!(net.link(l).stats(Direction::AtoB).delivered_packets, total);
    assert_eq!(net.link(l).stats(Direction::BtoA).delivered_packets, total);
    // 64 MiB at 100 Mb/s is about 5.6 s of simulated time; the cpu time is informational.
    println!(
        "{total} packets + acks: simulated {} in {cpu:?} ({} events)",
        net.now(),
        net.stats().events
    );
    assert!(net.now() > Instant::from_millis(5_500));
}

#[test]
fn going_down_flushes_the_queue() {
    // Three 1000-byte packets queue at 1000 bytes/s; the cut at 0.5 s loses all of them, and
    // a packet sent at 1 s after the link is back does not wait behind the lost backlog.
    let cfg = LinkConfig::new().rate(8_000);
    let (mut net, _, s, l) = pair(
        1,
        Pinger::new(4, 1000, Duration::from_secs(1)).burst(3),
        cfg,
    );
    net.schedule(
        Instant::from_millis(500),
        Box::new(move |net: &mut Network| net.link_mut(l).set_up(false)),
    );
    net.schedule(
        Instant::from_millis(600),
        Box::new(move |net: &mut Network| net.link_mut(l).set_up(true)),
    );
    run_idle(&mut net);
    assert_eq!(sink(&net, s).seqs(), vec![3]);
    assert_eq!(times_us(&sink(&net, s).arrivals), vec![2_000_000]);
    assert_eq!(net.link(l).stats(Direction::AtoB).dropped_down, 3);
}

#[test]
fn config_mut_up_only_gates_sending_and_arrival() {
    // Marked down and up again through config_mut while a packet is in flight: it survives.
    let cfg = LinkConfig::new().delay(Duration::from_millis(100));
    let (mut net, _, s, l) = pair(1, Pinger::new(1, 48, Duration::from_secs(1)), cfg);
    net.schedule(
        Instant::from_millis(10),
        Box::new(move |net: &mut Network| net.link_mut(l).config_mut(Direction::AtoB).up = false),
    );
    net.schedule(
        Instant::from_millis(20),
        Box::new(move |net: &mut Network| net.link_mut(l).config_mut(Direction::AtoB).up = true),
    );
    run_idle(&mut net);
    assert_eq!(sink(&net, s).seqs(), vec![0]);

    // Still down when it arrives: lost.
    let cfg = LinkConfig::new().delay(Duration::from_millis(100));
    let (mut net, _, s, l) = pair(1, Pinger::new(1, 48, Duration::from_secs(1)), cfg);
    net.schedule(
        Instant::from_millis(10),
        Box::new(move |net: &mut Network| net.link_mut(l).config_mut(Direction::AtoB).up = false),
    );
    run_idle(&mut net);
    assert!(sink(&net, s).seqs().is_empty());
    assert_eq!(net.link(l).stats(Direction::AtoB).dropped_down, 1);
}

#[test]
fn config_changes_apply_to_later_packets() {
    // 1000-byte packets each second; at 2.5 s the rate doubles and the delay grows by 1 s.
    let cfg = LinkConfig::new().rate(8_000);
    let (mut net, _, s, l) = pair(1, Pinger::new(4, 1000, Duration::from_secs(1)), cfg);
    net.schedule(
        Instant::from_millis(2_500),
        Box::new(move |net: &mut Network| {
            let c = net.link_mut(l).config_mut(Direction::AtoB);
            c.rate_bps = 16_000;
            c.delay = Duration::from_secs(1);
        }),
    );
    run_idle(&mut net);
    assert_eq!(
        times_us(&sink(&net, s).arrivals),
        vec![1_000_000, 2_000_000, 3_000_000, 4_500_000]
    );
}

#[test]
fn backlog_bytes_counts_what_is_not_yet_serialized() {
    // Three 1250-byte packets at t=0 over 10 Mb/s: each takes 1 ms on the wire.
    let cfg = LinkConfig::new()
        .rate(10_000_000)
        .delay(Duration::from_millis(20));
    let (mut net, _, _, l) = pair(
        1,
        Pinger::new(3, 1250, Duration::from_secs(1)).burst(3),
        cfg,
    );
    let at = |us| Instant::from_micros(us);
    net.run_until(at(0), |_| false);
    assert_eq!(net.link(l).backlog_bytes(Direction::AtoB, at(0)), 3750);
    assert_eq!(net.link(l).backlog_bytes(Direction::AtoB, at(1_500)), 2500);
    assert_eq!(net.link(l).backlog_bytes(Direction::AtoB, at(3_000)), 0);
    assert_eq!(net.link(l).backlog_bytes(Direction::BtoA, at(0)), 0);
}
