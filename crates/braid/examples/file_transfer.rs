//! Send a file over braid's MPTCP, or receive one.
//!
//! ```text
//! file_transfer send --path bt0=10.0.0.2 [--path bt1=10.1.0.2] HOST:PORT FILE
//! file_transfer recv --path bt0=10.0.0.1 [--path bt1=10.1.0.1] --port PORT FILE
//! ```
//!
//! The sender opens one subflow per further path; the receiver writes the file and prints
//! its size and SHA-256, and how many subflows carried it.

use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn usage() -> ! {
    eprintln!(
        "usage: file_transfer send --path DEV=ADDR [--path ...] HOST:PORT FILE\n       \
         file_transfer recv --path DEV=ADDR [--path ...] --port PORT FILE"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut builder = braid::Endpoint::builder();
    let mut paths: Vec<IpAddr> = Vec::new();
    let mut port = None;
    let mut rest = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--path" => {
                let v = args.next().unwrap_or_else(|| usage());
                let (dev, addr) = v.split_once('=').unwrap_or_else(|| usage());
                let addr: IpAddr = addr.parse().unwrap_or_else(|_| usage());
                builder = builder.path(dev, addr);
                paths.push(addr);
            }
            "--port" => port = args.next().and_then(|p| p.parse::<u16>().ok()),
            _ => rest.push(a),
        }
    }
    let endpoint = builder.build()?;
    match (mode.as_str(), rest.as_slice()) {
        ("send", [remote, file]) => {
            let remote: SocketAddr = remote.parse().unwrap_or_else(|_| usage());
            let mut stream = endpoint.connect(remote).await?;
            for local in paths.iter().skip(1) {
                stream.open_subflow(*local, remote, false)?;
            }
            let mut f = tokio::fs::File::open(file).await?;
            let n = tokio::io::copy(&mut f, &mut stream).await?;
            stream.shutdown().await?;
            // Wait for the peer's close: every byte is then acknowledged.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await?;
            let _ = stream.closed().await;
            eprintln!(
                "file_transfer: sent {n} bytes (MPTCP: {})",
                stream.is_mptcp()
            );
        }
        ("recv", [file]) => {
            let port = port.unwrap_or_else(|| usage());
            let listener = endpoint.listen(port)?;
            let (mut stream, peer) = listener.accept().await?;
            let mut out = tokio::fs::File::create(file).await?;
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            loop {
                let k = stream.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                hash.update(&buf[..k]);
                out.write_all(&buf[..k]).await?;
                n += k as u64;
            }
            out.flush().await?;
            let used = stream.info().map_or(1, |i| {
                i.subflows.iter().filter(|s| s.bytes_received > 0).count()
            });
            stream.shutdown().await?;
            let _ = stream.closed().await;
            let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            println!("{n} {hex} subflows_used={used} peer={peer}");
        }
        _ => usage(),
    }
    Ok(())
}
