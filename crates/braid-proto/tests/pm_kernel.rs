//! KernelPm: the in-kernel path manager's rules, event by event.

use std::net::{IpAddr, SocketAddr};

use braid_proto::pm::{
    EndpointFlags as F, KernelPm, Limits, PathManager, PmCommand as C, PmConfig, PmEndpoint,
    PmEvent as E, SubflowAddrs, SubflowError,
};
use braid_proto::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}
fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}
fn ep(id: u8, addr: &str, flags: F) -> PmEndpoint {
    PmEndpoint {
        id,
        addr: ip(addr),
        port: None,
        dev: None,
        flags,
    }
}
fn limits(subflows: u32, accepted: u32) -> Limits {
    Limits::new(subflows, accepted).expect("valid limits")
}

const LOCAL: &str = "10.0.1.1:40000";
const REMOTE: &str = "10.0.1.2:443";
const T0: Instant = Instant::ZERO;

fn at(secs: u64) -> Instant {
    T0 + Duration::from_secs(secs)
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

fn create(local: &str, local_id: u8, remote: &str, remote_id: u8, backup: bool) -> C {
    C::CreateSubflow {
        local: ip(local),
        local_id,
        remote: sa(remote),
        remote_id,
        backup,
    }
}

fn addrs(local: &str, remote: &str) -> SubflowAddrs {
    SubflowAddrs {
        local: sa(local),
        remote: sa(remote),
    }
}

#[test]
fn is_named_kernel_and_object_safe() {
    let pm: Box<dyn PathManager> = Box::new(KernelPm::new(&[], Limits::default(), &[]));
    assert_eq!(pm.name(), "kernel");
    assert_eq!(pm.poll_timeout(), None);
}

#[test]
fn nothing_without_endpoints() {
    let mut pm = KernelPm::new(&[], Limits::default(), &[ip("10.0.1.1")]);
    assert!(established(&mut pm).is_empty());
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn one_subflow_per_subflow_endpoint_up_to_the_limit() {
    let eps = [
        ep(1, "10.0.2.1", F::SUBFLOW),
        ep(2, "10.0.3.1", F::SUBFLOW | F::BACKUP),
        ep(3, "10.0.4.1", F::SUBFLOW),
    ];
    let mut pm = KernelPm::new(&eps, Limits::default(), &[]);
    let out = established(&mut pm);
    assert_eq!(
        out,
        vec![
            create("10.0.2.1", 1, REMOTE, 0, false),
            create("10.0.3.1", 2, REMOTE, 0, true)
        ]
    );
    assert_eq!(pm.subflows(), 2);
    // A second establishment event changes nothing.
    assert!(established(&mut pm).is_empty());
}

#[test]
fn subflows_limit_zero_opens_nothing() {
    let mut pm = KernelPm::new(&[ep(1, "10.0.2.1", F::SUBFLOW)], limits(0, 0), &[]);
    assert!(established(&mut pm).is_empty());
}

#[test]
fn the_initial_address_endpoint_is_not_reused_and_passes_its_backup_flag() {
    let eps = [
        ep(1, "10.0.1.1", F::SUBFLOW | F::SIGNAL | F::BACKUP),
        ep(2, "10.0.2.1", F::SUBFLOW),
    ];
    let mut pm = KernelPm::new(&eps, Limits::default(), &[]);
    let out = established(&mut pm);
    assert_eq!(
        out,
        vec![
            C::SetBackup {
                local: ip("10.0.1.1"),
                remote: sa(REMOTE),
                backup: true
            },
            create("10.0.2.1", 2, REMOTE, 0, false),
        ]
    );
}

#[test]
fn signal_endpoints_are_announced_on_established() {
    let mut sig = ep(4, "10.0.5.1", F::SIGNAL);
    sig.port = Some(8443);
    let eps = [ep(3, "10.0.4.1", F::SIGNAL), sig];
    let mut pm = KernelPm::new(&eps, Limits::default(), &[]);
    let out = established(&mut pm);
    assert_eq!(
        out,
        vec![
            C::Announce {
                id: 3,
                addr: ip("10.0.4.1"),
                port: None
            },
            C::Announce {
                id: 4,
                addr: ip("10.0.5.1"),
                port: Some(8443)
            },
        ]
    );
    assert_eq!(pm.announced_ids(), vec![3, 4]);
    // Signal only: no subflow opened.
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn add_addr_is_retransmitted_until_echoed_at_most_three_times() {
    let mut pm = KernelPm::new(&[ep(3, "10.0.4.1", F::SIGNAL)], Limits::default(), &[]);
    established(&mut pm);
    assert_eq!(pm.poll_timeout(), Some(at(120)));
    assert!(run(&mut pm, at(119), E::Timeout).is_empty());
    let again = C::Announce {
        id: 3,
        addr: ip("10.0.4.1"),
        port: None,
    };
    for n in 1..=3u64 {
        assert_eq!(run(&mut pm, at(120 * n), E::Timeout), vec![again.clone()]);
    }
    assert_eq!(pm.poll_timeout(), Some(at(480)));
    assert!(run(&mut pm, at(480), E::Timeout).is_empty());
    assert_eq!(pm.poll_timeout(), None);
}

#[test]
fn add_addr_echo_stops_retransmission() {
    let cfg = PmConfig {
        add_addr_timeout: Duration::from_secs(2),
        ..PmConfig::default()
    };
    let mut pm =
        KernelPm::with_config(cfg, &[ep(3, "10.0.4.1", F::SIGNAL)], Limits::default(), &[]);
    established(&mut pm);
    assert_eq!(pm.poll_timeout(), Some(at(2)));
    assert!(run(&mut pm, at(1), E::AddAddrEchoed { id: 3 }).is_empty());
    assert_eq!(pm.poll_timeout(), None);
    assert!(run(&mut pm, at(2), E::Timeout).is_empty());
}

#[test]
fn add_addr_refused_with_the_default_limit() {
    let mut pm = KernelPm::new(&[], Limits::default(), &[ip("10.0.1.1"), ip("10.0.2.1")]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None
        }]
    );
    assert_eq!(pm.add_addr_accepted(), 0);
}

#[test]
fn add_addr_accepted_opens_from_the_longest_prefix_local_address() {
    let locals = [ip("10.0.1.1"), ip("10.0.2.1"), ip("fd00::1")];
    let mut pm = KernelPm::new(&[], limits(2, 1), &locals);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 5,
                addr: ip("10.0.2.2"),
                port: None
            },
            // Not an endpoint: an implicit id; the initial port when none was announced.
            create("10.0.2.1", 1, "10.0.2.2:443", 5, false),
        ]
    );
    assert_eq!(pm.add_addr_accepted(), 1);
    // The limit is reached: the next one is only echoed.
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 6,
            addr: ip("10.0.3.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 6,
            addr: ip("10.0.3.2"),
            port: None
        }]
    );
}

