//! Per-subflow DSS mapping state (RFC 8684 §3.3.1).
//!
//! Subflow positions are the TCP engine's stream offsets (0 = the first payload byte, whose
//! relative subflow sequence number is 1); data positions are data offsets
//! ([`super::dsn::DsnSpace`]).
//!
//! **Transmit side** ([`TxMap`]): every time the connection writes bytes of its data stream
//! into a subflow's TCB it records which subflow offsets carry which data offsets, as DSS
//! mappings of up to [`MAX_MAPPING_LEN`] bytes (Linux maps up to 64 KiB per DSS too). A
//! mapping is fixed when its first segment goes out; that segment and every retransmission
//! of its bytes carry the DSS (with the checksum over the whole mapping when checksums are
//! in use), the other segments of the mapping carry none, which saves 28 option bytes on
//! most segments.
//!
//! **Receive side** ([`RxMap`]): received mappings are stored until the subflow's in-order
//! data reaches them; data not yet covered by a mapping stays in the subflow's receive
//! buffer (held, not acknowledged at the data level) until one arrives. A mapping that
//! contradicts an earlier one for the same bytes is an error the connection turns into a
//! subflow reset (Linux counts `DSSNotMatching`); the infinite mapping switches the subflow
//! to fallback (every later subflow byte maps one-to-one).

use std::collections::VecDeque;

use crate::crypto::dss_checksum_parts;
use crate::wire::mptcp::DssMapping;
use crate::wire::Payload;

use super::dsn::DsnSpace;

mod rx;
pub use rx::{RxMap, RxMapping, RxStep};

/// Most received mappings held ahead of the data (hostile peers cannot grow the table).
/// Senders map each segment (Linux and braid alike), so after a loss the table holds one
/// mapping per out-of-order segment: a whole receive window (4 MiB of 1400-byte segments is
/// about 3000; 512 reset the subflow on the first loss of a fast path).
pub const MAX_RX_MAPPINGS: usize = 16384;
/// Most transmit chunks held (each is at least one byte of the subflow's send buffer).
pub const MAX_TX_CHUNKS: usize = 1 << 16;

/// A received mapping that cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A mapping maps bytes differently than an earlier one (Linux: DSSNotMatching).
    #[error("DSS mapping does not match an earlier one")]
    NotMatching,
    /// Too many mappings ahead of the data.
    #[error("too many DSS mappings pending")]
    TooMany,
    /// A mapping longer than the subflow's receive buffer can hold while it is verified.
    #[error("DSS mapping of {len} bytes exceeds the buffer")]
    TooLong { len: u64 },
    /// The subflow sequence number is outside any plausible range.
    #[error("DSS mapping at an implausible subflow sequence number")]
    BadSubflowSeq,
    /// The DSN is outside any plausible range.
    #[error("DSS mapping at an implausible data sequence number")]
    BadDsn,
}

/// The most payload bytes one transmitted DSS mapping covers: the data-level length is 16
/// bits and counts a DATA_FIN too (Linux maps at most 64 KiB per DSS as well).
pub const MAX_MAPPING_LEN: u64 = u16::MAX as u64 - 1;

/// One transmit mapping: subflow offsets `[sub, sub + len)` carry data offsets
/// `[data, data + len)`. Until its first segment goes out it may still grow; from then on
/// (`sent`) it is fixed, and `wire` is what every segment that carries it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxChunk {
    sub: u64,
    data: u64,
    len: u64,
    sent: bool,
    wire: Option<(DssMapping, bool)>,
}

/// How an outgoing segment of new data relates to the transmit mappings (see
/// [`TxMap::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxSegment {
    /// The segment starts a mapping (or nothing maps it yet): it carries the DSS mapping.
    Start,
    /// The segment continues a mapping whose first segment went out already: it needs no
    /// mapping of its own (RFC 8684 §3.3.1: one mapping may cover many segments).
    Continuation,
}

