//! Path management of the endpoint: the per-connection [`PathManager`]s, the endpoint table
//! (`ip mptcp endpoint` / `limits`), the monitor's events, and run-time changes of a
//! connection's manager and scheduler.

use super::*;

/// Path management: the per-connection [`PathManager`]s, the endpoint table and the monitor.
impl Endpoint {
    /// The path-manager endpoints and limits.
    pub fn pm_table(&self) -> &EndpointTable {
        &self.config.pm_table
    }

    /// The next path-manager event of any connection (at most 1024 are kept; the oldest
    /// give way), each tagged with the connection's handle and token.
    pub fn poll_pm_event(&mut self) -> Option<PmNotice> {
        self.pm_notices.pop_front()
    }

    /// `endpoint add`: validates and adds an endpoint, which takes effect on live
    /// connections at once (announced if `signal`, subflows opened if `subflow`).
    pub fn endpoint_add(
        &mut self,
        now: Instant,
        addr: IpAddr,
        id: Option<u32>,
        port: Option<u16>,
        dev: Option<String>,
        flags: EndpointFlags,
    ) -> Result<PmEndpoint, PmError> {
        let ep = self.config.pm_table.add(addr, id, port, dev, flags)?;
        self.pm_broadcast(now, &PmEvent::EndpointAdded(ep.clone()));
        Ok(ep)
    }

    /// `endpoint delete id N`: removes an endpoint; on live connections its announcement is
    /// withdrawn (REMOVE_ADDR) and its subflows are closed, as the kernel does.
    pub fn endpoint_delete(&mut self, now: Instant, id: u8) -> Result<PmEndpoint, PmError> {
        let ep = self.config.pm_table.delete(id)?;
        self.pm_broadcast(now, &PmEvent::EndpointRemoved(ep.clone()));
        Ok(ep)
    }

    /// `endpoint change id N backup|nobackup|...`: a backup change sends MP_PRIO on the
    /// endpoint's live subflows.
    pub fn endpoint_change(
        &mut self,
        now: Instant,
        id: u8,
        change: FlagChange,
    ) -> Result<PmEndpoint, PmError> {
        let ep = self.config.pm_table.change(id, change)?;
        self.pm_broadcast(now, &PmEvent::EndpointChanged(ep.clone()));
        Ok(ep)
    }

    /// `endpoint flush`: deletes every endpoint (each as [`Endpoint::endpoint_delete`]).
    pub fn endpoint_flush(&mut self, now: Instant) -> Vec<PmEndpoint> {
        let eps = self.config.pm_table.flush();
        for ep in &eps {
            self.pm_broadcast(now, &PmEvent::EndpointRemoved(ep.clone()));
        }
        eps
    }

    /// `limits set`: new limits, applied to live connections too.
    pub fn set_limits(&mut self, now: Instant, limits: Limits) {
        self.config.pm_table.set_limits(limits);
        self.pm_broadcast(now, &PmEvent::LimitsChanged(limits));
    }

    /// Replaces the whole table: the differences reach live connections as deletions,
    /// additions, flag changes and a limits change.
    pub fn set_pm_endpoints(&mut self, now: Instant, table: EndpointTable) {
        let old = self.config.pm_table.clone();
        let mut events = Vec::new();
        for e in old.endpoints() {
            let same = table
                .get(e.id)
                .is_some_and(|n| n.addr == e.addr && n.port == e.port);
            if !same {
                events.push(PmEvent::EndpointRemoved(e.clone()));
            }
        }
        for n in table.endpoints() {
            match old.get(n.id) {
                Some(e) if e.addr == n.addr && e.port == n.port => {
                    if e.flags != n.flags {
                        events.push(PmEvent::EndpointChanged(n.clone()));
                    }
                }
                _ => events.push(PmEvent::EndpointAdded(n.clone())),
            }
        }
        if old.limits() != table.limits() {
            events.push(PmEvent::LimitsChanged(table.limits()));
        }
        self.config.pm_table = table;
        for e in &events {
            self.pm_broadcast(now, e);
        }
    }

