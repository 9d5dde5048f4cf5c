//! Interop harness: network namespaces with TUN devices, so braid (on the userspace side of a
//! TUN) can talk to the Linux kernel's TCP and MPTCP (on the other side).
//!
//! - [`Netns`]: a uniquely named namespace (`braid-<prefix>-<pid>-<n>`), deleted on drop.
//!   The harness never touches a namespace it did not create in this process.
//! - [`Netns::add_tun`]: a persistent TUN device inside, with the kernel's address and up.
//! - [`Netns::run`] / [`Netns::spawn`]: commands inside; spawned children die on drop.
//! - [`require_root`]: the skip-or-fail policy of these tests.
//! - [`braid_bin`]: the binary under test (kpeer is the tests' `CARGO_BIN_EXE_kpeer`).
//! - [`Cmd`], [`Netns::exchange`], [`Proc::finish`], [`Finished::json`], [`assert_sent`],
//!   [`assert_received`] (module `run`): starting servers and clients, checking their reports.

pub mod mptcp;
mod run;

pub use run::{assert_received, assert_received_sha, assert_sent, Cmd, SIGINT, SIGTERM};

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether these tests can run here. Root (or CAP_NET_ADMIN) and `ip` are needed. Without
/// them: outside CI, print why and return false (the test returns early, i.e. is skipped); in
/// CI (`CI=true`), panic, because a skipped interop test there hides a broken setup.
pub fn require_root(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = is_root();
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let why = match (root, ip) {
        (true, true) => return true,
        (false, _) => "needs root (network namespaces and TUN devices)",
        (true, false) => "needs the `ip` tool (iproute2)",
    };
    if ci {
        panic!("{test}: {why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

fn is_root() -> bool {
    // The effective uid, from /proc: no libc needed for one number.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .is_some_and(|uid| uid == "0")
}

fn check(what: &str, out: Output) -> io::Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{what}: {} ({})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip(args: &[&str]) -> io::Result<Output> {
    let out = Command::new("ip").args(args).output()?;
    check(&format!("ip {}", args.join(" ")), out)
}

/// A network namespace owned by the test; deleted (with its devices) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// `/etc/netns/<name>` was created by [`Netns::etc_file`]: removed on drop.
    etc: std::cell::Cell<bool>,
}

impl Netns {
    /// Create `braid-<prefix>-<pid>-<n>` with `lo` up.
    pub fn new(prefix: &str) -> io::Result<Netns> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("braid-{prefix}-{}-{n}", std::process::id());
        // A namespace of that name is not ours: `ip netns add` fails and the test with it,
        // rather than touching what another process created.
        ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            etc: std::cell::Cell::new(false),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A persistent TUN device `dev` inside, the kernel's side addressed `kernel_cidr` (e.g.
    /// `10.0.0.1/24`) and up. braid attaches to it with `--path DEV=ADDR`.
    pub fn add_tun(&self, dev: &str, kernel_cidr: &str) -> io::Result<()> {
        self.ip(&["tuntap", "add", "dev", dev, "mode", "tun"])?;
        self.ip(&["addr", "add", kernel_cidr, "dev", dev])?;
        self.ip(&["link", "set", dev, "up"])?;
        Ok(())
    }

    /// Write `/etc/netns/<name>/<file>`, which `ip netns exec` shows as `/etc/<file>` to the
    /// commands run inside (e.g. `hosts`: names only this namespace resolves). The directory
    /// goes with the namespace; one that exists already is not ours and is refused.
    pub fn etc_file(&self, file: &str, contents: &str) -> io::Result<()> {
        let dir = Path::new("/etc/netns").join(&self.name);
        if !self.etc.get() {
            std::fs::create_dir_all("/etc/netns")?;
            // create_dir (not _all): fails if the directory exists, i.e. is not ours.
            std::fs::create_dir(&dir)?;
            self.etc.set(true);
        }
        std::fs::write(dir.join(file), contents)
    }

    /// The namespace's kernel counter `name` (as `nstat` names it, e.g.
    /// `MPTcpExtMPCapableSYNRX`, `TcpExtTCPTimeouts`), absolute; 0 when unknown.
    pub fn counter(&self, name: &str) -> io::Result<u64> {
        // -a absolute, -s leave nstat's history file alone, -z zeros too.
        let out = self.run("nstat", &["-asz", name])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name))
                    .then(|| f.next().and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .unwrap_or(0))
    }

    /// Packets the kernel received on device `dev` (for a TUN: packets braid wrote to it;
    /// with TUN offloads a GSO write of many segments counts once).
    pub fn rx_packets(&self, dev: &str) -> io::Result<u64> {
        self.rx_stat(dev, "packets")
    }

    /// Bytes the kernel received on device `dev` (for a TUN: what braid wrote to it).
    pub fn rx_bytes(&self, dev: &str) -> io::Result<u64> {
        self.rx_stat(dev, "bytes")
    }

    fn rx_stat(&self, dev: &str, what: &str) -> io::Result<u64> {
        let out = self.ip(&["-s", "-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| io::Error::other(format!("ip -j output: {e}")))?;
        v.get(0)
            .and_then(|l| l.get("stats64"))
            .and_then(|s| s.get("rx"))
            .and_then(|r| r.get(what))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| io::Error::other(format!("no rx {what} count in `ip -s -j link`")))
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Run `program ARGS` inside and wait; an error if it fails.
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> io::Result<Output> {
        let what = format!("{} {}", program.as_ref().to_string_lossy(), args.join(" "));
        let out = self.command(program).args(args).output()?;
        check(&what, out)
    }

    /// Start `program ARGS` inside with stdout and stderr piped; killed when dropped.
    pub fn spawn(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> io::Result<Proc> {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(Proc::new(child))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.etc.get() {
            let dir = Path::new("/etc/netns").join(&self.name);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("warning: could not remove {}: {e}", dir.display());
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete namespace {}: {e}", self.name);
        }
    }
}

/// A child process; killed and reaped on drop unless waited for.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    stderr: Option<BufReader<ChildStderr>>,
    stderr_seen: String,
    /// Lines of stdout, once [`Proc::wait_for_stdout`] started reading them in a thread.
    stdout_lines: Option<std::sync::mpsc::Receiver<String>>,
    stdout_seen: String,
}

/// What a finished process left.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Proc {
    fn new(mut child: Child) -> Proc {
        let stderr = child.stderr.take().map(BufReader::new);
        Proc {
            child: Some(child),
            stderr,
            stderr_seen: String::new(),
            stdout_lines: None,
            stdout_seen: String::new(),
        }
    }

    /// Read stdout lines until one contains `needle` and return it; an error when the
    /// stream ends first or after `limit` (a hang guard, not a timing assertion). The lines
    /// read stay part of [`Finished::stdout`].
    pub fn wait_for_stdout(&mut self, needle: &str, limit: Duration) -> io::Result<String> {
        if self.stdout_lines.is_none() {
            let out = self
                .child
                .as_mut()
                .and_then(|c| c.stdout.take())
                .ok_or_else(|| io::Error::other("stdout not captured"))?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            self.stdout_lines = Some(rx);
        }
        let Some(rx) = &self.stdout_lines else {
            return Err(io::Error::other("stdout not captured"));
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => {
                    let why = match e {
                        std::sync::mpsc::RecvTimeoutError::Timeout => "timed out",
                        std::sync::mpsc::RecvTimeoutError::Disconnected => "stdout ended",
                    };
                    return Err(io::Error::other(format!(
                        "{why} before a line with {needle:?} ({limit:?}); stdout: {}",
                        self.stdout_seen
                    )));
                }
            };
            self.stdout_seen.push_str(&line);
            self.stdout_seen.push('\n');
            if line.contains(needle) {
                return Ok(line);
            }
        }
    }

    /// Read stderr lines until one contains `needle` (or the stream ends: an error).
    pub fn wait_for_stderr(&mut self, needle: &str) -> io::Result<String> {
        let Some(r) = self.stderr.as_mut() else {
            return Err(io::Error::other("stderr not captured"));
        };
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(io::Error::other(format!(
                    "process ended before printing {needle:?}; stderr: {}",
                    self.stderr_seen
                )));
            }
            self.stderr_seen.push_str(&line);
            if line.contains(needle) {
                return Ok(line);
            }
        }
    }

    /// Send a signal (e.g. libc's SIGINT = 2) through `kill`.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        let st = Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()?;
        if st.success() {
            Ok(())
        } else {
            Err(io::Error::other("kill failed"))
        }
    }

    /// Wait for the process and collect its output. A hang guard, not a timing assertion:
    /// after `limit` the process is killed and an error returned.
    pub fn wait_within(mut self, limit: Duration) -> io::Result<Finished> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("already waited"));
        };
        let out: Option<ChildStdout> = child.stdout.take();
        let lines = self.stdout_lines.take();
        let mut seen = std::mem::take(&mut self.stdout_seen);
        let stdout = std::thread::spawn(move || {
            if let Some(rx) = lines {
                // The reading thread ends with the stream.
                for line in rx {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            }
            if let Some(mut o) = out {
                let _ = o.read_to_string(&mut seen);
            }
            seen
        });
        let err = self.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = err {
                let _ = r.read_to_string(&mut s);
            }
            s
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = stdout.join().unwrap_or_default();
        let mut all_err = std::mem::take(&mut self.stderr_seen);
        all_err.push_str(&stderr.join().unwrap_or_default());
        let Some(status) = status else {
            return Err(io::Error::other(format!(
                "still running after {limit:?}, killed; stderr: {all_err}"
            )));
        };
        Ok(Finished {
            success: status.success(),
            code: status.code(),
            stdout,
            stderr: all_err,
        })
    }

    /// [`Proc::wait_within`] with a generous limit for the tests' transfers.
    pub fn wait(self) -> io::Result<Finished> {
        self.wait_within(Duration::from_secs(300))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The braid binary: `$BRAID_BIN`, else the workspace's `target/debug/braid` (built now with
/// `cargo build -p braid --bin braid`, once per test process, so it is never stale), else
/// `target/release/braid`.
pub fn braid_bin() -> io::Result<PathBuf> {
    static FOUND: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| find_braid_bin().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

fn find_braid_bin() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BRAID_BIN") {
        return Ok(PathBuf::from(p));
    }
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let built = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-q", "-p", "braid", "--bin", "braid"])
        .status();
    let debug = target.join("debug/braid");
    if built.is_ok_and(|s| s.success()) && debug.exists() {
        return Ok(debug);
    }
    let release = target.join("release/braid");
    if release.exists() {
        return Ok(release);
    }
    Err(io::Error::other(
        "braid binary not found: set BRAID_BIN or run `cargo build -p braid`",
    ))
}

