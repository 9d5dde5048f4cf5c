//! A Linux TUN device: whole IP packets in and out, no packet-information header, non-blocking.
//!
//! [`TunDevice::open`] attaches to an existing device (for example one created persistent with
//! `ip tuntap add dev NAME mode tun`) or creates it when it does not exist. The kernel side of
//! the device (its address, routes, link state) is configured by whoever runs braid.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::linkwatch::{LinkWatch, READY_TIMEOUT};

/// The clone device every TUN is opened through.
const CLONE_DEVICE: &str = "/dev/net/tun";

/// Why a TUN device could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    #[error("invalid TUN device name {0:?}: 1 to 15 bytes, no '/', ':', whitespace or NUL")]
    InvalidName(String),
    #[error("{CLONE_DEVICE} is missing: the kernel has no TUN support (modprobe tun)")]
    NoCloneDevice,
    #[error(
        "permission denied opening TUN device {name}: {reason} (run as root or with CAP_NET_ADMIN)"
    )]
    PermissionDenied { name: String, reason: &'static str },
    #[error("TUN device {name} is busy: another process is attached to it")]
    Busy { name: String },
    #[error("{name} exists but is not a TUN device (a TAP, or a device of another kind)")]
    NotTun { name: String },
    #[error("cannot open TUN device {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// An open TUN device.
#[derive(Debug)]
pub struct TunDevice {
    file: File,
    name: String,
    created: bool,
}

/// The shortest transmit queue braid leaves its TUN devices with: the packets the kernel
/// sends to braid wait there until braid reads them, and a burst (a thousand clients'
/// initial windows, or their SYNs) overflows the default 500; the kernel then drops them,
/// and the senders wait out retransmission timeouts.
pub const MIN_TXQUEUELEN: u32 = 16384;

/// `SIOCGIFTXQLEN` / `SIOCSIFTXQLEN` (linux/sockios.h), which the libc crate does not name
/// on Linux.
const SIOCGIFTXQLEN: libc::Ioctl = 0x8942;
const SIOCSIFTXQLEN: libc::Ioctl = 0x8943;

/// Raises device `name`'s transmit queue to `min` packets if it is shorter (a longer one,
/// set by its owner, stays). Returns the length it has now.
pub fn ensure_txqueuelen(name: &str, min: u32) -> io::Result<u32> {
    // SAFETY: socket(2) with constant arguments; the result is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns; the OwnedFd closes it.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid `ifreq` (plain data and a raw pointer).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFTXQLEN reads the name and writes the queue length (an int, the union's
    // `ifru_ivalue`, which `ifru_mtu` aliases) of one valid, exclusively borrowed `ifreq`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFTXQLEN, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote the int member just read back.
    let now = u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(0);
    if now >= min {
        return Ok(now);
    }
    req.ifr_ifru.ifru_mtu = i32::try_from(min).unwrap_or(i32::MAX);
    // SAFETY: as above; SIOCSIFTXQLEN only reads the `ifreq`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFTXQLEN, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(min)
}

/// Whether a network device of that name exists in this network namespace.
fn device_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

impl TunDevice {
    /// Open the TUN device `name`: attach if it exists, create it (non-persistent: it goes away
    /// when braid exits) if it does not. Packets are raw IPv4/IPv6 (`IFF_TUN | IFF_NO_PI`), and
    /// the descriptor is non-blocking.
    pub fn open(name: &str) -> Result<TunDevice, TunError> {
        if !valid_name(name) {
            return Err(TunError::InvalidName(name.to_owned()));
        }
        let existed = device_exists(name);
        // Subscribed before attaching, so that the kernel's report of the carrier that the
        // attach turns on cannot be missed. Without netlink braid still works, only without
        // the wait (see `linkwatch`).
        let watch = LinkWatch::subscribe().ok();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(CLONE_DEVICE)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TunError::NoCloneDevice,
                io::ErrorKind::PermissionDenied => TunError::PermissionDenied {
                    name: name.to_owned(),
                    reason: "cannot open /dev/net/tun",
                },
                _ => TunError::Io {
                    name: name.to_owned(),
                    source: e,
                },
            })?;

        // SAFETY: `ifreq` is a plain C struct (arrays, integers, a union of plain data and a
        // raw pointer); all-zero bytes are a valid value of it.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // The name was checked to be shorter than IFNAMSIZ, so the zeroed tail terminates it.
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: the descriptor is an open /dev/net/tun owned by `file`, which outlives the
        // call; TUNSETIFF reads and writes exactly one `struct ifreq`, and `req` is a valid,
        // initialised, exclusively borrowed `ifreq`.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            let name = name.to_owned();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => TunError::PermissionDenied {
                    name,
                    reason: if existed {
                        "the device belongs to another user or group"
                    } else {
                        "the device does not exist and creating it needs CAP_NET_ADMIN"
                    },
                },
                Some(libc::EBUSY) => TunError::Busy { name },
                Some(libc::EINVAL) if existed => TunError::NotTun { name },
                _ => TunError::Io { name, source: e },
            });
        }
        // Best effort: without CAP_NET_ADMIN (a persistent device owned by the user) the
        // device keeps its queue.
        let _ = ensure_txqueuelen(name, MIN_TXQUEUELEN);
        if let Some(w) = watch {
            // Errors and a timeout only mean no wait: the device works, at worst the first
            // packets the kernel sends are lost as they were before.
            let _ = w.wait_ready(name, READY_TIMEOUT);
        }
        Ok(TunDevice {
            file,
            name: name.to_owned(),
            created: !existed,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `open` created the device (it did not exist before).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Read one IP packet into `buf`. `Ok(None)`: nothing to read now.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match (&self.file).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Write one IP packet. `Ok(false)`: the device could not take it now, or it is down
    /// (the kernel answers EIO until someone sets the link up): dropped, TCP retransmits.
    pub fn send(&self, packet: &[u8]) -> io::Result<bool> {
        loop {
            match (&self.file).write(packet) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for TunDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        for bad in ["", "a/b", "a:b", "a b", "0123456789abcdef", ".", ".."] {
            assert!(
                matches!(TunDevice::open(bad), Err(TunError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(valid_name("braid0"));
        assert!(valid_name("0123456789abcde"));
    }

    #[test]
    fn errors_read_as_one_line() {
        let e = TunError::PermissionDenied {
            name: "braid0".into(),
            reason: "the device does not exist and creating it needs CAP_NET_ADMIN",
        };
        let s = e.to_string();
        assert!(s.contains("braid0") && !s.contains('\n'), "{s}");
    }
}
