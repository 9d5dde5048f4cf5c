//! `braid endpoint`, `braid limits`, `braid monitor`, `braid stat`, `braid counters`: the
//! control-plane commands, talking to a running instance over its `--ctl` socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::ctl::{parse_endpoint_args, parse_limits_args, CtlClient, Request, Response};

/// The default control socket of `braid listen` / `braid connect --ctl` (used when `--ctl`
/// is not given).
pub const DEFAULT_CTL: &str = "/run/braid.sock";

/// Where the instance listens. Both may come anywhere on the command line, also after the
/// `ip mptcp`-style words of `endpoint` and `limits`.
#[derive(Debug, Clone, Args)]
pub struct CtlArgs {
    /// The instance's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CTL, global = true)]
    pub ctl: PathBuf,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `braid endpoint add|delete|show|flush|change ...` (the syntax of `ip mptcp endpoint`).
#[derive(Debug, Args)]
#[command(subcommand_required = true)]
pub struct EndpointArgs {
    #[command(flatten)]
    pub ctl: CtlArgs,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

/// The verbs of `braid endpoint`, each with the words `ip mptcp endpoint` takes after it.
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint: an address of this instance the path manager uses (`subflow`: open
    /// subflows from it; `signal`: announce it with ADD_ADDR; `backup`: its subflows are
    /// backup; `fullmesh`: a subflow to every peer address). Takes effect on live
    /// connections too.
    #[command(
        override_usage = "braid endpoint add ADDR [dev DEV] [id N] [port P] [signal] [subflow] \
                          [backup] [fullmesh] [--ctl PATH] [--json]",
        after_help = super::help::ENDPOINT_ADD
    )]
    Add {
        /// The endpoint's address: one of this instance's own (a --path address).
        #[arg(value_name = "ADDR")]
        addr: String,
        /// `dev DEV`, `id N` (1-255), `port P` and the flags `signal`, `subflow`, `backup`,
        /// `fullmesh`, in any order.
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Delete the endpoint with id N (its announcement is withdrawn with REMOVE_ADDR, its
    /// subflows closed).
    #[command(
        visible_alias = "del",
        override_usage = "braid endpoint delete id N [--ctl PATH] [--json]",
        after_help = super::help::ENDPOINT_DELETE
    )]
    Delete {
        /// `id N`.
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Change the flags of the endpoint with id N (a backup change sends MP_PRIO).
    #[command(
        override_usage = "braid endpoint change id N backup|nobackup|fullmesh|nofullmesh \
                          [--ctl PATH] [--json]",
        after_help = super::help::ENDPOINT_CHANGE
    )]
    Change {
        /// `id N` and one of `backup`, `nobackup`, `fullmesh`, `nofullmesh`.
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// List the endpoints, as `ip mptcp endpoint show` does.
    #[command(after_help = super::help::ENDPOINT_SHOW)]
    Show,
    /// Delete every endpoint.
    #[command(after_help = super::help::ENDPOINT_FLUSH)]
    Flush,
}

impl EndpointCommand {
    /// The words after `endpoint`, as [`parse_endpoint_args`] reads them.
    pub fn words(&self) -> Vec<String> {
        let (verb, rest): (&str, &[String]) = match self {
            EndpointCommand::Add { addr, words } => {
                let mut v = vec!["add".to_string(), addr.clone()];
                v.extend(words.iter().cloned());
                return v;
            }
            EndpointCommand::Delete { words } => ("delete", words),
            EndpointCommand::Change { words } => ("change", words),
            EndpointCommand::Show => ("show", &[]),
            EndpointCommand::Flush => ("flush", &[]),
        };
        std::iter::once(verb.to_string())
            .chain(rest.iter().cloned())
            .collect()
    }
}

impl EndpointArgs {
    /// The request, or what is wrong with the words, in one line.
    pub fn request(&self) -> anyhow::Result<Request> {
        let words = self.command.words();
        parse_endpoint_args(&words).map_err(|e| prefixed(&format!("endpoint {}", words[0]), e))
    }

    /// Checks the words before the instance is asked.
    pub fn check(&self) -> anyhow::Result<()> {
        self.request().map(|_| ())
    }
}

/// `e` prefixed with the command it refuses, unless it says that already.
fn prefixed(command: &str, e: String) -> anyhow::Error {
    if e.starts_with(command) {
        anyhow::anyhow!("{e}")
    } else {
        anyhow::anyhow!("{command}: {e}")
    }
}

/// `braid limits set [subflows N] [add_addr_accepted N] | show` (`show` without a verb).
#[derive(Debug, Args)]
pub struct LimitsArgs {
    #[command(flatten)]
    pub ctl: CtlArgs,
    #[command(subcommand)]
    pub command: Option<LimitsCommand>,
}

/// The verbs of `braid limits`.
#[derive(Debug, Clone, Subcommand)]
pub enum LimitsCommand {
    /// Set the path manager's limits (each 0-8, as the kernel's): how many extra subflows a
    /// connection may have, and how many ADD_ADDR announcements it accepts. Applied to live
    /// connections too.
    #[command(
        override_usage = "braid limits set [subflows N] [add_addr_accepted N] [--ctl PATH] \
                          [--json]",
        after_help = super::help::LIMITS_SET
    )]
    Set {
        /// `subflows N`, `add_addr_accepted N` (either or both).
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
    /// Print the limits, as `ip mptcp limits show` does (also what `braid limits` alone
    /// does).
    #[command(after_help = super::help::LIMITS_SHOW)]
    Show,
}

