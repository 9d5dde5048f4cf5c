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

mod sockfile;
use sockfile::{file_id, inspect, private_dir, Found};

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

fn parse_flag(name: &str) -> Result<EndpointFlags, String> {
    Ok(match name {
        "signal" => EndpointFlags::SIGNAL,
        "subflow" => EndpointFlags::SUBFLOW,
        "backup" => EndpointFlags::BACKUP,
        "fullmesh" => EndpointFlags::FULLMESH,
        _ => return Err(format!("unknown endpoint flag \"{name}\"")),
    })
}

/// The names of the flags set in `f`, in the kernel's order.
pub fn flag_names(f: EndpointFlags) -> Vec<String> {
    [
        (EndpointFlags::SIGNAL, "signal"),
        (EndpointFlags::SUBFLOW, "subflow"),
        (EndpointFlags::BACKUP, "backup"),
        (EndpointFlags::FULLMESH, "fullmesh"),
    ]
    .into_iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, n)| n.to_string())
    .collect()
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

/// The change named in an `endpoint change` request.
pub fn parse_change(s: &str) -> Result<FlagChange, String> {
    Ok(match s {
        "backup" => FlagChange::Backup,
        "nobackup" => FlagChange::NoBackup,
        "fullmesh" => FlagChange::Fullmesh,
        "nofullmesh" => FlagChange::NoFullmesh,
        _ => {
            return Err(format!(
                "unknown change \"{s}\": expected backup, nobackup, fullmesh or nofullmesh"
            ))
        }
    })
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

fn next_value<'a>(it: &mut impl Iterator<Item = &'a str>, key: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| format!("\"{key}\" needs a value"))
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str, max: u64) -> Result<T, String> {
    let bad = || format!("invalid {key} \"{v}\"");
    let n: u64 = v.parse().map_err(|_| bad())?;
    if n > max {
        return Err(bad());
    }
    v.parse().map_err(|_| bad())
}

/// `endpoint add ADDR [dev DEV] [id N] [port P] [signal] [subflow] [backup] [fullmesh]`,
/// `endpoint delete id N`, `endpoint show`, `endpoint flush`,
/// `endpoint change id N backup|nobackup|fullmesh|nofullmesh`: the words after `endpoint`.
pub fn parse_endpoint_args(words: &[String]) -> Result<Request, String> {
    let mut it = words.iter().map(String::as_str);
    let verb = it
        .next()
        .ok_or("endpoint: expected add, delete, show, flush or change")?;
    match verb {
        "add" => {
            let addr_s = next_value(&mut it, "add")?;
            let addr: IpAddr = addr_s.parse().map_err(|_| {
                // Only digits and dots: an IPv4 address, mistyped (no name is looked up).
                if addr_s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    format!("invalid address \"{addr_s}\": not a valid IPv4 address")
                } else if addr_s.contains(':') {
                    format!("invalid address \"{addr_s}\": not a valid IPv6 address")
                } else {
                    format!("invalid address \"{addr_s}\"")
                }
            })?;
            if addr.is_unspecified() || addr.is_multicast() {
                return Err(PmError::InvalidAddress(addr).to_string());
            }
            let mut spec = EndpointSpec {
                id: None,
                addr,
                port: None,
                dev: None,
                flags: Vec::new(),
            };
            while let Some(w) = it.next() {
                match w {
                    "dev" => spec.dev = Some(next_value(&mut it, w)?.to_string()),
                    "id" => {
                        let id: u8 = parse_num(w, next_value(&mut it, w)?, 255)?;
                        if id == 0 {
                            return Err(PmError::InvalidId(0).to_string());
                        }
                        spec.id = Some(id);
                    }
                    "port" => spec.port = Some(parse_num(w, next_value(&mut it, w)?, 65535)?),
                    "signal" | "subflow" | "backup" | "fullmesh" => {
                        if !spec.flags.iter().any(|f| f == w) {
                            spec.flags.push(w.to_string());
                        }
                    }
                    _ => return Err(format!("unknown argument \"{w}\"")),
                }
            }
            spec.endpoint_flags()?;
            Ok(Request::EndpointAdd { endpoint: spec })
        }
        "delete" | "del" => {
            let id = match (it.next(), it.next()) {
                (Some("id"), Some(v)) => parse_num("id", v, 255)?,
                _ => return Err("endpoint delete: expected \"id N\"".into()),
            };
            no_more(it)?;
            Ok(Request::EndpointDelete { id })
        }
        "show" => {
            no_more(it)?;
            Ok(Request::EndpointShow)
        }
        "flush" => {
            no_more(it)?;
            Ok(Request::EndpointFlush)
        }
        "change" => {
            let id = match (it.next(), it.next()) {
                (Some("id"), Some(v)) => parse_num("id", v, 255)?,
                _ => return Err("endpoint change: expected \"id N\"".into()),
            };
            let change = it
                .next()
                .ok_or("endpoint change: expected backup, nobackup, fullmesh or nofullmesh")?;
            parse_change(change)?;
            no_more(it)?;
            Ok(Request::EndpointChange {
                id,
                change: change.to_string(),
            })
        }
        _ => Err(format!(
            "endpoint: unknown command \"{verb}\" (add, delete, show, flush, change)"
        )),
    }
}

