//! `braid sim`: both ends in-process over simulated paths.

mod compare;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use braid_proto::cc::CcAlgorithm;
use braid_proto::sched::SchedulerKind;
use braid_sim::host::SubflowStats;
use braid_sim::scenario::{self, Scenario, SimConfig, SimResult};
use clap::Args;

use crate::report::{Report, SubflowReport};

/// Arguments of `braid sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The scenario to run: two-paths, single-path, lossy, failover, strip-syn, strip-data,
    /// corrupt, nat, bursty, reorder, lossy-path, lossy-lan. Or `compare`: run each loss
    /// scenario (lossy, bursty, reorder, lossy-path, lossy-lan) with MPTCP and with plain
    /// TCP and print them side by side.
    #[arg(default_value = "two-paths")]
    pub scenario: String,
    /// Bytes the client sends (suffixes K, M, G = KiB, MiB, GiB): at least 1, and no more
    /// than the scenario's paths carry in its hour of simulated time.
    #[arg(long, default_value = "64M", value_parser = parse_sim_bytes)]
    pub bytes: u64,
    /// MPTCP packet scheduler: default (the default), minrtt, roundrobin, redundant, blest.
    /// Not with --tcp.
    #[arg(long, value_name = "SCHEDULER", value_parser = parse_scheduler)]
    pub scheduler: Option<SchedulerKind>,
    /// Congestion control: cubic or reno.
    #[arg(long, default_value = "cubic", value_parser = parse_cc)]
    pub cc: CcAlgorithm,
    /// Seed of every random choice in the run; the same seed replays the same run.
    #[arg(long, default_value_t = 1, value_parser = parse_seed)]
    pub seed: u64,
    /// Write every packet (every path, as sent) to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Draw the run to this SVG file: each subflow's throughput and congestion window, and
    /// what the application received, over time.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Use plain TCP instead of MPTCP.
    #[arg(long)]
    pub tcp: bool,
    /// Print one JSON object on exit.
    #[arg(long)]
    pub json: bool,
}

/// How often a plotted run is sampled (simulated time).
const PLOT_SAMPLE: braid_proto::Duration = braid_proto::Duration::from_millis(10);

pub(crate) fn cc_name(cc: CcAlgorithm) -> &'static str {
    match cc {
        CcAlgorithm::Reno => "reno",
        _ => "cubic",
    }
}

/// Parse a congestion-control name.
pub fn parse_cc(s: &str) -> Result<CcAlgorithm, String> {
    match s.to_ascii_lowercase().as_str() {
        "cubic" => Ok(CcAlgorithm::Cubic),
        "reno" | "newreno" => Ok(CcAlgorithm::Reno),
        _ => Err(format!(
            "unknown congestion control '{s}' (known: cubic, reno)"
        )),
    }
}

/// `--seed`: a number from 0 to 2^64 - 1.
pub fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a number from 0 to {}", u64::MAX))
}

/// `--bytes` of `braid sim`: a byte count of at least 1.
pub fn parse_sim_bytes(s: &str) -> Result<u64, String> {
    match super::parse_bytes(s)? {
        0 => Err("nothing to send: give at least 1 byte".into()),
        n => Ok(n),
    }
}

