//! [`KernelPm`]: the Linux in-kernel path manager (`net/mptcp/pm_kernel.c`), per connection,
//! plus braid's re-creation of failed subflows.

use std::net::{IpAddr, SocketAddr};

use super::{
    longest_prefix_match, Limits, PathManager, PmCommand, PmEndpoint, PmEvent, SubflowAddrs,
    MAX_ENDPOINTS,
};
use crate::time::{Duration, Instant};

/// Timers and retry policy of [`KernelPm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmConfig {
    /// Time between ADD_ADDR retransmissions until echoed (`net.mptcp.add_addr_timeout`,
    /// 120 s by default).
    pub add_addr_timeout: Duration,
    /// Retransmissions of an unechoed ADD_ADDR (the kernel's `ADD_ADDR_RETRANS_MAX`, 3).
    pub add_addr_retrans_max: u8,
    /// First delay before re-creating a failed subflow (1 s); doubles per failure.
    pub retry_base: Duration,
    /// Longest delay between re-creation attempts (64 s).
    pub retry_max: Duration,
    /// Re-create failed subflows at all (braid's addition; the kernel does not).
    pub retry: bool,
}

impl Default for PmConfig {
    fn default() -> Self {
        PmConfig {
            add_addr_timeout: Duration::from_secs(120),
            add_addr_retrans_max: 3,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(64),
            retry: true,
        }
    }
}

/// One of our ADD_ADDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announced {
    id: u8,
    addr: IpAddr,
    port: Option<u16>,
    /// Next retransmission, `None` once echoed or given up.
    deadline: Option<Instant>,
    retrans: u8,
}

/// A peer address we accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RemoteAddr {
    id: u8,
    addr: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathState {
    Connecting,
    Established,
    /// Failed; re-created at `at`.
    Retry {
        at: Instant,
    },
}

/// A subflow the manager knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    local: IpAddr,
    local_id: u8,
    remote: SocketAddr,
    remote_id: u8,
    backup: bool,
    /// The connection's initial subflow (not counted against the subflows limit).
    initial: bool,
    /// Opened by the peer (never re-created by us).
    by_peer: bool,
    state: PathState,
    /// Failures in a row.
    failures: u32,
}

/// The kernel's in-kernel path manager for one connection.
///
/// - **Established**: announces every `signal` endpoint (ADD_ADDR), except the initial
///   subflow's own address, then opens one subflow per `subflow` endpoint towards the peer's
///   initial address while fewer than `subflows` additional subflows exist; a `fullmesh`
///   endpoint opens one towards every known peer address instead. An endpoint is used once
///   per connection. (The kernel announces one address per PM work run; here all are
///   returned at once and the connection queues the ADD_ADDR options.)
/// - **ADD_ADDR received**: echoed always; accepted while fewer than `add_addr_accepted`
///   addresses were accepted and the subflows limit allows, and the address is new. An
///   accepted address gets a subflow from every `fullmesh` endpoint, or without any, from the
///   local address (a path's or an endpoint's) of the same family sharing the longest prefix
///   with it. A `subflow` endpoint of the other family than the connection's opens nothing at
///   establishment and so serves announced addresses of its family.
/// - **C flag**: when the peer set C on its MP_CAPABLE, no subflow goes to its initial
///   address (the kernel's `remote_deny_join_id0`).
/// - **ADD_ADDR retransmission**: every `add_addr_timeout` until echoed, at most
///   `add_addr_retrans_max` times.
/// - **REMOVE_ADDR received**: closes the subflows towards those ids and frees their accepted
///   slots.
/// - **Incoming joins**: accepted while the subflows limit allows.
/// - **Endpoint changes on a live connection**: an added endpoint is announced / used at once;
///   a deleted one is withdrawn (REMOVE_ADDR if announced or used) and its subflows closed; a
///   `backup` change sends MP_PRIO on its subflows; new limits may open subflows.
/// - **braid's addition**: a subflow we opened (or the initial one) that closes with an error
///   is re-created after `retry_base`, doubling per failure up to `retry_max`, as long as its
///   local and remote addresses are still valid; success resets the backoff.
#[derive(Debug, Clone)]
pub struct KernelPm {
    cfg: PmConfig,
    endpoints: Vec<PmEndpoint>,
    limits: Limits,
    /// Local addresses usable as sources (the paths' addresses).
    local_addrs: Vec<IpAddr>,
    conn: Option<SubflowAddrs>,
    used: Vec<u8>,
    announced: Vec<Announced>,
    remotes: Vec<RemoteAddr>,
    accepted: u8,
    subflows: u8,
    paths: Vec<Path>,
    closed: bool,
    /// The peer set C in MP_CAPABLE (the kernel's `remote_deny_join_id0`).
    remote_denies_join: bool,
}

