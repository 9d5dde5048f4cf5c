//! A device's send side: a writer thread per device makes the writes, so that the kernel's
//! work behind them runs beside the engine instead of inside its thread.
//!
//! A write into a TUN device is where the kernel takes the packet in: its IP and TCP
//! receive paths, the wake-up of the socket's reader and, in the softirq that follows, the
//! peer's own transmissions run in the writer's system call. With a thousand kernel
//! connections on the other side that is half of the driver's thread (`perf`, bench
//! `conns.sh`), work that nothing orders after the engine's. So the driver hands each round's
//! packets, in order, to the device's writer and goes on; the writer sends them a batch at a
//! time (a device with offloads coalesces a flow's segments across the batch, without
//! letting them overtake the flow's own ACKs: `tun::order`) and gives the buffers back. One
//! writer per device keeps every device's packets in the order the engine produced them.
//!
//! The hand-over is bounded: at [`PENDING_MAX`] packets waiting the writer says it is full
//! and the driver takes nothing more out of the engine (the device is the bottleneck then,
//! and the engine must not run ahead of it) until the writer, down to half of that, wakes
//! it. The driver never waits for the writer: it would wait holding the state that the
//! application's threads need for every call (with a thousand kernel clients the writer is
//! the bottleneck, and their connections then waited seconds to be accepted). A write
//! error ends the writer; the driver sees it at its next hand-over, or at once when it
//! sleeps, through the waker it left. Dropping the [`Writer`] stops the thread after it has
//! written everything it was given, and waits for that.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::thread::JoinHandle;

use super::device::PacketDevice;
use crate::sync::{lock, wait};

/// Packets waiting for the writer from which on the driver hands over no more until the
/// writer is down to half of them.
pub(crate) const PENDING_MAX: usize = 1024;
/// Written buffers the driver keeps for reuse (the rest are freed).
const POOL_MAX: usize = 1024;
/// Packets the writer sends per write batch.
const WRITE_BATCH: usize = 512;

#[derive(Default)]
struct Queue {
    /// Packets to write, in order, each after the device's headroom.
    pending: Vec<Vec<u8>>,
    /// Written buffers, for the driver to reuse.
    free: Vec<Vec<u8>>,
    /// The writer is asleep, waiting for packets.
    idle: bool,
    error: Option<(io::ErrorKind, String)>,
    /// The driver's waker, for an error found while it sleeps, or room it waits for.
    waker: Option<Waker>,
    /// The driver was told the writer is full: wake it once half of that is written.
    want_room: bool,
    stop: bool,
}

