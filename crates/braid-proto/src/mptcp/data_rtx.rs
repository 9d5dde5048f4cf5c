//! The data level's own retransmission and the end of the stream for an
//! [`MptcpConnection`]: the data-level timer that moves bytes not DATA_ACKed in time to
//! another subflow (RFC 8684 §3.3.6), and the DATA_FIN, sent once every byte went to a
//! subflow, retransmitted until DATA_ACKed, and only then followed by the subflows' FINs
//! (§3.3.3); once both DATA_FINs are acknowledged, subflows that do not close in time are
//! reset ([`MptcpConnection::close_deadline`], from the timer pair).
//!
//! A child module of `connection` (it reaches the connection's private state), like
//! `addr.rs`; the hooks are [`MptcpConnection::arm_data_rtx`] and
//! [`MptcpConnection::data_rtx_fired`] from the timer pair, [`MptcpConnection::close_subflows`]
//! from `poll_segment`, [`MptcpConnection::holds_unacked`] from `apply` and
//! [`MptcpConnection::data_fin_instead_of_mpc`] from `add_options`.

use super::*;

impl MptcpConnection {
    //= rfc8684#3.3.6
    //= Data that is not DATA_ACKed in time is sent again on another subflow: the peer may
    //  have acknowledged it at the subflow level and still not delivered it (Linux holds
    //  in-order data back in a subflow while out-of-order data fills its receive buffer,
    //  and drops what a closing subflow held; Linux's own sender retransmits at the data
    //  level for the same reason).
    /// Keeps the data-level retransmission timer armed while data or the DATA_FIN is
    /// outstanding: it runs from the last DATA_ACK progress, for the largest RTO among the
    /// usable subflows (at least [`DATA_RTX_MIN`]), doubled after each expiry without
    /// progress.
    pub(super) fn arm_data_rtx(&mut self, now: Instant) {
        let una = self.send.una();
        if self.fallback || self.neg.is_none() || !self.data_outstanding() {
            self.rtx = DataRtx::default();
            return;
        }
        if self.rtx.at.is_some() && self.rtx.una == una {
            return;
        }
        if self.rtx.una != una {
            self.rtx.backoff = 0;
        }
        self.rtx.una = una;
        let rto = self
            .subflows
            .iter()
            // Stale subflows, in RTO backoff, would stretch the timer when it matters most.
            .filter(|s| Self::open_for_data(s) && !s.dead && !s.stale)
            .map(|s| s.tcb.rto())
            .max()
            .unwrap_or(DATA_RTX_MIN)
            .max(DATA_RTX_MIN);
        let factor = 1u32 << self.rtx.backoff.min(6);
        self.rtx.at = Some(now + rto.saturating_mul(factor).min(DATA_RTX_MAX));
    }

    /// True while bytes handed to the subflows, or the DATA_FIN once sent, wait for a
    /// DATA_ACK.
    fn data_outstanding(&self) -> bool {
        self.send.una() < self.send.nxt() || (self.send.fin_sent() && !self.send.fin_acked())
    }

