//! The accept loops of both proxy roles, the per-connection tasks, their log lines, and the
//! shutdown on a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::relay::{relay, RelayEnd, RelayOptions, RelayOutcome, Reset, Side};
use super::socks5::{self, Auth};
use crate::app::{ConnReport, Interrupts, JoinSpec, LINGER_MAX};
use crate::report::SubflowReport;
use crate::{Endpoint, MptcpStream};

/// How long live connections may go on after the first SIGINT/SIGTERM before they are
/// reset.
pub const GRACE: Duration = Duration::from_secs(5);

/// How long a SOCKS5 client may take over its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);

/// What both roles share.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Reset a connection after nothing moved for this long (`None`: never).
    pub idle: Option<Duration>,
    /// Connections at once; more wait in the listening socket's backlog.
    pub max_connections: usize,
    /// Opening the far connection (MPTCP for the client, upstream TCP for the server) is
    /// given up after this long.
    pub connect_timeout: Duration,
    /// One JSON object per connection event on standard output, instead of log lines.
    pub json: bool,
}

/// What the server does with each connection.
#[derive(Debug, Clone)]
pub enum Far {
    /// Forward to this `HOST:PORT` (resolved for each connection).
    Upstream(String),
    /// Serve SOCKS5.
    Socks5(Auth),
}

/// How connection events are told: a line on standard error each, or (`--json`) a JSON
/// object on standard output.
#[derive(Clone)]
struct Log {
    json: bool,
}

/// What a connection's log line says.
struct Entry<'a> {
    id: u64,
    /// The side of the user's program: the local program (client role) or the MPTCP peer
    /// (server role).
    client: SocketAddr,
    /// Where the connection goes: the far proxy (client role) or the upstream target.
    remote: &'a str,
}

impl Log {
    fn open(&self, e: &Entry<'_>, mptcp: bool) {
        if self.json {
            let v = serde_json::json!({
                "event": "open", "id": e.id, "client": e.client.to_string(),
                "remote": e.remote, "mptcp": mptcp,
            });
            println!("{v}");
        } else {
            let how = if mptcp { "mptcp" } else { "tcp" };
            eprintln!(
                "braid: proxy #{} open {} -> {} ({how})",
                e.id, e.client, e.remote
            );
        }
    }

    fn failed(&self, e: &Entry<'_>, why: &str) {
        if self.json {
            let v = serde_json::json!({
                "event": "failed", "id": e.id, "client": e.client.to_string(),
                "remote": e.remote, "error": why,
            });
            println!("{v}");
        } else {
            eprintln!(
                "braid: proxy #{} {} -> {} failed: {why}",
                e.id, e.client, e.remote
            );
        }
    }

    fn closed(&self, e: &Entry<'_>, out: &RelayOutcome, took: Duration, conn: &ConnReport) {
        let error = match &out.end {
            RelayEnd::Failed(side, err) => Some(format!(
                "{} side: {err}",
                if *side == Side::A { "near" } else { "far" }
            )),
            _ => None,
        };
        if self.json {
            let v = serde_json::json!({
                "event": "close", "id": e.id, "client": e.client.to_string(),
                "remote": e.remote, "bytes_up": out.a_to_b, "bytes_down": out.b_to_a,
                "duration_s": took.as_secs_f64(), "mptcp": conn.mptcp,
                "end": out.end.word(), "error": error, "subflows": conn.subflows,
            });
            println!("{v}");
            return;
        }
        let subflows = conn
            .subflows
            .iter()
            .map(|s: &SubflowReport| format!("{} {}", s.local, mb(s.bytes_sent + s.bytes_received)))
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!(
            "braid: proxy #{} closed {} -> {}: {} up, {} down in {:.2} s, {}, {} subflow{} ({subflows}), end {}{}",
            e.id,
            e.client,
            e.remote,
            mb(out.a_to_b),
            mb(out.b_to_a),
            took.as_secs_f64(),
            if conn.mptcp { "mptcp" } else { "tcp" },
            conn.subflows.len(),
            if conn.subflows.len() == 1 { "" } else { "s" },
            out.end.word(),
            error.map(|e| format!(" ({e})")).unwrap_or_default(),
        );
    }
}

/// Bytes in MB, one decimal.
fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

/// The connection's subflows and MPTCP state for the close line, from its last snapshot.
fn conn_report(stream: &MptcpStream, up: u64, down: u64) -> ConnReport {
    ConnReport::of(
        stream.info().as_ref(),
        stream.local_addr(),
        stream.peer_addr(),
        up,
        down,
    )
}

