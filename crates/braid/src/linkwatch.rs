//! Waiting until the kernel transmits on a TUN device braid just attached to.
//!
//! A TUN device has no carrier while no process holds it open. Attaching (`TUNSETIFF`)
//! turns the carrier on, but the kernel applies that in its link-watch work a moment
//! later. Until then the device's transmit queue is the no-op queue, which silently drops
//! whatever the kernel sends there. If braid's SYN reaches the kernel in that window, the
//! SYN/ACK is lost and the connection waits out a one-second retransmission timeout
//! (measured: 5 of 20 fresh namespaces before this module, none after). The link-watch
//! work reports the new state with an `RTM_NEWLINK` message once the queue is active, so
//! braid subscribes to link messages before attaching and, if the device is up, waits for
//! that message.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The multicast group of link messages (`RTMGRP_LINK` in `linux/rtnetlink.h`).
const RTMGRP_LINK: u32 = 1;

/// Sequence number of braid's one request, to tell its answer from notifications (0).
const REQUEST_SEQ: u32 = 1;

/// How long [`LinkWatch::wait_ready`] waits for the kernel at most. The kernel needs about
/// a millisecond; this only bounds a kernel that never says so.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// What [`LinkWatch::wait_ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The kernel reported the device running: it transmits now.
    Running,
    /// The device is administratively down: nothing to wait for (the kernel activates its
    /// queue when someone sets it up, and the carrier is already on then).
    Down,
    /// The kernel refused the question (an error answer): braid cannot tell, and does not
    /// wait.
    Unknown,
    /// No answer within the timeout.
    TimedOut,
}

/// How long [`link_state`] waits for the kernel's answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// A device's state as far as carrying packets goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// `IFF_UP`: someone set the device up (administrative state).
    pub up: bool,
    /// `IFF_RUNNING`: it has carrier (for a TUN: a process is attached) and transmits.
    pub running: bool,
}

/// The current state of device `name` in this network namespace, asked of the kernel (at
/// most [`QUERY_TIMEOUT`]). `Ok(None)`: the kernel did not say (no such device, an error
/// answer, no answer in time).
pub fn link_state(name: &str) -> io::Result<Option<LinkState>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.set_non_blocking(true)?;
    let w = LinkWatch { socket };
    w.request(name)?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        loop {
            let n = match w.socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(answer) = answered_state(buf.get(..n).unwrap_or_default(), name) {
                return Ok(answer);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        w.poll(left)?;
    }
}

/// The answer to braid's request in the netlink datagram `bytes`, if it holds one: the
/// state of device `name`, or `None` for an error answer.
fn answered_state(mut bytes: &[u8], name: &str) -> Option<Option<LinkState>> {
    while !bytes.is_empty() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
            return None;
        };
        let len = (msg.header.length as usize).max(1);
        if msg.header.sequence_number == REQUEST_SEQ {
            match &msg.payload {
                NetlinkPayload::Error(e) if e.code.is_some() => return Some(None),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                    if link
                        .attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) =>
                {
                    let flags = link.header.flags;
                    return Some(Some(LinkState {
                        up: flags.contains(LinkFlags::Up),
                        running: flags.contains(LinkFlags::Running),
                    }));
                }
                _ => {}
            }
        }
        bytes = bytes.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

/// A netlink socket subscribed to link messages, opened before a device is attached.
pub struct LinkWatch {
    socket: Socket,
}

impl LinkWatch {
    /// Subscribes to link messages of the current network namespace.
    pub fn subscribe() -> io::Result<LinkWatch> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        socket.set_non_blocking(true)?;
        Ok(LinkWatch { socket })
    }

    /// Waits (at most `timeout`) until the kernel reports device `name` running, or finds it
    /// administratively down.
    pub fn wait_ready(&self, name: &str, timeout: Duration) -> io::Result<Readiness> {
        self.request(name)?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            loop {
                let n = match self.socket.recv(&mut &mut buf[..], 0) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Notifications were lost (ENOBUFS): ask again, the answer tells.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        self.request(name)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let Some(r) = readiness(buf.get(..n).unwrap_or_default(), name) {
                    return Ok(r);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Readiness::TimedOut);
            }
            self.poll(left)?;
        }
    }

    /// Asks for the current state of `name` (answered with `RTM_NEWLINK`, sequence
    /// [`REQUEST_SEQ`]).
    fn request(&self, name: &str) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let out = encode(
            NetlinkPayload::from(RouteNetlinkMessage::GetLink(link)),
            NLM_F_REQUEST,
            REQUEST_SEQ,
        );
        self.socket
            .send_to(&out, &SocketAddr::new(0, 0), 0)
            .map(|_| ())
    }

    /// Waits until the socket is readable or `timeout` passed.
    fn poll(&self, timeout: Duration) -> io::Result<()> {
        crate::fdpoll::wait_readable(self.socket.as_raw_fd(), timeout).map(|_| ())
    }
}

