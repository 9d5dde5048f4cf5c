//! PolicyPm: the fullmesh, ndiffports and sspi policies, event by event.

use std::net::{IpAddr, SocketAddr};

use braid_proto::pm::{
    EndpointFlags as F, Limits, LocalAddr, PathManager, Plan, PmCommand as C, PmEndpoint,
    PmEvent as E, PolicyPm, SubflowAddrs, SubflowError,
};
use braid_proto::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}
fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}
fn limits(subflows: u32, accepted: u32) -> Limits {
    Limits::new(subflows, accepted).expect("valid limits")
}
fn local(addr: &str, id: u8, dev: &str) -> LocalAddr {
    LocalAddr {
        addr: ip(addr),
        id,
        dev: Some(dev.to_string()),
        backup: false,
    }
}

const LOCAL: &str = "10.0.1.1:40000";
const REMOTE: &str = "10.0.1.2:443";
const T0: Instant = Instant::ZERO;

fn at(ms: u64) -> Instant {
    T0 + Duration::from_millis(ms)
}

fn run(pm: &mut dyn PathManager, now: Instant, ev: E) -> Vec<C> {
    let mut out = Vec::new();
    pm.handle(now, &ev, &mut out);
    out
}

fn established(pm: &mut dyn PathManager) -> Vec<C> {
    run(
        pm,
        T0,
        E::ConnectionEstablished {
            local: sa(LOCAL),
            remote: sa(REMOTE),
            remote_denies_join: false,
        },
    )
}

fn create(local: &str, local_id: u8, remote: &str, remote_id: u8) -> C {
    C::CreateSubflow {
        local: ip(local),
        local_id,
        remote: sa(remote),
        remote_id,
        backup: false,
    }
}

fn addrs(local: &str, remote: &str) -> SubflowAddrs {
    SubflowAddrs {
        local: sa(local),
        remote: sa(remote),
    }
}

/// The client's addresses: two on eth0 (one of them the initial), one on wlan0, one IPv6.
fn client_locals() -> Vec<LocalAddr> {
    vec![
        local("10.0.1.1", 1, "eth0"),
        local("10.0.1.5", 2, "eth0"),
        local("10.0.2.1", 3, "wlan0"),
        local("fd00::1", 4, "wlan0"),
    ]
}

#[test]
fn fullmesh_connects_every_local_address_to_every_peer_address() {
    let mut pm = PolicyPm::new(Plan::Fullmesh, limits(8, 2), client_locals(), true);
    assert_eq!(pm.name(), "fullmesh");
    // The initial pair exists; the other IPv4 addresses join the peer's initial address.
    assert_eq!(
        established(&mut pm),
        vec![
            create("10.0.1.5", 2, REMOTE, 0),
            create("10.0.2.1", 3, REMOTE, 0)
        ]
    );
    // An IPv6 announcement: echoed, and the IPv6 address joins it.
    let out = run(
        &mut pm,
        at(10),
        E::AddAddrReceived {
            id: 7,
            addr: ip("fd00::2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 7,
                addr: ip("fd00::2"),
                port: None
            },
            create("fd00::1", 4, "[fd00::2]:443", 7),
        ]
    );
    // A second IPv4 peer address (with a port): every IPv4 address joins it.
    let out = run(
        &mut pm,
        at(20),
        E::AddAddrReceived {
            id: 8,
            addr: ip("10.0.9.2"),
            port: Some(8443),
        },
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(out.contains(&create("10.0.1.1", 0, "10.0.9.2:8443", 8)));
    assert!(out.contains(&create("10.0.2.1", 3, "10.0.9.2:8443", 8)));
    assert_eq!(pm.subflows(), 6);
    // A third announcement is over add_addr_accepted = 2: echoed, not used.
    let out = run(
        &mut pm,
        at(30),
        E::AddAddrReceived {
            id: 9,
            addr: ip("10.0.10.2"),
            port: None,
        },
    );
    assert!(matches!(out.as_slice(), [C::RefuseAddAddr { id: 9, .. }]));
    // REMOVE_ADDR closes the three subflows towards id 8, and opens nothing new.
    let out = run(&mut pm, at(40), E::RemoveAddrReceived { ids: vec![8] });
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out
        .iter()
        .all(|c| matches!(c, C::DestroySubflow { remote, .. } if *remote == sa("10.0.9.2:8443"))));
    assert_eq!(pm.subflows(), 3);
}

