//! The `braid` command-line tool: see `braid --help` and the README.
//!
//! Exit status: 0 on success (and for `--help` / `--version`); 1 when the command ran and
//! failed (one line `braid: ...` on stderr says why); 2 for a usage error: the command line
//! itself is wrong (unknown option, missing or malformed value, options that do not go
//! together), said in one line `braid: ...` before anything runs; 130 when interrupted.

use std::process::ExitCode;

use braid::cmd;
use clap::{CommandFactory, Parser, Subcommand};

/// braid: Multipath TCP (RFC 8684) in userspace.
#[derive(Debug, Parser)]
#[command(name = "braid", version, about, long_about = None, after_help = cmd::help::BRAID)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a client and a server in-process over simulated paths.
    #[command(after_help = cmd::help::SIM)]
    Sim(cmd::sim::SimArgs),
    /// Connect to a server over TUN devices and transfer data.
    #[command(after_help = cmd::help::CONNECT)]
    Connect(cmd::connect::ConnectArgs),
    /// Accept connections over TUN devices.
    #[command(after_help = cmd::help::LISTEN)]
    Listen(cmd::listen::ListenArgs),
    /// Carry TCP over MPTCP: a local proxy client and a far proxy server (SOCKS5 or a
    /// fixed upstream).
    #[command(after_help = cmd::help::PROXY)]
    Proxy(cmd::proxy::ProxyArgs),
    /// Path-manager endpoints of a running instance (the syntax of `ip mptcp endpoint`).
    #[command(after_help = cmd::help::ENDPOINT)]
    Endpoint(cmd::ctl::EndpointArgs),
    /// Path-manager limits of a running instance (`ip mptcp limits`).
    #[command(after_help = cmd::help::LIMITS)]
    Limits(cmd::ctl::LimitsArgs),
    /// Path-management events of a running instance as they happen (`ip mptcp monitor`).
    #[command(after_help = cmd::help::MONITOR)]
    Monitor(cmd::ctl::CtlArgs),
    /// Connections and subflows of a running instance (`ss -M`).
    #[command(after_help = cmd::help::STAT)]
    Stat(cmd::ctl::CtlArgs),
    /// MIB counters of a running instance under the kernel's MPTcpExt names (`nstat`).
    #[command(after_help = cmd::help::COUNTERS)]
    Counters(cmd::ctl::CtlArgs),
}

impl Command {
    /// Checks what can be checked in the arguments before anything runs (exit status 2).
    fn check(&self) -> anyhow::Result<()> {
        match self {
            Command::Sim(a) => a.check(),
            Command::Connect(a) => a.check(),
            Command::Listen(a) => a.check(),
            Command::Proxy(a) => a.check(),
            Command::Endpoint(a) => a.check(),
            Command::Limits(a) => a.check(),
            Command::Monitor(_) | Command::Stat(_) | Command::Counters(_) => Ok(()),
        }
    }
}

/// The exit status of a usage error (clap's).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args().collect();
            return match cmd::usage::one_line(&e, &Cli::command(), &args) {
                Some(line) => {
                    eprintln!("braid: {line}");
                    ExitCode::from(USAGE)
                }
                // Help, version: printed as clap prints them.
                None => {
                    let _ = e.print();
                    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(USAGE))
                }
            };
        }
    };
    if let Err(e) = cli.command.check() {
        eprintln!("braid: {e:#}");
        return ExitCode::from(USAGE);
    }
    let result = match cli.command {
        Command::Sim(a) => cmd::sim::run(a),
        Command::Connect(a) => cmd::connect::run(a),
        Command::Listen(a) => cmd::listen::run(a),
        Command::Proxy(a) => cmd::proxy::run(a),
        Command::Endpoint(a) => cmd::ctl::endpoint(a),
        Command::Limits(a) => cmd::ctl::limits(a),
        Command::Monitor(a) => cmd::ctl::monitor(a),
        Command::Stat(a) => cmd::ctl::stat(a),
        Command::Counters(a) => cmd::ctl::counters(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("braid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
