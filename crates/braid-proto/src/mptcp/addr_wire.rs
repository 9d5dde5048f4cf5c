//! Address signalling on the wire: the address options of received segments (ADD_ADDR and
//! its echo, REMOVE_ADDR, MP_PRIO, RFC 8684 §3.4.1, §3.4.2, §3.3.8) and the ones added to
//! outgoing segments. A child module of `connection`, beside `addr` (the state, the
//! application's requests and the path-manager events); see there for Linux's choices.

use super::addr::*;
use super::*;
use crate::crypto::add_addr_hmac;

impl MptcpConnection {
    /// Address options of a segment received on subflow `id` (the segment was accepted and
    /// MPTCP runs).
    pub(super) fn addr_input(&mut self, id: SubflowId, repr: &TcpRepr) {
        let Some(n) = self.neg else {
            return;
        };
        if repr.flags.syn() || repr.flags.rst() {
            return;
        }
        // `Established` comes before anything the peer signals.
        self.pm_sync();
        let mut kick = false;
        for opt in &repr.options.mptcp {
            match opt {
                MptcpOption::AddAddr {
                    echo: false,
                    addr_id,
                    addr,
                    port,
                    hmac,
                } => {
                    //= rfc8684#3.4.1
                    //= The receiver checks the HMAC (keyed with the sender's key then its
                    //  own); an ADD_ADDR failing the check is dropped. A valid one is echoed.
                    let want = add_addr_hmac(n.remote_key, n.local_key, *addr_id, *addr, *port);
                    let pa = PeerAddr {
                        id: *addr_id,
                        addr: *addr,
                        port: *port,
                    };
                    let queued = self.addr.echo_tx.contains(&pa);
                    if *hmac != Some(want)
                        || (!queued && self.addr.echo_tx.len() >= MAX_PENDING_ECHOES)
                    {
                        self.counters.AddAddrDrop += 1;
                        continue;
                    }
                    self.counters.AddAddr += 1;
                    if !queued {
                        self.addr.echo_tx.push_back(pa);
                    }
                    kick = true;
                    let known = self.addr.peer.iter().position(|p| p.id == *addr_id);
                    match known {
                        Some(i) if self.addr.peer.get(i) == Some(&pa) => {}
                        Some(i) => {
                            if let Some(p) = self.addr.peer.get_mut(i) {
                                *p = pa;
                            }
                            self.addr.push_event(ConnPmEvent::AddAddr {
                                id: *addr_id,
                                addr: *addr,
                                port: *port,
                            });
                        }
                        None if self.addr.peer.len() < MAX_PEER_ADDRS => {
                            self.addr.peer.push(pa);
                            self.addr.push_event(ConnPmEvent::AddAddr {
                                id: *addr_id,
                                addr: *addr,
                                port: *port,
                            });
                        }
                        None => {}
                    }
                }
                MptcpOption::AddAddr {
                    echo: true,
                    addr_id,
                    addr,
                    port,
                    ..
                } => {
                    //= rfc8684#3.4.1
                    //= The echo (E bit, no HMAC) confirms the announcement: it is not
                    //  retransmitted any more.
                    self.counters.EchoAdd += 1;
                    let a = self.addr.announced.iter_mut().find(|a| {
                        a.id == *addr_id && a.addr == *addr && (port.is_none() || *port == a.port)
                    });
                    if let Some(a) = a {
                        a.deadline = None;
                        a.pending = false;
                        if !a.echoed {
                            a.echoed = true;
                            let id = a.id;
                            self.addr.push_event(ConnPmEvent::Echoed { id });
                        }
                    }
                }
                MptcpOption::RemoveAddr { addr_ids } => {
                    //= rfc8684#3.4.2
                    //= On REMOVE_ADDR the receiver closes every subflow towards the removed
                    //  address ids and forgets the addresses.
                    let mut ids = Vec::new();
                    for rid in addr_ids {
                        if ids.contains(rid) {
                            continue;
                        }
                        ids.push(*rid);
                        self.counters.RmAddr += 1;
                        self.addr.peer.retain(|p| p.id != *rid);
                        self.addr.echo_tx.retain(|p| p.id != *rid);
                        let victims: Vec<SubflowId> = self
                            .subflows
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.remote_id == *rid)
                            .map(|(i, _)| i)
                            .collect();
                        for v in victims {
                            // Already closed ones are skipped.
                            let _ = self.close_subflow(v);
                        }
                    }
                    self.addr.push_event(ConnPmEvent::RemoveAddr { ids });
                }
                MptcpOption::MpPrio { backup, .. } => {
                    //= rfc8684#3.3.8
                    //= MP_PRIO changes the backup state of the subflow it arrives on.
                    self.counters.MPPrioRx += 1;
                    if let Some(s) = self.subflows.get_mut(id) {
                        s.backup = *backup;
                    }
                    self.addr.push_event(ConnPmEvent::Priority {
                        subflow: id,
                        backup: *backup,
                    });
                }
                _ => {}
            }
        }
        // Signals still waiting (e.g. the client's, held back while it repeated MP_CAPABLE)
        // go on the answer.
        if kick || self.addr.has_pending() {
            self.kick_signals();
        }
    }

    /// Puts pending signals on a segment of subflow `id` (after its DSS was added).
    pub(super) fn addr_options(&mut self, id: SubflowId, repr: &mut TcpRepr, has_data: bool) {
        let Some(n) = self.neg else {
            return;
        };
        if repr.flags.syn() || repr.flags.rst() {
            return;
        }
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let data = has_data;
        let pure_ack = !data && !repr.flags.fin();
        // What the segment was sized for (its payload and options fit the MSS).
        let limit = self.opt_limit;
        // MP_PRIO belongs to its own subflow.
        if let Some(b) = s.prio_tx {
            let opt = MptcpOption::MpPrio {
                backup: b,
                addr_id: None,
            };
            if push_signal(repr, opt, pure_ack, limit) {
                s.prio_tx = None;
                self.counters.MPPrioTx += 1;
            } else if data {
                // Data took the room: the next pure ACK carries it.
                s.tcb.request_ack();
            }
        }
        if !self.addr.has_pending() || s.pm_closing {
            return;
        }
        let local_id = s.local_id;
        let mut progress = false;
        // REMOVE_ADDR preferably on a subflow that stays.
        if !self.addr.remove_tx.is_empty()
            && (!self.addr.remove_tx.contains(&local_id)
                || self.signal_subflow(&[local_id]) == Some(id)
                || self.signal_subflow(&self.addr.remove_tx.clone()) == Some(id))
        {
            let opt = MptcpOption::RemoveAddr {
                addr_ids: self.addr.remove_tx.clone(),
            };
            if push_signal(repr, opt, pure_ack, limit) {
                self.addr.remove_tx.clear();
                self.counters.RmAddrTx += 1;
                progress = true;
            }
        }
        while let Some(pa) = self.addr.echo_tx.front().copied() {
            let opt = MptcpOption::AddAddr {
                echo: true,
                addr_id: pa.id,
                addr: pa.addr,
                port: pa.port,
                hmac: None,
            };
            if !push_signal(repr, opt, pure_ack, limit) {
                break;
            }
            self.addr.echo_tx.pop_front();
            self.counters.EchoAddTx += 1;
            progress = true;
        }
        for i in 0..self.addr.announced.len() {
            let Some(a) = self.addr.announced.get(i).copied().filter(|a| a.pending) else {
                continue;
            };
            let opt = MptcpOption::AddAddr {
                echo: false,
                addr_id: a.id,
                addr: a.addr,
                port: a.port,
                hmac: Some(add_addr_hmac(
                    n.local_key,
                    n.remote_key,
                    a.id,
                    a.addr,
                    a.port,
                )),
            };
            if !push_signal(repr, opt, pure_ack, limit) {
                break;
            }
            if let Some(x) = self.addr.announced.get_mut(i) {
                x.pending = false;
            }
            self.counters.AddAddrTx += 1;
            progress = true;
        }
        // What is left goes on another pure ACK: after a data segment, or when this one
        // carried something (so the requests stop when nothing fits at all).
        if self.addr.has_pending() && (data || progress) {
            self.kick_signals();
        }
    }
}
