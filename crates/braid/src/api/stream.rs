//! [`MptcpStream`]: one MPTCP connection (or a plain TCP one after fallback) as tokio's
//! `AsyncRead` + `AsyncWrite`, with its halves.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use braid_proto::snapshot::ConnSnapshot;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::state::{connection_error, engine_error, ConnId, Shared};

/// The connection behind a stream and its halves; the last one dropped closes it.
struct Inner {
    shared: Arc<Shared>,
    id: ConnId,
}

impl Drop for Inner {
    /// Like a TCP socket's close: a connection still open is closed gracefully (DATA_FIN
    /// after what is queued; a handshake in progress is abandoned), and the driver finishes
    /// it alone, discarding what still arrives. Received bytes left unread make it an
    /// abort (MP_FASTCLOSE, or a RST after fallback), as Linux's close does: the peer must
    /// not take a clean end for the delivery of what it sent.
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let Some(slot) = st.conns.get_mut(&self.id) else {
            return;
        };
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs > 0 {
            return;
        }
        if let Some(h) = slot.handle {
            // What is already readable goes.
            //= rfc1122#4.2.2.13
            //= A CLOSE while received data is still pending in TCP SHOULD send a RST
            //  to show that data was lost.
            let unread = st.drain_orphan(h);
            if let Some(slot) = st.conns.get_mut(&self.id) {
                // An engine that no longer knows the handle has nothing left to close.
                let _ = if !slot.established || (unread > 0 && !slot.aborted) {
                    st.ep.abort(h)
                } else if !slot.shut_down && !slot.aborted {
                    slot.shut_down = true;
                    st.ep.close(h)
                } else {
                    Ok(())
                };
            }
            st.dispatch();
            st.wake_driver();
        }
        st.release(self.id);
    }
}

/// The engine no longer knows the handle (it reported the connection closed).
fn is_unknown(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<braid_proto::Error>())
        .is_some_and(|e| *e == braid_proto::Error::UnknownConnection)
}

impl Inner {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.poll_read_once(cx, buf) {
            // The engine has ended the connection and the driver has not passed the news
            // on yet: take it now and answer from it.
            Poll::Ready(Err(e)) if is_unknown(&e) => {
                self.shared.lock().dispatch();
                self.poll_read_once(cx, buf)
            }
            r => r,
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.poll_write_once(cx, data) {
            Poll::Ready(Err(e)) if is_unknown(&e) => {
                self.shared.lock().dispatch();
                self.poll_write_once(cx, data)
            }
            r => r,
        }
    }