#[test]
fn add_addr_with_port_and_from_the_initial_address() {
    let mut pm = KernelPm::new(&[], limits(2, 2), &[]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 7,
            addr: ip("10.0.9.9"),
            port: Some(8080),
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 7,
                addr: ip("10.0.9.9"),
                port: Some(8080)
            },
            create("10.0.1.1", 0, "10.0.9.9:8080", 7, false),
        ]
    );
}

#[test]
fn add_addr_of_another_family_is_accepted_without_subflow() {
    let mut pm = KernelPm::new(&[], limits(2, 2), &[ip("10.0.1.1")]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 7,
            addr: ip("fd00::2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::AcceptAddAddr {
            id: 7,
            addr: ip("fd00::2"),
            port: None
        }]
    );
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn add_addr_refused_when_subflows_are_at_the_limit_or_known() {
    let mut pm = KernelPm::new(&[ep(1, "10.0.2.1", F::SUBFLOW)], limits(1, 4), &[]);
    established(&mut pm);
    assert_eq!(pm.subflows(), 1);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None
        }]
    );
    // The peer's initial address announced again: nothing to open.
    let mut pm = KernelPm::new(&[], limits(2, 4), &[]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 0,
            addr: ip("10.0.1.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 0,
            addr: ip("10.0.1.2"),
            port: None
        }]
    );
    // A repeated ADD_ADDR (same id) is not counted twice.
    run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None
        }]
    );
    assert_eq!(pm.add_addr_accepted(), 1);
}

