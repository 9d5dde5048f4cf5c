//! braid-sim: a deterministic discrete-event network simulator that carries raw IP packets.
//!
//! # The model
//!
//! A [`Network`] holds [`Node`]s (anything that consumes and produces IP packets as
//! `Vec<u8>`, typically a braid endpoint wrapped in a little glue) and duplex [`Link`]s between
//! node interfaces. Time is virtual: the clock ([`Network::now`], a
//! [`braid_proto::time::Instant`] with microsecond resolution) jumps from one event to the next.
//! Events sit in a binary heap ordered by `(time, sequence number)`, the sequence number being
//! the order in which they were queued, so events at the same instant run first-come
//! first-served and a run is a pure function of the seed and the scenario.
//!
//! There are three kinds of events: a packet arriving at a node, a node's timer, and an
//! action scheduled with [`Network::schedule`] (to cut a link, change its rate, add a
//! middlebox, poke a node at a given time).
//!
//! ## Nodes
//!
//! After every call into a node (`handle_packet`, `handle_timeout`), after it is added, and
//! after it is borrowed through [`Network::node_mut`], the network drains its
//! [`Node::poll_transmit`] until it returns `None` and then re-reads [`Node::poll_timeout`].
//! A node has at most one live timer event: when its deadline moves earlier a new event is
//! queued (the old one goes stale and is skipped), when it moves later the armed event is
//! kept and, on firing, finds the deadline still in the future and re-arms itself. So
//! `handle_timeout` is only called at or after the deadline the node last reported, and
//! never for a deadline the node has withdrawn.
//!
//! A packet sent on an interface with no link is discarded and counted in
//! [`NetworkStats::unrouted`].
//!
//! ## Links
//!
//! Each direction of a link has its own [`LinkConfig`], counters ([`LinkStats`]),
//! middleboxes and random generator (ChaCha8 keyed by the network seed, the link id and the
//! direction, so adding a link never changes the randomness of another). A packet offered to
//! a direction at time `t` goes through, in order:
//!
//! 1. **up**: if the direction is down the packet is dropped (`dropped_down`);
//! 2. **middleboxes**, in the order added: each may rewrite the packet or drop it
//!    (`dropped_middlebox`);
//! 3. **MTU**: a packet longer than `mtu` bytes is dropped (`dropped_mtu`);
//! 4. **queue and serialization** (only when `rate_bps > 0`): the direction serializes one
//!    packet at a time at `rate_bps`, first come first served. The backlog is every byte not
//!    yet fully serialized, including the packet on the wire; if the packet would take it
//!    above `queue_limit_bytes` (0 = unlimited) it is dropped (`dropped_queue`). Otherwise
//!    it finishes serializing at `max(t, end of the previous packet) + len * 8 / rate_bps`.
//!    The serializer keeps time in picoseconds, so back-to-back packets accumulate no
//!    rounding error; the departure instant is rounded *up* to the microsecond;
//! 5. **loss** on the wire (the packet has used its share of the bandwidth): first the
//!    Gilbert–Elliott channel, if any, steps its state (with a `slot`, first once more per
//!    slot of idle time since the last packet's slot) and draws a loss, then the
//!    independent `loss` is drawn; either loses it (`dropped_loss`);
//! 6. **delay**: arrival = departure + `delay` + a uniform draw from `[0, jitter]`;
//! 7. **reordering**: with probability `reorder` the packet is held back by a further
//!    `reorder_delay` (`reordered`), or with `reorder_uniform` by a uniform draw from
//!    `[1 µs, reorder_delay]`, letting later packets overtake it. The hold happens after
//!    serialization, so it never delays the packets behind it. Otherwise, unless
//!    `jitter_reorders` is set, arrival is raised to at least the previous non-held-back
//!    packet's arrival, so jitter alone never reorders (FIFO);
//! 8. **duplication**: with probability `duplicate` a copy (`duplicated`) arrives right
//!    after the original, at the same instant.
//!
//! So a lone packet of `N` bytes sent at `t` on an idle direction arrives at exactly
//! `t + delay + N*8/rate_bps` (rounded up to the microsecond). At arrival the packet is
//! delivered (`delivered_*`) unless the direction is down or went down since the packet
//! was sent ([`Link::set_up`] loses everything queued and in flight), which counts as
//! `dropped_down`. Random draws are made only for features that are enabled, in the order
//! above, so the same scenario and seed always replay the same run.
//!
//! ## Capture
//!
//! [`Network::set_pcap`] installs one [`PcapWriter`] that sees every link: by default each
//! packet as its node sends it ([`CapturePoint::Send`]), or each packet as it is delivered
//! ([`CapturePoint::Deliver`]). Files are classic pcap with `LINKTYPE_RAW`, readable by
//! Wireshark and tshark for IPv4 and IPv6 alike.
//!
//! ## Running
//!
//! [`Network::step`] processes one event; [`Network::run_until`] runs until a predicate holds,
//! a deadline passes or nothing is pending, and guards against livelock at a single instant
//! ([`RunOutcome::Stalled`]).
//!
//! ```
//! use braid_sim::{LinkConfig, Network, Node};
//! use braid_proto::time::{Duration, Instant};
//! # use std::any::Any;
//! # struct Quiet;
//! # impl Node for Quiet {
//! #     fn handle_packet(&mut self, _: Instant, _: usize, _: &[u8]) {}
//! #     fn poll_transmit(&mut self, _: Instant) -> Option<(usize, Vec<u8>)> { None }
//! #     fn poll_timeout(&self) -> Option<Instant> { None }
//! #     fn handle_timeout(&mut self, _: Instant) {}
//! #     fn as_any(&self) -> &dyn Any { self }
//! #     fn as_any_mut(&mut self) -> &mut dyn Any { self }
//! # }
//! let mut net = Network::new(7);
//! let a = net.add_node(Box::new(Quiet));
//! let b = net.add_node(Box::new(Quiet));
//! let path = LinkConfig::new().rate(10_000_000).delay(Duration::from_millis(20)).queue_limit(64 * 1024);
//! let link = net.add_link((a, 0), (b, 0), path.clone(), path);
//! net.schedule(Instant::from_millis(500), Box::new(move |net: &mut Network| net.link_mut(link).set_up(false)));
//! let outcome = net.run_until(Instant::from_millis(1_000), |_| false);
//! assert_eq!(outcome, braid_sim::RunOutcome::Idle);
//! assert_eq!(net.now(), Instant::from_millis(1_000));
//! ```

pub mod compare;
pub mod host;
mod link;
pub mod middlebox;
mod network;
mod pcap;
pub mod plot;
pub mod scenario;
pub mod stream;

pub use link::{Direction, GilbertElliott, Link, LinkConfig, LinkStats, Middlebox, Verdict};
pub use middlebox::{CorruptPayload, Hits, Nat, StripMptcp, StripWhen};
pub use network::{
    CapturePoint, LinkId, Network, NetworkStats, Node, NodeId, RunOutcome, DEFAULT_STALL_LIMIT,
};
pub use pcap::{PcapWriter, DEFAULT_SNAPLEN, LINKTYPE_RAW};
