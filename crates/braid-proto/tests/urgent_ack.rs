//! `Endpoint::take_urgent_ack`: a segment out of order, one that fills a gap, or a duplicate
//! leaves its connection owing an ACK at once (RFC 5681 §4.2), which a driver that hands
//! packets over in batches sends before the next packet; in-order data does not (its ACK may
//! wait, as delayed ACKs do). Plain TCP and an MPTCP subflow alike.

#[path = "common/conn_pair.rs"]
mod conn_pair;

use std::net::SocketAddr;

use braid_proto::time::Duration;
use braid_proto::wire::parse_tcp_packet;
use braid_proto::{EndpointConfig, Event};
use conn_pair::EpNet;

/// a's data segments for `bytes` written now, in order, taken off the wire.
fn data_segments(
    net: &mut EpNet,
    conn: braid_proto::ConnectionHandle,
    bytes: usize,
) -> Vec<Vec<u8>> {
    net.a.write(conn, &vec![7u8; bytes]).expect("write");
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    while let Some(t) = net.a.poll_transmit(net.now, &mut buf) {
        let pkt = buf[..t.len].to_vec();
        if parse_tcp_packet(&pkt).is_ok_and(|p| !p.payload.is_empty()) {
            out.push(pkt);
        }
    }
    out
}

/// b's transmits, dropped (the ACKs a driver would send).
fn drain_b(net: &mut EpNet) {
    let mut buf = vec![0u8; 2048];
    while net.b.poll_transmit(net.now, &mut buf).is_some() {}
}

#[test]
fn out_of_order_gap_filling_and_duplicate_segments_owe_an_ack_at_once() {
    for mptcp in [false, true] {
        // Unpaced, so that the sender puts its whole flight on the wire at once.
        let mut a_cfg = EndpointConfig::default();
        a_cfg.tcp.pacing = false;
        let mut net = EpNet::new(a_cfg, EndpointConfig::default(), 0);
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let conn = net.open(server, mptcp, mptcp);
        // Establish (and let the MPTCP handshake settle both ways).
        let mut up = false;
        for _ in 0..200 {
            net.step();
            while let Some(ev) = net.a.poll_event() {
                up |= matches!(ev, Event::Connected(c) if c == conn);
            }
            while net.b.poll_event().is_some() {}
            if up && net.now > braid_proto::Instant::ZERO + Duration::from_millis(50) {
                break;
            }
        }
        assert!(up, "mptcp {mptcp}: connected");
        drain_b(&mut net);
        assert!(!net.b.take_urgent_ack());
        let segs = data_segments(&mut net, conn, 5 * 1400);
        assert!(segs.len() >= 5, "mptcp {mptcp}: {} segments", segs.len());
        // In order: no ACK owed at once.
        net.b.handle_packet(net.now, &segs[0]);
        assert!(!net.b.take_urgent_ack(), "mptcp {mptcp}: in order");
        // The second is lost: the third arrives out of order.
        net.b.handle_packet(net.now, &segs[2]);
        assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: out of order");
        assert!(!net.b.take_urgent_ack(), "mptcp {mptcp}: the flag is taken");
        drain_b(&mut net);
        // Every further segment beyond the gap owes its own ACK.
        net.b.handle_packet(net.now, &segs[3]);
        assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: still out of order");
        drain_b(&mut net);
        // The retransmission fills the gap.
        net.b.handle_packet(net.now, &segs[1]);
        assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: gap filled");
        drain_b(&mut net);
        // A duplicate.
        net.b.handle_packet(net.now, &segs[1]);
        assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: duplicate");
        drain_b(&mut net);
        // In order again.
        net.b.handle_packet(net.now, &segs[4]);
        assert!(!net.b.take_urgent_ack(), "mptcp {mptcp}: in order again");
    }
}
