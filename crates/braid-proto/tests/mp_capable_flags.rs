//! Every version and flag combination of MP_CAPABLE (RFC 8684 §3.1) on the SYN, the SYN/ACK,
//! the third ACK and the first data segment, in both roles, against what Linux does
//! (`net/mptcp/options.c`, `mptcp_parse_option`): an option that does not count is ignored,
//! so the connection is plain TCP. One `Endpoint` in simulated time, its peer scripted
//! packet by packet.
//!
//! The flag byte is `A B C D E F G H` (0x80 .. 0x01). The tables:
//!
//! | segment (role receiving it)   | version | flags                      | outcome                         |
//! |-------------------------------|---------|----------------------------|---------------------------------|
//! | SYN (server)                  | 0       | H                          | plain TCP (no MP_CAPABLE back)  |
//! | SYN                           | 1..=15  | H                          | MPTCP, SYN/ACK says version 1   |
//! | SYN                           | 1       | none, or D..G set          | plain TCP                       |
//! | SYN                           | 1, 2    | B set (with H)             | plain TCP                       |
//! | SYN                           | 1       | A + H                      | MPTCP with checksums            |
//! | SYN                           | 1       | C + H                      | MPTCP; no join to the client's address |
//! | SYN                           | 1       | with a key (12-octet form) | plain TCP                       |
//! | SYN/ACK (client)              | 0, 2    | H                          | plain TCP (third ACK without)   |
//! | SYN/ACK                       | 1       | H                          | MPTCP                           |
//! | SYN/ACK                       | 1       | none, D..G set, B set      | plain TCP                       |
//! | SYN/ACK                       | 1       | A + H                      | MPTCP with checksums            |
//! | SYN/ACK                       | 1       | C + H                      | MPTCP; no join to the server's address |
//! | SYN/ACK                       | 1       | without a key, two keys    | plain TCP                       |
//! | third ACK (server)            | 1       | H, A + H, C + H            | MPTCP                           |
//! | third ACK                     | 0, 2    | H                          | plain TCP                       |
//! | third ACK                     | 1       | none, D..G set, B set      | plain TCP                       |
//! | third ACK                     | 1       | form 2, or form 4 (no data)| plain TCP                       |
//! | first data (third ACK lost)   | 1       | H                          | MPTCP, the data is delivered    |
//! | first data                    | 0, 2    | H                          | plain TCP, the data is delivered|
//! | first data                    | 1       | none, D..G set, B set      | plain TCP, the data is delivered|
//! | first data                    | 1       | form 3 (no data length)    | plain TCP, the data is delivered|

use std::net::SocketAddr;

use braid_proto::wire::mptcp::{MpCapable, MptcpOption};
use braid_proto::wire::{emit_tcp_packet, parse_tcp_packet, TcpFlags, TcpOptions, TcpRepr};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, Error, Instant, ListenOptions,
};

const CLIENT: &str = "10.0.0.1:40000";
const SERVER: &str = "10.0.0.2:80";
/// The scripted peer's key.
const PEER_KEY: u64 = 0xa460_6019_1787_3ac7;

const A: u8 = MpCapable::FLAG_CHECKSUM;
const B: u8 = MpCapable::FLAG_EXTENSIBILITY;
const C: u8 = MpCapable::FLAG_NO_MORE_SUBFLOWS;
const H: u8 = MpCapable::FLAG_HMAC_SHA256;

/// How the connection came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Plain,
    Mptcp {
        checksum: bool,
        /// The peer's C flag was recorded: no join to its initial address.
        no_join: bool,
    },
}

const PLAIN: Outcome = Outcome::Plain;
const MPTCP: Outcome = Outcome::Mptcp {
    checksum: false,
    no_join: false,
};
const MPTCP_CSUM: Outcome = Outcome::Mptcp {
    checksum: true,
    no_join: false,
};
const MPTCP_NO_JOIN: Outcome = Outcome::Mptcp {
    checksum: false,
    no_join: true,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn mpc(repr: &TcpRepr) -> Option<MpCapable> {
    repr.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(m) => Some(*m),
        _ => None,
    })
}

fn segment(
    from: SocketAddr,
    to: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    opt: Option<MpCapable>,
) -> TcpRepr {
    let mut options = TcpOptions::default();
    if flags & TcpFlags::SYN != 0 {
        options.mss = Some(1460);
    }
    options.mptcp.extend(opt.map(MptcpOption::MpCapable));
    TcpRepr {
        src_port: from.port(),
        dst_port: to.port(),
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 65535,
        urgent: 0,
        options,
    }
}

