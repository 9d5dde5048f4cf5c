//! braid as the *server* of the multipath cases (issue 4: every case in both roles): a
//! kernel MPTCP client joins `braid listen` on a second path, and braid sends as much as it
//! receives (`--echo`), so braid's own scheduler, failover and subflow handling are on
//! trial, not only the kernel's.
//!
//! - case 4: the kernel client deletes the endpoint of its joined subflow mid-transfer;
//!   braid drops that subflow and sends what it held again on the other;
//! - case 5: `braid listen --backup ADDR`: the join the kernel makes to that address is a
//!   backup on both sides (braid's SYN/ACK carries the B bit, the kernel counts
//!   `MPJoinSynAckBackupRx`), idle while the first path works, and it carries both
//!   directions once the first path's device goes down;
//! - case 6: two working subflows, the second path's device goes down mid-transfer: both
//!   directions complete on the first;
//! - case 7: one connection mixing IPv4 and IPv6: the kernel client's first subflow is
//!   IPv4, and it joins the IPv6 address braid announces.
//!
//! Layout as in `mptcp_multipath.rs`: namespace `braid-<case>-<pid>-<n>`, TUNs `braid0` and
//! `braid1`, the kernel on 10.0.0.1/24 and 10.1.0.1/24, braid on .2 behind them. 32 MiB each
//! way, byte-exact (SHA-256 of the pattern stream on both sides), the kernel's MPTcpExt
//! counters and braid's JSON report checked. Cases 4 to 6 act while the kernel's reader is
//! paused at a known point of the echo (`kpeer --gate`, its receive buffer capped at 4 MiB),
//! so the event always lands mid-transfer, then let the transfer go on.

use std::time::Duration;

use braid_interop::mptcp::{
    assert_braid_min, assert_clean, assert_clean_but, assert_kernel, assert_kernel_min,
    cap_kernel_rcvbuf, counter, kernel_subflow_endpoint, subflows_on, tun_paths, wait_until, Gates,
};
use braid_interop::{assert_received, assert_sent, require_root, Cmd, Finished, Netns, Proc};

const BYTES: u64 = 32 << 20;
const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");
const PATHS: &str = "--path braid0=10.0.0.2 --path braid1=10.1.0.2";

fn kpeer(line: &str) -> Cmd {
    Cmd::new(KPEER, line)
}

/// `braid0` and `braid1` with the kernel on 10.0.0.1/24 and 10.1.0.1/24, its limits at 2
/// subflows and `add_addr_accepted`, its receive buffer capped (a paused reader stops braid
/// soon after).
fn two_paths(prefix: &str, add_addr_accepted: u8) -> Option<Netns> {
    let ns = tun_paths(
        prefix,
        &["10.0.0.1/24", "10.1.0.1/24"],
        2,
        add_addr_accepted,
    )?;
    cap_kernel_rcvbuf(&ns);
    Some(ns)
}

/// `braid listen ... --echo --once --json` with `extra` options, ready.
fn braid_echo(ns: &Netns, port: u16, extra: &str) -> Proc {
    ns.start_ready(
        &Cmd::braid(&format!(
            "listen --port {port} {PATHS} {extra} --echo --once --json"
        )),
        "listening",
    )
    .expect("braid listen")
}

/// The kernel client sending 32 MiB and reading the echo, its reader pausing once `at`
/// echoed bytes arrived (printing `paused after AT`) until gate `go` opens: the test acts
/// at a point of the transfer it knows, however slow the machine.
fn kernel_client(ns: &Netns, g: &Gates, port: u16, at: u64) -> Proc {
    let cmd = kpeer(&format!(
        "connect 10.0.0.2:{port} --proto mptcp --send {BYTES} --json"
    ));
    ns.start(&g.arg(cmd, at, "go")).expect("kpeer connect")
}

/// The setup of the cases that act on the kernel's join: two paths, the kernel client's
/// subflow endpoint, braid echoing on `port`, and the kernel client joined through
/// `braid1` and paused after 8 MiB of echo (gate `go` resumes it).
fn joined_and_paused(prefix: &str, port: u16) -> Option<(Netns, Gates, Proc, Proc)> {
    let ns = two_paths(prefix, 0)?;
    kernel_subflow_endpoint(&ns);
    let g = Gates::new(prefix);
    let braid = braid_echo(&ns, port, "");
    let mut kernel = kernel_client(&ns, &g, port, 8 << 20);
    wait_until("the kernel's join", &ns, || {
        counter(&ns, "MPJoinSynAckRx") >= 1
    });
    kernel.wait_for_stderr("paused after 8388608").unwrap();
    Some((ns, g, braid, kernel))
}