#[test]
fn add_addr_before_establishment_is_refused() {
    let mut pm = KernelPm::new(&[], limits(2, 2), &[]);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![C::RefuseAddAddr {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None
        }]
    );
}

#[test]
fn fullmesh_endpoints_connect_to_every_peer_address() {
    let eps = [
        ep(1, "10.0.2.1", F::SUBFLOW | F::FULLMESH),
        ep(2, "10.0.3.1", F::FULLMESH),
    ];
    let mut pm = KernelPm::new(&eps, limits(8, 2), &[]);
    let out = established(&mut pm);
    assert_eq!(out, vec![create("10.0.2.1", 1, REMOTE, 0, false)]);
    // An accepted address gets a subflow from every fullmesh endpoint.
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.9.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 5,
                addr: ip("10.0.9.2"),
                port: None
            },
            create("10.0.2.1", 1, "10.0.9.2:443", 5, false),
            create("10.0.3.1", 2, "10.0.9.2:443", 5, false),
        ]
    );
    assert_eq!(pm.subflows(), 3);
}

#[test]
fn fullmesh_is_bounded_by_the_subflows_limit() {
    let eps = [
        ep(1, "10.0.2.1", F::FULLMESH),
        ep(2, "10.0.3.1", F::FULLMESH),
    ];
    let mut pm = KernelPm::new(&eps, limits(1, 2), &[]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.9.2"),
            port: None,
        },
    );
    assert_eq!(out.len(), 2);
    assert_eq!(pm.subflows(), 1);
}

#[test]
fn remove_addr_closes_its_subflows_and_frees_the_slot() {
    let mut pm = KernelPm::new(&[], limits(2, 1), &[ip("10.0.2.1")]);
    established(&mut pm);
    run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    let out = run(&mut pm, T0, E::RemoveAddrReceived { ids: vec![5] });
    assert_eq!(
        out,
        vec![C::DestroySubflow {
            local: ip("10.0.2.1"),
            remote: sa("10.0.2.2:443")
        }]
    );
    assert_eq!((pm.subflows(), pm.add_addr_accepted()), (0, 0));
    // The slot is free again.
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 6,
            addr: ip("10.0.2.3"),
            port: None,
        },
    );
    assert_eq!(out.len(), 2);
    // Unknown ids are harmless.
    assert!(run(&mut pm, T0, E::RemoveAddrReceived { ids: vec![99] }).is_empty());
}

