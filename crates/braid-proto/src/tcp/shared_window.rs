//! The window hooks an MPTCP connection drives on its subflows' TCBs (RFC 8684 §3.3.4): the
//! connection-level receive window advertised instead of the TCB's own, the peer's
//! data-level window opening the send window, a zero-window probe on request, and the
//! peer's MSS as the receiver sees it; and the clamp the endpoint puts on a TCB's own
//! window (its share of the receive budget). A child module of `tcb`.

use super::*;

impl Tcb {
    //= rfc8684#3.3.4
    //= The receive window is shared by all subflows and relative to the DATA_ACK: a subflow
    //  advertises the connection-level window, not its own buffer's.
    /// Advertises `wnd` bytes (up to the largest scaled window) on the segments after the
    /// SYN instead of this TCB's own free buffer space, until set back to `None`. The MPTCP
    /// layer sets it before polling each subflow: the connection-level window as the peer
    /// reads it, relative to the DATA_ACK those segments carry. The window may then shrink
    /// at the subflow level (the data-level right edge does not); the segments accepted are
    /// still those the buffer has room for, and a window-update ACK after a read is the
    /// caller's to request ([`Tcb::request_ack`]).
    pub fn set_shared_window(&mut self, wnd: Option<u64>) {
        self.shared_wnd = wnd;
    }

    /// Advertises at most `clamp` bytes of this TCB's own free buffer space (`None`: all of
    /// it), from the next segment on; an edge already advertised stays (the window does
    /// not shrink). The endpoint holds every connection to its share of a receive budget
    /// this way (see `EndpointConfig::recv_budget`).
    pub fn set_window_clamp(&mut self, clamp: Option<u64>) {
        self.window_clamp = clamp;
    }

    /// The largest payload seen in one segment (the receiver's estimate of the peer's MSS,
    /// for receiver-side silly window syndrome avoidance).
    pub fn rcv_mss(&self) -> usize {
        self.rcv_mss
    }

    //= rfc8684#3.3.4
    //= The window is the connection's, shared by the subflows: an update that came on one
    //  subflow opens the others too.
    /// Raises the send window (SND.WND, from SND.UNA) to at least `wnd` bytes: the MPTCP
    /// layer's share of the peer's data-level window, which the peer may have advertised on
    /// another subflow (Linux raises a subflow's `snd_wnd` the same way).
    pub fn raise_send_window(&mut self, now: Instant, wnd: u64) {
        if wnd > self.snd_wnd {
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.update_persist(now);
        }
    }

    //= rfc9293#3.8.6.1
    //# a zero-window probe elicits an ACK carrying the current window (sent with an old sequence number)
    /// Sends a zero-window probe at the next `poll_segment`: an ACK with an old sequence
    /// number, which the peer answers with an ACK carrying its current window. The MPTCP
    /// layer probes a closed data-level window this way when the bytes beyond it were
    /// already acknowledged at the subflow level.
    pub fn probe_window(&mut self) {
        if self.can_send_data() {
            self.probe_pending = true;
        }
    }
}
