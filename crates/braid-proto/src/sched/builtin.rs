//! The built-in schedulers. See the [parent module](super) for the shared contract.

use smallvec::SmallVec;

use super::{
    chunk, data_candidates, has_active_primary, place_reinjections, Assignment, SchedInput,
    Scheduler, SubflowId, SubflowView,
};

/// A call's list of candidate subflows: up to eight inline (more spill to the heap), so
/// scheduling a burst allocates nothing.
type Candidates<'a> = SmallVec<[&'a SubflowView; 8]>;

/// The Linux kernel's default scheduler (`net/mptcp/protocol.c`, `mptcp_subflow_get_send` and
/// `mptcp_subflow_get_retrans`).
///
/// - **Reinjection** first ([`place_reinjections`]): to an active subflow whose TCP queue is
///   empty, a backup only when no busy subflow makes progress.
/// - **New data**: among active (established, non-stale) subflows of the preferred class —
///   non-backup ones, or the backups when no non-backup subflow is active — the one with the
///   smallest `linger = queued_bytes / rate` wins (ties: lowest id). As in the kernel,
///   when the winner's send buffer is full nothing is sent (the scheduler waits for it rather
///   than falling back to a slower subflow). It gets one burst of at most 64 KiB. A subflow
///   that took a reinjection in the same call is not a candidate.
/// - **Rate**: like the kernel's `avg_pacing_rate`, a per-subflow average of the pacing rate
///   weighted by bytes: it starts at the subflow's [`SubflowView::rate`] and, each time the
///   subflow gets a burst, becomes `(avg · queued + rate · burst) / (queued + burst)`.
/// - **End of the stream** (braid's addition): once the application has closed
///   ([`SchedInput::stream_end`]) every remaining byte is known, and a subflow whose next
///   byte ([`SubflowView::arrival_secs`] at its [`SubflowView::delivery_rate`]) would
///   arrive after the others could have delivered all of them ([`super::finish_time`]) gets
///   no more, and the chosen one gets no more than it delivers by that common finish time:
///   the transfer ends on every path at about the same time instead of waiting for the
///   slowest path's queue (on `two-paths`, 64 MiB: +0.6 Mbit/s on average over 60–68 MiB
///   for the first rule; the share cap lands both paths' last bytes within a millisecond
///   where a 64 KiB burst left them 8 ms apart, 134.9 → 135.1 Mbit/s).
///
/// One new-data assignment per call: the connection calls again and the queues it just grew
/// steer the next burst.
#[derive(Debug, Clone, Default)]
pub struct KernelDefault {
    /// `(subflow, average rate)` of the subflows seen in the last call.
    avg: Vec<(SubflowId, u64)>,
    /// Scratch for [`super::finish_time`], kept between calls.
    points: Vec<(f64, f64)>,
}

/// Two are equal when their averages are: the scratch is not state.
impl PartialEq for KernelDefault {
    fn eq(&self, other: &Self) -> bool {
        self.avg == other.avg
    }
}

impl Eq for KernelDefault {}

impl KernelDefault {
    /// The kernel's default scheduler.
    pub fn new() -> KernelDefault {
        KernelDefault::default()
    }

    /// The averaged rate of `id` in bytes per second, once it was seen.
    pub fn avg_rate(&self, id: SubflowId) -> Option<u64> {
        self.avg.iter().find(|(i, _)| *i == id).map(|(_, r)| *r)
    }

    fn linger(&self, sf: &SubflowView) -> u128 {
        let rate = self.avg_rate(sf.id).unwrap_or_else(|| sf.rate()).max(1);
        (u128::from(sf.queued_bytes) << 32) / u128::from(rate)
    }
}

