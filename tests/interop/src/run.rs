//! What the interop tests do over and over, once: build a braid or kpeer command line, start a
//! server and wait until it is ready, run a client to its end, demand success, read the JSON
//! report, and check that the pattern stream arrived byte-exact.

use std::ffi::OsString;
use std::io;

use crate::{braid_bin, last_json, pattern_sha256, Finished, Netns, Proc};

/// Signal numbers (Linux): the first asks for a graceful close, the second aborts.
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

/// A program and its arguments, to be run inside a [`Netns`].
#[derive(Clone, Debug)]
pub struct Cmd {
    program: OsString,
    args: Vec<String>,
}

impl Cmd {
    /// `program` with the whitespace-separated words of `line` as its arguments.
    pub fn new(program: impl Into<OsString>, line: &str) -> Cmd {
        Cmd {
            program: program.into(),
            args: line.split_whitespace().map(str::to_owned).collect(),
        }
    }

    /// The braid binary under test ([`braid_bin`]) with the words of `line`; panics when
    /// there is no braid binary.
    #[track_caller]
    pub fn braid(line: &str) -> Cmd {
        match braid_bin() {
            Ok(bin) => Cmd::new(bin, line),
            Err(e) => panic!("{e}"),
        }
    }

    /// One more argument, taken whole (a file path may hold spaces).
    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    /// What failure messages call this command: the program's file name and its first word,
    /// e.g. `braid connect`, `kpeer listen`.
    pub fn label(&self) -> String {
        let prog = std::path::Path::new(&self.program)
            .file_name()
            .unwrap_or(self.program.as_os_str())
            .to_string_lossy()
            .into_owned();
        match self.args.first() {
            Some(verb) => format!("{prog} {verb}"),
            None => prog,
        }
    }
}

impl Netns {
    /// The tests' usual namespace ([`Netns::new`]): a persistent TUN `braid0` whose kernel
    /// side is 10.0.0.1/24 (braid attaches to it as 10.0.0.2).
    pub fn with_tun(prefix: &str) -> io::Result<Netns> {
        let ns = Netns::new(prefix)?;
        ns.add_tun("braid0", "10.0.0.1/24")?;
        Ok(ns)
    }

    /// Start `cmd` inside (see [`Netns::spawn`]).
    pub fn start(&self, cmd: &Cmd) -> io::Result<Proc> {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        self.spawn(&cmd.program, &args)
    }

    /// Start a server and return once a line of its stderr contains `ready` (e.g.
    /// `listening`).
    pub fn start_ready(&self, cmd: &Cmd, ready: &str) -> io::Result<Proc> {
        let mut p = self.start(cmd)?;
        p.wait_for_stderr(ready)?;
        Ok(p)
    }

    /// Run `cmd` inside to its end; it must succeed (panics otherwise, with its stderr).
    #[track_caller]
    pub fn run_ok(&self, cmd: &Cmd) -> Finished {
        let label = cmd.label();
        match self.start(cmd) {
            Ok(p) => p.finish(&label),
            Err(e) => panic!("{label}: cannot start: {e}"),
        }
    }

    /// One exchange: `server` started and ready (its stderr says `listening`), then `client`
    /// run to its end, then the server's end awaited; both must succeed. Returns (client,
    /// server).
    #[track_caller]
    pub fn exchange(&self, server: &Cmd, client: &Cmd) -> (Finished, Finished) {
        self.exchange_when(server, "listening", client)
    }

    /// [`Netns::exchange`], with the client started once the server's stderr says `ready`.
    #[track_caller]
    pub fn exchange_when(&self, server: &Cmd, ready: &str, client: &Cmd) -> (Finished, Finished) {
        let s = match self.start_ready(server, ready) {
            Ok(p) => p,
            Err(e) => panic!("{}: {e}", server.label()),
        };
        let c = self.run_ok(client);
        let s = s.finish(&server.label());
        (c, s)
    }

    /// A transfer only signals end: `server` started and ready (stderr `listening`), `client`
    /// started, and once the server's stderr says `accepted`, `signals` sent to the client in
    /// order. Returns the client's end and the server, still running.
    pub fn interrupt(
        &self,
        server: &Cmd,
        client: &Cmd,
        signals: &[i32],
    ) -> io::Result<(Finished, Proc)> {
        let mut server = self.start_ready(server, "listening")?;
        let client = self.start(client)?;
        server.wait_for_stderr("accepted")?;
        for &sig in signals {
            client.signal(sig)?;
        }
        Ok((client.wait()?, server))
    }
}

impl Proc {
    /// Wait for the end ([`Proc::wait`]); it must have succeeded. `label` names the process in
    /// the panic message.
    #[track_caller]
    pub fn finish(self, label: &str) -> Finished {
        match self.wait() {
            Ok(f) => {
                assert!(f.success, "{label} failed: {}", f.stderr);
                f
            }
            Err(e) => panic!("{label}: {e}"),
        }
    }
}

impl Finished {
    /// The JSON report: the last JSON object on stdout (panics when there is none).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        match last_json(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The report says `n` bytes of the pattern stream were sent (`bytes_sent`, `sha256_sent`).
#[track_caller]
pub fn assert_sent(report: &serde_json::Value, n: u64) {
    assert_eq!(report["bytes_sent"], n, "{report}");
    assert_eq!(
        report["sha256_sent"],
        pattern_sha256(n).as_str(),
        "{report}"
    );
}

/// The report says the first `n` bytes of the pattern stream were received, byte-exact
/// (`bytes_received`, `sha256_received`).
#[track_caller]
pub fn assert_received(report: &serde_json::Value, n: u64) {
    assert_eq!(report["bytes_received"], n, "{report}");
    assert_eq!(
        report["sha256_received"],
        pattern_sha256(n).as_str(),
        "{report}"
    );
}

/// The report's `sha256_received` is that of the first `n` bytes of the pattern stream (the
/// byte count itself is not looked at).
#[track_caller]
pub fn assert_received_sha(report: &serde_json::Value, n: u64) {
    assert_eq!(
        report["sha256_received"],
        pattern_sha256(n).as_str(),
        "{report}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_split_into_words_and_an_arg_stays_whole() {
        let c = Cmd::new("/x/kpeer", "listen  --port 5001").arg("/tmp/a b");
        assert_eq!(c.args, ["listen", "--port", "5001", "/tmp/a b"]);
        assert_eq!(c.label(), "kpeer listen");
        assert_eq!(Cmd::new("kpeer", "").label(), "kpeer");
    }

    #[test]
    fn pattern_reports_are_checked() {
        let n = 1000;
        let good = serde_json::json!({
            "bytes_sent": n, "sha256_sent": pattern_sha256(n),
            "bytes_received": n, "sha256_received": pattern_sha256(n),
        });
        assert_sent(&good, n);
        assert_received(&good, n);
        assert_received_sha(&good, n);
        let bad =
            serde_json::json!({"bytes_received": n, "sha256_received": pattern_sha256(n - 1)});
        assert!(std::panic::catch_unwind(|| assert_received(&bad, n)).is_err());
        assert!(std::panic::catch_unwind(|| assert_sent(&bad, n)).is_err());
    }
}
