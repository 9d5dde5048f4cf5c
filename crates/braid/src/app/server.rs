//! `braid listen`'s application: accept connections, each served by its own task (sink,
//! echo, or write out), and report over all of them. A first signal stops accepting and
//! closes every connection gracefully; a second aborts them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{
    connection_error, counters, linger, stream_error, AppError, ConnReport, Options, ServerMode,
    Status, Totals, APP_CHUNK,
};
use crate::report::Report;
use crate::{Endpoint, MptcpStream, StreamControl};

/// What the connections' tasks share: the byte tallies and the output.
struct Common {
    totals: Totals,
    out: Option<Box<dyn std::io::Write + Send>>,
    echo: bool,
    /// Bytes queued for sending not yet acknowledged, per live connection.
    controls: Vec<StreamControl>,
}

type Shared = Arc<Mutex<Common>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Common> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The phase every connection follows: 0 run, 1 close gracefully now, 2 abort.
type Phase = watch::Receiver<u8>;

/// How one connection ended.
struct Ended {
    report: ConnReport,
    error: Option<AppError>,
    rtt: std::time::Duration,
}

/// Runs the server until `once` is satisfied or a signal ends it; the report comes back
/// whatever happened.
pub async fn run_server(
    ep: &Endpoint,
    port: u16,
    mode: ServerMode,
    once: bool,
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
    let report = c
        .totals
        .report("server", &[], counters(ep), result.as_ref().err());
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
    let mut listener = Some(listener);
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    let mut interrupted = false;
    let mut aborted = false;
    let mut max_rtt = std::time::Duration::ZERO;
    let mut first_error: Option<AppError> = None;
    loop {
        tokio::select! {
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
                        c.controls.retain(|k| k.info().is_some());
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
                    Err(_) => continue,
                };
                max_rtt = max_rtt.max(ended.rtt);
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

enum Step {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<()>),
    Phase(u8),
}

/// The phase now (a dropped sender counts as an abort).
fn phase_now(changed: Result<(), watch::error::RecvError>, phase: &Phase) -> u8 {
    if changed.is_ok() {
        *phase.borrow()
    } else {
        2
    }
}

/// Serves one connection until it closes.
async fn connection(
    mut stream: MptcpStream,
    remote: SocketAddr,
    common: Shared,
    mut phase: Phase,
) -> Ended {
    let echo = lock(&common).echo;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = vec![0u8; APP_CHUNK];
    let mut failure: Option<AppError> = None;
    let mut closing = false;
    let mut aborted = false;
    // Receive (and echo) until the peer's EOF; then close our direction.
    'conn: loop {
        let step = tokio::select! {
            r = stream.read(&mut buf) => Step::Read(r),
            changed = phase.changed() => Step::Phase(phase_now(changed, &phase)),
        };
        let n = match step {
            Step::Read(Ok(0)) => break,
            Step::Read(Ok(n)) => n,
            Step::Read(Err(e)) | Step::Wrote(Err(e)) => {
                failure = Some(stream_error(remote, e, true));
                break;
            }
            Step::Wrote(Ok(())) => continue,
            Step::Phase(p) => {
                if p >= 2 {
                    aborted = true;
                    break;
                }
                closing = true;
                stream.control().shutdown();
                continue;
            }
        };
        let data = &buf[..n];
        received += n as u64;
        let write_err = {
            let mut c = lock(&common);
            c.totals.received.update(data);
            c.out.as_mut().and_then(|w| w.write_all(data).err())
        };
        if let Some(source) = write_err {
            failure = Some(AppError::Io {
                what: "writing output",
                source,
            });
            aborted = true;
            break;
        }
        if echo && !closing {
            // Echo stops reading while the peer does not take what goes back.
            let step = tokio::select! {
                r = stream.write_all(data) => Step::Wrote(r),
                changed = phase.changed() => Step::Phase(phase_now(changed, &phase)),
            };
            match step {
                Step::Wrote(Ok(())) => {
                    sent += n as u64;
                    lock(&common).totals.sent.update(data);
                }
                Step::Wrote(Err(e)) => {
                    failure = Some(stream_error(remote, e, true));
                    break 'conn;
                }
                Step::Phase(p) if p >= 2 => {
                    aborted = true;
                    break 'conn;
                }
                _ => {
                    // Closing: what is not queued yet is not echoed any more.
                    closing = true;
                    stream.control().shutdown();
                }
            }
        }
    }
    if aborted {
        stream.abort();
    } else if failure.is_none() {
        let _ = stream.shutdown().await;
    }
    let end = if aborted {
        None
    } else {
        loop {
            let step = tokio::select! {
                c = stream.closed() => Ok(c),
                changed = phase.changed() => Err(phase_now(changed, &phase)),
            };
            match step {
                Ok(c) => break c,
                Err(p) if p >= 2 => {
                    stream.abort();
                    break None;
                }
                Err(_) => {}
            }
        }
    };
    let info = stream.info();
    let error = match (end, failure) {
        (_, Some(f)) => Some(f),
        (Some(e), None) => Some(connection_error(remote, e, true)),
        (None, None) => None,
    };
    Ended {
        report: ConnReport::of(info.as_ref(), stream.local_addr(), remote, sent, received),
        error,
        rtt: info.and_then(|i| i.rtt).unwrap_or_default(),
    }
}
