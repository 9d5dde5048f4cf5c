//! The harness of the application tests (`app_pair.rs`, `app_connect.rs`): endpoint pairs,
//! a peer written on the library, options whose interrupts the test sends, and outputs and
//! notices the test reads. Include it after `common` with
//! `#[path = "common/app_harness.rs"] mod app_harness;`.
#![allow(dead_code, unused_imports)]

pub use std::io::{self, Write};
pub use std::os::fd::{AsRawFd, RawFd};
pub use std::os::unix::net::UnixDatagram;
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

pub use crate::common::{dgram_pair, ip, pair_with, sa};
pub use braid::app::{
    run_client, run_server, AppError, JoinSpec, Options, Output, Progress, ServerMode, Source,
    Status,
};
pub use braid::report::Report;
pub use braid::stream::{PatternStream, Tally};
pub use braid::{Endpoint, MptcpStream};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::sync::mpsc;

pub const SERVER: &str = "10.0.0.1:5000";

pub type Run = (Result<Status, AppError>, Report);

/// Plain TCP at both ends, one path.
pub fn plain_pair() -> (Endpoint, Endpoint) {
    pair_with(1, |b| b.mptcp(false), |b| b.mptcp(false))
}

/// MPTCP at both ends, one path.
pub fn mptcp_pair() -> (Endpoint, Endpoint) {
    pair_with(1, |b| b, |b| b)
}

/// A client endpoint whose only path leads nowhere: the peer end is kept, never read, and
/// returned (nothing ever answers).
pub fn unanswered() -> (Endpoint, UnixDatagram) {
    let (a, b) = dgram_pair();
    let c = Endpoint::builder()
        .seed([5; 32])
        .device(a, ip("10.0.0.2"))
        .build()
        .expect("client endpoint");
    (c, b)
}

/// Packets waiting at a datagram end nobody reads.
pub fn count_packets(s: &UnixDatagram) -> usize {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while s.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Bytes written by a run (an output, the notices, the progress line), shared with the test.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("lock").clone()
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).expect("utf-8")
    }
}

/// Notices that call `on_line` on each line written (a test's way to answer a notice).
pub struct Notices {
    pub text: Shared,
    pub on_line: Box<dyn FnMut(&str) + Send>,
}

impl Write for Notices {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.text.write_all(b)?;
        for line in String::from_utf8_lossy(b).lines() {
            (self.on_line)(line);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Options whose notices the test reads and whose interrupts (SIGINT/SIGTERM) it sends.
pub fn options() -> (Options, mpsc::UnboundedSender<()>, Shared) {
    let (tx, rx) = mpsc::unbounded_channel();
    let notices = Shared::default();
    let mut o = Options::new(rx);
    o.notices = Box::new(notices.clone());
    (o, tx, notices)
}

pub fn pattern(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    PatternStream::new().fill(&mut v);
    v
}

pub fn hex(b: &[u8]) -> String {
    let mut t = Tally::new();
    t.update(b);
    t.hex()
}

/// `f`, or a panic after `secs`: a run that never ends is a failure, not a hung test.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("not done within {secs} s"))
}

/// `run_server` (`once`, port 5000, no signals) and `run_client` to it, side by side.
pub async fn client_and_server(
    c: &Endpoint,
    s: &Endpoint,
    mode: ServerMode,
    source: Source,
    output: Output,
    joins: Vec<JoinSpec>,
    copts: Options,
) -> (Run, Run) {
    let (sopts, _no_signal, _) = options();
    let server = run_server(s, 5000, mode, true, None, sopts);
    let client = async {
        // The server listens on its first poll, before the client's first SYN.
        tokio::task::yield_now().await;
        run_client(c, sa(SERVER), source, output, joins, copts).await
    };
    within(120, async { tokio::join!(client, server) }).await
}

/// A peer written on the library: accepts one connection on `port` and runs `f` on it.
pub fn peer<T: Send + 'static, F>(
    s: &Endpoint,
    port: u16,
    f: impl FnOnce(MptcpStream) -> F + Send + 'static,
) -> tokio::task::JoinHandle<T>
where
    F: std::future::Future<Output = T> + Send,
{
    let listener = s.listen(port).expect("listen");
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        f(stream).await
    })
}

/// Reads everything until the peer's FIN, closes our side, and waits for the end.
pub async fn read_all_then_close(
    mut st: MptcpStream,
) -> (Vec<u8>, Option<braid_proto::ConnectionError>) {
    let mut got = Vec::new();
    st.read_to_end(&mut got).await.expect("read");
    st.shutdown().await.expect("shutdown");
    (got, st.closed().await)
}

pub fn error_of(report: &Report) -> Option<&str> {
    report.extra.get("error").and_then(|v| v.as_str())
}
