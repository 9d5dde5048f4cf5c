//! The runtime: drives one sans-IO engine (`braid_proto`'s `Endpoint`) over packet devices
//! (TUN devices, one per path) with the real clock, and runs the application of `braid
//! connect` / `braid listen` on top: send a pattern or a file, sink, echo or write out what
//! arrives.
//!
//! One thread, one loop: read packets from every device → `handle_packet`; `handle_timeout`
//! once `poll_timeout` has passed; events; application reads and writes; drain
//! `poll_transmit` into the device owning the packet's source address; then sleep in `ppoll`
//! until a device (or the signal descriptor, or the input) is readable or the engine's next
//! deadline. Buffers are allocated once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use braid_proto::endpoint::{ConnectionError, Endpoint, EndpointConfig, Error as EngineError};
use braid_proto::{ConnectOptions, ConnectionHandle, Event, Instant, ListenOptions, Transmit};

use crate::ctl::{monitor_events, CtlServer, EndpointCtl};
use crate::health::DeviceState;
use crate::report::{Report, SubflowReport, TcpStats};
use crate::stream::{PatternStream, Tally};
use crate::tun::TunDevice;

/// What the runtime needs from the engine: the driving calls and the application calls of
/// the `Endpoint` contract (crates/braid-proto/src/endpoint.rs), plus the round-trip time
/// from `conn_info`.
pub trait Engine {
    fn listen(&mut self, local: SocketAddr, opts: ListenOptions) -> Result<(), EngineError>;
    fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        opts: ConnectOptions,
    ) -> Result<ConnectionHandle, EngineError>;
    fn handle_packet(&mut self, now: Instant, packet: &[u8]);
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_event(&mut self) -> Option<Event>;
    fn read(&mut self, conn: ConnectionHandle, buf: &mut [u8]) -> Result<usize, EngineError>;
    fn write(&mut self, conn: ConnectionHandle, data: &[u8]) -> Result<usize, EngineError>;
    fn close(&mut self, conn: ConnectionHandle) -> Result<(), EngineError>;
    fn abort(&mut self, conn: ConnectionHandle) -> Result<(), EngineError>;
    /// The connection's local address (once known) and smoothed round-trip time.
    fn conn_summary(&self, conn: ConnectionHandle) -> Option<ConnSummary>;
    /// MPTCP counters under the kernel's MIB names (none for an engine without MPTCP).
    fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
    /// Opens an extra subflow (MP_JOIN) of an established MPTCP connection from `local`
    /// (port 0: ephemeral) to `remote`, with the backup bit when `backup`. An engine without
    /// MPTCP refuses.
    fn add_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<usize, EngineError> {
        let _ = (now, conn, local, remote, backup);
        Err(EngineError::InvalidState)
    }
    /// Every subflow of an MPTCP connection, by id; empty for plain TCP (and for an engine
    /// without MPTCP).
    fn subflows(&self, conn: ConnectionHandle) -> Vec<SubflowSummary> {
        let _ = conn;
        Vec::new()
    }
    /// The engine as an [`Endpoint`], for the control plane (`--ctl`) and path-management
    /// events; `None` for an engine without one.
    fn endpoint_mut(&mut self) -> Option<&mut Endpoint> {
        None
    }
}

/// What the runtime reports about one subflow of an MPTCP connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubflowSummary {
    /// The subflow's id within its connection (0: the initial subflow).
    pub id: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The backup bit of its MP_JOIN (never set on the initial subflow).
    pub backup: bool,
    /// Bytes the subflow carried at its own sequence level (reinjections included).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub rtt: Option<Duration>,
    /// Still open: not closed, not reset.
    pub open: bool,
    /// Its TCP loss-recovery counters.
    pub tcp: TcpStats,
}

impl SubflowSummary {
    fn report(&self) -> SubflowReport {
        SubflowReport {
            id: self.id,
            local: self.local.to_string(),
            remote: self.remote.to_string(),
            backup: self.backup,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            rtt_ms: self.rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            tcp: Some(self.tcp),
        }
    }
}

/// What the runtime reports about one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnSummary {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub rtt: Option<Duration>,
    /// The connection runs MPTCP (negotiated, not fallen back).
    pub mptcp: bool,
    /// MPTCP with DSS checksums (RFC 8684 §3.3.1).
    pub checksum: bool,
    /// Bytes the peer acknowledged (for MPTCP: DATA_ACKed at the connection level).
    pub bytes_acked: u64,
}

/// A device that carries whole IP packets and can be waited on with `poll`.
pub trait PacketDevice: AsRawFd {
    fn name(&self) -> &str;
    /// One packet into `buf`; `Ok(None)` when nothing is pending.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// One packet out; `Ok(false)` when the device dropped it for lack of room.
    fn send(&self, packet: &[u8]) -> io::Result<bool>;
    /// Whether the device can carry packets, as far as it can tell (see [`crate::health`]).
    fn state(&self) -> DeviceState {
        DeviceState {
            link: None,
            created: false,
        }
    }
}

impl PacketDevice for TunDevice {
    fn name(&self) -> &str {
        TunDevice::name(self)
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        TunDevice::recv(self, buf)
    }
    fn send(&self, packet: &[u8]) -> io::Result<bool> {
        TunDevice::send(self, packet)
    }
    fn state(&self) -> DeviceState {
        DeviceState {
            link: crate::linkwatch::link_state(self.name()).ok().flatten(),
            created: self.created(),
        }
    }
}

