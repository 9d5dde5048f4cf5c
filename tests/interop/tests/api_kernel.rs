//! braid's library API (`braid::Endpoint`, `MptcpStream`, `MptcpListener`) against the Linux
//! kernel's MPTCP: `apipeer` (tests/interop/src/bin/apipeer.rs, a tokio program using only
//! the public API) on the userspace side of the TUNs, `kpeer` (IPPROTO_MPTCP sockets) on the
//! kernel's.
//!
//! Layout: namespace `braid-<test>-<pid>-<n>`, persistent TUN `braid0` (and `braid1` for two
//! paths); the kernel side is 10.0.0.1/24 (10.1.0.1/24), apipeer behind them is .2.
//!
//! Cases: 1 an MptcpStream sends 64 MiB over two paths (the second a join) to a kernel
//! server; 2 a kernel client sends to an MptcpListener; 3 a slow reader holds the kernel
//! sender back with the window, within braid's buffer bound of memory; 4 an nftables
//! middlebox strips MP_CAPABLE from the SYN: `is_mptcp()` false, the transfer still exact;
//! 5 the kernel aborts (MP_FASTCLOSE): apipeer sees `ConnectionReset`.

use std::time::Duration;

use braid_interop::mptcp::{assert_kernel, counter, kernel_view, tun_paths};
use braid_interop::{assert_received, assert_sent, pattern_sha256, require_root, Cmd, Netns};

const APIPEER: &str = env!("CARGO_BIN_EXE_apipeer");
const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");

const MIB: u64 = 1 << 20;

fn apipeer(line: &str) -> Cmd {
    Cmd::new(APIPEER, line)
}

fn kpeer(line: &str) -> Cmd {
    Cmd::new(KPEER, line)
}

/// One path: `braid0`, kernel 10.0.0.1, apipeer 10.0.0.2.
fn one_path(prefix: &str) -> Option<Netns> {
    tun_paths(prefix, &["10.0.0.1/24"], 2, 2)
}

/// Whether `nft` works in `ns`; outside CI a missing one skips (printing why), under
/// `CI=true` it fails.
fn have_nft(ns: &Netns, test: &str) -> bool {
    if ns.run("nft", &["--version"]).is_ok() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: nft is missing and CI=true");
    }
    eprintln!("SKIPPED {test}: no nft");
    false
}

fn nft(ns: &Netns, cmd: &str) {
    let out = ns.run("nft", &[cmd]).expect("nft");
    assert!(
        out.status.success(),
        "nft {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packets counted by the named nftables counter `name` of table `inet apik`.
fn nft_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns
        .run("nft", &["list", "counter", "inet", "apik", name])
        .expect("nft list counter");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            if let Some(n) = words.next().and_then(|n| n.parse().ok()) {
                return n;
            }
        }
    }
    panic!("no packet count in `nft list counter inet apik {name}`: {text}");
}

fn mbit_s(bytes: u64, report: &serde_json::Value) -> f64 {
    let secs = report["duration_s"].as_f64().unwrap_or(0.0);
    bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
}

