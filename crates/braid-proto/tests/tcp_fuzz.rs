//! Arbitrary segments, timeouts and application calls never make a TCB or an endpoint panic,
//! and the TCB's invariants hold throughout.

use braid_proto::tcp::{Tcb, TcbParams, TcpConfig, TcpState};
use braid_proto::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamps};
use braid_proto::{Duration, Endpoint, EndpointConfig, Instant, ListenOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Segment {
        seq_off: i32,
        ack_off: i32,
        flags: u8,
        window: u16,
        len: u16,
        sack: Vec<(i32, i32)>,
        ts: Option<(u32, u32)>,
    },
    Write(u16),
    Read(u16),
    Advance(u32),
    Close,
    Abort,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop_oneof![3 => -2000i32..20_000, 1 => -70_000i32..70_000],
            prop_oneof![3 => -100i32..40_000, 1 => -70_000i32..70_000],
            any::<u8>(),
            any::<u16>(),
            0u16..3000,
            proptest::collection::vec((-5000i32..70_000, -5000i32..70_000), 0..4),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(seq_off, ack_off, flags, window, len, sack, ts)| Op::Segment {
                seq_off,
                ack_off,
                flags,
                window,
                len,
                sack,
                ts
            }),
        2 => (0u16..20_000).prop_map(Op::Write),
        1 => (0u16..20_000).prop_map(Op::Read),
        2 => (0u32..3_000_000).prop_map(Op::Advance),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
}

fn run_tcb(ops: &[Op], passive: bool, handshake: bool) {
    let cfg = TcpConfig {
        send_buffer: 32 * 1024,
        recv_buffer: 16 * 1024,
        ..TcpConfig::default()
    };
    let params = TcbParams {
        local_port: 1,
        remote_port: 2,
        iss: 0xffff_f000,
        ts_offset: 7,
        mss: 1460,
        default_mss: 536,
    };
    let irs = 0x7fff_ff00u32;
    let mut now = Instant::ZERO;
    let mut t = if passive {
        let mut syn = TcpRepr {
            src_port: 2,
            dst_port: 1,
            seq: irs,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 65535,
            urgent: 0,
            options: TcpOptions::default(),
        };
        syn.options.sack_permitted = true;
        syn.options.window_scale = Some(3);
        syn.options.timestamps = Some(Timestamps { tsval: 5, tsecr: 0 });
        Tcb::accept(&cfg, params, now, &syn).unwrap()
    } else {
        Tcb::connect(&cfg, params)
    };
    if handshake {
        while t.poll_segment(now).is_some() {}
        let mut r = TcpRepr {
            src_port: 2,
            dst_port: 1,
            seq: irs.wrapping_add(u32::from(passive)),
            ack: params.iss.wrapping_add(1),
            flags: TcpFlags(TcpFlags::ACK | if passive { 0 } else { TcpFlags::SYN }),
            window: 20_000,
            urgent: 0,
            options: TcpOptions::default(),
        };
        if !passive {
            r.options.sack_permitted = true;
            r.options.mss = Some(1000);
            r.options.timestamps = Some(Timestamps { tsval: 5, tsecr: 0 });
        } else {
            r.options.timestamps = Some(Timestamps { tsval: 6, tsecr: 0 });
        }
        t.handle_segment(now, &r, &[]);
        assert_eq!(t.state(), TcpState::Established);
        t.write(&[1u8; 20_000]);
    }
    let payload = vec![0xa5u8; 3000];
    let mut buf = vec![0u8; 20_000];
    for op in ops {
        match op {
            Op::Segment {
                seq_off,
                ack_off,
                flags,
                window,
                len,
                sack,
                ts,
            } => {
                let mut options = TcpOptions::default();
                for &(a, b) in sack.iter().take(4) {
                    options.sack_blocks.push((
                        params.iss.wrapping_add(a as u32),
                        params.iss.wrapping_add(b as u32),
                    ));
                }
                options.timestamps = ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr });
                let repr = TcpRepr {
                    src_port: 2,
                    dst_port: 1,
                    seq: irs.wrapping_add(*seq_off as u32),
                    ack: params.iss.wrapping_add(*ack_off as u32),
                    flags: TcpFlags(*flags),
                    window: *window,
                    urgent: 0,
                    options,
                };
                t.handle_segment(now, &repr, &payload[..usize::from(*len)]);
            }
            Op::Write(n) => {
                t.write(&payload[..usize::from(*n).min(payload.len())]);
            }
            Op::Read(n) => {
                t.read(&mut buf[..usize::from(*n)]);
            }
            Op::Advance(us) => {
                now += Duration::from_micros(u64::from(*us));
                t.handle_timeout(now);
            }
            Op::Close => t.close(),
            Op::Abort => t.abort(),
        }
        let mut emitted = 0;
        while let Some(seg) = t.poll_segment(now) {
            let p = t.payload(&seg);
            assert_eq!(p.len() as u64, seg.data.end - seg.data.start);
            assert!(p.len() <= 1460);
            emitted += 1;
            assert!(emitted < 1000, "unbounded output");
        }
        if let Some(at) = t.poll_timeout() {
            assert!(
                at >= now || t.state() == TcpState::Closed || at + Duration::from_secs(1) >= now
            );
        }
        assert!(t.snd_una_offset() <= t.snd_nxt_offset());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn tcb_survives_arbitrary_input_active(ops in proptest::collection::vec(op(), 1..60), hs in any::<bool>()) {
        run_tcb(&ops, false, hs);
    }

    #[test]
    fn tcb_survives_arbitrary_input_passive(ops in proptest::collection::vec(op(), 1..60), hs in any::<bool>()) {
        run_tcb(&ops, true, hs);
    }

    #[test]
    fn endpoint_survives_arbitrary_bytes(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..30)) {
        let mut e = Endpoint::new(EndpointConfig::default(), [0; 32]);
        e.listen("0.0.0.0:80".parse().unwrap(), ListenOptions::default()).unwrap();
        let mut buf = [0u8; 1600];
        for (i, p) in packets.iter().enumerate() {
            let now = Instant::from_millis(i as u64 * 10);
            e.handle_packet(now, p);
            while e.poll_transmit(now, &mut buf).is_some() {}
            e.handle_timeout(now);
        }
    }
}
