//! In-process pairs of `MptcpConnection`s: a client and a server exchange real packets
//! (emitted and parsed with the wire codec, so every option must fit and round-trip) over a
//! simulated path with delay, a bottleneck rate, seeded loss and reordering.

#[path = "common/conn_pair.rs"]
mod conn_pair;
use conn_pair::*;

use braid_proto::mptcp::connection::MptcpError;
use braid_proto::mptcp::mapping::MappingError;
use braid_proto::mptcp::MptcpConfig;
use braid_proto::time::Duration;
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::parse_tcp_packet;
use braid_proto::TcpState;

#[test]
fn mptcp_handshake_and_clean_transfer_both_ways() {
    let p = run(
        MptcpConfig::default(),
        Faults::default(),
        7,
        Transfer {
            up: 1 << 20,
            down: 300_000,
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(p.client.is_mptcp() && s.is_mptcp());
    let (c, sv) = (
        p.client.negotiated().expect("keys"),
        s.negotiated().expect("keys"),
    );
    assert_eq!(c.local_key, sv.remote_key);
    assert_eq!(c.remote_token, sv.local_token);
    assert_eq!(c.remote_token, 1314713917);
    assert!(!c.checksum && !sv.checksum);
    assert_eq!(s.counters().MPCapableSYNRX, 1);
    assert_eq!(p.client.counters().MPCapableSYNACKRX, 1);
    assert_eq!(s.counters().DataCsumErr, 0);
    assert!(s.error().is_none() && p.client.error().is_none());
    // MPTCP_INFO-style snapshots agree with each other and with the transfer.
    let (ci, si) = (p.client.info(), s.info());
    assert_eq!(ci.token, c.local_token);
    assert_eq!(si.token, sv.local_token);
    assert_eq!(
        ci.flags,
        braid_proto::mptcp::MptcpInfo::FLAG_REMOTE_KEY_RECEIVED
    );
    assert_eq!(ci.bytes_sent, 1 << 20);
    assert_eq!(ci.bytes_acked, 1 << 20);
    assert_eq!(si.bytes_received, 1 << 20);
    assert_eq!(ci.bytes_received, 300_000);
    // Both DATA_FINs were acknowledged: each side's snd_una is one past its write_seq, and
    // it is what the other side expects next.
    assert_eq!(ci.snd_una, ci.write_seq.wrapping_add(1));
    assert_eq!(si.rcv_nxt, ci.snd_una);
    assert_eq!(ci.rcv_nxt, si.snd_una);
    assert_eq!((ci.subflows, ci.subflows_total), (0, 1));
}

#[test]
fn several_mib_with_loss_and_reordering_are_byte_exact() {
    let faults = Faults {
        loss_per_mille: 10,
        reorder_per_mille: 30,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        42,
        Transfer {
            up: 4 << 20,
            down: 1 << 20,
            ..Transfer::default()
        },
    );
    assert!(p.client.is_mptcp());
    let tcb = p.client.subflow(0).expect("subflow");
    eprintln!(
        "now {:?} sent {} retx {} rto {} delivered {}",
        p.now,
        tcb.bytes_sent(),
        tcb.retransmits(),
        tcb.timeouts(),
        p.delivered
    );
    assert!(tcb.retransmits() > 0);
}

#[test]
fn checksums_when_the_client_asks_with_loss() {
    let cfg = MptcpConfig {
        checksum: true,
        ..MptcpConfig::default()
    };
    let faults = Faults {
        loss_per_mille: 10,
        reorder_per_mille: 20,
        ..Faults::default()
    };
    let p = run(
        cfg,
        faults,
        9,
        Transfer {
            up: 2 << 20,
            down: 200_000,
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(s.negotiated().expect("keys").checksum);
    assert!(p.client.negotiated().expect("keys").checksum);
    assert_eq!(s.counters().DataCsumErr, 0);
}

#[test]
fn checksum_only_on_the_server_side_is_negotiated_too() {
    // the client does not ask; a server that asks turns checksums on for both
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 3);
    p.cfg.checksum = true;
    for _ in 0..200 {
        p.poll_all();
        p.deliver_due();
        if p.client.negotiated().is_some() && p.server.as_ref().is_some_and(|s| s.is_mptcp()) {
            break;
        }
        p.advance();
    }
    assert!(p.client.negotiated().expect("keys").checksum);
}

#[test]
fn fallback_when_the_syn_ack_lacks_mp_capable() {
    let faults = Faults {
        strip_syn_ack: true,
        loss_per_mille: 5,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        11,
        Transfer {
            up: 1 << 20,
            down: 100_000,
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(p.client.is_fallback() && !p.client.is_mptcp());
    assert!(s.is_fallback() && !s.is_mptcp());
    assert_eq!(p.client.counters().MPCapableFallbackSYNACK, 1);
    assert_eq!(s.counters().MPCapableFallbackACK, 1);
}

#[test]
fn fallback_when_the_syn_lacks_mp_capable() {
    let faults = Faults {
        strip_syn: true,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        13,
        Transfer {
            up: 500_000,
            down: 500_000,
            ..Transfer::default()
        },
    );
    assert!(p.client.is_fallback());
    assert!(p.server.as_ref().expect("server").is_fallback());
}

#[test]
fn every_data_byte_is_mapped_once_per_mapping_and_continuations_carry_no_dss() {
    // Watch both directions of a transfer: after the handshake each DSS mapping rides on
    // the first segment of its bytes (and on retransmissions of them), the segments it
    // covers after that carry no mapping of their own, every byte sent is covered by the
    // mapping last announced for it, mappings never overlap differently, and every DSS has
    // a 64-bit DATA_ACK. A mapping covers many segments (one DSS saves 28 option bytes on
    // each of the others); the client's first data goes with MP_CAPABLE, mapping exactly
    // its segment.
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 5);
    let (mut mpc_data, mut seen) = (0, 0u64);
    let (mut segments, mut with_dss, mut longest) = (0u64, 0u64, 0u64);
    // Per direction: the mappings announced, as (subflow seq, dsn, len).
    let mut maps: [Vec<(u32, u64, u32)>; 2] = [Vec::new(), Vec::new()];
    p.client.write(&[1u8; 300_000]);
    let mut server_wrote = false;
    for _ in 0..100_000 {
        p.deliver_due();
        if let Some(s) = p.server.as_mut() {
            if s.is_mptcp() && !server_wrote {
                s.write(&[7u8; 200_000]);
                server_wrote = true;
            }
        }
        p.poll_all();
        for (&(_, k), (to_server, pkt)) in p.queue.iter() {
            if k <= seen {
                continue;
            }
            seen = seen.max(k);
            let seg = parse_tcp_packet(pkt).expect("packet");
            if seg.payload.is_empty() {
                continue;
            }
            let dir = usize::from(*to_server);
            segments += 1;
            for o in &seg.tcp.options.mptcp {
                match o {
                    MptcpOption::Dss(d) => {
                        assert!(d.data_ack_64 && d.data_ack.is_some());
                        let Some(m) = d.mapping else { continue };
                        assert!(m.dsn_64);
                        with_dss += 1;
                        longest = longest.max(u64::from(m.data_len));
                        let entry = (m.subflow_seq, m.dsn, u32::from(m.data_len));
                        let known = maps[dir].iter().find(|e| e.0 == m.subflow_seq).copied();
                        match known {
                            Some(e) => assert_eq!(e, entry, "a mapping changed"),
                            None => maps[dir].push(entry),
                        }
                    }
                    MptcpOption::MpCapable(c) => {
                        assert_eq!(c.data_len.map(usize::from), Some(seg.payload.len()));
                        mpc_data += 1;
                    }
                    _ => {}
                }
            }
        }
        if p.client.is_closed() || (p.queue.is_empty() && !p.advance()) {
            break;
        }
        let (a, b) = (
            p.client.readable(),
            p.server.as_ref().map_or(0, |s| s.readable()),
        );
        if a >= 200_000 && b >= 300_000 {
            break;
        }
        if !p.advance() {
            break;
        }
    }
    assert!(mpc_data >= 1);
    assert!(segments > 300, "segments {segments}");
    // Far fewer DSS mappings than segments, several segments long each.
    assert!(
        with_dss * 4 < segments,
        "{with_dss} mappings on {segments} segments"
    );
    assert!(longest > 10_000, "longest mapping {longest}");
    // The mappings of each direction tile the bytes without overlapping.
    for m in &mut maps {
        m.sort();
        for w in m.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(
                a.0.wrapping_add(a.2) <= b.0,
                "mappings overlap: {a:?} {b:?}"
            );
        }
    }
}

#[test]
fn a_contradicting_mapping_resets_the_subflow() {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 21);
    let (repr, payload) = p.intercept_server_data();
    // A pure ACK announcing a mapping of the same subflow bytes at another DSN arrives first.
    let mut fake = repr.clone();
    for o in &mut fake.options.mptcp {
        if let MptcpOption::Dss(d) = o {
            if let Some(m) = d.mapping.as_mut() {
                m.dsn = m.dsn.wrapping_add(1000);
            }
        }
    }
    let now = p.now;
    p.client.handle_segment(now, 0, &fake, &[]);
    assert!(p.client.error().is_none());
    p.client.handle_segment(now, 0, &repr, &payload);
    assert_eq!(p.client.counters().DSSNotMatching, 1);
    assert_eq!(
        p.client.error(),
        Some(MptcpError::Mapping {
            subflow: 0,
            error: MappingError::NotMatching
        })
    );
    assert_eq!(
        p.client.subflow(0).expect("subflow").state(),
        TcpState::Closed
    );
    assert_eq!(p.client.readable(), 0);
    // The reset says why: MP_TCPRST, reason 1 (MPTCP-specific error).
    let (_, rst, _) = p.client.poll_segment(now).expect("RST");
    assert!(rst.flags.rst());
    assert!(rst.options.mptcp.contains(&MptcpOption::MpTcpRst {
        flags: 0,
        reason: braid_proto::wire::mptcp::rst_reason::MPTCP_SPECIFIC
    }));
    assert_eq!(p.client.counters().MPRstTx, 1);
}

#[test]
fn a_dss_checksum_failure_sends_mp_fail() {
    let cfg = MptcpConfig {
        checksum: true,
        ..MptcpConfig::default()
    };
    let mut p = Pair::new(cfg, Faults::default(), 23);
    let (repr, mut payload) = p.intercept_server_data();
    let dsn = repr
        .options
        .mptcp
        .iter()
        .find_map(|o| match o {
            MptcpOption::Dss(d) => d.mapping.map(|m| m.dsn),
            _ => None,
        })
        .expect("mapping");
    // The TCP checksum would be valid (the packet is re-emitted); only the DSS one fails.
    payload[10] ^= 0x40;
    let now = p.now;
    p.client.handle_segment(now, 0, &repr, &payload);
    assert_eq!(p.client.counters().DataCsumErr, 1);
    assert_eq!(
        p.client.error(),
        Some(MptcpError::Checksum { subflow: 0, dsn })
    );
    // Like Linux, the bytes (acknowledged by the subflow) are delivered.
    assert_eq!(p.client.readable(), payload.len());
    // The next segment carries MP_FAIL with the failed mapping's DSN.
    let mut now = now;
    let ack = loop {
        if let Some((_, r, _)) = p.client.poll_segment(now) {
            break r;
        }
        now = p.client.poll_timeout().expect("a timer (delayed ACK)");
        p.client.handle_timeout(now);
    };
    assert!(ack.options.mptcp.contains(&MptcpOption::MpFail { dsn }));
    assert_eq!(p.client.counters().MPFailTx, 1);
    assert_ne!(
        p.client.subflow(0).expect("subflow").state(),
        TcpState::Closed
    );
}

#[test]
fn hostile_segments_do_not_panic() {
    // Random MPTCP options on otherwise valid segments of an established connection.
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 31);
    let (repr, payload) = p.intercept_server_data();
    let mut rng = Rng(99);
    for i in 0..2000 {
        let mut r = repr.clone();
        let dss = braid_proto::wire::mptcp::Dss {
            data_ack: (rng.next() % 2 == 0).then(|| rng.next()),
            data_ack_64: rng.next() % 2 == 0,
            mapping: (rng.next() % 3 != 0).then(|| braid_proto::wire::mptcp::DssMapping {
                dsn: rng.next(),
                dsn_64: rng.next() % 2 == 0,
                subflow_seq: rng.next() as u32,
                data_len: rng.next() as u16,
                checksum: (rng.next() % 2 == 0).then(|| rng.next() as u16),
            }),
            data_fin: rng.next() % 4 == 0,
        };
        r.options.mptcp = vec![MptcpOption::Dss(dss)].into();
        if i % 7 == 0 {
            r.options.mptcp.push(MptcpOption::MpCapable(
                braid_proto::wire::mptcp::MpCapable::ack_with_data(
                    1,
                    1,
                    rng.next(),
                    rng.next(),
                    rng.next() as u16,
                    None,
                ),
            ));
        }
        let cut = (rng.next() as usize) % (payload.len() + 1);
        let now = p.now;
        p.client.handle_segment(now, 0, &r, &payload[..cut]);
        let mut buf = [0u8; 4096];
        p.client.read(&mut buf);
        while p.client.poll_segment(now).is_some() {}
    }
}

#[test]
fn lost_third_ack_the_first_data_carries_the_keys() {
    let faults = Faults {
        drop_third_ack: true,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        17,
        Transfer {
            up: 300_000,
            down: 300_000,
            up_start: Duration::from_millis(200),
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(p.third_acks_dropped > 0);
    assert!(s.is_mptcp() && p.client.is_mptcp());
    assert_eq!(s.counters().MPCapableACKRX, 1);
}

#[test]
fn options_stripped_after_the_syn_fall_back_on_both_sides() {
    let faults = Faults {
        strip_data: true,
        loss_per_mille: 5,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        19,
        Transfer {
            up: 1 << 20,
            down: 200_000,
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(p.client.is_fallback() && s.is_fallback());
    assert_eq!(s.counters().MPCapableFallbackACK, 1);
    assert_eq!(p.client.counters().MPCapableFallbackACK, 1);
}

#[test]
fn thirty_two_bit_data_acks_and_dsns_are_accepted() {
    // Linux sends a 32-bit DATA_ACK in its first DSS; peers may use 4-byte DSNs throughout.
    let faults = Faults {
        narrow_dss: true,
        loss_per_mille: 5,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        29,
        Transfer {
            up: 1 << 20,
            down: 1 << 20,
            ..Transfer::default()
        },
    );
    assert!(p.client.is_mptcp() && p.server.as_ref().expect("server").is_mptcp());
}
