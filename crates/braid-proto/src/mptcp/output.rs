//! A connection's output: reaping what the peer acknowledged, the scheduler's rounds,
//! window probes, and each segment's MPTCP options.

use super::*;

impl MptcpConnection {
    /// Data ranges handed to subflow `s` and not yet DATA_ACKed, as reinjection candidates.
    pub(super) fn stuck_on(s: &Subflow, id: SubflowId, una: u64, from_sub: u64) -> Vec<Reinject> {
        s.tx.data_ranges_from(from_sub)
            .filter(|r| r.end > una)
            .map(|r| Reinject {
                range: r.start.max(una)..r.end,
                from: id,
            })
            .collect()
    }

    /// Marks closed subflows dead and stale subflows stale, queueing their data not yet
    /// DATA_ACKed for reinjection on the others; a stale subflow that makes progress again
    /// recovers.
    pub(super) fn reap(&mut self) {
        let una = self.send.una();
        let usable = self.subflows.iter().filter(|s| s.usable()).count();
        let mut released = false;
        for id in 0..self.subflows.len() {
            let Some(s) = self.subflows.get_mut(id) else {
                continue;
            };
            if !s.dead && s.tcb.state() == TcpState::Closed {
                s.dead = true;
                released = true;
                //= rfc8684#3.3.6
                //= Data sent on a subflow that fails and not yet DATA_ACKed is sent again on
                //   another subflow (the DATA_ACK, not the subflow ACK, proves delivery).
                let stuck = Self::stuck_on(s, id, una, 0);
                self.reinject.extend(stuck);
                continue;
            }
            if s.dead || !s.usable() || self.fallback {
                continue;
            }
            //= rfc8684#3.3.6
            //= A subflow that stalled (an RTO without an acknowledgment since, or unanswered
            //   zero-window probes with data waiting) is stale: it gets no new data and what
            //   it holds beyond the DATA_ACK is reinjected on the others, so a dead path costs
            //   about one RTO (Linux: mptcp_subflow_get_retrans and the stale subflow logic
            //   of the in-kernel path manager).
            let stale = s.tcb.is_stalled();
            if stale && !s.stale && usable > 1 {
                s.stale = true;
                s.stale_count += 1;
                self.counters.SubflowStale += 1;
                // Everything it carried that is not DATA_ACKed, also what its peer
                // acknowledged there: a peer may hold such bytes in the subflow without
                // having delivered them (Linux does when its receive buffer is full), and
                // with the path dead they would never come out.
                let stuck = Self::stuck_on(s, id, una, 0);
                self.reinject.extend(stuck);
            } else if !stale && s.stale {
                s.stale = false;
                self.counters.SubflowRecover += 1;
            }
        }
        self.reinject.retain_mut(|r| {
            r.range.start = r.range.start.max(una);
            r.range.start < r.range.end
        });
        if released {
            // A closed subflow sends nothing again: what only it needed goes.
            self.release_sent();
        }
        //= rfc8684#3.3.3
        //= Once the DATA_FIN is acknowledged every byte is delivered: a stale subflow, which
        //   cannot complete its FIN exchange, is reset rather than left to time out (Linux
        //   resets the subflows that linger after the MPTCP-level close).
        if self.send.fin_acked() {
            for s in &mut self.subflows {
                if s.stale && !s.dead && s.tcb.state() != TcpState::Closed {
                    s.tcb.abort();
                }
            }
        }
    }

    /// A subflow that may carry data now.
    pub(super) fn open_for_data(s: &Subflow) -> bool {
        s.usable() && !s.fin_closed
    }

