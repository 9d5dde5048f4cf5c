//! A Linux TUN device: whole IP packets in and out, no packet-information header, non-blocking.
//!
//! [`TunDevice::open`] attaches to an existing device (for example one created persistent with
//! `ip tuntap add dev NAME mode tun`) or creates it when it does not exist. The kernel side of
//! the device (its address, routes, link state) is configured by whoever runs braid.
//!
//! The device itself is [`tun_rs`]'s: it opens `/dev/net/tun`, attaches (`TUNSETIFF`), clears
//! any offload state a previous owner left on a persistent device, and reads and writes the
//! transmit queue length. braid's driver waits on the descriptor through tokio's reactor, as it
//! does for every [`PacketDevice`](crate::api::PacketDevice), so the device is kept in
//! non-blocking mode rather than wrapped in `tun_rs::AsyncDevice`: one waiting mechanism for
//! TUN and datagram devices alike, and a watchdog thread can drain it through `&self`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

use tun_rs::{DeviceBuilder, GROTable, Layer, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use crate::linkwatch::{LinkWatch, READY_TIMEOUT};
use crate::sync::lock;

mod order;

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
    #[error(
        "TUN device {name} has a single queue and several workers need one each: create it \
         with `ip tuntap add dev {name} mode tun multi_queue`, or let braid create it, or \
         run one worker"
    )]
    NotMultiQueue { name: String },
    #[error(
        "TUN device {name} has several queues (multi_queue): run braid with --workers 2 or \
         more, or recreate the device without multi_queue"
    )]
    MultiQueue { name: String },
    #[error("cannot open TUN device {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// An open TUN device.
pub struct TunDevice {
    dev: SyncDevice,
    name: String,
    created: bool,
    /// With offloads (`IFF_VNET_HDR`, TSO and checksum offload): what reading and writing
    /// need besides the device.
    offload: Option<Offload>,
}

/// The state of a device with offloads. Every read starts with a virtio-net header and may
/// be a GSO super-packet of up to 64 KiB, which is split here into the segments it stands
/// for (checksums filled in); writes go in batches, in which `tun_rs` coalesces consecutive
/// segments of one TCP flow whose headers match (options included, so an MPTCP option is
/// never stretched over bytes it did not cover) into one GSO write, segmented by the
/// kernel (or received whole by a local socket).
struct Offload {
    rx: Mutex<RxSplit>,
    tx: Mutex<GROTable>,
}

/// The segments of the last read not handed out yet.
struct RxSplit {
    raw: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    next: usize,
    count: usize,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("fd", &self.dev.as_raw_fd())
            .field("created", &self.created)
            .finish()
    }
}

/// The shortest transmit queue braid leaves its TUN devices with: the packets the kernel
/// sends to braid wait there until braid reads them, and a burst (a thousand clients'
/// initial windows, or their SYNs) overflows the default 500; the kernel then drops them,
/// and the senders wait out retransmission timeouts.
pub const MIN_TXQUEUELEN: u32 = 16384;

/// Whether a network device of that name exists in this network namespace.
fn device_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `IFF_TAP` and `IFF_MULTI_QUEUE` in a device's `tun_flags`.
const IFF_TAP: u32 = 0x2;
const IFF_MULTI_QUEUE: u32 = 0x100;

/// The flags a TUN or TAP device was created with (`None`: no such device, or not one of
/// those: only they have `tun_flags`).
fn tun_flags(name: &str) -> Option<u32> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("tun_flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
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

/// The clone device can be opened by this process: its absence and a lack of permission on
/// it are told apart from a refusal to attach to the named device.
fn check_clone_device(name: &str) -> Result<(), TunError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CLONE_DEVICE)
        .map(drop)
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
        })
}

impl TunDevice {
    /// Open the TUN device `name`: attach if it exists, create it (non-persistent: it goes away
    /// when braid exits) if it does not. Packets are raw IPv4/IPv6 (`IFF_TUN | IFF_NO_PI`), and
    /// the descriptor is non-blocking.
    pub fn open(name: &str) -> Result<TunDevice, TunError> {
        TunDevice::open_with(name, false)
    }