impl Scheduler for KernelDefault {
    fn name(&self) -> &'static str {
        "default"
    }

    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>) {
        // Forget subflows that are gone; start the average of new ones at their rate.
        self.avg
            .retain(|(id, _)| input.subflows.iter().any(|s| s.id == *id));
        for sf in input.subflows {
            if self.avg_rate(sf.id).is_none() {
                self.avg.push((sf.id, sf.rate()));
            }
        }
        let mut used = Vec::new();
        place_reinjections(input, &mut used, out);
        let avail = input.new_data.end.saturating_sub(input.new_data.start);
        if avail == 0 {
            return;
        }
        let want_backup = !has_active_primary(input.subflows);
        // The preferred class, walked again where needed rather than collected: a call
        // allocates nothing (it runs for every burst).
        let class = || {
            input
                .subflows
                .iter()
                .filter(|s| s.is_active() && s.backup == want_backup && !used.contains(&s.id))
        };
        let rate = |s: &SubflowView| s.delivery_rate();
        let mut finish = None;
        if let Some(end) = input.stream_end {
            // The rest of the stream is known: a subflow whose queue and delay would land
            // its next byte after the others could have delivered everything gets no more.
            let mut pts = std::mem::take(&mut self.points);
            pts.clear();
            pts.extend(class().map(|s| (s.arrival_secs(rate(s)), rate(s) as f64)));
            finish = Some(super::finish_time(
                &mut pts,
                end.saturating_sub(input.new_data.start),
            ));
            self.points = pts;
        }
        let best = class()
            .filter(|s| finish.is_none_or(|t| s.arrival_secs(rate(s)) < t))
            .min_by_key(|s| (self.linger(s), s.id));
        if let Some(sf) = best {
            if sf.send_space == 0 {
                return;
            }
            // Near the end, no more than the subflow delivers by the common finish time.
            let share = finish.map_or(u64::MAX, |t| {
                let secs = (t - sf.arrival_secs(rate(sf))).max(0.0);
                ((secs * rate(sf) as f64).ceil() as u64).max(sf.mss.max(1))
            });
            let len = chunk(sf, avail, share);
            let burst = u128::from(avail.min(super::SEND_BURST));
            let wmem = u128::from(sf.queued_bytes);
            if let Some(entry) = self.avg.iter_mut().find(|(i, _)| *i == sf.id) {
                let avg = (u128::from(entry.1) * wmem + u128::from(sf.rate()) * burst)
                    / (burst + wmem).max(1);
                entry.1 = u64::try_from(avg).unwrap_or(u64::MAX).max(1);
            }
            out.push(Assignment {
                subflow: sf.id,
                range: input.new_data.start..input.new_data.start + len,
                reinjection: false,
            });
        }
    }
}

/// Lowest RTT first (the minRTT scheduler of the out-of-tree Linux MPTCP, Paasch et al.,
/// "Experimental evaluation of multipath TCP schedulers", CSWS 2014): new data fills the
/// subflow with the smallest smoothed RTT up to its congestion window, then the next one;
/// a subflow without an RTT sample comes last. Backup rule and reinjection as [`KernelDefault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinRtt;

impl MinRtt {
    /// The minRTT scheduler.
    pub fn new() -> MinRtt {
        MinRtt
    }
}

/// Fills `order`'s subflows one after the other with new data, each up to its cwnd room.
fn fill_in_order(input: &SchedInput<'_>, order: &[&SubflowView], out: &mut Vec<Assignment>) {
    let mut next = input.new_data.start;
    for sf in order {
        let avail = input.new_data.end.saturating_sub(next);
        if avail == 0 {
            break;
        }
        let len = chunk(sf, avail, sf.cwnd_room());
        if len == 0 {
            continue;
        }
        out.push(Assignment {
            subflow: sf.id,
            range: next..next + len,
            reinjection: false,
        });
        next += len;
    }
}

impl Scheduler for MinRtt {
    fn name(&self) -> &'static str {
        "minrtt"
    }

    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>) {
        let mut used = Vec::new();
        place_reinjections(input, &mut used, out);
        let mut order: Candidates<'_> = data_candidates(input.subflows, &used)
            .filter(|s| s.cwnd_room() > 0)
            .collect();
        order.sort_by_key(|s| (s.srtt_or_max(), s.id));
        fill_in_order(input, &order, out);
    }
}

