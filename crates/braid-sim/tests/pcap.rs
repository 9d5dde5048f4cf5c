//! Captures written by the network decode in tshark.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use braid_proto::time::{Duration, Instant};
use braid_sim::{CapturePoint, Direction, LinkConfig, Network, PcapWriter, RunOutcome, Verdict};
use common::{seq_of, Pinger, Sink};

/// Whether tshark can run; under CI=true its absence is a failure, elsewhere a skip.
fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tshark is required when CI=true");
        }
        println!("skipping: tshark is not installed");
    }
    ok
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("braid-sim-{}-{name}.pcap", std::process::id()))
}

/// tshark's `-T fields` output for `fields`, one line per packet.
fn tshark_fields(path: &PathBuf, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn capture(name: &str, point: CapturePoint) -> (PathBuf, u64) {
    let path = temp_path(name);
    let mut net = Network::new(1);
    let p = net.add_node(Box::new(Pinger::new(6, 100, Duration::from_millis(250))));
    let s = net.add_node(Box::new(Sink::acking()));
    let cfg = LinkConfig::new().delay(Duration::from_millis(10));
    let l = net.add_link((p, 0), (s, 0), cfg.clone(), cfg);
    // Drops data packets with an odd number on the way to the sink.
    let drop_odd = |_: Instant, pkt: &mut Vec<u8>| match seq_of(pkt) {
        Some(seq) if seq % 2 == 1 => Verdict::Drop,
        _ => Verdict::Forward,
    };
    net.link_mut(l)
        .add_middlebox(Direction::AtoB, Box::new(drop_odd));
    net.set_capture_point(point);
    net.set_pcap(PcapWriter::new(File::create(&path).expect("temp file")).expect("header"));
    let far = Instant::from_millis(10_000);
    assert_eq!(net.run_until(far, |_| false), RunOutcome::Idle);
    let w = net.take_pcap().expect("the writer");
    let n = w.packets_written();
    w.finish().expect("flushed");
    (path, n)
}

#[test]
fn tshark_decodes_sent_packets() {
    // Data 0..6 from 10.0.0.1:40000 as sent, acks for 0, 2, 4 from 10.0.0.2:5201.
    let (path, n) = capture("send", CapturePoint::Send);
    assert_eq!(n, 9);
    if !have_tshark() {
        return;
    }
    let lines = tshark_fields(&path, &["ip.src", "tcp.srcport", "frame.time_epoch"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(lines.len(), 9, "{lines:?}");
    let data: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("10.0.0.1\t40000\t"))
        .collect();
    let acks: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("10.0.0.2\t5201\t"))
        .collect();
    assert_eq!((data.len(), acks.len()), (6, 3), "{lines:?}");
    // The first ack is captured as the sink sends it, 10 ms after the first data packet.
    assert!(acks[0].ends_with("\t0.010000000"), "{lines:?}");
    assert!(data[1].ends_with("\t0.250000000"), "{lines:?}");
}

#[test]
fn tshark_decodes_delivered_packets() {
    // Only what arrives: data 0, 2, 4 and their acks.
    let (path, n) = capture("deliver", CapturePoint::Deliver);
    assert_eq!(n, 6);
    if !have_tshark() {
        return;
    }
    let lines = tshark_fields(&path, &["ip.src", "tcp.srcport"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        lines,
        vec![
            "10.0.0.1\t40000",
            "10.0.0.2\t5201",
            "10.0.0.1\t40000",
            "10.0.0.2\t5201",
            "10.0.0.1\t40000",
            "10.0.0.2\t5201",
        ]
    );
}

/// A minimal IPv6/TCP packet from 2001:db8::1 port 443 with a few payload bytes.
fn ipv6_tcp() -> Vec<u8> {
    let mut p = vec![0u8; 40 + 20 + 4];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&24u16.to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[8..10].copy_from_slice(&[0x20, 0x01]);
    p[10..12].copy_from_slice(&[0x0d, 0xb8]);
    p[23] = 1;
    p[24..26].copy_from_slice(&[0x20, 0x01]);
    p[26..28].copy_from_slice(&[0x0d, 0xb8]);
    p[39] = 2;
    p[40..42].copy_from_slice(&443u16.to_be_bytes());
    p[42..44].copy_from_slice(&50000u16.to_be_bytes());
    p[52] = 5 << 4;
    p[53] = 0x10;
    p
}

#[test]
fn tshark_decodes_ipv4_and_ipv6_with_snaplen() {
    let path = temp_path("mixed");
    let mut w =
        PcapWriter::with_snaplen(File::create(&path).expect("temp file"), 60).expect("header");
    let v4 = common::numbered_packet(
        [192, 0, 2, 7].into(),
        [192, 0, 2, 8].into(),
        1234,
        80,
        1,
        100,
    );
    w.write_packet(Instant::from_micros(1_500_000), &v4)
        .expect("write");
    w.write_packet(Instant::from_micros(2_000_001), &ipv6_tcp())
        .expect("write");
    w.finish().expect("flushed");
    if !have_tshark() {
        return;
    }
    let lines = tshark_fields(
        &path,
        &[
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "frame.len",
            "frame.cap_len",
            "frame.time_epoch",
        ],
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        lines,
        vec![
            "192.0.2.7\t\t1234\t100\t60\t1.500000000",
            "\t2001:db8::1\t443\t64\t60\t2.000001000",
        ]
    );
}