#[test]
fn remove_addr_id_0_closes_subflows_to_the_initial_address() {
    let mut pm = KernelPm::new(&[ep(1, "10.0.2.1", F::SUBFLOW)], Limits::default(), &[]);
    established(&mut pm);
    let out = run(&mut pm, T0, E::RemoveAddrReceived { ids: vec![0] });
    assert_eq!(
        out,
        vec![
            C::DestroySubflow {
                local: ip("10.0.1.1"),
                remote: sa(REMOTE)
            },
            C::DestroySubflow {
                local: ip("10.0.2.1"),
                remote: sa(REMOTE)
            },
        ]
    );
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn incoming_joins_are_accepted_up_to_the_limit() {
    let mut pm = KernelPm::new(&[], limits(1, 0), &[]);
    let j1 = addrs("10.0.1.1:443", "10.0.7.2:5000");
    let j2 = addrs("10.0.1.1:443", "10.0.8.2:5000");
    // Before establishment: refused.
    let out = run(
        &mut pm,
        T0,
        E::JoinRequested {
            addrs: j1,
            remote_id: 1,
            backup: false,
        },
    );
    assert_eq!(out, vec![C::RefuseJoin { addrs: j1 }]);
    established(&mut pm);
    let out = run(
        &mut pm,
        T0,
        E::JoinRequested {
            addrs: j1,
            remote_id: 1,
            backup: false,
        },
    );
    assert_eq!(out, vec![C::AcceptJoin { addrs: j1 }]);
    let out = run(
        &mut pm,
        T0,
        E::JoinRequested {
            addrs: j2,
            remote_id: 2,
            backup: false,
        },
    );
    assert_eq!(out, vec![C::RefuseJoin { addrs: j2 }]);
    // A peer's subflow failing is not re-created by us, but frees the slot.
    assert!(run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: j1,
            error: Some(SubflowError::Timeout)
        }
    )
    .is_empty());
    assert_eq!(pm.pending_retries(), 0);
    let out = run(
        &mut pm,
        T0,
        E::JoinRequested {
            addrs: j2,
            remote_id: 2,
            backup: false,
        },
    );
    assert_eq!(out, vec![C::AcceptJoin { addrs: j2 }]);
}

#[test]
fn an_orderly_close_frees_the_slot_for_the_next_endpoint() {
    let eps = [ep(1, "10.0.2.1", F::SUBFLOW), ep(2, "10.0.3.1", F::SUBFLOW)];
    let mut pm = KernelPm::new(&eps, limits(1, 0), &[]);
    assert_eq!(
        established(&mut pm),
        vec![create("10.0.2.1", 1, REMOTE, 0, false)]
    );
    let out = run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: addrs("10.0.2.1:40001", REMOTE),
            error: None,
        },
    );
    assert_eq!(out, vec![create("10.0.3.1", 2, REMOTE, 0, false)]);
    assert_eq!(pm.pending_retries(), 0);
}

#[test]
fn a_failed_subflow_is_recreated_with_exponential_backoff() {
    let mut pm = KernelPm::new(&[ep(1, "10.0.2.1", F::SUBFLOW)], Limits::default(), &[]);
    established(&mut pm);
    let a = addrs("10.0.2.1:40001", REMOTE);
    let again = create("10.0.2.1", 1, REMOTE, 0, false);
    run(&mut pm, T0, E::SubflowEstablished { addrs: a });
    // Fails at t=10: retried after 1 s, then 2 s, then 4 s.
    assert!(run(
        &mut pm,
        at(10),
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout)
        }
    )
    .is_empty());
    assert_eq!((pm.subflows(), pm.pending_retries()), (0, 1));
    assert_eq!(pm.poll_timeout(), Some(at(11)));
    assert_eq!(run(&mut pm, at(11), E::Timeout), vec![again.clone()]);
    assert_eq!(pm.subflows(), 1);
    run(
        &mut pm,
        at(12),
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Refused),
        },
    );
    assert_eq!(pm.poll_timeout(), Some(at(14)));
    assert!(run(&mut pm, at(13), E::Timeout).is_empty());
    assert_eq!(run(&mut pm, at(14), E::Timeout), vec![again.clone()]);
    run(
        &mut pm,
        at(15),
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Reset(None)),
        },
    );
    assert_eq!(pm.poll_timeout(), Some(at(19)));
    assert_eq!(run(&mut pm, at(19), E::Timeout), vec![again.clone()]);
    // Success resets the backoff.
    run(&mut pm, at(20), E::SubflowEstablished { addrs: a });
    run(
        &mut pm,
        at(30),
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(pm.poll_timeout(), Some(at(31)));
}

