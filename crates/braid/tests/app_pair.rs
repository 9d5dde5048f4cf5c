//! The applications of `braid connect` and `braid listen` (`braid::app::run_client`,
//! `run_server`) end to end, in one process and without privileges: endpoints joined by
//! datagram socket pairs (one per path), signals stood for by the `interrupts` channel,
//! notices taken by the test. Ported from the old runtime's `app_tests`, `pair_tests` and
//! `connecting` tests: the results, reports and notices are those users rely on.
//! Connecting, paths that cannot carry packets and both applications together are in
//! `app_connect.rs` (same harness: `common/app_harness.rs`).

#[path = "common/app_harness.rs"]
mod app_harness;
mod common;

use app_harness::*;

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
