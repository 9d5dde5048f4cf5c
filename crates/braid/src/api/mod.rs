//! braid as a library: an MPTCP [`Endpoint`] driven by a tokio task, [`MptcpStream`]s and
//! [`MptcpListener`]s in the shape of tokio's `TcpStream` and `TcpListener`.
//!
//! An endpoint owns its paths (one TUN device per path, with braid's own address behind
//! it), braid's sans-IO engine, its timers and optionally a control socket; a task spawned
//! on the current tokio runtime drives them all. Connections made or accepted through the
//! endpoint are streams: `AsyncRead` + `AsyncWrite`, with `poll_shutdown` sending the
//! DATA_FIN, so anything written for tokio's `TcpStream` works over MPTCP.
//!
//! braid's stack lives in the program's process, not in a kernel: before the program exits,
//! let its connections finish closing ([`MptcpStream::closed`], [`Endpoint::wait_idle`]),
//! or the peer never sees the end of the stream.
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let endpoint = braid::Endpoint::builder()
//!     .path("bt0", "10.1.0.2".parse().unwrap())
//!     .path("bt1", "10.2.0.2".parse().unwrap())
//!     .build()?;
//! let mut stream = endpoint.connect("10.1.0.1:8080".parse().unwrap()).await?;
//! stream.write_all(b"hello over two paths").await?;
//! stream.shutdown().await?;
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply).await?;
//! println!("MPTCP: {}", stream.is_mptcp());
//! stream.closed().await;
//! # Ok(()) }
//! ```

pub mod device;
mod driver;
mod listener;
mod mailbox;
mod reader;
mod state;
mod stream;
mod timer;
mod workers;
mod writer;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use braid_proto::pm::{EndpointTable, Limits, PmFactory};
use braid_proto::sched::SchedulerKind;
use braid_proto::{CcAlgorithm, ConnectOptions, EndpointConfig, ListenOptions};

pub use device::PacketDevice;
pub use listener::MptcpListener;
pub use state::{IoStats, PathInfo};
pub use stream::{MptcpStream, OwnedReadHalf, OwnedWriteHalf, ReadHalf, StreamControl, WriteHalf};

use crate::ctl::CtlServer;
use driver::Driver;
use state::{engine_error, Shared, State};

/// One path the builder opens.
enum PathSpec {
    /// A TUN device by name: attached if it exists, created if not.
    Tun(String, IpAddr),
    /// A device the caller opened: one queue per worker.
    Device(Vec<Arc<dyn PacketDevice + Send + Sync>>, IpAddr),
}

/// A device queue as the driver takes it.
type DynDevice = Arc<dyn PacketDevice + Send + Sync>;

/// Configures and builds an [`Endpoint`]. See [`Endpoint::builder`].
pub struct Builder {
    paths: Vec<PathSpec>,
    config: EndpointConfig,
    mptcp: bool,
    ctl: Option<CtlSpec>,
    seed: Option<[u8; 32]>,
    offload: bool,
    writer_threads: bool,
    /// The workers asked for, or why `BRAID_WORKERS` could not say.
    workers: Result<usize, String>,
}

enum CtlSpec {
    Path(PathBuf),
    Server(CtlServer),
}

impl Builder {
    /// A path: the TUN device `dev` (attached if it exists, created if not) with braid's
    /// own address `addr` behind it. The first path carries the connections braid opens;
    /// every path's address accepts connections and joins.
    pub fn path(mut self, dev: &str, addr: IpAddr) -> Self {
        self.paths.push(PathSpec::Tun(dev.to_owned(), addr));
        self
    }

    /// A path over a device the caller opened (a TUN device, or anything else carrying
    /// whole IP packets: a connected `UnixDatagram` joins two endpoints in one process).
    /// The device must be non-blocking.
    pub fn device(
        mut self,
        device: impl PacketDevice + Send + Sync + 'static,
        addr: IpAddr,
    ) -> Self {
        self.paths
            .push(PathSpec::Device(vec![Arc::new(device)], addr));
        self
    }

