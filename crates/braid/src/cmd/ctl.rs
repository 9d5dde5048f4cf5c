//! `braid endpoint`, `braid limits`, `braid monitor`, `braid stat`, `braid counters`: the
//! control-plane commands, talking to a running instance over its `--ctl` socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::ctl::{parse_endpoint_args, parse_limits_args, CtlClient, Request, Response};

/// The default control socket of `braid listen` / `braid connect --ctl` (used when `--ctl`
/// is not given).
pub const DEFAULT_CTL: &str = "/run/braid.sock";

/// Where the instance listens.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The instance's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CTL)]
    pub ctl: PathBuf,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `braid endpoint add|delete|show|flush|change ...` (the syntax of `ip mptcp endpoint`).
#[derive(Debug, Args)]
pub struct EndpointArgs {
    #[command(flatten)]
    pub ctl: CtlArgs,
    /// add ADDR [dev DEV] [id N] [port P] [signal] [subflow] [backup] [fullmesh] |
    /// delete id N | show | flush | change id N backup|nobackup|fullmesh|nofullmesh
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
    pub words: Vec<String>,
}

/// `braid limits set [subflows N] [add_addr_accepted N] | show`.
#[derive(Debug, Args)]
pub struct LimitsArgs {
    #[command(flatten)]
    pub ctl: CtlArgs,
    /// set [subflows N] [add_addr_accepted N] | show
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Takes `--ctl PATH` / `--ctl=PATH` and `--json` out of the words (they may follow the
/// `ip mptcp`-style arguments).
fn take_options(words: &[String], ctl: &mut CtlArgs) -> anyhow::Result<Vec<String>> {
    let mut rest = Vec::with_capacity(words.len());
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--json" {
            ctl.json = true;
        } else if w == "--ctl" {
            let p = it
                .next()
                .ok_or_else(|| anyhow::anyhow!("--ctl needs a socket path"))?;
            ctl.ctl = PathBuf::from(p);
        } else if let Some(p) = w.strip_prefix("--ctl=") {
            ctl.ctl = PathBuf::from(p);
        } else {
            rest.push(w.clone());
        }
    }
    Ok(rest)
}

fn ask(ctl: &CtlArgs, req: &Request) -> anyhow::Result<Response> {
    let mut c = CtlClient::connect(&ctl.ctl)?;
    let r = c.request(req)?;
    if !r.ok {
        anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused"));
    }
    Ok(r)
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// `braid endpoint ...`.
pub fn endpoint(mut a: EndpointArgs) -> anyhow::Result<ExitCode> {
    let words = take_options(&a.words, &mut a.ctl)?;
    let req = parse_endpoint_args(&words).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = ask(&a.ctl, &req)?;
    if a.ctl.json {
        print_json(&r)?;
    } else if let Some(eps) = &r.endpoints {
        for e in eps {
            println!("{e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `braid limits ...`.
pub fn limits(mut a: LimitsArgs) -> anyhow::Result<ExitCode> {
    let words = take_options(&a.words, &mut a.ctl)?;
    let req = parse_limits_args(&words).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = ask(&a.ctl, &req)?;
    if a.ctl.json {
        print_json(&r)?;
    } else if let Some(l) = r.limits {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `braid monitor`: events until the instance goes away (or the user interrupts).
pub fn monitor(a: CtlArgs) -> anyhow::Result<ExitCode> {
    let mut c = CtlClient::connect(&a.ctl)?;
    let r = c.request(&Request::Monitor)?;
    if !r.ok {
        anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused"));
    }
    loop {
        let ev = match c.next_event() {
            Ok(ev) => ev,
            // The instance ended: the monitor ends with it, cleanly.
            Err(_) => return Ok(ExitCode::SUCCESS),
        };
        if a.json {
            print_json(&ev)?;
        } else {
            println!("{}", ev.to_line());
        }
    }
}

/// `braid stat`: connections and their subflows, like `ss -M`.
pub fn stat(a: CtlArgs) -> anyhow::Result<ExitCode> {
    let r = ask(&a, &Request::Stat)?;
    let conns = r.connections.unwrap_or_default();
    if a.json {
        print_json(&serde_json::json!({ "connections": conns }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in &conns {
        let token = c
            .token
            .map(|t| format!(" token {t:08x}"))
            .unwrap_or_default();
        println!(
            "{} {} -> {}{}{} sent {} acked {} received {}",
            c.state,
            c.local,
            c.remote,
            if c.mptcp { " mptcp" } else { " tcp" },
            token,
            c.bytes_sent,
            c.bytes_acked,
            c.bytes_received
        );
        for s in &c.subflows {
            let rtt = s
                .rtt_ms
                .map(|r| format!(" rtt {r:.1}ms"))
                .unwrap_or_default();
            println!(
                "    {} {} -> {} locid {} remid {}{}{}{} cwnd {} sent {} acked {} received {} retrans {}",
                s.state,
                s.local,
                s.remote,
                s.local_id,
                s.remote_id,
                if s.backup { " backup" } else { "" },
                if s.stale { " stale" } else { "" },
                rtt,
                s.cwnd,
                s.bytes_sent,
                s.bytes_acked,
                s.bytes_received,
                s.retransmits
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `braid counters`: MIB counters, like `nstat -az` (names without the `MPTcpExt` prefix in
/// JSON, with it in text).
pub fn counters(a: CtlArgs) -> anyhow::Result<ExitCode> {
    let r = ask(&a, &Request::Counters)?;
    let counters = r.counters.unwrap_or_default();
    if a.json {
        print_json(&counters)?;
    } else {
        for (name, v) in &counters {
            println!("MPTcpExt{name:<28} {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