    /// Hands data-level bytes to the subflows as the scheduler decides: rounds of
    /// [`Scheduler::schedule`] until it assigns nothing (bounded). With more than one
    /// usable subflow each subflow's queue is capped at its congestion window, so data is
    /// committed to a path only about one round trip ahead (less head-of-line blocking,
    /// and reinjections wait behind at most that).
    pub(super) fn schedule(&mut self) {
        if self.neg.is_none() && !self.fallback {
            return;
        }
        let usable = self
            .subflows
            .iter()
            .filter(|s| Self::open_for_data(s))
            .count();
        let multi = usable > 1;
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        for _ in 0..MAX_SCHED_ROUNDS {
            let window_new = self.send.unsent().min(self.send.window_left());
            if window_new == 0 && self.reinject.is_empty() {
                break;
            }
            self.views.clear();
            for (id, s) in self.subflows.iter().enumerate() {
                let open = Self::open_for_data(s) && !s.dead;
                let mut v =
                    SubflowView::from_tcb(id, &s.tcb, open, s.backup, s.stale, s.stale_count);
                if multi {
                    v.send_space = v.send_space.min(Self::subflow_room(&s.tcb, &v, cont));
                    v.mss = data_mss(&s.tcb, DSS_OPTION_SPACE);
                }
                self.views.push(v);
            }
            // No subflow may take anything: no scheduler can assign (the trait's contract),
            // so it is not asked. This is most calls while a bulk sender's subflows are full.
            if self
                .views
                .iter()
                .all(|v| v.send_space == 0 || !v.is_active())
            {
                break;
            }
            let nxt = self.send.nxt();
            let input = SchedInput {
                subflows: &self.views,
                new_data: nxt..nxt + window_new,
                reinject: &self.reinject,
                send_window: self.send.right_edge().saturating_sub(self.send.una()),
                stream_end: self.send.fin(),
            };
            self.assignments.clear();
            self.sched.schedule(&input, &mut self.assignments);
            if self.assignments.is_empty() {
                break;
            }
            let mut progress = false;
            let assignments = core::mem::take(&mut self.assignments);
            for a in &assignments {
                progress |= self.apply(a);
            }
            self.assignments = assignments;
            if !progress {
                break;
            }
        }
        self.window_probe();
    }

    /// How much new data subflow `v` may take now when several subflows share the data:
    /// enough to keep its congestion window full plus at most [`SEND_AHEAD`] bytes queued
    /// behind it, handed over only once that queue has run down to half, so that each
    /// assignment is one long DSS mapping (most of whose segments carry no DSS) rather than
    /// the two segments an ACK frees. Rounded to whole segments (a mapping's first one
    /// carries the DSS, the others `cont` option bytes), as a run never shares a segment
    /// with the next one and a remainder would go as a short segment.
    pub(super) fn subflow_room(tcb: &Tcb, v: &SubflowView, cont: usize) -> u64 {
        // What the subflow still has to get across: its unsent bytes and those in the
        // network. SACKed bytes do not count: during loss recovery the cumulative ACK
        // stands still for a round trip, and counting them would starve the subflow while
        // its path has room.
        let queued = v.queued_bytes.saturating_sub(v.in_flight) + tcb.pipe();
        // In slow start the window doubles every round trip: the subflow holds up to twice
        // its window and takes data whenever it has room (holding it back until half a
        // mapping drained would slow the ramp).
        let slow_start = tcb.cwnd() < tcb.ssthresh();
        let extra = if slow_start {
            v.cwnd.max(SEND_AHEAD)
        } else {
            SEND_AHEAD
        };
        let room = (v.cwnd + extra).saturating_sub(queued);
        if queued > 0 && room < SEND_AHEAD / 2 && !slow_start {
            return 0;
        }
        let first = data_mss(tcb, DSS_OPTION_SPACE);
        let next = data_mss(tcb, cont);
        let room = room.min(crate::mptcp::mapping::MAX_MAPPING_LEN);
        if room < first {
            return if queued == 0 { first } else { 0 };
        }
        first + (room - first) / next * next
    }