    /// A path over a device the caller opened with one queue per worker (see
    /// [`Builder::workers`]): queue `i` is worker `i`'s. Each must be non-blocking.
    pub fn device_queues(mut self, queues: Vec<DynDevice>, addr: IpAddr) -> Self {
        self.paths.push(PathSpec::Device(queues, addr));
        self
    }

    /// Worker threads (1 by default, or the environment variable `BRAID_WORKERS`): each
    /// has its own engine, driver and queue of every path's TUN device
    /// (`IFF_MULTI_QUEUE`), and serves a share of the connections; the kernel keeps each
    /// connection's packets on its worker's queue. With more than one, the workers run
    /// on threads of their own (not on the caller's runtime), and TUN devices that
    /// already exist must have been created with `multi_queue`.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Ok(n);
        self
    }

    /// Speak MPTCP (the default): connections open with MP_CAPABLE, listeners accept MPTCP
    /// and plain TCP. `false`: plain TCP only.
    pub fn mptcp(mut self, on: bool) -> Self {
        self.mptcp = on;
        self
    }

    /// The whole engine configuration (TCP parameters, buffers, path manager...), replacing
    /// what the other setters chose so far.
    pub fn config(mut self, config: EndpointConfig) -> Self {
        self.config = config;
        self
    }

    /// The path manager of every connection (the kernel's in-kernel manager by default).
    pub fn path_manager(mut self, pm: PmFactory) -> Self {
        self.config.path_manager = pm;
        self
    }

    /// Path-manager endpoints (`ip mptcp endpoint`) and limits.
    pub fn endpoints(mut self, table: EndpointTable) -> Self {
        self.config.pm_table = table;
        self
    }

    /// Path-manager limits (`ip mptcp limits`; the kernel's defaults otherwise).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.pm_table.set_limits(limits);
        self
    }

    /// The packet scheduler of every connection.
    pub fn scheduler(mut self, s: SchedulerKind) -> Self {
        self.config.scheduler = s;
        self
    }

    /// The congestion control of every subflow.
    pub fn congestion_control(mut self, cc: CcAlgorithm) -> Self {
        self.config.tcp.cc = cc;
        self
    }

    /// Ask for DSS checksums (RFC 8684 §3.3.1).
    pub fn checksum(mut self, on: bool) -> Self {
        self.config.mptcp_checksum = on;
        self
    }

    /// Send and receive buffer sizes of every connection, in bytes: they bound its memory.
    pub fn buffers(mut self, send: usize, recv: usize) -> Self {
        self.config.tcp.send_buffer = send;
        self.config.tcp.recv_buffer = recv;
        self
    }

    /// The most bytes all connections together invite their peers to send (each
    /// connection's receive window is held to an equal share, at least 16 KiB:
    /// [`braid_proto::EndpointConfig::recv_budget`]). By default it fits the TUN devices'
    /// queues (1 KiB per packet they hold), so that many connections sending at once do not
    /// overflow them; `usize::MAX` lifts it.
    pub fn recv_budget(mut self, bytes: usize) -> Self {
        self.config.recv_budget = Some(bytes);
        self
    }

    /// Serve the control plane (`braid endpoint|limits|monitor|stat|counters --ctl PATH`)
    /// on a Unix socket created at `path` (mode 0600; only a stale socket is replaced).
    pub fn ctl(mut self, path: impl Into<PathBuf>) -> Self {
        self.ctl = Some(CtlSpec::Path(path.into()));
        self
    }

    /// Serve the control plane on a socket already bound.
    pub fn ctl_server(mut self, server: CtlServer) -> Self {
        self.ctl = Some(CtlSpec::Server(server));
        self
    }

    /// TUN offloads (the default, where the kernel has them): reads may be GSO
    /// super-packets, which the device splits; writes go in batches in which a flow's
    /// consecutive segments with equal headers become one GSO write. `false` (or the
    /// environment variable `BRAID_OFFLOAD=off`) keeps one packet per read and write.
    pub fn offload(mut self, on: bool) -> Self {
        self.offload = on;
        self
    }

    /// A writer thread per device (the default): the driver hands each round's packets to
    /// it and goes on, so that the kernel's work behind a write into a TUN device (taking
    /// the packet in, waking the socket's reader, the peer's answers) runs beside the
    /// engine instead of in its thread. `false` (or the environment variable
    /// `BRAID_TX_THREAD=off`) has the driver write itself.
    pub fn writer_threads(mut self, on: bool) -> Self {
        self.writer_threads = on;
        self
    }

    /// The seed of ISNs, keys and nonces (by default read from the operating system).
    pub fn seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Opens the paths and the control socket, and spawns the driver on the current tokio
    /// runtime (call it from inside one).
    pub fn build(self) -> io::Result<Endpoint> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "braid::Endpoint must be built inside a tokio runtime (see braid::blocking \
                 for programs without one)",
            ));
        }
        if self.paths.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no path: give at least one path (device and address)",
            ));
        }
        let ctl = match self.ctl {
            None => None,
            Some(CtlSpec::Server(s)) => Some(s),
            Some(CtlSpec::Path(p)) => Some(
                CtlServer::bind(&p)
                    .map_err(|e| io::Error::new(io::ErrorKind::AddrInUse, e.to_string()))?,
            ),
        };
        let workers = self
            .workers
            .map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
        if workers == 0 || workers > usize::from(u8::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{workers} workers: from 1 to 255"),
            ));
        }
        // Per path, one queue per worker.
        let mut queues: Vec<(Vec<DynDevice>, IpAddr)> = Vec::with_capacity(self.paths.len());
        for p in self.paths {
            match p {
                PathSpec::Tun(name, addr) => {
                    let qs = crate::tun::TunDevice::open_queues(&name, self.offload, workers)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    queues.push((
                        qs.into_iter().map(|d| Arc::new(d) as DynDevice).collect(),
                        addr,
                    ));
                }
                PathSpec::Device(qs, addr) => {
                    if qs.len() != workers {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "a path over a device of {} queue(s) for {workers} worker(s): \
                                 give one queue per worker",
                                qs.len()
                            ),
                        ));
                    }
                    queues.push((qs, addr));
                }
            }
        }
        let infos: Vec<PathInfo> = queues
            .iter()
            .map(|(qs, addr)| PathInfo {
                name: qs[0].name().to_owned(),
                addr: *addr,
                created: qs[0].state().created,
                offload: qs[0].offloads(),
            })
            .collect();
        let mut config = self.config;
        if config.recv_budget.is_none() {
            // Every queue holds its own packets: a worker's share is its queues'.
            config.recv_budget = recv_budget(queues.iter().map(|(qs, _)| qs[0].queue_len()));
        }
        if config.local_addrs.is_empty() {
            config.local_addrs = infos.iter().map(|p| p.addr).collect();
        }
        let seed = match self.seed {
            Some(s) => s,
            None => os_seed()?,
        };
        let mut shards: Vec<Arc<Shared>> = Vec::with_capacity(workers);
        let mut devices: Vec<Vec<(DynDevice, IpAddr)>> = Vec::with_capacity(workers);
        for i in 0..workers {
            let mut config = config.clone();
            if workers > 1 {
                config.shard =
                    braid_proto::Shard::new(i as u16, workers as u16).unwrap_or_default();
            }
            let devs: Vec<(DynDevice, IpAddr)> =
                queues.iter().map(|(qs, a)| (qs[i].clone(), *a)).collect();
            let ep = braid_proto::Endpoint::new(config, worker_seed(seed, i));
            let mut state = State::new(ep, self.mptcp, infos.clone());
            state.devices = devs.iter().map(|(d, _)| d.clone()).collect();
            shards.push(Arc::new(Shared::new(state)));
            devices.push(devs);
        }
        let shards: Arc<[Arc<Shared>]> = shards.into();
        let handle = Handle {
            shards: shards.clone(),
            next: AtomicUsize::new(0),
        };
        let writer_threads = self.writer_threads;
        if workers == 1 {
            let devs = devices.pop().unwrap_or_default();
            let driver = Driver::new(shards[0].clone(), devs, ctl, writer_threads, None)?;
            tokio::spawn(driver);
        } else {
            let mut ctl = ctl;
            let has_ctl = ctl.is_some();
            for (i, devs) in devices.into_iter().enumerate() {
                let shared = shards[i].clone();
                let peers = workers::Peers {
                    index: i,
                    shards: shards.clone(),
                    ctl: has_ctl,
                };
                let ctl = if i == 0 { ctl.take() } else { None };
                // On an error the workers started so far end with `handle`.
                workers::spawn(i, move || {
                    Driver::new(shared, devs, ctl, writer_threads, Some(peers))
                })?;
            }
        }
        Ok(Endpoint {
            inner: Arc::new(handle),
        })
    }
}

