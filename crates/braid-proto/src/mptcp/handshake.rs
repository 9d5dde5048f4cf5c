//! The MP_CAPABLE v1 handshake (RFC 8684 §3.1) for both roles, as an explicit state machine.
//!
//! Client: SYN with MP_CAPABLE (no key; A = checksums wanted, H = HMAC-SHA256) → SYN/ACK with
//! the server's key → third ACK with both keys → the first data carries MP_CAPABLE with both
//! keys and the data-level length (+ checksum), and MP_CAPABLE is repeated until the server's
//! first DSS shows it has the keys. Server: a SYN with MP_CAPABLE → SYN/ACK with its key → the
//! third ACK (or the first data) gives the client's key.
//!
//! Checksums are on when either side sets A. Anything but version 1 with the H flag, or a
//! missing option, falls back to plain TCP (like Linux, which ignores such options).

use crate::crypto::{key_idsn, key_token};
use crate::wire::mptcp::MpCapable;

/// The only MPTCP version braid speaks.
pub const VERSION: u8 = 1;

/// The keys and parameters of an MPTCP connection once both keys are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub local_key: u64,
    pub remote_key: u64,
    /// DSS checksums in use (either side asked).
    pub checksum: bool,
    pub local_token: u32,
    pub remote_token: u32,
    /// IDSN of what we send (from our key).
    pub local_idsn: u64,
    /// IDSN of what the peer sends (from its key).
    pub remote_idsn: u64,
}

impl Negotiated {
    fn new(local_key: u64, remote_key: u64, checksum: bool) -> Negotiated {
        Negotiated {
            local_key,
            remote_key,
            checksum,
            local_token: key_token(local_key),
            remote_token: key_token(remote_key),
            local_idsn: key_idsn(local_key),
            remote_idsn: key_idsn(remote_key),
        }
    }
}

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    /// Client: the SYN (with MP_CAPABLE) is out, waiting for the SYN/ACK.
    ClientSynSent,
    /// Client: both keys known; MP_CAPABLE is repeated until the server's DSS arrives.
    ClientUnconfirmed,
    /// Server: the SYN/ACK (with our key) is out, waiting for the client's key.
    ServerSynReceived,
    /// MPTCP is in use.
    Established,
    /// The connection fell back to plain TCP.
    Fallback,
}

/// Why a handshake step fell back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FallbackReason {
    #[error("MP_CAPABLE missing")]
    Missing,
    #[error("unsupported MP_CAPABLE version {0}")]
    Version(u8),
    #[error("MP_CAPABLE without HMAC-SHA256")]
    NoHmac,
    #[error("MP_CAPABLE echoes the wrong key")]
    WrongKey,
}

/// The MP_CAPABLE state machine of one connection.
#[derive(Debug, Clone)]
pub struct MpCapableHandshake {
    state: HandshakeState,
    local_key: u64,
    remote_key: Option<u64>,
    want_checksum: bool,
    checksum: bool,
    fallback: Option<FallbackReason>,
    /// An option carrying our key was handed out (it may be on the wire).
    key_sent: bool,
}

//= rfc8684#3.1
//= Version 1 and the H bit (HMAC-SHA256) are required; otherwise the option is not MPTCP v1.
fn check(opt: Option<&MpCapable>) -> Result<&MpCapable, FallbackReason> {
    let o = opt.ok_or(FallbackReason::Missing)?;
    if o.version != VERSION {
        return Err(FallbackReason::Version(o.version));
    }
    if !o.hmac_sha256() {
        return Err(FallbackReason::NoHmac);
    }
    Ok(o)
}

impl MpCapableHandshake {
    /// A client that sends a SYN with MP_CAPABLE; `want_checksum` sets the A flag.
    pub fn client(local_key: u64, want_checksum: bool) -> MpCapableHandshake {
        MpCapableHandshake {
            state: HandshakeState::ClientSynSent,
            local_key,
            remote_key: None,
            want_checksum,
            checksum: want_checksum,
            fallback: None,
            key_sent: false,
        }
    }

