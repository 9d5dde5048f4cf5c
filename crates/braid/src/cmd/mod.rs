//! The `braid` subcommands that run over TUN devices, and the argument parsers they share.

pub mod connect;
pub mod ctl;
pub mod help;
pub mod listen;
mod pm_args;
pub mod proxy;
pub mod sim;
pub mod tune;
pub mod usage;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

use crate::app;
use crate::ctl::CtlServer;

pub use pm_args::*;

/// `--path DEV=ADDR`: a TUN device and braid's own address behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    pub dev: String,
    pub addr: IpAddr,
}

impl FromStr for PathArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad --path {s:?}: expected DEV=ADDR, e.g. bt0=10.0.0.2");
        let (dev, addr) = s.split_once('=').ok_or_else(bad)?;
        if dev.is_empty() || addr.is_empty() {
            return Err(bad());
        }
        let inner = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr = parse_ip(inner).map_err(|why| format!("bad --path {s:?}: {why}"))?;
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(format!(
                "bad --path {s:?}: {addr} cannot be a host's own address"
            ));
        }
        Ok(PathArg {
            dev: dev.to_owned(),
            addr,
        })
    }
}

/// An IP address. A string of only digits and dots is meant as an IPv4 address (never a
/// name), so `10.0.0.999` is "not a valid IPv4 address"; the error says what is wrong,
/// without the flag (the caller adds it).
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| format!("{s} is not a valid IPv4 address"));
    }
    if s.contains(':') {
        return s
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("{s} is not a valid IPv6 address"));
    }
    Err("expected an IP address, e.g. 10.0.0.2 or fd00::2".to_string())
}

/// `[fd00::1]:80` for `fd00::1:80`, when the text reads as an IPv6 address followed by a
/// port (its last group decimal): the way to write what was probably meant.
fn bracket_hint(s: &str) -> Option<String> {
    let (host, port) = s.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host: Ipv6Addr = host.parse().ok()?;
    Some(format!("[{host}]:{port}"))
}

/// `ADDR`, `ADDR:PORT` (IPv4) or `[ADDR]:PORT` of `flag`: an address and a port, if any.
/// An unbracketed IPv6 address has no port (`fd00::1:80` is an address).
pub fn parse_addr_port(flag: &str, s: &str) -> Result<(IpAddr, Option<u16>), String> {
    addr_port(s).map_err(|why| format!("bad {flag} {s:?}: {why}"))
}

/// [`parse_addr_port`]'s work; the error says what is wrong, without the flag.
fn addr_port(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let t = s.trim();
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))
    };
    if let Some(rest) = t.strip_prefix('[') {
        let bracketed = || "expected [ADDR] or [ADDR]:PORT".to_string();
        let (inner, after) = rest.split_once(']').ok_or_else(bracketed)?;
        let addr = parse_ip(inner)?;
        return match after {
            "" => Ok((addr, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((addr, Some(port(p)?))),
                None => Err(bracketed()),
            },
        };
    }
    match t.matches(':').count() {
        0 => Ok((parse_ip(t)?, None)),
        1 => {
            let (host, p) = t.split_once(':').unwrap_or((t, ""));
            Ok((parse_ip(host)?, Some(port(p)?)))
        }
        _ => match (t.parse::<Ipv6Addr>(), bracket_hint(t)) {
            (Ok(a), _) => Ok((IpAddr::V6(a), None)),
            (Err(_), Some(hint)) => Err(format!(
                "an IPv6 address with a port is written in brackets: {hint}"
            )),
            (Err(_), None) => Err(format!("{t} is not a valid IPv6 address")),
        },
    }
}

