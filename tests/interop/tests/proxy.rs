//! `braid proxy` in network namespaces, as users run it: `curl --socks5-hostname` through
//! a braid proxy client, two paths, and either a braid proxy server or a SOCKS5 server on
//! the kernel's MPTCP (ksocks), to a Python `http.server`; kernel MPTCP clients through a
//! braid proxy server; a path cut mid-download; 200 downloads at once and a slow upstream
//! within the documented memory bound; resets, half-close and SIGTERM.
//!
//! Layout: one namespace `braid-px*-<pid>-<n>` per test, forwarding between its TUN
//! devices: `braid0` (kernel 10.1.0.1, braid client 10.1.0.2) and `braid1` (10.2.0.1,
//! 10.2.0.2) are the client's two paths; `braid2` (10.3.0.1, braid server 10.3.0.2) is the
//! server's. Local programs and upstream services use the namespace's loopback.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use braid_interop::mptcp::tun_paths;
use braid_interop::{braid_bin, require_root, Netns, TempDir};

const KSOCKS: &str = env!("CARGO_BIN_EXE_ksocks");
const KECHO: &str = env!("CARGO_BIN_EXE_kecho");

/// The namespace of a test: three TUN devices, forwarding between them, the kernel's MPTCP
/// limits at 2 subflows; `None` when skipped.
fn setup(prefix: &str) -> Option<Netns> {
    if !require_root(prefix) {
        return None;
    }
    let ns = tun_paths(prefix, &["10.1.0.1/24", "10.2.0.1/24", "10.3.0.1/24"], 2, 0)?;
    ns.run(
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.mptcp.enabled=1",
        ],
    )
    .expect("sysctl");
    Some(ns)
}

/// A process inside the namespace with its output in files (a busy proxy's log never
/// fills a pipe); killed on drop.
struct Logged {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Logged {
    fn start(ns: &Netns, dir: &Path, name: &str, program: &Path, args: &[&str]) -> Logged {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = ns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("log file"))
            .stderr(File::create(&err).expect("log file"))
            .spawn()
            .expect("spawn");
        Logged {
            child: Some(child),
            out,
            err,
        }
    }