    /// Writes one assignment into its subflow; true when bytes were taken.
    pub(super) fn apply(&mut self, a: &Assignment) -> bool {
        if a.range.is_empty() || (!a.reinjection && a.range.start != self.send.nxt()) {
            return false;
        }
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        let Some(s) = self.subflows.get_mut(a.subflow) else {
            return false;
        };
        if !Self::open_for_data(s) || s.dead {
            return false;
        }
        if a.reinjection && Self::holds_unacked(s, &a.range) {
            return false;
        }
        let max_len = mapping_len(&s.tcb, cont);
        let mut range = a.range.clone();
        if !a.reinjection {
            // With more data waiting behind it, a run that would end in a short segment
            // is padded to whole segments, within the subflow's send space: a short
            // segment costs a packet for a few bytes, and an odd one holds the peer's ACK
            // for its delayed-ACK timer. The padding is less than one segment, which
            // waits in the subflow until its window opens.
            let waiting = self.send.unsent().min(self.send.window_left());
            let space = self.views.get(a.subflow).map_or(0, |v| v.send_space);
            let limit = waiting.min(space);
            if a.len() < limit {
                let open = s.tx.open_len(s.written, range.start);
                let first = data_mss(&s.tcb, DSS_OPTION_SPACE);
                let next = data_mss(&s.tcb, cont);
                let pad = segment_padding(open, a.len(), max_len, first, next);
                range.end = (range.end + pad).min(range.start + limit);
            }
        }
        if !s.tx.has_room(range.end - range.start, max_len) {
            return false;
        }
        let bytes = self.send.slice(range.clone());
        if bytes.is_empty() {
            return false;
        }
        let n = s.tcb.write_parts(bytes) as u64;
        if n == 0 {
            return false;
        }
        // One DSS maps one contiguous run, and no segment straddles two mappings.
        let Subflow { tcb, tx, .. } = s;
        tx.record(s.written, range.start, n, max_len, |at| {
            tcb.mark_segment_boundary(at)
        });
        s.written += n;
        let taken = range.start..range.start + n;
        if a.reinjection {
            self.reinject_taken(&taken);
        } else {
            self.send.next_range(n as usize, false);
        }
        true
    }

    /// Removes `taken` from the reinjection queue.
    pub(super) fn reinject_taken(&mut self, taken: &core::ops::Range<u64>) {
        let mut rest = Vec::new();
        self.reinject.retain_mut(|r| {
            if r.range.end <= taken.start || r.range.start >= taken.end {
                return true;
            }
            if r.range.end > taken.end {
                rest.push(Reinject {
                    range: taken.end..r.range.end,
                    from: r.from,
                });
            }
            r.range.end = taken.start;
            r.range.start < r.range.end
        });
        self.reinject.extend(rest);
        self.reinject.sort_by_key(|r| r.range.start);
    }

    //= rfc8684#3.3.4
    //= A zero data-level window is probed like TCP's: one MSS beyond the window on an idle
    //   subflow, so the window update is not missed.
    pub(super) fn window_probe(&mut self) {
        if self.send.unsent() == 0 || self.send.window_left() > 0 || !self.reinject.is_empty() {
            return;
        }
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        // Only with nothing outstanding at the data level: a DATA_ACK still due reopens the
        // window, and probe bytes sent beyond it while another subflow carries data are
        // dropped by the peer (Linux counts NoDSSInWindow) and never sent again.
        if self.send.una() != self.send.nxt() {
            return;
        }
        if self
            .subflows
            .iter()
            .any(|s| Self::open_for_data(s) && s.tcb.send_queued() > 0)
        {
            return;
        }
        let nonbackup = self
            .subflows
            .iter()
            .any(|s| Self::open_for_data(s) && !s.backup && !s.stale);
        let Some(s) = self
            .subflows
            .iter_mut()
            .find(|s| Self::open_for_data(s) && !s.stale && s.backup != nonbackup)
        else {
            return;
        };
        let mss = s.tcb.effective_mss().max(1);
        let max_len = mapping_len(&s.tcb, cont);
        if s.tcb.send_capacity() == 0 || !s.tx.has_room(mss as u64, max_len) {
            return;
        }
        let Some(r) = self.send.next_range(mss, true) else {
            return;
        };
        let bytes = self.send.slice(r.clone());
        let n = s.tcb.write_parts(bytes) as u64;
        let Subflow { tcb, tx, .. } = s;
        tx.record(s.written, r.start, n, max_len, |at| {
            tcb.mark_segment_boundary(at)
        });
        s.written += n;
        if r.start + n < r.end {
            self.send.unsend(r.start + n);
        }
    }

