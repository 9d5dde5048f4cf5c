//! The applications of `braid connect` and `braid listen`, written on the library API
//! ([`crate::Endpoint`], [`crate::MptcpStream`]): send a pattern or a file, sink, echo or
//! write out what arrives; report what happened. Signals arrive as [`Interrupts`]: the
//! first closes gracefully (DATA_FIN), the second aborts (MP_FASTCLOSE).

mod client;
mod interval;
pub mod progress;
mod server;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use braid_proto::ConnectionError;
use tokio::sync::mpsc;

pub use client::run_client;
pub use progress::{Progress, PROGRESS_AFTER, PROGRESS_EVERY};
pub use server::{run_server, ServerSend};

use crate::report::{Report, SubflowReport, TcpStats};
use crate::stream::Tally;

/// Application chunk size.
pub(crate) const APP_CHUNK: usize = 65536;
/// How long an aborting run keeps the endpoint answering (plus two RTTs, at most
/// `LINGER_MAX`): a RST that the peer finds in its window but not at RCV.NXT draws a
/// challenge ACK, which the endpoint, no longer knowing the connection, answers with a RST
/// the peer accepts.
//= rfc5961#3.2 in-window RST not exactly at RCV.NXT: the receiver sends a challenge ACK
pub(crate) const LINGER_MIN: Duration = Duration::from_millis(200);
pub(crate) const LINGER_MAX: Duration = Duration::from_secs(2);

/// Where the bytes a client sends come from.
pub enum Source {
    /// Send nothing: close the sending direction at once.
    Nothing,
    /// `--send N`: N bytes of [`crate::stream::PatternStream`].
    Pattern(u64),
    /// `--in FILE` (or standard input): until end of file.
    Reader(std::fs::File),
    /// `--time S`: the pattern stream for this long.
    Timed(Duration),
}

/// Where received bytes go.
pub enum Output {
    /// Count and hash, then drop.
    Discard,
    /// `--out FILE` / `--out -`.
    Writer(Box<dyn Write + Send>),
}

/// What a server does with each connection.
pub enum ServerMode {
    /// Count and discard what arrives; close after the peer closes.
    Sink,
    /// Send back what arrives; close after the peer closes and everything went back.
    Echo,
    /// Write what arrives to the output; close after the peer closes.
    Out(Box<dyn Write + Send>),
}

/// An extra subflow a client opens once its connection runs MPTCP (`--subflow ADDR`, or
/// one per further `--path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinSpec {
    /// Our address: the path whose address it is carries the subflow.
    pub local: IpAddr,
    /// The peer's address and port (the connection's own, or one of the same host in the
    /// family of `local`).
    pub remote: SocketAddr,
    /// The MP_JOIN backup bit (`--backup ADDR`).
    pub backup: bool,
}

/// How a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Transfer complete, connection closed cleanly (or a server shut down on request).
    Clean,
    /// A client interrupted by SIGINT/SIGTERM: the connection was closed gracefully before
    /// the transfer completed.
    Interrupted,
}

/// SIGINT/SIGTERM (or a test's stand-in), one message per signal.
pub type Interrupts = mpsc::UnboundedReceiver<()>;

/// The signals of the process as [`Interrupts`] (a task forwards them).
pub fn process_interrupts() -> io::Result<Interrupts> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = int.recv() => {}
                Some(()) = term.recv() => {}
                else => return,
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// What a run needs besides its role.
pub struct Options {
    /// A client gives up connecting after this long (`--connect-timeout`).
    pub connect_timeout: Option<Duration>,
    /// The progress line, when asked for.
    pub progress: Option<Progress>,
    /// Where one-line notices go (standard error).
    pub notices: Box<dyn Write + Send>,
    pub interrupts: Interrupts,
    /// `--interval S`: per-subflow rates every S seconds, on the notice stream.
    pub interval: Option<Duration>,
    /// One summary line per finished connection on the notice stream (without `--json`).
    pub summary: bool,
}

impl Options {
    /// No progress line, notices to standard error, and interrupts from `rx`.
    pub fn new(interrupts: Interrupts) -> Options {
        Options {
            connect_timeout: None,
            progress: None,
            notices: Box::new(io::stderr()),
            interrupts,
            interval: None,
            summary: false,
        }
    }

