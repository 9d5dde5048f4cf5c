//! Subflows: MP_JOIN SYNs handed to their connection, joins the application or the path
//! manager asks for, and the subflows opened for them.

use super::*;

impl Endpoint {
    /// Hands an MP_JOIN SYN to the connection owning `token`. `Err(None)`: no such token.
    pub(super) fn accept_join(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr,
        token: u32,
    ) -> Result<(), Option<JoinError>> {
        let idx = *self.tokens.get(&token).ok_or(None)?;
        let params = self.params(local, remote);
        let nonce = self.rng.next_u32();
        let c = self
            .conns
            .get_mut(idx)
            .and_then(Option::as_mut)
            .filter(|c| !c.closed_reported)
            .ok_or(None)?;
        let local_id = c.addr_id(local.ip(), &self.config.pm_table);
        // A local endpoint flagged backup makes the joins that arrive on it backups too
        // (our SYN/ACK says so with its B bit), as Linux's in-kernel manager does.
        let local_backup = self
            .config
            .pm_table
            .endpoints()
            .iter()
            .any(|e| e.addr == local.ip() && e.flags.backup());
        let addrs = SubflowAddrs { local, remote };
        let asked = match (
            c.proto.mptcp().map(MptcpConnection::is_mptcp),
            c.pm.as_mut(),
        ) {
            (Some(true), Some(pm)) => {
                let (backup, remote_id) = syn
                    .options
                    .mptcp
                    .iter()
                    .find_map(|o| match *o {
                        MptcpOption::MpJoinSyn {
                            backup, addr_id, ..
                        } => Some((backup, addr_id)),
                        _ => None,
                    })
                    .unwrap_or((false, 0));
                let mut out = Vec::new();
                let ev = PmEvent::JoinRequested {
                    addrs,
                    remote_id,
                    backup: backup || local_backup,
                };
                pm.handle(now, &ev, &mut out);
                //= rfc8684#3.2
                //= The path manager's subflows limit refuses joins beyond it.
                if out
                    .iter()
                    .any(|c| matches!(c, PmCommand::RefuseJoin { .. }))
                {
                    return Err(Some(JoinError::Limit));
                }
                true
            }
            _ => false,
        };
        let m = c.proto.mptcp_mut().ok_or(None)?;
        let id = match m.accept_join(now, params, syn, local_id, nonce, local_backup) {
            Ok(id) => id,
            Err(e) => {
                if asked {
                    if let Some(pm) = c.pm.as_mut() {
                        let ev = PmEvent::SubflowClosed {
                            addrs,
                            error: Some(SubflowError::Refused),
                        };
                        pm.handle(now, &ev, &mut Vec::new());
                    }
                }
                return Err(Some(e));
            }
        };
        c.paths.push((local, remote));
        debug_assert_eq!(c.paths.len(), id + 1);
        self.joins.insert((local, remote), (idx, id));
        self.recent = [None; 2];
        self.sync(idx);
        Ok(())
    }

    /// Adds a subflow from `local` (port 0: an ephemeral port) to `remote` to an
    /// established MPTCP connection (MP_JOIN, RFC 8684 §3.2; client side).
    pub fn add_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<SubflowId, Error> {
        self.now = self.now.max(now);
        self.conn_mut(conn)?;
        self.open_subflow(conn.0, local, remote, None, backup)
    }

    /// Asks for a subflow from `local` (port 0: an ephemeral port) to `remote`, opened (as
    /// [`Endpoint::add_subflow`] does) once the connection runs MPTCP and is fully
    /// established: the peer DATA_ACKed data, or data from the peer arrived, or the
    /// application closed with nothing left to send. May be called right after
    /// [`Endpoint::connect`]. A request that cannot be carried out later ends in
    /// [`Event::SubflowFailed`]; at most [`MAX_PENDING_JOINS`] wait at once.
    ///
    /// Errors now: `UnknownConnection`, `NotMptcp` (a plain TCP connection),
    /// `InvalidState` (an unspecified local address or mixed address families),
    /// `TooManyPendingJoins`.
    pub fn request_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<(), Error> {
        self.now = self.now.max(now);
        let c = self.conn_mut(conn)?;
        if c.proto.mptcp().is_none() {
            return Err(Error::NotMptcp);
        }
        if local.ip().is_unspecified() || !family_matches(local.ip(), remote.ip()) {
            return Err(Error::InvalidState);
        }
        if c.pending_joins.len() >= MAX_PENDING_JOINS {
            return Err(Error::TooManyPendingJoins);
        }
        c.pending_joins.push((local, remote, backup));
        self.sync(conn.0);
        Ok(())
    }

