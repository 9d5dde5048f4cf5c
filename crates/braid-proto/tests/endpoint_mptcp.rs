//! MPTCP through the `Endpoint`: both roles, fallback to plain TCP in both directions, the
//! refused MP_JOIN, MP_FASTCLOSE on abort, the counters; in simulated time over a link with
//! delay, a bottleneck rate and seeded loss.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpFlags, TcpOptions, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionError, Duration, Endpoint, EndpointConfig, Error, Event, Instant,
    ListenOptions,
};
use conn_pair::{App, EpNet};

const CLIENT: &str = "10.0.0.1:0";
const SERVER: &str = "10.0.0.2:80";

fn setup(net: &mut EpNet, client_mptcp: bool, server_mptcp: bool) -> App {
    let server: SocketAddr = SERVER.parse().unwrap();
    net.b
        .listen(
            server,
            ListenOptions {
                mptcp: server_mptcp,
            },
        )
        .unwrap();
    let conn = net
        .a
        .connect(
            net.now,
            CLIENT.parse().unwrap(),
            server,
            ConnectOptions {
                mptcp: client_mptcp,
            },
        )
        .unwrap();
    App {
        conn: Some(conn),
        ..App::default()
    }
}

fn transfer(
    client_mptcp: bool,
    server_mptcp: bool,
    checksum: bool,
    loss: u64,
    bytes: (u64, u64),
) -> (EpNet, App, App) {
    let cfg = EndpointConfig {
        mptcp_checksum: checksum,
        ..EndpointConfig::default()
    };
    let mut net = EpNet::new(cfg.clone(), cfg, loss);
    let (mut ca, mut sb) = App::pair(bytes.0, bytes.1);
    ca.conn = setup(&mut net, client_mptcp, server_mptcp).conn;
    net.run_apps(&mut ca, &mut sb, Duration::from_secs(600));
    for (name, app) in [("client", &ca), ("server", &sb)] {
        assert!(!app.mismatch, "{name}: corrupted bytes");
        assert_eq!(app.closed, Some(None), "{name}: not closed cleanly");
    }
    assert_eq!(ca.received, bytes.1);
    assert_eq!(sb.received, bytes.0);
    (net, ca, sb)
}

#[test]
fn mptcp_both_roles_through_the_endpoint() {
    let (net, ca, sb) = transfer(true, true, false, 0, (4 << 20, 3 << 20));
    assert!(ca.mptcp_seen && sb.mptcp_seen, "both ends run MPTCP");
    let c = net.a.counters();
    let s = net.b.counters();
    assert_eq!(c.MPCapableSYNTX, 1);
    assert_eq!(c.MPCapableSYNACKRX, 1);
    assert_eq!(s.MPCapableSYNRX, 1);
    assert_eq!(s.MPCapableACKRX, 1);
    for k in [c, s] {
        assert_eq!(k.DSSNotMatching, 0);
        assert_eq!(k.DataCsumErr, 0);
        assert_eq!(k.MPCapableFallbackSYNACK + k.MPCapableFallbackACK, 0);
    }
    // Connections are freed after the close; the counters stay.
    assert_eq!(net.a.counters(), c);
}

#[test]
fn mptcp_with_checksums_and_loss() {
    let (net, ca, sb) = transfer(true, true, true, 10, (2 << 20, 1 << 20));
    assert!(ca.mptcp_seen && sb.mptcp_seen);
    assert_eq!(net.b.counters().DataCsumErr, 0);
    assert_eq!(net.a.counters().DataCsumErr, 0);
}

#[test]
fn mptcp_client_falls_back_against_a_plain_listener() {
    let (net, ca, sb) = transfer(true, false, false, 0, (1 << 20, 1 << 20));
    assert!(!ca.mptcp_seen && !sb.mptcp_seen);
    assert_eq!(net.a.counters().MPCapableFallbackSYNACK, 1);
    assert_eq!(net.b.counters().MPCapableSYNRX, 0, "plain listener");
}

#[test]
fn plain_client_is_plain_tcp_on_an_mptcp_listener() {
    let cfg = EndpointConfig::default();
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let (mut ca, mut sb) = App::pair(1 << 20, 1 << 19);
    ca.conn = setup(&mut net, false, true).conn;
    // Stop right after the handshake to look at the server's connection kind.
    net.run_apps(&mut ca, &mut sb, Duration::from_millis(30));
    let s = sb.conn.expect("accepted");
    assert!(net.b.mptcp_connection(s).is_none(), "plain SYN: plain TCP");
    assert!(!net.b.is_mptcp(s));
    net.run_apps(&mut ca, &mut sb, Duration::from_secs(600));
    assert!(!ca.mismatch && !sb.mismatch);
    assert_eq!(sb.received, 1 << 20);
    assert_eq!(ca.received, 1 << 19);
    assert_eq!(net.b.counters().MPCapableSYNRX, 0);
}