/// Round robin: subflows take turns in id order, each turn `segments` × MSS bytes (1 segment
/// by default, like the out-of-tree Linux `roundrobin` scheduler's `num_segments`), only while
/// the congestion window has room. The turn order survives between calls. Backup rule and
/// reinjection as [`KernelDefault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRobin {
    segments: u64,
    last: Option<SubflowId>,
}

impl Default for RoundRobin {
    fn default() -> Self {
        RoundRobin::new()
    }
}

impl RoundRobin {
    /// One segment per turn.
    pub fn new() -> RoundRobin {
        RoundRobin::with_segments(1)
    }

    /// `segments` segments per turn (at least 1).
    pub fn with_segments(segments: u64) -> RoundRobin {
        RoundRobin {
            segments: segments.max(1),
            last: None,
        }
    }

    /// The subflow that had the last turn.
    pub fn last(&self) -> Option<SubflowId> {
        self.last
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>) {
        let mut used = Vec::new();
        place_reinjections(input, &mut used, out);
        let mut order: Candidates<'_> = data_candidates(input.subflows, &used)
            .filter(|s| s.cwnd_room() > 0)
            .collect();
        order.sort_by_key(|s| s.id);
        // Start after the subflow that had the last turn.
        if let Some(last) = self.last {
            let split = order
                .iter()
                .position(|s| s.id > last)
                .unwrap_or(order.len());
            order.rotate_left(split);
        }
        let mut next = input.new_data.start;
        for sf in order {
            let avail = input.new_data.end.saturating_sub(next);
            if avail == 0 {
                break;
            }
            let quantum = self.segments.saturating_mul(sf.mss.max(1));
            let len = chunk(sf, avail, quantum.min(sf.cwnd_room()));
            if len == 0 {
                continue;
            }
            out.push(Assignment {
                subflow: sf.id,
                range: next..next + len,
                reinjection: false,
            });
            self.last = Some(sf.id);
            next += len;
        }
    }
}

/// Redundant: every byte goes on every eligible subflow (the active non-backup ones, or the
/// active backups when none is active), like the out-of-tree Linux `redundant` scheduler.
/// One range per call, as long as the smallest send space among them allows, so a full
/// subflow holds the others back instead of missing bytes. The first eligible subflow
/// carries the range as new data, the others as copies (`reinjection: true`). A call that
/// placed a reinjection sends no new data, so no subflow misses a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redundant;

impl Redundant {
    /// The redundant scheduler.
    pub fn new() -> Redundant {
        Redundant
    }
}

impl Scheduler for Redundant {
    fn name(&self) -> &'static str {
        "redundant"
    }

    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>) {
        let mut used = Vec::new();
        place_reinjections(input, &mut used, out);
        if !used.is_empty() {
            return;
        }
        let want_backup = !has_active_primary(input.subflows);
        let mut targets: Candidates<'_> = input
            .subflows
            .iter()
            .filter(|s| s.is_active() && s.backup == want_backup)
            .collect();
        targets.sort_by_key(|s| s.id);
        let avail = input.new_data.end.saturating_sub(input.new_data.start);
        let len = targets
            .iter()
            .map(|s| chunk(s, avail, u64::MAX))
            .min()
            .unwrap_or(0);
        if len == 0 {
            return;
        }
        let range = input.new_data.start..input.new_data.start + len;
        for (i, sf) in targets.iter().enumerate() {
            out.push(Assignment {
                subflow: sf.id,
                range: range.clone(),
                reinjection: i > 0,
            });
        }
    }
}

