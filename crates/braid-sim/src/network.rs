//! The event loop: nodes, links, the event queue and the clock.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use braid_proto::time::Instant;

use crate::link::{Direction, Link, LinkConfig, Offer};
use crate::pcap::PcapWriter;

/// A simulated host or router: anything that consumes and produces raw IP packets.
///
/// The network calls `handle_packet` when a packet arrives on one of the node's interfaces
/// and `handle_timeout` when the deadline the node last reported through `poll_timeout` has
/// passed. After every such call (and after the node is added or borrowed mutably through
/// [`Network::node_mut`]) the network drains `poll_transmit` until it returns `None`, sending
/// each packet on the link attached to the given interface, and then re-reads `poll_timeout`.
pub trait Node {
    /// A packet arrived on interface `iface` at `now`.
    fn handle_packet(&mut self, now: Instant, iface: usize, packet: &[u8]);
    /// The next packet to send, with the interface to send it on.
    fn poll_transmit(&mut self, now: Instant) -> Option<(usize, Vec<u8>)>;
    /// When the node next wants `handle_timeout` called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The deadline reported by `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// For [`Network::node`]: `self`.
    fn as_any(&self) -> &dyn Any;
    /// For [`Network::node_mut`]: `self`.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A node's index in its [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A link's index in its [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub usize);

/// Why [`Network::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The stop predicate returned true; the clock is where that happened.
    Stopped,
    /// The next event lies after the deadline; the clock was advanced to the deadline.
    DeadlineReached,
    /// Nothing is pending any more; the clock was advanced to the deadline.
    Idle,
    /// More events than the stall limit happened at one instant without the clock moving:
    /// almost certainly a node that keeps asking for a timeout in the past, or two nodes
    /// bouncing packets over zero-delay links forever. See [`Network::set_stall_limit`].
    Stalled,
}

/// Where the network's pcap writer sees packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CapturePoint {
    /// Every packet a node sends on a linked interface, as sent, at the time it is sent
    /// (like `tcpdump` on the sender's interface): it includes packets the link then drops
    /// and shows them before any middlebox rewrote them.
    #[default]
    Send,
    /// Every packet handed to a node, as delivered (after middleboxes), at its arrival time
    /// (like `tcpdump` on the receiver's interface).
    Deliver,
}

enum EventKind {
    Deliver {
        link: usize,
        dir: Direction,
        epoch: u64,
        packet: Vec<u8>,
    },
    Timer {
        node: usize,
        generation: u64,
    },
    Action(Box<dyn FnOnce(&mut Network)>),
}

struct Event {
    at: Instant,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct NodeSlot {
    node: Box<dyn Node>,
    /// Interface index → the link attached to it and the direction it sends in.
    ifaces: Vec<Option<(usize, Direction)>>,
    /// The time of the one timer event that is valid for this node, if any.
    armed: Option<Instant>,
    /// Timer events carry the generation they were armed with; older ones are stale.
    generation: u64,
    /// Queued for a drain-and-rearm before the next event.
    dirty: bool,
}

/// Counters that belong to no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkStats {
    /// Events processed.
    pub events: u64,
    /// Packets sent on an interface with no link attached (discarded).
    pub unrouted: u64,
    /// `handle_timeout` calls made.
    pub timeouts: u64,
}

/// The default for [`Network::set_stall_limit`].
pub const DEFAULT_STALL_LIMIT: u64 = 10_000_000;

/// A deterministic discrete-event network of [`Node`]s joined by [`Link`]s.
pub struct Network {
    seed: u64,
    now: Instant,
    seq: u64,
    events: BinaryHeap<Event>,
    nodes: Vec<NodeSlot>,
    links: Vec<Link>,
    dirty: Vec<usize>,
    pcap: Option<PcapWriter>,
    capture: CapturePoint,
    stats: NetworkStats,
    stall_limit: u64,
}

impl Network {
    /// An empty network at time zero whose randomness all derives from `seed`.
    pub fn new(seed: u64) -> Self {
        Network {
            seed,
            now: Instant::ZERO,
            seq: 0,
            events: BinaryHeap::new(),
            nodes: Vec::new(),
            links: Vec::new(),
            dirty: Vec::new(),
            pcap: None,
            capture: CapturePoint::Send,
            stats: NetworkStats::default(),
            stall_limit: DEFAULT_STALL_LIMIT,
        }
    }

    /// The seed given to [`Network::new`].
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The simulated clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Counters that belong to no link.
    pub fn stats(&self) -> &NetworkStats {
        &self.stats
    }

    /// How many events are queued (including stale timer events).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The time of the next queued event.
    pub fn next_event_time(&self) -> Option<Instant> {
        self.events.peek().map(|e| e.at)
    }

    /// Adds a node; it is polled for output and a timer before the next event.
    pub fn add_node(&mut self, node: Box<dyn Node>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(NodeSlot {
            node,
            ifaces: Vec::new(),
            armed: None,
            generation: 0,
            dirty: false,
        });
        self.mark_dirty(id);
        NodeId(id)
    }

