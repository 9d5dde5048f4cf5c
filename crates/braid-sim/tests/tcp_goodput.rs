//! Issue acceptance in simulated time: 64 MiB of plain TCP over 100 Mbit/s with 20 ms one-way
//! delay, byte-exact; with 1% random loss at least 70% of the Mathis prediction, lossless at
//! least 95% of the link rate. Figures are printed (`cargo test -- --nocapture`) so the closing
//! note can quote them; the assertions are on simulated time, which is deterministic.

use braid_proto::cc::CcAlgorithm;
use braid_sim::scenario::{self, Scenario, SimConfig, SimResult};

const BYTES: u64 = 64 << 20;

fn run(name: &str, cc: CcAlgorithm, bytes: u64) -> SimResult {
    let scenario = Scenario::by_name(name).expect("built-in scenario");
    let cfg = SimConfig {
        bytes,
        seed: 1,
        tcp: true,
        cc,
        ..SimConfig::default()
    };
    let r = scenario::run(&scenario, &cfg).expect("run");
    assert!(
        r.integrity_ok(bytes),
        "{name}: not byte-exact: completed={} sent={} received={} client_err={:?} server_err={:?}",
        r.completed,
        r.client.sent.bytes(),
        r.server.received.bytes(),
        r.client.error,
        r.server.error
    );
    r
}

/// Mathis et al.: throughput <= MSS / RTT * sqrt(3/2) / sqrt(p), in Mbit/s.
fn mathis_mbps(mss: usize, rtt_s: f64, p: f64) -> f64 {
    mss as f64 * 8.0 / rtt_s * (1.5f64).sqrt() / p.sqrt() / 1e6
}

/// Application bytes per second delivered between `from` and the last delivery, in Mbit/s.
fn goodput_after(r: &SimResult, from_s: f64) -> f64 {
    let d = &r.server.delivery;
    let start = d.iter().position(|(t, _)| t.as_secs_f64() >= from_s);
    match (start, d.last()) {
        (Some(i), Some(&(t_end, b_end))) if i > 0 => {
            let (t0, b0) = d[i - 1];
            (b_end - b0) as f64 * 8.0 / (t_end - t0).as_secs_f64() / 1e6
        }
        _ => 0.0,
    }
}

/// Lossless: once slow start is over the link is full. A 1500-byte packet carries 1448
/// payload bytes (20 IP + 20 TCP + 12 timestamp option), so payload can use at most 96.5% of
/// the link rate; over the whole 64 MiB the handshake and slow start (about 5 round trips
/// below the bandwidth-delay product) cost about 3.5% more.
#[test]
fn lossless_64mib_fills_the_link() {
    let r = run("single-path", CcAlgorithm::Cubic, BYTES);
    let whole = r.goodput_mbps();
    let steady = goodput_after(&r, 1.0);
    let up = &r.links[0].0;
    println!(
        "single-path cubic: {whole:.2} Mbit/s over the whole transfer ({:.3} s), {steady:.2} Mbit/s \
         after the first second, {} packets dropped at the queue",
        r.server.last_byte.map_or(0.0, |t| t.as_secs_f64()),
        up.dropped_queue
    );
    assert!(
        steady >= 95.0,
        "steady-state goodput {steady:.2} Mbit/s < 95% of 100"
    );
    assert!(
        whole >= 90.0,
        "whole-transfer goodput {whole:.2} Mbit/s < 90"
    );
}

#[test]
fn lossy_64mib_reaches_70_percent_of_mathis() {
    for cc in [CcAlgorithm::Cubic, CcAlgorithm::Reno] {
        let r = run("lossy", cc, BYTES);
        let info = r.client_info.as_ref().expect("client connection info");
        // Payload per full segment: the MSS less the 12-byte timestamp option.
        let mss = info.mss - 12;
        // The path's base round-trip time: 2 x 20 ms plus one full packet's serialization.
        let rtt = 0.040 + 1500.0 * 8.0 / 100e6;
        let predicted = mathis_mbps(mss, rtt, 0.01);
        let goodput = r.goodput_mbps();
        println!(
            "lossy {cc:?}: {goodput:.2} Mbit/s, Mathis predicts {predicted:.2} (mss {mss}, rtt {:.1} ms): {:.0}%",
            rtt * 1e3,
            goodput / predicted * 100.0
        );
        assert!(
            goodput >= 0.7 * predicted,
            "{cc:?}: goodput {goodput:.2} < 70% of Mathis {predicted:.2}"
        );
    }
}

#[test]
fn same_seed_replays_exactly() {
    let a = run("lossy", CcAlgorithm::Cubic, 1 << 20);
    let b = run("lossy", CcAlgorithm::Cubic, 1 << 20);
    assert_eq!(a.server.last_byte, b.server.last_byte);
    assert_eq!(a.server.delivery, b.server.delivery);
    assert_eq!(a.links[0].0.dropped_loss, b.links[0].0.dropped_loss);
}

/// Lossless over a transfer long enough for the start-up to amortize: the whole transfer,
/// handshake and slow start included, reaches 95% of the link rate.
#[test]
fn lossless_256mib_whole_transfer_reaches_95_percent() {
    let r = run("single-path", CcAlgorithm::Cubic, 256 << 20);
    let whole = r.goodput_mbps();
    println!(
        "single-path cubic 256 MiB: {whole:.2} Mbit/s over the whole transfer ({:.3} s)",
        r.server.last_byte.map_or(0.0, |t| t.as_secs_f64())
    );
    assert!(
        whole >= 95.0,
        "whole-transfer goodput {whole:.2} Mbit/s < 95"
    );
}
