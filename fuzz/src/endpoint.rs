//! The `endpoint` fuzz target's harness: drive one `Endpoint` with a fuzzer-chosen sequence of packets, clock advances and
//! application calls. Nothing may panic, `poll_transmit` and `poll_event` must run dry, and
//! every packet the endpoint sends must parse (valid checksums) with the addresses its
//! `Transmit` claims.
//!
//! The endpoint listens on port 80 of `0.0.0.0` and `[::]` and has one active connection
//! from 10.0.0.1 to 10.0.0.2:80. The fuzz input plays every peer. So that mutations get past
//! the checksum and the sequence-number checks, most records describe a segment instead of
//! bytes: the harness fills in addresses and ports of one of a few fixed 4-tuples, takes the
//! sequence number relative to what that peer has sent so far and the acknowledgment number
//! relative to what the endpoint has sent on that tuple, and emits it with `emit_tcp_packet`.
//! Other records are raw bytes (optionally with their checksums fixed up).
//!
//! Input format (big-endian; reading past the end yields zeros, so every prefix is valid):
//!
//! ```text
//! header:  cfg u8, sizes u8, seed u8
//!   cfg   bit0 no SACK, bit1 no timestamps, bit2 no window scaling, bit3 no delayed ACK,
//!         bit4 Nagle, bit5 no pacing, bit6 Reno (else CUBIC), bit7 plain TCP (else the
//!         listeners and every active open offer MPTCP)
//!   sizes bits0-1 send buffer, bits2-3 receive buffer (4 MiB, 64 KiB, 8 KiB, 1500 B),
//!         bits4-5 MSS (1460, 536, 1220, 9000)
//! record:  advance u8, kind u8 (mod 4), body
//!   advance 0: none; 1..=100: that many ms; 101..=200: (n-100) x 100 ms;
//!           201..=254: (n-200) x 10 s; 255: up to the endpoint's poll_timeout()
//!   kind 0, segment: tuple u8, flags u8, seq_delta i16, ack_delta i16, window u16, opts u8,
//!           [mss u16] [wscale u8] [ts: tsval_step u8, tsecr_delta i8]
//!           [sack: n u8 (1 + n mod 3 blocks of left_delta i16, len u16)]
//!           [mptcp: len u8 (mod 41), bytes] [unknown: kind u8, len u8 (mod 9), bytes],
//!           [template: form u8, flags u8, delta i16], payload_len u16 (mod 3000), fill u8
//!       opts bit0 mss, bit1 wscale, bit2 SACK-permitted, bit3 ts, bit4 sack, bit5 mptcp,
//!            bit6 unknown, bit7 an MPTCP option the harness fills in with what it knows of
//!            the connection (the keys, sequence numbers), so that mutations get past the
//!            MPTCP handshake and the data-level checks:
//!         form 0 MP_CAPABLE without keys (a SYN), 1 with the peer's key (a SYN/ACK),
//!              2 with both keys (a third ACK; flags bit1 adds the data length), 3 DSS:
//!              flags bit0 DATA_ACK (of everything the endpoint mapped, + delta), bit1 a
//!              mapping of the payload at the peer's next DSN (+ delta; a delta of 0 then
//!              advances it), bit2 DATA_FIN, bit3 checksum, bit4 8-byte DSN, bit5 8-byte
//!              DATA_ACK; 4 MP_FASTCLOSE with the endpoint's key (+ delta), 5 MP_PRIO
//!              (flags bit0 backup), 6 MP_JOIN SYN with the token of connection number
//!              flags (mod the connections seen; this tuple becomes its subflow; address
//!              id the low byte of delta, flags bit7 backup), 7 MP_JOIN third ACK with
//!              the HMAC of both keys and both nonces, 8 ADD_ADDR of the tuple's remote
//!              address with id flags, port delta (none if 0) and its HMAC, 9 REMOVE_ADDR
//!              of id flags, 10 MP_FAIL at the peer's next DSN (+ delta); DSS flags
//!              bit6 makes the mapping the infinite one (length 0)
//!         (form mod 11; MP_CAPABLE flags is the flag byte; the peer's key is fixed per
//!         tuple and the endpoint's is the one its own MP_CAPABLE carried)
//!       seq = the peer's next sequence number + seq_delta; when seq_delta is 0 the peer's
//!       next sequence number then advances by the segment's length (SYN and FIN count).
//!       ack = the highest sequence number the endpoint sent on the tuple + ack_delta.
//!   kind 1, raw packet: fix u8 (bit0: fix checksums), len u16 (mod 1600), bytes
//!   kind 2, application call: conn u8, op u8 (mod 6), arg u16
//!       op 0 read arg bytes, 1 write arg bytes, 2 close, 3 abort, 4 conn_info, 5 connect
//!       (another active open, v4 or v6 by arg bit0)
//!   kind 3: only the clock advance and timers
//! ```
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::checksums::fix_checksums;
use braid_proto::crypto::{add_addr_hmac, dss_checksum, join_ack_hmac, key_idsn, key_token};
use braid_proto::wire::mptcp::{Dss, DssMapping, MpCapable};
use braid_proto::wire::tcp::UnknownOption;
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, MptcpOption, TcpFlags, TcpRepr};
use braid_proto::{
    CcAlgorithm, ConnectOptions, ConnectionHandle, Duration, Endpoint, EndpointConfig, Event,
    Instant, ListenOptions, TcpConfig,
};

