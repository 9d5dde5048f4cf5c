//! kecho: many concurrent echo clients on the kernel's MPTCP (or TCP), and a kernel echo
//! server, for the many-connections benchmark.
//!
//! ```text
//! kecho clients HOST:PORT --n N --bytes B [--proto tcp|mptcp] [--time-limit S]
//! kecho server --port P [--bind ADDR] [--proto tcp|mptcp]
//! ```
//! `clients` opens N connections at once (one thread each), sends B bytes of braid's pattern
//! stream on each while reading the echo back, and prints one JSON line: how many completed
//! byte-exact, the wall time for all of them, and the slowest and median client's time.
//! `server` echoes every connection until killed (prints `listening on ADDR` first).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use braid::stream::PatternStream;
use clap::{Parser, Subcommand, ValueEnum};
use socket2::{Domain, Protocol, Socket, Type};

/// IPPROTO_MPTCP.
const IPPROTO_MPTCP: i32 = 262;

#[derive(Parser)]
#[command(
    name = "kecho",
    about = "Many kernel echo clients, or a kernel echo server"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    Mptcp,
}

#[derive(Subcommand)]
enum Mode {
    /// N concurrent echo clients.
    Clients {
        remote: SocketAddr,
        #[arg(long)]
        n: usize,
        #[arg(long)]
        bytes: usize,
        #[arg(long, value_enum, default_value = "mptcp")]
        proto: Proto,
        /// Give up after S seconds (the report then counts what completed).
        #[arg(long, default_value_t = 300.0)]
        time_limit: f64,
    },
    /// An echo server (until killed).
    Server {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
        bind: IpAddr,
        #[arg(long, value_enum, default_value = "mptcp")]
        proto: Proto,
    },
}

fn socket(addr: &SocketAddr, proto: Proto) -> anyhow::Result<Socket> {
    let p = match proto {
        Proto::Tcp => Protocol::TCP,
        Proto::Mptcp => Protocol::from(IPPROTO_MPTCP),
    };
    Socket::new(Domain::for_address(*addr), Type::STREAM, Some(p)).context("socket")
}

/// One client: connect, send `bytes` of the pattern while reading the echo, compare.
fn client(remote: SocketAddr, proto: Proto, bytes: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let s = socket(&remote, proto)?;
    s.connect(&remote.into()).context("connect")?;
    let stream: TcpStream = s.into();
    let mut writer = stream.try_clone().context("clone")?;
    let sender = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let mut data = vec![0u8; bytes];
        PatternStream::new().fill(&mut data);
        for chunk in data.chunks(16 * 1024) {
            writer.write_all(chunk)?;
        }
        writer.shutdown(Shutdown::Write)?;
        Ok(data)
    });
    let mut back = Vec::with_capacity(bytes);
    (&stream).read_to_end(&mut back).context("read")?;
    let sent = match sender.join() {
        Ok(r) => r.context("send")?,
        Err(_) => anyhow::bail!("sender panicked"),
    };
    anyhow::ensure!(
        back == sent,
        "echo differs: {} bytes back of {}",
        back.len(),
        sent.len()
    );
    Ok(start.elapsed())
}

fn clients(
    remote: SocketAddr,
    n: usize,
    bytes: usize,
    proto: Proto,
    limit: f64,
) -> anyhow::Result<bool> {
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let tx = tx.clone();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = tx.send((i, client(remote, proto, bytes)));
            })
            .context("spawn")?;
    }
    drop(tx);
    let deadline = start + Duration::from_secs_f64(limit);
    let mut times = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while times.len() + errors.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, Ok(t))) => times.push(t),
            Ok((i, Err(e))) => errors.push(format!("client {i}: {e:#}")),
            Err(_) => break,
        }
    }
    let wall = start.elapsed();
    times.sort();
    let secs = |d: Option<&Duration>| d.map_or(0.0, Duration::as_secs_f64);
    let ok = times.len() == n;
    let v = serde_json::json!({
        "clients": n,
        "bytes_each": bytes,
        "completed": times.len(),
        "failed": errors.len(),
        "timed_out": n - times.len() - errors.len(),
        "wall_s": wall.as_secs_f64(),
        "slowest_s": secs(times.last()),
        "median_s": secs(times.get(times.len() / 2)),
        "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
    });
    println!("{v}");
    Ok(ok)
}

fn server(bind: IpAddr, port: u16, proto: Proto) -> anyhow::Result<()> {
    let addr = SocketAddr::new(bind, port);
    let s = socket(&addr, proto)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into()).context("bind")?;
    s.listen(4096).context("listen")?;
    let listener: TcpListener = s.into();
    eprintln!("listening on {addr}");
    let stop = Arc::new(AtomicBool::new(false));
    for conn in listener.incoming() {
        let Ok(mut c) = conn else { continue };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = c.shutdown(Shutdown::Write);
            })
            .context("spawn")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.mode {
        Mode::Clients {
            remote,
            n,
            bytes,
            proto,
            time_limit,
        } => clients(remote, n, bytes, proto, time_limit),
        Mode::Server { port, bind, proto } => server(bind, port, proto).map(|()| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kecho: {e:#}");
            ExitCode::from(2)
        }
    }
}
