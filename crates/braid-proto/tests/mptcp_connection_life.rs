//! In-process pairs of `MptcpConnection`s (as `mptcp_connection.rs`, whose first part is the
//! handshake, the mappings and checksums): a connection's life under corruption, loss,
//! middleboxes and a slow reader, its events, and how it closes (DATA_FIN, MP_FASTCLOSE).

#[path = "common/conn_pair.rs"]
mod conn_pair;
use conn_pair::*;

use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::parse_tcp_packet;
use braid_proto::TcpState;

#[test]
fn corrupted_payload_mp_fail_infinite_mapping_and_fallback() {
    // Like the kernel in tests/fixtures/corrupt.pcap: the receiver counts DataCsumErr and
    // sends MP_FAIL; the sender answers with MP_FAIL and an infinite mapping; both go on as
    // plain TCP. The corrupted bytes were acknowledged by the subflow and are delivered.
    let cfg = MptcpConfig {
        checksum: true,
        ..MptcpConfig::default()
    };
    let faults = Faults {
        corrupt_client_data: Some(40),
        ..Faults::default()
    };
    let p = run(
        cfg,
        faults,
        37,
        Transfer {
            up: 1 << 20,
            down: 100_000,
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    let (sc, cc) = (s.counters(), p.client.counters());
    assert_eq!(sc.DataCsumErr, 1);
    assert_eq!(sc.MPFailTx, 1);
    assert_eq!(cc.MPFailRx, 1);
    // The echo rides on a pure ACK when one goes out before the infinite mapping.
    assert!(cc.MPFailTx <= 1);
    assert_eq!(cc.InfiniteMapTx, 1);
    assert_eq!(sc.InfiniteMapRx, 1);
    assert!(s.is_fallback() && p.client.is_fallback());
}

#[test]
fn corruption_and_fallbacks_with_loss_over_seeds() {
    for seed in 100..108u64 {
        let cfg = MptcpConfig {
            checksum: true,
            ..MptcpConfig::default()
        };
        let faults = Faults {
            corrupt_client_data: Some(5 + seed % 30),
            loss_per_mille: 15,
            reorder_per_mille: 20,
            ..Faults::default()
        };
        let p = run(
            cfg,
            faults,
            seed,
            Transfer {
                up: 400_000,
                down: 400_000,
                ..Transfer::default()
            },
        );
        // (Whether the sender still had data to carry the infinite mapping depends on
        // where the corruption fell; completion and integrity are what counts.)
        let s = p.server.as_ref().expect("server");
        assert_eq!(s.counters().DataCsumErr, 1, "seed {seed}");
        let faults = Faults {
            strip_data: seed % 2 == 0,
            strip_syn_ack: seed % 2 == 1,
            drop_third_ack: seed % 3 == 0,
            loss_per_mille: 15,
            reorder_per_mille: 20,
            ..Faults::default()
        };
        let p = run(
            MptcpConfig::default(),
            faults,
            seed,
            Transfer {
                up: 300_000,
                down: 300_000,
                ..Transfer::default()
            },
        );
        assert!(p.client.is_fallback(), "seed {seed}");
    }
}

#[test]
fn heavy_loss_over_seeds_stays_mptcp_and_byte_exact() {
    for seed in 200..208u64 {
        let cfg = MptcpConfig {
            checksum: seed % 2 == 0,
            ..MptcpConfig::default()
        };
        let faults = Faults {
            loss_per_mille: 40,
            reorder_per_mille: 50,
            ..Faults::default()
        };
        let p = run(
            cfg,
            faults,
            seed,
            Transfer {
                up: 500_000,
                down: 300_000,
                ..Transfer::default()
            },
        );
        assert!(p.client.is_mptcp(), "seed {seed}");
        assert!(
            p.server.as_ref().is_some_and(|s| s.is_mptcp()),
            "seed {seed}"
        );
    }
}

#[test]
fn a_small_connection_level_window_and_a_slow_reader() {
    // The data-level receive buffer (64 KiB, the minimum) is much smaller than the subflow
    // buffers: the DATA_ACK + window bound the sender, and reading reopens it.
    let cfg = MptcpConfig {
        recv_buffer: 16 * 1024,
        checksum: true,
        send_buffer: 64 * 1024,
        ..MptcpConfig::default()
    };
    let faults = Faults {
        loss_per_mille: 10,
        ..Faults::default()
    };
    let p = run(
        cfg,
        faults,
        41,
        Transfer {
            up: 600_000,
            down: 50_000,
            server_read_chunk: 3000,
            ..Transfer::default()
        },
    );
    assert!(p.client.is_mptcp());
}

#[test]
fn unacked_ranges_are_visible_per_subflow_and_at_the_data_level() {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 43);
    let _ = p.intercept_server_data();
    let s = p.server.as_ref().expect("server");
    let on = s.unacked_on(0);
    let all = s.data_send().unacked();
    assert!(!on.is_empty());
    assert_eq!(on.first().map(|r| r.start), Some(all.start));
    assert!(on.iter().all(|r| r.start >= all.start && r.end <= all.end));
    assert_eq!(all.start, 0);
}

#[test]
fn the_server_key_can_be_redrawn_before_the_syn_ack() {
    // The endpoint's token-collision path: a new key before the SYN/ACK goes out.
    let cfg = MptcpConfig::default();
    let mut client = MptcpConnection::connect(&cfg, params(40000, 80, 1000), CLIENT_KEY);
    let (_, syn, _) = client.poll_segment(Instant::ZERO).expect("SYN");
    let mut server =
        MptcpConnection::accept(&cfg, params(80, 40000, 5), Instant::ZERO, &syn, SERVER_KEY)
            .expect("server");
    assert_eq!(server.local_token(), 1314713917);
    assert!(server.handshake_mut().redraw_key(CLIENT_KEY));
    assert_eq!(server.local_token(), 182769222);
    let (_, syn_ack, _) = server.poll_segment(Instant::ZERO).expect("SYN/ACK");
    let key = syn_ack.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(c) => c.sender_key,
        _ => None,
    });
    assert_eq!(key, Some(CLIENT_KEY));
    assert!(!server.handshake_mut().redraw_key(SERVER_KEY));
    assert_eq!(server.local_token(), 182769222);
}

