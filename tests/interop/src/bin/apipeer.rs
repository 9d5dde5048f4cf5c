//! apipeer: a tokio program that uses only braid's public library API (`braid::Endpoint`,
//! `MptcpStream`, `MptcpListener`), as a test peer for the Linux kernel's MPTCP.
//!
//! ```text
//! apipeer send --path DEV=ADDR [--path ...] --remote IP:PORT --bytes N
//!              [--join LOCAL_IP=REMOTE_IP:PORT ...]
//! apipeer recv --path DEV=ADDR [--path ...] --port P [--rate BYTES_PER_SEC] [--for SECONDS]
//! ```
//! `send` connects, opens the joins, writes N bytes of braid's pattern stream, shuts down
//! (DATA_FIN), reads to EOF and waits until the connection closed. `recv` listens (printing
//! `listening on port P` on stderr), accepts one connection (`accepted ADDR`), reads it to
//! EOF (at most `--rate` bytes a second), then shuts down. With `--for S` it stops reading
//! after S seconds, prints the report so far (`"stopped": true`) and exits at once, leaving
//! the connection as it is: no FIN, no RST, nothing more read or acknowledged.
//!
//! The end is one JSON line on stdout: the byte count and SHA-256 of the stream, `is_mptcp`,
//! and per-subflow figures from `MptcpStream::info`; `recv` adds the process's VmHWM and
//! VmRSS in KiB (from `/proc/self/status`): before any connection (`vm_hwm_idle_kib`), right
//! after accept (the baseline; what arrived before accept returned is in it already) and
//! the highest seen while reading. A failure is a JSON line too, with the `io::ErrorKind`
//! (`{"error_kind":"ConnectionReset","error":"...",...}`, the progress so far), and exit
//! status 1.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use braid::stream::{PatternStream, Tally};
use braid::{Endpoint, MptcpStream};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(name = "apipeer", about = "braid's library API as a test peer")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Connect, send N bytes of the pattern stream, shut down, read to EOF.
    Send {
        /// A path: TUN device and braid's address behind it (repeatable; the first one
        /// carries the connection).
        #[arg(long = "path", value_name = "DEV=ADDR", value_parser = parse_path, required = true)]
        paths: Vec<(String, IpAddr)>,
        #[arg(long)]
        remote: SocketAddr,
        #[arg(long)]
        bytes: u64,
        /// A further subflow (MP_JOIN) from braid's LOCAL_IP to REMOTE (repeatable).
        #[arg(long = "join", value_name = "LOCAL_IP=REMOTE_IP:PORT", value_parser = parse_join)]
        joins: Vec<(IpAddr, SocketAddr)>,
    },
    /// Accept one connection and read it to EOF.
    Recv {
        #[arg(long = "path", value_name = "DEV=ADDR", value_parser = parse_path, required = true)]
        paths: Vec<(String, IpAddr)>,
        #[arg(long)]
        port: u16,
        /// Read at most this many bytes a second.
        #[arg(long, value_name = "BYTES_PER_SEC")]
        rate: Option<u64>,
        /// Stop reading after this many seconds from the accept, reporting what was read.
        #[arg(long = "for", value_name = "SECONDS")]
        for_secs: Option<f64>,
    },
}

fn parse_path(s: &str) -> Result<(String, IpAddr), String> {
    let (dev, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("bad --path {s:?}: expected DEV=ADDR"))?;
    if dev.is_empty() {
        return Err(format!("bad --path {s:?}: no device"));
    }
    let addr = addr
        .parse()
        .map_err(|_| format!("bad --path {s:?}: {addr:?} is not an IP address"))?;
    Ok((dev.to_owned(), addr))
}

fn parse_join(s: &str) -> Result<(IpAddr, SocketAddr), String> {
    let (local, remote) = s
        .split_once('=')
        .ok_or_else(|| format!("bad --join {s:?}: expected LOCAL_IP=REMOTE_IP:PORT"))?;
    let local = local
        .parse()
        .map_err(|_| format!("bad --join {s:?}: {local:?} is not an IP address"))?;
    let remote = remote
        .parse()
        .map_err(|_| format!("bad --join {s:?}: {remote:?} is not a socket address"))?;
    Ok((local, remote))
}