/// Case 1: apipeer's MptcpStream connects from the first path and joins from the second
/// (`open_subflow`), sends 64 MiB; the kernel server's SHA-256 equals the sender's, both
/// subflows carried data (per-subflow `bytes_sent` from `info()`), the kernel counted the
/// join.
#[test]
fn api_stream_sends_64mib_over_two_paths_to_a_kernel_server() {
    if !require_root("api_stream_sends_64mib_over_two_paths_to_a_kernel_server") {
        return;
    }
    let Some(ns) = tun_paths("apik1", &["10.0.0.1/24", "10.1.0.1/24"], 2, 2) else {
        return;
    };
    let bytes = 64 * MIB;
    let (c, s) = ns.exchange(
        // --hold-open: Linux refuses joins once the server shut down its sending direction.
        &kpeer("listen --port 5401 --proto mptcp --sink --hold-open --json"),
        &apipeer(&format!(
            "send --path braid0=10.0.0.2 --path braid1=10.1.0.2 --remote 10.0.0.1:5401 \
             --bytes {bytes} --join 10.1.0.2=10.0.0.1:5401"
        )),
    );
    let api = c.json();
    let kernel = s.json();
    assert_sent(&api, bytes);
    assert_received(&kernel, bytes);
    assert_eq!(kernel["sha256_received"], api["sha256_sent"]);
    assert_eq!(api["is_mptcp"], true, "{api}");
    assert_eq!(api["closed_error"], serde_json::Value::Null, "{api}");
    // TUN offloads unless the run turned them off: the paths say which.
    let off = std::env::var("BRAID_OFFLOAD").is_ok_and(|v| v == "off");
    assert_eq!(api["offload"], serde_json::json!([!off, !off]), "{api}");
    let subflows = api["subflows"].as_array().expect("subflows");
    assert_eq!(subflows.len(), 2, "{api}");
    for sf in subflows {
        assert!(
            sf["bytes_sent"].as_u64() > Some(0),
            "subflow {} carried nothing: {api}",
            sf["id"]
        );
    }
    assert!(
        subflows[1]["local"]
            .as_str()
            .is_some_and(|l| l.starts_with("10.1.0.2:")),
        "the join leaves from the second path: {api}"
    );
    assert_kernel(&ns, "MPCapableSYNRX", 1);
    assert_kernel(&ns, "MPJoinSynRx", 1);
    assert_kernel(&ns, "MPJoinAckRx", 1);
    for bad in ["DSSNotMatching", "DataCsumErr", "MPRstRx", "MPFailRx"] {
        assert_kernel(&ns, bad, 0);
    }
    assert!(ns.rx_packets("braid1").unwrap() >= 3, "packets on braid1");
    println!(
        "apik1: {bytes} bytes in {:.2} s = {:.0} Mbit/s; subflow bytes_sent {} / {}",
        api["duration_s"].as_f64().unwrap_or(0.0),
        mbit_s(bytes, &api),
        subflows[0]["bytes_sent"],
        subflows[1]["bytes_sent"]
    );
}

/// Case 2: a kernel MPTCP client sends 32 MiB to apipeer's MptcpListener: byte-exact,
/// `is_mptcp()` true, the kernel saw MP_CAPABLE in the SYN/ACK.
#[test]
fn kernel_client_sends_to_an_api_listener() {
    if !require_root("kernel_client_sends_to_an_api_listener") {
        return;
    }
    let Some(ns) = one_path("apik2") else {
        return;
    };
    let bytes = 32 * MIB;
    let (s, c) = {
        let (c, s) = ns.exchange(
            &apipeer("recv --path braid0=10.0.0.2 --port 5402"),
            &kpeer(&format!(
                "connect 10.0.0.2:5402 --proto mptcp --send {bytes} --json"
            )),
        );
        (s, c)
    };
    let api = s.json();
    let kernel = c.json();
    assert_sent(&kernel, bytes);
    assert_received(&api, bytes);
    assert_eq!(api["is_mptcp"], true, "{api}");
    assert_eq!(api["closed_error"], serde_json::Value::Null, "{api}");
    assert_eq!(kernel["bytes_received"], 0);
    assert_kernel(&ns, "MPCapableSYNTX", 1);
    assert_kernel(&ns, "MPCapableSYNACKRX", 1);
    assert_kernel(&ns, "MPCapableFallbackSYNACK", 0);
    println!(
        "apik2: {bytes} bytes in {:.2} s = {:.0} Mbit/s",
        api["duration_s"].as_f64().unwrap_or(0.0),
        mbit_s(bytes, &api)
    );
}

/// The kernel's TCP sockets to `dst` (`ss -tin`): (bytes_sent, bytes_acked) summed over
/// them (the subflows of one MPTCP connection).
fn kernel_bytes_to(ns: &Netns, dst: &str) -> (u64, u64, String) {
    let out = ns
        .run("ss", &["-tinH", "dst", dst])
        .expect("ss in the namespace");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .filter_map(|w| w.strip_prefix(name))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    (field("bytes_sent:"), field("bytes_acked:"), text)
}

/// braid's default receive buffer (`braid_proto::TcpConfig`): the data level's, and the
/// largest each subflow TCB's may grow to.
const RECV_BUFFER: u64 = 4 * MIB;
/// Window rounding (braid's window scale is 10: 1 KiB steps) and an ACK or two in flight.
const WINDOW_SLACK: u64 = 256 * 1024;
/// Fixed memory overhead on top of the buffers: allocator slack and per-segment
/// bookkeeping (measured: about 0.2 MiB over the buffered bytes).
const MEM_OVERHEAD: u64 = 2 * MIB;

