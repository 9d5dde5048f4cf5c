//! The send buffer (contiguous bytes, segments reference ranges of it) and the receive buffer
//! (a ring with out-of-order reassembly bounded by its capacity).

use super::ranges::RangeSet;
use crate::wire::Payload;

/// The `n` bytes of a ring from stream offset `at` on (stream byte `o` lives at
/// `o % ring.len()`): one run, or two where they wrap around its end. `n` is at most the
/// ring's length, and the ring is not empty unless `n` is 0.
fn ring_get(ring: &[u8], at: u64, n: usize) -> Payload<'_> {
    if n == 0 {
        return Payload::default();
    }
    let pos = (at % ring.len() as u64) as usize;
    let first = n.min(ring.len() - pos);
    Payload {
        head: &ring[pos..pos + first],
        tail: &ring[..n - first],
    }
}

/// Writes `src` into a ring from stream offset `at` on, wrapping around its end (`src` is
/// at most the ring's length).
fn ring_put(ring: &mut [u8], at: u64, src: &[u8]) {
    if src.is_empty() {
        return;
    }
    let pos = (at % ring.len() as u64) as usize;
    let first = src.len().min(ring.len() - pos);
    ring[pos..pos + first].copy_from_slice(&src[..first]);
    ring[..src.len() - first].copy_from_slice(&src[first..]);
}

/// Bytes the application wrote and the peer has not acknowledged yet.
///
/// A ring: byte `offset` of the stream lives at `offset % ring.len()`, so acknowledged
/// bytes are dropped by moving `base` and nothing is ever moved inside the buffer. The
/// ring is allocated on the first write and doubled (a power of two, up to the capacity
/// rounded up) only as far as the bytes held reach, so an idle connection costs nothing.
/// A segment's payload is one or two runs of it ([`Payload`]), copied once into the
/// outgoing packet.
///
/// A counting buffer ([`SendBuffer::counting`]) keeps the account without the bytes, for an
/// owner that holds them itself: an MPTCP subflow's bytes live once in the connection's
/// data-level buffer, for every subflow and retransmission.
#[derive(Debug)]
pub struct SendBuffer {
    ring: Vec<u8>,
    /// Stream offset of the first byte held (the first unacknowledged byte).
    base: u64,
    /// Bytes held.
    len: usize,
    capacity: usize,
    /// Counts only: no ring, and [`SendBuffer::slice`] is empty.
    counting: bool,
}

/// The first ring a send buffer allocates.
pub const MIN_SEND_RING: usize = 16 * 1024;

