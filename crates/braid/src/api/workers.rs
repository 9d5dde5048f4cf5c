//! Several workers ([`Builder::workers`](super::Builder::workers)): each a thread with its
//! own driver, its own engine and its own queue of every path's device, serving its share
//! of the connections.
//!
//! The kernel hands a TUN device's packets to the queue that last wrote a packet of the
//! same flow, else to one its hash of the flow picks: a connection's packets reach the
//! worker that sends them, and a new connection's SYN the worker that then owns it. What
//! reaches another worker (an MP_JOIN SYN, whose token names its worker; a flow the kernel
//! forgot after a few idle seconds) is handed over through the owner's [`Mailbox`](super::mailbox::Mailbox): the
//! engine says where it goes (`braid_proto::Endpoint::handle_packet_sharded`), and no
//! table is shared. The control plane is served by the first worker, which carries
//! changes out on every worker's engine and adds their connections and counters up; the
//! others send it their monitor events.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use braid_proto::Handoff;

use super::mailbox::{Mailbox, Passed};
use super::state::Shared;
use crate::ctl::{CtlHandler, EndpointCtl, MonitorEvent, Request, Response};

/// A worker's view of all workers.
pub(crate) struct Peers {
    pub index: usize,
    pub shards: Arc<[Arc<Shared>]>,
    /// The first worker serves a control socket: the others send it their events.
    pub ctl: bool,
}

impl Peers {
    pub fn count(&self) -> usize {
        self.shards.len()
    }

    /// Whether a packet that `passed` workers passed on is at the last worker of its
    /// round.
    pub fn last(&self, passed: u8) -> bool {
        usize::from(passed) + 1 >= self.count()
    }

    /// Sends a packet this worker does not take where the engine said.
    pub fn hand_off(&self, to: Handoff, iface: usize, passed: u8, packet: &[u8]) {
        let (k, passed) = match to {
            Handoff::To(k) => (usize::from(k), passed),
            Handoff::Next => ((self.index + 1) % self.count(), passed.saturating_add(1)),
        };
        let Some(shard) = self.shards.get(k) else {
            return;
        };
        Mailbox::put(&shard.mailbox, |m| {
            m.packets.push(Passed {
                iface,
                passed,
                packet: packet.to_vec(),
            })
        });
    }

    /// Says whether this worker is `done` (nothing left to serve) and whether every
    /// worker is: a worker that is done keeps reading its queues for the others until all
    /// are. The last to be done wakes the others, which then end too.
    pub fn finished(&self, done: bool) -> bool {
        let me = &self.shards[self.index];
        let was = me.done.swap(done, Ordering::SeqCst);
        let all = self.shards.iter().all(|s| s.done.load(Ordering::SeqCst));
        if all && !was {
            for (i, s) in self.shards.iter().enumerate() {
                if i != self.index {
                    Mailbox::wake(&s.mailbox);
                }
            }
        }
        all
    }

    /// Sends monitor events to the first worker, which publishes them.
    pub fn publish(&self, events: Vec<MonitorEvent>) {
        if events.is_empty() || !self.ctl {
            return;
        }
        if let Some(first) = self.shards.first() {
            Mailbox::put(&first.mailbox, |m| m.events.extend(events));
        }
    }
}

/// The control plane over every worker's engine (served by the first worker, whose engine
/// `own` is): changes are carried out on each (an endpoint added without an id gets the
/// first worker's choice everywhere), `stat` lists every worker's connections and
/// `counters` adds their counters up.
pub(crate) struct ShardCtl<'a> {
    pub own: EndpointCtl<'a>,
    pub others: &'a [Arc<Shared>],
}

impl ShardCtl<'_> {
    fn on_others(&self, req: &Request) -> Vec<Response> {
        self.others
            .iter()
            .map(|o| {
                let mut st = o.lock();
                let now = st.now();
                let r = EndpointCtl {
                    endpoint: &mut st.ep,
                    now,
                }
                .handle(req.clone());
                st.wake_driver();
                r
            })
            .collect()
    }
}

impl CtlHandler for ShardCtl<'_> {
    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Stat => {
                let mut r = self.own.handle(Request::Stat);
                for o in self.on_others(&Request::Stat) {
                    if let (Some(all), Some(more)) = (r.connections.as_mut(), o.connections) {
                        all.extend(more);
                    }
                }
                r
            }
            Request::Counters => {
                let mut r = self.own.handle(Request::Counters);
                for o in self.on_others(&Request::Counters) {
                    if let (Some(all), Some(more)) = (r.counters.as_mut(), o.counters) {
                        add_counters(all, more);
                    }
                }
                r
            }
            Request::EndpointAdd { mut endpoint } => {
                let r = self.own.handle(Request::EndpointAdd {
                    endpoint: endpoint.clone(),
                });
                if r.ok {
                    endpoint.id = r.endpoint.as_ref().and_then(|e| e.id).or(endpoint.id);
                    self.on_others(&Request::EndpointAdd { endpoint });
                }
                r
            }
            req @ (Request::EndpointDelete { .. }
            | Request::EndpointFlush
            | Request::EndpointChange { .. }
            | Request::LimitsSet { .. }) => {
                let r = self.own.handle(req.clone());
                if r.ok {
                    self.on_others(&req);
                }
                r
            }
            req => self.own.handle(req),
        }
    }
}

