//! braid's MPTCP connection against real Linux traffic: the segments one side of a captured
//! Linux 6.18 connection sent (tests/fixtures/*.pcap) are fed to a braid connection playing
//! the other side, with the same key and initial sequence number, so every sequence number,
//! DSN, DATA_ACK and DSS checksum Linux put on the wire must be accepted by braid, and the
//! DSNs braid puts on its own segments must be the ones Linux expected.

#[path = "common/pcap.rs"]
mod pcap;

use std::net::IpAddr;
use std::path::Path;

use braid_proto::crypto::key_idsn;
use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::tcp::TcbParams;
use braid_proto::time::Instant;
use braid_proto::wire::mptcp::{MpCapable, MptcpOption};
use braid_proto::wire::{parse_tcp_packet, TcpRepr};

struct Seg {
    frame: usize,
    src: IpAddr,
    at: Instant,
    tcp: TcpRepr,
    payload: Vec<u8>,
}

fn load(name: &str) -> Vec<Seg> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(format!("{name}.pcap"));
    let bytes = std::fs::read(&path).expect("fixture");
    let file = pcap::parse(&bytes).expect("pcap");
    let first = file.records.first().map_or(0, |r| r.ts_sec);
    file.records
        .iter()
        .filter_map(|r| {
            let ip = pcap::ip_packet(file.linktype, &r.data).ok()??;
            let seg = parse_tcp_packet(ip).ok()?;
            let frac = if file.nanosecond {
                r.ts_frac / 1000
            } else {
                r.ts_frac
            };
            let micros = u64::from(r.ts_sec - first) * 1_000_000 + u64::from(frac);
            Some(Seg {
                frame: r.frame,
                src: match seg.ip {
                    braid_proto::wire::IpRepr::V4(v) => IpAddr::V4(v.src),
                    braid_proto::wire::IpRepr::V6(v) => IpAddr::V6(v.src),
                },
                at: Instant::from_micros(micros),
                tcp: seg.tcp.clone(),
                payload: seg.payload.to_vec(),
            })
        })
        .collect()
}

fn mpc(repr: &TcpRepr) -> Option<MpCapable> {
    repr.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(m) => Some(*m),
        _ => None,
    })
}

fn params(repr_from_peer: &TcpRepr, iss: u32) -> TcbParams {
    TcbParams {
        local_port: repr_from_peer.dst_port,
        remote_port: repr_from_peer.src_port,
        iss,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    }
}

/// Every DSS braid emitted: (data_ack, mapping (dsn, subflow seq, len, checksum?), fin).
type Emitted = Vec<TcpRepr>;

fn drain(c: &mut MptcpConnection, now: Instant, out: &mut Emitted) {
    while let Some((_, r, _)) = c.poll_segment(now) {
        out.push(r);
    }
}

/// braid plays the server of a Linux echo connection (the client sent three or four
/// chunks, read the echo of each, then closed). Returns the connection for more checks.
fn braid_server_against_linux_client(name: &str) -> MptcpConnection {
    let segs = load(name);
    let client_ip = segs.first().expect("frames").src;
    let syn_ack = segs.get(1).expect("SYN/ACK");
    let server_key = mpc(&syn_ack.tcp)
        .and_then(|m| m.sender_key)
        .expect("server key");
    let checksum = mpc(&syn_ack.tcp).is_some_and(|m| m.checksum_required());
    let cfg = MptcpConfig {
        checksum,
        ..MptcpConfig::default()
    };
    let syn = segs.first().expect("SYN");
    let mut server = MptcpConnection::accept(
        &cfg,
        params(&syn.tcp, syn_ack.tcp.seq),
        syn.at,
        &syn.tcp,
        server_key,
    )
    .expect("accepted");
    let mut emitted = Emitted::new();
    let mut received = Vec::new();
    let mut sent_by_client = Vec::new();
    let mut buf = vec![0u8; 65536];
    for s in segs.iter().skip(1).filter(|s| s.src == client_ip) {
        drain(&mut server, s.at, &mut emitted);
        server.handle_segment(s.at, 0, &s.tcp, &s.payload);
        sent_by_client.extend_from_slice(&s.payload);
        loop {
            let n = server.read(&mut buf);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            assert_eq!(server.write(&buf[..n]), n, "echo");
        }
        if server.is_read_finished() {
            server.close();
        }
        drain(&mut server, s.at, &mut emitted);
        if name != "corrupt" {
            assert!(server.error().is_none(), "{name} frame {}", s.frame);
        }
    }
    assert_eq!(received, sent_by_client, "{name}");
    assert!(server.is_read_finished(), "{name}: DATA_FIN");
    assert!(
        server.is_write_finished(),
        "{name}: our DATA_FIN acknowledged"
    );
    if name == "corrupt" {
        return server;
    }
    assert!(server.is_mptcp(), "{name}");
    // The highest DATA_ACK braid sent is the one Linux's server sent.
    let data_acks = |rs: &mut dyn Iterator<Item = &TcpRepr>| {
        rs.flat_map(|r| r.options.mptcp.iter())
            .filter_map(|o| match o {
                MptcpOption::Dss(d) => d.data_ack,
                _ => None,
            })
            .max()
    };
    let linux_max = data_acks(&mut segs.iter().filter(|s| s.src != client_ip).map(|s| &s.tcp));
    assert_eq!(data_acks(&mut emitted.iter()), linux_max, "{name}");
    assert!(server.is_read_finished(), "{name}: DATA_FIN");
    assert!(
        server.is_write_finished(),
        "{name}: our DATA_FIN acknowledged"
    );
    assert_eq!(server.negotiated().map(|n| n.checksum), Some(checksum));
    // braid's first mapping starts at Linux's expected DSN: IDSN + 1 at subflow seq 1.
    let first_map = emitted
        .iter()
        .flat_map(|r| r.options.mptcp.iter())
        .find_map(|o| match o {
            MptcpOption::Dss(d) => d.mapping,
            _ => None,
        })
        .expect("a mapping");
    assert_eq!(first_map.dsn, key_idsn(server_key).wrapping_add(1));
    assert_eq!(first_map.subflow_seq, 1);
    assert_eq!(first_map.checksum.is_some(), checksum);
    server
}

