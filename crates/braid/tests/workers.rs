//! An endpoint of several workers (`Builder::workers`), in-process: each path of the server
//! is a device with one queue per worker, fed by a switch that puts each flow on a queue by
//! its hash, or each packet on a queue at random (`Spread`). Every connection, and every
//! join, must end at the one worker that owns it.

#[allow(dead_code)]
mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use braid::{Endpoint, MptcpStream, PacketDevice};
use common::{dgram_pair, ip, sa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the switch picks a server queue for a packet from the client.
#[derive(Clone, Copy)]
enum Spread {
    /// Each packet at random: a flow's packets reach both workers and overtake each other
    /// through the mailbox (harsher than the kernel, which keeps a flow on one queue).
    Random,
    /// By a hash of the flow's ports, the same queue for all its packets (as the kernel's
    /// hash does before braid writes): a join whose token is the other worker's is
    /// handed over for its whole life.
    ByFlow,
}

/// The queue of a packet from the client under `spread`.
fn pick(spread: Spread, rng: &mut u64, packet: &[u8], queues: usize) -> usize {
    match spread {
        Spread::Random => {
            *rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*rng >> 33) as usize) % queues
        }
        Spread::ByFlow => {
            // IPv4: the TCP ports follow the header.
            let ihl = usize::from(packet.first().map_or(5, |b| b & 0x0f)) * 4;
            let ports = packet.get(ihl..ihl + 4).unwrap_or_default();
            let h = ports.iter().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
            });
            h as usize % queues
        }
    }
}

/// Moves packets between one client-side socket and `queues` server-side ones until
/// dropped: client → a queue `Spread` picks, any queue → client.
struct Switch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Switch {
    /// The client's end and the server's queues of one path.
    fn new(queues: usize, seed: u64, spread: Spread) -> (Switch, UnixDatagram, Vec<UnixDatagram>) {
        let (client, client_side) = dgram_pair();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..queues {
            let (a, b) = dgram_pair();
            ours.push(a);
            theirs.push(b);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rng = seed;
            let mut buf = vec![0u8; 65536];
            while !halt.load(Ordering::Relaxed) {
                let mut moved = false;
                while let Ok(n) = client_side.recv(&mut buf) {
                    let q = pick(spread, &mut rng, &buf[..n], ours.len());
                    let _ = ours[q].send(&buf[..n]);
                    moved = true;
                }
                for q in &ours {
                    while let Ok(n) = q.recv(&mut buf) {
                        let _ = client_side.send(&buf[..n]);
                        moved = true;
                    }
                }
                if !moved {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
        });
        (
            Switch {
                stop,
                thread: Some(thread),
            },
            client,
            theirs,
        )
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A one-worker client and a server of `workers` workers over `paths` switched paths.
fn pair(paths: usize, workers: usize, spread: Spread) -> (Endpoint, Endpoint, Vec<Switch>) {
    let mut c = Endpoint::builder().seed([1; 32]).workers(1);
    let mut s = Endpoint::builder().seed([2; 32]).workers(workers);
    let mut switches = Vec::new();
    for i in 0..paths {
        let (sw, client, queues) = Switch::new(workers, i as u64 + 1, spread);
        c = c.device(client, ip(&format!("10.{i}.0.2")));
        let queues: Vec<Arc<dyn PacketDevice + Send + Sync>> = queues
            .into_iter()
            .map(|q| Arc::new(q) as Arc<dyn PacketDevice + Send + Sync>)
            .collect();
        s = s.device_queues(queues, ip(&format!("10.{i}.0.1")));
        switches.push(sw);
    }
    (
        c.build().expect("client"),
        s.build().expect("server"),
        switches,
    )
}

fn pattern(n: usize, k: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + k * 13) % 251) as u8).collect()
}

/// Writes `data` and shuts down while reading everything back.
async fn send_and_read_back(stream: &mut MptcpStream, data: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = stream.split();
    let send = async {
        w.write_all(data).await.expect("write");
        w.shutdown().await.expect("shutdown");
    };
    let mut back = Vec::new();
    let recv = r.read_to_end(&mut back);
    let (_, got) = tokio::join!(send, recv);
    got.expect("read back");
    back
}