    /// A server answering a SYN; `syn` is the SYN's MP_CAPABLE option. `Err` means the
    /// connection is plain TCP (no MP_CAPABLE on the SYN/ACK).
    pub fn server(
        local_key: u64,
        want_checksum: bool,
        syn: Option<&MpCapable>,
    ) -> Result<MpCapableHandshake, FallbackReason> {
        let o = syn.ok_or(FallbackReason::Missing)?;
        //= rfc8684#3.1
        //= A SYN with a higher version is answered with the version we support (the
        //   initiator then decides); a lower one is not MPTCP v1.
        if o.version < VERSION {
            return Err(FallbackReason::Version(o.version));
        }
        if !o.hmac_sha256() {
            return Err(FallbackReason::NoHmac);
        }
        Ok(MpCapableHandshake {
            state: HandshakeState::ServerSynReceived,
            local_key,
            remote_key: None,
            want_checksum,
            //= rfc8684#3.1
            //= Checksums are used when either host sets the A bit.
            checksum: want_checksum || o.checksum_required(),
            fallback: None,
            key_sent: false,
        })
    }

    /// A connection that is plain TCP from the start (a SYN without a usable MP_CAPABLE).
    pub fn plain(local_key: u64, reason: FallbackReason) -> MpCapableHandshake {
        MpCapableHandshake {
            state: HandshakeState::Fallback,
            local_key,
            remote_key: None,
            want_checksum: false,
            checksum: false,
            fallback: Some(reason),
            key_sent: false,
        }
    }

    pub fn state(&self) -> HandshakeState {
        self.state
    }

    /// Why the connection fell back, if it did.
    pub fn fallback_reason(&self) -> Option<FallbackReason> {
        self.fallback
    }

    pub fn local_key(&self) -> u64 {
        self.local_key
    }

    /// Replaces the local key before it was sent (the server's SYN/ACK or the client's SYN
    /// state) — for the endpoint when the key's token collides with an existing
    /// connection's. Returns false (and keeps the key) once the key may be on the wire.
    pub fn redraw_key(&mut self, new_key: u64) -> bool {
        match self.state {
            HandshakeState::ClientSynSent | HandshakeState::ServerSynReceived
                if self.remote_key.is_none() && !self.key_sent =>
            {
                self.local_key = new_key;
                true
            }
            _ => false,
        }
    }

    /// Whether checksums are (so far) in use.
    pub fn checksum(&self) -> bool {
        self.checksum
    }

    fn flags(&self, checksum: bool) -> u8 {
        MpCapable::FLAG_HMAC_SHA256
            | if checksum {
                MpCapable::FLAG_CHECKSUM
            } else {
                0
            }
    }

    /// The client's SYN option (form 1).
    pub fn syn_option(&self) -> MpCapable {
        MpCapable::syn(VERSION, self.flags(self.want_checksum))
    }

    /// The server's SYN/ACK option (form 2). From here on the key may be on the wire.
    pub fn syn_ack_option(&mut self) -> MpCapable {
        self.key_sent = true;
        MpCapable::syn_ack(VERSION, self.flags(self.checksum), self.local_key)
    }

    /// Client: processes the SYN/ACK's MP_CAPABLE. `Err` = fallback to plain TCP.
    pub fn on_syn_ack(&mut self, opt: Option<&MpCapable>) -> Result<Negotiated, FallbackReason> {
        if self.state != HandshakeState::ClientSynSent {
            return self.negotiated().ok_or(FallbackReason::Missing);
        }
        //= rfc8684#3.1
        //= A SYN/ACK without a valid MP_CAPABLE makes the initiator fall back to plain TCP.
        match check(opt).and_then(|o| o.sender_key.map(|k| (o, k)).ok_or(FallbackReason::Missing)) {
            Ok((o, key)) => {
                self.remote_key = Some(key);
                self.checksum = self.want_checksum || o.checksum_required();
                self.state = HandshakeState::ClientUnconfirmed;
                Ok(Negotiated::new(self.local_key, key, self.checksum))
            }
            Err(e) => Err(self.fall_back(e)),
        }
    }

