//! [`MptcpListener`]: accepts connections on one port of every path's address.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Every worker's state: each takes the SYNs that reach its queue.
    shards: Arc<[Arc<Shared>]>,
    port: u16,
    /// The worker whose backlog is looked at first next time (in turn, so that no
    /// worker's connections wait behind another's).
    next: AtomicUsize,
}

impl std::fmt::Debug for MptcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MptcpListener")
            .field("port", &self.inner.port)
            .finish()
    }
}

impl MptcpListener {
    pub(crate) fn new(shards: Arc<[Arc<Shared>]>, port: u16) -> MptcpListener {
        MptcpListener {
            inner: Arc::new(Inner {
                shards,
                port,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The next established connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let this = &self.inner;
        let n = this.shards.len();
        let (k, id): (usize, ConnId) = std::future::poll_fn(|cx| {
            let first = this.next.fetch_add(1, Ordering::Relaxed);
            for j in 0..n {
                let k = (first + j) % n;
                let mut st = this.shards[k].lock();
                let st = &mut *st;
                if st.driver_done {
                    return Poll::Ready(Err(st.driver_gone()));
                }
                let Some(l) = st.listeners.get_mut(&this.port) else {
                    return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
                };
                match l.backlog.pop_front() {
                    Some(id) => return Poll::Ready(Ok((k, id))),
                    None => {
                        if !l.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                            l.wakers.push(cx.waker().clone());
                        }
                    }
                }
            }
            Poll::Pending
        })
        .await?;
        let shared = &this.shards[k];
        let remote = {
            let mut st = shared.lock();
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
        Ok((MptcpStream::new(shared.clone(), id), remote))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for shared in self.shards.iter() {
            let mut st = shared.lock();
            let st = &mut *st;
            let Some(l) = st.listeners.remove(&self.port) else {
                continue;
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
}
