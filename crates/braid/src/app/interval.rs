//! `--interval S`: every S seconds, one line with each subflow's rate over the interval
//! (bytes sent plus received at its own sequence level), like iperf3's interval reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use braid_proto::snapshot::ConnSnapshot;

/// The counters at the previous report, per (connection, subflow id).
#[derive(Debug)]
pub struct Intervals {
    start: Instant,
    last_at: Instant,
    last: HashMap<(SocketAddr, SocketAddr, usize), u64>,
}

impl Intervals {
    pub fn new(start: Instant) -> Intervals {
        Intervals {
            start,
            last_at: start,
            last: HashMap::new(),
        }
    }

    /// The line for the interval that ends `now`, over every connection in `conns`.
    pub fn line(&mut self, conns: &[ConnSnapshot], now: Instant) -> String {
        let dt = now.saturating_duration_since(self.last_at).as_secs_f64();
        let from = self.last_at.saturating_duration_since(self.start);
        let to = now.saturating_duration_since(self.start);
        let mut parts = Vec::new();
        let mut total = 0.0;
        for c in conns {
            for s in &c.subflows {
                let bytes = s.bytes_sent + s.bytes_received;
                let key = (c.local, c.remote, s.id);
                let before = self.last.insert(key, bytes).unwrap_or(0);
                let rate = mbps(bytes.saturating_sub(before), dt);
                total += rate;
                let backup = if s.backup { " backup" } else { "" };
                let state = if s.open { "" } else { " closed" };
                parts.push(format!(
                    "sf{} {}>{}{backup}{state} {rate:.1} Mbit/s",
                    s.id, s.local, s.remote
                ));
            }
        }
        self.last_at = now;
        if parts.is_empty() {
            parts.push("no connection".to_owned());
        }
        format!(
            "{:.1}-{:.1} s: {}; {total:.1} Mbit/s in all",
            secs(from),
            secs(to),
            parts.join(", ")
        )
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mbps(bytes: u64, dt: f64) -> f64 {
    if dt > 0.0 {
        bytes as f64 * 8.0 / dt / 1e6
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_proto::snapshot::{ConnSnapshot, SubflowSnapshot};

    fn sub(id: usize, local: &str, remote: &str) -> SubflowSnapshot {
        SubflowSnapshot {
            id,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            local_id: 0,
            remote_id: 0,
            backup: false,
            state: braid_proto::TcpState::Established,
            open: true,
            stale: false,
            rtt: None,
            rto: Duration::from_millis(200),
            cwnd: 0,
            ssthresh: usize::MAX,
            mss: 1448,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            retransmits: 0,
            timeouts: 0,
            recoveries: 0,
            spurious_recoveries: 0,
        }
    }

    fn conn(subflows: Vec<SubflowSnapshot>) -> ConnSnapshot {
        ConnSnapshot {
            local: subflows[0].local,
            remote: subflows[0].remote,
            state: braid_proto::TcpState::Established,
            mptcp: true,
            mptcp_requested: true,
            fallback: false,
            checksum: false,
            local_token: None,
            remote_denies_join: false,
            rtt: None,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            retransmits: 0,
            counters: Default::default(),
            subflows,
        }
    }

    #[test]
    fn each_subflow_gets_its_rate_over_the_interval() {
        let t0 = Instant::now();
        let mut iv = Intervals::new(t0);
        let mut s0 = sub(0, "10.0.0.2:40000", "10.0.0.1:5000");
        s0.bytes_sent = 1_000_000;
        let mut s1 = sub(1, "10.1.0.2:40001", "10.1.0.1:5000");
        s1.backup = true;
        s1.bytes_received = 250_000;
        let mut c = conn(vec![s0, s1]);
        let line = iv.line(std::slice::from_ref(&c), t0 + Duration::from_secs(1));
        assert_eq!(
            line,
            "0.0-1.0 s: sf0 10.0.0.2:40000>10.0.0.1:5000 8.0 Mbit/s, \
             sf1 10.1.0.2:40001>10.1.0.1:5000 backup 2.0 Mbit/s; 10.0 Mbit/s in all"
        );
        // The next interval counts only what moved since.
        c.subflows[0].bytes_sent += 500_000;
        c.subflows[1].open = false;
        let line = iv.line(std::slice::from_ref(&c), t0 + Duration::from_secs(2));
        assert_eq!(
            line,
            "1.0-2.0 s: sf0 10.0.0.2:40000>10.0.0.1:5000 4.0 Mbit/s, \
             sf1 10.1.0.2:40001>10.1.0.1:5000 backup closed 0.0 Mbit/s; 4.0 Mbit/s in all"
        );
        assert_eq!(
            iv.line(&[], t0 + Duration::from_secs(3)),
            "2.0-3.0 s: no connection; 0.0 Mbit/s in all"
        );
    }
}
