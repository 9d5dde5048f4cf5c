//! The library's examples (crates/braid/examples) run against the kernel's MPTCP in a
//! network namespace, as a user would run them: `http_get` fetches a page from a Python
//! `http.server` on an MPTCP socket, `echo_server` echoes a kernel client, `file_transfer`
//! sends a file to a kernel server and receives one from a kernel client.
//!
//! Layout: namespace `braid-ex*-<pid>-<n>`, TUN `braid0` with the kernel on 10.0.0.1/24 and
//! braid on 10.0.0.2.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use braid_interop::{pattern_sha256, require_root, Cmd, Netns, TempDir};

const KPEER: &str = env!("CARGO_BIN_EXE_kpeer");

/// The example binaries, built now (once per test process) with the workspace's cargo.
fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&root)
                .args(["build", "-q", "-p", "braid", "--examples"])
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("cargo build --examples: {status}"));
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            Ok(target.join("debug/examples"))
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

fn ns_with_mptcp(prefix: &str) -> Netns {
    let ns = Netns::with_tun(prefix).expect("namespace");
    ns.run("sysctl", &["-qw", "net.mptcp.enabled=1"])
        .expect("sysctl");
    ns
}

/// A Python `http.server` whose listening socket is MPTCP (IPPROTO_MPTCP = 262), serving
/// `dir` on 10.0.0.1:8000.
const MPTCP_HTTP_SERVER: &str = r#"
import functools, http.server, socket, sys
class MptcpServer(http.server.ThreadingHTTPServer):
    def __init__(self, addr, handler):
        http.server.ThreadingHTTPServer.__init__(self, addr, handler, bind_and_activate=False)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
        self.server_bind()
        self.server_activate()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = MptcpServer(("10.0.0.1", 8000), handler)
print("listening", file=sys.stderr, flush=True)
server.serve_forever()
"#;

#[test]
fn http_get_fetches_a_page_from_an_mptcp_http_server() {
    if !require_root("http_get_fetches_a_page_from_an_mptcp_http_server") {
        return;
    }
    let bin = example("http_get");
    let ns = ns_with_mptcp("exhttp");
    let dir = TempDir::new("braid-exhttp").expect("temp dir");
    // A text page of 1 MiB plus one byte: several windows, an odd size.
    let mut page: String = (0..(1 << 20) / 8).map(|i| format!("{i:07}\n")).collect();
    page.push('.');
    std::fs::write(dir.path().join("page.txt"), &page).expect("page");
    let script = dir.path().join("server.py");
    std::fs::write(&script, MPTCP_HTTP_SERVER).expect("script");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let server = ns
        .start_ready(
            &Cmd::new("python3", "")
                .arg(script.to_string_lossy())
                .arg(dir_arg),
            "listening",
        )
        .expect("python http.server");
    let out = ns
        .start(&Cmd::new(
            &bin,
            "--path braid0=10.0.0.2 http://10.0.0.1:8000/page.txt",
        ))
        .expect("http_get")
        .wait_within(Duration::from_secs(60))
        .expect("http_get ends");
    assert!(out.success, "http_get failed: {}", out.stderr);
    assert!(
        out.stderr.contains("200 OK") && out.stderr.contains("MPTCP: true"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.len(), page.len());
    assert!(out.stdout == page, "the page arrived changed");
    // A missing page: the example says so and fails.
    let missing = ns
        .start(&Cmd::new(
            &bin,
            "--path braid0=10.0.0.2 http://10.0.0.1:8000/nothing-here",
        ))
        .expect("http_get")
        .wait_within(Duration::from_secs(60))
        .expect("http_get ends");
    assert!(!missing.success, "{}", missing.stderr);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
    // SIGTERM: the server ends with the test.
    let _ = server.signal(15);
}

#[test]
fn echo_server_returns_a_kernel_clients_bytes() {
    if !require_root("echo_server_returns_a_kernel_clients_bytes") {
        return;
    }
    let bin = example("echo_server");
    let ns = ns_with_mptcp("execho");
    let server = ns
        .start_ready(
            &Cmd::new(&bin, "--path braid0=10.0.0.2 --port 7000 --once"),
            "listening",
        )
        .expect("echo_server");
    let n = (4 << 20) + 3;
    let client = ns.run_ok(&Cmd::new(
        KPEER,
        &format!("connect 10.0.0.2:7000 --proto mptcp --send {n} --json"),
    ));
    let report = client.json();
    assert_eq!(report["bytes_received"], n);
    assert_eq!(report["sha256_received"], pattern_sha256(n));
    let done = server
        .wait_within(Duration::from_secs(30))
        .expect("echo_server ends");
    assert!(done.success, "{}", done.stderr);
    assert!(
        done.stderr
            .contains(&format!("echoed {n} bytes (MPTCP: true)")),
        "{}",
        done.stderr
    );
}

#[test]
fn file_transfer_sends_to_and_receives_from_the_kernel() {
    if !require_root("file_transfer_sends_to_and_receives_from_the_kernel") {
        return;
    }
    let bin = example("file_transfer");
    let ns = ns_with_mptcp("exfile");
    let dir = TempDir::new("braid-exfile").expect("temp dir");

    // Send: a file of the pattern stream to a kernel sink.
    let n: u64 = (8 << 20) + 1;
    let mut data = vec![0u8; n as usize];
    braid::stream::PatternStream::new().fill(&mut data);
    let file = dir.path().join("out.bin");
    std::fs::write(&file, &data).expect("file");
    let sink = ns
        .start_ready(
            &Cmd::new(KPEER, "listen --port 7001 --proto mptcp --sink --json"),
            "listening",
        )
        .expect("kpeer listen");
    let sent = ns.run_ok(
        &Cmd::new(&bin, "send --path braid0=10.0.0.2 10.0.0.1:7001").arg(file.to_string_lossy()),
    );
    assert!(
        sent.stderr
            .contains(&format!("sent {n} bytes (MPTCP: true)")),
        "{}",
        sent.stderr
    );
    let got = sink.finish("kpeer listen").json();
    assert_eq!(got["bytes_received"], n);
    assert_eq!(got["sha256_received"], pattern_sha256(n));

    // Receive: a kernel client's pattern stream into a file.
    let into = dir.path().join("in.bin");
    let receiver = ns
        .start(
            &Cmd::new(&bin, "recv --path braid0=10.0.0.2 --port 7002").arg(into.to_string_lossy()),
        )
        .expect("file_transfer recv");
    // The receiver listens once its endpoint is up; the kernel client retries its SYN.
    std::thread::sleep(Duration::from_millis(300));
    let m: u64 = (6 << 20) + 7;
    ns.run_ok(&Cmd::new(
        KPEER,
        &format!("connect 10.0.0.2:7002 --proto mptcp --send {m} --json"),
    ));
    let done = receiver.finish("file_transfer recv");
    let line = done.stdout.trim().to_owned();
    assert!(
        line.starts_with(&format!("{m} {} ", pattern_sha256(m))),
        "{line}"
    );
    assert_eq!(std::fs::metadata(&into).expect("file").len(), m);
}
