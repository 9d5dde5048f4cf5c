//! Helpers of the kernel path manager's tests (`pm_kernel.rs`, `pm_kernel_live.rs`):
//! endpoints, limits, the connection's addresses and a path manager run event by event.
//! Include it with `#[path = "common/pm.rs"] mod pm;`.
#![allow(dead_code, unused_imports)]

pub use std::net::{IpAddr, SocketAddr};

pub use braid_proto::pm::{
    EndpointFlags as F, KernelPm, Limits, PathManager, PmCommand as C, PmConfig, PmEndpoint,
    PmEvent as E, SubflowAddrs, SubflowError,
};
pub use braid_proto::{Duration, Instant};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}
pub fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}
pub fn ep(id: u8, addr: &str, flags: F) -> PmEndpoint {
    PmEndpoint {
        id,
        addr: ip(addr),
        port: None,
        dev: None,
        flags,
    }
}
pub fn limits(subflows: u32, accepted: u32) -> Limits {
    Limits::new(subflows, accepted).expect("valid limits")
}

pub const LOCAL: &str = "10.0.1.1:40000";
pub const REMOTE: &str = "10.0.1.2:443";
pub const T0: Instant = Instant::ZERO;

pub fn at(secs: u64) -> Instant {
    T0 + Duration::from_secs(secs)
}

pub fn run(pm: &mut dyn PathManager, now: Instant, ev: E) -> Vec<C> {
    let mut out = Vec::new();
    pm.handle(now, &ev, &mut out);
    out
}

pub fn established(pm: &mut dyn PathManager) -> Vec<C> {
    run(
        pm,
        T0,
        E::ConnectionEstablished {
            local: sa(LOCAL),
            remote: sa(REMOTE),
            remote_denies_join: false,
        },
    )
}

pub fn create(local: &str, local_id: u8, remote: &str, remote_id: u8, backup: bool) -> C {
    C::CreateSubflow {
        local: ip(local),
        local_id,
        remote: sa(remote),
        remote_id,
        backup,
    }
}

pub fn addrs(local: &str, remote: &str) -> SubflowAddrs {
    SubflowAddrs {
        local: sa(local),
        remote: sa(remote),
    }
}
