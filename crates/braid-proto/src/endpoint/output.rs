//! What the endpoint sends and when: packets one at a time in turns of connections, and the
//! timers of every connection.

use super::*;

impl Endpoint {
    /// Writes the next packet to send into `buf`. One packet per call.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.now = self.now.max(now);
        while let Some((src, dst, repr)) = self.rst_queue.pop_front() {
            let res = wire::emit_tcp_packet(buf, src, dst, HOP_LIMIT, &repr, &[]);
            if res.is_ok() {
                self.stats.resets_sent += 1;
            }
            if let Some(t) = self.transmit(src, dst, res) {
                return Some(t);
            }
        }
        // Only connections that may have something to send are asked, in turns of up to
        // `SEND_BURST` packets (one that sends goes to the back of the queue): a connection's
        // packets leave back to back, so that a device with offloads can write them as one
        // GSO packet, and the others wait at most a turn each. A segment that does not fit
        // the caller's buffer is dropped (and counted): the TCB recovers it by
        // retransmission.
        let share = self.window_share();
        let mut tries = self.agenda.ready_len();
        loop {
            // The connection whose turn goes on, else the next one in the queue.
            let (idx, left) = match self.burst.take() {
                Some(turn) => turn,
                None if tries > 0 => {
                    tries -= 1;
                    (self.agenda.pop()?, SEND_BURST)
                }
                None => return None,
            };
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            c.proto.set_window_clamp(share);
            let Some((src, dst, res)) = c.proto.emit(now, buf, &c.paths) else {
                // Nothing now: it is marked again when something changes (its timers
                // included).
                self.refresh_deadline(idx);
                continue;
            };
            self.sync(idx);
            if left > 1 {
                self.burst = Some((idx, left - 1));
            }
            if let Some(t) = self.transmit(src, dst, res) {
                return Some(t);
            }
        }
    }

    /// The packet a connection emitted, or `None` (counted) when it did not fit.
    fn transmit(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        res: Result<usize, wire::Error>,
    ) -> Option<Transmit> {
        match res {
            Ok(len) => Some(Transmit {
                len,
                src,
                dst,
                segment_size: None,
                iface: self.routes.lookup(src, dst),
            }),
            Err(_) => {
                self.stats.emit_errors += 1;
                None
            }
        }
    }

    /// Each connection's share of the receive budget, when there is one: the budget over
    /// the connections there are, at least [`MIN_WINDOW_SHARE`].
    fn window_share(&self) -> Option<u64> {
        let budget = self.config.recv_budget? as u64;
        let live = self.conns.len().saturating_sub(self.free.len()).max(1) as u64;
        Some((budget / live).max(MIN_WINDOW_SHARE))
    }

    /// The time of the earliest timer of any connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.agenda.next_deadline()
    }

    /// Fires due timers (only the connections whose deadline has come are visited).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for idx in self.agenda.due(now) {
            let mut out = Vec::new();
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                if !c.closed_reported {
                    if let Some(pm) = c.pm.as_mut() {
                        if pm.poll_timeout().is_some_and(|t| t <= now) {
                            pm.handle(now, &PmEvent::Timeout, &mut out);
                        }
                    }
                }
            }
            if !out.is_empty() {
                self.pm_execute(idx, out);
            }
            if let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) {
                if c.proto.poll_timeout().is_some_and(|t| t <= now) {
                    c.proto.handle_timeout(now);
                }
            }
            self.sync(idx);
        }
    }
}
