//! Links: per-direction configuration, the transmission pipeline, middleboxes and statistics.

use std::collections::VecDeque;

use braid_proto::time::{Duration, Instant};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::NodeId;

/// A Gilbert–Elliott two-state burst-loss channel.
///
/// The channel is either *good* or *bad*. For every packet it first moves between the states
/// (good → bad with `p_good_to_bad`, bad → good with `p_bad_to_good`), then drops the packet
/// with the loss probability of the state it is now in. The mean length of a stay in the bad
/// state is `1 / p_bad_to_good` packets, so with `loss_in_bad = 1` losses come in bursts of
/// that mean length; the long-run fraction of time in the bad state is
/// `p_good_to_bad / (p_good_to_bad + p_bad_to_good)`.
///
/// With `slot` set, the chain also moves while the direction is idle: once per `slot` of
/// time between the end of one packet's slot and the start of the next packet's
/// serialization (each packet takes one step and one slot). So a bad spell lasts about
/// `slot / p_bad_to_good` in time as well: a lone retransmission sent a timeout after a
/// burst meets the channel in its long-run state, not still inside the burst. Without
/// `slot` the chain moves only per packet, and a sender that goes quiet in the bad state
/// finds it there however long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GilbertElliott {
    /// Probability, per packet, of moving from the good to the bad state.
    pub p_good_to_bad: f64,
    /// Probability, per packet, of moving from the bad to the good state.
    pub p_bad_to_good: f64,
    /// Loss probability while in the bad state.
    pub loss_in_bad: f64,
    /// Loss probability while in the good state.
    pub loss_in_good: f64,
    /// If set, idle time moves the chain too: one step per `slot` (see above). A natural
    /// choice is the serialization time of a full-sized packet at the link's rate.
    pub slot: Option<Duration>,
}

impl GilbertElliott {
    /// The classic Gilbert model: the bad state loses everything, the good state nothing.
    pub fn gilbert(p_good_to_bad: f64, p_bad_to_good: f64) -> Self {
        GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_in_bad: 1.0,
            loss_in_good: 0.0,
            slot: None,
        }
    }

    /// The same channel, moving once per `slot` of idle time as well (see the type's
    /// documentation).
    pub fn with_slot(mut self, slot: Duration) -> Self {
        self.slot = Some(slot);
        self
    }

    /// The probability of being in the bad state `k` steps after being in state `bad`:
    /// `π + (1 − π)·λ^k` from bad and `π·(1 − λ^k)` from good, with `π` the bad state's
    /// long-run share and `λ = 1 − p − r`.
    fn bad_after(&self, bad: bool, k: u64) -> f64 {
        let (p, r) = (
            self.p_good_to_bad.clamp(0.0, 1.0),
            self.p_bad_to_good.clamp(0.0, 1.0),
        );
        let pi = self.bad_share();
        // Past a million steps λ^k is 0 to double precision unless |λ| = 1, where the chain
        // never moves (p = r = 0) or alternates (p = r = 1; then the parity would matter,
        // but a chain that flips every step has no bursts to model).
        let lk = (1.0 - p - r).powf(k.min(1 << 20) as f64);
        if bad {
            pi + (1.0 - pi) * lk
        } else {
            pi * (1.0 - lk)
        }
    }

    /// The Gilbert model (the bad state loses everything, the good state nothing) that loses
    /// a fraction `loss` of packets in the long run, in bursts of `mean_burst` consecutive
    /// packets on average: `p_bad_to_good = 1 / mean_burst` and `p_good_to_bad` such that
    /// the stationary share of the bad state is `loss`. `loss` is clamped to `[0, 0.5]` and
    /// `mean_burst` to at least 1 (a burst of 1 with `p_bad_to_good = 1`).
    ///
    /// For example `with_loss_and_burst(0.01, 3.0)` loses 1% of packets, a third as many
    /// times as independent 1% loss would, three in a row on average.
    pub fn with_loss_and_burst(loss: f64, mean_burst: f64) -> Self {
        let loss = if loss.is_nan() {
            0.0
        } else {
            loss.clamp(0.0, 0.5)
        };
        let burst = if mean_burst.is_nan() {
            1.0
        } else {
            mean_burst.max(1.0)
        };
        let r = 1.0 / burst;
        // π_bad = p / (p + r) = loss  ⇔  p = loss · r / (1 − loss).
        GilbertElliott::gilbert(loss * r / (1.0 - loss), r)
    }

    /// The long-run share of packets in the bad state, `p / (p + r)` (0 if neither
    /// transition can happen).
    pub fn bad_share(&self) -> f64 {
        let (p, r) = (self.p_good_to_bad.max(0.0), self.p_bad_to_good.max(0.0));
        if p + r > 0.0 {
            p / (p + r)
        } else {
            0.0
        }
    }

    /// The long-run loss rate: each state's share times its loss probability.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.bad_share();
        bad * self.loss_in_bad.clamp(0.0, 1.0) + (1.0 - bad) * self.loss_in_good.clamp(0.0, 1.0)
    }

    /// The mean length of a stay in the bad state, in packets (`1 / p_bad_to_good`): with
    /// `loss_in_bad = 1` and `loss_in_good = 0`, the mean length of a loss burst.
    pub fn mean_burst(&self) -> f64 {
        1.0 / self.p_bad_to_good.clamp(f64::MIN_POSITIVE, 1.0)
    }
}