/// The most bytes `scenario` can carry in `time_limit` of simulated time: every path it
/// uses (plain TCP: the first alone) busy from the first instant to the last, headers
/// counted as data. A bound, not an estimate: more can never complete.
pub fn capacity(scenario: &Scenario, tcp: bool, time_limit: braid_proto::Duration) -> u64 {
    let used = if tcp { 1 } else { scenario.paths.len() };
    let rate_bps: u128 = scenario
        .paths
        .iter()
        .take(used)
        .map(|p| u128::from(p.up.rate_bps))
        .sum();
    let bytes = rate_bps * time_limit.as_micros() / 8 / 1_000_000;
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

impl SimArgs {
    /// Checks the arguments before anything runs: the scenario, what goes with --tcp, and a
    /// size the scenario can carry. Each refusal is one line.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.tcp {
            if let Some(s) = self.scheduler {
                anyhow::bail!(
                    "--scheduler {s} needs MPTCP: a scheduler spreads data over the subflows \
                     of an MPTCP connection, and --tcp has one plain TCP connection; leave \
                     out one of them"
                );
            }
        }
        if self.bytes == 0 {
            anyhow::bail!("bad --bytes \"0\": nothing to send: give at least 1 byte");
        }
        let time_limit = SimConfig::default().time_limit;
        let scenarios: Vec<(Scenario, bool)> = if self.scenario == "compare" {
            compare::check(self)?;
            // Each loss scenario runs with MPTCP and with plain TCP.
            braid_sim::scenario::LOSS_SCENARIOS
                .iter()
                .map(|n| Scenario::by_name(n).map(|s| (s, true)))
                .collect::<Result<_, _>>()?
        } else {
            let s = Scenario::by_name(&self.scenario)?;
            if self.tcp && s.needs_mptcp {
                anyhow::bail!(
                    "{}",
                    braid_sim::scenario::SimError::NeedsMptcp(s.name.into())
                );
            }
            vec![(s, self.tcp)]
        };
        for (s, tcp) in &scenarios {
            let cap = capacity(s, *tcp, time_limit);
            if self.bytes > cap {
                anyhow::bail!(
                    "bad --bytes {}: more than scenario {}{} can carry in its {} s of simulated \
                     time (at most {cap} bytes at {} Mbit/s)",
                    self.bytes,
                    s.name,
                    if *tcp { " with --tcp" } else { "" },
                    time_limit.as_secs(),
                    cap * 8 / time_limit.as_secs().max(1) / 1_000_000
                );
            }
        }
        Ok(())
    }
}

/// Parse a scheduler name (every [`SchedulerKind`]).
pub fn parse_scheduler(s: &str) -> Result<SchedulerKind, String> {
    s.to_ascii_lowercase()
        .parse::<SchedulerKind>()
        .map_err(|e| e.to_string())
}

/// Run `braid sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    args.check()?;
    if args.scenario == "compare" {
        return compare::run(&args);
    }
    let scenario = Scenario::by_name(&args.scenario)?;
    let cfg = SimConfig {
        bytes: args.bytes,
        seed: args.seed,
        tcp: args.tcp,
        cc: args.cc,
        pcap: args.pcap.clone(),
        scheduler: args.scheduler.unwrap_or_default(),
        trace_every: args.plot.as_ref().map(|_| PLOT_SAMPLE),
        ..SimConfig::default()
    };
    let result =
        scenario::run(&scenario, &cfg).with_context(|| format!("scenario {}", scenario.name))?;
    if let Some(path) = &args.plot {
        let title = format!(
            "braid sim {}: {} bytes, {}, scheduler {}, cc {}, seed {}",
            scenario.name,
            cfg.bytes,
            if cfg.tcp { "TCP" } else { "MPTCP" },
            cfg.scheduler,
            cc_name(cfg.cc),
            cfg.seed
        );
        std::fs::write(path, braid_sim::plot::svg(&result, &title))
            .with_context(|| format!("cannot write plot {}", path.display()))?;
    }
    let report = report(&scenario, &cfg, &result);
    if args.json {
        println!("{}", json(&report, &result));
    } else {
        print_human(&scenario, &report, &result);
    }
    if report.integrity_ok == Some(true) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("braid sim: {}", failure_reason(&cfg, &result));
        Ok(ExitCode::FAILURE)
    }
}

fn failure_reason(cfg: &SimConfig, r: &SimResult) -> String {
    if let Some(e) = r.client.error.as_ref().or(r.server.error.as_ref()) {
        return format!("transfer failed: {e}");
    }
    if !r.completed {
        return format!(
            "transfer did not complete within {} s of simulated time ({} of {} bytes delivered)",
            cfg.time_limit.as_secs(),
            r.server.received.bytes(),
            cfg.bytes
        );
    }
    format!(
        "integrity check failed: sent {} bytes (sha256 {}), received {} (sha256 {})",
        r.client.sent.bytes(),
        r.client.sent.hex(),
        r.server.received.bytes(),
        r.server.received.hex()
    )
}

