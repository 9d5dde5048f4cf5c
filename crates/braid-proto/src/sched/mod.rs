//! Packet schedulers: which subflow carries which data-level bytes.
//!
//! The connection layer owns the data and the subflows; a [`Scheduler`] only decides. On every
//! scheduling round the connection builds a [`SchedInput`] of plain data — one [`SubflowView`]
//! per subflow, the next range of new data the peer's window allows, and the unacknowledged
//! ranges eligible for reinjection — and calls [`Scheduler::schedule`], which appends
//! [`Assignment`]s to a caller-owned `Vec`.
//!
//! # Contract (bounded work per call)
//!
//! - At most **one assignment per subflow per call**, so a call costs O(subflows ×
//!   reinjection candidates) and returns at most `subflows.len()` entries. The connection
//!   applies the assignments in order, then calls again while it has data to place and the
//!   previous call assigned something; an empty result means "nothing to send now".
//! - Only subflows that are [`SubflowView::is_active`] (established, not stale) and have send
//!   space ([`SubflowView::send_space`] > 0) are ever chosen; when no subflow is both, the
//!   connection does not call the scheduler at all.
//! - New-data assignments (`reinjection == false`) are disjoint and contiguous from
//!   `new_data.start`, each inside `new_data`: the connection advances `data_nxt` by their
//!   total length. Copies of the same bytes on other subflows ([`Redundant`]) and
//!   reinjections are flagged `reinjection == true` and never move `data_nxt`.
//! - A reinjection lies inside one [`Reinject::range`] and never goes to the subflow the
//!   bytes are stuck on ([`Reinject::from`]).
//! - No assignment exceeds [`SEND_BURST`] bytes or the chosen subflow's send space.
//!
//! Built-ins, selectable by name with [`by_name`]: [`KernelDefault`] (`default`, the Linux kernel's
//! scheduler), [`MinRtt`] (`minrtt`), [`RoundRobin`] (`roundrobin`), [`Redundant`]
//! (`redundant`) and [`Blest`] (`blest`). Backup subflows follow the kernel's rule in every
//! built-in: they carry data only when no non-backup subflow is active.

use core::fmt;
use core::ops::Range;

use crate::tcp::Tcb;
use crate::time::Duration;

mod builtin;

pub use builtin::{Blest, KernelDefault, MinRtt, Redundant, RoundRobin};

/// Identifies a subflow inside one connection (the connection's index).
pub type SubflowId = usize;

/// The most bytes one assignment carries: the kernel's `MPTCP_SEND_BURST_SIZE` (64 KiB).
pub const SEND_BURST: u64 = 64 * 1024;

/// A read-only snapshot of one subflow, as the scheduler sees it. Plain data: the connection
/// fills it from the subflow's TCP control block and its MPTCP state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowView {
    /// The subflow's id inside the connection.
    pub id: SubflowId,
    /// MP_JOIN (or MP_CAPABLE) completed and the subflow may carry data.
    pub established: bool,
    /// The subflow is a backup (our MP_PRIO / join flag, or the peer's request).
    pub backup: bool,
    /// The subflow stopped making progress (RTO backoff without ACKs): not used for data.
    pub stale: bool,
    /// How many times the subflow was found stale (the kernel's `stale_count`); used to decide
    /// whether a backup may take retransmissions.
    pub stale_count: u32,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Bytes sent and not yet acknowledged at the TCP level.
    pub in_flight: u64,
    /// Bytes queued in the subflow (sent-unacked plus written-unsent): the kernel's
    /// `sk_wmem_queued`.
    pub queued_bytes: u64,
    /// Free space in the subflow's send buffer: the most the subflow accepts now.
    pub send_space: u64,
    /// Smoothed RTT, `None` before the first sample.
    pub srtt: Option<Duration>,
    /// Smallest RTT sample so far (the path's propagation delay, queueing aside).
    pub min_rtt: Option<Duration>,
    /// Pacing rate in bytes per second, `None` when unknown or pacing is off.
    pub pacing_rate: Option<u64>,
    /// Maximum segment size, bytes.
    pub mss: u64,
}