    fn braid(ns: &Netns, dir: &Path, name: &str, args: &[&str]) -> Logged {
        Logged::start(ns, dir, name, &braid_bin().expect("braid binary"), args)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits for a line of stderr with `needle` and returns it (a hang guard of 30 s, not a
    /// timing assertion).
    fn wait_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.stderr().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("ended ({st}) before {needle:?}: {}", self.stderr());
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in 30 s: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `done` holds of stdout and returns stdout then (a hang guard of 10 s,
    /// not a timing assertion; `what` names what was awaited).
    fn wait_stdout(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout();
            if done(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "no {what}: {out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Peak resident memory, KiB (the namespace's `ip netns exec` became the program).
    fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM")
    }

    /// The memory bound the proxy announced, KiB.
    fn announced_bound_kib(&mut self) -> u64 {
        let line = self.wait_stderr("memory bound");
        let mib: u64 = line
            .split("memory bound ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no bound in {line:?}"));
        mib << 10
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// Waits for the exit (a hang guard), returning its status code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("still running after {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The process itself, beside what the announced bound counts (the binary, the runtime,
/// the TUN queues' packets): what the memory checks allow on top of the bound.
const BASE_KIB: u64 = 48 << 10;

/// A Python `http.server` (plain TCP) on 127.0.0.1:8000 serving `dir`, with room for
/// hundreds of connections.
fn http_server(ns: &Netns, dir: &Path) -> Logged {
    let script = format!(
        r#"
import functools, http.server, sys
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={dir:?})
s = S(("127.0.0.1", 8000), h)
print("listening", file=sys.stderr, flush=True)
s.serve_forever()
"#,
        dir = dir.to_string_lossy()
    );
    let mut p = Logged::start(ns, dir, "http", Path::new("python3"), &["-c", &script]);
    p.wait_stderr("listening");
    p
}

/// `bytes` of random data in `dir/name`, and its SHA-256.
fn random_file(dir: &Path, name: &str, bytes: usize) -> String {
    use sha2::Digest;
    let mut data = vec![0u8; bytes];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    std::fs::write(dir.join(name), &data).expect("file");
    hex(&sha2::Sha256::digest(&data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha_of(path: &Path) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(
        std::fs::read(path).expect("downloaded file"),
    ))
}

/// The braid proxy server of the layout (SOCKS5 unless `extra` says otherwise).
fn braid_server(ns: &Netns, dir: &Path, extra: &[&str]) -> Logged {
    let mut args = vec![
        "proxy",
        "server",
        "--port",
        "1080",
        "--path",
        "braid2=10.3.0.2",
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--upstream") {
        args.push("--socks5");
    }
    let mut p = Logged::braid(ns, dir, "server", &args);
    p.wait_stderr("listening on");
    p
}

/// The braid proxy client of the layout: two paths, to `remote`, JSON lines on stdout.
fn braid_client(ns: &Netns, dir: &Path, remote: &str, extra: &[&str]) -> Logged {
    let mut args = vec![
        "proxy",
        "client",
        "--listen",
        "127.0.0.1:1080",
        "--remote",
        remote,
        "--path",
        "braid0=10.1.0.2",
        "--path",
        "braid1=10.2.0.2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let mut p = Logged::braid(ns, dir, "client", &args);
    p.wait_stderr("listening on");
    p
}

/// The `close` events of a proxy's JSON lines.
fn closes(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "close")
        .collect()
}

/// The last `close` event of a proxy, once there is one.
fn last_close(p: &Logged) -> serde_json::Value {
    let out = p.wait_stdout("close line", |o| !closes(o).is_empty());
    closes(&out).pop().unwrap_or_default()
}

/// How each connection of a proxy's JSON lines ended, in order.
fn ends(stdout: &str) -> Vec<String> {
    closes(stdout)
        .iter()
        .map(|c| c["end"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A close event's connection had two subflows, and each received more than 1 MiB.
fn assert_two_busy_subflows(close: &serde_json::Value) {
    let per: Vec<u64> = close["subflows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["bytes_received"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(per.len(), 2, "{close}");
    assert!(
        per.iter().all(|&b| b > 1 << 20),
        "each subflow carries data: {per:?}"
    );
}

/// curl through the proxy client, as SOCKS5 with names resolved by the far proxy.
fn curl(ns: &Netns, url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out_s = out.to_string_lossy();
    let mut args = vec![
        "-sS",
        "--max-time",
        "120",
        "--socks5-hostname",
        "127.0.0.1:1080",
        "-o",
        &out_s,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    ns.command("curl").args(&args).output().expect("curl")
}

#[test]
fn curl_downloads_100_mib_through_a_braid_proxy_pair_over_two_paths() {
    let Some(ns) = setup("pxpair") else { return };
    let dir = TempDir::new("pxpair").expect("dir");
    let sha = random_file(dir.path(), "big.bin", 100 << 20);
    let _http = http_server(&ns, dir.path());
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice:s3cret\n").expect("users");
    let users_s = users.to_string_lossy().into_owned();
    let _server = braid_server(&ns, dir.path(), &["--socks5-users", &users_s, "--json"]);
    let client = braid_client(&ns, dir.path(), "10.3.0.2:1080", &[]);
    let got = dir.path().join("got.bin");
    let r = curl(
        &ns,
        "http://localhost:8000/big.bin",
        &got,
        &["--proxy-user", "alice:s3cret"],
    );
    assert!(
        r.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(sha_of(&got), sha, "the download is byte-exact");
    // Both subflows carried the download.
    let close = last_close(&client);
    assert_eq!(close["mptcp"], true, "{close}");
    assert_eq!(close["end"], "closed", "{close}");
    assert_two_busy_subflows(&close);

    // The wrong password: the far proxy refuses, curl says so.
    let r = curl(
        &ns,
        "http://localhost:8000/big.bin",
        &dir.path().join("no.bin"),
        &["--proxy-user", "alice:wrong"],
    );
    assert!(!r.status.success(), "a wrong password is refused");
    // A port where nothing listens: SOCKS5 reply 5 (connection refused).
    let r = curl(
        &ns,
        "http://127.0.0.1:9/",
        &dir.path().join("no.bin"),
        &["--proxy-user", "alice:s3cret"],
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("(5)") || err.to_lowercase().contains("refused"),
        "{err}"
    );
}

#[test]
fn curl_downloads_100_mib_through_the_braid_client_and_a_kernel_mptcp_socks5_server() {
    let Some(ns) = setup("pxkern") else { return };
    let dir = TempDir::new("pxkern").expect("dir");
    let sha = random_file(dir.path(), "big.bin", 100 << 20);
    let _http = http_server(&ns, dir.path());
    let mut ksocks = Logged::start(
        &ns,
        dir.path(),
        "ksocks",
        Path::new(KSOCKS),
        &["10.1.0.1:1080"],
    );
    ksocks.wait_stderr("listening on");
    let client = braid_client(&ns, dir.path(), "10.1.0.1:1080", &[]);
    let got = dir.path().join("got.bin");
    let r = curl(&ns, "http://localhost:8000/big.bin", &got, &[]);
    assert!(
        r.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(sha_of(&got), sha, "the download is byte-exact");
    let close = last_close(&client);
    assert_eq!(close["mptcp"], true, "{close}");
    assert_two_busy_subflows(&close);
    // The kernel's own view: it accepted MPTCP and the join.
    assert!(ns.counter("MPTcpExtMPCapableSYNRX").expect("nstat") >= 1);
    assert!(ns.counter("MPTcpExtMPJoinSynRx").expect("nstat") >= 1);
}

#[test]
fn kernel_mptcp_clients_go_through_a_braid_proxy_server_to_an_upstream() {
    let Some(ns) = setup("pxkcli") else { return };
    let dir = TempDir::new("pxkcli").expect("dir");
    let mut echo = Logged::start(
        &ns,
        dir.path(),
        "echo",
        Path::new(KECHO),
        &[
            "server",
            "--port",
            "7000",
            "--bind",
            "127.0.0.1",
            "--proto",
            "tcp",
        ],
    );
    echo.wait_stderr("listening on");
    let _server = braid_server(&ns, dir.path(), &["--upstream", "127.0.0.1:7000"]);
    let out = ns
        .run(
            KECHO,
            &[
                "clients",
                "10.3.0.2:1080",
                "--n",
                "50",
                "--bytes",
                "1048576",
            ],
        )
        .expect("kecho clients");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kecho's JSON line");
    assert_eq!(report["completed"], 50, "{report}");
    assert!(ns.counter("MPTcpExtMPCapableSYNACKRX").expect("nstat") >= 50);
}

#[test]
fn a_download_survives_a_path_cut_in_the_middle() {
    let Some(ns) = setup("pxcut") else { return };
    let dir = TempDir::new("pxcut").expect("dir");
    let sha = random_file(dir.path(), "big.bin", 40 << 20);
    let _http = http_server(&ns, dir.path());
    let _server = braid_server(&ns, dir.path(), &[]);
    let ctl = dir.path().join("client.sock");
    let ctl_s = ctl.to_string_lossy().into_owned();
    let client = braid_client(&ns, dir.path(), "10.3.0.2:1080", &["--ctl", &ctl_s]);
    let got = dir.path().join("got.bin");
    let got_s = got.to_string_lossy().into_owned();
    // Rate-limited, so that the cut falls inside the download.
    let mut curl = ns
        .command("curl")
        .args([
            "-sS",
            "--max-time",
            "120",
            "--limit-rate",
            "8M",
            "--socks5-hostname",
            "127.0.0.1:1080",
            "-o",
            &got_s,
            "http://localhost:8000/big.bin",
        ])
        .spawn()
        .expect("curl");
    // Both subflows up (seen through the control socket), and some bytes in.
    let bin = braid_bin().expect("braid");
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_cut = loop {
        let stat = ns
            .command(&bin)
            .args(["stat", "--ctl", &ctl_s, "--json"])
            .output();
        let open = stat
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .map(|v| v.to_string().matches("10.2.0.2").count())
            .unwrap_or(0);
        let size = std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
        if open > 0 && size > 4 << 20 {
            break size;
        }
        assert!(Instant::now() < deadline, "no second subflow or no bytes");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        at_cut < 24 << 20,
        "the cut came late: {at_cut} bytes already in"
    );
    // The cut: every packet of the second path dropped where the kernel forwards it.
    ns.run("nft", &["add", "table", "inet", "cut"])
        .expect("nft");
    ns.run(
        "nft",
        &["add chain inet cut pathcut { type filter hook forward priority 0 ; }"],
    )
    .expect("nft chain");
    ns.run("nft", &["add rule inet cut pathcut ip saddr 10.2.0.2 drop"])
        .expect("nft");
    ns.run("nft", &["add rule inet cut pathcut ip daddr 10.2.0.2 drop"])
        .expect("nft");
    let status = curl.wait().expect("curl");
    assert!(status.success(), "curl after the cut");
    assert_eq!(sha_of(&got), sha, "byte-exact after the cut");
    drop(client);
}

#[test]
fn two_hundred_downloads_at_once_stay_within_the_memory_bound() {
    let Some(ns) = setup("px200") else { return };
    let dir = TempDir::new("px200").expect("dir");
    let sha = random_file(dir.path(), "f.bin", 2 << 20);
    let _http = http_server(&ns, dir.path());
    let limits = ["--buffer", "256K", "--max-connections", "256"];
    let mut server = braid_server(&ns, dir.path(), &limits);
    let mut client = braid_client(&ns, dir.path(), "10.3.0.2:1080", &limits);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("dir");
    let mut args: Vec<String> = [
        "-sS",
        "--max-time",
        "300",
        "-Z",
        "--parallel-max",
        "200",
        "--socks5-hostname",
        "127.0.0.1:1080",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..200 {
        args.push("-o".into());
        args.push(out.join(i.to_string()).to_string_lossy().into_owned());
        args.push("http://localhost:8000/f.bin".into());
    }
    let r = ns.command("curl").args(&args).output().expect("curl");
    assert!(
        r.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    for i in 0..200 {
        assert_eq!(sha_of(&out.join(i.to_string())), sha, "download {i}");
    }
    let n = closes(&client.stdout()).len();
    assert!(n >= 190, "{n} close lines");
    for (name, p) in [("server", &mut server), ("client", &mut client)] {
        let bound = p.announced_bound_kib();
        let peak = p.peak_rss_kib();
        eprintln!("{name}: peak {peak} KiB, bound {bound} KiB");
        assert!(
            peak <= bound + BASE_KIB,
            "{name}: peak {peak} KiB over the bound {bound} KiB (+{BASE_KIB} KiB)"
        );
    }
}

/// An upstream that reads 64 KiB every 50 ms (about 1.3 MB/s) on 127.0.0.1:9000, with a
/// small receive buffer.
const SLOW_UPSTREAM: &str = r#"
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
l.bind(("127.0.0.1", 9000)); l.listen(8)
print("listening", file=sys.stderr, flush=True)
c, _ = l.accept()
while True:
    d = c.recv(65536)
    if not d:
        break
    time.sleep(0.05)
"#;

/// A local program that writes as fast as the proxy takes for `secs` seconds, then prints
/// how many bytes the socket accepted.
const FAST_WRITER: &str = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", 1080))
s.setblocking(False)
buf = b"x" * 65536
n = 0
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        n += s.send(buf)
    except BlockingIOError:
        time.sleep(0.01)
print(n, flush=True)
"#;

#[test]
fn an_upload_to_a_slow_upstream_keeps_the_proxies_within_their_bound() {
    let Some(ns) = setup("pxslow") else { return };
    let dir = TempDir::new("pxslow").expect("dir");
    let mut up = Logged::start(
        &ns,
        dir.path(),
        "up",
        Path::new("python3"),
        &["-c", SLOW_UPSTREAM],
    );
    up.wait_stderr("listening");
    let limits = ["--buffer", "256K", "--max-connections", "4"];
    let mut server = braid_server(&ns, dir.path(), &{
        let mut v = vec!["--upstream", "127.0.0.1:9000"];
        v.extend_from_slice(&limits);
        v
    });
    let mut client = braid_client(&ns, dir.path(), "10.3.0.2:1080", &limits);
    let out = ns
        .run("python3", &["-c", FAST_WRITER, "6"])
        .expect("writer");
    let written: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("byte count");
    // In 6 s the upstream read about 8 MB; what the writer got rid of beyond that sits in
    // the chain's buffers: kernel sockets, two relays, braid's buffers. Without
    // backpressure it would be gigabytes.
    assert!(
        written < 64 << 20,
        "the writer pushed {written} bytes into a 1.3 MB/s upstream in 6 s"
    );
    for (name, p) in [("server", &mut server), ("client", &mut client)] {
        let bound = p.announced_bound_kib();
        let peak = p.peak_rss_kib();
        eprintln!("{name}: peak {peak} KiB, bound {bound} KiB");
        assert!(
            peak <= bound + BASE_KIB,
            "{name}: peak {peak} KiB over the bound {bound} KiB (+{BASE_KIB} KiB)"
        );
    }
}

/// An upstream on 127.0.0.1:9001: a connection whose first byte is `R` is reset; one whose
/// first byte is `H` is read to its end, answered with the byte count, and closed.
const RESET_OR_COUNT: &str = r#"
import socket, struct, sys, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 9001)); l.listen(8)
print("listening", file=sys.stderr, flush=True)
def serve(c):
    first = c.recv(1)
    if first == b"R":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        return
    n = len(first)
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.sendall(str(n).encode())
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,)).start()
"#;

/// A local program: `H`: send N bytes, shut down writing, print what comes back; `R`: send
/// `R`, print `reset` when the connection is reset; `R idle`: send `H` (the upstream then
/// waits for more) and wait the same way.
const LOCAL_PROGRAM: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", 1080))
if sys.argv[1] == "H":
    s.sendall(b"H" + b"y" * (int(sys.argv[2]) - 1))
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    print(got.decode(), flush=True)
else:
    try:
        s.sendall(b"H" if sys.argv[2:] == ["idle"] else b"R")
        while s.recv(65536):
            pass
        print("eof", flush=True)
    except (ConnectionResetError, BrokenPipeError):
        print("reset", flush=True)
"#;

#[test]
fn half_close_and_resets_cross_the_proxy_pair_and_sigterm_ends_it() {
    let Some(ns) = setup("pxrst") else { return };
    let dir = TempDir::new("pxrst").expect("dir");
    let mut up = Logged::start(
        &ns,
        dir.path(),
        "up",
        Path::new("python3"),
        &["-c", RESET_OR_COUNT],
    );
    up.wait_stderr("listening");
    let _server = braid_server(&ns, dir.path(), &["--upstream", "127.0.0.1:9001"]);
    // A far proxy that refuses (nothing on port 1999): the program's connection is reset,
    // and the client logs the failure.
    let refused = braid_client(&ns, dir.path(), "10.3.0.2:1999", &[]);
    let out = ns
        .run("python3", &["-c", LOCAL_PROGRAM, "R"])
        .expect("program");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reset");
    let failed = refused.stdout();
    assert!(
        failed.contains(r#""event":"failed""#) && failed.contains("refused"),
        "{failed}"
    );
    drop(refused);
    let mut client = braid_client(&ns, dir.path(), "10.3.0.2:1080", &[]);
    // Half-close: the program's FIN reaches the upstream, whose answer comes back after it.
    let out = ns
        .run("python3", &["-c", LOCAL_PROGRAM, "H", "1000001"])
        .expect("program");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000001");
    // The upstream's reset becomes the program's reset.
    let out = ns
        .run("python3", &["-c", LOCAL_PROGRAM, "R"])
        .expect("program");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reset");
    let out = client.wait_stdout("two close lines", |o| closes(o).len() >= 2);
    assert_eq!(ends(&out), ["closed", "reset"]);
    // SIGTERM with a connection open: it gets its grace, then is reset; a clean exit.
    let idle = ns
        .command("python3")
        .args(["-c", LOCAL_PROGRAM, "R", "idle"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("program");
    client.wait_stdout("a third open", |o| {
        o.matches(r#""event":"open""#).count() >= 3
    });
    client.signal("TERM");
    assert_eq!(client.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        client.stderr().contains("shutting down: 1 connection open"),
        "{}",
        client.stderr()
    );
    let out = idle.wait_with_output().expect("program");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "reset");
    assert_eq!(ends(&client.stdout()), ["closed", "reset", "stopped"]);
}
