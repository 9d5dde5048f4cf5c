//! A counting global allocator: [`Counting`] wraps `std::alloc::System` and keeps, per
//! *owner* (a tag the caller sets on its thread with [`set_owner`] before it calls into the
//! code it measures), the live heap bytes and allocations, the live bytes and allocations
//! of *byte buffers* (alignment 1 and at least [`BUFFER_MIN`] bytes: large `Vec<u8>`s;
//! smaller alignment-1 allocations are mostly vectors of `IpAddr`, whose alignment is 1
//! too), the peak of the live bytes, and a histogram of live allocations by (size,
//! alignment). An allocation is
//! credited to the owner set when it is made and debited from the owner set when it is
//! freed: exact as long as each owner frees only what it allocated (an endpoint frees its
//! own memory inside its own calls). Nothing here allocates.
//!
//! Use: `#[global_allocator] static A: Counting = Counting;` in the binary, then
//! [`snapshot`] before and after.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering::Relaxed};

/// The smallest allocation of alignment 1 counted as a byte buffer.
pub const BUFFER_MIN: usize = 1024;

/// Owners: 0 is everything not tagged (the harness itself); the others are the caller's.
pub const OWNERS: usize = 3;

/// Slots of the (size, alignment) histogram: far more than the distinct layouts a run
/// makes live at once (a few hundred). A layout that finds no slot is counted in
/// [`Snapshot::unbinned`].
const SLOTS: usize = 1 << 13;

thread_local! {
    static OWNER: Cell<usize> = const { Cell::new(0) };
}

/// Per-owner counters.
struct PerOwner {
    bytes: AtomicIsize,
    allocs: AtomicIsize,
    buffer_bytes: AtomicIsize,
    buffer_allocs: AtomicIsize,
    peak: AtomicIsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const PER_OWNER: PerOwner = PerOwner {
    bytes: AtomicIsize::new(0),
    allocs: AtomicIsize::new(0),
    buffer_bytes: AtomicIsize::new(0),
    buffer_allocs: AtomicIsize::new(0),
    peak: AtomicIsize::new(0),
};

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_KEY: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicIsize = AtomicIsize::new(0);

static OWNED: [PerOwner; OWNERS] = [PER_OWNER; OWNERS];
static TOTAL: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Histogram keys: `1 << 63 | size << 8 | log2(align)`, 0 for a free slot.
static KEYS: [AtomicU64; SLOTS] = [EMPTY_KEY; SLOTS];
/// Live allocations per slot and owner.
static COUNTS: [AtomicIsize; SLOTS * OWNERS] = [ZERO; SLOTS * OWNERS];
/// Live allocations whose layout found no slot, per owner.
static UNBINNED: [AtomicIsize; OWNERS] = [ZERO; OWNERS];

/// The allocator. See the module docs.
pub struct Counting;

fn key(layout: Layout) -> u64 {
    1 << 63 | (layout.size() as u64) << 8 | u64::from(layout.align().trailing_zeros())
}

/// The histogram slot of `layout`, claimed if new.
fn slot(layout: Layout) -> Option<usize> {
    let k = key(layout);
    let mut i = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 51) as usize % SLOTS;
    for _ in 0..SLOTS {
        match KEYS[i].compare_exchange(0, k, Relaxed, Relaxed) {
            Ok(_) => return Some(i),
            Err(found) if found == k => return Some(i),
            Err(_) => i = (i + 1) % SLOTS,
        }
    }
    None
}

fn owner() -> usize {
    OWNER.try_with(Cell::get).unwrap_or(0).min(OWNERS - 1)
}

fn count(layout: Layout, sign: isize) {
    let o = owner();
    let size = layout.size() as isize * sign;
    let c = &OWNED[o];
    let now = c.bytes.fetch_add(size, Relaxed) + size;
    c.allocs.fetch_add(sign, Relaxed);
    if layout.align() == 1 && layout.size() >= BUFFER_MIN {
        c.buffer_bytes.fetch_add(size, Relaxed);
        c.buffer_allocs.fetch_add(sign, Relaxed);
    }
    let total = TOTAL.fetch_add(size, Relaxed) + size;
    if sign > 0 {
        c.peak.fetch_max(now, Relaxed);
        PEAK.fetch_max(total, Relaxed);
    }
    match slot(layout) {
        Some(s) => COUNTS[s * OWNERS + o].fetch_add(sign, Relaxed),
        None => UNBINNED[o].fetch_add(sign, Relaxed),
    };
}

