//! RACK (RFC 8985): time-based loss detection for a SACK sender.
//!
//! A segment is lost once a segment sent after it has been delivered (cumulatively
//! acknowledged or SACKed) and a reordering window has passed since it was sent; retransmissions
//! are segments like any other, so a lost retransmission is found the same way. The state:
//! - [`SentLog`]: when each outstanding byte range was last sent (sorted by sequence offset in a ring),
//!   and the transmissions in sending order, from which detection takes candidates oldest
//!   first and stops at the first one sent after the newest delivery (each transmission is
//!   looked at until it is delivered, found lost or sent again: amortised O(log n) per
//!   segment, not a scan of the window per ACK, as Linux's time-sorted queue does).
//! - [`Rack`]: the newest delivered transmission (`xmit_ts`, `end_seq`), its RTT, the
//!   minimum RTT, the reordering window and whether reordering was seen.
//!
//! Which bytes are lost lives in the TCB's `lost` [`RangeSet`] (lost, not yet sent again); the
//! SACK scoreboard says what was delivered above SND.UNA.

use std::collections::VecDeque;

use super::ranges::RangeSet;
use crate::time::{Duration, Instant};

/// One transmission still outstanding: `[start, end)` of sequence offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    end: u64,
    xmit: Instant,
    rexmit: bool,
}

/// A transmission in sending order (the pieces of it that were not sent again since are the
/// entries of the sequence map in its range with the same `xmit`).
#[derive(Debug, Clone, Copy)]
struct Transmission {
    start: u64,
    end: u64,
    xmit: Instant,
}

/// What a delivery (a cumulative ACK or new SACK) covered: its newest transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub xmit: Instant,
    pub end: u64,
    pub rexmit: bool,
    /// A transmission sent once only ended below the highest sequence delivered before:
    /// the network reordered.
    pub reordered: bool,
    /// The earliest transmission among the delivered ones that were never sent again (F-RTO:
    /// such data sent before a timeout shows the timeout was spurious).
    pub first_original: Option<Instant>,
}

impl Delivered {
    fn newer(self, other: Option<Delivered>) -> Delivered {
        let Some(o) = other else {
            return self;
        };
        let first_original = match (self.first_original, o.first_original) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let reordered = o.reordered || self.reordered;
        let newest = if (o.xmit, o.end) > (self.xmit, self.end) {
            o
        } else {
            self
        };
        Delivered {
            reordered,
            first_original,
            ..newest
        }
    }
}

/// Outstanding ranges by their first sequence offset: disjoint, sorted, in a ring. Ranges
/// are sent, and acknowledged, mostly in sequence order, so the common cases are a push at
/// the back (new data) and a pop at the front (a cumulative ACK), both O(1); a
/// retransmission splitting a range in the middle finds it by binary search.
#[derive(Debug, Default)]
struct SeqMap(VecDeque<(u64, Sent)>);

impl SeqMap {
    /// Index of the first range starting at or above `key`.
    fn index_from(&self, key: u64) -> usize {
        match self.0.back() {
            Some(&(last, _)) if last < key => self.0.len(),
            _ => self.0.partition_point(|&(s, _)| s < key),
        }
    }

    /// The last range starting below `key`.
    fn last_below(&self, key: u64) -> Option<(u64, Sent)> {
        let i = self.index_from(key);
        i.checked_sub(1).and_then(|i| self.0.get(i)).copied()
    }

    /// The last range starting at or below `key`.
    fn last_at_or_below(&self, key: u64) -> Option<(u64, Sent)> {
        self.last_below(key.saturating_add(1))
    }

    fn insert(&mut self, key: u64, v: Sent) {
        let i = self.index_from(key);
        match self.0.get_mut(i) {
            Some(e) if e.0 == key => e.1 = v,
            _ => self.0.insert(i, (key, v)),
        }
    }

    /// The ranges starting in `[from, to)`.
    fn range(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, Sent)> + '_ {
        self.0
            .range(self.index_from(from)..)
            .take_while(move |e| e.0 < to)
            .copied()
    }

    fn first(&self) -> Option<(u64, Sent)> {
        self.0.front().copied()
    }

    fn iter(&self) -> impl Iterator<Item = (u64, Sent)> + '_ {
        self.0.iter().copied()
    }
}

/// Most transmissions remembered; beyond it the oldest are forgotten (a bound against a
/// window of tiny segments, far above any real window).
const MAX_TRANSMISSIONS: usize = 1 << 16;

