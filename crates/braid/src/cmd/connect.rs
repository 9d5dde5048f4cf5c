//! `braid connect HOST:PORT --path DEV=ADDR ... [--send N | --in FILE] [--out FILE] [--json]`

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};

use super::{
    endpoint_builder, execute, open_output, parse_addrs, parse_bytes, parse_paths, PathArg, Role,
};
use crate::app::{JoinSpec, Output, Source};

/// Open a connection over TUN devices and send / receive.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The peer, HOST:PORT: an IPv4 address (10.0.0.1:5201), an IPv6 one in brackets
    /// ([fd00::1]:5201), or a name resolved by the system.
    #[arg(value_name = "HOST:PORT", value_parser = super::parse_host_port)]
    pub remote: String,
    /// A TUN device and braid's own address behind it (attach if the device exists, create it
    /// if not). The first carries the connection; with MPTCP and no --subflow, each further
    /// path opens one more subflow (a path of a family the peer has no address in opens none
    /// at first, and joins the addresses of its family the peer announces).
    /// Each path has its own device and its own address.
    #[arg(long = "path", value_name = "DEV=ADDR", required = true, value_parser = super::path_value)]
    pub paths: Vec<String>,
    /// Plain TCP instead of MPTCP.
    #[arg(long)]
    pub tcp: bool,
    /// Open an extra subflow (MP_JOIN) from this address of a --path, once MPTCP is up.
    #[arg(long = "subflow", value_name = "ADDR", value_parser = super::addr_value)]
    pub subflows: Vec<String>,
    /// Mark the subflows from this address as backup (the MP_JOIN backup bit).
    #[arg(long = "backup", value_name = "ADDR", value_parser = super::addr_value)]
    pub backups: Vec<String>,
    #[command(flatten)]
    pub pm: super::PmArgs,
    /// Send this many bytes of the reproducible pattern stream, then close (e.g. 16M).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, conflicts_with = "input")]
    pub send: Option<u64>,
    /// Send this file (`-`: standard input), then close.
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write what is received to this file (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Give up connecting after S seconds (e.g. 5 or 0.5): exit non-zero, saying so. By
    /// default braid tries as long as the SYN is retransmitted (about two minutes).
    #[arg(long = "connect-timeout", value_name = "S", value_parser = super::seconds_value)]
    pub connect_timeout: Option<String>,
    /// Send the pattern stream for S seconds (e.g. 10), then close.
    #[arg(long, value_name = "S", conflicts_with_all = ["send", "input"])]
    pub time: Option<String>,
    #[command(flatten)]
    pub tune: super::tune::TuneArgs,
    /// Print a JSON report on exit (instead of the one-line summary).
    #[arg(long)]
    pub json: bool,
}

impl ConnectArgs {
    /// Checks the arguments before anything runs (no name is resolved, no device opened):
    /// each refusal is one line.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(s) = &self.connect_timeout {
            super::parse_seconds("--connect-timeout", s)?;
        }
        super::parse_host_port(&self.remote).map_err(|e| anyhow!("{e}"))?;
        let paths = parse_paths(&self.paths)?;
        if self.tcp && !self.pm.signals.is_empty() {
            bail!("--signal needs MPTCP: leave out --tcp");
        }
        super::pm_config(&self.pm, &paths)?;
        let subflows = parse_addrs("--subflow", &self.subflows)?;
        let backups = parse_addrs("--backup", &self.backups)?;
        // An address needs no resolving: the plan's checks too.
        if let Ok(remote) = self.remote.parse::<SocketAddr>() {
            plan(
                &self.remote,
                &[remote],
                &paths,
                &subflows,
                &backups,
                !self.tcp,
            )?;
        }
        Ok(())
    }
}

