//! The connection-level receive window of an [`MptcpConnection`] (RFC 8684 §3.3.4): one
//! window, relative to the DATA_ACK, that every subflow advertises.
//!
//! The window's right edge is a data offset: the DATA_ACK plus the free space of the
//! data-level receive buffer (its size minus the bytes held there unread; out-of-order bytes
//! lie inside the window, in the slots they will keep). The connection remembers the largest
//! edge it put on a segment (Linux's `rcv_wnd_sent`) and never advertises less: before each
//! subflow is polled, its TCB is told to advertise that edge minus the DATA_ACK its segments
//! carry ([`Tcb::set_shared_window`]), so the peer reads the same right edge from every
//! subflow and never more than the data level can take. The edge advances only by at least
//! min(MSS, half the buffer) (receiver SWS avoidance), and once the application's reads
//! open the window that much (at least doubling what the peer knows of it), every open
//! subflow sends a window update, so a peer stopped by a closed window resumes. A peer that
//! probes the zero window meanwhile gets an ACK with the current window from the TCB. The
//! endpoint may clamp the window below the free space (`set_window_clamp`: the
//! connection's share of a receive budget); the edge then advances to at most the clamp
//! beyond the DATA_ACK.
//!
//! As a sender under the peer's shared window: before a subflow is polled, the peer's
//! data-level window, wherever it was advertised, opens that subflow's TCP send window
//! (`raise_send_window`), and a zero-window probe carries a DATA_ACK only
//! (`probe_options`).
//!
//! A child module of `connection` (it reaches the connection's private state), like
//! `data_rtx.rs`; the hooks are [`MptcpConnection::share_window`] and
//! [`MptcpConnection::window_advertised`] around each subflow's poll in `poll_segment`,
//! [`MptcpConnection::window_update`] from `read`, and `enter_fallback`, which hands the
//! window back to each TCB.

use super::*;

impl MptcpConnection {
    /// The right edge (a data offset) a segment built now advertises: the one advertised
    /// before, or the DATA_ACK plus the buffer's free space (at most the clamp) once that is
    /// at least min(MSS, half the buffer) further.
    fn recv_edge_now(&self) -> u64 {
        let ack = self.recv.data_ack();
        let clamp = self.window_clamp.unwrap_or(u64::MAX);
        let candidate = self.recv.right_edge().min(ack.saturating_add(clamp));
        let mss = self
            .subflows
            .iter()
            .map(|s| s.tcb.rcv_mss())
            .max()
            .unwrap_or(0) as u64;
        //= rfc9293#3.8.6.2.2
        //= Receiver SWS avoidance: the right edge advances only by at least
        //  min(RCV.BUFF/2, Eff.snd.MSS).
        let thresh = (self.recv.capacity() as u64 / 2).min(mss).max(1);
        //= rfc7323#2.4
        //= The right edge never moves left (the window does not shrink).
        if candidate >= self.rcv_wnd_sent.saturating_add(thresh) {
            candidate
        } else {
            self.rcv_wnd_sent.max(ack)
        }
    }

    /// Holds the window to at most `clamp` bytes beyond the DATA_ACK (`None`: the buffer's
    /// free space), here and on every subflow's own window (which rules after a fallback),
    /// from the next segment on; an edge already advertised stays. The endpoint's share of
    /// its receive budget (`EndpointConfig::recv_budget`).
    pub fn set_window_clamp(&mut self, clamp: Option<u64>) {
        self.window_clamp = clamp;
        for s in &mut self.subflows {
            s.tcb.set_window_clamp(clamp);
        }
    }

    /// Before subflow `id` is polled: its TCB advertises the connection-level window (the
    /// edge minus the DATA_ACK its segments carry) while MPTCP runs; otherwise its own.
    pub(super) fn share_window(&mut self, id: SubflowId) {
        let shared = (!self.fallback && self.neg.is_some()).then(|| {
            //= rfc8684#3.3.4
            //= Every subflow advertises the connection-level window, relative to the
            //  DATA_ACK: the same right edge in data sequence space on all of them.
            self.recv_edge_now().saturating_sub(self.recv.data_ack())
        });
        if let Some(s) = self.subflows.get_mut(id) {
            s.tcb.set_shared_window(shared);
        }
    }

    /// After subflow `id` produced `repr`: a segment that carried the shared window
    /// (anything but a SYN or a RST) made its right edge known to the peer.
    pub(super) fn window_advertised(&mut self, repr: &TcpRepr) {
        if self.fallback || self.neg.is_none() || repr.flags.syn() || repr.flags.rst() {
            return;
        }
        self.rcv_wnd_sent = self.recv_edge_now();
    }

    //= rfc9293#3.8.6.2.2
    //= A window update goes out once reading opened the window by at least
    //  min(RCV.BUFF/2, Eff.snd.MSS) beyond what was advertised (here also at least doubling
    //  what the peer knows, as a TCB does), so a sender stopped by a closed window resumes.
    /// After the application read: when the window the peer knows has at least doubled and
    /// the edge may advance, every open subflow sends an ACK with the new window (Linux's
    /// `mptcp_cleanup_rbuf` does the same).
    pub(super) fn window_update(&mut self) {
        if self.fallback || self.neg.is_none() {
            return;
        }
        let ack = self.recv.data_ack();
        let known = self.rcv_wnd_sent.saturating_sub(ack);
        let edge = self.recv_edge_now();
        if edge <= self.rcv_wnd_sent || edge.saturating_sub(ack) < known.saturating_mul(2) {
            return;
        }
        for s in &mut self.subflows {
            let state = s.tcb.state();
            if s.usable() && state.is_synchronized() && state != TcpState::TimeWait {
                s.tcb.request_ack();
            }
        }
    }

    /// Before subflow `id` is polled: the peer's data-level window, wherever it was
    /// advertised, opens the subflow's TCP send window as far as the data it holds reaches
    /// into it (from the DSN of its first unacknowledged byte).
    pub(super) fn raise_send_window(&mut self, now: Instant, id: SubflowId) {
        if self.fallback || self.neg.is_none() {
            return;
        }
        let edge = self.send.right_edge();
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let una = s.tcb.snd_una_offset();
        if una >= s.written || !s.tcb.state().is_synchronized() {
            return;
        }
        if let Some((dsn, _)) = s.tx.lookup(una, 1) {
            s.tcb.raise_send_window(now, edge.saturating_sub(dsn));
        }
    }

    /// The options of a TCP zero-window probe: the peer answers it but drops it otherwise
    /// (Linux processes no MPTCP option of a segment outside its window), so it carries a
    /// DATA_ACK only; whatever else waits to be signalled (MP_PRIO, addresses, a DATA_FIN)
    /// goes on a pure ACK right after it.
    pub(super) fn probe_options(&mut self, id: SubflowId, repr: &mut TcpRepr) {
        let Some(rx_space) = self.rx_space.filter(|_| !self.fallback) else {
            return;
        };
        repr.options.mptcp.push(MptcpOption::Dss(Dss {
            data_ack: Some(rx_space.dsn(self.recv.data_ack())),
            data_ack_64: true,
            mapping: None,
            data_fin: false,
        }));
        if let Some(s) = self.subflows.get_mut(id) {
            s.tcb.request_ack();
        }
    }
}