/// A failure with what was done so far (merged into the error's JSON line).
struct Failure {
    error: io::Error,
    progress: Value,
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure {
            error,
            progress: json!({}),
        }
    }
}

fn endpoint(paths: &[(String, IpAddr)]) -> io::Result<Endpoint> {
    let mut b = Endpoint::builder();
    for (dev, addr) in paths {
        b = b.path(dev, *addr);
    }
    b.build()
}

/// Connection-level figures of the stream's last snapshot (data-level bytes for MPTCP).
fn conn(stream: &MptcpStream) -> Value {
    let Some(info) = stream.info() else {
        return Value::Null;
    };
    json!({
        "mptcp": info.mptcp,
        "fallback": info.fallback,
        "bytes_sent": info.bytes_sent,
        "bytes_acked": info.bytes_acked,
        "bytes_received": info.bytes_received,
        "retransmits": info.retransmits,
    })
}

/// Per-subflow figures of the stream's last snapshot.
fn subflows(stream: &MptcpStream) -> Value {
    let Some(info) = stream.info() else {
        return Value::Null;
    };
    info.subflows
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "local": s.local.to_string(),
                "remote": s.remote.to_string(),
                "backup": s.backup,
                "bytes_sent": s.bytes_sent,
                "bytes_acked": s.bytes_acked,
                "bytes_received": s.bytes_received,
                "retransmits": s.retransmits,
            })
        })
        .collect()
}

async fn send(
    paths: Vec<(String, IpAddr)>,
    remote: SocketAddr,
    bytes: u64,
    joins: Vec<(IpAddr, SocketAddr)>,
) -> Result<Value, Failure> {
    let ep = endpoint(&paths)?;
    let started = Instant::now();
    let mut stream = ep.connect(remote).await?;
    eprintln!("connected to {remote}");
    for (local, to) in &joins {
        stream.open_subflow(*local, *to, false)?;
    }
    let is_mptcp = stream.is_mptcp();
    let mut pattern = PatternStream::new();
    let mut sent = Tally::new();
    let mut buf = vec![0u8; 65536];
    let mut left = bytes;
    let fail = |e: io::Error, sent: &Tally, stage: &str, stream: &MptcpStream| Failure {
        error: e,
        progress: json!({
            "stage": stage,
            "bytes_sent": sent.bytes(),
            "is_mptcp": is_mptcp,
            "subflows": subflows(stream),
        }),
    };
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let chunk = &mut buf[..n];
        pattern.fill(chunk);
        if let Err(e) = stream.write_all(chunk).await {
            return Err(fail(e, &sent, "write", &stream));
        }
        sent.update(chunk);
        left -= n as u64;
    }
    if let Err(e) = stream.shutdown().await {
        return Err(fail(e, &sent, "shutdown", &stream));
    }
    let mut received = Tally::new();
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => received.update(&buf[..n]),
            Err(e) => return Err(fail(e, &sent, "read", &stream)),
        }
    }
    let closed = stream.closed().await;
    let secs = started.elapsed().as_secs_f64();
    for note in stream.take_notes() {
        eprintln!("note: {note}");
    }
    Ok(json!({
        "bytes_sent": sent.bytes(),
        "sha256_sent": sent.hex(),
        "bytes_received": received.bytes(),
        "is_mptcp": is_mptcp,
        "closed_error": closed.map(|e| format!("{e:?}")),
        "duration_s": secs,
        "conn": conn(&stream),
        "subflows": subflows(&stream),
        "offload": ep.paths().iter().map(|p| p.offload).collect::<Vec<_>>(),
    }))
}

