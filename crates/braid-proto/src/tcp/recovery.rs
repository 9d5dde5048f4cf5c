//! The sender's side of an ACK and loss recovery: SACK scoreboard, RACK-TLP loss detection
//! (RFC 8985) with PRR (RFC 6937) for SACK peers, RFC 6675 / NewReno (RFC 6582) for peers
//! without SACK, the retransmission timeout (RFC 6298, with Linux's choices where the RFC
//! allows them) and undo of spurious recoveries and timeouts (timestamps, RFC 3522; DSACK,
//! RFC 3708).
//!
//! With SACK, loss is explicit: RACK marks byte ranges lost in `lost` (a segment is lost once
//! one sent after it was delivered and a reordering window passed), an RTO marks everything
//! outstanding lost, and a retransmission takes its range out again; lost retransmissions are
//! found like any other loss. `pipe` is then what was sent, less what was SACKed and what is
//! lost. The tail loss probe (a new segment, or the last one again, after about two RTTs
//! without an ACK) turns a lost tail into SACKs that RACK can act on, instead of an RTO.

use super::*;

/// Proportional rate reduction state (RFC 6937 §3).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Prr {
    /// Bytes delivered to the receiver since the recovery began.
    delivered: u64,
    /// Bytes sent since the recovery began.
    out: u64,
    /// FlightSize when the recovery began.
    recover_fs: u64,
    /// Bytes that may still be sent before the next ACK.
    pub(super) allow: u64,
}

/// F-RTO (RFC 5682, the SACK-enhanced version as Linux runs it) after a timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frto {
    /// When the timeout fired: data sent before it and never resent that is (S)ACKed
    /// shows the timeout was spurious.
    at: Instant,
    /// SND.NXT when it fired.
    high: u64,
    /// The head's retransmission was acknowledged: new data goes before the rest of the
    /// lost bytes, and the next ACK tells.
    new_data: bool,
}

/// How long the peer may hold the ACK of a lone segment, for the probe timeout of one
/// segment in flight. RFC 8985's WCDelAckT is 200 ms, which on a path of a fraction of a
/// millisecond equals the minimum RTO and leaves a lone lost segment to it; receivers
/// (Linux's `ato`) mostly answer within 40 ms, and a probe sent too early costs one
/// segment and comes back as a DSACK (no window reduction).
const WORST_CASE_DELAYED_ACK: Duration = Duration::from_millis(50);
/// Added to two SRTTs for the probe timeout. Linux adds two jiffies (2 ms) for its timer's
/// granularity; braid's clock is in microseconds, and on a local path 2 ms is ten round trips
/// of waiting at every tail (TUN, 5 % loss: 267 -> 543 Mbit/s with 0.2 ms).
const PTO_SLACK: Duration = Duration::from_micros(200);
/// Probes in a row without an answer before only the RTO is left. RFC 8985 sends one; a
/// lost probe or a lost ACK of it then costs an RTO, which on a local path is a thousand
/// round trips, so braid sends up to six, each after twice the time of the one before, all
/// before the RTO (TUN, 10 % loss: 47 -> 197 Mbit/s, no RTO left).
const MAX_PROBES: u32 = 6;
/// Up to this many segments the congestion window counts segments, not bytes.
const SMALL_WINDOW: u64 = 4;