/// `limits set [subflows N] [add_addr_accepted N]` and `limits show`: the words after
/// `limits`. Values above 8 are refused as the kernel does.
pub fn parse_limits_args(words: &[String]) -> Result<Request, String> {
    let mut it = words.iter().map(String::as_str);
    match it.next() {
        Some("set") => {
            let (mut subflows, mut accepted) = (None, None);
            while let Some(w) = it.next() {
                let v = next_value(&mut it, w)?;
                let n: u32 = v.parse().map_err(|_| format!("invalid {w} \"{v}\""))?;
                match w {
                    "subflows" => subflows = Some(n),
                    "add_addr_accepted" => accepted = Some(n),
                    _ => return Err(format!("unknown argument \"{w}\"")),
                }
            }
            // Validated with the kernel's rule (at most 8 each).
            let l = Limits::new(subflows.unwrap_or(0), accepted.unwrap_or(0))
                .map_err(|e| e.to_string())?;
            Ok(Request::LimitsSet {
                subflows: subflows.map(|_| l.subflows),
                add_addr_accepted: accepted.map(|_| l.add_addr_accepted),
            })
        }
        Some("show") | None => {
            no_more(it)?;
            Ok(Request::LimitsShow)
        }
        Some(w) => Err(format!("limits: unknown command \"{w}\" (set, show)")),
    }
}

