//! The applications of `braid connect` and `braid listen` (`braid::app::run_client`,
//! `run_server`) end to end, in one process and without privileges: endpoints joined by
//! datagram socket pairs (one per path), signals stood for by the `interrupts` channel,
//! notices taken by the test. Ported from the old runtime's `app_tests`, `pair_tests` and
//! `connecting` tests: the results, reports and notices are those users rely on.

mod common;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use braid::app::{
    run_client, run_server, AppError, JoinSpec, Options, Output, Progress, ServerMode, Source,
    Status,
};
use braid::report::Report;
use braid::stream::{PatternStream, Tally};
use braid::{Endpoint, MptcpStream};
use common::{dgram_pair, ip, pair_with, sa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const SERVER: &str = "10.0.0.1:5000";

type Run = (Result<Status, AppError>, Report);

/// Plain TCP at both ends, one path.
fn plain_pair() -> (Endpoint, Endpoint) {
    pair_with(1, |b| b.mptcp(false), |b| b.mptcp(false))
}

/// MPTCP at both ends, one path.
fn mptcp_pair() -> (Endpoint, Endpoint) {
    pair_with(1, |b| b, |b| b)
}

/// A client endpoint whose only path leads nowhere: the peer end is kept, never read, and
/// returned (nothing ever answers).
fn unanswered() -> (Endpoint, UnixDatagram) {
    let (a, b) = dgram_pair();
    let c = Endpoint::builder()
        .seed([5; 32])
        .device(a, ip("10.0.0.2"))
        .build()
        .expect("client endpoint");
    (c, b)
}

/// Packets waiting at a datagram end nobody reads.
fn count_packets(s: &UnixDatagram) -> usize {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while s.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Bytes written by a run (an output, the notices, the progress line), shared with the test.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

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
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("lock").clone()
    }
    fn text(&self) -> String {
        String::from_utf8(self.bytes()).expect("utf-8")
    }
}

/// Notices that call `on_line` on each line written (a test's way to answer a notice).
struct Notices {
    text: Shared,
    on_line: Box<dyn FnMut(&str) + Send>,
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
fn options() -> (Options, mpsc::UnboundedSender<()>, Shared) {
    let (tx, rx) = mpsc::unbounded_channel();
    let notices = Shared::default();
    let mut o = Options::new(rx);
    o.notices = Box::new(notices.clone());
    (o, tx, notices)
}

fn pattern(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    PatternStream::new().fill(&mut v);
    v
}

fn hex(b: &[u8]) -> String {
    let mut t = Tally::new();
    t.update(b);
    t.hex()
}

/// `f`, or a panic after `secs`: a run that never ends is a failure, not a hung test.
async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("not done within {secs} s"))
}

