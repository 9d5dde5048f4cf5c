//! `braid listen`'s application: accept connections, each served by its own task (sink,
//! echo, or write out; and with `--send` / `--in`, send to each), and report over all of
//! them. A first signal stops accepting and closes every connection gracefully; a second
//! aborts them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant as TokioInstant;

use super::{
    connection_error, counters, linger, paths_json, stream_error, AppError, ConnReport, Options,
    ServerMode, Status, Totals, APP_CHUNK,
};
use crate::report::Report;
use crate::sync::lock;
use crate::{Endpoint, MptcpStream, StreamControl};

/// What the connections' tasks share: the byte tallies and the output.
struct Common {
    totals: Totals,
    out: Option<Box<dyn std::io::Write + Send>>,
    echo: bool,
    /// The live connections, for the first signal's notice and `--interval`.
    controls: Vec<StreamControl>,
    /// What each connection is sent (`--send`, `--in`).
    send: Option<ServerSend>,
    /// Print one line per finished connection; MPTCP was asked for.
    summary: bool,
    mptcp_asked: bool,
}

/// What `braid listen --send N | --in FILE` sends on every connection.
#[derive(Debug, Clone)]
pub enum ServerSend {
    /// N bytes of the pattern stream.
    Pattern(u64),
    /// The file (opened again for each connection).
    File(std::path::PathBuf),
}

type Shared = Arc<Mutex<Common>>;

/// The phase every connection follows: 0 run, 1 close gracefully now, 2 abort.
type Phase = watch::Receiver<u8>;

/// How one connection ended.
struct Ended {
    report: ConnReport,
    error: Option<AppError>,
    rtt: std::time::Duration,
    /// The connection's summary line.
    summary: String,
}

/// Runs the server until `once` is satisfied or a signal ends it; the report comes back
/// whatever happened.
pub async fn run_server(
    ep: &Endpoint,
    port: u16,
    mode: ServerMode,
    once: bool,
    send: Option<ServerSend>,
    mut opts: Options,
) -> (Result<Status, AppError>, Report) {
    super::client::warn_unusable_paths(ep, &mut opts);
    let (echo, out) = match mode {
        ServerMode::Sink => (false, None),
        ServerMode::Echo => (true, None),
        ServerMode::Out(w) => (false, Some(w)),
    };
    let common: Shared = Arc::new(Mutex::new(Common {
        totals: Totals::new(),
        out,
        echo,
        controls: Vec::new(),
        send,
        summary: opts.summary,
        mptcp_asked: ep.mptcp_enabled(),
    }));
    let result = serve(ep, port, once, &mut opts, &common).await;
    let result = result.and_then(|s| {
        let mut c = lock(&common);
        match c.out.as_mut().map(|w| w.flush()) {
            Some(Err(source)) => Err(AppError::Io {
                what: "writing output",
                source,
            }),
            _ => Ok(s),
        }
    });
    let c = lock(&common);
    let mut report = c
        .totals
        .report("server", &[], counters(ep), result.as_ref().err());
    report.extra.insert("paths".to_owned(), paths_json(ep));
    report
        .extra
        .insert("workers".to_owned(), serde_json::Value::from(ep.workers()));
    (result, report)
}