    /// The next segment to send: subflow, header (with MPTCP options) and payload.
    /// The payload is borrowed from the subflow's send buffer, in one or two runs, to be
    /// copied once into the packet.
    pub fn poll_segment(&mut self, now: Instant) -> Option<(SubflowId, TcpRepr, Payload<'_>)> {
        self.reap();
        self.arm_data_rtx(now);
        self.schedule();
        self.close_subflows();
        let cont = self.continuation_option_space();
        for id in 0..self.subflows.len() {
            self.share_window(id);
            self.raise_send_window(now, id);
            let s = self.subflows.get_mut(id)?;
            // Data segments need the full DSS; pure ACKs only a DATA_ACK, and the space
            // they save goes to SACK blocks (the TCB sizes payload and SACK by the
            // reservation; switching keeps the congestion window in bytes).
            if !self.fallback {
                let want = if s.tcb.send_queued() > 0 {
                    DSS_OPTION_SPACE
                } else {
                    ACK_OPTION_SPACE
                };
                if want != s.reserved {
                    s.tcb.set_reserved_option_len(want);
                    s.reserved = want;
                }
            }
            // New data continuing a mapping already on the wire needs no DSS of its own
            // (a DATA_ACK only when data also flows the other way); everything else keeps
            // the full reservation.
            let seg = if self.fallback || cont.is_none() {
                s.tcb.poll_segment(now)
            } else {
                let cont = cont.unwrap_or(DSS_OPTION_SPACE);
                let Subflow { tcb, tx, .. } = &mut *s;
                let mut reserve = |off: u64| match tx.classify(off) {
                    TxSegment::Continuation => cont,
                    TxSegment::Start => DSS_OPTION_SPACE,
                };
                tcb.poll_segment_with(now, Some(&mut reserve))
            };
            let Some(mut seg) = seg else {
                continue;
            };
            self.window_advertised(&seg.repr);
            let s = self.subflows.get_mut(id)?;
            let payload_len = (seg.data.end - seg.data.start) as usize;
            s.tx.trim(s.tcb.snd_una_offset().min(seg.data.start), self.send.una());
            self.opt_limit = if payload_len == 0 {
                MAX_OPTION_SPACE
            } else {
                MAX_OPTION_SPACE.min(s.tcb.mss().saturating_sub(payload_len))
            };
            if seg.reset_reply {
                // A closed subflow's answer to a segment of its peer: a plain RST, as Linux
                // sends once the subflow's socket is gone (no MP_FASTCLOSE again, no
                // MP_TCPRST).
            } else if seg.probe {
                self.probe_options(id, &mut seg.repr);
            } else {
                self.add_options(id, &mut seg.repr, seg.data.clone());
            }
            // A segment without payload may carry more than the ACK reservation (a
            // DATA_FIN mapping, MP_CAPABLE): SACK blocks give way, the MPTCP option stays.
            while seg.repr.options.padded_len() > self.opt_limit
                && seg.repr.options.sack_blocks.pop().is_some()
            {}
            let payload = self.segment_payload(id, &seg);
            return Some((id, seg.repr, payload));
        }
        None
    }

    /// Frees the DATA_ACKed bytes that no subflow can send any more: below the lowest data
    /// offset any open subflow carries and has not had acknowledged (see
    /// [`DataSend::release`]).
    ///
    /// The buffer is one ring: a subflow that lags far behind (a path that died, its
    /// retransmissions backing off) would hold everything written after its bytes. Once it
    /// holds more than the buffer's capacity that way, it gets its own copy of its bytes
    /// (its TCB keeps them, as a plain TCP connection's does) and lets go of the ring.
    pub(super) fn release_sent(&mut self) {
        let una = self.send.una();
        if self.send.held_from() >= una {
            return;
        }
        let limit = self
            .send
            .end()
            .saturating_sub(self.send.capacity_total() as u64);
        let mut needed = una;
        for id in 0..self.subflows.len() {
            let Some(lo) = self.needed_by(id) else {
                continue;
            };
            if lo < limit && self.copy_out(id) {
                continue;
            }
            needed = needed.min(lo);
        }
        self.send.release(needed);
    }