/// Hands `repr` (+ `payload`) from `from` to the endpoint at `to`.
fn deliver(ep: &mut Endpoint, from: SocketAddr, to: SocketAddr, repr: &TcpRepr, payload: &[u8]) {
    let mut buf = vec![0u8; 2048];
    let n = emit_tcp_packet(&mut buf, from.ip(), to.ip(), 64, repr, payload).expect("emit");
    ep.handle_packet(Instant::ZERO, &buf[..n]);
}

/// Every packet the endpoint has to send now.
fn drain(ep: &mut Endpoint) -> Vec<TcpRepr> {
    let mut buf = vec![0u8; 2048];
    let mut v = Vec::new();
    while let Some(t) = ep.poll_transmit(Instant::ZERO, &mut buf) {
        v.push(parse_tcp_packet(&buf[..t.len]).expect("parse").tcp);
    }
    v
}

/// The outcome on `ep` for `conn`, with the C flag checked by asking for a join to
/// `peer_initial` from `local` (refused exactly when the peer set C).
fn outcome(
    ep: &mut Endpoint,
    conn: ConnectionHandle,
    local: SocketAddr,
    peer_initial: SocketAddr,
) -> Outcome {
    if !ep.is_mptcp(conn) {
        return Outcome::Plain;
    }
    let m = ep.mptcp_connection(conn).expect("an MPTCP connection");
    let checksum = m.negotiated().expect("keys").checksum;
    let recorded = m.peer_denies_initial_join();
    let join = ep.add_subflow(Instant::ZERO, conn, local, peer_initial, false);
    let no_join = join == Err(Error::JoinDenied);
    assert_eq!(
        recorded, no_join,
        "the C flag recorded and enforced: {join:?}"
    );
    Outcome::Mptcp { checksum, no_join }
}

/// A listener at SERVER that received `syn_opt` on a SYN; returns the endpoint, the
/// connection, its SYN/ACK and the SYN/ACK's MP_CAPABLE.
fn server_after_syn(syn_opt: Option<MpCapable>) -> (Endpoint, ConnectionHandle, TcpRepr) {
    let mut ep = Endpoint::new(EndpointConfig::default(), [7; 32]);
    ep.listen(sa(SERVER), ListenOptions { mptcp: true })
        .expect("listen");
    let syn = segment(sa(CLIENT), sa(SERVER), 1000, 0, TcpFlags::SYN, syn_opt);
    deliver(&mut ep, sa(CLIENT), sa(SERVER), &syn, &[]);
    let out = drain(&mut ep);
    let synack = out
        .iter()
        .find(|r| r.flags.syn() && r.flags.ack())
        .cloned()
        .expect("a SYN/ACK");
    let conn = ep.connections().next().expect("a connection");
    (ep, conn, synack)
}

/// Server role: the SYN carries `syn_opt`, the third ACK a valid form 3 (if the SYN/ACK
/// had MP_CAPABLE). Checks that the SYN/ACK's MP_CAPABLE, if any, is version 1 with H.
fn server_syn(syn_opt: MpCapable) -> Outcome {
    let (mut ep, conn, synack) = server_after_syn(Some(syn_opt));
    let answer = mpc(&synack);
    let third = answer.map(|a| {
        assert_eq!(a.version, 1, "answered with version 1");
        assert_eq!(a.flags & (B | 0x1f), H, "H alone, no B: {:#04x}", a.flags);
        let key = a.sender_key.expect("the server's key");
        MpCapable::ack(1, H | (a.flags & A), PEER_KEY, key)
    });
    let ack = segment(
        sa(CLIENT),
        sa(SERVER),
        1001,
        synack.seq.wrapping_add(1),
        TcpFlags::ACK,
        third,
    );
    deliver(&mut ep, sa(CLIENT), sa(SERVER), &ack, &[]);
    drain(&mut ep);
    let out = outcome(&mut ep, conn, sa("10.0.0.2:0"), sa(CLIENT));
    if let Some(a) = answer {
        let csum = matches!(out, Outcome::Mptcp { checksum: true, .. });
        assert_eq!(a.flags & A != 0, csum, "the SYN/ACK's A says checksums");
    }
    out
}

