//! The relay: bytes both ways between two streams (a program's kernel TCP connection and a
//! braid MPTCP connection, or an MPTCP connection and an upstream TCP one) with what a user
//! of a real proxy expects of the pipe:
//!
//! - **backpressure**: each direction holds one buffer of [`RELAY_CHUNK`] bytes and reads
//!   again only once it has been written, so a slow consumer stops the producer through the
//!   streams' own windows, and a connection's memory is its streams' buffers plus two chunks;
//! - **half-close**: the end of one direction (EOF) becomes a shutdown of the other stream's
//!   writing side (a FIN, or a DATA_FIN), and the other direction goes on;
//! - **reset**: a stream that fails (reset by its peer, or any other error) makes the relay
//!   reset the other one (TCP: RST through `SO_LINGER` 0; MPTCP: MP_FASTCLOSE);
//! - **idle timeout**: nothing moved either way for that long ends both streams (reset, as a
//!   proxy's timeout does), and so does a stop request (a shutdown of the process).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The buffer of each direction.
pub const RELAY_CHUNK: usize = 64 * 1024;

/// One of the relay's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first stream given to [`relay`].
    A,
    /// The second one.
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions ended cleanly: each EOF was passed on as a shutdown.
    Closed,
    /// A stream failed (its peer reset it, or another error); the other one was reset.
    Failed(Side, io::Error),
    /// Nothing moved for the idle timeout; both were reset.
    Idle,
    /// Stopped from outside (the process shuts down); both were reset.
    Stopped,
}

impl RelayEnd {
    /// A short word for logs: `closed`, `reset`, `error`, `idle`, `stopped`.
    pub fn word(&self) -> &'static str {
        match self {
            RelayEnd::Closed => "closed",
            RelayEnd::Failed(_, e) if is_reset(e) => "reset",
            RelayEnd::Failed(..) => "error",
            RelayEnd::Idle => "idle",
            RelayEnd::Stopped => "stopped",
        }
    }
}

/// A reset by the peer (or a connection already aborted).
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// What a relay moved and how it ended.
#[derive(Debug)]
pub struct RelayOutcome {
    /// Bytes from A written to B, and from B written to A.
    pub a_to_b: u64,
    pub b_to_a: u64,
    pub end: RelayEnd,
}

/// A stream the relay can reset.
pub trait Reset {
    /// Ends the connection abortively once the stream is dropped (or at once).
    fn reset(&mut self);
}

impl Reset for tokio::net::TcpStream {
    /// `SO_LINGER` 0: the close that follows sends a RST and discards what is unsent.
    fn reset(&mut self) {
        let _ = self.set_zero_linger();
    }
}

impl Reset for crate::MptcpStream {
    /// MP_FASTCLOSE (a RST for a connection that fell back to TCP).
    fn reset(&mut self) {
        self.abort();
    }
}

/// How long a relay may sit idle, and what stops it from outside.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `None`: no idle timeout.
    pub idle: Option<Duration>,
}

/// When bytes last moved either way (microseconds since the relay began): shared by both
/// directions and the idle timer (a `Send` future, so an atomic).
struct Activity {
    start: Instant,
    last_us: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_us: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_us.store(us, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_micros(self.last_us.load(Ordering::Relaxed))
    }
}

/// A failure of one direction: which stream failed.
struct DirError(Side, io::Error);

/// One direction: from `from` to `to`, through one buffer.
struct Pump {
    from: Side,
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    eof: bool,
    done: bool,
    moved: u64,
}

impl Pump {
    fn new(from: Side) -> Pump {
        Pump {
            from,
            buf: vec![0; RELAY_CHUNK].into_boxed_slice(),
            pos: 0,
            cap: 0,
            eof: false,
            done: false,
            moved: 0,
        }
    }

    /// Moves what it can; `Ready(Ok)` once the EOF has been passed on.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        activity: &Activity,
    ) -> Poll<Result<(), DirError>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let (from, to) = (self.from, self.from.other());
        loop {
            if self.pos == self.cap && !self.eof {
                let mut rb = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError(from, e))),
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            self.eof = true;
                        } else {
                            self.pos = 0;
                            self.cap = n;
                            activity.touch();
                        }
                    }
                }
            }
            while self.pos < self.cap {
                match Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.cap]) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(DirError(to, e))),
                    Poll::Ready(Ok(0)) => {
                        let e =
                            io::Error::new(io::ErrorKind::WriteZero, "the stream took no bytes");
                        return Poll::Ready(Err(DirError(to, e)));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.pos += n;
                        self.moved += n as u64;
                        activity.touch();
                    }
                }
            }
            if self.eof {
                return match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(DirError(to, e))),
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                };
            }
        }
    }
}