#[test]
fn the_backoff_is_capped() {
    let cfg = PmConfig {
        retry_max: Duration::from_secs(3),
        ..PmConfig::default()
    };
    let mut pm = KernelPm::with_config(
        cfg,
        &[ep(1, "10.0.2.1", F::SUBFLOW)],
        Limits::default(),
        &[],
    );
    established(&mut pm);
    let a = addrs("10.0.2.1:40001", REMOTE);
    let mut now = at(0);
    for _ in 0..5 {
        run(
            &mut pm,
            now,
            E::SubflowClosed {
                addrs: a,
                error: Some(SubflowError::Timeout),
            },
        );
        let next = pm.poll_timeout().expect("retry armed");
        assert!(next.saturating_duration_since(now) <= Duration::from_secs(3));
        assert_eq!(run(&mut pm, next, E::Timeout).len(), 1);
        now = next;
    }
}

#[test]
fn no_recreation_when_disabled_or_addresses_are_gone() {
    let cfg = PmConfig {
        retry: false,
        ..PmConfig::default()
    };
    let e1 = ep(1, "10.0.2.1", F::SUBFLOW);
    let a = addrs("10.0.2.1:40001", REMOTE);
    let mut pm = KernelPm::with_config(cfg, std::slice::from_ref(&e1), Limits::default(), &[]);
    established(&mut pm);
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(pm.pending_retries(), 0);

    // The endpoint is deleted while the retry waits: the retry is dropped.
    let mut pm = KernelPm::new(std::slice::from_ref(&e1), Limits::default(), &[]);
    established(&mut pm);
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(pm.pending_retries(), 1);
    run(&mut pm, T0, E::EndpointRemoved(e1));
    assert_eq!(pm.pending_retries(), 0);
    assert!(run(&mut pm, at(100), E::Timeout).is_empty());

    // The peer removed the address the subflow went to.
    let mut pm = KernelPm::new(&[], limits(2, 1), &[ip("10.0.2.1")]);
    established(&mut pm);
    run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.2.2"),
            port: None,
        },
    );
    let b = addrs("10.0.2.1:40001", "10.0.2.2:443");
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: b,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(pm.pending_retries(), 1);
    run(&mut pm, T0, E::RemoveAddrReceived { ids: vec![5] });
    assert_eq!(pm.pending_retries(), 0);
}

#[test]
fn a_retry_without_a_free_slot_waits() {
    let eps = [ep(1, "10.0.2.1", F::SUBFLOW)];
    let mut pm = KernelPm::new(&eps, limits(1, 0), &[]);
    established(&mut pm);
    let a = addrs("10.0.2.1:40001", REMOTE);
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    // Meanwhile the peer joins and takes the only slot.
    let j = addrs("10.0.1.1:40000", "10.0.8.2:5000");
    assert_eq!(
        run(
            &mut pm,
            T0,
            E::JoinRequested {
                addrs: j,
                remote_id: 2,
                backup: false
            }
        ),
        vec![C::AcceptJoin { addrs: j }]
    );
    assert!(run(&mut pm, at(1), E::Timeout).is_empty());
    assert_eq!(pm.pending_retries(), 1);
    assert_eq!(pm.poll_timeout(), Some(at(3)));
    run(
        &mut pm,
        at(2),
        E::SubflowClosed {
            addrs: j,
            error: None,
        },
    );
    assert_eq!(
        run(&mut pm, at(3), E::Timeout),
        vec![create("10.0.2.1", 1, REMOTE, 0, false)]
    );
}

