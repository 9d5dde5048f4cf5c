//! A small reader for classic pcap files (not pcapng), enough for the fixtures of
//! `tests/fixtures/`: both byte orders, microsecond and nanosecond magics, and the link types
//! tcpdump produces on Linux — Ethernet (1), raw IP (101, 228, 229), Linux cooked capture v1
//! (113) and v2 (276).
//!
//! Include it from a test crate with `#[path = "common/pcap.rs"] mod pcap;`.
//! Nothing here panics on a malformed file: every problem is a [`PcapError`].
#![allow(dead_code)]

use std::fmt;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// No sane frame is larger; a bigger length means a corrupt file.
const MAX_RECORD_LEN: u32 = 1 << 24;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Why a pcap file or one of its frames could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcapError {
    /// The file ends inside a header or a record.
    Truncated { what: &'static str, offset: usize },
    /// The first four bytes are no classic pcap magic (pcapng is not supported).
    BadMagic(u32),
    /// A record claims more captured bytes than its original length or the snapshot length.
    BadRecordLength { frame: usize, len: u32 },
    /// A link type this reader does not unwrap.
    UnsupportedLinkType(u32),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Truncated { what, offset } => write!(f, "truncated {what} at byte {offset}"),
            PcapError::BadMagic(m) => write!(f, "not a classic pcap file (magic {m:#010x})"),
            PcapError::BadRecordLength { frame, len } => {
                write!(f, "frame {frame}: bad captured length {len}")
            }
            PcapError::UnsupportedLinkType(l) => write!(f, "unsupported link type {l}"),
        }
    }
}

impl std::error::Error for PcapError {}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based frame number, as Wireshark counts.
    pub frame: usize,
    pub ts_sec: u32,
    /// Microseconds or nanoseconds, after the file's magic.
    pub ts_frac: u32,
    /// The frame's length on the wire; more than `data.len()` when the snapshot cut it.
    pub orig_len: u32,
    pub data: Vec<u8>,
}

impl Record {
    /// Whether the whole frame was captured.
    pub fn is_complete(&self) -> bool {
        usize::try_from(self.orig_len).is_ok_and(|l| l == self.data.len())
    }
}

/// A parsed pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    pub big_endian: bool,
    pub nanosecond: bool,
    pub snaplen: u32,
    pub linktype: u32,
    pub records: Vec<Record>,
}

fn take<'a>(
    data: &'a [u8],
    at: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], PcapError> {
    at.checked_add(len)
        .and_then(|end| data.get(at..end))
        .ok_or(PcapError::Truncated { what, offset: at })
}