impl Tcb {
    /// The ACK field, SACK blocks and window update. Returns false when the segment must be
    /// dropped.
    pub(super) fn process_ack(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        seq: i64,
        payload_len: usize,
    ) -> bool {
        let ack = self.snd_abs(repr.ack);
        //= rfc5961#5.2
        //# the ACK is acceptable only in [SND.UNA - MAX.SND.WND, SND.NXT]; otherwise send an ACK and drop
        if ack > self.snd_nxt as i64 {
            self.ack_now = true;
            return false;
        }
        if ack < self.snd_una as i64 - self.max_snd_wnd.max(1) as i64 {
            self.challenge_ack(now);
            return false;
        }
        let ack = ack.max(0) as u64;

        self.sent_log.begin_ack();
        self.first_original = None;
        let (new_sacked, dsack) = if self.sack_enabled {
            self.process_sack_blocks(now, repr, ack)
        } else {
            (0, false)
        };
        if dsack {
            self.on_dsack();
        }

        let flight_before = self.flight() as usize;
        let old_wnd = self.snd_wnd;
        let una_before = self.snd_una;
        if ack > self.snd_una {
            self.on_new_ack(now, repr, ack, flight_before);
        } else if ack == self.snd_una && self.snd_nxt > self.snd_una {
            //= rfc5681#2
            //# DUPLICATE ACKNOWLEDGMENT: no data, no SYN/FIN, same window, outstanding data
            let window = u64::from(repr.window) << self.snd_wscale;
            let dup = if self.sack_enabled {
                new_sacked > 0
            } else {
                payload_len == 0 && !repr.flags.fin() && window == old_wnd
            };
            if dup {
                self.dupacks += 1;
                if self.in_recovery && !self.sack_enabled {
                    //= rfc6582#3.2
                    //# for each additional duplicate ACK, increment cwnd by SMSS (window inflation)
                    self.nosack_inflation += self.effective_mss() as u64;
                }
            }
        }
        if new_sacked > 0 || self.snd_una > una_before {
            // The path delivers: the retransmission timer need not back off further, and
            // probing starts afresh.
            self.backoff = 0;
            self.probes = 0;
        }
        if self.frto.is_some() {
            self.frto_on_ack(una_before, new_sacked);
        }
        if self.sack_enabled {
            self.rack_detect(now);
        }
        self.maybe_enter_recovery(now);
        if self.in_recovery && self.sack_enabled {
            self.prr_on_ack(self.snd_una - una_before + new_sacked);
        }
        self.tlp_on_ack(now, ack, dsack);

        // The peer is alive: it answers (zero-window probes included).
        self.unanswered_probes = 0;
        //= rfc9293#3.10.7.4
        //# update the send window if SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = u64::from(repr.window) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }

        // Our FIN acknowledged?
        if self.fin_sent && self.snd_una > self.fin_seq() {
            match self.state {
                TcpState::FinWait1 => self.state = TcpState::FinWait2,
                TcpState::Closing => self.enter_time_wait(now),
                TcpState::LastAck => {
                    self.enter_closed(None);
                }
                _ => {}
            }
        }
        self.arm_probe(now);
        true
    }

    /// Takes the SACK blocks into the scoreboard: newly SACKed bytes are delivered (RACK)
    /// and no longer lost. Returns the bytes newly SACKed and whether the first block was a
    /// DSACK.
    fn process_sack_blocks(&mut self, now: Instant, repr: &TcpRepr, ack: u64) -> (u64, bool) {
        let blocks = &repr.options.sack_blocks;
        let abs = |t: &Tcb, (l, r): (u32, u32)| (t.snd_abs(l), t.snd_abs(r));
        //= rfc2883#4
        //= A first SACK block below the cumulative ACK, or inside the second block, reports a
        //  duplicate segment (DSACK).
        let dsack = blocks.first().is_some_and(|&b0| {
            let (l0, r0) = abs(self, b0);
            r0 > l0
                && (r0 <= ack as i64
                    || blocks.get(1).is_some_and(|&b1| {
                        let (l1, r1) = abs(self, b1);
                        l0 >= l1 && r0 <= r1
                    }))
        });
        if dsack {
            // Only duplicates of this episode's retransmissions count (Linux's undo_marker).
            if let (Some(left), Some(&b0)) = (self.undo_retrans, blocks.first()) {
                let (l0, r0) = abs(self, b0);
                if l0 >= self.undo_marker as i64 {
                    self.undo_retrans = Some(left.saturating_sub((r0 - l0) as u64));
                }
            }
        }
        let mut new_sacked = 0;
        for &(l, r) in blocks {
            let l = self.snd_abs(l).max(ack as i64);
            let r = self.snd_abs(r);
            // The scoreboard is bounded: a peer cannot make it grow without limit.
            if !(r > l
                && r <= self.snd_nxt as i64
                && (self.scoreboard.len() < MAX_SACK_RANGES
                    || self.scoreboard.touches(l as u64, r as u64)))
            {
                continue;
            }
            let (l, r) = (l as u64, r as u64);
            // The pieces not SACKed before: delivered now.
            for (p, next) in self.scoreboard.gaps(l, r) {
                if let Some(d) = self.sent_log.sacked(p, next) {
                    self.on_delivered(d, now);
                }
                self.lost.remove(p, next);
            }
            new_sacked += self.scoreboard.insert(l, r);
        }
        (new_sacked, dsack)
    }

