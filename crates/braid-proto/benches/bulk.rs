//! In-process bulk transfer between two endpoints on one thread, no I/O: the engine's own
//! cost, both ends together (issue 15's target: ≥ 10 Gbit/s of application data with one
//! subflow, and no less with two). `cargo bench -p braid-proto --bench bulk`. Group `bulk`:
//! a fresh connection per 64 MiB transfer (setup and buffer growth included, closed at the
//! end); group `steady`: 64 MiB more at a time on one long-lived connection.

#[path = "support/bulk.rs"]
mod bulk;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use bulk::BulkPair;

/// Bytes per measured transfer.
const BYTES: u64 = 64 << 20;

fn bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk");
    group.throughput(Throughput::Bytes(BYTES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, subflows) in [("tcp", 0), ("mptcp_1_subflow", 1), ("mptcp_2_subflows", 2)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut pair = BulkPair::connected(subflows).expect("handshake");
                    let start = Instant::now();
                    let moved = pair
                        .transfer(BYTES, |_, _| {}, |_, _| {})
                        .expect("transfer");
                    total += start.elapsed();
                    assert_eq!(moved.received, BYTES);
                }
                total
            })
        });
    }
    group.finish();

    // The same on one long-lived connection per case: every sample sends 64 MiB more, so
    // buffers have grown and windows are open (the steady state of a long transfer).
    let mut group = c.benchmark_group("steady");
    group.throughput(Throughput::Bytes(BYTES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, subflows) in [("tcp", 0), ("mptcp_1_subflow", 1), ("mptcp_2_subflows", 2)] {
        let mut pair = BulkPair::connected(subflows).expect("handshake");
        pair.send_more(BYTES).expect("warm-up");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let moved = pair.send_more(BYTES).expect("transfer");
                    assert_eq!(moved.received, BYTES);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