/// Which subflow stream offsets carry which data offsets (transmit side), as the list of
/// DSS mappings the subflow sends.
///
/// Bytes written into the subflow's TCB are [`TxMap::record`]ed: a run that continues the
/// last mapping in both spaces joins it while that mapping has not been sent and stays
/// within [`MAX_MAPPING_LEN`]; otherwise a new mapping begins, and the caller marks a
/// segment boundary there so that no segment ever straddles two mappings. A mapping is
/// fixed ([`TxMap::seal`]) when its first segment is sent: that segment and every
/// retransmission carry the same DSS (also its DATA_FIN and checksum), and the segments in
/// between carry none.
#[derive(Debug, Default)]
pub struct TxMap {
    chunks: VecDeque<TxChunk>,
    /// Where the last lookup found its offset: the TCB asks about the segments it sends in
    /// order, so the next one is mostly in the same mapping or the one after it.
    hint: core::cell::Cell<usize>,
}

impl TxMap {
    pub fn new() -> TxMap {
        TxMap::default()
    }

    /// Records that subflow offsets `[sub, sub + len)` carry data offsets `[data, data + len)`,
    /// in mappings of at most `max_len` (at most [`MAX_MAPPING_LEN`]; the caller picks a
    /// whole number of segments, so a split leaves no short segment behind).
    /// `new_mapping(offset)` is called for every mapping this starts (its first subflow
    /// offset), where the caller must end segments. Returns false (and records nothing) when
    /// the table is full.
    pub fn record(
        &mut self,
        sub: u64,
        data: u64,
        mut len: u64,
        max_len: u64,
        mut new_mapping: impl FnMut(u64),
    ) -> bool {
        if len == 0 {
            return true;
        }
        let max_len = max_len.clamp(1, MAX_MAPPING_LEN);
        if self.chunks.len() + len.div_ceil(max_len) as usize > MAX_TX_CHUNKS {
            return false;
        }
        let (mut sub, mut data) = (sub, data);
        if let Some(last) = self.chunks.back_mut() {
            if !last.sent && last.sub + last.len == sub && last.data + last.len == data {
                let add = len.min(max_len.saturating_sub(last.len));
                last.len += add;
                (sub, data, len) = (sub + add, data + add, len - add);
            }
        }
        while len > 0 {
            let n = len.min(max_len);
            new_mapping(sub);
            self.chunks.push_back(TxChunk {
                sub,
                data,
                len: n,
                sent: false,
                wire: None,
            });
            (sub, data, len) = (sub + n, data + n, len - n);
        }
        true
    }

    /// The length of the last mapping if a run at subflow offset `sub` and data offset
    /// `data` would join it in [`TxMap::record`] (it is unsent and both offsets continue
    /// it), else 0.
    pub fn open_len(&self, sub: u64, data: u64) -> u64 {
        match self.chunks.back() {
            Some(last)
                if !last.sent && last.sub + last.len == sub && last.data + last.len == data =>
            {
                last.len
            }
            _ => 0,
        }
    }

    /// Whether a new segment of fresh data from subflow offset `sub` starts a mapping or
    /// continues one already on the wire.
    pub fn classify(&self, sub: u64) -> TxSegment {
        match self.find(sub).and_then(|i| self.chunks.get(i)) {
            Some(c) if c.sent && sub > c.sub => TxSegment::Continuation,
            _ => TxSegment::Start,
        }
    }

    /// The mapping that covers subflow offset `sub`, sealed: the first call for a mapping
    /// fixes it with `make(sub, data, len)` (the DSS mapping to repeat on every segment that
    /// carries it and whether it ends with the DATA_FIN, the caller deciding both and the
    /// checksum over its bytes); later calls return the same. A mapping
    /// whose first bytes were never sealed is cut at `sub` first (that cannot happen when
    /// segments are sent in order; it keeps the table consistent if they are not).
    pub fn seal(
        &mut self,
        sub: u64,
        make: impl FnOnce(u64, u64, u64) -> (DssMapping, bool),
    ) -> Option<(DssMapping, bool)> {
        let i = self.find(sub)?;
        let c = *self.chunks.get(i)?;
        if c.sent {
            return c.wire;
        }
        let i = if sub > c.sub {
            self.split(i, sub);
            i + 1
        } else {
            i
        };
        let c = self.chunks.get_mut(i)?;
        let wire = make(c.sub, c.data, c.len);
        c.sent = true;
        c.wire = Some(wire);
        Some(wire)
    }