    fn on_new_ack(&mut self, now: Instant, repr: &TcpRepr, ack: u64, flight_before: usize) {
        let acked = ack - self.snd_una;
        self.rtt_sample_on_ack(now, repr, ack);
        if let Some(d) = self.sent_log.ack_below(ack, &self.scoreboard) {
            self.on_delivered(d, now);
        }
        self.lost.remove_below(ack);
        // Application bytes acknowledged: sequence offsets [1, data_end).
        let data_lo = self.snd_una.max(1);
        let data_hi = ack.min(self.data_end());
        if data_hi > data_lo {
            self.bytes_acked += data_hi - data_lo;
        }
        self.send.ack_to(ack.saturating_sub(1));
        self.snd_una = ack;
        self.scoreboard.remove_below(ack);
        self.high_rxt = self.high_rxt.max(ack);
        self.backoff = 0;
        self.retries = 0;
        if self.want_writable && self.send.wakes_writer() {
            self.want_writable = false;
            self.events.writable = true;
        }

        if self.rto_undo_pending {
            self.rto_undo_pending = false;
            if self.rto_recovery && self.retransmission_was_spurious(repr) {
                //= rfc3522#3.2
                //= The first ACK after an RTO echoes a timestamp older than the retransmission:
                //  the original arrived, the timeout was spurious; the reduction is undone and
                //  nothing more is resent.
                self.undo_timeout();
            }
        }

        if self.in_recovery && self.episode_rexmits == 1 && self.retransmission_was_spurious(repr) {
            //= rfc3522#3.2
            //# an ACK echoing a timestamp older than the retransmission's shows the original arrived: the retransmission was spurious
            self.undo();
            self.end_recovery();
            self.recovery_point = ack;
        } else if self.in_recovery {
            if ack >= self.recovery_point {
                //= rfc6675#5
                //# recovery ends when an ACK acknowledges all data up to RecoveryPoint
                self.end_recovery();
            } else if !self.sack_enabled {
                //= rfc6582#3.2
                //# partial ACK: retransmit the first unacknowledged segment, deflate cwnd by the amount acked, add back SMSS
                let mss = self.effective_mss() as u64;
                self.nosack_inflation = self.nosack_inflation.saturating_sub(acked) + mss;
                self.high_rxt = ack;
                self.fast_rexmit = true;
            }
        } else {
            self.dupacks = 0;
            // Grow only when the window was the limit: much in flight, or data waiting (for
            // pacing or the congestion window) that the peer's window would take.
            //= rfc7661#4.1
            //# cwnd should not grow while the sender is application-limited
            let waiting =
                self.snd_nxt < self.data_end() && self.snd_nxt < self.snd_una + self.snd_wnd;
            if flight_before * 2 >= self.cc.cwnd() || waiting {
                self.cc
                    .on_ack(now, acked as usize, self.rtt.srtt(), flight_before);
            }
        }
        if self.rto_recovery && ack >= self.recovery_point {
            self.rto_recovery = false;
        }
        //= rfc6298#5
        //# (5.2) all data acknowledged: stop the timer; (5.3) new data acknowledged: restart it
        if self.snd_una >= self.snd_nxt {
            self.set_timer(Timer::Retransmit, None);
        } else {
            self.set_timer(Timer::Retransmit, Some(now + self.rtt.rto()));
        }
    }

    fn on_delivered(&mut self, d: crate::tcp::rack::Delivered, now: Instant) {
        self.rack.on_delivered(d, now);
        if let Some(t) = d.first_original {
            self.first_original = Some(self.first_original.map_or(t, |f| f.min(t)));
        }
    }

