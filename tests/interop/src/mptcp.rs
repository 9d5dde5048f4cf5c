//! What the multipath interop suites share: their namespaces of TUN paths, gates on the
//! kernel peer's reader, and assertions on MPTCP counters, the kernel's (`nstat` MPTcpExt)
//! and braid's (its JSON report).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{Cmd, Netns, TempDir};

/// A namespace with a TUN `braid<i>` per entry of `kernel` (the kernel's side of it, with
/// prefix length; braid sits behind), up, and the kernel's MPTCP limits at `subflows` /
/// `add_addr_accepted`; `None` (skipped, or a failure under `CI=true`) without `nstat`.
pub fn tun_paths(
    prefix: &str,
    kernel: &[&str],
    subflows: u8,
    add_addr_accepted: u8,
) -> Option<Netns> {
    tun_paths_with(prefix, kernel, subflows, add_addr_accepted, false)
}

/// [`tun_paths`] whose devices are `multi_queue` (one queue per braid worker) when
/// `multi_queue` is true.
pub fn tun_paths_with(
    prefix: &str,
    kernel: &[&str],
    subflows: u8,
    add_addr_accepted: u8,
    multi_queue: bool,
) -> Option<Netns> {
    let ns = Netns::new(prefix).expect("namespace");
    if ns.run("nstat", &["-V"]).is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{prefix}: nstat is missing and CI=true");
        }
        eprintln!("SKIPPED {prefix}: no nstat");
        return None;
    }
    for (i, cidr) in kernel.iter().enumerate() {
        let dev = format!("braid{i}");
        let mut add = vec!["tuntap", "add", "dev", &dev, "mode", "tun"];
        if multi_queue {
            add.push("multi_queue");
        }
        ns.ip(&add).expect("tuntap");
        let mut add = vec!["addr", "add", cidr, "dev", &dev];
        if cidr.contains(':') {
            // Usable at once: no duplicate address detection delay.
            add.push("nodad");
        }
        ns.ip(&add).expect("address");
        ns.ip(&["link", "set", &dev, "up"]).expect("link up");
    }
    let (s, a) = (subflows.to_string(), add_addr_accepted.to_string());
    ns.run(
        "ip",
        &[
            "mptcp",
            "limits",
            "set",
            "subflows",
            &s,
            "add_addr_accepted",
            &a,
        ],
    )
    .expect("ip mptcp limits");
    Some(ns)
}

/// The kernel's `subflow` endpoint 10.1.0.1 (id 7) on `braid1`, joining braid's first
/// address 10.0.0.2 through the second device (source-routed, as multihomed hosts are set
/// up).
pub fn kernel_subflow_endpoint(ns: &Netns) {
    ns.ip(&["rule", "add", "from", "10.1.0.1", "table", "101"])
        .expect("ip rule");
    ns.ip(&["route", "add", "10.0.0.2", "dev", "braid1", "table", "101"])
        .expect("ip route");
    ns.run(
        "ip",
        &[
            "mptcp", "endpoint", "add", "10.1.0.1", "dev", "braid1", "id", "7", "subflow",
        ],
    )
    .expect("ip mptcp endpoint");
}

/// Caps the kernel's TCP receive buffer at 4 MiB, so that a paused reader (a [`Gates`]
/// gate) stops its peer soon.
pub fn cap_kernel_rcvbuf(ns: &Netns) {
    ns.run("sysctl", &["-qw", "net.ipv4.tcp_rmem=4096 131072 4194304"])
        .expect("sysctl tcp_rmem");
}

/// Gate files in a temporary directory: `kpeer --gate BYTES:FILE` arguments (its reader
/// reads nothing more once BYTES arrived until FILE exists) and their release. A test acts
/// at a point of the stream it knows, however slow the machine, then lets the transfer on.
pub struct Gates {
    dir: TempDir,
}

impl Gates {
    pub fn new(prefix: &str) -> Gates {
        Gates {
            dir: TempDir::new(prefix).expect("temporary directory"),
        }
    }