/// Every address of `HOST:PORT` (one for an IP address; a name may have several, of both
/// families).
pub(crate) fn resolve(remote: &str) -> anyhow::Result<Vec<SocketAddr>> {
    if let Ok(a) = remote.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let addrs = remote
        .to_socket_addrs()
        .map_err(|e| anyhow!("bad HOST:PORT {remote:?}: {e}"))?;
    let all: Vec<SocketAddr> = addrs.collect();
    if all.is_empty() {
        bail!("bad HOST:PORT {remote:?}: no address");
    }
    Ok(all)
}

/// What `braid connect` opens: the connection's peer, the subflows to join once MPTCP is up,
/// and one-line notes about the paths that open none.
#[derive(Debug)]
pub(crate) struct ConnectPlan {
    pub remote: SocketAddr,
    pub joins: Vec<JoinSpec>,
    pub notes: Vec<String>,
}

/// The connection's peer and the subflows to join, from the resolved addresses of
/// `HOST:PORT` and the arguments. The first path carries the connection, to the peer's
/// first address of its family. Each join goes to that same address, or to the peer's
/// first address in the join's family when that differs (a name with IPv4 and IPv6
/// addresses gives a connection mixing both). A path (or `--subflow`) of a family the
/// peer has no address in opens no subflow now, as the kernel skips a `subflow` endpoint
/// of the other family: it serves the addresses of its family the peer announces.
pub(crate) fn plan(
    remote_arg: &str,
    resolved: &[SocketAddr],
    paths: &[PathArg],
    subflows: &[IpAddr],
    backups: &[IpAddr],
    mptcp: bool,
) -> anyhow::Result<ConnectPlan> {
    let first = paths
        .first()
        .map(|p| p.addr)
        .ok_or_else(|| anyhow!("give at least one --path DEV=ADDR"))?;
    let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let in_family = |ip: IpAddr| {
        resolved
            .iter()
            .find(|a| a.is_ipv4() == ip.is_ipv4())
            .copied()
    };
    let remote = in_family(first).ok_or_else(|| {
        anyhow!(
            "{remote_arg} has no {} address for the first --path ({first})",
            family(first)
        )
    })?;
    if remote.port() == 0 {
        bail!("bad HOST:PORT {remote_arg:?}: port 0");
    }
    // Packets to braid's own address never reach a peer: refused, not tried for minutes.
    if let Some(p) = paths
        .iter()
        .find(|p| resolved.iter().any(|r| r.ip() == p.addr))
    {
        bail!(
            "--path {p}: {} is the address of {remote_arg} too; braid's own address must be \
             another one (the peer is the kernel side of {} or beyond it)",
            p.addr,
            p.dev
        );
    }
    for (flag, addrs) in [("--subflow", subflows), ("--backup", backups)] {
        if let Some(a) = addrs.iter().find(|a| !paths.iter().any(|p| p.addr == **a)) {
            bail!("{flag} {a}: not the address of any --path");
        }
        if !mptcp && !addrs.is_empty() {
            bail!("{flag} needs MPTCP: leave out --tcp");
        }
    }
    if backups.contains(&first) {
        bail!(
            "--backup {first}: the first --path carries the initial subflow, which cannot be a \
             backup; give the address of another --path"
        );
    }
    let mut plan = ConnectPlan {
        remote,
        joins: Vec::new(),
        notes: Vec::new(),
    };
    if !mptcp {
        return Ok(plan);
    }
    // Without --subflow: one subflow per further path.
    let mut locals: Vec<IpAddr> = subflows.to_vec();
    if locals.is_empty() {
        for p in paths.iter().skip(1) {
            if p.addr != first && !locals.contains(&p.addr) {
                locals.push(p.addr);
            }
        }
    }
    for local in locals {
        let to = if local.is_ipv4() == remote.is_ipv4() {
            Some(remote)
        } else {
            in_family(local)
        };
        match to {
            Some(to) => plan.joins.push(JoinSpec {
                local,
                remote: to,
                backup: backups.contains(&local),
            }),
            None => plan.notes.push(format!(
                "no subflow from {local} to {remote} ({remote_arg} has no {} address); it \
                 serves {} addresses the peer announces",
                family(local),
                family(local)
            )),
        }
    }
    Ok(plan)
}

