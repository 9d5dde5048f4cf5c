//! `braid proxy client|server`: the command line of [`crate::proxy`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};

use super::connect::{plan, resolve, ConnectPlan};
use super::{endpoint_builder, parse_addrs, parse_bytes, parse_paths, PathArg};
use crate::proxy::{self, relay::RELAY_CHUNK, socks5::Auth, Far, ProxyOptions};

/// `braid proxy client` or `braid proxy server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    #[command(subcommand)]
    pub role: ProxyRole,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ProxyRole {
    /// Accept local TCP connections and carry each one over MPTCP to a far proxy.
    #[command(after_help = super::help::PROXY_CLIENT)]
    Client(ClientArgs),
    /// Accept MPTCP connections and forward them to an upstream TCP service or serve SOCKS5.
    #[command(after_help = super::help::PROXY_SERVER)]
    Server(ServerArgs),
}

/// What both roles take besides their own options.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// A TUN device and braid's own address behind it (attach if the device exists, create
    /// it if not). Each path has its own device and its own address.
    #[arg(long = "path", value_name = "DEV=ADDR", required = true, value_parser = super::path_value)]
    pub paths: Vec<String>,
    /// Plain TCP instead of MPTCP between the proxies.
    #[arg(long)]
    pub tcp: bool,
    /// Mark the subflows from this address as backup (the MP_JOIN backup bit).
    #[arg(long = "backup", value_name = "ADDR", value_parser = super::addr_value)]
    pub backups: Vec<String>,
    #[command(flatten)]
    pub pm: super::PmArgs,
    #[command(flatten)]
    pub sched: super::tune::SchedArgs,
    /// Send and receive buffer of each MPTCP connection (e.g. 256K, 4M; default 1M): with
    /// --max-connections, it bounds the proxy's memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub buffer: Option<u64>,
    /// Connections at once; further ones wait in the listening socket's backlog.
    #[arg(long = "max-connections", value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Reset a connection after nothing moved either way for S seconds (default: never).
    #[arg(long = "idle-timeout", value_name = "S")]
    pub idle_timeout: Option<String>,
    /// Give up opening the far connection after S seconds (default 10).
    #[arg(long = "connect-timeout", value_name = "S", value_parser = super::seconds_value)]
    pub connect_timeout: Option<String>,
    /// One JSON object per connection event (open, close, failed) on standard output.
    #[arg(long)]
    pub json: bool,
}

/// `braid proxy client`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Where local programs connect: ADDR:PORT of a kernel TCP socket (e.g. 127.0.0.1:1080,
    /// [::1]:1080).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: String,
    /// The far proxy, HOST:PORT (a braid proxy server or any MPTCP server).
    #[arg(long, value_name = "HOST:PORT", value_parser = super::parse_host_port)]
    pub remote: String,
    /// Open an extra subflow (MP_JOIN) from this address of a --path, once MPTCP is up
    /// (without it: one subflow per further --path).
    #[arg(long = "subflow", value_name = "ADDR", value_parser = super::addr_value)]
    pub subflows: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `braid proxy server`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("far").required(true).args(["upstream", "socks5"])))]
pub struct ServerArgs {
    /// The port to accept MPTCP connections on (at every --path address).
    #[arg(long, value_parser = super::port_value)]
    pub port: u16,
    /// Forward every connection to this TCP service, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = super::parse_host_port)]
    pub upstream: Option<String>,
    /// Serve SOCKS5 (RFC 1928: CONNECT to IPv4, IPv6 or a name).
    #[arg(long)]
    pub socks5: bool,
    /// SOCKS5 users, one `user:password` per line: only they may connect (RFC 1929);
    /// without it, no authentication.
    #[arg(long = "socks5-users", value_name = "FILE")]
    pub socks5_users: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Each connection's send and receive buffer unless --buffer says otherwise: a quarter of
/// the library's default, so that hundreds of connections stay within a few GiB at worst
/// (1 MiB keeps about 80 Mbit/s per connection over a 100 ms path).
const DEFAULT_BUFFER: u64 = 1 << 20;

/// `ADDR:PORT` of `--listen`: an IP address and a port.
fn listen_addr(s: &str) -> anyhow::Result<SocketAddr> {
    match super::parse_addr_port("--listen", s).map_err(|e| anyhow!("{e}"))? {
        (ip, Some(port)) => Ok(SocketAddr::new(ip, port)),
        (ip, None) => bail!("bad --listen {s:?}: no port; write {}", with_port(ip)),
    }
}

fn with_port(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:PORT"),
        std::net::IpAddr::V6(a) => format!("[{a}]:PORT"),
    }
}