    fn poll_read_once(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if st.driver_done && st.driver_error.is_some() {
            return Poll::Ready(Err(st.driver_gone()));
        }
        let Some(slot) = st.conns.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        let Some(h) = slot.handle else {
            return Poll::Ready(match slot.closed {
                Some(Some(e)) if !slot.aborted => Err(connection_error(e, slot.established)),
                _ => Ok(()),
            });
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match st.ep.read(h, buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                // Reading opened the receive window: an update may be due.
                st.wake_driver();
                Poll::Ready(Ok(()))
            }
            Err(braid_proto::Error::WouldBlock) => {
                if st.driver_done {
                    return Poll::Ready(Err(st.driver_gone()));
                }
                slot.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(braid_proto::Error::Closed(e)) => {
                Poll::Ready(Err(connection_error(e, slot.established)))
            }
            Err(e) => Poll::Ready(Err(engine_error(e))),
        }
    }

    fn poll_write_once(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        if st.driver_done {
            return Poll::Ready(Err(st.driver_gone()));
        }
        let Some(slot) = st.conns.get_mut(&self.id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let Some(h) = slot.handle else {
            return Poll::Ready(Err(match slot.closed {
                Some(Some(e)) => connection_error(e, slot.established),
                _ => io::ErrorKind::BrokenPipe.into(),
            }));
        };
        if slot.shut_down {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was shut down for writing",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !slot.established {
            // Queued bytes would go with the handshake's first data; wait for it instead so
            // that an error of the connect reaches the writer.
            slot.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        match st.ep.write(h, data) {
            Ok(n) => {
                st.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(braid_proto::Error::WouldBlock) => {
                slot.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(braid_proto::Error::Closed(e)) => {
                Poll::Ready(Err(connection_error(e, slot.established)))
            }
            Err(e) => Poll::Ready(Err(engine_error(e))),
        }
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        // News of a connection the engine has just ended comes first.
        st.dispatch();
        let Some(slot) = st.conns.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if slot.shut_down {
            return Poll::Ready(Ok(()));
        }
        let Some(h) = slot.handle else {
            return Poll::Ready(match slot.closed {
                Some(Some(e)) if !slot.aborted => Err(connection_error(e, slot.established)),
                _ => Ok(()),
            });
        };
        if !slot.established {
            slot.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        slot.shut_down = true;
        //= rfc8684#3.3.3
        //= closing the sending direction queues a DATA_FIN after the data
        let r = st.ep.close(h).map_err(engine_error);
        st.wake_driver();
        Poll::Ready(r)
    }

    fn with_slot<R>(&self, f: impl FnOnce(&super::state::ConnSlot) -> R) -> Option<R> {
        let st = self.shared.lock();
        st.conns.get(&self.id).map(f)
    }
}

/// An MPTCP connection: `AsyncRead` + `AsyncWrite` like tokio's `TcpStream`.
///
/// `poll_shutdown` sends the DATA_FIN (a FIN after fallback); dropping the stream closes it
/// gracefully as a TCP socket's close does. Errors are those of a TCP stream: a reset is
/// `ConnectionReset` (also for the peer's MP_FASTCLOSE), a refused connect
/// `ConnectionRefused`, a connection that stopped answering `TimedOut`.
pub struct MptcpStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MptcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MptcpStream")
            .field("local", &self.local_addr())
            .field("remote", &self.peer_addr())
            .finish()
    }
}

impl MptcpStream {
    pub(crate) fn new(shared: Arc<Shared>, id: ConnId) -> MptcpStream {
        MptcpStream {
            inner: Arc::new(Inner { shared, id }),
        }
    }

    /// Waits for the handshake (for a stream from [`super::Endpoint::start_connect`]).
    pub async fn established(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            let st = &mut *st;
            if st.driver_done {
                return Poll::Ready(Err(st.driver_gone()));
            }
            let Some(slot) = st.conns.get_mut(&self.inner.id) else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if slot.established {
                return Poll::Ready(Ok(()));
            }
            if let Some(closed) = slot.closed {
                let e = closed.unwrap_or(braid_proto::ConnectionError::Reset);
                return Poll::Ready(Err(connection_error(e, false)));
            }
            slot.connect_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The handshake has completed.
    pub fn is_established(&self) -> bool {
        self.inner.with_slot(|s| s.established).unwrap_or(false)
    }

    /// The local address (the port is known once the connection is open).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .with_slot(|s| s.local)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The peer's address (the initial subflow's).
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner
            .with_slot(|s| s.remote)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// True while the connection runs MPTCP; false for plain TCP, during the handshake,
    /// and after a fallback.
    pub fn is_mptcp(&self) -> bool {
        let st = self.inner.shared.lock();
        let Some(slot) = st.conns.get(&self.inner.id) else {
            return false;
        };
        match slot.handle {
            Some(h) => st.ep.is_mptcp(h),
            None => slot.was_mptcp,
        }
    }

    /// One snapshot of the connection: its subflows (addresses, backup, RTT, cwnd, bytes,
    /// loss recovery) and its MIB counters. After the connection closed, the last one.
    pub fn info(&self) -> Option<ConnSnapshot> {
        let st = self.inner.shared.lock();
        let slot = st.conns.get(&self.inner.id)?;
        match slot.handle {
            Some(h) => st.ep.snapshot(h),
            None => slot.last_info.as_deref().cloned(),
        }
    }

    /// Notes about the connection since the last call (a subflow that could not be opened).
    pub fn take_notes(&self) -> Vec<String> {
        let mut st = self.inner.shared.lock();
        st.conns
            .get_mut(&self.inner.id)
            .map(|s| std::mem::take(&mut s.notes))
            .unwrap_or_default()
    }

    /// Resets the connection now: MP_FASTCLOSE under MPTCP (RFC 8684 §3.5), RST otherwise.
    /// Reads and writes then fail or end.
    pub fn abort(&self) {
        let mut st = self.inner.shared.lock();
        let st = &mut *st;
        let Some(slot) = st.conns.get_mut(&self.inner.id) else {
            return;
        };
        slot.aborted = true;
        if let Some(h) = slot.handle {
            //= rfc8684#3.5
            //= MP_FASTCLOSE: the connection is abruptly closed, all subflows reset
            let _ = st.ep.abort(h);
            st.dispatch();
            st.wake_driver();
        }
    }

    /// Opens one more subflow (MP_JOIN) from braid's address `local` to `remote`, with
    /// the backup bit if asked, once the connection is fully established (at once if it
    /// already is). A failure is reported in [`MptcpStream::take_notes`].
    pub fn open_subflow(&self, local: IpAddr, remote: SocketAddr, backup: bool) -> io::Result<()> {
        self.with_handle(|st, h| {
            let now = st.now();
            st.ep
                .request_subflow(now, h, SocketAddr::new(local, 0), remote, backup)
        })
    }

    /// Replaces the connection's packet scheduler from now on (a built-in by kind, or any
    /// [`braid_proto::sched::Scheduler`]); `Unsupported` for plain TCP and after a fallback.
    pub fn set_scheduler(&self, sched: Box<dyn braid_proto::sched::Scheduler>) -> io::Result<()> {
        self.with_handle(|st, h| st.ep.set_scheduler(h, sched))
    }

    /// Replaces the connection's path manager: the new one learns the connection as it is
    /// and acts on it at once (see [`braid_proto::Endpoint::set_path_manager`]).
    pub fn set_path_manager(&self, pm: &braid_proto::pm::PmFactory) -> io::Result<()> {
        self.with_handle(|st, h| {
            let now = st.now();
            st.ep.set_path_manager(now, h, pm)
        })
    }

    fn with_handle(
        &self,
        f: impl FnOnce(
            &mut super::state::State,
            braid_proto::ConnectionHandle,
        ) -> Result<(), braid_proto::Error>,
    ) -> io::Result<()> {
        let mut st = self.inner.shared.lock();
        let h = st
            .conns
            .get(&self.inner.id)
            .and_then(|s| s.handle)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        let r = f(&mut st, h).map_err(engine_error);
        st.dispatch();
        st.wake_driver();
        r
    }

    /// Waits until the connection has fully closed; `Some` names why it ended abnormally.
    pub async fn closed(&self) -> Option<braid_proto::ConnectionError> {
        self.control().closed().await
    }

    /// A handle that can abort, shut down or inspect the connection from elsewhere while the
    /// stream is split or moved; it does not keep the connection open.
    pub fn control(&self) -> StreamControl {
        StreamControl {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Bytes the application wrote that the peer has not acknowledged yet (DATA_ACK).
    pub fn unacked(&self) -> u64 {
        self.info()
            .map_or(0, |i| i.bytes_sent.saturating_sub(i.bytes_acked))
    }

    /// Borrowed halves, for reading and writing from one task at once.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf { inner: &self.inner },
            WriteHalf { inner: &self.inner },
        )
    }

    /// Owned halves, for reading and writing from different tasks. The connection closes
    /// when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let inner = self.inner;
        (
            OwnedReadHalf {
                inner: inner.clone(),
            },
            OwnedWriteHalf { inner },
        )
    }
}

/// Controls a stream from elsewhere (see [`MptcpStream::control`]): every call does nothing
/// once the stream and its halves are gone.
#[derive(Clone)]
pub struct StreamControl {
    inner: std::sync::Weak<Inner>,
}

impl StreamControl {
    fn stream(&self) -> Option<MptcpStream> {
        self.inner.upgrade().map(|inner| MptcpStream { inner })
    }

    /// The stream (or one of its halves) still exists.
    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }

    /// See [`MptcpStream::abort`].
    pub fn abort(&self) {
        if let Some(s) = self.stream() {
            s.abort();
        }
    }

    /// Closes the sending direction now (DATA_FIN after what is queued), like
    /// `poll_shutdown`; a connection still in its handshake is left to finish it.
    pub fn shutdown(&self) {
        let Some(s) = self.stream() else { return };
        let mut st = s.inner.shared.lock();
        let st = &mut *st;
        let Some(slot) = st.conns.get_mut(&s.inner.id) else {
            return;
        };
        if let (Some(h), false, true) = (slot.handle, slot.shut_down, slot.established) {
            slot.shut_down = true;
            let _ = st.ep.close(h);
            st.dispatch();
            st.wake_driver();
        }
    }

    /// See [`MptcpStream::info`].
    pub fn info(&self) -> Option<ConnSnapshot> {
        self.stream().and_then(|s| s.info())
    }

    /// See [`MptcpStream::take_notes`].
    pub fn take_notes(&self) -> Vec<String> {
        self.stream().map(|s| s.take_notes()).unwrap_or_default()
    }

    /// See [`MptcpStream::unacked`].
    pub fn unacked(&self) -> u64 {
        self.stream().map_or(0, |s| s.unacked())
    }

    /// See [`MptcpStream::closed`]; `None` at once if the stream is gone.
    pub async fn closed(&self) -> Option<braid_proto::ConnectionError> {
        let s = self.stream()?;
        std::future::poll_fn(|cx| {
            let mut st = s.inner.shared.lock();
            let done = st.driver_done;
            let Some(slot) = st.conns.get_mut(&s.inner.id) else {
                return Poll::Ready(None);
            };
            if let Some(c) = slot.closed {
                return Poll::Ready(c);
            }
            if done {
                return Poll::Ready(Some(braid_proto::ConnectionError::Aborted));
            }
            slot.close_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl AsyncRead for MptcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for MptcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_shutdown(cx)
    }
}

/// The reading half of a borrowed [`MptcpStream::split`].
pub struct ReadHalf<'a> {
    inner: &'a Arc<Inner>,
}

/// The writing half of a borrowed [`MptcpStream::split`].
pub struct WriteHalf<'a> {
    inner: &'a Arc<Inner>,
}

/// The reading half of [`MptcpStream::into_split`].
pub struct OwnedReadHalf {
    inner: Arc<Inner>,
}

/// The writing half of [`MptcpStream::into_split`]; `poll_shutdown` sends the DATA_FIN.
pub struct OwnedWriteHalf {
    inner: Arc<Inner>,
}

impl OwnedReadHalf {
    /// Puts the halves back together (`Err` gives them back if they are not of one stream).
    pub fn reunite(
        self,
        w: OwnedWriteHalf,
    ) -> Result<MptcpStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if Arc::ptr_eq(&self.inner, &w.inner) {
            drop(w);
            Ok(MptcpStream { inner: self.inner })
        } else {
            Err((self, w))
        }
    }
}

macro_rules! read_half {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.inner.poll_read(cx, buf)
            }
        }
    };
}

macro_rules! write_half {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.poll_shutdown(cx)
            }
        }
    };
}

read_half!(ReadHalf<'_>);
read_half!(OwnedReadHalf);
write_half!(WriteHalf<'_>);
write_half!(OwnedWriteHalf);