/// Run `braid connect`.
pub fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let connect_timeout = args
        .connect_timeout
        .as_deref()
        .map(|s| super::parse_seconds("--connect-timeout", s))
        .transpose()?;
    let time = args
        .time
        .as_deref()
        .map(|s| super::parse_seconds("--time", s))
        .transpose()?;
    let path_args = parse_paths(&args.paths)?;
    let mut config = super::pm_config(&args.pm, &path_args)?;
    let interval = args.tune.apply(&mut config, args.tcp)?;
    let subflows = parse_addrs("--subflow", &args.subflows)?;
    let backups = parse_addrs("--backup", &args.backups)?;
    let resolved = resolve(&args.remote)?;
    let ConnectPlan {
        remote,
        joins,
        notes,
    } = plan(
        &args.remote,
        &resolved,
        &path_args,
        &subflows,
        &backups,
        !args.tcp,
    )?;
    // Before any file or device is touched: a refused --ctl path leaves everything as it was.
    let ctl = super::bind_ctl(&args.pm)?;
    for n in notes {
        eprintln!("braid: {n}");
    }
    let source = match (time, &args.send, &args.input) {
        (Some(t), _, _) => Source::Timed(t),
        (None, Some(n), _) => Source::Pattern(*n),
        (None, None, Some(path)) if path.as_os_str() == "-" => {
            let fd = std::io::stdin()
                .lock()
                .as_fd_owned()
                .map_err(|e| anyhow!("cannot read standard input: {e}"))?;
            Source::Reader(std::fs::File::from(fd))
        }
        (None, None, Some(path)) => Source::Reader(
            std::fs::File::open(path)
                .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?,
        ),
        (None, None, None) => Source::Nothing,
    };
    let output = match &args.out {
        Some(path) => Output::Writer(open_output(path)?),
        None => Output::Discard,
    };
    let mut builder = endpoint_builder(config, &path_args, !args.tcp, ctl);
    if let Some(n) = args.tune.workers {
        builder = builder.workers(usize::from(n));
    }
    execute(
        builder,
        Role::Client {
            remote,
            source,
            output,
            joins,
        },
        super::Reporting {
            json: args.json,
            interval,
        },
        connect_timeout,
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

    /// What braid says to `connect v...`, in one line: clap's refusal, the check's (both
    /// before anything runs, exit status 2), or run's.
    fn refusal(v: &[&str]) -> String {
        use clap::CommandFactory;
        let argv: Vec<String> = std::iter::once("connect")
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
    fn path_manager_options_are_checked_before_any_device_is_opened() {
        for (extra, want) in [
            (
                &["--limits", "subflows=9"][..],
                "bad --limits \"subflows=9\"",
            ),
            (&["--limits", "add_addr_accepted=x"], "bad --limits"),
            (
                &["--pm", "ndiffports=0"],
                "bad --pm \"ndiffports=0\": ndiffports=N takes N from 1 to 8",
            ),
            (&["--pm", "bogus"], "unknown path manager \"bogus\""),
            (
                &["--signal", "10.9.9.9"],
                "--signal 10.9.9.9: not the address",
            ),
        ] {
            let mut v = vec!["10.0.0.1:5000", "--path", "no/dev=10.0.0.2"];
            v.extend_from_slice(extra);
            let e = refusal(&v);
            assert!(e.starts_with(want) && !e.contains('\n'), "{extra:?}: {e}");
        }
        let ok = parse(&[
            "10.0.0.1:5000",
            "--path",
            "no/dev=10.0.0.2",
            "--limits",
            "subflows=4,add_addr_accepted=1",
            "--pm",
            "fullmesh",
            "--signal",
            "10.0.0.2",
        ])
        .unwrap();
        let cfg = super::super::pm_config(&ok.pm, &paths(&["no/dev=10.0.0.2"])).unwrap();
        assert_eq!(
            cfg.pm_table.limits().to_string(),
            "add_addr_accepted 1 subflows 4"
        );
        assert_eq!(
            cfg.pm_table.endpoints()[0].to_string(),
            "10.0.0.2 id 1 signal dev no/dev"
        );
        assert_eq!(cfg.path_manager.name(), "fullmesh");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn paths(v: &[&str]) -> Vec<PathArg> {
        v.iter().map(|p| p.parse().unwrap()).collect()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_further_path_joins_without_subflow_flags() {
        let p = paths(&["t0=10.0.0.2", "t1=10.1.0.2", "t2=10.2.0.2"]);
        let ConnectPlan { remote, joins, .. } = plan(
            "h",
            &[sock("10.0.0.1:5000")],
            &p,
            &[],
            &[ip("10.2.0.2")],
            true,
        )
        .unwrap();
        assert_eq!(remote, sock("10.0.0.1:5000"));
        assert_eq!(
            joins,
            vec![
                JoinSpec {
                    local: ip("10.1.0.2"),
                    remote,
                    backup: false
                },
                JoinSpec {
                    local: ip("10.2.0.2"),
                    remote,
                    backup: true
                },
            ]
        );
        // Plain TCP: no joins; one path: no joins.
        assert!(plan("h", &[remote], &p, &[], &[], false)
            .unwrap()
            .joins
            .is_empty());
        assert!(plan("h", &[remote], &p[..1], &[], &[], true)
            .unwrap()
            .joins
            .is_empty());
    }

    #[test]
    fn subflow_flags_choose_the_joins_and_families_pick_the_remote() {
        let p = paths(&["t0=10.0.0.2", "t1=fd01::2", "t2=10.2.0.2"]);
        let resolved = [sock("10.0.0.1:5000"), sock("[fd00::1]:5000")];
        let ConnectPlan { remote, joins, .. } =
            plan("h", &resolved, &p, &[ip("fd01::2")], &[], true).unwrap();
        assert_eq!(remote, sock("10.0.0.1:5000"));
        assert_eq!(joins.len(), 1, "only the --subflow address joins");
        assert_eq!(joins[0].local, ip("fd01::2"));
        assert_eq!(
            joins[0].remote,
            sock("[fd00::1]:5000"),
            "IPv6 join to the IPv6 address"
        );
        // The first path's family decides the connection's remote.
        let p6 = paths(&["t1=fd01::2", "t0=10.0.0.2"]);
        let ConnectPlan { remote, joins, .. } = plan("h", &resolved, &p6, &[], &[], true).unwrap();
        assert_eq!(remote, sock("[fd00::1]:5000"));
        assert_eq!(joins[0].remote, sock("10.0.0.1:5000"));
    }

    #[test]
    fn bad_multipath_arguments_are_one_line_errors() {
        let p = paths(&["t0=10.0.0.2", "t1=fd01::2"]);
        let v4 = [sock("10.0.0.1:5000")];
        let err = |subflows: &[IpAddr], backups: &[IpAddr], mptcp: bool| {
            plan("h", &v4, &p, subflows, backups, mptcp)
                .unwrap_err()
                .to_string()
        };
        let cases = [
            (
                err(&[ip("10.9.9.9")], &[], true),
                "--subflow 10.9.9.9: not the address of any --path",
            ),
            (
                err(&[], &[ip("10.9.9.9")], true),
                "--backup 10.9.9.9: not the address of any --path",
            ),
            (
                err(&[], &[ip("10.0.0.2")], true),
                "--backup 10.0.0.2: the first --path",
            ),
            (err(&[ip("fd01::2")], &[], false), "--subflow needs MPTCP"),
        ];
        for (e, want) in cases {
            assert!(e.starts_with(want) && !e.contains('\n'), "{want}: {e}");
        }
        let e = plan("h", &[sock("[fd00::1]:1")], &p, &[], &[], true)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "h has no IPv4 address for the first --path (10.0.0.2)");
        let e = plan("h", &[sock("10.0.0.1:0")], &p, &[], &[], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("port 0"), "{e}");
    }

    /// Issue 11 bug 5: a path (or `--subflow`) of the other family than every address of the
    /// peer is no error: it opens no subflow now (a one-line note says so), the paths of the
    /// peer's family still do, and the engine's path manager uses it for announced addresses
    /// of its family.
    #[test]
    fn a_path_of_a_family_the_peer_lacks_is_skipped_with_a_note() {
        let v4 = [sock("10.1.0.1:5000")];
        let p = paths(&["bt0=10.1.0.2", "bt1=fd00:2::2", "bt2=10.2.0.2"]);
        for subflows in [&[][..], &[ip("fd00:2::2"), ip("10.2.0.2")]] {
            let ConnectPlan {
                remote,
                joins,
                notes,
            } = plan("10.1.0.1:5000", &v4, &p, subflows, &[], true).unwrap();
            assert_eq!(remote, v4[0]);
            assert_eq!(
                joins,
                vec![JoinSpec {
                    local: ip("10.2.0.2"),
                    remote,
                    backup: false
                }],
                "{subflows:?}"
            );
            assert_eq!(
                notes,
                vec![
                    "no subflow from fd00:2::2 to 10.1.0.1:5000 (10.1.0.1:5000 has no IPv6 \
                     address); it serves IPv6 addresses the peer announces"
                ]
            );
        }
        // The bug's own command line: two paths, one per family.
        let plan = plan("10.1.0.1:5000", &v4, &p[..2], &[], &[], true).unwrap();
        assert!(plan.joins.is_empty() && plan.notes.len() == 1, "{plan:?}");
    }

    #[test]
    fn own_address_equal_to_the_peers_is_refused_before_anything_starts() {
        let p = paths(&["braid0=10.0.0.1"]);
        let e = plan(
            "10.0.0.1:5000",
            &[sock("10.0.0.1:5000")],
            &p,
            &[],
            &[],
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--path braid0=10.0.0.1: 10.0.0.1 is the address of 10.0.0.1:5000 too")
                && !e.contains('\n'),
            "{e}"
        );
        // A further path with the peer's address (here an IPv6 one of a name) too.
        let p = paths(&["t0=10.0.0.2", "t1=fd00::1"]);
        let both = [sock("10.0.0.1:5000"), sock("[fd00::1]:5000")];
        let e = plan("h:5000", &both, &p, &[], &[], true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--path t1=fd00::1: fd00::1 is the address of h:5000"),
            "{e}"
        );
        // Through the command, before any device is opened.
        let a = parse(&["10.0.0.1:5000", "--path", "no/dev=10.0.0.1"]).unwrap();
        let e = run(a).unwrap_err().to_string();
        assert!(
            e.starts_with("--path no/dev=10.0.0.1: 10.0.0.1 is the address"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_connect_timeout_is_refused_first() {
        for bad in ["0", "-2", "soon"] {
            let flag = format!("--connect-timeout={bad}");
            let e = refusal(&["10.0.0.1:5000", "--path", "no/dev=10.0.0.2", &flag]);
            assert!(e.starts_with("bad --connect-timeout"), "{bad}: {e}");
        }
        let a = parse(&[
            "10.0.0.1:5000",
            "--path",
            "b=10.0.0.2",
            "--connect-timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(a.connect_timeout.as_deref(), Some("2.5"));
    }

    #[test]
    fn bad_path_is_one_line() {
        let e = refusal(&["10.0.0.1:5000", "--path", "braid0", "--tcp"]);
        assert!(e.starts_with("bad --path") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_remote_is_one_line() {
        let e = refusal(&["nonsense", "--path", "braid0=10.0.0.2", "--tcp"]);
        assert!(e.starts_with("bad HOST:PORT") && !e.contains('\n'), "{e}");
    }

    /// Each refusal is one line saying what is wrong, before a name is resolved or a device
    /// opened.
    #[test]
    fn arguments_are_refused_in_one_line_saying_what_is_wrong() {
        let path = ["--path", "no/dev=10.0.0.2"];
        for (args, want) in [
            (
                &["10.0.0.999:80"][..],
                "bad HOST:PORT \"10.0.0.999:80\": 10.0.0.999 is not a valid IPv4 address",
            ),
            (
                &["fd00::1:80"],
                "bad HOST:PORT \"fd00::1:80\": an IPv6 address with a port is written in \
                 brackets: [fd00::1]:80",
            ),
            (
                &["10.0.0.1:80", "--path", "no/dev=10.1.0.2"],
                "--path no/dev=10.1.0.2 and --path no/dev=10.0.0.2: device no/dev given twice",
            ),
            (
                &["10.0.0.1:80", "--path", "other=10.0.0.2"],
                "--path other=10.0.0.2 and --path no/dev=10.0.0.2: address 10.0.0.2 given \
                 twice",
            ),
            (
                &["10.0.0.1:80", "--path", "b=10.0.0.999"],
                "bad --path \"b=10.0.0.999\": 10.0.0.999 is not a valid IPv4 address",
            ),
            (
                &["10.0.0.1:80", "--subflow", "10.0.0.999"],
                "bad --subflow \"10.0.0.999\": 10.0.0.999 is not a valid IPv4 address",
            ),
            (
                &["10.0.0.1:80", "--backup", "fd00::1:80:1:2:3:4:5:6"],
                "bad --backup \"fd00::1:80:1:2:3:4:5:6\": fd00::1:80:1:2:3:4:5:6 is not a \
                 valid IPv6 address",
            ),
            (
                &["10.0.0.1:80", "--signal", "10.0.0.999"],
                "bad --signal \"10.0.0.999\": 10.0.0.999 is not a valid IPv4 address",
            ),
            (
                &["10.0.0.1:80", "--pm", "ndiffports=abc"],
                "bad --pm \"ndiffports=abc\": ndiffports=N takes N from 1 to 8",
            ),
            (
                &["10.0.0.1:80", "--pm", "ndiffports=9"],
                "bad --pm \"ndiffports=9\": ndiffports=N takes N from 1 to 8",
            ),
            (
                &["10.0.0.1:80", "--tcp", "--signal", "10.0.0.2"],
                "--signal needs MPTCP: leave out --tcp",
            ),
            (
                &["10.0.0.1:80", "--send", "1Q"],
                "bad --send \"1Q\": unknown unit \"Q\"",
            ),
            (
                &["10.0.0.1:80", "--bogus"],
                "unexpected argument '--bogus' found",
            ),
        ] {
            let mut v = args.to_vec();
            v.extend_from_slice(&path);
            let e = refusal(&v);
            assert!(e.starts_with(want) && !e.contains('\n'), "{args:?}: {e}");
        }
    }

    /// The checks of `check` are those of `run`: an argument `check` passes reaches the
    /// devices (here refused by name, before any system call).
    #[test]
    fn check_passes_what_run_accepts() {
        let a = parse(&[
            "10.0.0.1:5000",
            "--path",
            "no/dev=10.0.0.2",
            "--path",
            "no/dev1=10.1.0.2",
            "--subflow",
            "10.1.0.2",
            "--signal",
            "10.1.0.2",
            "--pm",
            "ndiffports=3",
        ])
        .unwrap();
        a.check().unwrap();
        let e = run(a).unwrap_err().to_string();
        assert!(e.contains("invalid TUN device name"), "{e}");
    }
}