async fn serve(
    ep: &Endpoint,
    port: u16,
    once: bool,
    opts: &mut Options,
    common: &Shared,
) -> Result<Status, AppError> {
    let listener = ep.listen(port).map_err(|source| AppError::Io {
        what: "listen",
        source,
    })?;
    // Said once every worker listens: whoever waits for this line may connect at once.
    let proto = if ep.mptcp_enabled() { "mptcp" } else { "tcp" };
    for p in ep.paths() {
        let addr = std::net::SocketAddr::new(p.addr, port);
        eprintln!("braid: listening on {addr} via {} ({proto})", p.name);
    }
    let mut listener = Some(listener);
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    let mut interrupted = false;
    let mut aborted = false;
    let mut max_rtt = std::time::Duration::ZERO;
    let mut first_error: Option<AppError> = None;
    let every = opts
        .interval
        .unwrap_or(std::time::Duration::from_secs(3600));
    let mut report_tick = tokio::time::interval_at(TokioInstant::now() + every, every);
    let mut intervals = super::interval::Intervals::new(std::time::Instant::now());
    loop {
        tokio::select! {
            _ = report_tick.tick(), if opts.interval.is_some() => {
                let conns: Vec<_> = lock(common).controls.iter().filter_map(StreamControl::info).collect();
                let line = intervals.line(&conns, std::time::Instant::now());
                opts.notice(&line);
            }
            acc = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            }, if listener.is_some() => {
                match acc {
                    Ok((stream, remote)) => {
                        let now = std::time::Instant::now();
                        let mut c = lock(common);
                        c.totals.started.get_or_insert(now);
                        // Gone connections are forgotten now and then: amortized, no walk
                        // over every connection at each accept.
                        if c.controls.len() >= 64 && c.controls.len().is_power_of_two() {
                            c.controls.retain(StreamControl::is_alive);
                        }
                        c.controls.push(stream.control());
                        drop(c);
                        tasks.spawn(connection(stream, remote, common.clone(), phase_rx.clone()));
                    }
                    Err(source) => return Err(AppError::Io { what: "accept", source }),
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let ended = match done {
                    Ok(e) => e,
                    // A connection's task panicked: a bug, which must not pass for a
                    // connection that ended (its stream was dropped, the peer reset).
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => continue,
                };
                max_rtt = max_rtt.max(ended.rtt);
                if opts.summary && ended.error.is_none() {
                    opts.notice(&ended.summary);
                }
                {
                    let mut c = lock(common);
                    c.totals.ended = Some(std::time::Instant::now());
                    c.totals.conns.push(ended.report);
                }
                if let Some(e) = ended.error {
                    if once && !aborted {
                        first_error = Some(e);
                        break;
                    }
                    opts.notice(&e.to_string());
                }
                if once || (interrupted && tasks.is_empty()) {
                    break;
                }
            }
            Some(()) = opts.interrupts.recv() => {
                if interrupted {
                    aborted = true;
                    let _ = phase_tx.send(2);
                    break;
                }
                interrupted = true;
                // Shutting down: no new connections.
                listener = None;
                let _ = phase_tx.send(1);
                if tasks.is_empty() {
                    break;
                }
                let unacked = lock(common).controls.iter().map(StreamControl::unacked).sum();
                opts.notice(&super::progress::closing_notice(unacked));
            }
        }
    }
    drop(listener);
    if aborted {
        // Every task aborts its connection at once; collect their reports.
        while let Some(done) = tasks.join_next().await {
            if let Ok(e) = done {
                max_rtt = max_rtt.max(e.rtt);
                lock(common).totals.conns.push(e.report);
            }
        }
        tokio::time::sleep(linger(max_rtt)).await;
        return Err(AppError::Aborted);
    }
    // Connections still open when a `once` server ends are finished where they stand.
    tasks.abort_all();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Status::Clean)
}

/// What one of a connection's loops stopped on.
enum Stop {
    /// Done (EOF received, or everything sent).
    Done,
    /// The first signal: close gracefully now.
    Closing,
    /// The second signal (or the server going away): abort.
    Abort,
    Failed(AppError),
}

/// The phase now (a dropped sender counts as an abort).
fn phase_now(changed: Result<(), watch::error::RecvError>, phase: &Phase) -> u8 {
    if changed.is_ok() {
        *phase.borrow()
    } else {
        2
    }
}

/// Receives (and echoes with `echo`) until the peer's EOF or a signal.
async fn receive(
    rd: &mut crate::api::OwnedReadHalf,
    mut echo: Option<&mut crate::api::OwnedWriteHalf>,
    remote: SocketAddr,
    common: &Shared,
    mut phase: Phase,
    counts: &mut (u64, u64),
) -> Stop {
    let mut buf = vec![0u8; APP_CHUNK];
    loop {
        let r = tokio::select! {
            r = rd.read(&mut buf) => r,
            changed = phase.changed() => match phase_now(changed, &phase) {
                p if p >= 2 => return Stop::Abort,
                // Closing: the echo stops; the peer's data is still taken until its EOF.
                _ => { echo = None; continue; }
            },
        };
        let n = match r {
            Ok(0) => return Stop::Done,
            Ok(n) => n,
            Err(e) => return Stop::Failed(stream_error(remote, e, true)),
        };
        let data = &buf[..n];
        counts.1 += n as u64;
        let write_err = {
            let mut c = lock(common);
            c.totals.received.update(data);
            c.out.as_mut().and_then(|w| w.write_all(data).err())
        };
        if let Some(source) = write_err {
            return Stop::Failed(AppError::Io {
                what: "writing output",
                source,
            });
        }
        if let Some(wr) = echo.as_deref_mut() {
            // Echo stops reading while the peer does not take what goes back; what each
            // write took is counted, so a signal in the middle loses no count.
            let mut off = 0;
            while off < n {
                let r = tokio::select! {
                    r = wr.write(&data[off..]) => r,
                    changed = phase.changed() => match phase_now(changed, &phase) {
                        p if p >= 2 => return Stop::Abort,
                        _ => { echo = None; break; }
                    },
                };
                let k = match r {
                    Ok(k) => k,
                    Err(e) => return Stop::Failed(stream_error(remote, e, true)),
                };
                counts.0 += k as u64;
                lock(common).totals.sent.update(&data[off..off + k]);
                off += k;
            }
        }
    }
}

