//! Wire codec: parsing and emitting a full-size MPTCP data segment (IPv4, timestamps, a
//! DSS with a DATA_ACK and a 64-bit mapping, 1448 bytes of payload), and a pure ACK.
//! `cargo bench -p braid-proto --bench wire`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use braid_proto::wire::mptcp::{Dss, DssMapping};
use braid_proto::wire::{
    emit_tcp_packet, parse_tcp_packet, MptcpOption, TcpFlags, TcpOptions, TcpRepr, Timestamps,
};

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fn segment(payload: usize) -> TcpRepr {
    let mut options = TcpOptions {
        timestamps: Some(Timestamps {
            tsval: 1_000_000,
            tsecr: 999_000,
        }),
        ..TcpOptions::default()
    };
    options.mptcp.push(MptcpOption::Dss(Dss {
        data_ack: Some(0x1122_3344_5566_7788),
        data_ack_64: true,
        mapping: (payload > 0).then_some(DssMapping {
            dsn: 0x0102_0304_0506_0708,
            dsn_64: true,
            subflow_seq: 12345,
            data_len: payload as u16,
            checksum: None,
        }),
        data_fin: false,
    }));
    TcpRepr {
        src_port: 40000,
        dst_port: 5201,
        seq: 0x1000_0000,
        ack: 0x2000_0000,
        flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
        window: 4096,
        urgent: 0,
        options,
    }
}

fn wire(c: &mut Criterion) {
    let payload = vec![0xa5u8; 1448];
    let mut group = c.benchmark_group("wire");
    for (name, len) in [("data_1448", 1448), ("ack", 0)] {
        let repr = segment(len);
        let mut buf = vec![0u8; 2048];
        let n = emit_tcp_packet(&mut buf, SRC, DST, 64, &repr, &payload[..len]).expect("emit");
        let packet = buf[..n].to_vec();
        group.throughput(Throughput::Bytes(n as u64));
        group.bench_function(format!("emit_{name}"), |b| {
            b.iter(|| {
                emit_tcp_packet(
                    black_box(&mut buf),
                    SRC,
                    DST,
                    64,
                    black_box(&repr),
                    &payload[..len],
                )
            })
        });
        group.bench_function(format!("parse_{name}"), |b| {
            b.iter(|| parse_tcp_packet(black_box(&packet)).map(|s| s.payload.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
