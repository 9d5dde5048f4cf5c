//! MP_JOIN (RFC 8684 §3.2) between two in-process `MptcpConnection`s over two simulated
//! paths: the client adds a second subflow after the MP_CAPABLE handshake, both subflows
//! carry data, forged HMACs are refused and counted, and a dying path's data is reinjected.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use braid_proto::mptcp::connection::{JoinError, JoinParams};
use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::tcp::{TcpFlags, TcpOptions};
use braid_proto::wire::TcpRepr;
use braid_proto::TcpState;
use conn_pair::{params, Faults, Pair, CLIENT_KEY};

/// The two-path pair whose path 1 dies once `after` payload bytes crossed it.
fn killing_path1(cfg: MptcpConfig, after: u64) -> Pair {
    let mut n = Pair::two_paths(cfg, Faults::default());
    n.paths[1].kill_after = Some(after);
    n
}

#[test]
fn two_subflows_both_carry_data_byte_exact() {
    let mut n = Pair::two_paths(MptcpConfig::default(), Faults::default());
    n.establish_and_join();
    assert!(n.client.is_subflow_established(1));
    let srv = n.server.as_ref().expect("server");
    assert!(srv.is_subflow_established(1));
    assert_eq!(srv.counters().MPJoinSynRx, 1);
    assert_eq!(srv.counters().MPJoinAckRx, 1);
    assert_eq!(n.client.counters().MPJoinSynAckRx, 1);
    assert_eq!(n.client.counters().MPJoinSynTx, 1);
    assert_eq!(n.client.subflow_info(1), Some((1, 1, false)));
    assert_eq!(srv.subflow_info(1), Some((1, 1, false)));

    n.transfer(4 << 20, 2 << 20);
    assert!(!n.early_data, "data on the join before the fourth ACK");
    assert!(
        n.paths[0].up_bytes > 0 && n.paths[1].up_bytes > 0,
        "{:?}",
        n.up_bytes()
    );
    assert!(
        n.paths[0].down_bytes > 0 && n.paths[1].down_bytes > 0,
        "{:?}",
        n.down_bytes()
    );
    assert!(n.client.is_mptcp());
    assert_eq!(n.client.info().subflows, 1);
}

#[test]
fn forged_synack_hmac_is_reset_and_counted() {
    let faults = Faults {
        forge_join_synack: true,
        ..Faults::default()
    };
    let mut n = Pair::two_paths(MptcpConfig::default(), faults);
    n.establish_and_join();
    assert!(!n.client.is_subflow_established(1));
    assert_eq!(n.client.counters().MPJoinSynAckHMacFailure, 1);
    assert_eq!(n.client.counters().MPJoinSynAckRx, 0);
    assert!(n.mp_tcprst[0] >= 1, "MP_TCPRST towards the server");
    assert_eq!(
        n.client.subflow(1).map(|t| t.state()),
        Some(TcpState::Closed)
    );
    // The connection goes on over the initial subflow.
    n.transfer(256 << 10, 64 << 10);
    assert_eq!(n.paths[1].up_bytes, 0);
}

#[test]
fn forged_third_ack_hmac_is_reset_and_counted() {
    let faults = Faults {
        forge_join_ack: true,
        ..Faults::default()
    };
    let mut n = Pair::two_paths(MptcpConfig::default(), faults);
    n.establish_and_join();
    // Give the client's subflow time to see the reset.
    for _ in 0..200 {
        if !n.step() {
            break;
        }
    }
    let srv = n.server.as_ref().expect("server");
    assert_eq!(srv.counters().MPJoinAckHMacFailure, 1);
    assert_eq!(srv.counters().MPJoinAckRx, 0);
    assert!(!srv.is_subflow_established(1));
    assert!(n.mp_tcprst[1] >= 1, "MP_TCPRST towards the client");
    assert_eq!(srv.counters().MPRstTx, 1);
    assert!(!n.client.is_subflow_established(1));
    n.transfer(256 << 10, 64 << 10);
    assert_eq!(n.paths[1].up_bytes, 0, "no data on a refused subflow");
}

/// A segment without MP_JOIN that reaches the responder before the third ACK (reordered:
/// Linux sends its DATA_FIN on every subflow, a join not yet acknowledged too, and two
/// braid workers once let it overtake the third ACK) does not complete the handshake: it is
/// dropped, and the third ACK that follows establishes the join.
#[test]
fn a_segment_overtaking_the_third_ack_does_not_fail_the_join() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut n = Pair::two_paths(MptcpConfig::default(), Faults::default());
    // Every copy of the third ACK is held back until the test lets it go.
    let held: Rc<RefCell<Option<TcpRepr>>> = Rc::default();
    let release = Rc::new(RefCell::new(false));
    let (h, r) = (held.clone(), release.clone());
    n.filter = Some(Box::new(move |_, to_server, repr, _| {
        let third = to_server
            && repr
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::MpJoinAck { .. }));
        if third && !*r.borrow() {
            h.borrow_mut().get_or_insert_with(|| repr.clone());
            return false;
        }
        true
    }));
    let mut joined = false;
    for _ in 0..10_000 {
        if !joined && n.client.take_events().established {
            assert_eq!(n.join(1), 1);
            joined = true;
        }
        if held.borrow().is_some() || !n.step() {
            break;
        }
    }
    let third = held.borrow().clone().expect("the third ACK was sent");
    // What overtakes it: the same ACK with a DSS instead of MP_JOIN.
    let mut other = third.clone();
    other.options.mptcp = vec![MptcpOption::Dss(braid_proto::wire::mptcp::Dss {
        data_ack: Some(0),
        data_ack_64: false,
        mapping: None,
        data_fin: false,
    })]
    .into();
    n.send(true, 1, other, &[]);
    for _ in 0..5 {
        n.step();
    }
    let srv = n.server.as_ref().expect("server");
    assert_eq!(srv.counters().MPJoinAckHMacFailure, 0);
    assert!(!srv.is_subflow_established(1), "not before the third ACK");
    *release.borrow_mut() = true;
    n.send(true, 1, third, &[]);
    for _ in 0..50 {
        n.step();
    }
    let srv = n.server.as_ref().expect("server");
    assert_eq!(srv.counters().MPJoinAckRx, 1);
    assert_eq!(srv.counters().MPJoinAckHMacFailure, 0);
    assert!(srv.is_subflow_established(1));
    n.transfer(256 << 10, 256 << 10);
    assert!(n.paths[1].up_bytes > 0, "the join carries data");
}

