//! Address signalling of an [`MptcpConnection`]: ADD_ADDR with its HMAC, echo and
//! retransmission (RFC 8684 §3.4.1), REMOVE_ADDR (§3.4.2) and MP_PRIO (§3.3.8), plus the
//! path-manager events the connection reports ([`ConnPmEvent`]).
//!
//! A child module of `connection` (it reaches the connection's private state); the hooks in
//! `connection.rs` are one call each: [`MptcpConnection::addr_input`] from
//! `handle_segment`, [`MptcpConnection::addr_options`] from `add_options` (both in the sibling
//! `addr_wire`, what goes on the wire), [`MptcpConnection::pm_sync`] from `take_events` and
//! the timer pair.
//!
//! Linux's choices:
//! - ADD_ADDR, its echo, REMOVE_ADDR and MP_PRIO go on pure ACKs (the connection asks the
//!   subflow TCB for one with [`crate::tcp::Tcb::request_ack`]); a data segment has no room
//!   beside its DSS. When ADD_ADDR does not fit beside the DATA_ACK and the timestamps (IPv6,
//!   or IPv4 with a port), the pure ACK carries it without the DSS, as Linux's dedicated
//!   ADD_ADDR ACK drops the other suboptions.
//! - An ADD_ADDR not echoed is sent again every `add_addr_timeout` (Linux's
//!   `net.mptcp.add_addr_timeout`, 120 s), at most `add_addr_retrans_max` times (Linux's
//!   `ADD_ADDR_RETRANS_MAX`, 3).
//! - A received ADD_ADDR with a wrong or missing HMAC is dropped and counted
//!   (`AddAddrDrop`); a valid one is always echoed (the kernel echoes even addresses its path
//!   manager does not use).
//! - REMOVE_ADDR resets the subflows whose remote address id is listed (`RmSubflow`); their
//!   data not yet DATA_ACKed is reinjected on the others.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::error::ConnectionError;
use crate::pm::SubflowError;
use crate::tcp::TcpState;
use crate::time::Instant;
use crate::wire::mptcp::{rst_reason, MptcpOption};
use crate::wire::TcpRepr;

use super::{MptcpConnection, SubflowId};

/// TCP option space.
#[cfg(test)]
const MAX_OPTION_SPACE: usize = 40;
/// Most queued events before the oldest are dropped (nobody draining them).
const MAX_EVENTS: usize = 256;
/// Most peer addresses remembered (the kernel's `MPTCP_PM_ADDR_MAX` is 8; ids are 8 bits).
pub(super) const MAX_PEER_ADDRS: usize = 256;
/// Most echoes waiting to be sent; ADD_ADDRs beyond are dropped (`AddAddrDrop`), as the
/// kernel drops one while its path manager is still busy with the previous.
pub(super) const MAX_PENDING_ECHOES: usize = 16;

/// Path-manager events of one connection, by subflow id (the endpoint adds the addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnPmEvent {
    /// MPTCP is established on the initial subflow.
    Established,
    /// The peer announced an address (HMAC verified; echoed already).
    AddAddr {
        /// The peer's address id.
        id: u8,
        /// The address.
        addr: IpAddr,
        /// Its port, if announced.
        port: Option<u16>,
    },
    /// The peer echoed one of our ADD_ADDRs.
    Echoed {
        /// Our address id.
        id: u8,
    },
    /// The peer removed addresses (its subflows on them were closed already).
    RemoveAddr {
        /// The peer's address ids.
        ids: Vec<u8>,
    },
    /// A joined subflow finished its MP_JOIN handshake.
    SubflowEstablished {
        /// The subflow.
        subflow: SubflowId,
    },
    /// A subflow closed; `error` is `None` for an orderly close or one we asked for.
    SubflowClosed {
        /// The subflow.
        subflow: SubflowId,
        /// Why, when it failed.
        error: Option<SubflowError>,
    },
    /// The peer sent MP_PRIO on a subflow.
    Priority {
        /// The subflow.
        subflow: SubflowId,
        /// The peer's backup request.
        backup: bool,
    },
    /// Every subflow closed, or the connection fell back to plain TCP (MPTCP is over: no
    /// more subflows or signals).
    Closed,
}

/// Why an address operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// MPTCP is not (or no longer) running.
    #[error("the connection is not an established MPTCP connection")]
    NotMptcp,
    /// No such subflow, or it is closed.
    #[error("no such open subflow")]
    UnknownSubflow,
}

