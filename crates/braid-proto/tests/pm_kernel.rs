//! KernelPm: the in-kernel path manager's rules, event by event: endpoints, limits,
//! announcements, joins and removals (`pm_kernel_live.rs` has re-creation after failures,
//! live changes, the closed connection and the property tests).

#[path = "common/pm.rs"]
mod pm;
use pm::*;

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
