//! Path management: which subflows exist, which addresses are announced, which are accepted.
//!
//! The model is the Linux kernel's, as plain data and logic:
//! - [`PmEndpoint`]s (an address with `signal` / `subflow` / `backup` / `fullmesh` flags, an id,
//!   an optional port and device) and [`Limits`], kept and validated by an [`EndpointTable`]
//!   with the rules and the one-line errors of `ip mptcp endpoint` / `ip mptcp limits`;
//! - a [`PathManager`] trait, chosen per connection, driven by [`PmEvent`]s from the
//!   connection and the control plane and answering with [`PmCommand`]s for the connection to
//!   carry out. Time is an input ([`PmEvent::Timeout`] with `now`, [`PathManager::poll_timeout`]).
//! - [`KernelPm`], the kernel's in-kernel path manager, plus re-creation of failed subflows
//!   with exponential backoff;
//! - [`PolicyPm`], the `fullmesh`, `ndiffports` and `sspi` policies ([`Plan`]) as one
//!   reconciling mechanism.

use core::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::time::Instant;

mod factory;
mod kernel;
mod policy;

pub use factory::{PmBuilder, PmContext, PmFactory};
pub use kernel::{KernelPm, PmConfig};
pub use policy::{LocalAddr, Plan, PolicyPm};

/// The most endpoints an [`EndpointTable`] holds (the kernel's `MPTCP_PM_ADDR_MAX`).
pub const MAX_ENDPOINTS: usize = 8;
/// The largest value of either limit (the kernel's `MPTCP_PM_ADDR_MAX`).
pub const MAX_LIMIT: u8 = 8;

/// Endpoint flags, with the kernel's bit values (`MPTCP_PM_ADDR_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EndpointFlags(u8);

impl EndpointFlags {
    /// No flag.
    pub const NONE: EndpointFlags = EndpointFlags(0);
    /// Announce the address to the peer with ADD_ADDR.
    pub const SIGNAL: EndpointFlags = EndpointFlags(1);
    /// Open a subflow from the address.
    pub const SUBFLOW: EndpointFlags = EndpointFlags(2);
    /// Subflows from the address are backups.
    pub const BACKUP: EndpointFlags = EndpointFlags(4);
    /// Open a subflow from the address to every known peer address.
    pub const FULLMESH: EndpointFlags = EndpointFlags(8);

    /// The flags from their kernel bit values (unknown bits dropped).
    pub fn from_bits(bits: u8) -> EndpointFlags {
        EndpointFlags(bits & 0x0f)
    }

    /// The kernel bit values.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// True when every flag of `other` is set.
    pub fn contains(self, other: EndpointFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with `other`'s flags set (`on`) or cleared.
    pub fn with(self, other: EndpointFlags, on: bool) -> EndpointFlags {
        if on {
            EndpointFlags(self.0 | other.0)
        } else {
            EndpointFlags(self.0 & !other.0)
        }
    }

    /// `signal` is set.
    pub fn signal(self) -> bool {
        self.contains(EndpointFlags::SIGNAL)
    }
    /// `subflow` is set.
    pub fn subflow(self) -> bool {
        self.contains(EndpointFlags::SUBFLOW)
    }
    /// `backup` is set.
    pub fn backup(self) -> bool {
        self.contains(EndpointFlags::BACKUP)
    }
    /// `fullmesh` is set.
    pub fn fullmesh(self) -> bool {
        self.contains(EndpointFlags::FULLMESH)
    }
}

impl core::ops::BitOr for EndpointFlags {
    type Output = EndpointFlags;
    fn bitor(self, rhs: EndpointFlags) -> EndpointFlags {
        EndpointFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for EndpointFlags {
    /// The flags as `ip mptcp endpoint show` prints them: `signal subflow backup fullmesh`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (EndpointFlags::SIGNAL, "signal"),
            (EndpointFlags::SUBFLOW, "subflow"),
            (EndpointFlags::BACKUP, "backup"),
            (EndpointFlags::FULLMESH, "fullmesh"),
        ];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A path-manager endpoint: a local address and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PmEndpoint {
    /// Address id, 1..=255 (0 is the initial subflow's address).
    pub id: u8,
    /// The local address.
    pub addr: IpAddr,
    /// A port to announce with the address (needs `signal`).
    pub port: Option<u16>,
    /// The device the address lives on.
    pub dev: Option<String>,
    /// What to do with the address.
    pub flags: EndpointFlags,
}

impl fmt::Display for PmEndpoint {
    /// One line like `ip mptcp endpoint show`: `10.0.0.2 port 8080 id 3 signal dev eth1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(p) = self.port {
            write!(f, " port {p}")?;
        }
        write!(f, " id {}", self.id)?;
        if self.flags != EndpointFlags::NONE {
            write!(f, " {}", self.flags)?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// The path manager's limits (`ip mptcp limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// The most additional subflows per connection (the initial one not counted).
    pub subflows: u8,
    /// The most peer ADD_ADDRs accepted (joined) per connection.
    pub add_addr_accepted: u8,
}

impl Default for Limits {
    /// The kernel's defaults: subflows 2, add_addr_accepted 0.
    fn default() -> Self {
        Limits {
            subflows: 2,
            add_addr_accepted: 0,
        }
    }
}

impl Limits {
    /// Validated limits: each at most [`MAX_LIMIT`].
    pub fn new(subflows: u32, add_addr_accepted: u32) -> Result<Limits, PmError> {
        let check = |what: LimitKind, v: u32| -> Result<u8, PmError> {
            u8::try_from(v)
                .ok()
                .filter(|v| *v <= MAX_LIMIT)
                .ok_or(PmError::LimitTooHigh { what, value: v })
        };
        Ok(Limits {
            subflows: check(LimitKind::Subflows, subflows)?,
            add_addr_accepted: check(LimitKind::AddAddrAccepted, add_addr_accepted)?,
        })
    }
}

impl fmt::Display for Limits {
    /// Like `ip mptcp limits show`: `add_addr_accepted 0 subflows 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "add_addr_accepted {} subflows {}",
            self.add_addr_accepted, self.subflows
        )
    }
}

/// Which limit an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `subflows`.
    Subflows,
    /// `add_addr_accepted`.
    AddAddrAccepted,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Subflows => "subflows",
            LimitKind::AddAddrAccepted => "add_addr_accepted",
        })
    }
}