/// `HOST:PORT` of `braid connect`, checked as far as it can be without resolving a name:
/// a port from 1 to 65535; a host of only digits and dots a valid IPv4 address; an IPv6
/// address in brackets (`fd00::1:80` is refused with the way to write it, `[fd00::1]:80`).
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let bad = |why: String| format!("bad HOST:PORT {s:?}: {why}");
    let t = s.trim();
    if t.starts_with('[') {
        let (addr, port) = addr_port(t).map_err(bad)?;
        if port.is_none() {
            return Err(bad(format!("no port; write [{addr}]:PORT")));
        }
        return Ok(t.to_string());
    }
    let (host, port) = match t.matches(':').count() {
        0 => return Err(bad("no port; write HOST:PORT, e.g. 10.0.0.1:5201".into())),
        1 => t.split_once(':').unwrap_or((t, "")),
        _ => {
            return Err(bad(match (bracket_hint(t), t.parse::<Ipv6Addr>()) {
                (Some(hint), _) => {
                    format!("an IPv6 address with a port is written in brackets: {hint}")
                }
                (None, Ok(a)) => format!("no port; write [{a}]:PORT"),
                (None, Err(_)) => "expected HOST:PORT, or [ADDR]:PORT for IPv6".into(),
            }))
        }
    };
    if host.is_empty() {
        return Err(bad("no host before the port".into()));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        parse_ip(host).map_err(bad)?;
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(t.to_string()),
        _ => Err(bad(format!(
            "port {port:?} is not a number from 1 to 65535"
        ))),
    }
}

impl fmt::Display for PathArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.dev, self.addr)
    }
}

