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

/// An established connection from a to b (MPTCP or plain TCP), the sender unpaced and with
/// an initial window of 32 segments so that it puts a long flight on the wire at once, b's
/// ACKs so far drained.
fn connected(mptcp: bool) -> (EpNet, braid_proto::ConnectionHandle) {
    let mut a_cfg = EndpointConfig::default();
    a_cfg.tcp.pacing = false;
    a_cfg.tcp.initial_window = 32;
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
    (net, conn)
}

#[test]
fn out_of_order_gap_filling_and_duplicate_segments_owe_an_ack_at_once() {
    for mptcp in [false, true] {
        let (mut net, conn) = connected(mptcp);
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

/// SACK compression: the first three segments beyond a hole each owe their ACK at once (the
/// sender's fast retransmit counts them); after them every fourth does, the others' ACK may
/// wait for the end of the batch (one is still owed); the segment that fills the hole owes
/// its ACK at once, and the next hole starts the count again.
#[test]
fn beyond_a_hole_the_first_three_acks_go_at_once_then_every_fourth() {
    for mptcp in [false, true] {
        let (mut net, conn) = connected(mptcp);
        let segs = data_segments(&mut net, conn, 24 * 1400);
        assert!(segs.len() >= 20, "mptcp {mptcp}: {} segments", segs.len());
        net.b.handle_packet(net.now, &segs[0]);
        assert!(!net.b.take_urgent_ack(), "mptcp {mptcp}: in order");
        // Segment 1 is lost: 2, 3 and 4 are the hole's duplicate ACKs, at once.
        // (Each ACK owed at once is sent before the next segment, as the driver does.)
        for (i, seg) in segs.iter().enumerate().take(5).skip(2) {
            net.b.handle_packet(net.now, seg);
            assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: segment {i}");
            drain_b(&mut net);
        }
        // Then every fourth.
        let mut at_once = Vec::new();
        for (i, seg) in segs.iter().enumerate().take(13).skip(5) {
            net.b.handle_packet(net.now, seg);
            if net.b.take_urgent_ack() {
                at_once.push(i);
                if i < 12 {
                    drain_b(&mut net);
                }
            }
        }
        assert_eq!(at_once, vec![8, 12], "mptcp {mptcp}");
        // An ACK is owed all the same: the batch's end sends it.
        let mut buf = vec![0u8; 2048];
        assert!(
            net.b.poll_transmit(net.now, &mut buf).is_some(),
            "mptcp {mptcp}: the ACK owed goes once polled"
        );
        drain_b(&mut net);
        // The retransmission fills the hole: at once.
        net.b.handle_packet(net.now, &segs[1]);
        assert!(net.b.take_urgent_ack(), "mptcp {mptcp}: the hole filled");
        drain_b(&mut net);
        // A new hole (14 lost): its first three count again.
        for (i, seg) in segs.iter().enumerate().take(18).skip(15) {
            net.b.handle_packet(net.now, seg);
            assert!(
                net.b.take_urgent_ack(),
                "mptcp {mptcp}: new hole, segment {i}"
            );
            drain_b(&mut net);
        }
    }
}
