//! The state an [`Endpoint`](super::Endpoint), its streams and listeners share with the
//! driver task: the sans-IO engine, and per connection and listener the wakers of the tasks
//! waiting on them.
//!
//! Everything sits behind one mutex. The driver takes it for a batch of packets and timers,
//! then turns the engine's events into wake-ups: only the tasks whose connection has news run
//! (work per event, not per connection). Streams take it for one `read`/`write` call and wake
//! the driver when that call may have produced packets.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

use braid_proto::{ConnectionError, ConnectionHandle, Event, Instant};

use crate::ctl::MonitorEvent;

/// A connection's identity in the driver: unlike the engine's handle, never reused.
pub(crate) type ConnId = u64;

/// Connections a listener holds, accepted by the engine but not yet by the application; more
/// are reset (a full backlog, as a kernel listener's).
pub(crate) const MAX_BACKLOG: usize = 1024;

/// What one connection's tasks wait on.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    /// The engine's handle, until the engine reports the connection closed.
    pub handle: Option<ConnectionHandle>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The handshake completed.
    pub established: bool,
    /// Set when the engine reported the connection closed: `Some(None)` a clean close.
    pub closed: Option<Option<ConnectionError>>,
    /// The application shut its sending direction down (DATA_FIN / FIN queued).
    pub shut_down: bool,
    /// The application aborted the connection.
    pub aborted: bool,
    /// The connection ran MPTCP at its end (kept for after the handle is gone).
    pub was_mptcp: bool,
    /// The last snapshot, kept from the engine's `Closed` event.
    pub last_info: Option<Box<braid_proto::snapshot::ConnSnapshot>>,
    /// Stream handles (halves) alive; 0 for a connection still in a listener's backlog or
    /// dropped by the application (an orphan the driver finishes alone).
    pub refs: usize,
    /// Waiting in a listener's backlog.
    pub in_backlog: bool,
    /// One-line notes about the connection (a subflow that could not be opened...).
    pub notes: Vec<String>,
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
    pub connect_waker: Option<Waker>,
    pub close_waker: Option<Waker>,
}

impl ConnSlot {
    fn new(handle: ConnectionHandle, local: SocketAddr, remote: SocketAddr) -> ConnSlot {
        ConnSlot {
            handle: Some(handle),
            local,
            remote,
            established: false,
            closed: None,
            shut_down: false,
            aborted: false,
            was_mptcp: false,
            last_info: None,
            refs: 0,
            in_backlog: false,
            notes: Vec::new(),
            read_waker: None,
            write_waker: None,
            connect_waker: None,
            close_waker: None,
        }
    }

    fn wake_all(&mut self) {
        for w in [
            self.read_waker.take(),
            self.write_waker.take(),
            self.connect_waker.take(),
            self.close_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

/// One listening port.
#[derive(Debug, Default)]
pub(crate) struct ListenerSlot {
    pub backlog: VecDeque<ConnId>,
    /// Every task waiting in `accept` (the listener's clones may wait at once): all are
    /// woken when a connection arrives, and those that find none wait again.
    pub wakers: Vec<Waker>,
}

/// Counters of the driver's own I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets a device refused (no room); TCP retransmits them.
    pub packets_dropped: u64,
}

/// A path as the application sees it: its device's name and braid's address behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub name: String,
    pub addr: IpAddr,
    /// braid created the device (it did not exist before).
    pub created: bool,
    /// The device has offloads: GSO writes of a connection's back-to-back segments, GSO
    /// reads split into segments (see [`crate::api::Builder::offload`]).
    pub offload: bool,
}

/// The shared state (see the module docs).
pub(crate) struct State {
    pub ep: braid_proto::Endpoint,
    epoch: std::time::Instant,
    /// Connect and listen with MPTCP.
    pub mptcp: bool,
    pub paths: Vec<PathInfo>,
    pub conns: HashMap<ConnId, ConnSlot>,
    by_handle: HashMap<ConnectionHandle, ConnId>,
    next_id: ConnId,
    pub listeners: HashMap<u16, ListenerSlot>,
    driver_waker: Option<Waker>,
    /// Why the driver stopped (a device failed), once it has.
    pub driver_error: Option<(io::ErrorKind, String)>,
    /// Every `Endpoint` handle is gone: the driver ends once no listener and no connection
    /// is left either.
    pub endpoint_dropped: bool,
    /// The driver has ended: nothing moves any more.
    pub driver_done: bool,
    /// Tasks waiting for every connection to be gone.
    pub idle_wakers: Vec<Waker>,
    /// Control-plane events the driver publishes to monitors (listeners opened...).
    pub monitor_queue: Vec<MonitorEvent>,
    pub io: IoStats,
    /// The devices' writer threads, whose counts `io_stats` adds to `io`.
    pub writers: Vec<std::sync::Arc<super::writer::DevTx>>,
    /// A scratch buffer for orphans' data.
    scratch: Vec<u8>,
    /// The paths' devices (shared with the driver), for their state.
    pub devices: Vec<std::sync::Arc<dyn super::PacketDevice + Send + Sync>>,
    /// While the driver holds the state: streams' read and write wake-ups wait here until
    /// it lets go, so that a task woken on another worker thread does not find the state
    /// locked and sleep on the mutex (`deferring` off: they wake at once).
    pub deferring: bool,
    pub deferred: Vec<Waker>,
}

impl State {
    /// The driver's packet counts, with what the writer threads wrote.
    pub fn io_stats(&self) -> IoStats {
        let mut io = self.io;
        for w in &self.writers {
            io.packets_out += w.sent();
            io.packets_dropped += w.dropped();
        }
        io
    }

