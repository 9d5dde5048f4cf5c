//! The options `braid connect`, `braid listen` and `braid proxy` share for the transfer
//! itself: scheduler and congestion control, and (connect and listen) the per-interval report.

use std::time::Duration;

use braid_proto::cc::CcAlgorithm;
use braid_proto::sched::SchedulerKind;

use super::sim::{parse_cc, parse_scheduler};

/// `--scheduler`, `--cc`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SchedArgs {
    /// Packet scheduler of MPTCP connections: default, minrtt, roundrobin, redundant,
    /// blest.
    #[arg(long, value_name = "S", value_parser = parse_scheduler)]
    pub scheduler: Option<SchedulerKind>,
    /// Congestion control of every subflow: cubic (the default) or reno.
    #[arg(long, value_name = "C", value_parser = parse_cc)]
    pub cc: Option<CcAlgorithm>,
}

impl SchedArgs {
    /// Applies the scheduler and congestion control to `config`. A scheduler needs MPTCP:
    /// with `--tcp` it is refused.
    pub(crate) fn apply(
        &self,
        config: &mut braid_proto::EndpointConfig,
        tcp: bool,
    ) -> anyhow::Result<()> {
        if let Some(s) = self.scheduler {
            if tcp {
                anyhow::bail!(
                    "--scheduler {s} needs MPTCP (a scheduler picks among subflows): leave out --tcp"
                );
            }
            config.scheduler = s;
        }
        if let Some(cc) = self.cc {
            config.tcp.cc = cc;
        }
        Ok(())
    }
}

/// `--scheduler`, `--cc`, `--interval`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub sched: SchedArgs,
    /// Every S seconds, print each subflow's rate (e.g. 1 or 0.5).
    #[arg(long, value_name = "S")]
    pub interval: Option<String>,
    /// Worker threads, each with its own engine and queue of every TUN device (default 1,
    /// or BRAID_WORKERS); an existing device must have been created with `multi_queue`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub workers: Option<u8>,
}

impl TuneArgs {
    /// Applies the scheduler and congestion control to `config` ([`SchedArgs::apply`]);
    /// the interval, if given.
    pub(crate) fn apply(
        &self,
        config: &mut braid_proto::EndpointConfig,
        tcp: bool,
    ) -> anyhow::Result<Option<Duration>> {
        self.sched.apply(config, tcp)?;
        self.interval
            .as_deref()
            .map(|s| super::parse_seconds("--interval", s))
            .transpose()
    }
}
