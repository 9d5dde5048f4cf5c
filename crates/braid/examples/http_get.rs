//! An HTTP/1.1 GET over braid's MPTCP: the response body goes to standard output.
//!
//! ```text
//! http_get --path bt0=10.0.0.2 [--path bt1=10.1.0.2] http://10.0.0.1:8000/index.html
//! ```
//!
//! Prints the status line on standard error and exits non-zero unless it is 200.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn usage() -> ! {
    eprintln!("usage: http_get --path DEV=ADDR [--path DEV=ADDR ...] http://IP:PORT/PATH");
    std::process::exit(2)
}

/// `http://10.0.0.1:8000/x` → (10.0.0.1:8000, "10.0.0.1:8000", "/x").
fn parse_url(url: &str) -> Option<(SocketAddr, String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let addr = host.parse::<SocketAddr>().ok().or_else(|| {
        host.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 80))
    })?;
    Some((addr, host.to_owned(), path))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut builder = braid::Endpoint::builder();
    let mut paths: Vec<IpAddr> = Vec::new();
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--path" => {
                let v = args.next().unwrap_or_else(|| usage());
                let (dev, addr) = v.split_once('=').unwrap_or_else(|| usage());
                let addr: IpAddr = addr.parse().unwrap_or_else(|_| usage());
                builder = builder.path(dev, addr);
                paths.push(addr);
            }
            _ => url = Some(a),
        }
    }
    let (remote, host, path) = url
        .as_deref()
        .and_then(parse_url)
        .unwrap_or_else(|| usage());
    let endpoint = builder.build()?;
    let mut stream = endpoint.connect(remote).await?;
    for local in paths.iter().skip(1) {
        stream.open_subflow(*local, remote, false)?;
    }
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: braid-example\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    stream.shutdown().await?;
    // braid's stack lives in this process: let the close finish before exiting.
    let _ = stream.closed().await;
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(std::io::Error::other("no HTTP header in the response"));
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head.lines().next().unwrap_or_default().to_owned();
    eprintln!("http_get: {status} (MPTCP: {})", stream.is_mptcp());
    std::io::stdout().write_all(&response[end + 4..])?;
    if status.split_whitespace().nth(1) != Some("200") {
        std::process::exit(1);
    }
    Ok(())
}