fn add_counters(all: &mut BTreeMap<String, u64>, more: BTreeMap<String, u64>) {
    for (name, v) in more {
        *all.entry(name).or_insert(0) += v;
    }
}

/// Runs `start` on a thread of its own with a current-thread tokio runtime: it builds the
/// worker's driver (registering its devices with that runtime's reactor), whose outcome
/// is returned here, and the thread then drives it until the worker is done.
pub(crate) fn spawn<D, F>(index: usize, start: F) -> io::Result<()>
where
    D: std::future::Future<Output = ()> + 'static,
    F: FnOnce() -> io::Result<D> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("braid-worker{index}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match start() {
                    Ok(driver) => {
                        let _ = tx.send(Ok(()));
                        driver.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("a worker thread ended as it started")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::state::State;
    use crate::ctl::EndpointSpec;

    fn shard(i: u16) -> Arc<Shared> {
        let config = braid_proto::EndpointConfig {
            shard: braid_proto::Shard::new(i, 2).unwrap_or_default(),
            ..Default::default()
        };
        let ep = braid_proto::Endpoint::new(config, [i as u8 + 1; 32]);
        Arc::new(Shared::new(State::new(ep, true, Vec::new())))
    }

    fn endpoints(s: &Shared) -> Vec<(u8, std::net::IpAddr)> {
        s.lock()
            .ep
            .pm_table()
            .endpoints()
            .iter()
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// The first worker's control plane carries changes out on every worker's engine (an
    /// endpoint added without an id gets the same id everywhere) and answers for all.
    #[test]
    fn the_control_plane_speaks_for_every_worker() {
        let (a, b) = (shard(0), shard(1));
        let others = [b.clone()];
        let mut st = a.lock();
        let now = st.now();
        let mut ctl = ShardCtl {
            own: EndpointCtl {
                endpoint: &mut st.ep,
                now,
            },
            others: &others,
        };
        let spec = EndpointSpec {
            id: None,
            addr: "10.1.0.2".parse().unwrap(),
            port: None,
            dev: None,
            flags: vec!["signal".into()],
        };
        let r = ctl.handle(Request::EndpointAdd { endpoint: spec });
        assert!(r.ok, "{r:?}");
        let id = r.endpoint.and_then(|e| e.id).expect("an id");
        let r = ctl.handle(Request::LimitsSet {
            subflows: Some(5),
            add_addr_accepted: None,
        });
        assert!(r.ok, "{r:?}");
        let r = ctl.handle(Request::Counters);
        assert!(r.counters.is_some_and(|c| c.contains_key("MPJoinAckRx")));
        let r = ctl.handle(Request::Stat);
        assert_eq!(r.connections.map(|c| c.len()), Some(0));
        drop(st);
        let want = vec![(id, "10.1.0.2".parse().unwrap())];
        assert_eq!(endpoints(&a), want);
        assert_eq!(endpoints(&b), want, "worker 1 has it under the same id");
        assert_eq!(b.lock().ep.pm_table().limits().subflows, 5);
    }

    /// Packets handed over reach the owner's mailbox in order, and the owner is woken
    /// once for a batch; monitor events go to the first worker only when it has a
    /// control socket.
    #[test]
    fn mailboxes_keep_order_and_events_go_to_the_first_worker() {
        let shards: Arc<[Arc<Shared>]> = vec![shard(0), shard(1)].into();
        let peers = Peers {
            index: 1,
            shards: shards.clone(),
            ctl: true,
        };
        let waker = std::task::Waker::noop();
        let (mut packets, mut events) = (Vec::new(), Vec::new());
        Mailbox::take(&shards[0].mailbox, waker, &mut packets, &mut events);
        peers.hand_off(Handoff::Next, 1, 0, b"first");
        peers.hand_off(Handoff::To(0), 0, 0, b"second");
        peers.publish(vec![MonitorEvent::new("CREATED")]);
        Mailbox::take(&shards[0].mailbox, waker, &mut packets, &mut events);
        let got: Vec<(usize, u8, &[u8])> = packets
            .iter()
            .map(|p| (p.iface, p.passed, p.packet.as_slice()))
            .collect();
        assert_eq!(got, vec![(1, 1, &b"first"[..]), (0, 0, &b"second"[..])]);
        assert_eq!(events.len(), 1);
        assert!(peers.last(1) && !peers.last(0));
        let quiet = Peers {
            ctl: false,
            ..peers
        };
        quiet.publish(vec![MonitorEvent::new("CREATED")]);
        events.clear();
        Mailbox::take(&shards[0].mailbox, waker, &mut packets, &mut events);
        assert!(events.is_empty());
    }

    #[test]
    fn counters_of_workers_add_up() {
        let mut a: BTreeMap<String, u64> = [("MPCapableSYNRX".into(), 2)].into();
        let b: BTreeMap<String, u64> = [("MPCapableSYNRX".into(), 3), ("RmAddr".into(), 1)].into();
        add_counters(&mut a, b);
        assert_eq!(a["MPCapableSYNRX"], 5);
        assert_eq!(a["RmAddr"], 1);
    }
}
