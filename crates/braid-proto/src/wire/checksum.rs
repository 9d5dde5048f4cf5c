//! The Internet checksum (RFC 1071): a one's-complement sum of 16-bit big-endian words, used
//! by IPv4, TCP (over a pseudo-header) and the MPTCP DSS checksum (RFC 8684 §3.3.1).

use core::net::IpAddr;

/// Add `data` to a running (unfolded) 32-bit one's-complement sum. An odd trailing byte is
/// padded with zero, so only the last chunk of a message may have odd length.
///
/// The sum is taken over native-endian 32-bit words into a 64-bit accumulator (which the
/// compiler turns into vector additions) and byte-swapped once at the end: the
/// one's-complement sum does not depend on the order of the bytes in a word, so the sum of
/// swapped words is the swapped sum (RFC 1071 §2(B)), and adding two 16-bit words at a time
/// only defers carries (§2(C)).
pub fn add(sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(4);
    let mut acc: u64 = 0;
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // Zero padding keeps every byte at its place in its 16-bit word.
        let mut tail = [0u8; 4];
        tail[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_ne_bytes(tail));
    }
    let native = fold64(acc);
    let be = if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    };
    let total = u64::from(sum) + u64::from(be);
    ((total & 0xffff_ffff) + (total >> 32)) as u32
}

/// A 64-bit sum of 16-bit words folded to 16 bits with end-around carries.
fn fold64(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Fold a running sum to 16 bits (without complementing).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of `data` as it goes on the wire: the complement of the folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(add(0, data))
}

/// The unfolded sum of the TCP/UDP pseudo-header for `src`, `dst`, `protocol` and the
/// upper-layer length (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6). Mixed families sum
/// nothing meaningful; callers never mix them.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u32 {
    let mut sum = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = add(sum, &s.octets());
            sum = add(sum, &d.octets());
            sum = add(sum, &[0, protocol]);
            // IPv4 carries a 16-bit TCP length.
            sum = add(sum, &(length as u16).to_be_bytes());
        }
        (s, d) => {
            sum = add(sum, &ip_octets(s));
            sum = add(sum, &ip_octets(d));
            sum = add(sum, &length.to_be_bytes());
            sum = add(sum, &[0, 0, 0, protocol]);
        }
    }
    sum
}

fn ip_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// The plain definition: big-endian 16-bit words, one at a time.
    fn reference(sum: u32, data: &[u8]) -> u16 {
        let mut acc = u64::from(sum);
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
        fold64(acc)
    }

    proptest::proptest! {
        #[test]
        fn the_word_sum_equals_the_definition(
            sum in proptest::prelude::any::<u32>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        ) {
            proptest::prop_assert_eq!(fold(add(sum, &data)), reference(sum, &data));
        }
    }

    #[test]
    fn all_ones_and_zeros() {
        for len in [0usize, 1, 2, 3, 4, 5, 7, 8, 1448, 1449, 65535] {
            for fill in [0u8, 0xff] {
                let data = vec![fill; len];
                assert_eq!(
                    fold(add(0, &data)),
                    reference(0, &data),
                    "{len} × {fill:#x}"
                );
                assert_eq!(fold(add(0xffff_ffff, &data)), reference(0xffff_ffff, &data));
            }
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(add(0, &[0xab])), 0xab00);
        assert_eq!(fold(add(add(0, &[0x12, 0x34]), &[0x56])), 0x6834);
    }

    #[test]
    fn verifying_a_correct_checksum_gives_zero() {
        let mut data = vec![0x45u8, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06];
        data.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }
}
