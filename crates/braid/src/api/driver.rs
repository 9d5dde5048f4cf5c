//! The driver: one task per [`Endpoint`](super::Endpoint) that owns the packet devices, the
//! engine's timer and the control socket (quinn's endpoint driver is the model).
//!
//! Each time it runs: read a bounded batch from every device into the engine, fire the
//! engine's timer once it has passed, turn events into wake-ups, answer the control socket,
//! and drain a bounded batch of packets into the devices (a packet leaves by the device its
//! peer's packets between the same two addresses arrive on, else by the path owning its
//! source address). With more to do it yields and runs again; otherwise it sleeps until a
//! device or the control socket is readable, the engine's deadline, or an application call
//! wakes it.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::device::{pick, PacketDevice};
use super::mailbox::{Mailbox, Passed};
use super::reader::{self, DevRx};
use super::state::{Shared, State};
use super::timer::PreciseTimer;
use super::workers::{Peers, ShardCtl};
use super::writer::Writer;
use crate::ctl::{monitor_events, CtlServer, EndpointCtl, MonitorEvent};

/// The granularity of tokio's timers: a deadline nearer than this is waited for by yielding.
const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(1);
/// Largest IP packet (or GSO batch) moved at once.
const PACKET_BUF: usize = 65536;
/// Packets handed to the engine per round before it gets to send: keeps ACKs flowing.
const RX_BATCH: usize = 128;
/// Packets sent per round before the devices are read again.
const TX_BATCH: usize = 128;
/// Capacity of each outgoing packet's buffer: headroom and a GSO write of 64 KiB (pages
/// are touched only where a device coalesces).
const GSO_BUF: usize = 65536 + 64;
/// Rounds per run before the driver yields to other tasks.
const ROUNDS: usize = 8;

/// A device and braid's address behind it; registered with the reactor when the driver
/// reads it itself.
struct Device {
    addr: IpAddr,
    fd: AsyncFd<Dyn>,
    /// Its receive side, shared with its watchdog.
    rx: Arc<DevRx>,
    /// Its writer thread (`None`: the driver writes itself).
    tx: Option<Writer>,
}

/// A shared device as the reactor takes it.
struct Dyn(Arc<dyn PacketDevice + Send + Sync>);

impl std::os::fd::AsRawFd for Dyn {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    devices: Vec<Device>,
    /// Packets a watchdog queued, being handed to the engine.
    batch: Vec<Vec<u8>>,
    rx_buf: Vec<u8>,
    outbox: Outbox,
    sleep: Pin<Box<Sleep>>,
    /// The last millisecond before a deadline (`None`: no timerfd could be made).
    precise: Option<PreciseTimer>,
    armed: Option<braid_proto::Instant>,
    ctl: Option<CtlServer>,
    /// Stream wake-ups taken from the state, woken once it is unlocked.
    wakes: Vec<std::task::Waker>,
    /// The other workers, with several.
    peers: Option<Peers>,
    /// Packets other workers passed on, being handed to the engine.
    passed: Vec<Passed>,
    /// Monitor events other workers sent (to the first), being published.
    events: Vec<MonitorEvent>,
    /// The streams that the last input woke run before the driver sends (see `round`).
    apps_first: bool,
}

/// What the driver sends: the engine's transmits, queued per device and sent a batch at a
/// time so that a device with offloads can coalesce them.
struct Outbox {
    tx_buf: Vec<u8>,
    /// Packets on their way to each device (after its headroom).
    out: Vec<Vec<Vec<u8>>>,
    /// Emptied packet buffers, for reuse.
    pool: Vec<Vec<u8>>,
    /// A device's writer said it was full: nothing more leaves the engine until it has room.
    tx_full: bool,
}

