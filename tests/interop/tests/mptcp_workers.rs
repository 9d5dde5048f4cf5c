//! braid with two workers (`--workers 2`: two threads, each with its own engine and its own
//! queue of every multi-queue TUN device) against the kernel, in both roles.
//!
//! - As a server: 16 kernel MPTCP echo clients at once (8 MiB each way, long enough for
//!   every join to be made while its connection lives), each joining braid's first address
//!   through the second device. The kernel hands each connection's packets to the queue of
//!   the worker that wrote its last packet, and each join's SYN to the queue its hash picks:
//!   every join must still reach the worker owning its token, and every echo must come
//!   back byte-exact. The control plane, served by the first worker, counts every worker's
//!   joins.
//! - As a client: one connection joining from the second path sends 16 MiB to a kernel
//!   sink, byte-exact.
//!
//! Namespace `braid-<case>-<pid>-<n>`, multi-queue TUNs `braid0` and `braid1`, the kernel on
//! 10.0.0.1/24 and 10.1.0.1/24, braid on .2 behind them.

use std::time::Duration;

use braid_interop::mptcp::{
    assert_kernel, kernel_subflow_endpoint, kernel_view, tun_paths_with, wait_until,
};
use braid_interop::{assert_received, assert_sent, require_root, Cmd, TempDir, SIGINT};

const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");
const KECHO: &str = env!("CARGO_BIN_EXE_kecho");
const PATHS: &str = "--path braid0=10.0.0.2 --path braid1=10.1.0.2";
const CLIENTS: u64 = 16;

#[test]
fn two_workers_serve_kernel_clients_and_every_join_reaches_its_worker() {
    if !require_root("two_workers_serve_kernel_clients_and_every_join_reaches_its_worker") {
        return;
    }
    let Some(ns) = tun_paths_with("wk1", &["10.0.0.1/24", "10.1.0.1/24"], 2, 0, true) else {
        return;
    };
    kernel_subflow_endpoint(&ns);
    let dir = TempDir::new("wk1").expect("temporary directory");
    let ctl = dir.path().join("ctl.sock");
    let ctl = ctl.to_string_lossy();
    let braid = ns
        .start_ready(
            &Cmd::braid(&format!(
                "listen --port 7000 {PATHS} --echo --workers 2 --ctl {ctl} --json"
            )),
            "listening",
        )
        .expect("braid listen");
    let out = ns
        .command(KECHO)
        .args([
            "clients",
            "10.0.0.2:7000",
            "--n",
            &CLIENTS.to_string(),
            "--bytes",
            "8388608",
            "--time-limit",
            "120",
        ])
        .output()
        .expect("kecho clients");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kecho's JSON line");
    if report["completed"] != CLIENTS || report["failed"] != 0 {
        // braid's own account of every connection tells which side ended the stream.
        let _ = braid.signal(SIGINT);
        let done = braid.wait_within(Duration::from_secs(30));
        panic!("kecho: {report}\nbraid: {done:?}");
    }
    // Every connection joined, and no join was refused on the way to its worker.
    wait_until("the kernel's joins", &ns, || {
        braid_interop::mptcp::counter(&ns, "MPJoinSynAckRx") >= CLIENTS
    });
    assert_kernel(&ns, "MPJoinSynTx", CLIENTS);
    assert_kernel(&ns, "MPJoinSynAckRx", CLIENTS);
    assert_kernel(&ns, "MPCapableSYNACKRX", CLIENTS);
    let counters = ns
        .run_ok(&Cmd::braid(&format!("counters --ctl {ctl} --json")))
        .stdout;
    let counters: serde_json::Value =
        serde_json::from_str(&counters).expect("braid counters' JSON");
    let c = counters.get("counters").unwrap_or(&counters);
    assert_eq!(c["MPJoinAckRx"], CLIENTS, "{counters}");
    assert_eq!(c["MPJoinNoTokenFound"], 0, "{counters}");
    assert_eq!(c["MPCapableACKRX"], CLIENTS, "{counters}");
    braid.signal(SIGINT).expect("SIGINT");
    let done = braid
        .wait_within(Duration::from_secs(30))
        .expect("braid listen");
    assert!(done.success, "braid failed: {}", done.stderr);
}

#[test]
fn two_workers_connect_and_join_to_a_kernel_server() {
    if !require_root("two_workers_connect_and_join_to_a_kernel_server") {
        return;
    }
    let Some(ns) = tun_paths_with("wk2", &["10.0.0.1/24", "10.1.0.1/24"], 2, 2, true) else {
        return;
    };
    const BYTES: u64 = 16 << 20;
    let (c, s) = ns.exchange(
        &Cmd::new(
            KPEER,
            "listen --port 5401 --proto mptcp --sink --hold-open --json",
        ),
        &Cmd::braid(&format!(
            "connect 10.0.0.1:5401 {PATHS} --subflow 10.1.0.2 --workers 2 --send {BYTES} --json"
        )),
    );
    let braid = c.json();
    assert_sent(&braid, BYTES);
    assert_received(&s.json(), BYTES);
    assert_eq!(braid["workers"], 2, "{braid}");
    assert_eq!(
        braid["counters"]["MPJoinSynAckRx"],
        1,
        "{braid}; kernel counters: {}",
        kernel_view(&ns)
    );
    assert_kernel(&ns, "MPJoinAckRx", 1);
}