/// One of our announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Announce {
    pub(super) id: u8,
    pub(super) addr: IpAddr,
    pub(super) port: Option<u16>,
    /// Next retransmission; `None` once echoed or given up.
    pub(super) deadline: Option<Instant>,
    pub(super) retrans: u8,
    pub(super) echoed: bool,
    /// Waiting to go on a segment.
    pub(super) pending: bool,
}

/// An address the peer announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's address id.
    pub id: u8,
    /// The address.
    pub addr: IpAddr,
    /// Its port, if announced.
    pub port: Option<u16>,
}

/// One of our ADD_ADDRs as [`MptcpConnection::announced_addrs`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncedAddr {
    /// Our address id.
    pub id: u8,
    /// The address.
    pub addr: IpAddr,
    /// The port, if announced.
    pub port: Option<u16>,
    /// The peer echoed it.
    pub echoed: bool,
    /// Retransmissions so far.
    pub retransmissions: u8,
}

/// The connection's address state.
#[derive(Debug, Default)]
pub(super) struct AddrState {
    pub(super) announced: Vec<Announce>,
    pub(super) peer: Vec<PeerAddr>,
    /// Echoes to send.
    pub(super) echo_tx: VecDeque<PeerAddr>,
    /// REMOVE_ADDR ids to send.
    pub(super) remove_tx: Vec<u8>,
    events: VecDeque<ConnPmEvent>,
    established_reported: bool,
    closed_reported: bool,
}

impl AddrState {
    pub(super) fn push_event(&mut self, e: ConnPmEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.echo_tx.is_empty()
            || !self.remove_tx.is_empty()
            || self.announced.iter().any(|a| a.pending)
    }
}

/// Fits `opt` into `repr` if the options stay within 40 bytes once the SACK blocks give
/// way (the caller's loop drops them); true when added.
fn try_push(repr: &mut TcpRepr, opt: MptcpOption, limit: usize) -> bool {
    let mut probe = repr.options.clone();
    probe.sack_blocks.clear();
    probe.mptcp.push(opt.clone());
    if probe.padded_len() <= limit {
        repr.options.mptcp.push(opt);
        return true;
    }
    false
}

/// [`try_push`]; on a pure ACK carrying nothing else, an option that does not fit beside the
/// DATA_ACK takes its place (Linux's dedicated ADD_ADDR ACK drops the other suboptions). A DSS with a mapping
/// or a DATA_FIN never gives way.
pub(super) fn push_signal(
    repr: &mut TcpRepr,
    opt: MptcpOption,
    pure_ack: bool,
    limit: usize,
) -> bool {
    if try_push(repr, opt.clone(), limit) {
        return true;
    }
    // Only an option that cannot fit beside the DATA_ACK alone takes its place; others wait
    // for the next pure ACK.
    if !pure_ack || repr.options.mptcp.len() != 1 {
        return false;
    }
    let ack_only = repr
        .options
        .mptcp
        .iter()
        .position(|o| matches!(o, MptcpOption::Dss(d) if d.mapping.is_none() && !d.data_fin));
    let Some(pos) = ack_only else {
        return false;
    };
    let dss = repr.options.mptcp.remove(pos);
    if try_push(repr, opt, limit) {
        return true;
    }
    repr.options.mptcp.insert(pos, dss);
    false
}

impl MptcpConnection {
    /// The subflow signals go on: the lowest usable, open one (not closing).
    pub(super) fn signal_subflow(&self, avoid_local: &[u8]) -> Option<SubflowId> {
        let ok = |s: &super::Subflow| {
            s.usable()
                && !s.pm_closing
                && s.tcb.state().is_synchronized()
                && s.tcb.state() != TcpState::TimeWait
        };
        self.subflows
            .iter()
            .position(|s| ok(s) && !avoid_local.contains(&s.local_id))
            .or_else(|| self.subflows.iter().position(ok))
    }

    /// Asks a subflow for a pure ACK to carry the pending signals.
    pub(super) fn kick_signals(&mut self) {
        let avoid = self.addr.remove_tx.clone();
        if let Some(id) = self.signal_subflow(&avoid) {
            if let Some(s) = self.subflows.get_mut(id) {
                s.tcb.request_ack();
            }
        }
    }

