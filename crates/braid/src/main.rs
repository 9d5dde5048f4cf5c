//! The `braid` command-line tool: see `braid --help` and the README.

use std::process::ExitCode;

use braid::cmd;
use clap::{Parser, Subcommand};

/// braid: Multipath TCP (RFC 8684) in userspace.
#[derive(Debug, Parser)]
#[command(name = "braid", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a client and a server in-process over simulated paths.
    Sim(cmd::sim::SimArgs),
    /// Connect to a server over TUN devices and transfer data.
    Connect(cmd::connect::ConnectArgs),
    /// Accept connections over TUN devices.
    Listen(cmd::listen::ListenArgs),
    /// Path-manager endpoints of a running instance (the syntax of `ip mptcp endpoint`).
    Endpoint(cmd::ctl::EndpointArgs),
    /// Path-manager limits of a running instance (`ip mptcp limits`).
    Limits(cmd::ctl::LimitsArgs),
    /// Path-management events of a running instance as they happen (`ip mptcp monitor`).
    Monitor(cmd::ctl::CtlArgs),
    /// Connections and subflows of a running instance (`ss -M`).
    Stat(cmd::ctl::CtlArgs),
    /// MIB counters of a running instance under the kernel's MPTcpExt names (`nstat`).
    Counters(cmd::ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(a) => cmd::sim::run(a),
        Command::Connect(a) => cmd::connect::run(a),
        Command::Listen(a) => cmd::listen::run(a),
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
