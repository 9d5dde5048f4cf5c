//! The library API end to end, in one process and without privileges: two endpoints joined
//! by datagram socket pairs (one per path), each driven by its own task.

mod common;

use std::time::Duration;

use braid::{Endpoint, MptcpStream};
use common::{dgram_pair, ip, pair_with, sa};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pair(paths: usize) -> (Endpoint, Endpoint) {
    pair_with(paths, |b| b, |b| b)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Runs an echo server for one connection: returns what it echoed.
fn echo_once(listener: braid::MptcpListener) -> tokio::task::JoinHandle<std::io::Result<u64>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (mut rd, mut wr) = stream.into_split();
        let n = tokio::io::copy(&mut rd, &mut wr).await?;
        wr.shutdown().await?;
        Ok(n)
    })
}

async fn send_and_read_back(stream: &mut MptcpStream, data: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = stream.split();
    let write = async {
        wr.write_all(data).await.expect("write");
        wr.shutdown().await.expect("shutdown");
    };
    let read = async {
        let mut back = Vec::new();
        rd.read_to_end(&mut back).await.expect("read");
        back
    };
    let ((), back) = tokio::join!(write, read);
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_over_mptcp_is_byte_exact_at_every_edge_size() {
    let (c, s) = pair(1);
    let listener = s.listen(5000).expect("listen");
    for n in [0usize, 1, 1447, 1448, 1449, 100_000, 3 << 20] {
        let server = echo_once(listener.clone());
        let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
        assert!(stream.is_mptcp(), "MP_CAPABLE negotiated");
        let data = pattern(n);
        let back = send_and_read_back(&mut stream, &data).await;
        assert_eq!(back.len(), n);
        assert_eq!(sha(&back), sha(&data), "{n} bytes");
        assert_eq!(server.await.expect("task").expect("echo"), n as u64);
        assert_eq!(stream.closed().await, None, "a clean close");
        let info = stream.info().expect("the last snapshot");
        assert!(info.mptcp);
        assert_eq!(info.bytes_acked, n as u64);
    }
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_and_fallback_say_they_are_not_mptcp() {
    // Both plain.
    let (c, s) = pair_with(1, |b| b.mptcp(false), |b| b.mptcp(false));
    let server = echo_once(s.listen(80).expect("listen"));
    let mut stream = c.connect(sa("10.0.0.1:80")).await.expect("connect");
    assert!(!stream.is_mptcp());
    let back = send_and_read_back(&mut stream, b"plain").await;
    assert_eq!(back, b"plain");
    server.await.expect("task").expect("echo");

    // An MPTCP client, a plain server: fallback to TCP.
    let (c, s) = pair_with(1, |b| b, |b| b.mptcp(false));
    let server = echo_once(s.listen(80).expect("listen"));
    let mut stream = c.connect(sa("10.0.0.1:80")).await.expect("connect");
    assert!(!stream.is_mptcp(), "fell back");
    let back = send_and_read_back(&mut stream, &pattern(70_000)).await;
    assert_eq!(sha(&back), sha(&pattern(70_000)));
    server.await.expect("task").expect("echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_those_of_a_tcp_stream() {
    let (c, s) = pair(1);
    // Nobody listens: refused.
    let e = c.connect(sa("10.0.0.1:9")).await.expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");

    // The peer aborts (MP_FASTCLOSE): the reader gets ConnectionReset.
    let listener = s.listen(5000).expect("listen");
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        stream
    });
    let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
    stream.write_all(b"hello").await.expect("write");
    let peer = accepted.await.expect("task");
    peer.abort();
    let mut buf = [0u8; 16];
    let e = loop {
        match stream.read(&mut buf).await {
            Ok(0) => panic!("EOF instead of a reset"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    assert_eq!(
        stream.closed().await,
        Some(braid_proto::ConnectionError::FastClosed)
    );
    // Writing after the reset fails too.
    let e = stream.write_all(b"more").await.expect_err("reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_with_unread_data_resets_and_without_closes() {
    let (c, s) = pair(1);
    let listener = s.listen(5000).expect("listen");
    for unread in [true, false] {
        let l = listener.clone();
        let accepted = tokio::spawn(async move {
            let (mut stream, _) = l.accept().await.expect("accept");
            // Wait for the client's bytes; read them or not; drop the stream.
            while stream.info().is_some_and(|i| i.bytes_received < 5) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if !unread {
                let mut buf = [0u8; 5];
                stream.read_exact(&mut buf).await.expect("read");
            }
        });
        let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
        stream.write_all(b"hello").await.expect("write");
        accepted.await.expect("task");
        let mut rest = Vec::new();
        let r = stream.read_to_end(&mut rest).await;
        if unread {
            // The peer must not take a clean end for the delivery of what it sent.
            let e = r.expect_err("a reset");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        } else {
            assert_eq!(r.expect("a clean end"), 0);
        }
    }
}

/// An echo's reply carries the ACK of the request: the driver lets the streams that the
/// input woke run before it sends, instead of a pure ACK going out just ahead of the reply.
/// Requests of three segments (the second asks for an ACK at once), on one thread as the
/// CLI runs.
#[tokio::test(flavor = "current_thread")]
async fn an_echo_reply_carries_the_ack_of_its_request() {
    const EXCHANGES: u64 = 50;
    const REQUEST: usize = 3000;
    let (c, s) = pair(1);
    let listener = s.listen(5000).expect("listen");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; REQUEST];
        for _ in 0..EXCHANGES {
            stream.read_exact(&mut buf).await.expect("request");
            stream.write_all(&buf).await.expect("reply");
        }
        stream
    });
    let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
    let request = pattern(REQUEST);
    let mut back = vec![0u8; REQUEST];
    let before = s.io_stats().packets_out;
    for _ in 0..EXCHANGES {
        stream.write_all(&request).await.expect("write");
        stream.read_exact(&mut back).await.expect("read");
        assert_eq!(back, request);
    }
    let sent = s.io_stats().packets_out - before;
    let _peer = server.await.expect("task");
    // Three segments of reply each; a pure ACK ahead of every reply would make it four.
    assert!(
        sent <= EXCHANGES * 3 + EXCHANGES / 5,
        "{sent} packets from the server for {EXCHANGES} replies of three segments"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_does_not_read_stops_the_writer_within_the_buffers() {
    let (send_buf, recv_buf) = (64 * 1024, 64 * 1024);
    let (c, s) = pair_with(
        1,
        |b| b.buffers(send_buf, recv_buf),
        |b| b.buffers(send_buf, recv_buf),
    );
    let listener = s.listen(5000).expect("listen");
    let accepted = tokio::spawn(async move { listener.accept().await.expect("accept").0 });
    let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
    let mut peer = accepted.await.expect("task");
    let chunk = pattern(16 * 1024);
    let mut written = 0usize;
    // Write until a write stays pending for a while: the peer's window and our send
    // buffer are full.
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write: {e}"),
            Err(_) => break,
        }
        assert!(written < 10 << 20, "the writer was never stopped");
    }
    assert!(
        written <= send_buf + recv_buf + 4 * 1448,
        "{written} bytes accepted with {send_buf} + {recv_buf} of buffers"
    );
    // The reader drains everything; nothing was lost.
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while got < written {
        let n = peer.read(&mut buf).await.expect("read");
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_subflow_joins_and_both_carry_data() {
    let (c, s) = pair(2);
    let listener = s.listen(5000).expect("listen");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.expect("read");
        stream.shutdown().await.expect("shutdown");
        stream.closed().await;
        (all, stream.info().expect("info"))
    });
    let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
    stream
        .open_subflow(ip("10.1.0.2"), sa("10.1.0.1:5000"), false)
        .expect("join requested");
    let data = pattern(8 << 20);
    stream.write_all(&data).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("read");
    assert_eq!(stream.closed().await, None);
    let (got, sinfo) = server.await.expect("task");
    assert_eq!(sha(&got), sha(&data));
    let info = stream.info().expect("info");
    assert_eq!(info.subflows.len(), 2, "{info:?}");
    for sub in &info.subflows {
        assert!(
            sub.bytes_sent > 0,
            "subflow {} carried nothing: {info:?}",
            sub.id
        );
    }
    assert_eq!(sinfo.subflows.len(), 2);
    assert_eq!(c.counters().MPJoinSynTx, 1);
    assert_eq!(s.counters().MPJoinAckRx, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_echo_clients_are_each_byte_exact() {
    let (c, s) = pair(1);
    let listener = s.listen(7).expect("listen");
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    let mut clients = Vec::new();
    for i in 0..64usize {
        let c = c.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = c.connect(sa("10.0.0.1:7")).await.expect("connect");
            let data = pattern(32 * 1024 + i);
            let back = send_and_read_back(&mut stream, &data).await;
            assert_eq!(sha(&back), sha(&data), "client {i}");
        }));
    }
    for t in clients {
        t.await.expect("client");
    }
    server.abort();
}

#[test]
fn the_blocking_facade_reads_and_writes_like_std() {
    use std::io::{Read, Write};
    let (a, b) = dgram_pair();
    let server = braid::blocking::Endpoint::builder()
        .with(|x| x.device(a, ip("10.0.0.1")).seed([3; 32]))
        .build()
        .expect("server");
    let client = braid::blocking::Endpoint::builder()
        .with(|x| x.device(b, ip("10.0.0.2")).seed([4; 32]))
        .build()
        .expect("client");
    let listener = server.listen(80).expect("listen");
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        s.write_all(&got).expect("echo");
        s.shutdown().expect("shutdown");
        got.len()
    });
    let mut s = client.connect(sa("10.0.0.1:80")).expect("connect");
    assert!(s.is_mptcp());
    s.write_all(&pattern(200_000)).expect("write");
    s.shutdown().expect("shutdown");
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read");
    assert_eq!(sha(&back), sha(&pattern(200_000)));
    assert_eq!(t.join().expect("server"), 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_changes_scheduler_and_path_manager() {
    let (c, s) = pair(2);
    let listener = s.listen(5000).expect("listen");
    let server = echo_once(listener);
    let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
    stream
        .set_scheduler(braid_proto::sched::SchedulerKind::RoundRobin.build())
        .expect("scheduler");
    // The kernel manager without endpoints opens nothing; fullmesh joins from the second
    // path's address at once.
    let fullmesh = braid_proto::pm::PmFactory::by_name("fullmesh").expect("fullmesh");
    stream.set_path_manager(&fullmesh).expect("path manager");
    let data = pattern(4 << 20);
    let back = send_and_read_back(&mut stream, &data).await;
    assert_eq!(sha(&back), sha(&data));
    server.await.expect("task").expect("echo");
    let info = stream.info().expect("info");
    assert!(
        info.subflows.iter().any(|s| s.local.ip() == ip("10.1.0.2")),
        "{info:?}"
    );
    assert_eq!(c.counters().MPJoinSynTx, 1);

    // A plain TCP stream has neither.
    let (c, s) = pair_with(1, |b| b.mptcp(false), |b| b.mptcp(false));
    let _server = echo_once(s.listen(80).expect("listen"));
    let stream = c.connect(sa("10.0.0.1:80")).await.expect("connect");
    let e = stream
        .set_scheduler(braid_proto::sched::SchedulerKind::MinRtt.build())
        .expect_err("plain TCP");
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
}

/// An endpoint dropped with no connection left ends its driver, which lets go of its
/// devices (a TUN device closes, its watchdog thread ends): the peer of its datagram
/// socket finds it closed.
#[tokio::test]
async fn a_dropped_endpoint_without_connections_lets_go_of_its_devices() {
    let (a, b) = dgram_pair();
    let ep = Endpoint::builder()
        .device(a, ip("10.0.0.1"))
        .seed([5; 32])
        .build()
        .expect("endpoint");
    // It works while it lives: a listener opens.
    let listener = ep.listen(80).expect("listen");
    drop(listener);
    drop(ep);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.send(&[0u8; 20]).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the endpoint's driver still holds its device"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` clients each echo a different size through `n` tasks that each wait in `accept` on a
/// clone of one listener at the same time; every echo comes back byte-exact.
async fn concurrent_echoes(c: Endpoint, s: Endpoint, n: usize) {
    let listener = s.listen(5000).expect("listen");
    let servers: Vec<_> = (0..n).map(|_| echo_once(listener.clone())).collect();
    let mut clients = Vec::new();
    for i in 0..n {
        let c = c.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = c.connect(sa("10.0.0.1:5000")).await.expect("connect");
            let data = pattern(300_000 + i);
            let echo = send_and_read_back(&mut stream, &data);
            let back = tokio::time::timeout(Duration::from_secs(30), echo)
                .await
                .unwrap_or_else(|_| panic!("connection {i}: no echo: {:?}", stream.info()));
            assert_eq!(sha(&back), sha(&data), "connection {i}");
        }));
    }
    for t in clients {
        t.await.expect("client");
    }
    for t in servers {
        t.await.expect("server").expect("echo");
    }
}

/// Tasks waiting in `accept` on clones of one listener are all served: each connection
/// wakes every waiter, not only the one that waited last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_of_a_listener_accept_at_the_same_time() {
    let (c, s) = pair(1);
    concurrent_echoes(c, s, 4).await;
}

/// Endpoints whose receive budget leaves each connection the smallest window (16 KiB)
/// still carry several concurrent echoes byte-exact, in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_receive_budget_still_carries_every_byte() {
    let (c, s) = pair_with(1, |b| b.recv_budget(1), |b| b.recv_budget(1));
    concurrent_echoes(c, s, 4).await;
}
