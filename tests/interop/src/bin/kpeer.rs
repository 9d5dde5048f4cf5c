//! kpeer: the Linux kernel's TCP or MPTCP as a test peer for braid.
//!
//! ```text
//! kpeer listen  [--bind ADDR] --port P       [--proto tcp|mptcp] [--send N] [--sink] [--json]
//! kpeer connect HOST:PORT [--bind ADDR]      [--proto tcp|mptcp] [--send N] [--sink] [--json]
//! (both also take [--cc NAME]: the socket's congestion control)
//! ```
//! One connection: sends N bytes of braid's pattern stream (then shuts down its sending
//! direction) while reading until the peer closes; `--json` prints bytes and SHA-256 of both
//! directions. `listen` prints `listening on ADDR` on stderr once it accepts connections.
//! `--abort-after N` aborts instead once N bytes arrived: SO_LINGER 0 and close, so the
//! kernel resets the connection (for MPTCP: RST with MP_FASTCLOSE on every subflow).
//! `--gate BYTES:FILE` (repeatable) pauses reading once BYTES bytes arrived until FILE
//! exists, printing `paused after BYTES` on stderr: a test can act while the transfer is
//! still running, at a point it knows, with the receive window shut behind it. `--mark
//! BYTES` only prints `read BYTES` there and reads on.
//!
//! The JSON report has `duration_s`: from the connection's establishment (accept or connect
//! returned) to the end of the transfer (EOF read and everything sent). `--time-limit S`
//! bounds the whole run: after S seconds kpeer prints the report so far with
//! `"timed_out": true` (no SHA-256) and exits with status 124, like timeout(1).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use braid::stream::{PatternStream, Tally};
use clap::{Parser, Subcommand, ValueEnum};
use socket2::{Domain, Protocol, Socket, Type};

/// IPPROTO_MPTCP.
const IPPROTO_MPTCP: i32 = 262;

#[derive(Parser)]
#[command(name = "kpeer", about = "The kernel's TCP/MPTCP as a braid test peer")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Accept one connection.
    Listen {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
        bind: IpAddr,
        #[command(flatten)]
        common: Common,
    },
    /// Open one connection.
    Connect {
        remote: SocketAddr,
        #[arg(long)]
        bind: Option<IpAddr>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
struct Common {
    #[arg(long, value_enum, default_value_t = Proto::Tcp)]
    proto: Proto,
    /// Bytes of the pattern stream to send (0: only shut down the sending direction).
    #[arg(long, default_value_t = 0)]
    send: u64,
    /// Discard what arrives (the default; counted and hashed either way).
    #[arg(long)]
    sink: bool,
    #[arg(long)]
    json: bool,
    /// Once connected, wait until this file exists before reading (lets a test hold the
    /// receive window shut).
    #[arg(long, value_name = "FILE")]
    wait_for: Option<std::path::PathBuf>,
    /// Do not shut down the sending direction after `--send`: keep the peer's connection
    /// fully open (ESTABLISHED) until it closes or resets.
    #[arg(long)]
    hold_open: bool,
    /// Once this many bytes arrived, abort: SO_LINGER 0 and close (a reset; MPTCP sends
    /// MP_FASTCLOSE). Nothing is sent; `--json` then says `"aborted": true`.
    #[arg(long, value_name = "BYTES", conflicts_with = "send")]
    abort_after: Option<u64>,
    /// Once BYTES bytes arrived (in all), read nothing more until FILE exists; prints
    /// `paused after BYTES` on stderr when it stops. Repeatable.
    #[arg(long, value_name = "BYTES:FILE", value_parser = parse_gate)]
    gate: Vec<Gate>,
    /// Once BYTES bytes arrived (in all), print `read BYTES` on stderr and read on.
    /// Repeatable.
    #[arg(long, value_name = "BYTES")]
    mark: Vec<u64>,
    /// After SECS seconds from the start, print the report so far (`"timed_out": true`
    /// with `--json`) and exit with status 124.
    #[arg(long, value_name = "SECS")]
    time_limit: Option<f64>,
    /// The socket's congestion control (TCP_CONGESTION; an MPTCP socket passes it to its
    /// subflows), e.g. `cubic`; needs CAP_NET_ADMIN for one outside
    /// net.ipv4.tcp_allowed_congestion_control. Default: the namespace's.
    #[arg(long, value_name = "NAME")]
    cc: Option<String>,
}

/// Progress, for a report at the time limit: bytes sent and received so far, and when the
/// connection was established.
static SENT: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static ESTABLISHED: OnceLock<Instant> = OnceLock::new();

/// Seconds since the connection was established (0 before).
fn elapsed_s() -> f64 {
    ESTABLISHED.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// After `limit`, print the report so far and exit 124; the transfer goes on meanwhile.
fn start_time_limit(limit: Duration, json: bool) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let (sent, received) = (
            SENT.load(Ordering::Relaxed),
            RECEIVED.load(Ordering::Relaxed),
        );
        eprintln!(
            "kpeer: time limit of {:.1} s reached: {sent} bytes sent, {received} received",
            limit.as_secs_f64()
        );
        if json {
            let v = serde_json::json!({
                "timed_out": true,
                "bytes_sent": sent,
                "bytes_received": received,
                "duration_s": elapsed_s(),
            });
            println!("{v}");
        }
        std::process::exit(124);
    });
}