/// The JSON report of a run.
pub fn report(scenario: &Scenario, cfg: &SimConfig, r: &SimResult) -> Report {
    // The client's subflows (it sends the data); the server's are in `server_subflows`.
    let mut subflows: Vec<SubflowReport> = r.client.subflows.iter().map(subflow_report).collect();
    if subflows.is_empty() {
        if let Some(info) = &r.client_info {
            subflows.push(SubflowReport {
                id: 0,
                local: info.local.to_string(),
                remote: info.remote.to_string(),
                backup: false,
                bytes_sent: r.client.sent.bytes(),
                bytes_received: r.client.received.bytes(),
                rtt_ms: info.rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                tcp: None,
            });
        }
    }
    let mut report = Report {
        role: "sim".into(),
        mptcp: r.mptcp,
        bytes_sent: r.client.sent.bytes(),
        bytes_received: r.server.received.bytes(),
        sha256_sent: r.client.sent.hex(),
        sha256_received: r.server.received.hex(),
        duration_s: r.server.last_byte.unwrap_or(r.end).as_secs_f64(),
        subflows,
        scenario: Some(scenario.name.to_string()),
        integrity_ok: Some(r.integrity_ok(cfg.bytes)),
        goodput_mbps: Some((r.goodput_mbps() * 1000.0).round() / 1000.0),
        ..Report::default()
    };
    // Both ends run in this process: the counters are summed, as `nstat` on one host
    // running both would show them; each end's own are under `client_counters` and
    // `server_counters`.
    let mut both = r.client_counters;
    both.add(&r.server_counters);
    report.counters = counters_map(&both);
    report.extra.insert(
        "client_counters".into(),
        serde_json::to_value(counters_map(&r.client_counters)).unwrap_or_default(),
    );
    report.extra.insert(
        "server_counters".into(),
        serde_json::to_value(counters_map(&r.server_counters)).unwrap_or_default(),
    );
    report.extra.insert("seed".into(), cfg.seed.into());
    report
        .extra
        .insert("scheduler".into(), cfg.scheduler.name().into());
    report
        .extra
        .insert("max_gap_ms".into(), ms(r.max_gap().as_secs_f64()).into());
    report.extra.insert(
        "server_subflows".into(),
        r.server
            .subflows
            .iter()
            .map(subflow_json)
            .collect::<Vec<_>>()
            .into(),
    );
    let impairments: Vec<serde_json::Value> = r
        .impairments
        .iter()
        .map(|(imp, n)| {
            serde_json::json!({
                "kind": imp.kind(),
                "path": imp.path(),
                "packets": n,
            })
        })
        .collect();
    report
        .extra
        .insert("impairments".into(), impairments.into());
    report
        .extra
        .insert("cc".into(), format!("{:?}", cfg.cc).to_lowercase().into());
    if let Some(info) = &r.client_info {
        report
            .extra
            .insert("retransmits".into(), info.retransmits.into());
    }
    let links: Vec<serde_json::Value> = r
        .links
        .iter()
        .enumerate()
        .map(|(i, (up, down))| {
            serde_json::json!({
                "path": i,
                "up": link_json(up),
                "down": link_json(down),
            })
        })
        .collect();
    report.extra.insert("links".into(), links.into());
    report
}

/// Milliseconds from seconds, rounded to the microsecond.
fn ms(secs: f64) -> f64 {
    (secs * 1e6).round() / 1e3
}

fn subflow_report(s: &SubflowStats) -> SubflowReport {
    SubflowReport {
        id: s.id,
        local: s.local.map(|a| a.to_string()).unwrap_or_default(),
        remote: s.remote.map(|a| a.to_string()).unwrap_or_default(),
        backup: s.backup,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        rtt_ms: s.srtt.map_or(0.0, |d| ms(d.as_secs_f64())),
        tcp: None,
    }
}