/// When each outstanding range was last sent. See the [module docs](self).
#[derive(Debug, Default)]
pub struct SentLog {
    by_seq: SeqMap,
    in_order: VecDeque<Transmission>,
    /// The highest sequence offset delivered (RACK's "fack").
    fack: u64,
    /// `fack` before the ACK being processed: a delivery below it shows reordering.
    prior_fack: u64,
}

impl SentLog {
    /// Records that `[start, end)` left at `xmit`; `rexmit` when it was sent before.
    pub fn on_send(&mut self, start: u64, end: u64, xmit: Instant, rexmit: bool) {
        if start >= end {
            return;
        }
        self.cut(start, end);
        self.by_seq.insert(start, Sent { end, xmit, rexmit });
        if self.in_order.len() >= MAX_TRANSMISSIONS {
            self.in_order.pop_front();
        }
        self.in_order.push_back(Transmission { start, end, xmit });
    }

    /// Removes `[start, end)` from the sequence map, splitting entries that straddle it.
    fn cut(&mut self, start: u64, end: u64) {
        // An entry starting below `start` that reaches into it.
        if let Some((s, e)) = self.by_seq.last_below(start) {
            if e.end > start {
                self.by_seq.insert(s, Sent { end: start, ..e });
                if e.end > end {
                    self.by_seq.insert(end, e);
                }
            }
        }
        // The ranges starting inside it go; the part of the last one beyond `end` stays.
        let from = self.by_seq.index_from(start);
        let to = self.by_seq.index_from(end);
        if from < to {
            let last = self.by_seq.0.get(to - 1).map(|e| e.1);
            self.by_seq.0.drain(from..to);
            if let Some(e) = last.filter(|e| e.end > end) {
                self.by_seq.insert(end, e);
            }
        }
    }

    /// An ACK's processing begins: deliveries are judged against what was delivered before.
    pub fn begin_ack(&mut self) {
        self.prior_fack = self.fack;
    }

    /// Everything below `una` was acknowledged: forgets it and returns the newest
    /// transmission it newly delivered (ranges `sacked` before were delivered then).
    pub fn ack_below(&mut self, una: u64, sacked: &RangeSet) -> Option<Delivered> {
        let mut best: Option<Delivered> = None;
        while let Some((s, e)) = self.by_seq.first() {
            if s >= una {
                break;
            }
            self.by_seq.0.pop_front();
            if e.end > una {
                self.by_seq.insert(una, e);
            }
            let end = e.end.min(una);
            if sacked.covered_in(s, end) < end - s {
                best = Some(self.delivered(e).newer(best));
            }
        }
        self.fack = self.fack.max(una);
        best
    }

    /// `[start, end)` was newly SACKed: the newest transmission among it.
    pub fn sacked(&mut self, start: u64, end: u64) -> Option<Delivered> {
        let mut best: Option<Delivered> = None;
        let from = match self.by_seq.last_at_or_below(start) {
            Some((s, e)) if e.end > start => s,
            _ => start,
        };
        let hits: Vec<Sent> = self.by_seq.range(from, end).map(|(_, e)| e).collect();
        for e in hits {
            best = Some(self.delivered(e).newer(best));
        }
        if let Some(b) = best {
            self.fack = self.fack.max(b.end);
        }
        best
    }

    fn delivered(&self, e: Sent) -> Delivered {
        Delivered {
            xmit: e.xmit,
            end: e.end,
            rexmit: e.rexmit,
            reordered: !e.rexmit && e.end < self.prior_fack,
            first_original: (!e.rexmit).then_some(e.xmit),
        }
    }

    /// Watches every outstanding transmission again, oldest first (after an RTO that turned
    /// out spurious: its marks are undone, RACK judges the bytes again).
    pub fn rebuild_order(&mut self) {
        let mut v: Vec<Transmission> = self
            .by_seq
            .iter()
            .map(|(start, e)| Transmission {
                start,
                end: e.end,
                xmit: e.xmit,
            })
            .collect();
        v.sort_by_key(|t| (t.xmit, t.start));
        self.in_order = v.into();
    }

    /// The transmission time of the byte at `seq`, if outstanding.
    #[cfg(test)]
    pub fn sent_at(&self, seq: u64) -> Option<(Instant, bool)> {
        match self.by_seq.last_at_or_below(seq) {
            Some((_, e)) if e.end > seq => Some((e.xmit, e.rexmit)),
            _ => None,
        }
    }

    /// Where the highest outstanding range starts (the tail loss probe resends it).
    pub fn last_start(&self) -> Option<u64> {
        self.by_seq.0.back().map(|e| e.0)
    }

