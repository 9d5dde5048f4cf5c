//! `braid connect HOST:PORT --path DEV=ADDR ... [--send N | --in FILE] [--out FILE] [--json]`

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};

use super::{execute, open_output, open_paths, parse_bytes, parse_paths, refuse_multipath};
use crate::runtime::{Output, Role, Source};

/// Open a connection over TUN devices and send / receive.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The peer, HOST:PORT (an IP address, or a name resolved by the system).
    #[arg(value_name = "HOST:PORT")]
    pub remote: String,
    /// A TUN device and braid's own address behind it (attach if the device exists, create it
    /// if not). The first carries the connection.
    #[arg(long = "path", value_name = "DEV=ADDR", required = true)]
    pub paths: Vec<String>,
    /// Plain TCP instead of MPTCP.
    #[arg(long)]
    pub tcp: bool,
    /// Open an extra subflow from this local address (not supported yet: refused).
    #[arg(long = "subflow", value_name = "ADDR")]
    pub subflows: Vec<String>,
    /// Mark subflows on this address as backup (not supported yet: refused).
    #[arg(long = "backup", value_name = "ADDR")]
    pub backups: Vec<String>,
    /// Path-manager limits, subflows=N,add_addr_accepted=M (not supported yet: refused).
    #[arg(long, value_name = "LIMITS")]
    pub limits: Option<String>,
    /// Send this many bytes of the reproducible pattern stream, then close (e.g. 16M).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, conflicts_with = "input")]
    pub send: Option<u64>,
    /// Send this file (`-`: standard input), then close.
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write what is received to this file (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print a JSON report on exit.
    #[arg(long)]
    pub json: bool,
}

/// `HOST:PORT` as a socket address of the first path's family.
fn resolve(remote: &str, want_v4: bool) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = remote.parse::<SocketAddr>() {
        return Ok(a);
    }
    let addrs = remote
        .to_socket_addrs()
        .map_err(|e| anyhow!("bad HOST:PORT {remote:?}: {e}"))?;
    let all: Vec<SocketAddr> = addrs.collect();
    all.iter()
        .find(|a| a.is_ipv4() == want_v4)
        .or(all.first())
        .copied()
        .ok_or_else(|| anyhow!("bad HOST:PORT {remote:?}: no address"))
}

/// Run `braid connect`.
pub fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    refuse_multipath(&[
        ("--subflow", !args.subflows.is_empty()),
        ("--backup", !args.backups.is_empty()),
        ("--limits", args.limits.is_some()),
    ])?;
    let path_args = parse_paths(&args.paths)?;
    if !args.tcp && path_args.len() > 1 {
        // The contract opens one subflow per path here.
        bail!(
            "several --path need additional subflows, which braid does not open yet; \
             give one --path (or --tcp, which uses the first)"
        );
    }
    let want_v4 = path_args.first().is_none_or(|p| p.addr.is_ipv4());
    let remote = resolve(&args.remote, want_v4)?;
    if remote.port() == 0 {
        bail!("bad HOST:PORT {:?}: port 0", args.remote);
    }
    let source = match (&args.send, &args.input) {
        (Some(n), _) => Source::Pattern(*n),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let fd = std::io::stdin()
                .lock()
                .as_fd_owned()
                .map_err(|e| anyhow!("cannot read standard input: {e}"))?;
            Source::Reader(std::fs::File::from(fd))
        }
        (None, Some(path)) => Source::Reader(
            std::fs::File::open(path)
                .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?,
        ),
        (None, None) => Source::Nothing,
    };
    let output = match &args.out {
        Some(path) => Output::Writer(open_output(path)?),
        None => Output::Discard,
    };
    let paths = open_paths(&path_args)?;
    let engine = crate::runtime::tcp_engine().map_err(|e| anyhow::anyhow!("{e}"))?;
    execute(
        engine,
        paths,
        Role::Client {
            remote,
            source,
            output,
        },
        !args.tcp,
        args.json,
    )
}

/// A duplicate of a descriptor as an owned one.
trait AsFdOwned {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConnectArgs,
    }

    fn parse(v: &[&str]) -> Result<ConnectArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("connect").chain(v.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_parse() {
        let a = parse(&[
            "10.0.0.1:5000",
            "--path",
            "braid0=10.0.0.2",
            "--path",
            "braid1=10.1.0.2",
            "--tcp",
            "--send",
            "16M",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.paths.len(), 2);
        assert_eq!(a.send, Some(16 << 20));
        assert!(a.tcp && a.json);
        assert!(parse(&["10.0.0.1:5000"]).is_err(), "--path is required");
        assert!(parse(&[
            "10.0.0.1:5000",
            "--path",
            "b=10.0.0.2",
            "--send",
            "1",
            "--in",
            "f"
        ])
        .is_err());
    }

    #[test]
    fn multipath_options_are_refused_in_one_line() {
        for extra in [
            &["--subflow", "10.1.0.2"][..],
            &["--backup", "10.0.0.2"],
            &["--limits", "subflows=2"],
            &["--path", "braid1=10.1.0.2"],
        ] {
            let mut v = vec!["10.0.0.1:5000", "--path", "braid0=10.0.0.2"];
            v.extend_from_slice(extra);
            let e = run(parse(&v).unwrap()).unwrap_err().to_string();
            assert!(
                e.contains("additional subflows") && !e.contains('\n'),
                "{extra:?}: {e}"
            );
        }
    }

    #[test]
    fn bad_path_is_one_line() {
        let a = parse(&["10.0.0.1:5000", "--path", "braid0", "--tcp"]).unwrap();
        let e = run(a).unwrap_err().to_string();
        assert!(e.starts_with("bad --path") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_remote_is_one_line() {
        let a = parse(&["nonsense", "--path", "braid0=10.0.0.2", "--tcp"]).unwrap();
        let e = run(a).unwrap_err().to_string();
        assert!(e.starts_with("bad HOST:PORT") && !e.contains('\n'), "{e}");
    }
}