/// Why an endpoint or limits change was refused. One line each, like the kernel's extack
/// messages that `ip mptcp` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PmError {
    /// A limit above [`MAX_LIMIT`].
    #[error("{what} limit {value} greater than maximum {max}", max = MAX_LIMIT)]
    LimitTooHigh {
        /// The limit.
        what: LimitKind,
        /// The refused value.
        value: u32,
    },
    /// A port without the `signal` flag.
    #[error("flags must have signal when using port")]
    PortWithoutSignal,
    /// `signal` and `fullmesh` together.
    #[error("flags mustn't have both signal and fullmesh")]
    SignalAndFullmesh,
    /// Id 0 or above 255.
    #[error("invalid endpoint id {0}: must be 1..=255")]
    InvalidId(u32),
    /// The id is taken.
    #[error("endpoint id {0} already in use")]
    DuplicateId(u8),
    /// The address (and port) is already an endpoint.
    #[error("address {0} already in use")]
    DuplicateAddress(IpAddr),
    /// The table is full.
    #[error("too many endpoints: at most {max}", max = MAX_ENDPOINTS)]
    TooManyEndpoints,
    /// No endpoint has the id.
    #[error("endpoint id {0} not found")]
    UnknownId(u8),
    /// No free id is left.
    #[error("no free endpoint id")]
    NoFreeId,
    /// An unspecified, multicast or otherwise unusable address.
    #[error("invalid address {0}")]
    InvalidAddress(IpAddr),
}

/// What `endpoint change` may alter (as in `ip mptcp endpoint change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    /// Set `backup`.
    Backup,
    /// Clear `backup`.
    NoBackup,
    /// Set `fullmesh`.
    Fullmesh,
    /// Clear `fullmesh`.
    NoFullmesh,
}

/// The endpoints and limits of one braid instance (the kernel's per-namespace table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointTable {
    endpoints: Vec<PmEndpoint>,
    limits: Limits,
}

/// Checks the flag rules of one endpoint.
pub fn validate_flags(flags: EndpointFlags, port: Option<u16>) -> Result<(), PmError> {
    if flags.signal() && flags.fullmesh() {
        return Err(PmError::SignalAndFullmesh);
    }
    if port.is_some() && !flags.signal() {
        return Err(PmError::PortWithoutSignal);
    }
    Ok(())
}

impl EndpointTable {
    /// An empty table with the default limits.
    pub fn new() -> EndpointTable {
        EndpointTable::default()
    }

    /// The endpoints, in id order.
    pub fn endpoints(&self) -> &[PmEndpoint] {
        &self.endpoints
    }

