//! `braid sim compare`: every loss scenario with MPTCP and with plain TCP, side by side.

use std::process::ExitCode;

use braid_sim::compare::{self, Comparison, RunSummary, STALL};
use braid_sim::scenario::SimConfig;

use super::SimArgs;

/// Refuses the options that do not apply to a comparison, in one line.
pub fn check(args: &SimArgs) -> anyhow::Result<()> {
    for (set, flag) in [
        (args.tcp, "--tcp"),
        (args.pcap.is_some(), "--pcap"),
        (args.plot.is_some(), "--plot"),
    ] {
        if set {
            anyhow::bail!("compare runs every loss scenario with MPTCP and with plain TCP; {flag} does not apply");
        }
    }
    Ok(())
}

/// Runs the comparison with the size, seed, congestion control and scheduler of `args`.
pub fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    check(args)?;
    let cfg = SimConfig {
        bytes: args.bytes,
        seed: args.seed,
        cc: args.cc,
        scheduler: args.scheduler.unwrap_or_default(),
        ..SimConfig::default()
    };
    let rows = compare::compare_all(&cfg)?;
    if args.json {
        println!("{}", json(&cfg, &rows));
    } else {
        print_table(&cfg, &rows);
    }
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|c| {
            [("MPTCP", &c.mptcp), ("TCP", &c.tcp)]
                .into_iter()
                .filter(|(_, s)| !s.integrity_ok)
                .map(move |(who, _)| format!("{} ({who})", c.scenario))
        })
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("braid sim: compare: not byte-exact: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn ms(d: braid_proto::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn summary_json(s: &RunSummary) -> serde_json::Value {
    serde_json::json!({
        "integrity_ok": s.integrity_ok,
        "mptcp": s.mptcp,
        "goodput_mbps": round3(s.goodput_mbps),
        "duration_s": round3(s.duration.as_secs_f64()),
        "max_gap_ms": ms(s.max_gap),
        "stalls": s.stalls,
        "stalled_ms": ms(s.stalled),
        "retransmits": s.retransmits,
        "timeouts": s.timeouts,
        "recoveries": s.recoveries,
        "spurious_recoveries": s.spurious_recoveries,
        "reinjections": s.reinjections,
        "data_lost": s.data_lost,
        "acks_lost": s.acks_lost,
    })
}

/// One JSON object: the settings and one entry per scenario.
fn json(cfg: &SimConfig, rows: &[Comparison]) -> String {
    let scenarios: Vec<serde_json::Value> = rows
        .iter()
        .map(|c| {
            serde_json::json!({
                "scenario": c.scenario,
                "goodput_ratio": round3(c.goodput_ratio()),
                "mptcp": summary_json(&c.mptcp),
                "tcp": summary_json(&c.tcp),
            })
        })
        .collect();
    serde_json::json!({
        "role": "sim-compare",
        "bytes": cfg.bytes,
        "seed": cfg.seed,
        "cc": super::cc_name(cfg.cc),
        "scheduler": cfg.scheduler.name(),
        "stall_ms": ms(STALL),
        "integrity_ok": rows.iter().all(|c| c.mptcp.integrity_ok && c.tcp.integrity_ok),
        "scenarios": scenarios,
    })
    .to_string()
}

fn print_table(cfg: &SimConfig, rows: &[Comparison]) {
    println!(
        "braid sim compare: {} bytes per run, seed {}, cc {}, scheduler {}; each cell MPTCP / TCP",
        cfg.bytes,
        cfg.seed,
        super::cc_name(cfg.cc),
        cfg.scheduler.name()
    );
    println!(
        "{:<11} {:>17} {:>6} {:>17} {:>13} {:>13} {:>9} {:>11} {:>19}",
        "scenario",
        "goodput Mbit/s",
        "ratio",
        "max gap ms",
        format!("stalls>={}ms", STALL.as_millis()),
        "retransmits",
        "RTOs",
        "recoveries",
        "lost data/acks"
    );
    for c in rows {
        let (m, t) = (&c.mptcp, &c.tcp);
        let pair = |a: String, b: String| format!("{a} / {b}");
        println!(
            "{:<11} {:>17} {:>6.3} {:>17} {:>13} {:>13} {:>9} {:>11} {:>19}{}",
            c.scenario,
            pair(
                format!("{:.2}{}", m.goodput_mbps, if m.mptcp { "" } else { "*" }),
                format!("{:.2}", t.goodput_mbps)
            ),
            c.goodput_ratio(),
            pair(
                format!("{:.1}", ms(m.max_gap)),
                format!("{:.1}", ms(t.max_gap))
            ),
            pair(m.stalls.to_string(), t.stalls.to_string()),
            pair(m.retransmits.to_string(), t.retransmits.to_string()),
            pair(m.timeouts.to_string(), t.timeouts.to_string()),
            pair(m.recoveries.to_string(), t.recoveries.to_string()),
            pair(
                format!("{}/{}", m.data_lost, m.acks_lost),
                format!("{}/{}", t.data_lost, t.acks_lost)
            ),
            if m.integrity_ok && t.integrity_ok {
                ""
            } else {
                "  NOT BYTE-EXACT"
            }
        );
    }
    if rows.iter().any(|c| !c.mptcp.mptcp) {
        println!("* the MPTCP run fell back to plain TCP");
    }
}