// SAFETY: every call is passed to `System` unchanged; the counting touches only atomics
// and a const-initialised thread-local without a destructor, and allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `layout` is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(layout, -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(layout, -1);
            // SAFETY: `realloc` succeeded, so `new_size` with this alignment is valid.
            count(
                unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) },
                1,
            );
        }
        p
    }
}

/// Tags the calling thread's allocations and frees from now on with `owner`
/// (`< OWNERS`).
pub fn set_owner(owner: usize) {
    OWNER.with(|o| o.set(owner.min(OWNERS - 1)));
}

/// Resets the peaks to the live figures.
pub fn reset_peak() {
    PEAK.store(TOTAL.load(Relaxed), Relaxed);
    for c in &OWNED {
        c.peak.store(c.bytes.load(Relaxed), Relaxed);
    }
}

/// Live allocations of one layout for each owner.
#[derive(Debug, Clone, Copy)]
pub struct Bin {
    pub size: usize,
    pub align: usize,
    pub live: [isize; OWNERS],
}

/// The counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub bytes: [isize; OWNERS],
    pub allocs: [isize; OWNERS],
    pub buffer_bytes: [isize; OWNERS],
    pub buffer_allocs: [isize; OWNERS],
    /// Each owner's peak of live bytes since the last [`reset_peak`].
    pub peak: [isize; OWNERS],
    /// Live bytes of every owner together, and their peak since the last [`reset_peak`].
    pub total: isize,
    pub total_peak: isize,
    pub bins: Vec<Bin>,
    pub unbinned: [isize; OWNERS],
}

/// The counters now. (The snapshot's own vector is the harness's, owner 0.)
pub fn snapshot() -> Snapshot {
    let mut bins = Vec::with_capacity(SLOTS);
    for (i, k) in KEYS.iter().enumerate() {
        let k = k.load(Relaxed);
        if k == 0 {
            continue;
        }
        let mut live = [0; OWNERS];
        for (o, l) in live.iter_mut().enumerate() {
            *l = COUNTS[i * OWNERS + o].load(Relaxed);
        }
        bins.push(Bin {
            size: ((k & !(1 << 63)) >> 8) as usize,
            align: 1 << (k & 0xff),
            live,
        });
    }
    let each = |f: fn(&PerOwner) -> &AtomicIsize| {
        let mut v = [0; OWNERS];
        for (o, x) in v.iter_mut().enumerate() {
            *x = f(&OWNED[o]).load(Relaxed);
        }
        v
    };
    let mut unbinned = [0; OWNERS];
    for (o, u) in unbinned.iter_mut().enumerate() {
        *u = UNBINNED[o].load(Relaxed);
    }
    Snapshot {
        bytes: each(|c| &c.bytes),
        allocs: each(|c| &c.allocs),
        buffer_bytes: each(|c| &c.buffer_bytes),
        buffer_allocs: each(|c| &c.buffer_allocs),
        peak: each(|c| &c.peak),
        total: TOTAL.load(Relaxed),
        total_peak: PEAK.load(Relaxed),
        bins,
        unbinned,
    }
}

/// The live allocations of `owner` that appeared between `before` and `after`, by layout:
/// (size, align, allocations added), largest byte total first.
pub fn bins_added(before: &Snapshot, after: &Snapshot, owner: usize) -> Vec<(usize, usize, isize)> {
    let mut out: Vec<(usize, usize, isize)> = after
        .bins
        .iter()
        .map(|b| {
            let was = before
                .bins
                .iter()
                .find(|x| x.size == b.size && x.align == b.align)
                .map_or(0, |x| x.live[owner]);
            (b.size, b.align, b.live[owner] - was)
        })
        .filter(|&(_, _, n)| n != 0)
        .collect();
    out.sort_by_key(|&(size, _, n)| std::cmp::Reverse(size as isize * n));
    out
}

/// `VmRSS` and `VmHWM` of this process in bytes, from `/proc/self/status` (0 where absent).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