/// The configuration of one direction of a link.
///
/// Probabilities are per packet; values at or below 0 (and NaN) mean "never", values at or
/// above 1 mean "always". See the crate documentation for the order in which they apply.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Serialization rate in bits per second; 0 means infinitely fast (no queue forms).
    pub rate_bps: u64,
    /// Propagation delay, added after serialization.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `[0, jitter]` (microsecond granularity) per packet.
    pub jitter: Duration,
    /// Whether jitter may reorder packets. When false (the default) a packet never arrives
    /// before one sent earlier on the same direction (except those held back by `reorder`):
    /// its arrival is pushed to at least the previous packet's arrival.
    pub jitter_reorders: bool,
    /// Independent random loss probability.
    pub loss: f64,
    /// Optional Gilbert–Elliott burst loss, applied in addition to `loss`.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a packet is held back by `reorder_delay`, letting later ones pass it.
    pub reorder: f64,
    /// How long a packet selected by `reorder` is held back (with `reorder_uniform`, at
    /// most this long).
    pub reorder_delay: Duration,
    /// Whether the hold of a packet selected by `reorder` is drawn uniformly from
    /// `[1 µs, reorder_delay]` (microsecond granularity) instead of being `reorder_delay`.
    pub reorder_uniform: bool,
    /// Probability that a packet is delivered twice (the copy arrives right after it).
    pub duplicate: f64,
    /// Drop-tail queue limit in bytes, counting every byte not yet fully serialized
    /// (including the packet being serialized); 0 means unlimited. Ignored when
    /// `rate_bps` is 0.
    pub queue_limit_bytes: usize,
    /// Largest packet the link carries, in bytes; bigger packets are dropped and counted.
    pub mtu: usize,
    /// Whether this direction carries packets at all.
    pub up: bool,
}

impl Default for LinkConfig {
    /// An ideal link: infinite rate, no delay, no impairment, MTU 1500, up.
    fn default() -> Self {
        LinkConfig {
            rate_bps: 0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_reorders: false,
            loss: 0.0,
            burst_loss: None,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            reorder_uniform: false,
            duplicate: 0.0,
            queue_limit_bytes: 0,
            mtu: 1500,
            up: true,
        }
    }
}

impl LinkConfig {
    /// The default configuration; see [`LinkConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the serialization rate in bits per second (0 = infinite).
    pub fn rate(mut self, bps: u64) -> Self {
        self.rate_bps = bps;
        self
    }

    /// Sets the propagation delay.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the uniform jitter bound.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Allows (or forbids) jitter to reorder packets.
    pub fn jitter_reorders(mut self, reorders: bool) -> Self {
        self.jitter_reorders = reorders;
        self
    }

    /// Sets the independent loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Enables Gilbert–Elliott burst loss.
    pub fn burst_loss(mut self, ge: GilbertElliott) -> Self {
        self.burst_loss = Some(ge);
        self
    }

    /// Holds a fraction `p` of packets back by `delay`.
    pub fn reorder(mut self, p: f64, delay: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = delay;
        self.reorder_uniform = false;
        self
    }

    /// Holds a fraction `p` of packets back by a delay drawn uniformly from `[1 µs, max]`
    /// per packet. Packets behind a held one are not delayed by it.
    pub fn reorder_upto(mut self, p: f64, max: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = max;
        self.reorder_uniform = true;
        self
    }

