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