/// braid plays the client of the same connections against the Linux server's segments.
fn braid_client_against_linux_server(name: &str) {
    let segs = load(name);
    let client_ip = segs.first().expect("frames").src;
    let syn = segs.first().expect("SYN");
    let ack3 = segs.get(2).expect("third ACK");
    let client_key = mpc(&ack3.tcp)
        .and_then(|m| m.sender_key)
        .expect("client key");
    let checksum = mpc(&syn.tcp).is_some_and(|m| m.checksum_required());
    let cfg = MptcpConfig {
        checksum,
        ..MptcpConfig::default()
    };
    let syn_ack = segs.get(1).expect("SYN/ACK");
    let mut client = MptcpConnection::connect(&cfg, params(&syn_ack.tcp, syn.tcp.seq), client_key);
    let upload: Vec<u8> = segs
        .iter()
        .filter(|s| s.src == client_ip)
        .flat_map(|s| s.payload.iter().copied())
        .collect();
    let echo: Vec<u8> = segs
        .iter()
        .filter(|s| s.src != client_ip)
        .flat_map(|s| s.payload.iter().copied())
        .collect();
    let mut emitted = Emitted::new();
    drain(&mut client, syn.at, &mut emitted);
    let mut received = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut written = false;
    for s in segs.iter().filter(|s| s.src != client_ip) {
        client.handle_segment(s.at, 0, &s.tcp, &s.payload);
        if client.negotiated().is_some() && !written {
            assert_eq!(client.write(&upload), upload.len());
            written = true;
        }
        loop {
            let n = client.read(&mut buf);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        if received.len() == echo.len() {
            client.close();
        }
        drain(&mut client, s.at, &mut emitted);
        assert!(client.error().is_none(), "{name} frame {}", s.frame);
    }
    assert!(client.is_mptcp(), "{name}");
    assert_eq!(received, echo, "{name}");
    assert!(client.is_read_finished(), "{name}: the server's DATA_FIN");
    assert!(
        client.is_write_finished(),
        "{name}: our DATA_FIN acknowledged"
    );
    // The first data carried MP_CAPABLE with both keys and the data-level length, like
    // Linux's (form 4), with the same checksum Linux computed when the chunk is the same.
    let form4 = emitted
        .iter()
        .filter_map(mpc)
        .find(|m| m.data_len.is_some())
        .expect("MP_CAPABLE with data");
    assert_eq!(form4.sender_key, Some(client_key));
    assert_eq!(form4.checksum.is_some(), checksum);
}

#[test]
fn braid_server_with_a_linux_client() {
    braid_server_against_linux_client("basic");
    braid_server_against_linux_client("checksum");
}

#[test]
fn braid_server_detects_the_corrupted_chunk_and_follows_linux_into_fallback() {
    // corrupt.pcap: the client's second chunk fails its DSS checksum; the Linux client then
    // sends MP_FAIL and an infinite mapping and goes on as plain TCP.
    let server = braid_server_against_linux_client("corrupt");
    let c = server.counters();
    assert_eq!(c.DataCsumErr, 1);
    assert_eq!(c.MPFailRx, 1);
    assert_eq!(c.InfiniteMapRx, 1);
    assert!(server.is_fallback());
}

#[test]
fn braid_client_with_a_linux_server() {
    braid_client_against_linux_server("basic");
    braid_client_against_linux_server("checksum");
}