    /// Cuts the mapping that covers `sub` so that `[sub, sub + len)` (clipped to it) is a
    /// mapping of its own, already on the wire by other means (MP_CAPABLE with data, which
    /// maps exactly its own segment): `wire` is the same mapping as a DSS, for its
    /// retransmissions. Returns the offset after it, where a new mapping begins (a segment
    /// boundary), if there is one.
    pub fn seal_exact(&mut self, sub: u64, len: u64, wire: DssMapping) -> Option<u64> {
        let mut i = self.find(sub)?;
        if self.chunks.get(i)?.sent {
            return None;
        }
        if self.chunks.get(i)?.sub < sub {
            self.split(i, sub);
            i += 1;
        }
        let c = *self.chunks.get(i)?;
        let end = sub + len;
        let rest = if end < c.sub + c.len {
            self.split(i, end);
            Some(end)
        } else {
            None
        };
        if let Some(c) = self.chunks.get_mut(i) {
            c.sent = true;
            c.wire = Some((wire, false));
        }
        rest
    }

    /// Whether the last mapping has not gone out yet (its DATA_FIN can still be decided).
    pub fn last_unsealed(&self) -> bool {
        self.chunks.back().is_some_and(|c| !c.sent)
    }

    /// Whether `len` more bytes can be recorded in mappings of at most `max_len`.
    pub fn has_room(&self, len: u64, max_len: u64) -> bool {
        let max_len = max_len.clamp(1, MAX_MAPPING_LEN);
        self.chunks.len() + len.div_ceil(max_len) as usize <= MAX_TX_CHUNKS
    }

    /// Splits chunk `i` at subflow offset `at` (inside it); the second half is unsent.
    fn split(&mut self, i: usize, at: u64) {
        let Some(c) = self.chunks.get_mut(i) else {
            return;
        };
        if at <= c.sub || at >= c.sub + c.len {
            return;
        }
        let head = at - c.sub;
        let tail = TxChunk {
            sub: at,
            data: c.data + head,
            len: c.len - head,
            sent: false,
            wire: None,
        };
        c.len = head;
        if c.wire.is_some() {
            // A sealed mapping is never cut (see `seal`); keep the halves consistent anyway.
            c.wire = None;
        }
        self.chunks.insert(i + 1, tail);
    }

    fn find(&self, sub: u64) -> Option<usize> {
        // New data is looked up at the newest mapping, the next segment to send in the
        // mapping of the last one or the one after it, and the first unacknowledged byte
        // (the send window's base, each time the subflow is polled) in the oldest one kept:
        // no search for them.
        let covers = |i: usize| {
            self.chunks
                .get(i)
                .is_some_and(|c| c.sub <= sub && sub < c.sub + c.len)
        };
        let last = self.chunks.len().checked_sub(1)?;
        if self.chunks.get(last).is_some_and(|c| c.sub <= sub) {
            return covers(last).then_some(last);
        }
        if covers(0) {
            return Some(0);
        }
        let h = self.hint.get();
        let i = [h, h + 1]
            .into_iter()
            .find(|&i| covers(i))
            .unwrap_or_else(|| self.chunks.partition_point(|c| c.sub + c.len <= sub));
        covers(i).then(|| {
            self.hint.set(i);
            i
        })
    }

    /// The data offset of subflow offset `sub` and how many bytes from there map
    /// contiguously within its mapping (up to `max`).
    pub fn lookup(&self, sub: u64, max: u64) -> Option<(u64, u64)> {
        let c = self.chunks.get(self.find(sub)?)?;
        let skip = sub - c.sub;
        Some((c.data + skip, (c.len - skip).min(max)))
    }

    /// Forgets the leading mappings below subflow offset `sub_una` (acknowledged by the
    /// subflow) whose data is below `data_una` too (DATA_ACKed). A mapping the subflow
    /// acknowledged but the connection did not is kept: a peer that closes the subflow may
    /// drop such bytes (Linux does when it had not moved them to the connection yet), and
    /// then they are sent again on another subflow ([`TxMap::data_ranges_from`] with 0).
    pub fn trim(&mut self, sub_una: u64, data_una: u64) {
        while let Some(c) = self.chunks.front_mut() {
            if c.sub + c.len <= sub_una && c.data + c.len <= data_una {
                self.chunks.pop_front();
                self.hint.set(self.hint.get().saturating_sub(1));
            } else {
                break;
            }
        }
    }