    pub fn new(ep: braid_proto::Endpoint, mptcp: bool, paths: Vec<PathInfo>) -> State {
        State {
            ep,
            epoch: std::time::Instant::now(),
            mptcp,
            paths,
            conns: HashMap::new(),
            by_handle: HashMap::new(),
            next_id: 1,
            listeners: HashMap::new(),
            driver_waker: None,
            driver_error: None,
            endpoint_dropped: false,
            driver_done: false,
            idle_wakers: Vec::new(),
            monitor_queue: Vec::new(),
            io: IoStats::default(),
            writers: Vec::new(),
            scratch: vec![0; 16 * 1024],
            devices: Vec::new(),
            deferring: false,
            deferred: Vec::new(),
        }
    }

    /// The engine's clock: microseconds since the endpoint was built.
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The real time of the engine's instant `t`.
    pub fn deadline(&self, t: Instant) -> std::time::Instant {
        self.epoch + std::time::Duration::from_micros(t.as_micros())
    }

    /// Remembers the driver's waker (when it changed).
    pub fn set_driver_waker(&mut self, w: &Waker) {
        if !self.driver_waker.as_ref().is_some_and(|d| d.will_wake(w)) {
            self.driver_waker = Some(w.clone());
        }
    }

    /// Wakes the driver: an application call may have queued packets.
    pub fn wake_driver(&self) {
        if let Some(w) = &self.driver_waker {
            w.wake_by_ref();
        }
    }

    /// A new connection slot for an engine handle.
    pub fn insert(
        &mut self,
        handle: ConnectionHandle,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(id, ConnSlot::new(handle, local, remote));
        self.by_handle.insert(handle, id);
        id
    }

    /// Forgets a slot nobody holds any more.
    pub fn release(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get(&id) {
            if slot.refs == 0 && !slot.in_backlog && slot.handle.is_none() {
                self.conns.remove(&id);
                self.wake_idle();
            }
        }
    }

    fn wake_idle(&mut self) {
        if self.conns.is_empty() {
            for w in self.idle_wakers.drain(..) {
                w.wake();
            }
            // It may be time for the driver to end.
            self.wake_driver();
        }
    }

    /// Nothing is left for the driver to serve: no endpoint handle, listener or connection.
    pub fn finished(&self) -> bool {
        self.endpoint_dropped && self.listeners.is_empty() && self.conns.is_empty()
    }

