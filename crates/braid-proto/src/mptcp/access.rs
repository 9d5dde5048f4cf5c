//! What the endpoint and the application ask of a connection: its state and subflows,
//! snapshots, events, reading, writing, closing and aborting.

use super::*;

impl MptcpConnection {
    /// True when subflow `id` finished its MP_JOIN handshake (always for the initial one).
    pub fn is_subflow_established(&self, id: SubflowId) -> bool {
        self.subflows.get(id).is_some_and(Subflow::usable)
    }

    /// Number of subflows ever created, the initial one included.
    pub fn subflow_count(&self) -> usize {
        self.subflows.len()
    }

    // ------------------------------------------------------------------ getters

    pub fn role(&self) -> Role {
        self.role
    }

    /// Replaces the packet scheduler (takes effect at the next scheduling round; data already
    /// handed to a subflow stays there).
    pub fn set_scheduler(&mut self, sched: Box<dyn Scheduler>) {
        self.sched = sched;
    }

    /// The packet scheduler's name.
    pub fn scheduler_name(&self) -> &'static str {
        self.sched.name()
    }

    /// True while MPTCP is in use (the handshake succeeded and no fallback happened).
    pub fn is_mptcp(&self) -> bool {
        !self.fallback && self.neg.is_some()
    }

    /// True when the connection fell back to plain TCP.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// Our token (from our key): what the endpoint files the connection under. On a
    /// collision it draws another key with [`MpCapableHandshake::redraw_key`] through
    /// [`MptcpConnection::handshake_mut`] before the first poll.
    pub fn local_token(&self) -> u32 {
        crate::crypto::key_token(self.hs.local_key())
    }

    /// The keys, tokens and IDSNs once both keys are known.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.neg
    }

    /// Whether the peer set C on its MP_CAPABLE SYN or SYN/ACK (RFC 8684 §3.1): no subflow
    /// may be opened towards its initial address and port.
    pub fn peer_denies_initial_join(&self) -> bool {
        self.hs.peer_denies_initial_join()
    }

    /// The MP_CAPABLE state machine (e.g. for [`MpCapableHandshake::redraw_key`] by the
    /// endpoint on a token collision, before the first poll).
    pub fn handshake_mut(&mut self) -> &mut MpCapableHandshake {
        &mut self.hs
    }

    /// True when the peer closed the connection with MP_FASTCLOSE (RFC 8684 §3.5): the
    /// connection then ends with [`ConnectionError::FastClosed`].
    pub fn is_fast_closed_by_peer(&self) -> bool {
        self.peer_fastclose
    }

    /// The first error seen: one that ended a subflow, or a DSS checksum failure that made
    /// the connection fall back (see [`MptcpCounters::MPFailTx`]).
    pub fn error(&self) -> Option<MptcpError> {
        self.error
    }

    pub fn counters(&self) -> MptcpCounters {
        self.counters
    }

    /// The TCB of a subflow.
    pub fn subflow(&self, id: SubflowId) -> Option<&Tcb> {
        self.subflows.get(id).map(|s| &s.tcb)
    }

    /// Data ranges handed to a subflow and not yet acknowledged by it (what a scheduler
    /// would reinject elsewhere), clipped to what the connection has not DATA_ACKed.
    pub fn unacked_on(&self, id: SubflowId) -> Vec<core::ops::Range<u64>> {
        let una = self.send.una();
        self.subflows.get(id).map_or_else(Vec::new, |s| {
            s.tx.data_ranges_from(s.tcb.snd_una_offset())
                .filter(|r| r.end > una)
                .map(|r| r.start.max(una)..r.end)
                .collect()
        })
    }

    /// The data-level send state (data_una, data_nxt, the peer's window, unacked ranges).
    pub fn data_send(&self) -> &DataSend {
        &self.send
    }

    /// Address ids (local, remote) and backup flag of a subflow.
    pub fn subflow_info(&self, id: SubflowId) -> Option<(u8, u8, bool)> {
        self.subflows
            .get(id)
            .map(|s| (s.local_id, s.remote_id, s.backup))
    }

    /// True once the DATA_FIN was reached and every byte read (EOF).
    pub fn is_read_finished(&self) -> bool {
        self.recv.is_finished()
    }

    /// True when our DATA_FIN was acknowledged.
    pub fn is_write_finished(&self) -> bool {
        self.send.fin_acked()
    }

    /// True when every subflow is closed (or in TIME-WAIT).
    pub fn is_closed(&self) -> bool {
        self.subflows
            .iter()
            .all(|s| matches!(s.tcb.state(), TcpState::Closed | TcpState::TimeWait))
    }

    /// Bytes readable now.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// Space for [`MptcpConnection::write`].
    pub fn send_capacity(&self) -> usize {
        self.send.capacity()
    }

    // ------------------------------------------------------------------ application side

    /// Queues bytes at the data level; returns how many were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let dead = self
            .subflows
            .iter()
            .all(|s| s.tcb.state() == TcpState::Closed && s.tcb.error().is_some());
        if dead || (self.error.is_some() && self.is_closed()) {
            return 0;
        }
        let n = self.send.write(data);
        if n < data.len() {
            self.reported.want_writable = true;
        }
        n
    }

    /// Every subflow, the MPTCP_FULL_INFO-style view (closed ones included, flagged).
    pub fn subflow_infos(&self) -> Vec<SubflowInfo> {
        self.subflows
            .iter()
            .enumerate()
            .map(|(id, s)| SubflowInfo {
                id,
                local_id: s.local_id,
                remote_id: s.remote_id,
                backup: s.backup,
                established: s.join.is_none_or(|j| j.state == JoinState::Established),
                stale: s.stale,
                stale_count: s.stale_count,
                closed: s.dead || s.tcb.state() == TcpState::Closed,
                state: s.tcb.state(),
                cwnd: s.tcb.cwnd(),
                srtt: s.tcb.rtt(),
                rto: s.tcb.rto(),
                mss: s.tcb.effective_mss(),
                bytes_sent: s.tcb.bytes_sent(),
                bytes_acked: s.tcb.bytes_acked(),
                bytes_received: s.tcb.bytes_received(),
                retransmits: s.tcb.retransmits(),
                queued: s.tcb.send_queued(),
            })
            .collect()
    }

    /// The MPTCP_INFO-style snapshot of the connection.
    pub fn info(&self) -> MptcpInfo {
        let n = self.subflows.len();
        let mut flags = 0;
        if self.fallback {
            flags |= MptcpInfo::FLAG_FALLBACK;
        }
        if self.neg.is_some() {
            flags |= MptcpInfo::FLAG_REMOTE_KEY_RECEIVED;
        }
        let dsn_tx = |off: u64| self.tx_space.map_or(0, |sp| sp.dsn(off));
        MptcpInfo {
            subflows: u8::try_from(n.saturating_sub(1)).unwrap_or(u8::MAX),
            subflows_total: u8::try_from(n).unwrap_or(u8::MAX),
            flags,
            token: self.local_token(),
            write_seq: dsn_tx(self.send.end()),
            snd_una: dsn_tx(self.send.una()),
            rcv_nxt: self.rx_space.map_or(0, |sp| sp.dsn(self.recv.data_ack())),
            csum_enabled: self.neg.is_some_and(|n| n.checksum) && !self.fallback,
            retransmits: self.subflows.iter().map(|s| s.tcb.retransmits()).sum(),
            bytes_sent: self.send.nxt(),
            bytes_acked: self.send.una().min(self.send.end()),
            bytes_received: self.recv.next_expected(),
        }
    }

    /// Events since the last call (derived from the state, so none is lost or repeated).
    pub fn take_events(&mut self) -> ConnEvents {
        self.pm_sync();
        let mut ev = ConnEvents::default();
        let synced = self
            .subflows
            .first()
            .is_some_and(|s| s.tcb.state().is_synchronized());
        if !self.reported.established && synced && (self.neg.is_some() || self.fallback) {
            self.reported.established = true;
            ev.established = true;
        }
        let ack = self.recv.data_ack();
        if ack != self.reported.data_ack {
            self.reported.data_ack = ack;
            ev.readable = true;
        }
        if self.reported.want_writable && self.send.wakes_writer() {
            self.reported.want_writable = false;
            ev.writable = true;
        }
        if !self.reported.closed && self.is_closed() {
            self.reported.closed = true;
            ev.closed = true;
        }
        for s in &mut self.subflows {
            s.tcb.take_events();
        }
        ev
    }

    /// Reads in-order data-level bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recv.read(buf);
        for id in 0..self.subflows.len() {
            self.pull(id);
        }
        if n > 0 {
            self.window_update();
        }
        n
    }

    /// Closes the sending direction: the DATA_FIN follows the data written.
    pub fn close(&mut self) {
        self.send.close();
        if self.neg.is_none() && !self.fallback {
            // Still in the handshake: closing before keys is closing the subflow.
            if self.send.end() == 0 {
                for s in &mut self.subflows {
                    s.tcb.close();
                    s.fin_closed = true;
                }
            }
        }
    }

    /// Aborts the connection: every subflow is reset at once, the resets carrying
    /// MP_FASTCLOSE with the peer's key while MPTCP is in use.
    pub fn abort(&mut self) {
        self.fast_close(ConnectionError::Aborted);
    }

    //= rfc8684#3.5
    //= MP_FASTCLOSE on a RST on every subflow closes the whole connection at once
    //   (option B of §3.5, as Linux does).
    /// Resets every subflow, the resets carrying MP_FASTCLOSE while MPTCP is in use; each
    /// subflow closes with `error`.
    pub(super) fn fast_close(&mut self, error: ConnectionError) {
        self.fastclose = true;
        for s in &mut self.subflows {
            s.tcb.abort_with(error);
        }
    }

    /// True while any subflow has a reset still to send.
    pub fn has_pending_output(&self) -> bool {
        self.subflows.iter().any(|s| s.tcb.has_pending_output())
    }
}