    /// The data ranges carried by subflow offsets at and above `sub_una` (sent or queued on
    /// the subflow, not yet acknowledged by it): what a scheduler reinjects on another
    /// subflow when this one goes stale. Adjacent mappings are merged.
    pub fn data_ranges_from(
        &self,
        sub_una: u64,
    ) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
        let mut it = self
            .chunks
            .iter()
            .filter_map(move |c| {
                let end = c.sub + c.len;
                if end <= sub_una {
                    return None;
                }
                let skip = sub_una.saturating_sub(c.sub);
                Some(c.data + skip..c.data + c.len)
            })
            .peekable();
        core::iter::from_fn(move || {
            let mut r = it.next()?;
            while let Some(n) = it.next_if(|n| n.start == r.end) {
                r.end = n.end;
            }
            Some(r)
        })
    }

    /// Number of mappings held.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

//= rfc8684#3.3.1
//= The relative subflow sequence number of a byte is its offset from the subflow's ISN
//   (the SYN takes 0, so the first payload byte has 1).
/// The wire relative subflow sequence number of subflow stream offset `sub`.
pub fn relative_seq(sub: u64) -> u32 {
    sub.wrapping_add(1) as u32
}

/// The DSS mapping of `len` payload bytes at subflow offset `sub` carrying data offset
/// `data`, plus the DATA_FIN when `fin` (counted in the data-level length, RFC 8684
/// §3.3.3); with `checksum_over` (the mapping's bytes) the DSS checksum.
pub fn tx_mapping_of(
    space: &DsnSpace,
    sub: u64,
    data: u64,
    len: u64,
    fin: bool,
    checksum_over: Option<Payload<'_>>,
) -> DssMapping {
    let data_len = u16::try_from(len)
        .unwrap_or(u16::MAX)
        .saturating_add(u16::from(fin));
    let dsn = space.dsn(data);
    //= rfc8684#3.3.3
    //= A DATA_FIN without data has a subflow sequence number of 0 and a length of 1.
    let subflow_seq = if len == 0 { 0 } else { relative_seq(sub) };
    let checksum =
        checksum_over.map(|payload| dss_checksum_parts(dsn, subflow_seq, data_len, payload));
    DssMapping {
        dsn,
        dsn_64: true,
        subflow_seq,
        data_len,
        checksum,
    }
}