/// A point of the received stream where reading pauses until a file exists.
#[derive(Clone, Debug)]
struct Gate {
    at: u64,
    /// None: a mark, reading goes on.
    file: Option<std::path::PathBuf>,
}

fn parse_gate(s: &str) -> Result<Gate, String> {
    let (at, file) = s
        .split_once(':')
        .ok_or_else(|| format!("bad --gate {s:?}: expected BYTES:FILE"))?;
    let at = at
        .parse()
        .map_err(|_| format!("bad --gate {s:?}: {at:?} is not a byte count"))?;
    if file.is_empty() {
        return Err(format!("bad --gate {s:?}: no file"));
    }
    Ok(Gate {
        at,
        file: Some(file.into()),
    })
}

/// Waits (at most two minutes) until `f` exists.
fn wait_for_file(f: &std::path::Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !f.exists() {
        if std::time::Instant::now() > deadline {
            bail!("{} never appeared", f.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    Mptcp,
}

fn socket_for(addr: &SocketAddr, proto: Proto, cc: Option<&str>) -> anyhow::Result<Socket> {
    let protocol = match proto {
        Proto::Tcp => Protocol::TCP,
        Proto::Mptcp => Protocol::from(IPPROTO_MPTCP),
    };
    let sock =
        Socket::new(Domain::for_address(*addr), Type::STREAM, Some(protocol)).context("socket")?;
    if let Some(cc) = cc {
        sock.set_tcp_congestion(cc.as_bytes())
            .with_context(|| format!("congestion control {cc}"))?;
    }
    Ok(sock)
}

/// Reads until `limit` bytes arrived, then closes with SO_LINGER 0: the kernel resets.
fn abort_after(stream: TcpStream, limit: u64, json: bool) -> anyhow::Result<()> {
    let mut received = Tally::new();
    let mut buf = vec![0u8; 65536];
    let mut reader = &stream;
    while received.bytes() < limit {
        let want = usize::try_from(limit - received.bytes())
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = reader.read(&mut buf[..want]).context("read")?;
        if n == 0 {
            bail!(
                "the peer closed after {} bytes, before the abort",
                received.bytes()
            );
        }
        received.update(&buf[..n]);
    }
    socket2::SockRef::from(&stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .context("SO_LINGER")?;
    drop(stream);
    eprintln!("aborted after {} bytes", received.bytes());
    if json {
        let v = serde_json::json!({
            "aborted": true,
            "bytes_received": received.bytes(),
            "sha256_received": received.hex(),
        });
        println!("{v}");
    }
    Ok(())
}

fn transfer(stream: TcpStream, common: &Common) -> anyhow::Result<()> {
    if let Some(limit) = common.abort_after {
        return abort_after(stream, limit, common.json);
    }
    ESTABLISHED.get_or_init(Instant::now);
    let (send, json, hold_open) = (common.send, common.json, common.hold_open);
    let mut writer = stream.try_clone().context("clone socket")?;
    let sender = std::thread::spawn(move || -> std::io::Result<Tally> {
        let mut tally = Tally::new();
        let mut pattern = PatternStream::new();
        let mut buf = vec![0u8; 65536];
        let mut left = send;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let chunk = &mut buf[..n];
            pattern.fill(chunk);
            writer.write_all(chunk)?;
            tally.update(chunk);
            SENT.fetch_add(n as u64, Ordering::Relaxed);
            left -= n as u64;
        }
        if !hold_open {
            writer.shutdown(Shutdown::Write)?;
        }
        Ok(tally)
    });
    if let Some(f) = &common.wait_for {
        wait_for_file(f)?;
    }
    let mut gates = common.gate.clone();
    gates.extend(common.mark.iter().map(|&at| Gate { at, file: None }));
    gates.sort_by_key(|g| g.at);
    let mut gates = gates.into_iter().peekable();
    let mut received = Tally::new();
    let mut buf = vec![0u8; 65536];
    let mut reader = &stream;
    loop {
        let mut want = buf.len();
        while let Some(g) = gates.peek() {
            if received.bytes() < g.at {
                want = usize::try_from(g.at - received.bytes())
                    .unwrap_or(usize::MAX)
                    .min(want);
                break;
            }
            match &g.file {
                Some(f) => {
                    eprintln!("paused after {}", received.bytes());
                    wait_for_file(f)?;
                }
                None => eprintln!("read {}", received.bytes()),
            }
            gates.next();
        }
        let n = reader.read(&mut buf[..want]).context("read")?;
        if n == 0 {
            break;
        }
        received.update(&buf[..n]);
        RECEIVED.fetch_add(n as u64, Ordering::Relaxed);
    }
    let sent = match sender.join() {
        Ok(r) => r.context("send")?,
        Err(_) => bail!("sender thread panicked"),
    };
    if json {
        let v = serde_json::json!({
            "bytes_sent": sent.bytes(),
            "bytes_received": received.bytes(),
            "sha256_sent": sent.hex(),
            "sha256_received": received.hex(),
            "duration_s": elapsed_s(),
        });
        println!("{v}");
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let common = match &cli.mode {
        Mode::Listen { common, .. } | Mode::Connect { common, .. } => common,
    };
    if let Some(secs) = common.time_limit {
        let limit = Duration::try_from_secs_f64(secs)
            .map_err(|_| anyhow::anyhow!("bad --time-limit {secs}: not a duration"))?;
        start_time_limit(limit, common.json);
    }
    match cli.mode {
        Mode::Listen { port, bind, common } => {
            let addr = SocketAddr::new(bind, port);
            let sock = socket_for(&addr, common.proto, common.cc.as_deref())?;
            sock.set_reuse_address(true)?;
            sock.bind(&addr.into())
                .with_context(|| format!("bind {addr}"))?;
            sock.listen(16)?;
            eprintln!("listening on {addr}");
            let (conn, peer) = sock.accept().context("accept")?;
            let peer = peer.as_socket().map(|a| a.to_string()).unwrap_or_default();
            eprintln!("accepted {peer}");
            transfer(conn.into(), &common)
        }
        Mode::Connect {
            remote,
            bind,
            common,
        } => {
            let sock = socket_for(&remote, common.proto, common.cc.as_deref())?;
            if let Some(b) = bind {
                sock.bind(&SocketAddr::new(b, 0).into())
                    .with_context(|| format!("bind {b}"))?;
            }
            sock.connect(&remote.into())
                .with_context(|| format!("connect {remote}"))?;
            transfer(sock.into(), &common)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpeer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