    /// Turns every pending engine event into wake-ups.
    pub fn dispatch(&mut self) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::Accepted {
                    conn,
                    local,
                    remote,
                } => self.on_accepted(conn, local, remote),
                Event::Connected(conn) => {
                    let info = self.ep.conn_info(conn);
                    let mptcp = self.ep.is_mptcp(conn);
                    if let Some(slot) = self.slot_of(conn) {
                        slot.established = true;
                        slot.was_mptcp = mptcp;
                        if let Some(i) = info {
                            slot.local = i.local;
                        }
                        if let Some(w) = slot.connect_waker.take() {
                            w.wake();
                        }
                        if let Some(w) = slot.write_waker.take() {
                            w.wake();
                        }
                    }
                }
                Event::Readable(conn) => {
                    let (waker, orphan) = match self.slot_of(conn) {
                        Some(slot) => (slot.read_waker.take(), slot.refs == 0 && !slot.in_backlog),
                        None => (None, false),
                    };
                    if let Some(w) = waker {
                        self.wake_or_defer(w);
                    }
                    if orphan {
                        self.drain_orphan(conn);
                    }
                }
                Event::Writable(conn) => {
                    if let Some(w) = self.slot_of(conn).and_then(|s| s.write_waker.take()) {
                        self.wake_or_defer(w);
                    }
                }
                Event::Closed { conn, error, info } => {
                    let Some(id) = self.by_handle.remove(&conn) else {
                        continue;
                    };
                    if let Some(slot) = self.conns.get_mut(&id) {
                        slot.handle = None;
                        slot.closed = Some(error);
                        slot.was_mptcp = info.mptcp;
                        slot.last_info = Some(info);
                        slot.wake_all();
                    }
                    self.release(id);
                }
                Event::SubflowFailed {
                    conn,
                    local,
                    remote,
                    error,
                } => {
                    let note = format!(
                        "cannot open a subflow from {} to {remote}: {error}",
                        local.ip()
                    );
                    if let Some(slot) = self.slot_of(conn) {
                        slot.notes.push(note);
                        if let Some(w) = slot.read_waker.take() {
                            w.wake();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Wakes `w` now, or once the driver lets go of the state (see `State::deferring`).
    fn wake_or_defer(&mut self, w: Waker) {
        if self.deferring {
            self.deferred.push(w);
        } else {
            w.wake();
        }
    }

    fn slot_of(&mut self, conn: ConnectionHandle) -> Option<&mut ConnSlot> {
        let id = self.by_handle.get(&conn)?;
        self.conns.get_mut(id)
    }

    fn on_accepted(&mut self, conn: ConnectionHandle, local: SocketAddr, remote: SocketAddr) {
        let room = self
            .listeners
            .get(&local.port())
            .is_some_and(|l| l.backlog.len() < MAX_BACKLOG);
        if !room {
            // No listener wants it (closed, or its backlog is full): reset, as a kernel
            // listener with a full accept queue would refuse it.
            let _ = self.ep.abort(conn);
            return;
        }
        let mptcp = self.ep.is_mptcp(conn);
        let id = self.insert(conn, local, remote);
        if let Some(slot) = self.conns.get_mut(&id) {
            slot.established = true;
            slot.in_backlog = true;
            slot.was_mptcp = mptcp;
        }
        if let Some(l) = self.listeners.get_mut(&local.port()) {
            l.backlog.push_back(id);
            for w in l.wakers.drain(..) {
                w.wake();
            }
        }
    }

    /// An orphan (every stream handle dropped) still receiving: read and discard, so that
    /// its close can complete.
    pub fn drain_orphan(&mut self, conn: ConnectionHandle) -> u64 {
        let Self { ep, scratch, .. } = self;
        let mut dropped = 0;
        while let Ok(n) = ep.read(conn, scratch) {
            if n == 0 {
                break;
            }
            dropped += n as u64;
        }
        dropped
    }

    /// Every waiting task learns that the driver has stopped.
    pub fn fail_all(&mut self, kind: io::ErrorKind, msg: String) {
        self.driver_error = Some((kind, msg));
        self.driver_done = true;
        for slot in self.conns.values_mut() {
            slot.wake_all();
        }
        for l in self.listeners.values_mut() {
            for w in l.wakers.drain(..) {
                w.wake();
            }
        }
        for w in self.idle_wakers.drain(..) {
            w.wake();
        }
    }

    /// The error a stream or listener gets once the driver has stopped.
    pub fn driver_gone(&self) -> io::Error {
        match &self.driver_error {
            Some((kind, msg)) => io::Error::new(*kind, msg.clone()),
            None => io::Error::other("the braid endpoint's driver has stopped"),
        }
    }
}

/// The mutex around [`State`], and beside it (under a lock of its own, so that workers
/// never take each other's state) what other workers hand this one.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub mailbox: Mutex<super::mailbox::Mailbox>,
    /// With several workers: this one has nothing left to serve (it ends once all have).
    pub done: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new(state: State) -> Shared {
        Shared {
            state: Mutex::new(state),
            mailbox: Mutex::default(),
            done: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The state, whatever a panicking holder left (every update is complete per call).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

/// An engine error as the `io::Error` a TCP socket call would give.
pub(crate) fn engine_error(e: braid_proto::Error) -> io::Error {
    use braid_proto::Error as E;
    match e {
        E::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
        E::AddrInUse => io::Error::new(io::ErrorKind::AddrInUse, e),
        E::Closed(c) => connection_error(c, true),
        E::UnknownConnection => io::Error::new(io::ErrorKind::NotConnected, e),
        E::InvalidState => io::Error::new(io::ErrorKind::BrokenPipe, e),
        E::NotMptcp => io::Error::new(io::ErrorKind::Unsupported, e),
        e => io::Error::other(e),
    }
}

/// Why a connection ended, as a TCP socket reports it: a reset during the handshake is a
/// refusal.
pub(crate) fn connection_error(e: ConnectionError, established: bool) -> io::Error {
    let kind = match e {
        ConnectionError::Refused => io::ErrorKind::ConnectionRefused,
        ConnectionError::Reset if !established => io::ErrorKind::ConnectionRefused,
        ConnectionError::Reset | ConnectionError::FastClosed => io::ErrorKind::ConnectionReset,
        ConnectionError::TimedOut => io::ErrorKind::TimedOut,
        ConnectionError::Aborted => io::ErrorKind::ConnectionAborted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}
