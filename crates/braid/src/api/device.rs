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

/// One path: a device and braid's own address behind it.
pub struct Path {
    pub device: Box<dyn PacketDevice>,
    pub addr: IpAddr,
}

/// Most address pairs [`Routes`] remembers (the oldest is forgotten first).
const MAX_ROUTES: usize = 64;

/// The device (path index) on which packets from a remote address to a local one last
/// arrived: replies go back the same way.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// (local, remote, path index), most recently changed last.
    entries: Vec<(IpAddr, IpAddr, usize)>,
}

impl Routes {
    pub(crate) fn learn(&mut self, local: IpAddr, remote: IpAddr, index: usize) {
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

    pub(crate) fn lookup(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.0 == local && e.1 == remote)
            .map(|e| e.2)
    }
}

/// The device (path index) a packet from `src` to `dst` leaves by, among devices with
/// braid's addresses `addrs`: the one the peer's packets between the same two addresses
/// arrive on, else the path owning the source address, else the first path (`None`: no
/// path at all).
pub(crate) fn pick(
    routes: &Routes,
    addrs: impl ExactSizeIterator<Item = IpAddr>,
    src: IpAddr,
    dst: IpAddr,
) -> Option<usize> {
    let n = addrs.len();
    if let Some(i) = routes.lookup(src, dst).filter(|&i| i < n) {
        return Some(i);
    }
    let mut addrs = addrs;
    addrs.position(|a| a == src).or((n > 0).then_some(0))
}

/// Source and destination of an IPv4 or IPv6 packet (`None` when too short or neither).
pub(crate) fn ip_addrs(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 => {
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
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
    fn ip_addresses_are_read_from_both_families() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[10, 9, 9, 9]);
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(ip_addrs(&v4), Some((ip("10.9.9.9"), ip("10.0.0.2"))));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        v6[39] = 2;
        assert_eq!(ip_addrs(&v6), Some((ip("::1"), ip("::2"))));
        assert_eq!(ip_addrs(&v6[..39]), None);
        assert_eq!(ip_addrs(&[0x45; 19]), None);
        assert_eq!(ip_addrs(&[0x55; 40]), None);
        assert_eq!(ip_addrs(&[]), None);
        let mut r = Routes::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        r.learn(a, b, 1);
        r.learn(a, b, 2);
        assert_eq!(r.lookup(a, b), Some(2));
        assert_eq!(r.lookup(b, a), None);
        for i in 0..MAX_ROUTES as u8 {
            r.learn(IpAddr::from([192, 0, 2, i]), b, 0);
        }
        assert_eq!(r.entries.len(), MAX_ROUTES);
        assert_eq!(r.lookup(a, b), None, "the oldest pair was forgotten");
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
        let (ours, peer) = (ip("10.0.0.2"), ip("10.9.9.9"));
        // The peer 10.9.9.9 reaches braid's 10.0.0.2 through the second device (the driver
        // learns (destination, source) of each packet it reads).
        let mut r = Routes::default();
        let mut packet = [0u8; 20];
        packet[0] = 0x45;
        packet[12..16].copy_from_slice(&[10, 9, 9, 9]);
        packet[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let (src, dst) = ip_addrs(&packet).unwrap();
        r.learn(dst, src, 1);
        assert_eq!(
            pick(&r, addrs.into_iter(), ours, peer),
            Some(1),
            "learned: back through the second device"
        );
        assert_eq!(pick(&r, addrs.into_iter(), ip("10.1.0.2"), peer), Some(1));
        // Another peer of the same address: by the source address again.
        assert_eq!(pick(&r, addrs.into_iter(), ours, ip("10.9.9.8")), Some(0));
        // A learned device that is no more: by the source address.
        r.learn(ours, peer, 5);
        assert_eq!(pick(&r, addrs.into_iter(), ours, peer), Some(0));
    }

    #[test]
    fn packets_leave_by_the_path_of_their_source() {
        let r = Routes::default();
        let addrs = [ip("10.0.0.2"), ip("10.1.0.2")];
        let dst = ip("10.9.9.9");
        assert_eq!(pick(&r, addrs.into_iter(), ip("10.0.0.2"), dst), Some(0));
        assert_eq!(pick(&r, addrs.into_iter(), ip("10.1.0.2"), dst), Some(1));
        // A source no path owns leaves by the first path.
        assert_eq!(pick(&r, addrs.into_iter(), ip("192.0.2.1"), dst), Some(0));
        // No path: nowhere.
        assert_eq!(pick(&r, std::iter::empty(), ip("10.0.0.2"), dst), None);
    }
}