    /// Opens the requested subflows of slot `idx` once the connection is fully established,
    /// or fails them with [`Event::SubflowFailed`] once it cannot be.
    pub(super) fn run_pending_joins(&mut self, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if c.pending_joins.is_empty() || c.closed_reported || !c.known {
            return;
        }
        let failure = match c.proto.mptcp() {
            None => Some(Error::NotMptcp),
            //= rfc8684#3.7
            //= A connection that fell back to plain TCP takes no further subflows.
            Some(m) if m.is_fallback() => Some(Error::NotMptcp),
            Some(_) if c.proto.is_done() => {
                Some(c.proto.error().map_or(Error::InvalidState, Error::Closed))
            }
            // Still in the handshake.
            Some(m) if !m.is_mptcp() => return,
            Some(m) => {
                // Fully established (as Linux's path manager waits for): until the peer
                // DATA_ACKed data or sent some (its DSS carrying a DATA_ACK), its
                // connection-level window is only a guess from the SYN/ACK, and data a new
                // subflow sends beyond the real one is dropped.
                let i = m.info();
                let send = m.data_send();
                let idle_closed = c.app_closed && send.una() >= send.end();
                if i.bytes_acked == 0 && i.bytes_received == 0 && !idle_closed {
                    return;
                }
                None
            }
        };
        let joins = std::mem::take(&mut c.pending_joins);
        for (local, remote, backup) in joins {
            let res = match failure {
                Some(e) => Err(e),
                None => self
                    .open_subflow(idx, local, remote, None, backup)
                    .map(|_| ()),
            };
            if let Err(error) = res {
                self.events.push_back(Event::SubflowFailed {
                    conn: ConnectionHandle(idx),
                    local,
                    remote,
                    error,
                });
            }
        }
    }

    /// [`Endpoint::add_subflow`] on slot `idx`; `ids` (local, remote) overrides the address
    /// ids (the path manager's choice), else the local one is derived and the remote one
    /// is 0.
    pub(super) fn open_subflow(
        &mut self,
        idx: usize,
        local: SocketAddr,
        remote: SocketAddr,
        ids: Option<(u8, u8)>,
        backup: bool,
    ) -> Result<SubflowId, Error> {
        if local.ip().is_unspecified() || !family_matches(local.ip(), remote.ip()) {
            return Err(Error::InvalidState);
        }
        let local = self.free_local(local, remote)?;
        let params = self.params(local, remote);
        let nonce = self.rng.next_u32();
        let c = self
            .conns
            .get_mut(idx)
            .and_then(Option::as_mut)
            .filter(|c| !c.closed_reported)
            .ok_or(Error::UnknownConnection)?;
        let derived = c.addr_id(local.ip(), &self.config.pm_table);
        let (local_id, remote_id) = ids.unwrap_or((derived, 0));
        let m = c.proto.mptcp_mut().ok_or(Error::InvalidState)?;
        //= rfc8684#3.1
        //= A peer that set C on its MP_CAPABLE SYN or SYN/ACK gets no subflows towards the
        //  address and port that option came from.
        if m.peer_denies_initial_join() && remote == c.remote {
            return Err(Error::JoinDenied);
        }
        let id = m
            .add_subflow(
                params,
                JoinParams {
                    local_id,
                    remote_id,
                    backup,
                    nonce,
                },
            )
            .map_err(|_| Error::InvalidState)?;
        c.paths.push((local, remote));
        self.joins.insert((local, remote), (idx, id));
        self.recent = [None; 2];
        Ok(id)
    }
}