/// Worker `i`'s seed: the endpoint's, told apart per worker.
fn worker_seed(seed: [u8; 32], i: usize) -> [u8; 32] {
    let mut s = seed;
    for (b, x) in s.iter_mut().zip((i as u64).to_le_bytes()) {
        *b ^= x;
    }
    s
}

/// Receive budget per packet a device's queue holds: a full-sized segment carries about
/// 1.4 kB, so a budget of 1 KiB per packet leaves about a quarter of the queue, and all of
/// the watchdog's queue behind it, for ACKs and handshakes.
const BUDGET_PER_QUEUED_PACKET: usize = 1024;

/// The engine's receive budget (`EndpointConfig::recv_budget`) for devices whose queues hold
/// `queues` packets: what all connections together may invite peers to send fits in them,
/// so that however many connections send at once, the devices' queues do not overflow while
/// braid catches up. `None` when a device's queue is unknown (a datagram socket).
fn recv_budget(queues: impl Iterator<Item = Option<usize>>) -> Option<usize> {
    let mut total = 0usize;
    for q in queues {
        total = total.saturating_add(q?.saturating_mul(BUDGET_PER_QUEUED_PACKET));
    }
    (total > 0).then_some(total)
}

/// Tells the driver when the last handle to the endpoint goes: it ends once every listener
/// and connection is gone too (said under the state's lock, so the driver cannot miss it).
struct Handle {
    /// One per worker.
    shards: Arc<[Arc<Shared>]>,
    /// The worker the next connection opens on.
    next: AtomicUsize,
}