    /// Sets the duplication probability.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the drop-tail queue limit in bytes (0 = unlimited).
    pub fn queue_limit(mut self, bytes: usize) -> Self {
        self.queue_limit_bytes = bytes;
        self
    }

    /// Sets the MTU in bytes.
    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Sets whether the direction starts up.
    pub fn up(mut self, up: bool) -> Self {
        self.up = up;
        self
    }
}

/// What a middlebox decides about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly modified) packet on.
    Forward,
    /// Discard the packet; it is counted as `dropped_middlebox`.
    Drop,
}

/// A device sitting at the entrance of one link direction that may inspect, rewrite or drop
/// every packet before the link carries it.
pub trait Middlebox {
    /// Looks at (and may rewrite) `packet`, an IP packet, at time `now`.
    fn process(&mut self, now: Instant, packet: &mut Vec<u8>) -> Verdict;
}

/// Any `FnMut(Instant, &mut Vec<u8>) -> Verdict` closure is a middlebox.
impl<F> Middlebox for F
where
    F: FnMut(Instant, &mut Vec<u8>) -> Verdict,
{
    fn process(&mut self, now: Instant, packet: &mut Vec<u8>) -> Verdict {
        self(now, packet)
    }
}

/// One direction of a duplex link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the link's first end (`a`) to its second (`b`).
    AtoB,
    /// From the link's second end (`b`) to its first (`a`).
    BtoA,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::AtoB => Direction::BtoA,
            Direction::BtoA => Direction::AtoB,
        }
    }
}

/// Counters for one direction of a link.
///
/// Every packet offered by a node is counted in `sent_*`; it then ends up exactly once in
/// `delivered_packets` or in one of the `dropped_*` counters (or is still in flight), and each
/// duplicate adds one more delivery (or drop, if the link goes down meanwhile). So, once the
/// network is idle: `sent + duplicated == delivered + dropped()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets offered to this direction by the sending node.
    pub sent_packets: u64,
    /// Bytes offered to this direction by the sending node.
    pub sent_bytes: u64,
    /// Packets handed to the receiving node (duplicates included).
    pub delivered_packets: u64,
    /// Bytes handed to the receiving node (duplicates included).
    pub delivered_bytes: u64,
    /// Dropped by random or burst loss.
    pub dropped_loss: u64,
    /// Dropped because the drop-tail queue was full.
    pub dropped_queue: u64,
    /// Dropped because they exceeded the MTU.
    pub dropped_mtu: u64,
    /// Dropped because the direction was down when they were sent or while in flight.
    pub dropped_down: u64,
    /// Dropped by a middlebox.
    pub dropped_middlebox: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Packets held back by the reorder knob.
    pub reordered: u64,
}

impl LinkStats {
    /// All drops, whatever the cause.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_queue
            + self.dropped_mtu
            + self.dropped_down
            + self.dropped_middlebox
    }
}

const PS_PER_US: u128 = 1_000_000;
const PS_PER_S: u128 = 1_000_000_000_000;

/// The state of one direction.
pub(crate) struct LinkDir {
    pub(crate) config: LinkConfig,
    pub(crate) stats: LinkStats,
    middleboxes: Vec<Box<dyn Middlebox>>,
    rng: ChaCha8Rng,
    ge_bad: bool,
    /// The end of the last packet's slot on the Gilbert–Elliott chain, in picoseconds.
    ge_clock_ps: u128,
    /// When the serializer finishes its last accepted packet, in picoseconds.
    busy_until_ps: u128,
    /// Packets not yet fully serialized: (departure in picoseconds, length).
    backlog: VecDeque<(u128, usize)>,
    backlog_bytes: usize,
    /// Arrival of the last packet that was not held back, for FIFO delivery.
    last_arrival: Instant,
    /// Bumped when the direction goes down, so packets in flight at that moment are lost.
    pub(crate) epoch: u64,
}

/// The result of offering a packet to a direction.
pub(crate) enum Offer {
    /// The packet (and maybe a duplicate) will arrive at these instants.
    Deliver {
        packet: Vec<u8>,
        arrival: Instant,
        duplicate: bool,
    },
    /// The packet was dropped (already counted).
    Dropped,
}