/// What the options of both roles give.
struct Common {
    paths: Vec<PathArg>,
    /// `--backup` addresses (checked against the paths by the role that uses them).
    backups: Vec<std::net::IpAddr>,
    config: braid_proto::EndpointConfig,
    opts: ProxyOptions,
}

impl CommonArgs {
    fn parse(&self) -> anyhow::Result<Common> {
        let paths = parse_paths(&self.paths)?;
        let backups = parse_addrs("--backup", &self.backups)?;
        if self.tcp {
            for (flag, given) in [
                ("--signal", !self.pm.signals.is_empty()),
                ("--backup", !backups.is_empty()),
            ] {
                if given {
                    bail!("{flag} needs MPTCP: leave out --tcp");
                }
            }
        }
        let mut config = super::pm_config(&self.pm, &paths)?;
        self.sched.apply(&mut config, self.tcp)?;
        let b = self.buffer.unwrap_or(DEFAULT_BUFFER);
        let b = usize::try_from(b)
            .ok()
            .filter(|b| (16 << 10..=1 << 30).contains(b))
            .ok_or_else(|| anyhow!("bad --buffer {b}: give 16K to 1G"))?;
        config.tcp.send_buffer = b;
        config.tcp.recv_buffer = b;
        let idle = self
            .idle_timeout
            .as_deref()
            .map(|s| super::parse_seconds("--idle-timeout", s))
            .transpose()?;
        let connect_timeout = self
            .connect_timeout
            .as_deref()
            .map(|s| super::parse_seconds("--connect-timeout", s))
            .transpose()?
            .unwrap_or(Duration::from_secs(10));
        Ok(Common {
            paths,
            backups,
            config,
            opts: ProxyOptions {
                idle,
                max_connections: self.max_connections as usize,
                connect_timeout,
                json: self.json,
            },
        })
    }
}

/// The most memory the connections take: each connection holds a send and a receive
/// buffer at the data level and one of each in every subflow's TCB (the initial subflow
/// and up to the path manager's subflow limit of joined ones), and the relay's two
/// chunks; times --max-connections.
fn memory_bound(config: &braid_proto::EndpointConfig, max: usize) -> u64 {
    let subflows = 1 + usize::from(config.pm_table.limits().subflows);
    let buffers = config.tcp.send_buffer + config.tcp.recv_buffer;
    let per = (1 + subflows) * buffers + 2 * RELAY_CHUNK;
    per as u64 * max as u64
}

impl ProxyArgs {
    /// Checks the arguments before anything runs.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.role {
            ProxyRole::Client(a) => {
                listen_addr(&a.listen)?;
                let c = a.common.parse()?;
                let subflows = parse_addrs("--subflow", &a.subflows)?;
                if let Ok(remote) = a.remote.parse::<SocketAddr>() {
                    plan(
                        &a.remote,
                        &[remote],
                        &c.paths,
                        &subflows,
                        &c.backups,
                        !a.common.tcp,
                    )?;
                }
                Ok(())
            }
            ProxyRole::Server(a) => server_common(a).map(|_| ()),
        }
    }
}

/// The server's options, checked: its `--backup` addresses become `backup` endpoints, as
/// `braid listen` makes them.
fn server_common(a: &ServerArgs) -> anyhow::Result<Common> {
    let mut c = a.common.parse()?;
    if a.socks5_users.is_some() && !a.socks5 {
        bail!("--socks5-users needs --socks5");
    }
    if let Some(u) = &a.upstream {
        super::parse_host_port(u).map_err(|e| anyhow!("--upstream: {e}"))?;
    }
    super::backup_endpoints(&mut c.config, &c.paths, &c.backups)?;
    Ok(c)
}