/// What a slow reader left: apipeer's report, what it read and what braid took in at the
/// data level, the kernel's subflow figures and its data-level retransmissions.
struct SlowRun {
    api: serde_json::Value,
    read: u64,
    data_level: u64,
    kernel_sent: u64,
    kernel_acked: u64,
    kernel_mptcp_retrans: u64,
    ss: String,
}

/// Case 3's run: the kernel client sends as fast as it can; apipeer reads at 1 MiB/s for
/// 5 s and stops, exiting without closing, so the kernel's figures (`ss -ti`, nstat) stay
/// what braid allowed.
fn slow_reader(prefix: &str, port: u16) -> Option<SlowRun> {
    let ns = one_path(prefix)?;
    let rate = MIB;
    let secs = 5.0;
    let server = ns
        .start_ready(
            &apipeer(&format!(
                "recv --path braid0=10.0.0.2 --port {port} --rate {rate} --for {secs}"
            )),
            "listening",
        )
        .expect("apipeer recv");
    // More than 5 s at any speed braid reaches here; the time limit is a hang guard.
    let sender = ns
        .start(&kpeer(&format!(
            "connect 10.0.0.2:{port} --proto mptcp --send 4294967296 --time-limit 40"
        )))
        .expect("kpeer connect");
    let f = server
        .wait_within(Duration::from_secs(30))
        .expect("apipeer recv");
    assert!(f.success, "apipeer recv failed: {} {}", f.stdout, f.stderr);
    let api = f.json();
    // apipeer exited without a FIN or RST: the kernel's figures are final.
    let (kernel_sent, kernel_acked, ss) = kernel_bytes_to(&ns, &format!("10.0.0.2:{port}"));
    let kernel_mptcp_retrans = counter(&ns, "MPTCPRetrans");
    drop(sender);
    assert_eq!(api["stopped"], true, "read for --for seconds: {api}");
    assert_eq!(api["is_mptcp"], true, "{api}");
    let read = api["bytes_received"].as_u64().expect("bytes_received");
    assert_eq!(api["sha256_received"], pattern_sha256(read).as_str());
    // The pace held: about 5 MiB in 5 s (less on a starved machine, never much more).
    assert!(
        (2 * MIB..=5 * MIB + MIB / 2).contains(&read),
        "read {read} bytes in {secs} s at {rate}/s: {api}"
    );
    assert!(
        kernel_acked > 0,
        "no kernel socket to 10.0.0.2:{port}: {ss}"
    );
    let data_level = api["conn"]["bytes_received"].as_u64().expect("conn bytes");
    let base = api["vm_hwm_baseline_kib"].as_u64().unwrap_or(0);
    let idle = api["vm_hwm_idle_kib"].as_u64().unwrap_or(0);
    let hwm = api["vm_hwm_kib"].as_u64().unwrap_or(0);
    println!(
        "{prefix}: read {read} bytes in {:.2} s; braid took {data_level} at the data level, \
         {} on the subflow; kernel subflow sent {kernel_sent}, acked {kernel_acked} \
         (read + {:.2} MiB), MPTCPRetrans {kernel_mptcp_retrans}; VmHWM {idle} KiB idle, \
         {base} KiB at accept -> {hwm} KiB (+{} KiB), VmRSS max {} KiB",
        api["duration_s"].as_f64().unwrap_or(0.0),
        api["subflows"][0]["bytes_received"],
        kernel_acked.saturating_sub(read) as f64 / MIB as f64,
        hwm.saturating_sub(base),
        api["vm_rss_max_kib"],
    );
    Some(SlowRun {
        api,
        read,
        data_level,
        kernel_sent,
        kernel_acked,
        kernel_mptcp_retrans,
        ss,
    })
}