impl KernelPm {
    /// A manager over `endpoints` and `limits`, with `local_addrs` the local addresses a
    /// subflow towards an announced address may leave from.
    pub fn new(endpoints: &[PmEndpoint], limits: Limits, local_addrs: &[IpAddr]) -> KernelPm {
        KernelPm::with_config(PmConfig::default(), endpoints, limits, local_addrs)
    }

    /// [`KernelPm::new`] with explicit timers.
    pub fn with_config(
        cfg: PmConfig,
        endpoints: &[PmEndpoint],
        limits: Limits,
        local_addrs: &[IpAddr],
    ) -> KernelPm {
        let mut eps: Vec<PmEndpoint> = endpoints.iter().take(MAX_ENDPOINTS).cloned().collect();
        eps.sort_by_key(|e| e.id);
        KernelPm {
            cfg,
            endpoints: eps,
            limits,
            local_addrs: local_addrs.to_vec(),
            conn: None,
            used: Vec::new(),
            announced: Vec::new(),
            remotes: Vec::new(),
            accepted: 0,
            subflows: 0,
            paths: Vec::new(),
            closed: false,
            remote_denies_join: false,
        }
    }

    /// Additional subflows counted against the limit (opening, open, or accepted joins).
    pub fn subflows(&self) -> u8 {
        self.subflows
    }

    /// Peer addresses accepted so far.
    pub fn add_addr_accepted(&self) -> u8 {
        self.accepted
    }

    /// Ids of our addresses announced and not withdrawn.
    pub fn announced_ids(&self) -> Vec<u8> {
        self.announced.iter().map(|a| a.id).collect()
    }

    /// Subflows waiting to be re-created.
    pub fn pending_retries(&self) -> usize {
        self.paths
            .iter()
            .filter(|p| matches!(p.state, PathState::Retry { .. }))
            .count()
    }

    fn has_slot(&self) -> bool {
        self.subflows < self.limits.subflows
    }

    fn find_path(&self, local: IpAddr, remote: SocketAddr) -> Option<usize> {
        self.paths
            .iter()
            .position(|p| p.local == local && p.remote == remote)
    }

    /// The address id of a local address: its endpoint's, 0 for the initial address, else
    /// the lowest id no endpoint uses (an implicit endpoint, as the kernel makes).
    fn local_id_of(&self, local: IpAddr) -> u8 {
        if let Some(e) = self.endpoints.iter().find(|e| e.addr == local) {
            return e.id;
        }
        if self.conn.is_some_and(|c| c.local.ip() == local) {
            return 0;
        }
        (1..=u8::MAX)
            .find(|i| {
                !self.endpoints.iter().any(|e| e.id == *i)
                    && !self
                        .paths
                        .iter()
                        .any(|p| p.local_id == *i && p.local != local)
            })
            .unwrap_or(u8::MAX)
    }

    /// Opens a subflow unless one exists on the same pair; counts it.
    fn open(
        &mut self,
        local: IpAddr,
        local_id: u8,
        remote: SocketAddr,
        remote_id: u8,
        backup: bool,
        out: &mut Vec<PmCommand>,
    ) {
        if self.find_path(local, remote).is_some() {
            return;
        }
        self.subflows = self.subflows.saturating_add(1);
        self.paths.push(Path {
            local,
            local_id,
            remote,
            remote_id,
            backup,
            initial: false,
            by_peer: false,
            state: PathState::Connecting,
            failures: 0,
        });
        out.push(PmCommand::CreateSubflow {
            local,
            local_id,
            remote,
            remote_id,
            backup,
        });
    }

    //= rfc8684#3.4.1
    //= ADD_ADDR is retransmitted until the peer echoes it.
    fn announce(&mut self, now: Instant, ep: &PmEndpoint, out: &mut Vec<PmCommand>) {
        if self.announced.iter().any(|a| a.id == ep.id) {
            return;
        }
        if self
            .conn
            .is_some_and(|c| c.local.ip() == ep.addr && ep.port.is_none())
        {
            return;
        }
        self.announced.push(Announced {
            id: ep.id,
            addr: ep.addr,
            port: ep.port,
            deadline: Some(now + self.cfg.add_addr_timeout),
            retrans: 0,
        });
        out.push(PmCommand::Announce {
            id: ep.id,
            addr: ep.addr,
            port: ep.port,
        });
    }