/// Sends `what` (`--send` / `--in`) until done or a signal.
async fn send(
    wr: &mut crate::api::OwnedWriteHalf,
    what: ServerSend,
    remote: SocketAddr,
    common: &Shared,
    mut phase: Phase,
    counts: &mut u64,
) -> Stop {
    let mut chunk = vec![0u8; APP_CHUNK];
    let mut pattern = crate::stream::PatternStream::new();
    let (mut remaining, mut file) = match what {
        ServerSend::Pattern(n) => (n, None),
        ServerSend::File(path) => match tokio::fs::File::open(&path).await {
            Ok(f) => (u64::MAX, Some(f)),
            Err(source) => {
                return Stop::Failed(AppError::Io {
                    what: "opening --in",
                    source,
                })
            }
        },
    };
    while remaining > 0 {
        let n = match &mut file {
            None => {
                let n = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(APP_CHUNK);
                pattern.fill(&mut chunk[..n]);
                remaining -= n as u64;
                n
            }
            Some(f) => match f.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    return Stop::Failed(AppError::Io {
                        what: "reading input",
                        source,
                    })
                }
            },
        };
        let data = &chunk[..n];
        let r = tokio::select! {
            r = wr.write_all(data) => r,
            changed = phase.changed() => match phase_now(changed, &phase) {
                p if p >= 2 => return Stop::Abort,
                _ => return Stop::Closing,
            },
        };
        if let Err(e) = r {
            return Stop::Failed(stream_error(remote, e, true));
        }
        *counts += n as u64;
        lock(common).totals.sent.update(data);
    }
    if let Err(e) = wr.shutdown().await {
        return Stop::Failed(stream_error(remote, e, true));
    }
    Stop::Done
}

/// Serves one connection until it closes.
async fn connection(
    stream: MptcpStream,
    remote: SocketAddr,
    common: Shared,
    phase: Phase,
) -> Ended {
    let started = std::time::Instant::now();
    let (echo, what, summary, mptcp_asked) = {
        let c = lock(&common);
        (c.echo, c.send.clone(), c.summary, c.mptcp_asked)
    };
    let ctl = stream.control();
    let local = stream.local_addr();
    let (mut rd, mut wr) = stream.into_split();
    let mut counts = (0u64, 0u64);
    let mut sent_by_sender = 0u64;
    let (echo_wr, send_wr) = if echo {
        (Some(&mut wr), None)
    } else {
        (None, Some(&mut wr))
    };
    let recv = receive(
        &mut rd,
        echo_wr,
        remote,
        &common,
        phase.clone(),
        &mut counts,
    );
    let sending = async {
        match (what, send_wr) {
            (Some(w), Some(wr)) => {
                send(wr, w, remote, &common, phase.clone(), &mut sent_by_sender).await
            }
            _ => Stop::Done,
        }
    };
    let (r, s) = tokio::join!(recv, sending);
    let mut failure = None;
    let mut aborted = false;
    for stop in [r, s] {
        match stop {
            Stop::Abort => aborted = true,
            Stop::Failed(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
                aborted = true;
            }
            Stop::Done | Stop::Closing => {}
        }
    }
    let mut phase = phase;
    if aborted {
        ctl.abort();
    } else {
        // The peer's EOF came (or the first signal): close our direction too (after what
        // the sender queued).
        ctl.shutdown();
    }
    let end = if aborted {
        None
    } else {
        loop {
            let step = tokio::select! {
                c = ctl.closed() => Ok(c),
                changed = phase.changed() => Err(phase_now(changed, &phase)),
            };
            match step {
                Ok(c) => break c,
                Err(p) if p >= 2 => {
                    ctl.abort();
                    break None;
                }
                Err(_) => {}
            }
        }
    };
    let info = ctl.info();
    let (sent, received) = (counts.0 + sent_by_sender, counts.1);
    let error = match (end, failure) {
        (_, Some(f)) => Some(f),
        (Some(e), None) => Some(connection_error(remote, e, true)),
        (None, None) => None,
    };
    let report = ConnReport::of(info.as_ref(), local, remote, sent, received);
    let line = if summary {
        let protocol = super::progress::protocol_name(mptcp_asked, report.mptcp, report.checksum);
        format!(
            "{remote}: {}",
            super::progress::summary_line(
                sent,
                received,
                started.elapsed(),
                report.subflows.len(),
                protocol
            )
        )
    } else {
        String::new()
    };
    drop(rd);
    drop(wr);
    Ended {
        report,
        error,
        rtt: info.and_then(|i| i.rtt).unwrap_or_default(),
        summary: line,
    }
}