    fn fall_back(&mut self, e: FallbackReason) -> FallbackReason {
        self.state = HandshakeState::Fallback;
        self.fallback = Some(e);
        e
    }

    /// Client: the option for a segment without data while unconfirmed (form 3, the third
    /// ACK); `None` once confirmed or without keys.
    pub fn ack_option(&self) -> Option<MpCapable> {
        if self.state != HandshakeState::ClientUnconfirmed {
            return None;
        }
        let remote = self.remote_key?;
        Some(MpCapable::ack(
            VERSION,
            self.flags(self.checksum),
            self.local_key,
            remote,
        ))
    }

    /// Client: the option for the first data segment while unconfirmed (form 4, both keys,
    /// data-level length and, with checksums, the DSS checksum of the implicit mapping
    /// DSN = IDSN + 1, subflow sequence 1).
    pub fn data_option(&self, data_len: u16, checksum: Option<u16>) -> Option<MpCapable> {
        let ack = self.ack_option()?;
        Some(MpCapable {
            data_len: Some(data_len),
            checksum: if self.checksum { checksum } else { None },
            ..ack
        })
    }

    //= rfc8684#3.1
    //= The initiator repeats MP_CAPABLE until it receives a DSS from the listener, which shows
    //   the listener knows both keys.
    /// Client: a DSS from the server arrived: stop sending MP_CAPABLE.
    pub fn on_peer_dss(&mut self) {
        if self.state == HandshakeState::ClientUnconfirmed {
            self.state = HandshakeState::Established;
        }
    }

    /// Server: processes the MP_CAPABLE of a segment after the SYN (the third ACK, form 3, or
    /// data, form 4). `Ok(Some)` when the handshake completes here, `Ok(None)` when it
    /// was already complete (or the option is absent while waiting: see
    /// [`MpCapableHandshake::on_missing_option`]).
    pub fn on_ack(
        &mut self,
        opt: Option<&MpCapable>,
    ) -> Result<Option<Negotiated>, FallbackReason> {
        if self.state != HandshakeState::ServerSynReceived {
            return Ok(None);
        }
        let Some(o) = opt else {
            return Ok(None);
        };
        let o = check(Some(o)).map_err(|e| self.fall_back(e))?;
        let (Some(sender), Some(receiver)) = (o.sender_key, o.receiver_key) else {
            return Err(self.fall_back(FallbackReason::Missing));
        };
        if receiver != self.local_key {
            return Err(self.fall_back(FallbackReason::WrongKey));
        }
        self.remote_key = Some(sender);
        self.state = HandshakeState::Established;
        Ok(Some(Negotiated::new(self.local_key, sender, self.checksum)))
    }

    //= rfc8684#3.7
    //= If the first segment after the SYN/ACK carries neither MP_CAPABLE nor DSS, the listener
    //   falls back to plain TCP.
    /// Server: a segment after the SYN/ACK had no MP_CAPABLE (and no DSS): fall back.
    pub fn on_missing_option(&mut self) {
        if self.state == HandshakeState::ServerSynReceived {
            self.fall_back(FallbackReason::Missing);
        }
    }