/// Most records run per input (keeps each run short).
const MAX_RECORDS: usize = 512;
/// `poll_transmit` returning more packets than this in one drain is taken as a livelock.
const MAX_DRAIN: usize = 100_000;

const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const LOCAL6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
const SERVER4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const PEER4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const PEER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3));

/// Reads the input; past the end every read yields zeros.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn i16(&mut self) -> i16 {
        self.u16() as i16
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head.to_vec()
    }
}

/// One 4-tuple the fuzz input can speak on, with a loose model of its peer.
struct Tuple {
    local: SocketAddr,
    remote: SocketAddr,
    /// The peer's next sequence number.
    peer_nxt: u32,
    /// The peer's timestamp clock.
    peer_ts: u32,
    /// Highest sequence number (plus length) the endpoint sent on this tuple, if any.
    ep_nxt: Option<u32>,
    /// The endpoint's latest TSval on this tuple.
    ep_tsval: u32,
    /// The peer's initial sequence number (subflow sequence numbers are relative to it).
    peer_isn: u32,
    /// The key the peer offers in an MP_CAPABLE on this tuple, and its MP_JOIN nonce.
    peer_key: u64,
    peer_nonce: u32,
    /// The endpoint's MP_JOIN nonce on this tuple (from its SYN/ACK).
    ep_nonce: u32,
    /// The MPTCP connection (index into `Harness::conns`) this tuple is a subflow of.
    conn: Option<usize>,
}

impl Tuple {
    fn new(local: SocketAddr, remote: SocketAddr, isn: u32) -> Tuple {
        Tuple {
            local,
            remote,
            peer_nxt: isn,
            peer_ts: isn.rotate_left(7),
            ep_nxt: None,
            ep_tsval: 0,
            peer_isn: isn,
            peer_key: 0x5eed_0000_0000_0000 | u64::from(isn) | 1,
            peer_nonce: isn.rotate_left(13) ^ 0x6e6f_6e63,
            ep_nonce: 0,
            conn: None,
        }
    }
}

/// What the harness knows of one MPTCP connection: both keys, the peer's next data
/// sequence number and the end of the data the endpoint mapped.
#[derive(Clone, Copy)]
struct Conn {
    ep_key: u64,
    peer_key: u64,
    peer_dsn: u64,
    ep_data_end: u64,
}

