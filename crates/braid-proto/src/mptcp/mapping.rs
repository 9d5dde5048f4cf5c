//! Per-subflow DSS mapping state (RFC 8684 §3.3.1).
//!
//! Subflow positions are the TCP engine's stream offsets (0 = the first payload byte, whose
//! relative subflow sequence number is 1); data positions are data offsets
//! ([`super::dsn::DsnSpace`]).
//!
//! **Transmit side** ([`TxMap`]): every time the connection writes bytes of its data stream
//! into a subflow's TCB it records which subflow offsets carry which data offsets. Each
//! outgoing segment then gets a mapping covering exactly its own payload (one mapping per
//! segment, also on retransmissions, so a repacketised retransmission is always mapped right;
//! Linux maps up to 64 KiB per DSS, which this choice is a valid special case of). The DSS
//! checksum, when checksums are in use, is computed over the segment's payload.
//!
//! **Receive side** ([`RxMap`]): received mappings are stored until the subflow's in-order
//! data reaches them; data not yet covered by a mapping stays in the subflow's receive
//! buffer (held, not acknowledged at the data level) until one arrives. A mapping that
//! contradicts an earlier one for the same bytes is an error the connection turns into a
//! subflow reset (Linux counts `DSSNotMatching`); the infinite mapping switches the subflow
//! to fallback (every later subflow byte maps one-to-one).

use std::collections::VecDeque;

use crate::crypto::DssChecksum;
use crate::wire::mptcp::DssMapping;

use super::dsn::DsnSpace;

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

/// One contiguous run of the transmit mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxChunk {
    sub: u64,
    data: u64,
    len: u64,
}

/// Which subflow stream offsets carry which data offsets (transmit side).
#[derive(Debug, Default)]
pub struct TxMap {
    chunks: VecDeque<TxChunk>,
}

impl TxMap {
    pub fn new() -> TxMap {
        TxMap::default()
    }

    /// Records that subflow offsets `[sub, sub + len)` carry data offsets `[data, data + len)`.
    /// Returns false (and records nothing) when the table is full.
    pub fn record(&mut self, sub: u64, data: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        if let Some(last) = self.chunks.back_mut() {
            if last.sub + last.len == sub && last.data + last.len == data {
                last.len += len;
                return true;
            }
        }
        if self.chunks.len() >= MAX_TX_CHUNKS {
            return false;
        }
        self.chunks.push_back(TxChunk { sub, data, len });
        true
    }

    /// Whether bytes written at subflow offset `sub` with data offset `data` continue the
    /// last chunk. One DSS maps one contiguous run, so a segment must not straddle two
    /// runs: a scheduler appends a discontiguous run (a reinjection) only when the subflow has
    /// nothing unacknowledged left (every later segment then starts in the new run).
    pub fn continues(&self, sub: u64, data: u64) -> bool {
        self.chunks
            .back()
            .is_none_or(|c| c.sub + c.len == sub && c.data + c.len == data)
    }

    /// The data offset of subflow offset `sub` and how many bytes from there map
    /// contiguously (up to `max`).
    pub fn lookup(&self, sub: u64, max: u64) -> Option<(u64, u64)> {
        let i = self.chunks.partition_point(|c| c.sub + c.len <= sub);
        let c = self.chunks.get(i)?;
        if c.sub > sub {
            return None;
        }
        let skip = sub - c.sub;
        Some((c.data + skip, (c.len - skip).min(max)))
    }

