//! Path-manager policies beyond the kernel's: `fullmesh`, `ndiffports` and `sspi`, as one
//! mechanism.
//!
//! Each policy only says which subflows *should* exist (a [`Plan`]); [`PolicyPm`] keeps the
//! subflows that do exist and reconciles the two on every event: it opens what is missing
//! (within the `subflows` limit), closes subflows whose addresses went away, accepts or
//! refuses the peer's announcements and joins, and re-creates a subflow that failed, with
//! exponential backoff, while both its addresses are still valid (what the kernel lacks). A
//! subflow closed in order is not opened again (a peer that closes one is not fought); its
//! slot goes to the next wanted subflow.
//!
//! - **fullmesh**: one subflow from every local address to every known peer address of the
//!   same family (the peer's initial address and every accepted ADD_ADDR).
//! - **ndiffports N**: N subflows in all (the initial one included) over the initial address
//!   pair, each from its own source port: several paths through ECMP routing over a single
//!   pair of addresses. Announcements are echoed and not used.
//! - **sspi** (single subflow per interface, as mptcpd's plugin): one subflow per local
//!   interface, from its first address towards the peer's initial address (or, for another
//!   family, the first accepted peer address of that family); an interface that already
//!   carries a subflow gets no other.
//!
//! Only the side that opened the connection creates subflows (`active`); both sides accept
//! joins within the `subflows` limit and announcements within `add_addr_accepted`.

use std::net::{IpAddr, SocketAddr};

use super::{Limits, PathManager, PmCommand, PmConfig, PmEndpoint, PmEvent, SubflowAddrs};
use crate::time::{Duration, Instant};

impl PmConfig {
    /// The wait before re-creating a subflow after its `failures`-th failure in a row:
    /// `retry_base`, doubling per failure, at most `retry_max`.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        self.retry_base
            .saturating_mul(1u32 << shift)
            .min(self.retry_max)
    }
}

/// A local address a policy may open subflows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its address id (1..=255; the initial subflow's address has 0 on the wire).
    pub id: u8,
    /// The interface it lives on (`sspi` groups by it); `None` counts as an interface of its
    /// own.
    pub dev: Option<String>,
    /// Subflows from it ask to be backups.
    pub backup: bool,
}

impl LocalAddr {
    /// The local address of an endpoint.
    pub fn from_endpoint(ep: &PmEndpoint) -> LocalAddr {
        LocalAddr {
            addr: ep.addr,
            id: ep.id,
            dev: ep.dev.clone(),
            backup: ep.flags.backup(),
        }
    }
}

/// Which subflows a policy wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every local address to every peer address of its family.
    Fullmesh,
    /// This many subflows in all over the initial address pair.
    NDiffPorts(u8),
    /// One subflow per local interface.
    Sspi,
}

