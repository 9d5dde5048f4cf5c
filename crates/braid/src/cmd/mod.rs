//! The `braid` subcommands that run over TUN devices, and the argument parsers they share.

pub mod connect;
pub mod ctl;
pub mod help;
pub mod listen;
pub mod sim;
pub mod usage;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use braid_proto::pm::{EndpointFlags, EndpointTable, Limits, PmFactory};

use crate::ctl::CtlServer;
use crate::runtime::{self, Engine, Progress, Runtime, Signals, Status};
use crate::tun::TunDevice;

/// `--path DEV=ADDR`: a TUN device and braid's own address behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    pub dev: String,
    pub addr: IpAddr,
}

impl FromStr for PathArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad --path {s:?}: expected DEV=ADDR, e.g. braid0=10.0.0.2");
        let (dev, addr) = s.split_once('=').ok_or_else(bad)?;
        if dev.is_empty() {
            return Err(bad());
        }
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?;
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

impl fmt::Display for PathArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.dev, self.addr)
    }
}

/// Parse every `--path DEV=ADDR`; at least one is required.
pub(crate) fn parse_paths(args: &[String]) -> anyhow::Result<Vec<PathArg>> {
    if args.is_empty() {
        anyhow::bail!("give at least one --path DEV=ADDR");
    }
    args.iter()
        .map(|s| s.parse::<PathArg>().map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
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
/// ADDR[:PORT]`); a port, if given, is dropped.
pub(crate) fn parse_addrs(flag: &str, args: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    args.iter()
        .map(|s| {
            let t = s.trim();
            t.parse::<IpAddr>()
                .ok()
                .or_else(|| t.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
                .or_else(|| {
                    t.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .ok()
                })
                .ok_or_else(|| anyhow::anyhow!("bad {flag} {s:?}: expected an IP address"))
        })
        .collect()
}

/// The path-management options `braid connect` and `braid listen` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PmArgs {
    /// Announce this address of a --path (ADDR or ADDR:PORT, [V6]:PORT) with ADD_ADDR: a
    /// `signal` endpoint, as `ip mptcp endpoint add ADDR signal`.
    #[arg(long = "signal", value_name = "ADDR[:PORT]")]
    pub signals: Vec<String>,
    /// Path-manager limits, `subflows=N,add_addr_accepted=M` (either or both; at most 8
    /// each; the defaults are the kernel's, 2 and 0).
    #[arg(long, value_name = "LIMITS")]
    pub limits: Option<String>,
    /// The path manager of every connection: kernel (the default), fullmesh,
    /// ndiffports[=N] or sspi.
    #[arg(long = "pm", value_name = "POLICY", default_value = "kernel")]
    pub pm: String,
    /// Serve the control plane on this Unix socket (braid endpoint|limits|monitor|stat|
    /// counters --ctl PATH); created with mode 0600.
    #[arg(long, value_name = "PATH")]
    pub ctl: Option<std::path::PathBuf>,
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

/// `--limits subflows=N,add_addr_accepted=M`.
pub(crate) fn parse_limits(s: &str) -> anyhow::Result<Limits> {
    let (mut subflows, mut accepted) = (u32::from(Limits::default().subflows), 0);
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("bad --limits {s:?}: expected subflows=N,add_addr_accepted=M")
        })?;
        let n: u32 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("bad --limits {s:?}: {v:?} is not a number"))?;
        match k {
            "subflows" => subflows = n,
            "add_addr_accepted" => accepted = n,
            _ => anyhow::bail!(
                "bad --limits {s:?}: unknown limit {k:?} (subflows, add_addr_accepted)"
            ),
        }
    }
    Limits::new(subflows, accepted).map_err(|e| anyhow::anyhow!("bad --limits {s:?}: {e}"))
}

/// `--signal ADDR[:PORT]`: an address (and port) of a --path.
pub(crate) fn parse_signal(s: &str, paths: &[PathArg]) -> anyhow::Result<(PathArg, Option<u16>)> {
    let bad = || anyhow::anyhow!("bad --signal {s:?}: expected ADDR or ADDR:PORT");
    let (addr, port) = if let Ok(a) = s.parse::<IpAddr>() {
        (a, None)
    } else {
        let sa: std::net::SocketAddr = s.parse().map_err(|_| bad())?;
        (sa.ip(), Some(sa.port()).filter(|p| *p != 0))
    };
    let path = paths
        .iter()
        .find(|p| p.addr == addr)
        .ok_or_else(|| anyhow::anyhow!("--signal {addr}: not the address of any --path"))?;
    Ok((path.clone(), port))
}