impl Drop for Handle {
    fn drop(&mut self) {
        for shared in self.shards.iter() {
            let mut st = shared.lock();
            st.endpoint_dropped = true;
            st.wake_driver();
        }
    }
}

/// Offloads unless `BRAID_OFFLOAD=off` (or `0`, `no`) says otherwise.
fn offload_default() -> bool {
    env_on("BRAID_OFFLOAD")
}

/// Workers from `BRAID_WORKERS` (1 when unset); what `build` says when it is not a number
/// from 1 to 255.
fn workers_default() -> Result<usize, String> {
    match std::env::var("BRAID_WORKERS") {
        Ok(v) => workers_from(&v).ok_or_else(|| {
            format!("BRAID_WORKERS={v:?}: expected a number of workers from 1 to 255")
        }),
        Err(_) => Ok(1),
    }
}

fn workers_from(v: &str) -> Option<usize> {
    v.trim()
        .parse()
        .ok()
        .filter(|n| (1..=usize::from(u8::MAX)).contains(n))
}

/// Writer threads unless `BRAID_TX_THREAD=off` (or `0`, `no`) says otherwise.
fn writer_threads_default() -> bool {
    env_on("BRAID_TX_THREAD")
}

/// On unless the environment variable `name` says `off`, `0`, `no` or `false`.
fn env_on(name: &str) -> bool {
    !matches!(
        std::env::var(name).as_deref(),
        Ok("off" | "0" | "no" | "false")
    )
}

