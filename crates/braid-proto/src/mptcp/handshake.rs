//! The MP_CAPABLE v1 handshake (RFC 8684 §3.1) for both roles, as an explicit state machine.
//!
//! Client: SYN with MP_CAPABLE (no key; A = checksums wanted, H = HMAC-SHA256) → SYN/ACK with
//! the server's key → third ACK with both keys → the first data carries MP_CAPABLE with both
//! keys and the data-level length (+ checksum), and MP_CAPABLE is repeated until the server's
//! first DSS shows it has the keys. Server: a SYN with MP_CAPABLE → SYN/ACK with its key → the
//! third ACK (or the first data) gives the client's key.
//!
//! Checksums are on when either side sets A. Which options count is Linux's rule
//! (`mptcp_parse_option`); an option that does not count is ignored, as if absent, so the
//! connection is plain TCP:
//!
//! | segment            | version        | flags (A B C D E F G H)                 | form (length)        |
//! |--------------------|----------------|-----------------------------------------|----------------------|
//! | SYN                | 1 or higher    | B clear, D..H exactly H (`xx0 0000 1`)  | 4 (no key)           |
//! | SYN/ACK            | exactly 1      | B clear, D..H exactly H                 | 12 (sender key)      |
//! | third ACK / data   | exactly 1      | B clear, D..H exactly H                 | 20 / 22 or 24        |
//!
//! A set on a valid option turns checksums on (either side's A); C set on the peer's SYN or
//! SYN/ACK is recorded ([`MpCapableHandshake::peer_denies_initial_join`]): no subflow may be
//! opened towards the peer's initial address and port. A higher version on the SYN is
//! answered with version 1 (the initiator decides); version 0 (RFC 6824) is plain TCP.

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
    #[error("MP_CAPABLE with the extensibility (B) flag")]
    Extensibility,
    #[error("MP_CAPABLE asks for crypto algorithms other than HMAC-SHA256 (flags {0:#04x})")]
    UnknownCrypto(u8),
    #[error("MP_CAPABLE of the wrong form (length) for its segment")]
    Form,
}

/// Which segment an MP_CAPABLE arrived on (it decides the form and the versions allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Syn,
    SynAck,
    /// The third ACK or a later segment of the initiator; `data`: it carries payload.
    Ack {
        data: bool,
    },
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
    /// The peer set C on its SYN or SYN/ACK: no subflows towards its initial address.
    peer_denies_initial_join: bool,
}

/// Flags D..H: the crypto algorithm bits.
const CRYPTO_BITS: u8 = 0x1f;

/// Whether `o` counts on a segment of kind `on`; `Err` says why it is ignored (the caller
/// then treats the segment as one without MP_CAPABLE).
fn check(opt: Option<&MpCapable>, on: Carrier) -> Result<&MpCapable, FallbackReason> {
    let o = opt.ok_or(FallbackReason::Missing)?;
    //= rfc8684#3.1
    //= The initiator signals the highest version it supports; the listener answers with a
    //   version no higher. Linux answers a SYN of version 1 or higher with version 1 and
    //   takes nothing but version 1 after the SYN; version 0 (RFC 6824) is not spoken.
    let version_ok = match on {
        Carrier::Syn => o.version >= VERSION,
        Carrier::SynAck | Carrier::Ack { .. } => o.version == VERSION,
    };
    if !version_ok {
        return Err(FallbackReason::Version(o.version));
    }
    //= rfc8684#3.1
    //= The MP_CAPABLE forms: no key on the SYN, the sender's key on the SYN/ACK, both keys
    //   on the third ACK (plus the data-level length, and its checksum, with data). Linux
    //   ignores an option whose length does not fit its segment.
    let form_ok = match on {
        Carrier::Syn => o.sender_key.is_none(),
        Carrier::SynAck => o.sender_key.is_some() && o.receiver_key.is_none(),
        Carrier::Ack { data } => {
            o.sender_key.is_some() && o.receiver_key.is_some() && o.data_len.is_some() == data
        }
    };
    if !form_ok {
        return Err(FallbackReason::Form);
    }
    //= rfc8684#3.1
    //= B (extensibility) MUST be 0; an MP_CAPABLE with B set that is not understood is
    //   silently ignored, which means fallback to regular TCP.
    if o.flags & MpCapable::FLAG_EXTENSIBILITY != 0 {
        return Err(FallbackReason::Extensibility);
    }
    //= rfc8684#3.1
    //= D..H negotiate the crypto algorithm; only H (HMAC-SHA256) is defined, and an
    //   implementation of this method sets H and clears D..G. With none set the option is
    //   invalid and ignored; Linux also ignores one with any of D..G set.
    match o.flags & CRYPTO_BITS {
        MpCapable::FLAG_HMAC_SHA256 => Ok(o),
        0 => Err(FallbackReason::NoHmac),
        other => Err(FallbackReason::UnknownCrypto(other)),
    }
}