    //= rfc8684#3.4.1
    //= ADD_ADDR announces an address (id, IP, optional port) with a truncated HMAC; it is
    //  retransmitted until the peer echoes it.
    /// Announces a local address to the peer (ADD_ADDR), retransmitted every
    /// [`MptcpConfig::add_addr_timeout`](super::MptcpConfig::add_addr_timeout) until echoed,
    /// at most `add_addr_retrans_max` times. Announcing an id again sends it again.
    pub fn announce_addr(
        &mut self,
        now: Instant,
        id: u8,
        addr: IpAddr,
        port: Option<u16>,
    ) -> Result<(), AddrError> {
        if !self.is_mptcp() {
            return Err(AddrError::NotMptcp);
        }
        // The largest form (IPv6, port, HMAC: 30 bytes) fits beside the timestamps (10) on
        // a pure ACK without the DATA_ACK, so every announcement can go out.
        let deadline = Some(now + self.cfg.add_addr_timeout);
        let a = Announce {
            id,
            addr,
            port,
            deadline,
            retrans: 0,
            echoed: false,
            pending: true,
        };
        match self.addr.announced.iter_mut().find(|x| x.id == id) {
            Some(x) => *x = a,
            None => self.addr.announced.push(a),
        }
        self.kick_signals();
        Ok(())
    }

    //= rfc8684#3.4.2
    //= REMOVE_ADDR withdraws address ids; the receiver closes its subflows on them.
    /// Sends REMOVE_ADDR for our address ids and stops announcing them. Our subflows on
    /// these addresses stay open unless closed with [`MptcpConnection::close_subflow`].
    pub fn remove_addr(&mut self, ids: &[u8]) -> Result<(), AddrError> {
        if !self.is_mptcp() {
            return Err(AddrError::NotMptcp);
        }
        self.addr.announced.retain(|a| !ids.contains(&a.id));
        for id in ids {
            if !self.addr.remove_tx.contains(id) {
                self.addr.remove_tx.push(*id);
            }
        }
        self.kick_signals();
        Ok(())
    }

    //= rfc8684#3.3.8
    //= MP_PRIO on a subflow changes its backup state: a backup subflow carries data only
    //  when no other subflow can.
    /// Marks a subflow as backup (or not) and tells the peer with MP_PRIO on it.
    pub fn set_backup(&mut self, subflow: SubflowId, backup: bool) -> Result<(), AddrError> {
        if !self.is_mptcp() {
            return Err(AddrError::NotMptcp);
        }
        let s = self
            .subflows
            .get_mut(subflow)
            .filter(|s| !s.dead && !s.pm_closing && s.tcb.state() != TcpState::Closed)
            .ok_or(AddrError::UnknownSubflow)?;
        s.backup = backup;
        s.prio_tx = Some(backup);
        s.tcb.request_ack();
        Ok(())
    }

    /// Resets a subflow on the path manager's request (counted as `RmSubflow`); its data
    /// not yet DATA_ACKed is reinjected on the others.
    pub fn close_subflow(&mut self, subflow: SubflowId) -> Result<(), AddrError> {
        let s = self
            .subflows
            .get_mut(subflow)
            .filter(|s| !s.dead && !s.pm_closing && s.tcb.state() != TcpState::Closed)
            .ok_or(AddrError::UnknownSubflow)?;
        s.pm_closing = true;
        if !self.fallback {
            s.rst_reason = Some(rst_reason::UNSPECIFIED);
        }
        s.tcb.abort();
        self.counters.RmSubflow += 1;
        Ok(())
    }

    /// Addresses the peer announced (and did not remove).
    pub fn peer_addrs(&self) -> Vec<PeerAddr> {
        self.addr.peer.clone()
    }

    /// Our announcements not withdrawn.
    pub fn announced_addrs(&self) -> Vec<AnnouncedAddr> {
        self.addr
            .announced
            .iter()
            .map(|a| AnnouncedAddr {
                id: a.id,
                addr: a.addr,
                port: a.port,
                echoed: a.echoed,
                retransmissions: a.retrans,
            })
            .collect()
    }

    /// The next path-manager event (at most 256 are kept).
    pub fn poll_pm_event(&mut self) -> Option<ConnPmEvent> {
        self.pm_sync();
        self.addr.events.pop_front()
    }