    /// Feeds `ev` to every live connection's manager and carries out its commands.
    fn pm_broadcast(&mut self, now: Instant, ev: &PmEvent) {
        self.now = self.now.max(now);
        for idx in 0..self.conns.len() {
            let mut out = Vec::new();
            match self.conns.get_mut(idx).and_then(Option::as_mut) {
                Some(c) if !c.closed_reported => {
                    if let Some(pm) = c.pm.as_mut() {
                        pm.handle(self.now, ev, &mut out);
                    }
                }
                _ => continue,
            }
            self.pm_execute(idx, out);
            self.sync(idx);
        }
    }

    /// The connection's events to its manager (and the monitor), the manager's commands to
    /// the connection; a few rounds, so commands' effects are reported at once.
    pub(super) fn pm_round(&mut self, idx: usize) {
        let now = self.now;
        for _ in 0..4 {
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                return;
            };
            let handle = ConnectionHandle(idx);
            let Some(m) = c.proto.mptcp_mut() else {
                return;
            };
            let mut raw = Vec::new();
            while let Some(e) = m.poll_pm_event() {
                raw.push(e);
            }
            if raw.is_empty() {
                return;
            }
            let token = m.local_token();
            let remote_denies_join = m.peer_denies_initial_join();
            let mut out = Vec::new();
            for e in raw {
                let ev = match e {
                    ConnPmEvent::Established => PmEvent::ConnectionEstablished {
                        local: c.local,
                        remote: c.remote,
                        remote_denies_join,
                    },
                    ConnPmEvent::AddAddr { id, addr, port } => {
                        PmEvent::AddAddrReceived { id, addr, port }
                    }
                    ConnPmEvent::Echoed { id } => PmEvent::AddAddrEchoed { id },
                    ConnPmEvent::RemoveAddr { ids } => PmEvent::RemoveAddrReceived { ids },
                    ConnPmEvent::SubflowEstablished { subflow } => {
                        let Some(addrs) = c.subflow_addrs(subflow) else {
                            continue;
                        };
                        PmEvent::SubflowEstablished { addrs }
                    }
                    ConnPmEvent::SubflowClosed { subflow, error } => {
                        let Some(addrs) = c.subflow_addrs(subflow) else {
                            continue;
                        };
                        PmEvent::SubflowClosed { addrs, error }
                    }
                    ConnPmEvent::Priority { subflow, backup } => {
                        let Some(addrs) = c.subflow_addrs(subflow) else {
                            continue;
                        };
                        PmEvent::SubflowPriority { addrs, backup }
                    }
                    ConnPmEvent::Closed => PmEvent::ConnectionClosed,
                };
                if let Some(pm) = c.pm.as_mut() {
                    pm.handle(now, &ev, &mut out);
                }
                if self.pm_notices.len() >= MAX_PM_NOTICES {
                    self.pm_notices.pop_front();
                }
                self.pm_notices.push_back(PmNotice {
                    conn: handle,
                    token,
                    event: ev,
                });
            }
            self.pm_execute(idx, out);
        }
    }

    /// Carries out a manager's commands on connection `idx`.
    pub(super) fn pm_execute(&mut self, idx: usize, cmds: Vec<PmCommand>) {
        let now = self.now;
        for cmd in cmds {
            if let PmCommand::CreateSubflow {
                local,
                local_id,
                remote,
                remote_id,
                backup,
            } = cmd
            {
                let res = self.open_subflow(
                    idx,
                    SocketAddr::new(local, 0),
                    remote,
                    Some((local_id, remote_id)),
                    backup,
                );
                if res.is_err() {
                    // The manager hears of the failure (and may retry later).
                    let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                        return;
                    };
                    let addrs = SubflowAddrs {
                        local: SocketAddr::new(local, 0),
                        remote,
                    };
                    let ev = PmEvent::SubflowClosed {
                        addrs,
                        error: Some(SubflowError::Refused),
                    };
                    if let Some(pm) = c.pm.as_mut() {
                        // Follow-up commands of a failed open are dropped (bounded work);
                        // the manager's timers bring them back.
                        pm.handle(now, &ev, &mut Vec::new());
                    }
                }
                continue;
            }
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                return;
            };
            let targets = match &cmd {
                PmCommand::DestroySubflow { local, remote }
                | PmCommand::SetBackup { local, remote, .. } => c.subflows_between(*local, *remote),
                _ => Vec::new(),
            };
            let Some(m) = c.proto.mptcp_mut() else {
                return;
            };
            // Refusals (not MPTCP, subflow gone) leave nothing to do.
            match cmd {
                PmCommand::Announce { id, addr, port } => {
                    let _ = m.announce_addr(now, id, addr, port);
                }
                PmCommand::RemoveAddr { ids } => {
                    let _ = m.remove_addr(&ids);
                }
                PmCommand::DestroySubflow { .. } => {
                    for t in targets {
                        let _ = m.close_subflow(t);
                    }
                }
                PmCommand::SetBackup { backup, .. } => {
                    for t in targets {
                        let _ = m.set_backup(t, backup);
                    }
                }
                // The connection echoes every valid ADD_ADDR itself; joins are decided in
                // `accept_join`.
                _ => {}
            }
        }
    }

    /// Replaces the packet scheduler of an MPTCP connection at run time (a built-in:
    /// [`crate::sched::SchedulerKind::build`], or any [`crate::sched::Scheduler`]).
    /// `Err(NotMptcp)` for plain TCP or after a fallback.
    pub fn set_scheduler(
        &mut self,
        conn: ConnectionHandle,
        sched: Box<dyn crate::sched::Scheduler>,
    ) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        match c.proto.mptcp_mut() {
            Some(m) if m.is_mptcp() => {
                m.set_scheduler(sched);
                self.touch(conn.0);
                Ok(())
            }
            _ => Err(Error::NotMptcp),
        }
    }

    /// Replaces the path manager of an MPTCP connection at run time with one of policy
    /// `pm`. The new manager is told what the connection is now (established, with its open
    /// subflows) as if it had watched from the start, and acts on it at once: a `fullmesh`
    /// manager opens its subflows, for example. `Err(NotMptcp)` for plain TCP or after a
    /// fallback.
    //= rfc8684#3.4
    //= path management is a local policy; any subflow may be added or removed at any time
    pub fn set_path_manager(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        pm: &PmFactory,
    ) -> Result<(), Error> {
        self.now = now;
        let snap = self.snapshot(conn).ok_or(Error::UnknownConnection)?;
        if !snap.mptcp {
            return Err(Error::NotMptcp);
        }
        let Self { conns, config, .. } = self;
        let c = conns
            .get_mut(conn.0)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownConnection)?;
        let ctx = PmContext {
            table: &config.pm_table,
            local_addrs: &config.local_addrs,
            active: !c.passive,
        };
        let mut fresh = pm.build(&ctx);
        let mut out = Vec::new();
        fresh.handle(
            now,
            &PmEvent::ConnectionEstablished {
                local: snap.local,
                remote: snap.remote,
                remote_denies_join: snap.remote_denies_join,
            },
            &mut out,
        );
        for s in snap.subflows.iter().filter(|s| s.id > 0 && s.open) {
            let addrs = SubflowAddrs {
                local: s.local,
                remote: s.remote,
            };
            fresh.handle(now, &PmEvent::SubflowEstablished { addrs }, &mut out);
        }
        c.pm = Some(super::conn::Pm::new(fresh));
        self.pm_execute(conn.0, out);
        self.sync(conn.0);
        Ok(())
    }
}
