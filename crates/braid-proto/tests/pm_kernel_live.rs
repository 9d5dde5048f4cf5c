//! KernelPm, event by event (the first part is `pm_kernel.rs`): failed subflows re-created
//! with backoff, endpoints and limits changed on a live connection, priorities kept, a
//! closed connection, property tests, and the peer's C flag and address families.

#[path = "common/pm.rs"]
mod pm;
use pm::*;

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