/// One subflow in the JSON report: the contract's fields and the subflow's TCP state.
fn subflow_json(s: &SubflowStats) -> serde_json::Value {
    let mut v = serde_json::to_value(subflow_report(s)).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let srtt = s.srtt.map(|d| ms(d.as_secs_f64()));
        o.insert("id".into(), s.id.into());
        o.insert("local_id".into(), s.local_id.into());
        o.insert("remote_id".into(), s.remote_id.into());
        o.insert("state".into(), format!("{:?}", s.state).into());
        o.insert("bytes_acked".into(), s.bytes_acked.into());
        o.insert("retransmits".into(), s.retransmits.into());
        o.insert("timeouts".into(), s.timeouts.into());
        o.insert("recoveries".into(), s.recoveries.into());
        o.insert("spurious_recoveries".into(), s.spurious_recoveries.into());
        o.insert("srtt_ms".into(), srtt.into());
        o.insert("rto_ms".into(), ms(s.rto.as_secs_f64()).into());
        o.insert("cwnd".into(), s.cwnd.into());
        o.insert(
            "ssthresh".into(),
            (s.ssthresh != usize::MAX).then_some(s.ssthresh).into(),
        );
        o.insert("mss".into(), s.mss.into());
    }
    v
}

/// The report as one line of JSON, each client subflow with its full state (`Report`
/// carries only the contract's subflow fields).
pub fn json(report: &Report, r: &SimResult) -> String {
    let mut v = match serde_json::to_value(report) {
        Ok(v) => v,
        Err(_) => return report.to_json(),
    };
    if !r.client.subflows.is_empty() {
        if let Some(o) = v.as_object_mut() {
            let subs: Vec<_> = r.client.subflows.iter().map(subflow_json).collect();
            o.insert("subflows".into(), subs.into());
        }
    }
    v.to_string()
}

/// Counters under their MIB names, for the JSON report.
pub fn counters_map(
    c: &braid_proto::mptcp::MptcpCounters,
) -> std::collections::BTreeMap<String, u64> {
    c.entries()
        .iter()
        .map(|&(k, v)| (k.to_string(), v))
        .collect()
}

fn link_json(s: &braid_sim::LinkStats) -> serde_json::Value {
    serde_json::json!({
        "sent_packets": s.sent_packets,
        "sent_bytes": s.sent_bytes,
        "delivered_packets": s.delivered_packets,
        "delivered_bytes": s.delivered_bytes,
        "dropped_loss": s.dropped_loss,
        "dropped_queue": s.dropped_queue,
        "dropped_mtu": s.dropped_mtu,
        "dropped_down": s.dropped_down,
        "dropped_middlebox": s.dropped_middlebox,
        "duplicated": s.duplicated,
        "reordered": s.reordered,
    })
}