/// BLEST, blocking-estimation scheduling (S. Ferlin, Ö. Alay, O. Mehani, R. Boreli, "BLEST:
/// Blocking Estimation-based MPTCP Scheduler for Heterogeneous Networks", IFIP Networking
/// 2016, §III).
///
/// The fastest subflow (smallest SRTT) `f` is used whenever its window has room. A slower
/// subflow `s` is used only if sending there cannot block the fast one at the receiver: with
/// `n = rtt_s / rtt_f`, the fast subflow sends during one slow RTT about
/// `X = MSS_f · (CWND_f + (n − 1) / 2) · n` bytes (its window in segments growing by one per
/// RTT), and `s` is skipped when `λ · X` exceeds the connection-level send window left once
/// `s`'s queue and the new bytes are counted. `λ` defaults to 1.2 (the scaling the Linux
/// implementation starts from). Without RTT samples the estimate is impossible and the
/// subflow is used. Backup rule and reinjection as [`KernelDefault`].
#[derive(Debug, Clone, PartialEq)]
pub struct Blest {
    lambda: f64,
}

impl Default for Blest {
    fn default() -> Self {
        Blest::new()
    }
}

impl Blest {
    /// BLEST with λ = 1.2.
    pub fn new() -> Blest {
        Blest::with_lambda(1.2)
    }

    /// BLEST with the given λ (clamped to 0.1..=10; non-finite values give 1.2).
    pub fn with_lambda(lambda: f64) -> Blest {
        let lambda = if lambda.is_finite() {
            lambda.clamp(0.1, 10.0)
        } else {
            1.2
        };
        Blest { lambda }
    }

    /// The scaling factor λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Bytes the fast subflow `f` is expected to send during one RTT of `s` (the paper's X).
    pub fn fast_bytes_during(f: &SubflowView, s: &SubflowView) -> Option<f64> {
        let rf = f.srtt?.as_secs_f64();
        let rs = s.srtt?.as_secs_f64();
        if rf <= 0.0 {
            return None;
        }
        let n = rs / rf;
        let mss = f.mss.max(1) as f64;
        let cwnd_segments = f.cwnd as f64 / mss;
        Some(mss * (cwnd_segments + (n - 1.0) / 2.0) * n)
    }

    /// True when sending `len` more bytes on `s` would block the fast subflow `f`.
    pub fn would_block(
        &self,
        f: &SubflowView,
        s: &SubflowView,
        len: u64,
        send_window: u64,
    ) -> bool {
        match Blest::fast_bytes_during(f, s) {
            None => false,
            Some(x) => {
                let left = send_window.saturating_sub(s.queued_bytes.saturating_add(len));
                self.lambda * x > left as f64
            }
        }
    }
}

impl Scheduler for Blest {
    fn name(&self) -> &'static str {
        "blest"
    }

    fn schedule(&mut self, input: &SchedInput<'_>, out: &mut Vec<Assignment>) {
        let mut used = Vec::new();
        place_reinjections(input, &mut used, out);
        let want_backup = !has_active_primary(input.subflows);
        // The fast subflow is the smallest RTT among the active ones, room or not.
        let Some(fast) = input
            .subflows
            .iter()
            .filter(|s| s.is_active() && s.backup == want_backup)
            .min_by_key(|s| (s.srtt_or_max(), s.id))
        else {
            return;
        };
        let mut order: Candidates<'_> = data_candidates(input.subflows, &used)
            .filter(|s| s.cwnd_room() > 0)
            .collect();
        order.sort_by_key(|s| (s.srtt_or_max(), s.id));
        let mut next = input.new_data.start;
        for sf in order {
            let avail = input.new_data.end.saturating_sub(next);
            if avail == 0 {
                break;
            }
            let len = chunk(sf, avail, sf.cwnd_room());
            if len == 0 {
                continue;
            }
            if sf.id != fast.id && self.would_block(fast, sf, len, input.send_window) {
                continue;
            }
            out.push(Assignment {
                subflow: sf.id,
                range: next..next + len,
                reinjection: false,
            });
            next += len;
        }
    }
}
