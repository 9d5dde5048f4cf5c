//! Memory per connection (issue 15: "bytes per idle connection with two subflows (buffers
//! excluded) and 10,000 concurrent connections in one process (in the simulator), total
//! memory reported"; target ≤ 8 KiB per idle two-subflow connection, buffers excluded).
//!
//! `cargo bench -p braid-proto --bench memory [-- --json] [--n N] [--many M] [--top K]`
//!
//! Two whole endpoints run in this process (`support/many_pair.rs`) under a counting
//! global allocator (`support/counting_alloc.rs`) that tells the client's heap from the
//! server's. Measured:
//! 1. **Idle connections** (plain TCP, MPTCP with 1 and 2 subflows): N connections open
//!    (first figure: just established, nothing sent), then exchange 100 bytes each way, all
//!    read, and settle (delayed ACKs sent, nothing in flight, no timer within 10 s); live
//!    heap now minus before the first connection, over N, at each endpoint. The endpoint's
//!    own tables (connection slots, 4-tuple and token maps, the agenda) are in it, as they
//!    grow with the connections.
//!    **Buffers**: the send and receive buffers (`tcp::SendBuffer`, `tcp::RecvBuffer`: at
//!    each subflow's TCB and, for MPTCP, at the data level in `DataSend` / `DataRecv`) keep
//!    their bytes in one `Vec<u8>` each, allocated on the first byte (a ring of 16 KiB at
//!    first, `MIN_SEND_RING` / `MIN_RECV_RING`, grown as the bytes held need) and kept
//!    after it drained. No public accessor reaches them from an `Endpoint`, so they are counted by
//!    layout: allocations of alignment 1 and at least 1 KiB (`BUFFER_MIN`). Nothing else
//!    a connection holds is such an allocation (its other alignment-1 allocations are small
//!    vectors holding `IpAddr`s, e.g. `Conn::addr_ids`, 18 B an entry); "excl. buffers" is
//!    the rest. The table in part 3 shows every layout, so the split can be checked.
//! 2. **10,000 concurrent MPTCP connections with 2 subflows each** (batches of 500
//!    handshakes): every one checked established with both subflows at both ends; live heap
//!    per endpoint and in total, peak heap, VmRSS / VmHWM, wall-clock time to open them.
//! 3. **Where the bytes go**: the live allocations a connection added, by (size, align),
//!    per connection, named where a public type has that size (`size_of`); and `size_of`
//!    of the per-connection structures that are public. For call sites, `--profile` runs
//!    only the idle two-subflow case and exits with everything still allocated, so that a
//!    heap profiler's "leaked" report is what the idle connections hold:
//!    `heaptrack target/release/deps/memory-* --profile --n 1000`, then
//!    `heaptrack_print -l 1 -p 0 -a 0 -T 0 -n 100 -s 50 FILE`.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it makes a quick pass with few
//! connections.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/many_pair.rs"]
mod many_pair;

use std::fmt::Write as _;
use std::mem::size_of;
use std::time::Instant as WallClock;

use braid_proto::EndpointConfig;
use counting_alloc::{bins_added, reset_peak, rss, snapshot, Counting, Snapshot};
use many_pair::{Kind, ManyPair, Side};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes each way on every connection before it is weighed idle.
const EXCHANGE: usize = 100;
/// Handshakes in flight at once.
const BATCH: usize = 500;
/// Issue 15's target for an idle two-subflow connection, buffers excluded.
const TARGET: usize = 8 * 1024;

fn owner(side: Side) {
    counting_alloc::set_owner(side as usize);
}