/// A hang guard, not a timing assertion (a run takes a fraction of a second; a subflow
/// whose peer's FIN was lost closes after the 60 s close timeout): a stream that has not
/// finished `what` after 90 s panics with its own account of itself.
async fn within<T>(stream: &MptcpStream, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(std::time::Duration::from_secs(90), f).await {
        Ok(t) => t,
        Err(_) => panic!("{what}: still waiting after 90 s; {:#?}", stream.info()),
    }
}

async fn echo(mut stream: MptcpStream) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = stream.read(&mut buf).await.expect("server read");
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await.expect("server write");
    }
    stream.shutdown().await.expect("server shutdown");
    let (closed, s) = (stream.closed(), &stream);
    within(s, "the server's close", closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_serve_echoes_and_joins_whatever_queue_their_flows_reach() {
    const CONNS: usize = 8;
    const BYTES: usize = 512 << 10;
    let (c, s, _switches) = pair(2, 2, Spread::ByFlow);
    assert_eq!(s.workers(), 2);
    let listener = s.listen(7).expect("listen");
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..CONNS {
            let (stream, _) = listener.accept().await.expect("accept");
            tasks.push(tokio::spawn(echo(stream)));
        }
        for t in tasks {
            t.await.expect("echo task");
        }
    });
    let mut clients = Vec::new();
    for k in 0..CONNS {
        let c = c.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = c.connect(sa("10.0.0.1:7")).await.expect("connect");
            stream
                .open_subflow(ip("10.1.0.2"), sa("10.1.0.1:7"), false)
                .expect("join requested");
            let data = pattern(BYTES, k);
            let echoed = send_and_read_back(&mut stream, &data);
            let Ok(back) = tokio::time::timeout(std::time::Duration::from_secs(20), echoed).await
            else {
                panic!(
                    "connection {k}: no end of the echo after 20 s; {:#?}",
                    stream.info()
                );
            };
            assert!(back == data, "connection {k}: the echo differs");
            let closed = within(&stream, "the client's close", stream.closed()).await;
            assert_eq!(closed, None);
            stream.info().expect("info").subflows.len()
        }));
    }
    for t in clients {
        assert_eq!(
            t.await.expect("client task"),
            2,
            "a connection and its join"
        );
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), server)
        .await
        .expect("the server finished")
        .expect("server task");
    // Every join reached the worker of its token: none was refused.
    assert_eq!(s.counters().MPJoinAckRx, CONNS as u64);
    assert_eq!(s.counters().MPJoinNoTokenFound, 0);
    let io = s.io_stats();
    assert!(io.packets_in > 0 && io.packets_out > 0);
}

/// A worker with nothing left to serve keeps reading its queues until every worker is
/// done: the kernel may still put another worker's packets there. The server endpoint and
/// its listener are dropped while a connection of theirs still moves data, on whichever
/// worker; every packet of it, on either queue, must still reach its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_left_without_connections_still_reads_its_queues() {
    const BYTES: usize = 2 << 20;
    let (c, s, _switches) = pair(1, 2, Spread::Random);
    let listener = s.listen(9).expect("listen");
    let mut client = c.connect(sa("10.0.0.1:9")).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    drop(listener);
    drop(s);
    let echo = tokio::spawn(echo(server));
    let data = pattern(BYTES, 3);
    let back = send_and_read_back(&mut client, &data).await;
    assert!(back == data, "the echo differs");
    assert_eq!(client.closed().await, None);
    echo.await.expect("echo task");
    let info = client.info().expect("info");
    let lost: u64 = info.subflows.iter().map(|f| f.timeouts).sum();
    assert_eq!(
        lost, 0,
        "no retransmission timeout: nothing was left unread {info:?}"
    );
}

#[tokio::test]
async fn a_path_needs_a_queue_per_worker() {
    let (a, _b) = dgram_pair();
    let e = Endpoint::builder()
        .workers(2)
        .device(a, ip("10.0.0.1"))
        .build()
        .expect_err("one queue for two workers");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("one queue per worker"), "{e}");
    let e = Endpoint::builder()
        .workers(0)
        .build()
        .expect_err("no worker");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