/// Whether an MP_CAPABLE on a segment of the initiator after its SYN counts (a repeat on
/// data once the handshake completed maps that data only if it does).
pub fn ack_option_counts(o: &MpCapable, with_data: bool) -> bool {
    check(Some(o), Carrier::Ack { data: with_data }).is_ok()
}

//= rfc8684#3.1
//= C set: the sender accepts no additional subflows to the source address and port of this
//  option's packet, so the receiver MUST NOT open subflows towards them.
fn denies_initial_join(o: &MpCapable) -> bool {
    o.flags & MpCapable::FLAG_NO_MORE_SUBFLOWS != 0
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
            peer_denies_initial_join: false,
        }
    }

    /// A server answering a SYN; `syn` is the SYN's MP_CAPABLE option. `Err` means the
    /// connection is plain TCP (no MP_CAPABLE on the SYN/ACK).
    pub fn server(
        local_key: u64,
        want_checksum: bool,
        syn: Option<&MpCapable>,
    ) -> Result<MpCapableHandshake, FallbackReason> {
        let o = check(syn, Carrier::Syn)?;
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
            peer_denies_initial_join: denies_initial_join(o),
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
            peer_denies_initial_join: false,
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

    /// Whether the peer set C (RFC 8684 §3.1) on its SYN or SYN/ACK: it accepts no more
    /// subflows towards its initial address and port (Linux's `remote_deny_join_id0`).
    pub fn peer_denies_initial_join(&self) -> bool {
        self.peer_denies_initial_join
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
        match check(opt, Carrier::SynAck)
            .and_then(|o| o.sender_key.map(|k| (o, k)).ok_or(FallbackReason::Form))
        {
            Ok((o, key)) => {
                self.remote_key = Some(key);
                self.checksum = self.want_checksum || o.checksum_required();
                self.peer_denies_initial_join = denies_initial_join(o);
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
    /// data, form 4; `with_data`: the segment carries payload, so only form 4 fits). `Ok(Some)` when the handshake completes here, `Ok(None)` when it
    /// was already complete (or the option is absent while waiting: see
    /// [`MpCapableHandshake::on_missing_option`]).
    pub fn on_ack(
        &mut self,
        opt: Option<&MpCapable>,
        with_data: bool,
    ) -> Result<Option<Negotiated>, FallbackReason> {
        if self.state != HandshakeState::ServerSynReceived {
            return Ok(None);
        }
        let Some(o) = opt else {
            return Ok(None);
        };
        let o = check(Some(o), Carrier::Ack { data: with_data }).map_err(|e| self.fall_back(e))?;
        let (Some(sender), Some(receiver)) = (o.sender_key, o.receiver_key) else {
            return Err(self.fall_back(FallbackReason::Form));
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
        let sn = s.on_ack(Some(&ack), false).unwrap().unwrap();
        assert_eq!(sn.remote_key, KA);
        assert_eq!(s.state(), HandshakeState::Established);
        assert_eq!(s.on_ack(Some(&ack), false), Ok(None));
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
        assert_eq!(s.on_ack(Some(&wrong), false), Err(FallbackReason::WrongKey));
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
        assert!(s.on_ack(Some(&form4), true).unwrap().is_some());
        assert!(!s.redraw_key(5));
    }
}