fn print_human(scenario: &Scenario, report: &Report, r: &SimResult) {
    println!("scenario     {} ({})", scenario.name, scenario.description);
    println!(
        "transfer     {} bytes in {:.3} s simulated, {}",
        report.bytes_received,
        report.duration_s,
        if r.mptcp { "MPTCP" } else { "plain TCP" }
    );
    println!(
        "goodput      {:.2} Mbit/s",
        report.goodput_mbps.unwrap_or(0.0)
    );
    println!(
        "integrity    {} (sha256 {})",
        if report.integrity_ok == Some(true) {
            "ok"
        } else {
            "FAILED"
        },
        report.sha256_received
    );
    println!("max gap      {:.1} ms", r.max_gap().as_secs_f64() * 1e3);
    for s in &r.client.subflows {
        println!(
            "subflow {}    {} -> {}  {:?}  sent {} B  acked {} B  retrans {}  srtt {:.1} ms  \
             cwnd {}",
            s.id,
            s.local.map(|a| a.to_string()).unwrap_or_default(),
            s.remote.map(|a| a.to_string()).unwrap_or_default(),
            s.state,
            s.bytes_sent,
            s.bytes_acked,
            s.retransmits,
            s.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            s.cwnd
        );
    }
    for (imp, n) in &r.impairments {
        println!(
            "impairment   {} on path {}: {} packets",
            imp.kind(),
            imp.path() + 1,
            n
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }

    fn parse(v: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(v.iter().copied())).map(|c| c.args)
    }

    fn refused(v: &[&str]) -> String {
        parse(v).unwrap().check().unwrap_err().to_string()
    }

    #[test]
    fn a_scheduler_needs_mptcp() {
        assert_eq!(
            refused(&["single-path", "--tcp", "--scheduler", "blest"]),
            "--scheduler blest needs MPTCP: a scheduler spreads data over the subflows of an \
             MPTCP connection, and --tcp has one plain TCP connection; leave out one of them"
        );
        // Without --scheduler, --tcp is fine; so is a scheduler with MPTCP.
        parse(&["single-path", "--tcp"]).unwrap().check().unwrap();
        let a = parse(&["--scheduler", "blest"]).unwrap();
        a.check().unwrap();
        assert_eq!(a.scheduler, Some(SchedulerKind::Blest));
        assert_eq!(parse(&[]).unwrap().scheduler, None, "the default");
    }

    #[test]
    fn bytes_are_at_least_one_and_at_most_what_the_scenario_carries() {
        let e = parse(&["--bytes", "0"]).unwrap_err();
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(src, "nothing to send: give at least 1 byte");
        // single-path: 100 Mbit/s for 3600 s is 45 GB; two-paths adds 50 Mbit/s.
        let hour = SimConfig::default().time_limit;
        let single = Scenario::by_name("single-path").unwrap();
        assert_eq!(capacity(&single, false, hour), 45_000_000_000);
        let two = Scenario::by_name("two-paths").unwrap();
        assert_eq!(capacity(&two, false, hour), 67_500_000_000);
        assert_eq!(capacity(&two, true, hour), 45_000_000_000, "--tcp: path 1");
        parse(&["single-path", "--bytes", "45000000000"])
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(
            refused(&["single-path", "--bytes", "45000000001"]),
            "bad --bytes 45000000001: more than scenario single-path can carry in its 3600 s \
             of simulated time (at most 45000000000 bytes at 100 Mbit/s)"
        );
        parse(&["two-paths", "--bytes", "60G"])
            .unwrap()
            .check()
            .unwrap();
        let e = refused(&["lossy-path", "--tcp", "--bytes", "60G"]);
        assert!(
            e.starts_with("bad --bytes 64424509440: more than scenario lossy-path with --tcp"),
            "{e}"
        );
        // compare: each loss scenario, also with plain TCP.
        let e = refused(&["compare", "--bytes", "50G"]);
        assert!(e.contains("with --tcp can carry"), "{e}");
        // The largest byte count refused in one line, not overflowing.
        let e = refused(&["--bytes", "16000000000G"]);
        assert!(
            e.starts_with("bad --bytes 17179869184000000000: more than"),
            "{e}"
        );
    }

    #[test]
    fn what_the_scenario_refuses_is_refused_before_running() {
        let e = refused(&["no-such"]);
        assert!(
            e.starts_with("unknown scenario 'no-such' (known: two-paths"),
            "{e}"
        );
        let e = refused(&["strip-syn", "--tcp"]);
        assert!(e.starts_with("scenario 'strip-syn' needs MPTCP"), "{e}");
        let e = refused(&["compare", "--plot", "x.svg"]);
        assert!(e.ends_with("--plot does not apply"), "{e}");
    }

    #[test]
    fn seed_and_cc_say_what_they_take() {
        let e = parse(&["--seed", "x"]).unwrap_err();
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(src, "expected a number from 0 to 18446744073709551615");
        let e = parse(&["--cc", "vegas"]).unwrap_err();
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(
            src,
            "unknown congestion control 'vegas' (known: cubic, reno)"
        );
    }
}