    /// One line on the notice stream, `braid: ` first (the progress line cleared first).
    pub(crate) fn notice(&mut self, line: &str) {
        if let Some(p) = &mut self.progress {
            p.clear();
        }
        let _ = writeln!(self.notices, "braid: {line}");
        let _ = self.notices.flush();
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("connection refused by {0} (RST)")]
    Refused(SocketAddr),
    #[error("connection to {0} reset by peer")]
    Reset(SocketAddr),
    #[error("connection to {0} reset by peer (MP_FASTCLOSE)")]
    FastClosed(SocketAddr),
    #[error("connection to {0} timed out")]
    TimedOut(SocketAddr),
    #[error("aborted by a second signal (RST sent)")]
    Aborted,
    /// A signal while the client's connection was still being opened: the attempt was
    /// given up at once (nothing to close gracefully).
    #[error("interrupted while connecting to {0}")]
    InterruptedConnecting(SocketAddr),
    /// `--connect-timeout` passed before the connection was open.
    #[error("connect to {remote} timed out after {} s", after.as_secs_f64())]
    ConnectTimedOut { remote: SocketAddr, after: Duration },
    #[error("connection to {0} aborted: braid reset it (a protocol error)")]
    AbortedLocally(SocketAddr),
    #[error("connection to {remote} failed: {error}")]
    Connection {
        remote: SocketAddr,
        error: ConnectionError,
    },
    #[error("the first --path is not of the same address family as {0}")]
    NoPathForFamily(SocketAddr),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// How a connection's end reads in a one-line error.
pub(crate) fn connection_error(
    remote: SocketAddr,
    error: ConnectionError,
    established: bool,
) -> AppError {
    match error {
        ConnectionError::Refused => AppError::Refused(remote),
        ConnectionError::Reset if !established => AppError::Refused(remote),
        ConnectionError::Reset => AppError::Reset(remote),
        ConnectionError::FastClosed => AppError::FastClosed(remote),
        ConnectionError::TimedOut => AppError::TimedOut(remote),
        // Not a signal's abort (that one is reported as such by the caller): braid reset the
        // connection itself, over a protocol error.
        ConnectionError::Aborted => AppError::AbortedLocally(remote),
        error => AppError::Connection { remote, error },
    }
}

/// An I/O error of a stream call as a one-line error: the connection's end when the
/// engine named it.
pub(crate) fn stream_error(remote: SocketAddr, e: io::Error, established: bool) -> AppError {
    match e
        .get_ref()
        .and_then(|i| i.downcast_ref::<ConnectionError>())
        .copied()
    {
        Some(c) => connection_error(remote, c, established),
        None => AppError::Io {
            what: "connection",
            source: e,
        },
    }
}

/// One connection's part of the report: its subflows (or the connection itself for plain
/// TCP) and whether it ran MPTCP, with DSS checksums, to its end.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnReport {
    pub subflows: Vec<SubflowReport>,
    pub mptcp: bool,
    pub checksum: bool,
}

impl ConnReport {
    /// From the connection's last snapshot, and the application's own byte counts (used
    /// for a plain TCP connection).
    pub fn of(
        info: Option<&braid_proto::snapshot::ConnSnapshot>,
        local: SocketAddr,
        remote: SocketAddr,
        sent: u64,
        received: u64,
    ) -> ConnReport {
        if let Some(i) = info.filter(|i| i.mptcp && !i.subflows.is_empty()) {
            return ConnReport {
                subflows: i
                    .subflows
                    .iter()
                    .map(|s| SubflowReport {
                        id: s.id,
                        local: s.local.to_string(),
                        remote: s.remote.to_string(),
                        backup: s.backup,
                        bytes_sent: s.bytes_sent,
                        bytes_received: s.bytes_received,
                        rtt_ms: s.rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                        tcp: Some(TcpStats::of(s)),
                    })
                    .collect(),
                mptcp: true,
                checksum: i.checksum,
            };
        }
        ConnReport {
            subflows: vec![SubflowReport {
                id: 0,
                local: info.map_or(local, |i| i.local).to_string(),
                remote: remote.to_string(),
                backup: false,
                bytes_sent: sent,
                bytes_received: received,
                rtt_ms: info
                    .and_then(|i| i.rtt)
                    .map_or(0.0, |d| d.as_secs_f64() * 1e3),
                tcp: None,
            }],
            mptcp: false,
            checksum: false,
        }
    }

    /// Open subflows now (1 for plain TCP).
    pub fn open_subflows(info: Option<&braid_proto::snapshot::ConnSnapshot>) -> usize {
        match info.filter(|i| i.mptcp && !i.subflows.is_empty()) {
            Some(i) => i.subflows.iter().filter(|s| s.open).count(),
            None => 1,
        }
    }
}

/// What a run accumulates for its report.
pub(crate) struct Totals {
    pub sent: Tally,
    pub received: Tally,
    pub started: Option<std::time::Instant>,
    pub ended: Option<std::time::Instant>,
    pub conns: Vec<ConnReport>,
}

impl Totals {
    pub fn new() -> Totals {
        Totals {
            sent: Tally::new(),
            received: Tally::new(),
            started: None,
            ended: None,
            conns: Vec::new(),
        }
    }