    /// The kernel's `mptcp_pm_create_subflow_or_signal_addr`.
    fn signal_and_subflows(&mut self, now: Instant, out: &mut Vec<PmCommand>) {
        let Some(conn) = self.conn else { return };
        let eps = self.endpoints.clone();
        for ep in eps.iter().filter(|e| e.flags.signal()) {
            self.announce(now, ep, out);
        }
        for ep in eps.iter().filter(|e| e.flags.subflow()) {
            if !self.has_slot() {
                break;
            }
            if self.used.contains(&ep.id) || ep.addr == conn.local.ip() {
                continue;
            }
            self.used.push(ep.id);
            //= rfc8684#3.1
            //= A peer that set C on its MP_CAPABLE gets no subflows towards its initial
            //  address: a `subflow` endpoint then opens nothing, a `fullmesh` one goes to
            //  the announced addresses only (the kernel's `remote_deny_join_id0`).
            let mut remotes = Vec::new();
            if !self.remote_denies_join {
                remotes.push((conn.remote, 0u8));
            }
            if ep.flags.fullmesh() {
                remotes.extend(self.remotes.iter().map(|r| (r.addr, r.id)));
            }
            for (remote, remote_id) in remotes {
                if !self.has_slot() {
                    break;
                }
                if remote.is_ipv4() != ep.addr.is_ipv4() {
                    continue;
                }
                self.open(ep.addr, ep.id, remote, remote_id, ep.flags.backup(), out);
            }
        }
    }

