//! What a TCB tells about itself: state, addresses, RTT and window, counters, buffers.

use super::*;

impl Tcb {
    pub fn state(&self) -> TcpState {
        self.state
    }
    /// Why the connection ended, if it ended abnormally.
    pub fn error(&self) -> Option<ConnectionError> {
        self.error
    }
    pub fn local_port(&self) -> u16 {
        self.params.local_port
    }
    pub fn remote_port(&self) -> u16 {
        self.params.remote_port
    }
    /// Smoothed RTT.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    /// The smallest RTT sample so far.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.rtt.min_rtt()
    }
    /// The current retransmission timeout (with backoff).
    pub fn rto(&self) -> Duration {
        self.rtt.backed_off(self.backoff)
    }
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }
    /// The MSS used for sending (before options).
    pub fn mss(&self) -> usize {
        self.snd_mss
    }
    /// Payload bytes of a full-sized segment (MSS minus timestamps and reserved options).
    pub fn effective_mss(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        //= rfc6691#2
        //# the MSS excludes TCP options: the sender subtracts the options it sends
        let opts = (ts + self.reserved_opt).div_ceil(4) * 4;
        self.snd_mss.saturating_sub(opts).max(1)
    }

    /// Payload bytes of the largest segment: MSS minus timestamps (an MPTCP subflow sends
    /// most segments without the room it reserves for a DSS mapping).
    pub(super) fn full_mss(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        self.snd_mss.saturating_sub(ts.div_ceil(4) * 4).max(1)
    }

    /// How many SACK blocks fit after the timestamps and the reserved option space.
    pub(super) fn sack_block_budget(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        let space = MAX_OPTION_SPACE.saturating_sub(self.reserved_opt + ts);
        //= rfc2018#3
        //# a SACK option with n blocks is 8*n+2 bytes long; at most 4 blocks fit the 40-byte option space
        if space < 10 {
            0
        } else {
            ((space - 2) / 8).min(4)
        }
    }
    /// Application bytes sent at least once.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }
    /// Application bytes acknowledged by the peer (only grows).
    pub fn bytes_acked(&self) -> u64 {
        self.bytes_acked
    }
    /// Application bytes received in order (made readable).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }
    /// Of [`Tcb::bytes_received`], the bytes that went straight from their segment to an
    /// in-order sink ([`Tcb::handle_segment_into`]) without being stored here.
    pub fn bytes_passed(&self) -> u64 {
        self.bytes_passed
    }
    /// Segments retransmitted.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }
    /// Retransmission timeouts of data or FIN.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }
    /// Fast recoveries undone as spurious (reordering detected by timestamps).
    pub fn spurious_recoveries(&self) -> u64 {
        self.spurious_recoveries
    }
    /// Fast recoveries entered.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }
    /// Segments dropped by PAWS.
    pub fn paws_drops(&self) -> u64 {
        self.paws_drops
    }
    /// Challenge ACKs sent (RFC 5961).
    pub fn challenge_acks(&self) -> u64 {
        self.challenge_acks
    }
    /// True when timestamps were negotiated.
    pub fn timestamps_enabled(&self) -> bool {
        self.ts_enabled
    }
    /// True when SACK was negotiated.
    pub fn sack_enabled(&self) -> bool {
        self.sack_enabled
    }
    /// (our shift, peer's shift) when window scaling was negotiated.
    pub fn window_scales(&self) -> (u8, u8) {
        (self.rcv_wscale, self.snd_wscale)
    }
    /// The peer's receive window in bytes (scaled).
    pub fn send_window(&self) -> u64 {
        self.snd_wnd
    }
    /// Disjoint SACKed ranges on the scoreboard.
    pub fn sack_ranges(&self) -> usize {
        self.scoreboard.len()
    }
    /// True during SACK / NewReno fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }
    /// The congestion controller (read only).
    pub fn congestion_control(&self) -> &dyn CongestionControl {
        self.cc.as_ref()
    }
    /// Replaces the congestion controller (MPTCP installs coupled ones).
    pub fn set_congestion_control(&mut self, cc: Box<dyn CongestionControl>) {
        self.cc = cc;
        let m = self.effective_mss();
        self.cc.set_mss(m);
    }
    /// Stream offset of the first unacknowledged byte.
    pub fn snd_una_offset(&self) -> u64 {
        self.snd_una.saturating_sub(1).min(self.send.end())
    }
    /// Stream offset of the next new byte to send.
    pub fn snd_nxt_offset(&self) -> u64 {
        self.snd_nxt.saturating_sub(1).min(self.send.end())
    }
    /// Stream offset of the next byte [`Tcb::read`] returns.
    pub fn recv_offset(&self) -> u64 {
        self.recv.contiguous_end() - self.recv.readable() as u64
    }
    /// Bytes waiting to be read.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }
    /// Space left in the send buffer.
    pub fn send_capacity(&self) -> usize {
        if self.fin_queued {
            0
        } else {
            self.send.free()
        }
    }
    /// Bytes written but not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.send.len()
    }
    /// True when the peer's FIN has been received and every byte before it read.
    pub fn is_read_finished(&self) -> bool {
        self.fin_received && self.recv.readable() == 0
    }

    /// Whether an ACK is owed at once for a segment out of order, one that filled a gap,
    /// or a duplicate (RFC 5681 §4.2): each such segment should get its own ACK, with the
    /// SACK blocks as they stand after it, so a caller that hands over packets in batches
    /// sends what is owed before the next segment of this TCB (`Endpoint::take_urgent_ack`).
    /// Beyond a hole's first three, out-of-order segments share an ACK (SACK compression).
    pub fn urgent_ack(&self) -> bool {
        self.urgent_ack && self.ack_now
    }

    /// Sends an ACK at the next `poll_segment`, even with nothing new at the TCP level: the
    /// MPTCP layer acknowledges data-level events (a DATA_FIN on a pure ACK) this way.
    pub fn request_ack(&mut self) {
        if self.state.is_synchronized() {
            self.ack_now = true;
        }
    }

    /// Ends every segment (new or retransmitted) that would cover stream offset `offset - 1`
    /// and `offset` at `offset`: the MPTCP layer maps one contiguous data-level run per
    /// segment, so it marks where one run ends and the next one begins. Offsets may come in
    /// any order (repeated ones count once); they are forgotten once acknowledged.
    pub fn mark_segment_boundary(&mut self, offset: u64) {
        let seq = offset + 1;
        if seq <= self.snd_una {
            return;
        }
        let i = self.boundaries.partition_point(|&b| b < seq);
        if self.boundaries.get(i) != Some(&seq) {
            self.boundaries.insert(i, seq);
        }
    }

    /// The first segment boundary above sequence offset `p` (or `u64::MAX`).
    pub(super) fn next_boundary(&mut self, p: u64) -> u64 {
        while self.boundaries.front().is_some_and(|&b| b <= self.snd_una) {
            self.boundaries.pop_front();
        }
        let i = self.boundaries.partition_point(|&b| b <= p);
        self.boundaries.get(i).copied().unwrap_or(u64::MAX)
    }

    /// How many RTOs fired since the last acknowledgment that advanced SND.UNA (0 while the
    /// subflow makes progress).
    pub fn rto_backoff(&self) -> u32 {
        self.backoff
    }

    /// True when the connection holds data it cannot get across and the peer has gone
    /// silent: an RTO fired since the last acknowledgment of data in flight, or (with a zero
    /// window and unsent data) two zero-window probes went unanswered. The MPTCP layer's
    /// sign of a stale path; a peer that answers its probes is merely not reading.
    pub fn is_stalled(&self) -> bool {
        let in_flight = self.snd_nxt > self.snd_una;
        let unsent = self.snd_nxt < self.data_end();
        (self.backoff >= 1 && in_flight) || (self.unanswered_probes >= 2 && unsent)
    }

    /// Reserves `len` bytes of option space on every segment after the SYN (MPTCP options).
    pub fn set_reserved_option_len(&mut self, len: usize) {
        self.reserved_opt = len.min(MAX_OPTION_SPACE);
        let m = self.effective_mss();
        self.cc.set_mss(m);
    }
    /// True while a segment is waiting to be sent even though the TCB is closed (the RST
    /// of an abort).
    pub fn has_pending_output(&self) -> bool {
        self.rst_reply.is_some()
    }
    /// Events since the last call.
    pub fn take_events(&mut self) -> TcbEvents {
        core::mem::take(&mut self.events)
    }
    /// The deadline of one timer.
    pub fn timer(&self, t: Timer) -> Option<Instant> {
        self.timers[t as usize]
    }
}