impl SubflowView {
    /// A view of subflow `id` filled from its TCP control block: `cwnd`, bytes in flight
    /// (`snd_nxt − snd_una`), queued bytes (written, unacknowledged), free send space, SRTT,
    /// pacing rate and the payload MSS. The MPTCP-level state comes from the caller:
    /// `established` (the join is fully established), `backup`, `stale` and `stale_count`.
    pub fn from_tcb(
        id: SubflowId,
        tcb: &Tcb,
        established: bool,
        backup: bool,
        stale: bool,
        stale_count: u32,
    ) -> SubflowView {
        let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        SubflowView {
            id,
            established,
            backup,
            stale,
            stale_count,
            cwnd: as_u64(tcb.cwnd()),
            in_flight: tcb.snd_nxt_offset().saturating_sub(tcb.snd_una_offset()),
            queued_bytes: as_u64(tcb.send_queued()),
            send_space: as_u64(tcb.send_capacity()),
            srtt: tcb.rtt(),
            min_rtt: tcb.min_rtt(),
            pacing_rate: tcb.pacing_rate(),
            mss: as_u64(tcb.effective_mss()),
        }
    }

    /// Established and not stale: the kernel's `mptcp_subflow_active`.
    pub fn is_active(&self) -> bool {
        self.established && !self.stale
    }

    /// Active and with room in its send buffer (the kernel's `sk_stream_memory_free`).
    pub fn can_take(&self) -> bool {
        self.is_active() && self.send_space > 0
    }

    /// Bytes the congestion window still allows beyond what is already queued.
    pub fn cwnd_room(&self) -> u64 {
        self.cwnd
            .saturating_sub(self.queued_bytes.max(self.in_flight))
    }

    /// The sending rate used to estimate queueing time, bytes per second: the pacing rate,
    /// else `cwnd / srtt`, else `cwnd` per second (one initial RTO, RFC 6298). At least 1.
    pub fn rate(&self) -> u64 {
        if let Some(r) = self.pacing_rate {
            return r.max(1);
        }
        match self.srtt {
            Some(rtt) if rtt.as_micros() > 0 => {
                let r = u128::from(self.cwnd) * 1_000_000 / rtt.as_micros();
                u64::try_from(r).unwrap_or(u64::MAX).max(1)
            }
            _ => self.cwnd.max(1),
        }
    }

    /// Time to drain the queued bytes at [`SubflowView::rate`], in the kernel's fixed point:
    /// `(queued_bytes << 32) / rate`.
    pub fn linger(&self) -> u128 {
        (u128::from(self.queued_bytes) << 32) / u128::from(self.rate())
    }

    /// The rate the subflow delivers at, bytes per second: `cwnd / srtt` (a pacing rate runs
    /// ahead of it on purpose), else [`SubflowView::rate`].
    pub fn delivery_rate(&self) -> u64 {
        match self.srtt {
            Some(rtt) if rtt.as_micros() > 0 => {
                let r = u128::from(self.cwnd) * 1_000_000 / rtt.as_micros();
                u64::try_from(r).unwrap_or(u64::MAX).max(1)
            }
            _ => self.rate(),
        }
    }

    /// Estimated seconds until a byte queued now on this subflow arrives at the peer: the
    /// bytes written but not sent go first at `rate`, then the byte crosses the path as the
    /// bytes in flight do (the smoothed RTT, less the half of the smallest one the ACKs take
    /// to come back). Without an RTT sample, the whole queue at `rate`.
    pub fn arrival_secs(&self, rate: u64) -> f64 {
        let unsent = self.queued_bytes.saturating_sub(self.in_flight);
        let transit = match (self.srtt, self.min_rtt) {
            (Some(s), Some(m)) => s.as_secs_f64() - m.min(s).as_secs_f64() / 2.0,
            (Some(s), None) => s.as_secs_f64() / 2.0,
            _ => return self.queued_bytes as f64 / rate.max(1) as f64,
        };
        unsent as f64 / rate.max(1) as f64 + transit
    }