impl SendBuffer {
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            ring: Vec::new(),
            base: 0,
            len: 0,
            capacity,
            counting: false,
        }
    }

    /// A buffer that counts what is written and acknowledged but keeps no byte (see
    /// [`SendBuffer`]).
    pub fn counting(capacity: usize) -> Self {
        SendBuffer {
            counting: true,
            ..SendBuffer::new(capacity)
        }
    }

    /// The most bytes it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A counting buffer keeps its bytes from now on: `parts` are every byte it holds, in
    /// order (false, and nothing changes, when they are not as many).
    pub fn keep(&mut self, parts: &[Payload<'_>]) -> bool {
        if !self.counting {
            return true;
        }
        if parts.iter().map(|p| p.len()).sum::<usize>() != self.len {
            return false;
        }
        let held = core::mem::take(&mut self.len);
        self.counting = false;
        self.reserve(held);
        let mut at = self.base;
        for p in parts {
            for run in [p.head, p.tail] {
                ring_put(&mut self.ring, at, run);
                at += run.len() as u64;
            }
        }
        self.len = held;
        true
    }

    /// Keeps no byte (see [`SendBuffer::counting`]).
    pub fn is_counting(&self) -> bool {
        self.counting
    }

    /// Bytes held (written, not yet acknowledged).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free space.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len)
    }

    /// Bytes of ring allocated now.
    pub fn allocated(&self) -> usize {
        self.ring.len()
    }

    /// Enough free space to wake a writer that found the buffer full: a quarter of it (as
    /// Linux wakes a blocked writer only once a good part of its queue is free, not at each
    /// ACK, so that a bulk writer runs once per many ACKs).
    pub fn wakes_writer(&self) -> bool {
        self.free() >= (self.capacity / 4).max(1)
    }

    /// Stream offset just past the last byte written.
    pub fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if !self.counting {
            self.reserve(self.len + n);
            let end = self.end();
            ring_put(&mut self.ring, end, &bytes[..n]);
        }
        self.len += n;
        n
    }

    /// [`SendBuffer::write`] of both runs of a payload, in order.
    pub fn write_parts(&mut self, bytes: Payload<'_>) -> usize {
        let n = self.write(bytes.head);
        if n < bytes.head.len() {
            return n;
        }
        n + self.write(bytes.tail)
    }

    /// Grows the ring to hold `need` bytes: the next power of two, at least
    /// [`MIN_SEND_RING`], the held bytes moved to their places in the new ring.
    fn reserve(&mut self, need: usize) {
        if need <= self.ring.len() {
            return;
        }
        let size = need
            .max(MIN_SEND_RING)
            .max(self.ring.len() * 2)
            .next_power_of_two();
        let mut ring = vec![0u8; size];
        let held = ring_get(&self.ring, self.base, self.len);
        ring_put(&mut ring, self.base, held.head);
        ring_put(&mut ring, self.base + held.head.len() as u64, held.tail);
        self.ring = ring;
    }

    /// Drops every byte below stream offset `offset`.
    pub fn ack_to(&mut self, offset: u64) {
        if offset <= self.base {
            return;
        }
        let n = usize::try_from(offset - self.base)
            .unwrap_or(usize::MAX)
            .min(self.len);
        self.base += n as u64;
        self.len -= n;
        // Everything acknowledged and the ring at its smallest (no bulk flow behind it): an
        // idle connection holds no send memory; the next write allocates it again.
        if self.len == 0 && self.ring.len() <= MIN_SEND_RING {
            self.ring = Vec::new();
        }
    }

    /// The bytes at stream offsets `[from, to)`, clipped to what is held: one run, or two
    /// where they wrap around the ring's end.
    pub fn slice(&self, from: u64, to: u64) -> Payload<'_> {
        let lo = from.max(self.base);
        let hi = to.min(self.end());
        if hi <= lo || self.counting {
            return Payload::default();
        }
        ring_get(&self.ring, lo, (hi - lo) as usize)
    }
}

/// Maximum number of disjoint out-of-order ranges kept (the byte budget is the capacity).
pub const MAX_OOO_RANGES: usize = 512;

/// The first ring a receive buffer allocates (then doubled as the bytes held need).
pub const MIN_RECV_RING: usize = 16 * 1024;

/// Received bytes: in-order data waiting for the application and out-of-order data waiting
/// for the gap before it to fill. All of it lives in one ring of at most `capacity` bytes.
#[derive(Debug)]
pub struct RecvBuffer {
    /// Allocated on the first byte stored, so idle and half-open connections cost nothing,
    /// and grown (doubling, up to `capacity`) only as far as the bytes held reach: a reader
    /// that keeps up, such as an MPTCP connection pulling from its subflows, keeps a small
    /// one however much passes through. Byte `offset` lives at `offset % ring.len()`.
    ring: Vec<u8>,
    capacity: usize,
    /// Stream offset of the first unread byte.
    read: u64,
    /// Stream offset just past the in-order data.
    contiguous: u64,
    /// Out-of-order data above `contiguous`.
    ooo: RangeSet,
}

impl RecvBuffer {
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            ring: Vec::new(),
            capacity: capacity.max(1),
            read: 0,
            contiguous: 0,
            ooo: RangeSet::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes readable now.
    pub fn readable(&self) -> usize {
        (self.contiguous - self.read) as usize
    }

    /// Stream offset just past the in-order data (the next byte expected).
    pub fn contiguous_end(&self) -> u64 {
        self.contiguous
    }

    /// Space from the next expected byte to the end of the buffer.
    pub fn window(&self) -> usize {
        self.capacity() - self.readable()
    }

    /// Out-of-order ranges held.
    pub fn ooo(&self) -> &RangeSet {
        &self.ooo
    }

