//! braid's MPTCP against the Linux kernel's MPTCP (IPPROTO_MPTCP sockets, `kpeer --proto
//! mptcp`) over one TUN device in a network namespace: 32 MiB each way, byte-exact (SHA-256 of
//! the pattern stream on both sides), with the kernel's own view from its MPTcpExt counters
//! (`nstat`) and braid's from its JSON report. Also with DSS checksums asked for by the
//! kernel (`net.mptcp.checksum_enabled=1`), and against a plain-TCP kernel peer (fallback).
//!
//! Layout: namespace `braid-<test>-<pid>-<n>`, persistent TUN `braid0`, kernel side
//! 10.0.0.1/24, braid 10.0.0.2.

use std::time::{Duration, Instant};

use braid_interop::mptcp::counter;
use braid_interop::{
    assert_received, assert_sent, require_root, Cmd, Netns, TempDir, SIGINT, SIGTERM,
};

const BYTES: u64 = 32 << 20;
const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");

fn kpeer(line: &str) -> Cmd {
    Cmd::new(KPEER, line)
}

/// Who plays which part.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BraidRole {
    Client,
    Server,
}

struct Run {
    ns: Netns,
    braid: serde_json::Value,
    kernel: serde_json::Value,
}

fn setup(prefix: &str, checksum: bool) -> Option<Netns> {
    let ns = Netns::with_tun(prefix).expect("namespace with a TUN");
    if ns.run("nstat", &["-V"]).is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{prefix}: nstat is missing and CI=true");
        }
        eprintln!("SKIPPED {prefix}: no nstat");
        return None;
    }
    let enabled = ns
        .run("sysctl", &["-n", "net.mptcp.enabled"])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false);
    assert!(enabled, "net.mptcp.enabled is not 1 in the namespace");
    if checksum {
        let out = ns
            .run("sysctl", &["-w", "net.mptcp.checksum_enabled=1"])
            .expect("sysctl");
        assert!(out.status.success(), "cannot enable MPTCP checksums");
    }
    Some(ns)
}

/// Runs one transfer of `BYTES` from the client to the server; `kernel_proto` is "mptcp" or
/// "tcp". Returns both JSON reports.
fn transfer(prefix: &str, role: BraidRole, kernel_proto: &str, checksum: bool) -> Option<Run> {
    transfer_on(prefix, role, kernel_proto, checksum, false, None)
}