    /// The timer fired: with the DATA_ACK where it was, the first unacknowledged bytes (one
    /// mapping's worth) are queued for reinjection, on another subflow when there is one,
    /// else on any that can take them (the same one included); a DATA_FIN alone
    /// outstanding goes again on a pure ACK.
    pub(super) fn data_rtx_fired(&mut self, _now: Instant) {
        self.rtx.at = None;
        let (una, nxt) = (self.send.una(), self.send.nxt());
        if self.fallback || !self.data_outstanding() || una != self.rtx.una {
            return;
        }
        self.rtx.backoff = self.rtx.backoff.saturating_add(1);
        if una >= nxt {
            //= rfc8684#3.3.3
            //= The DATA_FIN is retransmitted until it is acknowledged: it rides on every pure
            //   ACK until then, so one ACK on a subflow that can still send carries it again
            //   (Linux's MPTCP retransmission timer does the same).
            if self.rtx.backoff > self.cfg.tcp.max_retransmissions {
                // As many tries as a subflow's TCP makes for its data (about two minutes):
                // the peer is gone; the connection ends timed out instead of waiting for
                // ever (pure ACKs time nothing out at the TCP level).
                self.fast_close(ConnectionError::TimedOut);
                return;
            }
            self.kick_data_fin();
            return;
        }
        if self.reinject.iter().any(|r| r.range.start <= una) {
            return;
        }
        //= rfc8684#3.3.4
        //= Bytes beyond the peer's data-level window (the window probe) wait for the window,
        //  not for another path: reinjecting them cannot get them delivered sooner. A probe
        //  the peer answers brings the window back.
        if una >= self.send.right_edge() {
            self.probe_closed_window();
            return;
        }
        let end = nxt.min(una + crate::sched::SEND_BURST);
        // Data-level retransmission moves bytes to another subflow when there is one.
        // While one subflow alone carried them, they go elsewhere first: its TCP delivered
        // them or still holds them, and a peer that does not read keeps them in that
        // subflow's queue. Once several carried them (an unanswered retransmission), any
        // of those may take them again.
        let mut carriers = self.subflows.iter().enumerate().filter(|(_, s)| {
            s.tx.data_ranges_from(0)
                .any(|r| r.start <= una && una < r.end)
        });
        let from = match (carriers.next(), carriers.next()) {
            (Some((only, _)), None) => only,
            _ => usize::MAX,
        };
        // Somewhere else to send them: a working subflow other than `from` that is not a
        // backup (a backup takes them only when no other subflow works, and a scheduler
        // keeps a reinjection off it while one does), and whose TCP does not still hold
        // some of them unacknowledged (a closed window, a recovery in progress): its own
        // TCP sends those.
        let range = una..end;
        let elsewhere = self.subflows.iter().enumerate().any(|(id, s)| {
            id != from
                && Self::open_for_data(s)
                && !s.dead
                && !s.stale
                && !s.backup
                && !Self::holds_unacked(s, &range)
        });
        //= rfc8684#3.3.6
        //= With nowhere else to go, the bytes go again on any subflow that can take them,
        //  the one that carried them included: its TCP delivered them, yet the peer may
        //  have dropped them at the data level after acknowledging them (Linux does when
        //  its MPTCP receive memory is full), and only a data-level retransmission, a new
        //  mapping of the same data, brings them (Linux's MPTCP retransmits on any subflow).
        let from = if elsewhere {
            from
        } else if self
            .subflows
            .iter()
            .any(|s| Self::open_for_data(s) && !s.dead && !Self::holds_unacked(s, &range))
        {
            usize::MAX
        } else {
            return;
        };
        self.reinject.push(Reinject { range, from });
        self.reinject.sort_by_key(|r| r.range.start);
        self.counters.MPTCPRetrans += 1;
    }

    /// True when the TCP of `s` still holds some of the data `range` unacknowledged (queued
    /// or in flight): it sends them itself, so a reinjection of them there would only
    /// duplicate them on the same path.
    pub(super) fn holds_unacked(s: &Subflow, range: &core::ops::Range<u64>) -> bool {
        s.tx.data_ranges_from(s.tcb.snd_una_offset())
            .any(|r| r.start < range.end && range.start < r.end)
    }

    /// Sends a zero-window probe on one subflow that can still send (working subflows
    /// first, a different one after each expiry of the data-level timer): its answer
    /// carries the peer's current window, also when the window update after the peer's
    /// application read was lost and the bytes beyond the window were acknowledged at the
    /// subflow level (so no TCP persist timer runs).
    fn probe_closed_window(&mut self) {
        let mut order: Vec<(bool, usize)> = self
            .subflows
            .iter()
            .enumerate()
            .filter(|(_, s)| Self::open_for_data(s) && !s.dead)
            .map(|(i, s)| (s.stale || s.backup, i))
            .collect();
        order.sort_unstable();
        if order.is_empty() {
            return;
        }
        let turn = self.rtx.backoff as usize % order.len();
        if let Some(s) = order.get(turn).and_then(|&(_, i)| self.subflows.get_mut(i)) {
            s.tcb.probe_window();
        }
    }