/// Run `braid proxy client|server`.
pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    match args.role {
        ProxyRole::Client(a) => run_client(a),
        ProxyRole::Server(a) => run_server(a),
    }
}

/// A current-thread runtime with the process's signals, as `connect` / `listen` run.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the runtime: {e}"))
}

fn announce(role: &str, c: &Common) {
    eprintln!(
        "braid: proxy {role}: at most {} connections, memory bound {} MiB ({} KiB per \
         connection, see docs/proxy.md)",
        c.opts.max_connections,
        memory_bound(&c.config, c.opts.max_connections) >> 20,
        memory_bound(&c.config, 1) >> 10,
    );
}

fn run_client(a: ClientArgs) -> anyhow::Result<ExitCode> {
    let c = a.common.parse()?;
    let listen = listen_addr(&a.listen)?;
    let subflows = parse_addrs("--subflow", &a.subflows)?;
    let resolved = resolve(&a.remote)?;
    let ConnectPlan {
        remote,
        joins,
        notes,
    } = plan(
        &a.remote,
        &resolved,
        &c.paths,
        &subflows,
        &c.backups,
        !a.common.tcp,
    )?;
    let ctl = super::bind_ctl(&a.common.pm)?;
    for n in notes {
        eprintln!("braid: {n}");
    }
    runtime()?.block_on(async move {
        let interrupts =
            crate::app::process_interrupts().map_err(|e| anyhow!("cannot handle signals: {e}"))?;
        // The local socket first: a port in use stops the proxy before any device opens.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;
        let builder = endpoint_builder(c.config.clone(), &c.paths, !a.common.tcp, ctl);
        let ep = builder.build().map_err(|e| anyhow!("{e}"))?;
        announce("client", &c);
        eprintln!("braid: proxy client listening on {listen}, to {remote}");
        proxy::run_client(&ep, listener, remote, joins, c.opts, interrupts).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn run_server(a: ServerArgs) -> anyhow::Result<ExitCode> {
    let c = server_common(&a)?;
    let far = match (&a.upstream, a.socks5) {
        (Some(u), _) => {
            // Resolved now too: a name that does not resolve is a mistake to hear at once.
            u.to_socket_addrs()
                .map_err(|e| anyhow!("bad --upstream {u:?}: {e}"))?;
            Far::Upstream(u.clone())
        }
        (None, true) => match &a.socks5_users {
            Some(path) => Far::Socks5(Auth::from_file(path).map_err(|e| anyhow!("{e}"))?),
            None => Far::Socks5(Auth::Open),
        },
        (None, false) => bail!("give --upstream HOST:PORT or --socks5"),
    };
    let ctl = super::bind_ctl(&a.common.pm)?;
    runtime()?.block_on(async move {
        let interrupts =
            crate::app::process_interrupts().map_err(|e| anyhow!("cannot handle signals: {e}"))?;
        let builder = endpoint_builder(c.config.clone(), &c.paths, !a.common.tcp, ctl);
        let ep = builder.build().map_err(|e| anyhow!("{e}"))?;
        announce("server", &c);
        let what = match &far {
            Far::Upstream(u) => format!("forwarding to {u}"),
            Far::Socks5(Auth::Open) => "SOCKS5, no authentication".into(),
            Far::Socks5(Auth::Users(u)) => format!("SOCKS5, {} users", u.len()),
        };
        let listening = || {
            for p in &c.paths {
                let proto = if a.common.tcp { "tcp" } else { "mptcp" };
                eprintln!(
                    "braid: proxy server listening on {} via {} ({proto}), {what}",
                    SocketAddr::new(p.addr, a.port),
                    p.dev
                );
            }
        };
        proxy::run_server(&ep, a.port, far, c.opts, interrupts, listening).await?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    /// What braid says to `proxy v...` before anything runs (clap's refusal or the check's),
    /// or "ok".
    fn verdict(v: &[&str]) -> String {
        use clap::CommandFactory;
        let argv: Vec<String> = std::iter::once("proxy")
            .chain(v.iter().copied())
            .map(String::from)
            .collect();
        match Cli::try_parse_from(&argv) {
            Err(e) => crate::cmd::usage::one_line(&e, &Cli::command(), &argv).expect("an error"),
            Ok(c) => match c.args.check() {
                Err(e) => e.to_string(),
                Ok(()) => "ok".into(),
            },
        }
    }

    #[test]
    fn both_roles_parse_and_mistakes_are_one_line() {
        let client = [
            "client",
            "--listen",
            "127.0.0.1:1080",
            "--remote",
            "10.3.0.2:1080",
            "--path",
            "bt0=10.1.0.2",
            "--path",
            "bt1=10.2.0.2",
        ];
        assert_eq!(verdict(&client), "ok");
        let server = ["server", "--port", "1080", "--path", "bt0=10.3.0.2"];
        let with = |base: &[&str], extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            verdict(&v)
        };
        assert_eq!(with(&server, &["--socks5"]), "ok");
        assert_eq!(with(&server, &["--upstream", "127.0.0.1:80"]), "ok");
        for (base, extra, want) in [
            (&server[..], &[][..], "the following required arguments"),
            (
                &server,
                &["--socks5", "--upstream", "127.0.0.1:80"],
                "cannot be used with",
            ),
            (
                &server,
                &["--socks5-users", "u.txt", "--upstream", "1.2.3.4:5"],
                "--socks5-users needs --socks5",
            ),
            (&server, &["--upstream", "fd00::1:80"], "[fd00::1]:80"),
            (
                &server,
                &["--socks5", "--buffer", "1K"],
                "bad --buffer 1024: give 16K to 1G",
            ),
            (
                &server,
                &["--socks5", "--tcp", "--scheduler", "minrtt"],
                "--scheduler minrtt needs MPTCP",
            ),
            (
                &server,
                &["--socks5", "--idle-timeout", "0"],
                "bad --idle-timeout \"0\"",
            ),
            (
                &server,
                &["--socks5", "--max-connections", "0"],
                "0 is not in 1..=1000000",
            ),
            (
                &client,
                &["--subflow", "10.9.9.9"],
                "--subflow 10.9.9.9: not the address",
            ),
            (
                &client,
                &["--backup", "10.1.0.2"],
                "--backup 10.1.0.2: the first --path",
            ),
        ] {
            let got = with(base, extra);
            assert!(
                got.contains(want) && !got.contains('\n'),
                "{extra:?}: {got}"
            );
        }
        let mut bad = client.to_vec();
        bad[2] = "127.0.0.1";
        assert_eq!(
            verdict(&bad),
            "bad --listen \"127.0.0.1\": no port; write 127.0.0.1:PORT"
        );
        bad[2] = "[::1]";
        assert_eq!(
            verdict(&bad),
            "bad --listen \"[::1]\": no port; write [::1]:PORT"
        );
    }

    /// `--backup ADDR` of a server makes a `backup` endpoint, as `braid listen` does, so
    /// that joins on that address are asked to be backup subflows.
    #[test]
    fn a_server_backup_address_becomes_a_backup_endpoint() {
        let argv = [
            "proxy",
            "server",
            "--port",
            "1080",
            "--path",
            "bt0=10.3.0.2",
            "--path",
            "bt1=10.4.0.2",
            "--backup",
            "10.4.0.2",
            "--socks5",
        ];
        let ProxyRole::Server(a) = Cli::try_parse_from(argv).expect("parses").args.role else {
            panic!("a server");
        };
        let c = server_common(&a).expect("valid");
        let eps = c.config.pm_table.endpoints();
        assert_eq!(eps.len(), 1, "{eps:?}");
        assert_eq!(eps[0].addr, "10.4.0.2".parse::<std::net::IpAddr>().unwrap());
        assert!(eps[0].flags.backup(), "{eps:?}");
    }

    #[test]
    fn the_memory_bound_counts_buffers_and_relay_chunks() {
        let mut c = braid_proto::EndpointConfig::default();
        c.tcp.send_buffer = 1 << 20;
        c.tcp.recv_buffer = 1 << 20;
        // The kernel's default limit: 2 joined subflows besides the initial one.
        assert_eq!(c.pm_table.limits().subflows, 2);
        assert_eq!(memory_bound(&c, 1), 4 * (2 << 20) + 2 * RELAY_CHUNK as u64);
        assert_eq!(memory_bound(&c, 256), 256 * ((8 << 20) + (128 << 10)));
    }
}
