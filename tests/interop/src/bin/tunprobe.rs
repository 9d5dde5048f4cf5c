//! tunprobe DEV: attach to TUN device DEV with braid's TUN driver, print `ready` (with the
//! device's transmit queue length) on stderr,
//! then print one line per received IP packet (`v4 proto=1 src=.. dst=..`) on stdout until
//! COUNT IPv4 packets (default 1) arrived or 10 seconds passed. A self-test of the TUN driver and
//! of the namespace harness.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use braid::tun::TunDevice;

fn describe(p: &[u8]) -> String {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            format!("v4 proto={} src={src} dst={dst} len={}", p[9], p.len())
        }
        Some(6) => format!("v6 len={}", p.len()),
        _ => format!("unknown len={}", p.len()),
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dev) = args.next() else {
        eprintln!("usage: tunprobe DEV [COUNT]");
        return ExitCode::from(2);
    };
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    let tun = match TunDevice::open(&dev) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tunprobe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let txqlen = tun
        .tx_queue_len()
        .map_or_else(|e| format!("? ({e})"), |n| n.to_string());
    eprintln!(
        "ready {} created={} txqueuelen={txqlen}",
        tun.name(),
        tun.created()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65536];
    let mut seen = 0;
    while seen < count && Instant::now() < deadline {
        match tun.recv(&mut buf) {
            Ok(Some(n)) => {
                let line = describe(&buf[..n]);
                println!("{line}");
                // IPv6 noise (router solicitations, MLD) is printed but not counted.
                if line.starts_with("v4") {
                    seen += 1;
                }
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                eprintln!("tunprobe: read: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if seen < count {
        eprintln!("tunprobe: timed out after {seen} packets");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
