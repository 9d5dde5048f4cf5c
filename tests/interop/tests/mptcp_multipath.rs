//! braid's multipath against the Linux kernel's MPTCP: two TUN devices (two paths) in one
//! network namespace, a second subflow (MP_JOIN) opened by either side, 32 MiB each,
//! byte-exact (SHA-256 of the pattern stream on both sides), with the kernel's own view from
//! its MPTcpExt counters (`nstat`) and braid's from its JSON report (per-subflow entries).
//!
//! Layout: namespace `braid-<test>-<pid>-<n>`, persistent TUNs `braid0` and `braid1`; the
//! kernel side is 10.0.0.1/24 and 10.1.0.1/24 (IPv6: fd00::1/64, fd01::1/64), braid behind
//! them is .2 / ::2. Kernel limits: `ip mptcp limits set subflows 2 add_addr_accepted 2`.
//!
//! Cases (issue 4): 2a braid joins the kernel (`--subflow`, and `--backup`); 2b the kernel
//! joins braid (an `ip mptcp endpoint ... subflow` bound to the second device); 7 two IPv6
//! paths, one connection mixing IPv4 (initial subflow) and IPv6 (join), and (issue 11) an
//! IPv6 path joining the IPv6 address a kernel server announces; 10b the kernel
//! aborts (MP_FASTCLOSE) and braid reports it; 6 failover when a device goes down.

use std::time::{Duration, Instant};

use braid_interop::mptcp::{
    assert_braid_min, assert_clean, assert_kernel, assert_kernel_min, cap_kernel_rcvbuf, counter,
    kernel_view, subflows_on, tun_paths, wait_until, Gates,
};
use braid_interop::{assert_received, assert_sent, require_root, Cmd, Netns};

const BYTES: u64 = 32 << 20;
const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");

fn kpeer(line: &str) -> Cmd {
    Cmd::new(KPEER, line)
}