impl Conn {
    fn new(ep_key: u64, peer_key: u64) -> Conn {
        Conn {
            ep_key,
            peer_key,
            peer_dsn: key_idsn(peer_key).wrapping_add(1),
            ep_data_end: key_idsn(ep_key).wrapping_add(1),
        }
    }
}

fn seg_len(tcp: &TcpRepr, payload_len: usize) -> u32 {
    payload_len as u32 + u32::from(tcp.flags.syn()) + u32::from(tcp.flags.fin())
}

/// The MPTCP option of a template record (format in the module docs) for a segment from
/// the peer of `t` with sequence number `seq` and `payload`; `conns` are the MPTCP
/// connections seen so far.
fn mptcp_template(
    t: &mut Tuple,
    conns: &mut [Conn],
    form: u8,
    flags: u8,
    delta: i16,
    seq: u32,
    payload: &[u8],
) -> MptcpOption {
    let delta64 = i64::from(delta) as u64;
    if form == 6 && !conns.is_empty() {
        // A join: this tuple becomes a subflow of the chosen connection.
        t.conn = Some(usize::from(flags) % conns.len());
    }
    // Without a connection (yet), a model from this tuple's key and an unknown peer key.
    let mut scratch = Conn::new(0, t.peer_key);
    let c = match t.conn.and_then(|i| conns.get_mut(i)) {
        Some(c) => c,
        None => &mut scratch,
    };
    match form {
        0..=2 => MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags,
            sender_key: (form >= 1).then_some(t.peer_key),
            receiver_key: (form == 2).then_some(c.ep_key),
            data_len: (form == 2 && flags & 2 != 0).then_some(payload.len() as u16),
            checksum: None,
        }),
        3 => {
            let data_fin = flags & 4 != 0;
            let mapping = (flags & 2 != 0).then(|| {
                let dsn = c.peer_dsn.wrapping_add(delta64);
                // Flags bit6: the infinite mapping (length 0, RFC 8684 §3.7).
                let infinite = flags & 64 != 0;
                let len = if infinite {
                    0
                } else {
                    payload.len() as u16 + u16::from(data_fin)
                };
                // A DATA_FIN alone has subflow sequence number 0 (RFC 8684 §3.3.3).
                let subflow_seq = if payload.is_empty() {
                    0
                } else {
                    seq.wrapping_sub(t.peer_isn)
                };
                let checksum =
                    (flags & 8 != 0).then(|| dss_checksum(dsn, subflow_seq, len, payload));
                if delta == 0 {
                    c.peer_dsn = c.peer_dsn.wrapping_add(u64::from(len));
                }
                if infinite && delta == 0 {
                    c.peer_dsn = c.peer_dsn.wrapping_add(payload.len() as u64);
                }
                DssMapping {
                    dsn,
                    dsn_64: flags & 16 != 0,
                    subflow_seq,
                    data_len: len,
                    checksum,
                }
            });
            MptcpOption::Dss(Dss {
                data_ack: (flags & 1 != 0).then(|| c.ep_data_end.wrapping_add(delta64)),
                data_ack_64: flags & 32 != 0,
                mapping,
                data_fin,
            })
        }
        4 => MptcpOption::MpFastclose {
            receiver_key: c.ep_key.wrapping_add(delta64),
        },
        5 => MptcpOption::MpPrio {
            backup: flags & 1 != 0,
            addr_id: None,
        },
        6 => MptcpOption::MpJoinSyn {
            backup: flags & 128 != 0,
            addr_id: (delta as u16 & 0xff) as u8,
            token: key_token(c.ep_key),
            nonce: t.peer_nonce,
        },
        7 => MptcpOption::MpJoinAck {
            hmac: join_ack_hmac(c.peer_key, c.ep_key, t.peer_nonce, t.ep_nonce),
        },
        8 => {
            let addr = t.remote.ip();
            let port = (delta != 0).then_some(delta as u16);
            let addr_id = flags;
            MptcpOption::AddAddr {
                echo: false,
                addr_id,
                addr,
                port,
                hmac: Some(add_addr_hmac(c.peer_key, c.ep_key, addr_id, addr, port)),
            }
        }
        9 => MptcpOption::RemoveAddr {
            addr_ids: vec![flags],
        },
        _ => MptcpOption::MpFail {
            dsn: c.peer_dsn.wrapping_add(delta64),
        },
    }
}

