//! Assertions on MPTCP counters shared by the multipath interop suites: the kernel's
//! (`nstat` MPTcpExt) and braid's (its JSON report).

use crate::Netns;

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