/// `run_server` (`once`, port 5000, no signals) and `run_client` to it, side by side.
async fn client_and_server(
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
fn peer<T: Send + 'static, F>(
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
async fn read_all_then_close(
    mut st: MptcpStream,
) -> (Vec<u8>, Option<braid_proto::ConnectionError>) {
    let mut got = Vec::new();
    st.read_to_end(&mut got).await.expect("read");
    st.shutdown().await.expect("shutdown");
    (got, st.closed().await)
}

fn error_of(report: &Report) -> Option<&str> {
    report.extra.get("error").and_then(|v| v.as_str())
}

// ---- The client against a peer written on the library ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sends_the_pattern_then_closes_and_reports() {
    let (c, s) = plain_pair();
    let server = peer(&s, 5000, |mut st| async move {
        st.write_all(b"hello").await.expect("write");
        read_all_then_close(st).await
    });
    let (o, _tx, notices) = options();
    let (result, report) = within(
        60,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(200_000),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert_eq!(result.expect("run"), Status::Clean);
    let (got, end) = server.await.expect("peer");
    assert_eq!(got.len(), 200_000);
    assert!(got == pattern(200_000), "the pattern, byte for byte");
    assert_eq!(end, None, "closed cleanly, not aborted");
    assert_eq!(report.sha256_sent, hex(&pattern(200_000)));
    assert_eq!(report.bytes_sent, 200_000);
    assert_eq!(report.bytes_received, 5);
    assert_eq!(report.sha256_received, hex(b"hello"));
    assert_eq!(report.role, "client");
    assert!(!report.mptcp);
    assert_eq!(report.subflows.len(), 1, "{report:?}");
    let sub = &report.subflows[0];
    // (Its RTT is not compared: the engine measures it with millisecond timestamps, and
    // 200 kB in one process may well take under a millisecond each way.)
    assert!(sub.local.starts_with("10.0.0.2:"), "{sub:?}");
    assert_eq!(sub.remote, SERVER);
    assert_eq!((sub.bytes_sent, sub.bytes_received), (200_000, 5));
    assert_eq!(error_of(&report), None);
    assert_eq!(notices.text(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_input_closes_at_once() {
    let (c, s) = plain_pair();
    let server = peer(&s, 5000, read_all_then_close);
    let (o, _tx, _) = options();
    let (result, report) = within(
        10,
        run_client(&c, sa(SERVER), Source::Nothing, Output::Discard, vec![], o),
    )
    .await;
    assert_eq!(result.expect("run"), Status::Clean);
    let (got, end) = server.await.expect("peer");
    assert!(got.is_empty(), "{} bytes", got.len());
    assert_eq!(end, None);
    assert_eq!((report.bytes_sent, report.bytes_received), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sends_a_file() {
    let dir = std::env::temp_dir().join(format!("braid-app-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("in.bin");
    let data = pattern(150_001);
    std::fs::write(&path, &data).expect("write the file");
    let file = std::fs::File::open(&path).expect("open");
    std::fs::remove_dir_all(&dir).expect("clean up");
    let (c, s) = plain_pair();
    let server = peer(&s, 5000, read_all_then_close);
    let (o, _tx, _) = options();
    let (result, report) = within(
        60,
        run_client(
            &c,
            sa(SERVER),
            Source::Reader(file),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert_eq!(result.expect("run"), Status::Clean);
    let (got, _) = server.await.expect("peer");
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
    assert_eq!(report.bytes_sent, 150_001);
    assert_eq!(report.sha256_sent, hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_is_an_error() {
    let (c, _s) = plain_pair();
    let (o, _tx, _) = options();
    let (result, _) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(10),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    let e = result.expect_err("nobody listens");
    assert!(matches!(e, AppError::Refused(_)), "{e}");
    assert_eq!(e.to_string(), "connection refused by 10.0.0.1:5000 (RST)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_failed_run_names_the_error() {
    let (c, s) = plain_pair();
    let (o, _tx, _) = options();
    let (result, report) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(10),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert!(matches!(result, Err(AppError::Refused(_))), "{result:?}");
    assert_eq!(
        error_of(&report),
        Some("connection refused by 10.0.0.1:5000 (RST)")
    );
    assert_eq!(report.role, "client");
    assert_eq!(report.subflows.len(), 1, "{report:?}");
    assert_eq!(report.subflows[0].remote, SERVER);
    // A clean run has no error field.
    let server = peer(&s, 5000, read_all_then_close);
    let (o, _tx, _) = options();
    let (result, report) = within(
        10,
        run_client(&c, sa(SERVER), Source::Nothing, Output::Discard, vec![], o),
    )
    .await;
    assert_eq!(result.expect("run"), Status::Clean);
    assert!(
        !report.to_json().contains("\"error\""),
        "{}",
        report.to_json()
    );
    server.await.expect("peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_close_by_the_peer_is_named_in_the_error() {
    let (c, s) = mptcp_pair();
    // The peer resets the connection as soon as it has it (MP_FASTCLOSE).
    let server = peer(&s, 5000, |st| async move {
        st.abort();
        st.closed().await
    });
    let (o, _tx, _) = options();
    let (result, report) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(10),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    let e = result.expect_err("reset");
    assert!(matches!(e, AppError::FastClosed(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "connection to 10.0.0.1:5000 reset by peer (MP_FASTCLOSE)"
    );
    assert_eq!(error_of(&report), Some(e.to_string().as_str()));
    assert_eq!(report.counters.get("MPFastcloseRx"), Some(&1));
    server.await.expect("peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_by_the_peer_is_named_in_the_error() {
    let (c, s) = plain_pair();
    // The peer resets the connection as soon as it has it (a plain RST).
    let server = peer(&s, 5000, |st| async move {
        st.abort();
        st.closed().await
    });
    let (o, _tx, _) = options();
    let (result, report) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(10),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    let e = result.expect_err("reset");
    assert!(matches!(e, AppError::Reset(_)), "{e}");
    assert_eq!(e.to_string(), "connection to 10.0.0.1:5000 reset by peer");
    assert_eq!(error_of(&report), Some(e.to_string().as_str()));
    assert_eq!(report.role, "client");
    assert_eq!(report.subflows.len(), 1, "{report:?}");
    server.await.expect("peer");
}

// ---- The server against a client written on the library ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_server_returns_everything_then_closes_once() {
    let (c, s) = plain_pair();
    let data = pattern(300_000);
    let (o, _tx, notices) = options();
    let server = run_server(&s, 5000, ServerMode::Echo, true, None, o);
    let client = async {
        tokio::task::yield_now().await;
        let mut st = c.connect(sa(SERVER)).await.expect("connect");
        let (mut rd, mut wr) = st.split();
        let write = async {
            for chunk in data.chunks(7000) {
                wr.write_all(chunk).await.expect("write");
            }
            wr.shutdown().await.expect("shutdown");
        };
        let read = async {
            let mut back = Vec::new();
            rd.read_to_end(&mut back).await.expect("read");
            back
        };
        let ((), back) = tokio::join!(write, read);
        (back, st.closed().await)
    };
    let ((result, report), (back, end)) = within(60, async { tokio::join!(server, client) }).await;
    assert_eq!(
        result.expect("server"),
        Status::Clean,
        "once: done after one"
    );
    assert!(back == data, "{} of {} bytes back", back.len(), data.len());
    assert_eq!(end, None, "the server closed cleanly");
    assert_eq!(report.role, "server");
    assert_eq!(report.bytes_received, 300_000);
    assert_eq!(report.bytes_sent, 300_000);
    assert_eq!(report.sha256_sent, report.sha256_received);
    assert_eq!(report.sha256_received, hex(&data));
    assert_eq!(report.subflows.len(), 1);
    assert_eq!(report.extra["connections"], 1);
    assert_eq!(notices.text(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_server_writes_out_and_closes_after_the_peer() {
    let (c, s) = plain_pair();
    let data = pattern(100_000);
    let out = Shared::default();
    let (o, _tx, _) = options();
    let server = run_server(
        &s,
        5000,
        ServerMode::Out(Box::new(out.clone())),
        true,
        None,
        o,
    );
    let client = async {
        tokio::task::yield_now().await;
        let mut st = c.connect(sa(SERVER)).await.expect("connect");
        st.write_all(&data).await.expect("write");
        // The server does not close first: nothing arrives, not even its FIN.
        let mut buf = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(300), st.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "the server closed before the peer: {early:?}"
        );
        st.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        st.read_to_end(&mut back).await.expect("read");
        (back, st.closed().await)
    };
    let ((result, report), (back, end)) = within(60, async { tokio::join!(server, client) }).await;
    assert_eq!(result.expect("server"), Status::Clean);
    assert!(
        back.is_empty(),
        "a sink sends nothing: {} bytes",
        back.len()
    );
    assert_eq!(end, None);
    assert!(
        out.bytes() == data,
        "{} bytes written out",
        out.bytes().len()
    );
    assert_eq!(report.bytes_received, 100_000);
    assert_eq!(report.bytes_sent, 0);
}

// ---- Signals ----

/// More than any test sends before its signal: only a signal ends the transfer.
const ENDLESS: u64 = 1 << 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_signal_closes_gracefully_second_aborts() {
    // One signal (sent once the peer has 100 kB): the transfer stops, the connection closes
    // gracefully (DATA_FIN), status Interrupted; the peer has every byte the report counts.
    {
        let (c, s) = mptcp_pair();
        let (o, tx, notices) = options();
        let server = peer(&s, 5000, move |mut st| async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = st.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() >= 100_000 && got.len() - n < 100_000 {
                    tx.send(()).expect("the client listens");
                }
            }
            st.shutdown().await.expect("shutdown");
            (got, st.closed().await)
        });
        let (result, report) = within(
            60,
            run_client(
                &c,
                sa(SERVER),
                Source::Pattern(ENDLESS),
                Output::Discard,
                vec![],
                o,
            ),
        )
        .await;
        assert_eq!(result.expect("run"), Status::Interrupted);
        let (got, end) = server.await.expect("peer");
        assert_eq!(end, None, "closed gracefully, not aborted");
        assert!(report.bytes_sent < ENDLESS, "{}", report.bytes_sent);
        assert_eq!(got.len() as u64, report.bytes_sent, "what was sent arrived");
        assert_eq!(hex(&got), report.sha256_sent);
        assert_eq!(error_of(&report), None);
        let text = notices.text();
        assert!(
            text.starts_with("braid: interrupted: closing gracefully")
                && text.ends_with("; a second signal aborts\n")
                && text.lines().count() == 1,
            "{text:?}"
        );
    }
    // Two signals: reset (MP_FASTCLOSE). The peer never reads: the graceful close
    // cannot finish.
    {
        let (c, s) = mptcp_pair();
        let (o, tx, _) = options();
        let server = peer(&s, 5000, move |st| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(()).expect("the client listens");
            tx.send(()).expect("the client listens");
            st.closed().await
        });
        let (result, report) = within(
            60,
            run_client(
                &c,
                sa(SERVER),
                Source::Pattern(ENDLESS),
                Output::Discard,
                vec![],
                o,
            ),
        )
        .await;
        let e = result.expect_err("aborted");
        assert!(matches!(e, AppError::Aborted), "{e}");
        assert_eq!(
            error_of(&report),
            Some("aborted by a second signal (RST sent)")
        );
        assert_eq!(
            server.await.expect("peer"),
            Some(braid_proto::ConnectionError::FastClosed),
            "the peer was reset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_signal_once_connected_closes_and_says_a_second_aborts() {
    // The peer takes what its buffers hold, then reads nothing more: the close cannot
    // finish. A user who reads the notice and presses ^C again aborts.
    let (c, s) = mptcp_pair();
    let (tx, rx) = mpsc::unbounded_channel();
    let text = Shared::default();
    let again = tx.clone();
    let mut o = Options::new(rx);
    o.notices = Box::new(Notices {
        text: text.clone(),
        on_line: Box::new(move |line| {
            if line.contains("a second signal aborts") {
                let _ = again.send(());
            }
        }),
    });
    let server = peer(&s, 5000, move |st| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(()).expect("the client listens");
        st.closed().await
    });
    let (result, _) = within(
        60,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(ENDLESS),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert_eq!(
        result.expect_err("aborted").to_string(),
        "aborted by a second signal (RST sent)"
    );
    let text = text.text();
    let queued = text
        .strip_prefix("braid: interrupted: closing gracefully once the peer takes the ")
        .and_then(|t| t.strip_suffix(" still queued; a second signal aborts\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        queued.ends_with(" KiB") || queued.ends_with(" MiB"),
        "what is still queued: {queued:?}"
    );
    assert_eq!(
        server.await.expect("peer"),
        Some(braid_proto::ConnectionError::FastClosed),
        "the second signal aborts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_signals_arrive_as_interrupts() {
    let mut rx = braid::app::process_interrupts().expect("signal handlers");
    // SAFETY: tokio's handlers for SIGINT and SIGTERM are installed (above): raising them
    // only wakes the forwarding task. Two distinct signals, so both are counted.
    unsafe {
        libc::raise(libc::SIGINT);
        libc::raise(libc::SIGTERM);
    }
    for _ in 0..2 {
        within(5, rx.recv()).await.expect("an interrupt");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "one interrupt per signal");
}

// ---- Connecting ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_connecting_gives_the_attempt_up_at_once() {
    let (c, peer_end) = unanswered();
    let (o, tx, notices) = options();
    tx.send(()).expect("queued");
    let t = Instant::now();
    let (result, _) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(1000),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    let took = t.elapsed();
    let e = result.expect_err("interrupted");
    assert!(matches!(e, AppError::InterruptedConnecting(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "interrupted while connecting to 10.0.0.1:5000"
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(notices.text(), "", "no notice: the error says it all");
    // The attempt is given up: no SYN is sent again at the first timeout.
    tokio::time::sleep(braid::health::first_syn_timeout() + Duration::from_millis(300)).await;
    assert!(count_packets(&peer_end) <= 1, "the SYN was retransmitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_gives_up_with_its_reason() {
    let (c, peer_end) = unanswered();
    let (mut o, _tx, _) = options();
    o.connect_timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    let (result, report) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(1000),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    let took = t.elapsed();
    let e = result.expect_err("timed out");
    assert!(matches!(e, AppError::ConnectTimedOut { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "connect to 10.0.0.1:5000 timed out after 0.3 s"
    );
    assert_eq!(error_of(&report), Some(e.to_string().as_str()));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "{took:?}"
    );
    // Given up: the SYN is not sent again at its first timeout.
    tokio::time::sleep(braid::health::first_syn_timeout()).await;
    assert_eq!(count_packets(&peer_end), 1, "one SYN, never retransmitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_syn_timeout_is_named_with_the_path_device() {
    let (c, _peer_end) = unanswered();
    let (mut o, _tx, notices) = options();
    o.connect_timeout = Some(braid::health::first_syn_timeout() + Duration::from_millis(300));
    let (result, _) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(1000),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert_eq!(
        result.expect_err("timed out").to_string(),
        "connect to 10.0.0.1:5000 timed out after 1.3 s"
    );
    assert_eq!(
        notices.text(),
        "braid: no answer from 10.0.0.1:5000 after 1 s; still trying (check the kernel side \
         of unix-datagram: its address, a route to 10.0.0.2, a firewall)\n"
    );
}

/// A datagram device that says its link is down, and that braid created it.
struct Down(UnixDatagram);

impl AsRawFd for Down {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl braid::api::PacketDevice for Down {
    fn name(&self) -> &str {
        "braid9"
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        braid::api::PacketDevice::recv(&self.0, buf)
    }
    fn send(&self, packet: &[u8]) -> io::Result<bool> {
        braid::api::PacketDevice::send(&self.0, packet)
    }
    fn state(&self) -> braid::health::DeviceState {
        braid::health::DeviceState {
            link: Some(braid::linkwatch::LinkState {
                up: false,
                running: false,
            }),
            created: true,
        }
    }
}

// Each path's device is asked for its own state (`PacketDevice::state`, through
// `Endpoint::path_state`), whatever kind of device it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_cannot_carry_packets_is_named_at_start_and_at_the_first_syn_timeout() {
    let (a, _b) = dgram_pair();
    let c = Endpoint::builder()
        .seed([6; 32])
        .device(Down(a), ip("10.0.0.2"))
        .build()
        .expect("client endpoint");
    let (mut o, _tx, notices) = options();
    o.connect_timeout = Some(braid::health::first_syn_timeout() + Duration::from_millis(300));
    let (result, _) = within(
        10,
        run_client(
            &c,
            sa(SERVER),
            Source::Pattern(1000),
            Output::Discard,
            vec![],
            o,
        ),
    )
    .await;
    assert_eq!(
        result.expect_err("timed out").to_string(),
        "connect to 10.0.0.1:5000 timed out after 1.3 s"
    );
    let text = notices.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("braid: warning: path braid9=10.0.0.2: braid created braid9"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            "braid: warning: no answer from 10.0.0.1:5000 after 1 s: braid created braid9"
        ) && lines[1].ends_with("; still trying"),
        "{text}"
    );
}

// ---- Client and server applications together ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_to_sink_server_is_byte_exact() {
    let n = 4usize << 20;
    let (c, s) = plain_pair();
    let stored = Shared::default();
    let (o, _tx, _) = options();
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Out(Box::new(stored.clone())),
        Source::Pattern(n as u64),
        Output::Discard,
        vec![],
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    let want = hex(&pattern(n));
    assert_eq!(c.sha256_sent, want);
    assert_eq!(s.sha256_received, want);
    assert_eq!(s.bytes_received, n as u64);
    assert_eq!(stored.bytes().len(), n);
    assert_eq!(hex(&stored.bytes()), want);
    assert!(c.subflows[0].rtt_ms > 0.0, "{c:?}");
    assert_eq!(c.subflows[0].remote, SERVER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_server_returns_every_byte() {
    let n = 1usize << 20;
    let (c, s) = plain_pair();
    let echoed = Shared::default();
    let (o, _tx, _) = options();
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Echo,
        Source::Pattern(n as u64),
        Output::Writer(Box::new(echoed.clone())),
        vec![],
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    let want = hex(&pattern(n));
    assert_eq!(c.sha256_received, want);
    assert_eq!(s.sha256_sent, want);
    assert_eq!(echoed.bytes().len(), n);
    assert_eq!(hex(&echoed.bytes()), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mptcp_client_and_server_report_mptcp_and_counters() {
    let n = 4usize << 20;
    let (c, s) = mptcp_pair();
    let stored = Shared::default();
    let (o, _tx, _) = options();
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Out(Box::new(stored.clone())),
        Source::Pattern(n as u64),
        Output::Discard,
        vec![],
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    assert_eq!(s.sha256_received, hex(&pattern(n)));
    assert_eq!(stored.bytes().len(), n);
    assert!(c.mptcp && s.mptcp);
    assert_eq!(c.counters.get("MPCapableSYNACKRX"), Some(&1));
    assert_eq!(s.counters.get("MPCapableSYNRX"), Some(&1));
    assert_eq!(s.counters.get("DSSNotMatching"), Some(&0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mptcp_client_falls_back_to_a_plain_server_and_says_so() {
    let n = 1usize << 20;
    let (c, s) = pair_with(1, |b| b, |b| b.mptcp(false));
    let (o, _tx, _) = options();
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Sink,
        Source::Pattern(n as u64),
        Output::Discard,
        vec![],
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    assert_eq!(s.sha256_received, hex(&pattern(n)));
    assert!(!c.mptcp && !s.mptcp);
    assert_eq!(c.counters.get("MPCapableFallbackSYNACK"), Some(&1));
}

/// Two paths (two datagram pairs): the client joins a second subflow from its second
/// address to the server's second address, so the join arrives at the server on another
/// device and address than the connection. Returns (client, server, what the client's
/// progress line wrote).
async fn two_paths(n: u64, backup: bool) -> (Report, Report, String) {
    let (c, s) = pair_with(2, |b| b, |b| b);
    let progress = Shared::default();
    let (mut o, _tx, _) = options();
    // Redrawn at every chance (every 10 ms): the transfer may take a tenth of a second,
    // and the line must have shown the joined subflow by then.
    o.progress = Some(Progress::new(
        Box::new(progress.clone()),
        Duration::ZERO,
        Duration::ZERO,
    ));
    let joins = vec![JoinSpec {
        local: ip("10.1.0.2"),
        remote: sa("10.1.0.1:5000"),
        backup,
    }];
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Sink,
        Source::Pattern(n),
        Output::Discard,
        joins,
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    assert_eq!(s.sha256_received, hex(&pattern(n as usize)));
    assert!(c.mptcp && s.mptcp);
    assert_eq!(c.counters.get("MPJoinSynTx"), Some(&1));
    assert_eq!(c.counters.get("MPJoinSynAckRx"), Some(&1));
    assert_eq!(s.counters.get("MPJoinSynRx"), Some(&1));
    assert_eq!(s.counters.get("MPJoinAckRx"), Some(&1));
    for (r, local, remote) in [
        (&c, "10.1.0.2", "10.1.0.1:5000"),
        (&s, "10.1.0.1:5000", "10.1.0.2"),
    ] {
        assert_eq!(r.subflows.len(), 2, "{r:?}");
        let j = &r.subflows[1];
        assert_eq!(j.id, 1);
        assert!(j.local.starts_with(local), "{j:?}");
        assert!(j.remote.starts_with(remote), "{j:?}");
        assert_eq!(
            j.backup, backup,
            "the join's backup bit, seen on both sides: {j:?}"
        );
        assert_eq!(r.subflows[0].id, 0);
        assert!(!r.subflows[0].backup);
    }
    (c, s, progress.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_joins_a_second_subflow_that_carries_data() {
    let n: u64 = 8 << 20;
    let (c, s, progress) = two_paths(n, false).await;
    // Both subflows carried data, seen by the sender and by the receiver.
    for id in [0, 1] {
        assert!(c.subflows[id].bytes_sent > 0, "{c:?}");
        assert!(s.subflows[id].bytes_received > 0, "{s:?}");
    }
    // Each byte arrived once, on one subflow or the other, unless the client sent some
    // again on another subflow: a data-level retransmission (`MPTCPRetrans`) or the
    // reinjection of a stale subflow's bytes (`SubflowStale`), which a loaded machine can
    // trigger (this runs in real time, and a full datagram socket drops packets).
    let at_server: u64 = s.subflows.iter().map(|f| f.bytes_received).sum();
    let count = |k: &str| c.counters.get(k).copied().unwrap_or(0);
    if count("MPTCPRetrans") + count("SubflowStale") == 0 {
        assert_eq!(at_server, n, "each byte arrived once: {:?}", c.counters);
    } else {
        assert!(at_server >= n, "{at_server} of {n} bytes");
    }
    // The progress line was drawn in place and erased at the end.
    assert!(
        progress.contains("sent, ") && progress.contains("2 subflows"),
        "{progress:?}"
    );
    assert!(progress.ends_with("\r\x1b[K"), "{progress:?}");
    assert!(!progress.contains('\n'), "{progress:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_join_carries_nothing_while_the_primary_works() {
    let n: u64 = 4 << 20;
    let (c, s, _) = two_paths(n, true).await;
    // (Almost) nothing: on a starved machine a spurious RTO may mark the primary stale for
    // a moment (its wall-clock timers run late), and the backup then carries a few
    // segments until it recovers.
    assert!(c.subflows[1].bytes_sent <= n / 50, "{c:?}");
    assert_eq!(s.subflows[0].bytes_received, n, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_leave_by_the_device_the_peer_used_for_the_same_addresses() {
    // The server has 10.0.0.1 on its first device and 10.1.0.1 on its second; the client
    // reaches 10.0.0.1 through the second device. Replies from 10.0.0.1 must go back the
    // way the client's packets came: by its source address they would leave by the first
    // device, which leads nowhere (its other end is never read).
    let (c0, s1) = dgram_pair();
    let (s0, nowhere) = dgram_pair();
    let c = Endpoint::builder()
        .seed([7; 32])
        .device(c0, ip("10.0.0.2"))
        .build()
        .expect("client endpoint");
    let s = Endpoint::builder()
        .seed([8; 32])
        .device(s0, ip("10.0.0.1"))
        .device(s1, ip("10.1.0.1"))
        .build()
        .expect("server endpoint");
    let (mut o, _tx, _) = options();
    o.connect_timeout = Some(Duration::from_secs(5));
    let ((cr, c), (sr, s)) = client_and_server(
        &c,
        &s,
        ServerMode::Sink,
        Source::Pattern(100_000),
        Output::Discard,
        vec![],
        o,
    )
    .await;
    assert_eq!(cr.expect("client"), Status::Clean);
    assert_eq!(sr.expect("server"), Status::Clean);
    assert_eq!(s.sha256_received, c.sha256_sent);
    assert_eq!(
        count_packets(&nowhere),
        0,
        "nothing left by the first device"
    );
}