/// Both sides' JSON once each finished: every byte went each way, byte-exact.
#[track_caller]
fn both_ways(braid: Proc, kernel: Proc, limit: Duration) -> (serde_json::Value, serde_json::Value) {
    let k: Finished = kernel.wait_within(limit).expect("kpeer connect");
    assert!(k.success, "kpeer failed: {}", k.stderr);
    let b = braid.wait_within(limit).expect("braid listen");
    assert!(b.success, "braid failed: {}", b.stderr);
    let (braid, kernel) = (b.json(), k.json());
    assert_received(&braid, BYTES);
    assert_sent(&braid, BYTES);
    assert_sent(&kernel, BYTES);
    assert_received(&kernel, BYTES);
    (braid, kernel)
}

/// The report's subflows whose local address is `ip`.
fn local_on<'a>(report: &'a serde_json::Value, ip: &str) -> Vec<&'a serde_json::Value> {
    subflows_on(report, "local", ip)
}

fn sent_on(s: &serde_json::Value) -> u64 {
    s["bytes_sent"].as_u64().unwrap_or(0)
}

fn rate(prefix: &str, report: &serde_json::Value) {
    let secs = report["duration_s"].as_f64().unwrap_or(0.0);
    println!(
        "{prefix}: {BYTES} bytes each way in {secs:.2} s; subflows {}; counters {}",
        report["subflows"], report["counters"]
    );
}