#[test]
fn events_established_readable_writable_closed() {
    let cfg = MptcpConfig {
        send_buffer: 10_000,
        ..MptcpConfig::default()
    };
    let mut p = Pair::new(cfg, Faults::default(), 47);
    let mut c_ev = braid_proto::mptcp::ConnEvents::default();
    let mut s_ev = braid_proto::mptcp::ConnEvents::default();
    let merge = |a: &mut braid_proto::mptcp::ConnEvents, b: braid_proto::mptcp::ConnEvents| {
        a.established |= b.established;
        a.readable |= b.readable;
        a.writable |= b.writable;
        a.closed |= b.closed;
    };
    assert_eq!(p.client.write(&[9u8; 25_000]), 10_000); // cut short: writable later
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    for _ in 0..10_000 {
        p.poll_all();
        p.deliver_due();
        merge(&mut c_ev, p.client.take_events());
        if let Some(s) = p.server.as_mut() {
            merge(&mut s_ev, s.take_events());
            while s.read(&mut buf) > 0 {}
            if s.is_read_finished() {
                s.close();
            }
        }
        if c_ev.writable && !closed {
            p.client.close();
            closed = true;
        }
        while p.client.read(&mut buf) > 0 {}
        if c_ev.closed && s_ev.closed {
            break;
        }
        if !p.advance() {
            break;
        }
    }
    assert!(c_ev.established && s_ev.established);
    assert!(c_ev.writable);
    assert!(s_ev.readable && c_ev.readable); // data, and the server's DATA_FIN
    assert!(c_ev.closed && s_ev.closed);
    // nothing is reported twice
    assert_eq!(
        p.client.take_events(),
        braid_proto::mptcp::ConnEvents::default()
    );
}