/// Server role: a valid SYN, then `opt` on the third ACK (no payload) or, with `data`, on
/// the first data segment (the third ACK lost). Also checks the data is delivered.
fn server_ack(opt: impl Fn(u64) -> MpCapable, data: &[u8]) -> Outcome {
    let (mut ep, conn, synack) = server_after_syn(Some(MpCapable::syn(1, H)));
    let key = mpc(&synack)
        .and_then(|m| m.sender_key)
        .expect("MP_CAPABLE with the server's key");
    let mut flags = TcpFlags::ACK;
    if !data.is_empty() {
        flags |= TcpFlags::PSH;
    }
    let seg = segment(
        sa(CLIENT),
        sa(SERVER),
        1001,
        synack.seq.wrapping_add(1),
        flags,
        Some(opt(key)),
    );
    deliver(&mut ep, sa(CLIENT), sa(SERVER), &seg, data);
    drain(&mut ep);
    if !data.is_empty() {
        let mut buf = [0u8; 64];
        let n = ep.read(conn, &mut buf).expect("the data is readable");
        assert_eq!(&buf[..n], data, "the first data is delivered");
    }
    outcome(&mut ep, conn, sa("10.0.0.2:0"), sa(CLIENT))
}

/// Client role: the SYN/ACK carries `opt`; the third ACK must carry MP_CAPABLE (both keys)
/// exactly when the outcome is MPTCP.
fn client_syn_ack(opt: MpCapable) -> Outcome {
    let mut ep = Endpoint::new(EndpointConfig::default(), [9; 32]);
    let conn = ep
        .connect(
            Instant::ZERO,
            sa("10.0.0.1:0"),
            sa(SERVER),
            ConnectOptions { mptcp: true },
        )
        .expect("connect");
    let out = drain(&mut ep);
    let syn = out.first().cloned().expect("a SYN");
    let syn_mpc = mpc(&syn).expect("MP_CAPABLE on the SYN");
    assert_eq!(
        (syn_mpc.version, syn_mpc.flags),
        (1, H),
        "braid's SYN: v1, H"
    );
    let local = SocketAddr::new(sa(CLIENT).ip(), syn.src_port);
    let synack = segment(
        sa(SERVER),
        local,
        5000,
        syn.seq.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
        Some(opt),
    );
    deliver(&mut ep, sa(SERVER), local, &synack, &[]);
    let out = drain(&mut ep);
    let third = out
        .iter()
        .find(|r| r.flags.ack() && !r.flags.syn())
        .expect("a third ACK");
    let third_mpc = mpc(third);
    let result = outcome(&mut ep, conn, sa("10.0.0.1:0"), sa(SERVER));
    assert_eq!(
        third_mpc.is_some(),
        result != Outcome::Plain,
        "MP_CAPABLE on the third ACK exactly when MPTCP: {third_mpc:?}"
    );
    if let Some(m) = third_mpc {
        assert_eq!((m.version, m.receiver_key), (1, Some(PEER_KEY)));
    }
    result
}

fn syn(version: u8, flags: u8) -> MpCapable {
    MpCapable::syn(version, flags)
}

fn syn_ack(version: u8, flags: u8) -> MpCapable {
    MpCapable::syn_ack(version, flags, PEER_KEY)
}