/// Case 4, braid as server: the kernel client's subflow endpoint (id 7) is deleted while
/// data flows both ways; the kernel closes that subflow, braid drops it, sends what it had
/// in flight there again on the first subflow, and both directions complete.
#[test]
fn braid_server_drops_the_subflow_of_an_endpoint_the_kernel_client_deletes() {
    if !require_root("braid_server_drops_the_subflow_of_an_endpoint_the_kernel_client_deletes") {
        return;
    }
    let Some((ns, g, braid, kernel)) = joined_and_paused("srv4", 5501) else {
        return;
    };
    ns.run("ip", &["mptcp", "endpoint", "delete", "id", "7"])
        .expect("ip mptcp endpoint delete");
    wait_until("the kernel's subflow removal", &ns, || {
        counter(&ns, "RmSubflow") >= 1
    });
    g.open("go");
    let (braid, _) = both_ways(braid, kernel, Duration::from_secs(60));
    // The kernel ends its subflow; braid's side may answer with a reset carrying
    // MP_TCPRST: expected here.
    assert_clean_but(&ns, &braid, &["MPRstRx", "MPRstTx"]);
    assert_kernel_min(&ns, "RmSubflow", 1);
    assert_eq!(braid["counters"]["MPJoinAckRx"], 1, "{braid}");
    let joins: Vec<_> = braid["subflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == 1)
        .collect();
    assert_eq!(joins.len(), 1, "{braid}");
    assert!(
        joins[0]["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("10.1.0.1:")),
        "{braid}"
    );
    rate("srv4", &braid);
}

/// Case 5, braid as server: `--signal 10.1.0.2 --backup 10.1.0.2`. The kernel client joins
/// the announced address; braid's SYN/ACK asks for a backup (kernel `MPJoinSynAckBackupRx`),
/// and neither side sends data on it while the first path works. Then `braid0` goes down:
/// both directions move to the backup subflow and complete.
#[test]
fn braid_server_backup_address_is_idle_until_the_primary_dies() {
    if !require_root("braid_server_backup_address_is_idle_until_the_primary_dies") {
        return;
    }
    let Some(ns) = two_paths("srv5", 1) else {
        return;
    };
    let g = Gates::new("srv5");
    let braid = braid_echo(&ns, 5502, "--signal 10.1.0.2 --backup 10.1.0.2");
    let mut kernel = kernel_client(&ns, &g, 5502, 4 << 20);
    wait_until("the kernel's join", &ns, || {
        counter(&ns, "MPJoinSynAckRx") >= 1
    });
    assert_kernel(&ns, "MPJoinSynAckBackupRx", 1);
    kernel.wait_for_stderr("paused after 4194304").unwrap();
    // 4 MiB came back so far (the kernel's receive buffer holds at most 4 MiB more), over
    // braid0: braid1 saw the join's handshake and announcements, a handful of packets
    // (every packet braid sends there is counted).
    let before = ns.rx_packets("braid1").unwrap();
    let before_bytes = ns.rx_bytes("braid1").unwrap();
    assert!(before < 64, "the backup carried data: {before} packets");
    ns.ip(&["link", "set", "braid0", "down"]).unwrap();
    g.open("go");
    let (braid, _) = both_ways(braid, kernel, Duration::from_secs(120));
    assert_clean(&ns, &braid);
    assert_braid_min(&braid, "AddAddrTx", 1);
    let backup = local_on(&braid, "10.1.0.2");
    assert_eq!(backup.len(), 1, "{braid}");
    assert_eq!(backup[0]["backup"], true, "{braid}");
    // The rest of braid's echo (most of it) went over the backup.
    assert!(sent_on(backup[0]) >= BYTES / 2, "{braid}");
    let after_bytes = ns.rx_bytes("braid1").unwrap();
    assert!(
        after_bytes.saturating_sub(before_bytes) >= BYTES / 2,
        "braid1 carried braid's echo: {before_bytes} -> {after_bytes} bytes"
    );
    rate("srv5", &braid);
}

/// Case 6, braid as server: the kernel client's join through `braid1` carries data both
/// ways; `braid1` goes down for good mid-transfer; braid's subflow there goes stale, its
/// data goes again over `braid0`, and both directions complete.
#[test]
fn braid_server_transfer_completes_when_a_path_goes_down() {
    if !require_root("braid_server_transfer_completes_when_a_path_goes_down") {
        return;
    }
    let Some((ns, g, braid, kernel)) = joined_and_paused("srv6", 5503) else {
        return;
    };
    ns.ip(&["link", "set", "braid1", "down"]).unwrap();
    g.open("go");
    let (braid, _) = both_ways(braid, kernel, Duration::from_secs(120));
    assert_clean(&ns, &braid);
    let join = local_on(&braid, "10.0.0.2")
        .into_iter()
        .find(|s| s["id"] == 1)
        .expect("the join");
    assert!(sent_on(join) > 0, "the join carried braid's data: {braid}");
    assert_braid_min(&braid, "SubflowStale", 1);
    rate("srv6", &braid);
}

/// Case 7, braid as server: a connection whose subflows mix the families. The kernel
/// client's first subflow is IPv4; braid announces its IPv6 address (`--signal fd01::2`),
/// the kernel joins it from fd01::1, and that join carries data.
#[test]
fn braid_server_mixes_ipv4_and_ipv6_subflows() {
    if !require_root("braid_server_mixes_ipv4_and_ipv6_subflows") {
        return;
    }
    let Some(ns) = tun_paths("srv7", &["10.0.0.1/24", "fd01::1/64"], 2, 1) else {
        return;
    };
    let (k, b) = ns.exchange(
        &Cmd::braid(
            "listen --port 5504 --path braid0=10.0.0.2 --path braid1=fd01::2 \
             --signal fd01::2 --sink --once --json",
        ),
        // An IPv6 socket (connecting to the IPv4-mapped address): Linux opens subflows of
        // the other family only from an IPv6 MPTCP socket.
        &kpeer(&format!(
            "connect [::ffff:10.0.0.2]:5504 --proto mptcp --send {BYTES} --json"
        )),
    );
    let braid = b.json();
    assert_sent(&k.json(), BYTES);
    assert_received(&braid, BYTES);
    assert_clean(&ns, &braid);
    assert_kernel_min(&ns, "AddAddr", 1);
    assert_kernel(&ns, "MPJoinSynTx", 1);
    assert_kernel(&ns, "MPJoinSynAckRx", 1);
    let v6 = local_on(&braid, "[fd01::2]");
    assert_eq!(v6.len(), 1, "{braid}");
    assert!(
        v6[0]["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("[fd01::1]:")),
        "{braid}"
    );
    assert!(
        v6[0]["bytes_received"].as_u64() > Some(0),
        "the IPv6 join carried data: {braid}"
    );
    let v4 = local_on(&braid, "10.0.0.2");
    assert_eq!(v4.len(), 1, "{braid}");
    rate("srv7", &braid);
}