    /// Number of outstanding ranges.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_seq.0.len()
    }

    //= rfc8985#6.2
    //= Step 5: every segment sent before the newest delivered one, not delivered itself, is
    //  lost once RACK.rtt + RACK.reo_wnd passed since it was sent; otherwise the reordering
    //  timer is armed for the earliest such deadline.
    /// Marks lost (in `lost`) the outstanding bytes sent before `rack`'s newest delivery
    /// whose time is up; returns when the next candidate's time is up, if any.
    pub fn detect(
        &mut self,
        rack: &Rack,
        una: u64,
        sacked: &RangeSet,
        lost: &mut RangeSet,
        now: Instant,
    ) -> Option<Instant> {
        let (Some(newest), Some(rtt)) = (rack.xmit_ts, rack.rtt) else {
            return None;
        };
        let wait = rtt + rack.reo_wnd;
        while let Some(&t) = self.in_order.front() {
            let live = self.live_pieces(t, una, sacked, lost);
            if live.is_empty() {
                self.in_order.pop_front();
                continue;
            }
            // Sent after (or as) the newest delivery: nothing behind it can be judged.
            if (t.xmit, t.end) >= (newest, rack.end_seq) {
                return None;
            }
            let due = t.xmit + wait;
            if due > now {
                return Some(due);
            }
            for (s, e) in live {
                lost.insert(s, e);
            }
            self.in_order.pop_front();
        }
        None
    }

    /// The bytes of transmission `t` still in flight: not sent again since, not acknowledged,
    /// not SACKed, not already marked lost.
    fn live_pieces(
        &self,
        t: Transmission,
        una: u64,
        sacked: &RangeSet,
        lost: &RangeSet,
    ) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let lo = t.start.max(una);
        if lo >= t.end {
            return out;
        }
        let from = match self.by_seq.last_at_or_below(lo) {
            Some((s, e)) if e.end > lo => s,
            _ => lo,
        };
        for (s, e) in self.by_seq.range(from, t.end) {
            if e.xmit != t.xmit {
                continue;
            }
            // Less what is SACKed and what is already marked lost.
            for (a, b) in sacked.gaps(s.max(lo), e.end.min(t.end)) {
                out.extend(lost.gaps(a, b));
            }
        }
        out
    }
}

/// RACK's state (RFC 8985 §6.1).
#[derive(Debug, Clone, Default)]
pub struct Rack {
    /// Transmission time and end of the newest delivered transmission.
    pub xmit_ts: Option<Instant>,
    pub end_seq: u64,
    /// RTT of that delivery.
    pub rtt: Option<Duration>,
    /// The smallest RTT seen (microsecond precision, from transmission times).
    pub min_rtt: Option<Duration>,
    /// Reordering was seen on this connection.
    pub reord: bool,
    /// Multiplier of the reordering window, raised by each DSACK round.
    pub reo_wnd_mult: u32,
    /// Recoveries left before the multiplier falls back to 1.
    pub reo_wnd_persist: u32,
    /// The current reordering window.
    pub reo_wnd: Duration,
}

