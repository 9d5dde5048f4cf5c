//! The JSON report printed by `--json` (docs: DESIGN §6, "the CLI contract").

use std::collections::BTreeMap;

use serde::Serialize;

/// One subflow in a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubflowReport {
    /// The subflow's id within its connection (0: the initial subflow).
    pub id: usize,
    pub local: String,
    pub remote: String,
    pub backup: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rtt_ms: f64,
    /// The subflow's TCP loss recovery, where the runtime knows it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpStats>,
}

/// A subflow's TCP loss-recovery counters and window (in the report and `info()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpStats {
    pub retransmits: u64,
    pub timeouts: u64,
    pub recoveries: u64,
    pub spurious_recoveries: u64,
    pub cwnd: u64,
}

impl TcpStats {
    /// The counters of a subflow (or a plain TCP connection's TCB).
    pub fn of(s: &braid_proto::SubflowSnapshot) -> TcpStats {
        TcpStats {
            retransmits: s.retransmits,
            timeouts: s.timeouts,
            recoveries: s.recoveries,
            spurious_recoveries: s.spurious_recoveries,
            cwnd: s.cwnd as u64,
        }
    }
}

/// What `braid connect|listen|sim --json` prints on exit. Fields of the contract first;
/// `scenario`, `integrity_ok` and `goodput_mbps` are set by `braid sim`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub role: String,
    pub mptcp: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub sha256_sent: String,
    pub sha256_received: String,
    pub duration_s: f64,
    pub subflows: Vec<SubflowReport>,
    /// Counters under the Linux kernel's MPTcpExt MIB names.
    pub counters: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_mbps: Option<f64>,
    /// Further fields a command adds (e.g. the simulator's per-end reports).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Report {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