/// Stops the relays: `true` once the process shuts down.
fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The accept loop both roles share: `accept` yields the next connection's task (`None`:
/// the listener failed, which ends the loop); on the first interrupt it stops accepting,
/// gives the live connections [`GRACE`], then stops them (at once on a second interrupt),
/// and waits until the endpoint has sent its resets.
async fn serve<F, Fut>(
    ep: &Endpoint,
    opts: &ProxyOptions,
    mut interrupts: Interrupts,
    mut accept: F,
) -> anyhow::Result<()>
where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Task>>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let failure = loop {
        tokio::select! {
            permit = slots.clone().acquire_owned() => {
                let Ok(permit) = permit else { break None };
                tokio::select! {
                    task = accept(stop_rx.clone()) => match task {
                        Ok(task) => {
                            tasks.spawn(async move {
                                task.await;
                                drop(permit);
                            });
                        }
                        Err(e) => break Some(e),
                    },
                    Some(()) = interrupts.recv() => break None,
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            Some(()) = interrupts.recv() => break None,
        }
    };
    // Finished tasks not yet reaped are not open connections.
    while tasks.try_join_next().is_some() {}
    if failure.is_none() && !tasks.is_empty() {
        eprintln!(
            "braid: proxy shutting down: {} connection{} open, {} s to finish (another signal \
             resets them now)",
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" },
            GRACE.as_secs()
        );
        let deadline = tokio::time::sleep(GRACE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = tasks.join_next() => if r.is_none() { break },
                () = &mut deadline => break,
                Some(()) = interrupts.recv() => break,
            }
        }
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // The resets of stopped connections go out before the process ends.
    let _ = tokio::time::timeout(LINGER_MAX, ep.wait_idle()).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One connection's work.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// `braid proxy client`: each TCP connection accepted on `listener` is carried over its own
/// MPTCP connection to `remote`, which then opens `joins`.
pub async fn run_client(
    ep: &Endpoint,
    listener: TcpListener,
    remote: SocketAddr,
    joins: Vec<JoinSpec>,
    opts: ProxyOptions,
    interrupts: Interrupts,
) -> anyhow::Result<()> {
    let log = Log { json: opts.json };
    let mut next_id = 0u64;
    let remote_text = remote.to_string();
    serve(ep, &opts, interrupts, |stop| {
        next_id += 1;
        let id = next_id;
        let (ep, joins, log, opts, remote_text) = (
            ep.clone(),
            joins.clone(),
            log.clone(),
            opts.clone(),
            remote_text.clone(),
        );
        let listener = &listener;
        async move {
            let (local, client) = listener
                .accept()
                .await
                .map_err(|e| anyhow::anyhow!("accepting local connections: {e}"))?;
            let task: Task = Box::pin(async move {
                let entry = Entry {
                    id,
                    client,
                    remote: &remote_text,
                };
                client_conn(&ep, local, remote, &joins, &opts, &log, &entry, stop).await;
            });
            Ok(task)
        }
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn client_conn(
    ep: &Endpoint,
    mut local: TcpStream,
    remote: SocketAddr,
    joins: &[JoinSpec],
    opts: &ProxyOptions,
    log: &Log,
    entry: &Entry<'_>,
    stop: watch::Receiver<bool>,
) {
    let _ = local.set_nodelay(true);
    let started = Instant::now();
    let connecting = tokio::time::timeout(opts.connect_timeout, ep.connect(remote));
    let mut stream = tokio::select! {
        r = connecting => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                local.reset();
                return log.failed(entry, &format!("connecting: {e}"));
            }
            Err(_) => {
                local.reset();
                let t = opts.connect_timeout.as_secs_f64();
                return log.failed(entry, &format!("connecting: no answer within {t:.1} s"));
            }
        },
        () = stopped(&stop) => {
            local.reset();
            return log.failed(entry, "the proxy is shutting down");
        }
    };
    let mptcp = stream.is_mptcp();
    if mptcp {
        for j in joins {
            //= rfc8684#3.2
            //= Once the connection runs MPTCP, further subflows join it with MP_JOIN from
            //  other local addresses.
            let _ = stream.open_subflow(j.local, j.remote, j.backup);
        }
    }
    log.open(entry, mptcp);
    let relay_opts = RelayOptions { idle: opts.idle };
    let out = relay(&mut local, &mut stream, &relay_opts, stopped(&stop)).await;
    let conn = conn_report(&stream, out.a_to_b, out.b_to_a);
    log.closed(entry, &out, started.elapsed(), &conn);
}

/// `braid proxy server`: each MPTCP connection accepted on `port` goes to `far`;
/// `listening` runs once the listener is there.
pub async fn run_server(
    ep: &Endpoint,
    port: u16,
    far: Far,
    opts: ProxyOptions,
    interrupts: Interrupts,
    listening: impl FnOnce(),
) -> anyhow::Result<()> {
    let listener = ep
        .listen(port)
        .map_err(|e| anyhow::anyhow!("cannot listen on port {port}: {e}"))?;
    listening();
    let log = Log { json: opts.json };
    let far = Arc::new(far);
    let mut next_id = 0u64;
    serve(ep, &opts, interrupts, |stop| {
        next_id += 1;
        let id = next_id;
        let (log, opts, far) = (log.clone(), opts.clone(), far.clone());
        let listener = &listener;
        async move {
            let (stream, peer) = listener
                .accept()
                .await
                .map_err(|e| anyhow::anyhow!("accepting MPTCP connections: {e}"))?;
            let task: Task = Box::pin(async move {
                server_conn(stream, peer, &far, &opts, &log, id, stop).await;
            });
            Ok(task)
        }
    })
    .await
}

async fn server_conn(
    stream: MptcpStream,
    peer: SocketAddr,
    far: &Far,
    opts: &ProxyOptions,
    log: &Log,
    id: u64,
    stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mptcp = stream.is_mptcp();
    let opened = tokio::select! {
        r = open_far(stream, far, opts) => r,
        () = stopped(&stop) => {
            let entry = Entry { id, client: peer, remote: "-" };
            return log.failed(&entry, "the proxy is shutting down");
        }
    };
    let (mut stream, mut upstream, target) = match opened {
        Ok(o) => o,
        Err(f) => {
            if let Some(mut s) = f.stream {
                // The client's proxy resets its program's connection in turn.
                s.reset();
            }
            let entry = Entry {
                id,
                client: peer,
                remote: &f.target,
            };
            return log.failed(&entry, &f.why);
        }
    };
    let entry = Entry {
        id,
        client: peer,
        remote: &target,
    };
    log.open(&entry, mptcp);
    let relay_opts = RelayOptions { idle: opts.idle };
    let out = relay(&mut stream, &mut upstream, &relay_opts, stopped(&stop)).await;
    let conn = conn_report(&stream, out.b_to_a, out.a_to_b);
    log.closed(&entry, &out, started.elapsed(), &conn);
}

/// A far connection that could not be opened.
struct OpenFailure {
    /// The MPTCP stream, when it is still to be dealt with (reset).
    stream: Option<MptcpStream>,
    target: String,
    why: String,
}

/// The upstream connection of an accepted MPTCP stream: to the fixed upstream, or where
/// its SOCKS5 request asks.
async fn open_far(
    stream: MptcpStream,
    far: &Far,
    opts: &ProxyOptions,
) -> Result<(MptcpStream, TcpStream, String), OpenFailure> {
    match far {
        Far::Upstream(target) => {
            let fail = |stream, why| OpenFailure {
                stream: Some(stream),
                target: target.clone(),
                why,
            };
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(target.as_str()).await {
                Ok(a) => a.collect(),
                Err(e) => return Err(fail(stream, format!("cannot resolve: {e}"))),
            };
            match socks5::connect_any(&addrs, opts.connect_timeout).await {
                Ok(up) => {
                    let _ = up.set_nodelay(true);
                    Ok((stream, up, target.clone()))
                }
                Err(e) => Err(fail(stream, format!("upstream: {e}"))),
            }
        }
        // A failure has been answered with its reply code; the stream closes.
        Far::Socks5(auth) => {
            let fail = |why| OpenFailure {
                stream: None,
                target: "socks5".into(),
                why,
            };
            match tokio::time::timeout(
                HANDSHAKE_LIMIT,
                socks5::serve(stream, auth, opts.connect_timeout),
            )
            .await
            {
                Ok(Ok(opened)) => Ok(opened),
                Ok(Err(e)) => Err(fail(e.to_string())),
                Err(_) => Err(fail(format!(
                    "no SOCKS5 request within {} s",
                    HANDSHAKE_LIMIT.as_secs()
                ))),
            }
        }
    }
}