fn ceil_us(ps: u128) -> Instant {
    let us = ps.div_ceil(PS_PER_US);
    Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl LinkDir {
    fn new(config: LinkConfig, seed: u64, link: usize, dir: Direction) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&(link as u64).to_le_bytes());
        key[16] = dir.index() as u8;
        key[24..].copy_from_slice(b"braidsim");
        LinkDir {
            config,
            stats: LinkStats::default(),
            middleboxes: Vec::new(),
            rng: ChaCha8Rng::from_seed(key),
            ge_bad: false,
            ge_clock_ps: 0,
            busy_until_ps: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            last_arrival: Instant::ZERO,
            epoch: 0,
        }
    }

    /// A uniform float in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`; draws nothing for `p <= 0` or NaN, or `p >= 1`.
    fn chance(&mut self, p: f64) -> bool {
        if p >= 1.0 {
            true
        } else if p > 0.0 {
            self.uniform() < p
        } else {
            false
        }
    }

    /// A uniform integer in `[0, max]`.
    fn uniform_upto(&mut self, max: u64) -> u64 {
        let span = u128::from(max) + 1;
        u64::try_from((u128::from(self.rng.next_u64()) * span) >> 64).unwrap_or(max)
    }

    fn set_up(&mut self, up: bool) {
        if !up {
            self.epoch += 1;
            self.backlog.clear();
            self.backlog_bytes = 0;
            self.busy_until_ps = 0;
            self.last_arrival = Instant::ZERO;
        }
        self.config.up = up;
    }

    /// Runs the pipeline for a packet offered at `now`.
    pub(crate) fn offer(&mut self, now: Instant, mut packet: Vec<u8>) -> Offer {
        self.stats.sent_packets += 1;
        self.stats.sent_bytes += packet.len() as u64;
        if !self.config.up {
            self.stats.dropped_down += 1;
            return Offer::Dropped;
        }
        for mb in &mut self.middleboxes {
            if mb.process(now, &mut packet) == Verdict::Drop {
                self.stats.dropped_middlebox += 1;
                return Offer::Dropped;
            }
        }
        if packet.len() > self.config.mtu {
            self.stats.dropped_mtu += 1;
            return Offer::Dropped;
        }

        // Serialization and the drop-tail queue.
        let now_ps = u128::from(now.as_micros()) * PS_PER_US;
        // Where this packet's serialization starts (for the Gilbert–Elliott clock).
        let mut start_ps = now_ps;
        let departure = if self.config.rate_bps == 0 {
            now
        } else {
            while let Some(&(done, len)) = self.backlog.front() {
                if done > now_ps {
                    break;
                }
                self.backlog.pop_front();
                self.backlog_bytes -= len;
            }
            let limit = self.config.queue_limit_bytes;
            if limit != 0 && self.backlog_bytes + packet.len() > limit {
                self.stats.dropped_queue += 1;
                return Offer::Dropped;
            }
            let bits = packet.len() as u128 * 8;
            let tx_ps = bits * PS_PER_S / u128::from(self.config.rate_bps);
            start_ps = self.busy_until_ps.max(now_ps);
            let done = start_ps + tx_ps;
            self.busy_until_ps = done;
            self.backlog.push_back((done, packet.len()));
            self.backlog_bytes += packet.len();
            ceil_us(done)
        };

        // Loss on the wire: the packet has used its share of the link either way.
        let mut lost = false;
        if let Some(ge) = self.config.burst_loss {
            if let Some(slot) = ge.slot.filter(|d| !d.is_zero()) {
                let slot_ps = slot.as_nanos() * 1000;
                let idle = start_ps.saturating_sub(self.ge_clock_ps) / slot_ps;
                if idle > 0 {
                    let bad = ge.bad_after(self.ge_bad, u64::try_from(idle).unwrap_or(u64::MAX));
                    self.ge_bad = self.chance(bad);
                }
                self.ge_clock_ps = start_ps + slot_ps;
            }
            let flip = if self.ge_bad {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.chance(flip) {
                self.ge_bad = !self.ge_bad;
            }
            let p = if self.ge_bad {
                ge.loss_in_bad
            } else {
                ge.loss_in_good
            };
            lost |= self.chance(p);
        }
        let p = self.config.loss;
        lost |= self.chance(p);
        if lost {
            self.stats.dropped_loss += 1;
            return Offer::Dropped;
        }

        let mut arrival = departure + self.config.delay;
        let jitter = duration_us(self.config.jitter);
        if jitter > 0 {
            arrival += Duration::from_micros(self.uniform_upto(jitter));
        }
        let p = self.config.reorder;
        if self.chance(p) {
            self.stats.reordered += 1;
            let max = duration_us(self.config.reorder_delay);
            arrival += if self.config.reorder_uniform && max > 1 {
                Duration::from_micros(1 + self.uniform_upto(max - 1))
            } else {
                self.config.reorder_delay
            };
        } else if !self.config.jitter_reorders {
            arrival = arrival.max(self.last_arrival);
            self.last_arrival = arrival;
        }
        let p = self.config.duplicate;
        let duplicate = self.chance(p);
        if duplicate {
            self.stats.duplicated += 1;
        }
        Offer::Deliver {
            packet,
            arrival,
            duplicate,
        }
    }
}

