//! `bench/loss.sh`, the loss benchmark (and the first checks of `bench/proxy.sh` and
//! `bench/perf.sh`): always a syntax check, `--help` and a refused argument (cheap, no root);
//! with `BRAID_BENCH_SMOKE=1` (and root) also its `--quick` mode on the debug binaries, which
//! creates and deletes its own namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;

use braid_interop::{braid_bin, require_root, TempDir};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/loss.sh")
}

/// What every bench script owes before anything runs: `bash -n` passes, `--help` (no root,
/// no build) names each of `flags`, an unknown argument is refused in one line that names
/// it, and shellcheck (where installed) finds nothing.
fn explains_itself(s: &Path, flags: &[&str]) {
    let syntax = Command::new("bash").arg("-n").arg(s).output().unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // --help needs neither root nor a build.
    let help = Command::new("bash").arg(s).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "--help: {}", text);
    for flag in flags {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}: {text}"
        );
    }
    // An unknown argument: one line, non-zero, before anything is touched.
    let bad = Command::new("bash").arg(s).arg("--bogus").output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--bogus"), "{err}");
    // shellcheck-clean where shellcheck is installed.
    if let Ok(out) = Command::new("shellcheck").arg(s).output() {
        assert!(
            out.status.success(),
            "shellcheck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn loss_script_parses_and_explains_itself() {
    explains_itself(
        &script(),
        &[
            "--quick",
            "--reps",
            "--loss",
            "--bytes",
            "--limit",
            "--markdown",
            "--kernel-cc",
        ],
    );
}

#[test]
fn loss_script_quick_mode_runs() {
    if std::env::var("BRAID_BENCH_SMOKE").as_deref() != Ok("1") {
        eprintln!("SKIPPED loss_script_quick_mode_runs: set BRAID_BENCH_SMOKE=1 to run it");
        return;
    }
    if !require_root("loss_script_quick_mode_runs") {
        return;
    }
    let out_dir = TempDir::new("bench").unwrap();
    let md = out_dir.path().join("table.md.copy");
    let out = Command::new("bash")
        .arg(script())
        .args(["--quick", "--no-build", "--out"])
        .arg(out_dir.path())
        .arg("--markdown")
        .arg(&md)
        .env("BRAID_BIN", braid_bin().unwrap())
        .env("KPEER_BIN", env!("CARGO_BIN_EXE_kpeer"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("b->k/k->b"), "{stdout}");
    // Three loss rates, three directions: nine transfers, none failed (a slow one may time
    // out, which the table marks).
    let results = std::fs::read_to_string(out_dir.path().join("results.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = results.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 9, "{results}");
    for r in &rows {
        assert!(matches!(r[5], "ok" | "timeout"), "{results}\n{stderr}");
    }
    // At 0 % loss every direction completes.
    for r in rows.iter().filter(|r| r[2] == "0") {
        assert_eq!(r[5], "ok", "{results}\n{stderr}");
    }
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("| 0.0 % |"), "{table}");
    // --report prints the same tables again from the kept results, without root or runs.
    let again = Command::new("bash")
        .arg(script())
        .arg("--report")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    // The namespaces the script created (it lists them) are gone.
    let created = std::fs::read_to_string(out_dir.path().join("namespaces.txt")).unwrap();
    assert!(created.lines().count() >= 27, "{created}");
    for ns in created.lines() {
        assert!(
            !Path::new("/var/run/netns").join(ns).exists(),
            "namespace {ns} left behind"
        );
    }
}

/// `bench/proxy.sh`, the proxy's throughput benchmark: the same checks (no root, no build).
#[test]
fn proxy_script_parses_and_explains_itself() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/proxy.sh");
    explains_itself(
        &s,
        &["--bytes", "--reps", "--quick", "--no-build", "--markdown"],
    );
}

/// `bench/perf.sh`, braid against the kernel's MPTCP side by side (issue 15): the same checks
/// (no root, no build).
#[test]
fn perf_script_parses_and_explains_itself() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/perf.sh");
    explains_itself(
        &s,
        &[
            "--bytes",
            "--reps",
            "--quick",
            "--limit",
            "--out",
            "--no-build",
            "--markdown",
        ],
    );
}

/// `kpeer --cc NAME` sets its socket's congestion control (what `loss.sh --kernel-cc` relies
/// on): an unknown name is refused with the name in the error; a known one listens.
#[test]
fn kpeer_sets_its_congestion_control() {
    let listen = |cc: &str| {
        Command::new(env!("CARGO_BIN_EXE_kpeer"))
            .args(["listen", "--bind", "127.0.0.1", "--port", "0", "--cc", cc])
            .args(["--time-limit", "0.3"])
            .output()
            .unwrap()
    };
    let bad = listen("no-such-cc");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("congestion control no-such-cc"), "{err}");
    let good = listen("reno");
    let err = String::from_utf8_lossy(&good.stderr);
    assert!(err.contains("listening on"), "{err}");
}
