//! `braid sim` scenarios with one path run MPTCP end to end (MP_CAPABLE, DSS mappings and
//! DATA_ACKs on every segment), byte-exact, with the counters of both endpoints; in simulated
//! time. Goodput is printed for the record (`--nocapture`), never asserted.

use braid_sim::scenario::{self, Scenario, SimConfig, SimError, SimResult};

fn run(name: &str, bytes: u64, seed: u64) -> SimResult {
    let scenario = Scenario::by_name(name).expect("built-in scenario");
    let cfg = SimConfig {
        bytes,
        seed,
        ..SimConfig::default()
    };
    let r = scenario::run(&scenario, &cfg).expect("run");
    assert!(
        r.integrity_ok(bytes),
        "{name}: not byte-exact: completed={} received={} client_err={:?} server_err={:?}",
        r.completed,
        r.server.received.bytes(),
        r.client.error,
        r.server.error
    );
    println!(
        "{name} seed {seed}: {bytes} bytes over MPTCP, goodput {:.1} Mbit/s",
        r.goodput_mbps()
    );
    r
}

#[test]
fn single_path_runs_mptcp() {
    let r = run("single-path", 16 << 20, 1);
    assert!(r.mptcp, "no fallback on a clean path");
    let (c, s) = (r.client_counters, r.server_counters);
    assert_eq!(c.MPCapableSYNTX, 1);
    assert_eq!(c.MPCapableSYNACKRX, 1);
    assert_eq!(s.MPCapableSYNRX, 1);
    assert_eq!(s.MPCapableACKRX, 1);
    for k in [c, s] {
        assert_eq!(k.DSSNotMatching + k.DataCsumErr + k.MPRstTx, 0);
        assert_eq!(k.MPCapableFallbackACK + k.MPCapableFallbackSYNACK, 0);
    }
}

#[test]
fn lossy_runs_mptcp_byte_exact_for_several_seeds() {
    for seed in 1..=3 {
        let r = run("lossy", 4 << 20, seed);
        assert!(r.mptcp);
        assert_eq!(r.server_counters.MPRstTx + r.client_counters.MPRstTx, 0);
    }
}

#[test]
fn plain_tcp_still_runs_with_tcp() {
    let scenario = Scenario::by_name("single-path").expect("scenario");
    let cfg = SimConfig {
        bytes: 1 << 20,
        tcp: true,
        ..SimConfig::default()
    };
    let r = scenario::run(&scenario, &cfg).expect("run");
    assert!(r.integrity_ok(1 << 20));
    assert!(!r.mptcp);
    assert_eq!(r.client_counters.MPCapableSYNTX, 0);
}

#[test]
fn multi_path_scenarios_are_refused_clearly_with_plain_tcp() {
    let scenario = Scenario::by_name("failover").expect("failover exists");
    let cfg = SimConfig {
        tcp: true,
        ..SimConfig::default()
    };
    match scenario::run(&scenario, &cfg) {
        Err(e @ SimError::NeedsMptcp(_)) => {
            assert!(e.to_string().contains("needs MPTCP"), "{e}");
        }
        other => panic!("failover with --tcp: {other:?}"),
    }
}

#[test]
fn two_paths_joins_a_second_subflow_and_uses_both() {
    let r = run("two-paths", 16 << 20, 1);
    assert!(r.mptcp);
    let (c, s) = (r.client_counters, r.server_counters);
    assert_eq!(c.MPJoinSynTx, 1);
    assert_eq!(c.MPJoinSynAckRx, 1);
    assert_eq!(s.MPJoinSynRx, 1);
    assert_eq!(s.MPJoinAckRx, 1);
    assert_eq!(s.MPJoinAckHMacFailure + c.MPJoinSynAckHMacFailure, 0);
    assert_eq!(r.links.len(), 2);
    // Both paths carried well more than handshakes towards the server.
    for (i, (up, _)) in r.links.iter().enumerate() {
        assert!(up.delivered_bytes > 1 << 20, "path {i}: {up:?}");
    }
}