/// The option a scripted third ACK / first data carries, built from the server's key.
type AckOption = Box<dyn Fn(u64) -> MpCapable>;
/// One row: the option, the outcome, what it tests.
type AckCase = (AckOption, Outcome, &'static str);

/// Unassigned crypto bits D, E, F, G.
const D_TO_G: [u8; 4] = [0x10, 0x08, 0x04, 0x02];

#[test]
fn server_role_mp_capable_on_the_syn() {
    let mut cases: Vec<(MpCapable, Outcome, &str)> = vec![
        (syn(0, H), PLAIN, "version 0 (RFC 6824)"),
        (syn(0, A | H), PLAIN, "version 0 with A"),
        (syn(1, H), MPTCP, "version 1"),
        (syn(1, 0), PLAIN, "no crypto bit"),
        (syn(1, A), PLAIN, "A without H"),
        (syn(1, B | H), PLAIN, "B (extensibility)"),
        (syn(1, A | B | C | H), PLAIN, "B with A and C"),
        (syn(2, B | H), PLAIN, "B on a higher version"),
        (syn(1, A | H), MPTCP_CSUM, "A: checksums"),
        (syn(1, C | H), MPTCP_NO_JOIN, "C: no join to the client"),
        (
            syn(1, A | C | H),
            Outcome::Mptcp {
                checksum: true,
                no_join: true,
            },
            "A and C",
        ),
        (
            MpCapable::syn_ack(1, H, PEER_KEY),
            PLAIN,
            "a key on the SYN (form 2)",
        ),
    ];
    for v in 2..=15 {
        cases.push((syn(v, H), MPTCP, "a higher version"));
    }
    for bit in D_TO_G {
        cases.push((syn(1, bit | H), PLAIN, "D..G set with H"));
        cases.push((syn(1, bit), PLAIN, "D..G set without H"));
    }
    for (opt, want, what) in cases {
        assert_eq!(
            server_syn(opt),
            want,
            "{what}: v{} flags {:#04x}",
            opt.version,
            opt.flags
        );
    }
}

#[test]
fn plain_syn_is_plain_tcp() {
    let (mut ep, conn, synack) = server_after_syn(None);
    assert!(mpc(&synack).is_none());
    assert_eq!(outcome(&mut ep, conn, sa("10.0.0.2:0"), sa(CLIENT)), PLAIN);
}

#[test]
fn client_role_mp_capable_on_the_syn_ack() {
    let mut cases: Vec<(MpCapable, Outcome, &str)> = vec![
        (syn_ack(0, H), PLAIN, "version 0"),
        (syn_ack(1, H), MPTCP, "version 1"),
        (syn_ack(1, 0), PLAIN, "no crypto bit"),
        (syn_ack(1, A), PLAIN, "A without H"),
        (syn_ack(1, B | H), PLAIN, "B (extensibility)"),
        (syn_ack(1, A | H), MPTCP_CSUM, "A: checksums"),
        (syn_ack(1, C | H), MPTCP_NO_JOIN, "C: no join to the server"),
        (syn(1, H), PLAIN, "no key (form 1)"),
        (
            MpCapable::ack(1, H, PEER_KEY, 1),
            PLAIN,
            "two keys (form 3)",
        ),
    ];
    for v in 2..=15 {
        cases.push((syn_ack(v, H), PLAIN, "a version other than 1"));
    }
    for bit in D_TO_G {
        cases.push((syn_ack(1, bit | H), PLAIN, "D..G set with H"));
    }
    for (opt, want, what) in cases {
        assert_eq!(
            client_syn_ack(opt),
            want,
            "{what}: v{} flags {:#04x}",
            opt.version,
            opt.flags
        );
    }
}

#[test]
fn server_role_mp_capable_on_the_third_ack() {
    let ack =
        |version: u8, flags: u8| move |key: u64| MpCapable::ack(version, flags, PEER_KEY, key);
    let mut cases: Vec<AckCase> = vec![
        (Box::new(ack(1, H)), MPTCP, "version 1"),
        // The SYN decided checksums and C; the third ACK's A and C change nothing.
        (Box::new(ack(1, A | H)), MPTCP, "A on the third ACK only"),
        (Box::new(ack(1, C | H)), MPTCP, "C on the third ACK only"),
        (Box::new(ack(0, H)), PLAIN, "version 0"),
        (Box::new(ack(2, H)), PLAIN, "version 2"),
        (Box::new(ack(1, 0)), PLAIN, "no crypto bit"),
        (Box::new(ack(1, B | H)), PLAIN, "B"),
        (
            Box::new(|_| MpCapable::syn_ack(1, H, PEER_KEY)),
            PLAIN,
            "one key (form 2)",
        ),
        (
            Box::new(|key| MpCapable::ack_with_data(1, H, PEER_KEY, key, 0, None)),
            PLAIN,
            "form 4 without data",
        ),
    ];
    for bit in D_TO_G {
        cases.push((Box::new(ack(1, bit | H)), PLAIN, "D..G set"));
    }
    for (opt, want, what) in cases {
        assert_eq!(server_ack(opt, &[]), want, "{what}");
    }
}

#[test]
fn server_role_mp_capable_on_the_first_data() {
    let data = b"first data";
    let len = data.len() as u16;
    let form4 = |version: u8, flags: u8| {
        move |key: u64| MpCapable::ack_with_data(version, flags, PEER_KEY, key, len, None)
    };
    let mut cases: Vec<AckCase> = vec![
        (Box::new(form4(1, H)), MPTCP, "version 1"),
        (Box::new(form4(0, H)), PLAIN, "version 0"),
        (Box::new(form4(2, H)), PLAIN, "version 2"),
        (Box::new(form4(1, 0)), PLAIN, "no crypto bit"),
        (Box::new(form4(1, B | H)), PLAIN, "B"),
        (
            Box::new(|key| MpCapable::ack(1, H, PEER_KEY, key)),
            PLAIN,
            "form 3 on data",
        ),
    ];
    for bit in D_TO_G {
        cases.push((Box::new(form4(1, bit | H)), PLAIN, "D..G set"));
    }
    for (opt, want, what) in cases {
        assert_eq!(server_ack(opt, data), want, "{what}");
    }
}