    /// The negotiated parameters once both keys are known.
    pub fn negotiated(&self) -> Option<Negotiated> {
        match self.state {
            HandshakeState::Fallback => None,
            _ => self
                .remote_key
                .map(|r| Negotiated::new(self.local_key, r, self.checksum)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KA: u64 = 0xa460_6019_1787_3ac7;
    const KB: u64 = 0xb100_1876_e183_73d4;

    #[test]
    fn full_handshake_both_roles() {
        let mut c = MpCapableHandshake::client(KA, false);
        let syn = c.syn_option();
        assert_eq!(syn.flags, MpCapable::FLAG_HMAC_SHA256);
        assert_eq!(syn.sender_key, None);
        let mut s = MpCapableHandshake::server(KB, false, Some(&syn)).unwrap();
        let sa = s.syn_ack_option();
        assert_eq!(sa.sender_key, Some(KB));
        let n = c.on_syn_ack(Some(&sa)).unwrap();
        assert_eq!(n.remote_token, 1314713917);
        assert_eq!(n.local_token, 182769222);
        assert_eq!(n.local_idsn, 14949687148686711321);
        assert_eq!(n.remote_idsn, 13817135653427357542);
        assert!(!n.checksum);
        let ack = c.ack_option().unwrap();
        assert_eq!((ack.sender_key, ack.receiver_key), (Some(KA), Some(KB)));
        let sn = s.on_ack(Some(&ack)).unwrap().unwrap();
        assert_eq!(sn.remote_key, KA);
        assert_eq!(s.state(), HandshakeState::Established);
        assert_eq!(s.on_ack(Some(&ack)), Ok(None));
        // the client repeats MP_CAPABLE until the server's DSS
        let d = c.data_option(100, Some(7)).unwrap();
        assert_eq!((d.data_len, d.checksum), (Some(100), None));
        c.on_peer_dss();
        assert_eq!(c.state(), HandshakeState::Established);
        assert!(c.ack_option().is_none() && c.data_option(1, None).is_none());
    }

    #[test]
    fn checksum_when_either_side_asks() {
        let c = MpCapableHandshake::client(KA, true);
        let mut s = MpCapableHandshake::server(KB, false, Some(&c.syn_option())).unwrap();
        assert!(s.checksum());
        assert_eq!(s.syn_ack_option().flags, 0x81);
        let mut c = MpCapableHandshake::client(KA, false);
        let mut s = MpCapableHandshake::server(KB, true, Some(&c.syn_option())).unwrap();
        assert!(c.on_syn_ack(Some(&s.syn_ack_option())).unwrap().checksum);
        assert_eq!(c.data_option(3, Some(9)).unwrap().checksum, Some(9));
    }

    #[test]
    fn fallback_cases() {
        let mut c = MpCapableHandshake::client(KA, false);
        assert_eq!(c.on_syn_ack(None), Err(FallbackReason::Missing));
        assert_eq!(c.state(), HandshakeState::Fallback);
        assert!(c.negotiated().is_none() && c.ack_option().is_none());

        let mut c = MpCapableHandshake::client(KA, false);
        let bad = MpCapable::syn_ack(0, 1, KB);
        assert_eq!(c.on_syn_ack(Some(&bad)), Err(FallbackReason::Version(0)));
        let mut c = MpCapableHandshake::client(KA, false);
        assert_eq!(
            c.on_syn_ack(Some(&MpCapable::syn_ack(1, 0, KB))),
            Err(FallbackReason::NoHmac)
        );
        assert!(MpCapableHandshake::server(KB, false, None).is_err());
        assert_eq!(
            MpCapableHandshake::server(KB, false, Some(&MpCapable::syn(0, 1))).err(),
            Some(FallbackReason::Version(0))
        );
        // a higher version on the SYN is answered with v1
        let mut s = MpCapableHandshake::server(KB, false, Some(&MpCapable::syn(2, 1))).unwrap();
        assert_eq!(s.syn_ack_option().version, 1);

        let mut s = MpCapableHandshake::server(KB, false, Some(&MpCapable::syn(1, 1))).unwrap();
        let wrong = MpCapable::ack(1, 1, KA, KB ^ 1);
        assert_eq!(s.on_ack(Some(&wrong)), Err(FallbackReason::WrongKey));
        let mut s = MpCapableHandshake::server(KB, false, Some(&MpCapable::syn(1, 1))).unwrap();
        s.on_missing_option();
        assert_eq!(s.state(), HandshakeState::Fallback);
    }

    #[test]
    fn first_data_form_completes_the_server_and_keys_can_be_redrawn() {
        let mut s = MpCapableHandshake::server(KB, false, Some(&MpCapable::syn(1, 1))).unwrap();
        assert!(s.redraw_key(KB ^ 0xff));
        assert!(s.redraw_key(KB));
        let _ = s.syn_ack_option();
        assert!(!s.redraw_key(KB ^ 1)); // the key may be on the wire now
        let form4 = MpCapable::ack_with_data(1, 1, KA, KB, 10, None);
        assert!(s.on_ack(Some(&form4)).unwrap().is_some());
        assert!(!s.redraw_key(5));
    }
}