/// VmHWM and VmRSS of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn recv(
    paths: Vec<(String, IpAddr)>,
    port: u16,
    rate: Option<u64>,
    for_secs: Option<f64>,
) -> Result<Value, Failure> {
    let ep = endpoint(&paths)?;
    let listener = ep.listen(port)?;
    let (hwm_idle, _) = memory_kib();
    eprintln!("listening on port {port}");
    let (mut stream, peer) = listener.accept().await?;
    let accepted = Instant::now();
    eprintln!("accepted {peer}");
    let is_mptcp = stream.is_mptcp();
    let (hwm_base, rss_base) = memory_kib();
    let (mut hwm_max, mut rss_max) = (hwm_base, rss_base);
    let deadline = match for_secs {
        Some(s) => Some(
            accepted
                + Duration::try_from_secs_f64(s).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("bad --for {s}"))
                })?,
        ),
        None => None,
    };
    let rate = rate.filter(|&r| r > 0);
    // Reads of at most a tenth of a second's worth, for an even pace.
    let chunk = rate.map_or(65536, |r| {
        usize::try_from(r / 10).unwrap_or(65536).clamp(1, 65536)
    });
    let mut buf = vec![0u8; chunk];
    let mut received = Tally::new();
    let mut last_sample = Instant::now();
    let mut stopped = false;
    let mut error: Option<io::Error> = None;
    loop {
        if last_sample.elapsed() >= Duration::from_millis(50) {
            let (h, r) = memory_kib();
            hwm_max = hwm_max.max(h);
            rss_max = rss_max.max(r);
            last_sample = Instant::now();
        }
        // (A timeout whose deadline passed still polls the read first: stop here.)
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stopped = true;
            break;
        }
        let read = stream.read(&mut buf);
        let r = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), read).await {
                Ok(r) => r,
                Err(_) => {
                    stopped = true;
                    break;
                }
            },
            None => read.await,
        };
        match r {
            Ok(0) => break,
            Ok(n) => received.update(&buf[..n]),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if let Some(r) = rate {
            // Sleep until the bytes read so far are due at the rate.
            let due = accepted + Duration::from_secs_f64(received.bytes() as f64 / r as f64);
            let until = match deadline {
                Some(d) => due.min(d),
                None => due,
            };
            tokio::time::sleep_until(until.into()).await;
        }
    }
    let (h, r) = memory_kib();
    hwm_max = hwm_max.max(h);
    rss_max = rss_max.max(r);
    let secs = accepted.elapsed().as_secs_f64();
    let mut report = json!({
        "peer": peer.to_string(),
        "bytes_received": received.bytes(),
        "sha256_received": received.hex(),
        "is_mptcp": is_mptcp,
        "duration_s": secs,
        "stopped": stopped,
        "vm_hwm_idle_kib": hwm_idle,
        "vm_hwm_baseline_kib": hwm_base,
        "vm_rss_baseline_kib": rss_base,
        "vm_hwm_kib": hwm_max,
        "vm_rss_max_kib": rss_max,
        "conn": conn(&stream),
        "subflows": subflows(&stream),
    });
    if let Some(e) = error {
        return Err(Failure {
            error: e,
            progress: report,
        });
    }
    if !stopped {
        if let Err(e) = stream.shutdown().await {
            return Err(Failure {
                error: e,
                progress: report,
            });
        }
        let closed = stream.closed().await;
        report["closed_error"] = json!(closed.map(|e| format!("{e:?}")));
    } else {
        // Reading stopped with the peer still sending: leave at once, the connection as it
        // is (no FIN, no RST, nothing more read or acknowledged), so that the peer's
        // figures stay what this reader allowed.
        println!("{report}");
        std::process::exit(0);
    }
    Ok(report)
}

fn error_json(f: Failure) -> Value {
    let mut v = json!({
        "error_kind": format!("{:?}", f.error.kind()),
        "error": f.error.to_string(),
    });
    if let (Some(obj), Value::Object(progress)) = (v.as_object_mut(), f.progress) {
        for (k, val) in progress {
            obj.entry(k).or_insert(val);
        }
    }
    v
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The runtime a tokio program gets from `#[tokio::main]` (multi-thread), or with
    // APIPEER_RUNTIME=current the single-threaded one (`braid connect` / `listen` use it).
    let built = if std::env::var("APIPEER_RUNTIME").is_ok_and(|v| v == "current") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            println!("{}", error_json(e.into()));
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async {
        match cli.mode {
            Mode::Send {
                paths,
                remote,
                bytes,
                joins,
            } => send(paths, remote, bytes, joins).await,
            Mode::Recv {
                paths,
                port,
                rate,
                for_secs,
            } => recv(paths, port, rate, for_secs).await,
        }
    });
    // Do not wait for connections the driver is still finishing.
    rt.shutdown_timeout(Duration::from_millis(100));
    match r {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            let v = error_json(f);
            eprintln!("apipeer: {}", v["error"]);
            println!("{v}");
            ExitCode::FAILURE
        }
    }
}
