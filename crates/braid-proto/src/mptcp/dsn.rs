//! 64-bit data sequence number arithmetic (RFC 8684 §3.3).
//!
//! The connection layer works internally on *data offsets*: 0 is the first data byte of a
//! direction (DSN = IDSN + 1), so wrap-around of the 64-bit DSN space is confined to the
//! conversions of [`DsnSpace`], exactly like the TCP engine's sequence offsets.

/// True when `a` comes before `b` in the (wrapping) 64-bit DSN space.
pub fn dsn_lt(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

/// True when `a` comes before or is `b` in the (wrapping) 64-bit DSN space.
pub fn dsn_le(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) <= 0
}

//= rfc8684#3.3
//= A 32-bit DSN or DATA_ACK is expanded to the 64-bit value closest to the expected one.
/// The 64-bit value whose low 32 bits are `low` and which is closest to `expected`
/// (ties go forward). Wraps around 2^64 like the DSN space itself.
pub fn expand_32(low: u32, expected: u64) -> u64 {
    let diff = low.wrapping_sub(expected as u32) as i32;
    expected.wrapping_add(diff as i64 as u64)
}

/// `value` as a full 64-bit DSN: kept when it was sent as 64 bits, expanded relative to
/// `expected` otherwise.
pub fn expand(value: u64, is_64: bool, expected: u64) -> u64 {
    if is_64 {
        value
    } else {
        expand_32(value as u32, expected)
    }
}

/// One direction's DSN space: converts between wire DSNs and data offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsnSpace {
    /// DSN of data offset 0 (IDSN + 1).
    first: u64,
}

impl DsnSpace {
    //= rfc8684#3.1
    //= The first data byte of a direction has DSN IDSN + 1.
    /// The space of a direction whose initial data sequence number is `idsn`.
    pub fn from_idsn(idsn: u64) -> DsnSpace {
        DsnSpace {
            first: idsn.wrapping_add(1),
        }
    }

    /// The IDSN of this direction.
    pub fn idsn(&self) -> u64 {
        self.first.wrapping_sub(1)
    }

    /// The DSN of data offset `offset`.
    pub fn dsn(&self, offset: u64) -> u64 {
        self.first.wrapping_add(offset)
    }

    /// The data offset of `dsn` (64-bit, or 32-bit when `!is_64`), interpreted as the value
    /// closest to `expected` (a data offset). `None` when it falls before offset 0 (the
    /// IDSN itself and anything earlier) or more than 2^62 away from `expected`: no honest peer
    /// sends such a value.
    pub fn offset(&self, dsn: u64, is_64: bool, expected: u64) -> Option<u64> {
        let expected_dsn = self.dsn(expected);
        let full = expand(dsn, is_64, expected_dsn);
        let delta = full.wrapping_sub(expected_dsn) as i64;
        if !(-(1i64 << 62)..(1i64 << 62)).contains(&delta) {
            return None;
        }
        let off = (expected as i128) + (delta as i128);
        if off < 0 || off > (u64::MAX >> 1) as i128 {
            return None;
        }
        Some(off as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_32_picks_the_closest_value() {
        assert_eq!(expand_32(5, 0x1_0000_0003), 0x1_0000_0005);
        // just below a 32-bit wrap, the low half wrapped forward
        assert_eq!(expand_32(0x10, 0x1_ffff_fff0), 0x2_0000_0010);
        // just above a wrap, an old value is expanded backwards
        assert_eq!(expand_32(0xffff_fff0, 0x2_0000_0010), 0x1_ffff_fff0);
        // wraps around 2^64
        assert_eq!(expand_32(0x5, u64::MAX - 2), 5);
        assert_eq!(expand_32(0xffff_fffe, 3), u64::MAX - 1);
        assert_eq!(
            expand(0xdead_beef_0000_0001, true, 7),
            0xdead_beef_0000_0001
        );
    }

    #[test]
    fn ordering_wraps() {
        assert!(dsn_lt(u64::MAX, 0));
        assert!(!dsn_lt(0, u64::MAX));
        assert!(dsn_le(3, 3));
        assert!(dsn_lt(1, 2));
    }

    #[test]
    fn offsets_across_the_64_bit_wrap() {
        let s = DsnSpace::from_idsn(u64::MAX - 1);
        assert_eq!(s.dsn(0), u64::MAX);
        assert_eq!(s.dsn(1), 0);
        assert_eq!(s.idsn(), u64::MAX - 1);
        assert_eq!(s.offset(0, true, 0), Some(1));
        assert_eq!(s.offset(u64::MAX, true, 10), Some(0));
        // the IDSN itself is before the first byte
        assert_eq!(s.offset(u64::MAX - 1, true, 0), None);
        // a 32-bit value expanded near the expected offset
        let s = DsnSpace::from_idsn(0x0000_0001_ffff_fff0);
        let off = 0x20;
        let dsn = s.dsn(off);
        assert_eq!(s.offset(dsn & 0xffff_ffff, false, 0x18), Some(off));
        // absurdly far values are refused
        assert_eq!(s.offset(s.dsn(0).wrapping_add(1 << 63), true, 0), None);
    }
}
