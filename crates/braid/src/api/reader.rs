//! A device's receive side: the driver reads it itself, and a watchdog thread drains it
//! into a userspace queue whenever the driver has not for a while.
//!
//! The driver task shares its thread with the application's tasks; while a thousand of them
//! run, nobody reads the device, and a TUN device's queue towards braid overflows (the kernel
//! drops what does not fit). Reading every packet through a thread instead costs a hand-over
//! and a context switch per packet, which a single fast connection feels. So the driver reads
//! the device directly, and each device has a watchdog: it sleeps until the device is
//! readable and, if the driver has left it alone for longer than the watchdog's patience,
//! drains it into a queue of up to [`QUEUE_MAX`] packets and wakes the driver. Whoever
//! reads the device holds its `reading` lock, and the driver takes the queue before it reads
//! the device again: packets reach the engine in the order they arrived. Buffers go back and
//! forth between the two, so nothing is allocated per packet once the queue has warmed up.
//!
//! The patience ([`Patience`]) adapts between [`PATIENCE_MIN`] and [`PATIENCE_MAX`]. A
//! single fast connection's driver is sometimes a few milliseconds late (its writer filled
//! a quarter of the send buffer in one go); taking the few hundred packets that arrived
//! meanwhile costs a hand-over to another thread and a core shared with the peer, about a
//! tenth of the transfer's CPU time when done every millisecond, and saves nothing, since
//! the device's queue holds 16384. A thousand connections' tasks keep the driver waiting
//! long enough for their bursts to fill that queue. So the watchdog looks less often, and
//! waits longer, each time the driver was found keeping up or a drain found little, and
//! goes back to the shortest patience once a drain found [`BUSY`] packets or more waiting,
//! and stays there while the driver serves [`CROWD`] connections or more: their tasks all
//! run before the driver runs again, and their bursts come faster than the watchdog learns.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::device::PacketDevice;
use crate::sync::lock;

/// Packets the watchdog's queue holds. A watchdog that finds it full leaves the rest in the
/// device, whose own queue then holds or drops them (counted by the kernel, `ip -s link`):
/// nothing read is ever dropped in userspace.
pub(crate) const QUEUE_MAX: usize = 16384;
/// The shortest time the driver may leave a readable device alone before the watchdog
/// drains it.
pub(crate) const PATIENCE_MIN: Duration = Duration::from_millis(1);
/// The longest: the device's queue of 16384 packets holds more than the fastest transfer
/// brings in that time.
pub(crate) const PATIENCE_MAX: Duration = Duration::from_millis(16);
/// Packets found waiting by a drain that make the watchdog as watchful as it can be.
pub(crate) const BUSY: usize = 1024;
/// Connections from which on the watchdog keeps its shortest patience.
pub(crate) const CROWD: usize = 8;
/// How often a watchdog with nothing to read looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Largest packet a device hands over.
const PACKET_MAX: usize = 65536;
/// Packets the watchdog moves per lock of the queue.
const BATCH: usize = 64;

#[derive(Default)]
struct Queue {
    packets: VecDeque<Vec<u8>>,
    /// Buffers the driver is done with.
    free: Vec<Vec<u8>>,
    waker: Option<Waker>,
    error: Option<(io::ErrorKind, String)>,
}

/// One device's receive side, shared by the driver and the watchdog.
pub(crate) struct DevRx {
    pub dev: Arc<dyn PacketDevice + Send + Sync>,
    /// Held by whoever reads the device.
    reading: Mutex<()>,
    queue: Mutex<Queue>,
    epoch: Instant,
    /// When the device was last read (to empty, or a full batch of it), in microseconds
    /// since `epoch`.
    read_us: AtomicU64,
    /// When it was last read to empty.
    emptied_us: AtomicU64,
    /// Connections the driver serves (their tasks compete with it for its thread).
    connections: AtomicUsize,
    stop: AtomicBool,
}

