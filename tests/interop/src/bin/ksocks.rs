//! ksocks: a SOCKS5 server on the kernel's MPTCP (an `IPPROTO_MPTCP` listening socket), the
//! far end of `braid proxy client` in the interop tests when that end is a Linux host with
//! kernel MPTCP instead of braid. It uses braid's SOCKS5 and relay modules over kernel
//! sockets on both sides.
//!
//! ```text
//! ksocks ADDR:PORT        (prints `listening on ADDR:PORT` on stderr, serves until killed)
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use braid::proxy::relay::{relay, RelayOptions};
use braid::proxy::socks5::{self, Auth};
use socket2::{Domain, Protocol, Socket, Type};

/// IPPROTO_MPTCP.
const IPPROTO_MPTCP: i32 = 262;

fn listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(Protocol::from(IPPROTO_MPTCP)),
    )?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    tokio::net::TcpListener::from_std(s.into())
}

fn main() -> ExitCode {
    let Some(addr) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: ksocks ADDR:PORT");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ksocks: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let l = match listener(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ksocks: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("listening on {addr}");
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok((mut s, mut up, _)) =
                    socks5::serve(s, &Auth::Open, Duration::from_secs(10)).await
                else {
                    return;
                };
                let opts = RelayOptions { idle: None };
                relay(&mut s, &mut up, &opts, std::future::pending()).await;
            });
        }
    })
}
