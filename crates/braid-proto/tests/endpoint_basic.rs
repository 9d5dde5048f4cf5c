//! Endpoint behaviour on raw IP packets: demultiplexing, listeners, resets, events.

use std::net::{IpAddr, SocketAddr};

use braid_proto::wire::{self, TcpFlags, TcpOptions, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionError, ConnectionHandle, Duration, Endpoint, EndpointConfig, Error,
    Event, Instant, ListenOptions, TcpConfig, TcpState,
};

fn ep(seed: u8) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            tcp: TcpConfig {
                time_wait: Duration::from_millis(500),
                ..TcpConfig::default()
            },
            ..Default::default()
        },
        [seed; 32],
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Moves every pending packet between the two endpoints until both are quiet.
fn pump(a: &mut Endpoint, b: &mut Endpoint, now: Instant) -> usize {
    let mut buf = vec![0u8; 2048];
    let mut moved = 0;
    loop {
        let mut any = false;
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            b.handle_packet(now, &buf[..t.len]);
            any = true;
            moved += 1;
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            a.handle_packet(now, &buf[..t.len]);
            any = true;
            moved += 1;
        }
        if !any {
            return moved;
        }
        assert!(moved < 100_000);
    }
}

/// An event with `Closed`'s snapshot left out: compared by handle and error.
#[derive(Debug, PartialEq)]
enum Ev {
    Closed(ConnectionHandle, Option<ConnectionError>),
    Other(Event),
}

fn plain(evs: Vec<Event>) -> Vec<Ev> {
    evs.into_iter()
        .map(|e| match e {
            Event::Closed { conn, error, .. } => Ev::Closed(conn, error),
            e => Ev::Other(e),
        })
        .collect()
}