    /// Forgets the leading chunks below subflow offset `sub_una` (acknowledged by the
    /// subflow) whose data is below `data_una` too (DATA_ACKed). A chunk the subflow
    /// acknowledged but the connection did not is kept: a peer that closes the subflow may
    /// drop such bytes (Linux does when it had not moved them to the connection yet), and
    /// then they are sent again on another subflow ([`TxMap::data_ranges_from`] with 0).
    pub fn trim(&mut self, sub_una: u64, data_una: u64) {
        while let Some(c) = self.chunks.front_mut() {
            if c.sub + c.len <= sub_una && c.data + c.len <= data_una {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// The data ranges carried by subflow offsets at and above `sub_una` (sent or queued on
    /// the subflow, not yet acknowledged by it): what a scheduler reinjects on another
    /// subflow when this one goes stale.
    pub fn data_ranges_from(
        &self,
        sub_una: u64,
    ) -> impl Iterator<Item = core::ops::Range<u64>> + '_ {
        self.chunks.iter().filter_map(move |c| {
            let end = c.sub + c.len;
            if end <= sub_una {
                return None;
            }
            let skip = sub_una.saturating_sub(c.sub);
            Some(c.data + skip..c.data + c.len)
        })
    }

    /// Number of chunks held.
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

/// The DSS mapping of one outgoing segment: `len` payload bytes at subflow offset `sub`
/// carrying data offset `data`, plus the DATA_FIN when `fin` (counted in the data-level
/// length, RFC 8684 §3.3.3). The checksum is computed over `payload` when `checksum`.
pub fn tx_mapping(
    space: &DsnSpace,
    sub: u64,
    data: u64,
    payload: &[u8],
    fin: bool,
    checksum: bool,
) -> DssMapping {
    let len = u16::try_from(payload.len())
        .unwrap_or(u16::MAX)
        .saturating_add(u16::from(fin));
    let dsn = space.dsn(data);
    //= rfc8684#3.3.3
    //= A DATA_FIN without data has a subflow sequence number of 0 and a length of 1.
    let subflow_seq = if payload.is_empty() {
        0
    } else {
        relative_seq(sub)
    };
    let checksum = checksum.then(|| {
        let mut c = DssChecksum::new(dsn, subflow_seq, len);
        c.update(payload);
        c.finish()
    });
    DssMapping {
        dsn,
        dsn_64: true,
        subflow_seq,
        data_len: len,
        checksum,
    }
}

/// A received mapping in offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMapping {
    /// Subflow offset of the first byte.
    pub sub: u64,
    /// Data offset of the first byte.
    pub data: u64,
    /// Payload bytes mapped (the DATA_FIN excluded).
    pub len: u64,
    /// The mapping ends with the DATA_FIN (at data offset `data + len`).
    pub fin: bool,
    /// The wire fields, for checksum verification.
    pub dsn: u64,
    pub subflow_seq: u32,
    pub data_len: u16,
    pub checksum: Option<u16>,
}

impl RxMapping {
    fn end(&self) -> u64 {
        self.sub + self.len
    }
    fn delta(&self) -> i128 {
        self.data as i128 - self.sub as i128
    }
}

/// What the subflow's in-order data at a given offset should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxStep {
    /// Read `len` bytes from the subflow and deliver them at data offset `data`. With a
    /// mapping checksum, `len` is the whole mapping and the bytes must be verified first
    /// ([`RxMap::verify`] with `mapping`).
    Deliver {
        data: u64,
        len: u64,
        mapping: Option<RxMapping>,
    },
    /// No mapping covers the next byte yet: hold the data.
    Unmapped,
    /// A checksummed mapping is not complete in the subflow's buffer yet.
    Incomplete,
}

/// Received mappings of one subflow.
#[derive(Debug, Default)]
pub struct RxMap {
    maps: VecDeque<RxMapping>,
    /// Fallback: subflow offset and data offset from which everything maps one-to-one.
    infinite: Option<(u64, u64)>,
}

impl RxMap {
    pub fn new() -> RxMap {
        RxMap::default()
    }

    /// Whether the infinite mapping was received (the subflow fell back).
    pub fn is_infinite(&self) -> bool {
        self.infinite.is_some()
    }

    /// Converts a received DSS mapping to offsets. `sub_expected` is the subflow offset of
    /// the next in-order byte, `data_expected` the next data offset expected: 32-bit values
    /// are expanded around them. A DATA_FIN-only mapping (subflow sequence 0, length 1) has
    /// `len == 0`.
    pub fn decode(
        space: &DsnSpace,
        m: &DssMapping,
        data_fin: bool,
        sub_expected: u64,
        data_expected: u64,
    ) -> Result<RxMapping, MappingError> {
        let data = space
            .offset(m.dsn, m.dsn_64, data_expected)
            .ok_or(MappingError::BadDsn)?;
        let len = u64::from(m.data_len).saturating_sub(u64::from(data_fin));
        let sub = if len == 0 {
            sub_expected
        } else {
            let rel = super::dsn::expand_32(m.subflow_seq, sub_expected.wrapping_add(1));
            let sub = rel.wrapping_sub(1);
            if sub > (u64::MAX >> 2) {
                return Err(MappingError::BadSubflowSeq);
            }
            sub
        };
        Ok(RxMapping {
            sub,
            data,
            len,
            fin: data_fin,
            dsn: space.dsn(data),
            subflow_seq: m.subflow_seq,
            data_len: m.data_len,
            checksum: m.checksum,
        })
    }