/// A connected, non-blocking datagram socket pair end works as a packet device: tests join
/// two runtimes with one without needing TUN devices or privileges.
impl PacketDevice for std::os::unix::net::UnixDatagram {
    fn name(&self) -> &str {
        "unix-datagram"
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match std::os::unix::net::UnixDatagram::recv(self, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn send(&self, packet: &[u8]) -> io::Result<bool> {
        match std::os::unix::net::UnixDatagram::send(self, packet) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            // The peer end went away (ECONNREFUSED on the first send after that, ENOTCONN on
            // the next ones): nothing can be delivered, like a link that is down. A runtime
            // that finished first (a server with `once`) must not fail the other's last
            // packets.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// One path: a device and braid's own address behind it.
pub struct Path {
    pub device: Box<dyn PacketDevice>,
    pub addr: IpAddr,
}

/// Where the bytes a client sends come from.
pub enum Source {
    /// Send nothing: close the sending direction at once.
    Nothing,
    /// `--send N`: N bytes of [`PatternStream`].
    Pattern(u64),
    /// `--in FILE` (or standard input): until end of file.
    Reader(File),
}

/// Where received bytes go.
pub enum Output {
    /// Count and hash, then drop.
    Discard,
    /// `--out FILE` / `--out -`.
    Writer(Box<dyn Write>),
}

/// What a server does with each connection.
pub enum ServerMode {
    /// Count and discard what arrives; close after the peer closes.
    Sink,
    /// Send back what arrives; close after the peer closes and everything went back.
    Echo,
    /// Write what arrives to the output; close after the peer closes.
    Out(Box<dyn Write>),
}

/// An extra subflow a client opens once its connection runs MPTCP (`--subflow ADDR`, or
/// one per further `--path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinSpec {
    /// Our address: the path whose address it is carries the subflow.
    pub local: IpAddr,
    /// The peer's address and port (the connection's own, or one of the same host in the
    /// family of `local`).
    pub remote: SocketAddr,
    /// The MP_JOIN backup bit (`--backup ADDR`).
    pub backup: bool,
}

/// What to run.
pub enum Role {
    Client {
        remote: SocketAddr,
        source: Source,
        output: Output,
        /// Subflows to join once MPTCP is up (none: one subflow).
        joins: Vec<JoinSpec>,
    },
    Server {
        port: u16,
        mode: ServerMode,
        /// Exit after the first connection closes.
        once: bool,
    },
}

/// How a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Transfer complete, connection closed cleanly (or a server shut down on request).
    Clean,
    /// A client interrupted by SIGINT/SIGTERM: the connection was closed gracefully before
    /// the transfer completed.
    Interrupted,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub report: Report,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("connection refused by {0} (RST)")]
    Refused(SocketAddr),
    #[error("connection to {0} reset by peer")]
    Reset(SocketAddr),
    #[error("connection to {0} reset by peer (MP_FASTCLOSE)")]
    FastClosed(SocketAddr),
    #[error("connection to {0} timed out")]
    TimedOut(SocketAddr),
    #[error("aborted by a second signal (RST sent)")]
    Aborted,
    /// A signal while the client's connection was still being opened: the attempt was
    /// given up at once (nothing to close gracefully).
    #[error("interrupted while connecting to {0}")]
    InterruptedConnecting(SocketAddr),
    /// `--connect-timeout` passed before the connection was open.
    #[error("connect to {remote} timed out after {} s", after.as_secs_f64())]
    ConnectTimedOut { remote: SocketAddr, after: Duration },
    #[error("connection to {0} aborted: braid reset it (a protocol error)")]
    AbortedLocally(SocketAddr),
    #[error("connection to {remote} failed: {error}")]
    Connection {
        remote: SocketAddr,
        error: ConnectionError,
    },
    #[error("no path: give at least one --path DEV=ADDR")]
    NoPath,
    #[error("the first --path is not of the same address family as {0}")]
    NoPathForFamily(SocketAddr),
    #[error("{what}: {error}")]
    Engine {
        what: &'static str,
        error: EngineError,
    },
    #[error("device {dev}: {source}")]
    Device {
        dev: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn connection_error(remote: SocketAddr, error: ConnectionError, established: bool) -> RuntimeError {
    match error {
        ConnectionError::Refused => RuntimeError::Refused(remote),
        ConnectionError::Reset if !established => RuntimeError::Refused(remote),
        ConnectionError::Reset => RuntimeError::Reset(remote),
        ConnectionError::FastClosed => RuntimeError::FastClosed(remote),
        ConnectionError::TimedOut => RuntimeError::TimedOut(remote),
        // Not a signal's abort (that one is reported as such by the caller): braid reset the
        // connection itself, over a protocol error.
        ConnectionError::Aborted => RuntimeError::AbortedLocally(remote),
        error => RuntimeError::Connection { remote, error },
    }
}

/// SIGINT and SIGTERM as a readable descriptor (signalfd). While it lives, both signals are
/// blocked in the creating thread and only counted; the old mask comes back on drop.
pub struct Signals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl Signals {
    /// Block SIGINT and SIGTERM in this thread and receive them through a descriptor.
    pub fn install() -> io::Result<Signals> {
        // SAFETY: sigset_t is plain data; all-zero is a valid (if unspecified) value which
        // sigemptyset then initialises.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `old` are valid, exclusively borrowed sigset_t values; the signal
        // numbers are valid constants.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
        }
        // SAFETY: both pointers refer to valid sigset_t values for the duration of the call.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is a valid, initialised sigset_t.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: `old` holds the mask returned by the successful call above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(e);
        }
        // SAFETY: signalfd returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { fd, old })
    }

    /// How many signals arrived since the last call.
    pub fn take(&self) -> usize {
        let mut count = 0;
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        loop {
            // SAFETY: the descriptor is owned by `self` and open; `info` is a writable buffer
            // of exactly `info.len()` bytes; the descriptor is non-blocking.
            let n =
                unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
            if usize::try_from(n).is_ok_and(|n| n == info.len()) {
                count += 1;
            } else {
                return count;
            }
        }
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: `old` is the mask saved by `install`; restoring it is always valid.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Whether `fd` is readable right now (a zero-timeout poll).
fn readable_now(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc > 0 && pfd.revents != 0
}

/// Closes an established connection's sending direction, once.
fn close_once<E: Engine>(engine: &mut E, c: &mut Conn) -> Result<(), RuntimeError> {
    if c.established && !c.close_sent {
        c.close_sent = true;
        engine
            .close(c.handle)
            .map_err(|error| RuntimeError::Engine {
                what: "close",
                error,
            })?;
    }
    Ok(())
}

/// What the first signal says once connected.
fn closing_notice(unacked: u64) -> String {
    if unacked == 0 {
        "interrupted: closing gracefully; a second signal aborts".to_owned()
    } else {
        format!(
            "interrupted: closing gracefully once the peer takes the {} still queued; a \
             second signal aborts",
            human_bytes(unacked)
        )
    }
}

/// Largest IP packet (or GSO batch) the runtime moves at once.
const PACKET_BUF: usize = 65536;
/// Application chunk size.
const APP_CHUNK: usize = 65536;
/// Packets read per device before the engine gets to send: keeps ACKs flowing.
const RX_BATCH: usize = 64;
/// Packets sent before the devices are read again.
const TX_BATCH: usize = 128;
/// How long an aborting runtime keeps answering (plus two RTTs, at most `LINGER_MAX`).
const LINGER_MIN: Duration = Duration::from_millis(200);
const LINGER_MAX: Duration = Duration::from_secs(2);
/// Echo stops reading while this much is waiting to go back.
const ECHO_LIMIT: usize = 4 * APP_CHUNK;

struct Conn {
    handle: ConnectionHandle,
    remote: SocketAddr,
    local: SocketAddr,
    established: bool,
    out_q: Vec<u8>,
    out_off: usize,
    /// Nothing more will be queued for sending.
    input_done: bool,
    close_sent: bool,
    eof: bool,
    bytes_sent: u64,
    bytes_received: u64,
    rtt: Option<Duration>,
    /// MPTCP in use, as last seen.
    mptcp: bool,
    /// DSS checksums in use, as last seen.
    checksum: bool,
    /// The MPTCP subflows, as last seen (empty for plain TCP).
    subflows: Vec<SubflowSummary>,
    /// Subflows still to be joined once the connection is established.
    joins: Vec<JoinSpec>,
}

impl Conn {
    fn new(handle: ConnectionHandle, local: SocketAddr, remote: SocketAddr) -> Conn {
        Conn {
            handle,
            remote,
            local,
            established: false,
            out_q: Vec::with_capacity(APP_CHUNK),
            out_off: 0,
            input_done: false,
            close_sent: false,
            eof: false,
            bytes_sent: 0,
            bytes_received: 0,
            rtt: None,
            mptcp: false,
            checksum: false,
            subflows: Vec::new(),
            joins: Vec::new(),
        }
    }

    fn pending(&self) -> usize {
        self.out_q.len().saturating_sub(self.out_off)
    }

    /// One report entry per subflow: the engine's view of each MPTCP subflow, or for a
    /// plain TCP connection (or before the engine showed any subflow) the connection itself.
    fn subflow_reports(&self) -> Vec<SubflowReport> {
        if !self.subflows.is_empty() {
            return self.subflows.iter().map(SubflowSummary::report).collect();
        }
        vec![SubflowReport {
            id: 0,
            local: self.local.to_string(),
            remote: self.remote.to_string(),
            backup: false,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            rtt_ms: self.rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
            tcp: None,
        }]
    }

    /// Open subflows, as last seen (1 for plain TCP).
    fn open_subflows(&self) -> usize {
        if self.subflows.is_empty() {
            1
        } else {
            self.subflows.iter().filter(|s| s.open).count()
        }
    }
}

/// Counters of the runtime's own I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct IoStats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets a device refused (no room); TCP retransmits them.
    pub packets_dropped: u64,
}

/// The driver. Build it with the engine and the paths, then [`Runtime::run`] a role.
pub struct Runtime<E: Engine> {
    engine: E,
    paths: Vec<Path>,
    signals: Option<Signals>,
    epoch: std::time::Instant,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    app_buf: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    /// The signal descriptor was readable at the last poll (or not polled yet).
    signal_ready: bool,
    stats: IoStats,
    /// Connect and listen with MPTCP.
    mptcp: bool,
    /// The progress line, when asked for.
    progress: Option<Progress>,
    /// Which device the peer's packets between two addresses arrive on.
    routes: Routes,
    /// The control socket (`--ctl`), when asked for.
    ctl: Option<CtlServer>,
    /// A client gives up connecting after this long (`--connect-timeout`).
    connect_timeout: Option<Duration>,
    /// Where one-line notices go (standard error).
    notices: Box<dyn Write>,
}

/// Most address pairs [`Routes`] remembers (the oldest is forgotten first).
const MAX_ROUTES: usize = 64;

/// The device (path index) on which packets from a remote address to a local one last
/// arrived: replies go back the same way.
#[derive(Debug, Default)]
struct Routes {
    /// (local, remote, path index), most recently changed last.
    entries: Vec<(IpAddr, IpAddr, usize)>,
}

impl Routes {
    fn learn(&mut self, local: IpAddr, remote: IpAddr, index: usize) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.0 == local && e.1 == remote)
        {
            e.2 = index;
            return;
        }
        if self.entries.len() == MAX_ROUTES {
            self.entries.remove(0);
        }
        self.entries.push((local, remote, index));
    }

    fn lookup(&self, local: IpAddr, remote: IpAddr) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.0 == local && e.1 == remote)
            .map(|e| e.2)
    }
}

/// Source and destination of an IPv4 or IPv6 packet (`None` when too short or neither).
fn ip_addrs(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 => {
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

/// The progress line of a long transfer (`braid connect|listen` on a terminal): bytes each
/// way, the rate since the start and the open subflows, rewritten in place at most once per
/// `every`, shown once the transfer has run for `after`, and erased at the end.
pub struct Progress {
    out: Box<dyn Write>,
    every: Duration,
    after: Duration,
    last: Option<std::time::Instant>,
    shown: bool,
}

/// How often the progress line is rewritten at most (4 times a second).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How long a transfer runs before the progress line appears.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);

impl Progress {
    /// A progress line written to `out` (a terminal: it uses a carriage return and the
    /// erase-line sequence).
    pub fn new(out: Box<dyn Write>, every: Duration, after: Duration) -> Progress {
        Progress {
            out,
            every,
            after,
            last: None,
            shown: false,
        }
    }

    /// Rewrite the line if `every` has passed since the last time.
    fn update(&mut self, started: std::time::Instant, sent: u64, received: u64, subflows: usize) {
        let now = std::time::Instant::now();
        let elapsed = now.saturating_duration_since(started);
        if elapsed < self.after
            || self
                .last
                .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return;
        }
        self.last = Some(now);
        let line = progress_line(sent, received, elapsed, subflows);
        // A broken terminal must not end the transfer: the line is only informative.
        let _ = write!(self.out, "\r\x1b[K{line}").and_then(|()| self.out.flush());
        self.shown = true;
    }

    /// Erase the line (if it was shown).
    fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "\r\x1b[K").and_then(|()| self.out.flush());
            self.shown = false;
        }
    }
}

/// `12.5 MiB sent, 0 B received, 98.3 Mbit/s, 2 subflows`
pub fn progress_line(sent: u64, received: u64, elapsed: Duration, subflows: usize) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        sent.max(received) as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let plural = if subflows == 1 { "" } else { "s" };
    format!(
        "{} sent, {} received, {rate:.1} Mbit/s, {subflows} subflow{plural}",
        human_bytes(sent),
        human_bytes(received)
    )
}

/// 1023 B, 1.0 KiB, 12.5 MiB, 2.0 GiB.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

