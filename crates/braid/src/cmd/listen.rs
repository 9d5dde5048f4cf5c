//! `braid listen --port P --path DEV=ADDR ... [--sink | --echo | --out FILE] [--once] [--json]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

use super::{endpoint_builder, execute, open_output, parse_addrs, parse_paths, Role};
use crate::app::ServerMode;

/// Accept connections over TUN devices.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// The port to listen on (1-65535), on every path's address.
    #[arg(long, value_parser = super::port_value)]
    pub port: u16,
    /// A TUN device and braid's own address behind it (attach if the device exists, create it
    /// if not). Connections and joins (MP_JOIN) are accepted on every path's address.
    /// Each path has its own device and its own address.
    #[arg(long = "path", value_name = "DEV=ADDR", required = true, value_parser = super::path_value)]
    pub paths: Vec<String>,
    /// Plain TCP instead of MPTCP (by default MPTCP is accepted, and plain TCP from peers
    /// that do not offer MPTCP).
    #[arg(long)]
    pub tcp: bool,
    /// Mark the subflows that join on this address of a --path as backup: braid's
    /// SYN/ACK asks the peer to treat them so (the MP_JOIN B bit) and braid's own scheduler
    /// sends on them only when no other subflow works (a `backup` endpoint, as
    /// `ip mptcp endpoint add ADDR backup`). A joining peer's own backup bit is honoured
    /// on every address.
    #[arg(long = "backup", value_name = "ADDR", value_parser = super::addr_value)]
    pub backups: Vec<String>,
    #[command(flatten)]
    pub pm: super::PmArgs,
    /// Count and discard what arrives (the default).
    #[arg(long, group = "mode")]
    pub sink: bool,
    /// Send back what arrives.
    #[arg(long, group = "mode")]
    pub echo: bool,
    /// Write what arrives to this file (`-`: standard output).
    #[arg(long, value_name = "FILE", group = "mode")]
    pub out: Option<PathBuf>,
    /// Exit after the first connection closes.
    #[arg(long)]
    pub once: bool,
    /// Send this many bytes of the pattern stream on every connection, then close our
    /// direction (e.g. 16M): with it the server is the sender.
    #[arg(long, value_name = "BYTES", value_parser = super::parse_bytes, conflicts_with_all = ["echo", "input"])]
    pub send: Option<u64>,
    /// Send this file on every connection, then close our direction.
    #[arg(long = "in", value_name = "FILE", conflicts_with = "echo")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub tune: super::tune::TuneArgs,
    /// Print a JSON report on exit (with several connections: totals over all of them, and
    /// an entry for every subflow of each; `connections` counts them) instead of the
    /// one-line summaries.
    #[arg(long)]
    pub json: bool,
}

impl ListenArgs {
    /// Checks the arguments before anything runs (no device opened): each refusal is one
    /// line.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.port == 0 {
            bail!("bad --port 0: give the port to listen on");
        }
        let paths = parse_paths(&self.paths)?;
        if self.tcp {
            if !self.pm.signals.is_empty() {
                bail!("--signal needs MPTCP: leave out --tcp");
            }
            if !self.backups.is_empty() {
                bail!("--backup needs MPTCP: leave out --tcp");
            }
        }
        super::pm_config(&self.pm, &paths)?;
        for b in parse_addrs("--backup", &self.backups)? {
            if !paths.iter().any(|p| p.addr == b) {
                bail!("--backup {b}: not the address of any --path");
            }
        }
        Ok(())
    }
}

