//! A TCB's input: SYNs, the acceptability of segments (RFC 9293 §3.10.7), ACK processing
//! with RTT samples, and received data and FIN.

use super::*;

/// Duplicate ACKs of one hole sent before the next segment (Linux's
/// `TCP_FASTRETRANS_THRESH`): what a sender's fast retransmit waits for.
const DUP_ACKS_AT_ONCE: u8 = 3;
/// Out-of-order segments per ACK once a hole had its duplicate ACKs at once. Linux
/// compresses up to `tcp_comp_sack_nr` (44) within min(1 ms, RTT / 20), a few microseconds
/// at sub-millisecond RTTs; braid's batches are longer, and with two SACK blocks at most
/// (beside the timestamps and the MPTCP DATA_ACK) an ACK for 44 segments loses the extent
/// of blocks the sender then sends again. `bench/loss.sh`, kernel → braid at 1 / 5 / 10 %
/// loss: one ACK per segment gave 547 / 517 / 615 Mbit/s with 42,000 ACKs at 1 %; one per
/// 44, 1146 / 1100 / 773 with a third of the kernel's retransmissions spurious (DSACKed);
/// one per 4, 1237 / 948 / 1049 with 15,000 ACKs and almost none spurious.
const MAX_COMPRESSED_ACKS: u8 = 4;

