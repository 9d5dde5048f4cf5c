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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(a) => cmd::sim::run(a),
        Command::Connect(a) => cmd::connect::run(a),
        Command::Listen(a) => cmd::listen::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("braid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
