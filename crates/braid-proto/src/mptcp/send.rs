//! The data-level send side: the connection's send buffer in DSN space.
//!
//! Bytes stay here from [`DataSend::write`] until a DATA_ACK covers them, whichever subflow
//! carried them, so unacknowledged ranges can be reinjected on another subflow
//! ([`DataSend::unacked`]); and until no subflow still needs them ([`DataSend::release`]):
//! they are the only copy, each subflow's segments and retransmissions are cut from here.
//! Offsets are data offsets (0 = DSN IDSN + 1).

use core::ops::Range;

use crate::tcp::SendBuffer;
use crate::wire::Payload;

/// The connection-level send state.
#[derive(Debug)]
pub struct DataSend {
    /// Holds up to twice `capacity`: the DATA_ACKed bytes a subflow may still send do not
    /// count against the application's share (see [`DataSend::release`]).
    buf: SendBuffer,
    /// Bytes written and not DATA_ACKed at most.
    capacity: usize,
    /// First unacknowledged data offset.
    una: u64,
    /// Next data offset never handed to a subflow.
    nxt: u64,
    /// One past the highest data offset the peer's receive window allows.
    right_edge: u64,
    /// The DATA_FIN's data offset once the application closed.
    fin: Option<u64>,
    fin_sent: bool,
    fin_acked: bool,
}

/// What a DATA_ACK did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Outside `[data_una, data_nxt]` (counting a sent DATA_FIN): ignored.
    Ignored,
    /// Accepted; `newly_acked` bytes (the DATA_FIN counts one) were freed.
    Accepted { newly_acked: u64 },
}

impl DataSend {
    /// A send buffer of `capacity` bytes; `initial_window` is the peer's window before its
    /// first DATA_ACK.
    pub fn new(capacity: usize, initial_window: u64) -> DataSend {
        DataSend {
            buf: SendBuffer::new(capacity.saturating_mul(2)),
            capacity,
            una: 0,
            nxt: 0,
            right_edge: initial_window,
            fin: None,
            fin_sent: false,
            fin_acked: false,
        }
    }

