//! Whether a path can carry packets, said in one line: the runtime warns at start about a
//! device that cannot (down, no carrier, just created by braid and not configured), and a
//! connecting client says so again at its first SYN timeout, with what it finds then.
//!
//! These are warnings, not errors: the device may be set up a moment later (by a script
//! that starts braid first), and the connection then goes through. What can never work is
//! refused before anything starts (braid's own address equal to the peer's: see
//! `cmd::connect`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::linkwatch::LinkState;

/// When a client's first SYN times out (and is sent again): the initial retransmission
/// timeout of RFC 6298, the engine's default (`TcpConfig::initial_rto`).
pub fn first_syn_timeout() -> Duration {
    braid_proto::TcpConfig::default().initial_rto
}

/// What a device looks like to the runtime: its link state when known, and whether braid
/// created it (it did not exist: nobody has configured it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    pub link: Option<LinkState>,
    pub created: bool,
}

/// Why device `dev`, braid's address `addr` behind it, cannot carry packets; `None` when it
/// can as far as braid can tell.
pub fn problem(dev: &str, addr: IpAddr, state: DeviceState) -> Option<String> {
    let link = state.link?;
    if !link.up && state.created {
        return Some(format!(
            "braid created {dev} (it did not exist) and nobody has configured it: it is down, \
             so nothing braid sends reaches the kernel (ip link set {dev} up, with an address \
             and a route to {addr})"
        ));
    }
    if !link.up {
        return Some(format!(
            "{dev} is down: nothing braid sends reaches the kernel (ip link set {dev} up)"
        ));
    }
    if !link.running {
        return Some(format!(
            "{dev} is up but not running (no carrier): the kernel does not transmit on it"
        ));
    }
    None
}

/// The warning at start for a path whose device cannot carry packets.
pub fn start_warning(dev: &str, addr: IpAddr, state: DeviceState) -> Option<String> {
    problem(dev, addr, state).map(|p| format!("warning: path {dev}={addr}: {p}"))
}

/// The line a client prints when its first SYN timed out without an answer: the device's
/// problem if it has one, else a hint at what to check.
pub fn no_answer_notice(
    remote: SocketAddr,
    dev: &str,
    addr: IpAddr,
    state: DeviceState,
    after: Duration,
) -> String {
    let after = after.as_secs_f64();
    match problem(dev, addr, state) {
        Some(p) => format!("warning: no answer from {remote} after {after} s: {p}; still trying"),
        None => format!(
            "no answer from {remote} after {after} s; still trying (check the kernel side of \
             {dev}: its address, a route to {addr}, a firewall)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn link(up: bool, running: bool) -> Option<LinkState> {
        Some(LinkState { up, running })
    }

    #[test]
    fn each_problem_is_one_line_and_a_working_or_unknown_device_has_none() {
        let addr: IpAddr = "10.0.0.2".parse().unwrap();
        let p = |link, created| problem("braid0", addr, DeviceState { link, created });
        assert_eq!(p(link(true, true), false), None);
        assert_eq!(p(None, true), None, "unknown: no claim");
        let created = p(link(false, false), true).unwrap();
        assert!(created.starts_with("braid created braid0"), "{created}");
        let down = p(link(false, true), false).unwrap();
        assert!(down.starts_with("braid0 is down"), "{down}");
        let no_carrier = p(link(true, false), false).unwrap();
        assert!(no_carrier.contains("no carrier"), "{no_carrier}");
        for line in [created, down, no_carrier] {
            assert!(!line.contains('\n'));
        }
        let state = DeviceState {
            link: link(false, false),
            created: false,
        };
        assert_eq!(
            start_warning("braid0", addr, state).unwrap(),
            "warning: path braid0=10.0.0.2: braid0 is down: nothing braid sends reaches the \
             kernel (ip link set braid0 up)"
        );
        let remote: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let after = Duration::from_secs(1);
        assert!(no_answer_notice(remote, "braid0", addr, state, after)
            .starts_with("warning: no answer from 10.0.0.1:5000 after 1 s: braid0 is down"));
        let fine = DeviceState {
            link: link(true, true),
            created: false,
        };
        assert!(no_answer_notice(remote, "braid0", addr, fine, after)
            .starts_with("no answer from 10.0.0.1:5000 after 1 s; still trying"));
    }
}