    /// How many nodes there are.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A node, if `id` exists and the node is a `T`.
    pub fn node<T: 'static>(&self, id: NodeId) -> Option<&T> {
        self.nodes.get(id.0)?.node.as_any().downcast_ref()
    }

    /// A node, mutably, if `id` exists and the node is a `T`. The node is polled for output
    /// and its timer re-read before the next event, so changes made through this borrow (such
    /// as starting a connection) take effect at the current time.
    pub fn node_mut<T: 'static>(&mut self, id: NodeId) -> Option<&mut T> {
        if id.0 >= self.nodes.len() {
            return None;
        }
        self.mark_dirty(id.0);
        self.nodes.get_mut(id.0)?.node.as_any_mut().downcast_mut()
    }

    /// A duplex link between `(a, a_iface)` and `(b, b_iface)`; `ab` configures a→b, `ba`
    /// b→a. Its randomness derives from the network seed and the link's id.
    ///
    /// # Panics
    ///
    /// If either node does not exist or either interface already has a link: both are
    /// mistakes in the scenario's code, not conditions a run can meet.
    pub fn add_link(
        &mut self,
        a: (NodeId, usize),
        b: (NodeId, usize),
        ab: LinkConfig,
        ba: LinkConfig,
    ) -> LinkId {
        let id = self.links.len();
        for ((node, iface), dir) in [(a, Direction::AtoB), (b, Direction::BtoA)] {
            let Some(slot) = self.nodes.get_mut(node.0) else {
                panic!("add_link: no node {node:?}");
            };
            if slot.ifaces.len() <= iface {
                slot.ifaces.resize(iface + 1, None);
            }
            if let Some(Some((other, _))) = slot.ifaces.get(iface) {
                panic!("add_link: interface {iface} of {node:?} already has link {other}");
            }
            if let Some(entry) = slot.ifaces.get_mut(iface) {
                *entry = Some((id, dir));
            }
        }
        self.links.push(Link::new(self.seed, id, a, b, ab, ba));
        LinkId(id)
    }

    /// How many links there are.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// A link. Panics if `id` was not returned by this network's `add_link`.
    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id.0]
    }

    /// A link, mutably. Panics if `id` was not returned by this network's `add_link`.
    pub fn link_mut(&mut self, id: LinkId) -> &mut Link {
        &mut self.links[id.0]
    }

    /// The link attached to a node's interface and the direction the node sends in.
    pub fn link_at(&self, node: NodeId, iface: usize) -> Option<(LinkId, Direction)> {
        let (link, dir) = (*self.nodes.get(node.0)?.ifaces.get(iface)?)?;
        Some((LinkId(link), dir))
    }

    /// Runs `action` on the network at time `at` (or now, if `at` has passed). Actions at
    /// the same instant as other events run in the order they were scheduled relative to them.
    pub fn schedule(&mut self, at: Instant, action: Box<dyn FnOnce(&mut Network)>) {
        let at = at.max(self.now);
        self.push(at, EventKind::Action(action));
    }

    /// Captures packets into `w` from now on, at the [`CapturePoint`] set with
    /// [`Network::set_capture_point`] (by default, as sent). One writer sees every link;
    /// replacing it returns nothing, so take the old one first with [`Network::take_pcap`]
    /// if its errors matter.
    pub fn set_pcap(&mut self, w: PcapWriter) {
        self.pcap = Some(w);
    }

    /// Chooses where packets are captured.
    pub fn set_capture_point(&mut self, point: CapturePoint) {
        self.capture = point;
    }

    /// Stops capturing and returns the writer; call [`PcapWriter::finish`] on it.
    pub fn take_pcap(&mut self) -> Option<PcapWriter> {
        self.pcap.take()
    }

    /// Sets how many events may happen at a single instant before [`Network::run_until`]
    /// gives up with [`RunOutcome::Stalled`] (default [`DEFAULT_STALL_LIMIT`]).
    pub fn set_stall_limit(&mut self, events: u64) {
        self.stall_limit = events.max(1);
    }

    /// Processes the next event (after polling nodes changed through `node_mut` or added
    /// since the last step). Returns false, doing nothing else, when nothing is pending.
    pub fn step(&mut self) -> bool {
        self.flush_dirty();
        let Some(event) = self.events.pop() else {
            return false;
        };
        self.now = self.now.max(event.at);
        self.stats.events += 1;
        match event.kind {
            EventKind::Deliver {
                link,
                dir,
                epoch,
                packet,
            } => self.deliver(link, dir, epoch, packet),
            EventKind::Timer { node, generation } => self.fire_timer(node, generation),
            EventKind::Action(action) => action(self),
        }
        true
    }

    /// Processes events until `stop` returns true (checked before the first event and after
    /// each one), the next event lies after `deadline`, or nothing is pending.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut stop: impl FnMut(&mut Network) -> bool,
    ) -> RunOutcome {
        let mut same_instant = 0u64;
        let mut last = self.now;
        loop {
            if stop(self) {
                return RunOutcome::Stopped;
            }
            self.flush_dirty();
            match self.next_event_time() {
                None => {
                    self.now = self.now.max(deadline);
                    return RunOutcome::Idle;
                }
                Some(at) if at > deadline => {
                    self.now = self.now.max(deadline);
                    return RunOutcome::DeadlineReached;
                }
                Some(at) => {
                    if at == last {
                        same_instant += 1;
                        if same_instant > self.stall_limit {
                            return RunOutcome::Stalled;
                        }
                    } else {
                        last = at;
                        same_instant = 0;
                    }
                }
            }
            self.step();
        }
    }

    fn push(&mut self, at: Instant, kind: EventKind) {
        let seq = self.seq;
        self.seq += 1;
        self.events.push(Event { at, seq, kind });
    }

    fn mark_dirty(&mut self, node: usize) {
        if let Some(slot) = self.nodes.get_mut(node) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(node);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let batch = std::mem::take(&mut self.dirty);
            for node in batch {
                if let Some(slot) = self.nodes.get_mut(node) {
                    slot.dirty = false;
                }
                self.after_call(node);
            }
        }
    }

    /// Drains a node's output and re-reads its timer.
    fn after_call(&mut self, node: usize) {
        let now = self.now;
        loop {
            let Some(slot) = self.nodes.get_mut(node) else {
                return;
            };
            let Some((iface, packet)) = slot.node.poll_transmit(now) else {
                break;
            };
            self.transmit(node, iface, packet);
        }
        self.rearm(node);
    }

    fn rearm(&mut self, node: usize) {
        let now = self.now;
        let Some(slot) = self.nodes.get_mut(node) else {
            return;
        };
        let Some(deadline) = slot.node.poll_timeout() else {
            return;
        };
        let at = deadline.max(now);
        // An armed event at or before the deadline will re-arm itself when it fires.
        if slot.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        slot.generation += 1;
        slot.armed = Some(at);
        let generation = slot.generation;
        self.push(at, EventKind::Timer { node, generation });
    }

    fn fire_timer(&mut self, node: usize, generation: u64) {
        let now = self.now;
        let Some(slot) = self.nodes.get_mut(node) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        slot.armed = None;
        match slot.node.poll_timeout() {
            Some(deadline) if deadline <= now => {
                slot.node.handle_timeout(now);
                self.stats.timeouts += 1;
                self.after_call(node);
            }
            Some(_) => self.rearm(node),
            None => {}
        }
    }

    fn transmit(&mut self, node: usize, iface: usize, packet: Vec<u8>) {
        let route = self
            .nodes
            .get(node)
            .and_then(|slot| slot.ifaces.get(iface).copied().flatten());
        let Some((link, dir)) = route else {
            self.stats.unrouted += 1;
            return;
        };
        let now = self.now;
        if self.capture == CapturePoint::Send {
            if let Some(w) = &mut self.pcap {
                w.record(now, &packet);
            }
        }
        let Some(l) = self.links.get_mut(link) else {
            self.stats.unrouted += 1;
            return;
        };
        let d = &mut l.dirs[dir.index()];
        let epoch = d.epoch;
        if let Offer::Deliver {
            packet,
            arrival,
            duplicate,
        } = d.offer(now, packet)
        {
            if duplicate {
                let copy = packet.clone();
                self.push(
                    arrival,
                    EventKind::Deliver {
                        link,
                        dir,
                        epoch,
                        packet,
                    },
                );
                self.push(
                    arrival,
                    EventKind::Deliver {
                        link,
                        dir,
                        epoch,
                        packet: copy,
                    },
                );
            } else {
                self.push(
                    arrival,
                    EventKind::Deliver {
                        link,
                        dir,
                        epoch,
                        packet,
                    },
                );
            }
        }
    }

    fn deliver(&mut self, link: usize, dir: Direction, epoch: u64, packet: Vec<u8>) {
        let now = self.now;
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let (NodeId(node), iface) = l.receiver(dir);
        let d = &mut l.dirs[dir.index()];
        if !d.config.up || d.epoch != epoch {
            d.stats.dropped_down += 1;
            return;
        }
        d.stats.delivered_packets += 1;
        d.stats.delivered_bytes += packet.len() as u64;
        if self.capture == CapturePoint::Deliver {
            if let Some(w) = &mut self.pcap {
                w.record(now, &packet);
            }
        }
        let Some(slot) = self.nodes.get_mut(node) else {
            return;
        };
        slot.node.handle_packet(now, iface, &packet);
        drop(packet);
        self.after_call(node);
    }
}

impl core::fmt::Debug for Network {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Network")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("links", &self.links)
            .field("pending_events", &self.events.len())
            .field("stats", &self.stats)
            .finish()
    }
}