impl DevRx {
    pub fn new(dev: Arc<dyn PacketDevice + Send + Sync>) -> DevRx {
        DevRx {
            dev,
            reading: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            epoch: Instant::now(),
            read_us: AtomicU64::new(0),
            emptied_us: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
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

    /// The driver just read a full batch of the device (it keeps reading; what the watchdog
    /// would add is a hand-over, not speed).
    pub fn was_read(&self) {
        self.read_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// The device was just read to empty.
    pub fn was_emptied(&self) {
        let now = self.now_us();
        self.read_us.store(now, Ordering::Relaxed);
        self.emptied_us.store(now, Ordering::Relaxed);
    }

    /// Takes up to `limit` queued packets into `out`; `waker` is woken when the watchdog
    /// queues more.
    pub fn take(&self, limit: usize, waker: &Waker, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        let mut q = lock(&self.queue);
        if let Some((kind, msg)) = &q.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        let n = limit.min(q.packets.len());
        out.extend(q.packets.drain(..n));
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            q.waker = Some(waker.clone());
        }
        Ok(())
    }

    /// Gives the buffers of handled packets back.
    pub fn recycle(&self, done: &mut Vec<Vec<u8>>) {
        let mut q = lock(&self.queue);
        let room = QUEUE_MAX.saturating_sub(q.free.len());
        q.free.extend(done.drain(..).take(room));
        done.clear();
    }

    /// The driver serves `n` connections now.
    pub fn set_connections(&self, n: usize) {
        self.connections.store(n, Ordering::Relaxed);
    }

    /// Tells the watchdog to end (within [`STOP_POLL`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Room left in the queue, in packets.
    fn room(&self) -> usize {
        QUEUE_MAX.saturating_sub(lock(&self.queue).packets.len())
    }

    /// Queues `batch` (which the caller sized to the room) and wakes the driver. Returns
    /// the room left.
    fn push(&self, batch: &mut Vec<Vec<u8>>, spare: &mut Vec<Vec<u8>>) -> usize {
        let (waker, room) = {
            let mut q = lock(&self.queue);
            q.packets.extend(batch.drain(..));
            let want = BATCH.saturating_sub(spare.len());
            let n = want.min(q.free.len());
            let at = q.free.len() - n;
            spare.extend(q.free.drain(at..));
            (q.waker.clone(), QUEUE_MAX.saturating_sub(q.packets.len()))
        };
        if let Some(w) = waker {
            w.wake();
        }
        room
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

/// How long the watchdog lets the driver leave a readable device alone, which is also how
/// long it sleeps between two looks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Patience(Duration);

impl Default for Patience {
    fn default() -> Patience {
        Patience(PATIENCE_MIN)
    }
}

impl Patience {
    fn get(self) -> Duration {
        self.0
    }
    /// The driver had read the device within the patience: be more patient.
    fn keeping_up(&mut self) {
        self.0 = (self.0 * 2).min(PATIENCE_MAX);
    }
    /// Many connections' tasks share the driver's thread: as watchful as can be.
    fn crowded(&mut self) {
        self.0 = PATIENCE_MIN;
    }
    /// A drain found `n` packets waiting: few, be more patient; [`BUSY`] or more, the
    /// device fills faster than the driver comes: as watchful as can be.
    fn drained(&mut self, n: usize) {
        if n >= BUSY {
            self.0 = PATIENCE_MIN;
        } else {
            self.keeping_up();
        }
    }
    fn micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
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
    let mut patience = Patience::default();
    while !rx.stop.load(Ordering::Relaxed) {
        match crate::fdpoll::wait_readable(rx.dev.as_raw_fd(), STOP_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => return rx.fail(e),
        }
        let crowded = rx.connections.load(Ordering::Relaxed) >= CROWD;
        if crowded {
            patience.crowded();
        }
        // Give the driver its chance first.
        std::thread::sleep(patience.get());
        // In a crowd, a driver that reads a batch at a time while the device fills is not
        // keeping up: only reading it to empty counts.
        let last = if crowded { &rx.emptied_us } else { &rx.read_us };
        let age = rx.now_us().saturating_sub(last.load(Ordering::Relaxed));
        if age < patience.micros() {
            patience.keeping_up();
            continue;
        }
        let Ok(_reading) = rx.reading.try_lock() else {
            // The driver is reading it right now.
            patience.keeping_up();
            continue;
        };
        let mut drained = 0usize;
        let mut room = rx.room();
        let mut emptied = false;
        while room > 0 {
            match rx.dev.recv(&mut scratch) {
                Ok(Some(n)) => {
                    let mut b = spare.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(scratch.get(..n).unwrap_or_default());
                    batch.push(b);
                    drained += 1;
                    room -= 1;
                    if batch.len() == BATCH || room == 0 {
                        room = rx.push(&mut batch, &mut spare);
                    }
                }
                Ok(None) => {
                    emptied = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return rx.fail(e),
            }
        }
        if !batch.is_empty() {
            rx.push(&mut batch, &mut spare);
        }
        if emptied {
            rx.was_emptied();
        }
        patience.drained(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_grows_patient_while_the_driver_keeps_up_or_drains_find_little() {
        let mut p = Patience::default();
        assert_eq!(p.get(), PATIENCE_MIN);
        let mut seen = vec![p.get()];
        for _ in 0..10 {
            p.keeping_up();
            seen.push(p.get());
        }
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(p.get(), PATIENCE_MAX);
        // A drain that found a full burst: watchful at once.
        p.drained(BUSY);
        assert_eq!(p.get(), PATIENCE_MIN);
        // Drains that find little: patient again, step by step.
        p.drained(BUSY - 1);
        assert!(p.get() > PATIENCE_MIN);
        for _ in 0..10 {
            p.drained(10);
        }
        assert_eq!(p.get(), PATIENCE_MAX);
        p.crowded();
        assert_eq!(p.get(), PATIENCE_MIN);
    }

    #[test]
    fn the_longest_patience_leaves_room_in_a_raised_device_queue() {
        // The fastest one-path transfer measured moves about 300,000 packets a second
        // (3.6 Gbit/s of 1500-byte packets): what arrives in PATIENCE_MAX fits the queue
        // braid gives its TUN devices, with room to spare, and BUSY is a small part of it.
        let arriving = 300_000 * PATIENCE_MAX.as_millis() as u64 / 1000;
        assert!(
            arriving * 2 < u64::from(crate::tun::MIN_TXQUEUELEN),
            "{arriving}"
        );
        assert!(BUSY * 8 <= crate::tun::MIN_TXQUEUELEN as usize);
    }
}
