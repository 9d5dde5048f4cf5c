//! The data-level receive side: reassembly in DSN space of data arriving on every subflow.
//!
//! Data is stored by data offset (see [`super::dsn::DsnSpace`]) in one bounded ring
//! ([`crate::tcp::RecvBuffer`]): duplicates and overlaps are discarded, data beyond the
//! connection-level receive window is dropped, and at most
//! [`crate::tcp::MAX_OOO_RANGES`] out-of-order ranges are held.

use crate::tcp::RecvBuffer;
use crate::wire::Payload;

/// Why received data-level state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// A DATA_FIN at a different offset than an earlier one.
    #[error("DATA_FIN at data offset {got}, earlier at {had}")]
    FinMoved { had: u64, got: u64 },
    /// A DATA_FIN below data already received.
    #[error("DATA_FIN at data offset {fin} below received data ending at {end}")]
    FinBeforeData { fin: u64, end: u64 },
}

/// The connection-level receive state.
#[derive(Debug)]
pub struct DataRecv {
    buf: RecvBuffer,
    /// Highest data offset stored + 1 (in order or not).
    highest: u64,
    /// Data offset of the DATA_FIN, once known.
    fin: Option<u64>,
}

impl DataRecv {
    /// A receive side with a budget of `capacity` bytes (the connection-level receive
    /// buffer shared by all subflows).
    pub fn new(capacity: usize) -> DataRecv {
        DataRecv {
            buf: RecvBuffer::new(capacity),
            highest: 0,
            fin: None,
        }
    }

    /// The receive buffer's size in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes the application can read now.
    pub fn readable(&self) -> usize {
        self.buf.readable()
    }

    /// Data offset of the next in-order byte expected.
    pub fn next_expected(&self) -> u64 {
        self.buf.contiguous_end()
    }

    //= rfc8684#3.3.4
    //= The receive window is shared by all subflows and is relative to the DATA_ACK.
    /// The window to advertise, in bytes, relative to [`DataRecv::data_ack`].
    pub fn window(&self) -> usize {
        self.buf.window()
    }

    /// One past the highest data offset the buffer can take now (the window's right edge),
    /// never below the DATA_ACK: once the DATA_FIN is reached with the buffer full, the
    /// DATA_ACK counts the DATA_FIN one beyond the last byte held, and the window is zero,
    /// not negative.
    pub fn right_edge(&self) -> u64 {
        (self.buf.contiguous_end() + self.buf.window() as u64).max(self.data_ack())
    }

    //= rfc8684#3.3.2
    //= The DATA_ACK acknowledges the next DSN expected; the DATA_FIN takes one DSN.
    /// The data offset to acknowledge (DATA_ACK): the next in-order byte, one more once the
    /// DATA_FIN was reached.
    pub fn data_ack(&self) -> u64 {
        let end = self.buf.contiguous_end();
        if self.fin_reached() {
            end + 1
        } else {
            end
        }
    }

    /// Stores `data` at data offset `offset`; returns how many bytes became readable.
    /// Already received bytes, bytes beyond the window and bytes at or after a known DATA_FIN
    /// are discarded.
    /// [`DataRecv::insert`] of both runs of a payload, in order.
    pub fn insert_parts(&mut self, offset: u64, data: Payload<'_>) -> usize {
        self.insert(offset, data.head) + self.insert(offset + data.head.len() as u64, data.tail)
    }