#[test]
fn a_dying_path_completes_on_the_other() {
    let mut cfg = MptcpConfig::default();
    cfg.tcp.max_retransmissions = 3;
    let mut n = killing_path1(cfg, 300_000);
    n.establish_and_join();
    assert!(n.client.is_subflow_established(1));
    n.transfer(4 << 20, 0);
    assert!(n.paths[1].dead);
    assert!(n.paths[1].up_bytes > 0);
    assert!(n.client.counters().SubflowStale >= 1);
}

#[test]
fn a_stale_path_is_bypassed_long_before_its_subflow_gives_up() {
    // With Linux's 15 retransmissions the dead subflow's TCB would take minutes to give
    // up; the transfer completes because the stale subflow's data is reinjected at once.
    let cfg = MptcpConfig::default();
    let mut n = killing_path1(cfg, 300_000);
    n.establish_and_join();
    n.transfer(4 << 20, 0);
    assert!(n.paths[1].dead);
    assert_eq!(n.client.counters().SubflowStale, 1);
    assert_ne!(
        n.client.subflow(1).map(|t| t.state()),
        Some(TcpState::Closed),
        "completed without waiting for the dead subflow to time out"
    );
}

#[test]
fn subflow_limit_and_not_mptcp_are_refused() {
    let cfg = MptcpConfig {
        max_subflows: 0,
        ..MptcpConfig::default()
    };
    let mut c = MptcpConnection::connect(&cfg, params(1, 2, 3), CLIENT_KEY);
    let join = JoinParams {
        local_id: 1,
        remote_id: 0,
        backup: true,
        nonce: 7,
    };
    // Before the handshake no keys: refused.
    assert_eq!(
        c.add_subflow(params(5, 2, 9), join),
        Err(JoinError::NotMptcp)
    );
    // Established with a limit of 0 additional subflows: refused on both sides.
    let mut n = Pair::two_paths(cfg, Faults::default());
    for _ in 0..100 {
        n.step();
    }
    assert!(n.client.is_mptcp());
    assert_eq!(
        n.client.add_subflow(params(5, 80, 9), join),
        Err(JoinError::Limit)
    );
    let mut syn = TcpRepr {
        src_port: 5,
        dst_port: 80,
        seq: 100,
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    };
    syn.options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 3,
        token: n.server.as_ref().expect("server").local_token(),
        nonce: 1,
    });
    let srv = n.server.as_mut().expect("server");
    assert_eq!(
        srv.accept_join(n.now, params(80, 5, 1), &syn, 1, 2, false),
        Err(JoinError::Limit)
    );
    assert_eq!(srv.counters().MPJoinSynRx, 1);
    // A wrong token is not a join for this connection.
    syn.options.mptcp.clear();
    syn.options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 3,
        token: srv.local_token() ^ 1,
        nonce: 1,
    });
    assert_eq!(
        srv.accept_join(n.now, params(80, 5, 1), &syn, 1, 2, false),
        Err(JoinError::NotJoin)
    );
}

#[test]
fn every_scheduler_moves_data_byte_exact_over_two_subflows_and_survives_a_dead_path() {
    use braid_proto::sched::SchedulerKind;
    for kind in [
        SchedulerKind::Default,
        SchedulerKind::MinRtt,
        SchedulerKind::RoundRobin,
        SchedulerKind::Redundant,
        SchedulerKind::Blest,
    ] {
        let cfg = MptcpConfig {
            scheduler: kind,
            ..MptcpConfig::default()
        };
        let mut n = Pair::two_paths(cfg.clone(), Faults::default());
        n.establish_and_join();
        n.transfer(2 << 20, 1 << 20);
        assert!(
            n.paths[0].up_bytes > 0 && n.paths[1].up_bytes > 0,
            "{kind}: {:?}",
            n.up_bytes()
        );
        let mut n = killing_path1(cfg, 100_000);
        n.establish_and_join();
        n.transfer(2 << 20, 0);
        assert!(n.paths[1].dead, "{kind}");
    }
}

#[test]
fn full_info_lists_every_subflow_and_marks_the_stale_one() {
    let mut n = killing_path1(MptcpConfig::default(), 100_000);
    n.establish_and_join();
    let infos = n.client.subflow_infos();
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.established && !i.stale && !i.closed));
    assert_eq!((infos[1].local_id, infos[1].backup), (1, false));
    n.transfer(2 << 20, 0);
    let infos = n.client.subflow_infos();
    assert!(
        infos[1].stale && infos[1].stale_count == 1,
        "{:?}",
        infos[1]
    );
    assert!(infos[1].retransmits >= 1);
    assert!(infos[0].bytes_acked > infos[1].bytes_acked);
}