#[test]
fn fullmesh_respects_the_subflows_limit_and_fills_freed_slots() {
    let mut pm = PolicyPm::new(Plan::Fullmesh, limits(1, 0), client_locals(), true);
    assert_eq!(established(&mut pm), vec![create("10.0.1.5", 2, REMOTE, 0)]);
    // An orderly close frees the slot: the next wanted subflow opens, the closed one is not
    // opened again.
    let out = run(
        &mut pm,
        at(5),
        E::SubflowClosed {
            addrs: addrs("10.0.1.5:50000", REMOTE),
            error: None,
        },
    );
    assert_eq!(out, vec![create("10.0.2.1", 3, REMOTE, 0)]);
    let out = run(
        &mut pm,
        at(6),
        E::SubflowClosed {
            addrs: addrs("10.0.2.1:50000", REMOTE),
            error: None,
        },
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn ndiffports_opens_n_subflows_over_the_initial_pair_and_ignores_announcements() {
    let mut pm = PolicyPm::new(Plan::NDiffPorts(4), limits(8, 8), client_locals(), true);
    assert_eq!(pm.name(), "ndiffports");
    let out = established(&mut pm);
    assert_eq!(out, vec![create("10.0.1.1", 0, REMOTE, 0); 3]);
    let out = run(
        &mut pm,
        at(1),
        E::AddAddrReceived {
            id: 3,
            addr: ip("10.0.3.2"),
            port: None,
        },
    );
    assert!(matches!(out.as_slice(), [C::RefuseAddAddr { id: 3, .. }]));
    // Limited: with subflows 2, only two more.
    let mut pm = PolicyPm::new(Plan::NDiffPorts(4), limits(2, 0), Vec::new(), true);
    assert_eq!(established(&mut pm).len(), 2);
}

#[test]
fn sspi_opens_one_subflow_per_interface() {
    let mut pm = PolicyPm::new(Plan::Sspi, limits(8, 1), client_locals(), true);
    assert_eq!(pm.name(), "sspi");
    // eth0 carries the initial subflow; wlan0 gets one (its first IPv4 address).
    assert_eq!(established(&mut pm), vec![create("10.0.2.1", 3, REMOTE, 0)]);
    // An IPv6 peer address: wlan0 already has a subflow, eth0 has no IPv6 address.
    let out = run(
        &mut pm,
        at(1),
        E::AddAddrReceived {
            id: 5,
            addr: ip("fd00::2"),
            port: None,
        },
    );
    assert!(matches!(out.as_slice(), [C::AcceptAddAddr { id: 5, .. }]));
    // A new interface appears: it gets one subflow.
    let out = run(
        &mut pm,
        at(2),
        E::EndpointAdded(PmEndpoint {
            id: 6,
            addr: ip("10.0.4.1"),
            port: None,
            dev: Some("lte0".into()),
            flags: F::SUBFLOW,
        }),
    );
    assert_eq!(out, vec![create("10.0.4.1", 6, REMOTE, 0)]);
}

#[test]
fn a_failed_subflow_is_recreated_with_backoff_while_its_addresses_are_valid() {
    let mut pm = PolicyPm::new(Plan::Sspi, limits(8, 0), client_locals(), true);
    established(&mut pm);
    let wlan = addrs("10.0.2.1:50001", REMOTE);
    run(&mut pm, at(100), E::SubflowEstablished { addrs: wlan });
    // The path breaks: nothing at once, a retry after 1 s, then 2 s after a second failure.
    let out = run(
        &mut pm,
        at(1000),
        E::SubflowClosed {
            addrs: wlan,
            error: Some(SubflowError::Timeout),
        },
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(pm.pending_retries(), 1);
    assert_eq!(pm.poll_timeout(), Some(at(2000)));
    let out = run(&mut pm, at(2000), E::Timeout);
    assert_eq!(out, vec![create("10.0.2.1", 3, REMOTE, 0)]);
    let out = run(
        &mut pm,
        at(2100),
        E::SubflowClosed {
            addrs: wlan,
            error: Some(SubflowError::Refused),
        },
    );
    assert!(out.is_empty());
    assert_eq!(pm.poll_timeout(), Some(at(4100)));
    // The path comes back: established, the backoff resets.
    assert_eq!(
        run(&mut pm, at(4100), E::Timeout),
        vec![create("10.0.2.1", 3, REMOTE, 0)]
    );
    run(&mut pm, at(4200), E::SubflowEstablished { addrs: wlan });
    assert_eq!(pm.pending_retries(), 0);
    assert_eq!(pm.poll_timeout(), None);
    // Its address is deleted while it waits for a retry: no retry.
    run(
        &mut pm,
        at(5000),
        E::SubflowClosed {
            addrs: wlan,
            error: Some(SubflowError::Timeout),
        },
    );
    let out = run(
        &mut pm,
        at(5001),
        E::EndpointRemoved(PmEndpoint {
            id: 3,
            addr: ip("10.0.2.1"),
            port: None,
            dev: Some("wlan0".into()),
            flags: F::SUBFLOW,
        }),
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(run(&mut pm, at(7000), E::Timeout).is_empty());
    assert_eq!(pm.pending_retries(), 0);
}

#[test]
fn the_passive_side_accepts_joins_within_the_limit_and_opens_nothing() {
    let mut pm = PolicyPm::new(Plan::Fullmesh, limits(1, 0), client_locals(), false);
    assert!(established(&mut pm).is_empty());
    let j1 = addrs("10.0.1.2:443", "10.0.2.1:50000");
    let j2 = addrs("10.0.1.2:443", "10.0.3.1:50000");
    let ask = |a| E::JoinRequested {
        addrs: a,
        remote_id: 2,
        backup: false,
    };
    assert_eq!(
        run(&mut pm, at(1), ask(j1)),
        vec![C::AcceptJoin { addrs: j1 }]
    );
    assert_eq!(
        run(&mut pm, at(2), ask(j2)),
        vec![C::RefuseJoin { addrs: j2 }]
    );
    // A peer's subflow that fails is not re-created by us.
    run(
        &mut pm,
        at(3),
        E::SubflowClosed {
            addrs: j1,
            error: Some(SubflowError::Reset(None)),
        },
    );
    assert_eq!(pm.pending_retries(), 0);
    assert_eq!(
        run(&mut pm, at(4), ask(j2)),
        vec![C::AcceptJoin { addrs: j2 }]
    );
}

#[test]
fn a_backup_change_sends_mp_prio_on_that_address_subflows_and_close_stops_everything() {
    let mut pm = PolicyPm::new(Plan::Fullmesh, limits(8, 0), client_locals(), true);
    established(&mut pm);
    let out = run(
        &mut pm,
        at(1),
        E::EndpointChanged(PmEndpoint {
            id: 3,
            addr: ip("10.0.2.1"),
            port: None,
            dev: Some("wlan0".into()),
            flags: F::SUBFLOW.with(F::BACKUP, true),
        }),
    );
    assert_eq!(
        out,
        vec![C::SetBackup {
            local: ip("10.0.2.1"),
            remote: sa(REMOTE),
            backup: true
        }]
    );
    assert!(run(&mut pm, at(2), E::ConnectionClosed).is_empty());
    assert!(run(&mut pm, at(3), E::LimitsChanged(limits(8, 8))).is_empty());
    assert_eq!(pm.poll_timeout(), None);
}

/// The peer set C on its MP_CAPABLE: no policy opens a subflow to its initial address
/// (fullmesh then joins announced addresses only; ndiffports opens nothing).
#[test]
fn no_policy_joins_the_initial_address_of_a_peer_that_set_c() {
    let deny = E::ConnectionEstablished {
        local: sa(LOCAL),
        remote: sa(REMOTE),
        remote_denies_join: true,
    };
    for plan in [Plan::Fullmesh, Plan::NDiffPorts(3), Plan::Sspi] {
        let mut pm = PolicyPm::new(plan, limits(8, 2), client_locals(), true);
        assert!(run(&mut pm, T0, deny.clone()).is_empty(), "{plan:?}");
        assert_eq!(pm.subflows(), 0, "{plan:?}");
    }
    let mut pm = PolicyPm::new(Plan::Fullmesh, limits(8, 2), client_locals(), true);
    run(&mut pm, T0, deny);
    let out = run(
        &mut pm,
        at(10),
        E::AddAddrReceived {
            id: 7,
            addr: ip("10.0.9.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 7,
                addr: ip("10.0.9.2"),
                port: None
            },
            create("10.0.1.1", 0, "10.0.9.2:443", 7),
            create("10.0.1.5", 2, "10.0.9.2:443", 7),
            create("10.0.2.1", 3, "10.0.9.2:443", 7),
        ]
    );
}