impl Tcb {
    /// Negotiates options from the peer's SYN (or SYN-ACK) and records its ISN.
    pub(super) fn receive_syn(&mut self, now: Instant, syn: &TcpRepr) {
        self.irs = syn.seq;
        self.rcv_nxt = 1;
        self.last_ack_sent = 1;
        let o = &syn.options;
        //= rfc9293#3.7.1
        //# the send MSS is the peer's advertised MSS (default 536 / 1220 if absent), bounded by ours
        let peer_mss = usize::from(o.mss.unwrap_or(self.params.default_mss).max(64));
        self.snd_mss = peer_mss.min(usize::from(self.params.mss.max(64)));
        //= rfc7323#2.2
        //# window scaling is in effect only if both sides sent the Window Scale option on SYN
        match (self.cfg.window_scaling, o.window_scale) {
            (true, Some(ws)) => {
                //= rfc7323#2.3
                //# a shift count greater than 14 is treated as 14
                self.snd_wscale = ws.min(14);
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_enabled = self.cfg.sack && o.sack_permitted;
        match (self.cfg.timestamps, o.timestamps) {
            (true, Some(ts)) => {
                self.ts_enabled = true;
                self.ts_recent = ts.tsval;
                self.ts_recent_age = Some(now);
            }
            _ => self.ts_enabled = false,
        }
        // rcv_mss (the delayed-ACK unit) is learnt from the segments received: a "full-sized"
        // segment is the largest seen so far (the peer's options make it smaller than the MSS).
        //= rfc9293#3.10.7.3
        //# the window in a SYN is never scaled
        self.snd_wnd = u64::from(syn.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = 0;
        self.snd_wl2 = 0;
        let m = self.effective_mss();
        self.cc.set_mss(m);
        let iw = (self.cfg.initial_window.max(1) as usize) * m;
        self.cc = self.cfg.cc.build(m, iw);
        //= rfc7323#2.2
        //# the window in a SYN is never scaled
        // What the SYN (or SYN/ACK) advertises, no more: the first segment after it opens
        // the rest, as far as the window (and a clamp set since) allows.
        self.rcv_adv = 1 + self.advertisable_window().min(65535);
    }

    pub(super) fn advertisable_window(&self) -> u64 {
        let max = 65535u64 << self.rcv_wscale;
        let clamp = self.window_clamp.unwrap_or(u64::MAX);
        (self.recv.window() as u64).min(max).min(clamp)
    }

    /// Processes one received segment addressed to this connection.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> SegmentOutcome {
        self.handle_segment_into(now, repr, payload, None)
    }

    /// [`Tcb::handle_segment`], offering new in-order bytes to `sink` first when nothing
    /// waits in the receive buffer: `sink(offset, bytes)` returns true when it took them all
    /// (an MPTCP connection placing them in its data-level buffer), and they are counted as
    /// received and read without being stored; on false they are stored as usual. Either
    /// way the TCP side (sequence numbers, ACKs, SACK) is the same.
    pub fn handle_segment_into(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        payload: &[u8],
        sink: Option<InOrderSink<'_>>,
    ) -> SegmentOutcome {
        let out = match self.state {
            TcpState::Closed => {
                // An MPTCP subflow closes inside a connection that lives on: its peer's
                // segments still reach it (the challenge ACK that answers a reset whose
                // sequence number was not the one it expected, after data it never got),
                // and get the answer of a host without the connection. A RST of our own
                // still waiting to go (an abort's) goes first.
                if self.rst_reply.is_none() {
                    self.rst_reply =
                        crate::tcp::reset_answer(repr, payload.len()).map(|(seq, ack)| RstReply {
                            seq,
                            ack,
                            closed: true,
                        });
                }
                SegmentOutcome::default()
            }
            TcpState::Listen => SegmentOutcome::default(),
            TcpState::SynSent => self.handle_syn_sent(now, repr),
            _ => self.handle_synchronized(now, repr, payload, sink),
        };
        self.update_persist(now);
        out
    }

    /// SYN-RECEIVED -> ESTABLISHED on an acceptable ACK of our SYN.
    pub(super) fn establish_passive(&mut self, now: Instant, repr: &TcpRepr, seq: i64, wnd: u64) {
        self.snd_una = 1;
        self.rtt_sample_on_ack(now, repr, 1);
        self.backoff = 0;
        self.retries = 0;
        self.set_timer(Timer::Retransmit, None);
        self.state = if self.fin_queued {
            TcpState::FinWait1
        } else {
            TcpState::Established
        };
        self.events.established = true;
        self.snd_wnd = wnd;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seq;
        self.snd_wl2 = 1;
    }

    pub(super) fn handle_syn_sent(&mut self, now: Instant, repr: &TcpRepr) -> SegmentOutcome {
        let f = repr.flags;
        //= rfc9293#3.10.7.3
        //# SYN-SENT: if SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless RST) and discard
        if f.ack() {
            let ack = self.snd_abs(repr.ack);
            if ack <= 0 || ack > self.snd_nxt as i64 {
                if !f.rst() {
                    self.rst_reply = Some(RstReply {
                        seq: repr.ack,
                        ack: None,
                        closed: false,
                    });
                }
                return SegmentOutcome::default();
            }
        }
        if f.rst() {
            //= rfc9293#3.10.7.3
            //# if the ACK was acceptable, signal "connection reset" and enter CLOSED; else drop
            if f.ack() {
                self.enter_closed(Some(ConnectionError::Refused));
            }
            return SegmentOutcome::default();
        }
        if !f.syn() {
            return SegmentOutcome::default();
        }
        self.receive_syn(now, repr);
        if f.ack() {
            self.snd_una = 1;
            self.rtt_sample_on_ack(now, repr, 1);
            self.backoff = 0;
            self.retries = 0;
            self.set_timer(Timer::Retransmit, None);
            self.snd_wl1 = 0;
            self.snd_wl2 = 1;
            self.state = TcpState::Established;
            self.events.established = true;
            self.ack_now = true;
            if self.fin_queued {
                self.state = TcpState::FinWait1;
            }
        } else {
            //= rfc9293#3.10.7.3
            //# simultaneous open: enter SYN-RECEIVED and send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
            self.state = TcpState::SynReceived;
            self.syn_pending = true;
        }
        SegmentOutcome {
            accepted: true,
            data: 0..0,
        }
    }

    pub(super) fn rtt_sample_on_ack(&mut self, now: Instant, repr: &TcpRepr, ack: u64) {
        if self.ts_enabled {
            //= rfc7323#4.1
            //# RTT measurement from the echoed timestamp of an ACK that advances the left edge
            if let Some(ts) = repr.options.timestamps {
                if ts.tsecr != 0 || self.params.ts_offset == 0 {
                    let ms = self.ts_now(now).wrapping_sub(ts.tsecr);
                    if ms < 60_000 {
                        self.rtt.sample(Duration::from_millis(u64::from(ms)));
                        self.hystart_sample(now, ack, Duration::from_millis(u64::from(ms)));
                    }
                }
                self.timed = None;
                return;
            }
        }
        //= rfc6298#3
        //# Karn: RTT samples MUST NOT be made using segments that were retransmitted
        if let Some((end, at)) = self.timed {
            if ack >= end {
                let r = now.saturating_duration_since(at);
                self.rtt.sample(r);
                self.hystart_sample(now, ack, r);
                self.timed = None;
            }
        }
    }

    pub(super) fn hystart_sample(&mut self, now: Instant, ack: u64, rtt: Duration) {
        let h = &mut self.hystart;
        if h.done || self.cc.cwnd() >= self.cc.ssthresh() || self.in_recovery || self.rto_recovery {
            return;
        }
        //= rfc9406#4.2
        //# at the start of each round, lastRoundMinRTT = currentRoundMinRTT, currentRoundMinRTT = infinity, rttSampleCount = 0
        if ack >= h.round_end {
            h.last_round_min = h.current_round_min;
            h.current_round_min = None;
            h.samples = 0;
            h.round_end = self.snd_nxt;
        }
        h.samples += 1;
        h.current_round_min = Some(h.current_round_min.map_or(rtt, |m| m.min(rtt)));
        if h.samples < HYSTART_SAMPLES {
            return;
        }
        if let (Some(last), Some(cur)) = (h.last_round_min, h.current_round_min) {
            //= rfc9406#4.2
            //# RttThresh = clamp(MIN_RTT_THRESH, lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH); exit slow start if currentRoundMinRTT >= lastRoundMinRTT + RttThresh
            let thresh = (last / 8).clamp(HYSTART_MIN_THRESH, HYSTART_MAX_THRESH);
            if cur >= last + thresh {
                h.done = true;
                self.cc.exit_slow_start(now);
            }
        }
    }

    /// The receive window the acceptability test uses: what was advertised, or more if the
    /// buffer has since freed room.
    pub(super) fn acceptance_window(&self) -> u64 {
        self.rcv_adv
            .saturating_sub(self.rcv_nxt)
            .max(self.recv.window() as u64)
    }

    pub(super) fn segment_acceptable(&self, seq: i64, len: u64) -> bool {
        //= rfc9293#3.10.7.4
        //# four cases of the acceptability test on segment length and receive window
        let wnd = self.acceptance_window() as i64;
        let nxt = self.rcv_nxt as i64;
        let len = len as i64;
        if len == 0 {
            if wnd == 0 {
                seq == nxt
            } else {
                nxt <= seq && seq < nxt + wnd
            }
        } else if wnd == 0 {
            false
        } else {
            (nxt <= seq && seq < nxt + wnd) || (nxt < seq + len && seq + len - 1 < nxt + wnd)
        }
    }

    pub(super) fn handle_synchronized(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        payload: &[u8],
        sink: Option<InOrderSink<'_>>,
    ) -> SegmentOutcome {
        let mut f = repr.flags;
        // The segment's own text length: a segment that carried data is no duplicate ACK,
        // even when its data is dropped.
        let text_len = payload.len();
        let mut payload = payload;
        let seq = self.rcv_abs(repr.seq);
        let mut seg_len = payload.len() as u64 + u64::from(f.syn()) + u64::from(f.fin());

        // SYN-RECEIVED: a retransmitted SYN gets the SYN-ACK again.
        if self.state == TcpState::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && repr.seq == self.irs
        {
            self.syn_pending = true;
            return SegmentOutcome::default();
        }

        // Simultaneous open: the peer's SYN-ACK crosses ours. It acknowledges our SYN, so it
        // completes the handshake (as Linux does), and our ACK lets the peer complete too.
        if self.state == TcpState::SynReceived
            && f.syn()
            && f.ack()
            && !f.rst()
            && repr.seq == self.irs
            && self.snd_nxt >= 1
            && self.snd_abs(repr.ack) == 1
        {
            //= rfc7323#2.2
            //# the window field of a SYN-ACK is not scaled
            self.establish_passive(now, repr, 0, u64::from(repr.window));
            self.ack_now = true;
            return SegmentOutcome {
                accepted: true,
                data: 0..0,
            };
        }

        //= rfc7323#5.3
        //# PAWS: a segment with SEG.TSval < TS.Recent is not acceptable (send an ACK, drop), RST excepted
        if self.ts_enabled && !f.rst() {
            if let Some(ts) = repr.options.timestamps {
                if let Some(age) = self.ts_recent_age {
                    if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                        if now.saturating_duration_since(age) > PAWS_IDLE {
                            //= rfc7323#5.5
                            //# a TS.Recent idle for more than 24 days is invalid
                            self.ts_recent_age = None;
                        } else {
                            self.paws_drops += 1;
                            self.ack_now = true;
                            return SegmentOutcome::default();
                        }
                    }
                }
            }
        }

        if seg_len > 0
            && seq == self.rcv_nxt as i64
            && self.acceptance_window() == 0
            && f.ack()
            && !f.rst()
            && !f.syn()
        {
            //= rfc9293#3.10.7.4
            //# if the RCV.WND is zero, no segments will be acceptable, but special allowance should be made to accept valid ACKs
            // The segment's text (and a FIN behind it) is dropped, its acknowledgment and
            // window processed: with both sides' buffers full, the peer's ACKs ride on data,
            // and dropping them whole would leave both senders waiting on each other's RTO.
            // The peer learns of the drop from our ACK. Linux does the same.
            payload = &[];
            f = TcpFlags(f.0 & !TcpFlags::FIN);
            seg_len = 0;
            self.ack_now = true;
        }

        if !self.segment_acceptable(seq, seg_len) {
            //= rfc9293#3.10.7.4
            //# if a segment is not acceptable, send an acknowledgment (unless RST) and drop it
            if !f.rst() {
                self.ack_now = true;
                // A duplicate of data already received (RFC 5681 §4.2: at once).
                self.urgent_ack |= !payload.is_empty();
                let end = seq + payload.len() as i64;
                if self.sack_enabled
                    && !payload.is_empty()
                    && seq >= 1
                    && end <= self.rcv_nxt as i64
                {
                    //= rfc2883#4
                    //# a duplicate segment is reported in a D-SACK block
                    self.dsack = Some((seq as u64 - 1, end as u64 - 1));
                }
                //= rfc9293#3.10.7.4
                //# TIME-WAIT: a retransmission of the remote FIN is acknowledged and the 2 MSL timeout restarted
                if self.state == TcpState::TimeWait
                    && f.fin()
                    && seq + seg_len as i64 == self.rcv_nxt as i64
                {
                    self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait));
                }
            }
            return SegmentOutcome::default();
        }

