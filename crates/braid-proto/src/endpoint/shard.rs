//! One endpoint among several that share the host's addresses: a worker's share of the
//! connections (`EndpointConfig::shard`).
//!
//! A driver with several workers gives each its own [`Endpoint`](super::Endpoint); packets
//! arrive at whichever worker the device's queue belongs to. A worker's endpoint tells
//! apart what it owns from what another owns without any shared table:
//! - the ephemeral ports it picks are its own (`port % count == index`), so two workers
//!   never open the same 4-tuple;
//! - the MPTCP tokens it draws are its own (`token % count == index`): an MP_JOIN SYN names
//!   its worker;
//! - a SYN for a listener is taken by the worker that reads it; any other segment for no
//!   connection of its own is handed on to the next worker, and only the last one on that
//!   round answers it with a RST.

/// Which share of the connections an endpoint serves: `index` of `count` workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u16,
    pub count: u16,
}

impl Default for Shard {
    /// The only worker: everything is its own.
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Worker `index` of `count` (`None` unless `index < count`).
    pub fn new(index: u16, count: u16) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// The worker whose share a number (a port, a token) falls into.
    pub fn owner_of(&self, n: u32) -> u16 {
        (n % u32::from(self.count.max(1))) as u16
    }

    /// Whether a number falls into this worker's share.
    pub fn owns(&self, n: u32) -> bool {
        self.count <= 1 || self.owner_of(n) == self.index
    }
}

/// Where a packet this endpoint does not take goes
/// ([`Endpoint::handle_packet_sharded`](super::Endpoint::handle_packet_sharded)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// To the worker of that index (an MP_JOIN SYN with its token).
    To(u16),
    /// To the next worker on the round (a segment of no connection here: another worker
    /// may own it).
    Next,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_numbers_between_workers() {
        let one = Shard::default();
        assert!(one.owns(7) && one.owns(0));
        let a = Shard::new(0, 2).unwrap();
        let b = Shard::new(1, 2).unwrap();
        for n in [0u32, 1, 49152, 65535, u32::MAX] {
            assert_ne!(a.owns(n), b.owns(n), "{n}");
            assert_eq!(a.owner_of(n), b.owner_of(n));
        }
        assert_eq!(Shard::new(2, 2), None);
    }
}