#[test]
fn the_initial_subflow_is_recreated_outside_the_limit() {
    let mut pm = KernelPm::new(&[], limits(0, 0), &[]);
    established(&mut pm);
    let a = addrs(LOCAL, REMOTE);
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(
        run(&mut pm, at(1), E::Timeout),
        vec![create("10.0.1.1", 0, REMOTE, 0, false)]
    );
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn endpoints_added_on_a_live_connection_take_effect() {
    let mut pm = KernelPm::new(&[], Limits::default(), &[]);
    // Before establishment: stored only.
    assert!(run(&mut pm, T0, E::EndpointAdded(ep(9, "10.0.9.1", F::SIGNAL))).is_empty());
    let out = established(&mut pm);
    assert_eq!(
        out,
        vec![C::Announce {
            id: 9,
            addr: ip("10.0.9.1"),
            port: None
        }]
    );
    let out = run(
        &mut pm,
        T0,
        E::EndpointAdded(ep(1, "10.0.2.1", F::SUBFLOW | F::BACKUP)),
    );
    assert_eq!(out, vec![create("10.0.2.1", 1, REMOTE, 0, true)]);
    let out = run(&mut pm, T0, E::EndpointAdded(ep(2, "10.0.3.1", F::SIGNAL)));
    assert_eq!(
        out,
        vec![C::Announce {
            id: 2,
            addr: ip("10.0.3.1"),
            port: None
        }]
    );
    // A duplicate id is ignored.
    assert!(run(&mut pm, T0, E::EndpointAdded(ep(2, "10.0.4.1", F::SUBFLOW))).is_empty());
}

#[test]
fn deleting_an_endpoint_withdraws_it_and_closes_its_subflows() {
    let e1 = ep(1, "10.0.2.1", F::SUBFLOW);
    let e2 = ep(2, "10.0.3.1", F::SIGNAL);
    let e3 = ep(3, "10.0.4.1", F::NONE);
    let mut pm = KernelPm::new(
        &[e1.clone(), e2.clone(), e3.clone()],
        Limits::default(),
        &[],
    );
    established(&mut pm);
    let out = run(&mut pm, T0, E::EndpointRemoved(e1));
    assert_eq!(
        out,
        vec![
            C::RemoveAddr { ids: vec![1] },
            C::DestroySubflow {
                local: ip("10.0.2.1"),
                remote: sa(REMOTE)
            },
        ]
    );
    assert_eq!(pm.subflows(), 0);
    assert_eq!(
        run(&mut pm, T0, E::EndpointRemoved(e2)),
        vec![C::RemoveAddr { ids: vec![2] }]
    );
    assert!(pm.announced_ids().is_empty());
    assert_eq!(pm.poll_timeout(), None);
    // Never announced nor used: nothing to say.
    assert!(run(&mut pm, T0, E::EndpointRemoved(e3)).is_empty());
}

#[test]
fn changing_backup_sends_mp_prio_on_the_endpoints_subflows() {
    let e1 = ep(1, "10.0.2.1", F::SUBFLOW);
    let mut pm = KernelPm::new(std::slice::from_ref(&e1), Limits::default(), &[]);
    established(&mut pm);
    let mut changed = e1.clone();
    changed.flags = F::SUBFLOW | F::BACKUP;
    let out = run(&mut pm, T0, E::EndpointChanged(changed.clone()));
    assert_eq!(
        out,
        vec![C::SetBackup {
            local: ip("10.0.2.1"),
            remote: sa(REMOTE),
            backup: true
        }]
    );
    // Same flags again: nothing.
    assert!(run(&mut pm, T0, E::EndpointChanged(changed)).is_empty());
    let out = run(&mut pm, T0, E::EndpointChanged(e1));
    assert_eq!(
        out,
        vec![C::SetBackup {
            local: ip("10.0.2.1"),
            remote: sa(REMOTE),
            backup: false
        }]
    );
    // Unknown endpoint: nothing.
    assert!(run(
        &mut pm,
        T0,
        E::EndpointChanged(ep(7, "10.0.7.1", F::BACKUP))
    )
    .is_empty());
}

#[test]
fn raising_the_limits_opens_more_subflows() {
    let eps = [ep(1, "10.0.2.1", F::SUBFLOW), ep(2, "10.0.3.1", F::SUBFLOW)];
    let mut pm = KernelPm::new(&eps, limits(1, 0), &[]);
    assert_eq!(established(&mut pm).len(), 1);
    let out = run(&mut pm, T0, E::LimitsChanged(limits(2, 0)));
    assert_eq!(out, vec![create("10.0.3.1", 2, REMOTE, 0, false)]);
    assert_eq!(pm.subflows(), 2);
}

#[test]
fn ipv6_subflow_endpoints_skip_an_ipv4_peer() {
    let mut pm = KernelPm::new(&[ep(1, "fd00::1", F::SUBFLOW)], Limits::default(), &[]);
    assert!(established(&mut pm).is_empty());
    assert_eq!(pm.subflows(), 0);
}

#[test]
fn peer_priority_is_kept_for_a_recreated_subflow() {
    let mut pm = KernelPm::new(&[ep(1, "10.0.2.1", F::SUBFLOW)], Limits::default(), &[]);
    established(&mut pm);
    let a = addrs("10.0.2.1:40001", REMOTE);
    assert!(run(
        &mut pm,
        T0,
        E::SubflowPriority {
            addrs: a,
            backup: true
        }
    )
    .is_empty());
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: a,
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(
        run(&mut pm, at(1), E::Timeout),
        vec![create("10.0.2.1", 1, REMOTE, 0, true)]
    );
}

#[test]
fn a_closed_connection_stops_everything() {
    let eps = [ep(1, "10.0.2.1", F::SUBFLOW), ep(2, "10.0.3.1", F::SIGNAL)];
    let mut pm = KernelPm::new(&eps, limits(2, 2), &[]);
    established(&mut pm);
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: addrs("10.0.2.1:1", REMOTE),
            error: Some(SubflowError::Timeout),
        },
    );
    assert!(pm.poll_timeout().is_some());
    assert!(run(&mut pm, T0, E::ConnectionClosed).is_empty());
    assert_eq!(pm.poll_timeout(), None);
    assert!(run(&mut pm, at(500), E::Timeout).is_empty());
    assert!(run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.9.2"),
            port: None
        }
    )
    .is_empty());
    assert!(run(&mut pm, T0, E::EndpointAdded(ep(3, "10.0.4.1", F::SUBFLOW))).is_empty());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn arb_event() -> impl Strategy<Value = (u64, E)> {
        let host = 1u8..5;
        let ev = prop_oneof![
            (host.clone(), 0u8..6).prop_map(|(h, id)| E::AddAddrReceived {
                id,
                addr: IpAddr::from([10, 0, h, 2]),
                port: None,
            }),
            (0u8..6).prop_map(|id| E::AddAddrEchoed { id }),
            proptest::collection::vec(0u8..6, 0..3).prop_map(|ids| E::RemoveAddrReceived { ids }),
            (host.clone(), host.clone(), 0u8..6).prop_map(|(l, r, id)| E::JoinRequested {
                addrs: SubflowAddrs {
                    local: SocketAddr::from(([10, 0, l, 1], 443)),
                    remote: SocketAddr::from(([10, 0, r, 2], 5000)),
                },
                remote_id: id,
                backup: false,
            }),
            (host.clone(), host.clone(), any::<bool>()).prop_map(|(l, r, fail)| E::SubflowClosed {
                addrs: SubflowAddrs {
                    local: SocketAddr::from(([10, 0, l, 1], 40000)),
                    remote: SocketAddr::from(([10, 0, r, 2], 443)),
                },
                error: fail.then_some(SubflowError::Timeout),
            }),
            (host.clone(), host.clone()).prop_map(|(l, r)| E::SubflowEstablished {
                addrs: SubflowAddrs {
                    local: SocketAddr::from(([10, 0, l, 1], 40000)),
                    remote: SocketAddr::from(([10, 0, r, 2], 443)),
                },
            }),
            (1u8..6, host.clone(), 0u8..16).prop_map(|(id, h, bits)| E::EndpointAdded(
                PmEndpoint {
                    id,
                    addr: IpAddr::from([10, 0, h, 1]),
                    port: None,
                    dev: None,
                    flags: F::from_bits(bits),
                }
            )),
            (1u8..6, host.clone()).prop_map(|(id, h)| E::EndpointRemoved(PmEndpoint {
                id,
                addr: IpAddr::from([10, 0, h, 1]),
                port: None,
                dev: None,
                flags: F::SUBFLOW,
            })),
            Just(E::Timeout),
        ];
        (0u64..200, ev)
    }

    proptest! {
        #[test]
        fn limits_hold_under_any_event_sequence(
            sub_limit in 0u32..4,
            acc_limit in 0u32..4,
            events in proptest::collection::vec(arb_event(), 0..60),
        ) {
            let eps = [ep(1, "10.0.2.1", F::SUBFLOW | F::FULLMESH), ep(2, "10.0.3.1", F::SIGNAL)];
            let lim = limits(sub_limit, acc_limit);
            let mut pm = KernelPm::new(&eps, lim, &[ip("10.0.1.1"), ip("10.0.4.1")]);
            established(&mut pm);
            let mut now = T0;
            for (dt, ev) in events {
                now += Duration::from_secs(dt);
                let out = run(&mut pm, now, ev);
                prop_assert!(pm.subflows() <= lim.subflows, "subflows over the limit");
                prop_assert!(pm.add_addr_accepted() <= lim.add_addr_accepted, "accepted over the limit");
                prop_assert!(out.len() <= 32, "unbounded output");
                if let Some(t) = pm.poll_timeout() {
                    prop_assert!(t > T0);
                }
            }
        }
    }
}

