//! Which interface a reply leaves by: the one the peer's packets between the same two
//! addresses last arrived on ([`Endpoint::handle_packet_on`](super::Endpoint::handle_packet_on)).

use core::net::IpAddr;

/// Most address pairs [`Routes`] remembers (the oldest is forgotten first).
const MAX_ROUTES: usize = 64;

/// The interface on which packets from a remote address to a local one last arrived
/// (as the driver numbers its devices): replies go back the same way. A peer may bind a
/// subflow to a device whatever its destination, as Linux does for an endpoint with `dev`.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// (local, remote, path index), most recently changed last.
    entries: Vec<(IpAddr, IpAddr, usize)>,
}

impl Routes {
    pub(super) fn learn(&mut self, local: IpAddr, remote: IpAddr, index: usize) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.0 == local && e.1 == remote)
        {
            e.2 = index;
            return;
        }
        if self.entries.len() == MAX_ROUTES {
            self.entries.remove(0);
        }
        self.entries.push((local, remote, index));
    }

    pub(super) fn lookup(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.0 == local && e.1 == remote)
            .map(|e| e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_latest_interface_of_an_address_pair_is_remembered_and_the_oldest_forgotten() {
        let mut r = Routes::default();
        r.learn(ip("10.0.0.2"), ip("10.9.9.9"), 1);
        assert_eq!(r.lookup(ip("10.0.0.2"), ip("10.9.9.9")), Some(1));
        assert_eq!(r.lookup(ip("10.0.0.2"), ip("10.9.9.8")), None);
        r.learn(ip("10.0.0.2"), ip("10.9.9.9"), 0);
        assert_eq!(r.lookup(ip("10.0.0.2"), ip("10.9.9.9")), Some(0));
        for i in 0..MAX_ROUTES {
            r.learn(ip("10.0.0.3"), IpAddr::from([192, 0, 2, i as u8]), 2);
        }
        assert_eq!(
            r.lookup(ip("10.0.0.2"), ip("10.9.9.9")),
            None,
            "the oldest went"
        );
        assert_eq!(r.lookup(ip("10.0.0.3"), ip("192.0.2.1")), Some(2));
    }
}
