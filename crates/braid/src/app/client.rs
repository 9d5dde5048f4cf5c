//! `braid connect`'s application: open the connection (a signal or `--connect-timeout`
//! gives the attempt up; a notice at the first SYN timeout), join the extra subflows, send
//! the source while receiving into the output, close, and report.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant as TokioInstant};

use super::{
    connection_error, counters, linger, paths_json, stream_error, AppError, ConnReport, JoinSpec,
    Options, Output, Source, Status, Totals, APP_CHUNK,
};
use crate::health::{self, DeviceState};
use crate::report::Report;
use crate::stream::PatternStream;
use crate::{Endpoint, MptcpStream, PathInfo};

/// What path `index`'s device looks like now, as the device itself tells.
pub(crate) fn device_state(ep: &Endpoint, index: usize, p: &PathInfo) -> DeviceState {
    ep.path_state(index).unwrap_or(DeviceState {
        link: None,
        created: p.created,
    })
}

/// A warning for every path whose device cannot carry packets now.
pub(crate) fn warn_unusable_paths(ep: &Endpoint, opts: &mut Options) {
    for (i, p) in ep.paths().iter().enumerate() {
        if let Some(w) = health::start_warning(&p.name, p.addr, device_state(ep, i, p)) {
            opts.notice(&w);
        }
    }
}

/// Runs the client: the result, and the report whatever happened (after an error it says
/// how far the transfer got and names the error).
pub async fn run_client(
    ep: &Endpoint,
    remote: SocketAddr,
    source: Source,
    output: Output,
    joins: Vec<JoinSpec>,
    mut opts: Options,
) -> (Result<Status, AppError>, Report) {
    let mut totals = Totals::new();
    let mut live = None;
    let result = client(
        ep,
        remote,
        source,
        output,
        joins,
        &mut opts,
        &mut totals,
        &mut live,
    )
    .await;
    if let Some(p) = &mut opts.progress {
        p.clear();
    }
    let live: Vec<ConnReport> = live.into_iter().collect();
    let mut report = totals.report("client", &live, counters(ep), result.as_ref().err());
    report.extra.insert("paths".to_owned(), paths_json(ep));
    report
        .extra
        .insert("workers".to_owned(), serde_json::Value::from(ep.workers()));
    (result, report)
}

