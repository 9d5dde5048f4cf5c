//! MP_JOIN through the `Endpoint`: the client adds a subflow from a second address, the
//! server demultiplexes the join by token and its new 4-tuple; an unknown token is refused
//! with MP_TCPRST and counted (MPJoinNoTokenFound).

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::{IpAddr, SocketAddr};

use braid_proto::wire::mptcp::{rst_reason, MptcpOption};
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpFlags, TcpOptions, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, Error, Event, Instant,
    ListenOptions,
};
use conn_pair::{byte, EpNet};

const SERVER: &str = "10.0.0.2:80";

/// The shared endpoint pair (100 Mbit/s, 5 ms one way, no loss).
fn new_net() -> EpNet {
    EpNet::new(EndpointConfig::default(), EndpointConfig::default(), 0)
}

#[test]
fn a_joined_subflow_from_a_second_address_carries_data() {
    let mut net = new_net();
    let server: SocketAddr = SERVER.parse().unwrap();
    net.b.listen(server, ListenOptions { mptcp: true }).unwrap();
    let c = net
        .a
        .connect(
            net.now,
            "10.0.0.1:0".parse().unwrap(),
            server,
            ConnectOptions { mptcp: true },
        )
        .unwrap();
    let mut s: Option<ConnectionHandle> = None;
    let mut joined = false;
    let total: u64 = 3 << 20;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut closed = false;
    let mut buf = vec![0u8; 16384];
    for _ in 0..2_000_000 {
        while let Some(ev) = net.a.poll_event() {
            if ev == Event::Connected(c) && !joined {
                let id = net
                    .a
                    .add_subflow(net.now, c, "10.0.1.1:0".parse().unwrap(), server, false)
                    .unwrap();
                assert_eq!(id, 1);
                joined = true;
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                s = Some(conn);
            }
        }
        let up = net
            .a
            .mptcp_connection(c)
            .is_some_and(|m| m.is_subflow_established(1));
        while up && sent < total {
            let n = (total - sent).min(buf.len() as u64) as usize;
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(3, sent + i as u64);
            }
            match net.a.write(c, &buf[..n]) {
                Ok(w) => sent += w as u64,
                Err(_) => break,
            }
        }
        if sent == total && !closed {
            net.a.close(c).unwrap();
            closed = true;
        }
        if let Some(sc) = s {
            loop {
                match net.b.read(sc, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            assert_eq!(*b, byte(3, received + i as u64), "byte-exact");
                        }
                        received += n as u64;
                    }
                }
            }
        }
        if received == total {
            break;
        }
        if !net.step() {
            break;
        }
    }
    assert_eq!(received, total);
    let second: IpAddr = "10.0.1.1".parse().unwrap();
    let first: IpAddr = "10.0.0.1".parse().unwrap();
    assert!(net.up_by_src.get(&second).copied().unwrap_or(0) > 0);
    assert!(net.up_by_src.get(&first).copied().unwrap_or(0) > 0);
    assert_eq!(net.b.counters().MPJoinSynRx, 1);
    assert_eq!(net.b.counters().MPJoinAckRx, 1);
    assert_eq!(net.a.counters().MPJoinSynAckRx, 1);
    assert_eq!(net.b.stats().join_refused, 0);
    let sc = s.expect("accepted");
    let m = net.b.mptcp_connection(sc).expect("mptcp");
    assert!(m.is_subflow_established(1));
    // The server's address id for its (only) address is 0; the client's second address 1.
    assert_eq!(m.subflow_info(1), Some((0, 1, false)));
    assert_eq!(
        net.b.connection_count(),
        1,
        "the join is not a new connection"
    );
}