fn no_more<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<(), String> {
    match it.next() {
        Some(w) => Err(format!("unexpected argument \"{w}\"")),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------- server

/// What answers the requests: the running instance.
pub trait CtlHandler {
    /// Answers one request (never [`Request::Monitor`], which the server handles).
    fn handle(&mut self, req: Request) -> Response;
}

#[derive(Debug)]
struct Client {
    stream: ClientStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    monitor: bool,
    closing: bool,
}

/// The control socket of a running instance. See the [module docs](self).
#[derive(Debug)]
pub struct CtlServer {
    listener: Listener,
    path: PathBuf,
    /// Device and inode of the socket file this server created: on drop the path is removed
    /// only while it still names that file.
    file_id: (u64, u64),
    clients: Vec<Client>,
    /// Listeners open now: their `LISTENER_CREATED` is replayed to every new monitor.
    listeners: Vec<MonitorEvent>,
}

/// A client's socket, registered with the tokio reactor; `Read`/`Write` never block (a
/// socket that is not ready gives `WouldBlock`).
#[derive(Debug)]
struct ClientStream(tokio::net::UnixStream);

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The listening socket: bound at once, registered with the reactor at the first poll
/// (binding happens before any runtime exists).
#[derive(Debug)]
enum Listener {
    Bound(UnixListener),
    Registered(tokio::net::UnixListener),
    /// The reactor refused it (no client can come).
    Failed,
}

/// Why the control socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("control socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("control socket {0}: a braid instance (or another program) is listening there")]
    InUse(PathBuf),
    /// Something other than a socket is at the path: never replaced.
    #[error(
        "control socket {path}: {kind} is in the way (braid replaces only a stale socket); \
         remove it or choose another path"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
}

impl CtlServer {
    /// Creates the socket at `path` with mode 0600. Only a stale socket (one nobody answers
    /// on) is replaced: a live socket, and a file of any other kind (regular file,
    /// directory, symbolic link, FIFO...), are errors and stay untouched.
    pub fn bind(path: &Path) -> Result<CtlServer, CtlError> {
        let io_err = |what| {
            let path = path.to_path_buf();
            move |source| CtlError::Io { path, what, source }
        };
        let found = inspect(path)?;
        // Bound inside a private directory, given mode 0600, then linked into place: nobody
        // can connect before the permissions are set.
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = private_dir(&parent).map_err(io_err("creating a private directory"))?;
        let tmp = dir.join("ctl");
        let result = (|| {
            let listener = UnixListener::bind(&tmp).map_err(io_err("bind"))?;
            listener
                .set_nonblocking(true)
                .map_err(io_err("set_nonblocking"))?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
                .map_err(io_err("chmod 0600"))?;
            let id = file_id(&fs::symlink_metadata(&tmp).map_err(io_err("stat"))?);
            if let Found::StaleSocket(stale) = found {
                // Removed only if it is still the stale socket inspected above.
                match fs::symlink_metadata(path) {
                    Ok(m) if file_id(&m) == stale => {
                        fs::remove_file(path).map_err(io_err("removing the stale socket"))?
                    }
                    _ => {}
                }
            }
            // A link, unlike a rename, never replaces what may have appeared there since.
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    match inspect(path) {
                        Err(refused) => refused,
                        Ok(_) => io_err("moving into place")(e),
                    }
                } else {
                    io_err("moving into place")(e)
                }
            })?;
            Ok((listener, id))
        })();
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_dir(&dir);
        let (listener, file_id) = result?;
        Ok(CtlServer {
            listener: Listener::Bound(listener),
            path: path.to_path_buf(),
            file_id,
            clients: Vec::new(),
            listeners: Vec::new(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Monitor clients connected.
    pub fn monitors(&self) -> usize {
        self.clients.iter().filter(|c| c.monitor).count()
    }

    /// Accepts clients, answers complete requests, flushes output. Never blocks; the task
    /// of `cx` is woken when a socket has more (call it from inside a tokio runtime).
    pub fn poll(&mut self, cx: &mut Context<'_>, handler: &mut dyn CtlHandler) {
        if let Listener::Bound(_) = self.listener {
            let bound = std::mem::replace(&mut self.listener, Listener::Failed);
            if let Listener::Bound(l) = bound {
                if let Ok(t) = tokio::net::UnixListener::from_std(l) {
                    self.listener = Listener::Registered(t);
                }
            }
        }
        if let Listener::Registered(l) = &self.listener {
            loop {
                match l.poll_accept(cx) {
                    Poll::Ready(Ok((stream, _))) => {
                        if self.clients.len() >= MAX_CLIENTS {
                            let msg = format!("{}\n", line(&Response::error("too many clients")));
                            let _ = stream.try_write(msg.as_bytes());
                            continue;
                        }
                        self.clients.push(Client {
                            stream: ClientStream(stream),
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            monitor: false,
                            closing: false,
                        });
                    }
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(_)) | Poll::Pending => break,
                }
            }
        }
        for c in &mut self.clients {
            let was_monitor = c.monitor;
            read_requests(c, handler);
            if c.monitor && !was_monitor {
                for ev in &self.listeners {
                    c.outbuf.extend_from_slice(line(ev).as_bytes());
                    c.outbuf.push(b'\n');
                }
            }
            flush(c);
        }
        self.clients
            .retain(|c| !(c.closing && c.outbuf.is_empty()) && c.outbuf.len() <= MAX_PENDING);
        // Leave the waker with every socket; one that became ready meanwhile is served at
        // the next poll, which comes at once.
        let mut again = false;
        for c in &self.clients {
            if !c.closing {
                again |= c.stream.0.poll_read_ready(cx).is_ready();
            }
            if !c.outbuf.is_empty() {
                again |= c.stream.0.poll_write_ready(cx).is_ready();
            }
        }
        if again {
            cx.waker().wake_by_ref();
        }
    }

    /// Sends `ev` to every monitor client. A `LISTENER_CREATED` is also kept for monitors
    /// that come later, until its `LISTENER_CLOSED`.
    pub fn publish(&mut self, ev: &MonitorEvent) {
        match ev.kind.as_str() {
            "LISTENER_CREATED" => self.listeners.push(ev.clone()),
            "LISTENER_CLOSED" => self.listeners.retain(|l| l.local != ev.local),
            _ => {}
        }
        let l = line(ev);
        for c in self.clients.iter_mut().filter(|c| c.monitor && !c.closing) {
            c.outbuf.extend_from_slice(l.as_bytes());
            c.outbuf.push(b'\n');
            flush(c);
        }
        self.clients.retain(|c| c.outbuf.len() <= MAX_PENDING);
    }
}

impl Drop for CtlServer {
    /// Removes the socket file, only while the path still names the one this server created
    /// (someone may have replaced it since).
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.file_id) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        format!("{{\"ok\":false,\"error\":\"cannot encode the response: {e}\"}}")
    })
}

