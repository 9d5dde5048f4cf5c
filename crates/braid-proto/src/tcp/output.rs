//! A TCB's output: segments to send (new data, retransmissions, probes, pure ACKs), with
//! their options and window.

use super::*;

impl Tcb {
    pub(super) fn sack_blocks(&self, max: usize) -> arrayvec::ArrayVec<(u32, u32), 4> {
        let mut blocks: arrayvec::ArrayVec<(u64, u64), 4> = arrayvec::ArrayVec::new();
        //= rfc2883#4
        //# a D-SACK block reporting duplicate data is the first block of the next ACK
        if let Some(d) = self.dsack {
            if max > 0 {
                blocks.push(d);
            }
        }
        //= rfc2018#4
        //# the first SACK block MUST specify the block containing the most recently received segment
        for at in self.recent_ooo.iter().flatten() {
            if blocks.len() >= max {
                break;
            }
            if let Some(r) = self.recv.ooo().containing(*at) {
                if !blocks.contains(&r) {
                    blocks.push(r);
                }
            }
        }
        for r in self.recv.ooo().iter_rev() {
            if blocks.len() >= max {
                break;
            }
            if !blocks.contains(&r) {
                blocks.push(r);
            }
        }
        let base = self.irs.wrapping_add(1);
        blocks
            .iter()
            .map(|&(s, e)| (base.wrapping_add(s as u32), base.wrapping_add(e as u32)))
            .collect()
    }