    /// Derives subflow and connection events from the state (each reported once).
    pub(super) fn pm_sync(&mut self) {
        let mptcp = self.is_mptcp();
        if !self.addr.established_reported
            && mptcp
            && self
                .subflows
                .first()
                .is_some_and(|s| s.tcb.state().is_synchronized())
        {
            self.addr.established_reported = true;
            self.addr.push_event(ConnPmEvent::Established);
        }
        let mut evs = Vec::new();
        for (id, s) in self.subflows.iter_mut().enumerate() {
            let closed = s.dead || s.tcb.state() == TcpState::Closed;
            if id > 0 && !s.pm_established && !closed && s.usable() {
                s.pm_established = true;
                evs.push(ConnPmEvent::SubflowEstablished { subflow: id });
            }
            if closed && !s.pm_closed && (id > 0 || self.addr.established_reported) {
                s.pm_closed = true;
                let error = if s.pm_closing {
                    None
                } else {
                    match s.tcb.error() {
                        // MP_FASTCLOSE is a reset by the peer too (the kernel's SUB_CLOSED
                        // does not tell them apart).
                        Some(ConnectionError::Reset | ConnectionError::FastClosed) => {
                            Some(SubflowError::Reset(None))
                        }
                        Some(ConnectionError::Refused) => Some(SubflowError::Refused),
                        Some(ConnectionError::TimedOut) => Some(SubflowError::Timeout),
                        // Our own aborts (the data level reset it), orderly closes.
                        _ => None,
                    }
                };
                evs.push(ConnPmEvent::SubflowClosed { subflow: id, error });
            }
        }
        for e in evs {
            self.addr.push_event(e);
        }
        // A fallback ends MPTCP: the manager stops as if the connection had closed.
        if !self.addr.closed_reported
            && self.addr.established_reported
            && (self.is_closed() || self.fallback)
        {
            self.addr.closed_reported = true;
            self.addr.push_event(ConnPmEvent::Closed);
        }
    }

    /// The ADD_ADDR retransmission deadline.
    pub(super) fn addr_timeout(&self) -> Option<Instant> {
        if !self.is_mptcp() {
            return None;
        }
        self.addr.announced.iter().filter_map(|a| a.deadline).min()
    }

