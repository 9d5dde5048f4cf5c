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

use tokio::time::Sleep;

use super::device::{pick, PacketDevice};
use super::reader::{self, Packet, RxQueue};
use super::state::{Shared, State};
use crate::ctl::{monitor_events, CtlServer, EndpointCtl};

/// Largest IP packet (or GSO batch) moved at once.
const PACKET_BUF: usize = 65536;
/// Packets handed to the engine per round before it gets to send: keeps ACKs flowing.
const RX_BATCH: usize = 128;
/// Packets sent per round before the devices are read again.
const TX_BATCH: usize = 128;
/// Rounds per run before the driver yields to other tasks.
const ROUNDS: usize = 8;

/// A device and braid's address behind it.
struct Device {
    dev: Arc<dyn PacketDevice + Send + Sync>,
    addr: IpAddr,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    devices: Vec<Device>,
    /// Packets the readers took from the devices.
    rx: Arc<RxQueue>,
    batch: Vec<Packet>,
    tx_buf: Vec<u8>,
    sleep: Pin<Box<Sleep>>,
    armed: Option<braid_proto::Instant>,
    ctl: Option<CtlServer>,
}

impl Driver {
    /// Starts a reader thread per device.
    pub fn new(
        shared: Arc<Shared>,
        devices: Vec<(Arc<dyn PacketDevice + Send + Sync>, IpAddr)>,
        ctl: Option<CtlServer>,
    ) -> io::Result<Driver> {
        let rx = Arc::new(RxQueue::default());
        for (index, (dev, _)) in devices.iter().enumerate() {
            if let Err(e) = reader::spawn(index, dev.clone(), rx.clone()) {
                rx.stop();
                return Err(io::Error::new(
                    e.kind(),
                    format!("device {}: cannot start its reader: {e}", dev.name()),
                ));
            }
        }
        Ok(Driver {
            shared,
            devices: devices
                .into_iter()
                .map(|(dev, addr)| Device { dev, addr })
                .collect(),
            rx,
            batch: Vec::with_capacity(RX_BATCH),
            tx_buf: vec![0; PACKET_BUF],
            sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            armed: None,
            ctl,
        })
    }

    /// Hands up to a batch of received packets to the engine. True when more are waiting.
    fn receive(&mut self, cx: &mut Context<'_>, st: &mut State) -> io::Result<bool> {
        let now = st.now();
        self.rx.take(RX_BATCH, cx.waker(), &mut self.batch)?;
        for (index, packet) in &self.batch {
            st.io.packets_in += 1;
            st.ep.handle_packet_on(now, *index, packet);
        }
        let more = self.batch.len() == RX_BATCH;
        self.rx.recycle(&mut self.batch);
        st.io.rx_dropped = self.rx.dropped();
        Ok(more)
    }

    /// Drains up to `limit` packets into the devices. True when it stopped at the limit.
    fn flush(&mut self, st: &mut State, limit: usize) -> io::Result<bool> {
        let now = st.now();
        let mut sent = 0usize;
        while sent < limit {
            let Some(t) = st.ep.poll_transmit(now, &mut self.tx_buf) else {
                return Ok(false);
            };
            let Some(data) = self.tx_buf.get(..t.len) else {
                continue;
            };
            let Some(dev) = pick(t.iface, self.devices.iter().map(|d| d.addr), t.src)
                .and_then(|i| self.devices.get(i))
            else {
                continue;
            };
            let seg = match t.segment_size {
                Some(s) if s > 0 => s,
                _ => data.len().max(1),
            };
            for packet in data.chunks(seg) {
                sent += 1;
                match dev.dev.send(packet) {
                    Ok(true) => st.io.packets_out += 1,
                    Ok(false) => st.io.packets_dropped += 1,
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("device {}: {e}", dev.dev.name()),
                        ))
                    }
                }
            }
        }
        Ok(true)
    }

    /// Answers the control socket when it is ready and publishes path-management events to
    /// monitors (drained even without a control socket: the engine's queue is bounded).
    fn control(&mut self, cx: &mut Context<'_>, st: &mut State) {
        let now = st.now();
        let Some(ctl) = self.ctl.as_mut() else {
            while st.ep.poll_pm_event().is_some() {}
            st.monitor_queue.clear();
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
        ctl.poll(
            cx,
            &mut EndpointCtl {
                endpoint: &mut st.ep,
                now,
            },
        );
    }

    /// Arms the timer for the engine's next deadline. True when it is due now.
    ///
    /// The deadline moves later with nearly every packet (a retransmission timer re-armed by
    /// an ACK): the timer is only moved earlier, never later, so it is not reset per packet;
    /// firing early costs one pass that arms it again for the deadline of then.
    fn arm_timer(&mut self, cx: &mut Context<'_>, st: &State) -> bool {
        let Some(t) = st.ep.poll_timeout() else {
            return false;
        };
        if t <= st.now() {
            return true;
        }
        let at = |t| tokio::time::Instant::from_std(st.deadline(t));
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

    fn round(&mut self, cx: &mut Context<'_>, st: &mut State) -> io::Result<bool> {
        let more_rx = self.receive(cx, st)?;
        let now = st.now();
        if st.ep.poll_timeout().is_some_and(|t| t <= now) {
            st.ep.handle_timeout(now);
        }
        st.dispatch();
        self.control(cx, st);
        let more_tx = self.flush(st, TX_BATCH)?;
        // Application calls and the flush can end a connection at once.
        st.dispatch();
        Ok(more_rx || more_tx)
    }
}

impl Drop for Driver {
    /// The readers end with the driver.
    fn drop(&mut self) {
        self.rx.stop();
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        st.set_driver_waker(cx.waker());
        for _ in 0..ROUNDS {
            match this.round(cx, &mut st) {
                Ok(true) => continue,
                Ok(false) => {
                    if this.arm_timer(cx, &st) {
                        continue;
                    }
                    // Idle: the endpoint ends when no handle to it remains and every
                    // connection is gone.
                    if Arc::strong_count(&this.shared) == 1 && st.conns.is_empty() {
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