/// The two paths' addresses: (kernel side with prefix length, braid's).
struct Plan {
    kernel: [&'static str; 2],
    braid: [&'static str; 2],
}

const V4: Plan = Plan {
    kernel: ["10.0.0.1/24", "10.1.0.1/24"],
    braid: ["10.0.0.2", "10.1.0.2"],
};
const V6: Plan = Plan {
    kernel: ["fd00::1/64", "fd01::1/64"],
    braid: ["fd00::2", "fd01::2"],
};
/// IPv4 on the first path, IPv6 on the second.
const MIXED: Plan = Plan {
    kernel: ["10.0.0.1/24", "fd01::1/64"],
    braid: ["10.0.0.2", "fd01::2"],
};

/// A namespace with `braid0` and `braid1` addressed as `plan` says, the kernel's MPTCP
/// limits raised so that joins are accepted and made; `None` (skipped) without `nstat`.
fn two_paths(prefix: &str, plan: &Plan) -> Option<Netns> {
    tun_paths(prefix, &plan.kernel, 2, 2)
}

fn paths(plan: &Plan) -> String {
    format!(
        "--path braid0={} --path braid1={}",
        plan.braid[0], plan.braid[1]
    )
}

/// The report's subflow `id`, checked to be there.
#[track_caller]
fn subflow(report: &serde_json::Value, id: u64) -> &serde_json::Value {
    let all = report["subflows"].as_array().expect("subflows array");
    all.iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no subflow {id}: {report}"))
}

fn rate(prefix: &str, report: &serde_json::Value) {
    let secs = report["duration_s"].as_f64().unwrap_or(0.0);
    println!(
        "{prefix}: {BYTES} bytes in {secs:.2} s = {:.0} Mbit/s; subflows {}",
        BYTES as f64 * 8.0 / secs.max(1e-9) / 1e6,
        report["subflows"]
    );
}

/// braid client, two paths, joining from its second address (`extra`: `--subflow ADDR`
/// and/or `--backup ADDR`); the kernel server listens on `bind`. Returns the namespace and
/// braid's report once every byte arrived.
fn braid_joins(
    prefix: &str,
    plan: &Plan,
    bind: &str,
    remote: &str,
    extra: &str,
) -> Option<(Netns, serde_json::Value)> {
    let ns = two_paths(prefix, plan)?;
    let port = remote.rsplit(':').next().unwrap_or("0");
    let (c, s) = ns.exchange(
        // --hold-open: Linux refuses joins (MPJoinRejected) once the connection left
        // ESTABLISHED, e.g. after the sink shut down its own sending direction.
        &kpeer(&format!(
            "listen --bind {bind} --port {port} --proto mptcp --sink --hold-open --json"
        )),
        &Cmd::braid(&format!(
            "connect {remote} {} {extra} --send {BYTES} --json",
            paths(plan)
        )),
    );
    let braid = c.json();
    assert_sent(&braid, BYTES);
    assert_received(&s.json(), BYTES);
    assert_clean(&ns, &braid);
    assert_eq!(braid["counters"]["MPJoinSynTx"], 1, "{braid}");
    assert_eq!(braid["counters"]["MPJoinSynAckRx"], 1, "{braid}");
    assert_kernel(&ns, "MPJoinSynRx", 1);
    assert_kernel(&ns, "MPJoinAckRx", 1);
    rate(prefix, &braid);
    Some((ns, braid))
}

/// Case 2a: `--subflow` opens a second subflow from braid's second address to the kernel
/// server's address, over the second device; it carries data.
#[test]
fn braid_client_joins_a_second_subflow_to_the_kernel() {
    if !require_root("braid_client_joins_a_second_subflow_to_the_kernel") {
        return;
    }
    let Some((ns, braid)) = braid_joins(
        "mp2a",
        &V4,
        "0.0.0.0",
        "10.0.0.1:5301",
        "--subflow 10.1.0.2",
    ) else {
        return;
    };
    let join = subflow(&braid, 1);
    assert!(
        join["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("10.1.0.2:")),
        "{join}"
    );
    assert_eq!(join["remote"], "10.0.0.1:5301");
    assert_eq!(join["backup"], false);
    assert!(
        join["bytes_sent"].as_u64() > Some(0),
        "the join carried data: {join}"
    );
    assert_kernel(&ns, "MPJoinSynBackupRx", 0);
    // Its packets went through the second device: the handshake, and enough for its data.
    let packets = ns.rx_packets("braid1").unwrap();
    let on_wire = ns.rx_bytes("braid1").unwrap();
    let bytes = join["bytes_sent"].as_u64().unwrap_or(0);
    assert!(
        packets >= 3 && on_wire >= bytes,
        "{packets} packets, {on_wire} bytes on braid1"
    );
}

/// `--backup ADDR`: the join from ADDR carries the backup bit (the kernel counts a backup
/// join) and, while the first path works, no data.
#[test]
fn a_backup_join_is_flagged_and_idle_while_the_first_path_works() {
    if !require_root("a_backup_join_is_flagged_and_idle_while_the_first_path_works") {
        return;
    }
    // No --subflow: with two paths the client joins from the second one.
    let Some((ns, braid)) = braid_joins(
        "mp2ab",
        &V4,
        "0.0.0.0",
        "10.0.0.1:5302",
        "--backup 10.1.0.2",
    ) else {
        return;
    };
    let join = subflow(&braid, 1);
    assert_eq!(join["backup"], true, "{join}");
    // (Almost) nothing: a spurious RTO on the primary (a starved test machine) marks it
    // stale for a moment, and the backup may then carry a few segments.
    let on_backup = join["bytes_sent"].as_u64().unwrap_or(u64::MAX);
    assert!(
        on_backup <= BYTES / 50,
        "a backup carries (almost) nothing: {join}"
    );
    assert_kernel(&ns, "MPJoinSynBackupRx", 1);
    assert_eq!(subflow(&braid, 0)["bytes_sent"].as_u64(), Some(BYTES));
}

/// Case 2b: the kernel client has a `subflow` endpoint on its second address, bound to the
/// second device; its join reaches braid's first address through `braid1` and carries
/// data; braid's replies go back through `braid1`.
#[test]
fn kernel_client_joins_a_braid_server_on_two_paths() {
    if require_root("kernel_client_joins_a_braid_server_on_two_paths") {
        kernel_joins("mp2b", &V4, 5303);
    }
}

/// Case 7 for 2b: the same over two IPv6 paths.
#[test]
fn ipv6_two_paths_kernel_client_joins_braid() {
    if require_root("ipv6_two_paths_kernel_client_joins_braid") {
        kernel_joins("mp7b", &V6, 5308);
    }
}

/// The socket address `ip` and `port` (IPv6 in brackets).
fn sock(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Case 2b on `plan`: the kernel client's `subflow` endpoint on its second address, bound
/// to `braid1`, joins `braid listen` on two paths.
fn kernel_joins(prefix: &str, plan: &Plan, port: u16) {
    let Some(ns) = two_paths(prefix, plan) else {
        return;
    };
    let kernel1 = plan.kernel[1].split('/').next().unwrap_or_default();
    // Source routing, as multihomed MPTCP hosts are set up: what leaves from the second
    // address takes the second device, also towards braid's first address (IPv4 would
    // manage without, by assuming an address on-link when a socket is bound to a device;
    // IPv6 does not: MPJoinSynTxConnectErr).
    let family = if kernel1.contains(':') { "-6" } else { "-4" };
    ns.ip(&[family, "rule", "add", "from", kernel1, "table", "101"])
        .unwrap();
    ns.ip(&[
        family,
        "route",
        "add",
        plan.braid[0],
        "dev",
        "braid1",
        "table",
        "101",
    ])
    .unwrap();
    ns.run(
        "ip",
        &[
            "mptcp", "endpoint", "add", kernel1, "dev", "braid1", "subflow",
        ],
    )
    .expect("ip mptcp endpoint");
    let braid0 = sock(plan.braid[0], port);
    let (c, s) = ns.exchange(
        &Cmd::braid(&format!(
            "listen --port {port} {} --sink --once --json",
            paths(plan)
        )),
        &kpeer(&format!(
            "connect {braid0} --proto mptcp --send {BYTES} --json"
        )),
    );
    let braid = s.json();
    assert_sent(&c.json(), BYTES);
    assert_received(&braid, BYTES);
    assert_clean(&ns, &braid);
    assert_kernel(&ns, "MPJoinSynTx", 1);
    assert_eq!(braid["counters"]["MPJoinSynRx"], 1, "{braid}");
    assert_eq!(braid["counters"]["MPJoinAckRx"], 1, "{braid}");
    assert_kernel(&ns, "MPJoinSynAckRx", 1);
    let join = subflow(&braid, 1);
    assert_eq!(join["local"], braid0.as_str(), "{join}");
    let from = sock(kernel1, 0);
    let from = from.trim_end_matches('0');
    assert!(
        join["remote"].as_str().is_some_and(|r| r.starts_with(from)),
        "{join}"
    );
    assert!(join["bytes_received"].as_u64() > Some(0), "{join}");
    // Every byte arrived on one subflow or the other (some may have come on both, when the
    // kernel sent them again elsewhere).
    let per_subflow: u64 = braid["subflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["bytes_received"].as_u64())
        .sum();
    assert!(per_subflow >= BYTES, "{braid}");
    // Without per-device replies, every packet of braid's would leave by braid0.
    let packets = ns.rx_packets("braid1").unwrap();
    assert!(packets >= 3, "replies by braid1: {packets}");
    rate(prefix, &braid);
}

/// Case 7: two IPv6 paths, braid joining from the second (one subflow per `--path`).
#[test]
fn ipv6_two_paths_braid_client() {
    if !require_root("ipv6_two_paths_braid_client") {
        return;
    }
    let Some((_ns, braid)) = braid_joins("mp7", &V6, "::", "[fd00::1]:5304", "") else {
        return;
    };
    let join = subflow(&braid, 1);
    assert!(
        join["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("[fd01::2]:")),
        "{join}"
    );
    assert_eq!(join["remote"], "[fd00::1]:5304");
    assert!(join["bytes_sent"].as_u64() > Some(0), "{join}");
}

/// Case 7: one connection, IPv4 initial subflow and IPv6 join. The server's name resolves
/// to both of its addresses (a hosts file of the namespace): the connection goes to the
/// IPv4 one from the first path, the join to the IPv6 one from the second.
#[test]
fn one_connection_mixes_ipv4_and_ipv6_subflows() {
    if !require_root("one_connection_mixes_ipv4_and_ipv6_subflows") {
        return;
    }
    let Some(ns) = two_paths("mp7m", &MIXED) else {
        return;
    };
    ns.etc_file(
        "hosts",
        "127.0.0.1 localhost\n10.0.0.1 kpeer.test\nfd01::1 kpeer.test\n",
    )
    .expect("hosts file");
    let (c, s) = ns.exchange(
        &kpeer("listen --bind :: --port 5305 --proto mptcp --sink --hold-open --json"),
        &Cmd::braid(&format!(
            "connect kpeer.test:5305 {} --send {BYTES} --json",
            paths(&MIXED)
        )),
    );
    let braid = c.json();
    assert_sent(&braid, BYTES);
    assert_received(&s.json(), BYTES);
    assert_clean(&ns, &braid);
    assert_kernel(&ns, "MPJoinSynRx", 1);
    assert_kernel(&ns, "MPJoinAckRx", 1);
    let first = subflow(&braid, 0);
    assert!(
        first["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("10.0.0.2:")),
        "{first}"
    );
    assert_eq!(first["remote"], "10.0.0.1:5305");
    let join = subflow(&braid, 1);
    assert!(
        join["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("[fd01::2]:")),
        "{join}"
    );
    assert_eq!(join["remote"], "[fd01::1]:5305");
    assert!(join["bytes_sent"].as_u64() > Some(0), "{join}");
    rate("mp7m", &braid);
}

/// Issue 11 bug 5: braid's first path is IPv4, its second IPv6, and the server has no IPv6
/// address braid knows of: the IPv6 path opens no subflow at first (one line on stderr,
/// not an error, whether it comes as a further `--path` or as `--subflow`). The kernel
/// server announces its IPv6 address (`ip mptcp endpoint add fd01::1 dev braid1 signal`);
/// braid, accepting one announcement, joins it from the path of that family, over
/// `braid1`, and the join carries data; every byte arrives.
fn braid_joins_the_announced_address_of_its_second_family(prefix: &str, port: u16, extra: &str) {
    let Some(ns) = two_paths(prefix, &MIXED) else {
        return;
    };
    cap_kernel_rcvbuf(&ns);
    ns.run(
        "ip",
        &[
            "mptcp", "endpoint", "add", "fd01::1", "dev", "braid1", "id", "7", "signal",
        ],
    )
    .expect("ip mptcp endpoint add");
    let g = Gates::new(prefix);
    // The reader pauses at 1 MiB until the join is up, so that it carries data.
    let server = ns
        .start_ready(
            &g.arg(
                kpeer(&format!(
                    "listen --bind :: --port {port} --proto mptcp --sink --hold-open --json"
                )),
                1 << 20,
                "joined",
            ),
            "listening",
        )
        .expect("kpeer listen");
    let client = ns
        .start(&Cmd::braid(&format!(
            "connect 10.0.0.1:{port} {} {extra} --limits subflows=2,add_addr_accepted=1 \
             --send {BYTES} --json",
            paths(&MIXED)
        )))
        .expect("braid connect");
    wait_until("the IPv6 join", &ns, || counter(&ns, "MPJoinAckRx") >= 1);
    g.open("joined");
    let c = client.wait().expect("braid connect");
    assert!(c.success, "braid connect failed: {}", c.stderr);
    assert!(
        c.stderr.contains("no subflow from fd01::2 to 10.0.0.1")
            && !c.stderr.contains("needs an IPv6"),
        "one note, no error: {}",
        c.stderr
    );
    let braid = c.json();
    assert_sent(&braid, BYTES);
    assert_received(&server.finish("kpeer listen").json(), BYTES);
    assert_clean(&ns, &braid);
    assert_kernel_min(&ns, "AddAddrTx", 1);
    assert_braid_min(&braid, "AddAddr", 1);
    assert_kernel(&ns, "MPJoinSynRx", 1);
    assert_kernel(&ns, "MPJoinAckRx", 1);
    let joins = subflows_on(&braid, "remote", "[fd01::1]");
    assert_eq!(joins.len(), 1, "one subflow to fd01::1: {braid}");
    let join = joins[0];
    assert_eq!(join["remote"], format!("[fd01::1]:{port}"));
    assert!(
        join["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("[fd01::2]:")),
        "the join leaves from the IPv6 path (braid1): {join}"
    );
    assert!(
        join["bytes_sent"].as_u64() > Some(0),
        "the join carried data: {join}"
    );
    rate(prefix, &braid);
}

#[test]
fn ipv6_path_joins_the_address_an_ipv4_kernel_server_announces() {
    if !require_root("ipv6_path_joins_the_address_an_ipv4_kernel_server_announces") {
        return;
    }
    braid_joins_the_announced_address_of_its_second_family("mp11", 5307, "");
}

/// The same with the IPv6 address given as `--subflow` (the kernel skips a `subflow`
/// endpoint of the other family likewise).
#[test]
fn ipv6_subflow_flag_joins_the_address_an_ipv4_kernel_server_announces() {
    if !require_root("ipv6_subflow_flag_joins_the_address_an_ipv4_kernel_server_announces") {
        return;
    }
    braid_joins_the_announced_address_of_its_second_family("mp11s", 5308, "--subflow fd01::2");
}

/// Case 10b: the kernel server aborts mid-transfer (SO_LINGER 0 close: RST with
/// MP_FASTCLOSE on every subflow); braid exits non-zero with one line naming the fast
/// close, its JSON report carries the error, and it counted MPFastcloseRx.
#[test]
fn kernel_abort_is_a_fast_close_that_braid_reports() {
    if !require_root("kernel_abort_is_a_fast_close_that_braid_reports") {
        return;
    }
    let Some(ns) = two_paths("mp10b", &V4) else {
        return;
    };
    let abort_at: u64 = 8 << 20;
    let server = ns
        .start_ready(
            &kpeer(&format!(
                "listen --port 5306 --proto mptcp --abort-after {abort_at} --json"
            )),
            "listening",
        )
        .unwrap();
    let c = ns
        .start(&Cmd::braid(&format!(
            "connect 10.0.0.1:5306 {} --send {BYTES} --json",
            paths(&V4)
        )))
        .unwrap()
        .wait()
        .unwrap();
    let k = server.finish("kpeer listen").json();
    assert_eq!(k["aborted"], true);
    assert_eq!(k["bytes_received"], abort_at);
    assert!(!c.success, "braid must fail: {}", c.stderr);
    assert_eq!(c.code, Some(1));
    let braid = c.json();
    let line = c.stderr.trim();
    assert_eq!(
        line,
        "braid: connection to 10.0.0.1:5306 reset by peer (MP_FASTCLOSE)",
        "one line; {braid}; kernel counters: {}",
        kernel_view(&ns)
    );
    assert_eq!(
        braid["error"],
        "connection to 10.0.0.1:5306 reset by peer (MP_FASTCLOSE)"
    );
    assert!(
        braid["counters"]["MPFastcloseRx"].as_u64() >= Some(1),
        "{braid}"
    );
    assert!(braid["bytes_sent"].as_u64() >= Some(abort_at), "{braid}");
    assert!(counter(&ns, "MPFastcloseTx") >= 1, "kernel MPFastcloseTx");
    assert_eq!(counter(&ns, "MPJoinAckRx"), 1, "both subflows were up");
}

/// Case 6: failover. The kernel reads all along; once the join carries data, `braid1` goes
/// down for good mid-transfer: what the second subflow had in flight is sent again on the
/// first (the subflow goes stale after one RTO), and every byte arrives.
///
/// (An earlier form held the kernel's window shut until after the outage. That can leave
/// Linux's receive buffer full of out-of-order data beyond the lost bytes, announcing a zero
/// window on the surviving subflow until its buffer autotuning grows it, seconds later or
/// not within the guard: a receiver-side stall no sender can break. The engine-side part it
/// exercised, bytes queued behind a zero window on a dead path, is covered in
/// `crates/braid-proto/tests/tcp_tcb.rs` and the simulator.)
#[test]
fn transfer_completes_when_a_path_goes_down() {
    if !require_root("transfer_completes_when_a_path_goes_down") {
        return;
    }
    let Some(ns) = two_paths("mp6", &V4) else {
        return;
    };
    // Long enough that the outage lands mid-transfer on any machine.
    let bytes: u64 = 256 << 20;
    let server = ns
        .start_ready(
            &kpeer("listen --port 5307 --proto mptcp --sink --hold-open --json"),
            "listening",
        )
        .unwrap();
    let client = ns
        .start(&Cmd::braid(&format!(
            "connect 10.0.0.1:5307 {} --send {bytes} --json",
            paths(&V4)
        )))
        .unwrap();
    // A hang guard, not a timing assertion: the join is up within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter(&ns, "MPJoinAckRx") == 0 {
        assert!(Instant::now() < deadline, "the join never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    ns.ip(&["link", "set", "braid1", "down"]).unwrap();
    let c = client.wait_within(Duration::from_secs(120)).unwrap();
    assert!(c.success, "braid failed: {}", c.stderr);
    let braid = c.json();
    assert_sent(&braid, bytes);
    assert_received(&server.finish("kpeer listen").json(), bytes);
    assert!(
        braid["counters"]["SubflowStale"].as_u64() >= Some(1),
        "the outage hit the second subflow mid-transfer: {braid}"
    );
    assert_clean(&ns, &braid);
}
