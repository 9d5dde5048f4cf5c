//! `braid sim compare`: each loss scenario run twice, with MPTCP and with plain TCP (the
//! baseline), summarised side by side: goodput, delivery gaps, and how the sender recovered
//! (retransmitted segments, timeouts, fast recoveries).
//!
//! Everything is simulated time, so a comparison is a pure function of its scenario, size and
//! seed, like every run.

use braid_proto::Duration;

use crate::scenario::{self, Scenario, SimConfig, SimError, SimResult};

/// A delivery stall at least this long counts in [`RunSummary::stalls`]: Linux's (and
/// braid's) minimum retransmission timeout, so on a path of a few tens of milliseconds a
/// stall this long almost always waited for a timeout.
pub const STALL: Duration = Duration::from_millis(200);

/// One run, in the figures that tell how the sender coped.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The server received exactly the bytes sent, and both ends closed cleanly.
    pub integrity_ok: bool,
    /// The run used MPTCP to the end (no fallback).
    pub mptcp: bool,
    /// Application bytes per second from connect to the last byte, in Mbit/s.
    pub goodput_mbps: f64,
    /// From connect to the last byte's delivery.
    pub duration: Duration,
    /// The longest time without a new in-order byte for the server application.
    pub max_gap: Duration,
    /// Delivery stalls of at least [`STALL`], and their total length.
    pub stalls: usize,
    pub stalled: Duration,
    /// Over the client's (the sender's) subflows: segments retransmitted, retransmission
    /// timeouts, fast recoveries entered and fast recoveries undone as spurious.
    pub retransmits: u64,
    pub timeouts: u64,
    pub recoveries: u64,
    pub spurious_recoveries: u64,
    /// Data-level retransmissions (`MPTCPRetrans`) by the client; 0 for plain TCP.
    pub reinjections: u64,
    /// Packets the paths dropped (loss or full queue) from client to server (mostly data)
    /// and from server to client (ACKs).
    pub data_lost: u64,
    pub acks_lost: u64,
}

impl RunSummary {
    /// The summary of a run that sent `bytes`.
    pub fn of(r: &SimResult, bytes: u64) -> RunSummary {
        let (stalls, stalled) = r.stalls(STALL);
        let subs = &r.client.subflows;
        let sum = |f: fn(&crate::host::SubflowStats) -> u64| subs.iter().map(f).sum();
        let lost = |s: &crate::LinkStats| s.dropped_loss + s.dropped_queue;
        RunSummary {
            integrity_ok: r.integrity_ok(bytes),
            mptcp: r.mptcp,
            goodput_mbps: r.goodput_mbps(),
            duration: r
                .server
                .last_byte
                .map_or(Duration::ZERO, |t| t - braid_proto::Instant::ZERO),
            max_gap: r.max_gap(),
            stalls,
            stalled,
            retransmits: sum(|s| s.retransmits),
            timeouts: sum(|s| s.timeouts),
            recoveries: sum(|s| s.recoveries),
            spurious_recoveries: sum(|s| s.spurious_recoveries),
            reinjections: r.client_counters.MPTCPRetrans,
            data_lost: r.links.iter().map(|(up, _)| lost(up)).sum(),
            acks_lost: r.links.iter().map(|(_, down)| lost(down)).sum(),
        }
    }
}

/// One scenario with MPTCP and with plain TCP.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub scenario: &'static str,
    pub bytes: u64,
    pub seed: u64,
    pub mptcp: RunSummary,
    pub tcp: RunSummary,
}

impl Comparison {
    /// MPTCP's goodput over plain TCP's (0 if TCP delivered nothing).
    pub fn goodput_ratio(&self) -> f64 {
        if self.tcp.goodput_mbps > 0.0 {
            self.mptcp.goodput_mbps / self.tcp.goodput_mbps
        } else {
            0.0
        }
    }
}

/// Runs scenario `name` with `cfg` (its `tcp`, `pcap` and `trace_every` are ignored), once
/// with MPTCP and once with plain TCP. Scenarios that need MPTCP have no baseline and are
/// refused.
pub fn compare(name: &str, cfg: &SimConfig) -> Result<Comparison, SimError> {
    let scenario = Scenario::by_name(name)?;
    if scenario.needs_mptcp {
        return Err(SimError::NeedsMptcp(scenario.name.to_string()));
    }
    let run = |tcp| {
        let cfg = SimConfig {
            tcp,
            pcap: None,
            trace_every: None,
            ..cfg.clone()
        };
        scenario::run(&scenario, &cfg).map(|r| RunSummary::of(&r, cfg.bytes))
    };
    Ok(Comparison {
        scenario: scenario.name,
        bytes: cfg.bytes,
        seed: cfg.seed,
        mptcp: run(false)?,
        tcp: run(true)?,
    })
}

/// [`compare`] for every scenario of [`scenario::LOSS_SCENARIOS`], in order.
pub fn compare_all(cfg: &SimConfig) -> Result<Vec<Comparison>, SimError> {
    scenario::LOSS_SCENARIOS
        .iter()
        .map(|name| compare(name, cfg))
        .collect()
}