impl Outbox {
    /// Hands one received packet (from device `index`; `passed`: by how many other
    /// workers) to the engine, or on to the worker that owns it; when it leaves its
    /// connection owing an ACK at once, sends what is ready before the next packet.
    #[allow(clippy::too_many_arguments)]
    fn hand_in(
        &mut self,
        devices: &[Device],
        peers: Option<&Peers>,
        st: &mut State,
        now: braid_proto::Instant,
        (index, passed): (usize, u8),
        packet: &[u8],
        cx: &Context<'_>,
    ) -> io::Result<()> {
        if passed == 0 {
            st.io.packets_in += 1;
        }
        match peers {
            Some(p) => {
                let last = p.last(passed);
                if let Some(to) = st.ep.handle_packet_sharded(now, index, packet, last) {
                    p.hand_off(to, index, passed, packet);
                    return Ok(());
                }
            }
            None => st.ep.handle_packet_on(now, index, packet),
        }
        if st.ep.take_urgent_ack() {
            self.flush(devices, st, TX_BATCH, cx)?;
        }
        Ok(())
    }

    /// Drains up to `limit` packets into the devices, a batch per device. True when it
    /// stopped at the limit.
    fn flush(
        &mut self,
        devices: &[Device],
        st: &mut State,
        limit: usize,
        cx: &Context<'_>,
    ) -> io::Result<bool> {
        if self.tx_full {
            // Nothing more out of the engine while a writer is full: it wakes the driver
            // once it has room.
            for dev in devices {
                if let Some(w) = &dev.tx {
                    if !w.tx.check(cx.waker())? {
                        return Ok(false);
                    }
                }
            }
            self.tx_full = false;
        }
        let now = st.now();
        let mut queued = 0usize;
        let mut at_limit = true;
        while queued < limit {
            let Some(t) = st.ep.poll_transmit(now, &mut self.tx_buf) else {
                at_limit = false;
                break;
            };
            let Some(data) = self.tx_buf.get(..t.len) else {
                continue;
            };
            let Some(i) = pick(t.iface, devices.iter().map(|d| d.addr), t.src)
                .filter(|&i| i < devices.len() && i < self.out.len())
            else {
                continue;
            };
            let head = devices[i].rx.dev.headroom();
            let seg = match t.segment_size {
                Some(s) if s > 0 => s,
                _ => data.len().max(1),
            };
            for packet in data.chunks(seg) {
                queued += 1;
                // Room for a whole GSO write: a device with offloads coalesces the flow's
                // following segments into this buffer (only where it has the capacity).
                let mut b = self
                    .pool
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(GSO_BUF));
                b.clear();
                b.resize(head, 0);
                b.extend_from_slice(packet);
                self.out[i].push(b);
            }
        }
        let mut room = true;
        for (dev, out) in devices.iter().zip(self.out.iter_mut()) {
            room &= send_out(dev, out, &mut self.pool, st, cx)?;
        }
        self.tx_full = !room;
        Ok(at_limit && room)
    }
}

/// Sends what is queued for `dev` (through its writer, when it has one); false when its
/// writer is full (see `DevTx::hand_over`).
fn send_out(
    dev: &Device,
    out: &mut Vec<Vec<u8>>,
    pool: &mut Vec<Vec<u8>>,
    st: &mut State,
    cx: &Context<'_>,
) -> io::Result<bool> {
    if let Some(w) = &dev.tx {
        // Its counts are the writer's (`State::io_stats`).
        return if out.is_empty() {
            w.tx.check(cx.waker())
        } else {
            w.tx.hand_over(out, pool, cx.waker())
        };
    }
    if out.is_empty() {
        return Ok(true);
    }
    let n = out.len();
    let sent = dev
        .rx
        .dev
        .send_batch(out)
        .map_err(|e| io::Error::new(e.kind(), format!("device {}: {e}", dev.rx.dev.name())))?;
    st.io.packets_out += sent as u64;
    st.io.packets_dropped += n.saturating_sub(sent) as u64;
    pool.append(out);
    Ok(true)
}

