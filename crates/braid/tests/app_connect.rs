//! The applications of `braid connect` and `braid listen` end to end, in one process and
//! without privileges (the first part is `app_pair.rs`): connecting (signals, timeouts, a
//! path that cannot carry packets), and the client and server applications together.

#[path = "common/app_harness.rs"]
mod app_harness;
mod common;

use app_harness::*;

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
