//! An MPTCP echo server on braid: every connection gets back what it sends.
//!
//! ```text
//! echo_server --path bt0=10.0.0.1 [--path bt1=10.1.0.1] --port 7000 [--once]
//! ```
//!
//! Each `--path DEV=ADDR` is a TUN device (created if missing) with braid's address behind
//! it; the kernel side of each device is set up by whoever runs the example. With `--once`
//! the server exits after its first connection closes.

use std::net::IpAddr;

use tokio::io::AsyncWriteExt;

fn usage() -> ! {
    eprintln!("usage: echo_server --path DEV=ADDR [--path DEV=ADDR ...] --port PORT [--once]");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut builder = braid::Endpoint::builder();
    let (mut port, mut once) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--path" => {
                let v = args.next().unwrap_or_else(|| usage());
                let (dev, addr) = v.split_once('=').unwrap_or_else(|| usage());
                let addr: IpAddr = addr.parse().unwrap_or_else(|_| usage());
                builder = builder.path(dev, addr);
            }
            "--port" => port = args.next().and_then(|p| p.parse::<u16>().ok()),
            "--once" => once = true,
            _ => usage(),
        }
    }
    let port = port.unwrap_or_else(|| usage());
    let endpoint = builder.build()?;
    let listener = endpoint.listen(port)?;
    eprintln!("echo_server: listening on port {port}");
    loop {
        let (stream, peer) = listener.accept().await?;
        let task = tokio::spawn(async move {
            let mptcp = stream.is_mptcp();
            let (mut rd, mut wr) = stream.into_split();
            let n = tokio::io::copy(&mut rd, &mut wr).await?;
            wr.shutdown().await?;
            eprintln!("echo_server: {peer}: echoed {n} bytes (MPTCP: {mptcp})");
            Ok::<(), std::io::Error>(())
        });
        if once {
            task.await.map_err(std::io::Error::other)??;
            // braid's stack lives in this process: let the close finish before exiting.
            endpoint.wait_idle().await;
            return Ok(());
        }
    }
}