/// Relays between `a` and `b` until both directions end, one stream fails, the idle timeout
/// passes, or `stop` completes; resets what must be reset (see the module docs). The
/// streams are left to the caller to drop (a clean end closes them as a drop does).
pub async fn relay<A, B>(
    a: &mut A,
    b: &mut B,
    opts: &RelayOptions,
    stop: impl std::future::Future<Output = ()>,
) -> RelayOutcome
where
    A: AsyncRead + AsyncWrite + Reset + Unpin,
    B: AsyncRead + AsyncWrite + Reset + Unpin,
{
    let activity = Activity::new();
    let mut ab = Pump::new(Side::A);
    let mut ba = Pump::new(Side::B);
    let end = {
        let pumps = poll_fn(|cx| {
            if !ab.done {
                match ab.poll(cx, a, b, &activity) {
                    Poll::Ready(Ok(())) => ab.done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !ba.done {
                match ba.poll(cx, b, a, &activity) {
                    Poll::Ready(Ok(())) => ba.done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if ab.done && ba.done {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        });
        let idle = async {
            match opts.idle {
                None => std::future::pending::<()>().await,
                Some(limit) => loop {
                    let at = activity.last() + limit;
                    if Instant::now() >= at {
                        return;
                    }
                    tokio::time::sleep_until(at).await;
                },
            }
        };
        tokio::select! {
            r = pumps => match r {
                Ok(()) => RelayEnd::Closed,
                Err(DirError(side, e)) => RelayEnd::Failed(side, e),
            },
            () = idle => RelayEnd::Idle,
            () = stop => RelayEnd::Stopped,
        }
    };
    match &end {
        RelayEnd::Closed => {}
        // The failed stream is dead already; reset it too, so that a TCP one closes with a
        // RST whatever state it was left in.
        RelayEnd::Failed(..) | RelayEnd::Idle | RelayEnd::Stopped => {
            a.reset();
            b.reset();
        }
    }
    RelayOutcome {
        a_to_b: ab.moved,
        b_to_a: ba.moved,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Two connected kernel TCP streams over loopback.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.unwrap(), s.unwrap().0)
    }

    /// `outer_a` ⇄ [`relay`] (`inner_a` ⇄ `inner_b`) ⇄ `outer_b`.
    async fn relayed(
        opts: RelayOptions,
    ) -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<RelayOutcome>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (outer_a, mut inner_a) = pair().await;
        let (mut inner_b, outer_b) = pair().await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            relay(&mut inner_a, &mut inner_b, &opts, stop).await
        });
        (outer_a, outer_b, task, tx)
    }

    const NO_IDLE: RelayOptions = RelayOptions { idle: None };

    #[tokio::test]
    async fn bytes_cross_both_ways_and_each_eof_is_passed_on_alone() {
        let (mut a, mut b, task, _stop) = relayed(NO_IDLE).await;
        let up: Vec<u8> = (0..300_001u32).map(|i| (i * 7) as u8).collect();
        a.write_all(&up).await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, up, "A's bytes and then its EOF reach B");
        // The other direction still works after the first one closed.
        b.write_all(b"still here").await.unwrap();
        b.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"still here");
        let out = task.await.unwrap();
        assert!(matches!(out.end, RelayEnd::Closed), "{:?}", out.end);
        assert_eq!((out.a_to_b, out.b_to_a), (300_001, 10));
    }

    #[tokio::test]
    async fn a_reset_on_one_side_is_a_reset_on_the_other() {
        let (a, mut b, task, _stop) = relayed(NO_IDLE).await;
        a.set_zero_linger().unwrap();
        drop(a);
        let mut buf = [0u8; 16];
        let e = b.read(&mut buf).await.expect_err("reset, not EOF");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        let out = task.await.unwrap();
        assert!(
            matches!(out.end, RelayEnd::Failed(Side::A, _)),
            "{:?}",
            out.end
        );
        assert_eq!(out.end.word(), "reset");
    }

    #[tokio::test]
    async fn a_slow_reader_holds_the_writer_back() {
        let (mut a, mut b, task, stop) = relayed(NO_IDLE).await;
        // B reads nothing: A can write only what the sockets' buffers and one chunk hold.
        let writer = tokio::spawn(async move {
            let chunk = vec![0u8; 1 << 16];
            let mut n = 0u64;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), a.write_all(&chunk)).await {
                    Ok(Ok(())) => n += chunk.len() as u64,
                    _ => return n,
                }
            }
        });
        let written = writer.await.unwrap();
        assert!(
            written < 64 << 20,
            "a reader that reads nothing let {written} bytes through"
        );
        let mut buf = vec![0u8; 1 << 16];
        assert!(b.read(&mut buf).await.unwrap() > 0);
        let _ = stop.send(());
        let out = task.await.unwrap();
        assert!(matches!(out.end, RelayEnd::Stopped), "{:?}", out.end);
    }

    #[tokio::test]
    async fn an_idle_relay_ends_with_resets() {
        let (mut a, mut b, task, _stop) = relayed(RelayOptions {
            idle: Some(Duration::from_millis(200)),
        })
        .await;
        a.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        b.read_exact(&mut one).await.unwrap();
        let out = task.await.unwrap();
        assert!(matches!(out.end, RelayEnd::Idle), "{:?}", out.end);
        let e = b.read(&mut one).await.expect_err("reset");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }
}