    /// The lowest data offset subflow `id` may still send from the connection's buffer.
    fn needed_by(&self, id: SubflowId) -> Option<u64> {
        let s = self.subflows.get(id)?;
        if s.dead || s.tcb.state() == TcpState::Closed || s.tcb.keeps_send_bytes() {
            return None;
        }
        let una = s.tcb.snd_una_offset();
        s.tx.data_ranges_from(una).map(|r| r.start).min()
    }

    /// Subflow `id`'s TCB takes a copy of the bytes it holds (see `release_sent`).
    fn copy_out(&mut self, id: SubflowId) -> bool {
        let Some(s) = self.subflows.get_mut(id) else {
            return false;
        };
        let una = s.tcb.snd_una_offset();
        let parts: Vec<Payload<'_>> =
            s.tx.data_ranges_from(una)
                .map(|r| self.send.slice(r))
                .collect();
        s.tcb.keep_send_bytes(&parts)
    }

    /// The payload of subflow `id`'s segment at subflow offsets `data`: its bytes live in
    /// the data-level buffer (the TCB keeps none), at the data offsets its mapping gives.
    /// No segment straddles two mappings (a new one starts a segment), so they are one
    /// data range.
    fn segment_payload(&self, id: SubflowId, seg: &crate::tcp::Segment) -> Payload<'_> {
        let data = &seg.data;
        let len = data.end - data.start;
        let Some(s) = self.subflows.get(id).filter(|_| len > 0) else {
            return Payload::default();
        };
        if s.tcb.keeps_send_bytes() {
            // A subflow that lagged behind holds a copy of its own (see `release_sent`).
            return s.tcb.payload(seg);
        }
        let at = s.tx.lookup(data.start, len);
        match at {
            Some((d, n)) if n == len => self.send.slice(d..d + len),
            _ => {
                debug_assert!(false, "subflow {id} bytes {data:?} without one mapping");
                Payload::default()
            }
        }
    }

    /// Option bytes a new segment that continues a mapping reserves, or `None` while every
    /// segment must carry its own MPTCP option (the MP_CAPABLE repeats of an unconfirmed
    /// client, a pending MP_FAIL or infinite mapping). A DATA_ACK goes on such segments once
    /// data flows towards us too: without data from the peer there is nothing to
    /// acknowledge, and its pure ACKs carry the DATA_ACK anyway.
    pub(super) fn continuation_option_space(&self) -> Option<usize> {
        if self.hs.state() == HandshakeState::ClientUnconfirmed
            || self.mp_fail_tx.is_some()
            || self.infinite_tx_pending
        {
            return None;
        }
        // Until the peer's DSS shows it runs MPTCP in both directions, every segment carries
        // at least a DATA_ACK: an unconfirmed client takes a segment with no MPTCP option at
        // all for a middlebox stripping them.
        Some(if self.recv.next_expected() > 0 || !self.peer_dss_seen {
            ACK_OPTION_SPACE
        } else {
            0
        })
    }

    pub(super) fn add_options(
        &mut self,
        id: SubflowId,
        repr: &mut TcpRepr,
        data: core::ops::Range<u64>,
    ) {
        // The segment's payload: subflow offsets `data` of the subflow's send buffer.
        let sub = data.start;
        let payload_len = (data.end - data.start) as usize;
        if repr.flags.rst() {
            if self.fastclose && !self.fallback {
                if let Some(n) = self.neg {
                    repr.options.mptcp.push(MptcpOption::MpFastclose {
                        receiver_key: n.remote_key,
                    });
                    self.counters.MPFastcloseTx += 1;
                    return;
                }
            }
            if let Some(reason) = self.subflows.get_mut(id).and_then(|s| s.rst_reason.take()) {
                if !self.fallback {
                    repr.options
                        .mptcp
                        .push(MptcpOption::MpTcpRst { flags: 0, reason });
                    self.counters.MPRstTx += 1;
                }
            }
            if let Some(dsn) = self.subflows.get_mut(id).and_then(|s| s.rst_mp_fail.take()) {
                if !self.fallback {
                    repr.options.mptcp.push(MptcpOption::MpFail { dsn });
                    self.counters.MPFailTx += 1;
                }
            }
            return;
        }
        if self.fallback {
            return;
        }
        if let Some(j) = self.subflows.get(id).and_then(|s| s.join.map(|j| (s, j))) {
            let (s, j) = j;
            let Some(n) = self.neg else {
                return;
            };
            let opt = match (j.state, repr.flags.syn(), repr.flags.ack()) {
                (_, true, false) => Some(MptcpOption::MpJoinSyn {
                    backup: s.backup,
                    addr_id: s.local_id,
                    token: n.remote_token,
                    nonce: j.local_nonce,
                }),
                (_, true, true) => Some(MptcpOption::MpJoinSynAck {
                    backup: s.backup,
                    addr_id: s.local_id,
                    hmac: join_synack_hmac(
                        n.remote_key,
                        n.local_key,
                        j.remote_nonce,
                        j.local_nonce,
                    ),
                    nonce: j.local_nonce,
                }),
                //= rfc8684#3.2
                //= The third ACK (and its repeats until the responder acknowledges it)
                //   carries the 160-bit HMAC.
                (JoinState::AckSent, false, _) => Some(MptcpOption::MpJoinAck {
                    hmac: join_ack_hmac(n.local_key, n.remote_key, j.local_nonce, j.remote_nonce),
                }),
                (JoinState::Established, false, _) => None,
                _ => return,
            };
            if let Some(o) = opt {
                repr.options.mptcp.push(o);
                return;
            }
        }
        if repr.flags.syn() {
            let opt = if repr.flags.ack() {
                self.hs.syn_ack_option()
            } else {
                self.syns_sent += 1;
                if self.syns_sent > self.cfg.syn_retrans_before_tcp_fallback.saturating_add(1) {
                    // Linux: after this many MP_CAPABLE SYN retransmissions, plain SYNs (a
                    // SYN/ACK without MP_CAPABLE then falls back as usual).
                    self.counters.MPCapableSYNTXDrop += 1;
                    return;
                }
                self.hs.syn_option()
            };
            repr.options.mptcp.push(MptcpOption::MpCapable(opt));
            return;
        }
        let (Some(tx_space), Some(rx_space)) = (self.tx_space, self.rx_space) else {
            return;
        };
        let checksum = self.neg.is_some_and(|n| n.checksum);

        // The client repeats MP_CAPABLE until the server's first DSS.
        if id == 0 && self.hs.state() == HandshakeState::ClientUnconfirmed {
            if payload_len == 0 {
                if !self.data_fin_instead_of_mpc() {
                    if let Some(o) = self.hs.ack_option() {
                        repr.options.mptcp.push(MptcpOption::MpCapable(o));
                        self.mpc_ack_sent = true;
                        return;
                    }
                }
            } else if sub == 0 && payload_len <= usize::from(u16::MAX) {
                let len = payload_len as u16;
                // Subflow offset 0 carries data offset 0: the handshake's first byte.
                let payload = self.send.slice(0..u64::from(len));
                let sum = checksum.then(|| dss_checksum_parts(tx_space.dsn(0), 1, len, payload));
                if let Some(o) = self.hs.data_option(len, sum) {
                    repr.options.mptcp.push(MptcpOption::MpCapable(o));
                    self.mpc_ack_sent = true;
                    // That option maps exactly this segment: later bytes start a new
                    // mapping, and a retransmission once the handshake is confirmed
                    // carries the same mapping as a DSS.
                    // The same checksum: offset 0 is relative subflow sequence number 1.
                    let mut wire = tx_mapping_of(&tx_space, 0, 0, u64::from(len), false, None);
                    wire.checksum = sum;
                    if let Some(s) = self.subflows.get_mut(id) {
                        if let Some(at) = s.tx.seal_exact(0, u64::from(len), wire) {
                            s.tcb.mark_segment_boundary(at);
                        }
                    }
                    return;
                }
            }
        }

        let cont = self.continuation_option_space();
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let mut dss = Dss {
            data_ack: Some(rx_space.dsn(self.recv.data_ack())),
            data_ack_64: true,
            mapping: None,
            data_fin: false,
        };
        let fin = self.send.fin();
        if payload_len > 0 {
            // A retransmission that continues a mapping needs no DSS either: TCP delivers in
            // order, so the mapping's first segment (which carries it, first sent or again)
            // reaches the receiver before these bytes do.
            let continuation = cont.is_some() && s.tx.classify(sub) == TxSegment::Continuation;
            if continuation {
                //= rfc8684#3.3.1
                //= A mapping may cover the data of several segments: the segments after
                //   its first carry no mapping (the first and every retransmission do).
                if cont == Some(0) {
                    // No room for anything else either: a signal waiting for this subflow
                    // (MP_PRIO, an address) goes on the pure ACK that follows the data.
                    if s.prio_tx.is_some() || self.addr.has_pending() {
                        s.tcb.request_ack();
                    }
                    return;
                }
            } else {
                let fin_ready = self.send.fin_ready();
                let send = &self.send;
                let make = |msub: u64, data: u64, len: u64| {
                    let with_fin = fin == Some(data + len) && fin_ready;
                    // The checksum covers the whole mapping: its bytes are still held at the
                    // data level (the subflow has not acknowledged them yet).
                    let bytes = checksum.then(|| send.slice(data..data + len));
                    (
                        tx_mapping_of(&tx_space, msub, data, len, with_fin, bytes),
                        with_fin,
                    )
                };
                if let Some((m, with_fin)) = s.tx.seal(sub, make) {
                    dss.mapping = Some(m);
                    dss.data_fin = with_fin;
                }
            }
        } else if let Some(f) = fin.filter(|_| self.send.fin_ready() && !self.send.fin_acked()) {
            //= rfc8684#3.3.3
            //= A DATA_FIN without data: subflow sequence number 0, data-level length 1.
            dss.mapping = Some(tx_mapping(&tx_space, sub, f, &[], true, checksum));
            dss.data_fin = true;
        }
        let mut go_fallback = false;
        if self.infinite_tx_pending && payload_len > 0 {
            if let Some((data, _)) = s.tx.lookup(sub, 1) {
                //= rfc8684#3.7
                //= The infinite mapping: data-level length 0 (checksum 0), from the DSN of
                //   this segment's first byte on, the subflow carries the data stream as is.
                let mut m = DssMapping::infinite(tx_space.dsn(data), checksum);
                m.subflow_seq = crate::mptcp::mapping::relative_seq(sub);
                dss.mapping = Some(m);
                dss.data_fin = false;
                self.counters.InfiniteMapTx += 1;
                go_fallback = true;
            }
        }
        if dss.data_fin {
            self.send.mark_fin_sent();
        }
        repr.options.mptcp.push(MptcpOption::Dss(dss));
        if let Some(dsn) = self.mp_fail_tx {
            // MP_FAIL goes where it fits (pure ACKs: DATA_ACK + MP_FAIL + timestamps); SACK
            // blocks give way to it.
            let mut without_sack = repr.options.clone();
            without_sack.sack_blocks.clear();
            if without_sack.padded_len() + MP_FAIL_LEN <= MAX_OPTION_SPACE {
                repr.options.mptcp.push(MptcpOption::MpFail { dsn });
                if !self.mp_fail_emitted {
                    self.mp_fail_emitted = true;
                    self.counters.MPFailTx += 1;
                }
                if self.infinite_tx_pending {
                    // The echo goes once, before the infinite mapping.
                    self.mp_fail_tx = None;
                }
            }
        }
        if !go_fallback {
            self.addr_options(id, repr, payload_len > 0);
        }
        if go_fallback {
            self.infinite_tx_pending = false;
            self.enter_fallback();
        }
    }
}
