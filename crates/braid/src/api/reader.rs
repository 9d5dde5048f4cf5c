//! One thread per device that keeps its receive queue drained.
//!
//! A TUN device's queue towards braid is short (the kernel's `txqueuelen`, 500 packets by
//! default) and the kernel drops what does not fit. The driver task shares its thread with
//! the application's tasks, so while they run nobody would read the device: a burst (a
//! thousand clients' initial windows) overflows it. Each device therefore has a reader
//! thread that moves packets as they come into a userspace queue of up to
//! [`RX_QUEUE_MAX`] packets, from which the driver takes them. Buffers go back and forth
//! between the two, so nothing is allocated per packet once the queue has warmed up.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::device::PacketDevice;

/// Packets waiting for the driver, over every device; more are dropped (and counted), as
/// a full device queue would drop them.
pub(crate) const RX_QUEUE_MAX: usize = 16384;
/// Packets a reader moves per lock.
const READ_BATCH: usize = 64;
/// How often a reader with nothing to read looks whether it should stop.
const STOP_POLL_MS: i32 = 100;
/// Largest packet a device hands over.
const PACKET_MAX: usize = 65536;

/// A received packet and the index of the device it came from.
pub(crate) type Packet = (usize, Vec<u8>);

#[derive(Default)]
struct Inner {
    packets: VecDeque<Packet>,
    /// Buffers the driver is done with.
    free: Vec<Vec<u8>>,
    waker: Option<Waker>,
    dropped: u64,
    error: Option<(io::ErrorKind, String)>,
}

/// The queue between the readers and the driver.
#[derive(Default)]
pub(crate) struct RxQueue {
    inner: Mutex<Inner>,
    stop: AtomicBool,
}

impl RxQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to `limit` packets; when none is left, `waker` is woken by the next one.
    pub fn take(&self, limit: usize, waker: &Waker, out: &mut Vec<Packet>) -> io::Result<()> {
        let mut q = self.lock();
        if let Some((kind, msg)) = &q.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        let n = limit.min(q.packets.len());
        out.extend(q.packets.drain(..n));
        if q.packets.is_empty() && !q.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            q.waker = Some(waker.clone());
        }
        Ok(())
    }

    /// Gives the buffers of handled packets back to the readers.
    pub fn recycle(&self, done: &mut Vec<Packet>) {
        let mut q = self.lock();
        let room = RX_QUEUE_MAX.saturating_sub(q.free.len());
        q.free.extend(done.drain(..).take(room).map(|(_, b)| b));
        done.clear();
    }

    /// Packets dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Tells the readers to end (each within [`STOP_POLL_MS`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn push(&self, batch: &mut Vec<Packet>, spare: &mut Vec<Vec<u8>>) {
        let waker = {
            let mut q = self.lock();
            let room = RX_QUEUE_MAX.saturating_sub(q.packets.len());
            if batch.len() > room {
                q.dropped += (batch.len() - room) as u64;
                spare.extend(batch.drain(room..).map(|(_, b)| b));
            }
            q.packets.extend(batch.drain(..));
            // Buffers for the next batch.
            let want = READ_BATCH.saturating_sub(spare.len());
            let n = want.min(q.free.len());
            let at = q.free.len() - n;
            spare.extend(q.free.drain(at..));
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn fail(&self, e: io::Error, name: &str) {
        let waker = {
            let mut q = self.lock();
            q.error = Some((e.kind(), format!("device {name}: {e}")));
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Waits until `fd` is readable or `timeout_ms` passed; true when readable.
fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that lives across the call, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}

/// Starts the reader of device `index`.
pub(crate) fn spawn(
    index: usize,
    dev: Arc<dyn PacketDevice + Send + Sync>,
    queue: Arc<RxQueue>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("braid-rx-{}", dev.name()))
        .spawn(move || read_loop(index, &*dev, &queue))
}

fn read_loop(index: usize, dev: &(dyn PacketDevice + Send + Sync), queue: &RxQueue) {
    let mut scratch = vec![0u8; PACKET_MAX];
    let mut batch: Vec<Packet> = Vec::with_capacity(READ_BATCH);
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(READ_BATCH);
    while !queue.stop.load(Ordering::Relaxed) {
        match wait_readable(dev.as_raw_fd(), STOP_POLL_MS) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => return queue.fail(e, dev.name()),
        }
        loop {
            match dev.recv(&mut scratch) {
                Ok(Some(n)) => {
                    let mut b = spare.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(scratch.get(..n).unwrap_or_default());
                    batch.push((index, b));
                    if batch.len() == READ_BATCH {
                        queue.push(&mut batch, &mut spare);
                    }
                }
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return queue.fail(e, dev.name()),
            }
        }
        if !batch.is_empty() {
            queue.push(&mut batch, &mut spare);
        }
    }
}