        if f.rst() {
            //= rfc5961#3.2
            //# RST: reset only if SEG.SEQ exactly matches RCV.NXT; otherwise (in window) send a challenge ACK
            if seq == self.rcv_nxt as i64 {
                let err = if self.state == TcpState::SynReceived {
                    ConnectionError::Refused
                } else {
                    ConnectionError::Reset
                };
                if self.state == TcpState::TimeWait {
                    self.enter_closed(None);
                } else {
                    self.enter_closed(Some(err));
                }
            } else {
                self.challenge_ack(now);
            }
            return SegmentOutcome::default();
        }

        if f.syn() {
            //= rfc5961#4.2
            //# a SYN in a synchronized state gets a challenge ACK, whatever its sequence number
            self.challenge_ack(now);
            return SegmentOutcome::default();
        }

        if !f.ack() {
            //= rfc9293#3.10.7.4
            //# fifth: if the ACK bit is off, drop the segment
            return SegmentOutcome::default();
        }

        // Timestamps: TS.Recent update (RFC 7323 §4.3).
        if self.ts_enabled {
            if let Some(ts) = repr.options.timestamps {
                //= rfc7323#4.3
                //# if SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent then TS.Recent = SEG.TSval
                if seq <= self.last_ack_sent as i64
                    && (self.ts_recent_age.is_none()
                        || (ts.tsval.wrapping_sub(self.ts_recent) as i32) >= 0)
                {
                    self.ts_recent = ts.tsval;
                    self.ts_recent_age = Some(now);
                }
            }
        }