    //= rfc5682#3.1
    //= SACK-enhanced F-RTO: once the head's retransmission is acknowledged, new data goes
    //  instead of the rest; if an ACK then (S)ACKs data sent before the timeout and never
    //  resent, the timeout was spurious and is undone; if it only SACKs the new data or is a
    //  duplicate, the loss was real and the recovery goes on as usual.
    fn frto_on_ack(&mut self, una_before: u64, new_sacked: u64) {
        let Some(f) = self.frto else {
            return;
        };
        // (Also when this ACK ended the timeout's recovery: it may have done so with the
        // originals.)
        if self.first_original.is_some_and(|t| t < f.at) {
            self.frto = None;
            self.undo_timeout();
            return;
        }
        let advanced = self.snd_una > una_before;
        if !self.rto_recovery {
            self.frto = None;
        } else if !f.new_data && advanced && self.snd_una < f.high {
            self.frto = Some(Frto {
                new_data: true,
                ..f
            });
        } else if f.new_data || !advanced || new_sacked > 0 {
            // Step 3.a (or 2.a): the loss was real.
            self.frto = None;
        }
    }

    /// A timeout was spurious: the window comes back, the marks the timeout put on every
    /// outstanding byte go, and RACK judges them again.
    fn undo_timeout(&mut self) {
        self.undo();
        self.rto_recovery = false;
        self.rto_undo_pending = false;
        self.frto = None;
        self.lost.clear();
        self.sent_log.rebuild_order();
        self.recovery_point = self.snd_una;
    }

    /// True while F-RTO wants new data before the lost bytes.
    pub(super) fn frto_new_data(&self) -> bool {
        self.frto.is_some_and(|f| f.new_data)
    }

    fn end_recovery(&mut self) {
        self.in_recovery = false;
        self.dupacks = 0;
        self.prr = Prr::default();
        self.rack.on_recovery_end();
    }

    /// Undoes the last congestion event's reduction (it was spurious).
    fn undo(&mut self) {
        self.cc.undo_congestion_event();
        self.spurious_recoveries += 1;
        self.undo_retrans = None;
        self.undo_tsval = None;
    }

    /// True when the ACK echoes a timestamp older than the first retransmission of the
    /// current episode: the original segment, not the retransmission, was acknowledged.
    fn retransmission_was_spurious(&self, repr: &TcpRepr) -> bool {
        if !self.ts_enabled {
            return false;
        }
        match (self.undo_tsval, repr.options.timestamps) {
            (Some(u), Some(ts)) => (ts.tsecr.wrapping_sub(u) as i32) < 0,
            _ => false,
        }
    }

    //= rfc3708#2
    //= Each DSACK shows one retransmission was unnecessary; once every retransmission of the
    //  episode is accounted for, the episode was spurious and its reduction is undone (Linux's
    //  tcp_try_undo_dsack). A DSACK also shows reordering to RACK (RFC 8985 §6.2 step 3).
    fn on_dsack(&mut self) {
        self.rack.on_dsack();
        if self.undo_retrans == Some(0) && self.episode_rexmits > 0 {
            // What is still marked lost stays so: bytes really delivered leave `lost` with
            // their ACK, and RACK no longer watches the others.
            self.undo();
            if self.in_recovery {
                self.end_recovery();
                self.recovery_point = self.snd_una;
            }
            if self.rto_recovery {
                self.rto_recovery = false;
                self.recovery_point = self.snd_una;
            }
        }
    }

    /// RACK's loss detection (SACK connections): marks lost what is due and arms the
    /// reordering timer for the next candidate.
    pub(super) fn rack_detect(&mut self, now: Instant) {
        // The estimator's SRTT comes from millisecond timestamps; it is never below the
        // minimum RTT measured from transmission times.
        let srtt = self
            .rtt
            .srtt()
            .unwrap_or(self.rtt.rto())
            .max(self.rack.min_rtt.unwrap_or(Duration::ZERO));
        let mss = self.full_mss() as u64;
        // Segments may be shorter than the MSS (a DSS mapping's first segment): round up.
        let sacked_segments = self.scoreboard.total().div_ceil(mss);
        self.rack
            .update_reo_wnd(self.in_recovery, sacked_segments, srtt);
        let next = self.sent_log.detect(
            &self.rack,
            self.snd_una,
            &self.scoreboard,
            &mut self.lost,
            now,
        );
        self.set_timer(Timer::Reorder, next);
    }

