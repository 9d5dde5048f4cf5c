//! Arbitrary MPTCP options (and arbitrary sequence numbers, payloads, timeouts and
//! application calls) on the segments of real MPTCP connections never make an
//! `MptcpConnection` panic, whatever state it is in.

#[path = "common/conn_pair.rs"]
mod conn_pair;
#[path = "common/mptcp_strategy.rs"]
mod mptcp_strategy;

use braid_proto::mptcp::{MptcpConfig, MptcpConnection};
use braid_proto::time::{Duration, Instant};
use braid_proto::wire::mptcp::MptcpOption;
use braid_proto::wire::TcpRepr;
use conn_pair::params;
use mptcp_strategy::arb_mptcp_option;
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A copy of a real segment of the other side with other options, moved in sequence
    /// space, with a payload of some length.
    Forge {
        to_server: bool,
        options: Vec<MptcpOption>,
        seq_off: i32,
        ack_off: i32,
        len: u16,
        keep_real: bool,
    },
    /// Exchange real segments for a while.
    Shuttle(u8),
    Write {
        server: bool,
        len: u16,
    },
    Read {
        server: bool,
    },
    Close {
        server: bool,
    },
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (
            any::<bool>(),
            vec(arb_mptcp_option(), 0..3),
            prop_oneof![3 => -3000i32..3000, 1 => any::<i32>()],
            prop_oneof![3 => -3000i32..3000, 1 => any::<i32>()],
            0u16..1500,
            any::<bool>(),
        )
            .prop_map(|(to_server, options, seq_off, ack_off, len, keep_real)| Op::Forge {
                to_server,
                options,
                seq_off,
                ack_off,
                len,
                keep_real
            }),
        2 => (1u8..20).prop_map(Op::Shuttle),
        1 => (any::<bool>(), 0u16..20_000).prop_map(|(server, len)| Op::Write { server, len }),
        1 => any::<bool>().prop_map(|server| Op::Read { server }),
        1 => any::<bool>().prop_map(|server| Op::Close { server }),
        1 => (0u16..3000).prop_map(Op::Advance),
    ]
}

struct World {
    now: Instant,
    client: MptcpConnection,
    server: Option<MptcpConnection>,
    last_to_server: Option<TcpRepr>,
    last_to_client: Option<TcpRepr>,
}

impl World {
    fn new(checksum: bool) -> World {
        let cfg = MptcpConfig {
            checksum,
            ..MptcpConfig::default()
        };
        World {
            now: Instant::ZERO,
            client: MptcpConnection::connect(&cfg, params(1, 2, 100), 0x1234_5678_9abc_def0),
            server: None,
            last_to_server: None,
            last_to_client: None,
        }
    }

    fn shuttle(&mut self, rounds: u8) {
        let cfg = MptcpConfig::default();
        for _ in 0..rounds {
            let mut moved = false;
            while let Some((_, r, p)) = self.client.poll_segment(self.now) {
                moved = true;
                match self.server.as_mut() {
                    Some(s) => s.handle_segment(self.now, 0, &r, &p.to_vec()),
                    None => {
                        self.server = MptcpConnection::accept(
                            &cfg,
                            params(2, 1, 900),
                            self.now,
                            &r,
                            0x0fed_cba9_8765_4321,
                        )
                    }
                }
                self.last_to_server = Some(r);
            }
            if let Some(s) = self.server.as_mut() {
                while let Some((_, r, p)) = s.poll_segment(self.now) {
                    moved = true;
                    self.client.handle_segment(self.now, 0, &r, &p.to_vec());
                    self.last_to_client = Some(r);
                }
            }
            if !moved {
                self.advance(10);
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let now = self.now;
        self.client.handle_timeout(now);
        if let Some(s) = self.server.as_mut() {
            s.handle_timeout(now);
        }
    }

    fn apply(&mut self, op: Op) {
        let mut buf = vec![0u8; 70_000];
        match op {
            Op::Forge {
                to_server,
                options,
                seq_off,
                ack_off,
                len,
                keep_real,
            } => {
                let template = if to_server {
                    self.last_to_server.clone()
                } else {
                    self.last_to_client.clone()
                };
                let Some(mut r) = template else {
                    return;
                };
                r.seq = r.seq.wrapping_add(seq_off as u32);
                r.ack = r.ack.wrapping_add(ack_off as u32);
                if !keep_real {
                    r.options.mptcp.clear();
                }
                r.options.mptcp.extend(options);
                let payload = vec![0xa5u8; usize::from(len)];
                let now = self.now;
                if to_server {
                    if let Some(s) = self.server.as_mut() {
                        s.handle_segment(now, 0, &r, &payload);
                    }
                } else {
                    self.client.handle_segment(now, 0, &r, &payload);
                }
            }
            Op::Shuttle(n) => self.shuttle(n),
            Op::Write { server, len } => {
                let data = vec![7u8; usize::from(len)];
                if server {
                    if let Some(s) = self.server.as_mut() {
                        s.write(&data);
                    }
                } else {
                    self.client.write(&data);
                }
            }
            Op::Read { server } => {
                if server {
                    if let Some(s) = self.server.as_mut() {
                        s.read(&mut buf);
                    }
                } else {
                    self.client.read(&mut buf);
                }
            }
            Op::Close { server } => {
                if server {
                    if let Some(s) = self.server.as_mut() {
                        s.close();
                    }
                } else {
                    self.client.close();
                }
            }
            Op::Advance(ms) => self.advance(u64::from(ms)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_options_and_segments_never_panic(
        checksum in any::<bool>(),
        warmup in 0u8..12,
        ops in vec(op(), 1..40),
    ) {
        let mut w = World::new(checksum);
        w.client.write(&[1u8; 5000]);
        w.shuttle(warmup);
        for op in ops {
            w.apply(op);
        }
        // Whatever happened, the connections can still be driven.
        w.shuttle(5);
        let _ = w.client.poll_timeout();
        let _ = w.client.counters();
    }
}