    /// The smoothed RTT, or `Duration::MAX` when unknown (sorts last).
    pub fn srtt_or_max(&self) -> Duration {
        self.srtt.unwrap_or(Duration::MAX)
    }
}

/// An unacknowledged data range that may be reinjected on another subflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reinject {
    /// Data offsets of the bytes.
    pub range: Range<u64>,
    /// The subflow they were sent on (and are stuck on).
    pub from: SubflowId,
}

/// What the connection asks the scheduler to place.
#[derive(Debug, Clone)]
pub struct SchedInput<'a> {
    /// Every subflow of the connection, in any order.
    pub subflows: &'a [SubflowView],
    /// New data never sent, already clipped to the peer's window: `[data_nxt, limit)`.
    pub new_data: Range<u64>,
    /// Ranges eligible for reinjection, oldest first.
    pub reinject: &'a [Reinject],
    /// The connection-level send window: bytes the peer allows beyond `data_una`.
    pub send_window: u64,
    /// Where the stream ends, once the application has closed it (the DATA_FIN's data
    /// offset): every byte still to place is known, which a scheduler may use to finish on
    /// all subflows at once.
    pub stream_end: Option<u64>,
}

/// One decision: send `range` on `subflow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The subflow to carry the bytes.
    pub subflow: SubflowId,
    /// Data offsets of the bytes.
    pub range: Range<u64>,
    /// True for bytes already handed to another subflow (reinjection or redundant copy).
    pub reinjection: bool,
}

impl Assignment {
    /// Bytes in the assignment.
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// True for an empty range (never produced by the built-ins).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet scheduler, chosen per connection. Object safe; see the [module docs](self) for
/// the contract every implementation keeps.
pub trait Scheduler: fmt::Debug + Send {
    /// The scheduler's name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;

    /// Appends this round's decisions to `out` (which the caller clears).
    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>);
}

/// The names [`by_name`] accepts.
pub const NAMES: [&str; 5] = ["default", "minrtt", "roundrobin", "redundant", "blest"];

/// A built-in scheduler by name (`default`, `minrtt`, `roundrobin`, `redundant`, `blest`).
pub fn by_name(name: &str) -> Option<Box<dyn Scheduler>> {
    Some(match name {
        "default" => Box::new(KernelDefault::new()),
        "minrtt" => Box::new(MinRtt::new()),
        "roundrobin" => Box::new(RoundRobin::new()),
        "redundant" => Box::new(Redundant::new()),
        "blest" => Box::new(Blest::new()),
        _ => return None,
    })
}

/// A built-in scheduler, as chosen in a configuration (the configuration stays `Clone`; each
/// connection builds its own instance with [`SchedulerKind::build`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    /// [`KernelDefault`].
    #[default]
    Default,
    /// [`MinRtt`].
    MinRtt,
    /// [`RoundRobin`].
    RoundRobin,
    /// [`Redundant`].
    Redundant,
    /// [`Blest`].
    Blest,
}

impl SchedulerKind {
    /// The name [`by_name`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Default => "default",
            SchedulerKind::MinRtt => "minrtt",
            SchedulerKind::RoundRobin => "roundrobin",
            SchedulerKind::Redundant => "redundant",
            SchedulerKind::Blest => "blest",
        }
    }

    /// A fresh scheduler of this kind.
    pub fn build(self) -> Box<dyn Scheduler> {
        match self {
            SchedulerKind::Default => Box::new(KernelDefault::new()),
            SchedulerKind::MinRtt => Box::new(MinRtt::new()),
            SchedulerKind::RoundRobin => Box::new(RoundRobin::new()),
            SchedulerKind::Redundant => Box::new(Redundant::new()),
            SchedulerKind::Blest => Box::new(Blest::new()),
        }
    }
}

/// An unknown scheduler name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler '{0}' (known: default, minrtt, roundrobin, redundant, blest)")]
pub struct UnknownScheduler(pub String);