impl Driver {
    /// Registers the devices with the reactor and starts a watchdog per device, and a
    /// writer per device with `writer_threads`.
    pub fn new(
        shared: Arc<Shared>,
        devices: Vec<(Arc<dyn PacketDevice + Send + Sync>, IpAddr)>,
        ctl: Option<CtlServer>,
        writer_threads: bool,
        peers: Option<Peers>,
    ) -> io::Result<Driver> {
        let mut devs: Vec<Device> = Vec::with_capacity(devices.len());
        let stop_all = |devs: &[Device]| devs.iter().for_each(|d| d.rx.stop());
        for (dev, addr) in devices {
            let name = dev.name().to_owned();
            // SAFETY: the device owns its descriptor (a TUN file or a datagram socket): it
            // stays open, and `as_raw_fd` returns the same one, for as long as the device
            // lives; the `Arc` inside keeps it alive until the `AsyncFd` is dropped.
            let fd = match unsafe { AsyncFd::register(Dyn(dev.clone())) } {
                Ok(fd) => fd,
                Err(e) => {
                    stop_all(&devs);
                    let e = io::Error::from(e);
                    return Err(io::Error::new(e.kind(), format!("device {name}: {e}")));
                }
            };
            let rx = Arc::new(DevRx::new(dev.clone()));
            if let Err(e) = reader::spawn(rx.clone()) {
                stop_all(&devs);
                return Err(io::Error::new(
                    e.kind(),
                    format!("device {name}: cannot start its watchdog: {e}"),
                ));
            }
            let tx = if writer_threads {
                match Writer::spawn(dev.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        stop_all(&devs);
                        rx.stop();
                        return Err(io::Error::new(
                            e.kind(),
                            format!("device {name}: cannot start its writer: {e}"),
                        ));
                    }
                }
            } else {
                None
            };
            devs.push(Device { addr, fd, rx, tx });
        }
        {
            let mut st = shared.lock();
            st.writers = devs
                .iter()
                .filter_map(|d| d.tx.as_ref())
                .map(|w| w.tx.clone())
                .collect();
        }
        let n_devices = devs.len();
        Ok(Driver {
            shared,
            devices: devs,
            batch: Vec::with_capacity(RX_BATCH),
            rx_buf: vec![0; PACKET_BUF],
            outbox: Outbox {
                tx_buf: vec![0; PACKET_BUF],
                out: (0..n_devices)
                    .map(|_| Vec::with_capacity(TX_BATCH))
                    .collect(),
                pool: Vec::new(),
                tx_full: false,
            },
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            precise: PreciseTimer::new().ok(),
            armed: None,
            ctl,
            wakes: Vec::new(),
            apps_first: false,
            peers,
            passed: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Hands up to a batch of received packets per device to the engine: first what its
    /// watchdog queued, then what the device holds. True when a device has more. A packet
    /// that leaves its connection owing an ACK at once (out of order, filling a gap, a
    /// duplicate: `Endpoint::take_urgent_ack`) has what is ready sent before the next
    /// packet, so that each such segment gets its own ACK and SACK blocks, as a TCP that
    /// takes packets one at a time would send them.
    fn receive(&mut self, cx: &mut Context<'_>, st: &mut State) -> io::Result<bool> {
        let now = st.now();
        let mut more = false;
        let Driver {
            devices,
            batch,
            rx_buf,
            outbox,
            peers,
            passed,
            events,
            shared,
            ..
        } = self;
        let devices: &[Device] = devices;
        let peers = peers.as_ref();
        if peers.is_some() {
            Mailbox::take(&shared.mailbox, cx.waker(), passed, events);
            for p in passed.drain(..) {
                outbox.hand_in(devices, peers, st, now, (p.iface, p.passed), &p.packet, cx)?;
            }
        }
        for (index, dev) in devices.iter().enumerate() {
            let _reading = dev.rx.reading();
            dev.rx.take(RX_BATCH, cx.waker(), batch)?;
            let mut n = batch.len();
            for packet in batch.iter() {
                outbox.hand_in(devices, peers, st, now, (index, 0), packet, cx)?;
            }
            dev.rx.recycle(batch);
            'device: loop {
                let mut guard = match dev.fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(g)) => g,
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => break,
                };
                loop {
                    if n >= RX_BATCH {
                        dev.rx.was_read();
                        more = true;
                        break 'device;
                    }
                    let got = dev.rx.dev.recv(rx_buf).map_err(|e| {
                        io::Error::new(e.kind(), format!("device {}: {e}", dev.rx.dev.name()))
                    })?;
                    let Some(len) = got else {
                        guard.clear_ready();
                        dev.rx.was_emptied();
                        break;
                    };
                    n += 1;
                    if let Some(packet) = rx_buf.get(..len) {
                        outbox.hand_in(devices, peers, st, now, (index, 0), packet, cx)?;
                    }
                }
            }
        }
        Ok(more)
    }

    /// Drains up to `limit` packets into the devices (see [`Outbox::flush`]).
    fn flush(&mut self, st: &mut State, limit: usize, cx: &Context<'_>) -> io::Result<bool> {
        self.outbox.flush(&self.devices, st, limit, cx)
    }

    /// Answers the control socket when it is ready and publishes path-management events to
    /// monitors (drained even without a control socket: the engine's queue is bounded).
    fn control(&mut self, cx: &mut Context<'_>, st: &mut State) {
        let now = st.now();
        let Some(ctl) = self.ctl.as_mut() else {
            // A worker other than the first sends its events there (when it serves a
            // control socket).
            let mut events = Vec::new();
            while let Some(n) = st.ep.poll_pm_event() {
                if self.peers.as_ref().is_some_and(|p| p.ctl) {
                    events.extend(monitor_events(&n));
                }
            }
            events.append(&mut st.monitor_queue);
            if let Some(p) = &self.peers {
                p.publish(events);
            }
            return;
        };
        for ev in st.monitor_queue.drain(..) {
            ctl.publish(&ev);
        }
        while let Some(n) = st.ep.poll_pm_event() {
            for e in monitor_events(&n) {
                ctl.publish(&e);
            }
        }
        for e in self.events.drain(..) {
            ctl.publish(&e);
        }
        let own = EndpointCtl {
            endpoint: &mut st.ep,
            now,
        };
        match &self.peers {
            Some(p) => ctl.poll(
                cx,
                &mut ShardCtl {
                    own,
                    others: p.shards.get(1..).unwrap_or_default(),
                },
            ),
            None => ctl.poll(cx, &mut { own }),
        }
    }

    /// Arms the timer for the engine's next deadline. True when it is due now.
    ///
    /// The deadline moves later with nearly every packet (a retransmission timer re-armed by
    /// an ACK): the timer is only moved earlier, never later, so it is not reset per packet;
    /// firing early costs one pass that arms it again for the deadline of then.
    ///
    /// tokio's timers tick once a millisecond, and a loss probe or a reordering timer on a
    /// fast path is due a fraction of one after it is set: a far deadline is slept towards on
    /// tokio's timer up to [`TIMER_TICK`] before it, the rest on a [`PreciseTimer`] (without
    /// one, the driver yields and looks again).
    fn arm_timer(&mut self, cx: &mut Context<'_>, st: &State) -> bool {
        let Some(t) = st.ep.poll_timeout() else {
            return false;
        };
        if t <= st.now() {
            return true;
        }
        let due = st.deadline(t);
        if due.saturating_duration_since(std::time::Instant::now()) <= TIMER_TICK {
            match self
                .precise
                .as_mut()
                .map(|p| p.arm(due).map(|()| p.poll_fired(cx)))
            {
                Some(Ok(fired)) => return fired.is_ready(),
                // No timerfd: yield and look again.
                _ => {
                    cx.waker().wake_by_ref();
                    return false;
                }
            }
        }
        let at = |t| {
            let due = st.deadline(t);
            tokio::time::Instant::from_std(due.checked_sub(TIMER_TICK).unwrap_or(due))
        };
        if self.armed.is_none_or(|a| t < a) {
            self.armed = Some(t);
            self.sleep.as_mut().reset(at(t));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            // It fired at an earlier deadline than the engine's now: arm it for this one.
            self.armed = Some(t);
            self.sleep.as_mut().reset(at(t));
            if self.sleep.as_mut().poll(cx).is_ready() {
                return true;
            }
        }
        false
    }

    fn round(&mut self, cx: &mut Context<'_>, st: &mut State) -> io::Result<Round> {
        let more_rx = self.receive(cx, st)?;
        let now = st.now();
        if st.ep.poll_timeout().is_some_and(|t| t <= now) {
            st.ep.handle_timeout(now);
        }
        st.dispatch();
        for d in &self.devices {
            d.rx.set_connections(st.conns.len());
        }
        self.control(cx, st);
        // Streams that the input woke run before the send: what they write at once (an
        // echo, a reply) carries the ACKs the input asks for, instead of pure ACKs going
        // out just ahead of it (Linux's receiver likewise holds an ACK whose window would
        // not grow until the application reads). Once per input: the next round sends
        // whatever they did. ACKs that cannot wait went out in `hand_in` already.
        if !st.deferred.is_empty() && !self.apps_first {
            self.apps_first = true;
            return Ok(Round::AppsFirst);
        }
        self.apps_first = false;
        let more_tx = self.flush(st, TX_BATCH, cx)?;
        // Application calls and the flush can end a connection at once.
        st.dispatch();
        Ok(if more_rx || more_tx {
            Round::More
        } else {
            Round::Idle
        })
    }
}