#[test]
#[ignore = "prints goodput; run by hand"]
fn goodput_report() {
    for (loss, checksum, plain) in [
        (0, false, false),
        (0, true, false),
        (5, false, false),
        (5, false, true),
    ] {
        let cfg = MptcpConfig {
            checksum,
            ..MptcpConfig::default()
        };
        let faults = Faults {
            loss_per_mille: loss,
            strip_syn: plain,
            ..Faults::default()
        };
        let p = run(
            cfg,
            faults,
            3,
            Transfer {
                up: 16 << 20,
                down: 0,
                ..Transfer::default()
            },
        );
        let secs = p.now.saturating_duration_since(Instant::ZERO).as_secs_f64();
        eprintln!(
            "loss {loss}‰ checksum {checksum} plain TCP {plain}: {:.1} Mbit/s",
            (16u64 << 23) as f64 / secs / 1e6
        );
    }
}

#[test]
fn mptcp_syns_dropped_by_a_middlebox_then_plain_syns() {
    // Like Linux (syn_retrans_before_tcp_fallback = 2): the first SYN and two
    // retransmissions carry MP_CAPABLE, the next ones do not.
    let faults = Faults {
        drop_mptcp_syn: true,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        53,
        Transfer {
            up: 200_000,
            down: 100_000,
            ..Transfer::default()
        },
    );
    assert!(p.client.is_fallback());
    assert_eq!(p.client.counters().MPCapableSYNTXDrop, 1);
    assert_eq!(p.client.subflow(0).expect("subflow").retransmits(), 3);
}

#[test]
fn options_stripped_mid_transfer_fall_back_without_loss_or_duplication() {
    for (one_way, seed) in [(false, 61u64), (true, 62), (false, 63), (true, 64)] {
        let faults = Faults {
            strip_after: Some(300),
            strip_one_way: one_way,
            loss_per_mille: 5,
            reorder_per_mille: 10,
            ..Faults::default()
        };
        let p = run(
            MptcpConfig {
                checksum: seed > 62,
                ..MptcpConfig::default()
            },
            faults,
            seed,
            Transfer {
                up: 2 << 20,
                down: if one_way { 0 } else { 300_000 },
                ..Transfer::default()
            },
        );
        let s = p.server.as_ref().expect("server");
        assert!(p.client.is_fallback() && s.is_fallback(), "seed {seed}");
        assert!(
            p.client.counters().NoDSSFallback + s.counters().NoDSSFallback >= 1,
            "seed {seed}"
        );
    }
}

/// Linux sends a DATA_FIN it has no data for on a pure ACK (mapping: subflow seq 0, length 1)
/// and retransmits it until a DATA_ACK covers it. TCP alone would not answer a pure ACK, so
/// the connection must, every time a copy arrives.
#[test]
fn a_data_fin_on_a_pure_ack_is_acknowledged() {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 33);
    let (repr, payload) = p.intercept_server_data();
    let now = p.now;
    p.client.handle_segment(now, 0, &repr, &payload);
    while p.client.poll_segment(now).is_some() {}
    let mapping = repr
        .options
        .mptcp
        .iter()
        .find_map(|o| match o {
            MptcpOption::Dss(d) => d.mapping,
            _ => None,
        })
        .expect("data segment mapping");
    let fin_dsn = mapping.dsn.wrapping_add(u64::from(mapping.data_len));
    let mut fin = repr.clone();
    fin.seq = repr.seq.wrapping_add(payload.len() as u32);
    for o in &mut fin.options.mptcp {
        if let MptcpOption::Dss(d) = o {
            d.data_fin = true;
            d.mapping = Some(braid_proto::wire::mptcp::DssMapping {
                dsn: fin_dsn,
                dsn_64: true,
                subflow_seq: 0,
                data_len: 1,
                checksum: None,
            });
        }
    }
    for copy in 0..2 {
        p.client.handle_segment(now, 0, &fin, &[]);
        let (_, ack, _) = p
            .client
            .poll_segment(now)
            .unwrap_or_else(|| panic!("copy {copy} of the DATA_FIN was not answered"));
        let data_ack = ack.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::Dss(d) => d.data_ack,
            _ => None,
        });
        assert_eq!(data_ack, Some(fin_dsn.wrapping_add(1)), "copy {copy}");
    }
}

