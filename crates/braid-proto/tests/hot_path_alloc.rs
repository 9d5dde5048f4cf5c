//! Nothing is allocated per packet on the hot path (issue 15): once a bulk transfer between
//! two in-process endpoints is in its steady state (buffers grown, windows open), moving
//! 8 MiB more, thousands of packets each way, makes no heap allocation at all, with plain
//! TCP, one MPTCP subflow and two. A counting global allocator counts the allocations this
//! thread makes while the transfer runs. (Before: one MPTCP subflow made 425 allocations
//! per 5,815 packets, two subflows 3,407 per 5,822: the options of every segment built or
//! parsed with MPTCP options, the scheduler's candidate list, and the data-level
//! reassembly's list of gaps whenever a subflow's data filled a hole.)

// Shared with the benchmark and `bulk_pair`, which use the parts this test does not.
#[allow(dead_code)]
#[path = "../benches/support/bulk.rs"]
mod bulk;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use braid_proto::sched::SchedulerKind;
use braid_proto::EndpointConfig;
use bulk::BulkPair;

struct Counting;

thread_local! {
    /// Allocations (and reallocations) made on this thread while counting is on.
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn note() {
    // `try_with`: a thread being torn down has no slot left, and counts nothing.
    let _ = COUNT.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; counting touches only a
// thread-local `Cell` and allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract for `alloc` holds for `System` as well.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above; `ptr` came from this allocator, hence from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
    (n, out)
}

const MIB: u64 = 1 << 20;

/// Moves 8 MiB over a warmed-up pair with `subflows` subflows (0: plain TCP) under
/// `scheduler` and checks that no allocation was made.
fn allocates_nothing(subflows: usize, scheduler: SchedulerKind) {
    let cfg = EndpointConfig {
        scheduler,
        ..EndpointConfig::default()
    };
    let mut pair = BulkPair::with_config(subflows, cfg).expect("handshake");
    // Warm up: rings grow to what the windows need, queues to their working sizes (the
    // queue of mappings in flight grows with the window for a while: 128 MiB, and the pair
    // is deterministic).
    for _ in 0..16 {
        pair.send_more(8 * MIB).expect("warm-up transfer");
    }
    let (allocs, moved) = allocations(|| pair.send_more(8 * MIB).expect("measured transfer"));
    assert_eq!(moved.received, 8 * MIB);
    let packets = moved.packets_ab + moved.packets_ba;
    assert!(packets > 5_000, "{scheduler:?}: {packets} packets");
    assert_eq!(
        allocs, 0,
        "{subflows} subflows, {scheduler:?}: {allocs} allocations over {packets} packets"
    );
}

#[test]
fn tcp_bulk_allocates_nothing_per_packet() {
    allocates_nothing(0, SchedulerKind::Default);
}

#[test]
fn mptcp_one_subflow_bulk_allocates_nothing_per_packet() {
    allocates_nothing(1, SchedulerKind::Default);
}

#[test]
fn mptcp_two_subflows_bulk_allocates_nothing_per_packet() {
    allocates_nothing(2, SchedulerKind::Default);
}

#[test]
fn every_built_in_scheduler_allocates_nothing_per_packet() {
    for kind in [
        SchedulerKind::MinRtt,
        SchedulerKind::RoundRobin,
        SchedulerKind::Redundant,
        SchedulerKind::Blest,
    ] {
        allocates_nothing(2, kind);
    }
}

#[test]
fn the_counter_sees_an_allocation() {
    let (n, v) = allocations(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(n >= 1);
}