    //= rfc8684#3.7
    //= The infinite mapping: from the given DSN on, the subflow carries the data stream
    //   one-to-one (fallback).
    /// Switches to fallback: subflow offset `sub` carries data offset `data` and everything
    /// after it maps one-to-one. Mappings of the bytes before `sub` stay (cut at `sub`), later
    /// ones are dropped: from `sub` on the subflow is a plain TCP byte stream.
    pub fn set_infinite(&mut self, sub: u64, data: u64) {
        if self.infinite.is_none() {
            self.maps.retain(|m| m.sub < sub);
            for m in &mut self.maps {
                m.len = m.len.min(sub - m.sub);
                // A cut mapping can no longer be verified as a whole.
                if m.len < u64::from(m.data_len) {
                    m.checksum = None;
                }
            }
            self.infinite = Some((sub, data));
        }
    }

    /// Adds a received mapping (payload part; `len == 0` mappings carry only a DATA_FIN and
    /// are the caller's). `consumed` is the subflow offset already delivered; `max_len` the
    /// longest mapping the subflow can buffer whole.
    pub fn add(&mut self, m: RxMapping, consumed: u64, max_len: u64) -> Result<(), MappingError> {
        if m.len == 0 || self.infinite.is_some() {
            return Ok(());
        }
        if m.checksum.is_some() && m.len > max_len {
            return Err(MappingError::TooLong { len: m.len });
        }
        //= rfc8684#3.3.1
        //= Mappings for bytes already delivered are redundant (retransmissions) and ignored.
        if m.end() <= consumed {
            return Ok(());
        }
        for old in &self.maps {
            let overlap = m.sub < old.end() && old.sub < m.end();
            if !overlap {
                continue;
            }
            if *old == m {
                return Ok(());
            }
            //= rfc8684#3.3.1
            //= A mapping that differs from an earlier one for the same bytes is an error
            //   (Linux resets the subflow and counts DSSNotMatching).
            if old.delta() != m.delta() || old.checksum.is_some() || m.checksum.is_some() {
                return Err(MappingError::NotMatching);
            }
        }
        if self.maps.len() >= MAX_RX_MAPPINGS {
            return Err(MappingError::TooMany);
        }
        let at = self.maps.partition_point(|o| o.sub <= m.sub);
        self.maps.insert(at, m);
        Ok(())
    }

    /// What to do with the in-order subflow bytes at offset `sub` of which `readable` are
    /// available.
    pub fn step(&mut self, sub: u64, readable: u64) -> RxStep {
        while let Some(f) = self.maps.front() {
            if f.end() <= sub {
                self.maps.pop_front();
            } else {
                break;
            }
        }
        if readable == 0 {
            return RxStep::Incomplete;
        }
        if let Some(m) = self.maps.iter().find(|m| m.sub <= sub && sub < m.end()) {
            if m.checksum.is_some() {
                if m.sub != sub {
                    // Part of a checksummed mapping was delivered under another mapping:
                    // deliver the rest unverified would be wrong, so treat as plain bytes.
                    let len = (m.end() - sub).min(readable);
                    return RxStep::Deliver {
                        data: (m.data + (sub - m.sub)),
                        len,
                        mapping: None,
                    };
                }
                if readable < m.len {
                    return RxStep::Incomplete;
                }
                return RxStep::Deliver {
                    data: m.data,
                    len: m.len,
                    mapping: Some(*m),
                };
            }
            let len = (m.end() - sub).min(readable);
            return RxStep::Deliver {
                data: m.data + (sub - m.sub),
                len,
                mapping: None,
            };
        }
        if let Some((isub, idata)) = self.infinite {
            if sub >= isub {
                return RxStep::Deliver {
                    data: idata + (sub - isub),
                    len: readable,
                    mapping: None,
                };
            }
        }
        RxStep::Unmapped
    }

    /// Verifies a checksummed mapping over its whole payload.
    pub fn verify(mapping: &RxMapping, payload: &[u8]) -> bool {
        let Some(wire) = mapping.checksum else {
            return true;
        };
        let mut c = DssChecksum::new(mapping.dsn, mapping.subflow_seq, mapping.data_len);
        c.update(payload);
        c.verify(wire)
    }

    /// Mappings held.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
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
        t.record(0, 100, 10);
        t.record(10, 110, 5); // contiguous: merged
        assert_eq!(t.len(), 1);
        assert!(t.continues(15, 115));
        assert!(!t.continues(15, 500));
        t.record(15, 500, 5); // a reinjection-style jump
        assert_eq!(t.len(), 2);
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