    /// The path `name` in the gates' directory (gate files, control sockets).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cmd` with `--gate AT:FILE` for the gate `name`.
    pub fn arg(&self, cmd: Cmd, at: u64, name: &str) -> Cmd {
        cmd.arg("--gate")
            .arg(format!("{at}:{}", self.file(name).display()))
    }

    /// Lets the reader go on past gate `name`.
    pub fn open(&self, name: &str) {
        std::fs::write(self.file(name), b"").expect("gate file");
    }
}

/// Waits until `cond` holds. A hang guard, not a timing assertion: what the tests wait
/// for happens within a second or two.
#[track_caller]
pub fn wait_until(what: &str, ns: &Netns, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened; kernel counters: {}",
            kernel_view(ns)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// braid's report's subflows whose `field` (`local` or `remote`) is on address `ip`
/// (`[v6]` for IPv6).
pub fn subflows_on<'a>(
    report: &'a serde_json::Value,
    field: &str,
    ip: &str,
) -> Vec<&'a serde_json::Value> {
    let prefix = format!("{ip}:");
    report["subflows"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| s[field].as_str().is_some_and(|a| a.starts_with(&prefix)))
                .collect()
        })
        .unwrap_or_default()
}

/// The kernel's MPTcpExt counter `name` (without the prefix).
pub fn counter(ns: &Netns, name: &str) -> u64 {
    ns.counter(&format!("MPTcpExt{name}")).unwrap()
}

/// Every non-zero MPTcpExt counter of the namespace, for failure messages.
pub fn kernel_view(ns: &Netns) -> String {
    ns.run("nstat", &["-asz"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("MPTcpExt"))
                .filter(|l| l.split_whitespace().nth(1).is_some_and(|v| v != "0"))
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| e.to_string())
}

/// The kernel counter `name` is `want`.
#[track_caller]
pub fn assert_kernel(ns: &Netns, name: &str, want: u64) {
    assert_eq!(
        counter(ns, name),
        want,
        "kernel {name}; kernel counters: {}",
        kernel_view(ns)
    );
}

/// The kernel counter `name` is at least `min`.
#[track_caller]
pub fn assert_kernel_min(ns: &Netns, name: &str, min: u64) {
    let v = counter(ns, name);
    assert!(
        v >= min,
        "kernel {name} = {v} < {min}; kernel counters: {}",
        kernel_view(ns)
    );
}

/// braid's counter `name` in its report is at least `min`.
#[track_caller]
pub fn assert_braid_min(report: &serde_json::Value, name: &str, min: u64) {
    let c = &report["counters"];
    assert!(
        c[name].as_u64().is_some_and(|v| v >= min),
        "braid {name} < {min}: {c}"
    );
}

/// Neither side saw a bad HMAC, a mapping or checksum failure, a fallback, or data beyond
/// the window.
#[track_caller]
pub fn assert_clean(ns: &Netns, braid: &serde_json::Value) {
    assert_clean_but(ns, braid, &[]);
}

/// [`assert_clean`] but for the counters named in `expected`.
#[track_caller]
pub fn assert_clean_but(ns: &Netns, braid: &serde_json::Value, expected: &[&str]) {
    for bad in [
        "MPJoinAckHMacFailure",
        "MPJoinSynAckHMacFailure",
        "DSSNotMatching",
        "DataCsumErr",
        "MPFailRx",
        "InfiniteMapRx",
        "NoDSSInWindow",
        "MPCapableFallbackACK",
        "MPCapableFallbackSYNACK",
        "MPRstRx",
    ] {
        if expected.contains(&bad) {
            continue;
        }
        assert_kernel(ns, bad, 0);
    }
    assert_eq!(braid["mptcp"], true, "braid fell back: {braid}");
    let c = &braid["counters"];
    for bad in [
        "MPJoinAckHMacFailure",
        "MPJoinSynAckHMacFailure",
        "DSSNotMatching",
        "DataCsumErr",
        "MPFailTx",
        "MPFailRx",
        "MPRstTx",
    ] {
        if expected.contains(&bad) {
            continue;
        }
        assert_eq!(c[bad], 0, "braid counter {bad}: {c}");
    }
}