    pub fn insert(&mut self, offset: u64, data: &[u8]) -> usize {
        let mut data = data;
        if let Some(fin) = self.fin {
            let room = fin.saturating_sub(offset);
            if room < data.len() as u64 {
                data = data.get(..room as usize).unwrap_or(&[]);
            }
        }
        if data.is_empty() {
            return 0;
        }
        let Some(end) = offset.checked_add(data.len() as u64) else {
            return 0;
        };
        if end <= self.buf.contiguous_end() || offset >= self.right_edge() {
            return 0;
        }
        let edge = self.right_edge();
        self.highest = self.highest.max(end.min(edge));
        // Only the gaps: bytes already held (in order or not) are kept, the copies dropped.
        let lo = offset.max(self.buf.contiguous_end());
        let hi = end.min(edge);
        if self.buf.ooo().last().is_none_or(|(_, end)| end <= lo) {
            // Nothing held beyond its start (in order, or extending the highest range past
            // a hole: the common cases): one gap, the whole range.
            return data
                .get((lo - offset) as usize..(hi - offset) as usize)
                .map_or(0, |piece| self.buf.write_at(lo, piece));
        }
        // Gap by gap, lowest first, looked up afresh after each write (a write that fills
        // the hole below moves ranges into the in-order data): nothing allocated.
        let mut n = 0;
        let mut at = lo;
        while let Some((a, b)) = self
            .buf
            .ooo()
            .next_gap(at.max(self.buf.contiguous_end()), hi)
        {
            if let Some(piece) = data.get((a - offset) as usize..(b - offset) as usize) {
                n += self.buf.write_at(a, piece);
            }
            at = b;
        }
        n
    }

    /// Records the DATA_FIN at data offset `fin` (the DSN after the last data byte).
    pub fn set_fin(&mut self, fin: u64) -> Result<(), RecvError> {
        match self.fin {
            Some(had) if had != fin => Err(RecvError::FinMoved { had, got: fin }),
            Some(_) => Ok(()),
            None if fin < self.highest => Err(RecvError::FinBeforeData {
                fin,
                end: self.highest,
            }),
            None => {
                self.fin = Some(fin);
                Ok(())
            }
        }
    }

    /// The DATA_FIN's data offset, once received.
    pub fn fin(&self) -> Option<u64> {
        self.fin
    }

    /// True when every byte before the DATA_FIN has arrived.
    pub fn fin_reached(&self) -> bool {
        self.fin == Some(self.buf.contiguous_end())
    }

    /// True when the DATA_FIN was reached and every byte read: EOF for the application.
    pub fn is_finished(&self) -> bool {
        self.fin_reached() && self.buf.readable() == 0
    }