/// Run `braid listen`.
pub fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    // Parsed first: a malformed address is reported as such.
    let backups = parse_addrs("--backup", &args.backups)?;
    if args.port == 0 {
        bail!("bad --port 0: give the port to listen on");
    }
    let path_args = parse_paths(&args.paths)?;
    let mut config = super::pm_config(&args.pm, &path_args)?;
    let interval = args.tune.apply(&mut config, args.tcp)?;
    let send = match (&args.send, &args.input) {
        (Some(n), _) => Some(crate::app::ServerSend::Pattern(*n)),
        (None, Some(p)) => {
            // Checked now: a file that cannot be read is one line, before anything starts.
            std::fs::File::open(p)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", p.display()))?;
            Some(crate::app::ServerSend::File(p.clone()))
        }
        (None, None) => None,
    };
    super::backup_endpoints(&mut config, &path_args, &backups)?;
    // Before any file or device is touched: a refused --ctl path leaves everything as it was.
    let ctl = super::bind_ctl(&args.pm)?;
    let mode = match (&args.out, args.echo) {
        (Some(path), _) => ServerMode::Out(open_output(path)?),
        (None, true) => ServerMode::Echo,
        (None, false) => ServerMode::Sink,
    };
    let mut builder = endpoint_builder(config, &path_args, !args.tcp, ctl);
    if let Some(n) = args.tune.workers {
        builder = builder.workers(usize::from(n));
    }
    // `braid: listening on ...` comes once the listener is there (`app::run_server`): a
    // client started at that line finds it.
    execute(
        builder,
        Role::Server {
            port: args.port,
            mode,
            once: args.once,
            send,
        },
        super::Reporting {
            json: args.json,
            interval,
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ListenArgs,
    }

    fn parse(v: &[&str]) -> Result<ListenArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("listen").chain(v.iter().copied())).map(|c| c.args)
    }

    /// What braid says to `listen v...`, in one line: clap's refusal, the check's (both
    /// before anything runs, exit status 2), or run's.
    fn refusal(v: &[&str]) -> String {
        use clap::CommandFactory;
        let argv: Vec<String> = std::iter::once("listen")
            .chain(v.iter().copied())
            .map(String::from)
            .collect();
        match Cli::try_parse_from(&argv) {
            Err(e) => crate::cmd::usage::one_line(&e, &Cli::command(), &argv).expect("an error"),
            Ok(c) => match c.args.check() {
                Err(e) => e.to_string(),
                Ok(()) => run(c.args).expect_err("refused").to_string(),
            },
        }
    }

    #[test]
    fn flags_parse() {
        let a = parse(&[
            "--port",
            "5000",
            "--path",
            "braid0=10.0.0.2",
            "--tcp",
            "--echo",
            "--once",
        ])
        .unwrap();
        assert!(a.echo && a.once && a.tcp && !a.sink);
        assert!(parse(&["--port", "5000", "--path", "b=10.0.0.2", "--sink", "--echo"]).is_err());
        assert!(parse(&["--port", "5000"]).is_err(), "--path is required");
        assert!(parse(&["--port", "x", "--path", "b=10.0.0.2"]).is_err());
    }

    #[test]
    fn path_manager_options_are_checked_before_any_device_is_opened() {
        // Each is refused with one line before a TUN device is touched (and the device name
        // is one the TUN driver refuses before any system call, should a check be missed).
        for (extra, want) in [
            (
                &["--backup", "10.1.0.2"][..],
                "--backup 10.1.0.2: not the address of any --path",
            ),
            (&["--backup", "x"], "bad --backup \"x\""),
            (
                &["--signal", "10.1.0.2"],
                "--signal 10.1.0.2: not the address of any --path",
            ),
            (&["--signal", "x"], "bad --signal \"x\""),
            (
                &["--limits", "subflows=9"],
                "bad --limits \"subflows=9\": subflows limit 9",
            ),
            (
                &["--limits", "paths=2"],
                "bad --limits \"paths=2\": unknown limit",
            ),
            (&["--pm", "bogus"], "unknown path manager \"bogus\""),
        ] {
            let mut v = vec!["--port", "5000", "--path", "no/dev=10.0.0.2"];
            v.extend_from_slice(extra);
            let e = refusal(&v);
            assert!(e.starts_with(want) && !e.contains('\n'), "{extra:?}: {e}");
        }
    }

    #[test]
    fn arguments_are_refused_in_one_line_saying_what_is_wrong() {
        let base = ["--port", "5000", "--path", "no/dev=10.0.0.2"];
        for (args, want) in [
            (
                &["--path", "no/dev=10.1.0.2"][..],
                "--path no/dev=10.0.0.2 and --path no/dev=10.1.0.2: device no/dev given twice",
            ),
            (
                &["--path", "b=10.0.0.2"],
                "--path no/dev=10.0.0.2 and --path b=10.0.0.2: address 10.0.0.2 given twice",
            ),
            (
                &["--backup", "10.0.0.999"],
                "bad --backup \"10.0.0.999\": 10.0.0.999 is not a valid IPv4 address",
            ),
            (
                &["--tcp", "--backup", "10.0.0.2"],
                "--backup needs MPTCP: leave out --tcp",
            ),
            (
                &["--tcp", "--signal", "10.0.0.2"],
                "--signal needs MPTCP: leave out --tcp",
            ),
            (
                &["--path", "v6=fd00::1", "--signal", "fd00::1:8080"],
                "--signal fd00::1:8080: not the address of any --path (for a port, write \
                 [fd00::1]:8080)",
            ),
            (
                &["--pm", "ndiffports=0"],
                "bad --pm \"ndiffports=0\": ndiffports=N takes N from 1 to 8",
            ),
        ] {
            let mut v = base.to_vec();
            v.extend_from_slice(args);
            let e = refusal(&v);
            assert!(e.starts_with(want) && !e.contains('\n'), "{args:?}: {e}");
        }
        let e = refusal(&["--port", "0", "--path", "b=10.0.0.2"]);
        assert_eq!(e, "bad --port \"0\": expected a port from 1 to 65535");
        // What check passes reaches the devices (refused by name, before any system call).
        let a = parse(&[
            "--port",
            "5000",
            "--path",
            "no/dev=10.0.0.2",
            "--path",
            "v6=fd00::1",
            "--signal",
            "[fd00::1]:8080",
            "--backup",
            "fd00::1",
        ])
        .unwrap();
        a.check().unwrap();
        let e = run(a).unwrap_err().to_string();
        assert!(e.contains("invalid TUN device name"), "{e}");
    }
}