/// Case 3: a slow reader holds the kernel sender back.
///
/// - Memory: braid's VmHWM growth over its value right after accept, and over its value
///   before the connection, stays within the receive buffer + [`MEM_OVERHEAD`] (4 + 2 MiB;
///   measured from before the connection: +4.2 to +4.3 MiB, the data level's 4 MiB; the
///   send buffer is idle here, and the subflow TCB's receive ring stays small because the
///   data level pulls from it as fast as the window lets bytes in: with a ring of its full
///   4 MiB, as before, this was +8.1 to +8.3 MiB).
/// - Data level: braid took in at most what apipeer read plus [`RECV_BUFFER`].
/// - The window stopped the sender: the kernel's subflow got acknowledged at most what
///   apipeer read plus 3 x [`RECV_BUFFER`] (a loose bound; the test below holds it to one
///   [`RECV_BUFFER`]: every subflow advertises the data-level window). Without flow control
///   it would have sent gigabytes in these 5 s.
#[test]
fn a_slow_api_reader_holds_the_kernel_sender_back_within_the_buffer_bound() {
    if !require_root("a_slow_api_reader_holds_the_kernel_sender_back_within_the_buffer_bound") {
        return;
    }
    let Some(r) = slow_reader("apik3", 5403) else {
        return;
    };
    let (read, ss, api) = (r.read, &r.ss, &r.api);
    assert!(
        r.data_level <= read + RECV_BUFFER,
        "braid took {} bytes in at the data level: {read} read + {RECV_BUFFER}: {api}",
        r.data_level
    );
    let bound = read + 3 * RECV_BUFFER + WINDOW_SLACK;
    assert!(
        r.kernel_acked <= bound,
        "braid acknowledged {} bytes on the subflow: {read} read + 3 x {RECV_BUFFER}: {ss}; \
         {api}",
        r.kernel_acked
    );
    assert!(
        r.kernel_sent <= bound + MIB,
        "the kernel sent {} bytes: {read} read + 3 x {RECV_BUFFER} of window: {ss}",
        r.kernel_sent
    );
    let base = api["vm_hwm_baseline_kib"].as_u64().expect("baseline") * 1024;
    let hwm = api["vm_hwm_kib"].as_u64().expect("hwm") * 1024;
    let growth = hwm.saturating_sub(base);
    let mem_bound = RECV_BUFFER + MEM_OVERHEAD;
    assert!(
        base > 0 && growth <= mem_bound,
        "VmHWM grew by {growth} bytes (from {base}), bound {mem_bound}: {api}"
    );
    // The same from before the connection: the baseline at accept may already hold what
    // the kernel sent while accept returned.
    let idle = api["vm_hwm_idle_kib"].as_u64().expect("idle") * 1024;
    let growth = hwm.saturating_sub(idle);
    assert!(
        idle > 0 && growth <= mem_bound,
        "VmHWM grew by {growth} bytes from before the connection ({idle}), bound \
         {mem_bound}: {api}"
    );
}

/// Case 3, strictly: the kernel may run ahead of the reader by the receive buffer only
/// (RFC 8684 §3.3.4: one receive window, shared by the subflows, relative to the
/// DATA_ACK), and a reader that is merely slow causes no data-level retransmissions.
#[test]
fn a_slow_api_reader_lets_the_kernel_run_ahead_by_one_receive_buffer_only() {
    if !require_root("a_slow_api_reader_lets_the_kernel_run_ahead_by_one_receive_buffer_only") {
        return;
    }
    let Some(r) = slow_reader("apik3s", 5407) else {
        return;
    };
    let bound = r.read + RECV_BUFFER + WINDOW_SLACK;
    assert!(
        r.kernel_acked <= bound,
        "braid acknowledged {} bytes on the subflow, {} read + {RECV_BUFFER} of receive \
         buffer (data level: {}): {}",
        r.kernel_acked,
        r.read,
        r.data_level,
        r.ss
    );
    assert_eq!(r.kernel_mptcp_retrans, 0, "kernel MPTCPRetrans");
}

/// nftables in `ns`: SYNs to or from port `port` (`dir`: `dport`/`sport`) passing hook
/// `hook` (`input`/`output`) lose their MPTCP option (kind 30). Named counters: `before`
/// (SYNs with the option arriving at the rule) and `after` (SYNs still with it afterwards).
fn strip_syn_option(ns: &Netns, hook: &str, dir: &str, port: u16) {
    let syn = format!("tcp {dir} {port} tcp flags & syn == syn");
    for cmd in [
        "add table inet apik".to_owned(),
        "add counter inet apik before".to_owned(),
        "add counter inet apik after".to_owned(),
        format!(
            "add chain inet apik strip {{ type filter hook {hook} priority 0 ; policy accept ; }}"
        ),
        format!("add rule inet apik strip {syn} tcp option mptcp exists counter name before"),
        format!("add rule inet apik strip {syn} reset tcp option mptcp"),
        format!("add rule inet apik strip {syn} tcp option mptcp exists counter name after"),
    ] {
        nft(ns, &cmd);
    }
}