    /// The endpoint with id `id`.
    pub fn get(&self, id: u8) -> Option<&PmEndpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `limits set`: replaces the limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// `endpoint add`: validates and adds an endpoint; `id: None` takes the lowest free id.
    /// Returns the stored endpoint.
    pub fn add(
        &mut self,
        addr: IpAddr,
        id: Option<u32>,
        port: Option<u16>,
        dev: Option<String>,
        flags: EndpointFlags,
    ) -> Result<PmEndpoint, PmError> {
        validate_flags(flags, port)?;
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(PmError::InvalidAddress(addr));
        }
        let id = match id {
            Some(raw) => {
                let id = u8::try_from(raw)
                    .ok()
                    .filter(|i| *i != 0)
                    .ok_or(PmError::InvalidId(raw))?;
                if self.get(id).is_some() {
                    return Err(PmError::DuplicateId(id));
                }
                id
            }
            None => (1..=u8::MAX)
                .find(|i| self.get(*i).is_none())
                .ok_or(PmError::NoFreeId)?,
        };
        if self
            .endpoints
            .iter()
            .any(|e| e.addr == addr && e.port == port)
        {
            return Err(PmError::DuplicateAddress(addr));
        }
        if self.endpoints.len() >= MAX_ENDPOINTS {
            return Err(PmError::TooManyEndpoints);
        }
        let ep = PmEndpoint {
            id,
            addr,
            port,
            dev,
            flags,
        };
        self.endpoints.push(ep.clone());
        self.endpoints.sort_by_key(|e| e.id);
        Ok(ep)
    }

    /// `endpoint delete id N`: removes and returns the endpoint.
    pub fn delete(&mut self, id: u8) -> Result<PmEndpoint, PmError> {
        let pos = self
            .endpoints
            .iter()
            .position(|e| e.id == id)
            .ok_or(PmError::UnknownId(id))?;
        Ok(self.endpoints.remove(pos))
    }

    /// `endpoint change id N backup|nobackup|fullmesh|nofullmesh`: returns the changed
    /// endpoint. Setting `fullmesh` on a `signal` endpoint is refused.
    pub fn change(&mut self, id: u8, change: FlagChange) -> Result<PmEndpoint, PmError> {
        let ep = self
            .endpoints
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(PmError::UnknownId(id))?;
        let flags = match change {
            FlagChange::Backup => ep.flags.with(EndpointFlags::BACKUP, true),
            FlagChange::NoBackup => ep.flags.with(EndpointFlags::BACKUP, false),
            FlagChange::Fullmesh => ep.flags.with(EndpointFlags::FULLMESH, true),
            FlagChange::NoFullmesh => ep.flags.with(EndpointFlags::FULLMESH, false),
        };
        validate_flags(flags, ep.port)?;
        ep.flags = flags;
        Ok(ep.clone())
    }

    /// `endpoint flush`: removes every endpoint and returns them.
    pub fn flush(&mut self) -> Vec<PmEndpoint> {
        core::mem::take(&mut self.endpoints)
    }
}

/// A subflow as events describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubflowAddrs {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
}

/// Why a subflow closed with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubflowError {
    /// The join or the subflow timed out (no answer, RTO limit).
    Timeout,
    /// The peer reset it (the MP_TCPRST reason, if any).
    Reset(Option<u8>),
    /// It was refused (RST to the SYN, bad HMAC, ...).
    Refused,
}

/// Inputs of a [`PathManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PmEvent {
    /// The connection is established (MP_CAPABLE done) on its initial subflow.
    ConnectionEstablished {
        /// The initial subflow's local address.
        local: SocketAddr,
        /// The initial subflow's remote address.
        remote: SocketAddr,
        /// The peer set C on its MP_CAPABLE (RFC 8684 §3.1): open no subflow towards
        /// `remote` (Linux's `remote_deny_join_id0`).
        remote_denies_join: bool,
    },
    /// The peer announced an address (HMAC already verified).
    AddAddrReceived {
        /// The peer's address id.
        id: u8,
        /// The address.
        addr: IpAddr,
        /// Its port, if announced.
        port: Option<u16>,
    },
    /// The peer echoed one of our ADD_ADDRs.
    AddAddrEchoed {
        /// Our address id.
        id: u8,
    },
    /// The peer removed addresses.
    RemoveAddrReceived {
        /// The peer's address ids.
        ids: Vec<u8>,
    },
    /// The peer asks to join (a valid MP_JOIN SYN): the manager answers with
    /// [`PmCommand::AcceptJoin`] or [`PmCommand::RefuseJoin`].
    JoinRequested {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
        /// The peer's address id.
        remote_id: u8,
        /// The peer asked for a backup subflow.
        backup: bool,
    },
    /// A subflow finished its handshake.
    SubflowEstablished {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
    },
    /// A subflow closed; `error` is `None` for an orderly close or one we asked for.
    SubflowClosed {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
        /// Why, when it failed.
        error: Option<SubflowError>,
    },
    /// An endpoint was added to the table.
    EndpointAdded(PmEndpoint),
    /// An endpoint was deleted from the table.
    EndpointRemoved(PmEndpoint),
    /// An endpoint's flags changed (the new endpoint).
    EndpointChanged(PmEndpoint),
    /// The limits changed.
    LimitsChanged(Limits),
    /// The peer changed a subflow's backup state with MP_PRIO (the kernel's SUB_PRIORITY).
    SubflowPriority {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
        /// The peer's new backup request.
        backup: bool,
    },
    /// The connection closed: the manager stops its timers and opens nothing more.
    ConnectionClosed,
    /// A deadline from [`PathManager::poll_timeout`] passed.
    Timeout,
}