/// [`transfer`], over IPv6 (kernel fd00::1, braid fd00::2) when `v6`.
fn transfer_on(
    prefix: &str,
    role: BraidRole,
    kernel_proto: &str,
    checksum: bool,
    v6: bool,
    strip: Option<&str>,
) -> Option<Run> {
    let ns = setup(prefix, checksum)?;
    if let Some(rule) = strip {
        // A middlebox in the kernel's output path: nftables rewrites the MPTCP option of
        // the matching packets into NOPs.
        let rule_cmd = format!("add rule inet strip out {rule} reset tcp option mptcp");
        for cmd in [
            "add table inet strip",
            "add chain inet strip out { type filter hook output priority 0 ; policy accept ; }",
            rule_cmd.as_str(),
        ] {
            let out = ns.run("nft", &[cmd]).expect("nft");
            assert!(
                out.status.success(),
                "nft {cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let (kernel_ip, braid_ip) = if v6 {
        // nodad: usable at once, no duplicate address detection delay.
        ns.ip(&["addr", "add", "fd00::1/64", "dev", "braid0", "nodad"])
            .unwrap();
        ("fd00::1", "fd00::2")
    } else {
        ("10.0.0.1", "10.0.0.2")
    };
    let sock = |ip: &str, port: u16| {
        if v6 {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let braid_path = format!("braid0={braid_ip}");
    let kernel_sock = sock(kernel_ip, 5101);
    let braid_sock = sock(braid_ip, 5102);
    let (braid_out, kernel_out) = match role {
        BraidRole::Client => ns.exchange(
            &kpeer(&format!(
                "listen --bind {kernel_ip} --port 5101 --proto {kernel_proto} --sink --json"
            )),
            &Cmd::braid(&format!(
                "connect {kernel_sock} --path {braid_path} --send {BYTES} --json"
            )),
        ),
        BraidRole::Server => {
            let (c, s) = ns.exchange(
                &Cmd::braid(&format!(
                    "listen --port 5102 --path {braid_path} --sink --once --json"
                )),
                &kpeer(&format!(
                    "connect {braid_sock} --proto {kernel_proto} --send {BYTES} --json"
                )),
            );
            (s, c)
        }
    };
    let braid = braid_out.json();
    let kernel = kernel_out.json();
    let (sender, receiver) = match role {
        BraidRole::Client => (&braid, &kernel),
        BraidRole::Server => (&kernel, &braid),
    };
    assert_sent(sender, BYTES);
    assert_received(receiver, BYTES);
    let secs = braid["duration_s"].as_f64().unwrap_or(0.0);
    println!(
        "{prefix}: braid {role:?}, kernel {kernel_proto}{}: {BYTES} bytes in {secs:.2} s = {:.0} Mbit/s",
        if checksum { " (checksums)" } else { "" },
        BYTES as f64 * 8.0 / secs.max(1e-9) / 1e6
    );
    Some(Run { ns, braid, kernel })
}

/// The kernel saw a clean MPTCP connection (no mapping or checksum trouble, no fallback).
fn assert_kernel_clean(ns: &Netns) {
    for bad in [
        "DSSNotMatching",
        "DataCsumErr",
        "MPFailRx",
        "MPFailTx",
        "InfiniteMapRx",
        "DSSNoMatchTCP",
        "MPCapableFallbackACK",
        "MPCapableFallbackSYNACK",
        "MPFallbackTokenInit",
        "MPTCPRetrans",
        "MPRstRx",
    ] {
        assert_eq!(counter(ns, bad), 0, "kernel counter {bad}");
    }
}

fn assert_braid_clean(braid: &serde_json::Value) {
    assert_eq!(braid["mptcp"], true, "braid fell back: {braid}");
    // The report names the path and whether its device has offloads (on unless the run
    // turned them off).
    let off = std::env::var("BRAID_OFFLOAD").is_ok_and(|v| v == "off");
    assert_eq!(braid["paths"][0]["dev"], "braid0", "{braid}");
    assert_eq!(braid["paths"][0]["offload"], !off, "{braid}");
    assert_eq!(braid["workers"], 1, "{braid}");
    let c = &braid["counters"];
    for bad in [
        "DSSNotMatching",
        "DataCsumErr",
        "MPFailTx",
        "MPFailRx",
        "MPRstTx",
    ] {
        assert_eq!(c[bad], 0, "braid counter {bad}: {c}");
    }
}

fn braid_client_to_kernel_server(prefix: &str, checksum: bool) {
    let Some(r) = transfer(prefix, BraidRole::Client, "mptcp", checksum) else {
        return;
    };
    assert_eq!(r.braid["role"], "client");
    assert_braid_clean(&r.braid);
    assert_eq!(r.braid["mptcp_checksum"], checksum);
    assert_eq!(r.braid["counters"]["MPCapableSYNACKRX"], 1);
    // The kernel server accepted MP_CAPABLE on the SYN and on the third ACK (or the first
    // data segment).
    assert_eq!(counter(&r.ns, "MPCapableSYNRX"), 1);
    assert_eq!(counter(&r.ns, "MPCapableACKRX"), 1);
    assert_kernel_clean(&r.ns);
    assert_eq!(r.kernel["bytes_received"], BYTES);
}

fn kernel_client_to_braid_server(prefix: &str, checksum: bool) {
    let Some(r) = transfer(prefix, BraidRole::Server, "mptcp", checksum) else {
        return;
    };
    assert_eq!(r.braid["role"], "server");
    assert_braid_clean(&r.braid);
    assert_eq!(r.braid["mptcp_checksum"], checksum);
    assert_eq!(r.braid["counters"]["MPCapableSYNRX"], 1);
    assert_eq!(r.braid["counters"]["MPCapableACKRX"], 1);
    // The kernel client got MP_CAPABLE back on the SYN/ACK.
    assert_eq!(counter(&r.ns, "MPCapableSYNTX"), 1);
    assert_eq!(counter(&r.ns, "MPCapableSYNACKRX"), 1);
    assert_kernel_clean(&r.ns);
}

#[test]
fn braid_mptcp_client_sends_32mib_to_kernel_mptcp_server() {
    if require_root("braid_mptcp_client_sends_32mib_to_kernel_mptcp_server") {
        braid_client_to_kernel_server("mpc", false);
    }
}

#[test]
fn kernel_mptcp_client_sends_32mib_to_braid_mptcp_server() {
    if require_root("kernel_mptcp_client_sends_32mib_to_braid_mptcp_server") {
        kernel_client_to_braid_server("mps", false);
    }
}

#[test]
fn checksums_braid_client_to_kernel_server() {
    if require_root("checksums_braid_client_to_kernel_server") {
        braid_client_to_kernel_server("mpcc", true);
    }
}

#[test]
fn checksums_kernel_client_to_braid_server() {
    if require_root("checksums_kernel_client_to_braid_server") {
        kernel_client_to_braid_server("mpsc", true);
    }
}

#[test]
fn braid_mptcp_client_falls_back_to_a_plain_tcp_kernel_server() {
    if !require_root("braid_mptcp_client_falls_back_to_a_plain_tcp_kernel_server") {
        return;
    }
    let Some(r) = transfer("mpfc", BraidRole::Client, "tcp", false) else {
        return;
    };
    assert_eq!(r.braid["mptcp"], false);
    assert_eq!(r.braid["counters"]["MPCapableSYNTX"], 1);
    assert_eq!(r.braid["counters"]["MPCapableFallbackSYNACK"], 1);
    assert_eq!(counter(&r.ns, "MPCapableSYNRX"), 0, "a plain listener");
}

#[test]
fn plain_tcp_kernel_client_is_served_by_a_braid_mptcp_listener() {
    if !require_root("plain_tcp_kernel_client_is_served_by_a_braid_mptcp_listener") {
        return;
    }
    let Some(r) = transfer("mpfs", BraidRole::Server, "tcp", false) else {
        return;
    };
    assert_eq!(r.braid["mptcp"], false);
    assert_eq!(r.braid["counters"]["MPCapableSYNRX"], 0);
    assert_eq!(counter(&r.ns, "MPCapableSYNTX"), 0);
}

#[test]
fn second_signal_fast_closes_and_the_kernel_counts_mp_fastclose() {
    if !require_root("second_signal_fast_closes_and_the_kernel_counts_mp_fastclose") {
        return;
    }
    let Some(ns) = setup("mpfast", false) else {
        return;
    };
    let dir = TempDir::new("mpfast").unwrap();
    let go = dir.path().join("go");
    // The kernel does not read until `go` exists: braid's data and its DATA_FIN stay queued,
    // the graceful close cannot finish and the second signal aborts, with MP_FASTCLOSE.
    let (c, server) = ns
        .interrupt(
            &kpeer("listen --port 5105 --proto mptcp --sink --hold-open --wait-for")
                .arg(go.to_string_lossy()),
            &Cmd::braid("connect 10.0.0.1:5105 --path braid0=10.0.0.2 --send 1000G"),
            &[SIGINT, SIGTERM],
        )
        .unwrap();
    assert!(!c.success);
    assert!(c.stderr.contains("aborted"), "{}", c.stderr);
    std::fs::write(&go, b"").unwrap();
    let s = server.wait_within(Duration::from_secs(60)).unwrap();
    assert!(!s.success, "the kernel must see a reset, not a clean close");
    assert_eq!(counter(&ns, "MPCapableACKRX"), 1);
    assert_eq!(counter(&ns, "MPFastcloseRx"), 1, "kernel MPFastcloseRx");
}

#[test]
fn first_signal_while_the_kernel_does_not_read_starts_the_close_and_says_so() {
    if !require_root("first_signal_while_the_kernel_does_not_read_starts_the_close_and_says_so") {
        return;
    }
    let Some(ns) = setup("mpint", false) else {
        return;
    };
    let dir = TempDir::new("mpint").unwrap();
    let go = dir.path().join("go");
    // The kernel does not read until `go` exists: the graceful close cannot finish.
    let mut server = ns
        .start_ready(
            &kpeer("listen --port 5106 --proto mptcp --sink --hold-open --wait-for")
                .arg(go.to_string_lossy()),
            "listening",
        )
        .unwrap();
    let client = ns
        .start(&Cmd::braid(
            "connect 10.0.0.1:5106 --path braid0=10.0.0.2 --send 1000G",
        ))
        .unwrap();
    server.wait_for_stderr("accepted").unwrap();
    client.signal(SIGINT).unwrap();
    // Apart, so that braid sees them one at a time (two at once abort at once).
    std::thread::sleep(Duration::from_secs(1));
    client.signal(SIGTERM).unwrap();
    let c = client.wait_within(Duration::from_secs(30)).unwrap();
    assert!(!c.success);
    // The first signal said what it did and what a second one does; the second aborted.
    let first = c
        .stderr
        .find("braid: interrupted: closing gracefully")
        .unwrap_or_else(|| panic!("no notice of the first signal: {}", c.stderr));
    assert!(
        c.stderr[first..]
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("a second signal aborts")),
        "{}",
        c.stderr
    );
    let second = c
        .stderr
        .find("aborted by a second signal")
        .unwrap_or_else(|| panic!("not aborted: {}", c.stderr));
    assert!(first < second, "{}", c.stderr);
    std::fs::write(&go, b"").unwrap();
    let s = server.wait_within(Duration::from_secs(60)).unwrap();
    assert!(!s.success, "the kernel must see a reset, not a clean close");
    assert_eq!(counter(&ns, "MPFastcloseRx"), 1, "kernel MPFastcloseRx");
}

#[test]
fn connecting_to_a_kernel_that_drops_syns_hints_and_gives_up_on_a_signal_or_timeout() {
    if !require_root(
        "connecting_to_a_kernel_that_drops_syns_hints_and_gives_up_on_a_signal_or_timeout",
    ) {
        return;
    }
    let Some(ns) = setup("mpsyn", false) else {
        return;
    };
    for cmd in [
        "add table inet nosyn",
        "add chain inet nosyn in { type filter hook input priority 0 ; policy accept ; }",
        "add rule inet nosyn in tcp dport 5107 drop",
    ] {
        let out = ns.run("nft", &[cmd]).expect("nft");
        assert!(
            out.status.success(),
            "nft {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A signal after the first SYN timeout (1 s): the hint came, and the attempt ends at
    // once (not after two minutes of SYN retries).
    let client = ns
        .start(&Cmd::braid(
            "connect 10.0.0.1:5107 --path braid0=10.0.0.2 --send 1M --json",
        ))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    client.signal(SIGINT).unwrap();
    let c = client.wait_within(Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(c.code, Some(130), "{}", c.stderr);
    assert!(
        c.stderr.contains(
            "braid: no answer from 10.0.0.1:5107 after 1 s; still trying (check the kernel \
             side of braid0"
        ),
        "{}",
        c.stderr
    );
    assert!(
        c.stderr
            .ends_with("braid: interrupted while connecting to 10.0.0.1:5107\n"),
        "{}",
        c.stderr
    );
    // --connect-timeout: gives up on its own, saying so.
    let t = Instant::now();
    let c = ns
        .start(&Cmd::braid(
            "connect 10.0.0.1:5107 --path braid0=10.0.0.2 --send 1M --connect-timeout 1.5",
        ))
        .unwrap()
        .wait_within(Duration::from_secs(30))
        .unwrap();
    let took = t.elapsed();
    assert!(!c.success);
    assert!(
        c.stderr
            .ends_with("braid: connect to 10.0.0.1:5107 timed out after 1.5 s\n"),
        "{}",
        c.stderr
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn a_path_that_cannot_carry_packets_is_named_at_start_and_at_the_first_syn_timeout() {
    if !require_root(
        "a_path_that_cannot_carry_packets_is_named_at_start_and_at_the_first_syn_timeout",
    ) {
        return;
    }
    let Some(ns) = setup("mpdown", false) else {
        return;
    };
    let connect = |path: &str| {
        ns.start(&Cmd::braid(&format!(
            "connect 10.0.0.1:5108 --path {path} --send 1M --connect-timeout 1.5"
        )))
        .unwrap()
        .wait_within(Duration::from_secs(30))
        .unwrap()
    };
    // A device braid creates: nobody configured it.
    let c = connect("braidnew=10.9.0.2");
    let lines: Vec<&str> = c.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", c.stderr);
    assert!(
        lines[0].starts_with("braid: warning: path braidnew=10.9.0.2: braid created braidnew"),
        "{}",
        c.stderr
    );
    assert!(
        lines[1].starts_with(
            "braid: warning: no answer from 10.0.0.1:5108 after 1 s: braid created braidnew"
        ),
        "{}",
        c.stderr
    );
    assert_eq!(
        lines[2],
        "braid: connect to 10.0.0.1:5108 timed out after 1.5 s"
    );
    // The usual device, set down.
    ns.ip(&["link", "set", "braid0", "down"]).unwrap();
    let c = connect("braid0=10.0.0.2");
    assert!(
        c.stderr
            .starts_with("braid: warning: path braid0=10.0.0.2: braid0 is down"),
        "{}",
        c.stderr
    );
    assert!(
        c.stderr
            .contains("braid: warning: no answer from 10.0.0.1:5108 after 1 s: braid0 is down"),
        "{}",
        c.stderr
    );
}

#[test]
fn ipv6_both_roles_with_the_kernel() {
    if !require_root("ipv6_both_roles_with_the_kernel") {
        return;
    }
    for role in [BraidRole::Client, BraidRole::Server] {
        let Some(r) = transfer_on("mp6", role, "mptcp", false, true, None) else {
            return;
        };
        assert_braid_clean(&r.braid);
        assert_kernel_clean(&r.ns);
        let (syn, ack) = match role {
            BraidRole::Client => ("MPCapableSYNRX", "MPCapableACKRX"),
            BraidRole::Server => ("MPCapableSYNTX", "MPCapableSYNACKRX"),
        };
        assert_eq!(counter(&r.ns, syn), 1, "{role:?}: kernel {syn}");
        assert_eq!(counter(&r.ns, ack), 1, "{role:?}: kernel {ack}");
    }
}

/// nftables match for the kernel's SYN and SYN/ACK.
const SYNS: &str = "tcp flags & syn == syn";
/// nftables match for every kernel segment after the handshake.
const AFTER_SYNS: &str = "tcp flags & syn == 0";

fn stripped(prefix: &str, role: BraidRole, rule: &str) {
    let Some(r) = transfer_on(prefix, role, "mptcp", false, false, Some(rule)) else {
        return;
    };
    // Every byte arrived (checked in transfer_on) and braid knows it is plain TCP now.
    assert_eq!(r.braid["mptcp"], false, "{prefix}: {}", r.braid);
    let c = &r.braid["counters"];
    for bad in ["DSSNotMatching", "DataCsumErr", "MPRstTx"] {
        assert_eq!(c[bad], 0, "{prefix}: braid counter {bad}: {c}");
    }
    for bad in ["DSSNotMatching", "DataCsumErr", "MPRstRx"] {
        assert_eq!(counter(&r.ns, bad), 0, "{prefix}: kernel counter {bad}");
    }
}

#[test]
fn options_stripped_from_the_kernels_syn_fall_back_both_roles() {
    if !require_root("options_stripped_from_the_kernels_syn_fall_back_both_roles") {
        return;
    }
    stripped("mpsyc", BraidRole::Client, SYNS);
    stripped("mpsys", BraidRole::Server, SYNS);
}

#[test]
fn options_stripped_after_the_handshake_fall_back_both_roles() {
    if !require_root("options_stripped_after_the_handshake_fall_back_both_roles") {
        return;
    }
    stripped("mpdac", BraidRole::Client, AFTER_SYNS);
    stripped("mpdas", BraidRole::Server, AFTER_SYNS);
}

#[test]
fn braid_mptcp_echo_server_returns_every_byte_to_the_kernel() {
    if !require_root("braid_mptcp_echo_server_returns_every_byte_to_the_kernel") {
        return;
    }
    let Some(ns) = setup("mpecho", false) else {
        return;
    };
    let n: u64 = 8 << 20;
    let (c, s) = ns.exchange(
        &Cmd::braid("listen --port 5106 --path braid0=10.0.0.2 --echo --once --json"),
        &kpeer(&format!(
            "connect 10.0.0.2:5106 --proto mptcp --send {n} --json"
        )),
    );
    let sj = s.json();
    assert_received(&c.json(), n);
    assert_braid_clean(&sj);
    assert_eq!(sj["bytes_sent"], n);
    assert_kernel_clean(&ns);
}