/// The SHA-256 (hex) of the first `n` bytes of braid's pattern stream: what `--send n`
/// must deliver.
pub fn pattern_sha256(n: u64) -> String {
    let mut stream = braid::stream::PatternStream::new();
    let mut tally = braid::stream::Tally::new();
    let mut buf = vec![0u8; 65536];
    let mut left = n;
    while left > 0 {
        let k = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let chunk = &mut buf[..k];
        stream.fill(chunk);
        tally.update(chunk);
        left -= k as u64;
    }
    tally.hex()
}

/// A temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("braid-{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Parse the last line of `stdout` that is a JSON object.
pub fn last_json(stdout: &str) -> io::Result<serde_json::Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.starts_with('{')
                .then(|| serde_json::from_str(l).ok())
                .flatten()
        })
        .ok_or_else(|| io::Error::other(format!("no JSON object in output: {stdout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_after_other_lines() {
        let v = last_json("hello\n{\"a\":1}\n").unwrap();
        assert_eq!(v["a"], 1);
        assert!(last_json("nothing").is_err());
    }

    #[test]
    fn root_is_read_from_proc() {
        // Whatever the answer, it must agree with the uid the kernel reports for `id -u`.
        let uid = Command::new("id").arg("-u").output().unwrap();
        let uid = String::from_utf8_lossy(&uid.stdout).trim().to_owned();
        assert_eq!(is_root(), uid == "0");
    }
}