#[test]
fn join_with_an_unknown_token_is_refused_and_counted() {
    let mut ep = Endpoint::new(EndpointConfig::default(), [3; 32]);
    let server: SocketAddr = SERVER.parse().unwrap();
    ep.listen(server, ListenOptions { mptcp: true }).unwrap();
    let mut options = TcpOptions::default();
    options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 1,
        token: 0xdead_beef,
        nonce: 42,
    });
    let syn = TcpRepr {
        src_port: 40001,
        dst_port: 80,
        seq: 5000,
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        urgent: 0,
        options,
    };
    let client: SocketAddr = "10.0.1.1:40001".parse().unwrap();
    let mut buf = vec![0u8; 1500];
    let n = emit_tcp_packet(&mut buf, client.ip(), server.ip(), 64, &syn, &[]).unwrap();
    ep.handle_packet(Instant::ZERO, &buf[..n]);
    let t = ep.poll_transmit(Instant::ZERO, &mut buf).expect("a reply");
    let rst = parse_tcp_packet(&buf[..t.len]).unwrap();
    assert!(rst.tcp.flags.rst());
    assert!(rst.tcp.options.mptcp.iter().any(|o| matches!(
        o,
        MptcpOption::MpTcpRst {
            reason: rst_reason::MPTCP_SPECIFIC,
            ..
        }
    )));
    assert_eq!(ep.counters().MPJoinNoTokenFound, 1);
    assert_eq!(ep.counters().MPJoinSynRx, 0);
    assert_eq!(ep.stats().join_refused, 1);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn add_subflow_needs_an_mptcp_connection() {
    let mut net = new_net();
    let server: SocketAddr = SERVER.parse().unwrap();
    net.b.listen(server, ListenOptions { mptcp: true }).unwrap();
    let c = net
        .a
        .connect(
            net.now,
            "10.0.0.1:0".parse().unwrap(),
            server,
            ConnectOptions { mptcp: false },
        )
        .unwrap();
    for _ in 0..50 {
        net.step();
    }
    assert_eq!(
        net.a
            .add_subflow(net.now, c, "10.0.1.1:0".parse().unwrap(), server, false),
        Err(Error::InvalidState)
    );
    assert_eq!(
        net.a.add_subflow(
            net.now,
            ConnectionHandle(99),
            "10.0.1.1:0".parse().unwrap(),
            server,
            false
        ),
        Err(Error::UnknownConnection)
    );
}

/// A server whose second address is a `backup` endpoint: a join arriving there is a backup
/// on both sides (the server's SYN/ACK says so with its B bit, the client did not ask), and
/// the server's own data stays off it while the first path works.
#[test]
fn a_join_to_a_server_backup_address_is_a_backup_on_both_sides() {
    use braid_proto::pm::{EndpointFlags, EndpointTable};
    let mut net = new_net();
    let backup_ip: IpAddr = "10.0.1.2".parse().unwrap();
    let mut table = EndpointTable::new();
    table
        .add(backup_ip, None, None, None, EndpointFlags::BACKUP)
        .unwrap();
    net.b = Endpoint::new(
        EndpointConfig {
            pm_table: table,
            ..EndpointConfig::default()
        },
        [2; 32],
    );
    let server: SocketAddr = SERVER.parse().unwrap();
    let second: SocketAddr = SocketAddr::new(backup_ip, 80);
    net.b
        .listen("0.0.0.0:80".parse().unwrap(), ListenOptions { mptcp: true })
        .unwrap();
    let c = net
        .a
        .connect(
            net.now,
            "10.0.0.1:0".parse().unwrap(),
            server,
            ConnectOptions { mptcp: true },
        )
        .unwrap();
    let (mut s, mut joined, mut synack_backup) = (None, false, None);
    let total: u64 = 2 << 20;
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = vec![0u8; 16384];
    for _ in 0..2_000_000 {
        while let Some(ev) = net.a.poll_event() {
            if ev == Event::Connected(c) && !joined {
                net.a
                    .add_subflow(net.now, c, "10.0.1.1:0".parse().unwrap(), second, false)
                    .unwrap();
                joined = true;
            }
        }
        while let Some(ev) = net.b.poll_event() {
            if let Event::Accepted { conn, .. } = ev {
                s = Some(conn);
            }
        }
        for (_, (to_b, pkt)) in net.queue.iter() {
            let p = parse_tcp_packet(pkt).unwrap();
            for o in &p.tcp.options.mptcp {
                if let (false, MptcpOption::MpJoinSynAck { backup, .. }) = (*to_b, o) {
                    synack_backup = Some(*backup);
                }
            }
        }
        let ready = s.is_some_and(|sc| {
            net.b
                .mptcp_connection(sc)
                .is_some_and(|m| m.is_subflow_established(1))
        });
        if let (Some(sc), true) = (s, ready) {
            while sent < total {
                let n = (total - sent).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = byte(5, sent + i as u64);
                }
                match net.b.write(sc, &buf[..n]) {
                    Ok(w) if w > 0 => sent += w as u64,
                    _ => break,
                }
            }
        }
        loop {
            match net.a.read(c, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for (i, b) in buf[..n].iter().enumerate() {
                        assert_eq!(*b, byte(5, received + i as u64), "byte-exact");
                    }
                    received += n as u64;
                }
            }
        }
        if received == total || !net.step() {
            break;
        }
    }
    assert_eq!(received, total);
    assert_eq!(synack_backup, Some(true), "the SYN/ACK carries the B bit");
    let m = net.b.mptcp_connection(s.expect("accepted")).expect("mptcp");
    assert_eq!(m.subflow_info(1).map(|i| i.2), Some(true), "server side");
    let cm = net.a.mptcp_connection(c).expect("mptcp");
    assert_eq!(cm.subflow_info(1).map(|i| i.2), Some(true), "client side");
    // The server's data went on the first subflow only.
    let on_backup = m.subflow(1).map_or(0, |t| t.bytes_sent());
    assert_eq!(on_backup, 0, "the backup carried data");
}