    //= rfc8684#3.4.1
    //= A received ADD_ADDR is echoed; the receiver may then open subflows towards it.
    fn add_addr(&mut self, id: u8, addr: IpAddr, port: Option<u16>, out: &mut Vec<PmCommand>) {
        let Some(conn) = self.conn else {
            out.push(PmCommand::RefuseAddAddr { id, addr, port });
            return;
        };
        let remote = SocketAddr::new(addr, port.unwrap_or(conn.remote.port()));
        let known = remote == conn.remote
            || self.remotes.iter().any(|r| r.id == id || r.addr == remote)
            || self.paths.iter().any(|p| p.remote == remote);
        if known || self.accepted >= self.limits.add_addr_accepted || !self.has_slot() {
            out.push(PmCommand::RefuseAddAddr { id, addr, port });
            return;
        }
        self.accepted += 1;
        self.remotes.push(RemoteAddr { id, addr: remote });
        out.push(PmCommand::AcceptAddAddr { id, addr, port });
        let fullmesh: Vec<PmEndpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.flags.fullmesh() && e.addr.is_ipv4() == addr.is_ipv4())
            .cloned()
            .collect();
        if fullmesh.is_empty() {
            // The kernel lets routing pick the source; here it is the local address of the
            // announced one's family sharing the longest prefix with it, among the paths'
            // addresses, the endpoints' (one of the other family than the connection's was
            // skipped at establishment and serves here) and the initial subflow's.
            let mut sources = self.local_addrs.clone();
            for a in self
                .endpoints
                .iter()
                .map(|e| e.addr)
                .chain([conn.local.ip()])
            {
                if !sources.contains(&a) {
                    sources.push(a);
                }
            }
            if let Some(local) = longest_prefix_match(&sources, addr) {
                let local_id = self.local_id_of(local);
                let backup = self
                    .endpoints
                    .iter()
                    .any(|e| e.addr == local && e.flags.backup());
                self.open(local, local_id, remote, id, backup, out);
            }
        } else {
            for ep in fullmesh {
                if !self.has_slot() {
                    break;
                }
                self.open(ep.addr, ep.id, remote, id, ep.flags.backup(), out);
            }
        }
    }

    //= rfc8684#3.4.2
    //= REMOVE_ADDR closes every subflow towards the removed address ids.
    fn remove_addrs(&mut self, ids: &[u8], out: &mut Vec<PmCommand>) {
        for id in ids {
            if let Some(pos) = self.remotes.iter().position(|r| r.id == *id) {
                self.remotes.remove(pos);
                self.accepted = self.accepted.saturating_sub(1);
            }
            self.drop_paths(|p| p.remote_id == *id, out);
        }
    }

    /// Closes (DestroySubflow) and forgets every path matching `pred`.
    fn drop_paths(&mut self, pred: impl Fn(&Path) -> bool, out: &mut Vec<PmCommand>) {
        let mut i = 0;
        while i < self.paths.len() {
            if pred(&self.paths[i]) {
                let p = self.paths.remove(i);
                match p.state {
                    PathState::Retry { .. } => {}
                    _ => {
                        if !p.initial {
                            self.subflows = self.subflows.saturating_sub(1);
                        }
                        out.push(PmCommand::DestroySubflow {
                            local: p.local,
                            remote: p.remote,
                        });
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Both addresses of a path are still usable.
    fn still_valid(&self, p: &Path) -> bool {
        let Some(conn) = self.conn else { return false };
        let local_ok = p.local == conn.local.ip()
            || self.endpoints.iter().any(|e| e.addr == p.local)
            || self.local_addrs.contains(&p.local);
        let remote_ok = (p.remote == conn.remote && !self.remote_denies_join)
            || self.remotes.iter().any(|r| r.addr == p.remote);
        local_ok && remote_ok
    }

    fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        self.cfg
            .retry_base
            .saturating_mul(1u32 << shift)
            .min(self.cfg.retry_max)
    }

    fn subflow_closed(
        &mut self,
        now: Instant,
        addrs: SubflowAddrs,
        failed: bool,
        out: &mut Vec<PmCommand>,
    ) {
        let Some(pos) = self.find_path(addrs.local.ip(), addrs.remote) else {
            return;
        };
        if matches!(self.paths[pos].state, PathState::Retry { .. }) {
            return;
        }
        let p = self.paths.remove(pos);
        if !p.initial {
            self.subflows = self.subflows.saturating_sub(1);
        }
        if failed && self.cfg.retry && !p.by_peer && self.still_valid(&p) {
            let failures = p.failures.saturating_add(1);
            let at = now + self.backoff(failures);
            self.paths.push(Path {
                failures,
                state: PathState::Retry { at },
                ..p
            });
        }
        // A freed slot lets the next endpoints in, as the kernel's check_next does.
        self.signal_and_subflows(now, out);
    }

    fn timeout(&mut self, now: Instant, out: &mut Vec<PmCommand>) {
        let timeout = self.cfg.add_addr_timeout;
        let max = self.cfg.add_addr_retrans_max;
        for a in &mut self.announced {
            if a.deadline.is_some_and(|d| d <= now) {
                if a.retrans < max {
                    a.retrans += 1;
                    a.deadline = Some(now + timeout);
                    out.push(PmCommand::Announce {
                        id: a.id,
                        addr: a.addr,
                        port: a.port,
                    });
                } else {
                    a.deadline = None;
                }
            }
        }
        let mut i = 0;
        while i < self.paths.len() {
            let PathState::Retry { at } = self.paths[i].state else {
                i += 1;
                continue;
            };
            if at > now {
                i += 1;
                continue;
            }
            if !self.still_valid(&self.paths[i]) {
                self.paths.remove(i);
                continue;
            }
            let initial = self.paths[i].initial;
            if !initial && !self.has_slot() {
                // No room now: try again after the next backoff step.
                let failures = self.paths[i].failures.saturating_add(1);
                let at = now + self.backoff(failures);
                let p = &mut self.paths[i];
                p.failures = failures;
                p.state = PathState::Retry { at };
                i += 1;
                continue;
            }
            if !initial {
                self.subflows = self.subflows.saturating_add(1);
            }
            let p = &mut self.paths[i];
            p.state = PathState::Connecting;
            out.push(PmCommand::CreateSubflow {
                local: p.local,
                local_id: p.local_id,
                remote: p.remote,
                remote_id: p.remote_id,
                backup: p.backup,
            });
            i += 1;
        }
    }

    fn endpoint_removed(&mut self, ep: &PmEndpoint, out: &mut Vec<PmCommand>) {
        self.endpoints.retain(|e| e.id != ep.id);
        self.used.retain(|id| *id != ep.id);
        let was_announced = self.announced.iter().any(|a| a.id == ep.id);
        self.announced.retain(|a| a.id != ep.id);
        let has_subflows = self.paths.iter().any(|p| p.local == ep.addr && !p.initial);
        if self.conn.is_some() && (was_announced || has_subflows) {
            out.push(PmCommand::RemoveAddr { ids: vec![ep.id] });
        }
        self.drop_paths(|p| p.local == ep.addr && !p.initial, out);
    }

    //= rfc8684#3.3.8
    //= A host changes the backup state of its subflows with MP_PRIO.
    fn endpoint_changed(&mut self, ep: &PmEndpoint, out: &mut Vec<PmCommand>) {
        let Some(old) = self.endpoints.iter_mut().find(|e| e.id == ep.id) else {
            return;
        };
        let backup_changed = old.flags.backup() != ep.flags.backup();
        *old = ep.clone();
        if !backup_changed {
            return;
        }
        for p in self.paths.iter_mut().filter(|p| p.local == ep.addr) {
            p.backup = ep.flags.backup();
            if !matches!(p.state, PathState::Retry { .. }) {
                out.push(PmCommand::SetBackup {
                    local: p.local,
                    remote: p.remote,
                    backup: p.backup,
                });
            }
        }
    }
}

impl PathManager for KernelPm {
    fn name(&self) -> &'static str {
        "kernel"
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
                // The initial subflow's endpoint counts as used (the kernel's MPC accounting)
                // and its backup flag applies to the initial subflow.
                let backup = self
                    .endpoints
                    .iter()
                    .find(|e| e.addr == local.ip())
                    .inspect(|e| self.used.push(e.id))
                    .is_some_and(|e| e.flags.backup());
                if backup {
                    // A backup endpoint on the initial address makes the first subflow a
                    // backup too: tell the peer with MP_PRIO.
                    out.push(PmCommand::SetBackup {
                        local: local.ip(),
                        remote: *remote,
                        backup: true,
                    });
                }
                self.paths.push(Path {
                    local: local.ip(),
                    local_id: 0,
                    remote: *remote,
                    remote_id: 0,
                    backup,
                    initial: true,
                    by_peer: false,
                    state: PathState::Established,
                    failures: 0,
                });
                self.signal_and_subflows(now, out);
            }
            PmEvent::AddAddrReceived { id, addr, port } => self.add_addr(*id, *addr, *port, out),
            PmEvent::AddAddrEchoed { id } => {
                if let Some(a) = self.announced.iter_mut().find(|a| a.id == *id) {
                    a.deadline = None;
                }
            }
            PmEvent::RemoveAddrReceived { ids } => self.remove_addrs(ids, out),
            PmEvent::JoinRequested {
                addrs,
                remote_id,
                backup,
            } => {
                if self.conn.is_none() || !self.has_slot() {
                    out.push(PmCommand::RefuseJoin { addrs: *addrs });
                    return;
                }
                self.subflows += 1;
                let local_id = self.local_id_of(addrs.local.ip());
                self.paths.push(Path {
                    local: addrs.local.ip(),
                    local_id,
                    remote: addrs.remote,
                    remote_id: *remote_id,
                    backup: *backup,
                    initial: false,
                    by_peer: true,
                    state: PathState::Connecting,
                    failures: 0,
                });
                out.push(PmCommand::AcceptJoin { addrs: *addrs });
            }
            PmEvent::SubflowEstablished { addrs } => {
                if let Some(pos) = self.find_path(addrs.local.ip(), addrs.remote) {
                    let p = &mut self.paths[pos];
                    if p.state == PathState::Connecting {
                        p.state = PathState::Established;
                        p.failures = 0;
                    }
                }
            }
            PmEvent::SubflowClosed { addrs, error } => {
                self.subflow_closed(now, *addrs, error.is_some(), out)
            }
            PmEvent::EndpointAdded(ep) => {
                if self.endpoints.iter().any(|e| e.id == ep.id)
                    || self.endpoints.len() >= MAX_ENDPOINTS
                {
                    return;
                }
                self.endpoints.push(ep.clone());
                self.endpoints.sort_by_key(|e| e.id);
                self.signal_and_subflows(now, out);
            }
            PmEvent::EndpointRemoved(ep) => self.endpoint_removed(ep, out),
            PmEvent::EndpointChanged(ep) => self.endpoint_changed(ep, out),
            PmEvent::LimitsChanged(limits) => {
                self.limits = *limits;
                self.signal_and_subflows(now, out);
            }
            PmEvent::SubflowPriority { addrs, backup } => {
                //= rfc8684#3.3.8
                //= MP_PRIO changes the backup state of the subflow it arrives on.
                if let Some(pos) = self.find_path(addrs.local.ip(), addrs.remote) {
                    if let Some(p) = self.paths.get_mut(pos) {
                        p.backup = *backup;
                    }
                }
            }
            PmEvent::ConnectionClosed => {
                self.closed = true;
                self.announced.clear();
                self.paths.clear();
                self.subflows = 0;
            }
            PmEvent::Timeout => self.timeout(now, out),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let announce = self.announced.iter().filter_map(|a| a.deadline);
        let retries = self.paths.iter().filter_map(|p| match p.state {
            PathState::Retry { at } => Some(at),
            _ => None,
        });
        announce.chain(retries).min()
    }
}