/// The engine's configuration from the path-management options: `signal` endpoints, the
/// limits, the policy, and every --path address as a possible subflow source.
pub(crate) fn pm_config(
    pm: &PmArgs,
    paths: &[PathArg],
) -> anyhow::Result<braid_proto::EndpointConfig> {
    let mut table = EndpointTable::new();
    if let Some(l) = &pm.limits {
        table.set_limits(parse_limits(l)?);
    }
    for s in &pm.signals {
        let (path, port) = parse_signal(s, paths)?;
        table
            .add(
                path.addr,
                None,
                port,
                Some(path.dev.clone()),
                EndpointFlags::SIGNAL,
            )
            .map_err(|e| anyhow::anyhow!("--signal {s}: {e}"))?;
    }
    let factory = PmFactory::by_name(&pm.pm).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown path manager {:?} (kernel, fullmesh, ndiffports, ndiffports=N, sspi)",
            pm.pm
        )
    })?;
    Ok(braid_proto::EndpointConfig {
        pm_table: table,
        path_manager: factory,
        local_addrs: paths.iter().map(|p| p.addr).collect(),
        ..braid_proto::EndpointConfig::default()
    })
}

/// Open every `--path` device, in order.
pub(crate) fn open_paths(args: &[PathArg]) -> anyhow::Result<Vec<runtime::Path>> {
    let mut paths = Vec::with_capacity(args.len());
    for p in args {
        let dev = TunDevice::open(&p.dev).map_err(|e| anyhow::anyhow!("{e}"))?;
        paths.push(runtime::Path {
            device: Box::new(dev),
            addr: p.addr,
        });
    }
    Ok(paths)
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
pub(crate) fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::BufWriter::new(io::stdout())));
    }
    let f = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(Box::new(io::BufWriter::new(f)))
}

/// Run `role` on a runtime with signals handled; print the report; map the outcome to an
/// exit status (0 clean, 130 interrupted) or a one-line error.
pub(crate) fn execute<E: Engine>(
    engine: E,
    paths: Vec<runtime::Path>,
    role: runtime::Role,
    mptcp: bool,
    json: bool,
    ctl: Option<CtlServer>,
    connect_timeout: Option<std::time::Duration>,
) -> anyhow::Result<std::process::ExitCode> {
    let signals = Signals::install().map_err(|e| anyhow::anyhow!("cannot handle signals: {e}"))?;
    // Errors become one flat line: their Display already names the cause.
    let flat = |e: runtime::RuntimeError| anyhow::anyhow!("{e}");
    let mut rt = Runtime::new(engine, paths)
        .map_err(flat)?
        .with_signals(signals)
        .with_mptcp(mptcp);
    if let Some(server) = ctl {
        rt = rt.with_ctl(server);
    }
    if let Some(d) = connect_timeout {
        rt = rt.with_connect_timeout(d);
    }
    // The progress line only on a terminal: never in pipes, files or tests.
    if io::stderr().is_terminal() {
        rt = rt.with_progress(Progress::new(
            Box::new(io::stderr()),
            runtime::PROGRESS_EVERY,
            runtime::PROGRESS_AFTER,
        ));
    }
    let (result, report) = rt.run_reporting(role);
    // The report comes out even after an error: it shows how far the transfer got and why
    // it ended (`error`).
    if json {
        println!("{}", report.to_json());
    }
    let status = match result {
        Ok(status) => status,
        // Interrupted before anything was sent: the exit status of an interruption.
        Err(e @ runtime::RuntimeError::InterruptedConnecting(_)) => {
            eprintln!("braid: {e}");
            return Ok(std::process::ExitCode::from(130));
        }
        Err(e) => return Err(flat(e)),
    };
    match status {
        Status::Clean => Ok(std::process::ExitCode::SUCCESS),
        Status::Interrupted => {
            eprintln!(
                "braid: interrupted after {} bytes sent, {} received",
                report.bytes_sent, report.bytes_received
            );
            Ok(std::process::ExitCode::from(130))
        }
    }
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
}
