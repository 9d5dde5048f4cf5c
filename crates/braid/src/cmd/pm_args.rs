//! The path-management options the commands share (`--signal`, `--limits`, `--pm`, `--ctl`,
//! a server's `--backup`) and how they become the engine's endpoint table and policy.

use std::net::IpAddr;

use braid_proto::pm::{EndpointFlags, EndpointTable, FlagChange, Limits, PmFactory};

use super::*;

/// The path-management options `braid connect` and `braid listen` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PmArgs {
    /// Announce this address of a --path (ADDR or ADDR:PORT, [V6]:PORT) with ADD_ADDR: a
    /// `signal` endpoint, as `ip mptcp endpoint add ADDR signal`.
    #[arg(long = "signal", value_name = "ADDR[:PORT]", value_parser = signal_value)]
    pub signals: Vec<String>,
    /// Path-manager limits, `subflows=N,add_addr_accepted=M` (either or both; at most 8
    /// each; the defaults are the kernel's, 2 and 0).
    #[arg(long, value_name = "LIMITS", value_parser = limits_value)]
    pub limits: Option<String>,
    /// The path manager of every connection: kernel (the default), fullmesh,
    /// ndiffports[=N] (N from 1 to 8; 2 without) or sspi.
    #[arg(long = "pm", value_name = "POLICY", default_value = "kernel", value_parser = pm_value)]
    pub pm: String,
    /// Serve the control plane on this Unix socket (braid endpoint|limits|monitor|stat|
    /// counters --ctl PATH); created with mode 0600.
    #[arg(long, value_name = "PATH")]
    pub ctl: Option<std::path::PathBuf>,
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
    let (addr, port) = parse_addr_port("--signal", s).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(path) = paths.iter().find(|p| p.addr == addr) else {
        // `fd00::1:8080` is the address fd00::1:8080; a port may have been meant.
        if let Some(hint) = bracket_hint(s.trim()) {
            anyhow::bail!(
                "--signal {addr}: not the address of any --path (for a port, write {hint})"
            );
        }
        anyhow::bail!("--signal {addr}: not the address of any --path");
    };
    Ok((path.clone(), port))
}

/// The path manager of `--pm POLICY`, or a one-line refusal naming the valid ones.
pub(crate) fn path_manager(s: &str) -> anyhow::Result<PmFactory> {
    if let Some(n) = s.strip_prefix("ndiffports=") {
        let max = braid_proto::pm::MAX_LIMIT;
        if !n.parse::<u8>().is_ok_and(|n| (1..=max).contains(&n)) {
            anyhow::bail!(
                "bad --pm {s:?}: ndiffports=N takes N from 1 to {max} (the subflows over the \
                 first path)"
            );
        }
    }
    PmFactory::by_name(s).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown path manager {s:?} (kernel, fullmesh, ndiffports, ndiffports=N, sspi)"
        )
    })
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
    let factory = path_manager(&pm.pm)?;
    Ok(braid_proto::EndpointConfig {
        pm_table: table,
        path_manager: factory,
        local_addrs: paths.iter().map(|p| p.addr).collect(),
        ..braid_proto::EndpointConfig::default()
    })
}

/// `--backup ADDR` of a server: a `backup` endpoint for each address (the flag added to the
/// endpoint the address already has, e.g. a `--signal` one), so that the subflows joining
/// on it are asked to be backup ones (the MP_JOIN B bit in braid's SYN/ACK).
pub(crate) fn backup_endpoints(
    config: &mut braid_proto::EndpointConfig,
    paths: &[PathArg],
    backups: &[IpAddr],
) -> anyhow::Result<()> {
    for b in backups {
        let Some(path) = paths.iter().find(|p| p.addr == *b) else {
            anyhow::bail!("--backup {b}: not the address of any --path");
        };
        let table = &mut config.pm_table;
        let known = table
            .endpoints()
            .iter()
            .find(|e| e.addr == *b)
            .map(|e| e.id);
        let done = match known {
            Some(id) => table.change(id, FlagChange::Backup).map(|_| ()),
            None => table
                .add(
                    *b,
                    None,
                    None,
                    Some(path.dev.clone()),
                    EndpointFlags::BACKUP,
                )
                .map(|_| ()),
        };
        done.map_err(|e| anyhow::anyhow!("--backup {b}: {e}"))?;
    }
    Ok(())
}