/// Outputs of a [`PathManager`], for the connection to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PmCommand {
    /// Send ADD_ADDR for a local address.
    Announce {
        /// Our address id.
        id: u8,
        /// The address.
        addr: IpAddr,
        /// The port, if any.
        port: Option<u16>,
    },
    /// Send REMOVE_ADDR for these local address ids.
    RemoveAddr {
        /// Our address ids.
        ids: Vec<u8>,
    },
    /// Open a subflow with MP_JOIN (the connection picks the local port).
    CreateSubflow {
        /// Local address.
        local: IpAddr,
        /// Our address id for it.
        local_id: u8,
        /// Remote address and port.
        remote: SocketAddr,
        /// The peer's address id.
        remote_id: u8,
        /// Ask for a backup subflow.
        backup: bool,
    },
    /// Close the subflow(s) from `local` to `remote`.
    DestroySubflow {
        /// Local address.
        local: IpAddr,
        /// Remote address and port.
        remote: SocketAddr,
    },
    /// Change a subflow's backup state (send MP_PRIO).
    SetBackup {
        /// Local address.
        local: IpAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// The new state.
        backup: bool,
    },
    /// Echo the ADD_ADDR; the address is accepted and may get subflows.
    AcceptAddAddr {
        /// The peer's address id.
        id: u8,
        /// The address.
        addr: IpAddr,
        /// Its port, if any.
        port: Option<u16>,
    },
    /// Echo the ADD_ADDR (as the kernel does) but open nothing towards it.
    RefuseAddAddr {
        /// The peer's address id.
        id: u8,
        /// The address.
        addr: IpAddr,
        /// Its port, if any.
        port: Option<u16>,
    },
    /// Accept the pending MP_JOIN.
    AcceptJoin {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
    },
    /// Refuse the pending MP_JOIN (limit reached).
    RefuseJoin {
        /// The subflow's addresses.
        addrs: SubflowAddrs,
    },
}

/// A path manager, chosen per connection. Object safe.
pub trait PathManager: fmt::Debug + Send {
    /// The manager's name (`kernel`, ...).
    fn name(&self) -> &'static str;

    /// Handles one event at time `now`, appending commands to `out` (which the caller
    /// clears). Bounded work: proportional to the endpoints, addresses and subflows known.
    fn handle(&mut self, now: Instant, event: &PmEvent, out: &mut Vec<PmCommand>);

    /// The next deadline; the connection sends [`PmEvent::Timeout`] once it passes.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Number of leading bits `a` and `b` share; `None` across families.
pub fn common_prefix_len(a: IpAddr, b: IpAddr) -> Option<u32> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Some((u32::from(a) ^ u32::from(b)).leading_zeros()),
        (IpAddr::V6(a), IpAddr::V6(b)) => Some((u128::from(a) ^ u128::from(b)).leading_zeros()),
        _ => None,
    }
}

/// The address of `candidates` in `target`'s family sharing the longest prefix with it (ties:
/// the first one), as braid picks the source of a subflow towards an announced address.
pub fn longest_prefix_match(candidates: &[IpAddr], target: IpAddr) -> Option<IpAddr> {
    let mut best: Option<(u32, IpAddr)> = None;
    for c in candidates {
        if let Some(len) = common_prefix_len(*c, target) {
            if best.is_none_or(|(l, _)| len > l) {
                best = Some((len, *c));
            }
        }
    }
    best.map(|(_, a)| a)
}