/// An MPTCP endpoint: braid's paths, its engine and the task that drives them. Cheap to
/// clone (every clone is the same endpoint). The driver runs until the endpoint, its
/// listeners and streams are dropped and every connection has closed.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conns: usize = self.inner.shards.iter().map(|s| s.lock().conns.len()).sum();
        let st = self.shared().lock();
        f.debug_struct("Endpoint")
            .field("paths", &st.paths)
            .field("mptcp", &st.mptcp)
            .field("workers", &self.inner.shards.len())
            .field("connections", &conns)
            .finish()
    }
}

impl Endpoint {
    /// A builder: paths, path manager, limits, scheduler, congestion control, checksums,
    /// control socket.
    pub fn builder() -> Builder {
        Builder {
            paths: Vec::new(),
            config: EndpointConfig::default(),
            mptcp: true,
            ctl: None,
            seed: None,
            offload: offload_default(),
            writer_threads: writer_threads_default(),
            workers: workers_default(),
        }
    }

    /// The first worker's state (paths and settings are every worker's).
    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shards[0]
    }

    /// The worker the next connection opens on (in turn).
    fn next_shard(&self) -> &Arc<Shared> {
        let shards = &self.inner.shards;
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % shards.len();
        &shards[i]
    }

    /// How many workers serve the endpoint (see [`Builder::workers`]).
    pub fn workers(&self) -> usize {
        self.inner.shards.len()
    }

    /// Opens a connection to `remote` from the first path of its address family, with
    /// MP_CAPABLE (unless built with `mptcp(false)`), and waits for the handshake.
    ///
    /// Errors as a TCP connect's: `ConnectionRefused`, `TimedOut` (the SYN retransmissions
    /// ran out, about two minutes; wrap it in `tokio::time::timeout` for less).
    pub async fn connect(&self, remote: SocketAddr) -> io::Result<MptcpStream> {
        let local = {
            let st = self.shared().lock();
            st.paths
                .iter()
                .find(|p| p.addr.is_ipv4() == remote.is_ipv4())
                .map(|p| p.addr)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!("no path of the address family of {remote}"),
                    )
                })?
        };
        self.connect_from(SocketAddr::new(local, 0), remote).await
    }

    /// [`Endpoint::connect`] from a given local address (port 0: an ephemeral port).
    pub async fn connect_from(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<MptcpStream> {
        let stream = self.start_connect(local, remote)?;
        stream.established().await?;
        Ok(stream)
    }

    /// Starts a connection without waiting: the stream can be written at once (the bytes
    /// go once the handshake completes) and [`MptcpStream::established`] waits for it.
    pub fn start_connect(&self, local: SocketAddr, remote: SocketAddr) -> io::Result<MptcpStream> {
        let shared = self.next_shard();
        let id = {
            let mut st = shared.lock();
            if st.driver_done {
                return Err(st.driver_gone());
            }
            let now = st.now();
            let mptcp = st.mptcp;
            let handle = st
                .ep
                .connect(now, local, remote, ConnectOptions { mptcp })
                .map_err(engine_error)?;
            let id = st.insert(handle, local, remote);
            if let Some(slot) = st.conns.get_mut(&id) {
                slot.refs = 1;
            }
            st.wake_driver();
            id
        };
        Ok(MptcpStream::new(shared.clone(), id))
    }

    /// Listens on `port` on every path's address (plain TCP is accepted too, from peers
    /// that do not offer MPTCP).
    pub fn listen(&self, port: u16) -> io::Result<MptcpListener> {
        let shards = &self.inner.shards;
        let mut guards: Vec<_> = shards.iter().map(|s| s.lock()).collect();
        if guards[0].listeners.contains_key(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {port} is already listened on"),
            ));
        }
        let mut addrs: Vec<IpAddr> = Vec::new();
        for p in &guards[0].paths {
            if !addrs.contains(&p.addr) {
                addrs.push(p.addr);
            }
        }
        // Every worker listens: a SYN is taken by the worker whose queue it reaches.
        for (i, st) in guards.iter_mut().enumerate() {
            let mptcp = st.mptcp;
            for a in &addrs {
                st.ep
                    .listen(SocketAddr::new(*a, port), ListenOptions { mptcp })
                    .map_err(engine_error)?;
                if mptcp && i == 0 {
                    let ev = crate::ctl::listener_event(true, SocketAddr::new(*a, port));
                    st.monitor_queue.push(ev);
                }
            }
            st.listeners.insert(port, state::ListenerSlot::default());
            st.wake_driver();
        }
        drop(guards);
        Ok(MptcpListener::new(shards.clone(), port))
    }

    /// Connections open with MP_CAPABLE and listeners accept MPTCP (see
    /// [`Builder::mptcp`]).
    pub fn mptcp_enabled(&self) -> bool {
        self.shared().lock().mptcp
    }

    /// The paths, in order.
    pub fn paths(&self) -> Vec<PathInfo> {
        self.shared().lock().paths.clone()
    }

    /// Whether path `index`'s device can carry packets now, as far as it can tell (its
    /// link state, and whether braid created it); `None` for no such path.
    pub fn path_state(&self, index: usize) -> Option<crate::health::DeviceState> {
        let dev = self.shared().lock().devices.get(index).cloned()?;
        Some(dev.state())
    }

    /// MPTCP counters under the kernel's MIB names, over every connection the endpoint has
    /// had.
    pub fn counters(&self) -> braid_proto::mptcp::MptcpCounters {
        let mut sum = braid_proto::mptcp::MptcpCounters::default();
        for s in self.inner.shards.iter() {
            sum.add(&s.lock().ep.counters());
        }
        sum
    }

    /// The driver's packet counters (every worker's).
    pub fn io_stats(&self) -> IoStats {
        let mut sum = IoStats::default();
        for s in self.inner.shards.iter() {
            let io = s.lock().io_stats();
            sum.packets_in += io.packets_in;
            sum.packets_out += io.packets_out;
            sum.packets_dropped += io.packets_dropped;
        }
        sum
    }

    /// Waits until no connection of this endpoint remains (each closed, and every stream
    /// dropped or finished).
    pub async fn wait_idle(&self) {
        std::future::poll_fn(|cx| {
            for s in self.inner.shards.iter() {
                let mut st = s.lock();
                if !(st.conns.is_empty() || st.driver_done) {
                    st.idle_wakers.push(cx.waker().clone());
                    return std::task::Poll::Pending;
                }
            }
            std::task::Poll::Ready(())
        })
        .await;
    }

    /// Runs `f` on the engine (for the control plane and tests; with several workers,
    /// the first worker's), then wakes the driver.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut braid_proto::Endpoint) -> R) -> R {
        let mut st = self.shared().lock();
        let r = f(&mut st.ep);
        st.wake_driver();
        r
    }
}

/// 32 bytes from the operating system's random source.
pub fn os_seed() -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
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
        assert_ne!(a, [0; 32]);
    }

    #[test]
    fn worker_counts_from_the_environment_are_checked() {
        assert_eq!(workers_from("2"), Some(2));
        assert_eq!(workers_from(" 1 "), Some(1));
        for bad in ["0", "256", "two", "", "-1"] {
            assert_eq!(workers_from(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_receive_budget_fits_the_devices_queues() {
        let q = crate::tun::MIN_TXQUEUELEN as usize;
        assert_eq!(recv_budget([Some(q)].into_iter()), Some(16 << 20));
        assert_eq!(recv_budget([Some(q), Some(q)].into_iter()), Some(32 << 20));
        // A device whose queue is unknown (a datagram socket): no budget.
        assert_eq!(recv_budget([Some(q), None].into_iter()), None);
        assert_eq!(recv_budget([Some(0)].into_iter()), None);
    }
}
