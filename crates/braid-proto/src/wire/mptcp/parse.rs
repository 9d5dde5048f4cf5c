//! Parsing MPTCP options (see the [parent module](super) for the rules).

use core::net::IpAddr;

use super::*;

/// A bounds-checked big-endian reader over one option's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> crate::wire::Result<&'a [u8]> {
        match (self.buf.get(..n), self.buf.get(n..)) {
            (Some(head), Some(rest)) => {
                self.buf = rest;
                Ok(head)
            }
            _ => Err(crate::wire::Error::Truncated {
                what: self.what,
                need: n,
                have: self.buf.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> crate::wire::Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> crate::wire::Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> crate::wire::Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> crate::wire::Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> crate::wire::Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A DSN or DATA_ACK: 8 octets, or 4 zero-extended.
    fn seq(&mut self, wide: bool) -> crate::wire::Result<u64> {
        if wide {
            self.u64()
        } else {
            Ok(u64::from(self.u32()?))
        }
    }
}

fn bad_length(what: &'static str, len: usize) -> crate::wire::Error {
    crate::wire::Error::BadLength { what, len }
}

impl MptcpOption {
    /// Parse one option; `data` is the whole option including kind and length.
    ///
    /// The length byte must equal `data.len()`. Errors:
    /// - [`Error::Truncated`](crate::wire::Error::Truncated) when `data` is shorter than the header
    ///   or than its length byte;
    /// - [`Error::BadLength`](crate::wire::Error::BadLength) when the length is not one the subtype
    ///   allows, or `data` runs past it;
    /// - [`Error::Malformed`](crate::wire::Error::Malformed) when the kind is not 30.
    pub fn parse(data: &[u8]) -> crate::wire::Result<MptcpOption> {
        let what = "MPTCP option";
        let (kind, len, sub) = match data {
            [kind, len, sub, ..] => (*kind, usize::from(*len), *sub),
            _ => {
                return Err(crate::wire::Error::Truncated {
                    what,
                    need: HEADER_LEN,
                    have: data.len(),
                })
            }
        };
        if kind != KIND {
            return Err(crate::wire::Error::Malformed {
                what,
                why: "option kind is not 30",
            });
        }
        if len < HEADER_LEN {
            return Err(bad_length(what, len));
        }
        if data.len() < len {
            return Err(crate::wire::Error::Truncated {
                what,
                need: len,
                have: data.len(),
            });
        }
        if data.len() > len {
            return Err(bad_length(what, data.len()));
        }
        let subtype = sub >> 4;
        let low = sub & 0x0f;
        let body = data.get(HEADER_LEN..).unwrap_or_default();
        match subtype {
            subtype::MP_CAPABLE => parse_mp_capable(len, low, body),
            subtype::MP_JOIN => parse_mp_join(len, low, body),
            subtype::DSS => parse_dss(len, body),
            subtype::ADD_ADDR => parse_add_addr(len, low, body),
            subtype::REMOVE_ADDR => {
                //= rfc8684#3.4.2
                //= REMOVE_ADDR lists one or more address ids, one octet each.
                if len < 4 {
                    return Err(bad_length("REMOVE_ADDR", len));
                }
                Ok(MptcpOption::RemoveAddr {
                    addr_ids: body.to_vec(),
                })
            }
            subtype::MP_PRIO => {
                //= rfc8684#3.3.8
                //= MP_PRIO is 3 octets with the B flag; RFC 6824's form adds an address id.
                let backup = low & 0x1 != 0;
                match (len, body) {
                    (3, []) => Ok(MptcpOption::MpPrio {
                        backup,
                        addr_id: None,
                    }),
                    (4, [id]) => Ok(MptcpOption::MpPrio {
                        backup,
                        addr_id: Some(*id),
                    }),
                    _ => Err(bad_length("MP_PRIO", len)),
                }
            }
            subtype::MP_FAIL => {
                //= rfc8684#3.7
                //= MP_FAIL is 12 octets: reserved bits, then the 64-bit DSN.
                if len != 12 {
                    return Err(bad_length("MP_FAIL", len));
                }
                let mut r = Reader {
                    buf: body,
                    what: "MP_FAIL",
                };
                r.u8()?;
                Ok(MptcpOption::MpFail { dsn: r.u64()? })
            }
            subtype::MP_FASTCLOSE => {
                //= rfc8684#3.5
                //= MP_FASTCLOSE is 12 octets: reserved bits, then the option receiver's key.
                if len != 12 {
                    return Err(bad_length("MP_FASTCLOSE", len));
                }
                let mut r = Reader {
                    buf: body,
                    what: "MP_FASTCLOSE",
                };
                r.u8()?;
                Ok(MptcpOption::MpFastclose {
                    receiver_key: r.u64()?,
                })
            }
            subtype::MP_TCPRST => {
                //= rfc8684#3.6
                //= MP_TCPRST is 4 octets: flags U V W T after the subtype, then a reason code.
                match (len, body) {
                    (4, [reason]) => Ok(MptcpOption::MpTcpRst {
                        flags: low,
                        reason: *reason,
                    }),
                    _ => Err(bad_length("MP_TCPRST", len)),
                }
            }
            _ => {
                let mut data = Vec::with_capacity(1 + body.len());
                data.push(low);
                data.extend_from_slice(body);
                Ok(MptcpOption::Unknown { subtype, data })
            }
        }
    }
}

//= rfc8684#3.1
//= MP_CAPABLE is 4 (SYN), 12 (SYN/ACK), 20 (ACK) or 22/24 (ACK with data, ± checksum) octets;
//   the version is the low nibble of the subtype byte, the flags A..H follow.
fn parse_mp_capable(len: usize, version: u8, body: &[u8]) -> crate::wire::Result<MptcpOption> {
    if !matches!(len, 4 | 12 | 20 | 22 | 24) {
        return Err(bad_length("MP_CAPABLE", len));
    }
    let mut r = Reader {
        buf: body,
        what: "MP_CAPABLE",
    };
    let flags = r.u8()?;
    let mut c = MpCapable::syn(version, flags);
    if len >= 12 {
        c.sender_key = Some(r.u64()?);
    }
    if len >= 20 {
        c.receiver_key = Some(r.u64()?);
    }
    if len >= 22 {
        c.data_len = Some(r.u16()?);
    }
    if len >= 24 {
        c.checksum = Some(r.u16()?);
    }
    Ok(MptcpOption::MpCapable(c))
}

//= rfc8684#3.2
//= MP_JOIN is 12 octets on the SYN (token, nonce), 16 on the SYN/ACK (64-bit truncated HMAC,
//   nonce) and 24 on the third ACK (160-bit HMAC); B is the low bit of the subtype byte.
fn parse_mp_join(len: usize, low: u8, body: &[u8]) -> crate::wire::Result<MptcpOption> {
    let mut r = Reader {
        buf: body,
        what: "MP_JOIN",
    };
    let backup = low & 0x1 != 0;
    match len {
        12 => Ok(MptcpOption::MpJoinSyn {
            backup,
            addr_id: r.u8()?,
            token: r.u32()?,
            nonce: r.u32()?,
        }),
        16 => Ok(MptcpOption::MpJoinSynAck {
            backup,
            addr_id: r.u8()?,
            hmac: r.u64()?,
            nonce: r.u32()?,
        }),
        24 => {
            r.u8()?;
            Ok(MptcpOption::MpJoinAck { hmac: r.array()? })
        }
        _ => Err(bad_length("MP_JOIN", len)),
    }
}

//= rfc8684#3.3
//= DSS: flags F m M a A; a 4- or 8-octet DATA_ACK when A, then when M a 4- or 8-octet DSN,
//   the 32-bit subflow sequence number, the 16-bit data-level length and, when checksums are
//   in use, a 16-bit checksum (its presence is told by the option length).
fn parse_dss(len: usize, body: &[u8]) -> crate::wire::Result<MptcpOption> {
    let mut r = Reader {
        buf: body,
        what: "DSS",
    };
    let flags = r.u8().map_err(|_| bad_length("DSS", len))?;
    let has_ack = flags & dss_flag::DATA_ACK != 0;
    let ack_64 = flags & dss_flag::DATA_ACK_64 != 0;
    let has_map = flags & dss_flag::MAPPING != 0;
    let dsn_64 = flags & dss_flag::DSN_64 != 0;
    let ack_len = match (has_ack, ack_64) {
        (false, _) => 0,
        (true, false) => 4,
        (true, true) => 8,
    };
    let map_len = match (has_map, dsn_64) {
        (false, _) => 0,
        (true, false) => 4 + 4 + 2,
        (true, true) => 8 + 4 + 2,
    };
    let base = 4 + ack_len + map_len;
    let with_checksum = if len == base {
        false
    } else if has_map && len == base + 2 {
        true
    } else {
        return Err(bad_length("DSS", len));
    };
    let data_ack = if has_ack { Some(r.seq(ack_64)?) } else { None };
    let mapping = if has_map {
        Some(DssMapping {
            dsn: r.seq(dsn_64)?,
            dsn_64,
            subflow_seq: r.u32()?,
            data_len: r.u16()?,
            checksum: if with_checksum { Some(r.u16()?) } else { None },
        })
    } else {
        None
    };
    Ok(MptcpOption::Dss(Dss {
        data_ack,
        data_ack_64: ack_64,
        mapping,
        data_fin: flags & dss_flag::DATA_FIN != 0,
    }))
}

//= rfc8684#3.4.1
//= ADD_ADDR: E flag, address id, a 4- or 16-octet address, an optional port and, unless it
//   is an echo, the rightmost 64 bits of an HMAC; the IP version is told by the length.
fn parse_add_addr(len: usize, low: u8, body: &[u8]) -> crate::wire::Result<MptcpOption> {
    // (IPv6, port, HMAC) by length; every combination has a distinct length.
    let (v6, has_port, has_hmac) = match len {
        8 => (false, false, false),
        10 => (false, true, false),
        16 => (false, false, true),
        18 => (false, true, true),
        20 => (true, false, false),
        22 => (true, true, false),
        28 => (true, false, true),
        30 => (true, true, true),
        _ => return Err(bad_length("ADD_ADDR", len)),
    };
    let mut r = Reader {
        buf: body,
        what: "ADD_ADDR",
    };
    let addr_id = r.u8()?;
    let addr = if v6 {
        IpAddr::from(r.array::<16>()?)
    } else {
        IpAddr::from(r.array::<4>()?)
    };
    let port = if has_port { Some(r.u16()?) } else { None };
    let hmac = if has_hmac { Some(r.u64()?) } else { None };
    Ok(MptcpOption::AddAddr {
        echo: low & 0x1 != 0,
        addr_id,
        addr,
        port,
        hmac,
    })
}