impl Rack {
    //= rfc8985#6.2
    //= Step 2: the newest delivered transmission sets RACK.xmit_ts and RACK.rtt; a
    //  retransmission whose ACK came sooner than the minimum RTT acknowledged the original.
    /// Takes a delivery into account.
    pub fn on_delivered(&mut self, d: Delivered, now: Instant) {
        let rtt = now.saturating_duration_since(d.xmit);
        if d.rexmit && self.min_rtt.is_some_and(|m| rtt < m) {
            return;
        }
        if d.reordered {
            self.reord = true;
        }
        if !d.rexmit {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        if self
            .xmit_ts
            .is_none_or(|x| (d.xmit, d.end) > (x, self.end_seq))
        {
            self.xmit_ts = Some(d.xmit);
            self.end_seq = d.end;
            self.rtt = Some(rtt);
        }
    }

    //= rfc8985#6.2
    //= Step 3: a DSACK widens the reordering window (by a quarter of the minimum RTT per
    //  round), for 16 recoveries.
    /// A DSACK arrived.
    pub fn on_dsack(&mut self) {
        self.reord = true;
        self.reo_wnd_mult = self.reo_wnd_mult.max(1).saturating_add(1).min(64);
        self.reo_wnd_persist = 16;
    }

    /// A recovery ended: the widened window decays after 16 of them.
    pub fn on_recovery_end(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    //= rfc8985#6.2
    //= Step 4: without reordering seen, the window is 0 in recovery or once DupThresh
    //  segments were SACKed; otherwise min(reo_wnd_mult * min_RTT / 4, SRTT).
    /// Recomputes the reordering window.
    pub fn update_reo_wnd(&mut self, in_recovery: bool, sacked_segments: u64, srtt: Duration) {
        if !self.reord && (in_recovery || sacked_segments >= 3) {
            self.reo_wnd = Duration::ZERO;
            return;
        }
        let quarter = self.min_rtt.unwrap_or(Duration::ZERO) / 4;
        self.reo_wnd = quarter.saturating_mul(self.reo_wnd_mult.max(1)).min(srtt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn a_later_delivery_marks_earlier_segments_lost_after_the_window() {
        let mut log = SentLog::default();
        for i in 0..4u64 {
            log.on_send(1 + i * 100, 101 + i * 100, t(i), false);
        }
        let mut sacked = RangeSet::new();
        let mut lost = RangeSet::new();
        let mut rack = Rack::default();
        // Segment 3 (sent at 3 ms) is SACKed at 13 ms: RTT 10 ms.
        sacked.insert(301, 401);
        let d = log.sacked(301, 401).expect("delivered");
        rack.on_delivered(d, t(13));
        rack.update_reo_wnd(false, 1, Duration::from_millis(10));
        // The window is min_rtt / 4 = 2.5 ms: segment 0 is due at 0 + 10 + 2.5.
        let next = log.detect(&rack, 1, &sacked, &mut lost, t(12));
        assert_eq!(next, Some(t(12) + Duration::from_micros(500)));
        assert!(lost.is_empty());
        let next = log.detect(&rack, 1, &sacked, &mut lost, t(15));
        // Segments 0 and 1 (due 12.5 and 13.5) lost; segment 2 due 14.5 lost too.
        assert_eq!(next, None);
        assert_eq!(lost.iter().collect::<Vec<_>>(), vec![(1, 301)]);
    }

    #[test]
    fn a_lost_retransmission_is_found_by_a_later_delivery() {
        let mut log = SentLog::default();
        log.on_send(1, 101, t(0), false);
        log.on_send(101, 201, t(1), false);
        let (mut sacked, mut lost, mut rack) = (RangeSet::new(), RangeSet::new(), Rack::default());
        rack.reord = false;
        // The first is retransmitted at 20 ms, then new data at 21 ms is SACKed at 31 ms.
        log.on_send(1, 101, t(20), true);
        log.on_send(201, 301, t(21), false);
        sacked.insert(101, 301);
        let d = log.sacked(101, 301).expect("delivered");
        rack.on_delivered(d, t(31));
        rack.update_reo_wnd(true, 2, Duration::from_millis(10));
        assert_eq!(rack.reo_wnd, Duration::ZERO);
        // The retransmission (sent at 20, before 21) is lost at 20 + 10.
        log.detect(&rack, 1, &sacked, &mut lost, t(31));
        assert_eq!(lost.iter().collect::<Vec<_>>(), vec![(1, 101)]);
    }

    #[test]
    fn resent_pieces_split_their_transmission() {
        let mut log = SentLog::default();
        log.on_send(1, 1449, t(0), false);
        // A retransmission of the first 1420 bytes leaves the last 28 with the old time.
        log.on_send(1, 1421, t(5), true);
        assert_eq!(log.sent_at(1), Some((t(5), true)));
        assert_eq!(log.sent_at(1430), Some((t(0), false)));
        assert_eq!(log.len(), 2);
        let d = log.ack_below(1430, &RangeSet::new()).expect("delivered");
        assert_eq!((d.xmit, d.rexmit), (t(5), true));
        assert_eq!(log.sent_at(1430), Some((t(0), false)));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn reordering_is_seen_when_an_older_segment_is_delivered_below_a_newer_one() {
        let mut log = SentLog::default();
        log.on_send(1, 101, t(0), false);
        log.on_send(101, 201, t(1), false);
        let mut rack = Rack::default();
        log.begin_ack();
        let d = log.sacked(101, 201).expect("delivered");
        rack.on_delivered(d, t(11));
        assert!(!rack.reord);
        log.begin_ack();
        let d = log.ack_below(201, &RangeSet::new()).expect("delivered");
        assert!(d.reordered);
        rack.on_delivered(d, t(12));
        assert!(rack.reord);
        rack.update_reo_wnd(true, 0, Duration::from_millis(10));
        assert_eq!(rack.reo_wnd, Duration::from_micros(2500));
    }
}