/// The application closes after the last mapping went out but before all of its segments
/// did (the congestion window holds them back): that mapping cannot carry the DATA_FIN any
/// more, so the subflow's FIN waits for the last byte and carries it alone; the peer sees
/// the end of the stream and acknowledges it.
#[test]
fn a_close_after_the_last_mapping_went_out_still_delivers_the_data_fin() {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 51);
    // One mapping's worth (less than 64 KiB), more than the initial window sends at once.
    let data = vec![0x42u8; 40_000];
    assert_eq!(p.client.write(&data), data.len());
    // Send until the mapping after the MP_CAPABLE segment is on the wire, not all of it.
    let mut sent_dss = false;
    for _ in 0..100 {
        p.poll_all();
        sent_dss = p.queue.values().any(|(to_server, pkt)| {
            *to_server
                && parse_tcp_packet(pkt).is_ok_and(|s| {
                    s.tcp.options.mptcp.iter().any(
                        |o| matches!(o, MptcpOption::Dss(d) if d.mapping.is_some_and(|m| m.data_len > 20_000)),
                    )
                })
        });
        if sent_dss {
            break;
        }
        p.deliver_due();
        if !p.advance() {
            break;
        }
    }
    assert!(sent_dss, "a long mapping went out");
    assert!(p.client.subflow(0).is_some_and(|t| t.send_queued() > 0));
    p.client.close();
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        p.poll_all();
        p.deliver_due();
        if let Some(s) = p.server.as_mut() {
            loop {
                let n = s.read(&mut buf);
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        let done =
            p.server.as_ref().is_some_and(|s| s.is_read_finished()) && p.client.is_write_finished();
        if done || !p.advance() {
            break;
        }
    }
    assert_eq!(got, data.len());
    assert!(
        p.server.as_ref().is_some_and(|s| s.is_read_finished()),
        "the server saw the DATA_FIN"
    );
    assert!(
        p.client.is_write_finished(),
        "the DATA_FIN was acknowledged"
    );
}

/// The client's first data segment (MP_CAPABLE with data) is lost; the server's DSS on its
/// duplicate ACKs confirms the client, whose retransmission of that segment then carries
/// the same mapping as a DSS: the connection stays MPTCP and every byte arrives.
#[test]
fn a_lost_first_data_segment_comes_again_with_its_mapping() {
    let faults = Faults {
        drop_first_data: true,
        ..Faults::default()
    };
    let p = run(
        MptcpConfig::default(),
        faults,
        52,
        Transfer {
            up: 300_000,
            // After the handshake: the third ACK goes alone, the first data carries
            // MP_CAPABLE again (the client is not confirmed yet).
            up_start: Duration::from_millis(50),
            ..Transfer::default()
        },
    );
    let s = p.server.as_ref().expect("server");
    assert!(!p.client.is_fallback() && !s.is_fallback(), "stayed MPTCP");
    assert_eq!(s.counters().NoDSSFallback, 0);
    assert!(p.dropped_first_seq.is_some(), "the fault struck");
    let resent = &p.first_data_resent;
    assert!(!resent.is_empty(), "the first data was sent again");
    // Each copy maps the segment: MP_CAPABLE again while unconfirmed, else the same
    // mapping as a DSS (subflow sequence 1).
    for opts in resent {
        let mapped = opts.iter().any(|o| match o {
            MptcpOption::MpCapable(c) => c.data_len.is_some(),
            MptcpOption::Dss(d) => d.mapping.is_some_and(|m| m.subflow_seq == 1),
            _ => false,
        });
        assert!(mapped, "a copy without its mapping: {opts:?}");
    }
}

