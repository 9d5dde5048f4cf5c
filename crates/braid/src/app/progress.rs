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

    /// How often the caller should offer an update: `every`, but not more often than every
    /// 10 ms (a line asked to redraw at every chance still gets a few per transfer).
    pub fn cadence(&self) -> Duration {
        self.every.max(Duration::from_millis(10))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// What the progress line wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn progress_lines_read_well() {
        assert_eq!(
            progress_line(12 << 20, 0, Duration::from_secs(1), 2),
            "12.0 MiB sent, 0 B received, 100.7 Mbit/s, 2 subflows"
        );
        assert_eq!(
            progress_line(1000, 1536, Duration::ZERO, 1),
            "1000 B sent, 1.5 KiB received, 0.0 Mbit/s, 1 subflow"
        );
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn progress_waits_for_its_moment_and_clears_only_what_it_drew() {
        let buf = Buf::default();
        let start = std::time::Instant::now();
        // Not yet `after`: nothing drawn, nothing to clear.
        let mut p = Progress::new(
            Box::new(buf.clone()),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        p.update(start, 1, 1, 1);
        p.connecting(start, "10.0.0.1:5000".parse().unwrap());
        p.clear();
        assert!(buf.text().is_empty(), "{:?}", buf.text());
        // Drawn once, then not again within `every`, then erased (once).
        let mut p = Progress::new(
            Box::new(buf.clone()),
            Duration::from_secs(3600),
            Duration::ZERO,
        );
        p.update(start, 1, 0, 1);
        p.update(start, 2, 0, 1);
        p.clear();
        p.clear();
        let text = buf.text();
        // (The rate depends on the clock: not compared.)
        assert!(
            text.starts_with("\r\x1b[K1 B sent, 0 B received, "),
            "{text:?}"
        );
        assert!(text.ends_with(" Mbit/s, 1 subflow\r\x1b[K"), "{text:?}");
        assert_eq!(text.matches("sent").count(), 1, "{text:?}");
        assert_eq!(text.matches("\r\x1b[K").count(), 2, "{text:?}");
    }

    #[test]
    fn the_closing_notice_says_what_is_still_queued() {
        assert_eq!(
            closing_notice(0),
            "interrupted: closing gracefully; a second signal aborts"
        );
        assert_eq!(
            closing_notice(50_000),
            "interrupted: closing gracefully once the peer takes the 48.8 KiB still queued; \
             a second signal aborts"
        );
    }
}