    /// Retransmits ADD_ADDRs whose timer passed.
    pub(super) fn addr_handle_timeout(&mut self, now: Instant) {
        let timeout = self.cfg.add_addr_timeout;
        let max = self.cfg.add_addr_retrans_max;
        let mut kick = false;
        for a in &mut self.addr.announced {
            if a.deadline.is_some_and(|d| d <= now) {
                if a.retrans < max && !self.fallback {
                    a.retrans += 1;
                    a.pending = true;
                    a.deadline = Some(now + timeout);
                    kick = true;
                } else {
                    a.deadline = None;
                }
            }
        }
        if kick {
            self.kick_signals();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::add_addr_hmac;
    use crate::mptcp::MptcpConfig;
    use crate::tcp::TcbParams;

    fn conn() -> MptcpConnection {
        let params = TcbParams {
            local_port: 1000,
            remote_port: 80,
            iss: 1,
            ts_offset: 0,
            mss: 1460,
            default_mss: 536,
        };
        MptcpConnection::connect(&MptcpConfig::default(), params, 42)
    }

    #[test]
    fn signalling_needs_mptcp_and_an_open_subflow() {
        let mut c = conn();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            c.announce_addr(Instant::ZERO, 1, a, None),
            Err(AddrError::NotMptcp)
        );
        assert_eq!(c.remove_addr(&[1]), Err(AddrError::NotMptcp));
        assert_eq!(c.set_backup(0, true), Err(AddrError::NotMptcp));
        assert_eq!(c.close_subflow(3), Err(AddrError::UnknownSubflow));
        assert!(c.announced_addrs().is_empty());
        assert!(c.peer_addrs().is_empty());
        assert_eq!(c.addr_timeout(), None);
        // Nothing to report before the handshake.
        assert_eq!(c.poll_pm_event(), None);
    }

    fn ack_with(opts: Vec<MptcpOption>) -> TcpRepr {
        use crate::wire::tcp::{TcpFlags, TcpOptions};
        let options = TcpOptions {
            mptcp: opts.into(),
            ..TcpOptions::default()
        };
        TcpRepr {
            src_port: 80,
            dst_port: 1000,
            seq: 0,
            ack: 0,
            flags: TcpFlags(TcpFlags::ACK),
            window: 0,
            urgent: 0,
            options,
        }
    }

    #[test]
    fn echoes_pending_beyond_the_cap_drop_further_add_addrs() {
        use crate::mptcp::handshake::Negotiated;
        let mut c = conn();
        let (local_key, remote_key) = (42, 77);
        c.neg = Some(Negotiated {
            local_key,
            remote_key,
            checksum: false,
            local_token: 0,
            remote_token: 0,
            local_idsn: 0,
            remote_idsn: 0,
        });
        // The subflow is not synchronized: nothing can be sent, the echoes pile up.
        for id in 0..20u8 {
            let addr = IpAddr::from([10, 9, 0, id]);
            let opt = MptcpOption::AddAddr {
                echo: false,
                addr_id: id,
                addr,
                port: None,
                hmac: Some(add_addr_hmac(remote_key, local_key, id, addr, None)),
            };
            c.addr_input(0, &ack_with(vec![opt]));
        }
        assert_eq!(c.counters.AddAddr, MAX_PENDING_ECHOES as u64);
        assert_eq!(c.counters.AddAddrDrop, 20 - MAX_PENDING_ECHOES as u64);
        assert_eq!(c.peer_addrs().len(), MAX_PENDING_ECHOES);
        // A retransmission of a queued one is not a new echo.
        let addr = IpAddr::from([10, 9, 0, 3]);
        let again = MptcpOption::AddAddr {
            echo: false,
            addr_id: 3,
            addr,
            port: None,
            hmac: Some(add_addr_hmac(remote_key, local_key, 3, addr, None)),
        };
        c.addr_input(0, &ack_with(vec![again]));
        assert_eq!(c.counters.AddAddr, MAX_PENDING_ECHOES as u64 + 1);
        assert_eq!(c.addr.echo_tx.len(), MAX_PENDING_ECHOES);
        // The HMAC is keyed sender-first: our own key first is a forgery.
        let forged = MptcpOption::AddAddr {
            echo: false,
            addr_id: 40,
            addr,
            port: None,
            hmac: Some(add_addr_hmac(local_key, remote_key, 40, addr, None)),
        };
        c.addr_input(0, &ack_with(vec![forged]));
        assert_eq!(c.counters.AddAddrDrop, 20 - MAX_PENDING_ECHOES as u64 + 1);
        // REMOVE_ADDR forgets addresses and their pending echoes, duplicates counted once.
        c.addr_input(
            0,
            &ack_with(vec![MptcpOption::RemoveAddr {
                addr_ids: vec![1, 1, 2],
            }]),
        );
        assert_eq!(c.counters.RmAddr, 2);
        assert_eq!(c.peer_addrs().len(), MAX_PENDING_ECHOES - 2);
        assert_eq!(c.addr.echo_tx.len(), MAX_PENDING_ECHOES - 2);
        let mut evs = Vec::new();
        while let Some(e) = c.poll_pm_event() {
            evs.push(e);
        }
        assert_eq!(evs.len(), MAX_PENDING_ECHOES + 1);
        assert_eq!(
            evs.last(),
            Some(&ConnPmEvent::RemoveAddr { ids: vec![1, 2] })
        );
    }

    #[test]
    fn the_largest_add_addr_fits_a_pure_ack_with_timestamps() {
        use crate::wire::mptcp::Dss;
        use crate::wire::tcp::{TcpFlags, TcpOptions, Timestamps};
        let mut repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 0,
            ack: 0,
            flags: TcpFlags(TcpFlags::ACK),
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        repr.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
        repr.options.mptcp.push(MptcpOption::Dss(Dss {
            data_ack: Some(5),
            data_ack_64: true,
            mapping: None,
            data_fin: false,
        }));
        let big = MptcpOption::AddAddr {
            echo: false,
            addr_id: 1,
            addr: "fd00::1".parse().unwrap(),
            port: Some(8080),
            hmac: Some(7),
        };
        // Not on a data segment, in place of the DATA_ACK on a pure ACK.
        assert!(!push_signal(
            &mut repr.clone(),
            big.clone(),
            false,
            MAX_OPTION_SPACE
        ));
        assert!(push_signal(&mut repr, big.clone(), true, MAX_OPTION_SPACE));
        assert_eq!(repr.options.mptcp.to_vec(), vec![big]);
        assert!(repr.options.padded_len() <= MAX_OPTION_SPACE);
        // A second one waits for the next ACK.
        let small = MptcpOption::MpPrio {
            backup: true,
            addr_id: None,
        };
        assert!(!push_signal(&mut repr, small, true, MAX_OPTION_SPACE));
    }
}