    /// The RFC 6675 IsLost boundary for peers without SACK: every sequence number below it is
    /// lost (after an RTO, everything sent).
    fn lost_boundary(&self) -> u64 {
        if self.rto_recovery {
            self.snd_nxt
        } else {
            self.snd_una
        }
    }

    /// Octets believed to be in the network. With SACK: sent, less SACKed, less lost (a
    /// retransmission takes its bytes out of `lost`, so they count again). Without: RFC
    /// 6675's SetPipe for NewReno, with the window inflation of RFC 6582.
    pub fn pipe(&self) -> u64 {
        if self.sack_enabled {
            return self
                .flight()
                .saturating_sub(self.scoreboard.total() + self.lost.total());
        }
        if self.in_recovery && !self.rto_recovery {
            return self.flight().saturating_sub(self.nosack_inflation);
        }
        //= rfc6675#4
        //# pipe counts each octet not SACKed and not lost, plus each retransmitted octet not SACKed
        let b = self.lost_boundary().clamp(self.snd_una, self.snd_nxt);
        let not_lost = self.snd_nxt - b;
        let hr = self.high_rxt.clamp(self.snd_una, self.snd_nxt);
        let rexmit = if self.rto_recovery {
            hr - self.snd_una
        } else {
            0
        };
        not_lost + rexmit
    }

    pub(super) fn maybe_enter_recovery(&mut self, now: Instant) {
        if self.in_recovery || self.snd_nxt <= self.snd_una || self.snd_una < self.recovery_point {
            return;
        }
        let trigger = if self.sack_enabled {
            //= rfc8985#6.2
            //= With SACK, RACK decides: the recovery starts once it has found a loss.
            !self.lost.is_empty()
        } else {
            self.dupacks >= DUP_THRESH
        };
        if !trigger {
            return;
        }
        let flight = self.flight() as usize;
        self.recoveries += 1;
        self.in_recovery = true;
        self.rto_recovery = false;
        //= rfc6675#5
        //# (4.1) RecoveryPoint = HighData; (4.2) ssthresh and cwnd reduced; (4.3) retransmit the first segment presumed dropped
        self.recovery_point = self.snd_nxt;
        self.cc.on_congestion_event(now, flight);
        self.high_rxt = self.snd_una;
        self.fast_rexmit = true;
        self.undo_tsval = None;
        self.undo_retrans = Some(0);
        self.undo_marker = self.snd_una;
        self.episode_rexmits = 0;
        //= rfc6937#3
        //= At the start of recovery: prr_delivered = prr_out = 0, RecoverFS = the flight.
        self.prr = Prr {
            recover_fs: flight as u64,
            ..Prr::default()
        };
        //= rfc6582#3.2
        //# on entering fast recovery cwnd = ssthresh + 3*SMSS (inflation by the three duplicate ACKs)
        self.nosack_inflation = DUP_THRESH * self.effective_mss() as u64;
    }