#[allow(clippy::too_many_arguments)]
async fn client(
    ep: &Endpoint,
    remote: SocketAddr,
    source: Source,
    mut output: Output,
    joins: Vec<JoinSpec>,
    opts: &mut Options,
    totals: &mut Totals,
    live: &mut Option<ConnReport>,
) -> Result<Status, AppError> {
    warn_unusable_paths(ep, opts);
    let path = ep
        .paths()
        .into_iter()
        .next()
        .filter(|p| p.addr.is_ipv4() == remote.is_ipv4())
        .ok_or(AppError::NoPathForFamily(remote))?;
    let local = SocketAddr::new(path.addr, 0);
    let mut stream = ep
        .start_connect(local, remote)
        .map_err(|source| AppError::Io {
            what: "connect",
            source,
        })?;
    let started = std::time::Instant::now();
    totals.started = Some(started);
    if let Err(e) = connecting(ep, &stream, remote, &path, opts).await {
        // The report of a failed attempt still names the connection tried.
        *live = Some(ConnReport::of(
            stream.info().as_ref(),
            stream.local_addr(),
            remote,
            0,
            0,
        ));
        return Err(e);
    }
    *live = Some(ConnReport::of(None, stream.local_addr(), remote, 0, 0));

    if !joins.is_empty() && !stream.is_mptcp() {
        opts.notice(&format!("{remote} does not speak MPTCP: no extra subflows"));
    } else {
        for j in &joins {
            //= rfc8684#3.2
            //= Once the connection runs MPTCP, further subflows join it with MP_JOIN from
            //  other local addresses.
            if let Err(e) = stream.open_subflow(j.local, j.remote, j.backup) {
                opts.notice(&format!(
                    "cannot open a subflow from {} to {}: {e}",
                    j.local, j.remote
                ));
            }
        }
    }

    let control = stream.control();
    let mut pattern = PatternStream::new();
    let sent = std::cell::RefCell::new(crate::stream::Tally::new());
    let received = std::cell::RefCell::new(crate::stream::Tally::new());
    let mut interrupted = false;
    let mut aborted = false;
    let mut failure: Option<Result<AppError, std::io::Error>> = None;
    {
        let (mut rd, mut wr) = stream.split();
        let send = async {
            let mut chunk = vec![0u8; APP_CHUNK];
            match source {
                Source::Nothing => {}
                Source::Timed(d) => {
                    let until = std::time::Instant::now() + d;
                    // The pattern continues from what each write accepted.
                    let mut off = chunk.len();
                    loop {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if off == chunk.len() {
                            pattern.fill(&mut chunk);
                            off = 0;
                        }
                        let Ok(r) = tokio::time::timeout(left, wr.write(&chunk[off..])).await
                        else {
                            break;
                        };
                        let n = r.map_err(Err)?;
                        sent.borrow_mut().update(&chunk[off..off + n]);
                        off += n;
                    }
                }
                Source::Pattern(mut remaining) => {
                    while remaining > 0 {
                        let n = usize::try_from(remaining)
                            .unwrap_or(usize::MAX)
                            .min(APP_CHUNK);
                        let buf = &mut chunk[..n];
                        pattern.fill(buf);
                        write_counted(&mut wr, buf, &sent).await.map_err(Err)?;
                        remaining -= n as u64;
                    }
                }
                Source::Reader(file) => {
                    let mut file = tokio::fs::File::from_std(file);
                    loop {
                        let n = file.read(&mut chunk).await.map_err(|source| {
                            Ok(AppError::Io {
                                what: "reading input",
                                source,
                            })
                        })?;
                        if n == 0 {
                            break;
                        }
                        let buf = &chunk[..n];
                        write_counted(&mut wr, buf, &sent).await.map_err(Err)?;
                    }
                }
            }
            wr.shutdown().await.map_err(Err)?;
            Ok::<(), Result<AppError, std::io::Error>>(())
        };
        let recv = async {
            let mut buf = vec![0u8; APP_CHUNK];
            loop {
                let n = rd.read(&mut buf).await.map_err(Err)?;
                if n == 0 {
                    return Ok::<(), Result<AppError, std::io::Error>>(());
                }
                let data = &buf[..n];
                received.borrow_mut().update(data);
                if let Output::Writer(w) = &mut output {
                    w.write_all(data).map_err(|source| {
                        Ok(AppError::Io {
                            what: "writing output",
                            source,
                        })
                    })?;
                }
            }
        };
        tokio::pin!(send);
        tokio::pin!(recv);
        let (mut send_done, mut recv_done) = (false, false);
        let mut tick = tokio::time::interval(progress_cadence(opts));
        let every = opts.interval.unwrap_or(Duration::from_secs(3600));
        let mut report_tick = tokio::time::interval_at(TokioInstant::now() + every, every);
        let mut intervals = super::interval::Intervals::new(std::time::Instant::now());
        while !(send_done && recv_done) {
            tokio::select! {
                r = &mut send, if !send_done => {
                    send_done = true;
                    if let Err(e) = r { failure = Some(e); break; }
                }
                r = &mut recv, if !recv_done => {
                    recv_done = true;
                    if let Err(e) = r { failure = Some(e); break; }
                }
                Some(()) = opts.interrupts.recv() => {
                    if interrupted {
                        aborted = true;
                        control.abort();
                        break;
                    }
                    interrupted = true;
                    // Stop sending more, close gracefully now (the DATA_FIN waits behind what
                    // is queued, which a peer that does not read may never take), and say
                    // what a second signal does.
                    send_done = true;
                    control.shutdown();
                    opts.notice(&super::progress::closing_notice(control.unacked()));
                }
                _ = report_tick.tick(), if opts.interval.is_some() => {
                    let conns: Vec<_> = control.info().into_iter().collect();
                    let line = intervals.line(&conns, std::time::Instant::now());
                    opts.notice(&line);
                }
                _ = tick.tick() => {
                    for n in control.take_notes() {
                        opts.notice(&n);
                    }
                    if let Some(p) = &mut opts.progress {
                        let info = control.info();
                        p.update(started, sent.borrow().bytes(), received.borrow().bytes(),
                            ConnReport::open_subflows(info.as_ref()));
                    }
                }
            }
        }
        // The halves borrow the stream: they end here, before it is used again.
    }
    totals.sent = sent.into_inner();
    totals.received = received.into_inner();
    for n in stream.take_notes() {
        opts.notice(&n);
    }
    let established = true;
    let end = if aborted {
        None
    } else {
        // Wait for the close to complete (a second signal still aborts).
        tokio::select! {
            c = stream.closed() => c,
            Some(()) = opts.interrupts.recv() => {
                aborted = true;
                stream.abort();
                None
            }
        }
    };
    totals.ended = Some(std::time::Instant::now());
    let info = stream.info();
    *live = Some(ConnReport::of(
        info.as_ref(),
        stream.local_addr(),
        remote,
        totals.sent.bytes(),
        totals.received.bytes(),
    ));
    if aborted {
        let rtt = info.as_ref().and_then(|i| i.rtt).unwrap_or_default();
        drop(stream);
        tokio::time::sleep(linger(rtt)).await;
        return Err(AppError::Aborted);
    }
    if let Some(e) = end {
        return Err(connection_error(remote, e, established));
    }
    if let Some(f) = failure {
        return Err(match f {
            Ok(app) => app,
            Err(io) => stream_error(remote, io, established),
        });
    }
    if let Output::Writer(w) = &mut output {
        w.flush().map_err(|source| AppError::Io {
            what: "writing output",
            source,
        })?;
    }
    if opts.summary && !interrupted {
        let protocol = super::progress::protocol_name(
            ep.mptcp_enabled(),
            info.as_ref().is_some_and(|i| i.mptcp),
            info.as_ref().is_some_and(|i| i.checksum),
        );
        let line = super::progress::summary_line(
            totals.sent.bytes(),
            totals.received.bytes(),
            started.elapsed(),
            live.as_ref().map_or(1, |c| c.subflows.len()),
            protocol,
        );
        opts.notice(&line);
    }
    Ok(if interrupted {
        Status::Interrupted
    } else {
        Status::Clean
    })
}

