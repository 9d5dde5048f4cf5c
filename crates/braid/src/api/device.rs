//! Packet devices: what carries braid's IP packets (a TUN device per path, or a datagram
//! socket in tests), and which device a packet leaves by.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::health::DeviceState;
use crate::tun::TunDevice;

/// A device that carries whole IP packets and can be waited on with `poll`.
pub trait PacketDevice: AsRawFd {
    fn name(&self) -> &str;
    /// One packet into `buf`; `Ok(None)` when nothing is pending.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// One packet out; `Ok(false)` when the device dropped it for lack of room.
    fn send(&self, packet: &[u8]) -> io::Result<bool>;
    /// Bytes to leave free before each packet given to [`PacketDevice::send_batch`].
    fn headroom(&self) -> usize {
        0
    }
    /// Packets out, each after [`PacketDevice::headroom`] free bytes (a device with
    /// offloads may coalesce a flow's segments); how many the device took.
    fn send_batch(&self, packets: &mut [Vec<u8>]) -> io::Result<usize> {
        let head = self.headroom();
        let mut sent = 0;
        for p in packets.iter() {
            sent += usize::from(self.send(p.get(head..).unwrap_or_default())?);
        }
        Ok(sent)
    }
    /// Whether the device coalesces and splits segments (GSO/GRO through offloads).
    fn offloads(&self) -> bool {
        false
    }
    /// How many packets the device holds for braid to read before it drops, when known.
    fn queue_len(&self) -> Option<usize> {
        None
    }
    /// Whether the device can carry packets, as far as it can tell (see [`crate::health`]).
    fn state(&self) -> DeviceState {
        DeviceState {
            link: None,
            created: false,
        }
    }
}

impl PacketDevice for TunDevice {
    fn name(&self) -> &str {
        TunDevice::name(self)
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        TunDevice::recv(self, buf)
    }
    fn send(&self, packet: &[u8]) -> io::Result<bool> {
        TunDevice::send(self, packet)
    }
    fn headroom(&self) -> usize {
        TunDevice::headroom(self)
    }
    fn send_batch(&self, packets: &mut [Vec<u8>]) -> io::Result<usize> {
        TunDevice::send_batch(self, packets)
    }
    fn offloads(&self) -> bool {
        TunDevice::offloads(self)
    }
    fn queue_len(&self) -> Option<usize> {
        self.tx_queue_len()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
    }
    fn state(&self) -> DeviceState {
        DeviceState {
            link: crate::linkwatch::link_state(self.name()).ok().flatten(),
            created: self.created(),
        }
    }
}

/// A connected, non-blocking datagram socket pair end works as a packet device: tests join
/// two runtimes with one without needing TUN devices or privileges.
impl PacketDevice for std::os::unix::net::UnixDatagram {
    fn name(&self) -> &str {
        "unix-datagram"
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match std::os::unix::net::UnixDatagram::recv(self, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn send(&self, packet: &[u8]) -> io::Result<bool> {
        match std::os::unix::net::UnixDatagram::send(self, packet) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            // The peer end went away (ECONNREFUSED on the first send after that, ENOTCONN on
            // the next ones): nothing can be delivered, like a link that is down. A runtime
            // that finished first (a server with `once`) must not fail the other's last
            // packets.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The device (path index) a packet leaves by, among devices with braid's addresses
/// `addrs`: the one the peer's packets between the same two addresses arrive on (the
/// engine's `Transmit::iface`, learned by `Endpoint::handle_packet_on`), else the path owning
/// the source address, else the first path (`None`: no path at all).
pub(crate) fn pick(
    iface: Option<usize>,
    addrs: impl ExactSizeIterator<Item = IpAddr>,
    src: IpAddr,
) -> Option<usize> {
    let n = addrs.len();
    if let Some(i) = iface.filter(|&i| i < n) {
        return Some(i);
    }
    let mut addrs = addrs;
    addrs.position(|a| a == src).or((n > 0).then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dgram_pair() -> (UnixDatagram, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_datagram_device_whose_peer_is_gone_drops_packets() {
        let (a, b) = dgram_pair();
        drop(b);
        // ECONNREFUSED first, ENOTCONN after: both are a link that is down, not an error
        // that ends the run.
        for _ in 0..3 {
            assert!(!PacketDevice::send(&a, b"packet").unwrap());
        }
    }

    #[test]
    fn a_datagram_device_says_when_nothing_is_pending_and_when_it_is_full() {
        let (a, b) = dgram_pair();
        let mut buf = [0u8; 16];
        assert_eq!(PacketDevice::recv(&a, &mut buf).unwrap(), None);
        assert!(PacketDevice::send(&b, b"one").unwrap());
        assert_eq!(PacketDevice::recv(&a, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        // A peer that does not read: the socket fills, and packets are dropped, not failed.
        let mut sent = 0;
        while PacketDevice::send(&b, &[0u8; 1000]).unwrap() {
            sent += 1;
            assert!(sent < 1_000_000, "the socket never filled");
        }
        assert!(!PacketDevice::send(&b, b"more").unwrap());
    }

    #[test]
    fn replies_leave_by_the_device_the_peer_used_for_the_same_addresses() {
        let addrs = [ip("10.0.0.2"), ip("10.1.0.2")];
        let ours = ip("10.0.0.2");
        // The engine learned that the peer reaches 10.0.0.2 through the second device.
        assert_eq!(pick(Some(1), addrs.into_iter(), ours), Some(1));
        // Nothing learned: by the source address.
        assert_eq!(pick(None, addrs.into_iter(), ours), Some(0));
        // A learned device that is no more: by the source address.
        assert_eq!(pick(Some(5), addrs.into_iter(), ours), Some(0));
    }

    #[test]
    fn packets_leave_by_the_path_of_their_source() {
        let addrs = [ip("10.0.0.2"), ip("10.1.0.2")];
        assert_eq!(pick(None, addrs.into_iter(), ip("10.0.0.2")), Some(0));
        assert_eq!(pick(None, addrs.into_iter(), ip("10.1.0.2")), Some(1));
        // A source no path owns leaves by the first path.
        assert_eq!(pick(None, addrs.into_iter(), ip("192.0.2.1")), Some(0));
        // No path: nowhere.
        assert_eq!(pick(None, std::iter::empty(), ip("10.0.0.2")), None);
    }
}