enum App {
    Client {
        source: Source,
        pattern: PatternStream,
        output: Output,
    },
    Server {
        mode: ServerMode,
        once: bool,
    },
}

struct RunState {
    app: App,
    conns: Vec<Conn>,
    finished: Vec<SubflowReport>,
    /// MPTCP and DSS checksums in use on each finished connection.
    finished_mptcp: Vec<(bool, bool)>,
    sent: Tally,
    received: Tally,
    started: Option<std::time::Instant>,
    ended: Option<std::time::Instant>,
    interrupted: bool,
    aborted: bool,
    done: bool,
    /// The client said its first SYN went unanswered.
    syn_hinted: bool,
    /// MPFastcloseRx as last seen.
    fastcloses_seen: u64,
}

impl RunState {
    /// Flush `--out`.
    fn flush_output(&mut self) -> Result<(), RuntimeError> {
        let w = match &mut self.app {
            App::Client {
                output: Output::Writer(w),
                ..
            } => w,
            App::Server {
                mode: ServerMode::Out(w),
                ..
            } => w,
            _ => return Ok(()),
        };
        w.flush().map_err(|source| RuntimeError::Io {
            what: "writing output",
            source,
        })
    }
}

impl<E: Engine> Runtime<E> {
    /// A runtime over `paths` (the first carries the connection a client opens).
    pub fn new(engine: E, paths: Vec<Path>) -> Result<Runtime<E>, RuntimeError> {
        if paths.is_empty() {
            return Err(RuntimeError::NoPath);
        }
        Ok(Runtime {
            engine,
            paths,
            signals: None,
            epoch: std::time::Instant::now(),
            rx_buf: vec![0; PACKET_BUF],
            tx_buf: vec![0; PACKET_BUF],
            app_buf: vec![0; APP_CHUNK],
            pollfds: Vec::new(),
            signal_ready: true,
            stats: IoStats::default(),
            mptcp: false,
            progress: None,
            routes: Routes::default(),
            ctl: None,
            connect_timeout: None,
            notices: Box::new(io::stderr()),
        })
    }

    /// Speak MPTCP: the client connects with MP_CAPABLE, the listeners accept MPTCP (and
    /// plain TCP from peers that do not offer it). Off by default: plain TCP.
    pub fn with_mptcp(mut self, on: bool) -> Self {
        self.mptcp = on;
        self
    }

    /// Serve the control plane (`braid endpoint|limits|monitor|stat|counters`) on `ctl`.
    pub fn with_ctl(mut self, ctl: CtlServer) -> Self {
        self.ctl = Some(ctl);
        self
    }

    /// Answers control requests and hands path-management events to monitors. The events
    /// are drained even without a control socket (the engine keeps a bounded queue).
    fn control(&mut self, now: Instant) {
        let Some(ep) = self.engine.endpoint_mut() else {
            return;
        };
        if let Some(ctl) = self.ctl.as_mut() {
            ctl.poll(&mut EndpointCtl { endpoint: ep, now });
        }
        while let Some(n) = ep.poll_pm_event() {
            if let Some(ctl) = self.ctl.as_mut() {
                for e in monitor_events(&n) {
                    ctl.publish(&e);
                }
            }
        }
    }

    /// Show a progress line (see [`Progress`]).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Handle SIGINT/SIGTERM: the first closes gracefully (FIN), the second aborts (RST).
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// The engine's clock: microseconds since the runtime was built.
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The runtime's I/O counters.
    pub fn io_stats(&self) -> IoStats {
        self.stats
    }

    /// The engine, for inspection after a run.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Run `role` to completion.
    pub fn run(&mut self, role: Role) -> Result<Outcome, RuntimeError> {
        let (result, report) = self.run_reporting(role);
        result.map(|status| Outcome { status, report })
    }

    /// Run `role` to completion; the report comes back whatever happened (after an error it
    /// says how far the transfer got and names the error in its `error` field).
    pub fn run_reporting(&mut self, role: Role) -> (Result<Status, RuntimeError>, Report) {
        let mut st = RunState {
            app: App::Server {
                mode: ServerMode::Sink,
                once: true,
            },
            conns: Vec::new(),
            finished: Vec::new(),
            finished_mptcp: Vec::new(),
            sent: Tally::new(),
            received: Tally::new(),
            started: None,
            ended: None,
            interrupted: false,
            aborted: false,
            done: false,
            syn_hinted: false,
            fastcloses_seen: 0,
        };
        let role_name = match &role {
            Role::Client { .. } => "client",
            Role::Server { .. } => "server",
        };
        let mut result = self.start(&mut st, role);
        if result.is_ok() {
            result = self.drive(&mut st);
        }
        if result.is_ok() && st.aborted {
            let rtt = st
                .conns
                .iter()
                .filter_map(|c| c.rtt)
                .max()
                .unwrap_or_default();
            result = self.linger(&st, (LINGER_MIN + 2 * rtt).min(LINGER_MAX));
        }
        if let Some(p) = &mut self.progress {
            p.clear();
        }
        // Whatever happened, put the last packets (a final ACK, a RST) on the wire and the
        // last bytes into the output. The first error is the one reported.
        let now = self.now();
        let flushed = self.flush(now);
        result = result.and(flushed).and(st.flush_output());
        if result.is_ok() && st.aborted {
            result = Err(RuntimeError::Aborted);
        }
        let report = self.report(&st, role_name, result.as_ref().err());
        let status = if st.interrupted && role_name == "client" {
            Status::Interrupted
        } else {
            Status::Clean
        };
        (result.map(|()| status), report)
    }

    /// Open the client's connection or the server's listeners.
    fn start(&mut self, st: &mut RunState, role: Role) -> Result<(), RuntimeError> {
        self.warn_unusable_paths();
        match role {
            Role::Client {
                remote,
                source,
                output,
                joins,
            } => {
                // The first path carries the connection.
                let local_ip = self
                    .paths
                    .first()
                    .map(|p| p.addr)
                    .filter(|a| a.is_ipv4() == remote.is_ipv4())
                    .ok_or(RuntimeError::NoPathForFamily(remote))?;
                let local = SocketAddr::new(local_ip, 0);
                let now = self.now();
                let handle = self
                    .engine
                    .connect(now, local, remote, ConnectOptions { mptcp: self.mptcp })
                    .map_err(|error| RuntimeError::Engine {
                        what: "connect",
                        error,
                    })?;
                st.started = Some(std::time::Instant::now());
                let mut conn = Conn::new(handle, local, remote);
                conn.joins = joins;
                if matches!(source, Source::Nothing) {
                    conn.input_done = true;
                }
                st.conns.push(conn);
                st.app = App::Client {
                    source,
                    pattern: PatternStream::new(),
                    output,
                };
            }
            Role::Server { port, mode, once } => {
                let mut seen: Vec<IpAddr> = Vec::new();
                for p in &self.paths {
                    if seen.contains(&p.addr) {
                        continue;
                    }
                    seen.push(p.addr);
                    self.engine
                        .listen(
                            SocketAddr::new(p.addr, port),
                            ListenOptions { mptcp: self.mptcp },
                        )
                        .map_err(|error| RuntimeError::Engine {
                            what: "listen",
                            error,
                        })?;
                    if self.mptcp {
                        let ev = crate::ctl::listener_event(true, SocketAddr::new(p.addr, port));
                        if let Some(ctl) = self.ctl.as_mut() {
                            ctl.publish(&ev);
                        }
                    }
                }
                st.app = App::Server { mode, once };
            }
        }
        Ok(())
    }

    /// The report of a run so far.
    fn report(&self, st: &RunState, role: &str, error: Option<&RuntimeError>) -> Report {
        let ended = st.ended.unwrap_or_else(std::time::Instant::now);
        let duration_s = st
            .started
            .map_or(0.0, |s| ended.saturating_duration_since(s).as_secs_f64());
        let mut subflows = st.finished.clone();
        subflows.extend(st.conns.iter().flat_map(Conn::subflow_reports));
        let mut mptcp_flags = st.finished_mptcp.clone();
        mptcp_flags.extend(st.conns.iter().map(|c| (c.mptcp, c.checksum)));
        // MPTCP when every connection ran it to its end (no fallback).
        let mptcp = !mptcp_flags.is_empty() && mptcp_flags.iter().all(|&(m, _)| m);
        let checksum = mptcp && mptcp_flags.iter().all(|&(_, c)| c);
        let moved = st.sent.bytes().max(st.received.bytes());
        let mut extra = BTreeMap::new();
        extra.insert(
            "connections".to_owned(),
            serde_json::Value::from(mptcp_flags.len()),
        );
        extra.insert(
            "mptcp_checksum".to_owned(),
            serde_json::Value::from(checksum),
        );
        if let Some(e) = error {
            extra.insert("error".to_owned(), serde_json::Value::from(e.to_string()));
        }
        Report {
            role: role.to_owned(),
            mptcp,
            bytes_sent: st.sent.bytes(),
            bytes_received: st.received.bytes(),
            sha256_sent: st.sent.hex(),
            sha256_received: st.received.hex(),
            duration_s,
            subflows,
            counters: self.engine.counters(),
            scenario: None,
            integrity_ok: None,
            goodput_mbps: (duration_s > 0.0).then(|| moved as f64 * 8.0 / duration_s / 1e6),
            extra,
        }
    }

