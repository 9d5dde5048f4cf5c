//! A host served by several endpoints, one per worker (`EndpointConfig::shard`), as a driver
//! with several workers and a multi-queue device runs it: whichever worker a packet reaches,
//! it ends at the worker owning its connection, and nothing is answered twice.

use std::collections::VecDeque;
use std::net::SocketAddr;

use braid_proto::time::{Duration, Instant};
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpFlags, TcpOptions, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, Event, Handoff, ListenOptions,
    Shard,
};

const SERVER: &str = "10.0.0.2:80";

fn sharded(count: u16) -> Vec<Endpoint> {
    (0..count)
        .map(|i| {
            Endpoint::new(
                EndpointConfig {
                    shard: Shard::new(i, count).unwrap(),
                    ..EndpointConfig::default()
                },
                [i as u8 + 1; 32],
            )
        })
        .collect()
}

/// Hands `pkt` to worker `first` and on as the workers say; the worker that took it.
fn deliver(shards: &mut [Endpoint], now: Instant, first: usize, pkt: &[u8]) -> usize {
    let n = shards.len();
    let (mut i, mut passed) = (first, 0);
    for _ in 0..=n {
        match shards[i].handle_packet_sharded(now, 0, pkt, passed + 1 >= n) {
            None => return i,
            Some(Handoff::To(k)) => i = usize::from(k),
            Some(Handoff::Next) => {
                i = (i + 1) % n;
                passed += 1;
            }
        }
    }
    panic!("a packet went round more than once");
}

/// A splitmix step: the queue each packet lands on.
fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn byte(conn: usize, i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(conn as u64 * 7) % 251) as u8
}

/// Eight MPTCP connections, each joined from a second address, each sending 256 KiB to a
/// server of two workers; every packet towards the server lands on a worker at random.
#[test]
fn every_connection_and_join_ends_at_one_worker_whatever_queue_its_packets_reach() {
    const CONNS: usize = 8;
    const TOTAL: u64 = 256 << 10;
    let mut client = Endpoint::new(EndpointConfig::default(), [9; 32]);
    let mut server = sharded(2);
    let addr: SocketAddr = SERVER.parse().unwrap();
    for s in &mut server {
        s.listen("0.0.0.0:80".parse().unwrap(), ListenOptions { mptcp: true })
            .unwrap();
    }
    let mut now = Instant::ZERO;
    let conns: Vec<ConnectionHandle> = (0..CONNS)
        .map(|_| {
            client
                .connect(
                    now,
                    "10.0.0.1:0".parse().unwrap(),
                    addr,
                    ConnectOptions { mptcp: true },
                )
                .unwrap()
        })
        .collect();
    let mut sent = [0u64; CONNS];
    let mut closed = [false; CONNS];
    let mut joined = [false; CONNS];
    // Accepted connections: (worker, handle, connection index by remote port, bytes read).
    let mut accepted: Vec<(usize, ConnectionHandle, usize, u64)> = Vec::new();
    let ports: Vec<u16> = conns
        .iter()
        .map(|&c| client.conn_info(c).unwrap().local.port())
        .collect();
    let mut to_server: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_client: VecDeque<Vec<u8>> = VecDeque::new();
    let mut rng = 7u64;
    let mut buf = vec![0u8; 65536];
    let mut landed = [0usize; 2];
    let end = Instant::ZERO + Duration::from_secs(60);
    while now < end {
        while let Some(ev) = client.poll_event() {
            if let Event::Connected(c) = ev {
                let i = conns.iter().position(|&x| x == c).unwrap();
                if !joined[i] {
                    client
                        .add_subflow(now, c, "10.0.1.1:0".parse().unwrap(), addr, false)
                        .unwrap();
                    joined[i] = true;
                }
            }
            if let Event::Closed { error, .. } = ev {
                assert_eq!(error, None, "a connection failed");
            }
        }
        for (w, s) in server.iter_mut().enumerate() {
            while let Some(ev) = s.poll_event() {
                if let Event::Accepted { conn, remote, .. } = ev {
                    let i = ports.iter().position(|&p| p == remote.port()).unwrap();
                    assert!(
                        !accepted.iter().any(|a| a.2 == i),
                        "connection {i} accepted twice"
                    );
                    accepted.push((w, conn, i, 0));
                }
            }
        }
        for (i, &c) in conns.iter().enumerate() {
            while sent[i] < TOTAL {
                let n = (TOTAL - sent[i]).min(16384) as usize;
                let chunk: Vec<u8> = (0..n as u64).map(|k| byte(i, sent[i] + k)).collect();
                match client.write(c, &chunk) {
                    Ok(w) if w > 0 => sent[i] += w as u64,
                    _ => break,
                }
            }
            if sent[i] == TOTAL && !closed[i] {
                client.close(c).unwrap();
                closed[i] = true;
            }
        }
        for a in accepted.iter_mut() {
            let s = &mut server[a.0];
            while let Ok(n) = s.read(a.1, &mut buf) {
                if n == 0 {
                    break;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, byte(a.2, a.3 + k as u64), "connection {}", a.2);
                }
                a.3 += n as u64;
            }
            if a.3 == TOTAL {
                let _ = s.close(a.1);
            }
        }
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            to_server.push_back(buf[..t.len].to_vec());
        }
        for s in &mut server {
            while let Some(t) = s.poll_transmit(now, &mut buf) {
                to_client.push_back(buf[..t.len].to_vec());
            }
        }
        if accepted.len() == CONNS && accepted.iter().all(|a| a.3 == TOTAL) {
            break;
        }
        if to_server.is_empty() && to_client.is_empty() {
            let next = client
                .poll_timeout()
                .into_iter()
                .chain(server.iter().filter_map(|s| s.poll_timeout()))
                .min();
            now = now.max(next.unwrap_or(end));
        } else {
            now += Duration::from_micros(50);
        }
        for p in to_server.drain(..) {
            let first = (next(&mut rng) % 2) as usize;
            landed[deliver(&mut server, now, first, &p)] += 1;
        }
        for p in to_client.drain(..) {
            client.handle_packet(now, &p);
        }
        client.handle_timeout(now);
        for s in &mut server {
            s.handle_timeout(now);
        }
    }
    assert_eq!(accepted.len(), CONNS, "every connection accepted once");
    for a in &accepted {
        assert_eq!(a.3, TOTAL, "connection {} complete", a.2);
        let snap = server[a.0].snapshot(a.1).unwrap();
        assert_eq!(snap.subflows.len(), 2, "connection {}: its join too", a.2);
        // Its token is its worker's.
        let token = snap.local_token.unwrap();
        assert_eq!(token % 2, a.0 as u32);
    }
    assert!(
        accepted.iter().any(|a| a.0 == 0) && accepted.iter().any(|a| a.0 == 1),
        "both workers serve connections: {accepted:?}"
    );
    assert!(landed[0] > 0 && landed[1] > 0);
    for s in &server {
        assert_eq!(s.stats().malformed, 0);
    }
    // Nothing was refused: no worker answered another's segment with a RST.
    assert_eq!(client.counters().MPJoinSynAckRx, CONNS as u64);
}