fn read_requests(c: &mut Client, handler: &mut dyn CtlHandler) {
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.closing = true;
                c.monitor = false;
                break;
            }
            Ok(n) => c.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.closing = true;
                break;
            }
        }
        if c.inbuf.len() > MAX_LINE && !c.inbuf.contains(&b'\n') {
            let r = Response::error(format!("request longer than {MAX_LINE} bytes"));
            c.outbuf.extend_from_slice(line(&r).as_bytes());
            c.outbuf.push(b'\n');
            c.inbuf.clear();
            c.closing = true;
            return;
        }
    }
    while let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') {
        let req: Vec<u8> = c.inbuf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&req);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(text) {
            Ok(Request::Monitor) => {
                c.monitor = true;
                Response::ok()
            }
            Ok(r) => handler.handle(r),
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        c.outbuf.extend_from_slice(line(&resp).as_bytes());
        c.outbuf.push(b'\n');
    }
}

fn flush(c: &mut Client) {
    while !c.outbuf.is_empty() {
        match c.stream.write(&c.outbuf) {
            Ok(0) => {
                c.closing = true;
                c.outbuf.clear();
                return;
            }
            Ok(n) => {
                c.outbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.closing = true;
                c.outbuf.clear();
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------- the instance side

/// A [`CtlHandler`] over an [`Endpoint`]: endpoint and limit changes take effect on live
/// connections (the endpoint hands them to each connection's path manager), `stat` lists
/// every connection and its subflows, `counters` the endpoint's MIB counters.
pub struct EndpointCtl<'a> {
    pub endpoint: &'a mut Endpoint,
    pub now: Instant,
}

impl CtlHandler for EndpointCtl<'_> {
    fn handle(&mut self, req: Request) -> Response {
        let ep = &mut *self.endpoint;
        let now = self.now;
        let endpoints = |ep: &Endpoint| Response {
            endpoints: Some(
                ep.pm_table()
                    .endpoints()
                    .iter()
                    .map(EndpointSpec::from_endpoint)
                    .collect(),
            ),
            ..Response::ok()
        };
        match req {
            Request::EndpointAdd { endpoint } => {
                let flags = match endpoint.endpoint_flags() {
                    Ok(f) => f,
                    Err(e) => return Response::error(e),
                };
                match ep.endpoint_add(
                    now,
                    endpoint.addr,
                    endpoint.id.map(u32::from),
                    endpoint.port,
                    endpoint.dev.clone(),
                    flags,
                ) {
                    Ok(added) => Response {
                        endpoint: Some(EndpointSpec::from_endpoint(&added)),
                        ..Response::ok()
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::EndpointDelete { id } => match ep.endpoint_delete(now, id) {
                Ok(_) => Response::ok(),
                Err(e) => Response::error(e.to_string()),
            },
            Request::EndpointShow => endpoints(ep),
            Request::EndpointFlush => {
                ep.endpoint_flush(now);
                Response::ok()
            }
            Request::EndpointChange { id, change } => {
                let change = match parse_change(&change) {
                    Ok(c) => c,
                    Err(e) => return Response::error(e),
                };
                match ep.endpoint_change(now, id, change) {
                    Ok(changed) => Response {
                        endpoint: Some(EndpointSpec::from_endpoint(&changed)),
                        ..Response::ok()
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::LimitsSet {
                subflows,
                add_addr_accepted,
            } => {
                let old = ep.pm_table().limits();
                let l = Limits::new(
                    u32::from(subflows.unwrap_or(old.subflows)),
                    u32::from(add_addr_accepted.unwrap_or(old.add_addr_accepted)),
                );
                match l {
                    Ok(l) => {
                        ep.set_limits(now, l);
                        Response {
                            limits: Some(l.into()),
                            ..Response::ok()
                        }
                    }
                    Err(e) => Response::error(e.to_string()),
                }
            }
            Request::LimitsShow => Response {
                limits: Some(ep.pm_table().limits().into()),
                ..Response::ok()
            },
            Request::Stat => Response {
                connections: Some(connection_stats(ep)),
                ..Response::ok()
            },
            Request::Counters => Response {
                counters: Some(
                    ep.counters()
                        .entries()
                        .iter()
                        .map(|(n, v)| ((*n).to_string(), *v))
                        .collect(),
                ),
                ..Response::ok()
            },
            Request::Monitor => Response::ok(),
        }
    }
}

/// Every connection of `ep` with its subflows, for `stat`.
pub fn connection_stats(ep: &Endpoint) -> Vec<ConnStat> {
    ep.connections()
        .filter_map(|h| ep.snapshot(h))
        .map(|snap| {
            // The subflows of an MPTCP connection, those not closed; none for plain TCP.
            let subflows = if snap.mptcp {
                snap.subflows
                    .iter()
                    .filter(|s| s.state != TcpState::Closed)
                    .map(|s| SubflowStat {
                        local: s.local,
                        remote: s.remote,
                        local_id: s.local_id,
                        remote_id: s.remote_id,
                        backup: s.backup,
                        state: format!("{:?}", s.state),
                        rtt_ms: s.rtt.map(|d| d.as_micros() as f64 / 1000.0),
                        cwnd: s.cwnd as u64,
                        bytes_sent: s.bytes_sent,
                        bytes_acked: s.bytes_acked,
                        bytes_received: s.bytes_received,
                        retransmits: s.retransmits,
                        stale: s.stale,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ConnStat {
                token: snap.local_token,
                local: snap.local,
                remote: snap.remote,
                mptcp: snap.mptcp,
                state: format!("{:?}", snap.state),
                bytes_sent: snap.bytes_sent,
                bytes_acked: snap.bytes_acked,
                bytes_received: snap.bytes_received,
                subflows,
            }
        })
        .collect()
}

/// The monitor events of one path-manager notice, with the kernel's names. The connection's
/// establishment gives `CREATED` and `ESTABLISHED` (the engine reports MPTCP as established
/// once both keys are known, where the kernel reports the two a moment apart).
pub fn monitor_events(n: &PmNotice) -> Vec<MonitorEvent> {
    let with = |kind: &str| {
        let mut e = MonitorEvent::new(kind);
        e.token = Some(n.token);
        e
    };
    match &n.event {
        PmEvent::ConnectionEstablished { local, remote, .. } => ["CREATED", "ESTABLISHED"]
            .iter()
            .map(|k| {
                let mut e = with(k);
                e.local = Some(*local);
                e.remote = Some(*remote);
                e
            })
            .collect(),
        PmEvent::ConnectionClosed => vec![with("CLOSED")],
        PmEvent::AddAddrReceived { id, addr, port } => {
            let mut e = with("ANNOUNCED");
            e.remote_id = Some(*id);
            e.addr = Some(*addr);
            e.port = *port;
            vec![e]
        }
        PmEvent::RemoveAddrReceived { ids } => ids
            .iter()
            .map(|id| {
                let mut e = with("REMOVED");
                e.remote_id = Some(*id);
                e
            })
            .collect(),
        PmEvent::SubflowEstablished { addrs } => {
            let mut e = with("SUB_ESTABLISHED");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            vec![e]
        }
        PmEvent::SubflowClosed { addrs, error } => {
            let mut e = with("SUB_CLOSED");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            e.error = error.map(|err| match err {
                SubflowError::Timeout => "timeout".to_string(),
                SubflowError::Reset(Some(r)) => format!("reset (MP_TCPRST reason {r})"),
                SubflowError::Reset(None) => "reset".to_string(),
                SubflowError::Refused => "refused".to_string(),
            });
            vec![e]
        }
        PmEvent::SubflowPriority { addrs, backup } => {
            let mut e = with("SUB_PRIORITY");
            e.local = Some(addrs.local);
            e.remote = Some(addrs.remote);
            e.backup = Some(*backup);
            vec![e]
        }
        _ => Vec::new(),
    }
}

/// A `LISTENER_CREATED` or `LISTENER_CLOSED` event.
pub fn listener_event(created: bool, local: SocketAddr) -> MonitorEvent {
    let mut e = MonitorEvent::new(if created {
        "LISTENER_CREATED"
    } else {
        "LISTENER_CLOSED"
    });
    e.local = Some(local);
    e
}

// ---------------------------------------------------------------------- client

/// A connection to an instance's control socket.
#[derive(Debug)]
pub struct CtlClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl CtlClient {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> anyhow::Result<CtlClient> {
        let stream = UnixStream::connect(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the braid instance at {}: {e} (is it running with --ctl {}?)",
                path.display(),
                path.display()
            )
        })?;
        let writer = stream.try_clone()?;
        Ok(CtlClient {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, req: &Request) -> anyhow::Result<Response> {
        writeln!(self.writer, "{}", line(req))?;
        self.writer.flush()?;
        self.read_line()
    }

    fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> anyhow::Result<T> {
        let mut s = String::new();
        let n = (&mut self.reader)
            .take(MAX_PENDING as u64)
            .read_line(&mut s)?;
        if n == 0 {
            anyhow::bail!("the braid instance closed the control connection");
        }
        serde_json::from_str(s.trim())
            .map_err(|e| anyhow::anyhow!("bad answer from the braid instance: {e}"))
    }

    /// After a successful [`Request::Monitor`]: the next event (blocks).
    pub fn next_event(&mut self) -> anyhow::Result<MonitorEvent> {
        self.read_line()
    }
}