/// Case 4: a middlebox strips MP_CAPABLE from the SYN. As a client (apipeer send; braid's
/// SYN stripped on its way into the kernel) and as a server (apipeer recv; the kernel's
/// SYN stripped on its way out): `is_mptcp()` is false and the transfer is byte-exact
/// (fallback to TCP). The nftables counters show the option was there and then gone.
#[test]
fn is_mptcp_is_false_when_a_middlebox_strips_mp_capable_from_the_syn() {
    let test = "is_mptcp_is_false_when_a_middlebox_strips_mp_capable_from_the_syn";
    if !require_root(test) {
        return;
    }
    let bytes = 4 * MIB;

    // apipeer as the client: its SYN loses the option before the kernel sees it.
    let Some(ns) = one_path("apik4c") else {
        return;
    };
    if !have_nft(&ns, test) {
        return;
    }
    strip_syn_option(&ns, "input", "dport", 5404);
    let (c, s) = ns.exchange(
        &kpeer("listen --port 5404 --proto mptcp --sink --json"),
        &apipeer(&format!(
            "send --path braid0=10.0.0.2 --remote 10.0.0.1:5404 --bytes {bytes}"
        )),
    );
    let api = c.json();
    assert_sent(&api, bytes);
    assert_received(&s.json(), bytes);
    assert_eq!(api["is_mptcp"], false, "{api}");
    assert!(
        nft_counter(&ns, "before") >= 1,
        "braid's SYN had MP_CAPABLE"
    );
    assert_eq!(nft_counter(&ns, "after"), 0, "the rule stripped it");
    // The kernel listener saw a plain SYN.
    assert_kernel(&ns, "MPCapableSYNRX", 0);
    drop(ns);

    // apipeer as the server: the kernel's SYN loses the option on its way out.
    let Some(ns) = one_path("apik4s") else {
        return;
    };
    strip_syn_option(&ns, "output", "dport", 5405);
    let (c, s) = ns.exchange(
        &apipeer("recv --path braid0=10.0.0.2 --port 5405"),
        &kpeer(&format!(
            "connect 10.0.0.2:5405 --proto mptcp --send {bytes} --json"
        )),
    );
    let api = s.json();
    assert_sent(&c.json(), bytes);
    assert_received(&api, bytes);
    assert_eq!(api["is_mptcp"], false, "{api}");
    assert!(
        nft_counter(&ns, "before") >= 1,
        "the kernel's SYN had MP_CAPABLE"
    );
    assert_eq!(nft_counter(&ns, "after"), 0, "the rule stripped it");
    // The kernel offered MPTCP and fell back on braid's plain SYN/ACK.
    assert_kernel(&ns, "MPCapableSYNTX", 1);
    assert_kernel(&ns, "MPCapableSYNACKRX", 0);
    println!("apik4: {bytes} bytes each way of fallback, byte-exact; is_mptcp false both roles");
}

/// Case 5: the kernel server aborts after 8 MiB (SO_LINGER 0 close: RST with MP_FASTCLOSE);
/// apipeer's stream fails with `ConnectionReset`.
#[test]
fn a_kernel_abort_is_connection_reset_in_the_api() {
    if !require_root("a_kernel_abort_is_connection_reset_in_the_api") {
        return;
    }
    let Some(ns) = one_path("apik5") else {
        return;
    };
    let abort_at = 8 * MIB;
    let server = ns
        .start_ready(
            &kpeer(&format!(
                "listen --port 5406 --proto mptcp --abort-after {abort_at} --json"
            )),
            "listening",
        )
        .expect("kpeer listen");
    let c = ns
        .start(&apipeer(&format!(
            "send --path braid0=10.0.0.2 --remote 10.0.0.1:5406 --bytes {}",
            64 * MIB
        )))
        .expect("apipeer send")
        .wait_within(Duration::from_secs(60))
        .expect("apipeer send ends");
    let k = server.finish("kpeer listen").json();
    assert_eq!(k["aborted"], true, "{k}");
    assert!(!c.success, "apipeer must fail: {} {}", c.stdout, c.stderr);
    let api = c.json();
    assert_eq!(
        api["error_kind"],
        "ConnectionReset",
        "{api}; kernel counters: {}",
        kernel_view(&ns)
    );
    assert!(api["bytes_sent"].as_u64() >= Some(abort_at), "{api}");
    assert!(counter(&ns, "MPFastcloseTx") >= 1, "kernel MPFastcloseTx");
    println!(
        "apik5: error_kind {} at stage {} after {} bytes: {}",
        api["error_kind"], api["stage"], api["bytes_sent"], api["error"]
    );
}