/// One netlink message of `payload` with header `flags` and `seq`, as bytes.
fn encode(payload: NetlinkPayload<RouteNetlinkMessage>, flags: u16, seq: u32) -> Vec<u8> {
    let mut msg = NetlinkMessage::new(NetlinkHeader::default(), payload);
    msg.header.flags = flags;
    msg.header.sequence_number = seq;
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    out
}

/// What the netlink datagram `bytes` says of device `name`, if anything decisive: a
/// notification that it runs, or the answer to braid's request showing it down. An answer
/// showing it running is not enough, as the kernel may show the flag a moment before the
/// transmit queue is active; the notification follows that.
fn readiness(mut bytes: &[u8], name: &str) -> Option<Readiness> {
    while !bytes.is_empty() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
            return None;
        };
        let len = (msg.header.length as usize).max(1);
        let answer = msg.header.sequence_number == REQUEST_SEQ;
        if let NetlinkPayload::Error(e) = &msg.payload {
            if answer && e.code.is_some() {
                return Some(Readiness::Unknown);
            }
        }
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = &msg.payload {
            let ours = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name));
            if ours {
                let flags = link.header.flags;
                if !flags.contains(LinkFlags::Up) && answer {
                    return Some(Readiness::Down);
                }
                if flags.contains(LinkFlags::Running) && !answer {
                    return Some(Readiness::Running);
                }
            }
        }
        bytes = bytes.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::ErrorMessage;

    fn newlink(name: &str, flags: LinkFlags, seq: u32) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.flags = flags;
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        encode(
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(link)),
            0,
            seq,
        )
    }

    #[test]
    fn only_a_notification_of_the_device_running_is_ready() {
        let up = LinkFlags::Up;
        let running = LinkFlags::Up | LinkFlags::Running;
        // The answer to the request: up but not running yet, or running (not enough).
        assert_eq!(
            readiness(&newlink("braid0", up, REQUEST_SEQ), "braid0"),
            None
        );
        assert_eq!(
            readiness(&newlink("braid0", running, REQUEST_SEQ), "braid0"),
            None
        );
        // The answer shows it down: nothing to wait for.
        assert_eq!(
            readiness(
                &newlink("braid0", LinkFlags::empty(), REQUEST_SEQ),
                "braid0"
            ),
            Some(Readiness::Down)
        );
        // The kernel's notification: running.
        assert_eq!(
            readiness(&newlink("braid0", running, 0), "braid0"),
            Some(Readiness::Running)
        );
        // Another device's messages say nothing of this one, also in one datagram.
        let mut both = newlink("braid1", running, 0);
        assert_eq!(readiness(&both, "braid0"), None);
        both.extend(newlink("braid0", running, 0));
        assert_eq!(readiness(&both, "braid0"), Some(Readiness::Running));
        // Garbage is not decisive.
        assert_eq!(readiness(&[1, 2, 3], "braid0"), None);
        // An error answer to the request (here ENODEV): nothing to wait for.
        let mut err = ErrorMessage::default();
        err.code = core::num::NonZeroI32::new(-libc::ENODEV);
        let out = encode(NetlinkPayload::Error(err), 0, REQUEST_SEQ);
        assert_eq!(readiness(&out, "braid0"), Some(Readiness::Unknown));
    }

    #[test]
    fn the_answer_to_a_query_gives_the_state() {
        let state = |flags| {
            answered_state(&newlink("braid0", flags, REQUEST_SEQ), "braid0")
                .expect("an answer")
                .expect("a state")
        };
        assert_eq!(
            state(LinkFlags::empty()),
            LinkState {
                up: false,
                running: false
            }
        );
        assert_eq!(
            state(LinkFlags::Up),
            LinkState {
                up: true,
                running: false
            }
        );
        assert_eq!(
            state(LinkFlags::Up | LinkFlags::Running),
            LinkState {
                up: true,
                running: true
            }
        );
        // A notification (sequence 0) or another device is not the answer.
        assert_eq!(
            answered_state(&newlink("braid0", LinkFlags::Up, 0), "braid0"),
            None
        );
        assert_eq!(
            answered_state(&newlink("braid1", LinkFlags::Up, REQUEST_SEQ), "braid0"),
            None
        );
        let mut err = ErrorMessage::default();
        err.code = core::num::NonZeroI32::new(-libc::ENODEV);
        let out = encode(NetlinkPayload::Error(err), 0, REQUEST_SEQ);
        assert_eq!(answered_state(&out, "braid0"), Some(None));
    }

    #[test]
    fn the_kernel_answers_for_the_loopback_device_only() {
        // Every network namespace has `lo`; asking needs no privilege (where netlink is not
        // available at all, there is nothing to test).
        let Ok(lo) = link_state("lo") else {
            return;
        };
        assert!(lo.is_some());
        assert_eq!(link_state("braid-nonesuch").ok().flatten(), None);
    }
}
