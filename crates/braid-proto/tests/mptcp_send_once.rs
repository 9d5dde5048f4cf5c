//! The data an MPTCP connection sends lives once, in its data-level buffer: every subflow's
//! segments and retransmissions are cut from there (the subflows' TCBs count bytes and
//! keep none), and a DATA_ACKed byte stays while a subflow may still have to send it. A
//! subflow that lags far behind (its path died) takes a copy of its own bytes instead of
//! holding the whole buffer, so the transfer goes on over the other path.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use braid_proto::mptcp::MptcpConfig;
use conn_pair::{Faults, Pair};

fn subflows_keeping_bytes(p: &Pair) -> Vec<bool> {
    (0..2)
        .filter_map(|i| p.client.subflow(i).map(|t| t.keeps_send_bytes()))
        .collect()
}

#[test]
fn both_subflows_send_from_the_one_buffer_byte_exact() {
    let mut p = Pair::two_paths(MptcpConfig::default(), Faults::default());
    p.establish_and_join();
    assert!(p.client.is_subflow_established(1));
    p.transfer(4 << 20, 1 << 20);
    assert!(
        p.paths[0].up_bytes > 0 && p.paths[1].up_bytes > 0,
        "{:?}",
        p.up_bytes()
    );
    assert_eq!(subflows_keeping_bytes(&p), [false, false]);
}

#[test]
fn with_loss_retransmissions_come_from_the_one_buffer() {
    let faults = Faults {
        loss_per_mille: 20,
        ..Faults::default()
    };
    let mut p = Pair::two_paths(MptcpConfig::default(), faults);
    p.establish_and_join();
    p.transfer(2 << 20, 0);
    assert_eq!(subflows_keeping_bytes(&p), [false, false]);
}

#[test]
fn with_checksums_every_mapping_is_summed_from_the_one_buffer() {
    let cfg = MptcpConfig {
        checksum: true,
        ..MptcpConfig::default()
    };
    let faults = Faults {
        loss_per_mille: 10,
        ..Faults::default()
    };
    let mut p = Pair::two_paths(cfg, faults);
    p.establish_and_join();
    p.transfer(2 << 20, 256 << 10);
    let srv = p.server.as_ref().expect("server");
    assert_eq!(srv.counters().DataCsumErr, 0);
    assert!(p.client.is_mptcp() && srv.is_mptcp());
}

#[test]
fn a_subflow_on_a_dead_path_copies_its_bytes_out_and_the_transfer_goes_on() {
    // A small buffer: the dead subflow's bytes fall more than a buffer behind soon.
    let cfg = MptcpConfig {
        send_buffer: 256 << 10,
        ..MptcpConfig::default()
    };
    let mut p = Pair::two_paths(cfg, Faults::default());
    p.paths[1].kill_after = Some(200_000);
    p.establish_and_join();
    p.transfer(8 << 20, 0);
    assert!(p.paths[1].dead, "path 1 died");
    // The subflow on it still holds what it sent (its retransmissions back off) in a copy
    // of its own, or was closed meanwhile.
    let t = p.client.subflow(1).expect("subflow 1");
    assert!(
        t.keeps_send_bytes() || t.state() == braid_proto::TcpState::Closed,
        "{:?}",
        t.state()
    );
}
