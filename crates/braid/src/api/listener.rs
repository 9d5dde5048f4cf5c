//! [`MptcpListener`]: accepts connections on one port of every path's address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use super::state::{ConnId, Shared};
use super::MptcpStream;

/// A listening port, like tokio's `TcpListener`. MPTCP connections and plain TCP ones (from
/// peers that do not offer MPTCP) are both accepted; joins (MP_JOIN) of accepted connections
/// are taken by the engine and never show here. Dropping the listener resets the
/// connections still waiting in its backlog and refuses new ones (clones share one
/// listener: the last one dropped closes it).
#[derive(Clone)]
pub struct MptcpListener {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    port: u16,
}

impl std::fmt::Debug for MptcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MptcpListener")
            .field("port", &self.inner.port)
            .finish()
    }
}

impl MptcpListener {
    pub(crate) fn new(shared: Arc<Shared>, port: u16) -> MptcpListener {
        MptcpListener {
            inner: Arc::new(Inner { shared, port }),
        }
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The next established connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let this = &self.inner;
        let id: ConnId = std::future::poll_fn(|cx| {
            let mut st = this.shared.lock();
            let st = &mut *st;
            if st.driver_done {
                return Poll::Ready(Err(st.driver_gone()));
            }
            let Some(l) = st.listeners.get_mut(&this.port) else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            match l.backlog.pop_front() {
                Some(id) => Poll::Ready(Ok(id)),
                None => {
                    if !l.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        l.wakers.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await?;
        let remote = {
            let mut st = this.shared.lock();
            let slot = st.conns.get_mut(&id);
            match slot {
                Some(s) => {
                    s.in_backlog = false;
                    s.refs = 1;
                    s.remote
                }
                None => SocketAddr::from(([0, 0, 0, 0], 0)),
            }
        };
        Ok((MptcpStream::new(this.shared.clone(), id), remote))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let Some(l) = st.listeners.remove(&self.port) else {
            return;
        };
        for id in l.backlog {
            let handle = st.conns.get_mut(&id).and_then(|s| {
                s.in_backlog = false;
                s.handle
            });
            if let Some(h) = handle {
                let _ = st.ep.abort(h);
            }
            st.release(id);
        }
        st.dispatch();
        st.wake_driver();
    }
}