        if self.state == TcpState::SynReceived {
            let ack = self.snd_abs(repr.ack);
            //= rfc9293#3.10.7.4
            //# SYN-RECEIVED: if SND.UNA < SEG.ACK =< SND.NXT enter ESTABLISHED, else send <SEQ=SEG.ACK><CTL=RST>
            if ack == 1 && self.snd_nxt >= 1 {
                let wnd = u64::from(repr.window) << self.snd_wscale;
                self.establish_passive(now, repr, seq, wnd);
            } else {
                self.rst_reply = Some(RstReply {
                    seq: repr.ack,
                    ack: None,
                    closed: false,
                });
                return SegmentOutcome::default();
            }
        }

        if !self.process_ack(now, repr, seq, text_len) {
            return SegmentOutcome::default();
        }
        if self.state == TcpState::Closed {
            return SegmentOutcome {
                accepted: true,
                data: 0..0,
            };
        }

        // Data.
        let mut data_range = 0..0;
        if !payload.is_empty()
            && matches!(
                self.state,
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
            )
        {
            data_range = self.receive_data(now, seq, payload, sink);
        } else if !payload.is_empty() {
            // Data after the peer's FIN: acknowledge and ignore.
            self.ack_now = true;
        }

        // FIN.
        if f.fin() && !self.fin_received {
            let fin_at = seq + payload.len() as i64;
            if fin_at >= self.rcv_nxt as i64 {
                self.fin_recv = Some(fin_at as u64);
            }
        }
        if let Some(fin_at) = self.fin_recv {
            if !self.fin_received && fin_at == self.rcv_nxt {
                self.accept_fin(now);
            }
        } else if f.fin() && self.state == TcpState::TimeWait {
            //= rfc9293#3.10.7.4
            //# TIME-WAIT: a retransmitted FIN is acknowledged and the 2 MSL timeout restarted
            self.ack_now = true;
            self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait));
        }
        SegmentOutcome {
            accepted: true,
            data: data_range,
        }
    }

    pub(super) fn accept_fin(&mut self, now: Instant) {
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.events.readable = true;
        //= rfc9293#3.10.7.4
        //# eighth, FIN: ESTABLISHED -> CLOSE-WAIT; FIN-WAIT-1 -> CLOSING (or TIME-WAIT if our FIN is acked); FIN-WAIT-2 -> TIME-WAIT
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.state = TcpState::CloseWait,
            TcpState::FinWait1 => {
                if self.fin_sent && self.snd_una > self.fin_seq() {
                    self.enter_time_wait(now);
                } else {
                    self.state = TcpState::Closing;
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            TcpState::TimeWait => self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait)),
            _ => {}
        }
    }

    pub(super) fn receive_data(
        &mut self,
        now: Instant,
        seq: i64,
        payload: &[u8],
        sink: Option<InOrderSink<'_>>,
    ) -> Range<u64> {
        let rcv_nxt = self.rcv_nxt as i64;
        // Trim what was already received.
        let skip = if seq < rcv_nxt {
            ((rcv_nxt - seq) as usize).min(payload.len())
        } else {
            0
        };
        let start_seq = (seq + skip as i64) as u64;
        let bytes = &payload[skip..];
        if skip > 0 && self.sack_enabled && seq >= 1 {
            let lo = seq as u64 - 1;
            self.dsack = Some((lo, lo + skip as u64));
        }
        if bytes.is_empty() {
            // A pure duplicate: acknowledge at once (RFC 9293 §3.10.7.4, RFC 5681 §4.2).
            self.ack_now = true;
            self.urgent_ack = true;
            return 0..0;
        }
        let offset = start_seq - 1;
        if self.sack_enabled && self.dsack.is_none() {
            if let Some((a, b)) = self.recv.ooo().containing(offset) {
                let end = offset + bytes.len() as u64;
                if end <= b && offset >= a {
                    self.dsack = Some((offset, end));
                }
            }
        }
        let had_gap = !self.recv.ooo().is_empty();
        let in_order = start_seq == self.rcv_nxt;
        let passed = in_order
            && self.recv.can_pass(bytes.len())
            && sink.is_some_and(|take| take(offset, bytes));
        let newly = if passed {
            self.recv.pass(bytes.len());
            self.bytes_passed += bytes.len() as u64;
            bytes.len()
        } else {
            self.recv.write_at(offset, bytes)
        };
        self.rcv_mss = self.rcv_mss.max(payload.len());
        if newly > 0 {
            self.rcv_nxt += newly as u64;
            self.bytes_received += newly as u64;
            // Bytes the sink took were read as they came.
            self.events.readable |= !passed;
        }
        if !in_order {
            self.note_ooo(offset);
        }
        //= rfc5681#4.2
        //# an out-of-order segment or one that fills a gap SHOULD be acknowledged immediately
        if !in_order || had_gap || !self.cfg.delayed_ack {
            self.ack_now = true;
            self.urgent_ack |= if in_order {
                had_gap
            } else {
                self.ooo_ack_at_once()
            };
        } else {
            //= rfc9293#3.8.6.3
            //# an ACK SHOULD be generated for at least every second full-sized segment
            // Counted as Linux does: more than one full segment waiting is two segments, even
            // when their sizes differ by a few option bytes (MPTCP puts its DSS on the first
            // segment of a mapping only), which `>= 2 * MSS` would stretch to three.
            self.rcv_unacked += newly;
            if self.rcv_unacked > self.rcv_mss {
                self.ack_now = true;
            } else if self.timer(Timer::DelayedAck).is_none() {
                self.set_timer(Timer::DelayedAck, Some(now + self.cfg.delayed_ack_timeout));
            }
        }
        offset..offset + bytes.len() as u64
    }

    //= rfc5681#4.2
    //= Out-of-order segments are acknowledged immediately; like Linux's SACK compression
    //  (`tcp_comp_sack_*`, `TCP_FASTRETRANS_THRESH`), only the first three duplicate ACKs
    //  of a hole go out before the next segment: the sender's fast retransmit needs them.
    //  After them, out-of-order segments read in one batch share an ACK, at most
    //  [`MAX_COMPRESSED_ACKS`] of them (an endpoint polled after every packet, as the
    //  simulator is, still sends one per segment: the ACK is owed at once either way).
    /// True when this out-of-order segment's ACK must go before the next segment is taken
    /// in (an urgent ACK), false when it may wait for the end of the batch.
    fn ooo_ack_at_once(&mut self) -> bool {
        let (hole, at_once, compressed) = &mut self.ooo_acks;
        if *hole != self.rcv_nxt {
            (*hole, *at_once, *compressed) = (self.rcv_nxt, 0, 0);
        }
        if *at_once < DUP_ACKS_AT_ONCE {
            *at_once += 1;
            return true;
        }
        *compressed += 1;
        if *compressed >= MAX_COMPRESSED_ACKS {
            *compressed = 0;
            return true;
        }
        false
    }

    pub(super) fn note_ooo(&mut self, offset: u64) {
        self.recent_ooo.rotate_right(1);
        self.recent_ooo[0] = Some(offset);
    }
}