impl core::str::FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "default" => SchedulerKind::Default,
            "minrtt" => SchedulerKind::MinRtt,
            "roundrobin" => SchedulerKind::RoundRobin,
            "redundant" => SchedulerKind::Redundant,
            "blest" => SchedulerKind::Blest,
            _ => return Err(UnknownScheduler(s.to_string())),
        })
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The earliest time (seconds from now) by which `remaining` more bytes can all have arrived
/// when spread over subflows given as `(arrival, rate)`: each starts delivering new bytes
/// `arrival` seconds from now (its queue drained, one-way delay passed) at `rate` bytes per
/// second, and the subflows that start latest are left out while leaving them out is faster
/// (water-filling). Infinite for no subflows.
pub fn finish_time(subflows: &mut [(f64, f64)], remaining: u64) -> f64 {
    subflows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rates, mut weighted) = (0.0, 0.0);
    for k in 0..subflows.len() {
        let (a, r) = subflows[k];
        rates += r;
        weighted += r * a;
        let t = (remaining as f64 + weighted) / rates.max(f64::MIN_POSITIVE);
        if subflows.get(k + 1).is_none_or(|next| t <= next.0) {
            return t;
        }
    }
    f64::INFINITY
}

/// Length of an assignment on `sf` of at most `avail` bytes: capped by the burst and the
/// subflow's send space.
pub(crate) fn chunk(sf: &SubflowView, avail: u64, cap: u64) -> u64 {
    avail.min(cap).min(SEND_BURST).min(sf.send_space)
}

/// The retransmission target, applied to each reinjection candidate in order: an active
/// subflow other than the origin with send space, a non-backup one first and among those the
/// one with the fewest queued bytes (ties: lowest id); a backup only when no non-backup
/// subflow is active, or when every busy active subflow has been found stale more than once
/// (no progress anywhere). Each subflow takes at most one reinjection, and none of `used`;
/// the chosen ones are added to `used`.
///
/// The kernel (`mptcp_subflow_get_retrans`) waits for a subflow whose TCP queue is empty.
/// braid's connection caps each subflow's queue at about one congestion window (through
/// [`SubflowView::send_space`]), so a reinjection placed behind that queue leaves within one
/// round trip, while waiting for an empty queue can starve it as long as new data keeps the
/// other subflows busy (a dead path would stall the connection until the window closes).
pub fn place_reinjections(
    input: &SchedInput<'_>,
    used: &mut Vec<SubflowId>,
    out: &mut Vec<Assignment>,
) {
    let min_stale = input
        .subflows
        .iter()
        .filter(|s| s.is_active() && s.queued_bytes > 0)
        .map(|s| s.stale_count)
        .min()
        .unwrap_or(u32::MAX);
    for cand in input.reinject {
        if cand.range.is_empty() {
            continue;
        }
        let eligible =
            |s: &&SubflowView| s.can_take() && s.id != cand.from && !used.contains(&s.id);
        let least_queued = |backup: bool| {
            input
                .subflows
                .iter()
                .filter(eligible)
                .filter(|s| s.backup == backup)
                .min_by_key(|s| (s.queued_bytes, s.id))
        };
        let pick = least_queued(false).or_else(|| {
            if min_stale > 1 || !has_active_primary(input.subflows) {
                least_queued(true)
            } else {
                None
            }
        });
        if let Some(sf) = pick {
            let len = chunk(sf, cand.range.end - cand.range.start, u64::MAX);
            used.push(sf.id);
            out.push(Assignment {
                subflow: sf.id,
                range: cand.range.start..cand.range.start + len,
                reinjection: true,
            });
        }
    }
}

/// True when some active non-backup subflow exists: backups are then left alone.
pub(crate) fn has_active_primary(subflows: &[SubflowView]) -> bool {
    subflows.iter().any(|s| s.is_active() && !s.backup)
}

/// The subflows eligible for new data under the backup rule: the active non-backup ones when
/// any exists, else the active backups; always excluding `used`, and only with send space.
pub(crate) fn data_candidates<'a>(
    subflows: &'a [SubflowView],
    used: &'a [SubflowId],
) -> impl Iterator<Item = &'a SubflowView> + 'a {
    let want_backup = !has_active_primary(subflows);
    subflows
        .iter()
        .filter(move |s| s.can_take() && s.backup == want_backup && !used.contains(&s.id))
}