impl Plan {
    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            Plan::Fullmesh => "fullmesh",
            Plan::NDiffPorts(_) => "ndiffports",
            Plan::Sspi => "sspi",
        }
    }

    /// Whether the policy uses the peer's announced addresses.
    fn uses_announcements(self) -> bool {
        !matches!(self, Plan::NDiffPorts(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Established,
    /// Failed; re-created at `at`.
    Retry {
        at: Instant,
    },
    /// Closed in order (by the peer or on our command): not opened again, so a peer that
    /// closes a subflow is not fought; holds no slot.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    local: IpAddr,
    local_id: u8,
    remote: SocketAddr,
    remote_id: u8,
    backup: bool,
    initial: bool,
    by_peer: bool,
    state: State,
    failures: u32,
}

impl Path {
    fn holds_slot(&self) -> bool {
        !self.initial && matches!(self.state, State::Connecting | State::Established)
    }

    fn live(&self) -> bool {
        matches!(self.state, State::Connecting | State::Established)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remote {
    id: u8,
    addr: SocketAddr,
    /// Counted against `add_addr_accepted` (every address but the initial one).
    announced: bool,
}

/// One wanted subflow: from `local` to `remote`, `copies` of them.
struct Want {
    local: LocalAddr,
    remote: Remote,
    copies: u8,
}

/// A [`Plan`] carried out for one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct PolicyPm {
    plan: Plan,
    cfg: PmConfig,
    limits: Limits,
    locals: Vec<LocalAddr>,
    active: bool,
    conn: Option<SubflowAddrs>,
    remotes: Vec<Remote>,
    paths: Vec<Path>,
    closed: bool,
    /// The peer set C in MP_CAPABLE: no subflows towards its initial address.
    remote_denies_join: bool,
}

impl PolicyPm {
    /// A policy for one connection: `locals` are the addresses subflows may leave from,
    /// `active` is true on the side that opened the connection (the one that creates
    /// subflows).
    pub fn new(plan: Plan, limits: Limits, locals: Vec<LocalAddr>, active: bool) -> PolicyPm {
        PolicyPm::with_config(PmConfig::default(), plan, limits, locals, active)
    }

    /// [`PolicyPm::new`] with explicit retry timers (`PmConfig::retry*`).
    pub fn with_config(
        cfg: PmConfig,
        plan: Plan,
        limits: Limits,
        locals: Vec<LocalAddr>,
        active: bool,
    ) -> PolicyPm {
        PolicyPm {
            plan,
            cfg,
            limits,
            locals,
            active,
            conn: None,
            remotes: Vec::new(),
            paths: Vec::new(),
            closed: false,
            remote_denies_join: false,
        }
    }

    /// The plan.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Additional subflows opening or open (what the `subflows` limit counts).
    pub fn subflows(&self) -> usize {
        self.paths.iter().filter(|p| p.holds_slot()).count()
    }

    /// Subflows waiting to be re-created.
    pub fn pending_retries(&self) -> usize {
        self.paths
            .iter()
            .filter(|p| matches!(p.state, State::Retry { .. }))
            .count()
    }

    fn accepted(&self) -> usize {
        self.remotes.iter().filter(|r| r.announced).count()
    }

    fn has_slot(&self) -> bool {
        self.subflows() < usize::from(self.limits.subflows)
    }

    /// The initial subflow's local address, as a [`LocalAddr`] (id 0, its endpoint's device
    /// and backup flag if it has one).
    fn initial_local(&self) -> Option<LocalAddr> {
        let conn = self.conn?;
        let ip = conn.local.ip();
        Some(
            self.locals
                .iter()
                .find(|l| l.addr == ip)
                .map(|l| LocalAddr { id: 0, ..l.clone() })
                .unwrap_or(LocalAddr {
                    addr: ip,
                    id: 0,
                    dev: None,
                    backup: false,
                }),
        )
    }

    /// Every local address, the initial one first (with id 0).
    fn all_locals(&self) -> Vec<LocalAddr> {
        let mut v: Vec<LocalAddr> = self.initial_local().into_iter().collect();
        for l in &self.locals {
            if v.iter().all(|x| x.addr != l.addr) {
                v.push(l.clone());
            }
        }
        v
    }

    fn wanted(&self) -> Vec<Want> {
        let Some(conn) = self.conn else {
            return Vec::new();
        };
        let mut v = self.wanted_by_plan(conn);
        //= rfc8684#3.1
        //= A peer that set C on its MP_CAPABLE gets no subflows towards its initial address.
        if self.remote_denies_join {
            v.retain(|w| w.remote.addr != conn.remote);
        }
        v
    }

    fn wanted_by_plan(&self, conn: SubflowAddrs) -> Vec<Want> {
        let locals = self.all_locals();
        let same_family = |l: &LocalAddr, r: &Remote| l.addr.is_ipv4() == r.addr.is_ipv4();
        match self.plan {
            Plan::Fullmesh => locals
                .iter()
                .flat_map(|l| {
                    self.remotes
                        .iter()
                        .filter(move |r| same_family(l, r))
                        .map(move |r| Want {
                            local: l.clone(),
                            remote: *r,
                            copies: 1,
                        })
                })
                .collect(),
            Plan::NDiffPorts(n) => match (locals.first(), self.remotes.first()) {
                (Some(l), Some(r)) if r.addr == conn.remote => vec![Want {
                    local: l.clone(),
                    remote: *r,
                    copies: n.max(1),
                }],
                _ => Vec::new(),
            },
            Plan::Sspi => {
                let mut seen: Vec<Option<&str>> = Vec::new();
                let mut v = Vec::new();
                for l in &locals {
                    let dev = l.dev.as_deref();
                    if dev.is_some() && seen.contains(&dev) {
                        continue;
                    }
                    seen.push(dev);
                    if let Some(r) = self.remotes.iter().find(|r| same_family(l, r)) {
                        v.push(Want {
                            local: l.clone(),
                            remote: *r,
                            copies: 1,
                        });
                    }
                }
                v
            }
        }
    }

    /// Subflows that satisfy `w` (for `sspi`: any subflow from the same interface).
    fn have(&self, w: &Want) -> usize {
        match self.plan {
            Plan::Sspi => {
                let on_dev = |ip: IpAddr| match &w.local.dev {
                    Some(d) => self
                        .all_locals()
                        .iter()
                        .any(|l| l.addr == ip && l.dev.as_deref() == Some(d.as_str())),
                    None => ip == w.local.addr,
                };
                usize::from(self.paths.iter().any(|p| on_dev(p.local)))
            }
            _ => self
                .paths
                .iter()
                .filter(|p| p.local == w.local.addr && p.remote == w.remote.addr)
                .count(),
        }
    }

    /// Opens what the plan wants and does not exist, within the limit.
    fn reconcile(&mut self, out: &mut Vec<PmCommand>) {
        if !self.active || self.closed || self.conn.is_none() {
            return;
        }
        for w in self.wanted() {
            let mut have = self.have(&w);
            while have < usize::from(w.copies) && self.has_slot() {
                self.open(&w.local, &w.remote, out);
                have += 1;
            }
        }
    }

    fn open(&mut self, local: &LocalAddr, remote: &Remote, out: &mut Vec<PmCommand>) {
        out.push(PmCommand::CreateSubflow {
            local: local.addr,
            local_id: local.id,
            remote: remote.addr,
            remote_id: remote.id,
            backup: local.backup,
        });
        self.paths.push(Path {
            local: local.addr,
            local_id: local.id,
            remote: remote.addr,
            remote_id: remote.id,
            backup: local.backup,
            initial: false,
            by_peer: false,
            state: State::Connecting,
            failures: 0,
        });
    }

    /// Both addresses of a path are still known.
    fn still_valid(&self, local: IpAddr, remote: SocketAddr) -> bool {
        let local_ok = self.all_locals().iter().any(|l| l.addr == local);
        let remote_ok = self.remotes.iter().any(|r| r.addr == remote);
        let denied = self.remote_denies_join && self.conn.is_some_and(|c| c.remote == remote);
        local_ok && remote_ok && !denied
    }

    fn backoff(&self, failures: u32) -> Duration {
        self.cfg.retry_delay(failures)
    }

    /// The position of a live path for `addrs`, the oldest first.
    fn find_live(&self, addrs: &SubflowAddrs, state: Option<State>) -> Option<usize> {
        self.paths.iter().position(|p| {
            p.local == addrs.local.ip()
                && p.remote == addrs.remote
                && p.live()
                && state.is_none_or(|s| s == p.state)
        })
    }

    /// Closes (and forgets) every path matching `pred`.
    fn destroy(&mut self, pred: impl Fn(&Path) -> bool, out: &mut Vec<PmCommand>) {
        let mut keep = Vec::with_capacity(self.paths.len());
        for p in self.paths.drain(..) {
            if !pred(&p) {
                keep.push(p);
                continue;
            }
            if p.live()
                && !out.iter().any(|c| {
                    matches!(c, PmCommand::DestroySubflow { local, remote }
                        if *local == p.local && *remote == p.remote)
                })
            {
                out.push(PmCommand::DestroySubflow {
                    local: p.local,
                    remote: p.remote,
                });
            }
        }
        self.paths = keep;
    }

    fn add_addr(&mut self, id: u8, addr: IpAddr, port: Option<u16>, out: &mut Vec<PmCommand>) {
        let Some(conn) = self.conn else {
            return;
        };
        let sa = SocketAddr::new(addr, port.unwrap_or(conn.remote.port()));
        let known = self.remotes.iter().any(|r| r.id == id || r.addr == sa);
        //= rfc8684#3.4.1
        //= An ADD_ADDR is echoed whether or not the address is used; a host may ignore it.
        if self.plan.uses_announcements()
            && !known
            && self.accepted() < usize::from(self.limits.add_addr_accepted)
        {
            self.remotes.push(Remote {
                id,
                addr: sa,
                announced: true,
            });
            out.push(PmCommand::AcceptAddAddr { id, addr, port });
            self.reconcile(out);
        } else {
            out.push(PmCommand::RefuseAddAddr { id, addr, port });
        }
    }

    fn subflow_closed(&mut self, now: Instant, addrs: &SubflowAddrs, failed: bool) {
        let pos = self
            .find_live(addrs, Some(State::Connecting))
            .filter(|_| failed)
            .or_else(|| self.find_live(addrs, None));
        let Some(pos) = pos else {
            return;
        };
        let p = self.paths.remove(pos);
        if !failed {
            if !p.by_peer {
                self.paths.push(Path {
                    initial: false,
                    state: State::Done,
                    ..p
                });
            }
        } else if self.cfg.retry && !p.by_peer && self.still_valid(p.local, p.remote) {
            let failures = p.failures.saturating_add(1);
            let at = now + self.backoff(failures);
            self.paths.push(Path {
                failures,
                initial: false,
                state: State::Retry { at },
                ..p
            });
        }
    }

    fn timeout(&mut self, now: Instant, out: &mut Vec<PmCommand>) {
        let due: Vec<usize> = self
            .paths
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.state, State::Retry { at } if at <= now))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            let Some(p) = self.paths.get(i).cloned() else {
                continue;
            };
            if !self.still_valid(p.local, p.remote) {
                // Marked for removal below.
                if let Some(q) = self.paths.get_mut(i) {
                    q.failures = u32::MAX;
                }
                continue;
            }
            if !self.has_slot() {
                let at = now + self.backoff(p.failures);
                if let Some(q) = self.paths.get_mut(i) {
                    q.state = State::Retry { at };
                }
                continue;
            }
            out.push(PmCommand::CreateSubflow {
                local: p.local,
                local_id: p.local_id,
                remote: p.remote,
                remote_id: p.remote_id,
                backup: p.backup,
            });
            if let Some(q) = self.paths.get_mut(i) {
                q.state = State::Connecting;
            }
        }
        self.paths.retain(|p| p.failures != u32::MAX);
    }
}