struct Harness {
    ep: Endpoint,
    now: Instant,
    tuples: Vec<Tuple>,
    /// Every handle the application has seen (closed ones stay, to exercise stale handles).
    handles: Vec<ConnectionHandle>,
    buf: Vec<u8>,
    summary: Summary,
    /// Whether connections offer MPTCP (header `cfg` bit 7 clear).
    mptcp: bool,
    /// The MPTCP connections seen (their keys from the endpoint's MP_CAPABLE).
    conns: Vec<Conn>,
}

fn config(cfg: u8, sizes: u8) -> EndpointConfig {
    let size = |k: u8| match k & 3 {
        0 => 4 << 20,
        1 => 64 << 10,
        2 => 8 << 10,
        _ => 1500,
    };
    let tcp = TcpConfig {
        sack: cfg & 1 == 0,
        timestamps: cfg & 2 == 0,
        window_scaling: cfg & 4 == 0,
        delayed_ack: cfg & 8 == 0,
        nagle: cfg & 16 != 0,
        pacing: cfg & 32 == 0,
        cc: if cfg & 64 != 0 {
            CcAlgorithm::Reno
        } else {
            CcAlgorithm::Cubic
        },
        send_buffer: size(sizes),
        recv_buffer: size(sizes >> 2),
        mss: match (sizes >> 4) & 3 {
            0 => 1460,
            1 => 536,
            2 => 1220,
            _ => 9000,
        },
        ..TcpConfig::default()
    };
    EndpointConfig {
        tcp,
        ..Default::default()
    }
}

/// MPTCP on the listeners and the active opens unless `cfg` bit 7 asks for plain TCP.
fn mptcp(cfg: u8) -> bool {
    cfg & 128 == 0
}