fn u32_at(data: &[u8], at: usize, big_endian: bool, what: &'static str) -> Result<u32, PcapError> {
    let b = take(data, at, 4, what)?;
    let b = [b[0], b[1], b[2], b[3]];
    Ok(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// Parse a whole classic pcap file.
pub fn parse(data: &[u8]) -> Result<Pcap, PcapError> {
    let magic_bytes = take(data, 0, 4, "file header")?;
    let magic_le = u32::from_le_bytes([
        magic_bytes[0],
        magic_bytes[1],
        magic_bytes[2],
        magic_bytes[3],
    ]);
    let magic_be = u32::from_be_bytes([
        magic_bytes[0],
        magic_bytes[1],
        magic_bytes[2],
        magic_bytes[3],
    ]);
    let (big_endian, nanosecond) = match (magic_le, magic_be) {
        (MAGIC_MICROS, _) => (false, false),
        (MAGIC_NANOS, _) => (false, true),
        (_, MAGIC_MICROS) => (true, false),
        (_, MAGIC_NANOS) => (true, true),
        _ => return Err(PcapError::BadMagic(magic_be)),
    };
    take(data, 0, FILE_HEADER_LEN, "file header")?;
    let snaplen = u32_at(data, 16, big_endian, "file header")?;
    // The upper bits of the link-type word may carry FCS information; the type is the low 16.
    let linktype = u32_at(data, 20, big_endian, "file header")? & 0xffff;

    let mut records = Vec::new();
    let mut at = FILE_HEADER_LEN;
    while at < data.len() {
        let frame = records.len() + 1;
        let ts_sec = u32_at(data, at, big_endian, "record header")?;
        let ts_frac = u32_at(data, at + 4, big_endian, "record header")?;
        let incl_len = u32_at(data, at + 8, big_endian, "record header")?;
        let orig_len = u32_at(data, at + 12, big_endian, "record header")?;
        if incl_len > orig_len || incl_len > MAX_RECORD_LEN {
            return Err(PcapError::BadRecordLength {
                frame,
                len: incl_len,
            });
        }
        let len = usize::try_from(incl_len).map_err(|_| PcapError::BadRecordLength {
            frame,
            len: incl_len,
        })?;
        let body = take(data, at + RECORD_HEADER_LEN, len, "record data")?;
        records.push(Record {
            frame,
            ts_sec,
            ts_frac,
            orig_len,
            data: body.to_vec(),
        });
        at += RECORD_HEADER_LEN + len;
    }
    Ok(Pcap {
        big_endian,
        nanosecond,
        snaplen,
        linktype,
        records,
    })
}

/// The IP packet inside a frame of the given link type, or `None` when the frame carries
/// something else (ARP, LLDP, ...).
pub fn ip_packet(linktype: u32, frame: &[u8]) -> Result<Option<&[u8]>, PcapError> {
    let (ethertype, rest) = match linktype {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            let version = frame.first().map(|b| b >> 4);
            return Ok(match version {
                Some(4) | Some(6) => Some(frame),
                _ => None,
            });
        }
        LINKTYPE_ETHERNET => {
            // dst MAC (6), src MAC (6), ethertype (2), with any 802.1Q / 802.1ad tags skipped.
            let mut at = 12;
            loop {
                let t = take(frame, at, 2, "Ethernet header")?;
                let ethertype = u16::from_be_bytes([t[0], t[1]]);
                if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
                    at += 4;
                    continue;
                }
                break (
                    ethertype,
                    take(
                        frame,
                        at + 2,
                        frame.len().saturating_sub(at + 2),
                        "Ethernet payload",
                    )?,
                );
            }
        }
        LINKTYPE_LINUX_SLL => {
            // packet type (2), ARPHRD (2), address length (2), address (8), protocol (2).
            let t = take(frame, 14, 2, "Linux cooked header")?;
            (
                u16::from_be_bytes([t[0], t[1]]),
                take(
                    frame,
                    16,
                    frame.len().saturating_sub(16),
                    "Linux cooked payload",
                )?,
            )
        }
        LINKTYPE_LINUX_SLL2 => {
            // protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1),
            // address length (1), address (8).
            let t = take(frame, 0, 2, "Linux cooked v2 header")?;
            (
                u16::from_be_bytes([t[0], t[1]]),
                take(
                    frame,
                    20,
                    frame.len().saturating_sub(20),
                    "Linux cooked v2 payload",
                )?,
            )
        }
        other => return Err(PcapError::UnsupportedLinkType(other)),
    };
    Ok(match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Some(rest),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(big_endian: bool, magic: u32, linktype: u32, frames: &[&[u8]]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w(magic));
        out.extend_from_slice(&w16(2));
        out.extend_from_slice(&w16(4));
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(65535));
        out.extend_from_slice(&w(linktype));
        for (i, f) in frames.iter().enumerate() {
            out.extend_from_slice(&w(1_700_000_000 + i as u32));
            out.extend_from_slice(&w(7));
            out.extend_from_slice(&w(f.len() as u32));
            out.extend_from_slice(&w(f.len() as u32 + 3));
            out.extend_from_slice(f);
        }
        out
    }

    const IP: &[u8] = &[
        0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    #[test]
    fn both_byte_orders_and_both_magics() {
        for big in [false, true] {
            for (magic, nanos) in [(MAGIC_MICROS, false), (MAGIC_NANOS, true)] {
                let p = parse(&file(big, magic, LINKTYPE_RAW, &[IP, &IP[..4]])).unwrap();
                assert_eq!(p.big_endian, big);
                assert_eq!(p.nanosecond, nanos);
                assert_eq!(p.linktype, LINKTYPE_RAW);
                assert_eq!(p.snaplen, 65535);
                assert_eq!(p.records.len(), 2);
                assert_eq!(p.records[0].frame, 1);
                assert_eq!(p.records[1].frame, 2);
                assert_eq!(p.records[1].ts_sec, 1_700_000_001);
                assert_eq!(p.records[0].ts_frac, 7);
                assert_eq!(p.records[0].data, IP);
                assert_eq!(p.records[1].orig_len, 7);
                assert!(!p.records[1].is_complete());
            }
        }
    }

    #[test]
    fn truncation_and_bad_magic_are_errors() {
        let f = file(false, MAGIC_MICROS, LINKTYPE_RAW, &[IP]);
        for cut in 0..f.len() {
            if cut == FILE_HEADER_LEN {
                // A file with a header and no record is a valid, empty capture.
                assert_eq!(parse(&f[..cut]).unwrap().records.len(), 0);
                continue;
            }
            assert!(
                matches!(parse(&f[..cut]), Err(PcapError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let mut bad = f.clone();
        bad[0] = 0x0a;
        assert!(matches!(parse(&bad), Err(PcapError::BadMagic(_))));
        // pcapng's section header block magic is refused too.
        let mut ng = f;
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(matches!(parse(&ng), Err(PcapError::BadMagic(_))));
    }

    #[test]
    fn captured_length_beyond_original_is_an_error() {
        let mut f = file(true, MAGIC_MICROS, LINKTYPE_RAW, &[IP]);
        // orig_len of the first record (big-endian) := 1, less than the 20 bytes captured.
        f[FILE_HEADER_LEN + 12..FILE_HEADER_LEN + 16].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            parse(&f),
            Err(PcapError::BadRecordLength { frame: 1, len: 20 })
        );
    }

    #[test]
    fn link_layers_are_unwrapped() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        eth.extend_from_slice(IP);
        assert_eq!(ip_packet(LINKTYPE_ETHERNET, &eth).unwrap(), Some(IP));

        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        vlan.extend_from_slice(&[0, 5]);
        vlan.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        vlan.extend_from_slice(IP);
        assert_eq!(ip_packet(LINKTYPE_ETHERNET, &vlan).unwrap(), Some(IP));

        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&0x0806u16.to_be_bytes());
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(ip_packet(LINKTYPE_ETHERNET, &arp).unwrap(), None);

        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(IP);
        assert_eq!(ip_packet(LINKTYPE_LINUX_SLL, &sll).unwrap(), Some(IP));

        let mut sll2 = ETHERTYPE_IPV6.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(IP);
        assert_eq!(ip_packet(LINKTYPE_LINUX_SLL2, &sll2).unwrap(), Some(IP));

        assert_eq!(ip_packet(LINKTYPE_RAW, IP).unwrap(), Some(IP));
        assert_eq!(ip_packet(LINKTYPE_RAW, &[0x10]).unwrap(), None);
        assert!(matches!(
            ip_packet(LINKTYPE_ETHERNET, &eth[..13]),
            Err(PcapError::Truncated { .. })
        ));
        assert!(matches!(
            ip_packet(LINKTYPE_LINUX_SLL2, &sll2[..1]),
            Err(PcapError::Truncated { .. })
        ));
        assert_eq!(ip_packet(147, IP), Err(PcapError::UnsupportedLinkType(147)));
    }
}