    /// The report so far, with the endpoint's counters and the error, if any.
    pub fn report(
        &self,
        role: &str,
        live: &[ConnReport],
        counters: BTreeMap<String, u64>,
        error: Option<&AppError>,
    ) -> Report {
        let ended = self.ended.unwrap_or_else(std::time::Instant::now);
        let duration_s = self
            .started
            .map_or(0.0, |s| ended.saturating_duration_since(s).as_secs_f64());
        let all: Vec<&ConnReport> = self.conns.iter().chain(live).collect();
        let subflows = all.iter().flat_map(|c| c.subflows.clone()).collect();
        // MPTCP when every connection ran it to its end (no fallback).
        let mptcp = !all.is_empty() && all.iter().all(|c| c.mptcp);
        let checksum = mptcp && all.iter().all(|c| c.checksum);
        let moved = self.sent.bytes().max(self.received.bytes());
        let mut extra = BTreeMap::new();
        extra.insert("connections".to_owned(), serde_json::Value::from(all.len()));
        extra.insert(
            "mptcp_checksum".to_owned(),
            serde_json::Value::from(checksum),
        );
        if let Some(e) = error {
            extra.insert("error".to_owned(), serde_json::Value::from(e.to_string()));
        }
        Report {
            role: role.to_owned(),
            mptcp,
            bytes_sent: self.sent.bytes(),
            bytes_received: self.received.bytes(),
            sha256_sent: self.sent.hex(),
            sha256_received: self.received.hex(),
            duration_s,
            subflows,
            counters,
            scenario: None,
            integrity_ok: None,
            goodput_mbps: (duration_s > 0.0).then(|| moved as f64 * 8.0 / duration_s / 1e6),
            extra,
        }
    }
}

/// The endpoint's paths for the report: device, braid's address, and whether the device
/// has offloads (GSO writes, split GSO reads).
pub(crate) fn paths_json(ep: &crate::Endpoint) -> serde_json::Value {
    ep.paths()
        .iter()
        .map(|p| serde_json::json!({"dev": p.name, "addr": p.addr.to_string(), "offload": p.offload}))
        .collect()
}

/// The endpoint's counters as the report's map.
pub(crate) fn counters(ep: &crate::Endpoint) -> BTreeMap<String, u64> {
    ep.counters()
        .entries()
        .iter()
        .map(|&(k, v)| (k.to_owned(), v))
        .collect()
}

/// How long an aborting run keeps answering, from the largest RTT seen.
pub(crate) fn linger(rtt: Duration) -> Duration {
    (LINGER_MIN + 2 * rtt).min(LINGER_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_one_line_reasons() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let text = |e: ConnectionError, established| connection_error(a, e, established);
        // A reset during the handshake is a refusal; once established, a reset.
        assert!(matches!(
            text(ConnectionError::Reset, false),
            AppError::Refused(_)
        ));
        assert!(matches!(
            text(ConnectionError::Refused, true),
            AppError::Refused(_)
        ));
        assert!(matches!(
            text(ConnectionError::Reset, true),
            AppError::Reset(_)
        ));
        assert!(matches!(
            text(ConnectionError::FastClosed, true),
            AppError::FastClosed(_)
        ));
        assert!(matches!(
            text(ConnectionError::Aborted, true),
            AppError::AbortedLocally(_)
        ));
        assert!(text(ConnectionError::TimedOut, true)
            .to_string()
            .contains("timed out"));
        let lines = [
            (
                text(ConnectionError::Reset, false),
                "connection refused by 10.0.0.1:5000 (RST)",
            ),
            (
                text(ConnectionError::Reset, true),
                "connection to 10.0.0.1:5000 reset by peer",
            ),
            (
                text(ConnectionError::FastClosed, true),
                "connection to 10.0.0.1:5000 reset by peer (MP_FASTCLOSE)",
            ),
            (
                text(ConnectionError::TimedOut, true),
                "connection to 10.0.0.1:5000 timed out",
            ),
            (AppError::Aborted, "aborted by a second signal (RST sent)"),
            (
                AppError::InterruptedConnecting(a),
                "interrupted while connecting to 10.0.0.1:5000",
            ),
            (
                AppError::ConnectTimedOut {
                    remote: a,
                    after: Duration::from_millis(300),
                },
                "connect to 10.0.0.1:5000 timed out after 0.3 s",
            ),
        ];
        for (e, want) in lines {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn a_stream_error_names_the_connection_end_the_engine_gave() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let io_of = |e: ConnectionError| io::Error::new(io::ErrorKind::ConnectionReset, e);
        assert!(matches!(
            stream_error(a, io_of(ConnectionError::FastClosed), true),
            AppError::FastClosed(_)
        ));
        assert!(matches!(
            stream_error(a, io_of(ConnectionError::Reset), false),
            AppError::Refused(_)
        ));
        // Any other I/O error stays one, named as the connection's.
        let e = stream_error(a, io::Error::other("boom"), true);
        assert!(matches!(e, AppError::Io { .. }), "{e}");
        assert_eq!(e.to_string(), "connection: boom");
    }
}
