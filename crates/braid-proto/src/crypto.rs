//! MPTCP crypto, RFC 8684 §3.1, §3.2, §3.4.1, §3.3.1. Implemented by the wire-mptcp work.
//!
//! - [`key_token`] / [`key_idsn`]: the token and initial data sequence number of a key.
//! - [`join_synack_hmac`] / [`join_ack_hmac`]: the truncated MP_JOIN HMACs, from
//!   [`join_hmac`].
//! - [`add_addr_hmac`]: the truncated ADD_ADDR HMAC.
//! - [`dss_checksum`] / [`verify_dss_checksum`] and the incremental [`DssChecksum`].
//! - [`generate_key`]: a fresh 64-bit key from an injected random source.
//!
//! Every multi-octet integer enters a hash in network byte order (big-endian).

use core::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::wire::checksum;

/// SHA-256 and HMAC-SHA256 work on 64-octet blocks.
const BLOCK_LEN: usize = 64;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key` (any length).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // RFC 2104 §2: a key longer than the block is hashed first, a shorter one is padded with
    // zeros to the block length. Doing both here lets us use the infallible fixed-size
    // constructor (the padded key gives the same HMAC as the short one).
    let mut block = [0u8; BLOCK_LEN];
    if key.len() > BLOCK_LEN {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

//= rfc8684#3.1
//= The token is the most significant 32 bits of SHA-256 over the key (network byte order).
/// The connection token of `key`: the most significant 32 bits of SHA-256(key).
pub fn key_token(key: u64) -> u32 {
    let h = sha256(&key.to_be_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

//= rfc8684#3.1
//= The IDSN is the least significant 64 bits of SHA-256 over the key.
/// The initial data sequence number of `key`: the least significant 64 bits of SHA-256(key).
/// The first data byte sent by the key's owner has DSN `key_idsn(key) + 1`.
pub fn key_idsn(key: u64) -> u64 {
    let h = sha256(&key.to_be_bytes());
    let mut low = [0u8; 8];
    low.copy_from_slice(&h[24..]);
    u64::from_be_bytes(low)
}

/// The HMAC key of MP_JOIN and ADD_ADDR: `first ‖ second`, each big-endian.
fn concat_keys(first: u64, second: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&first.to_be_bytes());
    key[8..].copy_from_slice(&second.to_be_bytes());
    key
}

/// The full MP_JOIN HMAC computed by one host: HMAC-SHA256(key = local_key ‖ remote_key,
/// msg = local_nonce ‖ remote_nonce). Callers truncate; see [`join_synack_hmac`] and
/// [`join_ack_hmac`].
pub fn join_hmac(local_key: u64, remote_key: u64, local_nonce: u32, remote_nonce: u32) -> [u8; 32] {
    let key = concat_keys(local_key, remote_key);
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&local_nonce.to_be_bytes());
    msg[4..].copy_from_slice(&remote_nonce.to_be_bytes());
    hmac_sha256(&key, &msg)
}

//= rfc8684#3.2
//= The MP_JOIN SYN/ACK carries the leftmost 64 bits of HMAC(Key-B ‖ Key-A, R-B ‖ R-A), B
//   being the host that answers the join.
/// The truncated HMAC of the MP_JOIN SYN/ACK. The *initiator* sends the MP_JOIN SYN, the
/// *responder* answers with the SYN/ACK; the keys are each host's MP_CAPABLE key and the
/// nonces each host's MP_JOIN random number. Both hosts call this with the same arguments:
/// the responder to send, the initiator to verify.
pub fn join_synack_hmac(
    initiator_key: u64,
    responder_key: u64,
    initiator_nonce: u32,
    responder_nonce: u32,
) -> u64 {
    let h = join_hmac(
        responder_key,
        initiator_key,
        responder_nonce,
        initiator_nonce,
    );
    let mut left = [0u8; 8];
    left.copy_from_slice(&h[..8]);
    u64::from_be_bytes(left)
}

//= rfc8684#3.2
//= The MP_JOIN third ACK carries the leftmost 160 bits of HMAC(Key-A ‖ Key-B, R-A ‖ R-B), A
//   being the host that started the join.
/// The truncated HMAC of the MP_JOIN third ACK (same argument roles as
/// [`join_synack_hmac`]): the initiator sends it, the responder verifies it.
pub fn join_ack_hmac(
    initiator_key: u64,
    responder_key: u64,
    initiator_nonce: u32,
    responder_nonce: u32,
) -> [u8; 20] {
    let h = join_hmac(
        initiator_key,
        responder_key,
        initiator_nonce,
        responder_nonce,
    );
    let mut left = [0u8; 20];
    left.copy_from_slice(&h[..20]);
    left
}

//= rfc8684#3.4.1
//= The ADD_ADDR HMAC is over address id ‖ address ‖ port (0 when absent), keyed with the
//   sender's key ‖ the receiver's key; the option carries its rightmost 64 bits.
/// The truncated HMAC of an ADD_ADDR sent by the host owning `sender_key` to the host owning
/// `receiver_key`. A missing port counts as port 0.
pub fn add_addr_hmac(
    sender_key: u64,
    receiver_key: u64,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> u64 {
    let key = concat_keys(sender_key, receiver_key);
    // id (1) + address (4 or 16) + port (2)
    let mut msg = [0u8; 19];
    msg[0] = addr_id;
    let n = match addr {
        IpAddr::V4(a) => {
            msg[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            msg[1..17].copy_from_slice(&a.octets());
            17
        }
    };
    msg[n..n + 2].copy_from_slice(&port.unwrap_or(0).to_be_bytes());
    let h = hmac_sha256(&key, &msg[..n + 2]);
    let mut right = [0u8; 8];
    right.copy_from_slice(&h[24..]);
    u64::from_be_bytes(right)
}

/// The incremental DSS checksum of one mapping, for payloads that arrive (or are sent) in
/// several pieces. Pieces may have any length; an odd byte is carried over to the next piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DssChecksum {
    sum: u32,
    pending: Option<u8>,
}

impl DssChecksum {
    //= rfc8684#3.3.1
    //= The DSS checksum covers a pseudo-header of the 64-bit DSN, the 32-bit relative subflow
    //   sequence number, the 16-bit data-level length and a zero 16-bit checksum, then the data.
    /// Start a checksum over the pseudo-header of the mapping (`dsn` always the full 64 bits,
    /// `subflow_seq` relative to the subflow's ISN, `data_len` as on the wire, which counts a
    /// DATA_FIN as one octet).
    pub fn new(dsn: u64, subflow_seq: u32, data_len: u16) -> DssChecksum {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&dsn.to_be_bytes());
        header[8..12].copy_from_slice(&subflow_seq.to_be_bytes());
        header[12..14].copy_from_slice(&data_len.to_be_bytes());
        // header[14..16]: the checksum field, zero.
        DssChecksum {
            sum: checksum::add(0, &header),
            pending: None,
        }
    }

    /// Add the next piece of the mapping's payload as it sits in a ring buffer (both runs).
    pub fn update_parts(&mut self, data: crate::wire::Payload<'_>) {
        self.update(data.head);
        self.update(data.tail);
    }

    /// Add the next piece of the mapping's payload.
    pub fn update(&mut self, mut data: &[u8]) {
        if let Some(hi) = self.pending.take() {
            match data.split_first() {
                Some((lo, rest)) => {
                    self.sum = checksum::add(self.sum, &[hi, *lo]);
                    data = rest;
                }
                None => {
                    self.pending = Some(hi);
                    return;
                }
            }
        }
        let even = data.len() & !1;
        self.sum = checksum::add(self.sum, &data[..even]);
        self.pending = data.get(even).copied();
    }

    fn total(&self) -> u32 {
        match self.pending {
            Some(hi) => checksum::add(self.sum, &[hi]),
            None => self.sum,
        }
    }

    /// The checksum to put on the wire.
    pub fn finish(&self) -> u16 {
        !checksum::fold(self.total())
    }

    /// Whether `wire_checksum` (as received) matches the data added so far. Summing the
    /// received checksum in and checking for all ones accepts both encodings of zero.
    pub fn verify(&self, wire_checksum: u16) -> bool {
        checksum::fold(checksum::add(self.total(), &wire_checksum.to_be_bytes())) == 0xffff
    }
}

/// The DSS checksum of a whole mapping, RFC 8684 §3.3.1 (see [`DssChecksum::new`] for the
/// arguments).
pub fn dss_checksum(dsn: u64, subflow_seq: u32, data_len: u16, payload: &[u8]) -> u16 {
    dss_checksum_parts(dsn, subflow_seq, data_len, payload.into())
}

/// [`dss_checksum`] over a payload in two runs (as it sits in a ring buffer).
pub fn dss_checksum_parts(
    dsn: u64,
    subflow_seq: u32,
    data_len: u16,
    payload: crate::wire::Payload<'_>,
) -> u16 {
    let mut c = DssChecksum::new(dsn, subflow_seq, data_len);
    c.update_parts(payload);
    c.finish()
}

/// Whether a received DSS checksum matches the whole mapping's payload.
pub fn verify_dss_checksum(
    dsn: u64,
    subflow_seq: u32,
    data_len: u16,
    payload: &[u8],
    wire_checksum: u16,
) -> bool {
    let mut c = DssChecksum::new(dsn, subflow_seq, data_len);
    c.update(payload);
    c.verify(wire_checksum)
}

/// How many draws [`generate_key`] makes before settling for what it has.
const KEY_ATTEMPTS: usize = 64;

/// A fresh 64-bit MPTCP key from `rng` (RFC 8684 §3.1 asks for a random key).
///
/// The RFC does not forbid any value, but braid redraws a key that is 0 or whose token is 0:
/// zero reads as "unset" too easily in tables and logs, and excluding it costs nothing
/// (probability 2^-32 per draw). A generator that keeps producing such keys gets its
/// 64th draw back unchanged, so the call always ends. Uniqueness of the token among local
/// connections is the endpoint's job (it owns the token table).
pub fn generate_key(rng: &mut impl rand_core::Rng) -> u64 {
    let mut key = rng.next_u64();
    for _ in 1..KEY_ATTEMPTS {
        if key != 0 && key_token(key) != 0 {
            break;
        }
        key = rng.next_u64();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_checksum_equals_one_shot_for_odd_pieces() {
        let payload: Vec<u8> = (0u16..301).map(|i| (i * 7 + 3) as u8).collect();
        let whole = dss_checksum(0x0102_0304_0506_0708, 77, 301, &payload);
        for split in [0, 1, 2, 3, 150, 151, 300, 301] {
            let (a, b) = payload.split_at(split);
            let mut c = DssChecksum::new(0x0102_0304_0506_0708, 77, 301);
            c.update(a);
            c.update(&[]);
            c.update(b);
            assert_eq!(c.finish(), whole, "split at {split}");
            assert!(c.verify(whole));
        }
    }
}