#[test]
fn mptcp_listener_counts_and_keeps_connections_apart() {
    let cfg = EndpointConfig::default();
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let server: SocketAddr = SERVER.parse().unwrap();
    net.b.listen(server, ListenOptions { mptcp: true }).unwrap();
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(
            net.a
                .connect(
                    net.now,
                    CLIENT.parse().unwrap(),
                    server,
                    ConnectOptions { mptcp: true },
                )
                .unwrap(),
        );
    }
    // Applications that keep their (last) connections open.
    let (mut x, mut y) = App::pair(u64::MAX, u64::MAX);
    net.run_apps(&mut x, &mut y, Duration::from_millis(100));
    let mut tokens: Vec<u32> = conns
        .iter()
        .map(|c| {
            assert!(net.a.is_mptcp(*c));
            net.a.mptcp_connection(*c).unwrap().local_token()
        })
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 20, "local tokens are unique");
    assert_eq!(net.b.counters().MPCapableSYNRX, 20);
    assert_eq!(net.b.counters().MPCapableACKRX, 20);
    assert_eq!(net.a.counters().MPCapableSYNACKRX, 20);
}

#[test]
fn mp_join_syn_is_refused_with_mp_tcprst() {
    let mut ep = Endpoint::new(EndpointConfig::default(), [3; 32]);
    let server: SocketAddr = SERVER.parse().unwrap();
    ep.listen(server, ListenOptions { mptcp: true }).unwrap();
    let mut options = TcpOptions::default();
    options.mptcp.push(MptcpOption::MpJoinSyn {
        backup: false,
        addr_id: 1,
        token: 0x1234_5678,
        nonce: 42,
    });
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 1000,
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 65535,
        urgent: 0,
        options,
    };
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let mut buf = vec![0u8; 1500];
    let n = emit_tcp_packet(&mut buf, client.ip(), server.ip(), 64, &syn, &[]).unwrap();
    ep.handle_packet(Instant::ZERO, &buf[..n]);
    let t = ep.poll_transmit(Instant::ZERO, &mut buf).expect("a reply");
    let rst = parse_tcp_packet(&buf[..t.len]).unwrap();
    assert!(rst.tcp.flags.rst());
    assert_eq!(rst.tcp.ack, 1001);
    assert!(rst
        .tcp
        .options
        .mptcp
        .iter()
        .any(|o| matches!(o, MptcpOption::MpTcpRst { .. })));
    assert_eq!(ep.stats().join_refused, 1);
    assert_eq!(ep.counters().MPRstTx, 1);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn abort_sends_mp_fastclose_and_the_peer_sees_a_fast_close() {
    let cfg = EndpointConfig::default();
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let (mut ca, mut sb) = App::pair(u64::MAX, 0);
    ca.conn = setup(&mut net, true, true).conn;
    net.run_apps(&mut ca, &mut sb, Duration::from_millis(200));
    assert!(sb.received > 0 && ca.mptcp_seen);
    net.keep_log = true;
    net.a.abort(ca.conn.unwrap()).unwrap();
    net.run_apps(&mut ca, &mut sb, Duration::from_millis(400));
    let fastclose = net.log.iter().any(|(to_b, p)| {
        let seg = parse_tcp_packet(p).unwrap();
        *to_b
            && seg.tcp.flags.rst()
            && seg
                .tcp
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::MpFastclose { .. }))
    });
    assert!(fastclose, "the RST carries MP_FASTCLOSE");
    assert_eq!(net.a.counters().MPFastcloseTx, 1);
    //= rfc8684#3.5
    //= The peer's MP_FASTCLOSE ends the connection as fast-closed, not as a plain reset.
    assert_eq!(sb.closed, Some(Some(ConnectionError::FastClosed)));
    assert_eq!(
        net.a.write(ca.conn.unwrap(), b"x"),
        Err(Error::UnknownConnection)
    );
}

#[test]
fn a_plain_rst_on_an_mptcp_connection_is_a_reset() {
    let cfg = EndpointConfig::default();
    let mut net = EpNet::new(cfg.clone(), cfg, 0);
    let (mut ca, mut sb) = App::pair(64 * 1024, 0);
    ca.to_send = u64::MAX;
    ca.conn = setup(&mut net, true, true).conn;
    net.keep_log = true;
    net.run_apps(&mut ca, &mut sb, Duration::from_millis(300));
    assert!(sb.received > 0 && ca.mptcp_seen);
    // A RST (no MPTCP option) in sequence from the server's side, right after its last
    // segment.
    let (_, last) = net
        .log
        .iter()
        .rev()
        .find(|(to_b, _)| !*to_b)
        .expect("a segment from the server");
    let seg = parse_tcp_packet(last).unwrap();
    let len = seg.payload.len() as u32 + u32::from(seg.tcp.flags.fin());
    let rst = TcpRepr {
        src_port: seg.tcp.src_port,
        dst_port: seg.tcp.dst_port,
        seq: seg.tcp.seq.wrapping_add(len),
        ack: 0,
        flags: TcpFlags(TcpFlags::RST),
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut buf = vec![0u8; 1500];
    let n = emit_tcp_packet(
        &mut buf,
        seg.ip.src_addr(),
        seg.ip.dst_addr(),
        64,
        &rst,
        &[],
    )
    .unwrap();
    let now = net.now;
    net.a.handle_packet(now, &buf[..n]);
    let mut closed = None;
    while let Some(ev) = net.a.poll_event() {
        if let Event::Closed { error, .. } = ev {
            closed = Some(error);
        }
    }
    assert_eq!(closed, Some(Some(ConnectionError::Reset)));
    assert_eq!(net.a.counters().MPFastcloseRx, 0);
}
