//! The `braid` command-line tool. (TEMPORARY wiring on branch tun for testing; the lead owns main.rs.)

use std::process::ExitCode;

use braid::cmd;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "braid")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    Connect(cmd::connect::ConnectArgs),
    Listen(cmd::listen::ListenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Commands::Connect(a) => cmd::connect::run(a),
        Commands::Listen(a) => cmd::listen::run(a),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("braid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