    /// Copies readable bytes into `out`.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.buf.read(out);
        self.buf.release_if_drained();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut DataRecv) -> Vec<u8> {
        let mut out = vec![0u8; r.readable()];
        let n = r.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn a_segment_across_several_holes_fills_each_and_keeps_what_was_held() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut r = DataRecv::new(4096);
        // Held out of order: [20, 30) and [50, 60), with marked copies a later segment must
        // not overwrite.
        r.insert(20, &[0xAA; 10]);
        r.insert(50, &[0xBB; 10]);
        assert_eq!(r.readable(), 0);
        // One segment from 10 to 80 over both: its bytes go only into the gaps.
        assert_eq!(r.insert(10, &data[10..80]), 0, "nothing in order yet");
        // The hole below fills: everything up to 80 is readable at once.
        assert_eq!(r.insert(0, &data[..10]), 80);
        let mut out = vec![0u8; 80];
        assert_eq!(r.read(&mut out), 80);
        assert_eq!(&out[..20], &data[..20]);
        assert_eq!(&out[20..30], &[0xAA; 10]);
        assert_eq!(&out[30..50], &data[30..50]);
        assert_eq!(&out[50..60], &[0xBB; 10]);
        assert_eq!(&out[60..80], &data[60..80]);
    }

    #[test]
    fn a_segment_that_fills_the_first_hole_runs_on_past_the_ranges_it_joins() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut r = DataRecv::new(4096);
        r.insert(20, &data[20..30]);
        r.insert(40, &data[40..50]);
        // From the in-order edge over both ranges and beyond: each gap once, all readable.
        assert_eq!(r.insert(0, &data[..70]), 70);
        let mut out = vec![0u8; 70];
        assert_eq!(r.read(&mut out), 70);
        assert_eq!(out, &data[..70]);
    }

    #[test]
    fn reassembles_out_of_order_with_overlaps_and_duplicates() {
        let mut r = DataRecv::new(64);
        assert_eq!(r.insert(6, b"ghij"), 0);
        assert_eq!(r.insert(3, b"defg"), 0); // overlaps the range above
        assert_eq!(r.data_ack(), 0);
        assert_eq!(r.insert(0, b"abc"), 10);
        assert_eq!(r.insert(0, b"abcdef"), 0); // duplicate
        assert_eq!(r.data_ack(), 10);
        assert_eq!(read_all(&mut r), b"abcdefghij");
        assert_eq!(r.insert(8, b"ijKL"), 2);
        assert_eq!(read_all(&mut r), b"KL");
    }

    #[test]
    fn bounded_by_the_window() {
        let mut r = DataRecv::new(8);
        assert_eq!(r.insert(4, b"efghijkl"), 0);
        assert_eq!(r.insert(0, b"abcd"), 8);
        assert_eq!(r.window(), 0);
        assert_eq!(r.insert(8, b"x"), 0); // beyond the window
        assert_eq!(r.right_edge(), 8);
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(r.window(), 4);
        assert_eq!(r.insert(8, b"mnopqr"), 4);
        assert_eq!(r.insert(u64::MAX - 1, b"zz"), 0); // no overflow
    }

    #[test]
    fn data_fin_is_acked_once_reached_and_eof_after_reading() {
        let mut r = DataRecv::new(64);
        r.insert(2, b"cd");
        r.set_fin(4).unwrap();
        assert!(!r.fin_reached());
        assert_eq!(r.data_ack(), 0);
        assert_eq!(r.set_fin(5), Err(RecvError::FinMoved { had: 4, got: 5 }));
        assert_eq!(r.insert(0, b"abXYZ"), 4); // bytes at or after the FIN are discarded
        assert!(r.fin_reached());
        assert_eq!(r.data_ack(), 5);
        assert!(!r.is_finished());
        assert_eq!(read_all(&mut r), b"abcd");
        assert!(r.is_finished());
    }

    #[test]
    fn a_data_fin_reached_with_the_buffer_full_leaves_a_zero_window() {
        // A peer that sent beyond the window: the bytes and the DATA_FIN behind them fill
        // the buffer exactly (the connection's window arithmetic subtracted the DATA_ACK
        // from the right edge, one short of it here).
        let mut r = DataRecv::new(8);
        r.set_fin(8).unwrap();
        assert_eq!(r.insert(0, b"abcdefgh"), 8);
        assert!(r.fin_reached());
        assert_eq!(r.window(), 0);
        assert_eq!(r.data_ack(), 9);
        assert_eq!(r.right_edge(), r.data_ack());
        assert_eq!(read_all(&mut r), b"abcdefgh");
        assert!(r.is_finished());
        assert_eq!(r.right_edge(), 16);
    }

    #[test]
    fn fin_below_received_data_is_refused() {
        let mut r = DataRecv::new(64);
        r.insert(0, b"abcdef");
        assert_eq!(
            r.set_fin(3),
            Err(RecvError::FinBeforeData { fin: 3, end: 6 })
        );
        assert!(r.set_fin(6).is_ok());
        assert!(!r.is_finished() && r.fin_reached());
    }

    #[test]
    fn random_pieces_in_random_order_reassemble_exactly() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let mut r = DataRecv::new(2048);
            let mut out = Vec::new();
            let mut guard = 0;
            while out.len() < data.len() {
                guard += 1;
                assert!(guard < 100_000);
                // a random piece near the window, possibly overlapping or duplicate
                let base = r.next_expected() as usize;
                let start = (base + (next() % 2500) as usize).saturating_sub(500);
                let len = 1 + (next() % 700) as usize;
                let end = (start + len).min(data.len());
                if start < end {
                    r.insert(start as u64, &data[start..end]);
                }
                if next() % 3 == 0 {
                    let mut buf = vec![0u8; (next() % 1500) as usize];
                    let n = r.read(&mut buf);
                    out.extend_from_slice(&buf[..n]);
                }
            }
            assert_eq!(out, data);
        }
    }
}
