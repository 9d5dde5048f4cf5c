//! braid's plain-TCP engine against the Linux kernel's TCP over a TUN device in a network
//! namespace: 16 MiB each way, byte-exact (SHA-256 of the pattern stream on both sides), and
//! the CLI's one-line failures.
//!
//! Layout of every test: namespace `braid-<test>-<pid>-<n>`, persistent TUN `braid0` whose
//! kernel side is 10.0.0.1/24; braid attaches to it as 10.0.0.2.

use braid_interop::{braid_bin, last_json, pattern_sha256, require_root, Netns};

const SIXTEEN_MIB: u64 = 16 << 20;

fn setup(prefix: &str) -> Netns {
    let ns = Netns::new(prefix).expect("create namespace");
    ns.add_tun("braid0", "10.0.0.1/24")
        .expect("TUN in namespace");
    ns
}

#[test]
fn braid_client_sends_16mib_to_kernel_server() {
    if !require_root("braid_client_sends_16mib_to_kernel_server") {
        return;
    }
    let braid = braid_bin().unwrap();
    let ns = setup("tcpc");
    let mut server = ns
        .spawn(
            env!("CARGO_BIN_EXE_kpeer"),
            &[
                "listen", "--bind", "10.0.0.1", "--port", "5001", "--sink", "--json",
            ],
        )
        .unwrap();
    server.wait_for_stderr("listening").unwrap();
    let n = SIXTEEN_MIB.to_string();
    let client = ns
        .spawn(
            &braid,
            &[
                "connect",
                "10.0.0.1:5001",
                "--tcp",
                "--path",
                "braid0=10.0.0.2",
                "--send",
                &n,
                "--json",
            ],
        )
        .unwrap();
    let c = client.wait().unwrap();
    assert!(c.success, "braid connect failed: {}", c.stderr);
    let s = server.wait().unwrap();
    assert!(s.success, "kpeer failed: {}", s.stderr);

    let cj = last_json(&c.stdout).unwrap();
    let sj = last_json(&s.stdout).unwrap();
    let want = pattern_sha256(SIXTEEN_MIB);
    assert_eq!(cj["role"], "client");
    assert_eq!(cj["mptcp"], false);
    assert_eq!(cj["bytes_sent"], SIXTEEN_MIB);
    assert_eq!(cj["sha256_sent"], want.as_str());
    assert_eq!(sj["bytes_received"], SIXTEEN_MIB);
    assert_eq!(sj["sha256_received"], want.as_str());
    assert_eq!(cj["subflows"][0]["remote"], "10.0.0.1:5001");
    assert!(cj["subflows"][0]["rtt_ms"].as_f64().is_some());
}

#[test]
fn kernel_client_sends_16mib_to_braid_server() {
    if !require_root("kernel_client_sends_16mib_to_braid_server") {
        return;
    }
    let braid = braid_bin().unwrap();
    let ns = setup("tcps");
    let mut server = ns
        .spawn(
            &braid,
            &[
                "listen",
                "--tcp",
                "--port",
                "5002",
                "--path",
                "braid0=10.0.0.2",
                "--sink",
                "--once",
                "--json",
            ],
        )
        .unwrap();
    server.wait_for_stderr("listening").unwrap();
    let n = SIXTEEN_MIB.to_string();
    let client = ns
        .spawn(
            env!("CARGO_BIN_EXE_kpeer"),
            &["connect", "10.0.0.2:5002", "--send", &n, "--json"],
        )
        .unwrap();
    let c = client.wait().unwrap();
    assert!(c.success, "kpeer failed: {}", c.stderr);
    let s = server.wait().unwrap();
    assert!(s.success, "braid listen failed: {}", s.stderr);

    let cj = last_json(&c.stdout).unwrap();
    let sj = last_json(&s.stdout).unwrap();
    let want = pattern_sha256(SIXTEEN_MIB);
    assert_eq!(cj["bytes_sent"], SIXTEEN_MIB);
    assert_eq!(cj["sha256_sent"], want.as_str());
    assert_eq!(sj["role"], "server");
    assert_eq!(sj["bytes_received"], SIXTEEN_MIB);
    assert_eq!(sj["sha256_received"], want.as_str());
}

#[test]
fn braid_echo_server_returns_every_byte() {
    if !require_root("braid_echo_server_returns_every_byte") {
        return;
    }
    let braid = braid_bin().unwrap();
    let ns = setup("tcpe");
    let mut server = ns
        .spawn(
            &braid,
            &[
                "listen",
                "--tcp",
                "--port",
                "5003",
                "--path",
                "braid0=10.0.0.2",
                "--echo",
                "--once",
                "--json",
            ],
        )
        .unwrap();
    server.wait_for_stderr("listening").unwrap();
    let n: u64 = 1 << 20;
    let client = ns
        .spawn(
            env!("CARGO_BIN_EXE_kpeer"),
            &[
                "connect",
                "10.0.0.2:5003",
                "--send",
                &n.to_string(),
                "--json",
            ],
        )
        .unwrap();
    let c = client.wait().unwrap();
    assert!(c.success, "kpeer failed: {}", c.stderr);
    let s = server.wait().unwrap();
    assert!(s.success, "braid listen failed: {}", s.stderr);
    let cj = last_json(&c.stdout).unwrap();
    let want = pattern_sha256(n);
    assert_eq!(cj["bytes_received"], n);
    assert_eq!(cj["sha256_received"], want.as_str());
    let sj = last_json(&s.stdout).unwrap();
    assert_eq!(sj["bytes_sent"], n);
}

#[test]
fn refused_connection_is_a_one_line_error() {
    if !require_root("refused_connection_is_a_one_line_error") {
        return;
    }
    let braid = braid_bin().unwrap();
    let ns = setup("tcpr");
    // Nobody listens on 10.0.0.1:5009: the kernel answers the SYN with a RST.
    let out = ns
        .spawn(
            &braid,
            &[
                "connect",
                "10.0.0.1:5009",
                "--tcp",
                "--path",
                "braid0=10.0.0.2",
                "--send",
                "1",
            ],
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(!out.success);
    let err = out.stderr.trim();
    assert!(err.contains("refused"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unusable_device_and_bad_path_are_one_line_errors() {
    if !require_root("unusable_device_and_bad_path_are_one_line_errors") {
        return;
    }
    let braid = braid_bin().unwrap();
    let ns = setup("tcpd");
    ns.ip(&["tuntap", "add", "dev", "braidtap", "mode", "tap"])
        .unwrap();
    for (path, needle) in [
        ("braidtap=10.0.0.2", "not a TUN device"),
        ("braid0", "bad --path"),
        ("braid0=10.0.0", "bad --path"),
    ] {
        let out = ns
            .command(&braid)
            .args([
                "connect",
                "10.0.0.1:5001",
                "--tcp",
                "--path",
                path,
                "--send",
                "1",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{path}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{path}: {err}");
    }
}