/// The peer set C on its MP_CAPABLE: nothing goes to its initial address: a `subflow`
/// endpoint opens nothing, a `fullmesh` one only joins announced addresses, and the initial
/// subflow is not re-created as a join (the kernel's `remote_deny_join_id0`).
#[test]
fn no_subflow_to_the_initial_address_of_a_peer_that_set_c() {
    let eps = [
        ep(1, "10.0.2.1", F::SUBFLOW),
        ep(2, "10.0.3.1", F::SUBFLOW | F::FULLMESH),
    ];
    let mut pm = KernelPm::new(&eps, limits(4, 2), &[]);
    let deny = E::ConnectionEstablished {
        local: sa(LOCAL),
        remote: sa(REMOTE),
        remote_denies_join: true,
    };
    assert!(run(&mut pm, T0, deny).is_empty());
    assert_eq!(pm.subflows(), 0);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 5,
            addr: ip("10.0.9.2"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 5,
                addr: ip("10.0.9.2"),
                port: None
            },
            create("10.0.3.1", 2, "10.0.9.2:443", 5, false),
        ]
    );
    run(
        &mut pm,
        T0,
        E::SubflowClosed {
            addrs: addrs(LOCAL, REMOTE),
            error: Some(SubflowError::Timeout),
        },
    );
    assert_eq!(
        pm.poll_timeout(),
        None,
        "the initial subflow is not re-created"
    );
    assert!(run(&mut pm, at(100), E::Timeout).is_empty());
}

/// A `subflow` endpoint of the other family than the connection's is skipped when the
/// connection is established (the kernel's address families check) and used for an
/// address of its family the peer announces, with its id.
#[test]
fn an_endpoint_of_the_other_family_serves_announced_addresses_of_its_family() {
    let eps = [ep(1, "fd00:2::2", F::SUBFLOW)];
    let mut pm = KernelPm::new(&eps, limits(2, 1), &[ip("10.0.1.1")]);
    assert!(
        established(&mut pm).is_empty(),
        "no IPv6 subflow to an IPv4 peer"
    );
    assert_eq!(pm.subflows(), 0);
    let out = run(
        &mut pm,
        T0,
        E::AddAddrReceived {
            id: 3,
            addr: ip("fd00:2::1"),
            port: None,
        },
    );
    assert_eq!(
        out,
        vec![
            C::AcceptAddAddr {
                id: 3,
                addr: ip("fd00:2::1"),
                port: None
            },
            create("fd00:2::2", 1, "[fd00:2::1]:443", 3, false),
        ]
    );
    assert_eq!(pm.subflows(), 1);
}