    /// Builds a header; `data_len` is used to size the SACK blocks.
    pub(super) fn make_repr(&mut self, now: Instant, seq: u64, flags: u8) -> TcpRepr {
        let syn = flags & TcpFlags::SYN != 0;
        let mut options = TcpOptions::default();
        let window;
        if syn {
            options.mss = Some(self.params.mss);
            let peer_said_ws =
                self.state == TcpState::SynSent || self.rcv_wscale > 0 || self.snd_wscale > 0;
            if self.cfg.window_scaling && (self.state == TcpState::SynSent || peer_said_ws) {
                options.window_scale = Some(self.rcv_wscale);
            }
            let offer = |negotiated: bool, cfg: bool, state: TcpState| {
                if state == TcpState::SynSent {
                    cfg
                } else {
                    negotiated
                }
            };
            options.sack_permitted = offer(self.sack_enabled, self.cfg.sack, self.state);
            if offer(self.ts_enabled, self.cfg.timestamps, self.state) {
                options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: if flags & TcpFlags::ACK != 0 {
                        self.ts_recent
                    } else {
                        0
                    },
                });
            }
            window = self.advertisable_window().min(65535) as u16;
            if self.state == TcpState::SynReceived {
                // The SYN/ACK's window is the right edge the peer knows.
                self.rcv_adv = self.rcv_nxt + u64::from(window);
            }
        } else {
            if self.ts_enabled {
                options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: self.ts_recent,
                });
            }
            if self.sack_enabled
                && (!self.recv.ooo().is_empty() || self.dsack.is_some())
                && flags & TcpFlags::RST == 0
            {
                let max = self.sack_block_budget();
                options.sack_blocks = self.sack_blocks(max);
            }
            window = self.window_field();
        }
        let ack_flag = flags & TcpFlags::ACK != 0;
        if ack_flag {
            self.ack_sent();
        }
        TcpRepr {
            src_port: self.params.local_port,
            dst_port: self.params.remote_port,
            seq: self.wire_seq(seq),
            ack: if ack_flag { self.wire_ack() } else { 0 },
            flags: TcpFlags(flags),
            window,
            urgent: 0,
            options,
        }
    }

    /// Length of the options (rounded to 4) that a non-SYN segment will carry now.
    pub(super) fn option_len(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        let mut sack = 0;
        if self.sack_enabled && (!self.recv.ooo().is_empty() || self.dsack.is_some()) {
            let n = self
                .sack_block_budget()
                .min(self.recv.ooo().len() + usize::from(self.dsack.is_some()));
            if n > 0 {
                sack = 2 + 8 * n;
            }
        }
        (self.reserved_opt + ts + sack).div_ceil(4) * 4
    }

    pub(super) fn window_field(&mut self) -> u16 {
        let wnd = if let Some(shared) = self.shared_wnd {
            // The owner of the shared window keeps its right edge from moving left (in its
            // own sequence space) and does its own silly window syndrome avoidance.
            let wnd = shared.min(65535u64 << self.rcv_wscale);
            self.rcv_adv = self.rcv_nxt + wnd;
            wnd
        } else {
            let candidate = self.rcv_nxt + self.advertisable_window();
            let thresh = (self.recv.capacity() as u64 / 2).min(self.rcv_mss as u64);
            //= rfc9293#3.8.6.2.2
            //# the right window edge is advanced only by at least min(RCV.BUFF/2, Eff.snd.MSS); it never moves left
            if candidate >= self.rcv_adv + thresh || self.rcv_adv < self.rcv_nxt {
                self.rcv_adv = candidate.max(self.rcv_nxt);
            }
            self.rcv_adv - self.rcv_nxt
        };
        //= rfc7323#2.3
        //# the window field is the window shifted right by Rcv.Wind.Shift
        (wnd >> self.rcv_wscale).min(65535) as u16
    }

    pub(super) fn ack_sent(&mut self) {
        self.dsack = None;
        self.ack_now = false;
        self.urgent_ack = false;
        self.rcv_unacked = 0;
        self.last_ack_sent = self.rcv_nxt;
        self.set_timer(Timer::DelayedAck, None);
    }

    pub(super) fn arm_rto(&mut self, now: Instant) {
        if self.timer(Timer::Retransmit).is_none() {
            //= rfc6298#5
            //# (5.1) every time a packet containing data is sent, start the timer if it is not running
            self.set_timer(
                Timer::Retransmit,
                Some(now + self.rtt.backed_off(self.backoff)),
            );
        }
    }

    /// The next segment to send, or `None`. One segment per call (bounded work).
    pub fn poll_segment(&mut self, now: Instant) -> Option<Segment> {
        self.poll_segment_with(now, None)
    }

    /// [`Tcb::poll_segment`], asking `new_data_reserve(offset)` how many option bytes to
    /// reserve (instead of [`Tcb::set_reserved_option_len`]'s) when the segment carries data
    /// from stream offset `offset` on (new data, and with SACK retransmissions too). The
    /// MPTCP layer reserves room for a DSS mapping only on the first segment of a mapping
    /// that covers several segments; pure ACKs and SYNs keep the reservation set with
    /// `set_reserved_option_len`.
    pub fn poll_segment_with(
        &mut self,
        now: Instant,
        new_data_reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        if let Some(r) = self.rst_reply.take() {
            let mut repr = TcpRepr {
                src_port: self.params.local_port,
                dst_port: self.params.remote_port,
                seq: r.seq,
                ack: r.ack.unwrap_or(0),
                flags: TcpFlags(TcpFlags::RST | if r.ack.is_some() { TcpFlags::ACK } else { 0 }),
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
            };
            if self.ts_enabled && self.state != TcpState::Closed {
                repr.options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: self.ts_recent,
                });
            }
            return Some(Segment {
                repr,
                data: 0..0,
                retransmission: false,
                probe: false,
                reset_reply: r.closed,
            });
        }
        match self.state {
            TcpState::Closed | TcpState::Listen => None,
            TcpState::SynSent | TcpState::SynReceived => {
                if !self.syn_pending {
                    return self.pure_ack(now);
                }
                self.syn_pending = false;
                let flags = if self.state == TcpState::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let retransmission = self.snd_nxt > 0;
                if retransmission {
                    self.retransmits += 1;
                    self.timed = None;
                } else {
                    self.timed = Some((1, now));
                }
                self.snd_nxt = 1;
                let repr = self.make_repr(now, 0, flags);
                self.arm_rto(now);
                Some(Segment {
                    repr,
                    data: 0..0,
                    retransmission,
                    probe: false,
                    reset_reply: false,
                })
            }
            TcpState::TimeWait | TcpState::FinWait2 if !self.can_send_data() => {
                if self.fin_sent && self.snd_una <= self.fin_seq() {
                    return self.send_data(now, new_data_reserve);
                }
                self.pure_ack(now)
            }
            _ => self.send_data(now, new_data_reserve),
        }
    }

    pub(super) fn pure_ack(&mut self, now: Instant) -> Option<Segment> {
        if !self.ack_now {
            return None;
        }
        //= rfc9293#3.10.7.4
        //# SYN-RECEIVED answers an unacceptable segment (the crossing SYN-ACK of a simultaneous open) with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        let ok = self.state.is_synchronized()
            || (self.state == TcpState::SynReceived && self.snd_nxt >= 1);
        if !ok {
            return None;
        }
        let repr = self.make_repr(now, self.snd_nxt, TcpFlags::ACK);
        Some(Segment {
            repr,
            data: 0..0,
            retransmission: false,
            probe: false,
            reset_reply: false,
        })
    }

    /// Pacing rate in bytes per second: the congestion controller's hint if it gives one,
    /// else 2 × cwnd / SRTT in slow start and 1.2 × cwnd / SRTT after (Linux's defaults);
    /// `None` before an RTT sample or with pacing off.
    pub fn pacing_rate(&self) -> Option<u64> {
        if !self.cfg.pacing {
            return None;
        }
        if let Some(rate) = self.cc.pacing_rate(self.rtt.srtt()) {
            return Some(rate.max(1));
        }
        let srtt = self.rtt.srtt()?.as_micros() as u64;
        if srtt == 0 {
            return None;
        }
        let cwnd = self.cc.cwnd() as u64;
        let factor = if cwnd < self.cc.ssthresh() as u64 {
            200
        } else {
            120
        };
        Some(cwnd.saturating_mul(factor).saturating_mul(10_000) / srtt)
    }

    pub(super) fn pacing_blocked(&mut self, now: Instant) -> bool {
        match self.pace_next {
            Some(t) if t > now => {
                self.set_timer(Timer::Pacing, Some(t));
                true
            }
            _ => false,
        }
    }

    pub(super) fn paced(&mut self, now: Instant, wire_len: usize) {
        let Some(rate) = self.pacing_rate() else {
            self.pace_next = None;
            return;
        };
        // A driver that wakes up late may catch up by at most PACING_CREDIT.
        let base = self.pace_next.unwrap_or(now).max(now - PACING_CREDIT);
        let us = (wire_len as u64).saturating_mul(1_000_000) / rate.max(1);
        self.pace_next = Some(base + Duration::from_micros(us));
    }

    pub(super) fn send_data(
        &mut self,
        now: Instant,
        reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        self.update_persist(now);
        let forced = self.fast_rexmit;
        let blocked = !forced && self.pacing_blocked(now);
        let seg = self.send_data_inner(now, blocked, reserve)?;
        if !seg.data.is_empty() || seg.repr.flags.fin() {
            let opts = seg.repr.options.padded_len();
            self.paced(now, (seg.data.end - seg.data.start) as usize + 40 + opts);
        }
        Some(seg)
    }

    pub(super) fn send_data_inner(
        &mut self,
        now: Instant,
        blocked: bool,
        reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        let max_payload = self.max_payload();
        let mut reserve = reserve;
        if self.sack_enabled {
            return self.send_data_sack(now, blocked, &mut reserve, max_payload);
        }

        // (1) The forced first retransmission of fast recovery.
        if self.fast_rexmit {
            self.fast_rexmit = false;
            if self.snd_una < self.snd_nxt {
                let p = self.snd_una;
                return Some(self.retransmit(now, p, self.snd_nxt, max_payload));
            }
        }
        if blocked {
            return self.probe_or_ack(now);
        }
        let cwnd_avail = self.send_allowance();

        // (2) NextSeg rule 1: the first lost, not yet retransmitted range (without SACK:
        // everything after an RTO).
        if self.rto_recovery {
            let p = self.high_rxt.max(self.snd_una);
            if p < self.snd_nxt {
                //= rfc6675#4
                //# NextSeg (1): the first un-SACKed sequence number > HighRxt that IsLost, if cwnd - pipe >= 1 SMSS
                if cwnd_avail >= max_payload.min(self.snd_nxt - p) {
                    return Some(self.retransmit(now, p, self.snd_nxt, max_payload));
                }
                return self.pure_ack(now);
            }
        }

        // (3) NextSeg rule 2: new data.
        if let Some(seg) = self.send_new_reserved(now, cwnd_avail, &mut reserve) {
            return Some(seg);
        }
        self.probe_or_ack(now)
    }

    /// [`Tcb::send_data_inner`] for a SACK peer: the forced first retransmission of a fast
    /// recovery, a due tail loss probe, lost ranges lowest first, new data; all but the first
    /// two within [`Tcb::send_allowance`].
    pub(super) fn send_data_sack(
        &mut self,
        now: Instant,
        blocked: bool,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
        max_payload: u64,
    ) -> Option<Segment> {
        //= rfc6675#5
        //# (4.3) retransmit the first segment presumed dropped
        if self.fast_rexmit {
            self.fast_rexmit = false;
            if let Some((s, e)) = self.lost.first() {
                return Some(self.retransmit_reserved(now, s, e, reserve));
            }
        }
        if self.probe_due {
            self.probe_due = false;
            if let Some(seg) = self.send_probe(now, reserve, max_payload) {
                return Some(seg);
            }
        }
        if blocked {
            return self.probe_or_ack(now);
        }
        let allowance = self.send_allowance();
        if self.frto_new_data() {
            if let Some(seg) = self.send_new_reserved(now, allowance, reserve) {
                return Some(seg);
            }
        }
        if let Some((s, e)) = self.lost.first() {
            if allowance >= max_payload.min(e - s) {
                return Some(self.retransmit_reserved(now, s, e, reserve));
            }
            return self.probe_or_ack(now);
        }
        if let Some(seg) = self.send_new_reserved(now, allowance, reserve) {
            return Some(seg);
        }
        self.probe_or_ack(now)
    }

    /// [`Tcb::retransmit`] with the caller's option reservation for the bytes at `p`: the
    /// MPTCP layer needs room for a DSS only where a mapping starts (TCP delivers in order,
    /// so the receiver has the mapping before any byte that continues it), so a whole
    /// segment goes again as one segment.
    pub(super) fn retransmit_reserved(
        &mut self,
        now: Instant,
        p: u64,
        hole_end: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Segment {
        self.with_reservation_at(p, reserve, |t, max_payload| {
            t.retransmit(now, p, hole_end, max_payload)
        })
    }

    /// New data within `avail` bytes, with the caller's option reservation for it.
    pub(super) fn send_new_reserved(
        &mut self,
        now: Instant,
        avail: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        let at = self.snd_nxt;
        self.with_reservation_at(at, reserve, |t, max_payload| {
            t.send_new(now, avail, max_payload)
        })
    }

    /// Runs `f` with the payload size of a segment from sequence offset `seq` on: the
    /// caller's reservation for that stream offset (the sizing and the header of this
    /// segment only), else the one set with [`Tcb::set_reserved_option_len`].
    pub(super) fn with_reservation_at<R>(
        &mut self,
        seq: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
        f: impl FnOnce(&mut Tcb, u64) -> R,
    ) -> R {
        let saved = self.reserved_opt;
        if let Some(r) = reserve.as_mut().filter(|_| seq >= 1) {
            self.reserved_opt = r(seq - 1).min(MAX_OPTION_SPACE);
        }
        let max_payload = self.max_payload();
        let out = f(self, max_payload);
        self.reserved_opt = saved;
        out
    }

    /// Payload bytes of a full segment with the current option reservation.
    pub(super) fn max_payload(&self) -> u64 {
        self.snd_mss.saturating_sub(self.option_len()).max(1) as u64
    }

    pub(super) fn probe_or_ack(&mut self, now: Instant) -> Option<Segment> {
        // (5) Zero-window probe.
        if self.probe_pending {
            self.probe_pending = false;
            //= rfc9293#3.8.6.1
            //# a zero-window probe elicits an ACK carrying the current window (sent with an old sequence number)
            let repr = self.make_repr(now, self.snd_una.saturating_sub(1), TcpFlags::ACK);
            let at = now + self.rtt.backed_off(self.persist_backoff);
            self.set_timer(Timer::Persist, Some(at));
            return Some(Segment {
                repr,
                data: 0..0,
                retransmission: false,
                probe: true,
                reset_reply: false,
            });
        }
        self.pure_ack(now)
    }

    /// Retransmits from `p` up to `hole_end` (at most one segment); FIN included if it is the
    /// last thing in the hole.
    pub(super) fn retransmit(
        &mut self,
        now: Instant,
        p: u64,
        hole_end: u64,
        max_payload: u64,
    ) -> Segment {
        let data_end = self.data_end();
        let mut flags = TcpFlags::ACK;
        let data_hi = (p + max_payload)
            .min(hole_end)
            .min(data_end)
            .min(self.next_boundary(p));
        let data = if p < data_end { p..data_hi } else { p..p };
        let mut end = data.end;
        if self.fin_sent && end == data_end && hole_end > data_end {
            flags |= TcpFlags::FIN;
            end += 1;
        }
        if !data.is_empty() && end == data_end {
            flags |= TcpFlags::PSH;
        }
        self.high_rxt = self.high_rxt.max(end);
        self.lost.remove(p, end);
        self.sent_log.on_send(p, end, now, true);
        self.prr_sent(end - p);
        if let Some(u) = self.undo_retrans.as_mut() {
            *u += end - p;
        }
        self.episode_rexmits += 1;
        self.retransmits += 1;
        self.timed = None;
        let repr = self.make_repr(now, p, flags);
        if self.episode_rexmits == 1 {
            self.undo_tsval = repr.options.timestamps.map(|t| t.tsval);
        }
        if p == self.snd_una && (self.rto_recovery || self.in_recovery) {
            // The head went again: the timer runs from this retransmission (Linux); after a
            // timeout its first ACK tells whether the timeout was spurious (Eifel).
            self.rto_undo_pending =
                self.rto_recovery && self.backoff == 1 && self.episode_rexmits == 1;
            self.set_timer(
                Timer::Retransmit,
                Some(now + self.rtt.backed_off(self.backoff)),
            );
        }
        self.arm_rto(now);
        if self.timer(Timer::Probe).is_none() {
            self.arm_probe(now);
        }
        Segment {
            repr,
            data: data.start.saturating_sub(1)..data.end.saturating_sub(1),
            retransmission: true,
            probe: false,
            reset_reply: false,
        }
    }

    pub(super) fn send_new(
        &mut self,
        now: Instant,
        cwnd_avail: u64,
        max_payload: u64,
    ) -> Option<Segment> {
        if !self.can_send_data() {
            return None;
        }
        let data_end = self.data_end();
        let fin_pending = self.fin_queued && !self.fin_sent;
        if self.snd_nxt > data_end || (self.snd_nxt == data_end && !fin_pending) {
            return None;
        }
        // A segment never crosses a boundary the MPTCP layer marked: up to it, a short
        // segment counts as a full one (it cannot grow).
        let run_end = data_end.min(self.next_boundary(self.snd_nxt));
        let avail = run_end - self.snd_nxt;
        let rwnd_avail = (self.snd_una + self.snd_wnd).saturating_sub(self.snd_nxt);
        let len = avail.min(max_payload).min(rwnd_avail).min(cwnd_avail);
        let nothing_in_flight = self.snd_nxt == self.snd_una;
        if avail > 0 {
            if len == 0 {
                return None;
            }
            if len < max_payload && len < avail {
                //= rfc9293#3.8.6.2.1
                //# sender SWS avoidance: send a partial segment only if at least half the max window fits, or nothing is in flight
                let sws_ok = len >= self.max_snd_wnd / 2 && len == rwnd_avail.min(len);
                if !(nothing_in_flight || sws_ok && cwnd_avail > len) {
                    return None;
                }
            }
            //= rfc9293#3.7.4
            //# Nagle: hold a small segment while unacknowledged data is outstanding
            let at_boundary = len == avail && run_end < data_end;
            if self.cfg.nagle
                && len < max_payload
                && !nothing_in_flight
                && !fin_pending
                && !at_boundary
            {
                return None;
            }
        }
        let start = self.snd_nxt;
        let mut end = start + len;
        let mut flags = TcpFlags::ACK;
        if len > 0 && end == data_end {
            flags |= TcpFlags::PSH;
        }
        if fin_pending && end == data_end {
            flags |= TcpFlags::FIN;
            self.fin_sent = true;
            end += 1;
        }
        if len == 0 && flags & TcpFlags::FIN == 0 {
            return None;
        }
        if self.timed.is_none() && !self.ts_enabled && !self.rto_recovery && !self.in_recovery {
            self.timed = Some((end, now));
        }
        self.snd_nxt = end;
        self.high_rxt = self.high_rxt.max(self.snd_una);
        self.bytes_sent += len;
        self.sent_log.on_send(start, end, now, false);
        self.prr_sent(end - start);
        let repr = self.make_repr(now, start, flags);
        self.arm_rto(now);
        self.arm_probe(now);
        Some(Segment {
            repr,
            data: start - 1..start - 1 + len,
            retransmission: false,
            probe: false,
            reset_reply: false,
        })
    }

    /// The payload bytes of a segment returned by [`Tcb::poll_segment`] (call before the next
    /// `handle_segment`, which may free acknowledged bytes); empty when the owner keeps the
    /// bytes ([`Tcb::count_send_bytes_only`]).
    pub fn payload(&self, seg: &Segment) -> Payload<'_> {
        self.send.slice(seg.data.start, seg.data.end)
    }
}
