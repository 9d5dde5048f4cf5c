//! A device's receive side: the driver reads it itself, and a watchdog thread drains it
//! into a userspace queue whenever the driver has not for a while.
//!
//! The driver task shares its thread with the application's tasks; while a thousand of them
//! run, nobody reads the device, and a TUN device's queue towards braid overflows (the kernel
//! drops what does not fit). Reading every packet through a thread instead costs a hand-over
//! and a context switch per packet, which a single fast connection feels. So the driver reads
//! the device directly, and each device has a watchdog: it sleeps until the device is
//! readable, and if the driver has not drained the device within [`STALE`] it drains it into
//! a queue of up to [`QUEUE_MAX`] packets and wakes the driver. Whoever reads the device
//! holds its `reading` lock, and the driver takes the queue before it reads the device
//! again: packets reach the engine in the order they arrived. Buffers go back and forth
//! between the two, so nothing is allocated per packet once the queue has warmed up.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::device::PacketDevice;

/// Packets a device's queue holds; more are dropped (and counted), as a full device queue
/// would drop them.
pub(crate) const QUEUE_MAX: usize = 16384;
/// How long the driver may leave a readable device alone before the watchdog drains it.
pub(crate) const STALE: Duration = Duration::from_millis(1);
/// How often a watchdog with nothing to read looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Largest packet a device hands over.
const PACKET_MAX: usize = 65536;
/// Packets the watchdog moves per lock of the queue.
const BATCH: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Queue {
    packets: VecDeque<Vec<u8>>,
    /// Buffers the driver is done with.
    free: Vec<Vec<u8>>,
    waker: Option<Waker>,
    dropped: u64,
    error: Option<(io::ErrorKind, String)>,
}

/// One device's receive side, shared by the driver and the watchdog.
pub(crate) struct DevRx {
    pub dev: Arc<dyn PacketDevice + Send + Sync>,
    /// Held by whoever reads the device.
    reading: Mutex<()>,
    queue: Mutex<Queue>,
    epoch: Instant,
    /// When the device was last read to empty, in microseconds since `epoch`.
    drained_us: AtomicU64,
    stop: AtomicBool,
}

impl DevRx {
    pub fn new(dev: Arc<dyn PacketDevice + Send + Sync>) -> DevRx {
        DevRx {
            dev,
            reading: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            epoch: Instant::now(),
            drained_us: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The right to read the device (the driver blocks only while the watchdog drains).
    pub fn reading(&self) -> MutexGuard<'_, ()> {
        lock(&self.reading)
    }

    /// The device was just read to empty.
    pub fn drained(&self) {
        self.drained_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// Takes up to `limit` queued packets into `out`; `waker` is woken when the watchdog
    /// queues more. Returns the packets dropped so far because the queue was full.
    pub fn take(&self, limit: usize, waker: &Waker, out: &mut Vec<Vec<u8>>) -> io::Result<u64> {
        let mut q = lock(&self.queue);
        if let Some((kind, msg)) = &q.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        let n = limit.min(q.packets.len());
        out.extend(q.packets.drain(..n));
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            q.waker = Some(waker.clone());
        }
        Ok(q.dropped)
    }

    /// Gives the buffers of handled packets back.
    pub fn recycle(&self, done: &mut Vec<Vec<u8>>) {
        let mut q = lock(&self.queue);
        let room = QUEUE_MAX.saturating_sub(q.free.len());
        q.free.extend(done.drain(..).take(room));
        done.clear();
    }

    /// Tells the watchdog to end (within [`STOP_POLL`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn push(&self, batch: &mut Vec<Vec<u8>>, spare: &mut Vec<Vec<u8>>) {
        let waker = {
            let mut q = lock(&self.queue);
            let room = QUEUE_MAX.saturating_sub(q.packets.len());
            if batch.len() > room {
                q.dropped += (batch.len() - room) as u64;
                spare.extend(batch.drain(room..));
            }
            q.packets.extend(batch.drain(..));
            let want = BATCH.saturating_sub(spare.len());
            let n = want.min(q.free.len());
            let at = q.free.len() - n;
            spare.extend(q.free.drain(at..));
            q.waker.clone()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn fail(&self, e: io::Error) {
        let waker = {
            let mut q = lock(&self.queue);
            q.error = Some((e.kind(), format!("device {}: {e}", self.dev.name())));
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Starts the watchdog of a device.
pub(crate) fn spawn(rx: Arc<DevRx>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("braid-rx-{}", rx.dev.name()))
        .spawn(move || watch(&rx))
}

fn watch(rx: &DevRx) {
    let mut scratch = vec![0u8; PACKET_MAX];
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let stale_us = u64::try_from(STALE.as_micros()).unwrap_or(u64::MAX);
    while !rx.stop.load(Ordering::Relaxed) {
        match crate::fdpoll::wait_readable(rx.dev.as_raw_fd(), STOP_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => return rx.fail(e),
        }
        // Give the driver its chance first.
        std::thread::sleep(STALE);
        if rx
            .now_us()
            .saturating_sub(rx.drained_us.load(Ordering::Relaxed))
            < stale_us
        {
            continue;
        }
        let Ok(_reading) = rx.reading.try_lock() else {
            continue;
        };
        loop {
            match rx.dev.recv(&mut scratch) {
                Ok(Some(n)) => {
                    let mut b = spare.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(scratch.get(..n).unwrap_or_default());
                    batch.push(b);
                    if batch.len() == BATCH {
                        rx.push(&mut batch, &mut spare);
                    }
                }
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return rx.fail(e),
            }
        }
        if !batch.is_empty() {
            rx.push(&mut batch, &mut spare);
        }
        rx.drained();
    }
}