/// Two workers opening connections to one peer never pick the same port or token.
#[test]
fn workers_pick_ephemeral_ports_and_tokens_from_their_own_share() {
    let mut shards = sharded(2);
    let remote: SocketAddr = SERVER.parse().unwrap();
    for (w, ep) in shards.iter_mut().enumerate() {
        for _ in 0..50 {
            let c = ep
                .connect(
                    Instant::ZERO,
                    "10.0.0.1:0".parse().unwrap(),
                    remote,
                    ConnectOptions { mptcp: true },
                )
                .unwrap();
            let port = ep.conn_info(c).unwrap().local.port();
            assert_eq!(u32::from(port) % 2, w as u32, "port {port}");
            let token = ep.mptcp_connection(c).unwrap().local_token();
            assert_eq!(token % 2, w as u32, "token {token:#x}");
        }
    }
}

/// A segment of no connection goes round the workers and is answered by the last one only;
/// an MP_JOIN SYN goes straight to the worker its token names.
#[test]
fn a_stray_segment_is_reset_once_and_a_join_goes_to_its_token_s_worker() {
    let mut shards = sharded(2);
    let ack = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 1000,
        ack: 2000,
        flags: TcpFlags(TcpFlags::ACK),
        window: 100,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let src = "10.0.0.1".parse().unwrap();
    let dst = "10.0.0.2".parse().unwrap();
    let mut pkt = vec![0u8; 1500];
    let n = emit_tcp_packet(&mut pkt, src, dst, 64, &ack, &[]).unwrap();
    let now = Instant::ZERO;
    assert_eq!(
        shards[0].handle_packet_sharded(now, 0, &pkt[..n], false),
        Some(Handoff::Next)
    );
    let mut out = vec![0u8; 1500];
    assert!(shards[0].poll_transmit(now, &mut out).is_none(), "no RST");
    assert_eq!(
        shards[1].handle_packet_sharded(now, 0, &pkt[..n], true),
        None
    );
    let t = shards[1]
        .poll_transmit(now, &mut out)
        .expect("the last worker resets");
    let rst = parse_tcp_packet(&out[..t.len]).unwrap();
    assert!(rst.tcp.flags.rst());

    let join = TcpRepr {
        flags: TcpFlags(TcpFlags::SYN),
        ack: 0,
        options: TcpOptions {
            mptcp: vec![braid_proto::wire::mptcp::MptcpOption::MpJoinSyn {
                backup: false,
                addr_id: 1,
                token: 0x1234_5677,
                nonce: 1,
            }]
            .into(),
            ..TcpOptions::default()
        },
        ..ack
    };
    let n = emit_tcp_packet(&mut pkt, src, dst, 64, &join, &[]).unwrap();
    assert_eq!(
        shards[0].handle_packet_sharded(now, 0, &pkt[..n], false),
        Some(Handoff::To(1))
    );
    // Its own worker refuses the unknown token (MP_TCPRST), even as the first to see it.
    assert_eq!(
        shards[1].handle_packet_sharded(now, 0, &pkt[..n], false),
        None
    );
    assert!(shards[1].poll_transmit(now, &mut out).is_some());
}
