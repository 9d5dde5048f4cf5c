//! Received bytes are copied once inside the engine: a segment's in-order payload that a
//! mapping without checksum places in the data stream goes straight from the segment into
//! the connection's data-level buffer. Only bytes that must wait (out of order on their
//! subflow, not mapped yet, or covered by a checksum still to verify) are held in the
//! subflow's own buffer first, as every byte was before.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use conn_pair::{run, Faults, Pair, Transfer};

fn transfer(up: usize, down: usize) -> Transfer {
    Transfer {
        up,
        down,
        ..Transfer::default()
    }
}

/// Per subflow of `c`: (bytes received, bytes of them that passed the subflow's buffer by).
fn received(c: &MptcpConnection, subflows: usize) -> Vec<(u64, u64)> {
    (0..subflows)
        .filter_map(|i| c.subflow(i).map(|t| (t.bytes_received(), t.bytes_passed())))
        .collect()
}

/// All but the first segment's bytes (the client's first data rides on the MP_CAPABLE
/// of the third ACK, whose mapping is implicit) and a few of the end.
fn nearly_all_passed((got, passed): (u64, u64)) -> bool {
    got > 0 && passed + 4096 >= got
}

#[test]
fn in_order_bytes_go_straight_to_the_data_level_in_both_directions() {
    let p = run(
        MptcpConfig::default(),
        Faults::default(),
        7,
        transfer(4 << 20, 2 << 20),
    );
    let srv = p.server.as_ref().expect("server");
    let (up, down) = (received(srv, 1)[0], received(&p.client, 1)[0]);
    assert!(nearly_all_passed(up), "upload {up:?}");
    assert!(nearly_all_passed(down), "download {down:?}");
}

#[test]
fn over_two_subflows_each_places_its_bytes_directly() {
    let mut p = Pair::two_paths(MptcpConfig::default(), Faults::default());
    p.establish_and_join();
    assert!(p.client.is_subflow_established(1));
    p.transfer(4 << 20, 0);
    assert!(p.paths[0].up_bytes > 0 && p.paths[1].up_bytes > 0);
    let srv = received(p.server.as_ref().expect("server"), 2);
    assert!(srv.iter().all(|&r| nearly_all_passed(r)), "{srv:?}");
}

#[test]
fn with_loss_and_reordering_bytes_that_wait_and_bytes_that_pass_arrive_byte_exact() {
    // Segments behind a hole wait in the subflow; the retransmission fills it and they move
    // on, while later in-order segments pass by again (`run` checks every byte).
    for seed in 1..=4 {
        let faults = Faults {
            loss_per_mille: 20,
            reorder_per_mille: 20,
            ..Faults::default()
        };
        let p = run(
            MptcpConfig::default(),
            faults,
            seed,
            transfer(1 << 20, 512 << 10),
        );
        let (got, passed) = received(p.server.as_ref().expect("server"), 1)[0];
        assert!(
            passed > 0 && passed < got,
            "seed {seed}: {got} received, {passed} passed"
        );
    }
}

#[test]
fn checksummed_mappings_are_verified_whole_in_the_subflow_first() {
    let cfg = MptcpConfig {
        checksum: true,
        ..MptcpConfig::default()
    };
    let p = run(cfg, Faults::default(), 5, transfer(1 << 20, 0));
    let srv = p.server.as_ref().expect("server");
    assert_eq!(srv.counters().DataCsumErr, 0);
    let (got, passed) = received(srv, 1)[0];
    assert!(
        got >= 1 << 20 && passed == 0,
        "{got} received, {passed} passed"
    );
}