fn events(e: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn tcp_packet(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
    };
    let mut buf = vec![0u8; 1600];
    let n = wire::emit_tcp_packet(&mut buf, src.ip(), dst.ip(), 64, &repr, payload).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn connect_accept_exchange_and_close_v4() {
    let (mut a, mut b) = (ep(1), ep(2));
    b.listen(addr("0.0.0.0:8080"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("192.0.2.1:0"),
            addr("192.0.2.2:8080"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(events(&mut a), vec![Event::Connected(c)]);
    let ev = events(&mut b);
    let Some(Event::Accepted {
        conn: s,
        local,
        remote,
    }) = ev.first().cloned()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(local, addr("192.0.2.2:8080"));
    assert_eq!(remote.ip(), "192.0.2.1".parse::<IpAddr>().unwrap());
    assert!(remote.port() >= 49152);
    let info = a.conn_info(c).unwrap();
    assert_eq!(info.state, TcpState::Established);
    assert_eq!(info.mss, 1460);
    assert_eq!(info.remote, addr("192.0.2.2:8080"));

    assert_eq!(a.write(c, b"ping").unwrap(), 4);
    pump(&mut a, &mut b, now);
    assert!(events(&mut b).contains(&Event::Readable(s)));
    let mut buf = [0u8; 16];
    assert_eq!(b.read(s, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(b.read(s, &mut buf), Err(Error::WouldBlock));
    assert_eq!(b.write(s, b"pong").unwrap(), 4);
    pump(&mut a, &mut b, now);
    assert_eq!(a.read(c, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"pong");
    assert_eq!(a.conn_info(c).unwrap().bytes_acked, 4);
    assert_eq!(a.conn_info(c).unwrap().bytes_received, 4);

    a.close(c).unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(b.read(s, &mut buf).unwrap(), 0);
    b.close(s).unwrap();
    pump(&mut a, &mut b, now);
    assert!(plain(events(&mut b)).contains(&Ev::Closed(s, None)));
    assert!(plain(events(&mut a)).contains(&Ev::Closed(c, None)));
    assert_eq!(a.read(c, &mut buf), Err(Error::UnknownConnection));
    assert!(a.conn_info(c).is_none());
    // The active closer keeps TIME-WAIT until it expires.
    assert_eq!(a.connection_count(), 1);
    assert_eq!(b.connection_count(), 0);
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    assert_eq!(a.connection_count(), 0);
}

#[test]
fn ipv6_pair_uses_ipv6_mss() {
    let (mut a, mut b) = (ep(3), ep(4));
    b.listen(addr("[2001:db8::2]:443"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("[2001:db8::1]:40000"),
            addr("[2001:db8::2]:443"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(events(&mut a), vec![Event::Connected(c)]);
    assert_eq!(a.conn_info(c).unwrap().mss, 1440);
    assert_eq!(a.conn_info(c).unwrap().local, addr("[2001:db8::1]:40000"));
}

#[test]
fn syn_to_closed_port_is_refused() {
    let (mut a, mut b) = (ep(5), ep(6));
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("192.0.2.1:0"),
            addr("192.0.2.2:9"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(b.stats().resets_sent, 1);
    assert_eq!(
        plain(events(&mut a)),
        vec![Ev::Closed(c, Some(ConnectionError::Refused))]
    );
}

#[test]
fn unknown_ack_segment_gets_rst_with_its_ack_as_seq() {
    let mut b = ep(7);
    let from = addr("198.51.100.7:5555");
    let to = addr("198.51.100.1:80");
    b.handle_packet(
        Instant::ZERO,
        &tcp_packet(from, to, 100, 4242, TcpFlags::ACK, b"x"),
    );
    let mut buf = [0u8; 128];
    let t = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let seg = wire::parse_tcp_packet(&buf[..t.len]).unwrap();
    assert_eq!(seg.tcp.flags.0, TcpFlags::RST);
    assert_eq!(seg.tcp.seq, 4242);
    assert_eq!(seg.tcp.dst_port, 5555);
    assert_eq!(t.dst, from.ip());
    // A segment without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    b.handle_packet(
        Instant::ZERO,
        &tcp_packet(from, to, 100, 0, TcpFlags::FIN, b"abc"),
    );
    let t = b.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    let seg = wire::parse_tcp_packet(&buf[..t.len]).unwrap();
    assert_eq!(seg.tcp.flags.0, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(seg.tcp.seq, 0);
    assert_eq!(seg.tcp.ack, 104);
    // Never a RST for a RST.
    b.handle_packet(
        Instant::ZERO,
        &tcp_packet(from, to, 100, 0, TcpFlags::RST, b""),
    );
    assert!(b.poll_transmit(Instant::ZERO, &mut buf).is_none());
}

#[test]
fn malformed_packets_are_counted_and_dropped() {
    let mut b = ep(8);
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let mut p = tcp_packet(
        addr("10.0.0.1:1000"),
        addr("10.0.0.2:80"),
        1,
        0,
        TcpFlags::SYN,
        b"",
    );
    let last = p.len() - 1;
    p[last] ^= 0xff; // breaks the TCP checksum
    b.handle_packet(Instant::ZERO, &p);
    b.handle_packet(Instant::ZERO, &[]);
    b.handle_packet(Instant::ZERO, &[0x45, 0, 0]);
    b.handle_packet(Instant::ZERO, &[0x60; 7]);
    assert_eq!(b.stats().malformed, 4);
    assert_eq!(b.connection_count(), 0);
    let mut buf = [0u8; 128];
    assert!(b.poll_transmit(Instant::ZERO, &mut buf).is_none());
}

#[test]
fn abort_sends_rst_and_peer_sees_reset() {
    let (mut a, mut b) = (ep(9), ep(10));
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("10.1.0.1:0"),
            addr("10.1.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    let s = match events(&mut b).first() {
        Some(Event::Accepted { conn, .. }) => *conn,
        e => panic!("{e:?}"),
    };
    events(&mut a);
    a.abort(c).unwrap();
    assert_eq!(
        plain(events(&mut a)),
        vec![Ev::Closed(c, Some(ConnectionError::Aborted))]
    );
    pump(&mut a, &mut b, now);
    assert_eq!(
        plain(events(&mut b)),
        vec![Ev::Closed(s, Some(ConnectionError::Reset))]
    );
    assert_eq!(a.connection_count(), 0);
    assert_eq!(b.connection_count(), 0);
}

#[test]
fn ephemeral_ports_are_distinct_and_tuples_exclusive() {
    let mut a = ep(11);
    let now = Instant::ZERO;
    let remote = addr("10.2.0.2:80");
    let c1 = a
        .connect(now, addr("10.2.0.1:0"), remote, ConnectOptions::default())
        .unwrap();
    let c2 = a
        .connect(now, addr("10.2.0.1:0"), remote, ConnectOptions::default())
        .unwrap();
    let p1 = a.conn_info(c1).unwrap().local.port();
    let p2 = a.conn_info(c2).unwrap().local.port();
    assert_ne!(p1, p2);
    let again = a.connect(
        now,
        SocketAddr::new("10.2.0.1".parse().unwrap(), p1),
        remote,
        ConnectOptions::default(),
    );
    assert_eq!(again, Err(Error::AddrInUse));
    assert_eq!(
        a.connect(now, addr("0.0.0.0:0"), remote, ConnectOptions::default()),
        Err(Error::InvalidState)
    );
    a.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    assert_eq!(
        a.listen(addr("0.0.0.0:80"), ListenOptions::default()),
        Err(Error::AddrInUse)
    );
}

#[test]
fn same_seed_same_packets() {
    let run = || {
        let mut a = ep(12);
        let now = Instant::ZERO;
        a.connect(
            now,
            addr("10.3.0.1:0"),
            addr("10.3.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
        let mut buf = vec![0u8; 256];
        let t = a.poll_transmit(now, &mut buf).unwrap();
        buf.truncate(t.len);
        buf
    };
    assert_eq!(run(), run());
}

#[test]
fn write_after_close_is_refused_and_small_buffer_blocks() {
    let (mut a, mut b) = (
        Endpoint::new(
            EndpointConfig {
                tcp: TcpConfig {
                    send_buffer: 1000,
                    ..TcpConfig::default()
                },
                ..Default::default()
            },
            [13; 32],
        ),
        ep(14),
    );
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("10.4.0.1:0"),
            addr("10.4.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(a.write(c, &[0u8; 1500]).unwrap(), 1000);
    assert_eq!(a.write(c, b"more"), Err(Error::WouldBlock));
    events(&mut a);
    pump(&mut a, &mut b, now);
    // One small segment: the peer's ACK is delayed.
    let later = b.poll_timeout().unwrap();
    assert_eq!(later, now + Duration::from_millis(40));
    b.handle_timeout(later);
    pump(&mut a, &mut b, later);
    assert!(events(&mut a).contains(&Event::Writable(c)));
    a.close(c).unwrap();
    assert_eq!(a.write(c, b"late"), Err(Error::InvalidState));
}

#[test]
fn simultaneous_open_between_two_endpoints() {
    let (mut a, mut b) = (ep(15), ep(16));
    let now = Instant::ZERO;
    let (pa, pb) = (addr("10.5.0.1:7001"), addr("10.5.0.2:7002"));
    let ca = a.connect(now, pa, pb, ConnectOptions::default()).unwrap();
    let cb = b.connect(now, pb, pa, ConnectOptions::default()).unwrap();
    // Both SYNs are in flight before either arrives.
    let mut buf = vec![0u8; 2048];
    let ta = a.poll_transmit(now, &mut buf).unwrap();
    let syn_a = buf[..ta.len].to_vec();
    let tb = b.poll_transmit(now, &mut buf).unwrap();
    let syn_b = buf[..tb.len].to_vec();
    a.handle_packet(now, &syn_b);
    b.handle_packet(now, &syn_a);
    pump(&mut a, &mut b, now);
    assert_eq!(events(&mut a), vec![Event::Connected(ca)]);
    assert_eq!(events(&mut b), vec![Event::Connected(cb)]);
    assert_eq!(a.write(ca, b"x").unwrap(), 1);
    pump(&mut a, &mut b, now);
    let mut r = [0u8; 4];
    assert_eq!(b.read(cb, &mut r).unwrap(), 1);
}

#[test]
fn simultaneous_close_between_two_endpoints() {
    let (mut a, mut b) = (ep(17), ep(18));
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("10.6.0.1:0"),
            addr("10.6.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    let s = match events(&mut b).first() {
        Some(Event::Accepted { conn, .. }) => *conn,
        e => panic!("{e:?}"),
    };
    events(&mut a);
    a.close(c).unwrap();
    b.close(s).unwrap();
    // Both FINs cross.
    let mut buf = vec![0u8; 2048];
    let fa = a
        .poll_transmit(now, &mut buf)
        .map(|t| buf[..t.len].to_vec())
        .unwrap();
    let fb = b
        .poll_transmit(now, &mut buf)
        .map(|t| buf[..t.len].to_vec())
        .unwrap();
    a.handle_packet(now, &fb);
    b.handle_packet(now, &fa);
    assert_eq!(a.tcb(c).unwrap().state(), TcpState::Closing);
    assert_eq!(b.tcb(s).unwrap().state(), TcpState::Closing);
    pump(&mut a, &mut b, now);
    assert_eq!(a.tcb(c).unwrap().state(), TcpState::TimeWait);
    assert_eq!(b.tcb(s).unwrap().state(), TcpState::TimeWait);
    assert!(plain(events(&mut a)).contains(&Ev::Closed(c, None)));
    assert!(plain(events(&mut b)).contains(&Ev::Closed(s, None)));
    let later = now + Duration::from_millis(500);
    a.handle_timeout(later);
    b.handle_timeout(later);
    assert_eq!(a.connection_count(), 0);
    assert_eq!(b.connection_count(), 0);
}

#[test]
fn endpoint_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Endpoint>();
    assert_send::<braid_proto::tcp::Tcb>();
}

#[test]
fn closing_without_reading_still_reports_closed() {
    let (mut a, mut b) = (ep(19), ep(20));
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c = a
        .connect(
            now,
            addr("10.7.0.1:0"),
            addr("10.7.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    let s = match events(&mut b).first() {
        Some(Event::Accepted { conn, .. }) => *conn,
        e => panic!("{e:?}"),
    };
    a.write(c, b"unread").unwrap();
    a.close(c).unwrap();
    pump(&mut a, &mut b, now);
    // The server closes without reading the 6 bytes.
    b.close(s).unwrap();
    pump(&mut a, &mut b, now);
    assert!(plain(events(&mut b)).contains(&Ev::Closed(s, None)));
    assert_eq!(b.connection_count(), 0);
    assert!(plain(events(&mut a)).contains(&Ev::Closed(c, None)));
}

#[test]
fn connections_take_turns_sending() {
    let (mut a, mut b) = (ep(21), ep(22));
    b.listen(addr("0.0.0.0:80"), ListenOptions::default())
        .unwrap();
    let now = Instant::ZERO;
    let c1 = a
        .connect(
            now,
            addr("10.8.0.1:0"),
            addr("10.8.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    let c2 = a
        .connect(
            now,
            addr("10.8.0.1:0"),
            addr("10.8.0.2:80"),
            ConnectOptions::default(),
        )
        .unwrap();
    pump(&mut a, &mut b, now);
    a.write(c1, &[1u8; 20_000]).unwrap();
    a.write(c2, &[2u8; 20_000]).unwrap();
    let p1 = a.conn_info(c1).unwrap().local.port();
    let mut buf = vec![0u8; 2048];
    let mut ports = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        let seg = wire::parse_tcp_packet(&buf[..t.len]).unwrap();
        ports.push(seg.tcp.src_port == p1);
    }
    // Turns: runs of one connection's packets (back to back, for a device that writes a
    // run as one GSO packet), none longer than SEND_BURST, and both connections send.
    let runs: Vec<usize> = ports.chunk_by(|x, y| x == y).map(<[bool]>::len).collect();
    assert!(runs.len() >= 2, "{ports:?}");
    assert!(
        runs[0] > 1,
        "a connection sends a run, not one packet: {runs:?}"
    );
    assert!(
        runs.iter().all(|&n| n <= braid_proto::endpoint::SEND_BURST),
        "{runs:?}"
    );
}

/// What a runtime relies on to give up a connect at once (a signal, a connect timeout):
/// `abort` in SYN-SENT closes the connection with `Aborted` at that instant, sends nothing
/// (RFC 9293 §3.10.7.1: no RST from SYN-SENT), leaves no timer, and a SYN/ACK that arrives
/// afterwards is answered with a RST as for any unknown connection. Plain TCP and MPTCP.
#[test]
fn abort_in_syn_sent_closes_at_once_silently() {
    for mptcp in [false, true] {
        let mut a = ep(21);
        let mut now = Instant::ZERO;
        let (local, remote) = (addr("10.3.0.1:0"), addr("10.3.0.2:80"));
        let c = a
            .connect(now, local, remote, ConnectOptions { mptcp })
            .unwrap();
        let mut buf = vec![0u8; 2048];
        let syn = a.poll_transmit(now, &mut buf).expect("the SYN");
        let syn = wire::parse_tcp_packet(&buf[..syn.len]).unwrap();
        assert!(syn.tcp.flags.syn() && !syn.tcp.flags.ack());
        let (port, iss) = (syn.tcp.src_port, syn.tcp.seq);
        // One SYN timeout passes: the SYN goes again (the runtime's hint comes then).
        now += Duration::from_secs(1);
        a.handle_timeout(now);
        assert!(
            a.poll_transmit(now, &mut buf).is_some(),
            "SYN retransmitted"
        );
        events(&mut a);
        a.abort(c).unwrap();
        assert_eq!(
            plain(events(&mut a)),
            vec![Ev::Closed(c, Some(ConnectionError::Aborted))],
            "mptcp {mptcp}"
        );
        assert!(
            a.poll_transmit(now, &mut buf).is_none(),
            "mptcp {mptcp}: no RST"
        );
        assert_eq!(a.connection_count(), 0);
        assert_eq!(a.poll_timeout(), None, "mptcp {mptcp}: no timer left");
        // The peer's late SYN/ACK meets no connection: a RST at its ACK number.
        let synack = tcp_packet(
            remote,
            SocketAddr::new(local.ip(), port),
            7000,
            iss.wrapping_add(1),
            TcpFlags::SYN | TcpFlags::ACK,
            &[],
        );
        a.handle_packet(now, &synack);
        let rst = a.poll_transmit(now, &mut buf).expect("a RST");
        let rst = wire::parse_tcp_packet(&buf[..rst.len]).unwrap();
        assert!(rst.tcp.flags.rst(), "mptcp {mptcp}: {:?}", rst.tcp.flags);
        assert_eq!(rst.tcp.seq, iss.wrapping_add(1));
        assert!(events(&mut a).is_empty());
    }
}