    /// Stores `data` at stream offset `offset`. Bytes outside the buffer's reach are dropped.
    /// Returns the number of bytes that became readable.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> usize {
        let limit = self.read + self.capacity() as u64;
        let mut lo = offset;
        let mut hi = offset + data.len() as u64;
        lo = lo.max(self.contiguous);
        hi = hi.min(limit);
        if hi <= lo {
            return 0;
        }
        if lo > self.contiguous && self.ooo.len() >= MAX_OOO_RANGES && !self.ooo.touches(lo, hi) {
            // A new disjoint range would exceed the bound: drop (the peer retransmits).
            return 0;
        }
        let src = &data[(lo - offset) as usize..(hi - offset) as usize];
        self.reserve_to(hi);
        ring_put(&mut self.ring, lo, src);
        let before = self.contiguous;
        if lo == self.contiguous {
            self.contiguous = hi;
            while let Some((a, b)) = self.ooo.first() {
                if a > self.contiguous {
                    break;
                }
                self.ooo.pop_first();
                self.contiguous = self.contiguous.max(b);
            }
        } else {
            self.ooo.insert(lo, hi);
        }
        (self.contiguous - before) as usize
    }

    /// Whether `n` bytes arriving in order could pass the ring by ([`RecvBuffer::pass`]):
    /// nothing is unread, nothing waits out of order, and they fit.
    pub fn can_pass(&self, n: usize) -> bool {
        self.readable() == 0 && self.ooo.is_empty() && n <= self.capacity
    }

    /// Counts `n` in-order bytes as received and read at once: their reader took them
    /// straight from the segment (see [`RecvBuffer::can_pass`]), so they are never stored.
    pub fn pass(&mut self, n: usize) {
        debug_assert!(self.can_pass(n));
        self.contiguous += n as u64;
        self.read = self.contiguous;
    }

    /// Bytes of ring allocated now.
    pub fn allocated(&self) -> usize {
        self.ring.len()
    }

    /// Grows the ring so that it holds every byte from the first unread one up to stream
    /// offset `hi` (at most `capacity` bytes, which `write_at` never exceeds).
    fn reserve_to(&mut self, hi: u64) {
        let need = usize::try_from(hi - self.read).unwrap_or(usize::MAX);
        let old = self.ring.len();
        if need <= old {
            return;
        }
        let mut size = old.max(MIN_RECV_RING.min(self.capacity));
        while size < need {
            size = size.saturating_mul(2);
        }
        let size = size.min(self.capacity);
        let mut ring = vec![0; size];
        // Everything held lies in the `old` bytes from the first unread one: each keeps its
        // offset and moves to that offset's slot in the larger ring.
        let held = ring_get(&self.ring, self.read, old);
        ring_put(&mut ring, self.read, held.head);
        ring_put(&mut ring, self.read + held.head.len() as u64, held.tail);
        self.ring = ring;
    }

    /// Copies readable bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let p = self.peek(out.len());
        let n = p.len();
        p.copy_to(out);
        self.consume(n);
        n
    }

    /// Up to `max` readable bytes, in place (one run, or two where they wrap around the
    /// ring's end), for a reader that copies them straight to where they go; then
    /// [`RecvBuffer::consume`].
    pub fn peek(&self, max: usize) -> Payload<'_> {
        ring_get(&self.ring, self.read, max.min(self.readable()))
    }

    /// Marks `n` readable bytes read.
    pub fn consume(&mut self, n: usize) {
        self.read += n.min(self.readable()) as u64;
    }

    /// Frees the ring when the application read everything, nothing waits out of order and
    /// the ring is at its smallest (no bulk flow behind it): an idle connection holds no
    /// receive memory; the next byte allocates it again. Called from the application's reads,
    /// and by an MPTCP connection after moving a subflow's bytes on (most pass it by).
    pub fn release_if_drained(&mut self) {
        if self.readable() == 0 && self.ooo.is_empty() && self.ring.len() <= MIN_RECV_RING {
            self.ring = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_bytes_taken_elsewhere_pass_by_without_a_ring() {
        let mut r = RecvBuffer::new(1000);
        assert!(r.can_pass(1000) && !r.can_pass(1001));
        r.pass(600);
        assert_eq!(
            (r.contiguous_end(), r.readable(), r.allocated()),
            (600, 0, 0)
        );
        // Bytes that wait (out of order here) stop the passing until they are read.
        assert_eq!(r.write_at(700, &[1; 50]), 0);
        assert!(!r.can_pass(100));
        assert_eq!(r.write_at(600, &[2; 100]), 150);
        assert!(!r.can_pass(1));
        let mut out = [0u8; 200];
        assert_eq!(r.read(&mut out), 150);
        assert!(r.can_pass(1000));
        r.pass(10);
        assert_eq!(r.contiguous_end(), 760);
    }

    #[test]
    fn a_full_send_buffer_wakes_its_writer_only_once_a_quarter_is_free() {
        let mut b = SendBuffer::new(1000);
        assert_eq!(b.write(&[7; 1000]), 1000);
        assert!(!b.wakes_writer());
        b.ack_to(249);
        assert!(!b.wakes_writer(), "249 bytes free of 1000: not yet");
        b.ack_to(250);
        assert!(b.wakes_writer(), "a quarter free");
        // A buffer smaller than four bytes wakes at one free byte.
        let mut t = SendBuffer::new(3);
        assert_eq!(t.write(&[1; 3]), 3);
        assert!(!t.wakes_writer());
        t.ack_to(1);
        assert!(t.wakes_writer());
    }

    #[test]
    fn send_buffer_slices_and_acks() {
        let mut b = SendBuffer::new(10);
        assert_eq!(b.write(b"hello world"), 10);
        assert_eq!(b.slice(2, 5).to_vec(), b"llo");
        b.ack_to(6);
        assert_eq!(b.len(), 4);
        assert_eq!(b.slice(0, 8).to_vec(), b"wo");
        assert_eq!(b.write(b"XYZ"), 3);
        assert_eq!(b.slice(6, 13).to_vec(), b"worlXYZ");
        assert_eq!(b.end(), 13);
    }

    /// The stream's byte at `i`.
    fn pat(i: u64) -> u8 {
        (i.wrapping_mul(31) >> 3) as u8
    }

    #[test]
    fn the_ring_wraps_and_grows_without_losing_a_byte() {
        let cap = 3 * MIN_SEND_RING;
        let mut b = SendBuffer::new(cap);
        let (mut written, mut acked) = (0u64, 0u64);
        let mut chunk = vec![0u8; 7000];
        for round in 0..200u64 {
            // Fill (growing as the bytes held reach), check, then acknowledge a part.
            loop {
                for (k, c) in chunk.iter_mut().enumerate() {
                    *c = pat(written + k as u64);
                }
                let n = b.write(&chunk);
                written += n as u64;
                if n < chunk.len() {
                    break;
                }
            }
            assert_eq!(b.len() as u64, written - acked);
            assert!(b.allocated() >= b.len() && b.allocated() <= 4 * MIN_SEND_RING);
            let p = b.slice(acked, written);
            assert_eq!(p.len() as u64, written - acked);
            for (k, c) in p.to_vec().iter().enumerate() {
                assert_eq!(*c, pat(acked + k as u64), "round {round} byte {k}");
            }
            acked += (written - acked) * (1 + round % 3) / 4 + 1;
            b.ack_to(acked);
        }
        assert!(written > 50 * cap as u64);
    }

    #[test]
    fn an_idle_send_buffer_allocates_nothing() {
        let mut b = SendBuffer::new(4 << 20);
        assert_eq!(b.allocated(), 0);
        assert_eq!(b.write(&[1; 100]), 100);
        assert_eq!(b.allocated(), MIN_SEND_RING);
        assert!(b.slice(0, 0).is_empty());
        b.ack_to(50);
        assert_eq!(b.allocated(), MIN_SEND_RING, "bytes still held");
        b.ack_to(100);
        assert_eq!(b.allocated(), 0, "all acknowledged: the ring goes");
        assert_eq!(b.write(b"again"), 5);
        assert_eq!(b.slice(100, 105).to_vec(), b"again");
        // A ring that grew (a bulk flow) stays when it drains.
        let big = vec![7u8; 3 * MIN_SEND_RING];
        assert_eq!(b.write(&big), big.len());
        b.ack_to(b.end());
        assert!(b.allocated() > MIN_SEND_RING);
    }

    #[test]
    fn a_counting_buffer_keeps_the_account_and_no_byte_until_it_keeps_them() {
        let mut b = SendBuffer::counting(10);
        assert_eq!(b.write(b"abcdefgh"), 8);
        assert_eq!(b.write(b"ijkl"), 2, "bounded like any other");
        assert_eq!((b.len(), b.free(), b.allocated()), (10, 0, 0));
        assert!(b.slice(0, 4).is_empty());
        b.ack_to(3);
        assert_eq!((b.end(), b.len()), (10, 7));
        // The owner hands the held bytes over: not as many, refused.
        assert!(!b.keep(&[Payload::from(&b"defg"[..])]));
        assert!(b.is_counting());
        let (head, tail) = (&b"defg"[..], &b"hij"[..]);
        assert!(b.keep(&[Payload { head, tail }]));
        assert!(!b.is_counting());
        assert_eq!(b.slice(3, 10).to_vec(), b"defghij");
        assert_eq!(b.write(b"klmn"), 3);
        b.ack_to(5);
        assert_eq!(b.slice(0, 20).to_vec(), b"fghijklm");
    }

    #[test]
    fn a_drained_receive_ring_goes_only_when_small_and_read() {
        let mut r = RecvBuffer::new(1 << 20);
        r.write_at(0, b"hello");
        r.write_at(10, b"later");
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 5);
        r.release_if_drained();
        assert_eq!(r.allocated(), MIN_RECV_RING, "out-of-order bytes wait");
        r.write_at(5, b"12345");
        assert_eq!(r.read(&mut out), 10);
        assert_eq!(&out[..10], b"12345later");
        r.release_if_drained();
        assert_eq!(r.allocated(), 0);
        r.write_at(15, b"!");
        assert_eq!(r.read(&mut out), 1);
        assert_eq!(out[0], b'!');
        let big = vec![1u8; 3 * MIN_RECV_RING];
        r.write_at(16, &big);
        let mut sink = vec![0u8; big.len()];
        assert_eq!(r.read(&mut sink), big.len());
        r.release_if_drained();
        assert!(r.allocated() > MIN_RECV_RING, "a grown ring stays");
    }

    #[test]
    fn out_of_order_ranges_are_bounded() {
        let mut r = RecvBuffer::new(1 << 20);
        for i in 0..(MAX_OOO_RANGES as u64 + 100) {
            r.write_at(2 + 2 * i, b"x");
        }
        assert_eq!(r.ooo().len(), MAX_OOO_RANGES);
        // Data extending an existing range is still taken.
        assert_eq!(r.write_at(3, b"y"), 0);
        assert_eq!(r.ooo().len(), MAX_OOO_RANGES - 1);
        // In-order data drains what is contiguous.
        assert_eq!(r.write_at(0, b"ab"), 5);
    }

    #[test]
    fn recv_ring_grows_only_as_far_as_the_bytes_held_reach() {
        let cap = 1 << 20;
        let mut r = RecvBuffer::new(cap);
        assert_eq!(r.allocated(), 0);
        // A reader that keeps up: 8 MiB through, never more than 3000 bytes held.
        let byte = |i: u64| (i.wrapping_mul(2654435761) >> 9) as u8;
        let mut at = 0u64;
        let mut out = vec![0u8; 4096];
        while at < 8 << 20 {
            let piece: Vec<u8> = (at..at + 1448).map(byte).collect();
            assert_eq!(r.write_at(at, &piece), 1448);
            at += 1448;
            if r.readable() > 1500 {
                let n = r.read(&mut out);
                let first = at - r.readable() as u64 - n as u64;
                assert!(out[..n].iter().zip(first..).all(|(&b, i)| b == byte(i)));
            }
        }
        assert_eq!(r.allocated(), MIN_RECV_RING);
        // Out-of-order data far ahead grows it (doubling, wrapped bytes kept), up to the
        // capacity.
        let held = r.readable() as u64;
        let start = at - held;
        let far = start + 100_000;
        let piece: Vec<u8> = (far..far + 1000).map(byte).collect();
        assert_eq!(r.write_at(far, &piece), 0);
        assert_eq!(r.allocated(), 128 * 1024);
        let gap: Vec<u8> = (at..far).map(byte).collect();
        assert_eq!(r.write_at(at, &gap), (far + 1000 - at) as usize);
        let mut all = vec![0u8; r.readable()];
        assert_eq!(r.read(&mut all), (far + 1000 - start) as usize);
        assert!(all.iter().zip(start..).all(|(&b, i)| b == byte(i)));
        let end = far + 1000;
        let big: Vec<u8> = (end..end + cap as u64 + 10).map(byte).collect();
        assert_eq!(r.write_at(end, &big), cap);
        assert_eq!(r.allocated(), cap);
        let mut all = vec![0u8; cap];
        assert_eq!(r.read(&mut all), cap);
        assert!(all.iter().zip(end..).all(|(&b, i)| b == byte(i)));
    }

    #[test]
    fn recv_buffer_reassembles_and_wraps() {
        let mut r = RecvBuffer::new(8);
        assert_eq!(r.write_at(3, b"def"), 0);
        assert_eq!(r.ooo().len(), 1);
        assert_eq!(r.write_at(0, b"abc"), 6);
        assert!(r.ooo().is_empty());
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // wraps around the ring; bytes beyond the capacity are dropped
        assert_eq!(r.write_at(6, b"ghijklmnop"), 6);
        let mut out = [0u8; 16];
        let n = r.read(&mut out);
        assert_eq!(&out[..n], b"efghijkl");
        assert_eq!(r.window(), 8);
    }
}