    fn wire(s: &DsnSpace, sub: u64, data: u64, len: u16, csum: Option<u16>) -> DssMapping {
        DssMapping {
            dsn: s.dsn(data),
            dsn_64: true,
            subflow_seq: relative_seq(sub),
            data_len: len,
            checksum: csum,
        }
    }

    #[test]
    fn rx_mapping_applies_holds_and_detects_contradictions() {
        let s = space();
        let mut r = RxMap::new();
        assert_eq!(r.step(0, 10), RxStep::Unmapped);
        let m = RxMap::decode(&s, &wire(&s, 0, 50, 10, None), false, 0, 0).unwrap();
        r.add(m, 0, 1 << 20).unwrap();
        r.add(m, 0, 1 << 20).unwrap(); // duplicate
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.step(0, 4),
            RxStep::Deliver {
                data: 50,
                len: 4,
                mapping: None
            }
        );
        assert_eq!(
            r.step(4, 100),
            RxStep::Deliver {
                data: 54,
                len: 6,
                mapping: None
            }
        );
        // same bytes, another DSN
        let bad = RxMap::decode(&s, &wire(&s, 5, 70, 10, None), false, 4, 54).unwrap();
        assert_eq!(r.add(bad, 4, 1 << 20), Err(MappingError::NotMatching));
        // consistent overlap is fine
        let ok = RxMap::decode(&s, &wire(&s, 5, 55, 10, None), false, 4, 54).unwrap();
        r.add(ok, 4, 1 << 20).unwrap();
        assert_eq!(
            r.step(10, 100),
            RxStep::Deliver {
                data: 60,
                len: 5,
                mapping: None
            }
        );
        assert_eq!(r.step(15, 100), RxStep::Unmapped);
    }

    #[test]
    fn rx_32_bit_values_expand_near_the_expected_offsets() {
        let s = space();
        let mut m = wire(&s, 0x1_0000_0005, 0x2_0000_0000, 3, None);
        m.dsn &= 0xffff_ffff;
        m.dsn_64 = false;
        let d = RxMap::decode(&s, &m, false, 0x1_0000_0000, 0x1_ffff_fff0).unwrap();
        assert_eq!((d.sub, d.data, d.len), (0x1_0000_0005, 0x2_0000_0000, 3));
    }

    #[test]
    fn checksummed_mapping_spans_segments_and_failures_are_found() {
        let s = space();
        let payload = b"abcdefghij";
        let good = tx_mapping(&s, 0, 0, payload, false, true);
        let mut r = RxMap::new();
        let m = RxMap::decode(&s, &good, false, 0, 0).unwrap();
        r.add(m, 0, 1 << 20).unwrap();
        assert_eq!(r.step(0, 4), RxStep::Incomplete); // first segment only
        let RxStep::Deliver {
            mapping: Some(mm),
            len,
            ..
        } = r.step(0, 10)
        else {
            panic!("expected a whole mapping");
        };
        assert_eq!(len, 10);
        assert!(RxMap::verify(&mm, payload));
        assert!(!RxMap::verify(&mm, b"abcdefghiJ"));
        assert_eq!(
            r.add(RxMapping { len: 1 << 21, ..mm }, 0, 1 << 20),
            Err(MappingError::TooLong { len: 1 << 21 })
        );
    }

    #[test]
    fn infinite_mapping_maps_everything_after_it() {
        let mut r = RxMap::new();
        assert!(DssMapping::infinite(5, false).is_infinite());
        r.set_infinite(10, 100);
        assert!(r.is_infinite());
        assert_eq!(
            r.step(12, 1000),
            RxStep::Deliver {
                data: 102,
                len: 1000,
                mapping: None
            }
        );
        assert_eq!(r.step(5, 3), RxStep::Unmapped);
    }

    #[test]
    fn rx_table_is_bounded() {
        let s = space();
        let mut r = RxMap::new();
        for i in 0..MAX_RX_MAPPINGS as u64 {
            let m = RxMap::decode(&s, &wire(&s, i * 2, i * 2, 1, None), false, 0, 0).unwrap();
            r.add(m, 0, 100).unwrap();
        }
        let far = MAX_RX_MAPPINGS as u64 * 2 + 10;
        let m = RxMap::decode(&s, &wire(&s, far, far, 1, None), false, 0, 0).unwrap();
        assert_eq!(r.add(m, 0, 100), Err(MappingError::TooMany));
    }
}