    //= rfc6937#3
    //= On each ACK in recovery: while pipe > ssthresh, send in proportion to what was
    //  delivered (prr_delivered * ssthresh / RecoverFS - prr_out); below it, grow back towards
    //  ssthresh no faster than slow start (PRR-SSRB: what was delivered and not yet matched,
    //  plus one MSS).
    fn prr_on_ack(&mut self, delivered: u64) {
        let pipe = self.pipe();
        let ssthresh = self.cc.ssthresh() as u64;
        let mss = self.full_mss() as u64;
        let p = &mut self.prr;
        p.delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            (p.delivered.saturating_mul(ssthresh))
                .div_ceil(p.recover_fs.max(1))
                .saturating_sub(p.out)
        } else {
            let limit = p.delivered.saturating_sub(p.out).max(delivered) + mss;
            (ssthresh - pipe).min(limit)
        };
        p.allow = sndcnt;
    }

    /// Counts bytes sent during a fast recovery against PRR's allowance.
    pub(super) fn prr_sent(&mut self, len: u64) {
        if self.in_recovery && self.sack_enabled {
            self.prr.out += len;
            self.prr.allow = self.prr.allow.saturating_sub(len);
        }
    }

    /// How many bytes may be sent now: PRR's allowance in a fast recovery with SACK, else
    /// what the congestion window leaves beside `pipe`.
    pub(super) fn send_allowance(&self) -> u64 {
        if self.in_recovery && self.sack_enabled {
            // PRR counts bytes; segments are whole (as Linux counts them): any allowance
            // lets a full segment go, and what it sends beyond is charged to the next ACKs.
            let mss = self.full_mss() as u64;
            self.prr.allow.div_ceil(mss) * mss
        } else {
            let (cwnd, pipe) = (self.cc.cwnd() as u64, self.pipe());
            // The congestion controller counts in segments that leave room for the MPTCP
            // layer's DSS; most segments are longer. In a small window (the floor of two
            // segments after a loss, RFC 5681) bytes would let one segment fewer go than
            // the window has: there it counts segments, as Linux always does.
            //= rfc5681#3.1
            //= The loss window is one full-sized segment: a window below one segment still
            //  lets one go when nothing is in flight (else a timeout could send nothing).
            let (unit, full) = (self.effective_mss() as u64, self.full_mss() as u64);
            let cwnd_segments = (cwnd / unit.max(1)).max(1);
            if cwnd_segments <= SMALL_WINDOW && pipe.div_ceil(full) < cwnd_segments {
                cwnd.saturating_sub(pipe).max(full)
            } else {
                cwnd.saturating_sub(pipe)
            }
        }
    }

    //= rfc8985#7.2
    //= The probe timeout (PTO) is armed whenever data is outstanding and no probe is out:
    //  two SRTTs (plus the peer's delayed-ACK time when a single segment is out), never
    //  later than the RTO. Unlike RFC 8985 and Linux, braid probes in recovery too: when a
    //  retransmission and everything after it are lost (or their ACKs are), nothing else
    //  would elicit the SACK that lets RACK go on, and the 200 ms minimum RTO is a thousand
    //  round trips on a local path.
    pub(super) fn arm_probe(&mut self, now: Instant) {
        let eligible = self.sack_enabled
            && self.can_send_data()
            && self.probes < MAX_PROBES
            && self.snd_nxt > self.snd_una;
        let srtt = self.rtt.srtt();
        let (true, Some(srtt)) = (eligible, srtt) else {
            self.set_timer(Timer::Probe, None);
            return;
        };
        let mut pto = srtt.saturating_mul(2) + PTO_SLACK;
        if self.flight() <= self.full_mss() as u64 {
            pto = pto.max(srtt.saturating_mul(2) + WORST_CASE_DELAYED_ACK);
        }
        // A probe that got no answer is followed by another after twice the time.
        pto = pto.saturating_mul(1 << self.probes);
        let mut at = now + pto;
        if let Some(rto) = self.timer(Timer::Retransmit) {
            if rto <= at {
                self.set_timer(Timer::Probe, None);
                return;
            }
            at = at.min(rto);
        }
        self.set_timer(Timer::Probe, Some(at));
    }

    //= rfc8985#7.3
    //= When the PTO fires: one new segment if the window of the peer allows, else the last
    //  segment sent again; then the RTO is armed.
    /// The tail loss probe, when one is due.
    pub(super) fn send_probe(
        &mut self,
        now: Instant,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
        max_payload: u64,
    ) -> Option<Segment> {
        if self.snd_nxt <= self.snd_una {
            return None;
        }
        // In recovery a lost range not yet sent again goes first: its ACK is what counts.
        if let Some((s, e)) = self.lost.first() {
            let seg = self.retransmit_reserved(now, s, e, reserve);
            self.tlp = Some((self.snd_nxt, true));
            self.probe_sent(now);
            return Some(seg);
        }
        let seg = match self.send_new_reserved(now, u64::MAX, reserve) {
            Some(seg) => {
                self.tlp = Some((self.snd_nxt, false));
                seg
            }
            None => {
                let start = self
                    .sent_log
                    .last_start()
                    .unwrap_or(self.snd_una)
                    .max(self.snd_una);
                let seg = self.retransmit(now, start, self.snd_nxt, max_payload);
                self.tlp = Some((self.snd_nxt, true));
                seg
            }
        };
        self.probe_sent(now);
        Some(seg)
    }

    /// A probe went: the next one (if any) after twice the time. The RTO keeps running from
    /// the last ACK (Linux counts it from the head's transmission): probes must not
    /// postpone the last resort, nor the MPTCP layer's sign of a dead path.
    fn probe_sent(&mut self, now: Instant) {
        self.probes += 1;
        self.arm_rto(now);
        self.arm_probe(now);
    }

    //= rfc8985#7.4
    //= A probe that retransmitted and was needed (the ACK goes past it and no DSACK shows
    //  the original arrived too) repaired a loss: the congestion controller reacts once.
    fn tlp_on_ack(&mut self, now: Instant, ack: u64, dsack: bool) {
        let Some((end, rexmit)) = self.tlp else {
            return;
        };
        if ack < end {
            return;
        }
        if !rexmit || dsack {
            self.tlp = None;
        } else if ack > end {
            self.tlp = None;
            if !self.in_recovery && self.snd_una >= self.recovery_point {
                let flight = self.flight() as usize;
                self.cc.on_congestion_event(now, flight);
                self.recovery_point = self.snd_nxt;
                self.undo_retrans = None;
            }
        }
    }

    pub(super) fn on_rto(&mut self, now: Instant) {
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                self.retries += 1;
                if self.retries > self.cfg.max_syn_retransmissions {
                    self.enter_closed(Some(ConnectionError::TimedOut));
                    return;
                }
                self.backoff += 1;
                self.syn_pending = true;
                self.timed = None;
            }
            TcpState::Closed | TcpState::Listen | TcpState::TimeWait => {}
            _ => {
                if self.snd_nxt <= self.snd_una {
                    return;
                }
                self.retries += 1;
                if self.retries > self.cfg.max_retransmissions {
                    //= rfc9293#3.8.3
                    //# excessive retransmissions (R2) close the connection
                    self.enter_closed(Some(ConnectionError::TimedOut));
                    return;
                }
                self.timeouts += 1;
                if self.backoff == 0 {
                    let flight = self.flight() as usize;
                    self.cc.on_rto(now, flight);
                    self.undo_retrans = Some(0);
                    self.undo_marker = self.snd_una;
                    self.undo_tsval = None;
                    self.episode_rexmits = 0;
                }
                //= rfc6298#5
                //# (5.5) back off the timer: RTO <- RTO * 2
                self.backoff += 1;
                if self.backoff >= 3 {
                    //= rfc2018#8
                    //# the sender must not rely on SACKed data after a timeout (the receiver may renege)
                    self.scoreboard.clear();
                }
                //= rfc6675#5.1
                //# after an RTO, RecoveryPoint = HighData and fast recovery is terminated
                if self.in_recovery {
                    self.end_recovery();
                }
                self.rto_recovery = true;
                self.rto_undo_pending = false;
                self.recovery_point = self.snd_nxt;
                self.high_rxt = self.snd_una;
                self.dupacks = 0;
                self.timed = None;
                self.tlp = None;
                self.probe_due = false;
                self.probes = 0;
                self.set_timer(Timer::Probe, None);
                self.set_timer(Timer::Reorder, None);
                if self.sack_enabled {
                    //= rfc8985#6.3
                    //= After an RTO every outstanding segment not SACKed counts as lost; the
                    //  retransmissions are new transmissions for RACK.
                    for (p, next) in self.scoreboard.gaps(self.snd_una, self.snd_nxt) {
                        self.lost.insert(p, next);
                    }
                    self.frto = Some(Frto {
                        at: now,
                        high: self.snd_nxt,
                        new_data: false,
                    });
                }
            }
        }
        self.set_timer(
            Timer::Retransmit,
            Some(now + self.rtt.backed_off(self.backoff)),
        );
    }
}