/// How a round of the driver ended.
enum Round {
    /// More to read or to send: another round.
    More,
    /// Nothing left: arm the timer and sleep.
    Idle,
    /// Streams were woken and run before the next round sends (see `Driver::round`).
    AppsFirst,
}

impl Drop for Driver {
    /// The watchdogs end with the driver.
    fn drop(&mut self) {
        for d in &self.devices {
            d.rx.stop();
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        st.set_driver_waker(cx.waker());
        st.deferring = true;
        let done = this.rounds(cx, &mut st);
        // The streams woken meanwhile run once the state is free.
        st.deferring = false;
        std::mem::swap(&mut this.wakes, &mut st.deferred);
        drop(st);
        for w in this.wakes.drain(..) {
            w.wake();
        }
        if this.apps_first {
            // Behind them in the run queue: they run first, then the driver sends.
            cx.waker().wake_by_ref();
        }
        done
    }
}

impl Driver {
    /// Up to `ROUNDS` rounds, then yield; ready when the endpoint is done.
    fn rounds(&mut self, cx: &mut Context<'_>, st: &mut State) -> Poll<()> {
        for _ in 0..ROUNDS {
            match self.round(cx, st) {
                Ok(Round::More) => continue,
                Ok(Round::AppsFirst) => return Poll::Pending,
                Ok(Round::Idle) => {
                    if self.arm_timer(cx, st) {
                        continue;
                    }
                    // Idle: the endpoint ends when no handle to it remains and every
                    // listener and connection is gone; with several workers, once every
                    // worker is done (the kernel may still put another worker's packets on
                    // this one's queue, which must be read and handed over until then).
                    let finished = st.finished();
                    let all = match &self.peers {
                        Some(p) => p.finished(finished),
                        None => finished,
                    };
                    if all {
                        st.driver_done = true;
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
                Err(e) => {
                    st.fail_all(e.kind(), e.to_string());
                    return Poll::Ready(());
                }
            }
        }
        // Still busy: let other tasks run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