    /// Asks one subflow that can still send for a pure ACK, which carries the DATA_FIN:
    /// working subflows first, stale or backup ones after them, a different one after each
    /// expiry of the data-level timer (a path may have died without its TCP noticing, since
    /// pure ACKs are not retransmitted).
    fn kick_data_fin(&mut self) {
        let mut order: Vec<(bool, usize)> = self
            .subflows
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.usable() && s.tcb.state().is_synchronized() && s.tcb.state() != TcpState::TimeWait
            })
            .map(|(i, s)| (s.stale || s.backup, i))
            .collect();
        order.sort_unstable();
        if order.is_empty() {
            return;
        }
        let turn = self.rtx.backoff as usize % order.len();
        if let Some(s) = order.get(turn).and_then(|&(_, i)| self.subflows.get_mut(i)) {
            s.tcb.request_ack();
        }
    }

    //= rfc8684#3.3.3
    //= The DATA_FIN follows every data byte and is retransmitted until DATA_ACKed; only
    //   then are the subflows closed (their FINs say nothing at the data level). Linux
    //   sends it on a pure ACK or the last data and closes a subflow whose FIN comes
    //   before the DATA_FIN as a lost subflow, dropping the DATA_FIN riding on it.
    /// Sends the DATA_FIN once every byte went to a subflow, and closes the subflows once
    /// it is acknowledged. In fallback the subflow's FIN is the DATA_FIN.
    pub(super) fn close_subflows(&mut self) {
        if !self.send.fin_ready() || !self.reinject.is_empty() {
            return;
        }
        if !self.fallback && !self.send.fin_acked() {
            // The DATA_FIN rides on the last mapping when that one has not gone out yet,
            // otherwise on a pure ACK. An unconfirmed client's segments carry MP_CAPABLE
            // instead: it waits for the server's DSS.
            let unconfirmed = self.hs.state() == HandshakeState::ClientUnconfirmed;
            let may = !unconfirmed || self.data_fin_instead_of_mpc();
            if !self.send.fin_sent() && may && self.neg.is_some() {
                let pending_mapping = self
                    .subflows
                    .iter()
                    .any(|s| !s.dead && !s.stale && s.tx.last_unsealed());
                if !pending_mapping {
                    self.kick_data_fin();
                }
            }
            return;
        }
        let fallback = self.fallback;
        for s in &mut self.subflows {
            if Self::open_for_data(s) && !s.dead {
                if fallback {
                    // The FIN waits for the subflow's last byte: nothing follows it.
                    let unsent = s.tcb.send_queued() as u64
                        > s.tcb
                            .snd_nxt_offset()
                            .saturating_sub(s.tcb.snd_una_offset());
                    if unsent && !s.tx.last_unsealed() {
                        continue;
                    }
                }
                s.tcb.close();
                s.fin_closed = true;
                if fallback {
                    self.send.mark_fin_sent();
                }
            }
        }
    }

    //= rfc8684#3.1
    //= An unconfirmed client repeats MP_CAPABLE until the server's DSS; with no data
    //   outstanding and its keys sent once, its pure ACKs carry the DATA_FIN instead (a
    //   connection closed without data would otherwise never end; Linux does the same).
    /// Client: a pure ACK carries a DSS with the DATA_FIN rather than MP_CAPABLE.
    pub(super) fn data_fin_instead_of_mpc(&self) -> bool {
        self.mpc_ack_sent
            && self.send.fin_ready()
            && !self.send.fin_acked()
            && self.send.una() >= self.send.nxt()
    }

    //= rfc8684#3.3.3
    //= Once both DATA_FINs are acknowledged the connection is closed; subflows that do not
    //  finish their own close in time (the peer's FIN or RST lost, with nothing left to
    //  retransmit on our side) are reset, as Linux does after `close_timeout`.
    /// The time the subflows still open are reset, while any is.
    pub(super) fn close_deadline(&self) -> Option<Instant> {
        let at = self.data_closed_at?;
        (!self.is_closed()).then(|| at + self.cfg.close_timeout)
    }

    /// Notes when both DATA_FINs were acknowledged.
    pub(super) fn note_data_closed(&mut self, now: Instant) {
        if self.data_closed_at.is_none()
            && !self.fallback
            && self.recv.fin_reached()
            && self.send.fin_acked()
        {
            self.data_closed_at = Some(now);
        }
    }
}