    /// [`TunDevice::open`], with offloads when `offload` is true (see [`Offload`]); where
    /// the kernel refuses them, the device is opened without.
    pub fn open_with(name: &str, offload: bool) -> Result<TunDevice, TunError> {
        let mut queues = TunDevice::open_queues(name, offload, 1)?;
        queues.pop().ok_or_else(|| TunError::Io {
            name: name.to_owned(),
            source: io::Error::other("no queue opened"),
        })
    }

    /// [`TunDevice::open_with`] with `queues` queues (`IFF_MULTI_QUEUE` when more than
    /// one): each is a descriptor of its own, read and written by one worker. The kernel
    /// hands a flow's packets to the queue that last wrote one of the flow, else to one
    /// chosen by the flow's hash.
    pub fn open_queues(
        name: &str,
        offload: bool,
        queues: usize,
    ) -> Result<Vec<TunDevice>, TunError> {
        match TunDevice::open_inner(name, offload, queues) {
            Err(TunError::Io { .. } | TunError::NotTun { .. }) if offload => {
                TunDevice::open_inner(name, false, queues)
            }
            r => r,
        }
    }

    fn open_inner(name: &str, offload: bool, queues: usize) -> Result<Vec<TunDevice>, TunError> {
        if !valid_name(name) {
            return Err(TunError::InvalidName(name.to_owned()));
        }
        check_clone_device(name)?;
        let existed = device_exists(name);
        // Subscribed before attaching, so that the kernel's report of the carrier that the
        // attach turns on cannot be missed. Without netlink braid still works, only without
        // the wait (see `linkwatch`).
        let watch = LinkWatch::subscribe().ok();
        let io_err = |source: io::Error| TunError::Io {
            name: name.to_owned(),
            source,
        };
        let dev = DeviceBuilder::new()
            .name(name)
            .layer(Layer::L3)
            .packet_information(false)
            // The link state stays the user's: braid never brings a device up (tun-rs would
            // by default), so a device nobody configured is reported as down, not used.
            .inherit_enable_state()
            .offload(offload)
            .multi_queue(queues > 1)
            .build_sync()
            .map_err(|e| {
                let name = name.to_owned();
                match e.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => TunError::PermissionDenied {
                        name,
                        reason: if existed {
                            "the device belongs to another user or group"
                        } else {
                            "the device does not exist and creating it needs CAP_NET_ADMIN"
                        },
                    },
                    Some(libc::EBUSY) => TunError::Busy { name },
                    Some(libc::EINVAL) if existed => match tun_flags(&name) {
                        // A TUN device (not a TAP) whose queues are not what was asked.
                        Some(f) if f & IFF_TAP == 0 => {
                            match (queues > 1, f & IFF_MULTI_QUEUE != 0) {
                                (true, false) => TunError::NotMultiQueue { name },
                                (false, true) => TunError::MultiQueue { name },
                                _ => TunError::NotTun { name },
                            }
                        }
                        _ => TunError::NotTun { name },
                    },
                    _ => TunError::Io { name, source: e },
                }
            })?;
        let mut devs = vec![dev];
        for _ in 1..queues {
            let q = devs[0].try_clone().map_err(io_err)?;
            devs.push(q);
        }
        for d in &devs {
            d.set_nonblocking(true).map_err(io_err)?;
        }
        let dev = &devs[0];
        // Best effort: without CAP_NET_ADMIN (a persistent device owned by the user) the
        // device keeps its queue; a longer one, set by its owner, stays.
        if dev.tx_queue_len().is_ok_and(|n| n < MIN_TXQUEUELEN) {
            let _ = dev.set_tx_queue_len(MIN_TXQUEUELEN);
        }
        if let Some(w) = watch {
            // Errors and a timeout only mean no wait: the device works, at worst the first
            // packets the kernel sends are lost as they were before.
            let _ = w.wait_ready(name, READY_TIMEOUT);
        }
        // Each segment of a split read fits one buffer: the device's MTU and headers.
        let seg = usize::from(dev.mtu().unwrap_or(1500)).max(1500) + 128;
        Ok(devs
            .into_iter()
            .map(|dev| {
                let offload = dev.tcp_gso().then(|| Offload {
                    rx: Mutex::new(RxSplit {
                        raw: vec![0; VIRTIO_NET_HDR_LEN + 65535],
                        bufs: vec![vec![0; seg]; IDEAL_BATCH_SIZE],
                        sizes: vec![0; IDEAL_BATCH_SIZE],
                        next: 0,
                        count: 0,
                    }),
                    tx: Mutex::new(GROTable::default()),
                });
                TunDevice {
                    dev,
                    name: name.to_owned(),
                    created: !existed,
                    offload,
                }
            })
            .collect())
    }

    /// Whether the device has offloads (GSO writes, split GSO reads).
    pub fn offloads(&self) -> bool {
        self.offload.is_some()
    }

    /// Bytes to leave free before each packet given to [`TunDevice::send_batch`].
    pub fn headroom(&self) -> usize {
        if self.offload.is_some() {
            VIRTIO_NET_HDR_LEN
        } else {
            0
        }
    }

    /// Writes `packets`, each after [`TunDevice::headroom`] free bytes; with offloads,
    /// segments of one flow are coalesced into GSO writes. Returns how many the device
    /// took; the others were dropped for lack of room, or because the link is down.
    pub fn send_batch(&self, packets: &mut [Vec<u8>]) -> io::Result<usize> {
        let Some(off) = &self.offload else {
            let mut sent = 0;
            for p in packets.iter() {
                sent += usize::from(self.send(p)?);
            }
            return Ok(sent);
        };
        let mut gro = lock(&off.tx);
        let mut sent = 0;
        // In runs within which no flow's data can overtake its own ACKs (`order`).
        for run in order::arrange(packets, VIRTIO_NET_HDR_LEN) {
            let n = run.len();
            let Some(part) = packets.get_mut(run) else {
                continue;
            };
            match self.dev.send_multiple(&mut gro, part, VIRTIO_NET_HDR_LEN) {
                Ok(_) => sent += n,
                // One write that could not go (a full queue, a link that is down): counted
                // as dropped all together, TCP retransmits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `open` created the device (it did not exist before).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The device's transmit queue length (packets the kernel holds for braid to read).
    pub fn tx_queue_len(&self) -> io::Result<u32> {
        self.dev.tx_queue_len()
    }

    /// Read one IP packet into `buf`. `Ok(None)`: nothing to read now.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let Some(off) = &self.offload {
            return Self::recv_split(&self.dev, &mut lock(&off.rx), buf);
        }
        loop {
            match self.dev.recv(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next segment of a split read, reading the device when none is left.
    fn recv_split(dev: &SyncDevice, rx: &mut RxSplit, buf: &mut [u8]) -> io::Result<Option<usize>> {
        while rx.next >= rx.count {
            let RxSplit {
                raw, bufs, sizes, ..
            } = &mut *rx;
            match dev.recv_multiple(raw, bufs, sizes, 0) {
                Ok(n) => {
                    rx.next = 0;
                    rx.count = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let i = rx.next;
        rx.next += 1;
        let len = rx.sizes.get(i).copied().unwrap_or(0);
        let seg = rx
            .bufs
            .get(i)
            .and_then(|b| b.get(..len))
            .unwrap_or_default();
        let n = seg.len().min(buf.len());
        buf[..n].copy_from_slice(&seg[..n]);
        Ok(Some(n))
    }

    /// Write one IP packet. `Ok(false)`: the device could not take it now, or it is down
    /// (the kernel answers EIO until someone sets the link up): dropped, TCP retransmits.
    pub fn send(&self, packet: &[u8]) -> io::Result<bool> {
        if self.offload.is_some() {
            // A packet alone: an empty virtio-net header first.
            let mut b = Vec::with_capacity(VIRTIO_NET_HDR_LEN + packet.len());
            b.resize(VIRTIO_NET_HDR_LEN, 0);
            b.extend_from_slice(packet);
            return self
                .send_batch(std::slice::from_mut(&mut b))
                .map(|n| n == 1);
        }
        loop {
            match self.dev.send(packet) {
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
        self.dev.as_raw_fd()
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