    fn drive(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        loop {
            let now = self.now();
            let more = self.receive(now)?;
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            self.events(st)?;
            if st.done {
                return Ok(());
            }
            self.application(st)?;
            self.control(now);
            // A fresh clock for what is sent: timestamps and RTT samples stay honest.
            let now = self.now();
            // A bounded batch, then the devices are read again: the peer's ACKs must not
            // pile up in the device queue (a TUN holds 500 packets by default, and one
            // dropped there may be a reset that is never sent again).
            let unsent = self.flush_up_to(now, TX_BATCH)?;
            // Application calls (close, abort) can end a connection at once.
            self.events(st)?;
            if st.done {
                return Ok(());
            }
            if let Some(sig) = self.signals.as_ref().filter(|_| self.signal_ready) {
                self.signal_ready = false;
                let n = sig.take();
                if n > 0 {
                    self.on_signals(st, n)?;
                    if st.done {
                        return Ok(());
                    }
                    continue;
                }
            }
            self.watch_connect(st)?;
            if let (Some(p), Some(started)) = (&mut self.progress, st.started) {
                let subflows = st.conns.iter().map(Conn::open_subflows).sum();
                p.update(started, st.sent.bytes(), st.received.bytes(), subflows);
            }
            let timeout = if more || unsent {
                Some(Duration::ZERO)
            } else {
                let engine = self
                    .engine
                    .poll_timeout()
                    .map(|t| t.saturating_duration_since(self.now()));
                match (engine, self.connect_wake(st)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            self.wait(st, timeout)?;
        }
    }

    /// Read a batch from every device into the engine. True when a device has more.
    fn receive(&mut self, now: Instant) -> Result<bool, RuntimeError> {
        let mut more = false;
        for (index, path) in self.paths.iter().enumerate() {
            let mut n = 0;
            loop {
                if n == RX_BATCH {
                    more = true;
                    break;
                }
                match path.device.recv(&mut self.rx_buf) {
                    Ok(Some(len)) => {
                        n += 1;
                        self.stats.packets_in += 1;
                        if let Some(packet) = self.rx_buf.get(..len) {
                            if let Some((src, dst)) = ip_addrs(packet) {
                                self.routes.learn(dst, src, index);
                            }
                            self.engine.handle_packet(now, packet);
                        }
                    }
                    Ok(None) => break,
                    Err(source) => {
                        return Err(RuntimeError::Device {
                            dev: path.device.name().to_owned(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(more)
    }

    /// Drain `poll_transmit` into the devices: a packet leaves by the device the peer's
    /// packets between the same two addresses last arrived on (a peer may bind a subflow to
    /// a device whatever its destination, as Linux does for an endpoint with `dev`), else by
    /// the path that owns its source address, else by the first path.
    fn flush(&mut self, now: Instant) -> Result<(), RuntimeError> {
        self.flush_up_to(now, usize::MAX).map(|_| ())
    }

    /// [`Runtime::flush`], stopping once `limit` packets went out: true when it stopped
    /// there (the engine may have more).
    fn flush_up_to(&mut self, now: Instant, limit: usize) -> Result<bool, RuntimeError> {
        let mut sent = 0usize;
        while sent < limit {
            let Some(t) = self.engine.poll_transmit(now, &mut self.tx_buf) else {
                return Ok(false);
            };
            let Some(data) = self.tx_buf.get(..t.len) else {
                continue;
            };
            let Some(path) = self
                .routes
                .lookup(t.src, t.dst)
                .and_then(|i| self.paths.get(i))
                .or_else(|| self.paths.iter().find(|p| p.addr == t.src))
                .or_else(|| self.paths.first())
            else {
                continue;
            };
            let seg = match t.segment_size {
                Some(s) if s > 0 => s,
                _ => data.len().max(1),
            };
            for packet in data.chunks(seg) {
                sent += 1;
                match path.device.send(packet) {
                    Ok(true) => self.stats.packets_out += 1,
                    Ok(false) => self.stats.packets_dropped += 1,
                    Err(source) => {
                        return Err(RuntimeError::Device {
                            dev: path.device.name().to_owned(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(true)
    }

    fn events(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Accepted {
                    conn,
                    local,
                    remote,
                } => {
                    if st.interrupted {
                        // Shutting down: no new connections.
                        let _ = self.engine.abort(conn);
                        continue;
                    }
                    st.started.get_or_insert_with(std::time::Instant::now);
                    let mut c = Conn::new(conn, local, remote);
                    c.established = true;
                    if let Some(s) = self.engine.conn_summary(conn) {
                        (c.mptcp, c.checksum) = (s.mptcp, s.checksum);
                    }
                    st.conns.push(c);
                }
                Event::Connected(conn) => {
                    if let Some(c) = st.conns.iter_mut().find(|c| c.handle == conn) {
                        c.established = true;
                        if let Some(s) = self.engine.conn_summary(conn) {
                            c.local = s.local;
                            (c.mptcp, c.checksum) = (s.mptcp, s.checksum);
                        }
                        if !c.joins.is_empty() && !c.mptcp {
                            c.joins.clear();
                            eprintln!(
                                "braid: {} does not speak MPTCP: no extra subflows",
                                c.remote
                            );
                        }
                    }
                }
                Event::Closed { conn, error, .. } => {
                    let Some(i) = st.conns.iter().position(|c| c.handle == conn) else {
                        continue;
                    };
                    let c = st.conns.swap_remove(i);
                    st.finished.extend(c.subflow_reports());
                    st.finished_mptcp.push((c.mptcp, c.checksum));
                    st.ended = Some(std::time::Instant::now());
                    // A reset that came with MP_FASTCLOSE says so.
                    let fastcloses = self
                        .engine
                        .counters()
                        .get("MPFastcloseRx")
                        .copied()
                        .unwrap_or(0);
                    let fastclosed = fastcloses > st.fastcloses_seen;
                    st.fastcloses_seen = fastcloses;
                    let failed = |error| match error {
                        ConnectionError::Reset if fastclosed && c.established => {
                            RuntimeError::FastClosed(c.remote)
                        }
                        error => connection_error(c.remote, error, c.established),
                    };
                    match &st.app {
                        App::Client { .. } => {
                            st.done = true;
                            if let Some(error) = error {
                                if !(st.aborted && error == ConnectionError::Aborted) {
                                    return Err(failed(error));
                                }
                            }
                        }
                        App::Server { once, .. } => {
                            if let Some(error) = error {
                                let e = failed(error);
                                if *once && !st.aborted {
                                    st.done = true;
                                    return Err(e);
                                }
                                eprintln!("braid: {e}");
                            }
                            if *once || (st.interrupted && st.conns.is_empty()) {
                                st.done = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Move application bytes: read what arrived, queue and write what is to be sent, close
    /// when the sending direction is done.
    fn application(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        let RunState {
            app,
            conns,
            sent,
            received,
            ..
        } = st;
        for c in conns.iter_mut() {
            if let Some(s) = self.engine.conn_summary(c.handle) {
                if s.rtt.is_some() {
                    c.rtt = s.rtt;
                }
                (c.mptcp, c.checksum) = (s.mptcp, s.checksum);
                // Joins wait until the peer has acknowledged data at the connection level
                // (or there is nothing to send), as Linux's path manager waits for the
                // connection to be fully established: before that, the peer's window at the
                // connection level is only guessed from its SYN/ACK, and data a new subflow
                // sends beyond the real one is dropped.
                let settled = s.bytes_acked > 0 || (c.input_done && c.pending() == 0);
                if c.established && c.mptcp && settled && !c.joins.is_empty() {
                    let now = self.now();
                    for j in std::mem::take(&mut c.joins) {
                        let local = SocketAddr::new(j.local, 0);
                        //= rfc8684#3.2
                        //= Once the connection runs MPTCP, further subflows join it with
                        //  MP_JOIN from other local addresses.
                        if let Err(e) = self
                            .engine
                            .add_subflow(now, c.handle, local, j.remote, j.backup)
                        {
                            eprintln!(
                                "braid: cannot open a subflow from {} to {}: {e}",
                                j.local, j.remote
                            );
                        }
                    }
                }
                let subflows = self.engine.subflows(c.handle);
                if !subflows.is_empty() {
                    c.subflows = subflows;
                }
            }
            // Echo stops reading at ECHO_LIMIT; once sending drained the queue, read again
            // now: the engine will not announce data it already announced.
            loop {
                let mut limited = false;
                // Receive.
                while !c.eof {
                    let echo = matches!(
                        app,
                        App::Server {
                            mode: ServerMode::Echo,
                            ..
                        }
                    );
                    if echo && c.pending() >= ECHO_LIMIT {
                        limited = true;
                        break;
                    }
                    match self.engine.read(c.handle, &mut self.app_buf) {
                        Ok(0) => {
                            c.eof = true;
                            if matches!(app, App::Server { .. }) {
                                c.input_done = true;
                            }
                        }
                        Ok(n) => {
                            let Some(data) = self.app_buf.get(..n) else {
                                break;
                            };
                            received.update(data);
                            c.bytes_received += n as u64;
                            let sink: Option<&mut Box<dyn Write>> = match app {
                                App::Client {
                                    output: Output::Writer(w),
                                    ..
                                } => Some(w),
                                App::Server {
                                    mode: ServerMode::Out(w),
                                    ..
                                } => Some(w),
                                _ => None,
                            };
                            if let Some(w) = sink {
                                w.write_all(data).map_err(|source| RuntimeError::Io {
                                    what: "writing output",
                                    source,
                                })?;
                            }
                            if echo {
                                if c.out_off > 0 && c.out_off == c.out_q.len() {
                                    c.out_q.clear();
                                    c.out_off = 0;
                                }
                                c.out_q.extend_from_slice(data);
                            }
                        }
                        Err(_) => break,
                    }
                }
                // Send.
                loop {
                    if c.pending() == 0 {
                        c.out_q.clear();
                        c.out_off = 0;
                        if c.input_done {
                            break;
                        }
                        let App::Client {
                            source, pattern, ..
                        } = app
                        else {
                            break;
                        };
                        match source {
                            Source::Nothing => c.input_done = true,
                            Source::Pattern(remaining) => {
                                let n = usize::try_from(*remaining)
                                    .unwrap_or(usize::MAX)
                                    .min(APP_CHUNK);
                                c.out_q.resize(n, 0);
                                pattern.fill(&mut c.out_q);
                                *remaining -= n as u64;
                                if *remaining == 0 {
                                    c.input_done = true;
                                }
                            }
                            Source::Reader(file) => {
                                if !readable_now(file.as_fd().as_raw_fd()) {
                                    break;
                                }
                                c.out_q.resize(APP_CHUNK, 0);
                                match file.read(&mut c.out_q) {
                                    Ok(0) => {
                                        c.out_q.clear();
                                        c.input_done = true;
                                    }
                                    Ok(n) => c.out_q.truncate(n),
                                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                                        c.out_q.clear();
                                        continue;
                                    }
                                    Err(source) => {
                                        return Err(RuntimeError::Io {
                                            what: "reading input",
                                            source,
                                        })
                                    }
                                }
                            }
                        }
                        if c.pending() == 0 {
                            continue;
                        }
                    }
                    if !c.established {
                        break;
                    }
                    let Some(data) = c.out_q.get(c.out_off..) else {
                        break;
                    };
                    match self.engine.write(c.handle, data) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Some(accepted) = data.get(..n) {
                                sent.update(accepted);
                            }
                            c.out_off += n;
                            c.bytes_sent += n as u64;
                        }
                        Err(_) => break,
                    }
                }
                if !(limited && c.pending() < ECHO_LIMIT) {
                    break;
                }
            }
            if c.input_done && c.pending() == 0 {
                close_once(&mut self.engine, c)?;
            }
        }
        Ok(())
    }

    fn on_signals(&mut self, st: &mut RunState, n: usize) -> Result<(), RuntimeError> {
        // A client still connecting has nothing to close: any signal gives the attempt up.
        self.interrupt_connect(st)?;
        let second = st.interrupted || n > 1;
        st.interrupted = true;
        if second {
            st.aborted = true;
            return self.abort_all(st);
        }
        // First signal: stop sending more, close every connection gracefully now (the FIN
        // waits behind what is queued, which a peer that does not read may never take), and
        // say what a second signal does.
        let mut unacked = 0u64;
        for c in &mut st.conns {
            c.input_done = true;
            c.out_q.clear();
            c.out_off = 0;
            close_once(&mut self.engine, c)?;
            let acked = self
                .engine
                .conn_summary(c.handle)
                .map_or(0, |s| s.bytes_acked);
            unacked += c.bytes_sent.saturating_sub(acked);
        }
        if st.conns.is_empty() {
            st.done = true;
        } else {
            let now = self.now();
            self.flush(now)?;
            self.notice(&closing_notice(unacked));
        }
        Ok(())
    }

    /// After an abort, keep the endpoint answering for a moment. A RST that the peer finds
    /// in its window but not at RCV.NXT (some of our data still in flight or lost) draws a
    /// challenge ACK; the endpoint, which no longer knows the connection, answers that with
    /// a RST whose sequence number is the ACK's, which the peer accepts.
    //= rfc5961#3.2 in-window RST not exactly at RCV.NXT: the receiver sends a challenge ACK
    fn linger(&mut self, st: &RunState, d: Duration) -> Result<(), RuntimeError> {
        let end = std::time::Instant::now() + d;
        loop {
            let now = self.now();
            self.receive(now)?;
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            while self.engine.poll_event().is_some() {}
            self.flush(now)?;
            if let Some(sig) = &self.signals {
                sig.take();
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let next = self
                .engine
                .poll_timeout()
                .map_or(left, |t| t.saturating_duration_since(self.now()).min(left));
            self.wait(st, Some(next))?;
        }
    }

    /// Sleep until a device, the signal descriptor or the input is readable, or `timeout`.
    fn wait(&mut self, st: &RunState, timeout: Option<Duration>) -> Result<(), RuntimeError> {
        self.pollfds.clear();
        let fds = self
            .paths
            .iter()
            .map(|p| p.device.as_raw_fd())
            .chain(self.signals.as_ref().map(AsRawFd::as_raw_fd));
        for fd in fds {
            self.pollfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(ctl) = &self.ctl {
            for (fd, out) in ctl.poll_fds() {
                self.pollfds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN | if out { libc::POLLOUT } else { 0 },
                    revents: 0,
                });
            }
        }
        if let App::Client {
            source: Source::Reader(file),
            ..
        } = &st.app
        {
            if st
                .conns
                .first()
                .is_some_and(|c| c.established && !c.input_done && c.pending() == 0)
            {
                self.pollfds.push(libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            // Below 1e9: fits every c_long.
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pollfds` is a valid array of `len` pollfd entries that lives across the
        // call; `ts_ptr` is null or points at a timespec that outlives the call; a null
        // sigmask leaves the mask unchanged.
        let rc = unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ts_ptr,
                std::ptr::null(),
            )
        };
        let signal_slot = self.paths.len();
        if self.signals.is_some()
            && self
                .pollfds
                .get(signal_slot)
                .is_some_and(|p| p.revents != 0)
        {
            self.signal_ready = true;
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(RuntimeError::Io {
                    what: "poll",
                    source: e,
                });
            }
        }
        Ok(())
    }
}

impl Engine for Endpoint {
    fn listen(&mut self, local: SocketAddr, opts: ListenOptions) -> Result<(), EngineError> {
        Endpoint::listen(self, local, opts)
    }
    fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        opts: ConnectOptions,
    ) -> Result<ConnectionHandle, EngineError> {
        Endpoint::connect(self, now, local, remote, opts)
    }
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        Endpoint::handle_packet(self, now, packet)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Endpoint::poll_transmit(self, now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Endpoint::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Endpoint::handle_timeout(self, now)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }
    fn read(&mut self, conn: ConnectionHandle, buf: &mut [u8]) -> Result<usize, EngineError> {
        Endpoint::read(self, conn, buf)
    }
    fn write(&mut self, conn: ConnectionHandle, data: &[u8]) -> Result<usize, EngineError> {
        Endpoint::write(self, conn, data)
    }
    fn close(&mut self, conn: ConnectionHandle) -> Result<(), EngineError> {
        Endpoint::close(self, conn)
    }
    fn abort(&mut self, conn: ConnectionHandle) -> Result<(), EngineError> {
        Endpoint::abort(self, conn)
    }
    fn conn_summary(&self, conn: ConnectionHandle) -> Option<ConnSummary> {
        self.conn_info(conn).map(|i| ConnSummary {
            local: i.local,
            remote: i.remote,
            rtt: i.rtt,
            bytes_acked: i.bytes_acked,
            mptcp: self.is_mptcp(conn),
            checksum: self.is_mptcp(conn)
                && self
                    .mptcp_connection(conn)
                    .is_some_and(|m| m.info().csum_enabled),
        })
    }
    fn add_subflow(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<usize, EngineError> {
        Endpoint::add_subflow(self, now, conn, local, remote, backup)
    }
    fn endpoint_mut(&mut self) -> Option<&mut Endpoint> {
        Some(self)
    }
    fn subflows(&self, conn: ConnectionHandle) -> Vec<SubflowSummary> {
        let Some(snap) = self.snapshot(conn).filter(|s| s.mptcp) else {
            return Vec::new();
        };
        snap.subflows
            .iter()
            .map(|s| SubflowSummary {
                id: s.id,
                local: s.local,
                remote: s.remote,
                backup: s.backup,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                rtt: s.rtt,
                open: s.open,
                tcp: TcpStats::of(s),
            })
            .collect()
    }
    fn counters(&self) -> BTreeMap<String, u64> {
        Endpoint::counters(self)
            .entries()
            .iter()
            .map(|&(k, v)| (k.to_owned(), v))
            .collect()
    }
}

/// braid's engine (plain TCP and MPTCP; which one a connection uses is chosen by the
/// runtime's [`Runtime::with_mptcp`]) with the default configuration, seeded from the OS.
pub fn tcp_engine() -> Result<Endpoint, RuntimeError> {
    engine(EndpointConfig::default())
}

/// An endpoint with `config` (path-manager endpoints, limits and policy), seeded from the
/// operating system.
pub fn engine(config: EndpointConfig) -> Result<Endpoint, RuntimeError> {
    let seed = os_seed().map_err(|source| RuntimeError::Io {
        what: "reading /dev/urandom",
        source,
    })?;
    Ok(Endpoint::new(config, seed))
}

/// 32 bytes from the operating system's random source, to seed the engine.
pub fn os_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ() {
        let a = os_seed().unwrap();
        let b = os_seed().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn signals_arrive_through_the_descriptor() {
        let sig = Signals::install().unwrap();
        assert_eq!(sig.take(), 0);
        assert!(!readable_now(sig.as_raw_fd()));
        // SAFETY: SIGINT is blocked in this thread, so raising it only makes it pending.
        unsafe { libc::raise(libc::SIGINT) };
        assert!(readable_now(sig.as_raw_fd()));
        assert_eq!(sig.take(), 1);
        assert_eq!(sig.take(), 0);
    }

    #[test]
    fn errors_map_to_one_line_reasons() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert!(matches!(
            connection_error(a, ConnectionError::Reset, false),
            RuntimeError::Refused(_)
        ));
        assert!(matches!(
            connection_error(a, ConnectionError::Reset, true),
            RuntimeError::Reset(_)
        ));
        assert!(connection_error(a, ConnectionError::TimedOut, true)
            .to_string()
            .contains("timed out"));
    }
}

/// The application logic of the runtime against a scripted engine: no packets, no privileges.
mod connecting;

#[cfg(test)]
mod app_tests {
    use super::*;
    use std::collections::VecDeque;
    use std::os::unix::net::UnixDatagram;

    /// A scripted engine: one connection whose peer sends `inbound` then closes; accepts
    /// writes up to `write_cap` bytes in total; a close ends the connection cleanly.
    /// `Event::Closed` with an empty last picture.
    fn closed(conn: ConnectionHandle, error: Option<ConnectionError>) -> Event {
        let addr = SocketAddr::from(([10, 9, 9, 9], 0));
        let info = braid_proto::ConnSnapshot {
            local: addr,
            remote: addr,
            state: braid_proto::TcpState::Closed,
            mptcp: false,
            mptcp_requested: false,
            fallback: false,
            checksum: false,
            local_token: None,
            remote_denies_join: false,
            rtt: None,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            retransmits: 0,
            counters: Default::default(),
            subflows: Vec::new(),
        };
        Event::Closed {
            conn,
            error,
            info: Box::new(info),
        }
    }

    #[derive(Default)]
    pub(super) struct Fake {
        pub(super) events: VecDeque<Event>,
        pub(super) inbound: VecDeque<Vec<u8>>,
        pub(super) peer_fin: bool,
        pub(super) written: Vec<u8>,
        pub(super) write_cap: usize,
        pub(super) closed: bool,
        pub(super) aborted: bool,
        pub(super) refuse: bool,
        /// Once connected, the peer resets with MP_FASTCLOSE (counted in MPFastcloseRx).
        pub(super) fastclose: bool,
        pub(super) listening: Vec<SocketAddr>,
        /// Packets to hand out: source address, GSO segment size, bytes.
        pub(super) transmits: VecDeque<(IpAddr, Option<usize>, Vec<u8>)>,
        /// `connect` stays pending: no SYN/ACK ever comes.
        pub(super) pending_connect: bool,
        /// `close` never completes (the peer does not read, the FIN stays queued).
        pub(super) close_hangs: bool,
    }

    const H: ConnectionHandle = ConnectionHandle(7);

    impl Engine for Fake {
        fn listen(&mut self, local: SocketAddr, _: ListenOptions) -> Result<(), EngineError> {
            self.listening.push(local);
            self.events.push_back(Event::Accepted {
                conn: H,
                local,
                remote: "10.0.0.1:40000".parse().unwrap(),
            });
            Ok(())
        }
        fn connect(
            &mut self,
            _: Instant,
            _: SocketAddr,
            _: SocketAddr,
            _: ConnectOptions,
        ) -> Result<ConnectionHandle, EngineError> {
            if self.pending_connect {
                return Ok(H);
            }
            self.events.push_back(if self.refuse {
                closed(H, Some(ConnectionError::Reset))
            } else {
                Event::Connected(H)
            });
            if self.fastclose {
                self.events
                    .push_back(closed(H, Some(ConnectionError::Reset)));
            }
            Ok(H)
        }
        fn counters(&self) -> BTreeMap<String, u64> {
            BTreeMap::from([("MPFastcloseRx".to_owned(), u64::from(self.fastclose))])
        }
        fn handle_packet(&mut self, _: Instant, _: &[u8]) {}
        fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Transmit> {
            let (src, segment_size, data) = self.transmits.pop_front()?;
            buf[..data.len()].copy_from_slice(&data);
            Some(Transmit {
                len: data.len(),
                src,
                dst: "10.9.9.9".parse().unwrap(),
                segment_size,
            })
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_event(&mut self) -> Option<Event> {
            self.events.pop_front()
        }
        fn read(&mut self, _: ConnectionHandle, buf: &mut [u8]) -> Result<usize, EngineError> {
            match self.inbound.front_mut() {
                Some(chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    chunk.drain(..n);
                    if chunk.is_empty() {
                        self.inbound.pop_front();
                    }
                    Ok(n)
                }
                None if self.peer_fin => Ok(0),
                None => Err(EngineError::WouldBlock),
            }
        }
        fn write(&mut self, _: ConnectionHandle, data: &[u8]) -> Result<usize, EngineError> {
            let room = self.write_cap.saturating_sub(self.written.len());
            if room == 0 {
                return Err(EngineError::WouldBlock);
            }
            let n = room.min(data.len()).min(1000);
            self.written.extend_from_slice(&data[..n]);
            Ok(n)
        }
        fn close(&mut self, conn: ConnectionHandle) -> Result<(), EngineError> {
            self.closed = true;
            if !self.close_hangs {
                self.events.push_back(closed(conn, None));
            }
            Ok(())
        }
        fn abort(&mut self, conn: ConnectionHandle) -> Result<(), EngineError> {
            self.aborted = true;
            self.events
                .push_back(closed(conn, Some(ConnectionError::Aborted)));
            Ok(())
        }
        fn conn_summary(&self, _: ConnectionHandle) -> Option<ConnSummary> {
            Some(ConnSummary {
                local: "10.0.0.2:1234".parse().unwrap(),
                remote: "10.0.0.1:5000".parse().unwrap(),
                rtt: Some(Duration::from_micros(1500)),
                mptcp: false,
                checksum: false,
                bytes_acked: 0,
            })
        }
    }

    pub(super) fn runtime(fake: Fake) -> (Runtime<Fake>, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let paths = vec![Path {
            device: Box::new(a),
            addr: "10.0.0.2".parse().unwrap(),
        }];
        (Runtime::new(fake, paths).unwrap(), b)
    }

    fn pattern(n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        PatternStream::new().fill(&mut v);
        v
    }

    pub(super) fn client(source: Source) -> Role {
        Role::Client {
            remote: "10.0.0.1:5000".parse().unwrap(),
            source,
            output: Output::Discard,
            joins: Vec::new(),
        }
    }

    #[test]
    fn client_sends_the_pattern_then_closes_and_reports() {
        let fake = Fake {
            inbound: VecDeque::from([b"hello".to_vec()]),
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let out = rt.run(client(Source::Pattern(200_000))).unwrap();
        assert_eq!(out.status, Status::Clean);
        let e = rt.engine();
        assert!(e.closed && !e.aborted);
        assert_eq!(e.written, pattern(200_000));
        let mut t = Tally::new();
        t.update(&pattern(200_000));
        assert_eq!(out.report.sha256_sent, t.hex());
        assert_eq!(out.report.bytes_sent, 200_000);
        assert_eq!(out.report.bytes_received, 5);
        assert_eq!(out.report.role, "client");
        assert!(!out.report.mptcp);
        assert_eq!(out.report.subflows.len(), 1);
        assert_eq!(out.report.subflows[0].rtt_ms, 1.5);
        assert_eq!(out.report.subflows[0].local, "10.0.0.2:1234");
    }

    #[test]
    fn client_without_input_closes_at_once() {
        let fake = Fake {
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let out = rt.run(client(Source::Nothing)).unwrap();
        assert_eq!(out.status, Status::Clean);
        assert!(rt.engine().closed);
        assert!(rt.engine().written.is_empty());
    }

    #[test]
    fn client_sends_a_file() {
        let dir = std::env::temp_dir().join(format!("braid-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.bin");
        let data = pattern(150_001);
        std::fs::write(&path, &data).unwrap();
        let fake = Fake {
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let out = rt
            .run(client(Source::Reader(File::open(&path).unwrap())))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(out.status, Status::Clean);
        assert_eq!(rt.engine().written, data);
    }

    #[test]
    fn packets_leave_by_the_path_of_their_source_and_gso_batches_are_split() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        let fake = Fake {
            peer_fin: true,
            write_cap: usize::MAX,
            transmits: VecDeque::from([
                (v4("10.0.0.2"), None, b"first".to_vec()),
                (v4("10.1.0.2"), None, b"second".to_vec()),
                (v4("10.1.0.2"), Some(3), b"abcdefgh".to_vec()),
                (v4("192.0.2.1"), None, b"stray".to_vec()),
            ]),
            ..Fake::default()
        };
        let (a0, b0) = UnixDatagram::pair().unwrap();
        let (a1, b1) = UnixDatagram::pair().unwrap();
        for s in [&a0, &b0, &a1, &b1] {
            s.set_nonblocking(true).unwrap();
        }
        let paths = vec![
            Path {
                device: Box::new(a0),
                addr: v4("10.0.0.2"),
            },
            Path {
                device: Box::new(a1),
                addr: v4("10.1.0.2"),
            },
        ];
        let mut rt = Runtime::new(fake, paths).unwrap();
        rt.run(client(Source::Nothing)).unwrap();
        let drain = |s: &UnixDatagram| {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while let Ok(n) = s.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            got
        };
        // A source no path owns leaves by the first path.
        assert_eq!(drain(&b0), vec![b"first".to_vec(), b"stray".to_vec()]);
        assert_eq!(
            drain(&b1),
            vec![
                b"second".to_vec(),
                b"abc".to_vec(),
                b"def".to_vec(),
                b"gh".to_vec()
            ]
        );
        assert_eq!(rt.io_stats().packets_out, 6);
    }

    #[test]
    fn the_report_of_a_failed_run_names_the_error() {
        let fake = Fake {
            refuse: true,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let (result, report) = rt.run_reporting(client(Source::Pattern(10)));
        assert!(matches!(result, Err(RuntimeError::Refused(_))));
        assert_eq!(
            report.extra.get("error").and_then(|v| v.as_str()),
            Some("connection refused by 10.0.0.1:5000 (RST)")
        );
        assert_eq!(report.role, "client");
        assert_eq!(report.subflows.len(), 1);
        // A clean run has no error field.
        let fake = Fake {
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let (result, report) = rt.run_reporting(client(Source::Nothing));
        assert_eq!(result.unwrap(), Status::Clean);
        assert!(!report.to_json().contains("\"error\""));
    }

    #[test]
    fn a_fast_close_by_the_peer_is_named_in_the_error() {
        let fake = Fake {
            fastclose: true,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let (result, report) = rt.run_reporting(client(Source::Pattern(10)));
        let e = result.unwrap_err();
        assert!(matches!(e, RuntimeError::FastClosed(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "connection to 10.0.0.1:5000 reset by peer (MP_FASTCLOSE)"
        );
        assert_eq!(report.extra["error"], e.to_string());
        assert_eq!(report.counters["MPFastcloseRx"], 1);
    }

    #[test]
    fn progress_lines_read_well() {
        assert_eq!(
            progress_line(12 << 20, 0, Duration::from_secs(1), 2),
            "12.0 MiB sent, 0 B received, 100.7 Mbit/s, 2 subflows"
        );
        assert_eq!(
            progress_line(1000, 1536, Duration::ZERO, 1),
            "1000 B sent, 1.5 KiB received, 0.0 Mbit/s, 1 subflow"
        );
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn progress_waits_for_its_moment_and_clears_only_what_it_drew() {
        #[derive(Clone, Default)]
        struct Buf(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let start = std::time::Instant::now();
        // Not yet `after`: nothing drawn, nothing to clear.
        let mut p = Progress::new(
            Box::new(buf.clone()),
            Duration::ZERO,
            Duration::from_secs(3600),
        );
        p.update(start, 1, 1, 1);
        p.clear();
        assert!(buf.0.borrow().is_empty());
        // Drawn once, then not again within `every`, then erased.
        let mut p = Progress::new(
            Box::new(buf.clone()),
            Duration::from_secs(3600),
            Duration::ZERO,
        );
        p.update(start, 1, 0, 1);
        p.update(start, 2, 0, 1);
        p.clear();
        let text = String::from_utf8(buf.0.borrow().clone()).unwrap();
        // (The rate depends on the clock: not compared.)
        assert!(
            text.starts_with("\r\x1b[K1 B sent, 0 B received, "),
            "{text:?}"
        );
        assert!(text.ends_with(" Mbit/s, 1 subflow\r\x1b[K"), "{text:?}");
        assert_eq!(text.matches("sent").count(), 1, "{text:?}");
    }

    #[test]
    fn replies_leave_by_the_device_the_peer_used_for_the_same_addresses() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        let fake = Fake {
            peer_fin: true,
            write_cap: usize::MAX,
            transmits: VecDeque::from([
                (v4("10.0.0.2"), None, b"to-peer".to_vec()),
                (v4("10.1.0.2"), None, b"other".to_vec()),
            ]),
            ..Fake::default()
        };
        let (a0, b0) = UnixDatagram::pair().unwrap();
        let (a1, b1) = UnixDatagram::pair().unwrap();
        for s in [&a0, &b0, &a1, &b1] {
            s.set_nonblocking(true).unwrap();
        }
        // The peer 10.9.9.9 reaches braid's 10.0.0.2 through the second device.
        let mut ip4 = [0u8; 20];
        ip4[0] = 0x45;
        ip4[12..16].copy_from_slice(&[10, 9, 9, 9]);
        ip4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        b1.send(&ip4).unwrap();
        let paths = vec![
            Path {
                device: Box::new(a0),
                addr: v4("10.0.0.2"),
            },
            Path {
                device: Box::new(a1),
                addr: v4("10.1.0.2"),
            },
        ];
        let mut rt = Runtime::new(fake, paths).unwrap();
        rt.run(client(Source::Nothing)).unwrap();
        let mut buf = [0u8; 64];
        let n = b1.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"to-peer",
            "learned: back through the second device"
        );
        let n = b1.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"other");
        assert!(
            b0.recv(&mut buf).is_err(),
            "nothing left by the first device"
        );
    }

    #[test]
    fn a_bounded_flush_says_when_it_stopped_early() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        let fake = Fake {
            transmits: (0..5u8).map(|i| (v4("10.0.0.2"), None, vec![i])).collect(),
            ..Fake::default()
        };
        let (mut rt, peer) = runtime(fake);
        peer.set_nonblocking(true).unwrap();
        let now = rt.now();
        assert!(rt.flush_up_to(now, 2).unwrap(), "stopped with packets left");
        assert_eq!(rt.io_stats().packets_out, 2);
        assert!(!rt.flush_up_to(now, usize::MAX).unwrap(), "drained");
        assert_eq!(rt.io_stats().packets_out, 5);
        let mut buf = [0u8; 8];
        let got: Vec<u8> = (0..5)
            .map(|_| peer.recv(&mut buf).map(|_| buf[0]).unwrap())
            .collect();
        assert_eq!(got, [0, 1, 2, 3, 4], "in order, none lost");
    }

    #[test]
    fn ip_addresses_are_read_from_both_families() {
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        v6[39] = 2;
        assert_eq!(
            ip_addrs(&v6),
            Some(("::1".parse().unwrap(), "::2".parse().unwrap()))
        );
        assert_eq!(ip_addrs(&v6[..39]), None);
        assert_eq!(ip_addrs(&[0x45; 19]), None);
        assert_eq!(ip_addrs(&[0x55; 40]), None);
        assert_eq!(ip_addrs(&[]), None);
        let mut r = Routes::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        r.learn(a, b, 1);
        r.learn(a, b, 2);
        assert_eq!(r.lookup(a, b), Some(2));
        assert_eq!(r.lookup(b, a), None);
        for i in 0..MAX_ROUTES as u8 {
            r.learn(IpAddr::from([192, 0, 2, i]), b, 0);
        }
        assert_eq!(r.entries.len(), MAX_ROUTES);
        assert_eq!(r.lookup(a, b), None, "the oldest pair was forgotten");
    }

    #[test]
    fn refused_connect_is_an_error() {
        let fake = Fake {
            refuse: true,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let e = rt.run(client(Source::Pattern(10))).unwrap_err();
        assert!(matches!(e, RuntimeError::Refused(_)), "{e}");
        assert_eq!(e.to_string(), "connection refused by 10.0.0.1:5000 (RST)");
    }

    #[test]
    fn echo_server_returns_everything_then_closes_once() {
        let data = pattern(300_000);
        let fake = Fake {
            inbound: data.chunks(7000).map(<[u8]>::to_vec).collect(),
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let out = rt
            .run(Role::Server {
                port: 5000,
                mode: ServerMode::Echo,
                once: true,
            })
            .unwrap();
        assert_eq!(out.status, Status::Clean);
        let e = rt.engine();
        assert_eq!(e.listening, vec!["10.0.0.2:5000".parse().unwrap()]);
        assert_eq!(e.written, data);
        assert!(e.closed);
        assert_eq!(out.report.role, "server");
        assert_eq!(out.report.sha256_sent, out.report.sha256_received);
    }

    #[test]
    fn sink_server_writes_out_and_closes_after_the_peer() {
        let data = pattern(100_000);
        let fake = Fake {
            inbound: VecDeque::from([data.clone()]),
            peer_fin: true,
            write_cap: usize::MAX,
            ..Fake::default()
        };
        let (mut rt, _peer) = runtime(fake);
        let shared = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        struct W(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let out = rt
            .run(Role::Server {
                port: 5000,
                mode: ServerMode::Out(Box::new(W(shared.clone()))),
                once: true,
            })
            .unwrap();
        assert_eq!(*shared.borrow(), data);
        assert!(rt.engine().closed);
        assert!(rt.engine().written.is_empty());
        assert_eq!(out.report.bytes_received, 100_000);
    }

    #[test]
    fn first_signal_closes_gracefully_second_aborts() {
        // One signal: the transfer stops, FIN, status Interrupted.
        {
            let fake = Fake {
                peer_fin: true,
                write_cap: 50_000,
                ..Fake::default()
            };
            let (rt, _peer) = runtime(fake);
            let mut rt = rt.with_signals(Signals::install().unwrap());
            // SAFETY: SIGINT is blocked in this thread (Signals above): it only becomes pending.
            unsafe { libc::raise(libc::SIGINT) };
            let out = rt.run(client(Source::Pattern(10_000_000))).unwrap();
            assert_eq!(out.status, Status::Interrupted);
            assert!(rt.engine().closed && !rt.engine().aborted);
        }
        // Two signals: RST.
        {
            let fake = Fake {
                write_cap: 50_000,
                ..Fake::default()
            };
            let (rt, _peer) = runtime(fake);
            let mut rt = rt.with_signals(Signals::install().unwrap());
            // SAFETY: as above; two distinct signals so both are counted.
            unsafe {
                libc::raise(libc::SIGINT);
                libc::raise(libc::SIGTERM);
            }
            let e = rt.run(client(Source::Pattern(10_000_000))).unwrap_err();
            assert!(matches!(e, RuntimeError::Aborted), "{e}");
            assert!(rt.engine().aborted);
        }
    }
}

/// Two runtimes with braid's real TCP engine, joined by a datagram socket pair instead of TUN
/// devices: the whole loop (timers, transmit, application) without privileges.
#[cfg(test)]
mod pair_tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            match self.0.lock() {
                Ok(mut v) => v.extend_from_slice(b),
                Err(_) => return Err(io::Error::other("poisoned")),
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run_pair(
        server_mode: fn(Shared) -> ServerMode,
        n: u64,
    ) -> (Outcome, Outcome, Shared, Shared) {
        run_pair_with(server_mode, n, false, false)
    }

    fn run_pair_with(
        server_mode: fn(Shared) -> ServerMode,
        n: u64,
        client_mptcp: bool,
        server_mptcp: bool,
    ) -> (Outcome, Outcome, Shared, Shared) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let server_out = Shared::default();
        let client_out = Shared::default();
        let so = server_out.clone();
        let server = std::thread::spawn(move || {
            let paths = vec![Path {
                device: Box::new(a),
                addr: "10.0.0.1".parse().unwrap(),
            }];
            let mut rt = Runtime::new(tcp_engine().unwrap(), paths)
                .unwrap()
                .with_mptcp(server_mptcp);
            rt.run(Role::Server {
                port: 5000,
                mode: server_mode(so),
                once: true,
            })
            .unwrap()
        });
        let co = client_out.clone();
        let client = std::thread::spawn(move || {
            let paths = vec![Path {
                device: Box::new(b),
                addr: "10.0.0.2".parse().unwrap(),
            }];
            let mut rt = Runtime::new(tcp_engine().unwrap(), paths)
                .unwrap()
                .with_mptcp(client_mptcp);
            rt.run(Role::Client {
                remote: "10.0.0.1:5000".parse().unwrap(),
                source: Source::Pattern(n),
                output: Output::Writer(Box::new(co)),
                joins: Vec::new(),
            })
            .unwrap()
        });
        let c = client.join().unwrap();
        let s = server.join().unwrap();
        (c, s, client_out, server_out)
    }

    fn pattern_hex(n: usize) -> String {
        let mut v = vec![0; n];
        PatternStream::new().fill(&mut v);
        let mut t = Tally::new();
        t.update(&v);
        t.hex()
    }

    #[test]
    fn client_to_sink_server_is_byte_exact() {
        let n = 4 << 20;
        let (c, s, _, stored) = run_pair(|w| ServerMode::Out(Box::new(w)), n);
        assert_eq!(c.status, Status::Clean);
        assert_eq!(s.status, Status::Clean);
        let want = pattern_hex(n as usize);
        assert_eq!(c.report.sha256_sent, want);
        assert_eq!(s.report.sha256_received, want);
        assert_eq!(s.report.bytes_received, n);
        assert_eq!(stored.0.lock().unwrap().len() as u64, n);
        assert!(c.report.subflows[0].rtt_ms > 0.0);
        assert_eq!(c.report.subflows[0].remote, "10.0.0.1:5000");
    }

    #[test]
    fn echo_server_returns_every_byte() {
        let n = 1 << 20;
        let (c, s, echoed, _) = run_pair(|_| ServerMode::Echo, n);
        assert_eq!(c.status, Status::Clean);
        let want = pattern_hex(n as usize);
        assert_eq!(c.report.sha256_received, want);
        assert_eq!(s.report.sha256_sent, want);
        assert_eq!(echoed.0.lock().unwrap().len() as u64, n);
    }

    #[test]
    fn mptcp_client_and_server_report_mptcp_and_counters() {
        let n = 4 << 20;
        let (c, s, _, stored) = run_pair_with(|w| ServerMode::Out(Box::new(w)), n, true, true);
        assert_eq!(c.status, Status::Clean);
        let want = pattern_hex(n as usize);
        assert_eq!(s.report.sha256_received, want);
        assert_eq!(stored.0.lock().unwrap().len() as u64, n);
        assert!(c.report.mptcp && s.report.mptcp);
        assert_eq!(c.report.counters.get("MPCapableSYNACKRX"), Some(&1));
        assert_eq!(s.report.counters.get("MPCapableSYNRX"), Some(&1));
        assert_eq!(s.report.counters.get("DSSNotMatching"), Some(&0));
    }

    fn dgram_pair() -> (UnixDatagram, UnixDatagram) {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_datagram_device_whose_peer_is_gone_drops_packets() {
        let (a, b) = dgram_pair();
        drop(b);
        // ECONNREFUSED first, ENOTCONN after: both are a link that is down, not an error
        // that ends the run.
        for _ in 0..3 {
            assert!(!PacketDevice::send(&a, b"packet").unwrap());
        }
    }

    /// Two paths (two datagram pairs): the client joins a second subflow from its second
    /// address to the server's second address, so the join arrives at the server on
    /// another device and address than the connection. Returns (client, server, what the
    /// client's progress line wrote).
    fn two_paths(n: u64, backup: bool) -> (Outcome, Outcome, String) {
        let (c0, s0) = dgram_pair();
        let (c1, s1) = dgram_pair();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let server = std::thread::spawn(move || {
            let paths = vec![
                Path {
                    device: Box::new(s0),
                    addr: ip("10.0.0.1"),
                },
                Path {
                    device: Box::new(s1),
                    addr: ip("10.1.0.1"),
                },
            ];
            let mut rt = Runtime::new(tcp_engine().unwrap(), paths)
                .unwrap()
                .with_mptcp(true);
            rt.run(Role::Server {
                port: 5000,
                mode: ServerMode::Sink,
                once: true,
            })
            .unwrap()
        });
        let paths = vec![
            Path {
                device: Box::new(c0),
                addr: ip("10.0.0.2"),
            },
            Path {
                device: Box::new(c1),
                addr: ip("10.1.0.2"),
            },
        ];
        let progress = Shared::default();
        let mut rt = Runtime::new(tcp_engine().unwrap(), paths)
            .unwrap()
            .with_mptcp(true)
            .with_progress(Progress::new(
                Box::new(progress.clone()),
                Duration::ZERO,
                Duration::ZERO,
            ));
        let c = rt
            .run(Role::Client {
                remote: "10.0.0.1:5000".parse().unwrap(),
                source: Source::Pattern(n),
                output: Output::Discard,
                joins: vec![JoinSpec {
                    local: ip("10.1.0.2"),
                    remote: "10.1.0.1:5000".parse().unwrap(),
                    backup,
                }],
            })
            .unwrap();
        let s = server.join().unwrap();
        assert_eq!(s.report.sha256_received, pattern_hex(n as usize));
        assert!(c.report.mptcp && s.report.mptcp);
        assert_eq!(c.report.counters.get("MPJoinSynTx"), Some(&1));
        assert_eq!(c.report.counters.get("MPJoinSynAckRx"), Some(&1));
        assert_eq!(s.report.counters.get("MPJoinSynRx"), Some(&1));
        assert_eq!(s.report.counters.get("MPJoinAckRx"), Some(&1));
        for (r, local, remote) in [
            (&c.report, "10.1.0.2", "10.1.0.1:5000"),
            (&s.report, "10.1.0.1:5000", "10.1.0.2"),
        ] {
            assert_eq!(r.subflows.len(), 2, "{r:?}");
            let j = &r.subflows[1];
            assert_eq!(j.id, 1);
            assert!(j.local.starts_with(local), "{j:?}");
            assert!(j.remote.starts_with(remote), "{j:?}");
            assert_eq!(
                j.backup, backup,
                "the join's backup bit, seen on both sides: {j:?}"
            );
            assert_eq!(r.subflows[0].id, 0);
            assert!(!r.subflows[0].backup);
        }
        let text = String::from_utf8(progress.0.lock().unwrap().clone()).unwrap();
        (c, s, text)
    }

    #[test]
    fn client_joins_a_second_subflow_that_carries_data() {
        let n: u64 = 8 << 20;
        let (c, s, progress) = two_paths(n, false);
        // Both subflows carried data, seen by the sender and by the receiver.
        for id in [0, 1] {
            assert!(c.report.subflows[id].bytes_sent > 0, "{:?}", c.report);
            assert!(s.report.subflows[id].bytes_received > 0, "{:?}", s.report);
        }
        // Each byte arrived once, on one subflow or the other, unless the client sent some
        // again on another subflow: a data-level retransmission (`MPTCPRetrans`) or the
        // reinjection of a stale subflow's bytes (`SubflowStale`), which a loaded machine
        // can trigger (this runs in real time, and a full datagram socket drops packets).
        let at_server: u64 = s.report.subflows.iter().map(|f| f.bytes_received).sum();
        let count = |k: &str| c.report.counters.get(k).copied().unwrap_or(0);
        if count("MPTCPRetrans") + count("SubflowStale") == 0 {
            assert_eq!(
                at_server, n,
                "each byte arrived once: {:?}",
                c.report.counters
            );
        } else {
            assert!(at_server >= n, "{at_server} of {n} bytes");
        }
        // The progress line was drawn in place and erased at the end.
        assert!(
            progress.contains("sent, ") && progress.contains("2 subflows"),
            "{progress:?}"
        );
        assert!(progress.ends_with("\r\x1b[K"), "{progress:?}");
        assert!(!progress.contains('\n'), "{progress:?}");
    }

    #[test]
    fn a_backup_join_carries_nothing_while_the_primary_works() {
        let n: u64 = 4 << 20;
        let (c, s, _) = two_paths(n, true);
        // (Almost) nothing: on a starved machine a spurious RTO may mark the primary stale
        // for a moment (its wall-clock timers run late), and the backup then carries a few
        // segments until it recovers.
        assert!(c.report.subflows[1].bytes_sent <= n / 50, "{:?}", c.report);
        assert_eq!(s.report.subflows[0].bytes_received, n, "{:?}", s.report);
    }

    #[test]
    fn mptcp_client_falls_back_to_a_plain_server_and_says_so() {
        let n = 1 << 20;
        let (c, s, _, _) = run_pair_with(|w| ServerMode::Out(Box::new(w)), n, true, false);
        assert_eq!(s.report.sha256_received, pattern_hex(n as usize));
        assert!(!c.report.mptcp && !s.report.mptcp);
        assert_eq!(c.report.counters.get("MPCapableFallbackSYNACK"), Some(&1));
    }
}