/// Parse every `--path DEV=ADDR`; at least one is required, and each has its own device and
/// its own address.
pub(crate) fn parse_paths(args: &[String]) -> anyhow::Result<Vec<PathArg>> {
    if args.is_empty() {
        anyhow::bail!("give at least one --path DEV=ADDR");
    }
    let paths = args
        .iter()
        .map(|s| s.parse::<PathArg>().map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<PathArg>>>()?;
    for (i, p) in paths.iter().enumerate() {
        if let Some(q) = paths[..i].iter().find(|q| q.dev == p.dev) {
            anyhow::bail!(
                "--path {q} and --path {p}: device {} given twice; each path has its own TUN \
                 device",
                p.dev
            );
        }
        if let Some(q) = paths[..i].iter().find(|q| q.addr == p.addr) {
            anyhow::bail!(
                "--path {q} and --path {p}: address {} given twice; each path has its own \
                 address",
                p.addr
            );
        }
    }
    Ok(paths)
}

/// The value parser of `--path`: the text as given once it parses.
pub fn path_value(s: &str) -> Result<String, String> {
    s.parse::<PathArg>().map(|_| s.to_string())
}

/// The value parser of `--subflow` / `--backup`: an IP address (a port is allowed, and
/// dropped).
pub fn addr_value(s: &str) -> Result<String, String> {
    addr_port(s).map(|_| s.to_string())
}

/// The value parser of `--signal`: `ADDR`, `ADDR:PORT` or `[ADDR]:PORT`.
pub fn signal_value(s: &str) -> Result<String, String> {
    addr_port(s).map(|_| s.to_string())
}

/// The value parser of `--limits`.
pub fn limits_value(s: &str) -> Result<String, String> {
    parse_limits(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// The value parser of `--pm`.
pub fn pm_value(s: &str) -> Result<String, String> {
    path_manager(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// The value parser of a port to listen on: 1 to 65535.
pub fn port_value(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| "expected a port from 1 to 65535".to_string())
}

/// The value parser of `--connect-timeout`: the text as given once it parses.
pub fn seconds_value(s: &str) -> Result<String, String> {
    parse_seconds("--connect-timeout", s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// A byte count: `1048576`, `64K`, `16M`, `1G`, `16MiB`, `2KB` (K/M/G are powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a byte count, e.g. 16777216 or 16M".to_string())?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (K, M, G or KiB, MiB, GiB; none for bytes)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| "too large for a byte count".to_string())
}

/// Parse the addresses of a repeated flag (`--subflow ADDR`, `--backup ADDR`, `--signal
/// ADDR[:PORT]`); a port, if given, is dropped. Each address once.
pub(crate) fn parse_addrs(flag: &str, args: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    let mut addrs: Vec<IpAddr> = Vec::with_capacity(args.len());
    for s in args {
        let (a, _) = parse_addr_port(flag, s).map_err(|e| anyhow::anyhow!("{e}"))?;
        if addrs.contains(&a) {
            anyhow::bail!("{flag} {a} given twice");
        }
        addrs.push(a);
    }
    Ok(addrs)
}

/// A number of seconds (`--connect-timeout S`): positive, finite, e.g. `5` or `0.5`.
pub(crate) fn parse_seconds(flag: &str, s: &str) -> anyhow::Result<std::time::Duration> {
    let bad = || {
        anyhow::anyhow!("bad {flag} {s:?}: expected a positive number of seconds, e.g. 5 or 0.5")
    };
    let v: f64 = s.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v <= 0.0 {
        return Err(bad());
    }
    std::time::Duration::try_from_secs_f64(v).map_err(|_| bad())
}

/// The library endpoint of a command: every `--path` (opened, in order, when it is built),
/// the engine's configuration, MPTCP or plain TCP, and the control socket.
pub(crate) fn endpoint_builder(
    config: braid_proto::EndpointConfig,
    paths: &[PathArg],
    mptcp: bool,
    ctl: Option<CtlServer>,
) -> crate::api::Builder {
    let mut b = crate::Endpoint::builder().config(config).mptcp(mptcp);
    for p in paths {
        b = b.path(&p.dev, p.addr);
    }
    if let Some(server) = ctl {
        b = b.ctl_server(server);
    }
    b
}

/// Create the control socket of `--ctl PATH`, if given, and announce it. Called before
/// anything else has an effect (an output file, a TUN device): a path that braid refuses
/// (a regular file, a live socket...) stops the command with one line and nothing touched.
pub(crate) fn bind_ctl(pm: &PmArgs) -> anyhow::Result<Option<CtlServer>> {
    let Some(path) = &pm.ctl else {
        return Ok(None);
    };
    let server = CtlServer::bind(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("braid: control socket {}", path.display());
    Ok(Some(server))
}

/// Where `--out FILE` writes (`-`: standard output).
pub(crate) fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::BufWriter::new(io::stdout())));
    }
    let f = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(Box::new(io::BufWriter::new(f)))
}

/// What a command runs.
pub(crate) enum Role {
    Client {
        remote: std::net::SocketAddr,
        source: app::Source,
        output: app::Output,
        /// Subflows to join once MPTCP is up (none: one subflow).
        joins: Vec<app::JoinSpec>,
    },
    Server {
        port: u16,
        mode: app::ServerMode,
        /// Exit after the first connection closes.
        once: bool,
        /// What every connection is sent (`--send`, `--in`).
        send: Option<app::ServerSend>,
    },
}

/// How a command reports: `--json`, or the summary lines; `--interval`.
pub(crate) struct Reporting {
    pub json: bool,
    pub interval: Option<std::time::Duration>,
}

/// Run `role` over an endpoint built from `builder`, with signals handled (first: close
/// gracefully; second: abort); print the report; map the outcome to an exit status (0 clean,
/// 130 interrupted) or a one-line error.
pub(crate) fn execute(
    builder: crate::api::Builder,
    role: Role,
    reporting: Reporting,
    connect_timeout: Option<std::time::Duration>,
) -> anyhow::Result<std::process::ExitCode> {
    let json = reporting.json;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        // First: a signal from now on is the run's, never the default action.
        let interrupts =
            app::process_interrupts().map_err(|e| anyhow::anyhow!("cannot handle signals: {e}"))?;
        let ep = builder.build().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut opts = app::Options::new(interrupts);
        opts.connect_timeout = connect_timeout;
        opts.interval = reporting.interval;
        opts.summary = !json;
        // The progress line only on a terminal: never in pipes, files or tests.
        if io::stderr().is_terminal() {
            opts.progress = Some(app::Progress::new(
                Box::new(io::stderr()),
                app::PROGRESS_EVERY,
                app::PROGRESS_AFTER,
            ));
        }
        let (result, report) = match role {
            Role::Client {
                remote,
                source,
                output,
                joins,
            } => app::run_client(&ep, remote, source, output, joins, opts).await,
            Role::Server {
                port,
                mode,
                once,
                send,
            } => app::run_server(&ep, port, mode, once, send, opts).await,
        };
        // The report comes out even after an error: it shows how far the transfer got and
        // why it ended (`error`).
        if json {
            println!("{}", report.to_json());
        }
        let status = match result {
            Ok(status) => status,
            // Interrupted before anything was sent: the exit status of an interruption.
            Err(e @ app::AppError::InterruptedConnecting(_)) => {
                eprintln!("braid: {e}");
                return Ok(std::process::ExitCode::from(130));
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        match status {
            app::Status::Clean => Ok(std::process::ExitCode::SUCCESS),
            app::Status::Interrupted => {
                eprintln!(
                    "braid: interrupted after {} bytes sent, {} received",
                    report.bytes_sent, report.bytes_received
                );
                Ok(std::process::ExitCode::from(130))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_args_parse() {
        let p: PathArg = "braid0=10.0.0.2".parse().unwrap();
        assert_eq!(p.dev, "braid0");
        assert_eq!(p.addr, "10.0.0.2".parse::<IpAddr>().unwrap());
        let p: PathArg = "t1=[fd00::2]".parse().unwrap();
        assert!(p.addr.is_ipv6());
        assert_eq!(p.to_string(), "t1=fd00::2");
        for bad in [
            "braid0",
            "=10.0.0.2",
            "braid0=",
            "braid0=10.0.0",
            "b=0.0.0.0",
            "b=x",
        ] {
            let e = bad.parse::<PathArg>().unwrap_err();
            assert!(e.starts_with("bad --path"), "{bad}: {e}");
        }
    }

    #[test]
    fn address_lists_parse() {
        let v = parse_addrs(
            "--signal",
            &[
                "10.0.0.2".into(),
                "10.1.0.2:5000".into(),
                "[fd00::2]:80".into(),
                "[fd00::3]".into(),
            ],
        )
        .unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[1], "10.1.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(v[3], "fd00::3".parse::<IpAddr>().unwrap());
        let e = parse_addrs("--subflow", &["braid1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad --subflow") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn seconds_parse_and_nonsense_is_one_line() {
        let d = |s| parse_seconds("--connect-timeout", s);
        assert_eq!(d("5").unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(d("0.5").unwrap(), std::time::Duration::from_millis(500));
        for bad in ["", "0", "-1", "x", "nan", "inf", "1e300", "5s"] {
            let e = d(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "bad --connect-timeout {bad:?}: expected a positive"
                )) && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("16777216"), Ok(16 << 20));
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn digits_and_dots_are_an_ipv4_address_never_a_name() {
        assert_eq!(parse_ip("10.0.0.2"), Ok("10.0.0.2".parse().unwrap()));
        assert_eq!(parse_ip("fd00::2"), Ok("fd00::2".parse().unwrap()));
        for (bad, want) in [
            ("10.0.0.999", "10.0.0.999 is not a valid IPv4 address"),
            ("10.0.0", "10.0.0 is not a valid IPv4 address"),
            ("010.0.0.1", "010.0.0.1 is not a valid IPv4 address"),
            ("fd00:::1", "fd00:::1 is not a valid IPv6 address"),
            ("bt0", "expected an IP address, e.g. 10.0.0.2 or fd00::2"),
        ] {
            assert_eq!(parse_ip(bad).unwrap_err(), want);
        }
        let e = "b=10.0.0.999".parse::<PathArg>().unwrap_err();
        assert_eq!(
            e,
            "bad --path \"b=10.0.0.999\": 10.0.0.999 is not a valid IPv4 address"
        );
    }

    #[test]
    fn host_port_is_checked_without_resolving() {
        for ok in [
            "10.0.0.1:5201",
            "[fd00::1]:80",
            "server.example:5201",
            "localhost:1",
        ] {
            assert_eq!(parse_host_port(ok).as_deref(), Ok(ok));
        }
        for (bad, want) in [
            ("10.0.0.999:80", "10.0.0.999 is not a valid IPv4 address"),
            (
                "fd00::1:80",
                "an IPv6 address with a port is written in brackets: [fd00::1]:80",
            ),
            ("fd00::1", "no port; write [fd00::1]:PORT"),
            ("[fd00::1]", "no port; write [fd00::1]:PORT"),
            ("[fd00::1:80", "expected [ADDR] or [ADDR]:PORT"),
            ("[fd00::zz]:80", "fd00::zz is not a valid IPv6 address"),
            ("host", "no port; write HOST:PORT, e.g. 10.0.0.1:5201"),
            ("10.0.0.1:0", "port \"0\" is not a number from 1 to 65535"),
            (
                "10.0.0.1:http",
                "port \"http\" is not a number from 1 to 65535",
            ),
            (":80", "no host before the port"),
        ] {
            let e = parse_host_port(bad).unwrap_err();
            assert_eq!(e, format!("bad HOST:PORT {bad:?}: {want}"));
        }
    }

    #[test]
    fn addresses_with_ports_need_brackets_for_ipv6() {
        let ok = |s| parse_addr_port("--signal", s).unwrap();
        assert_eq!(
            ok("10.0.0.2:8080"),
            ("10.0.0.2".parse().unwrap(), Some(8080))
        );
        assert_eq!(
            ok("[fd00::1]:8080"),
            ("fd00::1".parse().unwrap(), Some(8080))
        );
        // Unbracketed, the last group is part of the address.
        assert_eq!(ok("fd00::1:8080"), ("fd00::1:8080".parse().unwrap(), None));
        let e = parse_addr_port("--signal", "fd00::1:99999").unwrap_err();
        assert_eq!(
            e,
            "bad --signal \"fd00::1:99999\": fd00::1:99999 is not a valid IPv6 address"
        );
        let e = parse_addr_port("--subflow", "10.0.0.999:80").unwrap_err();
        assert_eq!(
            e,
            "bad --subflow \"10.0.0.999:80\": 10.0.0.999 is not a valid IPv4 address"
        );
        // `fd00::1:8080` when fd00::1 is a path's address: the port was probably meant.
        let paths = [PathArg {
            dev: "bt0".into(),
            addr: "fd00::1".parse().unwrap(),
        }];
        let e = parse_signal("fd00::1:8080", &paths)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--signal fd00::1:8080: not the address of any --path (for a port, write \
             [fd00::1]:8080)"
        );
        assert_eq!(
            parse_signal("[fd00::1]:8080", &paths).unwrap().1,
            Some(8080)
        );
    }

    #[test]
    fn a_repeated_path_device_or_address_is_named() {
        let e = parse_paths(&strings(&["bt0=10.0.0.2", "bt0=10.1.0.2"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--path bt0=10.0.0.2 and --path bt0=10.1.0.2: device bt0 given twice; each path \
             has its own TUN device"
        );
        let e = parse_paths(&strings(&["bt0=10.0.0.2", "bt1=fd00::2", "bt2=10.0.0.2"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--path bt0=10.0.0.2 and --path bt2=10.0.0.2: address 10.0.0.2 given twice; each \
             path has its own address"
        );
        assert_eq!(
            parse_paths(&strings(&["bt0=10.0.0.2", "bt1=10.1.0.2"]))
                .unwrap()
                .len(),
            2
        );
        let e = parse_addrs("--subflow", &strings(&["10.1.0.2", "10.1.0.2:80"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--subflow 10.1.0.2 given twice");
    }

    #[test]
    fn ndiffports_says_its_range() {
        assert_eq!(path_manager("ndiffports=8").unwrap().name(), "ndiffports");
        assert!(path_manager("ndiffports=1").is_ok());
        for bad in [
            "ndiffports=0",
            "ndiffports=9",
            "ndiffports=abc",
            "ndiffports=",
            "ndiffports=-1",
        ] {
            let e = path_manager(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "bad --pm {bad:?}: ndiffports=N takes N from 1 to 8 (the subflows over \
                     the first path)"
                )
            );
        }
        let e = path_manager("bogus").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown path manager \"bogus\" (kernel,"),
            "{e}"
        );
    }

    #[test]
    fn listen_ports_are_1_to_65535() {
        assert_eq!(port_value("5201"), Ok(5201));
        for bad in ["0", "65536", "x", "-1"] {
            assert_eq!(
                port_value(bad),
                Err("expected a port from 1 to 65535".into())
            );
        }
    }
}
