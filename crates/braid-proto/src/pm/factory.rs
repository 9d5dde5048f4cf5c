//! [`PmFactory`]: how an endpoint builds the [`PathManager`] of each MPTCP connection.

use core::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::{EndpointTable, KernelPm, LocalAddr, PathManager, Plan, PmConfig, PolicyPm};
use crate::time::Duration;

/// What a factory knows when it builds a connection's manager.
#[derive(Debug, Clone, Copy)]
pub struct PmContext<'a> {
    /// The endpoint's endpoints and limits at the time the connection is created.
    pub table: &'a EndpointTable,
    /// Local addresses subflows may leave from (besides the endpoints').
    pub local_addrs: &'a [IpAddr],
    /// The connection was opened by us (client role); false for a listener's.
    pub active: bool,
}

/// The function behind a [`PmFactory`].
pub type PmBuilder = dyn Fn(&PmContext<'_>) -> Box<dyn PathManager> + Send + Sync;

/// Builds one [`PathManager`] per MPTCP connection (a policy chosen per endpoint; the
/// default is [`PmFactory::kernel`]).
#[derive(Clone)]
pub struct PmFactory {
    name: &'static str,
    build: Arc<PmBuilder>,
}

impl PmFactory {
    /// A factory from a name and a builder.
    pub fn new(
        name: &'static str,
        build: impl Fn(&PmContext<'_>) -> Box<dyn PathManager> + Send + Sync + 'static,
    ) -> PmFactory {
        PmFactory {
            name,
            build: Arc::new(build),
        }
    }

    /// The kernel's in-kernel manager ([`KernelPm`]). ADD_ADDR retransmission is the
    /// connection's job (`MptcpConfig::add_addr_timeout`), so the manager does not repeat
    /// its announcements itself.
    pub fn kernel() -> PmFactory {
        PmFactory::new("kernel", |ctx| {
            let cfg = PmConfig {
                add_addr_retrans_max: 0,
                add_addr_timeout: Duration::from_secs(120),
                ..PmConfig::default()
            };
            Box::new(KernelPm::with_config(
                cfg,
                ctx.table.endpoints(),
                ctx.table.limits(),
                ctx.local_addrs,
            ))
        })
    }

    /// A [`PolicyPm`] carrying out `plan` (`fullmesh`, `ndiffports`, `sspi`) with the
    /// endpoint's limits; its local addresses are the endpoints' (ids, devices and backup
    /// flags as configured) and then the other local addresses (the next free ids).
    pub fn policy(plan: Plan) -> PmFactory {
        PmFactory::new(plan.name(), move |ctx| {
            let mut locals: Vec<LocalAddr> = ctx
                .table
                .endpoints()
                .iter()
                .map(LocalAddr::from_endpoint)
                .collect();
            for &addr in ctx.local_addrs {
                if locals.iter().any(|l| l.addr == addr) {
                    continue;
                }
                let Some(id) = (1..=u8::MAX).find(|i| locals.iter().all(|l| l.id != *i)) else {
                    break;
                };
                locals.push(LocalAddr {
                    addr,
                    id,
                    dev: None,
                    backup: false,
                });
            }
            Box::new(PolicyPm::new(plan, ctx.table.limits(), locals, ctx.active))
        })
    }

    /// A built-in policy by name: `kernel`, `fullmesh`, `sspi`, `ndiffports` (2 subflows)
    /// or `ndiffports=N` (N from 1 to 8).
    pub fn by_name(name: &str) -> Option<PmFactory> {
        Some(match name {
            "kernel" => PmFactory::kernel(),
            "fullmesh" => PmFactory::policy(Plan::Fullmesh),
            "sspi" => PmFactory::policy(Plan::Sspi),
            "ndiffports" => PmFactory::policy(Plan::NDiffPorts(2)),
            _ => {
                let n: u8 = name.strip_prefix("ndiffports=")?.parse().ok()?;
                if !(1..=super::MAX_LIMIT).contains(&n) {
                    return None;
                }
                PmFactory::policy(Plan::NDiffPorts(n))
            }
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A manager for a new connection.
    pub fn build(&self, ctx: &PmContext<'_>) -> Box<dyn PathManager> {
        (self.build)(ctx)
    }
}

impl Default for PmFactory {
    fn default() -> Self {
        PmFactory::kernel()
    }
}

impl fmt::Debug for PmFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PmFactory")
            .field("name", &self.name)
            .finish()
    }
}
