//! Writing MPTCP options (see the [parent module](super) for the rules).

use core::net::IpAddr;

use super::*;

/// A writer over the output buffer; `emit` sizes the buffer with `buffer_len` first.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    fn seq(&mut self, v: u64, wide: bool) {
        if wide {
            self.u64(v);
        } else {
            // Only the low 32 bits go on the wire.
            self.u32(v as u32);
        }
    }
}

impl MptcpOption {
    /// Write the option into `buf[..self.buffer_len()]`.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len) (a caller bug, never a
    /// property of received data).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let mut w = Writer { buf, pos: 0 };
        w.u8(KIND);
        // buffer_len never exceeds 255: every variable part is clamped above.
        w.u8(len as u8);
        match self {
            MptcpOption::MpCapable(c) => {
                w.u8((subtype::MP_CAPABLE << 4) | (c.version & 0x0f));
                w.u8(c.flags);
                let fields = [c.sender_key, c.receiver_key];
                for key in fields.iter().map_while(|k| *k) {
                    w.u64(key);
                }
                if len >= 22 {
                    w.u16(c.data_len.unwrap_or(0));
                }
                if len >= 24 {
                    w.u16(c.checksum.unwrap_or(0));
                }
            }
            MptcpOption::MpJoinSyn {
                backup,
                addr_id,
                token,
                nonce,
            } => {
                w.u8((subtype::MP_JOIN << 4) | u8::from(*backup));
                w.u8(*addr_id);
                w.u32(*token);
                w.u32(*nonce);
            }
            MptcpOption::MpJoinSynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => {
                w.u8((subtype::MP_JOIN << 4) | u8::from(*backup));
                w.u8(*addr_id);
                w.u64(*hmac);
                w.u32(*nonce);
            }
            MptcpOption::MpJoinAck { hmac } => {
                w.u8(subtype::MP_JOIN << 4);
                w.u8(0);
                w.put(hmac);
            }
            MptcpOption::Dss(d) => {
                w.u8(subtype::DSS << 4);
                w.u8(d.flags());
                if let Some(ack) = d.data_ack {
                    w.seq(ack, d.data_ack_64);
                }
                if let Some(m) = &d.mapping {
                    w.seq(m.dsn, m.dsn_64);
                    w.u32(m.subflow_seq);
                    w.u16(m.data_len);
                    if let Some(c) = m.checksum {
                        w.u16(c);
                    }
                }
            }
            MptcpOption::AddAddr {
                echo,
                addr_id,
                addr,
                port,
                hmac,
            } => {
                w.u8((subtype::ADD_ADDR << 4) | u8::from(*echo));
                w.u8(*addr_id);
                match addr {
                    IpAddr::V4(a) => w.put(&a.octets()),
                    IpAddr::V6(a) => w.put(&a.octets()),
                }
                if let Some(p) = port {
                    w.u16(*p);
                }
                if let Some(h) = hmac {
                    w.u64(*h);
                }
            }
            MptcpOption::RemoveAddr { addr_ids } => {
                w.u8(subtype::REMOVE_ADDR << 4);
                let n = addr_ids.len().min(MAX_REMOVE_ADDR_IDS);
                w.put(addr_ids.get(..n).unwrap_or_default());
            }
            MptcpOption::MpPrio { backup, addr_id } => {
                w.u8((subtype::MP_PRIO << 4) | u8::from(*backup));
                if let Some(id) = addr_id {
                    w.u8(*id);
                }
            }
            MptcpOption::MpFail { dsn } => {
                w.u8(subtype::MP_FAIL << 4);
                w.u8(0);
                w.u64(*dsn);
            }
            MptcpOption::MpFastclose { receiver_key } => {
                w.u8(subtype::MP_FASTCLOSE << 4);
                w.u8(0);
                w.u64(*receiver_key);
            }
            MptcpOption::MpTcpRst { flags, reason } => {
                w.u8((subtype::MP_TCPRST << 4) | (flags & 0x0f));
                w.u8(*reason);
            }
            MptcpOption::Unknown { subtype, data } => {
                let low = data.first().copied().unwrap_or(0) & 0x0f;
                w.u8(((subtype & 0x0f) << 4) | low);
                let n = data.len().clamp(1, MAX_UNKNOWN_DATA);
                w.put(data.get(1..n).unwrap_or_default());
            }
        }
        debug_assert_eq!(w.pos, len);
    }
}