impl PathManager for PolicyPm {
    fn name(&self) -> &'static str {
        self.plan.name()
    }

    fn handle(&mut self, now: Instant, event: &PmEvent, out: &mut Vec<PmCommand>) {
        if self.closed {
            return;
        }
        match event {
            PmEvent::ConnectionEstablished {
                local,
                remote,
                remote_denies_join,
            } => {
                if self.conn.is_some() {
                    return;
                }
                self.remote_denies_join = *remote_denies_join;
                self.conn = Some(SubflowAddrs {
                    local: *local,
                    remote: *remote,
                });
                self.remotes.push(Remote {
                    id: 0,
                    addr: *remote,
                    announced: false,
                });
                self.paths.push(Path {
                    local: local.ip(),
                    local_id: 0,
                    remote: *remote,
                    remote_id: 0,
                    backup: false,
                    initial: true,
                    by_peer: false,
                    state: State::Established,
                    failures: 0,
                });
                self.reconcile(out);
            }
            PmEvent::AddAddrReceived { id, addr, port } => self.add_addr(*id, *addr, *port, out),
            //= rfc8684#3.4.2
            //= REMOVE_ADDR: the subflows towards the removed addresses are closed.
            PmEvent::RemoveAddrReceived { ids } => {
                let gone: Vec<SocketAddr> = self
                    .remotes
                    .iter()
                    .filter(|r| ids.contains(&r.id))
                    .map(|r| r.addr)
                    .collect();
                self.remotes.retain(|r| !ids.contains(&r.id));
                self.destroy(
                    |p| ids.contains(&p.remote_id) || gone.contains(&p.remote),
                    out,
                );
                self.reconcile(out);
            }
            PmEvent::JoinRequested {
                addrs,
                remote_id,
                backup,
            } => {
                if self.has_slot() {
                    out.push(PmCommand::AcceptJoin { addrs: *addrs });
                    self.paths.push(Path {
                        local: addrs.local.ip(),
                        local_id: 0,
                        remote: addrs.remote,
                        remote_id: *remote_id,
                        backup: *backup,
                        initial: false,
                        by_peer: true,
                        state: State::Connecting,
                        failures: 0,
                    });
                } else {
                    out.push(PmCommand::RefuseJoin { addrs: *addrs });
                }
            }
            PmEvent::SubflowEstablished { addrs } => {
                if let Some(i) = self.find_live(addrs, Some(State::Connecting)) {
                    if let Some(p) = self.paths.get_mut(i) {
                        p.state = State::Established;
                        p.failures = 0;
                    }
                }
            }
            PmEvent::SubflowClosed { addrs, error } => {
                self.subflow_closed(now, addrs, error.is_some());
                self.reconcile(out);
            }
            PmEvent::EndpointAdded(ep) | PmEvent::EndpointChanged(ep) => {
                let l = LocalAddr::from_endpoint(ep);
                let backup_changed = self
                    .locals
                    .iter()
                    .find(|x| x.addr == l.addr)
                    .is_some_and(|x| x.backup != l.backup);
                self.locals.retain(|x| x.addr != l.addr && x.id != l.id);
                self.locals.push(l.clone());
                if backup_changed {
                    for p in self.paths.iter_mut().filter(|p| p.local == l.addr) {
                        p.backup = l.backup;
                        if p.live() {
                            out.push(PmCommand::SetBackup {
                                local: p.local,
                                remote: p.remote,
                                backup: l.backup,
                            });
                        }
                    }
                }
                self.reconcile(out);
            }
            PmEvent::EndpointRemoved(ep) => {
                self.locals.retain(|x| x.addr != ep.addr);
                let initial = self.conn.map(|c| c.local.ip());
                if Some(ep.addr) != initial {
                    self.destroy(|p| p.local == ep.addr, out);
                }
                self.reconcile(out);
            }
            PmEvent::LimitsChanged(l) => {
                self.limits = *l;
                self.reconcile(out);
            }
            PmEvent::Timeout => {
                self.timeout(now, out);
                self.reconcile(out);
            }
            PmEvent::ConnectionClosed => {
                self.closed = true;
                self.paths.clear();
            }
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.paths
            .iter()
            .filter_map(|p| match p.state {
                State::Retry { at } => Some(at),
                _ => None,
            })
            .min()
    }
}