/// One device's send side, shared by the driver and the writer thread.
pub(crate) struct DevTx {
    dev: Arc<dyn PacketDevice + Send + Sync>,
    queue: Mutex<Queue>,
    /// Signalled when packets (or the stop) arrive for the writer.
    work: Condvar,
    /// Packets written, and dropped (the device's queue was full, or its link down).
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl DevTx {
    fn new(dev: Arc<dyn PacketDevice + Send + Sync>) -> DevTx {
        DevTx {
            dev,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Packets written so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Packets the device dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands `out` (emptied) to the writer, after the packets handed before; takes written
    /// buffers back into `pool` (up to [`POOL_MAX`] there). True while the writer has room
    /// for more; false once [`PENDING_MAX`] packets wait, and `waker` is woken when it has
    /// written half of them. Never waits. Fails with the writer's error once it had one.
    pub fn hand_over(
        &self,
        out: &mut Vec<Vec<u8>>,
        pool: &mut Vec<Vec<u8>>,
        waker: &Waker,
    ) -> io::Result<bool> {
        let mut q = lock(&self.queue);
        Self::remember(&mut q, waker)?;
        q.pending.append(out);
        let keep = POOL_MAX.saturating_sub(pool.len());
        pool.extend(q.free.drain(..).take(keep));
        let room = Self::room(&mut q);
        let wake = q.idle && !q.pending.is_empty();
        drop(q);
        if wake {
            self.work.notify_one();
        }
        Ok(room)
    }

    /// The writer's error, if it had one (the driver's check when it has nothing to hand
    /// over), and whether it has room, as [`DevTx::hand_over`] says; `waker` is woken if an
    /// error comes later, or the room the driver waits for.
    pub fn check(&self, waker: &Waker) -> io::Result<bool> {
        let mut q = lock(&self.queue);
        Self::remember(&mut q, waker)?;
        Ok(Self::room(&mut q))
    }

    fn room(q: &mut Queue) -> bool {
        let room = q.pending.len() < PENDING_MAX;
        q.want_room |= !room;
        room
    }

    fn remember(q: &mut Queue, waker: &Waker) -> io::Result<()> {
        if let Some((kind, msg)) = &q.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            q.waker = Some(waker.clone());
        }
        Ok(())
    }

    fn stop(&self) {
        lock(&self.queue).stop = true;
        self.work.notify_one();
    }
}

/// A device's writer thread; dropping it stops the thread once everything handed over is
/// written, and waits for that.
pub(crate) struct Writer {
    pub tx: Arc<DevTx>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(dev: Arc<dyn PacketDevice + Send + Sync>) -> io::Result<Writer> {
        let tx = Arc::new(DevTx::new(dev));
        let t = tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("braid-tx-{}", tx.dev.name()))
            .spawn(move || write_loop(&t))?;
        Ok(Writer {
            tx,
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.stop();
        if let Some(t) = self.thread.take() {
            // The writer only makes non-blocking writes: this returns once the packets
            // already handed over are out.
            let _ = t.join();
        }
    }
}

fn write_loop(tx: &DevTx) {
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(WRITE_BATCH);
    loop {
        {
            let mut q = lock(&tx.queue);
            while q.pending.is_empty() && !q.stop {
                q.idle = true;
                q = wait(&tx.work, q);
            }
            q.idle = false;
            if q.pending.is_empty() {
                return; // stopped, and everything is written
            }
            let n = q.pending.len().min(WRITE_BATCH);
            batch.extend(q.pending.drain(..n));
            if q.want_room && q.pending.len() <= PENDING_MAX / 2 {
                q.want_room = false;
                if let Some(w) = &q.waker {
                    w.wake_by_ref();
                }
            }
        }
        let n = batch.len();
        let result = tx.dev.send_batch(&mut batch);
        let sent = match result {
            Ok(sent) => sent,
            Err(e) => {
                // The driver finds the error at its next hand-over; one waiting for room,
                // or asleep, is woken for it. The writer ends.
                let waker = {
                    let mut q = lock(&tx.queue);
                    q.error = Some((e.kind(), format!("device {}: {e}", tx.dev.name())));
                    q.pending.clear();
                    q.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
                return;
            }
        };
        tx.sent.fetch_add(sent as u64, Ordering::Relaxed);
        tx.dropped
            .fetch_add(n.saturating_sub(sent) as u64, Ordering::Relaxed);
        lock(&tx.queue).free.append(&mut batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixDatagram;
    use std::task::Wake;
    use std::time::Duration;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn packets_arrive_in_order_and_buffers_come_back() {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let w = Writer::spawn(Arc::new(a)).unwrap();
        let waker = Waker::from(Arc::new(Noop));
        let mut pool = Vec::new();
        for round in 0..20u8 {
            let mut out: Vec<Vec<u8>> = (0..10u8).map(|i| vec![round, i]).collect();
            assert!(w.tx.hand_over(&mut out, &mut pool, &waker).unwrap(), "room");
            assert!(out.is_empty());
        }
        // Written buffers come back at a later hand-over.
        for _ in 0..1000 {
            if !pool.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            w.tx.hand_over(&mut Vec::new(), &mut pool, &waker).unwrap();
        }
        assert!(!pool.is_empty(), "written buffers came back");
        let tx = w.tx.clone();
        drop(w); // waits for the writer to finish
        assert_eq!((tx.sent(), tx.dropped()), (200, 0));
        let mut buf = [0u8; 4];
        for round in 0..20u8 {
            for i in 0..10u8 {
                let n = b.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[round, i]);
            }
        }
        assert!(b.recv(&mut buf).is_err(), "nothing more");
    }

    /// A test device whose writes do what `send` says (the reads find nothing).
    struct Dev {
        sock: UnixDatagram,
        name: &'static str,
        send: fn() -> io::Result<bool>,
    }
    impl AsRawFd for Dev {
        fn as_raw_fd(&self) -> RawFd {
            self.sock.as_raw_fd()
        }
    }
    impl PacketDevice for Dev {
        fn name(&self) -> &str {
            self.name
        }
        fn recv(&self, _: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(None)
        }
        fn send(&self, _: &[u8]) -> io::Result<bool> {
            (self.send)()
        }
    }

    fn writer(name: &'static str, send: fn() -> io::Result<bool>) -> Writer {
        let (sock, _) = UnixDatagram::pair().unwrap();
        Writer::spawn(Arc::new(Dev { sock, name, send })).unwrap()
    }

    /// A waker that records that it was woken.
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    /// Waits up to `ms` milliseconds for `flag`.
    fn woken(flag: &Flag, ms: u64) -> bool {
        for _ in 0..ms {
            if flag.0.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        flag.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_full_writer_says_so_at_once_and_wakes_the_driver_when_it_has_room() {
        // A kernel taking each packet in for a while.
        let w = writer("slow", || {
            std::thread::sleep(Duration::from_micros(200));
            Ok(true)
        });
        let (flag, waker) = flag();
        let mut pool = Vec::new();
        // Far more than the writer takes in the meantime: the hand-over never waits.
        let start = std::time::Instant::now();
        let mut rooms = Vec::new();
        for _ in 0..(2 * PENDING_MAX / 64) {
            let mut out: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 4]).collect();
            rooms.push(w.tx.hand_over(&mut out, &mut pool, &waker).unwrap());
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "no hand-over waited"
        );
        assert!(rooms[0], "room at first");
        assert!(!rooms.last().copied().unwrap(), "full at the end");
        assert!(!w.tx.check(&waker).unwrap());
        assert!(!flag.0.load(Ordering::SeqCst));
        // The writer wakes the driver once it is down to half.
        assert!(woken(&flag, 5000), "woken for room");
        assert!(w.tx.check(&waker).unwrap(), "room again");
    }

    #[test]
    fn a_write_error_reaches_the_driver_and_wakes_it() {
        let w = writer("broken", || {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        });
        let (flag, waker) = flag();
        let mut pool = Vec::new();
        w.tx.hand_over(&mut vec![vec![1u8, 2, 3]], &mut pool, &waker)
            .unwrap();
        assert!(woken(&flag, 1000), "the driver is woken");
        let e = w.tx.check(&waker).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("device broken"), "{e}");
        // And every later hand-over fails the same way, without waiting.
        let e = w.tx.hand_over(&mut vec![vec![4u8]], &mut pool, &waker);
        assert!(e.is_err());
    }
}
