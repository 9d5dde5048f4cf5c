//! The control plane of a running braid instance: a Unix socket (`--ctl PATH`) speaking
//! JSON lines, and the argument syntax of `ip mptcp` for the commands that drive it.
//!
//! One request per line from the client, one response per line from the instance
//! ([`Request`], [`Response`]); `monitor` is answered with `{"ok":true}` and then one
//! [`MonitorEvent`] per line until the client goes away. The socket file is created with mode
//! 0600 before anyone can reach it (bound inside a fresh 0700 directory, then linked into
//! place), so only its owner (and root) can connect. The path may hold nothing or a stale
//! socket (one nobody answers on), which is replaced; anything else there (a regular file, a
//! directory, a symbolic link, a FIFO, a live socket) is refused and left as it is. On exit
//! the socket is removed only while the path still names the file braid created.
//!
//! [`CtlServer`] is non-blocking and driven by the endpoint's driver task: [`CtlServer::poll`]
//! accepts clients, reads their requests and answers them through a [`CtlHandler`] (the
//! instance's endpoint and path manager), and leaves the task's waker with every socket it
//! waits on. Every buffer is bounded: a request line of at most [`MAX_LINE`] bytes,
//! at most [`MAX_CLIENTS`] clients, and a monitor client that does not read its events is
//! dropped once [`MAX_PENDING`] bytes wait for it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use braid_proto::endpoint::PmNotice;
use braid_proto::pm::{
    validate_flags, EndpointFlags, FlagChange, Limits, PmEndpoint, PmError, PmEvent, SubflowError,
};
use braid_proto::{Endpoint, Instant, TcpState};
use serde::{Deserialize, Serialize};

mod client;
mod engine;
mod server;
mod sockfile;
mod words;

pub use client::CtlClient;
pub use engine::{connection_stats, listener_event, monitor_events, EndpointCtl};
pub use server::{CtlError, CtlHandler, CtlServer};
use sockfile::{file_id, inspect, private_dir, Found};
use words::parse_flag;
pub use words::{flag_names, parse_change, parse_endpoint_args, parse_limits_args};

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;
/// Most clients connected at once.
pub const MAX_CLIENTS: usize = 16;
/// Most bytes queued for one client before it is dropped.
pub const MAX_PENDING: usize = 1 << 20;

/// An endpoint on the wire (the fields of `ip mptcp endpoint show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Address id; `None` in an `add` lets the instance pick the lowest free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    pub addr: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Flag names: `signal`, `subflow`, `backup`, `fullmesh`.
    #[serde(default)]
    pub flags: Vec<String>,
}

impl EndpointSpec {
    /// The spec of an endpoint.
    pub fn from_endpoint(ep: &PmEndpoint) -> EndpointSpec {
        EndpointSpec {
            id: Some(ep.id),
            addr: ep.addr,
            port: ep.port,
            dev: ep.dev.clone(),
            flags: flag_names(ep.flags),
        }
    }

    /// The flags, validated like `ip mptcp endpoint add` (a port needs `signal`, `signal`
    /// and `fullmesh` exclude each other).
    pub fn endpoint_flags(&self) -> Result<EndpointFlags, String> {
        let mut f = EndpointFlags::NONE;
        for name in &self.flags {
            f = f.with(parse_flag(name)?, true);
        }
        validate_flags(f, self.port).map_err(|e| e.to_string())?;
        Ok(f)
    }
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    EndpointAdd {
        endpoint: EndpointSpec,
    },
    EndpointDelete {
        id: u8,
    },
    EndpointShow,
    EndpointFlush,
    EndpointChange {
        id: u8,
        change: String,
    },
    LimitsSet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subflows: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_addr_accepted: Option<u8>,
    },
    LimitsShow,
    Monitor,
    Stat,
    Counters,
}

/// One subflow in `stat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubflowStat {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_id: u8,
    pub remote_id: u8,
    pub backup: bool,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    pub cwnd: u64,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
    #[serde(default)]
    pub stale: bool,
}

/// One connection in `stat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnStat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub mptcp: bool,
    pub state: String,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub subflows: Vec<SubflowStat>,
}

/// A path-management event for `monitor`, with the kernel's event names (`CREATED`,
/// `ESTABLISHED`, `CLOSED`, `ANNOUNCED`, `REMOVED`, `SUB_ESTABLISHED`, `SUB_CLOSED`,
/// `SUB_PRIORITY`, `LISTENER_CREATED`, `LISTENER_CLOSED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// For `ANNOUNCED`: the announced address (and port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// For `SUB_CLOSED`: why, when the subflow failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MonitorEvent {
    /// An event of `kind` with no details yet.
    pub fn new(kind: &str) -> MonitorEvent {
        MonitorEvent {
            kind: kind.to_string(),
            token: None,
            local: None,
            remote: None,
            local_id: None,
            remote_id: None,
            backup: None,
            addr: None,
            port: None,
            error: None,
        }
    }

    /// One line like `ip mptcp monitor`: `[SUB_ESTABLISHED] token=… remid=… locid=… …`.
    pub fn to_line(&self) -> String {
        let mut s = format!("[{:>16}]", self.kind);
        if let Some(t) = self.token {
            s += &format!(" token={t:08x}");
        }
        if let Some(r) = self.remote_id {
            s += &format!(" remid={r}");
        }
        if let Some(l) = self.local_id {
            s += &format!(" locid={l}");
        }
        if let Some(a) = self.addr {
            s += &format!(" addr={a}");
        }
        if let Some(p) = self.port {
            s += &format!(" port={p}");
        }
        if let Some(l) = self.local {
            s += &format!(" saddr={} sport={}", l.ip(), l.port());
        }
        if let Some(r) = self.remote {
            s += &format!(" daddr={} dport={}", r.ip(), r.port());
        }
        if let Some(b) = self.backup {
            s += &format!(" backup={}", u8::from(b));
        }
        if let Some(e) = &self.error {
            s += &format!(" error={e}");
        }
        s
    }
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// False with `error` set when the request was refused.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<EndpointSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<ConnStat>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<BTreeMap<String, u64>>,
}

impl Response {
    /// A success with nothing attached.
    pub fn ok() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    /// A refusal with a one-line reason.
    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Response::default()
        }
    }
}

/// Limits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsSpec {
    pub subflows: u8,
    pub add_addr_accepted: u8,
}

impl From<Limits> for LimitsSpec {
    fn from(l: Limits) -> Self {
        LimitsSpec {
            subflows: l.subflows,
            add_addr_accepted: l.add_addr_accepted,
        }
    }
}

impl std::fmt::Display for LimitsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "add_addr_accepted {} subflows {}",
            self.add_addr_accepted, self.subflows
        )
    }
}

impl std::fmt::Display for EndpointSpec {
    /// One line like `ip mptcp endpoint show`: `10.0.0.2 port 8080 id 3 signal dev eth1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(p) = self.port {
            write!(f, " port {p}")?;
        }
        if let Some(id) = self.id {
            write!(f, " id {id}")?;
        }
        for flag in &self.flags {
            write!(f, " {flag}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------- ip-mptcp syntax