    /// Appends application bytes; returns how many fit (0 after [`DataSend::close`]).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.fin.is_some() {
            return 0;
        }
        let n = data.len().min(self.free());
        self.buf.write(&data[..n])
    }

    /// Room for the application: the capacity less what is not DATA_ACKed, and what the
    /// buffer itself has left.
    fn free(&self) -> usize {
        let unacked = usize::try_from(self.buf.end() - self.una).unwrap_or(usize::MAX);
        self.capacity.saturating_sub(unacked).min(self.buf.free())
    }

    /// Free space for [`DataSend::write`].
    pub fn capacity(&self) -> usize {
        if self.fin.is_some() {
            0
        } else {
            self.free()
        }
    }

    /// Enough free space to wake a writer that found the buffer full: a quarter of it, as
    /// for a TCP connection's send buffer.
    pub fn wakes_writer(&self) -> bool {
        self.fin.is_none() && self.free() >= (self.capacity / 4).max(1)
    }

    /// Queues the DATA_FIN after every byte written.
    pub fn close(&mut self) {
        if self.fin.is_none() {
            self.fin = Some(self.buf.end());
        }
    }

    /// First unacknowledged data offset (`data_una`).
    pub fn una(&self) -> u64 {
        self.una
    }

    /// Next data offset not yet handed to a subflow (`data_nxt`).
    pub fn nxt(&self) -> u64 {
        self.nxt
    }

    /// One past the last byte written.
    pub fn end(&self) -> u64 {
        self.buf.end()
    }

    /// The window's right edge (data offset).
    pub fn right_edge(&self) -> u64 {
        self.right_edge
    }

    /// Moves the window's right edge to at least `edge` (the peer's window before its first
    /// DATA_ACK, taken from the subflow handshake).
    pub fn open_window(&mut self, edge: u64) {
        self.right_edge = self.right_edge.max(edge);
    }

    /// Takes back the tail of the last range handed out (a subflow accepted less than
    /// offered): `data_nxt` returns to `to` when `data_una <= to < data_nxt`.
    pub fn unsend(&mut self, to: u64) {
        if to >= self.una && to < self.nxt {
            self.nxt = to;
        }
    }

    /// Bytes the peer's window still allows beyond `data_nxt`.
    pub fn window_left(&self) -> u64 {
        self.right_edge.saturating_sub(self.nxt)
    }

    /// Bytes written but not handed to any subflow yet.
    pub fn unsent(&self) -> u64 {
        self.buf.end() - self.nxt
    }

    //= rfc8684#3.3.2
    //= DATA_ACKs outside [data_una, data_nxt] are ignored; an accepted one frees the bytes
    //   below it and, with the window field, moves the right edge of the peer's window.
    /// Processes a DATA_ACK (already expanded to a data offset) with the window of its
    /// segment in bytes (the TCP window field scaled by the subflow's shift, RFC 8684 §3.3.4).
    pub fn on_data_ack(&mut self, ack: u64, window: u64) -> AckOutcome {
        let max = if self.fin_sent {
            self.nxt + 1
        } else {
            self.nxt
        };
        if ack < self.una || ack > max {
            return AckOutcome::Ignored;
        }
        let newly = ack - self.una;
        self.una = ack;
        if self.fin_sent && Some(ack.saturating_sub(1)) == self.fin && ack == max {
            self.fin_acked = true;
        }
        //= rfc8684#3.3.4
        //= The right edge of the window never moves back.
        self.right_edge = self.right_edge.max(ack.saturating_add(window));
        AckOutcome::Accepted { newly_acked: newly }
    }

    /// Bytes written and not DATA_ACKed at most (the buffer's size as configured).
    pub fn capacity_total(&self) -> usize {
        self.capacity
    }

    /// The lowest data offset still held.
    pub fn held_from(&self) -> u64 {
        self.buf.end() - self.buf.len() as u64
    }

    /// Frees the DATA_ACKed bytes below `needed`, the lowest data offset a subflow may still
    /// send (its bytes not acknowledged at the subflow level: a subflow retransmits what
    /// it sent, also bytes another subflow got through). Such bytes do not count against
    /// the capacity, up to as much again.
    pub fn release(&mut self, needed: u64) {
        self.buf.ack_to(needed.min(self.una).min(self.buf.end()));
    }

    /// Hands the next unsent range to a subflow: at most `max_len` bytes, within the peer's
    /// window (unless `ignore_window`, for a window probe). Advances `data_nxt`.
    pub fn next_range(&mut self, max_len: usize, ignore_window: bool) -> Option<Range<u64>> {
        let mut end = self.buf.end().min(self.nxt.saturating_add(max_len as u64));
        if !ignore_window {
            end = end.min(self.right_edge);
        }
        if end <= self.nxt {
            return None;
        }
        let r = self.nxt..end;
        self.nxt = end;
        Some(r)
    }

    /// The bytes of a range (clipped to what is still held).
    pub fn slice(&self, r: Range<u64>) -> Payload<'_> {
        self.buf.slice(r.start, r.end)
    }

    /// Data handed to subflows and not yet DATA_ACKed: what a scheduler may reinject.
    pub fn unacked(&self) -> Range<u64> {
        self.una..self.nxt.max(self.una)
    }

    /// The DATA_FIN's data offset once the application closed.
    pub fn fin(&self) -> Option<u64> {
        self.fin
    }

    /// True when the DATA_FIN may go out now: every data byte was handed to a subflow.
    pub fn fin_ready(&self) -> bool {
        self.fin.is_some_and(|f| f == self.nxt)
    }

    /// Records that the DATA_FIN was put on a segment.
    pub fn mark_fin_sent(&mut self) {
        if self.fin_ready() {
            self.fin_sent = true;
        }
    }

    /// Whether the DATA_FIN was sent.
    pub fn fin_sent(&self) -> bool {
        self.fin_sent
    }

    /// True once the peer acknowledged the DATA_FIN (and so every byte).
    pub fn fin_acked(&self) -> bool {
        self.fin_acked
    }

    /// True when everything written was acknowledged (DATA_FIN aside).
    pub fn all_acked(&self) -> bool {
        self.una >= self.buf.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_acks_and_window() {
        let mut s = DataSend::new(16, 8);
        assert_eq!(s.write(b"0123456789abcdefXYZ"), 16);
        assert_eq!(s.next_range(5, false), Some(0..5));
        assert_eq!(s.next_range(100, false), Some(5..8)); // window edge at 8
        assert_eq!(s.next_range(100, false), None);
        assert_eq!(s.slice(3..6).to_vec(), b"345");
        assert_eq!(s.unacked(), 0..8);
        // an ACK above data_nxt is ignored
        assert_eq!(s.on_data_ack(9, 100), AckOutcome::Ignored);
        assert_eq!(
            s.on_data_ack(4, 10),
            AckOutcome::Accepted { newly_acked: 4 }
        );
        assert_eq!(s.right_edge(), 14);
        assert_eq!(s.unacked(), 4..8);
        // an old ACK is ignored, and a smaller window never moves the edge back
        assert_eq!(s.on_data_ack(3, 100), AckOutcome::Ignored);
        assert_eq!(s.on_data_ack(5, 1), AckOutcome::Accepted { newly_acked: 1 });
        assert_eq!(s.right_edge(), 14);
        assert_eq!(s.next_range(100, false), Some(8..14));
        // A probe beyond the window.
        assert_eq!(s.next_range(1, true), Some(14..15));
        // DATA_ACKed bytes are held while a subflow may still send them, beside the
        // capacity.
        assert_eq!(s.capacity(), 5);
        assert_eq!(s.slice(0..2).to_vec(), b"01");
        s.release(2);
        assert_eq!(s.slice(1..4).to_vec(), b"23");
        s.release(u64::MAX);
        assert_eq!(s.capacity(), 5);
        assert_eq!(s.slice(4..6).to_vec(), b"5");
    }

    #[test]
    fn data_fin_takes_one_dsn() {
        let mut s = DataSend::new(16, 100);
        s.write(b"abc");
        s.close();
        assert_eq!(s.write(b"d"), 0);
        assert_eq!(s.fin(), Some(3));
        assert!(!s.fin_ready());
        assert_eq!(s.next_range(10, false), Some(0..3));
        assert!(s.fin_ready());
        assert_eq!(s.on_data_ack(4, 10), AckOutcome::Ignored); // FIN not sent yet
        s.mark_fin_sent();
        assert!(s.fin_sent());
        assert_eq!(
            s.on_data_ack(3, 10),
            AckOutcome::Accepted { newly_acked: 3 }
        );
        assert!(s.all_acked() && !s.fin_acked());
        assert_eq!(
            s.on_data_ack(4, 10),
            AckOutcome::Accepted { newly_acked: 1 }
        );
        assert!(s.fin_acked());
    }
}
