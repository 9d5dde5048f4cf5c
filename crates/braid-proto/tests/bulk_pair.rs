//! The in-process bulk transfer the `bulk` benchmark times moves every byte, in order,
//! with plain TCP, one MPTCP subflow and two (both carrying data).

#[path = "../benches/support/bulk.rs"]
mod bulk;

#[path = "common/conn_pair.rs"]
mod conn_pair;

use bulk::BulkPair;
use conn_pair::byte;

fn transfer(subflows: usize, bytes: u64) -> BulkPair {
    let mut pair = BulkPair::connected(subflows).expect("handshake");
    let mut bad = None;
    let moved = pair
        .transfer(
            bytes,
            |at, buf| {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = byte(5, at + i as u64);
                }
            },
            |at, buf| {
                for (i, b) in buf.iter().enumerate() {
                    if *b != byte(5, at + i as u64) && bad.is_none() {
                        bad = Some(at + i as u64);
                    }
                }
            },
        )
        .expect("the transfer completes");
    assert_eq!(bad, None, "first wrong byte");
    assert_eq!(moved.received, bytes);
    assert!(moved.packets_ab >= bytes / 1448, "{moved:?}");
    pair
}

#[test]
fn plain_tcp_moves_every_byte() {
    let pair = transfer(0, 8 << 20);
    assert!(!pair.a.is_mptcp(pair.client));
}

#[test]
fn one_subflow_moves_every_byte() {
    for bytes in [1, 1447, 1448, 1449, 8 << 20] {
        let pair = transfer(1, bytes);
        assert!(pair.a.is_mptcp(pair.client));
    }
}

#[test]
fn two_subflows_both_carry_data() {
    let pair = transfer(2, 16 << 20);
    let snap = pair.a.snapshot(pair.client).expect("snapshot");
    assert_eq!(snap.subflows.len(), 2);
    for s in &snap.subflows {
        assert!(s.bytes_sent > 1 << 20, "{:?}", snap.subflows);
    }
}

#[test]
fn a_long_lived_connection_moves_one_batch_after_another() {
    for subflows in [0, 1, 2] {
        let mut pair = BulkPair::connected(subflows).expect("handshake");
        for _ in 0..3 {
            let moved = pair.send_more(2 << 20).expect("the batch arrives");
            assert_eq!(moved.received, 2 << 20);
        }
    }
}