impl LimitsArgs {
    /// The request, or what is wrong with the words, in one line.
    pub fn request(&self) -> anyhow::Result<Request> {
        let words: Vec<String> = match &self.command {
            Some(LimitsCommand::Set { words }) => std::iter::once("set".to_string())
                .chain(words.iter().cloned())
                .collect(),
            Some(LimitsCommand::Show) | None => vec!["show".to_string()],
        };
        parse_limits_args(&words).map_err(|e| prefixed(&format!("limits {}", words[0]), e))
    }

    /// Checks the words before the instance is asked.
    pub fn check(&self) -> anyhow::Result<()> {
        self.request().map(|_| ())
    }
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
pub fn endpoint(a: EndpointArgs) -> anyhow::Result<ExitCode> {
    let req = a.request()?;
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
pub fn limits(a: LimitsArgs) -> anyhow::Result<ExitCode> {
    let req = a.request()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    #[command(name = "braid")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        Endpoint(EndpointArgs),
        Limits(LimitsArgs),
    }

    fn parse(line: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("braid").chain(line.split_whitespace()))
            .map(|c| c.command)
    }

    fn endpoint(line: &str) -> EndpointArgs {
        match parse(line).unwrap() {
            Command::Endpoint(a) => a,
            Command::Limits(_) => panic!("{line}: not endpoint"),
        }
    }

    fn limits(line: &str) -> LimitsArgs {
        match parse(line).unwrap() {
            Command::Limits(a) => a,
            Command::Endpoint(_) => panic!("{line}: not limits"),
        }
    }

    #[test]
    fn help_after_a_verb_is_help_not_a_word() {
        for line in [
            "endpoint add --help",
            "endpoint add -h",
            "endpoint add 10.0.0.2 dev bt0 --help",
            "endpoint delete --help",
            "endpoint change --help",
            "endpoint --help",
            "limits set --help",
            "limits set subflows 2 --help",
            "limits show --help",
            "limits --help",
        ] {
            let e = parse(line)
                .err()
                .unwrap_or_else(|| panic!("{line}: parsed"));
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{line}");
        }
        let help = parse("endpoint add --help").err().unwrap().to_string();
        assert!(
            help.contains("Usage: braid endpoint add ADDR [dev DEV] [id N]"),
            "{help}"
        );
        let help = parse("limits set --help").err().unwrap().to_string();
        assert!(
            help.contains("Usage: braid limits set [subflows N] [add_addr_accepted N]"),
            "{help}"
        );
    }

    #[test]
    fn options_come_anywhere_among_the_words() {
        for line in [
            "endpoint add 10.2.0.2 dev bt2 --ctl /tmp/b.sock subflow --json",
            "endpoint --ctl /tmp/b.sock --json add 10.2.0.2 dev bt2 subflow",
            "endpoint add 10.2.0.2 --ctl=/tmp/b.sock dev bt2 subflow --json",
        ] {
            let a = endpoint(line);
            assert_eq!(a.ctl.ctl, PathBuf::from("/tmp/b.sock"), "{line}");
            assert!(a.ctl.json, "{line}");
            assert_eq!(
                a.command.words(),
                ["add", "10.2.0.2", "dev", "bt2", "subflow"],
                "{line}"
            );
            assert!(
                matches!(a.request().unwrap(), Request::EndpointAdd { .. }),
                "{line}"
            );
        }
        let a = endpoint("endpoint show");
        assert_eq!(a.ctl.ctl, PathBuf::from(DEFAULT_CTL));
        assert!(!a.ctl.json);
        assert!(matches!(a.request().unwrap(), Request::EndpointShow));
        assert!(matches!(
            endpoint("endpoint del id 3").request().unwrap(),
            Request::EndpointDelete { id: 3 }
        ));
        assert!(matches!(
            endpoint("endpoint flush --json").request().unwrap(),
            Request::EndpointFlush
        ));
        let a = limits("limits set subflows 4 add_addr_accepted 2 --ctl /tmp/b.sock");
        assert_eq!(a.ctl.ctl, PathBuf::from("/tmp/b.sock"));
        assert!(matches!(
            a.request().unwrap(),
            Request::LimitsSet {
                subflows: Some(4),
                add_addr_accepted: Some(2)
            }
        ));
        assert!(matches!(
            limits("limits").request().unwrap(),
            Request::LimitsShow
        ));
        assert!(matches!(
            limits("limits --json").request().unwrap(),
            Request::LimitsShow
        ));
    }

    #[test]
    fn bad_words_are_one_line_naming_the_command() {
        for (line, want) in [
            (
                "endpoint add 10.0.0.2 dev bt0 bogus",
                "endpoint add: unknown argument \"bogus\"",
            ),
            (
                "endpoint add 10.0.0.999",
                "endpoint add: invalid address \"10.0.0.999\": not a valid IPv4 address",
            ),
            ("endpoint delete 4", "endpoint delete: expected \"id N\""),
            (
                "endpoint change id 1",
                "endpoint change: expected backup, nobackup",
            ),
        ] {
            let e = endpoint(line).check().unwrap_err().to_string();
            assert!(e.starts_with(want) && !e.contains('\n'), "{line}: {e}");
        }
        let e = limits("limits set subflows 9")
            .check()
            .unwrap_err()
            .to_string();
        assert_eq!(e, "limits set: subflows limit 9 greater than maximum 8");
        for line in [
            "endpoint frobnicate",
            "endpoint show extra",
            "limits set -1",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
    }
}