/// [`tx_mapping_of`] for exactly `payload` (the checksum over it when `checksum`).
pub fn tx_mapping(
    space: &DsnSpace,
    sub: u64,
    data: u64,
    payload: &[u8],
    fin: bool,
    checksum: bool,
) -> DssMapping {
    let len = payload.len() as u64;
    tx_mapping_of(
        space,
        sub,
        data,
        len,
        fin,
        checksum.then_some(payload.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> DsnSpace {
        DsnSpace::from_idsn(u64::MAX - 10)
    }

    #[test]
    fn tx_map_records_merges_looks_up_and_trims() {
        let mut t = TxMap::new();
        let mut starts = Vec::new();
        t.record(0, 100, 10, MAX_MAPPING_LEN, |o| starts.push(o));
        t.record(10, 110, 5, MAX_MAPPING_LEN, |o| starts.push(o)); // contiguous and unsent: one mapping
        assert_eq!(t.len(), 1);
        t.record(15, 500, 5, MAX_MAPPING_LEN, |o| starts.push(o)); // a reinjection-style jump
        assert_eq!(t.len(), 2);
        assert_eq!(starts, vec![0, 15]);
        assert_eq!(t.lookup(3, 100), Some((103, 12)));
        assert_eq!(t.lookup(3, 4), Some((103, 4)));
        assert_eq!(t.lookup(16, 100), Some((501, 4)));
        assert_eq!(t.lookup(20, 100), None);
        let r: Vec<_> = t.data_ranges_from(12).collect();
        assert_eq!(r, vec![112..115, 500..505]);
        let r: Vec<_> = t.data_ranges_from(17).collect();
        assert_eq!(r, vec![502..505]);
        // Acknowledged by the subflow but not DATA_ACKed: kept, so a subflow that closes
        // hands these bytes to the others.
        t.trim(15, 100);
        assert_eq!(t.len(), 2);
        let r: Vec<_> = t.data_ranges_from(0).collect();
        assert_eq!(r, vec![100..115, 500..505]);
        t.trim(15, 115);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(3, 100), None);
    }

    #[test]
    fn a_sent_mapping_is_fixed_and_later_bytes_start_a_new_one() {
        let s = space();
        let mut t = TxMap::new();
        let mut starts = Vec::new();
        t.record(0, 0, 3000, MAX_MAPPING_LEN, |o| starts.push(o));
        assert_eq!(t.classify(0), TxSegment::Start);
        let mk = |sub, data, len| (tx_mapping_of(&s, sub, data, len, false, None), false);
        let (m, _) = t.seal(0, mk).expect("mapped");
        assert_eq!((m.subflow_seq, m.data_len), (1, 3000));
        // The segments after the first continue it; a retransmission gets the same DSS.
        assert_eq!(t.classify(1400), TxSegment::Continuation);
        assert_eq!(t.seal(1400, |_, _, _| unreachable!()), Some((m, false)));
        // Contiguous bytes written now cannot join a mapping already on the wire.
        t.record(3000, 3000, 500, MAX_MAPPING_LEN, |o| starts.push(o));
        assert_eq!(starts, vec![0, 3000]);
        assert_eq!(t.classify(3000), TxSegment::Start);
        // Merged for reinjection all the same.
        assert_eq!(t.data_ranges_from(0).collect::<Vec<_>>(), vec![0..3500]);
    }

    #[test]
    fn mappings_are_at_most_64_kib_and_exact_ones_are_cut_out() {
        let mut t = TxMap::new();
        let mut starts = Vec::new();
        t.record(0, 0, 2 * MAX_MAPPING_LEN + 10, MAX_MAPPING_LEN, |o| {
            starts.push(o)
        });
        assert_eq!(starts, vec![0, MAX_MAPPING_LEN, 2 * MAX_MAPPING_LEN]);
        assert_eq!(t.lookup(5, u64::MAX), Some((5, MAX_MAPPING_LEN - 5)));
        // Split where the caller says (whole segments), also when extending.
        let mut u = TxMap::new();
        let mut at = Vec::new();
        u.record(0, 0, 1000, 2500, |o| at.push(o));
        u.record(1000, 1000, 4000, 2500, |o| at.push(o));
        assert_eq!(at, vec![0, 2500]);
        assert_eq!(u.lookup(2600, u64::MAX), Some((2600, 2400)));
        // MP_CAPABLE with data maps its own segment: the rest is a new mapping, and a
        // retransmission of the segment carries that mapping as a DSS.
        let s = space();
        let wire = tx_mapping_of(&s, 0, 0, 1000, false, None);
        assert_eq!(t.seal_exact(0, 1000, wire), Some(1000));
        assert_eq!(t.seal(0, |_, _, _| unreachable!()), Some((wire, false)));
        assert_eq!(t.classify(1000), TxSegment::Start);
        assert_eq!(
            t.lookup(1000, u64::MAX),
            Some((1000, MAX_MAPPING_LEN - 1000))
        );
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn tx_mapping_with_checksum_and_fin() {
        let s = space();
        let m = tx_mapping(&s, 0, 0, b"hello", false, true);
        assert_eq!(m.subflow_seq, 1);
        assert_eq!(m.data_len, 5);
        assert_eq!(m.dsn, s.dsn(0));
        let sum = m.checksum.unwrap_or(0);
        assert!(crate::crypto::verify_dss_checksum(
            m.dsn, 1, 5, b"hello", sum
        ));
        let f = tx_mapping(&s, 5, 5, b"", true, false);
        assert_eq!((f.subflow_seq, f.data_len, f.checksum), (0, 1, None));
        let f = tx_mapping(&s, 5, 5, b"ab", true, false);
        assert_eq!((f.subflow_seq, f.data_len), (6, 3));
    }
}