/// A duplex link between two node interfaces.
pub struct Link {
    ends: [(NodeId, usize); 2],
    pub(crate) dirs: [LinkDir; 2],
}

impl Link {
    pub(crate) fn new(
        seed: u64,
        id: usize,
        a: (NodeId, usize),
        b: (NodeId, usize),
        ab: LinkConfig,
        ba: LinkConfig,
    ) -> Self {
        Link {
            ends: [a, b],
            dirs: [
                LinkDir::new(ab, seed, id, Direction::AtoB),
                LinkDir::new(ba, seed, id, Direction::BtoA),
            ],
        }
    }

    /// The first end `a` (node, interface).
    pub fn a(&self) -> (NodeId, usize) {
        self.ends[0]
    }

    /// The second end `b` (node, interface).
    pub fn b(&self) -> (NodeId, usize) {
        self.ends[1]
    }

    /// The end that receives packets travelling in `dir`.
    pub fn receiver(&self, dir: Direction) -> (NodeId, usize) {
        match dir {
            Direction::AtoB => self.ends[1],
            Direction::BtoA => self.ends[0],
        }
    }

    /// The configuration of one direction.
    pub fn config(&self, dir: Direction) -> &LinkConfig {
        &self.dirs[dir.index()].config
    }

    /// The configuration of one direction, for changes that apply to packets sent from now on.
    ///
    /// To take a direction down so that packets already in flight are lost too, use
    /// [`Link::set_up`] or [`Link::set_dir_up`] rather than writing `up` here: a direction
    /// marked down here drops new packets and packets arriving while it is down, but packets
    /// in flight survive if it is marked up again before they arrive.
    pub fn config_mut(&mut self, dir: Direction) -> &mut LinkConfig {
        &mut self.dirs[dir.index()].config
    }

    /// The counters of one direction.
    pub fn stats(&self, dir: Direction) -> &LinkStats {
        &self.dirs[dir.index()].stats
    }

    /// Takes both directions up or down. Going down loses every packet queued or in flight.
    pub fn set_up(&mut self, up: bool) {
        for d in &mut self.dirs {
            d.set_up(up);
        }
    }

    /// Takes one direction up or down. Going down loses every packet queued or in flight.
    pub fn set_dir_up(&mut self, dir: Direction, up: bool) {
        self.dirs[dir.index()].set_up(up);
    }

    /// Bytes offered to a direction at or before `now` that are not fully serialized at
    /// `now` (the packet on the wire included): what a drop-tail queue holds. Always 0 for
    /// an infinitely fast direction.
    pub fn backlog_bytes(&self, dir: Direction, now: Instant) -> usize {
        let now_ps = u128::from(now.as_micros()) * PS_PER_US;
        self.dirs[dir.index()]
            .backlog
            .iter()
            .filter(|&&(done, _)| done > now_ps)
            .map(|&(_, len)| len)
            .sum()
    }

    /// Whether a direction is up.
    pub fn is_up(&self, dir: Direction) -> bool {
        self.dirs[dir.index()].config.up
    }

    /// Appends a middlebox to a direction; middleboxes see packets in the order added.
    pub fn add_middlebox(&mut self, dir: Direction, middlebox: Box<dyn Middlebox>) {
        self.dirs[dir.index()].middleboxes.push(middlebox);
    }

    /// Removes every middlebox from a direction.
    pub fn clear_middleboxes(&mut self, dir: Direction) {
        self.dirs[dir.index()].middleboxes.clear();
    }

    /// How many middleboxes a direction has.
    pub fn middlebox_count(&self, dir: Direction) -> usize {
        self.dirs[dir.index()].middleboxes.len()
    }
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("a", &self.ends[0])
            .field("b", &self.ends[1])
            .field("ab", &self.dirs[0].config)
            .field("ba", &self.dirs[1].config)
            .field("ab_stats", &self.dirs[0].stats)
            .field("ba_stats", &self.dirs[1].stats)
            .finish()
    }
}
