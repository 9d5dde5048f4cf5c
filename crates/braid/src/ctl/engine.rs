//! The control plane over braid's engine: requests carried out on an [`Endpoint`], its
//! connections as `braid stat` shows them, and its path-manager events as a monitor shows them.

use super::*;

/// A [`CtlHandler`] over an [`Endpoint`]: endpoint and limit changes take effect on live
/// connections (the endpoint hands them to each connection's path manager), `stat` lists
/// every connection and its subflows, `counters` the endpoint's MIB counters.
pub struct EndpointCtl<'a> {
    pub endpoint: &'a mut Endpoint,
    pub now: Instant,
}

impl CtlHandler for EndpointCtl<'_> {
    fn handle(&mut self, req: Request) -> Response {
        let ep = &mut *self.endpoint;
        let now = self.now;
        let endpoints = |ep: &Endpoint| Response {
            endpoints: Some(
                ep.pm_table()
                    .endpoints()
                    .iter()
                    .map(EndpointSpec::from_endpoint)
                    .collect(),
            ),
            ..Response::ok()
        };
        match req {
            Request::EndpointAdd { endpoint } => {
                let flags = match endpoint.endpoint_flags() {
                    Ok(f) => f,
                    Err(e) => return Response::error(e),
                };
                match ep.endpoint_add(
                    now,
                    endpoint.addr,
                    endpoint.id.map(u32::from),
                    endpoint.port,
                    endpoint.dev.clone(),
                    flags,
                ) {
                    Ok(added) => Response {
                        endpoint: Some(EndpointSpec::from_endpoint(&added)),
                        ..Response::ok()
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::EndpointDelete { id } => match ep.endpoint_delete(now, id) {
                Ok(_) => Response::ok(),
                Err(e) => Response::error(e.to_string()),
            },
            Request::EndpointShow => endpoints(ep),
            Request::EndpointFlush => {
                ep.endpoint_flush(now);
                Response::ok()
            }
            Request::EndpointChange { id, change } => {
                let change = match parse_change(&change) {
                    Ok(c) => c,
                    Err(e) => return Response::error(e),
                };
                match ep.endpoint_change(now, id, change) {
                    Ok(changed) => Response {
                        endpoint: Some(EndpointSpec::from_endpoint(&changed)),
                        ..Response::ok()
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::LimitsSet {
                subflows,
                add_addr_accepted,
            } => {
                let old = ep.pm_table().limits();
                let l = Limits::new(
                    u32::from(subflows.unwrap_or(old.subflows)),
                    u32::from(add_addr_accepted.unwrap_or(old.add_addr_accepted)),
                );
                match l {
                    Ok(l) => {
                        ep.set_limits(now, l);
                        Response {
                            limits: Some(l.into()),
                            ..Response::ok()
                        }
                    }
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::LimitsShow => Response {
                limits: Some(ep.pm_table().limits().into()),
                ..Response::ok()
            },
            Request::Stat => Response {
                connections: Some(connection_stats(ep)),
                ..Response::ok()
            },
            Request::Counters => Response {
                counters: Some(
                    ep.counters()
                        .entries()
                        .iter()
                        .map(|(n, v)| ((*n).to_string(), *v))
                        .collect(),
                ),
                ..Response::ok()
            },
            Request::Monitor => Response::ok(),
        }
    }
}

/// Every connection of `ep` with its subflows, for `stat`.
pub fn connection_stats(ep: &Endpoint) -> Vec<ConnStat> {
    ep.connections()
        .filter_map(|h| ep.snapshot(h))
        .map(|snap| {
            // The subflows of an MPTCP connection, those not closed; none for plain TCP.
            let subflows = if snap.mptcp {
                snap.subflows
                    .iter()
                    .filter(|s| s.state != TcpState::Closed)
                    .map(|s| SubflowStat {
                        local: s.local,
                        remote: s.remote,
                        local_id: s.local_id,
                        remote_id: s.remote_id,
                        backup: s.backup,
                        state: format!("{:?}", s.state),
                        rtt_ms: s.rtt.map(|d| d.as_micros() as f64 / 1000.0),
                        cwnd: s.cwnd as u64,
                        bytes_sent: s.bytes_sent,
                        bytes_acked: s.bytes_acked,
                        bytes_received: s.bytes_received,
                        retransmits: s.retransmits,
                        stale: s.stale,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ConnStat {
                token: snap.local_token,
                local: snap.local,
                remote: snap.remote,
                mptcp: snap.mptcp,
                state: format!("{:?}", snap.state),
                bytes_sent: snap.bytes_sent,
                bytes_acked: snap.bytes_acked,
                bytes_received: snap.bytes_received,
                subflows,
            }
        })
        .collect()
}

/// The monitor events of one path-manager notice, with the kernel's names. The connection's
/// establishment gives `CREATED` and `ESTABLISHED` (the engine reports MPTCP as established
/// once both keys are known, where the kernel reports the two a moment apart).
pub fn monitor_events(n: &PmNotice) -> Vec<MonitorEvent> {
    let with = |kind: &str| {
        let mut e = MonitorEvent::new(kind);
        e.token = Some(n.token);
        e
    };
    match &n.event {
        PmEvent::ConnectionEstablished { local, remote, .. } => ["CREATED", "ESTABLISHED"]
            .iter()
            .map(|k| {
                let mut e = with(k);
                e.local = Some(*local);
                e.remote = Some(*remote);
                e
            })
            .collect(),
        PmEvent::ConnectionClosed => vec![with("CLOSED")],
        PmEvent::AddAddrReceived { id, addr, port } => {
            let mut e = with("ANNOUNCED");
            e.remote_id = Some(*id);
            e.addr = Some(*addr);
            e.port = *port;
            vec![e]
        }
        PmEvent::RemoveAddrReceived { ids } => ids
            .iter()
            .map(|id| {
                let mut e = with("REMOVED");
                e.remote_id = Some(*id);
                e
            })
            .collect(),
        PmEvent::SubflowEstablished { addrs } => {
            let mut e = with("SUB_ESTABLISHED");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            vec![e]
        }
        PmEvent::SubflowClosed { addrs, error } => {
            let mut e = with("SUB_CLOSED");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            e.error = error.map(|err| match err {
                SubflowError::Timeout => "timeout".to_string(),
                SubflowError::Reset(Some(r)) => format!("reset (MP_TCPRST reason {r})"),
                SubflowError::Reset(None) => "reset".to_string(),
                SubflowError::Refused => "refused".to_string(),
            });
            vec![e]
        }
        PmEvent::SubflowPriority { addrs, backup } => {
            let mut e = with("SUB_PRIORITY");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            e.backup = Some(*backup);
            vec![e]
        }
        _ => Vec::new(),
    }
}

/// A `LISTENER_CREATED` or `LISTENER_CLOSED` event.
pub fn listener_event(created: bool, local: SocketAddr) -> MonitorEvent {
    let mut e = MonitorEvent::new(if created {
        "LISTENER_CREATED"
    } else {
        "LISTENER_CLOSED"
    });
    e.local = Some(local);
    e
}

// ---------------------------------------------------------------------- client
