//! The receive side of the DSS mappings ([`RxMap`]): see the [parent module](super).

use std::collections::VecDeque;

use crate::crypto::DssChecksum;
use crate::wire::mptcp::DssMapping;
use crate::wire::Payload;

use super::{MappingError, MAX_RX_MAPPINGS};
use crate::mptcp::dsn::DsnSpace;

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
            let rel = crate::mptcp::dsn::expand_32(m.subflow_seq, sub_expected.wrapping_add(1));
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
    pub fn add(
        &mut self,
        mut m: RxMapping,
        consumed: u64,
        max_len: u64,
    ) -> Result<(), MappingError> {
        if m.len == 0 {
            return Ok(());
        }
        //= rfc8684#3.7
        //= The bytes before the infinite mapping keep their own mappings, also one that
        //   arrives after it (reordered); from its start on the subflow maps one-to-one.
        if let Some((isub, _)) = self.infinite {
            if m.sub >= isub {
                return Ok(());
            }
            if m.end() > isub {
                m.len = isub - m.sub;
                m.checksum = None;
            }
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
            //= rfc8684#3.3.3
            //= The DATA_FIN rides on the mapping of the last data: a sender that closes
            //  after sending them adds it when it sends them again (Linux marks a
            //  retransmission so, its Data-Level Length one more and its checksum
            //  recomputed). The same bytes at the same place, now also ending the stream,
            //  are the same mapping (Linux compares the lengths without the DATA_FIN, not
            //  the checksums); the caller takes the DATA_FIN, and the first mapping's
            //  fields still verify the bytes.
            if old.sub == m.sub && old.data == m.data && old.len == m.len {
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

    /// The data offset of the `len` new in-order subflow bytes at offset `sub`, when they
    /// can go to the data level as they arrive, without waiting in the subflow's buffer: one
    /// mapping without a checksum covers them all (`seg`, the one their segment carries and
    /// that is added after it, or one received before) and no other mapping of these bytes
    /// says otherwise. `None` leaves them to the subflow's buffer and [`RxMap::step`], which
    /// decides every other case (no mapping yet, checksums, fallback, contradictions).
    pub fn place(&self, sub: u64, len: u64, seg: Option<&RxMapping>) -> Option<u64> {
        if self.infinite.is_some() || len == 0 || seg.is_some_and(|m| m.checksum.is_some()) {
            return None;
        }
        let end = sub + len;
        let mut found: Option<RxMapping> = None;
        let held = self.maps.iter().take_while(|m| m.sub < end);
        for m in seg.into_iter().chain(held) {
            if m.end() <= sub || m.len == 0 {
                continue;
            }
            if m.checksum.is_some() {
                return None;
            }
            match found {
                Some(f) if f.delta() != m.delta() => return None,
                Some(_) => {}
                None if m.sub <= sub && end <= m.end() => found = Some(*m),
                None => return None,
            }
        }
        found.map(|f| f.data + (sub - f.sub))
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
            //= rfc8684#3.7
            //= Fallback happens with a single subflow, which carries the data stream in order:
            //   bytes before the infinite mapping whose own mapping never arrived (its
            //   segment was lost and came again without options, as a fallen-back sender
            //   sends) map with the infinite mapping's offset, as Linux maps them.
            if let Some(data) = (idata + sub).checked_sub(isub) {
                let next = self
                    .maps
                    .iter()
                    .map(|m| m.sub)
                    .filter(|&s| s > sub)
                    .min()
                    .unwrap_or(isub)
                    .min(isub);
                return RxStep::Deliver {
                    data,
                    len: (next - sub).min(readable),
                    mapping: None,
                };
            }
        }
        RxStep::Unmapped
    }

    /// Verifies a checksummed mapping over its whole payload.
    pub fn verify(mapping: &RxMapping, payload: Payload<'_>) -> bool {
        let Some(wire) = mapping.checksum else {
            return true;
        };
        let mut c = DssChecksum::new(mapping.dsn, mapping.subflow_seq, mapping.data_len);
        c.update_parts(payload);
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
    use super::super::{relative_seq, tx_mapping};
    use super::*;

    fn space() -> DsnSpace {
        DsnSpace::from_idsn(u64::MAX - 10)
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

    /// Found against the kernel under load (`checksums_kernel_client_to_braid_server`):
    /// Linux sent the last segment again with the DATA_FIN added to its mapping, and braid
    /// reset the subflow as DSSNotMatching, 1456 bytes short of the end.
    #[test]
    fn the_last_mapping_sent_again_with_the_data_fin_is_the_same_mapping() {
        let s = space();
        let payload = b"the last bytes";
        for (first_fin, again_fin) in [(false, true), (true, false)] {
            let mut r = RxMap::new();
            let first = tx_mapping(&s, 0, 0, payload, first_fin, true);
            let again = tx_mapping(&s, 0, 0, payload, again_fin, true);
            assert_ne!(first, again, "the wire differs: length and checksum");
            let a = RxMap::decode(&s, &first, first_fin, 0, 0).unwrap();
            let b = RxMap::decode(&s, &again, again_fin, 0, 0).unwrap();
            r.add(a, 0, 1 << 20).unwrap();
            assert_eq!(r.add(b, 0, 1 << 20), Ok(()));
            // The bytes are delivered and verified with the first mapping's fields.
            let RxStep::Deliver {
                data: 0,
                len,
                mapping: Some(m),
            } = r.step(0, payload.len() as u64)
            else {
                panic!("not delivered");
            };
            assert_eq!(len, payload.len() as u64);
            assert!(RxMap::verify(&m, Payload::from(&payload[..])));
        }
        // Other bytes at that place are still a contradiction.
        let mut r = RxMap::new();
        let a = RxMap::decode(&s, &tx_mapping(&s, 0, 0, payload, false, true), false, 0, 0);
        r.add(a.unwrap(), 0, 1 << 20).unwrap();
        let moved = RxMap::decode(&s, &tx_mapping(&s, 0, 1, payload, true, true), true, 0, 0);
        assert_eq!(
            r.add(moved.unwrap(), 0, 1 << 20),
            Err(MappingError::NotMatching)
        );
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
        assert!(RxMap::verify(&mm, payload[..].into()));
        assert!(!RxMap::verify(&mm, b"abcdefghiJ"[..].into()));
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
        // Unmapped bytes before it (their mapping was lost) take its offset: the only
        // subflow carries the stream in order.
        assert_eq!(
            r.step(5, 3),
            RxStep::Deliver {
                data: 95,
                len: 3,
                mapping: None
            }
        );
        // Up to a mapping that arrives late, which still applies (cut at the infinite
        // start, unverified).
        let late = RxMapping {
            sub: 7,
            data: 97,
            len: 20,
            fin: false,
            dsn: 97,
            subflow_seq: 8,
            data_len: 20,
            checksum: Some(1),
        };
        assert_eq!(r.add(late, 5, 1 << 20), Ok(()));
        assert_eq!(
            r.step(5, 100),
            RxStep::Deliver {
                data: 95,
                len: 2,
                mapping: None
            }
        );
        assert_eq!(
            r.step(7, 100),
            RxStep::Deliver {
                data: 97,
                len: 3,
                mapping: None
            }
        );
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

    #[test]
    fn place_finds_where_in_order_bytes_go_only_when_nothing_else_decides() {
        let s = space();
        let mapping = |sub, data, len, csum| {
            RxMap::decode(&s, &wire(&s, sub, data, len, csum), false, sub, data).unwrap()
        };
        let mut r = RxMap::new();
        // Nothing mapped: the bytes wait.
        assert_eq!(r.place(0, 100, None), None);
        // The segment's own mapping, or one held, covering every byte.
        assert_eq!(
            r.place(0, 100, Some(&mapping(0, 500, 100, None))),
            Some(500)
        );
        r.add(mapping(0, 500, 3000, None), 0, 1 << 20).unwrap();
        assert_eq!(r.place(1400, 1400, None), Some(1900));
        assert_eq!(
            r.place(1400, 1400, Some(&mapping(1400, 1900, 1400, None))),
            Some(1900)
        );
        // Bytes past the mapping's end, or a segment mapping that contradicts it.
        assert_eq!(r.place(2800, 400, None), None);
        assert_eq!(
            r.place(1400, 1400, Some(&mapping(1400, 9000, 1400, None))),
            None
        );
        // A checksum is verified over the whole mapping first.
        assert_eq!(r.place(0, 100, Some(&mapping(0, 500, 100, Some(7)))), None);
        let mut c = RxMap::new();
        c.add(mapping(0, 500, 100, Some(7)), 0, 1 << 20).unwrap();
        assert_eq!(c.place(0, 100, None), None);
        // After the infinite mapping the subflow is plain TCP.
        r.set_infinite(3000, 3500);
        assert_eq!(r.place(1400, 1400, None), None);
        assert_eq!(r.place(0, 0, None), None);
    }
}