/// A server sending before it has seen the client's DSS puts at least a DATA_ACK on every
/// segment: an unconfirmed client takes a segment with no MPTCP option at all for a
/// middlebox stripping them. Afterwards, segments inside a mapping may carry none.
#[test]
fn a_server_marks_every_segment_until_the_client_is_confirmed() {
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 53);
    let mut firsts: Vec<bool> = Vec::new();
    let mut later_bare = 0usize;
    let (mut seen, mut wrote) = (0u64, false);
    for _ in 0..20_000 {
        p.deliver_due();
        if let Some(s) = p.server.as_mut() {
            if s.is_mptcp() && !wrote {
                s.write(&[9u8; 200_000]);
                wrote = true;
            }
        }
        p.poll_all();
        for (&(_, k), (to_server, pkt)) in p.queue.iter() {
            if k <= seen {
                continue;
            }
            seen = seen.max(k);
            let seg = parse_tcp_packet(pkt).expect("packet");
            if *to_server || seg.payload.is_empty() {
                continue;
            }
            let has_dss = seg
                .tcp
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::Dss(_)));
            if firsts.len() < 10 {
                firsts.push(has_dss);
            } else if !has_dss {
                later_bare += 1;
            }
        }
        if p.client.readable() >= 200_000 || !p.advance() {
            break;
        }
    }
    assert_eq!(
        firsts,
        vec![true; 10],
        "the first flight, before any client DSS"
    );
    assert!(
        later_bare > 0,
        "later segments inside a mapping carry no option"
    );
}

#[test]
fn mp_fastclose_on_an_ack_resets_the_connection() {
    //= rfc8684#3.5.1
    //= The ACK form: the peer sends MP_FASTCLOSE with our key on an ACK; we answer with a
    //  RST (MP_FASTCLOSE on it, as Linux does) and the connection ends as fast-closed by the
    //  peer.
    let mut p = Pair::new(MptcpConfig::default(), Faults::default(), 23);
    let (repr, payload) = p.intercept_server_data();
    let now = p.now;
    // A wrong key is ignored.
    let mut wrong = repr.clone();
    wrong.options.mptcp = vec![MptcpOption::MpFastclose {
        receiver_key: CLIENT_KEY ^ 1,
    }]
    .into();
    p.client.handle_segment(now, 0, &wrong, &[]);
    assert_eq!(p.client.counters().MPFastcloseRx, 0);
    assert!(!p.client.is_fast_closed_by_peer());
    assert_eq!(
        p.client.subflow(0).expect("subflow").state(),
        TcpState::Established
    );
    // The right key, on an ACK carrying data too.
    let mut fastclose = repr.clone();
    fastclose.options.mptcp = vec![MptcpOption::MpFastclose {
        receiver_key: CLIENT_KEY,
    }]
    .into();
    p.client.handle_segment(now, 0, &fastclose, &payload);
    assert_eq!(p.client.counters().MPFastcloseRx, 1);
    let tcb = p.client.subflow(0).expect("subflow");
    assert_eq!(tcb.state(), TcpState::Closed);
    assert_eq!(tcb.error(), Some(braid_proto::ConnectionError::FastClosed));
    assert!(p.client.is_fast_closed_by_peer());
    let (_, rst, _) = p.client.poll_segment(now).expect("RST");
    assert!(rst.flags.rst());
    assert!(rst.options.mptcp.iter().any(
        |o| matches!(o, MptcpOption::MpFastclose { receiver_key } if *receiver_key == SERVER_KEY)
    ));
}