/// Writes all of `buf`, counting each part as the stream takes it: when a signal stops the
/// sending in the middle of a chunk, the count (and hash) is still what the peer gets.
async fn write_counted<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut buf: &[u8],
    sent: &std::cell::RefCell<crate::stream::Tally>,
) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = w.write(buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        sent.borrow_mut().update(&buf[..n]);
        buf = &buf[n..];
    }
    Ok(())
}

/// Waits for the handshake: a signal gives the attempt up at once, `--connect-timeout`
/// after its time; at the first SYN timeout a notice says nothing answered and what the
/// path's device looks like.
async fn connecting(
    ep: &Endpoint,
    stream: &MptcpStream,
    remote: SocketAddr,
    path: &PathInfo,
    opts: &mut Options,
) -> Result<(), AppError> {
    let start = TokioInstant::now();
    let first = health::first_syn_timeout();
    let hint_at = start + first;
    let give_up = opts.connect_timeout.map(|d| start + d);
    let mut hinted = false;
    let mut tick = tokio::time::interval(progress_cadence(opts));
    let started = std::time::Instant::now();
    loop {
        tokio::select! {
            r = stream.established() => {
                return r.map_err(|e| stream_error(remote, e, false));
            }
            Some(()) = opts.interrupts.recv() => {
                stream.abort();
                return Err(AppError::InterruptedConnecting(remote));
            }
            _ = sleep_until(give_up.unwrap_or(start)), if give_up.is_some() => {
                stream.abort();
                return Err(AppError::ConnectTimedOut {
                    remote,
                    after: opts.connect_timeout.unwrap_or(Duration::ZERO),
                });
            }
            _ = sleep_until(hint_at), if !hinted => {
                hinted = true;
                let line = health::no_answer_notice(
                    remote, &path.name, path.addr, device_state(ep, 0, path), first);
                opts.notice(&line);
            }
            _ = tick.tick() => {
                if let Some(p) = &mut opts.progress {
                    p.connecting(started, remote);
                }
            }
        }
    }
}

/// How often the loop offers the progress line an update (the line's own cadence; with no
/// line, the default, for the notes the same tick drains).
fn progress_cadence(opts: &Options) -> Duration {
    opts.progress
        .as_ref()
        .map_or(super::PROGRESS_EVERY, |p| p.cadence())
}
