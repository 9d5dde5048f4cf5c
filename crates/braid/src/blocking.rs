//! braid for programs without an async runtime: the same endpoint, streams and listeners
//! with blocking calls and `std::io::Read` / `Write`, like `std::net::TcpStream`.
//!
//! A blocking [`Endpoint`] starts a small tokio runtime of its own (one worker thread) that
//! drives the engine; every call blocks the calling thread until it completes.
//!
//! ```no_run
//! use std::io::{Read, Write};
//!
//! # fn demo() -> std::io::Result<()> {
//! let endpoint = braid::blocking::Endpoint::builder()
//!     .path("bt0", "10.1.0.2".parse().unwrap())
//!     .build()?;
//! let mut stream = endpoint.connect("10.1.0.1:8080".parse().unwrap())?;
//! stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
//! let mut page = Vec::new();
//! stream.read_to_end(&mut page)?;
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Builds a blocking [`Endpoint`]: every setting of the async [`crate::Builder`].
pub struct Builder {
    inner: crate::Builder,
}

impl Builder {
    /// Changes the async builder's settings (`|b| b.path(...).limits(...)`).
    pub fn with(mut self, f: impl FnOnce(crate::Builder) -> crate::Builder) -> Self {
        self.inner = f(self.inner);
        self
    }

    /// See [`crate::Builder::path`].
    pub fn path(self, dev: &str, addr: std::net::IpAddr) -> Self {
        self.with(|b| b.path(dev, addr))
    }

    /// Starts the runtime and the endpoint's driver.
    pub fn build(self) -> io::Result<Endpoint> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("braid-driver")
            .enable_all()
            .build()?;
        let ep = {
            let _guard = rt.enter();
            self.inner.build()?
        };
        Ok(Endpoint {
            rt: Arc::new(rt),
            ep,
        })
    }
}

/// A blocking MPTCP endpoint (see the [module docs](self)).
#[derive(Clone)]
pub struct Endpoint {
    rt: Arc<Runtime>,
    ep: crate::Endpoint,
}

impl Endpoint {
    pub fn builder() -> Builder {
        Builder {
            inner: crate::Endpoint::builder(),
        }
    }

    /// Connects to `remote` (see [`crate::Endpoint::connect`]), blocking until the
    /// handshake completes.
    pub fn connect(&self, remote: SocketAddr) -> io::Result<MptcpStream> {
        let s = self.rt.block_on(self.ep.connect(remote))?;
        Ok(self.wrap(s))
    }

    /// [`Endpoint::connect`], giving up after `timeout` (`TimedOut`).
    pub fn connect_timeout(
        &self,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<MptcpStream> {
        let s = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, self.ep.connect(remote)).await })
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Ok(self.wrap(s))
    }

    /// Listens on `port` (see [`crate::Endpoint::listen`]).
    pub fn listen(&self, port: u16) -> io::Result<MptcpListener> {
        let l = {
            let _guard = self.rt.enter();
            self.ep.listen(port)?
        };
        Ok(MptcpListener {
            rt: self.rt.clone(),
            inner: l,
        })
    }

    /// The async endpoint behind this one.
    pub fn as_async(&self) -> &crate::Endpoint {
        &self.ep
    }

    fn wrap(&self, s: crate::MptcpStream) -> MptcpStream {
        MptcpStream {
            rt: self.rt.clone(),
            inner: s,
        }
    }
}

/// A blocking listener.
pub struct MptcpListener {
    rt: Arc<Runtime>,
    inner: crate::MptcpListener,
}

impl MptcpListener {
    /// Blocks until the next connection.
    pub fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let (s, a) = self.rt.block_on(self.inner.accept())?;
        Ok((
            MptcpStream {
                rt: self.rt.clone(),
                inner: s,
            },
            a,
        ))
    }
}

/// A blocking stream: `Read` + `Write`; [`MptcpStream::shutdown`] sends the DATA_FIN.
pub struct MptcpStream {
    rt: Arc<Runtime>,
    inner: crate::MptcpStream,
}

impl MptcpStream {
    /// Closes the sending direction (DATA_FIN).
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.rt.block_on(self.inner.shutdown())
    }

    /// See [`crate::MptcpStream::is_mptcp`].
    pub fn is_mptcp(&self) -> bool {
        self.inner.is_mptcp()
    }

    /// See [`crate::MptcpStream::info`].
    pub fn info(&self) -> Option<braid_proto::snapshot::ConnSnapshot> {
        self.inner.info()
    }

    /// See [`crate::MptcpStream::abort`].
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// The async stream behind this one.
    pub fn as_async(&mut self) -> &mut crate::MptcpStream {
        &mut self.inner
    }
}

impl io::Read for MptcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rt.block_on(self.inner.read(buf))
    }
}

impl io::Write for MptcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.rt.block_on(self.inner.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