struct Args {
    json: bool,
    /// `--profile`: only the idle two-subflow run, then exit with everything still
    /// allocated (for `heaptrack` / `valgrind --tool=massif`: what is "leaked" at exit is
    /// what the idle connections hold).
    profile: bool,
    n: usize,
    many: usize,
    top: usize,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let full = argv.iter().any(|a| a == "--bench");
    let mut a = Args {
        json: argv.iter().any(|a| a == "--json"),
        profile: argv.iter().any(|a| a == "--profile"),
        n: if full { 1000 } else { 50 },
        many: if full { 10_000 } else { 200 },
        top: 16,
    };
    let value = |name: &str| {
        argv.iter()
            .position(|x| x == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(v) = value("--n") {
        a.n = v.max(1);
    }
    if let Some(v) = value("--many") {
        a.many = v.max(1);
    }
    if let Some(v) = value("--top") {
        a.top = v;
    }
    a
}

/// `size_of` of the per-connection structures that can be named from outside the crate.
fn sizes() -> Vec<(&'static str, usize)> {
    use braid_proto::{cc, mptcp, pm, sched, tcp};
    vec![
        ("braid_proto::tcp::Tcb", size_of::<tcp::Tcb>()),
        ("braid_proto::tcp::TcpConfig", size_of::<tcp::TcpConfig>()),
        ("braid_proto::tcp::SendBuffer", size_of::<tcp::SendBuffer>()),
        ("braid_proto::tcp::RecvBuffer", size_of::<tcp::RecvBuffer>()),
        ("braid_proto::tcp::RangeSet", size_of::<tcp::RangeSet>()),
        (
            "braid_proto::tcp::RttEstimator",
            size_of::<tcp::RttEstimator>(),
        ),
        (
            "braid_proto::mptcp::MptcpConnection",
            size_of::<mptcp::MptcpConnection>(),
        ),
        (
            "braid_proto::mptcp::MptcpConfig",
            size_of::<mptcp::MptcpConfig>(),
        ),
        (
            "braid_proto::mptcp::MptcpCounters",
            size_of::<mptcp::MptcpCounters>(),
        ),
        (
            "braid_proto::mptcp::handshake::MpCapableHandshake",
            size_of::<mptcp::handshake::MpCapableHandshake>(),
        ),
        (
            "braid_proto::mptcp::send::DataSend",
            size_of::<mptcp::send::DataSend>(),
        ),
        (
            "braid_proto::mptcp::recv::DataRecv",
            size_of::<mptcp::recv::DataRecv>(),
        ),
        (
            "braid_proto::mptcp::mapping::TxMap",
            size_of::<mptcp::mapping::TxMap>(),
        ),
        (
            "braid_proto::mptcp::mapping::RxMap",
            size_of::<mptcp::mapping::RxMap>(),
        ),
        (
            "braid_proto::mptcp::dsn::DsnSpace",
            size_of::<mptcp::dsn::DsnSpace>(),
        ),
        ("braid_proto::cc::Cubic", size_of::<cc::Cubic>()),
        ("braid_proto::cc::Reno", size_of::<cc::Reno>()),
        (
            "braid_proto::sched::KernelDefault",
            size_of::<sched::KernelDefault>(),
        ),
        ("braid_proto::pm::KernelPm", size_of::<pm::KernelPm>()),
        ("braid_proto::Endpoint", size_of::<braid_proto::Endpoint>()),
    ]
}

/// The public types a connection keeps in an allocation of their own (`Box<dyn ...>` or
/// `Box<T>`), by which an allocation of the same size is named.
fn boxed() -> Vec<(&'static str, usize)> {
    use braid_proto::{cc, mptcp, pm, sched};
    vec![
        ("Box<MptcpConnection>", size_of::<mptcp::MptcpConnection>()),
        ("Box<dyn CongestionControl> (Cubic)", size_of::<cc::Cubic>()),
        ("Box<dyn CongestionControl> (Reno)", size_of::<cc::Reno>()),
        (
            "Box<dyn Scheduler> (KernelDefault)",
            size_of::<sched::KernelDefault>(),
        ),
        ("Box<dyn PathManager> (KernelPm)", size_of::<pm::KernelPm>()),
    ]
}

/// A name for an allocation of `size` bytes and alignment `align`, where its layout tells.
fn label(size: usize, align: usize, boxed: &[(&'static str, usize)]) -> String {
    if align == 1 {
        return if size >= counting_alloc::BUFFER_MIN {
            "buffer: a SendBuffer or RecvBuffer Vec<u8>".into()
        } else {
            "alignment 1, < 1 KiB: not counted as a buffer (e.g. Vec<(u8, IpAddr)>)".into()
        };
    }
    let names: Vec<&str> = boxed
        .iter()
        .filter(|(_, s)| *s == size)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("{}?", names.join(" or "))
    }
}

/// One endpoint's figures over N connections.
#[derive(Debug, Clone, Default)]
struct SideFigures {
    /// Per connection, just established (nothing sent).
    established: f64,
    /// Per connection, idle after the exchange: all heap, byte buffers, the rest.
    idle: f64,
    buffers: f64,
    excl_buffers: f64,
    allocs: f64,
    buffer_allocs: f64,
    /// (size, align, allocations per connection, bytes per connection, label)
    top: Vec<(usize, usize, f64, f64, String)>,
}

struct Idle {
    kind: Kind,
    n: usize,
    client: SideFigures,
    server: SideFigures,
    /// Time to the next timer once settled.
    next_timer: Option<f64>,
}

fn per_conn(before: &Snapshot, after: &Snapshot, side: Side, n: usize) -> SideFigures {
    let o = side as usize;
    let n = n as f64;
    let bytes = (after.bytes[o] - before.bytes[o]) as f64 / n;
    let buffers = (after.buffer_bytes[o] - before.buffer_bytes[o]) as f64 / n;
    SideFigures {
        established: 0.0,
        idle: bytes,
        buffers,
        excl_buffers: bytes - buffers,
        allocs: (after.allocs[o] - before.allocs[o]) as f64 / n,
        buffer_allocs: (after.buffer_allocs[o] - before.buffer_allocs[o]) as f64 / n,
        top: Vec::new(),
    }
}

fn top(
    before: &Snapshot,
    after: &Snapshot,
    side: Side,
    n: usize,
    k: usize,
) -> Vec<(usize, usize, f64, f64, String)> {
    let boxed = boxed();
    bins_added(before, after, side as usize)
        .into_iter()
        .take(k)
        .map(|(size, align, count)| {
            let per = count as f64 / n as f64;
            (
                size,
                align,
                per,
                per * size as f64,
                label(size, align, &boxed),
            )
        })
        .collect()
}

fn idle(kind: Kind, n: usize, k: usize, profile: bool) -> Result<Idle, String> {
    let mut pair = ManyPair::new(kind, EndpointConfig::default(), n, owner);
    let before = snapshot();
    pair.open(n, BATCH)?;
    pair.settle()?;
    let established = snapshot();
    pair.exchange(EXCHANGE)?;
    let next = pair.settle()?;
    pair.check_idle()?;
    let after = snapshot();
    if profile {
        let f = per_conn(&before, &after, Side::Client, n);
        println!(
            "{} x {n}: {:.0} B per connection at the client ({:.0} excl. buffers); exiting with everything allocated",
            kind.name(),
            f.idle,
            f.excl_buffers
        );
        std::process::exit(0);
    }
    let mut fig = [Side::Client, Side::Server].map(|side| {
        let mut f = per_conn(&before, &after, side, n);
        f.established = per_conn(&before, &established, side, n).idle;
        f.top = top(&before, &after, side, n, k);
        f
    });
    drop(pair);
    let [client, server] = std::mem::take(&mut fig);
    Ok(Idle {
        kind,
        n,
        client,
        server,
        next_timer: next.map(|d| d.as_secs_f64()),
    })
}

struct Many {
    n: usize,
    open_secs: f64,
    sim_secs: f64,
    rounds: u64,
    /// Live heap of the client, the server and both, established (nothing sent) and idle
    /// after the exchange.
    established: [isize; 3],
    idle: [isize; 3],
    idle_buffers: [isize; 3],
    /// Peak heap (client, server, both) since the start.
    peak: [isize; 3],
    rss_before: u64,
    rss_established: u64,
    rss_idle: u64,
    hwm: u64,
}

fn many(n: usize) -> Result<Many, String> {
    let (rss_before, _) = rss();
    let mut pair = ManyPair::new(Kind::Mptcp2, EndpointConfig::default(), n, owner);
    reset_peak();
    let before = snapshot();
    let start = WallClock::now();
    pair.open(n, BATCH)?;
    let open_secs = start.elapsed().as_secs_f64();
    let rounds = pair.rounds;
    let sim_secs = pair
        .now
        .saturating_duration_since(braid_proto::Instant::ZERO)
        .as_secs_f64();
    pair.settle()?;
    for (side, conns) in [(Side::Client, &pair.clients), (Side::Server, &pair.servers)] {
        if conns.len() != n {
            return Err(format!("{side:?}: {} connections of {n}", conns.len()));
        }
        if let Some(c) = conns.iter().find(|&&c| !pair.is_ready(side, c)) {
            return Err(format!("{side:?} {c:?}: not established with 2 subflows"));
        }
    }
    let established = snapshot();
    let (rss_established, _) = rss();
    pair.exchange(EXCHANGE)?;
    pair.settle()?;
    pair.check_idle()?;
    let idle = snapshot();
    let (rss_idle, hwm) = rss();
    let live = |s: &Snapshot, f: fn(&Snapshot) -> &[isize; 3]| {
        let client = f(s)[1] - f(&before)[1];
        let server = f(s)[2] - f(&before)[2];
        [client, server, client + server]
    };
    let many = Many {
        n,
        open_secs,
        sim_secs,
        rounds,
        established: live(&established, |s| &s.bytes),
        idle: live(&idle, |s| &s.bytes),
        idle_buffers: live(&idle, |s| &s.buffer_bytes),
        peak: [
            idle.peak[1] - before.bytes[1],
            idle.peak[2] - before.bytes[2],
            idle.total_peak - before.total,
        ],
        rss_before,
        rss_established,
        rss_idle,
        hwm,
    };
    drop(pair);
    Ok(many)
}

fn mib(b: impl Into<f64>) -> f64 {
    b.into() / (1024.0 * 1024.0)
}

fn text(sizes: &[(&'static str, usize)], many: &Many, idles: &[Idle]) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "braid-proto memory (issue 15)\n");
    let _ = writeln!(
        w,
        "1. Idle connections: live heap per connection (N = {}; {EXCHANGE} B each way, all read, settled)",
        idles.first().map_or(0, |i| i.n)
    );
    let _ = writeln!(
        w,
        "{:<18} {:<7} {:>12} {:>11} {:>11} {:>15} {:>12} {:>12}",
        "kind", "side", "established", "idle", "buffers", "excl. buffers", "allocs", "buf. allocs"
    );
    for i in idles {
        for (name, f) in [("client", &i.client), ("server", &i.server)] {
            let _ = writeln!(
                w,
                "{:<18} {:<7} {:>12.0} {:>11.0} {:>11.0} {:>15.0} {:>12.2} {:>12.2}",
                i.kind.name(),
                name,
                f.established,
                f.idle,
                f.buffers,
                f.excl_buffers,
                f.allocs,
                f.buffer_allocs
            );
        }
    }
    let _ = writeln!(
        w,
        "(bytes per connection; \"buffers\": bytes of the send and receive buffers' Vec<u8>s\n\
         (alignment 1, >= 1 KiB); \"excl. buffers\" = idle - buffers; next timer once settled: {})",
        idles
            .iter()
            .map(|i| format!(
                "{} {}",
                i.kind.name(),
                i.next_timer
                    .map_or("none".to_string(), |t| format!("in {t:.1} s"))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(i) = idles.iter().find(|i| i.kind == Kind::Mptcp2) {
        let worst = i.client.excl_buffers.max(i.server.excl_buffers);
        let _ = writeln!(
            w,
            "target: <= {TARGET} B per idle two-subflow connection, buffers excluded: now {:.0} (client), {:.0} (server): {}",
            i.client.excl_buffers,
            i.server.excl_buffers,
            if worst <= TARGET as f64 {
                "met".to_string()
            } else {
                format!("{:.0} B over", worst - TARGET as f64)
            }
        );
    }

    let m = many;
    let _ = writeln!(
        w,
        "\n2. {} concurrent MPTCP connections with 2 subflows each, both endpoints in this process",
        m.n
    );
    let _ = writeln!(
        w,
        "opened in {:.3} s wall clock ({:.0} connections/s; {} rounds, {:.0} us simulated), every one established with 2 subflows at both ends",
        m.open_secs,
        m.n as f64 / m.open_secs.max(1e-9),
        m.rounds,
        m.sim_secs * 1e6
    );
    let _ = writeln!(
        w,
        "{:<34} {:>12} {:>12} {:>12}",
        "live heap (MiB)", "client", "server", "total"
    );
    for (name, v) in [
        ("established, nothing sent", m.established),
        ("idle after 100 B each way", m.idle),
        ("  of which buffers", m.idle_buffers),
        ("peak", m.peak),
    ] {
        let _ = writeln!(
            w,
            "{:<34} {:>12.2} {:>12.2} {:>12.2}",
            name,
            mib(v[0] as f64),
            mib(v[1] as f64),
            mib(v[2] as f64)
        );
    }
    let _ = writeln!(
        w,
        "{:<34} {:>12.0} {:>12.0} {:>12.0}",
        "idle bytes per connection",
        m.idle[0] as f64 / m.n as f64,
        m.idle[1] as f64 / m.n as f64,
        m.idle[2] as f64 / m.n as f64
    );
    let _ = writeln!(
        w,
        "{:<34} {:>12.0} {:>12.0} {:>12.0}",
        "  excl. buffers",
        (m.idle[0] - m.idle_buffers[0]) as f64 / m.n as f64,
        (m.idle[1] - m.idle_buffers[1]) as f64 / m.n as f64,
        (m.idle[2] - m.idle_buffers[2]) as f64 / m.n as f64
    );
    let _ = writeln!(
        w,
        "process RSS (MiB): before {:.1}, established {:.1}, idle {:.1}; VmHWM {:.1}",
        mib(m.rss_before as f64),
        mib(m.rss_established as f64),
        mib(m.rss_idle as f64),
        mib(m.hwm as f64)
    );

    let _ = writeln!(w, "\n3. Where the bytes go");
    for i in idles.iter().filter(|i| i.kind == Kind::Mptcp2) {
        for (name, f) in [("client", &i.client), ("server", &i.server)] {
            let _ = writeln!(
                w,
                "live allocations an idle {} connection added at the {name} (per connection, largest first):",
                i.kind.name()
            );
            let _ = writeln!(
                w,
                "{:>8} {:>6} {:>10} {:>10}  what (a public type of that size)",
                "size", "align", "allocs", "bytes"
            );
            for (size, align, count, bytes, l) in &f.top {
                let _ = writeln!(w, "{size:>8} {align:>6} {count:>10.3} {bytes:>10.1}  {l}");
            }
            let shown: f64 = f.top.iter().map(|t| t.3).sum();
            let _ = writeln!(
                w,
                "{:>8} {:>6} {:>10} {:>10.1}  (all others)\n",
                "",
                "",
                "",
                f.idle - shown
            );
        }
    }
    let _ = writeln!(w, "size_of (bytes):");
    for (name, size) in sizes {
        let _ = writeln!(w, "{size:>8}  {name}");
    }
    s
}

fn json_side(f: &SideFigures) -> String {
    let top: Vec<String> = f
        .top
        .iter()
        .map(|(size, align, count, bytes, l)| {
            format!(
                "{{\"size\":{size},\"align\":{align},\"allocs_per_conn\":{count:.4},\"bytes_per_conn\":{bytes:.1},\"what\":{l:?}}}"
            )
        })
        .collect();
    format!(
        "{{\"established_bytes_per_conn\":{:.1},\"idle_bytes_per_conn\":{:.1},\"buffer_bytes_per_conn\":{:.1},\"excl_buffers_bytes_per_conn\":{:.1},\"allocs_per_conn\":{:.3},\"buffer_allocs_per_conn\":{:.3},\"top\":[{}]}}",
        f.established,
        f.idle,
        f.buffers,
        f.excl_buffers,
        f.allocs,
        f.buffer_allocs,
        top.join(",")
    )
}

fn json(sizes: &[(&'static str, usize)], m: &Many, idles: &[Idle]) -> String {
    let idle: Vec<String> = idles
        .iter()
        .map(|i| {
            format!(
                "{{\"kind\":\"{}\",\"n\":{},\"exchange_bytes\":{EXCHANGE},\"next_timer_secs\":{},\"client\":{},\"server\":{}}}",
                i.kind.name(),
                i.n,
                i.next_timer.map_or("null".to_string(), |t| format!("{t:.3}")),
                json_side(&i.client),
                json_side(&i.server)
            )
        })
        .collect();
    let three = |v: [isize; 3]| {
        format!(
            "{{\"client\":{},\"server\":{},\"total\":{}}}",
            v[0], v[1], v[2]
        )
    };
    let sizes: Vec<String> = sizes.iter().map(|(n, s)| format!("{n:?}:{s}")).collect();
    format!(
        "{{\"idle\":[{}],\"many\":{{\"connections\":{},\"subflows\":2,\"all_established\":true,\"open_secs\":{:.4},\"sim_us\":{:.0},\"rounds\":{},\"heap_established\":{},\"heap_idle\":{},\"heap_idle_buffers\":{},\"heap_peak\":{},\"rss_before\":{},\"rss_established\":{},\"rss_idle\":{},\"vm_hwm\":{}}},\"size_of\":{{{}}}}}",
        idle.join(","),
        m.n,
        m.open_secs,
        m.sim_secs * 1e6,
        m.rounds,
        three(m.established),
        three(m.idle),
        three(m.idle_buffers),
        three(m.peak),
        m.rss_before,
        m.rss_established,
        m.rss_idle,
        m.hwm,
        sizes.join(",")
    )
}

fn main() {
    let a = args();
    if a.profile {
        if let Err(e) = idle(Kind::Mptcp2, a.n, a.top, true) {
            panic!("profile: {e}");
        }
    }
    // The many-connection run first: VmHWM is then its own.
    let m = many(a.many).unwrap_or_else(|e| panic!("{} connections: {e}", a.many));
    let idles: Vec<Idle> = [Kind::Tcp, Kind::Mptcp1, Kind::Mptcp2]
        .into_iter()
        .map(|k| idle(k, a.n, a.top, false).unwrap_or_else(|e| panic!("{}: {e}", k.name())))
        .collect();
    let unbinned = snapshot().unbinned;
    if unbinned.iter().any(|&u| u != 0) {
        eprintln!("note: live allocations outside the histogram, per owner: {unbinned:?}");
    }
    let sizes = sizes();
    if a.json {
        println!("{}", json(&sizes, &m, &idles));
    } else {
        print!("{}", text(&sizes, &m, &idles));
    }
}