impl Harness {
    fn new(r: &mut Reader<'_>) -> Harness {
        let cfg = r.u8();
        let sizes = r.u8();
        let seed = r.u8();
        let mut ep = Endpoint::new(config(cfg, sizes), [seed; 32]);
        let mptcp = mptcp(cfg);
        let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80);
        ep.listen(any4, ListenOptions { mptcp })
            .expect("listen on 0.0.0.0:80");
        ep.listen(any6, ListenOptions { mptcp })
            .expect("listen on [::]:80");
        let now = Instant::ZERO;
        let server = SocketAddr::new(SERVER4, 80);
        let active = ep
            .connect(
                now,
                SocketAddr::new(LOCAL4, 0),
                server,
                ConnectOptions { mptcp },
            )
            .expect("connect to 10.0.0.2:80");
        let eph = ep
            .conn_info(active)
            .expect("the active connection has info")
            .local;
        let l80 = |ip| SocketAddr::new(ip, 80);
        let tuples = vec![
            Tuple::new(eph, server, 1000),
            Tuple::new(l80(LOCAL4), SocketAddr::new(PEER4, 40001), 0x4000_0000),
            // Sequence numbers about to wrap.
            Tuple::new(l80(LOCAL4), SocketAddr::new(PEER4, 40002), 0xffff_ff00),
            Tuple::new(l80(LOCAL6), SocketAddr::new(PEER6, 40003), 0x8000_0000),
            Tuple::new(l80(LOCAL6), SocketAddr::new(PEER6, 40004), 7),
            // No listener on port 81: answered with RSTs.
            Tuple::new(
                SocketAddr::new(LOCAL4, 81),
                SocketAddr::new(PEER4, 40005),
                99,
            ),
        ];
        Harness {
            ep,
            now,
            tuples,
            handles: vec![active],
            buf: vec![0u8; 65_536],
            summary: Summary::default(),
            mptcp,
            conns: Vec::new(),
        }
    }

    fn advance(&mut self, code: u8) {
        let step = match code {
            0 => Duration::ZERO,
            1..=100 => Duration::from_millis(u64::from(code)),
            101..=200 => Duration::from_millis(u64::from(code - 100) * 100),
            201..=254 => Duration::from_secs(u64::from(code - 200) * 10),
            255 => match self.ep.poll_timeout() {
                Some(t) => t.saturating_duration_since(self.now),
                None => Duration::ZERO,
            },
        };
        self.now += step;
        if self.ep.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ep.handle_timeout(self.now);
        }
    }

    fn segment(&mut self, r: &mut Reader<'_>) {
        let idx = usize::from(r.u8()) % self.tuples.len();
        let flags = TcpFlags(r.u8());
        let seq_delta = r.i16();
        let ack_delta = r.i16();
        let window = r.u16();
        let opts = r.u8();
        let t = &mut self.tuples[idx];
        let mut tcp = TcpRepr {
            src_port: t.remote.port(),
            dst_port: t.local.port(),
            seq: t.peer_nxt.wrapping_add(seq_delta as u32),
            ack: t.ep_nxt.unwrap_or(0).wrapping_add(ack_delta as u32),
            flags,
            window,
            urgent: 0,
            options: Default::default(),
        };
        let o = &mut tcp.options;
        if opts & 1 != 0 {
            o.mss = Some(r.u16());
        }
        if opts & 2 != 0 {
            o.window_scale = Some(r.u8());
        }
        o.sack_permitted = opts & 4 != 0;
        if opts & 8 != 0 {
            t.peer_ts = t.peer_ts.wrapping_add(u32::from(r.u8()));
            let tsecr = t.ep_tsval.wrapping_add(r.u8() as i8 as u32);
            o.timestamps = Some(braid_proto::wire::Timestamps {
                tsval: t.peer_ts,
                tsecr,
            });
        }
        if opts & 16 != 0 {
            let base = t.ep_nxt.unwrap_or(0);
            for _ in 0..1 + r.u8() % 3 {
                let left = base.wrapping_add(r.i16() as u32);
                let right = left.wrapping_add(u32::from(r.u16()));
                o.sack_blocks.push((left, right));
            }
        }
        if opts & 32 != 0 {
            let len = usize::from(r.u8() % 41);
            if let Ok(m) = MptcpOption::parse(&r.bytes(len)) {
                o.mptcp.push(m);
            }
        }
        if opts & 64 != 0 {
            let kind = r.u8();
            let len = usize::from(r.u8() % 9);
            // Kinds the parser interprets (or that end the list) would not round-trip.
            if !matches!(kind, 0..=5 | 8 | 30) {
                o.unknown.push(UnknownOption {
                    kind,
                    data: r.bytes(len),
                });
            }
        }
        let template = (opts & 128 != 0).then(|| (r.u8() % 11, r.u8(), r.i16()));
        let payload_len = usize::from(r.u16() % 3000);
        let fill = r.u8();
        let payload: Vec<u8> = (0..payload_len)
            .map(|i| fill.wrapping_add(i as u8))
            .collect();
        if let Some((form, flags, delta)) = template {
            let m = mptcp_template(t, &mut self.conns, form, flags, delta, tcp.seq, &payload);
            tcp.options.mptcp.push(m);
        }
        if seq_delta == 0 {
            t.peer_nxt = t.peer_nxt.wrapping_add(seg_len(&tcp, payload_len));
        }
        let (src, dst) = (t.remote.ip(), t.local.ip());
        // Options that do not fit the 40-byte area are not sent (the record is a no-op).
        if let Ok(len) = emit_tcp_packet(&mut self.buf, src, dst, 64, &tcp, &payload) {
            let packet = self.buf[..len].to_vec();
            self.ep.handle_packet(self.now, &packet);
        }
    }

    fn raw(&mut self, r: &mut Reader<'_>) {
        let fix = r.u8() & 1 != 0;
        let len = usize::from(r.u16() % 1600);
        let mut packet = r.bytes(len);
        if fix {
            fix_checksums(&mut packet);
        }
        self.ep.handle_packet(self.now, &packet);
    }

    fn app(&mut self, r: &mut Reader<'_>) {
        let conn = self.handles[usize::from(r.u8()) % self.handles.len()];
        let op = r.u8() % 6;
        let arg = r.u16();
        match op {
            0 => {
                let mut buf = vec![0u8; usize::from(arg)];
                if let Ok(n) = self.ep.read(conn, &mut buf) {
                    assert!(n <= buf.len(), "read {n} into {}", buf.len());
                    self.summary.read += n;
                }
            }
            1 => {
                let data: Vec<u8> = (0..usize::from(arg)).map(|i| i as u8).collect();
                if let Ok(n) = self.ep.write(conn, &data) {
                    assert!(n <= data.len(), "wrote {n} of {}", data.len());
                    self.summary.written += n;
                }
            }
            2 => {
                let _ = self.ep.close(conn);
            }
            3 => {
                let _ = self.ep.abort(conn);
            }
            4 => {
                let _ = self.ep.conn_info(conn);
            }
            _ => {
                let (local, remote) = if arg & 1 == 0 {
                    (LOCAL4, SERVER4)
                } else {
                    (LOCAL6, PEER6)
                };
                let remote = SocketAddr::new(remote, 80 + (arg >> 1) % 4);
                if let Ok(h) = self.ep.connect(
                    self.now,
                    SocketAddr::new(local, 0),
                    remote,
                    ConnectOptions { mptcp: self.mptcp },
                ) {
                    if self.handles.len() < 64 {
                        self.handles.push(h);
                    }
                }
            }
        }
    }

    /// Send everything the endpoint has, checking each packet, then take every event.
    fn drain(&mut self) {
        let mut sent = 0;
        while let Some(t) = self.ep.poll_transmit(self.now, &mut self.buf) {
            sent += 1;
            self.summary.sent += 1;
            assert!(sent < MAX_DRAIN, "poll_transmit does not run dry");
            assert!(t.len <= self.buf.len());
            let seg = parse_tcp_packet(&self.buf[..t.len])
                .unwrap_or_else(|e| panic!("the endpoint sent a packet that does not parse: {e}"));
            assert_eq!(seg.ip.src_addr(), t.src);
            assert_eq!(seg.ip.dst_addr(), t.dst);
            let local = SocketAddr::new(t.src, seg.tcp.src_port);
            let remote = SocketAddr::new(t.dst, seg.tcp.dst_port);
            if let Some(tuple) = self
                .tuples
                .iter_mut()
                .find(|x| x.local == local && x.remote == remote)
            {
                let end = seg
                    .tcp
                    .seq
                    .wrapping_add(seg_len(&seg.tcp, seg.payload.len()));
                tuple.ep_nxt = match tuple.ep_nxt {
                    Some(n) if (end.wrapping_sub(n) as i32) <= 0 => Some(n),
                    _ => Some(end),
                };
                if let Some(ts) = seg.tcp.options.timestamps {
                    tuple.ep_tsval = ts.tsval;
                }
                for m in &seg.tcp.options.mptcp {
                    match m {
                        // The sender's key of the endpoint's MP_CAPABLE is its own (on its
                        // SYN/ACK, or its third ACK after a keyless SYN).
                        MptcpOption::MpCapable(MpCapable {
                            sender_key: Some(k),
                            ..
                        }) if tuple.conn.is_none() && self.conns.len() < 64 => {
                            tuple.conn = Some(self.conns.len());
                            self.conns.push(Conn::new(*k, tuple.peer_key));
                        }
                        MptcpOption::MpJoinSynAck { nonce, .. } => tuple.ep_nonce = *nonce,
                        MptcpOption::Dss(Dss {
                            mapping: Some(map), ..
                        }) if map.dsn_64 => {
                            let end = map.dsn.wrapping_add(u64::from(map.data_len));
                            if let Some(c) = tuple.conn.and_then(|i| self.conns.get_mut(i)) {
                                if end > c.ep_data_end {
                                    c.ep_data_end = end;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut events = 0;
        while let Some(ev) = self.ep.poll_event() {
            events += 1;
            assert!(events < MAX_DRAIN, "poll_event does not run dry");
            match ev {
                Event::Accepted { conn, .. } => {
                    self.summary.accepted += 1;
                    if self.handles.len() < 64 {
                        self.handles.push(conn);
                    }
                }
                Event::Connected(_) => self.summary.connected += 1,
                Event::Closed { error, .. } => {
                    self.summary.closed += 1;
                    self.summary.closed_with_error += usize::from(error.is_some());
                }
                _ => {}
            }
        }
    }
}

/// What one run reached, for the seed tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records executed.
    pub records: usize,
    /// Packets the endpoint sent.
    pub sent: usize,
    /// `Event::Connected` events.
    pub connected: usize,
    /// `Event::Accepted` events.
    pub accepted: usize,
    /// `Event::Closed` events, and how many of them carried an error.
    pub closed: usize,
    pub closed_with_error: usize,
    /// Application bytes read and accepted by `write`.
    pub read: usize,
    pub written: usize,
    /// Packets the endpoint counted as malformed.
    pub malformed: u64,
    /// The most handles that were MPTCP connections (not fallen back) at once.
    pub mptcp: usize,
    /// A few of the endpoint's MPTCP counters at the end.
    pub mptcp_counters: MptcpSummary,
}

/// A few of the endpoint's MPTCP counters at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MptcpSummary {
    pub capable_syn_rx: u64,
    pub capable_synack_rx: u64,
    pub capable_ack_rx: u64,
    pub fastclose_rx: u64,
    pub prio_rx: u64,
    pub join_syn_rx: u64,
    pub join_ack_rx: u64,
    pub join_ack_hmac_failure: u64,
    pub add_addr: u64,
    pub rm_addr: u64,
    pub fail_rx: u64,
    pub infinite_map_rx: u64,
    pub data_csum_err: u64,
}

/// Run one fuzz input (format in the module docs). Panics on any violated property.
pub fn run(data: &[u8]) -> Summary {
    let mut r = Reader { data };
    let mut h = Harness::new(&mut r);
    h.drain();
    for _ in 0..MAX_RECORDS {
        if r.is_empty() {
            break;
        }
        let advance = r.u8();
        let kind = r.u8() % 4;
        h.advance(advance);
        match kind {
            0 => h.segment(&mut r),
            1 => h.raw(&mut r),
            2 => h.app(&mut r),
            _ => {}
        }
        h.drain();
        h.summary.records += 1;
        let now_mptcp = h.handles.iter().filter(|&&c| h.ep.is_mptcp(c)).count();
        h.summary.mptcp = h.summary.mptcp.max(now_mptcp);
    }
    h.summary.malformed = h.ep.stats().malformed;
    let c = h.ep.counters();
    h.summary.mptcp_counters = MptcpSummary {
        capable_syn_rx: c.MPCapableSYNRX,
        capable_synack_rx: c.MPCapableSYNACKRX,
        capable_ack_rx: c.MPCapableACKRX,
        fastclose_rx: c.MPFastcloseRx,
        prio_rx: c.MPPrioRx,
        join_syn_rx: c.MPJoinSynRx,
        join_ack_rx: c.MPJoinAckRx,
        join_ack_hmac_failure: c.MPJoinAckHMacFailure,
        add_addr: c.AddAddr,
        rm_addr: c.RmAddr,
        fail_rx: c.MPFailRx,
        infinite_map_rx: c.InfiniteMapRx,
        data_csum_err: c.DataCsumErr,
    };
    h.summary
}
