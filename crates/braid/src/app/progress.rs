//! What a terminal shows during a transfer: the progress line, and the notice a signal
//! prints.

use std::io::Write;
use std::time::Duration;

/// The progress line of a long transfer (`braid connect|listen` on a terminal): bytes each
/// way, the rate since the start and the open subflows, rewritten in place at most once per
/// `every`, shown once the transfer has run for `after`, and erased at the end.
pub struct Progress {
    out: Box<dyn Write + Send>,
    every: Duration,
    after: Duration,
    last: Option<std::time::Instant>,
    shown: bool,
}

/// How often the progress line is rewritten at most (4 times a second).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How long a transfer runs before the progress line appears.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);

impl Progress {
    /// A progress line written to `out` (a terminal: it uses a carriage return and the
    /// erase-line sequence).
    pub fn new(out: Box<dyn Write + Send>, every: Duration, after: Duration) -> Progress {
        Progress {
            out,
            every,
            after,
            last: None,
            shown: false,
        }
    }

    /// Rewrite the line if `every` has passed since the last time.
    pub fn update(
        &mut self,
        started: std::time::Instant,
        sent: u64,
        received: u64,
        subflows: usize,
    ) {
        let now = std::time::Instant::now();
        let elapsed = now.saturating_duration_since(started);
        if elapsed < self.after
            || self
                .last
                .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return;
        }
        self.last = Some(now);
        let line = progress_line(sent, received, elapsed, subflows);
        // A broken terminal must not end the transfer: the line is only informative.
        let _ = write!(self.out, "\r\x1b[K{line}").and_then(|()| self.out.flush());
        self.shown = true;
    }

    /// While the handshake is still under way: `connecting to H:P (3 s)`, once `after`
    /// has passed.
    pub fn connecting(&mut self, started: std::time::Instant, remote: std::net::SocketAddr) {
        let elapsed = started.elapsed();
        if elapsed < self.after {
            return;
        }
        let line = format!("connecting to {remote} ({} s)", elapsed.as_secs());
        let _ = write!(self.out, "\r\x1b[K{line}").and_then(|()| self.out.flush());
        self.shown = true;
    }

    /// Erase the line (if it was shown).
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "\r\x1b[K").and_then(|()| self.out.flush());
            self.shown = false;
        }
    }
}

/// `12.5 MiB sent, 0 B received, 98.3 Mbit/s, 2 subflows`
pub fn progress_line(sent: u64, received: u64, elapsed: Duration, subflows: usize) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        sent.max(received) as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let plural = if subflows == 1 { "" } else { "s" };
    format!(
        "{} sent, {} received, {rate:.1} Mbit/s, {subflows} subflow{plural}",
        human_bytes(sent),
        human_bytes(received)
    )
}

/// The line a finished transfer prints without `--json`:
/// `sent 16.0 MiB, received 0 B in 1.23 s (109.1 Mbit/s), 2 subflows, MPTCP`.
pub fn summary_line(
    sent: u64,
    received: u64,
    elapsed: Duration,
    subflows: usize,
    protocol: &str,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        sent.max(received) as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let plural = if subflows == 1 { "" } else { "s" };
    format!(
        "sent {}, received {} in {secs:.2} s ({rate:.1} Mbit/s), {subflows} subflow{plural}, \
         {protocol}",
        human_bytes(sent),
        human_bytes(received)
    )
}

/// How a connection ran, for the summary: `MPTCP`, `MPTCP with checksums`, `TCP`, or the
/// fallback when MPTCP was asked for.
pub fn protocol_name(asked: bool, mptcp: bool, checksum: bool) -> &'static str {
    match (asked, mptcp, checksum) {
        (_, true, true) => "MPTCP with DSS checksums",
        (_, true, false) => "MPTCP",
        (true, false, _) => "TCP (fallback: no MPTCP end to end)",
        (false, false, _) => "TCP",
    }
}

/// 1023 B, 1.0 KiB, 12.5 MiB, 2.0 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// What the first signal says once connected.
pub fn closing_notice(unacked: u64) -> String {
    if unacked == 0 {
        "interrupted: closing gracefully; a second signal aborts".to_owned()
    } else {
        format!(
            "interrupted: closing gracefully once the peer takes the {} still queued; a \
             second signal aborts",
            human_bytes(unacked)
        )
    }
}
